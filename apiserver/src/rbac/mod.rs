//! Role-based access control, as kube-apiserver has it: the authorizer chain with
//! RBAC's evaluation ([`authorizer`]), the comparison of rule sets that escalation
//! prevention ([`escalation`]) and the default roles' reconciliation use
//! ([`covers`]), and the roles and bindings every cluster starts with
//! ([`bootstrap`]; the control plane components' own, [`components`], and the
//! controllers', [`controller_roles`]).

pub mod authorizer;
pub mod bootstrap;
pub mod components;
pub mod controller_roles;
pub mod covers;
pub mod escalation;

pub use authorizer::{Attributes, GROUP, Source, Target, allows};

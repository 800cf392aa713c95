//! rk8s' actors (actix) and the supervision trees around them, all run under the one
//! actor kit, [`supervision`] (re-exported: the registry, handles, kills that crash):
//! - [`node`]: the node agent — joining ([`node::identity`]), registration and Lease
//!   ([`node::registration`]), the NodeActor and one PodActor per pod, the HTTPS
//!   endpoint for logs and exec ([`node::server`]), and the agent as a whole
//!   ([`node::agent`]);
//! - [`control_plane`]: the actors that run on the Raft leader only (the scheduler
//!   and the controllers).

pub mod control_plane;
pub mod leader_lease;
pub mod node;

pub use rk8s_supervision as supervision;

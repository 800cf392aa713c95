//! The endpoints, one file per group: the resource verbs ([`resources`]) and their
//! watch streams ([`watch`]), what is forwarded to nodes ([`nodes`]), joining
//! ([`bootstrap`]), what Prometheus reads ([`metrics`]), the OpenAPI v2 document in
//! JSON or protobuf ([`openapi`]), the review kinds ([`reviews`]), health ([`health`]) and the chaos endpoints
//! ([`debug`]); the PodPeer projection ([`pod_peers`]); the
//! control plane's health as `componentstatuses` ([`component_statuses`]). Each adds methods to [`crate::server::ApiServer`],
//! whose `dispatch` picks one by route.

pub mod bootstrap;
pub mod component_statuses;
pub mod debug;
pub mod health;
pub mod metrics;
pub mod nodes;
pub mod openapi;
pub mod pod_peers;
pub mod resources;
pub mod reviews;
pub mod versions;
pub mod watch;

//! rk8s' controllers. Each reconcile is a pure function from what is desired and what
//! is observed to the actions that close the gap, tested on its own; actors gather the
//! state, call it, and carry the actions out with compare-and-swap writes.
//!
//! - [`replicaset`]: pods to match `replicas`, with expectations, adoption and release,
//!   deletion ranking and status; [`replicaset_actor`]: its supervisor and one actor
//!   per ReplicaSet; [`pod_owner`]: the supervisor shared with Jobs.
//! - [`job`]: pods to run until `completions` succeed or `backoffLimit` fail, counted
//!   exactly through the tracking finalizer; [`job_actor`]: one actor per Job.
//! - [`deployment`]: RollingUpdate within maxSurge/maxUnavailable or Recreate, the
//!   pod-template hash, revisions and history, status and conditions;
//!   [`deployment_actor`]: its supervisor and one actor per Deployment (adopting
//!   orphaned ReplicaSets).
//! - [`node_lifecycle`]: unreachable nodes tainted, their pods evicted after their
//!   tolerations; [`node_lifecycle_actor`]: its supervisor and one actor per node.
//! - [`gc`]: the garbage collector (background, foreground and orphan cascades).
//! - [`common`]: owner references, pod readiness, expectations; [`events`]: events;
//!   [`chaos`]: the registry of actors; [`metrics`]: Prometheus metrics.

pub mod chaos;
pub mod common;
pub mod deployment;
pub mod deployment_actor;
pub mod endpoints;
pub mod endpoints_actor;
pub mod events;
pub mod gc;
pub mod hpa;
pub mod hpa_actor;
pub mod job;
pub mod job_actor;
pub mod metrics;
pub mod node_lifecycle;
pub mod node_lifecycle_actor;
pub mod pod_owner;
pub mod promql;
pub mod replicaset;
pub mod replicaset_actor;

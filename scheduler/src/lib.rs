//! rk8s' scheduler, shaped like kube-scheduler: a [`queue`] of pending pods, a plugin
//! [`framework`] (PreFilter, Filter, PostFilter, PreScore, Score + NormalizeScore,
//! Reserve, Bind), the built-in [`plugins`], [`profile`]s from a configuration file,
//! the [`cache`] of nodes with assumed pods (each a [`node_info::NodeInfo`], each pod a
//! [`pod_info::PodInfo`], with what its claims need: [`volume_needs`]), one scheduling cycle in [`core`], and the
//! [`actor`] that runs it all on the Raft leader, with its [`metrics`].

pub mod actor;
pub mod cache;
pub mod core;
pub mod framework;
pub mod metrics;
pub mod node_info;
pub mod plugins;
pub mod pod_info;
pub mod profile;
pub mod queue;
pub mod resources;
pub mod volume_needs;

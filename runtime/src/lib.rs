//! rk8s' node runtime: pods as real OCI containers.
//!
//! - [`image`]: the image store (OCI layouts, registry pulls, layers unpacked once and
//!   shared, whiteouts honoured) and each container's overlayfs rootfs.
//! - [`spec`]: the OCI runtime spec of a container (namespaces, cgroups, resources,
//!   security defaults).
//! - [`helper`]: the container helper process that makes every libcontainer call, reaps
//!   containers and writes their logs; [`runtime::ContainerRuntime`] is how callers
//!   reach it, [`fake`] runs nothing for simulated nodes.
//! - [`network`]: [`network::PodNetwork`], what pods need from the network that gives
//!   them addresses (rk8s-netoverlay's bridge network implements it).
//! - [`pod`]: the Kubernetes pod model on top — a pause sandbox whose namespaces the
//!   work containers join, volumes, /etc/hosts and resolv.conf, the pod network.
//! - [`logs`], [`cgroups`]: CRI log files, and usage and OOM kills from cgroups.
//! - [`nonblocking`]: the pipes and terminals handed out (exec, attach) read and
//!   written from async code.
//!
//! Binaries that host the runtime call [`helper::run_if_requested`] first in `main`.

pub mod cgroups;
pub mod container;
pub mod error;
pub mod fake;
pub mod helper;
pub mod image;
pub mod logs;
pub mod network;
pub mod nonblocking;
pub mod pod;
pub mod probe;
pub mod restart;
pub mod rootfs;
pub mod runtime;
pub mod spec;
pub mod static_pods;
pub mod stats;

pub use container::{
    ContainerState, CreateContainer, Engine, ExecProcess, Exit, ExitReason, Status,
};
pub use error::{Error, Result};
pub use network::PodNetwork;
pub use runtime::ContainerRuntime;

//! The `PodNetwork` trait: what pods need from the network that gives them addresses.
//!
//! `rk8s-netoverlay`'s bridge network implements it; the runtime knows nothing of
//! bridges, veths or nftables, only that a pod gets a network namespace with an
//! address and its host ports, and loses them again.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Gives pods a place on the network. Calls block; async code calls them through
/// `spawn_blocking`.
///
/// Errors are the runtime's: a taken host port is [`Error::HostPortTaken`] naming its
/// owner's pod uid, anything else [`Error::Network`].
///
/// [`Error::HostPortTaken`]: crate::Error::HostPortTaken
/// [`Error::Network`]: crate::Error::Network
pub trait PodNetwork: Send + Sync {
    /// Gives pod `uid` a network namespace with an address and forwards `host_ports`
    /// to it. Idempotent: attaching an attached pod returns its attachment.
    fn attach(&self, uid: &str, host_ports: &[HostPort]) -> Result<Attachment>;
    /// Removes pod `uid`'s namespace, address and host ports, also what a crash
    /// half-way through [`attach`](Self::attach) left. Detaching a pod that is not
    /// attached does nothing.
    fn detach(&self, uid: &str) -> Result<()>;
    /// The uids of every attached pod.
    fn attached(&self) -> Result<Vec<String>>;
}

/// A pod's place on the network, as its record keeps it.
///
/// Records written while this held the network's whole attachment (prefix, gateway,
/// veth, ports) still load: unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The pod's address.
    pub address: Ipv4Addr,
    /// Its network namespace, for the OCI spec's `linux.namespaces[].path`.
    pub netns_path: PathBuf,
}

/// A host port forwarded to a port of a pod (`ports[].hostPort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPort {
    /// The port on the host.
    pub host_port: u16,
    /// The port in the pod.
    pub container_port: u16,
    /// tcp or udp.
    pub protocol: Protocol,
}

/// tcp or udp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// TCP (the default, as in Kubernetes).
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

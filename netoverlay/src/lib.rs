//! The pod network of one host: a Linux bridge per network with an address range,
//! a veth pair into each pod's network namespace, a default route through the bridge,
//! masquerading of traffic that leaves the range, and host-port mappings in nftables.
//!
//! Every change to the host goes through [`Host`], so the decisions (which address,
//! which commands, in which order) are tested with the recording [`host::Recorder`]
//! and the real effect with root tests that create real namespaces and links.
//!
//! ```no_run
//! use rk8s_netoverlay::{Network, NetworkConfig, host::System};
//! # fn main() -> Result<(), rk8s_netoverlay::Error> {
//! let net = Network::new(NetworkConfig::local("/run/rk8s/net"), System)?;
//! let attachment = net.attach("pod-1234")?;
//! println!("pod address {} in {}", attachment.address, attachment.netns_path.display());
//! net.detach("pod-1234")?;
//! # Ok(())
//! # }
//! ```

pub mod dns;
pub mod error;
pub mod host;
pub mod ipam;
pub mod network;
pub mod overlay;
mod pod_network;
pub mod portmap;
pub mod services;

pub use error::{Error, Result};
pub use network::{Attachment, Network, NetworkConfig};
pub use portmap::{PortMapping, Protocol};
pub use rk8s_api::net::Ipv4Net;

//! The pod network of one host: a Linux bridge per network with an address range,
//! a veth pair into each pod's network namespace, a default route through the bridge,
//! masquerading of traffic that leaves the range, and host-port mappings in nftables.
//!
//! Links, addresses, routes, neighbour and forwarding entries are changed over
//! netlink (the `rtnetlink` crate) and named network namespaces are made as
//! `ip netns` makes them ([`netns`]), without running `ip` or `bridge`; nftables
//! rules are still written by `nft`. Every change goes through [`Host`]: a change
//! is a [`NetOp`], which reads as the `ip`/`bridge` command that makes it. So the
//! decisions (which address, which changes, in which order) are tested with the
//! recording [`host::Recorder`], and the real effect with root tests that create
//! real namespaces and links and look at them with `ip`.
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
pub mod netlink;
pub mod netns;
pub mod netpol;
pub mod network;
pub mod overlay;
mod pod_network;
pub mod portmap;
pub mod services;

pub use error::{Error, Result};
pub use host::Host;
pub use netlink::NetOp;
pub use network::{Attachment, Network, NetworkConfig};
pub use portmap::{PortMapping, Protocol};
pub use rk8s_api::net::Ipv4Net;

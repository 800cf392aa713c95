//! Pod traffic between nodes over the kernel's VXLAN, the way Flannel's `vxlan`
//! backend does it, without a directory of its own: everything a node needs about a
//! peer follows from the peer's Node object (InternalIP and podCIDR).
//!
//! Each node has one VXLAN device (`rk8s.vxlan`, VNI 1, UDP 8472, no learning) whose
//! MAC address is derived from the node's IP (`0a:58:` and its four bytes) and whose
//! address is the network address of its podCIDR (`/32`). For each peer:
//! - a route to the peer's podCIDR via the peer's device address, `onlink`;
//! - a permanent neighbour entry: that address is at the peer's derived MAC;
//! - a forwarding entry: that MAC is reached at the peer's node IP.
//!
//! Pod addresses are not translated between nodes; traffic leaving the cluster range
//! is masqueraded by the pod network ([`crate::Network`]).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::Ipv4Net;
use crate::error::Result;
use crate::host::Host;
use crate::netlink::NetOp;

/// The VXLAN device.
pub const DEVICE: &str = "rk8s.vxlan";
/// Its VXLAN network identifier.
pub const VNI: u32 = 1;
/// Its UDP port (Linux' and Flannel's).
pub const PORT: u16 = 8472;

/// Another node, as far as the overlay cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The node's address (its InternalIP).
    pub node_ip: Ipv4Addr,
    /// Its pods' range.
    pub pod_cidr: Ipv4Net,
}

/// The MAC address of a node's VXLAN device.
pub fn mac_of(node_ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = node_ip.octets();
    [0x0a, 0x58, a, b, c, d]
}

fn device() -> String {
    DEVICE.to_string()
}

/// This node's end of the overlay.
pub struct Overlay {
    host: Box<dyn Host>,
    node_ip: Ipv4Addr,
    pod_cidr: Ipv4Net,
    peers: BTreeMap<String, Peer>,
}

impl std::fmt::Debug for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlay")
            .field("node_ip", &self.node_ip)
            .field("pod_cidr", &self.pod_cidr)
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

impl Overlay {
    /// Creates the VXLAN device of the node at `node_ip` whose pods are in
    /// `pod_cidr`, replacing one a previous run left (and with it that run's peers).
    pub fn new(host: impl Host + 'static, node_ip: Ipv4Addr, pod_cidr: Ipv4Net) -> Result<Self> {
        let overlay = Overlay {
            host: Box::new(host),
            node_ip,
            pod_cidr,
            peers: BTreeMap::new(),
        };
        overlay.create()?;
        Ok(overlay)
    }

    fn create(&self) -> Result<()> {
        let host = self.host.as_ref();
        // Routes through the device go with it: a new device starts with no peers.
        let _ = self.delete_device();
        host.apply(
            None,
            &[
                NetOp::AddVxlan {
                    name: device(),
                    vni: VNI,
                    local: self.node_ip,
                    port: PORT,
                },
                NetOp::SetMac {
                    link: device(),
                    mac: mac_of(self.node_ip),
                },
                NetOp::AddAddress {
                    link: device(),
                    address: self.pod_cidr.network(),
                    prefix: 32,
                    replace: false,
                },
                NetOp::Up { link: device() },
            ],
        )
    }

    fn delete_device(&self) -> Result<()> {
        Self::remove_device(self.host.as_ref())
    }

    /// Makes the peers exactly `peers` (by node name; this node is left out by the
    /// caller or here, by its IP); returns how many were added, changed or removed.
    pub fn sync(&mut self, peers: &BTreeMap<String, Peer>) -> Result<usize> {
        let mut changed = 0;
        let gone: Vec<(String, Peer)> = self
            .peers
            .iter()
            .filter(|(name, p)| peers.get(*name) != Some(*p))
            .map(|(n, p)| (n.clone(), p.clone()))
            .collect();
        for (name, peer) in gone {
            self.forget(&peer)?;
            self.peers.remove(&name);
            changed += 1;
        }
        for (name, peer) in peers {
            if peer.node_ip == self.node_ip || self.peers.contains_key(name) {
                continue;
            }
            self.learn(peer)?;
            self.peers.insert(name.clone(), peer.clone());
            changed += 1;
        }
        Ok(changed)
    }

    fn learn(&self, peer: &Peer) -> Result<()> {
        let vtep = peer.pod_cidr.network();
        let mac = mac_of(peer.node_ip);
        self.host.apply(
            None,
            &[
                NetOp::ReplaceNeighbour {
                    address: vtep,
                    mac,
                    link: device(),
                },
                NetOp::ReplaceFdb {
                    mac,
                    link: device(),
                    dst: peer.node_ip,
                },
                NetOp::AddRoute {
                    destination: Some(peer.pod_cidr),
                    gateway: vtep,
                    link: Some(device()),
                    onlink: true,
                    replace: true,
                },
            ],
        )
    }

    fn forget(&self, peer: &Peer) -> Result<()> {
        let host = self.host.as_ref();
        let mac = mac_of(peer.node_ip);
        // Each may be gone already (the device was recreated): that is the goal, and
        // one missing does not keep the others.
        for op in [
            NetOp::DeleteRoute {
                destination: peer.pod_cidr,
            },
            NetOp::DeleteNeighbour {
                address: peer.pod_cidr.network(),
                link: device(),
            },
            NetOp::DeleteFdb {
                mac,
                link: device(),
            },
        ] {
            let _ = host.apply(None, &[op]);
        }
        Ok(())
    }

    /// The peers programmed now.
    pub fn peers(&self) -> &BTreeMap<String, Peer> {
        &self.peers
    }

    /// Removes the device (and with it every route through it).
    pub fn remove(&mut self) -> Result<()> {
        self.peers.clear();
        self.delete_device()
    }

    /// Removes the VXLAN device of this network namespace, if there is one (`reset`).
    pub fn remove_device(host: &dyn Host) -> Result<()> {
        crate::host::delete_link(host, DEVICE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Recorder;
    use std::sync::Arc;

    #[test]
    fn peers_become_a_route_a_neighbour_and_a_forwarding_entry_and_go_again() {
        let r = Arc::new(Recorder::new());
        let mut o = Overlay::new(
            r.clone(),
            "10.99.0.11".parse().unwrap(),
            "10.244.0.0/24".parse().unwrap(),
        )
        .unwrap();
        let commands = r.commands();
        assert!(
            commands.contains(
                &"ip link add rk8s.vxlan type vxlan id 1 local 10.99.0.11 dstport 8472 nolearning"
                    .to_string()
            )
        );
        assert!(commands.contains(&"ip link set rk8s.vxlan address 0a:58:0a:63:00:0b".to_string()));
        assert!(commands.contains(&"ip addr add 10.244.0.0/32 dev rk8s.vxlan".to_string()));
        let b = Peer {
            node_ip: "10.99.0.12".parse().unwrap(),
            pod_cidr: "10.244.1.0/24".parse().unwrap(),
        };
        let me = Peer {
            node_ip: "10.99.0.11".parse().unwrap(),
            pod_cidr: "10.244.0.0/24".parse().unwrap(),
        };
        let peers = BTreeMap::from([("a".to_string(), me), ("b".to_string(), b.clone())]);
        assert_eq!(o.sync(&peers).unwrap(), 1, "itself is no peer");
        let tail: Vec<String> = r.commands().into_iter().rev().take(3).rev().collect();
        assert_eq!(
            tail,
            [
                "ip neigh replace 10.244.1.0 lladdr 0a:58:0a:63:00:0c dev rk8s.vxlan nud permanent",
                "bridge fdb replace 0a:58:0a:63:00:0c dev rk8s.vxlan dst 10.99.0.12",
                "ip route replace 10.244.1.0/24 via 10.244.1.0 dev rk8s.vxlan onlink",
            ]
        );
        assert_eq!(o.sync(&peers).unwrap(), 0);
        assert_eq!(o.sync(&BTreeMap::new()).unwrap(), 1);
        assert!(
            r.commands()
                .contains(&"ip route del 10.244.1.0/24".to_string())
        );
        assert!(o.peers().is_empty());
    }
}

//! Addresses as the cluster uses them: IPv4 networks in CIDR notation (pod and
//! Service ranges), and which addresses are a host's to be reached at.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network: base address and prefix length (`10.88.0.0/16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    base: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    /// 10.88.0.0/16: the default range of the local network.
    pub const LOCAL_DEFAULT: Ipv4Net = Ipv4Net {
        base: Ipv4Addr::new(10, 88, 0, 0),
        prefix: 16,
    };

    /// The network containing `addr` with `prefix` bits (host bits are cleared).
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        (prefix <= 32).then(|| Self {
            base: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    /// The first address (all host bits zero).
    pub fn network(&self) -> Ipv4Addr {
        self.base
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `addr` lies in this network.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.prefix) == u32::from(self.base)
    }

    /// The `n`-th address of the network (0 is the network address), if inside it.
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        let size = self.size();
        (u64::from(n) < size).then(|| Ipv4Addr::from(u32::from(self.base) + n))
    }

    /// How many addresses the network spans.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The broadcast address (all host bits one).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) | !mask(self.prefix))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

/// A CIDR string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not an IPv4 CIDR such as 10.88.0.0/16")]
pub struct InvalidCidr {
    /// The rejected text.
    pub value: String,
}

impl FromStr for Ipv4Net {
    type Err = InvalidCidr;

    fn from_str(s: &str) -> Result<Self, InvalidCidr> {
        let invalid = || InvalidCidr {
            value: s.to_string(),
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(invalid)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| invalid())?;
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        Self::new(addr, prefix).ok_or_else(invalid)
    }
}

impl serde::Serialize for Ipv4Net {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Ipv4Net {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// Whether other hosts can reach a host at `ip`: not a loopback, link-local,
/// multicast, broadcast or unspecified address. What a node's serving certificate may
/// name.
pub fn is_host_address(ip: std::net::IpAddr) -> bool {
    let ip = ip.to_canonical();
    let link_local = match ip {
        std::net::IpAddr::V4(v4) => v4.is_link_local() || v4.is_broadcast(),
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || link_local)
}

/// The label of a node `rk8s-node simulate` registers: it has no agent and its
/// addresses are made up, so nothing dials it (the API server refuses to, and the
/// activation controller does not follow it).
pub const SIMULATED_NODE_LABEL: &str = "rk8s.io/simulated";

/// Whether a node's labels mark it simulated ([`SIMULATED_NODE_LABEL`] `=true`).
pub fn is_simulated_node(labels: Option<&std::collections::BTreeMap<String, String>>) -> bool {
    labels
        .and_then(|l| l.get(SIMULATED_NODE_LABEL))
        .is_some_and(|v| v == "true")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_clears_host_bits() {
        let net: Ipv4Net = "10.88.3.7/16".parse().unwrap();
        assert_eq!(net.to_string(), "10.88.0.0/16");
        assert!(net.contains("10.88.255.1".parse().unwrap()));
        assert!(!net.contains("10.89.0.1".parse().unwrap()));
        assert_eq!(net.nth(1), Some("10.88.0.1".parse().unwrap()));
        assert_eq!(
            net.broadcast(),
            "10.88.255.255".parse::<Ipv4Addr>().unwrap()
        );
        assert_eq!(net.size(), 65536);
        assert_eq!(net.nth(65536), None);
    }

    #[test]
    fn rejects_what_is_not_a_cidr() {
        for bad in ["10.0.0.0", "10.0.0.0/33", "10.0.0/8", "x/8", "10.0.0.0/-1"] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad}");
        }
        let zero: Ipv4Net = "1.2.3.4/0".parse().unwrap();
        assert_eq!(zero.size(), 1 << 32);
    }

    #[test]
    fn host_addresses_are_those_other_hosts_reach() {
        for ip in ["10.0.0.5", "192.168.1.2", "2001:db8::1"] {
            assert!(is_host_address(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "169.254.1.1",
            "fe80::1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_host_address(ip.parse().unwrap()), "{ip}");
        }
    }
}

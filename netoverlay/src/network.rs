//! A bridge network on one host: the bridge with the range's gateway address, a veth
//! pair per pod into the pod's named network namespace, masquerading for traffic
//! leaving the range, and the pods' host ports.

use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Ipv4Net;
use crate::error::{Error, Result};
use crate::host::Host;
use crate::ipam::Ipam;
use crate::netlink::NetOp;
use crate::netns;
use crate::portmap::{self, PortMapping, TABLE};

/// Where a network lives and how it is named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// The network's name (Compose: `<project>_default`); tags its rules.
    pub name: String,
    /// The bridge device (1 to 15 bytes, no `/`, `:` or white space).
    pub bridge: String,
    /// The address range; its first host address is the bridge's (the gateway).
    pub subnet: Ipv4Net,
    /// Directory for allocations and attachment records.
    pub state_dir: PathBuf,
    /// The whole cluster's pod range (other nodes' pods): traffic to it keeps the
    /// pod's address. `None`: only this network's own range.
    #[serde(default)]
    pub cluster_cidr: Option<Ipv4Net>,
}

impl NetworkConfig {
    /// The default local network of `rk8sctl` and static pods: bridge `rk8s0`,
    /// 10.88.0.0/16.
    pub fn local(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            name: "rk8s".to_string(),
            bridge: "rk8s0".to_string(),
            subnet: Ipv4Net::LOCAL_DEFAULT,
            state_dir: state_dir.into(),
            cluster_cidr: None,
        }
    }

    /// Checks what the kernel would refuse later, naming the field: the bridge's
    /// name ([`check_link_name`](crate::netlink::check_link_name)).
    pub fn validate(&self) -> Result<()> {
        crate::netlink::check_link_name("bridge name", &self.bridge)?;
        Ok(())
    }
}

/// A pod's place on the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The pod (sandbox) id it belongs to.
    pub owner: String,
    /// The pod's address.
    pub address: Ipv4Addr,
    /// The range's prefix length.
    pub prefix: u8,
    /// The default gateway (the bridge).
    pub gateway: Ipv4Addr,
    /// The named network namespace (`ip netns` name).
    pub netns: String,
    /// Its path, for the OCI spec's `linux.namespaces[].path`.
    pub netns_path: PathBuf,
    /// The host end of the veth pair.
    pub host_veth: String,
    /// Host ports forwarded to the pod.
    pub ports: Vec<PortMapping>,
}

/// A bridge network on this host.
pub struct Network {
    config: NetworkConfig,
    host: Box<dyn Host>,
    ipam: Ipam,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Network {
    /// Opens the network, creating the bridge, its address and the masquerade rule
    /// when they are missing (so a reboot, which loses them, needs nothing else).
    /// Fails, changing nothing, on a configuration the kernel would refuse
    /// ([`NetworkConfig::validate`]).
    pub fn new(config: NetworkConfig, host: impl Host + 'static) -> Result<Self> {
        config.validate()?;
        let ipam = Ipam::new(
            config.state_dir.join(&config.name).join("ipam"),
            config.subnet,
        );
        let network = Self {
            config,
            host: Box::new(host),
            ipam,
        };
        network.ensure()?;
        Ok(network)
    }

    /// The configuration.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    fn gateway(&self) -> Result<Ipv4Addr> {
        self.ipam.gateway().ok_or_else(|| Error::RangeFull {
            range: self.config.subnet.to_string(),
        })
    }

    fn ensure(&self) -> Result<()> {
        let c = &self.config;
        let host = self.host.as_ref();
        let mut ops = Vec::new();
        if !host.link_exists(&c.bridge)? {
            ops.push(NetOp::AddBridge {
                name: c.bridge.clone(),
            });
        }
        ops.push(NetOp::AddAddress {
            link: c.bridge.clone(),
            address: self.gateway()?,
            prefix: c.subnet.prefix(),
            replace: true,
        });
        ops.push(NetOp::Up {
            link: c.bridge.clone(),
        });
        host.apply(None, &ops)?;
        host.sysctl("net.ipv4.ip_forward", "1")?;
        // Lets host ports answer on 127.0.0.1: loopback-sourced packets may be routed
        // to the bridge after DNAT (they are masqueraded below).
        host.sysctl(&format!("net.ipv4.conf.{}.route_localnet", c.bridge), "1")?;
        portmap::ensure_table(host)?;
        let kept = c.cluster_cidr.unwrap_or(c.subnet);
        let tag = format!("net:{} except:{kept}", c.name);
        // A rule of an earlier run with another cluster range goes.
        portmap::delete_where(host, "postrouting", |comment| {
            is_network_tag(comment, &c.name) && comment != tag
        })?;
        if !portmap::rules(host, "postrouting")?
            .iter()
            .any(|r| r.comment == tag)
        {
            let script = format!(
                "add rule ip {TABLE} postrouting ip saddr {net} ip daddr != {kept} masquerade comment \"{tag}\"\n\
                 add rule ip {TABLE} postrouting ip saddr 127.0.0.0/8 oifname \"{bridge}\" masquerade comment \"{tag}\"\n",
                net = c.subnet,
                bridge = c.bridge,
            );
            host.run("nft", &["-f", "-"], Some(&script))?;
        }
        Ok(())
    }

    /// Gives the pod `owner` an address, a network namespace `rk8s-<owner>` with `eth0`
    /// and `lo` up and a default route, and its host ports. Idempotent: attaching an
    /// attached pod returns its attachment.
    pub fn attach(&self, owner: &str) -> Result<Attachment> {
        self.attach_with_ports(owner, &[])
    }

    /// [`attach`](Self::attach) with host ports.
    pub fn attach_with_ports(&self, owner: &str, ports: &[PortMapping]) -> Result<Attachment> {
        if let Some(existing) = self.attachment(owner)? {
            return Ok(existing);
        }
        let netns = netns_name(owner);
        let host_veth = veth_name(owner);
        let address = self.ipam.allocate(owner)?;
        let attachment = Attachment {
            owner: owner.to_string(),
            address,
            prefix: self.config.subnet.prefix(),
            gateway: self.gateway()?,
            netns_path: netns::path(&netns),
            netns,
            host_veth,
            ports: ports.to_vec(),
        };
        let mut made = Made::default();
        if let Err(e) = self.wire(&attachment, &mut made) {
            // Leave nothing half-made behind, and nothing else touched: the caller
            // sees the first error.
            self.unwind(&attachment, &made);
            let _ = self.ipam.release(owner);
            return Err(e);
        }
        let path = self.record_path(owner);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let json = serde_json::to_vec_pretty(&attachment).unwrap_or_default();
        fs::write(&path, json).map_err(|source| Error::Io { path, source })?;
        Ok(attachment)
    }

    /// Makes the pod's namespace (unless it is there), the veth pair, the pod's
    /// addresses and route and its host ports, noting in `made` what it made.
    fn wire(&self, a: &Attachment, made: &mut Made) -> Result<()> {
        let host = self.host.as_ref();
        let ns = a.netns.as_str();
        if !host.netns_exists(ns) {
            host.apply(
                None,
                &[NetOp::AddNetns {
                    name: ns.to_string(),
                }],
            )?;
            made.netns = true;
        }
        // The pod's end is made in its namespace (by the namespace's file descriptor).
        // In a batch of its own: when it fails ("File exists"), the link of that name
        // is someone else's (another pod's, when two owners hash alike) and stays.
        host.apply(
            None,
            &[NetOp::AddVeth {
                name: a.host_veth.clone(),
                peer: "eth0".to_string(),
                peer_netns: ns.to_string(),
            }],
        )?;
        made.veth = true;
        host.apply(
            None,
            &[NetOp::SetMasterUp {
                link: a.host_veth.clone(),
                master: self.config.bridge.clone(),
            }],
        )?;
        let eth0 = || "eth0".to_string();
        host.apply(
            Some(ns),
            &[
                NetOp::AddAddress {
                    link: eth0(),
                    address: a.address,
                    prefix: a.prefix,
                    replace: false,
                },
                NetOp::Up {
                    link: "lo".to_string(),
                },
                NetOp::Up { link: eth0() },
                NetOp::AddRoute {
                    destination: None,
                    gateway: a.gateway,
                    link: None,
                    onlink: false,
                    replace: false,
                },
            ],
        )?;
        // Last, and one nft transaction: when it fails, it added nothing.
        portmap::add(host, &a.owner, a.address, &a.ports)
    }

    /// Undoes what a failed [`wire`](Self::wire) made, and only that; errors are
    /// left out (the caller reports the first).
    fn unwind(&self, a: &Attachment, made: &Made) {
        let host = self.host.as_ref();
        // Deleting the namespace destroys eth0 and with it the host end of the pair.
        if made.netns {
            let _ = host.apply(
                None,
                &[NetOp::DeleteNetns {
                    name: a.netns.clone(),
                }],
            );
        }
        // In a namespace that was there before, the pair goes with its host end.
        if made.veth {
            let _ = crate::host::delete_link(host, &a.host_veth);
        }
    }

    fn unwire(&self, a: &Attachment) -> Result<()> {
        let host = self.host.as_ref();
        portmap::remove(host, &a.owner)?;
        // Deleting the namespace destroys eth0 and with it the host end of the pair. A
        // file no namespace was mounted on yet (a kill between the two) goes too.
        if host.netns_exists(&a.netns) || netns::leftover(&a.netns) {
            host.apply(
                None,
                &[NetOp::DeleteNetns {
                    name: a.netns.clone(),
                }],
            )?;
        }
        // The kernel removes the peer of a destroyed eth0 in the background.
        crate::host::delete_link(host, &a.host_veth)
    }

    /// Removes the pod's namespace, veth pair, host ports and address. Detaching a pod
    /// that is not attached does nothing.
    pub fn detach(&self, owner: &str) -> Result<()> {
        let attachment = match self.attachment(owner)? {
            Some(a) => a,
            None => Attachment {
                owner: owner.to_string(),
                address: Ipv4Addr::UNSPECIFIED,
                prefix: self.config.subnet.prefix(),
                gateway: Ipv4Addr::UNSPECIFIED,
                netns: netns_name(owner),
                netns_path: PathBuf::new(),
                host_veth: veth_name(owner),
                ports: Vec::new(),
            },
        };
        self.unwire(&attachment)?;
        self.ipam.release(owner)?;
        let path = self.record_path(owner);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Io { path, source }),
        }
    }

    /// The attachment of `owner`, if attached.
    pub fn attachment(&self, owner: &str) -> Result<Option<Attachment>> {
        let path = self.record_path(owner);
        match fs::read(&path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io { path, source }),
        }
    }

    /// Every attached pod.
    pub fn attachments(&self) -> Result<Vec<Attachment>> {
        let dir = self.config.state_dir.join(&self.config.name).join("pods");
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            if let Ok(bytes) = fs::read(entry.path())
                && let Ok(a) = serde_json::from_slice(&bytes)
            {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Every owner with something on this host: an attachment, or only an address
    /// (an attachment half made when the agent was killed: the address is taken
    /// before the namespace and veth are made, the record written after, so what
    /// was made is found through the address).
    pub fn owners(&self) -> Result<Vec<String>> {
        let mut owners: Vec<String> = self.attachments()?.into_iter().map(|a| a.owner).collect();
        owners.extend(self.ipam.allocations()?.into_iter().map(|(_, owner)| owner));
        owners.sort();
        owners.dedup();
        Ok(owners)
    }

    /// Removes the network from the host: every attachment, the masquerade rules, the
    /// bridge and the state directory. The `rk8s` table goes when nothing else uses it.
    pub fn destroy(&self) -> Result<()> {
        for owner in self.owners()? {
            self.detach(&owner)?;
        }
        let host = self.host.as_ref();
        portmap::delete_where(host, "postrouting", |c| {
            is_network_tag(c, &self.config.name)
        })?;
        if host.link_exists(&self.config.bridge)? {
            let bridge = NetOp::DeleteLink {
                link: self.config.bridge.clone(),
            };
            host.apply(None, &[bridge])?;
        }
        let unused = portmap::rules(host, "postrouting")?.is_empty()
            && portmap::rules(host, "hostports")?.is_empty();
        if unused {
            // Another process may have removed it already.
            let _ = host.run("nft", &["delete", "table", "ip", TABLE], None);
        }
        let dir = self.config.state_dir.join(&self.config.name);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Io { path: dir, source }),
        }
    }

    fn record_path(&self, owner: &str) -> PathBuf {
        self.config
            .state_dir
            .join(&self.config.name)
            .join("pods")
            .join(format!("{owner}.json"))
    }
}

/// What an attach has made so far: what its unwinding may remove.
#[derive(Debug, Default)]
struct Made {
    /// The pod's namespace (not there before).
    netns: bool,
    /// The veth pair.
    veth: bool,
}

/// Whether a masquerade rule's comment is network `name`'s (`net:NAME` of older runs,
/// `net:NAME except:RANGE`).
fn is_network_tag(comment: &str, name: &str) -> bool {
    comment
        .strip_prefix("net:")
        .and_then(|rest| rest.strip_prefix(name))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
}

/// `rk8s-` and the owner, cut to fit in a file name comfortably.
pub fn netns_name(owner: &str) -> String {
    let short: String = owner.chars().take(48).collect();
    format!("rk8s-{short}")
}

/// `veth` and eight hex digits of a hash of the owner: interface names have at most
/// 15 characters, pod ids are longer.
pub fn veth_name(owner: &str) -> String {
    // FNV-1a: stable across runs and builds, unlike std's hasher.
    let mut hash: u32 = 0x811c_9dc5;
    for b in owner.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("veth{hash:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Recorder;
    use crate::portmap::Protocol;
    use std::path::Path;
    use std::sync::Arc;

    fn config(dir: &Path) -> NetworkConfig {
        NetworkConfig {
            name: "t".into(),
            bridge: "rk8st0".into(),
            subnet: "10.99.0.0/24".parse().unwrap(),
            state_dir: dir.to_path_buf(),
            cluster_cidr: None,
        }
    }

    #[test]
    fn attach_wires_a_veth_into_the_pod_namespace_with_a_default_route() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Arc::new(Recorder::new());
        // `ip link show rk8st0` succeeds on the recorder: the bridge "exists".
        let net = Network::new(config(dir.path()), recorder.clone()).unwrap();
        let ports = [PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
        }];
        let a = net.attach_with_ports("pod1", &ports).unwrap();
        assert_eq!(a.address.to_string(), "10.99.0.2");
        assert_eq!(a.gateway.to_string(), "10.99.0.1");
        let veth = veth_name("pod1");
        let expected = [
            "ip netns add rk8s-pod1".to_string(),
            format!("ip link add {veth} type veth peer name eth0 netns rk8s-pod1"),
            format!("ip link set {veth} master rk8st0 up"),
            "ip -n rk8s-pod1 addr add 10.99.0.2/24 dev eth0".to_string(),
            "ip -n rk8s-pod1 link set lo up".to_string(),
            "ip -n rk8s-pod1 link set eth0 up".to_string(),
            "ip -n rk8s-pod1 route add default via 10.99.0.1".to_string(),
        ];
        let commands = recorder.commands();
        let start = commands
            .iter()
            .position(|c| c == &expected[0])
            .expect("netns add");
        assert_eq!(&commands[start..start + expected.len()], &expected);
        assert!(
            commands
                .iter()
                .any(|c| c.contains("tcp dport 8080 dnat to 10.99.0.2:80"))
        );
        assert_eq!(net.attach("pod1").unwrap(), a, "attach is idempotent");
        net.detach("pod1").unwrap();
        assert!(
            recorder
                .commands()
                .contains(&"ip netns delete rk8s-pod1".to_string())
        );
        assert_eq!(net.attachment("pod1").unwrap(), None);
        assert!(net.ipam.allocations().unwrap().is_empty());
    }

    #[test]
    fn an_address_without_a_record_is_an_owner_and_goes_with_the_network() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Arc::new(Recorder::new());
        let net = Network::new(config(dir.path()), recorder.clone()).unwrap();
        net.attach("pod1").unwrap();
        // An agent killed half-way through attaching `half`: its address is taken,
        // its namespace and veth may be made, its record is not written.
        net.ipam.allocate("half").unwrap();
        assert_eq!(net.owners().unwrap(), ["half", "pod1"]);
        net.destroy().unwrap();
        let veth = veth_name("half");
        assert!(
            recorder
                .commands()
                .iter()
                .any(|c| c.contains(&format!("ip link delete {veth}"))),
            "{:?}",
            recorder.commands()
        );
        assert!(net.ipam.allocations().unwrap().is_empty());
    }

    #[test]
    fn a_failed_wire_unwinds_everything_and_says_which_change_failed() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Arc::new(Recorder::new());
        let net = Network::new(config(dir.path()), recorder.clone()).unwrap();
        // EEXIST: something took the route already.
        recorder.fail("ip -n rk8s-pod1 route add default", 17);
        let e = net.attach("pod1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "ip -n rk8s-pod1 route add default via 10.99.0.1: File exists (os error 17)"
        );
        let veth = veth_name("pod1");
        let commands = recorder.commands();
        let failed = commands
            .iter()
            .position(|c| c.starts_with("ip -n rk8s-pod1 route add"))
            .unwrap();
        let after = &commands[failed + 1..];
        assert!(after.contains(&"ip netns delete rk8s-pod1".to_string()));
        assert!(after.contains(&format!("ip link delete {veth}")));
        assert_eq!(net.attachment("pod1").unwrap(), None);
        assert!(net.ipam.allocations().unwrap().is_empty());
    }

    #[test]
    fn a_failed_attach_leaves_a_veth_it_did_not_make() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Arc::new(Recorder::new());
        let net = Network::new(config(dir.path()), recorder.clone()).unwrap();
        // Another pod's veth whose owner hashes alike, or any link of that name.
        let veth = veth_name("pod1");
        recorder.fail(&format!("ip link add {veth} type veth"), 17);
        let e = net.attach("pod1").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "ip link add {veth} type veth peer name eth0 netns rk8s-pod1: File exists (os error 17)"
            )
        );
        let commands = recorder.commands();
        let failed = commands
            .iter()
            .position(|c| c.starts_with(&format!("ip link add {veth}")))
            .unwrap();
        assert_eq!(
            &commands[failed + 1..],
            ["ip netns delete rk8s-pod1"],
            "only the namespace this attach made goes"
        );
        assert_eq!(net.attachment("pod1").unwrap(), None);
        assert!(net.ipam.allocations().unwrap().is_empty());
    }

    #[test]
    fn a_failed_attach_leaves_a_namespace_that_was_there_before() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Arc::new(Recorder::new());
        let net = Network::new(config(dir.path()), recorder.clone()).unwrap();
        let made_before = NetOp::AddNetns {
            name: "rk8s-pod1".into(),
        };
        recorder.apply(None, &[made_before]).unwrap();
        recorder.fail("ip -n rk8s-pod1 route add default", 17);
        net.attach("pod1").unwrap_err();
        let veth = veth_name("pod1");
        let commands = recorder.commands();
        assert_eq!(
            commands
                .iter()
                .filter(|c| c.starts_with("ip netns add"))
                .count(),
            1,
            "{commands:?}"
        );
        let failed = commands
            .iter()
            .position(|c| c.starts_with("ip -n rk8s-pod1 route add"))
            .unwrap();
        // The pair goes with its host end; the namespace stays.
        assert_eq!(&commands[failed + 1..], [format!("ip link delete {veth}")]);
        assert!(net.ipam.allocations().unwrap().is_empty());
    }

    #[test]
    fn a_bridge_name_the_kernel_refuses_is_refused_before_any_change() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Arc::new(Recorder::new());
        let mut config = config(dir.path());
        config.bridge = "rk8s-bridge-too-long".into();
        let e = Network::new(config.clone(), recorder.clone()).unwrap_err();
        assert!(matches!(e, Error::InvalidLinkName(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            r#"bridge name "rk8s-bridge-too-long" is longer than 15 bytes"#
        );
        config.bridge = "rk8s:0".into();
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            r#"bridge name "rk8s:0" contains ':'"#
        );
        assert!(recorder.commands().is_empty(), "{:?}", recorder.commands());
        assert!(NetworkConfig::local(dir.path()).validate().is_ok());
    }

    #[test]
    fn a_bridge_that_is_gone_is_made_again_and_one_that_is_there_kept() {
        let dir = tempfile::tempdir().unwrap();
        let there = Arc::new(Recorder::new());
        Network::new(config(dir.path()), there.clone()).unwrap();
        assert!(!there.commands().iter().any(|c| c.contains("type bridge")));
        let gone = Arc::new(Recorder::new());
        gone.fail("ip link show rk8st0", 19);
        Network::new(config(dir.path()), gone.clone()).unwrap();
        let commands = gone.commands();
        assert_eq!(
            &commands[..4],
            [
                "ip link show rk8st0",
                "ip link add rk8st0 type bridge",
                "ip addr replace 10.99.0.1/24 dev rk8st0",
                "ip link set rk8st0 up",
            ]
        );
    }

    #[test]
    fn veth_names_fit_in_an_interface_name() {
        let name = veth_name("0f8c2b8e-1d2a-4c55-9a5e-7f1d1f0c9a11");
        assert_eq!(name.len(), 12);
        assert_eq!(name, veth_name("0f8c2b8e-1d2a-4c55-9a5e-7f1d1f0c9a11"));
        assert_ne!(name, veth_name("other"));
    }
}

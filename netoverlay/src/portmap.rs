//! Host-port mappings (`hostPort`, Compose `ports: "8080:80"`) as nftables DNAT rules in
//! the `ip rk8s` table, tagged with the pod that owns them so they are found and
//! removed again after any restart.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::host::Host;

/// The nftables table every rk8s rule lives in.
pub const TABLE: &str = "rk8s";
const HOSTPORTS: &str = "hostports";

/// tcp or udp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (the default, as in Kubernetes).
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// One host port forwarded to a port of a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// The port on the host.
    pub host_port: u16,
    /// The port in the pod.
    pub container_port: u16,
    /// tcp or udp.
    pub protocol: Protocol,
}

/// The table with its chains; `add table`/`add chain` are no-ops when they exist.
pub(crate) fn ensure_table(host: &dyn Host) -> Result<()> {
    let script = format!(
        "add table ip {TABLE}\n\
         add chain ip {TABLE} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}\n\
         add chain ip {TABLE} output {{ type nat hook output priority -100; policy accept; }}\n\
         add chain ip {TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
         add chain ip {TABLE} {HOSTPORTS}\n"
    );
    host.run("nft", &["-f", "-"], Some(&script))?;
    for chain in ["prerouting", "output"] {
        let rule = "fib daddr type local jump hostports";
        if !rules(host, chain)?.iter().any(|r| r.comment == "hostports") {
            host.run(
                "nft",
                &["-f", "-"],
                Some(&format!(
                    "add rule ip {TABLE} {chain} {rule} comment \"hostports\"\n"
                )),
            )?;
        }
    }
    Ok(())
}

/// Adds the mappings of `owner` to `address`, refusing a port that another pod or a
/// host process already has.
pub(crate) fn add(
    host: &dyn Host,
    owner: &str,
    address: Ipv4Addr,
    mappings: &[PortMapping],
) -> Result<()> {
    // Most pods map no port: nothing to check, and no `nft` to start.
    if mappings.is_empty() {
        return Ok(());
    }
    let existing = rules(host, HOSTPORTS)?;
    for m in mappings {
        let tag = port_tag(m);
        if let Some(rule) = existing.iter().find(|r| r.comment.ends_with(&tag)) {
            let other = rule.comment.split(' ').next().unwrap_or_default();
            if other != format!("pod:{owner}") {
                return Err(Error::PortTaken {
                    port: m.host_port,
                    protocol: m.protocol.to_string(),
                    owner: other.trim_start_matches("pod:").to_string(),
                });
            }
            continue;
        }
        if host.port_in_use(m.host_port, m.protocol == Protocol::Udp) {
            return Err(Error::PortTaken {
                port: m.host_port,
                protocol: m.protocol.to_string(),
                owner: "another process on this host".to_string(),
            });
        }
    }
    let mut script = String::new();
    for m in mappings {
        let tag = port_tag(m);
        if existing.iter().any(|r| r.comment.ends_with(&tag)) {
            continue;
        }
        script.push_str(&format!(
            "add rule ip {TABLE} {HOSTPORTS} {proto} dport {port} dnat to {address}:{target} comment \"pod:{owner} {tag}\"\n",
            proto = m.protocol,
            port = m.host_port,
            target = m.container_port,
        ));
    }
    if !script.is_empty() {
        host.run("nft", &["-f", "-"], Some(&script))?;
    }
    Ok(())
}

/// Removes every mapping of `owner`.
pub(crate) fn remove(host: &dyn Host, owner: &str) -> Result<()> {
    let prefix = format!("pod:{owner} ");
    delete_where(host, HOSTPORTS, |comment| comment.starts_with(&prefix))
}

/// Deletes the rules of `chain` whose comment matches.
pub(crate) fn delete_where(
    host: &dyn Host,
    chain: &str,
    matches: impl Fn(&str) -> bool,
) -> Result<()> {
    let mut script = String::new();
    for rule in rules(host, chain)? {
        if matches(&rule.comment) {
            script.push_str(&format!(
                "delete rule ip {TABLE} {chain} handle {}\n",
                rule.handle
            ));
        }
    }
    if !script.is_empty() {
        host.run("nft", &["-f", "-"], Some(&script))?;
    }
    Ok(())
}

fn port_tag(m: &PortMapping) -> String {
    format!("port:{}/{}", m.protocol, m.host_port)
}

/// A rule of a chain: its handle and comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub handle: u64,
    pub comment: String,
}

/// The rules of `chain` in the rk8s table (none when the table does not exist).
pub(crate) fn rules(host: &dyn Host, chain: &str) -> Result<Vec<Rule>> {
    let out = match host.run("nft", &["-j", "list", "chain", "ip", TABLE, chain], None) {
        Ok(out) => out,
        Err(Error::Command { stderr, .. }) if stderr.contains("No such file") => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    parse_rules(&out)
}

fn parse_rules(json: &str) -> Result<Vec<Rule>> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| Error::NftOutput(e.to_string()))?;
    let items = value
        .get("nftables")
        .and_then(|v| v.as_array())
        .ok_or_else(|| Error::NftOutput("no \"nftables\" array".to_string()))?;
    Ok(items
        .iter()
        .filter_map(|item| item.get("rule"))
        .filter_map(|rule| {
            Some(Rule {
                handle: rule.get("handle")?.as_u64()?,
                comment: rule
                    .get("comment")
                    .and_then(|c| c.as_str())
                    .unwrap_or_default()
                    .to_string(),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Recorder;

    const LISTING: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
      {"chain": {"family": "ip", "table": "rk8s", "name": "hostports", "handle": 5}},
      {"rule": {"family": "ip", "table": "rk8s", "chain": "hostports", "handle": 9,
                "comment": "pod:web-1 port:tcp/8080", "expr": []}}]}"#;

    #[test]
    fn a_port_of_another_pod_is_refused_with_its_owner() {
        let host = Recorder::new();
        host.answer("nft -j list chain ip rk8s hostports", LISTING);
        let m = PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
        };
        let err = add(&host, "web-2", "10.88.0.3".parse().unwrap(), &[m]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "host port 8080/tcp is already in use by web-1"
        );
        // The owner itself may apply its mapping again: nothing is added twice.
        add(&host, "web-1", "10.88.0.2".parse().unwrap(), &[m]).unwrap();
        assert!(!host.commands().iter().any(|c| c.contains("dnat")));
    }

    #[test]
    fn a_port_bound_by_a_host_process_is_refused() {
        let host = Recorder::new().with_bound_ports(&[9090]);
        let m = PortMapping {
            host_port: 9090,
            container_port: 80,
            protocol: Protocol::Tcp,
        };
        let err = add(&host, "p", "10.88.0.3".parse().unwrap(), &[m]).unwrap_err();
        assert!(err.to_string().contains("another process on this host"));
    }

    #[test]
    fn mappings_become_tagged_dnat_rules_and_are_removed_by_owner() {
        let host = Recorder::new();
        let m = PortMapping {
            host_port: 8081,
            container_port: 80,
            protocol: Protocol::Udp,
        };
        add(&host, "p1", "10.88.0.4".parse().unwrap(), &[m]).unwrap();
        assert!(host.commands().iter().any(|c| c.ends_with(
            "add rule ip rk8s hostports udp dport 8081 dnat to 10.88.0.4:80 comment \"pod:p1 port:udp/8081\""
        )));
        host.answer(
            "nft -j list chain ip rk8s hostports",
            &LISTING.replace("web-1", "p1"),
        );
        remove(&host, "p1").unwrap();
        assert!(
            host.commands()
                .iter()
                .any(|c| c.ends_with("delete rule ip rk8s hostports handle 9"))
        );
    }
}

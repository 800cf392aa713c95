//! NetworkPolicy of a node, in nftables (the table `ip rk8s-netpol`).
//!
//! Packets are judged on two base chains of the `forward` hook and one of `input`:
//! `egress` (priority -5) sends a new connection from an egress-isolated local pod
//! to its policies' `out/…` chain, `ingress` (priority 0) one to an
//! ingress-isolated local pod to its `in/…` chain, and `egress-local` judges what a
//! pod sends to the node itself (its DNS at the gateway). An `accept` ends only its
//! own base chain, so a connection between two pods of this node is judged by both
//! without marks. Replies of allowed connections pass (`ct state
//! established,related`), the node's own traffic to its pods does not cross
//! `forward` (kube: "traffic from the pod's local node" is always allowed), and
//! traffic between pods of one node is seen here because the agent turns on
//! `nf_call_iptables` on its bridge (br_netfilter). [`rules`] lays out the chains
//! and sets.
//!
//! As the Service proxy ([`crate::services`]), the first [`PolicyProxy::sync`]
//! writes the whole table in one transaction (replacing a previous run's table
//! atomically, so a restarted agent leaves no allow-all window); every later one
//! writes only the elements, sets and chains that changed, again in one
//! transaction. A failed transaction makes the next sync a full one.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::error::Result;
use crate::host::Host;

pub mod rules;

pub use rules::{Program, compile};

/// The table of NetworkPolicy.
pub const TABLE: &str = "rk8s-netpol";

/// The base of the table: maps, the `self` set and the hooked chains.
fn base() -> String {
    format!(
        "table ip {TABLE} {{\n\
         \x20 map ingress-pods {{ type ipv4_addr : verdict; }}\n\
         \x20 map egress-pods {{ type ipv4_addr : verdict; }}\n\
         \x20 set self {{ type ipv4_addr . ipv4_addr; }}\n\
         \x20 chain egress {{\n\
         \x20   type filter hook forward priority -5; policy accept;\n\
         \x20   ct state established,related accept\n\
         \x20   ip saddr . ip daddr @self accept\n\
         \x20   ip saddr vmap @egress-pods\n\
         \x20 }}\n\
         \x20 chain egress-local {{\n\
         \x20   type filter hook input priority -5; policy accept;\n\
         \x20   ct state established,related accept\n\
         \x20   ip saddr vmap @egress-pods\n\
         \x20 }}\n\
         \x20 chain ingress {{\n\
         \x20   type filter hook forward priority 0; policy accept;\n\
         \x20   ct state established,related accept\n\
         \x20   ip saddr . ip daddr @self accept\n\
         \x20   ip daddr vmap @ingress-pods\n\
         \x20 }}\n\
         }}\n"
    )
}

/// What one sync changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    /// Whether the whole table was written.
    pub full: bool,
    /// Commands in the transaction (0: nothing to do).
    pub commands: usize,
}

/// The NetworkPolicy table of this node: what it has programmed, and the host.
pub struct PolicyProxy {
    host: Box<dyn Host>,
    programmed: Option<Program>,
}

impl std::fmt::Debug for PolicyProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyProxy")
            .field("programmed", &self.programmed.is_some())
            .finish_non_exhaustive()
    }
}

impl PolicyProxy {
    /// A proxy writing through `host`; nothing is written before the first sync.
    pub fn new(host: impl Host + 'static) -> Self {
        PolicyProxy {
            host: Box::new(host),
            programmed: None,
        }
    }

    /// Programs exactly `program`.
    pub fn sync(&mut self, program: Program) -> Result<Synced> {
        let full = self.programmed.is_none();
        let mut script = Script::default();
        let empty = Program::default();
        script.diff(self.programmed.as_ref().unwrap_or(&empty), &program);
        let commands = script.len();
        let mut text = String::new();
        if full {
            let _ = writeln!(text, "add table ip {TABLE}\ndelete table ip {TABLE}");
            text.push_str(&base());
        }
        script.write(&mut text);
        if (full || commands > 0)
            && let Err(e) = self.host.run("nft", &["-f", "-"], Some(&text))
        {
            self.programmed = None;
            return Err(e);
        }
        self.programmed = Some(program);
        Ok(Synced { full, commands })
    }

    /// Removes the table (the agent's `reset`).
    pub fn remove(&mut self) -> Result<()> {
        self.programmed = None;
        crate::host::delete_nft_table(self.host.as_ref(), TABLE)
    }
}

/// The commands of one transaction, by phase: map elements naming a chain go before
/// the chain, a chain is emptied before the sets its rules name go, and what a rule
/// or element names exists before it is added.
#[derive(Debug, Default)]
struct Script {
    delete_map_elements: Vec<String>,
    delete_set_elements: Vec<String>,
    flush_chains: Vec<String>,
    delete_chains: Vec<String>,
    delete_sets: Vec<String>,
    add_sets: Vec<String>,
    add_set_elements: Vec<String>,
    add_chains: Vec<String>,
    add_rules: Vec<String>,
    add_map_elements: Vec<String>,
}

/// Elements in lines of at most this many, so no command line grows without bound.
const ELEMENTS_PER_COMMAND: usize = 512;

impl Script {
    fn len(&self) -> usize {
        [
            &self.delete_map_elements,
            &self.delete_set_elements,
            &self.flush_chains,
            &self.delete_chains,
            &self.delete_sets,
            &self.add_sets,
            &self.add_set_elements,
            &self.add_chains,
            &self.add_rules,
            &self.add_map_elements,
        ]
        .iter()
        .map(|v| v.len())
        .sum()
    }

    fn elements(out: &mut Vec<String>, verb: &str, set: &str, items: &[String]) {
        for chunk in items.chunks(ELEMENTS_PER_COMMAND) {
            out.push(format!(
                "{verb} element ip {TABLE} {set} {{ {} }}",
                chunk.join(", ")
            ));
        }
    }

    fn diff(&mut self, old: &Program, new: &Program) {
        for (map, o, n) in [
            ("ingress-pods", &old.ingress, &new.ingress),
            ("egress-pods", &old.egress, &new.egress),
        ] {
            let gone: Vec<String> = o
                .iter()
                .filter(|(ip, chain)| n.get(ip) != Some(chain))
                .map(|(ip, _)| ip.to_string())
                .collect();
            Self::elements(&mut self.delete_map_elements, "delete", map, &gone);
            let added: Vec<String> = n
                .iter()
                .filter(|(ip, chain)| o.get(ip) != Some(chain))
                .map(|(ip, chain)| format!("{ip} : jump {chain}"))
                .collect();
            Self::elements(&mut self.add_map_elements, "add", map, &added);
        }
        let pair = |ip: &std::net::Ipv4Addr| format!("{ip} . {ip}");
        let gone: Vec<String> = old.local.difference(&new.local).map(pair).collect();
        Self::elements(&mut self.delete_set_elements, "delete", "self", &gone);
        let added: Vec<String> = new.local.difference(&old.local).map(pair).collect();
        Self::elements(&mut self.add_set_elements, "add", "self", &added);
        for (chain, rules) in &old.chains {
            match new.chains.get(chain) {
                Some(r) if r == rules => {}
                still => {
                    self.flush_chains
                        .push(format!("flush chain ip {TABLE} {chain}"));
                    if still.is_none() {
                        self.delete_chains
                            .push(format!("delete chain ip {TABLE} {chain}"));
                    }
                }
            }
        }
        let empty = BTreeSet::new();
        for (name, set) in &old.sets {
            match new.sets.get(name) {
                Some(s) if s.kind == set.kind => {
                    let gone: Vec<String> = set.elements.difference(&s.elements).cloned().collect();
                    Self::elements(&mut self.delete_set_elements, "delete", name, &gone);
                }
                _ => self
                    .delete_sets
                    .push(format!("delete set ip {TABLE} {name}")),
            }
        }
        for (name, set) in &new.sets {
            let before = match old.sets.get(name) {
                Some(s) if s.kind == set.kind => &s.elements,
                _ => {
                    self.add_sets.push(format!(
                        "add set ip {TABLE} {name} {{ {} comment \"{}\"; }}",
                        set.kind.declaration(),
                        comment(&set.comment)
                    ));
                    &empty
                }
            };
            let added: Vec<String> = set.elements.difference(before).cloned().collect();
            Self::elements(&mut self.add_set_elements, "add", name, &added);
        }
        for (chain, rules) in &new.chains {
            match old.chains.get(chain) {
                Some(r) if r == rules => {}
                before => {
                    if before.is_none() {
                        self.add_chains
                            .push(format!("add chain ip {TABLE} {chain}"));
                    }
                    for rule in rules {
                        self.add_rules
                            .push(format!("add rule ip {TABLE} {chain} {rule}"));
                    }
                }
            }
        }
    }

    fn write(self, s: &mut String) {
        for line in [
            self.delete_map_elements,
            self.delete_set_elements,
            self.flush_chains,
            self.delete_chains,
            self.delete_sets,
            self.add_sets,
            self.add_set_elements,
            self.add_chains,
            self.add_rules,
            self.add_map_elements,
        ]
        .into_iter()
        .flatten()
        {
            let _ = writeln!(s, "{line}");
        }
    }
}

/// A comment nft accepts: at most 128 bytes, no quotes.
pub(crate) fn comment(text: &str) -> String {
    let clean: String = text.chars().filter(|c| *c != '"' && *c != '\\').collect();
    let mut end = clean.len().min(120);
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    clean[..end].to_string()
}

#[cfg(test)]
mod tests;

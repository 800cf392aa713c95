//! Networking: Ingresses, IngressClasses and NetworkPolicies (networking/v1
//! validation) and EndpointSlices (discovery/v1).

use std::collections::HashSet;
use std::net::IpAddr;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{
    IPBlock, Ingress, IngressBackend, IngressClass, NetworkPolicy, NetworkPolicyPeer,
    NetworkPolicyPort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Errors, meta, pod::PROTOCOLS};
use crate::names;
use crate::path::FieldPath;

const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];
/// What an Exact or Prefix path may not contain, and may not end with.
const INVALID_PATH_SEQUENCES: &[&str] = &["//", "/./", "/../", "%2f", "%2F"];
const INVALID_PATH_SUFFIXES: &[&str] = &["/..", "/."];
/// The most addresses an endpoint, and endpoints an EndpointSlice, may have.
const MAX_ADDRESSES: usize = 100;
const MAX_ENDPOINTS: usize = 1000;

/// A host name that may start with `*.` (Ingress rules and TLS hosts).
fn wildcard_host(errs: &mut Errors, path: &FieldPath, host: &str) {
    if host.parse::<IpAddr>().is_ok() {
        errs.invalid(path, host, "must be a DNS name, not an IP address");
        return;
    }
    if let Some(rest) = host.strip_prefix("*.") {
        if !names::dns1123_subdomain(rest).is_empty() {
            errs.invalid(
                path,
                host,
                "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com')",
            );
        }
    } else {
        errs.syntax(path, host, names::dns1123_subdomain(host));
    }
}

fn backend(errs: &mut Errors, path: &FieldPath, b: &IngressBackend) {
    match (&b.resource, &b.service) {
        (Some(_), Some(_)) => {
            errs.invalid(path, "", "cannot set both resource and service backends")
        }
        (Some(r), None) => {
            let p = path.key("resource");
            if r.kind.is_empty() {
                errs.required(&p.key("kind"));
            }
            if r.name.is_empty() {
                errs.required(&p.key("name"));
            }
        }
        (None, Some(s)) => {
            let p = path.key("service");
            if s.name.is_empty() {
                errs.required(&p.key("name"));
            } else {
                errs.syntax(&p.key("name"), &s.name, names::dns1123_label(&s.name));
            }
            let port = s.port.clone().unwrap_or_default();
            let name = port.name.filter(|n| !n.is_empty());
            let number = port.number.filter(|n| *n != 0);
            match (name, number) {
                (Some(_), Some(_)) => errs.invalid(
                    &p.key("port"),
                    "",
                    "cannot set both port name & port number",
                ),
                (Some(n), None) => {
                    errs.syntax(&p.key("port").key("name"), &n, names::iana_svc_name(&n));
                }
                (None, Some(n)) => errs.port(&p.key("port").key("number"), n),
                (None, None) => errs.message(
                    &p.key("port"),
                    "required value: port name or port number is required",
                ),
            }
        }
        (None, None) => errs.invalid(path, "", "resource or service backend is required"),
    }
}

pub(super) fn ingress(errs: &mut Errors, ing: &Ingress) {
    let path = FieldPath::root().key("spec");
    let Some(spec) = &ing.spec else {
        return errs.required(&path);
    };
    let rules = spec.rules.as_deref().unwrap_or_default();
    match &spec.default_backend {
        Some(b) => backend(errs, &path.key("defaultBackend"), b),
        None if rules.is_empty() => errs.invalid(
            &path.key("rules"),
            "[]",
            "either `defaultBackend` or `rules` must be specified",
        ),
        None => {}
    }
    if let Some(class) = &spec.ingress_class_name {
        errs.syntax(
            &path.key("ingressClassName"),
            class,
            names::dns1123_subdomain(class),
        );
    }
    for (i, rule) in rules.iter().enumerate() {
        let p = path.key("rules").index(i);
        if let Some(host) = rule.host.as_deref().filter(|h| !h.is_empty()) {
            wildcard_host(errs, &p.key("host"), host);
        }
        let Some(http) = &rule.http else { continue };
        let paths_path = p.key("http").key("paths");
        if http.paths.is_empty() {
            errs.required(&paths_path);
        }
        for (j, hp) in http.paths.iter().enumerate() {
            let pp = paths_path.index(j);
            let value = hp.path.as_deref().unwrap_or_default();
            match hp.path_type.as_str() {
                "" => errs.message(
                    &pp.key("pathType"),
                    "required value: pathType must be specified",
                ),
                "Exact" | "Prefix" => {
                    if !value.starts_with('/') {
                        errs.invalid(&pp.key("path"), value, "must be an absolute path");
                    }
                    for seq in INVALID_PATH_SEQUENCES {
                        if value.contains(seq) {
                            errs.invalid(
                                &pp.key("path"),
                                value,
                                format!("must not contain '{seq}'"),
                            );
                        }
                    }
                    for suffix in INVALID_PATH_SUFFIXES {
                        if value.ends_with(suffix) {
                            errs.invalid(
                                &pp.key("path"),
                                value,
                                format!("cannot end with '{suffix}'"),
                            );
                        }
                    }
                }
                "ImplementationSpecific" => {
                    if !value.is_empty() && !value.starts_with('/') {
                        errs.invalid(&pp.key("path"), value, "must be an absolute path");
                    }
                }
                other => errs.one_of(&pp.key("pathType"), other, PATH_TYPES),
            }
            backend(errs, &pp.key("backend"), &hp.backend);
        }
    }
    for (i, tls) in spec.tls.iter().flatten().enumerate() {
        let p = path.key("tls").index(i);
        for (j, host) in tls.hosts.iter().flatten().enumerate() {
            wildcard_host(errs, &p.key("hosts").index(j), host);
        }
        if let Some(secret) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) {
            errs.syntax(
                &p.key("secretName"),
                secret,
                names::dns1123_subdomain(secret),
            );
        }
    }
}

pub(super) fn ingress_class(errs: &mut Errors, ic: &IngressClass) {
    let path = FieldPath::root().key("spec");
    let Some(spec) = &ic.spec else { return };
    match spec.controller.as_deref().unwrap_or_default() {
        "" => errs.required(&path.key("controller")),
        c if c.len() > 250 => {
            errs.message(
                &path.key("controller"),
                "too long: may not be more than 250 bytes",
            );
        }
        c => {
            let ok = c.split_once('/').is_some_and(|(domain, rest)| {
                names::dns1123_subdomain(domain).is_empty() && !rest.is_empty()
            });
            if !ok {
                errs.invalid(
                    &path.key("controller"),
                    c,
                    "must be a domain-prefixed path (such as \"acme.io/foo\")",
                );
            }
        }
    }
    let Some(params) = &spec.parameters else {
        return;
    };
    let p = path.key("parameters");
    if params.kind.is_empty() {
        errs.required(&p.key("kind"));
    }
    if params.name.is_empty() {
        errs.required(&p.key("name"));
    }
    if let Some(group) = params.api_group.as_deref().filter(|g| !g.is_empty()) {
        errs.syntax(&p.key("apiGroup"), group, names::dns1123_subdomain(group));
    }
    let namespace = params.namespace.as_deref().filter(|n| !n.is_empty());
    match params.scope.as_deref().unwrap_or("Cluster") {
        "Namespace" if namespace.is_none() => errs.message(
            &p.key("namespace"),
            "required value: `parameters.scope` is set to 'Namespace'",
        ),
        "Namespace" => {}
        "Cluster" if namespace.is_some() => errs.forbidden(
            &p.key("namespace"),
            "`parameters.scope` is set to 'Cluster'",
        ),
        "Cluster" => {}
        other => errs.one_of(&p.key("scope"), other, &["Cluster", "Namespace"]),
    }
}

/// A parsed CIDR: the network's address bits (IPv4 mapped into the low 32 bits) and
/// its prefix length.
#[derive(Clone, Copy)]
struct Cidr {
    v6: bool,
    bits: u128,
    prefix: u32,
}

impl Cidr {
    fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = s.split_once('/')?;
        let prefix: u32 = prefix.parse().ok()?;
        match addr.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) if prefix <= 32 => Some(Cidr {
                v6: false,
                bits: u128::from(u32::from(a)),
                prefix,
            }),
            IpAddr::V6(a) if prefix <= 128 => Some(Cidr {
                v6: true,
                bits: u128::from(a),
                prefix,
            }),
            _ => None,
        }
    }

    fn width(&self) -> u32 {
        if self.v6 { 128 } else { 32 }
    }

    /// The network's first address, as bits.
    fn network(&self) -> u128 {
        let host_bits = self.width() - self.prefix;
        if host_bits >= 128 {
            0
        } else {
            (self.bits >> host_bits) << host_bits
        }
    }

    /// Whether `other` is a strict subset of this range.
    fn strictly_contains(&self, other: &Cidr) -> bool {
        if self.v6 != other.v6 || other.prefix <= self.prefix {
            return false;
        }
        let shifted = Cidr {
            prefix: self.prefix,
            ..*other
        };
        shifted.network() == self.network()
    }
}

fn ip_block(errs: &mut Errors, path: &FieldPath, block: &IPBlock) {
    if block.cidr.is_empty() {
        return errs.required(&path.key("cidr"));
    }
    let Some(cidr) = Cidr::parse(&block.cidr) else {
        return errs.invalid(
            &path.key("cidr"),
            &block.cidr,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        );
    };
    for (i, except) in block.except.iter().flatten().enumerate() {
        let p = path.key("except").index(i);
        match Cidr::parse(except) {
            None => errs.invalid(
                &p,
                except,
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ),
            Some(e) if !cidr.strictly_contains(&e) => {
                errs.invalid(&p, except, "must be a strict subset of `cidr`");
            }
            Some(_) => {}
        }
    }
}

fn peer(errs: &mut Errors, path: &FieldPath, peer: &NetworkPolicyPeer) {
    let mut count = 0;
    if let Some(s) = &peer.pod_selector {
        count += 1;
        meta::label_selector(errs, &path.key("podSelector"), s);
    }
    if let Some(s) = &peer.namespace_selector {
        count += 1;
        meta::label_selector(errs, &path.key("namespaceSelector"), s);
    }
    if let Some(b) = &peer.ip_block {
        count += 1;
        ip_block(errs, &path.key("ipBlock"), b);
    }
    if count == 0 {
        errs.message(path, "required value: must specify a peer");
    } else if count > 1 && peer.ip_block.is_some() {
        errs.forbidden(path, "may not specify both ipBlock and another peer");
    }
}

fn policy_port(errs: &mut Errors, path: &FieldPath, port: &NetworkPolicyPort) {
    errs.opt_one_of(&path.key("protocol"), port.protocol.as_ref(), PROTOCOLS);
    let end = path.key("endPort");
    match (&port.port, port.end_port) {
        (Some(IntOrString::Int(n)), end_port) => {
            errs.port(&path.key("port"), *n);
            if let Some(e) = end_port {
                if e < *n {
                    errs.invalid(&end, e, "must be greater than or equal to `port`");
                }
                errs.port(&end, e);
            }
        }
        (Some(IntOrString::String(name)), end_port) => {
            if let Some(e) = end_port {
                errs.invalid(&end, e, "may not be specified when `port` is non-numeric");
            }
            errs.syntax(&path.key("port"), name, names::iana_svc_name(name));
        }
        (None, Some(e)) => {
            errs.invalid(&end, e, "may not be specified when `port` is not specified");
        }
        (None, None) => {}
    }
}

pub(super) fn network_policy(errs: &mut Errors, np: &NetworkPolicy) {
    let path = FieldPath::root().key("spec");
    let Some(spec) = &np.spec else { return };
    if let Some(s) = &spec.pod_selector {
        meta::label_selector(errs, &path.key("podSelector"), s);
    }
    for (i, rule) in spec.ingress.iter().flatten().enumerate() {
        let p = path.key("ingress").index(i);
        for (j, port) in rule.ports.iter().flatten().enumerate() {
            policy_port(errs, &p.key("ports").index(j), port);
        }
        for (j, from) in rule.from.iter().flatten().enumerate() {
            peer(errs, &p.key("from").index(j), from);
        }
    }
    for (i, rule) in spec.egress.iter().flatten().enumerate() {
        let p = path.key("egress").index(i);
        for (j, port) in rule.ports.iter().flatten().enumerate() {
            policy_port(errs, &p.key("ports").index(j), port);
        }
        for (j, to) in rule.to.iter().flatten().enumerate() {
            peer(errs, &p.key("to").index(j), to);
        }
    }
    let types = spec.policy_types.as_deref().unwrap_or_default();
    for (i, t) in types.iter().enumerate() {
        errs.one_of(&path.key("policyTypes").index(i), t, &["Ingress", "Egress"]);
    }
    if types.len() > 2 {
        errs.invalid(
            &path.key("policyTypes"),
            types.join(", "),
            "may not specify more than two policyTypes",
        );
    }
}

pub(super) fn endpoint_slice(errs: &mut Errors, es: &EndpointSlice) {
    let root = FieldPath::root();
    let kind = es.address_type.as_str();
    if kind.is_empty() {
        errs.required(&root.key("addressType"));
    } else {
        errs.one_of(&root.key("addressType"), kind, &["IPv4", "IPv6", "FQDN"]);
    }
    if es.endpoints.len() > MAX_ENDPOINTS {
        errs.message(
            &root.key("endpoints"),
            format!(
                "too many: {}: must have at most {MAX_ENDPOINTS} items",
                es.endpoints.len()
            ),
        );
    }
    for (i, ep) in es.endpoints.iter().enumerate() {
        let p = root.key("endpoints").index(i);
        if ep.addresses.is_empty() {
            errs.message(
                &p.key("addresses"),
                "required value: must contain at least 1 address",
            );
        } else if ep.addresses.len() > MAX_ADDRESSES {
            errs.message(
                &p.key("addresses"),
                format!(
                    "too many: {}: must have at most {MAX_ADDRESSES} items",
                    ep.addresses.len()
                ),
            );
        }
        for (j, addr) in ep.addresses.iter().enumerate() {
            let ap = p.key("addresses").index(j);
            match kind {
                "IPv4" if !addr.parse::<IpAddr>().is_ok_and(|a| a.is_ipv4()) => {
                    errs.invalid(&ap, addr, "must be a valid IPv4 address");
                }
                "IPv6" if !addr.parse::<IpAddr>().is_ok_and(|a| a.is_ipv6()) => {
                    errs.invalid(&ap, addr, "must be a valid IPv6 address");
                }
                "FQDN" => errs.syntax(&ap, addr, names::dns1123_subdomain(addr)),
                _ => {}
            }
        }
        if let Some(node) = ep.node_name.as_deref().filter(|n| !n.is_empty()) {
            errs.syntax(&p.key("nodeName"), node, names::dns1123_subdomain(node));
        }
        if let Some(host) = ep.hostname.as_deref().filter(|h| !h.is_empty()) {
            errs.syntax(&p.key("hostname"), host, names::dns1123_label(host));
        }
    }
    let mut port_names = HashSet::new();
    for (i, port) in es.ports.iter().flatten().enumerate() {
        let p = root.key("ports").index(i);
        let name = port.name.as_deref().unwrap_or_default();
        if !name.is_empty() {
            errs.syntax(&p.key("name"), name, names::dns1123_label(name));
        }
        if !port_names.insert(name.to_string()) {
            errs.duplicate(&p.key("name"), name);
        }
        errs.opt_one_of(&p.key("protocol"), port.protocol.as_ref(), PROTOCOLS);
        if let Some(n) = port.port {
            errs.port(&p.key("port"), n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cidr;

    #[test]
    fn except_ranges_must_lie_strictly_inside_the_cidr() {
        let cidr = |s| Cidr::parse(s).unwrap();
        assert!(cidr("10.0.0.0/8").strictly_contains(&cidr("10.1.0.0/16")));
        assert!(!cidr("10.0.0.0/8").strictly_contains(&cidr("10.0.0.0/8")));
        assert!(!cidr("10.0.0.0/8").strictly_contains(&cidr("11.0.0.0/16")));
        assert!(!cidr("10.0.0.0/8").strictly_contains(&cidr("fd00::/64")));
        assert!(cidr("0.0.0.0/0").strictly_contains(&cidr("192.168.0.0/16")));
        assert!(cidr("fd00::/8").strictly_contains(&cidr("fd00:1::/32")));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("10.0.0.0").is_none());
    }
}

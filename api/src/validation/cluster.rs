//! Cluster objects: Namespaces, Nodes, Events, Leases and RuntimeClasses.

use std::collections::HashSet;
use std::net::IpAddr;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Node};
use k8s_openapi::api::node::v1::RuntimeClass;

use super::{Errors, meta, pod};
use crate::names;
use crate::path::FieldPath;

/// Whether `s` is an IP network in CIDR notation (`10.244.1.0/24`).
pub fn is_cidr(s: &str) -> bool {
    let Some((ip, prefix)) = s.split_once('/') else {
        return false;
    };
    match (ip.parse::<IpAddr>(), prefix.parse::<u8>()) {
        (Ok(IpAddr::V4(_)), Ok(p)) => p <= 32,
        (Ok(IpAddr::V6(_)), Ok(p)) => p <= 128,
        _ => false,
    }
}

/// A Namespace's `spec.finalizers`: qualified names, and one without a domain only if
/// it is a standard one (kube's `validateFinalizerName`, `ValidateNamespace`).
pub(super) fn namespace(errs: &mut Errors, ns: &Namespace) {
    let path = FieldPath::root().key("spec").key("finalizers");
    let finalizers = ns.spec.as_ref().and_then(|s| s.finalizers.as_ref());
    for (i, f) in finalizers.into_iter().flatten().enumerate() {
        let p = path.index(i);
        errs.syntax(&p, f, names::qualified_name(f));
        if !f.contains('/') && !crate::finalizers::STANDARD.contains(&f.as_str()) {
            errs.invalid(
                &p,
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            );
        }
    }
}

pub(super) fn node(errs: &mut Errors, node: &Node) {
    let Some(spec) = &node.spec else { return };
    let path = FieldPath::root().key("spec");
    if let Some(cidr) = spec.pod_cidr.as_deref().filter(|c| !c.is_empty())
        && !is_cidr(cidr)
    {
        errs.invalid(
            &path.key("podCIDR"),
            cidr,
            "must be a valid CIDR (e.g. 10.244.1.0/24)",
        );
    }
    for (i, cidr) in spec.pod_cidrs.iter().flatten().enumerate() {
        if !is_cidr(cidr) {
            errs.invalid(
                &path.key("podCIDRs").index(i),
                cidr,
                "must be a valid CIDR (e.g. 10.244.1.0/24)",
            );
        }
    }
    let mut seen = HashSet::new();
    for (i, t) in spec.taints.iter().flatten().enumerate() {
        let p = path.key("taints").index(i);
        if t.key.is_empty() {
            errs.required(&p.key("key"));
        } else {
            errs.syntax(&p.key("key"), &t.key, names::qualified_name(&t.key));
        }
        let value = t.value.as_deref().unwrap_or_default();
        errs.syntax(&p.key("value"), value, names::label_value(value));
        errs.one_of(&p.key("effect"), &t.effect, pod::TAINT_EFFECTS);
        if !seen.insert((t.key.clone(), t.effect.clone())) {
            errs.duplicate(&p, format!("{}:{}", t.key, t.effect));
        }
    }
}

pub(super) fn event(errs: &mut Errors, e: &Event) {
    let path = FieldPath::root().key("involvedObject");
    if e.involved_object.kind.as_deref().unwrap_or("").is_empty() {
        errs.required(&path.key("kind"));
    }
    if e.involved_object.name.as_deref().unwrap_or("").is_empty() {
        errs.required(&path.key("name"));
    }
    errs.opt_one_of(
        &FieldPath::root().key("type"),
        e.type_.as_ref(),
        &["Normal", "Warning"],
    );
}

pub(super) fn lease(errs: &mut Errors, l: &Lease) {
    let Some(spec) = &l.spec else { return };
    let path = FieldPath::root().key("spec");
    errs.at_least(
        &path.key("leaseDurationSeconds"),
        spec.lease_duration_seconds,
        1,
    );
    errs.at_least(&path.key("leaseTransitions"), spec.lease_transitions, 0);
}

pub(super) fn runtime_class(errs: &mut Errors, rc: &RuntimeClass) {
    let path = FieldPath::root().key("handler");
    if rc.handler.is_empty() {
        errs.required(&path);
    } else {
        errs.syntax(&path, &rc.handler, names::dns1123_label(&rc.handler));
    }
    if let Some(overhead) = rc.overhead.as_ref().and_then(|o| o.pod_fixed.as_ref()) {
        for (name, q) in overhead {
            errs.quantity(
                &FieldPath::root()
                    .key("overhead")
                    .key("podFixed")
                    .key(name.clone()),
                q,
            );
        }
    }
    if let Some(s) = &rc.scheduling {
        let p = FieldPath::root().key("scheduling");
        meta::labels(errs, &p.key("nodeSelector"), s.node_selector.as_ref());
        for (i, t) in s.tolerations.iter().flatten().enumerate() {
            pod::toleration(errs, &p.key("tolerations").index(i), t);
        }
    }
}

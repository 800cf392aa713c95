//! Networking kinds: ingresses and ingress classes, network policies, endpoint slices.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass, IngressRule, NetworkPolicy};
use serde_json::Value;

use super::format::{age, format_label_selector, or, with_more};
use super::{AGE, Column, NAME, col};

/// `kubectl get ingresses`.
pub(super) const INGRESS: &[Column] = &[
    NAME,
    col("Class", "string"),
    col("Hosts", "string"),
    col("Address", "string"),
    col("Ports", "string"),
    AGE,
];
/// `kubectl get ingressclasses`.
pub(super) const INGRESS_CLASS: &[Column] = &[
    NAME,
    col("Controller", "string"),
    col("Parameters", "string"),
    AGE,
];
/// `kubectl get networkpolicies`.
pub(super) const NETWORK_POLICY: &[Column] = &[NAME, col("Pod-Selector", "string"), AGE];
/// `kubectl get endpointslices`.
pub(super) const ENDPOINT_SLICE: &[Column] = &[
    NAME,
    col("AddressType", "string"),
    col("Ports", "string"),
    col("Endpoints", "string"),
    AGE,
];

/// The HOSTS cell (`formatHosts`): the first three hosts named by rules, then
/// `+ N more...` counting every further rule; `*` when no rule names a host.
fn hosts(rules: &[IngressRule]) -> String {
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == 3 {
            more = true;
        }
        if let Some(host) = rule.host.as_deref().filter(|h| !more && !h.is_empty()) {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".to_string();
    }
    let shown = list.join(",");
    if more {
        format!("{shown} + {} more...", rules.len() - 3)
    } else {
        shown
    }
}

pub(super) fn ingress(ing: &Ingress, now: Timestamp) -> Vec<Value> {
    let spec = ing.spec.clone().unwrap_or_default();
    let addresses: BTreeSet<String> = ing
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| {
            i.ip.clone()
                .filter(|ip| !ip.is_empty())
                .or_else(|| i.hostname.clone().filter(|h| !h.is_empty()))
        })
        .collect();
    let ports = if spec.tls.as_ref().is_some_and(|t| !t.is_empty()) {
        "80, 443"
    } else {
        "80"
    };
    vec![
        ing.metadata.name.clone().unwrap_or_default().into(),
        spec.ingress_class_name
            .unwrap_or_else(|| "<none>".into())
            .into(),
        hosts(spec.rules.as_deref().unwrap_or_default()).into(),
        addresses.into_iter().collect::<Vec<_>>().join(",").into(),
        ports.into(),
        age(ing.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

/// PARAMETERS of an ingress class: `Kind.group/name`, `<none>` without parameters.
pub(super) fn ingress_class(ic: &IngressClass, now: Timestamp) -> Vec<Value> {
    let spec = ic.spec.clone().unwrap_or_default();
    let parameters = spec.parameters.map_or_else(
        || "<none>".to_string(),
        |p| match p.api_group {
            Some(group) => format!("{}.{group}/{}", p.kind, p.name),
            None => format!("{}/{}", p.kind, p.name),
        },
    );
    vec![
        ic.metadata.name.clone().unwrap_or_default().into(),
        spec.controller.unwrap_or_default().into(),
        parameters.into(),
        age(ic.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

pub(super) fn network_policy(np: &NetworkPolicy, now: Timestamp) -> Vec<Value> {
    let selector = np
        .spec
        .as_ref()
        .and_then(|s| s.pod_selector.clone())
        .unwrap_or_default();
    vec![
        np.metadata.name.clone().unwrap_or_default().into(),
        format_label_selector(Some(&selector)).into(),
        age(np.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

/// A list cell of an endpoint slice (`listWithMoreString`): three items, then
/// `+ N more...`; `<unset>` when empty.
fn slice_list(items: &[String]) -> String {
    or(with_more(items, 3, ","), "<unset>")
}

/// PORTS (numbers, else names, else `*`) and ENDPOINTS (addresses) of a slice.
pub(super) fn endpoint_slice(es: &EndpointSlice, now: Timestamp) -> Vec<Value> {
    let ports: Vec<String> = es
        .ports
        .iter()
        .flatten()
        .map(|p| match (p.port, &p.name) {
            (Some(n), _) => n.to_string(),
            (None, Some(name)) => name.clone(),
            (None, None) => "*".to_string(),
        })
        .collect();
    let addresses: Vec<String> = es
        .endpoints
        .iter()
        .flat_map(|e| e.addresses.iter().cloned())
        .collect();
    vec![
        es.metadata.name.clone().unwrap_or_default().into(),
        es.address_type.clone().into(),
        slice_list(&ports).into(),
        slice_list(&addresses).into(),
        age(es.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

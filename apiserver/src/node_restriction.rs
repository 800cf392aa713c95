//! NodeRestriction, as kube-apiserver's admission plugin of that name
//! (`plugin/pkg/admission/noderestriction`): what a node credential may change of its
//! own Node. Authorization ([`crate::auth`]) already keeps a node to its own objects;
//! this keeps it from steering workloads to itself through the ones it may write.
//!
//! - Labels: a node may set, change or remove only labels outside the `kubernetes.io`
//!   and `k8s.io` namespaces, or those kubelet sets itself (hostname, os, arch,
//!   zone, region, instance type, and the `kubelet.kubernetes.io` and
//!   `node.kubernetes.io` namespaces); never `node-restriction.kubernetes.io/*`,
//!   which admins use to place sensitive workloads, nor `node-role.kubernetes.io/*`.
//! - Taints: set when the node registers (kubelet's `--register-with-taints`), never
//!   changed by the node afterwards: it cannot shed a `NoExecute` taint.
//! - `spec.podCIDR(s)` and `spec.providerID` never change once set, for anyone (that
//!   part is validation, [`node_update_errors`]), and a node registers with the
//!   podCIDR its join gave it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use rk8s_api::path::FieldPath;
use rk8s_api::validation::{FieldError, Reason};

use crate::status::{ApiError, ApiResult};

/// Labels kubelet sets on its own Node (`k8s.io/kubelet/pkg/apis`).
const KUBELET_LABELS: [&str; 11] = [
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
];

/// Label namespaces kubelet may set anything in.
const KUBELET_LABEL_NAMESPACES: [&str; 2] = ["kubelet.kubernetes.io", "node.kubernetes.io"];

/// The namespace no node may label itself in.
const NODE_RESTRICTION_NAMESPACE: &str = "node-restriction.kubernetes.io";

fn namespace(key: &str) -> &str {
    key.split_once('/').map_or("", |(ns, _)| ns)
}

/// Whether `ns` is `domain` or a subdomain of it.
fn within(ns: &str, domain: &str) -> bool {
    ns == domain
        || ns
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// Whether a node may add, change or remove the label `key` on itself.
pub fn node_may_set_label(key: &str) -> bool {
    let ns = namespace(key);
    if within(ns, NODE_RESTRICTION_NAMESPACE) {
        return false;
    }
    let kubernetes = within(ns, "kubernetes.io") || within(ns, "k8s.io");
    let kubelet =
        KUBELET_LABELS.contains(&key) || KUBELET_LABEL_NAMESPACES.iter().any(|k| within(ns, k));
    !kubernetes || kubelet
}

/// The label keys that differ between `a` and `b`, sorted.
fn modified_labels<'a>(
    a: &'a BTreeMap<String, String>,
    b: &'a BTreeMap<String, String>,
) -> Vec<&'a str> {
    let mut keys: Vec<&str> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .chain(b.iter().filter(|(k, v)| a.get(*k) != Some(*v)))
        .map(|(k, _)| k.as_str())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

fn forbidden(node: &str, why: String) -> ApiError {
    ApiError::forbidden(format!("nodes \"{node}\" is forbidden: {why}"))
}

/// Admits a node's create (`old` is `None`) or update of its own Node `new`;
/// `assigned_cidr` is the podCIDR its join gave it, if any.
pub fn admit_node(
    node: &str,
    old: Option<&Node>,
    new: &Node,
    assigned_cidr: Option<&str>,
) -> ApiResult<()> {
    let empty = BTreeMap::new();
    let labels = |n: &'_ Node| n.metadata.labels.clone().unwrap_or_default();
    let new_labels = labels(new);
    let old_labels = old.map(labels);
    let changed = modified_labels(&new_labels, old_labels.as_ref().unwrap_or(&empty));
    let refused: Vec<&str> = changed
        .into_iter()
        .filter(|k| !node_may_set_label(k))
        .collect();
    match old {
        None => {
            if !refused.is_empty() {
                return Err(forbidden(
                    node,
                    format!(
                        "node {node:?} is not allowed to set the following labels: {}",
                        refused.join(", ")
                    ),
                ));
            }
            let spec = new.spec.as_ref();
            let given = spec.and_then(|s| s.pod_cidr.as_deref()).into_iter().chain(
                spec.and_then(|s| s.pod_cidrs.as_deref())
                    .into_iter()
                    .flatten()
                    .map(String::as_str),
            );
            if let Some(assigned) = assigned_cidr
                && let Some(given) = given.into_iter().find(|c| *c != assigned)
            {
                return Err(forbidden(
                    node,
                    format!(
                        "node {node:?} is not allowed to register with podCIDR {given}: its join assigned {assigned}"
                    ),
                ));
            }
        }
        Some(old) => {
            let taints = |n: &Node| {
                n.spec
                    .as_ref()
                    .and_then(|s| s.taints.clone())
                    .unwrap_or_default()
            };
            if taints(new) != taints(old) {
                return Err(forbidden(
                    node,
                    format!("node {node:?} is not allowed to modify taints"),
                ));
            }
            if !refused.is_empty() {
                return Err(forbidden(
                    node,
                    format!("is not allowed to modify labels: {}", refused.join(", ")),
                ));
            }
        }
    }
    Ok(())
}

/// What validation refuses of any Node update: a podCIDR or providerID changed once
/// set (kube-apiserver's `ValidateNodeUpdate`).
pub fn node_update_errors(new: &Node, old: &Node) -> Vec<FieldError> {
    let spec = |n: &Node| n.spec.clone().unwrap_or_default();
    let (new, old) = (spec(new), spec(old));
    let mut errors = Vec::new();
    // `podCIDRs` when set, else the older single `podCIDR`.
    let cidrs = |s: &k8s_openapi::api::core::v1::NodeSpec| {
        s.pod_cidrs
            .clone()
            .filter(|c| !c.is_empty())
            .or_else(|| s.pod_cidr.clone().map(|c| vec![c]))
            .unwrap_or_default()
    };
    let (old_cidrs, new_cidrs) = (cidrs(&old), cidrs(&new));
    if !old_cidrs.is_empty() && old_cidrs != new_cidrs {
        errors.push(FieldError {
            path: FieldPath::parse("spec.podCIDRs"),
            reason: Reason::Forbidden(
                "node updates may not change podCIDR except from \"\" to valid".into(),
            ),
        });
    }
    let old_provider = old.provider_id.unwrap_or_default();
    if !old_provider.is_empty() && new.provider_id.as_deref() != Some(old_provider.as_str()) {
        errors.push(FieldError {
            path: FieldPath::parse("spec.providerID"),
            reason: Reason::Forbidden(
                "node updates may not change providerID except from \"\" to valid".into(),
            ),
        });
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(labels: serde_json::Value, spec: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": "n1", "labels": labels}, "spec": spec}))
            .unwrap()
    }

    #[test]
    fn nodes_set_only_kubelet_labels_in_the_kubernetes_namespaces() {
        for key in [
            "kubernetes.io/hostname",
            "topology.kubernetes.io/zone",
            "node.kubernetes.io/instance-type",
            "sub.node.kubernetes.io/anything",
            "kubelet.kubernetes.io/x",
            "example.com/team",
            "plain",
        ] {
            assert!(node_may_set_label(key), "{key}");
        }
        for key in [
            "node-role.kubernetes.io/control-plane",
            "node-restriction.kubernetes.io/secure",
            "x.node-restriction.kubernetes.io/secure",
            "kubernetes.io/role",
            "k8s.io/anything",
            "sub.k8s.io/anything",
            "example.kubernetes.io/x",
        ] {
            assert!(!node_may_set_label(key), "{key}");
        }
        // A suffix is no subdomain.
        assert!(node_may_set_label("evilnode.kubernetes.io.example.com/x"));
        assert!(node_may_set_label("notk8s.io/x"));
    }

    #[test]
    fn a_node_registers_without_restricted_labels_and_with_its_own_cidr() {
        let ok = node(
            json!({"kubernetes.io/hostname": "n1", "team": "a"}),
            json!({"podCIDR": "10.244.1.0/24", "taints": [{"key": "k", "effect": "NoSchedule"}]}),
        );
        admit_node("n1", None, &ok, Some("10.244.1.0/24")).unwrap();
        let labelled = node(
            json!({"node-role.kubernetes.io/control-plane": "", "node-restriction.kubernetes.io/a": "b"}),
            json!({}),
        );
        let e = admit_node("n1", None, &labelled, None).unwrap_err();
        assert_eq!(e.code, http::StatusCode::FORBIDDEN);
        assert_eq!(
            e.message,
            "nodes \"n1\" is forbidden: node \"n1\" is not allowed to set the following labels: node-restriction.kubernetes.io/a, node-role.kubernetes.io/control-plane"
        );
        for spec in [
            json!({"podCIDR": "10.244.2.0/24"}),
            json!({"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "10.244.2.0/24"]}),
        ] {
            let stolen = node(json!({}), spec);
            let e = admit_node("n1", None, &stolen, Some("10.244.1.0/24")).unwrap_err();
            assert_eq!(
                e.message,
                "nodes \"n1\" is forbidden: node \"n1\" is not allowed to register with podCIDR 10.244.2.0/24: its join assigned 10.244.1.0/24"
            );
        }
    }

    #[test]
    fn a_node_keeps_its_taints_and_admin_labels() {
        let admin_set = node(
            json!({"node-role.kubernetes.io/control-plane": "", "a": "1"}),
            json!({"taints": [{"key": "k", "effect": "NoExecute"}]}),
        );
        // Changing an allowed label and leaving the admin's alone is fine.
        let relabelled = node(
            json!({"node-role.kubernetes.io/control-plane": "", "a": "2"}),
            json!({"taints": [{"key": "k", "effect": "NoExecute"}]}),
        );
        admit_node("n1", Some(&admin_set), &relabelled, None).unwrap();
        let untainted = node(
            json!({"node-role.kubernetes.io/control-plane": "", "a": "1"}),
            json!({}),
        );
        let e = admit_node("n1", Some(&admin_set), &untainted, None).unwrap_err();
        assert_eq!(
            e.message,
            "nodes \"n1\" is forbidden: node \"n1\" is not allowed to modify taints"
        );
        let unroled = node(
            json!({"a": "1"}),
            json!({"taints": [{"key": "k", "effect": "NoExecute"}]}),
        );
        let e = admit_node("n1", Some(&admin_set), &unroled, None).unwrap_err();
        assert_eq!(
            e.message,
            "nodes \"n1\" is forbidden: is not allowed to modify labels: node-role.kubernetes.io/control-plane"
        );
    }

    #[test]
    fn pod_cidrs_and_provider_ids_change_only_from_empty() {
        let before = node(json!({}), json!({}));
        let set = node(
            json!({}),
            json!({"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"], "providerID": "p"}),
        );
        assert!(node_update_errors(&set, &before).is_empty());
        assert!(node_update_errors(&set, &set).is_empty());
        let moved = node(
            json!({}),
            json!({"podCIDR": "10.244.9.0/24", "podCIDRs": ["10.244.9.0/24"], "providerID": "q"}),
        );
        let paths: Vec<String> = node_update_errors(&moved, &set)
            .iter()
            .map(|e| e.path.to_string())
            .collect();
        assert_eq!(paths, ["spec.podCIDRs", "spec.providerID"]);
    }
}

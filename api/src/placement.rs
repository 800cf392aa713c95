//! Where a pod may run: its node selector and required node affinity against a
//! node's labels and name, its tolerations against a node's taints, and the node
//! affinity of the PersistentVolumes it mounts. Shared by the scheduler (its
//! NodeAffinity, TaintToleration and VolumeBinding plugins), the DaemonSet
//! controller, which decides with the same rules which nodes get a daemon pod, and the
//! volume binder; and which StorageClass a claim without one gets (the volume binder
//! and the API server's DefaultStorageClass admission).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm, ObjectReference, PersistentVolume,
    PersistentVolumeClaim, PodSpec, Taint, Toleration,
};

/// The node label naming a node (kubelet sets it to the node's name).
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// Whether a node's labels (and name, for `matchFields`) satisfy a requirement.
#[inline]
fn requirement(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => !value.is_some_and(|v| values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Whether a node matches a term: every expression and every field requirement (an
/// empty term matches nothing, as in Kubernetes).
#[inline]
pub fn term_matches(
    term: &NodeSelectorTerm,
    labels: &BTreeMap<String, String>,
    name: &str,
) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let value = (r.key == "metadata.name").then_some(name);
            requirement(r, value)
        })
}

/// Whether a node of `labels` named `name` satisfies the pod's `nodeSelector` and
/// its required node affinity (Kubernetes' `GetRequiredNodeAffinity(pod).Match`).
#[inline]
pub fn required_affinity_matches(
    spec: &PodSpec,
    labels: &BTreeMap<String, String>,
    name: &str,
) -> bool {
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    selector_ok
        && required.is_none_or(|r| {
            r.node_selector_terms
                .iter()
                .any(|t| term_matches(t, labels, name))
        })
}

/// The `NoExecute` taint of a node whose Ready condition is False.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The `NoExecute` taint of a node whose Ready condition is Unknown: it stopped
/// renewing its Lease.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Whether one toleration tolerates `taint` (Kubernetes' `ToleratesTaint`).
#[inline]
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        // An empty key with Exists tolerates everything.
        "Exists" => true,
        "Equal" | "" => {
            !key.is_empty()
                && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// Whether any of `tolerations` tolerates `taint`.
#[inline]
pub fn tolerated(taint: &Taint, tolerations: &[Toleration]) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The first of `taints` with one of `effects` that `tolerations` do not tolerate
/// (Kubernetes' `FindMatchingUntoleratedTaint`).
#[inline]
pub fn untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    effects: &[&str],
) -> Option<&'a Taint> {
    taints
        .iter()
        .find(|t| effects.contains(&t.effect.as_str()) && !tolerated(t, tolerations))
}

/// Whether a node of `labels` named `name` may mount `pv`: its required node
/// affinity, if any, matches the node (Kubernetes' `CheckNodeAffinity`).
#[inline]
pub fn volume_fits(pv: &PersistentVolume, labels: &BTreeMap<String, String>, name: &str) -> bool {
    let required = pv.spec.as_ref().and_then(|s| s.node_affinity.as_ref());
    let required = required.and_then(|a| a.required.as_ref());
    required.is_none_or(|r| {
        r.node_selector_terms
            .iter()
            .any(|t| term_matches(t, labels, name))
    })
}

/// The one node a local volume lives on: the node its affinity names alone
/// (`kubernetes.io/hostname In [NODE]`, as the local-path provisioner writes it).
pub fn volume_node(pv: &PersistentVolume) -> Option<&str> {
    let required = pv
        .spec
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required
        .as_ref()?;
    let [term] = required.node_selector_terms.as_slice() else {
        return None;
    };
    let [r] = term.match_expressions.as_deref()? else {
        return None;
    };
    let values = r.values.as_deref()?;
    match values {
        [node] if r.key == HOSTNAME_LABEL && r.operator == "In" => Some(node.as_str()),
        _ => None,
    }
}

/// The size a claim asks for, in bytes.
fn requested(claim: &PersistentVolumeClaim) -> u128 {
    let spec = claim.spec.as_ref();
    let resources = spec.and_then(|s| s.resources.as_ref());
    let storage = resources
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"));
    storage.map_or(0, bytes)
}

fn bytes(q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity) -> u128 {
    q.0.parse::<crate::quantity::Quantity>()
        .ok()
        .and_then(|v| u128::try_from(v.value()).ok())
        .unwrap_or(0)
}

/// A volume's size, in bytes.
pub fn volume_capacity(pv: &PersistentVolume) -> u128 {
    let spec = pv.spec.as_ref();
    let storage = spec
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"));
    storage.map_or(0, bytes)
}

/// Whether a volume's `claimRef` names `claim` (its uid too, when it has one).
pub fn names_claim(claim_ref: &ObjectReference, claim: &PersistentVolumeClaim) -> bool {
    claim_ref.name == claim.metadata.name
        && claim_ref.namespace.as_deref().unwrap_or("default")
            == claim.metadata.namespace.as_deref().unwrap_or("default")
        && claim_ref
            .uid
            .as_deref()
            .is_none_or(|u| u.is_empty() || Some(u) == claim.metadata.uid.as_deref())
}

/// Whether `pv` satisfies `claim` wherever it is (Kubernetes'
/// `checkVolumeSatisfyClaim` and the claim's selector): not being deleted, the same
/// class, every access mode, the same volume mode, enough room.
pub fn volume_satisfies(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    use crate::selector::SelectorExt;
    let Some(spec) = pv.spec.as_ref() else {
        return false;
    };
    let cspec = claim.spec.clone().unwrap_or_default();
    let modes_ok = cspec
        .access_modes
        .iter()
        .flatten()
        .all(|m| spec.access_modes.iter().flatten().any(|have| have == m));
    let mode = |m: Option<&String>| m.map_or("Filesystem", String::as_str).to_string();
    let selector_ok = match &cspec.selector {
        None => true,
        Some(s) => crate::selector::label_selector(s)
            .is_ok_and(|s| s.matches(pv.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))),
    };
    pv.metadata.deletion_timestamp.is_none()
        && spec.storage_class_name.as_deref().unwrap_or_default()
            == cspec.storage_class_name.as_deref().unwrap_or_default()
        && modes_ok
        && mode(spec.volume_mode.as_ref()) == mode(cspec.volume_mode.as_ref())
        && volume_capacity(pv) >= requested(claim)
        && selector_ok
}

/// The annotations marking the default StorageClass (GA and beta).
pub const DEFAULT_CLASS_ANNOTATIONS: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

/// Whether a StorageClass is marked the default (`storageutil.IsDefaultAnnotation`).
pub fn is_default_class(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
    let annotations = meta.annotations.as_ref();
    DEFAULT_CLASS_ANNOTATIONS.iter().any(|k| {
        annotations
            .and_then(|a| a.get(*k))
            .is_some_and(|v| v == "true")
    })
}

/// The default StorageClass of `classes`: of those annotated `"true"`, the newest,
/// then the first by name (Kubernetes' `GetDefaultClass`).
pub fn default_storage_class<'a>(
    classes: impl IntoIterator<Item = &'a k8s_openapi::api::storage::v1::StorageClass>,
) -> Option<&'a k8s_openapi::api::storage::v1::StorageClass> {
    classes
        .into_iter()
        .filter(|c| is_default_class(&c.metadata))
        .max_by_key(|c| {
            let created = c.metadata.creation_timestamp.as_ref().map(|t| t.0);
            (created, std::cmp::Reverse(c.metadata.name.clone()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect: effect.into(),
            ..Default::default()
        }
    }

    fn toleration(key: &str, op: &str, value: Option<&str>, effect: Option<&str>) -> Toleration {
        Toleration {
            key: Some(key.into()).filter(|k: &String| !k.is_empty()),
            operator: Some(op.into()),
            value: value.map(Into::into),
            effect: effect.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn tolerations_match_key_value_and_effect() {
        let gpu = taint("gpu", Some("yes"), "NoSchedule");
        assert!(tolerates(
            &toleration("gpu", "Equal", Some("yes"), None),
            &gpu
        ));
        assert!(!tolerates(
            &toleration("gpu", "Equal", Some("no"), None),
            &gpu
        ));
        assert!(tolerates(
            &toleration("gpu", "Exists", None, Some("NoSchedule")),
            &gpu
        ));
        assert!(!tolerates(
            &toleration("gpu", "Exists", None, Some("NoExecute")),
            &gpu
        ));
        // An empty key with Exists tolerates every taint; with Equal, none.
        assert!(tolerates(&toleration("", "Exists", None, None), &gpu));
        assert!(!tolerates(&toleration("", "Equal", None, None), &gpu));
    }

    #[test]
    fn untolerated_looks_only_at_the_effects_asked_for() {
        let taints = [
            taint("soft", None, "PreferNoSchedule"),
            taint("hard", None, "NoExecute"),
        ];
        assert_eq!(
            untolerated(&taints, &[], &["NoSchedule", "NoExecute"]).map(|t| t.key.as_str()),
            Some("hard")
        );
        let tolerate_hard = [toleration("hard", "Exists", None, None)];
        assert!(untolerated(&taints, &tolerate_hard, &["NoSchedule", "NoExecute"]).is_none());
        assert!(untolerated(&taints, &[], &["NoSchedule"]).is_none());
    }

    #[test]
    fn node_selector_and_required_terms_both_hold() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [],
            "nodeSelector": {"zone": "a"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [
                    {"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}},
        }))
        .unwrap_or_default();
        let labels: BTreeMap<String, String> = [("zone".to_string(), "a".to_string())].into();
        assert!(required_affinity_matches(&spec, &labels, "n1"));
        assert!(!required_affinity_matches(&spec, &labels, "n2"));
        assert!(!required_affinity_matches(&spec, &BTreeMap::new(), "n1"));
        // An empty term matches nothing.
        assert!(!term_matches(&NodeSelectorTerm::default(), &labels, "n1"));
    }
}

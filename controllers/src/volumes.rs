//! The PersistentVolume controller's decisions, as kube-controller-manager's
//! persistent volume binder and protection controllers make them, with rk8s' own
//! local-path provisioner:
//!
//! - a claim without a class gets the default StorageClass (retroactive default
//!   assignment); a claim is bound to the smallest Available volume that satisfies
//!   it (class, access modes, volume mode, size, selector; for a class that waits for
//!   its first consumer, only once the scheduler chose a node, and only a volume that
//!   node may mount), or to the volume already naming it; binding writes the volume's
//!   `claimRef` first, then the claim's `volumeName`, then both statuses;
//! - a claim of the `rk8s.io/local-path` provisioner's class with nothing to bind
//!   gets a new volume: a directory on the node the scheduler chose for its first pod
//!   (`hostPath` under the directory the node announces), with node affinity to that
//!   node and the class's reclaim policy;
//! - a volume whose claim is gone is Released; a released volume the provisioner
//!   made and whose policy is Delete is deleted (its node removes the directory);
//! - claims in use by a pod and bound volumes are kept from deletion by the
//!   `kubernetes.io/pvc-protection` and `kubernetes.io/pv-protection` finalizers.
//!
//! Pure: [`decide`] says what to write; the actor writes it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectReference,
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec, Pod, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rk8s_api::placement::{
    HOSTNAME_LABEL, names_claim as names, volume_capacity as capacity, volume_fits,
    volume_satisfies,
};

/// The provisioner name of rk8s' local-path volumes.
pub const LOCAL_PATH: &str = "rk8s.io/local-path";
/// The annotation naming the provisioner that made a volume.
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The annotation the scheduler sets on a waiting claim: the node of its first pod.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// The annotation marking the default StorageClass.
pub const DEFAULT_CLASS: &str = rk8s_api::placement::DEFAULT_CLASS_ANNOTATIONS[0];
/// The node annotation naming the directory local-path volumes are made under.
pub const STORAGE_DIR: &str = "rk8s.io/local-path-dir";
/// Keeps a claim that pods use.
pub const CLAIM_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// Keeps a volume bound to a claim.
pub const VOLUME_PROTECTION: &str = "kubernetes.io/pv-protection";
/// Set on a claim once bound.
pub const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Set on a claim or volume the controller bound.
pub const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";

/// What to write.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Give the claim (`namespace/name`) the default class.
    SetClass {
        /// The claim's key.
        claim: String,
        /// The class.
        class: String,
    },
    /// Bind the claim to the volume.
    Bind {
        /// The claim's key.
        claim: String,
        /// The volume's name.
        volume: String,
    },
    /// Create this volume (already naming its claim).
    Provision(Box<PersistentVolume>),
    /// Write the volume's phase.
    VolumePhase {
        /// The volume's name.
        volume: String,
        /// `Available`, `Bound` or `Released`.
        phase: &'static str,
    },
    /// Delete a released volume.
    DeleteVolume(String),
    /// Add (true) or remove (false) the protection finalizer of a claim.
    ProtectClaim(String, bool),
    /// Add (true) or remove (false) the protection finalizer of a volume.
    ProtectVolume(String, bool),
    /// Say something about a claim (once per reason and message).
    Event {
        /// The claim's key.
        claim: String,
        /// `Normal` or `Warning`.
        type_: &'static str,
        /// The reason.
        reason: &'static str,
        /// The message.
        message: String,
    },
}

/// What the controller sees.
pub struct World<'a> {
    /// Every claim.
    pub claims: &'a [Arc<PersistentVolumeClaim>],
    /// Every volume.
    pub volumes: &'a [Arc<PersistentVolume>],
    /// Every class.
    pub classes: &'a [Arc<StorageClass>],
    /// Every pod.
    pub pods: &'a [Arc<Pod>],
    /// Every node.
    pub nodes: &'a [Arc<Node>],
}

fn key(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref().unwrap_or_default()
    )
}

fn has_finalizer(meta: &ObjectMeta, f: &str) -> bool {
    meta.finalizers.iter().flatten().any(|x| x == f)
}

fn annotation<'a>(meta: &'a ObjectMeta, name: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(name).map(String::as_str)
}

/// The class a claim names ("" for none).
fn class_of(claim: &PersistentVolumeClaim) -> &str {
    let spec = claim.spec.as_ref();
    spec.and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or_default()
}

fn claim_ref(pv: &PersistentVolume) -> Option<&ObjectReference> {
    pv.spec.as_ref()?.claim_ref.as_ref()
}

fn phase(pv: &PersistentVolume) -> Option<&str> {
    pv.status.as_ref()?.phase.as_deref()
}

/// Whether `pv` satisfies `claim`, on `node` when one is given.
fn satisfies(pv: &PersistentVolume, claim: &PersistentVolumeClaim, node: Option<&Node>) -> bool {
    let node_ok = node.is_none_or(|n| {
        let labels = n.metadata.labels.clone().unwrap_or_default();
        volume_fits(pv, &labels, n.metadata.name.as_deref().unwrap_or_default())
    });
    volume_satisfies(pv, claim) && node_ok
}

/// Whether a pod that still runs (or may) uses the claim.
fn in_use(claim: &PersistentVolumeClaim, pods: &[Arc<Pod>]) -> bool {
    let name = claim.metadata.name.as_deref().unwrap_or_default();
    pods.iter().any(|p| {
        let same_ns = p.metadata.namespace == claim.metadata.namespace;
        let done = matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        same_ns
            && !done
            && p.spec
                .as_ref()
                .is_some_and(|s| rk8s_api::references::claims(s).contains(name))
    })
}

/// The volume the local-path provisioner makes for `claim` on `node`.
pub fn local_volume(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    node: &Node,
) -> Result<PersistentVolume, String> {
    let node_name = node.metadata.name.clone().unwrap_or_default();
    let dir = annotation(&node.metadata, STORAGE_DIR).ok_or_else(|| {
        format!("node {node_name:?} has no local-path directory (annotation {STORAGE_DIR})")
    })?;
    let uid = claim.metadata.uid.clone().unwrap_or_default();
    let ns = claim
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = claim.metadata.name.clone().unwrap_or_default();
    let cspec = claim.spec.clone().unwrap_or_default();
    let request = cspec
        .resources
        .and_then(|r| r.requests)
        .and_then(|r| r.get("storage").cloned())
        .ok_or("the claim requests no storage")?;
    let volume_name = format!("pvc-{uid}");
    let path = format!("{}/{volume_name}_{ns}_{name}", dir.trim_end_matches('/'));
    Ok(PersistentVolume {
        metadata: ObjectMeta {
            name: Some(volume_name),
            annotations: Some([(PROVISIONED_BY.to_string(), LOCAL_PATH.to_string())].into()),
            finalizers: Some(vec![VOLUME_PROTECTION.to_string()]),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some([("storage".to_string(), request)].into()),
            access_modes: cspec.access_modes,
            persistent_volume_reclaim_policy: Some(
                class
                    .reclaim_policy
                    .clone()
                    .unwrap_or_else(|| "Delete".into()),
            ),
            storage_class_name: class.metadata.name.clone(),
            volume_mode: cspec.volume_mode,
            mount_options: class.mount_options.clone(),
            host_path: Some(k8s_openapi::api::core::v1::HostPathVolumeSource {
                path,
                type_: Some("DirectoryOrCreate".into()),
            }),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: HOSTNAME_LABEL.into(),
                            operator: "In".into(),
                            values: Some(vec![node_name]),
                        }]),
                        ..Default::default()
                    }],
                }),
            }),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: Some(ns),
                name: Some(name),
                uid: Some(uid),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    })
}

/// What to write about every claim and volume.
pub fn decide(w: &World<'_>) -> Vec<Action> {
    let mut out = Vec::new();
    let volumes: BTreeMap<&str, &PersistentVolume> = w
        .volumes
        .iter()
        .map(|v| (v.metadata.name.as_deref().unwrap_or_default(), v.as_ref()))
        .collect();
    let claims: HashMap<String, &PersistentVolumeClaim> = w
        .claims
        .iter()
        .map(|c| (key(&c.metadata), c.as_ref()))
        .collect();
    // Volumes a decision of this round takes (two claims never get one volume).
    let mut taken: HashSet<&str> = HashSet::new();
    for claim in w.claims {
        decide_claim(w, claim, &volumes, &mut taken, &mut out);
    }
    for pv in w.volumes {
        decide_volume(&claims, pv, &mut out);
    }
    out
}

fn decide_claim<'a>(
    w: &World<'a>,
    claim: &'a PersistentVolumeClaim,
    volumes: &BTreeMap<&'a str, &'a PersistentVolume>,
    taken: &mut HashSet<&'a str>,
    out: &mut Vec<Action>,
) {
    let k = key(&claim.metadata);
    let deleting = claim.metadata.deletion_timestamp.is_some();
    let protected = has_finalizer(&claim.metadata, CLAIM_PROTECTION);
    if deleting {
        if protected && !in_use(claim, w.pods) {
            out.push(Action::ProtectClaim(k, false));
        }
        return;
    }
    if !protected {
        out.push(Action::ProtectClaim(k.clone(), true));
    }
    let spec = claim.spec.as_ref();
    let event = |type_, reason, message: String| Action::Event {
        claim: k.clone(),
        type_,
        reason,
        message,
    };
    let volume_name = spec.and_then(|s| s.volume_name.as_deref());
    if let Some(volume) = volume_name.filter(|v| !v.is_empty()) {
        let Some(pv) = volumes.get(volume) else {
            if annotation(&claim.metadata, BIND_COMPLETED).is_some() {
                let m = "Bound claim has lost its PersistentVolume. Data on the volume is lost!";
                out.push(event("Warning", "ClaimLost", m.into()));
            }
            return;
        };
        match claim_ref(pv) {
            Some(r) if names(r, claim) => {
                let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
                if !bound || r.uid.as_deref().is_none_or(str::is_empty) {
                    out.push(Action::Bind {
                        claim: k,
                        volume: volume.into(),
                    });
                }
            }
            // Bound to the volume the claim names (pre-bound by its author).
            None if satisfies(pv, claim, None) => {
                taken.insert(volume);
                out.push(Action::Bind {
                    claim: k,
                    volume: volume.into(),
                });
            }
            _ => {}
        }
        return;
    }
    // A claim without a class gets the default one, if there is one.
    if spec.and_then(|s| s.storage_class_name.as_ref()).is_none()
        && let Some(default) =
            rk8s_api::placement::default_storage_class(w.classes.iter().map(|c| c.as_ref()))
    {
        let class = default.metadata.name.clone().unwrap_or_default();
        out.push(Action::SetClass { claim: k, class });
        return;
    }
    // A volume already naming the claim.
    if let Some(pv) = w
        .volumes
        .iter()
        .find(|pv| claim_ref(pv).is_some_and(|r| names(r, claim)))
    {
        out.push(Action::Bind {
            claim: k,
            volume: pv.metadata.name.clone().unwrap_or_default(),
        });
        return;
    }
    let class_name = class_of(claim);
    let class = w
        .classes
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(class_name));
    let waits =
        class.is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"));
    let selected = annotation(&claim.metadata, SELECTED_NODE);
    let node = selected.and_then(|n| {
        w.nodes
            .iter()
            .find(|x| x.metadata.name.as_deref() == Some(n))
            .map(|x| x.as_ref())
    });
    if waits && selected.is_none() {
        let m = "waiting for first consumer to be created before binding";
        out.push(event("Normal", "WaitForFirstConsumer", m.into()));
        return;
    }
    // The smallest Available volume that satisfies it.
    let fitting = w
        .volumes
        .iter()
        .filter(|pv| {
            claim_ref(pv).is_none()
                && !taken.contains(pv.metadata.name.as_deref().unwrap_or_default())
        })
        .filter(|pv| satisfies(pv, claim, if waits { node } else { None }))
        .min_by_key(|pv| capacity(pv));
    if let Some(pv) = fitting {
        let name = pv.metadata.name.as_deref().unwrap_or_default();
        taken.insert(name);
        out.push(Action::Bind {
            claim: k,
            volume: name.to_string(),
        });
        return;
    }
    match class {
        None if class_name.is_empty() => {
            let m = "no persistent volumes available for this claim and no storage class is set";
            out.push(event("Normal", "FailedBinding", m.into()));
        }
        None => {
            let m = format!("storageclass.storage.k8s.io \"{class_name}\" not found");
            out.push(event("Warning", "ProvisioningFailed", m));
        }
        Some(c) if c.provisioner != LOCAL_PATH => {
            let m = format!(
                "Waiting for a volume to be created either by the external provisioner '{}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.",
                c.provisioner
            );
            out.push(event("Normal", "ExternalProvisioning", m));
        }
        Some(_) if !waits => {
            let m = format!(
                "the {LOCAL_PATH} provisioner makes a volume on the node of the claim's first pod: its class needs volumeBindingMode WaitForFirstConsumer"
            );
            out.push(event("Warning", "ProvisioningFailed", m));
        }
        Some(c) => match node
            .ok_or_else(|| format!("node {:?} not found", selected.unwrap_or_default()))
            .and_then(|n| local_volume(claim, c, n))
        {
            Ok(pv) => out.push(Action::Provision(Box::new(pv))),
            Err(e) => out.push(event("Warning", "ProvisioningFailed", e)),
        },
    }
}

fn decide_volume(
    claims: &HashMap<String, &PersistentVolumeClaim>,
    pv: &PersistentVolume,
    out: &mut Vec<Action>,
) {
    let name = pv.metadata.name.clone().unwrap_or_default();
    let protected = has_finalizer(&pv.metadata, VOLUME_PROTECTION);
    let claim = claim_ref(pv).and_then(|r| {
        let key = format!(
            "{}/{}",
            r.namespace.as_deref().unwrap_or("default"),
            r.name.as_deref().unwrap_or_default()
        );
        claims.get(&key).copied().filter(|c| names(r, c))
    });
    let want = match (claim_ref(pv), claim) {
        (None, _) => "Available",
        (Some(_), Some(_)) => "Bound",
        // Named by its author for a claim not made yet.
        (Some(r), None) if r.uid.as_deref().is_none_or(str::is_empty) => "Available",
        (Some(_), None) => "Released",
    };
    if pv.metadata.deletion_timestamp.is_some() {
        if protected && want != "Bound" {
            out.push(Action::ProtectVolume(name, false));
        }
        return;
    }
    if !protected {
        out.push(Action::ProtectVolume(name.clone(), true));
    }
    // A claim's binding writes the Bound phase itself.
    if phase(pv) != Some(want) && want != "Bound" {
        out.push(Action::VolumePhase {
            volume: name.clone(),
            phase: want,
        });
    }
    let reclaim = pv
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref());
    let ours = annotation(&pv.metadata, PROVISIONED_BY) == Some(LOCAL_PATH);
    if want == "Released" && ours && reclaim == Some("Delete") {
        out.push(Action::DeleteVolume(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim(extra: serde_json::Value) -> Arc<PersistentVolumeClaim> {
        let mut v = json!({
            "metadata": {"name": "data-web-0", "namespace": "default", "uid": "c1",
                         "finalizers": [CLAIM_PROTECTION]},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                     "resources": {"requests": {"storage": "1Gi"}}},
        });
        crate::common::merge_json(&mut v, extra);
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn class(name: &str, provisioner: &str, mode: &str) -> Arc<StorageClass> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name,
                "annotations": {DEFAULT_CLASS: "true"}},
                "provisioner": provisioner, "volumeBindingMode": mode, "reclaimPolicy": "Delete"}))
            .unwrap(),
        )
    }

    fn node(name: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name,
                "labels": {HOSTNAME_LABEL: name},
                "annotations": {STORAGE_DIR: "/var/lib/rk8s/node/storage"}}}))
            .unwrap(),
        )
    }

    fn static_pv(name: &str, size: &str) -> Arc<PersistentVolume> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "finalizers": [VOLUME_PROTECTION]},
                "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
                         "storageClassName": "local-path", "hostPath": {"path": "/srv"}},
                "status": {"phase": "Available"}}))
            .unwrap(),
        )
    }

    fn decide_with(
        claims: &[Arc<PersistentVolumeClaim>],
        volumes: &[Arc<PersistentVolume>],
        classes: &[Arc<StorageClass>],
        pods: &[Arc<Pod>],
    ) -> Vec<Action> {
        decide(&World {
            claims,
            volumes,
            classes,
            pods,
            nodes: &[node("n1"), node("n2")],
        })
    }

    #[test]
    fn a_waiting_claim_gets_a_local_volume_on_the_chosen_node() {
        let local = class("local-path", LOCAL_PATH, "WaitForFirstConsumer");
        let waiting = decide_with(&[claim(json!({}))], &[], std::slice::from_ref(&local), &[]);
        assert!(matches!(
            &waiting[..],
            [Action::Event {
                reason: "WaitForFirstConsumer",
                ..
            }]
        ));
        let chosen = claim(json!({"metadata": {"annotations": {SELECTED_NODE: "n2"}}}));
        let actions = decide_with(&[chosen], &[], &[local], &[]);
        let [Action::Provision(pv)] = &actions[..] else {
            panic!("{actions:?}")
        };
        assert_eq!(pv.metadata.name.as_deref(), Some("pvc-c1"));
        assert_eq!(rk8s_api::placement::volume_node(pv), Some("n2"));
        let spec = pv.spec.as_ref().unwrap();
        assert_eq!(
            spec.host_path.as_ref().unwrap().path,
            "/var/lib/rk8s/node/storage/pvc-c1_default_data-web-0"
        );
        assert_eq!(spec.claim_ref.as_ref().unwrap().uid.as_deref(), Some("c1"));
        assert_eq!(
            spec.persistent_volume_reclaim_policy.as_deref(),
            Some("Delete")
        );
    }

    #[test]
    fn claims_bind_to_the_smallest_volume_that_fits_and_get_the_default_class() {
        let immediate = class("local-path", "kubernetes.io/no-provisioner", "Immediate");
        let volumes = [
            static_pv("big", "10Gi"),
            static_pv("small", "2Gi"),
            static_pv("tiny", "1Mi"),
        ];
        let actions = decide_with(
            &[claim(json!({}))],
            &volumes,
            std::slice::from_ref(&immediate),
            &[],
        );
        assert!(actions.contains(&Action::Bind {
            claim: "default/data-web-0".into(),
            volume: "small".into()
        }));
        let classless = claim(json!({"spec": {"storageClassName": null}}));
        let actions = decide_with(&[classless], &volumes, &[immediate], &[]);
        assert_eq!(
            actions[0],
            Action::SetClass {
                claim: "default/data-web-0".into(),
                class: "local-path".into()
            }
        );
    }

    #[test]
    fn released_local_volumes_go_and_claims_in_use_stay() {
        let mut released: PersistentVolume = (*static_pv("pvc-c0", "1Gi")).clone();
        released.metadata.annotations =
            Some([(PROVISIONED_BY.to_string(), LOCAL_PATH.to_string())].into());
        let spec = released.spec.as_mut().unwrap();
        spec.persistent_volume_reclaim_policy = Some("Delete".into());
        spec.claim_ref = Some(ObjectReference {
            name: Some("gone".into()),
            namespace: Some("default".into()),
            uid: Some("c0".into()),
            ..Default::default()
        });
        let actions = decide_with(&[], &[Arc::new(released.clone())], &[], &[]);
        assert!(actions.contains(&Action::VolumePhase {
            volume: "pvc-c0".into(),
            phase: "Released"
        }));
        assert!(actions.contains(&Action::DeleteVolume("pvc-c0".into())));
        // Retain keeps it.
        released
            .spec
            .as_mut()
            .unwrap()
            .persistent_volume_reclaim_policy = Some("Retain".into());
        let actions = decide_with(&[], &[Arc::new(released)], &[], &[]);
        assert!(!actions.iter().any(|a| matches!(a, Action::DeleteVolume(_))));
        // A claim being deleted keeps its finalizer while a pod uses it.
        let deleting = claim(json!({"metadata": {"deletionTimestamp": "2026-12-05T00:00:00Z"}}));
        let pod: Arc<Pod> = Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": "web-0", "namespace": "default"},
                "spec": {"containers": [], "volumes": [{"name": "d",
                    "persistentVolumeClaim": {"claimName": "data-web-0"}}]},
                "status": {"phase": "Running"}}),
            )
            .unwrap(),
        );
        assert!(decide_with(std::slice::from_ref(&deleting), &[], &[], &[pod]).is_empty());
        assert_eq!(
            decide_with(&[deleting], &[], &[], &[]),
            [Action::ProtectClaim("default/data-web-0".into(), false)]
        );
    }
}

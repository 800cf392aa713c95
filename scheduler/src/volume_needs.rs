//! What a pod's PersistentVolumeClaims need of its node, looked up from the claims,
//! volumes and classes the scheduler follows (see [`crate::plugins::volumes`], the
//! VolumeBinding plugin that decides with it).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use rk8s_api::placement::{names_claim, volume_satisfies};

/// The local-path provisioner's name.
pub const LOCAL_PATH: &str = "rk8s.io/local-path";
/// The annotation the scheduler writes on a waiting claim: the node it chose.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// The node annotation naming the directory local-path volumes are made under.
pub const STORAGE_DIR: &str = "rk8s.io/local-path-dir";

/// What a pod's claims need of its node.
#[derive(Clone, Debug, Default)]
pub struct VolumeNeeds {
    /// Why no node will do (a claim missing, being deleted, or unbound at once).
    pub unresolvable: Option<String>,
    /// The volumes of its bound claims (their node affinity).
    pub bound: Vec<Arc<PersistentVolume>>,
    /// Its unbound claims that wait for it: the candidate volumes of each, and
    /// whether its class provisions local-path volumes.
    pub waiting: Vec<Waiting>,
}

/// An unbound claim that waits for its first consumer.
#[derive(Clone, Debug)]
pub struct Waiting {
    /// The claim's name.
    pub claim: String,
    /// Available volumes that satisfy it (wherever they are).
    pub candidates: Vec<Arc<PersistentVolume>>,
    /// Whether the local-path provisioner makes one on any node.
    pub local_path: bool,
}

/// Whether `pod` mounts claims (only those pods are looked up).
pub fn has_claims(pod: &Pod) -> bool {
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
    volumes
        .into_iter()
        .flatten()
        .any(|v| v.persistent_volume_claim.is_some())
}

/// What `pod`'s claims need, with `claim(name)` the pod's namespace's claim,
/// `volumes` every volume and `class(name)` a StorageClass.
pub fn needs(
    pod: &Pod,
    claim: impl Fn(&str) -> Option<Arc<PersistentVolumeClaim>>,
    volumes: &[Arc<PersistentVolume>],
    class: impl Fn(&str) -> Option<Arc<StorageClass>>,
) -> VolumeNeeds {
    let mut out = VolumeNeeds::default();
    let Some(spec) = pod.spec.as_ref() else {
        return out;
    };
    for name in rk8s_api::references::claims(spec) {
        let Some(c) = claim(name) else {
            out.unresolvable = Some(format!("persistentvolumeclaim \"{name}\" not found"));
            return out;
        };
        if c.metadata.deletion_timestamp.is_some() {
            out.unresolvable = Some(format!("persistentvolumeclaim \"{name}\" is being deleted"));
            return out;
        }
        let cspec = c.spec.clone().unwrap_or_default();
        if let Some(volume) = cspec.volume_name.as_deref().filter(|v| !v.is_empty()) {
            match volumes
                .iter()
                .find(|v| v.metadata.name.as_deref() == Some(volume))
            {
                Some(pv) => out.bound.push(pv.clone()),
                None => {
                    out.unresolvable = Some(format!(
                        "persistentvolumeclaim \"{name}\" bound to non-existent persistentvolume \"{volume}\""
                    ));
                    return out;
                }
            }
            continue;
        }
        let class = cspec.storage_class_name.as_deref().and_then(&class);
        let waits = class
            .as_ref()
            .is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"));
        if !waits {
            out.unresolvable = Some("pod has unbound immediate PersistentVolumeClaims".into());
            return out;
        }
        // A volume already naming it (being bound).
        let named: Vec<_> = volumes
            .iter()
            .filter(|v| {
                v.spec
                    .as_ref()
                    .and_then(|s| s.claim_ref.as_ref())
                    .is_some_and(|r| names_claim(r, &c))
            })
            .cloned()
            .collect();
        if !named.is_empty() {
            out.bound.extend(named);
            continue;
        }
        let candidates = volumes
            .iter()
            .filter(|v| v.spec.as_ref().is_some_and(|s| s.claim_ref.is_none()))
            .filter(|v| volume_satisfies(v, &c))
            .cloned()
            .collect();
        out.waiting.push(Waiting {
            claim: name.to_string(),
            candidates,
            local_path: class.is_some_and(|c| c.provisioner == LOCAL_PATH),
        });
    }
    out
}

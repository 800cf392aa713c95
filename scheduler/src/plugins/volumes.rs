//! VolumeBinding: a pod goes where its PersistentVolumeClaims' volumes can be
//! mounted. What a pod's claims need is looked up once per attempt
//! ([`needs`], from the scheduler's informers: [`crate::volume_needs`]) and carried
//! in its [`PodInfo`]:
//!
//! - a claim missing or being deleted, or unbound in a class that binds at once,
//!   keeps the pod off every node (Kubernetes' words);
//! - a bound claim's volume admits only the nodes its node affinity matches;
//! - an unbound claim of a class that waits for its first consumer admits the nodes
//!   where it can get a volume: an Available one that satisfies it and the node may
//!   mount, or — for the local-path provisioner — any node that announces its
//!   volume directory. The scheduler then writes the chosen node on the claim
//!   (`volume.kubernetes.io/selected-node`) before it binds the pod, and the
//!   PersistentVolume controller binds or provisions there.

use k8s_openapi::api::core::v1::PersistentVolume;
use rk8s_api::placement::volume_fits;

use crate::cache::NodeInfo;
use crate::framework::{CycleState, FilterPlugin, Nodes, Plugin, PodInfo, PreFilterPlugin, Status};
pub use crate::volume_needs::{
    LOCAL_PATH, SELECTED_NODE, STORAGE_DIR, VolumeNeeds, Waiting, has_claims, needs,
};

/// The VolumeBinding plugin.
pub struct VolumeBinding;

impl Plugin for VolumeBinding {
    fn name(&self) -> &'static str {
        "VolumeBinding"
    }
    fn pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for VolumeBinding {
    /// A pod without claims skips the filter (as Kubernetes' plugin does).
    fn pre_filter(&self, _: &mut CycleState, pod: &PodInfo, _: Nodes<'_>) -> Status {
        if pod.volumes.is_some() {
            Status::success()
        } else {
            Status::skip()
        }
    }
}

impl FilterPlugin for VolumeBinding {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(needs) = pod.volumes.as_deref() else {
            return Status::success();
        };
        if let Some(why) = &needs.unresolvable {
            return Status::unresolvable(why);
        }
        let fits = |pv: &PersistentVolume| volume_fits(pv, &node.labels, &node.name);
        if !needs.bound.iter().all(|pv| fits(pv)) {
            return Status::unresolvable("node(s) had volume node affinity conflict");
        }
        let announces = node
            .node
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(STORAGE_DIR));
        let bindable = needs
            .waiting
            .iter()
            .all(|w| (w.local_path && announces) || w.candidates.iter().any(|pv| fits(pv)));
        if bindable {
            Status::success()
        } else {
            Status::unschedulable("node(s) didn't find available persistent volumes to bind")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
    use k8s_openapi::api::storage::v1::StorageClass;
    use serde_json::json;

    use super::*;

    fn claim(v: serde_json::Value) -> Arc<PersistentVolumeClaim> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn pv(name: &str, node: &str, claim_ref: Option<serde_json::Value>) -> Arc<PersistentVolume> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "local", "hostPath": {"path": "/x"},
                    "claimRef": claim_ref,
                    "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}},
            }))
            .unwrap(),
        )
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "default"},
            "spec": {"containers": [], "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}}]},
        }))
        .unwrap()
    }

    fn class(mode: &str, provisioner: &str) -> Arc<StorageClass> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "local"},
                "provisioner": provisioner, "volumeBindingMode": mode}))
            .unwrap(),
        )
    }

    fn node(name: &str, dir: bool) -> NodeInfo {
        let annotations = if dir {
            json!({STORAGE_DIR: "/d"})
        } else {
            json!({})
        };
        NodeInfo::new(Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name,
                "labels": {"kubernetes.io/hostname": name}, "annotations": annotations}}))
            .unwrap(),
        ))
    }

    fn verdict(needs: VolumeNeeds, node: &NodeInfo) -> Status {
        let mut info = PodInfo::new(Arc::new(pod()));
        info.volumes = Some(Arc::new(needs));
        FilterPlugin::filter(&VolumeBinding, &CycleState::default(), &info, node)
    }

    #[test]
    fn a_bound_claim_keeps_its_pod_on_the_volume_s_node() {
        let c = claim(
            json!({"metadata": {"name": "data-web-0", "namespace": "default"},
            "spec": {"volumeName": "pv-a", "storageClassName": "local"}}),
        );
        let volumes = [pv("pv-a", "n1", None)];
        let n = needs(&pod(), |_| Some(c.clone()), &volumes, |_| None);
        assert!(verdict(n.clone(), &node("n1", false)).is_success());
        let other = verdict(n, &node("n2", false));
        assert_eq!(other.reasons, ["node(s) had volume node affinity conflict"]);
    }

    #[test]
    fn unbound_claims_wait_for_a_node_that_can_give_them_a_volume() {
        let c = claim(
            json!({"metadata": {"name": "data-web-0", "namespace": "default", "uid": "u"},
            "spec": {"storageClassName": "local", "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}}),
        );
        // Static volumes: only the node one of them is on.
        let volumes = [pv("pv-a", "n1", None)];
        let wffc = class("WaitForFirstConsumer", "kubernetes.io/no-provisioner");
        let n = needs(
            &pod(),
            |_| Some(c.clone()),
            &volumes,
            |_| Some(wffc.clone()),
        );
        assert!(verdict(n.clone(), &node("n1", false)).is_success());
        assert!(!verdict(n, &node("n2", false)).is_success());
        // Local-path: any node announcing its directory.
        let local = class("WaitForFirstConsumer", LOCAL_PATH);
        let n = needs(&pod(), |_| Some(c.clone()), &[], |_| Some(local.clone()));
        assert_eq!(n.waiting[0].claim, "data-web-0");
        assert!(verdict(n.clone(), &node("n2", true)).is_success());
        assert!(!verdict(n, &node("n3", false)).is_success());
        // Immediate binding, or no claim at all: no node.
        let immediate = class("Immediate", LOCAL_PATH);
        let n = needs(
            &pod(),
            |_| Some(c.clone()),
            &[],
            |_| Some(immediate.clone()),
        );
        assert_eq!(
            verdict(n, &node("n1", true)).reasons,
            ["pod has unbound immediate PersistentVolumeClaims"]
        );
        let n = needs(&pod(), |_| None, &[], |_| None);
        assert_eq!(
            verdict(n, &node("n1", true)).reasons,
            ["persistentvolumeclaim \"data-web-0\" not found"]
        );
        // A volume naming the claim (being bound) decides.
        let named = [pv(
            "pv-b",
            "n2",
            Some(json!({"name": "data-web-0", "namespace": "default", "uid": "u"})),
        )];
        let n = needs(&pod(), |_| Some(c.clone()), &named, |_| Some(wffc.clone()));
        assert!(verdict(n.clone(), &node("n2", false)).is_success());
        assert!(!verdict(n, &node("n1", false)).is_success());
    }
}

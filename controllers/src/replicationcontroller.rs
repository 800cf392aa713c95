//! ReplicationControllers (core/v1, which legacy manifests still use): a
//! ReplicaSet whose selector is a plain label map. Kubernetes runs them with the
//! ReplicaSet controller's code through a conversion; so does rk8s: each decision is
//! [`crate::replicaset::reconcile`]'s on the ReplicaSet [`as_replica_set`] makes, its
//! status converted back, and carried out as a ReplicaSet's (pods controlled by the
//! ReplicationController, `v1`).

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, ReplicationController, ReplicationControllerStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::common::{controller_ref, object_name, replace_status};
use crate::owner::{Decided, Done, Owner, View};
use crate::owner_actor::OwnerActor;
use crate::owner_supervisor::OwnerSupervisor;
use crate::replicaset_actor::{Plan, carry_out_pods};

/// Watches ReplicationControllers and pods and runs one actor per controller.
pub type ReplicationControllerSupervisor = OwnerSupervisor<ReplicationController>;

/// One ReplicationController's actor.
pub type ReplicationControllerActor = OwnerActor<ReplicationController>;

/// The ReplicaSet a ReplicationController is: its selector as `matchLabels`, its
/// status as the ReplicaSet's (the fields and conditions are the same).
pub fn as_replica_set(rc: &ReplicationController) -> ReplicaSet {
    let spec = rc.spec.clone().unwrap_or_default();
    ReplicaSet {
        metadata: rc.metadata.clone(),
        spec: Some(ReplicaSetSpec {
            replicas: spec.replicas,
            min_ready_seconds: spec.min_ready_seconds,
            selector: LabelSelector {
                match_labels: spec.selector,
                match_expressions: None,
            },
            template: spec.template,
        }),
        status: rc.status.as_ref().and_then(convert),
    }
}

/// A status of one kind as the other's (their JSON is the same).
fn convert<A: serde::Serialize, B: serde::de::DeserializeOwned>(a: &A) -> Option<B> {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
}

impl Owner for ReplicationController {
    const KIND: &'static str = "ReplicationController";

    type Owned = Pod;
    type Plan = Plan;

    fn selector(&self) -> Option<rk8s_api::selector::Selector> {
        crate::replicaset::selector(&as_replica_set(self))
    }

    fn decide(&self, view: &View<'_, Pod>) -> Decided<Plan> {
        as_replica_set(self).decide(view)
    }

    fn carry_out(
        client: kube::Client,
        rc: Arc<ReplicationController>,
        pods: HashMap<String, Arc<Pod>>,
        plan: Plan,
    ) -> BoxFuture<'static, Done> {
        Box::pin(async move {
            let owner = controller_ref("v1", "ReplicationController", &rc.metadata);
            let about = rk8s_events::Involved::of("v1", "ReplicationController", &rc.metadata);
            let template = rc.spec.as_ref().and_then(|s| s.template.clone());
            let done = carry_out_pods(
                &client,
                &rc.metadata,
                owner,
                about,
                template,
                &pods,
                &plan.decision,
            )
            .await;
            let status: Option<ReplicationControllerStatus> = plan
                .status
                .as_ref()
                .and_then(convert::<ReplicaSetStatus, _>);
            if let Some(status) = status {
                let mut rc = Arc::unwrap_or_clone(rc);
                rc.status = Some(status);
                if let Err(e) = replace_status(&client, &rc).await {
                    tracing::debug!(rc = %object_name(&rc.metadata), "writing status: {e}");
                }
            }
            done
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replication_controller_decides_as_its_replica_set() {
        let rc: ReplicationController = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "legacy", "namespace": "default", "uid": "rc-uid", "generation": 3},
            "spec": {"replicas": 2, "selector": {"app": "legacy"},
                     "template": {"metadata": {"labels": {"app": "legacy"}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}},
            "status": {"replicas": 1, "observedGeneration": 2, "conditions": [
                {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate"}]},
        }))
        .unwrap_or_default();
        let rs = as_replica_set(&rc);
        let labels = rs
            .spec
            .as_ref()
            .and_then(|s| s.selector.match_labels.clone());
        assert_eq!(labels.unwrap_or_default()["app"], "legacy");
        let status = rs.status.clone().unwrap_or_default();
        assert_eq!(
            status.conditions.unwrap_or_default()[0].type_,
            "ReplicaFailure"
        );
        let orphan: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "stray", "namespace": "default", "labels": {"app": "legacy"}},
            "status": {"phase": "Running"},
        }))
        .unwrap_or_default();
        let pods = [Arc::new(orphan)];
        let view = View {
            owned: &pods,
            nodes: &[],
            satisfied: true,
            failure: None,
            now: jiff::Timestamp::UNIX_EPOCH,
        };
        let decided = rc.decide(&view);
        assert_eq!(decided.create, 1);
        let plan = decided.plan.unwrap_or_else(|| panic!("a plan"));
        assert_eq!(plan.decision.adopt, ["stray"]);
        let back: Option<ReplicationControllerStatus> = plan.status.as_ref().and_then(convert);
        assert_eq!(
            back.map(|s| (s.replicas, s.observed_generation)),
            Some((1, Some(3)))
        );
    }
}

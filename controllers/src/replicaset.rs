//! The ReplicaSet decision: given a ReplicaSet and the pods of its namespace, which
//! orphans to adopt, which pods to release, how many pods to create or which to
//! delete, and the status to report. Pure; the actor carries it out.

use std::borrow::Borrow;
use std::cmp::Ordering;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use rk8s_api::selector::{Selector, SelectorExt};

use crate::common::{controller_of, is_active, is_available, is_ready};

/// Most pods created or deleted in one pass (Kubernetes' burstReplicas).
pub const BURST: usize = 500;

/// What to do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// Orphans that match the selector: take them (set the controller reference).
    pub adopt: Vec<String>,
    /// Owned pods that no longer match: let them go (drop the reference).
    pub release: Vec<String>,
    /// Pods to create from the template.
    pub create: usize,
    /// Pods to delete, most expendable first.
    pub delete: Vec<String>,
    /// The status to write (when it differs from the current one).
    pub status: ReplicaSetStatus,
}

/// The ReplicaSet's selector, if it has a valid one.
pub fn selector(rs: &ReplicaSet) -> Option<Selector> {
    rk8s_api::selector::label_selector(&rs.spec.as_ref()?.selector).ok()
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// Ranks pods for deletion, most expendable first (Kubernetes' `ActivePods` order):
/// unscheduled before scheduled, Pending before Unknown before Running, not ready
/// before ready, ready for less time first, more restarts first, newer first.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let scheduled = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    let phase = |p: &Pod| match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        _ => 2,
    };
    let restarts = |p: &Pod| -> i32 {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map_or(0, |c| c.iter().map(|c| c.restart_count).max().unwrap_or(0))
    };
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    scheduled(a)
        .cmp(&scheduled(b))
        .then_with(|| phase(a).cmp(&phase(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        // Ready more recently first.
        .then_with(|| crate::common::ready_since(b).cmp(&crate::common::ready_since(a)))
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| created(b).cmp(&created(a)))
}

/// Decides for `rs` given every pod of its namespace. `act` is false while earlier
/// creations/deletions have not been seen yet (expectations): then only adoption,
/// release and status are decided.
pub fn reconcile<P: Borrow<Pod>>(
    rs: &ReplicaSet,
    pods: &[P],
    act: bool,
    now: jiff::Timestamp,
) -> Decision {
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let spec = rs.spec.clone().unwrap_or_default();
    let replicas = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
    let selector = rk8s_api::selector::label_selector(&spec.selector).ok();
    let matches = |p: &Pod| {
        selector
            .as_ref()
            .is_some_and(|s| s.matches(p.metadata.labels.as_ref().unwrap_or(&Default::default())))
    };
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let mut decision = Decision::default();
    let mut owned: Vec<&Pod> = Vec::new();
    for pod in pods {
        let pod: &Pod = pod.borrow();
        match controller_of(&pod.metadata) {
            Some(r) if r.uid == uid => {
                if matches(pod) {
                    owned.push(pod);
                } else if is_active(pod) {
                    decision.release.push(name(pod));
                }
            }
            Some(_) => {}
            None => {
                // Orphans are adopted only by a ReplicaSet that is not going away.
                if !deleting && is_active(pod) && matches(pod) {
                    decision.adopt.push(name(pod));
                    owned.push(pod);
                }
            }
        }
    }
    let mut active: Vec<&Pod> = owned.iter().copied().filter(|p| is_active(p)).collect();
    if act && !deleting {
        match active.len().cmp(&replicas) {
            Ordering::Less => decision.create = (replicas - active.len()).min(BURST),
            Ordering::Greater => {
                active.sort_by(|a, b| deletion_order(a, b));
                decision.delete = active
                    .iter()
                    .take((active.len() - replicas).min(BURST))
                    .map(|p| name(p))
                    .collect();
            }
            Ordering::Equal => {}
        }
    }
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = i64::from(spec.min_ready_seconds.unwrap_or(0));
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(active.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let old = rs.status.clone().unwrap_or_default();
    decision.status = ReplicaSetStatus {
        replicas: count(&|_| true),
        fully_labeled_replicas: Some(count(&|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            template_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        })),
        ready_replicas: Some(count(&|p| is_ready(p))),
        available_replicas: Some(count(&|p| is_available(p, min_ready, now))),
        observed_generation: rs.metadata.generation,
        conditions: old.conditions.filter(|c| !c.is_empty()),
        ..Default::default()
    };
    decision
}

/// The ReplicaFailure condition after creating pods failed with `message` (or its
/// removal, with `None`). As kube-controller-manager's, the condition is set once and
/// left as it is while creations keep failing: rewritten with each pass's time, it
/// would be a status write, and so another pass, after every failed one.
pub fn with_failure(
    mut status: ReplicaSetStatus,
    message: Option<&str>,
    now: jiff::Timestamp,
) -> ReplicaSetStatus {
    let mut conditions = status.conditions.take().unwrap_or_default();
    let failing = conditions.iter().any(|c| c.type_ == "ReplicaFailure");
    match message {
        Some(_) if failing => {}
        Some(message) => conditions.push(ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some("FailedCreate".into()),
            message: Some(message.to_string()),
            last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now)),
        }),
        None => conditions.retain(|c| c.type_ != "ReplicaFailure"),
    }
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs(replicas: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "rs-1", "generation": 3},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "tier": "front"}},
                             "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
            },
        }))
        .unwrap()
    }

    fn pod(
        name: &str,
        owner: Option<&str>,
        labels: serde_json::Value,
        status: serde_json::Value,
    ) -> Pod {
        let refs = owner.map(|uid| {
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "name": "x", "uid": uid, "controller": true}])
        });
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "labels": labels,
                         "ownerReferences": refs, "creationTimestamp": "2026-11-23T00:00:00Z"},
            "spec": {"containers": [{"name": "c"}]},
            "status": status,
        }))
        .unwrap()
    }

    fn running(ready: bool) -> serde_json::Value {
        json!({"phase": "Running", "conditions": [{"type": "Ready",
            "status": if ready { "True" } else { "False" },
            "lastTransitionTime": "2026-11-23T00:00:00Z"}]})
    }

    fn now() -> jiff::Timestamp {
        "2026-11-23T01:00:00Z".parse().unwrap()
    }

    #[test]
    fn too_few_pods_are_created_and_orphans_adopted() {
        let pods = vec![
            pod("a", Some("rs-1"), json!({"app": "web"}), running(true)),
            pod("orphan", None, json!({"app": "web"}), running(true)),
            pod("other", Some("rs-2"), json!({"app": "web"}), running(true)),
            pod("unrelated", None, json!({"app": "db"}), running(true)),
        ];
        let d = reconcile(&rs(5), &pods, true, now());
        assert_eq!(d.adopt, ["orphan"]);
        assert_eq!(d.create, 3);
        assert!(d.delete.is_empty());
        assert_eq!(d.status.replicas, 2);
        assert_eq!(d.status.ready_replicas, Some(2));
        // Neither carries the template's tier label.
        assert_eq!(d.status.fully_labeled_replicas, Some(0));
        assert_eq!(d.status.observed_generation, Some(3));
    }

    #[test]
    fn too_many_pods_go_most_expendable_first() {
        let mut pending = pod(
            "pending",
            Some("rs-1"),
            json!({"app": "web"}),
            json!({"phase": "Pending"}),
        );
        pending.spec.as_mut().unwrap().node_name = Some("n1".into());
        let unscheduled = pod(
            "unscheduled",
            Some("rs-1"),
            json!({"app": "web"}),
            json!({"phase": "Pending"}),
        );
        let mut ready = pod("ready", Some("rs-1"), json!({"app": "web"}), running(true));
        ready.spec.as_mut().unwrap().node_name = Some("n1".into());
        let mut not_ready = pod(
            "not-ready",
            Some("rs-1"),
            json!({"app": "web"}),
            running(false),
        );
        not_ready.spec.as_mut().unwrap().node_name = Some("n1".into());
        let pods = vec![ready, not_ready, pending, unscheduled];
        let d = reconcile(&rs(1), &pods, true, now());
        assert_eq!(d.delete, ["unscheduled", "pending", "not-ready"]);
        assert_eq!(d.create, 0);
    }

    #[test]
    fn nothing_is_created_or_deleted_while_expectations_are_pending() {
        let d = reconcile::<Pod>(&rs(3), &[], false, now());
        assert_eq!((d.create, d.delete.len()), (0, 0));
        assert_eq!(d.status.replicas, 0);
    }

    #[test]
    fn pods_that_stop_matching_are_released_and_finished_ones_do_not_count() {
        let pods = vec![
            pod(
                "relabelled",
                Some("rs-1"),
                json!({"app": "debug"}),
                running(true),
            ),
            pod(
                "done",
                Some("rs-1"),
                json!({"app": "web"}),
                json!({"phase": "Succeeded"}),
            ),
            pod("live", Some("rs-1"), json!({"app": "web"}), running(true)),
        ];
        let d = reconcile(&rs(2), &pods, true, now());
        assert_eq!(d.release, ["relabelled"]);
        assert_eq!(d.create, 1);
        assert_eq!(d.status.replicas, 1);
    }

    #[test]
    fn available_means_ready_for_min_ready_seconds() {
        let mut set = rs(1);
        set.spec.as_mut().unwrap().min_ready_seconds = Some(7200);
        let pods = vec![pod("a", Some("rs-1"), json!({"app": "web"}), running(true))];
        let d = reconcile(&set, &pods, true, now());
        assert_eq!(d.status.ready_replicas, Some(1));
        assert_eq!(d.status.available_replicas, Some(0));
    }

    #[test]
    fn a_failed_creation_is_a_condition() {
        let s = with_failure(ReplicaSetStatus::default(), Some("quota"), now());
        assert_eq!(s.conditions.as_ref().unwrap()[0].type_, "ReplicaFailure");
        // Failing on, later and in other words: the condition stays as it was.
        let later = now()
            .checked_add(jiff::SignedDuration::from_secs(60))
            .unwrap();
        assert_eq!(with_failure(s.clone(), Some("quota, again"), later), s);
        assert!(with_failure(s, None, now()).conditions.is_none());
    }
}

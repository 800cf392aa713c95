//! The Deployment decision: given a Deployment and its ReplicaSets, the new
//! ReplicaSet to create (named by the pod-template hash), the replicas each
//! ReplicaSet should have — RollingUpdate within maxSurge and maxUnavailable, or
//! Recreate —, the old ReplicaSets beyond `revisionHistoryLimit` to delete, and the
//! status. Pure; the actor carries it out.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::common::{controller_ref, int_or_percent};

/// The label that ties a ReplicaSet and its pods to one template.
pub const HASH_LABEL: &str = "pod-template-hash";
/// The annotation holding a ReplicaSet's revision.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The annotation holding the Deployment's replicas when the ReplicaSet was scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// The annotation holding replicas + maxSurge at that time.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// What to do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// A new ReplicaSet to create (with its replicas).
    pub create: Option<ReplicaSet>,
    /// ReplicaSets to scale: name → replicas.
    pub scale: BTreeMap<String, i32>,
    /// The new ReplicaSet's revision annotation to raise (rollback to an old template).
    pub bump_revision: Option<(String, i64)>,
    /// Old ReplicaSets to delete (history beyond the limit).
    pub delete: Vec<String>,
    /// The revision to note on the Deployment itself (its new ReplicaSet's), when it
    /// differs from the one noted.
    pub annotate_revision: Option<String>,
    /// The status.
    pub status: DeploymentStatus,
}

/// The pod-template hash of a Deployment's template (FNV-1a of its JSON and the
/// collision count), in Kubernetes' name-safe alphabet.
pub fn template_hash(d: &Deployment) -> String {
    let collisions = d.status.as_ref().and_then(|s| s.collision_count);
    crate::common::template_hash(d.spec.as_ref().map(|s| &s.template), collisions)
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// A template without the hash label, to compare ReplicaSets with the Deployment.
/// Empty objects and lists count as absent (`resources: {}` is no resources), as
/// Kubernetes' semantic equality has it: clients such as `kubectl rollout undo` send
/// them.
fn plain_template(
    t: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>,
) -> Option<serde_json::Value> {
    let mut t = t?.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    let mut value = serde_json::to_value(t).ok()?;
    prune_empty(&mut value);
    Some(value)
}

/// Drops nulls, empty objects and empty lists, deepest first.
fn prune_empty(value: &mut serde_json::Value) {
    use serde_json::Value;
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    match value {
        Value::Object(map) => {
            for v in map.values_mut() {
                prune_empty(v);
            }
            map.retain(|_, v| !empty(v));
        }
        Value::Array(items) => items.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

/// (maxSurge, maxUnavailable) of a RollingUpdate Deployment with `replicas`.
pub fn surge_and_unavailable(d: &Deployment, replicas: i32) -> (i32, i32) {
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let surge = int_or_percent(
        rolling.and_then(|r| r.max_surge.as_ref()),
        replicas,
        25,
        true,
    );
    let unavailable = int_or_percent(
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        replicas,
        25,
        false,
    );
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn status_of(rs: &ReplicaSet) -> (i32, i32, i32) {
    let s = rs.status.clone().unwrap_or_default();
    (
        s.replicas,
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
    )
}

fn name(rs: &ReplicaSet) -> String {
    rs.metadata.name.clone().unwrap_or_default()
}

/// The new ReplicaSet for `d` with `replicas`, revision `revision`.
fn new_replicaset(
    d: &Deployment,
    hash: &str,
    replicas: i32,
    revision: i64,
    surge: i32,
) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let mut template = spec.template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    meta.labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.into(), hash.to_string());
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(HASH_LABEL.into(), hash.to_string());
    let desired = spec.replicas.unwrap_or(1);
    let annotations = BTreeMap::from([
        (REVISION.to_string(), revision.to_string()),
        (DESIRED_REPLICAS.to_string(), desired.to_string()),
        (MAX_REPLICAS.to_string(), (desired + surge).to_string()),
    ]);
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}-{hash}",
                d.metadata.name.as_deref().unwrap_or("deploy")
            )),
            namespace: d.metadata.namespace.clone(),
            labels: meta.labels.clone(),
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref("apps/v1", "Deployment", &d.metadata)]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

/// Whether `d` should adopt `rs`: a ReplicaSet of its namespace that nothing
/// controls, not being deleted, whose labels its selector matches (as kubectl's
/// `delete --cascade=orphan` then a new Deployment leaves them).
pub fn adoptable(d: &Deployment, rs: &ReplicaSet) -> bool {
    use rk8s_api::selector::SelectorExt;
    let Some(selector) = d
        .spec
        .as_ref()
        .and_then(|s| rk8s_api::selector::label_selector(&s.selector).ok())
    else {
        return false;
    };
    d.metadata.deletion_timestamp.is_none()
        && rs.metadata.deletion_timestamp.is_none()
        && rs.metadata.namespace == d.metadata.namespace
        && crate::common::controller_of(&rs.metadata).is_none()
        && selector.matches(rs.metadata.labels.as_ref().unwrap_or(&Default::default()))
}

/// Decides for `d` given the ReplicaSets it owns.
pub fn reconcile(d: &Deployment, owned: &[ReplicaSet], now: jiff::Timestamp) -> Decision {
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let paused = spec.paused.unwrap_or(false);
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let (surge, max_unavailable) = if recreate {
        (0, 0)
    } else {
        surge_and_unavailable(d, replicas)
    };
    let hash = template_hash(d);
    let wanted = plain_template(Some(&spec.template));
    let mut decision = Decision::default();
    let new = owned
        .iter()
        .find(|rs| plain_template(rs.spec.as_ref().and_then(|s| s.template.as_ref())) == wanted);
    let mut olds: Vec<&ReplicaSet> = owned
        .iter()
        .filter(|rs| new.is_none_or(|n| n.metadata.uid != rs.metadata.uid))
        .collect();
    olds.sort_by_key(|rs| revision(rs));
    let max_revision = owned.iter().map(revision).max().unwrap_or(0);
    let old_total: i32 = olds.iter().map(|rs| spec_replicas(rs)).sum();
    let deleting = d.metadata.deletion_timestamp.is_some();

    if !paused && !deleting {
        match new {
            None => {
                // A first ReplicaSet gets every replica; a rollout starts within surge.
                let start = if olds.is_empty() {
                    replicas
                } else if recreate {
                    0
                } else {
                    (replicas + surge - old_total).clamp(0, replicas)
                };
                decision.create = Some(new_replicaset(d, &hash, start, max_revision + 1, surge));
            }
            Some(new) => {
                if revision(new) < max_revision {
                    decision.bump_revision = Some((name(new), max_revision + 1));
                }
                let new_replicas = spec_replicas(new);
                if recreate {
                    let old_running: i32 = olds.iter().map(|rs| status_of(rs).0).sum();
                    for rs in &olds {
                        if spec_replicas(rs) > 0 {
                            decision.scale.insert(name(rs), 0);
                        }
                    }
                    // The new pods start once every old pod is gone.
                    if old_total == 0 && old_running == 0 && new_replicas != replicas {
                        decision.scale.insert(name(new), replicas);
                    }
                } else {
                    roll(&mut decision, new, &olds, replicas, surge, max_unavailable);
                }
            }
        }
    }

    // History: old ReplicaSets with nothing left, beyond the limit, oldest first.
    let limit = usize::try_from(spec.revision_history_limit.unwrap_or(10)).unwrap_or(10);
    let idle: Vec<&&ReplicaSet> = olds
        .iter()
        .filter(|rs| spec_replicas(rs) == 0 && status_of(rs).0 == 0)
        .filter(|rs| !decision.scale.contains_key(&name(rs)))
        .collect();
    if idle.len() > limit {
        decision.delete = idle[..idle.len() - limit]
            .iter()
            .map(|rs| name(rs))
            .collect();
    }

    // The Deployment carries its current revision, as Kubernetes' does.
    let current = match (&decision.create, &decision.bump_revision, new) {
        (Some(rs), _, _) => Some(revision(rs)),
        (None, Some((_, r)), _) => Some(*r),
        (None, None, Some(rs)) => Some(revision(rs)),
        _ => None,
    };
    let noted = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION));
    if let Some(r) = current.filter(|r| *r > 0).map(|r| r.to_string())
        && noted != Some(&r)
    {
        decision.annotate_revision = Some(r);
    }
    decision.status = status(d, new, owned, replicas, max_unavailable, now);
    decision
}

/// RollingUpdate: scale the new ReplicaSet up within maxSurge, the old ones down while
/// at least `replicas - maxUnavailable` pods stay available.
fn roll(
    decision: &mut Decision,
    new: &ReplicaSet,
    olds: &[&ReplicaSet],
    replicas: i32,
    surge: i32,
    max_unavailable: i32,
) {
    let new_replicas = spec_replicas(new);
    let old_total: i32 = olds.iter().map(|rs| spec_replicas(rs)).sum();
    let total = new_replicas + old_total;
    // Up: not beyond replicas + maxSurge in all, not beyond replicas for the new one.
    let mut new_target = new_replicas;
    if new_replicas < replicas {
        let room = (replicas + surge - total).max(0);
        new_target = (new_replicas + room).min(replicas);
    } else if new_replicas > replicas {
        new_target = replicas;
    }
    if new_target != new_replicas {
        decision.scale.insert(name(new), new_target);
    }
    // Down: old pods may go while enough stay available.
    let available: i32 = std::iter::once(new)
        .chain(olds.iter().copied())
        .map(|rs| status_of(rs).2)
        .sum();
    let min_available = replicas - max_unavailable;
    let total_after_up = new_target + old_total;
    // Old pods that are not available do not count against availability: they may
    // go first, as far as the total stays above what is needed.
    let mut removable = (available - min_available).max(0);
    let unhealthy: i32 = olds
        .iter()
        .map(|rs| (spec_replicas(rs) - status_of(rs).2).max(0))
        .sum();
    removable += unhealthy.min((total_after_up - min_available).max(0));
    // Without old pods, only scaling down the new one (replicas lowered) remains.
    for rs in olds {
        if removable <= 0 {
            break;
        }
        let current = spec_replicas(rs);
        if current == 0 {
            continue;
        }
        let cut = current.min(removable);
        decision.scale.insert(name(rs), current - cut);
        removable -= cut;
    }
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    now: jiff::Timestamp,
    old: Option<&DeploymentCondition>,
) -> DeploymentCondition {
    let status = if status { "True" } else { "False" };
    let unchanged = old.is_some_and(|o| o.status == status && o.reason.as_deref() == Some(reason));
    DeploymentCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message),
        last_update_time: if unchanged {
            old.and_then(|o| o.last_update_time.clone())
        } else {
            Some(Time(now))
        },
        last_transition_time: if old.is_some_and(|o| o.status == status) {
            old.and_then(|o| o.last_transition_time.clone())
        } else {
            Some(Time(now))
        },
    }
}

fn status(
    d: &Deployment,
    new: Option<&ReplicaSet>,
    owned: &[ReplicaSet],
    replicas: i32,
    max_unavailable: i32,
    now: jiff::Timestamp,
) -> DeploymentStatus {
    let (mut total, mut ready, mut available) = (0, 0, 0);
    for rs in owned {
        let (t, r, a) = status_of(rs);
        total += t;
        ready += r;
        available += a;
    }
    let updated = new.map_or(0, |rs| status_of(rs).0);
    let old = d.status.clone().unwrap_or_default();
    let old_condition = |t: &str| {
        old.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == t)
            .cloned()
    };
    let is_available = available >= replicas - max_unavailable;
    let available_condition = condition(
        "Available",
        is_available,
        if is_available {
            "MinimumReplicasAvailable"
        } else {
            "MinimumReplicasUnavailable"
        },
        if is_available {
            "Deployment has minimum availability.".into()
        } else {
            "Deployment does not have minimum availability.".into()
        },
        now,
        old_condition("Available").as_ref(),
    );
    let new_name = new.map(name).unwrap_or_default();
    let complete = new.is_some()
        && updated == replicas
        && total == replicas
        && available >= replicas
        && new.is_some_and(|rs| spec_replicas(rs) == replicas);
    let previous = old_condition("Progressing");
    let deadline = d
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(600);
    let progressing = if d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false) {
        condition(
            "Progressing",
            false,
            "DeploymentPaused",
            "Deployment is paused".into(),
            now,
            previous.as_ref(),
        )
    } else if complete {
        condition(
            "Progressing",
            true,
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{new_name}\" has successfully progressed."),
            now,
            previous.as_ref(),
        )
    } else {
        // No progress (same counts) for longer than the deadline: stuck.
        let counts_same = old.updated_replicas.unwrap_or(0) == updated
            && old.available_replicas.unwrap_or(0) == available;
        let since = previous
            .as_ref()
            .and_then(|c| c.last_update_time.as_ref())
            .map(|t| t.0);
        let stuck = counts_same
            && since.is_some_and(|s| {
                now.duration_since(s) > jiff::SignedDuration::from_secs(i64::from(deadline))
            });
        if stuck {
            condition(
                "Progressing",
                false,
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{new_name}\" has timed out progressing."),
                now,
                previous.as_ref(),
            )
        } else {
            let mut c = condition(
                "Progressing",
                true,
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{new_name}\" is progressing."),
                now,
                previous.as_ref(),
            );
            if !counts_same {
                c.last_update_time = Some(Time(now));
            }
            c
        }
    };
    DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(total),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((replicas - available).max(0)),
        conditions: Some(vec![available_condition, progressing]),
        collision_count: old.collision_count,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(replicas: i32, image: &str, strategy: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "d-1", "generation": 2},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": strategy,
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "c", "image": image}]}},
            },
        }))
        .unwrap()
    }

    /// A ReplicaSet made by the decision, then "run": its status catches up with its
    /// spec (all available).
    fn settled(mut rs: ReplicaSet, uid: &str) -> ReplicaSet {
        rs.metadata.uid = Some(uid.into());
        let n = spec_replicas(&rs);
        rs.status = Some(k8s_openapi::api::apps::v1::ReplicaSetStatus {
            replicas: n,
            ready_replicas: Some(n),
            available_replicas: Some(n),
            ..Default::default()
        });
        rs
    }

    fn apply(sets: &mut [ReplicaSet], d: &Decision) {
        for rs in sets.iter_mut() {
            if let Some(n) = d.scale.get(&name(rs)) {
                rs.spec.as_mut().unwrap().replicas = Some(*n);
            }
        }
    }

    fn now() -> jiff::Timestamp {
        "2026-11-23T01:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_new_deployment_gets_one_replicaset_with_every_replica() {
        let d = deploy(3, "busybox:1", json!({}));
        let decision = reconcile(&d, &[], now());
        let rs = decision.create.unwrap();
        assert_eq!(spec_replicas(&rs), 3);
        let hash = template_hash(&d);
        assert_eq!(
            rs.metadata.name.as_deref(),
            Some(format!("web-{hash}").as_str())
        );
        assert_eq!(rs.metadata.annotations.as_ref().unwrap()[REVISION], "1");
        assert_eq!(decision.annotate_revision.as_deref(), Some("1"));
        assert_eq!(
            rs.spec
                .as_ref()
                .unwrap()
                .selector
                .match_labels
                .as_ref()
                .unwrap()[HASH_LABEL],
            hash
        );
        assert_eq!(
            template_hash(&deploy(3, "busybox:2", json!({}))).len(),
            hash.len()
        );
        assert_ne!(template_hash(&deploy(3, "busybox:2", json!({}))), hash);
    }

    /// Rolls from image 1 to 2 step by step, as if every ReplicaSet settled between
    /// passes, and checks every step against maxSurge and maxUnavailable.
    fn roll_through(
        replicas: i32,
        strategy: serde_json::Value,
        max_total: i32,
        min_available: i32,
    ) -> usize {
        let v1 = deploy(replicas, "busybox:1", strategy.clone());
        let first = settled(reconcile(&v1, &[], now()).create.unwrap(), "rs-1");
        let mut sets = vec![first];
        let v2 = deploy(replicas, "busybox:2", strategy);
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 50, "the rollout does not finish");
            let d = reconcile(&v2, &sets, now());
            if let Some(rs) = d.create.clone() {
                sets.push(settled(rs, &format!("rs-{}", sets.len() + 1)));
            }
            apply(&mut sets, &d);
            let total: i32 = sets.iter().map(spec_replicas).sum();
            assert!(
                total <= max_total,
                "{total} pods > {max_total} at step {steps}"
            );
            // Pods scaled down are gone at once; new ones become available only when
            // settled, so availability right now is min(spec, old status).
            let available: i32 = sets
                .iter()
                .map(|rs| spec_replicas(rs).min(status_of(rs).2))
                .sum();
            assert!(
                available >= min_available,
                "{available} available < {min_available} at step {steps}"
            );
            sets = sets
                .into_iter()
                .map(|rs| {
                    let uid = rs.metadata.uid.clone().unwrap();
                    settled(rs, &uid)
                })
                .collect();
            let new = sets.last().unwrap();
            if spec_replicas(new) == replicas
                && sets[..sets.len() - 1].iter().all(|r| spec_replicas(r) == 0)
            {
                let done = reconcile(&v2, &sets, now());
                let p = done.status.conditions.unwrap();
                assert_eq!(p[1].reason.as_deref(), Some("NewReplicaSetAvailable"));
                return steps;
            }
        }
    }

    #[test]
    fn rolling_updates_stay_within_surge_and_unavailability() {
        // Defaults: 25 % surge (rounded up), 25 % unavailable (rounded down).
        roll_through(10, json!({}), 13, 8);
        roll_through(
            4,
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}),
            5,
            4,
        );
        roll_through(
            4,
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 2}}),
            4,
            2,
        );
        roll_through(1, json!({}), 2, 1);
    }

    #[test]
    fn recreate_stops_every_old_pod_first() {
        let strategy = json!({"type": "Recreate"});
        let v1 = deploy(3, "busybox:1", strategy.clone());
        let old = settled(reconcile(&v1, &[], now()).create.unwrap(), "rs-1");
        let v2 = deploy(3, "busybox:2", strategy);
        let d = reconcile(&v2, std::slice::from_ref(&old), now());
        let new = settled(d.create.unwrap(), "rs-2");
        assert_eq!(spec_replicas(&new), 0);
        let d = reconcile(&v2, &[old.clone(), new.clone()], now());
        assert_eq!(d.scale.get(&name(&old)), Some(&0));
        assert!(!d.scale.contains_key(&name(&new)));
        // Old pods still terminating: the new ones wait.
        let mut stopping = old.clone();
        stopping.spec.as_mut().unwrap().replicas = Some(0);
        let d = reconcile(&v2, &[stopping.clone(), new.clone()], now());
        assert!(d.scale.is_empty());
        let gone = settled(stopping, "rs-1");
        let d = reconcile(&v2, &[gone, new.clone()], now());
        assert_eq!(d.scale.get(&name(&new)), Some(&3));
    }

    #[test]
    fn history_beyond_the_limit_is_deleted_and_paused_deployments_hold() {
        let mut d = deploy(1, "busybox:9", json!({}));
        d.spec.as_mut().unwrap().revision_history_limit = Some(2);
        let mut sets = Vec::new();
        for i in 1..=5 {
            let v = deploy(1, &format!("busybox:{i}"), json!({}));
            let mut rs = reconcile(&v, &[], now()).create.unwrap();
            rs.metadata.name = Some(format!("web-{i}"));
            rs.metadata
                .annotations
                .as_mut()
                .unwrap()
                .insert(REVISION.into(), i.to_string());
            rs.spec.as_mut().unwrap().replicas = Some(0);
            sets.push(settled(rs, &format!("rs-{i}")));
        }
        let decision = reconcile(&d, &sets, now());
        assert_eq!(decision.delete, ["web-1", "web-2", "web-3"]);
        d.spec.as_mut().unwrap().paused = Some(true);
        let decision = reconcile(&d, &sets, now());
        assert!(decision.create.is_none() && decision.scale.is_empty());
        assert_eq!(
            decision.status.conditions.unwrap()[1].reason.as_deref(),
            Some("DeploymentPaused")
        );
    }

    #[test]
    fn empty_fields_do_not_make_a_template_new() {
        let d = deploy(1, "busybox:1", json!({}));
        let rs = settled(reconcile(&d, &[], now()).create.unwrap(), "rs-1");
        let mut undone = d.clone();
        let container = &mut undone
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0];
        container.resources = Some(Default::default());
        container.env = Some(Vec::new());
        let decision = reconcile(&undone, &[rs], now());
        assert!(decision.create.is_none());
    }

    #[test]
    fn going_back_to_an_old_template_reuses_its_replicaset_with_a_new_revision() {
        let v1 = deploy(2, "busybox:1", json!({}));
        let mut old = settled(reconcile(&v1, &[], now()).create.unwrap(), "rs-1");
        old.spec.as_mut().unwrap().replicas = Some(0);
        let v2 = deploy(2, "busybox:2", json!({}));
        let mut current = settled(
            reconcile(&v2, std::slice::from_ref(&old), now())
                .create
                .unwrap(),
            "rs-2",
        );
        current
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(REVISION.into(), "2".into());
        current.spec.as_mut().unwrap().replicas = Some(2);
        let current = settled(current, "rs-2");
        let d = reconcile(&v1, &[old.clone(), current], now());
        assert!(d.create.is_none());
        assert_eq!(d.bump_revision, Some((name(&old), 3)));
        assert!(d.scale.get(&name(&old)).is_some_and(|n| *n > 0));
    }

    #[test]
    fn only_uncontrolled_matching_replicasets_of_its_namespace_are_adopted() {
        let d = deploy(3, "busybox:1.36", json!({"type": "Recreate"}));
        let d2 = deploy(3, "busybox:1.37", json!({"type": "Recreate"}));
        let decision = reconcile(&d2, &[], now());
        let mut orphan = decision.create.unwrap();
        orphan.metadata.owner_references = None;
        assert!(adoptable(&d, &orphan));
        let mut elsewhere = orphan.clone();
        elsewhere.metadata.namespace = Some("other".into());
        assert!(!adoptable(&d, &elsewhere));
        let mut owned = orphan.clone();
        owned.metadata.owner_references = Some(vec![crate::common::controller_ref(
            "apps/v1",
            "Deployment",
            &d2.metadata,
        )]);
        assert!(!adoptable(&d, &owned));
        let mut unlabelled = orphan.clone();
        unlabelled.metadata.labels = Some([("app".to_string(), "api".to_string())].into());
        assert!(!adoptable(&d, &unlabelled));
        let mut going = orphan;
        going.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        assert!(!adoptable(&d, &going));
    }
}

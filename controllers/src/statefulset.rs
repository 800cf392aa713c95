//! The StatefulSet decision, as kube-controller-manager's stateful set controller
//! makes it: a pod per ordinal (`NAME-0` … `NAME-N-1`, from `ordinals.start`) with a
//! stable identity — its name as hostname, the governing Service as subdomain, a
//! PersistentVolumeClaim per claim template (`TEMPLATE-NAME-ORDINAL`) that outlives
//! the pod —; pods made in ordinal order, each Running and Ready before the next, and
//! removed from the highest ordinal down (`OrderedReady`), or all at once
//! (`Parallel`); failed pods replaced; then the rolling update, from the highest
//! ordinal down to `partition`, one pod at a time once the one before is healthy
//! again (or none: `OnDelete`); and the status with its current and update revisions.
//! Pure; the actor carries it out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use rk8s_api::selector::{Selector, SelectorExt};

use crate::common::{controller_of, is_available, is_ready, ready_since};

pub use crate::history::HASH_LABEL;
/// The label naming a stateful pod (Services can select one pod by it).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label holding a stateful pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// A pod to make: its ordinal, and whether of the current revision (below the
/// partition of a rolling update) rather than the update revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPod {
    /// Its ordinal.
    pub ordinal: i32,
    /// The revision it is made of (a ControllerRevision's name).
    pub revision: String,
}

/// What to do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// Orphaned pods the selector matches, to adopt.
    pub adopt: Vec<String>,
    /// Owned pods the selector no longer matches, to release.
    pub release: Vec<String>,
    /// Pods to make (after their claims).
    pub create: Vec<NewPod>,
    /// Pods to delete.
    pub delete: Vec<String>,
    /// Pods beyond `replicas` being deleted whose claims go with them
    /// (`persistentVolumeClaimRetentionPolicy.whenScaled: Delete`): the pods are made
    /// their claims' owners first.
    pub scaled_down: Vec<String>,
    /// The status.
    pub status: StatefulSetStatus,
    /// Decide again after this long (a pod becomes available after minReadySeconds).
    pub requeue_after: Option<Duration>,
}

/// The StatefulSet's selector, if it has a valid one.
pub fn selector(set: &StatefulSet) -> Option<Selector> {
    rk8s_api::selector::label_selector(&set.spec.as_ref()?.selector).ok()
}

/// The name of the revision of the set's current template (`NAME-HASH`).
pub fn update_revision(set: &StatefulSet) -> String {
    crate::history::name(&set.metadata, &template_hash(set))
}

/// The hash of the set's template (its ControllerRevision's name's end).
pub fn template_hash(set: &StatefulSet) -> String {
    let collisions = set.status.as_ref().and_then(|s| s.collision_count);
    crate::common::template_hash(set.spec.as_ref().map(|s| &s.template), collisions)
}

/// The ordinal of a pod of the set named `set_name`, if its name is one of the set's.
pub fn ordinal_of(set_name: &str, pod_name: &str) -> Option<i32> {
    let n = pod_name.strip_prefix(set_name)?.strip_prefix('-')?;
    // `web-01` is not ordinal 1's name.
    if n.is_empty() || (n.len() > 1 && n.starts_with('0')) || !n.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    n.parse().ok()
}

/// The name of the set's pod of `ordinal`.
pub fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!(
        "{}-{ordinal}",
        set.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The name of the claim of `template` for the pod `pod`.
pub fn claim_name(template: &PersistentVolumeClaim, pod: &str) -> String {
    let t = template.metadata.name.as_deref().unwrap_or_default();
    format!("{t}-{pod}")
}

fn revision_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(HASH_LABEL)
        .map(String::as_str)
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Kubernetes' `isCreated`: the node has said something of it.
fn created(pod: &Pod) -> bool {
    phase(pod).is_some()
}

fn failed(pod: &Pod) -> bool {
    matches!(phase(pod), Some("Failed" | "Succeeded"))
}

/// Running, ready, not going away, and ready for `min_ready` seconds.
fn healthy(pod: &Pod, min_ready: i64, now: jiff::Timestamp) -> bool {
    phase(pod) == Some("Running")
        && is_ready(pod)
        && !terminating(pod)
        && is_available(pod, min_ready, now)
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// The pod of `ordinal` made of `template` (the revision named `revision`): its name,
/// its identity labels, hostname and subdomain, and its claims as volumes.
pub fn pod_for(
    set: &StatefulSet,
    template: PodTemplateSpec,
    ordinal: i32,
    revision: &str,
    owner: OwnerReference,
) -> Pod {
    let name = pod_name(set, ordinal);
    let meta = template.metadata.unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.to_string(), name.clone());
    labels.insert(POD_INDEX_LABEL.to_string(), ordinal.to_string());
    labels.insert(HASH_LABEL.to_string(), revision.to_string());
    let spec_of_set = set.spec.clone().unwrap_or_default();
    let mut spec = template.spec.unwrap_or_default();
    spec.hostname = Some(name.clone());
    spec.subdomain = spec_of_set.service_name.filter(|s| !s.is_empty());
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    for claim in spec_of_set.volume_claim_templates.iter().flatten() {
        let volume_name = claim.metadata.name.clone().unwrap_or_default();
        volumes.retain(|v| v.name != volume_name);
        volumes.push(Volume {
            name: volume_name,
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(claim, &name),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: meta.annotations,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The claims of the pod `pod`: the set's claim templates, named for it, labelled
/// with the set's selector, owned by the set when the set's deletion deletes them
/// (`persistentVolumeClaimRetentionPolicy.whenDeleted: Delete`).
pub fn claims_for(set: &StatefulSet, pod: &str) -> Vec<PersistentVolumeClaim> {
    let spec = set.spec.clone().unwrap_or_default();
    let match_labels = spec.selector.match_labels.clone().unwrap_or_default();
    let when_deleted = spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .and_then(|p| p.when_deleted.as_deref())
        == Some("Delete");
    spec.volume_claim_templates
        .iter()
        .flatten()
        .map(|template| {
            let mut claim = template.clone();
            let meta = ObjectMeta {
                name: Some(claim_name(template, pod)),
                namespace: set.metadata.namespace.clone(),
                labels: Some(
                    claim
                        .metadata
                        .labels
                        .take()
                        .unwrap_or_default()
                        .into_iter()
                        .chain(match_labels.clone())
                        .collect(),
                ),
                annotations: claim.metadata.annotations.take(),
                owner_references: when_deleted.then(|| {
                    let mut owner =
                        crate::common::controller_ref("apps/v1", "StatefulSet", &set.metadata);
                    owner.controller = None;
                    vec![owner]
                }),
                ..Default::default()
            };
            claim.metadata = meta;
            claim.status = None;
            claim
        })
        .collect()
}

/// Decides what to do about `set` given the pods its selector matches (`pods`: its
/// own and orphans). `satisfied`: every creation and deletion asked for before has
/// been seen; when not, only the status is decided.
pub fn reconcile(
    set: &StatefulSet,
    pods: &[Arc<Pod>],
    satisfied: bool,
    now: jiff::Timestamp,
) -> Decision {
    let mut d = Decision::default();
    let uid = set.metadata.uid.as_deref().unwrap_or_default();
    let set_name = set.metadata.name.as_deref().unwrap_or_default();
    let sel = selector(set);
    let matches = |p: &Pod| {
        sel.as_ref()
            .is_some_and(|s| s.matches(p.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())))
    };
    let mut members: BTreeMap<i32, &Pod> = BTreeMap::new();
    for pod in pods.iter().map(|p| p.as_ref()) {
        let owned = controller_of(&pod.metadata).is_some_and(|r| r.uid == uid);
        let live = !terminating(pod);
        match (owned, matches(pod)) {
            (true, false) if live => {
                d.release.push(name(pod));
                continue;
            }
            (false, true) if live && controller_of(&pod.metadata).is_none() => {
                d.adopt.push(name(pod));
            }
            (false, _) => continue,
            _ => {}
        }
        // Pods of the set whose names are not its ordinals' are left alone.
        if let Some(ordinal) = pod
            .metadata
            .name
            .as_deref()
            .and_then(|n| ordinal_of(set_name, n))
        {
            members.insert(ordinal, pod);
        }
    }
    let spec = set.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let start = spec
        .ordinals
        .as_ref()
        .and_then(|o| o.start)
        .unwrap_or(0)
        .max(0);
    let end = start.saturating_add(replicas);
    let min_ready = i64::from(spec.min_ready_seconds.unwrap_or(0));
    let update = update_revision(set);
    let current = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.clone())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| update.clone());
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let on_delete = strategy.type_.as_deref() == Some("OnDelete");
    let partition = strategy
        .rolling_update
        .as_ref()
        .and_then(|r| r.partition)
        .unwrap_or(0)
        .max(0);
    let monotonic = spec.pod_management_policy.as_deref() != Some("Parallel");

    d.status = status(set, &members, &current, &update, min_ready, now);
    d.requeue_after = requeue(&members, min_ready, now);
    if !satisfied {
        return d;
    }
    // The pod an ordinal is made of: below the partition of a rolling update, the
    // current revision; else the update revision.
    let revision_for = |ordinal: i32| {
        if !on_delete && ordinal < start.saturating_add(partition) {
            current.clone()
        } else {
            update.clone()
        }
    };
    if !manage(
        &mut d,
        &members,
        start..end,
        monotonic,
        min_ready,
        now,
        &revision_for,
    ) {
        return d;
    }
    if !condemn(&mut d, set, &members, start..end, monotonic, min_ready, now) {
        return d;
    }
    if on_delete {
        return d;
    }
    // The rolling update: the highest ordinal not of the update revision goes, once
    // every one above it is healthy again.
    for ordinal in (start.saturating_add(partition)..end).rev() {
        let Some(pod) = members.get(&ordinal) else {
            continue;
        };
        if revision_of(pod) != Some(update.as_str()) && !terminating(pod) {
            d.delete.push(name(pod));
            return d;
        }
        if !healthy(pod, min_ready, now) {
            return d;
        }
    }
    d
}

/// The pods of ordinals `range`: those missing made, failed ones replaced; in
/// monotonic order one at a time, each healthy before the next. Returns whether to go
/// on.
fn manage(
    d: &mut Decision,
    members: &BTreeMap<i32, &Pod>,
    range: std::ops::Range<i32>,
    monotonic: bool,
    min_ready: i64,
    now: jiff::Timestamp,
    revision_for: &dyn Fn(i32) -> String,
) -> bool {
    for ordinal in range {
        match members.get(&ordinal) {
            None => {
                d.create.push(NewPod {
                    ordinal,
                    revision: revision_for(ordinal),
                });
                if monotonic {
                    return false;
                }
            }
            Some(pod) if failed(pod) && !terminating(pod) => {
                d.delete.push(name(pod));
                if monotonic {
                    return false;
                }
            }
            Some(pod) => {
                let waits = !created(pod) || terminating(pod) || !healthy(pod, min_ready, now);
                if waits && monotonic {
                    return false;
                }
            }
        }
    }
    true
}

/// The pods beyond the range deleted from the highest ordinal down (one at a time,
/// each once gone, in monotonic order). Returns whether to go on.
fn condemn(
    d: &mut Decision,
    set: &StatefulSet,
    members: &BTreeMap<i32, &Pod>,
    range: std::ops::Range<i32>,
    monotonic: bool,
    min_ready: i64,
    now: jiff::Timestamp,
) -> bool {
    let when_scaled = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref())
        .and_then(|p| p.when_scaled.as_deref())
        == Some("Delete");
    let condemned = members.iter().rev().filter(|(o, _)| !range.contains(o));
    for (_, pod) in condemned {
        if terminating(pod) {
            if monotonic {
                return false;
            }
            continue;
        }
        // In order, an unhealthy pod is deleted only if it is the first one.
        let others_unhealthy = members
            .values()
            .any(|p| p.metadata.name != pod.metadata.name && !healthy(p, min_ready, now));
        if monotonic && !healthy(pod, min_ready, now) && others_unhealthy {
            return false;
        }
        d.delete.push(name(pod));
        if when_scaled {
            d.scaled_down.push(name(pod));
        }
        if monotonic {
            return false;
        }
    }
    true
}

/// When a pod ready but not yet for `min_ready` seconds becomes available.
fn requeue(
    members: &BTreeMap<i32, &Pod>,
    min_ready: i64,
    now: jiff::Timestamp,
) -> Option<Duration> {
    if min_ready <= 0 {
        return None;
    }
    members
        .values()
        .filter(|p| is_ready(p) && !is_available(p, min_ready, now))
        .filter_map(|p| ready_since(p))
        .filter_map(|since| {
            let at = since
                .checked_add(jiff::SignedDuration::from_secs(min_ready))
                .ok()?;
            let wait = at.duration_since(now);
            Duration::try_from(wait).ok()
        })
        .min()
        .map(|d| d + Duration::from_millis(100))
}

/// The status the pods make: counts by state and revision; a finished rolling update
/// makes the update revision the current one.
fn status(
    set: &StatefulSet,
    members: &BTreeMap<i32, &Pod>,
    current: &str,
    update: &str,
    min_ready: i64,
    now: jiff::Timestamp,
) -> StatefulSetStatus {
    let mut s = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        collision_count: set.status.as_ref().and_then(|s| s.collision_count),
        current_revision: Some(current.to_string()),
        update_revision: Some(update.to_string()),
        ..Default::default()
    };
    let (mut ready, mut available, mut at_current, mut at_update) = (0, 0, 0, 0);
    let mut count = 0;
    for pod in members.values() {
        count += 1;
        if phase(pod) == Some("Running") && is_ready(pod) {
            ready += 1;
            if is_available(pod, min_ready, now) {
                available += 1;
            }
        }
        if created(pod) && !terminating(pod) {
            if revision_of(pod) == Some(current) {
                at_current += 1;
            }
            if revision_of(pod) == Some(update) {
                at_update += 1;
            }
        }
    }
    s.replicas = count;
    s.ready_replicas = Some(ready);
    s.available_replicas = Some(available);
    s.current_replicas = Some(at_current);
    s.updated_replicas = Some(at_update);
    let spec = set.spec.clone().unwrap_or_default();
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.type_.as_deref())
        != Some("OnDelete");
    let want = spec.replicas.unwrap_or(1);
    if rolling && at_update == want && ready == want && count == want {
        s.current_revision = Some(update.to_string());
        s.current_replicas = Some(at_update);
    }
    s
}

#[cfg(test)]
#[path = "statefulset_tests.rs"]
mod tests;

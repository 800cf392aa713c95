//! The DaemonSet decision, as kube-controller-manager's daemon controller makes it:
//! which nodes should run the daemon pod (its node selector, required node affinity
//! and tolerations against the node's labels and taints — the scheduler's own rules,
//! [`rk8s_api::placement`]), the pods to create on the nodes that lack one and to
//! delete where none belongs (or more than one runs), then — when nothing else is to
//! do — the rolling update: old pods replaced within `maxUnavailable`, or new ones
//! started beside the old within `maxSurge`; and the status. Pure; the actor carries
//! it out.
//!
//! A daemon pod names its node through required node affinity (`matchFields`
//! `metadata.name`), not `nodeName`: the scheduler binds it, so it waits for the
//! node's room like any pod.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, PodTemplateSpec, Toleration,
};
use rk8s_api::placement::{required_affinity_matches, untolerated};
use rk8s_api::selector::{Selector, SelectorExt};

use crate::common::{controller_of, int_or_percent, is_available, is_ready, ready_since};

pub use crate::history::HASH_LABEL;
/// The label holding the DaemonSet's generation a pod was made at (deprecated in
/// Kubernetes, still written).
pub const GENERATION_LABEL: &str = "pod-template-generation";

/// What to do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// Orphaned pods the selector matches, to adopt.
    pub adopt: Vec<String>,
    /// Owned pods the selector no longer matches, to release.
    pub release: Vec<String>,
    /// Nodes to create a daemon pod on.
    pub create: Vec<String>,
    /// Pods to delete.
    pub delete: Vec<String>,
    /// The status.
    pub status: DaemonSetStatus,
    /// Decide again after this long (a pod becomes available after minReadySeconds).
    pub requeue_after: Option<Duration>,
}

/// The DaemonSet's selector, if it has a valid one.
pub fn selector(ds: &DaemonSet) -> Option<Selector> {
    rk8s_api::selector::label_selector(&ds.spec.as_ref()?.selector).ok()
}

/// The hash of the DaemonSet's template: the name of its ControllerRevision
/// (`NAME-HASH`) and its pods' `controller-revision-hash`.
pub fn template_hash(ds: &DaemonSet) -> String {
    let collisions = ds.status.as_ref().and_then(|s| s.collision_count);
    crate::common::template_hash(ds.spec.as_ref().map(|s| &s.template), collisions)
}

fn template(ds: &DaemonSet) -> PodTemplateSpec {
    ds.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

/// Tolerations a daemon pod gets beside its template's (Kubernetes'
/// `AddOrUpdateDaemonPodTolerations`): it runs on nodes that are not ready,
/// unreachable, under pressure or cordoned — and, with the host's network, on nodes
/// whose pod network is not up.
fn daemon_tolerations(spec: &mut PodSpec) {
    let mut wanted = vec![
        (rk8s_api::placement::NOT_READY, "NoExecute"),
        (rk8s_api::placement::UNREACHABLE, "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        wanted.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect) in wanted {
        let toleration = Toleration {
            key: Some(key.to_string()),
            operator: Some("Exists".to_string()),
            effect: Some(effect.to_string()),
            ..Default::default()
        };
        // Kubernetes replaces a toleration of the same key and effect.
        tolerations
            .retain(|t| !(t.key.as_deref() == Some(key) && t.effect.as_deref() == Some(effect)));
        tolerations.push(toleration);
    }
}

/// The daemon pod of `ds` for `node`: its template, labelled with the template's hash
/// and the DaemonSet's generation, with the daemon tolerations, and required node
/// affinity naming the node alone (the template's terms were checked already).
pub fn pod_for_node(ds: &DaemonSet, node: &str, hash: &str) -> PodTemplateSpec {
    let mut t = template(ds);
    let meta = t.metadata.get_or_insert_with(Default::default);
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(HASH_LABEL.to_string(), hash.to_string());
    if let Some(generation) = ds.metadata.generation {
        labels.insert(GENERATION_LABEL.to_string(), generation.to_string());
    }
    let spec = t.spec.get_or_insert_with(Default::default);
    daemon_tolerations(spec);
    let only_node = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".to_string(),
                operator: "In".to_string(),
                values: Some(vec![node.to_string()]),
            }]),
            ..Default::default()
        }],
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default)
        .required_during_scheduling_ignored_during_execution = Some(only_node);
    t
}

/// Whether `ds` should run a pod on `node`, and whether a pod already there should
/// go on running (Kubernetes' `NodeShouldRunDaemonPod`): a node the template does
/// not select gets none; an untolerated NoSchedule taint keeps new pods off but lets
/// a running one stay, an untolerated NoExecute one does not.
pub fn placement(ds: &DaemonSet, node: &Node) -> (bool, bool) {
    placement_of(&daemon_spec(ds), node)
}

/// The daemon pods' spec: the template's, with the daemon tolerations (made once per
/// decision, not once per node).
fn daemon_spec(ds: &DaemonSet) -> PodSpec {
    let mut spec = template(ds).spec.unwrap_or_default();
    daemon_tolerations(&mut spec);
    spec
}

/// [`placement`] for the daemon pods' `spec`.
fn placement_of(spec: &PodSpec, node: &Node) -> (bool, bool) {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    if spec.node_name.as_deref().is_some_and(|n| n != name) {
        return (false, false);
    }
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    if !required_affinity_matches(spec, labels, name) {
        return (false, false);
    }
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    if untolerated(taints, tolerations, &["NoSchedule", "NoExecute"]).is_none() {
        return (true, true);
    }
    (
        false,
        untolerated(taints, tolerations, &["NoExecute"]).is_none(),
    )
}

/// The node a daemon pod is for: its `nodeName`, or the one its required affinity
/// names (Kubernetes' `GetTargetNodeName`).
pub fn target_node(pod: &Pod) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref() {
        return Some(n);
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_deref())
        .and_then(|v| match v {
            [one] => Some(one.as_str()),
            _ => None,
        })
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

fn hash_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(HASH_LABEL)
        .map(String::as_str)
}

/// Oldest first; at the same time, by name (a stable order).
fn oldest_first(pods: &mut [&Pod]) {
    pods.sort_by(|a, b| {
        let at = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        at(a).cmp(&at(b)).then_with(|| name(a).cmp(&name(b)))
    });
}

/// The new-template and the old-template pod on a node (ignoring terminating ones);
/// `None` when there are more than one of either (the manage step cleans up first).
fn updated_and_old<'a>(pods: &[&'a Pod], hash: &str) -> Option<(Option<&'a Pod>, Option<&'a Pod>)> {
    let (mut new, mut old) = (None, None);
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let slot = if hash_of(pod) == Some(hash) {
            &mut new
        } else {
            &mut old
        };
        if slot.replace(*pod).is_some() {
            return None;
        }
    }
    Some((new, old))
}

/// Decides for `ds`, its `pods` (owned, and the orphans its selector matches) and
/// every node: `satisfied` when the creations and deletions last asked for have all
/// been seen.
pub fn reconcile(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    pods: &[Arc<Pod>],
    satisfied: bool,
    now: jiff::Timestamp,
) -> Decision {
    let mut d = Decision::default();
    let uid = ds.metadata.uid.as_deref().unwrap_or_default();
    let sel = selector(ds);
    let matches = |p: &Pod| {
        sel.as_ref()
            .is_some_and(|s| s.matches(p.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())))
    };
    // The pods this DaemonSet controls, by the node they are for.
    let mut by_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    let mut unplaced: Vec<&Pod> = Vec::new();
    for pod in pods.iter().map(|p| p.as_ref()) {
        let owned = controller_of(&pod.metadata).is_some_and(|r| r.uid == uid);
        let live = pod.metadata.deletion_timestamp.is_none();
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
        match target_node(pod) {
            Some(node) => by_node.entry(node).or_default().push(pod),
            None => unplaced.push(pod),
        }
    }
    for pods in by_node.values_mut() {
        oldest_first(pods);
    }
    let hash = template_hash(ds);
    let spec = ds.spec.clone().unwrap_or_default();
    let min_ready = i64::from(spec.min_ready_seconds.unwrap_or(0));
    let daemon = daemon_spec(ds);
    let placements: HashMap<&str, (bool, bool)> = nodes
        .iter()
        .map(|n| {
            (
                n.metadata.name.as_deref().unwrap_or_default(),
                placement_of(&daemon, n),
            )
        })
        .collect();

    manage(
        &mut d,
        &placements,
        &by_node,
        &unplaced,
        &hash,
        surge_allowed(ds),
    );
    let nothing_to_manage = d.create.is_empty() && d.delete.is_empty();
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate");
    if nothing_to_manage && rolling {
        rolling_update(&mut d, ds, &placements, &by_node, &hash, now);
    }
    if !satisfied {
        // Creations or deletions asked for are not all seen yet: acting on this view
        // would do them twice.
        d.create.clear();
        d.delete.clear();
    }
    d.create.sort();
    d.delete.sort();
    d.delete.dedup();

    // Status, as the pods are now.
    let mut status = ds.status.clone().unwrap_or_default();
    let (mut desired, mut current, mut ready, mut available, mut updated, mut misscheduled) =
        (0, 0, 0, 0, 0, 0);
    let generation = ds.metadata.generation.map(|g| g.to_string());
    for node in nodes {
        let node_name = node.metadata.name.as_deref().unwrap_or_default();
        let (should_run, _) = placements.get(node_name).copied().unwrap_or_default();
        let first = by_node.get(node_name).and_then(|p| p.first().copied());
        if !should_run {
            misscheduled += i32::from(first.is_some());
            continue;
        }
        desired += 1;
        let Some(pod) = first else { continue };
        current += 1;
        if is_ready(pod) {
            ready += 1;
            if is_available(pod, min_ready, now) {
                available += 1;
            } else if let Some(since) = ready_since(pod) {
                let due = since + jiff::SignedDuration::from_secs(min_ready);
                let wait = Duration::try_from(due.duration_since(now)).unwrap_or_default();
                d.requeue_after = Some(d.requeue_after.map_or(wait, |w| w.min(wait)));
            }
        }
        let pod_generation = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(GENERATION_LABEL));
        if hash_of(pod) == Some(hash.as_str())
            || (hash_of(pod).is_none()
                && pod_generation.is_some()
                && pod_generation == generation.as_ref())
        {
            updated += 1;
        }
    }
    status.desired_number_scheduled = desired;
    status.current_number_scheduled = current;
    status.number_misscheduled = misscheduled;
    status.number_ready = ready;
    status.number_available = Some(available);
    status.number_unavailable = Some(desired - available);
    status.updated_number_scheduled = Some(updated);
    status.observed_generation = ds.metadata.generation;
    d.status = status;
    d
}

fn surge_allowed(ds: &DaemonSet) -> bool {
    max_surge_and_unavailable(ds, 1).0 > 0
}

/// (maxSurge, maxUnavailable) against `desired` nodes, percentages rounded up; both
/// zero count as maxUnavailable 1 (Kubernetes' fallback).
fn max_surge_and_unavailable(ds: &DaemonSet, desired: i32) -> (i32, i32) {
    let rolling = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let surge = int_or_percent(rolling.and_then(|r| r.max_surge.as_ref()), desired, 0, true);
    let unavailable = match rolling.and_then(|r| r.max_unavailable.as_ref()) {
        Some(v) => int_or_percent(Some(v), desired, 0, true),
        None => 1,
    };
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// Kubernetes' `manage`: a pod where one should run and none is; failed pods and all
/// but the oldest (with surge: the oldest new and oldest old) where several run;
/// every pod where none should go on running, on a node that is gone, or for no
/// node at all.
fn manage(
    d: &mut Decision,
    placements: &HashMap<&str, (bool, bool)>,
    by_node: &BTreeMap<&str, Vec<&Pod>>,
    unplaced: &[&Pod],
    hash: &str,
    surge: bool,
) {
    let mut nodes: Vec<&&str> = placements.keys().collect();
    nodes.sort();
    for node in nodes {
        let (should_run, should_continue) = placements[*node];
        let pods = by_node.get(*node).map(Vec::as_slice).unwrap_or_default();
        if should_run && pods.is_empty() {
            d.create.push(node.to_string());
            continue;
        }
        let live: Vec<&Pod> = pods
            .iter()
            .copied()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        if !should_continue {
            d.delete.extend(live.iter().map(|p| name(p)));
            continue;
        }
        let mut running = Vec::new();
        for pod in live {
            if matches!(phase(pod), Some("Failed" | "Succeeded")) {
                d.delete.push(name(pod));
            } else {
                running.push(pod);
            }
        }
        if surge {
            let (mut kept_new, mut kept_old) = (false, false);
            for pod in running {
                let kept = if hash_of(pod) == Some(hash) {
                    &mut kept_new
                } else {
                    &mut kept_old
                };
                if *kept {
                    d.delete.push(name(pod));
                }
                *kept = true;
            }
        } else {
            d.delete.extend(running.iter().skip(1).map(|p| name(p)));
        }
    }
    // Pods for nodes that are gone, or that name no node.
    for (node, pods) in by_node {
        if !placements.contains_key(node) {
            d.delete.extend(
                pods.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .map(|p| name(p)),
            );
        }
    }
    d.delete.extend(
        unplaced
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| name(p)),
    );
}

/// Kubernetes' `rollingUpdate`. Without surge: old pods deleted (the manage step puts
/// new ones in their place) while fewer than `maxUnavailable` nodes lack an available
/// pod — an old pod that is not available is replaced at once. With surge: a new pod
/// started beside an available old one on up to `maxSurge` nodes, the old deleted once
/// the new is available.
fn rolling_update(
    d: &mut Decision,
    ds: &DaemonSet,
    placements: &HashMap<&str, (bool, bool)>,
    by_node: &BTreeMap<&str, Vec<&Pod>>,
    hash: &str,
    now: jiff::Timestamp,
) {
    let desired = placements.values().filter(|(run, _)| *run).count();
    let (max_surge, max_unavailable) =
        max_surge_and_unavailable(ds, i32::try_from(desired).unwrap_or(i32::MAX));
    let min_ready = i64::from(
        ds.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0),
    );
    let available = |p: &Pod| is_available(p, min_ready, now);
    if max_surge == 0 {
        let mut unavailable = 0;
        let mut replace_now = Vec::new();
        let mut candidates = Vec::new();
        for pods in by_node.values() {
            match updated_and_old(pods, hash) {
                None | Some((None, None)) | Some((Some(_), Some(_))) => unavailable += 1,
                Some((Some(new), None)) => unavailable += i32::from(!available(new)),
                Some((None, Some(old))) => {
                    if !available(old) {
                        replace_now.push(name(old));
                    } else if unavailable < max_unavailable {
                        candidates.push(name(old));
                    }
                }
            }
        }
        let room = usize::try_from(max_unavailable - unavailable).unwrap_or(0);
        d.delete.extend(replace_now);
        d.delete.extend(candidates.into_iter().take(room));
        return;
    }
    let mut surged = 0;
    let mut create_now = Vec::new();
    let mut candidates = Vec::new();
    for (node, pods) in by_node {
        // A node the DaemonSet no longer runs on gets no new pod (the manage step
        // deals with it).
        if !placements.get(node).is_some_and(|(run, _)| *run) {
            continue;
        }
        match updated_and_old(pods, hash) {
            None => surged += 1,
            Some((_, None)) => {}
            Some((None, Some(old))) => {
                if !available(old) {
                    create_now.push(node.to_string());
                } else if surged < max_surge {
                    candidates.push(node.to_string());
                }
            }
            Some((Some(new), Some(old))) => {
                if available(new) {
                    d.delete.push(name(old));
                } else {
                    surged += 1;
                }
            }
        }
    }
    let room = usize::try_from(max_surge - surged).unwrap_or(0);
    d.create.extend(create_now);
    d.create.extend(candidates.into_iter().take(room));
}

#[cfg(test)]
#[path = "daemonset_tests.rs"]
mod tests;

//! The PodDisruptionBudget status, as kube-controller-manager's disruption controller
//! computes it: the pods the budget selects, how many should be healthy
//! (`minAvailable`, or the expected count less `maxUnavailable`, percentages of the
//! replicas their controllers ask for), how many are (Ready, not being deleted, not
//! just evicted), and so how many disruptions are allowed now. The eviction
//! subresource spends them. Pure; the actor gathers the pods and the controllers'
//! replicas.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rk8s_api::selector::SelectorExt;

use crate::common::{controller_of, int_or_percent, is_ready};

/// How long an evicted pod counts as disrupted before the controller assumes it will
/// not be deleted (Kubernetes' `DeletionTimeout`).
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

/// The replicas the controller `owner` (of a pod in `namespace`) asks for, with the
/// uid it is counted under (a Deployment's, for the pods of its ReplicaSets); `None`
/// when it is of no kind that has a scale.
pub type ScaleOf<'a> = dyn Fn(&OwnerReference, &str) -> Option<(String, i32)> + 'a;

/// The pods `pdb` selects among `pods` (of its namespace): an empty selector selects
/// every pod, none selects none (policy/v1).
pub fn selected<'a>(
    pdb: &PodDisruptionBudget,
    pods: impl Iterator<Item = &'a Pod>,
) -> Vec<&'a Pod> {
    let Some(selector) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return Vec::new();
    };
    let Ok(selector) = rk8s_api::selector::label_selector(selector) else {
        return Vec::new();
    };
    let empty = BTreeMap::new();
    pods.filter(|p| selector.matches(p.metadata.labels.as_ref().unwrap_or(&empty)))
        .collect()
}

/// The number of pods expected (the sum of their controllers' replicas), or why it
/// cannot be known.
fn expected_scale(pods: &[&Pod], scale_of: &ScaleOf<'_>) -> Result<i32, String> {
    let mut scales: HashMap<String, i32> = HashMap::new();
    for pod in pods {
        // Pods no controller owns do not count.
        let Some(owner) = controller_of(&pod.metadata) else {
            continue;
        };
        if scales.contains_key(&owner.uid) {
            continue;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let (uid, replicas) =
            scale_of(owner, ns).ok_or_else(|| format!("found no controllers for pod {name:?}"))?;
        scales.insert(uid, replicas);
    }
    Ok(scales.values().sum())
}

/// (expected pods, pods that should be healthy).
fn expected_and_desired(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    scale_of: &ScaleOf<'_>,
) -> Result<(i32, i32), String> {
    let spec = pdb.spec.clone().unwrap_or_default();
    if let Some(max) = &spec.max_unavailable {
        let expected = expected_scale(pods, scale_of)?;
        let unavailable = int_or_percent(Some(max), expected, 0, true);
        return Ok((expected, (expected - unavailable).max(0)));
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) => Ok((i32::try_from(pods.len()).unwrap_or(i32::MAX), *n)),
        Some(percent) => {
            let expected = expected_scale(pods, scale_of)?;
            Ok((expected, int_or_percent(Some(percent), expected, 0, true)))
        }
        None => Ok((i32::try_from(pods.len()).unwrap_or(i32::MAX), 0)),
    }
}

fn condition(
    allowed: bool,
    reason: &str,
    message: &str,
    old: Option<&Condition>,
    now: jiff::Timestamp,
) -> Condition {
    let status = if allowed { "True" } else { "False" };
    let since = old
        .filter(|c| c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    Condition {
        type_: "DisruptionAllowed".into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: since,
        observed_generation: None,
    }
}

/// The status of `pdb` given the `pods` it selects (see [`selected`]) at `now`, and
/// when to look again (an evicted pod's deletion timing out).
pub fn status(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    scale_of: &ScaleOf<'_>,
    now: jiff::Timestamp,
) -> (PodDisruptionBudgetStatus, Option<Duration>) {
    let old = pdb.status.clone().unwrap_or_default();
    let old_condition = old
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionAllowed");
    let mut status = PodDisruptionBudgetStatus {
        observed_generation: pdb.metadata.generation,
        ..old.clone()
    };
    let (expected, desired) = match expected_and_desired(pdb, pods, scale_of) {
        Ok(v) => v,
        Err(e) => {
            status.disruptions_allowed = 0;
            status.conditions = Some(vec![condition(false, "SyncFailed", &e, old_condition, now)]);
            return (status, None);
        }
    };
    // Pods the eviction subresource is deleting: not healthy, until they go or their
    // deletion times out.
    let mut disrupted = BTreeMap::new();
    let mut recheck: Option<Duration> = None;
    let timeout = jiff::SignedDuration::try_from(DELETION_TIMEOUT).unwrap_or_default();
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(at) = old.disrupted_pods.as_ref().and_then(|d| d.get(&name)) else {
            continue;
        };
        let due = at.0 + timeout;
        if due > now {
            let wait = Duration::try_from(due.duration_since(now)).unwrap_or_default();
            recheck = Some(recheck.map_or(wait, |r| r.min(wait)));
            disrupted.insert(name, at.clone());
        }
    }
    let healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or_default()))
        .filter(|p| is_ready(p))
        .count();
    let healthy = i32::try_from(healthy).unwrap_or(i32::MAX);
    let allowed = if expected <= 0 {
        0
    } else {
        (healthy - desired).max(0)
    };
    status.current_healthy = healthy;
    status.desired_healthy = desired;
    status.expected_pods = expected;
    status.disruptions_allowed = allowed;
    status.disrupted_pods = (!disrupted.is_empty()).then_some(disrupted);
    let (reason, ok) = if allowed > 0 {
        ("SufficientPods", true)
    } else {
        ("InsufficientPods", false)
    };
    status.conditions = Some(vec![condition(ok, reason, "", old_condition, now)]);
    (status, recheck)
}

#[cfg(test)]
#[path = "disruption_tests.rs"]
mod tests;

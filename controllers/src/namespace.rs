//! The namespace controller's decisions (kube-controller-manager's
//! `pkg/controller/namespace/deletion`): what a pass over a terminating namespace's
//! content found ([`Census`]), the five status conditions that report it, and when
//! to look again. [`crate::namespace_actor`] makes the passes.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{NamespaceCondition, NamespaceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The longest wait between two passes over a namespace whose content remains and
/// did not shrink (a pass that finds less starts the waits again from the shortest,
/// so that `kubectl delete namespace` returns soon after the last pod is gone).
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// What one pass over a terminating namespace found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Census {
    /// Why discovery failed, if it did (the pass then deleted nothing).
    pub discovery_failed: Option<String>,
    /// One message per resource whose deletion or listing failed.
    pub deletion_failures: Vec<String>,
    /// Objects still there, by `resource.group` (`pods.`, `widgets.example.com`).
    pub remaining: BTreeMap<String, usize>,
    /// Objects still there by each of their finalizers.
    pub finalizers: BTreeMap<String, usize>,
    /// Seconds the namespace's pods may still take to stop (the longest grace
    /// period of those not finished).
    pub estimate: i64,
}

/// A resource's objects left after its collection was deleted: the
/// `resource.group` it is counted under, how many, their finalizers, and the failure
/// to report (naming `gvr`, `/v1, Resource=configmaps`) when none has a finalizer and
/// none is expected to take time to go (`estimate`, seconds: pods stopping) (kube's
/// `deleteAllContentForGroupVersionResource`).
pub fn count_remaining<'a>(
    census: &mut Census,
    (resource, gvr): (&str, &str),
    estimate: i64,
    finalizers_of_each: impl IntoIterator<Item = &'a [String]>,
    namespace: &str,
) {
    let mut count = 0;
    let mut any_finalizer = false;
    for finalizers in finalizers_of_each {
        count += 1;
        for f in finalizers {
            any_finalizer = true;
            *census.finalizers.entry(f.clone()).or_default() += 1;
        }
    }
    if count == 0 {
        return;
    }
    census.remaining.insert(resource.to_string(), count);
    census.estimate = census.estimate.max(estimate);
    if any_finalizer || estimate > 0 {
        return;
    }
    census.deletion_failures.push(format!(
        "unexpected items still remain in namespace: {namespace} for gvr: {gvr}"
    ));
}

impl Census {
    /// How many objects are left, of every resource.
    pub fn left(&self) -> usize {
        self.remaining.values().sum()
    }
}

/// The condition types the controller owns, in kube's order.
const TYPES: [&str; 5] = [
    "NamespaceDeletionDiscoveryFailure",
    "NamespaceDeletionGroupVersionParsingFailure",
    "NamespaceDeletionContentFailure",
    "NamespaceContentRemaining",
    "NamespaceFinalizersRemaining",
];

/// (reason, message) of each type when nothing is wrong.
const OK: [(&str, &str); 5] = [
    (
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    (
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    (
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    ("ContentRemoved", "All content successfully removed"),
    (
        "ContentHasNoFinalizers",
        "All content-preserving finalizers finished",
    ),
];

/// Errors as client-go's `utilerrors.NewAggregate` prints them: in their order,
/// repeats left out, in brackets when there are several.
fn aggregate(errors: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for e in errors {
        if !seen.contains(&e.as_str()) {
            seen.push(e);
        }
    }
    match seen.as_slice() {
        [one] => one.to_string(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// (reason, message) of each of the five conditions for `census`: `Some` where it
/// reports a problem (status `True`), in kube's words.
fn problems(census: &Census) -> [Option<(&'static str, String)>; 5] {
    let listed = |items: Vec<String>| {
        let mut items = items;
        items.sort();
        items.join(", ")
    };
    [
        census
            .discovery_failed
            .as_ref()
            .map(|why| ("DiscoveryFailed", why.clone())),
        None,
        (!census.deletion_failures.is_empty()).then(|| {
            (
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    census.deletion_failures.len(),
                    aggregate(&census.deletion_failures)
                ),
            )
        }),
        (!census.remaining.is_empty()).then(|| {
            let each = census
                .remaining
                .iter()
                .map(|(r, n)| format!("{r} has {n} resource instances"));
            (
                "SomeResourcesRemain",
                format!("Some resources are remaining: {}", listed(each.collect())),
            )
        }),
        (!census.finalizers.is_empty()).then(|| {
            let each = census
                .finalizers
                .iter()
                .map(|(f, n)| format!("{f} in {n} resource instances"));
            (
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    listed(each.collect())
                ),
            )
        }),
    ]
}

/// Sets the five conditions of `status` to what `census` found (kube's
/// `updateConditions`: a condition's transition time changes only with its status;
/// other conditions are kept). Whether anything changed.
pub fn update_conditions(status: &mut NamespaceStatus, census: &Census, now: &Time) -> bool {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let mut changed = false;
    for ((kind, ok), problem) in TYPES.iter().zip(OK).zip(problems(census)) {
        let (state, reason, message) = match problem {
            Some((reason, message)) => ("True", reason.to_string(), message),
            None => ("False", ok.0.to_string(), ok.1.to_string()),
        };
        match conditions.iter_mut().find(|c| c.type_ == *kind) {
            None => {
                conditions.push(NamespaceCondition {
                    type_: kind.to_string(),
                    status: state.to_string(),
                    reason: Some(reason),
                    message: Some(message),
                    last_transition_time: Some(now.clone()),
                });
                changed = true;
            }
            Some(c) => {
                if c.status != state
                    || c.reason.as_ref() != Some(&reason)
                    || c.message.as_ref() != Some(&message)
                {
                    if c.status != state {
                        c.last_transition_time = Some(now.clone());
                    }
                    c.status = state.to_string();
                    c.reason = Some(reason);
                    c.message = Some(message);
                    changed = true;
                }
            }
        }
    }
    changed
}

/// The shortest wait between passes while pods are stopping.
pub const STOPPING_WAIT: Duration = Duration::from_secs(1);

/// What to do after a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Everything is gone: remove the finalizer `kubernetes`.
    Finalize,
    /// Something remains or failed: look again after this long.
    LookAgain(Duration),
}

/// What follows a pass that found `census`, the `attempt`th in a row that found no
/// less than the one before (from 0): finalized only when nothing remains and nothing
/// failed; otherwise again after a wait doubling from 250 ms up to [`MAX_WAIT`], at
/// least [`STOPPING_WAIT`] while pods are stopping (each pass deletes every one of
/// them again; kube waits half the estimate plus one second, or backs off on
/// failures).
pub fn next(census: &Census, attempt: u32) -> Next {
    let done = census.remaining.is_empty()
        && census.deletion_failures.is_empty()
        && census.discovery_failed.is_none();
    if done {
        return Next::Finalize;
    }
    let mut wait = Duration::from_millis(250).saturating_mul(1 << attempt.min(8));
    if census.estimate > 0 {
        wait = wait.max(STOPPING_WAIT);
    }
    Next::LookAgain(wait.min(MAX_WAIT))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG_MAPS: (&str, &str) = ("configmaps.", "/v1, Resource=configmaps");
    const PODS: (&str, &str) = ("pods.", "/v1, Resource=pods");

    fn now() -> Time {
        Time(jiff::Timestamp::from_second(1_700_000_000).unwrap())
    }

    fn later() -> Time {
        Time(jiff::Timestamp::from_second(1_700_000_060).unwrap())
    }

    fn condition<'a>(status: &'a NamespaceStatus, kind: &str) -> &'a NamespaceCondition {
        let conditions = status.conditions.as_ref().unwrap();
        conditions.iter().find(|c| c.type_ == kind).unwrap()
    }

    #[test]
    fn an_empty_namespace_gets_five_false_conditions_and_is_finalized() {
        let census = Census::default();
        let mut status = NamespaceStatus::default();
        assert!(update_conditions(&mut status, &census, &now()));
        let conditions = status.conditions.as_ref().unwrap();
        assert_eq!(conditions.len(), 5);
        assert!(conditions.iter().all(|c| c.status == "False"));
        let finalizers = condition(&status, "NamespaceFinalizersRemaining");
        assert_eq!(finalizers.reason.as_deref(), Some("ContentHasNoFinalizers"));
        assert_eq!(
            finalizers.message.as_deref(),
            Some("All content-preserving finalizers finished")
        );
        assert!(!update_conditions(&mut status, &census, &later()));
        assert_eq!(next(&census, 0), Next::Finalize);
    }

    #[test]
    fn objects_held_by_finalizers_are_reported_in_kubes_words() {
        let mut census = Census::default();
        let held = vec!["example.com/hold".to_string()];
        count_remaining(
            &mut census,
            ("widgets.example.com", "example.com/v1, Resource=widgets"),
            0,
            [held.as_slice(), held.as_slice()],
            "team",
        );
        count_remaining(&mut census, CONFIG_MAPS, 0, [], "team");
        assert!(census.deletion_failures.is_empty());
        let mut status = NamespaceStatus::default();
        update_conditions(&mut status, &census, &now());
        let remaining = condition(&status, "NamespaceContentRemaining");
        assert_eq!(remaining.status, "True");
        assert_eq!(remaining.reason.as_deref(), Some("SomeResourcesRemain"));
        assert_eq!(
            remaining.message.as_deref(),
            Some("Some resources are remaining: widgets.example.com has 2 resource instances")
        );
        let finalizers = condition(&status, "NamespaceFinalizersRemaining");
        assert_eq!(
            finalizers.message.as_deref(),
            Some(
                "Some content in the namespace has finalizers remaining: example.com/hold in 2 resource instances"
            )
        );
        assert_eq!(
            next(&census, 0),
            Next::LookAgain(Duration::from_millis(250))
        );
        assert_eq!(next(&census, 30), Next::LookAgain(MAX_WAIT));
        assert_eq!(census.left(), 2);
    }

    #[test]
    fn objects_left_without_finalizers_or_pods_to_wait_for_are_a_failure() {
        let mut census = Census::default();
        count_remaining(&mut census, CONFIG_MAPS, 0, [&[][..]], "team");
        assert_eq!(
            census.deletion_failures,
            ["unexpected items still remain in namespace: team for gvr: /v1, Resource=configmaps"]
        );
        let mut status = NamespaceStatus::default();
        update_conditions(&mut status, &census, &now());
        let failed = condition(&status, "NamespaceDeletionContentFailure");
        assert_eq!(failed.reason.as_deref(), Some("ContentDeletionFailed"));
        assert_eq!(
            failed.message.as_deref(),
            Some(
                "Failed to delete all resource types, 1 remaining: unexpected items still remain in namespace: team for gvr: /v1, Resource=configmaps"
            )
        );
        assert_eq!(aggregate(&["b".into(), "a".into(), "b".into()]), "[b, a]");
        assert_eq!(aggregate(&["a".into(), "a".into()]), "a");
        // Pods still stopping are waited for, not a failure.
        let mut stopping = Census::default();
        count_remaining(&mut stopping, PODS, 30, [&[][..]], "team");
        assert_eq!(stopping.estimate, 30);
        assert!(stopping.deletion_failures.is_empty());
        assert_eq!(next(&stopping, 1), Next::LookAgain(STOPPING_WAIT));
        assert_eq!(next(&stopping, 3), Next::LookAgain(Duration::from_secs(2)));
    }

    #[test]
    fn a_condition_keeps_its_transition_time_until_its_status_changes() {
        let mut census = Census::default();
        count_remaining(&mut census, PODS, 30, [&[][..]], "team");
        let mut status = NamespaceStatus::default();
        update_conditions(&mut status, &census, &now());
        // Another count, same status: the message changes, the time stays.
        census.remaining.insert("pods.".into(), 3);
        assert!(update_conditions(&mut status, &census, &later()));
        let remaining = condition(&status, "NamespaceContentRemaining");
        assert_eq!(remaining.last_transition_time, Some(now()));
        assert!(
            remaining
                .message
                .as_ref()
                .unwrap()
                .contains("has 3 resource")
        );
        // Gone: the status turns, and so does the time.
        census.remaining.clear();
        assert!(update_conditions(&mut status, &census, &later()));
        let remaining = condition(&status, "NamespaceContentRemaining");
        assert_eq!(remaining.status, "False");
        assert_eq!(remaining.last_transition_time, Some(later()));
    }
}

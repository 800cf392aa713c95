//! kube-controller-manager's ResourceQuota controller (`pkg/controller/resourcequota`),
//! its decision: a quota's `status.hard` is its `spec.hard` and its `status.used` the
//! namespace's real usage of those names ([`rk8s_api::quota::calculate_usage`] over the
//! followed kinds, object counts of the kinds listed through the API), written only
//! when it differs. Which changes call for a new count is kube's replenishment rule:
//! a quota whose spec moved, an object deleted, an object whose cost changed — not a
//! new object, which admission charged already (recounting then could undo a charge
//! whose object is not stored yet).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceQuota, ResourceQuotaStatus};
use rk8s_api::quantity::Quantity;
use rk8s_api::quota::{self, ResourceList};
use rk8s_api::{AnyObject, ObjectKind};

/// The kinds whose objects the controller follows through informers: every kind with
/// a cost beyond its count, and those with a legacy name (`configmaps`, ...).
pub fn followed_kinds() -> Vec<ObjectKind> {
    use k8s_openapi::api::core::v1::{
        ConfigMap, PersistentVolumeClaim, Pod, ReplicationController, Secret, Service,
    };
    vec![
        ObjectKind::of::<Pod>(),
        ObjectKind::of::<Service>(),
        ObjectKind::of::<PersistentVolumeClaim>(),
        ObjectKind::of::<ConfigMap>(),
        ObjectKind::of::<Secret>(),
        ObjectKind::of::<ReplicationController>(),
        ObjectKind::of::<ResourceQuota>(),
    ]
}

/// The `count/<resource>[.<group>]` names of `q`'s `spec.hard` whose kinds are not
/// followed: `(name, group, plural)`, to be counted through the API.
pub fn listed_counts(q: &ResourceQuota) -> Vec<(String, String, String)> {
    let followed = followed_kinds();
    let hard = q.spec.as_ref().and_then(|s| s.hard.as_ref());
    hard.into_iter()
        .flatten()
        .filter_map(|(name, _)| {
            let (group, plural) = quota::counted_kind(name)?;
            let is_followed = followed
                .iter()
                .any(|k| k.group == group && k.plural == plural);
            (!is_followed && !plural.is_empty())
                .then(|| (name.clone(), group.to_string(), plural.to_string()))
        })
        .collect()
}

/// What the controller observed of a quota's namespace.
pub struct Observed<'a> {
    /// The namespace's objects of the [`followed_kinds`].
    pub objects: &'a [AnyObject],
    /// How many objects a `count/` name of a kind listed through the API counts
    /// (absent: not listed this time, the old value stands).
    pub counted: &'a BTreeMap<String, usize>,
    /// Now (a pod past its deletion grace stops counting).
    pub now: jiff::Timestamp,
}

/// The usage of `q`'s names: kube's `CalculateUsage` over the followed kinds, and the
/// listed counts (an object-count name matches no scope: a scoped quota counts 0).
pub fn usage(q: &ResourceQuota, seen: &Observed<'_>) -> ResourceList {
    let mut used = quota::calculate_usage(q, &followed_kinds(), seen.objects, seen.now);
    let scoped = q.spec.as_ref().is_some_and(|s| {
        s.scopes.as_ref().is_some_and(|v| !v.is_empty()) || s.scope_selector.is_some()
    });
    let hard = q.spec.as_ref().and_then(|s| s.hard.as_ref());
    for (name, n) in seen.counted {
        if hard.is_some_and(|h| h.contains_key(name)) {
            let n = if scoped { 0 } else { *n };
            used.insert(
                name.clone(),
                Quantity::from_i64(i64::try_from(n).unwrap_or(i64::MAX)),
            );
        }
    }
    used
}

/// The status to write to `q`, or `None` when it already says it.
pub fn decide(q: &ResourceQuota, seen: &Observed<'_>) -> Option<ResourceQuotaStatus> {
    let status = quota::desired_status(q, &usage(q, seen));
    (!quota::same_status(q.status.as_ref(), &status)).then_some(status)
}

/// kube's replenishment rule for an object that changed from `before` (`None`: not
/// seen before, a new object) to `after` (`None`: deleted): whether its namespace's
/// quotas need a new count.
pub fn needs_recount(before: Option<&ResourceList>, after: Option<&ResourceList>) -> bool {
    match (before, after) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(b), Some(a)) => b != a,
    }
}

/// Whether a quota, as the informer shows it, needs a count: a new quota, or one
/// whose `spec.hard` no longer is its `status.hard`.
pub fn quota_needs_count(q: &ResourceQuota) -> bool {
    let spec = q.spec.as_ref().and_then(|s| s.hard.as_ref());
    let status = q.status.as_ref();
    status.and_then(|s| s.used.as_ref()).is_none()
        || quota::parse_list(spec) != quota::parse_list(status.and_then(|s| s.hard.as_ref()))
        || spec.map_or(0, BTreeMap::len)
            != status
                .and_then(|s| s.hard.as_ref())
                .map_or(0, BTreeMap::len)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Pod};
    use serde_json::json;

    fn quota(v: serde_json::Value) -> ResourceQuota {
        serde_json::from_value(v).unwrap()
    }

    fn list(pairs: &[(&str, &str)]) -> ResourceList {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
            .collect()
    }

    fn now() -> jiff::Timestamp {
        "2025-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_new_quota_gets_hard_and_used_then_nothing_more_is_written() {
        let mut q = quota(json!({"metadata": {"name": "q", "namespace": "ns"},
            "spec": {"hard": {"pods": "2", "configmaps": "5", "count/deployments.apps": "1"}}}));
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}))
        .unwrap();
        let objects = [AnyObject::from(pod), AnyObject::from(ConfigMap::default())];
        let counted = BTreeMap::from([("count/deployments.apps".to_string(), 3)]);
        let seen = Observed {
            objects: &objects,
            counted: &counted,
            now: now(),
        };
        assert!(quota_needs_count(&q));
        let status = decide(&q, &seen).expect("a first status");
        assert_eq!(
            quota::parse_list(status.used.as_ref()),
            list(&[
                ("pods", "1"),
                ("configmaps", "1"),
                ("count/deployments.apps", "3")
            ])
        );
        assert_eq!(
            quota::parse_list(status.hard.as_ref()),
            list(&[
                ("pods", "2"),
                ("configmaps", "5"),
                ("count/deployments.apps", "1")
            ])
        );
        q.status = Some(status);
        assert!(!quota_needs_count(&q));
        assert_eq!(decide(&q, &seen), None);
        // Without a listing the count of deployments stands.
        let none = BTreeMap::new();
        assert_eq!(
            decide(
                &q,
                &Observed {
                    objects: &objects,
                    counted: &none,
                    now: now()
                }
            ),
            None
        );
        // A charge admission made for an object never stored is given back.
        q.status.as_mut().unwrap().used.as_mut().unwrap().insert(
            "pods".into(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("2".into()),
        );
        let fixed = decide(&q, &seen).expect("a correction");
        assert_eq!(
            quota::parse_list(fixed.used.as_ref())["pods"],
            "1".parse().unwrap()
        );
    }

    #[test]
    fn scoped_quotas_count_no_listed_objects_and_spec_changes_call_for_a_count() {
        let mut q = quota(json!({"metadata": {"name": "q"},
            "spec": {"hard": {"count/jobs.batch": "4"}, "scopes": ["BestEffort"]}}));
        let counted = BTreeMap::from([("count/jobs.batch".to_string(), 3)]);
        let seen = Observed {
            objects: &[],
            counted: &counted,
            now: now(),
        };
        let status = decide(&q, &seen).unwrap();
        assert_eq!(
            quota::parse_list(status.used.as_ref()),
            list(&[("count/jobs.batch", "0")])
        );
        assert_eq!(
            listed_counts(&q),
            vec![("count/jobs.batch".into(), "batch".into(), "jobs".into())]
        );
        q.status = Some(status);
        q.spec.as_mut().unwrap().hard.as_mut().unwrap().insert(
            "count/configmaps".into(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("1".into()),
        );
        assert!(quota_needs_count(&q));
        assert_eq!(
            listed_counts(&q).len(),
            1,
            "configmaps are followed, not listed"
        );
    }

    #[test]
    fn only_deletions_and_changed_costs_call_for_a_recount() {
        let a = list(&[("pods", "1")]);
        let b = list(&[("count/pods", "1")]);
        let cases = [
            (None, Some(&a), false),
            (Some(&a), Some(&a), false),
            (Some(&a), Some(&b), true),
            (Some(&a), None, true),
            (None, None, true),
        ];
        for (before, after, want) in cases {
            assert_eq!(
                needs_recount(before, after),
                want,
                "{before:?} -> {after:?}"
            );
        }
    }
}

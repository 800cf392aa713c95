//! kube-apiserver's Priority admission (`plugin/pkg/admission/priority`): a new pod
//! gets the `priority` and `preemptionPolicy` of its `priorityClassName` (or of the
//! `globalDefault` PriorityClass, or 0 and `PreemptLowerPriority` when there is none);
//! a pod that names a missing class, or states another priority than its class
//! gives, is refused with kube's 403 and wording; a second `globalDefault` class is
//! refused. The classes every cluster has (`system-node-critical`,
//! `system-cluster-critical`) are made at start ([`crate::system_objects`]).
//!
//! Preemption (evicting lower-priority pods to make room) is the scheduler's and is
//! not done: priority orders the scheduling queue only.

use k8s_openapi::api::scheduling::v1::PriorityClass;
use std::sync::Arc;

use rk8s_api::AnyObject;

use crate::lister::Lister;
use crate::status::{ApiError, ApiResult, qualified};

/// The preemption policy of a pod when no class gives one (kube's default).
const DEFAULT_PREEMPTION: &str = "PreemptLowerPriority";

/// Admits a write of `obj` (`old` for an update) against the PriorityClasses in
/// `classes` (read only for pods and PriorityClasses).
pub fn admit(classes: &Lister, obj: &mut AnyObject, old: Option<&AnyObject>) -> ApiResult<()> {
    if matches!(obj, AnyObject::Pod(_) | AnyObject::PriorityClass(_)) {
        admit_with(&classes.list(None), obj, old)
    } else {
        Ok(())
    }
}

/// [`admit`] with the classes at hand.
pub fn admit_with(
    classes: &[Arc<AnyObject>],
    obj: &mut AnyObject,
    old: Option<&AnyObject>,
) -> ApiResult<()> {
    let forbidden = |obj: &AnyObject, why: String| {
        ApiError::forbidden(format!(
            "{} is forbidden: {why}",
            qualified(&obj.kind(), obj.name())
        ))
    };
    match (&mut *obj, old) {
        (AnyObject::Pod(pod), Some(AnyObject::Pod(old))) => {
            // Priority is set once, on create; an update keeps it.
            if let (Some(spec), Some(old)) = (pod.spec.as_mut(), old.spec.as_ref()) {
                spec.priority = spec.priority.or(old.priority);
                if spec.preemption_policy.is_none() {
                    spec.preemption_policy.clone_from(&old.preemption_policy);
                }
            }
            Ok(())
        }
        (AnyObject::Pod(pod), None) => {
            let spec = pod.spec.get_or_insert_with(Default::default);
            let named = spec.priority_class_name.clone().filter(|n| !n.is_empty());
            let (priority, policy) = match &named {
                Some(name) => match class(classes, name) {
                    Some(pc) => (pc.value, pc.preemption_policy.clone()),
                    None => {
                        let why = format!("no PriorityClass with name {name} was found");
                        return Err(forbidden(obj, why));
                    }
                },
                None => match default_class(classes) {
                    Some(pc) => {
                        spec.priority_class_name = pc.metadata.name.clone();
                        (pc.value, pc.preemption_policy.clone())
                    }
                    None => (0, Some(DEFAULT_PREEMPTION.to_string())),
                },
            };
            if let Some(asked) = spec.priority.filter(|p| *p != priority) {
                let why = format!(
                    "the integer value of priority ({asked}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
                );
                return Err(forbidden(obj, why));
            }
            spec.priority = Some(priority);
            if let Some(policy) = policy {
                if let Some(asked) = spec.preemption_policy.as_deref().filter(|p| *p != policy) {
                    let why = format!(
                        "the string value of PreemptionPolicy ({asked}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
                    );
                    return Err(forbidden(obj, why));
                }
                spec.preemption_policy = Some(policy);
            }
            Ok(())
        }
        (AnyObject::PriorityClass(pc), old) if pc.global_default == Some(true) => {
            let Some(default) = default_class(classes) else {
                return Ok(());
            };
            let same = default.metadata.name == pc.metadata.name;
            if old.is_none() || !same {
                let why = format!(
                    "PriorityClass {} is already marked as default. Only one default can exist",
                    default.metadata.name.as_deref().unwrap_or_default()
                );
                return Err(forbidden(obj, why));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn class(classes: &[Arc<AnyObject>], name: &str) -> Option<PriorityClass> {
    classes.iter().find_map(|o| match o.as_ref() {
        AnyObject::PriorityClass(pc) if pc.metadata.name.as_deref() == Some(name) => {
            Some(pc.as_ref().clone())
        }
        _ => None,
    })
}

/// The `globalDefault` class; of several (a race of two creates), the lowest value,
/// as kube picks.
fn default_class(classes: &[Arc<AnyObject>]) -> Option<PriorityClass> {
    classes
        .iter()
        .filter_map(|o| match o.as_ref() {
            AnyObject::PriorityClass(pc) if pc.global_default == Some(true) => {
                Some(pc.as_ref().clone())
            }
            _ => None,
        })
        .min_by_key(|pc| pc.value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rk8s_api::object::kind_named;
    use serde_json::json;

    fn obj(kind: &str, v: serde_json::Value) -> AnyObject {
        AnyObject::from_value(&kind_named(kind).unwrap(), v)
            .unwrap()
            .unwrap()
    }

    fn class(name: &str, value: i32, default: bool) -> Arc<AnyObject> {
        Arc::new(obj(
            "PriorityClass",
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": name}, "value": value, "globalDefault": default,
                "preemptionPolicy": "Never"}),
        ))
    }

    fn pod(spec: serde_json::Value) -> AnyObject {
        obj(
            "Pod",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
                "spec": spec}),
        )
    }

    fn priority(p: &AnyObject) -> (Option<i32>, Option<String>, Option<String>) {
        let AnyObject::Pod(p) = p else { panic!() };
        let s = p.spec.as_ref().unwrap();
        (
            s.priority,
            s.priority_class_name.clone(),
            s.preemption_policy.clone(),
        )
    }

    #[test]
    fn a_pod_gets_its_class_priority_and_policy() {
        let classes = [class("high", 1000, false)];
        let mut p = pod(json!({"containers": [], "priorityClassName": "high"}));
        admit_with(&classes, &mut p, None).unwrap();
        assert_eq!(
            priority(&p),
            (Some(1000), Some("high".into()), Some("Never".into()))
        );
    }

    #[test]
    fn without_a_class_the_global_default_or_zero() {
        let mut p = pod(json!({"containers": []}));
        admit_with(&[], &mut p, None).unwrap();
        assert_eq!(
            priority(&p),
            (Some(0), None, Some("PreemptLowerPriority".into()))
        );
        let classes = [
            class("b", 7, true),
            class("a", 5, true),
            class("c", 1, false),
        ];
        let mut p = pod(json!({"containers": []}));
        admit_with(&classes, &mut p, None).unwrap();
        assert_eq!(
            priority(&p),
            (Some(5), Some("a".into()), Some("Never".into()))
        );
    }

    #[test]
    fn a_missing_class_or_a_stated_priority_is_refused_in_kubes_words() {
        let mut p = pod(json!({"containers": [], "priorityClassName": "gold"}));
        let e = admit_with(&[], &mut p, None).unwrap_err();
        assert_eq!(e.code, http::StatusCode::FORBIDDEN);
        assert_eq!(
            e.message,
            "pods \"web\" is forbidden: no PriorityClass with name gold was found"
        );
        let mut p = pod(json!({"containers": [], "priority": 3}));
        let e = admit_with(&[], &mut p, None).unwrap_err();
        assert_eq!(
            e.message,
            "pods \"web\" is forbidden: the integer value of priority (3) must not be provided in pod spec; priority admission controller computed 0 from the given PriorityClass name"
        );
    }

    #[test]
    fn only_one_class_may_be_the_default() {
        let classes = [class("a", 5, true)];
        let mut second = (*class("b", 1, true)).clone();
        let e = admit_with(&classes, &mut second, None).unwrap_err();
        assert_eq!(
            e.message,
            "priorityclasses.scheduling.k8s.io \"b\" is forbidden: PriorityClass a is already marked as default. Only one default can exist"
        );
        let mut same = (*classes[0]).clone();
        admit_with(&classes, &mut same, Some(&classes[0])).unwrap();
    }

    #[test]
    fn an_update_keeps_the_priority_set_on_create() {
        let old = pod(json!({"containers": [], "priority": 9, "preemptionPolicy": "Never"}));
        let mut new = pod(json!({"containers": []}));
        admit_with(&[], &mut new, Some(&old)).unwrap();
        assert_eq!(priority(&new), (Some(9), None, Some("Never".into())));
    }
}

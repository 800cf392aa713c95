//! A pod's `ephemeralcontainers` subresource (kube's `podEphemeralContainersStrategy`):
//! the one way to add ephemeral containers (`kubectl debug`). A write changes
//! nothing but `spec.ephemeralContainers`, may only add to them, and a new pod may
//! not come with any.

use k8s_openapi::api::core::v1::{EphemeralContainer, Pod};
use rk8s_api::validation::{FieldError, Reason};
use rk8s_api::{AnyObject, FieldPath};

/// kube's `dropNonEphemeralContainerUpdates`: the pod as it is, with the written
/// ephemeral containers (and the written resourceVersion, for the precondition).
pub fn prepare_update(new: &mut AnyObject, old: &AnyObject) {
    let (AnyObject::Pod(n), AnyObject::Pod(o)) = (&mut *new, old) else {
        return;
    };
    let ephemeral = n.spec.as_mut().and_then(|s| s.ephemeral_containers.take());
    let rv = n.metadata.resource_version.take();
    **n = o.as_ref().clone();
    n.metadata.resource_version = rv;
    if let Some(spec) = n.spec.as_mut() {
        spec.ephemeral_containers = ephemeral;
    }
}

/// kube's `ValidatePodEphemeralContainersUpdate`: an existing ephemeral container may
/// be neither removed nor changed (each looked up by name: a patch need not keep
/// their order), and a static pod gets none. (kube appends the difference to "may
/// not be changed"; this says which container.)
pub fn validate_update(new: &AnyObject, old: &AnyObject) -> Vec<FieldError> {
    let (AnyObject::Pod(n), AnyObject::Pod(o)) = (new, old) else {
        return Vec::new();
    };
    let mirror = o
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    if mirror {
        return vec![FieldError {
            path: FieldPath::root(),
            reason: Reason::Forbidden("static pods do not support ephemeral containers".into()),
        }];
    }
    let path = FieldPath::root().key("spec").key("ephemeralContainers");
    let new: std::collections::HashMap<&str, &EphemeralContainer> =
        of(n).map(|c| (c.name.as_str(), c)).collect();
    let mut errors = Vec::new();
    for old in of(o) {
        match new.get(old.name.as_str()).copied() {
            None => errors.push(FieldError {
                path: path.clone(),
                reason: Reason::Forbidden(format!(
                    "existing ephemeral containers {:?} may not be removed\n",
                    old.name
                )),
            }),
            Some(new) if new != old => errors.push(FieldError {
                path: path.clone(),
                reason: Reason::Forbidden(format!(
                    "existing ephemeral containers {:?} may not be changed\n",
                    old.name
                )),
            }),
            Some(_) => {}
        }
    }
    errors
}

/// kube's `ValidatePodCreate`: ephemeral containers come only through the
/// subresource, once the pod exists.
pub fn validate_create(new: &AnyObject) -> Vec<FieldError> {
    match new {
        AnyObject::Pod(p) if of(p).next().is_some() => vec![FieldError {
            path: FieldPath::root().key("spec").key("ephemeralContainers"),
            reason: Reason::Forbidden("cannot be set on create".into()),
        }],
        _ => Vec::new(),
    }
}

fn of(pod: &Pod) -> impl Iterator<Item = &EphemeralContainer> {
    pod.spec
        .iter()
        .flat_map(|s| s.ephemeral_containers.iter().flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ephemeral: serde_json::Value) -> AnyObject {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "d", "resourceVersion": "5", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "app", "image": "x"}], "ephemeralContainers": ephemeral},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        AnyObject::Pod(Box::new(pod))
    }

    fn messages(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(FieldError::kubernetes_message).collect()
    }

    #[test]
    fn a_write_keeps_all_but_the_ephemeral_containers() {
        let old = pod(serde_json::json!([]));
        let mut new = pod(serde_json::json!([{"name": "dbg", "image": "busybox"}]));
        let AnyObject::Pod(p) = &mut new else {
            unreachable!()
        };
        p.metadata.labels = None;
        p.spec.as_mut().unwrap().containers[0].image = Some("changed".into());
        p.status = None;
        p.metadata.resource_version = Some("4".into());
        prepare_update(&mut new, &old);
        let AnyObject::Pod(p) = &new else {
            unreachable!()
        };
        assert!(p.metadata.labels.is_some());
        assert_eq!(
            p.spec.as_ref().unwrap().containers[0].image.as_deref(),
            Some("x")
        );
        assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
        assert_eq!(p.metadata.resource_version.as_deref(), Some("4"));
        assert_eq!(of(p).next().unwrap().name, "dbg");
    }

    #[test]
    fn existing_ones_may_be_neither_removed_nor_changed_and_none_come_on_create() {
        let one = pod(serde_json::json!([{"name": "a", "image": "x"}]));
        let two =
            pod(serde_json::json!([{"name": "b", "image": "y"}, {"name": "a", "image": "x"}]));
        assert!(validate_update(&two, &one).is_empty());
        assert_eq!(
            messages(&validate_update(&pod(serde_json::json!([])), &one)),
            [
                "spec.ephemeralContainers: Forbidden: existing ephemeral containers \"a\" may not be removed\n"
            ]
        );
        let changed = pod(serde_json::json!([{"name": "a", "image": "z"}]));
        assert_eq!(
            messages(&validate_update(&changed, &one)),
            [
                "spec.ephemeralContainers: Forbidden: existing ephemeral containers \"a\" may not be changed\n"
            ]
        );
        assert_eq!(
            messages(&validate_create(&one)),
            ["spec.ephemeralContainers: Forbidden: cannot be set on create"]
        );
        assert!(validate_create(&pod(serde_json::json!([]))).is_empty());
    }
}

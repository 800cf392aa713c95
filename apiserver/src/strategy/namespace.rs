//! kube's namespace strategies (`pkg/registry/core/namespace/strategy.go`):
//! - the label `kubernetes.io/metadata.name` with the namespace's name, set on every
//!   create and update, so no user can change or remove it (NetworkPolicies select
//!   namespaces by it);
//! - the finalizer `kubernetes` in `spec.finalizers` of every new namespace: the
//!   namespace controller removes it once the namespace's content is gone, and only
//!   then is a deleted namespace removed;
//! - `spec.finalizers` changed only through the `finalize` subresource, which changes
//!   nothing else of the spec and status.

use rk8s_api::AnyObject;
use rk8s_api::finalizers::KUBERNETES;
use rk8s_api::validation::{FieldError, Reason};

/// Gives a new Namespace the finalizer `kubernetes` if it does not have it.
pub fn add_finalizer(obj: &mut AnyObject) {
    if let AnyObject::Namespace(ns) = obj {
        let finalizers = ns
            .spec
            .get_or_insert_with(Default::default)
            .finalizers
            .get_or_insert_with(Vec::new);
        if !finalizers.iter().any(|f| f == KUBERNETES) {
            finalizers.push(KUBERNETES.to_string());
        }
    }
}

/// An update of a Namespace (not through `finalize`) keeps its finalizers.
pub fn keep_finalizers(new: &mut AnyObject, old: &AnyObject) {
    if let (AnyObject::Namespace(new), AnyObject::Namespace(old)) = (new, old) {
        new.spec = old.spec.clone();
    }
}

/// Whether an update that leaves a deleted object without metadata finalizers may
/// remove it: a Namespace only once its `spec.finalizers` are empty too (kube's
/// `ShouldDeleteNamespaceDuringUpdate`: a status write of a terminating namespace
/// keeps it, the namespace controller's `finalize` removes it). Any other kind may.
pub fn may_go_on_update(new: &AnyObject) -> bool {
    match new {
        AnyObject::Namespace(ns) => ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_none_or(Vec::is_empty),
        _ => true,
    }
}

/// A namespace's phase says whether it is being deleted: `Active` without a
/// `deletionTimestamp`, `Terminating` with one (kube's
/// `ValidateNamespaceStatusUpdate`; a status write could otherwise close a live
/// namespace to new content).
pub fn validate_phase(obj: &AnyObject) -> Vec<FieldError> {
    let AnyObject::Namespace(ns) = obj else {
        return Vec::new();
    };
    let phase = ns
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    let (wanted, detail) = match ns.metadata.deletion_timestamp {
        None => (
            "Active",
            "may only be 'Active' if `deletionTimestamp` is empty",
        ),
        Some(_) => (
            "Terminating",
            "may only be 'Terminating' if `deletionTimestamp` is not empty",
        ),
    };
    if phase == wanted {
        return Vec::new();
    }
    vec![FieldError {
        path: rk8s_api::FieldPath::parse("status.Phase"),
        reason: Reason::Invalid {
            value: phase,
            detail: detail.into(),
        },
    }]
}

/// Whether a namespace is being deleted (`Terminating`).
pub fn is_terminating(obj: &AnyObject) -> bool {
    match obj {
        AnyObject::Namespace(ns) => {
            ns.metadata.deletion_timestamp.is_some()
                || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
        }
        _ => false,
    }
}

/// Gives a Namespace the label `kubernetes.io/metadata.name` with its name.
pub fn label(obj: &mut AnyObject) {
    if let AnyObject::Namespace(ns) = obj
        && let Some(name) = ns.metadata.name.clone()
    {
        ns.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(rk8s_api::netpol::NAMESPACE_NAME_LABEL.to_string(), name);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{prepare_create, prepare_update};
    use rk8s_api::{AnyObject, manifest};

    fn load(text: &str) -> AnyObject {
        manifest::load("t.yaml", text).unwrap().remove(0).object
    }

    #[test]
    fn namespaces_carry_their_name_label_which_no_update_changes() {
        let mut ns =
            load("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a, labels: {a: b}}\n");
        prepare_create(&mut ns);
        let label = |o: &AnyObject| {
            o.metadata()
                .labels
                .clone()
                .unwrap_or_default()
                .get("kubernetes.io/metadata.name")
                .cloned()
        };
        assert_eq!(label(&ns).as_deref(), Some("team-a"));
        assert_eq!(ns.metadata().labels.as_ref().unwrap()["a"], "b");
        let mut changed = load(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a, labels: {kubernetes.io/metadata.name: other}}\n",
        );
        prepare_update(&mut changed, &ns);
        assert_eq!(label(&changed).as_deref(), Some("team-a"));
        let mut removed = load("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n");
        prepare_update(&mut removed, &ns);
        assert_eq!(label(&removed).as_deref(), Some("team-a"));
    }
}

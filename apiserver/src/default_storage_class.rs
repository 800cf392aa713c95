//! kube-apiserver's DefaultStorageClass admission
//! (`plugin/pkg/admission/storage/storageclass/setdefault`): a PersistentVolumeClaim
//! created without a class (neither `spec.storageClassName` nor the beta annotation;
//! an empty name asks for no class and is kept) gets the default StorageClass — the
//! one annotated `storageclass.kubernetes.io/is-default-class: "true"`, the newest
//! when several are (then by name), as kube picks it.

use std::sync::Arc;

use rk8s_api::AnyObject;

use crate::lister::Lister;

/// The beta annotation a claim may name its class with.
const BETA_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

/// Gives a claim being created the default class, if it names none.
pub fn admit(classes: &Lister, obj: &mut AnyObject) {
    if matches!(obj, AnyObject::PersistentVolumeClaim(_)) {
        admit_with(&classes.list(None), obj);
    }
}

/// [`admit`] with the classes at hand.
pub fn admit_with(classes: &[Arc<AnyObject>], obj: &mut AnyObject) {
    let AnyObject::PersistentVolumeClaim(claim) = obj else {
        return;
    };
    let annotated = claim
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(BETA_CLASS));
    let spec = claim.spec.get_or_insert_with(Default::default);
    if spec.storage_class_name.is_some() || annotated {
        return;
    }
    let default =
        rk8s_api::placement::default_storage_class(classes.iter().filter_map(
            |o| match o.as_ref() {
                AnyObject::StorageClass(c) => Some(c.as_ref()),
                _ => None,
            },
        ));
    if let Some(class) = default {
        spec.storage_class_name.clone_from(&class.metadata.name);
    }
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

    fn class(name: &str, created: &str, default: bool) -> Arc<AnyObject> {
        Arc::new(obj(
            "StorageClass",
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": name, "creationTimestamp": created,
                    "annotations": {rk8s_api::placement::DEFAULT_CLASS_ANNOTATIONS[0]: default.to_string()}},
                "provisioner": "p"}),
        ))
    }

    fn claim(spec: serde_json::Value) -> AnyObject {
        obj(
            "PersistentVolumeClaim",
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "namespace": "default"}, "spec": spec}),
        )
    }

    fn class_of(o: &AnyObject) -> Option<String> {
        let AnyObject::PersistentVolumeClaim(c) = o else {
            panic!()
        };
        c.spec.as_ref().unwrap().storage_class_name.clone()
    }

    #[test]
    fn a_claim_without_a_class_gets_the_newest_default() {
        let classes = [
            class("old", "2024-01-01T00:00:00Z", true),
            class("new", "2025-01-01T00:00:00Z", true),
            class("newest", "2026-01-01T00:00:00Z", false),
        ];
        let mut c = claim(json!({}));
        admit_with(&classes, &mut c);
        assert_eq!(class_of(&c).as_deref(), Some("new"));
    }

    #[test]
    fn a_named_or_empty_class_is_kept() {
        let classes = [class("local-path", "2024-01-01T00:00:00Z", true)];
        let mut c = claim(json!({"storageClassName": ""}));
        admit_with(&classes, &mut c);
        assert_eq!(class_of(&c).as_deref(), Some(""));
        let mut c = claim(json!({"storageClassName": "fast"}));
        admit_with(&classes, &mut c);
        assert_eq!(class_of(&c).as_deref(), Some("fast"));
        let mut c = claim(json!({}));
        admit_with(&[], &mut c);
        assert_eq!(class_of(&c), None);
    }
}

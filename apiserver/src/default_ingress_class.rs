//! kube-apiserver's DefaultIngressClass admission
//! (`plugin/pkg/admission/network/defaultingressclass`): an Ingress created without
//! a class (neither `spec.ingressClassName` nor the `kubernetes.io/ingress.class`
//! annotation) gets the default IngressClass — the one annotated
//! `ingressclass.kubernetes.io/is-default-class: "true"`, the newest when several
//! are (then by name) — `rk8s` unless the cluster says otherwise.

use std::sync::Arc;

use rk8s_api::AnyObject;

use crate::lister::Lister;

/// Gives an Ingress being created the default class, if it names none.
pub fn admit(classes: &Lister, obj: &mut AnyObject) {
    if matches!(obj, AnyObject::Ingress(_)) {
        admit_with(&classes.list(None), obj);
    }
}

/// [`admit`] with the classes at hand.
pub fn admit_with(classes: &[Arc<AnyObject>], obj: &mut AnyObject) {
    let AnyObject::Ingress(ingress) = obj else {
        return;
    };
    if rk8s_api::ingress::class_of(ingress).is_some() {
        return;
    }
    let default =
        rk8s_api::ingress::default_class(classes.iter().filter_map(|o| match o.as_ref() {
            AnyObject::IngressClass(c) => Some(&**c),
            _ => None,
        }));
    if let Some(class) = default {
        ingress
            .spec
            .get_or_insert_with(Default::default)
            .ingress_class_name
            .clone_from(&class.metadata.name);
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
            "IngressClass",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                "metadata": {"name": name, "creationTimestamp": created,
                    "annotations": {rk8s_api::ingress::DEFAULT_CLASS_ANNOTATION: default.to_string()}},
                "spec": {"controller": "c"}}),
        ))
    }

    fn ingress(spec: serde_json::Value, annotations: serde_json::Value) -> AnyObject {
        obj(
            "Ingress",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "web", "namespace": "default", "annotations": annotations},
                "spec": spec}),
        )
    }

    fn class_of(o: &AnyObject) -> Option<String> {
        let AnyObject::Ingress(i) = o else { panic!() };
        i.spec.as_ref().unwrap().ingress_class_name.clone()
    }

    #[test]
    fn an_ingress_without_a_class_gets_the_newest_default() {
        let classes = [
            class("rk8s", "2024-01-01T00:00:00Z", true),
            class("newer", "2025-01-01T00:00:00Z", true),
            class("newest", "2026-01-01T00:00:00Z", false),
        ];
        let mut i = ingress(json!({}), json!({}));
        admit_with(&classes, &mut i);
        assert_eq!(class_of(&i).as_deref(), Some("newer"));
    }

    #[test]
    fn a_named_class_or_the_legacy_annotation_is_kept() {
        let classes = [class("rk8s", "2024-01-01T00:00:00Z", true)];
        let mut i = ingress(json!({"ingressClassName": "nginx"}), json!({}));
        admit_with(&classes, &mut i);
        assert_eq!(class_of(&i).as_deref(), Some("nginx"));
        let mut i = ingress(
            json!({}),
            json!({rk8s_api::ingress::LEGACY_CLASS_ANNOTATION: "nginx"}),
        );
        admit_with(&classes, &mut i);
        assert_eq!(class_of(&i), None);
        let mut i = ingress(json!({}), json!({}));
        admit_with(&[], &mut i);
        assert_eq!(class_of(&i), None);
    }
}

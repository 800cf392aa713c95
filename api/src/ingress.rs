//! Which Ingresses rk8s' built-in Ingress proxy serves, decided once for the API
//! server (the DefaultIngressClass admission, the Node authorizer's Secret edge), the
//! status controller and the nodes: the class named by `spec.ingressClassName` or the
//! legacy annotation `kubernetes.io/ingress.class` is one whose `spec.controller` is
//! [`CONTROLLER`]; or the Ingress names no class and the default class (kube's
//! DefaultIngressClass rule: the newest of those annotated
//! `ingressclass.kubernetes.io/is-default-class: "true"`, then by name) is one.

use std::collections::BTreeSet;

use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

/// The controller name of rk8s' built-in Ingress proxy (`spec.controller`).
pub const CONTROLLER: &str = "rk8s.io/ingress";
/// The IngressClass the server makes at bootstrap.
pub const CLASS: &str = "rk8s";
/// The annotation that makes an IngressClass the default.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The deprecated annotation an Ingress may name its class with.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Whether `class` is annotated as the default.
pub fn is_default(class: &IngressClass) -> bool {
    class
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// The default class of `classes`: of those annotated `"true"`, the newest, then the
/// first by name (kube's `plugin/pkg/admission/network/defaultingressclass`).
pub fn default_class<'a>(
    classes: impl IntoIterator<Item = &'a IngressClass>,
) -> Option<&'a IngressClass> {
    classes
        .into_iter()
        .filter(|c| is_default(c))
        .max_by_key(|c| {
            let created = c.metadata.creation_timestamp.as_ref().map(|t| t.0);
            (created, std::cmp::Reverse(c.metadata.name.clone()))
        })
}

/// The class `ingress` names: `spec.ingressClassName`, else the legacy annotation.
pub fn class_of(ingress: &Ingress) -> Option<&str> {
    ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref())
        .or_else(|| {
            ingress
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
                .map(String::as_str)
        })
}

/// Whether rk8s' proxy serves `ingress`, given every IngressClass.
pub fn served<'a>(
    ingress: &Ingress,
    classes: impl IntoIterator<Item = &'a IngressClass> + Clone,
) -> bool {
    let ours = |c: &IngressClass| {
        c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER)
    };
    match class_of(ingress) {
        Some(name) => classes
            .into_iter()
            .any(|c| c.metadata.name.as_deref() == Some(name) && ours(c)),
        None => default_class(classes).is_some_and(ours),
    }
}

/// The Secrets `ingress` names for TLS (`spec.tls[].secretName`), in its namespace.
pub fn tls_secrets(ingress: &Ingress) -> BTreeSet<&str> {
    ingress
        .spec
        .as_ref()
        .and_then(|s| s.tls.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|t| t.secret_name.as_deref())
        .filter(|n| !n.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn class(name: &str, controller: &str, created: &str, default: bool) -> IngressClass {
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created,
                "annotations": {DEFAULT_CLASS_ANNOTATION: default.to_string()}},
            "spec": {"controller": controller}
        }))
        .unwrap()
    }

    fn ingress(class: Option<&str>, legacy: Option<&str>) -> Ingress {
        let mut v = json!({"metadata": {"name": "i", "namespace": "d"}, "spec": {}});
        if let Some(c) = class {
            v["spec"]["ingressClassName"] = json!(c);
        }
        if let Some(c) = legacy {
            v["metadata"]["annotations"] = json!({LEGACY_CLASS_ANNOTATION: c});
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_newest_default_class_is_the_default() {
        let classes = [
            class("old", "x", "2024-01-01T00:00:00Z", true),
            class("new", "y", "2025-01-01T00:00:00Z", true),
            class("newest", "z", "2026-01-01T00:00:00Z", false),
        ];
        let d = default_class(&classes).unwrap();
        assert_eq!(d.metadata.name.as_deref(), Some("new"));
    }

    #[test]
    fn an_ingress_is_served_by_its_class_or_the_default() {
        let ours = class(CLASS, CONTROLLER, "2024-01-01T00:00:00Z", true);
        let nginx = class(
            "nginx",
            "k8s.io/ingress-nginx",
            "2024-01-01T00:00:00Z",
            false,
        );
        let both = [ours.clone(), nginx.clone()];
        assert!(served(&ingress(Some("rk8s"), None), &both));
        assert!(served(&ingress(None, Some("rk8s")), &both));
        assert!(served(&ingress(None, None), &both));
        assert!(!served(&ingress(Some("nginx"), None), &both));
        assert!(!served(&ingress(None, Some("nginx")), &both));
        assert!(!served(&ingress(Some("missing"), None), &both));
        let not_default = class(CLASS, CONTROLLER, "2024-01-01T00:00:00Z", false);
        assert!(!served(&ingress(None, None), &[not_default, nginx]));
    }
}

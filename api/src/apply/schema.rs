//! Which lists of an object merge by key, which are sets and which are atomic, and
//! which maps are atomic: the schema knowledge server-side apply needs, for the
//! built-in kinds rk8s serves.
//!
//! Kubernetes takes this from the OpenAPI extensions `x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys` and `x-kubernetes-map-type` (the `+listType`,
//! `+listMapKey` and `+mapType`/`+structType` markers of `k8s.io/api`). rk8s keeps the
//! lists it knows in [`BuiltIn`]; any other list is atomic, as structured-merge-diff
//! treats lists of a schema-less custom resource.

use serde_json::Value;

/// One key field of an associative list, with the value the API server defaults it to
/// (so that an applied item that leaves it out still matches the live item).
#[derive(Clone, Debug, PartialEq)]
pub struct MapKey {
    /// The field's name.
    pub name: String,
    /// Its default, when the schema has one (`protocol: TCP` of ports).
    pub default: Option<Value>,
}

impl MapKey {
    fn new(name: &str) -> Self {
        MapKey {
            name: name.to_string(),
            default: None,
        }
    }

    fn tcp_default(name: &str) -> Self {
        MapKey {
            name: name.to_string(),
            default: Some(Value::String("TCP".to_string())),
        }
    }
}

/// How a list merges and how its fields are owned.
#[derive(Clone, Debug, PartialEq)]
pub enum ListType {
    /// `x-kubernetes-list-type: atomic`: replaced whole, owned as one field.
    Atomic,
    /// `x-kubernetes-list-type: set`: scalar items, each owned on its own (`v:`).
    Set,
    /// `x-kubernetes-list-type: map`: items merged and owned by these key fields (`k:`).
    Map(Vec<MapKey>),
}

/// Schema knowledge for one kind of object. `path` is the field names from the object
/// root with list items left out (`spec.template.spec.containers.ports`).
pub trait ListTypes {
    /// How the list at `path` merges.
    fn list_type(&self, path: &str) -> ListType;

    /// Whether the map at `path` is atomic (replaced whole, owned as one field).
    fn map_is_atomic(&self, path: &str) -> bool {
        let _ = path;
        false
    }
}

/// The lists and maps of the built-in Kubernetes kinds (Kubernetes 1.33's `k8s.io/api`
/// markers). Pod specs sit at `spec` (Pod), `spec.template.spec` (workloads) and
/// `spec.jobTemplate.spec.template.spec` (CronJob), so entries match on the last two
/// field names.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuiltIn;

impl ListTypes for BuiltIn {
    fn list_type(&self, path: &str) -> ListType {
        let mut names = path.rsplit('.');
        let last = names.next().unwrap_or(path);
        let parent = names.next().unwrap_or("");
        let grandparent = names.next().unwrap_or("");
        let keys = |names: &[&str]| ListType::Map(names.iter().map(|n| MapKey::new(n)).collect());
        match (parent, last) {
            ("metadata", "finalizers") => ListType::Set,
            ("metadata", "ownerReferences") => keys(&["uid"]),
            (_, "containers" | "initContainers" | "ephemeralContainers") => keys(&["name"]),
            ("containers" | "initContainers" | "ephemeralContainers", "ports") => {
                ListType::Map(vec![
                    MapKey::new("containerPort"),
                    MapKey::tcp_default("protocol"),
                ])
            }
            ("containers" | "initContainers" | "ephemeralContainers", "env") => keys(&["name"]),
            ("containers" | "initContainers" | "ephemeralContainers", "volumeMounts") => {
                keys(&["mountPath"])
            }
            ("containers" | "initContainers" | "ephemeralContainers", "volumeDevices") => {
                keys(&["devicePath"])
            }
            ("containers" | "initContainers" | "ephemeralContainers", "resizePolicy") => {
                keys(&["resourceName"])
            }
            ("spec", "volumes" | "imagePullSecrets" | "resourceClaims" | "schedulingGates") => {
                keys(&["name"])
            }
            ("spec", "hostAliases") => keys(&["ip"]),
            ("spec", "topologySpreadConstraints") => keys(&["topologyKey", "whenUnsatisfiable"]),
            // Service ports: `+listMapKey=port`, `+listMapKey=protocol`.
            ("spec", "ports") if grandparent.is_empty() => {
                ListType::Map(vec![MapKey::new("port"), MapKey::tcp_default("protocol")])
            }
            ("status", "conditions") => keys(&["type"]),
            ("status", "podIPs" | "hostIPs") => keys(&["ip"]),
            _ => ListType::Atomic,
        }
    }

    fn map_is_atomic(&self, path: &str) -> bool {
        // LabelSelector and the object references are `+structType=atomic`; the
        // selectors of Service and PodSpec are `+mapType=atomic`.
        let last = path.rsplit('.').next().unwrap_or(path);
        matches!(
            last,
            "selector"
                | "labelSelector"
                | "namespaceSelector"
                | "podSelector"
                | "nodeSelector"
                | "secretKeyRef"
                | "configMapKeyRef"
                | "fieldRef"
                | "resourceFieldRef"
        )
    }
}

/// No list-type knowledge: every list atomic, every map granular; what
/// structured-merge-diff does for a custom resource whose schema says nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Schemaless;

impl ListTypes for Schemaless {
    fn list_type(&self, _path: &str) -> ListType {
        ListType::Atomic
    }
}

/// The schema knowledge for objects of `api_version` and `kind`: [`BuiltIn`] for the
/// kinds rk8s serves built in, [`Schemaless`] for any other (custom resources).
pub fn list_types_for(api_version: &str, kind: &str) -> &'static dyn ListTypes {
    if crate::object::kind_for(api_version, kind).is_some() {
        &BuiltIn
    } else {
        &Schemaless
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_merge_by_name_wherever_a_pod_spec_sits() {
        for path in [
            "spec.containers",
            "spec.template.spec.containers",
            "spec.jobTemplate.spec.template.spec.initContainers",
        ] {
            assert_eq!(
                BuiltIn.list_type(path),
                ListType::Map(vec![MapKey::new("name")])
            );
        }
    }

    #[test]
    fn ports_key_on_port_and_a_defaulted_protocol() {
        let ListType::Map(keys) = BuiltIn.list_type("spec.template.spec.containers.ports") else {
            panic!("container ports are associative");
        };
        assert_eq!(keys[0].name, "containerPort");
        assert_eq!(keys[1].default, Some(Value::String("TCP".into())));
        let ListType::Map(keys) = BuiltIn.list_type("spec.ports") else {
            panic!("service ports are associative");
        };
        assert_eq!(keys[0].name, "port");
    }

    #[test]
    fn finalizers_are_a_set_and_unknown_lists_are_atomic() {
        assert_eq!(BuiltIn.list_type("metadata.finalizers"), ListType::Set);
        assert_eq!(BuiltIn.list_type("spec.finalizers"), ListType::Atomic);
        assert_eq!(
            BuiltIn.list_type("spec.template.spec.tolerations"),
            ListType::Atomic
        );
        assert_eq!(BuiltIn.list_type("spec.widgets"), ListType::Atomic);
        assert!(BuiltIn.map_is_atomic("spec.selector"));
        assert!(!BuiltIn.map_is_atomic("metadata.labels"));
    }

    #[test]
    fn custom_resources_have_atomic_lists() {
        let types = list_types_for("stable.example.com/v1", "CronTab");
        assert_eq!(types.list_type("spec.containers"), ListType::Atomic);
        let types = list_types_for("apps/v1", "Deployment");
        assert_ne!(
            types.list_type("spec.template.spec.containers"),
            ListType::Atomic
        );
    }
}

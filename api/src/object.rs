//! The kinds rk8s serves, and one type that holds an object of any of them.
//!
//! [`ObjectKind`] tells the store, the API server and the CLI what they need to know
//! about a kind — its group, version, plural, scope, storage key and URL — all taken
//! from `k8s-openapi`'s own constants. [`AnyObject`] lets them handle every kind
//! through one path.

use std::any::TypeId;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, LimitRange, Namespace, Node, PersistentVolume,
    PersistentVolumeClaim, Pod, PodTemplate, ReplicationController, ResourceQuota, Secret, Service,
    ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::flowcontrol::v1::{FlowSchema, PriorityLevelConfiguration};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass, NetworkPolicy};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::storage::v1::{
    CSIDriver, CSINode, CSIStorageCapacity, StorageClass, VolumeAttachment,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

/// Whether objects of a kind live in a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `/namespaces/{ns}/{plural}/{name}`.
    Namespaced,
    /// `/{plural}/{name}`.
    Cluster,
}

/// What rk8s knows about one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ObjectKind {
    /// API group, empty for the core group.
    pub group: &'static str,
    /// API version within the group (`v1`, `v2`).
    pub version: &'static str,
    /// `apiVersion` as written in manifests (`v1`, `apps/v1`).
    pub api_version: &'static str,
    /// `kind` as written in manifests (`Pod`).
    pub kind: &'static str,
    /// Lowercase plural used in URLs and storage keys (`pods`).
    pub plural: &'static str,
    /// Namespaced or cluster-scoped.
    pub scope: Scope,
    /// Whether a CustomResourceDefinition defines the kind (its objects are
    /// [`AnyObject::Custom`]).
    pub custom: bool,
    /// For a custom kind: whether its CRD gives it a `status` subresource.
    pub custom_status: bool,
    /// For a custom kind: whether its CRD gives it a `scale` subresource.
    pub custom_scale: bool,
}

/// `s` as a string that lives as long as the process: each distinct string is kept
/// once, so the names of custom kinds cost memory once however often CRDs come and go.
fn intern(s: &str) -> &'static str {
    static STRINGS: std::sync::Mutex<std::collections::BTreeSet<&'static str>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut strings = STRINGS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(kept) = strings.get(s) {
        return kept;
    }
    let kept: &'static str = Box::leak(s.to_string().into_boxed_str());
    strings.insert(kept);
    kept
}

impl ObjectKind {
    /// The descriptor of a custom kind: version `version` of a CustomResourceDefinition
    /// of `group`, whose objects are `kind` and live at `plural`.
    pub fn custom(group: &str, version: &str, kind: &str, plural: &str, scope: Scope) -> Self {
        ObjectKind {
            group: intern(group),
            version: intern(version),
            api_version: intern(&format!("{group}/{version}")),
            kind: intern(kind),
            plural: intern(plural),
            scope,
            custom: true,
            custom_status: false,
            custom_scale: false,
        }
    }

    /// This custom kind with the subresources its CRD version gives it.
    pub fn with_subresources(mut self, status: bool, scale: bool) -> Self {
        self.custom_status = status;
        self.custom_scale = scale;
        self
    }

    /// The descriptor of a `k8s-openapi` type.
    pub fn of<K: k8s_openapi::Resource + 'static>() -> Self {
        ObjectKind {
            group: K::GROUP,
            version: K::VERSION,
            api_version: K::API_VERSION,
            kind: K::KIND,
            plural: K::URL_PATH_SEGMENT,
            scope: if TypeId::of::<K::Scope>() == TypeId::of::<NamespaceResourceScope>() {
                Scope::Namespaced
            } else {
                Scope::Cluster
            },
            custom: false,
            custom_status: false,
            custom_scale: false,
        }
    }

    /// The short names kubectl accepts for the kind (`po`, `deploy`), as
    /// kube-apiserver's REST storages declare them (`ShortNames()`).
    pub fn short_names(&self) -> &'static [&'static str] {
        match (self.group, self.plural) {
            ("", "namespaces") => &["ns"],
            ("", "pods") => &["po"],
            ("", "nodes") => &["no"],
            ("", "services") => &["svc"],
            ("", "endpoints") => &["ep"],
            ("", "events") | ("events.k8s.io", "events") => &["ev"],
            ("", "configmaps") => &["cm"],
            ("", "serviceaccounts") => &["sa"],
            ("", "persistentvolumes") => &["pv"],
            ("", "persistentvolumeclaims") => &["pvc"],
            ("", "replicationcontrollers") => &["rc"],
            ("", "limitranges") => &["limits"],
            ("", "resourcequotas") => &["quota"],
            ("apps", "replicasets") => &["rs"],
            ("apps", "deployments") => &["deploy"],
            ("apps", "daemonsets") => &["ds"],
            ("apps", "statefulsets") => &["sts"],
            ("autoscaling", "horizontalpodautoscalers") => &["hpa"],
            ("batch", "cronjobs") => &["cj"],
            ("networking.k8s.io", "ingresses") => &["ing"],
            ("networking.k8s.io", "networkpolicies") => &["netpol"],
            ("policy", "poddisruptionbudgets") => &["pdb"],
            ("storage.k8s.io", "storageclasses") => &["sc"],
            ("scheduling.k8s.io", "priorityclasses") => &["pc"],
            ("apiextensions.k8s.io", "customresourcedefinitions") => &["crd", "crds"],
            ("certificates.k8s.io", "certificatesigningrequests") => &["csr"],
            _ => &[],
        }
    }

    /// The categories the kind belongs to (`kubectl get all` reads `all`).
    pub fn categories(&self) -> &'static [&'static str] {
        match (self.group, self.plural) {
            ("", "pods" | "services" | "replicationcontrollers")
            | ("apps", "deployments" | "replicasets" | "daemonsets" | "statefulsets")
            | ("autoscaling", "horizontalpodautoscalers")
            | ("batch", "jobs" | "cronjobs") => &["all"],
            ("apiextensions.k8s.io", _) | ("admissionregistration.k8s.io", _) => {
                &["api-extensions"]
            }
            _ => &[],
        }
    }

    /// Whether the kind has a `status` subresource, whose writes change only
    /// `status` while writes to the object itself keep the stored status.
    pub fn has_status(&self) -> bool {
        if self.custom {
            return self.custom_status;
        }
        matches!(
            (self.group, self.plural),
            (
                "",
                "pods"
                    | "nodes"
                    | "services"
                    | "namespaces"
                    | "replicationcontrollers"
                    | "persistentvolumes"
                    | "persistentvolumeclaims"
                    | "resourcequotas"
            ) | (
                "apps",
                "replicasets" | "deployments" | "daemonsets" | "statefulsets"
            ) | ("autoscaling", "horizontalpodautoscalers")
                | ("batch", "jobs" | "cronjobs")
                | ("networking.k8s.io", "ingresses")
                | ("policy", "poddisruptionbudgets")
                | ("storage.k8s.io", "volumeattachments")
                | ("apiextensions.k8s.io", "customresourcedefinitions")
                | (
                    "admissionregistration.k8s.io",
                    "validatingadmissionpolicies"
                )
                | ("certificates.k8s.io", "certificatesigningrequests")
                | (
                    "flowcontrol.apiserver.k8s.io",
                    "flowschemas" | "prioritylevelconfigurations"
                )
        )
    }

    /// Whether the kind has a `scale` subresource (`autoscaling/v1` Scale).
    pub fn has_scale(&self) -> bool {
        if self.custom {
            return self.custom_scale;
        }
        matches!(
            (self.group, self.plural),
            ("apps", "deployments" | "replicasets" | "statefulsets")
                | ("", "replicationcontrollers")
        )
    }

    /// Whether the server counts changes of the object's spec in
    /// `metadata.generation` (kube-apiserver's strategies for these kinds do).
    pub fn has_generation(&self) -> bool {
        // kube-apiserver's custom resource strategy bumps it on every change but to
        // metadata and (with the subresource) status.
        if self.custom {
            return true;
        }
        matches!(
            (self.group, self.plural),
            ("", "pods" | "replicationcontrollers")
                | (
                    "apps",
                    "replicasets" | "deployments" | "daemonsets" | "statefulsets"
                )
                | ("autoscaling", "horizontalpodautoscalers")
                | ("batch", "jobs" | "cronjobs")
                | (
                    "networking.k8s.io",
                    "ingresses" | "ingressclasses" | "networkpolicies"
                )
                | ("policy", "poddisruptionbudgets")
                | ("apiextensions.k8s.io", "customresourcedefinitions")
                | ("admissionregistration.k8s.io", _)
                | (
                    "flowcontrol.apiserver.k8s.io",
                    "flowschemas" | "prioritylevelconfigurations"
                )
        )
    }

    /// `pods`, `deployments.apps`: the resource as kubectl names it in messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `pod`, `deployment.apps`: the kind as `-o name` prints it.
    pub fn qualified_singular(&self) -> String {
        let kind = self.kind.to_lowercase();
        if self.group.is_empty() {
            kind
        } else {
            format!("{kind}.{}", self.group)
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn is_namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    /// The store key prefix for a list: `/registry/pods/` for all namespaces,
    /// `/registry/pods/default/` for one (as Kubernetes lays out etcd).
    ///
    /// Custom kinds keep their objects under `/registry/<group>/<plural>/`, as
    /// kube-apiserver keeps custom resources. (`events.k8s.io` Events are core Events,
    /// served in that version too: see [`crate::versions`].)
    pub fn storage_prefix(&self, namespace: Option<&str>) -> String {
        let resource = if self.custom {
            format!("{}/{}", self.group, self.plural)
        } else {
            self.plural.to_string()
        };
        match (self.scope, namespace) {
            (Scope::Namespaced, Some(ns)) => format!("/registry/{resource}/{ns}/"),
            _ => format!("/registry/{resource}/"),
        }
    }

    /// The store key of one object: `/registry/<plural>/<ns>/<name>`, or
    /// `/registry/<plural>/<name>` for cluster-scoped kinds.
    pub fn storage_key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.storage_prefix(namespace))
    }

    /// The URL of a collection (`/api/v1/namespaces/default/pods`,
    /// `/apis/apps/v1/deployments`).
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let root = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match (self.scope, namespace) {
            (Scope::Namespaced, Some(ns)) => format!("{root}/namespaces/{ns}/{}", self.plural),
            _ => format!("{root}/{}", self.plural),
        }
    }

    /// The URL of one object.
    pub fn object_path(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}/{name}", self.collection_path(namespace))
    }
}

macro_rules! kinds {
    ($($variant:ident => $ty:ty),* $(,)?) => {
        /// An object of any kind rk8s serves.
        #[derive(Clone, Debug, PartialEq)]
        pub enum AnyObject {
            $(
                #[doc = concat!("A `", stringify!($variant), "`.")]
                $variant(Box<$ty>),
            )*
            /// An object of a custom kind.
            Custom(Box<CustomObject>),
        }

        /// Every kind rk8s serves, in a stable order.
        pub fn kinds() -> Vec<ObjectKind> {
            all_kinds().to_vec()
        }

        /// Every kind rk8s serves, built once.
        fn all_kinds() -> &'static [ObjectKind] {
            static KINDS: std::sync::OnceLock<Vec<ObjectKind>> = std::sync::OnceLock::new();
            KINDS.get_or_init(|| vec![$(ObjectKind::of::<$ty>()),*])
        }

        /// The JSON schema of every kind (from `k8s-openapi`, named as Kubernetes'
        /// OpenAPI names them: `io.k8s.api.core.v1.Pod`), as references into the
        /// generator's definitions, where the schemas themselves land.
        pub fn schemas(generator: &mut schemars::SchemaGenerator) -> Vec<(ObjectKind, schemars::Schema)> {
            vec![$((ObjectKind::of::<$ty>(), generator.subschema_for::<$ty>())),*]
        }

        impl AnyObject {
            /// The descriptor of this object's kind.
            pub fn kind(&self) -> ObjectKind {
                match self {
                    $(AnyObject::$variant(_) => ObjectKind::of::<$ty>(),)*
                    AnyObject::Custom(o) => o.kind,
                }
            }

            /// The object's metadata.
            pub fn metadata(&self) -> &ObjectMeta {
                use k8s_openapi::Metadata;
                match self {
                    $(AnyObject::$variant(o) => o.metadata(),)*
                    AnyObject::Custom(o) => &o.metadata,
                }
            }

            /// The object's metadata, to change.
            pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
                use k8s_openapi::Metadata;
                match self {
                    $(AnyObject::$variant(o) => o.metadata_mut(),)*
                    AnyObject::Custom(o) => &mut o.metadata,
                }
            }

            /// Decodes JSON bytes of the given kind straight into the typed object
            /// (no [`Value`] in between), reporting the field that did not fit; `None`
            /// if `kind` is neither built in nor custom. `apiVersion` is not checked.
            pub fn from_slice(
                kind: &ObjectKind,
                bytes: &[u8],
            ) -> Option<Result<Self, serde_path_to_error::Error<serde_json::Error>>> {
                if kind.custom {
                    let mut de = serde_json::Deserializer::from_slice(bytes);
                    return Some(
                        serde_path_to_error::deserialize::<_, Value>(&mut de)
                            .and_then(|v| CustomObject::from_value(*kind, v))
                            .map(|o| AnyObject::Custom(Box::new(o))),
                    );
                }
                $(
                    if kind.kind == <$ty as k8s_openapi::Resource>::KIND
                        && kind.group == <$ty as k8s_openapi::Resource>::GROUP
                    {
                        let mut de = serde_json::Deserializer::from_slice(bytes);
                        return Some(
                            serde_path_to_error::deserialize::<_, $ty>(&mut de)
                                .map(|o| AnyObject::$variant(Box::new(o))),
                        );
                    }
                )*
                None
            }

            /// Decodes a JSON value of the given kind, reporting the field that did not
            /// fit; `None` if `kind` is neither built in nor custom. `apiVersion` is not
            /// checked here.
            pub fn from_value(
                kind: &ObjectKind,
                value: Value,
            ) -> Option<Result<Self, serde_path_to_error::Error<serde_json::Error>>> {
                if kind.custom {
                    return Some(CustomObject::from_value(*kind, value).map(|o| AnyObject::Custom(Box::new(o))));
                }
                Self::typed_from(kind, value)
            }

            /// A built-in kind read from `value`, owned (its strings moved) or
            /// borrowed (copied); `None` for a kind not built in.
            fn typed_from<'de, D: serde::Deserializer<'de, Error = serde_json::Error>>(
                kind: &ObjectKind,
                value: D,
            ) -> Option<Result<Self, serde_path_to_error::Error<serde_json::Error>>> {
                $(
                    if kind.kind == <$ty as k8s_openapi::Resource>::KIND
                        && kind.group == <$ty as k8s_openapi::Resource>::GROUP
                    {
                        return Some(
                            serde_path_to_error::deserialize::<_, $ty>(value)
                                .map(|o| AnyObject::$variant(Box::new(o))),
                        );
                    }
                )*
                None
            }

            /// The object's JSON text, with `apiVersion` and `kind` set: as
            /// [`Self::to_value`] writes, in the fields' declared order, without a
            /// `Value` in between.
            pub fn to_json(&self) -> Vec<u8> {
                let bytes = match self {
                    $(AnyObject::$variant(o) => serde_json::to_vec(o.as_ref()),)*
                    AnyObject::Custom(o) => serde_json::to_vec(&o.to_value()),
                };
                // As in `to_value`: these types always serialize.
                bytes.unwrap_or_default()
            }

            /// As [`Self::from_value`], reading a borrowed value (what a caller that
            /// still needs the value, to find fields the kind does not know, has).
            pub fn from_value_ref(
                kind: &ObjectKind,
                value: &Value,
            ) -> Option<Result<Self, serde_path_to_error::Error<serde_json::Error>>> {
                if kind.custom {
                    return Self::from_value(kind, value.clone());
                }
                Self::typed_from(kind, value)
            }

            /// The object as JSON, with `apiVersion` and `kind` set.
            pub fn to_value(&self) -> Value {
                let value = match self {
                    $(AnyObject::$variant(o) => serde_json::to_value(o.as_ref()),)*
                    AnyObject::Custom(o) => return o.to_value(),
                };
                // Serializing these types cannot fail: they hold no maps with
                // non-string keys and no non-finite floats.
                value.unwrap_or(Value::Null)
            }
        }

        $(
            impl From<$ty> for AnyObject {
                fn from(o: $ty) -> Self {
                    AnyObject::$variant(Box::new(o))
                }
            }
        )*
    };
}

kinds! {
    Namespace => Namespace,
    Node => Node,
    Pod => Pod,
    Service => Service,
    Endpoints => Endpoints,
    Event => Event,
    ReplicaSet => ReplicaSet,
    Deployment => Deployment,
    HorizontalPodAutoscaler => HorizontalPodAutoscaler,
    Lease => Lease,
    Job => Job,
    RuntimeClass => RuntimeClass,
    ConfigMap => ConfigMap,
    Secret => Secret,
    ServiceAccount => ServiceAccount,
    PersistentVolume => PersistentVolume,
    PersistentVolumeClaim => PersistentVolumeClaim,
    ReplicationController => ReplicationController,
    LimitRange => LimitRange,
    ResourceQuota => ResourceQuota,
    PodTemplate => PodTemplate,
    DaemonSet => DaemonSet,
    StatefulSet => StatefulSet,
    ControllerRevision => ControllerRevision,
    CronJob => CronJob,
    Ingress => Ingress,
    IngressClass => IngressClass,
    NetworkPolicy => NetworkPolicy,
    EndpointSlice => EndpointSlice,
    PodDisruptionBudget => PodDisruptionBudget,
    Role => Role,
    ClusterRole => ClusterRole,
    RoleBinding => RoleBinding,
    ClusterRoleBinding => ClusterRoleBinding,
    StorageClass => StorageClass,
    CSIDriver => CSIDriver,
    CSINode => CSINode,
    CSIStorageCapacity => CSIStorageCapacity,
    VolumeAttachment => VolumeAttachment,
    PriorityClass => PriorityClass,
    CustomResourceDefinition => CustomResourceDefinition,
    MutatingWebhookConfiguration => MutatingWebhookConfiguration,
    ValidatingWebhookConfiguration => ValidatingWebhookConfiguration,
    ValidatingAdmissionPolicy => ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding => ValidatingAdmissionPolicyBinding,
    CertificateSigningRequest => CertificateSigningRequest,
    FlowSchema => FlowSchema,
    PriorityLevelConfiguration => PriorityLevelConfiguration,
}

/// An object of a custom kind: its metadata decoded, everything else kept as JSON
/// (the CustomResourceDefinition's schema, not a Rust type, says what it may hold).
#[derive(Clone, Debug, PartialEq)]
pub struct CustomObject {
    /// The object's kind (and the version it is read or written in).
    pub kind: ObjectKind,
    /// The object's metadata.
    pub metadata: ObjectMeta,
    /// Every other top-level field (`spec`, `status`, ...), without `apiVersion`,
    /// `kind` and `metadata`.
    pub fields: serde_json::Map<String, Value>,
}

impl CustomObject {
    /// Decodes an object of custom kind `kind`, reporting where its metadata did not
    /// fit; every other field is kept as it is.
    pub fn from_value(
        kind: ObjectKind,
        value: Value,
    ) -> Result<Self, serde_path_to_error::Error<serde_json::Error>> {
        /// The wire form: metadata typed, the rest as it came.
        #[derive(serde::Deserialize)]
        struct Wire {
            #[serde(default)]
            metadata: ObjectMeta,
            #[serde(flatten)]
            fields: serde_json::Map<String, Value>,
        }
        let mut wire: Wire = serde_path_to_error::deserialize(value)?;
        wire.fields.remove("apiVersion");
        wire.fields.remove("kind");
        Ok(CustomObject {
            kind,
            metadata: wire.metadata,
            fields: wire.fields,
        })
    }

    /// The object as JSON, with `apiVersion` and `kind` of its kind.
    pub fn to_value(&self) -> Value {
        let mut map = serde_json::Map::with_capacity(self.fields.len() + 3);
        map.insert("apiVersion".into(), Value::from(self.kind.api_version));
        map.insert("kind".into(), Value::from(self.kind.kind));
        map.insert(
            "metadata".into(),
            serde_json::to_value(&self.metadata).unwrap_or(Value::Null),
        );
        for (k, v) in &self.fields {
            map.insert(k.clone(), v.clone());
        }
        Value::Object(map)
    }
}

/// The kind named `kind` (as in manifests, `Pod`), if rk8s serves it; where two
/// groups have a kind of that name (`Event`), the core group's.
pub fn kind_named(kind: &str) -> Option<ObjectKind> {
    all_kinds().iter().find(|k| k.kind == kind).copied()
}

/// The kind a manifest names with `apiVersion` (`apps/v1`) and `kind` (`Deployment`),
/// if rk8s serves it.
pub fn kind_for(api_version: &str, kind: &str) -> Option<ObjectKind> {
    all_kinds()
        .iter()
        .find(|k| k.api_version == api_version && k.kind == kind)
        .copied()
}

/// The kind a user means by `name`, as kubectl resolves it: plural (`pods`), singular
/// (`pod`), short name (`po`), kind (`Pod`), optionally qualified with the group
/// (`deployments.apps`).
pub fn resolve(name: &str) -> Option<ObjectKind> {
    let lower = name.to_lowercase();
    let (base, group) = match lower.split_once('.') {
        Some((b, g)) => (b.to_string(), Some(g.to_string())),
        None => (lower.clone(), None),
    };
    all_kinds()
        .iter()
        .find(|k| {
            group.as_deref().is_none_or(|g| g == k.group)
                && (k.plural == base
                    || k.kind.to_lowercase() == base
                    || k.short_names().contains(&base.as_str()))
        })
        .copied()
}

/// The kind whose plural is `plural` (as in URLs, `pods`) in `group`.
pub fn kind_by_plural(group: &str, plural: &str) -> Option<ObjectKind> {
    all_kinds()
        .iter()
        .find(|k| k.group == group && k.plural == plural)
        .copied()
}

impl AnyObject {
    /// The object's name (empty if it has none yet).
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or("")
    }

    /// The object's namespace, for namespaced kinds.
    pub fn namespace(&self) -> Option<&str> {
        if self.kind().is_namespaced() {
            self.metadata().namespace.as_deref()
        } else {
            None
        }
    }

    /// The object's store key (`/registry/pods/default/web`).
    pub fn storage_key(&self) -> String {
        self.kind().storage_key(self.namespace(), self.name())
    }

    /// `kind/name`, as kubectl prints it (`pod/web`).
    pub fn reference(&self) -> String {
        format!("{}/{}", self.kind().kind.to_lowercase(), self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_know_their_urls_and_keys() {
        let pods = kind_named("Pod").unwrap();
        assert_eq!(pods.plural, "pods");
        assert_eq!(
            pods.storage_key(Some("default"), "web"),
            "/registry/pods/default/web"
        );
        assert_eq!(
            pods.object_path(Some("default"), "web"),
            "/api/v1/namespaces/default/pods/web"
        );
        let nodes = kind_named("Node").unwrap();
        assert_eq!(nodes.scope, Scope::Cluster);
        assert_eq!(
            nodes.storage_key(Some("ignored"), "n1"),
            "/registry/nodes/n1"
        );
        let hpa = kind_named("HorizontalPodAutoscaler").unwrap();
        assert_eq!(
            hpa.collection_path(Some("prod")),
            "/apis/autoscaling/v2/namespaces/prod/horizontalpodautoscalers"
        );
        assert_eq!(
            kind_by_plural("node.k8s.io", "runtimeclasses")
                .unwrap()
                .scope,
            Scope::Cluster
        );
        assert_eq!(kinds().len(), 48);
        for (name, plural) in [
            ("po", "pods"),
            ("Deployment", "deployments"),
            ("deployments.apps", "deployments"),
            ("hpa", "horizontalpodautoscalers"),
            ("node", "nodes"),
        ] {
            assert_eq!(resolve(name).unwrap().plural, plural, "{name}");
        }
        assert!(resolve("deployments.batch").is_none());
        assert_eq!(resolve("secrets").unwrap().kind, "Secret");
        assert_eq!(resolve("netpol").unwrap().group, "networking.k8s.io");
        assert_eq!(resolve("ev").unwrap().group, "");
        assert!(resolve("widgets").is_none());
        // events.k8s.io Events are core ones, served in another version.
        assert!(kind_for("events.k8s.io/v1", "Event").is_none());
        let events = crate::versions::alias_for("events.k8s.io", "v1", "events").unwrap();
        assert_eq!(events.served.storage_prefix(None), "/registry/events/");
        assert_eq!(
            kind_named("Deployment").unwrap().qualified_singular(),
            "deployment.apps"
        );
    }
}

/// The kinds whose `status` is a typed field, so a write can carry one object's status
/// into another without a trip through `serde_json::Value`.
macro_rules! typed_status {
    ($($variant:ident),* $(,)?) => {
        impl AnyObject {
            /// Sets this object's `status` to a copy of `from`'s; `false` (nothing
            /// changed) when the two are of different kinds or the kind's status is not
            /// a typed field (a custom resource's).
            pub fn set_status_of(&mut self, from: &AnyObject) -> bool {
                match (self, from) {
                    $((AnyObject::$variant(to), AnyObject::$variant(from)) => {
                        to.status.clone_from(&from.status);
                        true
                    })*
                    _ => false,
                }
            }
        }
    };
}

typed_status! {
    Namespace, Node, Pod, Service, ReplicaSet, Deployment, HorizontalPodAutoscaler, Job,
    PersistentVolume, PersistentVolumeClaim, ReplicationController, ResourceQuota,
    DaemonSet, StatefulSet, CronJob, Ingress, PodDisruptionBudget, VolumeAttachment,
    CustomResourceDefinition, ValidatingAdmissionPolicy, CertificateSigningRequest,
    FlowSchema, PriorityLevelConfiguration,
}

//! Validation as the Kubernetes API server does it: every problem is collected, each
//! with the path of the field it is in (`spec.containers[1].name: duplicate value
//! "web"`), so a user fixes a manifest in one pass.
//!
//! Validation expects a defaulted object (see [`crate::defaults`]); it never changes it.

mod admission;
mod autoscaling;
mod cluster;
mod config;
mod cron;
mod meta;
mod networking;
mod pod;
mod policy;
mod rbac;
mod service;
mod storage;
mod wording;
mod workloads;

pub use config::MAX_DATA_BYTES;
pub use service::service_update;
pub use storage::PV_SOURCES;

use std::fmt;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::names;
use crate::object::AnyObject;
use crate::path::FieldPath;
use crate::quantity::Quantity;

/// Why a field is invalid (the categories of Kubernetes' `field.ErrorType`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A value must be given.
    Required,
    /// The value is used twice where it must be unique.
    Duplicate(String),
    /// The value is malformed or out of range.
    Invalid {
        /// The value, as text.
        value: String,
        /// Why it is invalid.
        detail: String,
    },
    /// The value is not one of a fixed set.
    NotSupported {
        /// The value given.
        value: String,
        /// The values accepted.
        supported: Vec<String>,
    },
    /// The field may not be set here.
    Forbidden(String),
    /// A value that says all in one sentence (`"5OOm" is not a quantity`).
    Message(String),
}

/// One invalid field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Where the problem is.
    pub path: FieldPath,
    /// What the problem is.
    pub reason: Reason,
}

/// The problems of a configuration file's `apiVersion` and `kind` (`api_version`,
/// `kind`) when they are not `want` (`(apiVersion, kind)`): kube's `NotSupported`
/// errors at the file's root.
pub fn type_meta_errors(api_version: &str, kind: &str, want: (&str, &str)) -> Vec<FieldError> {
    let root = FieldPath::root();
    [("apiVersion", api_version, want.0), ("kind", kind, want.1)]
        .into_iter()
        .filter(|(_, got, wanted)| got != wanted)
        .map(|(field, got, wanted)| FieldError {
            path: root.key(field),
            reason: Reason::NotSupported {
                value: got.to_string(),
                supported: vec![wanted.to_string()],
            },
        })
        .collect()
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_root() {
            write!(f, "{}: ", self.path)?;
        }
        match &self.reason {
            Reason::Required => f.write_str("required value"),
            Reason::Duplicate(v) => write!(f, "duplicate value \"{v}\""),
            Reason::Invalid { value, detail } => write!(f, "invalid value \"{value}\": {detail}"),
            Reason::NotSupported { value, supported } => {
                let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
                write!(
                    f,
                    "unsupported value \"{value}\": supported values: {}",
                    list.join(", ")
                )
            }
            Reason::Forbidden(detail) => write!(f, "forbidden: {detail}"),
            Reason::Message(m) => f.write_str(m),
        }
    }
}

/// Collects [`FieldError`]s.
#[derive(Debug, Default)]
pub(crate) struct Errors(pub(crate) Vec<FieldError>);

impl Errors {
    fn push(&mut self, path: &FieldPath, reason: Reason) {
        self.0.push(FieldError {
            path: path.clone(),
            reason,
        });
    }

    pub(crate) fn required(&mut self, path: &FieldPath) {
        self.push(path, Reason::Required);
    }

    pub(crate) fn duplicate(&mut self, path: &FieldPath, value: impl fmt::Display) {
        self.push(path, Reason::Duplicate(value.to_string()));
    }

    pub(crate) fn invalid(
        &mut self,
        path: &FieldPath,
        value: impl fmt::Display,
        detail: impl Into<String>,
    ) {
        self.push(
            path,
            Reason::Invalid {
                value: value.to_string(),
                detail: detail.into(),
            },
        );
    }

    pub(crate) fn forbidden(&mut self, path: &FieldPath, detail: impl Into<String>) {
        self.push(path, Reason::Forbidden(detail.into()));
    }

    pub(crate) fn message(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.push(path, Reason::Message(message.into()));
    }

    /// Checks that `value` is one of `supported`.
    pub(crate) fn one_of(&mut self, path: &FieldPath, value: &str, supported: &[&str]) {
        if !supported.contains(&value) {
            self.push(
                path,
                Reason::NotSupported {
                    value: value.to_string(),
                    supported: supported.iter().map(|s| s.to_string()).collect(),
                },
            );
        }
    }

    /// Like [`Errors::one_of`] for an optional field (unset is fine).
    pub(crate) fn opt_one_of(
        &mut self,
        path: &FieldPath,
        value: Option<&String>,
        supported: &[&str],
    ) {
        if let Some(v) = value {
            self.one_of(path, v, supported);
        }
    }

    /// Adds one error per message of a syntax check from [`crate::names`].
    pub(crate) fn syntax(&mut self, path: &FieldPath, value: &str, problems: Vec<String>) {
        for p in problems {
            self.invalid(path, value, p);
        }
    }

    pub(crate) fn at_least(&mut self, path: &FieldPath, value: Option<impl Into<i64>>, min: i64) {
        if let Some(v) = value.map(Into::into)
            && v < min
        {
            self.invalid(path, v, format!("must be greater than or equal to {min}"));
        }
    }

    pub(crate) fn in_range(
        &mut self,
        path: &FieldPath,
        value: Option<impl Into<i64>>,
        min: i64,
        max: i64,
    ) {
        if let Some(v) = value.map(Into::into)
            && !(min..=max).contains(&v)
        {
            self.invalid(
                path,
                v,
                format!("must be between {min} and {max}, inclusive"),
            );
        }
    }

    /// A port number: 1–65535.
    pub(crate) fn port(&mut self, path: &FieldPath, port: i32) {
        self.in_range(path, Some(port), 1, 65535);
    }

    /// A port given by number (1–65535) or by name (an IANA service name).
    pub(crate) fn port_or_name(&mut self, path: &FieldPath, port: &IntOrString) {
        match port {
            IntOrString::Int(n) => self.port(path, *n),
            IntOrString::String(s) => self.syntax(path, s, names::iana_svc_name(s)),
        }
    }

    /// Parses a quantity, reporting it at `path` when it is not one.
    pub(crate) fn quantity(
        &mut self,
        path: &FieldPath,
        q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
    ) -> Option<Quantity> {
        match Quantity::try_from(q) {
            Ok(v) => Some(v),
            Err(e) => {
                self.message(path, e.to_string());
                None
            }
        }
    }
}

/// A Namespace's `spec.finalizers`, checked when it is made and when they are written
/// through `finalize` (kube's `ValidateNamespace`, `ValidateNamespaceFinalizeUpdate`;
/// its other updates keep them).
pub fn namespace_finalizers(obj: &AnyObject) -> Vec<FieldError> {
    let mut errs = Errors::default();
    if let AnyObject::Namespace(ns) = obj {
        cluster::namespace(&mut errs, ns);
    }
    errs.0
}

/// Validates an object of any kind, returning every problem found (none: valid).
pub fn validate(obj: &AnyObject) -> Vec<FieldError> {
    let mut errs = Errors::default();
    meta::object_meta(&mut errs, obj);
    let root = FieldPath::root();
    match obj {
        AnyObject::Pod(p) => match &p.spec {
            Some(spec) => pod::pod_spec(&mut errs, &root.key("spec"), spec),
            None => errs.required(&root.key("spec")),
        },
        AnyObject::ReplicaSet(rs) => workloads::replica_set(&mut errs, rs),
        AnyObject::Deployment(d) => workloads::deployment(&mut errs, d),
        AnyObject::Job(j) => workloads::job(&mut errs, j),
        AnyObject::Service(s) => service::service(&mut errs, s),
        AnyObject::Endpoints(e) => service::endpoints(&mut errs, e),
        AnyObject::HorizontalPodAutoscaler(h) => autoscaling::hpa(&mut errs, h),
        AnyObject::Node(n) => cluster::node(&mut errs, n),
        AnyObject::Event(e) => cluster::event(&mut errs, e),
        AnyObject::Lease(l) => cluster::lease(&mut errs, l),
        AnyObject::RuntimeClass(r) => cluster::runtime_class(&mut errs, r),
        AnyObject::ConfigMap(c) => config::config_map(&mut errs, c),
        AnyObject::Secret(s) => config::secret(&mut errs, s),
        AnyObject::PersistentVolume(pv) => storage::persistent_volume(&mut errs, pv),
        AnyObject::PersistentVolumeClaim(pvc) => match &pvc.spec {
            Some(spec) => storage::claim_spec(&mut errs, &root.key("spec"), spec),
            None => errs.required(&root.key("spec")),
        },
        AnyObject::StorageClass(sc) => storage::storage_class(&mut errs, sc),
        AnyObject::CSIDriver(d) => storage::csi_driver(&mut errs, d),
        AnyObject::StatefulSet(s) => workloads::stateful_set(&mut errs, s),
        AnyObject::DaemonSet(d) => workloads::daemon_set(&mut errs, d),
        AnyObject::CronJob(c) => workloads::cron_job(&mut errs, c),
        AnyObject::ReplicationController(rc) => workloads::replication_controller(&mut errs, rc),
        AnyObject::PodTemplate(t) => workloads::pod_template_object(&mut errs, t),
        AnyObject::Ingress(i) => networking::ingress(&mut errs, i),
        AnyObject::IngressClass(i) => networking::ingress_class(&mut errs, i),
        AnyObject::NetworkPolicy(n) => networking::network_policy(&mut errs, n),
        AnyObject::EndpointSlice(e) => networking::endpoint_slice(&mut errs, e),
        AnyObject::PodDisruptionBudget(p) => policy::pod_disruption_budget(&mut errs, p),
        AnyObject::PriorityClass(p) => policy::priority_class(&mut errs, p),
        AnyObject::LimitRange(l) => policy::limit_range(&mut errs, l),
        AnyObject::ResourceQuota(q) => policy::resource_quota(&mut errs, q),
        AnyObject::Role(r) => rbac::role(&mut errs, r),
        AnyObject::ClusterRole(r) => rbac::cluster_role(&mut errs, r),
        AnyObject::RoleBinding(b) => rbac::binding(
            &mut errs,
            &b.role_ref,
            b.subjects.as_deref().unwrap_or_default(),
            true,
        ),
        AnyObject::ClusterRoleBinding(b) => rbac::binding(
            &mut errs,
            &b.role_ref,
            b.subjects.as_deref().unwrap_or_default(),
            false,
        ),
        AnyObject::ValidatingWebhookConfiguration(c) => admission::validating(&mut errs, c),
        AnyObject::MutatingWebhookConfiguration(c) => admission::mutating(&mut errs, c),
        // The kinds of `WITHOUT_RULES`, and custom resources (checked against their
        // schemas, see `crate::crd`).
        _ => {}
    }
    errs.0
}

/// The kinds rk8s checks nothing of beyond `metadata`: Kubernetes checks little more
/// of the first ones (ServiceAccount; Namespace, whose finalizers are checked on
/// create and `finalize` alone, [`namespace_finalizers`]), and the rules of the others
/// (status-heavy or CEL-based kinds, written mostly by controllers) are not
/// implemented yet.
pub const WITHOUT_RULES: &[&str] = &[
    "Namespace",
    "ServiceAccount",
    "ControllerRevision",
    "CSINode",
    "CSIStorageCapacity",
    "VolumeAttachment",
    "CustomResourceDefinition",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "CertificateSigningRequest",
    "FlowSchema",
    "PriorityLevelConfiguration",
];

#[cfg(test)]
mod kind_tests;
#[cfg(test)]
mod tests;

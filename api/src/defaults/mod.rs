//! Defaulting as the Kubernetes API server does it (the `SetDefaults_*` functions of
//! each group's `v1` defaults), so an object read back from rk8s looks like one read
//! back from Kubernetes. Only unset fields are filled in; defaulting twice changes
//! nothing.
//!
//! [`apply_defaults`] dispatches by kind to one file per API area: pods
//! ([`pod_spec`]), workloads, autoscaling, services and networking, storage, RBAC,
//! admission webhooks, and the core kinds that hold configuration and policy.

mod admission;
mod autoscaling;
mod config;
mod networking;
mod pod;
mod rbac;
mod storage;
mod workloads;

pub use autoscaling::{default_scale_down, default_scale_up, merge_rules};
pub use pod::{image_pull_policy, pod_spec};

use crate::object::AnyObject;

/// The namespace of objects that do not name one.
pub const DEFAULT_NAMESPACE: &str = "default";
/// The scheduler that places pods that do not name one.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";
/// Kubernetes' default grace period between SIGTERM and SIGKILL.
pub const DEFAULT_TERMINATION_GRACE_SECONDS: i64 = 30;
/// HPA target CPU utilisation when no metric is given (autoscaling/v2 defaults).
pub const DEFAULT_HPA_CPU_UTILIZATION: i32 = 80;

/// The kinds in which Kubernetes defaults nothing (or only fields of their status,
/// which their controllers write).
pub const WITHOUT_DEFAULTS: &[&str] = &[
    "Namespace",
    "Node",
    "Event",
    "Lease",
    "RuntimeClass",
    "ConfigMap",
    "ServiceAccount",
    "ResourceQuota",
    "ControllerRevision",
    "Ingress",
    "PodDisruptionBudget",
    "Role",
    "ClusterRole",
    "CSINode",
    "CSIStorageCapacity",
    "VolumeAttachment",
    "CustomResourceDefinition",
    "ValidatingAdmissionPolicyBinding",
    "CertificateSigningRequest",
    "FlowSchema",
    "PriorityLevelConfiguration",
];

/// Sets an unset field.
fn set<T>(field: &mut Option<T>, value: T) {
    if field.is_none() {
        *field = Some(value);
    }
}

/// Sets an unset or empty string field.
fn set_str(field: &mut Option<String>, value: &str) {
    if field.as_deref().is_none_or(str::is_empty) {
        *field = Some(value.to_string());
    }
}

/// Fills in every unset field that Kubernetes would default.
pub fn apply_defaults(obj: &mut AnyObject) {
    if obj.kind().is_namespaced() {
        set_str(&mut obj.metadata_mut().namespace, DEFAULT_NAMESPACE);
    }
    match obj {
        AnyObject::Pod(p) => {
            if let Some(spec) = &mut p.spec {
                pod_spec(spec);
                // An empty security context, as core/v1's SetDefaults_PodSpec leaves
                // (clients read it unchecked: `kubectl debug` did, and crashed).
                // Pods only: a workload's template written before would otherwise
                // change on its next write, and its pods roll to a new template hash.
                spec.security_context.get_or_insert_with(Default::default);
            }
        }
        AnyObject::ReplicaSet(rs) => workloads::replica_set(rs),
        AnyObject::Deployment(d) => workloads::deployment(d),
        AnyObject::Job(j) => workloads::job(j),
        AnyObject::StatefulSet(s) => workloads::stateful_set(s),
        AnyObject::DaemonSet(d) => workloads::daemon_set(d),
        AnyObject::CronJob(c) => workloads::cron_job(c),
        AnyObject::ReplicationController(rc) => workloads::replication_controller(rc),
        AnyObject::PodTemplate(t) => {
            if let Some(spec) = t.template.as_mut().and_then(|t| t.spec.as_mut()) {
                pod_spec(spec);
            }
        }
        AnyObject::HorizontalPodAutoscaler(h) => autoscaling::hpa(h),
        AnyObject::Service(s) => networking::service(s),
        AnyObject::Endpoints(e) => networking::endpoints(e),
        AnyObject::EndpointSlice(e) => networking::endpoint_slice(e),
        AnyObject::NetworkPolicy(n) => networking::network_policy(n),
        AnyObject::IngressClass(i) => networking::ingress_class(i),
        AnyObject::Secret(s) => config::secret(s),
        AnyObject::LimitRange(l) => config::limit_range(l),
        AnyObject::PriorityClass(p) => config::priority_class(p),
        AnyObject::PersistentVolume(pv) => storage::persistent_volume(pv),
        AnyObject::PersistentVolumeClaim(pvc) => storage::persistent_volume_claim(pvc),
        AnyObject::StorageClass(sc) => storage::storage_class(sc),
        AnyObject::CSIDriver(d) => storage::csi_driver(d),
        AnyObject::RoleBinding(b) => rbac::role_binding(&mut b.role_ref, &mut b.subjects),
        AnyObject::ClusterRoleBinding(b) => {
            rbac::role_binding(&mut b.role_ref, &mut b.subjects);
        }
        AnyObject::MutatingWebhookConfiguration(c) => admission::mutating(c),
        AnyObject::ValidatingWebhookConfiguration(c) => admission::validating(c),
        AnyObject::ValidatingAdmissionPolicy(p) => admission::policy(p),
        // The kinds of `WITHOUT_DEFAULTS`, and custom resources (whose schemas default
        // them, see `crate::crd`).
        _ => {}
    }
}

#[cfg(test)]
mod tests;

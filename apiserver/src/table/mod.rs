//! Server-side printing: the `Table` form (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`)
//! that `kubectl get` asks for, with the columns and cells kube-apiserver prints for
//! every kind.
//!
//! Columns, their types and priorities and the format of every cell follow
//! kube-apiserver's printers (`pkg/printers/internalversion/printers.go`). Kinds kube
//! has no printer for (roles, cluster roles, limit ranges, custom resource
//! definitions) get its default table: `Name` and `Created At`. Like kube-apiserver,
//! which prints with `Wide: true`, every row carries the `-o wide` cells as well
//! (priority 1); kubectl hides them unless asked. Where the API fills in a default that
//! rk8s may have left unset (one replica, `ClusterIP`, `Opaque`), the printer shows the
//! default, as it would see it in kube.

mod access;
mod core;
mod events;
mod format;
mod hpa;
mod network;
mod pod;
mod policy;
mod storage;
mod workloads;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ComponentStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rk8s_api::{AnyObject, ObjectKind};
use serde_json::{Value, json};

pub use format::human_duration;

/// One column of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Column {
    /// The header (`Ready`); kubectl prints it upper-cased.
    name: &'static str,
    /// The OpenAPI type of the cells: `string`, `integer`, `boolean`, `date`.
    ty: &'static str,
    /// `name` for the column that names the object, else empty.
    format: &'static str,
    /// 0: always shown; 1: shown with `-o wide`.
    priority: u8,
}

/// A column `kubectl get` always shows.
const fn col(name: &'static str, ty: &'static str) -> Column {
    Column {
        name,
        ty,
        format: "",
        priority: 0,
    }
}

/// A column shown with `-o wide` only.
const fn wide(name: &'static str, ty: &'static str) -> Column {
    Column {
        priority: 1,
        ..col(name, ty)
    }
}

/// The object's name, first in almost every table.
const NAME: Column = Column {
    format: "name",
    ..col("Name", "string")
};
/// The time since the object was created.
const AGE: Column = col("Age", "string");

/// kube's default table (`rest.NewDefaultTableConvertor`), for kinds without a printer.
const DEFAULT: &[Column] = &[NAME, col("Created At", "date")];

/// Whether an `Accept` header asks for a Table.
pub fn wants_table(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',')
            .next()
            .is_some_and(|first| first.contains("as=Table"))
    })
}

/// The columns of a kind, by group and plural (`events` is in two groups).
fn columns(kind: &ObjectKind) -> &'static [Column] {
    match (kind.group, kind.plural) {
        ("", "pods") => pod::POD,
        ("", "nodes") => pod::NODE,
        ("", "namespaces") => core::NAMESPACE,
        ("", "services") => core::SERVICE,
        ("", "endpoints") => core::ENDPOINTS,
        ("", "configmaps") => core::CONFIG_MAP,
        ("", "secrets") => core::SECRET,
        ("", "serviceaccounts") => core::SERVICE_ACCOUNT,
        ("", "resourcequotas") => core::RESOURCE_QUOTA,
        ("", "podtemplates") => core::POD_TEMPLATE,
        ("", "events") | ("events.k8s.io", "events") => events::EVENT,
        ("", "persistentvolumes") => storage::PERSISTENT_VOLUME,
        ("", "persistentvolumeclaims") => storage::PERSISTENT_VOLUME_CLAIM,
        ("", "replicationcontrollers") => workloads::REPLICATION_CONTROLLER,
        ("apps", "deployments") => workloads::DEPLOYMENT,
        ("apps", "replicasets") => workloads::REPLICA_SET,
        ("apps", "daemonsets") => workloads::DAEMON_SET,
        ("apps", "statefulsets") => workloads::STATEFUL_SET,
        ("apps", "controllerrevisions") => workloads::CONTROLLER_REVISION,
        ("batch", "jobs") => workloads::JOB,
        ("batch", "cronjobs") => workloads::CRON_JOB,
        ("autoscaling", "horizontalpodautoscalers") => hpa::HPA,
        ("networking.k8s.io", "ingresses") => network::INGRESS,
        ("networking.k8s.io", "ingressclasses") => network::INGRESS_CLASS,
        ("networking.k8s.io", "networkpolicies") => network::NETWORK_POLICY,
        ("discovery.k8s.io", "endpointslices") => network::ENDPOINT_SLICE,
        ("storage.k8s.io", "storageclasses") => storage::STORAGE_CLASS,
        ("storage.k8s.io", "csidrivers") => storage::CSI_DRIVER,
        ("storage.k8s.io", "csinodes") => storage::CSI_NODE,
        ("storage.k8s.io", "csistoragecapacities") => storage::CSI_STORAGE_CAPACITY,
        ("storage.k8s.io", "volumeattachments") => storage::VOLUME_ATTACHMENT,
        ("policy", "poddisruptionbudgets") => policy::POD_DISRUPTION_BUDGET,
        ("scheduling.k8s.io", "priorityclasses") => policy::PRIORITY_CLASS,
        ("flowcontrol.apiserver.k8s.io", "flowschemas") => policy::FLOW_SCHEMA,
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => {
            policy::PRIORITY_LEVEL_CONFIGURATION
        }
        ("coordination.k8s.io", "leases") => policy::LEASE,
        ("node.k8s.io", "runtimeclasses") => policy::RUNTIME_CLASS,
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            access::ROLE_BINDING
        }
        (
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations" | "validatingwebhookconfigurations",
        ) => access::WEBHOOK_CONFIGURATION,
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => {
            access::VALIDATING_ADMISSION_POLICY
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings") => {
            access::VALIDATING_ADMISSION_POLICY_BINDING
        }
        ("certificates.k8s.io", "certificatesigningrequests") => {
            access::CERTIFICATE_SIGNING_REQUEST
        }
        _ => DEFAULT,
    }
}

/// The cells of an object's row, one per column of its kind, ages counted to `now`.
fn cells(obj: &AnyObject, now: Timestamp) -> Vec<Value> {
    match obj {
        AnyObject::Pod(p) => pod::pod(p, now),
        AnyObject::Node(n) => pod::node(n, now),
        AnyObject::Namespace(ns) => core::namespace(ns, now),
        AnyObject::Service(s) => core::service(s, now),
        AnyObject::Endpoints(e) => core::endpoints(e, now),
        AnyObject::ConfigMap(cm) => core::config_map(cm, now),
        AnyObject::Secret(s) => core::secret(s, now),
        AnyObject::ServiceAccount(sa) => core::service_account(sa, now),
        AnyObject::ResourceQuota(q) => core::resource_quota(q, now),
        AnyObject::PodTemplate(t) => core::pod_template(t),
        AnyObject::Event(e) => events::event(e, now),
        AnyObject::PersistentVolume(pv) => storage::persistent_volume(pv, now),
        AnyObject::PersistentVolumeClaim(pvc) => storage::persistent_volume_claim(pvc, now),
        AnyObject::ReplicationController(rc) => workloads::replication_controller(rc, now),
        AnyObject::Deployment(d) => workloads::deployment(d, now),
        AnyObject::ReplicaSet(rs) => workloads::replica_set(rs, now),
        AnyObject::DaemonSet(ds) => workloads::daemon_set(ds, now),
        AnyObject::StatefulSet(ss) => workloads::stateful_set(ss, now),
        AnyObject::ControllerRevision(cr) => workloads::controller_revision(cr, now),
        AnyObject::Job(j) => workloads::job(j, now),
        AnyObject::CronJob(cj) => workloads::cron_job(cj, now),
        AnyObject::HorizontalPodAutoscaler(h) => hpa::hpa(h, now),
        AnyObject::Ingress(i) => network::ingress(i, now),
        AnyObject::IngressClass(ic) => network::ingress_class(ic, now),
        AnyObject::NetworkPolicy(np) => network::network_policy(np, now),
        AnyObject::EndpointSlice(es) => network::endpoint_slice(es, now),
        AnyObject::StorageClass(sc) => storage::storage_class(sc, now),
        AnyObject::CSIDriver(d) => storage::csi_driver(d, now),
        AnyObject::CSINode(n) => storage::csi_node(n, now),
        AnyObject::CSIStorageCapacity(c) => storage::csi_storage_capacity(c),
        AnyObject::VolumeAttachment(va) => storage::volume_attachment(va, now),
        AnyObject::PodDisruptionBudget(pdb) => policy::pod_disruption_budget(pdb, now),
        AnyObject::PriorityClass(pc) => policy::priority_class(pc, now),
        AnyObject::FlowSchema(fs) => policy::flow_schema(fs, now),
        AnyObject::PriorityLevelConfiguration(plc) => {
            policy::priority_level_configuration(plc, now)
        }
        AnyObject::Lease(l) => policy::lease(l, now),
        AnyObject::RuntimeClass(r) => policy::runtime_class(r, now),
        AnyObject::RoleBinding(rb) => {
            access::role_binding(&rb.metadata, &rb.role_ref, rb.subjects.as_ref(), now)
        }
        AnyObject::ClusterRoleBinding(crb) => {
            access::role_binding(&crb.metadata, &crb.role_ref, crb.subjects.as_ref(), now)
        }
        AnyObject::MutatingWebhookConfiguration(w) => {
            access::webhook_configuration(&w.metadata, w.webhooks.as_ref().map_or(0, Vec::len), now)
        }
        AnyObject::ValidatingWebhookConfiguration(w) => {
            access::webhook_configuration(&w.metadata, w.webhooks.as_ref().map_or(0, Vec::len), now)
        }
        AnyObject::ValidatingAdmissionPolicy(p) => access::validating_admission_policy(p, now),
        AnyObject::ValidatingAdmissionPolicyBinding(b) => {
            access::validating_admission_policy_binding(b, now)
        }
        AnyObject::CertificateSigningRequest(csr) => access::certificate_signing_request(csr, now),
        // Roles, cluster roles, limit ranges, custom resource definitions: kube's
        // default table.
        _ => {
            let meta = obj.metadata();
            vec![
                meta.name.clone().unwrap_or_default().into(),
                format::created_at(meta.creation_timestamp.as_ref()).into(),
            ]
        }
    }
}

/// The row conditions of an object, where kube's printer sets any.
fn conditions(obj: &AnyObject) -> Option<Value> {
    match obj {
        AnyObject::Pod(p) => pod::pod_conditions(p),
        _ => None,
    }
}

/// A `Table` of `objects`; `include_object` is the `includeObject` parameter
/// (`None`, `Object` or the default `Metadata`).
pub fn table(
    kind: &ObjectKind,
    objects: &[AnyObject],
    resource_version: &str,
    continue_token: Option<&str>,
    include_object: Option<&str>,
) -> Value {
    table_at(
        kind,
        objects,
        resource_version,
        continue_token,
        include_object,
        Timestamp::now(),
    )
}

/// [`table`] with ages counted to `now`.
fn table_at(
    kind: &ObjectKind,
    objects: &[AnyObject],
    resource_version: &str,
    continue_token: Option<&str>,
    include_object: Option<&str>,
    now: Timestamp,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let object = shown(include_object, o.metadata(), || o.to_value());
            let mut row = json!({"cells": cells(o, now), "object": object});
            if let Some(c) = conditions(o) {
                row["conditions"] = c;
            }
            row
        })
        .collect();
    render(columns(kind), rows, resource_version, continue_token)
}

/// The object a row carries as `includeObject` asks (`None`, `Object`, or the
/// default `Metadata`): `whole` is the object itself.
fn shown(include_object: Option<&str>, meta: &ObjectMeta, whole: impl FnOnce() -> Value) -> Value {
    match include_object {
        Some("None") => Value::Null,
        Some("Object") => whole(),
        _ => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": serde_json::to_value(meta).unwrap_or(Value::Null),
        }),
    }
}

/// The `Table` of `rows` under `columns`.
fn render(
    columns: &[Column],
    rows: Vec<Value>,
    resource_version: &str,
    continue_token: Option<&str>,
) -> Value {
    let cols: Vec<Value> = columns
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.ty, "format": c.format,
                   "description": "", "priority": c.priority})
        })
        .collect();
    let mut metadata = json!({"resourceVersion": resource_version});
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": cols,
        "rows": rows,
    })
}

/// `kubectl get componentstatuses` (kube's `printComponentStatus`).
const COMPONENT_STATUS: &[Column] = &[
    NAME,
    col("Status", "string"),
    col("Message", "string"),
    col("Error", "string"),
];

/// A `Table` of component statuses (computed at each read, never stored): `Healthy`
/// when the `Healthy` condition is `True`, `Unhealthy` when it is not, `Unknown`
/// without one, as kube prints them.
pub fn component_statuses(items: &[ComponentStatus], include_object: Option<&str>) -> Value {
    let rows = items
        .iter()
        .map(|cs| {
            let healthy = cs
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Healthy");
            let (status, message, error) = match healthy {
                Some(c) => (
                    if c.status == "True" {
                        "Healthy"
                    } else {
                        "Unhealthy"
                    },
                    c.message.clone().unwrap_or_default(),
                    c.error.clone().unwrap_or_default(),
                ),
                None => ("Unknown", String::new(), String::new()),
            };
            let name = cs.metadata.name.clone().unwrap_or_default();
            let object = shown(include_object, &cs.metadata, || {
                serde_json::to_value(cs).unwrap_or(Value::Null)
            });
            json!({"cells": [name, status, message, error], "object": object})
        })
        .collect();
    render(COMPONENT_STATUS, rows, "", None)
}

#[cfg(test)]
mod tests;

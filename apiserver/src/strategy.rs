//! What the server itself writes into objects, per kind (Kubernetes' "strategies"):
//! identity and timestamps on create, `generation` bumps on spec changes, status
//! kept apart from spec, and which fields may not change.

use k8s_openapi::api::core::v1::{NamespaceStatus, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use rk8s_api::validation::{FieldError, Reason};
use rk8s_api::{AnyObject, FieldPath};
use serde_json::Value;

pub mod ephemeral;
pub mod namespace;
mod part;
mod qos;

pub use part::Part;
pub use qos::qos_class;

/// Now, as Kubernetes timestamps are kept: whole seconds.
pub fn now() -> Time {
    let s = jiff::Timestamp::now().as_second();
    Time(jiff::Timestamp::from_second(s).unwrap_or_else(|_| jiff::Timestamp::now()))
}

fn value_of(obj: &AnyObject, field: &str) -> Value {
    obj.to_value().get(field).cloned().unwrap_or(Value::Null)
}

/// Sets `field` (`spec` or `status`) of `obj` to `value`, keeping everything else.
fn with_field(obj: &AnyObject, field: &str, value: Value) -> AnyObject {
    let mut v = obj.to_value();
    if let Value::Object(map) = &mut v {
        if value.is_null() {
            map.remove(field);
        } else {
            map.insert(field.to_string(), value);
        }
    }
    match AnyObject::from_value(&obj.kind(), v) {
        Some(Ok(o)) => o,
        _ => obj.clone(),
    }
}

/// Prepares a new object: identity, creation time, generation, and the status a new
/// object starts with.
pub fn prepare_create(obj: &mut AnyObject) {
    let meta = obj.metadata_mut();
    meta.uid = Some(uuid::Uuid::new_v4().to_string());
    meta.creation_timestamp = Some(now());
    meta.resource_version = None;
    meta.deletion_timestamp = None;
    meta.deletion_grace_period_seconds = None;
    meta.generation = None;
    if obj.kind().has_generation() {
        obj.metadata_mut().generation = Some(1);
    }
    merge_string_data(obj);
    namespace::label(obj);
    namespace::add_finalizer(obj);
    match obj {
        AnyObject::Pod(p) => {
            p.status = Some(PodStatus {
                phase: Some("Pending".into()),
                qos_class: p.spec.as_ref().map(|s| qos_class(s).to_string()),
                ..PodStatus::default()
            });
        }
        AnyObject::Namespace(ns) => {
            ns.status = Some(NamespaceStatus {
                phase: Some("Active".into()),
                ..NamespaceStatus::default()
            });
        }
        // A node reports its own status when it registers.
        AnyObject::Node(_) => {}
        AnyObject::Job(j) => {
            generate_job_selector(j);
            j.status = None;
        }
        other if other.kind().has_status() => *other = with_field(other, "status", Value::Null),
        _ => {}
    }
}

/// Moves a Secret's `stringData` into its `data`, where its keys win, as Kubernetes
/// does on every write: `stringData` is write-only and never stored.
fn merge_string_data(obj: &mut AnyObject) {
    if let AnyObject::Secret(s) = obj
        && let Some(string_data) = s.string_data.take()
    {
        let data = s.data.get_or_insert_with(Default::default);
        for (key, value) in string_data {
            data.insert(key, k8s_openapi::ByteString(value.into_bytes()));
        }
    }
}

/// Gives a Job without a manual selector the one Kubernetes generates: its pods are
/// labelled with the Job's uid and name, and selected by the uid.
fn generate_job_selector(job: &mut k8s_openapi::api::batch::v1::Job) {
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let Some(spec) = &mut job.spec else { return };
    if spec.manual_selector == Some(true) || spec.selector.is_some() {
        return;
    }
    let labels = spec
        .template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default);
    for (key, value) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        labels.insert(key.to_string(), value.clone());
    }
    spec.selector = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            match_labels: Some([("batch.kubernetes.io/controller-uid".to_string(), uid)].into()),
            match_expressions: None,
        },
    );
}

fn keep_server_metadata(new: &mut ObjectMeta, old: &ObjectMeta) {
    new.uid.clone_from(&old.uid);
    new.creation_timestamp.clone_from(&old.creation_timestamp);
    new.deletion_timestamp.clone_from(&old.deletion_timestamp);
    new.deletion_grace_period_seconds = old.deletion_grace_period_seconds;
    new.generation = old.generation;
    new.namespace.clone_from(&old.namespace);
    new.name.clone_from(&old.name);
}

/// Prepares a spec write (PUT/PATCH of the object): server-owned metadata and the
/// status are kept from `old`; `generation` counts spec changes.
pub fn prepare_update(new: &mut AnyObject, old: &AnyObject) {
    keep_server_metadata(new.metadata_mut(), old.metadata());
    merge_string_data(new);
    namespace::label(new);
    if old.kind().has_status() && !matches!(old, AnyObject::Node(_)) && !new.set_status_of(old) {
        *new = with_field(new, "status", value_of(old, "status"));
    }
    if let (AnyObject::Service(new), AnyObject::Service(old)) = (&mut *new, old) {
        crate::allocator::drop_type_dependent_fields(new, old);
        crate::allocator::keep_allocated(new, old);
    }
    if old.kind().has_generation() && desired_state(new) != desired_state(old) {
        new.metadata_mut().generation = Some(old.metadata().generation.unwrap_or(1) + 1);
    }
}

/// What counts as an object's desired state for `metadata.generation`: everything but
/// its metadata and status (the spec, or a webhook configuration's `webhooks`).
fn desired_state(obj: &AnyObject) -> Value {
    let mut v = obj.to_value();
    if let Value::Object(map) = &mut v {
        map.remove("metadata");
        map.remove("status");
    }
    v
}

/// Prepares a status write: everything but the status is kept from `old`.
pub fn prepare_status_update(new: &mut AnyObject, old: &AnyObject) {
    let rv = new.metadata().resource_version.clone();
    let mut written = old.clone();
    if !written.set_status_of(new) {
        written = with_field(old, "status", value_of(new, "status"));
    }
    *new = written;
    new.metadata_mut().resource_version = rv;
}

/// Fields that may not change once set.
pub fn validate_update(new: &AnyObject, old: &AnyObject) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let immutable = |errs: &mut Vec<FieldError>, path: &str, a: Value, b: Value| {
        if a != b {
            errs.push(FieldError {
                path: FieldPath::parse(path),
                reason: Reason::Invalid {
                    value: plain(&a),
                    detail: "field is immutable".into(),
                },
            });
        }
    };
    let spec = |o: &AnyObject, ptr: &str| o.to_value().pointer(ptr).cloned().unwrap_or(Value::Null);
    match (new, old) {
        (AnyObject::Namespace(_), _) => errs.extend(namespace::validate_phase(new)),
        (AnyObject::Pod(n), AnyObject::Pod(o)) => {
            // Only images, activeDeadlineSeconds and added tolerations may change.
            let strip = |p: &k8s_openapi::api::core::v1::Pod| {
                let mut s = p.spec.clone().unwrap_or_default();
                for c in s
                    .containers
                    .iter_mut()
                    .chain(s.init_containers.iter_mut().flatten())
                {
                    c.image = None;
                }
                s.active_deadline_seconds = None;
                s.tolerations = None;
                s.node_name = None;
                serde_json::to_value(s).unwrap_or(Value::Null)
            };
            if strip(n) != strip(o) {
                errs.push(FieldError {
                    path: FieldPath::parse("spec"),
                    reason: Reason::Forbidden(
                        "pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds` or `spec.tolerations` (only additions to existing tolerations)".into(),
                    ),
                });
            }
            let node = |p: &k8s_openapi::api::core::v1::Pod| {
                p.spec.as_ref().and_then(|s| s.node_name.clone())
            };
            if node(o).is_some() && node(n) != node(o) {
                immutable(&mut errs, "spec.nodeName", node(n).into(), node(o).into());
            }
        }
        (AnyObject::ConfigMap(n), AnyObject::ConfigMap(o)) if o.immutable == Some(true) => {
            immutable_data(&mut errs, n.immutable, new, old, &["data", "binaryData"]);
        }
        (AnyObject::Secret(n), AnyObject::Secret(o)) => {
            immutable(&mut errs, "type", spec(new, "/type"), spec(old, "/type"));
            if o.immutable == Some(true) {
                // `stringData` is merged into `data` by now (`prepare_update`).
                immutable_data(&mut errs, n.immutable, new, old, &["data"]);
            }
        }
        (AnyObject::PersistentVolumeClaim(n), AnyObject::PersistentVolumeClaim(o)) => {
            errs.extend(claim_update(n, o));
        }
        (AnyObject::PersistentVolume(_), _) => errs.extend(volume_update(new, old)),
        (AnyObject::StatefulSet(_), _) => {
            let strip = |o: &AnyObject| {
                let mut v = spec(o, "/spec");
                if let Value::Object(map) = &mut v {
                    for field in STATEFUL_SET_MUTABLE {
                        map.remove(*field);
                    }
                }
                v
            };
            if strip(new) != strip(old) {
                errs.push(forbidden(
                    "spec",
                    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                ));
            }
        }
        (AnyObject::RoleBinding(_), _) | (AnyObject::ClusterRoleBinding(_), _) => {
            let role_ref = spec(new, "/roleRef");
            if role_ref != spec(old, "/roleRef") {
                errs.push(FieldError {
                    path: FieldPath::parse("roleRef"),
                    reason: Reason::Invalid {
                        value: plain(&role_ref),
                        detail: "cannot change roleRef".into(),
                    },
                });
            }
        }
        (AnyObject::StorageClass(_), _) => {
            for field in ["parameters", "provisioner", "reclaimPolicy"] {
                let ptr = format!("/{field}");
                if spec(new, &ptr) != spec(old, &ptr) {
                    errs.push(forbidden(
                        field,
                        &format!("updates to {field} are forbidden."),
                    ));
                }
            }
            immutable(
                &mut errs,
                "volumeBindingMode",
                spec(new, "/volumeBindingMode"),
                spec(old, "/volumeBindingMode"),
            );
        }
        (AnyObject::PriorityClass(_), _) => {
            if spec(new, "/value") != spec(old, "/value") {
                errs.push(forbidden("value", "may not be changed in an update."));
            }
            immutable(
                &mut errs,
                "preemptionPolicy",
                spec(new, "/preemptionPolicy"),
                spec(old, "/preemptionPolicy"),
            );
        }
        (AnyObject::CSIDriver(_), _) => {
            for field in ["attachRequired", "fsGroupPolicy", "volumeLifecycleModes"] {
                let ptr = format!("/spec/{field}");
                immutable(
                    &mut errs,
                    &format!("spec.{field}"),
                    spec(new, &ptr),
                    spec(old, &ptr),
                );
            }
        }
        (AnyObject::EndpointSlice(_), _) => {
            immutable(
                &mut errs,
                "addressType",
                spec(new, "/addressType"),
                spec(old, "/addressType"),
            );
        }
        (AnyObject::DaemonSet(_), _) => {
            immutable(
                &mut errs,
                "spec.selector",
                spec(new, "/spec/selector"),
                spec(old, "/spec/selector"),
            );
        }
        (AnyObject::Deployment(_), _) | (AnyObject::ReplicaSet(_), _) => {
            immutable(
                &mut errs,
                "spec.selector",
                spec(new, "/spec/selector"),
                spec(old, "/spec/selector"),
            );
        }
        (AnyObject::Job(_), _) => {
            immutable(
                &mut errs,
                "spec.selector",
                spec(new, "/spec/selector"),
                spec(old, "/spec/selector"),
            );
            immutable(
                &mut errs,
                "spec.template",
                spec(new, "/spec/template"),
                spec(old, "/spec/template"),
            );
            immutable(
                &mut errs,
                "spec.completions",
                spec(new, "/spec/completions"),
                spec(old, "/spec/completions"),
            );
        }
        (AnyObject::Node(n), AnyObject::Node(o)) => {
            errs.extend(crate::node_restriction::node_update_errors(n, o));
        }
        (AnyObject::Service(n), _) => {
            if let AnyObject::Service(o) = old {
                errs.extend(rk8s_api::validation::service_update(n, o));
            }
            // A Service turned `ExternalName`, or back, may drop or get an address
            // (`validateUpgradeDowngradeClusterIPs`).
            let external_name = |obj: &AnyObject| spec(obj, "/spec/type") == "ExternalName";
            let old_ip = spec(old, "/spec/clusterIP");
            if !old_ip.is_null() && old_ip != "" && !external_name(new) && !external_name(old) {
                immutable(
                    &mut errs,
                    "spec.clusterIP",
                    spec(new, "/spec/clusterIP"),
                    old_ip,
                );
            }
        }
        _ => {}
    }
    errs
}

/// The fields of a StatefulSet's spec that may change (apps/v1
/// `ValidateStatefulSetUpdate`).
const STATEFUL_SET_MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// What kube-apiserver says of a ConfigMap's or Secret's data once it is immutable.
const IMMUTABLE_WHEN_SET: &str = "field is immutable when `immutable` is set";

/// A value as an error message shows it: strings without JSON's quotes.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn forbidden(path: &str, detail: &str) -> FieldError {
    FieldError {
        path: FieldPath::parse(path),
        reason: Reason::Forbidden(detail.into()),
    }
}

/// The value of a top-level field, with an absent map and an empty one alike.
fn data_field(obj: &AnyObject, field: &str) -> Value {
    match value_of(obj, field) {
        Value::Null => Value::Object(Default::default()),
        v => v,
    }
}

/// A ConfigMap or Secret marked immutable: its data may not change, nor may it be
/// made mutable again (core/v1 `ValidateConfigMapUpdate`, `ValidateSecretUpdate`).
fn immutable_data(
    errs: &mut Vec<FieldError>,
    new_immutable: Option<bool>,
    new: &AnyObject,
    old: &AnyObject,
    fields: &[&str],
) {
    if new_immutable != Some(true) {
        errs.push(forbidden("immutable", IMMUTABLE_WHEN_SET));
    }
    for field in fields {
        if data_field(new, field) != data_field(old, field) {
            errs.push(forbidden(field, IMMUTABLE_WHEN_SET));
        }
    }
}

/// A claim's spec is fixed once created, but for its storage request (a bound claim
/// may grow, and shrink back no lower than its capacity) and its volume attributes
/// class; `volumeName` may be set once (core/v1
/// `ValidatePersistentVolumeClaimUpdate`).
fn claim_update(
    new: &k8s_openapi::api::core::v1::PersistentVolumeClaim,
    old: &k8s_openapi::api::core::v1::PersistentVolumeClaim,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let bound = old.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let storage = |c: &k8s_openapi::api::core::v1::PersistentVolumeClaim| {
        c.spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .and_then(|q| rk8s_api::Quantity::try_from(q).ok())
    };
    let mut new_spec = new.spec.clone().unwrap_or_default();
    let mut old_spec = old.spec.clone().unwrap_or_default();
    if old_spec
        .volume_name
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        old_spec.volume_name.clone_from(&new_spec.volume_name);
    }
    // A claim without a class may be given one once (the retroactive default class
    // assignment), matching its beta annotation if it has one.
    let beta = old
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"));
    if old_spec.storage_class_name.is_none()
        && let Some(class) = new_spec
            .storage_class_name
            .as_ref()
            .filter(|c| !c.is_empty())
        && beta.is_none_or(|b| b == class)
    {
        old_spec.storage_class_name = Some(class.clone());
    }
    new_spec.volume_attributes_class_name = None;
    old_spec.volume_attributes_class_name = None;
    if bound {
        new_spec.resources.clone_from(&old_spec.resources);
        let capacity = old
            .status
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("storage"))
            .and_then(|q| rk8s_api::Quantity::try_from(q).ok());
        if let (Some(n), Some(o)) = (storage(new), storage(old))
            && n < o
            && capacity.as_ref().is_none_or(|c| n <= *c)
        {
            errs.push(forbidden(
                "spec.resources.requests.storage",
                "field can not be less than status.capacity",
            ));
        }
    }
    if new_spec != old_spec {
        errs.insert(
            0,
            forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ),
        );
    }
    errs
}

/// A volume's source and mode are fixed once created, and so is its node affinity
/// once set (core/v1 `ValidatePersistentVolumeUpdate`).
fn volume_update(new: &AnyObject, old: &AnyObject) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let (new_value, old_value) = (new.to_value(), old.to_value());
    let field = |o: &Value, f: &str| o["spec"].get(f).cloned().unwrap_or(Value::Null);
    if rk8s_api::validation::PV_SOURCES
        .iter()
        .any(|s| field(&new_value, s) != field(&old_value, s))
    {
        errs.push(forbidden(
            "spec.persistentvolumesource",
            "spec.persistentvolumesource is immutable after creation",
        ));
    }
    for (name, once_set) in [("volumeMode", false), ("nodeAffinity", true)] {
        let (n, o) = (field(&new_value, name), field(&old_value, name));
        if n != o && !(once_set && o.is_null()) {
            errs.push(FieldError {
                path: FieldPath::parse(&format!("spec.{name}")),
                reason: Reason::Invalid {
                    value: plain(&n),
                    detail: "field is immutable".into(),
                },
            });
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use rk8s_api::manifest;
    use serde_json::json;

    fn load(text: &str) -> AnyObject {
        manifest::load("t.yaml", text).unwrap().remove(0).object
    }

    const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: busybox}]}\n";

    #[test]
    fn create_sets_identity_and_clears_status() {
        let mut d = load(DEPLOY);
        if let AnyObject::Deployment(d) = &mut d {
            d.status = Some(Default::default());
        }
        prepare_create(&mut d);
        assert!(d.metadata().uid.is_some());
        assert_eq!(d.metadata().generation, Some(1));
        assert!(matches!(&d, AnyObject::Deployment(x) if x.status.is_none()));
        let mut p = load(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: x, resources: {limits: {cpu: 1, memory: 1Gi}}}]}\n",
        );
        prepare_create(&mut p);
        let AnyObject::Pod(pod) = &p else { panic!() };
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Pending"));
        assert_eq!(status.qos_class.as_deref(), Some("Guaranteed"));
    }

    #[test]
    fn a_job_gets_a_selector_of_its_uid_unless_it_brings_one() {
        let mut j = load(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {name: pi}\nspec:\n  template:\n    spec: {restartPolicy: Never, containers: [{name: a, image: x}]}\n",
        );
        prepare_create(&mut j);
        let AnyObject::Job(job) = &j else { panic!() };
        let uid = job.metadata.uid.clone().unwrap();
        let spec = job.spec.as_ref().unwrap();
        let selector = spec
            .selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap();
        assert_eq!(selector["batch.kubernetes.io/controller-uid"], uid);
        let labels = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert_eq!(labels["job-name"], "pi");
        assert_eq!(labels["batch.kubernetes.io/controller-uid"], uid);
        let mut manual = load(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {name: m}\nspec:\n  manualSelector: true\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {restartPolicy: Never, containers: [{name: a, image: x}]}\n",
        );
        prepare_create(&mut manual);
        let AnyObject::Job(job) = &manual else {
            panic!()
        };
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(
            spec.selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn spec_writes_keep_status_and_bump_generation() {
        let mut old = load(DEPLOY);
        prepare_create(&mut old);
        if let AnyObject::Deployment(d) = &mut old {
            d.status = Some(k8s_openapi::api::apps::v1::DeploymentStatus {
                replicas: Some(2),
                ..Default::default()
            });
        }
        let mut new = load(&DEPLOY.replace("replicas: 2", "replicas: 5"));
        prepare_update(&mut new, &old);
        assert_eq!(new.metadata().generation, Some(2));
        assert_eq!(new.metadata().uid, old.metadata().uid);
        assert!(
            matches!(&new, AnyObject::Deployment(x) if x.status.as_ref().unwrap().replicas == Some(2))
        );
        // Labels only: no generation bump.
        let mut relabel = old.clone();
        relabel.metadata_mut().labels = Some([("a".to_string(), "b".to_string())].into());
        prepare_update(&mut relabel, &old);
        assert_eq!(relabel.metadata().generation, Some(1));
        // A status write changes only the status.
        let mut status = new.clone();
        prepare_status_update(&mut status, &old);
        assert!(
            matches!(&status, AnyObject::Deployment(x) if x.spec.as_ref().unwrap().replicas == Some(2))
        );
    }

    #[test]
    fn immutable_fields_are_refused() {
        let old = load(DEPLOY);
        let new = load(
            &DEPLOY
                .replace("matchLabels: {app: web}", "matchLabels: {app: web2}")
                .replace("labels: {app: web}", "labels: {app: web2}"),
        );
        let errs = validate_update(&new, &old);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path.to_string(), "spec.selector");
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: x}]}\n";
        let old = load(pod);
        assert!(validate_update(&load(&pod.replace("image: x", "image: y")), &old).is_empty());
        assert_eq!(
            validate_update(&load(&pod.replace("name: a", "name: b")), &old).len(),
            1
        );
    }

    /// The messages of an update from `old` to `new` (both manifests).
    fn update_errors(old: &str, new: &str) -> Vec<String> {
        let mut old = load(old);
        prepare_create(&mut old);
        let mut new = load(new);
        prepare_update(&mut new, &old);
        validate_update(&new, &old)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// The messages of an update from `old` to `new` as the API server's admission
    /// runs it (update strategy, defaults, validation), and the object written.
    fn admitted_update(old: &str, new: &str) -> (Vec<String>, Value) {
        let mut old = load(old);
        // As stored once the controllers have written its status.
        let status = old.to_value()["status"].clone();
        prepare_create(&mut old);
        let mut old = with_field(&old, "status", status);
        rk8s_api::defaults::apply_defaults(&mut old);
        // Decoded only: on its own, the new manifest may not be valid.
        let (mut objects, diags) = manifest::decode("t.yaml", new);
        assert!(diags.is_empty(), "{diags:?}");
        let mut new = objects.remove(0).object;
        prepare_update(&mut new, &old);
        rk8s_api::defaults::apply_defaults(&mut new);
        let mut errs = rk8s_api::validation::validate(&new);
        errs.extend(validate_update(&new, &old));
        (
            errs.iter().map(ToString::to_string).collect(),
            new.to_value(),
        )
    }

    #[test]
    fn a_service_changing_type_drops_what_only_the_old_type_used() {
        // As the live object after the first apply, and as kubectl's patch leaves it
        // when the manifest changes only `type`.
        let lb = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  type: LoadBalancer\n  clusterIP: 10.96.1.1\n  clusterIPs: [10.96.1.1]\n  externalTrafficPolicy: Local\n  healthCheckNodePort: 30099\n  loadBalancerClass: example.com/lb\n  ports: [{port: 80, nodePort: 30086}]\nstatus: {loadBalancer: {ingress: [{ip: 1.2.3.4}]}}\n";
        let (errs, svc) = admitted_update(lb, &lb.replace("LoadBalancer", "ClusterIP"));
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(
            svc["spec"]["ports"],
            json!([{"port": 80, "protocol": "TCP", "targetPort": 80}])
        );
        for gone in [
            "externalTrafficPolicy",
            "healthCheckNodePort",
            "loadBalancerClass",
        ] {
            assert!(svc["spec"].get(gone).is_none(), "{gone}: {svc}");
        }
        assert_eq!(svc["spec"]["clusterIP"], "10.96.1.1");
        assert_eq!(svc["status"]["loadBalancer"], json!({}));

        // Turned ExternalName, it gives its address back.
        let (errs, svc) = admitted_update(
            lb,
            &lb.replace(
                "type: LoadBalancer",
                "type: ExternalName\n  externalName: example.org",
            ),
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert!(svc["spec"].get("clusterIP").is_none(), "{svc}");

        // A load balancer keeps its class (and so whose ingress it has): no class
        // given, or another, is refused; leaving the type clears it (above).
        let (errs, _) = admitted_update(lb, &lb.replace("example.com/lb", "example.com/other"));
        assert_eq!(
            errs,
            [
                "spec.loadBalancerClass: invalid value \"example.com/other\": may not change once set"
            ]
        );
        let (errs, _) =
            admitted_update(lb, &lb.replace("  loadBalancerClass: example.com/lb\n", ""));
        assert_eq!(
            errs,
            ["spec.loadBalancerClass: invalid value \"null\": may not change once set"]
        );

        // A node port the update itself sets is the user's: still refused for ClusterIP.
        let (errs, _) = admitted_update(
            lb,
            &lb.replace("LoadBalancer", "ClusterIP")
                .replace("30086", "30087"),
        );
        assert!(
            errs.iter().any(|e| e.contains("spec.ports[0].nodePort")),
            "{errs:?}"
        );
    }

    const CONFIG_MAP: &str =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nimmutable: true\ndata: {a: '1'}\n";
    const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nimmutable: true\nstringData: {a: '1'}\n";

    #[test]
    fn secret_string_data_is_merged_into_data_on_create_and_update() {
        let mut s = load(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: eA==, b: eA==}\nstringData: {b: y}\n",
        );
        prepare_create(&mut s);
        let AnyObject::Secret(secret) = &s else {
            panic!()
        };
        assert_eq!(secret.string_data, None);
        let data = secret.data.as_ref().unwrap();
        assert_eq!(data["a"].0, b"x");
        assert_eq!(data["b"].0, b"y");
        let mut update =
            load("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {c: z}\n");
        prepare_update(&mut update, &s);
        let AnyObject::Secret(secret) = &update else {
            panic!()
        };
        assert_eq!(secret.string_data, None);
        assert_eq!(secret.data.as_ref().unwrap()["c"].0, b"z");
    }

    #[test]
    fn immutable_config_maps_and_secrets_keep_their_data() {
        let cases: &[(&str, &str, &[&str])] = &[
            (CONFIG_MAP, CONFIG_MAP, &[]),
            (
                CONFIG_MAP,
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nimmutable: true\ndata: {a: '2'}\n",
                &["data: forbidden: field is immutable when `immutable` is set"],
            ),
            (
                CONFIG_MAP,
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: '1'}\nbinaryData: {b: eA==}\n",
                &[
                    "immutable: forbidden: field is immutable when `immutable` is set",
                    "binaryData: forbidden: field is immutable when `immutable` is set",
                ],
            ),
            (SECRET, SECRET, &[]),
            (
                SECRET,
                "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nimmutable: true\nstringData: {a: '2'}\n",
                &["data: forbidden: field is immutable when `immutable` is set"],
            ),
            (
                "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: Opaque\n",
                "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\nstringData: {tls.crt: a, tls.key: b}\n",
                &["type: invalid value \"kubernetes.io/tls\": field is immutable"],
            ),
        ];
        for (old, new, expected) in cases {
            assert_eq!(update_errors(old, new), *expected, "{new}");
        }
    }

    #[test]
    fn claims_may_only_grow_their_storage_request_once_bound() {
        let claim = |storage: &str, class: &str| {
            format!(
                "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: c}}\nspec: {{accessModes: [ReadWriteOnce], storageClassName: {class}, resources: {{requests: {{storage: {storage}}}}}}}\n"
            )
        };
        let immutable = "spec: forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims";
        assert_eq!(
            update_errors(&claim("1Gi", "a"), &claim("2Gi", "a")),
            [immutable]
        );
        // A class is given once to a claim without one, never changed.
        assert!(update_errors(&claim("1Gi", "null"), &claim("1Gi", "a")).is_empty());
        assert_eq!(
            update_errors(&claim("1Gi", "a"), &claim("1Gi", "b")),
            [immutable]
        );
        let mut old = load(&claim("1Gi", "a"));
        if let AnyObject::PersistentVolumeClaim(c) = &mut old {
            c.status = Some(k8s_openapi::api::core::v1::PersistentVolumeClaimStatus {
                phase: Some("Bound".into()),
                capacity: Some(
                    [(
                        "storage".to_string(),
                        k8s_openapi::apimachinery::pkg::api::resource::Quantity("1Gi".into()),
                    )]
                    .into(),
                ),
                ..Default::default()
            });
        }
        let errors = |new: &str| {
            let mut new = load(new);
            prepare_update(&mut new, &old);
            validate_update(&new, &old)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert!(errors(&claim("2Gi", "a")).is_empty());
        assert_eq!(errors(&claim("2Gi", "b")), [immutable]);
        assert_eq!(
            errors(&claim("512Mi", "a")),
            [
                "spec.resources.requests.storage: forbidden: field can not be less than status.capacity"
            ]
        );
    }

    #[test]
    fn volumes_keep_their_source_and_mode() {
        let pv = |source: &str| {
            format!(
                "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: pv}}\nspec: {{capacity: {{storage: 1Gi}}, accessModes: [ReadWriteOnce], {source}}}\n"
            )
        };
        assert!(
            update_errors(
                &pv("hostPath: {path: /a}"),
                &pv("hostPath: {path: /a}, persistentVolumeReclaimPolicy: Delete")
            )
            .is_empty()
        );
        assert_eq!(
            update_errors(&pv("hostPath: {path: /a}"), &pv("hostPath: {path: /b}")),
            [
                "spec.persistentvolumesource: forbidden: spec.persistentvolumesource is immutable after creation"
            ]
        );
    }

    #[test]
    fn stateful_sets_may_change_only_replicas_template_and_policies() {
        let sts = |extra: &str| {
            format!(
                "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: db}}\nspec:\n  serviceName: db\n  selector: {{matchLabels: {{app: db}}}}\n{extra}  template:\n    metadata: {{labels: {{app: db}}}}\n    spec: {{containers: [{{name: a, image: x}}]}}\n"
            )
        };
        assert!(
            update_errors(
                &sts(""),
                &sts("  replicas: 3\n  minReadySeconds: 5\n  updateStrategy: {type: OnDelete}\n")
            )
            .is_empty()
        );
        assert_eq!(
            update_errors(&sts(""), &sts("  podManagementPolicy: Parallel\n")),
            [
                "spec: forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
            ]
        );
        let ds = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: d}}\n  template:\n    metadata: {labels: {app: d, v: '1'}}\n    spec: {containers: [{name: a, image: x}]}\n";
        let changed = ds.replace("matchLabels: {app: d}", "matchLabels: {app: d, v: '1'}");
        let errs = update_errors(ds, &changed);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("spec.selector: invalid value"),
            "{errs:?}"
        );
    }

    #[test]
    fn bindings_classes_and_priorities_keep_what_others_rely_on() {
        let binding = |role: &str| {
            format!(
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: b}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {role}}}\nsubjects: [{{kind: User, name: alice}}]\n"
            )
        };
        let errs = update_errors(&binding("a"), &binding("b"));
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("roleRef: invalid value")
                && errs[0].ends_with("cannot change roleRef")
        );
        let sc = |provisioner: &str, mode: &str| {
            format!(
                "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {{name: fast}}\nprovisioner: {provisioner}\nvolumeBindingMode: {mode}\nallowVolumeExpansion: true\n"
            )
        };
        assert!(
            update_errors(
                &sc("a.io/x", "Immediate"),
                &sc("a.io/x", "Immediate").replace("true", "false")
            )
            .is_empty()
        );
        assert_eq!(
            update_errors(
                &sc("a.io/x", "Immediate"),
                &sc("b.io/y", "WaitForFirstConsumer")
            ),
            [
                "provisioner: forbidden: updates to provisioner are forbidden.",
                "volumeBindingMode: invalid value \"WaitForFirstConsumer\": field is immutable",
            ]
        );
        let pc = |value: i32| {
            format!(
                "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {{name: high}}\nvalue: {value}\n"
            )
        };
        assert_eq!(
            update_errors(&pc(10), &pc(20)),
            ["value: forbidden: may not be changed in an update."]
        );
    }
}

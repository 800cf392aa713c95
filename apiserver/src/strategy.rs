//! What the server itself writes into objects, per kind (Kubernetes' "strategies"):
//! identity and timestamps on create, `generation` bumps on spec changes, status
//! kept apart from spec, and which fields may not change.

use k8s_openapi::api::core::v1::{NamespaceStatus, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use rk8s_api::validation::{FieldError, Reason};
use rk8s_api::{AnyObject, FieldPath};
use serde_json::Value;


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

/// Kubernetes' QoS class: Guaranteed (every container's requests equal its limits for
/// cpu and memory), BestEffort (no requests or limits at all), else Burstable.
pub fn qos_class(spec: &k8s_openapi::api::core::v1::PodSpec) -> &'static str {
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let res = c.resources.clone().unwrap_or_default();
        let limits = res.limits.unwrap_or_default();
        let requests = res.requests.unwrap_or_default();
        if !limits.is_empty() || !requests.is_empty() {
            any = true;
        }
        for r in ["cpu", "memory"] {
            match (limits.get(r), requests.get(r)) {
                (Some(l), Some(q)) if l == q => {}
                (Some(_), None) => {}
                _ => guaranteed = false,
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
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
    if old.kind().has_status() && !matches!(old, AnyObject::Node(_)) {
        *new = with_field(new, "status", value_of(old, "status"));
    }
    if let (AnyObject::Service(new), AnyObject::Service(old)) = (&mut *new, old) {
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
    let status = value_of(new, "status");
    let rv = new.metadata().resource_version.clone();
    *new = with_field(old, "status", status);
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
                    value: a.to_string(),
                    detail: "field is immutable".into(),
                },
            });
        }
    };
    let spec = |o: &AnyObject, ptr: &str| o.to_value().pointer(ptr).cloned().unwrap_or(Value::Null);
    match (new, old) {
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
        (AnyObject::Service(_), _) => {
            let old_ip = spec(old, "/spec/clusterIP");
            if !old_ip.is_null() && old_ip != "" {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rk8s_api::manifest;

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
}

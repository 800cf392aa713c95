//! Pod spec defaults (core/v1 `SetDefaults_PodSpec`, `_Container`,
//! `_EphemeralContainer`, `_Probe`, `_Volume`), also applied to the pod templates of
//! every workload.

use k8s_openapi::api::core::v1::{Container, EmptyDirVolumeSource, PodSpec, Probe, Volume};

use super::{DEFAULT_SCHEDULER, DEFAULT_TERMINATION_GRACE_SECONDS, set, set_str};

/// Pod spec defaults (also applied to the templates of workloads).
pub fn pod_spec(spec: &mut PodSpec) {
    set_str(&mut spec.restart_policy, "Always");
    set_str(&mut spec.dns_policy, "ClusterFirst");
    set_str(&mut spec.scheduler_name, DEFAULT_SCHEDULER);
    set(
        &mut spec.termination_grace_period_seconds,
        DEFAULT_TERMINATION_GRACE_SECONDS,
    );
    set(&mut spec.enable_service_links, true);
    let init = spec.init_containers.iter_mut().flatten();
    for c in spec.containers.iter_mut().chain(init) {
        container(c);
    }
    // `SetDefaults_EphemeralContainer`: the fields it shares with a container.
    for c in spec.ephemeral_containers.iter_mut().flatten() {
        pull_policy(&mut c.image_pull_policy, c.image.as_deref());
        set_str(&mut c.termination_message_path, "/dev/termination-log");
        set_str(&mut c.termination_message_policy, "File");
    }
    for v in spec.volumes.iter_mut().flatten() {
        volume(v);
    }
}

/// A volume that names no source is an `emptyDir` (core/v1 `SetDefaults_Volume`):
/// older manifests write just `- name: data`.
fn volume(v: &mut Volume) {
    let sourceless = Volume {
        name: v.name.clone(),
        ..Volume::default()
    };
    if *v == sourceless {
        v.empty_dir = Some(EmptyDirVolumeSource::default());
    }
}

/// `Always` for `:latest` or untagged images, `IfNotPresent` otherwise (a digest
/// counts as a tag).
pub fn image_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    // The tag follows the last ':' after the last '/' (a registry may have a port).
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// An unset pull policy the one [`image_pull_policy`] gives `image`.
fn pull_policy(policy: &mut Option<String>, image: Option<&str>) {
    if policy.as_deref().is_none_or(str::is_empty) {
        *policy = Some(image_pull_policy(image.unwrap_or_default()).to_string());
    }
}

fn container(c: &mut Container) {
    pull_policy(&mut c.image_pull_policy, c.image.as_deref());
    set_str(&mut c.termination_message_path, "/dev/termination-log");
    set_str(&mut c.termination_message_policy, "File");
    for port in c.ports.iter_mut().flatten() {
        set_str(&mut port.protocol, "TCP");
    }
    // A limit without a request requests the limit.
    if let Some(r) = &mut c.resources
        && let Some(limits) = &r.limits
    {
        let requests = r.requests.get_or_insert_with(Default::default);
        for (name, q) in limits {
            requests.entry(name.clone()).or_insert_with(|| q.clone());
        }
    }
    for p in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        probe(p);
    }
    for env in c.env.iter_mut().flatten() {
        if let Some(f) = env.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            set_str(&mut f.api_version, "v1");
        }
    }
}

fn probe(p: &mut Probe) {
    set(&mut p.timeout_seconds, 1);
    set(&mut p.period_seconds, 10);
    set(&mut p.success_threshold, 1);
    set(&mut p.failure_threshold, 3);
    if let Some(h) = &mut p.http_get {
        set_str(&mut h.path, "/");
        set_str(&mut h.scheme, "HTTP");
    }
}

//! Defaulting as the Kubernetes API server does it (`SetDefaults_*` of core/v1, apps/v1,
//! batch/v1 and autoscaling/v2), so an object read back from rk8s looks like one read
//! back from Kubernetes. Only unset fields are filled in; defaulting twice changes
//! nothing.

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentStrategy, ReplicaSet, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{
    HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler, HorizontalPodAutoscalerBehavior,
    MetricSpec, MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, Probe, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::object::AnyObject;

/// The namespace of objects that do not name one.
pub const DEFAULT_NAMESPACE: &str = "default";
/// The scheduler that places pods that do not name one.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";
/// Kubernetes' default grace period between SIGTERM and SIGKILL.
pub const DEFAULT_TERMINATION_GRACE_SECONDS: i64 = 30;
/// HPA target CPU utilisation when no metric is given (autoscaling/v2 defaults).
pub const DEFAULT_HPA_CPU_UTILIZATION: i32 = 80;

fn set<T>(field: &mut Option<T>, value: T) {
    if field.is_none() {
        *field = Some(value);
    }
}

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
            }
        }
        AnyObject::ReplicaSet(rs) => replica_set(rs),
        AnyObject::Deployment(d) => deployment(d),
        AnyObject::Job(j) => job(j),
        AnyObject::Service(s) => service(s),
        AnyObject::HorizontalPodAutoscaler(h) => hpa(h),
        AnyObject::Endpoints(e) => {
            for port in e
                .subsets
                .iter_mut()
                .flatten()
                .flat_map(|s| s.ports.iter_mut().flatten())
            {
                set_str(&mut port.protocol, "TCP");
            }
        }
        _ => {}
    }
}

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

fn container(c: &mut Container) {
    if c.image_pull_policy.as_deref().is_none_or(str::is_empty) {
        let policy = image_pull_policy(c.image.as_deref().unwrap_or_default());
        c.image_pull_policy = Some(policy.to_string());
    }
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

/// Template defaults, plus the workload's labels taken from the template when it has
/// none (apps/v1).
fn template(meta: &mut ObjectMeta, template: &mut PodTemplateSpec) {
    if let Some(spec) = &mut template.spec {
        pod_spec(spec);
    }
    if meta.labels.as_ref().is_none_or(|l| l.is_empty()) {
        meta.labels = template.metadata.as_ref().and_then(|m| m.labels.clone());
    }
}

fn replica_set(rs: &mut ReplicaSet) {
    if let Some(spec) = &mut rs.spec {
        set(&mut spec.replicas, 1);
        if let Some(t) = &mut spec.template {
            template(&mut rs.metadata, t);
        }
    }
}

fn deployment(d: &mut Deployment) {
    let Some(spec) = &mut d.spec else { return };
    set(&mut spec.replicas, 1);
    set(&mut spec.revision_history_limit, 10);
    set(&mut spec.progress_deadline_seconds, 600);
    let strategy = spec
        .strategy
        .get_or_insert_with(DeploymentStrategy::default);
    set_str(&mut strategy.type_, "RollingUpdate");
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateDeployment::default);
        set(&mut ru.max_unavailable, IntOrString::String("25%".into()));
        set(&mut ru.max_surge, IntOrString::String("25%".into()));
    }
    template(&mut d.metadata, &mut spec.template);
}

fn job(j: &mut Job) {
    let Some(spec) = &mut j.spec else { return };
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
    }
    set(&mut spec.parallelism, 1);
    set(&mut spec.backoff_limit, 6);
    set_str(&mut spec.completion_mode, "NonIndexed");
    set(&mut spec.suspend, false);
    if let Some(ps) = &mut spec.template.spec {
        // A Job's pods must not restart forever: validation requires the user to
        // choose OnFailure or Never, so restartPolicy is left alone here.
        let restart = ps.restart_policy.take();
        pod_spec(ps);
        ps.restart_policy = restart;
    }
    if j.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
        j.metadata.labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone());
    }
}

fn service(s: &mut Service) {
    let Some(spec) = &mut s.spec else { return };
    set_str(&mut spec.type_, "ClusterIP");
    set_str(&mut spec.session_affinity, "None");
    let kind = spec.type_.clone().unwrap_or_default();
    if kind != "ExternalName" {
        set_str(&mut spec.internal_traffic_policy, "Cluster");
    }
    if matches!(kind.as_str(), "NodePort" | "LoadBalancer") {
        set_str(&mut spec.external_traffic_policy, "Cluster");
    }
    for port in spec.ports.iter_mut().flatten() {
        set_str(&mut port.protocol, "TCP");
        set(&mut port.target_port, IntOrString::Int(port.port));
    }
}

/// The HPA's default scale-up rules (autoscaling/v2): no stabilization, the larger of
/// 4 pods or 100% every 15 seconds.
pub fn default_scale_up() -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: Some(0),
        select_policy: Some("Max".into()),
        policies: Some(vec![
            HPAScalingPolicy {
                type_: "Pods".into(),
                value: 4,
                period_seconds: 15,
            },
            HPAScalingPolicy {
                type_: "Percent".into(),
                value: 100,
                period_seconds: 15,
            },
        ]),
        tolerance: None,
    }
}

/// The HPA's default scale-down rules: a 300-second stabilization window, then up to
/// 100% every 15 seconds.
pub fn default_scale_down() -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: Some(300),
        select_policy: Some("Max".into()),
        policies: Some(vec![HPAScalingPolicy {
            type_: "Percent".into(),
            value: 100,
            period_seconds: 15,
        }]),
        tolerance: None,
    }
}

/// Fills the unset parts of user rules from the defaults, part by part.
pub fn merge_rules(rules: &mut Option<HPAScalingRules>, defaults: HPAScalingRules) {
    match rules {
        None => *rules = Some(defaults),
        Some(r) => {
            set(
                &mut r.stabilization_window_seconds,
                defaults.stabilization_window_seconds.unwrap_or(0),
            );
            set_str(&mut r.select_policy, "Max");
            if r.policies.is_none() {
                r.policies = defaults.policies;
            }
        }
    }
}

fn hpa(h: &mut HorizontalPodAutoscaler) {
    let Some(spec) = &mut h.spec else { return };
    set(&mut spec.min_replicas, 1);
    if spec.metrics.as_ref().is_none_or(|m| m.is_empty()) {
        spec.metrics = Some(vec![MetricSpec {
            type_: "Resource".into(),
            resource: Some(ResourceMetricSource {
                name: "cpu".into(),
                target: MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(DEFAULT_HPA_CPU_UTILIZATION),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }]);
    }
    let behavior = spec
        .behavior
        .get_or_insert_with(HorizontalPodAutoscalerBehavior::default);
    merge_rules(&mut behavior.scale_up, default_scale_up());
    merge_rules(&mut behavior.scale_down, default_scale_down());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(image_pull_policy("busybox"), "Always");
        assert_eq!(image_pull_policy("busybox:latest"), "Always");
        assert_eq!(image_pull_policy("busybox:1.36"), "IfNotPresent");
        assert_eq!(image_pull_policy("localhost:5000/busybox"), "Always");
        assert_eq!(
            image_pull_policy("localhost:5000/busybox:1"),
            "IfNotPresent"
        );
        assert_eq!(image_pull_policy("busybox@sha256:abcd"), "IfNotPresent");
    }
}

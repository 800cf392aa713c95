//! Pod specs: containers, ports, resources, probes, environment, volumes, scheduling.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{
    Container, EnvVar, PodSpec, Probe, ResourceRequirements, Toleration, Volume,
};

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use super::{Errors, meta};
use crate::names;
use crate::path::FieldPath;
use crate::quantity::Quantity;

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "Never", "IfNotPresent"];
pub(super) const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];
pub(super) const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

pub(super) fn pod_spec(errs: &mut Errors, path: &FieldPath, spec: &PodSpec) {
    let volumes = volumes(
        errs,
        &path.key("volumes"),
        spec.volumes.as_deref().unwrap_or_default(),
    );
    if spec.containers.is_empty() {
        errs.required(&path.key("containers"));
    }
    let mut names = HashSet::new();
    let mut host_ports = HashSet::new();
    let groups = [
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
            true,
        ),
        ("containers", spec.containers.as_slice(), false),
    ];
    for (field, containers, init) in groups {
        for (i, c) in containers.iter().enumerate() {
            let p = path.key(field).index(i);
            if !c.name.is_empty() && !names.insert(c.name.clone()) {
                errs.duplicate(&p.key("name"), &c.name);
            }
            container(errs, &p, c, &volumes, init);
            for (j, port) in c.ports.iter().flatten().enumerate() {
                let Some(host_port) = port.host_port.filter(|p| *p != 0) else {
                    continue;
                };
                let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
                if !host_ports.insert((host_port, protocol)) {
                    errs.duplicate(&p.key("ports").index(j).key("hostPort"), host_port);
                }
            }
        }
    }
    ephemeral_containers(errs, path, spec, &volumes, names);
    errs.opt_one_of(
        &path.key("restartPolicy"),
        spec.restart_policy.as_ref(),
        RESTART_POLICIES,
    );
    errs.opt_one_of(
        &path.key("dnsPolicy"),
        spec.dns_policy.as_ref(),
        DNS_POLICIES,
    );
    errs.at_least(
        &path.key("terminationGracePeriodSeconds"),
        spec.termination_grace_period_seconds,
        0,
    );
    errs.at_least(
        &path.key("activeDeadlineSeconds"),
        spec.active_deadline_seconds,
        1,
    );
    meta::labels(errs, &path.key("nodeSelector"), spec.node_selector.as_ref());
    if let Some(rc) = &spec.runtime_class_name {
        errs.syntax(
            &path.key("runtimeClassName"),
            rc,
            names::dns1123_subdomain(rc),
        );
    }
    if let Some(node) = &spec.node_name
        && !node.is_empty()
    {
        errs.syntax(&path.key("nodeName"), node, names::dns1123_subdomain(node));
    }
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        toleration(errs, &path.key("tolerations").index(i), t);
    }
}

/// A pod template's spec: a pod's, without ephemeral containers (kube's
/// `ValidatePodTemplateSpec`: they are added to running pods only).
pub(super) fn template_spec(errs: &mut Errors, path: &FieldPath, spec: &PodSpec) {
    pod_spec(errs, path, spec);
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        errs.forbidden(
            &path.key("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        );
    }
}

/// The fields an ephemeral container may set (kube's
/// `allowedEphemeralContainerFields`): none that would make it part of the workload
/// (ports, probes, lifecycle, resources).
const EPHEMERAL_FIELDS: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "envFrom",
    "env",
    "volumeMounts",
    "volumeDevices",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
    "securityContext",
    "stdin",
    "stdinOnce",
    "tty",
    "targetContainerName",
];

/// kube's `validateEphemeralContainers`: each is a container (name, image, env,
/// mounts), named uniquely among all the pod's containers (`names` holds the init
/// and app ones), targeting an init or app container if any, and setting only
/// [`EPHEMERAL_FIELDS`], without subpaths.
fn ephemeral_containers(
    errs: &mut Errors,
    path: &FieldPath,
    spec: &PodSpec,
    volumes: &HashSet<String>,
    mut names: HashSet<String>,
) {
    let others = names.clone();
    for (i, ec) in spec.ephemeral_containers.iter().flatten().enumerate() {
        let p = path.key("ephemeralContainers").index(i);
        container(
            errs,
            &p,
            &crate::containers::ephemeral_as_container(ec),
            volumes,
            false,
        );
        if !ec.name.is_empty() && !names.insert(ec.name.clone()) {
            errs.duplicate(&p.key("name"), &ec.name);
        }
        if let Some(target) = ec
            .target_container_name
            .as_deref()
            .filter(|t| !t.is_empty())
            && !others.contains(target)
        {
            errs.message(
                &p.key("targetContainerName"),
                format!("Not found: {target:?}"),
            );
        }
        if let Ok(serde_json::Value::Object(set)) = serde_json::to_value(ec) {
            let set = set.iter().filter(|(_, v)| !is_zero(v)).map(|(f, _)| f);
            for field in set.filter(|f| !EPHEMERAL_FIELDS.contains(&f.as_str())) {
                errs.forbidden(&p.key(field), "cannot be set for an Ephemeral Container");
            }
        }
        for (j, m) in ec.volume_mounts.iter().flatten().enumerate() {
            let mp = p.key("volumeMounts").index(j);
            if m.sub_path.as_deref().is_some_and(|s| !s.is_empty()) {
                errs.forbidden(
                    &mp.key("subPath"),
                    "cannot be set for an Ephemeral Container",
                );
            }
            if m.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty()) {
                errs.forbidden(
                    &mp.key("subPathExpr"),
                    "cannot be set for an Ephemeral Container",
                );
            }
        }
    }
}

/// Whether a field holds its Go zero value (a struct's when all its fields do:
/// kubectl sends `resources: {}`), which counts as not set.
fn is_zero(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Object(m) => m.values().all(is_zero),
        Value::Array(_) | Value::Bool(true) => false,
    }
}

/// Checks volumes and returns their names (for volume mounts to refer to).
fn volumes(errs: &mut Errors, path: &FieldPath, volumes: &[Volume]) -> HashSet<String> {
    let mut seen = HashSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = path.index(i);
        if v.name.is_empty() {
            errs.required(&p.key("name"));
        } else {
            errs.syntax(&p.key("name"), &v.name, names::dns1123_label(&v.name));
            if !seen.insert(v.name.clone()) {
                errs.duplicate(&p.key("name"), &v.name);
            }
        }
        // A volume has exactly one source: every field but `name` is one.
        let sources = match serde_json::to_value(v) {
            Ok(serde_json::Value::Object(m)) => m.keys().filter(|k| *k != "name").count(),
            _ => 1,
        };
        match sources {
            0 => errs.required(&p.key("volumeSource")),
            1 => {}
            _ => errs.forbidden(&p, "may not specify more than 1 volume type"),
        }
    }
    seen
}

fn container(
    errs: &mut Errors,
    path: &FieldPath,
    c: &Container,
    volumes: &HashSet<String>,
    init: bool,
) {
    if c.name.is_empty() {
        errs.required(&path.key("name"));
    } else {
        errs.syntax(&path.key("name"), &c.name, names::dns1123_label(&c.name));
    }
    match c.image.as_deref() {
        None | Some("") => errs.required(&path.key("image")),
        Some(image) if image.trim() != image => errs.invalid(
            &path.key("image"),
            image,
            "must not have leading or trailing whitespace",
        ),
        Some(_) => {}
    }
    errs.opt_one_of(
        &path.key("imagePullPolicy"),
        c.image_pull_policy.as_ref(),
        PULL_POLICIES,
    );
    match (&c.restart_policy, init) {
        (Some(p), true) => errs.one_of(&path.key("restartPolicy"), p, &["Always"]),
        (Some(_), false) => errs.forbidden(
            &path.key("restartPolicy"),
            "may only be set for init containers",
        ),
        (None, _) => {}
    }
    let mut port_names = HashSet::new();
    for (i, port) in c.ports.iter().flatten().enumerate() {
        let p = path.key("ports").index(i);
        errs.port(&p.key("containerPort"), port.container_port);
        if let Some(hp) = port.host_port.filter(|p| *p != 0) {
            errs.port(&p.key("hostPort"), hp);
        }
        errs.opt_one_of(&p.key("protocol"), port.protocol.as_ref(), PROTOCOLS);
        if let Some(name) = &port.name {
            errs.syntax(&p.key("name"), name, names::iana_svc_name(name));
            if !port_names.insert(name.clone()) {
                errs.duplicate(&p.key("name"), name);
            }
        }
    }
    for (i, env) in c.env.iter().flatten().enumerate() {
        env_var(errs, &path.key("env").index(i), env);
    }
    let mut mount_paths = HashSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let p = path.key("volumeMounts").index(i);
        if m.name.is_empty() {
            errs.required(&p.key("name"));
        } else if !volumes.contains(&m.name) {
            errs.message(&p.key("name"), format!("not found \"{}\"", m.name));
        }
        if m.mount_path.is_empty() {
            errs.required(&p.key("mountPath"));
        } else if !mount_paths.insert(m.mount_path.clone()) {
            errs.duplicate(&p.key("mountPath"), &m.mount_path);
        }
        // kube-apiserver's validateLocalDescendingPath.
        if let Some(sub) = m.sub_path.as_deref() {
            if sub.starts_with('/') {
                errs.invalid(&p.key("subPath"), sub, "must be a relative path");
            } else if sub.split('/').any(|part| part == "..") {
                errs.invalid(&p.key("subPath"), sub, "must not contain '..'");
            }
        }
    }
    if let Some(r) = &c.resources {
        resources(errs, &path.key("resources"), r);
    }
    for (field, probe, must_succeed_once) in [
        ("livenessProbe", &c.liveness_probe, true),
        ("readinessProbe", &c.readiness_probe, false),
        ("startupProbe", &c.startup_probe, true),
    ] {
        if let Some(probe) = probe {
            self::probe(errs, &path.key(field), probe, must_succeed_once);
        }
    }
    if init && c.restart_policy.is_none() {
        for (field, set) in [
            ("livenessProbe", c.liveness_probe.is_some()),
            ("readinessProbe", c.readiness_probe.is_some()),
            ("startupProbe", c.startup_probe.is_some()),
        ] {
            if set {
                errs.forbidden(
                    &path.key(field),
                    "may not be set for init containers without restartPolicy=Always",
                );
            }
        }
    }
}

fn env_var(errs: &mut Errors, path: &FieldPath, env: &EnvVar) {
    if env.name.is_empty() {
        errs.required(&path.key("name"));
    } else {
        errs.syntax(&path.key("name"), &env.name, names::env_var_name(&env.name));
    }
    if let Some(from) = &env.value_from {
        if env.value.as_deref().is_some_and(|v| !v.is_empty()) {
            errs.message(
                &path.key("valueFrom"),
                "may not be specified when `value` is not empty",
            );
        }
        let sources = [
            from.field_ref.is_some(),
            from.resource_field_ref.is_some(),
            from.config_map_key_ref.is_some(),
            from.secret_key_ref.is_some(),
        ]
        .into_iter()
        .filter(|s| *s)
        .count();
        match sources {
            0 => errs.message(
                &path.key("valueFrom"),
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ),
            1 => {}
            _ => errs.message(
                &path.key("valueFrom"),
                "may not have more than one field specified at a time",
            ),
        }
    }
}

/// Standard resource names; anything else must be domain-qualified (`nvidia.com/gpu`).
const STANDARD_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];

/// Whether a resource is an extended one: counted in whole units, never overcommitted.
pub(super) fn is_extended_resource(name: &str) -> bool {
    name.contains('/') && !name.starts_with("kubernetes.io/") && !name.starts_with("requests.")
}

fn resources(errs: &mut Errors, path: &FieldPath, r: &ResourceRequirements) {
    let empty = BTreeMap::new();
    let limits = r.limits.as_ref().unwrap_or(&empty);
    let requests = r.requests.as_ref().unwrap_or(&empty);
    let mut parsed = |field: &str, map: &BTreeMap<String, K8sQuantity>| {
        let mut out = BTreeMap::new();
        for (name, q) in map {
            // A request equal to its limit (as defaulting makes it) has the limit's
            // problems, which are reported once, at the limit.
            if field == "requests" && limits.get(name) == Some(q) {
                if let Ok(v) = Quantity::try_from(q) {
                    out.insert(name.clone(), v);
                }
                continue;
            }
            let p = path.key(field).key(name);
            let standard =
                STANDARD_RESOURCES.contains(&name.as_str()) || name.starts_with("hugepages-");
            if !standard {
                if !name.contains('/') {
                    errs.invalid(
                        &p,
                        name,
                        "must be a standard resource type (cpu, memory, ephemeral-storage, hugepages-<size>) or fully qualified (example.com/device)",
                    );
                    continue;
                }
                errs.syntax(&p, name, names::qualified_name(name));
            }
            let Some(value) = errs.quantity(&p, q) else {
                continue;
            };
            if value.signum() < 0 {
                errs.invalid(&p, &q.0, "must be greater than or equal to 0");
            } else if is_extended_resource(name) && value.value() != value.milli_value() / 1000 {
                errs.invalid(&p, &q.0, "must be an integer");
            }
            out.insert(name.clone(), value);
        }
        out
    };
    let limits = parsed("limits", limits);
    let requests = parsed("requests", requests);
    for (name, request) in &requests {
        let p = path.key("requests").key(name.clone());
        match limits.get(name) {
            Some(limit) if is_extended_resource(name) && request != limit => errs.invalid(
                &p,
                request,
                format!("must be equal to {name} limit of {limit}"),
            ),
            Some(limit) if request > limit => errs.invalid(
                &p,
                request,
                format!("must be less than or equal to {name} limit of {limit}"),
            ),
            None if is_extended_resource(name) => errs.forbidden(
                &path.key("limits").key(name.clone()),
                format!(
                    "a limit must be set for {name}: extended resources cannot be overcommitted"
                ),
            ),
            _ => {}
        }
    }
}

fn probe(errs: &mut Errors, path: &FieldPath, probe: &Probe, must_succeed_once: bool) {
    let handlers = [
        probe.exec.is_some(),
        probe.http_get.is_some(),
        probe.tcp_socket.is_some(),
        probe.grpc.is_some(),
    ]
    .into_iter()
    .filter(|h| *h)
    .count();
    match handlers {
        0 => errs.message(
            path,
            "must specify a handler type: one of `exec`, `httpGet`, `tcpSocket` or `grpc`",
        ),
        1 => {}
        _ => errs.forbidden(path, "may not specify more than 1 handler type"),
    }
    if let Some(exec) = &probe.exec
        && exec.command.as_deref().unwrap_or_default().is_empty()
    {
        errs.required(&path.key("exec").key("command"));
    }
    if let Some(h) = &probe.http_get {
        errs.port_or_name(&path.key("httpGet").key("port"), &h.port);
        errs.opt_one_of(
            &path.key("httpGet").key("scheme"),
            h.scheme.as_ref(),
            &["HTTP", "HTTPS"],
        );
    }
    if let Some(t) = &probe.tcp_socket {
        errs.port_or_name(&path.key("tcpSocket").key("port"), &t.port);
    }
    if let Some(g) = &probe.grpc {
        errs.port(&path.key("grpc").key("port"), g.port);
    }
    let num = |v: Option<i32>| v;
    errs.at_least(
        &path.key("initialDelaySeconds"),
        num(probe.initial_delay_seconds),
        0,
    );
    errs.at_least(&path.key("periodSeconds"), num(probe.period_seconds), 1);
    errs.at_least(&path.key("timeoutSeconds"), num(probe.timeout_seconds), 1);
    errs.at_least(
        &path.key("failureThreshold"),
        num(probe.failure_threshold),
        1,
    );
    errs.at_least(
        &path.key("successThreshold"),
        num(probe.success_threshold),
        1,
    );
    if must_succeed_once
        && let Some(s) = probe.success_threshold
        && s != 1
    {
        errs.invalid(&path.key("successThreshold"), s, "must be 1");
    }
    errs.at_least(
        &path.key("terminationGracePeriodSeconds"),
        probe.termination_grace_period_seconds,
        1,
    );
}

pub(super) fn toleration(errs: &mut Errors, path: &FieldPath, t: &Toleration) {
    let key = t.key.as_deref().unwrap_or_default();
    let operator = t.operator.as_deref().unwrap_or("Equal");
    if !key.is_empty() {
        errs.syntax(&path.key("key"), key, names::qualified_name(key));
    } else if operator != "Exists" {
        errs.invalid(&path.key("operator"), operator, "operator must be Exists when `key` is empty, which means \"match all values and all keys\"");
    }
    errs.one_of(&path.key("operator"), operator, &["Equal", "Exists"]);
    let value = t.value.as_deref().unwrap_or_default();
    if operator == "Exists" && !value.is_empty() {
        errs.invalid(
            &path.key("value"),
            value,
            "value must be empty when `operator` is 'Exists'",
        );
    } else {
        errs.syntax(&path.key("value"), value, names::label_value(value));
    }
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        errs.one_of(&path.key("effect"), effect, TAINT_EFFECTS);
    }
    if t.toleration_seconds.is_some() && t.effect.as_deref() != Some("NoExecute") {
        errs.invalid(
            &path.key("effect"),
            t.effect.as_deref().unwrap_or_default(),
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        );
    }
}

//! Pods and nodes: the status kubectl shows for a pod (the reason of its most telling
//! container, `Init:1/2`, `Terminating`), its restarts, and a node's readiness and roles.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStatus, Node, Pod};
use serde_json::Value;

use super::format::{age, or, or_none, since};
use super::{AGE, Column, NAME, col, wide};

/// `kubectl get pods`.
pub(super) const POD: &[Column] = &[
    NAME,
    col("Ready", "string"),
    col("Status", "string"),
    col("Restarts", "string"),
    AGE,
    wide("IP", "string"),
    wide("Node", "string"),
    wide("Nominated Node", "string"),
    wide("Readiness Gates", "string"),
];

/// `kubectl get nodes`.
pub(super) const NODE: &[Column] = &[
    NAME,
    col("Status", "string"),
    col("Roles", "string"),
    AGE,
    col("Version", "string"),
    wide("Internal-IP", "string"),
    wide("External-IP", "string"),
    wide("OS-Image", "string"),
    wide("Kernel-Version", "string"),
    wide("Container-Runtime", "string"),
];

/// When the container last stopped, if it ever did.
fn last_finished(c: &ContainerStatus) -> Option<Timestamp> {
    c.last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.finished_at.as_ref())
        .map(|t| t.0)
}

fn later(current: &mut Option<Timestamp>, t: Option<Timestamp>) {
    if let Some(t) = t
        && current.is_none_or(|c| c < t)
    {
        *current = Some(t);
    }
}

fn non_empty(s: Option<&String>) -> Option<&str> {
    s.map(String::as_str).filter(|s| !s.is_empty())
}

/// The reason a terminated container with no reason of its own gives: its signal
/// or its exit code.
fn exit_reason(t: &k8s_openapi::api::core::v1::ContainerStateTerminated) -> String {
    match t.signal.filter(|s| *s != 0) {
        Some(s) => format!("Signal:{s}"),
        None => format!("ExitCode:{}", t.exit_code),
    }
}

/// A pod's row, as kube's `printPod` computes it: init containers first (a failing
/// or waiting one decides the status), then the app containers from last to first,
/// and sidecars (restartable init containers) counted with the app containers.
pub(super) fn pod(p: &Pod, now: Timestamp) -> Vec<Value> {
    let spec = p.spec.clone().unwrap_or_default();
    let status = p.status.clone().unwrap_or_default();
    let init_containers = spec.init_containers.as_deref().unwrap_or_default();
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let condition_true = |ty: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == ty)
            .is_some_and(|c| c.status == "True")
    };
    let phase = status.phase.clone().unwrap_or_default();
    let mut reason = non_empty(status.reason.as_ref()).map_or_else(|| phase.clone(), String::from);
    if conditions
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated"))
    {
        reason = "SchedulingGated".to_string();
    }
    let is_sidecar = |name: &str| {
        init_containers
            .iter()
            .any(|c| c.name == name && c.restart_policy.as_deref() == Some("Always"))
    };
    let total = spec.containers.len()
        + init_containers
            .iter()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"))
            .count();
    let mut ready = 0;
    let (mut restarts, mut sidecar_restarts) = (0i64, 0i64);
    let (mut last_restart, mut sidecar_last_restart) = (None, None);
    let mut initializing = false;
    for (i, c) in status.init_container_statuses.iter().flatten().enumerate() {
        restarts += i64::from(c.restart_count);
        later(&mut last_restart, last_finished(c));
        let sidecar = is_sidecar(&c.name);
        if sidecar {
            sidecar_restarts += i64::from(c.restart_count);
            later(&mut sidecar_last_restart, last_finished(c));
        }
        let state = c.state.clone().unwrap_or_default();
        if state.terminated.as_ref().is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if sidecar && c.started == Some(true) {
            if c.ready {
                ready += 1;
            }
            continue;
        }
        let waiting = state
            .waiting
            .as_ref()
            .and_then(|w| non_empty(w.reason.as_ref()))
            .filter(|r| *r != "PodInitializing");
        reason = match (&state.terminated, waiting) {
            (Some(t), _) => match non_empty(t.reason.as_ref()) {
                Some(r) => format!("Init:{r}"),
                None => format!("Init:{}", exit_reason(t)),
            },
            (None, Some(w)) => format!("Init:{w}"),
            (None, None) => format!("Init:{i}/{}", init_containers.len()),
        };
        initializing = true;
        break;
    }
    if !initializing || condition_true("Initialized") {
        restarts = sidecar_restarts;
        last_restart = sidecar_last_restart;
        let mut has_running = false;
        for c in status.container_statuses.iter().flatten().rev() {
            restarts += i64::from(c.restart_count);
            later(&mut last_restart, last_finished(c));
            let state = c.state.clone().unwrap_or_default();
            if let Some(w) = state
                .waiting
                .as_ref()
                .and_then(|w| non_empty(w.reason.as_ref()))
            {
                reason = w.to_string();
            } else if let Some(t) = &state.terminated {
                reason = non_empty(t.reason.as_ref()).map_or_else(|| exit_reason(t), String::from);
            } else if c.ready && state.running.is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true("Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .to_string();
        }
    }
    if p.metadata.deletion_timestamp.is_some() {
        if status.reason.as_deref() == Some("NodeLost") {
            reason = "Unknown".to_string();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_string();
        }
    }
    let restarts = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(t, now)),
        _ => restarts.to_string(),
    };
    let ip = status
        .pod_ips
        .as_ref()
        .and_then(|ips| ips.first())
        .map(|ip| ip.ip.clone())
        .or(status.pod_ip.clone())
        .unwrap_or_default();
    let gates = spec.readiness_gates.as_deref().unwrap_or_default();
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let met = gates
            .iter()
            .filter(|g| condition_true(&g.condition_type))
            .count();
        format!("{met}/{}", gates.len())
    };
    vec![
        p.metadata.name.clone().unwrap_or_default().into(),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts.into(),
        age(p.metadata.creation_timestamp.as_ref(), now).into(),
        or_none(ip).into(),
        or_none(spec.node_name.unwrap_or_default()).into(),
        or_none(status.nominated_node_name.unwrap_or_default()).into(),
        readiness_gates.into(),
    ]
}

/// The row conditions kube adds to finished pods (`Completed`), which clients use to
/// tell them apart.
pub(super) fn pod_conditions(p: &Pod) -> Option<Value> {
    let (reason, message) = match p.status.as_ref()?.phase.as_deref()? {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(serde_json::json!([{
        "type": "Completed", "status": "True", "reason": reason, "message": message,
    }]))
}

/// A node's row: `Ready`/`NotReady`/`Unknown` (plus `SchedulingDisabled` when
/// cordoned) and its roles, from `node-role.kubernetes.io/<role>` and
/// `kubernetes.io/role` labels.
pub(super) fn node(n: &Node, now: Timestamp) -> Vec<Value> {
    let status = n.status.clone().unwrap_or_default();
    let mut state = vec![match status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
    {
        Some(c) if c.status == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if n.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
    {
        state.push("SchedulingDisabled");
    }
    let roles: BTreeSet<&str> = n
        .metadata
        .labels
        .iter()
        .flatten()
        .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
            Some(role) => Some(role).filter(|r| !r.is_empty()),
            None if k == "kubernetes.io/role" && !v.is_empty() => Some(v.as_str()),
            None => None,
        })
        .collect();
    let address = |ty: &str| {
        status
            .addresses
            .iter()
            .flatten()
            .find(|a| a.type_ == ty)
            .map_or_else(|| "<none>".to_string(), |a| a.address.clone())
    };
    let info = status.node_info.clone().unwrap_or_default();
    vec![
        n.metadata.name.clone().unwrap_or_default().into(),
        state.join(",").into(),
        or_none(roles.into_iter().collect::<Vec<_>>().join(",")).into(),
        age(n.metadata.creation_timestamp.as_ref(), now).into(),
        info.kubelet_version.into(),
        address("InternalIP").into(),
        address("ExternalIP").into(),
        or(info.os_image, "<unknown>").into(),
        or(info.kernel_version, "<unknown>").into(),
        or(info.container_runtime_version, "<unknown>").into(),
    ]
}

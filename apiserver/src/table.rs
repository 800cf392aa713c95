//! Server-side printing: the `Table` form (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`)
//! that `kubectl get` asks for, with the columns kubectl shows for each kind.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rk8s_api::{AnyObject, ObjectKind};
use serde_json::{Value, json};

/// Whether an `Accept` header asks for a Table.
pub fn wants_table(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',')
            .next()
            .is_some_and(|first| first.contains("as=Table"))
    })
}

/// Columns: (name, type, priority: 0 always shown, 1 with `-o wide`).
fn columns(kind: &ObjectKind) -> Vec<(&'static str, &'static str, u8)> {
    let mut c: Vec<(&str, &str, u8)> = vec![("Name", "string", 0)];
    c.extend(match kind.plural {
        "pods" => vec![
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
        ],
        "nodes" => vec![
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
        ],
        "deployments" => vec![
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "replicasets" => vec![
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "services" => vec![
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            ("Age", "string", 0),
            ("Selector", "string", 1),
        ],
        "namespaces" => vec![("Status", "string", 0), ("Age", "string", 0)],
        "horizontalpodautoscalers" => vec![
            ("Reference", "string", 0),
            ("Targets", "string", 0),
            ("MinPods", "string", 0),
            ("MaxPods", "integer", 0),
            ("Replicas", "integer", 0),
            ("Age", "string", 0),
        ],
        "jobs" => vec![
            ("Status", "string", 0),
            ("Completions", "string", 0),
            ("Duration", "string", 0),
            ("Age", "string", 0),
        ],
        "endpoints" => vec![("Endpoints", "string", 0), ("Age", "string", 0)],
        "events" => vec![
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ],
        "leases" => vec![("Holder", "string", 0), ("Age", "string", 0)],
        "runtimeclasses" => vec![("Handler", "string", 0), ("Age", "string", 0)],
        _ => vec![("Age", "string", 0)],
    });
    c
}

/// Kubernetes' short human durations: `45s`, `3m12s`, `5h`, `2d3h`, `40d`.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86_400);
    match () {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 && s % 60 != 0 => format!("{m}m{}s", s % 60),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 && m % 60 != 0 => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ if d < 8 && h % 24 != 0 => format!("{d}d{}h", h % 24),
        _ if d < 365 * 2 => format!("{d}d"),
        _ => format!("{}y", d / 365),
    }
}

fn age(t: Option<&Time>) -> String {
    match t {
        Some(t) => human_duration(jiff::Timestamp::now().as_second() - t.0.as_second()),
        None => "<unknown>".to_string(),
    }
}

fn or_none(s: String) -> String {
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s
    }
}

fn selector_text(
    sel: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> String {
    sel.and_then(|s| rk8s_api::selector::label_selector(s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default()
}

fn containers_and_images(
    spec: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>,
) -> (String, String) {
    let containers = spec
        .and_then(|t| t.spec.as_ref())
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    (
        containers
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(","),
        containers
            .iter()
            .map(|c| c.image.as_deref().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// The pod's status as kubectl shows it: the reason of a waiting or terminated
/// container, `Terminating`, or the phase.
fn pod_status(p: &k8s_openapi::api::core::v1::Pod) -> String {
    if p.metadata.deletion_timestamp.is_some() {
        return "Terminating".to_string();
    }
    let status = p.status.as_ref();
    for cs in status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
    {
        if let Some(state) = &cs.state {
            if let Some(w) = state.waiting.as_ref().and_then(|w| w.reason.clone()) {
                return w;
            }
            if let Some(t) = state.terminated.as_ref().and_then(|t| t.reason.clone()) {
                return t;
            }
        }
    }
    status
        .and_then(|s| s.reason.clone().or_else(|| s.phase.clone()))
        .unwrap_or_else(|| "Pending".to_string())
}

fn cells(obj: &AnyObject) -> Vec<Value> {
    let meta = obj.metadata();
    let name = json!(obj.name());
    let created = age(meta.creation_timestamp.as_ref());
    let mut row = vec![name];
    match obj {
        AnyObject::Pod(p) => {
            let statuses = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.clone())
                .unwrap_or_default();
            let total = p.spec.as_ref().map_or(0, |s| s.containers.len());
            let ready = statuses.iter().filter(|c| c.ready).count();
            let restarts: i32 = statuses.iter().map(|c| c.restart_count).sum();
            let status = p.status.as_ref();
            row.extend([
                json!(format!("{ready}/{total}")),
                json!(pod_status(p)),
                json!(restarts.to_string()),
                json!(created),
                json!(or_none(
                    status.and_then(|s| s.pod_ip.clone()).unwrap_or_default()
                )),
                json!(or_none(
                    p.spec
                        .as_ref()
                        .and_then(|s| s.node_name.clone())
                        .unwrap_or_default()
                )),
            ]);
        }
        AnyObject::Node(n) => {
            let status = n.status.as_ref();
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .map(|c| {
                    if c.status == "True" {
                        "Ready"
                    } else {
                        "NotReady"
                    }
                })
                .unwrap_or("Unknown");
            let mut ready = ready.to_string();
            if n.spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false)
            {
                ready.push_str(",SchedulingDisabled");
            }
            let roles: Vec<&str> = meta
                .labels
                .iter()
                .flatten()
                .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
                .collect();
            let info = status.and_then(|s| s.node_info.as_ref());
            let ip = status
                .and_then(|s| s.addresses.as_ref())
                .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
                .map(|a| a.address.clone())
                .unwrap_or_default();
            row.extend([
                json!(ready),
                json!(or_none(roles.join(","))),
                json!(created),
                json!(info.map(|i| i.kubelet_version.clone()).unwrap_or_default()),
                json!(or_none(ip)),
                json!(info.map(|i| i.os_image.clone()).unwrap_or_default()),
                json!(info.map(|i| i.kernel_version.clone()).unwrap_or_default()),
            ]);
        }
        AnyObject::Deployment(d) => {
            let s = d.status.clone().unwrap_or_default();
            let spec = d.spec.as_ref();
            let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
            let (c, i) = containers_and_images(spec.map(|s| &s.template));
            row.extend([
                json!(format!("{}/{desired}", s.ready_replicas.unwrap_or(0))),
                json!(s.updated_replicas.unwrap_or(0)),
                json!(s.available_replicas.unwrap_or(0)),
                json!(created),
                json!(c),
                json!(i),
                json!(selector_text(spec.map(|s| &s.selector))),
            ]);
        }
        AnyObject::ReplicaSet(rs) => {
            let s = rs.status.clone().unwrap_or_default();
            let spec = rs.spec.as_ref();
            let (c, i) = containers_and_images(spec.and_then(|s| s.template.as_ref()));
            row.extend([
                json!(spec.and_then(|s| s.replicas).unwrap_or(1)),
                json!(s.replicas),
                json!(s.ready_replicas.unwrap_or(0)),
                json!(created),
                json!(c),
                json!(i),
                json!(selector_text(spec.map(|s| &s.selector))),
            ]);
        }
        AnyObject::Service(svc) => {
            let spec = svc.spec.clone().unwrap_or_default();
            let ports: Vec<String> = spec
                .ports
                .iter()
                .flatten()
                .map(|p| {
                    let proto = p.protocol.as_deref().unwrap_or("TCP");
                    match p.node_port {
                        Some(np) => format!("{}:{np}/{proto}", p.port),
                        None => format!("{}/{proto}", p.port),
                    }
                })
                .collect();
            let selector = spec
                .selector
                .iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            row.extend([
                json!(spec.type_.unwrap_or_else(|| "ClusterIP".into())),
                json!(or_none(spec.cluster_ip.unwrap_or_default())),
                json!(or_none(spec.external_ips.unwrap_or_default().join(","))),
                json!(or_none(ports.join(","))),
                json!(created),
                json!(or_none(selector)),
            ]);
        }
        AnyObject::Namespace(ns) => {
            let phase = ns
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Active".into());
            row.extend([json!(phase), json!(created)]);
        }
        AnyObject::HorizontalPodAutoscaler(h) => {
            let spec = h.spec.as_ref();
            let status = h.status.clone().unwrap_or_default();
            let reference = spec
                .map(|s| format!("{}/{}", s.scale_target_ref.kind, s.scale_target_ref.name))
                .unwrap_or_default();
            let targets = hpa_targets(
                spec.and_then(|s| s.metrics.as_deref()).unwrap_or_default(),
                status.current_metrics.as_deref().unwrap_or_default(),
            );
            row.extend([
                json!(reference),
                json!(or_none(targets)),
                json!(spec.and_then(|s| s.min_replicas).unwrap_or(1).to_string()),
                json!(spec.map_or(0, |s| s.max_replicas)),
                json!(status.current_replicas.unwrap_or(0)),
                json!(created),
            ]);
        }
        AnyObject::Job(j) => {
            let s = j.status.clone().unwrap_or_default();
            let completions = j.spec.as_ref().and_then(|s| s.completions).unwrap_or(1);
            let finished = s
                .conditions
                .iter()
                .flatten()
                .find(|c| c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed"))
                .map(|c| c.type_.clone());
            let duration = match (&s.start_time, &s.completion_time) {
                (Some(a), Some(b)) => human_duration(b.0.as_second() - a.0.as_second()),
                (Some(a), None) => {
                    human_duration(jiff::Timestamp::now().as_second() - a.0.as_second())
                }
                _ => String::new(),
            };
            row.extend([
                json!(finished.unwrap_or_else(|| "Running".into())),
                json!(format!("{}/{completions}", s.succeeded.unwrap_or(0))),
                json!(duration),
                json!(created),
            ]);
        }
        AnyObject::Endpoints(e) => {
            let mut eps = Vec::new();
            for subset in e.subsets.iter().flatten() {
                for a in subset.addresses.iter().flatten() {
                    for p in subset.ports.iter().flatten() {
                        eps.push(format!("{}:{}", a.ip, p.port));
                    }
                }
            }
            row.extend([json!(or_none(eps.join(","))), json!(created)]);
        }
        AnyObject::Event(e) => {
            let last = e
                .last_timestamp
                .as_ref()
                .or(e.metadata.creation_timestamp.as_ref());
            let o = &e.involved_object;
            row = vec![
                json!(age(last)),
                json!(e.type_.clone().unwrap_or_default()),
                json!(e.reason.clone().unwrap_or_default()),
                json!(format!(
                    "{}/{}",
                    o.kind.clone().unwrap_or_default().to_lowercase(),
                    o.name.clone().unwrap_or_default()
                )),
                json!(e.message.clone().unwrap_or_default()),
            ];
        }
        AnyObject::Lease(l) => {
            let holder = l
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.clone())
                .unwrap_or_default();
            row.extend([json!(holder), json!(created)]);
        }
        AnyObject::RuntimeClass(r) => row.extend([json!(r.handler), json!(created)]),
        _ => row.push(json!(created)),
    }
    row
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
    let mut cols: Vec<Value> = columns(kind)
        .into_iter()
        .map(|(name, ty, priority)| {
            json!({"name": name, "type": ty, "format": if name == "Name" { "name" } else { "" },
                   "description": "", "priority": priority})
        })
        .collect();
    if kind.plural == "events" {
        cols.remove(0);
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let object = match include_object {
                Some("None") => Value::Null,
                Some("Object") => o.to_value(),
                _ => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": serde_json::to_value(o.metadata()).unwrap_or(Value::Null),
                }),
            };
            json!({"cells": cells(o), "object": object})
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

/// The TARGETS column of HorizontalPodAutoscalers, as kubectl writes it: `cpu:
/// 72%/50%` for utilization, `current/target` for values, `(avg)` after per-replica
/// targets of Object and External metrics, `<unknown>` before the first measurement.
fn hpa_targets(
    specs: &[k8s_openapi::api::autoscaling::v2::MetricSpec],
    statuses: &[k8s_openapi::api::autoscaling::v2::MetricStatus],
) -> String {
    use k8s_openapi::api::autoscaling::v2::{MetricTarget, MetricValueStatus};
    let q = |q: &Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>| {
        q.as_ref().map(|q| q.0.clone())
    };
    let unknown = || "<unknown>".to_string();
    let value = |target: &MetricTarget, current: Option<&MetricValueStatus>| {
        if target.average_value.is_some() {
            let now = current
                .and_then(|c| q(&c.average_value))
                .unwrap_or_else(unknown);
            format!("{now}/{}", q(&target.average_value).unwrap_or_default())
        } else {
            let now = current.and_then(|c| q(&c.value)).unwrap_or_else(unknown);
            format!("{now}/{}", q(&target.value).unwrap_or_default())
        }
    };
    let resource =
        |name: &str, target: &MetricTarget, current: Option<&MetricValueStatus>| match target
            .average_utilization
        {
            Some(u) => {
                let now = current
                    .and_then(|c| c.average_utilization)
                    .map_or_else(unknown, |c| format!("{c}%"));
                format!("{name}: {now}/{u}%")
            }
            None => format!("{name}: {}", value(target, current)),
        };
    let mut out: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let s = statuses.get(i);
            match m.type_.as_str() {
                "Resource" => m.resource.as_ref().map(|r| {
                    let now = s.and_then(|s| s.resource.as_ref()).map(|r| &r.current);
                    resource(&r.name, &r.target, now)
                }),
                "ContainerResource" => m.container_resource.as_ref().map(|r| {
                    let now = s
                        .and_then(|s| s.container_resource.as_ref())
                        .map(|r| &r.current);
                    resource(&r.name, &r.target, now)
                }),
                "Pods" => m.pods.as_ref().map(|p| {
                    let now = s.and_then(|s| s.pods.as_ref()).map(|p| &p.current);
                    value(&p.target, now)
                }),
                "Object" => m.object.as_ref().map(|o| {
                    let now = s.and_then(|s| s.object.as_ref()).map(|o| &o.current);
                    let avg = if o.target.average_value.is_some() {
                        " (avg)"
                    } else {
                        ""
                    };
                    format!("{}{avg}", value(&o.target, now))
                }),
                "External" => m.external.as_ref().map(|e| {
                    let now = s.and_then(|s| s.external.as_ref()).map(|e| &e.current);
                    let avg = if e.target.average_value.is_some() {
                        " (avg)"
                    } else {
                        ""
                    };
                    format!("{}{avg}", value(&e.target, now))
                }),
                _ => None,
            }
            .unwrap_or_else(|| "<unknown type>".to_string())
        })
        .collect();
    let more = out.len().saturating_sub(10);
    out.truncate(10);
    let list = out.join(", ");
    if more > 0 {
        format!("{list} + {more} more...")
    } else {
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rk8s_api::manifest;

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(3600 * 3 + 60), "3h1m");
        assert_eq!(human_duration(86_400 * 3), "3d");
        assert_eq!(human_duration(86_400 * 3 + 3600 * 2), "3d2h");
    }

    #[test]
    fn pods_and_deployments_print_their_columns() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {nodeName: n1, containers: [{name: a, image: busybox}]}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: busybox}]}\n";
        let objs = manifest::load("t.yaml", text).unwrap();
        let pod = &objs[0].object;
        let t = table(&pod.kind(), std::slice::from_ref(pod), "7", None, None);
        assert_eq!(t["rows"][0]["cells"][0], "web");
        assert_eq!(t["rows"][0]["cells"][1], "0/1");
        assert_eq!(t["rows"][0]["cells"][2], "Pending");
        assert_eq!(t["rows"][0]["cells"][6], "n1");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 7);
        let d = &objs[1].object;
        let t = table(
            &d.kind(),
            std::slice::from_ref(d),
            "7",
            Some("c"),
            Some("Object"),
        );
        assert_eq!(t["rows"][0]["cells"][1], "0/3");
        assert_eq!(t["rows"][0]["cells"][7], "app=web");
        assert_eq!(t["rows"][0]["object"]["kind"], "Deployment");
        assert_eq!(t["metadata"]["continue"], "c");
        assert!(wants_table(Some(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        )));
        assert!(!wants_table(Some("application/json")));
    }
}

#[cfg(test)]
mod hpa_tests {
    use super::*;

    #[test]
    fn hpa_targets_read_as_kubectl_prints_them() {
        let specs: Vec<k8s_openapi::api::autoscaling::v2::MetricSpec> = serde_json::from_value(serde_json::json!([
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
            {"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "10"}}},
            {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "AverageValue", "averageValue": "5"}}},
            {"type": "Object", "object": {"describedObject": {"kind": "Service", "name": "web"}, "metric": {"name": "hits"}, "target": {"type": "Value", "value": "2k"}}},
        ]))
        .unwrap();
        let statuses: Vec<k8s_openapi::api::autoscaling::v2::MetricStatus> = serde_json::from_value(serde_json::json!([
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 72, "averageValue": "72m"}}},
        ]))
        .unwrap();
        assert_eq!(
            hpa_targets(&specs, &statuses),
            "cpu: 72%/50%, memory: <unknown>/100Mi, <unknown>/10, <unknown>/5 (avg), <unknown>/2k"
        );
        assert_eq!(hpa_targets(&specs[..1], &[]), "cpu: <unknown>/50%");
    }
}

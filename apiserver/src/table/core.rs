//! The core group's configuration and service kinds: namespaces, services and
//! endpoints, config maps, secrets, service accounts, resource quotas, pod templates.

use std::collections::BTreeSet;
use std::net::IpAddr;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Namespace, PodTemplate, ResourceQuota, Secret, Service, ServiceAccount,
};
use serde_json::Value;

use super::format::{age, containers_and_images, format_labels, or_none, quantity_of, with_more};
use super::{AGE, Column, NAME, col, wide};

/// `kubectl get namespaces`.
pub(super) const NAMESPACE: &[Column] = &[NAME, col("Status", "string"), AGE];
/// `kubectl get services`.
pub(super) const SERVICE: &[Column] = &[
    NAME,
    col("Type", "string"),
    col("Cluster-IP", "string"),
    col("External-IP", "string"),
    col("Port(s)", "string"),
    AGE,
    wide("Selector", "string"),
];
/// `kubectl get endpoints`.
pub(super) const ENDPOINTS: &[Column] = &[NAME, col("Endpoints", "string"), AGE];
/// `kubectl get configmaps`.
pub(super) const CONFIG_MAP: &[Column] = &[NAME, col("Data", "string"), AGE];
/// `kubectl get secrets`.
pub(super) const SECRET: &[Column] = &[NAME, col("Type", "string"), col("Data", "string"), AGE];
/// `kubectl get serviceaccounts`.
pub(super) const SERVICE_ACCOUNT: &[Column] = &[NAME, col("Secrets", "string"), AGE];
/// `kubectl get resourcequotas` (the age last since Kubernetes 1.33,
/// kubernetes/kubernetes#129419).
pub(super) const RESOURCE_QUOTA: &[Column] =
    &[NAME, col("Request", "string"), col("Limit", "string"), AGE];
/// `kubectl get podtemplates` (no age: kube prints none).
pub(super) const POD_TEMPLATE: &[Column] = &[
    NAME,
    col("Containers", "string"),
    col("Images", "string"),
    col("Pod Labels", "string"),
];

pub(super) fn namespace(ns: &Namespace, now: Timestamp) -> Vec<Value> {
    let phase = ns.status.as_ref().and_then(|s| s.phase.clone());
    vec![
        ns.metadata.name.clone().unwrap_or_default().into(),
        // Namespaces are created `Active` (kube's namespace strategy).
        phase.unwrap_or_else(|| "Active".into()).into(),
        age(ns.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

/// The EXTERNAL-IP of a service (`getServiceExternalIP`): its external IPs, and for a
/// load balancer the ingress points too (`<pending>` before there are any).
fn service_external_ip(svc: &Service, ty: &str) -> String {
    let spec = svc.spec.clone().unwrap_or_default();
    let external = spec.external_ips.unwrap_or_default();
    match ty {
        "ClusterIP" | "NodePort" => or_none(external.join(",")),
        "LoadBalancer" => {
            let ingress: BTreeSet<String> = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| {
                    i.ip.clone()
                        .filter(|ip| !ip.is_empty())
                        .or_else(|| i.hostname.clone().filter(|h| !h.is_empty()))
                })
                .collect();
            let all: Vec<String> = ingress.into_iter().chain(external).collect();
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => spec.external_name.unwrap_or_default(),
        _ => "<unknown>".to_string(),
    }
}

pub(super) fn service(svc: &Service, now: Timestamp) -> Vec<Value> {
    let spec = svc.spec.clone().unwrap_or_default();
    // `ClusterIP` is the default type (kube's defaulting).
    let ty = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    let cluster_ip = spec
        .cluster_ips
        .as_ref()
        .and_then(|ips| ips.first().cloned())
        .or(spec.cluster_ip.clone())
        .unwrap_or_default();
    let ports: Vec<String> = spec
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            match p.node_port.filter(|n| *n > 0) {
                Some(np) => format!("{}:{np}/{proto}", p.port),
                None => format!("{}/{proto}", p.port),
            }
        })
        .collect();
    let external_ip = service_external_ip(svc, &ty);
    vec![
        svc.metadata.name.clone().unwrap_or_default().into(),
        ty.into(),
        or_none(cluster_ip).into(),
        external_ip.into(),
        or_none(ports.join(",")).into(),
        age(svc.metadata.creation_timestamp.as_ref(), now).into(),
        format_labels(spec.selector.as_ref()).into(),
    ]
}

/// `host:port` as Go's `net.JoinHostPort` writes it (IPv6 in brackets).
fn join_host_port(ip: &str, port: i32) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{ip}]:{port}"),
        _ if ip.contains(':') => format!("[{ip}]:{port}"),
        _ => format!("{ip}:{port}"),
    }
}

/// The ENDPOINTS cell (`formatEndpoints`): `ip:port` for every ready address and
/// port, bare IPs for subsets without ports, the first three then `+ N more...`.
pub(super) fn endpoints_text(e: &Endpoints) -> String {
    let subsets = e.subsets.as_deref().unwrap_or_default();
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut list = Vec::new();
    for ss in subsets {
        let addresses = ss.addresses.as_deref().unwrap_or_default();
        match ss.ports.as_deref().unwrap_or_default() {
            [] => list.extend(addresses.iter().map(|a| a.ip.clone())),
            ports => {
                for p in ports {
                    list.extend(addresses.iter().map(|a| join_host_port(&a.ip, p.port)));
                }
            }
        }
    }
    with_more(&list, 3, ",")
}

pub(super) fn endpoints(e: &Endpoints, now: Timestamp) -> Vec<Value> {
    vec![
        e.metadata.name.clone().unwrap_or_default().into(),
        endpoints_text(e).into(),
        age(e.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

pub(super) fn config_map(cm: &ConfigMap, now: Timestamp) -> Vec<Value> {
    let n =
        cm.data.as_ref().map_or(0, |d| d.len()) + cm.binary_data.as_ref().map_or(0, |d| d.len());
    vec![
        cm.metadata.name.clone().unwrap_or_default().into(),
        n.into(),
        age(cm.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

pub(super) fn secret(s: &Secret, now: Timestamp) -> Vec<Value> {
    vec![
        s.metadata.name.clone().unwrap_or_default().into(),
        // `Opaque` is the default type (kube's defaulting).
        s.type_.clone().unwrap_or_else(|| "Opaque".into()).into(),
        s.data.as_ref().map_or(0, |d| d.len()).into(),
        age(s.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

pub(super) fn service_account(sa: &ServiceAccount, now: Timestamp) -> Vec<Value> {
    vec![
        sa.metadata.name.clone().unwrap_or_default().into(),
        sa.secrets.as_ref().map_or(0, |s| s.len()).into(),
        age(sa.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

/// REQUEST and LIMIT of a quota: `resource: used/hard` for every hard limit, sorted
/// by name; names starting `limits.` go to LIMIT.
pub(super) fn resource_quota(q: &ResourceQuota, now: Timestamp) -> Vec<Value> {
    let status = q.status.clone().unwrap_or_default();
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    for (name, hard) in status.hard.iter().flatten() {
        let text = format!(
            "{name}: {}/{}",
            quantity_of(status.used.as_ref(), name),
            super::format::quantity(hard)
        );
        let is_limit = name
            .split_once('.')
            .is_some_and(|(first, _)| first == "limits");
        if is_limit {
            limits.push(text);
        } else {
            requests.push(text);
        }
    }
    vec![
        q.metadata.name.clone().unwrap_or_default().into(),
        requests.join(", ").into(),
        limits.join(", ").into(),
        age(q.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

pub(super) fn pod_template(t: &PodTemplate) -> Vec<Value> {
    let template = t.template.clone().unwrap_or_default();
    let (names, images) = containers_and_images(template.spec.as_ref());
    let labels = template.metadata.and_then(|m| m.labels);
    vec![
        t.metadata.name.clone().unwrap_or_default().into(),
        names.into(),
        images.into(),
        format_labels(labels.as_ref()).into(),
    ]
}

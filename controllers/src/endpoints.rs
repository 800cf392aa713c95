//! The Endpoints of a Service, as Kubernetes' endpoints controller computes them: the
//! pods of the Service's namespace its selector selects, with an IP and not being
//! deleted or finished; Ready ones under `addresses` (all of them with
//! `publishNotReadyAddresses`), the others under `notReadyAddresses`; each Service
//! port resolved against the pod (a named `targetPort` looks up the container port of
//! that name; a pod without it serves no such port); addresses with the same ports
//! share a subset. Pure: the caller passes the objects.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The label Kubernetes puts on the Endpoints of a headless Service.
pub const HEADLESS: &str = "service.kubernetes.io/headless";

/// Whether the Service's selector selects `pod` (Services select by equality only).
pub fn selects(service: &Service, pod: &Pod) -> bool {
    let Some(selector) = service.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    let labels = pod.metadata.labels.as_ref();
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Whether the controller keeps this Service's Endpoints (it has a selector; without
/// one, the user writes them).
pub fn managed(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty())
}

/// The port `pod` serves Service port `port` on: its `targetPort` (the port itself when
/// unset), a named one looked up among the pod's container ports (`None` when the pod
/// has no port of that name).
pub(crate) fn target_port(
    port: &k8s_openapi::api::core::v1::ServicePort,
    pod: &Pod,
) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => match name.parse::<i32>() {
            Ok(n) => Some(n),
            Err(_) => pod
                .spec
                .iter()
                .flat_map(|s| &s.containers)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port),
        },
    }
}

/// A resolved port: name, number, protocol.
type Port = (String, i32, String);
/// Ready and not-ready addresses.
type Addresses = (Vec<EndpointAddress>, Vec<EndpointAddress>);

/// The Endpoints `service` should have, given the pods of its namespace.
pub fn endpoints<'a>(service: &Service, pods: impl IntoIterator<Item = &'a Pod>) -> Endpoints {
    let spec = service.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let mut subsets: BTreeMap<Vec<Port>, Addresses> = BTreeMap::new();
    for pod in pods.into_iter().filter(|p| selects(service, p)) {
        let status = pod.status.as_ref();
        let Some(ip) = status
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
        else {
            continue;
        };
        let phase = status.and_then(|s| s.phase.as_deref());
        if pod.metadata.deletion_timestamp.is_some()
            || matches!(phase, Some("Succeeded" | "Failed"))
        {
            continue;
        }
        let ports: Vec<Port> = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    p.name.clone().unwrap_or_default(),
                    target_port(p, pod)?,
                    p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                ))
            })
            .collect();
        if ports.is_empty() && spec.ports.as_ref().is_some_and(|p| !p.is_empty()) {
            continue;
        }
        let address = EndpointAddress {
            ip,
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                namespace: pod.metadata.namespace.clone(),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            }),
            hostname: pod
                .spec
                .as_ref()
                .filter(|s| s.subdomain.as_deref() == service.metadata.name.as_deref())
                .and_then(|s| s.hostname.clone()),
        };
        let entry = subsets.entry(ports).or_default();
        if publish_not_ready || crate::common::is_ready(pod) {
            entry.0.push(address);
        } else {
            entry.1.push(address);
        }
    }
    let subsets: Vec<EndpointSubset> = subsets
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then(|| {
                    ports
                        .into_iter()
                        .map(|(name, port, protocol)| EndpointPort {
                            name: (!name.is_empty()).then_some(name),
                            port,
                            protocol: Some(protocol),
                            app_protocol: None,
                        })
                        .collect()
                }),
            }
        })
        .collect();
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    if spec.cluster_ip.as_deref() == Some("None") {
        labels.insert(HEADLESS.into(), String::new());
    }
    Endpoints {
        metadata: ObjectMeta {
            name: service.metadata.name.clone(),
            namespace: service.metadata.namespace.clone(),
            labels: (!labels.is_empty()).then_some(labels),
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    }
}

/// Whether `current` already says what `want` says (subsets and labels).
pub fn up_to_date(current: &Endpoints, want: &Endpoints) -> bool {
    current.subsets == want.subsets && current.metadata.labels == want.metadata.labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(extra: serde_json::Value) -> Service {
        let mut v = json!({
            "metadata": {"name": "web", "namespace": "default", "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web"}, "ports": [
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "metrics", "port": 9100, "targetPort": 9100}]},
        });
        if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    fn pod(name: &str, ip: &str, ready: bool, http_port: Option<i32>) -> Pod {
        let ports: Vec<serde_json::Value> = http_port
            .map(|p| json!({"name": "http", "containerPort": p}))
            .into_iter()
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports}]},
            "status": {"phase": "Running", "podIP": ip,
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap()
    }

    #[test]
    fn ready_pods_are_addresses_and_named_ports_resolve_per_pod() {
        let pods = [
            pod("b", "10.244.0.3", true, Some(8080)),
            pod("a", "10.244.0.2", true, Some(8080)),
            pod("c", "10.244.1.2", false, Some(8080)),
            pod("d", "10.244.1.3", true, Some(8081)),
            pod("e", "10.244.1.4", true, None),
            pod("f", "", true, Some(8080)),
        ];
        let e = endpoints(&service(json!({})), &pods);
        let subsets = e.subsets.clone().unwrap();
        let v = serde_json::to_value(&subsets).unwrap();
        // Three port sets: http→8080 (a, b ready; c not), http→8081 (d), and e with
        // only the numeric port.
        assert_eq!(subsets.len(), 3, "{v:#}");
        let http8080 = subsets
            .iter()
            .find(|s| s.ports.as_ref().unwrap().iter().any(|p| p.port == 8080))
            .unwrap();
        let ips: Vec<&str> = http8080
            .addresses
            .iter()
            .flatten()
            .map(|a| a.ip.as_str())
            .collect();
        assert_eq!(ips, ["10.244.0.2", "10.244.0.3"]);
        assert_eq!(
            http8080.not_ready_addresses.as_ref().unwrap()[0].ip,
            "10.244.1.2"
        );
        let a = &http8080.addresses.as_ref().unwrap()[0];
        assert_eq!(a.node_name.as_deref(), Some("n1"));
        assert_eq!(a.target_ref.as_ref().unwrap().uid.as_deref(), Some("u-a"));
        let only_metrics = subsets
            .iter()
            .find(|s| s.ports.as_ref().unwrap().len() == 1)
            .unwrap();
        assert_eq!(only_metrics.ports.as_ref().unwrap()[0].port, 9100);
        assert_eq!(e.metadata.labels.unwrap()["team"], "a");
    }

    #[test]
    fn deleted_finished_and_unselected_pods_are_left_out() {
        let mut gone = pod("a", "10.244.0.2", true, Some(8080));
        gone.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        let mut done = pod("b", "10.244.0.3", true, Some(8080));
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let mut other = pod("c", "10.244.0.4", true, Some(8080));
        other.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
        assert!(
            endpoints(&service(json!({})), &[gone, done, other])
                .subsets
                .is_none()
        );
    }

    #[test]
    fn not_ready_pods_are_published_on_request_and_headless_is_labelled() {
        let s = service(json!({"publishNotReadyAddresses": true, "clusterIP": "None"}));
        let e = endpoints(&s, &[pod("a", "10.244.0.2", false, Some(8080))]);
        assert_eq!(e.subsets.unwrap()[0].addresses.as_ref().unwrap().len(), 1);
        assert_eq!(e.metadata.labels.unwrap()[HEADLESS], "");
        let no_selector: Service =
            serde_json::from_value(json!({"metadata": {"name": "x"}, "spec": {}})).unwrap();
        assert!(!managed(&no_selector) && managed(&s));
    }
}

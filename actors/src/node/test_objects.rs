//! Objects for the node's unit tests, as the API and the EndpointSlice controller
//! write them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddrV4;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use rk8s_controllers::endpoint_slices::SERVICE_NAME;
use serde_json::json;

/// A reflector store holding `objects`.
pub fn store<K>(objects: Vec<K>) -> Store<K>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, mut writer) = reflector::store();
    for o in objects {
        writer.apply_watcher_event(&watcher::Event::Apply(o));
    }
    store
}

/// The Service `name` in `default` at `cluster_ip` with `ports`.
pub fn service(name: &str, cluster_ip: &str, ports: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": name},
        "spec": {"clusterIP": cluster_ip, "ports": ports},
    }))
    .unwrap()
}

/// A slice `name` of Service `service` in `default`, as the EndpointSlice
/// controller labels them.
pub fn slice(
    name: &str,
    service: &str,
    ports: serde_json::Value,
    endpoints: serde_json::Value,
) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": name, "labels": {
            SERVICE_NAME: service,
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        }},
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    }))
    .unwrap()
}

/// An endpoint at `ip` on node `n1` with the controller's conditions and `hostname`.
pub fn endpoint(
    ip: &str,
    hostname: Option<&str>,
    ready: bool,
    terminating: bool,
) -> serde_json::Value {
    let mut e = json!({
        "addresses": [ip],
        "conditions": {"ready": ready, "serving": ready || terminating, "terminating": terminating},
        "nodeName": "n1",
        "targetRef": {"kind": "Pod", "namespace": "default", "name": hostname.unwrap_or(ip)},
    });
    if let Some(h) = hostname {
        e["hostname"] = json!(h);
    }
    e
}

/// A slice port named `http`.
pub fn http(port: i32) -> serde_json::Value {
    json!({"name": "http", "port": port, "protocol": "TCP"})
}

/// `ip:port`.
pub fn at(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

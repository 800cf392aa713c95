//! `networking.rk8s.io/v1alpha1` PodPeer: what a node needs to know of every pod to
//! enforce NetworkPolicy, and nothing more — a read-only projection the API server
//! serves from the pods (one PodPeer per pod, same namespace, name and
//! `resourceVersion`). Nodes may not read other nodes' pods (kube's Node authorizer:
//! "can only list/watch pods with spec.nodeName field selector"), whose specs carry
//! commands and environment; a PodPeer carries labels, addresses and named ports,
//! little beyond what EndpointSlices show every node already. The group is rk8s'
//! own, so it cannot clash with a Kubernetes one.

use std::borrow::Cow;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::{PodInfo, Protocol};

/// The API group of PodPeer.
pub const GROUP: &str = "networking.rk8s.io";
/// Its version.
pub const VERSION: &str = "v1alpha1";
/// Its `apiVersion`.
pub const API_VERSION: &str = "networking.rk8s.io/v1alpha1";
/// Its kind.
pub const KIND: &str = "PodPeer";
/// Its resource.
pub const PLURAL: &str = "podpeers";

/// One named container port of a PodPeer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerPort {
    /// `containers[].ports[].name`.
    pub name: String,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// `containerPort`.
    pub container_port: i32,
}

/// A pod as NetworkPolicy sees it, served to nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodPeer {
    /// Name, namespace, uid, labels and resourceVersion of the pod.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `spec.nodeName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// `status.podIPs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// The containers' named ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PeerPort>,
    /// `spec.hostNetwork`: such a pod is no policy target or peer.
    #[serde(default)]
    pub host_network: bool,
    /// The pod has Succeeded or Failed: no target or peer any more.
    #[serde(default)]
    pub terminal: bool,
}

impl kube_core::Resource for PodPeer {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(KIND)
    }

    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(GROUP)
    }

    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(VERSION)
    }

    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(PLURAL)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl PodPeer {
    /// The projection of `pod`.
    pub fn of(pod: &Pod) -> Self {
        let spec = pod.spec.as_ref();
        PodPeer {
            metadata: ObjectMeta {
                name: pod.metadata.name.clone(),
                namespace: pod.metadata.namespace.clone(),
                uid: pod.metadata.uid.clone(),
                labels: pod.metadata.labels.clone().filter(|l| !l.is_empty()),
                resource_version: pod.metadata.resource_version.clone(),
                ..ObjectMeta::default()
            },
            node_name: spec.and_then(|s| s.node_name.clone()),
            ips: super::pod_ips(pod)
                .iter()
                .map(ToString::to_string)
                .collect(),
            ports: super::named_ports(pod)
                .into_iter()
                .map(|p| PeerPort {
                    name: p.name,
                    protocol: p.protocol.api_name().to_string(),
                    container_port: i32::from(p.port),
                })
                .collect(),
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            terminal: super::is_terminal(pod),
        }
    }

    /// Whether two projections differ in more than their `resourceVersion` (a pod
    /// change that leaves its peer alone is not served to watchers).
    pub fn same_as(&self, other: &PodPeer) -> bool {
        let mut a = self.clone();
        a.metadata
            .resource_version
            .clone_from(&other.metadata.resource_version);
        a == *other
    }

    /// Its JSON as served, with `apiVersion` and `kind`.
    pub fn to_value(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(map) = &mut v {
            map.insert("apiVersion".into(), API_VERSION.into());
            map.insert("kind".into(), KIND.into());
        }
        v
    }

    /// What NetworkPolicy sees of it: `None` for hostNetwork, finished and
    /// address-less pods (kube-router's `isNetPolActionable`).
    pub fn info(&self) -> Option<PodInfo> {
        if self.host_network || self.terminal {
            return None;
        }
        let ips: Vec<std::net::Ipv4Addr> =
            self.ips.iter().filter_map(|ip| ip.parse().ok()).collect();
        if ips.is_empty() {
            return None;
        }
        Some(PodInfo {
            namespace: self.metadata.namespace.clone().unwrap_or_default(),
            name: self.metadata.name.clone().unwrap_or_default(),
            labels: self.metadata.labels.clone().unwrap_or_default(),
            ips,
            ports: self
                .ports
                .iter()
                .filter_map(|p| {
                    Some(super::NamedPort {
                        name: p.name.clone(),
                        protocol: Protocol::parse(&p.protocol)?,
                        port: u16::try_from(p.container_port).ok()?,
                    })
                })
                .collect(),
            node: self.node_name.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_projects_to_its_peer_and_back_to_what_policies_see() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "x", "uid": "u1", "resourceVersion": "7",
                         "labels": {"app": "web"}, "annotations": {"secret": "no"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i",
                "env": [{"name": "PASSWORD", "value": "hunter2"}],
                "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": "10.244.1.9"},
        }))
        .unwrap();
        let peer = PodPeer::of(&pod);
        let json = peer.to_value();
        assert_eq!(json["apiVersion"], API_VERSION);
        assert_eq!(json["kind"], KIND);
        assert_eq!(json["metadata"]["resourceVersion"], "7");
        assert_eq!(json["ports"][0]["containerPort"], 8080);
        let text = json.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("secret"),
            "{text}"
        );
        let back: PodPeer = serde_json::from_value(json).unwrap();
        assert_eq!(back, peer);
        assert_eq!(back.info(), super::super::pod_info(&pod));
        let mut status_only = pod.clone();
        status_only.metadata.resource_version = Some("8".into());
        status_only.status.as_mut().unwrap().message = Some("heartbeat".into());
        assert!(PodPeer::of(&status_only).same_as(&peer));
        let mut relabelled = status_only;
        relabelled.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
        assert!(!PodPeer::of(&relabelled).same_as(&peer));
    }
}

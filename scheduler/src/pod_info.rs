//! What the scheduler computes once per pod (its key, labels, requests and host ports),
//! so that no plugin reads them from the raw object again. kube-scheduler's
//! `framework.PodInfo`; a module of its own because both the framework and the cache
//! hold it.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use k8s_openapi::api::core::v1::{Pod, PodSpec};

use crate::resources::Resources;

/// The pod being scheduled, with what plugins need computed once.
#[derive(Clone, Debug)]
pub struct PodInfo {
    /// The pod.
    pub pod: Arc<Pod>,
    /// `namespace/name`.
    pub key: String,
    /// Its namespace.
    pub namespace: String,
    /// What it requests (sum of containers, at least each init container).
    pub requests: Resources,
    /// The same with Kubernetes' scoring defaults for unset cpu/memory requests.
    pub non_zero_requests: Resources,
    /// Host ports it asks for: (protocol, host IP, port).
    pub host_ports: Vec<(String, String, i32)>,
    /// What its PersistentVolumeClaims need of its node, looked up for this attempt
    /// (`None`: it mounts no claims).
    pub volumes: Option<Arc<crate::volume_needs::VolumeNeeds>>,
}

impl PodInfo {
    /// Prepares `pod`.
    pub fn new(pod: Arc<Pod>) -> Self {
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let key = format!(
            "{namespace}/{}",
            pod.metadata.name.as_deref().unwrap_or_default()
        );
        let (requests, non_zero_requests) = crate::resources::pod_requests(&pod);
        let host_ports = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let port = p.host_port.filter(|p| *p > 0)?;
                Some((
                    p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    p.host_ip.clone().unwrap_or_else(|| "0.0.0.0".into()),
                    port,
                ))
            })
            .collect();
        PodInfo {
            pod,
            key,
            namespace,
            requests,
            non_zero_requests,
            host_ports,
            volumes: None,
        }
    }

    /// Its labels (read from the pod: a cache of 150,000 pods held a copy of each).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        static NONE: BTreeMap<String, String> = BTreeMap::new();
        self.pod.metadata.labels.as_ref().unwrap_or(&NONE)
    }

    /// The pod's spec, or an empty one.
    pub fn spec(&self) -> &PodSpec {
        static EMPTY: OnceLock<PodSpec> = OnceLock::new();
        self.pod
            .spec
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(Default::default))
    }
}

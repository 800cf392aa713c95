//! One node as the scheduler sees it: what it offers, what its pods request, the host
//! ports and images it has. kube-scheduler's `framework.NodeInfo`; a module of its own
//! because both the framework (plugins read it) and the cache (which keeps it up to
//! date) hold it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, PodAffinityTerm, Taint};

use crate::pod_info::PodInfo;
use crate::resources::Resources;

/// One node and its pods.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// The node.
    pub node: Arc<Node>,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// What it offers pods.
    pub allocatable: Resources,
    /// What its pods request.
    pub requested: Resources,
    /// The same with the non-zero defaults (for scoring).
    pub non_zero_requested: Resources,
    /// Its pods, by `namespace/name`.
    pub pods: BTreeMap<String, Arc<PodInfo>>,
    /// Host ports in use: (protocol, host IP, port).
    pub used_ports: HashSet<(String, String, i32)>,
    /// Images it has, with their sizes.
    pub images: HashMap<String, i64>,
    /// How many of its pods have required pod anti-affinity (InterPodAffinity looks
    /// at those nodes only).
    pub pods_with_required_anti_affinity: usize,
}

impl NodeInfo {
    /// A node without pods.
    pub fn new(node: Arc<Node>) -> Self {
        let name = node.metadata.name.clone().unwrap_or_default();
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let status = node.status.as_ref();
        let allocatable = Resources::from_list(
            status
                .and_then(|s| s.allocatable.as_ref())
                .or(status.and_then(|s| s.capacity.as_ref())),
        );
        let mut images = HashMap::new();
        for image in status.and_then(|s| s.images.as_ref()).into_iter().flatten() {
            for name in image.names.iter().flatten() {
                images.insert(normalize_image(name), image.size_bytes.unwrap_or(0));
            }
        }
        NodeInfo {
            node,
            name,
            labels,
            allocatable,
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            pods: BTreeMap::new(),
            used_ports: HashSet::new(),
            images,
            pods_with_required_anti_affinity: 0,
        }
    }

    /// Adds a pod.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        if let Some(old) = self.pods.remove(&pod.key) {
            self.account(&old, false);
        }
        self.account(&pod, true);
        self.pods.insert(pod.key.clone(), pod);
    }

    /// Removes a pod.
    pub fn remove_pod(&mut self, key: &str) {
        if let Some(old) = self.pods.remove(key) {
            self.account(&old, false);
        }
    }

    fn account(&mut self, pod: &PodInfo, add: bool) {
        let anti = usize::from(required_anti_affinity(pod).is_some());
        if add {
            self.pods_with_required_anti_affinity += anti;
            self.requested.add(&pod.requests);
            self.non_zero_requested.add(&pod.non_zero_requests);
            self.used_ports.extend(pod.host_ports.iter().cloned());
        } else {
            self.pods_with_required_anti_affinity -= anti;
            self.requested.sub(&pod.requests);
            self.non_zero_requested.sub(&pod.non_zero_requests);
            for p in &pod.host_ports {
                self.used_ports.remove(p);
            }
        }
    }

    /// The node's taints.
    pub fn taints(&self) -> &[Taint] {
        self.node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default()
    }
}

/// A pod's required pod anti-affinity terms, if it has any.
pub fn required_anti_affinity(pod: &PodInfo) -> Option<&Vec<PodAffinityTerm>> {
    pod.spec()
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .filter(|t| !t.is_empty())
}

/// `busybox` → `docker.io/library/busybox:latest`, as node image lists name them.
pub fn normalize_image(image: &str) -> String {
    let (name, tag) = match image.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n.to_string(), t.to_string()),
        _ => (image.to_string(), "latest".to_string()),
    };
    let name = if name.contains('/') {
        let first = name.split('/').next().unwrap_or_default();
        if first.contains('.') || first.contains(':') || first == "localhost" {
            name
        } else {
            format!("docker.io/{name}")
        }
    } else {
        format!("docker.io/library/{name}")
    };
    format!("{name}:{tag}")
}

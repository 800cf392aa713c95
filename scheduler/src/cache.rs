//! The scheduler's view of the cluster: every node with the pods on it and what they
//! request. Binding is asynchronous: a pod is *assumed* on its node as soon as it is
//! chosen, so the next pod sees the room it takes, and is confirmed when the watch
//! shows it bound (or forgotten if binding fails).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

// Kept at their old path for the plugins and users that name them here.
pub use crate::node_info::{NodeInfo, normalize_image, required_anti_affinity};
use crate::pod_info::PodInfo;

/// Every node, and where each bound or assumed pod is.
#[derive(Default)]
pub struct Cache {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Pod key → node name.
    placed: HashMap<String, String>,
    /// Pods assumed and not yet seen bound.
    assumed: HashSet<String>,
}

impl Cache {
    /// Every node.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// One node.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    /// Adds or updates a node (its pods stay).
    pub fn upsert_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        match self.index.get(&name) {
            Some(i) => {
                let old = &mut self.nodes[*i];
                let mut fresh = NodeInfo::new(node);
                fresh.pods = std::mem::take(&mut old.pods);
                fresh.requested = std::mem::take(&mut old.requested);
                fresh.non_zero_requested = std::mem::take(&mut old.non_zero_requested);
                fresh.used_ports = std::mem::take(&mut old.used_ports);
                fresh.pods_with_required_anti_affinity = old.pods_with_required_anti_affinity;
                *old = fresh;
            }
            None => {
                self.index.insert(name, self.nodes.len());
                self.nodes.push(NodeInfo::new(node));
            }
        }
    }

    /// Removes a node (its pods' placements go with it).
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else {
            return;
        };
        let removed = self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
        for key in removed.pods.keys() {
            self.placed.remove(key);
            self.assumed.remove(key);
        }
    }

    /// Records a pod the API shows bound to `node` (confirming an assumption).
    pub fn add_bound_pod(&mut self, pod: Arc<Pod>, node: &str) {
        let info = Arc::new(PodInfo::new(pod));
        self.assumed.remove(&info.key);
        self.place(info, node);
    }

    fn place(&mut self, info: Arc<PodInfo>, node: &str) {
        if let Some(old) = self.placed.get(&info.key).cloned()
            && old != node
            && let Some(i) = self.index.get(&old)
        {
            self.nodes[*i].remove_pod(&info.key);
        }
        self.placed.insert(info.key.clone(), node.to_string());
        if let Some(i) = self.index.get(node) {
            self.nodes[*i].add_pod(info);
        }
    }

    /// Removes a pod (deleted, or finished).
    pub fn remove_pod(&mut self, key: &str) {
        self.assumed.remove(key);
        if let Some(node) = self.placed.remove(key)
            && let Some(i) = self.index.get(&node)
        {
            self.nodes[*i].remove_pod(key);
        }
    }

    /// Counts `pod` on `node` before the binding is confirmed.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.assumed.insert(pod.key.clone());
        self.place(pod, node);
    }

    /// Undoes [`Cache::assume`] (the binding failed).
    pub fn forget(&mut self, key: &str) {
        if self.assumed.contains(key) {
            self.remove_pod(key);
        }
    }

    /// Whether a pod is placed (bound or assumed).
    pub fn is_placed(&self, key: &str) -> bool {
        self.placed.contains_key(key)
    }

    /// How many pods are assumed and not yet confirmed.
    pub fn assumed_count(&self) -> usize {
        self.assumed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
            }))
            .unwrap(),
        )
    }

    fn pod(name: &str, cpu: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn assumed_pods_count_until_confirmed_or_forgotten() {
        let mut cache = Cache::default();
        cache.upsert_node(node("a"));
        cache.upsert_node(node("b"));
        cache.assume(Arc::new(PodInfo::new(pod("p", "1"))), "a");
        assert_eq!(cache.node("a").unwrap().requested.milli_cpu, 1000);
        cache.forget("default/p");
        assert_eq!(cache.node("a").unwrap().requested.milli_cpu, 0);
        cache.assume(Arc::new(PodInfo::new(pod("p", "1"))), "a");
        cache.add_bound_pod(pod("p", "1"), "a");
        // Confirmed: forgetting does nothing now.
        cache.forget("default/p");
        assert_eq!(cache.node("a").unwrap().requested.milli_cpu, 1000);
        assert_eq!(cache.assumed_count(), 0);
        // A node update keeps its pods; removing the node drops them.
        cache.upsert_node(node("a"));
        assert_eq!(cache.node("a").unwrap().pods.len(), 1);
        cache.remove_node("a");
        assert!(!cache.is_placed("default/p"));
        assert_eq!(cache.nodes().len(), 1);
        assert_eq!(cache.node("b").unwrap().name, "b");
    }

    #[test]
    fn image_names_are_normalized_like_node_image_lists() {
        assert_eq!(
            normalize_image("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(normalize_image("rk8s/app:v1"), "docker.io/rk8s/app:v1");
        assert_eq!(
            normalize_image("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
    }
}

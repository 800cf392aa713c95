//! Resource arithmetic as the scheduler counts it: a pod requests the sum of its
//! containers' requests, at least each init container's, plus its overhead; for
//! scoring, an unset cpu or memory request counts as 100m / 200Mi (Kubernetes'
//! non-zero defaults), so that pods without requests still spread.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use rk8s_api::quantity::Quantity;

/// The cpu counted for scoring when a container requests none (millicores).
pub const DEFAULT_MILLI_CPU: i64 = 100;
/// The memory counted for scoring when a container requests none (bytes).
pub const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

/// Amounts of resources: cpu in millicores, memory in bytes, a pod count, and
/// extended resources (`nvidia.com/gpu`) by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// Millicores.
    pub milli_cpu: i64,
    /// Bytes.
    pub memory: i64,
    /// Pods.
    pub pods: i64,
    /// Extended resources, in their own units.
    pub scalar: BTreeMap<String, i64>,
}

fn amount(name: &str, q: &K8sQuantity) -> i64 {
    let Ok(q) = q.0.parse::<Quantity>() else {
        return 0;
    };
    if name == "cpu" {
        q.milli_value()
    } else {
        q.value()
    }
}

impl Resources {
    /// From a `ResourceList` (`requests`, `allocatable`).
    pub fn from_list(list: Option<&BTreeMap<String, K8sQuantity>>) -> Self {
        let mut r = Resources::default();
        for (name, q) in list.into_iter().flatten() {
            let v = amount(name, q);
            match name.as_str() {
                "cpu" => r.milli_cpu = v,
                "memory" => r.memory = v,
                "pods" => r.pods = v,
                // Not scheduled on here.
                "ephemeral-storage" | "storage" => {}
                n if n.starts_with("hugepages-") => {}
                other => {
                    r.scalar.insert(other.to_string(), v);
                }
            }
        }
        r
    }

    /// Adds `other` in.
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.pods += other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    /// Takes `other` out.
    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.pods -= other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Each amount the larger of the two.
    fn max(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }

    /// The amount of a resource by its Kubernetes name.
    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.milli_cpu,
            "memory" => self.memory,
            "pods" => self.pods,
            other => self.scalar.get(other).copied().unwrap_or(0),
        }
    }
}

/// (requests, requests with the non-zero defaults) of a pod; `pods` is 1.
pub fn pod_requests(pod: &Pod) -> (Resources, Resources) {
    let mut total = Resources::default();
    let mut non_zero = Resources::default();
    let Some(spec) = pod.spec.as_ref() else {
        return (total, non_zero);
    };
    for c in &spec.containers {
        let r = Resources::from_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()));
        let mut nz = r.clone();
        if !has(c.resources.as_ref(), "cpu") {
            nz.milli_cpu = DEFAULT_MILLI_CPU;
        }
        if !has(c.resources.as_ref(), "memory") {
            nz.memory = DEFAULT_MEMORY;
        }
        total.add(&r);
        non_zero.add(&nz);
    }
    for c in spec.init_containers.iter().flatten() {
        let r = Resources::from_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()));
        total.max(&r);
        non_zero.max(&r);
    }
    let overhead = Resources::from_list(spec.overhead.as_ref());
    total.add(&overhead);
    non_zero.add(&overhead);
    total.pods = 1;
    non_zero.pods = 1;
    (total, non_zero)
}

fn has(r: Option<&k8s_openapi::api::core::v1::ResourceRequirements>, name: &str) -> bool {
    r.and_then(|r| r.requests.as_ref())
        .is_some_and(|l| l.contains_key(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_request_their_containers_sum_at_least_each_init_container() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "spec": {
                "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}],
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "500m", "nvidia.com/gpu": "1"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                ],
            }
        }))
        .unwrap();
        let (r, nz) = pod_requests(&pod);
        assert_eq!((r.milli_cpu, r.memory, r.pods), (2000, 1 << 30, 1));
        assert_eq!(r.scalar["nvidia.com/gpu"], 1);
        // Container a has no memory request: 200Mi counts for scoring (then the init
        // container's 1Gi is larger anyway).
        assert_eq!(nz.memory, 1 << 30);
        let bare: Pod =
            serde_json::from_value(serde_json::json!({"spec": {"containers": [{"name": "a"}]}}))
                .unwrap();
        let (r, nz) = pod_requests(&bare);
        assert_eq!((r.milli_cpu, r.memory), (0, 0));
        assert_eq!(
            (nz.milli_cpu, nz.memory),
            (DEFAULT_MILLI_CPU, DEFAULT_MEMORY)
        );
    }
}

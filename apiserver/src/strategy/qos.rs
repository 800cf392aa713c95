//! A pod's QoS class, as kube-apiserver sets `status.qosClass` at creation.

/// Kubernetes' QoS class: Guaranteed (every container's requests equal its limits for
/// cpu and memory), BestEffort (no cpu or memory requests or limits), else Burstable:
/// kube's `ComputePodQOS`, where extended resources do not count.
pub fn qos_class(spec: &k8s_openapi::api::core::v1::PodSpec) -> &'static str {
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let res = c.resources.clone().unwrap_or_default();
        let limits = res.limits.unwrap_or_default();
        let requests = res.requests.unwrap_or_default();
        // Only CPU and memory count (kube's supported QoS compute resources).
        any |= (limits.keys().chain(requests.keys())).any(|k| k == "cpu" || k == "memory");
        for r in ["cpu", "memory"] {
            match (limits.get(r), requests.get(r)) {
                (Some(l), Some(q)) if l == q => {}
                (Some(_), None) => {}
                _ => guaranteed = false,
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    fn spec(resources: serde_json::Value) -> PodSpec {
        serde_json::from_value(serde_json::json!({
            "containers": [{"name": "a", "image": "x", "resources": resources}],
        }))
        .unwrap()
    }

    #[test]
    fn only_cpu_and_memory_decide_the_class() {
        let limits = |l: serde_json::Value| spec(serde_json::json!({ "limits": l }));
        assert_eq!(
            qos_class(&limits(serde_json::json!({"cpu": "1", "memory": "1Gi"}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&limits(serde_json::json!({"cpu": "1"}))),
            "Burstable"
        );
        assert_eq!(qos_class(&spec(serde_json::json!({}))), "BestEffort");
        // A device plugin's resource alone: still BestEffort, as kube says.
        assert_eq!(
            qos_class(&limits(serde_json::json!({"example.com/foo": "1"}))),
            "BestEffort"
        );
    }
}

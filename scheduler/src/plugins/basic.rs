//! NodeName, NodeUnschedulable, NodePorts and TaintToleration.

use k8s_openapi::api::core::v1::{Taint, Toleration};
use rk8s_api::placement::{tolerated, tolerates, untolerated};

use crate::cache::NodeInfo;
use crate::framework::{
    CycleState, FilterPlugin, Plugin, PodInfo, ScorePlugin, Status, default_normalize,
};

/// `spec.nodeName`, when set, is the only node.
pub struct NodeName;

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        "NodeName"
    }
    fn filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodeName {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match pod.spec().node_name.as_deref() {
            Some(n) if !n.is_empty() && n != node.name => {
                Status::unresolvable("node(s) didn't match the requested node name")
            }
            _ => Status::success(),
        }
    }
}

/// Cordoned nodes (`spec.unschedulable`) take only pods tolerating
/// `node.kubernetes.io/unschedulable:NoSchedule`.
pub struct NodeUnschedulable;

/// The taint a cordoned node is treated as having.
const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }
    fn filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodeUnschedulable {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let cordoned = node
            .node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        if !cordoned {
            return Status::success();
        }
        let taint = Taint {
            key: UNSCHEDULABLE_TAINT.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if tolerated(
            &taint,
            pod.spec().tolerations.as_deref().unwrap_or_default(),
        ) {
            Status::success()
        } else {
            Status::unresolvable("node(s) were unschedulable")
        }
    }
}

/// Host ports already taken on a node.
pub struct NodePorts;

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        "NodePorts"
    }
    fn filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodePorts {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let clash = pod.host_ports.iter().any(|(proto, ip, port)| {
            node.used_ports.iter().any(|(p, i, n)| {
                p == proto && n == port && (i == ip || i == "0.0.0.0" || ip == "0.0.0.0")
            })
        });
        if clash {
            Status::unschedulable("node(s) didn't have free ports for the requested pod ports")
        } else {
            Status::success()
        }
    }
}

/// Taints: NoSchedule and NoExecute ones must be tolerated; untolerated
/// PreferNoSchedule ones make a node less preferred.
pub struct TaintToleration;

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }
    fn filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl FilterPlugin for TaintToleration {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let tolerations = pod.spec().tolerations.as_deref().unwrap_or_default();
        match untolerated(node.taints(), tolerations, &["NoSchedule", "NoExecute"]) {
            None => Status::success(),
            Some(t) => Status::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or("")
            )),
        }
    }
}

impl ScorePlugin for TaintToleration {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let tolerations: Vec<&Toleration> = pod
            .spec()
            .tolerations
            .iter()
            .flatten()
            .filter(|t| {
                matches!(
                    t.effect.as_deref(),
                    None | Some("") | Some("PreferNoSchedule")
                )
            })
            .collect();
        node.taints()
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule")
            .filter(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
            .count() as i64
    }

    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        default_normalize(scores, true);
    }
}

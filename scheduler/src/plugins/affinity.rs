//! NodeAffinity (with `nodeSelector`): required terms filter, preferred terms score.

use rk8s_api::placement::{required_affinity_matches, term_matches};

use crate::cache::NodeInfo;
use crate::framework::{
    CycleState, FilterPlugin, Plugin, PodInfo, ScorePlugin, Status, default_normalize,
};

/// `nodeSelector` and `affinity.nodeAffinity`.
pub struct NodeAffinity;

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }
    fn filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

/// Whether `node` satisfies the pod's node selector and required node affinity.
pub fn required_matches(pod: &PodInfo, node: &NodeInfo) -> bool {
    required_affinity_matches(pod.spec(), &node.labels, &node.name)
}

impl FilterPlugin for NodeAffinity {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if required_matches(pod, node) {
            Status::success()
        } else {
            Status::unresolvable("node(s) didn't match Pod's node affinity/selector")
        }
    }
}

impl ScorePlugin for NodeAffinity {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        pod.spec()
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .filter(|p| p.weight != 0 && term_matches(&p.preference, &node.labels, &node.name))
            .map(|p| i64::from(p.weight))
            .sum()
    }

    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        default_normalize(scores, false);
    }
}

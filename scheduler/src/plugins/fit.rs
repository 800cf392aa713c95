//! NodeResourcesFit (room for the pod's requests; scoring by LeastAllocated,
//! MostAllocated or RequestedToCapacityRatio), NodeResourcesBalancedAllocation,
//! ImageLocality and RoundRobin.

use std::sync::Mutex;

use serde::Deserialize;

use crate::cache::{NodeInfo, normalize_image};
use crate::framework::{
    CycleState, FilterPlugin, MAX_NODE_SCORE, Plugin, PodInfo, ReservePlugin, ScorePlugin, Status,
};

/// How NodeResourcesFit scores.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum ScoringStrategy {
    /// Prefer the emptiest nodes (spreads pods; Kubernetes' default).
    LeastAllocated {
        /// Resources and weights (default cpu and memory, 1 each).
        #[serde(default = "default_resources")]
        resources: Vec<ResourceWeight>,
    },
    /// Prefer the fullest nodes (bin packing).
    MostAllocated {
        /// Resources and weights.
        #[serde(default = "default_resources")]
        resources: Vec<ResourceWeight>,
    },
    /// Score by a piecewise-linear function of utilization.
    RequestedToCapacityRatio {
        /// Resources and weights.
        #[serde(default = "default_resources")]
        resources: Vec<ResourceWeight>,
        /// The function's points: utilization 0..=100 → score 0..=10.
        shape: Vec<ShapePoint>,
    },
}

/// A resource and its weight in a score.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceWeight {
    /// `cpu`, `memory` or an extended resource.
    pub name: String,
    /// Its weight.
    #[serde(default = "one")]
    pub weight: i64,
}

/// A point of RequestedToCapacityRatio's function.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapePoint {
    /// Utilization, percent.
    pub utilization: i64,
    /// Score, 0..=10.
    pub score: i64,
}

fn one() -> i64 {
    1
}

fn default_resources() -> Vec<ResourceWeight> {
    vec![
        ResourceWeight {
            name: "cpu".into(),
            weight: 1,
        },
        ResourceWeight {
            name: "memory".into(),
            weight: 1,
        },
    ]
}

impl Default for ScoringStrategy {
    fn default() -> Self {
        ScoringStrategy::LeastAllocated {
            resources: default_resources(),
        }
    }
}

/// Room for the pod's requests: cpu, memory, pods and extended resources.
#[derive(Default)]
pub struct NodeResourcesFit {
    /// How nodes are scored.
    pub strategy: ScoringStrategy,
}

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }
    fn filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

/// Why a pod does not fit a node's free resources (empty: it fits).
pub fn insufficient(pod: &PodInfo, node: &NodeInfo) -> Vec<String> {
    let mut reasons = Vec::new();
    let (free, want) = (&node.allocatable, &pod.requests);
    if node.requested.pods + 1 > free.pods {
        reasons.push("Too many pods".to_string());
    }
    if want.milli_cpu > 0 && node.requested.milli_cpu + want.milli_cpu > free.milli_cpu {
        reasons.push("Insufficient cpu".to_string());
    }
    if want.memory > 0 && node.requested.memory + want.memory > free.memory {
        reasons.push("Insufficient memory".to_string());
    }
    for (name, amount) in &want.scalar {
        if *amount > 0 && node.requested.get(name) + amount > free.get(name) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    reasons
}

impl FilterPlugin for NodeResourcesFit {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let reasons = insufficient(pod, node);
        if reasons.is_empty() {
            Status::success()
        } else {
            Status {
                code: crate::framework::Code::Unschedulable,
                reasons,
            }
        }
    }
}

/// (requested with the pod, allocatable) of one resource on a node, for scoring.
fn usage(pod: &PodInfo, node: &NodeInfo, resource: &str) -> (i64, i64) {
    let requested = node.non_zero_requested.get(resource) + pod.non_zero_requests.get(resource);
    (requested, node.allocatable.get(resource))
}

fn weighted(
    pod: &PodInfo,
    node: &NodeInfo,
    resources: &[ResourceWeight],
    each: impl Fn(i64, i64) -> i64,
) -> i64 {
    let (mut total, mut weights) = (0, 0);
    for r in resources {
        let (requested, capacity) = usage(pod, node, &r.name);
        if capacity == 0 {
            continue;
        }
        total += each(requested, capacity) * r.weight;
        weights += r.weight;
    }
    if weights == 0 { 0 } else { total / weights }
}

fn shape_score(shape: &[ShapePoint], utilization: i64) -> i64 {
    let Some(first) = shape.first() else {
        return 0;
    };
    if utilization <= first.utilization {
        return first.score * 10;
    }
    for pair in shape.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if utilization <= b.utilization {
            let span = (b.utilization - a.utilization).max(1);
            let score =
                a.score * 10 + (b.score - a.score) * 10 * (utilization - a.utilization) / span;
            return score;
        }
    }
    shape.last().map_or(0, |p| p.score * 10)
}

impl ScorePlugin for NodeResourcesFit {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        match &self.strategy {
            ScoringStrategy::LeastAllocated { resources } => {
                weighted(pod, node, resources, |req, cap| {
                    if req > cap {
                        0
                    } else {
                        (cap - req) * MAX_NODE_SCORE / cap
                    }
                })
            }
            ScoringStrategy::MostAllocated { resources } => {
                weighted(pod, node, resources, |req, cap| {
                    req.min(cap) * MAX_NODE_SCORE / cap
                })
            }
            ScoringStrategy::RequestedToCapacityRatio { resources, shape } => {
                weighted(pod, node, resources, |req, cap| {
                    shape_score(shape, req.min(cap) * 100 / cap)
                })
            }
        }
    }
}

/// Prefers nodes whose cpu and memory would be used in equal shares.
pub struct BalancedAllocation;

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        "NodeResourcesBalancedAllocation"
    }
    fn score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl ScorePlugin for BalancedAllocation {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let fraction = |r: &str| {
            let (req, cap) = usage(pod, node, r);
            if cap == 0 {
                0.0
            } else {
                (req as f64 / cap as f64).min(1.0)
            }
        };
        let (cpu, memory) = (fraction("cpu"), fraction("memory"));
        // The standard deviation of two values is half their difference.
        let std = (cpu - memory).abs() / 2.0;
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}

/// Prefers nodes that already have the pod's images (weighted by how few nodes have
/// them, so one node does not attract everything).
pub struct ImageLocality;

const MIN_IMAGE_THRESHOLD: i64 = 23 * 1024 * 1024;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * 1024 * 1024;

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        "ImageLocality"
    }
    fn pre_score(&self) -> Option<&dyn crate::framework::PreScorePlugin> {
        Some(self)
    }
    fn score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

/// (images of the pod, per image the share of nodes that have it).
struct ImageSpread(Vec<(String, f64)>);

impl crate::framework::PreScorePlugin for ImageLocality {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        feasible: &[&NodeInfo],
        _all: crate::framework::Nodes<'_>,
    ) -> Status {
        let images: Vec<String> = pod
            .spec()
            .containers
            .iter()
            .filter_map(|c| c.image.as_deref())
            .map(normalize_image)
            .collect();
        if images.is_empty() || feasible.is_empty() {
            return Status::skip();
        }
        let spread = images
            .into_iter()
            .map(|i| {
                let having = feasible
                    .iter()
                    .filter(|n| n.images.contains_key(&i))
                    .count();
                (i, having as f64 / feasible.len() as f64)
            })
            .collect();
        state.write("ImageLocality", ImageSpread(spread));
        Status::success()
    }
}

impl ScorePlugin for ImageLocality {
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(ImageSpread(images)) = state.read::<ImageSpread>("ImageLocality") else {
            return 0;
        };
        let sum: f64 = images
            .iter()
            .filter_map(|(i, share)| node.images.get(i).map(|size| *size as f64 * share))
            .sum();
        let max = MAX_CONTAINER_THRESHOLD * images.len() as i64;
        let sum = (sum as i64).clamp(MIN_IMAGE_THRESHOLD, max);
        MAX_NODE_SCORE * (sum - MIN_IMAGE_THRESHOLD) / (max - MIN_IMAGE_THRESHOLD).max(1)
    }
}

/// The original rMiniK8s policy: nodes in turn, by name.
#[derive(Default)]
pub struct RoundRobin {
    last: Mutex<Option<String>>,
}

impl Plugin for RoundRobin {
    fn name(&self) -> &'static str {
        "RoundRobin"
    }
    fn pre_score(&self) -> Option<&dyn crate::framework::PreScorePlugin> {
        Some(self)
    }
    fn score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
    fn reserve(&self) -> Option<&dyn ReservePlugin> {
        Some(self)
    }
}

/// The node whose turn it is.
struct Turn(String);

impl crate::framework::PreScorePlugin for RoundRobin {
    fn pre_score(
        &self,
        state: &mut CycleState,
        _: &PodInfo,
        feasible: &[&NodeInfo],
        _all: crate::framework::Nodes<'_>,
    ) -> Status {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut names: Vec<&str> = feasible.iter().map(|n| n.name.as_str()).collect();
        names.sort_unstable();
        let next = match last {
            Some(last) => names
                .iter()
                .find(|n| **n > last.as_str())
                .or(names.first())
                .copied(),
            None => names.first().copied(),
        };
        match next {
            Some(n) => {
                state.write("RoundRobin", Turn(n.to_string()));
                Status::success()
            }
            None => Status::skip(),
        }
    }
}

impl ScorePlugin for RoundRobin {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        match state.read::<Turn>("RoundRobin") {
            Some(Turn(n)) if *n == node.name => MAX_NODE_SCORE,
            _ => 0,
        }
    }
}

impl ReservePlugin for RoundRobin {
    fn reserve(&self, _: &PodInfo, node: &str) -> Status {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(node.to_string());
        Status::success()
    }
    fn unreserve(&self, _: &PodInfo, _: &str) {}
}

//! The scheduling framework, shaped like Kubernetes': a pod goes through PreFilter,
//! Filter (every node), PostFilter (when none fits), PreScore, Score and NormalizeScore
//! (feasible nodes), Reserve, then Bind. Each extension point is a trait; a plugin is
//! one value implementing [`Plugin`], which hands out the extension points it has.

use std::any::Any;
use std::collections::HashMap;

use crate::node_info::NodeInfo;
// Kept at its old path for the plugins and users that name it here.
pub use crate::pod_info::PodInfo;

/// The highest score a Score plugin gives (after normalization).
pub const MAX_NODE_SCORE: i64 = 100;

/// What a plugin says of a pod (and node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Code {
    /// Fine.
    Success,
    /// Does not fit now; may fit after something in the cluster changes.
    Unschedulable,
    /// Does not fit, and no change in the cluster alone will make it fit on this node.
    UnschedulableAndUnresolvable,
    /// The plugin has nothing to do for this pod (skips its Filter/Score).
    Skip,
    /// Something went wrong (not the pod's fault).
    Error,
}

/// A verdict with its reasons (`Insufficient cpu`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The verdict.
    pub code: Code,
    /// Why, in Kubernetes' wording.
    pub reasons: Vec<String>,
}

impl Status {
    /// Success.
    pub fn success() -> Self {
        Status {
            code: Code::Success,
            reasons: Vec::new(),
        }
    }

    /// Skip.
    pub fn skip() -> Self {
        Status {
            code: Code::Skip,
            reasons: Vec::new(),
        }
    }

    /// Unschedulable for `reason`.
    pub fn unschedulable(reason: impl Into<String>) -> Self {
        Status {
            code: Code::Unschedulable,
            reasons: vec![reason.into()],
        }
    }

    /// Unschedulable and unresolvable for `reason`.
    pub fn unresolvable(reason: impl Into<String>) -> Self {
        Status {
            code: Code::UnschedulableAndUnresolvable,
            reasons: vec![reason.into()],
        }
    }

    /// An internal error.
    pub fn error(reason: impl Into<String>) -> Self {
        Status {
            code: Code::Error,
            reasons: vec![reason.into()],
        }
    }

    /// Whether it is a success.
    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }
}

/// Per-cycle data plugins compute in PreFilter/PreScore and read in Filter/Score.
#[derive(Default)]
pub struct CycleState {
    data: HashMap<&'static str, Box<dyn Any + Send + Sync>>,
}

impl CycleState {
    /// Stores `value` under `key` (a plugin's name).
    pub fn write<T: Any + Send + Sync>(&mut self, key: &'static str, value: T) {
        self.data.insert(key, Box::new(value));
    }

    /// What was stored under `key`, if it has type `T`.
    pub fn read<T: Any + Send + Sync>(&self, key: &'static str) -> Option<&T> {
        self.data.get(key).and_then(|v| v.downcast_ref())
    }
}

/// Every node, as the scheduler's cache has it this cycle.
pub type Nodes<'a> = &'a [NodeInfo];

/// A plugin: a name, and the extension points it implements. A profile runs its Score
/// only together with its own PreScore and Reserve, when it has them (Score reads what
/// they record; see [`crate::profile::build`]).
pub trait Plugin: Send + Sync {
    /// Its name in profiles (`NodeResourcesFit`).
    fn name(&self) -> &'static str;
    /// Its PreFilter, if it has one.
    fn pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        None
    }
    /// Its Filter, if it has one.
    fn filter(&self) -> Option<&dyn FilterPlugin> {
        None
    }
    /// Its PostFilter, if it has one.
    fn post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        None
    }
    /// Its PreScore, if it has one.
    fn pre_score(&self) -> Option<&dyn PreScorePlugin> {
        None
    }
    /// Its Score, if it has one.
    fn score(&self) -> Option<&dyn ScorePlugin> {
        None
    }
    /// Its Reserve, if it has one.
    fn reserve(&self) -> Option<&dyn ReservePlugin> {
        None
    }
}

/// Runs once per pod before the nodes are filtered; may compute state for Filter or
/// reject the pod outright.
pub trait PreFilterPlugin: Send + Sync {
    /// The verdict; `Skip` skips this plugin's Filter for the pod.
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, nodes: Nodes<'_>) -> Status;
}

/// Whether the pod may run on one node.
pub trait FilterPlugin: Send + Sync {
    /// The verdict for `node`.
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status;
}

/// Runs when no node passed the filters (preemption would be one).
pub trait PostFilterPlugin: Send + Sync {
    /// May name a node that could be made to fit; `None` leaves the pod unschedulable.
    fn post_filter(&self, state: &CycleState, pod: &PodInfo, nodes: Nodes<'_>) -> Option<String>;
}

/// Runs once per pod before the feasible nodes are scored.
pub trait PreScorePlugin: Send + Sync {
    /// The verdict; `Skip` skips this plugin's Score for the pod.
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        feasible: &[&NodeInfo],
        all: Nodes<'_>,
    ) -> Status;
}

/// How much a feasible node is preferred.
pub trait ScorePlugin: Send + Sync {
    /// The raw score of `node`.
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64;
    /// Brings the raw scores to 0..=[`MAX_NODE_SCORE`] (the default keeps them).
    fn normalize(&self, _state: &CycleState, _pod: &PodInfo, _scores: &mut [i64]) {}
}

/// Told when the scheduler has picked a node for a pod (before binding), and when that
/// is undone (binding failed).
pub trait ReservePlugin: Send + Sync {
    /// The pod is going to `node`.
    fn reserve(&self, pod: &PodInfo, node: &str) -> Status;
    /// It is not after all.
    fn unreserve(&self, pod: &PodInfo, node: &str);
}

/// Scales raw scores to 0..=100 by the highest one; with `reverse`, the lowest raw
/// score gets 100 (Kubernetes' `DefaultNormalizeScore`).
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let scaled = MAX_NODE_SCORE * *s / max;
        *s = if reverse {
            MAX_NODE_SCORE - scaled
        } else {
            scaled
        };
    }
}

/// Scales raw scores to 0..=100 between the lowest and the highest (all equal: 0,
/// or 100 with `reverse`).
pub fn min_max_normalize(scores: &mut [i64], reverse: bool) {
    let (Some(min), Some(max)) = (scores.iter().min().copied(), scores.iter().max().copied())
    else {
        return;
    };
    for s in scores.iter_mut() {
        let scaled = if max == min {
            0
        } else {
            MAX_NODE_SCORE * (*s - min) / (max - min)
        };
        *s = if reverse {
            MAX_NODE_SCORE - scaled
        } else {
            scaled
        };
    }
}

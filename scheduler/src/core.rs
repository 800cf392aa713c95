//! One scheduling cycle: PreFilter, Filter over enough nodes (Kubernetes'
//! `percentageOfNodesToScore`, in parallel on large clusters), PostFilter when none
//! fits, PreScore, Score, NormalizeScore, weights, and the highest total wins (ties
//! broken at random), then Reserve and the assumption in the cache. No I/O: the actor
//! around it owns the cache, queue and API, and binds.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, OnceLock};

use rayon::prelude::*;

use crate::cache::{Cache, NodeInfo};
use crate::framework::{Code, CycleState, PodInfo, Status};
use crate::profile::Profile;

/// Below this many nodes, every node is evaluated.
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never goes below this.
pub const MIN_FEASIBLE_NODES_PERCENTAGE: usize = 5;
/// Filtering runs on several threads from this many nodes on.
pub const PARALLEL_FROM: usize = 512;

/// Where a pod goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The node.
    pub node: String,
    /// Nodes whose filters ran.
    pub evaluated: usize,
    /// Nodes that passed them.
    pub feasible: usize,
}

/// Why no node fits: how many nodes failed for each reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FitError {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Reason → nodes.
    pub reasons: BTreeMap<String, usize>,
    /// Whether some reason may go away by itself (not all are unresolvable).
    pub resolvable: bool,
}

impl FitError {
    /// Kubernetes' message: `0/5 nodes are available: 3 Insufficient cpu, 2 node(s)
    /// didn't match Pod's node affinity/selector.`
    pub fn message(&self) -> String {
        let mut counted: Vec<(&String, &usize)> = self.reasons.iter().collect();
        counted.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let parts: Vec<String> = counted.iter().map(|(r, n)| format!("{n} {r}")).collect();
        if parts.is_empty() {
            format!("0/{} nodes are available.", self.nodes)
        } else {
            format!(
                "0/{} nodes are available: {}.",
                self.nodes,
                parts.join(", ")
            )
        }
    }
}

/// The threads that filter nodes in parallel (one per CPU, at most 8), made once
/// for the process: `None` on one CPU. Spawning and joining them in every cycle,
/// and reading the CPU quota from the cgroup files for it, were a fifth of the
/// control plane's thread at 150,000 pods (docs/benchmarks.md).
fn filter_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism()
            .map_or(1, |t| t.get())
            .min(8);
        if threads < 2 {
            return None;
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("sched-filter-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// How many feasible nodes to find before scoring, out of `nodes`.
pub fn nodes_to_find(percentage: u32, nodes: usize) -> usize {
    if nodes < MIN_FEASIBLE_NODES_TO_FIND || percentage >= 100 {
        return nodes;
    }
    let percentage = if percentage == 0 {
        (50usize.saturating_sub(nodes / 125)).max(MIN_FEASIBLE_NODES_PERCENTAGE)
    } else {
        percentage as usize
    };
    (nodes * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// The scheduling algorithm's state across cycles: where the next filtering pass
/// starts (so every node gets its turn) and the tie-breaking generator.
pub struct Scheduler {
    next_start: usize,
    rng: u64,
}

impl Default for Scheduler {
    fn default() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Scheduler {
            next_start: 0,
            rng: seed | 1,
        }
    }
}

fn run_filters(
    profile: &Profile,
    skip: &HashSet<&'static str>,
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
) -> Status {
    for plugin in &profile.filter {
        if skip.contains(plugin.name()) {
            continue;
        }
        if let Some(f) = plugin.filter() {
            let status = f.filter(state, pod, node);
            if !status.is_success() {
                return status;
            }
        }
    }
    Status::success()
}

impl Scheduler {
    /// A scheduler whose ties are broken by `seed` (tests).
    pub fn with_seed(seed: u64) -> Self {
        Scheduler {
            next_start: 0,
            rng: seed | 1,
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Picks a node for `pod` among `nodes` with `profile`.
    pub fn schedule(
        &mut self,
        profile: &Profile,
        pod: &PodInfo,
        nodes: &[NodeInfo],
    ) -> Result<Decision, FitError> {
        let fail_all = |status: &Status| FitError {
            nodes: nodes.len(),
            reasons: status
                .reasons
                .iter()
                .map(|r| (r.clone(), nodes.len()))
                .collect(),
            resolvable: status.code != Code::UnschedulableAndUnresolvable,
        };
        if nodes.is_empty() {
            return Err(FitError {
                nodes: 0,
                reasons: BTreeMap::new(),
                resolvable: true,
            });
        }
        let mut state = CycleState::default();
        let mut skip: HashSet<&'static str> = HashSet::new();
        for plugin in &profile.pre_filter {
            if let Some(p) = plugin.pre_filter() {
                let status = p.pre_filter(&mut state, pod, nodes);
                match status.code {
                    Code::Success => {}
                    Code::Skip => {
                        skip.insert(plugin.name());
                    }
                    _ => return Err(fail_all(&status)),
                }
            }
        }
        // Filter, from where the last pass stopped, until enough nodes fit.
        let n = nodes.len();
        let want = nodes_to_find(profile.percentage_of_nodes_to_score, n);
        let start = self.next_start % n;
        let mut feasible: Vec<usize> = Vec::new();
        let mut failures: BTreeMap<String, usize> = BTreeMap::new();
        let mut resolvable = false;
        let mut evaluated = 0;
        let pool = filter_pool();
        while evaluated < n && feasible.len() < want {
            let round = if n >= PARALLEL_FROM && pool.is_some() {
                ((want - feasible.len()) * 2).max(256).min(n - evaluated)
            } else {
                n - evaluated
            };
            let indices: Vec<usize> = (evaluated..evaluated + round)
                .map(|i| (start + i) % n)
                .collect();
            let filter = |i: &usize| run_filters(profile, &skip, &state, pod, &nodes[*i]);
            let verdicts: Vec<Status> = match pool {
                Some(pool) if round >= PARALLEL_FROM / 2 => {
                    let chunk = round.div_ceil(pool.current_num_threads());
                    pool.install(|| indices.par_iter().with_min_len(chunk).map(filter).collect())
                }
                _ => indices.iter().map(filter).collect(),
            };
            for (i, status) in indices.iter().zip(verdicts) {
                evaluated += 1;
                if status.is_success() {
                    feasible.push(*i);
                    if feasible.len() >= want {
                        break;
                    }
                } else {
                    resolvable |= status.code != Code::UnschedulableAndUnresolvable;
                    for r in status.reasons {
                        *failures.entry(r).or_default() += 1;
                    }
                }
            }
        }
        self.next_start = (start + evaluated) % n;
        if feasible.is_empty() {
            for plugin in &profile.post_filter {
                if let Some(p) = plugin.post_filter()
                    && let Some(node) = p.post_filter(&state, pod, nodes)
                {
                    return Ok(Decision {
                        node,
                        evaluated,
                        feasible: 0,
                    });
                }
            }
            return Err(FitError {
                nodes: n,
                reasons: failures,
                resolvable,
            });
        }
        let decision = |i: usize| Decision {
            node: nodes[i].name.clone(),
            evaluated,
            feasible: feasible.len(),
        };
        if feasible.len() == 1 {
            return Ok(decision(feasible[0]));
        }
        let candidates: Vec<&NodeInfo> = feasible.iter().map(|i| &nodes[*i]).collect();
        let mut skip_score: HashSet<&'static str> = HashSet::new();
        for plugin in &profile.pre_score {
            if let Some(p) = plugin.pre_score() {
                let status = p.pre_score(&mut state, pod, &candidates, nodes);
                if status.code == Code::Skip {
                    skip_score.insert(plugin.name());
                }
            }
        }
        let mut totals = vec![0i64; candidates.len()];
        for (plugin, weight) in &profile.score {
            if skip_score.contains(plugin.name()) || *weight == 0 {
                continue;
            }
            let Some(scorer) = plugin.score() else {
                continue;
            };
            let mut scores: Vec<i64> = candidates
                .iter()
                .map(|node| scorer.score(&state, pod, node))
                .collect();
            scorer.normalize(&state, pod, &mut scores);
            for (t, s) in totals.iter_mut().zip(scores) {
                *t += s * weight;
            }
        }
        // The highest total; among equals, each equally likely.
        let best = totals.iter().copied().max().unwrap_or(0);
        let mut chosen = 0;
        let mut ties = 0u64;
        for (i, t) in totals.iter().enumerate() {
            if *t == best {
                ties += 1;
                if self.random().is_multiple_of(ties) {
                    chosen = i;
                }
            }
        }
        Ok(decision(feasible[chosen]))
    }

    /// One attempt up to binding, as the actor makes it: picks a node for `pod`, tells
    /// the profile's Reserve plugins, and assumes the pod there in `cache` so the next
    /// attempt sees the room it takes. On a failed binding the caller undoes it with
    /// [`Profile::unreserve`] and [`Cache::forget`].
    pub fn schedule_and_assume(
        &mut self,
        profile: &Profile,
        pod: Arc<PodInfo>,
        cache: &mut Cache,
    ) -> Result<Decision, FitError> {
        let decision = self.schedule(profile, &pod, cache.nodes())?;
        profile.reserve(&pod, &decision.node);
        cache.assume(pod, &decision.node);
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_adaptive_share_of_nodes_shrinks_with_the_cluster() {
        assert_eq!(nodes_to_find(0, 50), 50);
        assert_eq!(nodes_to_find(0, 1000), 420);
        assert_eq!(nodes_to_find(0, 5000), 500);
        assert_eq!(nodes_to_find(0, 100_000), 5000);
        assert_eq!(nodes_to_find(100, 5000), 5000);
        assert_eq!(nodes_to_find(1, 5000), 100);
    }

    #[test]
    fn the_message_counts_nodes_per_reason_like_kubernetes() {
        let err = FitError {
            nodes: 5,
            reasons: [
                (
                    "node(s) didn't match Pod's node affinity/selector".to_string(),
                    2,
                ),
                ("Insufficient cpu".to_string(), 3),
            ]
            .into_iter()
            .collect(),
            resolvable: true,
        };
        assert_eq!(
            err.message(),
            "0/5 nodes are available: 3 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector."
        );
    }

    use crate::framework::{FilterPlugin, Plugin, ScorePlugin};

    /// The plugin of docs/scheduler.md.
    struct TierGuard;

    impl Plugin for TierGuard {
        fn name(&self) -> &'static str {
            "TierGuard"
        }
        fn filter(&self) -> Option<&dyn FilterPlugin> {
            Some(self)
        }
        fn score(&self) -> Option<&dyn ScorePlugin> {
            Some(self)
        }
    }

    impl FilterPlugin for TierGuard {
        fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
            let batch = pod.labels().get("tier").is_some_and(|t| t == "batch");
            let latency = node.labels.get("tier").is_some_and(|t| t == "latency");
            if batch && latency {
                Status::unschedulable("node(s) are reserved for latency-sensitive pods")
            } else {
                Status::success()
            }
        }
    }

    impl ScorePlugin for TierGuard {
        fn score(&self, _: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
            -(node.pods.len() as i64)
        }
        fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
            crate::framework::min_max_normalize(scores, false);
        }
    }

    fn node(name: &str, tier: &str) -> Arc<k8s_openapi::api::core::v1::Node> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "labels": {"tier": tier}},
                "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
            }))
            .unwrap(),
        )
    }

    fn pod(name: &str, tier: &str) -> PodInfo {
        PodInfo::new(Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "default", "labels": {"tier": tier}},
                "spec": {"containers": [{"name": "c"}]},
            }))
            .unwrap(),
        ))
    }

    /// The profile `tiers` of a configuration that starts with `head`, TierGuard
    /// registered and enabled with `weight`.
    fn tiers(head: &str, weight: &str) -> Profile {
        let mut registry = crate::plugins::Registry::default();
        registry.register("TierGuard", |_args| Ok(Arc::new(TierGuard)));
        let yaml = format!(
            "{head}profiles:\n- schedulerName: tiers\n  plugins:\n    multiPoint: {{enabled: [{{name: TierGuard{weight}}}]}}\n"
        );
        let config = crate::profile::load("s.yaml", &yaml).unwrap();
        crate::profile::build(&config, &registry).unwrap().remove(0)
    }

    #[test]
    fn a_registered_plugin_takes_part_in_the_cycle() {
        let profile = tiers("", ", weight: 10");
        let mut cache = Cache::default();
        cache.upsert_node(node("fast", "latency"));
        cache.upsert_node(node("bulk-1", "batch"));
        cache.upsert_node(node("bulk-2", "batch"));
        let mut scheduler = Scheduler::with_seed(7);
        // Batch pods never land on the latency node, and fill the bulk nodes evenly.
        for i in 0..6 {
            let p = Arc::new(pod(&format!("b{i}"), "batch"));
            let d = scheduler.schedule(&profile, &p, cache.nodes()).unwrap();
            assert_ne!(d.node, "fast");
            cache.assume(p, &d.node);
        }
        assert_eq!(cache.node("bulk-1").unwrap().pods.len(), 3);
        assert_eq!(cache.node("bulk-2").unwrap().pods.len(), 3);
        // With only the latency node left, the plugin's reason is the message.
        cache.remove_node("bulk-1");
        cache.remove_node("bulk-2");
        let err = scheduler
            .schedule(&profile, &pod("b9", "batch"), cache.nodes())
            .unwrap_err();
        assert_eq!(
            err.message(),
            "0/1 nodes are available: 1 node(s) are reserved for latency-sensitive pods."
        );
    }

    #[test]
    fn filtering_thousands_of_nodes_in_parallel_keeps_each_verdict_with_its_node() {
        let profile = tiers("percentageOfNodesToScore: 100\n", "");
        let mut cache = Cache::default();
        // 2,000 nodes: filtered on the pool's threads; one in 97 takes batch pods.
        let n = 2000;
        let bulk = |i: usize| i % 97 == 13;
        for i in 0..n {
            let tier = if bulk(i) { "batch" } else { "latency" };
            cache.upsert_node(node(&format!("n{i:04}"), tier));
        }
        let mut scheduler = Scheduler::with_seed(3);
        let mut placed = std::collections::BTreeSet::new();
        for i in 0..40 {
            let p = Arc::new(pod(&format!("b{i}"), "batch"));
            let d = scheduler.schedule(&profile, &p, cache.nodes()).unwrap();
            assert_eq!(
                (d.evaluated, d.feasible),
                (n, (0..n).filter(|i| bulk(*i)).count())
            );
            let index: usize = d.node[1..].parse().unwrap();
            assert!(bulk(index), "{} does not take batch pods", d.node);
            placed.insert(d.node.clone());
            cache.assume(p, &d.node);
        }
        // The fewest pods scores highest: every bulk node got some.
        assert_eq!(placed.len(), (0..n).filter(|i| bulk(*i)).count());
        for i in (0..n).filter(|i| bulk(*i)) {
            cache.remove_node(&format!("n{i:04}"));
        }
        let err = scheduler
            .schedule(&profile, &pod("b-none", "batch"), cache.nodes())
            .unwrap_err();
        let latency = n - (0..n).filter(|i| bulk(*i)).count();
        assert_eq!(
            err.message(),
            format!(
                "0/{latency} nodes are available: {latency} node(s) are reserved for latency-sensitive pods."
            )
        );
    }
}

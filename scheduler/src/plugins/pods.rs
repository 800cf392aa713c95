//! Plugins that look at the other pods: InterPodAffinity (required and preferred
//! affinity and anti-affinity by topology key, and existing pods' anti-affinity
//! against the new one) and PodTopologySpread (maxSkew per topology domain).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{PodAffinityTerm, TopologySpreadConstraint};
use rk8s_api::selector::{Selector, SelectorExt};

use crate::cache::NodeInfo;
use crate::framework::{
    CycleState, FilterPlugin, Nodes, Plugin, PodInfo, PreFilterPlugin, PreScorePlugin, ScorePlugin,
    Status, min_max_normalize,
};

/// A term with its selector parsed.
struct Term {
    selector: Selector,
    namespaces: Option<Vec<String>>,
    topology_key: String,
}

impl Term {
    fn new(term: &PodAffinityTerm, own_namespace: &str) -> Option<Self> {
        let selector = rk8s_api::selector::label_selector(term.label_selector.as_ref()?).ok()?;
        let all_namespaces = term
            .namespace_selector
            .as_ref()
            .is_some_and(|s| s.match_labels.is_none() && s.match_expressions.is_none());
        let namespaces = if all_namespaces {
            None
        } else {
            match term.namespaces.as_deref() {
                Some(ns) if !ns.is_empty() => Some(ns.to_vec()),
                _ => Some(vec![own_namespace.to_string()]),
            }
        };
        Some(Term {
            selector,
            namespaces,
            topology_key: term.topology_key.clone(),
        })
    }

    fn matches(&self, pod: &PodInfo) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|ns| ns.contains(&pod.namespace))
            && self.selector.matches(pod.labels())
    }
}

/// Pods matching `term` per value of its topology key.
fn domain_counts(term: &Term, nodes: Nodes<'_>) -> HashMap<String, i64> {
    let mut counts = HashMap::new();
    for node in nodes {
        let Some(value) = node.labels.get(&term.topology_key) else {
            continue;
        };
        let n = node.pods.values().filter(|p| term.matches(p)).count() as i64;
        if n > 0 {
            *counts.entry(value.clone()).or_insert(0) += n;
        }
    }
    counts
}

fn terms(list: Option<&Vec<PodAffinityTerm>>, ns: &str) -> Vec<Term> {
    list.into_iter()
        .flatten()
        .filter_map(|t| Term::new(t, ns))
        .collect()
}

/// Inter-pod affinity and anti-affinity.
pub struct InterPodAffinity;

struct AffinityState {
    affinity: Vec<(Term, HashMap<String, i64>)>,
    anti: Vec<(Term, HashMap<String, i64>)>,
    /// (topology key, value) where an existing pod's anti-affinity forbids this pod.
    forbidden: Vec<(String, String)>,
    /// No pod matches any affinity term yet, and this pod matches them all itself: the
    /// first pod of a group may go anywhere.
    first_of_group: bool,
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }
    fn pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for InterPodAffinity {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, nodes: Nodes<'_>) -> Status {
        let affinity = pod.spec().affinity.as_ref();
        let required = |a: Option<&Vec<PodAffinityTerm>>| terms(a, &pod.namespace);
        let affinity_terms = required(affinity.and_then(|a| a.pod_affinity.as_ref()).and_then(
            |a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            },
        ));
        let anti_terms = required(
            affinity
                .and_then(|a| a.pod_anti_affinity.as_ref())
                .and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
        );
        let mut forbidden = Vec::new();
        for node in nodes
            .iter()
            .filter(|n| n.pods_with_required_anti_affinity > 0)
        {
            for existing in node.pods.values() {
                let Some(anti) = crate::cache::required_anti_affinity(existing) else {
                    continue;
                };
                for term in terms(Some(anti), &existing.namespace) {
                    if term.matches(pod)
                        && let Some(v) = node.labels.get(&term.topology_key)
                    {
                        forbidden.push((term.topology_key.clone(), v.clone()));
                    }
                }
            }
        }
        if affinity_terms.is_empty() && anti_terms.is_empty() && forbidden.is_empty() {
            return Status::skip();
        }
        let affinity: Vec<_> = affinity_terms
            .into_iter()
            .map(|t| {
                let c = domain_counts(&t, nodes);
                (t, c)
            })
            .collect();
        let first_of_group =
            !affinity.is_empty() && affinity.iter().all(|(t, c)| c.is_empty() && t.matches(pod));
        let anti = anti_terms
            .into_iter()
            .map(|t| {
                let c = domain_counts(&t, nodes);
                (t, c)
            })
            .collect();
        state.write(
            "InterPodAffinity",
            AffinityState {
                affinity,
                anti,
                forbidden,
                first_of_group,
            },
        );
        Status::success()
    }
}

impl FilterPlugin for InterPodAffinity {
    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<AffinityState>("InterPodAffinity") else {
            return Status::success();
        };
        if s.forbidden
            .iter()
            .any(|(k, v)| node.labels.get(k) == Some(v))
        {
            return Status::unschedulable(
                "node(s) didn't satisfy existing pods anti-affinity rules",
            );
        }
        let affinity_ok = s.affinity.iter().all(|(t, counts)| {
            node.labels
                .get(&t.topology_key)
                .is_some_and(|v| s.first_of_group || counts.get(v).copied().unwrap_or(0) > 0)
        });
        if !affinity_ok {
            return Status::unschedulable("node(s) didn't match pod affinity rules");
        }
        let anti_ok = s.anti.iter().all(|(t, counts)| {
            node.labels
                .get(&t.topology_key)
                .is_none_or(|v| counts.get(v).copied().unwrap_or(0) == 0)
        });
        if !anti_ok {
            return Status::unschedulable("node(s) didn't match pod anti-affinity rules");
        }
        Status::success()
    }
}

/// Preferred terms: (weight, sign), counts per domain.
struct PreferredState(Vec<(i64, Term, HashMap<String, i64>)>);

impl PreScorePlugin for InterPodAffinity {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _feasible: &[&NodeInfo],
        all: Nodes<'_>,
    ) -> Status {
        let affinity = pod.spec().affinity.as_ref();
        let mut weighted = Vec::new();
        let preferred_affinity = affinity
            .and_then(|a| a.pod_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            });
        let preferred_anti = affinity
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            });
        for (sign, list) in [(1, preferred_affinity), (-1, preferred_anti)] {
            for w in list.into_iter().flatten() {
                if let Some(t) = Term::new(&w.pod_affinity_term, &pod.namespace) {
                    let counts = domain_counts(&t, all);
                    weighted.push((sign * i64::from(w.weight), t, counts));
                }
            }
        }
        if weighted.is_empty() {
            return Status::skip();
        }
        state.write("InterPodAffinity/score", PreferredState(weighted));
        Status::success()
    }
}

impl ScorePlugin for InterPodAffinity {
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(PreferredState(terms)) = state.read::<PreferredState>("InterPodAffinity/score")
        else {
            return 0;
        };
        terms
            .iter()
            .filter_map(|(w, t, counts)| {
                let v = node.labels.get(&t.topology_key)?;
                Some(w * counts.get(v).copied().unwrap_or(0))
            })
            .sum()
    }

    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        min_max_normalize(scores, false);
    }
}

/// Spreads matching pods across topology domains within `maxSkew`.
pub struct PodTopologySpread;

struct Constraint {
    max_skew: i64,
    topology_key: String,
    /// Pods matching the selector per domain (every domain of an eligible node, zero
    /// included).
    counts: BTreeMap<String, i64>,
    self_match: i64,
}

fn constraints(pod: &PodInfo, nodes: Nodes<'_>, when: &str) -> Vec<Constraint> {
    let list: Vec<&TopologySpreadConstraint> = pod
        .spec()
        .topology_spread_constraints
        .iter()
        .flatten()
        .filter(|c| c.when_unsatisfiable == when)
        .collect();
    list.into_iter()
        .filter_map(|c| {
            let selector = rk8s_api::selector::label_selector(c.label_selector.as_ref()?).ok()?;
            let mut counts = BTreeMap::new();
            for node in nodes {
                // Nodes the pod may not go to (node affinity) do not count as domains.
                if !crate::plugins::affinity::required_matches(pod, node) {
                    continue;
                }
                let Some(v) = node.labels.get(&c.topology_key) else {
                    continue;
                };
                let n = node
                    .pods
                    .values()
                    .filter(|p| p.namespace == pod.namespace && selector.matches(p.labels()))
                    .count() as i64;
                *counts.entry(v.clone()).or_insert(0) += n;
            }
            let self_match = i64::from(selector.matches(pod.labels()));
            Some(Constraint {
                max_skew: i64::from(c.max_skew),
                topology_key: c.topology_key.clone(),
                counts,
                self_match,
            })
        })
        .collect()
}

struct SpreadState(Vec<Constraint>);

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }
    fn pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for PodTopologySpread {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, nodes: Nodes<'_>) -> Status {
        let hard = constraints(pod, nodes, "DoNotSchedule");
        if hard.is_empty() {
            return Status::skip();
        }
        state.write("PodTopologySpread", SpreadState(hard));
        Status::success()
    }
}

impl FilterPlugin for PodTopologySpread {
    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(SpreadState(list)) = state.read::<SpreadState>("PodTopologySpread") else {
            return Status::success();
        };
        for c in list {
            let Some(v) = node.labels.get(&c.topology_key) else {
                return Status::unresolvable(
                    "node(s) didn't match pod topology spread constraints (missing required label)",
                );
            };
            let min = c.counts.values().copied().min().unwrap_or(0);
            let here = c.counts.get(v).copied().unwrap_or(0);
            if here + c.self_match - min > c.max_skew {
                return Status::unschedulable(
                    "node(s) didn't match pod topology spread constraints",
                );
            }
        }
        Status::success()
    }
}

struct SoftSpread(Vec<Constraint>);

impl PreScorePlugin for PodTopologySpread {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _feasible: &[&NodeInfo],
        all: Nodes<'_>,
    ) -> Status {
        let soft = constraints(pod, all, "ScheduleAnyway");
        if soft.is_empty() {
            return Status::skip();
        }
        state.write("PodTopologySpread/score", SoftSpread(soft));
        Status::success()
    }
}

impl ScorePlugin for PodTopologySpread {
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(SoftSpread(list)) = state.read::<SoftSpread>("PodTopologySpread/score") else {
            return 0;
        };
        list.iter()
            .map(|c| {
                // Kubernetes weighs a constraint by log(domains + 2); in thousandths.
                let weight = ((c.counts.len() as f64 + 2.0).ln() * 1000.0) as i64;
                match node.labels.get(&c.topology_key) {
                    Some(v) => c.counts.get(v).copied().unwrap_or(0) * weight,
                    // A node outside every domain is the least preferred.
                    None => {
                        c.counts
                            .values()
                            .copied()
                            .max()
                            .unwrap_or(0)
                            .saturating_add(1)
                            * weight
                    }
                }
            })
            .sum()
    }

    fn normalize(&self, _: &CycleState, _: &PodInfo, scores: &mut [i64]) {
        min_max_normalize(scores, true);
    }
}

//! Every scheduler profile that docs/scheduler.md prints, read from the page at test
//! time, built, and run against 50 in-memory nodes through the actor's own path
//! (`Scheduler::schedule_and_assume`: the cycle, Reserve, the assumption in the
//! cache), then checked for the effect the page promises. A profile printed there
//! without an expectation here fails, so the page cannot grow an untested profile.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use rk8s_scheduler::cache::Cache;
use rk8s_scheduler::core::Scheduler;
use rk8s_scheduler::framework::PodInfo;
use rk8s_scheduler::plugins::Registry;
use rk8s_scheduler::profile::{self, Profile};

const PAGE: &str = "docs/scheduler.md";
const NODES: usize = 50;
/// Each node takes this many of the test's pods (4 cpu, 1 cpu a pod).
const PODS_PER_NODE: usize = 4;

/// The page's ```yaml blocks that are scheduler configurations: (line of the block's
/// first line, its text).
fn documented_configurations() -> Vec<(usize, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(PAGE);
    let page = std::fs::read_to_string(&path).expect("failed to read docs/scheduler.md");
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, line) in page.lines().enumerate() {
        match &mut open {
            None if line.trim_start().starts_with("```yaml") => open = Some((i + 2, String::new())),
            None => {}
            Some(_) if line.trim_start().starts_with("```") => blocks.extend(open.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    blocks
        .into_iter()
        .filter(|(_, text)| {
            text.lines()
                .any(|l| l.starts_with("profiles:") || l.contains("KubeSchedulerConfiguration"))
        })
        .collect()
}

/// 50 nodes `sim-00`…`sim-49` of 4 cpu and 8Gi, added to the cache out of name order
/// (so "by name" is not "in the cache's order").
fn cluster() -> Cache {
    let mut cache = Cache::default();
    for i in 0..NODES {
        let name = format!("sim-{:02}", (i * 7) % NODES);
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
        }))
        .unwrap();
        cache.upsert_node(Arc::new(node));
    }
    cache
}

/// A pod asking for a quarter of a node, cpu and memory alike (so that
/// BalancedAllocation, in the default set, prefers no node over another).
fn pod(i: usize) -> Arc<PodInfo> {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("p-{i:03}"), "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}]},
    }))
    .unwrap();
    Arc::new(PodInfo::new(Arc::new(pod)))
}

/// Schedules `count` pods one after the other with `profile`; the nodes they went to,
/// in order.
fn place(profile: &Profile, count: usize) -> Vec<String> {
    let mut cache = cluster();
    let mut scheduler = Scheduler::with_seed(42);
    (0..count)
        .map(|i| {
            scheduler
                .schedule_and_assume(profile, pod(i), &mut cache)
                .unwrap_or_else(|e| panic!("{}: pod {i}: {}", profile.name, e.message()))
                .node
        })
        .collect()
}

fn pods_per_node(placed: &[String]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for node in placed {
        *counts.entry(node.as_str()).or_default() += 1;
    }
    counts
}

/// default-scheduler: the default plugins, NodeResourcesFit scoring LeastAllocated,
/// so pods spread: 50 pods on 50 nodes, one each.
fn spreads(profile: &Profile) {
    let placed = place(profile, NODES);
    let counts = pods_per_node(&placed);
    assert_eq!(counts.len(), NODES, "{}: {counts:?}", profile.name);
    assert!(
        counts.values().all(|c| *c == 1),
        "{}: {counts:?}",
        profile.name
    );
}

/// bin-packing: MostAllocated fills a node before it starts the next one: 50 pods of a
/// quarter node on 13 nodes, 12 of them full.
fn packs(profile: &Profile) {
    let placed = place(profile, NODES);
    let counts = pods_per_node(&placed);
    assert_eq!(
        counts.len(),
        NODES.div_ceil(PODS_PER_NODE),
        "{}: {counts:?}",
        profile.name
    );
    let full = counts.values().filter(|c| **c == PODS_PER_NODE).count();
    assert_eq!(full, NODES / PODS_PER_NODE, "{}: {counts:?}", profile.name);
}

/// round-robin: nodes in turn, by name, wrapping around: pod i on the (i mod 50)th
/// node, so 50 pods land one per node.
fn takes_turns(profile: &Profile) {
    let placed = place(profile, 2 * NODES);
    let expected: Vec<String> = (0..2 * NODES)
        .map(|i| format!("sim-{:02}", i % NODES))
        .collect();
    assert_eq!(placed, expected, "{}", profile.name);
    let counts = pods_per_node(&placed[..NODES]);
    assert!(counts.len() == NODES && counts.values().all(|c| *c == 1));
}

#[test]
fn every_profile_in_the_scheduler_page_does_what_the_page_says() {
    let expectations: BTreeMap<&str, fn(&Profile)> = [
        ("default-scheduler", spreads as fn(&Profile)),
        ("bin-packing", packs),
        ("round-robin", takes_turns),
    ]
    .into_iter()
    .collect();
    let configurations = documented_configurations();
    assert!(
        !configurations.is_empty(),
        "{PAGE} prints no scheduler configuration any more: is this test looking at the right page?"
    );
    let mut checked = Vec::new();
    for (line, text) in configurations {
        let file = format!("{PAGE} (the block from line {line})");
        let config = profile::load(&file, &text).unwrap_or_else(|e| panic!("{e}"));
        let profiles =
            profile::build(&config, &Registry::default()).unwrap_or_else(|e| panic!("{file}: {e}"));
        for profile in &profiles {
            let expect = expectations.get(profile.name.as_str()).unwrap_or_else(|| {
                panic!(
                    "{file}: profile {:?} has no expected effect in this test: add one",
                    profile.name
                )
            });
            expect(profile);
            checked.push(profile.name.clone());
        }
    }
    for name in expectations.keys() {
        assert!(
            checked.iter().any(|c| c == name),
            "{PAGE} no longer prints profile {name:?}: drop its expectation here"
        );
    }
}

//! Table tests of the built-in plugins: every file in `tests/cases/` gives nodes,
//! pods already on them, the pod to place and the plugin (with arguments), and the
//! expected Filter verdict per node and normalized Score per node. A failing case
//! prints the whole table it got.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use rk8s_scheduler::cache::Cache;
use rk8s_scheduler::framework::{Code, CycleState, PodInfo};
use rk8s_scheduler::plugins::Registry;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    plugin: String,
    #[serde(default)]
    args: Option<serde_json::Value>,
    nodes: Vec<NodeSpec>,
    #[serde(default)]
    existing: Vec<Existing>,
    pod: serde_json::Value,
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeSpec {
    name: String,
    #[serde(default = "cpu")]
    cpu: String,
    #[serde(default = "memory")]
    memory: String,
    #[serde(default = "pods")]
    pods: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    taints: Vec<serde_json::Value>,
    #[serde(default)]
    unschedulable: bool,
    #[serde(default)]
    extended: BTreeMap<String, String>,
    /// Image name → size in MB.
    #[serde(default)]
    images: BTreeMap<String, i64>,
}

fn cpu() -> String {
    "4".into()
}
fn memory() -> String {
    "8Gi".into()
}
fn pods() -> String {
    "110".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Existing {
    node: String,
    pod: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default)]
    filter: Option<BTreeMap<String, String>>,
    #[serde(default)]
    scores: Option<BTreeMap<String, i64>>,
}

fn node(spec: &NodeSpec) -> Node {
    let mut allocatable =
        serde_json::json!({"cpu": spec.cpu, "memory": spec.memory, "pods": spec.pods});
    for (k, v) in &spec.extended {
        allocatable[k] = serde_json::json!(v);
    }
    let images: Vec<serde_json::Value> = spec
        .images
        .iter()
        .map(|(name, mb)| serde_json::json!({"names": [name], "sizeBytes": mb * 1024 * 1024}))
        .collect();
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": spec.name, "labels": spec.labels},
        "spec": {"taints": spec.taints, "unschedulable": spec.unschedulable},
        "status": {"allocatable": allocatable, "images": images},
    }))
    .unwrap()
}

fn pod(value: &serde_json::Value) -> Arc<Pod> {
    let mut value = value.clone();
    if value["metadata"]["namespace"].is_null() {
        value["metadata"]["namespace"] = serde_json::json!("default");
    }
    if value["spec"]["containers"].is_null() {
        value["spec"]["containers"] = serde_json::json!([{"name": "c", "image": "busybox"}]);
    }
    Arc::new(serde_json::from_value(value).unwrap())
}

fn run(file: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(file).unwrap();
    let docs = rk8s_api::yaml::parse_documents(&text).unwrap();
    let case: Case = serde_json::from_value(docs[0].value.clone())
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let plugin = Registry::default()
        .make(&case.plugin, case.args.as_ref())
        .unwrap();
    let mut cache = Cache::default();
    for n in &case.nodes {
        cache.upsert_node(Arc::new(node(n)));
    }
    for e in &case.existing {
        cache.add_bound_pod(pod(&e.pod), &e.node);
    }
    let info = PodInfo::new(pod(&case.pod));
    let nodes = cache.nodes();
    let mut state = CycleState::default();
    let mut skip_filter = false;
    let mut got_filter = BTreeMap::new();
    if let Some(p) = plugin.pre_filter() {
        let status = p.pre_filter(&mut state, &info, nodes);
        match status.code {
            Code::Success => {}
            Code::Skip => skip_filter = true,
            _ => {
                for n in nodes {
                    got_filter.insert(n.name.clone(), status.reasons.join("; "));
                }
            }
        }
    }
    if got_filter.is_empty() {
        for n in nodes {
            let verdict = match plugin.filter() {
                Some(f) if !skip_filter => {
                    let s = f.filter(&state, &info, n);
                    if s.is_success() {
                        "ok".to_string()
                    } else {
                        s.reasons.join("; ")
                    }
                }
                _ => "ok".to_string(),
            };
            got_filter.insert(n.name.clone(), verdict);
        }
    }
    let mut problems = Vec::new();
    if let Some(want) = &case.expect.filter
        && *want != got_filter
    {
        problems.push(format!(
            "filter: want {want:?}\n        got  {got_filter:?}"
        ));
    }
    if let Some(want) = &case.expect.scores {
        let scorer = plugin.score().ok_or("the plugin has no Score")?;
        let all: Vec<&rk8s_scheduler::cache::NodeInfo> = nodes.iter().collect();
        let mut skip = false;
        if let Some(p) = plugin.pre_score() {
            skip = p.pre_score(&mut state, &info, &all, nodes).code == Code::Skip;
        }
        let mut scores: Vec<i64> = if skip {
            vec![0; all.len()]
        } else {
            all.iter().map(|n| scorer.score(&state, &info, n)).collect()
        };
        if !skip {
            scorer.normalize(&state, &info, &mut scores);
        }
        let got: BTreeMap<String, i64> = all.iter().map(|n| n.name.clone()).zip(scores).collect();
        if *want != got {
            problems.push(format!("scores: want {want:?}\n        got  {got:?}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}:\n  {}", file.display(), problems.join("\n  ")))
    }
}

#[test]
fn every_plugin_case_gives_its_expected_verdicts_and_scores() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "cases: {files:?}");
    let failures: Vec<String> = files.iter().filter_map(|f| run(f).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

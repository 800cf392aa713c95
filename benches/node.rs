//! Node agent benchmark (`make bench`, as root): pod start latency through the whole
//! path, from the create request — API create → NodeActor's watch → PodActor → runtime (sandbox, network,
//! container) → status written → Running seen through a watch — with the image
//! present, on a real `rk8s-server` and a joined `rk8s-node`.
//!
//! - one pod at a time: p50/p99 over 100 (pods as admitted by default: each with
//!   its service-account token volume);
//! - one at a time, alternating, 50 each: a bare pod (no token:
//!   `automountServiceAccountToken: false`) against one with a ConfigMap volume, a
//!   Secret in its environment and the projected token (what kubelet reads and
//!   writes before the container starts);
//! - a burst of 100 pods to the node: time until all are Running;
//! - the agent SIGKILLed with those 100 pods running and started again: time until
//!   its Lease is renewed, and until its stats summary (`/stats/summary` through the
//!   API server's node proxy) holds all 100 pods again; the containers restarted by it
//!   are counted (0: every one re-adopted).
//!
//! The burst's row also gives the CPU seconds the server, the agent and its container
//! helper spent during it (2 cores: 2 × the burst's time is the machine's whole).
//! `RK8S_BENCH_NODE=burst` runs the burst alone (to compare a change quickly).
//!
//! Prints a table and writes `target/bench/node.json`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{cpu_seconds, ms, percentile, print_rows, write_json};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use support::apiserver::Server;
use support::node::{bootstrap_token, eventually, images, join_command, node};

const SINGLE: usize = 100;
const BURST: usize = 100;

/// What a benchmark pod carries besides its container.
#[derive(Clone, Copy, PartialEq)]
enum Inputs {
    /// What admission gives every pod: the service-account token volume.
    Default,
    /// Nothing: `automountServiceAccountToken: false`.
    Bare,
    /// The token, a ConfigMap volume and a Secret in the environment.
    Read,
}

fn pod(name: &str, image: &str, inputs: Inputs) -> Pod {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "node"}},
        "spec": {
            "nodeName": "bench",
            "terminationGracePeriodSeconds": 0,
            "tolerations": [{"key": "dedicated", "operator": "Exists"}],
            "containers": [{"name": "main", "image": image, "command": ["sleep", "3600"]}]
        }
    });
    match inputs {
        Inputs::Default => {}
        Inputs::Bare => pod["spec"]["automountServiceAccountToken"] = json!(false),
        Inputs::Read => {
            pod["spec"]["volumes"] =
                json!([{"name": "settings", "configMap": {"name": "settings"}}]);
            let main = &mut pod["spec"]["containers"][0];
            main["volumeMounts"] = json!([{"name": "settings", "mountPath": "/etc/settings"}]);
            main["env"] = json!([{"name": "PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}]);
        }
    }
    serde_json::from_value(pod).unwrap()
}

/// Creates `names` at once and waits, through one watch, until each is Running;
/// returns each pod's time from its create request to Running, and the total.
async fn start(pods: &Api<Pod>, names: &[String], image: &str) -> (Vec<Duration>, Duration) {
    start_with(pods, names, image, Inputs::Default).await
}

/// [`start`] with pods carrying `inputs`.
async fn start_with(
    pods: &Api<Pod>,
    names: &[String],
    image: &str,
    inputs: Inputs,
) -> (Vec<Duration>, Duration) {
    let list = pods.list(&Default::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut watch = pods
        .watch(&WatchParams::default().labels("bench=node"), &rv)
        .await
        .unwrap()
        .boxed();
    let begin = Instant::now();
    let mut created = std::collections::HashMap::new();
    let creates = names.iter().map(|n| {
        let p = pod(n, image, inputs);
        async move {
            // From the request, as a user counts: the API's own time is part of it.
            let sent = Instant::now();
            let created = pods.create(&PostParams::default(), &p).await;
            (n.clone(), created.map(|_| sent))
        }
    });
    for (name, at) in futures_util::future::join_all(creates).await {
        created.insert(name, at.unwrap());
    }
    let mut latencies = Vec::new();
    let mut running = std::collections::HashSet::new();
    while running.len() < names.len() {
        let event = tokio::time::timeout(Duration::from_secs(120), watch.next())
            .await
            .expect("pods never all Running")
            .unwrap()
            .unwrap();
        if let WatchEvent::Modified(p) | WatchEvent::Added(p) = event {
            let name = p.metadata.name.clone().unwrap();
            let phase = p.status.and_then(|s| s.phase);
            if phase.as_deref() == Some("Running")
                && created.contains_key(&name)
                && running.insert(name.clone())
            {
                latencies.push(created[&name].elapsed().min(begin.elapsed()));
            }
        }
    }
    let total = begin.elapsed();
    latencies.sort();
    (latencies, total)
}

async fn delete_all(pods: &Api<Pod>, names: &[String]) {
    for n in names {
        let _ = pods.delete(n, &DeleteParams::default()).await;
    }
    eventually("the bench pods deleted", async || {
        let left = pods
            .list(&kube::api::ListParams::default().labels("bench=node"))
            .await
            .ok()?;
        left.items.is_empty().then_some(())
    })
    .await;
}

/// How many pods of each kind the paired comparison starts.
const PAIRED: usize = 50;

/// Bare pods and pods with inputs started one at a time, alternating (so both see the
/// same machine): each kind's latencies, sorted.
async fn compare_inputs(
    server: &Server,
    pods: &Api<Pod>,
    image: &str,
) -> (Vec<Duration>, Vec<Duration>) {
    let client = server.client().await;
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "default");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, "default");
    let settings =
        json!({"metadata": {"name": "settings"}, "data": {"mode": "fast", "level": "3"}});
    maps.create(
        &PostParams::default(),
        &serde_json::from_value(settings).unwrap(),
    )
    .await
    .unwrap();
    let creds = json!({"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}});
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(creds).unwrap(),
        )
        .await
        .unwrap();
    let (mut bare, mut read, mut names) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..PAIRED {
        for (kind, into) in [(Inputs::Bare, &mut bare), (Inputs::Read, &mut read)] {
            let name = vec![format!(
                "{}-{i}",
                if kind == Inputs::Bare { "bare" } else { "read" }
            )];
            let (l, _) = start_with(pods, &name, image, kind).await;
            into.extend(l);
            names.extend(name);
        }
    }
    delete_all(pods, &names).await;
    bare.sort();
    read.sort();
    (bare, read)
}

/// The container helper of the agent whose files are under `dir`: the process started
/// as `rk8s-node __runtime-helper --root DIR/…` (read from `/proc`, never signalled).
fn helper_pid(dir: &std::path::Path) -> Option<u32> {
    let dir = dir.display().to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let helper = args
                .get(1)
                .is_some_and(|a| *a == rk8s_runtime::helper::HELPER_ARG.as_bytes());
            let ours = args
                .iter()
                .any(|a| std::str::from_utf8(a).is_ok_and(|a| a.starts_with(&dir)));
            (helper && ours).then_some(pid)
        })
}

/// How many pods the agent under `dir` still keeps files of (its runtime's `pods`
/// directory, emptied as each pod's teardown ends).
fn pods_kept(dir: &std::path::Path) -> usize {
    fn find(dir: &std::path::Path, depth: usize) -> Option<std::path::PathBuf> {
        let candidate = dir.join("pods");
        if candidate.is_dir() {
            return Some(candidate);
        }
        if depth == 0 {
            return None;
        }
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter(|e| e.path().is_dir())
            .find_map(|e| find(&e.path(), depth - 1))
    }
    find(&dir.join("data"), 3)
        .and_then(|pods| std::fs::read_dir(pods).ok())
        .map(|entries| entries.count())
        .unwrap_or(0)
}

/// Waits until the agent under `dir` has torn down every pod (the API forgets a pod
/// before its node has removed its containers, network and files); how long it took.
async fn drained(dir: &std::path::Path) -> Duration {
    let begin = Instant::now();
    while pods_kept(dir) > 0 {
        assert!(
            begin.elapsed() < Duration::from_secs(120),
            "the node still keeps pods after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    begin.elapsed()
}

/// CPU seconds (all threads) of the server, the agent and its helper.
#[derive(Clone, Copy, Default)]
struct Cpu {
    server: f64,
    agent: f64,
    helper: f64,
}

impl Cpu {
    fn read(server: u32, agent: u32, helper: Option<u32>) -> Cpu {
        Cpu {
            server: cpu_seconds(server, "").0,
            agent: cpu_seconds(agent, "").0,
            helper: helper.map(|h| cpu_seconds(h, "").0).unwrap_or(0.0),
        }
    }

    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            server: self.server - before.server,
            agent: self.agent - before.agent,
            helper: self.helper - before.helper,
        }
    }
}

/// What an agent restart with pods running took.
struct Restart {
    lease: Duration,
    adopted: Duration,
    restarted: usize,
}

/// The (namespace/name → container id) of every running pod.
async fn container_ids(pods: &Api<Pod>) -> std::collections::BTreeMap<String, String> {
    let listed = pods.list(&Default::default()).await.unwrap();
    listed
        .items
        .iter()
        .filter_map(|p| {
            let status = p.status.as_ref()?.container_statuses.as_ref()?.first()?;
            Some((p.metadata.name.clone()?, status.container_id.clone()?))
        })
        .collect()
}

/// SIGKILLs the agent with its pods running, starts it again, and times its return.
async fn restart_with_pods(
    server: &Server,
    agent: &mut support::node::NodeProcess,
    pods: &Api<Pod>,
) -> Restart {
    let client = server.client().await;
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "kube-node-lease");
    let renewed = |l: k8s_openapi::api::coordination::v1::Lease| l.spec?.renew_time.map(|t| t.0);
    let before_ids = container_ids(pods).await;
    agent.kill();
    let last = renewed(leases.get("bench").await.unwrap());
    let started = Instant::now();
    agent.run_again(&["--max-pods", "250", "--stats-interval", "1s"]);
    eventually("the lease renewed after the restart", async || {
        let now = renewed(leases.get("bench").await.ok()?);
        (now > last).then_some(())
    })
    .await;
    let lease = started.elapsed();
    eventually("every pod in the restarted agent's stats", async || {
        let request = http::Request::get("/api/v1/nodes/bench/proxy/stats/summary")
            .body(Vec::new())
            .ok()?;
        let summary: serde_json::Value = client.request(request).await.ok()?;
        let listed = summary["pods"].as_array()?.len();
        (listed >= BURST).then_some(())
    })
    .await;
    let adopted = started.elapsed();
    let after_ids = container_ids(pods).await;
    let restarted = before_ids
        .iter()
        .filter(|(name, id)| after_ids.get(*name) != Some(id))
        .count();
    Restart {
        lease,
        adopted,
        restarted,
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let images = images();
    let image = images.join("busybox").display().to_string();
    let server = Server::start(&[]);
    let (token, hash) = bootstrap_token(&server);
    let mut agent = node(9);
    let mut join = join_command(&server, &agent, "bench", &token, &hash);
    join.args(["--max-pods", "250"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    agent.child = Some(join.spawn().unwrap());
    let burst_only = std::env::var("RK8S_BENCH_NODE").is_ok_and(|v| v == "burst");
    let (server_pid, agent_pid) = (server.pid(), agent.child.as_ref().unwrap().id());
    let agent_dir = agent.dir.path().to_path_buf();
    let (single, (bare, read), (burst_total, burst_cpu, drain), restart) =
        runtime.block_on(async {
            let admin = server.client().await;
            let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(admin.clone());
            eventually("the node registered", async || {
                nodes.get_opt("bench").await.ok()?
            })
            .await;
            let pods: Api<Pod> = Api::namespaced(admin, "default");
            // Warm-up: the image's layers unpacked once.
            let warm = vec!["warm".to_string()];
            start(&pods, &warm, &image).await;
            delete_all(&pods, &warm).await;
            let mut single = Vec::new();
            let mut compared = (Vec::new(), Vec::new());
            if !burst_only {
                let mut names = Vec::new();
                for i in 0..SINGLE {
                    let name = vec![format!("one-{i}")];
                    let (l, _) = start(&pods, &name, &image).await;
                    single.extend(l);
                    names.extend(name);
                }
                delete_all(&pods, &names).await;
                compared = compare_inputs(&server, &pods, &image).await;
            }
            // The burst is to an idle node: the earlier pods' teardown over first.
            let drain = drained(&agent_dir).await;
            let burst: Vec<String> = (0..BURST).map(|i| format!("burst-{i}")).collect();
            let helper = helper_pid(&agent_dir);
            let before = Cpu::read(server_pid, agent_pid, helper);
            let (_, total) = start(&pods, &burst, &image).await;
            let cpu = Cpu::read(server_pid, agent_pid, helper).since(before);
            let restart = if burst_only {
                None
            } else {
                Some(restart_with_pods(&server, &mut agent, &pods).await)
            };
            delete_all(&pods, &burst).await;
            single.sort();
            (single, compared, (total, cpu, drain), restart)
        });
    drop(agent);
    drop(server);
    println!(
        "(the node's teardown of the earlier pods ended {:.2} s after the API had forgotten them)",
        drain.as_secs_f64()
    );
    let burst_row = (
        format!("burst of {BURST} pods to one node"),
        format!(
            "{:.2} s until all Running   (goal ≤ 5 s; CPU: server {:.2} s, agent {:.2} s, helper {:.2} s)",
            burst_total.as_secs_f64(),
            burst_cpu.server,
            burst_cpu.agent,
            burst_cpu.helper
        ),
    );
    let burst_json = json!({"case": "pod_start_burst", "pods": BURST, "total_s": burst_total.as_secs_f64(),
        "earlier_teardown_s": drain.as_secs_f64(),
        "cpu_s": {"server": burst_cpu.server, "agent": burst_cpu.agent, "helper": burst_cpu.helper}});
    println!(
        "\nrk8s node agent: API create → Running seen through a watch (image present, one node, 2 cores)\n"
    );
    let Some(restart) = restart else {
        print_rows(&[burst_row]);
        write_json(
            "node-burst",
            &json!({"benchmark": "node", "rows": [burst_json]}),
        );
        return;
    };
    let rows = [
        (
            format!("pod start, one at a time ({SINGLE} pods)"),
            format!(
                "p50 {:.1} ms   p99 {:.1} ms   (goal p99 ≤ 250 ms)",
                ms(percentile(&single, 0.5)),
                ms(percentile(&single, 0.99))
            ),
        ),
        (
            format!("bare pod, one at a time ({PAIRED} pods)"),
            format!(
                "p50 {:.1} ms   p99 {:.1} ms   (no token)",
                ms(percentile(&bare, 0.5)),
                ms(percentile(&bare, 0.99))
            ),
        ),
        (
            format!("pod with inputs, one at a time ({PAIRED} pods)"),
            format!(
                "p50 {:.1} ms   p99 {:.1} ms   (ConfigMap volume, Secret env, projected token; same run)",
                ms(percentile(&read, 0.5)),
                ms(percentile(&read, 0.99))
            ),
        ),
        burst_row,
        (
            format!("agent SIGKILLed and restarted with {BURST} pods"),
            format!(
                "lease renewed after {:.2} s, all {BURST} pods in its stats after {:.2} s, {} containers restarted",
                restart.lease.as_secs_f64(),
                restart.adopted.as_secs_f64(),
                restart.restarted
            ),
        ),
    ];
    print_rows(&rows);
    write_json(
        "node",
        &json!({"benchmark": "node", "rows": [
            {"case": "pod_start_single", "pods": SINGLE, "p50_ms": ms(percentile(&single, 0.5)), "p99_ms": ms(percentile(&single, 0.99))},
            {"case": "pod_start_bare", "pods": PAIRED, "p50_ms": ms(percentile(&bare, 0.5)), "p99_ms": ms(percentile(&bare, 0.99))},
            {"case": "pod_start_with_inputs", "pods": PAIRED, "p50_ms": ms(percentile(&read, 0.5)), "p99_ms": ms(percentile(&read, 0.99))},
            burst_json,
            {"case": "agent_restart", "pods": BURST, "lease_s": restart.lease.as_secs_f64(),
             "adopted_s": restart.adopted.as_secs_f64(), "restarted": restart.restarted},
        ]}),
    );
}

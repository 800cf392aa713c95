//! Simulated nodes (like kubemark or KWOK, built in): `rk8s-node simulate --count N`
//! registers N Nodes from one process and plays their part through the real API —
//! Ready status, Leases renewed every 10 s, and the pods bound to them taken from
//! Pending to Running (after `--start-latency`) with containers in the fake runtime;
//! deleted pods are stopped and their deletion confirmed. One watch serves every
//! simulated node, and a node costs a name and a counter, so thousands fit in one
//! process.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use rk8s_runtime::ContainerRuntime;
use rk8s_runtime::fake::FakeRuntime;
use serde_json::json;

use super::registration::{LEASE_RENEW, LEASE_SECONDS};
use super::{Result, api};

/// What the simulated nodes look like.
#[derive(Clone, Debug)]
pub struct SimulationConfig {
    /// How many.
    pub count: usize,
    /// Names are `PREFIX-0`, `PREFIX-1`, …
    pub prefix: String,
    /// CPUs each.
    pub cpu: String,
    /// Memory each (`256Gi`).
    pub memory: String,
    /// Pods each.
    pub pods: u32,
    /// Extra labels on every node.
    pub labels: BTreeMap<String, String>,
    /// Taints on every node.
    pub taints: Vec<Taint>,
    /// Spread over this many zones (`topology.kubernetes.io/zone=zone-K`); 0: none.
    pub zones: usize,
    /// Time from a pod's binding to it running.
    pub start_latency: Duration,
    /// Requests in flight at once while registering and renewing.
    pub concurrency: usize,
}

impl SimulationConfig {
    /// The name of node `i`.
    pub fn node_name(&self, i: usize) -> String {
        format!("{}-{i}", self.prefix)
    }
}

fn node_object(config: &SimulationConfig, i: usize) -> Node {
    let name = config.node_name(i);
    let mut labels = config.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), name.clone());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    labels.insert("kubernetes.io/arch".into(), "amd64".into());
    labels.insert(rk8s_api::net::SIMULATED_NODE_LABEL.into(), "true".into());
    if config.zones > 0 {
        labels.insert(
            "topology.kubernetes.io/zone".into(),
            format!("zone-{}", i % config.zones),
        );
    }
    let value = json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": config.taints},
    });
    serde_json::from_value(value).unwrap_or_default()
}

fn node_ip(i: usize) -> String {
    format!("10.254.{}.{}", (i / 250) % 250, i % 250 + 1)
}

fn node_status(config: &SimulationConfig, i: usize) -> serde_json::Value {
    let now = jiff::Timestamp::now().to_string();
    let resources =
        json!({"cpu": config.cpu, "memory": config.memory, "pods": config.pods.to_string()});
    let condition = |type_: &str, status: &str, reason: &str| {
        json!({"type": type_, "status": status, "reason": reason,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!({"status": {
        "capacity": resources,
        "allocatable": resources,
        "conditions": [
            condition("Ready", "True", "KubeletReady"),
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID"),
        ],
        "addresses": [{"type": "InternalIP", "address": node_ip(i)},
                      {"type": "Hostname", "address": config.node_name(i)}],
        "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux",
                     "kubeletVersion": format!("v1.33.0-rk8s.{}-simulated", env!("CARGO_PKG_VERSION")),
                     "containerRuntimeVersion": "fake://0", "kernelVersion": "", "osImage": "simulated",
                     "bootID": "", "machineID": "", "systemUUID": "", "kubeProxyVersion": ""},
    }})
}

async fn register(client: &kube::Client, config: &SimulationConfig, i: usize) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = node_object(config, i);
    let name = config.node_name(i);
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let patch = json!({"metadata": {"labels": node.metadata.labels}, "spec": node.spec});
            nodes
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(api(format!("failed to update node {name}")))?;
        }
        Err(e) => return Err(api(format!("failed to register node {name}"))(e)),
    }
    nodes
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&node_status(config, i)),
        )
        .await
        .map_err(api(format!("failed to post the status of node {name}")))?;
    renew(client, &name).await
}

async fn renew(client: &kube::Client, name: &str) -> Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = jiff::Timestamp::now().to_string();
    let patch = json!({"spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS,
                                "renewTime": now}});
    match leases
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let lease: Lease = serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": patch["spec"],
            }))
            .unwrap_or_default();
            leases
                .create(&PostParams::default(), &lease)
                .await
                .map(|_| ())
                .map_err(api(format!("failed to create the lease of {name}")))
        }
        Err(e) => Err(api(format!("failed to renew the lease of {name}"))(e)),
    }
}

/// The slots a Lease period is cut into (see [`simulate`]).
const LEASE_SLOTS: usize = 100;

/// Renews every node's Lease once per period until aborted, spread over it as real
/// nodes' renewals are (each at its own phase): the period in [`LEASE_SLOTS`] slots,
/// node i due in slot i % LEASE_SLOTS, so 5,000 nodes make 50 renewals every 100 ms
/// instead of 5,000 at once every 10 s.
///
/// Each node renews on its own, as a kubelet does: a slow renewal delays only its
/// node's, never the next slot's (a slot waiting for its slowest renewal once
/// stretched the 10 s period past the 40 s grace under load, and every node was
/// tainted unreachable). A node still renewing when it is due again is skipped; at
/// most `concurrency` renewals are in flight, the rest wait in order.
async fn renew_leases<F, R>(count: usize, concurrency: usize, renew: R)
where
    R: Fn(usize) -> F,
    F: Future<Output = ()>,
{
    let concurrency = concurrency.max(1);
    let mut tick = tokio::time::interval(LEASE_RENEW / LEASE_SLOTS as u32);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut slots = (0..LEASE_SLOTS).cycle();
    // Nodes queued or renewing, so none is in the queue or in flight twice.
    let mut pending = vec![false; count];
    let mut queue: VecDeque<usize> = VecDeque::new();
    let mut renewing = futures_util::stream::FuturesUnordered::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let slot = slots.next().unwrap_or_default();
                for i in (slot..count).step_by(LEASE_SLOTS) {
                    if !std::mem::replace(&mut pending[i], true) {
                        queue.push_back(i);
                    }
                }
            }
            Some(i) = renewing.next() => pending[i] = false,
        }
        while renewing.len() < concurrency
            && let Some(i) = queue.pop_front()
        {
            let renewed = renew(i);
            renewing.push(async move {
                renewed.await;
                i
            });
        }
    }
}

/// A pod a simulated node runs.
struct Running {
    containers: Vec<String>,
}

/// Registers the nodes, then runs them until the process ends.
pub async fn simulate(client: kube::Client, config: SimulationConfig) -> Result<()> {
    let config = Arc::new(config);
    let concurrency = config.concurrency.max(1);
    futures_util::stream::iter(0..config.count)
        .map(|i| {
            let (client, config) = (client.clone(), config.clone());
            async move { register(&client, &config, i).await }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    println!(
        "{} simulated nodes registered ({}-0 … {}-{})",
        config.count,
        config.prefix,
        config.prefix,
        config.count.saturating_sub(1)
    );
    let names: Arc<HashMap<String, usize>> = Arc::new(
        (0..config.count)
            .map(|i| (config.node_name(i), i))
            .collect(),
    );
    let leases = {
        let (client, config) = (client.clone(), config.clone());
        let (count, concurrency) = (config.count, config.concurrency);
        tokio::spawn(renew_leases(count, concurrency, move |i| {
            let (client, name) = (client.clone(), config.node_name(i));
            async move {
                if let Err(e) = renew(&client, &name).await {
                    tracing::warn!("{e}");
                }
            }
        }))
    };
    let runtime = Arc::new(FakeRuntime::new());
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut starting: HashSet<String> = HashSet::new();
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Running)>();
    let pods: Api<Pod> = Api::all(client.clone());
    let watch = watcher::watcher(pods, watcher::Config::default().fields("spec.nodeName!="))
        .default_backoff();
    let mut watch = std::pin::pin!(watch);
    loop {
        tokio::select! {
            Some((uid, pod)) = started_rx.recv() => {
                starting.remove(&uid);
                running.insert(uid, pod);
            }
            event = watch.next() => {
                let Some(event) = event else { break };
                let pod = match event {
                    Ok(Event::InitApply(p) | Event::Apply(p)) => p,
                    Ok(Event::Delete(p)) => {
                        if let Some(uid) = p.metadata.uid.as_deref()
                            && let Some(r) = running.remove(uid)
                        {
                            stop(&runtime, &r);
                        }
                        continue;
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::warn!("watching pods: {e}");
                        continue;
                    }
                };
                let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
                let Some(&index) = names.get(&node) else { continue };
                let Some(uid) = pod.metadata.uid.clone() else { continue };
                if pod.metadata.deletion_timestamp.is_some() {
                    if let Some(r) = running.remove(&uid) {
                        stop(&runtime, &r);
                    }
                    let client = client.clone();
                    tokio::spawn(async move { confirm_deletion(&client, &pod).await });
                    continue;
                }
                let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                if running.contains_key(&uid) || starting.contains(&uid) || phase == Some("Running") {
                    continue;
                }
                starting.insert(uid.clone());
                let (client, runtime, tx) = (client.clone(), runtime.clone(), started_tx.clone());
                let latency = config.start_latency;
                tokio::spawn(async move {
                    if !latency.is_zero() {
                        tokio::time::sleep(latency).await;
                    }
                    match start(&client, &runtime, &pod, index).await {
                        Ok(r) => {
                            let _ = tx.send((uid, r));
                        }
                        Err(e) => tracing::warn!("{e}"),
                    }
                });
            }
        }
    }
    leases.abort();
    Ok(())
}

fn stop(runtime: &FakeRuntime, pod: &Running) {
    for id in &pod.containers {
        let _ = runtime.delete(id, true);
    }
}

async fn start(
    client: &kube::Client,
    runtime: &FakeRuntime,
    pod: &Pod,
    node: usize,
) -> Result<Running> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let now = jiff::Timestamp::now().to_string();
    let mut containers = Vec::new();
    let mut statuses = Vec::new();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        let id = format!("{uid}-{}", c.name);
        let spec = rk8s_runtime::container::CreateContainer {
            id: id.clone(),
            bundle: std::path::PathBuf::new(),
            engine: rk8s_runtime::container::Engine::Libcontainer,
            log_path: std::path::PathBuf::new(),
            log_max_bytes: 0,
            io: Default::default(),
        };
        let created = runtime.create(&spec).and_then(|_| runtime.start(&id));
        if let Err(e) = created {
            return Err(super::Error::Other(format!("pod {ns}/{name}: {e}")));
        }
        containers.push(id.clone());
        statuses.push(json!({
            "name": c.name, "ready": true, "started": true, "restartCount": 0,
            "image": c.image, "imageID": "", "containerID": format!("fake://{id}"),
            "state": {"running": {"startedAt": now}},
        }));
    }
    let condition = |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": now});
    // Addresses from 100.64.0.0/10, one per pod (nothing is sent to them).
    static NEXT_IP: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT_IP.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % (1 << 22);
    let ip = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(100, 64, 0, 0)) + n);
    let patch = json!({"status": {
        "phase": "Running",
        "conditions": [condition("PodScheduled"), condition("Initialized"),
                       condition("ContainersReady"), condition("Ready")],
        "hostIP": node_ip(node), "hostIPs": [{"ip": node_ip(node)}],
        "podIP": ip, "podIPs": [{"ip": ip}],
        "startTime": now,
        "containerStatuses": statuses,
    }});
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(api(format!(
            "failed to write the status of pod {ns}/{name}"
        )))?;
    Ok(Running { containers })
}

async fn confirm_deletion(client: &kube::Client, pod: &Pod) {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match pods.delete(name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(e) => tracing::warn!("confirming the deletion of {ns}/{name}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Renewals over `periods` periods of 1,000 nodes, node 0's renewal never
    /// answering: each node's renewal times.
    async fn renewals(periods: u32, concurrency: usize) -> Vec<Vec<tokio::time::Instant>> {
        let seen = Arc::new(Mutex::new(vec![Vec::new(); 1000]));
        let record = seen.clone();
        let renewing = renew_leases(1000, concurrency, move |i| {
            record.lock().unwrap()[i].push(tokio::time::Instant::now());
            async move {
                if i == 0 {
                    std::future::pending::<()>().await;
                }
                // The others answer after 300 ms, three slots' time.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        let _ = tokio::time::timeout(LEASE_RENEW * periods, renewing).await;
        Arc::try_unwrap(seen).unwrap().into_inner().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn every_node_renews_each_period_although_renewals_are_slow_and_one_hangs() {
        let seen = renewals(10, 64).await;
        // The hung node is not renewed again while its renewal is in flight.
        assert_eq!(seen[0].len(), 1);
        for (i, times) in seen.iter().enumerate().skip(1) {
            assert!(times.len() >= 9, "node {i} renewed {} times", times.len());
            for pair in times.windows(2) {
                let gap = pair[1] - pair[0];
                assert!(
                    gap <= LEASE_RENEW + Duration::from_millis(150),
                    "node {i} waited {gap:?} between renewals"
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_the_concurrency_is_in_flight_and_the_rest_wait_in_order() {
        // 10 renewals due each 100 ms, each taking 300 ms, 2 at once: only 2 in 300 ms
        // finish, so the queue grows and nodes renew late but in turn.
        let seen = renewals(2, 2).await;
        let renewed: usize = seen.iter().map(Vec::len).sum();
        // 2 in flight (one of them hung from the start) over 20 s: about 20 s / 300 ms.
        assert!((60..=80).contains(&renewed), "{renewed} renewals");
        // Due in slot order (node i in slot i % 100), then by index within a slot.
        let mut due: Vec<usize> = (0..seen.len()).collect();
        due.sort_by_key(|i| (i % LEASE_SLOTS, i / LEASE_SLOTS));
        let first: Vec<_> = due.iter().filter_map(|&i| seen[i].first()).collect();
        assert!(first.windows(2).all(|w| w[0] <= w[1]), "out of order");
        // Those renewed are the first due.
        let count = due.iter().take_while(|&&i| !seen[i].is_empty()).count();
        assert_eq!(count, first.len());
    }
}

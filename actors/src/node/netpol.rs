//! NetworkPolicy on this node: reflectors of NetworkPolicies, Namespaces and PodPeers
//! (every pod's labels, addresses and named ports, `networking.rk8s.io/v1alpha1`,
//! served by the API server from the pods: a node reads no other node's pod specs)
//! feed one loop that recompiles the node's program
//! ([`rk8s_netoverlay::netpol::compile`]) at most every [`SETTLE`] after a change and
//! writes what changed ([`PolicyProxy`]).
//!
//! The pod start gate ([`Gate::admit`]): a PodActor, once its pod has an address and
//! before its first container starts, hands the pod here and, if a policy of its
//! namespace selects it, waits until a sync that includes it has been written
//! (gathered for 10 ms, not the usual 100) — so a pod selected by an isolating policy
//! is isolated "from the very first instant that any container is started"
//! (kubernetes.io, "Network Policies", pod lifecycle). A pod no policy selects starts
//! at once; it joins its peers' groups with the next sync, as any new pod does. Nothing is written before the three kinds are
//! listed once: the table a previous run left stays meanwhile (no allow-all window).
//!
//! The node's DNS at its gateway is a virtual kube-dns pod ([`kube_dns`]), and same
//! node traffic is seen through br_netfilter (`net.bridge.bridge-nf-call-iptables`,
//! set per network namespace).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::reflector::{self, Store};
use rk8s_api::netpol::peer::PodPeer;
use rk8s_api::netpol::{self, PodInfo, World, kube_dns};
use rk8s_netoverlay::host::{Host, System};
use rk8s_netoverlay::netpol::{PolicyProxy, compile};
use tokio::sync::{mpsc, oneshot};

use super::network::{SETTLE, watched};

/// How long a pod waits for its isolation to be written before its start is retried.
pub const ADMIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long admitted pods are gathered before the sync they wait for.
const ADMIT_SETTLE: Duration = Duration::from_millis(10);
/// Pods waiting for their first sync, at most.
const ADMIT_QUEUE: usize = 256;
/// How long a pod admitted before the API shows its address is kept as a local pod
/// on the gate's word alone (its PodPeer takes over once it has the address).
const ADMITTED_FOR: Duration = Duration::from_secs(120);

/// A pod about to start its first container.
#[derive(Debug)]
struct Admit {
    uid: String,
    pod: PodInfo,
    reply: oneshot::Sender<()>,
}

/// The way in for PodActors: admits a pod before its first container starts.
#[derive(Debug, Clone)]
pub struct Gate {
    tx: mpsc::Sender<Admit>,
}

impl Gate {
    /// Waits (at most [`ADMIT_TIMEOUT`]) until the node's NetworkPolicy program
    /// includes `pod` at `ip`; an error says why the container start must wait.
    pub async fn admit(&self, pod: &Pod, ip: Ipv4Addr) -> Result<(), String> {
        let mut info = PodInfo {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            ips: vec![ip],
            ports: netpol::named_ports(pod),
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        };
        info.ips.dedup();
        let (reply, done) = oneshot::channel();
        let admit = Admit {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            pod: info,
            reply,
        };
        let waited = tokio::time::timeout(ADMIT_TIMEOUT, async {
            self.tx.send(admit).await.map_err(|_| "stopped")?;
            done.await.map_err(|_| "stopped")
        })
        .await;
        match waited {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(format!(
                "NetworkPolicy {why}: the pod waits for its isolation"
            )),
            Err(_) => Err(format!(
                "NetworkPolicy not programmed within {}s: the pod waits for its isolation",
                ADMIT_TIMEOUT.as_secs()
            )),
        }
    }
}

/// Starts the keeper for node `node`, whose pods' gateway is `gateway`; returns the
/// gate for its PodActors.
pub fn start(client: kube::Client, node: String, gateway: Ipv4Addr) -> Gate {
    let (tx, rx) = mpsc::channel(ADMIT_QUEUE);
    // Same-node pods are bridged: without br_netfilter their packets never reach
    // the `forward` hook (kube-router relies on it too).
    if let Err(e) = System.sysctl("net.bridge.bridge-nf-call-iptables", "1") {
        tracing::warn!(
            "NetworkPolicy cannot see traffic between pods of this node (is br_netfilter loaded?): {e}"
        );
    }
    let proxy = PolicyProxy::new(System);
    tokio::spawn(keep(client, node, gateway, proxy, rx));
    Gate { tx }
}

/// The pods admitted by the gate that the API does not show with an address yet.
#[derive(Default)]
struct Admitted(BTreeMap<String, (PodInfo, Instant)>);

impl Admitted {
    fn insert(&mut self, uid: String, pod: PodInfo) {
        self.0.insert(uid, (pod, Instant::now()));
    }

    /// Forgets the pods whose PodPeer has an address, and old ones.
    fn prune(&mut self, peers: &Store<PodPeer>) {
        let shown: std::collections::BTreeSet<String> = peers
            .state()
            .iter()
            .filter(|p| !p.ips.is_empty() || p.terminal)
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        self.0
            .retain(|uid, (_, at)| !shown.contains(uid) && at.elapsed() < ADMITTED_FOR);
    }
}

/// The world the node's program is compiled from, and its local pods.
pub fn world(
    policies: &Store<NetworkPolicy>,
    namespaces: &Store<Namespace>,
    peers: &Store<PodPeer>,
    admitted: impl Iterator<Item = PodInfo>,
    (node, gateway): (&str, Ipv4Addr),
) -> (World, Vec<PodInfo>) {
    let compiled = policies
        .state()
        .iter()
        .filter_map(|p| {
            netpol::compile(p)
                .inspect_err(|e| {
                    tracing::warn!(
                        policy = %format!("{}/{}", p.metadata.namespace.as_deref().unwrap_or(""), p.metadata.name.as_deref().unwrap_or("")),
                        "NetworkPolicy left out: {e}"
                    );
                })
                .ok()
        })
        .collect();
    let labels = namespaces
        .state()
        .iter()
        .filter_map(|n| {
            Some((
                n.metadata.name.clone()?,
                n.metadata.labels.clone().unwrap_or_default(),
            ))
        })
        .collect();
    let mut pods: Vec<PodInfo> = peers.state().iter().filter_map(|p| p.info()).collect();
    let mut local: Vec<PodInfo> = pods
        .iter()
        .filter(|p| p.node.as_deref() == Some(node))
        .cloned()
        .collect();
    for extra in admitted {
        if !local
            .iter()
            .any(|p| p.namespace == extra.namespace && p.name == extra.name)
        {
            local.push(extra.clone());
            pods.push(extra);
        }
    }
    pods.push(kube_dns(gateway, node));
    let world = World {
        policies: compiled,
        namespaces: labels,
        pods,
    };
    (world, local)
}

/// Whether every kind was listed once.
fn listed(
    policies: &Store<NetworkPolicy>,
    namespaces: &Store<Namespace>,
    peers: &Store<PodPeer>,
) -> bool {
    let ready = |r: Option<Result<(), _>>| r.is_some_and(|r| r.is_ok());
    ready(policies.wait_until_ready().now_or_never())
        && ready(namespaces.wait_until_ready().now_or_never())
        && ready(peers.wait_until_ready().now_or_never())
}

/// Whether a policy of `pod`'s namespace selects it (a policy that does not compile
/// counts as one: the pod waits for the sync rather than start unisolated).
fn isolated(policies: &Store<NetworkPolicy>, pod: &PodInfo) -> bool {
    policies
        .state()
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(pod.namespace.as_str()))
        .any(|p| netpol::compile(p).map_or(true, |c| c.selects(pod)))
}

/// Takes a pod at the gate: it is a local pod from now on; it may start at once when
/// everything is listed and no policy selects it (it has nothing to be isolated
/// from; it joins peers' groups with the next sync, as any new pod does), else after
/// the next sync.
fn take(
    a: Admit,
    policies: &Store<NetworkPolicy>,
    (namespaces, peers): (&Store<Namespace>, &Store<PodPeer>),
    admitted: &mut Admitted,
    waiting: &mut Vec<oneshot::Sender<()>>,
) {
    let free = listed(policies, namespaces, peers) && !isolated(policies, &a.pod);
    admitted.insert(a.uid, a.pod);
    if free {
        let _ = a.reply.send(());
    } else {
        waiting.push(a.reply);
    }
}

async fn keep(
    client: kube::Client,
    node: String,
    gateway: Ipv4Addr,
    proxy: PolicyProxy,
    mut admits: mpsc::Receiver<Admit>,
) {
    let (policies, policies_w) = reflector::store::<NetworkPolicy>();
    let (namespaces, namespaces_w) = reflector::store::<Namespace>();
    let (peers, peers_w) = reflector::store::<PodPeer>();
    let events = futures_util::stream::select(
        watched(&client, policies_w),
        futures_util::stream::select(watched(&client, namespaces_w), watched(&client, peers_w)),
    );
    let mut events = std::pin::pin!(events);
    let proxy = std::sync::Arc::new(std::sync::Mutex::new(proxy));
    let mut admitted = Admitted::default();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        tokio::select! {
            e = events.next() => if e.is_none() { return },
            a = admits.recv() => match a {
                Some(a) => take(a, &policies, (&namespaces, &peers), &mut admitted, &mut waiting),
                None => return,
            },
        }
        // Gather what else arrives meanwhile, then program once (soon when a pod
        // waits to start).
        let settle = if waiting.is_empty() {
            SETTLE
        } else {
            ADMIT_SETTLE
        };
        let deadline = tokio::time::sleep(settle);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                e = events.next() => if e.is_none() { return },
                a = admits.recv() => if let Some(a) = a {
                    take(a, &policies, (&namespaces, &peers), &mut admitted, &mut waiting);
                },
                () = &mut deadline => break,
            }
        }
        // Nothing is written before every kind was listed once.
        if !listed(&policies, &namespaces, &peers) {
            continue;
        }
        admitted.prune(&peers);
        let (w, local) = world(
            &policies,
            &namespaces,
            &peers,
            admitted.0.values().map(|(p, _)| p.clone()),
            (&node, gateway),
        );
        let started = Instant::now();
        let proxy = proxy.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let program = compile(&w, &local, gateway);
            let clauses = program.clauses();
            let mut p = proxy
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            p.sync(program).map(|s| (s, clauses))
        })
        .await;
        match outcome {
            Ok(Ok((synced, clauses))) => {
                for reply in waiting.drain(..) {
                    let _ = reply.send(());
                }
                if synced.commands > 0 || synced.full {
                    tracing::info!(
                        full = synced.full,
                        commands = synced.commands,
                        clauses,
                        took_ms = started.elapsed().as_millis() as u64,
                        "NetworkPolicy programmed"
                    );
                }
            }
            Ok(Err(e)) => tracing::warn!("NetworkPolicy: {e}"),
            Err(e) => tracing::warn!("NetworkPolicy: {e}"),
        }
    }
}

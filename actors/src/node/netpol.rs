//! NetworkPolicy on this node: reflectors of NetworkPolicies, Namespaces and PodPeers
//! (every pod's labels, addresses and named ports, `networking.rk8s.io/v1alpha1`,
//! served by the API server from the pods: a node reads no other node's pod specs)
//! feed one loop that recompiles the node's program
//! ([`rk8s_netoverlay::netpol::rules::Compiler`], which keeps each peer group's
//! members between syncs) at most every [`SETTLE`] after a change and writes what
//! changed ([`PolicyProxy`]). A failed transaction is retried, as a full sync, after
//! 1 s doubling to 30 s ([`backoff`]), and counted (`rk8s_netpol_sync_failures_total`).
//!
//! The pod start gate ([`Gate::admit`]): a PodActor, once its new sandbox has an
//! address and before its first container starts, hands the pod here ([`admission`]).
//! A pod no policy of its namespace selects starts as soon as the NetworkPolicies and
//! Namespaces are listed (it joins its peers' groups with the next sync, as any new
//! pod does); one a policy selects waits until a sync that includes it was written
//! (gathered for 10 ms, not the usual 100) — so it is isolated "from the very first
//! instant that any container is started" (kubernetes.io, "Network Policies", pod
//! lifecycle). Nothing is written before the three kinds are listed once: the table a
//! previous run left stays meanwhile (no allow-all window).
//!
//! What the node cannot enforce it says in its `NetworkPolicyReady` condition
//! ([`condition`]): a server that refuses (403) or does not serve (404)
//! NetworkPolicies, Namespaces or PodPeers to the node (an older server) means
//! NetworkPolicy is unavailable — logged once, nothing gated, nothing written;
//! without br_netfilter ([`bridge_filtering`]) same-node traffic is not seen, and a
//! pod a policy selects is refused at the gate rather than start open.
//!
//! The node's DNS at its gateway is a virtual kube-dns pod ([`kube_dns`]).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use rk8s_api::netpol::peer::PodPeer;
use rk8s_api::netpol::{self, PodInfo, Policy, World, kube_dns};
use rk8s_netoverlay::host::{Host, System};
use rk8s_netoverlay::netpol::PolicyProxy;
use rk8s_netoverlay::netpol::rules::Compiler;
use tokio::sync::{mpsc, oneshot};

use super::network::{SETTLE, watched_reporting};
use super::registration::{Condition, ExtraConditions};

/// How long a pod waits for its isolation to be written before its start is retried.
pub const ADMIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long admitted pods are gathered before the sync they wait for.
const ADMIT_SETTLE: Duration = Duration::from_millis(10);
/// Messages to the keeper waiting at most.
const ADMIT_QUEUE: usize = 256;
/// The first retry of a failed transaction; each next one waits twice as long.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between two retries.
const RETRY_MAX: Duration = Duration::from_secs(30);
/// The node condition saying whether NetworkPolicy is enforced here.
pub const CONDITION: &str = "NetworkPolicyReady";
/// The sysctl that sends bridged (same-node) traffic through the `forward` hook.
const BRIDGE_SYSCTL: &str = "net.bridge.bridge-nf-call-iptables";

/// What a PodActor tells the keeper.
#[derive(Debug)]
enum Msg {
    /// A pod about to start its first container.
    Admit(Admit),
    /// The pod of this uid is gone from the node: it is no local pod anymore.
    Forget(String),
}

/// A pod about to start its first container.
#[derive(Debug)]
struct Admit {
    uid: String,
    pod: PodInfo,
    reply: oneshot::Sender<Result<(), String>>,
}

/// The way in for PodActors: admits a pod before its first container starts.
#[derive(Debug, Clone)]
pub struct Gate {
    tx: mpsc::Sender<Msg>,
}

impl Gate {
    /// Waits (at most [`ADMIT_TIMEOUT`]) until the pod may start: at once when no
    /// policy selects it, else once the node's program includes `pod` at `ip`; an
    /// error says why its containers must wait.
    pub async fn admit(&self, pod: &Pod, ip: Ipv4Addr) -> Result<(), String> {
        let info = PodInfo {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            ips: vec![ip],
            ports: netpol::named_ports(pod),
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        };
        let (reply, done) = oneshot::channel();
        let admit = Admit {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            pod: info,
            reply,
        };
        let waited = tokio::time::timeout(ADMIT_TIMEOUT, async {
            self.tx
                .send(Msg::Admit(admit))
                .await
                .map_err(|_| "NetworkPolicy stopped".to_string())?;
            done.await
                .map_err(|_| "NetworkPolicy stopped".to_string())?
        })
        .await;
        match waited {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(format!("{why}: the pod waits for its isolation")),
            Err(_) => Err(format!(
                "NetworkPolicy not programmed within {}s: the pod waits for its isolation",
                ADMIT_TIMEOUT.as_secs()
            )),
        }
    }

    /// The pod of `uid` is gone from this node (deleted, or replaced by another of
    /// its name): its addresses are no longer this node's.
    pub async fn forget(&self, uid: &str) {
        let _ = self.tx.send(Msg::Forget(uid.to_string())).await;
    }
}

/// Starts the keeper for node `node`, whose pods' gateway is `gateway`, reporting in
/// `conditions`; returns the gate for its PodActors.
pub fn start(
    client: kube::Client,
    node: String,
    gateway: Ipv4Addr,
    conditions: ExtraConditions,
) -> Gate {
    let (tx, rx) = mpsc::channel(ADMIT_QUEUE);
    tokio::spawn(keep(client, (node, gateway), conditions, rx));
    Gate { tx }
}

/// Same-node pods are bridged: without br_netfilter their packets never reach the
/// `forward` hook (kube-router relies on it too). Turns it on through `host` and
/// reads it back through `read` (the file is missing, or does not keep `1`, when
/// br_netfilter is unavailable).
pub fn bridge_filtering(
    host: &dyn Host,
    read: impl Fn(&str) -> std::io::Result<String>,
) -> Result<(), String> {
    let set = host.sysctl(BRIDGE_SYSCTL, "1").err();
    match read(BRIDGE_SYSCTL) {
        Ok(v) if v.trim() == "1" => Ok(()),
        Ok(v) => Err(format!(
            "{BRIDGE_SYSCTL} is {:?} after setting it to 1{}: traffic between pods of this node is not filtered",
            v.trim(),
            set.map(|e| format!(" ({e})")).unwrap_or_default()
        )),
        Err(e) => Err(format!(
            "{BRIDGE_SYSCTL} cannot be read ({e}; is br_netfilter available?): traffic between pods of this node is not filtered"
        )),
    }
}

/// Reads a sysctl of this network namespace.
fn read_sysctl(key: &str) -> std::io::Result<String> {
    std::fs::read_to_string(std::path::Path::new("/proc/sys").join(key.replace('.', "/")))
}

/// The wait before the next retry of a failed transaction, after `last`.
pub fn backoff(last: Option<Duration>) -> Duration {
    last.map_or(RETRY_FIRST, |d| (d * 2).min(RETRY_MAX))
}

/// What the keeper knows that decides a pod's admission.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// Why NetworkPolicy is unavailable (a kind the server refuses to this node).
    pub unavailable: Option<String>,
    /// Whether same-node traffic is filtered (br_netfilter), else why not.
    pub bridge: Result<(), String>,
    /// Whether the NetworkPolicies and Namespaces were listed.
    pub policies_listed: bool,
    /// The last sync's outcome (`None` before the first).
    pub synced: Option<Result<(), String>>,
}

impl Default for Readiness {
    /// Nothing listed, nothing synced, nothing known to be missing.
    fn default() -> Self {
        Readiness {
            unavailable: None,
            bridge: Ok(()),
            policies_listed: false,
            synced: None,
        }
    }
}

/// What the gate does with a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// It starts now.
    Now,
    /// It starts after the next sync written.
    AfterSync,
    /// It must not start yet, for this reason.
    Refused(String),
}

/// The gate's decision for a pod that a policy of its namespace does (`selected`)
/// or does not select: unavailable NetworkPolicy gates nothing; before the policies
/// are listed no one knows, so the pod waits for the first sync; an unselected pod
/// starts; a selected one waits for its isolation — or, with same-node traffic not
/// filtered, is refused (it must not start open).
pub fn admission(r: &Readiness, selected: bool) -> Admission {
    if r.unavailable.is_some() {
        return Admission::Now;
    }
    if !r.policies_listed {
        return Admission::AfterSync;
    }
    if !selected {
        return Admission::Now;
    }
    match &r.bridge {
        Err(why) => Admission::Refused(format!("NetworkPolicy cannot isolate the pod: {why}")),
        Ok(()) => Admission::AfterSync,
    }
}

/// The node's `NetworkPolicyReady` condition (`None` before anything is known).
pub fn condition(r: &Readiness) -> Option<Condition> {
    let not = |reason, message: &str| {
        Some(Condition {
            status: false,
            reason,
            message: message.to_string(),
        })
    };
    if let Some(why) = &r.unavailable {
        return not("NetworkPolicyUnavailable", why);
    }
    if let Err(why) = &r.bridge {
        return not("BridgeNetfilterUnavailable", why);
    }
    match &r.synced {
        Some(Err(why)) => not("NetworkPolicySyncFailed", why),
        Some(Ok(())) => Some(Condition {
            status: true,
            reason: "NetworkPolicyProgrammed",
            message: "NetworkPolicy is enforced on this node".to_string(),
        }),
        None => None,
    }
}

/// Whether a watch error is the server refusing (403) or not serving (404) a kind
/// to this node, and what it said.
fn refusal(e: &watcher::Error) -> Option<String> {
    let status = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.as_ref(),
        watcher::Error::WatchError(s) => s.as_ref(),
        _ => return None,
    };
    matches!(status.code, 403 | 404).then(|| format!("{} {}", status.code, status.message))
}

/// The pods admitted by the gate that the API does not show with an address yet,
/// by uid (a pod made again under an old name is another pod).
#[derive(Debug, Default)]
pub struct Admitted(BTreeMap<String, PodInfo>);

impl Admitted {
    /// Adds the pod of `uid`.
    pub fn insert(&mut self, uid: String, pod: PodInfo) {
        self.0.insert(uid, pod);
    }

    /// Drops the pod of `uid` (its PodActor says it is gone).
    pub fn forget(&mut self, uid: &str) {
        self.0.remove(uid);
    }

    /// Drops the pods whose own PodPeer (same uid) shows their address (it takes
    /// over) or says they finished.
    pub fn prune<'a>(&mut self, peers: impl Iterator<Item = &'a PodPeer>) {
        for p in peers {
            if let Some(uid) = p.metadata.uid.as_deref()
                && let Some(pod) = self.0.get(uid)
                && (p.terminal || pod.ips.iter().any(|ip| p.ips.contains(&ip.to_string())))
            {
                self.0.remove(uid);
            }
        }
    }

    /// The pods.
    pub fn pods(&self) -> impl Iterator<Item = &PodInfo> {
        self.0.values()
    }
}

/// A policy's resourceVersion and what it compiled to.
type Version = (Option<String>, Result<Policy, String>);

/// Every NetworkPolicy compiled once per version, by (namespace, name).
#[derive(Debug, Default)]
struct Compiled(BTreeMap<(String, String), Version>);

impl Compiled {
    /// Compiles what changed in `store` since the last call.
    fn refresh(&mut self, store: &Store<NetworkPolicy>) {
        let mut seen = std::collections::BTreeSet::new();
        for p in store.state() {
            let key = (
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
            );
            let version = p.metadata.resource_version.clone();
            seen.insert(key.clone());
            if self.0.get(&key).is_some_and(|(v, _)| *v == version) {
                continue;
            }
            let compiled = netpol::compile(&p).map_err(|e| e.to_string());
            if let Err(e) = &compiled {
                tracing::warn!(policy = %format!("{}/{}", key.0, key.1), "NetworkPolicy left out: {e}");
            }
            self.0.insert(key, (version, compiled));
        }
        self.0.retain(|k, _| seen.contains(k));
    }

    /// The policies that compile, by (namespace, name).
    fn policies(&self) -> Vec<Policy> {
        self.0
            .values()
            .filter_map(|(_, c)| c.as_ref().ok().cloned())
            .collect()
    }

    /// Whether a policy of `pod`'s namespace selects it (one that does not compile
    /// counts as one: the pod waits for the sync rather than start unisolated).
    fn selects(&self, pod: &PodInfo) -> bool {
        self.0
            .iter()
            .filter(|((ns, _), _)| *ns == pod.namespace)
            .any(|(_, (_, c))| c.as_ref().map_or(true, |p| p.selects(pod)))
    }
}

/// The world the node's program is compiled from, and its local pods: every
/// PodPeer with an address (this node's are local), and the admitted pods not yet
/// shown with theirs.
pub fn world(
    policies: Vec<Policy>,
    namespaces: &Store<Namespace>,
    peers: &[std::sync::Arc<PodPeer>],
    admitted: &Admitted,
    (node, gateway): (&str, Ipv4Addr),
) -> (World, Vec<PodInfo>) {
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
    let mut pods: Vec<PodInfo> = peers.iter().filter_map(|p| p.info()).collect();
    let mut local: Vec<PodInfo> = pods
        .iter()
        .filter(|p| p.node.as_deref() == Some(node))
        .cloned()
        .collect();
    for extra in admitted.pods() {
        local.push(extra.clone());
        pods.push(extra.clone());
    }
    pods.push(kube_dns(gateway, node));
    let world = World {
        policies,
        namespaces: labels,
        pods,
    };
    (world, local)
}

/// Whether the store was listed once.
fn listed<K: kube::Resource + Clone>(store: &Store<K>) -> bool
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    store
        .wait_until_ready()
        .now_or_never()
        .is_some_and(|r| r.is_ok())
}

/// The pods waiting for the next sync.
type Waiting = Vec<(PodInfo, oneshot::Sender<Result<(), String>>)>;

/// The keeper's state between events.
struct Keeper {
    policies: Store<NetworkPolicy>,
    namespaces: Store<Namespace>,
    peers: Store<PodPeer>,
    compiled: Compiled,
    admitted: Admitted,
    waiting: Waiting,
    readiness: Readiness,
    /// Kinds the server refuses to this node, with what it said.
    refused: BTreeMap<&'static str, String>,
    conditions: ExtraConditions,
}

impl Keeper {
    /// Takes one message from a PodActor.
    fn take(&mut self, msg: Msg) {
        let a = match msg {
            Msg::Forget(uid) => return self.admitted.forget(&uid),
            Msg::Admit(a) => a,
        };
        self.readiness.policies_listed = listed(&self.policies) && listed(&self.namespaces);
        self.compiled.refresh(&self.policies);
        let verdict = admission(&self.readiness, self.compiled.selects(&a.pod));
        // A local pod from now on, until its PodActor says it is gone or its
        // PodPeer shows its address.
        self.admitted.insert(a.uid, a.pod.clone());
        // Pods that gave up waiting (their retry comes as a new message).
        self.waiting.retain(|(_, r)| !r.is_closed());
        match verdict {
            Admission::Now => {
                let _ = a.reply.send(Ok(()));
            }
            Admission::AfterSync => self.waiting.push((a.pod, a.reply)),
            Admission::Refused(why) => {
                let _ = a.reply.send(Err(why));
            }
        }
    }

    /// Takes one watch event of `kind`.
    fn event(&mut self, kind: &'static str, outcome: Result<(), watcher::Error>) {
        match outcome {
            Ok(()) => {
                if self.refused.remove(kind).is_some() {
                    tracing::info!("NetworkPolicy: the API server now serves {kind} to this node");
                }
            }
            Err(e) => {
                if let Some(why) = refusal(&e)
                    && !self.refused.contains_key(kind)
                {
                    tracing::warn!(
                        "NetworkPolicy unavailable on this node: the API server refuses {kind} ({why}); pods start unisolated"
                    );
                    self.refused.insert(kind, why);
                }
            }
        }
        self.readiness.unavailable = (!self.refused.is_empty()).then(|| {
            let list: Vec<String> = self
                .refused
                .iter()
                .map(|(k, why)| format!("{k}: {why}"))
                .collect();
            format!(
                "the API server does not serve NetworkPolicy's kinds to this node ({})",
                list.join("; ")
            )
        });
        if self.readiness.unavailable.is_some() {
            self.release();
        }
    }

    /// Answers every waiting pod by the gate's decision now that a sync was written
    /// (or NetworkPolicy turned out unavailable).
    fn release(&mut self) {
        for (pod, reply) in self.waiting.drain(..) {
            let verdict = admission(&self.readiness, self.compiled.selects(&pod));
            let _ = reply.send(match verdict {
                Admission::Refused(why) => Err(why),
                _ => Ok(()),
            });
        }
    }

    /// Publishes the node condition.
    fn report(&self) {
        if let Some(c) = condition(&self.readiness)
            && self.conditions.get(CONDITION).as_ref() != Some(&c)
        {
            self.conditions.set(CONDITION, c);
        }
    }
}

async fn keep(
    client: kube::Client,
    (node, gateway): (String, Ipv4Addr),
    conditions: ExtraConditions,
    mut messages: mpsc::Receiver<Msg>,
) {
    let (policies, policies_w) = reflector::store::<NetworkPolicy>();
    let (namespaces, namespaces_w) = reflector::store::<Namespace>();
    let (peers, peers_w) = reflector::store::<PodPeer>();
    let events = futures_util::stream::select(
        watched_reporting(&client, policies_w).map(|r| ("networkpolicies", r)),
        futures_util::stream::select(
            watched_reporting(&client, namespaces_w).map(|r| ("namespaces", r)),
            watched_reporting(&client, peers_w).map(|r| ("podpeers", r)),
        ),
    );
    let mut events = std::pin::pin!(events);
    let bridge = bridge_filtering(&System, read_sysctl);
    if let Err(e) = &bridge {
        tracing::warn!("NetworkPolicy: {e}");
    }
    let mut k = Keeper {
        policies,
        namespaces,
        peers,
        compiled: Compiled::default(),
        admitted: Admitted::default(),
        waiting: Vec::new(),
        readiness: Readiness {
            bridge,
            ..Readiness::default()
        },
        refused: BTreeMap::new(),
        conditions,
    };
    k.report();
    let work = std::sync::Arc::new(std::sync::Mutex::new((
        PolicyProxy::new(System),
        Compiler::default(),
    )));
    // After a failed transaction: when to retry, and the wait that led there.
    let mut retry: Option<(tokio::time::Instant, Duration)> = None;
    loop {
        let retry_at = retry.map_or_else(
            || tokio::time::Instant::now() + Duration::from_secs(3600),
            |(at, _)| at,
        );
        tokio::select! {
            e = events.next() => match e {
                Some((kind, outcome)) => k.event(kind, outcome),
                None => return,
            },
            m = messages.recv() => match m {
                Some(m) => k.take(m),
                None => return,
            },
            () = tokio::time::sleep_until(retry_at), if retry.is_some() => {}
        }
        // Gather what else arrives meanwhile, then program once (soon when a pod
        // waits to start).
        let settle = if k.waiting.is_empty() {
            SETTLE
        } else {
            ADMIT_SETTLE
        };
        let deadline = tokio::time::sleep(settle);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                e = events.next() => match e {
                    Some((kind, outcome)) => k.event(kind, outcome),
                    None => return,
                },
                m = messages.recv() => if let Some(m) = m { k.take(m) },
                () = &mut deadline => break,
            }
        }
        k.report();
        // Nothing is written before every kind was listed once.
        if !(listed(&k.policies) && listed(&k.namespaces) && listed(&k.peers)) {
            continue;
        }
        if k.readiness.bridge.is_err() {
            // br_netfilter may have been loaded since.
            k.readiness.bridge = bridge_filtering(&System, read_sysctl);
        }
        k.readiness.policies_listed = true;
        k.compiled.refresh(&k.policies);
        let peers = k.peers.state();
        k.admitted.prune(peers.iter().map(|p| p.as_ref()));
        let (w, local) = world(
            k.compiled.policies(),
            &k.namespaces,
            &peers,
            &k.admitted,
            (&node, gateway),
        );
        let started = Instant::now();
        let work = work.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut guard = work
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (proxy, compiler) = &mut *guard;
            let program = compiler.compile(&w, &local, gateway);
            let clauses = program.clauses();
            proxy.sync(program).map(|s| (s, clauses))
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
        match outcome {
            Ok((synced, clauses)) => {
                retry = None;
                k.readiness.synced = Some(Ok(()));
                k.release();
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
            Err(e) => {
                // The proxy forgot what it had programmed: the retry is a full sync.
                let wait = backoff(retry.map(|(_, d)| d));
                retry = Some((tokio::time::Instant::now() + wait, wait));
                super::metrics::NETPOL_SYNC_FAILURES.inc();
                tracing::warn!(
                    retry_in_s = wait.as_secs(),
                    "NetworkPolicy not programmed: {e}"
                );
                k.readiness.synced = Some(Err(format!("the last sync failed: {e}")));
            }
        }
        k.report();
    }
}

#[cfg(test)]
mod tests;

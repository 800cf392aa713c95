//! Node lifecycle as actors: a [`NodeLifecycleSupervisor`] watches Nodes, their
//! Leases and the pods bound to them, and every 5 s hands each node's
//! [`NodeLifecycleActor`] (in the registry) its whole view — a restarted actor needs
//! nothing else; the actor marks its node unreachable (conditions
//! Unknown, `unreachable:NoExecute` taint, `NodeNotReady` event), evicts the pods whose
//! toleration ran out (at most [`EVICTIONS_PER_CHECK`] per check, none while every
//! node is unreachable), and removes the taint when the node renews again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use actix::prelude::*;
use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use rk8s_supervision::{Actors, Handle};

use crate::events::{Involved, record};
use crate::node_lifecycle::{NodeAction, NodeView, UNREACHABLE, eviction_due, node_action};

/// How often nodes are checked (kube-controller-manager's `--node-monitor-period`).
pub const MONITOR_PERIOD: Duration = Duration::from_secs(5);
/// Most pods one node's actor evicts per check.
pub const EVICTIONS_PER_CHECK: usize = 10;

/// The lifecycle settings.
#[derive(Clone, Copy, Debug)]
pub struct LifecycleConfig {
    /// A node silent for longer is unreachable (default 40 s).
    pub grace: Duration,
    /// How long pods without a toleration of their own stay on an unreachable node
    /// (default 300 s).
    pub default_toleration_seconds: i64,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            grace: Duration::from_secs(40),
            default_toleration_seconds: 300,
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Check {
    node: Node,
    view: NodeView,
    pods: Vec<Pod>,
    may_evict: bool,
}

/// The kind the actors are listed under.
const KIND: &str = "Node";

/// One node's lifecycle actor.
pub struct NodeLifecycleActor {
    client: kube::Client,
    me: Handle<Self>,
    config: LifecycleConfig,
    busy: bool,
}

impl Actor for NodeLifecycleActor {
    type Context = Context<Self>;
}

fn conditions_unknown(node: &Node, now: jiff::Timestamp) -> serde_json::Value {
    let conditions: Vec<serde_json::Value> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            serde_json::json!({
                "type": c.type_, "status": "Unknown", "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.",
                "lastHeartbeatTime": c.last_heartbeat_time,
                "lastTransitionTime": Time(now),
            })
        })
        .collect();
    serde_json::json!({"status": {"conditions": conditions}})
}

async fn act(client: kube::Client, config: LifecycleConfig, check: Check) {
    let now = jiff::Timestamp::now();
    let name = check.view.name.clone();
    let nodes: Api<Node> = Api::all(client.clone());
    let about = Involved::of("v1", "Node", &check.node.metadata);
    let grace = jiff::SignedDuration::try_from(config.grace).unwrap_or_default();
    let taints: Vec<Taint> = check
        .node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let patch_taints = async |taints: Vec<Taint>| {
        let patch = serde_json::json!({"spec": {"taints": taints},
            "metadata": {"resourceVersion": check.node.metadata.resource_version}});
        let patched = nodes
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        rk8s_supervision::wrote();
        patched
    };
    match node_action(&check.view, now, grace) {
        NodeAction::MarkUnreachable => {
            // The taint first: its patch is conditional on the node's resourceVersion,
            // which the status patch would change.
            if check.view.tainted_at.is_none() {
                let mut with = taints.clone();
                with.push(Taint {
                    key: UNREACHABLE.into(),
                    effect: "NoExecute".into(),
                    value: None,
                    time_added: Some(Time(now)),
                });
                match patch_taints(with).await {
                    Ok(_) => {
                        tracing::warn!(node = %name, "node unreachable: tainted");
                        let message = format!("Node {name} status is now: NodeNotReady");
                        record(&client, about, "Normal", "NodeNotReady", &message).await;
                    }
                    Err(e) => tracing::debug!(node = %name, "tainting: {e}"),
                }
            }
            let status = conditions_unknown(&check.node, now);
            let patched = nodes
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await;
            rk8s_supervision::wrote();
            if let Err(e) = patched {
                tracing::debug!(node = %name, "conditions: {e}");
            }
        }
        NodeAction::Recovered => {
            let without: Vec<Taint> = taints
                .into_iter()
                .filter(|t| t.key != UNREACHABLE)
                .collect();
            match patch_taints(without).await {
                Ok(_) => tracing::info!(node = %name, "node renews again: taint removed"),
                Err(e) => tracing::debug!(node = %name, "untainting: {e}"),
            }
        }
        NodeAction::None => {}
    }
    let Some(tainted_at) = check.view.tainted_at.filter(|_| check.may_evict) else {
        return;
    };
    let due = check.pods.iter().filter(|p| {
        p.metadata.deletion_timestamp.is_none()
            && eviction_due(p, tainted_at, config.default_toleration_seconds)
                .is_some_and(|d| d <= now)
    });
    for pod in due.take(EVICTIONS_PER_CHECK) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        let deleted = pods.delete(&pod_name, &params).await;
        rk8s_supervision::wrote();
        match deleted {
            Ok(_) => {
                let message = format!("Marking for deletion Pod {ns}/{pod_name}");
                let about = Involved::of("v1", "Pod", &pod.metadata);
                record(&client, about, "Normal", "TaintManagerEviction", &message).await;
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => tracing::warn!(pod = %pod_name, "evicting: {e}"),
        }
    }
}

impl Handler<Check> for NodeLifecycleActor {
    type Result = ();

    fn handle(&mut self, check: Check, ctx: &mut Self::Context) {
        self.me.received();
        if self.busy {
            return;
        }
        self.busy = true;
        let work = self
            .me
            .reconcile(act(self.client.clone(), self.config, check));
        let started = std::time::Instant::now();
        ctx.spawn(work.into_actor(self).map(move |(), act, _ctx| {
            crate::metrics::reconciled("Node", started.elapsed(), false);
            act.busy = false;
        }));
    }
}

enum Change {
    Node(Box<Result<Event<Node>, watcher::Error>>),
    Lease(Box<Result<Event<Lease>, watcher::Error>>),
    Pod(Box<Result<Event<Pod>, watcher::Error>>),
}

/// Watches nodes, leases and bound pods; runs one actor per node.
pub struct NodeLifecycleSupervisor {
    client: kube::Client,
    config: LifecycleConfig,
    nodes: BTreeMap<String, Node>,
    leases: HashMap<String, jiff::Timestamp>,
    pods: HashMap<String, BTreeMap<String, Pod>>,
    /// The nodes a re-list has shown so far.
    listing: Option<HashSet<String>>,
    synced: [bool; 3],
    registry: Actors,
}

impl NodeLifecycleSupervisor {
    /// A supervisor talking to the API through `client`, running its actors in
    /// `registry`.
    pub fn new(client: kube::Client, config: LifecycleConfig, registry: Actors) -> Self {
        NodeLifecycleSupervisor {
            client,
            registry,
            config,
            nodes: BTreeMap::new(),
            leases: HashMap::new(),
            pods: HashMap::new(),
            listing: None,
            synced: [false; 3],
        }
    }

    /// A re-list of nodes ended: those it did not show went meanwhile, and so do
    /// their actors (and any left from before a restart).
    fn nodes_listed(&mut self, listed: HashSet<String>) {
        self.nodes.retain(|name, _| listed.contains(name));
        for name in self.registry.names(KIND) {
            if !self.nodes.contains_key(&name) {
                self.registry.stop(KIND, &name);
            }
        }
    }

    fn check_all(&mut self) {
        if !self.synced.iter().all(|s| *s) {
            return;
        }
        let views: Vec<(Node, NodeView)> = self
            .nodes
            .values()
            .map(|n| {
                let name = n.metadata.name.clone().unwrap_or_default();
                (n.clone(), NodeView::of(n, self.leases.get(&name).copied()))
            })
            .collect();
        // Every node unreachable: the control plane is the one cut off; evict nothing.
        let now = jiff::Timestamp::now();
        let grace = jiff::SignedDuration::try_from(self.config.grace).unwrap_or_default();
        let all_silent = !views.is_empty()
            && views
                .iter()
                .all(|(_, v)| v.heartbeat.is_some_and(|h| now.duration_since(h) > grace));
        for (node, view) in views {
            let pods = self
                .pods
                .get(&view.name)
                .map(|p| p.values().cloned().collect())
                .unwrap_or_default();
            let (client, config) = (self.client.clone(), self.config);
            let actor =
                self.registry
                    .get_or_start(KIND, &view.name, move |me| NodeLifecycleActor {
                        client: client.clone(),
                        me,
                        config,
                        busy: false,
                    });
            actor.do_send(Check {
                node,
                view,
                pods,
                may_evict: !all_silent,
            });
        }
    }

    fn pod_event(&mut self, pod: Pod, deleted: bool) {
        let key = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or_default()
        );
        for pods in self.pods.values_mut() {
            pods.remove(&key);
        }
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        if let (false, Some(node)) = (deleted, node) {
            self.pods.entry(node).or_default().insert(key, pod);
        }
    }
}

impl Actor for NodeLifecycleSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let nodes = watcher::watcher(Api::<Node>::all(self.client.clone()), Default::default())
            .default_backoff()
            .map(|e| Change::Node(Box::new(e)));
        let leases = watcher::watcher(
            Api::<Lease>::namespaced(self.client.clone(), "kube-node-lease"),
            Default::default(),
        )
        .default_backoff()
        .map(|e| Change::Lease(Box::new(e)));
        let pods = watcher::watcher(
            Api::<Pod>::all(self.client.clone()),
            watcher::Config::default().fields("spec.nodeName!="),
        )
        .default_backoff()
        .map(|e| Change::Pod(Box::new(e)));
        ctx.add_stream(futures_util::stream::select(
            nodes,
            futures_util::stream::select(leases, pods),
        ));
        ctx.run_interval(MONITOR_PERIOD, |act, _ctx| act.check_all());
        tracing::info!(grace = ?self.config.grace, "node lifecycle controller started");
    }
}

impl StreamHandler<Change> for NodeLifecycleSupervisor {
    fn handle(&mut self, change: Change, _ctx: &mut Self::Context) {
        match change {
            Change::Node(e) => match *e {
                Ok(Event::InitApply(n) | Event::Apply(n)) => {
                    let name = n.metadata.name.clone().unwrap_or_default();
                    if let Some(listing) = self.listing.as_mut() {
                        listing.insert(name.clone());
                    }
                    self.nodes.insert(name, n);
                }
                Ok(Event::Delete(n)) => {
                    let name = n.metadata.name.clone().unwrap_or_default();
                    self.nodes.remove(&name);
                    self.registry.stop(KIND, &name);
                }
                Ok(Event::InitDone) => {
                    if let Some(listed) = self.listing.take() {
                        self.nodes_listed(listed);
                    }
                    self.synced[0] = true;
                }
                Ok(Event::Init) => self.listing = Some(HashSet::new()),
                Err(e) => tracing::warn!("watching nodes: {e}"),
            },
            Change::Lease(e) => match *e {
                Ok(Event::InitApply(l) | Event::Apply(l)) => {
                    if let Some(t) = l.spec.and_then(|s| s.renew_time) {
                        self.leases.insert(l.metadata.name.unwrap_or_default(), t.0);
                    }
                }
                Ok(Event::Delete(l)) => {
                    self.leases
                        .remove(l.metadata.name.as_deref().unwrap_or_default());
                }
                Ok(Event::InitDone) => self.synced[1] = true,
                Ok(Event::Init) => {}
                Err(e) => tracing::warn!("watching leases: {e}"),
            },
            Change::Pod(e) => match *e {
                Ok(Event::InitApply(p) | Event::Apply(p)) => self.pod_event(p, false),
                Ok(Event::Delete(p)) => self.pod_event(p, true),
                Ok(Event::InitDone) => self.synced[2] = true,
                Ok(Event::Init) => {}
                Err(e) => tracing::warn!("watching pods: {e}"),
            },
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

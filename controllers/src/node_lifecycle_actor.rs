//! Node lifecycle as actors: a [`NodeLifecycleSupervisor`] follows Nodes, their
//! Leases and the pods bound to them through the shared informers, and every 5 s hands each node's
//! [`NodeLifecycleActor`] (in the registry) its whole view — a restarted actor needs
//! nothing else; the actor marks its node unreachable (conditions
//! Unknown, `unreachable:NoExecute` taint, `NodeNotReady` event), evicts the pods whose
//! toleration ran out (at most [`EVICTIONS_PER_CHECK`] per check, none while every
//! node is unreachable), and removes the taint when the node renews again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use rk8s_informers::{Informer, Informers, Notice};
use rk8s_supervision::{Actors, Handle};

use crate::node_lifecycle::{NodeAction, NodeView, UNREACHABLE, eviction_due, node_action};
use rk8s_events::{Involved, record};

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
    node: Arc<Node>,
    view: NodeView,
    pods: Vec<Arc<Pod>>,
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
                        let silent = check.view.heartbeat.map(|h| now.duration_since(h));
                        tracing::warn!(node = %name, silent_for = ?silent, "node unreachable: tainted");
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

/// The namespace of the nodes' Leases.
const NODE_LEASES: &str = "kube-node-lease";

/// Follows nodes, leases and bound pods; runs one actor per node.
pub struct NodeLifecycleSupervisor {
    client: kube::Client,
    config: LifecycleConfig,
    informers: (Informer<Node>, Informer<Lease>, Informer<Pod>),
    nodes: BTreeMap<String, Arc<Node>>,
    leases: HashMap<String, jiff::Timestamp>,
    /// The bound pods by node, then by `NAMESPACE/NAME`.
    pods: HashMap<String, BTreeMap<String, Arc<Pod>>>,
    /// The node of each bound pod.
    pod_nodes: HashMap<String, String>,
    synced: [bool; 3],
    registry: Actors,
}

impl NodeLifecycleSupervisor {
    /// A supervisor following its kinds through `informers`, writing through
    /// `client`, running its actors in `registry`.
    pub fn new(
        client: kube::Client,
        informers: &Informers,
        config: LifecycleConfig,
        registry: Actors,
    ) -> Self {
        NodeLifecycleSupervisor {
            client,
            registry,
            config,
            informers: (informers.get(), informers.get(), informers.get()),
            nodes: BTreeMap::new(),
            leases: HashMap::new(),
            pods: HashMap::new(),
            pod_nodes: HashMap::new(),
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
        let views: Vec<(Arc<Node>, NodeView)> = self
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

    fn pod_event(&mut self, pod: Arc<Pod>, deleted: bool) {
        let key = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or_default()
        );
        if let Some(was) = self.pod_nodes.remove(&key)
            && let Some(pods) = self.pods.get_mut(&was)
        {
            pods.remove(&key);
            if pods.is_empty() {
                self.pods.remove(&was);
            }
        }
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        if let (false, Some(node)) = (deleted, node.filter(|n| !n.is_empty())) {
            self.pod_nodes.insert(key.clone(), node.clone());
            self.pods.entry(node).or_default().insert(key, pod);
        }
    }

    fn node_applied(&mut self, n: Arc<Node>) {
        self.nodes
            .insert(n.metadata.name.clone().unwrap_or_default(), n);
    }

    fn lease_changed(&mut self, l: &Lease, deleted: bool) {
        if l.metadata.namespace.as_deref() != Some(NODE_LEASES) {
            return;
        }
        let name = l.metadata.name.clone().unwrap_or_default();
        if deleted {
            self.leases.remove(&name);
        } else if let Some(t) = l.spec.as_ref().and_then(|s| s.renew_time.as_ref()) {
            self.leases.insert(name, t.0);
        }
    }
}

impl Actor for NodeLifecycleSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.informers.0.subscribe(ctx.address().recipient());
        self.informers.1.subscribe(ctx.address().recipient());
        self.informers.2.subscribe(ctx.address().recipient());
        ctx.run_interval(MONITOR_PERIOD, |act, _ctx| act.check_all());
        tracing::info!(grace = ?self.config.grace, "node lifecycle controller started");
    }
}

impl Handler<Notice<Node>> for NodeLifecycleSupervisor {
    type Result = ();

    fn handle(&mut self, notice: Notice<Node>, _ctx: &mut Self::Context) {
        match notice {
            Notice::Listed(all) => {
                let listed = all
                    .iter()
                    .map(|n| n.metadata.name.clone().unwrap_or_default())
                    .collect();
                all.iter().for_each(|n| self.node_applied(n.clone()));
                self.nodes_listed(listed);
                self.synced[0] = true;
            }
            Notice::Applied(n) => self.node_applied(n),
            Notice::Deleted(n) => {
                let name = n.metadata.name.clone().unwrap_or_default();
                self.nodes.remove(&name);
                self.registry.stop(KIND, &name);
            }
        }
    }
}

impl Handler<Notice<Lease>> for NodeLifecycleSupervisor {
    type Result = ();

    fn handle(&mut self, notice: Notice<Lease>, _ctx: &mut Self::Context) {
        if notice.for_each(|l, deleted| self.lease_changed(&l, deleted)) {
            self.synced[1] = true;
        }
    }
}

impl Handler<Notice<Pod>> for NodeLifecycleSupervisor {
    type Result = ();

    fn handle(&mut self, notice: Notice<Pod>, _ctx: &mut Self::Context) {
        if notice.for_each(|p, deleted| self.pod_event(p, deleted)) {
            self.synced[2] = true;
        }
    }
}

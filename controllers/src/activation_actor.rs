//! The activation controller (`activation-controller`, rk8s' own) as an actor:
//! while some Deployment can be woken, it keeps one activity stream per Ready node
//! that has an agent (`GET
//! /api/v1/nodes/{name}/proxy/ingress/activity` through the API server, which dials
//! only a node whose certificate names it; reconnected with backoff), follows
//! Deployments, Services, HPAs and Nodes through the shared informers and, every
//! [`TICK`] and at once when a node reports a waiting request, decides
//! ([`crate::activation`]) and acts with its own credential: the Services'
//! `scale.rk8s.io/activation-timeout` annotation (merge patch), the Deployments'
//! `scale` subresource (merge patch carrying the resourceVersion read: a 409 is
//! decided again on the informer's newer copy), and the Events `ScaledFromZero`,
//! `ScaledToZero` and, once per resourceVersion, `InvalidAnnotation`; HPAs with
//! `minReplicas: 0` get their activity floors ([`ActivityFloor`]). Nodes gain
//! no write: a node that lies can only wake what is wakeable.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::BytesMut;
use http_body_util::BodyExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::Api;
use kube::api::{Patch, PatchParams};
use rk8s_api::activation::{ACTIVATION_TIMEOUT, ActivityLine, LineKind};
use rk8s_informers::{Informer, Informers, Notice};
use rk8s_supervision::Handle;

use crate::activation::{
    Action, Activity, Floor, Key, ServiceChange, Target, decide, floors, scaled_up,
    service_changes, targets,
};
use crate::hpa_actor::{self, ActivityFloor, HpaActor};
use rk8s_events::{Involved, record};

/// How often everything is decided (and the streams matched to the Ready nodes
/// while something can be woken).
pub const TICK: Duration = Duration::from_secs(1);
/// The longest line a node may send.
pub const MAX_LINE: usize = 1 << 20;
/// The longest a stream takes to open.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// The first and the longest wait before a stream is opened again.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// A line from a node's stream (sent and awaited: a stream has at most one line
/// in the mailbox, so a fast node cannot grow the leader's memory).
#[derive(Message)]
#[rtype(result = "()")]
struct Line {
    node: String,
    /// The stream's generation: a line of a stream closed since is dropped.
    generation: u64,
    line: ActivityLine,
}

/// A node's stream ended.
#[derive(Message)]
#[rtype(result = "()")]
struct Ended {
    node: String,
    /// The stream's generation.
    generation: u64,
}

/// Wakes Deployments scaled to zero when the nodes hold requests for them, and
/// puts idle ones back to zero.
pub struct ActivationController {
    client: kube::Client,
    deployments: Informer<Deployment>,
    services: Informer<Service>,
    hpas: Informer<HorizontalPodAutoscaler>,
    nodes: Informer<Node>,
    activity: Activity,
    /// The followed nodes' streams, with their generation.
    streams: BTreeMap<String, (SpawnHandle, u64)>,
    /// The generation of the next stream opened.
    generation: u64,
    /// When each target was last woken, or scaled up from zero by someone else.
    woken: BTreeMap<Key, Instant>,
    /// Each target's replicas as last seen (to notice scale-ups from zero).
    replicas: BTreeMap<Key, i32>,
    warned: BTreeSet<(Key, String)>,
    busy: bool,
    /// A waiting line came while a batch was under way: decide again after it.
    again: bool,
    /// Where the HPAs' actors run (for their activity floors).
    registry: rk8s_supervision::Actors,
    me: Handle<Self>,
}

impl ActivationController {
    /// A controller reading through `informers` and writing through `client`; `me`
    /// is its handle.
    pub fn new(
        client: kube::Client,
        informers: &Informers,
        registry: rk8s_supervision::Actors,
        me: Handle<Self>,
    ) -> Self {
        ActivationController {
            client,
            deployments: informers.get(),
            services: informers.get(),
            hpas: informers.get(),
            nodes: informers.get(),
            activity: Activity::new(Instant::now()),
            streams: BTreeMap::new(),
            generation: 0,
            woken: BTreeMap::new(),
            replicas: BTreeMap::new(),
            warned: BTreeSet::new(),
            busy: false,
            again: false,
            registry,
            me,
        }
    }

    /// The names of the Ready nodes that have an agent (not simulated ones: their
    /// addresses are made up).
    fn ready_nodes(&self) -> BTreeSet<String> {
        self.nodes
            .list()
            .iter()
            .filter(|n| !rk8s_api::net::is_simulated_node(n.metadata.labels.as_ref()))
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .filter_map(|n| n.metadata.name.clone())
            .collect()
    }

    /// One stream per node of `followed` (the Ready nodes with an agent while some
    /// Deployment can be woken, else none: a cluster that does not scale from zero
    /// keeps no stream to every node): new ones opened, others closed.
    fn follow_nodes(&mut self, followed: &BTreeSet<String>, ctx: &mut Context<Self>) {
        let gone: Vec<String> = self
            .streams
            .keys()
            .filter(|n| !followed.contains(*n))
            .cloned()
            .collect();
        for node in gone {
            if let Some((h, _)) = self.streams.remove(&node) {
                ctx.cancel_future(h);
            }
        }
        // What the nodes no longer followed said holds nothing (their lines still in
        // the mailbox are dropped by their generation).
        self.activity.retain_nodes(followed);
        for node in followed {
            if !self.streams.contains_key(node) {
                self.generation += 1;
                let generation = self.generation;
                let follow = follow(self.client.clone(), node.clone(), generation, ctx.address());
                let h = ctx.spawn(follow.into_actor(self));
                self.streams.insert(node.clone(), (h, generation));
            }
        }
    }

    /// Decides and carries out what follows (one batch at a time).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.busy
            || !self.deployments.listed()
            || !self.services.listed()
            || !self.hpas.listed()
            || !self.nodes.listed()
        {
            return;
        }
        let services = self.services.list();
        let targets = targets(&self.deployments.list(), &services, &self.hpas.list());
        let followed: BTreeSet<String> = if targets.is_empty() {
            BTreeSet::new()
        } else {
            self.ready_nodes()
        };
        self.follow_nodes(&followed, ctx);
        let changes = service_changes(&targets, &services);
        let now = Instant::now();
        self.activity.track(
            targets
                .iter()
                .flat_map(|t| {
                    t.services
                        .iter()
                        .map(|s| (t.deployment.0.clone(), s.clone()))
                })
                .collect(),
        );
        for k in scaled_up(&targets, &mut self.replicas) {
            self.woken.insert(k, now);
        }
        self.woken.retain(|k, _| self.replicas.contains_key(k));
        let unknown = self
            .activity
            .unknown(followed.iter().map(String::as_str), now);
        let actions = decide(&targets, &self.activity, unknown, &self.woken, now);
        let warnings = self.warnings(&targets);
        self.send_floors(&floors(&targets, &self.activity, &self.woken, now), now);
        if changes.is_empty() && actions.is_empty() && warnings.is_empty() {
            return;
        }
        self.busy = true;
        let involved: BTreeMap<Key, Involved> = targets
            .iter()
            .filter_map(|t| {
                let d = self
                    .deployments
                    .get(&format!("{}/{}", t.deployment.0, t.deployment.1))?;
                Some((
                    t.deployment.clone(),
                    Involved::of("apps/v1", "Deployment", &d.metadata),
                ))
            })
            .collect();
        let client = self.client.clone();
        let work = self.me.reconcile(async move {
            carry_out(&client, &changes, &actions, &warnings, &involved).await
        });
        ctx.spawn(work.into_actor(self).map(move |woken, act, ctx| {
            act.busy = false;
            for k in woken {
                act.woken.insert(k, now);
            }
            if std::mem::take(&mut act.again) {
                act.flush(ctx);
            }
        }));
    }

    /// Tells the HPAs' actors their floors.
    fn send_floors(&self, floors: &[Floor], now: Instant) {
        let wall = jiff::Timestamp::now();
        for f in floors {
            let name = format!("{}/{}", f.hpa.0, f.hpa.1);
            let Some(actor) = self.registry.get::<HpaActor>(hpa_actor::KIND, &name) else {
                continue;
            };
            let left = jiff::SignedDuration::try_from(f.until.saturating_duration_since(now))
                .unwrap_or(jiff::SignedDuration::ZERO);
            actor.do_send(ActivityFloor {
                replicas: f.replicas,
                until: wall.saturating_add(left).unwrap_or(wall),
            });
        }
    }

    /// The bad annotations not reported yet for the Deployment's resourceVersion.
    fn warnings(&mut self, targets: &[Target]) -> Vec<(Key, String)> {
        let mut out = Vec::new();
        for t in targets {
            if t.problems.is_empty() {
                continue;
            }
            let seen = (
                t.deployment.clone(),
                t.resource_version.clone().unwrap_or_default(),
            );
            if self.warned.insert(seen) {
                for p in &t.problems {
                    out.push((t.deployment.clone(), p.to_string()));
                }
            }
        }
        if self.warned.len() > 10_000 {
            self.warned.clear();
        }
        out
    }
}

/// Writes the Services' annotations, the scale changes and the Events; returns the
/// Deployments woken.
async fn carry_out(
    client: &kube::Client,
    changes: &[ServiceChange],
    actions: &[Action],
    warnings: &[(Key, String)],
    involved: &BTreeMap<Key, Involved>,
) -> Vec<Key> {
    for c in changes {
        let api: Api<Service> = Api::namespaced(client.clone(), &c.service.0);
        let patch =
            serde_json::json!({"metadata": {"annotations": {ACTIVATION_TIMEOUT: c.timeout}}});
        if let Err(e) = api
            .patch(&c.service.1, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!(service = ?c.service, "activation annotation: {e}");
        }
    }
    let mut woken = Vec::new();
    for a in actions {
        let (deployment, replicas, resource_version, reason, message) = match a {
            Action::Wake {
                deployment,
                replicas,
                resource_version,
            } => (
                deployment,
                *replicas,
                resource_version,
                "ScaledFromZero",
                format!("scaled from 0 to {replicas}: a request through the Ingress waits"),
            ),
            Action::Sleep {
                deployment,
                resource_version,
            } => (
                deployment,
                0,
                resource_version,
                "ScaledToZero",
                "scaled to 0: no request through the Ingress for its idle-after".to_string(),
            ),
        };
        let api: Api<Deployment> = Api::namespaced(client.clone(), &deployment.0);
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": resource_version},
            "spec": {"replicas": replicas}
        });
        match api
            .patch_scale(
                &deployment.1,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {
                tracing::info!(deployment = ?deployment, replicas, "{reason}");
                if replicas > 0 {
                    woken.push(deployment.clone());
                }
                if let Some(about) = involved.get(deployment) {
                    record(client, about.clone(), "Normal", reason, &message).await;
                }
            }
            // Changed since it was read: decided again on the newer copy.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => tracing::warn!(deployment = ?deployment, "scale from/to zero: {e}"),
        }
    }
    for (deployment, message) in warnings {
        if let Some(about) = involved.get(deployment) {
            record(
                client,
                about.clone(),
                "Warning",
                "InvalidAnnotation",
                message,
            )
            .await;
        }
    }
    woken
}

/// Follows `node`'s activity stream, telling `to` each line and each end, opened
/// again with backoff until the future is dropped.
async fn follow(
    client: kube::Client,
    node: String,
    generation: u64,
    to: Addr<ActivationController>,
) {
    let mut wait = BACKOFF.0;
    loop {
        let opened = Instant::now();
        let why = read_stream(&client, &node, generation, &to).await;
        to.do_send(Ended {
            node: node.clone(),
            generation,
        });
        tracing::debug!(node, "activity stream ended: {why}");
        if opened.elapsed() > BACKOFF.1 {
            wait = BACKOFF.0;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(BACKOFF.1);
    }
}

/// Reads one stream of `node` to its end (or a silence of [`crate::activation::STALE`]);
/// why it ended.
async fn read_stream(
    client: &kube::Client,
    node: &str,
    generation: u64,
    to: &Addr<ActivationController>,
) -> String {
    let uri = format!("/api/v1/nodes/{node}/proxy/ingress/activity");
    let Ok(request) = http::Request::get(uri).body(kube::client::Body::empty()) else {
        return "bad request".into();
    };
    let response = match tokio::time::timeout(OPEN_TIMEOUT, client.send(request)).await {
        Err(_) => return "timed out opening".into(),
        Ok(Err(e)) => return e.to_string(),
        Ok(Ok(r)) => r,
    };
    if !response.status().is_success() {
        return format!("answered {}", response.status());
    }
    let mut body = response.into_body();
    let mut buffer = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(crate::activation::STALE, body.frame()).await {
            Err(_) => return "silent too long".into(),
            Ok(None) => return "closed".into(),
            Ok(Some(Err(e))) => return e.to_string(),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buffer.extend_from_slice(&data);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let text = buffer.split_to(end + 1);
            let line = match serde_json::from_slice::<ActivityLine>(&text[..end]) {
                Ok(line) => line,
                Err(e) => return format!("a line that is not activity: {e}"),
            };
            let line = Line {
                node: node.to_string(),
                generation,
                line,
            };
            if to.send(line).await.is_err() {
                return "the controller stopped".into();
            }
        }
        if buffer.len() > MAX_LINE {
            return "a line too long".into();
        }
    }
}

impl Actor for ActivationController {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.deployments.subscribe(ctx.address().recipient());
        self.services.subscribe(ctx.address().recipient());
        self.hpas.subscribe(ctx.address().recipient());
        self.nodes.subscribe(ctx.address().recipient());
        ctx.run_interval(TICK, |act, ctx| act.flush(ctx));
        tracing::info!("activation controller started");
    }
}

impl Handler<Line> for ActivationController {
    type Result = ();

    fn handle(&mut self, msg: Line, ctx: &mut Self::Context) {
        self.me.received();
        if self.streams.get(&msg.node).map(|s| s.1) != Some(msg.generation) {
            return;
        }
        let demand = msg.line.kind == LineKind::Waiting;
        self.activity.observe(&msg.node, &msg.line, Instant::now());
        if demand {
            self.again |= self.busy;
            self.flush(ctx);
        }
    }
}

impl Handler<Ended> for ActivationController {
    type Result = ();

    fn handle(&mut self, msg: Ended, _: &mut Self::Context) {
        if self.streams.get(&msg.node).map(|s| s.1) == Some(msg.generation) {
            self.activity.down(&msg.node);
        }
    }
}

impl Handler<Notice<Deployment>> for ActivationController {
    type Result = ();

    fn handle(&mut self, _: Notice<Deployment>, _: &mut Self::Context) {
        self.me.received();
    }
}

impl Handler<Notice<Service>> for ActivationController {
    type Result = ();

    fn handle(&mut self, _: Notice<Service>, _: &mut Self::Context) {
        self.me.received();
    }
}

impl Handler<Notice<HorizontalPodAutoscaler>> for ActivationController {
    type Result = ();

    fn handle(&mut self, _: Notice<HorizontalPodAutoscaler>, _: &mut Self::Context) {
        self.me.received();
    }
}

impl Handler<Notice<Node>> for ActivationController {
    type Result = ();

    fn handle(&mut self, _: Notice<Node>, _: &mut Self::Context) {
        // The streams follow the nodes at the next tick: every node's change
        // walking every node would cost 5,000 × 5,000 as a large cluster registers.
        self.me.received();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use http_body_util::Full;
    use hyper_util::rt::TokioIo;

    /// An API server answering 409 to every scale write and `{}` to the rest, and
    /// the requests it got.
    async fn conflicting_api() -> (kube::Client, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = log.clone();
                let service = hyper::service::service_fn(move |req: http::Request<_>| {
                    let what = format!("{} {}", req.method(), req.uri().path());
                    log.lock().unwrap().push(what.clone());
                    async move {
                        let (code, body) = if what.ends_with("/scale") {
                            let status = serde_json::json!({"kind": "Status",
                                "apiVersion": "v1", "status": "Failure", "code": 409,
                                "reason": "Conflict", "message": "the object has been modified"});
                            (409, status)
                        } else {
                            (201, serde_json::json!({}))
                        };
                        let mut r =
                            http::Response::new(Full::new(bytes::Bytes::from(body.to_string())));
                        *r.status_mut() = http::StatusCode::from_u16(code).unwrap();
                        r.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/json"),
                        );
                        Ok::<_, Infallible>(r)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        let config = kube::Config::new(format!("http://{at}").parse().unwrap());
        (kube::Client::try_from(config).unwrap(), seen)
    }

    #[tokio::test]
    async fn a_scale_write_refused_409_is_no_wake_and_no_event() {
        let (client, seen) = conflicting_api().await;
        let deployment: Key = ("default".into(), "fn".into());
        let actions = [Action::Wake {
            deployment: deployment.clone(),
            replicas: 1,
            resource_version: Some("7".into()),
        }];
        let meta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("fn".into()),
            namespace: Some("default".into()),
            ..Default::default()
        };
        let involved = [(deployment, Involved::of("apps/v1", "Deployment", &meta))].into();
        let woken = carry_out(&client, &[], &actions, &[], &involved).await;
        assert!(
            woken.is_empty(),
            "decided again on the newer copy, not woken"
        );
        assert_eq!(
            *seen.lock().unwrap(),
            ["PATCH /apis/apps/v1/namespaces/default/deployments/fn/scale"],
            "no ScaledFromZero Event"
        );
    }
}

//! NodeActor: watches the pods bound to this node (`spec.nodeName`, re-listing on 410
//! as kube-runtime's watcher does), keeps one supervised PodActor per pod, renews the
//! node's Lease and posts its status. Restarted by its supervisor, it re-lists and
//! re-adopts: the runtime keeps the pods; nothing about them lives only in the actor.

use rk8s_controllers::chaos::{Actors, Tracker};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use actix::prelude::*;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use rk8s_runtime::pod::PodRuntime;

use super::pod_actor::{self, PodActor};
use super::registration::{self, NodeInfo};

/// How the pod watch retries while the control plane is away: from 0.5 s, doubling
/// up to 4 s (kube-runtime's default grows to 30 s, which would leave a node up to half
/// a minute behind after an outage).
fn watch_backoff() -> kube::runtime::utils::ResetTimerBackoff<watcher::ExponentialBackoff> {
    let exponential = backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(500))
        .with_max_delay(std::time::Duration::from_secs(4))
        .with_jitter()
        .without_max_times();
    kube::runtime::utils::ResetTimerBackoff::new(
        exponential.into(),
        std::time::Duration::from_secs(60),
    )
}

/// Ends the actor abruptly, as a crash would (chaos tests); the supervisor restarts it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Crash;

/// The actor of this node.
pub struct NodeActor {
    client: kube::Client,
    info: NodeInfo,
    runtime: Arc<PodRuntime>,
    /// The pod actors by pod uid, with the pod's `namespace/name`.
    pods: HashMap<String, (Addr<PodActor>, String)>,
    listing: Option<BTreeSet<String>>,
    registered: bool,
    /// Where this node's actors are listed (the chaos socket lists and kills them).
    actors: Actors,
    tracker: Tracker,
}

impl NodeActor {
    /// The actor of node `info.name`, running its pods on `runtime`, listing its pod
    /// actors in `actors`; `tracker` counts its own restarts.
    pub fn new(
        client: kube::Client,
        info: NodeInfo,
        runtime: Arc<PodRuntime>,
        actors: Actors,
        tracker: Tracker,
    ) -> Self {
        Self {
            actors,
            tracker,
            client,
            info,
            runtime,
            pods: HashMap::new(),
            listing: None,
            registered: false,
        }
    }

    fn pod_seen(&mut self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        if let Some(listing) = self.listing.as_mut() {
            listing.insert(uid.clone());
        }
        match self.pods.get(&uid) {
            Some((addr, _)) if addr.connected() => addr.do_send(pod_actor::Update(pod)),
            _ => {
                let key = rk8s_controllers::common::object_name(&pod.metadata);
                let (runtime, client, ip) = (
                    self.runtime.clone(),
                    self.client.clone(),
                    self.info.address.clone(),
                );
                let tracker = Tracker::default();
                let t = tracker.clone();
                let addr = Supervisor::start(move |_| PodActor::new(pod, runtime, client, ip, t));
                let kill = addr.clone();
                self.actors.add_with(
                    "Pod",
                    &key,
                    move || kill.do_send(pod_actor::Crash),
                    &tracker,
                );
                self.pods.insert(uid, (addr, key));
            }
        }
    }

    fn pod_gone(&mut self, uid: &str) {
        if let Some((addr, key)) = self.pods.remove(uid) {
            addr.do_send(pod_actor::Gone);
            self.actors.remove("Pod", &key);
        }
    }

    /// After a full list: pods this node runs but the API no longer has are gone
    /// (deletions missed while the watch was down), and so is anything the runtime
    /// holds that belongs to no pod at all.
    fn listed(&mut self, ctx: &mut Context<Self>, seen: BTreeSet<String>) {
        let missing: Vec<String> = self
            .pods
            .keys()
            .filter(|u| !seen.contains(*u))
            .cloned()
            .collect();
        for uid in missing {
            self.pod_gone(&uid);
        }
        let runtime = self.runtime.clone();
        let fut = async move {
            let keep =
                |r: &rk8s_runtime::pod::PodRecord| {
                    seen.contains(&r.uid)
                        || r.pod.metadata.annotations.as_ref().is_some_and(|a| {
                            a.contains_key(rk8s_runtime::static_pods::FILE_ANNOTATION)
                        })
                };
            match runtime.remove_orphans(keep).await {
                Ok(removed) if !removed.is_empty() => {
                    tracing::info!(?removed, "removed what no pod owns")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("removing orphans: {e}"),
            }
        };
        ctx.spawn(fut.into_actor(self));
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        let client = self.client.clone();
        let info = self.info.clone();
        let registered = self.registered;
        ctx.spawn(
            async move {
                // The control plane may be away: pods keep running; this is retried.
                let status = if registered {
                    registration::post_status(&client, &info).await.map(|_| ())
                } else {
                    registration::register(&client, &info).await.map(|_| ())
                };
                if let Err(e) = &status {
                    tracing::warn!("node status: {e}");
                }
                if let Err(e) = registration::renew_lease(&client, &info.name).await {
                    tracing::warn!("lease: {e}");
                }
                status.is_ok()
            }
            .into_actor(self)
            .map(|ok, act, _| act.registered |= ok),
        );
    }
}

impl Actor for NodeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let config =
            watcher::Config::default().fields(&format!("spec.nodeName={}", self.info.name));
        ctx.add_stream(
            watcher::watcher(pods, config)
                .backoff(watch_backoff())
                .boxed(),
        );
        self.heartbeat(ctx);
        ctx.run_interval(registration::LEASE_RENEW, |act, ctx| act.heartbeat(ctx));
        tracing::info!(node = %self.info.name, "node actor started");
    }
}

impl Supervised for NodeActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // Pod actors keep running under their own supervisors; the re-list that
        // follows hands each its pod again.
        self.tracker.restarted();
        self.listing = None;
        tracing::info!(node = %self.info.name, "node actor restarted");
    }
}

impl StreamHandler<Result<Event<Pod>, watcher::Error>> for NodeActor {
    fn handle(&mut self, item: Result<Event<Pod>, watcher::Error>, ctx: &mut Self::Context) {
        match item {
            Ok(Event::Init) => self.listing = Some(BTreeSet::new()),
            Ok(Event::InitApply(pod) | Event::Apply(pod)) => self.pod_seen(pod),
            Ok(Event::InitDone) => {
                if let Some(seen) = self.listing.take() {
                    self.listed(ctx, seen);
                }
            }
            Ok(Event::Delete(pod)) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    self.pod_gone(uid);
                }
            }
            Err(e) => tracing::warn!("watching pods: {e}"),
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // The watcher retries forever with backoff; it ends only with the actor.
    }
}

impl Handler<Crash> for NodeActor {
    type Result = ();

    fn handle(&mut self, _msg: Crash, ctx: &mut Self::Context) {
        tracing::warn!(node = %self.info.name, "node actor told to crash");
        ctx.stop();
    }
}

//! NodeActor: watches the pods bound to this node (`spec.nodeName`, re-listing on 410
//! as kube-runtime's watcher does), keeps one supervised PodActor per pod in the
//! node's registry (by `NAMESPACE/NAME`), renews the node's Lease and posts its
//! status (also as soon as the device plugins' devices change). Killed, it starts from nothing, re-lists and re-adopts: the PodActors keep
//! running and are found again in the registry, the runtime keeps the pods; nothing
//! about them lives only in the actor. A restarted PodActor asks it for its pod again.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use actix::prelude::*;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use rk8s_runtime::pod::PodRuntime;
use rk8s_supervision::{Actors, Handle};

use super::devices::state::KnownPods;
use super::pod_actor::{self, PodActor};
use super::registration::{self, NodeInfo};
use super::throttle::{Go, Throttle};

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

/// The kind pod actors are listed under.
const POD: &str = "Pod";

/// The device plugins' devices changed: the status is posted now.
struct DevicesChanged;

/// A pod's actor restarted and lost its pod: send it again.
#[derive(Message)]
#[rtype(result = "()")]
struct Restarted(String);

/// What a re-list has shown so far.
#[derive(Default)]
struct Listing {
    /// Pod uids (the runtime keeps theirs).
    uids: BTreeSet<String>,
    /// Pod `NAMESPACE/NAME`s (their actors stay).
    keys: BTreeSet<String>,
}

/// The actor of this node.
pub struct NodeActor {
    client: kube::Client,
    info: NodeInfo,
    runtime: Arc<PodRuntime>,
    /// The pods bound here as last seen, by `NAMESPACE/NAME`.
    pods: HashMap<String, Pod>,
    listing: Option<Listing>,
    registered: bool,
    /// Where this node's actors run (the chaos socket lists and kills them).
    actors: Actors,
    me: Handle<Self>,
    /// The NetworkPolicy gate its pods pass before their first container starts.
    netpol: Option<super::netpol::Gate>,
    /// Whether the pods were listed since it started (its view of them is whole).
    listed_once: bool,
    /// The status posts for device changes.
    throttle: Throttle,
}

impl NodeActor {
    /// The actor of node `info.name`, running its pods on `runtime`, their actors in
    /// `actors`; `me` is its handle.
    pub fn new(
        client: kube::Client,
        info: NodeInfo,
        runtime: Arc<PodRuntime>,
        actors: Actors,
        me: Handle<Self>,
    ) -> Self {
        Self {
            actors,
            me,
            client,
            info,
            runtime,
            pods: HashMap::new(),
            listing: None,
            registered: false,
            netpol: None,
            listed_once: false,
            throttle: Throttle::default(),
        }
    }

    /// Its pods wait for their NetworkPolicy isolation before their first container
    /// starts ([`super::netpol::Gate`]).
    pub fn with_netpol(mut self, gate: super::netpol::Gate) -> Self {
        self.netpol = Some(gate);
        self
    }

    /// Tells the device manager which pods the API binds here, once they were listed
    /// (it frees the devices of the others: kubelet's active pods).
    fn tell_devices(&self) {
        let Some(devices) = &self.info.devices else {
            return;
        };
        if !self.listed_once || self.listing.is_some() {
            return;
        }
        let mut known = KnownPods::default();
        for pod in self.pods.values() {
            let Some(uid) = pod.metadata.uid.clone() else {
                continue;
            };
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            match phase {
                Some("Succeeded" | "Failed") => known.ended.insert(uid),
                _ => known.running.insert(uid),
            };
        }
        devices.pods_known(Some(known));
    }

    fn pod_seen(&mut self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let key = object_name(&pod);
        if let Some(listing) = self.listing.as_mut() {
            listing.uids.insert(uid);
            listing.keys.insert(key.clone());
        }
        self.pods.insert(key.clone(), pod.clone());
        self.tell_devices();
        if let Some(actor) = self.actors.get::<PodActor>(POD, &key) {
            actor.do_send(pod_actor::Update(pod));
            return;
        }
        let (runtime, client, ip, refresh, gate) = (
            self.runtime.clone(),
            self.client.clone(),
            self.info.address.clone(),
            self.info.sync_frequency,
            self.netpol.clone(),
        );
        let devices = self.info.devices.clone();
        let (node, name) = (self.me.clone(), key.clone());
        self.actors.start(POD, &key, move |me| {
            if me.restarts() > 0 {
                node.do_send(Restarted(name.clone()));
            }
            PodActor::new(pod.clone(), runtime.clone(), client.clone(), ip.clone(), me)
                .reading_inputs_every(refresh)
                .with_netpol(gate.clone())
                .with_devices(devices.clone())
        });
    }

    /// The pod `key` is gone from the API (the one of uid `uid`, if given: a newer
    /// pod of the same name stays): its actor stops its containers and ends.
    fn pod_gone(&mut self, key: &str, uid: Option<&str>) {
        let newer = self
            .pods
            .get(key)
            .is_some_and(|p| uid.is_some_and(|u| p.metadata.uid.as_deref() != Some(u)));
        if newer {
            return;
        }
        self.pods.remove(key);
        self.tell_devices();
        if let Some(actor) = self.actors.get::<PodActor>(POD, key) {
            actor.do_send(pod_actor::Gone);
            self.actors.forget(POD, key);
        }
    }

    /// After a full list: pods this node runs but the API no longer has are gone
    /// (deletions missed while the watch was down, or while this actor was dead), and
    /// so is anything the runtime holds that belongs to no pod at all.
    fn listed(&mut self, ctx: &mut Context<Self>, listing: Listing) {
        let missing: Vec<String> = self
            .actors
            .names(POD)
            .into_iter()
            .filter(|k| !listing.keys.contains(k))
            .collect();
        for key in missing {
            self.pod_gone(&key, None);
        }
        self.pods.retain(|k, _| listing.keys.contains(k));
        self.listed_once = true;
        self.tell_devices();
        let seen = listing.uids;
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
        let work = self.me.reconcile(async move {
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
        });
        ctx.spawn(work.into_actor(self).map(|ok, act, _| act.registered |= ok));
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
        // Its view of the pods is not whole until they are listed.
        if let Some(devices) = &self.info.devices {
            devices.pods_known(None);
        }
        self.heartbeat(ctx);
        ctx.run_interval(registration::LEASE_RENEW, |act, ctx| act.heartbeat(ctx));
        if let Some(devices) = self.info.devices.clone() {
            let changes = futures_util::stream::unfold(devices, |d| async move {
                d.changed().await;
                Some((DevicesChanged, d))
            });
            ctx.add_stream(changes);
        }
        tracing::info!(node = %self.info.name, "node actor started");
    }
}

impl StreamHandler<Result<Event<Pod>, watcher::Error>> for NodeActor {
    fn handle(&mut self, item: Result<Event<Pod>, watcher::Error>, ctx: &mut Self::Context) {
        match item {
            Ok(Event::Init) => self.listing = Some(Listing::default()),
            Ok(Event::InitApply(pod) | Event::Apply(pod)) => self.pod_seen(pod),
            Ok(Event::InitDone) => {
                if let Some(listing) = self.listing.take() {
                    self.listed(ctx, listing);
                }
            }
            Ok(Event::Delete(pod)) => {
                self.pod_gone(&object_name(&pod), pod.metadata.uid.as_deref());
            }
            Err(e) => tracing::warn!("watching pods: {e}"),
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // The watcher retries forever with backoff; it ends only with the actor.
    }
}

impl NodeActor {
    /// Posts the status for the devices' changes as the throttle says.
    fn post_devices(&mut self, go: Go, ctx: &mut Context<Self>) {
        match go {
            Go::Wait => {}
            Go::After(wait) => {
                ctx.run_later(wait, |act, ctx| {
                    let go = act.throttle.fired(std::time::Instant::now());
                    act.post_devices(go, ctx);
                });
            }
            Go::Now => {
                let (client, info) = (self.client.clone(), self.info.clone());
                let work = self.me.reconcile(async move {
                    if let Err(e) = registration::post_status(&client, &info).await {
                        tracing::warn!("node status: {e}");
                    }
                });
                ctx.spawn(work.into_actor(self).map(|(), act, ctx| {
                    let go = act.throttle.done(std::time::Instant::now());
                    act.post_devices(go, ctx);
                }));
            }
        }
    }
}

impl StreamHandler<DevicesChanged> for NodeActor {
    fn handle(&mut self, _: DevicesChanged, ctx: &mut Self::Context) {
        if !self.registered {
            return;
        }
        let go = self.throttle.changed(std::time::Instant::now());
        self.post_devices(go, ctx);
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // The changes never end while the manager lives.
    }
}

impl Handler<Restarted> for NodeActor {
    type Result = ();

    fn handle(&mut self, Restarted(key): Restarted, _ctx: &mut Self::Context) {
        self.me.received();
        if let (Some(pod), Some(actor)) =
            (self.pods.get(&key), self.actors.get::<PodActor>(POD, &key))
        {
            actor.do_send(pod_actor::Update(pod.clone()));
        }
    }
}

/// A pod's `NAMESPACE/NAME`.
fn object_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

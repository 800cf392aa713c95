//! The supervisor shared by the controllers whose objects own pods (ReplicaSet, Job).
//! An [`OwnerSupervisor`] watches the owners and every pod (kube-runtime watchers:
//! list, then watch; re-list on 410), keeps an index of pods by controlling owner,
//! starts one supervised actor per owner and stops it when the owner goes, and routes
//! each pod event to the actor that owns the pod (orphans: to the actors whose
//! selector matches) rather than waking all. Killed, it re-lists; its actors stay and
//! are synced again from the new lists.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::time::Duration;

use actix::prelude::*;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use rk8s_api::selector::{Selector, SelectorExt};
use serde::de::DeserializeOwned;

use crate::chaos::{Actors, Tracker};
use crate::common::{Crash, Stop, controller_of, object_name};

/// A kind whose objects own pods.
pub trait PodOwner:
    kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Send
    + std::marker::Sync
    + Unpin
    + 'static
{
    /// The kind's name in owner references.
    const KIND: &'static str;

    /// The owner's pod selector, if it has a valid one.
    fn selector(&self) -> Option<Selector>;

    /// Whether a pod that no owner of this kind controls still carries something of
    /// the kind's (a tracking finalizer) that must be taken off.
    fn is_stray(_pod: &Pod) -> bool {
        false
    }

    /// Takes off what [`PodOwner::is_stray`] found.
    fn release_stray(_client: kube::Client, _pod: Pod) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// The pods an owner's actor decides on, and what changed among them.
pub struct Sync<K> {
    /// The owner as last seen.
    pub owner: K,
    /// Its pods and the orphans its selector matches.
    pub pods: Vec<Pod>,
    /// Pods of it created since the last sync.
    pub created: usize,
    /// Pods of it deleted since the last sync, by name.
    pub deleted: Vec<String>,
}

impl<K: 'static> Message for Sync<K> {
    type Result = ();
}

impl<K> Sync<K> {
    /// Marks what this sync shows as seen in `expected`, and the message as taken
    /// from the mailbox `tracker` counts.
    pub fn observe(&self, expected: &mut crate::common::Expectations, tracker: &Tracker) {
        tracker.received();
        expected.created(self.created);
        for name in &self.deleted {
            expected.deleted(name);
        }
    }

    /// The pods by name.
    pub fn pods_by_name(&self) -> HashMap<String, Pod> {
        self.pods
            .iter()
            .map(|p| (p.metadata.name.clone().unwrap_or_default(), p.clone()))
            .collect()
    }
}

enum Change<K> {
    Owner(Box<Result<Event<K>, watcher::Error>>),
    Pod(Box<Result<Event<Pod>, watcher::Error>>),
}

type PodKey = (String, String);

fn namespace_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".into())
}

/// Watches the owners of kind `K` and pods, and runs one actor `A` per owner.
pub struct OwnerSupervisor<K: PodOwner, A: Actor> {
    client: kube::Client,
    make: fn(kube::Client, Tracker) -> A,
    owners: HashMap<String, K>,
    actors: HashMap<String, (Addr<A>, Tracker)>,
    registry: Actors,
    tracker: Tracker,
    pods: HashMap<PodKey, Pod>,
    by_owner: HashMap<String, BTreeSet<PodKey>>,
    orphans: HashMap<String, BTreeSet<String>>,
    pending_created: HashMap<String, usize>,
    pending_deleted: HashMap<String, Vec<String>>,
    dirty: BTreeSet<String>,
    strays: BTreeSet<PodKey>,
    owners_synced: bool,
    pods_synced: bool,
}

impl<K, A> OwnerSupervisor<K, A>
where
    K: PodOwner,
    A: Actor<Context = Context<A>> + Supervised + Handler<Sync<K>> + Handler<Stop> + Handler<Crash>,
{
    /// A supervisor talking to the API through `client`, making actors with `make`
    /// (given the tracker they count their restarts and messages with), listing them
    /// in `registry`; `tracker` counts its own restarts.
    pub fn new(
        client: kube::Client,
        make: fn(kube::Client, Tracker) -> A,
        registry: Actors,
        tracker: Tracker,
    ) -> Self {
        OwnerSupervisor {
            client,
            make,
            owners: HashMap::new(),
            actors: HashMap::new(),
            registry,
            tracker,
            pods: HashMap::new(),
            by_owner: HashMap::new(),
            orphans: HashMap::new(),
            pending_created: HashMap::new(),
            pending_deleted: HashMap::new(),
            dirty: BTreeSet::new(),
            strays: BTreeSet::new(),
            owners_synced: false,
            pods_synced: false,
        }
    }

    fn unindex(&mut self, key: &PodKey) -> Option<Pod> {
        let old = self.pods.remove(key)?;
        match controller_of(&old.metadata) {
            Some(r) => {
                if let Some(set) = self.by_owner.get_mut(&r.uid) {
                    set.remove(key);
                }
            }
            None => {
                if let Some(set) = self.orphans.get_mut(&key.0) {
                    set.remove(&key.1);
                }
            }
        }
        Some(old)
    }

    /// The owners a pod concerns: its controller, or the ones whose selector matches.
    fn concerned(&self, pod: &Pod) -> Vec<String> {
        if let Some(r) = controller_of(&pod.metadata) {
            return if self.owners.contains_key(&r.uid) {
                vec![r.uid.clone()]
            } else {
                Vec::new()
            };
        }
        let ns = namespace_of(&pod.metadata);
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        self.owners
            .iter()
            .filter(|(_, o)| namespace_of(o.meta()) == ns)
            .filter(|(_, o)| o.selector().is_some_and(|s| s.matches(&labels)))
            .map(|(uid, _)| uid.clone())
            .collect()
    }

    fn pod_changed(&mut self, pod: Pod, deleted: bool) {
        let key = (
            namespace_of(&pod.metadata),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        let old = self.unindex(&key);
        let mut concerned = self.concerned(&pod);
        if let Some(old) = &old {
            concerned.extend(self.concerned(old));
        }
        if let Some(r) = controller_of(&pod.metadata) {
            if deleted {
                self.pending_deleted
                    .entry(r.uid.clone())
                    .or_default()
                    .push(key.1.clone());
            } else if old.is_none() {
                *self.pending_created.entry(r.uid.clone()).or_default() += 1;
            }
        }
        if deleted {
            self.strays.remove(&key);
        } else {
            if K::is_stray(&pod) {
                self.strays.insert(key.clone());
            }
            match controller_of(&pod.metadata) {
                Some(r) => {
                    self.by_owner
                        .entry(r.uid.clone())
                        .or_default()
                        .insert(key.clone());
                }
                None => {
                    self.orphans
                        .entry(key.0.clone())
                        .or_default()
                        .insert(key.1.clone());
                }
            }
            self.pods.insert(key, pod);
        }
        self.dirty.extend(concerned);
    }

    fn sync(&mut self, uid: &str) {
        let Some(owner) = self.owners.get(uid).cloned() else {
            return;
        };
        let ns = namespace_of(owner.meta());
        let mut pods: Vec<Pod> = self
            .by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|k| self.pods.get(k).cloned())
            .collect();
        if let Some(sel) = owner.selector() {
            for name in self.orphans.get(&ns).into_iter().flatten() {
                if let Some(p) = self.pods.get(&(ns.clone(), name.clone()))
                    && sel.matches(p.metadata.labels.as_ref().unwrap_or(&Default::default()))
                {
                    pods.push(p.clone());
                }
            }
        }
        let created = self.pending_created.remove(uid).unwrap_or(0);
        let deleted = self.pending_deleted.remove(uid).unwrap_or_default();
        let (addr, tracker) = self.actors.entry(uid.to_string()).or_insert_with(|| {
            let (client, make) = (self.client.clone(), self.make);
            let tracker = Tracker::default();
            let t = tracker.clone();
            let addr = Supervisor::start(move |_| make(client, t));
            self.registry
                .add(K::KIND, &object_name(owner.meta()), &addr, &tracker);
            (addr, tracker)
        });
        tracker.sent();
        addr.do_send(Sync {
            owner,
            pods,
            created,
            deleted,
        });
    }

    /// Pods that no owner of the kind controls any more, released of what the kind
    /// put on them.
    fn release_strays(&mut self, ctx: &mut Context<Self>) {
        let strays = std::mem::take(&mut self.strays);
        for key in strays {
            let Some(pod) = self.pods.get(&key) else {
                continue;
            };
            let owned =
                controller_of(&pod.metadata).is_some_and(|r| self.owners.contains_key(&r.uid));
            if !owned && K::is_stray(pod) {
                ctx.spawn(K::release_stray(self.client.clone(), pod.clone()).into_actor(self));
            }
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        // Nothing is decided before both lists are complete: a partial list of pods
        // would look like too few.
        if !(self.owners_synced && self.pods_synced) {
            return;
        }
        let dirty = std::mem::take(&mut self.dirty);
        for uid in dirty {
            self.sync(&uid);
        }
        self.release_strays(ctx);
    }
}

impl<K, A> Actor for OwnerSupervisor<K, A>
where
    K: PodOwner,
    A: Actor<Context = Context<A>> + Supervised + Handler<Sync<K>> + Handler<Stop> + Handler<Crash>,
{
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let owners = watcher::watcher(Api::<K>::all(self.client.clone()), Default::default())
            .default_backoff()
            .map(|e| Change::Owner(Box::new(e)));
        let pods = watcher::watcher(Api::<Pod>::all(self.client.clone()), Default::default())
            .default_backoff()
            .map(|e| Change::Pod(Box::new(e)));
        ctx.add_stream(futures_util::stream::select(owners, pods));
        // Batches of watch events become one sync per owner; a periodic resync
        // catches anything time alone changes (minReadySeconds, deadlines, stale
        // expectations).
        ctx.run_interval(Duration::from_millis(50), |act, ctx| act.flush(ctx));
        ctx.run_interval(Duration::from_secs(30), |act, _ctx| {
            act.dirty.extend(act.owners.keys().cloned());
        });
        tracing::info!("{} controller started", K::KIND);
    }
}

impl<K, A> Supervised for OwnerSupervisor<K, A>
where
    K: PodOwner,
    A: Actor<Context = Context<A>> + Supervised + Handler<Sync<K>> + Handler<Stop> + Handler<Crash>,
{
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // Rebuilt from the lists that follow; the actors stay and are synced again.
        self.tracker.restarted();
        self.owners.clear();
        self.pods.clear();
        self.by_owner.clear();
        self.orphans.clear();
        self.strays.clear();
        self.owners_synced = false;
        self.pods_synced = false;
    }
}

impl<K, A> StreamHandler<Change<K>> for OwnerSupervisor<K, A>
where
    K: PodOwner,
    A: Actor<Context = Context<A>> + Supervised + Handler<Sync<K>> + Handler<Stop> + Handler<Crash>,
{
    fn handle(&mut self, change: Change<K>, _ctx: &mut Self::Context) {
        match change {
            Change::Owner(e) => match *e {
                Ok(Event::InitApply(o) | Event::Apply(o)) => {
                    let uid = o.meta().uid.clone().unwrap_or_default();
                    self.owners.insert(uid.clone(), o);
                    self.dirty.insert(uid);
                }
                Ok(Event::Delete(o)) => {
                    let uid = o.meta().uid.clone().unwrap_or_default();
                    self.owners.remove(&uid);
                    self.dirty.remove(&uid);
                    if let Some((addr, _)) = self.actors.remove(&uid) {
                        addr.do_send(Stop);
                        self.registry.remove(K::KIND, &object_name(o.meta()));
                    }
                    // Its pods may carry what only its actor would have taken off.
                    let keys = self.by_owner.get(&uid).cloned().unwrap_or_default();
                    self.strays.extend(
                        keys.into_iter()
                            .filter(|k| self.pods.get(k).is_some_and(K::is_stray)),
                    );
                }
                Ok(Event::InitDone) => self.owners_synced = true,
                Ok(Event::Init) => {}
                Err(e) => tracing::warn!("watching {}s: {e}", K::KIND),
            },
            Change::Pod(e) => match *e {
                Ok(Event::InitApply(p) | Event::Apply(p)) => self.pod_changed(p, false),
                Ok(Event::Delete(p)) => self.pod_changed(p, true),
                Ok(Event::InitDone) => self.pods_synced = true,
                Ok(Event::Init) => {}
                Err(e) => tracing::warn!("watching pods: {e}"),
            },
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

impl<K, A> Handler<Crash> for OwnerSupervisor<K, A>
where
    K: PodOwner,
    A: Actor<Context = Context<A>> + Supervised + Handler<Sync<K>> + Handler<Stop> + Handler<Crash>,
{
    type Result = ();

    fn handle(&mut self, _: Crash, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// A pod of `template` for an owner named `owner_name` (`generateName: OWNER-`),
/// controlled by `owner`.
pub fn pod_from_template(
    template: k8s_openapi::api::core::v1::PodTemplateSpec,
    ns: &str,
    owner_name: &str,
    owner: k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> Pod {
    let meta = template.metadata.unwrap_or_default();
    Pod {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            generate_name: Some(format!("{owner_name}-")),
            namespace: Some(ns.to_string()),
            labels: meta.labels,
            annotations: meta.annotations,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Creates `n` copies of `pod` (16 at a time), with a `SuccessfulCreate` or
/// `FailedCreate` event each about `about`; returns the message of a failure, if any.
pub async fn create_pods(
    client: &kube::Client,
    pod: &Pod,
    n: usize,
    about: crate::events::Involved,
) -> Option<String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let results = futures_util::stream::iter(0..n)
        .map(|_| {
            let api = api.clone();
            async move { api.create(&kube::api::PostParams::default(), pod).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let mut failure = None;
    for r in results {
        match r {
            Ok(p) => {
                let name = p.metadata.name.unwrap_or_default();
                let message = format!("Created pod: {name}");
                crate::events::record(
                    client,
                    about.clone(),
                    "Normal",
                    "SuccessfulCreate",
                    &message,
                )
                .await;
            }
            Err(e) => {
                let message = format!("Error creating: {e}");
                crate::events::record(client, about.clone(), "Warning", "FailedCreate", &message)
                    .await;
                failure = Some(message);
            }
        }
    }
    failure
}

/// Deletes the pods `names` of `pods` (with a uid precondition, so a pod of the same
/// name made since is kept), with a `SuccessfulDelete` event each about `about`.
pub async fn delete_pods(
    client: &kube::Client,
    ns: &str,
    pods: &HashMap<String, Pod>,
    names: &[String],
    about: crate::events::Involved,
) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    for name in names {
        let uid = pods.get(name).and_then(|p| p.metadata.uid.clone());
        let params = kube::api::DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                uid,
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => {
                let message = format!("Deleted pod: {name}");
                crate::events::record(
                    client,
                    about.clone(),
                    "Normal",
                    "SuccessfulDelete",
                    &message,
                )
                .await;
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => tracing::warn!(pod = %name, "deleting: {e}"),
        }
    }
}

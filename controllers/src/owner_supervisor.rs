//! The supervisor shared by the controllers whose objects own pods (ReplicaSet, Job).
//! An [`OwnerSupervisor`] watches the owners and every pod (kube-runtime watchers:
//! list, then watch; re-list on 410), keeps an index of pods by controlling owner,
//! runs one [`OwnerActor`] per owner in the registry (stopped when the owner goes),
//! and routes each pod event to the actor that owns the pod (orphans: to the actors
//! whose selector matches) rather than waking all. Killed, it re-lists; its actors
//! stay, are found again in the registry and resynced from the new lists (those whose
//! owner went meanwhile are stopped). A restarted actor asks it for a resync.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use actix::prelude::*;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use rk8s_api::selector::SelectorExt;
use rk8s_supervision::{Actors, Handle};

use crate::common::{controller_of, object_name};
use crate::owner_actor::OwnerActor;
use crate::pod_owner::{PodOwner, Resync};

/// An owner's actor restarted and lost what it was sent: send it again.
#[derive(Message)]
#[rtype(result = "()")]
struct Restarted(String);

enum Change<K> {
    Owner(Box<Result<Event<K>, watcher::Error>>),
    Pod(Box<Result<Event<Pod>, watcher::Error>>),
}

type PodKey = (String, String);

fn namespace_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".into())
}

/// Watches the owners of kind `K` and pods, and runs one [`OwnerActor`] per owner.
pub struct OwnerSupervisor<K: PodOwner> {
    client: kube::Client,
    me: Handle<Self>,
    registry: Actors,
    /// The owners by uid.
    owners: HashMap<String, K>,
    /// The owners a re-list has shown so far (from its `Init` to its `InitDone`).
    listing: Option<HashSet<String>>,
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

impl<K: PodOwner> OwnerSupervisor<K> {
    /// A supervisor talking to the API through `client`, running its actors in
    /// `registry`; `me` is its handle.
    pub fn new(client: kube::Client, registry: Actors, me: Handle<Self>) -> Self {
        OwnerSupervisor {
            client,
            me,
            registry,
            owners: HashMap::new(),
            listing: None,
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
        self.actor(&object_name(owner.meta())).do_send(Resync {
            owner,
            pods,
            created,
            deleted,
        });
    }

    /// The actor of the owner named `name` (`NAMESPACE/NAME`), started if it runs
    /// not (a restarted one asks for its state again).
    fn actor(&self, name: &str) -> Handle<OwnerActor<K>> {
        let (client, parent, key) = (self.client.clone(), self.me.clone(), name.to_string());
        self.registry.get_or_start(K::KIND, name, move |me| {
            if me.restarts() > 0 {
                parent.do_send(Restarted(key.clone()));
            }
            OwnerActor::new(client.clone(), me)
        })
    }

    /// The owner of uid `uid` went: its actor stops, and its pods may carry what
    /// only its actor would have taken off.
    fn owner_gone(&mut self, uid: &str) {
        self.dirty.remove(uid);
        if let Some(o) = self.owners.remove(uid) {
            self.registry.stop(K::KIND, &object_name(o.meta()));
        }
        let keys = self.by_owner.get(uid).cloned().unwrap_or_default();
        self.strays.extend(
            keys.into_iter()
                .filter(|k| self.pods.get(k).is_some_and(K::is_stray)),
        );
    }

    /// A re-list ended: owners it did not show went meanwhile, and so do the actors
    /// of owners no longer there (left from before a restart).
    fn owners_listed(&mut self, listed: HashSet<String>) {
        let gone: Vec<String> = self
            .owners
            .keys()
            .filter(|uid| !listed.contains(*uid))
            .cloned()
            .collect();
        for uid in gone {
            self.owner_gone(&uid);
        }
        let names: HashSet<String> = self
            .owners
            .values()
            .map(|o| object_name(o.meta()))
            .collect();
        for name in self.registry.names(K::KIND) {
            if !names.contains(&name) {
                self.registry.stop(K::KIND, &name);
            }
        }
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
                let release = K::release_stray(self.client.clone(), pod.clone());
                ctx.spawn(self.me.reconcile(release).into_actor(self));
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

impl<K: PodOwner> Actor for OwnerSupervisor<K> {
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

impl<K: PodOwner> StreamHandler<Change<K>> for OwnerSupervisor<K> {
    fn handle(&mut self, change: Change<K>, _ctx: &mut Self::Context) {
        match change {
            Change::Owner(e) => match *e {
                Ok(Event::InitApply(o) | Event::Apply(o)) => {
                    let uid = o.meta().uid.clone().unwrap_or_default();
                    if let Some(listing) = self.listing.as_mut() {
                        listing.insert(uid.clone());
                    }
                    self.owners.insert(uid.clone(), o);
                    self.dirty.insert(uid);
                }
                Ok(Event::Delete(o)) => {
                    self.owner_gone(o.meta().uid.as_deref().unwrap_or_default())
                }
                Ok(Event::InitDone) => {
                    if let Some(listed) = self.listing.take() {
                        self.owners_listed(listed);
                    }
                    self.owners_synced = true;
                }
                Ok(Event::Init) => self.listing = Some(HashSet::new()),
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

impl<K: PodOwner> Handler<Restarted> for OwnerSupervisor<K> {
    type Result = ();

    fn handle(&mut self, Restarted(name): Restarted, _ctx: &mut Self::Context) {
        self.me.received();
        let uid = self
            .owners
            .iter()
            .find(|(_, o)| object_name(o.meta()) == name);
        if let Some((uid, _)) = uid {
            self.dirty.insert(uid.clone());
        }
    }
}

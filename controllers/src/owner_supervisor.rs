//! The supervisor shared by the controllers whose objects own pods (ReplicaSet, Job,
//! DaemonSet).
//! An [`OwnerSupervisor`] follows the owners and every pod through the shared
//! informers, keeps an index of the pods owners of its kind control by controlling
//! owner (and of the orphans, in the namespaces where the kind has an owner: a pod no
//! one controls concerns no one elsewhere, and clusters run many),
//! runs one [`OwnerActor`] per owner in the registry (stopped when the owner goes),
//! and routes each pod event to the actor that owns the pod (orphans: to the actors
//! whose selector matches) rather than waking all; a kind that places its pods on
//! nodes itself also follows the nodes, and a node that comes, goes or changes its
//! labels or taints wakes each owner. Killed, it re-lists; its actors
//! stay, are found again in the registry and resynced from the new lists (those whose
//! owner went meanwhile are stopped). A restarted actor asks it for a resync.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::{Node, Taint};
use kube::Resource;
use rk8s_api::selector::SelectorExt;
use rk8s_informers::{Informer, Informers, Notice};
use rk8s_supervision::{Actors, Handle};

use crate::common::{controller_of, object_name};
use crate::owner::{Owner, Resync};
use crate::owner_actor::OwnerActor;

/// An owner's actor restarted and lost what it was sent: send it again.
#[derive(Message)]
#[rtype(result = "()")]
struct Restarted(String);

type PodKey = (String, String);

fn namespace_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".into())
}

/// Watches the owners of kind `K` and pods, and runs one [`OwnerActor`] per owner.
pub struct OwnerSupervisor<K: Owner> {
    client: kube::Client,
    me: Handle<Self>,
    registry: Actors,
    informers: (Informer<K>, Informer<K::Owned>),
    /// The nodes, for a kind that places its pods itself ([`Owner::NODES`]).
    nodes: Option<Informer<Node>>,
    /// What of each node decides where pods go (its labels and taints): a change
    /// of anything else (a heartbeat) wakes no owner.
    placement: HashMap<String, NodePlacement>,
    /// The owners by uid.
    owners: HashMap<String, Arc<K>>,
    pods: HashMap<PodKey, Arc<K::Owned>>,
    by_owner: HashMap<String, BTreeSet<PodKey>>,
    /// The orphans by namespace, of the namespaces in `owners_in`.
    orphans: HashMap<String, BTreeSet<String>>,
    /// How many owners each namespace has.
    owners_in: HashMap<String, usize>,
    pending_created: HashMap<String, usize>,
    pending_deleted: HashMap<String, Vec<String>>,
    dirty: BTreeSet<String>,
    strays: BTreeSet<PodKey>,
    owners_synced: bool,
    pods_synced: bool,
    nodes_synced: bool,
}

type NodePlacement = (
    Option<std::collections::BTreeMap<String, String>>,
    Option<Vec<Taint>>,
);

fn placement_of(node: &Node) -> NodePlacement {
    (
        node.metadata.labels.clone(),
        node.spec.as_ref().and_then(|s| s.taints.clone()),
    )
}

impl<K: Owner> OwnerSupervisor<K> {
    /// A supervisor following owners and pods through `informers`, writing through
    /// `client`, running its actors in `registry`; `me` is its handle.
    pub fn new(
        client: kube::Client,
        informers: &Informers,
        registry: Actors,
        me: Handle<Self>,
    ) -> Self {
        OwnerSupervisor {
            client,
            me,
            registry,
            informers: (informers.get(), informers.get()),
            nodes: K::NODES.then(|| informers.get()),
            placement: HashMap::new(),
            owners: HashMap::new(),
            pods: HashMap::new(),
            by_owner: HashMap::new(),
            orphans: HashMap::new(),
            owners_in: HashMap::new(),
            pending_created: HashMap::new(),
            pending_deleted: HashMap::new(),
            dirty: BTreeSet::new(),
            strays: BTreeSet::new(),
            owners_synced: false,
            pods_synced: false,
            nodes_synced: !K::NODES,
        }
    }

    fn unindex(&mut self, key: &PodKey) -> Option<Arc<K::Owned>> {
        let old = self.pods.remove(key)?;
        match controller_of(old.meta()) {
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
    fn concerned(&self, pod: &K::Owned) -> Vec<String> {
        if let Some(r) = controller_of(pod.meta()) {
            return if self.owners.contains_key(&r.uid) {
                vec![r.uid.clone()]
            } else {
                Vec::new()
            };
        }
        let ns = namespace_of(pod.meta());
        let labels = pod.meta().labels.clone().unwrap_or_default();
        self.owners
            .iter()
            .filter(|(_, o)| namespace_of(o.meta()) == ns)
            .filter(|(_, o)| o.selector().is_some_and(|s| s.matches(&labels)))
            .map(|(uid, _)| uid.clone())
            .collect()
    }

    fn pod_changed(&mut self, pod: Arc<K::Owned>, deleted: bool) {
        let key = (
            namespace_of(pod.meta()),
            pod.meta().name.clone().unwrap_or_default(),
        );
        let old = self.unindex(&key);
        // What another kind controls is not indexed here: each supervisor would keep
        // an entry for every pod of the cluster, and count creations for owners it
        // never syncs.
        if controller_of(pod.meta()).is_some_and(|r| r.kind != K::KIND) {
            if let Some(old) = &old {
                let concerned = self.concerned(old);
                self.dirty.extend(concerned);
            }
            self.strays.remove(&key);
            return;
        }
        let mut concerned = self.concerned(&pod);
        if let Some(old) = &old {
            concerned.extend(self.concerned(old));
        }
        if let Some(r) = controller_of(pod.meta()) {
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
            if K::is_stray(pod.as_ref()) {
                self.strays.insert(key.clone());
            }
            match controller_of(pod.meta()) {
                Some(r) => {
                    self.by_owner
                        .entry(r.uid.clone())
                        .or_default()
                        .insert(key.clone());
                }
                None => match self.orphans.get_mut(&key.0) {
                    Some(orphans) => {
                        orphans.insert(key.1.clone());
                    }
                    // Kept only to be released.
                    None if K::is_stray(pod.as_ref()) => {}
                    // No owner of the kind in the namespace: not indexed.
                    None => {
                        self.dirty.extend(concerned);
                        return;
                    }
                },
            }
            self.pods.insert(key, pod);
        }
        self.dirty.extend(concerned);
    }

    /// The first owner of the kind in `ns` came: the namespace's orphans are indexed,
    /// from the informer's objects (the notices that follow find them indexed).
    fn index_orphans(&mut self, ns: &str) {
        self.orphans.insert(ns.to_string(), BTreeSet::new());
        for pod in self.informers.1.list_in(ns) {
            if controller_of(pod.meta()).is_none() {
                self.pod_changed(pod, false);
            }
        }
    }

    /// The last owner of the kind in `ns` went: its orphans are no longer indexed
    /// (but for those still to be released).
    fn forget_orphans(&mut self, ns: &str) {
        for name in self.orphans.remove(ns).unwrap_or_default() {
            let key = (ns.to_string(), name);
            if self.pods.get(&key).is_some_and(|p| !K::is_stray(p)) {
                self.pods.remove(&key);
            }
        }
    }

    fn sync(&mut self, uid: &str) {
        let Some(owner) = self.owners.get(uid).cloned() else {
            return;
        };
        let ns = namespace_of(owner.meta());
        let mut pods: Vec<Arc<K::Owned>> = self
            .by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|k| self.pods.get(k).cloned())
            .collect();
        if let Some(sel) = owner.selector() {
            for name in self.orphans.get(&ns).into_iter().flatten() {
                if let Some(p) = self.pods.get(&(ns.clone(), name.clone()))
                    && sel.matches(p.meta().labels.as_ref().unwrap_or(&Default::default()))
                {
                    pods.push(p.clone());
                }
            }
        }
        let created = self.pending_created.remove(uid).unwrap_or(0);
        let deleted = self.pending_deleted.remove(uid).unwrap_or_default();
        self.actor(&object_name(owner.meta())).do_send(Resync {
            owner,
            owned: pods,
            nodes: self.nodes.as_ref().map(Informer::list).unwrap_or_default(),
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
            let ns = namespace_of(o.meta());
            if let Some(n) = self.owners_in.get_mut(&ns) {
                *n -= 1;
                if *n == 0 {
                    self.owners_in.remove(&ns);
                    self.forget_orphans(&ns);
                }
            }
        }
        let keys = self.by_owner.get(uid).cloned().unwrap_or_default();
        self.strays.extend(
            keys.into_iter()
                .filter(|k| self.pods.get(k).is_some_and(|p| K::is_stray(p))),
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
            let owned = controller_of(pod.meta()).is_some_and(|r| self.owners.contains_key(&r.uid));
            if !owned && K::is_stray(pod) {
                let release = K::release_stray(self.client.clone(), K::Owned::clone(pod));
                ctx.spawn(self.me.reconcile(release).into_actor(self));
            }
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        // Nothing is decided before both lists are complete: a partial list of pods
        // would look like too few.
        if !(self.owners_synced && self.pods_synced && self.nodes_synced) {
            return;
        }
        let dirty = std::mem::take(&mut self.dirty);
        for uid in dirty {
            self.sync(&uid);
        }
        self.release_strays(ctx);
    }
}

impl<K: Owner> Actor for OwnerSupervisor<K> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.informers.0.subscribe(ctx.address().recipient());
        self.informers
            .1
            .subscribe_as::<OwnedNotice<K::Owned>>(ctx.address().recipient());
        if let Some(nodes) = &self.nodes {
            nodes.subscribe(ctx.address().recipient());
        }
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

impl<K: Owner> OwnerSupervisor<K> {
    fn owner_applied(&mut self, o: Arc<K>) {
        let uid = o.meta().uid.clone().unwrap_or_default();
        let ns = namespace_of(o.meta());
        if self.owners.insert(uid.clone(), o).is_none() {
            let n = self.owners_in.entry(ns.clone()).or_default();
            *n += 1;
            if *n == 1 {
                self.index_orphans(&ns);
            }
        }
        self.dirty.insert(uid);
    }
}

impl<K: Owner> Handler<Notice<K>> for OwnerSupervisor<K> {
    type Result = ();

    fn handle(&mut self, notice: Notice<K>, _ctx: &mut Self::Context) {
        match notice {
            Notice::Listed(all) => {
                let listed = all
                    .iter()
                    .map(|o| o.meta().uid.clone().unwrap_or_default())
                    .collect();
                all.iter().for_each(|o| self.owner_applied(o.clone()));
                self.owners_listed(listed);
                self.owners_synced = true;
            }
            Notice::Applied(o) => self.owner_applied(o),
            Notice::Deleted(o) => self.owner_gone(o.meta().uid.as_deref().unwrap_or_default()),
        }
    }
}

/// A change of the owned kind (a message of its own: the owner's kind and the owned
/// kind are both generic here, so their notices could not be told apart).
pub struct OwnedNotice<D>(Notice<D>);

impl<D> From<Notice<D>> for OwnedNotice<D> {
    fn from(notice: Notice<D>) -> Self {
        OwnedNotice(notice)
    }
}

impl<D: rk8s_informers::Kind> Message for OwnedNotice<D> {
    type Result = ();
}

impl<K: Owner> Handler<OwnedNotice<K::Owned>> for OwnerSupervisor<K> {
    type Result = ();

    fn handle(&mut self, OwnedNotice(notice): OwnedNotice<K::Owned>, _ctx: &mut Self::Context) {
        if notice.for_each(|p, deleted| self.pod_changed(p, deleted)) {
            self.pods_synced = true;
        }
    }
}

impl<K: Owner> Handler<Restarted> for OwnerSupervisor<K> {
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

impl<K: Owner> Handler<Notice<Node>> for OwnerSupervisor<K> {
    type Result = ();

    fn handle(&mut self, notice: Notice<Node>, _ctx: &mut Self::Context) {
        let mut moved = false;
        let listed = notice.for_each(|node, deleted| {
            let name = node.metadata.name.clone().unwrap_or_default();
            if deleted {
                self.placement.remove(&name);
                moved = true;
                return;
            }
            let now = placement_of(&node);
            if self.placement.get(&name) != Some(&now) {
                self.placement.insert(name, now);
                moved = true;
            }
        });
        if listed {
            self.nodes_synced = true;
        }
        // A node came, went, or changed its labels or taints: every owner looks again.
        if moved {
            self.dirty.extend(self.owners.keys().cloned());
        }
    }
}

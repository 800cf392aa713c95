//! ReplicaSets as actors. The [`ReplicaSetSupervisor`] watches ReplicaSets and pods
//! (kube-runtime watchers: list, then watch; re-list on 410), keeps an index of pods by
//! controlling owner, starts one supervised [`ReplicaSetActor`] per ReplicaSet and
//! stops it when the ReplicaSet goes, and routes each pod event to the actor that owns
//! the pod (orphans: to the actors whose selector matches) rather than waking all.
//!
//! A ReplicaSetActor decides with [`crate::replicaset::reconcile`] and carries the
//! decision out: adoption and release by patching `ownerReferences` (with the pod's
//! resourceVersion), pods created from the template and deleted (uid precondition),
//! expectations so a stale view never acts twice, events, and the status subresource.
//! Killed, it is restarted and resynchronised from the supervisor's index, which the
//! watch keeps; killed, the supervisor re-lists.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use rk8s_api::selector::SelectorExt;

use crate::common::{EXPECTATIONS_TIMEOUT, controller_of, controller_ref};
use crate::replicaset::{Decision, reconcile, selector, with_failure};

/// The pods a ReplicaSet actor decides on, and what changed among them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Sync {
    /// The ReplicaSet as last seen.
    pub rs: ReplicaSet,
    /// Its pods and the orphans its selector matches.
    pub pods: Vec<Pod>,
    /// Pods of it created since the last sync.
    pub created: usize,
    /// Pods of it deleted since the last sync, by name.
    pub deleted: Vec<String>,
}

/// Ends the actor abruptly, as a crash would (chaos tests).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Crash;

/// Ends the actor for good (its ReplicaSet is gone).
#[derive(Message)]
#[rtype(result = "()")]
struct Stop;

#[derive(Message)]
#[rtype(result = "()")]
struct Done {
    failure: Option<String>,
}

/// One ReplicaSet's actor.
pub struct ReplicaSetActor {
    client: kube::Client,
    latest: Option<Sync>,
    busy: bool,
    stopping: bool,
    expected_adds: usize,
    expected_deletes: HashSet<String>,
    expected_at: Instant,
    failure: Option<String>,
}

impl ReplicaSetActor {
    fn new(client: kube::Client) -> Self {
        ReplicaSetActor {
            client,
            latest: None,
            busy: false,
            stopping: false,
            expected_adds: 0,
            expected_deletes: HashSet::new(),
            expected_at: Instant::now(),
            failure: None,
        }
    }

    fn satisfied(&self) -> bool {
        (self.expected_adds == 0 && self.expected_deletes.is_empty())
            || self.expected_at.elapsed() > EXPECTATIONS_TIMEOUT
    }

    fn step(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.stopping {
            return;
        }
        let Some(sync) = self.latest.as_ref() else {
            return;
        };
        let now = jiff::Timestamp::now();
        let decision = reconcile(&sync.rs, &sync.pods, self.satisfied(), now);
        let mut status = decision.status.clone();
        status = with_failure(status, self.failure.as_deref(), now);
        let status_changed = sync.rs.status.as_ref() != Some(&status);
        let nothing = decision.adopt.is_empty()
            && decision.release.is_empty()
            && decision.create == 0
            && decision.delete.is_empty()
            && !status_changed;
        if nothing {
            return;
        }
        if decision.create > 0 || !decision.delete.is_empty() {
            self.expected_adds = decision.create;
            self.expected_deletes = decision.delete.iter().cloned().collect();
            self.expected_at = Instant::now();
        }
        self.busy = true;
        let rs = sync.rs.clone();
        let pods: HashMap<String, Pod> = sync
            .pods
            .iter()
            .map(|p| (p.metadata.name.clone().unwrap_or_default(), p.clone()))
            .collect();
        let client = self.client.clone();
        let fut = async move {
            let failure = carry_out(
                &client,
                &rs,
                &pods,
                &decision,
                status_changed.then_some(status),
            )
            .await;
            Done { failure }
        };
        ctx.spawn(fut.into_actor(self).map(|done, _act, ctx| ctx.notify(done)));
    }
}

fn key(rs: &ReplicaSet) -> String {
    format!(
        "{}/{}",
        rs.metadata.namespace.as_deref().unwrap_or("default"),
        rs.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Carries out a decision; returns the message of a failed creation, if any.
async fn carry_out(
    client: &kube::Client,
    rs: &ReplicaSet,
    pods: &HashMap<String, Pod>,
    decision: &Decision,
    status: Option<k8s_openapi::api::apps::v1::ReplicaSetStatus>,
) -> Option<String> {
    let ns = rs.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let owner = controller_ref("apps/v1", "ReplicaSet", &rs.metadata);
    for name in &decision.adopt {
        let Some(pod) = pods.get(name) else { continue };
        let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
        refs.push(owner.clone());
        let patch = serde_json::json!({"metadata": {
            "ownerReferences": refs, "resourceVersion": pod.metadata.resource_version}});
        if let Err(e) = api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!(rs = %key(rs), pod = %name, "adopting: {e}");
        }
    }
    for name in &decision.release {
        let Some(pod) = pods.get(name) else { continue };
        let refs: Vec<_> = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .filter(|r| r.uid != owner.uid)
            .cloned()
            .collect();
        let patch = serde_json::json!({"metadata": {
            "ownerReferences": refs, "resourceVersion": pod.metadata.resource_version}});
        if let Err(e) = api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!(rs = %key(rs), pod = %name, "releasing: {e}");
        }
    }
    let mut failure = None;
    if decision.create > 0 {
        let template = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.clone())
            .unwrap_or_default();
        let meta = template.metadata.unwrap_or_default();
        let pod: Pod = Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                generate_name: Some(format!("{}-", rs.metadata.name.as_deref().unwrap_or("rs"))),
                namespace: Some(ns.to_string()),
                labels: meta.labels,
                annotations: meta.annotations,
                owner_references: Some(vec![owner.clone()]),
                ..Default::default()
            },
            spec: template.spec,
            status: None,
        };
        let results = futures_util::stream::iter(0..decision.create)
            .map(|_| {
                let (api, pod) = (api.clone(), pod.clone());
                async move { api.create(&PostParams::default(), &pod).await }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        for r in results {
            match r {
                Ok(p) => {
                    let name = p.metadata.name.unwrap_or_default();
                    crate::events::record(
                        client,
                        rs_ref(rs),
                        "Normal",
                        "SuccessfulCreate",
                        &format!("Created pod: {name}"),
                    )
                    .await;
                }
                Err(e) => {
                    let message = format!("Error creating: {e}");
                    crate::events::record(client, rs_ref(rs), "Warning", "FailedCreate", &message)
                        .await;
                    failure = Some(message);
                }
            }
        }
    }
    for name in &decision.delete {
        let uid = pods.get(name).and_then(|p| p.metadata.uid.clone());
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid,
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => {
                crate::events::record(
                    client,
                    rs_ref(rs),
                    "Normal",
                    "SuccessfulDelete",
                    &format!("Deleted pod: {name}"),
                )
                .await;
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => tracing::warn!(rs = %key(rs), pod = %name, "deleting: {e}"),
        }
    }
    if let Some(status) = status {
        let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
        let name = rs.metadata.name.as_deref().unwrap_or_default();
        let patch = serde_json::json!({"status": status});
        if let Err(e) = rs_api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!(rs = %key(rs), "writing status: {e}");
        }
    }
    failure
}

fn rs_ref(rs: &ReplicaSet) -> crate::events::Involved {
    crate::events::Involved::of("apps/v1", "ReplicaSet", &rs.metadata)
}

impl Actor for ReplicaSetActor {
    type Context = Context<Self>;
}

impl Supervised for ReplicaSetActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // The supervisor's next sync brings the state; expectations start afresh.
        self.busy = false;
        self.expected_adds = 0;
        self.expected_deletes.clear();
    }
}

impl Handler<Sync> for ReplicaSetActor {
    type Result = ();

    fn handle(&mut self, msg: Sync, ctx: &mut Self::Context) {
        self.expected_adds = self.expected_adds.saturating_sub(msg.created);
        for name in &msg.deleted {
            self.expected_deletes.remove(name);
        }
        self.latest = Some(msg);
        self.step(ctx);
    }
}

impl Handler<Done> for ReplicaSetActor {
    type Result = ();

    fn handle(&mut self, msg: Done, ctx: &mut Self::Context) {
        self.busy = false;
        self.failure = msg.failure;
        if self.failure.is_some() {
            // Creations that failed will never be seen.
            self.expected_adds = 0;
        }
        self.step(ctx);
    }
}

impl Handler<Crash> for ReplicaSetActor {
    type Result = ();

    fn handle(&mut self, _: Crash, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<Stop> for ReplicaSetActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        self.stopping = true;
        ctx.stop();
    }
}

enum Change {
    Rs(Box<Result<Event<ReplicaSet>, watcher::Error>>),
    Pod(Box<Result<Event<Pod>, watcher::Error>>),
}

type PodKey = (String, String);

/// Watches ReplicaSets and pods and runs one actor per ReplicaSet.
pub struct ReplicaSetSupervisor {
    client: kube::Client,
    sets: HashMap<String, ReplicaSet>,
    actors: HashMap<String, Addr<ReplicaSetActor>>,
    pods: HashMap<PodKey, Pod>,
    by_owner: HashMap<String, BTreeSet<PodKey>>,
    orphans: HashMap<String, BTreeSet<String>>,
    pending_created: HashMap<String, usize>,
    pending_deleted: HashMap<String, Vec<String>>,
    dirty: BTreeSet<String>,
    sets_synced: bool,
    pods_synced: bool,
}

/// Asks for the address of a ReplicaSet's actor (chaos tests kill it).
#[derive(Message)]
#[rtype(result = "Option<Addr<ReplicaSetActor>>")]
pub struct ActorOf(pub String);

impl ReplicaSetSupervisor {
    /// A supervisor talking to the API through `client`.
    pub fn new(client: kube::Client) -> Self {
        ReplicaSetSupervisor {
            client,
            sets: HashMap::new(),
            actors: HashMap::new(),
            pods: HashMap::new(),
            by_owner: HashMap::new(),
            orphans: HashMap::new(),
            pending_created: HashMap::new(),
            pending_deleted: HashMap::new(),
            dirty: BTreeSet::new(),
            sets_synced: false,
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

    /// The ReplicaSets a pod concerns: its owner, or the ones whose selector matches.
    fn concerned(&self, pod: &Pod) -> Vec<String> {
        if let Some(r) = controller_of(&pod.metadata) {
            return if self.sets.contains_key(&r.uid) {
                vec![r.uid.clone()]
            } else {
                Vec::new()
            };
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        self.sets
            .iter()
            .filter(|(_, rs)| rs.metadata.namespace.as_deref().unwrap_or("default") == ns)
            .filter(|(_, rs)| selector(rs).is_some_and(|s| s.matches(&labels)))
            .map(|(uid, _)| uid.clone())
            .collect()
    }

    fn pod_changed(&mut self, pod: Pod, deleted: bool) {
        let key = (
            pod.metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
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
        if !deleted {
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

    fn sync(&mut self, uid: &str, ctx: &mut Context<Self>) {
        let Some(rs) = self.sets.get(uid).cloned() else {
            return;
        };
        let ns = rs
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let mut pods: Vec<Pod> = self
            .by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|k| self.pods.get(k).cloned())
            .collect();
        if let Some(sel) = selector(&rs) {
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
        let client = self.client.clone();
        let addr = self
            .actors
            .entry(uid.to_string())
            .or_insert_with(|| Supervisor::start(move |_| ReplicaSetActor::new(client)));
        addr.do_send(Sync {
            rs,
            pods,
            created,
            deleted,
        });
        let _ = ctx;
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        // Nothing is decided before both lists are complete: a partial list of pods
        // would look like too few.
        if !(self.sets_synced && self.pods_synced) {
            return;
        }
        let dirty = std::mem::take(&mut self.dirty);
        for uid in dirty {
            self.sync(&uid, ctx);
        }
    }
}

impl Actor for ReplicaSetSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let sets = watcher::watcher(
            Api::<ReplicaSet>::all(self.client.clone()),
            Default::default(),
        )
        .default_backoff()
        .map(|e| Change::Rs(Box::new(e)));
        let pods = watcher::watcher(Api::<Pod>::all(self.client.clone()), Default::default())
            .default_backoff()
            .map(|e| Change::Pod(Box::new(e)));
        ctx.add_stream(futures_util::stream::select(sets, pods));
        // Batches of watch events become one sync per ReplicaSet; a periodic resync
        // catches anything time alone changes (minReadySeconds, stale expectations).
        ctx.run_interval(Duration::from_millis(50), |act, ctx| act.flush(ctx));
        ctx.run_interval(Duration::from_secs(30), |act, _ctx| {
            act.dirty.extend(act.sets.keys().cloned());
        });
        tracing::info!("ReplicaSet controller started");
    }
}

impl Supervised for ReplicaSetSupervisor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // Rebuilt from the lists that follow; the actors stay and are synced again.
        self.sets.clear();
        self.pods.clear();
        self.by_owner.clear();
        self.orphans.clear();
        self.sets_synced = false;
        self.pods_synced = false;
    }
}

impl StreamHandler<Change> for ReplicaSetSupervisor {
    fn handle(&mut self, change: Change, _ctx: &mut Self::Context) {
        match change {
            Change::Rs(e) => match *e {
                Ok(Event::InitApply(rs) | Event::Apply(rs)) => {
                    let uid = rs.metadata.uid.clone().unwrap_or_default();
                    self.sets.insert(uid.clone(), rs);
                    self.dirty.insert(uid);
                }
                Ok(Event::Delete(rs)) => {
                    let uid = rs.metadata.uid.clone().unwrap_or_default();
                    self.sets.remove(&uid);
                    self.dirty.remove(&uid);
                    if let Some(addr) = self.actors.remove(&uid) {
                        addr.do_send(Stop);
                    }
                }
                Ok(Event::InitDone) => self.sets_synced = true,
                Ok(Event::Init) => {}
                Err(e) => tracing::warn!("watching ReplicaSets: {e}"),
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

impl Handler<ActorOf> for ReplicaSetSupervisor {
    type Result = Option<Addr<ReplicaSetActor>>;

    fn handle(&mut self, msg: ActorOf, _ctx: &mut Self::Context) -> Self::Result {
        let uid = self
            .sets
            .iter()
            .find(|(_, rs)| key(rs) == msg.0)
            .map(|(uid, _)| uid.clone())?;
        self.actors.get(&uid).cloned()
    }
}

impl Handler<Crash> for ReplicaSetSupervisor {
    type Result = ();

    fn handle(&mut self, _: Crash, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

//! Deployments as actors: a [`DeploymentSupervisor`] follows Deployments and
//! ReplicaSets through the shared informers, indexes ReplicaSets by their controlling Deployment, runs one
//! [`DeploymentActor`] per Deployment in the registry and routes each ReplicaSet
//! event to its owner's actor (a restarted actor asks it for a [`Resync`]). The actor decides with [`crate::deployment::reconcile`] and
//! carries it out through the API: creates the new ReplicaSet (a name collision bumps
//! `status.collisionCount`, which changes the hash), scales ReplicaSets (whose own
//! actors then create or delete pods), raises a reused ReplicaSet's revision, deletes
//! history beyond the limit, writes `ScalingReplicaSet` events and the status.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use rk8s_informers::{Informer, Informers, Notice};
use rk8s_supervision::{Actors, Handle};

use crate::common::{adopt, controller_of, controller_ref, object_name};
use crate::deployment::{DESIRED_REPLICAS, Decision, REVISION, adoptable, reconcile};
use rk8s_events::{Involved, record};

/// A Deployment and its ReplicaSets, as the supervisor last saw them: sent whenever
/// they change, and again when the actor restarted.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resync {
    /// The Deployment.
    pub deployment: Deployment,
    /// The ReplicaSets it controls.
    pub owned: Vec<ReplicaSet>,
    /// ReplicaSets nothing controls that it should adopt.
    pub orphans: Vec<ReplicaSet>,
}

/// A Deployment's actor restarted and lost what it was sent: send it again.
#[derive(Message)]
#[rtype(result = "()")]
struct Restarted(String);

/// One Deployment's actor.
pub struct DeploymentActor {
    client: kube::Client,
    me: Handle<Self>,
    latest: Option<Resync>,
    busy: bool,
    /// A pass is owed: something changed while busy.
    again: bool,
}

impl DeploymentActor {
    fn step(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            self.again = true;
            return;
        }
        let Some(sync) = self.latest.as_ref() else {
            return;
        };
        // Orphans first: deciding without them could create their template again.
        if !sync.orphans.is_empty() {
            self.busy = true;
            self.again = false;
            let (client, d, orphans) = (
                self.client.clone(),
                sync.deployment.clone(),
                sync.orphans.clone(),
            );
            let work = self
                .me
                .reconcile(async move { adopt_all(&client, &d, &orphans).await });
            ctx.spawn(work.into_actor(self).map(|(), act, ctx| act.done(ctx)));
            return;
        }
        let decision = reconcile(&sync.deployment, &sync.owned, jiff::Timestamp::now());
        let status_changed = sync.deployment.status.as_ref() != Some(&decision.status);
        let idle = decision.create.is_none()
            && decision.annotate_revision.is_none()
            && decision.scale.is_empty()
            && decision.bump_revision.is_none()
            && decision.delete.is_empty()
            && !status_changed;
        if idle {
            return;
        }
        self.busy = true;
        self.again = false;
        let (client, d, owned) = (
            self.client.clone(),
            sync.deployment.clone(),
            sync.owned.clone(),
        );
        let work = self.me.reconcile(async move {
            let started = std::time::Instant::now();
            carry_out(&client, &d, &owned, decision, status_changed).await;
            crate::metrics::reconciled("Deployment", started.elapsed(), false);
        });
        ctx.spawn(work.into_actor(self).map(|(), act, ctx| act.done(ctx)));
    }

    fn done(&mut self, ctx: &mut Context<Self>) {
        self.busy = false;
        // Something changed meanwhile: decide again. Every action is absolute (scale
        // to N, create a named ReplicaSet), so a view that lags our own writes at most
        // repeats one.
        if std::mem::take(&mut self.again) {
            self.step(ctx);
        }
    }
}

/// Takes the orphaned ReplicaSets `orphans` as `d`'s.
async fn adopt_all(client: &kube::Client, d: &Deployment, orphans: &[ReplicaSet]) {
    let ns = d.metadata.namespace.as_deref().unwrap_or("default");
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let owner = controller_ref("apps/v1", "Deployment", &d.metadata);
    for rs in orphans {
        let rs_name = rs.metadata.name.as_deref().unwrap_or_default();
        match adopt(&sets, &rs.metadata, &owner).await {
            Ok(()) => {
                tracing::info!(deployment = %object_name(&d.metadata), "adopted ReplicaSet {rs_name}")
            }
            Err(e) => {
                tracing::debug!(deployment = %object_name(&d.metadata), "adopting {rs_name}: {e}")
            }
        }
    }
}

async fn carry_out(
    client: &kube::Client,
    d: &Deployment,
    owned: &[ReplicaSet],
    decision: Decision,
    status_changed: bool,
) {
    let ns = d.metadata.namespace.as_deref().unwrap_or("default");
    let name = d.metadata.name.clone().unwrap_or_default();
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let about = Involved::of("apps/v1", "Deployment", &d.metadata);
    let mut status = decision.status.clone();
    if let Some(rs) = &decision.create {
        let rs_name = rs.metadata.name.clone().unwrap_or_default();
        let created = sets.create(&PostParams::default(), rs).await;
        rk8s_supervision::wrote();
        match created {
            Ok(_) => {
                let n = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                record(
                    client,
                    about.clone(),
                    "Normal",
                    "ScalingReplicaSet",
                    &format!("Scaled up replica set {rs_name} from 0 to {n}"),
                )
                .await;
            }
            // A ReplicaSet of that name that is not this template's: a hash
            // collision. Counting it changes the next hash.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                if !owned
                    .iter()
                    .any(|o| o.metadata.name.as_deref() == Some(&rs_name))
                {
                    status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                }
            }
            Err(e) => tracing::warn!(deployment = %name, "creating {rs_name}: {e}"),
        }
    }
    if let Some((rs_name, revision)) = &decision.bump_revision {
        let patch =
            serde_json::json!({"metadata": {"annotations": {REVISION: revision.to_string()}}});
        let patched = sets
            .patch(rs_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        rk8s_supervision::wrote();
        if let Err(e) = patched {
            tracing::debug!(deployment = %name, "revision of {rs_name}: {e}");
        }
    }
    // The status is written against the Deployment as this pass leaves it.
    let mut current = d.clone();
    if let Some(revision) = &decision.annotate_revision {
        let patch = serde_json::json!({"metadata": {"annotations": {REVISION: revision}}});
        let patched = deployments
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        rk8s_supervision::wrote();
        match patched {
            Ok(updated) => current.metadata.resource_version = updated.metadata.resource_version,
            Err(e) => tracing::debug!(deployment = %name, "noting revision {revision}: {e}"),
        }
    }
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    for (rs_name, replicas) in &decision.scale {
        let before = owned
            .iter()
            .find(|o| o.metadata.name.as_deref() == Some(rs_name.as_str()))
            .and_then(|o| o.spec.as_ref())
            .and_then(|s| s.replicas)
            .unwrap_or(0);
        let patch = serde_json::json!({
            "metadata": {"annotations": {DESIRED_REPLICAS: desired.to_string()}},
            "spec": {"replicas": replicas},
        });
        let scaled = sets
            .patch(rs_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        rk8s_supervision::wrote();
        match scaled {
            Ok(_) => {
                let way = if *replicas > before { "up" } else { "down" };
                record(
                    client,
                    about.clone(),
                    "Normal",
                    "ScalingReplicaSet",
                    &format!("Scaled {way} replica set {rs_name} from {before} to {replicas}"),
                )
                .await;
            }
            Err(e) => tracing::debug!(deployment = %name, "scaling {rs_name}: {e}"),
        }
    }
    for rs_name in &decision.delete {
        let uid = owned
            .iter()
            .find(|o| o.metadata.name.as_deref() == Some(rs_name.as_str()))
            .and_then(|o| o.metadata.uid.clone());
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid,
                resource_version: None,
            }),
            ..Default::default()
        };
        let deleted = sets.delete(rs_name, &params).await;
        rk8s_supervision::wrote();
        if let Err(e) = deleted {
            tracing::debug!(deployment = %name, "deleting old {rs_name}: {e}");
        }
    }
    if status_changed || status != decision.status {
        current.status = Some(status);
        if let Err(e) = crate::common::replace_status(client, &current).await {
            tracing::debug!(deployment = %name, "status: {e}");
        }
    }
}

impl Actor for DeploymentActor {
    type Context = Context<Self>;
}

impl Handler<Resync> for DeploymentActor {
    type Result = ();

    fn handle(&mut self, msg: Resync, ctx: &mut Self::Context) {
        self.me.received();
        self.latest = Some(msg);
        self.step(ctx);
    }
}

/// Watches Deployments and ReplicaSets and runs one actor per Deployment.
pub struct DeploymentSupervisor {
    client: kube::Client,
    me: Handle<Self>,
    registry: Actors,
    informers: (Informer<Deployment>, Informer<ReplicaSet>),
    /// The Deployments by uid.
    deployments: HashMap<String, Arc<Deployment>>,
    sets: HashMap<String, Arc<ReplicaSet>>,
    by_owner: HashMap<String, BTreeSet<String>>,
    /// ReplicaSets nothing controls, by uid.
    orphans: BTreeSet<String>,
    dirty: BTreeSet<String>,
    deployments_synced: bool,
    sets_synced: bool,
}

impl DeploymentSupervisor {
    /// A supervisor following Deployments and ReplicaSets through `informers`,
    /// writing through `client`, running its actors in `registry`; `me` is its handle.
    pub fn new(
        client: kube::Client,
        informers: &Informers,
        registry: Actors,
        me: Handle<Self>,
    ) -> Self {
        DeploymentSupervisor {
            client,
            me,
            registry,
            informers: (informers.get(), informers.get()),
            deployments: HashMap::new(),
            sets: HashMap::new(),
            by_owner: HashMap::new(),
            orphans: BTreeSet::new(),
            dirty: BTreeSet::new(),
            deployments_synced: false,
            sets_synced: false,
        }
    }

    /// The Deployments that would adopt `rs`.
    fn adopters(&self, rs: &ReplicaSet) -> Vec<String> {
        self.deployments
            .iter()
            .filter(|(_, d)| adoptable(d, rs))
            .map(|(uid, _)| uid.clone())
            .collect()
    }

    fn rs_changed(&mut self, rs: Arc<ReplicaSet>, deleted: bool) {
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        self.orphans.remove(&uid);
        if let Some(old) = self.sets.remove(&uid)
            && let Some(owner) = controller_of(&old.metadata)
        {
            if let Some(set) = self.by_owner.get_mut(&owner.uid) {
                set.remove(&uid);
            }
            self.dirty.insert(owner.uid.clone());
        }
        if !deleted && controller_of(&rs.metadata).is_none() {
            let adopters = self.adopters(&rs);
            self.dirty.extend(adopters);
            self.orphans.insert(uid.clone());
        }
        if let Some(owner) = controller_of(&rs.metadata).filter(|o| o.kind == "Deployment") {
            self.dirty.insert(owner.uid.clone());
            if !deleted {
                self.by_owner
                    .entry(owner.uid.clone())
                    .or_default()
                    .insert(uid.clone());
            }
        }
        if !deleted {
            self.sets.insert(uid, rs);
        }
    }

    fn flush(&mut self) {
        if !(self.deployments_synced && self.sets_synced) {
            return;
        }
        for uid in std::mem::take(&mut self.dirty) {
            let Some(d) = self.deployments.get(&uid).cloned() else {
                continue;
            };
            let owned = self
                .by_owner
                .get(&uid)
                .into_iter()
                .flatten()
                .filter_map(|u| self.sets.get(u).map(|rs| ReplicaSet::clone(rs)))
                .collect();
            let orphans = self
                .orphans
                .iter()
                .filter_map(|u| self.sets.get(u))
                .filter(|rs| adoptable(&d, rs))
                .map(|rs| ReplicaSet::clone(rs))
                .collect();
            self.actor(&object_name(&d.metadata)).do_send(Resync {
                deployment: Deployment::clone(&d),
                owned,
                orphans,
            });
        }
    }
}

impl DeploymentSupervisor {
    /// The actor of the Deployment named `name`, started if it runs not.
    fn actor(&self, name: &str) -> Handle<DeploymentActor> {
        let (client, parent, key) = (self.client.clone(), self.me.clone(), name.to_string());
        self.registry.get_or_start(KIND, name, move |me| {
            if me.restarts() > 0 {
                parent.do_send(Restarted(key.clone()));
            }
            DeploymentActor {
                client: client.clone(),
                me,
                latest: None,
                busy: false,
                again: false,
            }
        })
    }

    /// The Deployment of uid `uid` went, and its actor with it.
    fn deployment_gone(&mut self, uid: &str) {
        self.dirty.remove(uid);
        if let Some(d) = self.deployments.remove(uid) {
            self.registry.stop(KIND, &object_name(&d.metadata));
        }
    }

    /// A re-list ended: Deployments it did not show went meanwhile, and so do the
    /// actors of Deployments no longer there (left from before a restart).
    fn deployments_listed(&mut self, listed: HashSet<String>) {
        let gone: Vec<String> = self
            .deployments
            .keys()
            .filter(|uid| !listed.contains(*uid))
            .cloned()
            .collect();
        for uid in gone {
            self.deployment_gone(&uid);
        }
        let names: HashSet<String> = self
            .deployments
            .values()
            .map(|d| object_name(&d.metadata))
            .collect();
        for name in self.registry.names(KIND) {
            if !names.contains(&name) {
                self.registry.stop(KIND, &name);
            }
        }
    }
}

/// The kind the actors are listed under.
const KIND: &str = "Deployment";

impl Actor for DeploymentSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.informers.0.subscribe(ctx.address().recipient());
        self.informers.1.subscribe(ctx.address().recipient());
        ctx.run_interval(Duration::from_millis(50), |act, _ctx| act.flush());
        // Progress deadlines pass with time alone.
        ctx.run_interval(Duration::from_secs(30), |act, _ctx| {
            act.dirty.extend(act.deployments.keys().cloned());
        });
        tracing::info!("Deployment controller started");
    }
}

impl DeploymentSupervisor {
    fn deployment_applied(&mut self, d: Arc<Deployment>) {
        let uid = d.metadata.uid.clone().unwrap_or_default();
        self.deployments.insert(uid.clone(), d);
        self.dirty.insert(uid);
    }
}

impl Handler<Notice<Deployment>> for DeploymentSupervisor {
    type Result = ();

    fn handle(&mut self, notice: Notice<Deployment>, _ctx: &mut Self::Context) {
        match notice {
            Notice::Listed(all) => {
                let listed = all
                    .iter()
                    .map(|d| d.metadata.uid.clone().unwrap_or_default())
                    .collect();
                all.iter().for_each(|d| self.deployment_applied(d.clone()));
                self.deployments_listed(listed);
                self.deployments_synced = true;
            }
            Notice::Applied(d) => self.deployment_applied(d),
            Notice::Deleted(d) => {
                self.deployment_gone(d.metadata.uid.as_deref().unwrap_or_default())
            }
        }
    }
}

impl Handler<Notice<ReplicaSet>> for DeploymentSupervisor {
    type Result = ();

    fn handle(&mut self, notice: Notice<ReplicaSet>, _ctx: &mut Self::Context) {
        if notice.for_each(|rs, deleted| self.rs_changed(rs, deleted)) {
            self.sets_synced = true;
        }
    }
}

impl Handler<Restarted> for DeploymentSupervisor {
    type Result = ();

    fn handle(&mut self, Restarted(name): Restarted, _ctx: &mut Self::Context) {
        self.me.received();
        let uid = self
            .deployments
            .iter()
            .find(|(_, d)| object_name(&d.metadata) == name);
        if let Some((uid, _)) = uid {
            self.dirty.insert(uid.clone());
        }
    }
}

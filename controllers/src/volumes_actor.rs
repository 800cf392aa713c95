//! The PersistentVolume controller as an actor: it follows claims, volumes, classes,
//! pods (those with claims) and nodes through the shared informers, and each
//! [`BATCH`] after a change decides over all of them ([`crate::volumes::decide`]) and
//! writes the actions one by one. Each write carries the resourceVersion it was
//! decided on: one made on a stale view is refused, and decided again from the next.
//! Killed, it starts from nothing: the store holds every step that was written
//! (a volume names its claim before the claim names it, so a half-done binding is
//! finished by the next decision).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use rk8s_informers::{Informer, Informers, Notice};
use rk8s_supervision::Handle;
use serde_json::json;

use crate::volumes::{
    Action, BIND_COMPLETED, BOUND_BY_CONTROLLER, CLAIM_PROTECTION, VOLUME_PROTECTION, World, decide,
};

/// How long after a change the controller decides.
pub const BATCH: Duration = Duration::from_millis(200);
/// How often it decides anyway (a write refused on a stale view is tried again).
const RESYNC: Duration = Duration::from_secs(15);

#[derive(Message)]
#[rtype(result = "()")]
struct Done;

/// The PersistentVolume controller.
pub struct VolumeController {
    client: kube::Client,
    claims: Informer<PersistentVolumeClaim>,
    volumes: Informer<PersistentVolume>,
    classes: Informer<StorageClass>,
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    dirty: bool,
    busy: bool,
    /// The last event said about each claim (said once, not at every decision).
    said: HashMap<String, (&'static str, String)>,
    /// Writes that failed, and why (a failure is logged once, not at every try).
    failing: Arc<Mutex<HashMap<String, String>>>,
    me: Handle<Self>,
}

impl VolumeController {
    /// A controller following its kinds through `informers` and writing through
    /// `client`; `me` is its handle.
    pub fn new(client: kube::Client, informers: &Informers, me: Handle<Self>) -> Self {
        VolumeController {
            client,
            claims: informers.get(),
            volumes: informers.get(),
            classes: informers.get(),
            pods: informers.get(),
            nodes: informers.get(),
            dirty: true,
            busy: false,
            said: HashMap::new(),
            failing: Arc::default(),
            me,
        }
    }

    fn synced(&self) -> bool {
        self.claims.listed()
            && self.volumes.listed()
            && self.classes.listed()
            && self.pods.listed()
            && self.nodes.listed()
    }

    fn run(&mut self, ctx: &mut Context<Self>) {
        if !self.dirty || self.busy || !self.synced() {
            return;
        }
        self.dirty = false;
        let (claims, volumes) = (self.claims.list(), self.volumes.list());
        let (classes, nodes) = (self.classes.list(), self.nodes.list());
        // Only pods that use claims matter (whether a claim is in use).
        let pods: Vec<Arc<Pod>> = self
            .pods
            .list()
            .into_iter()
            .filter(|p| uses_claims(p))
            .collect();
        let actions = decide(&World {
            claims: &claims,
            volumes: &volumes,
            classes: &classes,
            pods: &pods,
            nodes: &nodes,
        });
        self.said.retain(|k, _| {
            claims
                .iter()
                .any(|c| &crate::common::object_name(&c.metadata) == k)
        });
        let actions: Vec<Action> = actions
            .into_iter()
            .filter(|a| match a {
                Action::Event {
                    claim,
                    reason,
                    message,
                    ..
                } => {
                    let new = (*reason, message.clone());
                    self.said.insert(claim.clone(), new.clone()) != Some(new)
                }
                _ => true,
            })
            .collect();
        if actions.is_empty() {
            return;
        }
        self.busy = true;
        let writer = Writer {
            client: self.client.clone(),
            failing: self.failing.clone(),
            claims: claims
                .iter()
                .map(|c| (crate::common::object_name(&c.metadata), c.clone()))
                .collect(),
            volumes: volumes
                .iter()
                .map(|v| (v.metadata.name.clone().unwrap_or_default(), v.clone()))
                .collect(),
        };
        let work = self.me.reconcile(async move {
            for action in actions {
                writer.write(action).await;
            }
        });
        ctx.spawn(work.into_actor(self).map(|(), _, ctx| ctx.notify(Done)));
    }
}

fn uses_claims(pod: &Pod) -> bool {
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
    volumes
        .into_iter()
        .flatten()
        .any(|v| v.persistent_volume_claim.is_some())
}

/// Writes actions, from the view they were decided on.
struct Writer {
    client: kube::Client,
    failing: Arc<Mutex<HashMap<String, String>>>,
    claims: HashMap<String, Arc<PersistentVolumeClaim>>,
    volumes: HashMap<String, Arc<PersistentVolume>>,
}

/// A merge patch of `body` that applies only to the object as seen (its
/// resourceVersion).
fn on(meta: &ObjectMeta, mut body: serde_json::Value) -> Patch<serde_json::Value> {
    body["metadata"]["resourceVersion"] = json!(meta.resource_version);
    Patch::Merge(body)
}

fn finalizers(meta: &ObjectMeta, f: &str, add: bool) -> Vec<String> {
    let mut all: Vec<String> = meta.finalizers.clone().unwrap_or_default();
    all.retain(|x| x != f);
    if add {
        all.push(f.to_string());
    }
    all
}

impl Writer {
    fn claim_api(&self, key: &str) -> Option<(Api<PersistentVolumeClaim>, String)> {
        let (ns, name) = key.split_once('/')?;
        Some((Api::namespaced(self.client.clone(), ns), name.to_string()))
    }

    async fn write(&self, action: Action) {
        let what = format!("{action:?}");
        let result = self.try_write(action).await;
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(()) => {
                failing.remove(&what);
            }
            // Decided on a stale view: decided again from the next.
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                tracing::debug!("volumes: {what}: {}", s.message);
            }
            Err(e) => {
                let why = e.to_string();
                if failing.get(&what) != Some(&why) {
                    tracing::warn!("volumes: {what}: {why}");
                }
                failing.insert(what, why);
            }
        }
        // Bounded: forget the oldest failures' words rather than grow.
        if failing.len() > 1024 {
            failing.clear();
        }
    }

    async fn try_write(&self, action: Action) -> Result<(), kube::Error> {
        let params = PatchParams::default();
        let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
        match action {
            Action::SetClass { claim, class } => {
                let (Some(c), Some((api, name))) =
                    (self.claims.get(&claim), self.claim_api(&claim))
                else {
                    return Ok(());
                };
                let body = json!({"spec": {"storageClassName": class}});
                api.patch(&name, &params, &on(&c.metadata, body)).await?;
            }
            Action::Bind { claim, volume } => self.bind(&claim, &volume).await?,
            Action::Provision(pv) => {
                let name = pv.metadata.name.clone().unwrap_or_default();
                let claim = pv
                    .spec
                    .as_ref()
                    .and_then(|s| s.claim_ref.as_ref())
                    .map(|r| {
                        format!(
                            "{}/{}",
                            r.namespace.as_deref().unwrap_or("default"),
                            r.name.as_deref().unwrap_or_default()
                        )
                    })
                    .unwrap_or_default();
                pvs.create(&PostParams::default(), &pv).await?;
                rk8s_supervision::wrote();
                if let Some(c) = self.claims.get(&claim) {
                    let m = format!("Successfully provisioned volume {name}");
                    self.event(c, "Normal", "ProvisioningSucceeded", &m).await;
                }
            }
            Action::VolumePhase { volume, phase } => {
                let body = json!({"status": {"phase": phase}});
                pvs.patch_status(&volume, &params, &Patch::Merge(body))
                    .await?;
            }
            Action::DeleteVolume(volume) => {
                let uid = self
                    .volumes
                    .get(&volume)
                    .and_then(|v| v.metadata.uid.clone());
                let dp = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid,
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                pvs.delete(&volume, &dp).await?;
            }
            Action::ProtectClaim(claim, add) => {
                let (Some(c), Some((api, name))) =
                    (self.claims.get(&claim), self.claim_api(&claim))
                else {
                    return Ok(());
                };
                let all = finalizers(&c.metadata, CLAIM_PROTECTION, add);
                let body = json!({"metadata": {"finalizers": all}});
                api.patch(&name, &params, &on(&c.metadata, body)).await?;
            }
            Action::ProtectVolume(volume, add) => {
                let Some(v) = self.volumes.get(&volume) else {
                    return Ok(());
                };
                let all = finalizers(&v.metadata, VOLUME_PROTECTION, add);
                let body = json!({"metadata": {"finalizers": all}});
                pvs.patch(&volume, &params, &on(&v.metadata, body)).await?;
            }
            Action::Event {
                claim,
                type_,
                reason,
                message,
            } => {
                if let Some(c) = self.claims.get(&claim) {
                    self.event(c, type_, reason, &message).await;
                }
            }
        }
        rk8s_supervision::wrote();
        Ok(())
    }

    async fn event(&self, claim: &PersistentVolumeClaim, type_: &str, reason: &str, m: &str) {
        let about = rk8s_events::Involved::of("v1", "PersistentVolumeClaim", &claim.metadata);
        rk8s_events::record(&self.client, about, type_, reason, m).await;
    }

    /// Binds in Kubernetes' order: the volume names the claim, is Bound, the claim
    /// names the volume, is Bound.
    async fn bind(&self, claim_key: &str, volume: &str) -> Result<(), kube::Error> {
        let (Some(claim), Some(pv), Some((claims, name))) = (
            self.claims.get(claim_key),
            self.volumes.get(volume),
            self.claim_api(claim_key),
        ) else {
            return Ok(());
        };
        let params = PatchParams::default();
        let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
        let named = pv
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .and_then(|r| r.uid.as_deref())
            .is_some_and(|u| Some(u) == claim.metadata.uid.as_deref());
        if !named {
            let body = json!({
                "metadata": {"annotations": {BOUND_BY_CONTROLLER: "yes"}},
                "spec": {"claimRef": {
                    "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "namespace": claim.metadata.namespace, "name": claim.metadata.name,
                    "uid": claim.metadata.uid, "resourceVersion": claim.metadata.resource_version,
                }},
            });
            pvs.patch(volume, &params, &on(&pv.metadata, body)).await?;
            rk8s_supervision::wrote();
        }
        let bound = json!({"status": {"phase": "Bound"}});
        pvs.patch_status(volume, &params, &Patch::Merge(bound))
            .await?;
        let spec = claim.spec.clone().unwrap_or_default();
        let annotated = claim
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(BIND_COMPLETED));
        if spec.volume_name.as_deref() != Some(volume) || !annotated {
            let mut annotations = json!({BIND_COMPLETED: "yes"});
            if spec.volume_name.as_deref() != Some(volume) {
                annotations[BOUND_BY_CONTROLLER] = json!("yes");
            }
            let body = json!({
                "metadata": {"annotations": annotations},
                "spec": {"volumeName": volume},
            });
            claims
                .patch(&name, &params, &on(&claim.metadata, body))
                .await?;
            rk8s_supervision::wrote();
        }
        let pv_spec = pv.spec.clone().unwrap_or_default();
        let status = json!({"status": {
            "phase": "Bound",
            "accessModes": pv_spec.access_modes,
            "capacity": pv_spec.capacity,
        }});
        claims
            .patch_status(&name, &params, &Patch::Merge(status))
            .await?;
        Ok(())
    }
}

impl Actor for VolumeController {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let me = ctx.address();
        self.claims.subscribe(me.clone().recipient());
        self.volumes.subscribe(me.clone().recipient());
        self.classes.subscribe(me.clone().recipient());
        self.pods.subscribe(me.clone().recipient());
        self.nodes.subscribe(me.recipient());
        ctx.run_interval(BATCH, |act, ctx| act.run(ctx));
        ctx.run_interval(RESYNC, |act, _| act.dirty = true);
        tracing::info!("persistent volume controller started");
    }
}

impl Handler<Done> for VolumeController {
    type Result = ();

    fn handle(&mut self, _: Done, _: &mut Self::Context) {
        self.busy = false;
    }
}

impl Handler<Notice<Pod>> for VolumeController {
    type Result = ();

    fn handle(&mut self, notice: Notice<Pod>, _: &mut Self::Context) {
        self.me.received();
        let mut any = false;
        notice.for_each(|pod, _| any |= uses_claims(&pod));
        self.dirty |= any;
    }
}

macro_rules! marks_dirty {
    ($($kind:ty),*) => {$(
        impl Handler<Notice<$kind>> for VolumeController {
            type Result = ();

            fn handle(&mut self, _: Notice<$kind>, _: &mut Self::Context) {
                self.me.received();
                self.dirty = true;
            }
        }
    )*};
}

marks_dirty!(PersistentVolumeClaim, PersistentVolume, StorageClass);

impl Handler<Notice<Node>> for VolumeController {
    type Result = ();

    /// Nodes post their status every few seconds; only a claim waiting on a node
    /// reads them (its own change, or the resync, decides again).
    fn handle(&mut self, _: Notice<Node>, _: &mut Self::Context) {
        self.me.received();
    }
}

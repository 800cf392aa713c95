//! What the controllers of owning kinds share — those that own pods (ReplicaSet, Job,
//! DaemonSet) and the CronJob, which owns Jobs: the [`Owner`] trait a kind implements
//! — what it owns, its selector, its pure decision and how it is carried out — the
//! [`Resync`] message that hands an owner's actor its owner and what it owns, and the
//! pod helpers (from a template, created, deleted). The
//! [`OwnerSupervisor`](crate::owner_supervisor::OwnerSupervisor) watches and routes;
//! the [`OwnerActor`](crate::owner_actor::OwnerActor) decides and acts.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{Api, Resource};
use rk8s_api::selector::Selector;
use serde::de::DeserializeOwned;

use crate::common::{Expectations, error_message};

/// A kind whose objects own objects of another kind (pods, or Jobs).
pub trait Owner:
    kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Send
    + Sync
    + Unpin
    + 'static
{
    /// The kind's name in owner references.
    const KIND: &'static str;

    /// Whether the kind places its pods on nodes itself (a DaemonSet): its
    /// supervisor then follows the nodes too, and its decisions see them.
    const NODES: bool = false;

    /// The kind it owns.
    type Owned: rk8s_informers::Kind<Scope = NamespaceResourceScope> + Unpin;

    /// What a decision asks to carry out.
    type Plan: Send + 'static;

    /// The selector of what the owner would adopt, if it has a valid one (`None`:
    /// it adopts nothing).
    fn selector(&self) -> Option<Selector>;

    /// Decides, with the kind's pure reconcile, what to do about the owner and what
    /// `view` shows.
    fn decide(&self, view: &View<'_, Self::Owned>) -> Decided<Self::Plan>;

    /// Carries `plan` out through the API; returns the message of a failed
    /// creation, if any.
    fn carry_out(
        client: kube::Client,
        owner: Arc<Self>,
        owned: HashMap<String, Arc<Self::Owned>>,
        plan: Self::Plan,
    ) -> BoxFuture<'static, Option<String>>;

    /// Whether an object that no owner of this kind controls still carries
    /// something of the kind's (a tracking finalizer) that must be taken off.
    fn is_stray(_owned: &Self::Owned) -> bool {
        false
    }

    /// Takes off what [`Owner::is_stray`] found.
    fn release_stray(_client: kube::Client, _owned: Self::Owned) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// What an owner's actor decides on.
pub struct View<'a, D> {
    /// What the owner controls, and the orphans its selector matches.
    pub owned: &'a [Arc<D>],
    /// Every node, for a kind that places its pods itself ([`Owner::NODES`]);
    /// empty for others.
    pub nodes: &'a [Arc<Node>],
    /// Whether every creation and deletion expected has been seen.
    pub satisfied: bool,
    /// The message of the last failed creation.
    pub failure: Option<&'a str>,
    /// The time decided at.
    pub now: jiff::Timestamp,
}

/// What a decision asks of the owner's actor.
pub struct Decided<P> {
    /// What to carry out; `None` when there is nothing to do.
    pub plan: Option<P>,
    /// Objects it creates (expected to be seen before deciding on counts again).
    pub create: usize,
    /// Objects it deletes, by name (expected likewise).
    pub delete: Vec<String>,
    /// Decide again after this long even if nothing changes (a deadline).
    pub requeue_after: Option<Duration>,
}

/// The owner and what it owns that its actor decides on, and what changed among
/// them: sent whenever they change, and again when the actor restarted (it lost
/// them).
pub struct Resync<K: Owner> {
    /// The owner as last seen (the informer's, shared).
    pub owner: Arc<K>,
    /// What it controls and the orphans its selector matches: the informer's,
    /// shared (a copy per owner's actor was a second copy of every pod).
    pub owned: Vec<Arc<K::Owned>>,
    /// Every node, for a kind that places its pods itself (the informer's, shared).
    pub nodes: Vec<Arc<Node>>,
    /// Objects of it created since the last resync.
    pub created: usize,
    /// Objects of it deleted since the last resync, by name.
    pub deleted: Vec<String>,
}

impl<K: Owner> Message for Resync<K> {
    type Result = ();
}

impl<K: Owner> Resync<K> {
    /// Marks what this resync shows as seen in `expected`.
    pub fn observe(&self, expected: &mut Expectations) {
        expected.created(self.created);
        for name in &self.deleted {
            expected.deleted(name);
        }
    }

    /// What it owns, by name.
    pub fn owned_by_name(&self) -> HashMap<String, Arc<K::Owned>> {
        self.owned
            .iter()
            .map(|o| (o.meta().name.clone().unwrap_or_default(), o.clone()))
            .collect()
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

/// Creates `n` copies of `pod` as kube-controller-manager's controllers do
/// (`slowStartBatch`): in batches of 1, 2, 4, … (each sent 16 at a time), stopping
/// after the first batch in which a create failed. An owner whose pods are all
/// refused (a quota, an admission webhook, a bad template) makes one attempt per
/// pass, not `n`; the pods skipped are left to the next pass. A `SuccessfulCreate`
/// or `FailedCreate` event each about `about`; returns the error of a failure, if
/// any (the server's message, as kube-controller-manager's `ReplicaFailure`
/// condition words it).
pub async fn create_pods(
    client: &kube::Client,
    pod: &Pod,
    n: usize,
    about: rk8s_events::Involved,
) -> Option<String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut failure = None;
    for batch in slow_start(n) {
        let results = futures_util::stream::iter(0..batch)
            .map(|_| {
                let api = api.clone();
                async move {
                    let created = api.create(&kube::api::PostParams::default(), pod).await;
                    rk8s_supervision::wrote();
                    // Only the name is kept: a thousand owners creating at once would
                    // otherwise hold every created pod until their last one is made.
                    created.map(|p| p.metadata.name.unwrap_or_default())
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        for r in results {
            match r {
                Ok(name) => {
                    let message = format!("Created pod: {name}");
                    rk8s_events::record(
                        client,
                        about.clone(),
                        "Normal",
                        "SuccessfulCreate",
                        &message,
                    )
                    .await;
                }
                Err(e) => {
                    let error = error_message(&e);
                    let message = format!("Error creating: {error}");
                    rk8s_events::record(client, about.clone(), "Warning", "FailedCreate", &message)
                        .await;
                    failure = Some(error);
                }
            }
        }
        if failure.is_some() {
            break;
        }
    }
    failure
}

/// The batches `n` creations are made in (kube-controller-manager's
/// `slowStartBatch` with its initial batch of 1): each twice the one before, the
/// last what remains.
pub fn slow_start(n: usize) -> impl Iterator<Item = usize> {
    let mut remaining = n;
    let mut next = 1;
    std::iter::from_fn(move || {
        let batch = next.min(remaining);
        remaining -= batch;
        next = batch.saturating_mul(2);
        (batch > 0).then_some(batch)
    })
}

/// Deletes the pods `names` of `pods` (with a uid precondition, so a pod of the same
/// name made since is kept), with a `SuccessfulDelete` event each about `about`.
pub async fn delete_pods(
    client: &kube::Client,
    ns: &str,
    pods: &HashMap<String, Arc<Pod>>,
    names: &[String],
    about: rk8s_events::Involved,
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
        let deleted = api.delete(name, &params).await;
        rk8s_supervision::wrote();
        match deleted {
            Ok(_) => {
                let message = format!("Deleted pod: {name}");
                rk8s_events::record(
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

/// Adopts the orphans `adopt` of `pods` and releases the pods `release` (patches of
/// their ownerReferences carrying their resourceVersion: a pod changed since it was
/// seen is refused, and looked at again).
pub async fn claim(
    client: &kube::Client,
    ns: &str,
    pods: &HashMap<String, Arc<Pod>>,
    adopt: &[String],
    release: &[String],
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    for name in adopt {
        let Some(pod) = pods.get(name) else { continue };
        if let Err(e) = crate::common::adopt(&api, &pod.metadata, owner).await {
            tracing::debug!(owner = %owner.name, pod = %name, "adopting: {e}");
        }
    }
    for name in release {
        let Some(pod) = pods.get(name) else { continue };
        let refs: Vec<_> = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .filter(|r| r.uid != owner.uid)
            .cloned()
            .collect();
        let released = crate::common::set_owner_references(&api, &pod.metadata, refs).await;
        if let Err(e) = released {
            tracing::debug!(owner = %owner.name, pod = %name, "releasing: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::slow_start;

    #[test]
    fn creations_start_slow_and_double() {
        let batches = |n| slow_start(n).collect::<Vec<_>>();
        assert_eq!(batches(0), Vec::<usize>::new());
        assert_eq!(batches(1), [1]);
        assert_eq!(batches(10), [1, 2, 4, 3]);
        assert_eq!(batches(500), [1, 2, 4, 8, 16, 32, 64, 128, 245]);
        assert_eq!(batches(500).iter().sum::<usize>(), 500);
    }
}

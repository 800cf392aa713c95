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

    /// Carries `plan` out through the API; returns what it did.
    fn carry_out(
        client: kube::Client,
        owner: Arc<Self>,
        owned: HashMap<String, Arc<Self::Owned>>,
        plan: Self::Plan,
    ) -> BoxFuture<'static, Done>;

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

/// What carrying a plan out did. Its actor then waits to see those creations and
/// deletions and no others of the plan: one that failed, or was never tried, will
/// never be seen (kube-controller-manager lowers its expectations for each, as
/// `CreationObserved` and `DeletionObserved` on an error).
#[derive(Debug, Default)]
pub struct Done {
    /// Objects created.
    pub created: usize,
    /// Objects deleted, by name.
    pub deleted: Vec<String>,
    /// The message of a failed creation, if any.
    pub failure: Option<String>,
}

impl Done {
    /// Nothing done, for the reason `failure`.
    pub fn failed(failure: String) -> Done {
        Done {
            failure: Some(failure),
            ..Done::default()
        }
    }

    /// Deleted `deleted` as well (a failure is this one's, if it has one).
    pub fn with_deleted(mut self, deleted: Vec<String>) -> Done {
        self.deleted.extend(deleted);
        self
    }
}

/// Makes `n` objects, the `i`th with `create(i)`, as kube-controller-manager's
/// controllers do (`slowStartBatch`): in batches of 1, 2, 4, … (each sent 16 at a
/// time), stopping after the first batch in which a creation failed. An owner whose
/// creations are all refused (a quota, an admission webhook, a bad template) makes
/// one attempt per pass, not `n`; the objects skipped are left to the next pass.
/// `create` returns the failure's message.
pub async fn slow_start_batches<F, Fut>(n: usize, create: F) -> Done
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut done = Done::default();
    let mut next = 0;
    for batch in slow_start(n) {
        let results = futures_util::stream::iter((next..next + batch).map(&create))
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        for r in results {
            match r {
                Ok(()) => done.created += 1,
                Err(e) => done.failure = Some(e),
            }
        }
        if done.failure.is_some() {
            break;
        }
        next += batch;
    }
    done
}

/// Creates `n` copies of `pod` in slow-start batches ([`slow_start_batches`]), with
/// a `SuccessfulCreate` or `FailedCreate` event each about `about`. A failure's
/// message is the server's, as kube-controller-manager's `ReplicaFailure` condition
/// words it.
pub async fn create_pods(
    client: &kube::Client,
    pod: &Pod,
    n: usize,
    about: &rk8s_events::Involved,
) -> Done {
    slow_start_batches(n, |_| create_pod(client, pod, about)).await
}

/// Creates `pod` (`generateName`d), with a `SuccessfulCreate` or `FailedCreate`
/// event about `about`; returns the server's message of a failure.
pub async fn create_pod(
    client: &kube::Client,
    pod: &Pod,
    about: &rk8s_events::Involved,
) -> Result<(), String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let created = api.create(&kube::api::PostParams::default(), pod).await;
    rk8s_supervision::wrote();
    match created {
        Ok(made) => {
            // Only the name is kept: a thousand owners creating at once would
            // otherwise hold every created pod until their last one is made.
            let name = made.metadata.name.unwrap_or_default();
            let message = format!("Created pod: {name}");
            rk8s_events::record(
                client,
                about.clone(),
                "Normal",
                "SuccessfulCreate",
                &message,
            )
            .await;
            Ok(())
        }
        Err(e) => {
            let error = error_message(&e);
            let message = format!("Error creating: {error}");
            rk8s_events::record(client, about.clone(), "Warning", "FailedCreate", &message).await;
            Err(error)
        }
    }
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
/// name made since is kept), with a `SuccessfulDelete` event each about `about`;
/// returns the names deleted (one already gone, or replaced, was not).
pub async fn delete_pods(
    client: &kube::Client,
    ns: &str,
    pods: &HashMap<String, Arc<Pod>>,
    names: &[String],
    about: &rk8s_events::Involved,
) -> Vec<String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut done = Vec::with_capacity(names.len());
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
                done.push(name.clone());
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => tracing::warn!(pod = %name, "deleting: {e}"),
        }
    }
    done
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
    use std::sync::Mutex;

    use super::{slow_start, slow_start_batches};

    /// Makes `n` objects with slow start where the objects `refused` fail; returns
    /// what it reported and the objects tried.
    async fn made(n: usize, refused: &[usize]) -> (super::Done, Vec<usize>) {
        let tried = Mutex::new(Vec::new());
        let done = slow_start_batches(n, |i| {
            tried.lock().unwrap().push(i);
            let refused = refused.contains(&i);
            async move {
                if refused {
                    Err(format!("object {i} refused"))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        let mut tried = tried.into_inner().unwrap();
        tried.sort_unstable();
        (done, tried)
    }

    #[tokio::test]
    async fn a_failed_batch_ends_the_creations_and_what_was_made_is_counted() {
        // Every object made, each once.
        let (done, tried) = made(10, &[]).await;
        assert_eq!((done.created, done.failure), (10, None));
        assert_eq!(tried, (0..10).collect::<Vec<_>>());
        // Object 4 is in the third batch (3..7): that batch is finished, no later one.
        let (done, tried) = made(10, &[4]).await;
        assert_eq!(tried, (0..7).collect::<Vec<_>>());
        assert_eq!(done.created, 6);
        assert_eq!(done.failure.as_deref(), Some("object 4 refused"));
        // Everything refused: one attempt.
        let all: Vec<usize> = (0..500).collect();
        let (done, tried) = made(500, &all).await;
        assert_eq!((done.created, tried.len()), (0, 1));
    }

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

//! The namespace controller's actor: it follows Namespaces through the shared
//! informers and, for each one being deleted that still has the finalizer
//! `kubernetes`, makes passes over its content as kube-controller-manager's does:
//! discovery of every namespaced kind that can be deleted (custom ones too), a
//! background DELETE of each kind's collection (pods gracefully, finalizers
//! honoured, webhooks asked), a count of what remains, the namespace's conditions
//! updated; once nothing remains, the finalizer removed through `finalize`, which
//! removes the namespace. Passes over one namespace never overlap; a few namespaces
//! are worked on at once. Killed, it starts again from what the informer shows.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use actix::prelude::*;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::{Discovery, Scope, verbs};
use rk8s_api::finalizers::KUBERNETES;
use rk8s_informers::{Informer, Informers, Notice};
use rk8s_supervision::Handle;

use crate::namespace::{Census, Next, count_remaining, next, update_conditions};

/// How often the controller looks at what is due.
const TICK: Duration = Duration::from_millis(100);
/// Namespaces worked on at once (kube's `--concurrent-namespace-syncs` is 10).
const CONCURRENT: usize = 4;

/// A pass over one namespace ended.
#[derive(Message)]
#[rtype(result = "()")]
struct Passed {
    name: String,
    /// What follows, how many objects the pass found left, and the attempt it counted
    /// itself as.
    next: Option<(Next, usize, u32)>,
}

/// When a terminating namespace is looked at next.
struct Due {
    at: Instant,
    /// Passes in a row that found no less than the one before.
    attempt: u32,
    /// Objects the last pass found left.
    left: usize,
}

/// Deletes terminating namespaces' content, then finalizes them.
pub struct NamespaceController {
    client: kube::Client,
    namespaces: Informer<Namespace>,
    due: BTreeMap<String, Due>,
    busy: BTreeSet<String>,
    /// A namespace changed since the terminating ones were last looked for.
    dirty: bool,
    me: Handle<Self>,
}

impl NamespaceController {
    /// A controller following namespaces through `informers`, writing through
    /// `client`; `me` is its handle.
    pub fn new(client: kube::Client, informers: &Informers, me: Handle<Self>) -> Self {
        NamespaceController {
            client,
            namespaces: informers.get(),
            due: BTreeMap::new(),
            busy: BTreeSet::new(),
            dirty: true,
            me,
        }
    }

    /// Namespaces that are being deleted and still wait for this controller.
    fn terminating(&self) -> BTreeSet<String> {
        self.namespaces
            .list()
            .iter()
            .filter(|ns| ns.metadata.deletion_timestamp.is_some() && has_finalizer(ns))
            .filter_map(|ns| ns.metadata.name.clone())
            .collect()
    }

    fn run(&mut self, ctx: &mut Context<Self>) {
        if !self.namespaces.listed() {
            return;
        }
        // The terminating namespaces looked for again only after a change of one.
        if std::mem::take(&mut self.dirty) {
            let terminating = self.terminating();
            self.due.retain(|name, _| terminating.contains(name));
            for name in terminating {
                self.due.entry(name).or_insert(Due {
                    at: Instant::now(),
                    attempt: 0,
                    left: usize::MAX,
                });
            }
        }
        let now = Instant::now();
        let ready: Vec<(String, u32, usize)> = self
            .due
            .iter()
            .filter(|(name, due)| due.at <= now && !self.busy.contains(*name))
            .map(|(name, due)| (name.clone(), due.attempt, due.left))
            .collect();
        for (name, attempt, before) in ready {
            if self.busy.len() >= CONCURRENT {
                return;
            }
            self.busy.insert(name.clone());
            let client = self.client.clone();
            let work = self.me.reconcile(async move {
                let next = match pass(&client, &name, (attempt, before)).await {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!("namespace {name}: {e}");
                        let wait = crate::namespace::MAX_WAIT;
                        Some((Next::LookAgain(wait), usize::MAX, attempt))
                    }
                };
                Passed { name, next }
            });
            ctx.spawn(
                work.into_actor(self)
                    .map(|passed, _, ctx| ctx.notify(passed)),
            );
        }
    }
}

fn has_finalizer(ns: &Namespace) -> bool {
    let finalizers = ns.spec.as_ref().and_then(|s| s.finalizers.as_ref());
    finalizers.is_some_and(|f| f.iter().any(|f| f == KUBERNETES))
}

/// One pass over the namespace `name`, the `attempt`th in a row to find no less than
/// `before` objects: `None` when there is nothing more to do for it (gone, not being
/// deleted, finalized), else what follows, how many objects are left, and the
/// attempt this pass counted as (0 when it found less).
async fn pass(
    client: &kube::Client,
    name: &str,
    (attempt, before): (u32, usize),
) -> Result<Option<(Next, usize, u32)>, kube::Error> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let Some(mut ns) = namespaces.get_opt(name).await? else {
        return Ok(None);
    };
    if ns.metadata.deletion_timestamp.is_none() || !has_finalizer(&ns) {
        return Ok(None);
    }
    let census = delete_content(client, name).await;
    let left = census.left();
    let attempt = if left < before { 0 } else { attempt };
    let status = ns.status.get_or_insert_with(Default::default);
    let mut changed = status.phase.as_deref() != Some("Terminating");
    status.phase = Some("Terminating".into());
    changed |= update_conditions(status, &census, &now());
    if changed {
        rk8s_supervision::wrote();
        // Another write meanwhile: the conditions wait for the next pass (kube's
        // controller does not retry them either), the namespace is read again.
        match namespaces
            .replace_status(name, &PostParams::default(), &ns)
            .await
        {
            Ok(written) => ns = written,
            Err(kube::Error::Api(s)) if s.code == 409 => match namespaces.get_opt(name).await? {
                Some(fresh) => ns = fresh,
                None => return Ok(None),
            },
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    let decided = next(&census, attempt);
    if decided != Next::Finalize {
        return Ok(Some((decided, left, attempt)));
    }
    // kube's `finalizeNamespace` (again on a conflict, from the namespace read again).
    for _ in 0..3 {
        let spec = ns.spec.get_or_insert_with(Default::default);
        let kept: BTreeSet<String> = spec
            .finalizers
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f != KUBERNETES)
            .collect();
        spec.finalizers = Some(kept.into_iter().collect());
        rk8s_supervision::wrote();
        match namespaces
            .replace_subresource("finalize", name, &PostParams::default(), &ns)
            .await
        {
            Ok(_) => return Ok(None),
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
            Err(kube::Error::Api(s)) if s.code == 409 => match namespaces.get_opt(name).await? {
                Some(fresh) if has_finalizer(&fresh) => ns = fresh,
                _ => return Ok(None),
            },
            Err(e) => return Err(e),
        }
    }
    Ok(Some((Next::LookAgain(Duration::ZERO), left, attempt)))
}

fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now())
}

/// Deletes every namespaced kind's objects in `namespace` (kube's
/// `deleteAllContent`) and counts what remains.
async fn delete_content(client: &kube::Client, namespace: &str) -> Census {
    let mut census = Census::default();
    let discovery = match Discovery::new(client.clone()).run_aggregated().await {
        Ok(d) => d,
        Err(e) => {
            census.discovery_failed = Some(e.to_string());
            return census;
        }
    };
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            if caps.scope != Scope::Namespaced || !caps.supports_operation(verbs::DELETE) {
                continue;
            }
            let counted = format!("{}.{}", resource.plural, resource.group);
            // kube's `GroupVersionResource` as its messages print it.
            let gvr = format!("{}, Resource={}", resource.api_version, resource.plural);
            let gvr = if resource.group.is_empty() {
                format!("/{gvr}")
            } else {
                gvr
            };
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &resource);
            let estimate = if resource.group.is_empty() && resource.plural == "pods" {
                match pods_estimate(client, namespace).await {
                    Ok(e) => e,
                    Err(e) => {
                        census.deletion_failures.push(format!("{counted}: {e}"));
                        continue;
                    }
                }
            } else {
                0
            };
            if let Err(e) =
                delete_all(&api, caps.supports_operation(verbs::DELETE_COLLECTION)).await
            {
                census.deletion_failures.push(format!("{counted}: {e}"));
                continue;
            }
            match api.list_metadata(&ListParams::default()).await {
                Ok(left) => {
                    let finalizers = left
                        .items
                        .iter()
                        .map(|o| o.metadata.finalizers.as_deref().unwrap_or_default());
                    count_remaining(
                        &mut census,
                        (&counted, &gvr),
                        estimate,
                        finalizers,
                        namespace,
                    );
                }
                Err(e) => census.deletion_failures.push(format!("{counted}: {e}")),
            }
        }
    }
    census
}

/// Deletes every object of `api`, in the background (the namespace controller does
/// not want the garbage collector's orphan finalizer): one collection DELETE, or
/// one DELETE each where the kind has no collection DELETE.
async fn delete_all(api: &Api<DynamicObject>, collection: bool) -> Result<(), kube::Error> {
    let params = DeleteParams::background();
    rk8s_supervision::wrote();
    if collection {
        match api.delete_collection(&params, &ListParams::default()).await {
            Ok(_) => return Ok(()),
            // Not served after all: one DELETE each, as kube's `deleteEachItem`.
            Err(kube::Error::Api(s)) if matches!(s.code, 404 | 405) => {}
            Err(e) => return Err(e),
        }
    }
    for obj in api.list_metadata(&ListParams::default()).await?.items {
        let name = obj.metadata.name.unwrap_or_default();
        match api.delete(&name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if matches!(s.code, 404 | 405) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The longest grace period of the namespace's pods that have not finished: how long
/// their deletion may still take (kube's `estimateGracefulTerminationForPods`).
async fn pods_estimate(client: &kube::Client, namespace: &str) -> Result<i64, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let listed = pods.list(&ListParams::default()).await?;
    Ok(listed
        .items
        .iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .filter_map(|p| p.spec.as_ref()?.termination_grace_period_seconds)
        .max()
        .unwrap_or(0))
}

impl Actor for NamespaceController {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.namespaces.subscribe(ctx.address().recipient());
        ctx.run_interval(TICK, |act, ctx| act.run(ctx));
        tracing::info!("namespace controller started");
    }
}

impl Handler<Passed> for NamespaceController {
    type Result = ();

    fn handle(&mut self, passed: Passed, ctx: &mut Self::Context) {
        self.busy.remove(&passed.name);
        match (passed.next, self.due.get_mut(&passed.name)) {
            (Some((Next::LookAgain(wait), left, attempt)), Some(due)) => {
                due.at = Instant::now() + wait;
                due.attempt = attempt.saturating_add(1);
                due.left = left;
            }
            // Done, or no longer terminating (the next change says if it is again).
            _ => {
                self.due.remove(&passed.name);
            }
        }
        self.run(ctx);
    }
}

impl Handler<Notice<Namespace>> for NamespaceController {
    type Result = ();

    fn handle(&mut self, _: Notice<Namespace>, ctx: &mut Self::Context) {
        self.me.received();
        self.dirty = true;
        self.run(ctx);
    }
}

//! The ResourceQuota controller's actor: it follows quotas and the kinds with a cost
//! ([`crate::resource_quota::followed_kinds`]) through the shared informers, marks a
//! namespace for a count when kube's replenishment rule says so, counts the marked
//! namespaces each [`BATCH`] ([`crate::resource_quota::decide`]) and writes changed
//! statuses with the quota's `resourceVersion` (a 409 — admission charged meanwhile —
//! counts again). Object counts of other kinds (`count/deployments.apps`) are listed
//! through the API, paged, when a quota changes and at the full resync every
//! [`RESYNC`]. Killed, it starts from nothing and counts every namespace.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ReplicationController, ResourceQuota, Secret, Service,
};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, ListParams, PostParams};
use kube::discovery::Scope as DiscoveredScope;
use rk8s_api::quota::ResourceList;
use rk8s_api::{AnyObject, Scope};
use rk8s_informers::{Informer, Informers, Notice};
use rk8s_supervision::Handle;

use crate::resource_quota::{Observed, decide, listed_counts, needs_recount, quota_needs_count};

/// How long after a change the controller counts.
pub const BATCH: Duration = Duration::from_millis(200);
/// How often every quota is counted anyway, other kinds listed (kube's default
/// `--resource-quota-sync-period`).
pub const RESYNC: Duration = Duration::from_secs(300);
/// Objects per page when a kind is counted through the API.
const PAGE: u32 = 500;
/// Pages read at most per kind and namespace (a bound on one count's work).
const MAX_PAGES: usize = 200;

/// A namespace to count, and whether to list its other kinds too.
type Work = BTreeMap<String, bool>;

#[derive(Message)]
#[rtype(result = "()")]
struct Done(Work);

/// Keeps every ResourceQuota's `status`.
pub struct ResourceQuotaController {
    client: kube::Client,
    quotas: Informer<ResourceQuota>,
    pods: Informer<Pod>,
    services: Informer<Service>,
    claims: Informer<PersistentVolumeClaim>,
    config_maps: Informer<ConfigMap>,
    secrets: Informer<Secret>,
    controllers: Informer<ReplicationController>,
    /// What each followed object of a namespace with a quota cost when last seen, by
    /// `plural/namespace/name`.
    costs: HashMap<String, ResourceList>,
    /// The quotas, by namespace and name.
    quota_names: BTreeSet<(String, String)>,
    /// Namespaces to count.
    dirty: Work,
    /// Count every namespace (and list other kinds) at the next run.
    all: bool,
    busy: bool,
    me: Handle<Self>,
}

impl ResourceQuotaController {
    /// A controller following its kinds through `informers` and writing through
    /// `client`; `me` is its handle.
    pub fn new(client: kube::Client, informers: &Informers, me: Handle<Self>) -> Self {
        ResourceQuotaController {
            client,
            quotas: informers.get(),
            pods: informers.get(),
            services: informers.get(),
            claims: informers.get(),
            config_maps: informers.get(),
            secrets: informers.get(),
            controllers: informers.get(),
            costs: HashMap::new(),
            quota_names: BTreeSet::new(),
            dirty: Work::new(),
            all: true,
            busy: false,
            me,
        }
    }

    fn synced(&self) -> bool {
        self.quotas.listed()
            && self.pods.listed()
            && self.services.listed()
            && self.claims.listed()
            && self.config_maps.listed()
            && self.secrets.listed()
            && self.controllers.listed()
    }

    /// The namespace's objects of the followed kinds.
    fn objects(&self, namespace: &str) -> Vec<AnyObject> {
        fn of<K>(informer: &Informer<K>, namespace: &str, out: &mut Vec<AnyObject>)
        where
            K: rk8s_informers::Kind + kube::Resource + Into<AnyObject>,
        {
            for o in informer.list_in(namespace) {
                out.push(o.as_ref().clone().into());
            }
        }
        let mut out = Vec::new();
        of(&self.pods, namespace, &mut out);
        of(&self.services, namespace, &mut out);
        of(&self.claims, namespace, &mut out);
        of(&self.config_maps, namespace, &mut out);
        of(&self.secrets, namespace, &mut out);
        of(&self.controllers, namespace, &mut out);
        of(&self.quotas, namespace, &mut out);
        out
    }

    fn run(&mut self, ctx: &mut Context<Self>) {
        if self.busy || !self.synced() || (self.dirty.is_empty() && !self.all) {
            return;
        }
        let quotas = self.quotas.list();
        let mut work = std::mem::take(&mut self.dirty);
        if std::mem::take(&mut self.all) {
            for q in &quotas {
                if let Some(ns) = &q.metadata.namespace {
                    work.insert(ns.clone(), true);
                }
            }
        }
        let mut jobs = Vec::new();
        for (namespace, list_others) in work {
            let in_ns: Vec<ResourceQuota> = quotas
                .iter()
                .filter(|q| q.metadata.namespace.as_deref() == Some(namespace.as_str()))
                .map(|q| q.as_ref().clone())
                .collect();
            if in_ns.is_empty() {
                continue;
            }
            let objects = self.objects(&namespace);
            jobs.push((namespace, list_others, in_ns, objects));
        }
        if jobs.is_empty() {
            return;
        }
        self.busy = true;
        let client = self.client.clone();
        let work = self.me.reconcile(async move {
            let mut again = Work::new();
            for (namespace, list_others, quotas, objects) in jobs {
                if !count_namespace(&client, &namespace, list_others, &quotas, &objects).await {
                    again.insert(namespace, list_others);
                }
            }
            again
        });
        ctx.spawn(
            work.into_actor(self)
                .map(|again, _, ctx| ctx.notify(Done(again))),
        );
    }

    /// Whether `namespace` has a ResourceQuota.
    fn has_quota(&self, namespace: &str) -> bool {
        self.quota_names
            .range((namespace.to_string(), String::new())..)
            .next()
            .is_some_and(|(ns, _)| ns == namespace)
    }

    /// Notes a quota; a namespace's first one starts the tracking of its objects'
    /// costs (from the informers' caches), its last one ends it.
    fn quota_seen(&mut self, q: &ResourceQuota, deleted: bool) {
        let (Some(namespace), Some(name)) = (&q.metadata.namespace, &q.metadata.name) else {
            return;
        };
        let had = self.has_quota(namespace);
        let key = (namespace.clone(), name.clone());
        if deleted {
            self.quota_names.remove(&key);
        } else {
            self.quota_names.insert(key);
        }
        match (had, self.has_quota(namespace)) {
            (false, true) => {
                let now = jiff::Timestamp::now();
                for obj in self.objects(namespace) {
                    if !matches!(obj, AnyObject::ResourceQuota(_)) {
                        let key = cost_key(&obj, namespace);
                        self.costs.insert(key, rk8s_api::quota::usage(&obj, now));
                    }
                }
            }
            (true, false) => self
                .costs
                .retain(|key, _| key.split('/').nth(1) != Some(namespace.as_str())),
            _ => {}
        }
        if !deleted && quota_needs_count(q) {
            self.dirty.insert(namespace.clone(), true);
        }
    }

    /// Notes what `obj` costs now (`deleted`: nothing) and marks its namespace when
    /// that calls for a count. Objects of namespaces without a quota are passed over
    /// (as kube's replenishment does): no copy, no cost kept.
    fn seen<K>(&mut self, obj: &K, deleted: bool)
    where
        K: kube::Resource + Clone + Into<AnyObject>,
    {
        let Some(namespace) = obj.meta().namespace.as_deref() else {
            return;
        };
        if !self.has_quota(namespace) {
            return;
        }
        let namespace = namespace.to_string();
        let obj: AnyObject = obj.clone().into();
        let key = cost_key(&obj, &namespace);
        let after = (!deleted).then(|| rk8s_api::quota::usage(&obj, jiff::Timestamp::now()));
        let before = self.costs.get(&key);
        if needs_recount(before, after.as_ref()) {
            self.dirty.entry(namespace).or_insert(false);
        }
        match after {
            Some(cost) => self.costs.insert(key, cost),
            None => self.costs.remove(&key),
        };
    }
}

/// Where an object's cost is kept: `plural/namespace/name`.
fn cost_key(obj: &AnyObject, namespace: &str) -> String {
    format!("{}/{namespace}/{}", obj.kind().plural, obj.name())
}

/// Counts `namespace`'s quotas and writes the statuses that changed; `false` when a
/// write or a listing failed (to be counted again).
async fn count_namespace(
    client: &kube::Client,
    namespace: &str,
    list_others: bool,
    quotas: &[ResourceQuota],
    objects: &[AnyObject],
) -> bool {
    let mut counted = BTreeMap::new();
    let mut complete = true;
    if list_others {
        for q in quotas {
            for (name, group, plural) in listed_counts(q) {
                if counted.contains_key(&name) {
                    continue;
                }
                match count_objects(client, namespace, &group, &plural).await {
                    Ok(Some(n)) => {
                        counted.insert(name, n);
                    }
                    // Not a namespaced kind this server serves: nothing to count.
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!("resource quota: counting {name} in {namespace}: {e}");
                        complete = false;
                    }
                }
            }
        }
    }
    let seen = Observed {
        objects,
        counted: &counted,
        now: jiff::Timestamp::now(),
    };
    let api = Api::<ResourceQuota>::namespaced(client.clone(), namespace);
    for q in quotas {
        let Some(status) = decide(q, &seen) else {
            continue;
        };
        let name = q.metadata.name.clone().unwrap_or_default();
        let mut new = q.clone();
        new.status = Some(status);
        match api
            .replace_status(&name, &PostParams::default(), &new)
            .await
        {
            Ok(_) => rk8s_supervision::wrote(),
            // Gone: nothing to keep.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                // 409: admission charged it (or the spec moved) since it was read.
                tracing::debug!("resource quota {namespace}/{name}: {e}");
                complete = false;
            }
        }
    }
    complete
}

/// How many objects of `group`/`plural` `namespace` holds (paged, bounded), or
/// `None` if the server serves no such namespaced kind.
async fn count_objects(
    client: &kube::Client,
    namespace: &str,
    group: &str,
    plural: &str,
) -> Result<Option<usize>, kube::Error> {
    let resource = match rk8s_api::object::kind_by_plural(group, plural) {
        Some(k) if k.scope == Scope::Namespaced => ApiResource {
            group: k.group.into(),
            version: k.version.into(),
            api_version: k.api_version.into(),
            kind: k.kind.into(),
            plural: k.plural.into(),
        },
        Some(_) => return Ok(None),
        // A custom kind: as its group's discovery says.
        None => {
            let Ok(found) = kube::discovery::group(client, group).await else {
                return Ok(None);
            };
            let served = found
                .recommended_resources()
                .into_iter()
                .find(|(r, caps)| r.plural == plural && caps.scope == DiscoveredScope::Namespaced);
            match served {
                Some((r, _)) => r,
                None => return Ok(None),
            }
        }
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let mut count = 0;
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut params = ListParams::default().limit(PAGE);
        if let Some(t) = token.take() {
            params = params.continue_token(&t);
        }
        let page = api.list_metadata(&params).await?;
        count += page.items.len();
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    Ok(Some(count))
}

impl Actor for ResourceQuotaController {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let me = ctx.address();
        self.quotas.subscribe(me.clone().recipient());
        self.pods.subscribe(me.clone().recipient());
        self.services.subscribe(me.clone().recipient());
        self.claims.subscribe(me.clone().recipient());
        self.config_maps.subscribe(me.clone().recipient());
        self.secrets.subscribe(me.clone().recipient());
        self.controllers.subscribe(me.recipient());
        ctx.run_interval(BATCH, |act, ctx| act.run(ctx));
        ctx.run_interval(RESYNC, |act, _| act.all = true);
        tracing::info!("resource quota controller started");
    }
}

impl Handler<Done> for ResourceQuotaController {
    type Result = ();

    fn handle(&mut self, Done(again): Done, _: &mut Self::Context) {
        self.busy = false;
        for (namespace, list_others) in again {
            let entry = self.dirty.entry(namespace).or_insert(false);
            *entry |= list_others;
        }
    }
}

impl Handler<Notice<ResourceQuota>> for ResourceQuotaController {
    type Result = ();

    fn handle(&mut self, notice: Notice<ResourceQuota>, _: &mut Self::Context) {
        self.me.received();
        notice.for_each(|q, deleted| self.quota_seen(&q, deleted));
    }
}

macro_rules! follows {
    ($($kind:ty),*) => {$(
        impl Handler<Notice<$kind>> for ResourceQuotaController {
            type Result = ();

            fn handle(&mut self, notice: Notice<$kind>, _: &mut Self::Context) {
                self.me.received();
                notice.for_each(|o, deleted| self.seen(o.as_ref(), deleted));
            }
        }
    )*};
}

follows!(
    Pod,
    Service,
    PersistentVolumeClaim,
    ConfigMap,
    Secret,
    ReplicationController
);

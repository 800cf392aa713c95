//! Watch fan-out: one store watch per resource feeds a cache of recent events, and
//! every API watcher of that resource reads from the cache. Each watcher has a bounded
//! queue; one that falls behind is disconnected (its client resumes from the last
//! `resourceVersion` it saw, as every Kubernetes client does), so a slow watcher never
//! holds back the others or grows memory.
//!
//! A watch from a revision older than the cache holds goes to the store directly,
//! which keeps history back to the last compaction. A read or watch from a revision
//! newer than the cache has seen waits for it, a bounded while
//! ([`WatchCache::wait_until_fresh`]), as kube-apiserver's watch cache does.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};
use prometheus::{IntCounter, IntGauge};
use rk8s_api::selector::Selectable;
use rk8s_api::{AnyObject, ObjectKind};
use rk8s_raftstore::proto::{KeyValue, RangeRequest};
use rk8s_raftstore::server::Store;
use rk8s_raftstore::watch::{WatchEnd, WatchMessage, WatchRequest, WatchStream};
use rk8s_raftstore::{Error as StoreError, EventKind, prefix_end};
use tokio::sync::mpsc;

use crate::list_options::Filter;
use crate::metrics;
use crate::registry;
use crate::status::{ApiError, ApiResult};

/// Events kept per resource for watchers that resume.
pub const CACHE_EVENTS: usize = 4096;
/// Messages queued per watcher before it is disconnected.
pub const WATCHER_QUEUE: usize = 1024;
/// How long a request for a revision the cache has not reached yet waits for it
/// (kube-apiserver's `blockTimeout` in `watch_cache.go`).
pub const FRESHNESS_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a waiting request asks the store for its revision. The cache hears of
/// other resources' writes only through the store's progress notifications (every few
/// seconds), so without asking a wait could outlast a revision the store already has.
const STORE_RECHECK: Duration = Duration::from_millis(500);

/// 504 for a `resourceVersion` the server has not reached, as kube-apiserver's
/// `storage.NewTooLargeResourceVersionError` builds it (with `apierrors.NewTimeoutError`'s
/// `Timeout: ` prefix): reason `Timeout`, a `ResourceVersionTooLarge` cause, and a retry
/// after one second.
pub fn too_large_resource_version(requested: u64, current: i64) -> ApiError {
    ApiError {
        details: Some(Box::new(StatusDetails {
            causes: Some(vec![StatusCause {
                reason: Some("ResourceVersionTooLarge".to_string()),
                message: Some("Too large resource version".to_string()),
                field: None,
            }]),
            retry_after_seconds: Some(1),
            ..StatusDetails::default()
        })),
        ..ApiError::timeout(format!(
            "Timeout: Too large resource version: {requested}, current: {current}"
        ))
    }
}

/// One change, shared by every watcher: its JSON written once from the stored bytes
/// (the revision spliced in, nothing decoded), its objects decoded only when a
/// watcher needs them (a selector, a table, another version) and then once for all.
#[derive(Debug)]
pub struct Change {
    /// The store revision of the change.
    pub revision: i64,
    /// The object's store key.
    pub key: Vec<u8>,
    /// The JSON sent for this change: the new object, or for a deletion the last state
    /// with the deletion's `resourceVersion`.
    pub json: Bytes,
    kind: ObjectKind,
    deleted: bool,
    /// The stored value before the change and its revision (`None` for a creation).
    before: Option<(Bytes, i64)>,
    object: OnceLock<Option<AnyObject>>,
    prev: OnceLock<Option<AnyObject>>,
    view: OnceLock<Option<Selectable>>,
    prev_view: OnceLock<Option<Selectable>>,
}

/// An object's labels.
pub type Labels = std::collections::BTreeMap<String, String>;

static NO_LABELS: Labels = Labels::new();

/// Whether `filter` selects an object seen as `view` (`None`: there is none), which
/// `decoded` decodes where the view does not suffice.
fn selects<'a>(
    filter: &Filter,
    view: Option<&Option<Selectable>>,
    decoded: impl FnOnce() -> Option<&'a AnyObject>,
) -> bool {
    let Some(view) = view else {
        return false;
    };
    if filter.is_labels_only() {
        return filter.matches_labels(view.as_ref().map_or(&NO_LABELS, |v| &v.labels));
    }
    match view.as_ref().and_then(|v| filter.matches_view(v)) {
        Some(selected) => selected,
        None => decoded().is_some_and(|o| filter.matches(o)),
    }
}

/// The stored `value` at `revision` as it is served: `resourceVersion` written in.
fn served(kind: &ObjectKind, key: &[u8], value: &[u8], revision: i64) -> ApiResult<Bytes> {
    let mut out = Vec::with_capacity(value.len() + 32);
    rk8s_api::stored::with_resource_version(value, kind.api_version, revision, &mut out).map_err(
        |e| {
            ApiError::internal(format!(
                "stored object {} is not JSON: {e}",
                String::from_utf8_lossy(key)
            ))
        },
    )?;
    Ok(Bytes::from(out))
}

fn decoded(kind: &ObjectKind, key: &[u8], value: &Bytes, revision: i64) -> Option<AnyObject> {
    let kv = KeyValue {
        key: key.to_vec(),
        value: value.clone(),
        mod_revision: revision,
        ..KeyValue::default()
    };
    registry::decode(kind, &kv)
        .inspect_err(|e| tracing::warn!("a watched change does not decode: {e}"))
        .ok()
}

impl Change {
    fn from_event(kind: &ObjectKind, e: &rk8s_raftstore::Event) -> ApiResult<Self> {
        let key = &e.kv.key;
        let before = e
            .prev_kv
            .as_ref()
            .map(|kv| (kv.value.clone(), kv.mod_revision));
        let deleted = e.kind == EventKind::Delete;
        let json = match (&e.kind, &before) {
            (EventKind::Put, _) => served(kind, key, &e.kv.value, e.kv.mod_revision)?,
            (EventKind::Delete, Some((value, _))) => served(kind, key, value, e.kv.mod_revision)?,
            (EventKind::Delete, None) => Bytes::new(),
        };
        Ok(Change {
            revision: e.kv.mod_revision,
            key: key.clone(),
            json,
            kind: *kind,
            deleted,
            before,
            object: OnceLock::new(),
            prev: OnceLock::new(),
            view: OnceLock::new(),
            prev_view: OnceLock::new(),
        })
    }

    /// The object after the change as selectors see it (`None` for a deletion), read
    /// on first use from its JSON alone; an inner `None` if that JSON does not read.
    fn view(&self) -> Option<&Option<Selectable>> {
        if self.deleted {
            return None;
        }
        Some(
            self.view
                .get_or_init(|| Selectable::read(&self.kind, &self.json)),
        )
    }

    /// The object before the change as selectors see it (`None` for a creation).
    fn prev_view(&self) -> Option<&Option<Selectable>> {
        let (value, _) = self.before.as_ref()?;
        Some(
            self.prev_view
                .get_or_init(|| Selectable::read(&self.kind, value)),
        )
    }

    /// The node of the pod after and before the change (empty: not bound), each
    /// `None` where there is no such state or it is not read as a pod.
    fn node_names(&self) -> (Option<&str>, Option<&str>) {
        fn name(v: Option<&Option<Selectable>>) -> Option<&str> {
            v?.as_ref()?.node_name()
        }
        (name(self.view()), name(self.prev_view()))
    }

    /// The labels of the object after the change (`None` for a deletion), read on
    /// first use from its JSON alone (none if it does not read).
    pub fn labels(&self) -> Option<&Labels> {
        self.view()
            .map(|v| v.as_ref().map_or(&NO_LABELS, |v| &v.labels))
    }

    /// The labels of the object before the change (`None` for a creation).
    pub fn prev_labels(&self) -> Option<&Labels> {
        self.prev_view()
            .map(|v| v.as_ref().map_or(&NO_LABELS, |v| &v.labels))
    }

    /// Whether `filter` selects the object after the change (never a deletion). Read
    /// from the JSON where that suffices (labels; a pod's fields), decoded otherwise.
    pub fn selected_by(&self, filter: &Filter) -> bool {
        selects(filter, self.view(), || self.object())
    }

    /// Whether `filter` selected the object before the change (never a creation).
    pub fn was_selected_by(&self, filter: &Filter) -> bool {
        selects(filter, self.prev_view(), || self.prev())
    }

    /// The `apiVersion` the change's JSON carries (its cache's).
    pub fn api_version(&self) -> &'static str {
        self.kind.api_version
    }

    /// Whether the object exists after the change (not a deletion).
    pub fn exists(&self) -> bool {
        !self.deleted
    }

    /// Whether the object existed before the change.
    pub fn existed(&self) -> bool {
        self.before.is_some()
    }

    /// The object after the change (`None` for a deletion), decoded on first use.
    pub fn object(&self) -> Option<&AnyObject> {
        if self.deleted {
            return None;
        }
        self.object
            .get_or_init(|| decoded(&self.kind, &self.key, &self.json, self.revision))
            .as_ref()
    }

    /// The object before the change (`None` for a creation), decoded on first use.
    pub fn prev(&self) -> Option<&AnyObject> {
        let (value, revision) = self.before.as_ref()?;
        self.prev
            .get_or_init(|| decoded(&self.kind, &self.key, value, *revision))
            .as_ref()
    }

    /// The object shown for this change (the last state, for a deletion).
    pub fn shown(&self) -> Option<&AnyObject> {
        self.object().or_else(|| self.prev())
    }
}

/// What a watcher receives.
#[derive(Clone, Debug)]
pub enum Message {
    /// A change.
    Change(Arc<Change>),
    /// Every change up to this revision has been delivered.
    Progress(i64),
}

struct Subscriber {
    prefix: Vec<u8>,
    tx: mpsc::Sender<Message>,
}

impl Subscriber {
    /// Queues `change` if the watcher's prefix holds it; false when the watcher is
    /// gone or too slow (a full queue, counted in `terminated`: dropping its sender
    /// ends its stream after what is queued).
    fn offer(&self, change: &Arc<Change>, terminated: &IntCounter) -> bool {
        if !change.key.starts_with(&self.prefix) {
            return true;
        }
        match self.tx.try_send(Message::Change(change.clone())) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                terminated.inc();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

#[derive(Default)]
struct State {
    /// Recent changes, oldest first.
    changes: VecDeque<Arc<Change>>,
    /// Every change after this revision is in `changes` or was evicted past
    /// `evicted_upto`; 0 while the cache is not started.
    start: i64,
    /// Changes up to this revision were evicted.
    evicted_upto: i64,
    /// The newest revision the cache has seen (changes or progress).
    revision: i64,
    subscribers: Vec<Subscriber>,
    /// Pod watchers confined to one node (`spec.nodeName=NODE`), by node: each is
    /// handed only the changes of pods on its node, before or after the change.
    by_node: HashMap<String, Vec<Subscriber>>,
}

/// The watch cache of one resource.
pub struct WatchCache {
    kind: ObjectKind,
    store: Store,
    state: Mutex<State>,
    /// `State::revision`, for requests waiting for the cache to reach a revision.
    seen: tokio::sync::watch::Sender<i64>,
    /// `apiserver_watch_cache_resource_version` of this resource.
    revision_gauge: IntGauge,
    /// `apiserver_terminated_watchers_total` of this resource.
    terminated: IntCounter,
}

/// Where a watcher's messages come from.
pub enum Subscription {
    /// The cache: what it had buffered, then live messages.
    Cache {
        /// Buffered changes after the requested revision.
        backlog: VecDeque<Arc<Change>>,
        /// Live messages; closed when the watcher is disconnected.
        rx: mpsc::Receiver<Message>,
        /// The revision the watcher asked to follow (or reached reading the store):
        /// messages up to it that the cache publishes late are skipped.
        after: i64,
    },
    /// A watch straight on the store, for a revision the cache no longer holds: the
    /// history since then, after which the watcher joins the cache (the store's own
    /// watch would otherwise have every change served again for this one watcher).
    Store(Box<Catchup>),
}

/// A watcher reading the store's history until it can join its cache.
pub struct Catchup {
    /// The store's watch.
    stream: WatchStream,
    /// Changes it sent that are not handed out yet: its first message holds the
    /// whole history since the requested revision, which is turned into served
    /// changes [`STORE_CHUNK`] at a time, each chunk once the last is written, so
    /// that a watcher resuming far behind never has two copies of it at once.
    pending: std::vec::IntoIter<rk8s_raftstore::Event>,
    /// Every change up to this revision has been handed out.
    handed: i64,
    /// The cache to join, and how the watcher subscribes to it.
    cache: Arc<WatchCache>,
    prefix: String,
    node: Option<String>,
}

/// How many changes a watcher is handed at a time (read from the store, or queued).
const STORE_CHUNK: usize = 256;

impl Subscription {
    /// The next messages; `None` when the subscription has ended, with the reason
    /// when there is one to tell.
    pub async fn next(&mut self, kind: &ObjectKind) -> Result<Vec<Message>, Option<ApiError>> {
        loop {
            match self {
                Subscription::Cache { backlog, rx, after } => {
                    if !backlog.is_empty() {
                        return Ok(backlog.drain(..).map(Message::Change).collect());
                    }
                    // What is queued, up to STORE_CHUNK, is handed out at once: one
                    // wake-up of the watch per batch of changes, not per change.
                    let Some(first) = rx.recv().await else {
                        return Err(None);
                    };
                    let fresh = |m: &Message| match m {
                        Message::Change(c) => c.revision > *after,
                        Message::Progress(r) => r > after,
                    };
                    let mut out: Vec<Message> = Some(first).into_iter().filter(fresh).collect();
                    while out.len() < STORE_CHUNK
                        && let Ok(m) = rx.try_recv()
                    {
                        if fresh(&m) {
                            out.push(m);
                        }
                    }
                    if !out.is_empty() {
                        return Ok(out);
                    }
                }
                Subscription::Store(c) => {
                    if c.pending.len() == 0 {
                        if let Some(joined) = c.cache.join(&c.prefix, c.handed, c.node.as_deref()) {
                            *self = joined;
                            continue;
                        }
                        match c.stream.next().await {
                            Some(Ok(WatchMessage::Events(events))) => {
                                c.pending = events.into_iter();
                            }
                            Some(Ok(WatchMessage::Progress { revision })) => {
                                c.handed = c.handed.max(revision);
                                return Ok(vec![Message::Progress(revision)]);
                            }
                            Some(Err(WatchEnd::TooSlow { .. })) | None => return Err(None),
                            Some(Err(WatchEnd::Stopped(reason))) => {
                                return Err(Some(ApiError::unavailable(reason)));
                            }
                        }
                    }
                    let chunk = c
                        .pending
                        .by_ref()
                        .take(STORE_CHUNK)
                        .map(|e| Change::from_event(kind, &e).map(Arc::new))
                        .collect::<ApiResult<Vec<_>>>()
                        .map_err(Some)?;
                    if let Some(last) = chunk.last() {
                        c.handed = c.handed.max(last.revision);
                    }
                    return Ok(chunk.into_iter().map(Message::Change).collect());
                }
            }
        }
    }
}

impl WatchCache {
    /// A cache for `kind`; [`WatchCache::run`] fills it.
    pub fn new(kind: ObjectKind, store: Store) -> Arc<Self> {
        let resource = [kind.qualified_plural()];
        let resource: [&str; 1] = [&resource[0]];
        Arc::new(WatchCache {
            revision_gauge: metrics::WATCH_CACHE_REVISION.with_label_values(&resource),
            terminated: metrics::TERMINATED_WATCHERS.with_label_values(&resource),
            kind,
            store,
            state: Mutex::new(State::default()),
            seen: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Tells waiting requests the newest revision the cache has seen.
    fn announce(&self, revision: i64) {
        self.revision_gauge.set(revision);
        self.seen.send_if_modified(|seen| {
            let changed = *seen != revision;
            *seen = revision;
            changed
        });
    }

    /// The store's revision as this member has applied it (no quorum round).
    async fn store_revision(&self) -> ApiResult<i64> {
        let probe = RangeRequest {
            key: self.prefix().into_bytes(),
            count_only: true,
            ..RangeRequest::default()
        };
        self.store
            .range(probe, false)
            .await
            .map(|r| r.revision)
            .map_err(|e| crate::status::store_error(&self.kind, "", e))
    }

    /// Waits until the server has reached `revision`, at most [`FRESHNESS_TIMEOUT`],
    /// as kube-apiserver's `waitUntilFreshAndBlock` does before a list or watch from a
    /// `resourceVersion`; then 504 ([`too_large_resource_version`]). The wait sleeps on
    /// the cache's revision and, every [`STORE_RECHECK`], on one local read of the
    /// store's: it never spins.
    pub async fn wait_until_fresh(&self, revision: u64) -> ApiResult<()> {
        let reached = |r: &i64| u64::try_from(*r).is_ok_and(|r| r >= revision);
        let mut seen = self.seen.subscribe();
        if reached(&seen.borrow_and_update()) {
            return Ok(());
        }
        let mut store = self.store_revision().await?;
        let deadline = tokio::time::Instant::now() + FRESHNESS_TIMEOUT;
        while !reached(&store) {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                let current = store.max(*seen.borrow());
                return Err(too_large_resource_version(revision, current));
            }
            let pause = (deadline - now).min(STORE_RECHECK);
            // The sender lives as long as the cache, which outlives this call.
            if let Ok(Ok(_)) = tokio::time::timeout(pause, seen.wait_for(reached)).await {
                return Ok(());
            }
            store = self.store_revision().await?;
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn prefix(&self) -> String {
        self.kind.storage_prefix(None)
    }

    /// Follows the store until it stops: reads the current revision, watches from
    /// the next one, and starts over (dropping its watchers, who resume) if the store
    /// watch ends.
    pub async fn run(self: Arc<Self>) {
        let mut backoff = std::time::Duration::from_millis(100);
        loop {
            metrics::WATCH_CACHE_INITIALIZATIONS
                .with_label_values(&[&self.kind.qualified_plural()])
                .inc();
            match self.follow().await {
                Ok(()) => return,
                Err(e) => {
                    tracing::info!(kind = self.kind.plural, "watch cache restarts: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
                }
            }
        }
    }

    async fn follow(&self) -> Result<(), String> {
        let prefix = self.prefix();
        let resume = self.lock().revision;
        let start = if resume > 0 {
            resume
        } else {
            let range = RangeRequest {
                key: prefix.clone().into_bytes(),
                range_end: prefix_end(prefix.as_bytes()),
                count_only: true,
                ..RangeRequest::default()
            };
            self.store
                .range(range, true)
                .await
                .map_err(|e| e.to_string())?
                .revision
        };
        let request = WatchRequest {
            key: prefix.clone().into_bytes(),
            range_end: prefix_end(prefix.as_bytes()),
            start_revision: start.saturating_add(1),
        };
        let mut stream = match self.store.watch(request).await {
            Ok(s) => s,
            Err(StoreError::Compacted { .. }) => {
                // The cache fell behind the compaction: start afresh; watchers resume
                // on their own and get 410 if they are that far behind too.
                self.reset(0);
                return Err("compacted".into());
            }
            Err(StoreError::Unavailable(e)) => {
                self.reset(0);
                return if e.contains("stopped") {
                    Ok(())
                } else {
                    Err(e)
                };
            }
            Err(e) => return Err(e.to_string()),
        };
        {
            let mut st = self.lock();
            if st.start == 0 {
                st.start = start;
                st.evicted_upto = start;
                st.revision = start;
            }
            self.announce(st.revision);
        }
        loop {
            match stream.next().await {
                Some(Ok(WatchMessage::Events(events))) => {
                    let mut changes = Vec::with_capacity(events.len());
                    for e in &events {
                        match Change::from_event(&self.kind, e) {
                            Ok(c) => changes.push(Arc::new(c)),
                            Err(err) => tracing::warn!("skipping undecodable change: {err}"),
                        }
                    }
                    self.publish(changes);
                }
                Some(Ok(WatchMessage::Progress { revision })) => self.progress(revision),
                Some(Err(WatchEnd::TooSlow { .. })) => return Err("the cache fell behind".into()),
                Some(Err(WatchEnd::Stopped(reason))) => {
                    self.reset(0);
                    return Err(reason);
                }
                None => return Err("store watch ended".into()),
            }
        }
    }

    /// Drops every watcher (they resume from their last revision) and the buffer.
    fn reset(&self, revision: i64) {
        let mut st = self.lock();
        *st = State {
            start: revision,
            evicted_upto: revision,
            revision,
            ..State::default()
        };
        self.announce(revision);
    }

    fn publish(&self, changes: Vec<Arc<Change>>) {
        let terminated = &self.terminated;
        let mut st = self.lock();
        for change in changes {
            st.revision = st.revision.max(change.revision);
            st.subscribers.retain(|s| s.offer(&change, terminated));
            if !st.by_node.is_empty() {
                let (now, before) = change.node_names();
                if now.is_none() && before.is_none() {
                    // Not read as a pod: every node's watcher gets it to look at.
                    st.by_node.retain(|_, list| {
                        list.retain(|s| s.offer(&change, terminated));
                        !list.is_empty()
                    });
                } else {
                    // Only the one or two nodes concerned are touched: this runs for
                    // every pod change, with thousands of nodes watching.
                    for node in [now, before.filter(|b| Some(*b) != now)]
                        .into_iter()
                        .flatten()
                    {
                        if let Some(list) = st.by_node.get_mut(node) {
                            list.retain(|s| s.offer(&change, terminated));
                            if list.is_empty() {
                                st.by_node.remove(node);
                            }
                        }
                    }
                }
            }
            st.changes.push_back(change);
            if st.changes.len() > CACHE_EVENTS
                && let Some(old) = st.changes.pop_front()
            {
                st.evicted_upto = old.revision;
            }
        }
        self.announce(st.revision);
    }

    fn progress(&self, revision: i64) {
        let mut st = self.lock();
        st.revision = st.revision.max(revision);
        let r = st.revision;
        let open = |s: &Subscriber| {
            !matches!(
                s.tx.try_send(Message::Progress(r)),
                Err(mpsc::error::TrySendError::Closed(_))
            )
        };
        st.subscribers.retain(open);
        st.by_node.retain(|_, list| {
            list.retain(open);
            !list.is_empty()
        });
        self.announce(r);
    }

    /// Watches keys under `prefix` for changes after `revision`; 410 if the store
    /// has compacted that history away (even where the cache still holds it, so that
    /// every member answers alike). Callers wait for a future `revision` first
    /// ([`WatchCache::wait_until_fresh`]); one with no revision after it is a 504.
    /// `node`: a pod watcher confined to that node's pods ([`Filter::node_trigger`]),
    /// handed only their changes.
    pub async fn subscribe(
        self: &Arc<Self>,
        prefix: &str,
        revision: i64,
        node: Option<String>,
    ) -> ApiResult<Subscription> {
        // Checked: `revision + 1` near `i64::MAX` would wrap and read as "too old".
        let Some(first) = revision.checked_add(1) else {
            let current = *self.seen.borrow();
            return Err(too_large_resource_version(revision.unsigned_abs(), current));
        };
        let probe = RangeRequest {
            key: prefix.as_bytes().to_vec(),
            count_only: true,
            ..RangeRequest::default()
        };
        let now = self
            .store
            .range(probe, false)
            .await
            .map_err(|e| crate::status::store_error(&self.kind, "", e))?;
        if first < now.compact_revision {
            return Err(ApiError::gone(format!(
                "too old resource version: {revision} ({})",
                now.compact_revision
            )));
        }
        if let Some(sub) = self.join(prefix, revision, node.as_deref()) {
            return Ok(sub);
        }
        let request = WatchRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            start_revision: first,
        };
        metrics::WATCH_CATCHUPS
            .with_label_values(&[&self.kind.qualified_plural()])
            .inc();
        self.store
            .watch(request)
            .await
            .map(|stream| {
                Subscription::Store(Box::new(Catchup {
                    stream,
                    pending: Vec::new().into_iter(),
                    handed: revision,
                    cache: self.clone(),
                    prefix: prefix.to_string(),
                    node,
                }))
            })
            .map_err(|e| crate::status::store_error(&self.kind, "", e))
    }

    /// A subscription from the cache for changes after `revision`, if the cache
    /// still holds every one of them. Live changes up to `revision` that the cache
    /// publishes after this (it may be behind the store, and a watcher joining from
    /// the store has had them) are skipped.
    fn join(&self, prefix: &str, revision: i64, node: Option<&str>) -> Option<Subscription> {
        let mut st = self.lock();
        // The cache can serve a revision if every change after it is still held.
        if st.start == 0 || revision < st.evicted_upto {
            return None;
        }
        let backlog = st
            .changes
            .iter()
            .filter(|c| c.revision > revision && c.key.starts_with(prefix.as_bytes()))
            .cloned()
            .collect();
        let (tx, rx) = mpsc::channel(WATCHER_QUEUE);
        let subscriber = Subscriber {
            prefix: prefix.as_bytes().to_vec(),
            tx,
        };
        match node {
            Some(node) => st
                .by_node
                .entry(node.to_string())
                .or_default()
                .push(subscriber),
            None => st.subscribers.push(subscriber),
        }
        Some(Subscription::Cache {
            backlog,
            rx,
            after: revision,
        })
    }

    /// How many watchers read from this cache.
    pub fn watchers(&self) -> usize {
        let mut st = self.lock();
        st.subscribers.retain(|s| !s.tx.is_closed());
        st.by_node.retain(|_, list| {
            list.retain(|s| !s.tx.is_closed());
            !list.is_empty()
        });
        st.subscribers.len() + st.by_node.values().map(Vec::len).sum::<usize>()
    }
}

#[cfg(test)]
mod tests;

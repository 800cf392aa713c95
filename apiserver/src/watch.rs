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
use rk8s_api::selector::Selectable;
use rk8s_api::{AnyObject, ObjectKind};
use rk8s_raftstore::proto::{KeyValue, RangeRequest};
use rk8s_raftstore::server::Store;
use rk8s_raftstore::watch::{WatchEnd, WatchMessage, WatchRequest, WatchStream};
use rk8s_raftstore::{Error as StoreError, EventKind, prefix_end};
use tokio::sync::mpsc;

use crate::list_options::Filter;
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

fn decoded(kind: &ObjectKind, key: &[u8], value: &[u8], revision: i64) -> Option<AnyObject> {
    let kv = KeyValue {
        key: key.to_vec(),
        value: value.to_vec(),
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
            .map(|kv| (Bytes::from(kv.value.clone()), kv.mod_revision));
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
    /// gone or too slow (a full queue: dropping its sender ends its stream after what
    /// is queued).
    fn offer(&self, change: &Arc<Change>) -> bool {
        !change.key.starts_with(&self.prefix)
            || self.tx.try_send(Message::Change(change.clone())).is_ok()
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
}

/// Where a watcher's messages come from.
pub enum Subscription {
    /// The cache: what it had buffered, then live messages.
    Cache {
        /// Buffered changes after the requested revision.
        backlog: VecDeque<Arc<Change>>,
        /// Live messages; closed when the watcher is disconnected.
        rx: mpsc::Receiver<Message>,
    },
    /// A watch straight on the store (for a revision the cache no longer holds).
    Store {
        /// The store's watch.
        stream: WatchStream,
        /// Changes it sent that are not handed out yet: its first message holds the
        /// whole history since the requested revision, which is turned into served
        /// changes [`STORE_CHUNK`] at a time, each chunk once the last is written, so
        /// that a watcher resuming far behind never has two copies of it at once.
        pending: std::vec::IntoIter<rk8s_raftstore::Event>,
    },
}

/// How many changes read from the store a watcher is handed at a time.
const STORE_CHUNK: usize = 256;

impl Subscription {
    /// The next messages; `None` when the subscription has ended, with the reason
    /// when there is one to tell.
    pub async fn next(&mut self, kind: &ObjectKind) -> Result<Vec<Message>, Option<ApiError>> {
        match self {
            Subscription::Cache { backlog, rx } => {
                if !backlog.is_empty() {
                    return Ok(backlog.drain(..).map(Message::Change).collect());
                }
                match rx.recv().await {
                    Some(m) => Ok(vec![m]),
                    None => Err(None),
                }
            }
            Subscription::Store { stream, pending } => {
                if pending.len() == 0 {
                    match stream.next().await {
                        Some(Ok(WatchMessage::Events(events))) => *pending = events.into_iter(),
                        Some(Ok(WatchMessage::Progress { revision })) => {
                            return Ok(vec![Message::Progress(revision)]);
                        }
                        Some(Err(WatchEnd::TooSlow { .. })) | None => return Err(None),
                        Some(Err(WatchEnd::Stopped(reason))) => {
                            return Err(Some(ApiError::unavailable(reason)));
                        }
                    }
                }
                pending
                    .by_ref()
                    .take(STORE_CHUNK)
                    .map(|e| Change::from_event(kind, &e).map(|c| Message::Change(Arc::new(c))))
                    .collect::<ApiResult<_>>()
                    .map_err(Some)
            }
        }
    }
}

impl WatchCache {
    /// A cache for `kind`; [`WatchCache::run`] fills it.
    pub fn new(kind: ObjectKind, store: Store) -> Arc<Self> {
        Arc::new(WatchCache {
            kind,
            store,
            state: Mutex::new(State::default()),
            seen: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Tells waiting requests the newest revision the cache has seen.
    fn announce(&self, revision: i64) {
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
            match self.follow().await {
                Ok(()) => return,
                Err(e) => {
                    tracing::debug!(kind = self.kind.plural, "watch cache restarts: {e}");
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
        let mut st = self.lock();
        for change in changes {
            st.revision = st.revision.max(change.revision);
            st.subscribers.retain(|s| s.offer(&change));
            if !st.by_node.is_empty() {
                let (now, before) = change.node_names();
                if now.is_none() && before.is_none() {
                    // Not read as a pod: every node's watcher gets it to look at.
                    st.by_node.retain(|_, list| {
                        list.retain(|s| s.offer(&change));
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
                            list.retain(|s| s.offer(&change));
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
        &self,
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
        {
            let mut st = self.lock();
            // The cache can serve a revision if every change after it is still held.
            if st.start > 0 && revision >= st.evicted_upto {
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
                    Some(node) => st.by_node.entry(node).or_default().push(subscriber),
                    None => st.subscribers.push(subscriber),
                }
                return Ok(Subscription::Cache { backlog, rx });
            }
        }
        let request = WatchRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            start_revision: first,
        };
        self.store
            .watch(request)
            .await
            .map(|stream| Subscription::Store {
                stream,
                pending: Vec::new().into_iter(),
            })
            .map_err(|e| crate::status::store_error(&self.kind, "", e))
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
mod tests {
    use super::*;
    use rk8s_api::object::kind_named;
    use rk8s_raftstore::server::MemberConfig;

    /// A one-member store in `dir` that leads, and the pods' watch cache over it.
    async fn pods_cache(dir: &std::path::Path) -> (Store, Arc<WatchCache>) {
        let mut cfg = MemberConfig::new(dir, "127.0.0.1:0".parse().unwrap());
        cfg.sync = false;
        cfg.tick = Duration::from_millis(20);
        let store = rk8s_raftstore::server::start(cfg).await.unwrap();
        let mut leadership = store.leadership();
        tokio::time::timeout(Duration::from_secs(10), leadership.wait_for(|l| l.is_self))
            .await
            .unwrap()
            .unwrap();
        let cache = WatchCache::new(kind_named("Pod").unwrap(), store.clone());
        tokio::spawn(cache.clone().run());
        (store, cache)
    }

    async fn put(store: &Store, key: &str) -> i64 {
        store
            .put(key.as_bytes(), b"{}", 0, None)
            .await
            .unwrap()
            .revision
    }

    #[test]
    fn a_change_is_served_from_its_stored_bytes_and_decoded_only_when_asked() {
        let kind = kind_named("Pod").unwrap();
        let stored = |image: &str| {
            let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": image}]}});
            registry::encode(&AnyObject::from_value(&kind, pod).unwrap().unwrap())
        };
        let kv = |value: Vec<u8>, revision: i64| KeyValue {
            key: b"/registry/pods/default/web".to_vec(),
            value,
            mod_revision: revision,
            ..KeyValue::default()
        };
        let served_as = |value: Vec<u8>, revision: i64| {
            let obj = registry::decode(&kind, &kv(value, revision)).unwrap();
            obj.to_json()
        };

        let put = rk8s_raftstore::Event {
            kind: EventKind::Put,
            kv: kv(stored("b"), 7),
            prev_kv: Some(kv(stored("a"), 5)),
        };
        let c = Change::from_event(&kind, &put).unwrap();
        assert_eq!(c.json, served_as(stored("b"), 7));
        assert!(c.object.get().is_none() && c.prev.get().is_none());
        assert!(c.exists() && c.existed());
        let version = |o: Option<&AnyObject>| o.and_then(|o| o.metadata().resource_version.clone());
        assert_eq!(version(c.object()), Some("7".into()));
        assert_eq!(version(c.prev()), Some("5".into()));
        let app = |l: Option<&Labels>| l.and_then(|l| l.get("app").cloned());
        assert_eq!(app(c.labels()), Some("web".into()));
        assert_eq!(app(c.prev_labels()), Some("web".into()));

        // A pod's field selector reads its JSON alone, as labels do: nothing decoded.
        let c = Change::from_event(&kind, &put).unwrap();
        let filter =
            |q: &str| Filter::from_query(&kind, &crate::request::Query::parse(Some(q))).unwrap();
        assert!(c.selected_by(&filter("fieldSelector=metadata.name%3Dweb")));
        assert!(c.was_selected_by(&filter(
            "fieldSelector=spec.nodeName%3D&labelSelector=app%3Dweb"
        )));
        assert!(!c.selected_by(&filter("fieldSelector=status.phase%3DRunning")));
        assert!(c.object.get().is_none() && c.prev.get().is_none());

        // A deletion shows the last state with the deletion's resourceVersion.
        let delete = rk8s_raftstore::Event {
            kind: EventKind::Delete,
            kv: kv(Vec::new(), 9),
            prev_kv: Some(kv(stored("b"), 7)),
        };
        let c = Change::from_event(&kind, &delete).unwrap();
        assert_eq!(c.json, served_as(stored("b"), 9));
        assert!(!c.exists() && c.existed());
        assert!(c.object().is_none() && c.labels().is_none());
        assert_eq!(version(c.shown()), Some("7".into()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revision_the_store_has_is_served_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let (store, cache) = pods_cache(dir.path()).await;
        // Written under another resource: the pods' cache has not seen it.
        let revision = put(&store, "/registry/nodes/n1").await;
        let started = tokio::time::Instant::now();
        cache.wait_until_fresh(revision as u64).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        store.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revision_written_during_the_wait_ends_it() {
        let dir = tempfile::tempdir().unwrap();
        let (store, cache) = pods_cache(dir.path()).await;
        let revision = put(&store, "/registry/nodes/n1").await;
        let writer = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            put(&writer, "/registry/nodes/n2").await;
        });
        let started = tokio::time::Instant::now();
        cache.wait_until_fresh(revision as u64 + 1).await.unwrap();
        assert!(started.elapsed() < FRESHNESS_TIMEOUT);
        store.shutdown();
    }

    /// The revisions of the changes queued for `sub` until it has `count` of them.
    async fn revisions_seen(sub: &mut Subscription, count: usize) -> Vec<i64> {
        let kind = kind_named("Pod").unwrap();
        let mut seen = Vec::new();
        while seen.len() < count {
            let next = tokio::time::timeout(Duration::from_secs(10), sub.next(&kind));
            for m in next.await.unwrap().unwrap() {
                if let Message::Change(c) = m {
                    seen.push(c.revision);
                }
            }
        }
        seen
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_watcher_confined_to_a_node_is_handed_only_that_nodes_pods() {
        let dir = tempfile::tempdir().unwrap();
        let (store, cache) = pods_cache(dir.path()).await;
        let first = put(&store, "/registry/pods/default/first").await;
        cache.wait_until_fresh(first as u64).await.unwrap();
        // A revision after the cache started, so that it serves these watchers.
        let start = put(&store, "/registry/pods/default/second").await;
        cache.wait_until_fresh(start as u64).await.unwrap();
        let prefix = "/registry/pods/";
        let mut on_a = cache
            .subscribe(prefix, start, Some("a".into()))
            .await
            .unwrap();
        let mut on_b = cache
            .subscribe(prefix, start, Some("b".into()))
            .await
            .unwrap();
        let mut unbound = cache
            .subscribe(prefix, start, Some(String::new()))
            .await
            .unwrap();
        let mut all = cache.subscribe(prefix, start, None).await.unwrap();
        assert_eq!(cache.watchers(), 4);
        let pod = |node: Option<&str>| {
            let mut spec = serde_json::json!({"containers": [{"name": "c", "image": "i"}]});
            if let Some(n) = node {
                spec["nodeName"] = n.into();
            }
            serde_json::to_vec(&serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web", "namespace": "default"}, "spec": spec}))
            .unwrap()
        };
        let key = b"/registry/pods/default/web";
        let write = |value: Vec<u8>| {
            let store = store.clone();
            async move { store.put(key, &value, 0, None).await.unwrap().revision }
        };
        let created = write(pod(None)).await;
        let bound = write(pod(Some("a"))).await;
        let running = write(pod(Some("a"))).await;
        let deleted = store.delete(key, None).await.unwrap().revision;
        let elsewhere = store
            .put(b"/registry/pods/default/other", &pod(Some("b")), 0, None)
            .await
            .unwrap()
            .revision;
        assert_eq!(
            revisions_seen(&mut on_a, 3).await,
            [bound, running, deleted]
        );
        assert_eq!(revisions_seen(&mut on_b, 1).await, [elsewhere]);
        // The unbound pod's watcher sees it created, and bound (gone from its view).
        assert_eq!(revisions_seen(&mut unbound, 2).await, [created, bound]);
        assert_eq!(
            revisions_seen(&mut all, 5).await,
            [created, bound, running, deleted, elsewhere]
        );
        // Nothing else was queued for the confined watchers; bookmarks still come.
        cache.progress(elsewhere + 1);
        for sub in [&mut on_a, &mut on_b, &mut unbound] {
            let kind = kind_named("Pod").unwrap();
            let next = sub.next(&kind).await.unwrap();
            assert!(
                matches!(next[..], [Message::Progress(r)] if r > elsewhere),
                "{:?}",
                next.iter()
                    .map(|m| matches!(m, Message::Change(_)))
                    .collect::<Vec<_>>()
            );
        }
        store.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn history_from_the_store_is_handed_out_a_chunk_at_a_time_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _cache) = pods_cache(dir.path()).await;
        let mut written = Vec::new();
        for i in 0..STORE_CHUNK * 2 + 10 {
            written.push(put(&store, &format!("/registry/pods/default/p{}", i % 7)).await);
        }
        let prefix = b"/registry/pods/".to_vec();
        let stream = store
            .watch(WatchRequest {
                range_end: prefix_end(&prefix),
                key: prefix,
                start_revision: written[0],
            })
            .await
            .unwrap();
        let mut sub = Subscription::Store {
            stream,
            pending: Vec::new().into_iter(),
        };
        let kind = kind_named("Pod").unwrap();
        let mut seen = Vec::new();
        while seen.len() < written.len() {
            let chunk = sub.next(&kind).await.unwrap();
            assert!(!chunk.is_empty() && chunk.len() <= STORE_CHUNK);
            for m in chunk {
                if let Message::Change(c) = m {
                    seen.push(c.revision);
                }
            }
        }
        assert_eq!(seen, written);
        store.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_future_revision_is_a_504_after_three_seconds_in_kube_apiserver_words() {
        let dir = tempfile::tempdir().unwrap();
        let (store, cache) = pods_cache(dir.path()).await;
        let revision = put(&store, "/registry/pods/default/web").await;
        let started = tokio::time::Instant::now();
        let e = cache
            .wait_until_fresh(revision as u64 + 1000)
            .await
            .unwrap_err();
        let waited = started.elapsed();
        assert!(
            (FRESHNESS_TIMEOUT..FRESHNESS_TIMEOUT + Duration::from_secs(2)).contains(&waited),
            "{waited:?}"
        );
        assert_eq!((e.code.as_u16(), e.reason), (504, "Timeout"));
        assert_eq!(
            e.message,
            format!(
                "Timeout: Too large resource version: {}, current: {revision}",
                revision + 1000
            )
        );
        let details = e.details.unwrap();
        assert_eq!(details.retry_after_seconds, Some(1));
        let cause = &details.causes.unwrap()[0];
        assert_eq!(
            (cause.reason.as_deref(), cause.message.as_deref()),
            (
                Some("ResourceVersionTooLarge"),
                Some("Too large resource version")
            )
        );
        store.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_watch_after_the_last_revision_there_can_be_is_too_large_not_too_old() {
        let dir = tempfile::tempdir().unwrap();
        let (store, cache) = pods_cache(dir.path()).await;
        let e = cache
            .subscribe("/registry/pods/", i64::MAX, None)
            .await
            .err()
            .unwrap();
        assert_eq!((e.code.as_u16(), e.reason), (504, "Timeout"));
        assert!(
            e.message
                .starts_with("Timeout: Too large resource version: 9223372036854775807, current: "),
            "{}",
            e.message
        );
        store.shutdown();
    }
}

//! Watch fan-out: one store watch per resource feeds a cache of recent events, and
//! every API watcher of that resource reads from the cache. Each watcher has a bounded
//! queue; one that falls behind is disconnected (its client resumes from the last
//! `resourceVersion` it saw, as every Kubernetes client does), so a slow watcher never
//! holds back the others or grows memory.
//!
//! A watch from a revision older than the cache holds goes to the store directly,
//! which keeps history back to the last compaction.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use rk8s_api::{AnyObject, ObjectKind};
use rk8s_raftstore::proto::RangeRequest;
use rk8s_raftstore::server::Store;
use rk8s_raftstore::watch::{WatchEnd, WatchMessage, WatchRequest, WatchStream};
use rk8s_raftstore::{Error as StoreError, EventKind, prefix_end};
use tokio::sync::mpsc;

use crate::registry;
use crate::status::{ApiError, ApiResult};

/// Events kept per resource for watchers that resume.
pub const CACHE_EVENTS: usize = 4096;
/// Messages queued per watcher before it is disconnected.
pub const WATCHER_QUEUE: usize = 1024;

/// One change, decoded once for every watcher.
#[derive(Debug)]
pub struct Change {
    /// The store revision of the change.
    pub revision: i64,
    /// The object's store key.
    pub key: Vec<u8>,
    /// The object after the change (`None` for a deletion).
    pub object: Option<AnyObject>,
    /// The object before the change (`None` for a creation).
    pub prev: Option<AnyObject>,
    /// The JSON sent for this change: the new object, or for a deletion the last state
    /// with the deletion's `resourceVersion`.
    pub json: Bytes,
}

impl Change {
    fn from_event(kind: &ObjectKind, e: &rk8s_raftstore::Event) -> ApiResult<Self> {
        let prev = e
            .prev_kv
            .as_ref()
            .map(|kv| registry::decode(kind, kv))
            .transpose()?;
        let (object, shown) = match e.kind {
            EventKind::Put => {
                let o = registry::decode(kind, &e.kv)?;
                (Some(o.clone()), Some(o))
            }
            EventKind::Delete => {
                let shown = prev.clone().map(|mut p| {
                    p.metadata_mut().resource_version = Some(e.kv.mod_revision.to_string());
                    p
                });
                (None, shown)
            }
        };
        let json = shown
            .map(|o| Bytes::from(serde_json::to_vec(&o.to_value()).unwrap_or_default()))
            .unwrap_or_default();
        Ok(Change {
            revision: e.kv.mod_revision,
            key: e.kv.key.clone(),
            object,
            prev,
            json,
        })
    }

    /// The object shown for this change (the last state, for a deletion).
    pub fn shown(&self) -> Option<&AnyObject> {
        self.object.as_ref().or(self.prev.as_ref())
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
}

/// The watch cache of one resource.
pub struct WatchCache {
    kind: ObjectKind,
    store: Store,
    state: Mutex<State>,
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
    Store(WatchStream),
}

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
            Subscription::Store(stream) => match stream.next().await {
                Some(Ok(WatchMessage::Events(events))) => events
                    .iter()
                    .map(|e| Change::from_event(kind, e).map(|c| Message::Change(Arc::new(c))))
                    .collect::<ApiResult<_>>()
                    .map_err(Some),
                Some(Ok(WatchMessage::Progress { revision })) => {
                    Ok(vec![Message::Progress(revision)])
                }
                Some(Err(WatchEnd::TooSlow { .. })) | None => Err(None),
                Some(Err(WatchEnd::Stopped(reason))) => Err(Some(ApiError::unavailable(reason))),
            },
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
        })
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
            start_revision: start + 1,
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
    }

    fn publish(&self, changes: Vec<Arc<Change>>) {
        let mut st = self.lock();
        for change in changes {
            st.revision = st.revision.max(change.revision);
            st.subscribers.retain(|s| {
                if !change.key.starts_with(&s.prefix) {
                    return true;
                }
                // A full queue means the watcher is too slow: dropping its sender
                // ends its stream after what is queued.
                s.tx.try_send(Message::Change(change.clone())).is_ok()
            });
            st.changes.push_back(change);
            if st.changes.len() > CACHE_EVENTS
                && let Some(old) = st.changes.pop_front()
            {
                st.evicted_upto = old.revision;
            }
        }
    }

    fn progress(&self, revision: i64) {
        let mut st = self.lock();
        st.revision = st.revision.max(revision);
        let r = st.revision;
        st.subscribers.retain(|s| {
            !matches!(
                s.tx.try_send(Message::Progress(r)),
                Err(mpsc::error::TrySendError::Closed(_))
            )
        });
    }

    /// Watches keys under `prefix` for changes after `revision`; 410 if the store
    /// has compacted that history away (even where the cache still holds it, so that
    /// every member answers alike).
    pub async fn subscribe(&self, prefix: &str, revision: i64) -> ApiResult<Subscription> {
        let probe = RangeRequest {
            key: prefix.as_bytes().to_vec(),
            count_only: true,
            ..RangeRequest::default()
        };
        let now = self
            .store
            .range(probe, false)
            .await
            .map_err(|e| ApiError::from_store(&self.kind, "", e))?;
        if revision + 1 < now.compact_revision {
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
                st.subscribers.push(Subscriber {
                    prefix: prefix.as_bytes().to_vec(),
                    tx,
                });
                return Ok(Subscription::Cache { backlog, rx });
            }
        }
        let request = WatchRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            start_revision: revision + 1,
        };
        self.store
            .watch(request)
            .await
            .map(Subscription::Store)
            .map_err(|e| ApiError::from_store(&self.kind, "", e))
    }

    /// How many watchers read from this cache.
    pub fn watchers(&self) -> usize {
        let mut st = self.lock();
        st.subscribers.retain(|s| !s.tx.is_closed());
        st.subscribers.len()
    }
}

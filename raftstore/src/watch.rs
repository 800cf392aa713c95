//! Watches: ordered, gap-free streams of changes under a key range, from any retained
//! revision, fed by the state machine as it applies entries.
//!
//! Each watcher has a bounded buffer. Writers never wait for a watcher: one that falls
//! behind by more than its buffer is cancelled with [`WatchEnd::TooSlow`], which says
//! the revision to resume from, so memory stays bounded and nothing is silently lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::mvcc::{Event, Mvcc};
use crate::transform::{ValueTransformer, events_from_storage};

/// Messages buffered per watcher before it counts as too slow.
pub const DEFAULT_WATCH_BUFFER: usize = 1024;

/// What to watch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchRequest {
    /// First key of the range.
    pub key: Vec<u8>,
    /// End of the range (etcd encoding: empty for one key, `[0]` for all keys from
    /// `key`; see [`crate::prefix_end`] for prefixes).
    pub range_end: Vec<u8>,
    /// First revision to deliver; 0 for "changes after now".
    pub start_revision: i64,
}

/// One message of a watch stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchMessage {
    /// Changes, in revision order.
    Events(Vec<Event>),
    /// A bookmark: every change up to `revision` has been delivered.
    Progress {
        /// The store's revision.
        revision: i64,
    },
}

/// Why a watch stream ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WatchEnd {
    /// The watcher did not keep up: resume with a new watch from `resume_revision`.
    #[error(
        "watcher fell more than {buffer} messages behind; resume from revision {resume_revision}"
    )]
    TooSlow {
        /// The buffer that overflowed.
        buffer: usize,
        /// The first revision not delivered.
        resume_revision: i64,
    },
    /// The store stopped serving (shut down, or the member was removed).
    #[error("the store stopped: {0}")]
    Stopped(String),
}

/// The receiving end of a watch.
#[derive(Debug)]
pub struct WatchStream {
    id: u64,
    rx: mpsc::Receiver<WatchMessage>,
    end: Arc<Mutex<Option<WatchEnd>>>,
    ended: bool,
    /// Turns the events' stored values back into what was written (see
    /// [`crate::transform`]); the reader's task does it, not the raft thread.
    transformer: Option<Arc<dyn ValueTransformer>>,
}

impl WatchStream {
    /// This watch's id (to cancel it).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The stream with its events' values turned back by `transformer`; a value it
    /// cannot turn back ends the stream (kube-apiserver's watch ends with the error).
    pub(crate) fn with_transformer(mut self, transformer: Arc<dyn ValueTransformer>) -> Self {
        self.transformer = Some(transformer);
        self
    }

    /// The next message; `Some(Err(_))` once with the reason when the stream ends, then
    /// `None`.
    pub async fn next(&mut self) -> Option<Result<WatchMessage, WatchEnd>> {
        if self.ended {
            return None;
        }
        match self.rx.recv().await {
            Some(m) => Some(self.readable(m)),
            None => self.finish(),
        }
    }

    /// Like [`WatchStream::next`] without waiting: `None` if nothing is buffered.
    pub fn try_next(&mut self) -> Option<Result<WatchMessage, WatchEnd>> {
        if self.ended {
            return None;
        }
        match self.rx.try_recv() {
            Ok(m) => Some(self.readable(m)),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => self.finish(),
        }
    }

    /// `m` with its values turned back; the stream's end when that fails.
    fn readable(&mut self, m: WatchMessage) -> Result<WatchMessage, WatchEnd> {
        let Some(t) = self.transformer.clone() else {
            return Ok(m);
        };
        let mut events = match m {
            WatchMessage::Events(events) => events,
            other => return Ok(other),
        };
        match events_from_storage(t.as_ref(), &mut events) {
            Ok(()) => Ok(WatchMessage::Events(events)),
            Err(e) => {
                self.ended = true;
                self.rx.close();
                Err(WatchEnd::Stopped(e.to_string()))
            }
        }
    }

    fn finish(&mut self) -> Option<Result<WatchMessage, WatchEnd>> {
        if self.ended {
            return None;
        }
        self.ended = true;
        let reason = self
            .end
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_else(|| WatchEnd::Stopped("watch cancelled".into()));
        Some(Err(reason))
    }
}

#[derive(Debug)]
struct Watcher {
    key: Vec<u8>,
    range_end: Vec<u8>,
    tx: mpsc::Sender<WatchMessage>,
    end: Arc<Mutex<Option<WatchEnd>>>,
    /// The first revision this watcher has not been sent yet.
    next_revision: i64,
}

impl Watcher {
    fn close(self, reason: WatchEnd) {
        *self.end.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
        // Dropping `tx` ends the stream once the buffered messages are read.
    }
}

/// Every watch of one store member.
#[derive(Debug)]
pub struct WatchHub {
    watchers: HashMap<u64, Watcher>,
    next_id: u64,
    buffer: usize,
}

impl Default for WatchHub {
    fn default() -> Self {
        Self::new(DEFAULT_WATCH_BUFFER)
    }
}

impl WatchHub {
    /// A hub whose watchers buffer up to `buffer` messages.
    pub fn new(buffer: usize) -> Self {
        WatchHub {
            watchers: HashMap::new(),
            next_id: 1,
            buffer: buffer.max(2),
        }
    }

    /// Number of open watches.
    pub fn len(&self) -> usize {
        self.watchers.len()
    }

    /// Whether no watch is open.
    pub fn is_empty(&self) -> bool {
        self.watchers.is_empty()
    }

    /// Starts a watch. History from `start_revision` up to now is sent first (as one
    /// message), then every change as it is applied. Fails with `Compacted` when that
    /// history is gone.
    pub fn watch(&mut self, mvcc: &Mvcc, req: &WatchRequest) -> Result<WatchStream> {
        let current = mvcc.revision();
        let start = if req.start_revision <= 0 {
            current + 1
        } else {
            req.start_revision
        };
        let history = if start <= current {
            mvcc.events_since(&req.key, &req.range_end, start)?
        } else if start <= mvcc.compact_revision() {
            return Err(Error::Compacted {
                requested: start,
                compact_revision: mvcc.compact_revision(),
            });
        } else {
            Vec::new()
        };
        let (tx, rx) = mpsc::channel(self.buffer);
        if !history.is_empty() {
            // The channel is new and empty: this cannot fail.
            let _ = tx.try_send(WatchMessage::Events(history));
        }
        let id = self.next_id;
        self.next_id += 1;
        let end = Arc::new(Mutex::new(None));
        self.watchers.insert(
            id,
            Watcher {
                key: req.key.clone(),
                range_end: req.range_end.clone(),
                tx,
                end: end.clone(),
                next_revision: if start <= current { current + 1 } else { start },
            },
        );
        Ok(WatchStream {
            id,
            rx,
            end,
            ended: false,
            transformer: None,
        })
    }

    /// Cancels a watch.
    pub fn cancel(&mut self, id: u64) {
        if let Some(w) = self.watchers.remove(&id) {
            w.close(WatchEnd::Stopped("watch cancelled".into()));
        }
    }

    /// Ends every watch (shutdown).
    pub fn close_all(&mut self, reason: &str) {
        for (_, w) in self.watchers.drain() {
            w.close(WatchEnd::Stopped(reason.to_string()));
        }
    }

    /// Delivers the changes of one applied command (all at one revision).
    pub fn notify(&mut self, events: &[Event]) {
        let Some(revision) = events.first().map(Event::revision) else {
            return;
        };
        let buffer = self.buffer;
        let mut dead = Vec::new();
        for (id, w) in &mut self.watchers {
            // A member replaying its log after a restart applies revisions the watcher
            // asked to skip.
            if revision < w.next_revision {
                continue;
            }
            let matching: Vec<Event> = events
                .iter()
                .filter(|e| Mvcc::key_in_range(&e.kv.key, &w.key, &w.range_end))
                .cloned()
                .collect();
            if matching.is_empty() {
                continue;
            }
            match w.tx.try_send(WatchMessage::Events(matching)) {
                Ok(()) => w.next_revision = revision + 1,
                Err(mpsc::error::TrySendError::Full(_)) => dead.push((
                    *id,
                    Some(WatchEnd::TooSlow {
                        buffer,
                        resume_revision: w.next_revision,
                    }),
                )),
                Err(mpsc::error::TrySendError::Closed(_)) => dead.push((*id, None)),
            }
        }
        for (id, reason) in dead {
            if let (Some(w), Some(reason)) = (self.watchers.remove(&id), reason) {
                w.close(reason);
            }
        }
    }

    /// Sends a bookmark with the current revision to every watcher with room for it
    /// (a full buffer skips the bookmark: it is only a hint).
    pub fn progress(&mut self, revision: i64) {
        self.watchers.retain(
            |_, w| match w.tx.try_send(WatchMessage::Progress { revision }) {
                Ok(()) => {
                    w.next_revision = w.next_revision.max(revision + 1);
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => true,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateMachine;
    use crate::{ops, prefix_end};

    fn apply(sm: &mut StateMachine, hub: &mut WatchHub, key: &str) {
        let (r, events) = sm.apply(&ops::put(key.as_bytes(), b"v", 0, None));
        assert!(r.is_ok());
        hub.notify(&events);
    }

    fn revisions(msg: Option<Result<WatchMessage, WatchEnd>>) -> Vec<i64> {
        match msg {
            Some(Ok(WatchMessage::Events(e))) => e.iter().map(Event::revision).collect(),
            other => panic!("expected events, got {other:?}"),
        }
    }

    fn prefix(p: &str, start_revision: i64) -> WatchRequest {
        WatchRequest {
            key: p.as_bytes().to_vec(),
            range_end: prefix_end(p.as_bytes()),
            start_revision,
        }
    }

    #[test]
    fn a_watch_replays_history_then_follows_live_changes() {
        let mut sm = StateMachine::default();
        let mut hub = WatchHub::new(8);
        apply(&mut sm, &mut hub, "/a/1"); // 1
        apply(&mut sm, &mut hub, "/b/1"); // 2
        apply(&mut sm, &mut hub, "/a/2"); // 3
        let mut w = hub.watch(&sm.mvcc, &prefix("/a/", 1)).unwrap();
        assert_eq!(revisions(w.try_next()), [1, 3]);
        apply(&mut sm, &mut hub, "/b/2"); // 4: not ours
        apply(&mut sm, &mut hub, "/a/3"); // 5
        assert_eq!(revisions(w.try_next()), [5]);
        assert!(w.try_next().is_none());
        hub.progress(sm.mvcc.revision());
        assert_eq!(
            w.try_next(),
            Some(Ok(WatchMessage::Progress { revision: 5 }))
        );
    }

    #[test]
    fn a_slow_watcher_is_cancelled_with_where_to_resume() {
        let mut sm = StateMachine::default();
        let mut hub = WatchHub::new(2);
        let mut w = hub.watch(&sm.mvcc, &prefix("/", 0)).unwrap();
        for i in 0..5 {
            apply(&mut sm, &mut hub, &format!("/k{i}"));
        }
        assert!(hub.is_empty());
        assert_eq!(revisions(w.try_next()), [1]);
        assert_eq!(revisions(w.try_next()), [2]);
        assert_eq!(
            w.try_next(),
            Some(Err(WatchEnd::TooSlow {
                buffer: 2,
                resume_revision: 3
            }))
        );
        assert_eq!(w.try_next(), None);
        // Resuming from there misses nothing.
        let mut again = hub.watch(&sm.mvcc, &prefix("/", 3)).unwrap();
        assert_eq!(revisions(again.try_next()), [3, 4, 5]);
    }

    #[test]
    fn watching_compacted_history_fails_instead_of_skipping() {
        let mut sm = StateMachine::default();
        let mut hub = WatchHub::default();
        for i in 0..4 {
            apply(&mut sm, &mut hub, &format!("/k{i}"));
        }
        assert!(sm.apply(&ops::compact(3)).0.is_ok());
        assert_eq!(
            hub.watch(&sm.mvcc, &prefix("/", 2)).unwrap_err(),
            Error::Compacted {
                requested: 2,
                compact_revision: 3
            }
        );
        assert!(hub.watch(&sm.mvcc, &prefix("/", 4)).is_ok());
    }
}

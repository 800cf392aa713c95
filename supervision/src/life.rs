//! One supervised actor's life, shared by the actor's [`Handle`](crate::Handle)s, its
//! supervisor and the [`Actors`](crate::Actors) registry: the switch a kill trips
//! (read by the supervisor before every poll of the actor, never queued behind its
//! messages) and the counters the registry shows.

use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use futures_util::task::AtomicWaker;

const RUNNING: u8 = 0;
const KILLED: u8 = 1;
const RETIRED: u8 = 2;
const ENDED: u8 = 3;

/// What the supervisor is told to do with the actor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    /// Crash it now and start it again from scratch.
    Kill,
    /// Stop it for good.
    Retire,
}

/// Where a killed actor was when the kill landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// No reconcile in flight: only its cache was lost.
    Idle,
    /// A reconcile was in flight and had not written yet.
    Reconcile,
    /// A reconcile was in flight between two of its API writes (some done, the rest
    /// never happen): the restarted actor must converge from what the store holds.
    BetweenWrites,
}

impl Phase {
    /// The label value in `rk8s_actor_kills_total{during}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Reconcile => "reconcile",
            Phase::BetweenWrites => "between_writes",
        }
    }
}

/// The shared state of one supervised actor.
#[derive(Debug)]
pub(crate) struct Life {
    pub(crate) kind: String,
    pub(crate) name: String,
    state: AtomicU8,
    waker: AtomicWaker,
    restarts: AtomicU64,
    mailbox: AtomicI64,
    reconciling: AtomicUsize,
    writes: AtomicU64,
}

impl Life {
    pub(crate) fn new(kind: &str, name: &str) -> Self {
        Life {
            kind: kind.to_string(),
            name: name.to_string(),
            state: AtomicU8::new(RUNNING),
            waker: AtomicWaker::new(),
            restarts: AtomicU64::new(0),
            mailbox: AtomicI64::new(0),
            reconciling: AtomicUsize::new(0),
            writes: AtomicU64::new(0),
        }
    }

    /// Trips the kill switch; whether the actor was alive to be killed.
    pub(crate) fn kill(&self) -> bool {
        let tripped =
            self.state
                .compare_exchange(RUNNING, KILLED, Ordering::AcqRel, Ordering::Acquire);
        self.waker.wake();
        matches!(tripped, Ok(_) | Err(KILLED))
    }

    /// Asks the supervisor to stop the actor for good.
    pub(crate) fn retire(&self) {
        if self.state.load(Ordering::Acquire) != ENDED {
            self.state.store(RETIRED, Ordering::Release);
        }
        self.waker.wake();
    }

    /// The supervisor's side: the signal waiting, if any (a kill is taken, so the
    /// next incarnation runs).
    pub(crate) fn signal(&self) -> Option<Signal> {
        match self.state.load(Ordering::Acquire) {
            KILLED => {
                let _ = self.state.compare_exchange(
                    KILLED,
                    RUNNING,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                Some(Signal::Kill)
            }
            RETIRED | ENDED => Some(Signal::Retire),
            _ => None,
        }
    }

    /// Wakes `waker` at the next kill or retirement.
    pub(crate) fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    /// The supervisor let the actor go.
    pub(crate) fn end(&self) {
        self.state.store(ENDED, Ordering::Release);
    }

    /// Whether the actor runs (or is about to run again after a kill).
    pub(crate) fn alive(&self) -> bool {
        matches!(self.state.load(Ordering::Acquire), RUNNING | KILLED)
    }

    pub(crate) fn restarted(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
        // The mailbox went with the incarnation.
        self.mailbox.store(0, Ordering::Relaxed);
    }

    pub(crate) fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    pub(crate) fn sent(&self) {
        self.mailbox.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn received(&self) {
        self.mailbox.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn mailbox(&self) -> u64 {
        u64::try_from(self.mailbox.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// A reconcile begins (the first of several in flight resets the write count).
    pub(crate) fn reconcile_began(&self) {
        if self.reconciling.fetch_add(1, Ordering::AcqRel) == 0 {
            self.writes.store(0, Ordering::Relaxed);
        }
    }

    /// A reconcile ended (done, or dropped by a kill).
    pub(crate) fn reconcile_ended(&self) {
        self.reconciling.fetch_sub(1, Ordering::AcqRel);
    }

    /// A reconcile in flight wrote to the API.
    pub(crate) fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn reconciling(&self) -> bool {
        self.reconciling.load(Ordering::Acquire) > 0
    }

    /// Where the actor is now, for a kill landing now.
    pub(crate) fn phase(&self) -> Phase {
        if !self.reconciling() {
            Phase::Idle
        } else if self.writes.load(Ordering::Relaxed) > 0 {
            Phase::BetweenWrites
        } else {
            Phase::Reconcile
        }
    }
}

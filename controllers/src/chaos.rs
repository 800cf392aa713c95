//! The control plane's actors by kind and name, with their restarts and mailbox
//! depth, and a way to kill any of them (`rk8s-server --enable-chaos`, for chaos
//! tests: a killed actor is restarted by its supervisor and rebuilds from the API).
//!
//! Supervisors add each actor they start and remove it when its object goes; the
//! actor shares a [`Tracker`] with the registry and counts its restarts and the
//! messages it has taken from its mailbox.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use actix::dev::ToEnvelope;
use actix::prelude::*;

use crate::common::Crash;

/// One actor's counters, shared by the actor, its supervisor and the registry.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    restarts: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
}

impl Tracker {
    /// The actor was restarted by its supervisor.
    pub fn restarted(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// A message was put in the actor's mailbox.
    pub fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// The actor took a message from its mailbox.
    pub fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    fn mailbox(&self) -> u64 {
        let sent = self.sent.load(Ordering::Relaxed);
        sent.saturating_sub(self.received.load(Ordering::Relaxed))
    }
}

/// What `rk8sctl debug actors` shows of one actor.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ActorInfo {
    /// `ReplicaSet`, `Job`, `Controller`, …
    pub kind: String,
    /// The object's `NAMESPACE/NAME`, or the controller's name.
    pub name: String,
    /// Times restarted by its supervisor.
    pub restarts: u64,
    /// Messages waiting in its mailbox.
    pub mailbox: u64,
}

struct Entry {
    kill: Box<dyn Fn() + Send>,
    tracker: Tracker,
}

/// The registry (cheap to clone: shared).
#[derive(Clone, Default)]
pub struct Actors(Arc<Mutex<BTreeMap<(String, String), Entry>>>);

impl Actors {
    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Entry>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds (or replaces) the actor `kind`/`name` at `addr`, counted by `tracker`.
    pub fn add<A>(&self, kind: &str, name: &str, addr: &Addr<A>, tracker: &Tracker)
    where
        A: Actor + Handler<Crash>,
        A::Context: ToEnvelope<A, Crash>,
    {
        let addr = addr.clone();
        self.add_with(kind, name, move || addr.do_send(Crash), tracker);
    }

    /// Adds an actor that `kill` kills (one with a crash message of its own).
    pub fn add_with(
        &self,
        kind: &str,
        name: &str,
        kill: impl Fn() + Send + 'static,
        tracker: &Tracker,
    ) {
        let entry = Entry {
            kill: Box::new(kill),
            tracker: tracker.clone(),
        };
        self.entries()
            .insert((kind.to_string(), name.to_string()), entry);
    }

    /// Forgets an actor (stopped for good).
    pub fn remove(&self, kind: &str, name: &str) {
        self.entries().remove(&(kind.to_string(), name.to_string()));
    }

    /// Forgets every actor (leadership lost: they all stop).
    pub fn clear(&self) {
        self.entries().clear();
    }

    /// Every actor, by kind and name.
    pub fn list(&self) -> Vec<ActorInfo> {
        self.entries()
            .iter()
            .map(|((kind, name), e)| ActorInfo {
                kind: kind.clone(),
                name: name.clone(),
                restarts: e.tracker.restarts.load(Ordering::Relaxed),
                mailbox: e.tracker.mailbox(),
            })
            .collect()
    }

    /// Kills `kind`/`name`; whether there was such an actor.
    pub fn kill(&self, kind: &str, name: &str) -> bool {
        let entries = self.entries();
        let Some(e) = entries.get(&(kind.to_string(), name.to_string())) else {
            return false;
        };
        (e.kill)();
        true
    }

    /// Kills an actor chosen at random; which one.
    pub fn kill_random(&self) -> Option<(String, String)> {
        let entries = self.entries();
        if entries.is_empty() {
            return None;
        }
        // A random index from the standard library's randomly seeded hasher.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let index = usize::try_from(random % entries.len() as u64).unwrap_or(0);
        let ((kind, name), e) = entries.iter().nth(index)?;
        (e.kill)();
        Some((kind.clone(), name.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Victim(Tracker);

    impl Actor for Victim {
        type Context = Context<Self>;
    }

    impl Supervised for Victim {
        fn restarting(&mut self, _ctx: &mut Context<Self>) {
            self.0.restarted();
        }
    }

    crate::common::crash_on_request!(Victim);

    #[actix::test]
    async fn killed_actors_are_counted_and_random_kills_pick_a_listed_one() {
        let actors = Actors::default();
        let tracker = Tracker::default();
        let t = tracker.clone();
        let addr = Supervisor::start(move |_| Victim(t));
        actors.add("Test", "a", &addr, &tracker);
        tracker.sent();
        tracker.sent();
        tracker.received();
        assert!(actors.kill("Test", "a"));
        assert!(!actors.kill("Test", "b"));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(
            actors.list(),
            [ActorInfo {
                kind: "Test".into(),
                name: "a".into(),
                restarts: 1,
                mailbox: 1,
            }]
        );
        assert_eq!(actors.kill_random(), Some(("Test".into(), "a".into())));
        actors.remove("Test", "a");
        assert_eq!(actors.kill_random(), None);
    }
}

//! [`Actors`]: the live actors of one process (or one leadership term) by kind and
//! name. Starting an actor through it puts it under a supervisor; the registry lists
//! it (`rk8sctl debug actors`, the agent's chaos socket, the `rk8s_actors` metrics),
//! finds it again by kind and name (a restarted parent finds the children it had),
//! kills it (chaos) and stops it for good. It also counts where kills landed.

use std::any::Any;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix::prelude::*;

use crate::Handle;
use crate::handle::Cell;
use crate::life::{Life, Phase};

/// What `rk8sctl debug actors` shows of one actor.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ActorInfo {
    /// `ReplicaSet`, `Job`, `Controller`, `Pod`, …
    pub kind: String,
    /// The object's `NAMESPACE/NAME`, or the controller's name.
    pub name: String,
    /// Times restarted by its supervisor.
    pub restarts: u64,
    /// Messages waiting in its mailbox.
    pub mailbox: u64,
    /// Whether a reconcile of it is in flight (a kill now lands mid-reconcile).
    #[serde(default)]
    pub reconciling: bool,
}

/// Where the kills of a registry landed, since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Kills {
    /// Kills of idle actors.
    pub idle: u64,
    /// Kills during a reconcile, before its first write.
    pub reconcile: u64,
    /// Kills during a reconcile, between two of its writes.
    pub between_writes: u64,
}

impl Kills {
    /// Kills that landed while a reconcile was in flight.
    pub fn mid_reconcile(&self) -> u64 {
        self.reconcile + self.between_writes
    }
}

struct Entry {
    life: Arc<Life>,
    /// The actor's `Handle<A>`, for typed look-ups.
    handle: Box<dyn Any + Send + Sync>,
}

#[derive(Default)]
struct Inner {
    entries: Mutex<BTreeMap<(String, String), Entry>>,
    kills: [AtomicU64; 3],
}

impl Inner {
    fn entries(&self) -> MutexGuard<'_, BTreeMap<(String, String), Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl crate::supervisor::Registrar for Inner {
    fn count_kill(&self, kind: &str, phase: Phase) {
        self.kills[phase as usize].fetch_add(1, Ordering::Relaxed);
        crate::kills::killed(kind, phase);
    }

    /// The actor of `life` ended: it is listed no more (unless replaced already).
    fn ended(&self, life: &Arc<Life>) {
        let mut entries = self.entries();
        let key = (life.kind.clone(), life.name.clone());
        if entries
            .get(&key)
            .is_some_and(|e| Arc::ptr_eq(&e.life, life))
        {
            entries.remove(&key);
        }
    }
}

/// The registry (cheap to clone: shared).
#[derive(Clone, Default)]
pub struct Actors(Arc<Inner>);

impl std::fmt::Debug for Actors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actors")
            .field("actors", &self.0.entries().len())
            .finish()
    }
}

impl Actors {
    /// Starts the actor `kind`/`name` from `make`, supervised: a kill starts it again
    /// from `make` (given the actor's [`Handle`]), until it stops itself or is
    /// stopped. An actor listed under the same kind and name is stopped. Must run on
    /// an actix arbiter.
    pub fn start<A, F>(&self, kind: &str, name: &str, make: F) -> Handle<A>
    where
        A: Actor<Context = Context<A>>,
        F: FnMut(Handle<A>) -> A + 'static,
    {
        let life = Arc::new(Life::new(kind, name));
        let cell = Arc::new(Cell {
            addr: Mutex::new(None),
            life: life.clone(),
        });
        let handle = Handle { cell: cell.clone() };
        let entry = Entry {
            life,
            handle: Box::new(handle.clone()),
        };
        let replaced = self
            .0
            .entries()
            .insert((kind.to_string(), name.to_string()), entry);
        if let Some(old) = replaced {
            old.life.retire();
        }
        let registry: Arc<dyn crate::supervisor::Registrar> = self.0.clone();
        crate::supervisor::supervise(cell, make, Arc::downgrade(&registry));
        handle
    }

    /// The running actor `kind`/`name` of type `A`, if any.
    pub fn get<A: Actor>(&self, kind: &str, name: &str) -> Option<Handle<A>> {
        let entries = self.0.entries();
        let entry = entries.get(&(kind.to_string(), name.to_string()))?;
        let handle = entry.handle.downcast_ref::<Handle<A>>()?;
        handle.alive().then(|| handle.clone())
    }

    /// The running actor `kind`/`name`, started from `make` if there is none.
    pub fn get_or_start<A, F>(&self, kind: &str, name: &str, make: F) -> Handle<A>
    where
        A: Actor<Context = Context<A>>,
        F: FnMut(Handle<A>) -> A + 'static,
    {
        match self.get(kind, name) {
            Some(handle) => handle,
            None => self.start(kind, name, make),
        }
    }

    /// Every running actor of `kind` of type `A`, by name.
    pub fn all<A: Actor>(&self, kind: &str) -> Vec<(String, Handle<A>)> {
        self.0
            .entries()
            .iter()
            .filter(|((k, _), _)| k == kind)
            .filter_map(|((_, name), e)| {
                let handle = e.handle.downcast_ref::<Handle<A>>()?;
                handle.alive().then(|| (name.clone(), handle.clone()))
            })
            .collect()
    }

    /// The names of the actors of `kind`.
    pub fn names(&self, kind: &str) -> Vec<String> {
        self.0
            .entries()
            .keys()
            .filter(|(k, _)| k == kind)
            .map(|(_, n)| n.clone())
            .collect()
    }

    /// Stops `kind`/`name` for good, wherever it is (its object is gone).
    pub fn stop(&self, kind: &str, name: &str) {
        if let Some(e) = self
            .0
            .entries()
            .remove(&(kind.to_string(), name.to_string()))
        {
            e.life.retire();
        }
    }

    /// Lists `kind`/`name` no more, and lets it finish on its own (it stops itself
    /// when done: a pod actor stopping its containers); its name is free at once.
    pub fn forget(&self, kind: &str, name: &str) {
        self.0
            .entries()
            .remove(&(kind.to_string(), name.to_string()));
    }

    /// Stops every actor (leadership lost: they all go).
    pub fn clear(&self) {
        let entries = std::mem::take(&mut *self.0.entries());
        for e in entries.into_values() {
            e.life.retire();
        }
    }

    /// Every actor, by kind and name.
    pub fn list(&self) -> Vec<ActorInfo> {
        self.0
            .entries()
            .iter()
            .map(|((kind, name), e)| ActorInfo {
                kind: kind.clone(),
                name: name.clone(),
                restarts: e.life.restarts(),
                mailbox: e.life.mailbox(),
                reconciling: e.life.reconciling(),
            })
            .collect()
    }

    /// Kills `kind`/`name` (see [`Handle::kill`]); whether there was such an actor.
    pub fn kill(&self, kind: &str, name: &str) -> bool {
        let entries = self.0.entries();
        entries
            .get(&(kind.to_string(), name.to_string()))
            .is_some_and(|e| e.life.kill())
    }

    /// Kills an actor chosen at random; which one.
    pub fn kill_random(&self) -> Option<(String, String)> {
        let entries = self.0.entries();
        if entries.is_empty() {
            return None;
        }
        // A random index from the standard library's randomly seeded hasher.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let index = usize::try_from(random % entries.len() as u64).unwrap_or(0);
        let ((kind, name), e) = entries.iter().nth(index)?;
        e.life.kill();
        Some((kind.clone(), name.clone()))
    }

    /// Where the kills of this registry's actors landed (counted when the actor
    /// crashed, which follows the kill at once).
    pub fn kills(&self) -> Kills {
        let n = |p: Phase| self.0.kills[p as usize].load(Ordering::Relaxed);
        Kills {
            idle: n(Phase::Idle),
            reconcile: n(Phase::Reconcile),
            between_writes: n(Phase::BetweenWrites),
        }
    }
}

//! Leases: granted with a time to live, keys attached to them, and all those keys
//! deleted when the lease is revoked or expires.
//!
//! This is the replicated part (which leases exist, which keys they hold). When a lease
//! expires is decided by the leader alone ([`LeaseClock`]), which then proposes the
//! revocation, so every replica deletes the same keys at the same revision.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::proto::SnapshotLease;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Lease {
    ttl: i64,
    keys: BTreeSet<Vec<u8>>,
}

/// The granted leases and their keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lessor {
    leases: BTreeMap<i64, Lease>,
    last_id: i64,
}

impl Lessor {
    /// Grants a lease, returning its id (ids are handed out in order, so every replica
    /// agrees on them).
    pub fn grant(&mut self, ttl: i64) -> Result<i64> {
        if ttl <= 0 {
            return Err(Error::InvalidTtl(ttl));
        }
        self.last_id += 1;
        self.leases.insert(
            self.last_id,
            Lease {
                ttl,
                keys: BTreeSet::new(),
            },
        );
        Ok(self.last_id)
    }

    /// Ends a lease, returning the keys to delete.
    pub fn revoke(&mut self, id: i64) -> Result<Vec<Vec<u8>>> {
        self.leases
            .remove(&id)
            .map(|l| l.keys.into_iter().collect())
            .ok_or(Error::LeaseNotFound(id))
    }

    /// Whether the lease is granted.
    pub fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    /// The lease's time to live, in seconds.
    pub fn ttl(&self, id: i64) -> Option<i64> {
        self.leases.get(&id).map(|l| l.ttl)
    }

    /// Every lease with its time to live.
    pub fn leases(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.leases.iter().map(|(id, l)| (*id, l.ttl))
    }

    /// The keys attached to a lease.
    pub fn keys(&self, id: i64) -> Vec<Vec<u8>> {
        self.leases
            .get(&id)
            .map(|l| l.keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn attach(&mut self, id: i64, key: &[u8]) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.keys.insert(key.to_vec());
        }
    }

    pub(crate) fn detach(&mut self, id: i64, key: &[u8]) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.keys.remove(key);
        }
    }

    /// The leases, for a snapshot (keys are re-attached from the key space on restore).
    pub fn snapshot(&self) -> (Vec<SnapshotLease>, i64) {
        let leases = self
            .leases
            .iter()
            .map(|(id, l)| SnapshotLease {
                id: *id,
                ttl: l.ttl,
            })
            .collect();
        (leases, self.last_id)
    }

    /// Rebuilds from a snapshot; `attached` lists each live key's lease.
    pub fn restore(
        leases: Vec<SnapshotLease>,
        last_id: i64,
        attached: impl Iterator<Item = (i64, Vec<u8>)>,
    ) -> Self {
        let mut lessor = Lessor {
            leases: leases
                .into_iter()
                .map(|l| {
                    (
                        l.id,
                        Lease {
                            ttl: l.ttl,
                            keys: BTreeSet::new(),
                        },
                    )
                })
                .collect(),
            last_id,
        };
        for (id, key) in attached {
            lessor.attach(id, &key);
        }
        lessor
    }
}

/// The leader's view of when each lease expires. Not replicated: a new leader starts a
/// fresh clock, giving every lease its full time to live again rather than expiring
/// leases whose holders could not reach it during the election (etcd does the same).
#[derive(Debug, Default)]
pub struct LeaseClock {
    deadlines: HashMap<i64, Instant>,
}

impl LeaseClock {
    /// Starts (or restarts, on becoming leader) the clock for every lease.
    pub fn reset(&mut self, lessor: &Lessor, now: Instant) {
        self.deadlines = lessor
            .leases()
            .map(|(id, ttl)| (id, now + Duration::from_secs(ttl.unsigned_abs())))
            .collect();
    }

    /// Extends a lease by its time to live from now (keep-alive); returns the ttl, or
    /// `None` if it is not granted.
    pub fn keep_alive(&mut self, lessor: &Lessor, id: i64, now: Instant) -> Option<i64> {
        let ttl = lessor.ttl(id)?;
        self.deadlines
            .insert(id, now + Duration::from_secs(ttl.unsigned_abs()));
        Some(ttl)
    }

    /// Leases whose deadline has passed (and that are still granted). Leases the clock
    /// has not seen yet get their full time to live from now.
    pub fn expired(&mut self, lessor: &Lessor, now: Instant) -> Vec<i64> {
        self.deadlines.retain(|id, _| lessor.contains(*id));
        let mut out = Vec::new();
        for (id, ttl) in lessor.leases() {
            let deadline = *self
                .deadlines
                .entry(id)
                .or_insert_with(|| now + Duration::from_secs(ttl.unsigned_abs()));
            if deadline <= now {
                out.push(id);
            }
        }
        out
    }
}

//! The scheduling queue, as Kubernetes keeps it: **active** (by priority, then by
//! when the pod was queued), **backoff** (a pod that failed waits 1 s, doubling up to
//! 10 s per attempt), and **unschedulable** (pods no node fits; moved back when the
//! cluster changes in a way that could help — a node added or changed, a pod
//! deleted — or after a minute regardless).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::framework::{Plugin, PodInfo};

/// The first backoff.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long a pod stays unschedulable without any cluster event.
pub const UNSCHEDULABLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The queue-sort plugin (by priority, then age): named so profiles can list it.
pub struct PrioritySort;

impl Plugin for PrioritySort {
    fn name(&self) -> &'static str {
        "PrioritySort"
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Active(u64),
    Backoff(Instant),
    Unschedulable(Instant),
    /// Popped and being scheduled.
    InFlight,
}

/// A pod waiting to be scheduled.
#[derive(Clone, Debug)]
pub struct Queued {
    /// The pod.
    pub info: Arc<PodInfo>,
    /// Failed scheduling attempts so far.
    pub attempts: u32,
    /// When it was first queued (for the scheduling latency).
    pub first_seen: Instant,
    place: Place,
}

#[derive(PartialEq, Eq)]
struct HeapEntry {
    priority: i32,
    seq: u64,
    key: String,
}

impl Ord for HeapEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        // Max-heap: higher priority first, then the lower sequence (queued earlier).
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for HeapEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Pods waiting for a node.
#[derive(Default)]
pub struct SchedulingQueue {
    heap: BinaryHeap<HeapEntry>,
    pods: HashMap<String, Queued>,
    seq: u64,
}

/// How many pods each part of the queue holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lengths {
    /// Ready to be scheduled.
    pub active: usize,
    /// Waiting out a backoff.
    pub backoff: usize,
    /// Waiting for a cluster change.
    pub unschedulable: usize,
}

fn priority(info: &PodInfo) -> i32 {
    info.spec().priority.unwrap_or(0)
}

/// The backoff after `attempts` failures.
pub fn backoff(attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(16);
    (INITIAL_BACKOFF * (1u32 << shift)).min(MAX_BACKOFF)
}

impl SchedulingQueue {
    fn activate(&mut self, key: &str) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(q) = self.pods.get_mut(key) {
            q.place = Place::Active(seq);
            self.heap.push(HeapEntry {
                priority: priority(&q.info),
                seq,
                key: key.to_string(),
            });
        }
    }

    /// Adds a pending pod, or updates one already queued (an update makes an
    /// unschedulable pod worth another try).
    pub fn add(&mut self, info: Arc<PodInfo>, now: Instant) {
        let key = info.key.clone();
        match self.pods.get_mut(&key) {
            Some(q) => {
                let place = q.place;
                q.info = info;
                if let Place::Unschedulable(_) = place {
                    self.activate(&key);
                }
            }
            None => {
                self.pods.insert(
                    key.clone(),
                    Queued {
                        info,
                        attempts: 0,
                        first_seen: now,
                        place: Place::InFlight,
                    },
                );
                self.activate(&key);
            }
        }
    }

    /// Forgets a pod (deleted, or bound).
    pub fn remove(&mut self, key: &str) {
        self.pods.remove(key);
    }

    /// Whether the queue holds the pod.
    pub fn contains(&self, key: &str) -> bool {
        self.pods.contains_key(key)
    }

    /// The next pod to schedule.
    pub fn pop(&mut self) -> Option<Queued> {
        while let Some(entry) = self.heap.pop() {
            if let Some(q) = self.pods.get_mut(&entry.key)
                && q.place == Place::Active(entry.seq)
            {
                q.place = Place::InFlight;
                return Some(q.clone());
            }
        }
        None
    }

    /// The pod fit no node: it waits for a cluster change.
    pub fn unschedulable(&mut self, key: &str, now: Instant) {
        if let Some(q) = self.pods.get_mut(key) {
            q.attempts += 1;
            q.place = Place::Unschedulable(now);
        }
    }

    /// The attempt failed for another reason (binding): it backs off.
    pub fn back_off(&mut self, key: &str, now: Instant) {
        if let Some(q) = self.pods.get_mut(key) {
            q.attempts += 1;
            q.place = Place::Backoff(now + backoff(q.attempts));
        }
    }

    /// A cluster change that may help: unschedulable pods go back, to backoff if
    /// theirs has not run out yet.
    pub fn cluster_changed(&mut self, now: Instant) {
        let keys: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, q)| matches!(q.place, Place::Unschedulable(_)))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.retry(&key, now);
        }
    }

    fn retry(&mut self, key: &str, now: Instant) {
        let Some(q) = self.pods.get_mut(key) else {
            return;
        };
        let Place::Unschedulable(since) = q.place else {
            return;
        };
        let until = since + backoff(q.attempts);
        if until > now {
            q.place = Place::Backoff(until);
        } else {
            self.activate(key);
        }
    }

    /// Moves pods whose backoff is over to active, and pods unschedulable for longer
    /// than [`UNSCHEDULABLE_TIMEOUT`] back too.
    pub fn flush(&mut self, now: Instant) {
        let due: Vec<(String, bool)> = self
            .pods
            .iter()
            .filter_map(|(k, q)| match q.place {
                Place::Backoff(until) if until <= now => Some((k.clone(), true)),
                Place::Unschedulable(since)
                    if now.duration_since(since) >= UNSCHEDULABLE_TIMEOUT =>
                {
                    Some((k.clone(), false))
                }
                _ => None,
            })
            .collect();
        for (key, from_backoff) in due {
            if from_backoff {
                self.activate(&key);
            } else {
                self.retry(&key, now);
            }
        }
    }

    /// Whether some pod may be active (cheap; may say yes for pods since moved).
    pub fn maybe_active(&self) -> bool {
        !self.heap.is_empty()
    }

    /// The sizes of the three parts.
    pub fn lengths(&self) -> Lengths {
        let mut l = Lengths::default();
        for q in self.pods.values() {
            match q.place {
                Place::Active(_) => l.active += 1,
                Place::Backoff(_) => l.backoff += 1,
                Place::Unschedulable(_) => l.unschedulable += 1,
                Place::InFlight => {}
            }
        }
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, prio: i32) -> Arc<PodInfo> {
        Arc::new(PodInfo::new(Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"priority": prio, "containers": [{"name": "c"}]},
            }))
            .unwrap(),
        )))
    }

    #[test]
    fn active_pods_come_by_priority_then_age() {
        let now = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add(info("old-low", 0), now);
        q.add(info("high", 10), now);
        q.add(info("new-low", 0), now);
        let order: Vec<String> =
            std::iter::from_fn(|| q.pop().map(|p| p.info.key.clone())).collect();
        assert_eq!(
            order,
            ["default/high", "default/old-low", "default/new-low"]
        );
    }

    #[test]
    fn failures_back_off_and_unschedulable_pods_wait_for_a_change() {
        let now = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add(info("a", 0), now);
        q.add(info("b", 0), now);
        let a = q.pop().unwrap();
        q.back_off(&a.info.key, now);
        let b = q.pop().unwrap();
        q.unschedulable(&b.info.key, now);
        assert!(q.pop().is_none());
        assert_eq!(
            q.lengths(),
            Lengths {
                active: 0,
                backoff: 1,
                unschedulable: 1
            }
        );
        // The backoff runs out after a second.
        q.flush(now + Duration::from_millis(500));
        assert!(q.pop().is_none());
        q.flush(now + Duration::from_secs(1));
        assert_eq!(q.pop().unwrap().info.key, "default/a");
        // A node joins: b goes back (its 1 s backoff counted from when it failed).
        q.cluster_changed(now + Duration::from_secs(2));
        assert_eq!(q.pop().unwrap().info.key, "default/b");
        // Repeated failures double the backoff, up to 10 s.
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(9), MAX_BACKOFF);
        // Without any change, an unschedulable pod is retried after a minute.
        q.unschedulable("default/b", now);
        q.flush(now + UNSCHEDULABLE_TIMEOUT);
        assert_eq!(q.pop().unwrap().info.key, "default/b");
        q.remove("default/b");
        assert!(!q.contains("default/b"));
    }
}

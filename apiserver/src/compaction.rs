//! The leader's compaction of the store's history, as kube-apiserver compacts etcd:
//! every interval (5 minutes by default) everything older than the revision seen one
//! interval earlier goes, so watchers and paginated lists can resume from any revision
//! up to one interval old.
//!
//! rk8s keeps that history in memory (etcd keeps it on disk), so it is also bounded in
//! bytes: when the values that are no longer current outgrow the limit, the leader
//! compacts sooner, up to the revision seen [`MIN_HISTORY`] earlier (or one interval,
//! if that is shorter). Under a burst of writes (150,000 pods created in minutes) that
//! keeps the last minute of history instead of five minutes of it; a watcher or a
//! paginated list further behind gets 410 Gone and lists again, as it would after any
//! compaction. (The values are held compressed, about a tenth of their size, so a
//! minute of a burst's history takes tens of MiB.)

use std::collections::VecDeque;
use std::time::Duration;

use rk8s_raftstore::server::Store;
use tokio::time::Instant;

/// How often the leader looks at the history's size (at most the interval).
const CHECK_EVERY: Duration = Duration::from_secs(5);
/// History a compaction forced by size still keeps (at most the interval).
pub const MIN_HISTORY: Duration = Duration::from_secs(60);

/// The compaction policy: when to compact, and to which revision.
#[derive(Debug)]
pub struct Compaction {
    interval: Duration,
    min_history: Duration,
    history_limit: u64,
    /// Revisions seen, oldest first, each with when it was seen; the oldest is at
    /// least one interval old once there is one that old.
    seen: VecDeque<(Instant, i64)>,
    /// When the last interval round happened (or the policy started leading).
    round: Instant,
    compacted: i64,
}

impl Compaction {
    /// Every `interval`; sooner when the history exceeds `history_limit` bytes (0: no
    /// limit). `now`: when it starts.
    pub fn new(interval: Duration, history_limit: u64, now: Instant) -> Self {
        Compaction {
            interval,
            min_history: MIN_HISTORY.min(interval),
            history_limit,
            seen: VecDeque::new(),
            round: now,
            compacted: 0,
        }
    }

    /// How often [`Compaction::observe`] is called.
    pub fn check_every(&self) -> Duration {
        CHECK_EVERY.min(self.interval)
    }

    /// The member stopped leading: it starts over when it leads again.
    pub fn reset(&mut self, now: Instant) {
        self.seen.clear();
        self.round = now;
    }

    /// The store at `now`: at `revision`, with `history_bytes` of values that are no
    /// longer current. The revision to compact up to, if it is time.
    pub fn observe(&mut self, now: Instant, revision: i64, history_bytes: u64) -> Option<i64> {
        self.seen.push_back((now, revision));
        let target = if now.duration_since(self.round) >= self.interval {
            self.round = now;
            self.seen_before(now, self.interval)
        } else if self.history_limit > 0 && history_bytes > self.history_limit {
            self.seen_before(now, self.min_history)
        } else {
            None
        };
        // The samples older than one interval are never asked for again, but for the
        // newest of them.
        while self
            .seen
            .get(1)
            .is_some_and(|(at, _)| now.duration_since(*at) >= self.interval)
        {
            self.seen.pop_front();
        }
        target.filter(|r| *r > self.compacted)
    }

    /// The compaction up to `revision` was made.
    pub fn compacted(&mut self, revision: i64) {
        self.compacted = self.compacted.max(revision);
    }

    /// The newest revision seen at least `age` before `now`.
    fn seen_before(&self, now: Instant, age: Duration) -> Option<i64> {
        self.seen
            .iter()
            .rev()
            .find(|(at, _)| now.duration_since(*at) >= age)
            .map(|(_, r)| *r)
    }
}

/// Runs the policy on this member while it leads.
pub async fn compact_periodically(store: Store, interval: Duration, history_limit: u64) {
    let interval = interval.max(Duration::from_millis(100));
    let mut policy = Compaction::new(interval, history_limit, Instant::now());
    let mut ticks = tokio::time::interval(policy.check_every());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        let now = ticks.tick().await;
        if !store.leadership().borrow().is_self {
            policy.reset(now);
            continue;
        }
        let Ok(status) = store.status().await else {
            continue;
        };
        let Some(revision) = policy.observe(now, status.revision, status.history_bytes) else {
            continue;
        };
        match store.compact(revision).await {
            Ok(()) => {
                policy.compacted(revision);
                tracing::debug!(
                    "compacted the store up to revision {revision} ({} bytes of history before)",
                    status.history_bytes
                );
            }
            Err(e) => tracing::debug!("compaction to {revision} skipped: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// Observes the store every `CHECK_EVERY` for `steps` checks, the revision
    /// growing by 100 per check; the compactions made, with the check they came at.
    fn run(policy: &mut Compaction, start: Instant, steps: u32, history: u64) -> Vec<(u32, i64)> {
        let mut made = Vec::new();
        for i in 1..=steps {
            let now = start + policy.check_every() * i;
            if let Some(rev) = policy.observe(now, i64::from(i) * 100, history) {
                policy.compacted(rev);
                made.push((i, rev));
            }
        }
        made
    }

    #[test]
    fn every_interval_everything_older_than_one_interval_goes() {
        let start = Instant::now();
        let mut policy = Compaction::new(60 * S, 0, start);
        // Checks every 5 s; at 60 s the revision seen at 0 s was none yet, at 120 s
        // the one seen at 60 s (check 12: revision 1200).
        let made = run(&mut policy, start, 36, u64::MAX);
        assert_eq!(made, vec![(24, 1200), (36, 2400)]);
    }

    #[test]
    fn a_history_over_the_limit_is_compacted_sooner_keeping_the_minimum() {
        let start = Instant::now();
        let mut policy = Compaction::new(300 * S, 1_000, start);
        // Under the limit: nothing before the interval.
        assert_eq!(run(&mut policy, start, 10, 999), vec![]);
        // Over it at 85 s: up to the revision seen 60 s earlier (25 s: check 5).
        let now = start + 85 * S;
        assert_eq!(policy.observe(now, 1_100, 5_000), Some(500));
        policy.compacted(500);
        // Again over it 5 s later: the newer revision seen 60 s before (check 6).
        assert_eq!(policy.observe(now + 5 * S, 1_200, 5_000), Some(600));
    }

    #[test]
    fn short_intervals_keep_one_interval_and_leadership_changes_start_over() {
        let start = Instant::now();
        let mut policy = Compaction::new(S, 10, start);
        assert_eq!(policy.check_every(), S);
        // Over the limit: it keeps one interval (the minimum is capped by it).
        assert_eq!(policy.observe(start + S, 100, 50), None);
        assert_eq!(policy.observe(start + 2 * S, 200, 50), Some(100));
        policy.compacted(100);
        policy.reset(start + 3 * S);
        // After a reset nothing older than the reset is known.
        assert_eq!(policy.observe(start + 3 * S, 300, 50), None);
        assert_eq!(policy.observe(start + 4 * S, 400, 0), Some(300));
        // Never to a revision already compacted (here by another round).
        policy.compacted(500);
        assert_eq!(policy.observe(start + 5 * S, 500, 50), None);
    }
}

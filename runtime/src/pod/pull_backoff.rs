//! kubelet's image pull back-off (`pkg/kubelet/images/image_manager.go`, a
//! `flowcontrol.Backoff` of `backOffPeriod` 10 s up to `MaxContainerBackOff` 300 s):
//! after a failed pull of an image for a pod, the next try waits 10 s, then 20 s, 40 s
//! and so on up to 5 min; one whose last failure is older than twice that starts from
//! 10 s again. Between tries the container waits with `ImagePullBackOff` and the last
//! pull's error. Kept in memory, as kubelet keeps it: a restarted agent tries at once.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The first wait after a failed pull.
pub const INITIAL: Duration = Duration::from_secs(10);
/// The longest wait.
pub const MAX: Duration = Duration::from_secs(300);
/// Most images waiting at once (more: the expired are forgotten, then all).
const KEPT: usize = 4096;

/// The back-off of one pod's image.
#[derive(Clone, Debug)]
struct Entry {
    /// How long after `last_ns` the next pull waits.
    delay: Duration,
    /// When the last pull failed (ns since the epoch).
    last_ns: i64,
    /// Why: `ErrImagePull: <the registry's error>`.
    error: String,
}

impl Entry {
    /// kubelet's `hasExpired`: quiet for twice the longest wait.
    fn expired(&self, now_ns: i64) -> bool {
        now_ns.saturating_sub(self.last_ns) > nanos(MAX * 2)
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The pull back-off of every pod's images, by pod uid and image.
#[derive(Debug, Default)]
pub(super) struct PullBackOff(Mutex<HashMap<(String, String), Entry>>);

impl PullBackOff {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Entry>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The last pull's error while pod `uid` may not pull `image` at `now_ns` yet.
    pub(super) fn waiting(&self, uid: &str, image: &str, now_ns: i64) -> Option<String> {
        let entries = self.lock();
        let entry = entries.get(&(uid.to_string(), image.to_string()))?;
        let waits =
            !entry.expired(now_ns) && now_ns.saturating_sub(entry.last_ns) < nanos(entry.delay);
        waits.then(|| entry.error.clone())
    }

    /// A pull of `image` for pod `uid` failed at `now_ns` with `error`: the next waits
    /// 10 s, or twice as long as the last wait (at most 5 min).
    pub(super) fn failed(&self, uid: &str, image: &str, now_ns: i64, error: String) {
        let mut entries = self.lock();
        if entries.len() >= KEPT {
            entries.retain(|_, e| !e.expired(now_ns));
            if entries.len() >= KEPT {
                entries.clear();
            }
        }
        let key = (uid.to_string(), image.to_string());
        let delay = match entries.get(&key) {
            Some(e) if !e.expired(now_ns) => (e.delay * 2).min(MAX),
            _ => INITIAL,
        };
        entries.insert(
            key,
            Entry {
                delay,
                last_ns: now_ns,
                error,
            },
        );
    }

    /// `image` was pulled for pod `uid`: no wait before its next pull.
    pub(super) fn succeeded(&self, uid: &str, image: &str) {
        self.lock().remove(&(uid.to_string(), image.to_string()));
    }

    /// Pod `uid` is gone: its images' back-offs go with it.
    pub(super) fn forget(&self, uid: &str) {
        self.lock().retain(|(pod, _), _| pod != uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn waits_double_from_ten_seconds_to_five_minutes_per_pod_and_image() {
        let b = PullBackOff::default();
        assert_eq!(b.waiting("u1", "busybox", 0), None);
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..7 {
            b.failed("u1", "busybox", now, "ErrImagePull: not found".into());
            let mut wait = 0;
            while b.waiting("u1", "busybox", now + wait * S).is_some() {
                wait += 1;
            }
            waits.push(wait);
            now += wait * S;
        }
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300]);
        // The last pull's error is what the container waits with.
        b.failed("u1", "busybox", now, "ErrImagePull: unauthorized".into());
        assert_eq!(
            b.waiting("u1", "busybox", now + S).as_deref(),
            Some("ErrImagePull: unauthorized")
        );
        // Another pod, or another image, pulls at once.
        assert_eq!(b.waiting("u2", "busybox", now + S), None);
        assert_eq!(b.waiting("u1", "nginx", now + S), None);
    }

    #[test]
    fn a_success_a_long_quiet_or_the_pods_end_forgets_the_wait() {
        let b = PullBackOff::default();
        for n in 0..4 {
            b.failed("u1", "a", n * 400 * S, "e".into());
        }
        b.failed("u1", "b", 0, "e".into());
        b.succeeded("u1", "a");
        assert_eq!(b.waiting("u1", "a", 1), None);
        assert!(b.waiting("u1", "b", 1).is_some());
        // Ten minutes and more since the last failure: 10 s again.
        b.failed("u1", "b", 1, "e".into());
        b.failed("u1", "b", 2, "e".into());
        b.failed("u1", "b", 700 * S, "e".into());
        assert!(b.waiting("u1", "b", 709 * S).is_some());
        assert_eq!(b.waiting("u1", "b", 710 * S), None);
        b.forget("u1");
        assert_eq!(b.waiting("u1", "b", 701 * S), None);
    }
}

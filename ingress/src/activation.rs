//! Scale from zero on request, the proxy's side: a request to a backend whose
//! Service carries `scale.rk8s.io/activation-timeout` (the activation controller
//! puts it on Services in front of a wakeable Deployment) and that has no endpoints
//! is held, not answered 503, until a table with an endpoint is swapped in or the
//! timeout passes; and the traffic of those backends is counted for the node's
//! activity stream, which the leader's activation controller reads to wake the
//! Deployment and to find it idle.
//!
//! - **Bound.** At most [`Activation::queue`] requests wait per backend
//!   (`--ingress-activation-queue`, [`DEFAULT_QUEUE`]), within the listener's
//!   connections; their bodies stay unread (TCP back-pressure). One more is answered
//!   503 with `Retry-After: 1` at once (Knative's activator answers 503 when its
//!   pending-request queue is full, `pkg/activator/net/throttler.go`).
//! - **Release.** Waiters wake at every table swap ([`Activation::swapped`]) and
//!   route again: the route may have changed (as KEDA's interceptor waits on its
//!   ready-endpoints cache, `pkg/k8s/ready_endpoints_cache.go`).
//! - **Timeout.** The Service's annotation (60 s by default) → 503 with
//!   `Retry-After: 5`: the request never reached a pod, so a retry is safe (rk8s'
//!   504 means "the pod did not answer").
//! - A client that leaves drops its request and its place in the queue; one that
//!   leaves with its body partly unsent is not noticed while held (its body is
//!   unread), so a request with a body is held at most [`BODY_HOLD`]. Answers
//!   that waited carry `x-rk8s-cold-start: true` (KEDA's `X-KEDA-HTTP-Cold-Start`).
//!   HTTP/2 streams and upgrades wait as requests do.
//!
//! ```
//! use rk8s_ingress::activation::Activation;
//!
//! let activation = Activation::new(1);
//! let key = ("default".to_string(), "web".to_string());
//! let held = activation.hold(&key).unwrap();
//! assert!(activation.hold(&key).is_err(), "one waiter at most");
//! assert_eq!(activation.snapshot()[0].waiting, 1);
//! drop(held);
//! assert_eq!(activation.snapshot()[0].waiting, 0);
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rk8s_api::activation::BackendActivity;
use tokio::sync::watch;

use crate::metrics;

/// How many requests wait per backend by default.
pub const DEFAULT_QUEUE: usize = 256;

/// The longest a request with a body is held, whatever the Service's timeout:
/// while it waits its body is unread, so hyper reads no more of the connection
/// and a client that leaves with the rest of its body unsent is not noticed; its
/// place in the queue is freed by then at the latest.
pub const BODY_HOLD: Duration = Duration::from_secs(30);

/// How long a request is held for a Service whose timeout is `timeout`
/// (`body`: the request has one).
pub fn hold_limit(timeout: Duration, body: bool) -> Duration {
    if body {
        timeout.min(BODY_HOLD)
    } else {
        timeout
    }
}

/// A backend by its Service: namespace and name.
pub type Key = (String, String);

/// One backend's counts.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    requests: u64,
    in_flight: u64,
    waiting: u64,
}

/// The queue of a backend is full: answer 503 at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the backend's activation queue is full")]
pub struct Full;

/// The held requests and the traffic of the backends that hold, shared by the
/// proxy and the node's activity stream.
pub struct Activation {
    queue: usize,
    counts: Mutex<BTreeMap<Key, Counts>>,
    swaps: watch::Sender<u64>,
    demand: watch::Sender<u64>,
    busy: watch::Sender<u64>,
}

impl Activation {
    /// Holds at most `queue` requests per backend.
    pub fn new(queue: usize) -> Arc<Self> {
        Arc::new(Activation {
            queue,
            counts: Mutex::default(),
            swaps: watch::Sender::new(0),
            demand: watch::Sender::new(0),
            busy: watch::Sender::new(0),
        })
    }

    /// The most requests held per backend.
    pub fn queue(&self) -> usize {
        self.queue
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<Key, Counts>) -> T) -> T {
        f(&mut self.counts.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Holds one request to `key` until it is dropped (counted as a request and
    /// waiting); [`Full`] when `queue` already wait. The first waiter of a backend
    /// tells [`Activation::demand`] at once, and so does the last to leave.
    pub fn hold(self: &Arc<Self>, key: &Key) -> Result<Hold, Full> {
        let (first, waiting) = self.with(|all| {
            let c = all.entry(key.clone()).or_default();
            if c.waiting >= self.queue as u64 {
                return Err(Full);
            }
            c.requests += 1;
            c.waiting += 1;
            Ok((c.waiting == 1, c.waiting))
        })?;
        metrics::waiting(key, waiting);
        if first {
            self.demand.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(Hold {
            activation: self.clone(),
            key: key.clone(),
            swaps: self.swaps.subscribe(),
            since: Instant::now(),
        })
    }

    /// Counts one request to `key` passed to a pod (`new`: not held before, so
    /// counted as a request now) until the guard is dropped. The first in flight
    /// of a backend tells [`Activation::busy`].
    pub fn in_flight(self: &Arc<Self>, key: &Key, new: bool) -> InFlight {
        let first = self.with(|all| {
            let c = all.entry(key.clone()).or_default();
            c.requests += u64::from(new);
            c.in_flight += 1;
            c.in_flight == 1
        });
        if first {
            self.busy.send_modify(|n| *n = n.wrapping_add(1));
        }
        InFlight {
            activation: self.clone(),
            key: key.clone(),
        }
    }

    /// A table was swapped in: every waiter routes again. Every backend in
    /// `holding` is counted (listed from then on, with no traffic yet: a reader
    /// sees the node holds for it); those no longer holding with nothing under way
    /// are forgotten.
    pub fn swapped(&self, holding: &BTreeSet<Key>) {
        let kept: BTreeSet<Key> = self.with(|all| {
            all.retain(|k, c| holding.contains(k) || c.waiting > 0 || c.in_flight > 0);
            for k in holding {
                all.entry(k.clone()).or_default();
            }
            all.keys().cloned().collect()
        });
        metrics::forget_activation(&kept);
        self.swaps.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Every counted backend's counts.
    pub fn snapshot(&self) -> Vec<BackendActivity> {
        self.with(|all| {
            all.iter()
                .map(|((namespace, service), c)| BackendActivity {
                    namespace: namespace.clone(),
                    service: service.clone(),
                    requests: c.requests,
                    in_flight: c.in_flight,
                    waiting: c.waiting,
                })
                .collect()
        })
    }

    /// Changes each time a backend's waiting count goes from 0 to 1, or back to 0.
    pub fn demand(&self) -> watch::Receiver<u64> {
        self.demand.subscribe()
    }

    /// Changes each time a backend's in-flight count goes from 0 to 1 (the leader
    /// must not find idle a backend whose request started between two snapshots).
    pub fn busy(&self) -> watch::Receiver<u64> {
        self.busy.subscribe()
    }
}

/// A request held for an endpoint; dropping it leaves the queue.
pub struct Hold {
    activation: Arc<Activation>,
    key: Key,
    swaps: watch::Receiver<u64>,
    since: Instant,
}

impl Hold {
    /// The backend it waits for.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Waits for the next table swap (`false`: no more will come).
    pub async fn swapped(&mut self) -> bool {
        self.swaps.changed().await.is_ok()
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let waiting = self.activation.with(|all| {
            all.get_mut(&self.key).map_or(0, |c| {
                c.waiting = c.waiting.saturating_sub(1);
                c.waiting
            })
        });
        if waiting == 0 {
            // Told too: a reader must not go on believing requests wait.
            self.activation
                .demand
                .send_modify(|n| *n = n.wrapping_add(1));
        }
        metrics::waiting(&self.key, waiting);
        metrics::waited(&self.key, self.since.elapsed());
    }
}

/// A request under way at a pod; dropping it ends it.
pub struct InFlight {
    activation: Arc<Activation>,
    key: Key,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activation.with(|all| {
            if let Some(c) = all.get_mut(&self.key) {
                c.in_flight = c.in_flight.saturating_sub(1);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_request_with_a_body_is_held_at_most_body_hold() {
        let minute = Duration::from_secs(60);
        assert_eq!(hold_limit(minute, false), minute);
        assert_eq!(hold_limit(minute, true), BODY_HOLD);
        let second = Duration::from_secs(1);
        assert_eq!(hold_limit(second, true), second);
    }

    fn key(s: &str) -> Key {
        ("ns".to_string(), s.to_string())
    }

    #[test]
    fn the_queue_is_bounded_per_backend_and_a_place_is_freed_on_drop() {
        let a = Activation::new(2);
        let one = a.hold(&key("a")).unwrap();
        let _two = a.hold(&key("a")).unwrap();
        assert_eq!(a.hold(&key("a")).err(), Some(Full));
        let _other = a.hold(&key("b")).unwrap();
        drop(one);
        let _three = a.hold(&key("a")).unwrap();
        let counts = a.snapshot();
        assert_eq!((counts[0].requests, counts[0].waiting), (3, 2));
    }

    #[test]
    fn demand_is_told_when_a_backend_goes_from_no_waiter_to_some_and_back() {
        let a = Activation::new(8);
        let mut demand = a.demand();
        demand.mark_unchanged();
        let first = a.hold(&key("a")).unwrap();
        assert!(demand.has_changed().unwrap());
        demand.mark_unchanged();
        let second = a.hold(&key("a")).unwrap();
        assert!(
            !demand.has_changed().unwrap(),
            "only 0 → 1 and back is pushed"
        );
        drop(first);
        assert!(!demand.has_changed().unwrap());
        let mut busy = a.busy();
        busy.mark_unchanged();
        let one = a.in_flight(&key("a"), false);
        assert!(busy.has_changed().unwrap(), "0 → 1 in flight is told");
        busy.mark_unchanged();
        drop(a.in_flight(&key("a"), false));
        assert!(!busy.has_changed().unwrap(), "1 → 2 is not");
        drop(one);
        drop(second);
        assert!(demand.has_changed().unwrap(), "none waits any more");
        demand.mark_unchanged();
        let _again = a.hold(&key("a")).unwrap();
        assert!(demand.has_changed().unwrap());
    }

    #[tokio::test]
    async fn waiters_are_released_by_a_table_swap_and_forgotten_backends_dropped() {
        tokio::time::pause();
        let a = Activation::new(8);
        let mut held = a.hold(&key("a")).unwrap();
        let waiter = tokio::spawn(async move { held.swapped().await });
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!waiter.is_finished());
        a.swapped(&BTreeSet::new());
        assert!(waiter.await.unwrap());
        // The hold dropped with the task; the backend holds no more: forgotten.
        a.swapped(&BTreeSet::new());
        assert!(a.snapshot().is_empty());
        // A backend still holding is kept with its counts.
        drop(a.in_flight(&key("b"), true));
        a.swapped(&[key("b")].into());
        assert_eq!(a.snapshot()[0].requests, 1);
        assert_eq!(a.snapshot()[0].in_flight, 0);
        // A backend newly holding is listed before any traffic.
        a.swapped(&[key("b"), key("c")].into());
        assert_eq!(a.snapshot()[1].service, "c");
        assert_eq!(a.snapshot()[1].requests, 0);
    }
}

//! How often the node's status is posted for its device plugins' changes: one post
//! in flight, at most one per [`MIN_INTERVAL`], the changes between two posts
//! folded into the next. A plugin that streams its list in a loop, or flaps its
//! devices' health, cannot drive `PATCH /nodes/{name}/status` faster (kubelet picks
//! the device manager's capacity up at its status sync only).

use std::time::{Duration, Instant};

/// The least time between two posts.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// What to do about a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Go {
    /// Post now, then call [`Throttle::done`].
    Now,
    /// Call [`Throttle::fired`] after this long.
    After(Duration),
    /// Nothing now: a post or a timer already covers the change.
    Wait,
}

/// The state of the posts.
#[derive(Clone, Debug, Default)]
pub struct Throttle {
    in_flight: bool,
    timer: bool,
    pending: bool,
    last: Option<Instant>,
}

impl Throttle {
    /// Something changed at `now`.
    pub fn changed(&mut self, now: Instant) -> Go {
        if self.in_flight || self.timer {
            self.pending = true;
            return Go::Wait;
        }
        let since = self.last.map(|t| now.saturating_duration_since(t));
        match since {
            Some(since) if since < MIN_INTERVAL => {
                self.timer = true;
                self.pending = true;
                Go::After(MIN_INTERVAL - since)
            }
            _ => {
                self.in_flight = true;
                self.pending = false;
                self.last = Some(now);
                Go::Now
            }
        }
    }

    /// The timer of a [`Go::After`] fired at `now`.
    pub fn fired(&mut self, now: Instant) -> Go {
        self.timer = false;
        match std::mem::take(&mut self.pending) {
            true => self.changed(now),
            false => Go::Wait,
        }
    }

    /// The post in flight ended at `now`.
    pub fn done(&mut self, now: Instant) -> Go {
        self.in_flight = false;
        if self.pending && !self.timer {
            self.pending = false;
            return self.changed(now);
        }
        Go::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_changes_makes_at_most_two_posts_a_second() {
        let start = Instant::now();
        let mut throttle = Throttle::default();
        let mut posts = 0;
        let mut timer = None;
        // 100 changes within a second, each post taking 50 ms.
        for i in 0..100u64 {
            let now = start + Duration::from_millis(i * 10);
            if i == 5 {
                assert_eq!(
                    throttle.done(now),
                    Go::After(MIN_INTERVAL - Duration::from_millis(50))
                );
                timer = Some(now + MIN_INTERVAL - Duration::from_millis(50));
            }
            match throttle.changed(now) {
                Go::Now => posts += 1,
                Go::After(_) => unreachable!("the timer is set already"),
                Go::Wait => {}
            }
        }
        assert_eq!(posts, 1);
        // The changes since are folded into one post when the timer fires.
        let fire = timer.unwrap();
        assert_eq!(throttle.fired(fire), Go::Now);
        assert_eq!(throttle.done(fire + Duration::from_millis(50)), Go::Wait);
        // Nothing changed since: the next timer does nothing.
        assert_eq!(throttle.fired(fire + MIN_INTERVAL), Go::Wait);
        // A change a second later is posted at once.
        assert_eq!(throttle.changed(fire + MIN_INTERVAL), Go::Now);
    }
}

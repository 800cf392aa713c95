//! When a stopped container runs again: the pod's restart policy, and kubelet's
//! CrashLoopBackOff (10 s, doubling up to 5 min, forgotten after 10 min of running).

use std::time::Duration;

/// First delay after a crash.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
/// Longest delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A container that ran this long starts its backoff afresh.
pub const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// A pod's `restartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Always restart (the default).
    Always,
    /// Restart after a non-zero exit.
    OnFailure,
    /// Never restart.
    Never,
}

impl RestartPolicy {
    /// From the pod spec's string (Always when unset or unknown).
    pub fn from_k8s(policy: Option<&str>) -> Self {
        match policy {
            Some("OnFailure") => RestartPolicy::OnFailure,
            Some("Never") => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        }
    }

    /// Whether a container that exited with `code` runs again.
    pub fn restarts(self, code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => code != 0,
            RestartPolicy::Never => false,
        }
    }

    /// An init container that failed runs again unless the pod never restarts.
    pub fn restarts_init(self, code: i32) -> bool {
        code != 0 && self != RestartPolicy::Never
    }
}

/// How long to wait before the next start of a container that has stopped
/// `crashes` times in a row: 10 s after the first, doubling, at most 5 min.
pub fn delay(crashes: u32) -> Duration {
    let factor = 1u64 << crashes.saturating_sub(1).min(16);
    INITIAL_BACKOFF
        .saturating_mul(u32::try_from(factor).unwrap_or(u32::MAX))
        .min(MAX_BACKOFF)
}

/// The crash count after a container that ran for `ran` stops, given the count
/// before: a long run forgets earlier crashes.
pub fn next_crashes(previous: u32, ran: Duration) -> u32 {
    if ran >= BACKOFF_RESET {
        1
    } else {
        previous.saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_ten_seconds_to_five_minutes() {
        let delays: Vec<u64> = (1..8).map(|s| delay(s).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(delay(1000), MAX_BACKOFF);
    }

    #[test]
    fn ten_minutes_of_running_resets_the_backoff() {
        assert_eq!(next_crashes(4, Duration::from_secs(5)), 5);
        assert_eq!(next_crashes(4, Duration::from_secs(600)), 1);
    }

    #[test]
    fn restart_policies_decide_by_exit_code() {
        use RestartPolicy::*;
        assert!(Always.restarts(0) && Always.restarts(1));
        assert!(!OnFailure.restarts(0) && OnFailure.restarts(137));
        assert!(!Never.restarts(1));
        assert!(OnFailure.restarts_init(1) && !Always.restarts_init(0) && !Never.restarts_init(1));
        assert_eq!(RestartPolicy::from_k8s(None), Always);
    }
}

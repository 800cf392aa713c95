//! The scheduler's Prometheus metrics, named as kube-scheduler names them. Made once
//! per process and registered by whoever runs the scheduler; the actor records into
//! them if it was given them.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// `scheduler_schedule_attempts_total`, `scheduler_scheduling_attempt_duration_seconds`
/// and `scheduler_pending_pods`.
#[derive(Clone)]
pub struct SchedulerMetrics {
    attempts: IntCounterVec,
    duration: HistogramVec,
    pending: IntGaugeVec,
}

impl SchedulerMetrics {
    /// The metrics, registered in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = SchedulerMetrics {
            attempts: IntCounterVec::new(
                Opts::new(
                    "scheduler_schedule_attempts_total",
                    "Attempts to schedule pods, by result (scheduled, unschedulable, error) and profile.",
                ),
                &["result", "profile"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "scheduler_scheduling_attempt_duration_seconds",
                    "Scheduling attempt latency (the cycle, and the binding for scheduled pods), by result and profile.",
                )
                .buckets(prometheus::exponential_buckets(0.001, 2.0, 15)?),
                &["result", "profile"],
            )?,
            pending: IntGaugeVec::new(
                Opts::new(
                    "scheduler_pending_pods",
                    "Pods waiting to be scheduled, by queue (active, backoff, unschedulable).",
                ),
                &["queue"],
            )?,
        };
        registry.register(Box::new(metrics.attempts.clone()))?;
        registry.register(Box::new(metrics.duration.clone()))?;
        registry.register(Box::new(metrics.pending.clone()))?;
        Ok(metrics)
    }

    /// One attempt for a pod of `profile` ended with `result` after `seconds`.
    pub fn attempt(&self, result: &str, profile: &str, seconds: f64) {
        self.attempts.with_label_values(&[result, profile]).inc();
        self.duration
            .with_label_values(&[result, profile])
            .observe(seconds);
    }

    /// What the queues hold now.
    pub fn pending(&self, lengths: &crate::queue::Lengths) {
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        for (queue, len) in [
            ("active", lengths.active),
            ("backoff", lengths.backoff),
            ("unschedulable", lengths.unschedulable),
        ] {
            self.pending.with_label_values(&[queue]).set(n(len));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_and_queues_are_exported() {
        let registry = Registry::new();
        let m = SchedulerMetrics::register(&registry).unwrap();
        m.attempt("scheduled", "default-scheduler", 0.004);
        m.pending(&crate::queue::Lengths {
            active: 2,
            backoff: 0,
            unschedulable: 1,
        });
        let families = registry.gather();
        let names: Vec<&str> = families.iter().map(|f| f.get_name()).collect();
        assert_eq!(
            names,
            [
                "scheduler_pending_pods",
                "scheduler_schedule_attempts_total",
                "scheduler_scheduling_attempt_duration_seconds"
            ]
        );
        assert!(
            SchedulerMetrics::register(&registry).is_err(),
            "registered twice"
        );
    }
}

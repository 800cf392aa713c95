//! The controllers' Prometheus metrics: reconciles and their latency and failures
//! per kind. (The actors' own — how many, restarts, mailboxes, kills — are
//! `rk8s_supervision::metrics`.)

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};
use rk8s_http::metrics::registered;

/// `rk8s_controller_reconciles_total{kind}`: decisions carried out.
pub static RECONCILES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    registered(IntCounterVec::new(
        Opts::new(
            "rk8s_controller_reconciles_total",
            "Decisions carried out, by kind of object.",
        ),
        &["kind"],
    ))
});

/// `rk8s_controller_reconcile_errors_total{kind}`: passes that failed to write.
pub static ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    registered(IntCounterVec::new(
        Opts::new(
            "rk8s_controller_reconcile_errors_total",
            "Passes whose writes failed (they are decided again), by kind.",
        ),
        &["kind"],
    ))
});

/// `rk8s_controller_reconcile_duration_seconds{kind}`: time to carry a decision out.
pub static DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    registered(HistogramVec::new(
        HistogramOpts::new(
            "rk8s_controller_reconcile_duration_seconds",
            "Time to carry out one decision through the API, by kind.",
        )
        .buckets(prometheus::exponential_buckets(0.001, 2.0, 15).unwrap_or_default()),
        &["kind"],
    ))
});

/// Counts one carried-out decision of `kind` that took `took`, failed or not.
pub fn reconciled(kind: &str, took: Duration, failed: bool) {
    RECONCILES.with_label_values(&[kind]).inc();
    DURATION
        .with_label_values(&[kind])
        .observe(took.as_secs_f64());
    if failed {
        ERRORS.with_label_values(&[kind]).inc();
    }
}

/// `rk8s_hpa_metric_reads_total{source}`: reads of the HPAs' metrics sources
/// (`resource-metrics`, `prometheus`), each shared by every HPA of a sync round.
pub static HPA_METRIC_READS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    registered(IntCounterVec::new(
        Opts::new(
            "rk8s_hpa_metric_reads_total",
            "Reads of the HPAs' metrics sources (one per round and metric, shared by the HPAs), by source.",
        ),
        &["source"],
    ))
});

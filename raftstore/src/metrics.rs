//! The store's Prometheus metrics, named as etcd names them where etcd has the same
//! measure (`etcd_server_*`, `etcd_disk_*`), `rk8s_raft_*` otherwise. They register in
//! the process' default registry, which the API server exposes on `/metrics`.

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Opts};

/// Registers a metric made from static, valid names in the default registry: it
/// fails only on a programming error (a bad or duplicate name), which the unit tests
/// that gather every metric catch. (The store's own copy of
/// `rk8s_http::metrics::registered`: the store stands below the HTTP floor.)
#[allow(clippy::expect_used)]
fn registered<M: prometheus::core::Collector + Clone + 'static>(
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.expect("metric names are static and valid");
    prometheus::default_registry()
        .register(Box::new(metric.clone()))
        .expect("each metric is registered once");
    metric
}

fn gauge(name: &str, help: &str) -> IntGauge {
    registered(IntGauge::with_opts(Opts::new(name, help)))
}

fn counter(name: &str, help: &str) -> IntCounter {
    registered(IntCounter::with_opts(Opts::new(name, help)))
}

/// etcd's disk latency buckets: 1 ms to 8 s, doubling.
fn disk_histogram(name: &str, help: &str) -> Histogram {
    let buckets = prometheus::exponential_buckets(0.001, 2.0, 14).unwrap_or_default();
    registered(Histogram::with_opts(
        HistogramOpts::new(name, help).buckets(buckets),
    ))
}

/// 1 when this member leads.
pub static IS_LEADER: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "etcd_server_is_leader",
        "Whether this member is the Raft leader (1) or not (0).",
    )
});
/// 1 when this member knows a leader.
pub static HAS_LEADER: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "etcd_server_has_leader",
        "Whether a leader exists as this member sees it.",
    )
});
/// Keys in the store (etcd's name).
pub static KEYS: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "etcd_debugging_mvcc_keys_total",
        "Keys that exist in the store now.",
    )
});
/// The revision of the last write (etcd's gauge of the same name).
pub static CURRENT_REVISION: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "etcd_debugging_mvcc_current_revision",
        "The revision of the last write the store applied.",
    )
});
/// Revisions retained, history included.
pub static REVISIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "rk8s_store_revisions",
        "Revisions of keys the store retains in memory, history until compaction included.",
    )
});
/// Bytes of the retained keys and values.
pub static BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "rk8s_store_bytes",
        "Bytes of the keys and values the store retains in memory, history until compaction included.",
    )
});
/// Of those, the bytes of values that are no longer current.
pub static HISTORY_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "rk8s_store_history_bytes",
        "Bytes of the values the store retains in memory that are no longer current (what compaction frees).",
    )
});
/// The bytes the retained keys and values take in memory.
pub static HELD_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "rk8s_store_held_bytes",
        "Bytes the keys and values the store retains take in memory: each key once, the values compressed.",
    )
});
/// Leader changes seen.
pub static LEADER_CHANGES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "etcd_server_leader_changes_seen_total",
        "Leader changes this member has seen.",
    )
});
/// The current term.
pub static TERM: LazyLock<IntGauge> =
    LazyLock::new(|| gauge("rk8s_raft_term", "The Raft term this member is in."));
/// The commit index.
pub static COMMITTED: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "etcd_server_proposals_committed_total",
        "The index of the last committed entry.",
    )
});
/// The applied index.
pub static APPLIED: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "etcd_server_proposals_applied_total",
        "The index of the last applied entry.",
    )
});
/// Proposals that failed (no leader, leadership lost, timed out, refused).
pub static PROPOSALS_FAILED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "etcd_server_proposals_failed_total",
        "Proposals of this member that failed.",
    )
});
/// Time to write and fsync the log's new entries and hard state.
pub static FSYNC: LazyLock<Histogram> = LazyLock::new(|| {
    disk_histogram(
        "etcd_disk_wal_fsync_duration_seconds",
        "Time to persist a batch of log entries (write and fsync).",
    )
});
/// Time to apply one entry to the state machine.
pub static APPLY: LazyLock<Histogram> = LazyLock::new(|| {
    disk_histogram(
        "rk8s_raft_apply_duration_seconds",
        "Time to apply one committed entry to the state machine.",
    )
});
/// Snapshots taken of this member's own state.
pub static SNAPSHOTS_TAKEN: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "rk8s_raft_snapshots_taken_total",
        "Snapshots this member took of its state.",
    )
});
/// Raft log entries read back from the log's files (no longer held in memory).
pub static LOG_ENTRIES_READ: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "rk8s_raft_log_entries_read_from_disk_total",
        "Raft log entries read back from the log's files because they were no longer held in memory.",
    )
});
/// Snapshots received from the leader and installed.
pub static SNAPSHOTS_INSTALLED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "rk8s_raft_snapshots_installed_total",
        "Snapshots this member received from the leader and installed.",
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_metric_registers_and_gathers() {
        IS_LEADER.set(1);
        HAS_LEADER.set(1);
        LEADER_CHANGES.inc();
        TERM.set(3);
        COMMITTED.set(10);
        APPLIED.set(9);
        PROPOSALS_FAILED.inc();
        FSYNC.observe(0.002);
        APPLY.observe(0.0001);
        SNAPSHOTS_TAKEN.inc();
        SNAPSHOTS_INSTALLED.inc();
        LOG_ENTRIES_READ.inc();
        let names: Vec<String> = prometheus::gather()
            .iter()
            .map(|f| f.get_name().to_string())
            .collect();
        for want in [
            "etcd_server_is_leader",
            "etcd_server_leader_changes_seen_total",
            "etcd_disk_wal_fsync_duration_seconds",
            "rk8s_raft_snapshots_installed_total",
            "rk8s_raft_log_entries_read_from_disk_total",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
    }
}

//! The controllers' Prometheus metrics: reconciles and their latency and failures
//! per kind, and — collected from the actor registry at each scrape — the actors per
//! kind with their restarts and mailbox depth.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};
use rk8s_raftstore::metrics::registered;

use crate::chaos::Actors;

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

/// The registry's actors as metrics, per kind: how many, their restarts, their
/// mailboxes. Registered once per process with [`ActorMetrics::register`].
pub struct ActorMetrics {
    actors: Actors,
    count: IntGaugeVec,
    restarts: IntGaugeVec,
    mailbox: IntGaugeVec,
}

impl ActorMetrics {
    /// Registers the collector for `actors` in the default registry.
    pub fn register(actors: Actors) -> prometheus::Result<()> {
        let gauge = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["kind"]);
        let collector = ActorMetrics {
            actors,
            count: gauge("rk8s_actors", "Control-plane actors running, by kind.")?,
            restarts: gauge(
                "rk8s_actor_restarts_total",
                "Restarts of the running actors of each kind by their supervisors.",
            )?,
            mailbox: gauge(
                "rk8s_actor_mailbox_depth",
                "Messages waiting in the mailboxes of the actors of each kind.",
            )?,
        };
        prometheus::default_registry().register(Box::new(collector))
    }
}

impl Collector for ActorMetrics {
    fn desc(&self) -> Vec<&Desc> {
        [&self.count, &self.restarts, &self.mailbox]
            .into_iter()
            .flat_map(|m| m.desc())
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut per_kind: BTreeMap<String, (i64, u64, u64)> = BTreeMap::new();
        for a in self.actors.list() {
            let e = per_kind.entry(a.kind).or_default();
            e.0 += 1;
            e.1 += a.restarts;
            e.2 += a.mailbox;
        }
        for m in [&self.count, &self.restarts, &self.mailbox] {
            m.reset();
        }
        for (kind, (count, restarts, mailbox)) in per_kind {
            let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            self.count.with_label_values(&[&kind]).set(count);
            self.restarts.with_label_values(&[&kind]).set(n(restarts));
            self.mailbox.with_label_values(&[&kind]).set(n(mailbox));
        }
        [&self.count, &self.restarts, &self.mailbox]
            .into_iter()
            .flat_map(|m| m.collect())
            .collect()
    }
}

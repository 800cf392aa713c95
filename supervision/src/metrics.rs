//! The actors' Prometheus metrics: `rk8s_actor_kills_total{kind, during}` (where each
//! kill landed: `idle`, `reconcile`, `between_writes`), counted as kills land, and —
//! collected from a registry at each scrape by [`ActorMetrics`] — the actors per kind
//! with their restarts and mailbox depth.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts};

use crate::kills::KILLS;
use crate::registry::Actors;

/// A registry's actors as metrics, per kind: how many, their restarts, their
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
            count: gauge("rk8s_actors", "Actors running, by kind.")?,
            restarts: gauge(
                "rk8s_actor_restarts_total",
                "Restarts of the running actors of each kind by their supervisors.",
            )?,
            mailbox: gauge(
                "rk8s_actor_mailbox_depth",
                "Messages waiting in the mailboxes of the actors of each kind.",
            )?,
        };
        // The kill counter exists before the first kill.
        LazyLock::force(&KILLS);
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

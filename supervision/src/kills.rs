//! `rk8s_actor_kills_total{kind, during}`: where each kill landed (`idle`, `reconcile`,
//! `between_writes`), counted as kills land.

use std::sync::LazyLock;

use prometheus::{IntCounterVec, Opts};

use crate::life::Phase;

/// `rk8s_actor_kills_total{kind, during}`, in the default registry (kept
/// unregistered if the name is taken there already).
pub(crate) static KILLS: LazyLock<Option<IntCounterVec>> = LazyLock::new(|| {
    let counter = IntCounterVec::new(
        Opts::new(
            "rk8s_actor_kills_total",
            "Actors killed (chaos), by kind and by where the kill landed: idle, in a \
             reconcile before its first write, or between two of its writes.",
        ),
        &["kind", "during"],
    )
    .ok()?;
    if let Err(e) = prometheus::default_registry().register(Box::new(counter.clone())) {
        tracing::warn!("rk8s_actor_kills_total is not exported: {e}");
    }
    Some(counter)
});

/// Counts a kill of an actor of `kind` that landed in `phase`.
pub(crate) fn killed(kind: &str, phase: Phase) {
    if let Some(kills) = KILLS.as_ref() {
        kills.with_label_values(&[kind, phase.as_str()]).inc();
    }
}

//! Reconciles as the kit sees them: the work an actor carries out through the API,
//! marked with [`Handle::reconcile`](crate::Handle::reconcile), and the writes inside
//! it, counted with [`wrote`]. A kill reads both to say where it landed
//! ([`Phase`](crate::Phase)).

use std::future::Future;
use std::sync::Arc;

use crate::life::Life;

tokio::task_local! {
    /// The actor whose reconcile is being polled.
    static RECONCILING: Arc<Life>;
}

/// Counts a reconcile while it exists (a kill drops it with the incarnation).
struct Marked(Arc<Life>);

impl Drop for Marked {
    fn drop(&mut self) {
        self.0.reconcile_ended();
    }
}

pub(crate) fn marked<F: Future>(life: Arc<Life>, work: F) -> impl Future<Output = F::Output> {
    life.reconcile_began();
    let mark = Marked(life.clone());
    RECONCILING.scope(life, async move {
        let out = work.await;
        drop(mark);
        out
    })
}

/// Records one API write (attempted, whatever its answer) of the reconcile being
/// polled; nothing outside a reconcile.
pub fn wrote() {
    let _ = RECONCILING.try_with(|life| life.wrote());
}

//! The supervisor of one actor: a task on the current actix arbiter that runs one
//! incarnation of the actor at a time and looks at the actor's kill switch before each
//! poll of it. A kill (or a panic) drops the incarnation where it stands — the futures
//! it spawned or waits on, its streams, its mailbox — and starts a new one from the
//! factory, which rebuilds from the store (list, then watch). The actor stopping
//! itself, or being retired, ends the supervision.
//!
//! Unlike `actix::Supervisor`, nothing of the killed incarnation survives: not its
//! fields, not its queued messages, not the half of a reconcile it had not written.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

use actix::prelude::*;
use futures_util::FutureExt;

use crate::Handle;
use crate::handle::Cell;
use crate::life::{Phase, Signal};

/// What a supervisor tells the registry its actor belongs to (a trait, so that the
/// supervisor stands below the registry).
pub(crate) trait Registrar {
    /// A kill of an actor of `kind` landed in `phase`.
    fn count_kill(&self, kind: &str, phase: Phase);
    /// The actor of `life` ended for good.
    fn ended(&self, life: &Arc<crate::life::Life>);
}

/// A factory panicking or an actor panicking at once waits this long before its next
/// incarnation (a kill restarts at once).
pub(crate) const PANIC_BACKOFF: Duration = Duration::from_secs(1);

/// How one incarnation ended.
enum Ended {
    Killed(Phase),
    Panicked,
    Stopped,
    Retired,
}

/// Runs the actor of `cell` from `make` until it stops or is retired.
pub(crate) fn supervise<A, F>(cell: Arc<Cell<A>>, mut make: F, registry: Weak<dyn Registrar>)
where
    A: Actor<Context = Context<A>>,
    F: FnMut(Handle<A>) -> A + 'static,
{
    // The first mailbox exists before this returns: what is sent at once is kept.
    let mut next = Some(Context::<A>::new());
    cell.set(next.as_ref().map(|ctx| ctx.address()));
    actix_rt::spawn(async move {
        let life = cell.life.clone();
        loop {
            let ctx = next.take().unwrap_or_default();
            cell.set(Some(ctx.address()));
            let handle = Handle { cell: cell.clone() };
            let ended = match std::panic::catch_unwind(AssertUnwindSafe(|| make(handle))) {
                Ok(actor) => run(ctx.into_future(actor), &life).await,
                Err(_) => Ended::Panicked,
            };
            match ended {
                Ended::Killed(phase) => {
                    life.restarted();
                    if let Some(registry) = registry.upgrade() {
                        registry.count_kill(&life.kind, phase);
                    }
                    tracing::info!(kind = %life.kind, name = %life.name, during = phase.as_str(), "actor killed: restarting it");
                }
                Ended::Panicked => {
                    life.restarted();
                    tracing::error!(kind = %life.kind, name = %life.name, "actor panicked: restarting it");
                    tokio::time::sleep(PANIC_BACKOFF).await;
                    if life.signal() == Some(Signal::Retire) {
                        break;
                    }
                }
                Ended::Stopped | Ended::Retired => break,
            }
        }
        cell.set(None);
        life.end();
        if let Some(registry) = registry.upgrade() {
            registry.ended(&life);
        }
    });
}

/// Polls one incarnation, the kill switch first each time.
async fn run<F: Future<Output = ()>>(incarnation: F, life: &crate::life::Life) -> Ended {
    let mut incarnation = std::pin::pin!(AssertUnwindSafe(incarnation).catch_unwind());
    std::future::poll_fn(|cx| {
        let signalled = |life: &crate::life::Life| {
            life.signal().map(|s| match s {
                // Read before the incarnation (and its reconciles) is dropped.
                Signal::Kill => Ended::Killed(life.phase()),
                Signal::Retire => Ended::Retired,
            })
        };
        if let Some(ended) = signalled(life) {
            return Poll::Ready(ended);
        }
        life.register(cx.waker());
        if let Some(ended) = signalled(life) {
            return Poll::Ready(ended);
        }
        incarnation.as_mut().poll(cx).map(|r| match r {
            Ok(()) => Ended::Stopped,
            Err(_) => Ended::Panicked,
        })
    })
    .await
}

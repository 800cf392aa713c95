//! [`Handle`]: the address of a supervised actor that outlives its incarnations. A
//! kill drops the actor's mailbox with the actor; the handle then points at the next
//! incarnation's, so a sender never holds a dead address (what it had sent before the
//! kill is lost, as a crash loses it).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use actix::dev::ToEnvelope;
use actix::prelude::*;

use crate::life::Life;

/// What the handles of one actor share with its supervisor.
pub(crate) struct Cell<A: Actor> {
    pub(crate) addr: Mutex<Option<Addr<A>>>,
    pub(crate) life: Arc<Life>,
}

impl<A: Actor> Cell<A> {
    pub(crate) fn set(&self, addr: Option<Addr<A>>) {
        *self.addr.lock().unwrap_or_else(PoisonError::into_inner) = addr;
    }
}

/// The address of a supervised actor across its restarts (cheap to clone: shared).
///
/// Every incarnation gets its own handle from its factory, so it can count the
/// messages it takes ([`Handle::received`]), mark its reconciles
/// ([`Handle::reconcile`]) and give children a way back to it.
pub struct Handle<A: Actor> {
    pub(crate) cell: Arc<Cell<A>>,
}

impl<A: Actor> Clone for Handle<A> {
    fn clone(&self) -> Self {
        Handle {
            cell: self.cell.clone(),
        }
    }
}

impl<A: Actor> std::fmt::Debug for Handle<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("kind", &self.cell.life.kind)
            .field("name", &self.cell.life.name)
            .field("alive", &self.alive())
            .finish()
    }
}

impl<A: Actor> Handle<A> {
    /// The current incarnation's address, if the actor runs.
    pub fn address(&self) -> Option<Addr<A>> {
        self.cell
            .addr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts `msg` in the mailbox of the current incarnation (fire and forget: lost
    /// if the actor is killed before it takes it, or gone).
    pub fn do_send<M>(&self, msg: M)
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
    {
        if let Some(addr) = self.address().filter(|a| a.connected()) {
            self.cell.life.sent();
            addr.do_send(msg);
        }
    }

    /// Sends `msg` and waits for the answer (`MailboxError::Closed` if the actor is
    /// gone or killed before it answers). Callers bound the wait with a timeout.
    pub fn send<M>(
        &self,
        msg: M,
    ) -> impl Future<Output = Result<M::Result, MailboxError>> + use<A, M>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
    {
        let request = self.address().map(|addr| {
            self.cell.life.sent();
            addr.send(msg)
        });
        async move {
            match request {
                Some(r) => r.await,
                None => Err(MailboxError::Closed),
            }
        }
    }

    /// The actor took a message from its mailbox (for the mailbox depth shown).
    pub fn received(&self) {
        self.cell.life.received();
    }

    /// Times the actor was restarted (0 in its first incarnation: a factory seeing
    /// more knows the state it had is lost and asks for it again).
    pub fn restarts(&self) -> u64 {
        self.cell.life.restarts()
    }

    /// Whether the actor runs (a killed one runs again at once).
    pub fn alive(&self) -> bool {
        self.cell.life.alive()
    }

    /// Kills the actor now, as a crash would: whatever it was doing stops at its next
    /// await, its mailbox is dropped, and its supervisor starts it again from its
    /// factory.
    pub fn kill(&self) -> bool {
        self.cell.life.kill()
    }

    /// Stops the actor for good (its object is gone), wherever it is.
    pub fn stop(&self) {
        self.cell.life.retire();
    }

    /// `work`, marked as a reconcile of this actor: a kill that lands while it runs
    /// counts as mid-reconcile, and after any [`crate::wrote`] inside it, as between
    /// writes.
    pub fn reconcile<F: Future>(&self, work: F) -> impl Future<Output = F::Output> + use<A, F> {
        crate::reconcile::marked(self.cell.life.clone(), work)
    }
}

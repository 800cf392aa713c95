//! rk8s' actor kit, used by every actor of the control plane (the scheduler, the
//! controllers and their per-object actors) and of the node agent (the NodeActor and
//! its PodActors):
//!
//! - [`Actors`] ([`registry`]): the live actors by kind and name. Starting an actor
//!   through it puts it under a supervisor ([`supervisor`]); it finds an actor again
//!   by kind and name, lists them ([`ActorInfo`]), kills them and stops them.
//! - [`Handle`] ([`handle`]): an actor's address across its restarts.
//! - Kills crash. [`Actors::kill`] (and [`Handle::kill`]) trips a switch the
//!   supervisor reads before every poll of the actor, never a message queued behind
//!   the actor's others: the actor stops at its next await, wherever it is — between
//!   two API writes of a reconcile too — and everything of it is dropped: its
//!   fields, its spawned futures and streams, its mailbox. The supervisor starts it
//!   again from its factory; the new incarnation rebuilds from the store.
//! - Reconciles are marked ([`Handle::reconcile`], [`wrote`]) so a kill knows where
//!   it landed ([`Phase`]); [`Actors::kills`] and `rk8s_actor_kills_total` count
//!   them ([`metrics`]).
//!
//! ```
//! use actix::prelude::*;
//! use rk8s_supervision::{Actors, Handle};
//!
//! struct Counter { seen: u32, me: Handle<Counter> }
//! impl Actor for Counter { type Context = Context<Self>; }
//!
//! #[derive(Message)]
//! #[rtype(result = "u32")]
//! struct Add;
//! impl Handler<Add> for Counter {
//!     type Result = u32;
//!     fn handle(&mut self, _: Add, _: &mut Context<Self>) -> u32 {
//!         self.me.received();
//!         self.seen += 1;
//!         self.seen
//!     }
//! }
//!
//! System::new().block_on(async {
//!     let actors = Actors::default();
//!     let counter = actors.start("Counter", "a", |me| Counter { seen: 0, me });
//!     assert_eq!(counter.send(Add).await.unwrap(), 1);
//!     assert!(actors.kill("Counter", "a"));
//!     // The next incarnation starts from its factory: what the last one had is gone.
//!     let mut seen = counter.send(Add).await;
//!     while seen.is_err() {
//!         actix_rt::task::yield_now().await;
//!         seen = counter.send(Add).await;
//!     }
//!     assert_eq!(seen.unwrap(), 1);
//!     assert_eq!(actors.list()[0].restarts, 1);
//! });
//! ```

pub mod handle;
mod kills;
mod life;
pub mod metrics;
mod reconcile;
pub mod registry;
pub mod supervisor;

pub use handle::Handle;
pub use life::Phase;
pub use reconcile::wrote;
pub use registry::{ActorInfo, Actors, Kills};

#[cfg(test)]
mod tests;

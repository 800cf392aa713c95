//! Shared informers for the control plane, as kube-controller-manager's
//! SharedInformerFactory: one watch and one in-memory cache per kind on the leader,
//! shared by the scheduler and every controller, instead of a watch and a copy of
//! every pod per controller.
//!
//! - [`Informers`] ([`factory`]): hands out the informer of a kind, starting its watch
//!   (a supervised actor, `Informer/<plural>` in the registry) the first time.
//! - [`Informer`] ([`informer`]): the cache (objects behind `Arc`, shared by everyone
//!   who holds them) and its subscribers.
//! - [`Notice`]: what a subscriber is told, as actor messages in the order the
//!   informer saw the changes: the whole state once ([`Notice::Listed`]), then each
//!   change. A re-list (after a 410, or after the informer's watch was killed and
//!   restarted) reaches subscribers as the changes it reveals, deletions included.
//! - [`metrics`]: how far each informer has come, and how often it listed everything.
//!
//! ```no_run
//! use actix::prelude::*;
//! use k8s_openapi::api::core::v1::Pod;
//! use rk8s_informers::{Informer, Informers, Notice};
//!
//! struct Counter { pods: Informer<Pod>, seen: usize }
//! impl Actor for Counter {
//!     type Context = Context<Self>;
//!     fn started(&mut self, ctx: &mut Context<Self>) {
//!         self.pods.subscribe(ctx.address().recipient());
//!     }
//! }
//! impl Handler<Notice<Pod>> for Counter {
//!     type Result = ();
//!     fn handle(&mut self, notice: Notice<Pod>, _: &mut Context<Self>) {
//!         if let Notice::Listed(all) = notice {
//!             self.seen = all.len();
//!         }
//!     }
//! }
//!
//! # fn run(informers: Informers) {
//! let pods = informers.get::<Pod>();
//! Counter { pods, seen: 0 }.start();
//! # }
//! ```

mod compact;
pub mod factory;
pub mod informer;
pub mod metrics;
mod watch;

pub use factory::Informers;
pub use informer::{Informer, Kind, Notice, key_of};

#[cfg(test)]
mod tests;

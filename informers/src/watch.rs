//! The watch that fills an [`Informer`]: kube-runtime's watcher (list, then watch;
//! re-list on 410, with backoff) as a supervised actor. Killed, it starts again and
//! re-lists; the informer turns that list into the changes it shows.
//!
//! The watcher is read, and its objects decoded, on the runtime the informers are
//! given (the API server's, not the control plane's thread, which the scheduler and
//! the controllers keep busy: decoding the pods' changes was about a sixth of that
//! thread's time at 5,000 nodes), and handed to the actor in order through a bounded
//! queue ([`DECODED`]): an actor that falls behind holds the watch back, as before.
//!
//! Objects are kept without their `managedFields`, as kube-controller-manager's
//! shared informers keep them (its `WithTransform(trim)`): no controller reads them,
//! and they are a large part of each object (an update sent without them keeps the
//! stored ones). Their lists are fitted to their lengths ([`crate::compact`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::prelude::*;
use futures_util::StreamExt;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;

use crate::informer::{Informer, Kind, key_of};

/// The most decoded changes waiting for the actor.
pub(crate) const DECODED: usize = 256;

/// A change as the watch actor receives it: decoded and trimmed.
pub(crate) enum Change<K> {
    /// A list begins.
    Init,
    /// An object of the list.
    InitApply(Arc<K>),
    /// The list is complete.
    InitDone,
    /// An object was added or changed.
    Apply(Arc<K>),
    /// An object was deleted.
    Delete(Arc<K>),
    /// The watcher failed (it retries by itself, with backoff).
    Failed(watcher::Error),
}

impl<K: Kind> From<Result<Event<K>, watcher::Error>> for Change<K> {
    fn from(change: Result<Event<K>, watcher::Error>) -> Self {
        match change {
            Ok(Event::Init) => Change::Init,
            Ok(Event::InitApply(o)) => Change::InitApply(trimmed(o)),
            Ok(Event::InitDone) => Change::InitDone,
            Ok(Event::Apply(o)) => Change::Apply(trimmed(o)),
            Ok(Event::Delete(o)) => Change::Delete(trimmed(o)),
            Err(e) => Change::Failed(e),
        }
    }
}

/// `obj` as the informer keeps it: without its managedFields, its lists no longer
/// than they are.
pub(crate) fn trimmed<K: Kind>(mut obj: K) -> Arc<K> {
    obj.meta_mut().managed_fields = None;
    crate::compact::compact(&mut obj);
    Arc::new(obj)
}

/// The actor watching one kind for its informer.
pub(crate) struct Watch<K: Kind> {
    client: kube::Client,
    /// Where the watcher is read and its objects decoded.
    runtime: tokio::runtime::Handle,
    informer: Informer<K>,
    /// The objects of a list in progress (from its `Init` to its `InitDone`).
    listing: Option<BTreeMap<String, Arc<K>>>,
}

impl<K: Kind> Watch<K> {
    pub(crate) fn new(
        client: kube::Client,
        runtime: tokio::runtime::Handle,
        informer: Informer<K>,
    ) -> Self {
        Watch {
            client,
            runtime,
            informer,
            listing: None,
        }
    }
}

impl<K: Kind> Actor for Watch<K> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (tx, mut rx) = mpsc::channel::<Change<K>>(DECODED);
        let api = Api::<K>::all(self.client.clone());
        // Ends when the actor stops (its receiver dropped), also while the watch is
        // quiet.
        self.runtime.spawn(async move {
            let changes = watcher::watcher(api, Default::default()).default_backoff();
            let mut changes = std::pin::pin!(changes);
            loop {
                tokio::select! {
                    change = changes.next() => match change {
                        Some(change) => {
                            if tx.send(change.into()).await.is_err() {
                                return;
                            }
                        }
                        None => return,
                    },
                    () = tx.closed() => return,
                }
            }
        });
        ctx.add_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    }
}

impl<K: Kind> StreamHandler<Change<K>> for Watch<K> {
    fn handle(&mut self, change: Change<K>, _ctx: &mut Self::Context) {
        match change {
            Change::Init => {
                if self.informer.listed() {
                    // The watch could not resume (its revision was compacted, or the
                    // server ended it): every object is read again.
                    tracing::info!("listing every {} again", K::plural(&()));
                }
                self.listing = Some(BTreeMap::new());
            }
            Change::InitApply(obj) => {
                let listing = self.listing.get_or_insert_default();
                listing.insert(key_of(obj.as_ref()), obj);
            }
            Change::InitDone => {
                self.informer
                    .relisted(self.listing.take().unwrap_or_default());
            }
            Change::Apply(obj) => self.informer.applied(obj),
            Change::Delete(obj) => self.informer.deleted(obj),
            Change::Failed(e) => tracing::warn!("watching {}: {e}", K::plural(&())),
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

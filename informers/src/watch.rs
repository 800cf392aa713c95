//! The watch that fills an [`Informer`]: kube-runtime's watcher (list, then watch;
//! re-list on 410, with backoff) as a supervised actor. Killed, it starts again and
//! re-lists; the informer turns that list into the changes it shows.
//!
//! Objects are kept without their `managedFields`, as kube-controller-manager's
//! shared informers keep them (its `WithTransform(trim)`): no controller reads them,
//! and they are a large part of each object (an update sent without them keeps the
//! stored ones). Their lists are fitted to their lengths ([`crate::compact`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::prelude::*;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use crate::compact::trimmed;
use crate::informer::{Informer, Kind};

type Change<K> = Result<Event<K>, watcher::Error>;

/// The actor watching one kind for its informer.
pub(crate) struct Watch<K: Kind> {
    client: kube::Client,
    informer: Informer<K>,
    /// The objects of a list in progress (from its `Init` to its `InitDone`).
    listing: Option<BTreeMap<String, Arc<K>>>,
}

impl<K: Kind> Watch<K> {
    pub(crate) fn new(client: kube::Client, informer: Informer<K>) -> Self {
        Watch {
            client,
            informer,
            listing: None,
        }
    }
}

impl<K: Kind> Actor for Watch<K> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let changes = watcher::watcher(Api::<K>::all(self.client.clone()), Default::default())
            .default_backoff();
        ctx.add_stream(changes);
    }
}

impl<K: Kind> StreamHandler<Change<K>> for Watch<K> {
    fn handle(&mut self, change: Change<K>, _ctx: &mut Self::Context) {
        match change {
            Ok(Event::Init) => {
                if self.informer.listed() {
                    // The watch could not resume (its revision was compacted, or the
                    // server ended it): every object is read again.
                    tracing::info!("listing every {} again", K::plural(&()));
                }
                self.listing = Some(BTreeMap::new());
            }
            Ok(Event::InitApply(obj)) => {
                let (key, kept) = self.informer.listed_object(obj);
                self.listing.get_or_insert_default().insert(key, kept);
            }
            Ok(Event::InitDone) => {
                self.informer
                    .relisted(self.listing.take().unwrap_or_default());
            }
            Ok(Event::Apply(obj)) => self.informer.applied(trimmed(obj)),
            Ok(Event::Delete(obj)) => self.informer.deleted(trimmed(obj)),
            Err(e) => tracing::warn!("watching {}: {e}", K::plural(&())),
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

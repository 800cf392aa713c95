//! The watch that fills an [`Informer`]: kube-runtime's watcher (list, then watch;
//! re-list on 410, with backoff) as a supervised actor. Killed, it starts again and
//! re-lists. The first list is told whole when it completes; a later one is taken in
//! object by object as the changes it shows (the informer then never holds two
//! copies of every changed object), and what it did not show is deleted at its end.
//!
//! Objects are kept without their `managedFields`, as kube-controller-manager's
//! shared informers keep them (its `WithTransform(trim)`): no controller reads them,
//! and they are a large part of each object (an update sent without them keeps the
//! stored ones). Their lists are fitted to their lengths ([`crate::compact`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use crate::compact::trimmed;
use crate::informer::{Informer, Kind, key_of};
use crate::metrics;

type Change<K> = Result<Event<K>, watcher::Error>;

/// The actor watching one kind for its informer.
pub(crate) struct Watch<K: Kind> {
    client: kube::Client,
    informer: Informer<K>,
    /// A list in progress (from its `Init` to its `InitDone`).
    listing: Option<Listing<K>>,
    /// The kind's [`metrics::RESOURCE_VERSION`] and [`metrics::LISTS`].
    taken_in: prometheus::IntGauge,
    lists: prometheus::IntCounter,
}

/// A list in progress.
enum Listing<K> {
    /// The first: its objects, told whole when it completes.
    First(BTreeMap<String, Arc<K>>),
    /// A later one: the keys it showed, each object taken in as it came.
    Again(HashSet<String>),
}

impl<K: Kind> Listing<K> {
    fn new(informer: &Informer<K>) -> Self {
        if informer.listed() {
            Listing::Again(HashSet::new())
        } else {
            Listing::First(BTreeMap::new())
        }
    }
}

impl<K: Kind> Watch<K> {
    pub(crate) fn new(client: kube::Client, informer: Informer<K>) -> Self {
        Watch {
            client,
            informer,
            listing: None,
            taken_in: metrics::RESOURCE_VERSION.with_label_values(&[&metrics::resource::<K>()]),
            lists: metrics::LISTS.with_label_values(&[&metrics::resource::<K>()]),
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
        if let Ok(Event::InitApply(obj) | Event::Apply(obj) | Event::Delete(obj)) = &change {
            metrics::took_in(&self.taken_in, obj.meta().resource_version.as_deref());
        }
        match change {
            Ok(Event::Init) => {
                self.lists.inc();
                if self.informer.listed() {
                    // The watch could not resume (its revision was compacted, or the
                    // server ended it): every object is read again.
                    tracing::info!("listing every {} again", K::plural(&()));
                }
                self.listing = Some(Listing::new(&self.informer));
            }
            Ok(Event::InitApply(obj)) => match self
                .listing
                .get_or_insert_with(|| Listing::new(&self.informer))
            {
                Listing::First(objects) => {
                    objects.insert(key_of(&obj), trimmed(obj));
                }
                Listing::Again(seen) => {
                    seen.insert(self.informer.relisted_object(obj));
                }
            },
            Ok(Event::InitDone) => match self.listing.take() {
                Some(Listing::Again(seen)) => self.informer.relist_done(&seen),
                Some(Listing::First(objects)) => self.informer.first_listed(objects),
                None if !self.informer.listed() => self.informer.first_listed(BTreeMap::new()),
                None => {}
            },
            Ok(Event::Apply(obj)) => self.informer.applied(trimmed(obj)),
            Ok(Event::Delete(obj)) => self.informer.deleted(trimmed(obj)),
            Err(e) => tracing::warn!("watching {}: {e}", K::plural(&())),
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

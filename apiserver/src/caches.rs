//! The watch caches of the server: one per resource (group and plural), for the
//! built-in kinds from the start and for custom kinds as their CRDs are established.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use rk8s_api::ObjectKind;
use rk8s_raftstore::server::Store;

use crate::watch::WatchCache;

/// Every watch cache, by group and plural.
pub struct Caches {
    store: Store,
    caches: RwLock<HashMap<(&'static str, &'static str), Arc<WatchCache>>>,
}

impl Caches {
    /// Caches over `store`, one started for each of `kinds`.
    pub fn new(store: Store, kinds: impl IntoIterator<Item = ObjectKind>) -> Self {
        let caches = Caches {
            store,
            caches: RwLock::default(),
        };
        for kind in kinds {
            caches.ensure(kind);
        }
        caches
    }

    /// The cache of `kind`'s resource, if the server keeps one.
    pub fn get(&self, kind: &ObjectKind) -> Option<Arc<WatchCache>> {
        self.caches
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(kind.group, kind.plural))
            .cloned()
    }

    /// The cache of `kind`'s resource, started if there was none. A cache outlives
    /// its CRD (a CRD created again under the same names finds it); their number is
    /// bounded by the distinct resources ever defined.
    pub fn ensure(&self, kind: ObjectKind) -> Arc<WatchCache> {
        if let Some(c) = self.get(&kind) {
            return c;
        }
        let mut caches = self.caches.write().unwrap_or_else(PoisonError::into_inner);
        caches
            .entry((kind.group, kind.plural))
            .or_insert_with(|| {
                let cache = WatchCache::new(kind, self.store.clone());
                tokio::spawn(cache.clone().run());
                cache
            })
            .clone()
    }
}

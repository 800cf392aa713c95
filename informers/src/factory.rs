//! [`Informers`]: the informer of each kind, made and started once per leadership.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rk8s_supervision::Actors;

use crate::informer::{Informer, Kind};
use crate::watch::Watch;

/// The kind the informers' watch actors are listed under in the registry.
pub const INFORMER: &str = "Informer";

/// The shared informers of one control plane (cheap to clone: shared). Made when a
/// member starts leading; its watches stop with the registry's other actors.
#[derive(Clone)]
pub struct Informers {
    client: kube::Client,
    actors: Actors,
    kinds: Arc<Mutex<HashMap<TypeId, Box<dyn Any + Send>>>>,
}

impl Informers {
    /// Informers reading the API through `client`, their watches run in `actors`.
    pub fn new(client: kube::Client, actors: Actors) -> Self {
        Informers {
            client,
            actors,
            kinds: Arc::default(),
        }
    }

    /// The informer of `K`, its watch started the first time it is asked for (from
    /// the actix system the control plane's actors run on).
    pub fn get<K: Kind>(&self) -> Informer<K> {
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(informer) = kinds
            .get(&TypeId::of::<K>())
            .and_then(|any| any.downcast_ref::<Informer<K>>())
        {
            return informer.clone();
        }
        let informer = Informer::<K>::default();
        kinds.insert(TypeId::of::<K>(), Box::new(informer.clone()));
        drop(kinds);
        let (client, shared) = (self.client.clone(), informer.clone());
        self.actors.start(INFORMER, &K::plural(&()), move |_| {
            Watch::new(client.clone(), shared.clone())
        });
        informer
    }
}

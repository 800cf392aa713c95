//! [`Informer`]: one kind's objects as the API last showed them, and who is told of
//! their changes.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix::prelude::*;
use serde::de::DeserializeOwned;

/// A kind an informer can watch: a typed, statically known Kubernetes resource.
pub trait Kind:
    kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

impl<K> Kind for K where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

/// What a subscriber is told, in the order the informer saw it.
#[derive(Debug)]
pub enum Notice<K> {
    /// Every object, sent once: when the subscriber subscribes, or when the first
    /// list completes if it subscribed before.
    Listed(Arc<[Arc<K>]>),
    /// An object was added or changed.
    Applied(Arc<K>),
    /// An object was deleted (its last state).
    Deleted(Arc<K>),
}

impl<K> Clone for Notice<K> {
    fn clone(&self) -> Self {
        match self {
            Notice::Listed(all) => Notice::Listed(all.clone()),
            Notice::Applied(o) => Notice::Applied(o.clone()),
            Notice::Deleted(o) => Notice::Deleted(o.clone()),
        }
    }
}

impl<K> Notice<K> {
    /// Calls `f` with each object the notice carries and whether it was deleted;
    /// whether the notice was the whole state ([`Notice::Listed`]), after which a
    /// subscriber counts the kind as listed.
    pub fn for_each(self, mut f: impl FnMut(Arc<K>, bool)) -> bool {
        match self {
            Notice::Listed(all) => {
                all.iter().for_each(|o| f(o.clone(), false));
                true
            }
            Notice::Applied(o) => {
                f(o, false);
                false
            }
            Notice::Deleted(o) => {
                f(o, true);
                false
            }
        }
    }
}

impl<K: Kind> Message for Notice<K> {
    type Result = ();
}

/// An object's key in its informer: `namespace/name`, or `name` for cluster-scoped
/// kinds.
pub fn key_of<K: kube::Resource>(obj: &K) -> String {
    let meta = obj.meta();
    let name = meta.name.as_deref().unwrap_or_default();
    match meta.namespace.as_deref() {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// Someone told of a kind's changes, in a message of their choosing.
trait Subscriber<K>: Send {
    fn connected(&self) -> bool;
    fn tell(&self, notice: Notice<K>);
}

impl<K, M> Subscriber<K> for Recipient<M>
where
    M: Message<Result = ()> + From<Notice<K>> + Send + 'static,
{
    fn connected(&self) -> bool {
        Recipient::connected(self)
    }

    fn tell(&self, notice: Notice<K>) {
        self.do_send(M::from(notice));
    }
}

struct Shared<K: Kind> {
    /// By [`key_of`], in order (namespaces are ranges: [`Informer::list_in`]).
    objects: BTreeMap<String, Arc<K>>,
    listed: bool,
    subscribers: Vec<Box<dyn Subscriber<K>>>,
}

impl<K: Kind> Shared<K> {
    fn tell(&mut self, notice: &Notice<K>) {
        // A killed subscriber's mailbox is gone; its next incarnation subscribes anew.
        self.subscribers.retain(|s| s.connected());
        for s in &self.subscribers {
            s.tell(notice.clone());
        }
    }

    fn all(&self) -> Arc<[Arc<K>]> {
        self.objects.values().cloned().collect()
    }
}

/// One kind's shared cache (cheap to clone: shared). Filled by its watch; read by
/// anyone holding it, changes told to its subscribers.
pub struct Informer<K: Kind> {
    shared: Arc<Mutex<Shared<K>>>,
}

impl<K: Kind> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            shared: self.shared.clone(),
        }
    }
}

impl<K: Kind> Default for Informer<K> {
    fn default() -> Self {
        Informer {
            shared: Arc::new(Mutex::new(Shared {
                objects: BTreeMap::new(),
                listed: false,
                subscribers: Vec::new(),
            })),
        }
    }
}

impl<K: Kind> Informer<K> {
    fn lock(&self) -> MutexGuard<'_, Shared<K>> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells `to` every change from now on, after the whole state
    /// ([`Notice::Listed`]): at once if the first list is done, else when it is.
    pub fn subscribe(&self, to: Recipient<Notice<K>>) {
        self.subscribe_as(to);
    }

    /// [`Informer::subscribe`], each notice wrapped in a message of the subscriber's
    /// (an actor generic over two kinds, which may be one, handles a notice of each
    /// as a different message).
    pub fn subscribe_as<M>(&self, to: Recipient<M>)
    where
        M: Message<Result = ()> + From<Notice<K>> + Send + 'static,
    {
        let mut shared = self.lock();
        if shared.listed {
            to.do_send(M::from(Notice::Listed(shared.all())));
        }
        shared.subscribers.push(Box::new(to));
    }

    /// The object with `key` ([`key_of`]), as last seen.
    pub fn get(&self, key: &str) -> Option<Arc<K>> {
        self.lock().objects.get(key).cloned()
    }

    /// Every object, as last seen (empty before the first list).
    pub fn list(&self) -> Vec<Arc<K>> {
        self.lock().objects.values().cloned().collect()
    }

    /// Every object in `namespace`, as last seen (kube's namespace index: the keys
    /// are `namespace/name` in order, so this reads the namespace's range, not every
    /// object of the kind).
    pub fn list_in(&self, namespace: &str) -> Vec<Arc<K>> {
        // `namespace/` up to `namespace0`: '0' is the byte after '/'.
        let (from, to) = (format!("{namespace}/"), format!("{namespace}0"));
        self.lock()
            .objects
            .range(from..to)
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Whether the first list is done.
    pub fn listed(&self) -> bool {
        self.lock().listed
    }

    /// Waits up to `timeout` for the first list; whether it is done.
    pub async fn wait_until_listed(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.listed() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// The first list completed with `fresh`: told whole ([`Notice::Listed`]).
    pub(crate) fn first_listed(&self, fresh: BTreeMap<String, Arc<K>>) {
        let mut shared = self.lock();
        shared.objects = fresh;
        shared.listed = true;
        let all = Notice::Listed(shared.all());
        shared.tell(&all);
    }

    /// An object of a later list (after a 410 or a restart of the watch), taken in at
    /// once as a change unless it is the version already known (subscribers keep the
    /// copy they hold); its key. Taken in one by one, a re-list holds no second copy
    /// of what changed beside the known one until it completes (0.4–0.7 GB at
    /// 150,000 pods); what it did not show goes at [`Informer::relist_done`].
    pub(crate) fn relisted_object(&self, obj: K) -> String {
        let key = key_of(&obj);
        let same =
            self.lock().objects.get(&key).is_some_and(|known| {
                version(known.as_ref()).is_some_and(|v| Some(v) == version(&obj))
            });
        if !same {
            self.applied(crate::compact::trimmed(obj));
        }
        key
    }

    /// A later list completed having shown the keys `seen`: every other object went
    /// meanwhile, and is told deleted (in its last state known).
    pub(crate) fn relist_done(&self, seen: &HashSet<String>) {
        let mut shared = self.lock();
        let gone: Vec<String> = shared
            .objects
            .keys()
            .filter(|key| !seen.contains(*key))
            .cloned()
            .collect();
        for key in gone {
            if let Some(was) = shared.objects.remove(&key) {
                shared.tell(&Notice::Deleted(was));
            }
        }
    }

    /// An object was added or changed.
    pub(crate) fn applied(&self, obj: Arc<K>) {
        let mut shared = self.lock();
        shared.objects.insert(key_of(obj.as_ref()), obj.clone());
        shared.tell(&Notice::Applied(obj));
    }

    /// An object was deleted.
    pub(crate) fn deleted(&self, obj: Arc<K>) {
        let mut shared = self.lock();
        shared.objects.remove(&key_of(obj.as_ref()));
        shared.tell(&Notice::Deleted(obj));
    }
}

fn version<K: kube::Resource>(obj: &K) -> Option<&str> {
    obj.meta().resource_version.as_deref()
}

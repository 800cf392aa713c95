//! What the EndpointSlice and EndpointSlice mirroring controllers share: the cache of
//! the slices each manages, filed by the key it keeps them for (a Service's, an
//! Endpoints') and kept right against its own writes — what it wrote is filed at once,
//! before the watch brings it (so that the next batch does not create the same slices
//! again), an event older than its own write is ignored, a slice relabelled away or
//! moved is refiled, and a deletion the watch saw first is not undone by a write's late
//! answer (tombstones of the uids deleted) — and the writes themselves, with a retry
//! after [`RETRY`] doubled at each failure in a row up to [`MAX_RETRY`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};

use crate::endpoint_slices::{Changes, service_name};

/// How long a key whose writes failed waits before it is looked at again (the first
/// time; doubled at each failure in a row).
pub const RETRY: Duration = Duration::from_secs(1);
/// The longest wait between attempts at a key whose writes keep failing.
pub const MAX_RETRY: Duration = Duration::from_secs(60);
/// How many deletions seen by the watch are remembered.
const TOMBSTONES: usize = 1024;

/// What became of one slice a controller wrote.
pub(crate) enum Outcome {
    /// Created or replaced: the API server's copy.
    Applied(Arc<EndpointSlice>),
    /// Deleted (or already gone).
    Deleted(String),
}

/// The outcomes of one batch, by key; `failed` when one of its writes failed.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Written(pub(crate) Vec<(String, Vec<Outcome>, bool)>);

/// The slices a controller manages, by the key it keeps them for.
#[derive(Default)]
pub(crate) struct SliceCache {
    /// By key, then slice name.
    slices: BTreeMap<String, BTreeMap<String, Arc<EndpointSlice>>>,
    /// Which key each cached slice (`ns/name`) is filed under.
    filed: BTreeMap<String, String>,
    /// The uids of slices the watch saw deleted lately, oldest first.
    tombstones: VecDeque<String>,
    /// Failures in a row, by key.
    failures: BTreeMap<String, u32>,
}

fn namespace(key: &str) -> &str {
    key.split_once('/').map_or("default", |(ns, _)| ns)
}

/// Whether resourceVersion `a` is older than `b` (both numbers, as the store's are).
pub(crate) fn older(a: Option<&String>, b: Option<&String>) -> bool {
    let number = |v: Option<&String>| v.and_then(|v| v.parse::<u64>().ok());
    matches!((number(a), number(b)), (Some(a), Some(b)) if a < b)
}

impl SliceCache {
    /// The cached slices of `key`.
    pub(crate) fn of(&self, key: &str) -> Vec<&EndpointSlice> {
        self.slices
            .get(key)
            .into_iter()
            .flat_map(|s| s.values())
            .map(|s| s.as_ref())
            .collect()
    }

    /// Files a watch event of `slice` (`ours` says whether this controller manages
    /// it, filed under `namespace/` its `kubernetes.io/service-name` label); marks in
    /// `dirty` the keys it was and is filed under.
    pub(crate) fn event(
        &mut self,
        slice: Arc<EndpointSlice>,
        deleted: bool,
        ours: fn(&EndpointSlice) -> bool,
        dirty: &mut BTreeSet<String>,
    ) {
        let (Some(ns), Some(name)) = (
            slice.metadata.namespace.clone(),
            slice.metadata.name.clone(),
        ) else {
            return;
        };
        let id = format!("{ns}/{name}");
        // Where it was filed, whatever it is now.
        let before = self.filed.get(&id).cloned();
        let now = service_name(&slice)
            .filter(|_| ours(&slice) && !deleted)
            .map(|key| format!("{ns}/{key}"));
        if deleted && let Some(uid) = slice.metadata.uid.clone() {
            self.tombstones.push_back(uid);
            if self.tombstones.len() > TOMBSTONES {
                self.tombstones.pop_front();
            }
        }
        if let Some(now) = &now {
            // An event older than what this controller wrote itself brings nothing.
            let cached = self
                .slices
                .get(now)
                .and_then(|s| s.get(&name))
                .and_then(|s| s.metadata.resource_version.as_ref());
            if before.as_ref() == Some(now)
                && older(slice.metadata.resource_version.as_ref(), cached)
            {
                return;
            }
        }
        if let Some(before) = &before {
            self.unfile(before, &name);
            dirty.insert(before.clone());
        }
        if let Some(now) = now {
            self.slices
                .entry(now.clone())
                .or_default()
                .insert(name, slice);
            self.filed.insert(id, now.clone());
            // Someone else's change, or the echo of ours (which then writes nothing).
            dirty.insert(now);
        }
    }

    /// Forgets the cached slice `name` of `key`.
    fn unfile(&mut self, key: &str, name: &str) {
        if let Some(slices) = self.slices.get_mut(key) {
            slices.remove(name);
            if slices.is_empty() {
                self.slices.remove(key);
            }
        }
        self.filed.remove(&format!("{}/{name}", namespace(key)));
    }

    /// Files what the writes for `key` did; when one failed, how long to wait before
    /// `key` is looked at again.
    pub(crate) fn written(
        &mut self,
        key: &str,
        outcomes: Vec<Outcome>,
        failed: bool,
    ) -> Option<Duration> {
        for outcome in outcomes {
            match outcome {
                Outcome::Applied(s) => {
                    let Some(name) = s.metadata.name.clone() else {
                        continue;
                    };
                    // Deleted since (the watch said so first): not brought back.
                    let uid = s.metadata.uid.as_ref();
                    if uid.is_some_and(|u| self.tombstones.contains(u)) {
                        continue;
                    }
                    let slices = self.slices.entry(key.to_string()).or_default();
                    let cached = slices
                        .get(&name)
                        .and_then(|c| c.metadata.resource_version.as_ref());
                    if !older(s.metadata.resource_version.as_ref(), cached) {
                        slices.insert(name.clone(), s);
                        let id = format!("{}/{name}", namespace(key));
                        self.filed.insert(id, key.to_string());
                    }
                }
                Outcome::Deleted(name) => self.unfile(key, &name),
            }
        }
        if !failed {
            self.failures.remove(key);
            return None;
        }
        let n = self.failures.entry(key.to_string()).or_default();
        *n = n.saturating_add(1);
        Some(RETRY.saturating_mul(1u32 << (*n - 1).min(6)).min(MAX_RETRY))
    }
}

/// Carries out one batch — each key's changes in its namespace — and says what came
/// of them (`what` names the work in the log).
pub(crate) async fn write_batch(
    client: kube::Client,
    work: Vec<(String, String, Changes)>,
    what: &'static str,
) -> Vec<(String, Vec<Outcome>, bool)> {
    let mut written = Vec::new();
    for (key, ns, changes) in work {
        let (outcomes, failed) = write(&Api::namespaced(client.clone(), &ns), changes).await;
        if failed {
            tracing::debug!(key = %key, "{what} failed");
        }
        written.push((key, outcomes, failed));
    }
    written
}

/// Carries one Service's changes out; what became of each slice, and whether a write
/// failed.
async fn write(api: &Api<EndpointSlice>, changes: Changes) -> (Vec<Outcome>, bool) {
    let mut outcomes = Vec::new();
    let mut failed = false;
    let post = PostParams::default();
    for slice in changes.create {
        match api.create(&post, &slice).await {
            Ok(s) => outcomes.push(Outcome::Applied(Arc::new(s))),
            Err(e) => {
                tracing::debug!("creating an endpoint slice: {e}");
                failed = true;
            }
        }
        rk8s_supervision::wrote();
    }
    for slice in changes.update {
        let name = slice.metadata.name.clone().unwrap_or_default();
        match api.replace(&name, &post, &slice).await {
            Ok(s) => outcomes.push(Outcome::Applied(Arc::new(s))),
            // Gone meanwhile: forgotten, and the Service looked at again.
            Err(kube::Error::Api(s)) if s.code == 404 => {
                outcomes.push(Outcome::Deleted(name));
                failed = true;
            }
            Err(e) => {
                tracing::debug!(slice = %name, "replacing an endpoint slice: {e}");
                failed = true;
            }
        }
        rk8s_supervision::wrote();
    }
    for slice in changes.delete {
        let name = slice.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: slice.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => outcomes.push(Outcome::Deleted(name)),
            Err(kube::Error::Api(s)) if s.code == 404 => outcomes.push(Outcome::Deleted(name)),
            Err(e) => {
                tracing::debug!(slice = %name, "deleting an endpoint slice: {e}");
                failed = true;
            }
        }
        rk8s_supervision::wrote();
    }
    (outcomes, failed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn slice(name: &str, service: &str, rv: &str, uid: &str) -> Arc<EndpointSlice> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv, "uid": uid,
                    "labels": {"kubernetes.io/service-name": service, "mine": "yes"}},
                "addressType": "IPv4", "endpoints": []
            }))
            .unwrap(),
        )
    }

    fn mine(s: &EndpointSlice) -> bool {
        s.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("mine"))
            .is_some()
    }

    fn names(cache: &SliceCache, key: &str) -> Vec<String> {
        cache
            .of(key)
            .iter()
            .map(|s| s.metadata.name.clone().unwrap())
            .collect()
    }

    #[test]
    fn slices_are_filed_moved_and_forgotten_as_the_watch_says() {
        let (mut cache, mut dirty) = (SliceCache::default(), BTreeSet::new());
        cache.event(slice("a-1", "a", "5", "u1"), false, mine, &mut dirty);
        assert_eq!(names(&cache, "ns/a"), ["a-1"]);
        assert!(dirty.contains("ns/a"));
        // Relabelled to another Service: moved, both marked.
        dirty.clear();
        cache.event(slice("a-1", "b", "6", "u1"), false, mine, &mut dirty);
        assert!(names(&cache, "ns/a").is_empty());
        assert_eq!(names(&cache, "ns/b"), ["a-1"]);
        assert_eq!(dirty.len(), 2);
        // No longer ours: forgotten.
        let mut foreign = (*slice("a-1", "b", "7", "u1")).clone();
        foreign.metadata.labels.as_mut().unwrap().remove("mine");
        cache.event(Arc::new(foreign), false, mine, &mut dirty);
        assert!(names(&cache, "ns/b").is_empty());
        // An event older than the controller's own write brings nothing.
        let written = vec![Outcome::Applied(slice("c-1", "c", "10", "u2"))];
        assert_eq!(cache.written("ns/c", written, false), None);
        cache.event(slice("c-1", "c", "9", "u2"), false, mine, &mut dirty);
        let rv = cache.of("ns/c")[0].metadata.resource_version.clone();
        assert_eq!(rv.as_deref(), Some("10"));
    }

    #[test]
    fn a_deletion_seen_first_is_not_undone_and_failures_back_off() {
        let (mut cache, mut dirty) = (SliceCache::default(), BTreeSet::new());
        cache.event(slice("a-1", "a", "5", "u1"), true, mine, &mut dirty);
        // The answer of a replace made before the deletion arrives after it.
        let late = vec![Outcome::Applied(slice("a-1", "a", "6", "u1"))];
        assert_eq!(cache.written("ns/a", late, false), None);
        assert!(names(&cache, "ns/a").is_empty());
        let waits: Vec<Duration> = (0..9)
            .map(|_| cache.written("ns/a", vec![], true).unwrap())
            .collect();
        assert_eq!(waits[0], RETRY);
        assert_eq!(waits[1], RETRY * 2);
        assert_eq!(waits[8], MAX_RETRY);
        // A success resets the count.
        assert_eq!(cache.written("ns/a", vec![], false), None);
        assert_eq!(cache.written("ns/a", vec![], true), Some(RETRY));
    }
}

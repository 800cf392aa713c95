//! What controllers share: owner references, pod readiness, and expectations (the
//! Kubernetes pattern that keeps a controller from acting twice on a stale cache).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// The controlling owner reference of an object, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// A controlling owner reference to an object of `kind` (`apps/v1`).
pub fn controller_ref(api_version: &str, kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether a pod counts: not finished and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// When the pod became Ready, if it is.
pub fn ready_since(pod: &Pod) -> Option<jiff::Timestamp> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(
        c.last_transition_time
            .as_ref()
            .map_or(jiff::Timestamp::UNIX_EPOCH, |t| t.0),
    )
}

/// Whether the pod is Ready.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Whether the pod has been Ready for `min_ready_seconds` at `now`.
pub fn is_available(pod: &Pod, min_ready_seconds: i64, now: jiff::Timestamp) -> bool {
    ready_since(pod).is_some_and(|since| {
        min_ready_seconds <= 0
            || now.duration_since(since) >= jiff::SignedDuration::from_secs(min_ready_seconds)
    })
}

/// How long expectations are trusted before a controller acts again regardless.
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Creations and deletions a controller has asked for and not yet seen through its
/// watch: until they are seen (or time out), it does not act on the count again.
#[derive(Debug, Default)]
pub struct Expectations {
    entries: HashMap<String, Expected>,
}

#[derive(Debug)]
struct Expected {
    adds: usize,
    deletes: HashSet<String>,
    at: Instant,
}

impl Expectations {
    /// `key` is about to create `adds` pods and delete `deletes`.
    pub fn expect(&mut self, key: &str, adds: usize, deletes: impl IntoIterator<Item = String>) {
        self.entries.insert(
            key.to_string(),
            Expected {
                adds,
                deletes: deletes.into_iter().collect(),
                at: Instant::now(),
            },
        );
    }

    /// A creation was seen (or failed, so will never be).
    pub fn created(&mut self, key: &str) {
        if let Some(e) = self.entries.get_mut(key) {
            e.adds = e.adds.saturating_sub(1);
        }
    }

    /// A deletion of `pod` was seen (or failed).
    pub fn deleted(&mut self, key: &str, pod: &str) {
        if let Some(e) = self.entries.get_mut(key) {
            e.deletes.remove(pod);
        }
    }

    /// Whether `key` may act on its counts: everything expected was seen, or the
    /// expectations are too old to trust.
    pub fn satisfied(&self, key: &str) -> bool {
        self.entries.get(key).is_none_or(|e| {
            (e.adds == 0 && e.deletes.is_empty()) || e.at.elapsed() > EXPECTATIONS_TIMEOUT
        })
    }

    /// Forgets `key` (its object is gone).
    pub fn forget(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_hold_until_every_action_is_seen() {
        let mut e = Expectations::default();
        assert!(e.satisfied("rs"));
        e.expect("rs", 2, ["p1".to_string()]);
        assert!(!e.satisfied("rs"));
        e.created("rs");
        e.created("rs");
        assert!(!e.satisfied("rs"));
        e.deleted("rs", "p1");
        assert!(e.satisfied("rs"));
        e.expect("rs", 1, []);
        e.forget("rs");
        assert!(e.satisfied("rs"));
    }
}

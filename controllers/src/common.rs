//! What controllers share: owner references, pod readiness, status and adoption
//! writes, and expectations (the Kubernetes pattern that keeps a controller from acting
//! twice on a stale cache).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// `NAMESPACE/NAME` of a namespaced object, `NAME` of another.
pub fn object_name(meta: &ObjectMeta) -> String {
    match &meta.namespace {
        Some(ns) => format!("{ns}/{}", meta.name.as_deref().unwrap_or_default()),
        None => meta.name.clone().unwrap_or_default(),
    }
}

/// What a failed request says, as kube-controller-manager's events word it: the
/// server's `Status` message for a refusal (`pods "web-x" is forbidden: ...`), the
/// client's error otherwise.
pub fn error_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

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

/// Writes the status `obj` carries, whole (PUT on the status subresource; a merge
/// patch would keep the fields the new status leaves out), with `obj`'s
/// resourceVersion: a status decided on a stale view is refused, and decided again.
pub async fn replace_status<K>(client: &kube::Client, obj: &K) -> Result<(), kube::Error>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let meta = obj.meta();
    let api: kube::Api<K> = kube::Api::namespaced(
        client.clone(),
        meta.namespace.as_deref().unwrap_or("default"),
    );
    let replaced = api
        .replace_status(
            meta.name.as_deref().unwrap_or_default(),
            &kube::api::PostParams::default(),
            obj,
        )
        .await;
    rk8s_supervision::wrote();
    replaced.map(|_| ())
}

/// Writes the statuses `work` carries one after another ([`replace_status`]), each
/// logged; whether any write failed (an object gone meanwhile is not a failure:
/// nothing is left to write). Counted as one reconcile of `kind`.
pub async fn replace_statuses<K>(client: &kube::Client, kind: &'static str, work: &[K]) -> bool
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let started = Instant::now();
    let mut failed = false;
    for obj in work {
        let name = object_name(obj.meta());
        match replace_status(client, obj).await {
            Ok(()) => tracing::info!(kind, object = %name, "status written"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                failed = true;
                tracing::debug!(kind, object = %name, "writing the status: {e}");
            }
        }
    }
    crate::metrics::reconciled(kind, started.elapsed(), failed);
    failed
}

/// Makes `owner` the controller of the object `meta` describes: a merge patch of its
/// ownerReferences carrying its resourceVersion, so an object changed since it was
/// seen is refused and looked at again.
pub async fn adopt<K>(
    api: &kube::Api<K>,
    meta: &ObjectMeta,
    owner: &OwnerReference,
) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut refs = meta.owner_references.clone().unwrap_or_default();
    refs.push(owner.clone());
    set_owner_references(api, meta, refs).await
}

/// Replaces the ownerReferences of the object `meta` describes with `refs` (a merge
/// patch carrying its resourceVersion: an object changed since it was seen is
/// refused).
pub async fn set_owner_references<K>(
    api: &kube::Api<K>,
    meta: &ObjectMeta,
    refs: Vec<OwnerReference>,
) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({"metadata": {
        "ownerReferences": refs, "resourceVersion": meta.resource_version}});
    let name = meta.name.as_deref().unwrap_or_default();
    let patched = api
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await;
    rk8s_supervision::wrote();
    patched.map(|_| ())
}

/// Kubernetes' alphabet for names made from numbers (no vowels, no look-alikes).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The hash naming a pod template's ReplicaSet or ControllerRevision (FNV-1a of its
/// JSON and the owner's collision count), in Kubernetes' name-safe alphabet.
pub fn template_hash<T: serde::Serialize>(template: Option<&T>, collisions: Option<i32>) -> String {
    let json = serde_json::to_vec(&template).unwrap_or_default();
    let mut h: u32 = 0x811c_9dc5;
    for b in json
        .iter()
        .chain(collisions.unwrap_or(0).to_le_bytes().iter())
    {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.to_string()
        .bytes()
        .map(|c| ALPHABET[usize::from(c) % ALPHABET.len()] as char)
        .collect()
}

/// Resolves an int-or-percent (`maxSurge: 25%`) against `total`, rounding up or down;
/// absent or unreadable, `default_percent` of it.
pub fn int_or_percent(
    value: Option<&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
    total: i32,
    default_percent: i32,
    up: bool,
) -> i32 {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let percent = match value {
        Some(IntOrString::Int(n)) => return (*n).max(0),
        Some(IntOrString::String(s)) => s.trim_end_matches('%').parse().unwrap_or(default_percent),
        None => default_percent,
    };
    let scaled = i64::from(total) * i64::from(percent);
    let v = if up {
        (scaled + 99) / 100
    } else {
        scaled / 100
    };
    i32::try_from(v.max(0)).unwrap_or(i32::MAX)
}

/// How long expectations are trusted before a controller acts again regardless.
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Creations and deletions a controller has asked for and not yet seen through its
/// watch: until they are seen (or time out), it does not act on the counts again.
#[derive(Debug)]
pub struct Expectations {
    adds: usize,
    deletes: HashSet<String>,
    at: Instant,
}

impl Default for Expectations {
    fn default() -> Self {
        Expectations {
            adds: 0,
            deletes: HashSet::new(),
            at: Instant::now(),
        }
    }
}

impl Expectations {
    /// About to create `adds` pods and delete `deletes`.
    pub fn expect(&mut self, adds: usize, deletes: impl IntoIterator<Item = String>) {
        self.adds = adds;
        self.deletes = deletes.into_iter().collect();
        self.at = Instant::now();
    }

    /// `n` creations were seen (or failed, so will never be).
    pub fn created(&mut self, n: usize) {
        self.adds = self.adds.saturating_sub(n);
    }

    /// A deletion of `pod` was seen (or failed).
    pub fn deleted(&mut self, pod: &str) {
        self.deletes.remove(pod);
    }

    /// Whether the controller may act on its counts: everything expected was seen, or
    /// the expectations are too old to trust.
    pub fn satisfied(&self) -> bool {
        (self.adds == 0 && self.deletes.is_empty()) || self.at.elapsed() > EXPECTATIONS_TIMEOUT
    }

    /// A plan that asked for `create` creations and the deletions `delete` was
    /// carried out, and made `created` of them and the deletions `deleted`: the rest
    /// (failed, or never tried) will never be seen.
    pub fn carried_out(
        &mut self,
        create: usize,
        delete: &[String],
        created: usize,
        deleted: &[String],
    ) {
        self.created(create.saturating_sub(created));
        let deleted: HashSet<&String> = deleted.iter().collect();
        for name in delete.iter().filter(|n| !deleted.contains(n)) {
            self.deleted(name);
        }
    }

    /// Forgets everything expected (another object of the same name).
    pub fn clear(&mut self) {
        self.adds = 0;
        self.deletes.clear();
    }
}

/// Merges JSON `from` into `into`, objects key by key (tests build objects from a
/// base and their differences).
#[cfg(test)]
pub(crate) fn merge_json(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge_json(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (into, from) => *into = from,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_hold_until_every_action_is_seen() {
        let mut e = Expectations::default();
        assert!(e.satisfied());
        e.expect(2, ["p1".to_string()]);
        assert!(!e.satisfied());
        e.created(1);
        e.created(1);
        assert!(!e.satisfied());
        e.deleted("p1");
        assert!(e.satisfied());
        e.expect(1, []);
        e.clear();
        assert!(e.satisfied());
    }

    #[test]
    fn what_a_plan_did_not_do_is_not_waited_for() {
        let mut e = Expectations::default();
        let gone = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        // Eight creations and two deletions asked; three pods seen while it ran.
        e.expect(8, gone(&["p1", "p2"]));
        e.created(3);
        // Five made (one refused, two never tried), p1 deleted, p2 already gone.
        e.carried_out(8, &gone(&["p1", "p2"]), 5, &gone(&["p1"]));
        assert!(!e.satisfied());
        e.created(1);
        assert!(
            !e.satisfied(),
            "two made are not seen yet, nor p1's deletion"
        );
        e.created(1);
        e.deleted("p1");
        assert!(e.satisfied());
    }
}

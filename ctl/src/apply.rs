//! `apply`: create an object, or change it to what the file says, as `kubectl apply`
//! does — by a three-way comparison of the last applied configuration (kept in the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation, so kubectl and
//! rk8sctl can take turns), the live object and the file. Fields the file never set
//! (defaults, controllers' writes) are left alone. Or, with `--server-side`, as
//! `kubectl apply --server-side` does: the file sent whole as an apply patch, and the
//! server merges it with the fields the field manager owns.

use anyhow::Result;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Map, Value};

use crate::cluster::{Cluster, explain, is_not_found};

/// The annotation kubectl keeps the last applied configuration in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What `apply` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The object did not exist.
    Created,
    /// The object was changed.
    Configured,
    /// The object already was as the file says.
    Unchanged,
    /// The server applied the file (server-side apply does not say what changed).
    ServerSideApplied,
}

impl Outcome {
    /// `created`, `configured`, `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
            Outcome::ServerSideApplied => "serverside-applied",
        }
    }
}

/// Whether applying `desired` over `live` would change anything: every field the
/// desired side sets must hold the same value on the live side (lists element by
/// element, so defaults filled into list items do not count).
fn differs(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => d
            .iter()
            .any(|(k, dv)| differs(l.get(k).unwrap_or(&Value::Null), dv)),
        (Value::Array(l), Value::Array(d)) => {
            l.len() != d.len() || l.iter().zip(d).any(|(lv, dv)| differs(lv, dv))
        }
        (l, d) => l != d,
    }
}

/// The JSON merge patch that takes `live` to `desired`, deleting what `previous` (the
/// last applied configuration) set and `desired` no longer does; `None` if nothing
/// changes.
pub fn three_way(previous: Option<&Value>, live: &Value, desired: &Value) -> Option<Value> {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => {
            let mut patch = Map::new();
            for (k, dv) in d {
                let prev = previous.and_then(|p| p.get(k));
                if let Some(p) = three_way(prev, l.get(k).unwrap_or(&Value::Null), dv) {
                    patch.insert(k.clone(), p);
                }
            }
            if let Some(Value::Object(p)) = previous {
                for k in p.keys() {
                    if !d.contains_key(k) && l.contains_key(k) {
                        patch.insert(k.clone(), Value::Null);
                    }
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        (l, d) if differs(l, d) => Some(d.clone()),
        _ => None,
    }
}

/// Applies one object (as the user wrote it) to the cluster.
pub async fn apply(cluster: &Cluster, object: &rk8s_api::AnyObject) -> Result<Outcome> {
    let kind = object.kind();
    let mut desired = object.to_value();
    if let Value::Object(m) = &mut desired {
        m.remove("status");
    }
    // The last applied configuration is the file's object without the annotation,
    // serialized exactly as kubectl does it (an `annotations` map even when empty,
    // sorted keys, a final newline), so that either tool sees the other's as its own.
    let meta = desired
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| anyhow::anyhow!("{}: no metadata", object.reference()))?;
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(a) = annotations {
        a.remove(LAST_APPLIED);
    }
    let last = format!("{}\n", serde_json::to_string(&desired)?);
    if let Some(Value::Object(a)) = desired.pointer_mut("/metadata/annotations") {
        a.insert(LAST_APPLIED.into(), Value::String(last));
    }
    let api = cluster.api(&kind, object.namespace());
    let name = object.name();
    let live = match api.get(name).await {
        Ok(live) => serde_json::to_value(live)?,
        Err(e) if is_not_found(&e) => {
            let obj: kube::api::DynamicObject = serde_json::from_value(desired)?;
            api.create(&PostParams::default(), &obj)
                .await
                .map_err(explain)?;
            return Ok(Outcome::Created);
        }
        Err(e) => return Err(explain(e)),
    };
    let previous: Option<Value> = live
        .pointer(&format!(
            "/metadata/annotations/{}",
            LAST_APPLIED.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok());
    match three_way(previous.as_ref(), &live, &desired) {
        None => Ok(Outcome::Unchanged),
        Some(patch) => {
            api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(explain)?;
            Ok(Outcome::Configured)
        }
    }
}

/// How a server-side apply is sent.
#[derive(Clone, Debug)]
pub struct ServerSide {
    /// The field manager that owns the fields the file sets (`--field-manager`).
    pub field_manager: String,
    /// Take fields that other managers own instead of failing (`--force-conflicts`).
    pub force: bool,
}

/// Applies one object (as the user wrote it) server-side: a PATCH of the whole object
/// as `application/apply-patch+yaml`, so the server sets what the file sets and
/// removes what `field_manager` set before and the file no longer does.
pub async fn server_side(
    cluster: &Cluster,
    object: &rk8s_api::AnyObject,
    how: &ServerSide,
) -> Result<Outcome> {
    let mut params = PatchParams::apply(&how.field_manager);
    if how.force {
        params = params.force();
    }
    let api = cluster.api(&object.kind(), object.namespace());
    match api
        .patch(object.name(), &params, &Patch::Apply(object.to_value()))
        .await
    {
        Ok(_) => Ok(Outcome::ServerSideApplied),
        // kubectl's advice on a conflict, shortened.
        Err(kube::Error::Api(s)) if s.code == 409 && !how.force => Err(anyhow::anyhow!(
            "{:#}\nPlease review the fields above--they currently have other managers: \
             apply again with --force-conflicts to take them over, or leave them out of \
             the file.",
            explain(kube::Error::Api(s))
        )),
        Err(e) => Err(explain(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_on_the_live_side_do_not_count() {
        let live = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "a", "image": "x", "imagePullPolicy": "Always"}]}}}, "status": {"replicas": 2}});
        let desired = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        assert_eq!(three_way(Some(&desired), &live, &desired), None);
    }

    #[test]
    fn changes_and_removals_make_a_merge_patch() {
        let previous = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 2, "paused": true}});
        let live = json!({"metadata": {"labels": {"a": "1", "b": "2", "c": "by-someone-else"}}, "spec": {"replicas": 2, "paused": true, "x": 1}});
        let desired = json!({"metadata": {"labels": {"a": "9"}}, "spec": {"replicas": 3}});
        assert_eq!(
            three_way(Some(&previous), &live, &desired),
            Some(
                json!({"metadata": {"labels": {"a": "9", "b": null}}, "spec": {"replicas": 3, "paused": null}})
            )
        );
        // A changed list element replaces the list.
        let live = json!({"args": ["a", "b"]});
        assert_eq!(
            three_way(None, &live, &json!({"args": ["a"]})),
            Some(json!({"args": ["a"]}))
        );
    }
}

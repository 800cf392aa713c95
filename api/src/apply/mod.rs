//! Server-side apply, as kube-apiserver does it: field ownership in
//! `metadata.managedFields`, the merge of an applied configuration, and conflicts.
//!
//! This is the logic of structured-merge-diff (`fieldpath/`, `typed/`,
//! `merge/update.go`) and of kube-apiserver's field manager
//! (`k8s.io/apimachinery/pkg/util/managedfields`), reimplemented for rk8s'
//! schema-less JSON objects; see
//! <https://kubernetes.io/docs/reference/using-api/server-side-apply/>.
//!
//! - [`fieldset`]: field sets in the `FieldsV1` format;
//! - [`schema`]: which lists merge by key, are sets, or are atomic ([`ListTypes`]);
//! - [`apply()`] and [`update_managed_fields`]: what an apply and any other write do to
//!   an object and its managedFields; [`Conflicts`]: kube-apiserver's 409.
//!
//! Every walk is linear in the size of the objects and recurses no deeper than they
//! nest. The module does no I/O.
//!
//! ```
//! use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
//! use rk8s_api::apply::{self, ApplyRequest, BuiltIn};
//! use serde_json::json;
//!
//! let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
//! let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
//!     "metadata": {"name": "c"}, "data": {"a": "1"}});
//! let applied = json!({"apiVersion": "v1", "kind": "ConfigMap",
//!     "metadata": {"name": "c"}, "data": {"b": "2"}});
//! let out = apply::apply(&BuiltIn, &ApplyRequest {
//!     live: &live, applied: &applied, manager: "me", subresource: "",
//!     force: false, managed: &[], now: &now,
//! })?;
//! assert_eq!(out.object["data"], json!({"a": "1", "b": "2"}));
//! assert_eq!(out.managed_fields[0].manager.as_deref(), Some("me"));
//! # Ok::<(), rk8s_api::apply::ApplyError>(())
//! ```

pub mod conflict;
pub mod fieldset;
pub mod managed;
pub mod schema;
pub mod typed;
mod walk;

pub use conflict::{Cause, Conflict, Conflicts, Owner};
pub use fieldset::{Element, FieldSet, FieldSetError, Path};
pub use managed::{
    Applied, ApplyError, ApplyRequest, LAST_APPLIED_ANNOTATION, apply, prior_managed_fields,
    update_managed_fields,
};
pub use schema::{BuiltIn, ListType, ListTypes, MapKey, Schemaless, list_types_for};
pub use walk::MergeError;

/// The longest field manager name (kube-apiserver's `ValidateFieldManager`).
pub const MAX_MANAGER_LEN: usize = 128;

/// The field manager of a write that names none: the user agent up to its first `/`,
/// printable characters only, at most [`MAX_MANAGER_LEN`] bytes (kube-apiserver's
/// `prefixFromUserAgent`): `kubectl/v1.33.0 (linux/amd64)` gives `kubectl`.
pub fn manager_from_user_agent(user_agent: &str) -> String {
    let prefix = user_agent.split('/').next().unwrap_or("");
    let mut out = String::new();
    for c in prefix.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_MANAGER_LEN {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};
    use serde_json::{Value, json};

    fn at(second: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(second).unwrap())
    }

    fn deployment(spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    fn run(
        live: &Value,
        applied: &Value,
        manager: &str,
        force: bool,
        managed: &[ManagedFieldsEntry],
    ) -> Result<Applied, ApplyError> {
        apply(
            &BuiltIn,
            &ApplyRequest {
                live,
                applied,
                manager,
                subresource: "",
                force,
                managed,
                now: &at(100),
            },
        )
    }

    fn fields_of(out: &[ManagedFieldsEntry], manager: &str) -> Value {
        out.iter()
            .find(|e| e.manager.as_deref() == Some(manager))
            .and_then(|e| e.fields_v1.clone())
            .map(|f| f.0)
            .unwrap_or(Value::Null)
    }

    /// A Deployment `first` applied with `spec`.
    /// `applied` applied by `manager` to what `prev` left, without force.
    fn then(prev: &Applied, applied: &Value, manager: &str) -> Applied {
        run(&prev.object, applied, manager, false, &prev.managed_fields).unwrap()
    }

    fn applied_by(first: &str, spec: Value) -> Applied {
        run(&json!({}), &deployment(spec), first, false, &[]).unwrap()
    }

    #[test]
    fn a_first_apply_creates_the_object_and_one_apply_entry() {
        let out = applied_by("kubectl", json!({"replicas": 2}));
        assert_eq!(out.object["spec"]["replicas"], 2);
        assert_eq!(out.managed_fields.len(), 1);
        let e = &out.managed_fields[0];
        assert_eq!(e.operation.as_deref(), Some("Apply"));
        assert_eq!(e.api_version.as_deref(), Some("apps/v1"));
        assert_eq!(e.fields_type.as_deref(), Some("FieldsV1"));
        assert_eq!(e.time, Some(at(100)));
        assert_eq!(
            fields_of(&out.managed_fields, "kubectl"),
            json!({"f:spec": {"f:replicas": {}}})
        );
        assert_eq!(
            out.object["metadata"]["managedFields"][0]["manager"],
            "kubectl"
        );
    }

    #[test]
    fn two_managers_applying_the_same_value_share_the_field() {
        let first = applied_by("a", json!({"replicas": 2}));
        let out = then(&first, &deployment(json!({"replicas": 2})), "b");
        assert_eq!(out.managed_fields.len(), 2);
        assert_eq!(
            fields_of(&out.managed_fields, "a"),
            fields_of(&out.managed_fields, "b")
        );
    }

    #[test]
    fn another_value_conflicts_and_force_moves_ownership() {
        let first = applied_by("a", json!({"replicas": 2, "paused": false}));
        let e = run(
            &first.object,
            &deployment(json!({"replicas": 3})),
            "b",
            false,
            &first.managed_fields,
        )
        .unwrap_err();
        let ApplyError::Conflicts(c) = e else {
            panic!("expected conflicts, got {e:?}");
        };
        assert_eq!(
            c.to_string(),
            r#"Apply failed with 1 conflict: conflict with "a": .spec.replicas"#
        );
        let out = run(
            &first.object,
            &deployment(json!({"replicas": 3})),
            "b",
            true,
            &first.managed_fields,
        )
        .unwrap();
        assert_eq!(out.object["spec"]["replicas"], 3);
        assert_eq!(
            fields_of(&out.managed_fields, "a"),
            json!({"f:spec": {"f:paused": {}}})
        );
        assert_eq!(
            fields_of(&out.managed_fields, "b"),
            json!({"f:spec": {"f:replicas": {}}})
        );
    }

    #[test]
    fn a_field_the_manager_alone_stops_applying_is_removed() {
        let first = applied_by("a", json!({"replicas": 2, "paused": true}));
        let out = then(&first, &deployment(json!({"replicas": 2})), "a");
        assert_eq!(out.object["spec"], json!({"replicas": 2}));
    }

    #[test]
    fn a_dropped_probe_goes_whole_with_the_fields_the_server_defaulted_in_it() {
        let pod = |probe: Option<Value>| {
            let mut c = json!({"name": "web", "image": "nginx"});
            if let Some(p) = probe {
                c["livenessProbe"] = p;
            }
            deployment(json!({"template": {"spec": {"containers": [c]}}}))
        };
        let probe = json!({"httpGet": {"path": "/healthz", "port": 8080}});
        let first = run(&json!({}), &pod(Some(probe)), "a", false, &[]).unwrap();
        let mut live = first.object.clone();
        // The server defaulted fields nobody applied.
        let c = &mut live["spec"]["template"]["spec"]["containers"][0];
        c["livenessProbe"]["httpGet"]["scheme"] = json!("HTTP");
        c["livenessProbe"]["timeoutSeconds"] = json!(1);
        c["resources"] = json!({});
        let out = run(&live, &pod(None), "a", false, &first.managed_fields).unwrap();
        assert_eq!(
            out.object["spec"]["template"]["spec"]["containers"][0],
            json!({"name": "web", "image": "nginx", "resources": {}}),
            "the probe is gone whole; a field the manager never owned below stays"
        );

        // A probe field another manager owns keeps the probe, and its defaults.
        let shared = run(
            &live,
            &pod(Some(json!({"httpGet": {"port": 8080}}))),
            "b",
            false,
            &first.managed_fields,
        )
        .unwrap();
        let out = then(&shared, &pod(None), "a");
        assert_eq!(
            out.object["spec"]["template"]["spec"]["containers"][0]["livenessProbe"],
            json!({"httpGet": {"port": 8080, "scheme": "HTTP"}, "timeoutSeconds": 1})
        );
    }

    #[test]
    fn a_field_another_manager_also_owns_is_kept_when_dropped() {
        let first = applied_by("a", json!({"replicas": 2, "paused": true}));
        let shared = then(&first, &deployment(json!({"paused": true})), "b");
        let out = then(&shared, &deployment(json!({"replicas": 2})), "a");
        assert_eq!(out.object["spec"], json!({"replicas": 2, "paused": true}));
        assert_eq!(
            fields_of(&out.managed_fields, "b"),
            json!({"f:spec": {"f:paused": {}}})
        );
    }

    #[test]
    fn containers_merge_by_name_in_the_appliers_order() {
        let pod = |containers: Value| {
            deployment(json!({"template": {"spec": {"containers": containers}}}))
        };
        let first = run(
            &json!({}),
            &pod(json!([{"name": "a", "image": "1"}])),
            "a",
            false,
            &[],
        )
        .unwrap();
        let second = then(
            &first,
            &pod(json!([{"name": "b", "image": "2"}, {"name": "a", "image": "1"}])),
            "b",
        );
        let containers = &second.object["spec"]["template"]["spec"]["containers"];
        assert_eq!(
            containers,
            &json!([{"name": "b", "image": "2"}, {"name": "a", "image": "1"}])
        );
        assert_eq!(
            fields_of(&second.managed_fields, "b")["f:spec"]["f:template"]["f:spec"]["f:containers"],
            json!({"k:{\"name\":\"a\"}": {".": {}, "f:name": {}, "f:image": {}},
                   "k:{\"name\":\"b\"}": {".": {}, "f:name": {}, "f:image": {}}})
        );
        // `a` drops its container, which `b` also applies: it stays.
        let third = then(&second, &pod(json!([])), "a");
        assert_eq!(
            third.object["spec"]["template"]["spec"]["containers"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn a_container_only_its_applier_owned_is_removed_with_its_defaults() {
        let pod = |containers: Value| {
            deployment(json!({"template": {"spec": {"containers": containers}}}))
        };
        let first = run(
            &json!({}),
            &pod(json!([{"name": "a", "image": "1"}, {"name": "b", "image": "2"}])),
            "a",
            false,
            &[],
        )
        .unwrap();
        let mut live = first.object.clone();
        // The server defaulted a field of `b`.
        live["spec"]["template"]["spec"]["containers"][1]["imagePullPolicy"] = json!("Always");
        let out = run(
            &live,
            &pod(json!([{"name": "a", "image": "1"}])),
            "a",
            false,
            &first.managed_fields,
        )
        .unwrap();
        assert_eq!(
            out.object["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "1"}])
        );
    }

    #[test]
    fn an_apply_that_changes_nothing_leaves_object_and_entries_alone() {
        let first = applied_by("a", json!({"replicas": 2}));
        let out = then(&first, &deployment(json!({"replicas": 2})), "a");
        assert_eq!(out.object, first.object);
        assert_eq!(out.managed_fields, first.managed_fields);
    }

    #[test]
    fn an_update_takes_the_fields_it_changes_and_removed_fields_leave_every_entry() {
        let first = applied_by("a", json!({"replicas": 2, "paused": true}));
        let mut new = first.object.clone();
        new["spec"]["replicas"] = json!(5);
        new["spec"].as_object_mut().unwrap().remove("paused");
        let out = update_managed_fields(
            &BuiltIn,
            &first.object,
            &new,
            "kubectl-edit",
            "",
            &first.managed_fields,
            &at(200),
        );
        assert_eq!(out.len(), 1, "a owns nothing any more: {out:?}");
        assert_eq!(out[0].manager.as_deref(), Some("kubectl-edit"));
        assert_eq!(out[0].operation.as_deref(), Some("Update"));
        assert_eq!(out[0].time, Some(at(200)));
        assert_eq!(
            fields_of(&out, "kubectl-edit"),
            json!({"f:spec": {"f:replicas": {}}})
        );
    }

    #[test]
    fn an_update_that_changes_nothing_keeps_the_entries() {
        let first = applied_by("a", json!({"replicas": 2}));
        let out = update_managed_fields(
            &BuiltIn,
            &first.object,
            &first.object,
            "x",
            "",
            &first.managed_fields,
            &at(200),
        );
        assert_eq!(out, first.managed_fields);
    }

    #[test]
    fn a_status_write_is_owned_apart_and_only_for_status() {
        let old = deployment(json!({"replicas": 1}));
        let mut new = old.clone();
        new["status"] = json!({"replicas": 1});
        let out = update_managed_fields(&BuiltIn, &old, &new, "ctrl", "status", &[], &at(1));
        assert_eq!(out[0].subresource.as_deref(), Some("status"));
        assert_eq!(
            fields_of(&out, "ctrl"),
            json!({"f:status": {"f:replicas": {}}})
        );
        // A conflict names the subresource.
        let e = run(&new, &deployment(json!({})), "x", false, &out);
        assert!(
            e.is_ok(),
            "status is not applied to the object itself: {e:?}"
        );
    }

    #[test]
    fn a_conflict_with_an_updater_names_its_api_version() {
        let old = json!({});
        let new = deployment(json!({"replicas": 1}));
        let managed = update_managed_fields(
            &BuiltIn,
            &old,
            &new,
            "kubectl-client-side-apply",
            "",
            &[],
            &at(1),
        );
        let e = run(
            &new,
            &deployment(json!({"replicas": 3})),
            "other",
            false,
            &managed,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
        );
    }

    /// `kubectl apply` (client-side) then `kubectl apply --server-side` of a changed
    /// manifest: the fields the annotation lists with their live values are taken over.
    #[test]
    fn kubectl_server_side_apply_takes_over_from_client_side_apply() {
        let manifest = deployment(json!({"replicas": 1, "paused": false}));
        let mut live = manifest.clone();
        let annotation = format!("{manifest}\n");
        live["metadata"]["annotations"] = json!({LAST_APPLIED_ANNOTATION: annotation});
        live["spec"]["progressDeadlineSeconds"] = json!(600);
        let managed = update_managed_fields(
            &BuiltIn,
            &json!({}),
            &live,
            "kubectl-client-side-apply",
            "",
            &[],
            &at(1),
        );
        let changed = deployment(json!({"replicas": 3, "paused": false}));
        let out = run(&live, &changed, "kubectl", false, &managed).unwrap();
        assert_eq!(out.object["spec"]["replicas"], 3);
        assert_eq!(out.object["spec"]["progressDeadlineSeconds"], 600);
        let annotation = out.object["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
            .as_str()
            .unwrap();
        let recorded: Value = serde_json::from_str(annotation).unwrap();
        assert_eq!(recorded["spec"]["replicas"], 3);
        assert_eq!(
            fields_of(&out.managed_fields, "kubectl"),
            json!({"f:spec": {"f:replicas": {}, "f:paused": {}}})
        );
        // Another manager gets the conflict.
        let e = run(&live, &changed, "other", false, &managed).unwrap_err();
        assert!(matches!(e, ApplyError::Conflicts(_)));
        // A field whose live value differs from the annotation still conflicts.
        let mut drifted = live.clone();
        drifted["spec"]["replicas"] = json!(7);
        let managed = update_managed_fields(
            &BuiltIn,
            &live,
            &drifted,
            "kubectl-scale",
            "",
            &managed,
            &at(2),
        );
        let e = run(&drifted, &changed, "kubectl", false, &managed).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"Apply failed with 1 conflict: conflict with "kubectl-scale" using apps/v1: .spec.replicas"#
        );
    }

    #[test]
    fn a_configmap_key_dropped_from_the_applied_config_is_removed() {
        let cm = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data});
        let first = run(
            &json!({}),
            &cm(json!({"a": "1", "b": "2"})),
            "kubectl",
            false,
            &[],
        )
        .unwrap();
        let out = then(&first, &cm(json!({"a": "1"})), "kubectl");
        assert_eq!(out.object["data"], json!({"a": "1"}));
        assert_eq!(
            fields_of(&out.managed_fields, "kubectl"),
            json!({"f:data": {"f:a": {}}})
        );
    }

    #[test]
    fn managed_fields_sent_empty_keep_the_live_ones_and_one_empty_entry_clears_them() {
        let live =
            json!({"metadata": {"managedFields": [{"manager": "a", "operation": "Update"}]}});
        assert_eq!(
            prior_managed_fields(&live, &json!({"metadata": {}})).len(),
            1
        );
        assert_eq!(
            prior_managed_fields(&live, &json!({"metadata": {"managedFields": []}})).len(),
            1
        );
        assert!(
            prior_managed_fields(&live, &json!({"metadata": {"managedFields": [{}]}})).is_empty()
        );
    }

    #[test]
    fn the_manager_of_a_write_without_one_comes_from_the_user_agent() {
        assert_eq!(
            manager_from_user_agent("kubectl/v1.33.0 (linux/amd64) kubernetes/abc"),
            "kubectl"
        );
        assert_eq!(
            manager_from_user_agent(&"x".repeat(300)).len(),
            MAX_MANAGER_LEN
        );
        assert_eq!(manager_from_user_agent("a\u{7}b/1"), "ab");
    }
}

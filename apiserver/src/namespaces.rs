//! A namespace's life after its DELETE, as kube-apiserver's namespace registry and
//! its NamespaceLifecycle admission plugin have it:
//! - the first DELETE only marks the namespace: a `deletionTimestamp` and the phase
//!   `Terminating` (the namespace controller then deletes its content, gracefully,
//!   finalizers and all, and removes the finalizer `kubernetes`);
//! - a DELETE of a terminating namespace removes it once its `spec.finalizers` and
//!   `metadata.finalizers` are empty, and answers with it as it is before (a
//!   `finalize` that empties them removes it too);
//! - nothing new may be created in a terminating namespace (403, cause
//!   `NamespaceTerminating`: [`crate::admission::namespace_lifecycle`]).
//!
//! Whatever is still stored under the namespace goes with its record, in the same
//! transaction (and only if the record is still the one read): only a `finalize`
//! forced by hand leaves content behind, and Kubernetes would keep it in etcd, out of
//! reach of every API. A DELETE is pinned to the UID it first read, as kube's: a
//! namespace removed and made anew meanwhile is a 409, never a second deletion.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use rk8s_api::AnyObject;
use rk8s_api::object::kinds;
use rk8s_raftstore::prefix_end;
use rk8s_raftstore::proto::{DeleteRangeRequest, RequestOp, request_op};

use crate::handlers::{Handlers, SYSTEM_NAMESPACES, deletion, is_dry};
use crate::registry::Change;
use crate::status::{ApiError, ApiResult};

/// What the DELETE of a namespace changes (kube's namespace `REST.Delete`).
pub fn namespace_deletion(mut obj: AnyObject, options: &DeleteOptions) -> ApiResult<Change> {
    let AnyObject::Namespace(ns) = &mut obj else {
        return deletion(obj, options);
    };
    if ns.metadata.deletion_timestamp.is_none() {
        ns.metadata.deletion_timestamp = Some(crate::strategy::now());
        ns.status.get_or_insert_with(Default::default).phase = Some("Terminating".into());
        return Ok(Change::Replace(obj));
    }
    let finalized = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_none_or(Vec::is_empty);
    // Still emptied by the namespace controller: answered with the namespace as it
    // is (kube since 1.17; it was a 409 before).
    if !finalized {
        return Ok(Change::Unchanged);
    }
    deletion(obj, options)
}

impl Handlers {
    /// Refuses the DELETE of a namespace every cluster keeps.
    pub(crate) fn check_deletable(name: &str) -> ApiResult<()> {
        if SYSTEM_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        Ok(())
    }

    /// What a DELETE decides for `current`, a namespace's sweep made part of its
    /// removal (one transaction).
    pub(crate) fn delete_change(
        &self,
        current: AnyObject,
        options: &DeleteOptions,
    ) -> ApiResult<Change> {
        let name = current.name().to_string();
        Ok(match namespace_deletion(current, options)? {
            Change::Replace(o) | Change::Delete(o) if is_dry(options) => Change::DryRun(o),
            Change::Delete(o) if matches!(o, AnyObject::Namespace(_)) => {
                Change::DeleteWith(o, self.sweep_ops(&name))
            }
            change => change,
        })
    }

    /// The operations that delete whatever is still stored in the namespace `name`:
    /// every namespaced kind's keys under it, custom kinds' too.
    pub(crate) fn sweep_ops(&self, name: &str) -> Vec<RequestOp> {
        let custom = self
            .custom
            .all()
            .into_iter()
            .filter_map(|s| s.storage_version().map(|v| v.kind));
        kinds()
            .into_iter()
            .chain(custom)
            .filter(|k| k.is_namespaced())
            .map(|k| {
                let prefix = k.storage_prefix(Some(name));
                RequestOp {
                    request: Some(request_op::Request::DeleteRange(DeleteRangeRequest {
                        range_end: prefix_end(prefix.as_bytes()),
                        key: prefix.into_bytes(),
                    })),
                }
            })
            .collect()
    }
}

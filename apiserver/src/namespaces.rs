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
//! Right before the namespace record goes, whatever is still stored under it goes, in
//! one transaction: only a `finalize` forced by hand leaves content behind, and
//! Kubernetes would keep it in etcd, out of reach of every API. (A failure between
//! the two leaves an empty, finalized namespace that the next DELETE removes.)

use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use rk8s_api::AnyObject;
use rk8s_api::object::kinds;
use rk8s_raftstore::prefix_end;
use rk8s_raftstore::proto::{DeleteRangeRequest, RequestOp, TxnRequest, request_op};

use crate::auth::check_access;
use crate::call::Call;
use crate::handlers::{Handlers, Reply, SYSTEM_NAMESPACES, check_preconditions, deletion, is_dry};
use crate::registry::{Change, Updated};
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
    /// DELETE of a namespace: marked `Terminating` first, removed once finalized.
    pub(crate) async fn delete_namespace(
        &self,
        c: &Call<'_>,
        name: &str,
        options: &DeleteOptions,
    ) -> ApiResult<Reply> {
        if SYSTEM_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        let kind = &c.req.kind;
        let outcome = self
            .registry
            .update_waiting(kind, None, name, |current| async move {
                check_access(&c.access, c.identity, c.req, name, None)?;
                check_preconditions(kind, name, options, &current)?;
                let attempt = crate::webhooks::Attempt {
                    operation: crate::webhooks::matching::Operation::Delete,
                    kind: *kind,
                    subresource: None,
                    namespace: None,
                    name,
                    identity: c.identity,
                    dry_run: is_dry(options),
                    old: Some(&current),
                };
                self.validating_webhooks(&attempt, None).await?;
                Ok(match namespace_deletion(current, options)? {
                    Change::Replace(o) | Change::Delete(o) if is_dry(options) => Change::DryRun(o),
                    // Its content first: a failure between the two leaves an empty
                    // finalized namespace, which the next DELETE removes.
                    Change::Delete(o) => {
                        if matches!(o, AnyObject::Namespace(_)) {
                            self.sweep_namespace(kind, name).await?;
                        }
                        Change::Delete(o)
                    }
                    change => change,
                })
            })
            .await?;
        let obj = match outcome {
            Updated::Replaced(o) | Updated::Unchanged(o) => o,
            Updated::Deleted(mut o, revision) => {
                o.metadata_mut().resource_version = Some(revision.to_string());
                o
            }
        };
        Ok(Reply::object(http::StatusCode::OK, obj, Vec::new()))
    }

    /// Deletes whatever is still stored in the removed namespace `name`, every kind's
    /// keys under it in one transaction.
    pub(crate) async fn sweep_namespace(
        &self,
        kind: &rk8s_api::ObjectKind,
        name: &str,
    ) -> ApiResult<()> {
        let custom = self
            .custom
            .all()
            .into_iter()
            .filter_map(|s| s.storage_version().map(|v| v.kind));
        let success: Vec<RequestOp> = kinds()
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
            .collect();
        let txn = TxnRequest {
            compare: Vec::new(),
            success,
            failure: Vec::new(),
        };
        self.registry
            .store()
            .txn(txn)
            .await
            .map_err(|e| crate::status::store_error(kind, name, e))?;
        Ok(())
    }
}

//! kube-apiserver's ResourceQuota admission
//! (`staging/src/k8s.io/apiserver/pkg/admission/plugin/resourcequota`): a write that
//! falls under its namespace's quotas is refused in kube's words when it does not fit
//! (`exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2`), and
//! otherwise charged to each quota's `status.used` BEFORE the object is stored, each
//! charge a compare-and-swap write re-checked against the quota as stored: concurrent
//! creates cannot overshoot. A charge whose object then fails to store is given back
//! by the quota controller's next count, as in kube.
//!
//! The decision is [`rk8s_api::quota::check`]; quotas are found through the lister
//! (a quota created a moment ago may not limit yet — it has no `status.hard` until the
//! controller's first count anyway).

use k8s_openapi::api::core::v1::ResourceQuota;
use rk8s_api::quota::{self, Refusal};
use rk8s_api::{AnyObject, ObjectKind};

use crate::lister::Lister;
use crate::registry::{Change, Registry};
use crate::status::{ApiError, ApiResult};

/// kube's `admission.NewForbidden`: `<resource> "<name>" is forbidden: <why>`.
fn forbidden(obj: &AnyObject, refusal: &Refusal) -> ApiError {
    let resource = obj.kind().qualified_plural();
    ApiError::forbidden(format!(
        "{resource} \"{}\" is forbidden: {refusal}",
        obj.name()
    ))
}

/// Admits `obj` (created, or replacing `old`) against the ResourceQuotas of its
/// namespace in `quotas`, and — unless `dry_run` — charges what it costs to each
/// matching quota in the store.
pub async fn admit(
    registry: &Registry,
    quotas: &Lister,
    obj: &AnyObject,
    old: Option<&AnyObject>,
    dry_run: bool,
) -> ApiResult<()> {
    let Some(namespace) = obj.namespace() else {
        return Ok(());
    };
    if !quota::handles(obj, old) {
        return Ok(());
    }
    let mut found: Vec<ResourceQuota> = quotas
        .list(Some(namespace))
        .iter()
        .filter_map(|o| match o.as_ref() {
            AnyObject::ResourceQuota(q) => Some(q.as_ref().clone()),
            _ => None,
        })
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    found.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let now = jiff::Timestamp::now();
    let refs: Vec<&ResourceQuota> = found.iter().collect();
    let charges = quota::check(&refs, obj, old, now).map_err(|r| forbidden(obj, &r))?;
    if dry_run {
        return Ok(());
    }
    let kind = ObjectKind::of::<ResourceQuota>();
    for charge in charges {
        let written = registry
            .update(&kind, Some(namespace), &charge.quota, |current| {
                let AnyObject::ResourceQuota(stored) = &current else {
                    return Err(ApiError::internal(format!(
                        "the key of ResourceQuota {namespace}/{} holds another kind",
                        charge.quota
                    )));
                };
                // The stored quota, not the lister's copy: another write may have
                // been charged since.
                let again = quota::check(&[stored.as_ref()], obj, old, now)
                    .map_err(|r| forbidden(obj, &r))?;
                let Some(fresh) = again.into_iter().next() else {
                    return Ok(Change::Unchanged);
                };
                let mut new = stored.as_ref().clone();
                new.status.get_or_insert_with(Default::default).used =
                    Some(quota::to_wire(&fresh.used));
                Ok(Change::Replace(AnyObject::from(new)))
            })
            .await;
        match written {
            Ok(_) => {}
            // Deleted meanwhile: it limits nothing any more.
            Err(e) if e.reason == "NotFound" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

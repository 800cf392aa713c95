//! Keeps [`CustomKinds`] in step with the CustomResourceDefinitions in the store: a
//! list, then a watch from the listed revision through the CRDs' watch cache, and a
//! fresh list whenever the watch ends (a member that fell behind, a compaction).

use std::sync::Arc;
use std::time::Duration;

use rk8s_api::AnyObject;
use rk8s_api::object::kind_named;

use super::CustomKinds;
use crate::caches::Caches;
use crate::registry::{self, Registry};
use crate::status::{ApiError, ApiResult};
use crate::watch::Message;

/// Follows the store's CRDs into `kinds` (and starts a watch cache for each custom
/// resource in `caches`) until the process ends.
pub async fn run(registry: Registry, caches: Arc<Caches>, kinds: Arc<CustomKinds>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match follow(&registry, &caches, &kinds).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => {
                tracing::debug!("custom resource definitions relisted: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

fn serve(caches: &Caches, kinds: &CustomKinds, obj: &AnyObject) {
    if let AnyObject::CustomResourceDefinition(crd) = obj
        && let Some(served) = kinds.upsert(crd.as_ref().clone())
        && let Some(storage) = served.storage_version()
    {
        caches.ensure(storage.kind);
    }
}

async fn follow(registry: &Registry, caches: &Caches, kinds: &CustomKinds) -> ApiResult<()> {
    let kind = kind_named("CustomResourceDefinition").ok_or_else(ApiError::no_route)?;
    let prefix = kind.storage_prefix(None);
    let page = registry.page(&kind, &prefix, &[], 0, 0, false).await?;
    let crds: Vec<AnyObject> = page
        .kvs
        .iter()
        .map(|kv| registry::decode(&kind, kv))
        .collect::<ApiResult<_>>()?;
    kinds.reset(Vec::new());
    for crd in &crds {
        serve(caches, kinds, crd);
    }
    let cache = caches.ensure(kind);
    let mut sub = cache.subscribe(&prefix, page.revision, None).await?;
    loop {
        let messages = sub
            .next(&kind)
            .await
            .map_err(|e| e.unwrap_or_else(|| ApiError::gone("the watch of CRDs ended")))?;
        for m in messages {
            let Message::Change(change) = m else { continue };
            match (change.object(), change.prev()) {
                (Some(obj), _) => serve(caches, kinds, obj),
                (None, Some(prev)) => kinds.remove(prev.name()),
                (None, None) => {}
            }
        }
    }
}

/// Serves the CRD that `path` (`/apis/<group>/<version>/[namespaces/<ns>/]<plural>...`)
/// would need, if the store has it and this member does not serve it yet (its watch
/// has not delivered it); whether it now does.
pub async fn refresh(
    registry: &Registry,
    caches: &Caches,
    kinds: &CustomKinds,
    path: &str,
) -> bool {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, plural) = match parts.as_slice() {
        ["apis", group, _, "namespaces", _, plural, ..] => (*group, *plural),
        ["apis", group, _, plural, ..] => (*group, *plural),
        _ => return false,
    };
    // Built-in groups have no CRDs; a name too long for a CRD names none.
    if !group.contains('.')
        || kinds.get(group, plural).is_some()
        || group.len() + plural.len() > 253
    {
        return false;
    }
    let Some(kind) = kind_named("CustomResourceDefinition") else {
        return false;
    };
    match registry
        .find(&kind, None, &format!("{plural}.{group}"))
        .await
    {
        Ok(Some(crd)) => {
            serve(caches, kinds, &crd);
            kinds.get(group, plural).is_some()
        }
        _ => false,
    }
}

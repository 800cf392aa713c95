//! Objects in the store, as Kubernetes keeps them in etcd: one key per object
//! (`/registry/<plural>/<ns>/<name>`), its JSON as the value, and its
//! `resourceVersion` the key's `mod_revision` (not stored, set on every read).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use k8s_openapi::api::core::v1::Service;
use rk8s_api::object::kind_named;
use rk8s_api::{AnyObject, ObjectKind};
use rk8s_raftstore::proto::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, KeyValue, PutRequest, RangeRequest,
    RequestOp, TxnRequest, request_op,
};
use rk8s_raftstore::server::Store;
use rk8s_raftstore::{Error as StoreError, prefix_end};

use crate::allocator::{self, Held, ServiceRanges, Taken};
use crate::status::{ApiError, ApiResult};

/// How many times a read-modify-write is retried when another writer wins the race.
const UPDATE_ATTEMPTS: usize = 8;

/// Decodes a stored value into an object of `kind` with its `resourceVersion` set.
pub fn decode(kind: &ObjectKind, kv: &KeyValue) -> ApiResult<AnyObject> {
    let mut obj = AnyObject::from_slice(kind, &kv.value)
        .ok_or_else(|| ApiError::internal(format!("kind {} is not served", kind.kind)))?
        .map_err(|e| {
            ApiError::internal(format!(
                "stored object {} does not decode at {}: {}",
                String::from_utf8_lossy(&kv.key),
                e.path(),
                e.inner()
            ))
        })?;
    obj.metadata_mut().resource_version = Some(kv.mod_revision.to_string());
    Ok(obj)
}

/// The bytes stored for an object: its JSON without `resourceVersion`.
pub fn encode(obj: &AnyObject) -> Vec<u8> {
    if obj.metadata().resource_version.is_none() {
        return obj.to_json();
    }
    let mut obj = obj.clone();
    obj.metadata_mut().resource_version = None;
    obj.to_json()
}

/// A page of a list.
#[derive(Debug)]
pub struct Page {
    /// The keys read, in key order.
    pub kvs: Vec<KeyValue>,
    /// The revision the page was read at.
    pub revision: i64,
    /// Whether keys after the last one remain.
    pub more: bool,
    /// Keys left after this page (for `remainingItemCount`), if counted.
    pub remaining: Option<i64>,
}

/// The objects of the API in the store.
#[derive(Clone)]
pub struct Registry {
    store: Store,
    service_ranges: Arc<OnceLock<ServiceRanges>>,
}

impl Registry {
    /// Objects kept in `store`.
    pub fn new(store: Store) -> Self {
        Registry {
            store,
            service_ranges: Arc::default(),
        }
    }

    /// Sets where Services' ClusterIPs and node ports come from (once; default:
    /// [`ServiceRanges::default`]).
    pub fn set_service_ranges(&self, ranges: ServiceRanges) {
        let _ = self.service_ranges.set(ranges);
    }

    /// Where Services' ClusterIPs and node ports come from.
    pub fn service_ranges(&self) -> ServiceRanges {
        self.service_ranges.get().copied().unwrap_or_default()
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Reads one object, linearizably; `None` if it does not exist.
    pub async fn find(
        &self,
        kind: &ObjectKind,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<Option<AnyObject>> {
        self.find_at(kind, namespace, name, true).await
    }

    /// Whether an object exists as far as this member has applied (no quorum round:
    /// for admission checks, which Kubernetes also makes from a cache).
    pub async fn exists_locally(
        &self,
        kind: &ObjectKind,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<bool> {
        Ok(self.find_at(kind, namespace, name, false).await?.is_some())
    }

    /// Reads one object as far as this member has applied (no quorum round: for
    /// admission and authentication, which Kubernetes also serve from a cache).
    pub async fn find_locally(
        &self,
        kind: &ObjectKind,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<Option<AnyObject>> {
        self.find_at(kind, namespace, name, false).await
    }

    async fn find_at(
        &self,
        kind: &ObjectKind,
        namespace: Option<&str>,
        name: &str,
        linearizable: bool,
    ) -> ApiResult<Option<AnyObject>> {
        let key = kind.storage_key(namespace, name);
        let range = RangeRequest {
            key: key.into_bytes(),
            ..RangeRequest::default()
        };
        let resp = self
            .store
            .range(range, linearizable)
            .await
            .map_err(|e| crate::status::store_error(kind, name, e))?;
        resp.kvs.first().map(|kv| decode(kind, kv)).transpose()
    }

    /// Reads one object; 404 if it does not exist.
    pub async fn get(
        &self,
        kind: &ObjectKind,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<AnyObject> {
        self.find(kind, namespace, name)
            .await?
            .ok_or_else(|| ApiError::not_found(kind, name))
    }

    /// Reads up to `limit` keys (0: all) under `prefix`, from `start` (a key under the
    /// prefix, or empty for its beginning), at `revision` (0: now, linearizably).
    /// `counted`: the keys after the page are counted too (a walk of the rest of the
    /// range on the store's thread, as etcd's range does); otherwise the read stops
    /// at the first key past the page.
    pub async fn page(
        &self,
        kind: &ObjectKind,
        prefix: &str,
        start: &[u8],
        limit: i64,
        revision: i64,
        counted: bool,
    ) -> ApiResult<Page> {
        let key = if start.is_empty() {
            prefix.as_bytes().to_vec()
        } else {
            start.to_vec()
        };
        let range = RangeRequest {
            key,
            range_end: prefix_end(prefix.as_bytes()),
            limit,
            revision,
            uncounted: !counted,
            ..RangeRequest::default()
        };
        let resp = self
            .store
            .range(range, revision == 0)
            .await
            .map_err(|e| crate::status::store_error(kind, "", e))?;
        let remaining =
            counted.then(|| resp.count - i64::try_from(resp.kvs.len()).unwrap_or(i64::MAX));
        Ok(Page {
            kvs: resp.kvs,
            revision: resp.revision,
            more: resp.more,
            remaining,
        })
    }

    /// Stores a new object; 409 `AlreadyExists` if the name is taken.
    pub async fn create(&self, obj: &AnyObject) -> ApiResult<AnyObject> {
        if let AnyObject::Service(svc) = obj {
            return self.write_service(svc, None).await;
        }
        let kind = obj.kind();
        let key = obj.storage_key();
        match self
            .store
            .put(key.as_bytes(), &encode(obj), 0, Some(0))
            .await
        {
            Ok(resp) => {
                let mut created = obj.clone();
                created.metadata_mut().resource_version = Some(resp.revision.to_string());
                Ok(created)
            }
            Err(StoreError::Conflict { .. }) => {
                let current = self.find(&kind, obj.namespace(), obj.name()).await?;
                Err(exists(&kind, obj.name(), current.as_ref()))
            }
            Err(e) => Err(crate::status::store_error(&kind, obj.name(), e)),
        }
    }

    /// Creates an object the server itself keeps (filled in and defaulted as a create
    /// through the API is), unless one of its name exists.
    pub async fn create_if_missing(&self, mut obj: AnyObject) -> ApiResult<()> {
        crate::strategy::prepare_create(&mut obj);
        rk8s_api::defaults::apply_defaults(&mut obj);
        match self.create(&obj).await {
            Ok(_) => Ok(()),
            Err(e) if e.reason == "AlreadyExists" => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Replaces an object at the `resourceVersion` it carries; 409 `Conflict` if the
    /// stored one has moved on, 404 if it is gone.
    pub async fn replace(&self, obj: &AnyObject) -> ApiResult<AnyObject> {
        let kind = obj.kind();
        let expected = resource_version(obj)?;
        if let AnyObject::Service(svc) = obj {
            let old = self.get(&kind, obj.namespace(), obj.name()).await?;
            return self.replace_service(svc, &old, expected).await;
        }
        let key = obj.storage_key();
        match self
            .store
            .put(key.as_bytes(), &encode(obj), 0, Some(expected))
            .await
        {
            Ok(resp) => {
                let mut stored = obj.clone();
                stored.metadata_mut().resource_version = Some(resp.revision.to_string());
                Ok(stored)
            }
            Err(StoreError::Conflict { actual: 0, .. }) => {
                Err(ApiError::not_found(&kind, obj.name()))
            }
            Err(e) => Err(crate::status::store_error(&kind, obj.name(), e)),
        }
    }

    /// Deletes an object at the `resourceVersion` it carries; returns the revision of
    /// the deletion.
    pub async fn remove(&self, obj: &AnyObject) -> ApiResult<i64> {
        let kind = obj.kind();
        let expected = resource_version(obj)?;
        if let AnyObject::Service(svc) = obj {
            let taken = self.allocation_keys(&kind).await?;
            return self
                .remove_with(obj, allocator::release_all(svc, &taken))
                .await;
        }
        match self
            .store
            .delete(obj.storage_key().as_bytes(), Some(expected))
            .await
        {
            Ok(resp) => Ok(resp.revision),
            Err(StoreError::Conflict { actual: 0, .. }) => {
                Err(ApiError::not_found(&kind, obj.name()))
            }
            Err(e) => Err(crate::status::store_error(&kind, obj.name(), e)),
        }
    }

    /// Deletes an object at the `resourceVersion` it carries and runs `ops` in the same
    /// transaction; returns the revision of the deletion.
    pub async fn remove_with(&self, obj: &AnyObject, ops: Vec<RequestOp>) -> ApiResult<i64> {
        let expected = resource_version(obj)?;
        let mut success = vec![RequestOp {
            request: Some(request_op::Request::DeleteRange(DeleteRangeRequest {
                key: obj.storage_key().into_bytes(),
                range_end: Vec::new(),
            })),
        }];
        success.extend(ops);
        match self.object_txn(obj, expected, Vec::new(), success).await? {
            Some(revision) => Ok(revision),
            // Only the object's own condition was asked: it held.
            None => Err(ApiError::modified(&obj.kind(), obj.name())),
        }
    }

    /// Read-modify-write with retries: `change` gets the current object and returns
    /// what to write. When `change` pins a resourceVersion (the caller's
    /// precondition) a conflict is returned rather than retried.
    pub async fn update<F>(
        &self,
        kind: &ObjectKind,
        namespace: Option<&str>,
        name: &str,
        mut change: F,
    ) -> ApiResult<Updated>
    where
        F: FnMut(AnyObject) -> ApiResult<Change>,
    {
        self.update_waiting(kind, namespace, name, |current| {
            std::future::ready(change(current))
        })
        .await
    }

    /// [`Registry::update`] with a `change` that may wait (admission webhooks are
    /// called in it).
    pub async fn update_waiting<F, Fut>(
        &self,
        kind: &ObjectKind,
        namespace: Option<&str>,
        name: &str,
        mut change: F,
    ) -> ApiResult<Updated>
    where
        F: FnMut(AnyObject) -> Fut,
        Fut: Future<Output = ApiResult<Change>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = self.get(kind, namespace, name).await?;
            let result = match change(current.clone()).await? {
                Change::Unchanged => return Ok(Updated::Unchanged(current)),
                Change::DryRun(new) => return Ok(Updated::Replaced(new)),
                Change::Replace(new) => match (&new, &current) {
                    // The current Service is at hand: its allocations need no new read.
                    (AnyObject::Service(svc), old) => self
                        .replace_service(svc, old, resource_version(&new)?)
                        .await
                        .map(Updated::Replaced),
                    _ => self.replace(&new).await.map(Updated::Replaced),
                },
                Change::Delete(old) => self.remove(&old).await.map(|r| Updated::Deleted(old, r)),
                Change::DeleteWith(old, ops) => self
                    .remove_with(&old, ops)
                    .await
                    .map(|r| Updated::Deleted(old, r)),
            };
            match result {
                Err(e) if e.reason == "Conflict" && attempt < UPDATE_ATTEMPTS => continue,
                other => return other,
            }
        }
    }
}

impl Registry {
    /// Replaces the Service `old` (at `expected`) with `svc`.
    async fn replace_service(
        &self,
        svc: &Service,
        old: &AnyObject,
        expected: i64,
    ) -> ApiResult<AnyObject> {
        let AnyObject::Service(old) = old else {
            return Err(ApiError::internal("a Service key holds something else"));
        };
        self.write_service(svc, Some((old, expected))).await
    }

    /// Creates (`old`: `None`) or replaces a Service with its ClusterIP and node ports,
    /// in one transaction; retried when another write took an address meanwhile.
    async fn write_service(
        &self,
        svc: &Service,
        old: Option<(&Service, i64)>,
    ) -> ApiResult<AnyObject> {
        let ranges = self.service_ranges();
        let kind = kind_named("Service").ok_or_else(ApiError::no_route)?;
        for _ in 0..UPDATE_ATTEMPTS {
            let taken = self.allocation_keys(&kind).await?;
            let mut new = svc.clone();
            // Every holder counts as alive at first (no Service is read); only when
            // that leaves nothing free are the holders checked for leftovers.
            let plan =
                match allocator::plan(&ranges, &mut new, old.map(|(o, _)| o), &taken, &|_, _| true)
                {
                    Ok(plan) => plan,
                    Err(_) => {
                        let services = self.holders(&kind).await?;
                        let live = |owner: &str, item: &Held| {
                            services.get(owner).is_some_and(|held| held.contains(item))
                        };
                        new = svc.clone();
                        allocator::plan(&ranges, &mut new, old.map(|(o, _)| o), &taken, &live)?
                    }
                };
            let obj = AnyObject::Service(Box::new(new));
            let mut success = vec![RequestOp {
                request: Some(request_op::Request::Put(PutRequest {
                    key: obj.storage_key().into_bytes(),
                    value: encode(&obj).into(),
                    ..Default::default()
                })),
            }];
            success.extend(plan.ops);
            let written = self
                .object_txn(&obj, old.map_or(0, |(_, rv)| rv), plan.compares, success)
                .await?;
            if let Some(revision) = written {
                let mut stored = obj;
                stored.metadata_mut().resource_version = Some(revision.to_string());
                return Ok(stored);
            }
            // Another write took an address or port meanwhile: plan again.
        }
        Err(ApiError::unavailable(
            "too many concurrent Service writes; try again",
        ))
    }

    /// Runs `success` if `obj`'s key is at `expected` (0: absent) and `compares` hold:
    /// the revision written; `None` when only `compares` failed. The object's own
    /// condition failing is the error Kubernetes gives for it.
    async fn object_txn(
        &self,
        obj: &AnyObject,
        expected: i64,
        mut compares: Vec<Compare>,
        success: Vec<RequestOp>,
    ) -> ApiResult<Option<i64>> {
        let kind = obj.kind();
        let key = obj.storage_key();
        compares.insert(
            0,
            Compare {
                key: key.clone().into_bytes(),
                target: CompareTarget::Mod as i32,
                result: CompareResult::Equal as i32,
                number: expected,
                value: Vec::new(),
            },
        );
        let resp = self
            .store
            .txn(TxnRequest {
                compare: compares,
                success,
                failure: Vec::new(),
            })
            .await
            .map_err(|e| crate::status::store_error(&kind, obj.name(), e))?;
        if resp.succeeded {
            return Ok(Some(resp.revision));
        }
        let current = self.find(&kind, obj.namespace(), obj.name()).await?;
        let now = match &current {
            Some(o) => resource_version(o)?,
            None => 0,
        };
        match (expected, now) {
            (e, n) if e == n => Ok(None),
            (0, _) => Err(exists(&kind, obj.name(), current.as_ref())),
            (_, 0) => Err(ApiError::not_found(&kind, obj.name())),
            _ => Err(ApiError::modified(&kind, obj.name())),
        }
    }

    /// The allocation keys.
    async fn allocation_keys(&self, kind: &ObjectKind) -> ApiResult<BTreeMap<String, Taken>> {
        let mut taken = BTreeMap::new();
        for range in allocator::ranges_to_read() {
            let resp = self
                .store
                .range(range, true)
                .await
                .map_err(|e| crate::status::store_error(kind, "", e))?;
            for kv in resp.kvs {
                taken.insert(
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    Taken {
                        owner: String::from_utf8_lossy(&kv.value).into_owned(),
                        revision: kv.mod_revision,
                    },
                );
            }
        }
        Ok(taken)
    }

    /// What every Service holds, by `namespace/name`.
    async fn holders(&self, kind: &ObjectKind) -> ApiResult<BTreeMap<String, BTreeSet<Held>>> {
        let prefix = kind.storage_prefix(None);
        let resp = self
            .store
            .range(
                RangeRequest {
                    key: prefix.clone().into_bytes(),
                    range_end: prefix_end(prefix.as_bytes()),
                    ..Default::default()
                },
                true,
            )
            .await
            .map_err(|e| crate::status::store_error(kind, "", e))?;
        let mut services = BTreeMap::new();
        for kv in &resp.kvs {
            if let Ok(AnyObject::Service(s)) = decode(kind, kv) {
                services.insert(allocator::owner(&s), allocator::held(&s));
            }
        }
        Ok(services)
    }
}

/// kube's 409 `AlreadyExists` for a create that found `current` under its name, which
/// says `object is being deleted: ` when that one is (kube's generic store does: a
/// namespace still terminating, a pod in its grace period).
fn exists(kind: &ObjectKind, name: &str, current: Option<&AnyObject>) -> ApiError {
    let mut e = ApiError::already_exists(kind, name);
    if current.is_some_and(|o| o.metadata().deletion_timestamp.is_some()) {
        e.message = format!("object is being deleted: {}", e.message);
    }
    e
}

/// What a read-modify-write does with the current object.
#[derive(Debug)]
pub enum Change {
    /// Nothing: the object already is as asked.
    Unchanged,
    /// Store this object (its resourceVersion is the one it replaces).
    Replace(AnyObject),
    /// Delete this object (at its resourceVersion): its last finalizer is gone.
    Delete(AnyObject),
    /// [`Change::Delete`], with these operations in the same transaction (a removed
    /// namespace's content swept), which run only if the object is still at its
    /// resourceVersion.
    DeleteWith(AnyObject, Vec<RequestOp>),
    /// Write nothing, answer with this object (`dryRun=All`).
    DryRun(AnyObject),
}

/// What a read-modify-write did.
#[derive(Debug)]
pub enum Updated {
    /// Nothing changed; the current object.
    Unchanged(AnyObject),
    /// The stored object.
    Replaced(AnyObject),
    /// The object was deleted, at this revision.
    Deleted(AnyObject, i64),
}

/// An object's `resourceVersion` as a store revision.
pub fn resource_version(obj: &AnyObject) -> ApiResult<i64> {
    parse_resource_version(obj.metadata().resource_version.as_deref().unwrap_or("0"))
}

/// Parses a `resourceVersion`; 400 if it is not a number.
pub fn parse_resource_version(rv: &str) -> ApiResult<i64> {
    if rv.is_empty() {
        return Ok(0);
    }
    rv.parse::<i64>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version {rv:?}")))
}

//! The verbs: create, get, list, watch, update, patch, delete and deletecollection on
//! every served kind, and the `status` and `scale` subresources (a pod's `binding`
//! and `eviction`: [`crate::pod_writes`]).

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, Time};
use rk8s_api::object::kind_named;
use rk8s_api::{AnyObject, ObjectKind};
use serde_json::{Value, json};

use crate::admission;
use crate::auth::{Access, Identity, check_access};
use crate::caches::Caches;
pub use crate::call::Call;
pub use crate::cursor::StoredItem;
use crate::cursor::{Cursor, Page};
use crate::custom::CustomKinds;
use crate::decode::{Brought, decode_value, field_validation, parse_body, reworded};
use crate::default_tolerations::DefaultTolerationSeconds;
use crate::list_options::{
    Filter, decode_continue, encode_continue, requested_revision, validate_list_options,
};
use crate::listing::{STREAM_PAGE, StoredList, StreamedList};
use crate::registry::{Change, Registry, Updated};
use crate::request::{Query, ResourceRequest, Verb};
use crate::scale::ScalePaths;
use crate::status::{ApiError, ApiResult};

/// Namespaces every cluster has, which may not be deleted.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// A successful answer: status code, JSON body, warnings for the `Warning` header.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub code: http::StatusCode,
    /// The body.
    pub body: Body,
    /// Warnings (unknown fields under `fieldValidation=Warn`).
    pub warnings: Vec<String>,
}

/// The body of a reply.
#[derive(Debug)]
pub enum Body {
    /// A JSON object (a `Status`, a `Table`, a `Scale`).
    Value(Value),
    /// An object, encoded straight from its typed form.
    Object(Box<AnyObject>),
    /// A list of stored objects, encoded from their stored bytes.
    List(StoredList),
    /// A list too long for one page, encoded and sent a page at a time.
    Stream(Box<StreamedList>),
}

impl Reply {
    fn ok(body: Value) -> Self {
        Reply {
            code: http::StatusCode::OK,
            body: Body::Value(body),
            warnings: Vec::new(),
        }
    }

    pub(crate) fn object(code: http::StatusCode, obj: AnyObject, warnings: Vec<String>) -> Self {
        Reply {
            code,
            body: Body::Object(Box::new(obj)),
            warnings,
        }
    }
}

/// The state the verbs work on.
pub struct Handlers {
    /// Objects in the store.
    pub registry: Registry,
    /// One watch cache per resource.
    pub caches: Arc<Caches>,
    /// The custom kinds served now.
    pub custom: Arc<CustomKinds>,
    /// Listed objects' protobuf messages, kept between lists.
    pub encoded: Arc<crate::listing::EncodedItems>,
    /// The key service-account tokens are signed with (set once the cluster's
    /// secrets are read; TokenRequests answer 503 until then).
    pub service_account_key: Arc<std::sync::OnceLock<crate::service_accounts::SigningKey>>,
    /// What ServiceAccount admission and RBAC read, kept in memory.
    pub listers: Arc<crate::lister::Listers>,
    /// How long new pods tolerate a node gone missing (set at start; 300 s each).
    pub default_tolerations: Arc<std::sync::OnceLock<DefaultTolerationSeconds>>,
}

/// Whether `kind` is the built-in Namespace (a custom kind may be named so too).
pub(crate) fn is_namespace(kind: &ObjectKind) -> bool {
    kind.kind == "Namespace" && kind.group.is_empty() && !kind.custom
}

pub(crate) fn node_of(obj: &AnyObject) -> Option<&str> {
    match obj {
        AnyObject::Pod(p) => p.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        AnyObject::PersistentVolume(pv) => rk8s_api::placement::volume_node(pv),
        _ => None,
    }
}

pub(crate) fn random_suffix() -> ApiResult<String> {
    // Kubernetes' alphabet for generated names: no vowels, no look-alikes.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let secret = crate::auth::new_secret()?;
    Ok(secret
        .as_bytes()
        .chunks(2)
        .take(5)
        .map(|c| ALPHABET[usize::from(c[0] ^ c[1].rotate_left(3)) % ALPHABET.len()] as char)
        .collect())
}

pub(crate) fn dry_run(q: &Query) -> ApiResult<bool> {
    match q.get("dryRun") {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "dryRun: unsupported value {other:?}: supported values: \"All\""
        ))),
    }
}

/// A list's result.
pub struct Listed<T = AnyObject> {
    /// The objects, in key order.
    pub items: Vec<T>,
    /// The revision read at.
    pub revision: i64,
    /// Where the next page starts, if there is one.
    pub continue_token: Option<String>,
    /// Objects after this page, when known.
    pub remaining: Option<i64>,
}

impl Listed<StoredItem> {
    /// The list with every item decoded.
    fn decoded(self, kind: &ObjectKind) -> ApiResult<Listed> {
        let items = self
            .items
            .into_iter()
            .map(|item| item.decoded(kind))
            .collect::<ApiResult<_>>()?;
        Ok(Listed {
            items,
            revision: self.revision,
            continue_token: self.continue_token,
            remaining: self.remaining,
        })
    }
}

/// The list result of `page`, read by `cursor`: a continue token where it stopped.
fn listed(cursor: &Cursor, page: Page) -> Listed<StoredItem> {
    let revision = cursor.revision();
    Listed {
        items: page.items,
        revision,
        continue_token: page
            .next
            .map(|k| encode_continue(revision, cursor.prefix(), &k, page.remaining)),
        remaining: page.remaining,
    }
}

impl Handlers {
    /// Every object of the kind named `kind` (in `namespace`, or all) that the
    /// selectors of `q` select: the server's own reads (metrics, discovery of scrape
    /// targets).
    pub async fn list_kind(
        &self,
        kind: &str,
        namespace: Option<&str>,
        q: &Query,
    ) -> ApiResult<Vec<AnyObject>> {
        let kind = rk8s_api::object::kind_named(kind).ok_or_else(ApiError::no_route)?;
        let all = ResourceRequest {
            verb: crate::request::Verb::List,
            kind,
            namespace: namespace.map(str::to_string),
            name: None,
            subresource: None,
        };
        Ok(self.list_objects(&all, q).await?.items)
    }

    /// Waits until the server has reached `revision` for `kind` (see
    /// [`WatchCache::wait_until_fresh`]): 504 `Too large resource version` after 3 s.
    pub async fn wait_until_fresh(&self, kind: &ObjectKind, revision: u64) -> ApiResult<()> {
        match self.caches.get(kind) {
            Some(cache) if revision > 0 => cache.wait_until_fresh(revision).await,
            _ => Ok(()),
        }
    }

    /// Reads objects of `req`'s kind (in its namespace, if any) as `q` asks. A
    /// `resourceVersion` the server has not reached yet is waited for (a list at
    /// "not older than" it, or exactly at it, cannot be served before).
    pub async fn list_objects(&self, req: &ResourceRequest, q: &Query) -> ApiResult<Listed> {
        self.list_stored(req, q).await?.decoded(&req.kind)
    }

    /// As [`Handlers::list_objects`], the objects as stored: decoded only where a
    /// selector had to look at them.
    pub async fn list_stored(
        &self,
        req: &ResourceRequest,
        q: &Query,
    ) -> ApiResult<Listed<StoredItem>> {
        let limit = q.number("limit")?.unwrap_or(0);
        let mut cursor = self.cursor(req, q).await?.counted(limit > 0);
        let page = cursor.next_page(limit).await?;
        Ok(listed(&cursor, page))
    }

    /// Where a list of `req`'s kind as `q` asks starts: its continue token's key and
    /// revision, or the first key at the revision asked for (waited for if the
    /// server has not reached it yet) or now.
    pub(crate) async fn cursor(&self, req: &ResourceRequest, q: &Query) -> ApiResult<Cursor> {
        let kind = &req.kind;
        let filter = Filter::from_query(kind, q)?;
        let prefix = kind.storage_prefix(req.namespace.as_deref());
        let (revision, start, remaining) = match q.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => decode_continue(token, &prefix)?,
            None => {
                let asked = requested_revision(q.get("resourceVersion").unwrap_or(""))?;
                self.wait_until_fresh(kind, asked).await?;
                let exact = q.get("resourceVersionMatch") == Some("Exact");
                // Reached, so within the store's revisions.
                let at = i64::try_from(asked)
                    .map_err(|_| crate::watch::too_large_resource_version(asked, i64::MAX))?;
                (if exact { at } else { 0 }, Vec::new(), None)
            }
        };
        Ok(Cursor::new(self.registry.clone(), *kind, prefix, filter)
            .resume(start, revision, remaining))
    }

    /// GET of a collection: whole, or, for a JSON list without a `limit` longer than a
    /// page, streamed a page at a time ([`StreamedList`]).
    pub async fn list(&self, c: &Call<'_>, accept: Option<&str>) -> ApiResult<Reply> {
        validate_list_options(c.query, false)?;
        let kind = &c.req.kind;
        let limit = c.query.number("limit")?.unwrap_or(0);
        let table = crate::table::wants_table(accept);
        // A JSON list without a limit larger than a page goes out page by page.
        let streams = limit == 0
            && !table
            && crate::content::negotiate(accept) != crate::content::Encoding::Protobuf;
        let mut cursor = self
            .cursor(c.req, c.query)
            .await?
            .counted(!streams && !table && limit > 0);
        let page = cursor
            .next_page(if streams { STREAM_PAGE } else { limit })
            .await?;
        if streams && page.next.is_some() {
            let first = page.items.into_iter().map(|item| item.kv).collect();
            return Ok(Reply {
                code: http::StatusCode::OK,
                body: Body::Stream(Box::new(StreamedList::new(kind, first, cursor))),
                warnings: Vec::new(),
            });
        }
        let listed = listed(&cursor, page);
        if table {
            let listed = listed.decoded(kind)?;
            return Ok(Reply::ok(crate::custom::table::any_table(
                &self.custom,
                kind,
                &listed.items,
                &listed.revision.to_string(),
                listed.continue_token.as_deref(),
                c.query.get("includeObject"),
            )));
        }
        let mut metadata = json!({"resourceVersion": listed.revision.to_string()});
        if let Some(t) = &listed.continue_token {
            metadata["continue"] = json!(t);
        }
        if let Some(r) = listed.remaining.filter(|r| *r > 0) {
            metadata["remainingItemCount"] = json!(r);
        }
        Ok(Reply {
            code: http::StatusCode::OK,
            body: Body::List(StoredList {
                api_version: kind.api_version,
                item_kind: kind.kind,
                metadata,
                items: listed.items.into_iter().map(|item| item.kv).collect(),
                encoded: Some(self.encoded.clone()),
            }),
            warnings: Vec::new(),
        })
    }

    /// GET of one object or subresource.
    pub async fn get(&self, c: &Call<'_>, accept: Option<&str>) -> ApiResult<Reply> {
        let req = c.req;
        let access = self.read_access(c).await?;
        let obj = match self
            .registry
            .get(&req.kind, req.namespace.as_deref(), req.name())
            .await
        {
            Ok(obj) => obj,
            // A node may not learn which pods exist beyond its own (a local volume
            // gone is for its node to learn: it removes the directory).
            // A Secret a served Ingress names may be missing: the node learns
            // nothing the Ingress does not tell.
            Err(e)
                if e.code == http::StatusCode::NOT_FOUND
                    && access != Access::All
                    && !matches!(access, Access::IngressTls(_))
                    && req.kind.plural != "persistentvolumes" =>
            {
                check_access(&access, c.identity, req, req.name(), None)?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let access = Self::tls_secret_access(c, access, &obj)?;
        if let Err(e) = check_access(&access, c.identity, req, req.name(), node_of(&obj)) {
            self.volume_used_on(&access, &obj).await.map_err(|_| e)?;
        }
        let sub = req.subresource.as_deref();
        match admission::Part::of(&req.kind, sub) {
            Some(_) if sub == Some("scale") => Ok(Reply::ok(self.scale_of(&obj)?)),
            // `finalize` is written, never read (kube's `FinalizeREST`).
            Some(admission::Part::Finalize) => {
                Err(ApiError::method_not_allowed("get", "namespaces/finalize"))
            }
            None => Err(ApiError::no_route()),
            Some(_) => {
                if crate::table::wants_table(accept) {
                    let rv = obj.metadata().resource_version.clone().unwrap_or_default();
                    return Ok(Reply::ok(crate::custom::table::any_table(
                        &self.custom,
                        &req.kind,
                        std::slice::from_ref(&obj),
                        &rv,
                        None,
                        c.query.get("includeObject"),
                    )));
                }
                Ok(Reply::object(http::StatusCode::OK, obj, Vec::new()))
            }
        }
    }

    /// POST: create an object, or a pod's binding.
    pub async fn create(&self, c: &Call<'_>) -> ApiResult<Reply> {
        let req = c.req;
        // NamespaceLifecycle holds a subresource's create too.
        if req.subresource.is_some()
            && let Some(ns) = req.namespace.as_deref()
            && let Some(namespace) = self.require_namespace(ns).await?
        {
            admission::namespace_lifecycle(&namespace, &req.kind, req.name())?;
        }
        match req.subresource.as_deref() {
            None => {}
            Some("binding") if req.kind.plural == "pods" => return self.bind(c).await,
            Some("eviction") if req.kind.plural == "pods" => return self.evict(c).await,
            Some("token") if req.kind.plural == "serviceaccounts" => {
                return self.token_request(c).await;
            }
            Some(_) => return Err(ApiError::no_route()),
        }
        if req.kind.is_namespaced() && req.namespace.is_none() {
            return Err(ApiError::method_not_allowed(
                "create",
                &format!("{} without a namespace", req.kind.plural),
            ));
        }
        let mode = field_validation(c.query)?;
        // An apply that creates keeps the apply's words.
        let word = |e| match req.verb {
            Verb::Patch => e,
            _ => reworded(e, Brought::Body(&req.kind)),
        };
        let body = parse_body(&c.content_type, &c.body, mode).map_err(word)?;
        let (mut obj, warnings) =
            decode_value(&req.kind, &body.value, &body.duplicates, mode).map_err(word)?;
        if req.kind.is_namespaced() {
            let url_ns = req.namespace.clone().unwrap_or_default();
            let meta = obj.metadata_mut();
            match meta.namespace.as_deref() {
                None | Some("") => meta.namespace = Some(url_ns),
                Some(ns) if ns == url_ns => {}
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
            }
        }
        let meta = obj.metadata_mut();
        if meta.name.as_deref().is_none_or(str::is_empty)
            && let Some(prefix) = meta.generate_name.clone().filter(|p| !p.is_empty())
        {
            meta.name = Some(format!("{prefix}{}", random_suffix()?));
        }
        check_access(&c.access, c.identity, req, obj.name(), node_of(&obj))?;
        // NodeRestriction holds a node to the podCIDR its join assigned.
        let assigned = match (c.identity, &obj) {
            (Identity::Node(node), AnyObject::Node(_)) => {
                crate::bootstrap::join::assigned_pod_cidr(self.registry.store(), node).await?
            }
            _ => None,
        };
        let pruned = admission::mutate_create(&mut obj, &self.custom)?;
        crate::certificates::stamp_requester(&mut obj, c.identity);
        // The writer's fields, before mutating admission adds its own (kube-apiserver
        // updates managedFields before admission: the token volume is nobody's).
        crate::apply::record_write(c, None, &mut obj, None)?;
        // NamespaceLifecycle, then ServiceAccount admission (kube-apiserver's order).
        let namespace = match obj.namespace() {
            Some(ns) => self.require_namespace(ns).await?,
            None => None,
        };
        if let Some(ns) = &namespace {
            admission::namespace_lifecycle(ns, &obj.kind(), obj.name())?;
        }
        if let AnyObject::Pod(pod) = &mut obj {
            let accounts = &self.listers.accounts;
            crate::service_accounts::admission::admit_pod(
                &self.registry,
                accounts,
                pod,
                random_suffix,
            )
            .await?;
        }
        crate::limit_ranger::admit(&self.listers.limit_ranges, &mut obj, false)?;
        crate::priority::admit(&self.listers.priority_classes, &mut obj, None)?;
        let seconds = self.default_tolerations.get().copied().unwrap_or_default();
        crate::default_tolerations::admit(&mut obj, seconds);
        crate::default_storage_class::admit(&self.listers.storage_classes, &mut obj);
        crate::default_ingress_class::admit(&self.listers.ingress_classes, &mut obj);
        let mut warnings =
            crate::custom::admission::with_pruned(pruned, warnings, mode).map_err(word)?;
        let name = obj.name().to_string();
        let dry = dry_run(c.query)?;
        let webhooks = crate::webhooks::Attempt {
            operation: crate::webhooks::matching::Operation::Create,
            kind: req.kind,
            subresource: None,
            namespace: req.namespace.as_deref(),
            name: &name,
            identity: c.identity,
            dry_run: dry,
            old: None,
        };
        let mutated = self.mutating_webhooks(&webhooks, &mut obj).await?;
        warnings.extend(mutated.warnings);
        if mutated.patched {
            admission::after_webhooks_create(&mut obj, req.namespace.as_deref())?;
        }
        admission::validate(
            c.identity,
            &obj,
            None,
            admission::Part::Main,
            assigned.as_deref(),
            &self.custom,
        )?;
        let pod_security =
            crate::pod_security::Context::read(&self.registry, req, namespace.as_ref()).await?;
        let decision = pod_security.admit(&obj, None)?;
        crate::audit::annotate(&decision.audit_annotations);
        warnings.extend(decision.warnings);
        self.confirm_no_escalation(c.identity, &obj)?;
        warnings.extend(self.validating_webhooks(&webhooks, Some(&obj)).await?);
        crate::resource_quota::admit(
            &self.registry,
            &self.listers.resource_quotas,
            &obj,
            None,
            dry,
        )
        .await?;
        let created = if dry {
            obj
        } else {
            self.registry.create(&obj).await?
        };
        Ok(Reply::object(http::StatusCode::CREATED, created, warnings))
    }

    /// The namespace `ns` (read once, for admission after it too), or 404.
    async fn require_namespace(&self, ns: &str) -> ApiResult<Option<AnyObject>> {
        let Some(kind) = kind_named("Namespace") else {
            return Ok(None);
        };
        match self.registry.find_locally(&kind, None, ns).await? {
            Some(found) => Ok(Some(found)),
            None => Err(ApiError::not_found(&kind, ns)),
        }
    }

    /// DELETE of one object. Pods bound to a node are deleted gracefully: they get a
    /// `deletionTimestamp` and the node deletes them for good once their containers
    /// have stopped. Objects with finalizers wait for them.
    pub async fn delete(&self, c: &Call<'_>) -> ApiResult<Reply> {
        let req = c.req;
        if req.subresource.is_some() {
            return Err(ApiError::no_route());
        }
        let options = delete_options(c)?;
        let kind = req.kind;
        let name = req.name().to_string();
        if is_namespace(&kind) {
            Self::check_deletable(&name)?;
        }
        let obj = self
            .delete_one(c, req.namespace.as_deref(), &name, &options)
            .await?;
        Ok(Reply::object(http::StatusCode::OK, obj, Vec::new()))
    }

    async fn delete_one(
        &self,
        c: &Call<'_>,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> ApiResult<AnyObject> {
        let kind = c.req.kind;
        let first_uid = &std::sync::OnceLock::new();
        let outcome = self
            .registry
            .update_waiting(&kind, namespace, name, |current| async move {
                check_access(&c.access, c.identity, c.req, name, node_of(&current))?;
                // A namespace's DELETE is pinned to the UID it first read (kube's
                // "Ensure we have a UID precondition"): one made anew meanwhile is a
                // 409, never deleted in its place.
                let mut pinned = options.clone();
                if is_namespace(&kind) {
                    let first: &Option<String> =
                        first_uid.get_or_init(|| current.metadata().uid.clone());
                    let pre = pinned.preconditions.get_or_insert_with(Default::default);
                    if pre.uid.is_none() {
                        pre.uid.clone_from(first);
                    }
                }
                check_preconditions(&kind, name, &pinned, &current)?;
                let attempt = crate::webhooks::Attempt {
                    operation: crate::webhooks::matching::Operation::Delete,
                    kind,
                    subresource: None,
                    namespace,
                    name,
                    identity: c.identity,
                    dry_run: is_dry(options),
                    old: Some(&current),
                };
                self.validating_webhooks(&attempt, None).await?;
                self.delete_change(current, options)
            })
            .await?;
        Ok(match outcome {
            Updated::Replaced(o) | Updated::Unchanged(o) => o,
            Updated::Deleted(mut o, revision) => {
                o.metadata_mut().resource_version = Some(revision.to_string());
                crate::custom::delete_objects(&self.registry, &self.custom, &o).await?;
                o
            }
        })
    }

    /// Where `kind` keeps what its `scale` subresource shows.
    pub(crate) fn scale_paths(&self, kind: &ObjectKind) -> ApiResult<ScalePaths> {
        let paths = if kind.custom {
            self.custom
                .with_version(kind, |v| v.scale.clone())
                .flatten()
        } else {
            ScalePaths::of(kind)
        };
        paths.ok_or_else(ApiError::no_route)
    }

    /// The `Scale` of `obj`.
    pub(crate) fn scale_of(&self, obj: &AnyObject) -> ApiResult<Value> {
        crate::scale::scale_of(&obj.to_value(), &self.scale_paths(&obj.kind())?)
    }

    /// `current` with the replicas a `Scale` body asks for.
    pub(crate) fn with_replicas(&self, current: &AnyObject, scale: &Value) -> ApiResult<AnyObject> {
        crate::scale::with_replicas(current, scale, &self.scale_paths(&current.kind())?)
    }

    /// DELETE of a collection: every selected object, one by one.
    pub async fn delete_collection(&self, c: &Call<'_>) -> ApiResult<Reply> {
        if is_namespace(&c.req.kind) {
            return Err(ApiError::method_not_allowed(
                "deletecollection",
                "namespaces",
            ));
        }
        validate_list_options(c.query, false)?;
        let options = delete_options(c)?;
        let listed = self.list_objects(c.req, c.query).await?;
        let mut deleted = Vec::new();
        for obj in listed.items {
            match self
                .delete_one(c, obj.namespace(), obj.name(), &options)
                .await
            {
                Ok(o) => deleted.push(o.to_value()),
                Err(e) if e.code == http::StatusCode::NOT_FOUND => {}
                Err(e) => return Err(e),
            }
        }
        let kind = c.req.kind;
        Ok(Reply::ok(json!({
            "kind": format!("{}List", kind.kind),
            "apiVersion": kind.api_version,
            "metadata": {"resourceVersion": ""},
            "items": deleted,
        })))
    }
}

pub(crate) fn delete_options(c: &Call<'_>) -> ApiResult<DeleteOptions> {
    let mut options: DeleteOptions = if c.body.is_empty() {
        DeleteOptions::default()
    } else {
        serde_json::from_slice(&c.body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    if let Some(g) = c.query.number("gracePeriodSeconds")? {
        options.grace_period_seconds = Some(g);
    }
    if let Some(p) = c.query.get("propagationPolicy") {
        options.propagation_policy = Some(p.to_string());
    }
    if options.orphan_dependents == Some(true) && options.propagation_policy.is_none() {
        options.propagation_policy = Some("Orphan".into());
    }
    match options.propagation_policy.as_deref() {
        None | Some("Background" | "Foreground" | "Orphan") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: unsupported value {other:?}: supported values: \"Background\", \"Foreground\", \"Orphan\""
            )));
        }
    }
    // `dryRun` in the query or in the options (kubectl sends it in the body).
    for value in options.dry_run.iter().flatten() {
        if value != "All" {
            return Err(ApiError::bad_request(format!(
                "dryRun: unsupported value {value:?}: supported values: \"All\""
            )));
        }
    }
    if dry_run(c.query)? && !is_dry(&options) {
        options.dry_run = Some(vec!["All".to_string()]);
    }
    Ok(options)
}

/// Whether a delete with `options` is a dry run (`dryRun: ["All"]`): every check
/// made, nothing written, the answer what the delete would have answered.
pub(crate) fn is_dry(options: &DeleteOptions) -> bool {
    options.dry_run.iter().flatten().any(|d| d == "All")
}

pub(crate) fn check_preconditions(
    kind: &ObjectKind,
    name: &str,
    options: &DeleteOptions,
    current: &AnyObject,
) -> ApiResult<()> {
    let Some(pre) = &options.preconditions else {
        return Ok(());
    };
    let meta = current.metadata();
    if pre
        .uid
        .as_ref()
        .is_some_and(|u| Some(u) != meta.uid.as_ref())
    {
        return Err(ApiError::conflict(
            kind,
            name,
            &format!(
                "Precondition failed: UID in precondition: {}, UID in object meta: {}",
                pre.uid.clone().unwrap_or_default(),
                meta.uid.clone().unwrap_or_default()
            ),
        ));
    }
    if pre
        .resource_version
        .as_ref()
        .is_some_and(|r| Some(r) != meta.resource_version.as_ref())
    {
        return Err(ApiError::modified(kind, name));
    }
    Ok(())
}

/// What deleting `current` does: delete it now, or mark it and wait (for the node to
/// stop a pod's containers, or for finalizers).
pub(crate) fn deletion(mut obj: AnyObject, options: &DeleteOptions) -> ApiResult<Change> {
    let grace = match &obj {
        AnyObject::Pod(p) => {
            let terminal = p
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|ph| ph == "Succeeded" || ph == "Failed");
            let bound = p.spec.as_ref().is_some_and(|s| s.node_name.is_some());
            let asked = options.grace_period_seconds.or_else(|| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            });
            if terminal || !bound {
                0
            } else {
                asked
                    .unwrap_or(rk8s_api::defaults::DEFAULT_TERMINATION_GRACE_SECONDS)
                    .max(0)
            }
        }
        _ => 0,
    };
    let meta = obj.metadata_mut();
    let finalizers = meta.finalizers.get_or_insert_with(Vec::new);
    let policy_finalizer = match options.propagation_policy.as_deref() {
        Some("Foreground") => Some("foregroundDeletion"),
        Some("Orphan") => Some("orphan"),
        _ => None,
    };
    let first_time = meta.deletion_timestamp.is_none();
    if let Some(f) = policy_finalizer.filter(|_| first_time)
        && !finalizers.iter().any(|x| x == f)
    {
        finalizers.push(f.to_string());
    }
    let has_finalizers = !finalizers.is_empty();
    if meta.finalizers.as_ref().is_some_and(Vec::is_empty) {
        meta.finalizers = None;
    }
    if grace == 0 && !has_finalizers {
        return Ok(Change::Delete(obj));
    }
    // Mark for deletion; a shorter grace period than the one already set wins.
    let current_grace = meta.deletion_grace_period_seconds;
    if !first_time && current_grace.is_some_and(|g| g <= grace) {
        return Ok(if policy_finalizer.is_some() {
            Change::Replace(obj)
        } else {
            Change::Unchanged
        });
    }
    let at = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(grace))
        .unwrap_or_else(|_| jiff::Timestamp::now());
    meta.deletion_timestamp = Some(Time(
        jiff::Timestamp::from_second(at.as_second()).unwrap_or(at),
    ));
    meta.deletion_grace_period_seconds = Some(grace);
    Ok(Change::Replace(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_use_the_kubernetes_alphabet() {
        let s = random_suffix().unwrap();
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }

    #[test]
    fn pods_on_nodes_are_deleted_gracefully() {
        let pods = kind_named("Pod").unwrap();
        let v = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": []}});
        let pod = AnyObject::from_value(&pods, v).unwrap().unwrap();
        let change = deletion(pod.clone(), &DeleteOptions::default()).unwrap();
        let Change::Replace(marked) = change else {
            panic!("{change:?}")
        };
        assert_eq!(marked.metadata().deletion_grace_period_seconds, Some(30));
        // Deleting again with grace 0 (the node's confirmation) deletes it.
        let now = DeleteOptions {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        assert!(matches!(
            deletion(marked.clone(), &now).unwrap(),
            Change::Delete(_)
        ));
        // Again with the same grace: nothing changes.
        assert!(matches!(
            deletion(marked, &DeleteOptions::default()).unwrap(),
            Change::Unchanged
        ));
        // An unscheduled pod goes at once.
        let v = json!({"metadata": {"name": "p"}, "spec": {"containers": []}});
        let pending = AnyObject::from_value(&pods, v).unwrap().unwrap();
        assert!(matches!(
            deletion(pending, &DeleteOptions::default()).unwrap(),
            Change::Delete(_)
        ));
        // Finalizers hold any object; foreground deletion adds one.
        let deploys = kind_named("Deployment").unwrap();
        let d = AnyObject::from_value(&deploys, json!({"metadata": {"name": "d"}}))
            .unwrap()
            .unwrap();
        let fg = DeleteOptions {
            propagation_policy: Some("Foreground".into()),
            ..Default::default()
        };
        let Change::Replace(held) = deletion(d, &fg).unwrap() else {
            panic!()
        };
        assert_eq!(
            held.metadata().finalizers.as_deref(),
            Some(&["foregroundDeletion".to_string()][..])
        );
        assert!(held.metadata().deletion_timestamp.is_some());
    }
}

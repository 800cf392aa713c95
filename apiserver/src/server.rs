//! The HTTPS server: TLS (rustls), HTTP/1.1 and HTTP/2 (hyper), authentication,
//! routing to the verbs, and watch streams.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use rk8s_api::object::kinds;
use rk8s_raftstore::server::Store;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub use rk8s_http::body::{Body, channel_body, error_response};
use rk8s_http::body::{json_response, text_response};

use crate::auth::{self, Identity};
use crate::handlers::{Call, Handlers, Reply};
use crate::list_options::Filter;
use crate::registry::Registry;
use crate::request::{MetricsRequest, Query, ResourceRequest, Route, Verb, route};
use crate::status::{ApiError, ApiResult};
use crate::watch::{Message, WatchCache};
use crate::{discovery, openapi, table};

pub use crate::decode::MAX_BODY;

/// The API server's shared state.
pub struct ApiServer {
    handlers: Handlers,
    store: Store,
    authenticator: auth::Authenticator,
    /// Requests being served, as kube-apiserver's `--max-requests-inflight` and
    /// `--max-mutating-requests-inflight` count them (watches are not counted).
    reads_inflight: Arc<tokio::sync::Semaphore>,
    writes_inflight: Arc<tokio::sync::Semaphore>,
    max_reads: usize,
    max_writes: usize,
    pod_cidrs: std::sync::OnceLock<crate::bootstrap::join::PodCidrs>,
    node_dialer: std::sync::OnceLock<crate::proxy::NodeDialer>,
    chaos: std::sync::OnceLock<Arc<dyn ActorControl>>,
}

pub use rk8s_http::debug::ActorControl;

/// A 200 with `v` as its JSON body.
fn ok(v: Value) -> ApiResult<Response<Body>> {
    Ok(json_response(StatusCode::OK, &v, &[]))
}

/// Refuses anyone but the admin to `what` (the endpoints outside the REST API).
fn admin_only(identity: &Identity, what: &str) -> ApiResult<()> {
    if *identity == Identity::Admin {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "user {:?} cannot {what}: admin only",
        identity.user()
    )))
}

/// What `POST /rk8s/v1/debug/actors/kill` takes.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KillRequest {
    kind: Option<String>,
    name: Option<String>,
    #[serde(default)]
    random: bool,
}

/// Kubernetes' default limits of concurrent requests.
pub const MAX_READS_INFLIGHT: usize = 400;
/// See [`MAX_READS_INFLIGHT`].
pub const MAX_WRITES_INFLIGHT: usize = 200;

/// Bodies over the limit are still read (and dropped), up to this much, so that a
/// client still sending gets its 413 rather than a broken connection.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

async fn read_body(mut body: Incoming, length: Option<u64>) -> ApiResult<Bytes> {
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0u64;
    let too_large = length.is_some_and(|l| l > MAX_BODY as u64);
    while seen < DRAIN_LIMIT {
        match body.frame().await {
            None => break,
            Some(Err(e)) => {
                return Err(ApiError::bad_request(format!(
                    "could not read the request body: {e}"
                )));
            }
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    seen += data.len() as u64;
                    if !too_large && seen <= MAX_BODY as u64 {
                        buf.extend_from_slice(data);
                    }
                }
            }
        }
    }
    if too_large || seen > MAX_BODY as u64 {
        return Err(ApiError::too_large(MAX_BODY));
    }
    Ok(buf.freeze())
}

impl ApiServer {
    /// An API server over `store`; starts a watch cache per kind.
    pub fn new(store: Store) -> Arc<Self> {
        Self::with_limits(store, MAX_READS_INFLIGHT, MAX_WRITES_INFLIGHT)
    }

    /// An API server that answers 429 beyond `reads` concurrent reads or `writes`
    /// concurrent writes.
    pub fn with_limits(store: Store, reads: usize, writes: usize) -> Arc<Self> {
        let mut caches = HashMap::new();
        for kind in kinds() {
            let cache = WatchCache::new(kind, store.clone());
            tokio::spawn(cache.clone().run());
            caches.insert(kind.plural, cache);
        }
        Arc::new(ApiServer {
            handlers: Handlers {
                registry: Registry::new(store.clone()),
                caches,
            },
            authenticator: auth::Authenticator::new(store.clone()),
            store,
            reads_inflight: Arc::new(tokio::sync::Semaphore::new(reads)),
            writes_inflight: Arc::new(tokio::sync::Semaphore::new(writes)),
            max_reads: reads,
            max_writes: writes,
            pod_cidrs: std::sync::OnceLock::new(),
            node_dialer: std::sync::OnceLock::new(),
            chaos: std::sync::OnceLock::new(),
        })
    }

    /// Sets the ranges joining nodes get (once; the default is 10.244.0.0/16 in /24s).
    pub fn set_pod_cidrs(&self, cidrs: crate::bootstrap::join::PodCidrs) {
        let _ = self.pod_cidrs.set(cidrs);
    }

    /// Turns the chaos endpoints on: the control plane's actors, listed and killed.
    pub fn set_chaos(&self, control: Arc<dyn ActorControl>) {
        let _ = self.chaos.set(control);
    }

    /// The control plane's actors, when chaos is on and the caller is the admin.
    fn chaos_for(&self, identity: &Identity) -> ApiResult<&Arc<dyn ActorControl>> {
        admin_only(identity, "list or kill the control plane's actors")?;
        self.chaos.get().ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the chaos endpoints are off: start rk8s-server with --enable-chaos",
            )
        })
    }

    /// Whether this member leads (the control plane's actors run on the leader).
    fn leads(&self) -> bool {
        self.store.leadership().borrow().is_self
    }

    /// Sets how this server reaches node agents for logs and exec (once; without it,
    /// those subresources answer 503).
    pub fn set_node_dialer(&self, dialer: crate::proxy::NodeDialer) {
        let _ = self.node_dialer.set(dialer);
    }

    /// A credential for this process' own clients (scheduler, controllers).
    pub fn internal_token(&self) -> ApiResult<String> {
        self.authenticator.internal_token()
    }

    /// The objects this server serves.
    pub fn registry(&self) -> &Registry {
        &self.handlers.registry
    }

    /// Answers one request; never fails (errors become `Status` responses).
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let started = std::time::Instant::now();
        // The route is read once: dispatch serves it, the metrics count it.
        let query = Query::parse(req.uri().query());
        let routed = route(&method, &path, query.get("watch"));
        let counted = match &routed {
            Ok(Route::Resource(r)) => Some(r.clone()),
            _ => None,
        };
        let resp = match routed {
            Ok(r) => self.dispatch(req, r, query).await,
            Err(e) => Err(e),
        };
        let resp = resp.unwrap_or_else(|e| {
            let mut resp = error_response(&e);
            // kube-apiserver's `ErrorNegotiated`: a Status that says when to retry says
            // it in `Retry-After` too (the 504 of a too large resource version).
            let retry = e.details.as_ref().and_then(|d| d.retry_after_seconds);
            if let Some(seconds) = retry.filter(|s| *s > 0) {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            resp
        });
        if let Some(r) = counted {
            crate::metrics::observe(
                r.verb.as_str(),
                r.kind.plural,
                r.subresource.as_deref().unwrap_or(""),
                resp.status().as_u16(),
                started.elapsed(),
            );
        }
        tracing::debug!(
            "{method} {path} {} {:.1}ms",
            resp.status().as_u16(),
            started.elapsed().as_secs_f64() * 1000.0
        );
        Ok(resp)
    }

    async fn dispatch(
        &self,
        req: Request<Incoming>,
        route: Route,
        query: Query,
    ) -> ApiResult<Response<Body>> {
        // Health and version are public, as in Kubernetes.
        match &route {
            Route::Health(check) => return Ok(self.health(check).await),
            Route::Version => return ok(discovery::version()),
            Route::ClusterInfo => return self.cluster_info().await.and_then(ok),
            _ => {}
        }
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let identity = self
            .authenticator
            .authenticate(authorization.as_deref())
            .await?;
        let not_found = ApiError::no_route;
        match route {
            Route::CoreVersions => ok(discovery::core_versions()),
            Route::Groups => ok(discovery::group_list()),
            Route::Group(g) => discovery::group(&g).ok_or_else(not_found).and_then(ok),
            Route::Resources { group, version } => discovery::resource_list(&group, &version)
                .ok_or_else(not_found)
                .and_then(ok),
            Route::OpenApiV2 => ok(openapi::v2()),
            Route::OpenApiV3Index => ok(openapi::v3_index()),
            Route::OpenApiV3 { group, version } => openapi::v3(&group, &version)
                .ok_or_else(not_found)
                .and_then(ok),
            Route::Resource(r)
                if r.kind.plural == "pods"
                    && r.subresource
                        .as_deref()
                        .is_some_and(|s| crate::request::NODE_SUBRESOURCES.contains(&s)) =>
            {
                self.proxy(req, r, &identity, &query).await
            }
            Route::Resource(r) => self.resource(req, r, &identity, &query).await,
            Route::NodeProxy { node, path } => self.node_proxy(req, &identity, node, path).await,
            Route::ResourceMetrics(asked) => self.resource_metrics(&identity, asked, &query).await,
            Route::Join | Route::MemberJoin => {
                self.join(req, route, &identity, authorization.as_deref())
                    .await
            }
            Route::ServingCert => self.serving_cert(req, &identity).await,
            Route::Metrics => self.metrics(&identity).await,
            Route::PrometheusTargets => self.prometheus_targets(req, &identity, &query).await,
            Route::DebugActors => self.debug_actors(&identity),
            Route::DebugKill => self.debug_kill(req, &identity).await,
            Route::Health(_) | Route::Version | Route::ClusterInfo => Err(not_found()),
        }
    }

    /// `GET /api/v1/nodes/{node}/proxy/{path}`: the node agent's `/{path}` (admin only).
    async fn node_proxy(
        &self,
        req: Request<Incoming>,
        identity: &Identity,
        node: String,
        path: String,
    ) -> ApiResult<Response<Body>> {
        admin_only(identity, &format!("get nodes/proxy of node {node:?}"))?;
        let target =
            crate::proxy::node_target(&self.handlers.registry, &node, &path, req.uri().query())
                .await?;
        let node_req = crate::proxy::node_request(req.method(), req.headers(), &target)?;
        let resp = self
            .dialer()?
            .send(&target.node, target.ip, target.port, node_req)
            .await?;
        Ok(crate::proxy::relay(None, resp))
    }

    /// The resource metrics API, from the nodes' summaries (admin only).
    async fn resource_metrics(
        &self,
        identity: &Identity,
        asked: MetricsRequest,
        query: &Query,
    ) -> ApiResult<Response<Body>> {
        admin_only(identity, "read the resource metrics API")?;
        let dialer = self.dialer()?;
        crate::resource_metrics::serve(&self.handlers, dialer, &asked, query)
            .await
            .and_then(ok)
    }

    /// `POST /rk8s/v1/join` and `POST /rk8s/v1/members`: a bootstrap token becomes a node
    /// credential or a store member's certificate.
    async fn join(
        &self,
        req: Request<Incoming>,
        route: Route,
        identity: &Identity,
        authorization: Option<&str>,
    ) -> ApiResult<Response<Body>> {
        let bearer = auth::bearer_token(authorization)
            .unwrap_or_default()
            .to_string();
        let length = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = read_body(req.into_body(), length).await?;
        let value = if route == Route::Join {
            let cidrs = self.pod_cidrs.get().copied().unwrap_or_default();
            let joined =
                crate::bootstrap::join::join(&self.store, identity, &bearer, &body, cidrs).await?;
            serde_json::to_value(&joined)
        } else {
            let member_ca = self.secrets().await?.member_ca.ok_or_else(|| {
                ApiError::unavailable("the cluster has no member CA yet (its first member has not started since it got one)")
            })?;
            let joined =
                crate::bootstrap::members::join(&self.store, &member_ca, identity, &bearer, &body)
                    .await?;
            serde_json::to_value(&joined)
        };
        let value = value.map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(json_response(StatusCode::CREATED, &value, &[]))
    }

    /// `POST /rk8s/v1/serving-cert`: a node's serving certificate from the node CA.
    async fn serving_cert(
        &self,
        req: Request<Incoming>,
        identity: &Identity,
    ) -> ApiResult<Response<Body>> {
        let body = read_body(req.into_body(), None).await?;
        let ca = self.secrets().await?.node_ca.ok_or_else(|| {
            ApiError::unavailable(
                "the cluster has no node CA yet (no API server has started since it got one)",
            )
        })?;
        let cert = crate::bootstrap::join::serving_cert(&ca, identity, &body)?;
        let value = serde_json::to_value(&cert).map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(json_response(StatusCode::CREATED, &value, &[]))
    }

    /// `GET /metrics`: this server's metrics and the objects' (admin only).
    async fn metrics(&self, identity: &Identity) -> ApiResult<Response<Body>> {
        admin_only(identity, "get path \"/metrics\"")?;
        let inflight = |sem: &tokio::sync::Semaphore, max: usize| {
            i64::try_from(max.saturating_sub(sem.available_permits())).unwrap_or(0)
        };
        crate::metrics::INFLIGHT
            .with_label_values(&["readOnly"])
            .set(inflight(&self.reads_inflight, self.max_reads));
        crate::metrics::INFLIGHT
            .with_label_values(&["mutating"])
            .set(inflight(&self.writes_inflight, self.max_writes));
        let (mut objects, everything) = (Vec::new(), Query::default());
        for kind in crate::state_metrics::KINDS {
            objects.extend(self.handlers.list_kind(kind, None, &everything).await?);
        }
        let state = crate::state_metrics::families(&objects)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let (format, text) = crate::metrics::exposition_with(state);
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, format)
            .body(Full::new(Bytes::from(text)).boxed())
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    /// `GET /rk8s/v1/prometheus/targets`: Prometheus HTTP service discovery (admin only).
    async fn prometheus_targets(
        &self,
        req: Request<Incoming>,
        identity: &Identity,
        query: &Query,
    ) -> ApiResult<Response<Body>> {
        admin_only(identity, "get the scrape targets")?;
        let role = query.get("role").unwrap_or("pods");
        let kind = match role {
            "pods" => "Pod",
            "nodes" | "cadvisor" => "Node",
            other => {
                return Err(ApiError::bad_request(format!(
                    "role {other:?}: expected pods, nodes or cadvisor"
                )));
            }
        };
        let items = self
            .handlers
            .list_kind(kind, None, &Query::default())
            .await?;
        if role == "pods" {
            let pods: Vec<_> = items
                .into_iter()
                .filter_map(|o| match o {
                    rk8s_api::AnyObject::Pod(p) => Some(*p),
                    _ => None,
                })
                .collect();
            return ok(crate::metrics::pod_targets(&pods));
        }
        let nodes: Vec<_> = items
            .into_iter()
            .filter_map(|o| match o {
                rk8s_api::AnyObject::Node(n) => Some(*n),
                _ => None,
            })
            .collect();
        // The scraper reaches the nodes where it reached this server (HTTP/2
        // carries that in the URI, HTTP/1 in Host).
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| req.headers().get(header::HOST)?.to_str().ok())
            .ok_or_else(|| ApiError::bad_request("the request has no Host header"))?;
        let path = if role == "nodes" {
            "metrics"
        } else {
            "metrics/cadvisor"
        };
        ok(crate::metrics::node_targets(&nodes, host, path))
    }

    /// `GET /rk8s/v1/debug/actors`: the control plane's actors (`--enable-chaos`).
    fn debug_actors(&self, identity: &Identity) -> ApiResult<Response<Body>> {
        let chaos = self.chaos_for(identity)?;
        ok(serde_json::json!({"leader": self.leads(), "items": chaos.list()}))
    }

    /// `POST /rk8s/v1/debug/actors/kill`: kills one (`--enable-chaos`).
    async fn debug_kill(
        &self,
        req: Request<Incoming>,
        identity: &Identity,
    ) -> ApiResult<Response<Body>> {
        let chaos = self.chaos_for(identity)?;
        let body = read_body(req.into_body(), None).await?;
        let asked: KillRequest = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "body: {e} (expected {{\"kind\": K, \"name\": N}} or {{\"random\": true}})"
            ))
        })?;
        let target = match (&asked.kind, &asked.name, asked.random) {
            (Some(k), Some(n), false) => Some((k.as_str(), n.as_str())),
            (None, None, true) => None,
            _ => {
                return Err(ApiError::bad_request(
                    "name an actor (kind and name) or ask for a random one, not both",
                ));
            }
        };
        match chaos.kill(target) {
            Some((kind, name)) => ok(serde_json::json!({"kind": kind, "name": name})),
            None => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                match (target, self.leads()) {
                    (Some((k, n)), true) => format!("no actor {k}/{n}"),
                    (None, true) => "no actors".to_string(),
                    (_, false) => {
                        "this member does not lead: the control plane's actors run on the leader"
                            .to_string()
                    }
                },
            )),
        }
    }

    /// `pods/log` and `pods/exec`, forwarded to the node agent running the pod.
    async fn proxy(
        &self,
        mut req: Request<Incoming>,
        r: ResourceRequest,
        identity: &Identity,
        query: &Query,
    ) -> ApiResult<Response<Body>> {
        auth::authorize(identity, &r, query)?;
        let dialer = self.dialer()?;
        let target = crate::proxy::target(&self.handlers.registry, &r, query).await?;
        let node_req = crate::proxy::node_request(req.method(), req.headers(), &target)?;
        let upgrade = req
            .headers()
            .contains_key(header::UPGRADE)
            .then(|| hyper::upgrade::on(&mut req));
        let resp = dialer
            .send(&target.node, target.ip, target.port, node_req)
            .await?;
        Ok(crate::proxy::relay(upgrade, resp))
    }

    /// How this server reaches node agents.
    fn dialer(&self) -> ApiResult<&crate::proxy::NodeDialer> {
        self.node_dialer.get().ok_or_else(|| {
            ApiError::unavailable("this API server has no credentials for node agents")
        })
    }

    /// The secrets every member shares (the cluster CA).
    async fn secrets(&self) -> ApiResult<crate::bootstrap::secrets::ClusterSecrets> {
        crate::bootstrap::secrets::read(&self.store).await
    }

    /// The cluster CA and its hash (what `--ca-cert-hash` pins).
    async fn cluster_info(&self) -> ApiResult<Value> {
        let secrets = self.secrets().await?;
        let hash = secrets
            .ca
            .cert_hash()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        // Only the public half leaves the store.
        Ok(serde_json::json!({"caCert": secrets.ca.cert_pem, "caCertHash": hash}))
    }

    async fn health(&self, check: &str) -> Response<Body> {
        if check == "livez" {
            return text_response(StatusCode::OK, "ok");
        }
        // Ready when the store has a leader and answers a quorum read.
        let range = rk8s_raftstore::proto::RangeRequest {
            key: b"/registry/namespaces/default".to_vec(),
            count_only: true,
            ..Default::default()
        };
        let read =
            tokio::time::timeout(Duration::from_secs(2), self.store.range(range, true)).await;
        match read {
            Ok(Ok(_)) => text_response(StatusCode::OK, "ok"),
            Ok(Err(e)) => text_response(StatusCode::SERVICE_UNAVAILABLE, &format!("store: {e}")),
            Err(_) => text_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "store: no answer within 2s",
            ),
        }
    }

    async fn resource(
        &self,
        req: Request<Incoming>,
        r: ResourceRequest,
        identity: &Identity,
        query: &Query,
    ) -> ApiResult<Response<Body>> {
        let access = auth::authorize(identity, &r, query)?;
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if r.verb == Verb::Watch {
            return self.watch(&r, query, accept.as_deref()).await;
        }
        let limit = if r.verb.is_write() {
            &self.writes_inflight
        } else {
            &self.reads_inflight
        };
        let Ok(_permit) = limit.clone().try_acquire_owned() else {
            return Err(ApiError::too_many_requests(
                "too many requests, please try again later",
            ));
        };
        let length = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = match *req.method() {
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE => {
                read_body(req.into_body(), length).await?
            }
            _ => Bytes::new(),
        };
        let call = Call {
            identity,
            access,
            req: &r,
            query,
            body,
            content_type,
        };
        let h = &self.handlers;
        let reply: Reply = match r.verb {
            Verb::Get => h.get(&call, accept.as_deref()).await?,
            Verb::List => h.list(&call, accept.as_deref()).await?,
            Verb::Create => h.create(&call).await?,
            Verb::Update | Verb::Patch => h.update(&call).await?,
            Verb::Delete => h.delete(&call).await?,
            Verb::DeleteCollection => h.delete_collection(&call).await?,
            Verb::Watch => return Err(ApiError::no_route()),
        };
        Ok(json_response(reply.code, &reply.body, &reply.warnings))
    }

    /// `?watch=true`: a stream of `{"type": ..., "object": ...}` lines. A watch from a
    /// `resourceVersion` the server has not reached waits for it up to 3 s, then is a
    /// 504 `Too large resource version` before any stream starts.
    async fn watch(
        &self,
        r: &ResourceRequest,
        query: &Query,
        accept: Option<&str>,
    ) -> ApiResult<Response<Body>> {
        let kind = r.kind;
        crate::list_options::validate_list_options(query, true)?;
        let filter = Filter::from_query(&kind, query)?;
        let bookmarks = query.flag("allowWatchBookmarks");
        let as_table = table::wants_table(accept);
        let timeout = query
            .number("timeoutSeconds")?
            .map(|s| Duration::from_secs(s.unsigned_abs()));
        let rv = query.get("resourceVersion").unwrap_or("");
        // No resourceVersion (or "0"): the current state as ADDED events, then changes.
        let (initial, from) = if rv.is_empty() || rv == "0" {
            let listed = self
                .handlers
                .list_objects(r, &without_paging(query))
                .await?;
            (listed.items, listed.revision)
        } else {
            let asked = crate::list_options::requested_revision(rv)?;
            self.handlers.wait_until_fresh(&kind, asked).await?;
            let from = i64::try_from(asked)
                .map_err(|_| crate::watch::too_large_resource_version(asked, i64::MAX))?;
            (Vec::new(), from)
        };
        let prefix = kind.storage_prefix(r.namespace.as_deref());
        let cache = self
            .handlers
            .caches
            .get(kind.plural)
            .ok_or_else(ApiError::no_route)?;
        let mut sub = cache.subscribe(&prefix, from).await?;
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let encode = move |ty: &str, obj: &rk8s_api::AnyObject, json: Option<&Bytes>| -> Bytes {
            let object = if as_table {
                let rv = obj.metadata().resource_version.clone().unwrap_or_default();
                Bytes::from(
                    serde_json::to_vec(&table::table(
                        &kind,
                        std::slice::from_ref(obj),
                        &rv,
                        None,
                        None,
                    ))
                    .unwrap_or_default(),
                )
            } else {
                match json {
                    Some(j) => j.clone(),
                    None => Bytes::from(serde_json::to_vec(&obj.to_value()).unwrap_or_default()),
                }
            };
            let mut line = Vec::with_capacity(object.len() + 32);
            line.extend_from_slice(b"{\"type\":\"");
            line.extend_from_slice(ty.as_bytes());
            line.extend_from_slice(b"\",\"object\":");
            line.extend_from_slice(&object);
            line.extend_from_slice(b"}\n");
            Bytes::from(line)
        };
        tokio::spawn(async move {
            let _watching = crate::metrics::Watching::start(kind.plural);
            // A `timeoutSeconds` past what the clock can count means no deadline.
            let deadline = timeout.and_then(|t| tokio::time::Instant::now().checked_add(t));
            for obj in &initial {
                if filter.matches(obj) && tx.send(encode("ADDED", obj, None)).await.is_err() {
                    return;
                }
            }
            loop {
                let next = match deadline {
                    Some(d) => match tokio::time::timeout_at(d, sub.next(&kind)).await {
                        Ok(n) => n,
                        Err(_) => return,
                    },
                    None => tokio::select! {
                        n = sub.next(&kind) => n,
                        _ = tx.closed() => return,
                    },
                };
                let messages = match next {
                    Ok(m) => m,
                    Err(Some(e)) => {
                        let status = serde_json::to_value(e.to_status()).unwrap_or(Value::Null);
                        let line = format!("{{\"type\":\"ERROR\",\"object\":{status}}}\n");
                        let _ = tx.send(Bytes::from(line)).await;
                        return;
                    }
                    Err(None) => return,
                };
                for m in messages {
                    let line = match m {
                        Message::Progress(rev) if bookmarks => {
                            let obj = json!({"kind": kind.kind, "apiVersion": kind.api_version,
                                             "metadata": {"resourceVersion": rev.to_string()}});
                            Some(Bytes::from(format!(
                                "{{\"type\":\"BOOKMARK\",\"object\":{obj}}}\n"
                            )))
                        }
                        Message::Progress(_) => None,
                        Message::Change(c) if c.revision <= from => None,
                        Message::Change(c) => {
                            let now = c.object.as_ref().is_some_and(|o| filter.matches(o));
                            let before = c.prev.as_ref().is_some_and(|o| filter.matches(o));
                            let ty = match (c.object.is_some(), before, now) {
                                (true, false, true) => Some("ADDED"),
                                (true, true, true) => Some("MODIFIED"),
                                (true, true, false) | (false, true, _) => Some("DELETED"),
                                _ => None,
                            };
                            ty.and_then(|ty| c.shown().map(|o| encode(ty, o, Some(&c.json))))
                        }
                    };
                    if let Some(line) = line
                        && tx.send(line).await.is_err()
                    {
                        return;
                    }
                }
            }
        });
        let mut resp = Response::new(channel_body(rx));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(resp)
    }
}

/// The query's selectors alone (a watch's initial list reads everything they select).
fn without_paging(q: &Query) -> Query {
    let mut kept = form_urlencoded::Serializer::new(String::new());
    for key in ["labelSelector", "fieldSelector"] {
        if let Some(v) = q.get(key) {
            kept.append_pair(key, v);
        }
    }
    Query::parse(Some(&kept.finish()))
}

/// Serves the API on `listener` with TLS until the task is dropped.
pub async fn serve(api: Arc<ApiServer>, listener: TcpListener, tls: Arc<rustls::ServerConfig>) {
    rk8s_http::serve::serve_tls(listener, tls, move |req| {
        let api = api.clone();
        async move {
            match api.handle(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            }
        }
    })
    .await;
}

//! The HTTPS entry: the API server's state, authentication of every request but the
//! public ones, and dispatch by route to the endpoints ([`crate::routes`]); the TLS
//! accept loop is the shared one (`rk8s_http::serve`).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rk8s_api::object::kinds;
use rk8s_raftstore::server::Store;
use serde_json::Value;
use tokio::net::TcpListener;

use rk8s_http::body::json_response;
use rk8s_http::body::{Body, error_response};
use rk8s_http::debug::ActorControl;

use crate::audit::attributes::AUDIT_ID_HEADER;
use crate::audit::{Auditor, RequestInfo, User};
use crate::auth::{self, Identity};
use crate::caches::Caches;
use crate::custom::CustomKinds;
use crate::decode::MAX_BODY;
use crate::handlers::Handlers;
use crate::registry::Registry;
use crate::request::{Query, Route, route};
use crate::status::{ApiError, ApiResult};
use crate::{discovery, openapi};

/// The API server's shared state.
pub struct ApiServer {
    pub(crate) handlers: Handlers,
    pub(crate) store: Store,
    pub(crate) authenticator: auth::Authenticator,
    /// Requests being served, as kube-apiserver's `--max-requests-inflight` and
    /// `--max-mutating-requests-inflight` count them (watches are not counted).
    pub(crate) reads_inflight: Arc<tokio::sync::Semaphore>,
    pub(crate) writes_inflight: Arc<tokio::sync::Semaphore>,
    pub(crate) max_reads: usize,
    pub(crate) max_writes: usize,
    pub(crate) pod_cidrs: std::sync::OnceLock<crate::bootstrap::join::PodCidrs>,
    pub(crate) node_dialer: std::sync::OnceLock<crate::proxy::NodeDialer>,
    /// How long node agents' serving certificates are valid (a year unless set).
    pub(crate) signing_duration: std::sync::OnceLock<std::time::Duration>,
    pub(crate) chaos: std::sync::OnceLock<Arc<dyn ActorControl>>,
    /// The audit log, when one is kept (`--audit-policy-file`, `--audit-log-path`).
    pub(crate) audit: std::sync::OnceLock<Arc<Auditor>>,
    /// Whether callers without credentials reach health and version
    /// (`--anonymous-auth`, on by default as in kube-apiserver).
    pub(crate) anonymous: std::sync::atomic::AtomicBool,
}

/// A 200 with `v` as its JSON body.
pub(crate) fn ok(v: Value) -> ApiResult<Response<Body>> {
    Ok(json_response(StatusCode::OK, &v, &[]))
}

/// An aggregated discovery document, with its `ETag` (a hash of its bytes) and
/// `Vary: Accept`; 304 without a body when the client has it already
/// (`If-None-Match`), as kube-apiserver answers.
fn aggregated_response(
    doc: &Value,
    version: discovery::aggregated::Version,
    if_none_match: Option<&http::HeaderValue>,
) -> Response<Body> {
    let bytes = serde_json::to_vec(doc).unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let etag = format!("\"{}\"", rk8s_http::tls::hex(&digest.as_ref()[..16]));
    let fresh = if_none_match.is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        let mut r = Response::new(Body::default());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        rk8s_http::body::bytes_response(StatusCode::OK, bytes, version.content_type(), &[])
    };
    let headers = response.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(header::VARY, http::HeaderValue::from_static("Accept"));
    response
}

/// Refuses anyone but the admin to `what` (the endpoints outside the REST API).
pub(crate) fn admin_only(identity: &Identity, what: &str) -> ApiResult<()> {
    if identity.is_superuser() {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "user {:?} cannot {what}: admin only",
        identity.user()
    )))
}

/// Kubernetes' default limits of concurrent requests.
pub const MAX_READS_INFLIGHT: usize = 400;
/// See [`MAX_READS_INFLIGHT`].
pub const MAX_WRITES_INFLIGHT: usize = 200;
/// How many bytes of listed objects' protobuf messages the server keeps between lists
/// (about 30,000 pods' worth; see [`crate::listing::EncodedItems`]).
pub const ENCODED_ITEMS_BYTES: usize = 64 * 1024 * 1024;

/// Bodies over the limit are still read (and dropped), up to this much, so that a
/// client still sending gets its 413 rather than a broken connection.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

pub(crate) async fn read_body(mut body: Incoming, length: Option<u64>) -> ApiResult<Bytes> {
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
    let body = buf.freeze();
    crate::audit::keep_request_body(&body);
    Ok(body)
}

impl ApiServer {
    /// An API server over `store`; starts a watch cache per kind.
    pub fn new(store: Store) -> Arc<Self> {
        Self::with_limits(store, MAX_READS_INFLIGHT, MAX_WRITES_INFLIGHT)
    }

    /// An API server that answers 429 beyond `reads` concurrent reads or `writes`
    /// concurrent writes.
    pub fn with_limits(store: Store, reads: usize, writes: usize) -> Arc<Self> {
        let caches = Arc::new(Caches::new(store.clone(), kinds()));
        let registry = Registry::new(store.clone());
        let custom = Arc::new(CustomKinds::default());
        let service_account_key = Arc::new(std::sync::OnceLock::new());
        let listers = Arc::new(crate::lister::Listers::start(&registry, &caches));
        tokio::spawn(crate::custom::sync::run(
            registry.clone(),
            caches.clone(),
            custom.clone(),
        ));
        Arc::new(ApiServer {
            authenticator: auth::Authenticator::new(registry.clone(), service_account_key.clone()),
            handlers: Handlers {
                registry,
                caches,
                custom,
                encoded: Arc::new(crate::listing::EncodedItems::new(ENCODED_ITEMS_BYTES)),
                service_account_key,
                listers,
                default_tolerations: Arc::default(),
            },
            store,
            reads_inflight: Arc::new(tokio::sync::Semaphore::new(reads)),
            writes_inflight: Arc::new(tokio::sync::Semaphore::new(writes)),
            max_reads: reads,
            max_writes: writes,
            pod_cidrs: std::sync::OnceLock::new(),
            node_dialer: std::sync::OnceLock::new(),
            signing_duration: std::sync::OnceLock::new(),
            chaos: std::sync::OnceLock::new(),
            audit: std::sync::OnceLock::new(),
            anonymous: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// Sets the ranges joining nodes get (once; the default is 10.244.0.0/16 in /24s).
    pub fn set_pod_cidrs(&self, cidrs: crate::bootstrap::join::PodCidrs) {
        let _ = self.pod_cidrs.set(cidrs);
    }

    /// Sets how long new pods tolerate a node gone missing (once; 300 s each).
    pub fn set_default_tolerations(
        &self,
        seconds: crate::default_tolerations::DefaultTolerationSeconds,
    ) {
        let _ = self.handlers.default_tolerations.set(seconds);
    }

    /// Sets the key service-account tokens are signed and checked with (once).
    pub fn set_service_account_key(&self, key: crate::service_accounts::SigningKey) {
        let _ = self.handlers.service_account_key.set(key);
    }

    /// Turns the chaos endpoints on: the control plane's actors, listed and killed.
    pub fn set_chaos(&self, control: Arc<dyn ActorControl>) {
        let _ = self.chaos.set(control);
    }

    /// Whether callers without credentials reach health and version (on unless this
    /// says otherwise).
    pub fn set_anonymous_auth(&self, allowed: bool) {
        self.anonymous
            .store(allowed, std::sync::atomic::Ordering::Relaxed);
    }

    /// Keeps the audit log with `auditor` (once; without it, nothing is audited).
    pub fn set_audit(&self, auditor: Auditor) {
        let _ = self.audit.set(Arc::new(auditor));
    }

    /// Sets how this server reaches node agents for logs and exec (once; without it,
    /// those subresources answer 503).
    pub fn set_node_dialer(&self, dialer: crate::proxy::NodeDialer) {
        let _ = self.node_dialer.set(dialer);
    }

    /// Sets how long the node agents' serving certificates are valid (once; a year
    /// unless set).
    pub fn set_cluster_signing_duration(&self, validity: std::time::Duration) {
        let _ = self.signing_duration.set(validity);
    }

    /// The credential of the component of this process that runs as `user` (see
    /// [`crate::auth::Authenticator::component_token`]).
    pub fn component_token(&self, user: &str) -> ApiResult<String> {
        self.authenticator.component_token(user)
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
        let custom = &self.handlers.custom;
        let lookup = |group: &str, version: &str, plural: &str| custom.kind(group, version, plural);
        let mut routed = route(&method, &path, query.get("watch"), &lookup);
        // A custom resource this member has not heard of yet (its CRD was just
        // created, perhaps through another member): read its CRD and look again.
        if routed
            .as_ref()
            .is_err_and(|e| e.code == StatusCode::NOT_FOUND)
            && crate::custom::sync::refresh(
                &self.handlers.registry,
                &self.handlers.caches,
                custom,
                &path,
            )
            .await
        {
            routed = route(&method, &path, query.get("watch"), &lookup);
        }
        let counted = match &routed {
            Ok(Route::Resource(r)) => Some(r.clone()),
            _ => None,
        };
        let resp = match (routed, self.audit.get()) {
            (Ok(r), None) => self.dispatch(req, r, query).await,
            (Err(e), None) => Err(e),
            (routed, Some(auditor)) => Ok(self.dispatch_audited(auditor, req, routed, query).await),
        };
        let resp = resp.unwrap_or_else(|e| error_answer(&e));
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
        if let Some(answer) = self.public(&route, req.uri().path(), &query).await {
            return answer;
        }
        let identity = self.authenticate(&req).await?;
        self.serve_as(req, route, query, identity, None).await
    }

    /// The answer to a public endpoint: health and version, as in Kubernetes, and the
    /// cluster CA for joining nodes; `None` for the others.
    async fn public(
        &self,
        route: &Route,
        path: &str,
        query: &Query,
    ) -> Option<ApiResult<Response<Body>>> {
        let anonymous = self.anonymous.load(std::sync::atomic::Ordering::Relaxed);
        Some(match route {
            Route::Health(check) if anonymous => Ok(self.health(check, path, query).await),
            Route::Version if anonymous => ok(discovery::version()),
            Route::ClusterInfo => self.cluster_info().await.and_then(ok),
            _ => return None,
        })
    }

    /// Who makes `req`: its client certificate's user, else its bearer token's, or 401.
    async fn authenticate(&self, req: &Request<Incoming>) -> ApiResult<Identity> {
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let certificate = req
            .extensions()
            .get::<rk8s_http::serve::PeerCertificate>()
            .map(|c| c.0.clone());
        self.authenticator
            .authenticate(authorization, certificate.as_deref())
            .await
    }

    /// [`Self::dispatch`] with the audit log kept: the request is recorded once its
    /// user is known (a refused authentication as such), served, and recorded again
    /// with its answer, which carries the request's `Audit-Id`.
    async fn dispatch_audited(
        &self,
        auditor: &Auditor,
        req: Request<Incoming>,
        routed: ApiResult<Route>,
        query: Query,
    ) -> Response<Body> {
        let info = RequestInfo::of(&req, routed.as_ref().ok());
        let audit_id = HeaderValue::from_str(&info.audit_id).ok();
        let public = match &routed {
            Ok(route) => self.public(route, req.uri().path(), &query).await,
            Err(e) => Some(Err(e.clone())),
        };
        let answer = match (public, routed) {
            // Answered without authentication: recorded as whoever the credentials
            // name, if any, else as Kubernetes' anonymous user.
            (Some(answer), _) => {
                let user = self.audit_user_of_public(&req).await;
                match auditor.begin(info, user, false) {
                    Some(record) => {
                        record.received();
                        record.complete(answer).await
                    }
                    None => answer,
                }
            }
            (None, Ok(route)) => match self.authenticate(&req).await {
                Err(e) => {
                    auditor.unauthenticated(info, e.code.as_u16());
                    Err(e)
                }
                Ok(identity) => match auditor.begin(info, audit_user(&identity), true) {
                    Some(record) => {
                        record.received();
                        let served = self.serve_as(req, route, query, identity, Some(&record));
                        let answer = record.capturing(served).await;
                        record.complete(answer).await
                    }
                    None => self.serve_as(req, route, query, identity, None).await,
                },
            },
            (None, Err(e)) => Err(e),
        };
        let mut resp = answer.unwrap_or_else(|e| error_answer(&e));
        if let Some(id) = audit_id {
            resp.headers_mut().insert(AUDIT_ID_HEADER, id);
        }
        resp
    }

    /// The user of a request to a public endpoint, for the audit log: its
    /// credentials' when it has valid ones, else `system:anonymous`.
    async fn audit_user_of_public(&self, req: &Request<Incoming>) -> User {
        let has_credentials = req.headers().contains_key(header::AUTHORIZATION)
            || req
                .extensions()
                .get::<rk8s_http::serve::PeerCertificate>()
                .is_some();
        if has_credentials && let Ok(identity) = self.authenticate(req).await {
            return audit_user(&identity);
        }
        User::anonymous()
    }

    /// Serves `route` to `identity` (after its impersonation, if the request asks
    /// for one, noted in `audit`).
    async fn serve_as(
        &self,
        req: Request<Incoming>,
        route: Route,
        query: Query,
        mut identity: Identity,
        audit: Option<&crate::audit::Record>,
    ) -> ApiResult<Response<Body>> {
        if let Some(asked) = crate::users::impersonation(req.headers())? {
            identity = self.handlers.impersonate(&identity, &asked)?;
            if let Some(record) = audit {
                record.impersonated(audit_user(&identity));
            }
        }
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let discovery = matches!(
            route,
            Route::CoreVersions
                | Route::Groups
                | Route::Group(_)
                | Route::Resources { .. }
                | Route::OpenApiV2
                | Route::OpenApiV3Index
                | Route::OpenApiV3 { .. }
        );
        if discovery {
            self.handlers
                .authorize_path(&identity, "get", req.uri().path(), true)?;
        }
        let not_found = ApiError::no_route;
        let custom = &self.handlers.custom;
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        let aggregated = discovery::aggregated::asked(accept);
        match route {
            Route::CoreVersions | Route::Groups if let Some(version) = aggregated => {
                let core = matches!(route, Route::CoreVersions);
                let doc = discovery::aggregated::document(core, &custom.discovery(), version);
                let if_none_match = req.headers().get(header::IF_NONE_MATCH);
                Ok(aggregated_response(&doc, version, if_none_match))
            }
            Route::CoreVersions => ok(discovery::core_versions()),
            Route::Groups => ok(discovery::group_list(&custom.discovery())),
            Route::Group(g) => discovery::group(&g, &custom.discovery())
                .ok_or_else(not_found)
                .and_then(ok),
            Route::Resources { group, version } => {
                discovery::resource_list(&group, &version, &custom.discovery())
                    .ok_or_else(not_found)
                    .and_then(ok)
            }
            Route::OpenApiV2 => {
                let accept = req.headers().get(header::ACCEPT);
                Ok(self.openapi_v2(accept.and_then(|v| v.to_str().ok())))
            }
            Route::OpenApiV3Index => ok(crate::custom::openapi::v3_index_with(custom)),
            Route::OpenApiV3 { group, version } => openapi::v3(&group, &version)
                .or_else(|| crate::custom::openapi::v3(custom, &group, &version))
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
            Route::ResourceProxy(asked) => self.resource_proxy(req, &identity, asked).await,
            Route::ResourceMetrics(asked) => self.resource_metrics(&identity, asked, &query).await,
            Route::ComponentStatuses { name } => {
                let accept = req.headers().get(header::ACCEPT);
                let accept = accept.and_then(|v| v.to_str().ok());
                self.component_statuses(&identity, name, &query, accept)
                    .await
            }
            Route::PodPeers(asked) => self.pod_peers(&identity, asked, &query).await,
            Route::Review { kind, namespace } => self.review(req, &identity, kind, namespace).await,
            Route::Join | Route::MemberJoin => {
                self.join(req, route, &identity, authorization.as_deref())
                    .await
            }
            Route::ServingCert => self.serving_cert(req, &identity).await,
            Route::Metrics => self.metrics(&identity).await,
            Route::Snapshot => self.snapshot(&identity).await,
            Route::PrometheusTargets => self.prometheus_targets(req, &identity, &query).await,
            Route::DebugActors => self.debug_actors(&identity),
            Route::DebugKill => self.debug_kill(req, &identity).await,
            // Without anonymous access: for whom RBAC lets `get` them
            // (`system:public-info-viewer`: every authenticated user).
            Route::Health(check) => {
                self.handlers
                    .authorize_path(&identity, "get", req.uri().path(), true)?;
                Ok(self.health(check, req.uri().path(), &query).await)
            }
            Route::Version => {
                self.handlers
                    .authorize_path(&identity, "get", req.uri().path(), true)?;
                ok(discovery::version())
            }
            Route::ClusterInfo => Err(not_found()),
        }
    }
}

/// The response to an error: its `Status`, and, as kube-apiserver's
/// `ErrorNegotiated` does, a `Retry-After` header when the Status says when to retry
/// (the 504 of a too large resource version).
fn error_answer(e: &ApiError) -> Response<Body> {
    let mut resp = error_response(e);
    let retry = e.details.as_ref().and_then(|d| d.retry_after_seconds);
    if let Some(seconds) = retry.filter(|s| *s > 0) {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    resp
}

/// The audit log's name for `identity`.
fn audit_user(identity: &Identity) -> User {
    User {
        username: identity.user(),
        uid: identity.uid(),
        groups: identity.groups(),
    }
}

/// Serves the API on `listener` with TLS until the task is dropped, client
/// certificates verified with `clients` (see [`rk8s_http::client_certs`]).
pub async fn serve(
    api: Arc<ApiServer>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    clients: rk8s_http::tls::ClientCertificates,
) {
    rk8s_http::serve::serve_tls_checking(listener, tls, clients, handler(api)).await;
}

/// Connections to the API from this process (its control plane's clients), served on
/// the runtime this is called from.
pub fn in_process(api: Arc<ApiServer>) -> rk8s_http::loopback::Connector {
    rk8s_http::loopback::Connector::new(handler(api), tokio::runtime::Handle::current())
}

/// What answers each request of a connection.
fn handler(
    api: Arc<ApiServer>,
) -> impl Fn(Request<Incoming>) -> std::pin::Pin<Box<dyn Future<Output = Response<Body>> + Send>>
+ Clone
+ Send
+ Sync
+ 'static {
    move |req| {
        let api = api.clone();
        Box::pin(async move {
            match api.handle(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            }
        })
    }
}

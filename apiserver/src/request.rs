//! What a request asks for, read off its method, path and query the way Kubernetes'
//! `RequestInfo` does: `GET /apis/apps/v1/namespaces/prod/deployments/web/scale` is
//! verb `get` on `deployments` in group `apps`, namespace `prod`, name `web`,
//! subresource `scale`.

use std::borrow::Cow;

use http::Method;
use rk8s_api::ObjectKind;
use rk8s_api::object::kind_by_plural;

use crate::status::{ApiError, ApiResult};
use rk8s_http::query::is_true;

pub use rk8s_http::query::Query;

/// The subresources served by the node a pod runs on.
pub const NODE_SUBRESOURCES: [&str; 4] = ["log", "exec", "attach", "portforward"];

/// The verbs of Kubernetes' authorization model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// `GET` one object.
    Get,
    /// `GET` a collection.
    List,
    /// `GET` a collection with `watch=true`.
    Watch,
    /// `POST`.
    Create,
    /// `PUT`.
    Update,
    /// `PATCH`.
    Patch,
    /// `DELETE` one object.
    Delete,
    /// `DELETE` a collection.
    DeleteCollection,
}

impl Verb {
    /// The verb's name as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }

    /// The verb Kubernetes spells `name`, if it is one of the REST verbs.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Verb::Get,
            Verb::List,
            Verb::Watch,
            Verb::Create,
            Verb::Update,
            Verb::Patch,
            Verb::Delete,
            Verb::DeleteCollection,
        ]
        .into_iter()
        .find(|v| v.as_str() == name)
    }

    /// Whether the verb changes state.
    pub fn is_write(self) -> bool {
        !matches!(self, Verb::Get | Verb::List | Verb::Watch)
    }
}

/// A request for a resource.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceRequest {
    /// What is asked.
    pub verb: Verb,
    /// The kind addressed.
    pub kind: ObjectKind,
    /// The namespace in the path, if any.
    pub namespace: Option<String>,
    /// The object's name, if the path names one.
    pub name: Option<String>,
    /// `status`, `scale`, `binding`, ... if the path has one.
    pub subresource: Option<String>,
}

impl ResourceRequest {
    /// The object's name, or an error for a path without one.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// `pods`, `pods/status`: the resource as authorization sees it.
    pub fn resource(&self) -> String {
        match &self.subresource {
            Some(s) => format!("{}/{s}", self.kind.plural),
            None => self.kind.plural.to_string(),
        }
    }
}

/// What a path addresses.
#[derive(Clone, Debug, PartialEq)]
pub enum Route {
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/api/v1` or `/apis/<group>/<version>`: the resource list.
    Resources {
        /// The group (`""` for core).
        group: String,
        /// The version.
        version: String,
    },
    /// `/apis/<group>`: one group's versions.
    Group(String),
    /// A resource or subresource.
    Resource(ResourceRequest),
    /// `/version`.
    Version,
    /// `GET /rk8s/v1/cluster-info`: the cluster CA, for joining nodes (anonymous).
    ClusterInfo,
    /// `POST /rk8s/v1/join`: a bootstrap token becomes a node credential.
    Join,
    /// `POST /rk8s/v1/members`: a member bootstrap token becomes a store member's
    /// certificate (see [`crate::bootstrap::members`]).
    MemberJoin,
    /// `POST /rk8s/v1/serving-cert`: a node gets a serving certificate for its port
    /// 10250 from the cluster CA.
    ServingCert,
    /// `GET /rk8s/v1/debug/actors`: the control plane's actors (`--enable-chaos`).
    DebugActors,
    /// `POST /rk8s/v1/debug/actors/kill`, body `{"kind": K, "name": N}` or
    /// `{"random": true}`: kills one (`--enable-chaos`).
    DebugKill,
    /// `GET /rk8s/v1/snapshot`: a backup of the store (admin only; see
    /// [`crate::snapshots`]).
    Snapshot,
    /// `GET /metrics`: Prometheus' text exposition (admin only).
    Metrics,
    /// `GET /rk8s/v1/prometheus/targets`: Prometheus HTTP service discovery of the
    /// pods annotated `prometheus.io/scrape: "true"` (admin only).
    PrometheusTargets,
    /// `GET /api/v1/nodes/{node}/proxy/{path}`: the node agent's `/{path}`.
    NodeProxy {
        /// The node.
        node: String,
        /// The path on its agent, without the leading `/`.
        path: String,
    },
    /// `/api/v1/namespaces/{ns}/pods|services/{id}/proxy[/{path}]`, any method: HTTP
    /// to the pod or to one of the service's endpoints (see [`crate::locations`]).
    ResourceProxy(ProxyRequest),
    /// `GET /api/v1/componentstatuses[/{name}]`: the control plane's health
    /// ([`crate::routes::component_statuses`]).
    ComponentStatuses {
        /// The component (`None`: a list of all).
        name: Option<String>,
    },
    /// `GET /apis/metrics.k8s.io/v1beta1/...`: the resource metrics API.
    ResourceMetrics(MetricsRequest),
    /// `GET /apis/networking.rk8s.io/v1alpha1/[namespaces/{ns}/]podpeers[/{name}]`:
    /// the pods projected for NetworkPolicy ([`crate::routes::pod_peers`]).
    PodPeers(PeerRequest),
    /// `POST` of one of the review kinds of `authentication.k8s.io/v1` and
    /// `authorization.k8s.io/v1`, which are computed, never stored (see
    /// [`crate::routes::reviews`]).
    Review {
        /// Which review.
        kind: ReviewKind,
        /// The namespace (a LocalSubjectAccessReview's).
        namespace: Option<String>,
    },
    /// `/healthz`, `/livez`, `/readyz` (and their `/<check>` children).
    Health(&'static str),
    /// `/openapi/v2`.
    OpenApiV2,
    /// `/openapi/v3`: the index.
    OpenApiV3Index,
    /// `/openapi/v3/api/v1`, `/openapi/v3/apis/<group>/<version>`.
    OpenApiV3 {
        /// The group (`""` for core).
        group: String,
        /// The version.
        version: String,
    },
}

/// A request through `pods/proxy` or `services/proxy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyRequest {
    /// The namespace.
    pub namespace: String,
    /// `pods` or `services`.
    pub resource: &'static str,
    /// The pod or service, as the path names it: `name`, `name:port` or
    /// `scheme:name:port`.
    pub id: String,
    /// The path after `proxy`, as sent (still escaped; empty, or from a `/`).
    pub path: String,
}

/// The review kinds: asked with a `POST`, answered with their status, never stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReviewKind {
    /// `authentication.k8s.io/v1` TokenReview.
    TokenReview,
    /// `authentication.k8s.io/v1` SelfSubjectReview (`kubectl auth whoami`).
    SelfSubjectReview,
    /// `authorization.k8s.io/v1` SubjectAccessReview.
    SubjectAccessReview,
    /// `authorization.k8s.io/v1` LocalSubjectAccessReview (namespaced).
    LocalSubjectAccessReview,
    /// `authorization.k8s.io/v1` SelfSubjectAccessReview (`kubectl auth can-i`).
    SelfSubjectAccessReview,
    /// `authorization.k8s.io/v1` SelfSubjectRulesReview (`kubectl auth can-i --list`).
    SelfSubjectRulesReview,
}

impl ReviewKind {
    /// Every review kind.
    pub const ALL: [ReviewKind; 6] = [
        ReviewKind::TokenReview,
        ReviewKind::SelfSubjectReview,
        ReviewKind::SubjectAccessReview,
        ReviewKind::LocalSubjectAccessReview,
        ReviewKind::SelfSubjectAccessReview,
        ReviewKind::SelfSubjectRulesReview,
    ];

    /// The kind's name.
    pub fn kind(self) -> &'static str {
        match self {
            ReviewKind::TokenReview => "TokenReview",
            ReviewKind::SelfSubjectReview => "SelfSubjectReview",
            ReviewKind::SubjectAccessReview => "SubjectAccessReview",
            ReviewKind::LocalSubjectAccessReview => "LocalSubjectAccessReview",
            ReviewKind::SelfSubjectAccessReview => "SelfSubjectAccessReview",
            ReviewKind::SelfSubjectRulesReview => "SelfSubjectRulesReview",
        }
    }

    /// The API group (version `v1`).
    pub fn group(self) -> &'static str {
        match self {
            ReviewKind::TokenReview | ReviewKind::SelfSubjectReview => "authentication.k8s.io",
            _ => "authorization.k8s.io",
        }
    }

    /// The resource (`selfsubjectaccessreviews`).
    pub fn plural(self) -> &'static str {
        match self {
            ReviewKind::TokenReview => "tokenreviews",
            ReviewKind::SelfSubjectReview => "selfsubjectreviews",
            ReviewKind::SubjectAccessReview => "subjectaccessreviews",
            ReviewKind::LocalSubjectAccessReview => "localsubjectaccessreviews",
            ReviewKind::SelfSubjectAccessReview => "selfsubjectaccessreviews",
            ReviewKind::SelfSubjectRulesReview => "selfsubjectrulesreviews",
        }
    }

    /// Whether its objects live in a namespace.
    pub fn namespaced(self) -> bool {
        self == ReviewKind::LocalSubjectAccessReview
    }

    fn find(group: &str, plural: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.group() == group && k.plural() == plural)
    }
}

/// What a resource metrics API path asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricsRequest {
    /// `nodes[/{name}]`.
    Nodes {
        /// One node, or all.
        name: Option<String>,
    },
    /// `[namespaces/{ns}/]pods[/{name}]`.
    Pods {
        /// One namespace, or all.
        namespace: Option<String>,
        /// One pod, or all.
        name: Option<String>,
    },
}

/// What a PodPeer path asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRequest {
    /// One namespace, or all.
    pub namespace: Option<String>,
    /// One peer, or all.
    pub name: Option<String>,
    /// `?watch=true` on the collection.
    pub watch: bool,
}

impl PeerRequest {
    fn parse(rest: &[&str], watch: bool) -> Option<Self> {
        let s = |n: &&str| Some(n.to_string());
        let (namespace, name) = match rest {
            ["podpeers"] => (None, None),
            ["namespaces", ns, "podpeers"] => (s(ns), None),
            ["namespaces", ns, "podpeers", n] => (s(ns), s(n)),
            _ => return None,
        };
        Some(PeerRequest {
            namespace,
            name,
            watch,
        })
    }

    /// The verb, as authorization sees it.
    pub fn verb(&self) -> &'static str {
        match (self.watch, &self.name) {
            (true, _) => "watch",
            (false, Some(_)) => "get",
            (false, None) => "list",
        }
    }
}

impl MetricsRequest {
    fn parse(rest: &[&str]) -> Option<Self> {
        let name = |n: &&str| Some(n.to_string());
        Some(match rest {
            ["nodes"] => MetricsRequest::Nodes { name: None },
            ["nodes", n] => MetricsRequest::Nodes { name: name(n) },
            ["pods"] => MetricsRequest::Pods {
                namespace: None,
                name: None,
            },
            ["namespaces", ns, "pods"] => MetricsRequest::Pods {
                namespace: name(ns),
                name: None,
            },
            ["namespaces", ns, "pods", n] => MetricsRequest::Pods {
                namespace: name(ns),
                name: name(n),
            },
            _ => return None,
        })
    }
}

/// The value of one hexadecimal digit.
fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Decodes the percent-escapes of one path segment, as Go's URL parsing does for the
/// `req.URL.Path` that kube-apiserver's `RequestInfoFactory` splits: `w%65b` is `web`,
/// and `+` stays a `+` (form encoding is for queries only). The segment is decoded on
/// its own, so an escaped `/` (`%2F`) stays inside its segment and never adds one.
/// A malformed escape is a 400, with Go's wording (`invalid URL escape "%zz"`).
fn unescape_segment(segment: &str) -> ApiResult<Cow<'_, str>> {
    if !segment.contains('%') {
        return Ok(Cow::Borrowed(segment));
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hi = bytes.get(i + 1).copied().and_then(hex_digit);
        let lo = bytes.get(i + 2).copied().and_then(hex_digit);
        match (hi, lo) {
            (Some(hi), Some(lo)) => {
                out.push((hi << 4) | lo);
                i += 3;
            }
            _ => {
                let bad = &bytes[i..bytes.len().min(i + 3)];
                return Err(ApiError::bad_request(format!(
                    "invalid URL escape {:?}",
                    String::from_utf8_lossy(bad)
                )));
            }
        }
    }
    // Names and namespaces are DNS labels and subdomains: a segment that is not UTF-8
    // once decoded names nothing the server has.
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| ApiError::no_route())
}

/// Reads a request's route from its method, path (as sent: percent-escapes are
/// decoded here, one segment at a time) and `watch` parameter; resources that are not
/// built in are looked up with `custom` (group, version, plural: the served custom
/// kinds).
pub fn route(
    method: &Method,
    path: &str,
    watch: Option<&str>,
    custom: &dyn Fn(&str, &str, &str) -> Option<ObjectKind>,
) -> ApiResult<Route> {
    let raw: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let decoded = raw
        .iter()
        .map(|s| unescape_segment(s))
        .collect::<ApiResult<Vec<_>>>()?;
    let parts: Vec<&str> = decoded.iter().map(AsRef::as_ref).collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api"] => return Ok(Route::CoreVersions),
        ["apis"] => return Ok(Route::Groups),
        ["version"] => return Ok(Route::Version),
        ["rk8s", "v1", "cluster-info"] if method == Method::GET => return Ok(Route::ClusterInfo),
        ["rk8s", "v1", "join"] if method == Method::POST => return Ok(Route::Join),
        ["rk8s", "v1", "members"] if method == Method::POST => return Ok(Route::MemberJoin),
        ["rk8s", "v1", "serving-cert"] if method == Method::POST => {
            return Ok(Route::ServingCert);
        }
        ["rk8s", "v1", "debug", "actors"] if method == Method::GET => {
            return Ok(Route::DebugActors);
        }
        ["rk8s", "v1", "debug", "actors", "kill"] if method == Method::POST => {
            return Ok(Route::DebugKill);
        }
        ["rk8s", "v1", "snapshot"] if method == Method::GET => return Ok(Route::Snapshot),
        ["metrics"] if method == Method::GET => return Ok(Route::Metrics),
        ["rk8s", "v1", "prometheus", "targets"] if method == Method::GET => {
            return Ok(Route::PrometheusTargets);
        }
        ["healthz", ..] => return Ok(Route::Health("healthz")),
        ["livez", ..] => return Ok(Route::Health("livez")),
        ["readyz", ..] => return Ok(Route::Health("readyz")),
        ["openapi", "v2"] => return Ok(Route::OpenApiV2),
        ["openapi", "v3"] => return Ok(Route::OpenApiV3Index),
        ["openapi", "v3", "api", v] => {
            return Ok(Route::OpenApiV3 {
                group: String::new(),
                version: v.to_string(),
            });
        }
        ["openapi", "v3", "apis", g, v] => {
            return Ok(Route::OpenApiV3 {
                group: g.to_string(),
                version: v.to_string(),
            });
        }
        ["api", "v1", "nodes", node, "proxy", rest @ ..] => {
            if method != Method::GET {
                return Err(ApiError::method_not_allowed(method.as_str(), "nodes/proxy"));
            }
            // The agent's path is passed on as it was sent (still escaped): decoded, a
            // `%3F` or `%20` would change or break the request made to the agent.
            return Ok(Route::NodeProxy {
                node: node.to_string(),
                path: raw[raw.len() - rest.len()..].join("/"),
            });
        }
        [
            "api",
            "v1",
            "namespaces",
            ns,
            resource @ ("pods" | "services"),
            id,
            "proxy",
            ..,
        ] => {
            return Ok(Route::ResourceProxy(ProxyRequest {
                namespace: ns.to_string(),
                resource: if *resource == "pods" {
                    "pods"
                } else {
                    "services"
                },
                id: id.to_string(),
                path: rk8s_http::query::after_segments(path, 7).to_string(),
            }));
        }
        [
            "apis",
            rk8s_api::netpol::peer::GROUP,
            rk8s_api::netpol::peer::VERSION,
            rest @ ..,
        ] if !rest.is_empty() => {
            let watching = watch.is_some_and(is_true);
            let asked = PeerRequest::parse(rest, watching).ok_or_else(ApiError::no_route)?;
            if method != Method::GET {
                return Err(ApiError::method_not_allowed(
                    method.as_str(),
                    rk8s_api::netpol::peer::PLURAL,
                ));
            }
            if watching && asked.name.is_some() {
                return Err(ApiError::method_not_allowed(
                    "watch",
                    rk8s_api::netpol::peer::PLURAL,
                ));
            }
            return Ok(Route::PodPeers(asked));
        }
        ["api", "v1", "componentstatuses", rest @ ..] if rest.len() <= 1 => {
            if method != Method::GET {
                return Err(ApiError::method_not_allowed(
                    method.as_str(),
                    "componentstatuses",
                ));
            }
            if watch.is_some_and(is_true) {
                return Err(ApiError::method_not_allowed("watch", "componentstatuses"));
            }
            return Ok(Route::ComponentStatuses {
                name: rest.first().map(|n| n.to_string()),
            });
        }
        ["apis", "metrics.k8s.io", "v1beta1", rest @ ..] if !rest.is_empty() => {
            let asked = MetricsRequest::parse(rest).ok_or_else(ApiError::no_route)?;
            if method != Method::GET {
                return Err(ApiError::method_not_allowed(method.as_str(), rest[0]));
            }
            if watch.is_some_and(is_true) {
                return Err(ApiError::method_not_allowed("watch", rest[0]));
            }
            return Ok(Route::ResourceMetrics(asked));
        }
        ["apis", g, "v1", rest @ ..]
            if ReviewKind::find(g, rest.last().copied().unwrap_or("")).is_some() =>
        {
            let review = |kind: ReviewKind, namespace: Option<&str>| {
                if method != Method::POST {
                    return Err(ApiError::method_not_allowed(method.as_str(), kind.plural()));
                }
                Ok(Route::Review {
                    kind,
                    namespace: namespace.map(str::to_string),
                })
            };
            return match rest {
                [plural] => match ReviewKind::find(g, plural) {
                    Some(k) if !k.namespaced() => review(k, None),
                    _ => Err(ApiError::no_route()),
                },
                ["namespaces", ns, plural] => match ReviewKind::find(g, plural) {
                    Some(k) if k.namespaced() => review(k, Some(ns)),
                    _ => Err(ApiError::no_route()),
                },
                _ => Err(ApiError::no_route()),
            };
        }
        ["apis", g] => return Ok(Route::Group(g.to_string())),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route()),
    };
    if rest.is_empty() {
        return Ok(Route::Resources {
            group: group.to_string(),
            version: version.to_string(),
        });
    }
    // `namespaces/{ns}/{resource}...`, but `namespaces/{name}[/status]` is the
    // Namespace object itself.
    let (namespace, rest) = match rest {
        ["namespaces", ns, resource, tail @ ..]
            if *resource != "status" && *resource != "finalize" =>
        {
            (Some(ns.to_string()), {
                let mut v = vec![*resource];
                v.extend_from_slice(tail);
                v
            })
        }
        other => (None, other.to_vec()),
    };
    let (plural, name, subresource) = match rest.as_slice() {
        [r] => (*r, None, None),
        [r, n] => (*r, Some(n.to_string()), None),
        [r, n, s] => (*r, Some(n.to_string()), Some(s.to_string())),
        _ => return Err(ApiError::no_route()),
    };
    let kind = kind_by_plural(group, plural)
        .filter(|k| k.version == version)
        .or_else(|| rk8s_api::versions::alias_for(group, version, plural).map(|a| a.served))
        .or_else(|| custom(group, version, plural))
        .ok_or_else(ApiError::no_route)?;
    if namespace.is_some() && !kind.is_namespaced() {
        return Err(ApiError::no_route());
    }
    let collection = name.is_none();
    let verb = match *method {
        Method::GET if collection && watch.is_some_and(is_true) => Verb::Watch,
        Method::GET if collection => Verb::List,
        Method::GET => Verb::Get,
        // `POST .../pods/{name}/binding` creates a subresource of a named object.
        Method::POST if collection || subresource.is_some() => Verb::Create,
        Method::PUT if !collection => Verb::Update,
        Method::PATCH if !collection => Verb::Patch,
        Method::DELETE if collection => Verb::DeleteCollection,
        Method::DELETE => Verb::Delete,
        _ => {
            return Err(ApiError::method_not_allowed(method.as_str(), kind.plural));
        }
    };
    Ok(Route::Resource(ResourceRequest {
        verb,
        kind,
        namespace,
        name,
        subresource,
    }))
}

/// The resource request of `method path` (no custom kinds), for tests.
#[cfg(test)]
pub(crate) fn resource_request(method: &Method, path: &str) -> ResourceRequest {
    match route(method, path, None, &|_, _, _| None) {
        Ok(Route::Resource(r)) => r,
        other => panic!("{path}: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No custom kinds served.
    fn no_custom(_: &str, _: &str, _: &str) -> Option<ObjectKind> {
        None
    }

    fn resource(method: Method, path: &str) -> ResourceRequest {
        match route(&method, path, None, &no_custom).unwrap() {
            Route::Resource(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn paths_map_to_resources() {
        let r = resource(Method::GET, "/api/v1/namespaces/default/pods/web");
        assert_eq!(
            (
                r.verb,
                r.kind.plural,
                r.namespace.as_deref(),
                r.name.as_deref()
            ),
            (Verb::Get, "pods", Some("default"), Some("web"))
        );
        let r = resource(
            Method::PUT,
            "/apis/apps/v1/namespaces/prod/deployments/web/scale",
        );
        assert_eq!(
            (r.verb, r.subresource.as_deref()),
            (Verb::Update, Some("scale"))
        );
        let r = resource(Method::GET, "/api/v1/namespaces/kube-system");
        assert_eq!(
            (r.kind.plural, r.name.as_deref()),
            ("namespaces", Some("kube-system"))
        );
        let r = resource(Method::PUT, "/api/v1/namespaces/x/status");
        assert_eq!(
            (r.kind.plural, r.name.as_deref(), r.subresource.as_deref()),
            ("namespaces", Some("x"), Some("status"))
        );
        let r = resource(Method::GET, "/api/v1/pods");
        assert_eq!((r.verb, r.namespace), (Verb::List, None));
        let r = resource(Method::POST, "/api/v1/namespaces/d/pods/web/binding");
        assert_eq!(
            (r.verb, r.subresource.as_deref()),
            (Verb::Create, Some("binding"))
        );
        let r = resource(Method::DELETE, "/apis/batch/v1/namespaces/d/jobs");
        assert_eq!(r.verb, Verb::DeleteCollection);
        assert!(matches!(
            route(&Method::GET, "/api/v1/pods", Some("true"), &no_custom).unwrap(),
            Route::Resource(ResourceRequest {
                verb: Verb::Watch,
                ..
            })
        ));
    }

    #[test]
    fn unknown_paths_are_not_found() {
        for path in [
            "/api/v2/pods",
            "/apis/apps/v2/deployments",
            "/apis/apps/v1/pods",
            "/api/v1/namespaces/d/nodes/n",
            "/api/v1/namespaces/d/pods/web/log/extra",
            "/nope",
        ] {
            let e = route(&Method::GET, path, None, &no_custom).unwrap_err();
            assert_eq!(e.code, http::StatusCode::NOT_FOUND, "{path}");
        }
        let e = route(&Method::PUT, "/api/v1/pods", None, &no_custom).unwrap_err();
        assert_eq!(e.code, http::StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn percent_encoded_names_are_decoded_like_kube_apiserver_does() {
        let r = resource(Method::GET, "/api/v1/namespaces/default/pods/w%65b");
        assert_eq!(
            (r.verb, r.namespace.as_deref(), r.name.as_deref()),
            (Verb::Get, Some("default"), Some("web"))
        );
        let r = resource(Method::GET, "/api/v1/namespaces/default/services/a%2Eb");
        assert_eq!(r.name.as_deref(), Some("a.b"));
        // The fixed parts of a path are decoded too, and `+` is not a space.
        let r = resource(Method::GET, "/api/v1/namespaces/d%65fault/pod%73/a+b");
        assert_eq!(
            (r.kind.plural, r.namespace.as_deref(), r.name.as_deref()),
            ("pods", Some("default"), Some("a+b"))
        );
    }

    #[test]
    fn an_escaped_slash_stays_inside_its_segment() {
        let r = resource(Method::GET, "/api/v1/namespaces/default/pods/a%2Fstatus");
        assert_eq!(
            (r.verb, r.name.as_deref(), r.subresource.as_deref()),
            (Verb::Get, Some("a/status"), None)
        );
        let r = resource(Method::GET, "/api/v1/namespaces/default%2Fpods");
        assert_eq!(
            (r.kind.plural, r.name.as_deref()),
            ("namespaces", Some("default/pods"))
        );
    }

    #[test]
    fn malformed_escapes_are_bad_requests() {
        for (path, bad) in [
            ("/api/v1/namespaces/default/pods/a%zz", "\"%zz\""),
            ("/api/v1/namespaces/default/pods/a%4", "\"%4\""),
            ("/api/v1/namespaces/default/pods/%", "\"%\""),
            ("/api/v1/namespaces/default/pods/%+1", "\"%+1\""),
        ] {
            let e = route(&Method::GET, path, None, &no_custom).unwrap_err();
            assert_eq!(e.code, http::StatusCode::BAD_REQUEST, "{path}");
            assert_eq!(e.message, format!("invalid URL escape {bad}"), "{path}");
        }
        // Escapes that decode to bytes that are not UTF-8 name nothing.
        let e = route(
            &Method::GET,
            "/api/v1/namespaces/default/pods/%ff",
            None,
            &no_custom,
        )
        .unwrap_err();
        assert_eq!(e.code, http::StatusCode::NOT_FOUND);
    }

    #[test]
    fn pod_peers_are_read_only_and_watched_as_collections() {
        let peers = |method: &Method, path: &str, watch: Option<&str>| {
            route(method, path, watch, &no_custom)
        };
        assert_eq!(
            peers(
                &Method::GET,
                "/apis/networking.rk8s.io/v1alpha1/podpeers",
                Some("1")
            )
            .unwrap(),
            Route::PodPeers(PeerRequest {
                namespace: None,
                name: None,
                watch: true,
            })
        );
        let one = peers(
            &Method::GET,
            "/apis/networking.rk8s.io/v1alpha1/namespaces/x/podpeers/a",
            None,
        )
        .unwrap();
        let Route::PodPeers(one) = one else {
            panic!("{one:?}")
        };
        assert_eq!(
            (one.namespace.as_deref(), one.name.as_deref(), one.verb()),
            (Some("x"), Some("a"), "get")
        );
        for (method, watch) in [(Method::DELETE, None), (Method::GET, Some("true"))] {
            let e = peers(
                &method,
                "/apis/networking.rk8s.io/v1alpha1/namespaces/x/podpeers/a",
                watch,
            )
            .unwrap_err();
            assert_eq!(e.code, http::StatusCode::METHOD_NOT_ALLOWED);
        }
        assert!(peers(&Method::GET, "/apis/networking.rk8s.io/v1alpha1/pods", None).is_err());
    }

    #[test]
    fn node_proxy_paths_are_passed_on_still_escaped() {
        assert_eq!(
            route(
                &Method::GET,
                "/api/v1/nodes/n%31/proxy/logs/a%3Fb%20c",
                None,
                &no_custom
            )
            .unwrap(),
            Route::NodeProxy {
                node: "n1".into(),
                path: "logs/a%3Fb%20c".into(),
            }
        );
    }

    #[test]
    fn pod_and_service_proxies_keep_the_path_after_proxy_as_sent() {
        let no_custom = |_: &str, _: &str, _: &str| None;
        let proxied = |path: &str| match route(&Method::POST, path, None, &no_custom).unwrap() {
            Route::ResourceProxy(p) => p,
            other => panic!("{other:?}"),
        };
        let p = proxied("/api/v1/namespaces/d/services/https:web:443/proxy/a%3Fb/c/");
        assert_eq!(
            (
                p.namespace.as_str(),
                p.resource,
                p.id.as_str(),
                p.path.as_str()
            ),
            ("d", "services", "https:web:443", "/a%3Fb/c/")
        );
        assert_eq!(proxied("/api/v1/namespaces/d/pods/p/proxy").path, "");
        assert_eq!(proxied("/api/v1/namespaces/d/pods/p:80/proxy/").path, "/");
    }
}

//! What the audit log reads off a request before it is served: its audit ID, URI,
//! verb, what it addresses (kube-apiserver's `RequestInfo`), where it came from and
//! its user agent.

use std::net::SocketAddr;

use http::{Method, Request, header};
use jiff::Timestamp;

use super::policy::Resource;
use crate::request::{MetricsRequest, Route, Verb};

/// The header a client (or a proxy in front) may name the audit ID with; the server
/// answers every audited request with it (`audit.k8s.io/v1` `HeaderAuditID`).
pub const AUDIT_ID_HEADER: &str = "audit-id";

/// kube-apiserver keeps this much of a user agent, then `...TRUNCATED`.
const MAX_USER_AGENT: usize = 1024;

/// The longest audit ID taken from a client; a longer one is replaced by a new one.
const MAX_AUDIT_ID: usize = 128;

/// Subresources that stay open as long as the client reads (kube-apiserver's
/// `BasicLongRunningRequestCheck`; the verbs `watch` and `proxy` are the others).
const LONG_RUNNING_SUBRESOURCES: [&str; 5] = ["attach", "exec", "proxy", "log", "portforward"];

/// The credentials a request carried, for the message of a refused authentication.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// An `Authorization: Bearer …` header.
    pub bearer: bool,
    /// An `Authorization: Basic …` header.
    pub basic: bool,
    /// A client certificate.
    pub x509: bool,
}

impl Credentials {
    /// kube-apiserver's message for a refused authentication (`getAuthMethods`).
    pub fn failure_message(self) -> String {
        let tried: Vec<&str> = [
            (self.basic, "basic"),
            (self.bearer, "bearer"),
            (self.x509, "x509"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if tried.is_empty() {
            "Authentication failed, no credentials provided".into()
        } else {
            format!("Authentication failed, attempted: {}", tried.join(", "))
        }
    }
}

/// Everything the log knows of a request before it is served.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    /// The request's audit ID: the client's `Audit-ID` header, else a new UUID.
    pub audit_id: String,
    /// When the request arrived.
    pub received: Timestamp,
    /// The path and query as sent.
    pub request_uri: String,
    /// The URL path.
    pub path: String,
    /// Kubernetes' verb for a resource request, the lowercase method otherwise.
    pub verb: String,
    /// What a resource request addresses.
    pub resource: Option<Resource>,
    /// Whether the request stays open (watches, logs, exec, proxy): logged when its
    /// response starts and again when it ends.
    pub long_running: bool,
    /// `X-Forwarded-For`, then `X-Real-Ip`, then the peer's address (as
    /// `k8s.io/apimachinery/pkg/util/net.SourceIPs` lists them).
    pub source_ips: Vec<String>,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// The request body's media type.
    pub content_type: String,
    /// The credentials it carried.
    pub credentials: Credentials,
}

impl RequestInfo {
    /// What `req` asks for, as `route` (when the path has one) reads it. The peer's
    /// address is taken from the request's extensions (a [`SocketAddr`]) when the
    /// connection put one there.
    pub fn of<B>(req: &Request<B>, route: Option<&Route>) -> Self {
        let headers = req.headers();
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let audit_id = text(AUDIT_ID_HEADER)
            .map(str::trim)
            .filter(|id| !id.is_empty() && id.len() <= MAX_AUDIT_ID)
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
        let mut user_agent = text(header::USER_AGENT.as_str()).unwrap_or("").to_string();
        if user_agent.len() > MAX_USER_AGENT {
            let mut cut = MAX_USER_AGENT;
            while !user_agent.is_char_boundary(cut) {
                cut -= 1;
            }
            user_agent.truncate(cut);
            user_agent.push_str("...TRUNCATED");
        }
        let authorization = text(header::AUTHORIZATION.as_str()).unwrap_or("").trim();
        let scheme = authorization.split(' ').next().unwrap_or("");
        let credentials = Credentials {
            bearer: scheme.eq_ignore_ascii_case("bearer") && authorization.contains(' '),
            basic: scheme.eq_ignore_ascii_case("basic"),
            x509: req
                .extensions()
                .get::<rk8s_http::serve::PeerCertificate>()
                .is_some(),
        };
        let (verb, resource, long_running) = attributes(req.method(), route);
        RequestInfo {
            audit_id,
            received: Timestamp::now(),
            request_uri: req.uri().path_and_query().map_or_else(
                || req.uri().path().to_string(),
                |pq| pq.as_str().to_string(),
            ),
            path: req.uri().path().to_string(),
            verb,
            resource,
            long_running,
            source_ips: source_ips(
                text("x-forwarded-for"),
                text("x-real-ip"),
                req.extensions().get::<SocketAddr>().map(SocketAddr::ip),
            ),
            user_agent,
            content_type: text(header::CONTENT_TYPE.as_str())
                .unwrap_or("")
                .to_string(),
            credentials,
        }
    }
}

/// The verb, the resource and whether the request is long-running, as
/// kube-apiserver's `RequestInfoFactory` and long-running check read them.
fn attributes(method: &Method, route: Option<&Route>) -> (String, Option<Resource>, bool) {
    let method_verb = || method.as_str().to_ascii_lowercase();
    let resource = |group: &str, version: &str, plural: &str| Resource {
        group: group.into(),
        version: version.into(),
        resource: plural.into(),
        ..Resource::default()
    };
    match route {
        Some(Route::Resource(r)) => {
            let subresource = r.subresource.clone().unwrap_or_default();
            let long_running =
                r.verb == Verb::Watch || LONG_RUNNING_SUBRESOURCES.contains(&subresource.as_str());
            let target = Resource {
                subresource,
                namespace: r.namespace.clone().unwrap_or_default(),
                name: r.name.clone().unwrap_or_default(),
                ..resource(r.kind.group, r.kind.version, r.kind.plural)
            };
            (r.verb.as_str().to_string(), Some(target), long_running)
        }
        Some(Route::Review { kind, namespace }) => {
            let target = Resource {
                namespace: namespace.clone().unwrap_or_default(),
                ..resource(kind.group(), "v1", kind.plural())
            };
            ("create".into(), Some(target), false)
        }
        Some(Route::ResourceMetrics(asked)) => {
            let (plural, namespace, name) = match asked {
                MetricsRequest::Nodes { name } => ("nodes", None, name),
                MetricsRequest::Pods { namespace, name } => ("pods", namespace.as_ref(), name),
            };
            let target = Resource {
                namespace: namespace.cloned().unwrap_or_default(),
                name: name.clone().unwrap_or_default(),
                ..resource("metrics.k8s.io", "v1beta1", plural)
            };
            let verb = if name.is_some() { "get" } else { "list" };
            (verb.into(), Some(target), false)
        }
        Some(Route::ComponentStatuses { name }) => {
            let target = Resource {
                name: name.clone().unwrap_or_default(),
                ..resource("", "v1", "componentstatuses")
            };
            let verb = if name.is_some() { "get" } else { "list" };
            (verb.into(), Some(target), false)
        }
        Some(Route::PodPeers(asked)) => {
            let target = Resource {
                namespace: asked.namespace.clone().unwrap_or_default(),
                name: asked.name.clone().unwrap_or_default(),
                ..resource(
                    rk8s_api::netpol::peer::GROUP,
                    rk8s_api::netpol::peer::VERSION,
                    rk8s_api::netpol::peer::PLURAL,
                )
            };
            (asked.verb().into(), Some(target), asked.watch)
        }
        Some(Route::NodeProxy { node, .. }) => {
            let target = Resource {
                subresource: "proxy".into(),
                name: node.clone(),
                ..resource("", "v1", "nodes")
            };
            (proxy_verb(method).into(), Some(target), true)
        }
        Some(Route::ResourceProxy(asked)) => {
            let target = Resource {
                subresource: "proxy".into(),
                namespace: asked.namespace.clone(),
                name: asked.id.clone(),
                ..resource("", "v1", asked.resource)
            };
            (proxy_verb(method).into(), Some(target), true)
        }
        _ => (method_verb(), None, false),
    }
}

/// The verb of a proxy request, by its method (kube-apiserver's `RequestInfoFactory`).
fn proxy_verb(method: &Method) -> &'static str {
    match *method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "get",
    }
}

/// The addresses a request came through: `X-Forwarded-For`'s, then `X-Real-Ip` if it
/// is not the last of those, then the peer's if it is not the last so far (all but the
/// peer's can be set by the client).
fn source_ips(
    forwarded: Option<&str>,
    real_ip: Option<&str>,
    peer: Option<std::net::IpAddr>,
) -> Vec<String> {
    let mut ips: Vec<std::net::IpAddr> = forwarded
        .unwrap_or("")
        .split(',')
        .filter_map(|ip| ip.trim().parse().ok())
        .collect();
    if let Some(real) = real_ip.and_then(|ip| ip.trim().parse().ok())
        && !ips.contains(&real)
    {
        ips.push(real);
    }
    if let Some(peer) = peer
        && ips.last() != Some(&peer)
    {
        ips.push(peer);
    }
    ips.into_iter().map(|ip| ip.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::route;

    fn info(method: Method, uri: &str, headers: &[(&str, &str)]) -> RequestInfo {
        let mut builder = Request::builder().method(method.clone()).uri(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let mut req = builder.body(()).unwrap();
        req.extensions_mut()
            .insert(SocketAddr::from(([192, 0, 2, 7], 50000)));
        let query = rk8s_http::query::Query::parse(req.uri().query());
        let routed = route(&method, req.uri().path(), query.get("watch"), &|_, _, _| {
            None
        })
        .ok();
        RequestInfo::of(&req, routed.as_ref())
    }

    #[test]
    fn resource_requests_are_read_as_authorization_reads_them() {
        let i = info(
            Method::GET,
            "/apis/apps/v1/namespaces/prod/deployments/web/scale?pretty=true",
            &[],
        );
        assert_eq!(i.verb, "get");
        assert_eq!(
            i.request_uri,
            "/apis/apps/v1/namespaces/prod/deployments/web/scale?pretty=true"
        );
        assert_eq!(
            i.resource,
            Some(Resource {
                group: "apps".into(),
                version: "v1".into(),
                resource: "deployments".into(),
                subresource: "scale".into(),
                namespace: "prod".into(),
                name: "web".into(),
            })
        );
        assert!(!i.long_running);
        assert_eq!(i.source_ips, ["192.0.2.7"]);
        assert_eq!(i.audit_id.len(), 36, "a UUID");

        let watch = info(Method::GET, "/api/v1/pods?watch=true", &[]);
        assert_eq!(watch.verb, "watch");
        assert!(watch.long_running);
        let log = info(Method::GET, "/api/v1/namespaces/d/pods/web/log", &[]);
        assert!(log.long_running);
        assert_eq!(log.resource.unwrap().subresource, "log");
        let create = info(Method::POST, "/api/v1/namespaces/d/configmaps", &[]);
        assert_eq!(create.verb, "create");
        assert_eq!(create.resource.unwrap().name, "");
    }

    #[test]
    fn other_requests_have_the_method_as_verb_and_no_resource() {
        let i = info(Method::GET, "/healthz", &[]);
        assert_eq!((i.verb.as_str(), i.resource), ("get", None));
        let review = info(
            Method::POST,
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            &[],
        );
        assert_eq!(review.verb, "create");
        assert_eq!(
            review.resource.unwrap().resource,
            "selfsubjectaccessreviews"
        );
    }

    #[test]
    fn headers_give_the_audit_id_the_source_addresses_and_the_credentials() {
        let long_agent = "k".repeat(2000);
        let i = info(
            Method::GET,
            "/api",
            &[
                ("audit-id", "abc-123"),
                ("x-forwarded-for", "203.0.113.1, 198.51.100.2"),
                ("x-real-ip", "198.51.100.2"),
                ("authorization", "Bearer xyz"),
                ("user-agent", &long_agent),
            ],
        );
        assert_eq!(i.audit_id, "abc-123");
        assert_eq!(i.source_ips, ["203.0.113.1", "198.51.100.2", "192.0.2.7"]);
        assert_eq!(i.user_agent.len(), 1024 + "...TRUNCATED".len());
        assert_eq!(
            i.credentials.failure_message(),
            "Authentication failed, attempted: bearer"
        );
        assert_eq!(
            Credentials::default().failure_message(),
            "Authentication failed, no credentials provided"
        );
        let twice = source_ips(Some("192.0.2.7"), None, Some([192, 0, 2, 7].into()));
        assert_eq!(twice, ["192.0.2.7"]);
    }
}

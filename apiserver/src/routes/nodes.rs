//! What the API server forwards to node agents: `pods/log`, `pods/exec`,
//! `pods/attach`, `pods/portforward`, `nodes/{name}/proxy/...`, `pods/proxy` and
//! `services/proxy`, and the resource metrics API from the nodes' summaries.

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use rk8s_http::body::Body;

use crate::auth::Identity;
use crate::rbac::{Attributes, Target};
use crate::request::{MetricsRequest, ProxyRequest, Query, ResourceRequest, Verb};
use crate::server::{ApiServer, ok};
use crate::status::{ApiError, ApiResult};

/// The one path of a node's agent the activation controller may read through
/// `nodes/proxy` (its activity stream): an RBAC rule cannot name a subresource's
/// path, so its `get nodes/proxy` grant is narrowed here, keyed on its identity
/// (docs/configuration.md). Without it, the grant would reach every path of
/// 10250 (`containerLogs`, `exec`…).
const ACTIVATION_PATH: &str = "ingress/activity";

/// Whether `identity` may read `path` of a node's agent (RBAC allowing).
fn path_allowed(identity: &Identity, path: &str) -> bool {
    let activation =
        rk8s_api::identities::controller_user(rk8s_api::identities::controller::ACTIVATION);
    identity.user() != activation || path == ACTIVATION_PATH
}

impl ApiServer {
    /// `GET /api/v1/nodes/{node}/proxy/{path}`: the node agent's `/{path}` (for whom
    /// may `get` `nodes/proxy`).
    pub(crate) async fn node_proxy(
        &self,
        req: Request<Incoming>,
        identity: &Identity,
        node: String,
        path: String,
    ) -> ApiResult<Response<Body>> {
        let r = ResourceRequest {
            verb: Verb::Get,
            kind: rk8s_api::object::kind_by_plural("", "nodes").ok_or_else(ApiError::no_route)?,
            namespace: None,
            name: Some(node.clone()),
            subresource: Some("proxy".to_string()),
        };
        match identity {
            // A node reads no other node's agent.
            Identity::Node(_) => return Err(crate::auth::denied(identity, &r)),
            _ => self.handlers.authorize(identity, &r, &Query::default())?,
        };
        if !path_allowed(identity, &path) {
            let why = format!("only the path {ACTIVATION_PATH} is allowed to this controller");
            return Err(crate::auth::denied_because(identity, &r, Some(&why)));
        }
        let target =
            crate::proxy::node_target(&self.handlers.registry, &node, &path, req.uri().query())
                .await?;
        // No upgrade is passed on: the answer is relayed without the client's side
        // of a connection to splice (exec and port forwarding have their routes).
        let node_req = crate::proxy::node_request(req.method(), &http::HeaderMap::new(), &target)?;
        let resp = self
            .dialer()?
            .send(&target.node, target.ip, target.port, node_req)
            .await?;
        Ok(crate::proxy::relay(None, resp))
    }

    /// The resource metrics API, from the nodes' summaries (for whom RBAC lets `get`
    /// or `list` `pods` or `nodes` of `metrics.k8s.io`; `view` does).
    pub(crate) async fn resource_metrics(
        &self,
        identity: &Identity,
        asked: MetricsRequest,
        query: &Query,
    ) -> ApiResult<Response<Body>> {
        let (resource, namespace, name) = match &asked {
            MetricsRequest::Nodes { name } => ("nodes", None, name.as_deref()),
            MetricsRequest::Pods { namespace, name } => {
                ("pods", namespace.as_deref(), name.as_deref())
            }
        };
        let a = Attributes {
            verb: if name.is_some() { "get" } else { "list" },
            namespace,
            target: Target::Resource {
                group: crate::discovery::METRICS_GROUP,
                resource,
                subresource: None,
                name,
            },
        };
        if !self.handlers.may(identity, &a)? {
            return Err(a.forbidden(&identity.user()));
        }
        let dialer = self.dialer()?;
        crate::resource_metrics::serve(&self.handlers, dialer, &asked, query)
            .await
            .and_then(ok)
    }

    /// `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`, forwarded to the
    /// node agent running the pod.
    pub(crate) async fn proxy(
        &self,
        mut req: Request<Incoming>,
        r: ResourceRequest,
        identity: &Identity,
        query: &Query,
    ) -> ApiResult<Response<Body>> {
        self.handlers.authorize(identity, &r, query)?;
        // A WebSocket reaches into the pod with a GET: kube-apiserver asks for
        // `create` too (AuthorizePodWebsocketUpgradeCreatePermission), as a POST would.
        let upgrading = req.headers().contains_key(header::UPGRADE);
        if upgrading
            && r.verb == Verb::Get
            && matches!(
                r.subresource.as_deref(),
                Some("exec" | "attach" | "portforward")
            )
        {
            let as_create = ResourceRequest {
                verb: Verb::Create,
                ..r.clone()
            };
            self.handlers.authorize(identity, &as_create, query)?;
        }
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

    /// `pods/{id}/proxy/{path}` and `services/{id}/proxy/{path}`, any method: the
    /// request passed to the pod (the service's endpoint) through its node's agent,
    /// which dials it, and its answer (or upgraded connection) back, as
    /// kube-apiserver's proxy subresources. For whom RBAC lets the method's verb on
    /// `pods/proxy` or `services/proxy`; never a node.
    pub(crate) async fn resource_proxy(
        &self,
        mut req: Request<Incoming>,
        identity: &Identity,
        asked: ProxyRequest,
    ) -> ApiResult<Response<Body>> {
        let r = ResourceRequest {
            verb: proxy_verb(req.method()),
            kind: rk8s_api::object::kind_by_plural("", asked.resource)
                .ok_or_else(ApiError::no_route)?,
            namespace: Some(asked.namespace.clone()),
            name: Some(asked.id.clone()),
            subresource: Some("proxy".to_string()),
        };
        match identity {
            Identity::Node(_) => return Err(crate::auth::denied(identity, &r)),
            _ => self.handlers.authorize(identity, &r, &Query::default())?,
        };
        // kube's proxyRedirectsforRootPath: the root is reached with a slash, so
        // that the pod's relative links resolve under the proxy path.
        let method = req.method().clone();
        if asked.path.is_empty() && (method == Method::GET || method == Method::HEAD) {
            let query = req
                .uri()
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            return Response::builder()
                .status(StatusCode::MOVED_PERMANENTLY)
                .header(header::LOCATION, format!("{}/{query}", req.uri().path()))
                .body(Body::default())
                .map_err(|e| ApiError::internal(e.to_string()));
        }
        let registry = &self.handlers.registry;
        let at = match asked.resource {
            "pods" => crate::locations::pod(registry, &asked.namespace, &asked.id).await?,
            _ => crate::locations::service(registry, &asked.namespace, &asked.id).await?,
        };
        let path = format!(
            "podProxy/{}/{}/{}/{}/{}/{}{}",
            at.namespace, at.pod, at.uid, at.scheme, at.ip, at.port, asked.path
        );
        let target =
            crate::proxy::node_target(registry, &at.node, &path, req.uri().query()).await?;
        let upgrade = req
            .headers()
            .contains_key(header::UPGRADE)
            .then(|| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let node_req = crate::proxy::forwarded_request(&parts, &target, body)?;
        let resp = self
            .dialer()?
            .send(&target.node, target.ip, target.port, node_req)
            .await?;
        let prefix = format!(
            "/api/v1/namespaces/{}/{}/{}/proxy",
            asked.namespace, asked.resource, asked.id
        );
        let mut out = crate::proxy::relay(upgrade, resp);
        crate::proxy::relocate(out.headers_mut(), &prefix);
        Ok(out)
    }

    /// How this server reaches node agents.
    pub(crate) fn dialer(&self) -> ApiResult<&crate::proxy::NodeDialer> {
        self.node_dialer.get().ok_or_else(|| {
            ApiError::unavailable("this API server has no credentials for node agents")
        })
    }
}

/// The verb a proxied request is authorized for, by its method (kube-apiserver's
/// `RequestInfoFactory`).
fn proxy_verb(method: &Method) -> Verb {
    match *method {
        Method::POST => Verb::Create,
        Method::PUT => Verb::Update,
        Method::PATCH => Verb::Patch,
        Method::DELETE => Verb::Delete,
        _ => Verb::Get,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_activation_controller_reads_only_the_activity_stream_of_a_node() {
        let user =
            rk8s_api::identities::controller_user(rk8s_api::identities::controller::ACTIVATION);
        let activation = Identity::User(crate::users::User::new(user, Vec::new()));
        assert!(path_allowed(&activation, "ingress/activity"));
        for other in [
            "containerLogs/ns/pod/c",
            "exec/ns/pod/c",
            "ingress/activity/x",
            "ingress",
        ] {
            assert!(!path_allowed(&activation, other), "{other}");
        }
        assert!(path_allowed(&Identity::Admin, "containerLogs/ns/pod/c"));
    }
}

//! What the API server forwards to node agents: `pods/log`, `pods/exec`,
//! `nodes/{name}/proxy/...`, and the resource metrics API from the nodes' summaries.

use http::{Request, Response, header};
use hyper::body::Incoming;
use rk8s_http::body::Body;

use crate::auth::{self, Identity};
use crate::request::{MetricsRequest, Query, ResourceRequest};
use crate::server::{ApiServer, admin_only, ok};
use crate::status::{ApiError, ApiResult};

impl ApiServer {
    /// `GET /api/v1/nodes/{node}/proxy/{path}`: the node agent's `/{path}` (admin only).
    pub(crate) async fn node_proxy(
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
    pub(crate) async fn resource_metrics(
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

    /// `pods/log` and `pods/exec`, forwarded to the node agent running the pod.
    pub(crate) async fn proxy(
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
    pub(crate) fn dialer(&self) -> ApiResult<&crate::proxy::NodeDialer> {
        self.node_dialer.get().ok_or_else(|| {
            ApiError::unavailable("this API server has no credentials for node agents")
        })
    }
}

//! The endpoints of joining, outside the Kubernetes API: `GET /rk8s/v1/cluster-info`
//! (anonymous: the cluster CA), `POST /rk8s/v1/join` (a node), `POST /rk8s/v1/members`
//! (a store member), `POST /rk8s/v1/serving-cert` (a node's serving certificate).

use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use rk8s_http::body::{Body, json_response};
use serde_json::Value;

use crate::auth::{self, Identity};
use crate::request::Route;
use crate::server::{ApiServer, read_body};
use crate::status::{ApiError, ApiResult};

impl ApiServer {
    /// `POST /rk8s/v1/join` and `POST /rk8s/v1/members`: a bootstrap token becomes a node
    /// credential or a store member's certificate.
    pub(crate) async fn join(
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
            let member_ca = self.signing(member_ca);
            let joined =
                crate::bootstrap::members::join(&self.store, &member_ca, identity, &bearer, &body)
                    .await?;
            serde_json::to_value(&joined)
        };
        let value = value.map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(json_response(StatusCode::CREATED, &value, &[]))
    }

    /// `POST /rk8s/v1/serving-cert`: a node's serving certificate from the node CA.
    pub(crate) async fn serving_cert(
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
        let ca = self.signing(ca);
        let cert = crate::bootstrap::join::serving_cert(&ca, identity, &body)?;
        let value = serde_json::to_value(&cert).map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(json_response(StatusCode::CREATED, &value, &[]))
    }

    /// `ca` issuing certificates for `--cluster-signing-duration`, when it is set.
    fn signing(&self, ca: crate::bootstrap::pki::ClusterCa) -> crate::bootstrap::pki::ClusterCa {
        match self.signing_duration.get() {
            Some(validity) => ca.with_leaf_validity(*validity),
            None => ca,
        }
    }

    /// The secrets every member shares (the cluster CA).
    pub(crate) async fn secrets(&self) -> ApiResult<crate::bootstrap::secrets::ClusterSecrets> {
        crate::bootstrap::secrets::read(&self.store).await
    }

    /// The cluster CA and its hash (what `--ca-cert-hash` pins).
    pub(crate) async fn cluster_info(&self) -> ApiResult<Value> {
        let secrets = self.secrets().await?;
        let hash = secrets
            .ca
            .cert_hash()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        // Only the public half leaves the store.
        Ok(serde_json::json!({"caCert": secrets.ca.cert_pem, "caCertHash": hash}))
    }
}

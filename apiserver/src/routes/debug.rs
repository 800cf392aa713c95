//! The chaos endpoints (`--enable-chaos`, admin only): `GET /rk8s/v1/debug/actors`
//! lists the control plane's actors, `POST /rk8s/v1/debug/actors/kill` kills one.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use rk8s_http::body::Body;

use crate::auth::Identity;
use rk8s_http::debug::ActorControl;

use crate::server::{ApiServer, admin_only, ok, read_body};
use crate::status::{ApiError, ApiResult};

/// What `POST /rk8s/v1/debug/actors/kill` takes.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KillRequest {
    kind: Option<String>,
    name: Option<String>,
    #[serde(default)]
    random: bool,
}

impl ApiServer {
    /// The control plane's actors, when chaos is on and the caller is the admin.
    pub(crate) fn chaos_for(&self, identity: &Identity) -> ApiResult<&Arc<dyn ActorControl>> {
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
    pub(crate) fn leads(&self) -> bool {
        self.store.leadership().borrow().is_self
    }

    /// `GET /rk8s/v1/debug/actors`: the control plane's actors (`--enable-chaos`).
    pub(crate) fn debug_actors(&self, identity: &Identity) -> ApiResult<Response<Body>> {
        let chaos = self.chaos_for(identity)?;
        ok(serde_json::json!({"leader": self.leads(), "items": chaos.list()}))
    }

    /// `POST /rk8s/v1/debug/actors/kill`: kills one (`--enable-chaos`).
    pub(crate) async fn debug_kill(
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
}

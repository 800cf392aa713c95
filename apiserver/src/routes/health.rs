//! `/healthz`, `/livez`, `/readyz`: public, as in Kubernetes.

use std::time::Duration;

use http::{Response, StatusCode};
use rk8s_http::body::{Body, text_response};

use crate::server::ApiServer;

impl ApiServer {
    pub(crate) async fn health(&self, check: &str) -> Response<Body> {
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
}

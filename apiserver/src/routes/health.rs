//! `/healthz`, `/livez`, `/readyz`: public, as in Kubernetes. Each is a list of named
//! checks, as kube-apiserver's are: `ok` when all pass, the list with `?verbose`
//! (`[+]ping ok`, ..., `readyz check passed`), 500 and the list when one fails (its
//! reason in the log, not the answer), `?exclude=CHECK` to leave one out, and each
//! check alone at `/readyz/CHECK` (404 for a check there is not).

use std::time::Duration;

use http::{Response, StatusCode};
use rk8s_http::body::{Body, text_response};
use rk8s_http::query::Query;

use crate::server::ApiServer;

/// The checks of each endpoint: the process answers (`ping`), its log is written
/// (`log`: tracing writes to stderr, never blocks), the store has a leader and
/// answers a quorum read (`etcd`, the name kube-apiserver gives its store's check).
/// Liveness does not ask the store: a member that lost its quorum is alive, and
/// restarting it would not bring the quorum back.
fn checks(endpoint: &str) -> &'static [&'static str] {
    match endpoint {
        "livez" => &["ping", "log"],
        _ => &["ping", "log", "etcd"],
    }
}

impl ApiServer {
    /// The answer to `path` under `endpoint` (`healthz`, `livez`, `readyz`).
    pub(crate) async fn health(&self, endpoint: &str, path: &str, query: &Query) -> Response<Body> {
        let all = checks(endpoint);
        let prefix = format!("/{endpoint}");
        let one = path
            .strip_prefix(&prefix)
            .map(|rest| rest.trim_matches('/'))
            .filter(|rest| !rest.is_empty());
        if let Some(name) = one {
            let Some(check) = all.iter().find(|c| **c == name) else {
                return text_response(StatusCode::NOT_FOUND, "404 page not found\n");
            };
            return match self.check(check).await {
                Ok(()) => text_response(StatusCode::OK, "ok"),
                Err(e) => text_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("internal server error: {e}\n"),
                ),
            };
        }
        let excluded: Vec<&str> = query
            .pairs()
            .iter()
            .filter(|(k, _)| k == "exclude")
            .map(|(_, v)| v.as_str())
            .collect();
        let mut lines = String::new();
        let mut failed = false;
        for check in all.iter().filter(|c| !excluded.contains(c)) {
            match self.check(check).await {
                Ok(()) => lines.push_str(&format!("[+]{check} ok\n")),
                Err(e) => {
                    tracing::warn!("{endpoint} check {check} failed: {e}");
                    lines.push_str(&format!("[-]{check} failed: reason withheld\n"));
                    failed = true;
                }
            }
        }
        for name in excluded {
            lines.push_str(&format!("[+]{name} excluded: ok\n"));
        }
        if failed {
            lines.push_str(&format!("{endpoint} check failed\n"));
            return text_response(StatusCode::INTERNAL_SERVER_ERROR, &lines);
        }
        if query.get("verbose").is_some() {
            lines.push_str(&format!("{endpoint} check passed\n"));
            return text_response(StatusCode::OK, &lines);
        }
        text_response(StatusCode::OK, "ok")
    }

    /// Runs the check `name`.
    pub(crate) async fn check(&self, name: &str) -> Result<(), String> {
        if name != "etcd" {
            return Ok(());
        }
        let range = rk8s_raftstore::proto::RangeRequest {
            key: b"/registry/namespaces/default".to_vec(),
            count_only: true,
            ..Default::default()
        };
        let read =
            tokio::time::timeout(Duration::from_secs(2), self.store.range(range, true)).await;
        match read {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("store: {e}")),
            Err(_) => Err("store: no answer within 2s".into()),
        }
    }
}

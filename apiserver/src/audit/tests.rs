//! One request's events from policy to log line, through the writer thread.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use super::log::tests::Memory;
use super::*;
use crate::request::route;
use crate::status::ApiError;

const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  nonResourceURLs: ["/healthz*"]
- level: RequestResponse
  resources: [{group: "", resources: [configmaps]}]
- level: Request
  resources: [{group: "", resources: [secrets]}]
  omitStages: [RequestReceived]
- level: Metadata
"#;

fn info(method: Method, uri: &str) -> RequestInfo {
    let req = Request::builder()
        .method(method.clone())
        .uri(uri)
        .header("content-type", "application/json")
        .header("user-agent", "kubectl/v1.33.0")
        .body(())
        .unwrap();
    let query = rk8s_http::query::Query::parse(req.uri().query());
    let routed = route(&method, req.uri().path(), query.get("watch"), &|_, _, _| {
        None
    })
    .ok();
    RequestInfo::of(&req, routed.as_ref())
}

fn admin() -> User {
    User {
        username: "admin".into(),
        uid: None,
        groups: vec!["system:masters".into(), "system:authenticated".into()],
    }
}

fn json_response(code: StatusCode, v: &Value) -> Response<rk8s_http::body::Body> {
    rk8s_http::body::json_response(code, v, &[])
}

/// Runs `serve` with an auditor over [`POLICY`] and returns the lines written.
async fn logged<F, Fut>(serve: F) -> Vec<Value>
where
    F: FnOnce(Auditor) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let memory = Memory::default();
    let policy = Policy::load("policy.yaml", POLICY).unwrap();
    let (auditor, writer) = Auditor::with_writer(policy, Box::new(memory.clone())).unwrap();
    serve(auditor).await;
    writer.join().unwrap();
    let lines = memory.0.lock().unwrap().clone();
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn a_create_is_logged_when_received_and_when_complete_with_both_bodies() {
    let sent = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
        "data": {"a": "1"}});
    let stored = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "default", "uid": "u-1"}, "data": {"a": "1"}});
    let (sent_c, stored_c) = (sent.clone(), stored.clone());
    let events = logged(|auditor| async move {
        let (sent, stored) = (sent_c, stored_c);
        let record = auditor
            .begin(
                info(Method::POST, "/api/v1/namespaces/default/configmaps"),
                admin(),
                true,
            )
            .unwrap();
        record.received();
        let result = record
            .capturing(async {
                // What the handler reads, kept as it reads it.
                keep_request_body(&Bytes::from(sent.to_string()));
                Ok(json_response(StatusCode::CREATED, &stored))
            })
            .await;
        let resp = record.complete(result).await.unwrap();
        // The body the client gets is whole.
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), stored);
    })
    .await;
    assert_eq!(events.len(), 2, "{events:#?}");
    let (received, complete) = (&events[0], &events[1]);
    assert_eq!(received["stage"], "RequestReceived");
    assert_eq!(
        received["stageTimestamp"], received["requestReceivedTimestamp"],
        "a RequestReceived event is stamped when the request came"
    );
    assert!(received.get("responseStatus").is_none());
    assert!(received.get("requestObject").is_none());
    assert_eq!(complete["stage"], "ResponseComplete");
    assert_eq!(complete["auditID"], received["auditID"]);
    assert_eq!(complete["level"], "RequestResponse");
    assert_eq!(complete["verb"], "create");
    assert_eq!(complete["user"]["username"], "admin");
    assert_eq!(complete["userAgent"], "kubectl/v1.33.0");
    assert_eq!(
        complete["objectRef"],
        json!({"resource": "configmaps", "namespace": "default", "name": "settings",
               "apiVersion": "v1"})
    );
    assert_eq!(
        complete["responseStatus"],
        json!({"metadata": {}, "code": 201})
    );
    assert_eq!(complete["requestObject"], sent);
    assert_eq!(complete["responseObject"], stored);
    assert_eq!(
        complete["annotations"],
        json!({"authorization.k8s.io/decision": "allow"})
    );
}

#[tokio::test]
async fn omitted_stages_and_level_none_write_nothing() {
    let events = logged(|auditor| async move {
        assert!(
            auditor
                .begin(
                    info(Method::GET, "/healthz/ready"),
                    User::anonymous(),
                    false
                )
                .is_none()
        );
        let record = auditor
            .begin(
                info(Method::GET, "/api/v1/namespaces/default/secrets/token"),
                admin(),
                true,
            )
            .unwrap();
        record.received();
        let secret = json!({"kind": "Secret", "data": {"t": "c2VjcmV0"}});
        let result = record
            .capturing(async { Ok(json_response(StatusCode::OK, &secret)) })
            .await;
        record.complete(result).await.unwrap();
    })
    .await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["stage"], "ResponseComplete");
    assert_eq!(events[0]["level"], "Request");
    // A read has no request body, and `Request` does not log the response.
    assert!(events[0].get("requestObject").is_none());
    assert!(events[0].get("responseObject").is_none());
}

#[tokio::test]
async fn errors_carry_their_status_and_the_authorizers_refusal_is_annotated() {
    let events = logged(|auditor| async move {
        let record = auditor
            .begin(
                info(Method::GET, "/api/v1/namespaces/default/configmaps/x"),
                admin(),
                true,
            )
            .unwrap();
        let refused = ApiError::forbidden(
            "configmaps \"x\" is forbidden: User \"bob\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"default\"",
        );
        let result = record.complete(Err(refused)).await;
        assert_eq!(result.unwrap_err().code, StatusCode::FORBIDDEN);
        let record = auditor
            .begin(info(Method::GET, "/api/v1/namespaces/default/pods/x"), admin(), true)
            .unwrap();
        let _ = record
            .complete(Err(ApiError::not_found(
                &rk8s_api::object::kind_by_plural("", "pods").unwrap(),
                "x",
            )))
            .await;
    })
    .await;
    let complete: Vec<&Value> = events
        .iter()
        .filter(|e| e["stage"] == "ResponseComplete")
        .collect();
    assert_eq!(complete.len(), 2);
    let forbidden = complete[0];
    assert_eq!(
        forbidden["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
    assert_eq!(forbidden["responseStatus"]["code"], 403);
    assert_eq!(forbidden["responseStatus"]["status"], "Failure");
    assert_eq!(forbidden["responseStatus"]["reason"], "Forbidden");
    // At RequestResponse the Status answered is the response object.
    assert_eq!(forbidden["responseObject"]["kind"], "Status");
    let missing = complete[1];
    assert_eq!(missing["level"], "Metadata");
    assert_eq!(missing["responseStatus"]["reason"], "NotFound");
    assert_eq!(missing["responseStatus"]["details"]["name"], "x");
    assert_eq!(
        missing["annotations"]["authorization.k8s.io/decision"],
        "allow"
    );
    assert!(missing.get("responseObject").is_none());
}

#[tokio::test]
async fn a_watch_is_logged_when_it_starts_and_when_it_ends() {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let events = logged(|auditor| async move {
        let record = auditor
            .begin(
                info(Method::GET, "/api/v1/configmaps?watch=true"),
                admin(),
                true,
            )
            .unwrap();
        let resp = Response::new(rk8s_http::body::channel_body(rx));
        let resp = record.complete(Ok(resp)).await.unwrap();
        tx.send(Bytes::from_static(b"{}\n")).await.unwrap();
        drop(tx);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"{}\n");
    })
    .await;
    let stages: Vec<&str> = events.iter().filter_map(|e| e["stage"].as_str()).collect();
    assert_eq!(stages, ["ResponseStarted", "ResponseComplete"]);
    assert_eq!(events[0]["verb"], "watch");
    assert_eq!(events[0]["responseStatus"]["code"], 200);
    // A stream's body is never read for the log.
    assert!(events[1].get("responseObject").is_none());
}

#[tokio::test]
async fn a_refused_authentication_is_one_response_started_event_without_user() {
    let events = logged(|auditor| async move {
        let req = Request::get("/api/v1/namespaces/default/pods")
            .header("authorization", "Bearer nope")
            .body(())
            .unwrap();
        let query = rk8s_http::query::Query::parse(None);
        let routed = route(
            req.method(),
            req.uri().path(),
            query.get("watch"),
            &|_, _, _| None,
        );
        auditor.unauthenticated(RequestInfo::of(&req, routed.as_ref().ok()), 401);
    })
    .await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e["stage"], "ResponseStarted");
    assert_eq!(e["user"], json!({}));
    assert_eq!(
        e["responseStatus"],
        json!({"metadata": {}, "message": "Authentication failed, attempted: bearer", "code": 401})
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_left_out_and_noted() {
    let big = "x".repeat(MAX + 1);
    let events = logged(|auditor| async move {
        let record = auditor
            .begin(
                info(Method::POST, "/api/v1/namespaces/default/configmaps"),
                admin(),
                true,
            )
            .unwrap();
        let sent = Bytes::from(format!("{{\"data\":{{\"a\":\"{big}\"}}}}"));
        let result = record
            .capturing(async {
                keep_request_body(&sent);
                let mut resp = Response::new(Full::new(sent.clone()).boxed());
                *resp.status_mut() = StatusCode::CREATED;
                Ok(resp)
            })
            .await;
        let resp = record.complete(result).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), sent.len(), "the client still gets all of it");
    })
    .await;
    let complete = events.last().unwrap();
    assert_eq!(complete["annotations"]["audit.k8s.io/truncated"], "true");
    assert!(complete.get("requestObject").is_none());
    assert!(complete.get("responseObject").is_none());
}

const MAX: usize = event::MAX_BODY_BYTES;

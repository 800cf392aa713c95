//! The audit of one request while it is served: its `RequestReceived` event, the
//! request body kept as the handler reads it, and at the end its `ResponseComplete`
//! event (or, for a long-running request, `ResponseStarted` when its response begins
//! and `ResponseComplete` when its body ends), as kube-apiserver's `WithAudit` filter
//! writes them.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, SizeHint};
use jiff::Timestamp;
use rk8s_http::body::Body;
use serde_json::Value;

use super::attributes::RequestInfo;
use super::event::{Captured, Event, MAX_BODY_BYTES, ResponseStatus, TRUNCATED};
use super::log::Sink;
use super::policy::{Decision, Level, Stage, User};
use crate::status::{ApiError, ApiResult};

/// kube-apiserver's annotation of the authorizer's decision.
pub const DECISION: &str = "authorization.k8s.io/decision";

tokio::task_local! {
    /// Where the request body read while serving an audited request goes.
    static REQUEST_BODY: Arc<OnceLock<Bytes>>;
    /// The annotations admission adds to an audited request's event.
    static ANNOTATIONS: Arc<std::sync::Mutex<BTreeMap<String, String>>>;
}

/// The most annotations admission adds to one event, and the longest value kept.
const MAX_ANNOTATIONS: usize = 32;
const MAX_ANNOTATION_BYTES: usize = 10 * 1024;

/// Adds `annotations` to the audit event of the request being served (kube's
/// `AddAuditAnnotation`; PodSecurity's `audit` level reports through it). A no-op for
/// a request that is not audited.
pub fn annotate(annotations: &BTreeMap<String, String>) {
    if annotations.is_empty() {
        return;
    }
    let _ = ANNOTATIONS.try_with(|slot| {
        let mut kept = slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (k, v) in annotations {
            if kept.len() >= MAX_ANNOTATIONS && !kept.contains_key(k) {
                break;
            }
            let mut v = v.clone();
            if v.len() > MAX_ANNOTATION_BYTES {
                let mut end = MAX_ANNOTATION_BYTES;
                while !v.is_char_boundary(end) {
                    end -= 1;
                }
                v.truncate(end);
            }
            kept.insert(k.clone(), v);
        }
    });
}

/// Keeps `body` for the audit log when the request being served is audited at a
/// level that logs it (called where request bodies are read; otherwise a no-op).
pub fn keep_request_body(body: &Bytes) {
    let _ = REQUEST_BODY.try_with(|slot| slot.set(body.clone()));
}

/// The audit of one request being served.
#[derive(Debug)]
pub struct Record {
    sink: Sink,
    info: Arc<RequestInfo>,
    user: Arc<User>,
    impersonated: OnceLock<Arc<User>>,
    decision: Decision,
    body: Option<Arc<OnceLock<Bytes>>>,
    annotations: Arc<std::sync::Mutex<BTreeMap<String, String>>>,
    authorized: bool,
}

/// Whether an error is the authorizer's refusal (its messages say `User "…" cannot
/// …`); other 403s come from admission, after authorization allowed the request.
fn refused_by_authorizer(e: &ApiError) -> bool {
    e.code == StatusCode::FORBIDDEN
        && e.message.contains("User \"")
        && e.message.contains(" cannot ")
}

impl Record {
    /// A record for a request the policy logs at `decision`; `authorized` when the
    /// request goes through authorization (its decision is then annotated).
    pub(crate) fn new(
        sink: Sink,
        info: RequestInfo,
        user: User,
        decision: Decision,
        authorized: bool,
    ) -> Self {
        // A create or update's body names the object (objectRef); at `Request` and
        // above every body of a resource request is logged.
        let wants_body = info.resource.is_some()
            && (decision.level >= Level::Request
                || matches!(info.verb.as_str(), "create" | "update"));
        Record {
            sink,
            info: Arc::new(info),
            user: Arc::new(user),
            impersonated: OnceLock::new(),
            decision,
            body: wants_body.then(|| Arc::new(OnceLock::new())),
            annotations: Arc::default(),
            authorized,
        }
    }

    /// The request's audit ID.
    pub fn audit_id(&self) -> &str {
        &self.info.audit_id
    }

    /// Notes the user the request impersonates.
    pub fn impersonated(&self, user: User) {
        let _ = self.impersonated.set(Arc::new(user));
    }

    /// Serves `serving`, keeping the request body it reads and the annotations
    /// admission adds.
    pub async fn capturing<F: Future>(&self, serving: F) -> F::Output {
        let annotated = ANNOTATIONS.scope(self.annotations.clone(), serving);
        match &self.body {
            Some(slot) => REQUEST_BODY.scope(slot.clone(), annotated).await,
            None => annotated.await,
        }
    }

    fn event(&self, stage: Stage, at: Timestamp, status: Option<ResponseStatus>) -> Event {
        Event {
            info: self.info.clone(),
            level: self.decision.level,
            stage,
            stage_timestamp: at,
            user: self.user.clone(),
            impersonated: self.impersonated.get().cloned(),
            response_status: status,
            request_body: None,
            response_body: None,
            omit_managed_fields: self.decision.omit_managed_fields,
            annotations: BTreeMap::new(),
        }
    }

    fn emit(&self, event: Event) {
        if !self.decision.omit_stages.contains(event.stage) {
            self.sink.send(event);
        }
    }

    /// Writes the `RequestReceived` event (unless the policy omits it).
    pub fn received(&self) {
        self.emit(self.event(Stage::RequestReceived, self.info.received, None));
    }

    /// Writes the events of the request's end (`ResponseComplete`; a long-running
    /// request's `ResponseStarted` now and its `ResponseComplete` when its body ends)
    /// and gives `result` back, its body read (and put back) when it is logged.
    pub async fn complete(self, result: ApiResult<Response<Body>>) -> ApiResult<Response<Body>> {
        let status = match &result {
            Ok(resp) => ResponseStatus::code(resp.status().as_u16()),
            Err(e) => ResponseStatus::failure(
                e.code.as_u16(),
                e.reason,
                &e.message,
                e.details
                    .as_deref()
                    .and_then(|d| serde_json::to_value(d).ok()),
            ),
        };
        let mut done = self.event(Stage::ResponseComplete, Timestamp::now(), Some(status));
        done.annotations.extend(
            self.annotations
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        if self.authorized {
            let refused = result.as_ref().is_err_and(refused_by_authorizer);
            let decision = if refused { "forbid" } else { "allow" };
            done.annotations.insert(DECISION.into(), decision.into());
        }
        match self.body.as_ref().and_then(|slot| slot.get()) {
            Some(bytes) if bytes.len() > MAX_BODY_BYTES => {
                let logged = self.decision.level >= Level::Request;
                if logged {
                    done.annotations.insert(TRUNCATED.into(), "true".into());
                }
            }
            Some(bytes) => {
                done.request_body = Some(Captured::Bytes {
                    bytes: bytes.clone(),
                    content_type: self.info.content_type.clone(),
                });
            }
            None => {}
        }
        if self.info.long_running {
            let mut started = done.clone();
            started.stage = Stage::ResponseStarted;
            self.emit(started);
            return match result {
                Ok(resp) if !self.decision.omit_stages.contains(Stage::ResponseComplete) => {
                    // The stream ends when its body is dropped: sent, or the client gone.
                    Ok(resp.map(|inner| {
                        AuditedBody {
                            inner,
                            done: Some((self.sink.clone(), done)),
                        }
                        .boxed()
                    }))
                }
                other => {
                    done.stage_timestamp = Timestamp::now();
                    self.emit(done);
                    other
                }
            };
        }
        let logs_response =
            self.decision.level >= Level::RequestResponse && self.info.resource.is_some();
        let result = match result {
            Ok(resp) if logs_response => {
                let (resp, body) = read_response(resp).await;
                match body {
                    Some(body) => done.response_body = Some(body),
                    None => {
                        done.annotations.insert(TRUNCATED.into(), "true".into());
                    }
                }
                Ok(resp)
            }
            Err(e) if logs_response => {
                let mut status = serde_json::to_value(e.to_status()).unwrap_or(Value::Null);
                status["kind"] = "Status".into();
                status["apiVersion"] = "v1".into();
                done.response_body = Some(Captured::Value(status));
                Err(e)
            }
            other => other,
        };
        done.stage_timestamp = Timestamp::now();
        self.emit(done);
        result
    }
}

/// The response's body for the log when it is whole and small enough (a body of
/// known length: not a stream), with the response, its body put back.
async fn read_response(resp: Response<Body>) -> (Response<Body>, Option<Captured>) {
    let known = hyper::body::Body::size_hint(resp.body()).exact();
    if known.is_none_or(|n| n > MAX_BODY_BYTES as u64) {
        return (resp, None);
    }
    let (parts, body) = resp.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let captured = Captured::Bytes {
        bytes: bytes.clone(),
        content_type,
    };
    (
        Response::from_parts(parts, Full::new(bytes).boxed()),
        Some(captured),
    )
}

/// A long-running response's body, which writes the request's `ResponseComplete`
/// event when it ends.
struct AuditedBody {
    inner: Body,
    done: Option<(Sink, Event)>,
}

impl hyper::body::Body for AuditedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AuditedBody {
    fn drop(&mut self) {
        if let Some((sink, mut done)) = self.done.take() {
            done.stage_timestamp = Timestamp::now();
            sink.send(done);
        }
    }
}

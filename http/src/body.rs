//! Response bodies: whole documents, streams fed from a channel (watches, logs), and
//! the JSON, protobuf, text and `Status` responses both servers answer with.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::status::ApiError;

/// A response body: a whole JSON document or a watch stream.
pub type Body = BoxBody<Bytes, Infallible>;

/// The most bytes a streamed body (a watch's events, a list sent a page at a time,
/// a scrape) hands its connection at once: a write per piece rather than per event
/// or line, and small enough that the few frames a connection queues (hyper: 16)
/// do not let it read far ahead of what the client takes.
pub const PIECE: usize = 64 * 1024;

/// A body fed from a channel (watch streams, streamed logs).
struct ChannelBody(mpsc::Receiver<Bytes>);

/// A response body that streams what `rx` receives, until its sender is dropped.
pub fn channel_body(rx: mpsc::Receiver<Bytes>) -> Body {
    ChannelBody(rx).boxed()
}

/// A body passed on as it comes from the other side of a relay (a node's answer, a
/// pod's), a read error ending it there: the client sees a body cut short, as from a
/// proxy whose upstream failed mid-body.
pub fn relayed<B>(body: B) -> Body
where
    B: hyper::body::Body<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    Relayed(Some(body)).boxed()
}

struct Relayed<B>(Option<B>);

impl<B> hyper::body::Body for Relayed<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let Some(inner) = self.0.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(e))) => {
                tracing::debug!("a relayed body ends short: {e}");
                self.0 = None;
                Poll::Ready(None)
            }
            Poll::Ready(None) => {
                self.0 = None;
                Poll::Ready(None)
            }
        }
    }
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// A JSON response with `warnings` in `Warning` headers (`299 - "..."`).
pub fn json_response(code: StatusCode, body: &Value, warnings: &[String]) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    bytes_response(code, bytes, "application/json", warnings)
}

/// A protobuf response (`application/vnd.kubernetes.protobuf`) for `body`, a JSON
/// object with its `apiVersion` and `kind`; `None` for a kind that has no protobuf
/// encoding (a custom resource, a `Table`), which kube-apiserver serves as JSON.
pub fn protobuf_response(
    code: StatusCode,
    body: &Value,
    warnings: &[String],
) -> Option<Response<Body>> {
    let bytes = rk8s_api::protobuf::encode(body).ok()?;
    Some(bytes_response(
        code,
        bytes,
        rk8s_api::protobuf::MEDIA_TYPE,
        warnings,
    ))
}

/// A YAML response (`application/yaml`) for `body`.
pub fn yaml_response(code: StatusCode, body: &Value, warnings: &[String]) -> Response<Body> {
    let mut text = String::new();
    rk8s_api::emit::write_yaml(&mut text, body);
    bytes_response(code, text.into_bytes(), "application/yaml", warnings)
}

/// As [`error_response`], the `Status` written as YAML, for clients that asked for it.
pub fn yaml_error_response(e: &ApiError) -> Response<Body> {
    with_retry_after(e, yaml_response(e.code, &status_body(e), &[]))
}

/// A response of `bytes` already encoded as `content_type`.
pub fn bytes_response(
    code: StatusCode,
    bytes: Vec<u8>,
    content_type: &'static str,
    warnings: &[String],
) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(bytes)).boxed());
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {w:?}")) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// The `Status` object of `e`, with its `apiVersion` and `kind`.
fn status_body(e: &ApiError) -> Value {
    let mut body = serde_json::to_value(e.to_status()).unwrap_or(Value::Null);
    body["kind"] = json!("Status");
    body["apiVersion"] = json!("v1");
    body
}

/// A `Status` response for `e` (kubectl and client libraries read these).
pub fn error_response(e: &ApiError) -> Response<Body> {
    with_retry_after(e, json_response(e.code, &status_body(e), &[]))
}

/// As [`error_response`], the `Status` encoded as protobuf, for clients that prefer it
/// (client-go's typed clients). A `Status` that says when to retry says it in
/// `Retry-After` too, as kube-apiserver's `ErrorNegotiated` does.
pub fn protobuf_error_response(e: &ApiError) -> Response<Body> {
    let body = status_body(e);
    let mut resp = match protobuf_response(e.code, &body, &[]) {
        Some(resp) => with_retry_after(e, resp),
        None => error_response(e),
    };
    let retry = e.details.as_ref().and_then(|d| d.retry_after_seconds);
    if let Some(seconds) = retry.filter(|s| *s > 0) {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    resp
}

fn with_retry_after(e: &ApiError, mut resp: Response<Body>) -> Response<Body> {
    if e.code == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// A plain-text response.
pub fn text_response(code: StatusCode, text: &str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(text.to_string())).boxed());
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

//! Response bodies: whole documents, streams fed from a channel (watches, logs), and
//! the JSON, text and `Status` responses both servers answer with.

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

/// A body fed from a channel (watch streams, streamed logs).
struct ChannelBody(mpsc::Receiver<Bytes>);

/// A response body that streams what `rx` receives, until its sender is dropped.
pub fn channel_body(rx: mpsc::Receiver<Bytes>) -> Body {
    ChannelBody(rx).boxed()
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
    let mut resp = Response::new(Full::new(Bytes::from(bytes)).boxed());
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {w:?}")) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// A `Status` response for `e` (kubectl and client libraries read these).
pub fn error_response(e: &ApiError) -> Response<Body> {
    let status = serde_json::to_value(e.to_status()).unwrap_or(Value::Null);
    let mut body = status;
    body["kind"] = json!("Status");
    body["apiVersion"] = json!("v1");
    let mut resp = json_response(e.code, &body, &[]);
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

//! `/openapi/v2`: the Swagger 2.0 document as JSON, or as protobuf (gnostic's
//! `openapi.v2.Document`) to a client whose `Accept` asks for it, as kube-openapi's
//! handler negotiates. kubectl asks only for protobuf (client-go's `OpenAPISchema`),
//! for client-side validation and `kubectl explain --output=plaintext-openapiv2`.

use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use rk8s_http::body::{Body, json_response};

use crate::custom::openapi::{v2_protobuf_with, v2_with};
use crate::openapi::v2_proto::{MEDIA_TYPE, MEDIA_TYPE_DOTTED};
use crate::server::ApiServer;

impl ApiServer {
    /// `GET /openapi/v2` with `accept`, the request's `Accept` header.
    pub(crate) fn openapi_v2(&self, accept: Option<&str>) -> Response<Body> {
        let custom = &self.handlers.custom;
        let mut resp = if protobuf_asked(accept) {
            let mut resp = Response::new(Full::new(v2_protobuf_with(custom)).boxed());
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(MEDIA_TYPE_DOTTED),
            );
            resp
        } else {
            json_response(StatusCode::OK, &v2_with(custom), &[])
        };
        // The answer depends on `Accept`: caches must keep one per media type.
        resp.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Accept"));
        resp
    }
}

/// Whether `accept` asks for protobuf rather than JSON. As kube-openapi: the media
/// ranges in order of preference (`q`, then the more specific first), the first that
/// matches JSON or either spelling of the protobuf type wins; JSON comes first for
/// `*/*` and when nothing matches. The answer's `Content-Type` is the dotted spelling
/// whichever was asked (as kube-openapi answers): Go's `mime.ParseMediaType` refuses
/// the `@` of the other, and client-go parses the `Content-Type` of every answer.
fn protobuf_asked(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let mut ranges: Vec<(f32, u8, String)> = accept
        .split(',')
        .filter_map(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next()?.to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim() == "q")
                .map_or(1.0, |(_, v)| v.trim().parse().unwrap_or(0.0));
            let specific = match media.as_str() {
                "*/*" => 0,
                m if m.ends_with("/*") => 1,
                _ => 2,
            };
            (q > 0.0 && !media.is_empty()).then_some((q, specific, media))
        })
        .collect();
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
    let served = [
        ("application/json", false),
        (MEDIA_TYPE, true),
        (MEDIA_TYPE_DOTTED, true),
    ];
    for (_, _, media) in &ranges {
        let (kind, sub) = media.split_once('/').unwrap_or((media, ""));
        for (served, protobuf) in served {
            let (s_kind, s_sub) = served.split_once('/').unwrap_or((served, ""));
            if (kind == "*" || kind == s_kind) && (sub == "*" || sub == s_sub) {
                return protobuf;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_gets_protobuf_and_everyone_else_json() {
        assert!(protobuf_asked(Some(MEDIA_TYPE)));
        assert!(protobuf_asked(Some(MEDIA_TYPE_DOTTED)));
        assert!(!protobuf_asked(None));
        assert!(!protobuf_asked(Some("*/*")));
        assert!(!protobuf_asked(Some("application/json, */*")));
        assert!(protobuf_asked(Some(&format!(
            "application/json;q=0.5, {MEDIA_TYPE}"
        ))));
        assert!(!protobuf_asked(Some(&format!(
            "{MEDIA_TYPE};q=0, application/json"
        ))));
        assert!(!protobuf_asked(Some("text/html")));
    }
}

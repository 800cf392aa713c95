//! Content negotiation: which encoding a response is written in, from the request's
//! `Accept` header, as kube-apiserver's `negotiation.NegotiateOutputMediaType` chooses
//! between the serializers it has (JSON, YAML and protobuf; 406 when the client
//! accepts none of them).
//!
//! client-go's typed clients send `Accept: application/vnd.kubernetes.protobuf, */*`
//! and read whichever comes back by its `Content-Type`; kubectl's table requests ask for
//! `application/json;as=Table;...`. A media range with `as=` (a `Table` or
//! `PartialObjectMetadata` conversion) is answered in JSON, and a kind without a
//! protobuf encoding falls back to JSON at the response (see
//! `rk8s_http::body::protobuf_response`).

use rk8s_api::protobuf::MEDIA_TYPE;

use crate::status::{ApiError, ApiResult};

/// The encoding of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `application/json` (the default).
    Json,
    /// `application/yaml` (never for a watch: YAML has no stream framing).
    Yaml,
    /// `application/vnd.kubernetes.protobuf`.
    Protobuf,
}

/// The encoding `accept` prefers: the acceptable media range with the highest `q`
/// (the first of equals), JSON when the header is absent; `None` when it names no
/// media type served.
fn choose(accept: Option<&str>) -> Option<Encoding> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(Encoding::Json);
    };
    let mut best: Option<(f32, Encoding)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut q = 1.0f32;
        let mut conversion = false;
        for param in parts {
            let (k, v) = param.split_once('=').unwrap_or((param, ""));
            match k.trim() {
                "q" => q = v.trim().parse().unwrap_or(0.0),
                "as" => conversion = true,
                _ => {}
            }
        }
        let encoding = match media.as_str() {
            _ if q <= 0.0 => continue,
            m if m == MEDIA_TYPE && !conversion => Encoding::Protobuf,
            "application/json" | "application/*" | "*/*" => Encoding::Json,
            "application/yaml" => Encoding::Yaml,
            _ => continue,
        };
        if best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, encoding));
        }
    }
    best.map(|(_, e)| e)
}

/// The encoding `accept` prefers, JSON when it names none served (see [`accepted`]).
pub fn negotiate(accept: Option<&str>) -> Encoding {
    choose(accept).unwrap_or(Encoding::Json)
}

/// The encoding of a response to `accept`, or kube-apiserver's 406 when the header
/// names no media type served; a watch (`stream`) is never YAML.
pub fn accepted(accept: Option<&str>, stream: bool) -> ApiResult<Encoding> {
    let served: &[&str] = if stream {
        &["application/json", MEDIA_TYPE]
    } else {
        &["application/json", "application/yaml", MEDIA_TYPE]
    };
    match choose(accept) {
        Some(Encoding::Yaml) if stream => Err(not_acceptable(served)),
        Some(e) => Ok(e),
        None => Err(not_acceptable(served)),
    }
}

/// kube's `NewNotAcceptableError`.
fn not_acceptable(served: &[&str]) -> ApiError {
    ApiError::new(
        http::StatusCode::NOT_ACCEPTABLE,
        "NotAcceptable",
        format!(
            "only the following media types are accepted: {}",
            served.join(", ")
        ),
    )
}

/// Whether a request body of `content_type` is protobuf.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_go_gets_protobuf_and_everyone_else_json() {
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf, */*")),
            Encoding::Protobuf
        );
        assert_eq!(negotiate(Some("application/json, */*")), Encoding::Json);
        assert_eq!(negotiate(None), Encoding::Json);
        assert_eq!(negotiate(Some("*/*")), Encoding::Json);
        assert_eq!(negotiate(Some("text/html")), Encoding::Json);
    }

    #[test]
    fn yaml_is_served_but_not_for_watches_and_nothing_served_is_406() {
        assert_eq!(
            accepted(Some("application/yaml"), false).unwrap(),
            Encoding::Yaml
        );
        let e = accepted(Some("application/yaml"), true).unwrap_err();
        assert_eq!(e.code, http::StatusCode::NOT_ACCEPTABLE);
        assert_eq!(
            e.message,
            "only the following media types are accepted: application/json, application/vnd.kubernetes.protobuf"
        );
        let e = accepted(Some("application/xml"), false).unwrap_err();
        assert_eq!(e.reason, "NotAcceptable");
        assert_eq!(
            e.message,
            "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
        );
        assert_eq!(
            accepted(Some("application/xml, */*;q=0.1"), false).unwrap(),
            Encoding::Json
        );
        assert_eq!(accepted(None, true).unwrap(), Encoding::Json);
        assert_eq!(accepted(Some(""), false).unwrap(), Encoding::Json);
    }

    #[test]
    fn quality_values_and_conversions_are_honoured() {
        assert_eq!(
            negotiate(Some(
                "application/json;q=0.5, application/vnd.kubernetes.protobuf;q=0.9"
            )),
            Encoding::Protobuf
        );
        assert_eq!(
            negotiate(Some(
                "application/vnd.kubernetes.protobuf;q=0, application/json"
            )),
            Encoding::Json
        );
        // Tables and metadata-only objects are not served as protobuf.
        assert_eq!(
            negotiate(Some(
                "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io, application/json"
            )),
            Encoding::Json
        );
        assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
        assert!(is_protobuf(
            "application/vnd.kubernetes.protobuf; charset=binary"
        ));
        assert!(!is_protobuf("application/json"));
    }
}

//! What the proxy changes in the headers it passes on: hop-by-hop fields removed
//! (RFC 9110 §7.6.1: `Connection` and the fields it names, `Proxy-Connection`,
//! `Keep-Alive`, `TE`, `Transfer-Encoding`, `Upgrade`); an HTTP/2 client's several
//! `cookie` fields joined into one (RFC 9113 §8.2.3); and to the pod the
//! `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Forwarded-Port`
//! and `X-Real-IP` fields ingress-nginx sets, from the connection, not from what the
//! client sent (ingress-nginx without `use-forwarded-headers`: `X-Forwarded-For` is
//! the peer's address), and `Proxy` removed (httpoxy, as ingress-nginx's template).
//! The Host field is kept.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

/// The fields that are always hop-by-hop.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const PROXY: HeaderName = HeaderName::from_static("proxy");

/// The protocol a request asks to switch to (`Connection: upgrade` with `Upgrade`),
/// kept to be passed on.
pub fn upgrade(headers: &HeaderMap) -> Option<HeaderValue> {
    let asked = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    asked
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Removes the hop-by-hop fields of `headers`; `keep_trailers`: a `TE: trailers`
/// is kept (HTTP/2 to a gRPC pod needs it).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_trailers: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    let te_trailers = headers
        .get(header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if keep_trailers && te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Joins several `cookie` fields into one with `"; "` (RFC 9113 §8.2.3: an HTTP/2
/// client may split them; an HTTP/1.1 server expects one).
pub fn merge_cookies(headers: &mut HeaderMap) {
    let all = headers.get_all(header::COOKIE);
    if all.iter().nth(1).is_none() {
        return;
    }
    let joined = all
        .iter()
        .map(HeaderValue::as_bytes)
        .collect::<Vec<_>>()
        .join(&b"; "[..]);
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, v);
    }
}

/// What the pod is told of the client's request.
pub struct Forwarded<'a> {
    /// The client's address.
    pub client: IpAddr,
    /// `http` or `https`.
    pub proto: &'static str,
    /// The host the client asked for (with its port, as sent).
    pub host: &'a str,
    /// The port the client reached.
    pub port: u16,
}

/// Sets the `X-Forwarded-*` and `X-Real-IP` fields, replacing what the client sent,
/// and removes `Proxy`.
pub fn set_forwarded(headers: &mut HeaderMap, f: &Forwarded<'_>) {
    headers.remove(PROXY);
    if let Ok(client) = HeaderValue::from_str(&f.client.to_canonical().to_string()) {
        headers.insert(X_FORWARDED_FOR, client.clone());
        headers.insert(X_REAL_IP, client);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(f.proto));
    match HeaderValue::from_str(f.host) {
        Ok(host) => headers.insert(X_FORWARDED_HOST, host),
        Err(_) => headers.remove(X_FORWARDED_HOST),
    };
    headers.insert(X_FORWARDED_PORT, HeaderValue::from(f.port));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_fields_and_those_connection_names_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers, gzip"),
            ("transfer-encoding", "chunked"),
            ("proxy-connection", "close"),
            ("upgrade", "h2c"),
            ("host", "a.test"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["host", "accept"]);
        let mut grpc = map(&[("te", "trailers"), ("content-type", "application/grpc")]);
        strip_hop_by_hop(&mut grpc, true);
        assert_eq!(grpc.get("te").unwrap(), "trailers");
    }

    #[test]
    fn an_upgrade_is_seen_only_with_connection_upgrade() {
        let h = map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(upgrade(&h).unwrap(), "websocket");
        assert_eq!(upgrade(&map(&[("upgrade", "websocket")])), None);
    }

    #[test]
    fn forwarded_fields_are_the_connections_not_the_clients() {
        let mut h = map(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-real-ip", "6.6.6.6"),
            ("x-forwarded-proto", "gopher"),
            ("proxy", "http://evil.test:8080"),
        ]);
        let f = Forwarded {
            client: "::ffff:10.1.2.3".parse().unwrap(),
            proto: "https",
            host: "a.test:8443",
            port: 8443,
        };
        set_forwarded(&mut h, &f);
        assert_eq!(h.get("x-forwarded-for").unwrap(), "10.1.2.3");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h.get("proxy"), None);
        assert_eq!(h.get("x-real-ip").unwrap(), "10.1.2.3");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
        assert_eq!(h.get("x-forwarded-host").unwrap(), "a.test:8443");
        assert_eq!(h.get("x-forwarded-port").unwrap(), "8443");
    }

    #[test]
    fn an_http2_clients_cookies_are_joined_into_one_field() {
        let mut h = map(&[("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2; c=3")]);
        merge_cookies(&mut h);
        let all: Vec<_> = h.get_all("cookie").iter().collect();
        assert_eq!(all, ["a=1; b=2; c=3"]);
        let mut one = map(&[("cookie", "a=1")]);
        merge_cookies(&mut one);
        assert_eq!(one.get("cookie").unwrap(), "a=1");
    }
}

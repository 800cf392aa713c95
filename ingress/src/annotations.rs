//! The ingress-nginx annotations rk8s' proxy reads (`nginx.ingress.kubernetes.io/…`),
//! with ingress-nginx's defaults: an invalid value is reported and the default used.

use std::collections::BTreeMap;
use std::time::Duration;

/// The annotations' prefix.
pub const PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// How the proxy speaks to the pods (`backend-protocol`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.1 (the default).
    #[default]
    Http,
    /// HTTP/1.1 over TLS, the pod's certificate not verified (as ingress-nginx).
    Https,
    /// HTTP/2 without TLS (h2c).
    Grpc,
    /// HTTP/2 over TLS, the pod's certificate not verified.
    Grpcs,
}

impl Protocol {
    /// Whether TLS is spoken to the pod.
    pub fn tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Grpcs)
    }

    /// Whether HTTP/2 is spoken to the pod.
    pub fn http2(self) -> bool {
        matches!(self, Protocol::Grpc | Protocol::Grpcs)
    }
}

/// What an Ingress's annotations ask of its routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// `rewrite-target`: the path sent to the pod (`$1`..`$9`: the path's captures).
    pub rewrite_target: Option<String>,
    /// `use-regex`: ImplementationSpecific paths are regular expressions (implied by
    /// `rewrite-target`, as in ingress-nginx).
    pub use_regex: bool,
    /// `backend-protocol`.
    pub protocol: Protocol,
    /// `proxy-connect-timeout` (5 s).
    pub connect_timeout: Duration,
    /// `proxy-read-timeout` (60 s): from the request's end to the pod's response
    /// head, between two reads of the response body, and the longest an upgraded
    /// connection stays with nothing sent either way (nginx: "between two successive
    /// read operations").
    pub read_timeout: Duration,
    /// `proxy-send-timeout` (60 s): the longest between two pieces of the request
    /// body passed on to the pod, whether the client or the pod is slow (nginx:
    /// "between two successive write operations"); the whole upload may take longer.
    pub send_timeout: Duration,
    /// `ssl-redirect` (true): plain HTTP to a host with TLS gets a 308 to https.
    pub ssl_redirect: bool,
    /// `proxy-body-size` (1m; `0`: no limit, `None`).
    pub body_limit: Option<u64>,
}

/// ingress-nginx's `proxy-body-size` default, 1m.
pub const DEFAULT_BODY_LIMIT: u64 = 1024 * 1024;

impl Default for Options {
    fn default() -> Self {
        Options {
            rewrite_target: None,
            use_regex: false,
            protocol: Protocol::Http,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            ssl_redirect: true,
            body_limit: Some(DEFAULT_BODY_LIMIT),
        }
    }
}

/// The longest timeout an annotation may give (ingress-nginx has none; a day keeps
/// the arithmetic sane).
const MAX_TIMEOUT_SECONDS: u64 = 86_400;

/// The options `annotations` give, and a sentence for each value refused (its
/// default used instead).
pub fn parse(annotations: Option<&BTreeMap<String, String>>) -> (Options, Vec<String>) {
    let mut options = Options::default();
    let mut warnings = Vec::new();
    let Some(annotations) = annotations else {
        return (options, warnings);
    };
    let get = |name: &str| {
        annotations
            .get(&format!("{PREFIX}{name}"))
            .map(|v| v.trim())
    };
    let mut refuse = |name: &str, value: &str, expected: &str| {
        warnings.push(format!(
            "annotation {PREFIX}{name}: {value:?} is not {expected}; the default is used"
        ));
    };
    if let Some(v) = get("rewrite-target") {
        if v.is_empty() || v.len() > 1024 {
            refuse("rewrite-target", v, "a path of at most 1024 bytes");
        } else {
            options.rewrite_target = Some(v.to_string());
            options.use_regex = true;
        }
    }
    if let Some(v) = get("use-regex") {
        match parse_bool(v) {
            Some(b) => options.use_regex |= b,
            None => refuse("use-regex", v, "true or false"),
        }
    }
    if let Some(v) = get("backend-protocol") {
        options.protocol = match v.to_ascii_uppercase().as_str() {
            "HTTP" => Protocol::Http,
            "HTTPS" => Protocol::Https,
            "GRPC" => Protocol::Grpc,
            "GRPCS" => Protocol::Grpcs,
            _ => {
                refuse("backend-protocol", v, "HTTP, HTTPS, GRPC or GRPCS");
                Protocol::Http
            }
        };
    }
    for (name, field) in [
        ("proxy-connect-timeout", &mut options.connect_timeout),
        ("proxy-read-timeout", &mut options.read_timeout),
        ("proxy-send-timeout", &mut options.send_timeout),
    ] {
        if let Some(v) = get(name) {
            match seconds(v) {
                Some(d) => *field = d,
                None => warnings.push(format!(
                    "annotation {PREFIX}{name}: {v:?} is not a number of seconds from 1 to {MAX_TIMEOUT_SECONDS}; the default is used"
                )),
            }
        }
    }
    if let Some(v) = get("ssl-redirect") {
        match parse_bool(v) {
            Some(b) => options.ssl_redirect = b,
            None => warnings.push(format!(
                "annotation {PREFIX}ssl-redirect: {v:?} is not true or false; the default is used"
            )),
        }
    }
    if let Some(v) = get("proxy-body-size") {
        match size(v) {
            Some(0) => options.body_limit = None,
            Some(n) => options.body_limit = Some(n),
            None => warnings.push(format!(
                "annotation {PREFIX}proxy-body-size: {v:?} is not a size (as 8m, 512k, 1g or 0); the default is used"
            )),
        }
    }
    (options, warnings)
}

/// A boolean as ingress-nginx reads one (Go's `strconv.ParseBool`).
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A timeout in whole seconds, as ingress-nginx takes them (an `s` suffix allowed).
fn seconds(v: &str) -> Option<Duration> {
    let n: u64 = v.strip_suffix('s').unwrap_or(v).parse().ok()?;
    (1..=MAX_TIMEOUT_SECONDS)
        .contains(&n)
        .then(|| Duration::from_secs(n))
}

/// nginx's size syntax: a number of bytes, or with `k`, `m` or `g` (either case).
fn size(v: &str) -> Option<u64> {
    let (digits, unit) = match v.char_indices().last()? {
        (at, c) if c.is_ascii_alphabetic() => (&v[..at], c.to_ascii_lowercase()),
        _ => (v, 'b'),
    };
    let n: u64 = digits.parse().ok()?;
    let scale: u64 = match unit {
        'b' => 1,
        'k' => 1 << 10,
        'm' => 1 << 20,
        'g' => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn annotated(pairs: &[(&str, &str)]) -> (Options, Vec<String>) {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
            .collect();
        parse(Some(&map))
    }

    #[test]
    fn no_annotations_give_ingress_nginx_defaults() {
        let (o, w) = parse(None);
        assert!(w.is_empty());
        assert_eq!(o.connect_timeout, Duration::from_secs(5));
        assert_eq!(o.read_timeout, Duration::from_secs(60));
        assert_eq!(o.send_timeout, Duration::from_secs(60));
        assert_eq!(o.body_limit, Some(1 << 20));
        assert!(o.ssl_redirect);
        assert_eq!(o.protocol, Protocol::Http);
    }

    #[test]
    fn annotations_are_read() {
        let (o, w) = annotated(&[
            ("rewrite-target", "/$2"),
            ("backend-protocol", "grpcs"),
            ("proxy-connect-timeout", "2"),
            ("proxy-read-timeout", "30s"),
            ("proxy-send-timeout", "7"),
            ("ssl-redirect", "false"),
            ("proxy-body-size", "8m"),
        ]);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(o.rewrite_target.as_deref(), Some("/$2"));
        assert!(o.use_regex, "rewrite-target implies use-regex");
        assert_eq!(o.protocol, Protocol::Grpcs);
        assert!(o.protocol.tls() && o.protocol.http2());
        assert_eq!(o.connect_timeout, Duration::from_secs(2));
        assert_eq!(o.read_timeout, Duration::from_secs(30));
        assert_eq!(o.send_timeout, Duration::from_secs(7));
        assert!(!o.ssl_redirect);
        assert_eq!(o.body_limit, Some(8 << 20));
        assert_eq!(annotated(&[("proxy-body-size", "0")]).0.body_limit, None);
        assert_eq!(
            annotated(&[("proxy-body-size", "512K")]).0.body_limit,
            Some(512 << 10)
        );
        assert_eq!(
            annotated(&[("proxy-body-size", "100")]).0.body_limit,
            Some(100)
        );
    }

    #[test]
    fn booleans_are_read_as_go_reads_them() {
        for v in ["1", "t", "T", "TRUE", "true", "True"] {
            let (o, w) = annotated(&[("ssl-redirect", "false"), ("use-regex", v)]);
            assert!(o.use_regex && w.is_empty(), "{v}: {w:?}");
            assert!(annotated(&[("ssl-redirect", v)]).0.ssl_redirect, "{v}");
        }
        for v in ["0", "f", "F", "FALSE", "false", "False"] {
            let (o, w) = annotated(&[("ssl-redirect", v), ("use-regex", v)]);
            assert!(
                !o.ssl_redirect && !o.use_regex && w.is_empty(),
                "{v}: {w:?}"
            );
        }
        for v in ["yes", "tRuE", "2", ""] {
            assert_eq!(annotated(&[("ssl-redirect", v)]).1.len(), 1, "{v}");
        }
    }

    #[test]
    fn invalid_values_fall_back_to_the_defaults_with_a_warning() {
        let (o, w) = annotated(&[
            ("backend-protocol", "FTP"),
            ("proxy-connect-timeout", "soon"),
            ("proxy-read-timeout", "0"),
            ("ssl-redirect", "maybe"),
            ("proxy-body-size", "12q"),
            ("use-regex", "yes"),
        ]);
        assert_eq!(o, Options::default());
        assert_eq!(w.len(), 6, "{w:?}");
        assert!(w.iter().any(|w| w.contains("backend-protocol")), "{w:?}");
        assert_eq!(
            annotated(&[("proxy-body-size", "99999999999999g")]).1.len(),
            1
        );
    }
}

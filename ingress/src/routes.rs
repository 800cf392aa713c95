//! The matching rules of Kubernetes' Ingress, one request at a time: hosts (exact,
//! or `*.` and one label), paths by type (the kubernetes.io "Ingress" page: Prefix
//! matches by `/`-separated elements, a trailing slash ignored; Exact matches the
//! whole path), ingress-nginx's regular expressions for `use-regex`, and
//! `rewrite-target`'s `$1`..`$9`. A request's path is matched normalised, as nginx
//! matches locations ([`normalize_path`]).

use regex::Regex;

/// The longest compiled regular expression of a path (bytes of its program).
pub const REGEX_SIZE_LIMIT: usize = 64 * 1024;

/// The longest path (or regular expression) a rule may have.
pub const MAX_PATH: usize = 2048;

/// A request's host as the table keys it: without a port or a final dot, lower
/// case. `None`: empty or not a plausible host.
pub fn normalize_host(host: &str) -> Option<String> {
    let host = host.trim();
    // `[v6]:port`, `name:port`.
    let host = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next()?
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(h, _)| h)
    };
    let host = host.trim_end_matches('.');
    if host.is_empty() || host.len() > 253 {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

/// A request's path as it is matched and passed on: `%XX` of unreserved characters
/// decoded (RFC 3986 §2.3: `%2e` is `.`; others, `%2F` included, stay encoded),
/// adjacent slashes merged, `.` and `..` segments resolved (RFC 3986 §5.2.4), as
/// nginx normalises a URI before it matches locations. `None`: the path climbs
/// above `/` (nginx answers 400). A path not starting with `/` (`*`) is kept.
pub fn normalize_path(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some(path.to_string());
    }
    let decoded = decode_unreserved(path);
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing = false;
    for segment in decoded.split('/').skip(1) {
        trailing = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop()?;
            }
            s => kept.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &kept {
        out.push('/');
        out.push_str(s);
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    Some(out)
}

/// `path` with each `%XX` that encodes an unreserved character decoded.
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2)))
        {
            let c = char::from(u8::try_from(hi * 16 + lo).unwrap_or(0));
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~') {
                out.push(c);
                i += 3;
                continue;
            }
        }
        // Splitting at a char boundary: `%` is ASCII, so `i` always is one.
        let len = path[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&path[i..i + len]);
        i += len;
    }
    out
}

/// The suffix a wildcard host `*.example.com` stands for (`example.com`); `None` for
/// an exact host.
pub fn wildcard_suffix(host: &str) -> Option<&str> {
    host.strip_prefix("*.")
}

/// The suffix under which a request host `foo.example.com` may match a wildcard: the
/// host without its first label (a wildcard covers one label only).
pub fn parent(host: &str) -> Option<&str> {
    host.split_once('.')
        .map(|(_, rest)| rest)
        .filter(|r| !r.is_empty())
}

/// How a rule's path matches.
#[derive(Clone, Debug)]
pub enum Matcher {
    /// The whole path, case-sensitively.
    Exact(String),
    /// By `/`-separated elements; the prefix is kept without its trailing slashes
    /// (empty: every path).
    Prefix(String),
    /// A regular expression anchored at the start, case-insensitive.
    Regex(Regex),
}

/// Why a rule's path was not taken.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// Too long.
    #[error("path of {0} bytes is longer than {MAX_PATH}")]
    TooLong(usize),
    /// Not a regular expression, or too large a one.
    #[error("path {path:?} is not a usable regular expression: {source}")]
    Regex {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: regex::Error,
    },
}

impl Matcher {
    /// An `Exact` path.
    pub fn exact(path: &str) -> Self {
        Matcher::Exact(path.to_string())
    }

    /// A `Prefix` path (ImplementationSpecific without regex too).
    pub fn prefix(path: &str) -> Self {
        Matcher::Prefix(path.trim_end_matches('/').to_string())
    }

    /// A regular expression, as ingress-nginx writes `location ~* "^PATH"`.
    pub fn regex(path: &str) -> Result<Self, PathError> {
        if path.len() > MAX_PATH {
            return Err(PathError::TooLong(path.len()));
        }
        regex::RegexBuilder::new(&format!("^(?:{path})"))
            .case_insensitive(true)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map(Matcher::Regex)
            .map_err(|source| PathError::Regex {
                path: path.to_string(),
                source,
            })
    }

    /// Whether `path` (without its query) matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Matcher::Exact(p) => p == path,
            Matcher::Prefix(p) => {
                p.is_empty()
                    || path
                        .strip_prefix(p.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
            Matcher::Regex(r) => r.is_match(path),
        }
    }

    /// The path with `rewrite-target`'s `target`: `$1`..`$9` are the regular
    /// expression's captures (empty when absent), as nginx's `rewrite` expands them;
    /// the whole path is replaced (nginx's `rewrite` replaces the URI).
    pub fn rewrite(&self, path: &str, target: &str) -> String {
        let captures = match self {
            Matcher::Regex(r) => r.captures(path),
            _ => None,
        };
        let mut out = String::with_capacity(target.len());
        let mut chars = target.chars().peekable();
        while let Some(c) = chars.next() {
            let digit = chars.peek().and_then(|d| d.to_digit(10)).filter(|d| *d > 0);
            match (c, digit) {
                ('$', Some(n)) => {
                    chars.next();
                    if let Some(m) = captures.as_ref().and_then(|c| c.get(n as usize)) {
                        out.push_str(m.as_str());
                    }
                }
                _ => out.push(c),
            }
        }
        if !out.starts_with('/') {
            out.insert(0, '/');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn hosts_are_compared_without_port_case_or_final_dot() {
        assert_eq!(
            normalize_host("Foo.Example.COM:8080").unwrap(),
            "foo.example.com"
        );
        assert_eq!(
            normalize_host("foo.example.com.").unwrap(),
            "foo.example.com"
        );
        assert_eq!(normalize_host("[::1]:80").unwrap(), "::1");
        assert_eq!(normalize_host(""), None);
        assert_eq!(parent("foo.example.com"), Some("example.com"));
        assert_eq!(parent("localhost"), None);
        assert_eq!(wildcard_suffix("*.example.com"), Some("example.com"));
    }

    #[test]
    fn paths_are_normalised_before_they_are_matched() {
        let n = |p: &str| normalize_path(p);
        assert_eq!(n("/api/../admin").unwrap(), "/admin");
        assert_eq!(n("/api/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(n("/api/%2E%2e/admin").unwrap(), "/admin");
        assert_eq!(n("/api/./v1//users").unwrap(), "/api/v1/users");
        assert_eq!(n("//api///").unwrap(), "/api/");
        assert_eq!(n("/a/b/..").unwrap(), "/a/");
        assert_eq!(n("/a/b/.").unwrap(), "/a/b/");
        assert_eq!(n("/").unwrap(), "/");
        assert_eq!(n("/%61pi/%7euser").unwrap(), "/api/~user");
        // Reserved characters stay encoded: `%2F` is not a separator.
        assert_eq!(n("/api%2F..%2Fadmin").unwrap(), "/api%2F..%2Fadmin");
        assert_eq!(n("/caf%C3%A9/%zz/%").unwrap(), "/caf%C3%A9/%zz/%");
        assert_eq!(n("/é/../x").unwrap(), "/x");
        assert_eq!(n("/.."), None);
        assert_eq!(n("/a/../../b"), None);
        assert_eq!(n("/%2e%2e/etc"), None);
        assert_eq!(n("*").unwrap(), "*");
        assert!(!Matcher::prefix("/api").matches(&n("/api/../admin").unwrap()));
        assert!(!Matcher::prefix("/api").matches(&n("/api/%2e%2e/admin").unwrap()));
    }

    #[test]
    fn prefix_matches_by_elements() {
        let foo = Matcher::prefix("/foo");
        assert!(foo.matches("/foo"));
        assert!(foo.matches("/foo/"));
        assert!(foo.matches("/foo/bar"));
        assert!(!foo.matches("/foobar"));
        assert!(Matcher::prefix("/").matches("/anything"));
    }

    #[test]
    fn rewrite_expands_captures() {
        let m = Matcher::regex("/something(/|$)(.*)").unwrap();
        assert!(m.matches("/SOMETHING/new"), "case-insensitive");
        assert_eq!(m.rewrite("/something/new", "/$2"), "/new");
        assert_eq!(m.rewrite("/something", "/$2"), "/");
        assert_eq!(m.rewrite("/something/a/b", "/x/$2/$9"), "/x/a/b/");
        assert_eq!(Matcher::prefix("/api").rewrite("/api/v1", "/"), "/");
        assert!(!Matcher::regex("/a").unwrap().matches("/b/a"), "anchored");
    }

    #[test]
    fn huge_or_bad_regexes_are_refused() {
        assert!(Matcher::regex("(").is_err());
        assert!(Matcher::regex(&"a".repeat(MAX_PATH + 1)).is_err());
        assert!(Matcher::regex("(a{1000}){1000}").is_err());
    }
}

//! `/etc/rk8s/registries.yaml`: mirrors, insecure registries and credentials for image
//! pulls, in k3s' format (which containerd's hosts configuration inspired):
//!
//! ```yaml
//! mirrors:
//!   docker.io:
//!     endpoint: ["https://mirror.example.com", "http://10.0.0.5:5000"]
//!   "*":                      # every registry without mirrors of its own
//!     endpoint: ["https://cache.example.com"]
//! configs:
//!   "mirror.example.com":
//!     auth: {username: puller, password: s3cret}   # or auth: base64(user:password)
//!     tls: {ca_file: /etc/rk8s/mirror-ca.pem}       # or insecure_skip_verify: true
//! ```
//!
//! A pull tries the registry's mirrors in order, then the registry itself; an endpoint
//! written `http://` is reached over plain HTTP. The image keeps its own name whichever
//! endpoint served it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The file.
pub const DEFAULT_PATH: &str = "/etc/rk8s/registries.yaml";

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registries {
    /// Mirrors by registry host (`docker.io`, `quay.io`, `*` for any).
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    /// Credentials and TLS by endpoint host (`host[:port]`).
    #[serde(default)]
    pub configs: BTreeMap<String, RegistryConfig>,
}

/// A registry's mirrors.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// Endpoints tried in order (`https://host[:port]`, `http://host[:port]`).
    #[serde(default)]
    pub endpoint: Vec<String>,
}

/// How to talk to one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Credentials.
    #[serde(default)]
    pub auth: Option<Auth>,
    /// TLS settings.
    #[serde(default)]
    pub tls: Option<Tls>,
}

/// Basic credentials: `username` and `password`, or `auth` (base64 of
/// `username:password`, as in a Docker config).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// User.
    #[serde(default)]
    pub username: Option<String>,
    /// Password.
    #[serde(default)]
    pub password: Option<String>,
    /// base64 of `username:password`.
    #[serde(default)]
    pub auth: Option<String>,
}

impl Auth {
    /// (user, password): given as such, or decoded from `auth`; errors name the
    /// field as `field.auth`.
    pub fn user_and_password(&self, field: &str) -> Result<Option<(String, String)>> {
        if let (Some(user), Some(password)) = (&self.username, &self.password) {
            return Ok(Some((user.clone(), password.clone())));
        }
        let Some(encoded) = &self.auth else {
            return Ok(None);
        };
        let bad = |why: String| Error::InvalidSpec(format!("{field}.auth: {why}"));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| bad(format!("not base64: {e}")))?;
        let text = String::from_utf8(decoded).map_err(|e| bad(e.to_string()))?;
        let (user, password) = text
            .split_once(':')
            .ok_or_else(|| bad("not base64 of username:password".into()))?;
        Ok(Some((user.to_string(), password.to_string())))
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// TLS towards an endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// A CA certificate (PEM) trusted besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (testing only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// One place to pull from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]`.
    pub host: String,
    /// Plain HTTP.
    pub plain_http: bool,
    /// The registry itself (not a mirror).
    pub origin: bool,
}

impl Registries {
    /// The file at `path`, or no settings when there is none. A bad file is an error
    /// naming its line and field.
    pub fn load(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(crate::error::io(path)(e)),
        };
        Self::parse(&name, &text)
    }

    /// Settings from the YAML `text` of the file `name`.
    pub fn parse(name: &str, text: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let (registries, _) =
            rk8s_api::formats::decode_single::<Self>(name, text).map_err(|diags| {
                Error::InvalidSpec(
                    diags
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            })?;
        for (registry, mirror) in &registries.mirrors {
            for e in &mirror.endpoint {
                endpoint_host(e).map_err(|why| {
                    Error::InvalidSpec(format!("{name}: mirrors.{registry}.endpoint: {e:?}: {why}"))
                })?;
            }
        }
        Ok(registries)
    }

    /// Where to pull an image of `registry` from, in order: its mirrors (or those of
    /// `*`), then the registry itself.
    pub fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let mirrors = self
            .mirrors
            .get(registry)
            .or_else(|| self.mirrors.get("*"))
            .map(|m| m.endpoint.as_slice())
            .unwrap_or_default();
        let mut out: Vec<Endpoint> = mirrors
            .iter()
            .filter_map(|e| endpoint_host(e).ok())
            .map(|(host, plain_http)| Endpoint {
                host,
                plain_http,
                origin: false,
            })
            .collect();
        if !out.iter().any(|e| e.host == registry) {
            out.push(Endpoint {
                host: registry.to_string(),
                plain_http: false,
                origin: true,
            });
        }
        out
    }

    /// The credentials configured for the endpoint `host` (user, password).
    pub fn credentials(&self, host: &str) -> Result<Option<(String, String)>> {
        match self.configs.get(host).and_then(|c| c.auth.as_ref()) {
            Some(auth) => auth.user_and_password(&format!("configs.{host}.auth")),
            None => Ok(None),
        }
    }

    /// The TLS settings of the endpoint `host`.
    pub fn tls(&self, host: &str) -> Option<&Tls> {
        self.configs.get(host).and_then(|c| c.tls.as_ref())
    }
}

/// `host[:port]` of an endpoint URL, and whether it is plain HTTP.
fn endpoint_host(url: &str) -> std::result::Result<(String, bool), String> {
    let (plain_http, rest) = match url.split_once("://") {
        Some(("http", rest)) => (true, rest),
        Some(("https", rest)) => (false, rest),
        Some((scheme, _)) => return Err(format!("scheme {scheme:?}: only http and https")),
        None => (false, url),
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return Err("expected scheme://host[:port] (no path)".into());
    }
    Ok((host.to_string(), plain_http))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
mirrors:
  docker.io:
    endpoint: ["https://mirror.example.com", "http://10.0.0.5:5000/"]
  "*":
    endpoint: ["cache.example.com"]
configs:
  "mirror.example.com":
    auth: {username: puller, password: s3cret}
    tls: {insecure_skip_verify: true}
  "10.0.0.5:5000":
    auth: {auth: "dXNlcjpwYTpzcw=="}
"#;

    #[test]
    fn mirrors_come_first_in_order_then_the_registry() {
        let r = Registries::parse("registries.yaml", FILE).unwrap();
        let hosts = |registry: &str| -> Vec<(String, bool, bool)> {
            r.endpoints(registry)
                .into_iter()
                .map(|e| (e.host, e.plain_http, e.origin))
                .collect()
        };
        assert_eq!(
            hosts("docker.io"),
            [
                ("mirror.example.com".into(), false, false),
                ("10.0.0.5:5000".into(), true, false),
                ("docker.io".into(), false, true),
            ]
        );
        assert_eq!(
            hosts("quay.io"),
            [
                ("cache.example.com".into(), false, false),
                ("quay.io".into(), false, true)
            ]
        );
        assert_eq!(
            r.credentials("mirror.example.com").unwrap(),
            Some(("puller".into(), "s3cret".into()))
        );
        // base64 of user:pa:ss: the password may hold colons.
        assert_eq!(
            r.credentials("10.0.0.5:5000").unwrap(),
            Some(("user".into(), "pa:ss".into()))
        );
        assert_eq!(r.credentials("quay.io").unwrap(), None);
        assert!(r.tls("mirror.example.com").unwrap().insecure_skip_verify);
        assert_eq!(
            Registries::parse("r.yaml", "").unwrap(),
            Registries::default()
        );
        assert_eq!(
            Registries::default().endpoints("ghcr.io"),
            [Endpoint {
                host: "ghcr.io".into(),
                plain_http: false,
                origin: true
            }]
        );
    }

    #[test]
    fn bad_files_name_the_line_and_field() {
        let e = Registries::parse(
            "registries.yaml",
            "mirrors:\n  docker.io:\n    endpoints: [x]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("registries.yaml:3") && e.contains("endpoints"),
            "{e}"
        );
        let e = Registries::parse(
            "registries.yaml",
            "mirrors:\n  docker.io:\n    endpoint: [\"ftp://x\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("mirrors.docker.io.endpoint") && e.contains("ftp"),
            "{e}"
        );
    }
}

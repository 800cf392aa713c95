//! Image pull secrets: the credentials of the Secrets a pod names in
//! `imagePullSecrets`, read as kubelet reads them (its `credentialprovider`
//! keyring). A `kubernetes.io/dockerconfigjson` Secret holds a Docker config
//! (`{"auths": {KEY: {username, password | auth}}}`) under `.dockerconfigjson`, the
//! legacy `kubernetes.io/dockercfg` one the `auths` map alone under `.dockercfg`.
//!
//! A KEY is a registry, optionally with a scheme and a repository path
//! (`registry.example.com:5000`, `https://index.docker.io/v1/`,
//! `*.example.com/team`): it serves an image whose registry matches it label by label
//! (`*` and `?` within a label; the port exactly) and whose repository starts with its
//! path. An image's credentials are tried most specific key first (the keys in
//! reverse order, as kubelet sorts them), then those of `registries.yaml`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;

use super::registries::Auth;
use crate::error::{Error, Result};

/// One credential of a pull secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PullCredential {
    /// Where it came from (`pull secret NAMESPACE/NAME`), for errors.
    pub source: String,
    /// The key as the Secret writes it.
    pub key: String,
    host: String,
    path: String,
    /// User.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for PullCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullCredential")
            .field("source", &self.source)
            .field("key", &self.key)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A Docker config entry (fields besides these, such as `email`, are ignored).
#[derive(Default, Deserialize)]
struct Entry {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    auth: Option<String>,
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
const DOCKER_CFG: &str = "kubernetes.io/dockercfg";

/// The credentials of `secret`, sorted as they are tried. A Secret of another type
/// or with a damaged config is an error naming it and the field.
pub fn credentials(secret: &Secret) -> Result<Vec<PullCredential>> {
    let source = format!(
        "pull secret {}/{}",
        secret.metadata.namespace.as_deref().unwrap_or_default(),
        secret.metadata.name.as_deref().unwrap_or_default()
    );
    let bad = |why: String| Error::InvalidSpec(format!("{source}: {why}"));
    let data = secret.data.as_ref();
    let kind = secret.type_.as_deref().unwrap_or("Opaque");
    let (field, bytes) = match kind {
        DOCKER_CONFIG_JSON => (
            ".dockerconfigjson",
            data.and_then(|d| d.get(".dockerconfigjson")),
        ),
        DOCKER_CFG => (".dockercfg", data.and_then(|d| d.get(".dockercfg"))),
        other => {
            return Err(bad(format!(
                "type {other} holds no registry credentials (it must be {DOCKER_CONFIG_JSON})"
            )));
        }
    };
    let bytes = bytes.ok_or_else(|| bad(format!("data.{field} is missing")))?;
    let auths = if kind == DOCKER_CONFIG_JSON {
        serde_json::from_slice::<DockerConfig>(&bytes.0).map(|c| c.auths)
    } else {
        serde_json::from_slice::<BTreeMap<String, Entry>>(&bytes.0)
    }
    .map_err(|e| bad(format!("data.{field}: {e}")))?;
    let mut out = Vec::new();
    for (key, entry) in auths {
        // As kubelet reads an entry: a non-empty `auth` wins over username/password.
        let auth = match entry.auth.filter(|a| !a.is_empty()) {
            Some(encoded) => Auth {
                auth: Some(encoded),
                ..Auth::default()
            },
            None => Auth {
                username: entry.username,
                password: entry.password,
                auth: None,
            },
        };
        let field = format!("data.{field}: {key}");
        let Some((username, password)) = auth
            .user_and_password(&field)
            .map_err(|e| bad(e.to_string()))?
        else {
            continue;
        };
        let (host, path) = parse_key(&key);
        out.push(PullCredential {
            source: source.clone(),
            key,
            host,
            path,
            username,
            password,
        });
    }
    sort(&mut out);
    Ok(out)
}

/// Puts credentials in the order they are tried: most specific key first.
pub fn sort(credentials: &mut [PullCredential]) {
    credentials.sort_by(|a, b| (&b.host, &b.path).cmp(&(&a.host, &a.path)));
}

/// Docker Hub's names for itself.
fn canonical_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => host,
    }
}

/// (host, path) of a key: without its scheme, Docker Hub's `index.docker.io/v1/`
/// as `docker.io`, the path without slashes at its ends.
fn parse_key(key: &str) -> (String, String) {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = canonical_host(host);
    let path = if host == "docker.io" && (path == "v1" || path.starts_with("v1/")) {
        path.trim_start_matches("v1")
    } else {
        path
    };
    (host, path.trim_matches('/').to_string())
}

/// Whether `pattern` (`*` any run, `?` any one character) matches `text`: the
/// classic two-pointer match, in time proportional to their lengths' product at
/// worst (a `*` is retried from one place only), whatever the pattern.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // The last `*` seen and where in `text` its run ends so far.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((s, run)) => {
                    p = s + 1;
                    t = run + 1;
                    star = Some((s, run + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

impl PullCredential {
    /// Whether it serves the repository `repository` of the registry `registry`
    /// (`host[:port]`).
    pub fn serves(&self, registry: &str, repository: &str) -> bool {
        let registry = canonical_host(registry);
        let (name, port) = registry.split_once(':').unwrap_or((&registry, ""));
        let (key_name, key_port) = self.host.split_once(':').unwrap_or((&self.host, ""));
        let labels: Vec<&str> = name.split('.').collect();
        let key_labels: Vec<&str> = key_name.split('.').collect();
        port == key_port
            && labels.len() == key_labels.len()
            && key_labels
                .iter()
                .zip(&labels)
                .all(|(k, l)| glob(k.as_bytes(), l.as_bytes()))
            && repository.starts_with(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(kind: &str, field: &str, config: &str) -> Secret {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "regcred", "namespace": "team"},
            "type": kind,
            "data": {field: base64_of(config)}
        }))
        .unwrap()
    }

    fn base64_of(text: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn docker_config_json_and_dockercfg_secrets_give_their_credentials() {
        let config = format!(
            r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{}", "email": "a@b"}},
                "registry.example.com:5000": {{"username": "u", "password": "p"}}}}}}"#,
            base64_of("hub:secret")
        );
        let found = credentials(&secret(DOCKER_CONFIG_JSON, ".dockerconfigjson", &config)).unwrap();
        let users: Vec<_> = found.iter().map(|c| c.username.as_str()).collect();
        assert_eq!(users, ["u", "hub"]);
        assert_eq!(found[1].password, "secret");
        assert_eq!(found[0].source, "pull secret team/regcred");
        assert!(found[1].serves("docker.io", "library/busybox"));
        assert!(found[1].serves("index.docker.io", "library/busybox"));
        assert!(found[0].serves("registry.example.com:5000", "app"));
        assert!(!found[0].serves("registry.example.com", "app"));
        let legacy = credentials(&secret(
            DOCKER_CFG,
            ".dockercfg",
            r#"{"quay.io": {"username": "q", "password": "w"}}"#,
        ))
        .unwrap();
        assert_eq!(legacy[0].username, "q");
    }

    #[test]
    fn keys_match_label_by_label_and_by_repository_prefix() {
        let config = r#"{"auths": {"*.example.com": {"username": "any", "password": "p"},
            "registry.example.com/team": {"username": "team", "password": "p"}}}"#;
        let found = credentials(&secret(DOCKER_CONFIG_JSON, ".dockerconfigjson", config)).unwrap();
        let users = |registry: &str, repo: &str| -> Vec<String> {
            found
                .iter()
                .filter(|c| c.serves(registry, repo))
                .map(|c| c.username.clone())
                .collect()
        };
        assert_eq!(users("registry.example.com", "team/app"), ["team", "any"]);
        assert_eq!(users("registry.example.com", "other/app"), ["any"]);
        assert_eq!(users("a.b.example.com", "team/app"), Vec::<String>::new());
        assert_eq!(users("example.com", "team/app"), Vec::<String>::new());
    }

    #[test]
    fn globs_match_in_bounded_time() {
        assert!(glob(b"*.example.com", b"registry.example.com"));
        assert!(glob(b"reg?stry", b"registry"));
        assert!(glob(b"*", b""));
        assert!(!glob(b"a*b", b"ac"));
        assert!(!glob(b"?", b""));
        // Would take exponential time tried naively.
        let pattern = "*a".repeat(30) + "b";
        assert!(!glob(pattern.as_bytes(), "a".repeat(5000).as_bytes()));
    }

    #[test]
    fn secrets_of_other_types_or_damaged_configs_are_errors_naming_the_field() {
        let opaque = secret("Opaque", "x", "{}");
        assert_eq!(
            credentials(&opaque).unwrap_err().to_string(),
            "pull secret team/regcred: type Opaque holds no registry credentials (it must be kubernetes.io/dockerconfigjson)"
        );
        let missing = secret(DOCKER_CONFIG_JSON, ".dockercfg", "{}");
        assert!(
            credentials(&missing)
                .unwrap_err()
                .to_string()
                .ends_with("data..dockerconfigjson is missing")
        );
        let damaged = secret(
            DOCKER_CONFIG_JSON,
            ".dockerconfigjson",
            r#"{"auths": {"r.io": {"auth": "%%%"}}}"#,
        );
        let e = credentials(&damaged).unwrap_err().to_string();
        assert!(
            e.contains("data..dockerconfigjson: r.io.auth: not base64"),
            "{e}"
        );
    }
}

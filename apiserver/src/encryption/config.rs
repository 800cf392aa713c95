//! The `EncryptionConfiguration` file (`apiserver.config.k8s.io/v1`), read and checked
//! as kube-apiserver's `--encryption-provider-config` is
//! (`apis/apiserver/validation/validation_encryption.go`): every problem is reported
//! with the file, line and field (`resources[0].providers[1].aescbc.keys[0].secret`),
//! and a key's secret is never printed.

use base64::Engine as _;
use rk8s_api::manifest::Diagnostic;
use rk8s_api::path::FieldPath;
use rk8s_api::validation::{FieldError, Reason};
use serde::Deserialize;

use super::providers::{KeyTransformer, ProviderKind};
use super::resources::parse_group_resource;

/// The file's `apiVersion`.
pub const API_VERSION: &str = "apiserver.config.k8s.io/v1";
/// The file's `kind`.
pub const KIND: &str = "EncryptionConfiguration";

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    resources: Vec<Entry>,
}

/// One entry: resources and the providers that transform them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    providers: Vec<Provider>,
}

/// One provider: exactly one of the fields is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Provider {
    aesgcm: Option<Keys>,
    aescbc: Option<Keys>,
    secretbox: Option<Keys>,
    identity: Option<serde_json::Value>,
    kms: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    #[serde(default)]
    keys: Vec<Key>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Key {
    #[serde(default)]
    name: String,
    #[serde(default)]
    secret: String,
}

/// A checked configuration: per entry, its resource names and its keys in the order
/// they are tried (every key of the first provider, then the next provider's…; the
/// first key writes).
#[derive(Debug)]
pub struct EncryptionConfig {
    /// Each entry's resource names.
    pub resources: Vec<Vec<String>>,
    /// Each entry's keys.
    pub keys: Vec<Vec<KeyTransformer>>,
}

/// Resources kube-apiserver keeps outside the REST API: they cannot be encrypted.
const NOT_REST: [&str; 3] = [
    "apiserveripinfo",
    "serviceipallocations",
    "servicenodeportallocations",
];

fn invalid(value: &str, detail: &str) -> Reason {
    Reason::Invalid {
        value: value.to_string(),
        detail: detail.to_string(),
    }
}

/// Kube's `validateResourceNames`.
fn check_names(names: &[String], at: &FieldPath, errors: &mut Vec<FieldError>) {
    for (j, name) in names.iter().enumerate() {
        let path = at.index(j);
        let (group, resource) = parse_group_resource(name);
        let detail = if name.to_lowercase() != *name {
            "resource name should not contain capital letters"
        } else if name == "*" {
            "use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources"
        } else if NOT_REST.contains(&name.as_str()) {
            "resources which do not have REST API/s cannot be encrypted"
        } else if group == "events.k8s.io" {
            "'*.events.k8s.io' objects are stored using the 'events' API group in etcd. Use 'events' instead in the config file"
        } else if group == "extensions" {
            "'extensions' group has been removed and cannot be used for encryption"
        } else if group == "*" && resource != "*" {
            "encrypting the same resource across groups is not supported"
        } else if resource.is_empty() {
            "a resource name is needed before the group (`secrets`, `deployments.apps`, `*.apps`)"
        } else {
            continue;
        };
        errors.push(FieldError {
            path,
            reason: invalid(name, detail),
        });
    }
}

/// Kube's `validateResourceOverlap`: the same name twice, or a name its group's
/// wildcard (or `*.*`) already covers, in one entry.
fn check_overlap(names: &[String], at: &FieldPath, errors: &mut Vec<FieldError>) {
    let parsed: Vec<(&str, &str)> = names.iter().map(|n| parse_group_resource(n)).collect();
    let mut duplicate = false;
    let mut overlap = false;
    for (i, a) in parsed.iter().enumerate() {
        for (j, b) in parsed.iter().enumerate() {
            if i == j {
                continue;
            }
            if a == b {
                duplicate = true;
            } else if *a == ("*", "*") || (a.0 == b.0 && (a.1 == "*" || b.1 == "*")) {
                overlap = true;
            }
        }
    }
    let all = names.join(", ");
    if duplicate {
        errors.push(FieldError {
            path: at.clone(),
            reason: invalid(&all, "the same resource cannot be specified multiple times"),
        });
    }
    if overlap {
        errors.push(FieldError {
            path: at.clone(),
            reason: invalid(
                &all,
                "using overlapping resources such as 'secrets' and '*.' in the same resource list is not allowed as they will be masked",
            ),
        });
    }
}

/// The keys of one provider, checked; `None` where a key is wrong (its errors are
/// in `errors`).
fn provider_keys(
    kind: ProviderKind,
    keys: &Keys,
    at: &FieldPath,
    errors: &mut Vec<FieldError>,
) -> Vec<KeyTransformer> {
    let at = at.key(kind.name()).key("keys");
    if keys.keys.is_empty() {
        errors.push(FieldError {
            path: at,
            reason: Reason::Message("at least one keys is required".into()),
        });
        return Vec::new();
    }
    let mut out = Vec::new();
    for (k, key) in keys.keys.iter().enumerate() {
        let at = at.index(k);
        if key.name.is_empty() {
            errors.push(FieldError {
                path: at.key("name"),
                reason: Reason::Message("name is a mandatory field for a key".into()),
            });
        }
        // The stored prefix `k8s:enc:<provider>:v1:<name>:` ends at the first `:`
        // after the name: a name with one would read as another key's.
        if key.name.contains(':') {
            errors.push(FieldError {
                path: at.key("name"),
                reason: invalid(&key.name, "should not contain ':'"),
            });
        }
        if key.secret.is_empty() {
            errors.push(FieldError {
                path: at.key("secret"),
                reason: Reason::Message("secret is a mandatory field for a key".into()),
            });
            continue;
        }
        let secret = match base64::engine::general_purpose::STANDARD.decode(key.secret.trim()) {
            Ok(s) => s,
            Err(_) => {
                errors.push(FieldError {
                    path: at.key("secret"),
                    reason: invalid("REDACTED", "secrets must be base64 encoded"),
                });
                continue;
            }
        };
        match KeyTransformer::new(kind, &key.name, &secret) {
            Ok(t) if !key.name.is_empty() => out.push(t),
            Ok(_) => {}
            Err(e) => errors.push(FieldError {
                path: at.key("secret"),
                reason: invalid("REDACTED", &e),
            }),
        }
    }
    out
}

/// The keys of one entry's providers, in order.
fn entry_keys(
    providers: &[Provider],
    at: &FieldPath,
    errors: &mut Vec<FieldError>,
) -> Vec<KeyTransformer> {
    let mut out = Vec::new();
    for (j, p) in providers.iter().enumerate() {
        let at = at.index(j);
        let set = [
            p.aesgcm.is_some(),
            p.aescbc.is_some(),
            p.secretbox.is_some(),
            p.identity.is_some(),
            p.kms.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if set == 0 {
            errors.push(FieldError {
                path: at,
                reason: Reason::Message(
                    "provider does not contain any of the expected providers: KMS, AESGCM, AESCBC, Secretbox, Identity".into(),
                ),
            });
            continue;
        }
        if set > 1 {
            errors.push(FieldError {
                path: at,
                reason: Reason::Message(
                    "more than one provider specified in a single element, should split into different list elements".into(),
                ),
            });
            continue;
        }
        if p.kms.is_some() {
            errors.push(FieldError {
                path: at.key("kms"),
                reason: Reason::Forbidden(
                    "rk8s-server has no KMS plugin support: use aesgcm, aescbc or secretbox with a key in this file".into(),
                ),
            });
        } else if let Some(keys) = &p.aesgcm {
            out.extend(provider_keys(ProviderKind::AesGcm, keys, &at, errors));
        } else if let Some(keys) = &p.aescbc {
            out.extend(provider_keys(ProviderKind::AesCbc, keys, &at, errors));
        } else if let Some(keys) = &p.secretbox {
            out.extend(provider_keys(ProviderKind::Secretbox, keys, &at, errors));
        } else {
            out.push(KeyTransformer::identity());
        }
    }
    out
}

/// Every problem of `file`, or the checked configuration.
fn check(file: File) -> Result<EncryptionConfig, Vec<FieldError>> {
    let mut errors =
        rk8s_api::validation::type_meta_errors(&file.api_version, &file.kind, (API_VERSION, KIND));
    let root = FieldPath::root();
    if file.resources.is_empty() {
        errors.push(FieldError {
            path: root.key("resources"),
            reason: Reason::Message("at least one resources is required".into()),
        });
    }
    let mut config = EncryptionConfig {
        resources: Vec::new(),
        keys: Vec::new(),
    };
    for (i, entry) in file.resources.into_iter().enumerate() {
        let at = root.key("resources").index(i);
        if entry.resources.is_empty() {
            errors.push(FieldError {
                path: at.key("resources"),
                reason: Reason::Message(format!(
                    "at least one {} is required",
                    at.key("resources")
                )),
            });
        }
        check_overlap(&entry.resources, &at.key("resources"), &mut errors);
        check_names(&entry.resources, &at.key("resources"), &mut errors);
        if entry.providers.is_empty() {
            errors.push(FieldError {
                path: at.key("providers"),
                reason: Reason::Message(format!(
                    "at least one {} is required",
                    at.key("providers")
                )),
            });
        }
        let keys = entry_keys(&entry.providers, &at.key("providers"), &mut errors);
        config.resources.push(entry.resources);
        config.keys.push(keys);
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

/// Reads the configuration `text` of the file named `file`; every problem comes back
/// with its file, line and field.
pub fn parse(file: &str, text: &str) -> Result<EncryptionConfig, Vec<Diagnostic>> {
    let (raw, positions): (File, _) = rk8s_api::formats::decode_single(file, text)?;
    check(raw).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| Diagnostic {
                file: file.to_string(),
                location: positions.locate(&e.path),
                message: e.to_string(),
                field: Some(e.path),
            })
            .collect()
    })
}

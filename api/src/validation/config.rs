//! ConfigMaps and Secrets: key names, total size, and the keys each Secret type
//! requires (core/v1 `ValidateConfigMap`, `ValidateSecret`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::Errors;
use crate::path::FieldPath;

/// The most a ConfigMap's or Secret's data may hold (Kubernetes' `MaxSecretSize`).
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

/// A ConfigMap or Secret key: at most 253 of `[-._a-zA-Z0-9]`, not `.` or `..` and
/// not starting with `..` (Kubernetes' `IsConfigMapKey`).
pub(super) fn config_key(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if key.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    if key.is_empty() || !key.chars().all(allowed) {
        errs.push(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' \
             (e.g. 'key.name', or 'KEY_NAME', or 'key-name', regex used for validation is \
             '[-._a-zA-Z0-9]+')"
                .to_string(),
        );
    }
    match key {
        "." => errs.push("must not be '.'".to_string()),
        ".." => errs.push("must not be '..'".to_string()),
        k if k.starts_with("..") => errs.push("must not start with '..'".to_string()),
        _ => {}
    }
    errs
}

fn too_long(errs: &mut Errors, path: &FieldPath, size: usize) {
    if size > MAX_DATA_BYTES {
        errs.message(
            path,
            format!("too long: must have at most {MAX_DATA_BYTES} bytes"),
        );
    }
}

pub(super) fn config_map(errs: &mut Errors, cm: &ConfigMap) {
    let data = FieldPath::root().key("data");
    let binary = FieldPath::root().key("binaryData");
    let mut size = 0;
    for (key, value) in cm.data.iter().flatten() {
        errs.syntax(&data.key(key.clone()), key, config_key(key));
        if cm.binary_data.as_ref().is_some_and(|b| b.contains_key(key)) {
            errs.invalid(
                &data.key(key.clone()),
                key,
                "duplicate of key present in binaryData",
            );
        }
        size += value.len();
    }
    for (key, value) in cm.binary_data.iter().flatten() {
        errs.syntax(&binary.key(key.clone()), key, config_key(key));
        size += value.0.len();
    }
    too_long(errs, &FieldPath::root(), size);
}

/// The Secret types with required keys, and those keys (core/v1 `SecretType*`).
const SERVICE_ACCOUNT_TOKEN: &str = "kubernetes.io/service-account-token";
const DOCKERCFG: &str = "kubernetes.io/dockercfg";
const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
const BASIC_AUTH: &str = "kubernetes.io/basic-auth";
const SSH_AUTH: &str = "kubernetes.io/ssh-auth";
const TLS: &str = "kubernetes.io/tls";
/// The annotation naming the ServiceAccount of a token Secret.
const SERVICE_ACCOUNT_NAME: &str = "kubernetes.io/service-account.name";

pub(super) fn secret(errs: &mut Errors, s: &Secret) {
    let data_path = FieldPath::root().key("data");
    // `stringData` is merged into `data` on write (stringData wins); validate what
    // would be stored.
    let mut data: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for (key, value) in s.data.iter().flatten() {
        errs.syntax(&data_path.key(key.clone()), key, config_key(key));
        data.insert(key, &value.0);
    }
    let string_path = FieldPath::root().key("stringData");
    for (key, value) in s.string_data.iter().flatten() {
        errs.syntax(&string_path.key(key.clone()), key, config_key(key));
        data.insert(key, value.as_bytes());
    }
    too_long(errs, &data_path, data.values().map(|v| v.len()).sum());
    let require = |errs: &mut Errors, key: &str| {
        if !data.contains_key(key) {
            errs.required(&data_path.key(key));
        }
    };
    match s.type_.as_deref().unwrap_or("Opaque") {
        SERVICE_ACCOUNT_TOKEN => {
            let named = s
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(SERVICE_ACCOUNT_NAME))
                .is_some_and(|n| !n.is_empty());
            if !named {
                errs.required(
                    &FieldPath::root()
                        .key("metadata")
                        .key("annotations")
                        .key(SERVICE_ACCOUNT_NAME),
                );
            }
        }
        kind @ (DOCKERCFG | DOCKER_CONFIG_JSON) => {
            let key = if kind == DOCKERCFG {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            match data.get(key) {
                None => errs.required(&data_path.key(key)),
                Some(bytes) => {
                    if let Err(e) =
                        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(bytes)
                    {
                        errs.invalid(
                            &data_path.key(key),
                            "<secret contents redacted>",
                            e.to_string(),
                        );
                    }
                }
            }
        }
        // Either may be empty, but one must be there.
        BASIC_AUTH if !data.contains_key("username") && !data.contains_key("password") => {
            require(errs, "username");
            require(errs, "password");
        }
        SSH_AUTH if data.get("ssh-privatekey").is_none_or(|v| v.is_empty()) => {
            errs.required(&data_path.key("ssh-privatekey"));
        }
        TLS => {
            require(errs, "tls.crt");
            require(errs, "tls.key");
        }
        _ => {}
    }
}

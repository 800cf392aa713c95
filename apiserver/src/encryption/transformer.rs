//! The store's [`ValueTransformer`] for an `EncryptionConfiguration`, as kube's
//! prefix transformers (`storage/value/transformer.go`) behave:
//!
//! - a write is sealed with the first key of the first provider of the entry that
//!   covers the key (`identity` first: stored plain);
//! - a read tries every key of the entry in order, by its prefix (`identity`: any
//!   value not starting with `k8s:enc:`); a value read with any but the first is
//!   stale, and a value no key reads is an error that names what was missing;
//! - keys no entry covers are stored as written, but an encrypted value found there
//!   is an error rather than garbage (kube's `EncryptCheck` identity), as when a
//!   resource is taken out of the configuration before its values were rewritten.

use std::borrow::Cow;

use rk8s_raftstore::transform::{Readable, ValueTransformer};

use super::config::EncryptionConfig;
use super::providers::{ENCRYPTED_PREFIX, KeyTransformer, ProviderKind};
use super::resources::{REGISTRY_PREFIX, Routes};

/// Values encrypted at rest as an `EncryptionConfiguration` says.
#[derive(Debug)]
pub struct EncryptionTransformer {
    routes: Routes,
    keys: Vec<Vec<KeyTransformer>>,
}

/// The provider and key name a stored value's prefix names
/// (`k8s:enc:aesgcm:v1:key1:…` → `aesgcm`, `key1`).
fn named_key(stored: &[u8]) -> Option<(String, String)> {
    let rest = stored.strip_prefix(ENCRYPTED_PREFIX)?;
    let mut parts = rest.splitn(4, |b| *b == b':');
    let provider = parts.next()?;
    let _version = parts.next()?;
    let name = parts.next()?;
    parts.next()?;
    Some((
        String::from_utf8_lossy(provider).into_owned(),
        String::from_utf8_lossy(name).into_owned(),
    ))
}

impl EncryptionTransformer {
    /// The transformer of a checked configuration.
    pub fn new(config: EncryptionConfig) -> Self {
        let kinds = rk8s_api::object::kinds();
        EncryptionTransformer {
            routes: Routes::new(&config.resources, &kinds),
            keys: config.keys,
        }
    }

    /// The keys that transform values stored under `key`, if an entry covers it.
    fn keys_for(&self, key: &[u8]) -> Option<&[KeyTransformer]> {
        let entry = self.routes.entry_for(key)?;
        self.keys.get(entry).map(Vec::as_slice)
    }

    /// Every store key prefix the configuration covers (what a rewrite reads).
    pub fn prefixes(&self) -> Vec<String> {
        self.routes.prefixes()
    }

    /// The name of the key new values of `key` are written with (`identity`: plain),
    /// for messages.
    pub fn writing_key(&self, key: &[u8]) -> Option<String> {
        let first = self.keys_for(key)?.first()?;
        Some(match first.kind() {
            ProviderKind::Identity => "identity".to_string(),
            kind => format!("{} key {}", kind.name(), first.name()),
        })
    }
}

impl ValueTransformer for EncryptionTransformer {
    fn transform_to_storage<'a>(
        &self,
        key: &[u8],
        value: &'a [u8],
    ) -> Result<Cow<'a, [u8]>, String> {
        match self.keys_for(key).and_then(<[KeyTransformer]>::first) {
            Some(first) if first.kind() != ProviderKind::Identity => {
                first.seal(key, value).map(Cow::Owned)
            }
            _ => Ok(Cow::Borrowed(value)),
        }
    }

    fn transform_from_storage<'a>(
        &self,
        key: &[u8],
        stored: &'a [u8],
    ) -> Result<Readable<'a>, String> {
        let Some(keys) = self.keys_for(key) else {
            if key.starts_with(REGISTRY_PREFIX.as_bytes()) && stored.starts_with(ENCRYPTED_PREFIX) {
                return Err(
                    "identity transformer tried to read encrypted data (its resource is not in the encryption configuration)".into(),
                );
            }
            return Ok(Readable::plain(stored));
        };
        let mut errors = Vec::new();
        let mut prefix_matched = false;
        for (i, k) in keys.iter().enumerate() {
            let plain = k.kind() == ProviderKind::Identity;
            let Some(data) = stored.strip_prefix(k.prefix()) else {
                continue;
            };
            if plain {
                if data.starts_with(ENCRYPTED_PREFIX) {
                    // kube: an identity provider's failure does not stop the others.
                    continue;
                }
                return Ok(Readable {
                    value: Cow::Borrowed(data),
                    stale: i != 0,
                });
            }
            prefix_matched = true;
            match k.open(key, data) {
                Ok(v) => {
                    return Ok(Readable {
                        value: Cow::Owned(v),
                        stale: i != 0,
                    });
                }
                // Two providers of one kind may share a key name: try the next.
                Err(e) => errors.push(format!("{} key {}: {e}", k.kind().name(), k.name())),
            }
        }
        if prefix_matched {
            return Err(errors.join("; "));
        }
        Err(match named_key(stored) {
            Some((provider, name)) => format!(
                "the value was encrypted with the {provider} key named \"{name}\", which the encryption configuration does not list for this resource"
            ),
            None => "the value is not encrypted and the identity provider is not in the encryption configuration for this resource (no matching prefix found)".into(),
        })
    }

    fn transforms(&self, key: &[u8]) -> bool {
        self.keys_for(key).is_some()
    }
}

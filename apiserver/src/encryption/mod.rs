//! Encryption at rest: kube-apiserver's `--encryption-provider-config`.
//!
//! An `EncryptionConfiguration` file ([`config`]) lists resources and the providers
//! that encrypt them ([`providers`]: `aesgcm`, `aescbc`, `secretbox`, `identity`; the
//! first key writes, every key reads). Its [`EncryptionTransformer`] is given to the
//! store member ([`rk8s_raftstore::server::MemberConfig::transformer`]), whose
//! [`Store`](rk8s_raftstore::server::Store) handle encrypts values on their way in and
//! decrypts them on their way out: everything above the handle — the registry, the
//! watch cache, the listers, the store port's clients — reads plain objects, and the
//! raft log, the raft-engine files, the snapshots and the backups hold ciphertext in
//! kube's format (`k8s:enc:aesgcm:v1:<key name>:…`). Every member of a cluster is
//! started with the same file, as kube-apiserver's members are.
//!
//! ```
//! use rk8s_apiserver::encryption::EncryptionTransformer;
//! use rk8s_raftstore::transform::ValueTransformer;
//!
//! let yaml = "apiVersion: apiserver.config.k8s.io/v1
//! kind: EncryptionConfiguration
//! resources:
//! - resources: [secrets]
//!   providers:
//!   - aesgcm:
//!       keys: [{name: key1, secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}]
//!   - identity: {}
//! ";
//! let t = EncryptionTransformer::parse("enc.yaml", yaml).unwrap();
//! let key = b"/registry/secrets/default/s";
//! let stored = t.transform_to_storage(key, b"{}").unwrap();
//! assert!(stored.starts_with(b"k8s:enc:aesgcm:v1:key1:"));
//! assert_eq!(&t.transform_from_storage(key, &stored).unwrap().value[..], b"{}");
//! ```

pub mod config;
pub mod providers;
pub mod resources;
#[cfg(test)]
mod tests;
pub mod transformer;

use std::path::{Path, PathBuf};

use rk8s_api::manifest::Diagnostic;

pub use config::EncryptionConfig;
pub use transformer::EncryptionTransformer;

/// What reading an encryption configuration can run into.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be read.
    #[error("cannot read the encryption configuration {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is wrong (each problem with its file, line and field).
    #[error("{}", diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The problems.
        diagnostics: Vec<Diagnostic>,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl EncryptionTransformer {
    /// The transformer of the configuration `text`, read from the file named `file`.
    pub fn parse(file: &str, text: &str) -> Result<Self> {
        config::parse(file, text)
            .map(Self::new)
            .map_err(|diagnostics| Error::Invalid { diagnostics })
    }

    /// The transformer of the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text)
    }
}

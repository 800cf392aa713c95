//! Bootstrapping a cluster, apart from serving its API: the CAs and certificates
//! ([`pki`]), the secrets every member shares ([`secrets`]), store members joining
//! ([`members`]), nodes joining ([`join`]), a cluster restored from a backup
//! ([`restore`]) and users' certificates with several groups ([`subject`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub mod certs;
pub mod join;
pub mod members;
pub mod pki;
pub mod restore;
pub mod secrets;
pub mod subject;

use pki::PkiError;

/// The file in the data directory of a cluster's first member (or of a member
/// restored from a backup) that holds the admin token, from which the API server
/// writes the admin kubeconfig.
pub const ADMIN_TOKEN_FILE: &str = "pki/admin.token";

/// Why the API server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Certificates could not be made or loaded.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory holds a store member but no member certificate.
    #[error("{} holds a store member but no member certificate (pki/member.crt): its join did not finish, or it was made before members used mutual TLS; start over with an empty data directory (and `rk8s-server member remove` the old member if the cluster has it)", dir.display())]
    UnfinishedJoin {
        /// The data directory.
        dir: PathBuf,
    },
    /// A backup could not be restored.
    #[error("{0}")]
    Restore(String),
    /// The store did not become ready.
    #[error("the store is not ready: {0}")]
    Store(String),
    /// The address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Writes a file atomically (through a temporary file), `private` ones mode 0600.
pub fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), StartError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| StartError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if private {
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io)?;
    std::io::Write::write_all(&mut f, contents.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

//! What starting a member can run into, and the keys its membership lives under:
//! shared by the data directory's checks ([`crate::data_dir`]) and the member's start
//! ([`crate::server`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::error::Error;

/// Where members record their peer addresses.
pub const MEMBERS_PREFIX: &str = "/rk8s/members/";

/// Errors starting a member.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Preparing the data directory failed.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The raft log could not be opened.
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Joining the cluster failed.
    #[error("cannot join the cluster through {peer}: {reason}")]
    Join {
        /// The member contacted.
        peer: String,
        /// Why.
        reason: String,
    },
    /// The store refused to start.
    #[error(transparent)]
    Store(#[from] Error),
    /// The data directory is in a newer format than this binary reads.
    #[error("{} is in data format {found}, written by a newer rk8s; this rk8s-server reads formats up to {supported}: run a release that reads it (a downgrade goes through a snapshot: `rk8s-server snapshot save` with the newer release, `snapshot restore` with this one)", path.display())]
    NewerFormat {
        /// The data directory.
        path: PathBuf,
        /// Its format.
        found: u32,
        /// The newest this binary reads.
        supported: u32,
    },
}

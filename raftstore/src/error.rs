//! The store's errors.

/// What can go wrong in the store.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The revision asked for is older than the compaction point: its history is gone.
    #[error("revision {requested} has been compacted (compaction point is {compact_revision})")]
    Compacted {
        /// The revision asked for.
        requested: i64,
        /// The oldest revision still readable.
        compact_revision: i64,
    },
    /// The revision asked for has not happened yet.
    #[error("revision {requested} is in the future (current revision is {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: i64,
        /// The store's revision.
        current: i64,
    },
    /// A compare-and-swap write found another revision of the key.
    #[error("conflict on key {key}: expected mod_revision {expected}, found {actual}")]
    Conflict {
        /// The key, as text.
        key: String,
        /// The revision the writer expected (0: expected the key not to exist).
        expected: i64,
        /// The key's current mod_revision (0: it does not exist).
        actual: i64,
        /// The store's revision when the write was refused.
        revision: i64,
    },
    /// A lease id that is not (or no longer) granted.
    #[error("lease {0} not found")]
    LeaseNotFound(i64),
    /// A lease time to live of zero or less.
    #[error("lease time to live must be positive, got {0} seconds")]
    InvalidTtl(i64),
    /// A transaction writes the same key twice.
    #[error("duplicate key {0} in one transaction")]
    DuplicateKey(String),
    /// A command with no request in it.
    #[error("empty command")]
    EmptyCommand,
    /// This member cannot serve the request: ask the leader.
    #[error("not the leader{}", match leader { Some(id) => format!(" (the leader is member {id})"), None => " (no leader is known yet)".to_string() })]
    NotLeader {
        /// The leader this member knows of.
        leader: Option<u64>,
    },
    /// The request was not answered in time; a write may or may not have happened.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The store cannot serve: its log failed, or it is shutting down.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A log entry or message that does not decode.
    #[error("corrupt data: {0}")]
    Decode(String),
    /// A value the store's transformer (encryption at rest) could not turn into its
    /// stored form or back (kube-apiserver's words).
    #[error("unable to transform key \"{key}\": {reason}")]
    Transform {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A key as text, for messages.
pub(crate) fn key_text(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

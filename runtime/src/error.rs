//! Errors of the runtime.

use std::path::PathBuf;

/// What went wrong in the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No container with this id.
    #[error("container {id:?} not found")]
    ContainerNotFound {
        /// The id asked for.
        id: String,
    },
    /// A container with this id exists already.
    #[error("container {id:?} already exists")]
    ContainerExists {
        /// The id.
        id: String,
    },
    /// The container is not in a state that allows the operation.
    #[error("container {id:?} is {status}: cannot {operation}")]
    IncorrectStatus {
        /// The container.
        id: String,
        /// Its status.
        status: String,
        /// What was asked.
        operation: &'static str,
    },
    /// The OCI runtime (libcontainer or an external binary) failed.
    #[error("{engine}: {message}")]
    Engine {
        /// libcontainer, or the binary's name.
        engine: String,
        /// What it reported.
        message: String,
    },
    /// The container helper process could not be reached or answered nonsense.
    #[error("container helper at {socket}: {message}")]
    Helper {
        /// Its socket.
        socket: PathBuf,
        /// What failed.
        message: String,
    },
    /// An image is missing, or its files are broken.
    #[error("image {reference}: {message}")]
    Image {
        /// The reference or path tried.
        reference: String,
        /// What is wrong.
        message: String,
    },
    /// An image is missing and its pull policy is `Never` (kubelet's
    /// `ErrImageNeverPull`: no pull, no back-off).
    #[error("Container image {image:?} is not present with pull policy of Never")]
    ImageNeverPull {
        /// The image as the container names it.
        image: String,
    },
    /// An image is not pulled now: its last pull for the pod failed, and kubelet's
    /// back-off has not passed yet.
    #[error("Back-off pulling image {image:?}: {last_error}")]
    PullBackOff {
        /// The image as the container names it.
        image: String,
        /// The last pull's error (`ErrImagePull: ...`).
        last_error: String,
    },
    /// A pod or container description that cannot be run.
    #[error("{0}")]
    InvalidSpec(String),
    /// A host port a pod asks for is mapped or bound already.
    #[error("host port {port}/{protocol} is already in use by {owner}")]
    HostPortTaken {
        /// The port.
        port: u16,
        /// tcp or udp.
        protocol: String,
        /// Who has it: a pod (its uid from the network, `pod namespace/name` from the
        /// pod runtime), or "another process on this host".
        owner: String,
    },
    /// The pod network failed (see [`crate::network::PodNetwork`]).
    #[error(transparent)]
    Network(Box<dyn std::error::Error + Send + Sync>),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{operation}: {source}")]
    Sys {
        /// What was attempted.
        operation: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps an I/O error with the path it concerns.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// Wraps an errno with the operation that failed.
pub(crate) fn sys(operation: impl Into<String>) -> impl FnOnce(nix::Error) -> Error {
    let operation = operation.into();
    move |source| Error::Sys { operation, source }
}

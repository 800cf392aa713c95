//! The node agent's side of the cluster.

pub mod activity;
pub mod agent;
pub mod devices;
pub mod health_checks;
pub mod identity;
pub mod ingress;
pub mod inputs;
pub mod local_volumes;
pub mod metrics;
pub mod netpol;
pub mod network;
pub mod node_actor;
pub mod pod_actor;
pub mod pod_events;
pub mod port_forward;
pub mod proxy;
pub mod registration;
pub mod server;
pub mod services;
pub mod simulated;
pub mod stats;
#[cfg(test)]
pub(crate) mod test_objects;
pub mod throttle;
pub mod tokens;

/// Errors of joining and registering.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server's CA is not the one the join command pinned.
    #[error(
        "the server's CA has hash {actual}, not the {expected} given with --ca-cert-hash: refusing to trust it"
    )]
    CaMismatch {
        /// The pinned hash.
        expected: String,
        /// The server's.
        actual: String,
    },
    /// The API refused or failed a request.
    #[error("{what}: {source}")]
    Api {
        /// What was attempted.
        what: String,
        /// The cause (the server's message for 4xx).
        #[source]
        source: kube::Error,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Anything else, with a sentence.
    #[error("{0}")]
    Other(String),
}

/// Result with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Api { what, source }
}

//! Kubernetes' audit log: who did what to which object, when, from where, and what
//! the server answered, as kube-apiserver's `--audit-policy-file` and
//! `--audit-log-path` write it (`audit.k8s.io/v1` `Event`s, one JSON object a line).
//!
//! - [`policy`]: the policy file, and the level each request is logged at;
//! - [`attributes`]: what the log reads off a request before serving it;
//! - [`record`]: one request's events, from `RequestReceived` to `ResponseComplete`;
//! - [`event`]: an event and its JSON line;
//! - [`log`]: the queue and the writer thread (requests never wait on the disk);
//! - [`rotate`]: the log file and its rotation (`--audit-log-maxsize`, `-maxbackup`,
//!   `-maxage`).
//!
//! Without a policy and a log path the server has no [`Auditor`], and a request
//! costs one branch more.
//!
//! ```
//! use rk8s_apiserver::audit::policy::{Attributes, Level, Policy, User};
//!
//! let policy = Policy::load("audit.yaml", r#"
//! apiVersion: audit.k8s.io/v1
//! kind: Policy
//! rules:
//! - level: None
//!   nonResourceURLs: ["/healthz*"]
//! - level: Metadata
//! "#).unwrap();
//! let admin = User { username: "admin".into(), ..User::default() };
//! let asked = |path| Attributes { user: Some(&admin), verb: "get", path, resource: None };
//! assert_eq!(policy.decide(&asked("/healthz")).level, Level::None);
//! assert_eq!(policy.decide(&asked("/version")).level, Level::Metadata);
//! ```

pub mod attributes;
pub mod event;
pub mod log;
pub mod policy;
pub mod record;
pub mod rotate;

use std::path::PathBuf;

use rk8s_api::manifest::Diagnostic;

pub use attributes::RequestInfo;
pub use policy::{Level, Policy, Stage, User};
pub use record::{Record, annotate, keep_request_body};
pub use rotate::Rotation;

use event::{Event, ResponseStatus};
use log::{LineWriter, Sink};
use policy::Attributes;

/// What can stop the audit log from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The policy file is wrong (each problem with its file, line and field).
    #[error("{}", diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    InvalidPolicy {
        /// The problems.
        diagnostics: Vec<Diagnostic>,
    },
    /// The log file cannot be opened.
    #[error("cannot open the audit log {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The writer thread could not start.
    #[error("cannot start the audit log's writer")]
    Writer(#[source] std::io::Error),
}

/// `pub type Result` of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where events are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard output (`--audit-log-path -`).
    Stdout,
    /// A file, rotated.
    File {
        /// The file.
        path: PathBuf,
        /// When it rotates.
        rotation: Rotation,
    },
}

impl LogTarget {
    /// The target `--audit-log-path` names (`-` is standard output).
    pub fn from_path(path: PathBuf, rotation: Rotation) -> Self {
        if path.as_os_str() == "-" {
            LogTarget::Stdout
        } else {
            LogTarget::File { path, rotation }
        }
    }

    /// Checks that the log can be written (creating its file and directory), so that
    /// a bad path stops a start before anything else begins.
    pub fn check(&self) -> Result<()> {
        match self {
            LogTarget::Stdout => Ok(()),
            LogTarget::File { path, rotation } => rotate::RotatingFile::open(path, *rotation)
                .map(drop)
                .map_err(|source| Error::Open {
                    path: path.clone(),
                    source,
                }),
        }
    }
}

/// How the audit log is kept.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditConfig {
    /// Which requests are logged, and how much of them.
    pub policy: Policy,
    /// Where.
    pub log: LogTarget,
}

impl AuditConfig {
    /// Reads the policy file `file` (its text is `text`) for a log at `log`.
    pub fn load(file: &str, text: &str, log: LogTarget) -> Result<Self> {
        let policy =
            Policy::load(file, text).map_err(|diagnostics| Error::InvalidPolicy { diagnostics })?;
        Ok(AuditConfig { policy, log })
    }
}

/// The audit log of a running API server: its policy and its queue.
#[derive(Debug)]
pub struct Auditor {
    policy: Policy,
    sink: Sink,
}

impl Auditor {
    /// Opens the log and starts its writer.
    pub fn start(config: &AuditConfig) -> Result<Self> {
        let out: Box<dyn LineWriter> = match &config.log {
            LogTarget::Stdout => Box::new(log::Stdout::new()),
            LogTarget::File { path, rotation } => Box::new(
                rotate::RotatingFile::open(path, *rotation).map_err(|source| Error::Open {
                    path: path.clone(),
                    source,
                })?,
            ),
        };
        let auditor = Self::with_writer(config.policy.clone(), out)?.0;
        let to = match &config.log {
            LogTarget::Stdout => "standard output".to_string(),
            LogTarget::File { path, .. } => path.display().to_string(),
        };
        tracing::info!("audit log to {to}: {}", policy::summary(&config.policy));
        Ok(auditor)
    }

    /// An auditor writing to `out`, and its writer thread (which ends once the
    /// auditor and its records are dropped).
    pub fn with_writer(
        policy: Policy,
        out: Box<dyn LineWriter>,
    ) -> Result<(Self, std::thread::JoinHandle<()>)> {
        let (sink, handle) = log::spawn(out).map_err(Error::Writer)?;
        Ok((Auditor { policy, sink }, handle))
    }

    /// Starts the audit of a request authenticated as `user`: `None` when the policy
    /// does not log it. `authorized` when the request goes through authorization
    /// (its decision is annotated).
    pub fn begin(&self, info: RequestInfo, user: User, authorized: bool) -> Option<Record> {
        let decision = self.policy.decide(&Attributes {
            user: Some(&user),
            verb: &info.verb,
            path: &info.path,
            resource: info.resource.as_ref(),
        });
        log::observe_level(decision.level);
        (decision.level > Level::None)
            .then(|| Record::new(self.sink.clone(), info, user, decision, authorized))
    }

    /// Logs a request whose authentication failed with `code` (401): one
    /// `ResponseStarted` event with no user, as kube-apiserver's
    /// `WithFailedAuthenticationAudit` writes it.
    pub fn unauthenticated(&self, info: RequestInfo, code: u16) {
        let decision = self.policy.decide(&Attributes {
            user: None,
            verb: &info.verb,
            path: &info.path,
            resource: info.resource.as_ref(),
        });
        log::observe_level(decision.level);
        if decision.level == Level::None || decision.omit_stages.contains(Stage::ResponseStarted) {
            return;
        }
        let message = info.credentials.failure_message();
        self.sink.send(Event {
            level: decision.level,
            stage: Stage::ResponseStarted,
            stage_timestamp: jiff::Timestamp::now(),
            user: std::sync::Arc::new(User::default()),
            impersonated: None,
            response_status: Some(ResponseStatus::unauthenticated(message, code)),
            request_body: None,
            response_body: None,
            omit_managed_fields: decision.omit_managed_fields,
            annotations: Default::default(),
            info: std::sync::Arc::new(info),
        });
    }
}

#[cfg(test)]
mod tests;

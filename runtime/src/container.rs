//! What a container is to the runtime: its description on create, its state, its
//! lifecycle (a checked state machine) and exec'd processes.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which OCI runtime runs a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Engine {
    /// youki's libcontainer, in the helper process (the default).
    #[default]
    Libcontainer,
    /// An external OCI runtime binary driven through its CLI (runc's commands).
    Oci {
        /// Name, as in a RuntimeClass `handler` (e.g. `runc`).
        name: String,
        /// Path of the binary.
        binary: PathBuf,
    },
}

impl Engine {
    /// `runc` from `$PATH` (or /usr/sbin/runc).
    pub fn runc() -> Self {
        Engine::Oci {
            name: "runc".to_string(),
            binary: PathBuf::from("runc"),
        }
    }

    /// Its name in messages and RuntimeClass handlers.
    pub fn name(&self) -> &str {
        match self {
            Engine::Libcontainer => "libcontainer",
            Engine::Oci { name, .. } => name,
        }
    }
}

/// Everything needed to create a container from a prepared bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateContainer {
    /// Unique id on this host.
    pub id: String,
    /// The bundle directory (config.json; the rootfs is mounted by then).
    pub bundle: PathBuf,
    /// Which runtime creates it.
    pub engine: Engine,
    /// Where stdout and stderr go, in the CRI log format.
    pub log_path: PathBuf,
    /// Size at which the log file is rotated.
    pub log_max_bytes: u64,
    /// Its main process' stdin and terminal (none and none when absent: state files
    /// written before they existed read so).
    #[serde(default)]
    pub io: ContainerIo,
}

/// The stdin and terminal of a container's main process, as its pod asks
/// (`stdin`, `stdinOnce`, `tty` of a Kubernetes container).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContainerIo {
    /// It gets a stdin that attach sessions write to; its reads wait while nobody is
    /// attached (without: /dev/null).
    #[serde(default)]
    pub stdin: bool,
    /// Its stdin is closed (it reads end-of-file) once the first attach session that
    /// wrote to it ends (CRI's `stdin_once`).
    #[serde(default)]
    pub stdin_once: bool,
    /// It runs on a terminal, whose output is its stdout (`tty`).
    #[serde(default)]
    pub tty: bool,
}

/// Lifecycle of a container, as in the OCI runtime spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    /// Created: namespaces and cgroups exist, the process waits for start.
    Created,
    /// Its process runs.
    Running,
    /// Its process has exited.
    Stopped,
}

impl Status {
    /// Whether `start` is allowed.
    pub fn can_start(self) -> bool {
        self == Status::Created
    }

    /// Whether signals can be delivered.
    pub fn can_kill(self) -> bool {
        matches!(self, Status::Created | Status::Running)
    }

    /// Whether `delete` is allowed without force.
    pub fn can_delete(self) -> bool {
        self == Status::Stopped
    }

    /// Whether processes can be exec'd into it.
    pub fn can_exec(self) -> bool {
        self == Status::Running
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
        })
    }
}

/// Why a container stopped, in Kubernetes' words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitReason {
    /// Exit code 0.
    Completed,
    /// Any other exit.
    Error,
    /// Killed by the kernel's OOM killer in its memory cgroup.
    #[serde(rename = "OOMKilled")]
    OomKilled,
    /// It exited while no helper watched it, so its exit code is lost.
    #[serde(rename = "ContainerStatusUnknown")]
    Unknown,
}

impl ExitReason {
    /// The reason string of a Kubernetes `ContainerStateTerminated`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::Completed => "Completed",
            ExitReason::Error => "Error",
            ExitReason::OomKilled => "OOMKilled",
            ExitReason::Unknown => "ContainerStatusUnknown",
        }
    }
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exit {
    /// Exit code; 128 + signal number when killed by a signal.
    pub code: i32,
    /// Why.
    pub reason: ExitReason,
    /// When, in nanoseconds since the Unix epoch.
    pub finished_at_ns: i64,
}

/// A container as the runtime knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    /// How it was created.
    #[serde(flatten)]
    pub spec: CreateContainer,
    /// Its lifecycle state.
    pub status: Status,
    /// Its init process on the host.
    pub pid: Option<i32>,
    /// The init process' start time in clock ticks since boot (from /proc), to tell
    /// it apart from a later process with the same pid.
    pub pid_start_ticks: Option<u64>,
    /// Its cgroup path (the spec's `linux.cgroupsPath`).
    pub cgroup_path: Option<String>,
    /// When it was created, in nanoseconds since the Unix epoch.
    pub created_at_ns: i64,
    /// When it was started.
    pub started_at_ns: Option<i64>,
    /// How it ended, once stopped.
    pub exit: Option<Exit>,
    /// Its stdin was closed for good: with `stdinOnce`, its first attach session with
    /// stdin took the only writer.
    #[serde(default)]
    pub stdin_closed: bool,
}

impl ContainerState {
    /// Its id.
    pub fn id(&self) -> &str {
        &self.spec.id
    }
}

/// A process to run inside a running container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExecProcess {
    /// Program and arguments.
    pub args: Vec<String>,
    /// Extra environment (`KEY=VALUE`), on top of the container's.
    pub env: Vec<String>,
    /// Working directory; the container's when empty.
    pub cwd: Option<String>,
    /// Run it on a new pseudo-terminal, whose master end comes back to the caller
    /// (`kubectl exec -t`).
    #[serde(default)]
    pub tty: bool,
}

/// A started exec'd process.
#[derive(Debug)]
pub struct ExecHandle {
    /// Its pid on the host, for `wait_exec`.
    pub pid: i32,
    /// The master end of its terminal, with `tty`.
    pub pty: Option<std::os::fd::OwnedFd>,
}

/// Which of a container's streams an attach session wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AttachStreams {
    /// To write to its stdin (or terminal).
    pub stdin: bool,
    /// Its stdout (with a terminal: the terminal's output).
    pub stdout: bool,
    /// Its stderr (none with a terminal).
    pub stderr: bool,
}

/// Why an attach session ended on the runtime's side: the byte its
/// [`AttachHandle::ended`] reads last, before end-of-file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachEnd {
    /// The container stopped (or was removed).
    Exited,
    /// End-of-file without a byte: whoever served the session went away (a restarted
    /// container helper).
    Lost,
}

impl AttachEnd {
    /// The byte that says it.
    pub fn byte(self) -> u8 {
        match self {
            AttachEnd::Exited => b'x',
            AttachEnd::Lost => 0,
        }
    }

    /// What the last byte read (None: end-of-file) says.
    pub fn from_byte(byte: Option<u8>) -> Self {
        match byte {
            Some(b'x') => AttachEnd::Exited,
            _ => AttachEnd::Lost,
        }
    }
}

/// What an attach session's [`AttachHandle::ended`] says, a byte each: notes while
/// the session goes on, then why it ended ([`AttachEnd`]), then end-of-file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachNote {
    /// The session read the container's output slower than the container wrote it:
    /// output that did not fit its pipe was skipped (the log has it all). The session
    /// goes on, and gets the output again once it has caught up. Said once a session.
    OutputSkipped,
    /// The session has ended.
    Ended(AttachEnd),
}

impl AttachNote {
    /// The byte of [`AttachNote::OutputSkipped`].
    pub const OUTPUT_SKIPPED: u8 = b'k';

    /// What a byte read (None: end-of-file) says.
    pub fn from_byte(byte: Option<u8>) -> Self {
        match byte {
            Some(Self::OUTPUT_SKIPPED) => AttachNote::OutputSkipped,
            other => AttachNote::Ended(AttachEnd::from_byte(other)),
        }
    }
}

/// A live attach session to a container's main process: its output from now on, and
/// where its input goes. Dropping the handle ends the session.
#[derive(Debug)]
pub struct AttachHandle {
    /// The container runs on a terminal: its one output stream is `stdout`, and
    /// `terminal` takes resizes.
    pub tty: bool,
    /// Where input goes (its stdin FIFO, or its terminal), when asked for and the
    /// container has a stdin still open; non-blocking. With `stdin_once` this is the
    /// only writer: dropping it closes the container's stdin.
    pub stdin: Option<std::os::fd::OwnedFd>,
    /// Its stdin closes when `stdin` is dropped (`stdinOnce` without a terminal).
    pub stdin_once: bool,
    /// The terminal's master end (tty containers), for window sizes.
    pub terminal: Option<std::os::fd::OwnedFd>,
    /// Its stdout from now on, when asked for.
    pub stdout: Option<std::os::fd::OwnedFd>,
    /// Its stderr from now on, when asked for (never with a terminal).
    pub stderr: Option<std::os::fd::OwnedFd>,
    /// Reads [`AttachNote`]s: [`AttachNote::OutputSkipped`] while the session goes
    /// on, an [`AttachEnd`] byte and end-of-file when the runtime ends it. Closing it
    /// ends the session for the runtime.
    pub ended: std::os::fd::OwnedFd,
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> i64 {
    i64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or(i64::MAX)
}

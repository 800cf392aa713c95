//! The client side of the helper: one connection per call, and the helper started on
//! first use if none runs.
//!
//! A helper outlives the agents that start it, so an upgraded agent may find an older
//! helper still running. What needs a newer helper (containers with stdin or a
//! terminal, attach) first asks its [`PROTOCOL_VERSION`]: an older helper that runs
//! no container is replaced (it is stopped; the next call starts the current binary,
//! which adopts what the old one kept), one that runs containers is left alone and the
//! call refused, naming the fix.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::protocol::{self, AttachFd, PROTOCOL_VERSION, Request, Response};
use super::{HELPER_ARG, server, socket_path};
use crate::container::{
    AttachHandle, AttachStreams, ContainerState, CreateContainer, ExecHandle, ExecProcess, Status,
};
use crate::error::{Error, Result, io};
use crate::runtime::ContainerRuntime;

/// Talks to the helper that owns the state directory `root`, starting it when needed.
#[derive(Debug, Clone)]
pub struct HelperClient {
    root: PathBuf,
    exe: PathBuf,
    idle_exit: Option<Duration>,
}

impl HelperClient {
    /// A client for the helper of `root`; `exe` is started as the helper when none runs
    /// (a binary that calls [`super::run_if_requested`]).
    pub fn new(root: impl Into<PathBuf>, exe: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            exe: exe.into(),
            idle_exit: None,
        }
    }

    /// A helper started by this client exits after being idle this long (no container,
    /// no client).
    pub fn with_idle_exit(mut self, idle: Duration) -> Self {
        self.idle_exit = Some(idle);
        self
    }

    /// The helper's state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn helper_error(&self, message: impl Into<String>) -> Error {
        Error::Helper {
            socket: socket_path(&self.root),
            message: message.into(),
        }
    }

    fn connect(&self) -> Result<UnixStream> {
        let socket = socket_path(&self.root);
        if let Ok(stream) = UnixStream::connect(&socket) {
            return Ok(stream);
        }
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        // Clients that find no helper at once start one between them: the first to get
        // this lock starts it, the others then connect to it.
        let lock_path = self.root.join("helper-start.lock");
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        let _starting = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| self.helper_error(format!("flock {}: {e}", lock_path.display())))?;
        if let Ok(stream) = UnixStream::connect(&socket) {
            return Ok(stream);
        }
        let log = self.root.join("helper.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io(&log))?;
        let log_err = log_file.try_clone().map_err(io(&log))?;
        let mut command = Command::new(&self.exe);
        command
            .arg(HELPER_ARG)
            .arg("--root")
            .arg(&self.root)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            // Its own process group: a Ctrl-C in the client's terminal does not reach it.
            .process_group(0);
        if let Some(idle) = self.idle_exit {
            command
                .arg("--idle-exit-seconds")
                .arg(idle.as_secs().max(1).to_string());
        }
        let mut child = command.spawn().map_err(|e| {
            self.helper_error(format!("failed to start {}: {e}", self.exe.display()))
        })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(stream) = UnixStream::connect(&socket) {
                // Reap it whenever it exits, so it never lingers as a zombie of ours.
                std::thread::spawn(move || child.wait());
                return Ok(stream);
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Another client may have started one at the same moment.
                if let Ok(stream) = UnixStream::connect(&socket) {
                    return Ok(stream);
                }
                return Err(self.helper_error(format!(
                    "the helper exited with {status}; see {}",
                    log.display()
                )));
            }
            if Instant::now() > deadline {
                return Err(self.helper_error("the helper did not come up within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends one request and returns the answer; errors of the helper become [`Error`]s.
    pub fn call(&self, request: &Request, fds: &[BorrowedFd<'_>]) -> Result<Response> {
        self.call_with_fds(request, fds)
            .map(|(response, _)| response)
    }

    /// [`call`](Self::call), also returning the descriptors that came with the answer.
    pub fn call_with_fds(
        &self,
        request: &Request,
        fds: &[BorrowedFd<'_>],
    ) -> Result<(Response, Vec<OwnedFd>)> {
        let mut stream = self.connect()?;
        protocol::send(&mut stream, request, fds).map_err(|e| self.helper_error(e.to_string()))?;
        match protocol::recv::<Response>(&mut stream) {
            Ok(Some((Response::Error { kind, message }, _))) => Err(match kind.as_str() {
                "notFound" => Error::ContainerNotFound {
                    id: request_id(request),
                },
                "exists" => Error::ContainerExists {
                    id: request_id(request),
                },
                _ => self.helper_error(message),
            }),
            Ok(Some((response, fds))) => Ok((response, fds)),
            Ok(None) => Err(self.helper_error("the helper closed the connection")),
            Err(e) => Err(self.helper_error(e.to_string())),
        }
    }

    /// Whether a helper answers now (without starting one).
    pub fn is_running(&self) -> bool {
        UnixStream::connect(socket_path(&self.root)).is_ok()
    }

    /// Stops the helper if it runs. Containers keep running.
    pub fn shutdown(&self) -> Result<()> {
        if !self.is_running() {
            return Ok(());
        }
        self.call(&Request::Shutdown, &[])?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Makes sure the helper speaks [`PROTOCOL_VERSION`] before `what` (which needs
    /// it): an older helper running no container is stopped, to be replaced by the next
    /// call; one running containers refuses `what` with the fix in the message.
    fn require_current(&self, what: &str) -> Result<()> {
        let mut stream = self.connect()?;
        let mut ask = |request: &Request| -> Result<Option<Response>> {
            protocol::send(&mut stream, request, &[])
                .map_err(|e| self.helper_error(e.to_string()))?;
            match protocol::recv::<Response>(&mut stream) {
                Ok(answer) => Ok(answer.map(|(response, _)| response)),
                Err(e) => Err(self.helper_error(e.to_string())),
            }
        };
        let version = match ask(&Request::Ping)? {
            Some(Response::Hello { version }) => version,
            Some(Response::Ok) => 1,
            other => return Err(self.helper_error(format!("unexpected answer {other:?}"))),
        };
        if version >= PROTOCOL_VERSION {
            return Ok(());
        }
        // Asked of the same helper (this connection's), so that a helper another
        // client has started meanwhile is never the one stopped.
        let running = match ask(&Request::List)? {
            Some(Response::List { containers }) => containers
                .iter()
                .filter(|c| c.status != Status::Stopped)
                .count(),
            other => return Err(self.helper_error(format!("unexpected answer {other:?}"))),
        };
        if running > 0 {
            let pid = std::fs::read_to_string(self.root.join("helper.pid")).unwrap_or_default();
            let message = outdated_message(what, version, running, pid.trim(), &self.root);
            return Err(self.helper_error(message));
        }
        tracing::info!(
            version,
            "replacing the container helper of an older version: it runs no container"
        );
        ask(&Request::Shutdown)?;
        // It has gone once it closes the connection (its socket removed just before).
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = protocol::recv::<Response>(&mut stream);
        Ok(())
    }

    fn expect_ok(&self, response: Response) -> Result<()> {
        match response {
            Response::Ok => Ok(()),
            other => Err(self.helper_error(format!("unexpected answer {other:?}"))),
        }
    }
}

/// Why `what` is refused by a helper of protocol `version` (pid `pid`, when known)
/// that runs `running` containers, and what to do.
fn outdated_message(what: &str, version: u32, running: usize, pid: &str, root: &Path) -> String {
    let which = if pid.is_empty() {
        String::new()
    } else {
        format!(" (pid {pid})")
    };
    format!(
        "{what} needs a container helper of protocol version {PROTOCOL_VERSION}, and the one running{which} is older (version {version}) and runs {running} container(s): restart it with `kill $(cat {})`; its containers keep running and the next helper adopts them (the exit codes of those running then are lost)",
        root.join("helper.pid").display()
    )
}

fn request_id(request: &Request) -> String {
    match request {
        Request::Create(spec) => spec.id.clone(),
        Request::Start { id }
        | Request::Kill { id, .. }
        | Request::Delete { id, .. }
        | Request::State { id }
        | Request::Exec { id, .. }
        | Request::Attach { id, .. } => id.clone(),
        Request::WaitExec { pid } => format!("exec process {pid}"),
        Request::Ping | Request::List | Request::Shutdown => String::new(),
    }
}

impl ContainerRuntime for HelperClient {
    fn create(&self, spec: &CreateContainer) -> Result<ContainerState> {
        if spec.io.stdin || spec.io.tty {
            self.require_current("a container with stdin or tty")?;
        }
        match self.call(&Request::Create(spec.clone()), &[])? {
            Response::State { state } => Ok(*state),
            other => Err(self.helper_error(format!("unexpected answer {other:?}"))),
        }
    }

    fn start(&self, id: &str) -> Result<()> {
        let response = self.call(&Request::Start { id: id.to_string() }, &[])?;
        self.expect_ok(response)
    }

    fn kill(&self, id: &str, signal: i32) -> Result<()> {
        let response = self.call(
            &Request::Kill {
                id: id.to_string(),
                signal,
            },
            &[],
        )?;
        self.expect_ok(response)
    }

    fn delete(&self, id: &str, force: bool) -> Result<()> {
        let response = self.call(
            &Request::Delete {
                id: id.to_string(),
                force,
            },
            &[],
        )?;
        self.expect_ok(response)
    }

    fn state(&self, id: &str) -> Result<ContainerState> {
        match self.call(&Request::State { id: id.to_string() }, &[])? {
            Response::State { state } => Ok(*state),
            other => Err(self.helper_error(format!("unexpected answer {other:?}"))),
        }
    }

    fn list(&self) -> Result<Vec<ContainerState>> {
        match self.call(&Request::List, &[])? {
            Response::List { containers } => Ok(containers),
            other => Err(self.helper_error(format!("unexpected answer {other:?}"))),
        }
    }

    /// The helper's state names the pid; whether it lives is read from this host's
    /// /proc (containers share the host's pid namespace with the agent).
    fn live_pid(&self, id: &str) -> Result<Option<i32>> {
        Ok(self.state(id)?.pid.filter(|pid| server::alive(*pid, None)))
    }

    fn exec(
        &self,
        id: &str,
        process: &ExecProcess,
        stdio: Option<[BorrowedFd<'_>; 3]>,
    ) -> Result<ExecHandle> {
        let request = Request::Exec {
            id: id.to_string(),
            process: process.clone(),
        };
        let fds = stdio.as_ref().map_or(&[][..], |s| &s[..]);
        match self.call_with_fds(&request, fds)? {
            (Response::Exec { pid }, mut fds) => Ok(ExecHandle {
                pid,
                pty: if process.tty { fds.pop() } else { None },
            }),
            (other, _) => Err(self.helper_error(format!("unexpected answer {other:?}"))),
        }
    }

    fn attach(&self, id: &str, streams: AttachStreams) -> Result<AttachHandle> {
        self.require_current("attach")?;
        let request = Request::Attach {
            id: id.to_string(),
            streams,
        };
        match self.call_with_fds(&request, &[])? {
            (
                Response::Attach {
                    tty,
                    stdin_once,
                    fds: names,
                },
                fds,
            ) => attach_handle(tty, stdin_once, &names, fds)
                .ok_or_else(|| self.helper_error("an attach answer without its descriptors")),
            (other, _) => Err(self.helper_error(format!("unexpected answer {other:?}"))),
        }
    }

    fn wait_exec(&self, pid: i32) -> Result<i32> {
        let mut stream = self.connect()?;
        // An exec'd process may run for as long as it likes.
        stream
            .set_read_timeout(None)
            .map_err(|e| self.helper_error(e.to_string()))?;
        protocol::send(&mut stream, &Request::WaitExec { pid }, &[])
            .map_err(|e| self.helper_error(e.to_string()))?;
        match protocol::recv::<Response>(&mut stream) {
            Ok(Some((Response::Exited { code }, _))) => Ok(code),
            Ok(Some((Response::Error { message, .. }, _))) => Err(self.helper_error(message)),
            Ok(other) => Err(self.helper_error(format!("unexpected answer {other:?}"))),
            Err(e) => Err(self.helper_error(e.to_string())),
        }
    }
}

/// The handle of an attach answer: its descriptors, in the order `names` gives
/// (None when they do not match).
fn attach_handle(
    tty: bool,
    stdin_once: bool,
    names: &[AttachFd],
    fds: Vec<OwnedFd>,
) -> Option<AttachHandle> {
    if names.len() != fds.len() {
        return None;
    }
    let mut named: Vec<(AttachFd, OwnedFd)> = names.iter().copied().zip(fds).collect();
    let mut take = |name: AttachFd| {
        let at = named.iter().position(|(n, _)| *n == name)?;
        Some(named.swap_remove(at).1)
    };
    Some(AttachHandle {
        tty,
        stdin_once,
        ended: take(AttachFd::Ended)?,
        stdin: take(AttachFd::Stdin),
        terminal: take(AttachFd::Terminal),
        stdout: take(AttachFd::Stdout),
        stderr: take(AttachFd::Stderr),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A helper of protocol version 1 on the socket of `root`, serving one connection:
    /// `Ping` answered `Ok`, `List` with `containers`, `Shutdown` with `Ok` and its end.
    /// Returns the requests it got.
    fn old_helper(
        root: &Path,
        containers: Vec<ContainerState>,
    ) -> std::thread::JoinHandle<Vec<Request>> {
        let socket = socket_path(root);
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            while let Ok(Some((request, _))) = protocol::recv::<Request>(&mut stream) {
                let answer = match &request {
                    Request::List => Response::List {
                        containers: containers.clone(),
                    },
                    Request::Ping | Request::Shutdown => Response::Ok,
                    _ => Response::Error {
                        kind: "other".into(),
                        message: "unknown request".into(),
                    },
                };
                protocol::send(&mut stream, &answer, &[]).unwrap();
                got.push(request.clone());
                if request == Request::Shutdown {
                    std::fs::remove_file(&socket).unwrap();
                    break;
                }
            }
            got
        })
    }

    fn running(id: &str) -> ContainerState {
        ContainerState {
            spec: CreateContainer {
                id: id.into(),
                bundle: "/nonexistent".into(),
                engine: Default::default(),
                log_path: "/nonexistent/log".into(),
                log_max_bytes: 1 << 20,
                io: Default::default(),
            },
            status: Status::Running,
            pid: Some(1),
            pid_start_ticks: None,
            cgroup_path: None,
            created_at_ns: 0,
            started_at_ns: None,
            exit: None,
            stdin_closed: false,
        }
    }

    fn stdout_only() -> AttachStreams {
        AttachStreams {
            stdout: true,
            ..Default::default()
        }
    }

    #[test]
    fn an_older_helper_running_containers_refuses_attach_and_names_the_fix() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("helper.pid"), "4242\n").unwrap();
        let helper = old_helper(root.path(), vec![running("c")]);
        let client = HelperClient::new(root.path(), "/nonexistent/rk8s-node");
        let err = client.attach("c", stdout_only()).unwrap_err().to_string();
        assert!(
            err.contains("attach needs a container helper of protocol version 2")
                && err.contains("(pid 4242) is older (version 1) and runs 1 container(s)")
                && err.contains("restart it with `kill $(cat "),
            "{err}"
        );
        assert_eq!(helper.join().unwrap(), vec![Request::Ping, Request::List]);
    }

    #[test]
    fn an_older_helper_running_no_container_is_stopped_to_be_replaced() {
        let root = tempfile::tempdir().unwrap();
        let helper = old_helper(root.path(), Vec::new());
        let client = HelperClient::new(root.path(), "/nonexistent/rk8s-node");
        let mut spec = running("c").spec;
        spec.io.stdin = true;
        // Stopped, and then the next call starts the current binary (here: one that
        // does not exist).
        let err = client.create(&spec).unwrap_err().to_string();
        assert!(
            err.contains("failed to start /nonexistent/rk8s-node"),
            "{err}"
        );
        assert_eq!(
            helper.join().unwrap(),
            vec![Request::Ping, Request::List, Request::Shutdown]
        );
    }

    #[test]
    fn an_attach_answer_becomes_a_handle_only_with_matching_descriptors() {
        let fd = || -> OwnedFd { std::fs::File::open("/dev/null").unwrap().into() };
        let names = [AttachFd::Ended, AttachFd::Stdout];
        let handle = attach_handle(false, false, &names, vec![fd(), fd()]).unwrap();
        assert!(handle.stdout.is_some() && handle.stdin.is_none() && handle.stderr.is_none());
        assert!(attach_handle(false, false, &names, vec![fd()]).is_none());
        assert!(attach_handle(false, false, &[AttachFd::Stdout], vec![fd()]).is_none());
    }
}

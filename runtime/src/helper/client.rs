//! The client side of the helper: one connection per call, and the helper started on
//! first use if none runs.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::protocol::{self, AttachFd, Request, Response};
use super::{HELPER_ARG, server, socket_path};
use crate::container::{
    AttachHandle, AttachStreams, ContainerState, CreateContainer, ExecHandle, ExecProcess,
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

    fn expect_ok(&self, response: Response) -> Result<()> {
        match response {
            Response::Ok => Ok(()),
            other => Err(self.helper_error(format!("unexpected answer {other:?}"))),
        }
    }
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

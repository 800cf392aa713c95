//! The container helper: one process, one thread, that makes every libcontainer call
//! (libcontainer changes the process-wide working directory, so it must never run on an
//! async runtime's threads), reaps container processes as their child subreaper,
//! records how they exit, and copies their output into CRI logs and to attach
//! sessions (`stdio`).
//!
//! It outlives its clients: a node agent that crashes and restarts finds its
//! containers running and their logs intact. If the helper itself dies, containers
//! keep running — their stdout and stderr are FIFOs they hold open for reading and
//! writing, so nothing gets SIGPIPE — and a new helper adopts them and their logs;
//! the exit code of a container that exits while no helper watches is lost, and so
//! are a terminal and a `stdinOnce` stdin's writer (see `stdio`).
//!
//! Every container operation of the node goes through it, so it must not run out of
//! descriptors: its soft limit is raised to the hard one, attach sessions are
//! bounded (`stdio::MAX_HELPER_SESSIONS`), and when accepting a connection fails all
//! the same the listener is left alone for a moment instead of polled at once again.

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::engine::{self, ProcessIo, Stdio3};
use super::protocol::{self, PROTOCOL_VERSION, Request, Response};
use super::stdio::{self, Polled, Stdio};
use crate::container::{
    AttachEnd, ContainerState, CreateContainer, Exit, ExitReason, Status, now_ns,
};
use crate::error::{Error, Result, io, sys};
use crate::logs::{LogWriter, Stream};

/// How the helper runs.
#[derive(Debug, Clone)]
pub struct HelperConfig {
    /// Its state directory; the socket is `<root>/helper.sock`.
    pub root: PathBuf,
    /// Exit after this long with no container and no client (None: never).
    pub idle_exit: Option<Duration>,
}

/// The socket of the helper with state directory `root`.
pub fn socket_path(root: &Path) -> PathBuf {
    root.join("helper.sock")
}

struct Client {
    stream: UnixStream,
    waiting_for: Option<i32>,
}

struct Managed {
    state: ContainerState,
    /// Its output, logged and attached to, and its stdin (None once it stopped before
    /// this helper, or when its log cannot be opened).
    stdio: Option<Stdio>,
    /// Adopted from an earlier helper: not our child, so watched through /proc.
    adopted: bool,
}

struct Helper {
    root: PathBuf,
    listener: UnixListener,
    accept: AcceptBackoff,
    clients: Vec<Client>,
    containers: BTreeMap<String, Managed>,
    exec_owner: HashMap<i32, String>,
    exec_exits: HashMap<i32, i32>,
    last_activity: Instant,
    shutdown: bool,
}

/// How long the listener is left alone after accepting a connection failed (out of
/// descriptors, EMFILE): it stays readable, and polling it at once again would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How often a failing accept is logged at most.
const ACCEPT_WARNING_EVERY: Duration = Duration::from_secs(10);

/// Whether the listener is polled, after accepting failed.
#[derive(Debug, Default)]
struct AcceptBackoff {
    /// Not polled before this.
    paused_until: Option<Instant>,
    last_warning: Option<Instant>,
}

impl AcceptBackoff {
    /// Whether to poll the listener at `now`.
    fn listening(&self, now: Instant) -> bool {
        self.paused_until.is_none_or(|until| now >= until)
    }

    /// Accepting failed at `now` with `error`: pause, and say so now and then.
    fn failed(&mut self, now: Instant, error: &std::io::Error) {
        self.paused_until = Some(now + ACCEPT_BACKOFF);
        if self
            .last_warning
            .is_none_or(|at| now.duration_since(at) >= ACCEPT_WARNING_EVERY)
        {
            self.last_warning = Some(now);
            tracing::warn!(
                "accepting a client failed: {error}; trying again in {} ms",
                ACCEPT_BACKOFF.as_millis()
            );
        }
    }

    /// Nothing more to accept now.
    fn drained(&mut self) {
        self.paused_until = None;
    }
}

/// Raises this process' soft limit of open descriptors to its hard limit: the helper
/// holds every container's pipes and every attach session's. Containers do not
/// inherit it: their spec sets their own `RLIMIT_NOFILE`. Returns the limit now.
pub(crate) fn raise_descriptor_limit() -> Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(sys("getrlimit NOFILE"))?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(sys("setrlimit NOFILE"))?;
    }
    Ok(hard)
}

/// Runs the helper until it is told to shut down (or is idle for `idle_exit`).
pub fn run(config: HelperConfig) -> Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(sys("PR_SET_CHILD_SUBREAPER"))?;
    match raise_descriptor_limit() {
        Ok(limit) => tracing::debug!(limit, "open descriptors"),
        Err(e) => tracing::warn!("the limit of open descriptors stays: {e}"),
    }
    let containers_dir = config.root.join("containers");
    std::fs::create_dir_all(&containers_dir).map_err(io(&containers_dir))?;
    let socket = socket_path(&config.root);
    // One helper per state directory, for as long as it lives: the lock goes with the
    // process, so a crashed helper never blocks the next one.
    let lock_path = config.root.join("helper.lock");
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| Error::Helper {
            socket: socket.clone(),
            message: "another helper is already running".to_string(),
        })?;
    // A socket left by a helper that died is stale now.
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).map_err(io(&socket))?;
    listener.set_nonblocking(true).map_err(io(&socket))?;
    let mut helper = Helper {
        root: config.root.clone(),
        listener,
        accept: AcceptBackoff::default(),
        clients: Vec::new(),
        containers: BTreeMap::new(),
        exec_owner: HashMap::new(),
        exec_exits: HashMap::new(),
        last_activity: Instant::now(),
        shutdown: false,
    };
    helper.adopt()?;
    let pid_file = config.root.join("helper.pid");
    std::fs::write(&pid_file, std::process::id().to_string()).map_err(io(&pid_file))?;
    tracing::info!(socket = %socket.display(), containers = helper.containers.len(), "container helper ready");
    let mut last_check = Instant::now();
    while !helper.shutdown {
        helper.turn()?;
        if last_check.elapsed() >= Duration::from_secs(1) {
            helper.check_adopted();
            last_check = Instant::now();
        }
        if let Some(idle) = config.idle_exit {
            let busy = !helper.clients.is_empty()
                || helper
                    .containers
                    .values()
                    .any(|c| c.state.status != Status::Stopped);
            if busy {
                helper.last_activity = Instant::now();
            } else if helper.last_activity.elapsed() >= idle && helper.containers.is_empty() {
                tracing::info!("container helper idle: exiting");
                break;
            }
        }
    }
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(&pid_file);
    Ok(())
}

impl Helper {
    fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// Where a runtime sends a new terminal's master end: one path does, as the
    /// helper creates or execs one container at a time (and a short one, as socket
    /// paths are).
    fn console_socket(&self) -> PathBuf {
        self.root.join("console.sock")
    }

    /// One round: wait for sockets, outputs and attach sessions, serve them, reap
    /// children.
    fn turn(&mut self) -> Result<()> {
        let listening = self.accept.listening(Instant::now());
        let (listener_ready, client_ready, stdio_ready) = {
            let mut fds = Vec::new();
            if listening {
                fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
            }
            let first_client = fds.len();
            for client in &self.clients {
                fds.push(PollFd::new(client.stream.as_fd(), PollFlags::POLLIN));
            }
            let mut polled = Vec::new();
            for (id, managed) in &self.containers {
                for (fd, flags, what) in managed.stdio.iter().flat_map(Stdio::polled) {
                    fds.push(PollFd::new(fd, flags));
                    polled.push((id.clone(), what));
                }
            }
            match poll(&mut fds, PollTimeout::from(100u16)) {
                Ok(_) => {}
                Err(nix::Error::EINTR) => {}
                Err(e) => return Err(sys("poll")(e)),
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            let first_stdio = first_client + self.clients.len();
            let clients = ready[first_client..first_stdio].to_vec();
            let stdio: Vec<(String, Polled)> = polled
                .into_iter()
                .zip(&ready[first_stdio..])
                .filter(|(_, r)| **r)
                .map(|(l, _)| l)
                .collect();
            (listening && ready[0], clients, stdio)
        };
        for (id, what) in stdio_ready {
            let Some(stdio) = self.containers.get_mut(&id).and_then(|m| m.stdio.as_mut()) else {
                continue;
            };
            match what {
                Polled::Output(stream) => stdio.pump(&id, stream),
                // Its client has gone.
                Polled::Session(key) => stdio.end_session(key, AttachEnd::Lost),
            }
        }
        if listener_ready {
            self.accept_clients();
        }
        let mut gone = Vec::new();
        for (index, ready) in client_ready.into_iter().enumerate() {
            if ready && !self.serve(index) {
                gone.push(index);
            }
        }
        for index in gone.into_iter().rev() {
            self.clients.remove(index);
        }
        self.reap();
        Ok(())
    }

    /// Accepts the clients waiting; when accepting fails (EMFILE), leaves the listener
    /// alone for [`ACCEPT_BACKOFF`].
    fn accept_clients(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(false).is_ok()
                        && stream
                            .set_read_timeout(Some(Duration::from_secs(10)))
                            .is_ok()
                    {
                        self.clients.push(Client {
                            stream,
                            waiting_for: None,
                        });
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.accept.drained();
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.accept.failed(Instant::now(), &e);
                    return;
                }
            }
        }
    }

    /// Reads and answers one request of a client; false when the client is gone.
    fn serve(&mut self, index: usize) -> bool {
        let received = protocol::recv::<Request>(&mut self.clients[index].stream);
        let (request, fds) = match received {
            Ok(Some(message)) => message,
            Ok(None) => return false,
            Err(e) => {
                tracing::debug!("dropping client: {e}");
                return false;
            }
        };
        self.last_activity = Instant::now();
        let response = match request {
            Request::WaitExec { pid } => match self.exec_exits.remove(&pid) {
                Some(code) => Response::Exited { code },
                None if self.exec_owner.contains_key(&pid) => {
                    self.clients[index].waiting_for = Some(pid);
                    return true;
                }
                None => error_response(&Error::ContainerNotFound {
                    id: format!("exec process {pid}"),
                }),
            },
            Request::Shutdown => {
                self.shutdown = true;
                Response::Ok
            }
            other => match self.handle(other, fds) {
                Ok((response, fds)) if !fds.is_empty() => {
                    let stream = &mut self.clients[index].stream;
                    let fds: Vec<_> = fds.iter().map(|fd| fd.as_fd()).collect();
                    return protocol::send(stream, &response, &fds).is_ok();
                }
                Ok((response, _)) => response,
                Err(e) => error_response(&e),
            },
        };
        protocol::send(&mut self.clients[index].stream, &response, &[]).is_ok()
    }

    /// Runs a terminal exec: the runtime sends the terminal's master end to a console
    /// socket of ours, which goes back to the client.
    fn exec_tty(
        &self,
        engine: &dyn engine::OciRuntime,
        id: &str,
        bundle: &Path,
        process: &crate::container::ExecProcess,
    ) -> Result<(i32, OwnedFd)> {
        stdio::with_console(self.console_socket(), |console_socket| {
            engine.exec(id, bundle, process, ProcessIo::Tty { console_socket })
        })
    }

    fn handle(&mut self, request: Request, fds: Vec<OwnedFd>) -> Result<(Response, Vec<OwnedFd>)> {
        let response = match request {
            Request::Ping => Ok(Response::Hello {
                version: PROTOCOL_VERSION,
            }),
            Request::Create(spec) => self.create(spec).map(|state| Response::State {
                state: Box::new(state),
            }),
            Request::Start { id } => {
                let managed = self.get(&id)?;
                if !managed.state.status.can_start() {
                    return Err(incorrect(&managed.state, "start"));
                }
                engine::for_engine(&managed.state.spec.engine, &self.root).start(&id)?;
                let managed = self.get_mut(&id)?;
                // It may have exited already: keep a recorded exit.
                if managed.state.status == Status::Created {
                    managed.state.status = Status::Running;
                }
                managed.state.started_at_ns = Some(now_ns());
                self.save(&id);
                Ok(Response::Ok)
            }
            Request::Kill { id, signal } => {
                let managed = self.get(&id)?;
                if managed.state.status.can_kill() {
                    engine::for_engine(&managed.state.spec.engine, &self.root).kill(&id, signal)?;
                }
                Ok(Response::Ok)
            }
            Request::Delete { id, force } => self.delete(&id, force).map(|()| Response::Ok),
            Request::State { id } => Ok(Response::State {
                state: Box::new(self.get(&id)?.state.clone()),
            }),
            Request::List => Ok(Response::List {
                containers: self.containers.values().map(|m| m.state.clone()).collect(),
            }),
            Request::Exec { id, process } => {
                let managed = self.get(&id)?;
                if !managed.state.status.can_exec() {
                    return Err(incorrect(&managed.state, "exec"));
                }
                let engine = engine::for_engine(&managed.state.spec.engine, &self.root);
                let bundle = managed.state.spec.bundle.clone();
                if process.tty {
                    let (pid, pty) = self.exec_tty(engine.as_ref(), &id, &bundle, &process)?;
                    self.exec_owner.insert(pid, id);
                    return Ok((Response::Exec { pid }, vec![pty]));
                }
                let mut fds = fds.into_iter();
                let (Some(stdin), Some(stdout), Some(stderr)) =
                    (fds.next(), fds.next(), fds.next())
                else {
                    return Err(Error::InvalidSpec(
                        "exec needs three file descriptors (stdin, stdout, stderr)".to_string(),
                    ));
                };
                let stdio = Stdio3 {
                    stdin,
                    stdout,
                    stderr,
                };
                let pid = engine.exec(&id, &bundle, &process, ProcessIo::Pipes(stdio))?;
                self.exec_owner.insert(pid, id);
                return Ok((Response::Exec { pid }, Vec::new()));
            }
            Request::Attach { id, streams } => return self.attach(&id, streams),
            Request::WaitExec { .. } | Request::Shutdown => Ok(Response::Ok),
        };
        response.map(|r| (r, Vec::new()))
    }

    /// Starts an attach session to a running container.
    fn attach(
        &mut self,
        id: &str,
        streams: crate::container::AttachStreams,
    ) -> Result<(Response, Vec<OwnedFd>)> {
        let open: usize = self
            .containers
            .values()
            .filter_map(|m| m.stdio.as_ref())
            .map(Stdio::sessions)
            .sum();
        session_room(open)?;
        let managed = self.get_mut(id)?;
        if !managed.state.status.can_exec() {
            return Err(incorrect(&managed.state, "attach"));
        }
        let io = managed.state.spec.io;
        let Some(stdio) = managed.stdio.as_mut() else {
            return Err(Error::InvalidSpec(format!(
                "the output of container {id} is not kept: it cannot be attached to"
            )));
        };
        let was_closed = managed.state.stdin_closed;
        let answer = stdio.attach(id, io, streams, &mut managed.state.stdin_closed)?;
        if managed.state.stdin_closed != was_closed {
            self.save(id);
        }
        Ok(answer)
    }

    fn get(&self, id: &str) -> Result<&Managed> {
        self.containers
            .get(id)
            .ok_or_else(|| Error::ContainerNotFound { id: id.to_string() })
    }

    fn get_mut(&mut self, id: &str) -> Result<&mut Managed> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| Error::ContainerNotFound { id: id.to_string() })
    }

    fn create(&mut self, spec: CreateContainer) -> Result<ContainerState> {
        let id = spec.id.clone();
        if self.containers.contains_key(&id) {
            return Err(Error::ContainerExists { id });
        }
        if id.is_empty() || id.contains('/') || id.starts_with('.') {
            return Err(Error::InvalidSpec(format!("{id:?} is not a container id")));
        }
        let dir = self.container_dir(&id);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let result = self.create_in(&dir, &spec);
        match result {
            Ok(managed) => {
                let state = managed.state.clone();
                self.containers.insert(id.clone(), managed);
                self.save(&id);
                Ok(state)
            }
            Err(e) => {
                let _ = engine::for_engine(&spec.engine, &self.root).delete(&id, true);
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    fn create_in(&self, dir: &Path, spec: &CreateContainer) -> Result<Managed> {
        let (prepared, process_io) = stdio::prepare(dir, spec.io, self.console_socket())?;
        let writer = LogWriter::open(&spec.log_path, spec.log_max_bytes)?;
        let cgroup_path = cgroup_path_of(&spec.bundle);
        let pid = engine::for_engine(&spec.engine, &self.root).create(
            &spec.id,
            &spec.bundle,
            process_io,
        )?;
        let stdio = prepared.finish(writer)?;
        Ok(Managed {
            state: ContainerState {
                spec: spec.clone(),
                status: Status::Created,
                pid: Some(pid),
                pid_start_ticks: start_ticks(pid),
                cgroup_path,
                created_at_ns: now_ns(),
                started_at_ns: None,
                exit: None,
                stdin_closed: false,
            },
            stdio: Some(stdio),
            adopted: false,
        })
    }

    fn delete(&mut self, id: &str, force: bool) -> Result<()> {
        let managed = self.get(id)?;
        if !force && !managed.state.status.can_delete() {
            return Err(incorrect(&managed.state, "delete"));
        }
        let engine = managed.state.spec.engine.clone();
        let pid = managed.state.pid;
        engine::for_engine(&engine, &self.root).delete(id, force)?;
        if let Some(pid) = pid {
            self.wait_gone(pid);
        }
        // Copy what is still in the pipes before they go.
        if let Some(stdio) = self.containers.get_mut(id).and_then(|m| m.stdio.as_mut()) {
            stdio.pump(id, Stream::Stdout);
            stdio.pump(id, Stream::Stderr);
            stdio.stopped();
        }
        self.containers.remove(id);
        self.exec_owner.retain(|_, owner| owner != id);
        let dir = self.container_dir(id);
        std::fs::remove_dir_all(&dir).map_err(io(&dir))
    }

    /// Reaps `pid` if it is our child and has exited (a forced delete just killed it).
    fn wait_gone(&mut self, pid: i32) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(5)),
                _ => return,
            }
        }
    }

    fn save(&self, id: &str) {
        if let Some(managed) = self.containers.get(id) {
            let path = self.container_dir(id).join("state.json");
            let tmp = path.with_extension("tmp");
            let json = serde_json::to_vec_pretty(&managed.state).unwrap_or_default();
            if let Err(e) = std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, &path)) {
                tracing::warn!(id, "failed to save container state: {e}");
            }
        }
    }

    fn reap(&mut self) {
        loop {
            let (pid, code) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), code),
                Ok(WaitStatus::Signaled(pid, signal, _)) => (pid.as_raw(), 128 + signal as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            self.exited(pid, Some(code));
        }
    }

    fn exited(&mut self, pid: i32, code: Option<i32>) {
        let id = self
            .containers
            .iter()
            .find(|(_, m)| m.state.pid == Some(pid) && m.state.status != Status::Stopped)
            .map(|(id, _)| id.clone());
        if let Some(id) = id {
            if let Some(stdio) = self.containers.get_mut(&id).and_then(|m| m.stdio.as_mut()) {
                stdio.pump(&id, Stream::Stdout);
                stdio.pump(&id, Stream::Stderr);
                stdio.stopped();
            }
            if let Some(managed) = self.containers.get_mut(&id) {
                let reason = match code {
                    None => ExitReason::Unknown,
                    Some(0) => ExitReason::Completed,
                    Some(_)
                        if managed
                            .state
                            .cgroup_path
                            .as_deref()
                            .is_some_and(crate::cgroups::oom_killed) =>
                    {
                        ExitReason::OomKilled
                    }
                    Some(_) => ExitReason::Error,
                };
                managed.state.status = Status::Stopped;
                managed.state.exit = Some(Exit {
                    code: code.unwrap_or(255),
                    reason,
                    finished_at_ns: now_ns(),
                });
                tracing::debug!(id, ?code, ?reason, "container exited");
            }
            self.save(&id);
            return;
        }
        if let Some(code) = code
            && self.exec_owner.remove(&pid).is_some()
        {
            let mut answered = false;
            for client in &mut self.clients {
                if client.waiting_for == Some(pid) {
                    client.waiting_for = None;
                    answered |=
                        protocol::send(&mut client.stream, &Response::Exited { code }, &[]).is_ok();
                }
            }
            if !answered {
                self.exec_exits.insert(pid, code);
            }
        }
    }

    /// Loads the containers of an earlier helper and resumes their logs.
    fn adopt(&mut self) -> Result<()> {
        let dir = self.root.join("containers");
        let entries = std::fs::read_dir(&dir).map_err(io(&dir))?;
        for entry in entries.flatten() {
            let path = entry.path().join("state.json");
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let Ok(state) = serde_json::from_slice::<ContainerState>(&bytes) else {
                tracing::warn!(path = %path.display(), "unreadable container state: skipped");
                continue;
            };
            let mut state = state;
            let id = state.spec.id.clone();
            let was_closed = state.stdin_closed;
            let stdio = if state.status == Status::Stopped {
                None
            } else {
                LogWriter::open(&state.spec.log_path, state.spec.log_max_bytes)
                    .ok()
                    .map(|writer| {
                        let (dir, io) = (entry.path(), state.spec.io);
                        Stdio::reopen(&dir, io, &mut state.stdin_closed, writer)
                    })
            };
            let closed_now = state.stdin_closed != was_closed;
            self.containers.insert(
                id.clone(),
                Managed {
                    state,
                    stdio,
                    adopted: true,
                },
            );
            if closed_now {
                self.save(&id);
            }
        }
        self.check_adopted();
        Ok(())
    }

    /// Adopted containers are not our children: see whether they still live.
    fn check_adopted(&mut self) {
        let dead: Vec<i32> = self
            .containers
            .values()
            .filter(|m| m.adopted && m.state.status != Status::Stopped)
            .filter_map(|m| {
                m.state
                    .pid
                    .filter(|pid| !alive(*pid, m.state.pid_start_ticks))
            })
            .collect();
        for pid in dead {
            self.exited(pid, None);
        }
    }
}

/// Whether one more attach session may start while `open` are (at most
/// [`stdio::MAX_HELPER_SESSIONS`] a helper).
fn session_room(open: usize) -> Result<()> {
    if open >= stdio::MAX_HELPER_SESSIONS {
        return Err(Error::InvalidSpec(format!(
            "the node's container helper serves {open} attach sessions already, its most: no more are taken until some end"
        )));
    }
    Ok(())
}

fn incorrect(state: &ContainerState, operation: &'static str) -> Error {
    Error::IncorrectStatus {
        id: state.spec.id.clone(),
        status: state.status.to_string(),
        operation,
    }
}

fn error_response(e: &Error) -> Response {
    let kind = match e {
        Error::ContainerNotFound { .. } => "notFound",
        Error::ContainerExists { .. } => "exists",
        Error::IncorrectStatus { .. } => "status",
        Error::Engine { .. } => "engine",
        _ => "other",
    };
    Response::Error {
        kind: kind.to_string(),
        message: e.to_string(),
    }
}

/// The `linux.cgroupsPath` of a bundle's config.json.
fn cgroup_path_of(bundle: &Path) -> Option<String> {
    let config = std::fs::read(bundle.join("config.json")).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&config).ok()?;
    value
        .pointer("/linux/cgroupsPath")
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

/// The start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat).
pub(crate) fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` is alive (not a zombie) and still the process that started at `ticks`.
pub(crate) fn alive(pid: i32, ticks: Option<u64>) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(close) = stat.rfind(')') else {
        return false;
    };
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    if fields.first().is_some_and(|s| *s == "Z" || *s == "X") {
        return false;
    }
    match (ticks, fields.get(19).and_then(|t| t.parse::<u64>().ok())) {
        (Some(expected), Some(actual)) => expected == actual,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_accept_leaves_the_listener_alone_for_a_moment() {
        let mut backoff = AcceptBackoff::default();
        let now = Instant::now();
        assert!(backoff.listening(now));
        let emfile = std::io::Error::from_raw_os_error(nix::libc::EMFILE);
        backoff.failed(now, &emfile);
        assert!(!backoff.listening(now));
        assert!(!backoff.listening(now + ACCEPT_BACKOFF / 2));
        assert!(backoff.listening(now + ACCEPT_BACKOFF));
        // Failing again within the warning interval pauses again, logging nothing new.
        backoff.failed(now + ACCEPT_BACKOFF, &emfile);
        assert_eq!(backoff.last_warning, Some(now));
        assert!(!backoff.listening(now + ACCEPT_BACKOFF));
        backoff.drained();
        assert!(backoff.listening(now + ACCEPT_BACKOFF));
    }

    #[test]
    fn the_descriptor_limit_is_raised_to_the_hard_limit() {
        use nix::sys::resource::{Resource, getrlimit};
        let limit = raise_descriptor_limit().unwrap();
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!((soft, hard), (limit, limit));
    }

    #[test]
    fn a_helper_takes_a_bounded_number_of_attach_sessions() {
        assert!(session_room(0).is_ok());
        assert!(session_room(stdio::MAX_HELPER_SESSIONS - 1).is_ok());
        let err = session_room(stdio::MAX_HELPER_SESSIONS).unwrap_err();
        assert!(
            err.to_string().contains("256 attach sessions already"),
            "{err}"
        );
    }
}

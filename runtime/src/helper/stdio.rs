//! A container's live stdio, as the helper keeps it: its stdout and stderr (FIFOs, or
//! the master end of its terminal) copied into the CRI log and to the attach sessions
//! of the moment, and its stdin (a FIFO) handed to the sessions that write to it.
//!
//! Containerd's shim and CRI plugin are the model (`cio.ContainerIO.Attach`): a
//! session gets the output written from now on, its input goes to the container's
//! stdin, and with `stdinOnce` the stdin is closed once the first session that wrote
//! to it ends. The helper never blocks on a session: output goes to each session's
//! pipe without waiting, and what does not fit a session's pipe is skipped for that
//! session (it is told once, [`AttachNote::OutputSkipped`]) rather than let the
//! container wait or the helper buffer. The session goes on, and gets the output
//! again once its reader has caught up: a slow client is never ended for being slow,
//! so a `stdinOnce` container never loses its stdin to a slow network.
//!
//! Who holds what, and so what survives a restarted helper:
//! - stdout and stderr are FIFOs the container holds read-write: a new helper reopens
//!   them (nothing is lost).
//! - stdin without `stdinOnce`: a FIFO the container holds read-write, so it never
//!   reads end-of-file; each session opens it for writing (nothing is lost).
//! - stdin with `stdinOnce`: the container holds the read end only and the helper
//!   the one write end, so that closing it is the end-of-file. A helper that dies
//!   before the first session took it closes it: the container reads end-of-file
//!   then, and its stdin counts as closed (a new helper gives later sessions no
//!   stdin: one the container may already have read the end of).
//! - a terminal's master end exists only in the helper (and its sessions): a helper
//!   that dies hangs the terminal up, and a new one cannot reopen it, so the
//!   container's later output is lost and attaching to it is refused.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::stat::Mode;

use super::engine::{ProcessIo, Stdio3};
use super::protocol::{self, AttachFd, Response};
use crate::container::{AttachEnd, AttachNote, AttachStreams, ContainerIo};
use crate::error::{Error, Result, io, sys};
use crate::logs::{LogWriter, Stream};

/// Most attach sessions one container has at once.
pub const MAX_SESSIONS: usize = 32;

/// Most attach sessions one helper serves at once, all containers together: each
/// holds three of the helper's descriptors, which must not run out (then no container
/// operation of the node would be served).
pub const MAX_HELPER_SESSIONS: usize = 256;

/// The size asked for each session's output pipe: how far a session may fall behind
/// before output is skipped for it (the kernel may give less).
const SESSION_PIPE_BYTES: i32 = 1 << 20;

/// The live stdio of one container.
pub(super) struct Stdio {
    writer: LogWriter,
    stdout: Option<File>,
    stderr: Option<File>,
    /// The master end of its terminal (tty containers).
    terminal: Option<File>,
    /// With `stdinOnce`: the one writer of its stdin FIFO, until a session takes it.
    stdin: Option<File>,
    /// Its stdin FIFO (containers with stdin and no terminal).
    stdin_fifo: Option<PathBuf>,
    sessions: Vec<Session>,
    next_key: u64,
}

/// The helper's ends of one attach session.
struct Session {
    key: u64,
    stdout: Option<File>,
    stderr: Option<File>,
    /// Gets [`AttachNote`] bytes (the last an [`AttachEnd`]), then is closed; polled
    /// for the reader going.
    ended: File,
    /// It was told that output was skipped for it.
    told_skipped: bool,
}

/// Something of a container's stdio the helper polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Polled {
    /// Output to read.
    Output(Stream),
    /// A session's client may have gone.
    Session(u64),
}

/// A container's stdio between the FIFOs being made and the runtime's create.
pub(super) struct Prepared {
    stdout: Option<File>,
    stderr: Option<File>,
    stdin: Option<File>,
    stdin_fifo: Option<PathBuf>,
    console: Option<Console>,
}

/// The console socket a terminal's master end arrives on.
struct Console {
    listener: UnixListener,
    path: PathBuf,
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Console {
    /// A console socket at `path` (a short one: socket paths have at most 107 bytes).
    fn bind(path: PathBuf) -> Result<Self> {
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(io(&path))?;
        listener.set_nonblocking(true).map_err(io(&path))?;
        Ok(Console { listener, path })
    }

    /// The master end the runtime sent (it has connected by the time it returns;
    /// waited for five seconds at most, as the helper's one thread serves everyone).
    fn receive(&self) -> Result<OwnedFd> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut stream = loop {
            match self.listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if std::time::Instant::now() > deadline {
                        return Err(Error::Engine {
                            engine: "console".to_string(),
                            message: "the runtime sent no terminal within 5 s".to_string(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(io(&self.path)(e)),
            }
        };
        stream.set_nonblocking(false).map_err(io(&self.path))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(io(&self.path))?;
        protocol::recv_fd(&mut stream).map_err(io(&self.path))
    }
}

/// Runs `start` (an OCI runtime call given the console socket's path) and receives
/// the terminal it makes: returns what `start` returned and the master end.
pub(super) fn with_console<T>(
    path: PathBuf,
    start: impl FnOnce(PathBuf) -> Result<T>,
) -> Result<(T, OwnedFd)> {
    let console = Console::bind(path)?;
    let value = start(console.path.clone())?;
    Ok((value, console.receive()?))
}

/// Makes the FIFOs of a container in `dir` as `setup` asks; returns them and what the
/// runtime creates the container with. `console` is where a terminal's console
/// socket goes.
pub(super) fn prepare(
    dir: &Path,
    setup: ContainerIo,
    console: PathBuf,
) -> Result<(Prepared, ProcessIo)> {
    let mut prepared = Prepared {
        stdout: None,
        stderr: None,
        stdin: None,
        stdin_fifo: None,
        console: None,
    };
    if setup.tty {
        prepared.console = Some(Console::bind(console.clone())?);
        return Ok((
            prepared,
            ProcessIo::Tty {
                console_socket: console,
            },
        ));
    }
    let mut writers = Vec::new();
    for (name, slot) in [
        ("stdout", &mut prepared.stdout),
        ("stderr", &mut prepared.stderr),
    ] {
        let fifo = make_fifo(&dir.join(name))?;
        *slot = Some(open_reader(&fifo)?);
        // Read-write: the container is a reader too, so its writes never raise
        // SIGPIPE while no helper reads (they wait for the next helper instead).
        writers.push(open_fifo(&fifo, OpenOptions::new().read(true).write(true))?);
    }
    let stdin = if setup.stdin {
        let fifo = make_fifo(&dir.join("stdin"))?;
        let stdin = if setup.stdin_once {
            // The container reads; the helper's writer is the only one, so closing it
            // is the end-of-file. Opened in this order, neither open waits.
            let reader = open_reader(&fifo)?;
            prepared.stdin = Some(open_writer(&fifo)?);
            fcntl(reader.as_raw_fd(), FcntlArg::F_SETFL(OFlag::empty()))
                .map_err(sys(format!("fcntl {}", fifo.display())))?;
            reader
        } else {
            // It holds a writer itself: its reads wait, and never end, while nobody
            // is attached, and no helper is needed for that.
            open_fifo(&fifo, OpenOptions::new().read(true).write(true))?
        };
        prepared.stdin_fifo = Some(fifo);
        OwnedFd::from(stdin)
    } else {
        File::open("/dev/null").map_err(io("/dev/null"))?.into()
    };
    let mut writers = writers.into_iter();
    let (Some(stdout), Some(stderr)) = (writers.next(), writers.next()) else {
        return Err(Error::InvalidSpec("no log pipes".to_string()));
    };
    let stdio = Stdio3 {
        stdin,
        stdout: stdout.into(),
        stderr: stderr.into(),
    };
    Ok((prepared, ProcessIo::Pipes(stdio)))
}

impl Prepared {
    /// The container's stdio once the runtime has created it (its terminal received,
    /// with a tty), logging to `writer`.
    pub(super) fn finish(self, writer: LogWriter) -> Result<Stdio> {
        let (stdout, terminal) = match &self.console {
            Some(console) => {
                let master = File::from(console.receive()?);
                set_nonblocking(&master)?;
                let reader = master.try_clone().map_err(io("terminal"))?;
                (Some(reader), Some(master))
            }
            None => (self.stdout, None),
        };
        Ok(Stdio {
            writer,
            stdout,
            stderr: self.stderr,
            terminal,
            stdin: self.stdin,
            stdin_fifo: self.stdin_fifo,
            sessions: Vec::new(),
            next_key: 0,
        })
    }
}

impl Stdio {
    /// The stdio of a container a helper before this one created, from its FIFOs in
    /// `dir` (a terminal is lost with that helper; see the module's notes). A
    /// `stdinOnce` stdin not yet taken was closed by that helper's end: `stdin_closed`
    /// is set then (the caller saves it), and no session gets that stdin.
    pub(super) fn reopen(
        dir: &Path,
        setup: ContainerIo,
        stdin_closed: &mut bool,
        writer: LogWriter,
    ) -> Self {
        let fifo = |name: &str| dir.join(name);
        let has_fifos = !setup.tty;
        let stdin_fifo = (setup.stdin && has_fifos).then(|| fifo("stdin"));
        if stdin_fifo.is_some() && setup.stdin_once {
            // Its only writer went with the helper that held it: the container has
            // read end-of-file, or will at its next read; a new writer would hand a
            // later session a stdin whose reader may have gone.
            *stdin_closed = true;
        }
        Stdio {
            writer,
            stdout: has_fifos
                .then(|| open_reader(&fifo("stdout")).ok())
                .flatten(),
            stderr: has_fifos
                .then(|| open_reader(&fifo("stderr")).ok())
                .flatten(),
            terminal: None,
            stdin: None,
            stdin_fifo,
            sessions: Vec::new(),
            next_key: 0,
        }
    }

    /// The attach sessions open.
    pub(super) fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// What to poll: outputs for reading, sessions for their reader going.
    pub(super) fn polled(&self) -> Vec<(BorrowedFd<'_>, nix::poll::PollFlags, Polled)> {
        use nix::poll::PollFlags;
        let mut out = Vec::new();
        for (stream, file) in [
            (Stream::Stdout, &self.stdout),
            (Stream::Stderr, &self.stderr),
        ] {
            if let Some(file) = file {
                out.push((file.as_fd(), PollFlags::POLLIN, Polled::Output(stream)));
            }
        }
        for session in &self.sessions {
            // A pipe's write end reports POLLERR once its reader is gone.
            out.push((
                session.ended.as_fd(),
                PollFlags::empty(),
                Polled::Session(session.key),
            ));
        }
        out
    }

    /// Copies the available output of `stream` into the log and to the sessions.
    pub(super) fn pump(&mut self, id: &str, stream: Stream) {
        let slot = match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        let Some(mut file) = slot.take() else {
            return;
        };
        let mut buffer = [0u8; 64 * 1024];
        let open = loop {
            match file.read(&mut buffer) {
                Ok(0) => break false,
                Ok(n) => {
                    if let Err(e) = self.writer.write(stream, &buffer[..n]) {
                        tracing::warn!(id, "log: {e}");
                    }
                    self.fan_out(stream, &buffer[..n]);
                    if n < buffer.len() {
                        break true;
                    }
                }
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted =>
                {
                    break true;
                }
                Err(e) => {
                    // A terminal reads EIO once the last process holding it has gone.
                    if e.raw_os_error() != Some(nix::libc::EIO) {
                        tracing::warn!(id, "log pipe: {e}");
                    }
                    break false;
                }
            }
        };
        if open {
            match stream {
                Stream::Stdout => self.stdout = Some(file),
                Stream::Stderr => self.stderr = Some(file),
            }
        } else if let Err(e) = self.writer.flush_stream(stream) {
            tracing::warn!(id, "log: {e}");
        }
    }

    /// Gives `data` to every session that reads `stream`, without waiting: what a
    /// session's pipe cannot take now is skipped for it (it has fallen behind; it is
    /// told once), and it gets what comes next once its pipe has room again.
    fn fan_out(&mut self, stream: Stream, data: &[u8]) {
        let mut gone = Vec::new();
        for session in &mut self.sessions {
            let pipe = match stream {
                Stream::Stdout => session.stdout.as_mut(),
                Stream::Stderr => session.stderr.as_mut(),
            };
            let Some(pipe) = pipe else { continue };
            match write_now(pipe, data) {
                Delivery::All => {}
                Delivery::Full if session.told_skipped => {}
                Delivery::Full => {
                    // One byte into an empty pipe: it fits.
                    let _ = session.ended.write(&[AttachNote::OUTPUT_SKIPPED]);
                    session.told_skipped = true;
                }
                Delivery::Gone => gone.push(session.key),
            }
        }
        for key in gone {
            self.end_session(key, AttachEnd::Lost);
        }
    }

    /// Ends the session `key`: its end byte (unless it is [`AttachEnd::Lost`]), then
    /// its pipes close.
    pub(super) fn end_session(&mut self, key: u64, why: AttachEnd) {
        if let Some(at) = self.sessions.iter().position(|s| s.key == key) {
            let mut session = self.sessions.remove(at);
            if why != AttachEnd::Lost {
                let _ = session.ended.write(&[why.byte()]);
            }
        }
    }

    /// Ends every session: the container stopped. Its stdin writer and terminal go too.
    pub(super) fn stopped(&mut self) {
        for session in std::mem::take(&mut self.sessions) {
            let mut ended = session.ended;
            let _ = ended.write(&[AttachEnd::Exited.byte()]);
        }
        self.stdin = None;
        self.terminal = None;
    }

    /// Starts a session of `streams` on this container's stdio (which `setup` describes);
    /// the answer and its descriptors. `stdin_closed` is set when the session takes
    /// the container's only stdin writer (`stdinOnce`).
    pub(super) fn attach(
        &mut self,
        id: &str,
        setup: ContainerIo,
        streams: AttachStreams,
        stdin_closed: &mut bool,
    ) -> Result<(Response, Vec<OwnedFd>)> {
        if self.sessions.len() >= MAX_SESSIONS {
            return Err(Error::InvalidSpec(format!(
                "container {id} has {MAX_SESSIONS} attach sessions already: no more are taken"
            )));
        }
        if setup.tty && self.terminal.is_none() {
            return Err(Error::InvalidSpec(format!(
                "the terminal of container {id} was lost with the container helper that started it: it cannot be attached to"
            )));
        }
        let mut names = Vec::new();
        let mut fds: Vec<OwnedFd> = Vec::new();
        let (ended_r, ended_w) = pipe()?;
        set_nonblocking(&ended_w)?;
        names.push(AttachFd::Ended);
        fds.push(ended_r.into());
        let mut output = |wanted: bool, name: AttachFd| -> Result<Option<File>> {
            if !wanted {
                return Ok(None);
            }
            let (r, w) = pipe()?;
            set_nonblocking(&w)?;
            // A bigger pipe lets a session lag a little before output is skipped.
            let _ = fcntl(w.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(SESSION_PIPE_BYTES));
            names.push(name);
            fds.push(r.into());
            Ok(Some(w))
        };
        let stdout = output(streams.stdout, AttachFd::Stdout)?;
        let stderr = output(streams.stderr && !setup.tty, AttachFd::Stderr)?;
        if let Some(terminal) = &self.terminal {
            let dup = || terminal.try_clone().map_err(io("terminal"));
            names.push(AttachFd::Terminal);
            fds.push(dup()?.into());
            if streams.stdin && setup.stdin {
                names.push(AttachFd::Stdin);
                fds.push(dup()?.into());
            }
        } else if streams.stdin && setup.stdin {
            // Last, so that nothing fails once a `stdinOnce` writer is taken: losing
            // it would be the container's end-of-file.
            let writer = if setup.stdin_once {
                if let Some(writer) = &self.stdin {
                    set_nonblocking(writer)?;
                }
                self.stdin.take()
            } else {
                let writer = self.stdin_fifo.as_deref().map(open_writer).transpose()?;
                writer.as_ref().map(set_nonblocking).transpose()?;
                writer
            };
            if let Some(writer) = writer {
                if setup.stdin_once {
                    *stdin_closed = true;
                }
                names.push(AttachFd::Stdin);
                fds.push(writer.into());
            }
        }
        self.next_key += 1;
        self.sessions.push(Session {
            key: self.next_key,
            stdout,
            stderr,
            ended: ended_w,
            told_skipped: false,
        });
        let response = Response::Attach {
            tty: setup.tty,
            stdin_once: setup.stdin_once && !setup.tty,
            fds: names,
        };
        Ok((response, fds))
    }
}

/// How much of a write went through at once.
#[derive(Debug, PartialEq, Eq)]
enum Delivery {
    All,
    /// The pipe was full before all of it fitted.
    Full,
    /// Its reader has gone.
    Gone,
}

/// Writes all of `data` to a non-blocking `pipe` if it fits now.
fn write_now(pipe: &mut File, mut data: &[u8]) -> Delivery {
    while !data.is_empty() {
        match pipe.write(data) {
            Ok(0) => return Delivery::Full,
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Delivery::Full,
            Err(_) => return Delivery::Gone,
        }
    }
    Delivery::All
}

fn pipe() -> Result<(File, File)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe2"))?;
    Ok((File::from(r), File::from(w)))
}

fn set_nonblocking(file: &impl AsFd) -> Result<()> {
    let fd = file.as_fd().as_raw_fd();
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(sys("fcntl F_GETFL"))?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(sys("fcntl F_SETFL"))?;
    Ok(())
}

fn make_fifo(path: &Path) -> Result<PathBuf> {
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600))
        .map_err(sys(format!("mkfifo {}", path.display())))?;
    Ok(path.to_path_buf())
}

fn open_fifo(path: &Path, options: &mut OpenOptions) -> Result<File> {
    options.open(path).map_err(io(path))
}

/// A FIFO's read end, non-blocking (its open does not wait for a writer).
pub(super) fn open_reader(fifo: &Path) -> Result<File> {
    open_fifo(
        fifo,
        OpenOptions::new()
            .read(true)
            .custom_flags(OFlag::O_NONBLOCK.bits()),
    )
}

/// A FIFO's write end, non-blocking; fails (ENXIO) when nobody reads it.
fn open_writer(fifo: &Path) -> Result<File> {
    open_fifo(
        fifo,
        OpenOptions::new()
            .write(true)
            .custom_flags(OFlag::O_NONBLOCK.bits()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(dir: &Path) -> LogWriter {
        LogWriter::open(dir.join("c.log"), 1 << 20).unwrap()
    }

    fn all_streams() -> AttachStreams {
        AttachStreams {
            stdin: true,
            stdout: true,
            stderr: true,
        }
    }

    /// The container's side of a prepared stdio: (stdin, stdout, stderr).
    fn container_side(io: ProcessIo) -> (File, File, File) {
        match io {
            ProcessIo::Pipes(s) => (s.stdin.into(), s.stdout.into(), s.stderr.into()),
            ProcessIo::Tty { .. } => panic!("a terminal"),
        }
    }

    fn session_fds(response: &Response, fds: Vec<OwnedFd>) -> Vec<(AttachFd, File)> {
        let Response::Attach { fds: names, .. } = response else {
            panic!("{response:?}")
        };
        names
            .iter()
            .copied()
            .zip(fds.into_iter().map(File::from))
            .collect()
    }

    fn take(fds: &mut Vec<(AttachFd, File)>, name: AttachFd) -> Option<File> {
        let at = fds.iter().position(|(n, _)| *n == name)?;
        Some(fds.remove(at).1)
    }

    #[test]
    fn sessions_get_the_output_written_after_they_attach_and_the_log_gets_all() {
        let dir = tempfile::tempdir().unwrap();
        let io = ContainerIo::default();
        let (prepared, process) = prepare(dir.path(), io, dir.path().join("c.sock")).unwrap();
        let (_stdin, mut stdout, mut stderr) = container_side(process);
        let mut stdio = prepared.finish(log(dir.path())).unwrap();
        stdout.write_all(b"before\n").unwrap();
        stdio.pump("c", Stream::Stdout);
        let mut closed = false;
        let (response, fds) = stdio.attach("c", io, all_streams(), &mut closed).unwrap();
        let mut fds = session_fds(&response, fds);
        // No stdin was asked of the container: none is given.
        assert!(take(&mut fds, AttachFd::Stdin).is_none());
        let mut out = take(&mut fds, AttachFd::Stdout).unwrap();
        let mut err = take(&mut fds, AttachFd::Stderr).unwrap();
        let mut ended = take(&mut fds, AttachFd::Ended).unwrap();
        stdout.write_all(b"after\n").unwrap();
        stderr.write_all(b"oops\n").unwrap();
        stdio.pump("c", Stream::Stdout);
        stdio.pump("c", Stream::Stderr);
        stdio.stopped();
        let mut text = String::new();
        out.read_to_string(&mut text).unwrap();
        assert_eq!(text, "after\n");
        text.clear();
        err.read_to_string(&mut text).unwrap();
        assert_eq!(text, "oops\n");
        let mut why = Vec::new();
        ended.read_to_end(&mut why).unwrap();
        assert_eq!(
            AttachEnd::from_byte(why.first().copied()),
            AttachEnd::Exited
        );
        let logged = std::fs::read_to_string(dir.path().join("c.log")).unwrap();
        assert!(
            logged.contains("stdout F before") && logged.contains("stdout F after"),
            "{logged}"
        );
        assert!(!closed);
    }

    #[test]
    fn a_session_that_does_not_read_stays_attached_and_gets_output_again_once_it_reads() {
        let dir = tempfile::tempdir().unwrap();
        let io = ContainerIo::default();
        let (prepared, process) = prepare(dir.path(), io, dir.path().join("c.sock")).unwrap();
        let (_stdin, mut stdout, _stderr) = container_side(process);
        // A log that is not rotated during the test.
        let writer = LogWriter::open(dir.path().join("c.log"), 64 << 20).unwrap();
        let mut stdio = prepared.finish(writer).unwrap();
        let mut closed = false;
        let streams = AttachStreams {
            stdout: true,
            ..Default::default()
        };
        let (response, fds) = stdio.attach("c", io, streams, &mut closed).unwrap();
        let mut fds = session_fds(&response, fds);
        let mut slow = take(&mut fds, AttachFd::Stdout).unwrap();
        let ended = take(&mut fds, AttachFd::Ended).unwrap();
        set_nonblocking(&ended).unwrap();
        let note = |ended: &File| {
            let mut byte = [0u8; 1];
            match (&*ended).read(&mut byte) {
                Ok(1) => Some(AttachNote::from_byte(Some(byte[0]))),
                Ok(_) => Some(AttachNote::from_byte(None)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => None,
                Err(e) => panic!("{e}"),
            }
        };
        // The container writes more than the session's pipe holds: it never waits
        // (the pipes between it and the helper never fill), the log gets all of it.
        let chunk = vec![b'a'; 60 * 1024];
        let mut written = 0;
        let mut told = None;
        while told.is_none() {
            stdout.write_all(&chunk).unwrap();
            written += chunk.len();
            stdio.pump("c", Stream::Stdout);
            told = note(&ended);
            assert!(written < 64 << 20, "no output was ever skipped");
        }
        assert_eq!(told, Some(AttachNote::OutputSkipped));
        for _ in 0..4 {
            stdout.write_all(&chunk).unwrap();
            stdio.pump("c", Stream::Stdout);
        }
        assert_eq!(stdio.sessions(), 1, "the session was ended");
        // Told once only.
        assert_eq!(note(&ended), None);
        // It catches up: what it reads is what fitted, and then what comes next.
        set_nonblocking(&slow).unwrap();
        let mut buffer = vec![0u8; 1 << 20];
        let mut caught_up = 0;
        loop {
            match slow.read(&mut buffer) {
                Ok(n) => caught_up += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(
            caught_up > 0 && caught_up < written,
            "{caught_up} of {written}"
        );
        stdout.write_all(b"then this\n").unwrap();
        stdio.pump("c", Stream::Stdout);
        let n = slow.read(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"then this\n");
        let logged = std::fs::metadata(dir.path().join("c.log")).unwrap().len();
        assert!(
            logged >= u64::try_from(written).unwrap(),
            "{logged} < {written}"
        );
        // It ends when the container stops, as any session.
        stdio.stopped();
        assert_eq!(note(&ended), Some(AttachNote::Ended(AttachEnd::Exited)));
    }

    #[test]
    fn a_session_whose_client_went_is_noticed_by_poll_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let io = ContainerIo::default();
        let (prepared, _process) = prepare(dir.path(), io, dir.path().join("c.sock")).unwrap();
        let mut stdio = prepared.finish(log(dir.path())).unwrap();
        let mut closed = false;
        let (_, fds) = stdio.attach("c", io, all_streams(), &mut closed).unwrap();
        drop(fds);
        let mut polled: Vec<_> = stdio
            .polled()
            .into_iter()
            .map(|(fd, flags, what)| (nix::poll::PollFd::new(fd, flags), what))
            .collect();
        let mut fds: Vec<_> = polled.iter().map(|(fd, _)| *fd).collect();
        nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).unwrap();
        let gone: Vec<Polled> = fds
            .iter()
            .zip(polled.drain(..))
            .filter(|(fd, _)| fd.revents().is_some_and(|r| !r.is_empty()))
            .map(|(_, (_, what))| what)
            .collect();
        assert_eq!(gone, vec![Polled::Session(1)]);
        stdio.end_session(1, AttachEnd::Lost);
        assert!(stdio.sessions.is_empty());
    }

    #[test]
    fn stdin_once_is_taken_by_the_first_session_and_its_end_is_the_containers_eof() {
        let dir = tempfile::tempdir().unwrap();
        let io = ContainerIo {
            stdin: true,
            stdin_once: true,
            tty: false,
        };
        let (prepared, process) = prepare(dir.path(), io, dir.path().join("c.sock")).unwrap();
        let (mut stdin, _stdout, _stderr) = container_side(process);
        let mut stdio = prepared.finish(log(dir.path())).unwrap();
        let mut closed = false;
        let (response, fds) = stdio.attach("c", io, all_streams(), &mut closed).unwrap();
        assert!(matches!(
            response,
            Response::Attach {
                stdin_once: true,
                ..
            }
        ));
        assert!(closed);
        let mut fds = session_fds(&response, fds);
        let mut writer = take(&mut fds, AttachFd::Stdin).unwrap();
        writer.write_all(b"hello\n").unwrap();
        drop(writer);
        let mut got = String::new();
        stdin.read_to_string(&mut got).unwrap();
        assert_eq!(got, "hello\n");
        // A second session gets no stdin.
        let (response, fds) = stdio.attach("c", io, all_streams(), &mut closed).unwrap();
        assert!(take(&mut session_fds(&response, fds), AttachFd::Stdin).is_none());
    }

    #[test]
    fn a_stdin_once_not_yet_taken_is_closed_for_good_when_its_helper_dies() {
        let dir = tempfile::tempdir().unwrap();
        let io = ContainerIo {
            stdin: true,
            stdin_once: true,
            tty: false,
        };
        let (prepared, process) = prepare(dir.path(), io, dir.path().join("c.sock")).unwrap();
        let (mut stdin, _stdout, _stderr) = container_side(process);
        let stdio = prepared.finish(log(dir.path())).unwrap();
        // The helper dies before any session took the writer: the container reads
        // end-of-file.
        drop(stdio);
        let mut got = Vec::new();
        assert_eq!(stdin.read_to_end(&mut got).unwrap(), 0);
        // The next helper records the stdin as closed and gives no session a stdin.
        let mut closed = false;
        let mut again = Stdio::reopen(dir.path(), io, &mut closed, log(dir.path()));
        assert!(closed);
        let (response, fds) = again.attach("c", io, all_streams(), &mut closed).unwrap();
        let mut fds = session_fds(&response, fds);
        assert!(take(&mut fds, AttachFd::Stdin).is_none());
        assert!(take(&mut fds, AttachFd::Stdout).is_some());
    }

    #[test]
    fn stdin_without_once_stays_open_between_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let io = ContainerIo {
            stdin: true,
            stdin_once: false,
            tty: false,
        };
        let (prepared, process) = prepare(dir.path(), io, dir.path().join("c.sock")).unwrap();
        let (stdin, _stdout, _stderr) = container_side(process);
        let mut stdio = prepared.finish(log(dir.path())).unwrap();
        let mut closed = false;
        for word in ["one\n", "two\n"] {
            let (response, fds) = stdio.attach("c", io, all_streams(), &mut closed).unwrap();
            let mut writer = take(&mut session_fds(&response, fds), AttachFd::Stdin).unwrap();
            writer.write_all(word.as_bytes()).unwrap();
        }
        assert!(!closed);
        // Both sessions' input is there, and no end-of-file after it: the read waits.
        set_nonblocking(&stdin).unwrap();
        let mut got = [0u8; 16];
        let n = (&stdin).read(&mut got).unwrap();
        assert_eq!(&got[..n], b"one\ntwo\n");
        let err = (&stdin).read(&mut got).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WouldBlock);
        // A helper started later reopens the same FIFO.
        let mut again = Stdio::reopen(dir.path(), io, &mut closed, log(dir.path()));
        assert!(!closed);
        let (response, fds) = again.attach("c", io, all_streams(), &mut closed).unwrap();
        let mut writer = take(&mut session_fds(&response, fds), AttachFd::Stdin).unwrap();
        writer.write_all(b"three\n").unwrap();
        let n = (&stdin).read(&mut got).unwrap();
        assert_eq!(&got[..n], b"three\n");
    }

    #[test]
    fn a_terminal_arrives_on_the_console_socket() {
        let dir = tempfile::tempdir().unwrap();
        let (value, master) = with_console(dir.path().join("console.sock"), |path| {
            // What an OCI runtime does: connect, and send the master end alone.
            let mut stream = std::os::unix::net::UnixStream::connect(path).unwrap();
            let (r, _w) = std::io::pipe().unwrap();
            protocol::send(&mut stream, &Response::Ok, &[r.as_fd()]).unwrap();
            Ok(7)
        })
        .unwrap();
        assert_eq!(value, 7);
        assert!(File::from(master).metadata().is_ok());
        assert!(!dir.path().join("console.sock").exists());
    }

    #[test]
    fn sessions_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let io = ContainerIo::default();
        let (prepared, _process) = prepare(dir.path(), io, dir.path().join("c.sock")).unwrap();
        let mut stdio = prepared.finish(log(dir.path())).unwrap();
        let mut closed = false;
        let mut kept = Vec::new();
        for _ in 0..MAX_SESSIONS {
            kept.push(stdio.attach("c", io, all_streams(), &mut closed).unwrap());
        }
        let err = stdio
            .attach("c", io, all_streams(), &mut closed)
            .unwrap_err();
        assert!(err.to_string().contains("attach sessions already"), "{err}");
    }
}

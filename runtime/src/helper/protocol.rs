//! Messages between the runtime's clients and the container helper: a 4-byte
//! big-endian length and a JSON body over a Unix stream socket. File descriptors (an
//! exec'd process' stdio, a terminal's master end, an attach session's pipes) travel
//! with a message as `SCM_RIGHTS`.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::container::{AttachStreams, ContainerState, CreateContainer, ExecProcess};

/// Messages larger than this are refused: no request or answer comes near it.
pub const MAX_MESSAGE: usize = 64 << 20;

/// The version of this protocol a helper speaks, in its answer to [`Request::Ping`]
/// ([`Response::Hello`]). A helper outlives the agents that talk to it, so an agent
/// may meet one older than itself. Raised when a helper's answers change in a way a
/// client must know about:
/// - 1: no version (a helper answering [`Response::Ok`]): containers' `io` is
///   ignored (their stdin is /dev/null, and no terminal), [`Request::Attach`] is not
///   understood or drops a slow session.
/// - 2: stdin and terminals ([`CreateContainer::io`]), attach sessions that skip the
///   output a slow reader cannot take, at most [`super::MAX_HELPER_SESSIONS`] of them.
pub const PROTOCOL_VERSION: u32 = 2;

/// What a client asks of the helper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Request {
    /// Is the helper there, and which protocol does it speak? Answered with
    /// [`Response::Hello`] (with [`Response::Ok`] by helpers of version 1).
    Ping,
    /// Create a container from its bundle (stdout/stderr go to its log).
    Create(CreateContainer),
    /// Start a created container.
    Start {
        /// The container.
        id: String,
    },
    /// Send a signal to the container's processes.
    Kill {
        /// The container.
        id: String,
        /// Signal number.
        signal: i32,
    },
    /// Remove a container (force: kill it first if it runs).
    Delete {
        /// The container.
        id: String,
        /// Kill a running container first.
        force: bool,
    },
    /// The state of one container.
    State {
        /// The container.
        id: String,
    },
    /// The state of every container.
    List,
    /// Run a process in a running container; its stdin, stdout and stderr come with
    /// the message as three file descriptors.
    Exec {
        /// The container.
        id: String,
        /// The process.
        process: ExecProcess,
    },
    /// Wait for an exec'd process to exit; answered with [`Response::Exited`].
    WaitExec {
        /// Its pid, from [`Response::Exec`].
        pid: i32,
    },
    /// Attach to the main process of a running container: answered with
    /// [`Response::Attach`] and the descriptors it names.
    Attach {
        /// The container.
        id: String,
        /// What the session wants.
        streams: AttachStreams,
    },
    /// Stop the helper. Containers keep running; a new helper adopts them.
    Shutdown,
}

/// A descriptor that comes with [`Response::Attach`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttachFd {
    /// Reads why the session ended, then end-of-file (see
    /// [`crate::container::AttachEnd`]).
    Ended,
    /// Writes to the container's stdin.
    Stdin,
    /// The master end of the container's terminal (input and window size).
    Terminal,
    /// Reads the container's stdout (or terminal output) from now on.
    Stdout,
    /// Reads the container's stderr from now on.
    Stderr,
}

/// The helper's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum Response {
    /// Done.
    Ok,
    /// The answer to [`Request::Ping`].
    Hello {
        /// The [`PROTOCOL_VERSION`] the helper speaks.
        version: u32,
    },
    /// A container's state.
    State {
        /// The state.
        state: Box<ContainerState>,
    },
    /// Every container.
    List {
        /// The states.
        containers: Vec<ContainerState>,
    },
    /// An exec'd process was started.
    Exec {
        /// Its pid on the host.
        pid: i32,
    },
    /// An attach session started; its descriptors come with the message, in the order
    /// `fds` names them.
    Attach {
        /// The container runs on a terminal.
        tty: bool,
        /// Closing the `stdin` descriptor closes the container's stdin (`stdinOnce`).
        #[serde(rename = "stdinOnce")]
        stdin_once: bool,
        /// What the descriptors are.
        fds: Vec<AttachFd>,
    },
    /// An exec'd process exited.
    Exited {
        /// Its exit code (128 + signal when killed).
        code: i32,
    },
    /// The request failed.
    Error {
        /// What kind of failure: `notFound`, `exists`, `status`, `engine`, `other`.
        kind: String,
        /// The message.
        message: String,
    },
}

/// Sends one message with `fds` attached.
pub fn send<T: Serialize>(
    stream: &mut UnixStream,
    message: &T,
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<()> {
    let body = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    let len = u32::try_from(body.len())
        .map_err(|_| std::io::Error::other("message too large"))?
        .to_be_bytes();
    if fds.is_empty() {
        stream.write_all(&len)?;
    } else {
        let raw: Vec<i32> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let cmsg = [ControlMessage::ScmRights(&raw)];
        let sent = sendmsg::<()>(
            stream.as_raw_fd(),
            &[IoSlice::new(&len)],
            &cmsg,
            MsgFlags::empty(),
            None,
        )
        .map_err(std::io::Error::from)?;
        if sent < len.len() {
            stream.write_all(&len[sent..])?;
        }
    }
    stream.write_all(&body)
}

/// Receives one descriptor sent alone (a console socket's terminal master).
pub fn recv_fd(stream: &mut UnixStream) -> std::io::Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let (_, mut fds) = recv_with_fds(stream, &mut buf)?;
    fds.pop()
        .ok_or_else(|| std::io::Error::other("no descriptor came with the message"))
}

/// Most descriptors one message carries.
pub const MAX_FDS: usize = 8;

/// One `recvmsg` into `buf`: the bytes read and the descriptors (at most
/// [`MAX_FDS`]) that came with them, owned from here on.
fn recv_with_fds(stream: &UnixStream, buf: &mut [u8]) -> std::io::Result<(usize, Vec<OwnedFd>)> {
    let mut cmsg_space = nix::cmsg_space!([i32; MAX_FDS]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg_space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            for fd in raw {
                #[allow(unsafe_code)]
                // SAFETY: the kernel has just installed these descriptors in this
                // process for us (SCM_RIGHTS); nothing else refers to them.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Ok((msg.bytes, fds))
}

/// Receives one message and the file descriptors that came with it. `Ok(None)` at a
/// clean end of stream.
pub fn recv<T: DeserializeOwned>(
    stream: &mut UnixStream,
) -> std::io::Result<Option<(T, Vec<OwnedFd>)>> {
    let mut len = [0u8; 4];
    let (read, fds) = recv_with_fds(stream, &mut len)?;
    if read == 0 {
        return Ok(None);
    }
    if read < len.len() {
        stream.read_exact(&mut len[read..])?;
    }
    let size = u32::from_be_bytes(len) as usize;
    if size > MAX_MESSAGE {
        return Err(std::io::Error::other(format!(
            "message of {size} bytes is over the limit"
        )));
    }
    let mut body = vec![0u8; size];
    stream.read_exact(&mut body)?;
    let message = serde_json::from_slice(&body).map_err(std::io::Error::other)?;
    Ok(Some((message, fds)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn attach_answers_name_their_descriptors() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let pipes: Vec<_> = (0..2).map(|_| nix::unistd::pipe().unwrap()).collect();
        let answer = Response::Attach {
            tty: false,
            stdin_once: true,
            fds: vec![
                AttachFd::Ended,
                AttachFd::Stdin,
                AttachFd::Stdout,
                AttachFd::Stderr,
            ],
        };
        let fds: Vec<_> = pipes
            .iter()
            .flat_map(|(r, w)| [r.as_fd(), w.as_fd()])
            .collect();
        send(&mut a, &answer, &fds).unwrap();
        let (got, received) = recv::<Response>(&mut b).unwrap().unwrap();
        assert_eq!(got, answer);
        assert_eq!(received.len(), 4);
        let json = serde_json::to_value(&answer).unwrap();
        assert_eq!(json["result"], "attach");
        assert_eq!(json["fds"][1], "stdin");
        assert_eq!(json["stdinOnce"], true);
    }

    #[test]
    fn messages_and_descriptors_cross_the_socket() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        let request = Request::Exec {
            id: "c1".into(),
            process: ExecProcess {
                args: vec!["sh".into()],
                ..Default::default()
            },
        };
        send(&mut a, &request, &[r.as_fd(), w.as_fd()]).unwrap();
        send(&mut a, &Request::Ping, &[]).unwrap();
        let (got, fds) = recv::<Request>(&mut b).unwrap().unwrap();
        assert_eq!(got, request);
        assert_eq!(fds.len(), 2);
        // The received write end feeds the original read end.
        let mut file = std::fs::File::from(fds.into_iter().nth(1).unwrap());
        file.write_all(b"x").unwrap();
        let mut byte = [0u8; 1];
        std::fs::File::from(r).read_exact(&mut byte).unwrap();
        assert_eq!(&byte, b"x");
        let (ping, none) = recv::<Request>(&mut b).unwrap().unwrap();
        assert_eq!((ping, none.len()), (Request::Ping, 0));
        drop(a);
        assert!(recv::<Request>(&mut b).unwrap().is_none());
    }
}

//! `GET|POST /attach/{namespace}/{pod}[/{uid}]/{container}?stdin&stdout&stderr&tty`:
//! the container's main process on the remote-command WebSocket
//! ([`super::remote_command`]), as kubelet serves `kubectl attach` and
//! `kubectl run -i` with containerd.
//!
//! - Output is the container's from now on (its past is in its log).
//! - Input goes to its stdin, or its terminal, when the container has one
//!   (`stdin: true`); otherwise it is dropped, as containerd drops it.
//! - Whether the session is on a terminal is the container's (`tty`), not the
//!   request's: kubelet takes it from the pod, as a process' terminal cannot change
//!   once it runs (kubectl warns "Unable to use a TTY - container X did not allocate
//!   one" itself).
//! - The session ends when the container stops; when the client's input ends, unless
//!   the container has `stdinOnce` without a terminal (then its stdin is closed, and
//!   the output goes on until it stops); or when the client goes. The `Status` is
//!   `Success`, but when the node could not attach (the runtime's reason, on the
//!   error channel as containerd's errors come) or dropped the session (a client
//!   slower than the container's output, a restarted container helper).
//! - What kubelet checks before the upgrade is answered with an HTTP error in its
//!   words: no stream asked for, a container not running ("container C not found in
//!   pod P_NS"), stderr asked of a terminal.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use rk8s_http::body::Body;
use rk8s_http::query::Query;
use rk8s_http::status::{ApiError, ApiResult};
use rk8s_runtime::container::{AttachEnd, AttachHandle, AttachStreams};
use rk8s_runtime::nonblocking::NonBlocking;
use rk8s_runtime::pod::PodRuntime;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;

use super::find_pod;
use super::remote_command::{self, Client, Input, STDERR, STDOUT, Step, Upgrade};

/// Answers an attach request for container `container` of the pod `namespace/pod`
/// (with `uid`, exactly that one).
pub(super) async fn attach(
    runtime: Arc<PodRuntime>,
    req: Request<Incoming>,
    namespace: &str,
    pod: &str,
    uid: Option<&str>,
    container: &str,
    query: &Query,
) -> ApiResult<Response<Body>> {
    let streams = streams(query)?;
    let record = find_pod(&runtime, namespace, pod, uid)?;
    // kubelet finds the container among the running ones, naming the pod by its
    // full name.
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("container {container} not found in pod {pod}_{namespace}"),
        )
    };
    let tty = record
        .pod
        .spec
        .iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == container)
        .ok_or_else(not_found)?
        .tty
        .unwrap_or(false);
    if tty && streams.stderr {
        // CRI's validateAttachRequest: a terminal has one output stream.
        return Err(ApiError::bad_request("tty and stderr cannot both be true"));
    }
    let running = runtime
        .is_running(&record.uid, container)
        .await
        .unwrap_or(false);
    if !running {
        return Err(not_found());
    }
    let upgrade = Upgrade::asked(&req, "attach")?;
    let v5 = upgrade.v5();
    let (uid, container) = (record.uid.clone(), container.to_string());
    Ok(upgrade.accept(req, move |ws| {
        session(ws, runtime, uid, container, streams, v5)
    }))
}

/// The streams asked for, as kubelet reads them (`remotecommand.NewOptions`): stderr
/// goes with a terminal, and one stream at least.
fn streams(query: &Query) -> ApiResult<AttachStreams> {
    let streams = AttachStreams {
        stdin: query.flag("stdin"),
        stdout: query.flag("stdout"),
        stderr: query.flag("stderr") && !query.flag("tty"),
    };
    if !streams.stdin && !streams.stdout && !streams.stderr {
        return Err(ApiError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    Ok(streams)
}

/// How a session ended, and what the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome<'a> {
    /// The container stopped: its last output is drained first.
    Exited,
    /// The client's input ended, and that ends the session.
    InputEnded,
    /// The client went: nobody to tell.
    ClientGone,
    /// The runtime ended the session while the container runs.
    Dropped(AttachEnd),
    /// The runtime did not start it (containerd's attach errors come on the error
    /// channel too).
    Refused(&'a str),
}

/// Whether the end of the client's input ends the session (containerd's
/// `ContainerIO.Attach`): it does, but when the container has `stdinOnce` without a
/// terminal — its stdin is closed instead — or the session writes to no stdin.
fn input_end_ends_session(handle: &AttachHandle) -> bool {
    handle.stdin.is_some() && !handle.stdin_once
}

/// The final `Status` of a session that ended so (None: nobody to tell).
fn end_status(outcome: Outcome<'_>) -> Option<serde_json::Value> {
    let success = json!({"metadata": {}, "status": "Success"});
    let failure = |message: &str| {
        json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("Internal error occurred: {message}"),
            "reason": "InternalError",
            "details": {"causes": [{"message": message}]},
            "code": 500,
        })
    };
    match outcome {
        Outcome::Exited | Outcome::InputEnded => Some(success),
        Outcome::ClientGone => None,
        Outcome::Dropped(AttachEnd::FellBehind) => Some(failure(
            "the attach client read the container's output slower than the container wrote it: the node ended the session",
        )),
        Outcome::Dropped(_) => Some(failure(
            "the node's container helper restarted: the attach session was lost",
        )),
        Outcome::Refused(message) => Some(failure(message)),
    }
}

/// Why the runtime ended the session, once it has. Dropping the future closes the
/// descriptor, which tells the runtime the session is over.
async fn read_end(ended: std::os::fd::OwnedFd) -> AttachEnd {
    let Ok(ended) = NonBlocking::new(ended) else {
        return AttachEnd::Lost;
    };
    let mut byte = [0u8; 1];
    match ended.read(&mut byte).await {
        Ok(1) => AttachEnd::from_byte(Some(byte[0])),
        _ => AttachEnd::Lost,
    }
}

async fn session<S>(
    ws: WebSocketStream<S>,
    runtime: Arc<PodRuntime>,
    uid: String,
    container: String,
    streams: AttachStreams,
    v5: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut handle = match runtime.attach(&uid, &container, streams).await {
        Ok(handle) => handle,
        Err(e) => {
            let (client, _) = Client::split(ws);
            let message = e.to_string();
            client.finish(end_status(Outcome::Refused(&message))).await;
            return;
        }
    };
    let (client, from_client) = Client::split(ws);
    let mut pumps = Vec::new();
    if let Some(stdout) = handle.stdout.take() {
        pumps.push(remote_command::pump_out(stdout, STDOUT, client.out.clone()));
    }
    if let Some(stderr) = handle.stderr.take() {
        pumps.push(remote_command::pump_out(stderr, STDERR, client.out.clone()));
    }
    let ends_on_input_end = input_end_ends_session(&handle);
    let terminal = handle.terminal.take().map(std::fs::File::from);
    let input = Input::new(handle.stdin.take(), terminal);
    let (steps_tx, mut steps) = mpsc::channel(4);
    let input = remote_command::forward_input(from_client, input, v5, steps_tx);
    let ended = read_end(handle.ended);
    tokio::pin!(ended);
    let outcome = loop {
        tokio::select! {
            end = &mut ended => break match end {
                AttachEnd::Exited => Outcome::Exited,
                other => Outcome::Dropped(other),
            },
            step = steps.recv() => match step {
                Some(Step::StdinClosed) if ends_on_input_end => break Outcome::InputEnded,
                Some(Step::StdinClosed | Step::Continue) => {}
                Some(Step::ClientGone) | None => break Outcome::ClientGone,
            },
        }
    };
    // A helper that went away may have left the container running, or it stopped.
    let outcome = match outcome {
        Outcome::Dropped(AttachEnd::Lost)
            if !runtime.is_running(&uid, &container).await.unwrap_or(false) =>
        {
            Outcome::Exited
        }
        other => other,
    };
    if outcome == Outcome::Exited {
        remote_command::drain(pumps).await;
    } else {
        for pump in pumps {
            pump.abort();
        }
    }
    input.abort();
    client.finish(end_status(outcome)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str) -> Query {
        Query::parse(Some(q))
    }

    #[test]
    fn streams_are_read_as_kubelet_reads_them() {
        let s = streams(&query("stdin=true&stdout=true&stderr=true&tty=true")).unwrap();
        assert_eq!(
            s,
            AttachStreams {
                stdin: true,
                stdout: true,
                stderr: false
            }
        );
        let err = streams(&query("tty=true&stderr=true")).unwrap_err();
        assert!(
            err.to_string()
                .contains("you must specify at least 1 of stdin, stdout, stderr"),
            "{err}"
        );
    }

    #[test]
    fn only_stdin_once_without_a_terminal_outlives_the_input() {
        let fd = || -> std::os::fd::OwnedFd { std::fs::File::open("/dev/null").unwrap().into() };
        let handle = |stdin: bool, stdin_once: bool| AttachHandle {
            tty: false,
            stdin: stdin.then(fd),
            stdin_once,
            terminal: None,
            stdout: None,
            stderr: None,
            ended: fd(),
        };
        assert!(input_end_ends_session(&handle(true, false)));
        assert!(!input_end_ends_session(&handle(true, true)));
        // No stdin to write to (none, or a stdinOnce one already closed): the
        // client's input does not matter.
        assert!(!input_end_ends_session(&handle(false, false)));
    }

    #[test]
    fn sessions_end_with_kubelets_statuses() {
        assert_eq!(end_status(Outcome::Exited).unwrap()["status"], "Success");
        assert_eq!(
            end_status(Outcome::InputEnded).unwrap()["status"],
            "Success"
        );
        assert!(end_status(Outcome::ClientGone).is_none());
        let refused = end_status(Outcome::Refused("no such container")).unwrap();
        assert_eq!(
            refused["message"],
            "Internal error occurred: no such container"
        );
        let behind = end_status(Outcome::Dropped(AttachEnd::FellBehind)).unwrap();
        assert_eq!(behind["status"], "Failure");
        assert!(
            behind["message"]
                .as_str()
                .unwrap()
                .starts_with("Internal error occurred: ")
        );
    }

    #[tokio::test]
    async fn the_end_byte_says_why() {
        use std::io::Write;
        let (r, mut w) = std::io::pipe().unwrap();
        w.write_all(&[AttachEnd::FellBehind.byte()]).unwrap();
        drop(w);
        assert_eq!(read_end(r.into()).await, AttachEnd::FellBehind);
        let (r, w) = std::io::pipe().unwrap();
        drop(w);
        assert_eq!(read_end(r.into()).await, AttachEnd::Lost);
    }
}

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
//!   the output goes on until it stops); or when the client goes (or is taken for
//!   gone: see [`super::remote_command`]). The `Status` is `Success`, but when the
//!   node could not attach or lost the session (a restarted container helper):
//!   kubelet's `Internal error occurred: error attaching to container: …`.
//! - A client slower than the container's output is not ended: what it cannot take
//!   is skipped for it (the log has it all), and it is told once on its stderr.
//! - A `stdinOnce` container's stdin is closed by the client's input ending or the
//!   client leaving only: a container helper that restarts under the session leaves
//!   it open (the session then gets no more output, its input still goes through).
//! - What kubelet checks before the upgrade is answered with an HTTP error in its
//!   words: no stream asked for, a container not running ("container C not found in
//!   pod P_NS"), stderr asked of a terminal.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use rk8s_http::body::Body;
use rk8s_http::query::Query;
use rk8s_http::status::{ApiError, ApiResult};
use rk8s_runtime::container::{AttachEnd, AttachHandle, AttachNote, AttachStreams};
use rk8s_runtime::nonblocking::NonBlocking;
use rk8s_runtime::pod::PodRuntime;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::find_pod;
use super::remote_command::{self, Client, Input, STDERR, STDOUT, Step, Upgrade};

/// How often a session whose container helper went away checks that the container
/// still runs (nothing tells it any more when it stops).
const HELPER_GONE_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// What a client slower than the container's output is told, once, on stderr.
const SKIPPED: &str = "rk8s: this client read the container's output slower than the container wrote it: some of it was skipped here (the container's log has all of it)\n";

/// What a `stdinOnce` session is told on stderr when the helper serving it restarted.
const HELPER_GONE: &str = "rk8s: the node's container helper restarted: this session gets no more output; its input still goes to the container\n";

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
        .as_ref()
        .and_then(|s| rk8s_api::containers::named(s, container))
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
    /// The runtime lost the session while the container runs (a restarted helper).
    HelperLost,
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

/// The final `Status` of a session that ended so (None: nobody to tell). Failures
/// are worded as kubelet's `ServeAttach` words them (an `InternalError` of "error
/// attaching to container: …").
fn end_status(outcome: Outcome<'_>) -> Option<serde_json::Value> {
    let success = json!({"metadata": {}, "status": "Success"});
    let failure = |cause: &str| {
        let message = format!("error attaching to container: {cause}");
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
        Outcome::HelperLost => Some(failure(
            "the node's container helper restarted: the session's output was lost",
        )),
        Outcome::Refused(message) => Some(failure(message)),
    }
}

/// The next thing the runtime says on a session's `ended` pipe: end-of-file (or a
/// pipe that cannot be read) is [`AttachEnd::Lost`]. Cancel-safe.
async fn next_note(ended: Option<&NonBlocking>) -> AttachNote {
    let Some(ended) = ended else {
        return AttachNote::Ended(AttachEnd::Lost);
    };
    let mut byte = [0u8; 1];
    match ended.read(&mut byte).await {
        Ok(1) => AttachNote::from_byte(Some(byte[0])),
        _ => AttachNote::Ended(AttachEnd::Lost),
    }
}

/// Tells the client `text` on its stderr channel, when the session has one; a task,
/// as the client may be slow to take it.
fn tell(out: &mpsc::Sender<Message>, stderr: bool, text: &'static str) -> Option<JoinHandle<()>> {
    stderr.then(|| {
        let out = out.clone();
        tokio::spawn(async move {
            let mut message = vec![STDERR];
            message.extend_from_slice(text.as_bytes());
            let _ = out.send(Message::Binary(message.into())).await;
        })
    })
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
    // Output copies, and messages to the client: drained or stopped at the end.
    let mut copies = Vec::new();
    if let Some(stdout) = handle.stdout.take() {
        copies.push(remote_command::pump_out(stdout, STDOUT, client.out.clone()));
    }
    let has_stderr = handle.stderr.is_some();
    if let Some(stderr) = handle.stderr.take() {
        copies.push(remote_command::pump_out(stderr, STDERR, client.out.clone()));
    }
    let ends_on_input_end = input_end_ends_session(&handle);
    // The session holds the container's only stdin writer: only the client's input
    // ending or the client leaving may close it (then the container reads
    // end-of-file), never something of the node's.
    let holds_stdin_once = handle.stdin_once && handle.stdin.is_some();
    let terminal = handle.terminal.take().map(std::fs::File::from);
    let input = Input::new(handle.stdin.take(), terminal);
    let (steps_tx, mut steps) = mpsc::channel(4);
    let input = remote_command::forward_input(from_client, input, v5, client.liveness(), steps_tx);
    // Closing it ends the session for the runtime.
    let ended = NonBlocking::new(handle.ended).ok();
    let mut input_open = true;
    let mut helper_gone = false;
    let mut checks = tokio::time::interval(HELPER_GONE_CHECK);
    let outcome = loop {
        tokio::select! {
            note = next_note(ended.as_ref()), if !helper_gone => match note {
                AttachNote::OutputSkipped => {
                    copies.extend(tell(&client.out, has_stderr, SKIPPED));
                }
                AttachNote::Ended(AttachEnd::Exited) => break Outcome::Exited,
                AttachNote::Ended(AttachEnd::Lost) => {
                    // A helper that went away may have left the container running,
                    // or it stopped.
                    if !runtime.is_running(&uid, &container).await.unwrap_or(false) {
                        break Outcome::Exited;
                    }
                    if !(holds_stdin_once && input_open) {
                        break Outcome::HelperLost;
                    }
                    helper_gone = true;
                    copies.extend(tell(&client.out, has_stderr, HELPER_GONE));
                }
            },
            _ = checks.tick(), if helper_gone => {
                if !runtime.is_running(&uid, &container).await.unwrap_or(false) {
                    break Outcome::Exited;
                }
            }
            step = steps.recv() => match step {
                Some(Step::StdinClosed) if helper_gone => break Outcome::HelperLost,
                Some(Step::StdinClosed) if ends_on_input_end => break Outcome::InputEnded,
                Some(Step::StdinClosed) => input_open = false,
                Some(Step::Continue) => {}
                Some(Step::ClientGone) | None => break Outcome::ClientGone,
            },
        }
    };
    // Nothing of the runtime's is held while the client is waited for.
    drop(ended);
    if outcome == Outcome::Exited {
        remote_command::drain(copies).await;
    } else {
        for copy in copies {
            copy.abort();
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
        // kubelet's ServeAttach: apierrors.NewInternalError of "error attaching to
        // container: …".
        let refused = end_status(Outcome::Refused("no such container")).unwrap();
        assert_eq!(
            refused["message"],
            "Internal error occurred: error attaching to container: no such container"
        );
        assert_eq!(
            refused["details"]["causes"][0]["message"],
            "error attaching to container: no such container"
        );
        assert_eq!(
            (&refused["reason"], &refused["code"]),
            (&json!("InternalError"), &json!(500))
        );
        let lost = end_status(Outcome::HelperLost).unwrap();
        assert_eq!(lost["status"], "Failure");
        assert!(
            lost["message"]
                .as_str()
                .unwrap()
                .starts_with("Internal error occurred: error attaching to container: ")
        );
    }

    #[tokio::test]
    async fn the_ended_pipe_tells_skipped_output_then_why_it_ended() {
        use std::io::Write;
        let (r, mut w) = std::io::pipe().unwrap();
        w.write_all(&[AttachNote::OUTPUT_SKIPPED, AttachEnd::Exited.byte()])
            .unwrap();
        drop(w);
        let ended = NonBlocking::new(r).unwrap();
        assert_eq!(next_note(Some(&ended)).await, AttachNote::OutputSkipped);
        assert_eq!(
            next_note(Some(&ended)).await,
            AttachNote::Ended(AttachEnd::Exited)
        );
        let (r, w) = std::io::pipe().unwrap();
        drop(w);
        let ended = NonBlocking::new(r).unwrap();
        assert_eq!(
            next_note(Some(&ended)).await,
            AttachNote::Ended(AttachEnd::Lost)
        );
        assert_eq!(next_note(None).await, AttachNote::Ended(AttachEnd::Lost));
    }
}

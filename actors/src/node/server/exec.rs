//! `GET|POST /exec/{namespace}/{pod}[/{uid}]/{container}?command=…&stdin&stdout&stderr&tty`:
//! a new process in a running container, its stdio on the remote-command WebSocket
//! ([`super::remote_command`]), its exit code in the final `Status`. A client that
//! goes (or is taken for gone: idle, unresponsive) ends the session without waiting
//! for the process: its stdin closes, and so do its output pipes.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use rk8s_http::body::Body;
use rk8s_http::query::Query;
use rk8s_http::status::{ApiError, ApiResult};
use rk8s_runtime::ExecProcess;
use rk8s_runtime::pod::PodRuntime;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;

use super::find_pod;
use super::remote_command::{self, Client, Input, STDERR, STDOUT, Step, Upgrade};

/// What an exec asks for.
struct ExecRequest {
    uid: String,
    container: String,
    command: Vec<String>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
    /// v5: the client closes stdin with a CLOSE message.
    v5: bool,
}

/// Answers an exec request for container `container` of the pod `namespace/pod`
/// (with `uid`, exactly that one).
pub(super) async fn exec(
    runtime: Arc<PodRuntime>,
    req: Request<Incoming>,
    namespace: &str,
    pod: &str,
    uid: Option<&str>,
    container: &str,
    query: &Query,
) -> ApiResult<Response<Body>> {
    let record = find_pod(&runtime, namespace, pod, uid)?;
    let running = record
        .containers
        .get(container)
        .is_some_and(|c| c.id.is_some());
    if !running {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("container {container} is not running in pod {namespace}/{pod}"),
        ));
    }
    let command: Vec<String> = query
        .pairs()
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    let upgrade = Upgrade::asked(&req, "exec")?;
    let tty = query.flag("tty");
    let exec = ExecRequest {
        uid: record.uid.clone(),
        container: container.to_string(),
        command,
        stdin: query.flag("stdin"),
        stdout: query.flag("stdout"),
        // A terminal has one output stream.
        stderr: query.flag("stderr") && !tty,
        tty,
        v5: upgrade.v5(),
    };
    Ok(upgrade.accept(req, move |ws| session(runtime, ws, exec)))
}

/// The `Status` sent on the error channel when the process ends.
fn exit_status(command: &[String], result: &rk8s_runtime::Result<i32>) -> serde_json::Value {
    match result {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(e) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("error executing command {command:?}: {e}"),
            "reason": "InternalError",
        }),
    }
}

async fn session<S>(runtime: Arc<PodRuntime>, ws: WebSocketStream<S>, req: ExecRequest)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (client, from_client) = Client::split(ws);
    let process = ExecProcess {
        args: req.command.clone(),
        ..Default::default()
    };
    // Exec ends with its process, not with its input; or when the client goes.
    let (steps, mut steps_rx) = mpsc::channel(4);
    let steps_rx = &mut steps_rx;
    let liveness = client.liveness();
    let (result, pumps, input) = if req.tty {
        match runtime.exec_tty(&req.uid, &req.container, process).await {
            Ok((pid, pty)) => {
                let master = std::fs::File::from(pty);
                match (master.try_clone(), master.try_clone()) {
                    (Ok(reader), Ok(writer)) => {
                        let pump = remote_command::pump_out(reader, STDOUT, client.out.clone());
                        let stdin = req.stdin.then(|| writer.into());
                        let input = Input::new(stdin, Some(master));
                        let input = remote_command::forward_input(
                            from_client,
                            input,
                            req.v5,
                            liveness,
                            steps,
                        );
                        let result = unless_client_goes(runtime.wait_exec(pid), steps_rx).await;
                        (result, vec![pump], Some(input))
                    }
                    (Err(e), _) | (_, Err(e)) => (
                        Some(Err(rk8s_runtime::Error::Io {
                            path: "terminal".into(),
                            source: e,
                        })),
                        Vec::new(),
                        None,
                    ),
                }
            }
            Err(e) => (Some(Err(e)), Vec::new(), None),
        }
    } else {
        match pipes(&req) {
            Ok((stdio, stdin, stdout, stderr)) => {
                let mut pumps = Vec::new();
                if let Some(r) = stdout {
                    pumps.push(remote_command::pump_out(r, STDOUT, client.out.clone()));
                }
                if let Some(r) = stderr {
                    pumps.push(remote_command::pump_out(r, STDERR, client.out.clone()));
                }
                let input = Input::new(stdin.map(Into::into), None);
                let input =
                    remote_command::forward_input(from_client, input, req.v5, liveness, steps);
                let run = runtime.exec(&req.uid, &req.container, process, stdio);
                (unless_client_goes(run, steps_rx).await, pumps, Some(input))
            }
            Err(e) => (
                Some(Err(rk8s_runtime::Error::Io {
                    path: "pipe".into(),
                    source: e,
                })),
                Vec::new(),
                None,
            ),
        }
    };
    if result.is_some() {
        remote_command::drain(pumps).await;
    } else {
        for pump in pumps {
            pump.abort();
        }
    }
    if let Some(input) = input {
        input.abort();
    }
    let status = result.map(|result| exit_status(&req.command, &result));
    client.finish(status).await;
}

/// What `work` gives, or None once the client has gone.
async fn unless_client_goes<T>(
    work: impl Future<Output = T>,
    steps: &mut mpsc::Receiver<Step>,
) -> Option<T> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return Some(done),
            step = steps.recv() => match step {
                Some(Step::ClientGone) | None => return None,
                Some(Step::Continue | Step::StdinClosed) => {}
            },
        }
    }
}

type Stdio = (
    [std::os::fd::OwnedFd; 3],
    Option<std::io::PipeWriter>,
    Option<std::io::PipeReader>,
    Option<std::io::PipeReader>,
);

/// The exec'd process' stdio: pipes for the streams asked for, /dev/null otherwise;
/// and our ends of the pipes.
fn pipes(req: &ExecRequest) -> std::io::Result<Stdio> {
    let null = || -> std::io::Result<std::os::fd::OwnedFd> {
        Ok(std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?
            .into())
    };
    let (stdin_fd, stdin) = if req.stdin {
        let (r, w) = std::io::pipe()?;
        (r.into(), Some(w))
    } else {
        (null()?, None)
    };
    let output = |wanted: bool| -> std::io::Result<_> {
        if wanted {
            let (r, w) = std::io::pipe()?;
            Ok((std::os::fd::OwnedFd::from(w), Some(r)))
        } else {
            Ok((null()?, None))
        }
    };
    let (stdout_fd, stdout) = output(req.stdout)?;
    let (stderr_fd, stderr) = output(req.stderr)?;
    Ok(([stdin_fd, stdout_fd, stderr_fd], stdin, stdout, stderr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_become_kubernetes_statuses() {
        let cmd = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        assert_eq!(exit_status(&cmd, &Ok(0))["status"], "Success");
        let failed = exit_status(&cmd, &Ok(3));
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
    }
}

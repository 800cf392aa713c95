//! `rk8sctl exec` against a cluster: the API server forwards it to the node running
//! the pod (`pods/exec` over a WebSocket); the pod and container choice `logs` shares.

use std::io::Read;

use anyhow::{Context, Result, bail};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::AttachParams;
use tokio::io::AsyncWriteExt;

use crate::cluster::explain;
use crate::commands::Global;

/// `exec` arguments (kubectl's).
#[derive(clap::Args, Clone, Debug)]
pub struct ExecArgs {
    /// The pod: `NAME` or `pod/NAME`.
    #[arg(add = crate::completion::pods())]
    pub pod: String,
    /// The container (default: the pod's default container).
    #[arg(short, long)]
    pub container: Option<String>,
    /// Pass standard input to the process.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Run it on a terminal (with -i: interactive, like `exec -it POD -- sh`).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

pub(crate) fn pod_name(arg: &str) -> Result<&str> {
    match arg.split_once('/') {
        None => Ok(arg),
        Some(("pod" | "pods" | "po", name)) => Ok(name),
        Some((kind, _)) => bail!("{arg}: logs and exec take a pod, not a {kind}"),
    }
}

/// The container a command means: the one given, else kubectl's default (the
/// `kubectl.kubernetes.io/default-container` annotation, else the first), announced
/// on stderr when the pod has several.
pub(crate) fn container_of(pod: &Pod, asked: Option<&str>) -> Result<String> {
    if let Some(c) = asked {
        return Ok(c.to_string());
    }
    let names: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
        .collect();
    let annotated = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kubectl.kubernetes.io/default-container"))
        .filter(|c| names.contains(c));
    let chosen = annotated
        .or(names.first())
        .cloned()
        .context("the pod has no containers")?;
    if names.len() > 1 {
        eprintln!(
            "Defaulted container \"{chosen}\" out of: {}",
            names.join(", ")
        );
    }
    Ok(chosen)
}

/// `rk8sctl exec`; returns the process' exit code.
pub async fn exec(g: &Global, args: &ExecArgs) -> Result<i32> {
    let cluster = g.connect().await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let name = pod_name(&args.pod)?;
    let pod = pods.get(name).await.map_err(explain)?;
    let params = AttachParams {
        container: Some(container_of(&pod, args.container.as_deref())?),
        stdin: args.stdin,
        stdout: true,
        stderr: !args.tty,
        tty: args.tty,
        ..Default::default()
    };
    let _raw = args.tty.then(terminal::RawMode::enter).flatten();
    let mut attached = pods
        .exec(name, args.command.clone(), &params)
        .await
        .map_err(explain)?;
    let status = attached.take_status();
    if let (true, Some(mut sizes)) = (args.tty, attached.terminal_size())
        && let Some(size) = terminal::size()
    {
        use futures_util::SinkExt;
        let _ = sizes.send(size).await;
    }
    if let Some(mut stdin) = attached.stdin() {
        // Standard input is read on a plain thread (a blocked read must not hold the
        // process open once the command has ended).
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut input = std::io::stdin();
            while let Ok(n) = input.read(&mut buf) {
                if n == 0 || tx.blocking_send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(data) = rx.recv().await {
                if stdin.write_all(&data).await.is_err() {
                    return;
                }
            }
            // End of input: the process reads end-of-file.
            let _ = stdin.shutdown().await;
        });
    }
    let stdout = attached.stdout().map(|mut from| {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut tokio::io::stdout()).await;
        })
    });
    let stderr = attached.stderr().map(|mut from| {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut tokio::io::stderr()).await;
        })
    });
    let status = match status {
        Some(s) => s.await,
        None => None,
    };
    for task in [stdout, stderr].into_iter().flatten() {
        let _ = task.await;
    }
    attached.join().await.context("the exec stream broke")?;
    drop(_raw);
    exit_code(status)
}

/// The exit code a final `Status` carries (kubectl's rule: `NonZeroExitCode` with an
/// `ExitCode` cause); other failures are errors.
fn exit_code(
    status: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>,
) -> Result<i32> {
    let Some(status) = status else {
        bail!("the connection ended without the command's exit status");
    };
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    if status.reason.as_deref() == Some("NonZeroExitCode")
        && let Some(code) = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
            .and_then(|c| c.message.as_deref())
            .and_then(|m| m.parse().ok())
    {
        return Ok(code);
    }
    bail!("{}", status.message.unwrap_or_else(|| "exec failed".into()))
}

mod terminal {
    //! This terminal in raw mode while a remote terminal is attached.

    use std::os::fd::AsFd;

    use kube::api::TerminalSize;
    use nix::sys::termios::{self, SetArg, Termios};

    pub struct RawMode(Termios);

    impl RawMode {
        /// Raw mode, if standard input is a terminal.
        pub fn enter() -> Option<Self> {
            let stdin = std::io::stdin();
            let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
            let mut raw = saved.clone();
            termios::cfmakeraw(&mut raw);
            termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
            Some(RawMode(saved))
        }
    }

    impl Drop for RawMode {
        fn drop(&mut self) {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.0);
        }
    }

    /// This terminal's size, if standard output is one.
    pub fn size() -> Option<TerminalSize> {
        let size = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
        Some(TerminalSize {
            width: size.ws_col,
            height: size.ws_row,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_named_plainly_or_with_their_kind() {
        assert_eq!(pod_name("web").unwrap(), "web");
        assert_eq!(pod_name("pod/web").unwrap(), "web");
        assert!(pod_name("deploy/web").is_err());
    }

    #[test]
    fn exit_codes_come_from_the_final_status() {
        let status = |v: serde_json::Value| Some(serde_json::from_value(v).unwrap());
        assert_eq!(
            exit_code(status(serde_json::json!({"status": "Success"}))).unwrap(),
            0
        );
        let failed = status(serde_json::json!({
            "status": "Failure", "reason": "NonZeroExitCode", "message": "…",
            "details": {"causes": [{"reason": "ExitCode", "message": "7"}]},
        }));
        assert_eq!(exit_code(failed).unwrap(), 7);
        let broken =
            status(serde_json::json!({"status": "Failure", "message": "no such container"}));
        assert_eq!(
            exit_code(broken).unwrap_err().to_string(),
            "no such container"
        );
        assert!(exit_code(None).is_err());
    }

    #[test]
    fn the_default_container_is_annotated_or_first() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "annotations": {"kubectl.kubernetes.io/default-container": "b"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        }))
        .unwrap();
        assert_eq!(container_of(&pod, None).unwrap(), "b");
        assert_eq!(container_of(&pod, Some("a")).unwrap(), "a");
    }
}

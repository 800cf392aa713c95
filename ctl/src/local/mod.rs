//! The local modes of the original rk8s tool, without a control plane: one container
//! (`rk8sctl container`), one pod (`rk8sctl pod`), a Compose app (`rk8sctl compose`),
//! all on the node runtime — the same container helper, image store and pod network a
//! node uses; and the image store they run from (`rk8sctl image`).
//!
//! State lives under the run directory (`/run/rk8s`: `local/` for containers and pods,
//! `compose/<project>/` for Compose apps), so every command works from a new shell and a
//! reboot, which empties /run, leaves nothing stale. Images persist under the data
//! directory (`/var/lib/rk8s/images`).

pub mod commands;
pub mod compose;
pub mod image;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use rk8s_netoverlay::host::System;
use rk8s_netoverlay::{Ipv4Net, Network, NetworkConfig};
use rk8s_runtime::helper::HelperClient;
use rk8s_runtime::pod::{PodRecord, PodRuntime, PodRuntimeConfig};

/// The data directory unless `RK8S_DATA_DIR` (or `image --root`) says otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/rk8s";

/// The label saying which local mode made a pod.
pub const MODE_LABEL: &str = "rk8s.io/local-mode";

/// Where local state lives and what the sandbox runs.
#[derive(Debug, Clone)]
pub struct LocalPaths {
    /// Run directory (`/run/rk8s`; `RK8S_RUN_DIR`).
    pub run_dir: PathBuf,
    /// Data directory (`/var/lib/rk8s`; `RK8S_DATA_DIR`): the image store.
    pub data_dir: PathBuf,
    /// The pause image (`RK8S_PAUSE_IMAGE`; default the one built into the binary).
    pub pause_image: String,
    /// The local network's range (`RK8S_LOCAL_SUBNET`, default 10.88.0.0/16).
    pub subnet: Ipv4Net,
    /// The local network's bridge (`RK8S_LOCAL_BRIDGE`, default `rk8s0`).
    pub bridge: String,
}

impl LocalPaths {
    /// From the environment, with the defaults above.
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let data_dir =
            PathBuf::from(var("RK8S_DATA_DIR").unwrap_or_else(|| DEFAULT_DATA_DIR.into()));
        let pause_image = rk8s_runtime::image::default_pause_image();
        let subnet = match var("RK8S_LOCAL_SUBNET") {
            Some(s) => s
                .parse()
                .with_context(|| format!("RK8S_LOCAL_SUBNET={s}"))?,
            None => Ipv4Net::LOCAL_DEFAULT,
        };
        Ok(Self {
            run_dir: PathBuf::from(var("RK8S_RUN_DIR").unwrap_or_else(|| "/run/rk8s".into())),
            data_dir,
            pause_image,
            subnet,
            bridge: var("RK8S_LOCAL_BRIDGE").unwrap_or_else(|| "rk8s0".into()),
        })
    }

    /// The container helper shared by every local mode.
    pub fn helper(&self) -> Result<HelperClient> {
        let exe = std::env::current_exe().context("failed to find this program's path")?;
        // Nothing watches local containers between commands but the helper; once none
        // is left it goes too.
        Ok(HelperClient::new(self.run_dir.join("local/helper"), exe)
            .with_idle_exit(Duration::from_secs(60)))
    }
}

/// A pod runtime over the local state in `state_dir` and `network`.
pub fn pod_runtime(paths: &LocalPaths, state_dir: &Path, network: Network) -> Result<PodRuntime> {
    let mut config = PodRuntimeConfig::new(state_dir, paths.pause_image.clone());
    config.images_dir = Some(paths.data_dir.join("images"));
    let helper = paths.helper()?;
    PodRuntime::new(config, Arc::new(helper), Some(Arc::new(network)))
        .with_context(|| format!("failed to open the local state in {}", state_dir.display()))
}

/// The runtime of `rk8sctl container` and `rk8sctl pod`, on the local network.
pub fn local_runtime(paths: &LocalPaths) -> Result<PodRuntime> {
    let network = Network::new(
        NetworkConfig {
            name: "rk8s".into(),
            bridge: paths.bridge.clone(),
            subnet: paths.subnet,
            state_dir: paths.run_dir.join("local/net"),
            cluster_cidr: None,
        },
        System,
    )
    .context("failed to set up the local network")?;
    pod_runtime(paths, &paths.run_dir.join("local"), network)
}

/// Gives `pod` a uid and the mode label, then runs it and waits (up to `wait`) until
/// it runs or ends. Refuses a name that is taken.
pub async fn run(
    runtime: &PodRuntime,
    mut pod: Pod,
    mode: &str,
    wait: Duration,
) -> Result<PodStatus> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    if find(runtime, mode, &name)?.is_some() {
        bail!("a {mode} named {name:?} exists already: remove it first (rk8sctl {mode} rm {name})");
    }
    pod.metadata.uid = Some(uuid::Uuid::new_v4().to_string());
    pod.metadata
        .namespace
        .get_or_insert_with(|| "default".into());
    pod.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(MODE_LABEL.into(), mode.into());
    let record = runtime.run_pod(&pod).await?;
    settle(runtime, &record.uid, wait).await
}

/// Syncs the pod until it runs, ends, or `wait` passes; returns its status.
pub async fn settle(runtime: &PodRuntime, uid: &str, wait: Duration) -> Result<PodStatus> {
    let deadline = Instant::now() + wait;
    loop {
        let status = runtime
            .sync_pod(uid, rk8s_runtime::container::now_ns())
            .await?;
        let phase = status.phase.clone().unwrap_or_default();
        let waiting_on_error = status.container_statuses.iter().flatten().any(|c| {
            c.state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                .is_some_and(|r| r != "ContainerCreating" && r != "PodInitializing")
        });
        if phase != "Pending" || waiting_on_error || Instant::now() >= deadline {
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The pod of `mode` named `name`.
pub fn find(runtime: &PodRuntime, mode: &str, name: &str) -> Result<Option<PodRecord>> {
    Ok(list(runtime, mode)?
        .into_iter()
        .find(|r| r.pod.metadata.name.as_deref() == Some(name)))
}

/// The pod of `mode` named `name`, or an error naming what exists.
pub fn get(runtime: &PodRuntime, mode: &str, name: &str) -> Result<PodRecord> {
    if let Some(record) = find(runtime, mode, name)? {
        return Ok(record);
    }
    let names: Vec<String> = list(runtime, mode)?
        .into_iter()
        .filter_map(|r| r.pod.metadata.name)
        .collect();
    if names.is_empty() {
        bail!("no {mode} named {name:?}: there are none (rk8sctl {mode} run FILE makes one)");
    }
    bail!("no {mode} named {name:?}; there are: {}", names.join(", "))
}

/// Every pod of `mode`.
pub fn list(runtime: &PodRuntime, mode: &str) -> Result<Vec<PodRecord>> {
    Ok(runtime
        .pods()?
        .into_iter()
        .filter(|r| {
            r.pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(MODE_LABEL))
                .map(String::as_str)
                == Some(mode)
        })
        .collect())
}

/// A one-word state of a pod for tables: the phase, or the reason a container waits.
pub fn summary(status: &PodStatus) -> String {
    let waiting = status.container_statuses.iter().flatten().find_map(|c| {
        c.state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone())
            .filter(|r| r != "ContainerCreating")
    });
    waiting.unwrap_or_else(|| status.phase.clone().unwrap_or_else(|| "Unknown".into()))
}

/// Follows or prints a container's log to stdout.
pub async fn logs(
    runtime: Arc<PodRuntime>,
    record: &PodRecord,
    container: &str,
    options: rk8s_runtime::logs::ReadOptions,
    previous: bool,
) -> Result<()> {
    let (uid, container) = (record.uid.clone(), container.to_string());
    tokio::task::spawn_blocking(move || {
        runtime.write_log(
            &uid,
            &container,
            previous,
            &options,
            &mut std::io::stdout().lock(),
        )
    })
    .await
    .context("log reader failed")??;
    Ok(())
}

/// Every diagnostic of a file, one per line, as one error.
pub fn diagnostics(diags: Vec<rk8s_api::Diagnostic>) -> anyhow::Error {
    let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
    anyhow::anyhow!("{}", lines.join("\n"))
}

/// Runs `command` in a container with this process' stdin, stdout and stderr (or a
/// terminal with `tty`); returns its exit code.
pub async fn exec(
    runtime: &PodRuntime,
    record: &PodRecord,
    container: &str,
    command: Vec<String>,
    tty: bool,
) -> Result<i32> {
    let process = rk8s_runtime::ExecProcess {
        args: command,
        ..Default::default()
    };
    if tty {
        let (pid, pty) = runtime.exec_tty(&record.uid, container, process).await?;
        return terminal::attach(runtime, pid, pty).await;
    }
    let dup =
        |fd: std::os::fd::BorrowedFd<'_>| fd.try_clone_to_owned().context("failed to pass stdio");
    use std::os::fd::AsFd;
    let stdio = [
        dup(std::io::stdin().as_fd())?,
        dup(std::io::stdout().as_fd())?,
        dup(std::io::stderr().as_fd())?,
    ];
    Ok(runtime.exec(&record.uid, container, process, stdio).await?)
}

mod terminal {
    //! `exec -t`: this terminal in raw mode, copied to and from the container's.

    use std::io::{Read, Write};
    use std::os::fd::{AsFd, OwnedFd};

    use anyhow::Result;
    use nix::sys::termios::{self, SetArg};
    use rk8s_runtime::pod::PodRuntime;

    pub async fn attach(runtime: &PodRuntime, pid: i32, pty: OwnedFd) -> Result<i32> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(saved) = &saved {
            let mut raw = saved.clone();
            termios::cfmakeraw(&mut raw);
            termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)?;
        }
        let mut master = std::fs::File::from(pty);
        let mut to_container = master.try_clone()?;
        // Keystrokes in; the thread ends with the process (its writes then fail).
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            let mut input = std::io::stdin();
            while let Ok(n) = input.read(&mut buf) {
                if n == 0 || to_container.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        let output = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut out = std::io::stdout();
            // EIO once the last process holding the terminal exits.
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 || out.write_all(&buf[..n]).is_err() {
                    break;
                }
                let _ = out.flush();
            }
        });
        let code = runtime.wait_exec(pid).await;
        let _ = tokio::task::spawn_blocking(move || output.join()).await;
        if let Some(saved) = &saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
        Ok(code?)
    }
}

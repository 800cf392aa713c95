//! The verbs of `rk8sctl container` and `rk8sctl pod`: the same for both, on pods
//! labelled with their mode (a container runs as a pod of one, like in the original
//! rk8s).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use k8s_openapi::api::core::v1::Pod;
use rk8s_api::AnyObject;

use super::{LocalPaths, get, list, local_runtime, summary};

/// What to do with local containers or pods.
#[derive(Subcommand, Debug)]
pub enum LocalCommand {
    /// Run from a file: the original single-container YAML (`container`) or a Pod
    /// manifest (`pod`).
    Run {
        /// The file (`-` for standard input).
        file: String,
        /// Seconds to wait for it to run before returning.
        #[arg(long, default_value_t = 60)]
        wait: u64,
    },
    /// List them.
    Ls,
    /// Show the state of one, container by container.
    State {
        /// Its name.
        name: String,
        /// Print the Kubernetes PodStatus as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a container's log.
    Logs {
        /// Its name.
        name: String,
        /// The container (default: the only or first one).
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// Keep printing until it stops.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<usize>,
        /// Prefix lines with their time.
        #[arg(long)]
        timestamps: bool,
        /// The log of the previous attempt.
        #[arg(short = 'p', long)]
        previous: bool,
    },
    /// Run a command in a running container (`exec NAME -- CMD ARGS...`).
    Exec {
        /// Its name.
        name: String,
        /// The container (default: the only or first one).
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// Give the command a terminal.
        #[arg(short = 't', long)]
        tty: bool,
        /// Accepted for kubectl's `-it`; stdin is always passed.
        #[arg(short = 'i', long)]
        stdin: bool,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Stop its containers (SIGTERM, then SIGKILL after --time) and keep them.
    Stop {
        /// Its name.
        name: String,
        /// Seconds between SIGTERM and SIGKILL.
        #[arg(long, default_value_t = 10)]
        time: u64,
    },
    /// Remove them: containers, sandbox, network, logs.
    Rm {
        /// Their names.
        #[arg(required = true)]
        names: Vec<String>,
        /// Stop running ones first.
        #[arg(short = 'f', long)]
        force: bool,
    },
}

/// Reads the pod `mode` runs from `file`.
fn read_pod(mode: &str, file: &str) -> Result<Pod> {
    let inputs = crate::input::read_all(&[file.to_string()], false)?;
    let Some(input) = inputs.into_iter().next() else {
        bail!("{file}: nothing to read");
    };
    if mode == "container" {
        let spec = rk8s_api::formats::container::decode_container(&input.name, &input.text)
            .map_err(super::diagnostics)?;
        return Ok(spec.to_pod());
    }
    let (manifests, diags) = rk8s_api::manifest::decode(&input.name, &input.text);
    if !diags.is_empty() {
        return Err(super::diagnostics(diags));
    }
    match manifests.as_slice() {
        [one] => match &one.object {
            AnyObject::Pod(pod) => Ok(pod.as_ref().clone()),
            other => bail!(
                "{}: is a {}; `rk8sctl pod run` takes a Pod",
                input.name,
                other.kind().kind
            ),
        },
        _ => bail!(
            "{}: holds {} objects; `rk8sctl pod run` takes one Pod",
            input.name,
            manifests.len()
        ),
    }
}

/// Runs a local command of `mode` (`container` or `pod`).
pub async fn run(mode: &str, command: LocalCommand) -> Result<ExitCode> {
    let paths = LocalPaths::from_env()?;
    let runtime = std::sync::Arc::new(local_runtime(&paths)?);
    let container_of =
        |record: &rk8s_runtime::pod::PodRecord, wanted: Option<String>| -> Result<String> {
            let names: Vec<String> = record
                .pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
                .collect();
            match wanted {
                Some(c) if names.contains(&c) => Ok(c),
                Some(c) => bail!(
                    "{} has no container {c:?}; it has: {}",
                    record.key(),
                    names.join(", ")
                ),
                None => names
                    .into_iter()
                    .next()
                    .context("the pod has no containers"),
            }
        };
    match command {
        LocalCommand::Run { file, wait } => {
            let pod = read_pod(mode, &file)?;
            let name = pod.metadata.name.clone().unwrap_or_default();
            let status = super::run(&runtime, pod, mode, Duration::from_secs(wait)).await?;
            let state = summary(&status);
            println!("{mode} {name}: {state}");
            if let Some(message) = status.container_statuses.iter().flatten().find_map(|c| {
                c.state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.message.clone())
            }) {
                eprintln!("{message}");
                return Ok(ExitCode::FAILURE);
            }
        }
        LocalCommand::Ls => {
            let mut rows = vec![
                ["NAME", "STATUS", "IP", "CONTAINERS", "RESTARTS", "AGE"]
                    .map(String::from)
                    .to_vec(),
            ];
            for record in list(&runtime, mode)? {
                let status = runtime
                    .sync_pod(&record.uid, rk8s_runtime::container::now_ns())
                    .await?;
                let statuses = status.container_statuses.clone().unwrap_or_default();
                let ready = statuses.iter().filter(|c| c.ready).count();
                let restarts: i32 = statuses.iter().map(|c| c.restart_count).sum();
                let age = Duration::from_nanos(
                    u64::try_from(rk8s_runtime::container::now_ns() - record.created_at_ns)
                        .unwrap_or(0),
                );
                rows.push(vec![
                    record.pod.metadata.name.clone().unwrap_or_default(),
                    summary(&status),
                    status.pod_ip.clone().unwrap_or_else(|| "-".into()),
                    format!("{ready}/{}", statuses.len()),
                    restarts.to_string(),
                    crate::print::age(age),
                ]);
            }
            crate::print::table(&rows);
        }
        LocalCommand::State { name, json } => {
            let record = get(&runtime, mode, &name)?;
            let status = runtime
                .sync_pod(&record.uid, rk8s_runtime::container::now_ns())
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{} {}  {}", mode, name, summary(&status));
            let mut rows = vec![
                ["CONTAINER", "STATE", "EXIT", "RESTARTS", "READY", "ID"]
                    .map(String::from)
                    .to_vec(),
            ];
            for c in status
                .init_container_statuses
                .iter()
                .flatten()
                .chain(status.container_statuses.iter().flatten())
            {
                let state = c.state.clone().unwrap_or_default();
                let (word, exit) = match (&state.running, &state.terminated, &state.waiting) {
                    (Some(_), _, _) => ("Running".to_string(), "-".to_string()),
                    (_, Some(t), _) => (
                        t.reason.clone().unwrap_or_else(|| "Terminated".into()),
                        t.exit_code.to_string(),
                    ),
                    (_, _, Some(w)) => (
                        w.reason.clone().unwrap_or_else(|| "Waiting".into()),
                        "-".to_string(),
                    ),
                    _ => ("Unknown".to_string(), "-".to_string()),
                };
                rows.push(vec![
                    c.name.clone(),
                    word,
                    exit,
                    c.restart_count.to_string(),
                    c.ready.to_string(),
                    c.container_id
                        .clone()
                        .unwrap_or_default()
                        .trim_start_matches("rk8s://")
                        .to_string(),
                ]);
            }
            crate::print::table(&rows);
        }
        LocalCommand::Logs {
            name,
            container,
            follow,
            tail,
            timestamps,
            previous,
        } => {
            let record = get(&runtime, mode, &name)?;
            let container = container_of(&record, container)?;
            let options = rk8s_runtime::logs::ReadOptions {
                follow,
                tail,
                timestamps,
                since: None,
            };
            super::logs(runtime.clone(), &record, &container, options, previous).await?;
        }
        LocalCommand::Exec {
            name,
            container,
            tty,
            stdin: _,
            command,
        } => {
            let record = get(&runtime, mode, &name)?;
            let container = container_of(&record, container)?;
            let code = super::exec(&runtime, &record, &container, command, tty).await?;
            return Ok(ExitCode::from(
                u8::try_from(code.clamp(0, 255)).unwrap_or(1),
            ));
        }
        LocalCommand::Stop { name, time } => {
            let record = get(&runtime, mode, &name)?;
            runtime
                .stop_containers(&record.uid, Duration::from_secs(time))
                .await?;
            println!("{name} stopped");
        }
        LocalCommand::Rm { names, force } => {
            let mut failed = false;
            for name in names {
                let record = match get(&runtime, mode, &name) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("error: {e}");
                        failed = true;
                        continue;
                    }
                };
                let status = runtime
                    .sync_pod(&record.uid, rk8s_runtime::container::now_ns())
                    .await?;
                let running = status
                    .container_statuses
                    .iter()
                    .flatten()
                    .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
                if running && !force {
                    eprintln!("error: {mode} {name} is running: stop it first, or use --force");
                    failed = true;
                    continue;
                }
                runtime
                    .stop_pod(&record.uid, Duration::from_secs(if force { 2 } else { 0 }))
                    .await?;
                println!("{name} removed");
            }
            if failed {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

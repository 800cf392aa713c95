//! `rk8sctl compose up|ps|logs|down`: a Compose app as pods, one per service, on a
//! bridge network per Compose network (`<project>_default` when none is named).
//! Services reach each other by service name (and container name) through the pods'
//! /etc/hosts, kept current as services start.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, HostPathVolumeSource, Pod, PodSpec, SecurityContext, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rk8s_api::formats::compose::{self, ComposeFile, Condition, MountKind, Service};
use rk8s_netoverlay::host::System;
use rk8s_netoverlay::{Ipv4Net, Network, NetworkConfig};
use rk8s_runtime::pod::{PodRecord, PodRuntime};
use serde::{Deserialize, Serialize};

use super::{LocalPaths, pod_runtime, settle, summary};

/// Labels on a service's pod.
const PROJECT_LABEL: &str = "com.docker.compose.project";
const SERVICE_LABEL: &str = "com.docker.compose.service";

/// Which Compose file and project.
#[derive(Args, Debug)]
pub struct ComposeArgs {
    /// The Compose file (default: compose.yaml, compose.yml, docker-compose.yaml or
    /// docker-compose.yml here).
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// The project name (default: the file's `name:`, or its directory's name).
    #[arg(short = 'p', long = "project-name")]
    project: Option<String>,
    #[command(subcommand)]
    command: ComposeCommand,
}

/// The Compose verbs.
#[derive(Subcommand, Debug)]
pub enum ComposeCommand {
    /// Create and start the services (in dependency order).
    Up {
        /// Return once they run, instead of following their logs.
        #[arg(short = 'd', long)]
        detach: bool,
    },
    /// List the services' containers.
    Ps,
    /// Print the services' logs.
    Logs {
        /// Only these services.
        services: Vec<String>,
        /// Keep printing.
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Stop and remove the services' containers and networks (named volumes stay).
    Down {
        /// Seconds between SIGTERM and SIGKILL.
        #[arg(short = 't', long, default_value_t = 10)]
        timeout: u64,
    },
}

/// What a project keeps between commands.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ProjectState {
    /// Compose network name → its subnet.
    networks: BTreeMap<String, Ipv4Net>,
}

struct Project {
    name: String,
    dir: PathBuf,
    /// Where named volumes live (they outlive `down`, as in Compose).
    volumes_dir: PathBuf,
    state_dir: PathBuf,
    file: Option<(PathBuf, ComposeFile)>,
}

const FILE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

fn load(args: &ComposeArgs, paths: &LocalPaths, need_file: bool) -> Result<Project> {
    let file = match &args.file {
        Some(f) => Some(f.clone()),
        None => FILE_NAMES.iter().map(PathBuf::from).find(|p| p.exists()),
    };
    let parsed = match file {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("failed to read {}", path.display()))?;
            let name = path.display().to_string();
            let compose = compose::decode_compose(&name, &text).map_err(super::diagnostics)?;
            Some((path, compose))
        }
        None if need_file => bail!(
            "no Compose file: none of {} here, and no -f FILE",
            FILE_NAMES.join(", ")
        ),
        None => None,
    };
    let dir = match &parsed {
        Some((path, _)) => std::fs::canonicalize(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from(".")),
        None => std::env::current_dir().context("no current directory")?,
    };
    let name = args
        .project
        .clone()
        .or_else(|| parsed.as_ref().and_then(|(_, c)| c.name.clone()))
        .unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    let name = compose::normalize_project_name(&name);
    if name.is_empty() {
        bail!("the project has no usable name: give one with -p NAME");
    }
    Ok(Project {
        state_dir: paths.run_dir.join("compose").join(&name),
        volumes_dir: paths.data_dir.join("compose").join(&name).join("volumes"),
        name,
        dir,
        file: parsed,
    })
}

impl Project {
    fn state(&self) -> ProjectState {
        std::fs::read(self.state_dir.join("project.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save(&self, state: &ProjectState) -> Result<()> {
        std::fs::create_dir_all(&self.state_dir)?;
        std::fs::write(
            self.state_dir.join("project.json"),
            serde_json::to_vec_pretty(state)?,
        )?;
        Ok(())
    }

    /// The bridge network of Compose network `network` (a subnet is claimed on first use).
    fn network(
        &self,
        paths: &LocalPaths,
        state: &mut ProjectState,
        network: &str,
    ) -> Result<Network> {
        let full = format!("{}_{network}", self.name);
        let subnet = match state.networks.get(network) {
            Some(s) => *s,
            None => {
                let s = claim_subnet(paths, &full)?;
                state.networks.insert(network.to_string(), s);
                self.save(state)?;
                s
            }
        };
        Network::new(
            NetworkConfig {
                name: full.clone(),
                bridge: bridge_name(&full),
                subnet,
                state_dir: self.state_dir.join("net"),
                cluster_cidr: None,
            },
            System,
        )
        .with_context(|| format!("failed to set up network {full}"))
    }

    fn runtime(
        &self,
        paths: &LocalPaths,
        state: &mut ProjectState,
        network: &str,
    ) -> Result<PodRuntime> {
        let net = self.network(paths, state, network)?;
        pod_runtime(paths, &self.state_dir.join("networks").join(network), net)
    }

    /// Every runtime of the project (one per network), with its network name.
    fn runtimes(&self, paths: &LocalPaths) -> Result<Vec<(String, PodRuntime)>> {
        let mut state = self.state();
        let names: Vec<String> = state.networks.keys().cloned().collect();
        names
            .into_iter()
            .map(|n| Ok((n.clone(), self.runtime(paths, &mut state, &n)?)))
            .collect()
    }
}

/// `rk8s` + 8 hex digits of the network's name: interface names have 15 characters.
fn bridge_name(network: &str) -> String {
    let veth = rk8s_netoverlay::network::veth_name(network);
    format!("rk8s{}", &veth[4..])
}

/// Claims a free /24 of 10.89.0.0/16 for `owner` (a file per subnet, created
/// exclusively, so projects never share one).
fn claim_subnet(paths: &LocalPaths, owner: &str) -> Result<Ipv4Net> {
    let dir = paths.run_dir.join("compose/.subnets");
    std::fs::create_dir_all(&dir)?;
    for n in 1..=254u8 {
        let path = dir.join(n.to_string());
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(owner.as_bytes())?;
                return Ipv4Net::new(std::net::Ipv4Addr::new(10, 89, n, 0), 24)
                    .context("subnet out of range");
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("failed to claim {}", path.display())),
        }
    }
    bail!("every /24 of 10.89.0.0/16 is taken by a Compose network")
}

fn release_subnet(paths: &LocalPaths, subnet: Ipv4Net) {
    let third = subnet.network().octets()[2];
    let _ = std::fs::remove_file(
        paths
            .run_dir
            .join("compose/.subnets")
            .join(third.to_string()),
    );
}

/// The pod of a service.
fn service_pod(project: &Project, name: &str, service: &Service) -> Result<Pod> {
    let image = service
        .image
        .clone()
        .with_context(|| format!("service {name}: no image (build: is not supported)"))?;
    let image = if rk8s_runtime::image::is_local(&image) && !Path::new(&image).is_absolute() {
        project.dir.join(&image).display().to_string()
    } else {
        image
    };
    let pod_name = service
        .container_name
        .clone()
        .unwrap_or_else(|| format!("{}-{name}-1", project.name));
    let env = service.environment.as_ref().map(|e| {
        e.0.iter()
            .map(|(k, v)| EnvVar {
                name: k.clone(),
                // `KEY` alone takes the value from the caller's environment, as in Compose.
                value: v.clone().or_else(|| std::env::var(k).ok()),
                ..Default::default()
            })
            .collect()
    });
    let ports: Vec<ContainerPort> = service
        .ports
        .iter()
        .map(|p| ContainerPort {
            container_port: i32::from(p.target),
            host_port: p.published.map(i32::from),
            protocol: Some(match p.protocol {
                compose::Protocol::Udp => "UDP".to_string(),
                compose::Protocol::Tcp => "TCP".to_string(),
            }),
            ..Default::default()
        })
        .collect();
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for (i, v) in service.volumes.iter().enumerate() {
        let volume_name = format!("v{i}");
        let host_path = match (&v.kind, &v.source) {
            (MountKind::Bind, Some(source)) => {
                let p = Path::new(source);
                if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    project.dir.join(p)
                }
            }
            (MountKind::Volume, Some(source)) => project.volumes_dir.join(source),
            (MountKind::Volume, None) => project
                .state_dir
                .join("anonymous")
                .join(&pod_name)
                .join(i.to_string()),
            (MountKind::Tmpfs, _) | (MountKind::Bind, None) => {
                bail!(
                    "service {name}: volume {}: tmpfs mounts are not supported",
                    v.target
                )
            }
        };
        volumes.push(Volume {
            name: volume_name.clone(),
            host_path: Some(HostPathVolumeSource {
                path: host_path.display().to_string(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: volume_name,
            mount_path: v.target.clone(),
            read_only: Some(v.read_only),
            ..Default::default()
        });
    }
    let (run_as_user, run_as_group) = match service
        .user
        .as_deref()
        .map(|u| u.split_once(':').unwrap_or((u, "")))
    {
        Some((u, g)) => (u.parse().ok(), g.parse().ok()),
        None => (None, None),
    };
    let restart = match service.restart.as_deref() {
        Some("always") | Some("unless-stopped") => "Always",
        Some(r) if r.starts_with("on-failure") => "OnFailure",
        _ => "Never",
    };
    let mut labels: BTreeMap<String, String> =
        service.labels.clone().map(|l| l.0).unwrap_or_default();
    labels.insert(PROJECT_LABEL.into(), project.name.clone());
    labels.insert(SERVICE_LABEL.into(), name.to_string());
    labels.insert(super::MODE_LABEL.into(), "compose".into());
    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(pod_name),
            namespace: Some("default".into()),
            uid: Some(uuid::Uuid::new_v4().to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(PodSpec {
            hostname: Some(service.hostname.clone().unwrap_or_else(|| name.to_string())),
            restart_policy: Some(restart.into()),
            containers: vec![Container {
                name: name.to_string(),
                image: Some(image),
                command: service.entrypoint.clone().map(|c| c.0),
                args: service.command.clone().map(|c| c.0),
                env,
                ports: (!ports.is_empty()).then_some(ports),
                volume_mounts: (!mounts.is_empty()).then_some(mounts),
                working_dir: service.working_dir.clone(),
                security_context: (run_as_user.is_some() || run_as_group.is_some()).then(|| {
                    SecurityContext {
                        run_as_user,
                        run_as_group,
                        ..Default::default()
                    }
                }),
                ..Default::default()
            }],
            volumes: (!volumes.is_empty()).then_some(volumes),
            ..Default::default()
        }),
        status: None,
    })
}

/// The service of a pod record.
fn service_of(record: &PodRecord) -> String {
    record
        .pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_LABEL))
        .cloned()
        .unwrap_or_default()
}

/// Runs a Compose command.
pub async fn run(args: ComposeArgs) -> Result<ExitCode> {
    let paths = LocalPaths::from_env()?;
    match &args.command {
        ComposeCommand::Up { detach } => {
            let project = load(&args, &paths, true)?;
            up(&paths, &project).await?;
            if !detach {
                println!(
                    "following logs; Ctrl-C stops the services (rk8sctl compose down removes them)"
                );
                let follow = logs(&paths, &project, &[], true);
                tokio::select! {
                    result = follow => result?,
                    _ = tokio::signal::ctrl_c() => {
                        for (_, runtime) in project.runtimes(&paths)? {
                            for record in runtime.pods()? {
                                runtime.stop_containers(&record.uid, Duration::from_secs(10)).await?;
                            }
                        }
                        println!("stopped");
                    }
                }
            }
        }
        ComposeCommand::Ps => {
            let project = load(&args, &paths, false)?;
            let mut rows = vec![
                ["NAME", "SERVICE", "STATUS", "IP", "PORTS"]
                    .map(String::from)
                    .to_vec(),
            ];
            for (_, runtime) in project.runtimes(&paths)? {
                for record in runtime.pods()? {
                    let status = runtime
                        .sync_pod(&record.uid, rk8s_runtime::container::now_ns())
                        .await?;
                    let ports: Vec<String> = record
                        .pod
                        .spec
                        .iter()
                        .flat_map(|s| s.containers.iter())
                        .flat_map(|c| c.ports.iter().flatten())
                        .map(|p| match p.host_port {
                            Some(h) => format!(
                                "0.0.0.0:{h}->{}/{}",
                                p.container_port,
                                p.protocol.clone().unwrap_or_default().to_lowercase()
                            ),
                            None => format!(
                                "{}/{}",
                                p.container_port,
                                p.protocol.clone().unwrap_or_default().to_lowercase()
                            ),
                        })
                        .collect();
                    rows.push(vec![
                        record.pod.metadata.name.clone().unwrap_or_default(),
                        service_of(&record),
                        summary(&status),
                        status.pod_ip.clone().unwrap_or_else(|| "-".into()),
                        ports.join(", "),
                    ]);
                }
            }
            crate::print::table(&rows);
        }
        ComposeCommand::Logs { services, follow } => {
            let project = load(&args, &paths, false)?;
            logs(&paths, &project, services, *follow).await?;
        }
        ComposeCommand::Down { timeout } => {
            let project = load(&args, &paths, false)?;
            let state = project.state();
            for (network, runtime) in project.runtimes(&paths)? {
                for record in runtime.pods()? {
                    runtime
                        .stop_pod(&record.uid, Duration::from_secs(*timeout))
                        .await?;
                    println!(
                        "removed {}",
                        record.pod.metadata.name.clone().unwrap_or_default()
                    );
                }
                let mut s = state.clone();
                project.network(&paths, &mut s, &network)?.destroy()?;
                if let Some(subnet) = state.networks.get(&network) {
                    release_subnet(&paths, *subnet);
                }
                println!("removed network {}_{network}", project.name);
            }
            match std::fs::remove_dir_all(&project.state_dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).context("failed to remove the project's state"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn up(paths: &LocalPaths, project: &Project) -> Result<()> {
    let Some((_, file)) = &project.file else {
        bail!("no Compose file");
    };
    let order = file.start_order().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut state = project.state();
    let mut runtimes: BTreeMap<String, PodRuntime> = BTreeMap::new();
    for name in &order {
        let service = &file.services[name];
        let networks = service.network_names();
        let [network] = networks.as_slice() else {
            bail!(
                "service {name}: joining more than one network ({}) is not supported",
                networks.join(", ")
            );
        };
        if !runtimes.contains_key(network) {
            let runtime = project.runtime(paths, &mut state, network)?;
            runtimes.insert(network.clone(), runtime);
        }
        let runtime = &runtimes[network];
        // Up-to-date when it runs already; replaced when it stopped.
        if let Some(existing) = runtime.pods()?.into_iter().find(|r| service_of(r) == *name) {
            let status = runtime
                .sync_pod(&existing.uid, rk8s_runtime::container::now_ns())
                .await?;
            if status.phase.as_deref() == Some("Running") {
                println!("{name}: up to date");
                continue;
            }
            runtime
                .stop_pod(&existing.uid, Duration::from_secs(10))
                .await?;
        }
        for (dep, condition) in service.depends_on.iter().flat_map(|d| d.0.iter()) {
            wait_for(&runtimes, dep, *condition).await?;
        }
        let pod = service_pod(project, name, service)?;
        let record = runtime.run_pod(&pod).await?;
        // Names first: the sandbox has its address now, its containers start next.
        publish_names(&runtimes)?;
        let status = settle(runtime, &record.uid, Duration::from_secs(60)).await?;
        println!("{name}: {}", summary(&status));
        if let Some(message) = status.container_statuses.iter().flatten().find_map(|c| {
            c.state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.message.clone())
        }) {
            bail!("service {name}: {message}");
        }
    }
    Ok(())
}

/// Waits until service `dep` satisfies `condition` (healthy counts as started).
async fn wait_for(
    runtimes: &BTreeMap<String, PodRuntime>,
    dep: &str,
    condition: Condition,
) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        for runtime in runtimes.values() {
            if let Some(record) = runtime.pods()?.into_iter().find(|r| service_of(r) == dep) {
                let status = runtime
                    .sync_pod(&record.uid, rk8s_runtime::container::now_ns())
                    .await?;
                let phase = status.phase.unwrap_or_default();
                let done = match condition {
                    Condition::CompletedSuccessfully => phase == "Succeeded",
                    _ => phase == "Running" || phase == "Succeeded",
                };
                if done {
                    return Ok(());
                }
                if phase == "Failed" {
                    bail!("service {dep} failed, and others depend on it");
                }
            }
        }
        if std::time::Instant::now() > deadline {
            bail!("service {dep} did not become ready within 2 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes every service's address into every pod's /etc/hosts (per network).
fn publish_names(runtimes: &BTreeMap<String, PodRuntime>) -> Result<()> {
    for runtime in runtimes.values() {
        let records = runtime.pods()?;
        let peers: Vec<(std::net::Ipv4Addr, Vec<String>)> = records
            .iter()
            .filter_map(|r| {
                let ip = r.attachment.as_ref()?.address;
                let mut names = vec![service_of(r)];
                if let Some(pod_name) = &r.pod.metadata.name {
                    names.push(pod_name.clone());
                }
                Some((ip, names))
            })
            .collect();
        for record in &records {
            runtime.set_peer_hosts(&record.uid, &peers)?;
        }
    }
    Ok(())
}

/// Prints (or follows) the services' logs, each line prefixed with its service.
async fn logs(
    paths: &LocalPaths,
    project: &Project,
    services: &[String],
    follow: bool,
) -> Result<()> {
    let mut tasks = Vec::new();
    for (_, runtime) in project.runtimes(paths)? {
        let runtime = std::sync::Arc::new(runtime);
        for record in runtime.pods()? {
            let service = service_of(&record);
            if !services.is_empty() && !services.contains(&service) {
                continue;
            }
            let runtime = runtime.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                let mut out = Prefixed {
                    prefix: format!("{service} | "),
                    at_line_start: true,
                };
                let options = rk8s_runtime::logs::ReadOptions {
                    follow,
                    ..Default::default()
                };
                runtime.write_log(&record.uid, &service, false, &options, &mut out)
            }));
        }
    }
    for task in tasks {
        task.await.context("log reader failed")??;
    }
    Ok(())
}

/// Writes to stdout with a prefix at the start of every line.
struct Prefixed {
    prefix: String,
    at_line_start: bool,
}

impl Write for Prefixed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut text = Vec::with_capacity(buf.len() + self.prefix.len());
        for &b in buf {
            if self.at_line_start {
                text.extend_from_slice(self.prefix.as_bytes());
            }
            text.push(b);
            self.at_line_start = b == b'\n';
        }
        // One write per chunk of whole lines keeps services' lines from interleaving.
        std::io::stdout().lock().write_all(&text)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

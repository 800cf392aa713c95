//! The Kubernetes pod model on the container runtime.
//!
//! A pod is a sandbox — a pause container holding the network, ipc and uts namespaces
//! (pid too with `shareProcessNamespace`), in the pod's network namespace from
//! [`rk8s_netoverlay`] — and work containers that join them. [`PodRuntime::run_pod`]
//! makes the sandbox; [`PodRuntime::sync_pod`] is the level-triggered step that runs
//! init containers in order, then the app containers, restarts them as the restart
//! policy and CrashLoopBackOff say, and reports a `PodStatus`. Everything is recorded
//! under the data directory, so a restarted agent finds its pods and containers
//! running and carries on.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerState as K8sState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rk8s_api::resources::CgroupResources;
use rk8s_netoverlay::{Attachment, Network, PortMapping, Protocol};
use serde::{Deserialize, Serialize};

use crate::container::{ContainerState, CreateContainer, Engine, ExecProcess, Status, now_ns};
use crate::error::{Error, Result, io};
use crate::image::{Image, ImageStore, PullOptions, PullPolicy};
use crate::restart::{self, RestartPolicy};
use crate::rootfs::Rootfs;
use crate::runtime::ContainerRuntime;
use crate::spec::{self, BindMount, ContainerConfig};
use crate::{cgroups, logs, probe};

/// Where a pod runtime keeps things and what it runs with.
#[derive(Debug, Clone)]
pub struct PodRuntimeConfig {
    /// Pod data: `containers/<id>/` bundles, `pods/<uid>/`.
    pub data_dir: PathBuf,
    /// The image store (default `<data_dir>/images`; local modes share one store
    /// across projects).
    pub images_dir: Option<PathBuf>,
    /// The pause image (path or reference).
    pub pause_image: String,
    /// How to reach registries.
    pub pull: PullOptions,
    /// RuntimeClass handlers this host offers besides the default (`runc` → runc).
    pub handlers: BTreeMap<String, Engine>,
    /// Nameservers for pods' resolv.conf (default: the host's non-loopback ones).
    pub nameservers: Vec<String>,
    /// Search domains for pods' resolv.conf.
    pub searches: Vec<String>,
    /// The cluster's DNS server and domain (a cluster node): pods with dnsPolicy
    /// ClusterFirst (the default) resolve through it first.
    pub cluster_dns: Option<ClusterDns>,
    /// Processes per container (kubelet's podPidsLimit, per container here).
    pub pids_limit: Option<i64>,
    /// Log rotation size.
    pub log_max_bytes: u64,
}

impl PodRuntimeConfig {
    /// Defaults under `data_dir` with the given pause image.
    pub fn new(data_dir: impl Into<PathBuf>, pause_image: impl Into<String>) -> Self {
        Self {
            data_dir: data_dir.into(),
            images_dir: None,
            pause_image: pause_image.into(),
            pull: PullOptions::default(),
            handlers: BTreeMap::from([("runc".to_string(), Engine::runc())]),
            nameservers: host_nameservers(),
            cluster_dns: None,
            searches: Vec::new(),
            pids_limit: Some(4096),
            log_max_bytes: logs::DEFAULT_MAX_BYTES,
        }
    }
}

/// One container of a pod as recorded: the current attempt and what came before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    /// Runtime id of the current attempt (None before the first start).
    pub id: Option<String>,
    /// How many times it was restarted.
    pub restart_count: u32,
    /// Consecutive crashes, for the backoff.
    pub crashes: u32,
    /// Do not start again before this time (ns since the epoch).
    pub backoff_until_ns: Option<i64>,
    /// The final state of the previous attempt.
    pub last: Option<ContainerState>,
    /// The image id it runs.
    pub image_id: String,
}

/// A pod as this runtime keeps it on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRecord {
    /// The pod as it was given.
    pub pod: Pod,
    /// Its uid.
    pub uid: String,
    /// The OCI runtime of its containers.
    pub engine: Engine,
    /// Its network attachment (None with hostNetwork).
    pub attachment: Option<Attachment>,
    /// The pause container's id.
    pub pause_id: String,
    /// Init and app containers by name.
    pub containers: BTreeMap<String, ContainerRecord>,
    /// When the sandbox was made.
    pub created_at_ns: i64,
}

impl PodRecord {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!(
            "{}/{}",
            self.pod.metadata.namespace.as_deref().unwrap_or("default"),
            self.pod.metadata.name.as_deref().unwrap_or_default()
        )
    }
}

/// Runs pods on this host.
pub struct PodRuntime {
    config: PodRuntimeConfig,
    images: ImageStore,
    runtime: Arc<dyn ContainerRuntime>,
    network: Option<Arc<Network>>,
    /// Probe results per container attempt (kept in memory, as kubelet does: a
    /// restarted agent probes afresh).
    probes: std::sync::Mutex<std::collections::HashMap<(String, probe::Kind), probe::Tracker>>,
}

/// What the probes say of a running container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Health {
    ready: bool,
    started: bool,
}

impl std::fmt::Debug for PodRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodRuntime")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl PodRuntime {
    /// A pod runtime over `runtime`, giving pods addresses on `network` (pods with
    /// hostNetwork, or all pods when None, share the host's network).
    pub fn new(
        config: PodRuntimeConfig,
        runtime: Arc<dyn ContainerRuntime>,
        network: Option<Arc<Network>>,
    ) -> Result<Self> {
        let images = ImageStore::open(
            config
                .images_dir
                .clone()
                .unwrap_or_else(|| config.data_dir.join("images")),
        )?;
        for dir in ["pods", "containers"] {
            let d = config.data_dir.join(dir);
            std::fs::create_dir_all(&d).map_err(io(&d))?;
        }
        Ok(Self {
            config,
            images,
            runtime,
            network,
            probes: Default::default(),
        })
    }

    /// The image store.
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// The container runtime.
    pub fn runtime(&self) -> &Arc<dyn ContainerRuntime> {
        &self.runtime
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.config.data_dir.join("pods").join(uid)
    }

    fn bundle(&self, id: &str) -> PathBuf {
        self.config.data_dir.join("containers").join(id)
    }

    /// The log file of attempt `attempt` of `container` (kubelet's layout).
    pub fn log_path(&self, uid: &str, container: &str, attempt: u32) -> PathBuf {
        self.pod_dir(uid)
            .join("logs")
            .join(container)
            .join(format!("{attempt}.log"))
    }

    /// The record of pod `uid`.
    pub fn record(&self, uid: &str) -> Result<Option<PodRecord>> {
        let path = self.pod_dir(uid).join("pod.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::InvalidSpec(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn save(&self, record: &PodRecord) -> Result<()> {
        let dir = self.pod_dir(&record.uid);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join("pod.json");
        let tmp = dir.join("pod.json.tmp");
        let json = serde_json::to_vec_pretty(record)
            .map_err(|e| Error::InvalidSpec(format!("pod record: {e}")))?;
        std::fs::write(&tmp, json).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Every pod on this host.
    pub fn pods(&self) -> Result<Vec<PodRecord>> {
        let dir = self.config.data_dir.join("pods");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            if let Some(record) = self.record(&entry.file_name().to_string_lossy())? {
                out.push(record);
            }
        }
        out.sort_by_key(|r| r.created_at_ns);
        Ok(out)
    }

    /// The host's and the running containers' usage now (see [`crate::stats`]).
    pub async fn stats(&self) -> Result<crate::stats::Reading> {
        let runtime = self.runtime.clone();
        let records = self.pods()?;
        blocking(move || crate::stats::read(&runtime, &records)).await
    }

    /// Makes the pod's sandbox: network, /etc files, volumes and the running pause
    /// container. Containers start with [`sync_pod`](Self::sync_pod). Running a pod
    /// that exists returns its record.
    pub async fn run_pod(&self, pod: &Pod) -> Result<PodRecord> {
        let uid = pod
            .metadata
            .uid
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Error::InvalidSpec("the pod has no metadata.uid".to_string()))?;
        if uid.contains('/') || uid.starts_with('.') {
            return Err(Error::InvalidSpec(format!("{uid:?} is not a pod uid")));
        }
        if let Some(existing) = self.record(&uid)? {
            return Ok(existing);
        }
        let spec = pod
            .spec
            .as_ref()
            .ok_or_else(|| Error::InvalidSpec("the pod has no spec".to_string()))?;
        let engine = match spec.runtime_class_name.as_deref() {
            None | Some("") => Engine::Libcontainer,
            Some(handler) => self.config.handlers.get(handler).cloned().ok_or_else(|| {
                Error::InvalidSpec(format!(
                    "runtime handler {handler:?} is not offered on this node (offered: libcontainer{})",
                    self.config.handlers.keys().map(|k| format!(", {k}")).collect::<String>()
                ))
            })?,
        };
        let mut record = PodRecord {
            pod: pod.clone(),
            uid: uid.clone(),
            engine,
            attachment: None,
            pause_id: format!("{uid}-pause"),
            containers: BTreeMap::new(),
            created_at_ns: now_ns(),
        };
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
        {
            record.containers.insert(
                c.name.clone(),
                ContainerRecord {
                    id: None,
                    restart_count: 0,
                    crashes: 0,
                    backoff_until_ns: None,
                    last: None,
                    image_id: String::new(),
                },
            );
        }
        // Saved first, so that a failure half-way leaves a record that stop_pod
        // can clean up from.
        self.save(&record)?;
        match self.make_sandbox(&mut record).await {
            Ok(()) => {
                self.save(&record)?;
                Ok(record)
            }
            Err(e) => {
                let _ = self.stop_pod(&uid, Duration::ZERO).await;
                Err(e)
            }
        }
    }

    async fn make_sandbox(&self, record: &mut PodRecord) -> Result<()> {
        let spec = record.pod.spec.clone().unwrap_or_default();
        let host_network = spec.host_network.unwrap_or(false) || self.network.is_none();
        if let (false, Some(network)) = (host_network, &self.network) {
            let ports = host_ports(&spec.containers);
            let network = network.clone();
            let uid = record.uid.clone();
            let attached =
                blocking(move || network.attach_with_ports(&uid, &ports).map_err(Error::from))
                    .await;
            record.attachment = Some(attached.map_err(|e| self.name_port_owner(e))?);
            self.save(record)?;
        }
        let dir = self.pod_dir(&record.uid);
        let name = record.pod.metadata.name.clone().unwrap_or_default();
        let hostname = spec.hostname.clone().unwrap_or_else(|| name.clone());
        let hostname = if host_network {
            host_hostname()
        } else {
            hostname
        };
        write_etc_files(&dir, &hostname, record, &self.config)?;
        for volume in spec.volumes.iter().flatten() {
            if volume.empty_dir.is_some() {
                let path = dir.join("volumes").join(&volume.name);
                std::fs::create_dir_all(&path).map_err(io(&path))?;
            } else if let Some(host_path) = &volume.host_path {
                if host_path.type_.as_deref() == Some("DirectoryOrCreate") {
                    std::fs::create_dir_all(&host_path.path).map_err(io(&host_path.path))?;
                }
            } else {
                return Err(Error::InvalidSpec(format!(
                    "volume {:?}: only emptyDir and hostPath volumes are supported",
                    volume.name
                )));
            }
        }
        let pause = self
            .image(&self.config.pause_image.clone(), PullPolicy::IfNotPresent)
            .await?;
        let netns = record.attachment.as_ref().map(|a| a.netns_path.clone());
        let mut namespaces = spec::sandbox_namespaces(netns.as_deref());
        if host_network {
            namespaces.retain(|n| n.kind != oci_spec::runtime::LinuxNamespaceType::Network);
            namespaces.retain(|n| n.kind != oci_spec::runtime::LinuxNamespaceType::Uts);
        }
        let config = ContainerConfig {
            args: [pause.process.entrypoint.clone(), pause.process.cmd.clone()].concat(),
            env: pause.process.env.clone(),
            cwd: String::new(),
            uid: Some(65535),
            gid: Some(65535),
            image_user: String::new(),
            hostname: (!host_network).then_some(hostname),
            rootfs: PathBuf::new(),
            readonly_rootfs: true,
            namespaces,
            cgroups_path: cgroups::container_path(&record.uid, "pause"),
            resources: CgroupResources {
                cpu_shares: 2,
                cpu_quota: None,
                cpu_period: rk8s_api::resources::CPU_PERIOD_US,
                memory_limit: None,
            },
            pids_limit: Some(16),
            mounts: Vec::new(),
            cap_add: Vec::new(),
            cap_drop: vec!["ALL".to_string()],
        };
        let id = record.pause_id.clone();
        self.create_and_start(
            &id,
            &pause,
            config,
            record.engine.clone(),
            &self.log_path(&record.uid, "pause", 0),
        )
        .await?;
        Ok(())
    }

    /// A taken host port names its owner by pod uid; say which pod that is.
    fn name_port_owner(&self, e: Error) -> Error {
        match e {
            Error::Network(rk8s_netoverlay::Error::PortTaken {
                port,
                protocol,
                owner,
            }) => {
                let owner = match self.record(&owner) {
                    Ok(Some(r)) => format!("pod {}", r.key()),
                    _ => owner,
                };
                Error::Network(rk8s_netoverlay::Error::PortTaken {
                    port,
                    protocol,
                    owner,
                })
            }
            other => other,
        }
    }

    async fn image(&self, image: &str, policy: PullPolicy) -> Result<Image> {
        self.images.ensure(image, policy, &self.config.pull).await
    }

    async fn create_and_start(
        &self,
        id: &str,
        image: &Image,
        mut config: ContainerConfig,
        engine: Engine,
        log_path: &Path,
    ) -> Result<ContainerState> {
        let bundle = self.bundle(id);
        let rootfs = Rootfs::in_bundle(&bundle);
        config.rootfs = rootfs.target.clone();
        let layers = image.layers.clone();
        let runtime = self.runtime.clone();
        let create = CreateContainer {
            id: id.to_string(),
            bundle: bundle.clone(),
            engine,
            log_path: log_path.to_path_buf(),
            log_max_bytes: self.config.log_max_bytes,
        };
        let result = blocking(move || {
            std::fs::create_dir_all(&bundle).map_err(io(&bundle))?;
            rootfs.mount(&layers)?;
            spec::write(&bundle, &config.to_spec()?)?;
            runtime.create(&create)?;
            runtime.start(&create.id)?;
            runtime.state(&create.id)
        })
        .await;
        if result.is_err() {
            let _ = self.remove_container(id).await;
        }
        result
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let runtime = self.runtime.clone();
        let bundle = self.bundle(id);
        let id = id.to_string();
        blocking(move || {
            match runtime.delete(&id, true) {
                Ok(()) | Err(Error::ContainerNotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            Rootfs::in_bundle(&bundle).unmount()?;
            match std::fs::remove_dir_all(&bundle) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io(&bundle)(e)),
            }
        })
        .await
    }

    async fn state_of(&self, id: &str) -> Result<Option<ContainerState>> {
        let runtime = self.runtime.clone();
        let id = id.to_string();
        blocking(move || match runtime.state(&id) {
            Ok(state) => Ok(Some(state)),
            Err(Error::ContainerNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }

    /// One level-triggered step for pod `uid` at time `now_ns`: start what should run,
    /// restart what stopped and may run again once its backoff has passed; returns the
    /// pod's status.
    pub async fn sync_pod(&self, uid: &str, now_ns: i64) -> Result<PodStatus> {
        let mut record = self.record(uid)?.ok_or_else(|| Error::ContainerNotFound {
            id: format!("pod {uid}"),
        })?;
        let spec = record.pod.spec.clone().unwrap_or_default();
        let policy = RestartPolicy::from_k8s(spec.restart_policy.as_deref());
        let mut waiting: BTreeMap<String, (String, String)> = BTreeMap::new();
        let pause = self.state_of(&record.pause_id).await?;
        let sandbox_ok = pause.as_ref().is_some_and(|p| p.status == Status::Running);
        let mut inits_done = true;
        if sandbox_ok {
            for c in spec.init_containers.iter().flatten() {
                let state = self.current(&record, &c.name).await?;
                match state.as_ref().map(|s| (s.status, s.exit.map(|e| e.code))) {
                    Some((Status::Stopped, Some(0))) => continue,
                    Some((Status::Stopped, Some(code))) if policy.restarts_init(code) => {
                        self.restart(&mut record, c, now_ns, &mut waiting).await?;
                    }
                    Some((Status::Stopped, _)) => {}
                    Some(_) => {}
                    None => self.start(&mut record, c, &mut waiting).await?,
                }
                inits_done = false;
                break;
            }
            if inits_done {
                for c in &spec.containers {
                    let state = self.current(&record, &c.name).await?;
                    match state.as_ref().map(|s| (s.status, s.exit.map(|e| e.code))) {
                        None => self.start(&mut record, c, &mut waiting).await?,
                        Some((Status::Stopped, code)) if policy.restarts(code.unwrap_or(255)) => {
                            self.restart(&mut record, c, now_ns, &mut waiting).await?;
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        self.save(&record)?;
        let mut health = BTreeMap::new();
        if sandbox_ok && inits_done {
            for c in &spec.containers {
                if let Some(state) = self.current(&record, &c.name).await?
                    && state.status == Status::Running
                {
                    health.insert(c.name.clone(), self.probe(&record, c, &state, now_ns).await);
                }
            }
        }
        self.status(&record, sandbox_ok, inits_done, &waiting, &health)
            .await
    }

    /// Runs the container's due probes; a failed startup or liveness probe kills it
    /// (the restart policy then decides, as in kubelet).
    async fn probe(
        &self,
        record: &PodRecord,
        c: &Container,
        state: &ContainerState,
        now_ns: i64,
    ) -> Health {
        let started_ns = state.started_at_ns.unwrap_or(state.created_at_ns);
        let id = state.spec.id.clone();
        let tracker = |kind| -> probe::Tracker {
            self.probes
                .lock()
                .ok()
                .and_then(|p| p.get(&(id.clone(), kind)).cloned())
                .unwrap_or_default()
        };
        let mut kinds = vec![probe::Kind::Startup];
        let startup_passed = probe::of(c, probe::Kind::Startup).is_none()
            || tracker(probe::Kind::Startup).passing == Some(true);
        if startup_passed {
            kinds = vec![probe::Kind::Liveness, probe::Kind::Readiness];
        }
        for kind in kinds {
            let Some(spec) = probe::of(c, kind) else {
                continue;
            };
            let mut t = tracker(kind);
            if kind == probe::Kind::Startup && t.passing == Some(true) {
                continue;
            }
            if !t.due(spec, started_ns, now_ns) {
                continue;
            }
            let outcome = self.run_probe(record, c, &id, spec).await;
            let verdict = t.record(spec, outcome, now_ns);
            if let Ok(mut probes) = self.probes.lock() {
                probes.insert((id.clone(), kind), t.clone());
            }
            if verdict == Some(false) && kind != probe::Kind::Readiness {
                tracing::info!(
                    pod = %record.key(),
                    container = %c.name,
                    "{kind:?} probe failed: {}; killing the container",
                    t.message.as_deref().unwrap_or_default()
                );
                let runtime = self.runtime.clone();
                let id = id.clone();
                let _ =
                    blocking(move || runtime.kill(&id, nix::sys::signal::Signal::SIGKILL as i32))
                        .await;
            }
        }
        let started = probe::of(c, probe::Kind::Startup).is_none()
            || tracker(probe::Kind::Startup).passing == Some(true);
        let ready = started
            && (probe::of(c, probe::Kind::Readiness).is_none()
                || tracker(probe::Kind::Readiness).passing == Some(true));
        Health { ready, started }
    }

    async fn run_probe(
        &self,
        record: &PodRecord,
        c: &Container,
        id: &str,
        spec: &k8s_openapi::api::core::v1::Probe,
    ) -> probe::Outcome {
        let timeout = probe::timeout(spec);
        let ip = record
            .attachment
            .as_ref()
            .map_or(std::net::Ipv4Addr::LOCALHOST, |a| a.address);
        if let Some(exec) = &spec.exec {
            let process = ExecProcess {
                args: exec.command.clone().unwrap_or_default(),
                ..Default::default()
            };
            let runtime = self.runtime.clone();
            let id = id.to_string();
            let run = blocking(move || {
                let null = std::fs::File::open("/dev/null").map_err(io("/dev/null"))?;
                let out = std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/null")
                    .map_err(io("/dev/null"))?;
                let exec = runtime.exec(
                    &id,
                    &process,
                    Some([null.as_fd(), out.as_fd(), out.as_fd()]),
                )?;
                runtime.wait_exec(exec.pid)
            });
            return match tokio::time::timeout(timeout, run).await {
                Ok(Ok(0)) => probe::Outcome::Success,
                Ok(Ok(code)) => probe::Outcome::Failure(format!("command exited with {code}")),
                Ok(Err(e)) => probe::Outcome::Failure(e.to_string()),
                Err(_) => probe::Outcome::Failure(format!(
                    "command timed out after {}s",
                    timeout.as_secs()
                )),
            };
        }
        if let Some(get) = &spec.http_get {
            if get.scheme.as_deref() == Some("HTTPS") {
                return probe::Outcome::Failure("HTTPS probes are not supported".to_string());
            }
            let port = match probe::port(c, &get.port) {
                Ok(p) => p,
                Err(e) => return probe::Outcome::Failure(e),
            };
            let host = get.host.clone().and_then(|h| h.parse().ok()).unwrap_or(ip);
            let addr = std::net::SocketAddr::from((host, port));
            let path = get.path.clone().unwrap_or_else(|| "/".to_string());
            let headers: Vec<(String, String)> = get
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect();
            let host_header = addr.to_string();
            return tokio::task::spawn_blocking(move || {
                probe::http_get(addr, &host_header, &path, &headers, timeout)
            })
            .await
            .unwrap_or_else(|e| probe::Outcome::Failure(e.to_string()));
        }
        if let Some(tcp) = &spec.tcp_socket {
            let port = match probe::port(c, &tcp.port) {
                Ok(p) => p,
                Err(e) => return probe::Outcome::Failure(e),
            };
            let host = tcp.host.clone().and_then(|h| h.parse().ok()).unwrap_or(ip);
            let addr = std::net::SocketAddr::from((host, port));
            return tokio::task::spawn_blocking(move || probe::tcp(addr, timeout))
                .await
                .unwrap_or_else(|e| probe::Outcome::Failure(e.to_string()));
        }
        probe::Outcome::Failure("only exec, httpGet and tcpSocket probes are supported".to_string())
    }

    async fn current(&self, record: &PodRecord, name: &str) -> Result<Option<ContainerState>> {
        match record.containers.get(name).and_then(|c| c.id.clone()) {
            Some(id) => self.state_of(&id).await,
            None => Ok(None),
        }
    }

    async fn restart(
        &self,
        record: &mut PodRecord,
        container: &Container,
        now_ns: i64,
        waiting: &mut BTreeMap<String, (String, String)>,
    ) -> Result<()> {
        let Some(entry) = record.containers.get_mut(&container.name) else {
            return Ok(());
        };
        let Some(old_id) = entry.id.clone() else {
            return Ok(());
        };
        let Some(old) = self.state_of(&old_id).await? else {
            return Ok(());
        };
        let Some(entry) = record.containers.get_mut(&container.name) else {
            return Ok(());
        };
        if entry.backoff_until_ns.is_none() {
            let ran = match (old.started_at_ns, old.exit) {
                (Some(start), Some(exit)) => {
                    Duration::from_nanos(u64::try_from(exit.finished_at_ns - start).unwrap_or(0))
                }
                _ => Duration::ZERO,
            };
            entry.crashes = restart::next_crashes(entry.crashes, ran);
            let delay = restart::delay(entry.crashes);
            let finished = old.exit.map_or(now_ns, |e| e.finished_at_ns);
            entry.backoff_until_ns =
                Some(finished + i64::try_from(delay.as_nanos()).unwrap_or(i64::MAX));
        }
        if entry.backoff_until_ns.is_some_and(|until| now_ns < until) {
            waiting.insert(
                container.name.clone(),
                (
                    "CrashLoopBackOff".to_string(),
                    format!(
                        "back-off {}s restarting failed container={} pod={}",
                        restart::delay(entry.crashes).as_secs(),
                        container.name,
                        record.pod.metadata.name.as_deref().unwrap_or_default()
                    ),
                ),
            );
            return Ok(());
        }
        entry.backoff_until_ns = None;
        entry.restart_count += 1;
        entry.last = Some(old);
        entry.id = None;
        self.remove_container(&old_id).await?;
        self.save(record)?;
        self.start(record, container, waiting).await
    }

    async fn start(
        &self,
        record: &mut PodRecord,
        container: &Container,
        waiting: &mut BTreeMap<String, (String, String)>,
    ) -> Result<()> {
        let attempt = record
            .containers
            .get(&container.name)
            .map_or(0, |c| c.restart_count);
        let id = format!("{}-{}-{attempt}", record.uid, container.name);
        let image_name = container.image.clone().unwrap_or_default();
        let policy = PullPolicy::from_k8s(container.image_pull_policy.as_deref(), &image_name);
        let image = match self.image(&image_name, policy).await {
            Ok(image) => image,
            Err(e) => {
                let reason = if matches!(e, Error::Image { .. }) {
                    "ErrImagePull"
                } else {
                    "CreateContainerError"
                };
                waiting.insert(container.name.clone(), (reason.to_string(), e.to_string()));
                return Ok(());
            }
        };
        let config = match self.container_config(record, container, &image) {
            Ok(config) => config,
            Err(e) => {
                waiting.insert(
                    container.name.clone(),
                    ("CreateContainerConfigError".to_string(), e.to_string()),
                );
                return Ok(());
            }
        };
        let log = self.log_path(&record.uid, &container.name, attempt);
        if let Some(entry) = record.containers.get_mut(&container.name) {
            entry.id = Some(id.clone());
            entry.image_id = image.id.clone();
        }
        self.save(record)?;
        if let Err(e) = self
            .create_and_start(&id, &image, config, record.engine.clone(), &log)
            .await
        {
            if let Some(entry) = record.containers.get_mut(&container.name) {
                entry.id = None;
            }
            waiting.insert(
                container.name.clone(),
                ("CreateContainerError".to_string(), e.to_string()),
            );
        }
        Ok(())
    }

    fn container_config(
        &self,
        record: &PodRecord,
        c: &Container,
        image: &Image,
    ) -> Result<ContainerConfig> {
        let pod_spec = record.pod.spec.clone().unwrap_or_default();
        let pause_pid = self
            .runtime
            .state(&record.pause_id)?
            .pid
            .filter(|pid| crate::helper::server::alive_pid(*pid))
            .ok_or_else(|| {
                Error::InvalidSpec("the pod sandbox (pause) is not running".to_string())
            })?;
        // Kubernetes: command replaces the entrypoint, args the cmd.
        let args = match (&c.command, &c.args) {
            (Some(command), args) => [command.clone(), args.clone().unwrap_or_default()].concat(),
            (None, Some(args)) => [image.process.entrypoint.clone(), args.clone()].concat(),
            (None, None) => [image.process.entrypoint.clone(), image.process.cmd.clone()].concat(),
        };
        let mut env: Vec<String> = image.process.env.clone();
        let pod_ip = record
            .attachment
            .as_ref()
            .map(|a| a.address.to_string())
            .unwrap_or_default();
        for var in c.env.iter().flatten() {
            let value = match (&var.value, &var.value_from) {
                (_, Some(from)) => {
                    let field = from
                        .field_ref
                        .as_ref()
                        .map(|f| f.field_path.as_str())
                        .ok_or_else(|| {
                            Error::InvalidSpec(format!(
                                "env {}: only valueFrom.fieldRef is supported here",
                                var.name
                            ))
                        })?;
                    match field {
                        "metadata.name" => record.pod.metadata.name.clone().unwrap_or_default(),
                        "metadata.namespace" => {
                            record.pod.metadata.namespace.clone().unwrap_or_default()
                        }
                        "metadata.uid" => record.uid.clone(),
                        "status.podIP" => pod_ip.clone(),
                        "spec.nodeName" => pod_spec.node_name.clone().unwrap_or_default(),
                        other => {
                            return Err(Error::InvalidSpec(format!(
                                "env {}: fieldRef {other:?} is not supported",
                                var.name
                            )));
                        }
                    }
                }
                (value, None) => value.clone().unwrap_or_default(),
            };
            env.retain(|kv| kv.split('=').next() != Some(var.name.as_str()));
            env.push(format!("{}={value}", var.name));
        }
        let resources = c.resources.clone().unwrap_or_default();
        let resources = CgroupResources::from_requirements(
            resources.requests.as_ref(),
            resources.limits.as_ref(),
        )
        .map_err(|e| Error::InvalidSpec(format!("container {}: resources: {e}", c.name)))?;
        let dir = self.pod_dir(&record.uid);
        let mut mounts = vec![
            BindMount {
                source: dir.join("hosts"),
                destination: "/etc/hosts".into(),
                readonly: false,
            },
            BindMount {
                source: dir.join("resolv.conf"),
                destination: "/etc/resolv.conf".into(),
                readonly: false,
            },
            BindMount {
                source: dir.join("hostname"),
                destination: "/etc/hostname".into(),
                readonly: false,
            },
        ];
        for m in c.volume_mounts.iter().flatten() {
            let volume = pod_spec
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == m.name)
                .ok_or_else(|| {
                    Error::InvalidSpec(format!(
                        "volumeMount {:?}: no such volume in the pod",
                        m.name
                    ))
                })?;
            let source = match (&volume.empty_dir, &volume.host_path) {
                (Some(_), _) => dir.join("volumes").join(&volume.name),
                (None, Some(h)) => PathBuf::from(&h.path),
                _ => {
                    return Err(Error::InvalidSpec(format!(
                        "volume {:?} is not supported",
                        volume.name
                    )));
                }
            };
            let source = match &m.sub_path {
                Some(sub) if !sub.is_empty() => {
                    if sub.split('/').any(|p| p == "..") {
                        return Err(Error::InvalidSpec(format!(
                            "subPath {sub:?} leaves the volume"
                        )));
                    }
                    let s = source.join(sub);
                    std::fs::create_dir_all(&s).map_err(io(&s))?;
                    s
                }
                _ => source,
            };
            mounts.push(BindMount {
                source,
                destination: m.mount_path.clone(),
                readonly: m.read_only.unwrap_or(false),
            });
        }
        let security = c.security_context.clone().unwrap_or_default();
        let pod_security = pod_spec.security_context.clone().unwrap_or_default();
        let caps = security.capabilities.clone().unwrap_or_default();
        let share_pid = pod_spec.share_process_namespace.unwrap_or(false);
        let uid = security.run_as_user.or(pod_security.run_as_user);
        let gid = security.run_as_group.or(pod_security.run_as_group);
        let config = ContainerConfig {
            args,
            env,
            cwd: c
                .working_dir
                .clone()
                .unwrap_or_else(|| image.process.working_dir.clone()),
            uid: uid.and_then(|u| u32::try_from(u).ok()),
            gid: gid.and_then(|g| u32::try_from(g).ok()),
            image_user: image.process.user.clone(),
            hostname: None,
            rootfs: PathBuf::new(),
            readonly_rootfs: security.read_only_root_filesystem.unwrap_or(false),
            namespaces: spec::container_namespaces(pause_pid, share_pid),
            cgroups_path: cgroups::container_path(&record.uid, &c.name),
            resources,
            pids_limit: self.config.pids_limit,
            mounts,
            cap_add: caps.add.unwrap_or_default(),
            cap_drop: caps.drop.unwrap_or_default(),
        };
        Ok(config)
    }

    async fn status(
        &self,
        record: &PodRecord,
        sandbox_ok: bool,
        inits_done: bool,
        waiting: &BTreeMap<String, (String, String)>,
        health: &BTreeMap<String, Health>,
    ) -> Result<PodStatus> {
        let spec = record.pod.spec.clone().unwrap_or_default();
        let policy = RestartPolicy::from_k8s(spec.restart_policy.as_deref());
        let mut init_statuses = Vec::new();
        let mut statuses = Vec::new();
        let mut running = 0;
        let mut succeeded = 0;
        let mut failed = 0;
        let mut all_ready = true;
        let inits: Vec<&Container> = spec.init_containers.iter().flatten().collect();
        for (c, is_init) in inits
            .iter()
            .map(|c| (*c, true))
            .chain(spec.containers.iter().map(|c| (c, false)))
        {
            let entry = record.containers.get(&c.name);
            let state = self.current(record, &c.name).await?;
            let mut status = container_status(c, entry, state.as_ref(), waiting.get(&c.name));
            if let Some(h) = health.get(&c.name) {
                status.ready = status.started == Some(true) && h.ready;
                status.started = Some(status.started == Some(true) && h.started);
            } else if !is_init {
                status.ready = false;
            }
            if is_init {
                init_statuses.push(status);
                continue;
            }
            match state.as_ref().map(|s| (s.status, s.exit.map(|e| e.code))) {
                Some((Status::Running, _)) => running += 1,
                Some((Status::Stopped, Some(0)))
                    if !waiting.contains_key(&c.name) && !policy.restarts(0) =>
                {
                    succeeded += 1
                }
                Some((Status::Stopped, code)) if !policy.restarts(code.unwrap_or(255)) => {
                    failed += 1
                }
                _ => {}
            }
            all_ready &= status.ready;
            statuses.push(status);
        }
        let total = spec.containers.len();
        let init_failed = policy == RestartPolicy::Never
            && init_statuses.iter().any(|s| {
                s.state
                    .as_ref()
                    .and_then(|st| st.terminated.as_ref())
                    .is_some_and(|t| t.exit_code != 0)
            });
        let phase = if !sandbox_ok && record.pause_id.is_empty() {
            "Unknown"
        } else if init_failed || (failed > 0 && succeeded + failed == total) {
            "Failed"
        } else if succeeded == total && total > 0 {
            "Succeeded"
        } else if inits_done && sandbox_ok && running + succeeded + failed == total && running > 0 {
            "Running"
        } else {
            "Pending"
        };
        let pod_ip = record.attachment.as_ref().map(|a| a.address.to_string());
        let now = Time(jiff::Timestamp::now());
        let condition = |type_: &str, ok: bool| PodCondition {
            type_: type_.to_string(),
            status: if ok { "True" } else { "False" }.to_string(),
            last_transition_time: Some(now.clone()),
            ..Default::default()
        };
        let ready = phase == "Running" && all_ready;
        Ok(PodStatus {
            phase: Some(phase.to_string()),
            pod_ip: pod_ip.clone(),
            pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
            start_time: Some(Time(
                jiff::Timestamp::from_nanosecond(i128::from(record.created_at_ns)).unwrap_or(now.0),
            )),
            conditions: Some(vec![
                condition("PodReadyToStartContainers", sandbox_ok),
                condition("Initialized", inits_done),
                condition("ContainersReady", ready),
                condition("Ready", ready),
            ]),
            init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
            container_statuses: Some(statuses),
            ..Default::default()
        })
    }

    /// Stops the containers of pod `uid` (SIGTERM, then SIGKILL after `grace`) and
    /// keeps them, their logs and the sandbox (`rk8sctl container stop`).
    pub async fn stop_containers(&self, uid: &str, grace: Duration) -> Result<()> {
        let record = self.record(uid)?.ok_or_else(|| Error::ContainerNotFound {
            id: format!("pod {uid}"),
        })?;
        let ids = self.terminate(&record, grace).await?;
        let runtime = self.runtime.clone();
        blocking(move || {
            for id in &ids {
                match runtime.kill(id, nix::sys::signal::Signal::SIGKILL as i32) {
                    Ok(()) | Err(Error::ContainerNotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            // Wait for the kill to be seen, so that a `state` right after says so.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while std::time::Instant::now() < deadline
                && ids.iter().any(|id| {
                    runtime
                        .state(id)
                        .map(|s| s.status != Status::Stopped)
                        .unwrap_or(false)
                })
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(())
        })
        .await
    }

    /// Sends SIGTERM to every container of the pod (all attempts, the pause
    /// excepted) and waits up to `grace` for them to stop; returns their ids.
    async fn terminate(&self, record: &PodRecord, grace: Duration) -> Result<Vec<String>> {
        let mut ids: Vec<String> = record
            .containers
            .values()
            .filter_map(|c| c.id.clone())
            .collect();
        // Attempts a crash left unrecorded belong to the pod too.
        let prefix = format!("{}-", record.uid);
        let runtime = self.runtime.clone();
        for state in blocking(move || runtime.list()).await? {
            let id = state.spec.id;
            if id.starts_with(&prefix) && id != record.pause_id && !ids.contains(&id) {
                ids.push(id);
            }
        }
        let runtime = self.runtime.clone();
        let term_ids = ids.clone();
        blocking(move || {
            for id in &term_ids {
                match runtime.kill(id, nix::sys::signal::Signal::SIGTERM as i32) {
                    Ok(()) | Err(Error::ContainerNotFound { .. }) => {}
                    Err(e) => tracing::warn!(id, "SIGTERM: {e}"),
                }
            }
            let deadline = std::time::Instant::now() + grace;
            while std::time::Instant::now() < deadline {
                let all_stopped = term_ids.iter().all(|id| {
                    runtime
                        .state(id)
                        .map(|s| s.status == Status::Stopped)
                        .unwrap_or(true)
                });
                if all_stopped {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(())
        })
        .await?;
        Ok(ids)
    }

    /// Stops pod `uid`: SIGTERM to its containers, SIGKILL after `grace`, then removes
    /// containers, rootfs mounts, bundles, cgroups, network and files. Stopping a pod
    /// that is gone does nothing.
    pub async fn stop_pod(&self, uid: &str, grace: Duration) -> Result<()> {
        let Some(record) = self.record(uid)? else {
            return Ok(());
        };
        let ids = self.terminate(&record, grace).await?;
        // Every step is tried even when one fails, so that a second stop finds less to
        // do; the first error is reported.
        let mut first_error = None;
        for id in ids.iter().chain(std::iter::once(&record.pause_id)) {
            if let Err(e) = self.remove_container(id).await {
                first_error.get_or_insert(e);
            }
        }
        // Detached by name even without a recorded attachment: an agent killed while
        // wiring the sandbox leaves a namespace and a veth the record does not name yet.
        let host_network = record
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        if let (false, Some(network)) = (host_network, &self.network) {
            let (network, owner) = (network.clone(), uid.to_string());
            let detached = blocking(move || network.detach(&owner).map_err(Error::from)).await;
            match detached {
                Ok(()) => {}
                Err(e) if record.attachment.is_some() => {
                    first_error.get_or_insert(e);
                }
                Err(e) => tracing::debug!(pod = %uid, "no attachment to remove: {e}"),
            }
        }
        let pod_cgroup = cgroups::pod_path(uid);
        if let Err(e) = blocking(move || cgroups::remove(&pod_cgroup)).await {
            first_error.get_or_insert(e);
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let dir = self.pod_dir(uid);
        std::fs::remove_dir_all(&dir).map_err(io(&dir))
    }

    /// Sets the peer entries of pod `uid`'s /etc/hosts (Compose services reaching each
    /// other by name), replacing earlier ones. The file is rewritten in place, so
    /// running containers see the change.
    pub fn set_peer_hosts(
        &self,
        uid: &str,
        peers: &[(std::net::Ipv4Addr, Vec<String>)],
    ) -> Result<()> {
        const MARK: &str = "# peers (rk8s)";
        let path = self.pod_dir(uid).join("hosts");
        let current = std::fs::read_to_string(&path).map_err(io(&path))?;
        let mut text = current.split(MARK).next().unwrap_or_default().to_string();
        if !peers.is_empty() {
            text.push_str(MARK);
            text.push('\n');
            for (ip, names) in peers {
                text.push_str(&format!("{ip}\t{}\n", names.join(" ")));
            }
        }
        // Truncate and write the same inode: it is bind-mounted into the containers.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(io(&path))?;
        std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io(&path))
    }

    /// Removes what belongs to no wanted pod: pods for which `keep` is false (stopped
    /// at once), containers of the helper and network attachments that no pod record
    /// names (left by a crash between steps). Returns what was removed.
    pub async fn remove_orphans(&self, keep: impl Fn(&PodRecord) -> bool) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        let mut known = std::collections::BTreeSet::new();
        for record in self.pods()? {
            if keep(&record) {
                known.insert(record.pause_id.clone());
                known.extend(record.containers.values().filter_map(|c| c.id.clone()));
                known.insert(record.uid.clone());
            } else {
                self.stop_pod(&record.uid, Duration::ZERO).await?;
                removed.push(format!("pod {}", record.key()));
            }
        }
        let runtime = self.runtime.clone();
        for state in blocking(move || runtime.list()).await? {
            if !known.contains(state.id()) {
                self.remove_container(state.id()).await?;
                removed.push(format!("container {}", state.id()));
            }
        }
        if let Some(network) = &self.network {
            for attachment in network.attachments()? {
                if !known.contains(&attachment.owner) {
                    let network = network.clone();
                    let owner = attachment.owner.clone();
                    blocking(move || network.detach(&owner).map_err(Error::from)).await?;
                    removed.push(format!("network attachment {}", attachment.owner));
                }
            }
        }
        Ok(removed)
    }

    /// Runs `process` in container `name` of pod `uid` with the given stdio; returns
    /// its exit code.
    pub async fn exec(
        &self,
        uid: &str,
        name: &str,
        process: ExecProcess,
        stdio: [std::os::fd::OwnedFd; 3],
    ) -> Result<i32> {
        let id = self.container_id(uid, name)?;
        let runtime = self.runtime.clone();
        blocking(move || {
            let [stdin, stdout, stderr] = &stdio;
            let exec = runtime.exec(
                &id,
                &process,
                Some([stdin.as_fd(), stdout.as_fd(), stderr.as_fd()]),
            )?;
            drop(stdio);
            runtime.wait_exec(exec.pid)
        })
        .await
    }

    /// Starts `args` in container `name` of pod `uid` on a new terminal; returns its
    /// pid (for [`wait_exec`](Self::wait_exec)) and the terminal's master end, which
    /// the caller reads and writes (`kubectl exec -it`).
    pub async fn exec_tty(
        &self,
        uid: &str,
        name: &str,
        mut process: ExecProcess,
    ) -> Result<(i32, std::os::fd::OwnedFd)> {
        let id = self.container_id(uid, name)?;
        process.tty = true;
        let runtime = self.runtime.clone();
        blocking(move || {
            let exec = runtime.exec(&id, &process, None)?;
            let pty = exec.pty.ok_or_else(|| Error::Engine {
                engine: "exec".to_string(),
                message: "the runtime gave no terminal".to_string(),
            })?;
            Ok((exec.pid, pty))
        })
        .await
    }

    /// Waits for a process started by [`exec_tty`](Self::exec_tty); returns its exit
    /// code.
    pub async fn wait_exec(&self, pid: i32) -> Result<i32> {
        let runtime = self.runtime.clone();
        blocking(move || runtime.wait_exec(pid)).await
    }

    fn container_id(&self, uid: &str, name: &str) -> Result<String> {
        let record = self.record(uid)?.ok_or_else(|| Error::ContainerNotFound {
            id: format!("pod {uid}"),
        })?;
        record
            .containers
            .get(name)
            .and_then(|c| c.id.clone())
            .ok_or_else(|| Error::ContainerNotFound {
                id: format!("{}/{name}", record.key()),
            })
    }

    /// Writes a container's log to `out` (blocking; with `options.follow`, until the
    /// container stops).
    pub fn write_log(
        &self,
        uid: &str,
        name: &str,
        previous: bool,
        options: &logs::ReadOptions,
        out: &mut dyn std::io::Write,
    ) -> Result<()> {
        let (path, id) = self.container_log(uid, name, previous)?;
        let mut running = || {
            id.as_deref()
                .and_then(|id| self.runtime.state(id).ok())
                .is_some_and(|s| s.status != Status::Stopped)
        };
        logs::read(&path, options, out, &mut running)
    }

    /// The log file of the current (or, with `previous`, the last) attempt of a
    /// container.
    pub fn container_log(
        &self,
        uid: &str,
        name: &str,
        previous: bool,
    ) -> Result<(PathBuf, Option<String>)> {
        let record = self.record(uid)?.ok_or_else(|| Error::ContainerNotFound {
            id: format!("pod {uid}"),
        })?;
        let entry = record
            .containers
            .get(name)
            .ok_or_else(|| Error::ContainerNotFound {
                id: format!("{}/{name}", record.key()),
            })?;
        if previous {
            let last = entry.last.as_ref().ok_or_else(|| {
                Error::InvalidSpec(format!(
                    "container {name:?} has not been restarted: no previous log"
                ))
            })?;
            return Ok((last.spec.log_path.clone(), None));
        }
        Ok((
            self.log_path(uid, name, entry.restart_count),
            entry.id.clone(),
        ))
    }
}

fn container_status(
    c: &Container,
    entry: Option<&ContainerRecord>,
    state: Option<&ContainerState>,
    waiting: Option<&(String, String)>,
) -> ContainerStatus {
    let time = |ns: i64| {
        Time(
            jiff::Timestamp::from_nanosecond(i128::from(ns)).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        )
    };
    let k8s_state = |s: &ContainerState| -> K8sState {
        match (s.status, s.exit) {
            (Status::Stopped, Some(exit)) => K8sState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: exit.code,
                    reason: Some(exit.reason.as_str().to_string()),
                    started_at: s.started_at_ns.map(time),
                    finished_at: Some(time(exit.finished_at_ns)),
                    container_id: Some(format!("rk8s://{}", s.spec.id)),
                    ..Default::default()
                }),
                ..Default::default()
            },
            (Status::Running, _) => K8sState {
                running: Some(ContainerStateRunning {
                    started_at: s.started_at_ns.map(time),
                }),
                ..Default::default()
            },
            _ => K8sState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("ContainerCreating".to_string()),
                    message: None,
                }),
                ..Default::default()
            },
        }
    };
    let current = match (waiting, state) {
        (Some((reason, message)), _) => K8sState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: Some(message.clone()),
            }),
            ..Default::default()
        },
        (None, Some(s)) => k8s_state(s),
        (None, None) => K8sState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("PodInitializing".to_string()),
                message: None,
            }),
            ..Default::default()
        },
    };
    let running = state.is_some_and(|s| s.status == Status::Running) && waiting.is_none();
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: entry.map(|e| e.image_id.clone()).unwrap_or_default(),
        container_id: state.map(|s| format!("rk8s://{}", s.spec.id)),
        ready: running,
        started: Some(running),
        restart_count: entry.map_or(0, |e| i32::try_from(e.restart_count).unwrap_or(i32::MAX)),
        state: Some(current),
        // While a stopped container waits to restart, its last state is that stop.
        last_state: match (waiting, state) {
            (Some(_), Some(s)) if s.status == Status::Stopped => Some(k8s_state(s)),
            _ => entry.and_then(|e| e.last.as_ref()).map(k8s_state),
        },
        ..Default::default()
    }
}

/// Host ports asked for by the containers' `ports[].hostPort`.
fn host_ports(containers: &[Container]) -> Vec<PortMapping> {
    containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host_port = u16::try_from(p.host_port?).ok()?;
            Some(PortMapping {
                host_port,
                container_port: u16::try_from(p.container_port).ok()?,
                protocol: if p.protocol.as_deref() == Some("UDP") {
                    Protocol::Udp
                } else {
                    Protocol::Tcp
                },
            })
        })
        .collect()
}

fn write_etc_files(
    dir: &Path,
    hostname: &str,
    record: &PodRecord,
    config: &PodRuntimeConfig,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let spec = record.pod.spec.clone().unwrap_or_default();
    let mut hosts = String::from(
        "# Kubernetes-managed hosts file (rk8s).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    if let Some(a) = &record.attachment {
        hosts.push_str(&format!("{}\t{hostname}\n", a.address));
    }
    for alias in spec.host_aliases.iter().flatten() {
        hosts.push_str(&format!(
            "{}\t{}\n",
            alias.ip,
            alias.hostnames.clone().unwrap_or_default().join("\t")
        ));
    }
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io(&path))
    };
    write("hosts", &hosts)?;
    write("hostname", &format!("{hostname}\n"))?;
    let dns = spec.dns_config.clone().unwrap_or_default();
    let mut nameservers = Vec::new();
    let mut searches = Vec::new();
    let mut options = Vec::new();
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let host_network = spec.host_network == Some(true);
    let cluster_first = config.cluster_dns.is_some()
        && (policy == "ClusterFirstWithHostNet" || (policy == "ClusterFirst" && !host_network));
    match &config.cluster_dns {
        Some(cluster) if cluster_first => {
            // As kubelet writes it: the cluster's server and search list first.
            let ns = record
                .pod
                .metadata
                .namespace
                .as_deref()
                .unwrap_or("default");
            let domain = &cluster.domain;
            nameservers.push(cluster.nameserver.clone());
            searches.extend([
                format!("{ns}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.clone(),
            ]);
            options.push("ndots:5".to_string());
        }
        _ => {}
    }
    if policy != "None" {
        // The cluster's server forwards other names itself, as CoreDNS does.
        if !cluster_first {
            nameservers.extend(config.nameservers.iter().cloned());
        }
        searches.extend(config.searches.iter().cloned());
    }
    nameservers.extend(dns.nameservers.clone().unwrap_or_default());
    searches.extend(dns.searches.clone().unwrap_or_default());
    let mut resolv = String::new();
    for ns in nameservers.iter().take(3) {
        resolv.push_str(&format!("nameserver {ns}\n"));
    }
    if !searches.is_empty() {
        resolv.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for o in dns.options.iter().flatten() {
        let name = o.name.clone().unwrap_or_default();
        // The pod's own value of an option replaces the default one.
        options.retain(|x| x.split(':').next() != Some(name.as_str()));
        options.push(match &o.value {
            Some(v) => format!("{name}:{v}"),
            None => name,
        });
    }
    if !options.is_empty() {
        resolv.push_str(&format!("options {}\n", options.join(" ")));
    }
    write("resolv.conf", &resolv)
}

/// The cluster DNS a node's pods use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDns {
    /// Its address (the node's server on the pods' gateway).
    pub nameserver: String,
    /// The cluster domain (`cluster.local`).
    pub domain: String,
}

/// The host's nameservers that pods can reach (not loopback: a pod has its own).
pub fn host_nameservers() -> Vec<String> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .map(|s| s.trim().to_string())
        .filter(|ns| !ns.starts_with("127.") && ns != "::1")
        .collect()
}

fn host_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::InvalidSpec(format!("runtime task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports_come_from_container_ports() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "web",
            "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "protocol": "UDP", "hostPort": 5353}, {"containerPort": 9}]
        }))
        .unwrap();
        let ports = host_ports(&[c]);
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[1].protocol, Protocol::Udp);
    }
}

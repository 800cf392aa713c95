//! The Kubernetes pod model on the container runtime.
//!
//! A pod is a sandbox — a pause container holding the network, ipc and uts namespaces
//! (pid too with `shareProcessNamespace`), in the network namespace a [`PodNetwork`]
//! gives the pod — and work containers that join them. [`PodRuntime::run_pod`]
//! makes the sandbox; [`PodRuntime::sync_pod`] is the level-triggered step that runs
//! init containers in order, then the app containers, restarts them as the restart
//! policy and CrashLoopBackOff say, and reports a `PodStatus`. Everything is recorded
//! under the data directory, so a restarted agent finds its pods and containers
//! running and carries on.
//!
//! The parts, one file each: `config` (what the runtime runs with), `record` (what
//! is kept on disk of a pod), `sandbox` (pause container, network, teardown),
//! `etc_files` and `volumes` (what the sandbox gives its containers), `containers`
//! (an attempt's create, start, restart and stop) with `container_config` (its OCI
//! settings from the pod), `env` and `service_env` (its environment), `inputs` and
//! `tokens` (what the agent reads from the API for it), `projected` (ConfigMap,
//! Secret, downwardAPI and projected volumes), `pull_backoff` (kubelet's wait between
//! failed pulls), `devices` (what a device plugin gives a container), `sync` (the level-triggered step),
//! `probes`, `status`, `exec` (exec and logs) and `orphans`.

mod config;
mod container_config;
mod containers;
pub mod devices;
pub mod env;
mod etc_files;
mod exec;
pub mod inputs;
mod orphans;
mod probes;
mod projected;
mod pull_backoff;
mod record;
mod sandbox;
pub mod service_env;
mod status;
mod sync;
pub mod tokens;
mod volumes;

use std::path::PathBuf;
use std::sync::Arc;

pub use config::{Allocatable, ClusterDns, PodRuntimeConfig, host_nameservers};
pub use devices::{ContainerDevices, DeviceProvider};
pub use inputs::PodInputs;
pub use record::{ContainerRecord, PodRecord};
pub use service_env::ServiceLister;
pub use volumes::has_sized_empty_dir;

use crate::error::{Error, Result, io};
use crate::image::{ImageStore, PullOptions};
use crate::network::PodNetwork;
use crate::probe;
use crate::runtime::ContainerRuntime;
use crate::stats::{self, PodContainers, Reading};

/// Runs pods on this host.
pub struct PodRuntime {
    config: PodRuntimeConfig,
    images: ImageStore,
    runtime: Arc<dyn ContainerRuntime>,
    network: Option<Arc<dyn PodNetwork>>,
    /// Probe results per container attempt (kept in memory, as kubelet does: a
    /// restarted agent probes afresh).
    probes: std::sync::Mutex<std::collections::HashMap<(String, probe::Kind), probe::Tracker>>,
    /// What each pod takes from the API, as the agent last read it (in memory only:
    /// no Secret is written to disk).
    inputs: inputs::Inputs,
    /// kubelet's image pull back-off, per pod and image.
    pull_backoff: pull_backoff::PullBackOff,
    /// Where what happens to pods is told (their agent writes the events).
    events: Option<tokio::sync::mpsc::Sender<Happening>>,
    /// The cluster's Services, for the containers' service variables (none on a
    /// node without a cluster, as kubelet without a master).
    services: Option<Arc<dyn ServiceLister>>,
    /// The devices of containers that ask for device-plugin resources (none: no
    /// container gets any).
    devices: Option<Arc<dyn DeviceProvider>>,
}

/// Something that happened to a pod's container that kubelet reports as an event:
/// an image pulled (or found present), a probe failed, a container killed for it.
#[derive(Clone, Debug)]
pub struct Happening {
    /// The pod.
    pub pod: Arc<k8s_openapi::api::core::v1::Pod>,
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    /// The event's reason (`Pulling`, `Pulled`, `Unhealthy`, `Killing`).
    pub reason: &'static str,
    /// Its message, in kubelet's words.
    pub message: String,
}

/// Most happenings waiting to be told (more are dropped: events are best effort).
pub const HAPPENINGS_QUEUED: usize = 1024;

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
        network: Option<Arc<dyn PodNetwork>>,
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
            inputs: Default::default(),
            pull_backoff: Default::default(),
            events: None,
            services: None,
            devices: None,
        })
    }

    /// Tells what happens to pods (image pulls, failed probes) to `events`.
    pub fn tell_to(&mut self, events: tokio::sync::mpsc::Sender<Happening>) {
        self.events = Some(events);
    }

    /// Gives containers the service variables of the Services `services` lists
    /// ([`service_env`]).
    pub fn read_services_from(&mut self, services: Arc<dyn ServiceLister>) {
        self.services = Some(services);
    }

    /// Gives containers the devices `devices` says they have ([`devices`]).
    pub fn use_devices_from(&mut self, devices: Arc<dyn DeviceProvider>) {
        self.devices = Some(devices);
    }

    /// Tells `what` happened to the pod of `record`.
    pub(super) fn report(
        &self,
        record: &PodRecord,
        type_: &'static str,
        reason: &'static str,
        message: String,
    ) {
        let Some(events) = &self.events else { return };
        let happening = Happening {
            pod: Arc::new(record.pod.clone()),
            type_,
            reason,
            message,
        };
        if events.try_send(happening).is_err() {
            tracing::debug!(pod = %record.uid, reason, "an event was dropped: too many queued");
        }
    }

    /// How it runs.
    pub fn config(&self) -> &PodRuntimeConfig {
        &self.config
    }

    /// The image store.
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// Sets what pod `uid` takes from the API (its ConfigMaps and Secrets, as the
    /// agent read them): used as its containers start and its images are pulled; kept
    /// until the pod stops.
    pub fn set_inputs(&self, uid: &str, inputs: PodInputs) {
        self.inputs.set(uid, inputs);
    }

    /// What pod `uid` takes from the API as last set (empty when none was): the agent
    /// reuses its tokens while they are fresh.
    pub fn inputs(&self, uid: &str) -> Arc<PodInputs> {
        self.inputs.of(uid)
    }

    /// The pull settings for `pod`'s images: the node's, with the credentials of its
    /// image pull secrets first.
    fn pull_options(
        &self,
        pod: &k8s_openapi::api::core::v1::Pod,
    ) -> std::borrow::Cow<'_, PullOptions> {
        let names = pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.as_ref());
        let names = names.into_iter().flatten().map(|r| r.name.as_str());
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let credentials = self.inputs.of(uid).pull_credentials(names);
        if credentials.is_empty() {
            return std::borrow::Cow::Borrowed(&self.config.pull);
        }
        std::borrow::Cow::Owned(PullOptions {
            pull_secrets: credentials.into(),
            ..self.config.pull.clone()
        })
    }

    /// The container runtime.
    pub fn runtime(&self) -> &Arc<dyn ContainerRuntime> {
        &self.runtime
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.config.data_dir.join("pods").join(uid)
    }

    /// Brings the pod's ConfigMap, Secret, downwardAPI and projected volumes to what
    /// its inputs hold now (a volume already holding it is left alone); why not, in
    /// kubelet's words, when a required source is missing.
    pub(super) fn project_volumes(&self, record: &PodRecord) -> std::result::Result<(), String> {
        let spec = record.pod.spec.as_ref();
        let volumes = spec.and_then(|s| s.volumes.as_ref());
        // A claim's volume must be there before anything starts.
        for volume in volumes.into_iter().flatten() {
            if volume.persistent_volume_claim.is_some() {
                let inputs = self.inputs.of(&record.uid);
                volumes::claim_dir(volume, &inputs.claims).map_err(|why| {
                    format!(
                        "MountVolume.SetUp failed for volume {:?} : {why}",
                        volume.name
                    )
                })?;
            }
        }
        let mut volumes = volumes
            .into_iter()
            .flatten()
            .filter(|v| projected::is_projected(v));
        let Some(first) = volumes.next() else {
            return Ok(());
        };
        let inputs = self.inputs.of(&record.uid);
        let pod_ip = record
            .attachment
            .as_ref()
            .map(|a| a.address.to_string())
            .unwrap_or_default();
        for volume in std::iter::once(first).chain(volumes) {
            let failed = |why: String| {
                format!(
                    "MountVolume.SetUp failed for volume {:?} : {why}",
                    volume.name
                )
            };
            let payload =
                projected::payload(volume, record, &pod_ip, &inputs, self.config.allocatable)
                    .map_err(failed)?;
            let dir = self.pod_dir(&record.uid).join("volumes").join(&volume.name);
            if !projected::holds(&dir, &payload) {
                projected::write(&dir, &payload).map_err(|e| failed(e.to_string()))?;
            }
        }
        Ok(())
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

    /// The host's and the running containers' usage now (see [`crate::stats`]).
    pub async fn stats(&self) -> Result<Reading> {
        let runtime = self.runtime.clone();
        let records = self.pods()?;
        blocking(move || {
            let pods = records.iter().map(|r| PodContainers {
                pod: &r.pod,
                uid: &r.uid,
                created_at_ns: r.created_at_ns,
                containers: r
                    .containers
                    .iter()
                    .filter_map(|(name, c)| Some((name.as_str(), c.id.as_deref()?)))
                    .collect(),
            });
            stats::read(&runtime, pods)
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::InvalidSpec(format!("runtime task failed: {e}")))?
}

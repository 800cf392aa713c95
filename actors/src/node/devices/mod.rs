//! The device manager of the node agent: kubelet's `devicemanager` behind the
//! Kubernetes device-plugin API (`v1beta1`), so vendors' device plugins work unchanged.
//!
//! The agent serves `Registration` on `<dir>/kubelet.sock` (stale sockets in the
//! directory are removed first, the signal plugins watch to register again). A
//! plugin registers its extended resource (`vendor.com/gpu`) and its socket in the
//! same directory; the manager dials it, reads its options and follows its
//! `ListAndWatch` stream. The node's capacity counts every device, its allocatable
//! the healthy ones; when the plugin goes (its stream ends or its socket is removed)
//! its devices turn unhealthy — allocatable 0, capacity kept for five minutes, then
//! reported as 0. A pod asking for such a resource is admitted only with enough
//! healthy free devices: each container's (init containers first, their devices
//! reused by the app containers) are chosen, with the plugin's preference when it
//! offers one, and `Allocate`d; otherwise the pod fails with kubelet's
//! `UnexpectedAdmissionError`. At every start of a container the runtime asks for its
//! devices (the variables, mounts, device nodes and annotations the plugin answered;
//! `PreStartContainer` first when the plugin wants it). Allocations are freed when the
//! pod ends and kept in the directory's `kubelet_internal_checkpoint`, so a restarted
//! agent gives no other pod the devices its running pods hold.
//!
//! The parts: `state` (what is known and decided, no I/O), `checkpoint` (the file),
//! and here the sockets, the plugins' streams and the calls.

pub mod checkpoint;
pub mod state;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use rk8s_deviceplugin::v1beta1::{
    self, AllocateRequest, ContainerAllocateRequest, ContainerAllocateResponse,
    ContainerPreferredAllocationRequest, DevicePluginOptions, Empty, PreStartContainerRequest,
    PreferredAllocationRequest, RegisterRequest,
    device_plugin_client::DevicePluginClient,
    registration_server::{Registration, RegistrationServer},
};
use rk8s_runtime::pod::{ContainerDevices, DeviceProvider, PodRuntime, devices::Answer};
use rk8s_runtime::spec::{BindMount, DeviceNode};
use tonic::transport::Channel;

use self::state::{Capacity, Devices, KnownPods, Need};

/// The admission failure's reason (kubelet's `admission.ErrorReasonUnexpected`).
pub const UNEXPECTED_ADMISSION_ERROR: &str = "UnexpectedAdmissionError";

/// How long a unary call to a plugin may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a plugin's socket is looked for while its stream is open.
const SOCKET_CHECK: Duration = Duration::from_secs(1);

/// The device manager.
pub struct DeviceManager {
    dir: PathBuf,
    state: Mutex<Devices>,
    /// The plugins' clients by resource, with their registration's generation.
    clients: Mutex<HashMap<String, (u64, DevicePluginClient<Channel>)>>,
    /// Resources removed from the capacity since the agent started: reported as 0.
    removed: Mutex<BTreeSet<String>>,
    /// One admission at a time (kubelet admits pods one by one).
    admission: tokio::sync::Mutex<()>,
    /// Told when the capacity may have changed.
    changed: tokio::sync::Notify,
    /// Held across a checkpoint's snapshot and its write, so the newest state lands
    /// last (kubelet's checkpoint manager holds a mutex); the last one written (the
    /// same one is not written again).
    checkpoint_lock: Mutex<Option<checkpoint::Checkpoint>>,
    /// The pods of the node's API view (`None`: not listed yet, nothing is freed
    /// for being inactive).
    known: Mutex<Option<KnownPods>>,
    /// The runtime whose pods may still run.
    runtime: Mutex<Option<Weak<PodRuntime>>>,
    /// Whether a checkpoint was found at the start.
    checkpoint_found: bool,
}

impl std::fmt::Debug for DeviceManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceManager")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl PartialEq for DeviceManager {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

/// kube's `IsExtendedResourceName`: domain-qualified, not `kubernetes.io/`, not a
/// quota name, and a qualified name once prefixed with `requests.`.
pub fn is_extended_resource_name(name: &str) -> bool {
    name.contains('/')
        && !name.contains("kubernetes.io/")
        && !name.starts_with("requests.")
        && rk8s_api::names::qualified_name(&format!("requests.{name}")).is_empty()
}

/// Kubelet's message for a device allocation that failed admission.
pub fn admission_message(cause: &str) -> String {
    format!("Allocate failed due to {cause}, which is unexpected")
}

/// A gRPC failure as Go's gRPC prints it.
fn rpc_error(status: &tonic::Status) -> String {
    format!(
        "rpc error: code = {:?} desc = {}",
        status.code(),
        status.message()
    )
}

async fn call<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(rpc_error(&status)),
        Err(_) => Err(format!(
            "rpc error: code = DeadlineExceeded desc = {what}: no answer within {}s",
            CALL_TIMEOUT.as_secs()
        )),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The device-plugin resources `container` asks for, and how many of each (its
/// limits: an extended resource's request equals its limit).
fn asked(container: &Container) -> Vec<(String, usize)> {
    let limits = container.resources.as_ref().and_then(|r| r.limits.as_ref());
    limits
        .into_iter()
        .flatten()
        .filter_map(|(name, q)| {
            let value = rk8s_api::quantity::Quantity::try_from(q).ok()?.value();
            Some((name.clone(), usize::try_from(value).unwrap_or(0)))
        })
        .collect()
}

impl DeviceManager {
    /// Starts serving `Registration` on `dir/kubelet.sock` (the directory made,
    /// its stale sockets removed). The checkpoint's allocations are kept for the pods
    /// in `running` (the pods the runtime holds); the others' are freed.
    pub async fn start(dir: &Path, running: &BTreeSet<String>) -> Result<Arc<Self>, String> {
        use std::os::unix::fs::PermissionsExt;
        let io = |e: std::io::Error| format!("{}: {e}", dir.display());
        // Only a directory made here is given the mode; one that is there already
        // is swept only when it is a device-plugin directory.
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(io)?;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750));
        }
        let stale = stale_sockets(dir)?;
        let read = checkpoint::read(dir);
        let checkpoint_found = !matches!(read, Ok(None));
        let mut devices = match read.and_then(|c| {
            c.map(|c| checkpoint::restore(&c, Instant::now()))
                .transpose()
        }) {
            Ok(devices) => devices.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(
                    "continuing after failing to read the device checkpoint ({e}): device allocations may not be up to date"
                );
                Devices::default()
            }
        };
        devices.pods.retain(|uid, _| running.contains(uid));
        for socket in stale {
            match std::fs::remove_file(&socket) {
                Ok(()) => tracing::info!(socket = %socket.display(), "removed a stale socket"),
                Err(e) => tracing::warn!("failed to remove {}: {e}", socket.display()),
            }
        }
        let socket = dir.join(v1beta1::KUBELET_SOCKET);
        let listener = tokio::net::UnixListener::bind(&socket)
            .map_err(|e| format!("failed to listen to socket {}: {e}", socket.display()))?;
        let manager = Arc::new(Self {
            dir: dir.to_path_buf(),
            state: Mutex::new(devices),
            clients: Mutex::default(),
            removed: Mutex::default(),
            admission: tokio::sync::Mutex::new(()),
            changed: tokio::sync::Notify::new(),
            checkpoint_lock: Mutex::new(None),
            known: Mutex::new(None),
            runtime: Mutex::new(None),
            checkpoint_found,
        });
        manager.write_checkpoint();
        let service = RegistrationServer::new(Registrar(Arc::downgrade(&manager)));
        tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .timeout(CALL_TIMEOUT)
                .concurrency_limit_per_connection(16)
                .add_service(service)
                .serve_with_incoming(rk8s_deviceplugin::unix::incoming(listener))
                .await;
            if let Err(e) = served {
                tracing::error!("the device plugin registration server stopped: {e}");
            }
        });
        tracing::info!(socket = %socket.display(), "serving device plugin registration");
        Ok(manager)
    }

    /// Whether the Node's extended resources are zeroed at registration (kubelet's
    /// `ShouldResetExtendedResourceCapacity`: "absence of the checkpoint file
    /// strongly indicates the node has been recreated").
    pub fn should_reset_extended_resources(&self) -> bool {
        !self.checkpoint_found
    }

    /// The directory of the sockets and the checkpoint.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Waits until the capacity may have changed.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The extended resources to report now; removed ones are reported with 0
    /// (kubelet keeps them in the Node so that they read as a device plugin's).
    pub fn capacity(&self) -> Capacity {
        let mut c = lock(&self.state).capacity(Instant::now());
        let mut removed = lock(&self.removed);
        if !c.removed.is_empty() {
            removed.extend(c.removed.iter().cloned());
            self.write_checkpoint();
        }
        removed.retain(|r| !c.capacity.contains_key(r));
        c.removed = removed.iter().cloned().collect();
        c
    }

    fn write_checkpoint(&self) {
        let mut last = lock(&self.checkpoint_lock);
        let checkpoint = checkpoint::of(&lock(&self.state));
        if last.as_ref() == Some(&checkpoint) {
            return;
        }
        match checkpoint::write(&self.dir, &checkpoint) {
            Ok(()) => *last = Some(checkpoint),
            Err(e) => tracing::warn!("{e}"),
        }
    }

    /// The runtime whose pods' devices stay allocated while it holds them (their
    /// containers may still run).
    pub fn use_runtime(&self, runtime: Weak<PodRuntime>) {
        *lock(&self.runtime) = Some(runtime);
    }

    /// The pods of the node's API view now (`None`: not known, as before the first
    /// list).
    pub fn pods_known(&self, known: Option<KnownPods>) {
        *lock(&self.known) = known;
    }

    /// The pods whose devices stay allocated, `also` among them (`None`: not known).
    fn active(&self, also: &str) -> Option<BTreeSet<String>> {
        let known = lock(&self.known).clone()?;
        let runtime = lock(&self.runtime).as_ref().and_then(Weak::upgrade);
        let on_node: BTreeSet<String> = match runtime.map(|r| r.pods()) {
            Some(Ok(records)) => records.into_iter().map(|r| r.uid).collect(),
            Some(Err(e)) => {
                tracing::warn!(
                    "not freeing devices of inactive pods: reading the node's pods: {e}"
                );
                return None;
            }
            None => BTreeSet::new(),
        };
        let mut active = state::active_pods(&known, &on_node);
        active.insert(also.to_string());
        Some(active)
    }

    /// Frees the devices of every pod no longer active, before an allocation
    /// (kubelet's `UpdateAllocatedDevices`); `uid` is kept, it is being allocated.
    fn update_allocated(&self, uid: &str) {
        let Some(active) = self.active(uid) else {
            return;
        };
        let freed = lock(&self.state).retain_active(&active);
        if !freed.is_empty() {
            tracing::info!(pods = ?freed, "devices of inactive pods freed");
            self.write_checkpoint();
        }
    }

    /// Whether a container of `spec` asks for a device-plugin resource.
    fn asks_devices(&self, spec: &k8s_openapi::api::core::v1::PodSpec) -> bool {
        let state = lock(&self.state);
        spec.init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
            .flat_map(asked)
            .any(|(resource, _)| state.is_device_resource(&resource))
    }

    /// Admits `pod`: its containers (init containers first) get the devices they ask
    /// for. `Err`: kubelet's admission message ([`admission_message`]).
    pub async fn admit(&self, pod: &Pod) -> Result<(), String> {
        let Some(spec) = &pod.spec else {
            return Ok(());
        };
        // A pod asking for no device never waits for another's plugin calls.
        if !self.asks_devices(spec) {
            return Ok(());
        }
        let _one = self.admission.lock().await;
        let mut reusable: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        self.update_allocated(uid);
        let mut changed = false;
        for init in spec.init_containers.iter().flatten() {
            changed |= self
                .allocate_container(uid, init, &reusable)
                .await
                .map_err(|e| admission_message(&e))?;
            let restartable = init.restart_policy.as_deref() == Some("Always");
            self.account_reuse(uid, &init.name, &mut reusable, !restartable);
        }
        for container in &spec.containers {
            changed |= self
                .allocate_container(uid, container, &reusable)
                .await
                .map_err(|e| admission_message(&e))?;
            self.account_reuse(uid, &container.name, &mut reusable, false);
        }
        if changed {
            self.write_checkpoint();
        }
        Ok(())
    }

    /// After container `name` got its devices: an init container's may be used again
    /// by the next containers (`add`), an app container's not.
    fn account_reuse(
        &self,
        uid: &str,
        name: &str,
        reusable: &mut BTreeMap<String, BTreeSet<String>>,
        add: bool,
    ) {
        lock(&self.state).account_reuse((uid, name), reusable, add);
    }

    /// Gives `container` of pod `uid` the devices it asks for and has not got
    /// (kubelet's `allocateContainerResources`); whether it got any.
    async fn allocate_container(
        &self,
        uid: &str,
        container: &Container,
        reusable: &BTreeMap<String, BTreeSet<String>>,
    ) -> Result<bool, String> {
        let empty = BTreeSet::new();
        let mut got = false;
        for (resource, required) in asked(container) {
            let (need, endpoint) = {
                let state = lock(&self.state);
                if !state.is_device_resource(&resource) {
                    continue;
                }
                let reuse = reusable.get(&resource).unwrap_or(&empty);
                let need = state.need((uid, &container.name), &resource, required, reuse)?;
                (need, state.endpoints.get(&resource).cloned())
            };
            let Need::Devices {
                needed,
                available,
                reusable,
            } = need
            else {
                continue;
            };
            let Some(endpoint) = endpoint else {
                return Err(format!("unknown Device Plugin {resource}"));
            };
            let client = lock(&self.clients)
                .get(&resource)
                .filter(|(g, _)| *g == endpoint.generation && endpoint.stopped_at.is_none())
                .map(|(_, c)| c.clone());
            let Some(mut client) = client else {
                return Err(format!("endpoint {resource} has been stopped"));
            };
            let options = endpoint.options.unwrap_or_default();
            // Asked only when there is a choice (kubelet: `needed < aligned.Len()`).
            let preferred = if options.get_preferred_allocation_available
                && available.len() > needed - reusable.len()
            {
                let request = PreferredAllocationRequest {
                    container_requests: vec![ContainerPreferredAllocationRequest {
                        available_device_ids: available.union(&reusable).cloned().collect(),
                        must_include_device_ids: reusable.iter().cloned().collect(),
                        allocation_size: i32::try_from(required).unwrap_or(i32::MAX),
                    }],
                };
                let answer = call(
                    "GetPreferredAllocation",
                    client.get_preferred_allocation(request),
                )
                .await
                .map_err(|e| {
                    format!("device plugin GetPreferredAllocation rpc failed with err: {e}")
                })?;
                answer
                    .container_responses
                    .into_iter()
                    .next()
                    .map(|r| r.device_ids)
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            let chosen = state::choose(needed, &reusable, &available, &preferred);
            if chosen.len() < needed {
                return Err(format!(
                    "unexpectedly allocated less resources than required. Requested: {required}, Got: {}",
                    required - (needed - chosen.len())
                ));
            }
            let request = AllocateRequest {
                container_requests: vec![ContainerAllocateRequest {
                    devices_ids: chosen.iter().cloned().collect(),
                }],
            };
            let response = call("Allocate", client.allocate(request)).await?;
            let Some(first) = response.container_responses.first().cloned() else {
                return Err(format!(
                    "no containers return in allocation response {response:?}"
                ));
            };
            lock(&self.state).insert((uid, &container.name), &resource, chosen, first);
            got = true;
        }
        Ok(got)
    }

    /// Frees the devices of pod `uid` (it ended or went).
    pub fn free(&self, uid: &str) {
        let freed = lock(&self.state).free(uid);
        if freed {
            tracing::info!(pod = %uid, "devices freed");
            self.write_checkpoint();
        }
    }

    /// The devices container `name` of `pod` starts with (kubelet's
    /// `GetDeviceRunContainerOptions`): `PreStartContainer` first where the plugin
    /// wants it, the container allocated again if it holds nothing (an agent
    /// restarted in between).
    async fn run_options(&self, pod: &Pod, name: &str) -> Result<ContainerDevices, String> {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let container = spec.and_then(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(&s.containers)
                .find(|c| c.name == name)
        });
        let Some(container) = container else {
            return Ok(ContainerDevices::default());
        };
        let mut reallocate = false;
        for (resource, required) in asked(container) {
            if required == 0 || !lock(&self.state).is_device_resource(&resource) {
                continue;
            }
            self.pre_start(uid, name, &resource).await?;
            let state = lock(&self.state);
            if state.container_devices(uid, name, &resource).is_none() {
                reallocate = true;
            }
        }
        if reallocate {
            let _one = self.admission.lock().await;
            // Kubelet's "pod deleted from activePods, skip to reAllocate".
            if self.active("").is_some_and(|a| !a.contains(uid)) {
                tracing::info!(pod = %uid, container = %name, "not allocating devices again: the pod is not active");
                return Ok(ContainerDevices::default());
            }
            tracing::info!(pod = %uid, container = %name, "allocating devices again");
            self.update_allocated(uid);
            let reusable = match spec {
                Some(spec) => lock(&self.state).reusable_before(uid, spec, name),
                None => BTreeMap::new(),
            };
            if self.allocate_container(uid, container, &reusable).await? {
                self.write_checkpoint();
            }
        }
        let options = lock(&self.state).run_options(uid, name);
        Ok(options.map(to_runtime).unwrap_or_default())
    }

    /// Calls `PreStartContainer` for the devices of `resource` container `name` of pod
    /// `uid` holds, if its plugin asked for it.
    async fn pre_start(&self, uid: &str, name: &str, resource: &str) -> Result<(), String> {
        let (endpoint, held) = {
            let state = lock(&self.state);
            let Some(endpoint) = state.endpoints.get(resource).cloned() else {
                return Err(format!(
                    "endpoint not found in cache for a registered resource: {resource}"
                ));
            };
            let held = state
                .container_devices(uid, name, resource)
                .map(|a| a.ids.clone());
            (endpoint, held)
        };
        if !endpoint.options.is_some_and(|o| o.pre_start_required) {
            return Ok(());
        }
        let Some(held) = held else {
            return Err(format!(
                "no devices found allocated in local cache for pod {uid}, container {name}, resource {resource}"
            ));
        };
        let client = lock(&self.clients)
            .get(resource)
            .filter(|(g, _)| *g == endpoint.generation && endpoint.stopped_at.is_none())
            .map(|(_, c)| c.clone());
        let Some(mut client) = client else {
            return Err(format!(
                "device plugin PreStartContainer rpc failed with err: endpoint {resource} has been stopped"
            ));
        };
        let request = PreStartContainerRequest {
            devices_ids: held.into_iter().collect(),
        };
        let timeout = Duration::from_secs(v1beta1::PRE_START_CONTAINER_TIMEOUT_SECS);
        match tokio::time::timeout(timeout, client.pre_start_container(request)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(format!(
                "device plugin PreStartContainer rpc failed with err: {}",
                rpc_error(&status)
            )),
            Err(_) => Err(
                "device plugin PreStartContainer rpc failed with err: context deadline exceeded"
                    .to_string(),
            ),
        }
    }

    /// A plugin registered: dials it, reads its options and follows its devices.
    async fn connect(self: &Arc<Self>, request: RegisterRequest) -> Result<(), String> {
        let resource = request.resource_name;
        let socket = self.dir.join(&request.endpoint);
        let channel = rk8s_deviceplugin::unix::connect(&socket)
            .await
            .map_err(|e| format!("failed to dial device plugin: {e}"))?;
        let mut client = DevicePluginClient::new(channel);
        let options: DevicePluginOptions = call(
            "GetDevicePluginOptions",
            client.get_device_plugin_options(Empty {}),
        )
        .await
        .map_err(|e| format!("failed to get device plugin options: {e}"))?;
        let generation = lock(&self.state).connected(&resource, options);
        lock(&self.clients).insert(resource.clone(), (generation, client.clone()));
        lock(&self.removed).remove(&resource);
        tracing::info!(%resource, socket = %socket.display(), "device plugin connected");
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.follow(&resource, generation, &mut client, &socket).await {
                tracing::warn!(%resource, "ListAndWatch ended unexpectedly for device plugin: {e}");
            }
            let now = Instant::now();
            if lock(&me.state).disconnected(&resource, generation, now) {
                lock(&me.clients).remove(&resource);
                tracing::info!(%resource, "device plugin disconnected: its devices are unhealthy");
                me.write_checkpoint();
                me.changed.notify_one();
            }
        });
        self.changed.notify_one();
        Ok(())
    }

    /// Takes the plugin's device lists until its stream ends, its socket is removed
    /// or a newer registration replaces it.
    async fn follow(
        &self,
        resource: &str,
        generation: u64,
        client: &mut DevicePluginClient<Channel>,
        socket: &Path,
    ) -> Result<(), String> {
        let mut stream = client
            .list_and_watch(Empty {})
            .await
            .map_err(|s| rpc_error(&s))?
            .into_inner();
        let mut check = tokio::time::interval(SOCKET_CHECK);
        loop {
            tokio::select! {
                message = stream.message() => match message {
                    Ok(Some(list)) => {
                        let count = list.devices.len();
                        let counts = |state: &Devices| {
                            let len = |m: &BTreeMap<String, BTreeSet<String>>| {
                                m.get(resource).map_or(0, BTreeSet::len)
                            };
                            (len(&state.healthy), len(&state.unhealthy))
                        };
                        let (before, after) = {
                            let mut state = lock(&self.state);
                            let before = counts(&state);
                            if !state.listed(resource, generation, list.devices) {
                                return Ok(());
                            }
                            (before, counts(&state))
                        };
                        tracing::info!(%resource, devices = count, "state pushed for device plugin");
                        // Written and told only when it changed what they hold.
                        self.write_checkpoint();
                        if before != after {
                            self.changed.notify_one();
                        }
                    }
                    Ok(None) => return Err("the stream ended".to_string()),
                    Err(status) => return Err(rpc_error(&status)),
                },
                _ = check.tick() => {
                    if !socket.exists() {
                        return Err(format!("its socket {} was removed", socket.display()));
                    }
                    let current = lock(&self.state).endpoints.get(resource).map(|e| e.generation);
                    if current != Some(generation) {
                        return Ok(());
                    }
                }
            }
        }
    }
}

impl DeviceProvider for DeviceManager {
    fn container_devices<'a>(&'a self, pod: &'a Pod, container: &'a str) -> Answer<'a> {
        Box::pin(self.run_options(pod, container))
    }
}

/// A plugin's answer as the runtime's container settings.
fn to_runtime(r: ContainerAllocateResponse) -> ContainerDevices {
    if !r.cdi_devices.is_empty() {
        tracing::warn!(
            "CDI devices are not supported: {:?} left out",
            r.cdi_devices.iter().map(|d| &d.name).collect::<Vec<_>>()
        );
    }
    ContainerDevices {
        env: r.envs.into_iter().collect(),
        mounts: r
            .mounts
            .into_iter()
            .map(|m| BindMount {
                source: m.host_path.into(),
                destination: m.container_path,
                readonly: m.read_only,
            })
            .collect(),
        devices: r
            .devices
            .into_iter()
            .map(|d| DeviceNode {
                path: d.container_path,
                host_path: d.host_path.into(),
                permissions: d.permissions,
            })
            .collect(),
        annotations: r.annotations,
    }
}

/// The sockets in `dir` to remove at the start (kubelet's `CleanupPluginDirectory`:
/// other files and directories stay, the checkpoint among them). A directory with
/// sockets but neither `kubelet.sock` nor the checkpoint is not a device-plugin
/// directory (`--device-plugin-dir /run` by mistake): it is refused, and none of its
/// sockets removed.
pub fn stale_sockets(dir: &Path) -> Result<Vec<PathBuf>, String> {
    use std::os::unix::fs::FileTypeExt;
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let sockets: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_socket()))
        .map(|e| e.path())
        .collect();
    let ours = dir.join(v1beta1::KUBELET_SOCKET).exists() || dir.join(checkpoint::FILE).exists();
    if !ours && !sockets.is_empty() {
        let names: Vec<String> = sockets
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        return Err(format!(
            "{} is not a device plugin directory: it holds sockets ({}) but neither {} nor {}",
            dir.display(),
            names.join(", "),
            v1beta1::KUBELET_SOCKET,
            checkpoint::FILE
        ));
    }
    Ok(sockets)
}

/// The `Registration` service (kubelet's device plugin registration server).
struct Registrar(std::sync::Weak<DeviceManager>);

/// Why a registration is refused, in kubelet's words (`None`: it is not).
pub fn refusal(request: &RegisterRequest) -> Option<String> {
    if request.version != v1beta1::VERSION {
        return Some(format!(
            "requested API version {:?} is not supported by kubelet. Supported version is [{:?}]",
            request.version,
            v1beta1::VERSION
        ));
    }
    if !is_extended_resource_name(&request.resource_name) {
        return Some(format!(
            "the ResourceName {:?} is invalid",
            request.resource_name
        ));
    }
    // The socket must be in the directory (kubelet joins the name to it unchecked).
    let endpoint = Path::new(&request.endpoint);
    let plain = endpoint.components().count() == 1
        && matches!(
            endpoint.components().next(),
            Some(std::path::Component::Normal(_))
        );
    if !plain {
        return Some(format!(
            "the endpoint {:?} is not a socket name in the device plugin directory",
            request.endpoint
        ));
    }
    None
}

#[tonic::async_trait]
impl Registration for Registrar {
    async fn register(
        &self,
        request: tonic::Request<RegisterRequest>,
    ) -> Result<tonic::Response<Empty>, tonic::Status> {
        let request = request.into_inner();
        tracing::info!(resource = %request.resource_name, "got registration request from device plugin");
        if let Some(why) = refusal(&request) {
            tracing::warn!(resource = %request.resource_name, "bad registration request from device plugin: {why}");
            return Err(tonic::Status::unknown(why));
        }
        let Some(manager) = self.0.upgrade() else {
            return Err(tonic::Status::unavailable("the device manager stopped"));
        };
        manager.connect(request).await.map_err(|e| {
            tracing::warn!("error connecting to device plugin client: {e}");
            tonic::Status::unknown(e)
        })?;
        Ok(tonic::Response::new(Empty {}))
    }
}

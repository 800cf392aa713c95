//! PodActor: one per pod bound to this node. It drives the runtime's pod state
//! machine (`run_pod`, then `sync_pod` every second), writes the pod's status through
//! the status subresource when it changed, and carries out graceful deletion: a
//! deletionTimestamp stops the containers within the grace period, then the node
//! confirms the deletion (grace 0). As kubelet's eviction manager, every
//! [`EVICTION_PERIOD`] it evicts an active (not ended, not critical) pod whose disk
//! emptyDir holds more than its `sizeLimit`: the eviction remembered first, then
//! containers killed, phase Failed, reason `Evicted`, and nothing of it runs again
//! (a write that fails is tried again; an actor restarted before the status is
//! written measures the pod again).
//! A new pod asking for device-plugin resources is
//! admitted first: without the devices it fails as kubelet fails it
//! (`UnexpectedAdmissionError`) and never runs; the devices are freed when it ends,
//! and the device manager frees those of any pod no longer active.
//!
//! It holds no state the runtime does not also have on disk: killed — in the middle
//! of a runtime call or between two writes too — and restarted from nothing (it is
//! supervised), it asks the NodeActor for its pod and runs `run_pod` again, which
//! finds the pod running.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use rk8s_runtime::pod::{PodRuntime, has_sized_empty_dir};
use rk8s_supervision::Handle;

use super::devices::{DeviceManager, UNEXPECTED_ADMISSION_ERROR};
use super::{inputs, metrics, pod_events};

/// How often a pod is synced.
pub const SYNC_PERIOD: Duration = Duration::from_secs(1);

/// How often a pod's emptyDir usage is held to its `sizeLimit` (kubelet's
/// `evictionMonitoringPeriod`).
pub const EVICTION_PERIOD: Duration = Duration::from_secs(10);

/// A newer version of the pod, from the watch.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Update(pub Pod);

/// The pod is gone from the API: stop its containers and end.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Gone;

/// The actor of one pod.
pub struct PodActor {
    pod: Pod,
    runtime: Arc<PodRuntime>,
    client: kube::Client,
    node_ip: Option<String>,
    busy: bool,
    started: bool,
    last_status: Option<PodStatus>,
    finished: bool,
    me: Handle<Self>,
    /// When this agent first saw the pod, until it first runs (the start latency).
    start_pending: Option<std::time::Instant>,
    /// When the pod's ConfigMaps and Secrets were last read.
    inputs_read: Option<std::time::Instant>,
    /// How often they are read again at most.
    inputs_refresh: Duration,
    /// Where the pod waits for its NetworkPolicy isolation before its first
    /// container starts.
    netpol: Option<super::netpol::Gate>,
    /// Whether the pod was evicted (its status says so): it does not run again.
    evicted: bool,
    /// Why the pod is being evicted, from the moment it was decided until its status
    /// says so: nothing of it starts again meanwhile (kubelet's pod worker marks it
    /// terminating before it kills anything).
    evicting: Option<String>,
    /// Whether what was left of the evicted pod was removed.
    evicted_removed: bool,
    /// When its emptyDirs' usage was last read.
    usage_read: Option<std::time::Instant>,
    /// Where its device-plugin resources are allocated and freed.
    devices: Option<Arc<DeviceManager>>,
}

impl PodActor {
    /// The actor for `pod`; `me` is its handle.
    pub fn new(
        pod: Pod,
        runtime: Arc<PodRuntime>,
        client: kube::Client,
        node_ip: Option<String>,
        me: Handle<Self>,
    ) -> Self {
        Self {
            me,
            pod,
            runtime,
            client,
            node_ip,
            busy: false,
            started: false,
            last_status: None,
            finished: false,
            start_pending: None,
            inputs_read: None,
            inputs_refresh: inputs::REFRESH,
            netpol: None,
            evicted: false,
            evicting: None,
            evicted_removed: false,
            usage_read: None,
            devices: None,
        }
        .pending_start()
    }

    /// Waits at `gate` for the pod's NetworkPolicy isolation before its first
    /// container starts (`None`: no NetworkPolicy on this node).
    pub fn with_netpol(mut self, gate: Option<super::netpol::Gate>) -> Self {
        self.netpol = gate;
        self
    }

    /// Admits the pod's device-plugin resources at `devices` before it first runs
    /// (`None`: the node serves no device plugins).
    pub fn with_devices(mut self, devices: Option<Arc<DeviceManager>>) -> Self {
        self.devices = devices;
        self
    }

    /// Reads the pod's ConfigMaps and Secrets again at least every `refresh`.
    pub fn reading_inputs_every(mut self, refresh: Duration) -> Self {
        self.inputs_refresh = refresh;
        self
    }

    /// Times the start of a pod that has not run yet (not one a restarted agent
    /// re-adopts).
    fn pending_start(mut self) -> Self {
        self.start_pending = start_pending(&self.pod);
        self.evicted = is_evicted(&self.pod);
        self
    }

    fn uid(&self) -> String {
        self.pod.metadata.uid.clone().unwrap_or_default()
    }

    fn key(&self) -> String {
        format!(
            "{}/{}",
            self.pod.metadata.namespace.as_deref().unwrap_or("default"),
            self.pod.metadata.name.as_deref().unwrap_or_default()
        )
    }

    fn api(&self) -> Api<Pod> {
        Api::namespaced(
            self.client.clone(),
            self.pod.metadata.namespace.as_deref().unwrap_or("default"),
        )
    }

    /// An evicted pod's step: what is left of it goes, once (an agent stopped between
    /// writing its status and removing it finds it here), and nothing runs again.
    fn remove_evicted(&mut self, ctx: &mut Context<Self>) {
        if self.evicted_removed {
            return;
        }
        self.busy = true;
        let (runtime, uid) = (self.runtime.clone(), self.uid());
        let (gate, devices) = (self.netpol.clone(), self.devices.clone());
        let fut = async move { remove(&runtime, &uid, gate.as_ref(), devices.as_deref()).await };
        ctx.spawn(
            self.me
                .reconcile(fut)
                .into_actor(self)
                .map(|result, act, _| {
                    act.busy = false;
                    match result {
                        Ok(()) => act.evicted_removed = true,
                        Err(e) => tracing::warn!(pod = %act.key(), "removing an evicted pod: {e}"),
                    }
                }),
        );
    }

    /// An eviction's step (kubelet's `evictPod`): the containers killed at once, the
    /// status written, what is left of the pod removed and its devices freed; tried
    /// again at the next step until all is done, the pod never synced meanwhile.
    fn evict(&mut self, ctx: &mut Context<Self>, message: String) {
        self.busy = true;
        let (runtime, uid, api, key) = (self.runtime.clone(), self.uid(), self.api(), self.key());
        let (gate, devices) = (self.netpol.clone(), self.devices.clone());
        let node_ip = self.node_ip.clone();
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        let fut = async move {
            let mut status = runtime
                .evict(&uid, &message)
                .await
                .map_err(|e| e.to_string())?;
            on_node(&mut status, node_ip);
            write_status(&api, &name, &key, &status).await?;
            remove(&runtime, &uid, gate.as_ref(), devices.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(status)
        };
        ctx.spawn(
            self.me
                .reconcile(fut)
                .into_actor(self)
                .map(|result, act, _| {
                    act.busy = false;
                    match result {
                        Ok(status) => {
                            act.evicting = None;
                            act.evicted = true;
                            act.evicted_removed = true;
                            act.last_status = Some(status);
                        }
                        Err(e) => tracing::warn!(pod = %act.key(), "evicting: {e}"),
                    }
                }),
        );
    }

    /// One step: start, sync and report, or stop when deleted.
    fn step(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.finished {
            return;
        }
        let deleting = self.pod.metadata.deletion_timestamp.is_some();
        match next_step(deleting, self.evicting.is_some(), self.evicted) {
            Next::RemoveEvicted => return self.remove_evicted(ctx),
            Next::Evict => {
                let message = self.evicting.clone().unwrap_or_default();
                return self.evict(ctx, message);
            }
            Next::Sync => {}
        }
        self.busy = true;
        let runtime = self.runtime.clone();
        let pod = self.pod.clone();
        let uid = self.uid();
        let api = self.api();
        let key = self.key();
        let started = self.started;
        let last = self.last_status.clone();
        let node_ip = self.node_ip.clone();
        let read_usage = should_measure(
            deleting,
            self.last_status.as_ref().or(pod.status.as_ref()),
            &pod,
        ) && self
            .usage_read
            .is_none_or(|t| t.elapsed() >= EVICTION_PERIOD);
        if read_usage {
            self.usage_read = Some(std::time::Instant::now());
        }
        // What the pod had: its tokens are reused while fresh, and one due for
        // renewal makes a read due (a lock and a look at a few timestamps).
        let held = self.runtime.inputs(&uid);
        let read_inputs = !deleting
            && inputs::due(
                &pod,
                started,
                last.as_ref(),
                self.inputs_read,
                self.inputs_refresh,
                held.tokens_due(jiff::Timestamp::now()),
            );
        if read_inputs {
            self.inputs_read = Some(std::time::Instant::now());
        }
        let client = self.client.clone();
        let gate = self.netpol.clone();
        let devices = self.devices.clone();
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let fut = async move {
            // What this agent last reported, else what the API holds (a restarted
            // agent does not report its running containers as new).
            let before = last.clone().or_else(|| pod.status.clone());
            if deleting {
                let stopping = pod_events::killing(before.as_ref());
                pod_events::record(&client, &node, &pod, stopping).await;
                let grace = pod
                    .metadata
                    .deletion_grace_period_seconds
                    .or(pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds))
                    .and_then(|s| u64::try_from(s).ok())
                    .unwrap_or(30);
                let began = std::time::Instant::now();
                runtime
                    .stop_pod(&uid, Duration::from_secs(grace))
                    .await
                    .map_err(|e| e.to_string())?;
                metrics::time_operation("stop_podsandbox", began.elapsed());
                // Containers are gone: confirm the deletion, for this pod only.
                let params = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: Some(uid.clone()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                let name = pod.metadata.name.clone().unwrap_or_default();
                let deleted = api.delete(&name, &params).await;
                rk8s_supervision::wrote();
                match deleted {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                    Err(e) => return Err(format!("confirming the deletion of {key}: {e}")),
                }
                tracing::info!(pod = %key, "pod stopped and deleted");
                if let Some(gate) = &gate {
                    gate.forget(&uid).await;
                }
                if let Some(devices) = &devices {
                    devices.free(&uid);
                }
                return Ok(Stepped::Deleted);
            }
            // A pod that ended with nothing of it on this node (rejected at admission,
            // or gone before an agent restart) is not run again, as kubelet runs no
            // terminated pod.
            let record = if !started || terminal(before.as_ref()) {
                runtime.record(&uid).map_err(|e| e.to_string())?
            } else {
                None
            };
            if record.is_none() && terminal(before.as_ref()) {
                return Ok(Stepped::Synced(None));
            }
            // Kubelet's admission: a new pod gets its devices before anything of it
            // is made; a pod whose containers ran has them already.
            if let Some(devices) = &devices
                && !started
                && record.as_ref().is_none_or(|r| !containers_ran(r))
                && let Err(message) = devices.admit(&pod).await
            {
                devices.free(&uid);
                let status = rejected(&message);
                let name = pod.metadata.name.clone().unwrap_or_default();
                write_status(&api, &name, &key, &status).await?;
                tracing::warn!(pod = %key, "pod rejected: {message}");
                let warning = vec![("Warning", UNEXPECTED_ADMISSION_ERROR, message)];
                pod_events::record(&client, &node, &pod, warning).await;
                return Ok(Stepped::Synced(Some(Box::new(status))));
            }
            if read_inputs {
                runtime.set_inputs(&uid, inputs::read_all(&client, &pod, &held).await);
            }
            if !started {
                let began = std::time::Instant::now();
                let record = runtime.run_pod(&pod).await.map_err(|e| e.to_string())?;
                metrics::time_operation("run_podsandbox", began.elapsed());
                // Isolated before any container runs (kubernetes.io, "Network
                // Policies": "from the very first instant"); a pod whose containers
                // already ran (a restarted agent re-adopting it) is not held back.
                if let (Some(gate), Some(a)) = (&gate, &record.attachment)
                    && !containers_ran(&record)
                    && let Err(e) = gate.admit(&pod, a.address).await
                {
                    let warning = vec![("Warning", "NetworkPolicyNotProgrammed", e.clone())];
                    pod_events::record(&client, &node, &pod, warning).await;
                    return Err(e);
                }
            }
            // `kubectl debug` adds ephemeral containers to the running pod (kubelet
            // starts none in a pod that ended).
            let ephemeral = ephemeral_containers(&pod)
                .filter(|e| !e.is_empty() && !terminal(before.as_ref()))
                .map(Vec::as_slice);
            let began = std::time::Instant::now();
            let mut status = runtime
                .sync_pod_with(&uid, rk8s_runtime::container::now_ns(), ephemeral)
                .await
                .map_err(|e| e.to_string())?;
            metrics::time_operation("sync_pod", began.elapsed());
            on_node(&mut status, node_ip.clone());
            let name = pod.metadata.name.clone().unwrap_or_default();
            // A pod that ended is not evicted (kubelet measures active pods only).
            let over = match read_usage && !terminal(Some(&status)) {
                true => runtime.empty_dir_over_limit(&uid).await,
                false => Ok(None),
            };
            if let Some(message) = over.map_err(|e| e.to_string())? {
                if is_critical(&pod) {
                    tracing::warn!(pod = %key, "cannot evict a critical pod: {message}");
                } else {
                    // kubelet's evictPod: the event, then the eviction, remembered
                    // before anything is killed.
                    tracing::info!(pod = %key, "evicting: {message}");
                    let evicted = vec![("Warning", "Evicted", message.clone())];
                    pod_events::record(&client, &node, &pod, evicted).await;
                    return Ok(Stepped::Evict(message));
                }
            }
            // Kubelet frees the devices of pods that ended.
            if let Some(devices) = &devices
                && terminal(Some(&status))
            {
                devices.free(&uid);
            }
            if same_status(last.as_ref(), &status) {
                return Ok(Stepped::Synced(Some(Box::new(status))));
            }
            write_status(&api, &name, &key, &status).await?;
            let happened = pod_events::transitions(&pod, before.as_ref(), &status);
            pod_events::record(&client, &node, &pod, happened).await;
            Ok(Stepped::Synced(Some(Box::new(status))))
        };
        ctx.spawn(self.me.reconcile(fut).into_actor(self).map(
            |result: Result<Stepped, String>, act, ctx| {
                act.busy = false;
                match result {
                    Ok(Stepped::Deleted) => {
                        act.finished = true;
                        ctx.stop();
                    }
                    Ok(Stepped::Evict(message)) => {
                        act.started = true;
                        act.evicting = Some(message);
                        act.step(ctx);
                    }
                    Ok(Stepped::Synced(status)) => {
                        act.started = true;
                        let running = status
                            .as_ref()
                            .and_then(|s| s.phase.as_deref())
                            .is_some_and(|p| p == "Running");
                        if running && let Some(seen) = act.start_pending.take() {
                            metrics::POD_START.observe(seen.elapsed().as_secs_f64());
                        }
                        act.evicted |= status.as_ref().is_some_and(|s| {
                            s.phase.as_deref() == Some("Failed")
                                && s.reason.as_deref() == Some("Evicted")
                        });
                        act.evicted_removed |= act.evicted;
                        if status.is_some() {
                            act.last_status = status.map(|s| *s);
                        }
                    }
                    Err(e) => tracing::warn!(pod = %act.key(), "{e}"),
                }
            },
        ));
    }
}

/// What a step did.
enum Stepped {
    /// The pod was stopped and its deletion confirmed.
    Deleted,
    /// The pod was synced (its status, if any).
    Synced(Option<Box<PodStatus>>),
    /// The pod is to be evicted, for this reason.
    Evict(String),
}

/// What the next step does.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Start, sync and report the pod, or stop it when it is being deleted.
    Sync,
    /// Go on evicting it: nothing of it runs again.
    Evict,
    /// Remove what is left of an evicted pod.
    RemoveEvicted,
}

/// The next step of a pod being deleted (`deleting`), being evicted (`evicting`) or
/// evicted: a deletion stops everything anyway; a pod being or having been evicted
/// is never synced, so nothing of it starts again.
fn next_step(deleting: bool, evicting: bool, evicted: bool) -> Next {
    match (deleting, evicting, evicted) {
        (true, _, _) => Next::Sync,
        (false, _, true) => Next::RemoveEvicted,
        (false, true, false) => Next::Evict,
        (false, false, false) => Next::Sync,
    }
}

/// Whether a pod's emptyDir usage is held to its `sizeLimit` now: only while it is
/// active (kubelet's `localStorageEviction(activePods, ..)`): not being deleted, not
/// ended (`before` is its last status), and with a sized emptyDir.
fn should_measure(deleting: bool, before: Option<&PodStatus>, pod: &Pod) -> bool {
    !deleting && !terminal(before) && pod.spec.as_ref().is_some_and(has_sized_empty_dir)
}

/// Whether kubelet refuses to evict `pod` (`IsCriticalPod`): a mirror pod, or a
/// priority of at least `system-cluster-critical`'s (2 000 000 000).
fn is_critical(pod: &Pod) -> bool {
    let mirror = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    let priority = pod.spec.as_ref().and_then(|s| s.priority);
    mirror || priority.is_some_and(|p| p >= 2_000_000_000)
}

/// What is left of an evicted pod `uid` removed at once (no grace), then what it
/// held on the node let go: its NetworkPolicy gate and its devices.
async fn remove(
    runtime: &PodRuntime,
    uid: &str,
    gate: Option<&super::netpol::Gate>,
    devices: Option<&DeviceManager>,
) -> Result<(), rk8s_runtime::Error> {
    runtime.stop_pod(uid, Duration::ZERO).await?;
    if let Some(gate) = gate {
        gate.forget(uid).await;
    }
    if let Some(devices) = devices {
        devices.free(uid);
    }
    Ok(())
}

/// Whether kubelet evicted `pod` (its status says phase Failed, reason `Evicted`).
fn is_evicted(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.is_some_and(|s| {
        s.phase.as_deref() == Some("Failed") && s.reason.as_deref() == Some("Evicted")
    })
}

/// Completes a status from the runtime with what the node knows: its address and
/// that the pod was scheduled.
fn on_node(status: &mut PodStatus, node_ip: Option<String>) {
    status.host_ip = node_ip.clone();
    status.host_ips = node_ip.map(|ip| vec![k8s_openapi::api::core::v1::HostIP { ip }]);
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.push(k8s_openapi::api::core::v1::PodCondition {
            type_: "PodScheduled".into(),
            status: "True".into(),
            ..Default::default()
        });
    }
}

/// Whether a pod with `status` ended (`Succeeded` or `Failed`).
/// The pod's ephemeral containers (added while it runs, by `kubectl debug`).
fn ephemeral_containers(pod: &Pod) -> Option<&Vec<k8s_openapi::api::core::v1::EphemeralContainer>> {
    pod.spec
        .as_ref()
        .and_then(|s| s.ephemeral_containers.as_ref())
}

fn terminal(status: Option<&PodStatus>) -> bool {
    matches!(
        status.and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The status of a pod kubelet's admission rejected (`rejectPod`).
fn rejected(message: &str) -> PodStatus {
    PodStatus {
        phase: Some("Failed".into()),
        reason: Some(UNEXPECTED_ADMISSION_ERROR.into()),
        message: Some(format!("Pod was rejected: {message}")),
        ..Default::default()
    }
}

/// Whether a container of the pod was started already (its sandbox is not new).
fn containers_ran(record: &rk8s_runtime::pod::PodRecord) -> bool {
    record.containers.values().any(|c| c.id.is_some())
}

/// Now, if `pod` has not run yet (its start is timed from here).
fn start_pending(pod: &Pod) -> Option<std::time::Instant> {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, None | Some("Pending")).then(std::time::Instant::now)
}

/// Writes `status` as the pod's (a merge patch of its status subresource); `key`
/// names the pod in the error.
async fn write_status(
    api: &Api<Pod>,
    name: &str,
    key: &str,
    status: &PodStatus,
) -> Result<(), String> {
    let patch = serde_json::json!({ "status": status });
    let patched = api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    rk8s_supervision::wrote();
    patched
        .map(|_| ())
        .map_err(|e| format!("writing the status of {key}: {e}"))
}

/// Whether two statuses say the same, ignoring the times conditions were computed.
fn same_status(a: Option<&PodStatus>, b: &PodStatus) -> bool {
    let strip = |s: &PodStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_transition_time = None;
            c.last_probe_time = None;
        }
        s
    };
    a.is_some_and(|a| strip(a) == strip(b))
}

impl Actor for PodActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // A finished pod's actor waits, idle, for the node actor to let it go.
        if self.finished {
            return;
        }
        self.step(ctx);
        ctx.run_interval(SYNC_PERIOD, |act, ctx| act.step(ctx));
    }
}

impl Handler<Update> for PodActor {
    type Result = ();

    fn handle(&mut self, msg: Update, ctx: &mut Self::Context) {
        self.me.received();
        if msg.0.metadata.uid != self.pod.metadata.uid {
            // Another pod of the same name (the last one went while the node actor
            // was away; its containers go with the node's orphans): run it afresh.
            if let Some(gate) = self.netpol.clone() {
                let old = self.uid();
                ctx.spawn(async move { gate.forget(&old).await }.into_actor(self));
            }
            self.pod = msg.0;
            self.started = false;
            self.last_status = None;
            self.finished = false;
            self.start_pending = start_pending(&self.pod);
            self.evicted = is_evicted(&self.pod);
            self.evicting = None;
            self.evicted_removed = false;
            self.usage_read = None;
            self.step(ctx);
            return;
        }
        let deleting = msg.0.metadata.deletion_timestamp.is_some()
            && self.pod.metadata.deletion_timestamp.is_none();
        let debugged = ephemeral_containers(&msg.0) != ephemeral_containers(&self.pod);
        self.evicted |= is_evicted(&msg.0);
        self.pod = msg.0;
        if deleting || debugged {
            self.step(ctx);
        }
    }
}

impl Handler<Gone> for PodActor {
    type Result = ();

    fn handle(&mut self, _msg: Gone, ctx: &mut Self::Context) {
        self.me.received();
        self.finished = true;
        let runtime = self.runtime.clone();
        let uid = self.uid();
        let key = self.key();
        let gate = self.netpol.clone();
        let devices = self.devices.clone();
        ctx.wait(
            async move {
                // Its devices stay allocated while its containers may run (kubelet
                // keeps a pod active until it is known terminated); the device
                // manager frees them once the runtime holds the pod no more.
                match runtime.stop_pod(&uid, Duration::from_secs(0)).await {
                    Ok(()) => {
                        if let Some(devices) = devices {
                            devices.free(&uid);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(pod = %key, "stopping a pod deleted from the API: {e}")
                    }
                }
                if let Some(gate) = gate {
                    gate.forget(&uid).await;
                }
            }
            .into_actor(self)
            .map(|(), _act, ctx| ctx.stop()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "spec": spec}))
            .unwrap()
    }

    fn phase(phase: &str) -> PodStatus {
        PodStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }
    }

    #[test]
    fn only_active_pods_with_a_sized_empty_dir_are_measured() {
        let sized = pod(serde_json::json!({
            "containers": [{"name": "c", "image": "i"}],
            "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1Mi"}}]
        }));
        let unsized_ = pod(serde_json::json!({
            "containers": [{"name": "c", "image": "i"}],
            "volumes": [{"name": "v", "emptyDir": {}}]
        }));
        let cases = [
            (false, None, &sized, true),
            (false, Some(phase("Pending")), &sized, true),
            (false, Some(phase("Running")), &sized, true),
            // A pod that ended is never evicted: Succeeded stays Succeeded.
            (false, Some(phase("Succeeded")), &sized, false),
            (false, Some(phase("Failed")), &sized, false),
            (true, Some(phase("Running")), &sized, false),
            (false, Some(phase("Running")), &unsized_, false),
        ];
        for (deleting, before, pod, want) in cases {
            assert_eq!(
                should_measure(deleting, before.as_ref(), pod),
                want,
                "{deleting} {before:?}"
            );
        }
    }

    #[test]
    fn a_pod_being_evicted_is_never_synced_again() {
        // (deleting, evicting, evicted) -> next step.
        let cases = [
            ((false, false, false), Next::Sync),
            // Decided, not yet written (a status patch or a stop that failed): the
            // eviction is tried again; the killed containers do not start again.
            ((false, true, false), Next::Evict),
            ((false, false, true), Next::RemoveEvicted),
            ((false, true, true), Next::RemoveEvicted),
            // A deletion stops everything anyway.
            ((true, true, false), Next::Sync),
            ((true, false, true), Next::Sync),
        ];
        for ((deleting, evicting, evicted), want) in cases {
            assert_eq!(
                next_step(deleting, evicting, evicted),
                want,
                "{deleting} {evicting} {evicted}"
            );
        }
    }

    #[test]
    fn critical_pods_are_not_evicted() {
        let mut p = pod(serde_json::json!({"containers": [], "priority": 2_000_001_000}));
        assert!(is_critical(&p));
        if let Some(spec) = p.spec.as_mut() {
            spec.priority = Some(1000);
        }
        assert!(!is_critical(&p));
        p.metadata.annotations =
            Some([("kubernetes.io/config.mirror".to_string(), "h".to_string())].into());
        assert!(is_critical(&p));
    }
}

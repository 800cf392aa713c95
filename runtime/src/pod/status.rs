//! A pod's Kubernetes status from its containers' states: phase, conditions, pod IP
//! and each container's status (ephemeral ones too, which count for nothing else)
//! with waiting reasons, restarts and last state; and an evicted pod's.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState as K8sState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::PodRuntime;
use super::containers::Waiting;
use super::probes::Health;
use super::record::{ContainerRecord, PodRecord};
use crate::container::{ContainerState, Status};
use crate::error::{Error, Result};
use crate::restart::RestartPolicy;

impl PodRuntime {
    pub(super) async fn status(
        &self,
        record: &PodRecord,
        sandbox_ok: bool,
        inits_done: bool,
        waiting: &Waiting,
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
        // kubelet: never ready, sorted by name; waiting to be made as the pod's
        // other containers wait.
        let mut ephemeral_statuses = Vec::new();
        for ec in spec.ephemeral_containers.iter().flatten() {
            let c = rk8s_api::containers::ephemeral_as_container(ec);
            let entry = record.containers.get(&c.name);
            let state = self.current(record, &c.name).await?;
            let not_made = if inits.is_empty() {
                "ContainerCreating"
            } else {
                "PodInitializing"
            };
            let waiting = waiting.get(&c.name).cloned().or_else(|| {
                state
                    .is_none()
                    .then(|| (not_made.to_string(), String::new()))
            });
            let mut status = container_status(&c, entry, state.as_ref(), waiting.as_ref());
            status.ready = false;
            ephemeral_statuses.push(status);
        }
        ephemeral_statuses.sort_by(|a, b| a.name.cmp(&b.name));
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
            ephemeral_container_statuses: (!ephemeral_statuses.is_empty())
                .then_some(ephemeral_statuses),
            ..Default::default()
        })
    }
}

impl PodRuntime {
    /// Evicts pod `uid` as kubelet's eviction manager does: its containers are killed
    /// at once (grace 0) and its status says phase Failed, reason `Evicted` and
    /// `message`. The sandbox and the files stay for [`PodRuntime::stop_pod`].
    pub async fn evict(&self, uid: &str, message: &str) -> Result<PodStatus> {
        self.stop_containers(uid, std::time::Duration::ZERO).await?;
        let record = self.record(uid)?.ok_or_else(|| Error::ContainerNotFound {
            id: format!("pod {uid}"),
        })?;
        let (waiting, health) = (BTreeMap::new(), BTreeMap::new());
        let mut status = self.status(&record, false, true, &waiting, &health).await?;
        status.phase = Some("Failed".to_string());
        status.reason = Some("Evicted".to_string());
        status.message = Some(message.to_string());
        Ok(status)
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
                message: Some(message.clone()).filter(|m| !m.is_empty()),
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

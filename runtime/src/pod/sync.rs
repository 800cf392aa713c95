//! The level-triggered step of a pod: init containers in order, then the app
//! containers, restarted as the restart policy says, probed, and the pod's status;
//! ephemeral containers once each.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EphemeralContainer, PodStatus};

use super::PodRuntime;
use super::containers::Waiting;
use crate::container::Status;
use crate::error::{Error, Result};
use crate::restart::RestartPolicy;

impl PodRuntime {
    /// One level-triggered step for pod `uid` at time `now_ns`: start what should run,
    /// restart what stopped and may run again once its backoff has passed; returns the
    /// pod's status.
    pub async fn sync_pod(&self, uid: &str, now_ns: i64) -> Result<PodStatus> {
        self.sync_pod_with(uid, now_ns, None).await
    }

    /// [`sync_pod`](Self::sync_pod), with the pod's ephemeral containers as its spec in
    /// the API lists them now (`Some`: they are added to a running pod by `kubectl
    /// debug`; nothing else of a pod's spec changes on a node): the new ones start.
    pub async fn sync_pod_with(
        &self,
        uid: &str,
        now_ns: i64,
        ephemeral: Option<&[EphemeralContainer]>,
    ) -> Result<PodStatus> {
        let mut record = self.record(uid)?.ok_or_else(|| Error::ContainerNotFound {
            id: format!("pod {uid}"),
        })?;
        if let Some(wanted) = ephemeral {
            let spec = record.pod.spec.get_or_insert_with(Default::default);
            spec.ephemeral_containers = Some(wanted.to_vec());
        }
        let spec = record.pod.spec.clone().unwrap_or_default();
        let policy = RestartPolicy::from_k8s(spec.restart_policy.as_deref());
        let mut waiting: Waiting = BTreeMap::new();
        let pause = self.state_of(&record.pause_id).await?;
        let sandbox_ok = pause.as_ref().is_some_and(|p| p.status == Status::Running);
        let mut inits_done = true;
        if sandbox_ok {
            // Running containers see their volumes' new versions; a missing source
            // keeps new containers waiting (reported as they start).
            let _ = self.project_volumes(&record);
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
            // Ephemeral containers start once each, whatever the pod's state (kubelet's
            // computePodActions), until one is made: they are never restarted.
            for ec in spec.ephemeral_containers.iter().flatten() {
                if record
                    .containers
                    .get(&ec.name)
                    .is_none_or(|e| e.id.is_none())
                {
                    let c = rk8s_api::containers::ephemeral_as_container(ec);
                    record.containers.entry(ec.name.clone()).or_default();
                    self.start(&mut record, &c, &mut waiting).await?;
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
}

//! The level-triggered step of a pod: init containers in order, then the app
//! containers, restarted as the restart policy says, probed, and the pod's status;
//! ephemeral containers once each.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodStatus};

use super::PodRuntime;
use super::containers::Waiting;
use crate::container::Status;
use crate::error::{Error, Result};
use crate::restart::RestartPolicy;

impl PodRuntime {
    /// Takes the ephemeral containers of pod `uid` as its spec in the API now lists
    /// them (they are added to a running pod; nothing else of a pod's spec changes
    /// on a node). The next [`sync_pod`](Self::sync_pod) starts the new ones.
    pub fn set_ephemeral_containers(&self, uid: &str, pod: &Pod) -> Result<()> {
        let wanted = pod
            .spec
            .as_ref()
            .and_then(|s| s.ephemeral_containers.clone());
        let Some(mut record) = self.record(uid)? else {
            return Ok(());
        };
        let spec = record.pod.spec.get_or_insert_with(Default::default);
        if spec.ephemeral_containers == wanted || wanted.is_none() {
            return Ok(());
        }
        spec.ephemeral_containers = wanted;
        self.save(&record)
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

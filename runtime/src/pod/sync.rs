//! The level-triggered step of a pod: init containers in order, then the app
//! containers, restarted as the restart policy says, probed, and the pod's status.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodStatus;

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

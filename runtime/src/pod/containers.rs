//! The attempts of a pod's containers: create and start one from its image, restart
//! it after CrashLoopBackOff's delay, stop and remove it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Container;

use super::record::PodRecord;
use super::{PodRuntime, blocking};
use crate::container::{ContainerIo, ContainerState, CreateContainer, Engine, Status};
use crate::error::{Error, Result, io};
use crate::image::{Fetched, Image, PullPolicy};
use crate::restart;
use crate::rootfs::Rootfs;
use crate::spec::{self, ContainerConfig};

/// Why containers wait, by name: (reason, message) of their `waiting` state.
pub(super) type Waiting = BTreeMap<String, (String, String)>;

impl PodRuntime {
    /// `image`, pulled as `policy` says with the pull secrets of `pod` (the node's
    /// credentials alone without one).
    pub(super) async fn image(
        &self,
        pod: Option<&k8s_openapi::api::core::v1::Pod>,
        image: &str,
        policy: PullPolicy,
    ) -> Result<Image> {
        let options = match pod {
            Some(pod) => self.pull_options(pod),
            None => std::borrow::Cow::Borrowed(&self.config.pull),
        };
        self.images.ensure(image, policy, &options).await
    }

    pub(super) async fn create_and_start(
        &self,
        id: &str,
        image: &Image,
        mut config: ContainerConfig,
        engine: Engine,
        log_path: &Path,
        stdio: ContainerIo,
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
            io: stdio,
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

    pub(super) async fn remove_container(&self, id: &str) -> Result<()> {
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

    pub(super) async fn state_of(&self, id: &str) -> Result<Option<ContainerState>> {
        let runtime = self.runtime.clone();
        let id = id.to_string();
        blocking(move || match runtime.state(&id) {
            Ok(state) => Ok(Some(state)),
            Err(Error::ContainerNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }

    /// The state of container `name`'s current attempt (None before the first).
    pub(super) async fn current(
        &self,
        record: &PodRecord,
        name: &str,
    ) -> Result<Option<ContainerState>> {
        match record.containers.get(name).and_then(|c| c.id.clone()) {
            Some(id) => self.state_of(&id).await,
            None => Ok(None),
        }
    }

    pub(super) async fn restart(
        &self,
        record: &mut PodRecord,
        container: &Container,
        now_ns: i64,
        waiting: &mut Waiting,
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

    pub(super) async fn start(
        &self,
        record: &mut PodRecord,
        container: &Container,
        waiting: &mut Waiting,
    ) -> Result<()> {
        let attempt = record
            .containers
            .get(&container.name)
            .map_or(0, |c| c.restart_count);
        let id = format!("{}-{}-{attempt}", record.uid, container.name);
        let image_name = container.image.clone().unwrap_or_default();
        let policy = PullPolicy::from_k8s(container.image_pull_policy.as_deref(), &image_name);
        let options = self.pull_options(&record.pod);
        let now_ns = crate::container::now_ns();
        // Whether a pull was tried: every failure after it backs off (kubelet's
        // `backOff.Next` on any error of `pullImage`).
        let tried = std::cell::Cell::new(false);
        let pulling = || {
            // kubelet: no pull while the last failed one's back-off lasts.
            let waiting = self.pull_backoff.waiting(&record.uid, &image_name, now_ns);
            if let Some(last_error) = waiting {
                let image = image_name.clone();
                return Err(Error::PullBackOff { image, last_error });
            }
            let m = format!("Pulling image {image_name:?}");
            self.report(record, "Normal", "Pulling", m);
            tried.set(true);
            Ok(())
        };
        let fetched = self
            .images
            .ensure_fetched(&image_name, policy, &options, pulling)
            .await;
        let image = match fetched {
            Ok((image, fetched)) => {
                let message = match fetched {
                    Fetched::Present => {
                        format!("Container image {image_name:?} already present on machine")
                    }
                    Fetched::Pulled(took) => {
                        self.pull_backoff.succeeded(&record.uid, &image_name);
                        let secs = took.as_secs_f64();
                        format!(
                            "Successfully pulled image {image_name:?} in {secs:.3}s ({secs:.3}s including waiting). Image size: {} bytes.",
                            image.size
                        )
                    }
                };
                self.report(record, "Normal", "Pulled", message);
                image
            }
            Err(e) => {
                let reason = pull_failure_reason(&e, tried.get());
                if reason == "ErrImagePull" {
                    // Timed from the failure, not the start of the pull (kubelet's
                    // `backOff.Next(key, Clock.Now())` after the pull returned).
                    let why = format!("ErrImagePull: {e}");
                    let failed_ns = crate::container::now_ns();
                    self.pull_backoff
                        .failed(&record.uid, &image_name, failed_ns, why);
                }
                waiting.insert(container.name.clone(), (reason.to_string(), e.to_string()));
                return Ok(());
            }
        };
        // Set up again at every start, as kubelet's volume manager does: a memory
        // emptyDir whose tmpfs went (a reboot, an unmount) is a tmpfs again, not a
        // directory on the disk without a limit.
        let memory = super::volumes::memory_ceiling(&record.pod, self.config.allocatable.memory);
        let volumes = record.pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
        let made = super::volumes::create(
            &self.pod_dir(&record.uid),
            volumes.into_iter().flatten(),
            memory,
        );
        if let Err(e) = made {
            waiting.insert(
                container.name.clone(),
                ("ContainerCreating".to_string(), e.to_string()),
            );
            return Ok(());
        }
        if let Err(why) = self.project_volumes(record) {
            waiting.insert(
                container.name.clone(),
                ("ContainerCreating".to_string(), why),
            );
            return Ok(());
        }
        // Kubelet's GetDeviceRunContainerOptions, at every start of the container.
        let devices = match &self.devices {
            Some(provider) => provider
                .container_devices(&record.pod, &container.name)
                .await
                .map_err(Error::InvalidSpec),
            None => Ok(Default::default()),
        };
        let config = match devices
            .and_then(|devices| self.container_config(record, container, &image, devices))
        {
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
        // Kubernetes: stdinOnce means nothing without stdin, and a terminal is the
        // stdin's when there is one.
        let stdin = container.stdin.unwrap_or(false);
        let io = ContainerIo {
            stdin,
            stdin_once: stdin && container.stdin_once.unwrap_or(false),
            tty: container.tty.unwrap_or(false),
        };
        if let Err(e) = self
            .create_and_start(&id, &image, config, record.engine.clone(), &log, io)
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
    pub(super) async fn terminate(
        &self,
        record: &PodRecord,
        grace: Duration,
    ) -> Result<Vec<String>> {
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
}

/// The waiting reason of a container whose image could not be had: `tried` says
/// whether a pull was attempted (any failure after it is kubelet's `ErrImagePull`
/// and backs off, a full disk as much as a registry's refusal).
fn pull_failure_reason(e: &Error, tried: bool) -> &'static str {
    match e {
        Error::PullBackOff { .. } => "ImagePullBackOff",
        Error::ImageNeverPull { .. } => "ErrImageNeverPull",
        Error::Image { .. } => "ErrImagePull",
        _ if tried => "ErrImagePull",
        _ => "CreateContainerError",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_after_a_pull_was_tried_backs_off_and_never_pull_does_not() {
        let full = Error::Io {
            path: "/var/lib/rk8s/images/blobs".into(),
            source: std::io::Error::other("No space left on device"),
        };
        let refused = Error::Image {
            reference: "r/x".into(),
            message: "not found".into(),
        };
        let never = Error::ImageNeverPull { image: "x".into() };
        let backoff = Error::PullBackOff {
            image: "x".into(),
            last_error: "ErrImagePull: not found".into(),
        };
        assert_eq!(pull_failure_reason(&full, true), "ErrImagePull");
        assert_eq!(pull_failure_reason(&full, false), "CreateContainerError");
        assert_eq!(pull_failure_reason(&refused, true), "ErrImagePull");
        assert_eq!(pull_failure_reason(&never, false), "ErrImageNeverPull");
        assert_eq!(pull_failure_reason(&backoff, false), "ImagePullBackOff");
        assert_eq!(
            never.to_string(),
            "Container image \"x\" is not present with pull policy of Never"
        );
    }
}

//! Reaching into a pod's running containers: exec (with given stdio or on a new
//! terminal), attach to their main process, and their log files.

use std::os::fd::AsFd;
use std::path::PathBuf;

use super::{PodRuntime, blocking};
use crate::container::{AttachHandle, AttachStreams, ExecProcess, Status};
use crate::error::{Error, Result};
use crate::logs;

impl PodRuntime {
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

    /// Attaches to the main process of container `name` of pod `uid`: its output from
    /// now on and its stdin or terminal, as `streams` asks and the container has them
    /// (`kubectl attach`).
    pub async fn attach(
        &self,
        uid: &str,
        name: &str,
        streams: AttachStreams,
    ) -> Result<AttachHandle> {
        let id = self.container_id(uid, name)?;
        let runtime = self.runtime.clone();
        blocking(move || runtime.attach(&id, streams)).await
    }

    /// Whether the current attempt of container `name` of pod `uid` still runs.
    pub async fn is_running(&self, uid: &str, name: &str) -> Result<bool> {
        let id = self.container_id(uid, name)?;
        Ok(self
            .state_of(&id)
            .await?
            .is_some_and(|s| s.status == Status::Running))
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
            // kubelet's words (validateContainerLogStatus).
            let last = entry.last.as_ref().ok_or_else(|| {
                Error::InvalidSpec(format!(
                    "previous terminated container {name:?} in pod {:?} not found",
                    record.pod.metadata.name.as_deref().unwrap_or_default()
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

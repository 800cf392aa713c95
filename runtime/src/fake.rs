//! A runtime that runs nothing: containers go through the same state machine with a
//! configurable latency per call. Simulated nodes (scheduler benchmarks, controller
//! tests) use it.

use std::collections::BTreeMap;
use std::os::fd::BorrowedFd;
use std::sync::Mutex;
use std::time::Duration;

use crate::container::{
    AttachEnd, AttachHandle, AttachStreams, ContainerState, CreateContainer, ExecHandle,
    ExecProcess, Exit, ExitReason, Status, now_ns,
};
use crate::error::{Error, Result};
use crate::runtime::ContainerRuntime;

/// The fake runtime.
#[derive(Debug, Default)]
pub struct FakeRuntime {
    latency: Duration,
    containers: Mutex<BTreeMap<String, ContainerState>>,
    next_pid: Mutex<i32>,
    /// The runtime's ends of attach sessions, by container: closed (after an
    /// [`AttachEnd::Exited`] byte) when it stops, dropped once their client has
    /// closed its end; as many as the helper takes (`MAX_SESSIONS` a container,
    /// `MAX_HELPER_SESSIONS` in all).
    attached: Mutex<BTreeMap<String, Vec<Attached>>>,
}

/// The runtime's ends of one attach session: output nobody writes, and its end.
#[derive(Debug)]
struct Attached {
    outputs: Vec<std::io::PipeWriter>,
    ended: std::io::PipeWriter,
}

impl Attached {
    /// Whether its client has closed the session's end (a pipe's write end reports
    /// POLLERR once its reader is gone).
    fn client_gone(&self) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(&self.ended),
            PollFlags::empty(),
        )];
        poll(&mut fds, PollTimeout::ZERO).is_ok()
            && fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLERR))
    }
}

impl FakeRuntime {
    /// A fake that answers at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call takes this long (as a real runtime would).
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Makes a running container exit with `code`, as if its process had.
    pub fn exit(&self, id: &str, code: i32) -> Result<()> {
        self.detach_all(id);
        self.update(id, |state| {
            state.status = Status::Stopped;
            state.exit = Some(Exit {
                code,
                reason: if code == 0 {
                    ExitReason::Completed
                } else {
                    ExitReason::Error
                },
                finished_at_ns: now_ns(),
            });
            Ok(())
        })
    }

    /// Ends the attach sessions of `id`: it stopped.
    fn detach_all(&self, id: &str) {
        use std::io::Write;
        let sessions = match self.attached.lock() {
            Ok(mut attached) => attached.remove(id).unwrap_or_default(),
            Err(_) => return,
        };
        for mut session in sessions {
            let _ = session.ended.write_all(&[AttachEnd::Exited.byte()]);
            drop(session.outputs);
        }
    }

    fn pause(&self) {
        if !self.latency.is_zero() {
            std::thread::sleep(self.latency);
        }
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut ContainerState) -> Result<()>) -> Result<()> {
        self.pause();
        let mut containers = self.containers.lock().map_err(|_| poisoned())?;
        let state = containers
            .get_mut(id)
            .ok_or_else(|| Error::ContainerNotFound { id: id.to_string() })?;
        f(state)
    }
}

fn poisoned() -> Error {
    Error::InvalidSpec("fake runtime state poisoned by a panic".to_string())
}

fn incorrect(state: &ContainerState, operation: &'static str) -> Error {
    Error::IncorrectStatus {
        id: state.spec.id.clone(),
        status: state.status.to_string(),
        operation,
    }
}

impl ContainerRuntime for FakeRuntime {
    fn create(&self, spec: &CreateContainer) -> Result<ContainerState> {
        self.pause();
        let mut containers = self.containers.lock().map_err(|_| poisoned())?;
        if containers.contains_key(&spec.id) {
            return Err(Error::ContainerExists {
                id: spec.id.clone(),
            });
        }
        let pid = {
            let mut next = self.next_pid.lock().map_err(|_| poisoned())?;
            *next += 1;
            100_000 + *next
        };
        let state = ContainerState {
            spec: spec.clone(),
            status: Status::Created,
            pid: Some(pid),
            pid_start_ticks: None,
            cgroup_path: None,
            created_at_ns: now_ns(),
            started_at_ns: None,
            exit: None,
            stdin_closed: false,
        };
        containers.insert(spec.id.clone(), state.clone());
        Ok(state)
    }

    fn start(&self, id: &str) -> Result<()> {
        self.update(id, |state| {
            if !state.status.can_start() {
                return Err(incorrect(state, "start"));
            }
            state.status = Status::Running;
            state.started_at_ns = Some(now_ns());
            Ok(())
        })
    }

    fn kill(&self, id: &str, signal: i32) -> Result<()> {
        self.detach_all(id);
        self.update(id, |state| {
            if state.status.can_kill() {
                state.status = Status::Stopped;
                state.exit = Some(Exit {
                    code: 128 + signal,
                    reason: ExitReason::Error,
                    finished_at_ns: now_ns(),
                });
            }
            Ok(())
        })
    }

    fn delete(&self, id: &str, force: bool) -> Result<()> {
        self.pause();
        let mut containers = self.containers.lock().map_err(|_| poisoned())?;
        let state = containers
            .get(id)
            .ok_or_else(|| Error::ContainerNotFound { id: id.to_string() })?;
        if !force && !state.status.can_delete() {
            return Err(incorrect(state, "delete"));
        }
        containers.remove(id);
        drop(containers);
        self.detach_all(id);
        Ok(())
    }

    fn state(&self, id: &str) -> Result<ContainerState> {
        let containers = self.containers.lock().map_err(|_| poisoned())?;
        containers
            .get(id)
            .cloned()
            .ok_or_else(|| Error::ContainerNotFound { id: id.to_string() })
    }

    fn list(&self) -> Result<Vec<ContainerState>> {
        let containers = self.containers.lock().map_err(|_| poisoned())?;
        Ok(containers.values().cloned().collect())
    }

    /// A fake process lives exactly while its container runs.
    fn live_pid(&self, id: &str) -> Result<Option<i32>> {
        let state = self.state(id)?;
        Ok(state.pid.filter(|_| state.status == Status::Running))
    }

    fn exec(
        &self,
        id: &str,
        _process: &ExecProcess,
        _stdio: Option<[BorrowedFd<'_>; 3]>,
    ) -> Result<ExecHandle> {
        let state = self.state(id)?;
        if !state.status.can_exec() {
            return Err(incorrect(&state, "exec"));
        }
        self.pause();
        Ok(ExecHandle {
            pid: state.pid.unwrap_or(0) + 50_000,
            pty: None,
        })
    }

    fn wait_exec(&self, _pid: i32) -> Result<i32> {
        Ok(0)
    }

    /// A session on which a fake process writes nothing and reads nothing; it ends when
    /// the container stops.
    fn attach(&self, id: &str, streams: AttachStreams) -> Result<AttachHandle> {
        let state = self.state(id)?;
        if !state.status.can_exec() {
            return Err(incorrect(&state, "attach"));
        }
        let pipe = || std::io::pipe().map_err(crate::error::io("pipe"));
        let tty = state.spec.io.tty;
        let mut outputs = Vec::new();
        let mut output = |wanted: bool| -> Result<Option<std::os::fd::OwnedFd>> {
            if !wanted {
                return Ok(None);
            }
            let (r, w) = pipe()?;
            outputs.push(w);
            Ok(Some(r.into()))
        };
        let mut attached = self.attached.lock().map_err(|_| poisoned())?;
        for sessions in attached.values_mut() {
            sessions.retain(|s| !s.client_gone());
        }
        attached.retain(|_, sessions| !sessions.is_empty());
        let here = attached.get(id).map_or(0, Vec::len);
        let open: usize = attached.values().map(Vec::len).sum();
        if here >= crate::helper::MAX_SESSIONS || open >= crate::helper::MAX_HELPER_SESSIONS {
            return Err(Error::InvalidSpec(format!(
                "container {id} has {here} attach sessions, the runtime {open}: no more are taken"
            )));
        }
        let stdout = output(streams.stdout)?;
        let stderr = output(streams.stderr && !tty)?;
        let (ended, ended_w) = pipe()?;
        attached.entry(id.to_string()).or_default().push(Attached {
            outputs,
            ended: ended_w,
        });
        Ok(AttachHandle {
            tty,
            stdin: None,
            stdin_once: false,
            terminal: None,
            stdout,
            stderr,
            ended: ended.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str) -> CreateContainer {
        CreateContainer {
            id: id.into(),
            bundle: "/nonexistent".into(),
            engine: Default::default(),
            log_path: "/nonexistent/log".into(),
            log_max_bytes: 1 << 20,
            io: Default::default(),
        }
    }

    #[test]
    fn fake_attach_sessions_end_when_the_container_stops() {
        use std::io::Read;
        let rt = FakeRuntime::new();
        rt.create(&spec("a")).unwrap();
        assert!(matches!(
            rt.attach("a", AttachStreams::default()),
            Err(Error::IncorrectStatus { .. })
        ));
        rt.start("a").unwrap();
        let streams = AttachStreams {
            stdin: true,
            stdout: true,
            stderr: true,
        };
        let handle = rt.attach("a", streams).unwrap();
        assert!(handle.stdin.is_none() && handle.stdout.is_some() && handle.stderr.is_some());
        rt.exit("a", 0).unwrap();
        let mut end = Vec::new();
        std::fs::File::from(handle.ended)
            .read_to_end(&mut end)
            .unwrap();
        assert_eq!(end, [AttachEnd::Exited.byte()]);
        let mut out = Vec::new();
        std::fs::File::from(handle.stdout.unwrap())
            .read_to_end(&mut out)
            .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn fake_attach_sessions_are_dropped_once_their_client_goes_and_bounded() {
        let rt = FakeRuntime::new();
        rt.create(&spec("a")).unwrap();
        rt.start("a").unwrap();
        let streams = AttachStreams {
            stdout: true,
            ..Default::default()
        };
        // Sessions that come and go leave nothing behind.
        for _ in 0..3 * crate::helper::MAX_SESSIONS {
            drop(rt.attach("a", streams).unwrap());
        }
        assert_eq!(rt.attached.lock().unwrap()["a"].len(), 1);
        // Sessions that stay are bounded.
        let mut kept = Vec::new();
        let err = loop {
            match rt.attach("a", streams) {
                Ok(handle) => kept.push(handle),
                Err(e) => break e,
            }
            assert!(kept.len() <= crate::helper::MAX_SESSIONS, "unbounded");
        };
        assert_eq!(kept.len(), crate::helper::MAX_SESSIONS);
        assert!(err.to_string().contains("no more are taken"), "{err}");
        // One going makes room for one.
        kept.pop();
        kept.push(rt.attach("a", streams).unwrap());
    }

    #[test]
    fn the_fake_follows_the_oci_state_machine() {
        let rt = FakeRuntime::new();
        rt.create(&spec("a")).unwrap();
        assert!(matches!(
            rt.create(&spec("a")),
            Err(Error::ContainerExists { .. })
        ));
        assert!(matches!(
            rt.delete("a", false),
            Err(Error::IncorrectStatus { .. })
        ));
        assert_eq!(rt.live_pid("a").unwrap(), None);
        rt.start("a").unwrap();
        assert!(matches!(rt.start("a"), Err(Error::IncorrectStatus { .. })));
        assert_eq!(rt.state("a").unwrap().status, Status::Running);
        assert_eq!(rt.live_pid("a").unwrap(), rt.state("a").unwrap().pid);
        rt.kill("a", 15).unwrap();
        let state = rt.state("a").unwrap();
        assert_eq!(state.exit.unwrap().code, 143);
        assert_eq!(rt.live_pid("a").unwrap(), None);
        rt.delete("a", false).unwrap();
        assert!(matches!(
            rt.state("a"),
            Err(Error::ContainerNotFound { .. })
        ));
        rt.create(&spec("b")).unwrap();
        rt.start("b").unwrap();
        rt.exit("b", 0).unwrap();
        assert_eq!(
            rt.state("b").unwrap().exit.unwrap().reason,
            ExitReason::Completed
        );
        rt.delete("b", true).unwrap();
        assert!(rt.list().unwrap().is_empty());
    }
}

//! Running a container's startup, liveness and readiness probes (exec, httpGet,
//! tcpSocket) when due, and what they say of it.

use std::os::fd::AsFd;

use k8s_openapi::api::core::v1::Container;

use super::record::PodRecord;
use super::{PodRuntime, blocking};
use crate::container::{ContainerState, ExecProcess};
use crate::error::io;
use crate::probe;

/// What the probes say of a running container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Health {
    pub(super) ready: bool,
    pub(super) started: bool,
}

impl PodRuntime {
    /// Runs the container's due probes; a failed startup or liveness probe kills it
    /// (the restart policy then decides, as in kubelet).
    pub(super) async fn probe(
        &self,
        record: &PodRecord,
        c: &Container,
        state: &ContainerState,
        now_ns: i64,
    ) -> Health {
        let started_ns = state.started_at_ns.unwrap_or(state.created_at_ns);
        let id = state.spec.id.clone();
        let tracker = |kind| -> probe::Tracker {
            self.probes
                .lock()
                .ok()
                .and_then(|p| p.get(&(id.clone(), kind)).cloned())
                .unwrap_or_default()
        };
        let mut kinds = vec![probe::Kind::Startup];
        let startup_passed = probe::of(c, probe::Kind::Startup).is_none()
            || tracker(probe::Kind::Startup).passing == Some(true);
        if startup_passed {
            kinds = vec![probe::Kind::Liveness, probe::Kind::Readiness];
        }
        for kind in kinds {
            let Some(spec) = probe::of(c, kind) else {
                continue;
            };
            let mut t = tracker(kind);
            if kind == probe::Kind::Startup && t.passing == Some(true) {
                continue;
            }
            if !t.due(spec, started_ns, now_ns) {
                continue;
            }
            let outcome = self.run_probe(record, c, &id, spec).await;
            if let probe::Outcome::Failure(why) = &outcome {
                // Each failed run, as kubelet says it (counted on one event).
                let m = format!("{kind:?} probe failed: {why}");
                self.report(record, "Warning", "Unhealthy", m);
            }
            let verdict = t.record(spec, outcome, now_ns);
            if let Ok(mut probes) = self.probes.lock() {
                probes.insert((id.clone(), kind), t.clone());
            }
            if verdict == Some(false) && kind != probe::Kind::Readiness {
                tracing::info!(
                    pod = %record.key(),
                    container = %c.name,
                    "{kind:?} probe failed: {}; killing the container",
                    t.message.as_deref().unwrap_or_default()
                );
                let verb = if kind == probe::Kind::Startup {
                    "startup"
                } else {
                    "liveness"
                };
                let m = format!(
                    "Container {} failed {verb} probe, will be restarted",
                    c.name
                );
                self.report(record, "Normal", "Killing", m);
                let runtime = self.runtime.clone();
                let id = id.clone();
                let _ =
                    blocking(move || runtime.kill(&id, nix::sys::signal::Signal::SIGKILL as i32))
                        .await;
            }
        }
        let started = probe::of(c, probe::Kind::Startup).is_none()
            || tracker(probe::Kind::Startup).passing == Some(true);
        let ready = started
            && (probe::of(c, probe::Kind::Readiness).is_none()
                || tracker(probe::Kind::Readiness).passing == Some(true));
        Health { ready, started }
    }

    async fn run_probe(
        &self,
        record: &PodRecord,
        c: &Container,
        id: &str,
        spec: &k8s_openapi::api::core::v1::Probe,
    ) -> probe::Outcome {
        let timeout = probe::timeout(spec);
        let ip = record
            .attachment
            .as_ref()
            .map_or(std::net::Ipv4Addr::LOCALHOST, |a| a.address);
        if let Some(exec) = &spec.exec {
            let process = ExecProcess {
                args: exec.command.clone().unwrap_or_default(),
                ..Default::default()
            };
            let runtime = self.runtime.clone();
            let id = id.to_string();
            let run = blocking(move || {
                let null = std::fs::File::open("/dev/null").map_err(io("/dev/null"))?;
                let out = std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/null")
                    .map_err(io("/dev/null"))?;
                let exec = runtime.exec(
                    &id,
                    &process,
                    Some([null.as_fd(), out.as_fd(), out.as_fd()]),
                )?;
                runtime.wait_exec(exec.pid)
            });
            return match tokio::time::timeout(timeout, run).await {
                Ok(Ok(0)) => probe::Outcome::Success,
                Ok(Ok(code)) => probe::Outcome::Failure(format!("command exited with {code}")),
                Ok(Err(e)) => probe::Outcome::Failure(e.to_string()),
                Err(_) => probe::Outcome::Failure(format!(
                    "command timed out after {}s",
                    timeout.as_secs()
                )),
            };
        }
        if let Some(get) = &spec.http_get {
            if get.scheme.as_deref() == Some("HTTPS") {
                return probe::Outcome::Failure("HTTPS probes are not supported".to_string());
            }
            let port = match probe::port(c, &get.port) {
                Ok(p) => p,
                Err(e) => return probe::Outcome::Failure(e),
            };
            let host = get.host.clone().and_then(|h| h.parse().ok()).unwrap_or(ip);
            let addr = std::net::SocketAddr::from((host, port));
            let path = get.path.clone().unwrap_or_else(|| "/".to_string());
            let headers: Vec<(String, String)> = get
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect();
            let host_header = addr.to_string();
            return tokio::task::spawn_blocking(move || {
                probe::http_get(addr, &host_header, &path, &headers, timeout)
            })
            .await
            .unwrap_or_else(|e| probe::Outcome::Failure(e.to_string()));
        }
        if let Some(tcp) = &spec.tcp_socket {
            let port = match probe::port(c, &tcp.port) {
                Ok(p) => p,
                Err(e) => return probe::Outcome::Failure(e),
            };
            let host = tcp.host.clone().and_then(|h| h.parse().ok()).unwrap_or(ip);
            let addr = std::net::SocketAddr::from((host, port));
            return tokio::task::spawn_blocking(move || probe::tcp(addr, timeout))
                .await
                .unwrap_or_else(|e| probe::Outcome::Failure(e.to_string()));
        }
        probe::Outcome::Failure("only exec, httpGet and tcpSocket probes are supported".to_string())
    }
}

//! Liveness, readiness and startup probes (exec, httpGet, tcpSocket) and the counting
//! kubelet does around them: a probe runs every `periodSeconds` after
//! `initialDelaySeconds`; `failureThreshold` failures in a row fail it,
//! `successThreshold` successes in a row pass it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Restarts the container when it fails.
    Liveness,
    /// Takes the container out of service while it fails.
    Readiness,
    /// Holds the other two back until it passes once; restarts on failure.
    Startup,
}

/// The outcome of one probe run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Passed.
    Success,
    /// Failed, with why.
    Failure(String),
}

/// What a probe has seen so far for one container attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracker {
    /// Successes in a row.
    pub successes: i32,
    /// Failures in a row.
    pub failures: i32,
    /// When it last ran (ns since the epoch).
    pub last_run_ns: Option<i64>,
    /// Its verdict: None before the thresholds are reached.
    pub passing: Option<bool>,
    /// The last failure message.
    pub message: Option<String>,
}

impl Tracker {
    /// Whether the probe is due at `now_ns` for a container started at `started_ns`.
    pub fn due(&self, probe: &Probe, started_ns: i64, now_ns: i64) -> bool {
        let second = 1_000_000_000i64;
        let delay = i64::from(probe.initial_delay_seconds.unwrap_or(0).max(0)) * second;
        let period = i64::from(probe.period_seconds.unwrap_or(10).max(1)) * second;
        if now_ns < started_ns + delay {
            return false;
        }
        self.last_run_ns.is_none_or(|last| now_ns >= last + period)
    }

    /// Counts an outcome and returns the new verdict.
    pub fn record(&mut self, probe: &Probe, outcome: Outcome, now_ns: i64) -> Option<bool> {
        self.last_run_ns = Some(now_ns);
        match outcome {
            Outcome::Success => {
                self.successes += 1;
                self.failures = 0;
                if self.successes >= probe.success_threshold.unwrap_or(1).max(1) {
                    self.passing = Some(true);
                }
            }
            Outcome::Failure(message) => {
                self.failures += 1;
                self.successes = 0;
                self.message = Some(message);
                if self.failures >= probe.failure_threshold.unwrap_or(3).max(1) {
                    self.passing = Some(false);
                }
            }
        }
        self.passing
    }
}

/// The probe of `kind` of a container.
pub fn of(container: &Container, kind: Kind) -> Option<&Probe> {
    match kind {
        Kind::Liveness => container.liveness_probe.as_ref(),
        Kind::Readiness => container.readiness_probe.as_ref(),
        Kind::Startup => container.startup_probe.as_ref(),
    }
}

/// The port a probe names: a number, or the name of one of the container's ports.
pub fn port(container: &Container, port: &IntOrString) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("port {n} is out of range")),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("the container has no port named {name:?}")),
    }
}

/// The timeout of a probe (`timeoutSeconds`, default 1).
pub fn timeout(probe: &Probe) -> Duration {
    Duration::from_secs(u64::try_from(probe.timeout_seconds.unwrap_or(1).max(1)).unwrap_or(1))
}

/// Runs a tcpSocket probe: can a connection be made?
pub fn tcp(addr: SocketAddr, timeout: Duration) -> Outcome {
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(_) => Outcome::Success,
        Err(e) => Outcome::Failure(format!("dial tcp {addr}: {e}")),
    }
}

/// Runs an httpGet probe: a 2xx or 3xx answer to `GET path` passes (kubelet's rule).
pub fn http_get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Outcome {
    let attempt = || -> std::io::Result<u16> {
        let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let path = if path.is_empty() { "/" } else { path };
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes())?;
        // Only the status line matters: "HTTP/1.1 200 OK".
        let mut head = [0u8; 64];
        let mut read = 0;
        while read < 12 {
            let n = stream.read(&mut head[read..])?;
            if n == 0 {
                break;
            }
            read += n;
        }
        let line = String::from_utf8_lossy(&head[..read]);
        line.split(' ')
            .nth(1)
            .and_then(|code| code.trim().parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("malformed answer {line:?}")))
    };
    match attempt() {
        Ok(code) if (200..400).contains(&code) => Outcome::Success,
        Ok(code) => Outcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
        Err(e) => Outcome::Failure(format!("Get \"http://{addr}{path}\": {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(json: serde_json::Value) -> Probe {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn thresholds_decide_the_verdict() {
        let p = probe(
            serde_json::json!({"failureThreshold": 2, "successThreshold": 2, "periodSeconds": 5}),
        );
        let mut t = Tracker::default();
        assert_eq!(t.record(&p, Outcome::Failure("x".into()), 0), None);
        assert_eq!(t.record(&p, Outcome::Failure("x".into()), 1), Some(false));
        assert_eq!(t.record(&p, Outcome::Success, 2), Some(false));
        assert_eq!(t.record(&p, Outcome::Success, 3), Some(true));
        assert_eq!(t.message.as_deref(), Some("x"));
    }

    #[test]
    fn probes_wait_for_the_initial_delay_and_period() {
        let p = probe(serde_json::json!({"initialDelaySeconds": 3, "periodSeconds": 5}));
        let s = 1_000_000_000i64;
        let mut t = Tracker::default();
        assert!(!t.due(&p, 0, 2 * s));
        assert!(t.due(&p, 0, 3 * s));
        t.record(&p, Outcome::Success, 3 * s);
        assert!(!t.due(&p, 0, 7 * s));
        assert!(t.due(&p, 0, 8 * s));
    }

    #[test]
    fn http_and_tcp_probes_follow_kubelet_rules() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for code in [200, 302, 500] {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).unwrap();
                assert!(
                    String::from_utf8_lossy(&buf[..n]).starts_with("GET /healthz HTTP/1.1\r\n")
                );
                s.write_all(format!("HTTP/1.1 {code} X\r\n\r\n").as_bytes())
                    .unwrap();
            }
            listener
        });
        let t = Duration::from_secs(2);
        assert_eq!(http_get(addr, "x", "/healthz", &[], t), Outcome::Success);
        assert_eq!(http_get(addr, "x", "/healthz", &[], t), Outcome::Success);
        assert!(
            matches!(http_get(addr, "x", "/healthz", &[], t), Outcome::Failure(m) if m.contains("500"))
        );
        let listener = server.join().unwrap();
        assert_eq!(tcp(addr, t), Outcome::Success);
        drop(listener);
        assert!(matches!(tcp(addr, t), Outcome::Failure(_)));
    }

    #[test]
    fn named_ports_resolve_through_the_container() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "web", "ports": [{"name": "http", "containerPort": 8080}]
        }))
        .unwrap();
        assert_eq!(port(&c, &IntOrString::String("http".into())), Ok(8080));
        assert!(port(&c, &IntOrString::String("grpc".into())).is_err());
        assert_eq!(port(&c, &IntOrString::Int(81)), Ok(81));
    }
}

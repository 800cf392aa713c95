//! The health checks of `externalTrafficPolicy: Local` load balancers, served by the
//! node as kube-proxy serves them (`pkg/proxy/healthcheck/service_health.go`): on
//! each such Service's `healthCheckNodePort`, any HTTP request is answered 200 while
//! this node has a ready endpoint of the Service and 503 otherwise, with
//! `{"service":{"namespace":…,"name":…},"localEndpoints":N,"serviceProxyHealthy":true}`,
//! so that a load balancer in front of the nodes sends traffic only to those that
//! serve it locally (the others drop it).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long writing the answer may take (a client that does not read).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The most connections one port serves at once: it listens on every address of the
/// node, and each connection may last [`READ_TIMEOUT`] + [`WRITE_TIMEOUT`]. One more
/// is closed as soon as it is accepted.
const MAX_CONNECTIONS: usize = 64;
/// The most of a request read (its head; the rest is ignored).
const MAX_REQUEST: usize = 8 * 1024;

/// One Service's health check on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Its `healthCheckNodePort`.
    pub port: u16,
    /// `namespace`, `name` of the Service.
    pub service: (String, String),
    /// How many ready endpoints of it this node has.
    pub local_endpoints: usize,
}

/// The status line and body of the answer to any request for `check`.
pub fn response(check: &HealthCheck) -> (u16, String) {
    let body = serde_json::json!({
        "service": {"namespace": check.service.0, "name": check.service.1},
        "localEndpoints": check.local_endpoints,
        "serviceProxyHealthy": true,
    });
    let status = if check.local_endpoints > 0 { 200 } else { 503 };
    (status, body.to_string())
}

struct Server {
    check: watch::Sender<HealthCheck>,
    task: JoinHandle<()>,
}

/// The node's health-check servers, one listener per port, kept to a list of checks.
pub struct HealthChecks {
    address: IpAddr,
    servers: BTreeMap<u16, Server>,
    /// Ports that could not be bound (told once, tried at every sync).
    unbound: BTreeSet<u16>,
}

impl std::fmt::Debug for HealthChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthChecks")
            .field("address", &self.address)
            .field("ports", &self.servers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl HealthChecks {
    /// Servers listening on `address` (all the node's addresses: `0.0.0.0`, as
    /// kube-proxy's default `--nodeport-addresses`); none before [`Self::sync`].
    pub fn new(address: IpAddr) -> Self {
        HealthChecks {
            address,
            servers: BTreeMap::new(),
            unbound: BTreeSet::new(),
        }
    }

    /// Serves exactly `checks`: new ports are listened on, gone ones closed, the
    /// others answer with their new counts. A port that cannot be bound is logged
    /// once and tried again at every sync.
    pub async fn sync(&mut self, checks: &[HealthCheck]) {
        let wanted: BTreeMap<u16, &HealthCheck> = checks.iter().map(|c| (c.port, c)).collect();
        self.servers.retain(|port, server| {
            let keep = wanted.contains_key(port);
            if !keep {
                server.task.abort();
            }
            keep
        });
        self.unbound.retain(|port| wanted.contains_key(port));
        for (port, check) in wanted {
            if let Some(server) = self.servers.get(&port) {
                server.check.send_if_modified(|c| {
                    let changed = c != check;
                    if changed {
                        c.clone_from(check);
                    }
                    changed
                });
                continue;
            }
            match TcpListener::bind((self.address, port)).await {
                Ok(listener) => {
                    self.unbound.remove(&port);
                    let (tx, rx) = watch::channel(check.clone());
                    let task = tokio::spawn(serve(listener, rx));
                    self.servers.insert(port, Server { check: tx, task });
                }
                Err(e) => {
                    if self.unbound.insert(port) {
                        tracing::warn!(
                            port,
                            service = %format!("{}/{}", check.service.0, check.service.1),
                            "cannot serve the health check: {e}"
                        );
                    }
                }
            }
        }
    }

    /// The ports listened on.
    pub fn ports(&self) -> Vec<u16> {
        self.servers.keys().copied().collect()
    }
}

impl Drop for HealthChecks {
    fn drop(&mut self) {
        for server in self.servers.values() {
            server.task.abort();
        }
    }
}

/// Answers every connection to `listener` with the current check, at most
/// [`MAX_CONNECTIONS`] at once; the connections end with the server.
async fn serve(listener: TcpListener, check: watch::Receiver<HealthCheck>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, _)) => {
                // Over the bound: closed at once (dropped).
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    continue;
                };
                let current = check.borrow().clone();
                connections.spawn(async move {
                    answer(stream, current).await;
                    drop(permit);
                });
            }
            // Out of descriptors and the like: try again shortly.
            Err(e) => {
                tracing::debug!("health check: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads the request's head (bounded in size and time) and writes the answer.
async fn answer(mut stream: TcpStream, check: HealthCheck) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        while request.len() < MAX_REQUEST && !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    if read.is_err() {
        return;
    }
    let (status, body) = response(&check);
    let reason = if status == 200 {
        "OK"
    } else {
        "Service Unavailable"
    };
    let reply = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
         X-Content-Type-Options: nosniff\r\nX-Load-Balancing-Endpoint-Weight: {}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        check.local_endpoints,
        body.len()
    );
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(reply.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn check(port: u16, local_endpoints: usize) -> HealthCheck {
        HealthCheck {
            port,
            service: ("default".into(), "lb".into()),
            local_endpoints,
        }
    }

    #[test]
    fn a_node_with_local_endpoints_answers_200_and_without_503() {
        assert_eq!(
            response(&check(30100, 2)),
            (
                200,
                r#"{"localEndpoints":2,"service":{"name":"lb","namespace":"default"},"serviceProxyHealthy":true}"#
                    .to_string()
            )
        );
        assert_eq!(response(&check(30100, 0)).0, 503);
    }

    async fn get(port: u16) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn the_servers_follow_the_checks() {
        // A free port, let go for the server to take.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut checks = HealthChecks::new("127.0.0.1".parse().unwrap());
        checks.sync(&[check(port, 1)]).await;
        assert_eq!(checks.ports(), [port]);
        let reply = get(port).await;
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(
            reply.contains("X-Load-Balancing-Endpoint-Weight: 1"),
            "{reply}"
        );
        assert!(reply.ends_with(r#""serviceProxyHealthy":true}"#), "{reply}");
        checks.sync(&[check(port, 0)]).await;
        assert!(get(port).await.starts_with("HTTP/1.1 503 "));
        checks.sync(&[]).await;
        assert!(checks.ports().is_empty());
        // Closed: nothing answers any more (the aborted task drops the listener).
        for _ in 0..50 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("port {port} still open");
    }

    #[tokio::test]
    async fn connections_beyond_the_bound_are_closed_at_once() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut checks = HealthChecks::new("127.0.0.1".parse().unwrap());
        checks.sync(&[check(port, 1)]).await;
        // Clients that connect and say nothing hold every connection the port serves.
        let mut silent = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            silent.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        }
        // One more is closed without an answer, long before the read timeout.
        let mut extra = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), extra.read_to_end(&mut buf))
            .await
            .expect("closed at once, not held until the read timeout");
        assert!(read.is_err() || buf.is_empty(), "{read:?} {buf:?}");
        // The silent ones go: the port answers again.
        drop(silent);
        for _ in 0..100 {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out).await;
            if out.starts_with("HTTP/1.1 200 OK") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("port {port} does not answer after the silent clients left");
    }
}

//! `rk8sctl port-forward TARGET [LOCAL:]REMOTE...`, as kubectl's: local ports whose
//! every connection reaches a port of a pod through the API server's
//! `pods/portforward` (the WebSocket channel protocol, one WebSocket a connection).
//! The target is a pod, or a Service or workload (`svc/web`, `deploy/web`): one of
//! its pods, chosen as `logs` chooses; a Service's port stands for its target port.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;

use crate::cluster::explain;
use crate::commands::Global;

/// `port-forward` arguments (kubectl's).
#[derive(clap::Args, Clone, Debug)]
pub struct PortForwardArgs {
    /// What to forward to: a pod (`NAME`, `pod/NAME`), or a Service or workload
    /// (`svc/NAME`, `deploy/NAME`, …): one of its pods.
    pub target: String,
    /// The ports: `LOCAL:REMOTE`, `:REMOTE` (a free local port) or `PORT` (the same
    /// on both sides). REMOTE may name a container port; for a Service it is one of
    /// the Service's ports.
    #[arg(required = true)]
    pub ports: Vec<String>,
    /// The local addresses to listen on, comma-separated (`localhost`: 127.0.0.1 and
    /// ::1 where it can).
    #[arg(long, default_value = "localhost", value_delimiter = ',')]
    pub address: Vec<String>,
}

/// One port asked for: the local port (0: any free one) and the remote, as written.
#[derive(Debug, PartialEq, Eq)]
struct Asked {
    local: u16,
    remote: String,
    /// Written as one port: the local port is the remote one.
    same: bool,
}

fn parse_port(spec: &str) -> Result<Asked> {
    let (local, remote) = match spec.split_once(':') {
        Some(("", remote)) => (0, remote),
        Some((local, remote)) => (
            local
                .parse()
                .with_context(|| format!("{spec}: the local port {local:?} is not a port"))?,
            remote,
        ),
        None => (0, spec),
    };
    if remote.is_empty() {
        bail!("{spec}: no remote port");
    }
    // `PORT` alone is the same port on both sides (a name: the port it resolves to).
    let local = match (local, spec.contains(':'), remote.parse::<u16>()) {
        (0, false, Ok(same)) => same,
        (local, _, _) => local,
    };
    Ok(Asked {
        local,
        remote: remote.to_string(),
        same: !spec.contains(':'),
    })
}

/// The pod's port `remote` names: a number, or a container port's name.
fn pod_port(pod: &Pod, remote: &str) -> Result<u16> {
    if let Ok(port) = remote.parse::<u16>() {
        if port == 0 {
            bail!("remote port must be > 0");
        }
        return Ok(port);
    }
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(remote))
        .and_then(|p| u16::try_from(p.container_port).ok())
        .with_context(|| {
            format!(
                "Pod '{}' does not have a named port '{remote}'",
                pod.metadata.name.as_deref().unwrap_or("")
            )
        })
}

/// The pod's port a Service's port `remote` (number or name) targets.
fn service_port(service: &Service, pod: &Pod, remote: &str) -> Result<u16> {
    let name = service.metadata.name.as_deref().unwrap_or("");
    let port = service
        .spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .find(|p| p.port.to_string() == remote || p.name.as_deref() == Some(remote))
        .with_context(|| format!("Service {name} does not have a service port {remote}"))?;
    match &port.target_port {
        Some(IntOrString::Int(n)) => u16::try_from(*n).context("a target port out of range"),
        Some(IntOrString::String(named)) => pod_port(pod, named),
        None => u16::try_from(port.port).context("a port out of range"),
    }
}

/// The addresses `--address` names.
fn addresses(asked: &[String]) -> Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for a in asked {
        match a.as_str() {
            "localhost" => out.extend([
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]),
            other => out.push(
                other
                    .parse()
                    .with_context(|| format!("--address {other}: not an IP address"))?,
            ),
        }
    }
    Ok(out)
}

/// `rk8sctl port-forward`: forwards until interrupted.
pub async fn port_forward(g: &Global, args: &PortForwardArgs) -> Result<()> {
    let asked: Vec<Asked> = args
        .ports
        .iter()
        .map(|p| parse_port(p))
        .collect::<Result<_>>()?;
    let cluster = g.connect().await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let pod = crate::logs::target_pod(&cluster, &pods, &args.target).await?;
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    if phase != "Running" {
        bail!("unable to forward port because pod is not running. Current status={phase}");
    }
    let service = match args.target.split_once('/') {
        Some(("svc" | "service" | "services", name)) => {
            let services: Api<Service> =
                Api::namespaced(cluster.client.clone(), &cluster.namespace);
            Some(services.get(name).await.map_err(explain)?)
        }
        _ => None,
    };
    let name = pod.metadata.name.clone().context("the pod has no name")?;
    let mut listeners = Vec::new();
    for a in &asked {
        let remote = match &service {
            Some(s) => service_port(s, &pod, &a.remote)?,
            None => pod_port(&pod, &a.remote)?,
        };
        // A name alone: kubectl listens on the port it resolves to (a number alone
        // is the local port as written, a Service's too).
        let mut local = if a.same && a.local == 0 {
            remote
        } else {
            a.local
        };
        for ip in addresses(&args.address)? {
            let bound = match tokio::net::TcpListener::bind(SocketAddr::new(ip, local)).await {
                Ok(l) => l,
                // ::1 may not be there; kubectl goes on with the others too.
                Err(_) if ip.is_loopback() && ip.is_ipv6() => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("unable to listen on {ip}:{local}"));
                }
            };
            let at = bound.local_addr()?;
            // A free port picked once is the same on every address.
            local = at.port();
            println!("Forwarding from {at} -> {remote}");
            listeners.push((bound, remote));
        }
    }
    if listeners.is_empty() {
        bail!(
            "unable to listen on any of the requested ports: {:?}",
            args.ports
        );
    }
    for (listener, remote) in listeners {
        let (pods, name) = (pods.clone(), name.clone());
        tokio::spawn(async move {
            let local = listener.local_addr().map(|a| a.port()).unwrap_or_default();
            while let Ok((conn, _)) = listener.accept().await {
                println!("Handling connection for {local}");
                let (pods, name) = (pods.clone(), name.clone());
                tokio::spawn(async move {
                    if let Err(e) = forward(&pods, &name, remote, conn).await {
                        eprintln!("error: an error occurred forwarding {local} -> {remote}: {e:#}");
                    }
                });
            }
        });
    }
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for an interrupt")?;
    Ok(())
}

/// Joins one local connection to `remote` of the pod `name` until the pod's side
/// ends (then the local connection is closed, as kubectl closes it); the pod's
/// side's error (nothing listening, …) when there was one.
async fn forward(
    pods: &Api<Pod>,
    name: &str,
    remote: u16,
    conn: tokio::net::TcpStream,
) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut forwarder = pods.portforward(name, &[remote]).await.map_err(explain)?;
    let stream = forwarder
        .take_stream(remote)
        .context("the port-forward connection has no stream for the port")?;
    let error = forwarder.take_error(remote);
    let (mut from_local, mut to_local) = conn.into_split();
    let (mut from_pod, mut to_pod) = tokio::io::split(stream);
    let upstream = async {
        let _ = tokio::io::copy(&mut from_local, &mut to_pod).await;
        // The local side is done sending. The channel protocol has no half-close
        // (kube-rs would end the whole connection), so the pod is not told: its
        // answer still comes back.
        std::future::pending::<()>().await;
    };
    let downstream = async {
        let copied = tokio::io::copy(&mut from_pod, &mut to_local).await;
        let _ = to_local.shutdown().await;
        copied
    };
    let copied = tokio::select! {
        // (It never ends by itself.)
        () = upstream => Ok(0),
        copied = downstream => copied,
    };
    drop((from_local, to_local, from_pod, to_pod));
    let reported = match error {
        Some(error) => error.await,
        None => None,
    };
    forwarder.abort();
    if let Some(message) = reported {
        bail!("{message}");
    }
    copied.map(|_| ()).context("the connection broke")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn ports_are_read_as_kubectl_reads_them() {
        let asked = |local, remote: &str, same| Asked {
            local,
            remote: remote.into(),
            same,
        };
        assert_eq!(parse_port("8080:80").unwrap(), asked(8080, "80", false));
        assert_eq!(parse_port(":80").unwrap(), asked(0, "80", false));
        assert_eq!(parse_port("5000").unwrap(), asked(5000, "5000", true));
        assert_eq!(parse_port("8080:http").unwrap(), asked(8080, "http", false));
        assert_eq!(parse_port("http").unwrap(), asked(0, "http", true));
        assert!(parse_port("x:80").is_err());
        assert!(parse_port("8080:").is_err());
    }

    #[test]
    fn service_ports_map_to_their_targets() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]}
        }))
        .unwrap();
        let service: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"ports": [
                {"name": "web", "port": 80, "targetPort": "http"},
                {"name": "metrics", "port": 9090, "targetPort": 9100},
                {"port": 7000}]}
        }))
        .unwrap();
        assert_eq!(service_port(&service, &pod, "80").unwrap(), 8080);
        assert_eq!(service_port(&service, &pod, "web").unwrap(), 8080);
        assert_eq!(service_port(&service, &pod, "9090").unwrap(), 9100);
        assert_eq!(service_port(&service, &pod, "7000").unwrap(), 7000);
        assert_eq!(
            service_port(&service, &pod, "81").unwrap_err().to_string(),
            "Service web does not have a service port 81"
        );
        assert_eq!(pod_port(&pod, "http").unwrap(), 8080);
        assert_eq!(
            pod_port(&pod, "grpc").unwrap_err().to_string(),
            "Pod 'web' does not have a named port 'grpc'"
        );
    }
}

//! The bridge [`Network`] as the pod runtime's [`PodNetwork`]: pods attached by uid,
//! their host ports mapped, a taken port reported as the runtime's
//! [`HostPortTaken`](rk8s_runtime::Error::HostPortTaken).

use rk8s_runtime::network::{self as pod, HostPort, PodNetwork};

use crate::error::Error;
use crate::network::Network;
use crate::portmap::{PortMapping, Protocol};

impl PodNetwork for Network {
    fn attach(&self, uid: &str, host_ports: &[HostPort]) -> rk8s_runtime::Result<pod::Attachment> {
        let ports: Vec<PortMapping> = host_ports
            .iter()
            .map(|p| PortMapping {
                host_port: p.host_port,
                container_port: p.container_port,
                protocol: match p.protocol {
                    pod::Protocol::Tcp => Protocol::Tcp,
                    pod::Protocol::Udp => Protocol::Udp,
                },
            })
            .collect();
        let attachment = self.attach_with_ports(uid, &ports).map_err(to_runtime)?;
        Ok(pod::Attachment {
            address: attachment.address,
            netns_path: attachment.netns_path,
        })
    }

    fn detach(&self, uid: &str) -> rk8s_runtime::Result<()> {
        Network::detach(self, uid).map_err(to_runtime)
    }

    fn attached(&self) -> rk8s_runtime::Result<Vec<String>> {
        self.owners().map_err(to_runtime)
    }
}

fn to_runtime(e: Error) -> rk8s_runtime::Error {
    match e {
        Error::PortTaken {
            port,
            protocol,
            owner,
        } => rk8s_runtime::Error::HostPortTaken {
            port,
            protocol,
            owner,
        },
        other => rk8s_runtime::Error::Network(Box::new(other)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::host::Recorder;
    use crate::network::NetworkConfig;

    fn network(dir: &std::path::Path, host: Recorder) -> Arc<dyn PodNetwork> {
        let config = NetworkConfig {
            name: "t".into(),
            bridge: "rk8st0".into(),
            subnet: "10.99.0.0/24".parse().unwrap(),
            state_dir: dir.to_path_buf(),
            cluster_cidr: None,
        };
        Arc::new(Network::new(config, host).unwrap())
    }

    #[test]
    fn pods_are_attached_detached_and_listed_by_uid() {
        let dir = tempfile::tempdir().unwrap();
        let net = network(dir.path(), Recorder::new());
        let udp = HostPort {
            host_port: 5353,
            container_port: 53,
            protocol: pod::Protocol::Udp,
        };
        let a = net.attach("pod1", &[udp]).unwrap();
        assert_eq!(a.address.to_string(), "10.99.0.2");
        assert_eq!(a.netns_path, std::path::Path::new("/run/netns/rk8s-pod1"));
        assert_eq!(
            net.attach("pod1", &[udp]).unwrap(),
            a,
            "attach is idempotent"
        );
        assert_eq!(net.attached().unwrap(), ["pod1"]);
        net.detach("pod1").unwrap();
        net.detach("pod1").unwrap();
        assert!(net.attached().unwrap().is_empty());
    }

    #[test]
    fn a_taken_host_port_is_the_runtimes_host_port_taken() {
        let dir = tempfile::tempdir().unwrap();
        let net = network(dir.path(), Recorder::new().with_bound_ports(&[8080]));
        let web = HostPort {
            host_port: 8080,
            container_port: 80,
            protocol: pod::Protocol::Tcp,
        };
        let e = net.attach("pod1", &[web]).unwrap_err();
        assert!(
            matches!(&e, rk8s_runtime::Error::HostPortTaken { port: 8080, protocol, owner }
                if protocol == "tcp" && owner == "another process on this host"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "host port 8080/tcp is already in use by another process on this host"
        );
        assert!(
            net.attached().unwrap().is_empty(),
            "nothing is left half-made"
        );
    }
}

//! The files a pod's containers see as /etc/hosts, /etc/hostname and
//! /etc/resolv.conf, written into the pod's directory and bind-mounted.

use std::path::Path;

use super::PodRuntime;
use super::config::PodRuntimeConfig;
use super::record::PodRecord;
use crate::error::{Result, io};
use crate::spec::BindMount;

/// Writes the pod's hosts, hostname and resolv.conf into `dir`.
pub(super) fn write(
    dir: &Path,
    hostname: &str,
    record: &PodRecord,
    config: &PodRuntimeConfig,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let spec = record.pod.spec.clone().unwrap_or_default();
    let mut hosts = String::from(
        "# Kubernetes-managed hosts file (rk8s).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    if let Some(a) = &record.attachment {
        hosts.push_str(&format!("{}\t{hostname}\n", a.address));
    }
    for alias in spec.host_aliases.iter().flatten() {
        hosts.push_str(&format!(
            "{}\t{}\n",
            alias.ip,
            alias.hostnames.clone().unwrap_or_default().join("\t")
        ));
    }
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io(&path))
    };
    write("hosts", &hosts)?;
    write("hostname", &format!("{hostname}\n"))?;
    let dns = spec.dns_config.clone().unwrap_or_default();
    let mut nameservers = Vec::new();
    let mut searches = Vec::new();
    let mut options = Vec::new();
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let host_network = spec.host_network == Some(true);
    let cluster_first = config.cluster_dns.is_some()
        && (policy == "ClusterFirstWithHostNet" || (policy == "ClusterFirst" && !host_network));
    match &config.cluster_dns {
        Some(cluster) if cluster_first => {
            // As kubelet writes it: the cluster's server and search list first.
            let ns = record
                .pod
                .metadata
                .namespace
                .as_deref()
                .unwrap_or("default");
            let domain = &cluster.domain;
            nameservers.push(cluster.nameserver.clone());
            searches.extend([
                format!("{ns}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.clone(),
            ]);
            options.push("ndots:5".to_string());
        }
        _ => {}
    }
    if policy != "None" {
        // The cluster's server forwards other names itself, as CoreDNS does.
        if !cluster_first {
            nameservers.extend(config.nameservers.iter().cloned());
        }
        searches.extend(config.searches.iter().cloned());
    }
    nameservers.extend(dns.nameservers.clone().unwrap_or_default());
    searches.extend(dns.searches.clone().unwrap_or_default());
    let mut resolv = String::new();
    for ns in nameservers.iter().take(3) {
        resolv.push_str(&format!("nameserver {ns}\n"));
    }
    if !searches.is_empty() {
        resolv.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for o in dns.options.iter().flatten() {
        let name = o.name.clone().unwrap_or_default();
        // The pod's own value of an option replaces the default one.
        options.retain(|x| x.split(':').next() != Some(name.as_str()));
        options.push(match &o.value {
            Some(v) => format!("{name}:{v}"),
            None => name,
        });
    }
    if !options.is_empty() {
        resolv.push_str(&format!("options {}\n", options.join(" ")));
    }
    write("resolv.conf", &resolv)
}

/// The bind mounts of the files in `dir` over a container's /etc.
pub(super) fn mounts(dir: &Path) -> Vec<BindMount> {
    vec![
        BindMount {
            source: dir.join("hosts"),
            destination: "/etc/hosts".into(),
            readonly: false,
        },
        BindMount {
            source: dir.join("resolv.conf"),
            destination: "/etc/resolv.conf".into(),
            readonly: false,
        },
        BindMount {
            source: dir.join("hostname"),
            destination: "/etc/hostname".into(),
            readonly: false,
        },
    ]
}

/// This host's name, for pods on the host's network.
pub(super) fn host_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}

impl PodRuntime {
    /// Sets the peer entries of pod `uid`'s /etc/hosts (Compose services reaching each
    /// other by name), replacing earlier ones. The file is rewritten in place, so
    /// running containers see the change.
    pub fn set_peer_hosts(
        &self,
        uid: &str,
        peers: &[(std::net::Ipv4Addr, Vec<String>)],
    ) -> Result<()> {
        const MARK: &str = "# peers (rk8s)";
        let path = self.pod_dir(uid).join("hosts");
        let current = std::fs::read_to_string(&path).map_err(io(&path))?;
        let mut text = current.split(MARK).next().unwrap_or_default().to_string();
        if !peers.is_empty() {
            text.push_str(MARK);
            text.push('\n');
            for (ip, names) in peers {
                text.push_str(&format!("{ip}\t{}\n", names.join(" ")));
            }
        }
        // Truncate and write the same inode: it is bind-mounted into the containers.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(io(&path))?;
        std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io(&path))
    }
}

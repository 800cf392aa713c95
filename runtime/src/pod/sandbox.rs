//! A pod's sandbox: its network attachment, /etc files, volumes and the pause container
//! whose namespaces the work containers join; made by `run_pod`, removed with
//! everything else of the pod by `stop_pod`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use rk8s_api::resources::CgroupResources;

use super::record::{ContainerRecord, PodRecord};
use super::{PodRuntime, blocking, etc_files, volumes};
use crate::cgroups;
use crate::container::{Engine, now_ns};
use crate::error::{Error, Result, io};
use crate::image::PullPolicy;
use crate::network::{HostPort, Protocol};
use crate::spec::{self, ContainerConfig};

impl PodRuntime {
    /// Makes the pod's sandbox: network, /etc files, volumes and the running pause
    /// container. Containers start with [`sync_pod`](Self::sync_pod). Running a pod
    /// that exists returns its record.
    pub async fn run_pod(&self, pod: &Pod) -> Result<PodRecord> {
        let uid = pod
            .metadata
            .uid
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Error::InvalidSpec("the pod has no metadata.uid".to_string()))?;
        if uid.contains('/') || uid.starts_with('.') {
            return Err(Error::InvalidSpec(format!("{uid:?} is not a pod uid")));
        }
        if let Some(existing) = self.record(&uid)? {
            return Ok(existing);
        }
        let spec = pod
            .spec
            .as_ref()
            .ok_or_else(|| Error::InvalidSpec("the pod has no spec".to_string()))?;
        let engine = match spec.runtime_class_name.as_deref() {
            None | Some("") => Engine::Libcontainer,
            Some(handler) => self.config.handlers.get(handler).cloned().ok_or_else(|| {
                Error::InvalidSpec(format!(
                    "runtime handler {handler:?} is not offered on this node (offered: libcontainer{})",
                    self.config.handlers.keys().map(|k| format!(", {k}")).collect::<String>()
                ))
            })?,
        };
        let mut record = PodRecord {
            pod: pod.clone(),
            uid: uid.clone(),
            engine,
            attachment: None,
            pause_id: format!("{uid}-pause"),
            containers: BTreeMap::new(),
            created_at_ns: now_ns(),
        };
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
        {
            record.containers.insert(
                c.name.clone(),
                ContainerRecord {
                    id: None,
                    restart_count: 0,
                    crashes: 0,
                    backoff_until_ns: None,
                    last: None,
                    image_id: String::new(),
                },
            );
        }
        // Saved first, so that a failure half-way leaves a record that stop_pod
        // can clean up from.
        self.save(&record)?;
        match self.make_sandbox(&mut record).await {
            Ok(()) => {
                self.save(&record)?;
                Ok(record)
            }
            Err(e) => {
                let _ = self.stop_pod(&uid, Duration::ZERO).await;
                Err(e)
            }
        }
    }

    async fn make_sandbox(&self, record: &mut PodRecord) -> Result<()> {
        let spec = record.pod.spec.clone().unwrap_or_default();
        let host_network = spec.host_network.unwrap_or(false) || self.network.is_none();
        if let (false, Some(network)) = (host_network, &self.network) {
            let ports = host_ports(&spec.containers);
            let network = network.clone();
            let uid = record.uid.clone();
            let attached = blocking(move || network.attach(&uid, &ports)).await;
            record.attachment = Some(attached.map_err(|e| self.name_port_owner(e))?);
            self.save(record)?;
        }
        let dir = self.pod_dir(&record.uid);
        let name = record.pod.metadata.name.clone().unwrap_or_default();
        let hostname = spec.hostname.clone().unwrap_or_else(|| name.clone());
        let hostname = if host_network {
            etc_files::host_hostname()
        } else {
            hostname
        };
        etc_files::write(&dir, &hostname, record, &self.config)?;
        let memory = volumes::memory_ceiling(&record.pod, self.config.allocatable.memory);
        volumes::create(&dir, spec.volumes.iter().flatten(), memory)?;
        // The sandbox image is the node's: pulled without the pod's pull secrets.
        let pause = self
            .image(
                None,
                &self.config.pause_image.clone(),
                PullPolicy::IfNotPresent,
            )
            .await?;
        let netns = record.attachment.as_ref().map(|a| a.netns_path.clone());
        let mut namespaces = spec::sandbox_namespaces(netns.as_deref());
        if host_network {
            namespaces.retain(|n| n.kind != oci_spec::runtime::LinuxNamespaceType::Network);
            namespaces.retain(|n| n.kind != oci_spec::runtime::LinuxNamespaceType::Uts);
        }
        let config = ContainerConfig {
            args: [pause.process.entrypoint.clone(), pause.process.cmd.clone()].concat(),
            env: pause.process.env.clone(),
            cwd: String::new(),
            uid: Some(65535),
            gid: Some(65535),
            image_user: String::new(),
            hostname: (!host_network).then_some(hostname),
            rootfs: PathBuf::new(),
            readonly_rootfs: true,
            namespaces,
            cgroups_path: cgroups::container_path(&record.uid, "pause"),
            resources: CgroupResources {
                cpu_shares: 2,
                cpu_quota: None,
                cpu_period: rk8s_api::resources::CPU_PERIOD_US,
                memory_limit: None,
            },
            pids_limit: Some(16),
            mounts: Vec::new(),
            cap_add: Vec::new(),
            cap_drop: vec!["ALL".to_string()],
            terminal: false,
            devices: Vec::new(),
            annotations: Default::default(),
        };
        let id = record.pause_id.clone();
        self.create_and_start(
            &id,
            &pause,
            config,
            record.engine.clone(),
            &self.log_path(&record.uid, "pause", 0),
            Default::default(),
        )
        .await?;
        Ok(())
    }

    /// A taken host port names its owner by pod uid; say which pod that is.
    fn name_port_owner(&self, e: Error) -> Error {
        match e {
            Error::HostPortTaken {
                port,
                protocol,
                owner,
            } => {
                let owner = match self.record(&owner) {
                    Ok(Some(r)) => format!("pod {}", r.key()),
                    _ => owner,
                };
                Error::HostPortTaken {
                    port,
                    protocol,
                    owner,
                }
            }
            other => other,
        }
    }

    /// Stops pod `uid`: SIGTERM to its containers, SIGKILL after `grace`, then removes
    /// containers, rootfs mounts, bundles, cgroups, network and files. Stopping a pod
    /// that is gone does nothing.
    pub async fn stop_pod(&self, uid: &str, grace: Duration) -> Result<()> {
        self.inputs.forget(uid);
        self.pull_backoff.forget(uid);
        let Some(record) = self.record(uid)? else {
            return Ok(());
        };
        let ids = self.terminate(&record, grace).await?;
        // Every step is tried even when one fails, so that a second stop finds less to
        // do; the first error is reported.
        let mut first_error = None;
        for id in ids.iter().chain(std::iter::once(&record.pause_id)) {
            if let Err(e) = self.remove_container(id).await {
                first_error.get_or_insert(e);
            }
        }
        // Detached by name even without a recorded attachment: an agent killed while
        // wiring the sandbox leaves a namespace and a veth the record does not name yet.
        let host_network = record.host_network();
        if let (false, Some(network)) = (host_network, &self.network) {
            let (network, owner) = (network.clone(), uid.to_string());
            let detached = blocking(move || network.detach(&owner)).await;
            match detached {
                Ok(()) => {}
                Err(e) if record.attachment.is_some() => {
                    first_error.get_or_insert(e);
                }
                Err(e) => tracing::debug!(pod = %uid, "no attachment to remove: {e}"),
            }
        }
        let pod_cgroup = cgroups::pod_path(uid);
        if let Err(e) = blocking(move || cgroups::remove(&pod_cgroup)).await {
            first_error.get_or_insert(e);
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let dir = self.pod_dir(uid);
        volumes::unmount(&dir)?;
        std::fs::remove_dir_all(&dir).map_err(io(&dir))
    }
}

/// Host ports asked for by the containers' `ports[].hostPort`.
fn host_ports(containers: &[Container]) -> Vec<HostPort> {
    containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host_port = u16::try_from(p.host_port?).ok()?;
            Some(HostPort {
                host_port,
                container_port: u16::try_from(p.container_port).ok()?,
                protocol: if p.protocol.as_deref() == Some("UDP") {
                    Protocol::Udp
                } else {
                    Protocol::Tcp
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports_come_from_container_ports() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "web",
            "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "protocol": "UDP", "hostPort": 5353}, {"containerPort": 9}]
        }))
        .unwrap();
        let ports = host_ports(&[c]);
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[1].protocol, Protocol::Udp);
    }
}

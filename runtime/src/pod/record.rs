//! What is kept on disk of a pod (`pods/<uid>/pod.json`): the pod as given, its
//! sandbox, and each container's current attempt, restarts and backoff.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

use super::PodRuntime;
use crate::container::{ContainerState, Engine};
use crate::error::{Error, Result, io};
use crate::network::Attachment;

/// One container of a pod as recorded: the current attempt and what came before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    /// Runtime id of the current attempt (None before the first start).
    pub id: Option<String>,
    /// How many times it was restarted.
    pub restart_count: u32,
    /// Consecutive crashes, for the backoff.
    pub crashes: u32,
    /// Do not start again before this time (ns since the epoch).
    pub backoff_until_ns: Option<i64>,
    /// The final state of the previous attempt.
    pub last: Option<ContainerState>,
    /// The image id it runs.
    pub image_id: String,
}

/// A pod as this runtime keeps it on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRecord {
    /// The pod as it was given.
    pub pod: Pod,
    /// Its uid.
    pub uid: String,
    /// The OCI runtime of its containers.
    pub engine: Engine,
    /// Its network attachment (None with hostNetwork).
    pub attachment: Option<Attachment>,
    /// The pause container's id.
    pub pause_id: String,
    /// Init, app and ephemeral containers by name.
    pub containers: BTreeMap<String, ContainerRecord>,
    /// When the sandbox was made.
    pub created_at_ns: i64,
}

impl PodRecord {
    /// Whether the pod runs in the host's network (`spec.hostNetwork`).
    pub fn host_network(&self) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false)
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!(
            "{}/{}",
            self.pod.metadata.namespace.as_deref().unwrap_or("default"),
            self.pod.metadata.name.as_deref().unwrap_or_default()
        )
    }
}

impl PodRuntime {
    /// The record of pod `uid`.
    pub fn record(&self, uid: &str) -> Result<Option<PodRecord>> {
        let path = self.pod_dir(uid).join("pod.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::InvalidSpec(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    pub(super) fn save(&self, record: &PodRecord) -> Result<()> {
        let dir = self.pod_dir(&record.uid);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join("pod.json");
        let tmp = dir.join("pod.json.tmp");
        let json = serde_json::to_vec_pretty(record)
            .map_err(|e| Error::InvalidSpec(format!("pod record: {e}")))?;
        std::fs::write(&tmp, json).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Every pod on this host.
    pub fn pods(&self) -> Result<Vec<PodRecord>> {
        let dir = self.config.data_dir.join("pods");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            if let Some(record) = self.record(&entry.file_name().to_string_lossy())? {
                out.push(record);
            }
        }
        out.sort_by_key(|r| r.created_at_ns);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_that_kept_the_whole_network_attachment_still_load() {
        let record: PodRecord = serde_json::from_value(serde_json::json!({
            "pod": {"metadata": {"name": "web", "namespace": "shop", "uid": "u1"}},
            "uid": "u1",
            "engine": "libcontainer",
            "attachment": {
                "owner": "u1", "address": "10.88.0.7", "prefix": 16, "gateway": "10.88.0.1",
                "netns": "rk8s-u1", "netns_path": "/run/netns/rk8s-u1", "host_veth": "veth1234",
                "ports": [{"host_port": 8080, "container_port": 80, "protocol": "tcp"}]
            },
            "pauseId": "u1-pause",
            "containers": {},
            "createdAtNs": 1
        }))
        .unwrap();
        let attachment = record.attachment.unwrap();
        assert_eq!(attachment.address, std::net::Ipv4Addr::new(10, 88, 0, 7));
        assert_eq!(
            attachment.netns_path,
            std::path::Path::new("/run/netns/rk8s-u1")
        );
    }
}

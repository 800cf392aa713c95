//! The device manager's checkpoint: `kubelet_internal_checkpoint` in the
//! device-plugin directory, kubelet's JSON layout (`checkpoint.Data`, v2): each
//! container's devices by NUMA node (`-1`: none) with the plugin's `Allocate` answer
//! as protobuf bytes (base64, as Go writes `[]byte`), and the devices each resource
//! had. A restarted agent reads it, so running pods keep their devices and no other
//! pod gets them. The checksum is an FNV-1a of the data as written here (kubelet's
//! hashes Go's printout of its structs, which no other program reproduces), so a
//! kubelet's file is read as corrupt and replaced.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use base64::Engine;
use prost::Message;
use rk8s_deviceplugin::v1beta1::ContainerAllocateResponse;
use serde::{Deserialize, Serialize};

use super::state::{Devices, Endpoint};

/// The file's name (kubelet's `kubeletDeviceManagerCheckpoint`).
pub const FILE: &str = "kubelet_internal_checkpoint";

/// The NUMA node of devices without topology (kubelet's `nodeWithoutTopology`).
const NO_TOPOLOGY: i64 = -1;

/// The most bytes read from a checkpoint.
const MAX_BYTES: u64 = 16 << 20;

/// One container's devices of one resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PodDevicesEntry {
    /// The pod's uid.
    #[serde(rename = "PodUID")]
    pub pod_uid: String,
    /// The container's name.
    pub container_name: String,
    /// The resource.
    pub resource_name: String,
    /// Device ids by NUMA node.
    #[serde(rename = "DeviceIDs")]
    pub device_ids: BTreeMap<i64, Vec<String>>,
    /// The `ContainerAllocateResponse`, protobuf, base64.
    pub alloc_resp: String,
}

/// What is checkpointed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Data {
    /// The allocations.
    #[serde(default)]
    pub pod_device_entries: Vec<PodDevicesEntry>,
    /// The healthy devices of each registered resource.
    #[serde(default)]
    pub registered_devices: BTreeMap<String, Vec<String>>,
}

/// The file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Checkpoint {
    /// What is kept.
    pub data: Data,
    /// FNV-1a (32 bits) of `data` as JSON.
    pub checksum: u64,
}

/// FNV-1a, 32 bits (kubelet's checksum function, over other bytes).
fn fnv1a32(bytes: &[u8]) -> u64 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    u64::from(hash)
}

fn checksum(data: &Data) -> u64 {
    fnv1a32(&serde_json::to_vec(data).unwrap_or_default())
}

/// The checkpoint of `devices`.
pub fn of(devices: &Devices) -> Checkpoint {
    let mut entries = Vec::new();
    for (uid, containers) in &devices.pods {
        for (container, resources) in containers {
            for (resource, allocation) in resources {
                let mut by_node: BTreeMap<i64, Vec<String>> = BTreeMap::new();
                for id in &allocation.ids {
                    let nodes: Vec<i64> = devices
                        .all
                        .get(resource)
                        .and_then(|all| all.get(id))
                        .and_then(|d| d.topology.as_ref())
                        .map(|t| t.nodes.iter().map(|n| n.id).collect())
                        .unwrap_or_default();
                    if nodes.is_empty() {
                        by_node.entry(NO_TOPOLOGY).or_default().push(id.clone());
                    }
                    for node in nodes {
                        by_node.entry(node).or_default().push(id.clone());
                    }
                }
                entries.push(PodDevicesEntry {
                    pod_uid: uid.clone(),
                    container_name: container.clone(),
                    resource_name: resource.clone(),
                    device_ids: by_node,
                    alloc_resp: base64::engine::general_purpose::STANDARD
                        .encode(allocation.response.encode_to_vec()),
                });
            }
        }
    }
    let data = Data {
        pod_device_entries: entries,
        registered_devices: devices
            .healthy
            .iter()
            .map(|(r, ids)| (r.clone(), ids.iter().cloned().collect()))
            .collect(),
    };
    Checkpoint {
        checksum: checksum(&data),
        data,
    }
}

/// The state a restarted agent starts from: the allocations of `checkpoint`, and
/// each registered resource with no device and an endpoint stopped `now`, so that its
/// capacity is 0 until its plugin registers again (kubelet's `readCheckpoint`).
/// Entries that cannot be read are skipped, as kubelet skips them.
pub fn restore(checkpoint: &Checkpoint, now: Instant) -> Result<Devices, String> {
    if checksum(&checkpoint.data) != checkpoint.checksum {
        return Err("checkpoint is corrupted".to_string());
    }
    let mut devices = Devices::default();
    for entry in &checkpoint.data.pod_device_entries {
        let response = base64::engine::general_purpose::STANDARD
            .decode(&entry.alloc_resp)
            .ok()
            .and_then(|bytes| ContainerAllocateResponse::decode(&bytes[..]).ok());
        let Some(response) = response else {
            tracing::warn!(
                pod = %entry.pod_uid,
                container = %entry.container_name,
                "the checkpoint's allocation response of {} cannot be read",
                entry.resource_name
            );
            continue;
        };
        let ids: BTreeSet<String> = entry.device_ids.values().flatten().cloned().collect();
        devices.insert(
            (&entry.pod_uid, &entry.container_name),
            &entry.resource_name,
            ids,
            response,
        );
    }
    for resource in checkpoint.data.registered_devices.keys() {
        devices.healthy.insert(resource.clone(), BTreeSet::new());
        devices.unhealthy.insert(resource.clone(), BTreeSet::new());
        devices.endpoints.insert(
            resource.clone(),
            Endpoint {
                generation: 0,
                options: None,
                stopped_at: Some(now),
            },
        );
    }
    Ok(devices)
}

/// Reads the checkpoint in `dir` (`None`: there is none).
pub fn read(dir: &Path) -> Result<Option<Checkpoint>, String> {
    use std::io::Read;
    let path = dir.join(FILE);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut bytes = Vec::new();
    file.take(MAX_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes `checkpoint` in `dir`, whole or not at all, and durably (kubelet's
/// `filestore.writeFile`): a temporary file of its own name written, synced and
/// renamed, then the directory synced. Callers serialize their writes.
pub fn write(dir: &Path, checkpoint: &Checkpoint) -> Result<(), String> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let fail = |e: std::io::Error| format!("failed to write checkpoint file {FILE:?}: {e}");
    let path = dir.join(FILE);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{FILE}.{}.{n}.tmp", std::process::id()));
    let bytes = serde_json::to_vec(checkpoint).map_err(|e| e.to_string())?;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(&bytes)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(fail)
}

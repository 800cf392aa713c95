//! Keeping a node registered: its Node object (labels, taints, podCIDR; capacity,
//! allocatable, conditions, addresses, node info in its status) and its Lease in
//! `kube-node-lease`, renewed as kubelet renews it (every 10 s).

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeSpec, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use super::{Error, Result, api};

/// How often the Lease is renewed (kubelet's default).
pub const LEASE_RENEW: std::time::Duration = std::time::Duration::from_secs(10);
/// The Lease's duration (kubelet: 40 s); the node lifecycle controller marks a node
/// NotReady when it is not renewed within it.
pub const LEASE_SECONDS: i32 = 40;

/// What the node says of itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeInfo {
    /// Its name.
    pub name: String,
    /// Labels besides kubernetes.io/{hostname,os,arch}.
    pub labels: BTreeMap<String, String>,
    /// Taints (`key=value:Effect`).
    pub taints: Vec<Taint>,
    /// Its pod range.
    pub pod_cidr: String,
    /// CPU kept for the system, in millicores.
    pub reserved_cpu_milli: u64,
    /// Memory kept for the system, in bytes.
    pub reserved_memory: u64,
    /// Most pods it runs.
    pub max_pods: u32,
    /// The directory whose filesystem counts for DiskPressure.
    pub data_dir: std::path::PathBuf,
    /// DiskPressure below this share of free space, in percent (kubelet's
    /// `evictionHard: nodefs.available<10%`).
    pub disk_free_percent: u8,
    /// Its InternalIP (the address the API server reaches it at).
    pub address: Option<String>,
    /// The port of its HTTPS endpoint (logs, exec).
    pub port: u16,
    /// The longest a running pod goes without its ConfigMaps and Secrets read again
    /// (kubelet's `--sync-frequency`).
    pub sync_frequency: std::time::Duration,
    /// Conditions other parts of the agent report (`NetworkPolicyReady`).
    pub extra_conditions: ExtraConditions,
    /// The device plugins' extended resources (none: the node serves no device
    /// plugins).
    pub devices: Option<std::sync::Arc<super::devices::DeviceManager>>,
}

/// A node condition besides kubelet's four: its status, reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// `True` or `False`.
    pub status: bool,
    /// A CamelCase reason.
    pub reason: &'static str,
    /// What a person reads.
    pub message: String,
}

/// Conditions other parts of the agent set, by type, posted with every status (the
/// status is a merge patch, which replaces the whole list: they must be in it).
#[derive(Clone, Debug, Default)]
pub struct ExtraConditions(std::sync::Arc<std::sync::Mutex<BTreeMap<&'static str, Condition>>>);

impl PartialEq for ExtraConditions {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl ExtraConditions {
    /// Sets condition `type_` (posted with the next status).
    pub fn set(&self, type_: &'static str, condition: Condition) {
        self.lock().insert(type_, condition);
    }

    /// Condition `type_`, if set.
    pub fn get(&self, type_: &str) -> Option<Condition> {
        self.lock().get(type_).cloned()
    }

    fn all(&self) -> Vec<(&'static str, bool, &'static str, String)> {
        self.lock()
            .iter()
            .map(|(t, c)| (*t, c.status, c.reason, c.message.clone()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Condition>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Parses `--labels` as kubelet's `--node-labels`: `key=value` each.
pub fn parse_labels(list: &[String]) -> Result<BTreeMap<String, String>> {
    list.iter()
        .map(|label| {
            label
                .split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| Error::Other(format!("label {label:?}: expected key=value")))
        })
        .collect()
}

/// Parses a taint as kubectl writes it: `key[=value]:Effect`.
pub fn parse_taint(s: &str) -> Result<Taint> {
    let (kv, effect) = s
        .rsplit_once(':')
        .ok_or_else(|| Error::Other(format!("taint {s:?}: expected key[=value]:Effect")))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(Error::Other(format!(
            "taint {s:?}: effect must be NoSchedule, PreferNoSchedule or NoExecute"
        )));
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (kv, None),
    };
    if key.is_empty() {
        return Err(Error::Other(format!("taint {s:?}: the key is empty")));
    }
    Ok(Taint {
        key: key.to_string(),
        value,
        effect: effect.to_string(),
        time_added: None,
    })
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The address this host uses to reach `server` (an `https://HOST:PORT` URL): the
/// source address of the route towards it (a UDP "connect" sends nothing), else the
/// first non-loopback IPv4 address.
pub fn node_ip(server: &str) -> Option<String> {
    let towards = server
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| {
            let host = u.host()?.trim_matches(['[', ']']).to_string();
            Some((host, u.port_u16().unwrap_or(443)))
        })
        .and_then(|(host, port)| {
            use std::net::ToSocketAddrs;
            (host.as_str(), port).to_socket_addrs().ok()?.next()
        })
        .and_then(|addr| {
            let socket = std::net::UdpSocket::bind(("0.0.0.0", 0)).ok()?;
            socket.connect(addr).ok()?;
            Some(socket.local_addr().ok()?.ip().to_string())
        });
    towards.or_else(|| {
        nix::ifaddrs::getifaddrs().ok()?.find_map(|ifa| {
            let addr = ifa.address?;
            let ip = addr.as_sockaddr_in()?.ip();
            (!ip.is_loopback()).then(|| ip.to_string())
        })
    })
}

/// (condition type, status, reason, message) as kubelet reports them.
fn conditions(
    data_dir: &Path,
    disk_free_percent: u8,
) -> Vec<(&'static str, bool, &'static str, String)> {
    let available = rk8s_runtime::stats::meminfo("MemAvailable").unwrap_or(u64::MAX);
    // kubelet's default hard eviction thresholds: memory.available < 100Mi,
    // nodefs.available < 10%, and PIDs near the limit.
    let memory_pressure = available < 100 * 1024 * 1024;
    let disk_pressure = nix::sys::statvfs::statvfs(data_dir)
        .map(|s| {
            let total = s.blocks() as u128 * s.fragment_size() as u128;
            let free = s.blocks_available() as u128 * s.fragment_size() as u128;
            total > 0 && free * 100 < total * u128::from(disk_free_percent)
        })
        .unwrap_or(false);
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u64::MAX);
    let processes = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count() as u64
        })
        .unwrap_or(0);
    let pid_pressure = processes * 10 > pid_max * 9;
    let ready = !memory_pressure && !disk_pressure && !pid_pressure;
    vec![
        (
            "MemoryPressure",
            memory_pressure,
            if memory_pressure {
                "KubeletHasInsufficientMemory"
            } else {
                "KubeletHasSufficientMemory"
            },
            format!("{} MiB available", available / (1 << 20)),
        ),
        (
            "DiskPressure",
            disk_pressure,
            if disk_pressure {
                "KubeletHasDiskPressure"
            } else {
                "KubeletHasNoDiskPressure"
            },
            String::new(),
        ),
        (
            "PIDPressure",
            pid_pressure,
            if pid_pressure {
                "KubeletHasInsufficientPID"
            } else {
                "KubeletHasSufficientPID"
            },
            format!("{processes} processes of {pid_max}"),
        ),
        (
            "Ready",
            ready,
            if ready {
                "KubeletReady"
            } else {
                "KubeletNotReady"
            },
            if ready {
                "rk8s-node is posting ready status".to_string()
            } else {
                "the node is under pressure".to_string()
            },
        ),
    ]
}

/// Creates the Node (or updates its labels) and posts its status.
pub async fn register(client: &kube::Client, info: &NodeInfo) -> Result<Node> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut labels = info.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), info.name.clone());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    labels.insert("kubernetes.io/arch".into(), arch().into());
    let existing = nodes
        .get_opt(&info.name)
        .await
        .map_err(api(format!("failed to read node {}", info.name)))?;
    if let Some(node) = &existing {
        // As kubelet's --register-with-taints: taints are the node's at registration
        // only; then they are the admin's (the API server refuses a node changing its
        // own taints, so that it cannot shed a NoExecute taint).
        let has = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        if !info.taints.is_empty() && has != info.taints {
            tracing::warn!(
                node = %info.name,
                "--taints apply when a node registers; node {} keeps the taints it has (kubectl taint changes them)",
                info.name
            );
        }
    }
    let storage = super::local_volumes::dir(&info.data_dir);
    let annotations: BTreeMap<String, String> = [(
        super::local_volumes::DIR_ANNOTATION.to_string(),
        storage.display().to_string(),
    )]
    .into();
    if existing.is_none() {
        let node = Node {
            metadata: ObjectMeta {
                name: Some(info.name.clone()),
                labels: Some(labels.clone()),
                annotations: Some(annotations),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: Some(info.pod_cidr.clone()),
                pod_cidrs: Some(vec![info.pod_cidr.clone()]),
                taints: (!info.taints.is_empty()).then(|| info.taints.clone()),
                ..Default::default()
            }),
            status: None,
        };
        nodes
            .create(&PostParams::default(), &node)
            .await
            .map_err(api(format!("failed to register node {}", info.name)))?;
    } else {
        // Labels merge; the podCIDR is the one the join gave (it cannot change).
        let patch = json!({
            "metadata": {"labels": labels, "annotations": annotations},
            "spec": {"podCIDR": info.pod_cidr, "podCIDRs": [info.pod_cidr]},
        });
        nodes
            .patch(&info.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api(format!("failed to update node {}", info.name)))?;
    }
    // Kubelet's reconcileExtendedResource: with no device checkpoint (the node was
    // recreated or reset) or no device manager, the extended resources the Node
    // still lists are zeroed, so that no pod is scheduled for devices nothing here
    // would give it.
    let reset = info
        .devices
        .as_ref()
        .is_none_or(|d| d.should_reset_extended_resources());
    let zero = match &existing {
        Some(node) if reset => stale_extended_resources(node),
        _ => Vec::new(),
    };
    post_status_zeroing(client, info, &zero).await
}

/// The extended resources in `node`'s capacity or allocatable.
fn stale_extended_resources(node: &Node) -> Vec<String> {
    let status = node.status.as_ref();
    let mut names: Vec<String> = status
        .and_then(|s| s.capacity.as_ref())
        .into_iter()
        .chain(status.and_then(|s| s.allocatable.as_ref()))
        .flat_map(|m| m.keys())
        .filter(|k| super::devices::is_extended_resource_name(k))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Posts the node's status: capacity, allocatable, conditions, addresses, node info.
pub async fn post_status(client: &kube::Client, info: &NodeInfo) -> Result<Node> {
    post_status_zeroing(client, info, &[]).await
}

/// [`post_status`], the extended resources `zero` set to 0 unless a device plugin
/// reports them.
async fn post_status_zeroing(
    client: &kube::Client,
    info: &NodeInfo,
    zero: &[String],
) -> Result<Node> {
    let nodes: Api<Node> = Api::all(client.clone());
    let (cpus, memory) = rk8s_runtime::stats::host_capacity();
    let quantity = |s: String| Quantity(s);
    let mut capacity = json!({
        "cpu": quantity(cpus.to_string()),
        "memory": quantity(format!("{}Ki", memory / 1024)),
        "pods": quantity(info.max_pods.to_string()),
    });
    let mut allocatable = json!({
        "cpu": quantity(format!("{}m", (cpus * 1000).saturating_sub(info.reserved_cpu_milli))),
        "memory": quantity(format!("{}Ki", memory.saturating_sub(info.reserved_memory) / 1024)),
        "pods": quantity(info.max_pods.to_string()),
    });
    let mut reported = info
        .devices
        .as_ref()
        .map(|d| d.capacity())
        .unwrap_or_default();
    for name in zero {
        if !reported.capacity.contains_key(name) && !reported.removed.contains(name) {
            reported.removed.push(name.clone());
        }
    }
    extended_resources(&reported, &mut capacity, &mut allocatable);
    let now = jiff::Timestamp::now().to_string();
    let conditions: Vec<_> = conditions(&info.data_dir, info.disk_free_percent)
        .into_iter()
        .chain(info.extra_conditions.all())
        .map(|(type_, status, reason, message)| {
            json!({
                "type": type_,
                "status": if status { "True" } else { "False" },
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            })
        })
        .collect();
    let mut addresses = vec![json!({"type": "Hostname", "address": info.name})];
    if let Some(ip) = &info.address {
        addresses.insert(0, json!({"type": "InternalIP", "address": ip}));
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let machine_id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    let patch = json!({"status": {
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": conditions,
        "addresses": addresses,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": info.port}},
        "nodeInfo": {
            "architecture": arch(),
            "operatingSystem": "linux",
            "kernelVersion": kernel.trim(),
            "osImage": "Linux",
            "bootID": boot_id.trim(),
            "machineID": machine_id.trim(),
            "systemUUID": machine_id.trim(),
            "containerRuntimeVersion": "libcontainer://0.7.0",
            "kubeletVersion": format!("v1.33.0-rk8s.{}", env!("CARGO_PKG_VERSION")),
            "kubeProxyVersion": "",
        },
    }});
    nodes
        .patch_status(&info.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(api(format!(
            "failed to post the status of node {}",
            info.name
        )))
}

/// Adds the device plugins' resources to `capacity` and `allocatable` (kubelet's
/// `MachineInfo` setter): every device in capacity, the healthy ones allocatable, and
/// 0 of both for a resource whose plugin went longer ago than the grace period (so it
/// still reads as a device plugin's, not a cluster-level resource).
fn extended_resources(
    devices: &super::devices::state::Capacity,
    capacity: &mut serde_json::Value,
    allocatable: &mut serde_json::Value,
) {
    for (name, count) in &devices.capacity {
        capacity[name] = json!(count.to_string());
    }
    for (name, count) in &devices.allocatable {
        allocatable[name] = json!(count.to_string());
    }
    for name in &devices.removed {
        capacity[name] = json!("0");
        allocatable[name] = json!("0");
    }
}

/// Creates or renews the node's Lease in `kube-node-lease`.
pub async fn renew_lease(client: &kube::Client, node: &str) -> Result<Lease> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = MicroTime(jiff::Timestamp::now());
    match leases
        .get_opt(node)
        .await
        .map_err(api(format!("failed to read the lease of {node}")))?
    {
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(Default::default);
            spec.renew_time = Some(now);
            spec.holder_identity = Some(node.to_string());
            spec.lease_duration_seconds = Some(LEASE_SECONDS);
            // resourceVersion kept: a concurrent writer makes this a 409, tried again next time.
            leases
                .replace(node, &PostParams::default(), &lease)
                .await
                .map_err(api(format!("failed to renew the lease of {node}")))
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(node.to_string()),
                    namespace: Some("kube-node-lease".into()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(node.to_string()),
                    lease_duration_seconds: Some(LEASE_SECONDS),
                    renew_time: Some(now.clone()),
                    acquire_time: Some(now),
                    ..Default::default()
                }),
            };
            leases
                .create(&PostParams::default(), &lease)
                .await
                .map_err(api(format!("failed to create the lease of {node}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_as_key_value_pairs() {
        let parsed = parse_labels(&["a=1".into(), "b=".into(), "c=x=y".into()]).unwrap();
        assert_eq!(parsed["a"], "1");
        assert_eq!(parsed["b"], "");
        assert_eq!(parsed["c"], "x=y");
        assert!(parse_labels(&["nope".into()]).is_err());
    }

    #[test]
    fn taints_parse_as_kubectl_writes_them() {
        let t = parse_taint("gpu=true:NoSchedule").unwrap();
        assert_eq!(
            (t.key.as_str(), t.value.as_deref(), t.effect.as_str()),
            ("gpu", Some("true"), "NoSchedule")
        );
        let t = parse_taint("dedicated:NoExecute").unwrap();
        assert_eq!(
            (t.key.as_str(), t.value, t.effect.as_str()),
            ("dedicated", None, "NoExecute")
        );
        assert!(parse_taint("x=y").is_err());
        assert!(parse_taint("x=y:Sometimes").is_err());
        assert!(parse_taint("=y:NoSchedule").is_err());
    }

    #[test]
    fn device_plugin_resources_join_capacity_and_allocatable() {
        let devices = crate::node::devices::state::Capacity {
            capacity: [("example.com/foo".to_string(), 2)].into(),
            allocatable: [("example.com/foo".to_string(), 1)].into(),
            removed: vec!["example.com/gone".to_string()],
        };
        let (mut capacity, mut allocatable) = (json!({"cpu": "2"}), json!({"cpu": "1900m"}));
        extended_resources(&devices, &mut capacity, &mut allocatable);
        assert_eq!(
            capacity,
            json!({"cpu": "2", "example.com/foo": "2", "example.com/gone": "0"})
        );
        assert_eq!(
            allocatable,
            json!({"cpu": "1900m", "example.com/foo": "1", "example.com/gone": "0"})
        );
    }

    #[test]
    fn stale_extended_resources_are_the_nodes_domain_qualified_ones() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "status": {
                "capacity": {"cpu": "2", "example.com/foo": "2", "hugepages-2Mi": "0"},
                "allocatable": {"cpu": "2", "example.com/bar": "1",
                    "kubernetes.io/x": "1"}
            }
        }))
        .unwrap();
        assert_eq!(
            stale_extended_resources(&node),
            ["example.com/bar", "example.com/foo"]
        );
        assert!(stale_extended_resources(&Node::default()).is_empty());
    }

    #[test]
    fn this_host_has_capacity_and_conditions() {
        let (cpus, memory) = rk8s_runtime::stats::host_capacity();
        assert!(cpus >= 1 && memory > 0);
        let c = conditions(Path::new("/"), 10);
        assert_eq!(c.len(), 4);
        assert_eq!(c[3].0, "Ready");
    }
}

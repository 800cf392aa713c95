//! What a pod runtime runs with: directories, the pause image, registries, RuntimeClass
//! handlers, DNS and limits.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::container::Engine;
use crate::image::PullOptions;
use crate::logs;

/// Where a pod runtime keeps things and what it runs with.
#[derive(Debug, Clone)]
pub struct PodRuntimeConfig {
    /// Pod data: `containers/<id>/` bundles, `pods/<uid>/`.
    pub data_dir: PathBuf,
    /// The image store (default `<data_dir>/images`; local modes share one store
    /// across projects).
    pub images_dir: Option<PathBuf>,
    /// The pause image (path or reference).
    pub pause_image: String,
    /// How to reach registries.
    pub pull: PullOptions,
    /// RuntimeClass handlers this host offers besides the default (`runc` → runc).
    pub handlers: BTreeMap<String, Engine>,
    /// Nameservers for pods' resolv.conf (default: the host's non-loopback ones).
    pub nameservers: Vec<String>,
    /// Search domains for pods' resolv.conf.
    pub searches: Vec<String>,
    /// The cluster's DNS server and domain (a cluster node): pods with dnsPolicy
    /// ClusterFirst (the default) resolve through it first.
    pub cluster_dns: Option<ClusterDns>,
    /// Processes per container (kubelet's podPidsLimit, per container here).
    pub pids_limit: Option<i64>,
    /// Log rotation size.
    pub log_max_bytes: u64,
    /// What the node offers pods (kubelet's allocatable): a `resourceFieldRef` to a
    /// limit its container does not set reads this instead.
    pub allocatable: Allocatable,
}

/// CPU and memory the node offers pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocatable {
    /// Millicores.
    pub cpu_milli: i64,
    /// Bytes.
    pub memory: i64,
}

impl Allocatable {
    /// All of this host's CPUs and memory.
    pub fn host() -> Self {
        let (cpus, memory) = crate::stats::host_capacity();
        Allocatable {
            cpu_milli: i64::try_from(cpus.saturating_mul(1000)).unwrap_or(i64::MAX),
            memory: i64::try_from(memory).unwrap_or(i64::MAX),
        }
    }
}

impl PodRuntimeConfig {
    /// Defaults under `data_dir` with the given pause image.
    pub fn new(data_dir: impl Into<PathBuf>, pause_image: impl Into<String>) -> Self {
        Self {
            data_dir: data_dir.into(),
            images_dir: None,
            pause_image: pause_image.into(),
            pull: PullOptions::default(),
            handlers: BTreeMap::from([("runc".to_string(), Engine::runc())]),
            nameservers: host_nameservers(),
            cluster_dns: None,
            searches: Vec::new(),
            pids_limit: Some(4096),
            log_max_bytes: logs::DEFAULT_MAX_BYTES,
            allocatable: Allocatable::host(),
        }
    }
}

/// The cluster DNS a node's pods use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDns {
    /// Its address (the node's server on the pods' gateway).
    pub nameserver: String,
    /// The cluster domain (`cluster.local`).
    pub domain: String,
}

/// The host's nameservers that pods can reach (not loopback: a pod has its own).
pub fn host_nameservers() -> Vec<String> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .map(|s| s.trim().to_string())
        .filter(|ns| !ns.starts_with("127.") && ns != "::1")
        .collect()
}

//! Container cgroups: the per-pod parent (`rk8s/pod<uid>/<container>`), statistics for
//! metrics, OOM kills, and removal of the pod's parent once its containers are gone.
//! Works on cgroup v1 (the hybrid layout of hosts without systemd) and on v2.

use std::path::{Path, PathBuf};

use libcgroups::common::{CgroupConfig, CgroupManager, CgroupSetup};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const ROOT: &str = "/sys/fs/cgroup";

/// The cgroup path of a pod's container: `/rk8s/pod<uid>/<container>`.
pub fn container_path(pod_uid: &str, container: &str) -> String {
    format!("{}/{container}", pod_path(pod_uid))
}

/// The pod's parent cgroup path.
pub fn pod_path(pod_uid: &str) -> String {
    format!("/rk8s/pod{pod_uid}")
}

/// Whether the host uses cgroup v2 only.
pub fn is_unified() -> bool {
    // The layout does not change while the host runs: look once.
    static UNIFIED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *UNIFIED.get_or_init(|| {
        matches!(
            libcgroups::common::get_cgroup_setup(),
            Ok(CgroupSetup::Unified)
        )
    })
}

/// The directories that hold `path` on this host: one per v1 controller, or one on v2.
pub fn directories(path: &str) -> Vec<PathBuf> {
    let relative = path.trim_start_matches('/');
    if is_unified() {
        return vec![Path::new(ROOT).join(relative)];
    }
    let Ok(entries) = std::fs::read_dir(ROOT) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        // Every hierarchy, the v2 one of the hybrid layout included (runc puts its
        // containers there too); the v1 aliases (cpu → cpu,cpuacct) are symlinks.
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path().join(relative))
        .collect();
    dirs.sort();
    dirs
}

/// Whether the kernel's OOM killer killed a process in the cgroup at `path`.
pub fn oom_killed(path: &str) -> bool {
    let relative = path.trim_start_matches('/');
    let file = if is_unified() {
        Path::new(ROOT).join(relative).join("memory.events")
    } else {
        Path::new(ROOT)
            .join("memory")
            .join(relative)
            .join("memory.oom_control")
    };
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("oom_kill "))
                .and_then(|n| n.trim().parse::<u64>().ok())
        })
        .is_some_and(|n| n > 0)
}

/// Removes the directories of `path` (a pod's parent), deepest first. Missing ones are
/// fine; a busy one is an error.
pub fn remove(path: &str) -> Result<()> {
    for dir in directories(path) {
        if !dir.exists() {
            continue;
        }
        // Children first (a container cgroup a crash left behind).
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    std::fs::remove_dir(entry.path()).map_err(crate::error::io(entry.path()))?;
                }
            }
        }
        match std::fs::remove_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(crate::error::io(&dir)(e)),
        }
    }
    Ok(())
}

/// Usage of a container, as cAdvisor reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// CPU time used, in nanoseconds.
    pub cpu_usage_ns: u64,
    /// Memory working set: usage minus inactive file pages.
    pub memory_working_set_bytes: u64,
    /// Memory usage including page cache.
    pub memory_usage_bytes: u64,
    /// Memory limit (0 when unlimited).
    pub memory_limit_bytes: u64,
    /// Processes in the cgroup.
    pub pids: u64,
}

/// Reads the usage of the cgroup at `path`.
pub fn usage(path: &str) -> Result<Usage> {
    let manager = libcgroups::common::create_cgroup_manager(CgroupConfig {
        cgroup_path: PathBuf::from(path),
        systemd_cgroup: false,
        container_name: String::new(),
    })
    .map_err(|e| Error::InvalidSpec(format!("cgroup {path}: {e}")))?;
    let stats = manager
        .stats()
        .map_err(|e| Error::InvalidSpec(format!("cgroup {path}: {e}")))?;
    let memory = &stats.memory;
    // cAdvisor: working set = usage - inactive_file (total_inactive_file on v1).
    let inactive = ["total_inactive_file", "inactive_file"]
        .iter()
        .find_map(|k| memory.stats.get(*k))
        .copied()
        .unwrap_or(0);
    let limit = if memory.memory.limit >= i64::MAX as u64 / 2 {
        0
    } else {
        memory.memory.limit
    };
    Ok(Usage {
        cpu_usage_ns: stats.cpu.usage.usage_total,
        memory_working_set_bytes: memory.memory.usage.saturating_sub(inactive),
        memory_usage_bytes: memory.memory.usage,
        memory_limit_bytes: limit,
        pids: stats.pids.current,
    })
}

//! Readings of resource usage at one moment: the host's (from `/proc`) and each
//! running container's (from its cgroup, as cAdvisor reads them). Rates need two
//! readings; the node agent keeps them.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use rk8s_api::resources::CgroupResources;

use crate::cgroups::{self, Usage};
use crate::container::{Status, now_ns};
use crate::error::{Error, Result, io};
use crate::runtime::ContainerRuntime;

/// The host as a whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostReading {
    /// CPU time spent outside idle and iowait since boot, all CPUs, in nanoseconds.
    pub cpu_usage_ns: u64,
    /// CPUs online.
    pub cpus: u32,
    /// `MemTotal`.
    pub memory_total_bytes: u64,
    /// `MemAvailable`.
    pub memory_available_bytes: u64,
    /// `MemFree`.
    pub memory_free_bytes: u64,
}

impl HostReading {
    /// Memory in use that cannot be reclaimed quickly (total less available).
    pub fn memory_working_set_bytes(&self) -> u64 {
        self.memory_total_bytes
            .saturating_sub(self.memory_available_bytes)
    }
}

/// One running container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerReading {
    /// Its name in the pod.
    pub name: String,
    /// The runtime's id of the current attempt.
    pub id: String,
    /// Its image (as the pod names it).
    pub image: String,
    /// When the attempt started (ns since the epoch).
    pub started_at_ns: i64,
    /// What its cgroup says.
    pub usage: Usage,
    /// Its limits as given to the cgroup (None if the pod's are unreadable).
    pub limits: Option<CgroupResources>,
}

/// One pod's running containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodReading {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
    /// When its sandbox was made (ns since the epoch).
    pub created_at_ns: i64,
    /// Its running containers.
    pub containers: Vec<ContainerReading>,
}

/// Everything at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reading {
    /// When (ns since the epoch).
    pub at_ns: i64,
    /// The host.
    pub host: HostReading,
    /// The pods with at least one running container.
    pub pods: Vec<PodReading>,
}

/// A pod whose containers are to be read.
#[derive(Debug, Clone)]
pub struct PodContainers<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// Its uid.
    pub uid: &'a str,
    /// When its sandbox was made (ns since the epoch).
    pub created_at_ns: i64,
    /// Its containers' names with the runtime's id of their current attempt.
    pub containers: Vec<(&'a str, &'a str)>,
}

/// Reads the host and the running containers of `pods`. A container whose cgroup
/// cannot be read (it just stopped, or a runtime without cgroups) is left out.
pub fn read<'a>(
    runtime: &Arc<dyn ContainerRuntime>,
    pods: impl IntoIterator<Item = PodContainers<'a>>,
) -> Result<Reading> {
    let host = host()?;
    let pods = pods
        .into_iter()
        .filter_map(|p| {
            let containers: Vec<ContainerReading> = p
                .containers
                .iter()
                .filter_map(|(name, id)| container(runtime, p.pod, name, id))
                .collect();
            (!containers.is_empty()).then(|| PodReading {
                namespace: p
                    .pod
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into()),
                name: p.pod.metadata.name.clone().unwrap_or_default(),
                uid: p.uid.to_string(),
                created_at_ns: p.created_at_ns,
                containers,
            })
        })
        .collect();
    Ok(Reading {
        at_ns: now_ns(),
        host,
        pods,
    })
}

fn container(
    runtime: &Arc<dyn ContainerRuntime>,
    pod: &Pod,
    name: &str,
    id: &str,
) -> Option<ContainerReading> {
    let state = runtime.state(id).ok()?;
    if state.status != Status::Running {
        return None;
    }
    let usage = cgroups::usage(state.cgroup_path.as_deref()?).ok()?;
    let spec = pod
        .spec
        .iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == name)?;
    let resources = spec.resources.clone().unwrap_or_default();
    let limits =
        CgroupResources::from_requirements(resources.requests.as_ref(), resources.limits.as_ref())
            .ok();
    Some(ContainerReading {
        name: name.to_string(),
        id: id.to_string(),
        image: spec.image.clone().unwrap_or_default(),
        started_at_ns: state.started_at_ns.unwrap_or(state.created_at_ns),
        usage,
        limits,
    })
}

/// CPUs and memory (bytes) of this host.
pub fn host_capacity() -> (u64, u64) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    (cpus, meminfo("MemTotal").unwrap_or(0))
}

/// A `/proc/meminfo` field, in bytes.
pub fn meminfo(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(&format!("{field}:")))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Reads `/proc/stat` and `/proc/meminfo`.
pub fn host() -> Result<HostReading> {
    let stat = std::fs::read_to_string("/proc/stat").map_err(io("/proc/stat"))?;
    let meminfo = std::fs::read_to_string("/proc/meminfo").map_err(io("/proc/meminfo"))?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as u64;
    parse_host(&stat, &meminfo, ticks)
}

fn parse_host(stat: &str, meminfo: &str, ticks_per_second: u64) -> Result<HostReading> {
    let bad = |what: &str| Error::InvalidSpec(format!("/proc: cannot read {what}"));
    // cpu  user nice system idle iowait irq softirq steal guest guest_nice
    let total: Vec<u64> = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| bad("the cpu line of /proc/stat"))?
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let busy: u64 = total
        .iter()
        .enumerate()
        // idle and iowait are not use; guest time is already in user.
        .filter(|(i, _)| matches!(i, 0 | 1 | 2 | 5 | 6 | 7))
        .map(|(_, v)| *v)
        .sum();
    let cpus = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    let kib = |key: &str| -> Result<u64> {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|v| v * 1024)
            .ok_or_else(|| bad(&format!("{key} in /proc/meminfo")))
    };
    Ok(HostReading {
        cpu_usage_ns: busy.saturating_mul(1_000_000_000 / ticks_per_second.max(1)),
        cpus: u32::try_from(cpus).unwrap_or(u32::MAX).max(1),
        memory_total_bytes: kib("MemTotal")?,
        memory_available_bytes: kib("MemAvailable")?,
        memory_free_bytes: kib("MemFree")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_read_from_proc() {
        let stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\ncpu1 50 3 25 500 10 2 1 1 0 0\nintr 1\n";
        let meminfo =
            "MemTotal:       16000 kB\nMemFree:         4000 kB\nMemAvailable:    10000 kB\n";
        let host = parse_host(stat, meminfo, 100).unwrap();
        // user + nice + system + irq + softirq + steal = 161 ticks of 10 ms.
        assert_eq!(host.cpu_usage_ns, 1_610_000_000);
        assert_eq!(host.cpus, 2);
        assert_eq!(host.memory_total_bytes, 16000 * 1024);
        assert_eq!(host.memory_working_set_bytes(), 6000 * 1024);
        assert!(parse_host("intr 1\n", meminfo, 100).is_err());
        assert!(parse_host(stat, "MemTotal: 1 kB\n", 100).is_err());
    }

    #[test]
    fn this_host_can_be_read() {
        let host = host().unwrap();
        assert!(host.cpus >= 1 && host.cpu_usage_ns > 0);
        assert!(host.memory_available_bytes <= host.memory_total_bytes);
    }
}

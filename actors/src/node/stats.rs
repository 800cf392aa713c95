//! Usage of this node and its containers, read every `--stats-interval` (cAdvisor's
//! housekeeping): the last two readings give rates. Served as kubelet serves it:
//! `GET /stats/summary` (what the API server's metrics API reads) and `GET
//! /metrics/cadvisor` (cAdvisor's container series for Prometheus).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use prometheus::{CounterVec, Encoder, Gauge, GaugeVec, Opts, Registry, TextEncoder};
use rk8s_api::metrics::{
    ContainerStats, CpuStats, MemoryStats, NodeStats, PodReference, PodStats, Summary,
};
use rk8s_runtime::pod::PodRuntime;
use rk8s_runtime::stats::{ContainerReading, Reading};

/// The default time between readings.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// The last two readings of this node.
#[derive(Debug)]
pub struct Stats {
    node: String,
    readings: Mutex<(Option<Reading>, Option<Reading>)>,
}

impl Stats {
    /// Nothing read yet, for node `node`.
    pub fn new(node: impl Into<String>) -> Self {
        Stats {
            node: node.into(),
            readings: Mutex::new((None, None)),
        }
    }

    /// Adds a reading; the one before stays for rates.
    pub fn record(&self, reading: Reading) {
        let containers: usize = reading.pods.iter().map(|p| p.containers.len()).sum();
        super::metrics::RUNNING_PODS.set(i64::try_from(reading.pods.len()).unwrap_or(i64::MAX));
        super::metrics::RUNNING_CONTAINERS.set(i64::try_from(containers).unwrap_or(i64::MAX));
        let mut r = self.readings.lock().unwrap_or_else(PoisonError::into_inner);
        r.0 = r.1.take();
        r.1 = Some(reading);
    }

    /// Reads `runtime` every `every`, until the task is dropped.
    pub async fn keep(self: Arc<Self>, runtime: Arc<PodRuntime>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match runtime.stats().await {
                Ok(reading) => self.record(reading),
                Err(e) => tracing::warn!("reading usage failed: {e}"),
            }
        }
    }

    fn both(&self) -> (Option<Reading>, Option<Reading>) {
        self.readings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The Summary API's answer; None before the first reading. CPU rates are over
    /// the time between the last two readings.
    pub fn summary(&self) -> Option<Summary> {
        let (previous, latest) = self.both();
        let latest = latest?;
        let window = previous
            .as_ref()
            .and_then(|p| u64::try_from(latest.at_ns - p.at_ns).ok())
            .filter(|w| *w > 0);
        let cpu = |before: Option<u64>, now: u64| {
            let rate = window.zip(before).map(|(w, before)| {
                let used = u128::from(now.saturating_sub(before));
                u64::try_from(used * 1_000_000_000 / u128::from(w)).unwrap_or(u64::MAX)
            });
            CpuStats {
                time: time(latest.at_ns),
                usage_nano_cores: rate,
                usage_core_nano_seconds: now,
                usage_window_nano_seconds: rate.and(window),
            }
        };
        let before: HashMap<(&str, &str), u64> = previous
            .iter()
            .flat_map(|p| &p.pods)
            .flat_map(|pod| {
                pod.containers
                    .iter()
                    .map(move |c| ((pod.uid.as_str(), c.id.as_str()), c.usage.cpu_usage_ns))
            })
            .collect();
        let host = latest.host;
        let node = NodeStats {
            node_name: self.node.clone(),
            cpu: cpu(
                previous.as_ref().map(|p| p.host.cpu_usage_ns),
                host.cpu_usage_ns,
            ),
            memory: MemoryStats {
                time: time(latest.at_ns),
                usage_bytes: host
                    .memory_total_bytes
                    .saturating_sub(host.memory_free_bytes),
                working_set_bytes: host.memory_working_set_bytes(),
                available_bytes: Some(host.memory_available_bytes),
            },
        };
        let pods = latest
            .pods
            .iter()
            .map(|pod| {
                let containers: Vec<ContainerStats> = pod
                    .containers
                    .iter()
                    .map(|c| {
                        let before = before.get(&(pod.uid.as_str(), c.id.as_str())).copied();
                        container_stats(c, cpu(before, c.usage.cpu_usage_ns), latest.at_ns)
                    })
                    .collect();
                let sum = |f: fn(&ContainerStats) -> u64| containers.iter().map(f).sum::<u64>();
                let nano_cores = containers
                    .iter()
                    .map(|c| c.cpu.usage_nano_cores)
                    .sum::<Option<u64>>();
                PodStats {
                    pod_ref: PodReference {
                        name: pod.name.clone(),
                        namespace: pod.namespace.clone(),
                        uid: pod.uid.clone(),
                    },
                    start_time: time(pod.created_at_ns),
                    cpu: CpuStats {
                        time: time(latest.at_ns),
                        usage_nano_cores: nano_cores,
                        usage_core_nano_seconds: sum(|c| c.cpu.usage_core_nano_seconds),
                        usage_window_nano_seconds: nano_cores.and(window),
                    },
                    memory: MemoryStats {
                        time: time(latest.at_ns),
                        usage_bytes: sum(|c| c.memory.usage_bytes),
                        working_set_bytes: sum(|c| c.memory.working_set_bytes),
                        available_bytes: None,
                    },
                    containers,
                }
            })
            .collect();
        Some(Summary { node, pods })
    }

    /// cAdvisor's series of the latest reading, in Prometheus' text format.
    pub fn cadvisor(&self) -> String {
        let (_, latest) = self.both();
        let registry = Registry::new();
        let mut text = Vec::new();
        if let Some(latest) = latest
            && let Ok(families) = cadvisor_families(&registry, &latest)
        {
            let _ = TextEncoder::new().encode(&families, &mut text);
        }
        String::from_utf8(text).unwrap_or_default()
    }
}

fn container_stats(c: &ContainerReading, cpu: CpuStats, at_ns: i64) -> ContainerStats {
    let limit = c.usage.memory_limit_bytes;
    ContainerStats {
        name: c.name.clone(),
        start_time: time(c.started_at_ns),
        cpu,
        memory: MemoryStats {
            time: time(at_ns),
            usage_bytes: c.usage.memory_usage_bytes,
            working_set_bytes: c.usage.memory_working_set_bytes,
            available_bytes: (limit > 0)
                .then(|| limit.saturating_sub(c.usage.memory_working_set_bytes)),
        },
    }
}

/// The labels cAdvisor puts on a container's series (kubelet's naming).
const LABELS: [&str; 6] = ["container", "id", "image", "name", "namespace", "pod"];

fn cadvisor_families(
    registry: &Registry,
    reading: &Reading,
) -> prometheus::Result<Vec<prometheus::proto::MetricFamily>> {
    let gauge = |name: &str, help: &str| -> prometheus::Result<GaugeVec> {
        let g = GaugeVec::new(Opts::new(name, help), &LABELS)?;
        registry.register(Box::new(g.clone()))?;
        Ok(g)
    };
    let cpu = CounterVec::new(
        Opts::new(
            "container_cpu_usage_seconds_total",
            "Cumulative cpu time consumed in seconds.",
        ),
        &LABELS,
    )?;
    registry.register(Box::new(cpu.clone()))?;
    let working_set = gauge(
        "container_memory_working_set_bytes",
        "Current working set in bytes.",
    )?;
    let usage = gauge(
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed.",
    )?;
    let memory_limit = gauge(
        "container_spec_memory_limit_bytes",
        "Memory limit for the container (0: none).",
    )?;
    let quota = gauge("container_spec_cpu_quota", "CPU quota of the container.")?;
    let period = gauge("container_spec_cpu_period", "CPU period of the container.")?;
    let shares = gauge("container_spec_cpu_shares", "CPU share of the container.")?;
    let start = gauge(
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds.",
    )?;
    for pod in &reading.pods {
        for c in &pod.containers {
            let id = rk8s_runtime::cgroups::container_path(&pod.uid, &c.name);
            let labels = [
                c.name.as_str(),
                id.as_str(),
                c.image.as_str(),
                c.id.as_str(),
                pod.namespace.as_str(),
                pod.name.as_str(),
            ];
            cpu.with_label_values(&labels)
                .inc_by(c.usage.cpu_usage_ns as f64 / 1e9);
            working_set
                .with_label_values(&labels)
                .set(c.usage.memory_working_set_bytes as f64);
            usage
                .with_label_values(&labels)
                .set(c.usage.memory_usage_bytes as f64);
            memory_limit
                .with_label_values(&labels)
                .set(c.usage.memory_limit_bytes as f64);
            start
                .with_label_values(&labels)
                .set(c.started_at_ns as f64 / 1e9);
            if let Some(limits) = &c.limits {
                shares
                    .with_label_values(&labels)
                    .set(limits.cpu_shares as f64);
                period
                    .with_label_values(&labels)
                    .set(limits.cpu_period as f64);
                if let Some(q) = limits.cpu_quota {
                    quota.with_label_values(&labels).set(q as f64);
                }
            }
        }
    }
    let machine = |name: &str, help: &str, value: f64| -> prometheus::Result<()> {
        let g = Gauge::with_opts(Opts::new(name, help))?;
        g.set(value);
        registry.register(Box::new(g))
    };
    machine(
        "machine_cpu_cores",
        "Number of logical CPU cores.",
        f64::from(reading.host.cpus),
    )?;
    machine(
        "machine_memory_bytes",
        "Amount of memory installed on the machine.",
        reading.host.memory_total_bytes as f64,
    )?;
    Ok(registry.gather())
}

fn time(ns: i64) -> Time {
    Time(jiff::Timestamp::from_nanosecond(i128::from(ns)).unwrap_or(jiff::Timestamp::UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rk8s_runtime::cgroups::Usage;
    use rk8s_runtime::stats::{HostReading, PodReading};

    fn reading(at_s: i64, host_cpu_s: u64, container_cpu_ms: u64) -> Reading {
        Reading {
            at_ns: at_s * 1_000_000_000,
            host: HostReading {
                cpu_usage_ns: host_cpu_s * 1_000_000_000,
                cpus: 2,
                memory_total_bytes: 8 << 30,
                memory_available_bytes: 6 << 30,
                memory_free_bytes: 5 << 30,
            },
            pods: vec![PodReading {
                namespace: "default".into(),
                name: "web".into(),
                uid: "u1".into(),
                created_at_ns: 0,
                containers: vec![ContainerReading {
                    name: "main".into(),
                    id: "c1".into(),
                    image: "busybox".into(),
                    started_at_ns: 1_000_000_000,
                    usage: Usage {
                        cpu_usage_ns: container_cpu_ms * 1_000_000,
                        memory_working_set_bytes: 3 << 20,
                        memory_usage_bytes: 5 << 20,
                        memory_limit_bytes: 64 << 20,
                        pids: 1,
                    },
                    limits: None,
                }],
            }],
        }
    }

    #[test]
    fn rates_come_from_the_last_two_readings() {
        let stats = Stats::new("n1");
        assert!(stats.summary().is_none());
        stats.record(reading(100, 50, 1_000));
        let first = stats.summary().unwrap();
        assert_eq!(first.node.cpu.usage_nano_cores, None);
        assert_eq!(first.pods[0].cpu.usage_nano_cores, None);
        // 10 s later: the host used 5 CPU-seconds (500m), the container 2.5 (250m).
        stats.record(reading(110, 55, 3_500));
        let s = stats.summary().unwrap();
        assert_eq!(s.node.cpu.usage_nano_cores, Some(500_000_000));
        assert_eq!(s.node.cpu.usage_window_nano_seconds, Some(10_000_000_000));
        assert_eq!(s.node.memory.working_set_bytes, 2 << 30);
        let pod = &s.pods[0];
        assert_eq!(pod.cpu.usage_nano_cores, Some(250_000_000));
        assert_eq!(pod.containers[0].cpu.usage_nano_cores, Some(250_000_000));
        assert_eq!(pod.containers[0].memory.available_bytes, Some(61 << 20));
        assert_eq!(pod.memory.working_set_bytes, 3 << 20);
    }

    #[test]
    fn cadvisor_series_carry_kubelets_labels() {
        let stats = Stats::new("n1");
        assert_eq!(stats.cadvisor(), "");
        stats.record(reading(100, 50, 1_500));
        let text = stats.cadvisor();
        assert!(text.contains(
            "container_cpu_usage_seconds_total{container=\"main\",id=\"/rk8s/podu1/main\",image=\"busybox\",name=\"c1\",namespace=\"default\",pod=\"web\"} 1.5"
        ), "{text}");
        assert!(text.contains("container_memory_working_set_bytes{"));
        assert!(text.contains("container_spec_memory_limit_bytes{"));
        assert!(text.contains("machine_cpu_cores 2"));
    }
}

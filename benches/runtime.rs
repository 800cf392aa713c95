//! Node runtime benchmark (`make bench`, as root), on the busybox image of
//! images/build.sh:
//!
//! - create → start → delete of one container: rk8s (its container helper, already
//!   running, + libcontainer, over its socket) against the `runc` CLI (same bundle,
//!   same spec) and the `podman` CLI (same image), each a process per step;
//! - pod start (pause + one container, network included) until Running: p50/p99,
//!   and podman's `pod create` + `run -d --pod` beside it;
//! - 50 pods started concurrently on this host: total time until all run.
//!
//! Prints a table and writes `target/bench/runtime.json`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "runtime/podman.rs"]
mod podman;
#[path = "../tests/support/runtime.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{ms, percentile, print_rows, write_json};
use rk8s_runtime::spec::{self, ContainerConfig};
use rk8s_runtime::{ContainerRuntime, CreateContainer, Engine};
use serde_json::json;
use support::{PodHost, busybox, pause};

const LIFECYCLES: usize = 100;
const POD_STARTS: usize = 40;
const CONCURRENT_PODS: usize = 50;

fn bundle(host: &PodHost, id: &str) -> std::path::PathBuf {
    let image = host.pods.images().local(&busybox()).unwrap();
    let bundle = host.data.path().join("bench").join(id);
    let rootfs = rk8s_runtime::rootfs::Rootfs::in_bundle(&bundle);
    rootfs.mount(&image.layers).unwrap();
    let config = ContainerConfig {
        args: vec!["sleep".into(), "1000".into()],
        env: vec![],
        cwd: String::new(),
        uid: Some(0),
        gid: Some(0),
        image_user: String::new(),
        hostname: None,
        rootfs: rootfs.target.clone(),
        readonly_rootfs: false,
        namespaces: spec::sandbox_namespaces(None)
            .into_iter()
            .filter(|n| n.kind != oci_spec::runtime::LinuxNamespaceType::Uts)
            .collect(),
        cgroups_path: format!("/rk8s/bench/{id}"),
        resources: rk8s_api::resources::CgroupResources {
            cpu_shares: 1024,
            cpu_quota: None,
            cpu_period: 100_000,
            memory_limit: Some(64 << 20),
        },
        pids_limit: Some(100),
        mounts: vec![],
        cap_add: vec![],
        cap_drop: vec![],
        terminal: false,
        devices: Vec::new(),
        annotations: Default::default(),
    };
    spec::write(&bundle, &config.to_spec().unwrap()).unwrap();
    bundle
}

fn runc(args: &[&str]) {
    // `runc create` hands its stdio to the container: pipes would stay open, so its
    // messages go to a file.
    let errors = tempfile::tempfile().unwrap();
    let status = Command::new("runc")
        .args(["--root", "/run/rk8s-bench-runc"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(errors.try_clone().unwrap())
        .status()
        .unwrap();
    if !status.success() {
        let mut text = String::new();
        use std::io::{Read, Seek};
        let mut errors = errors;
        errors.rewind().unwrap();
        errors.read_to_string(&mut text).unwrap();
        panic!("runc {args:?}: {text}");
    }
}

fn lifecycle_rk8s(host: &PodHost, bundle: &std::path::Path, samples: usize) -> Vec<Duration> {
    let mut times = Vec::new();
    for i in 0..samples {
        let id = format!("bench-rk8s-{i}");
        let start = Instant::now();
        host.helper
            .create(&CreateContainer {
                id: id.clone(),
                bundle: bundle.to_path_buf(),
                engine: Engine::Libcontainer,
                log_path: host.data.path().join("bench/rk8s.log"),
                log_max_bytes: 1 << 20,
                io: Default::default(),
            })
            .unwrap();
        host.helper.start(&id).unwrap();
        host.helper.delete(&id, true).unwrap();
        times.push(start.elapsed());
    }
    times.sort();
    times
}

fn lifecycle_runc(bundle: &std::path::Path, samples: usize) -> Vec<Duration> {
    let mut times = Vec::new();
    let bundle = bundle.display().to_string();
    for i in 0..samples {
        let id = format!("bench-runc-{i}");
        let start = Instant::now();
        runc(&["create", "--bundle", &bundle, &id]);
        runc(&["start", &id]);
        runc(&["delete", "--force", &id]);
        times.push(start.elapsed());
    }
    times.sort();
    times
}

/// Times `step` `samples` times (after a few unrecorded runs), sorted.
fn timed(samples: usize, mut step: impl FnMut()) -> Vec<Duration> {
    for _ in 0..5 {
        step();
    }
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            step();
            start.elapsed()
        })
        .collect();
    times.sort();
    times
}

fn pod(host: &PodHost, name: &str) -> k8s_openapi::api::core::v1::Pod {
    host.pod(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": busybox(), "command": ["sleep", "3600"]}]}
    }))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let host = PodHost::new();
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut json_rows = Vec::new();

    // 1. One container's lifecycle, ours against runc's CLI on the same bundle.
    let rk8s_bundle = bundle(&host, "rk8s");
    let runc_bundle = bundle(&host, "runc");
    lifecycle_rk8s(&host, &rk8s_bundle, 5);
    lifecycle_runc(&runc_bundle, 5);
    let ours = lifecycle_rk8s(&host, &rk8s_bundle, LIFECYCLES);
    let theirs = lifecycle_runc(&runc_bundle, LIFECYCLES);
    for b in [&rk8s_bundle, &runc_bundle] {
        rk8s_runtime::rootfs::Rootfs::in_bundle(b)
            .unmount()
            .unwrap();
    }
    let _ = std::fs::remove_dir_all("/run/rk8s-bench-runc");
    let _ = rk8s_runtime::cgroups::remove("/rk8s/bench");
    let ratio = ms(percentile(&ours, 0.5)) / ms(percentile(&theirs, 0.5));
    let podman = podman::Podman::new();
    let images = podman
        .as_ref()
        .map(|p| (p.load(&busybox()), p.load(&pause())));
    let mut lifecycles = vec![
        (
            "rk8s (warm container helper + libcontainer: 3 requests on its socket)",
            ours,
        ),
        ("runc CLI (3 runc processes)", theirs),
    ];
    if let (Some(p), Some((image, _))) = (&podman, &images) {
        lifecycles.push((
            "podman CLI (create, start, rm: 3 podman processes, conmon, runc)",
            timed(LIFECYCLES, || p.lifecycle(image)),
        ));
        lifecycles.push((
            "`podman run --rm IMAGE true` (one command)",
            timed(LIFECYCLES, || p.run_rm(image)),
        ));
    } else {
        rows.push((
            "podman".into(),
            "not installed: skipped (scripts/setup-bench.sh installs it)".into(),
        ));
    }
    for (name, t) in &lifecycles {
        rows.push((
            format!("create→start→delete, {name}"),
            format!(
                "p50 {:.2} ms   p99 {:.2} ms   ({LIFECYCLES} runs)",
                ms(percentile(t, 0.5)),
                ms(percentile(t, 0.99))
            ),
        ));
        json_rows.push(
            json!({"case": "lifecycle", "runtime": name, "runs": LIFECYCLES,
            "p50_ms": ms(percentile(t, 0.5)), "p99_ms": ms(percentile(t, 0.99))}),
        );
    }
    rows.push((
        "rk8s / runc (p50)".into(),
        format!("{ratio:.3}   (goal ≤ 0.25)"),
    ));
    json_rows.push(json!({"case": "lifecycle_ratio", "rk8s_over_runc_p50": ratio}));
    if let Some((_, podman_times)) = lifecycles.get(2) {
        let ratio = ms(percentile(&lifecycles[0].1, 0.5)) / ms(percentile(podman_times, 0.5));
        rows.push(("rk8s / podman (p50)".into(), format!("{ratio:.3}")));
        json_rows.push(json!({"case": "lifecycle_ratio", "rk8s_over_podman_p50": ratio}));
    }

    // 2. Pod start, sandbox and network included, until the pod is Running.
    let mut starts = Vec::new();
    runtime.block_on(async {
        for i in 0..POD_STARTS {
            let p = pod(&host, &format!("start-{i}"));
            let uid = p.metadata.uid.clone().unwrap();
            let begin = Instant::now();
            host.pods.run_pod(&p).await.unwrap();
            host.sync_until(&uid, "Running", |s| s.phase.as_deref() == Some("Running"))
                .await;
            starts.push(begin.elapsed());
            host.pods.stop_pod(&uid, Duration::ZERO).await.unwrap();
        }
    });
    starts.sort();
    let mut pod_starts = |name: &str, runtime: &str, starts: &[Duration]| {
        let (p50, p99) = (ms(percentile(starts, 0.5)), ms(percentile(starts, 0.99)));
        rows.push((
            format!("pod start, {name}"),
            format!("p50 {p50:.1} ms   p99 {p99:.1} ms   ({POD_STARTS} pods, one at a time)"),
        ));
        json_rows.push(
            json!({"case": "pod_start", "runtime": runtime, "pods": POD_STARTS,
            "p50_ms": p50, "p99_ms": p99}),
        );
    };
    pod_starts("rk8s (pause + 1 container + network)", "rk8s", &starts);
    if let (Some(p), Some((image, infra))) = (&podman, &images) {
        // Each pod removed before the next one starts, as the rk8s pods above.
        let mut starts: Vec<Duration> = (0..POD_STARTS)
            .map(|_| {
                let begin = Instant::now();
                let pod = p.pod_start(infra, image);
                let took = begin.elapsed();
                p.pod_remove(&pod);
                took
            })
            .collect();
        starts.sort();
        pod_starts(
            "podman (pod create + run -d --pod; no network: --network none)",
            "podman",
            &starts,
        );
    }
    drop(podman);

    // 3. Many pods at once.
    let total = runtime.block_on(async {
        let pods: Vec<_> = (0..CONCURRENT_PODS)
            .map(|i| pod(&host, &format!("many-{i}")))
            .collect();
        let begin = Instant::now();
        let host = &host;
        futures_util::future::join_all(pods.iter().map(|p| async move {
            let uid = p.metadata.uid.clone().unwrap();
            host.pods.run_pod(p).await.unwrap();
            host.sync_until(&uid, "Running", |s| s.phase.as_deref() == Some("Running"))
                .await;
        }))
        .await;
        let total = begin.elapsed();
        futures_util::future::join_all(pods.iter().map(|p| {
            host.pods
                .stop_pod(p.metadata.uid.as_deref().unwrap(), Duration::ZERO)
        }))
        .await;
        total
    });
    rows.push((
        format!("{CONCURRENT_PODS} pods started concurrently"),
        format!("{:.2} s until all Running", total.as_secs_f64()),
    ));
    json_rows.push(
        json!({"case": "concurrent_pods", "pods": CONCURRENT_PODS, "total_s": total.as_secs_f64()}),
    );

    println!(
        "\nrk8s node runtime, busybox image, cgroup {} ({} cores)\n",
        if rk8s_runtime::cgroups::is_unified() {
            "v2"
        } else {
            "v1 (hybrid)"
        },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    print_rows(&rows);
    write_json(
        "runtime",
        &json!({"benchmark": "runtime", "rows": json_rows}),
    );
}

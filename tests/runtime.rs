//! The node runtime with real containers (root): pods of busybox containers through
//! the container helper and youki's libcontainer (and runc), on a real bridge network.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/runtime.rs"]
mod support;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rk8s_runtime::ExecProcess;
use serde_json::json;
use support::registry::Registry;
use support::{PodHost, busybox};

async fn exec_output(host: &PodHost, uid: &str, container: &str, args: &[&str]) -> (i32, String) {
    let (out_r, out_w) = nix::unistd::pipe().unwrap();
    let devnull: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
    let err_w = out_w.try_clone().unwrap();
    let process = ExecProcess {
        args: args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let code = host
        .pods
        .exec(uid, container, process, [devnull, out_w, err_w])
        .await
        .unwrap();
    let mut text = String::new();
    std::fs::File::from(out_r)
        .read_to_string(&mut text)
        .unwrap();
    (code, text)
}

fn container_log(host: &PodHost, uid: &str, container: &str) -> String {
    let (path, _) = host.pods.container_log(uid, container, false).unwrap();
    let mut out = Vec::new();
    rk8s_runtime::logs::read(&path, &Default::default(), &mut out, &mut || false).unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_containers_of_a_pod_share_localhost_and_limits_reach_the_cgroups() {
    let host = PodHost::new();
    let pod = host.pod(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {
            "containers": [
                {"name": "httpd", "image": busybox(),
                 "command": ["httpd", "-f", "-p", "8080", "-h", "/var/www"],
                 "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}},
                {"name": "client", "image": busybox(),
                 "command": ["sh", "-c", "until wget -q -O - http://127.0.0.1:8080/; do sleep 0.1; done; echo fetched; echo shared > /data/note; exec sleep 3600"],
                 "volumeMounts": [{"name": "scratch", "mountPath": "/data"}]}
            ],
            "volumes": [{"name": "scratch", "emptyDir": {}}]
        }
    }));
    let uid = pod.metadata.uid.clone().unwrap();
    host.pods.run_pod(&pod).await.unwrap();
    let status = host
        .sync_until(&uid, "Running", |s| s.phase.as_deref() == Some("Running"))
        .await;
    assert!(status.pod_ip.is_some());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !container_log(&host, &uid, "client").contains("fetched") {
        assert!(
            std::time::Instant::now() < deadline,
            "client log: {}",
            container_log(&host, &uid, "client")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(container_log(&host, &uid, "client").contains("rk8s busybox"));

    let (code, out) = exec_output(
        &host,
        &uid,
        "client",
        &["wget", "-q", "-O", "-", "http://localhost:8080/"],
    )
    .await;
    assert_eq!((code, out.trim()), (0, "<h1>rk8s busybox</h1>"));
    let (code, _) = exec_output(&host, &uid, "client", &["sh", "-c", "exit 7"]).await;
    assert_eq!(code, 7);
    let (_, note) = exec_output(&host, &uid, "client", &["cat", "/data/note"]).await;
    assert_eq!(note, "shared\n");
    let note_on_host = host
        .data
        .path()
        .join("pods")
        .join(&uid)
        .join("volumes/scratch/note");
    assert_eq!(std::fs::read_to_string(note_on_host).unwrap(), "shared\n");
    let (code, _) = exec_output(&host, &uid, "client", &["sh", "-c", "exit 7"]).await;
    assert_eq!(code, 7);
    let (_, hostname) = exec_output(&host, &uid, "client", &["hostname"]).await;
    assert_eq!(hostname.trim(), "web");
    // The helper raises its own descriptor limit; its containers and their exec'd
    // processes keep the one their spec sets.
    let (_, limit) = exec_output(&host, &uid, "client", &["sh", "-c", "ulimit -n"]).await;
    assert_eq!(limit.trim(), "1024");
    let (_, limits) = exec_output(&host, &uid, "client", &["cat", "/proc/1/limits"]).await;
    let open_files = limits.lines().find(|l| l.starts_with("Max open files"));
    assert_eq!(
        open_files.map(|l| l.split_whitespace().skip(3).take(2).collect::<Vec<_>>()),
        Some(vec!["1024", "1024"]),
        "{limits}"
    );

    let cgroup = |controller: &str, file: &str| {
        let v1 = format!("/sys/fs/cgroup/{controller}/rk8s/pod{uid}/httpd/{file}");
        std::fs::read_to_string(&v1)
            .unwrap_or_else(|e| panic!("{v1}: {e}"))
            .trim()
            .to_string()
    };
    if !rk8s_runtime::cgroups::is_unified() {
        assert_eq!(
            cgroup("memory", "memory.limit_in_bytes"),
            (64 << 20).to_string()
        );
        assert_eq!(cgroup("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(cgroup("cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(cgroup("cpu", "cpu.shares"), "512");
    }
    let usage = rk8s_runtime::cgroups::usage(&rk8s_runtime::cgroups::container_path(&uid, "httpd"))
        .unwrap();
    assert!(
        usage.memory_usage_bytes > 0 && usage.cpu_usage_ns > 0,
        "{usage:?}"
    );
    assert_eq!(usage.memory_limit_bytes, 64 << 20);

    host.pods
        .stop_pod(&uid, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(host.leftovers(&uid), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_hog_is_oom_killed_and_reported_so() {
    let host = PodHost::new();
    let pod = host.pod(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "hog"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "hog", "image": busybox(),
                "command": ["sh", "-c", "x=$(yes aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa | head -c 200000000); echo survived"],
                "resources": {"limits": {"memory": "16Mi"}}}]
        }
    }));
    let uid = pod.metadata.uid.clone().unwrap();
    host.pods.run_pod(&pod).await.unwrap();
    let status = host
        .sync_until(&uid, "Failed", |s| s.phase.as_deref() == Some("Failed"))
        .await;
    let terminated = status.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(terminated.reason.as_deref(), Some("OOMKilled"));
    assert_eq!(terminated.exit_code, 137);
    assert!(!container_log(&host, &uid, "hog").contains("survived"));
    host.pods.stop_pod(&uid, Duration::ZERO).await.unwrap();
    assert_eq!(host.leftovers(&uid), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_container_restarts_after_a_doubling_backoff() {
    let host = PodHost::new();
    let pod = host.pod(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "crash"},
        "spec": {
            "initContainers": [{"name": "init", "image": busybox(), "command": ["sh", "-c", "echo init done"]}],
            "containers": [{"name": "crash", "image": busybox(), "command": ["sh", "-c", "echo attempt; exit 3"]}]
        }
    }));
    let uid = pod.metadata.uid.clone().unwrap();
    host.pods.run_pod(&pod).await.unwrap();
    // A stopped container waiting out its backoff shows that stop as its last state.
    let backing_off = |s: &k8s_openapi::api::core::v1::PodStatus, restarts: i32| {
        s.container_statuses.as_ref().is_some_and(|c| {
            c[0].restart_count == restarts
                && c[0]
                    .state
                    .as_ref()
                    .and_then(|st| st.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref())
                    == Some("CrashLoopBackOff")
        })
    };
    let terminated = |s: &k8s_openapi::api::core::v1::PodStatus| {
        s.container_statuses
            .as_ref()
            .and_then(|c| c[0].last_state.clone())
            .and_then(|st| st.terminated)
    };
    let status = host
        .sync_until(&uid, "the first exit", |s| backing_off(s, 0))
        .await;
    assert_eq!(
        status.init_container_statuses.clone().unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap()
            .exit_code,
        0
    );
    let finished = |s: &k8s_openapi::api::core::v1::PodStatus| {
        let t = terminated(s).unwrap().finished_at.unwrap().0;
        i64::try_from(t.as_nanosecond()).unwrap()
    };
    let first_exit = finished(&status);
    let second = Duration::from_secs(1).as_nanos() as i64;
    // The clock is the caller's: 5 s after the exit it waits, 11 s after it restarts.
    let waiting = host
        .pods
        .sync_pod(&uid, first_exit + 5 * second)
        .await
        .unwrap();
    let state = waiting.container_statuses.unwrap()[0].clone();
    assert_eq!(
        state.state.unwrap().waiting.unwrap().reason.as_deref(),
        Some("CrashLoopBackOff")
    );
    assert_eq!(state.restart_count, 0);
    let restarted = host
        .pods
        .sync_pod(&uid, first_exit + 11 * second)
        .await
        .unwrap();
    assert_eq!(restarted.container_statuses.unwrap()[0].restart_count, 1);
    let status = host
        .sync_until(&uid, "the second exit", |s| backing_off(s, 1))
        .await;
    let last = status.container_statuses.unwrap()[0]
        .last_state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (3, Some("Error")));
    let record = host.pods.record(&uid).unwrap().unwrap();
    let id = record.containers["crash"].id.clone().unwrap();
    let second_exit = host
        .pods
        .runtime()
        .state(&id)
        .unwrap()
        .exit
        .unwrap()
        .finished_at_ns;
    // Second crash: 20 s.
    let early = host
        .pods
        .sync_pod(&uid, second_exit + 15 * second)
        .await
        .unwrap();
    assert_eq!(early.container_statuses.unwrap()[0].restart_count, 1);
    let late = host
        .pods
        .sync_pod(&uid, second_exit + 21 * second)
        .await
        .unwrap();
    assert_eq!(late.container_statuses.unwrap()[0].restart_count, 2);
    // Each attempt has its own log; --previous reads the last one.
    let (previous, _) = host.pods.container_log(&uid, "crash", true).unwrap();
    assert!(previous.ends_with("crash/1.log"), "{}", previous.display());
    host.pods.stop_pod(&uid, Duration::ZERO).await.unwrap();
    assert_eq!(host.leftovers(&uid), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_survive_a_killed_helper_and_are_adopted_not_restarted() {
    let host = PodHost::new();
    let pod = host.pod(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "ticker"},
        "spec": {"containers": [{"name": "tick", "image": busybox(),
            "command": ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"]}]}
    }));
    let uid = pod.metadata.uid.clone().unwrap();
    host.pods.run_pod(&pod).await.unwrap();
    host.sync_until(&uid, "Running", |s| s.phase.as_deref() == Some("Running"))
        .await;
    let id = host.pods.record(&uid).unwrap().unwrap().containers["tick"]
        .id
        .clone()
        .unwrap();
    let before = host.pods.runtime().state(&id).unwrap();

    let helper = nix::unistd::Pid::from_raw(host.helper_pid());
    nix::sys::signal::kill(helper, nix::sys::signal::Signal::SIGKILL).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lines_at_kill = container_log(&host, &uid, "tick").lines().count();

    // A restarted agent: a new pod runtime over the same directories starts a new helper.
    let agent = host.reopen();
    let status = agent
        .sync_pod(&uid, rk8s_runtime::container::now_ns())
        .await
        .unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status.container_statuses.unwrap()[0].restart_count, 0);
    let after = agent.runtime().state(&id).unwrap();
    assert_eq!(
        (after.pid, after.status),
        (before.pid, rk8s_runtime::Status::Running)
    );
    assert_ne!(host.helper_pid(), helper.as_raw());
    // Output written while no helper read it, and after, reaches the log.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = container_log(&host, &uid, "tick");
    assert!(log.lines().count() > lines_at_kill + 3, "{log}");
    let numbers: Vec<u64> = log
        .lines()
        .filter_map(|l| l.strip_prefix("tick ")?.parse().ok())
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "no line lost: {numbers:?}"
    );

    // The agent learns the pod is gone (its record too, as after a crash half-way):
    // what is left of it is found and removed.
    assert_eq!(
        agent.remove_orphans(|_| true).await.unwrap(),
        Vec::<String>::new()
    );
    std::fs::remove_file(host.data.path().join("pods").join(&uid).join("pod.json")).unwrap();
    let removed = agent.remove_orphans(|_| true).await.unwrap();
    assert_eq!(removed.len(), 3, "{removed:?}");
    assert!(removed.iter().any(|r| r.starts_with("network attachment")));
    std::fs::remove_dir_all(host.data.path().join("pods").join(&uid)).unwrap();
    rk8s_runtime::cgroups::remove(&rk8s_runtime::cgroups::pod_path(&uid)).unwrap();
    assert_eq!(host.leftovers(&uid), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runc_backend_runs_the_same_pod_and_its_host_port_answers() {
    let host = PodHost::new();
    let host_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pod = host.pod(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "runc-web"},
        "spec": {
            "runtimeClassName": "runc",
            "containers": [
                {"name": "httpd", "image": busybox(), "command": ["httpd", "-f", "-p", "8080", "-h", "/var/www"],
                 "ports": [{"containerPort": 8080, "hostPort": host_port}],
                 "resources": {"limits": {"memory": "32Mi"}}},
                {"name": "client", "image": busybox(), "command": ["sleep", "3600"]}
            ]
        }
    }));
    let uid = pod.metadata.uid.clone().unwrap();
    let record = host.pods.run_pod(&pod).await.unwrap();
    assert_eq!(record.engine.name(), "runc");
    host.sync_until(&uid, "Running", |s| s.phase.as_deref() == Some("Running"))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, out) = exec_output(
            &host,
            &uid,
            "client",
            &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"],
        )
        .await;
        if code == 0 {
            assert_eq!(out.trim(), "<h1>rk8s busybox</h1>");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "wget: {code} {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The host port forwards loopback traffic on the host into the pod (nftables DNAT).
    let body = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", host_port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    assert!(
        body.contains(" 200 OK") && body.contains("rk8s busybox"),
        "{body}"
    );
    // A second pod may not take the same host port.
    let rival = host.pod(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rival"},
        "spec": {"containers": [{"name": "c", "image": busybox(), "command": ["sleep", "1"],
                 "ports": [{"containerPort": 80, "hostPort": host_port}]}]}
    }));
    let err = host.pods.run_pod(&rival).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "host port {host_port}/tcp is already in use by pod default/runc-web"
        )),
        "{err}"
    );
    assert_eq!(
        host.leftovers(rival.metadata.uid.as_deref().unwrap()),
        Vec::<String>::new()
    );
    let limit = rk8s_runtime::cgroups::usage(&rk8s_runtime::cgroups::container_path(&uid, "httpd"))
        .unwrap();
    assert_eq!(limit.memory_limit_bytes, 32 << 20);
    host.pods
        .stop_pod(&uid, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(host.leftovers(&uid), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_pods_created_at_once_all_run() {
    let host = PodHost::new();
    let pods: Vec<_> = (0..20)
        .map(|i| {
            host.pod(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("many-{i}")},
                "spec": {"containers": [{"name": "main", "image": busybox(), "command": ["sleep", "3600"]}]}
            }))
        })
        .collect();
    let started = futures_util::future::join_all(pods.iter().map(|p| host.pods.run_pod(p))).await;
    for result in &started {
        assert!(result.is_ok(), "{result:?}");
    }
    let host = &host;
    let statuses = futures_util::future::join_all(pods.iter().map(|p| {
        let uid = p.metadata.uid.clone().unwrap();
        async move {
            host.sync_until(&uid, "Running", |s| s.phase.as_deref() == Some("Running"))
                .await
        }
    }))
    .await;
    let mut ips: Vec<_> = statuses.iter().map(|s| s.pod_ip.clone().unwrap()).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 20, "every pod has its own address");
    // Twenty clients found no helper at once: exactly one was started. (A container's
    // init process is a fork of the helper until it execs, so it shows the helper's
    // command line for a moment: only processes whose parent is no helper count.)
    let root = host.run.join("helper").display().to_string();
    let with_helper_cmdline: std::collections::HashMap<u32, u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            if !(args.contains(&&b"__runtime-helper"[..]) && args.contains(&root.as_bytes())) {
                return None;
            }
            let status = std::fs::read_to_string(e.path().join("status")).ok()?;
            let ppid = status
                .lines()
                .find_map(|l| l.strip_prefix("PPid:"))?
                .trim()
                .parse()
                .ok()?;
            Some((pid, ppid))
        })
        .collect();
    let helpers = with_helper_cmdline
        .values()
        .filter(|ppid| !with_helper_cmdline.contains_key(ppid))
        .count();
    assert_eq!(helpers, 1, "helpers for {root}");
    let stopped = futures_util::future::join_all(pods.iter().map(|p| {
        host.pods
            .stop_pod(p.metadata.uid.as_deref().unwrap(), Duration::from_secs(2))
    }))
    .await;
    for (pod, result) in pods.iter().zip(stopped) {
        result.unwrap();
        assert_eq!(
            host.leftovers(pod.metadata.uid.as_deref().unwrap()),
            Vec::<String>::new()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_pulled_from_a_local_registry_runs() {
    let registry = Registry::start();
    let reference = registry.push(&support::images().join("busybox"), "rk8s/busybox:v1");
    let insecure = format!("127.0.0.1:{}", registry.port);
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    // Each layer's byte counts: (downloaded, size), as they arrive.
    let counts = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<
        String,
        Vec<(u64, u64)>,
    >::new()));
    let counted = counts.clone();
    let host = PodHost::with_config(|c| {
        c.pull.insecure_registries = vec![insecure];
        c.pull.progress = Some(std::sync::Arc::new(move |l: &str| {
            sink.lock().unwrap().push(l.to_string())
        }));
        c.pull.layer_progress = Some(std::sync::Arc::new(move |digest: &str, n, size| {
            let mut counts = counted.lock().unwrap();
            counts
                .entry(digest.to_string())
                .or_default()
                .push((n, size));
        }));
    });
    let pod = host.pod(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "pulled"},
        "spec": {"restartPolicy": "Never",
                 "containers": [{"name": "main", "image": reference, "command": ["sh", "-c", "echo pulled ok"]}]}
    }));
    let uid = pod.metadata.uid.clone().unwrap();
    host.pods.run_pod(&pod).await.unwrap();
    host.sync_until(&uid, "Succeeded", |s| {
        s.phase.as_deref() == Some("Succeeded")
    })
    .await;
    assert_eq!(container_log(&host, &uid, "main"), "pulled ok\n");
    let images = host.pods.images().list().unwrap();
    assert!(
        images
            .iter()
            .any(|i| i.reference == reference && i.size > 0),
        "{images:?}"
    );
    assert!(
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("layer 1/1")),
        "progress lines"
    );
    // The layer's bytes were counted up to its size, never backwards.
    let counts = counts.lock().unwrap().clone();
    assert_eq!(counts.len(), 1, "{counts:?}");
    let steps = counts.values().next().unwrap();
    let (last, size) = *steps.last().unwrap();
    assert!(size > 0 && last == size, "{steps:?}");
    assert!(steps.windows(2).all(|w| w[0].0 < w[1].0), "{steps:?}");
    // Pulling again finds every layer present.
    host.pods.images().remove(&reference).unwrap();
    assert!(host.pods.images().get(&reference).unwrap().is_none());
    host.pods.stop_pod(&uid, Duration::ZERO).await.unwrap();
    assert_eq!(host.leftovers(&uid), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registries_yaml_mirrors_serve_another_registrys_images_in_order() {
    let registry = Registry::start();
    registry.push(&support::images().join("busybox"), "rk8s/busybox:v1");
    // The first mirror is down (a closed port): the second one serves; the image keeps
    // the name it was asked by (its registry, registry.invalid, is never reached).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = format!(
        "mirrors:\n  registry.invalid:\n    endpoint:\n      - http://127.0.0.1:{closed}\n      - http://127.0.0.1:{}\n",
        registry.port
    );
    let registries =
        rk8s_runtime::image::registries::Registries::parse("registries.yaml", &file).unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let host = PodHost::with_config(|c| {
        c.pull.registries = std::sync::Arc::new(registries);
        c.pull.progress = Some(std::sync::Arc::new(move |l: &str| {
            sink.lock().unwrap().push(l.to_string())
        }));
    });
    let reference = "registry.invalid/rk8s/busybox:v1";
    let pod = host.pod(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "mirrored"},
        "spec": {"restartPolicy": "Never",
                 "containers": [{"name": "main", "image": reference, "command": ["sh", "-c", "echo mirrored ok"]}]}
    }));
    let uid = pod.metadata.uid.clone().unwrap();
    host.pods.run_pod(&pod).await.unwrap();
    host.sync_until(&uid, "Succeeded", |s| {
        s.phase.as_deref() == Some("Succeeded")
    })
    .await;
    assert_eq!(container_log(&host, &uid, "main"), "mirrored ok\n");
    assert!(host.pods.images().get(reference).unwrap().is_some());
    let lines = lines.lock().unwrap().clone();
    let failed_first = lines
        .iter()
        .position(|l| l.contains(&format!("127.0.0.1:{closed} failed")));
    let served = lines
        .iter()
        .position(|l| l.contains(&format!("from the mirror 127.0.0.1:{}", registry.port)));
    assert!(
        failed_first.is_some() && served.is_some() && failed_first < served,
        "{lines:?}"
    );
    host.pods.stop_pod(&uid, Duration::ZERO).await.unwrap();
    assert_eq!(host.leftovers(&uid), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_gate_readiness_and_a_failed_liveness_probe_kills_the_container() {
    let mut host = PodHost::new();
    let (tell, mut told) = tokio::sync::mpsc::channel(rk8s_runtime::pod::HAPPENINGS_QUEUED);
    host.pods.tell_to(tell);
    let pod = host.pod(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "probed"},
        "spec": {"containers": [{
            "name": "web", "image": busybox(),
            "command": ["sh", "-c", "touch /tmp/alive; sleep 1; httpd -p 8080 -h /var/www; exec sleep 3600"],
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/index.html", "port": "http"}, "periodSeconds": 1},
            "livenessProbe": {"exec": {"command": ["cat", "/tmp/alive"]}, "periodSeconds": 1, "failureThreshold": 2}
        }]}
    }));
    let uid = pod.metadata.uid.clone().unwrap();
    host.pods.run_pod(&pod).await.unwrap();
    let ready = |s: &k8s_openapi::api::core::v1::PodStatus| {
        s.container_statuses.as_ref().is_some_and(|c| c[0].ready)
    };
    let running = host
        .sync_until(&uid, "Running", |s| s.phase.as_deref() == Some("Running"))
        .await;
    assert!(
        !ready(&running),
        "not ready before the readiness probe passed"
    );
    let status = host.sync_until(&uid, "Ready", ready).await;
    let condition = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(condition.status, "True");

    let (code, _) = exec_output(&host, &uid, "web", &["rm", "/tmp/alive"]).await;
    assert_eq!(code, 0);
    let status = host
        .sync_until(&uid, "the liveness kill", |s| {
            s.container_statuses.as_ref().is_some_and(|c| {
                c[0].last_state
                    .as_ref()
                    .and_then(|l| l.terminated.as_ref())
                    .is_some_and(|t| t.exit_code == 137)
            })
        })
        .await;
    assert!(!ready(&status));
    host.pods.stop_pod(&uid, Duration::ZERO).await.unwrap();
    assert_eq!(host.leftovers(&uid), Vec::<String>::new());
    // What kubelet would have written as events: the image found, each failed probe,
    // the kill.
    let mut said = Vec::new();
    while let Ok(h) = told.try_recv() {
        assert_eq!(h.pod.metadata.uid.as_deref(), Some(uid.as_str()));
        said.push((h.type_, h.reason, h.message));
    }
    let has = |type_: &str, reason: &str, message: &str| {
        said.iter()
            .any(|(t, r, m)| *t == type_ && *r == reason && m.starts_with(message))
    };
    assert!(
        has(
            "Normal",
            "Pulled",
            &format!(
                "Container image \"{}\" already present on machine",
                busybox()
            )
        ),
        "{said:?}"
    );
    assert!(
        has("Warning", "Unhealthy", "Readiness probe failed: "),
        "{said:?}"
    );
    assert!(
        has(
            "Warning",
            "Unhealthy",
            "Liveness probe failed: command exited with 1"
        ),
        "{said:?}"
    );
    assert!(
        has(
            "Normal",
            "Killing",
            "Container web failed liveness probe, will be restarted"
        ),
        "{said:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_a_tty_gives_the_caller_the_terminal() {
    for handler in [None, Some("runc")] {
        let host = PodHost::new();
        let pod = host.pod(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tty"},
            "spec": {"runtimeClassName": handler,
                     "containers": [{"name": "main", "image": busybox(), "command": ["sleep", "3600"]}]}
        }));
        let uid = pod.metadata.uid.clone().unwrap();
        host.pods.run_pod(&pod).await.unwrap();
        host.sync_until(&uid, "Running", |s| s.phase.as_deref() == Some("Running"))
            .await;
        let process = ExecProcess {
            args: vec!["sh".into()],
            env: vec!["PS1=$ ".into()],
            ..Default::default()
        };
        let (pid, pty) = host.pods.exec_tty(&uid, "main", process).await.unwrap();
        let mut terminal = std::fs::File::from(pty);
        let reader = std::thread::spawn({
            let mut terminal = terminal.try_clone().unwrap();
            move || {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                // The master reads EIO once the shell, the last holder of the slave, exits.
                while let Ok(n) = terminal.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    seen.extend_from_slice(&buf[..n]);
                }
                String::from_utf8_lossy(&seen).into_owned()
            }
        });
        use std::io::Write;
        terminal
            .write_all(b"tty; [ -t 0 ] && echo interactive; exit 3\n")
            .unwrap();
        let code = host.pods.wait_exec(pid).await.unwrap();
        assert_eq!(code, 3, "{handler:?}");
        drop(terminal);
        let seen = reader.join().unwrap();
        assert!(
            seen.contains("/dev/pts/") && seen.contains("interactive"),
            "{handler:?}: {seen}"
        );
        host.pods.stop_pod(&uid, Duration::ZERO).await.unwrap();
        assert_eq!(host.leftovers(&uid), Vec::<String>::new());
    }
}

/// Reads `fd` (non-blocking, from an attach handle) until `done` holds for what came,
/// or 30 s pass; what came.
async fn read_until(fd: OwnedFd, done: impl Fn(&str) -> bool) -> String {
    let fd = rk8s_runtime::nonblocking::NonBlocking::new(fd).unwrap();
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done(&seen) {
        let mut buf = [0u8; 4096];
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let n = tokio::time::timeout(left, fd.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("never came; what came: {seen:?}"))
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_reaches_a_terminal_and_a_stdin_once_with_both_engines() {
    use rk8s_runtime::container::{AttachEnd, AttachNote, AttachStreams};
    use rk8s_runtime::nonblocking::NonBlocking;
    let all = AttachStreams {
        stdin: true,
        stdout: true,
        stderr: true,
    };
    for handler in [None, Some("runc")] {
        let host = PodHost::new();
        let pod = host.pod(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "attached"},
            "spec": {"runtimeClassName": handler, "restartPolicy": "Never", "containers": [
                {"name": "shell", "image": busybox(), "command": ["sh"], "stdin": true, "tty": true},
                {"name": "cat", "image": busybox(), "command": ["cat"], "stdin": true, "stdinOnce": true},
            ]}
        }));
        let uid = pod.metadata.uid.clone().unwrap();
        host.pods.run_pod(&pod).await.unwrap();
        host.sync_until(&uid, "Running", |s| s.phase.as_deref() == Some("Running"))
            .await;

        // The terminal: input and output through it, one output stream (resizes
        // through its master end are tested in tests/attach.rs).
        let shell = host.pods.attach(&uid, "shell", all).await.unwrap();
        assert!(shell.tty && shell.stderr.is_none() && shell.terminal.is_some());
        let input = rk8s_runtime::nonblocking::NonBlocking::new(shell.stdin.unwrap()).unwrap();
        input
            .write_all(b"tty; [ -t 0 ] && echo inter''active; exit 0\n")
            .await
            .unwrap();
        let seen = read_until(shell.stdout.unwrap(), |s| {
            s.contains("/dev/pts/") && s.contains("interactive")
        })
        .await;
        assert!(seen.contains("interactive"), "{handler:?}: {seen}");
        let ended = read_until(shell.ended, |_| false).await;
        assert_eq!(ended.as_bytes(), [AttachEnd::Exited.byte()], "{handler:?}");
        // What went through the terminal is the container's stdout in its log.
        assert!(
            container_log(&host, &uid, "shell").contains("interactive"),
            "{handler:?}"
        );

        // stdinOnce: the first session takes the only writer; its end is the EOF.
        let cat = host.pods.attach(&uid, "cat", all).await.unwrap();
        assert!(!cat.tty && cat.stdin_once, "{handler:?}");
        let second = host.pods.attach(&uid, "cat", all).await.unwrap();
        assert!(second.stdin.is_none(), "{handler:?}");
        let input = NonBlocking::new(cat.stdin.unwrap()).unwrap();
        // Sessions that do not read while the container writes more than their pipes
        // hold are not ended: output is skipped for them (they are told), and they
        // get it again once they read; the container's stdin stays open.
        let mut line = vec![b'a'; 1023];
        line.push(b'\n');
        for _ in 0..4096 {
            input.write_all(&line).await.unwrap();
        }
        let second_ended = NonBlocking::new(second.ended).unwrap();
        let mut note = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(30), second_ended.read(&mut note));
        assert_eq!(read.await.unwrap().unwrap(), 1, "{handler:?}");
        assert_eq!(
            AttachNote::from_byte(Some(note[0])),
            AttachNote::OutputSkipped,
            "{handler:?}"
        );
        let out = NonBlocking::new(second.stdout.unwrap()).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        // It catches up: what fitted, until nothing more comes.
        let quiet = Duration::from_millis(500);
        while let Ok(Ok(1..)) = tokio::time::timeout(quiet, out.read(&mut buf)).await {}
        input.write_all(b"meow\n").await.unwrap();
        drop(input);
        let mut seen = Vec::new();
        while !seen.ends_with(b"meow\n") {
            let read = tokio::time::timeout(Duration::from_secs(30), out.read(&mut buf));
            let n = read.await.unwrap().unwrap();
            assert!(n > 0, "{handler:?}: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        let mut ended = Vec::new();
        loop {
            let read = tokio::time::timeout(Duration::from_secs(30), second_ended.read(&mut note));
            match read.await.unwrap().unwrap() {
                0 => break,
                _ => ended.push(note[0]),
            }
        }
        assert_eq!(ended, [AttachEnd::Exited.byte()], "{handler:?}");
        let status = host
            .sync_until(&uid, "Succeeded", |s| {
                s.phase.as_deref() == Some("Succeeded")
            })
            .await;
        let codes: Vec<_> = status
            .container_statuses
            .unwrap()
            .iter()
            .map(|c| {
                c.state
                    .as_ref()
                    .unwrap()
                    .terminated
                    .as_ref()
                    .unwrap()
                    .exit_code
            })
            .collect();
        assert_eq!(codes, [0, 0], "{handler:?}");
        drop(cat.ended);
        host.pods.stop_pod(&uid, Duration::ZERO).await.unwrap();
        assert_eq!(host.leftovers(&uid), Vec::<String>::new());
    }
}

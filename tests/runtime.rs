//! The node runtime with real containers (root): pods of busybox containers through
//! the container helper and youki's libcontainer (and runc), on a real bridge network.

#[path = "support/runtime.rs"]
mod support;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rk8s_runtime::ExecProcess;
use serde_json::json;
use support::{PodHost, busybox};

async fn exec_output(host: &PodHost, uid: &str, container: &str, args: &[&str]) -> (i32, String) {
    let (out_r, out_w) = nix::unistd::pipe().unwrap();
    let devnull: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
    let err_w = out_w.try_clone().unwrap();
    let process = ExecProcess { args: args.iter().map(|s| s.to_string()).collect(), ..Default::default() };
    let code = host.pods.exec(uid, container, process, [devnull, out_w, err_w]).await.unwrap();
    let mut text = String::new();
    std::fs::File::from(out_r).read_to_string(&mut text).unwrap();
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
                 "command": ["sh", "-c", "until wget -q -O - http://127.0.0.1:8080/; do sleep 0.1; done; echo fetched; exec sleep 3600"]}
            ]
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
        assert!(std::time::Instant::now() < deadline, "client log: {}", container_log(&host, &uid, "client"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(container_log(&host, &uid, "client").contains("rk8s busybox"));

    let (code, out) = exec_output(&host, &uid, "client", &["wget", "-q", "-O", "-", "http://localhost:8080/"]).await;
    assert_eq!((code, out.trim()), (0, "<h1>rk8s busybox</h1>"));
    let (code, _) = exec_output(&host, &uid, "client", &["sh", "-c", "exit 7"]).await;
    assert_eq!(code, 7);
    let (_, hostname) = exec_output(&host, &uid, "client", &["hostname"]).await;
    assert_eq!(hostname.trim(), "web");

    let cgroup = |controller: &str, file: &str| {
        let v1 = format!("/sys/fs/cgroup/{controller}/rk8s/pod{uid}/httpd/{file}");
        std::fs::read_to_string(&v1).unwrap_or_else(|e| panic!("{v1}: {e}")).trim().to_string()
    };
    if !rk8s_runtime::cgroups::is_unified() {
        assert_eq!(cgroup("memory", "memory.limit_in_bytes"), (64 << 20).to_string());
        assert_eq!(cgroup("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(cgroup("cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(cgroup("cpu", "cpu.shares"), "512");
    }
    let usage = rk8s_runtime::cgroups::usage(&rk8s_runtime::cgroups::container_path(&uid, "httpd")).unwrap();
    assert!(usage.memory_usage_bytes > 0 && usage.cpu_usage_ns > 0, "{usage:?}");
    assert_eq!(usage.memory_limit_bytes, 64 << 20);

    host.pods.stop_pod(&uid, Duration::from_secs(5)).await.unwrap();
    assert_eq!(host.leftovers(&uid), Vec::<String>::new());
}

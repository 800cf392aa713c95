//! `rk8s-node` processes for tests and benchmarks: bootstrap tokens from a real
//! `rk8s-server`, the join command, and a node whose process, helper and network are
//! removed on drop (also when the test fails).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::apiserver::Server;

pub fn bootstrap_token(server: &Server) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rk8s-server"))
        .args([
            "token",
            "create",
            "--ttl",
            "10m",
            "--endpoint",
            &server.peer,
        ])
        .args(["--server", &format!("https://127.0.0.1:{}", server.port)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // rk8s-node join https://… --token ID.SECRET --ca-cert-hash sha256:…
    let line = String::from_utf8(out.stdout).unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    let token = words[words.iter().position(|w| *w == "--token").unwrap() + 1].to_string();
    let hash = words[words.iter().position(|w| *w == "--ca-cert-hash").unwrap() + 1].to_string();
    (token, hash)
}

/// A node process and its directories; killed and cleaned up on drop.
pub struct NodeProcess {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub bridge: String,
}

impl NodeProcess {
    pub fn args(&self, name: &str) -> Vec<String> {
        let d = self.dir.path();
        vec![
            "--name".into(),
            name.into(),
            "--data-dir".into(),
            d.join("data").display().to_string(),
            "--run-dir".into(),
            d.join("run").display().to_string(),
            "--manifests".into(),
            d.join("manifests").display().to_string(),
            "--bridge".into(),
            self.bridge.clone(),
            // Test machines may have little disk free; pressure is not what is tested.
            "--disk-pressure-free-percent".into(),
            "0".into(),
        ]
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let helper = rk8s_runtime::helper::HelperClient::new(
            self.dir.path().join("run/helper"),
            env!("CARGO_BIN_EXE_rk8sctl"),
        );
        // Every pod the node left (a killed node keeps its pods running, by design),
        // then the helper and the node's pod network.
        let data = self.dir.path().join("data");
        let identity = rk8s_actors::node::identity::Identity::load(&data)
            .ok()
            .flatten();
        let subnet = identity
            .as_ref()
            .and_then(|i| i.pod_cidr.parse().ok())
            .unwrap_or_else(|| "10.90.0.0/24".parse().unwrap());
        let network = rk8s_netoverlay::Network::new(
            rk8s_netoverlay::NetworkConfig {
                name: "node".into(),
                bridge: self.bridge.clone(),
                subnet,
                state_dir: self.dir.path().join("run/net"),
            },
            rk8s_netoverlay::host::System,
        );
        if let Ok(network) = network {
            let network = std::sync::Arc::new(network);
            if data.join("pods").exists() {
                let config = rk8s_runtime::pod::PodRuntimeConfig::new(&data, "unused");
                let runtime = rk8s_runtime::pod::PodRuntime::new(
                    config,
                    std::sync::Arc::new(helper.clone()),
                    Some(network.clone()),
                );
                if let Ok(runtime) = runtime {
                    // Drop may run inside a test's async runtime: a thread of its own.
                    std::thread::scope(|scope| {
                        scope.spawn(|| {
                            let tokio = tokio::runtime::Builder::new_current_thread()
                                .enable_all()
                                .build()
                                .unwrap();
                            let _ = tokio.block_on(runtime.remove_orphans(|_| false));
                        });
                    });
                }
            }
            let _ = helper.shutdown();
            let _ = network.destroy();
        } else {
            let _ = helper.shutdown();
        }
        // The parent of the pods' cgroups, when no other pod is left in it.
        if let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") {
            for controller in controllers.flatten() {
                let _ = std::fs::remove_dir(controller.path().join("rk8s"));
            }
        }
    }
}

pub fn node(n: u32) -> NodeProcess {
    NodeProcess {
        child: None,
        dir: tempfile::tempdir().unwrap(),
        bridge: format!("rk8sj{}{n}", std::process::id() % 10_000),
    }
}

pub fn join_command(
    server: &Server,
    node: &NodeProcess,
    name: &str,
    token: &str,
    hash: &str,
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rk8s-node"));
    command
        .arg("join")
        .arg(format!("https://127.0.0.1:{}", server.port))
        .args([
            "--token",
            token,
            "--ca-cert-hash",
            hash,
            "--labels",
            "zone=a",
            "--taints",
            "dedicated=test:NoSchedule",
        ])
        .args(node.args(name))
        .env("RK8S_PAUSE_IMAGE", "/nonexistent")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

pub fn finished(mut command: Command) -> Output {
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the command did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

pub async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn images() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/images");
    let status =
        Command::new(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("images/build.sh"))
            .arg(&dir)
            .status()
            .unwrap();
    assert!(status.success());
    dir
}

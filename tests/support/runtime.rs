//! A pod host for root tests: its own data and state directories, its own container
//! helper, its own bridge network; everything removed on drop, also after a failure,
//! and checked for leftovers.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use rk8s_netoverlay::host::System;
use rk8s_netoverlay::{Ipv4Net, Network, NetworkConfig};
use rk8s_runtime::helper::HelperClient;
use rk8s_runtime::pod::{PodRuntime, PodRuntimeConfig};

// This file is a test's whole `support` module (`#[path]`): it brings the shared
// pieces it and its tests need.
#[path = "cli.rs"]
pub mod cli;
#[path = "images.rs"]
mod images;
#[path = "registry.rs"]
pub mod registry;
// Each test or benchmark that includes this file uses some of them.
#[allow(unused_imports)]
pub use images::{busybox, images, pause};

/// Tests that change the host's network and cgroups run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());
static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct PodHost {
    pub pods: PodRuntime,
    pub helper: HelperClient,
    pub network: Arc<Network>,
    pub data: tempfile::TempDir,
    pub run: PathBuf,
    pub bridge: String,
    pub config: PodRuntimeConfig,
    _serial: MutexGuard<'static, ()>,
}

impl PodHost {
    pub fn new() -> Self {
        Self::with_config(|_| {})
    }

    pub fn with_config(adjust: impl FnOnce(&mut PodRuntimeConfig)) -> Self {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{}{n}", std::process::id() % 10000);
        let data = tempfile::Builder::new()
            .prefix("rk8s-rt-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let run = PathBuf::from(format!("/run/rk8s-test-{tag}"));
        let bridge = format!("rk8st{tag}");
        let helper = HelperClient::new(run.join("helper"), env!("CARGO_BIN_EXE_rk8sctl"));
        let network = Network::new(
            NetworkConfig {
                name: format!("test{tag}"),
                bridge: bridge.clone(),
                subnet: Ipv4Net::new(std::net::Ipv4Addr::new(10, 200, (n % 200) as u8, 0), 24)
                    .unwrap(),
                state_dir: run.join("net"),
                cluster_cidr: None,
            },
            System,
        )
        .unwrap();
        let network = Arc::new(network);
        let mut config = PodRuntimeConfig::new(data.path(), pause());
        config.nameservers = vec!["10.200.255.53".to_string()];
        adjust(&mut config);
        let config_copy = config.clone();
        let pods =
            PodRuntime::new(config, Arc::new(helper.clone()), Some(network.clone())).unwrap();
        Self {
            pods,
            helper,
            network,
            data,
            run,
            bridge,
            config: config_copy,
            _serial: serial,
        }
    }

    /// A second pod runtime over the same directories, as a restarted agent makes.
    pub fn reopen(&self) -> PodRuntime {
        let helper = HelperClient::new(self.run.join("helper"), env!("CARGO_BIN_EXE_rk8sctl"));
        PodRuntime::new(
            self.config.clone(),
            Arc::new(helper),
            Some(self.network.clone()),
        )
        .unwrap()
    }

    /// The pid of the running container helper.
    pub fn helper_pid(&self) -> i32 {
        std::fs::read_to_string(self.run.join("helper/helper.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    pub fn pod(&self, manifest: serde_json::Value) -> Pod {
        let mut pod: Pod = serde_json::from_value(manifest).unwrap();
        pod.metadata.uid = Some(format!(
            "{:08x}-0000-4000-8000-{:012x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        pod.metadata
            .namespace
            .get_or_insert_with(|| "default".to_string());
        pod
    }

    /// Syncs the pod until `done` holds for its status (10 s at most).
    pub async fn sync_until(
        &self,
        uid: &str,
        what: &str,
        done: impl Fn(&PodStatus) -> bool,
    ) -> PodStatus {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let status = self
                .pods
                .sync_pod(uid, rk8s_runtime::container::now_ns())
                .await
                .unwrap();
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "pod {uid} never got {what}: {status:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the host still has of a pod after it was stopped: every item is a leak.
    pub fn leftovers(&self, uid: &str) -> Vec<String> {
        let mut found = Vec::new();
        let netns = Path::new("/run/netns").join(format!("rk8s-{uid}"));
        if netns.exists() {
            found.push(format!("netns {}", netns.display()));
        }
        let veth = rk8s_netoverlay::network::veth_name(uid);
        if Path::new("/sys/class/net").join(&veth).exists() {
            found.push(format!("link {veth}"));
        }
        let rules = std::process::Command::new("nft")
            .args(["list", "table", "ip", "rk8s"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&rules.stdout).contains(uid) {
            found.push("nftables rules naming the pod".to_string());
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        for line in mounts.lines().filter(|l| l.contains(uid)) {
            found.push(format!("mount {line}"));
        }
        for controller in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let dir = controller.path().join("rk8s").join(format!("pod{uid}"));
            if dir.exists() {
                found.push(format!("cgroup {}", dir.display()));
            }
        }
        for state in rk8s_runtime::ContainerRuntime::list(&self.helper).unwrap_or_default() {
            if state.spec.id.starts_with(uid) {
                found.push(format!("container {}", state.spec.id));
            }
        }
        if self.data.path().join("pods").join(uid).exists() {
            found.push("pod directory".to_string());
        }
        found
    }
}

impl Drop for PodHost {
    fn drop(&mut self) {
        // Drop may run inside the test's async runtime: clean up from a thread of its own.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                for record in self.pods.pods().unwrap_or_default() {
                    let _ = runtime.block_on(self.pods.stop_pod(&record.uid, Duration::ZERO));
                }
            });
        });
        // Containers of pods whose record was lost.
        for state in rk8s_runtime::ContainerRuntime::list(&self.helper).unwrap_or_default() {
            let _ = rk8s_runtime::ContainerRuntime::delete(&self.helper, &state.spec.id, true);
        }
        let _ = self.helper.shutdown();
        let _ = self.network.destroy();
        let _ = std::fs::remove_dir_all(&self.run);
        let _ = std::process::Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .output();
        // The parent of all pod cgroups, when no other pod uses it.
        if let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") {
            for controller in controllers.flatten() {
                let _ = std::fs::remove_dir(controller.path().join("rk8s"));
            }
        }
    }
}

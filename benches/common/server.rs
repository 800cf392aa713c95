//! A real `rk8s-server` (the release build cargo made for the benchmark) with its own
//! data directory, free ports and an admin kubeconfig; killed and removed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running one-member `rk8s-server`.
pub struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    /// The admin kubeconfig it wrote.
    pub kubeconfig: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts a one-member server with `extra` flags (`--disable-controllers`) and
    /// waits for its kubeconfig.
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_rk8s-server"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--port", &free_port().to_string()])
            .args(["--peer-listen", &format!("127.0.0.1:{}", free_port())])
            .arg("--admin-kubeconfig")
            .arg(&kubeconfig)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("failed to start rk8s-server");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !kubeconfig.exists() {
            let exited = child.try_wait().ok().flatten();
            assert!(exited.is_none(), "rk8s-server exited: {exited:?}");
            assert!(Instant::now() < deadline, "rk8s-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            child,
            _dir: dir,
            kubeconfig,
        }
    }

    /// The server's process id (for `/proc` readings).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `kube` client with the admin credentials.
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }
}

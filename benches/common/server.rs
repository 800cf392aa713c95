//! A real `rk8s-server` (the release build cargo made for the benchmark) with its own
//! data directory, free ports and an admin kubeconfig; killed and removed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running one-member `rk8s-server`.
pub struct Server {
    child: Child,
    dir: tempfile::TempDir,
    /// The admin kubeconfig it wrote.
    pub kubeconfig: PathBuf,
    /// Its store's peer address.
    peer: String,
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
        let peer = format!("127.0.0.1:{}", free_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_rk8s-server"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--port", &free_port().to_string()])
            .args(["--peer-listen", &peer])
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
            dir,
            kubeconfig,
            peer,
        }
    }

    /// A kubeconfig for `user` in `groups` with a client certificate
    /// (`rk8s-server kubeconfig create`), written beside the admin's.
    #[allow(dead_code)]
    pub fn user_kubeconfig(&self, user: &str, groups: &[&str]) -> PathBuf {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rk8s-server"));
        cmd.args([
            "kubeconfig",
            "create",
            "--user",
            user,
            "--endpoint",
            &self.peer,
        ])
        .arg("--data-dir")
        .arg(self.dir.path().join("data"));
        for g in groups {
            cmd.args(["--group", g]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = self.dir.path().join(format!("{user}.kubeconfig"));
        std::fs::write(&path, out.stdout).unwrap();
        path
    }

    /// A `kube` client with the credentials of `kubeconfig`.
    #[allow(dead_code)]
    pub async fn client_from(kubeconfig: &std::path::Path) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// The server's process id (for `/proc` readings).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `kube` client with the admin credentials.
    pub async fn client(&self) -> kube::Client {
        Self::client_from(&self.kubeconfig).await
    }
}

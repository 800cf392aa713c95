//! A local OCI registry (Debian's docker-registry) on a loopback port, stopped on
//! drop; optionally behind a login (htpasswd, bcrypt as the registry requires).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running registry.
pub struct Registry {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// (user, password) it asks for, if any.
    login: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// A registry anyone may push to and pull from.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A registry that serves only `user` with `password` (HTTP basic auth).
    pub fn with_login(user: &str, password: &str) -> Self {
        Self::start_with(Some((user.to_string(), password.to_string())))
    }

    fn start_with(login: Option<(String, String)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = &login {
            let htpasswd = dir.path().join("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-nbB", user, password])
                .output()
                .expect("htpasswd (Debian package apache2-utils)");
            assert!(out.status.success(), "htpasswd");
            std::fs::write(&htpasswd, &out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: rk8s-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let file = dir.path().join("config.yml");
        std::fs::write(&file, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (Debian package docker-registry)");
        let registry = Registry {
            child,
            port,
            login,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// A `registries.yaml` in `dir` saying that this registry speaks plain HTTP (k3s'
    /// way), for `rk8s-node --registries`; its path.
    pub fn plain_http_config(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let host = format!("127.0.0.1:{}", self.port);
        let file = dir.join("registries.yaml");
        std::fs::write(
            &file,
            format!("mirrors:\n  \"{host}\":\n    endpoint: [\"http://{host}\"]\n"),
        )
        .unwrap();
        file
    }

    /// Pushes the OCI layout `layout` (its `latest`) as `name`; returns the reference.
    pub fn push(&self, layout: &std::path::Path, name: &str) -> String {
        let target = format!("127.0.0.1:{}/{name}", self.port);
        let mut copy = Command::new("skopeo");
        copy.args(["copy", "--quiet", "--dest-tls-verify=false"]);
        if let Some((user, password)) = &self.login {
            copy.arg(format!("--dest-creds={user}:{password}"));
        }
        let status = copy
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://{target}"))
            .status()
            .unwrap();
        assert!(status.success(), "skopeo copy");
        target
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

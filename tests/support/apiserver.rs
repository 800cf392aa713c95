//! A real `rk8s-server` process for tests: its own data directory, free ports, an
//! admin kubeconfig in the test's directory; killed and removed on drop (also when the
//! test fails).

// Each test file uses part of this harness.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::cli;

pub struct Server {
    pub dir: tempfile::TempDir,
    pub peer: String,
    /// The address its API listens on (`--address`, default 127.0.0.1).
    pub host: String,
    pub port: u16,
    extra: Vec<String>,
    child: Child,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts a one-member server and waits for its kubeconfig.
    /// A port picked free may be taken by a parallel test before the server binds
    /// it: the start is tried again on new ports.
    pub fn start(extra: &[&str]) -> Self {
        Self::started(|| Self::spawn(extra))
    }

    /// Restores the snapshot `file` (`rk8s-server snapshot restore`) into a new data
    /// directory and starts a one-member server on it.
    pub fn start_restored(file: &Path) -> Self {
        Self::started(|| {
            let dir = tempfile::tempdir().unwrap();
            let peer = format!("127.0.0.1:{}", free_port());
            let out = Command::new(env!("CARGO_BIN_EXE_rk8s-server"))
                .args(["snapshot", "restore"])
                .arg(file)
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .args(["--advertise", &peer])
                .output()
                .unwrap();
            assert!(out.status.success(), "snapshot restore: {out:?}");
            Self::spawn_in(dir, peer, &[])
        })
    }

    /// The server `spawn` starts, once it has written its kubeconfig.
    fn started(spawn: impl Fn() -> Self) -> Self {
        let mut server = spawn();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !server.kubeconfig().exists() {
            let exited = server.child.try_wait().ok().flatten().is_some();
            if exited && server.log().contains("Address already in use") {
                server = spawn();
                continue;
            }
            assert!(
                Instant::now() < deadline,
                "rk8s-server did not start; log:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Starts a member that joins `first`'s cluster (it has no admin kubeconfig of its
    /// own: use `first`'s with [`Server::client_for`]).
    pub fn join(first: &Server) -> Self {
        Self::join_with(first, &[])
    }

    /// [`Server::join`] with extra flags.
    pub fn join_with(first: &Server, extra: &[&str]) -> Self {
        let mut args = first.member_join_args();
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self::spawn(&args)
    }

    /// `--join URL --token T --ca-cert-hash H` for a new member, as `rk8s-server member
    /// add` prints them for this server.
    pub fn member_join_args(&self) -> Vec<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_rk8s-server"))
            .args(["member", "add", "--ttl", "10m", "--server"])
            .arg(format!("https://{}:{}", self.host, self.port))
            .args(self.store_access())
            .output()
            .unwrap();
        assert!(out.status.success(), "member add: {out:?}");
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // rk8s-server --join https://… --token ID.SECRET --ca-cert-hash sha256:…
        let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        assert_eq!(words[..2], ["rk8s-server", "--join"], "{line}");
        words[1..].to_vec()
    }

    /// A member bootstrap token of this server (`--token` of
    /// [`Server::member_join_args`]).
    pub fn member_token(&self) -> String {
        let words = self.member_join_args();
        let at = words.iter().position(|w| w == "--token").unwrap();
        words[at + 1].clone()
    }

    /// `--endpoint PEER --data-dir DIR`: how the `rk8s-server` verbs reach this
    /// member's store (with its member certificate).
    pub fn store_access(&self) -> Vec<String> {
        vec![
            "--endpoint".into(),
            self.peer.clone(),
            "--data-dir".into(),
            self.data_dir().display().to_string(),
        ]
    }

    /// A client of `peer`'s store port with this member's certificate.
    pub async fn store_client(
        &self,
        peer: &str,
    ) -> rk8s_raftstore::Result<rk8s_raftstore::client::StoreClient> {
        let certs = rk8s_apiserver::bootstrap::members::MemberCerts::load(&self.data_dir())
            .unwrap()
            .expect("the member has its certificate");
        let tls = certs.tls().unwrap();
        rk8s_raftstore::client::StoreClient::connect_with(peer, Some(&tls.client)).await
    }

    /// A client with `self`'s admin credentials talking to `member`'s API.
    pub async fn client_for(&self, member: &Server) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig()).unwrap();
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        config.cluster_url = format!("https://127.0.0.1:{}", member.port)
            .parse()
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    fn spawn(extra: &[&str]) -> Self {
        let peer = format!("127.0.0.1:{}", free_port());
        Self::spawn_in(tempfile::tempdir().unwrap(), peer, extra)
    }

    /// A server on `dir/data` with the peer address `peer`.
    fn spawn_in(dir: tempfile::TempDir, peer: String, extra: &[&str]) -> Self {
        let port = free_port();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = Self::run(dir.path(), port, &peer, &extra);
        let host = extra
            .iter()
            .position(|a| a == "--address")
            .and_then(|i| extra.get(i + 1))
            .cloned()
            .unwrap_or_else(|| "127.0.0.1".into());
        Server {
            dir,
            peer,
            host,
            port,
            extra,
            child,
        }
    }

    fn run(dir: &Path, port: u16, peer: &str, extra: &[String]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .unwrap();
        // On loopback unless a test says otherwise (the default is every address):
        // the tests' nodes on this host's network are reached there.
        let loopback = ["--address", "127.0.0.1"];
        let address: &[&str] = if extra.iter().any(|a| a == "--address") {
            &[]
        } else {
            &loopback
        };
        Command::new(env!("CARGO_BIN_EXE_rk8s-server"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(address)
            .args(["--port", &port.to_string(), "--peer-listen", peer])
            .arg("--admin-kubeconfig")
            .arg(dir.join("config"))
            .args(extra)
            .env("RUST_LOG", "info,raft=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("failed to start rk8s-server")
    }

    /// Stops the server with SIGTERM (it must exit cleanly) and starts it again on the
    /// same data directory and ports.
    pub fn restart(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(
            exit.success(),
            "rk8s-server did not exit cleanly on SIGTERM: {exit}"
        );
        self.child = Self::run(self.dir.path(), self.port, &self.peer, &self.extra);
    }

    /// SIGKILLs the server (a control-plane outage); [`Server::start_again`] ends it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on its data directory and ports after [`Server::kill`].
    pub fn start_again(&mut self) {
        self.child = Self::run(self.dir.path(), self.port, &self.peer, &self.extra);
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A kube client with the admin kubeconfig that does not retry 429/503/504 (to see
    /// them).
    pub async fn client_without_retries(&self) -> kube::Client {
        self.client_without_retries_as(None).await
    }

    /// As [`Self::client_without_retries`], with `token` instead of the admin's when
    /// given.
    pub async fn client_without_retries_as(&self, token: Option<&str>) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig()).unwrap();
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        config.default_retry = false;
        if let Some(t) = token {
            config.auth_info = kube::config::AuthInfo::default();
            config.auth_info.token = Some(t.to_string().into());
        }
        kube::Client::try_from(config).unwrap()
    }

    /// A kube client with the admin kubeconfig.
    pub async fn client(&self) -> kube::Client {
        client_from(&self.kubeconfig()).await
    }

    /// A kube client with the admin kubeconfig's cluster and CA but `token` (or none).
    pub async fn client_with_token(&self, token: Option<&str>) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig()).unwrap();
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        config.auth_info = kube::config::AuthInfo::default();
        if let Some(t) = token {
            config.auth_info.token = Some(t.to_string().into());
        }
        kube::Client::try_from(config).unwrap()
    }

    /// `rk8sctl --kubeconfig ADMIN`, to add arguments to (and to spawn).
    pub fn rk8sctl_command(&self) -> Command {
        let mut command = cli::rk8sctl_command();
        command.arg("--kubeconfig").arg(self.kubeconfig());
        command
    }

    /// `rk8sctl ARGS` with this server's admin kubeconfig; its output.
    pub fn rk8sctl(&self, args: &[&str]) -> std::process::Output {
        cli::output(self.rk8sctl_command().args(args), None)
    }

    /// `rk8sctl ARGS` with this server's admin kubeconfig, which must succeed; what it
    /// printed.
    pub fn rk8sctl_ok(&self, args: &[&str]) -> String {
        cli::success(args, self.rk8sctl(args))
    }

    /// `kubectl --kubeconfig ADMIN`, to add arguments to (and to spawn).
    pub fn kubectl_command(&self) -> Command {
        cli::kubectl_command(&self.kubeconfig())
    }

    /// `kubectl ARGS` against this server: whether it succeeded, and what it printed
    /// (standard output, then standard error).
    pub fn kubectl(&self, args: &[&str]) -> (bool, String) {
        let out = cli::output(self.kubectl_command().args(args), None);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// `kubectl ARGS`, which must succeed: what it printed.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.kubectl(args);
        assert!(ok, "kubectl {args:?} failed:\n{out}");
        out
    }

    /// `rk8s-server kubeconfig create --user USER --group G...` against this server's
    /// store, written into a file of `dir`: its path.
    pub fn user_kubeconfig(&self, dir: &Path, user: &str, groups: &[&str]) -> PathBuf {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rk8s-server"));
        cmd.args(["kubeconfig", "create", "--user", user])
            .args(self.store_access());
        for g in groups {
            cmd.args(["--group", g]);
        }
        let out = cli::success(("kubeconfig create", user), cmd.output().unwrap());
        let path = dir.join(format!("{user}.kubeconfig"));
        std::fs::write(&path, out).unwrap();
        path
    }

    /// `rk8s-server token create --node NAME` against this server's store.
    pub fn node_token(&self, node: &str) -> String {
        let url = format!("https://{}:{}", self.host, self.port);
        token_create(&self.peer, &self.data_dir(), &url, &["--node", node])
            .trim()
            .to_string()
    }
}

/// `rk8s-server token create ARGS` against the member at `endpoint` whose data
/// directory (its certificate) is `data_dir`, for the API at `url`: what it printed.
/// The test fails if the command does.
pub fn token_create(endpoint: &str, data_dir: &Path, url: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rk8s-server"))
        .args(["token", "create", "--endpoint", endpoint, "--server", url])
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .unwrap();
    cli::success(("token create", args), out)
}

/// A sample of the server's own `/metrics`, by its name and labels as exposed
/// (`rk8s_store_bytes`, `rk8s_controller_reconciles_total{kind="Job"}`); 0 when absent.
pub async fn served_metric(client: &kube::Client, series: &str) -> f64 {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(req).await.unwrap_or_default();
    metric_sample(&text, series)
}

/// A sample of a `/metrics` text, by its name and labels as exposed; 0 when absent.
pub fn metric_sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Waits (30 s at most) until `name` is gone from `api`: a deleted namespace once
/// the namespace controller has emptied and finalized it.
pub async fn wait_gone<K>(api: &kube::Api<K>, name: &str)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.get_opt(name).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "{name} is never gone");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn client_from(path: &Path) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("rk8s-server log:\n{}", self.log());
        }
    }
}

/// Writes `manifest` as JSON to `dir/name`: its path.
pub fn write_manifest(dir: &Path, name: &str, manifest: &serde_json::Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(manifest).unwrap()).unwrap();
    path.display().to_string()
}

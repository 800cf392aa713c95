//! `rk8s-node` processes for tests and benchmarks: bootstrap tokens from a real
//! `rk8s-server`, the join command, and a node whose process, helper and network are
//! removed on drop (also when the test fails).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::apiserver::Server;
// Where tests/chaos.rs and the benchmarks that start nodes find it.
#[allow(unused_imports)]
pub use super::images::images;
use super::netns::NodeNetwork;

pub fn bootstrap_token(server: &Server) -> (String, String) {
    bootstrap_token_with(server, &[])
}

/// A bootstrap token (`rk8s-server token create --ttl 10m ARGS`) and the CA hash.
pub fn bootstrap_token_with(server: &Server, args: &[&str]) -> (String, String) {
    let mut all = vec!["--ttl", "10m"];
    all.extend_from_slice(args);
    let line = super::apiserver::token_create(
        &server.peer,
        &server.data_dir(),
        &format!("https://{}:{}", server.host, server.port),
        &all,
    );
    // rk8s-node join https://… --token ID.SECRET --ca-cert-hash sha256:…
    let words: Vec<&str> = line.split_whitespace().collect();
    let token = words[words.iter().position(|w| *w == "--token").unwrap() + 1].to_string();
    let hash = words[words.iter().position(|w| *w == "--ca-cert-hash").unwrap() + 1].to_string();
    (token, hash)
}

/// A node process and its directories; on drop the process is killed and
/// `rk8s-node reset` removes what it left (pods, network, helper), also when the test
/// fails.
pub struct NodeProcess {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub bridge: String,
    /// The network namespace it runs in (`None`: the host's).
    pub netns: Option<String>,
}

impl NodeProcess {
    pub fn args(&self, name: &str) -> Vec<String> {
        let d = self.dir.path();
        // Nodes sharing the host's network take any free port for their endpoint.
        let port = if self.netns.is_some() { "10250" } else { "0" };
        vec![
            "--port".into(),
            port.into(),
            "--name".into(),
            name.into(),
            "--data-dir".into(),
            d.join("data").display().to_string(),
            "--run-dir".into(),
            d.join("run").display().to_string(),
            "--manifests".into(),
            d.join("manifests").display().to_string(),
            // Each node its own: nodes on one host would take each other's socket.
            "--device-plugin-dir".into(),
            d.join("device-plugins").display().to_string(),
            "--bridge".into(),
            self.bridge.clone(),
            // Test machines may have little disk free; pressure is not what is tested.
            "--disk-pressure-free-percent".into(),
            "0".into(),
            // Nodes sharing the host's network would fight for 80 and 443.
            "--ingress-http-port".into(),
            if self.netns.is_some() { "80" } else { "0" }.into(),
            "--ingress-https-port".into(),
            if self.netns.is_some() { "443" } else { "0" }.into(),
        ]
    }

    /// `rk8s-node SUBCOMMAND`, in the node's network namespace.
    pub fn command(&self, subcommand: &str) -> Command {
        let node = env!("CARGO_BIN_EXE_rk8s-node");
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}")).arg(node);
                c
            }
            None => Command::new(node),
        };
        command.arg(subcommand);
        command
    }

    /// `rk8s-node run` again with the saved identity (after a kill).
    pub fn run_again(&mut self, extra: &[&str]) {
        let mut run = self.command("run");
        run.args(self.args("ignored")).args(extra);
        self.log_to_file(&mut run);
        self.child = Some(run.spawn().unwrap());
    }

    /// Sends the agent's output to `DIR/node.log` (printed when a test fails).
    pub fn log_to_file(&self, command: &mut Command) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("node.log"))
            .unwrap();
        command.stdout(log.try_clone().unwrap()).stderr(log);
    }

    /// SIGKILLs the agent (its pods keep running).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERMs the agent, as systemd stops a unit with `KillMode=process`, and waits
    /// for it to exit (its pods keep running, as kubelet's do); its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("a running agent");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the agent did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The node's container helper, to look at its containers directly.
    pub fn helper(&self) -> rk8s_runtime::helper::HelperClient {
        rk8s_runtime::helper::HelperClient::new(
            self.dir.path().join("run/helper"),
            env!("CARGO_BIN_EXE_rk8sctl"),
        )
    }

    /// Asks the running agent (started with `--chaos`) to kill one of its actors (or
    /// to `list` them); what it printed.
    pub fn chaos(&self, actor: &[&str]) -> String {
        let out = self
            .command("chaos")
            .arg("--run-dir")
            .arg(self.dir.path().join("run"))
            .args(actor)
            .output()
            .unwrap();
        super::cli::success(("chaos", actor), out)
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("node.log"));
            eprintln!("rk8s-node log:\n{}", log.unwrap_or_default());
        }
        // Every pod the node left (a killed node keeps its pods running, by design),
        // then the helper and the node's pod network.
        let reset = self
            .command("reset")
            .args(self.args("ignored"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output();
        match reset {
            Ok(out) if !out.status.success() => eprintln!(
                "rk8s-node reset failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("rk8s-node reset did not run: {e}"),
            Ok(_) => {}
        }
    }
}

pub fn node(n: u32) -> NodeProcess {
    NodeProcess {
        child: None,
        dir: tempfile::tempdir().unwrap(),
        bridge: format!("rk8sj{}{n}", std::process::id() % 10_000),
        netns: None,
    }
}

pub fn join_command(
    server: &Server,
    node: &NodeProcess,
    name: &str,
    token: &str,
    hash: &str,
) -> Command {
    let mut command = node.command("join");
    command
        .arg(format!("https://{}:{}", server.host, server.port))
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
        // The sandbox is the pause built into rk8s-node.
        .env_remove("RK8S_PAUSE_IMAGE")
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

pub async fn eventually<T>(what: &str, f: impl AsyncFnMut() -> Option<T>) -> T {
    eventually_within(what, Duration::from_secs(30), f).await
}

/// [`eventually`] with its own deadline, for what waits on a grace period.
pub async fn eventually_within<T>(
    what: &str,
    timeout: Duration,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `rk8s-node simulate` against `server` with `args`; killed on drop (simulated nodes
/// leave nothing on the host).
pub struct Simulated(Child);

impl Drop for Simulated {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn simulate(server: &Server, args: &[&str]) -> Simulated {
    let child = Command::new(env!("CARGO_BIN_EXE_rk8s-node"))
        .arg("simulate")
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Simulated(child)
}

/// A real node named `name` on this host's network (`rk8s-node join --chaos`), Ready
/// and without the test taint of [`join_command`], so any pod may land on it.
pub async fn real_node(server: &Server, name: &str, n: u32) -> NodeProcess {
    // Usage read every second: the metrics tests need not wait for the default 10 s.
    real_node_with(server, name, n, &["--stats-interval", "1s"]).await
}

/// [`real_node`] with `extra` arguments to `rk8s-node join`.
pub async fn real_node_with(server: &Server, name: &str, n: u32, extra: &[&str]) -> NodeProcess {
    real_node_in(server, name, n, None, extra).await
}

/// [`real_node_with`] inside the network namespace `netns` (`None`: the host's).
pub async fn real_node_in(
    server: &Server,
    name: &str,
    n: u32,
    netns: Option<String>,
    extra: &[&str],
) -> NodeProcess {
    let mut agent = node(n);
    agent.netns = netns;
    let (token, hash) = bootstrap_token(server);
    let mut join = join_command(server, &agent, name, &token, &hash);
    join.arg("--chaos").args(extra);
    agent.log_to_file(&mut join);
    agent.child = Some(join.spawn().unwrap());
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(server.client().await);
    eventually(&format!("node {name} Ready"), async || {
        let node = nodes.get_opt(name).await.ok()??;
        let ready = node.status?.conditions?.into_iter();
        ready
            .into_iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
            .then_some(())
    })
    .await;
    let untaint = serde_json::json!({"spec": {"taints": null}});
    nodes
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&untaint),
        )
        .await
        .unwrap();
    agent
}

/// Nodes `a` and `b`, each in its own namespace of `net` (node numbers `first + 1`,
/// `first + 2`), Ready and untainted; the agents and their namespaces.
pub async fn two_nodes_in_namespaces(
    server: &Server,
    net: &mut NodeNetwork,
    first: u32,
) -> (Vec<NodeProcess>, Vec<String>) {
    let mut agents = Vec::new();
    let mut namespaces = Vec::new();
    for (i, name) in [(1, "a"), (2, "b")] {
        let ns = net.add_node(i);
        namespaces.push(ns.clone());
        agents.push(real_node_in(server, name, first + i, Some(ns), &[]).await);
    }
    (agents, namespaces)
}

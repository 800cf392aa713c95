//! `rk8sctl container` and `rk8sctl pod` as a user runs them (root, real containers):
//! every command a new process, state found again from the run directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/runtime.rs"]
mod support;

use support::cli;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

/// An isolated local environment: its own run and data directories, bridge and range.
struct Local {
    run: tempfile::TempDir,
    data: tempfile::TempDir,
    bridge: String,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Local {
    fn new() -> Self {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        support::images();
        Local {
            run: tempfile::tempdir().unwrap(),
            data: tempfile::tempdir().unwrap(),
            bridge: format!("rk8sl{}", std::process::id() % 100_000),
            _serial: serial,
        }
    }

    fn rk8sctl(&self, args: &[&str]) -> Output {
        let mut command = cli::rk8sctl_command();
        command
            .args(args)
            .env("RK8S_RUN_DIR", self.run.path())
            .env("RK8S_DATA_DIR", self.data.path())
            .env("RK8S_LOCAL_BRIDGE", &self.bridge)
            .env("RK8S_LOCAL_SUBNET", "10.202.0.0/24");
        cli::output(&mut command, None)
    }

    fn ok(&self, args: &[&str]) -> String {
        cli::success(args, self.rk8sctl(args))
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path: PathBuf = self.run.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        for mode in ["container", "pod"] {
            let ls = self.rk8sctl(&[mode, "ls"]);
            for line in String::from_utf8_lossy(&ls.stdout).lines().skip(1) {
                if let Some(name) = line.split_whitespace().next() {
                    let _ = self.rk8sctl(&[mode, "rm", "--force", name]);
                }
            }
        }
        let helper = rk8s_runtime::helper::HelperClient::new(
            self.run.path().join("local/helper"),
            env!("CARGO_BIN_EXE_rk8sctl"),
        );
        let _ = helper.shutdown();
        let net = rk8s_netoverlay::Network::new(
            rk8s_netoverlay::NetworkConfig {
                name: "rk8s".into(),
                bridge: self.bridge.clone(),
                subnet: "10.202.0.0/24".parse().unwrap(),
                state_dir: self.run.path().join("local/net"),
                cluster_cidr: None,
            },
            rk8s_netoverlay::host::System,
        );
        if let Ok(net) = net {
            let _ = net.destroy();
        }
        if let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") {
            for controller in controllers.flatten() {
                let _ = std::fs::remove_dir(controller.path().join("rk8s"));
            }
        }
    }
}

#[test]
fn container_mode_runs_the_original_single_container_file() {
    let local = Local::new();
    let file = local.file(
        "web.yaml",
        &format!(
            "name: web\nimage: {}\ncommand: [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/var/www\"]\nresources:\n  limits:\n    cpu: 500m\n    memory: 233Mi\n",
            support::busybox()
        ),
    );
    assert_eq!(
        local.ok(&["container", "run", &file]),
        "container web: Running\n"
    );
    let ls = local.ok(&["container", "ls"]);
    assert!(
        ls.lines().nth(1).unwrap().starts_with("web ") && ls.contains("Running"),
        "{ls}"
    );
    let record_dir = std::fs::read_dir(local.run.path().join("local/pods"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let uid = record_dir.file_name().to_string_lossy().to_string();
    if !rk8s_runtime::cgroups::is_unified() {
        let read = |c: &str, f: &str| {
            std::fs::read_to_string(format!("/sys/fs/cgroup/{c}/rk8s/pod{uid}/web/{f}")).unwrap()
        };
        assert_eq!(read("cpu", "cpu.cfs_quota_us").trim(), "50000");
        assert_eq!(read("cpu", "cpu.cfs_period_us").trim(), "100000");
        assert_eq!(
            read("memory", "memory.limit_in_bytes").trim(),
            (233u64 << 20).to_string()
        );
    }
    assert_eq!(
        local.ok(&[
            "container",
            "exec",
            "web",
            "--",
            "wget",
            "-q",
            "-O",
            "-",
            "http://127.0.0.1:8080/"
        ]),
        "<h1>rk8s busybox</h1>\n"
    );
    let failing = local.rk8sctl(&[
        "container",
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        "echo oops >&2; exit 4",
    ]);
    assert_eq!(failing.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&failing.stderr), "oops\n");
    // A running container is not removed without --force; a stopped one is.
    let refused = local.rk8sctl(&["container", "rm", "web"]);
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("is running")
    );
    assert_eq!(
        local.ok(&["container", "stop", "web", "--time", "1"]),
        "web stopped\n"
    );
    let state = local.ok(&["container", "state", "web"]);
    assert!(state.contains("Failed") && state.contains("137"), "{state}");
    assert_eq!(local.ok(&["container", "rm", "web"]), "web removed\n");
    assert_eq!(local.ok(&["container", "ls"]).lines().count(), 1);
    assert!(!std::path::Path::new(&format!("/run/netns/rk8s-{uid}")).exists());
    assert!(!std::path::Path::new(&format!("/sys/fs/cgroup/memory/rk8s/pod{uid}")).exists());
    let missing = local.rk8sctl(&["container", "logs", "web"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no container named \"web\""));
}

#[test]
fn pod_mode_runs_a_two_container_pod() {
    let local = Local::new();
    let busybox = support::busybox();
    let file = local.file(
        "pod.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: duo\nspec:\n  containers:\n  - name: web\n    image: {busybox}\n    command: [httpd, -f, -p, '80', -h, /var/www]\n  - name: shell\n    image: {busybox}\n    command: [sh, -c, 'echo hello from shell; exec sleep 3600']\n"
        ),
    );
    assert_eq!(local.ok(&["pod", "run", &file]), "pod duo: Running\n");
    let state = local.ok(&["pod", "state", "duo"]);
    assert!(
        state
            .lines()
            .any(|l| l.starts_with("web ") && l.contains("Running")),
        "{state}"
    );
    assert!(
        state
            .lines()
            .any(|l| l.starts_with("shell ") && l.contains("Running")),
        "{state}"
    );
    assert_eq!(
        local.ok(&[
            "pod",
            "exec",
            "duo",
            "-c",
            "shell",
            "--",
            "wget",
            "-q",
            "-O",
            "-",
            "localhost"
        ]),
        "<h1>rk8s busybox</h1>\n"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while local.ok(&["pod", "logs", "duo", "-c", "shell"]) != "hello from shell\n" {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let json: serde_json::Value =
        serde_json::from_str(&local.ok(&["pod", "state", "duo", "--json"])).unwrap();
    assert_eq!(json["phase"], "Running");
    assert_eq!(local.ok(&["pod", "rm", "--force", "duo"]), "duo removed\n");
    assert_eq!(local.ok(&["pod", "ls"]).lines().count(), 1);
    // A file of the other mode is named as such.
    let wrong = local.rk8sctl(&[
        "pod",
        "run",
        &local.file("c.yaml", &format!("name: c\nimage: {busybox}\n")),
    ]);
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("use `rk8sctl container run`"));
}

#[test]
fn compose_up_runs_services_that_find_each_other_by_name_and_down_removes_everything() {
    let local = Local::new();
    let busybox = support::busybox();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = local.run.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let file = app.join("compose.yaml");
    std::fs::write(
        &file,
        format!(
            "services:\n  web:\n    image: {busybox}\n    command: [httpd, -f, -p, '80', -h, /var/www]\n    ports:\n      - \"{port}:80\"\n  client:\n    image: {busybox}\n    depends_on: [web]\n    environment:\n      TARGET: web\n    command: [sh, -c, 'wget -q -O - http://$$TARGET/ && echo fetched-by-name; exec sleep 3600']\n"
        )
        .replace("$$", "$"),
    )
    .unwrap();
    let f = file.display().to_string();
    let up = local.ok(&["compose", "-f", &f, "up", "-d"]);
    assert_eq!(up, "web: Running\nclient: Running\n");
    let ps = local.ok(&["compose", "-f", &f, "ps"]);
    assert!(
        ps.contains("app-web-1") && ps.contains("app-client-1"),
        "{ps}"
    );
    assert_eq!(ps.matches("Running").count(), 2, "{ps}");
    assert!(ps.contains(&format!("0.0.0.0:{port}->80/tcp")), "{ps}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let logs = local.ok(&["compose", "-f", &f, "logs"]);
        if logs.contains("client | fetched-by-name") {
            assert!(!logs.contains("bad address"), "{logs}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{logs}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The published port answers on the host's loopback.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read, Write};
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("rk8s busybox"), "{answer}");
    // A second `up` changes nothing.
    assert_eq!(
        local.ok(&["compose", "-f", &f, "up", "-d"]),
        "web: up to date\nclient: up to date\n"
    );
    let down = local.ok(&["compose", "-f", &f, "down", "--timeout", "1"]);
    assert!(down.ends_with("removed network app_default\n"), "{down}");
    assert_eq!(local.ok(&["compose", "-f", &f, "ps"]).lines().count(), 1);
    let bridge = format!(
        "rk8s{}",
        &rk8s_netoverlay::network::veth_name("app_default")[4..]
    );
    assert!(
        !std::path::Path::new("/sys/class/net")
            .join(&bridge)
            .exists(),
        "bridge {bridge} left"
    );
    let nft = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&nft.stdout).contains("app_default"));
    assert!(!String::from_utf8_lossy(&nft.stdout).contains(&format!("dport {port}")));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&local.run.path().display().to_string()));
    // An unknown key is named with its place and the keys that are known.
    std::fs::write(
        &file,
        format!("services:\n  a:\n    image: {busybox}\n    bogus: 1\n"),
    )
    .unwrap();
    let bad = local.rk8sctl(&["compose", "-f", &f, "up", "-d"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("compose.yaml:4:5") && err.contains("bogus") && err.contains("depends_on"),
        "{err}"
    );
}

/// Waits up to 20 s for `done`.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn static_pods_follow_their_manifest_directory() {
    let local = Local::new();
    let manifests = local.run.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let node_run = local.run.path().join("node");
    let node_data = local.data.path().join("node");
    let bridge = format!("rk8sn{}", std::process::id() % 100_000);
    let node_args = |command: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rk8s-node"));
        c.args([command, "--name", "testnode", "--sync-period", "200ms"])
            .args(["--pod-cidr", "10.203.0.0/24", "--bridge", &bridge])
            .arg("--manifests")
            .arg(&manifests)
            .arg("--data-dir")
            .arg(&node_data)
            .arg("--run-dir")
            .arg(&node_run)
            .arg("--pause-image")
            .arg(support::pause())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };
    /// Stops the node, then `rk8s-node reset` removes whatever it left running, also
    /// after a failure.
    struct NodeGuard {
        child: std::process::Child,
        reset: Command,
    }
    impl Drop for NodeGuard {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = self.reset.status();
        }
    }
    let node_guard = NodeGuard {
        child: node_args("run").spawn().unwrap(),
        reset: node_args("reset"),
    };
    // What the node runs, read from its state: (pod name, running containers' ids).
    let helper = rk8s_runtime::helper::HelperClient::new(
        node_run.join("helper"),
        env!("CARGO_BIN_EXE_rk8sctl"),
    );
    let pods = || -> Vec<(String, String)> {
        let Ok(dirs) = std::fs::read_dir(node_data.join("pods")) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for dir in dirs.flatten() {
            let Ok(bytes) = std::fs::read(dir.path().join("pod.json")) else {
                continue;
            };
            let record: rk8s_runtime::pod::PodRecord = serde_json::from_slice(&bytes).unwrap();
            for c in record.containers.values() {
                if let Some(id) = &c.id
                    && rk8s_runtime::ContainerRuntime::state(&helper, id)
                        .is_ok_and(|s| s.status == rk8s_runtime::Status::Running)
                {
                    out.push((
                        record.pod.metadata.name.clone().unwrap(),
                        record.pod.spec.as_ref().unwrap().containers[0]
                            .command
                            .clone()
                            .unwrap()
                            .join(" "),
                    ));
                }
            }
        }
        out
    };
    let manifest = |command: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-web\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {}\n    command: [sh, -c, '{command}']\n",
            support::busybox()
        )
    };
    std::fs::write(manifests.join("web.yaml"), manifest("sleep 3600")).unwrap();
    eventually("the static pod runs", || {
        pods()
            == vec![(
                "static-web-testnode".to_string(),
                "sh -c sleep 3600".to_string(),
            )]
    });
    std::fs::write(manifests.join("web.yaml"), manifest("sleep 7200")).unwrap();
    eventually("the edit replaces it", || {
        pods()
            == vec![(
                "static-web-testnode".to_string(),
                "sh -c sleep 7200".to_string(),
            )]
    });
    std::fs::remove_file(manifests.join("web.yaml")).unwrap();
    eventually("removal stops it", || {
        std::fs::read_dir(node_data.join("pods"))
            .map(|d| d.count() == 0)
            .unwrap_or(true)
    });
    drop(node_guard);
    assert!(
        !std::path::Path::new("/sys/class/net")
            .join(format!("rk8sn{}", std::process::id() % 100_000))
            .exists()
    );
}

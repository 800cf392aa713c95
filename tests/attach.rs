//! `kubectl attach` and `kubectl run -i`/`-it` through a real `rk8s-server` to a real
//! node, as kubelet and containerd serve them: the live output of a running
//! container (not its past log), input to a `stdin: true` container kept open
//! between sessions, `stdinOnce` closing the stdin when the first session ends, a
//! `tty: true` container's terminal (resized), through kubectl (on a terminal made by
//! `script`), kube-rs and the Python client; RBAC's `create` on `pods/attach`; and
//! the node's helper and agent restarted under an attachable container, holding no
//! descriptor once sessions end. And `kubectl debug`: an ephemeral container added to a
//! running pod, in its target container's processes, attached to, never restarted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{AttachParams, TerminalSize};
use support::apiserver::Server;
use support::images::busybox;
use support::node::{NodeProcess, eventually, real_node};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long any one thing is waited for.
const WAIT: Duration = Duration::from_secs(60);

/// A running client (kubectl, script): its output, line by line, read on a thread;
/// killed on drop, also when the test fails.
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Starts `command` with its stdin piped and its stdout and stderr read (merged,
    /// by line, as they come).
    fn spawn(mut command: Command) -> Running {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).split(b'\n').map_while(Result::ok) {
                    let line = String::from_utf8_lossy(&line).trim_end().to_string();
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        let stdin = child.stdin.take();
        Running {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// Writes `text` to its stdin.
    fn type_in(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Closes its stdin.
    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for a line `wanted` accepts; returns it.
    fn line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        self.try_line(WAIT, wanted)
            .unwrap_or_else(|| panic!("never {what}; the output was:\n{}", self.seen.join("\n")))
    }

    /// Waits up to `timeout` for a line `wanted` accepts.
    fn try_line(&mut self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> Option<String> {
        if let Some(line) = self.seen.iter().find(|l| wanted(l)) {
            return Some(line.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            self.seen.push(line.clone());
            if wanted(&line) {
                return Some(line);
            }
        }
    }

    /// Waits for it to exit; its status and everything it printed.
    fn finish(mut self) -> (std::process::ExitStatus, String) {
        self.close_stdin();
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "it did not exit; its output:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        // What the reading threads still have.
        let until = Instant::now() + Duration::from_secs(5);
        while let Ok(line) = self
            .lines
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line);
        }
        (status, self.seen.join("\n"))
    }
}

/// `kubectl ARGS` against `server`, running.
fn kubectl(server: &Server, args: &[&str]) -> Running {
    let mut command = server.kubectl_command();
    command.args(args);
    Running::spawn(command)
}

/// `kubectl ARGS` on a terminal of its own (`script`, from util-linux), as a user
/// types it: its output comes through the terminal too.
fn kubectl_on_a_terminal(server: &Server, args: &[&str]) -> Running {
    let kubeconfig = server.kubeconfig().display().to_string();
    let mut line = String::from("kubectl");
    for arg in ["--kubeconfig", &kubeconfig].iter().chain(args) {
        // Quoted for the shell `script` runs it with.
        line.push_str(&format!(" '{}'", arg.replace('\'', "'\\''")));
    }
    let mut command = Command::new("script");
    command.args(["-qfec", &line, "/dev/null"]);
    Running::spawn(command)
}

/// `kubectl attach -i echo`, tried until it echoes `word` (a restarted node takes a
/// moment to be reached again); the session, still open.
fn echoed(server: &Server, word: &str) -> Running {
    let deadline = Instant::now() + WAIT;
    let mut outputs = Vec::new();
    loop {
        let mut session = kubectl(server, &["attach", "-i", "echo"]);
        session.type_in(&format!("{word}\n"));
        let echo = format!("echo: {word}");
        if session
            .try_line(Duration::from_secs(10), |l| l == echo)
            .is_some()
        {
            return session;
        }
        outputs.push(session.seen.join("\n"));
        assert!(
            Instant::now() < deadline,
            "never echoed {word}:\n{outputs:#?}"
        );
    }
}

/// Creates the pod `manifest` and waits for it to run.
async fn run_pod(pods: &Api<Pod>, manifest: serde_json::Value) {
    let name = manifest["metadata"]["name"].as_str().unwrap().to_string();
    pods.create(
        &Default::default(),
        &serde_json::from_value(manifest).unwrap(),
    )
    .await
    .unwrap();
    eventually(&format!("pod {name} Running"), async || {
        let pod = pods.get(&name).await.ok()?;
        (pod.status?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
}

/// A pod of one busybox container named as the pod, with `extra` container fields.
fn pod(name: &str, command: &[&str], extra: serde_json::Value) -> serde_json::Value {
    let mut container = serde_json::json!({"name": name, "image": busybox(), "command": command});
    if let (Some(c), Some(e)) = (container.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [container]},
    })
}

/// `kubectl run` arguments for the busybox image of the tests, a local layout whose
/// path kubectl would not take for an image name: a name it takes, and the path in
/// an override of container `name`.
fn busybox_for(name: &str) -> [String; 3] {
    let overrides =
        serde_json::json!({"spec": {"containers": [{"name": name, "image": busybox()}]}});
    [
        "--image=busybox".to_string(),
        "--override-type=strategic".to_string(),
        format!("--overrides={overrides}"),
    ]
}

/// The open descriptors of process `pid`.
fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The pid of the node's container helper.
fn helper_pid(node: &NodeProcess) -> u32 {
    let file = node.dir.path().join("run/helper/helper.pid");
    std::fs::read_to_string(file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_attach_and_run_interactive_reach_the_containers_main_process() {
    let server = Server::start(&[]);
    let mut node = real_node(&server, "at", 47).await;
    let pods: Api<Pod> = Api::default_namespaced(server.client().await);

    // Discovery names the subresource, as kube-apiserver's does.
    let v1 = server.kubectl_ok(&["get", "--raw", "/api/v1"]);
    assert!(v1.contains("\"name\":\"pods/attach\""), "{v1}");

    // The live output of a looping container, from the moment of attaching.
    let ticker = pod(
        "ticker",
        &[
            "sh",
            "-c",
            "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
        ],
        serde_json::json!({}),
    );
    run_pod(&pods, ticker).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let helper = helper_pid(&node);
    let helper_fds = descriptors(helper);
    let agent = node.child.as_ref().unwrap().id();
    let agent_fds = descriptors(agent);
    let number = |line: &str| line.strip_prefix("tick ")?.parse::<u64>().ok();
    let logged = server.kubectl_ok(&["logs", "ticker"]);
    let last_logged = logged.lines().filter_map(number).max().unwrap();
    let mut attached = kubectl(&server, &["attach", "ticker", "-c", "ticker"]);
    let first = number(&attached.line("a tick", |l| number(l).is_some())).unwrap();
    assert!(
        first >= last_logged,
        "attach replayed the past log: tick {first} after tick {last_logged} was logged"
    );
    let mut previous = first;
    for _ in 0..3 {
        let next =
            number(&attached.line("the next tick", |l| number(l).is_some_and(|n| n > previous)))
                .unwrap();
        assert_eq!(next, previous + 1, "a line was lost");
        previous = next;
    }
    drop(attached);
    // Sessions come and go: the helper keeps no descriptor of theirs, nor does the
    // agent (give or take its own connections to the API server).
    for _ in 0..6 {
        let mut again = kubectl(&server, &["attach", "ticker"]);
        again.line("a tick", |l| number(l).is_some());
    }
    eventually("the helper closes the sessions' descriptors", async || {
        (descriptors(helper) <= helper_fds).then_some(())
    })
    .await;
    eventually("the agent closes the sessions' descriptors", async || {
        (descriptors(agent) <= agent_fds + 4).then_some(())
    })
    .await;

    // `kubectl attach -i` to a `stdin: true` container: input reaches its process;
    // its stdin stays open when the session ends (no stdinOnce), for the next one.
    let echo = pod(
        "echo",
        &[
            "sh",
            "-c",
            "while read line; do echo \"echo: $line\"; done; echo stdin closed",
        ],
        serde_json::json!({"stdin": true}),
    );
    run_pod(&pods, echo).await;
    for word in ["hello", "again"] {
        let mut session = kubectl(&server, &["attach", "-i", "echo"]);
        // Input typed before the session is up waits in kubectl's stdin.
        session.type_in(&format!("{word}\n"));
        session.line("the echo", |l| l == format!("echo: {word}"));
        let (status, out) = session.finish();
        assert!(status.success(), "{out}");
        assert!(!out.contains("stdin closed"), "{out}");
    }

    // The agent restarted, then the helper killed: the next helper reopens the stdin
    // FIFO, and attaching still works.
    node.kill();
    node.run_again(&["--chaos"]);
    drop(echoed(&server, "after the agent"));
    let old_helper = helper_pid(&node);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(old_helper).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let (status, out) = echoed(&server, "after the helper").finish();
    assert!(status.success(), "{out}");
    assert_ne!(helper_pid(&node), old_helper);
    let pod_now = pods.get("echo").await.unwrap();
    let status = &pod_now.status.unwrap().container_statuses.unwrap()[0];
    assert_eq!(status.restart_count, 0);
    assert!(
        status.state.as_ref().unwrap().running.is_some(),
        "{status:?}"
    );

    // stdinOnce: the end of the first session's input is the container's end-of-file.
    let cat = pod(
        "cat",
        &["cat"],
        serde_json::json!({"stdin": true, "stdinOnce": true}),
    );
    run_pod(&pods, cat).await;
    let mut session = kubectl(&server, &["attach", "-i", "cat"]);
    session.type_in("line one\n");
    session.line("the line back", |l| l == "line one");
    let (status, out) = session.finish();
    assert!(status.success(), "{out}");
    eventually("cat exits 0 and its pod Succeeded", async || {
        let pod = pods.get("cat").await.ok()?;
        (pod.status?.phase.as_deref() == Some("Succeeded")).then_some(())
    })
    .await;

    // `kubectl run -i --rm`: kubectl makes the pod (stdin, stdinOnce), attaches, and
    // removes it; the process reads what was piped in.
    let image = busybox_for("reader");
    let image: Vec<&str> = image.iter().map(String::as_str).collect();
    let mut run = kubectl(
        &server,
        &[
            &["run", "-i", "--rm", "--restart=Never", "reader"][..],
            &image,
            &["--", "sh", "-c", "read x; echo got $x"],
        ]
        .concat(),
    );
    run.type_in("piped\n");
    run.close_stdin();
    let (status, out) = run.finish();
    assert!(status.success() && out.contains("got piped"), "{out}");
    assert!(out.contains("pod \"reader\" deleted"), "{out}");

    // A terminal: `tty: true, stdin: true` running sh, through kube-rs: the shell is
    // on a terminal, and resizes reach it.
    let shell = pod(
        "shell",
        &["sh"],
        serde_json::json!({"stdin": true, "tty": true}),
    );
    run_pod(&pods, shell).await;
    let mut attached = pods
        .attach("shell", &AttachParams::interactive_tty())
        .await
        .unwrap();
    let mut stdin = attached.stdin().unwrap();
    let mut stdout = attached.stdout().unwrap();
    let mut resize = attached.terminal_size().unwrap();
    let status = attached.take_status().unwrap();
    use futures_util::SinkExt;
    resize
        .send(TerminalSize {
            width: 123,
            height: 45,
        })
        .await
        .unwrap();
    stdin
        .write_all(b"tty; [ -t 0 ] && echo inter''active; stty size\n")
        .await
        .unwrap();
    let mut seen = String::new();
    let deadline = Instant::now() + WAIT;
    while !(seen.contains("/dev/pts/") && seen.contains("interactive") && seen.contains("45 123")) {
        let mut buf = [0u8; 4096];
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, stdout.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("the terminal said: {seen:?}"))
            .unwrap();
        assert!(n > 0, "the terminal ended: {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    stdin.write_all(b"exit 0\n").await.unwrap();
    let status = tokio::time::timeout(WAIT, status).await.unwrap();
    assert_eq!(status.and_then(|s| s.status).as_deref(), Some("Success"));
    eventually("the shell exits and its pod Succeeded", async || {
        let pod = pods.get("shell").await.ok()?;
        (pod.status?.phase.as_deref() == Some("Succeeded")).then_some(())
    })
    .await;

    // `kubectl run -it --rm` from a terminal.
    let image = busybox_for("tty-run");
    let image: Vec<&str> = image.iter().map(String::as_str).collect();
    let mut run = kubectl_on_a_terminal(
        &server,
        &[
            &["run", "-it", "--rm", "--restart=Never", "tty-run"][..],
            &image,
            &["--", "sh"],
        ]
        .concat(),
    );
    run.line("kubectl's prompt hint", |l| {
        l.contains("If you don't see a command prompt, try pressing enter.")
    });
    run.type_in("echo hi-$((40+2)) from $(tty)\n");
    run.line("the shell's answer", |l| l.contains("hi-42 from /dev/pts/"));
    run.type_in("exit\n");
    let (status, out) = run.finish();
    assert!(status.success(), "{out}");
    assert!(
        pods.get_opt("tty-run").await.unwrap().is_none() || out.contains("pod \"tty-run\" deleted"),
        "{out}"
    );

    // The Python client's `stream(connect_get_namespaced_pod_attach, …)`.
    support::cli::run_python("client_attach.py", &[&server.kubeconfig()]);

    // RBAC: a WebSocket attach asks with a GET, and kube-apiserver wants `create` on
    // pods/attach then too.
    let dir = tempfile::tempdir().unwrap();
    let user = server.user_kubeconfig(dir.path(), "pat", &[]);
    server.kubectl_ok(&[
        "create",
        "role",
        "at",
        "--verb=get",
        "--resource=pods,pods/attach",
    ]);
    server.kubectl_ok(&["create", "rolebinding", "at", "--role=at", "--user=pat"]);
    let mut command = support::cli::kubectl_command(&user);
    command.args(["attach", "ticker"]);
    let (status, out) = Running::spawn(command).finish();
    assert!(
        !status.success()
            && out.contains(
                "cannot create resource \"pods/attach\" in API group \"\" in the namespace \"default\""
            ),
        "{out}"
    );
    drop(node);
}

/// The status of ephemeral container `name` of pod `pod`, once `wanted` holds.
async fn ephemeral_status(
    pods: &Api<Pod>,
    pod: &str,
    name: &str,
    wanted: impl Fn(&k8s_openapi::api::core::v1::ContainerStatus) -> bool,
) -> k8s_openapi::api::core::v1::ContainerStatus {
    eventually(
        &format!("ephemeral container {name} as wanted"),
        async || {
            let pod = pods.get(pod).await.ok()?;
            let statuses = pod.status?.ephemeral_container_statuses?;
            statuses.into_iter().find(|s| s.name == name && wanted(s))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_debug_adds_ephemeral_containers_that_see_their_target_and_never_restart() {
    // kubectl takes only image names: busybox from a registry (plain HTTP, as
    // registries.yaml says).
    let registry = support::registry::Registry::start();
    let image = registry.push(&support::images::images().join("busybox"), "busybox:v1");
    let dir = tempfile::tempdir().unwrap();
    let registries = registry.plain_http_config(dir.path());
    // A pod range apart from the other test's node on this host.
    let server = Server::start(&["--cluster-cidr", "10.246.0.0/16"]);
    let _node = support::node::real_node_with(
        &server,
        "dbg",
        48,
        &["--registries", registries.to_str().unwrap()],
    )
    .await;
    let pods: Api<Pod> = Api::default_namespaced(server.client().await);
    let v1 = server.kubectl_ok(&["get", "--raw", "/api/v1"]);
    assert!(v1.contains("\"name\":\"pods/ephemeralcontainers\""), "{v1}");
    // The target: its main process is `sleep`, pid 1 of its own pid namespace.
    run_pod(
        &pods,
        pod(
            "app",
            &["sh", "-c", "exec sleep 3600"],
            serde_json::json!({}),
        ),
    )
    .await;

    // `kubectl debug --target`: the ephemeral container runs in the target's
    // processes (kubelet's TARGET pid namespace) and is reported.
    let image_arg = format!("--image={image}");
    let out = server.kubectl_ok(&[
        "debug",
        "app",
        &image_arg,
        "-c",
        "dbg",
        "--target=app",
        "--profile=general",
        "--",
        "sh",
        "-c",
        "ps -o pid,args; exec sleep 3600",
    ]);
    assert!(out.contains("Targeting container \"app\""), "{out}");
    let running = ephemeral_status(&pods, "app", "dbg", |s| {
        s.state.as_ref().is_some_and(|st| st.running.is_some())
    })
    .await;
    assert_eq!(running.image, image);
    assert!(!running.ready);
    let seen = eventually("the debug container's ps", async || {
        let log = server.kubectl_ok(&["logs", "app", "-c", "dbg"]);
        log.contains("sleep 3600").then_some(log)
    })
    .await;
    let target_line = seen
        .lines()
        .find(|l| l.trim().starts_with("1 "))
        .unwrap_or_default();
    assert!(
        target_line.contains("sleep 3600"),
        "pid 1 is the target's sleep:\n{seen}"
    );
    let pod_now = pods.get("app").await.unwrap();
    assert_eq!(pod_now.status.unwrap().phase.as_deref(), Some("Running"));
    let ephemeral = pod_now.spec.unwrap().ephemeral_containers.unwrap();
    assert_eq!(
        ephemeral[0].termination_message_policy.as_deref(),
        Some("File"),
        "defaulted"
    );

    // `kubectl debug -i`: attached to the new container's stdin; once it ends it is
    // never started again.
    let mut session = kubectl(
        &server,
        &[
            "debug",
            "-i",
            "app",
            &image_arg,
            "-c",
            "shell",
            "--profile=general",
            "--",
            "sh",
        ],
    );
    session.type_in("echo hello-$((40+2))\n");
    session.line("the shell's answer", |l| l == "hello-42");
    // Not stdinOnce (kubectl's choice): the session's end would leave the shell
    // running, attachable again; `exit` ends it.
    session.type_in("exit 3\n");
    let (status, output) = session.finish();
    // kubectl debug ends well when the session does (attach carries no exit code).
    assert!(status.success(), "{output}");
    let ended = ephemeral_status(&pods, "app", "shell", |s| {
        s.state.as_ref().is_some_and(|st| st.terminated.is_some())
    })
    .await;
    assert_eq!(ended.state.unwrap().terminated.unwrap().exit_code, 3);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pod_now = pods.get("app").await.unwrap();
    let statuses = pod_now
        .status
        .unwrap()
        .ephemeral_container_statuses
        .unwrap();
    let names: Vec<&str> = statuses.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["dbg", "shell"], "sorted by name");
    assert!(
        statuses[1].state.as_ref().unwrap().terminated.is_some(),
        "not restarted"
    );
    assert_eq!(statuses[1].restart_count, 0);

    // What kube-apiserver refuses: removing one, adding one by a plain update, a
    // pod created with one, a name taken.
    let (ok, out) = server.kubectl(&[
        "patch",
        "pod",
        "app",
        "--subresource=ephemeralcontainers",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/ephemeralContainers/0"}]"#,
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("existing ephemeral containers \\\"dbg\\\" may not be removed")
            || out.contains("existing ephemeral containers \"dbg\" may not be removed"),
        "{out}"
    );
    let added =
        serde_json::json!({"spec": {"ephemeralContainers": [{"name": "more", "image": image}]}});
    let (ok, out) = server.kubectl(&["patch", "pod", "app", "-p", &added.to_string()]);
    assert!(
        !ok && out.contains("pod updates may not change fields"),
        "{out}"
    );
    let (ok, out) = server.kubectl(&[
        "patch",
        "pod",
        "app",
        "--subresource=ephemeralcontainers",
        "-p",
        &serde_json::json!({"spec": {"ephemeralContainers": [{"name": "app", "image": image}]}})
            .to_string(),
    ]);
    assert!(
        !ok && out.contains("spec.ephemeralContainers[0].name: Duplicate value: \"app\""),
        "{out}"
    );
    let mut born_with = pod("born", &["sleep", "1"], serde_json::json!({}));
    born_with["spec"]["ephemeralContainers"] = serde_json::json!([{"name": "e", "image": image}]);
    let file = dir.path().join("born.json");
    std::fs::write(&file, born_with.to_string()).unwrap();
    let (ok, out) = server.kubectl(&["create", "-f", file.to_str().unwrap()]);
    assert!(
        !ok && out.contains("spec.ephemeralContainers: Forbidden: cannot be set on create"),
        "{out}"
    );
    // Its containers, the ephemeral one still running among them, stop with it (the
    // target's `sleep`, pid 1 of its namespace, ignores SIGTERM: a short grace).
    let quick = kube::api::DeleteParams {
        grace_period_seconds: Some(1),
        ..Default::default()
    };
    pods.delete("app", &quick).await.unwrap();
    eventually("pod app gone", async || {
        pods.get_opt("app").await.ok()?.is_none().then_some(())
    })
    .await;
}

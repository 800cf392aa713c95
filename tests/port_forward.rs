//! `kubectl port-forward` through a real `rk8s-server` to a real node: kubectl's
//! SPDY tunnelled in a WebSocket (its default) and plain SPDY (its fallback), to a
//! pod, a Service and a Deployment, many connections and a megabyte through one
//! forward; `kubectl cp` (tar over exec) both ways; a port nobody listens on
//! reported as kubelet reports it; and the
//! WebSocket channel protocol of the other clients (`rk8sctl port-forward` through
//! kube-rs, and the Python client: `tests/python/client_port_forward.py`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use support::apiserver::{Server, free_port};
use support::images::busybox;
use support::node::{eventually, real_node};

/// The pod's web server: a page and a megabyte file.
fn web_pod(image: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": image,
            "ports": [{"containerPort": 8080, "name": "http"}],
            "command": ["sh", "-c", "mkdir -p /www && echo hello-from-the-pod > /www/index.html \
                && head -c 1048576 /dev/zero | tr '\\0' a > /www/big \
                && exec httpd -f -p 8080 -h /www"]}]}})
}

/// A running `kubectl port-forward`, stopped when dropped.
struct Forward {
    child: Child,
    port: u16,
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Forward {
    /// Starts `kubectl port-forward TARGET LOCAL:REMOTE` (with `env`), once it listens.
    fn start(server: &Server, target: &str, remote: u16, env: &[(&str, &str)]) -> Forward {
        let mut command = server.kubectl_command();
        command
            .args(["port-forward", target, &format!("{}:{remote}", free_port())])
            .args(["--address", "127.0.0.1"])
            .envs(env.iter().copied());
        Forward::spawn(command)
    }

    /// Runs a `port-forward` command; returns once it says where it listens.
    fn spawn(mut command: std::process::Command) -> Forward {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let port = line
            .strip_prefix("Forwarding from 127.0.0.1:")
            .and_then(|rest| rest.split_once(" -> "))
            .and_then(|(port, _)| port.parse().ok())
            .unwrap_or_else(|| panic!("{line:?}"));
        // The rest of its output is not read: a line per connection.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Forward { child, port }
    }

    /// `GET path` through the forward: the body.
    fn get(&self, path: &str) -> Vec<u8> {
        get(self.port, path)
    }

    /// What kubectl wrote on its standard error, once it has stopped.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        err
    }
}

/// `GET path` from `127.0.0.1:port`: the body of a 200.
fn get(port: u16, path: &str) -> Vec<u8> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(conn, "GET {path} HTTP/1.0\r\nHost: web\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).unwrap();
    let at = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&answer)));
    assert!(
        answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer[..at])
    );
    answer.split_off(at + 4)
}

/// `GET path` from the pod `web` through a `kubectl port-forward` of its own.
fn forward_get(server: &Server, path: &str) -> Vec<u8> {
    Forward::start(server, "pod/web", 8080, &[]).get(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_port_forward_reaches_pods_services_and_deployments() {
    let server = Server::start(&[]);
    let _node = real_node(&server, "pf", 41).await;
    let dir = tempfile::tempdir().unwrap();
    let pod = support::apiserver::write_manifest(dir.path(), "pod.json", &web_pod(&busybox()));
    server.kubectl_ok(&["create", "-f", &pod]);
    server.kubectl_ok(&[
        "expose",
        "pod",
        "web",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    let pods: Api<Pod> = Api::default_namespaced(server.client().await);
    eventually("the web pod Running and listening", async || {
        let pod = pods.get("web").await.ok()?;
        (pod.status?.phase.as_deref() == Some("Running")).then_some(())?;
        let out = server.kubectl(&[
            "exec",
            "web",
            "--",
            "wget",
            "-q",
            "-O",
            "-",
            "http://127.0.0.1:8080/",
        ]);
        out.0.then_some(())
    })
    .await;

    // kubectl's default, SPDY in a WebSocket; then plain SPDY, its fallback.
    for env in [&[][..], &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")][..]] {
        let forward = Forward::start(&server, "pod/web", 8080, env);
        // Many connections through one forward, one after another and at once.
        for _ in 0..3 {
            assert_eq!(
                forward.get("/index.html"),
                b"hello-from-the-pod\n",
                "{env:?}"
            );
        }
        let port = forward.port;
        let together: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(move || get(port, "/big")))
            .collect();
        for t in together {
            let big = t.join().unwrap();
            assert_eq!(big.len(), 1 << 20, "{env:?}");
            assert!(big.iter().all(|b| *b == b'a'));
        }
        let err = forward.stop();
        assert!(!err.contains("error"), "{env:?}: {err}");
    }
    // Each way was taken, not one falling back to the other.
    let metrics = server.kubectl_ok(&["get", "--raw", "/api/v1/nodes/pf/proxy/metrics"]);
    for protocol in ["spdy", "spdy-websocket"] {
        let line = format!("rk8s_node_port_forward_connections_total{{protocol=\"{protocol}\"}} 1");
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }

    // A Service (its port 80, the pod's 8080) and a Deployment: kubectl picks the pod.
    let forward = Forward::start(&server, "svc/web", 80, &[]);
    assert_eq!(forward.get("/"), b"hello-from-the-pod\n");
    drop(forward);
    server.kubectl_ok(&[
        "create",
        "deployment",
        "api",
        "--image",
        &busybox(),
        "--",
        "sh",
        "-c",
        "mkdir -p /www && echo hello-from-api > /www/index.html && exec httpd -f -p 8080 -h /www",
    ]);
    server.kubectl_ok(&["rollout", "status", "deployment/api", "--timeout", "120s"]);
    let forward = Forward::start(&server, "deployment/api", 8080, &[]);
    assert_eq!(forward.get("/"), b"hello-from-api\n");
    drop(forward);

    // rk8sctl, with the WebSocket channel protocol: a Service's port picked locally.
    let mut command = server.rk8sctl_command();
    command.args(["port-forward", "svc/web", ":80", "--address", "127.0.0.1"]);
    let forward = Forward::spawn(command);
    assert_eq!(forward.get("/"), b"hello-from-the-pod\n");
    assert_eq!(forward.get("/big").len(), 1 << 20);
    let metrics = server.kubectl_ok(&["get", "--raw", "/api/v1/nodes/pf/proxy/metrics"]);
    let line = "rk8s_node_port_forward_connections_total{protocol=\"v4.channel.k8s.io\"} 2";
    assert!(
        metrics.lines().any(|l| l == line),
        "no {line:?} in\n{metrics}"
    );
    drop(forward);
    let mut command = server.rk8sctl_command();
    command.args(["port-forward", "web", ":9999", "--address", "127.0.0.1"]);
    let forward = Forward::spawn(command);
    let mut conn = TcpStream::connect(("127.0.0.1", forward.port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut nothing = Vec::new();
    let _ = conn.read_to_end(&mut nothing);
    std::thread::sleep(Duration::from_secs(1));
    let err = forward.stop();
    assert!(
        err.contains("error: an error occurred forwarding ")
            && err.contains(" -> 9999: error forwarding port 9999 to pod default/web"),
        "{err}"
    );

    // `kubectl cp` both ways: tar through exec.
    let copy = dir.path().join("copy.txt");
    let copy = copy.to_str().unwrap();
    server.kubectl_ok(&["cp", "web:/www/index.html", copy]);
    assert_eq!(
        std::fs::read_to_string(copy).unwrap(),
        "hello-from-the-pod\n"
    );
    std::fs::write(copy, "sent-by-kubectl-cp\n").unwrap();
    server.kubectl_ok(&["cp", copy, "web:/www/sent.txt"]);
    assert_eq!(forward_get(&server, "/sent.txt"), b"sent-by-kubectl-cp\n");

    // RBAC: `get` on pods/portforward is not enough (a WebSocket asks with a GET),
    // `create` is, as kube-apiserver has it.
    let user = server.user_kubeconfig(dir.path(), "pat", &[]);
    server.kubectl_ok(&[
        "create",
        "role",
        "pf",
        "--verb=get",
        "--resource=pods,pods/portforward",
    ]);
    server.kubectl_ok(&["create", "rolebinding", "pf", "--role=pf", "--user=pat"]);
    let as_pat = |port: u16| {
        let mut command = support::cli::kubectl_command(&user);
        command.args(["port-forward", "pod/web", &format!("{port}:8080")]);
        command.args(["--address", "127.0.0.1"]);
        command
    };
    let out = as_pat(free_port()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("cannot create resource \"pods/portforward\" in API group \"\" in the namespace \"default\""),
        "{err}"
    );
    server.kubectl_ok(&[
        "create",
        "role",
        "pf-create",
        "--verb=create",
        "--resource=pods/portforward",
    ]);
    server.kubectl_ok(&[
        "create",
        "rolebinding",
        "pf-create",
        "--role=pf-create",
        "--user=pat",
    ]);
    let forward = Forward::spawn(as_pat(free_port()));
    assert_eq!(forward.get("/"), b"hello-from-the-pod\n");
    drop(forward);

    // The Python client (the same channel protocol, written by others).
    support::cli::run_python("client_port_forward.py", &[&server.kubeconfig()]);

    // Nobody listens on 9999: kubelet's words, on kubectl's error output.
    let forward = Forward::start(&server, "pod/web", 9999, &[]);
    let mut conn = TcpStream::connect(("127.0.0.1", forward.port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = conn.write_all(b"GET / HTTP/1.0\r\n\r\n");
    let mut nothing = Vec::new();
    let _ = conn.read_to_end(&mut nothing);
    assert!(nothing.is_empty());
    // kubectl prints the error stream's text once it has read it all.
    std::thread::sleep(Duration::from_secs(2));
    let err = forward.stop();
    assert!(
        err.contains("error forwarding port 9999 to pod default/web")
            && err.contains("failed to connect to localhost:9999 inside namespace"),
        "{err}"
    );
}

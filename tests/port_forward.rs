//! `kubectl port-forward` through a real `rk8s-server` to a real node: kubectl's
//! SPDY tunnelled in a WebSocket (its default) and plain SPDY (its fallback), to a
//! pod, a Service and a Deployment, many connections and a megabyte through one
//! forward; `kubectl cp` (tar over exec) both ways; a port nobody listens on
//! reported as kubelet reports it; and the
//! WebSocket channel protocol of the other clients (`rk8sctl port-forward` through
//! kube-rs, and the Python client: `tests/python/client_port_forward.py`). And the
//! proxy subresources: `pods/proxy` and `services/proxy` through kubectl, `kubectl
//! proxy` and kube-rs (methods, bodies, queries, redirects, errors, RBAC).

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

/// `kubectl proxy` on a port of its own, stopped when dropped.
struct KubectlProxy {
    child: Child,
    port: u16,
}

impl Drop for KubectlProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_and_services_proxy_http_to_their_pods_through_the_node() {
    // The node dials its pod's address from the host: a pod range of its own, apart
    // from the other test's node on this host.
    let server = Server::start(&["--cluster-cidr", "10.245.0.0/16"]);
    let _node = real_node(&server, "px", 43).await;
    let dir = tempfile::tempdir().unwrap();
    // The page, a directory, and a CGI script that says what it was asked.
    let script = "#!/bin/sh\necho Content-Type: text/plain\necho\n\
                  echo \"method=$REQUEST_METHOD query=$QUERY_STRING len=$CONTENT_LENGTH\"\n\
                  head -c \"${CONTENT_LENGTH:-0}\"\n";
    let mut pod = web_pod(&busybox());
    pod["spec"]["containers"][0]["command"] = serde_json::json!([
        "sh",
        "-c",
        format!(
            "mkdir -p /www/cgi-bin /www/dir && echo hello-from-the-pod > /www/index.html \
         && echo in-dir > /www/dir/index.html && printf '{script}' > /www/cgi-bin/echo \
         && chmod +x /www/cgi-bin/echo && exec httpd -f -p 8080 -h /www"
        )
    ]);
    let file = support::apiserver::write_manifest(dir.path(), "pod.json", &pod);
    server.kubectl_ok(&["create", "-f", &file]);
    let service = serde_json::json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}});
    let file = support::apiserver::write_manifest(dir.path(), "svc.json", &service);
    server.kubectl_ok(&["create", "-f", &file]);
    server.kubectl_ok(&["create", "service", "clusterip", "empty", "--tcp=80:80"]);
    let v1 = server.kubectl_ok(&["get", "--raw", "/api/v1"]);
    for sub in ["pods/proxy", "services/proxy"] {
        assert!(v1.contains(&format!("\"name\":\"{sub}\"")), "{sub}: {v1}");
    }

    // A pod by name (its first container port), by name and port; a Service by its
    // port's name, its number, with a scheme: once its endpoint is there.
    let ns = "/api/v1/namespaces/default";
    eventually("the service's endpoint answering", async || {
        let (ok, out) =
            server.kubectl(&["get", "--raw", &format!("{ns}/services/web:http/proxy/")]);
        (ok && out == "hello-from-the-pod\n").then_some(())
    })
    .await;
    for path in [
        "pods/web/proxy/index.html",
        "pods/web:8080/proxy/",
        "pods/http:web:8080/proxy/",
        "services/web:80/proxy/index.html",
        "services/http:web:http/proxy/",
        // No slash after `proxy`: redirected to it (kubectl follows).
        "pods/web/proxy",
    ] {
        let out = server.kubectl_ok(&["get", "--raw", &format!("{ns}/{path}")]);
        assert_eq!(out, "hello-from-the-pod\n", "{path}");
    }

    // Other methods, a body and a query reach the pod (a body of known length:
    // busybox's httpd takes no chunked one, and kubectl's `create --raw` streams).
    let client = server.client().await;
    let asked = http::Request::post(format!(
        "{ns}/services/web:http/proxy/cgi-bin/echo?a=1&b=two"
    ))
    .header("content-type", "text/plain")
    .body(b"sent-through-the-proxy".to_vec())
    .unwrap();
    let answer = client
        .send(asked.map(kube::client::Body::from))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let text = answer.into_body().collect_bytes().await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&text),
        "method=POST query=a=1&b=two len=22\nsent-through-the-proxy"
    );

    // The pod's redirect to its own path stays under the proxy (kube-rs does not
    // follow it).
    let asked = http::Request::get(format!("{ns}/pods/web:8080/proxy/dir"))
        .body(Vec::new())
        .unwrap();
    let answer = client
        .send(asked.map(kube::client::Body::from))
        .await
        .unwrap();
    let location = answer
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    assert!(answer.status().is_redirection(), "{answer:?}");
    assert_eq!(
        location.as_deref(),
        Some("/api/v1/namespaces/default/pods/web:8080/proxy/dir/")
    );

    // kube-apiserver's errors: nobody on the port, no endpoints, a port the Service
    // does not have, a bad id.
    let (ok, out) = server.kubectl(&["get", "--raw", &format!("{ns}/pods/web:9999/proxy/")]);
    assert!(
        !ok && out.contains("error trying to reach service"),
        "{out}"
    );
    let (ok, out) = server.kubectl(&["get", "--raw", &format!("{ns}/services/empty/proxy/")]);
    assert!(
        !ok && out.contains("no endpoints available for service \"empty\""),
        "{out}"
    );
    let (ok, out) = server.kubectl(&["get", "--raw", &format!("{ns}/services/web:81/proxy/")]);
    assert!(
        !ok && out.contains("no service port 81 found for service"),
        "{out}"
    );
    let (ok, out) = server.kubectl(&["get", "--raw", &format!("{ns}/pods/ftp:web:21/proxy/")]);
    assert!(!ok && out.contains("invalid pod request"), "{out}");

    // Endpoints written by hand in another namespace, naming this pod, reach nothing
    // (kube's isValidAddress): a Service proxies only to its own namespace's pods.
    let pods: Api<Pod> = Api::default_namespaced(server.client().await);
    let ip = pods
        .get("web")
        .await
        .unwrap()
        .status
        .unwrap()
        .pod_ip
        .unwrap();
    server.kubectl_ok(&["create", "namespace", "other"]);
    // No selector: the Endpoints are the writer's, no controller's.
    let stolen = serde_json::json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "stolen", "namespace": "other"},
        "spec": {"ports": [{"name": "80-8080", "port": 80, "targetPort": 8080}]}});
    let file = support::apiserver::write_manifest(dir.path(), "stolen-svc.json", &stolen);
    server.kubectl_ok(&["apply", "-f", &file]);
    let endpoints = serde_json::json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "stolen", "namespace": "other"},
        "subsets": [{"addresses": [{"ip": ip,
            "targetRef": {"kind": "Pod", "namespace": "default", "name": "web"}}],
            "ports": [{"name": "80-8080", "port": 8080}]}]});
    let file = support::apiserver::write_manifest(dir.path(), "stolen.json", &endpoints);
    server.kubectl_ok(&["apply", "-f", &file]);
    let (ok, out) = server.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/other/services/stolen:80/proxy/",
    ]);
    assert!(!ok && out.contains("no endpoints available"), "{out}");

    // `kubectl proxy`, as users reach a Service's web page.
    let mut command = server.kubectl_command();
    let mut child = command
        .args(["proxy", "--port=0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{line:?}"));
    let proxy = KubectlProxy { child, port };
    // (It serves the hosts it names, `127.0.0.1` among them.)
    let mut conn = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let path = format!("{ns}/services/web:http/proxy/index.html");
    write!(conn, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut page = String::new();
    conn.read_to_string(&mut page).unwrap();
    assert!(
        page.starts_with("HTTP/1.0 200") && page.ends_with("\r\n\r\nhello-from-the-pod\n"),
        "{page}"
    );
    drop(proxy);

    // RBAC: reading pods is not proxying to them.
    let user = server.user_kubeconfig(dir.path(), "viewer", &[]);
    server.kubectl_ok(&[
        "create",
        "role",
        "read",
        "--verb=get",
        "--resource=pods,services",
    ]);
    server.kubectl_ok(&[
        "create",
        "rolebinding",
        "read",
        "--role=read",
        "--user=viewer",
    ]);
    let out = support::cli::kubectl_command(&user)
        .args(["get", "--raw", &format!("{ns}/pods/web/proxy/")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cannot get resource \"pods/proxy\""),
        "{err}"
    );
}

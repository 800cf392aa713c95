//! Ingress benchmark (`make bench`, as root): what the node's built-in Ingress proxy
//! costs against going straight to the pod.
//!
//! One `rk8s-server` and one real `rk8s-node` in a network namespace of its own on a
//! host bridge (the harness of `tests/ingress.rs`), its ingress listening on port 80
//! there. The backend is this executable again, started in a busybox pod with the
//! environment variable [`BACKEND`] set: a small hyper HTTP/1.1 server answering every
//! request with the same 19 bytes, keep-alive (busybox httpd forks per request: it,
//! not the proxy, would be measured). The pod mounts the executable's directory and
//! the host's directories of the libraries it links (`ldd`), read-only. A Service
//! selects the pod; an Ingress routes the host `bench.test` to it.
//!
//! The client is hyper in this process, its threads in the node's namespace; each
//! connection is kept alive with one request in flight. For 1 and 64 connections, it
//! sends GETs for [`WARMUP`], then counts for [`MEASURE`] (`RK8S_BENCH_INGRESS_SECONDS`
//! sets another) requests/s and p50/p99 latency, (a) straight to the pod's address and
//! (b) through the node's ingress and (c) through nginx, the peer proxy users know
//! (ingress-nginx is nginx), run by this benchmark in the node's namespace with as many
//! workers as the node's proxy has threads, keeping connections to the pod alive as
//! ingress-nginx does; the ratios ingress/direct (issue 25's goal: ≥ 0.8×) and
//! nginx/direct of requests/s. The CPU seconds of the agent (which carries the proxy;
//! apart, its `ingress` threads, the proxy's runtime), nginx, the backend and this
//! process (the client) are read over each measured window.
//!
//! Prints a table and writes `target/bench/ingress.json`. The namespaces, the bridge,
//! the processes (nginx included) and the pod are removed afterwards, also when the
//! benchmark fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{children, cpu_seconds, ms, percentile, print_table, threads_named, write_json};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, PostParams};
use serde_json::json;
use support::apiserver::Server;
use support::images::busybox;
use support::netns::NodeNetwork;
use support::node::{eventually, real_node_in};

/// Set in the backend pod: the address its server listens on.
const BACKEND: &str = "RK8S_BENCH_INGRESS_BACKEND";
/// What the backend answers.
const BODY: &[u8] = b"rk8s ingress bench\n";
/// The host the Ingress routes.
const HOST: &str = "bench.test";
/// Where the pod mounts the executable's directory.
const EXE_MOUNT: &str = "/rk8s-bench";
const WARMUP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(5);
const CONNECTIONS: [usize; 2] = [1, 64];

fn main() {
    if let Ok(address) = std::env::var(BACKEND) {
        backend(&address);
        return;
    }
    let measure = std::env::var("RK8S_BENCH_INGRESS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(MEASURE, Duration::from_secs);
    // Declared first, dropped last: the node is reset inside its namespace first.
    let mut net = NodeNetwork::new();
    let server = Server::start(&["--address", &net.host_ip()]);
    let ns = net.add_node(1);
    let node_ip = net.node_ip(1);
    let client = client_runtime(&ns);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let runs = runtime.block_on(async {
        let agent = real_node_in(&server, "a", 80, Some(ns.clone()), &[]).await;
        let agent_pid = agent.child.as_ref().unwrap().id();
        println!("agent pid {agent_pid} (perf record -g -p {agent_pid}, during a run)");
        let pod_ip = deploy(&server).await;
        let direct: SocketAddr = format!("{pod_ip}:8080").parse().unwrap();
        let ingress: SocketAddr = format!("{node_ip}:80").parse().unwrap();
        for target in [direct, ingress] {
            let handle = client.handle().clone();
            eventually(&format!("the backend answering at {target}"), async || {
                handle.spawn(get_once(target)).await.ok().flatten()
            })
            .await;
        }
        let backend_pid = backend_pid().expect("the backend's process");
        let workers = threads_named(agent_pid, "ingress").len().max(1);
        let nginx = Nginx::start(&ns, &node_ip, &pod_ip, workers);
        let peer: SocketAddr = format!("{node_ip}:{NGINX_PORT}").parse().unwrap();
        let handle = client.handle().clone();
        eventually("nginx answering", async || {
            handle.spawn(get_once(peer)).await.ok().flatten()
        })
        .await;
        let pids = Pids {
            agent: agent_pid,
            nginx: nginx.pid(),
            backend: backend_pid,
            client: std::process::id(),
        };
        let mut runs = Vec::new();
        for connections in CONNECTIONS {
            for (path, target) in [("direct", direct), ("ingress", ingress), ("nginx", peer)] {
                eprintln!("measuring {path}, {connections} connection(s)");
                let run = measure_run(client.handle(), target, connections, measure, pids).await;
                runs.push((path, connections, run));
            }
        }
        drop(nginx);
        drop(agent);
        (runs, workers)
    });
    let (runs, workers) = runs;
    drop(client);
    drop(runtime);
    drop(server);
    drop(net);
    report(&runs, measure, workers);
}

/// The port nginx listens on in the node's namespace.
const NGINX_PORT: u16 = 8081;

/// nginx in the node's namespace as a reverse proxy to the pod, configured as
/// ingress-nginx configures its upstreams (HTTP/1.1 with keep-alive connections to
/// the pod, 320 kept per worker, `Connection` cleared), with `workers` worker
/// processes and its access log off. Killed, and its directory removed, when
/// dropped.
struct Nginx {
    child: std::process::Child,
    dir: PathBuf,
}

impl Nginx {
    fn start(ns: &str, node_ip: &str, pod_ip: &str, workers: usize) -> Nginx {
        let dir = std::env::temp_dir().join(format!("rk8s-bench-nginx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "worker_processes {workers};\n\
             pid {dir}/nginx.pid;\n\
             error_log {dir}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {dir}/body;\n\
               proxy_temp_path {dir}/proxy;\n\
               fastcgi_temp_path {dir}/fastcgi;\n\
               uwsgi_temp_path {dir}/uwsgi;\n\
               scgi_temp_path {dir}/scgi;\n\
               keepalive_requests 1000000;\n\
               upstream backend {{ server {pod_ip}:8080; keepalive 320; keepalive_requests 1000000; }}\n\
               server {{\n\
                 listen {node_ip}:{NGINX_PORT};\n\
                 server_name {HOST};\n\
                 location / {{\n\
                   proxy_pass http://backend;\n\
                   proxy_http_version 1.1;\n\
                   proxy_set_header Connection \"\";\n\
                   proxy_set_header Host $host;\n\
                   proxy_set_header X-Forwarded-For $remote_addr;\n\
                 }}\n\
               }}\n\
             }}\n",
            dir = dir.display()
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "nginx", "-e"])
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .spawn()
            .expect("nginx (scripts/setup-bench.sh installs it)");
        Nginx { child, dir }
    }

    /// The master's pid (`ip netns exec` execs nginx in place).
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers, then exits.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The backend: a hyper HTTP/1.1 server on `address` answering [`BODY`] to every
/// request, keep-alive.
fn backend(address: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(address).await.unwrap();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(BODY),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// A runtime whose threads are in the network namespace `ns` (sockets belong to the
/// namespace of the thread that makes them).
fn client_runtime(ns: &str) -> tokio::runtime::Runtime {
    let path = format!("/run/netns/{ns}");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            let file = std::fs::File::open(&path).unwrap();
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        })
        .build()
        .unwrap()
}

/// The directories of the libraries this executable links, its loader's included
/// (`ldd`), as the host has them.
fn library_dirs(exe: &Path) -> BTreeSet<PathBuf> {
    let out = std::process::Command::new("ldd").arg(exe).output().unwrap();
    assert!(out.status.success(), "ldd {}", exe.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or
            // `/lib64/ld-linux-x86-64.so.2 (0x…)`.
            let path = line.split("=>").last()?.split_whitespace().next()?;
            if !path.starts_with('/') {
                return None;
            }
            Path::new(path).parent().map(Path::to_path_buf)
        })
        .collect()
}

/// The backend pod (this executable with [`BACKEND`] set), its Service and the
/// Ingress; the pod's address once it is ready.
async fn deploy(server: &Server) -> String {
    let admin = server.client().await;
    let post = PostParams::default();
    let exe = std::env::current_exe().unwrap();
    let name = exe.file_name().unwrap().to_string_lossy().into_owned();
    let mut volumes = vec![json!({"name": "exe", "hostPath": {"path": exe.parent().unwrap()}})];
    let mut mounts = vec![json!({"name": "exe", "mountPath": EXE_MOUNT, "readOnly": true})];
    let libs = library_dirs(&exe);
    for (i, dir) in libs.iter().enumerate() {
        volumes.push(json!({"name": format!("lib{i}"), "hostPath": {"path": dir}}));
        mounts.push(json!({"name": format!("lib{i}"), "mountPath": dir, "readOnly": true}));
    }
    let library_path: Vec<String> = libs.iter().map(|d| d.display().to_string()).collect();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "backend", "labels": {"app": "backend"}},
        "spec": {
            "nodeName": "a",
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": false,
            "volumes": volumes,
            "containers": [{"name": "server", "image": busybox(),
                "command": [format!("{EXE_MOUNT}/{name}")],
                "env": [{"name": BACKEND, "value": "0.0.0.0:8080"},
                        {"name": "LD_LIBRARY_PATH", "value": library_path.join(":")}],
                "ports": [{"name": "http", "containerPort": 8080}],
                "volumeMounts": mounts,
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]
        }
    }))
    .unwrap();
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "backend"},
        "spec": {"selector": {"app": "backend"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .unwrap();
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "bench"},
        "spec": {"rules": [{"host": HOST, "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "backend", "port": {"number": 80}}}}]}}]}
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    pods.create(&post, &pod).await.unwrap();
    Api::<Service>::namespaced(admin.clone(), "default")
        .create(&post, &service)
        .await
        .unwrap();
    Api::<Ingress>::namespaced(admin, "default")
        .create(&post, &ingress)
        .await
        .unwrap();
    eventually("the backend pod ready", async || {
        let status = pods.get("backend").await.ok()?.status?;
        let ready = status
            .conditions?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then_some(status.pod_ip?)
    })
    .await
}

/// The backend's process: the one started as [`EXE_MOUNT`]`/…` (read from `/proc`).
fn backend_pid() -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            cmdline
                .starts_with(format!("{EXE_MOUNT}/").as_bytes())
                .then_some(pid)
        })
}

/// One GET of `/` for [`HOST`] at `target` on a new connection: `Some` when it is
/// answered 200 with [`BODY`].
async fn get_once(target: SocketAddr) -> Option<()> {
    let answered = async {
        let stream = tokio::net::TcpStream::connect(target).await.ok()?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        let response = sender.send_request(request()).await.ok()?;
        let ok = response.status() == 200;
        let body = response.into_body().collect().await.ok()?.to_bytes();
        (ok && body == BODY).then_some(())
    };
    tokio::time::timeout(Duration::from_secs(2), answered)
        .await
        .ok()
        .flatten()
}

fn request() -> hyper::Request<Empty<Bytes>> {
    hyper::Request::get("/")
        .header(hyper::header::HOST, HOST)
        .body(Empty::new())
        .unwrap()
}

/// One kept-alive connection to `target` sending GETs one after another until `end`:
/// the latencies of those sent from `from` and answered by `end`.
async fn connection(target: SocketAddr, from: Instant, end: Instant) -> Vec<Duration> {
    let stream = tokio::net::TcpStream::connect(target).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut latencies = Vec::new();
    loop {
        let sent = Instant::now();
        if sent >= end {
            return latencies;
        }
        sender.ready().await.unwrap();
        let response = sender.send_request(request()).await.unwrap();
        assert_eq!(response.status(), 200, "from {target}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, BODY, "from {target}");
        let done = Instant::now();
        if sent >= from && done <= end {
            latencies.push(done - sent);
        }
    }
}

/// The processes whose CPU is read.
#[derive(Clone, Copy)]
struct Pids {
    agent: u32,
    /// nginx's master (its workers are its children).
    nginx: u32,
    backend: u32,
    client: u32,
}

/// CPU seconds (all threads) of the agent, nginx (master and workers), the backend and
/// the client, and of the agent's `ingress` threads (the proxy's runtime).
#[derive(Clone, Copy, Default)]
struct Cpu {
    agent: f64,
    agent_proxy: f64,
    nginx: f64,
    backend: f64,
    client: f64,
}

impl Cpu {
    fn read(pids: Pids) -> Cpu {
        let (agent, agent_proxy) = cpu_seconds(pids.agent, "ingress");
        let nginx = std::iter::once(pids.nginx)
            .chain(children(pids.nginx))
            .map(|pid| cpu_seconds(pid, "").0)
            .sum();
        Cpu {
            agent,
            agent_proxy,
            nginx,
            backend: cpu_seconds(pids.backend, "").0,
            client: cpu_seconds(pids.client, "").0,
        }
    }

    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            agent: self.agent - before.agent,
            agent_proxy: self.agent_proxy - before.agent_proxy,
            nginx: self.nginx - before.nginx,
            backend: self.backend - before.backend,
            client: self.client - before.client,
        }
    }
}

/// One measured case.
struct Run {
    /// Sorted.
    latencies: Vec<Duration>,
    per_second: f64,
    cpu: Cpu,
}

/// `connections` connections to `target` for [`WARMUP`], then `measure` counted.
async fn measure_run(
    client: &tokio::runtime::Handle,
    target: SocketAddr,
    connections: usize,
    measure: Duration,
    pids: Pids,
) -> Run {
    let start = Instant::now();
    let (from, end) = (start + WARMUP, start + WARMUP + measure);
    let tasks: Vec<_> = (0..connections)
        .map(|_| client.spawn(connection(target, from, end)))
        .collect();
    tokio::time::sleep_until(from.into()).await;
    let before = Cpu::read(pids);
    tokio::time::sleep_until(end.into()).await;
    let cpu = Cpu::read(pids).since(before);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    latencies.sort();
    Run {
        per_second: latencies.len() as f64 / measure.as_secs_f64(),
        latencies,
        cpu,
    }
}

fn report(runs: &[(&str, usize, Run)], measure: Duration, workers: usize) {
    println!(
        "\nrk8s Ingress: GET / answered by a hyper backend pod, {}-byte body, keep-alive, one request in flight per connection ({} s after {} s warm-up; CPU s over the {} s; the proxy's threads and nginx's workers: {workers})\n",
        BODY.len(),
        measure.as_secs(),
        WARMUP.as_secs(),
        measure.as_secs()
    );
    let header = [
        "path",
        "connections",
        "req/s",
        "p50 ms",
        "p99 ms",
        "agent CPU s (ingress threads)",
        "nginx CPU s",
        "backend CPU s",
        "client CPU s",
    ];
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|(path, connections, run)| {
            vec![
                path.to_string(),
                connections.to_string(),
                format!("{:.0}", run.per_second),
                format!("{:.3}", ms(percentile(&run.latencies, 0.5))),
                format!("{:.3}", ms(percentile(&run.latencies, 0.99))),
                format!("{:.2} ({:.2})", run.cpu.agent, run.cpu.agent_proxy),
                format!("{:.2}", run.cpu.nginx),
                format!("{:.2}", run.cpu.backend),
                format!("{:.2}", run.cpu.client),
            ]
        })
        .collect();
    print_table(&header, &rows);
    let per_second = |path: &str, connections: usize| {
        runs.iter()
            .find(|r| r.0 == path && r.1 == connections)
            .map_or(0.0, |r| r.2.per_second)
    };
    let mut ratios = serde_json::Map::new();
    let mut peer = serde_json::Map::new();
    println!();
    for connections in CONNECTIONS {
        let direct = per_second("direct", connections);
        let ratio = per_second("ingress", connections) / direct;
        let nginx = per_second("nginx", connections) / direct;
        println!(
            "ingress / direct req/s, {connections} connection(s): {ratio:.2}× (goal ≥ 0.8×: {}); nginx / direct: {nginx:.2}×",
            if ratio >= 0.8 { "met" } else { "not met" }
        );
        ratios.insert(format!("connections_{connections}"), json!(ratio));
        peer.insert(format!("connections_{connections}"), json!(nginx));
    }
    let rows: Vec<serde_json::Value> = runs
        .iter()
        .map(|(path, connections, run)| {
            json!({"path": path, "connections": connections,
                "requests_per_s": run.per_second, "requests": run.latencies.len(),
                "p50_ms": ms(percentile(&run.latencies, 0.5)),
                "p99_ms": ms(percentile(&run.latencies, 0.99)),
                "cpu_s": {"agent": run.cpu.agent, "agent_ingress_threads": run.cpu.agent_proxy,
                    "nginx": run.cpu.nginx, "backend": run.cpu.backend,
                    "client": run.cpu.client}})
        })
        .collect();
    write_json(
        "ingress",
        &json!({"benchmark": "ingress", "warmup_s": WARMUP.as_secs(),
            "measure_s": measure.as_secs(), "body_bytes": BODY.len(), "rows": rows,
            "proxy_threads": workers, "ingress_over_direct": ratios,
            "nginx_over_direct": peer, "goal": 0.8}),
    );
}

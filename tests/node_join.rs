//! `rk8s-node join` against a real `rk8s-server`: the CA pin, single-use bootstrap
//! tokens, podCIDRs never given twice, the Node and its Lease, and the node credential
//! limited to the node's own objects. Then two nodes, each in its own network
//! namespace, running real containers for the pods bound to them: logs and exec
//! through the API server, actors killed, agents SIGKILLed and SIGTERMed (their pods
//! kept and re-adopted), the control plane away. An image behind a registry login:
//! refused, pulled again after kubelet's back-off (ImagePullBackOff, BackOff event),
//! pulled with the pod's pull secret once it exists.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use support::apiserver::Server;
use support::images::busybox;
use support::netns::NodeNetwork;
use support::node::{NodeProcess, bootstrap_token, eventually, finished, join_command, node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_join_with_bootstrap_tokens_and_get_distinct_pod_cidrs() {
    let server = Server::start(&[]);
    let admin = server.client().await;
    let nodes: Api<Node> = Api::all(admin.clone());

    // A wrong CA hash: the node refuses the server before sending its token.
    let (token, hash) = support::node::bootstrap_token_with(&server, &["--usage-limit", "1"]);
    let mut first = node(1);
    let wrong = format!("sha256:{}", "0".repeat(64));
    let out = finished(join_command(&server, &first, "n1", &token, &wrong));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("refusing to trust it"),
        "{err}"
    );

    // The right one: registered with its podCIDR, labels, taints, status and lease.
    first.child = Some(
        join_command(&server, &first, "n1", &token, &hash)
            .spawn()
            .unwrap(),
    );
    let n1 = eventually("node n1 registered and Ready", async || {
        let node = nodes.get_opt("n1").await.ok()??;
        let ready = node
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then_some(node)
    })
    .await;
    let spec = n1.spec.clone().unwrap();
    assert_eq!(spec.pod_cidr.as_deref(), Some("10.244.0.0/24"));
    assert_eq!(spec.taints.unwrap()[0].key, "dedicated");
    let labels = n1.metadata.labels.clone().unwrap();
    assert_eq!(labels["zone"], "a");
    assert_eq!(labels["kubernetes.io/hostname"], "n1");
    let status = n1.status.clone().unwrap();
    assert!(status.capacity.unwrap().contains_key("memory"));
    assert_eq!(status.allocatable.unwrap()["pods"].0, "110");
    let leases: Api<Lease> = Api::namespaced(admin.clone(), "kube-node-lease");
    // The Lease follows the Node by a moment (the node agent writes it second).
    let lease = eventually("node n1's lease", async || {
        leases.get_opt("n1").await.ok()?
    })
    .await;
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("n1"));

    // The token worked once, as its usage limit said.
    let second = node(2);
    let out = finished(join_command(&server, &second, "n2", &token, &hash));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("already used (by node n1)"),
        "{err}"
    );

    // A new token (any number of joins until it expires): the next range.
    let (token2, hash2) = bootstrap_token(&server);
    let mut second = second;
    second.child = Some(
        join_command(&server, &second, "n2", &token2, &hash2)
            .spawn()
            .unwrap(),
    );
    let n2 = eventually("node n2 registered", async || {
        nodes.get_opt("n2").await.ok()?
    })
    .await;
    assert_eq!(n2.spec.unwrap().pod_cidr.as_deref(), Some("10.244.1.0/24"));

    // The saved credential is a node's: its own objects only.
    let saved = rk8s_actors::node::identity::Identity::load(&first.dir.path().join("data"))
        .unwrap()
        .unwrap();
    assert_eq!(saved.pod_cidr, "10.244.0.0/24");
    let as_n1 = saved.client().unwrap();
    let n1_nodes: Api<Node> = Api::all(as_n1.clone());
    let patch = serde_json::json!({"metadata": {"labels": {"touched": "yes"}}});
    assert_forbidden(
        n1_nodes
            .patch(
                "n2",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await,
    );
    n1_nodes
        .patch(
            "n1",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();

    // A restart with `run` reuses the identity (same podCIDR, no token needed).
    if let Some(mut child) = first.child.take() {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let before = renew_time(&leases, "n1").await.unwrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_rk8s-node"));
    run.arg("run")
        .args(first.args("ignored"))
        .env("RK8S_PAUSE_IMAGE", "/nonexistent")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    first.child = Some(run.spawn().unwrap());
    eventually("the restarted node renews its lease", async || {
        (renew_time(&leases, "n1").await? > before).then_some(())
    })
    .await;
    assert_eq!(
        nodes
            .get("n1")
            .await
            .unwrap()
            .spec
            .unwrap()
            .pod_cidr
            .as_deref(),
        Some("10.244.0.0/24")
    );

    // The same join again on the joined host (as a unit would run it at every boot):
    // it runs from the saved identity, asking nothing of the used-up token.
    if let Some(mut child) = first.child.take() {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let before = renew_time(&leases, "n1").await.unwrap();
    let mut again = join_command(&server, &first, "n1", &token, &hash);
    again.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = again.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    first.child = Some(child);
    let said = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .next()
            .and_then(Result::ok)
    });
    eventually("the node joined again renews its lease", async || {
        (renew_time(&leases, "n1").await? > before).then_some(())
    })
    .await;
    let said = said.join().unwrap().unwrap_or_default();
    assert!(
        said.contains("as node n1 already; running from the saved identity"),
        "{said}"
    );
    // Another cluster (or name) is refused, naming the identity file to remove.
    let other = finished(join_command(&server, &first, "n9", &token2, &hash2));
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(
        !other.status.success() && err.contains("identity.json"),
        "{err}"
    );
}

fn pod(name: &str, node: &str, busybox: &str, script: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"ticker": "yes"}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 2,
            "tolerations": [{"key": "dedicated", "operator": "Exists"}],
            "containers": [{"name": "main", "image": busybox, "command": ["sh", "-c", script]}]
        }
    }))
    .unwrap()
}

async fn running(pods: &Api<Pod>, name: &str) -> k8s_openapi::api::core::v1::PodStatus {
    eventually(&format!("pod {name} Running in its status"), async || {
        let status = pods.get(name).await.ok()?.status?;
        (status.phase.as_deref() == Some("Running")).then_some(status)
    })
    .await
}

/// (container id, restart count) from a pod's status.
fn container(status: &k8s_openapi::api::core::v1::PodStatus) -> (String, i32) {
    let c = &status.container_statuses.as_ref().unwrap()[0];
    (c.container_id.clone().unwrap(), c.restart_count)
}

/// When the node `name` last renewed its Lease, if it has.
async fn renew_time(leases: &Api<Lease>, name: &str) -> Option<jiff::Timestamp> {
    Some(leases.get(name).await.ok()?.spec?.renew_time?.0)
}

/// The API refused `result` with 403 Forbidden.
fn assert_forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>) {
    assert!(
        matches!(result, Err(kube::Error::Api(ref s)) if s.code == 403),
        "{result:?}"
    );
}

fn runtime_state(agent: &NodeProcess, id: &str) -> rk8s_runtime::ContainerState {
    rk8s_runtime::ContainerRuntime::state(&agent.helper(), id.trim_start_matches("rk8s://"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_in_their_own_namespaces_run_serve_and_survive_kills_and_outages() {
    let busybox = busybox();
    // Declared first, dropped last: nodes are reset inside their namespaces first.
    let mut net = NodeNetwork::new();
    let host = net.host_ip();
    let mut server = Server::start(&["--address", &host]);
    let admin = server.client().await;
    let nodes: Api<Node> = Api::all(admin.clone());
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");

    let mut agents = Vec::new();
    for i in 1..=2u32 {
        let mut agent = node(10 + i);
        agent.netns = Some(net.add_node(i));
        agents.push(agent);
    }
    // A made-up bootstrap token is refused.
    let (_, hash) = bootstrap_token(&server);
    let out = finished(join_command(
        &server,
        &agents[0],
        "a",
        "abcdef.0123456789abcdef",
        &hash,
    ));
    assert!(!out.status.success(), "a made-up token joined");
    for (i, agent) in agents.iter_mut().enumerate() {
        let (token, hash) = bootstrap_token(&server);
        let name = ["a", "b"][i];
        let mut join = join_command(&server, agent, name, &token, &hash);
        join.arg("--chaos");
        agent.log_to_file(&mut join);
        agent.child = Some(join.spawn().unwrap());
    }
    for (i, name) in ["a", "b"].into_iter().enumerate() {
        let node = eventually(&format!("node {name} registered"), async || {
            let n = nodes.get_opt(name).await.ok()??;
            n.status.as_ref()?.addresses.as_ref()?;
            Some(n)
        })
        .await;
        let status = node.status.unwrap();
        let ip = &status.addresses.unwrap()[0];
        assert_eq!(
            (ip.type_.as_str(), ip.address.as_str()),
            ("InternalIP", net.node_ip(i as u32 + 1).as_str())
        );
        let port = status
            .daemon_endpoints
            .unwrap()
            .kubelet_endpoint
            .unwrap()
            .port;
        assert_eq!(port, 10250);
    }

    // A pod on each node, with real containers in each node's pod range.
    let ticker = "echo started; i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done";
    let post = kube::api::PostParams::default();
    let a_uid = pods
        .create(&post, &pod("on-a", "a", &busybox, ticker))
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    pods.create(&post, &pod("on-b", "b", &busybox, ticker))
        .await
        .unwrap();
    let on_a = running(&pods, "on-a").await;
    let on_b = running(&pods, "on-b").await;
    assert!(
        on_a.pod_ip.as_deref().unwrap().starts_with("10.244.0."),
        "{on_a:?}"
    );
    assert!(
        on_b.pod_ip.as_deref().unwrap().starts_with("10.244.1."),
        "{on_b:?}"
    );
    assert_eq!(on_a.host_ip.as_deref(), Some(net.node_ip(1).as_str()));
    assert_eq!(on_b.host_ip.as_deref(), Some(net.node_ip(2).as_str()));
    let (a_id, _) = container(&on_a);
    let (b_id, _) = container(&on_b);
    assert_eq!(
        runtime_state(&agents[0], &a_id).status,
        rk8s_runtime::Status::Running
    );
    assert_eq!(
        runtime_state(&agents[1], &b_id).status,
        rk8s_runtime::Status::Running
    );

    // Node a's credential cannot write node b's pod, nor read its logs.
    let a_identity =
        rk8s_actors::node::identity::Identity::load(&agents[0].dir.path().join("data"))
            .unwrap()
            .unwrap();
    let as_a: Api<Pod> = Api::namespaced(a_identity.client().unwrap(), "default");
    let patch = serde_json::json!({"status": {"message": "hijacked"}});
    assert_forbidden(
        as_a.patch_status(
            "on-b",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await,
    );
    assert_forbidden(as_a.logs("on-a", &Default::default()).await);

    // Logs, through the API server from each node.
    let out = server.rk8sctl(&["logs", "on-a"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.starts_with("started\ntick 0\n"),
        "{out:?}"
    );
    let out = server.rk8sctl(&["logs", "on-b", "--tail", "1", "--timestamps"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("Z tick "), "{text}");
    // -f keeps streaming new lines.
    let mut follow = server
        .rk8sctl_command()
        .args(["logs", "-f", "on-b"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        let reader = std::io::BufReader::new(stdout);
        let mut seen = Vec::new();
        for line in reader.lines() {
            seen.push(line.unwrap());
            if seen.len() >= 6 {
                break;
            }
        }
        seen
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lines.is_finished() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = follow.kill();
    let _ = follow.wait();
    let seen = lines.join().unwrap();
    assert_eq!(seen.len(), 6, "{seen:?}");
    // kubectl reads the same endpoint.
    let args = ["logs", "on-a", "--tail", "2"];
    let out = server.kubectl_command().args(args).output().unwrap();
    assert_eq!(support::cli::success(args, out).lines().count(), 2);
    // Every pod a selector matches, each line marked with where it came from.
    let out = server.rk8sctl_ok(&["logs", "-l", "ticker=yes", "--prefix", "--tail", "1"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("[pod/on-a/main] tick "), "{out}");
    assert!(lines[1].starts_with("[pod/on-b/main] tick "), "{out}");
    // A Service's (or workload's) logs: one of its pods, the choice announced.
    let service = r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "tickers"},
        "spec": {"selector": {"ticker": "yes"}, "ports": [{"port": 80}]}}"#;
    let out = support::cli::output(
        server.rk8sctl_command().args(["apply", "-f", "-"]),
        Some(service),
    );
    assert!(out.status.success(), "{out:?}");
    let out = server.rk8sctl(&["logs", "svc/tickers", "--tail", "1", "--all-containers"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("tick "),
        "{out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("Found 2 pods, using pod/on-"),
        "{out:?}"
    );
    // --since: the last seconds only (not the first line); a time to come: nothing.
    let recent = server.rk8sctl_ok(&["logs", "on-a", "--since", "3s"]);
    let all = server.rk8sctl_ok(&["logs", "on-a"]);
    assert!(
        !recent.contains("started") && recent.lines().count() < all.lines().count(),
        "{recent}"
    );
    let later = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)).to_string();
    assert_eq!(
        server.rk8sctl_ok(&["logs", "on-a", "--since-time", &later]),
        ""
    );
    let args = ["logs", "on-a", "--since=3s"];
    let out = server.kubectl_command().args(args).output().unwrap();
    assert!(!support::cli::success(args, out).contains("started"));

    // Exec: output streams, exit code, standard input, a terminal; kubectl too.
    let out = server.rk8sctl(&[
        "exec",
        "on-a",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    let out = support::cli::output(
        server.rk8sctl_command().args([
            "exec",
            "-i",
            "on-b",
            "--",
            "sh",
            "-c",
            "tr a-z A-Z; hostname",
        ]),
        Some("hello from the test\n"),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "HELLO FROM THE TEST\non-b\n"
    );
    let out = server.rk8sctl(&["exec", "-t", "on-a", "--", "sh", "-c", "test -t 0 && tty"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("/dev/pts/"),
        "{out:?}"
    );
    let out = server
        .kubectl_command()
        .args(["exec", "on-b", "--", "sh", "-c", "echo via kubectl; exit 4"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "via kubectl\n");

    // Killing a PodActor, then the NodeActor, through the actor system: nothing
    // visible changes (same container, same process, no restart, still Running).
    let a_pid = runtime_state(&agents[0], &a_id).pid;
    agents[0].chaos(&["pod", "default/on-a"]);
    agents[0].chaos(&["node"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Both restarted once, as the agent's own list says.
    let listed = agents[0].chaos(&["list"]);
    let restarts = |kind: &str, name: &str| {
        listed.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&kind) && f.get(1) == Some(&name)).then(|| f[2].to_string())
        })
    };
    assert_eq!(restarts("Node", "a").as_deref(), Some("1"), "{listed}");
    assert_eq!(
        restarts("Pod", "default/on-a").as_deref(),
        Some("1"),
        "{listed}"
    );
    let after = pods.get("on-a").await.unwrap().status.unwrap();
    assert_eq!(after.phase.as_deref(), Some("Running"));
    assert_eq!(container(&after), (a_id.clone(), 0));
    assert_eq!(runtime_state(&agents[0], &a_id).pid, a_pid);
    // The restarted actors still serve: exec reaches the pod.
    let out = server.rk8sctl(&["exec", "on-a", "--", "echo", "still here"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "still here\n",
        "{out:?}"
    );

    // SIGKILL node b's agent: its container keeps running; restarted, it re-adopts it.
    let b_pid = runtime_state(&agents[1], &b_id).pid;
    agents[1].kill();
    assert_eq!(
        runtime_state(&agents[1], &b_id).status,
        rk8s_runtime::Status::Running
    );
    agents[1].run_again(&["--chaos"]);
    let leases: Api<Lease> = Api::namespaced(admin.clone(), "kube-node-lease");
    let renewed = renew_time(&leases, "b").await.unwrap();
    eventually("node b renews its lease after its restart", async || {
        (renew_time(&leases, "b").await? > renewed).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = pods.get("on-b").await.unwrap().status.unwrap();
    assert_eq!(container(&after), (b_id.clone(), 0));
    assert_eq!(runtime_state(&agents[1], &b_id).pid, b_pid);

    // SIGTERM node a's agent, as systemd stops or restarts rk8s-node.service
    // (KillMode=process: the agent alone is signalled). Like kubelet it exits cleanly
    // and leaves its pods running; started again, it re-adopts them and reports them
    // Ready (the test marks the pod not Ready meanwhile: only the new agent sets it
    // back).
    let status = agents[0].terminate();
    assert!(status.success(), "the agent's exit after SIGTERM: {status}");
    let log = std::fs::read_to_string(agents[0].dir.path().join("node.log")).unwrap();
    assert!(log.contains("stopping; pods keep running"), "{log}");
    let state = runtime_state(&agents[0], &a_id);
    assert_eq!(
        (state.status, state.pid),
        (rk8s_runtime::Status::Running, a_pid)
    );
    let not_ready = serde_json::json!({"status": {"conditions": [
        {"type": "Ready", "status": "False", "reason": "SetByTheTest"}]}});
    pods.patch_status(
        "on-a",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&not_ready),
    )
    .await
    .unwrap();
    let renewed = renew_time(&leases, "a").await.unwrap();
    agents[0].run_again(&["--chaos"]);
    eventually("node a renews its lease after its restart", async || {
        (renew_time(&leases, "a").await? > renewed).then_some(())
    })
    .await;
    let after = eventually("pod on-a Ready again after the restart", async || {
        let status = pods.get("on-a").await.ok()?.status?;
        let ready = status.conditions.as_ref()?.iter().any(|c| {
            c.type_ == "Ready" && c.status == "True" && c.reason.as_deref() != Some("SetByTheTest")
        });
        ready.then_some(status)
    })
    .await;
    assert_eq!(container(&after), (a_id.clone(), 0));
    assert_eq!(runtime_state(&agents[0], &a_id).pid, a_pid);
    let out = server.rk8sctl(&["exec", "on-a", "--", "echo", "re-adopted"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "re-adopted\n",
        "{out:?}"
    );

    // The control plane goes away for a while: pods keep running, agents keep going;
    // when it is back, the agents resynchronise (leases, a pod created meanwhile…).
    server.kill();
    tokio::time::sleep(Duration::from_secs(15)).await;
    for (agent, id) in agents.iter_mut().zip([&a_id, &b_id]) {
        assert_eq!(
            runtime_state(agent, id).status,
            rk8s_runtime::Status::Running
        );
        assert!(
            agent.child.as_mut().unwrap().try_wait().unwrap().is_none(),
            "the agent exited while the control plane was away"
        );
    }
    let before = leases.get("a").await.ok();
    assert!(before.is_none(), "the server answered while killed");
    server.start_again();
    let admin = server.client().await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let leases: Api<Lease> = Api::namespaced(admin.clone(), "kube-node-lease");
    let outage_end = jiff::Timestamp::now();
    for name in ["a", "b"] {
        eventually(
            &format!("node {name} renews its lease after the outage"),
            async || (renew_time(&leases, name).await? > outage_end).then_some(()),
        )
        .await;
    }
    // Both agents' watches are back: a pod created now starts on each.
    for node in ["a", "b"] {
        let name = format!("late-{node}");
        pods.create(&post, &pod(&name, node, &busybox, "exec sleep 3600"))
            .await
            .unwrap();
        running(&pods, &name).await;
    }
    assert_eq!(
        container(&pods.get("on-a").await.unwrap().status.unwrap()),
        (a_id.clone(), 0)
    );

    // Deleting a pod stops it within its grace period; the API object goes.
    let started = Instant::now();
    pods.delete("on-a", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    eventually("pod on-a gone from the API", async || {
        matches!(pods.get_opt("on-a").await, Ok(None)).then_some(())
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        rk8s_runtime::ContainerRuntime::state(
            &agents[0].helper(),
            a_id.trim_start_matches("rk8s://")
        )
        .is_err(),
        "container removed"
    );
    assert!(
        !std::path::Path::new("/run/netns")
            .join(format!("rk8s-{a_uid}"))
            .exists(),
        "pod network namespace removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_behind_a_login_are_pulled_with_the_pods_pull_secret() {
    let registry = support::registry::Registry::with_login("puller", "s3cret");
    let image = registry.push(
        &support::node::images().join("busybox"),
        "private/busybox:v1",
    );
    let host = format!("127.0.0.1:{}", registry.port);
    // The registry speaks plain HTTP: registries.yaml says so (k3s' way).
    let dir = tempfile::tempdir().unwrap();
    let registries = registry.plain_http_config(dir.path());
    let server = Server::start(&["--disable-scheduler"]);
    let admin = server.client().await;
    let _agent = support::node::real_node_with(
        &server,
        "private",
        14,
        &["--registries", registries.to_str().unwrap()],
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let pp = kube::api::PostParams::default();
    let with_secret = |name: &str, secret: &str| -> Pod {
        let mut p = pod(
            name,
            "private",
            &image,
            "echo pulled with a secret; sleep 3600",
        );
        let spec = p.spec.as_mut().unwrap();
        spec.image_pull_secrets = Some(vec![k8s_openapi::api::core::v1::LocalObjectReference {
            name: secret.to_string(),
        }]);
        p
    };
    // No secret yet: the registry refuses the pull, and the pod says why.
    pods.create(&pp, &with_secret("private", "regcred"))
        .await
        .unwrap();
    let waiting = eventually("the pull refused", async || {
        let status = pods.get("private").await.ok()?.status?;
        let state = status.container_statuses?.first()?.state.clone()?;
        let waiting = state.waiting?;
        (waiting.reason.as_deref() == Some("ErrImagePull")).then_some(waiting)
    })
    .await;
    let message = waiting.message.unwrap_or_default();
    assert!(message.contains("Not authorized"), "{message}");
    // kubelet's events say so too (kubectl describe pod shows them).
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(admin.clone(), "default");
    let said = |reason: &'static str| {
        let events = events.clone();
        async move {
            let listed = events
                .list(&kube::api::ListParams::default().fields("involvedObject.name=private"))
                .await
                .ok()?;
            let found: Vec<String> = listed
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some(reason))
                .map(|e| e.message.unwrap_or_default())
                .collect();
            (!found.is_empty()).then_some(found)
        }
    };
    let failed = eventually("a Failed event", async || said("Failed").await).await;
    assert!(
        failed.iter().any(
            |m| m.starts_with(&format!("Failed to pull image \"{image}\": "))
                && m.contains("Not authorized")
        ),
        "{failed:?}"
    );
    // Between two pulls the container waits out kubelet's back-off (10 s after the
    // first failure), saying why the last pull failed; BackOff is a Normal event.
    let backing_off = eventually("the pull backing off", async || {
        let status = pods.get("private").await.ok()?.status?;
        let state = status.container_statuses?.first()?.state.clone()?;
        let waiting = state.waiting?;
        (waiting.reason.as_deref() == Some("ImagePullBackOff")).then_some(waiting)
    })
    .await;
    let message = backing_off.message.unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "Back-off pulling image \"{image}\": ErrImagePull: "
        )) && message.contains("Not authorized"),
        "{message}"
    );
    let back_off = eventually("a BackOff event", async || said("BackOff").await).await;
    assert_eq!(back_off, [format!("Back-off pulling image \"{image}\"")]);
    // Within the back-off (10 s from the failure) no pull is tried again: one
    // Pulling event so far, its series not counted up (a pull on every 1 s sync
    // would have made it 4 or more by now).
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let pulling: i32 = events
        .list(&kube::api::ListParams::default().fields("involvedObject.name=private"))
        .await
        .unwrap()
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Pulling"))
        .map(|e| e.count.unwrap_or(1))
        .sum();
    assert_eq!(pulling, 1, "pulls tried during the back-off");
    let listed = events
        .list(&kube::api::ListParams::default().fields("involvedObject.name=private"))
        .await
        .unwrap();
    let types: Vec<_> = listed
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("BackOff"))
        .map(|e| {
            (
                e.type_.clone(),
                e.source.clone().unwrap_or_default().component,
            )
        })
        .collect();
    assert_eq!(types, [(Some("Normal".into()), Some("kubelet".into()))]);
    let failed = eventually("the back-off's Failed event", async || {
        let failed = said("Failed").await?;
        failed
            .contains(&"Error: ImagePullBackOff".to_string())
            .then_some(failed)
    })
    .await;
    assert!(
        failed.contains(&"Error: ErrImagePull".to_string()),
        "{failed:?}"
    );
    // The Secret arrives (as `kubectl create secret docker-registry` writes it): the
    // node reads it again and the pull after the back-off succeeds.
    let config = serde_json::json!({"auths": {host.clone(): {
        "username": "puller", "password": "s3cret"}}});
    let secret = k8s_openapi::api::core::v1::Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("regcred".into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        data: Some(
            [(
                ".dockerconfigjson".to_string(),
                k8s_openapi::ByteString(config.to_string().into_bytes()),
            )]
            .into(),
        ),
        ..Default::default()
    };
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(admin, "default");
    secrets.create(&pp, &secret).await.unwrap();
    running(&pods, "private").await;
    let started = eventually("a Started event", async || said("Started").await).await;
    assert_eq!(started, ["Started container main"]);
    // Its pulls, as kubelet words them.
    let pulling = eventually("a Pulling event", async || said("Pulling").await).await;
    assert_eq!(pulling, [format!("Pulling image \"{image}\"")]);
    let pulled = eventually("a Pulled event", async || said("Pulled").await).await;
    assert!(
        pulled.iter().any(
            |m| m.starts_with(&format!("Successfully pulled image \"{image}\" in "))
                && m.contains("s including waiting). Image size: ")
                && m.ends_with(" bytes.")
        ),
        "{pulled:?}"
    );
    // A pod naming no secret gets no credentials of another pod's (its pull policy
    // Always: the image is on the node now).
    let mut anonymous = pod("anonymous", "private", &image, "sleep 3600");
    anonymous.spec.as_mut().unwrap().containers[0].image_pull_policy = Some("Always".into());
    pods.create(&pp, &anonymous).await.unwrap();
    eventually("the anonymous pull refused", async || {
        let status = pods.get("anonymous").await.ok()?.status?;
        let state = status.container_statuses?.first()?.state.clone()?;
        let reason = state.waiting?.reason?;
        ["ErrImagePull", "ImagePullBackOff"]
            .contains(&reason.as_str())
            .then_some(())
    })
    .await;
    for name in ["private", "anonymous"] {
        pods.delete(name, &Default::default()).await.unwrap();
    }
    eventually("the pods gone", async || {
        let left = pods.list(&Default::default()).await.ok()?;
        left.items.is_empty().then_some(())
    })
    .await;
}

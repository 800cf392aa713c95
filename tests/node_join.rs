//! `rk8s-node join` against a real `rk8s-server`: the CA pin, single-use bootstrap
//! tokens, podCIDRs never given twice, the Node and its Lease, and the node credential
//! limited to the node's own objects.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use support::apiserver::Server;
use support::node::{bootstrap_token, eventually, finished, images, join_command, node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_join_with_single_use_tokens_and_get_distinct_pod_cidrs() {
    let server = Server::start(&[]);
    let admin = server.client().await;
    let nodes: Api<Node> = Api::all(admin.clone());

    // A wrong CA hash: the node refuses the server before sending its token.
    let (token, hash) = bootstrap_token(&server);
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
    let lease = leases.get("n1").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("n1"));

    // The token worked once.
    let second = node(2);
    let out = finished(join_command(&server, &second, "n2", &token, &hash));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("already used (by node n1)"),
        "{err}"
    );

    // A new token: the next range.
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
    let forbidden = n1_nodes
        .patch(
            "n2",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(forbidden, kube::Error::Api(ref s) if s.code == 403),
        "{forbidden:?}"
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
    let before = leases
        .get("n1")
        .await
        .unwrap()
        .spec
        .unwrap()
        .renew_time
        .unwrap()
        .0;
    let mut run = Command::new(env!("CARGO_BIN_EXE_rk8s-node"));
    run.arg("run")
        .args(first.args("ignored"))
        .env("RK8S_PAUSE_IMAGE", "/nonexistent")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    first.child = Some(run.spawn().unwrap());
    eventually("the restarted node renews its lease", async || {
        let renewed = leases.get("n1").await.ok()?.spec?.renew_time?.0;
        (renewed > before).then_some(())
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_node_runs_the_pods_bound_to_it_and_keeps_them_across_its_restart() {
    let images = images();
    let server = Server::start(&[]);
    let admin = server.client().await;
    let (token, hash) = bootstrap_token(&server);
    let mut agent = node(3);
    let pause = images.join("pause").display().to_string();
    let mut join = join_command(&server, &agent, "worker", &token, &hash);
    join.env("RK8S_PAUSE_IMAGE", &pause)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    agent.child = Some(join.spawn().unwrap());
    let nodes: Api<Node> = Api::all(admin.clone());
    eventually("the node registered", async || {
        nodes.get_opt("worker").await.ok()?
    })
    .await;

    // A pod bound to the node (no scheduler yet: spec.nodeName set by hand).
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(admin.clone(), "default");
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "bound"},
        "spec": {
            "nodeName": "worker",
            "terminationGracePeriodSeconds": 2,
            "tolerations": [{"key": "dedicated", "operator": "Exists"}],
            "containers": [{"name": "main", "image": images.join("busybox").display().to_string(),
                            "command": ["sh", "-c", "echo started; exec sleep 3600"]}]
        }
    }))
    .unwrap();
    let created = pods
        .create(&kube::api::PostParams::default(), &pod)
        .await
        .unwrap();
    let uid = created.metadata.uid.unwrap();
    let running = eventually("the pod Running in its status", async || {
        let p = pods.get("bound").await.ok()?;
        let status = p.status?;
        (status.phase.as_deref() == Some("Running")).then_some(status)
    })
    .await;
    let ip = running.pod_ip.clone().unwrap();
    assert!(ip.starts_with("10.244."), "{ip}");
    let container = running.container_statuses.clone().unwrap()[0].clone();
    assert!(container.ready && container.restart_count == 0);
    let id = container.container_id.clone().unwrap();

    // SIGKILL the node: the container keeps running; restarted, the node re-adopts it.
    let mut child = agent.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let helper = rk8s_runtime::helper::HelperClient::new(
        agent.dir.path().join("run/helper"),
        env!("CARGO_BIN_EXE_rk8sctl"),
    );
    let runtime_id = id.trim_start_matches("rk8s://");
    let state = rk8s_runtime::ContainerRuntime::state(&helper, runtime_id).unwrap();
    assert_eq!(state.status, rk8s_runtime::Status::Running);
    let mut run = Command::new(env!("CARGO_BIN_EXE_rk8s-node"));
    run.arg("run")
        .args(agent.args("worker"))
        .env("RK8S_PAUSE_IMAGE", &pause)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    agent.child = Some(run.spawn().unwrap());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = pods.get("bound").await.unwrap().status.unwrap();
    let again = after.container_statuses.unwrap()[0].clone();
    assert_eq!(
        (again.container_id.as_deref(), again.restart_count),
        (Some(id.as_str()), 0)
    );
    assert_eq!(
        rk8s_runtime::ContainerRuntime::state(&helper, runtime_id)
            .unwrap()
            .pid,
        state.pid
    );

    // Deleting the pod: the node stops it within its grace period and confirms.
    let started = Instant::now();
    pods.delete("bound", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    eventually("the pod gone from the API", async || {
        match pods.get_opt("bound").await {
            Ok(None) => Some(()),
            _ => None,
        }
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        rk8s_runtime::ContainerRuntime::state(&helper, runtime_id).is_err(),
        "container removed"
    );
    assert!(
        !std::path::Path::new("/run/netns")
            .join(format!("rk8s-{uid}"))
            .exists(),
        "netns removed"
    );
}

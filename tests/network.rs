//! The cluster network end to end: one `rk8s-server` and two real nodes, each in its
//! own network namespace on a host bridge, running real containers. Pods reach each
//! other across nodes by pod IP (VXLAN), Services by ClusterIP and by every DNS form
//! (the nodes' DNS servers), evenly; endpoints and nftables rules follow scaling; a
//! NodePort answers on each node's address; a node that leaves takes its routes
//! with it; a deleted Service's rules and address go. Traffic stays inside these
//! namespaces and the test's bridge.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::apiserver::Server;
use support::images::busybox;
use support::netns::{NodeNetwork, in_netns};
use support::node::{eventually, two_nodes_in_namespaces};

/// `sh -c SCRIPT` in the client pod; what it printed. (Debian's busybox 1.35 `wget`
/// crashes with `-T`: scripts use `timeout` instead.)
fn in_client(server: &Server, script: &str) -> String {
    server.rk8sctl_ok(&["exec", "client", "--", "sh", "-c", script])
}

/// One HTTP GET from the host to `address`; the body.
fn get(address: &str) -> Option<String> {
    let mut stream =
        std::net::TcpStream::connect_timeout(&address.parse().ok()?, Duration::from_secs(2))
            .ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    Some(reply.split("\r\n\r\n").nth(1)?.trim().to_string())
}

async fn web_pods(pods: &Api<Pod>) -> Vec<Pod> {
    let lp = kube::api::ListParams::default().labels("app=web");
    pods.list(&lp).await.unwrap().items
}

/// The names 50 requests to `url` from the client pod were answered with.
fn answered_by(server: &Server, url: &str) -> BTreeSet<String> {
    let script =
        format!("for i in $(seq 50); do timeout 2 wget -q -O - {url} || echo failed; done");
    in_client(server, &script)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_reach_pods_services_and_names_across_nodes() {
    let busybox = busybox();
    // Declared first, dropped last: nodes are reset inside their namespaces first.
    let mut net = NodeNetwork::new();
    let host = net.host_ip();
    let server = Server::start(&["--address", &host]);
    let admin = server.client().await;
    let (mut agents, namespaces) = two_nodes_in_namespaces(&server, &mut net, 30).await;
    let nodes: Api<Node> = Api::all(admin.clone());
    let post = PostParams::default();
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), "default");
    let services: Api<Service> = Api::namespaced(admin.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(admin.clone(), "default");

    // Two web servers, one per node, each answering with its pod's name.
    let web: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}],
                    "containers": [{"name": "httpd", "image": busybox,
                        "command": ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]
                }
            }
        }
    }))
    .unwrap();
    deployments.create(&post, &web).await.unwrap();
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .unwrap();
    let svc = services.create(&post, &svc).await.unwrap();
    let cluster_ip = svc.spec.as_ref().unwrap().cluster_ip.clone().unwrap();
    let node_port = svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0]
        .node_port
        .unwrap();
    let client: Pod = serde_json::from_value(json!({
        "metadata": {"name": "client"},
        "spec": {"nodeName": "a", "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "c", "image": busybox, "command": ["sleep", "3600"]}]}
    }))
    .unwrap();
    pods.create(&post, &client).await.unwrap();
    let ready_endpoints = async |n: usize| {
        eventually(&format!("{n} ready endpoints of web"), async || {
            let e = endpoints.get_opt("web").await.ok()??;
            let count = e
                .subsets?
                .iter()
                .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
                .sum::<usize>();
            (count == n).then_some(())
        })
        .await
    };
    ready_endpoints(2).await;
    eventually("the client running", async || {
        let p = pods.get("client").await.ok()?;
        (p.status?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;

    // Pod to pod across nodes, by pod IP, without translation.
    let on_b = web_pods(&pods)
        .await
        .into_iter()
        .find(|p| p.spec.as_ref().unwrap().node_name.as_deref() == Some("b"))
        .expect("a web pod on node b");
    let b_ip = on_b.status.unwrap().pod_ip.unwrap();
    assert!(b_ip.starts_with("10.244."), "{b_ip}");
    let answer = in_client(
        &server,
        &format!("timeout 5 wget -q -O - http://{b_ip}:8080/"),
    );
    assert_eq!(answer.trim(), on_b.metadata.name.unwrap());

    // The Service by ClusterIP and by each DNS name; 50 requests reach both pods.
    let names: BTreeSet<String> = web_pods(&pods)
        .await
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    for url in [
        format!("http://{cluster_ip}/"),
        "http://web/".to_string(),
        "http://web.default/".to_string(),
        "http://web.default.svc.cluster.local/".to_string(),
    ] {
        let seen = answered_by(&server, &url);
        assert_eq!(seen, names, "{url}");
    }
    let resolv = in_client(&server, "cat /etc/resolv.conf");
    assert!(
        resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{resolv}"
    );

    // Scaling to 3: endpoints, then every node's rules, follow.
    let started = Instant::now();
    let scale = json!({"spec": {"replicas": 3}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(&scale))
        .await
        .unwrap();
    ready_endpoints(3).await;
    let endpoints_at = started.elapsed();
    for ns in &namespaces {
        eventually("3 endpoints in the node's rules", async || {
            let table = in_netns(ns, &["nft", "list", "table", "ip", "rk8s-services"]);
            table.contains("numgen random mod 3").then_some(())
        })
        .await;
    }
    eprintln!(
        "scale to 3: endpoints after {endpoints_at:?}, rules on both nodes after {:?}",
        started.elapsed()
    );
    let names: BTreeSet<String> = web_pods(&pods)
        .await
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    assert_eq!(names.len(), 3);
    eventually("50 requests reaching all three pods", async || {
        (answered_by(&server, "http://web/") == names).then_some(())
    })
    .await;

    // The NodePort on each node's address, from the host.
    for i in [1, 2] {
        let address = format!("{}:{node_port}", net.node_ip(i));
        let body = eventually(&format!("an answer at {address}"), async || get(&address)).await;
        assert!(names.contains(&body), "{address} answered {body:?}");
    }

    // Deleting the Service removes its rules and frees its address.
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    for ns in &namespaces {
        eventually("the Service's rules gone", async || {
            let table = in_netns(ns, &["nft", "list", "table", "ip", "rk8s-services"]);
            (!table.contains(&cluster_ip) && table.contains("service-ips")).then_some(())
        })
        .await;
    }
    let again: Service = serde_json::from_value(json!({
        "metadata": {"name": "again"},
        "spec": {"clusterIP": cluster_ip, "ports": [{"name": "http", "port": 80}]}
    }))
    .unwrap();
    services.create(&post, &again).await.unwrap();

    // Node b leaves: node a drops its route to b's pods.
    let b_cidr = nodes
        .get("b")
        .await
        .unwrap()
        .spec
        .unwrap()
        .pod_cidr
        .unwrap();
    assert!(in_netns(&namespaces[0], &["ip", "route"]).contains(&b_cidr));
    agents[1].kill();
    nodes.delete("b", &DeleteParams::default()).await.unwrap();
    eventually("node a without a route to b's pods", async || {
        (!in_netns(&namespaces[0], &["ip", "route"]).contains(&b_cidr)).then_some(())
    })
    .await;
}

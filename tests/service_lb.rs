//! `type: LoadBalancer` through the built-in service load balancer, traffic policies
//! and session affinity end to end: one `rk8s-server` and two real nodes, each in its
//! own network namespace on a host bridge, running real containers (busybox httpd
//! with a CGI that answers with the pod's name and the client's address). A load
//! balancer gets both nodes' addresses as its ingress (shown by `kubectl get svc`)
//! and answers on each from the host; with `externalTrafficPolicy: Local` only the
//! node with the endpoint is an ingress point, the pod sees the host's own address,
//! a node without a local endpoint drops its node port and the health check port
//! says which node serves; `sessionAffinity: ClientIP` keeps one client on one of
//! three pods; `internalTrafficPolicy: Local` keeps a pod's ClusterIP traffic on its
//! node. Traffic stays inside these namespaces and the test's bridge; everything is
//! removed afterwards, also when the test fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::apiserver::Server;
use support::images::busybox;
use support::netns::{NodeNetwork, in_netns};
use support::node::{eventually, two_nodes_in_namespaces};

/// A web server on 8080: `/` is the pod's name, `/cgi-bin/ip` the pod's name and the
/// client's address as the pod sees it.
const HTTPD: &str = "mkdir -p /www/cgi-bin && hostname > /www/index.html \
    && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho \"$(hostname) $REMOTE_ADDR\"\\n' > /www/cgi-bin/ip \
    && chmod +x /www/cgi-bin/ip && exec httpd -f -p 8080 -h /www";

/// A Deployment `name` of `replicas` web servers labelled `app: name`, spread over
/// the nodes (or all on `node`).
fn web(name: &str, replicas: i32, node: Option<&str>) -> Deployment {
    let busybox = busybox();
    let mut spec = json!({
        "terminationGracePeriodSeconds": 1,
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": name}}}],
        "containers": [{"name": "httpd", "image": busybox, "command": ["sh", "-c", HTTPD],
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]
    });
    if let Some(node) = node {
        spec["nodeSelector"] = json!({"kubernetes.io/hostname": node});
    }
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec}
        }
    }))
    .unwrap()
}

/// One HTTP GET of `path` from the host to `address`: the status line and the body.
fn get(address: &str, path: &str) -> Option<(String, String)> {
    let mut stream =
        std::net::TcpStream::connect_timeout(&address.parse().ok()?, Duration::from_secs(2))
            .ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    // A CGI's own header lines end in a bare `\n` (busybox httpd passes them on).
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .or_else(|| reply.split_once("\n\n"))?;
    Some((head.lines().next()?.to_string(), body.trim().to_string()))
}

/// The pod and the client's address in a `/cgi-bin/ip` answer (busybox httpd gives
/// IPv4 clients as `[::ffff:A.B.C.D]`).
fn pod_and_client(body: &str) -> (String, String) {
    let (pod, client) = body.split_once(' ').unwrap_or((body, ""));
    let client = client.trim_start_matches("[::ffff:").trim_end_matches(']');
    (pod.to_string(), client.to_string())
}

/// The body of a successful GET of `path` at `address`, once there is one (the last
/// reply, if any, in the failure).
async fn answer(address: &str, path: &str) -> String {
    let mut last = None;
    for _ in 0..100 {
        match get(address, path) {
            Some((status, body)) if status.contains(" 200 ") => return body,
            other => last = other,
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("no answer at {address}{path}; the last reply: {last:?}");
}

/// `sh -c SCRIPT` in the client pod; what it printed.
fn in_client(server: &Server, script: &str) -> String {
    server.rk8sctl_ok(&["exec", "client", "--", "sh", "-c", script])
}

/// Waits until the table of the node in `ns` shows `text`.
async fn in_rules(ns: &str, text: &str) {
    eventually(&format!("{text:?} in the rules of {ns}"), async || {
        let table = in_netns(ns, &["nft", "list", "table", "ip", "rk8s-services"]);
        table.contains(text).then_some(())
    })
    .await;
}

/// The names of `app`'s ready pods, on `node` only if given.
async fn ready_pods(pods: &Api<Pod>, app: &str, node: Option<&str>) -> BTreeSet<String> {
    let lp = ListParams::default().labels(&format!("app={app}"));
    pods.list(&lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| node.is_none() || p.spec.as_ref().unwrap().node_name.as_deref() == node)
        .filter(|p| {
            let conditions = p.status.as_ref().and_then(|s| s.conditions.as_ref());
            conditions
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
        .map(|p| p.metadata.name.unwrap())
        .collect()
}

async fn ready(pods: &Api<Pod>, app: &str, n: usize) -> BTreeSet<String> {
    eventually(&format!("{n} ready pods of {app}"), async || {
        let names = ready_pods(pods, app, None).await;
        (names.len() == n).then_some(names)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancers_traffic_policies_and_affinity() {
    // Declared first, dropped last: nodes are reset inside their namespaces first.
    let mut net = NodeNetwork::new();
    let host = net.host_ip();
    let server = Server::start(&["--address", &host]);
    let admin = server.client().await;
    let (_agents, namespaces) = two_nodes_in_namespaces(&server, &mut net, 40).await;
    let (ip_a, ip_b) = (net.node_ip(1), net.node_ip(2));
    let post = PostParams::default();
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), "default");
    let services: Api<Service> = Api::namespaced(admin.clone(), "default");

    deployments
        .create(&post, &web("web", 2, None))
        .await
        .unwrap();
    deployments
        .create(&post, &web("solo", 1, Some("a")))
        .await
        .unwrap();
    let lb: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .unwrap();
    services.create(&post, &lb).await.unwrap();
    let names = ready(&pods, "web", 2).await;

    // The ingress: both nodes' addresses, sorted, as VIPs; shown as EXTERNAL-IP.
    let ingress = eventually("the load balancer's ingress", async || {
        let svc = services.get("web").await.ok()?;
        let ingress = svc.status?.load_balancer?.ingress?;
        (ingress.len() == 2).then_some(ingress)
    })
    .await;
    let ips: Vec<_> = ingress.iter().map(|i| i.ip.clone().unwrap()).collect();
    assert_eq!(ips, [ip_a.clone(), ip_b.clone()]);
    assert!(
        ingress.iter().all(|i| i.ip_mode.as_deref() == Some("VIP")),
        "{ingress:?}"
    );
    let out = server
        .kubectl_command()
        .args(["get", "svc", "web"])
        .output();
    let table = String::from_utf8_lossy(&out.unwrap().stdout).into_owned();
    assert!(table.contains(&format!("{ip_a},{ip_b}")), "{table}");

    // Each node's address answers at the Service's port, from the host; under the
    // Cluster policy the pod sees the node's address, not the host's.
    for ip in [&ip_a, &ip_b] {
        in_rules(
            &namespaces[0],
            &format!("{ip} . tcp . 80 : goto ext/default/web/tcp/80"),
        )
        .await;
        let address = format!("{ip}:80");
        let body = answer(&address, "/cgi-bin/ip").await;
        let (pod, client) = pod_and_client(&body);
        assert!(names.contains(&pod), "{address} answered {body:?}");
        assert_ne!(client, host, "masqueraded under the Cluster policy");
    }

    // externalTrafficPolicy: Local, its one pod on node a: the pod sees the host's
    // address; node b drops the traffic; the health check port says who serves.
    let solo: Service = serde_json::from_value(json!({
        "metadata": {"name": "solo"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "solo"},
                 "externalTrafficPolicy": "Local",
                 "ports": [{"name": "http", "port": 81, "targetPort": "http"}]}
    }))
    .unwrap();
    let solo = services.create(&post, &solo).await.unwrap();
    let solo_spec = solo.spec.unwrap();
    let health_port = solo_spec.health_check_node_port.unwrap();
    let node_port = solo_spec.ports.unwrap()[0].node_port.unwrap();
    let solo_pod = ready(&pods, "solo", 1).await;
    // Only node a, where its endpoint is, is an ingress point (k3s' readyNodes).
    eventually(
        "the local load balancer's ingress: node a only",
        async || {
            let svc = services.get("solo").await.ok()?;
            let ingress = svc.status?.load_balancer?.ingress?;
            let ips: Vec<_> = ingress.into_iter().filter_map(|i| i.ip).collect();
            (ips == [ip_a.clone()]).then_some(())
        },
    )
    .await;
    in_rules(&namespaces[0], "goto local/default/solo/tcp/81").await;
    let body = answer(&format!("{ip_a}:81"), "/cgi-bin/ip").await;
    assert_eq!(
        pod_and_client(&body),
        (solo_pod.first().unwrap().clone(), host.clone()),
        "the client's own address"
    );
    // Node b, reached at the Service's node port, drops the connection (no answer at
    // all, not a refusal).
    in_rules(&namespaces[1], &format!("tcp . {node_port} : drop")).await;
    let b_node_port = format!("{ip_b}:{node_port}");
    let outcome =
        std::net::TcpStream::connect_timeout(&b_node_port.parse().unwrap(), Duration::from_secs(2))
            .map(|_| ())
            .map_err(|e| e.kind());
    assert_eq!(outcome, Err(std::io::ErrorKind::TimedOut), "{b_node_port}");
    let health = |ip: &str| format!("{ip}:{health_port}");
    let (status, body) = eventually("node a's health check", async || {
        get(&health(&ip_a), "/healthz").filter(|(s, _)| s.contains(" 200 "))
    })
    .await;
    assert!(status.contains(" 200 "), "{status}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"service": {"namespace": "default", "name": "solo"},
               "localEndpoints": 1, "serviceProxyHealthy": true})
    );
    let (status, _) = eventually("node b's health check", async || get(&health(&ip_b), "/")).await;
    assert!(status.contains(" 503 "), "{status}");

    // sessionAffinity: ClientIP, three pods: the host stays with one.
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    ready(&pods, "web", 3).await;
    services
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"sessionAffinity": "ClientIP"}})),
        )
        .await
        .unwrap();
    in_rules(&namespaces[0], "numgen random mod 3 vmap").await;
    let mut seen = BTreeSet::new();
    for _ in 0..20 {
        let (_, body) = get(&format!("{ip_a}:80"), "/").expect("an answer");
        seen.insert(body);
    }
    assert_eq!(seen.len(), 1, "one pod for one client: {seen:?}");

    // internalTrafficPolicy: Local: a pod on node a reaches only node a's pods.
    let near: Service = serde_json::from_value(json!({
        "metadata": {"name": "near"},
        "spec": {"selector": {"app": "web"}, "internalTrafficPolicy": "Local",
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .unwrap();
    let near = services.create(&post, &near).await.unwrap();
    let cluster_ip = near.spec.unwrap().cluster_ip.unwrap();
    let client: Pod = serde_json::from_value(json!({
        "metadata": {"name": "client"},
        "spec": {"nodeName": "a", "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "c", "image": busybox(), "command": ["sleep", "3600"]}]}
    }))
    .unwrap();
    pods.create(&post, &client).await.unwrap();
    eventually("the client running", async || {
        let p = pods.get("client").await.ok()?;
        (p.status?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    in_rules(&namespaces[0], "goto local/default/near/tcp/80").await;
    let local = ready_pods(&pods, "web", Some("a")).await;
    assert!(!local.is_empty());
    let script = format!(
        "for i in $(seq 30); do timeout 2 wget -q -O - http://{cluster_ip}/ || echo failed; done"
    );
    let answered: BTreeSet<String> = in_client(&server, &script)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(answered, local, "only node a's pods");
}

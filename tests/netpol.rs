//! NetworkPolicy end to end: one `rk8s-server` and two real nodes, each in its own
//! network namespace on a host bridge, running real containers. Five server pods —
//! x/a, y/a, z/a on node a, x/b, y/b on node b, each serving TCP 80 and 81 (busybox
//! httpd) — are probed pair by pair (a TCP connect from inside the source pod's
//! network namespace, 1 s timeout, ten at a time) and the whole matrix compared with
//! the reference model (`rk8s_api::netpol::reachable`) computed from the objects the
//! API holds, case after case: no policies; default-deny ingress; default-deny all,
//! with DNS failing and then allowed to kube-dns; a namespaceSelector by
//! `kubernetes.io/metadata.name`; a pod AND namespace selector; an ipBlock with an
//! except; ports, endPort and a named port; egress denied while the server allows;
//! a relabelled pod; a namespace labelled into a namespaceSelector; node a's agent
//! killed (its rules stay) and restarted after the policies changed (it catches
//! up). Each server also has a ClusterIP Service, and a same-node and a
//! cross-node pair are probed through it too (DNAT, masquerade and br_netfilter on
//! the way). A node may list PodPeers, a user without RBAC may not. A pod of a
//! namespace that denies all egress fails its connect — refused or timed out, not
//! any failure — from its container's first instant. Traffic stays in these
//! namespaces and the test's bridge; everything is removed afterwards, also when
//! the test fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rk8s_api::netpol::peer::PodPeer;
use rk8s_api::netpol::{self, Endpoint, PodInfo, Protocol, World};
use serde_json::json;
use support::images::busybox;
use support::netns::NodeNetwork;
use support::node::{eventually, eventually_within, two_nodes_in_namespaces};

const SERVERS: [(&str, &str, &str); 5] = [
    ("x", "a", "a"),
    ("y", "a", "a"),
    ("z", "a", "a"),
    ("x", "b", "b"),
    ("y", "b", "b"),
];
const PORTS: [u16; 2] = [80, 81];

fn server_pod(name: &str, node: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"pod": name}},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": busybox(), "command": ["sh", "-c",
                "mkdir -p /www && hostname > /www/index.html && httpd -p 81 -h /www && exec httpd -f -p 80 -h /www"],
                "ports": [{"name": "serve-80", "containerPort": 80}, {"name": "serve-81", "containerPort": 81}]}]}
    }))
    .unwrap()
}

/// A ClusterIP Service `s-NAME` in front of the server pod `name` (port 80).
fn service(name: &str) -> k8s_openapi::api::core::v1::Service {
    serde_json::from_value(json!({
        "metadata": {"name": format!("s-{name}")},
        "spec": {"selector": {"pod": name}, "ports": [{"port": 80, "targetPort": 80}]}
    }))
    .unwrap()
}

/// A server pod by (namespace, name).
type Server<'a> = (&'a str, &'a str);

/// Waits (bounded) until connects from each `(from, to)` server pod pair through
/// `to`'s Service are what the model says of the pods themselves on port 80.
async fn services_match(
    cluster: &Cluster,
    admin: &kube::Client,
    case: &str,
    pairs: &[(Server<'_>, Server<'_>)],
) {
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let (world, servers) = cluster.world().await;
        let find = |(ns, name): (&str, &str)| {
            servers
                .iter()
                .find(|(p, _)| p.namespace == ns && p.name == name)
                .cloned()
                .unwrap()
        };
        let mut wrong = Vec::new();
        for (from, to) in pairs {
            let (from_pod, uid) = find(*from);
            let (to_pod, _) = find(*to);
            let want = netpol::reachable(
                &world,
                Endpoint::Pod(&from_pod),
                Endpoint::Pod(&to_pod),
                Protocol::Tcp,
                80,
            );
            let svc = Api::<k8s_openapi::api::core::v1::Service>::namespaced(admin.clone(), to.0)
                .get(&format!("s-{}", to.1))
                .await
                .unwrap();
            let ip: Ipv4Addr = svc.spec.unwrap().cluster_ip.unwrap().parse().unwrap();
            let got =
                tokio::task::spawn_blocking(move || connects(&uid, SocketAddr::from((ip, 80))))
                    .await
                    .unwrap();
            if got != want {
                wrong.push(format!(
                    "{}/{} -> service s-{} of {}/{}: expected {want}",
                    from.0, from.1, to.1, to.0, to.1
                ));
            }
        }
        if wrong.is_empty() {
            eprintln!(
                "{case}: {} pairs through Services, as the model says",
                pairs.len()
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{case}: through Services:\n{}",
            wrong.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A TCP connect to `to` from inside the network namespace of the pod `uid`.
fn connects(uid: &str, to: SocketAddr) -> bool {
    rk8s_netoverlay::netns::run_in(&format!("rk8s-{uid}"), move || {
        std::net::TcpStream::connect_timeout(&to, Duration::from_secs(1)).is_ok()
    })
    .unwrap_or(false)
}

/// Everything the matrix is judged on, read from the API.
struct Cluster {
    pods: Api<Pod>,
    namespaces: Api<Namespace>,
    policies: Api<NetworkPolicy>,
}

impl Cluster {
    async fn world(&self) -> (World, Vec<(PodInfo, String)>) {
        let mut world = World::default();
        for p in self.policies.list(&ListParams::default()).await.unwrap() {
            world.policies.push(netpol::compile(&p).unwrap());
        }
        for n in self.namespaces.list(&ListParams::default()).await.unwrap() {
            world.namespaces.insert(
                n.metadata.name.clone().unwrap(),
                n.metadata.labels.clone().unwrap_or_default(),
            );
        }
        let mut servers = Vec::new();
        for p in self.pods.list(&ListParams::default()).await.unwrap() {
            if let Some(info) = netpol::pod_info(&p) {
                if p.metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key("pod"))
                {
                    servers.push((info.clone(), p.metadata.uid.clone().unwrap()));
                }
                world.pods.push(info);
            }
        }
        servers.sort_by(|a, b| (&a.0.namespace, &a.0.name).cmp(&(&b.0.namespace, &b.0.name)));
        (world, servers)
    }
}

/// Probes every pair on every port; `(from, to, port) -> connected`.
fn probe(servers: &[(PodInfo, String)]) -> BTreeMap<(String, String, u16), bool> {
    let mut jobs = Vec::new();
    for (from, uid) in servers {
        for (to, _) in servers {
            for port in PORTS {
                let addr = SocketAddr::from((to.ips[0], port));
                let key = (
                    format!("{}/{}", from.namespace, from.name),
                    format!("{}/{}", to.namespace, to.name),
                    port,
                );
                jobs.push((key, uid.clone(), addr));
            }
        }
    }
    let mut out = BTreeMap::new();
    for chunk in jobs.chunks(10) {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|(key, uid, addr)| (key.clone(), s.spawn(move || connects(uid, *addr))))
                .collect();
            for (key, h) in handles {
                out.insert(key, h.join().unwrap());
            }
        });
    }
    out
}

fn expected(world: &World, servers: &[(PodInfo, String)]) -> BTreeMap<(String, String, u16), bool> {
    let mut out = BTreeMap::new();
    for (from, _) in servers {
        for (to, _) in servers {
            for port in PORTS {
                let key = (
                    format!("{}/{}", from.namespace, from.name),
                    format!("{}/{}", to.namespace, to.name),
                    port,
                );
                let ok = netpol::reachable(
                    world,
                    Endpoint::Pod(from),
                    Endpoint::Pod(to),
                    Protocol::Tcp,
                    port,
                );
                out.insert(key, ok);
            }
        }
    }
    out
}

/// Waits (bounded) until the probed matrix equals the model's; fails with the pairs
/// that differ.
async fn matrix_matches(cluster: &Cluster, case: &str) {
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let (world, servers) = cluster.world().await;
        let want = expected(&world, &servers);
        let got = tokio::task::spawn_blocking(move || probe(&servers))
            .await
            .unwrap();
        let wrong: Vec<String> = want
            .iter()
            .filter(|(k, v)| got.get(*k) != Some(*v))
            .map(|((f, t, p), v)| format!("{f} -> {t}:{p} expected {v}"))
            .collect();
        if wrong.is_empty() {
            let allowed = want.values().filter(|v| **v).count();
            eprintln!(
                "{case}: {allowed}/{} allowed, as the model says",
                want.len()
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{case}: {} pairs differ from the model:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn policy(namespace: &str, name: &str, spec: serde_json::Value) -> NetworkPolicy {
    serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": namespace}, "spec": spec}),
    )
    .unwrap()
}

/// Whether the pod `uid` gets an answer for `name` from its node's DNS (its
/// gateway, `gateway`) within a second: one UDP query.
fn resolves(uid: &str, gateway: Ipv4Addr, name: &str) -> bool {
    let mut query = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(u8::try_from(label.len()).unwrap());
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    rk8s_netoverlay::netns::run_in(&format!("rk8s-{uid}"), move || {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        socket.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        socket.send_to(&query, (gateway, 53)).ok()?;
        let mut buf = [0u8; 512];
        let (n, _) = socket.recv_from(&mut buf).ok()?;
        (n > 2 && buf[..2] == [0x12, 0x34]).then_some(())
    })
    .ok()
    .flatten()
    .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_policies_enforce_the_model_across_namespaces_and_nodes() {
    // Declared first, dropped last: nodes are reset inside their namespaces first.
    let mut net = NodeNetwork::new();
    let host = net.host_ip();
    let server = support::apiserver::Server::start(&["--address", &host]);
    let admin = server.client().await;
    let (mut agents, _netns) = two_nodes_in_namespaces(&server, &mut net, 80).await;
    let post = PostParams::default();
    let cluster = Cluster {
        pods: Api::all(admin.clone()),
        namespaces: Api::all(admin.clone()),
        policies: Api::all(admin.clone()),
    };
    for ns in ["x", "y", "z", "w"] {
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        let made = cluster.namespaces.create(&post, &n).await.unwrap();
        // The API server labels every namespace with its name.
        assert_eq!(
            made.metadata.labels.unwrap()["kubernetes.io/metadata.name"],
            ns
        );
    }
    for (ns, name, node) in SERVERS {
        let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
        pods.create(&post, &server_pod(name, node)).await.unwrap();
        Api::<k8s_openapi::api::core::v1::Service>::namespaced(admin.clone(), ns)
            .create(&post, &service(name))
            .await
            .unwrap();
    }
    eventually_within(
        "five server pods with addresses",
        Duration::from_secs(60),
        async || {
            let (_, servers) = cluster.world().await;
            (servers.len() == 5).then_some(())
        },
    )
    .await;
    let policies = |ns: &str| Api::<NetworkPolicy>::namespaced(admin.clone(), ns);
    let add = async |ns: &str, name: &str, spec: serde_json::Value| {
        policies(ns)
            .create(&post, &policy(ns, name, spec))
            .await
            .unwrap();
    };
    let clear = async || {
        for p in cluster.policies.list(&ListParams::default()).await.unwrap() {
            let ns = p.metadata.namespace.clone().unwrap();
            policies(&ns)
                .delete(&p.metadata.name.unwrap(), &DeleteParams::default())
                .await
                .unwrap();
        }
    };

    matrix_matches(&cluster, "baseline").await;

    // PodPeers: a node may list them (all pods, projected); a user without RBAC
    // may not.
    let node_client = server
        .client_with_token(Some(&server.node_token("a")))
        .await;
    let seen = Api::<PodPeer>::all(node_client)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(seen.items.len() >= 5, "{} PodPeers", seen.items.len());
    let dir = tempfile::tempdir().unwrap();
    let user =
        support::apiserver::client_from(&server.user_kubeconfig(dir.path(), "pat", &[])).await;
    match Api::<PodPeer>::all(user).list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => panic!("a user without RBAC listed PodPeers: {other:?}"),
    }

    add("x", "deny-in", json!({"podSelector": {}})).await;
    matrix_matches(&cluster, "default-deny-ingress in x").await;

    // Default-deny all: DNS fails; allowing egress to kube-dns brings it back.
    add(
        "x",
        "deny-all",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    )
    .await;
    matrix_matches(&cluster, "default-deny-all in x").await;
    let (_, servers) = cluster.world().await;
    let xa = servers
        .iter()
        .find(|(p, _)| p.namespace == "x" && p.name == "a")
        .unwrap()
        .clone();
    let node_a: k8s_openapi::api::core::v1::Node = Api::all(admin.clone()).get("a").await.unwrap();
    let cidr: rk8s_api::net::Ipv4Net = node_a.spec.unwrap().pod_cidr.unwrap().parse().unwrap();
    let gateway = cidr.nth(1).unwrap();
    let ya = servers
        .iter()
        .find(|(p, _)| p.namespace == "y" && p.name == "a")
        .unwrap()
        .clone();
    eventually("DNS from y/a (no policy)", async || {
        resolves(&ya.1, gateway, "kubernetes.default.svc.cluster.local").then_some(())
    })
    .await;
    assert!(!resolves(
        &xa.1,
        gateway,
        "kubernetes.default.svc.cluster.local"
    ));
    add("x", "dns", json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
                "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]})).await;
    eventually(
        "DNS from x/a once egress to kube-dns is allowed",
        async || resolves(&xa.1, gateway, "kubernetes.default.svc.cluster.local").then_some(()),
    )
    .await;
    matrix_matches(&cluster, "default-deny-all in x, DNS allowed").await;
    clear().await;

    add(
        "x",
        "from-y",
        json!({"podSelector": {}, "ingress": [{"from": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}}}]}]}),
    )
    .await;
    matrix_matches(&cluster, "namespaceSelector by name").await;
    // Through x/a's Service: from its node (y/a allowed, z/a denied) and from the
    // other node (y/b allowed, x/b denied).
    services_match(
        &cluster,
        &admin,
        "namespaceSelector by name",
        &[
            (("y", "a"), ("x", "a")),
            (("z", "a"), ("x", "a")),
            (("y", "b"), ("x", "a")),
            (("x", "b"), ("x", "a")),
        ],
    )
    .await;
    clear().await;

    add(
        "x",
        "from-y-b",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}},
                 "podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
    )
    .await;
    matrix_matches(&cluster, "pod AND namespace selector").await;

    // A relabelled pod: y/b stops being `pod: b`.
    Api::<Pod>::namespaced(admin.clone(), "y")
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"pod": "c"}}})),
        )
        .await
        .unwrap();
    matrix_matches(&cluster, "pod AND namespace selector after a relabel").await;
    Api::<Pod>::namespaced(admin.clone(), "y")
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"pod": "b"}}})),
        )
        .await
        .unwrap();
    clear().await;

    let (_, servers) = cluster.world().await;
    let ya_ip = servers
        .iter()
        .find(|(p, _)| p.namespace == "y" && p.name == "a")
        .unwrap()
        .0
        .ips[0];
    add(
        "x",
        "block",
        json!({"podSelector": {}, "ingress": [{"from": [
                {"ipBlock": {"cidr": "10.0.0.0/8", "except": [format!("{ya_ip}/32")]}}]}]}),
    )
    .await;
    matrix_matches(&cluster, "ipBlock with an except").await;
    clear().await;

    add(
        "x",
        "ports",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"ports": [{"port": 70, "endPort": 80}]}]}),
    )
    .await;
    add(
        "x",
        "named",
        json!({"podSelector": {"matchLabels": {"pod": "b"}},
                "ingress": [{"ports": [{"port": "serve-81"}]}]}),
    )
    .await;
    matrix_matches(&cluster, "ports, endPort and a named port").await;
    clear().await;

    add("y", "open", json!({"podSelector": {}, "ingress": [{}]})).await;
    add(
        "x",
        "no-out",
        json!({"podSelector": {}, "policyTypes": ["Egress"]}),
    )
    .await;
    matrix_matches(&cluster, "egress denied while the server allows").await;

    // A pod of a namespace denying all egress: its first connect, at container start,
    // fails; the same pod in a namespace without policies connects.
    add(
        "w",
        "deny-all",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    )
    .await;
    let za_ip = servers
        .iter()
        .find(|(p, _)| p.namespace == "z" && p.name == "a")
        .unwrap()
        .0
        .ips[0];
    // Exit 42: the connect was refused or timed out (not any other failure).
    let first_connect = |name: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"nodeName": "a", "restartPolicy": "Never", "containers": [{"name": "c",
                "image": busybox(), "command": ["sh", "-c",
                format!("e=$(timeout 3 wget -q -O /dev/null http://{za_ip}:80/ 2>&1); r=$?; \
                         [ $r = 0 ] && exit 0; [ $r -ge 124 ] && exit 42; \
                         case \"$e\" in *refused*|*timed*|*unreachable*) exit 42;; esac; \
                         echo \"$e\"; exit $r")]}]}
        }))
        .unwrap()
    };
    for ns in ["w", "z"] {
        Api::<Pod>::namespaced(admin.clone(), ns)
            .create(&post, &first_connect("first"))
            .await
            .unwrap();
    }
    let phase = async |ns: &str| {
        eventually_within(
            &format!("{ns}/first finished"),
            Duration::from_secs(60),
            async || {
                let p = Api::<Pod>::namespaced(admin.clone(), ns)
                    .get("first")
                    .await
                    .ok()?;
                let phase = p.status?.phase?;
                ["Succeeded", "Failed"]
                    .contains(&phase.as_str())
                    .then_some(phase)
            },
        )
        .await
    };
    assert_eq!(
        phase("w").await,
        "Failed",
        "w/first connected through deny-all"
    );
    let w_first = Api::<Pod>::namespaced(admin.clone(), "w")
        .get("first")
        .await
        .unwrap();
    let exit = w_first
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|c| c.into_iter().next())
        .and_then(|c| c.state)
        .and_then(|s| s.terminated)
        .map(|t| t.exit_code);
    assert_eq!(
        exit,
        Some(42),
        "w/first failed, but not by a refused or timed-out connect"
    );
    assert_eq!(phase("z").await, "Succeeded", "z/first did not connect");
    clear().await;
    matrix_matches(&cluster, "all policies deleted").await;

    // A namespace labelled into a policy's namespaceSelector after the policy.
    add(
        "x",
        "from-blue",
        json!({"podSelector": {}, "ingress": [{"from": [
                {"namespaceSelector": {"matchLabels": {"team": "blue"}}}]}]}),
    )
    .await;
    matrix_matches(&cluster, "namespaceSelector of a label no namespace has").await;
    cluster
        .namespaces
        .patch(
            "y",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "blue"}}})),
        )
        .await
        .unwrap();
    matrix_matches(&cluster, "namespaceSelector once y is labelled").await;
    clear().await;

    // A killed agent leaves its node's rules in place; restarted after the policies
    // changed while it was down, it catches up.
    add("x", "deny-in", json!({"podSelector": {}})).await;
    matrix_matches(&cluster, "default-deny-ingress in x").await;
    agents[0].kill();
    matrix_matches(&cluster, "default-deny-ingress in x, node a's agent killed").await;
    clear().await;
    add("y", "deny-in", json!({"podSelector": {}})).await;
    agents[0].run_again(&[]);
    matrix_matches(
        &cluster,
        "default-deny-ingress moved from x to y while node a's agent was down",
    )
    .await;
    clear().await;
}

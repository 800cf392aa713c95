//! Scale from zero on request through the built-in Ingress, end to end: one
//! `rk8s-server` and two real nodes in network namespaces (each holding at most 2
//! requests per Service, `--ingress-activation-queue 2`), real busybox containers.
//! A Deployment annotated `scale.rk8s.io/wake-on-request` at 0 replicas, pinned to
//! node `a`, is woken by a request through node `b` — the node without its pod —,
//! which is answered 200 with `x-rk8s-cold-start: true`; with `idle-after: 10s` it
//! goes back to 0 by itself. A wakeable Deployment no node can run: of 5 requests,
//! 3 are refused at once (503, `Retry-After: 1`) and 2 held until the 2 s
//! `activation-timeout` (503, `Retry-After: 5`). An HPA with `minReplicas: 0` on
//! an External metric at zero (a real Prometheus answers `vector(0)`): its target
//! is woken by a request, held up against the HPA's zero by the activity floor and
//! the 10 s scale-down window, then zeroed by the HPA. A node's credential still
//! may not touch `deployments/scale`. Traffic stays in these namespaces and the test's
//! bridge; everything is removed afterwards, also when the test fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Event, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::images::busybox;
use support::netns::NodeNetwork;
use support::node::{eventually, eventually_within, real_node_in};
use support::prometheus::Prometheus;

/// busybox httpd on 8080 answering with the pod's name.
const HTTPD: &str = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www";

fn deployment(
    name: &str,
    node_selector: serde_json::Value,
    annotations: serde_json::Value,
) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "nodeSelector": node_selector,
                "containers": [{"name": "c", "image": busybox(), "command": ["sh", "-c", HTTPD],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]
            }}
        }
    }))
    .unwrap()
}

fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .unwrap()
}

fn ingress(name: &str) -> Ingress {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"rules": [{"host": format!("{name}.test"), "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]}
    }))
    .unwrap()
}

/// One GET of `/` for `host` at `address` (HTTP/1.0), waiting up to 90 s: the
/// status line, the head (lower case) and the body.
fn get(address: &str, host: &str) -> Option<(String, String, String)> {
    let mut stream =
        std::net::TcpStream::connect_timeout(&address.parse().ok()?, Duration::from_secs(2))
            .ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(90)))
        .ok()?;
    write!(stream, "GET / HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    let status = head.lines().next()?.to_string();
    Some((status, head.to_ascii_lowercase(), body.trim().to_string()))
}

async fn replicas(deployments: &Api<Deployment>, name: &str) -> Option<i32> {
    deployments.get(name).await.ok()?.spec?.replicas
}

async fn has_event(events: &Api<Event>, reason: &str, name: &str) -> bool {
    events
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items.iter().any(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.involved_object.name.as_deref() == Some(name)
            })
        })
        .unwrap_or(false)
}

/// The value of `series` (name and labels, as exposed) in node `node`'s
/// `/metrics`, read through the API server.
async fn node_metric(client: &kube::Client, node: &str, series: &str) -> Option<f64> {
    let uri = format!("/api/v1/nodes/{node}/proxy/metrics");
    let req = http::Request::get(uri).body(Vec::new()).ok()?;
    let text = client.request_text(req).await.ok()?;
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
}

/// Waits until the activation controller has marked the Service `name` (the nodes'
/// proxies then hold its requests), and both nodes' proxies hold for it.
async fn marked(client: &kube::Client, services: &Api<Service>, name: &str, value: &str) {
    eventually(
        &format!("service {name} marked for activation"),
        async || {
            let s = services.get(name).await.ok()?;
            let a = s.metadata.annotations?;
            (a.get(rk8s_api::activation::ACTIVATION_TIMEOUT)? == value).then_some(())
        },
    )
    .await;
    // Both nodes' proxies hold for it (their tables list it in their activity).
    for node in ["a", "b"] {
        eventually(&format!("node {node} holds for {name}"), async || {
            holds(client, node, name).await?.then_some(())
        })
        .await;
    }
}

/// Whether node `node`'s Ingress proxy holds requests for the Service `name`: the
/// first line of its activity stream (every holding backend), read as admin.
async fn holds(client: &kube::Client, node: &str, name: &str) -> Option<bool> {
    use http_body_util::BodyExt;
    let uri = format!("/api/v1/nodes/{node}/proxy/ingress/activity");
    let req = http::Request::get(uri)
        .body(kube::client::Body::empty())
        .ok()?;
    let mut body = client.send(req).await.ok()?.into_body();
    let mut text = Vec::new();
    while !text.contains(&b'\n') {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .ok()??
            .ok()?;
        text.extend_from_slice(frame.data_ref()?);
    }
    let end = text.iter().position(|b| *b == b'\n')?;
    let line: rk8s_api::activation::ActivityLine = serde_json::from_slice(&text[..end]).ok()?;
    Some(line.backends.iter().any(|b| b.service == name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_wakes_a_deployment_at_zero_and_idleness_puts_it_back() {
    // Declared first, dropped last: nodes are reset inside their namespaces first.
    let mut net = NodeNetwork::new();
    let host = net.host_ip();
    let prometheus_port = support::apiserver::free_port();
    let server = support::apiserver::Server::start(&[
        "--address",
        &host,
        "--prometheus-url",
        &Prometheus::url(prometheus_port),
        "--horizontal-pod-autoscaler-sync-period",
        "2s",
    ]);
    let _prometheus = Prometheus::start(&server, prometheus_port);
    let admin = server.client().await;
    let mut agents = Vec::new();
    for (i, name) in [(1, "a"), (2, "b")] {
        let ns = net.add_node(i);
        let extra = ["--ingress-activation-queue", "2"];
        agents.push(real_node_in(&server, name, 90 + i, Some(ns), &extra).await);
    }
    let node_b = format!("{}:80", net.node_ip(2));
    let post = PostParams::default();
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), "default");
    let services: Api<Service> = Api::namespaced(admin.clone(), "default");
    let ingresses: Api<Ingress> = Api::namespaced(admin.clone(), "default");
    let events: Api<Event> = Api::namespaced(admin.clone(), "default");

    // Wakeable, idle after 10 s, its pod only on node a.
    let wake = json!({"scale.rk8s.io/wake-on-request": "true", "scale.rk8s.io/idle-after": "10s"});
    deployments
        .create(
            &post,
            &deployment("fn", json!({"kubernetes.io/hostname": "a"}), wake),
        )
        .await
        .unwrap();
    services.create(&post, &service("fn")).await.unwrap();
    ingresses.create(&post, &ingress("fn")).await.unwrap();
    marked(&admin, &services, "fn", "60s").await;
    assert_eq!(replicas(&deployments, "fn").await, Some(0));

    // Through node b, which has no pod of it: held, woken, answered.
    let at = node_b.clone();
    let started = Instant::now();
    let (status, head, body) = tokio::task::spawn_blocking(move || get(&at, "fn.test"))
        .await
        .unwrap()
        .expect("the request is answered");
    let took = started.elapsed();
    assert!(status.contains(" 200 "), "{status}\n{head}\n{body}");
    assert!(head.contains("x-rk8s-cold-start: true"), "{head}");
    assert!(body.starts_with("fn-"), "{body}");
    eprintln!("cold start through the other node: {took:?}");
    assert_eq!(replicas(&deployments, "fn").await, Some(1));
    eventually("the ScaledFromZero event", async || {
        has_event(&events, "ScaledFromZero", "fn")
            .await
            .then_some(())
    })
    .await;
    // Warm now: answered without waiting.
    let at = node_b.clone();
    let (status, head, _) = tokio::task::spawn_blocking(move || get(&at, "fn.test"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.contains(" 200 ") && !head.contains("x-rk8s-cold-start"),
        "{head}"
    );

    // Idle for 10 s: back to zero (the last snapshot of the traffic up to 10 s later).
    eventually_within("fn back to zero", Duration::from_secs(45), async || {
        (replicas(&deployments, "fn").await == Some(0)).then_some(())
    })
    .await;
    eventually("the ScaledToZero event", async || {
        has_event(&events, "ScaledToZero", "fn").await.then_some(())
    })
    .await;

    // No node can run it: a queue of 2 per Service on node b; 3 of 5 refused at
    // once, 2 held for the 2 s activation-timeout.
    let never =
        json!({"scale.rk8s.io/wake-on-request": "true", "scale.rk8s.io/activation-timeout": "2s"});
    deployments
        .create(
            &post,
            &deployment("never", json!({"nowhere": "true"}), never),
        )
        .await
        .unwrap();
    services.create(&post, &service("never")).await.unwrap();
    ingresses.create(&post, &ingress("never")).await.unwrap();
    marked(&admin, &services, "never", "2s").await;
    let send = |at: String| {
        std::thread::spawn(move || {
            let started = Instant::now();
            let reply = get(&at, "never.test");
            (reply, started.elapsed())
        })
    };
    let held: Vec<_> = (0..2).map(|_| send(node_b.clone())).collect();
    // Both held before the others are sent (not a guess at how long that takes).
    let never_waiting = r#"rk8s_ingress_activation_waiting{namespace="default",service="never"}"#;
    eventually("node b holds two requests", async || {
        (node_metric(&admin, "b", never_waiting).await? == 2.0).then_some(())
    })
    .await;
    let refused: Vec<_> = (0..3).map(|_| send(node_b.clone())).collect();
    for r in refused {
        let (reply, took) = r.join().unwrap();
        let (status, head, _) = reply.expect("refused with an answer");
        assert!(status.contains(" 503 "), "{status}");
        assert!(head.contains("retry-after: 1\r\n"), "{head}");
        assert!(took < Duration::from_secs(1), "{took:?}");
    }
    for h in held {
        let (reply, took) = h.join().unwrap();
        let (status, head, _) = reply.expect("held, then answered");
        assert!(status.contains(" 503 "), "{status}");
        assert!(head.contains("retry-after: 5\r\n"), "{head}");
        assert!(head.contains("x-rk8s-cold-start: true"), "{head}");
        assert!(
            took >= Duration::from_millis(1400) && took < Duration::from_secs(5),
            "{took:?}"
        );
    }
    // It was asked to wake all the same (its pod just cannot run).
    assert_eq!(replicas(&deployments, "never").await, Some(1));

    // An HPA with minReplicas 0 on an External metric at zero (`vector(0)`): the
    // request wakes its target; the activity floor holds it up against the HPA's
    // zero for idle-after, the 10 s scale-down window after that; then the HPA — not
    // the activation controller — scales it to zero.
    let idle = json!({"scale.rk8s.io/idle-after": "10s"});
    deployments
        .create(
            &post,
            &deployment("hpafn", json!({"kubernetes.io/hostname": "a"}), idle),
        )
        .await
        .unwrap();
    services.create(&post, &service("hpafn")).await.unwrap();
    ingresses.create(&post, &ingress("hpafn")).await.unwrap();
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "hpafn"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hpafn"},
            "minReplicas": 0, "maxReplicas": 3,
            "metrics": [{"type": "External", "external": {
                "metric": {"name": "vector(0)"},
                "target": {"type": "Value", "value": "10"}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 10}},
        },
    }))
    .unwrap();
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(admin.clone(), "default");
    hpas.create(&post, &hpa).await.unwrap();
    marked(&admin, &services, "hpafn", "60s").await;
    let at = node_b.clone();
    let (status, head, _) = tokio::task::spawn_blocking(move || get(&at, "hpafn.test"))
        .await
        .unwrap()
        .expect("the request is answered");
    assert!(status.contains(" 200 "), "{status}\n{head}");
    assert!(head.contains("x-rk8s-cold-start: true"), "{head}");
    let answered = Instant::now();
    // The HPA syncs every 2 s with its metric at 0: held up all the same.
    while answered.elapsed() < Duration::from_secs(8) {
        assert_eq!(replicas(&deployments, "hpafn").await, Some(1));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eventually_within(
        "hpafn zeroed by its HPA",
        Duration::from_secs(60),
        async || (replicas(&deployments, "hpafn").await == Some(0)).then_some(()),
    )
    .await;
    eprintln!(
        "hpafn held up for {:?} after its answer",
        answered.elapsed()
    );
    assert!(has_event(&events, "SuccessfulRescale", "hpafn").await);
    assert!(!has_event(&events, "ScaledToZero", "hpafn").await);

    // Nodes gained nothing: a node's credential may not read or write the scale.
    let as_node = server
        .client_with_token(Some(&server.node_token("b")))
        .await;
    let node_deployments: Api<Deployment> = Api::namespaced(as_node, "default");
    let patch = json!({"spec": {"replicas": 3}});
    for refused in [
        node_deployments
            .patch_scale("fn", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ()),
        node_deployments.get_scale("fn").await.map(|_| ()),
    ] {
        let e = refused.unwrap_err();
        assert!(
            matches!(e, kube::Error::Api(ref s) if s.code == 403),
            "{e:?}"
        );
    }
    drop(agents);
}

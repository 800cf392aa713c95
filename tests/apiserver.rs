//! The API server as a real `rk8s-server` process over HTTPS, driven by the `kube`
//! client (a Kubernetes client nobody on this project wrote) and by the Debian
//! `kubectl`: CRUD of every kind, conflicts, validation, watch resume and expiry,
//! authentication and authorization, subresources and graceful pod deletion.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use rk8s_api::AnyObject;
use serde_json::json;
use support::apiserver::Server;

fn code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn api_resource(obj: &AnyObject) -> ApiResource {
    let k = obj.kind();
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(k.group, k.version, k.kind), k.plural)
}

fn dynamic(client: &kube::Client, obj: &AnyObject) -> Api<DynamicObject> {
    let ar = api_resource(obj);
    match obj.namespace() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// Objects of every served kind: the examples plus the kinds only components write.
fn every_kind() -> Vec<AnyObject> {
    let mut objects = Vec::new();
    for f in std::fs::read_dir("examples").unwrap() {
        let path = f.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if rk8s_api::formats::detect(&text) != rk8s_api::formats::FileFormat::Manifests {
            continue;
        }
        for m in rk8s_api::manifest::load(&path.display().to_string(), &text).unwrap() {
            objects.push(m.object);
        }
    }
    let extra = r#"
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {kubernetes.io/hostname: n1}}
---
apiVersion: v1
kind: Endpoints
metadata: {name: web}
subsets: [{addresses: [{ip: 10.0.0.5}], ports: [{port: 80}]}]
---
apiVersion: v1
kind: Event
metadata: {name: web.1}
involvedObject: {kind: Pod, name: web, namespace: default}
reason: Started
message: started
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: n1, namespace: kube-node-lease}
spec: {holderIdentity: n1, leaseDurationSeconds: 40}
"#;
    for m in rk8s_api::manifest::load("extra.yaml", extra).unwrap() {
        objects.push(m.object);
    }
    let path = "tests/fixtures/every-kind.yaml";
    let text = std::fs::read_to_string(path).unwrap();
    for m in rk8s_api::manifest::load(path, &text).unwrap() {
        objects.push(m.object);
    }
    let mut kinds: Vec<String> = objects
        .iter()
        .map(|o| format!("{}/{}", o.kind().api_version, o.kind().kind))
        .collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds.len(), rk8s_api::object::kinds().len(), "{kinds:?}");
    objects
}

/// These tests look at the API alone: no scheduler or controller writes to their
/// objects.
const API_ONLY: &[&str] = &["--disable-scheduler", "--disable-controllers"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_for_every_kind() {
    let server = Server::start(API_ONLY);
    let client = server.client().await;
    // Namespaces first: the other objects may live in them.
    let mut objects = every_kind();
    objects.sort_by_key(|o| o.kind().kind != "Namespace");
    for obj in &objects {
        let api = dynamic(&client, obj);
        let name = obj.name().to_string();
        let value: DynamicObject = serde_json::from_value(obj.to_value()).unwrap();
        let created = api.create(&PostParams::default(), &value).await.unwrap();
        let rv = created.metadata.resource_version.clone().unwrap();
        assert!(created.metadata.uid.is_some(), "{name}");
        assert!(created.metadata.creation_timestamp.is_some(), "{name}");
        let got = api.get(&name).await.unwrap();
        assert_eq!(got.metadata.resource_version.as_deref(), Some(rv.as_str()));
        let listed = api.list(&ListParams::default()).await.unwrap();
        assert!(
            listed
                .items
                .iter()
                .any(|o| o.metadata.name.as_deref() == Some(&name))
        );
        let mut changed = got.clone();
        changed
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("crud".into(), "yes".into());
        let replaced = api
            .replace(&name, &PostParams::default(), &changed)
            .await
            .unwrap();
        assert_ne!(
            replaced.metadata.resource_version.as_deref(),
            Some(rv.as_str())
        );
        assert_eq!(replaced.metadata.labels.unwrap()["crud"], "yes");
        // The old resourceVersion is stale now: 409.
        assert_eq!(
            code(
                api.replace(&name, &PostParams::default(), &changed)
                    .await
                    .unwrap_err()
            ),
            409
        );
        // Creating it again: 409 AlreadyExists.
        assert_eq!(
            code(
                api.create(&PostParams::default(), &value)
                    .await
                    .unwrap_err()
            ),
            409
        );
    }
    for obj in objects.iter().rev() {
        // Unscheduled pods (like these) go at once; a namespace once emptied and finalized.
        let api = dynamic(&client, obj);
        api.delete(obj.name(), &DeleteParams::default())
            .await
            .unwrap();
        if matches!(obj, AnyObject::Namespace(_)) {
            support::apiserver::wait_gone(&api, obj.name()).await;
            continue;
        }
        assert_eq!(
            code(api.get(obj.name()).await.unwrap_err()),
            404,
            "{}",
            obj.reference()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_kubernetes_statuses() {
    let server = Server::start(API_ONLY);
    let client = server.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // 422 with one cause per invalid field.
    let bad = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"},
                     "spec": {"containers": [{"name": "a", "image": "x", "resources": {"limits": {"cpu": "5OOm"}}}]}});
    let err = pods
        .create(
            &PostParams::default(),
            &serde_json::from_value(bad).unwrap(),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!()
    };
    assert_eq!(status.code, 422, "{status:?}");
    let causes = status.details.unwrap().causes;
    let fields: Vec<String> = causes.iter().map(|c| c.field.clone()).collect();
    assert!(fields.contains(&"metadata.name".to_string()), "{fields:?}");
    assert!(
        fields.contains(&"spec.containers[0].resources.limits.cpu".to_string()),
        "{fields:?}"
    );
    // generateName.
    let generated = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "web-"},
                     "spec": {"containers": [{"name": "a", "image": "busybox"}]}});
    let created = pods
        .create(
            &PostParams::default(),
            &serde_json::from_value(generated).unwrap(),
        )
        .await
        .unwrap();
    let name = created.metadata.name.unwrap();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");
    // 404 for an unknown namespace, 404 for a missing object.
    let elsewhere: Api<Pod> = Api::namespaced(client.clone(), "nowhere");
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x"}]}}),
    )
    .unwrap();
    assert_eq!(
        code(
            elsewhere
                .create(&PostParams::default(), &pod)
                .await
                .unwrap_err()
        ),
        404
    );
    assert_eq!(code(pods.get("missing").await.unwrap_err()), 404);
    // 413 for a body over 3 MiB.
    let mut huge = pod.clone();
    huge.metadata.annotations = Some([("big".to_string(), "x".repeat(4 << 20))].into());
    assert_eq!(
        code(
            pods.create(&PostParams::default(), &huge)
                .await
                .unwrap_err()
        ),
        413
    );
    // 400 for a body that is not JSON at all.
    let req = http::Request::post("/api/v1/namespaces/default/pods")
        .header("content-type", "application/json")
        .body(b"{not json".to_vec())
        .unwrap();
    let err = client.request::<Pod>(req).await.unwrap_err();
    assert_eq!(code(err), 400);
    // System namespaces may not be deleted.
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    assert_eq!(
        code(
            ns.delete("default", &DeleteParams::default())
                .await
                .unwrap_err()
        ),
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_objects_certificates_and_tokens() {
    let mut server = Server::start(API_ONLY);
    let pods: Api<Pod> = Api::namespaced(server.client().await, "default");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "kept"},
        "spec": {"containers": [{"name": "a", "image": "x"}]}}))
    .unwrap();
    let created = pods.create(&PostParams::default(), &pod).await.unwrap();
    let ca = std::fs::read_to_string(server.data_dir().join("pki/ca.crt")).unwrap();
    let config = std::fs::read_to_string(server.kubeconfig()).unwrap();
    server.restart();
    // The same kubeconfig (CA and admin token) works against the restarted server.
    let pods: Api<Pod> = Api::namespaced(server.client().await, "default");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let kept = loop {
        match pods.get("kept").await {
            Ok(p) => break p,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("not back after a restart: {e}\n{}", server.log()),
        }
    };
    assert_eq!(kept.metadata.uid, created.metadata.uid);
    assert_eq!(
        kept.metadata.resource_version,
        created.metadata.resource_version
    );
    assert_eq!(
        std::fs::read_to_string(server.data_dir().join("pki/ca.crt")).unwrap(),
        ca
    );
    assert_eq!(
        std::fs::read_to_string(server.kubeconfig()).unwrap(),
        config
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_beyond_the_inflight_limit_get_429_except_the_admins() {
    let server = Server::start(&[
        "--disable-scheduler",
        "--max-mutating-requests-inflight",
        "1",
    ]);
    // A node writing its own status, 32 writes at a time: some are refused.
    let n1 = server
        .client_without_retries_as(Some(&server.node_token("n1")))
        .await;
    let nodes: Api<Node> = Api::all(n1);
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let mut throttled = 0;
    for round in 0..10 {
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let nodes = nodes.clone();
                let status = Patch::Merge(json!({"status": {"nodeInfo": {
                    "kernelVersion": format!("{round}.{i}")}}}));
                tokio::spawn(async move {
                    nodes
                        .patch_status("n1", &PatchParams::default(), &status)
                        .await
                })
            })
            .collect();
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(code(e), 429);
                    throttled += 1;
                }
            }
        }
        if throttled > 0 {
            break;
        }
    }
    assert!(
        throttled > 0,
        "32 concurrent writes never exceeded a limit of 1"
    );
    // The admin (system:masters, as the control plane's own clients) is always
    // answered, as kube-apiserver's max-in-flight filter answers it.
    let pods: Api<Pod> = Api::namespaced(server.client_without_retries().await, "default");
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let pods = pods.clone();
            tokio::spawn(async move {
                let pod: Pod =
                    serde_json::from_value(json!({"metadata": {"name": format!("p{i}")},
                    "spec": {"containers": [{"name": "a", "image": "x"}]}}))
                    .unwrap();
                pods.create(&PostParams::default(), &pod).await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    // Reads are limited separately.
    pods.list(&ListParams::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_without_gaps_and_expires_after_compaction() {
    let server = Server::start(&[
        "--disable-scheduler",
        "--disable-controllers",
        "--compaction-interval",
        "1s",
    ]);
    let client = server.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut rvs = Vec::new();
    for i in 0..10 {
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": format!("p{i}"), "labels": {"i": i.to_string()}},
            "spec": {"containers": [{"name": "a", "image": "x"}]}}),
        )
        .unwrap();
        let p = pods.create(&PostParams::default(), &pod).await.unwrap();
        rvs.push(p.metadata.resource_version.unwrap());
    }
    // From the third write's revision: exactly the seven after it, in order.
    let mut stream = pods
        .watch(&WatchParams::default().timeout(5), &rvs[2])
        .await
        .unwrap()
        .boxed();
    let mut seen = Vec::new();
    while seen.len() < 7 {
        match stream.next().await.unwrap().unwrap() {
            WatchEvent::Added(p) => seen.push(p.metadata.name.unwrap()),
            other => panic!("unexpected {other:?}"),
        }
    }
    let expected: Vec<String> = (3..10).map(|i| format!("p{i}")).collect();
    assert_eq!(seen, expected);
    // A selector turns a label change into ADDED / DELETED for that watcher.
    let lp = WatchParams::default().labels("i=9").timeout(5);
    let mut selected = pods.watch(&lp, &rvs[9]).await.unwrap().boxed();
    pods.patch(
        "p9",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"i": "x"}}})),
    )
    .await
    .unwrap();
    match selected.next().await.unwrap().unwrap() {
        WatchEvent::Deleted(p) => assert_eq!(p.metadata.name.as_deref(), Some("p9")),
        other => panic!("unexpected {other:?}"),
    }
    // After two compaction rounds the first revisions are gone: as from
    // kube-apiserver, a stream of one ERROR event with the 410 (kube-rs' watcher and
    // client-go's reflector list again on it; a 410 answer left kube-rs' watcher
    // retrying the same version forever), not a 410 answer.
    let old = rvs[0].clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        pods.patch("p0", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {"t": format!("{:?}", std::time::Instant::now())}}})))
            .await
            .unwrap();
        let mut s = pods
            .watch(&WatchParams::default().timeout(1), &old)
            .await
            .expect("a watch is answered with a stream")
            .boxed();
        let expired = match s.next().await {
            Some(Ok(WatchEvent::Error(e))) => {
                assert_eq!(e.code, 410, "{e:?}");
                assert!(e.message.starts_with("too old resource version"), "{e:?}");
                assert!(s.next().await.is_none(), "the stream ends after the error");
                true
            }
            _ => false,
        };
        if expired {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no 410 after compaction"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_authenticate_and_nodes_write_only_their_own() {
    let server = Server::start(API_ONLY);
    let admin = server.client().await;
    // No token: 401. A wrong token: 401.
    let anonymous: Api<Pod> = Api::namespaced(server.client_with_token(None).await, "default");
    assert_eq!(
        code(anonymous.list(&ListParams::default()).await.unwrap_err()),
        401
    );
    let wrong: Api<Pod> = Api::namespaced(server.client_with_token(Some("nope")).await, "default");
    assert_eq!(
        code(wrong.list(&ListParams::default()).await.unwrap_err()),
        401
    );
    // Pods bound to n1 and n2.
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    for (name, node) in [("on-n1", "n1"), ("on-n2", "n2")] {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "a", "image": "x"}]}}))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    let n1 = server
        .client_with_token(Some(&server.node_token("n1")))
        .await;
    // It lists the pods bound to it, and only those (tests/security.rs has more).
    let n1_pods: Api<Pod> = Api::namespaced(n1.clone(), "default");
    let own = ListParams::default().fields("spec.nodeName=n1");
    assert_eq!(n1_pods.list(&own).await.unwrap().items.len(), 1);
    assert_eq!(
        code(n1_pods.list(&ListParams::default()).await.unwrap_err()),
        403
    );
    let running = Patch::Merge(json!({"status": {"phase": "Running"}}));
    let p = n1_pods
        .patch_status("on-n1", &PatchParams::default(), &running)
        .await
        .unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));
    let err = n1_pods
        .patch_status("on-n2", &PatchParams::default(), &running)
        .await
        .unwrap_err();
    assert_eq!(code(err), 403);
    // Spec writes and creates of pods are not a node's.
    let spec = Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}}));
    assert_eq!(
        code(
            n1_pods
                .patch("on-n1", &PatchParams::default(), &spec)
                .await
                .unwrap_err()
        ),
        403
    );
    // Its own Node yes, another's no.
    let nodes: Api<Node> = Api::all(n1.clone());
    let node = |name: &str| -> Node {
        serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
    };
    nodes
        .create(&PostParams::default(), &node("n1"))
        .await
        .unwrap();
    assert_eq!(
        code(
            nodes
                .create(&PostParams::default(), &node("n2"))
                .await
                .unwrap_err()
        ),
        403
    );
    // Deployments are out of reach.
    let deploys: Api<Deployment> = Api::namespaced(n1, "default");
    assert_eq!(
        code(
            deploys
                .delete("x", &DeleteParams::default())
                .await
                .unwrap_err()
        ),
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subresources_and_graceful_deletion() {
    let server = Server::start(API_ONLY);
    let client = server.client().await;
    let text = std::fs::read_to_string("examples/deployment.yaml").unwrap();
    let deploy = rk8s_api::manifest::load("d.yaml", &text)
        .unwrap()
        .remove(0)
        .object;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(deploy.to_value()).unwrap();
    let name = d.metadata.name.clone().unwrap();
    deploys.create(&PostParams::default(), &d).await.unwrap();
    // A status write leaves the spec alone; a spec write leaves the status alone.
    let status = Patch::Merge(
        json!({"spec": {"replicas": 9}, "status": {"replicas": 2, "readyReplicas": 1}}),
    );
    let after = deploys
        .patch_status(&name, &PatchParams::default(), &status)
        .await
        .unwrap();
    assert_eq!(after.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(after.status.as_ref().unwrap().ready_replicas, Some(1));
    let spec = Patch::Merge(json!({"spec": {"replicas": 3}, "status": {"replicas": 0}}));
    let after = deploys
        .patch(&name, &PatchParams::default(), &spec)
        .await
        .unwrap();
    assert_eq!(after.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(after.status.as_ref().unwrap().replicas, Some(2));
    assert_eq!(after.metadata.generation, Some(2));
    // Scale.
    let scale = deploys.get_scale(&name).await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));
    let scaled = deploys
        .patch_scale(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(5));
    assert_eq!(
        deploys.get(&name).await.unwrap().spec.unwrap().replicas,
        Some(5)
    );
    // Binding, once.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
        "spec": {"terminationGracePeriodSeconds": 20, "containers": [{"name": "a", "image": "x"}]}})).unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}});
    let bind = |body: serde_json::Value| {
        http::Request::post("/api/v1/namespaces/default/pods/p/binding")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap()
    };
    client
        .request::<serde_json::Value>(bind(binding.clone()))
        .await
        .unwrap();
    assert_eq!(
        pods.get("p")
            .await
            .unwrap()
            .spec
            .unwrap()
            .node_name
            .as_deref(),
        Some("n1")
    );
    assert_eq!(
        code(
            client
                .request::<serde_json::Value>(bind(binding))
                .await
                .unwrap_err()
        ),
        409
    );
    // A bound pod is deleted gracefully: marked, and gone when the node confirms.
    pods.delete("p", &DeleteParams::default()).await.unwrap();
    let marked = pods.get("p").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(20));
    pods.delete(
        "p",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(code(pods.get("p").await.unwrap_err()), 404);

    // With a finalizer, a confirmed pod waits for it; it goes with the last one.
    let mut held = pod.clone();
    held.metadata.name = Some("held".into());
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    pods.create(&PostParams::default(), &held).await.unwrap();
    pods.delete("held", &DeleteParams::default()).await.unwrap();
    let marked = pods.get("held").await.unwrap();
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(0));
    let release = json!({"metadata": {"finalizers": []}});
    pods.patch("held", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    assert_eq!(code(pods.get("held").await.unwrap_err()), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_serves_the_api_and_followers_forward_writes() {
    let first = Server::start(API_ONLY);
    let second = Server::join_with(&first, API_ONLY);
    let third = Server::join_with(&first, API_ONLY);
    let clients = [
        first.client().await,
        first.client_for(&second).await,
        first.client_for(&third).await,
    ];
    // Members that joined serve the API once they have caught up (same CA, same token).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for c in &clients[1..] {
        let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(c.clone());
        while ns.get("default").await.is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "a member never served the API"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // A write through each member is read back through every other.
    for (i, c) in clients.iter().enumerate() {
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": format!("via-{i}")},
            "spec": {"containers": [{"name": "a", "image": "x"}]}}))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        for other in &clients {
            let pods: Api<Pod> = Api::namespaced(other.clone(), "default");
            pods.get(&format!("via-{i}")).await.unwrap();
        }
    }
}

#[test]
fn kubectl_works_against_rk8s() {
    let server = Server::start(API_ONLY);
    let run = |args: &[&str]| {
        let (ok, out) = server.kubectl(args);
        assert!(ok, "kubectl {args:?} failed:\n{out}");
        out
    };
    assert!(run(&["version"]).contains("Server Version: v1.33"));
    let out = run(&["apply", "-f", "examples/deployment.yaml"]);
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let out = run(&["apply", "-f", "examples/deployment.yaml"]);
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");
    run(&["create", "-f", "examples/pod.yaml"]);
    let node = server.dir.path().join("node.yaml");
    std::fs::write(&node, "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n").unwrap();
    run(&["create", "-f", node.to_str().unwrap()]);
    // `get -w` streams changes for pods, deployments and nodes.
    let watchers: Vec<_> = ["pods", "deployments", "nodes"]
        .iter()
        .map(|kind| {
            server
                .kubectl_command()
                .args(["get", kind, "-w", "--request-timeout=8s", "-o", "name"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let out = run(&["scale", "deployment/web", "--replicas=4"]);
    assert!(out.contains("deployment.apps/web scaled"), "{out}");
    run(&["label", "node", "n1", "zone=a"]);
    run(&["annotate", "pod", "--all", "seen=yes"]);
    let out = run(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(out.trim(), "4");
    let out = run(&["get", "pods"]);
    assert!(
        out.contains("NAME") && out.contains("STATUS") && out.contains("web-with-writer"),
        "{out}"
    );
    run(&["delete", "-f", "examples/pod.yaml"]);
    run(&["delete", "node", "n1"]);
    let mut outputs = Vec::new();
    for w in watchers {
        let out = w.wait_with_output().unwrap();
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    // Each watch saw the initial object and at least one change to it.
    assert!(
        outputs[0].matches("pod/web-with-writer").count() >= 2,
        "{}",
        outputs[0]
    );
    assert!(
        outputs[1].matches("deployment.apps/web").count() >= 2,
        "{}",
        outputs[1]
    );
    assert!(outputs[2].matches("node/n1").count() >= 2, "{}", outputs[2]);
    let (ok, out) = server.kubectl(&["get", "node", "n1"]);
    assert!(!ok && out.contains("NotFound"), "{out}");
}

/// ClusterIPs and node ports: given from the ranges of the server's flags, never to
/// two Services, kept through a PUT that leaves them out, released on delete (also
/// when the namespace goes in one sweep).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_get_addresses_and_node_ports_nobody_else_has() {
    use k8s_openapi::api::core::v1::{Namespace, Service};
    let mut args = API_ONLY.to_vec();
    args.extend([
        "--service-cluster-ip-range",
        "10.96.0.0/29",
        "--service-node-port-range",
        "40000-40001",
    ]);
    let server = Server::start(&args);
    let client = server.client().await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc = |name: &str, spec: serde_json::Value| -> Service {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name}, "spec": spec}))
        .unwrap()
    };
    let ports = json!([{"name": "http", "port": 80}]);
    let pp = PostParams::default();
    let ip_of = |s: &Service| s.spec.as_ref().unwrap().cluster_ip.clone().unwrap();
    // The first address is the `kubernetes` Service's, as in Kubernetes.
    let kubernetes = support::node::eventually("the kubernetes Service", async || {
        services.get_opt("kubernetes").await.ok()?
    })
    .await;
    assert_eq!(ip_of(&kubernetes), "10.96.0.1");
    // Its EndpointSlice, which the nodes' Service proxy reads, lists the API server.
    let slices: Api<k8s_openapi::api::discovery::v1::EndpointSlice> =
        Api::namespaced(client.clone(), "default");
    let slice = support::node::eventually("the kubernetes EndpointSlice", async || {
        slices.get_opt("kubernetes").await.ok()?
    })
    .await;
    assert_eq!(
        slice.metadata.labels.unwrap()["kubernetes.io/service-name"],
        "kubernetes"
    );
    assert_eq!(slice.endpoints.len(), 1);
    let port = &slice.ports.unwrap()[0];
    assert_eq!(port.name.as_deref(), Some("https"));
    let a = services
        .create(&pp, &svc("a", json!({"ports": ports})))
        .await
        .unwrap();
    let b = services
        .create(&pp, &svc("b", json!({"ports": ports})))
        .await
        .unwrap();
    assert_eq!(
        (ip_of(&a).as_str(), ip_of(&b).as_str()),
        ("10.96.0.2", "10.96.0.3")
    );
    // Taken, outside the range, and a full range: 422 and 500 naming why.
    let taken = services
        .create(
            &pp,
            &svc("c", json!({"clusterIP": "10.96.0.1", "ports": ports})),
        )
        .await
        .unwrap_err();
    assert_eq!(code(taken), 422);
    let outside = services
        .create(
            &pp,
            &svc("c", json!({"clusterIP": "10.0.0.1", "ports": ports})),
        )
        .await
        .unwrap_err();
    assert!(
        outside.to_string().contains("not in the valid range"),
        "{outside}"
    );
    for name in ["c", "d", "e"] {
        services
            .create(&pp, &svc(name, json!({"ports": ports})))
            .await
            .unwrap();
    }
    let full = services
        .create(&pp, &svc("f", json!({"ports": ports})))
        .await
        .unwrap_err();
    assert!(full.to_string().contains("is full"), "{full}");
    // Node ports: from the server's range only (not Kubernetes' default one), one
    // each, per protocol, and a PUT without them keeps them.
    let outside = json!({"type": "NodePort", "clusterIP": "None",
        "ports": [{"name": "http", "port": 80, "nodePort": 30000}]});
    let outside = services.create(&pp, &svc("n0", outside)).await.unwrap_err();
    assert!(
        outside
            .to_string()
            .contains("The range of valid ports is 40000-40001"),
        "{outside}"
    );
    let np = json!({"type": "NodePort", "clusterIP": "None",
        "ports": [{"name": "http", "port": 80}]});
    let n1 = services.create(&pp, &svc("n1", np.clone())).await.unwrap();
    let first = n1.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].node_port;
    assert_eq!(first, Some(40000));
    let mut put = svc("n1", np.clone());
    put.metadata.resource_version = n1.metadata.resource_version.clone();
    let kept = services.replace("n1", &pp, &put).await.unwrap();
    assert_eq!(kept.spec.unwrap().ports.unwrap()[0].node_port, Some(40000));
    services.create(&pp, &svc("n2", np.clone())).await.unwrap();
    assert_eq!(
        code(services.create(&pp, &svc("n3", np)).await.unwrap_err()),
        500
    );
    // Deleting a releases 10.96.0.2: a new Service may have it.
    services
        .delete("a", &DeleteParams::default())
        .await
        .unwrap();
    let again = services
        .create(
            &pp,
            &svc("again", json!({"clusterIP": "10.96.0.2", "ports": ports})),
        )
        .await
        .unwrap();
    assert_eq!(ip_of(&again), "10.96.0.2");
    // A namespace's Services go with it (the namespace controller): their addresses too.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "gone"}})).unwrap();
    namespaces.create(&pp, &ns).await.unwrap();
    services
        .delete("b", &DeleteParams::default())
        .await
        .unwrap();
    let in_gone: Api<Service> = Api::namespaced(client.clone(), "gone");
    let g = in_gone
        .create(&pp, &svc("g", json!({"ports": ports})))
        .await
        .unwrap();
    assert_eq!(ip_of(&g), "10.96.0.3");
    namespaces
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
    support::apiserver::wait_gone(&namespaces, "gone").await;
    let h = services
        .create(&pp, &svc("h", json!({"ports": ports})))
        .await
        .unwrap();
    assert_eq!(ip_of(&h), "10.96.0.3");
}

/// `POST PATH` of `body` with `token`: the answer, or the status code and message.
async fn post_as<T: serde::de::DeserializeOwned>(
    server: &Server,
    token: &str,
    path: &str,
    body: serde_json::Value,
) -> Result<T, (u16, String)> {
    let client = server.client_with_token(Some(token)).await;
    let request = http::Request::post(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    client.request(request).await.map_err(|e| match e {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("{other}"),
    })
}

/// `POST /rk8s/v1/members` with `token` for a member at `peer_address`.
async fn ask_for_member_cert(
    server: &Server,
    token: &str,
    peer_address: &str,
) -> Result<rk8s_apiserver::bootstrap::members::JoinResponse, (u16, String)> {
    let body = json!({ "peerAddress": peer_address });
    post_as(server, token, "/rk8s/v1/members", body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_tokens_give_one_member_certificate() {
    let server = Server::start(API_ONLY);
    let token = &server.member_token();
    // A node bootstrap token or the admin gets no member certificate.
    let (node_token, _) = support::node::bootstrap_token(&server);
    let admin_token = std::fs::read_to_string(server.data_dir().join("pki/admin.token")).unwrap();
    for other in [node_token.as_str(), admin_token.trim()] {
        let (status, message) = ask_for_member_cert(&server, other, "127.0.0.1:2390")
            .await
            .unwrap_err();
        assert_eq!(status, 403, "{message}");
        assert!(
            message.contains("only member bootstrap tokens"),
            "{message}"
        );
    }
    // A bad peer address: 400, naming the field; the token is still good.
    let (status, message) = ask_for_member_cert(&server, token, "0.0.0.0:2390")
        .await
        .unwrap_err();
    assert_eq!(
        (status, message.contains("peerAddress")),
        (400, true),
        "{message}"
    );
    let joined = ask_for_member_cert(&server, token, "127.0.0.1:2390")
        .await
        .unwrap();
    assert_eq!(joined.join, server.peer);
    let own = rk8s_apiserver::bootstrap::members::MemberCerts::load(&server.data_dir())
        .unwrap()
        .unwrap();
    assert_eq!(joined.certs.member_ca, own.member_ca);
    // The certificate opens the store port.
    let tls = joined.certs.tls().unwrap();
    let store = rk8s_raftstore::client::StoreClient::connect_with(&server.peer, Some(&tls.client))
        .await
        .unwrap();
    assert!(store.status().await.is_ok());
    // Once only.
    let (status, message) = ask_for_member_cert(&server, token, "127.0.0.1:2391")
        .await
        .unwrap_err();
    assert_eq!(status, 401, "{message}");
    assert!(
        message.contains("already used (by member 127.0.0.1:2390)"),
        "{message}"
    );
    // A member token does not join nodes.
    let token = server.member_token();
    let body = json!({"nodeName": "n1"});
    let (status, _) = post_as::<serde_json::Value>(&server, &token, "/rk8s/v1/join", body)
        .await
        .unwrap_err();
    assert_eq!(status, 403);
}

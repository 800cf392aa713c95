//! Admission against a real `rk8s-server`, driven by the Debian `kubectl`: admission
//! webhooks served over HTTPS by this test (a validating one that refuses pods
//! labelled `deny=yes` in kube-apiserver's words, a mutating one that labels pods of
//! the namespaces its selector picks and warns), `failurePolicy` Fail and Ignore on a
//! webhook that does not answer, dry runs; the Priority plugin (a class's priority, a
//! missing class refused, one global default) and DefaultStorageClass (a claim without
//! a class gets `local-path`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use support::apiserver::{Server, write_manifest};

/// The API alone: no scheduler or controller writes to these objects.
const API_ONLY: &[&str] = &["--disable-scheduler", "--disable-controllers"];

fn pod(ns: &str, name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

/// The webhook server this test runs: the AdmissionReview requests it got.
type Seen = Arc<Mutex<Vec<Value>>>;

/// The review of `/flaky` it refuses: the tenth.
const FLAKY_REFUSES: usize = 9;

/// The answer to one review: `/validate` refuses objects labelled `deny=yes` (as
/// controller-runtime's `Denied` words it: 403, reason Forbidden),
/// `/mutate` adds the label `mutated=by-webhook` and a warning, `/flaky` refuses
/// its tenth review alone (`before`: the reviews of its path it answered before).
fn answer(path: &str, review: &Value, before: usize) -> Value {
    let request = &review["request"];
    let uid = request["uid"].clone();
    // A delete's object is the old one.
    let object = match &request["object"] {
        Value::Null => &request["oldObject"],
        o => o,
    };
    let labels = &object["metadata"]["labels"];
    let response = match path {
        "/validate" if labels["deny"] == "yes" => json!({"uid": uid, "allowed": false,
            "status": {"code": 403, "reason": "Forbidden",
                "message": "pods labelled deny=yes are not allowed"}}),
        "/flaky" if before == FLAKY_REFUSES => json!({"uid": uid, "allowed": false,
            "status": {"code": 500, "message": "the flaky webhook failed once"}}),
        "/mutate" => {
            let patch = json!([{"op": "add", "path": "/metadata/labels/mutated",
                "value": "by-webhook"}]);
            let patch = base64::engine::general_purpose::STANDARD
                .encode(serde_json::to_vec(&patch).unwrap());
            json!({"uid": uid, "allowed": true, "patch": patch, "patchType": "JSONPatch",
                "warnings": ["mutated by the test webhook"]})
        }
        _ => json!({"uid": uid, "allowed": true}),
    };
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

/// Serves HTTPS on a free loopback port with a certificate of a fresh CA: the port,
/// the CA's PEM, what it saw. Stops with the test's runtime.
async fn webhook_server() -> (u16, String, Seen) {
    let ca = rk8s_apiserver::bootstrap::pki::ClusterCa::generate().unwrap();
    let (cert, key) = ca.issue_server(&["127.0.0.1".to_string()]).unwrap();
    let tls = rk8s_http::tls::server_config(&cert, &key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, record) = (acceptor.clone(), record.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let record = record.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let body = req.into_body().collect().await?.to_bytes();
                            let review: Value = serde_json::from_slice(&body).unwrap_or_default();
                            let before = {
                                let mut seen = record.lock().unwrap();
                                let before = seen.iter().filter(|r| r["path"] == path).count();
                                seen.push(json!({"path": path, "review": review}));
                                before
                            };
                            let reply =
                                serde_json::to_vec(&answer(&path, &review, before)).unwrap();
                            Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::from(
                                reply,
                            ))))
                        }
                    });
                let io = hyper_util::rt::TokioIo::new(tls);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (port, ca.cert_pem.clone(), seen)
}

fn webhook(name: &str, url: &str, ca: &str, extra: Value) -> Value {
    let mut hook = json!({
        "name": name,
        "clientConfig": {"url": url,
            "caBundle": base64::engine::general_purpose::STANDARD.encode(ca)},
        "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""],
            "apiVersions": ["v1"], "resources": ["pods"]}],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 5,
    });
    for (k, v) in extra.as_object().unwrap() {
        hook[k] = v.clone();
    }
    hook
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_refuse_and_mutate_in_kube_apiservers_words() {
    let server = Server::start(API_ONLY);
    let dir = tempfile::tempdir().unwrap();
    let (port, ca, seen) = webhook_server().await;
    let base = format!("https://127.0.0.1:{port}");
    server.kubectl_ok(&["create", "namespace", "hooked"]);
    server.kubectl_ok(&["label", "namespace", "hooked", "webhooks=on"]);
    server.kubectl_ok(&["create", "namespace", "plain"]);
    let validating = json!({"apiVersion": "admissionregistration.k8s.io/v1",
    "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "deny"},
    "webhooks": [
        webhook("deny.rk8s.test", &format!("{base}/validate"), &ca, json!({})),
        webhook("keep.rk8s.test", &format!("{base}/validate"), &ca, json!({"rules": [
            {"operations": ["DELETE"], "apiGroups": [""], "apiVersions": ["v1"],
             "resources": ["namespaces"]}]})),
    ]});
    let mutating = json!({"apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration", "metadata": {"name": "label"},
        "webhooks": [webhook("label.rk8s.test", &format!("{base}/mutate"), &ca,
            json!({"namespaceSelector": {"matchLabels": {"webhooks": "on"}}}))]});
    for (name, obj) in [("v.json", &validating), ("m.json", &mutating)] {
        server.kubectl_ok(&["apply", "-f", &write_manifest(dir.path(), name, obj)]);
    }

    // The configurations are read from the server's in-memory copy: wait for both.
    let denied = write_manifest(
        dir.path(),
        "denied.json",
        &pod("hooked", "bad", json!({"deny": "yes"})),
    );
    let refusal = support::node::eventually("the validating webhook in effect", async || {
        let (ok, out) = server.kubectl(&["create", "-f", &denied]);
        if ok {
            server.kubectl_ok(&["delete", "pod", "bad", "-n", "hooked", "--wait=false"]);
            return None;
        }
        Some(out)
    })
    .await;
    assert!(
        refusal.contains(
            "admission webhook \"deny.rk8s.test\" denied the request: pods labelled deny=yes are not allowed"
        ),
        "{refusal}"
    );
    assert!(refusal.contains("(Forbidden)"), "{refusal}");

    let good = write_manifest(
        dir.path(),
        "good.json",
        &pod("hooked", "good", json!({"app": "web"})),
    );
    let created: Value = support::node::eventually("the mutating webhook in effect", async || {
        let (ok, out) = server.kubectl(&["create", "-f", &good, "-o", "json"]);
        assert!(ok, "{out}");
        // The object, then the warning kubectl printed on stderr.
        let start = out.find('{').unwrap();
        let mut values = serde_json::Deserializer::from_str(&out[start..]).into_iter::<Value>();
        let created = values.next().unwrap().unwrap();
        if created["metadata"]["labels"]["mutated"] == "by-webhook" {
            assert!(
                out.contains("Warning: mutated by the test webhook"),
                "{out}"
            );
            return Some(created);
        }
        server.kubectl_ok(&["delete", "pod", "good", "-n", "hooked", "--wait=false"]);
        None
    })
    .await;
    assert_eq!(created["metadata"]["labels"]["app"], "web");

    // The namespace selector: a namespace without the label is not mutated.
    let other = write_manifest(
        dir.path(),
        "other.json",
        &pod("plain", "other", json!({"app": "web"})),
    );
    let out = server.kubectl_ok(&["create", "-f", &other, "-o", "json"]);
    let other: Value = serde_json::from_str(&out).unwrap();
    assert!(other["metadata"]["labels"]["mutated"].is_null(), "{other}");

    // Updates reach the validating webhook too.
    let (ok, out) = server.kubectl(&["label", "pod", "good", "-n", "hooked", "deny=yes"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("denied the request: pods labelled deny=yes"),
        "{out}"
    );

    // A namespace's delete reaches the validating webhooks.
    server.kubectl_ok(&["create", "namespace", "kept"]);
    server.kubectl_ok(&["label", "namespace", "kept", "deny=yes"]);
    let (ok, out) = server.kubectl(&["delete", "namespace", "kept"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("admission webhook \"keep.rk8s.test\" denied the request"),
        "{out}"
    );

    // A dry run reaches webhooks without side effects, and says it is one.
    let dry = write_manifest(
        dir.path(),
        "dry.json",
        &pod("hooked", "dry", json!({"app": "dry"})),
    );
    server.kubectl_ok(&["create", "-f", &dry, "--dry-run=server"]);
    let reviews = seen.lock().unwrap().clone();
    let dry_seen = reviews
        .iter()
        .filter(|r| r["review"]["request"]["name"] == "dry")
        .collect::<Vec<_>>();
    assert_eq!(dry_seen.len(), 2, "{reviews:#?}");
    assert!(
        dry_seen
            .iter()
            .all(|r| r["review"]["request"]["dryRun"] == true)
    );
    let update = reviews
        .iter()
        .find(|r| r["review"]["request"]["operation"] == "UPDATE")
        .expect("an UPDATE review");
    let request = &update["review"]["request"];
    assert_eq!(
        request["kind"],
        json!({"group": "", "version": "v1", "kind": "Pod"})
    );
    assert_eq!(request["namespace"], "hooked");
    assert_eq!(request["oldObject"]["metadata"]["name"], "good");
    assert!(request["userInfo"]["username"].is_string(), "{request}");
}

/// A ReplicaSet of 30 whose tenth pod creation fails once (a webhook that fails one
/// request) makes 30 pods with 30 creations allowed and deletes none. After the
/// failure its actor waits to see the pods its batch made and no others: one it
/// still waited for (the refused one, the batches never tried) would hold it for
/// the 5 minutes expectations are trusted, one it forgot would be made twice on a
/// view that lags (the actor used to forget them all; on an idle server its view has
/// caught up by then, so that old fault shows under load, not here: the unit tests
/// of `Expectations::carried_out` cover it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicaset_refused_one_pod_makes_each_of_the_others_once() {
    let server = Server::start(&["--disable-scheduler"]);
    let dir = tempfile::tempdir().unwrap();
    let (port, ca, seen) = webhook_server().await;
    let base = format!("https://127.0.0.1:{port}");
    server.kubectl_ok(&["create", "namespace", "flaky"]);
    let only = |labels: Value| {
        json!({"objectSelector": {"matchLabels": labels},
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
            "resources": ["pods"]}]})
    };
    let config = json!({"apiVersion": "admissionregistration.k8s.io/v1",
    "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "flaky"},
    "webhooks": [
        webhook("probe.rk8s.test", &format!("{base}/validate"), &ca,
            only(json!({"deny": "yes"}))),
        webhook("flaky.rk8s.test", &format!("{base}/flaky"), &ca,
            only(json!({"app": "flaky"}))),
    ]});
    server.kubectl_ok(&[
        "apply",
        "-f",
        &write_manifest(dir.path(), "v.json", &config),
    ]);
    let probe = write_manifest(
        dir.path(),
        "probe.json",
        &pod("flaky", "probe", json!({"deny": "yes"})),
    );
    support::node::eventually("the webhooks in effect", async || {
        let (ok, _) = server.kubectl(&["create", "-f", &probe]);
        if ok {
            server.kubectl_ok(&["delete", "pod", "probe", "-n", "flaky", "--wait=false"]);
        }
        (!ok).then_some(())
    })
    .await;

    let rs = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "flaky", "namespace": "flaky"},
        "spec": {
            "replicas": 30,
            "selector": {"matchLabels": {"app": "flaky"}},
            "template": {
                "metadata": {"labels": {"app": "flaky"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    });
    server.kubectl_ok(&["create", "-f", &write_manifest(dir.path(), "rs.json", &rs)]);
    let count = || {
        let out = server.kubectl_ok(&[
            "get",
            "pods",
            "-n",
            "flaky",
            "-l",
            "app=flaky",
            "-o",
            "name",
        ]);
        out.lines().count()
    };
    support::node::eventually("30 pods", async || (count() == 30).then_some(())).await;
    // Time for a surplus made from a stale view to be made, and deleted again.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(count(), 30);
    let reviews = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/flaky")
        .count();
    assert!(
        reviews > FLAKY_REFUSES,
        "the refusal never came: {reviews} reviews"
    );
    assert_eq!(reviews, 31, "30 pods made with one refusal, each pod once");
    let events = server.kubectl_ok(&["get", "events", "-n", "flaky"]);
    assert!(events.contains("the flaky webhook failed once"), "{events}");
    assert!(!events.contains("SuccessfulDelete"), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_does_not_answer_fails_or_is_ignored_by_policy() {
    let server = Server::start(API_ONLY);
    let dir = tempfile::tempdir().unwrap();
    let (_, ca, _) = webhook_server().await;
    // A port nothing listens on.
    let closed = support::apiserver::free_port();
    let url = format!("https://127.0.0.1:{closed}/down");
    let config = |policy: &str| {
        let mut hook = webhook(
            "down.rk8s.test",
            &url,
            &ca,
            json!({"failurePolicy": policy}),
        );
        hook["rules"][0]["resources"] = json!(["configmaps"]);
        json!({"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "down"},
            "webhooks": [hook]})
    };
    server.kubectl_ok(&[
        "apply",
        "-f",
        &write_manifest(dir.path(), "fail.json", &config("Fail")),
    ]);
    let out = support::node::eventually("the failing webhook in effect", async || {
        let (ok, out) = server.kubectl(&["create", "configmap", "c1", "--from-literal=a=b"]);
        if ok {
            server.kubectl_ok(&["delete", "configmap", "c1"]);
            return None;
        }
        Some(out)
    })
    .await;
    let expected = format!(
        "Internal error occurred: failed calling webhook \"down.rk8s.test\": failed to call webhook: Post \"https://127.0.0.1:{closed}/down?timeout=5s\""
    );
    assert!(out.contains(&expected), "{out}");

    server.kubectl_ok(&[
        "apply",
        "-f",
        &write_manifest(dir.path(), "ignore.json", &config("Ignore")),
    ]);
    support::node::eventually("the ignored webhook", async || {
        let (ok, _) = server.kubectl(&["create", "configmap", "c2", "--from-literal=a=b"]);
        ok.then_some(())
    })
    .await;
}

#[tokio::test]
async fn priority_classes_and_the_default_storage_class_fill_in_new_objects() {
    let server = Server::start(API_ONLY);
    let dir = tempfile::tempdir().unwrap();
    let out = server.kubectl_ok(&["get", "priorityclass", "-o", "name"]);
    assert!(
        out.contains("priorityclass.scheduling.k8s.io/system-node-critical"),
        "{out}"
    );
    assert!(
        out.contains("priorityclass.scheduling.k8s.io/system-cluster-critical"),
        "{out}"
    );
    let class = |name: &str, value: i64, default: bool| {
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "globalDefault": default,
            "preemptionPolicy": "Never"})
    };
    server.kubectl_ok(&[
        "apply",
        "-f",
        &write_manifest(dir.path(), "high.json", &class("high", 1000, true)),
    ]);

    let mut ranked = pod("default", "ranked", json!({}));
    ranked["spec"]["priorityClassName"] = json!("high");
    let ranked = write_manifest(dir.path(), "ranked.json", &ranked);
    let created: Value = support::node::eventually("the PriorityClass in effect", async || {
        let (ok, out) = server.kubectl(&["create", "-f", &ranked, "-o", "json"]);
        ok.then(|| serde_json::from_str(&out).unwrap())
    })
    .await;
    assert_eq!(created["spec"]["priority"], 1000);
    assert_eq!(created["spec"]["preemptionPolicy"], "Never");
    // The global default for a pod that names no class.
    let plain = write_manifest(
        dir.path(),
        "plain.json",
        &pod("default", "plain", json!({})),
    );
    let out = server.kubectl_ok(&["create", "-f", &plain, "-o", "json"]);
    let plain: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plain["spec"]["priorityClassName"], "high");
    assert_eq!(plain["spec"]["priority"], 1000);

    let mut missing = pod("default", "missing", json!({}));
    missing["spec"]["priorityClassName"] = json!("gold");
    let missing = write_manifest(dir.path(), "missing.json", &missing);
    let (ok, out) = server.kubectl(&["create", "-f", &missing]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("pods \"missing\" is forbidden: no PriorityClass with name gold was found"),
        "{out}"
    );
    let second = write_manifest(dir.path(), "second.json", &class("second", 5, true));
    let (ok, out) = server.kubectl(&["create", "-f", &second]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("PriorityClass high is already marked as default. Only one default can exist"),
        "{out}"
    );

    let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    let claim = write_manifest(dir.path(), "claim.json", &claim);
    let out = server.kubectl_ok(&["create", "-f", &claim, "-o", "json"]);
    let claim: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(claim["spec"]["storageClassName"], "local-path");
}

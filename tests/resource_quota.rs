//! ResourceQuota against a real `rk8s-server` (controllers on, no scheduler or node:
//! pods stay Pending), driven by the Debian `kubectl`: the quota controller fills in a
//! new quota's status; admission charges each create, refuses the pod over the quota
//! in kube-apiserver's words, and refuses a pod without the limits a quota needs; a
//! deletion is given back by the controller; `count/configmaps` limits ConfigMaps; a
//! ReplicaSet over its quota creates in slow-start batches and stops at a refusal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::apiserver::{Server, write_manifest};

/// Controllers, no scheduler: nothing runs the pods.
const NO_SCHEDULER: &[&str] = &["--disable-scheduler"];

fn pod(ns: &str, name: &str, resources: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": "app", "image": "busybox", "resources": resources}]},
    })
}

fn quota(ns: &str, name: &str, hard: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"hard": hard},
    })
}

/// The quota's `status.used` as `kubectl get -o json` shows it.
fn used(server: &Server, ns: &str, name: &str) -> Value {
    let out = server.kubectl_ok(&["get", "resourcequota", name, "-n", ns, "-o", "json"]);
    let q: Value = serde_json::from_str(&out).unwrap();
    q["status"]["used"].clone()
}

/// Waits until the quota's `status.used` is `want`.
fn wait_used(server: &Server, ns: &str, name: &str, want: &Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = used(server, ns, name);
        if &now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "quota {ns}/{name}: used stayed {now}, expected {want}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Makes `ns` and waits for its `default` ServiceAccount (pods need it).
fn namespace(server: &Server, ns: &str) {
    server.kubectl_ok(&["create", "namespace", ns]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server
        .kubectl(&["get", "serviceaccount", "default", "-n", ns])
        .0
        || !server
            .kubectl(&["get", "configmap", "kube-root-ca.crt", "-n", ns])
            .0
    {
        assert!(
            Instant::now() < deadline,
            "namespace {ns} got no default account"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_pod_over_quota_is_refused_in_kubes_words_and_used_follows_creates_and_deletes() {
    let server = Server::start(NO_SCHEDULER);
    let dir = tempfile::tempdir().unwrap();
    namespace(&server, "team");
    let file = write_manifest(
        dir.path(),
        "quota.json",
        &quota("team", "compute", json!({"pods": "2", "requests.cpu": "1"})),
    );
    server.kubectl_ok(&["create", "-f", &file]);
    // The controller's first count, within a second or two.
    wait_used(
        &server,
        "team",
        "compute",
        &json!({"pods": "0", "requests.cpu": "0"}),
    );

    let small = json!({"requests": {"cpu": "250m"}});
    for name in ["a", "b"] {
        let file = write_manifest(
            dir.path(),
            &format!("{name}.json"),
            &pod("team", name, small.clone()),
        );
        server.kubectl_ok(&["create", "-f", &file]);
    }
    // Charged by admission, before any count.
    assert_eq!(
        used(&server, "team", "compute"),
        json!({"pods": "2", "requests.cpu": "500m"})
    );
    let yaml = server.kubectl_ok(&[
        "get",
        "resourcequota",
        "compute",
        "-n",
        "team",
        "-o",
        "yaml",
    ]);
    assert!(
        yaml.contains("used:\n    pods: \"2\"\n    requests.cpu: 500m"),
        "{yaml}"
    );

    let file = write_manifest(dir.path(), "c.json", &pod("team", "c", small.clone()));
    let (ok, out) = server.kubectl(&["create", "-f", &file]);
    assert!(!ok, "the third pod was admitted:\n{out}");
    let expected = format!(
        "Error from server (Forbidden): error when creating {file:?}: pods \"c\" is forbidden: \
         exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2"
    );
    assert!(out.contains(&expected), "expected\n{expected}\ngot\n{out}");
    assert!(
        !server.kubectl(&["get", "pod", "c", "-n", "team"]).0,
        "the refused pod was stored"
    );

    // A deletion is given back by the controller.
    server.kubectl_ok(&["delete", "pod", "a", "-n", "team", "--wait=false"]);
    wait_used(
        &server,
        "team",
        "compute",
        &json!({"pods": "1", "requests.cpu": "250m"}),
    );
    let big = write_manifest(
        dir.path(),
        "big.json",
        &pod("team", "big", json!({"requests": {"cpu": "1"}})),
    );
    let (ok, out) = server.kubectl(&["create", "-f", &big]);
    assert!(!ok, "the pod over the cpu quota was admitted:\n{out}");
    assert!(
        out.contains(
            "pods \"big\" is forbidden: exceeded quota: compute, requested: requests.cpu=1, \
             used: requests.cpu=250m, limited: requests.cpu=1"
        ),
        "{out}"
    );
    // A dry run is checked but not charged.
    server.kubectl_ok(&["create", "-f", &file, "--dry-run=server"]);
    assert_eq!(
        used(&server, "team", "compute"),
        json!({"pods": "1", "requests.cpu": "250m"})
    );
    server.kubectl_ok(&["delete", "namespace", "team", "--wait=false"]);
}

#[test]
fn a_limits_quota_needs_limits_and_object_counts_limit_configmaps() {
    let server = Server::start(NO_SCHEDULER);
    let dir = tempfile::tempdir().unwrap();
    namespace(&server, "objs");
    let file = write_manifest(
        dir.path(),
        "mem.json",
        &quota("objs", "mem", json!({"limits.memory": "1Gi"})),
    );
    server.kubectl_ok(&["create", "-f", &file]);
    wait_used(&server, "objs", "mem", &json!({"limits.memory": "0"}));
    let file = write_manifest(dir.path(), "bare.json", &pod("objs", "bare", json!({})));
    let (ok, out) = server.kubectl(&["create", "-f", &file]);
    assert!(!ok, "a pod without limits was admitted:\n{out}");
    assert!(
        out.contains(
            "pods \"bare\" is forbidden: failed quota: mem: must specify limits.memory for: app"
        ),
        "{out}"
    );

    // kube-root-ca.crt is one ConfigMap already.
    let file = write_manifest(
        dir.path(),
        "objects.json",
        &quota("objs", "objects", json!({"count/configmaps": "2"})),
    );
    server.kubectl_ok(&["create", "-f", &file]);
    wait_used(
        &server,
        "objs",
        "objects",
        &json!({"count/configmaps": "1"}),
    );
    server.kubectl_ok(&["create", "configmap", "one", "-n", "objs"]);
    assert_eq!(
        used(&server, "objs", "objects"),
        json!({"count/configmaps": "2"})
    );
    let (ok, out) = server.kubectl(&["create", "configmap", "two", "-n", "objs"]);
    assert!(!ok, "the ConfigMap over quota was admitted:\n{out}");
    assert!(
        out.contains(
            "configmaps \"two\" is forbidden: exceeded quota: objects, \
             requested: count/configmaps=1, used: count/configmaps=2, limited: count/configmaps=2"
        ),
        "{out}"
    );
    server.kubectl_ok(&["delete", "namespace", "objs", "--wait=false"]);
}

/// The controller passes over namespaces without a quota; the first quota of a
/// namespace starts following what its objects made before it cost, so that a later
/// change of one is counted: a NodePort Service made before the quota that becomes a
/// ClusterIP gives its node port back (admission only charges increases; decreases
/// are the controller's).
#[test]
fn a_quota_made_after_its_objects_follows_their_changes() {
    let server = Server::start(NO_SCHEDULER);
    let dir = tempfile::tempdir().unwrap();
    namespace(&server, "late");
    server.kubectl_ok(&[
        "create", "service", "nodeport", "web", "--tcp=80", "-n", "late",
    ]);
    let file = write_manifest(
        dir.path(),
        "ports.json",
        &quota("late", "ports", json!({"services.nodeports": "2"})),
    );
    server.kubectl_ok(&["create", "-f", &file]);
    wait_used(
        &server,
        "late",
        "ports",
        &json!({"services.nodeports": "1"}),
    );
    let cluster_ip = r#"{"spec":{"type":"ClusterIP","ports":[{"name":"80","port":80,"protocol":"TCP","targetPort":80}]}}"#;
    server.kubectl_ok(&[
        "patch",
        "service",
        "web",
        "-n",
        "late",
        "--type=merge",
        "-p",
        cluster_ip,
    ]);
    wait_used(
        &server,
        "late",
        "ports",
        &json!({"services.nodeports": "0"}),
    );
    // Its last quota gone, the namespace is passed over again; a new one counts it.
    server.kubectl_ok(&["delete", "resourcequota", "ports", "-n", "late"]);
    server.kubectl_ok(&[
        "create", "service", "nodeport", "api", "--tcp=81", "-n", "late",
    ]);
    server.kubectl_ok(&["create", "-f", &file]);
    wait_used(
        &server,
        "late",
        "ports",
        &json!({"services.nodeports": "1"}),
    );
    server.kubectl_ok(&["delete", "namespace", "late", "--wait=false"]);
}

/// How many pod creates the server has refused with 403 (its request counter).
fn refused_pod_creates(server: &Server) -> f64 {
    let text = server.kubectl_ok(&["get", "--raw", "/metrics"]);
    let series =
        r#"apiserver_request_total{code="403",resource="pods",subresource="",verb="create"}"#;
    support::apiserver::metric_sample(&text, series)
}

/// A ReplicaSet of 20 in a namespace whose quota holds 3 pods creates as
/// kube-controller-manager does (batches of 1, 2, 4, …, stopping at the first batch
/// with a refusal): its first pass makes 3 pods and has 4 refused, not 17, and the
/// passes the pods' and its own changes bring try one more each; it does not try
/// again at once because the refusal named another pod (it did, thousands of times
/// in the 2 s this test waits).
#[test]
fn a_replicaset_over_its_quota_stops_at_the_first_refused_batch() {
    let server = Server::start(NO_SCHEDULER);
    let dir = tempfile::tempdir().unwrap();
    namespace(&server, "batch");
    let file = write_manifest(
        dir.path(),
        "quota.json",
        &quota("batch", "three", json!({"pods": "3"})),
    );
    server.kubectl_ok(&["create", "-f", &file]);
    wait_used(&server, "batch", "three", &json!({"pods": "0"}));
    let before = refused_pod_creates(&server);
    let rs = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "wide", "namespace": "batch"},
        "spec": {
            "replicas": 20,
            "selector": {"matchLabels": {"app": "wide"}},
            "template": {
                "metadata": {"labels": {"app": "wide"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    });
    let file = write_manifest(dir.path(), "rs.json", &rs);
    server.kubectl_ok(&["create", "-f", &file]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = server.kubectl_ok(&["get", "replicaset", "wide", "-n", "batch", "-o", "json"]);
        let status: Value = serde_json::from_str(&status).unwrap();
        let failed = status["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "ReplicaFailure" && c["reason"] == "FailedCreate");
        if failed {
            break;
        }
        assert!(Instant::now() < deadline, "no ReplicaFailure: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let pods = server.kubectl_ok(&["get", "pods", "-n", "batch", "-o", "name"]);
    assert_eq!(pods.lines().count(), 3, "{pods}");
    let refused = refused_pod_creates(&server) - before;
    // The events word the refusal as kube-controller-manager's do.
    let events = server.kubectl_ok(&["get", "events", "-n", "batch"]);
    assert!(
        events.contains("Error creating: pods \"wide-")
            && events.contains("is forbidden: exceeded quota: three"),
        "{events}"
    );
    assert!(
        (4.0..=8.0).contains(&refused),
        "{refused} creates refused: a pass stops at its first refused batch"
    );
    server.kubectl_ok(&["delete", "namespace", "batch", "--wait=false"]);
}

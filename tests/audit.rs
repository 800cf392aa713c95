//! The audit log of a real `rk8s-server` (`--audit-policy-file`, `--audit-log-path`),
//! read as a kube-apiserver's is read: one JSON event a line. kubectl's create of a
//! ConfigMap at `RequestResponse`, a list of pods at `Metadata` without bodies, an
//! impersonated request refused, `/healthz` not at all, a refused token, a watch from
//! start to end; PodSecurity's `audit` level as an annotation of the event; and a bad
//! policy or log path stops the start, naming the place; and each controller's
//! writes under its own ServiceAccount.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::WatchParams;
use serde_json::Value;
use support::apiserver::Server;
use support::node::eventually;

const POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  nonResourceURLs: ["/healthz*"]
- level: RequestResponse
  resources:
  - group: ""
    resources: [configmaps]
- level: Metadata
"#;

/// The events of the log at `path` so far.
fn events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The events matching `want`, once there is one.
async fn logged(path: &Path, what: &str, want: impl Fn(&Value) -> bool) -> Vec<Value> {
    eventually(what, async || {
        let found: Vec<Value> = events(path).into_iter().filter(|e| want(e)).collect();
        (!found.is_empty()).then_some(found)
    })
    .await
}

/// A server keeping its audit log in its test directory: the server and the log.
fn audited_server(dir: &Path) -> (Server, PathBuf) {
    audited_server_with(dir, &["--disable-scheduler", "--disable-controllers"])
}

/// [`audited_server`] with `args`.
fn audited_server_with(dir: &Path, args: &[&str]) -> (Server, PathBuf) {
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let log = dir.join("audit/audit.log");
    let mut all = args.to_vec();
    all.extend([
        "--audit-policy-file",
        policy.to_str().unwrap(),
        "--audit-log-path",
        log.to_str().unwrap(),
    ]);
    (Server::start(&all), log)
}

#[tokio::test]
async fn kubectls_requests_are_logged_at_their_policy_levels() {
    let dir = tempfile::tempdir().unwrap();
    let (server, log) = audited_server(dir.path());

    let (ok, out) = server.kubectl(&["create", "configmap", "settings", "--from-literal=a=1"]);
    assert!(ok, "{out}");
    // (The root CA publisher creates `kube-root-ca.crt` in the namespace too.)
    let creates = logged(&log, "the create's ResponseComplete event", |e| {
        e["verb"] == "create"
            && e["objectRef"]["resource"] == "configmaps"
            && e["objectRef"]["name"] == "settings"
            && e["stage"] == "ResponseComplete"
    })
    .await;
    assert_eq!(creates.len(), 1, "{creates:#?}");
    let create = &creates[0];
    assert_eq!(create["kind"], "Event");
    assert_eq!(create["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(create["level"], "RequestResponse");
    assert_eq!(create["user"]["username"], "admin");
    assert!(
        create["user"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "system:masters"),
        "{create}"
    );
    assert_eq!(create["objectRef"]["namespace"], "default");
    assert_eq!(create["objectRef"]["name"], "settings");
    assert_eq!(create["objectRef"]["apiVersion"], "v1");
    assert_eq!(create["responseStatus"]["code"], 201);
    assert_eq!(create["requestObject"]["kind"], "ConfigMap");
    assert_eq!(create["requestObject"]["data"]["a"], "1");
    assert_eq!(create["responseObject"]["metadata"]["name"], "settings");
    assert!(create["responseObject"]["metadata"]["uid"].is_string());
    assert!(create["userAgent"].as_str().unwrap().starts_with("kubectl"));
    assert!(
        create["requestURI"]
            .as_str()
            .unwrap()
            .starts_with("/api/v1/namespaces/default/configmaps")
    );
    assert_eq!(
        create["annotations"]["authorization.k8s.io/decision"],
        "allow"
    );
    assert!(create["auditID"].as_str().unwrap().len() >= 32);
    // The same request was logged when it came in, without a response.
    let received = events(&log)
        .into_iter()
        .find(|e| e["auditID"] == create["auditID"] && e["stage"] == "RequestReceived")
        .expect("a RequestReceived event");
    assert!(received.get("responseStatus").is_none());

    let (ok, out) = server.kubectl(&["get", "pods"]);
    assert!(ok, "{out}");
    let lists = logged(&log, "the list of pods", |e| {
        e["verb"] == "list"
            && e["objectRef"]["resource"] == "pods"
            && e["stage"] == "ResponseComplete"
    })
    .await;
    let list = &lists[0];
    assert_eq!(list["level"], "Metadata");
    assert_eq!(list["responseStatus"]["code"], 200);
    assert!(list.get("requestObject").is_none());
    assert!(list.get("responseObject").is_none());

    // Impersonation: the user who asked, the one impersonated, and the authorizer's
    // refusal of the latter.
    let (ok, out) = server.kubectl(&["get", "secrets", "--as", "jane", "--as-group", "devs"]);
    assert!(!ok, "{out}");
    let impersonated = logged(&log, "the impersonated list", |e| {
        e["impersonatedUser"]["username"] == "jane" && e["stage"] == "ResponseComplete"
    })
    .await;
    let refused = &impersonated[0];
    assert_eq!(refused["user"]["username"], "admin");
    assert!(
        refused["impersonatedUser"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "devs")
    );
    assert_eq!(refused["responseStatus"]["code"], 403);
    assert_eq!(
        refused["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );

    // A refused token: one ResponseStarted event, no user.
    let stranger = server.client_with_token(Some("not-a-token")).await;
    let refused = Api::<ConfigMap>::default_namespaced(stranger)
        .get("settings")
        .await;
    assert!(refused.is_err());
    let unauthenticated = logged(&log, "the refused request", |e| {
        e["responseStatus"]["code"] == 401
    })
    .await;
    assert_eq!(unauthenticated.len(), 1, "{unauthenticated:#?}");
    assert_eq!(unauthenticated[0]["stage"], "ResponseStarted");
    assert_eq!(unauthenticated[0]["user"], serde_json::json!({}));
    assert_eq!(
        unauthenticated[0]["responseStatus"]["message"],
        "Authentication failed, attempted: bearer"
    );

    // A watch: logged when it starts, and when it ends.
    let client = server.client().await;
    let configmaps = Api::<ConfigMap>::default_namespaced(client);
    let mut stream = configmaps
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .boxed();
    while stream.next().await.is_some() {}
    let watches = logged(&log, "the watch's end", |e| {
        e["verb"] == "watch" && e["stage"] == "ResponseComplete"
    })
    .await;
    let started = events(&log)
        .into_iter()
        .filter(|e| e["auditID"] == watches[0]["auditID"] && e["stage"] == "ResponseStarted")
        .count();
    assert_eq!(started, 1);
    assert!(watches[0].get("responseObject").is_none());

    // `/healthz` is not logged at all (`None`).
    let (ok, out) = server.kubectl(&["get", "--raw", "/healthz"]);
    assert!(ok, "{out}");
    let (ok, out) = server.kubectl(&["get", "configmap", "settings"]);
    assert!(ok, "{out}");
    logged(&log, "the get after /healthz", |e| {
        e["verb"] == "get" && e["objectRef"]["name"] == "settings"
    })
    .await;
    assert!(
        events(&log).iter().all(|e| !e["requestURI"]
            .as_str()
            .unwrap_or("")
            .starts_with("/healthz")),
        "/healthz was logged"
    );
    // The log holds secrets: only its owner reads it.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&log).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn pod_security_audit_violations_are_annotated_on_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let (server, log) = audited_server(dir.path());
    server.kubectl_ok(&["create", "namespace", "watched"]);
    server.kubectl_ok(&[
        "label",
        "namespace",
        "watched",
        "pod-security.kubernetes.io/audit=restricted",
    ]);
    let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "loose", "namespace": "watched"},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "securityContext": {"privileged": true}}]}});
    let file = support::apiserver::write_manifest(dir.path(), "pod.json", &pod);
    // Audited, not enforced: the pod is made, the event says what it violates.
    server.kubectl_ok(&["create", "-f", &file]);
    let found = logged(&log, "the pod's create", |e| {
        e["verb"] == "create"
            && e["objectRef"]["name"] == "loose"
            && e["stage"] == "ResponseComplete"
    })
    .await;
    let violations = found[0]["annotations"]["pod-security.kubernetes.io/audit-violations"]
        .as_str()
        .unwrap_or_else(|| panic!("no audit-violations annotation: {}", found[0]));
    assert!(
        violations.starts_with("would violate PodSecurity \"restricted:latest\": privileged"),
        "{violations}"
    );
}

#[tokio::test]
async fn each_controller_writes_as_its_own_service_account() {
    let dir = tempfile::tempdir().unwrap();
    let (server, log) = audited_server_with(dir.path(), &["--disable-scheduler"]);
    server.kubectl_ok(&["create", "deployment", "web", "--image", "busybox"]);
    // The Deployment controller makes the ReplicaSet, the ReplicaSet controller its
    // pod, each under its own ServiceAccount; the informers read as the manager.
    let by = |resource: &'static str, verb: &'static str| {
        let log = log.clone();
        async move {
            let found = logged(&log, resource, |e| {
                e["verb"] == verb
                    && e["objectRef"]["resource"] == resource
                    && e["stage"] == "ResponseComplete"
                    && e["user"]["username"] != "admin"
            })
            .await;
            found[0]["user"].clone()
        }
    };
    let deployments = by("replicasets", "create").await;
    assert_eq!(
        deployments["username"],
        "system:serviceaccount:kube-system:deployment-controller"
    );
    let groups = deployments["groups"].as_array().unwrap();
    for group in [
        "system:serviceaccounts",
        "system:serviceaccounts:kube-system",
    ] {
        assert!(groups.iter().any(|g| g == group), "{deployments}");
    }
    assert!(
        !groups.iter().any(|g| g == "system:masters"),
        "{deployments}"
    );
    assert_eq!(
        by("pods", "create").await["username"],
        "system:serviceaccount:kube-system:replicaset-controller"
    );
    assert_eq!(
        by("pods", "list").await["username"],
        "system:kube-controller-manager"
    );
    // And what its role does not grant, it may not do.
    let (can, out) = server.kubectl(&[
        "auth",
        "can-i",
        "delete",
        "deployments",
        "--as",
        "system:serviceaccount:kube-system:replicaset-controller",
    ]);
    assert!(!can && out.trim() == "no", "{out}");
}

#[test]
fn a_bad_policy_or_log_path_stops_the_start_naming_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n- level: Everything\n",
    )
    .unwrap();
    // The settings come from the server's config file, as every flag can.
    let settings = dir.path().join("server.yaml");
    let log = dir.path().join("audit.log");
    std::fs::write(
        &settings,
        format!(
            "audit-policy-file: {}\naudit-log-path: {}\naudit-log-maxbackup: 3\n",
            policy.display(),
            log.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rk8s-server"))
        .arg("--config")
        .arg(&settings)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--port", "0", "--peer-listen", "127.0.0.1:0"])
        .arg("--admin-kubeconfig")
        .arg(dir.path().join("config"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}:5:3: rules[1].level: unknown variant `Everything`",
        policy.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    // Nothing started: no log, no kubeconfig.
    assert!(!log.exists());
    assert!(!dir.path().join("config").exists());

    // A log that cannot be written stops it too (its directory is a file here).
    std::fs::write(&policy, POLICY).unwrap();
    let unwritable = policy.join("audit.log");
    let out = Command::new(env!("CARGO_BIN_EXE_rk8s-server"))
        .arg("--audit-policy-file")
        .arg(&policy)
        .arg("--audit-log-path")
        .arg(&unwritable)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--port", "0", "--peer-listen", "127.0.0.1:0"])
        .arg("--admin-kubeconfig")
        .arg(dir.path().join("config"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("cannot open the audit log {}", unwritable.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(!dir.path().join("config").exists());
}

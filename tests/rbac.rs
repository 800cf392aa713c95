//! Users and what RBAC lets them do, through Debian's kubectl against a real server:
//! a user known by a client certificate from `rk8s-server kubeconfig create`, the
//! default roles (`view`, `admin`, aggregated), `kubectl auth can-i` (also `--as`
//! and `--list`) and `whoami`, escalation refused, impersonation only when allowed,
//! a TokenReview.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use serde_json::Value;
use support::apiserver::Server;
use support::node::eventually;

const API_ONLY: &[&str] = &["--disable-scheduler", "--disable-controllers"];

/// `kubectl --kubeconfig CONFIG ARGS`: whether it succeeded, and what it printed.
fn kubectl(config: &Path, args: &[&str]) -> (bool, String) {
    let out = support::cli::output(support::cli::kubectl_command(config).args(args), None);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ok(config: &Path, args: &[&str]) -> String {
    let (ok, out) = kubectl(config, args);
    assert!(ok, "kubectl {args:?}: {out}");
    out
}

fn refused(config: &Path, args: &[&str], message: &str) {
    let (ok, out) = kubectl(config, args);
    assert!(!ok, "kubectl {args:?} succeeded: {out}");
    assert!(out.contains(message), "kubectl {args:?}: {out}");
}

/// `kubectl auth can-i ARGS` as `config`: yes or no.
fn can_i(config: &Path, args: &[&str]) -> bool {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    let (ok, out) = kubectl(config, &all);
    assert_eq!(
        out.trim().lines().next() == Some("yes"),
        ok,
        "{args:?}: {out}"
    );
    ok
}

#[tokio::test]
async fn users_get_what_their_roles_grant_and_no_more() {
    let server = Server::start(API_ONLY);
    let admin = server.kubeconfig();
    let dir = tempfile::tempdir().unwrap();
    let jane = server.user_kubeconfig(dir.path(), "jane", &["devs", "qa"]);

    // Who jane is, from her certificate; she may do nothing yet.
    let whoami: Value =
        serde_json::from_str(&ok(&jane, &["auth", "whoami", "-o", "json"])).unwrap();
    assert_eq!(whoami["status"]["userInfo"]["username"], "jane");
    assert_eq!(
        whoami["status"]["userInfo"]["groups"],
        serde_json::json!(["devs", "qa", "system:authenticated"])
    );
    refused(
        &jane,
        &["get", "pods"],
        "pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"",
    );

    // The default roles, their aggregated rules filled in.
    eventually("view aggregated", async || {
        let (ok, out) = kubectl(&admin, &["get", "clusterrole", "view", "-o", "json"]);
        let role: Value = serde_json::from_str(&out).ok().filter(|_| ok)?;
        (role["rules"].as_array()?.len() > 3).then_some(())
    })
    .await;
    ok(&admin, &["create", "namespace", "team"]);
    ok(
        &admin,
        &[
            "create",
            "clusterrolebinding",
            "jane-views",
            "--clusterrole=view",
            "--user=jane",
        ],
    );
    ok(
        &admin,
        &[
            "create",
            "rolebinding",
            "jane-admin",
            "-n",
            "team",
            "--clusterrole=admin",
            "--group=devs",
        ],
    );
    eventually("jane's bindings in effect", async || {
        kubectl(
            &jane,
            &["auth", "can-i", "create", "configmaps", "-n", "team"],
        )
        .0
        .then_some(())
    })
    .await;

    // view everywhere: reads, but no Secrets and no writes; admin of one namespace.
    ok(&jane, &["get", "pods", "-A"]);
    refused(
        &jane,
        &["create", "configmap", "settings", "--from-literal=a=b"],
        "configmaps is forbidden: User \"jane\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\"",
    );
    refused(
        &jane,
        &["get", "secrets"],
        "secrets is forbidden: User \"jane\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\"",
    );
    ok(
        &jane,
        &[
            "create",
            "configmap",
            "settings",
            "-n",
            "team",
            "--from-literal=a=b",
        ],
    );
    ok(&jane, &["get", "secrets", "-n", "team"]);
    // A Namespace is inside itself: a RoleBinding there lets its group read it (dora
    // is in devs, without jane's cluster-wide view).
    let dora = server.user_kubeconfig(dir.path(), "dora", &["devs"]);
    ok(&dora, &["get", "namespace", "team"]);
    refused(
        &dora,
        &["get", "namespace", "default"],
        "namespaces \"default\" is forbidden: User \"dora\" cannot get resource \"namespaces\" in API group \"\" in the namespace \"default\"",
    );

    // can-i, for herself, and for her by the admin with --as.
    assert!(can_i(&jane, &["list", "pods"]));
    assert!(!can_i(&jane, &["delete", "pods"]));
    assert!(can_i(&jane, &["delete", "pods", "-n", "team"]));
    assert!(!can_i(&jane, &["get", "nodes"]));
    assert!(can_i(&jane, &["get", "/api"]));
    assert!(!can_i(&jane, &["get", "/metrics"]));
    assert!(can_i(
        &admin,
        &[
            "create",
            "configmaps",
            "-n",
            "team",
            "--as=jane",
            "--as-group=devs"
        ]
    ));
    assert!(!can_i(
        &admin,
        &["create", "configmaps", "-n", "team", "--as=jane"]
    ));
    assert!(!can_i(
        &admin,
        &["create", "configmaps", "--as=jane", "--as-group=devs"]
    ));
    let listed = ok(&jane, &["auth", "can-i", "--list", "-n", "team"]);
    assert!(listed.contains("configmaps"), "{listed}");
    assert!(listed.contains("/api"), "{listed}");

    // Impersonation is the admin's, not jane's.
    refused(
        &jane,
        &["get", "pods", "--as=root"],
        "users \"root\" is forbidden: User \"jane\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope",
    );
    let as_jane = ok(
        &admin,
        &[
            "auth",
            "whoami",
            "--as=jane",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert_eq!(as_jane.trim(), "jane");

    // No escalation: jane writes roles in her namespace only with rights she holds,
    // and binds only roles whose rights she holds.
    ok(
        &jane,
        &[
            "create",
            "role",
            "pod-reader",
            "-n",
            "team",
            "--verb=get,list",
            "--resource=pods",
        ],
    );
    refused(
        &jane,
        &[
            "create",
            "role",
            "node-reader",
            "-n",
            "team",
            "--verb=get",
            "--resource=nodes",
        ],
        "roles.rbac.authorization.k8s.io \"node-reader\" is forbidden: user \"jane\" (groups=[\"devs\" \"qa\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\"]}",
    );
    refused(
        &jane,
        &[
            "create",
            "rolebinding",
            "root",
            "-n",
            "team",
            "--clusterrole=cluster-admin",
            "--user=jane",
        ],
        "is attempting to grant RBAC permissions not currently held",
    );
    ok(
        &jane,
        &[
            "create",
            "rolebinding",
            "readers",
            "-n",
            "team",
            "--role=pod-reader",
            "--user=john",
        ],
    );

    // A ClusterRole labelled to aggregate into view gives view's holders its rules.
    assert!(!can_i(&jane, &["get", "secrets"]));
    ok(
        &admin,
        &[
            "create",
            "clusterrole",
            "secret-viewer",
            "--verb=get",
            "--resource=secrets",
        ],
    );
    ok(
        &admin,
        &[
            "label",
            "clusterrole",
            "secret-viewer",
            "rbac.authorization.k8s.io/aggregate-to-view=true",
        ],
    );
    eventually("the aggregated rule in effect", async || {
        kubectl(&jane, &["auth", "can-i", "get", "secrets"])
            .0
            .then_some(())
    })
    .await;

    // A TokenReview says whose a token is (the admin may create them, jane may not).
    let token = ok(&admin, &["create", "token", "default"]);
    let review = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token.trim()}});
    let file = dir.path().join("review.json");
    std::fs::write(&file, review.to_string()).unwrap();
    let file = file.to_str().unwrap();
    let answer: Value =
        serde_json::from_str(&ok(&admin, &["create", "-f", file, "-o", "json"])).unwrap();
    assert_eq!(answer["status"]["authenticated"], true, "{answer}");
    assert_eq!(
        answer["status"]["user"]["username"],
        "system:serviceaccount:default:default"
    );
    refused(
        &jane,
        &["create", "-f", file],
        "tokenreviews.authentication.k8s.io is forbidden: User \"jane\" cannot create resource \"tokenreviews\" in API group \"authentication.k8s.io\" at the cluster scope",
    );
}

#[test]
fn the_scheduler_runs_as_kube_scheduler_with_its_rights_only() {
    // With the scheduler running: its bindings go through RBAC as its own user.
    let server = Server::start(&["--disable-controllers"]);
    let admin = server.kubeconfig();
    let as_scheduler = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--as", "system:kube-scheduler"]);
        can_i(&admin, &all)
    };
    assert!(as_scheduler(&[
        "create",
        "pods",
        "--subresource",
        "binding"
    ]));
    assert!(as_scheduler(&["patch", "pods", "--subresource", "status"]));
    assert!(as_scheduler(&["patch", "persistentvolumeclaims"]));
    assert!(as_scheduler(&["create", "events.events.k8s.io"]));
    assert!(!as_scheduler(&["create", "pods"]));
    assert!(!as_scheduler(&["get", "secrets"]));
    assert!(!as_scheduler(&["update", "nodes"]));
    assert!(!as_scheduler(&["delete", "deployments.apps"]));
    ok(
        &admin,
        &["run", "placed", "--image", "busybox", "--restart", "Never"],
    );
    // No node: the scheduler says why in the pod's status, a write of its own.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = ok(
            &admin,
            &[
                "get",
                "pod",
                "placed",
                "-o",
                "jsonpath={.status.conditions[0].reason}",
            ],
        );
        if out == "Unschedulable" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never unschedulable: {out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[tokio::test]
async fn a_masters_certificate_may_do_everything_and_a_foreign_one_nothing() {
    let server = Server::start(API_ONLY);
    let dir = tempfile::tempdir().unwrap();
    let root = server.user_kubeconfig(dir.path(), "root", &["system:masters"]);
    ok(&root, &["create", "namespace", "mine"]);
    ok(&root, &["get", "--raw", "/metrics"]);
    assert!(can_i(&root, &["*", "*"]));
    // A certificate of another cluster's client CA authenticates nobody: 401, as
    // kube-apiserver answers (the handshake takes it; it is verified after).
    let other = Server::start(API_ONLY);
    let stranger = other.user_kubeconfig(dir.path(), "root", &["system:masters"]);
    let mut mixed = kube::config::Kubeconfig::read_from(&stranger).unwrap();
    mixed.clusters = kube::config::Kubeconfig::read_from(server.kubeconfig())
        .unwrap()
        .clusters;
    let mixed_path = dir.path().join("mixed.kubeconfig");
    std::fs::write(&mixed_path, serde_json::to_string(&mixed).unwrap()).unwrap();
    let (allowed, out) = kubectl(&mixed_path, &["get", "namespaces"]);
    assert!(!allowed, "{out}");
    assert!(out.contains("You must be logged in to the server"), "{out}");
    // With a valid token beside it, the token authenticates (kube's union of
    // authenticators).
    let token = std::fs::read_to_string(server.data_dir().join("pki/admin.token")).unwrap();
    mixed.auth_infos[0].auth_info.as_mut().unwrap().token = Some(token.trim().to_string().into());
    std::fs::write(&mixed_path, serde_json::to_string(&mixed).unwrap()).unwrap();
    ok(&mixed_path, &["get", "namespaces"]);
}

#[tokio::test]
async fn without_anonymous_auth_health_needs_a_credential() {
    let server = Server::start(&[
        "--disable-scheduler",
        "--disable-controllers",
        "--anonymous-auth=false",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let nobody = server.client_with_token(None).await;
    let req = http::Request::get("/healthz").body(Vec::new()).unwrap();
    let refused = nobody.request_text(req).await.unwrap_err();
    assert!(refused.to_string().contains("Unauthorized"), "{refused}");
    // Every authenticated user may (system:public-info-viewer), with no binding of
    // its own.
    let jane = server.user_kubeconfig(dir.path(), "jane", &[]);
    assert_eq!(ok(&jane, &["get", "--raw", "/healthz"]).trim(), "ok");
    ok(&jane, &["get", "--raw", "/version"]);
    refused_path(&jane, "/metrics");
}

/// `kubectl get --raw PATH` as `config` is refused with kube's wording for a path.
fn refused_path(config: &Path, path: &str) {
    refused(
        config,
        &["get", "--raw", path],
        &format!("cannot get path \"{path}\""),
    );
}

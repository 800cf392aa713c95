//! CertificateSigningRequests through the Debian `kubectl` against a real
//! `rk8s-server`: a user's request carries its requester, `kubectl certificate
//! approve` goes through the `approval` subresource, the built-in
//! `kubernetes.io/kube-apiserver-client` signer issues a certificate the server then
//! takes as that user, `deny` and a signer-less approver are answered as
//! kube-apiserver answers them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use base64::Engine;
use serde_json::{Value, json};
use support::apiserver::{Server, write_manifest};

/// A key and a request for a client certificate of `user` in `group`: (key PEM,
/// request PEM).
fn key_and_request(user: &str, group: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, user);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, group);
    let request = params.serialize_request(&key).unwrap().pem().unwrap();
    (key.serialize_pem(), request)
}

fn csr(name: &str, request: &str, usages: &[&str]) -> Value {
    json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {"request": base64::engine::general_purpose::STANDARD.encode(request),
            "signerName": "kubernetes.io/kube-apiserver-client",
            "expirationSeconds": 86400, "usages": usages}})
}

/// The certificate the signer put in `name`'s status, once it has.
async fn issued(server: &Server, name: &str) -> String {
    support::node::eventually("the certificate issued", async || {
        let path = "jsonpath={.status.certificate}";
        let out = server.kubectl_ok(&["get", "csr", name, "-o", path]);
        let b64 = out.trim();
        (!b64.is_empty()).then(|| {
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap(),
            )
            .unwrap()
        })
    })
    .await
}

/// A kubeconfig of the admin's server with the client certificate `cert` and `key`.
fn kubeconfig_with(server: &Server, dir: &Path, cert: &str, key: &str) -> String {
    let path = dir.join("jane.kubeconfig");
    std::fs::copy(server.kubeconfig(), &path).unwrap();
    std::fs::write(dir.join("jane.crt"), cert).unwrap();
    std::fs::write(dir.join("jane.key"), key).unwrap();
    let config = path.display().to_string();
    let set = [
        "config",
        "set-credentials",
        "jane",
        "--embed-certs",
        &format!("--client-certificate={}", dir.join("jane.crt").display()),
        &format!("--client-key={}", dir.join("jane.key").display()),
    ];
    server.kubectl_ok(&[&["--kubeconfig", &config][..], &set[..]].concat());
    server.kubectl_ok(&[
        "--kubeconfig",
        &config,
        "config",
        "set-context",
        "--current",
        "--user=jane",
    ]);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_approved_with_kubectl_is_signed_and_logs_its_user_in() {
    let server = Server::start(&["--disable-scheduler"]);
    let dir = tempfile::tempdir().unwrap();
    let (key, request) = key_and_request("jane", "dev");
    let file = write_manifest(
        dir.path(),
        "jane.json",
        &csr("jane", &request, &["client auth"]),
    );
    server.kubectl_ok(&["create", "-f", &file]);
    // The requester is who created it (the admin), whatever the body says.
    let requester = server.kubectl_ok(&["get", "csr", "jane", "-o", "jsonpath={.spec.username}"]);
    assert_eq!(requester.trim(), "admin");
    let listed = server.kubectl_ok(&["get", "csr", "jane"]);
    assert!(
        listed.contains("admin") && listed.contains("Pending"),
        "{listed}"
    );
    // Approval by the status or the object itself is refused: only `approval` approves.
    let approval = r#"{"status": {"conditions": [{"type": "Approved", "status": "True"}]}}"#;
    let patch = [
        "patch",
        "csr",
        "jane",
        "--subresource=status",
        "--type=merge",
        "-p",
        approval,
    ];
    let (ok, out) = server.kubectl(&patch);
    assert!(
        !ok && out.contains("updates may not add a condition of type \"Approved\""),
        "{out}"
    );
    let out = server.kubectl_ok(&["certificate", "approve", "jane"]);
    assert!(
        out.contains("certificatesigningrequest.certificates.k8s.io/jane approved"),
        "{out}"
    );
    let cert = issued(&server, "jane").await;
    let listed = server.kubectl_ok(&["get", "csr", "jane"]);
    assert!(listed.contains("Approved,Issued"), "{listed}");
    // The certificate logs jane in, in her group.
    let config = kubeconfig_with(&server, dir.path(), &cert, &key);
    let who = server.kubectl_ok(&["--kubeconfig", &config, "auth", "whoami", "-o", "json"]);
    let who: Value = serde_json::from_str(&who).unwrap();
    assert_eq!(who["status"]["userInfo"]["username"], "jane");
    let groups = who["status"]["userInfo"]["groups"].to_string();
    assert!(groups.contains("\"dev\""), "{groups}");

    // Denied: no certificate, and the condition stays.
    let (_, other) = key_and_request("joe", "dev");
    let file = write_manifest(
        dir.path(),
        "joe.json",
        &csr("joe", &other, &["client auth"]),
    );
    server.kubectl_ok(&["create", "-f", &file]);
    let out = server.kubectl_ok(&["certificate", "deny", "joe"]);
    assert!(
        out.contains("certificatesigningrequest.certificates.k8s.io/joe denied"),
        "{out}"
    );
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let listed = server.kubectl_ok(&["get", "csr", "joe"]);
    assert!(
        listed.contains("Denied") && !listed.contains("Issued"),
        "{listed}"
    );

    // A server usage: the signer fails it, as kube-controller-manager's does.
    let (_, served) = key_and_request("web", "dev");
    let usages = ["client auth", "server auth"];
    let file = write_manifest(dir.path(), "web.json", &csr("web", &served, &usages));
    server.kubectl_ok(&["create", "-f", &file]);
    server.kubectl_ok(&["certificate", "approve", "web"]);
    let failed = support::node::eventually("the request failed", async || {
        let out = server.kubectl_ok(&["get", "csr", "web"]);
        out.contains("Failed").then_some(out)
    })
    .await;
    assert!(failed.contains("Approved,Failed"), "{failed}");

    // One who may update approvals but not approve for the signer is refused.
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "csr-approver"},
        "rules": [{"apiGroups": ["certificates.k8s.io"],
            "resources": ["certificatesigningrequests", "certificatesigningrequests/approval"],
            "verbs": ["get", "list", "update"]}]});
    server.kubectl_ok(&[
        "apply",
        "-f",
        &write_manifest(dir.path(), "role.json", &role),
    ]);
    server.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "bob-csr",
        "--clusterrole=csr-approver",
        "--user=bob",
    ]);
    let (_, third) = key_and_request("ann", "dev");
    let file = write_manifest(
        dir.path(),
        "ann.json",
        &csr("ann", &third, &["client auth"]),
    );
    server.kubectl_ok(&["create", "-f", &file]);
    let out = support::node::eventually("bob's role in effect", async || {
        let (ok, out) = server.kubectl(&["certificate", "approve", "ann", "--as=bob"]);
        assert!(!ok, "{out}");
        out.contains("not permitted to approve").then_some(out)
    })
    .await;
    assert!(
        out.contains("user not permitted to approve requests with signerName \"kubernetes.io/kube-apiserver-client\""),
        "{out}"
    );
}

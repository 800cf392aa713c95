//! PodSecurity admission against a real `rk8s-server`, driven by the Debian `kubectl`:
//! a namespace labelled `enforce=restricted` refuses a privileged pod in
//! kube-apiserver's words and takes a compliant one, but not a non-compliant
//! ephemeral container added to it; a namespace labelled
//! `warn=baseline` takes a host-network Deployment and kubectl prints kube's warning;
//! an invalid label is refused, and tightening enforce warns about the pods already
//! there. LimitRanger beside it: a LimitRange's defaults given to a pod without
//! resources (and said in its annotation), a pod over its maximum refused in kube's
//! words.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::apiserver::{Server, write_manifest};

/// The API alone: no scheduler or controller writes to these objects.
const API_ONLY: &[&str] = &["--disable-scheduler", "--disable-controllers"];

fn namespace(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels},
    })
}

fn pod(ns: &str, name: &str, security_context: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [
            {"name": "c", "image": "busybox", "securityContext": security_context},
        ]},
    })
}

#[test]
fn a_restricted_namespace_refuses_a_privileged_pod_in_kubes_words() {
    let server = Server::start(API_ONLY);
    let dir = tempfile::tempdir().unwrap();
    let labels = json!({"pod-security.kubernetes.io/enforce": "restricted"});
    let ns = write_manifest(dir.path(), "ns.json", &namespace("locked", labels));
    server.kubectl_ok(&["apply", "-f", &ns]);

    let privileged = pod("locked", "web", json!({"privileged": true}));
    let file = write_manifest(dir.path(), "privileged.json", &privileged);
    let (ok, out) = server.kubectl(&["apply", "-f", &file]);
    assert!(!ok, "a privileged pod was admitted:\n{out}");
    let expected = format!(
        "Error from server (Forbidden): error when creating {file:?}: pods \"web\" is forbidden: \
         violates PodSecurity \"restricted:latest\": \
         privileged (container \"c\" must not set securityContext.privileged=true), \
         allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
         unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
         runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
         seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
    );
    assert!(out.contains(&expected), "expected\n{expected}\ngot\n{out}");
    let (found, out) = server.kubectl(&["get", "pod", "web", "-n", "locked"]);
    assert!(!found, "the refused pod was stored:\n{out}");

    let compliant = pod(
        "locked",
        "web",
        json!({
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": true,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        }),
    );
    let file = write_manifest(dir.path(), "compliant.json", &compliant);
    let out = server.kubectl_ok(&["apply", "-f", &file]);
    assert!(out.contains("pod/web created"), "{out}");
    assert!(!out.contains("Warning"), "{out}");

    // An ephemeral container added (`kubectl debug`) is held to the level too.
    let debug = json!({"spec": {"ephemeralContainers": [{"name": "dbg", "image": "busybox"}]}});
    let (ok, out) = server.kubectl(&[
        "patch",
        "pod",
        "web",
        "-n",
        "locked",
        "--subresource=ephemeralcontainers",
        "-p",
        &debug.to_string(),
    ]);
    assert!(
        !ok,
        "a non-compliant ephemeral container was admitted:\n{out}"
    );
    assert!(
        out.contains("violates PodSecurity \"restricted:latest\"")
            && out.contains(
                "container \"dbg\" must set securityContext.allowPrivilegeEscalation=false"
            ),
        "{out}"
    );

    // An unknown level is refused on the namespace, as kube-apiserver refuses it.
    let label = "pod-security.kubernetes.io/enforce=strict";
    let (ok, out) = server.kubectl(&["label", "--overwrite", "namespace", "locked", label]);
    assert!(!ok, "an invalid level was taken:\n{out}");
    assert!(
        out.contains(
            "metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": \
             must be one of privileged, baseline, restricted"
        ),
        "{out}"
    );
}

#[test]
fn a_baseline_warn_namespace_warns_about_a_host_network_deployment() {
    let server = Server::start(API_ONLY);
    let dir = tempfile::tempdir().unwrap();
    let labels = json!({"pod-security.kubernetes.io/warn": "baseline"});
    let ns = write_manifest(dir.path(), "ns.json", &namespace("open", labels));
    server.kubectl_ok(&["apply", "-f", &ns]);

    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "net", "namespace": "open"},
        "spec": {
            "selector": {"matchLabels": {"app": "net"}},
            "template": {
                "metadata": {"labels": {"app": "net"}},
                "spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    });
    let file = write_manifest(dir.path(), "deployment.json", &deployment);
    let out = server.kubectl_ok(&["apply", "-f", &file]);
    assert!(out.contains("deployment.apps/net created"), "{out}");
    assert!(
        out.contains(
            "Warning: would violate PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)"
        ),
        "{out}"
    );

    // A pod is warned about too, and stored.
    let privileged = pod("open", "web", json!({"privileged": true}));
    let file = write_manifest(dir.path(), "privileged.json", &privileged);
    let out = server.kubectl_ok(&["apply", "-f", &file]);
    assert!(out.contains("pod/web created"), "{out}");
    assert!(
        out.contains(
            "Warning: would violate PodSecurity \"baseline:latest\": privileged \
             (container \"c\" must not set securityContext.privileged=true)"
        ),
        "{out}"
    );

    // Enforcing baseline now names the pod that would not be admitted.
    let label = "pod-security.kubernetes.io/enforce=baseline";
    let out = server.kubectl_ok(&["label", "namespace", "open", label]);
    for expected in [
        "Warning: existing pods in namespace \"open\" violate the new PodSecurity enforce level \"baseline:latest\"",
        "Warning: web: privileged",
        "namespace/open labeled",
    ] {
        assert!(out.contains(expected), "no {expected:?} in:\n{out}");
    }
}

#[tokio::test]
async fn a_limit_range_defaults_and_limits_pods() {
    let server = Server::start(API_ONLY);
    let dir = tempfile::tempdir().unwrap();
    server.kubectl_ok(&["create", "namespace", "capped"]);
    let range = json!({"apiVersion": "v1", "kind": "LimitRange",
        "metadata": {"name": "caps", "namespace": "capped"},
        "spec": {"limits": [{"type": "Container",
            "default": {"cpu": "200m", "memory": "64Mi"},
            "defaultRequest": {"cpu": "100m"},
            "max": {"cpu": "500m"}}]}});
    let range = write_manifest(dir.path(), "range.json", &range);
    server.kubectl_ok(&["apply", "-f", &range]);
    // The admission reads LimitRanges from the server's in-memory copy, a watch
    // behind the store: the first pods may be created before it has the range.
    let plain = write_manifest(dir.path(), "plain.json", &pod("capped", "plain", json!({})));
    let created: Value = support::node::eventually("the LimitRange in effect", async || {
        let (ok, out) = server.kubectl(&["create", "-f", &plain, "-o", "json"]);
        let created: Value = serde_json::from_str(&out).ok().filter(|_| ok)?;
        if created["metadata"]["annotations"]["kubernetes.io/limit-ranger"].is_string() {
            return Some(created);
        }
        server.kubectl_ok(&["delete", "pod", "plain", "-n", "capped", "--wait=false"]);
        None
    })
    .await;
    let resources = &created["spec"]["containers"][0]["resources"];
    assert_eq!(
        resources["limits"],
        json!({"cpu": "200m", "memory": "64Mi"})
    );
    assert_eq!(resources["requests"]["cpu"], "100m");
    assert_eq!(
        created["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c"
    );
    let mut big = pod("capped", "big", json!({}));
    big["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "2"}});
    let big = write_manifest(dir.path(), "big.json", &big);
    let (ok, out) = server.kubectl(&["create", "-f", &big]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "pods \"big\" is forbidden: maximum cpu usage per Container is 500m, but limit is 2"
        ),
        "{out}"
    );
}

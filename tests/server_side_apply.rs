//! Server-side apply against a real `rk8s-server`, driven by the Debian `kubectl`:
//! `apply --server-side` creates and updates, managedFields are kept and shown only on
//! request, a second manager conflicts until it forces, `kubectl apply` (client-side)
//! hands over to `--server-side` without conflicts, a field dropped from the applied
//! configuration is removed, and one the kind does not declare is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::apiserver::Server;
use support::cli;

const API_ONLY: &[&str] = &["--disable-scheduler", "--disable-controllers"];

fn deployment(replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: nginx
"
    )
}

/// `kubectl ARGS` with `stdin`: whether it succeeded, and what it printed.
fn kubectl(server: &Server, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let out = cli::output(server.kubectl_command().args(args), stdin);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn kubectl_ok(server: &Server, args: &[&str], stdin: Option<&str>) -> String {
    let (ok, out) = kubectl(server, args, stdin);
    assert!(ok, "kubectl {args:?} failed:\n{out}");
    out
}

fn replicas(server: &Server) -> String {
    kubectl_ok(
        server,
        &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"],
        None,
    )
}

#[test]
fn a_second_manager_conflicts_on_replicas_until_it_forces() {
    let server = Server::start(API_ONLY);
    let out = kubectl_ok(
        &server,
        &["apply", "--server-side", "-f", "-"],
        Some(&deployment(2)),
    );
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    // A field its kind does not declare is refused whatever the validation asked,
    // in structured-merge-diff's words, its list item named by its key.
    let typo = deployment(2).replace(
        "        image: nginx\n",
        "        image: nginx\n        imagePullPolice: Always\n",
    );
    for validate in ["--validate=strict", "--validate=false"] {
        let (ok, out) = kubectl(
            &server,
            &["apply", "--server-side", validate, "-f", "-"],
            Some(&typo),
        );
        assert!(
            !ok && out.contains(
                "Error from server: failed to create typed patch object (default/web; apps/v1, Kind=Deployment): .spec.template.spec.containers[name=\"web\"].imagePullPolice: field not declared in schema"
            ),
            "{validate}: {out}"
        );
    }
    let shown = kubectl_ok(
        &server,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "yaml",
            "--show-managed-fields",
        ],
        None,
    );
    assert!(shown.contains("manager: kubectl"), "{shown}");
    assert!(shown.contains("operation: Apply"), "{shown}");
    assert!(shown.contains("f:replicas: {}"), "{shown}");
    let hidden = kubectl_ok(&server, &["get", "deploy", "web", "-o", "yaml"], None);
    assert!(!hidden.contains("managedFields"), "{hidden}");

    let args = ["apply", "--server-side", "--field-manager=other", "-f", "-"];
    let (ok, out) = kubectl(&server, &args, Some(&deployment(3)));
    assert!(!ok, "{out}");
    assert!(
        out.contains(r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas"#),
        "{out}"
    );
    assert!(
        out.contains("Please review the fields above--they currently have other managers"),
        "{out}"
    );
    assert_eq!(replicas(&server), "2");

    let forced = [
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        "-",
    ];
    kubectl_ok(&server, &forced, Some(&deployment(3)));
    assert_eq!(replicas(&server), "3");
    let shown = kubectl_ok(
        &server,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "yaml",
            "--show-managed-fields",
        ],
        None,
    );
    assert!(shown.contains("manager: other"), "{shown}");

    // A write that is no apply is recorded as an `Update` of its subresource, by the
    // manager its user agent names (`kubectl scale` names no field manager).
    kubectl_ok(&server, &["scale", "deploy/web", "--replicas=4"], None);
    let (ok, out) = kubectl(&server, &args, Some(&deployment(3)));
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            r#"conflict with "kubectl" with subresource "scale" using apps/v1: .spec.replicas"#
        ),
        "{out}"
    );
}

#[test]
fn server_side_apply_takes_over_from_client_side_apply() {
    let server = Server::start(API_ONLY);
    let out = kubectl_ok(&server, &["apply", "-f", "-"], Some(&deployment(1)));
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let shown = kubectl_ok(
        &server,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "yaml",
            "--show-managed-fields",
        ],
        None,
    );
    assert!(
        shown.contains("manager: kubectl-client-side-apply"),
        "{shown}"
    );
    assert!(shown.contains("operation: Update"), "{shown}");

    let out = kubectl_ok(
        &server,
        &["apply", "--server-side", "-f", "-"],
        Some(&deployment(3)),
    );
    assert!(out.contains("serverside-applied"), "{out}");
    assert_eq!(replicas(&server), "3");
    let annotation = kubectl_ok(
        &server,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            r"jsonpath={.metadata.annotations.kubectl\.kubernetes\.io/last-applied-configuration}",
        ],
        None,
    );
    assert!(annotation.contains("\"replicas\":3"), "{annotation}");
    // And client-side apply still works after it.
    kubectl_ok(&server, &["apply", "-f", "-"], Some(&deployment(2)));
    assert_eq!(replicas(&server), "2");
}

#[test]
fn a_configmap_key_dropped_from_the_applied_config_is_removed() {
    let server = Server::start(API_ONLY);
    let config = |data: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n{data}")
    };
    let apply = ["apply", "--server-side", "-f", "-"];
    kubectl_ok(&server, &apply, Some(&config("  a: '1'\n  b: '2'\n")));
    kubectl_ok(&server, &apply, Some(&config("  a: '1'\n")));
    let data = kubectl_ok(
        &server,
        &["get", "cm", "settings", "-o", "jsonpath={.data}"],
        None,
    );
    assert_eq!(data.trim(), r#"{"a":"1"}"#);
}

const WIDGET_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.ssa.example.com}
spec:
  group: ssa.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              color: {type: string}
              size: {type: integer}
              tags: {type: array, items: {type: string}}
";

#[test]
fn custom_resources_are_applied_server_side_with_atomic_lists() {
    let server = Server::start(API_ONLY);
    kubectl_ok(&server, &["apply", "-f", "-"], Some(WIDGET_CRD));
    kubectl_ok(
        &server,
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.ssa.example.com",
            "--timeout=30s",
        ],
        None,
    );
    let widget = |spec: &str| {
        format!(
            "apiVersion: ssa.example.com/v1\nkind: Widget\nmetadata: {{name: w}}\nspec: {spec}\n"
        )
    };
    // kubectl validates a custom resource against the OpenAPI document it downloads;
    // that check is not what this test is about.
    let apply = ["apply", "--server-side", "--validate=false", "-f", "-"];
    kubectl_ok(
        &server,
        &apply,
        Some(&widget("{color: red, size: 2, tags: [a, b]}")),
    );
    kubectl_ok(&server, &apply, Some(&widget("{size: 2, tags: [c]}")));
    let spec = kubectl_ok(
        &server,
        &["get", "widget", "w", "-o", "jsonpath={.spec}"],
        None,
    );
    assert_eq!(spec.trim(), r#"{"size":2,"tags":["c"]}"#);
    let (ok, out) = kubectl(
        &server,
        &[
            "apply",
            "--server-side",
            "--validate=false",
            "--field-manager=other",
            "-f",
            "-",
        ],
        Some(&widget("{size: 3}")),
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains(r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.size"#),
        "{out}"
    );
}

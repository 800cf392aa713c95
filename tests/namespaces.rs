//! A namespace's deletion as kube-apiserver and kube-controller-manager have it,
//! through Debian's kubectl and kube-rs against a real server with simulated nodes:
//! `Terminating` first, the content deleted by the namespace controller (pods
//! gracefully, through their nodes; custom resources; finalizers waited for, and
//! reported in the namespace's conditions), nothing new created meanwhile, and the
//! namespace gone once its finalizer `kubernetes` is removed, by the controller or by
//! hand through `namespaces/finalize`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use support::apiserver::{Server, wait_gone};
use support::node::{eventually, simulate};

const WIDGETS: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
";

/// A Widget named `name` held by the finalizer `example.com/hold`.
fn held_widget(name: &str) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: {name}, finalizers: [example.com/hold]}}\n"
    )
}

/// The status and message of the condition `kind` of `ns`; empty ones if it has none.
fn condition(ns: &Namespace, kind: &str) -> (String, String) {
    let conditions = ns.status.as_ref().and_then(|s| s.conditions.clone());
    let found = conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == kind);
    found.map_or_else(Default::default, |c| {
        (c.status, c.message.unwrap_or_default())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_namespace_terminates_empties_and_goes_once_finalized() {
    let server = Server::start(&[]);
    let client = server.client().await;
    let _nodes = simulate(&server, &["--count", "2"]);
    let dir = server.dir.path();
    std::fs::write(dir.join("crd.yaml"), WIDGETS).unwrap();
    server.kubectl_ok(&["apply", "-f", &dir.join("crd.yaml").to_string_lossy()]);
    server.kubectl_ok(&["create", "namespace", "shop"]);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let shop = namespaces.get("shop").await.unwrap();
    assert_eq!(
        shop.spec.unwrap().finalizers.unwrap(),
        ["kubernetes"],
        "a new namespace carries the namespace controller's finalizer"
    );
    server.kubectl_ok(&[
        "-n",
        "shop",
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=3",
    ]);
    server.kubectl_ok(&[
        "-n",
        "shop",
        "create",
        "configmap",
        "settings",
        "--from-literal=a=1",
    ]);
    std::fs::write(dir.join("w.yaml"), held_widget("w1")).unwrap();
    eventually("the Widget kind is served", async || {
        server
            .kubectl(&[
                "-n",
                "shop",
                "apply",
                "-f",
                &dir.join("w.yaml").to_string_lossy(),
            ])
            .0
            .then_some(())
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    eventually("three pods run on the simulated nodes", async || {
        let listed = pods.list(&ListParams::default()).await.ok()?.items;
        let running = listed
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"));
        (running.count() == 3).then_some(())
    })
    .await;

    // The first DELETE marks it: Terminating, with a deletion timestamp.
    let out = server.kubectl_ok(&["delete", "namespace", "shop", "--wait=false"]);
    assert!(out.contains("namespace \"shop\" deleted"), "{out}");
    // Made again while it terminates: kube's words for a name still being deleted.
    let (ok, out) = server.kubectl(&["create", "namespace", "shop"]);
    assert!(
        !ok && out.contains(
            "(AlreadyExists): object is being deleted: namespaces \"shop\" already exists"
        ),
        "{out}"
    );
    let shop = namespaces.get("shop").await.unwrap();
    assert!(shop.metadata.deletion_timestamp.is_some());
    assert_eq!(
        shop.status.as_ref().unwrap().phase.as_deref(),
        Some("Terminating")
    );
    // Nothing new may be made in it (NamespaceLifecycle), in kube's words and cause.
    let (ok, out) = server.kubectl(&["-n", "shop", "create", "configmap", "late"]);
    assert!(!ok);
    assert!(
        out.contains("configmaps \"late\" is forbidden: unable to create new content in namespace shop because it is being terminated"),
        "{out}"
    );
    let late: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "late"}})).unwrap();
    let path = "/api/v1/namespaces/shop/configmaps";
    let refused = client
        .request_text(
            http::Request::post(path)
                .body(serde_json::to_vec(&late).unwrap())
                .unwrap(),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    let cause = &status.details.unwrap().causes[0];
    assert_eq!(
        (cause.reason.as_str(), cause.field.as_str()),
        ("NamespaceTerminating", "metadata.namespace")
    );
    // A subresource's create too: no token for an account of it.
    let (ok, out) = server.kubectl(&["-n", "shop", "create", "token", "default"]);
    assert!(
        !ok && out.contains("because it is being terminated"),
        "{out}"
    );
    // A second DELETE while content remains answers with the namespace (kube 1.17+).
    let out = server.kubectl_ok(&["delete", "namespace", "shop", "--wait=false"]);
    assert!(out.contains("namespace \"shop\" deleted"), "{out}");

    // The controller deletes the content: the pods through their nodes, the rest at
    // once; the held Widget stays, and the conditions say why.
    let shop = eventually("the namespace reports its held Widget", async || {
        let ns = namespaces.get("shop").await.ok()?;
        let (remaining, message) = condition(&ns, "NamespaceContentRemaining");
        (remaining == "True"
            && message
                == "Some resources are remaining: widgets.example.com has 1 resource instances")
            .then_some(ns)
    })
    .await;
    assert_eq!(
        condition(&shop, "NamespaceFinalizersRemaining"),
        (
            "True".to_string(),
            "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances".to_string()
        )
    );
    assert_eq!(
        condition(&shop, "NamespaceDeletionDiscoveryFailure"),
        (
            "False".to_string(),
            "All resources successfully discovered".to_string()
        )
    );
    assert!(
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let left = server.kubectl_ok(&["-n", "shop", "get", "deployments,configmaps", "-o", "name"]);
    assert_eq!(left.trim(), "", "everything but the Widget is gone");
    let described = server.kubectl_ok(&["describe", "namespace", "shop"]);
    assert!(described.contains("Terminating"), "{described}");
    assert!(described.contains("SomeFinalizersRemain"), "{described}");

    // The finalizer `kubernetes` is the server's to keep: an update leaves it.
    server.kubectl_ok(&[
        "patch",
        "namespace",
        "shop",
        "--type=merge",
        "-p",
        r#"{"spec":{"finalizers":[]}}"#,
    ]);
    let shop = namespaces.get("shop").await.unwrap();
    assert_eq!(shop.spec.unwrap().finalizers.unwrap(), ["kubernetes"]);

    // The Widget's own finalizer done: the namespace goes.
    server.kubectl_ok(&[
        "-n",
        "shop",
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    server.kubectl_ok(&["wait", "--for=delete", "namespace/shop", "--timeout=60s"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalize_by_hand_removes_a_stuck_namespace_and_what_it_held() {
    let server = Server::start(&["--disable-scheduler"]);
    let client = server.client().await;
    let dir = server.dir.path();
    std::fs::write(dir.join("crd.yaml"), WIDGETS).unwrap();
    server.kubectl_ok(&["apply", "-f", &dir.join("crd.yaml").to_string_lossy()]);
    server.kubectl_ok(&["create", "namespace", "stuck"]);
    std::fs::write(dir.join("w.yaml"), held_widget("w1")).unwrap();
    eventually("the Widget kind is served", async || {
        server
            .kubectl(&[
                "-n",
                "stuck",
                "apply",
                "-f",
                &dir.join("w.yaml").to_string_lossy(),
            ])
            .0
            .then_some(())
    })
    .await;
    server.kubectl_ok(&["delete", "namespace", "stuck", "--wait=false"]);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut stuck = eventually("the namespace waits on the Widget", async || {
        let ns = namespaces.get("stuck").await.ok()?;
        (condition(&ns, "NamespaceFinalizersRemaining").0 == "True").then_some(ns)
    })
    .await;

    // `finalize` is written with PUT alone, as kube's FinalizeREST.
    let (ok, out) = server.kubectl(&["get", "--raw", "/api/v1/namespaces/stuck/finalize"]);
    assert!(!ok, "{out}");
    let patch = Patch::Merge(json!({"spec": {"finalizers": []}}));
    let refused = namespaces
        .patch_subresource("finalize", "stuck", &PatchParams::default(), &patch)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, kube::Error::Api(ref s) if s.code == 405),
        "{refused:?}"
    );
    // A finalizer that is neither standard nor qualified is refused.
    stuck.spec.as_mut().unwrap().finalizers = Some(vec!["cleanup".into()]);
    std::fs::write(dir.join("bad.json"), serde_json::to_vec(&stuck).unwrap()).unwrap();
    let (ok, out) = server.kubectl(&[
        "replace",
        "--raw",
        "/api/v1/namespaces/stuck/finalize",
        "-f",
        &dir.join("bad.json").to_string_lossy(),
    ]);
    assert!(!ok);
    assert!(
        out.contains("name is neither a standard finalizer name nor is it fully qualified"),
        "{out}"
    );

    // The well-known way out of a stuck namespace: its finalizers emptied by hand (on
    // the namespace as it is now: the controller may have written its status).
    let mut stuck = namespaces.get("stuck").await.unwrap();
    stuck.spec.as_mut().unwrap().finalizers = Some(Vec::new());
    std::fs::write(dir.join("ns.json"), serde_json::to_vec(&stuck).unwrap()).unwrap();
    server.kubectl_ok(&[
        "replace",
        "--raw",
        "/api/v1/namespaces/stuck/finalize",
        "-f",
        &dir.join("ns.json").to_string_lossy(),
    ]);
    wait_gone(&namespaces, "stuck").await;
    // Nothing it held comes back with a namespace of the same name.
    server.kubectl_ok(&["create", "namespace", "stuck"]);
    let left = server.kubectl_ok(&["-n", "stuck", "get", "widgets", "-o", "name"]);
    assert_eq!(left.trim(), "", "{left}");
    namespaces
        .delete("stuck", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&namespaces, "stuck").await;
}

//! Discovery as kubectl reads it from a real `rk8s-server`: aggregated discovery
//! (`apidiscovery.k8s.io/v2`), two requests for a cold `kubectl api-resources` where
//! the per-group-version documents took one each, custom kinds among the built-in
//! ones, and the document's `ETag` answered with 304.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::apiserver::Server;

/// The API alone: no scheduler or controller writes to these objects.
const API_ONLY: &[&str] = &["--disable-scheduler", "--disable-controllers"];

const WIDGET_CRD: &str = r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
 "metadata": {"name": "widgets.discovery.example.com"},
 "spec": {"group": "discovery.example.com", "scope": "Namespaced",
  "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
  "versions": [{"name": "v1", "served": true, "storage": true,
    "subresources": {"status": {}},
    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}"#;

/// kubectl's `Accept` for `/api` and `/apis` (client-go 1.30+).
const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_kubectl_reads_every_kind_in_two_requests() {
    let server = Server::start(API_ONLY);
    let dir = tempfile::tempdir().unwrap();
    let crd = dir.path().join("crd.json");
    std::fs::write(&crd, WIDGET_CRD).unwrap();
    server.kubectl_ok(&["apply", "-f", crd.to_str().unwrap()]);
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.discovery.example.com",
    ]);

    // A cache of its own: kubectl discovers from nothing, saying what it asks (-v=6).
    let cache = dir.path().join("cache");
    let out = server
        .kubectl_command()
        .args([
            "api-resources",
            "-v=6",
            "--cache-dir",
            cache.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    let asked: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("\"GET\"") || l.contains("GET https://"))
        .collect();
    assert_eq!(asked.len(), 2, "{}", asked.join("\n"));
    for (name, group) in [
        ("pods ", "v1"),
        ("deployments ", "apps/v1"),
        ("widgets ", "discovery.example.com/v1"),
        ("horizontalpodautoscalers ", "autoscaling/v2"),
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(name) && l.contains(group)),
            "no {name}in\n{stdout}"
        );
    }
    // What it learned serves the verbs: a custom kind by its short name.
    let out = server.kubectl_ok(&["get", "wd", "--cache-dir", cache.to_str().unwrap()]);
    assert!(out.contains("No resources found"), "{out}");

    // The document itself: its type, its groups, and 304 for the same ETag.
    let client = server.client().await;
    let ask = |etag: Option<&str>| {
        let mut r = http::Request::get("/apis").header("accept", AGGREGATED);
        if let Some(e) = etag {
            r = r.header("if-none-match", e);
        }
        r.body(kube::client::Body::empty()).unwrap()
    };
    let answer = client.send(ask(None)).await.unwrap();
    assert_eq!(answer.status(), 200);
    let header = |name: &str| {
        answer
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        header("content-type"),
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let etag = header("etag");
    assert!(!etag.is_empty());
    let body = answer.into_body().collect_bytes().await.unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["kind"], "APIGroupDiscoveryList");
    let widgets = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "discovery.example.com")
        .unwrap();
    let resource = &widgets["versions"][0]["resources"][0];
    assert_eq!(resource["resource"], "widgets");
    assert_eq!(resource["shortNames"], serde_json::json!(["wd"]));
    assert_eq!(resource["subresources"][0]["subresource"], "status");
    let again = client.send(ask(Some(&etag))).await.unwrap();
    assert_eq!(again.status(), 304);
    // A client that asks for the plain lists gets them.
    let plain = http::Request::get("/apis")
        .header("accept", "application/json")
        .body(kube::client::Body::empty())
        .unwrap();
    let answer = client.send(plain).await.unwrap();
    let body = answer.into_body().collect_bytes().await.unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["kind"], "APIGroupList");
}

#[test]
fn kubectl_version_names_the_commit_and_date_the_server_was_built_from() {
    let server = Server::start(API_ONLY);
    let out = server.kubectl_ok(&["version", "-o", "json"]);
    let version: serde_json::Value = serde_json::from_str(&out).unwrap();
    let server_version = &version["serverVersion"];
    assert_eq!(server_version["major"], "1");
    assert_eq!(server_version["compiler"], "rustc");
    // Built from this checkout: a commit, and its time in RFC 3339.
    let commit = server_version["gitCommit"].as_str().unwrap();
    assert!(
        commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
        "{server_version}"
    );
    let date = server_version["buildDate"].as_str().unwrap();
    assert!(date.parse::<jiff::Timestamp>().is_ok(), "{server_version}");
    assert!(
        ["clean", "dirty"].contains(&server_version["gitTreeState"].as_str().unwrap()),
        "{server_version}"
    );
}

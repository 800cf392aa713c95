//! The findings of a security probe of the API server, each as the exact request the
//! probe sent against a real `rk8s-server` process: what kube-apiserver answers to it
//! (status, reason, message), and that the server still answers afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use http::{Method, Request};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use support::apiserver::Server;

/// No scheduler or controller writes to the objects these tests look at.
const API_ONLY: &[&str] = &["--disable-scheduler", "--disable-controllers"];

/// What the server answered to one raw request.
struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

impl Answer {
    /// The body as JSON (a `Status` for errors).
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The `message` of a `Status` body.
    fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Every `Warning` header.
    fn warnings(&self) -> Vec<String> {
        self.headers
            .get_all(http::header::WARNING)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }
}

/// Sends `method path` with `body` (of `content_type`) exactly as written, as the
/// admin, without the client's retries (a 504 must be seen, not retried); at most 20 s.
async fn send(
    server: &Server,
    method: Method,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Answer {
    let headers = [(http::header::CONTENT_TYPE, content_type)];
    send_with(server, method, path, &headers, body).await
}

/// [`send`] with these `headers`.
async fn send_with(
    server: &Server,
    method: Method,
    path: &str,
    headers: &[(http::header::HeaderName, &str)],
    body: &[u8],
) -> Answer {
    let client = server.client_without_retries().await;
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    let request = request
        .body(kube::client::Body::from(body.to_vec()))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(20), client.send(request))
        .await
        .unwrap_or_else(|_| panic!("no answer to {path} within 20 s"))
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = tokio::time::timeout(Duration::from_secs(20), resp.into_body().collect_bytes())
        .await
        .unwrap_or_else(|_| panic!("the body of {path} did not end within 20 s"))
        .unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(server: &Server, path: &str) -> Answer {
    send(server, Method::GET, path, "application/json", b"").await
}

/// The server still serves: `/healthz` is `ok`.
async fn assert_alive(server: &Server) {
    let health = get(server, "/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
}

/// The store revision a list of pods is read at.
async fn current_revision(server: &Server) -> u64 {
    let list = get(server, "/api/v1/pods").await;
    assert_eq!(list.status, 200, "{}", list.body);
    list.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_percent_encoded_name_in_the_path_is_decoded() {
    let server = Server::start(API_ONLY);
    let pods: Api<Pod> = Api::namespaced(server.client().await, "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();

    let found = get(&server, "/api/v1/namespaces/default/pods/w%65b").await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.json()["metadata"]["name"], "web");
    // Decoded, `a%2Eb` is the name `a.b` (ConfigMaps are not served: a Service here).
    let missing = get(&server, "/api/v1/namespaces/default/services/a%2Eb").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.message(), r#"services "a.b" not found"#);
    // An escaped `/` stays in the name: it is not the `status` subresource.
    let slash = get(&server, "/api/v1/namespaces/default/pods/web%2Fstatus").await;
    assert_eq!(slash.status, 404);
    assert_eq!(slash.message(), r#"pods "web/status" not found"#);
    let bad = get(&server, "/api/v1/namespaces/default/pods/w%zzb").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.message(), r#"invalid URL escape "%zz""#);
    assert_alive(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_json_key_fails_strict_validation_and_is_a_warning_by_default() {
    let server = Server::start(API_ONLY);
    let body = br#"{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "d1", "name": "d2"}}"#;
    let strict = send(
        &server,
        Method::POST,
        "/api/v1/nodes?fieldValidation=Strict",
        "application/json",
        body,
    )
    .await;
    assert_eq!(strict.status, 400, "{}", strict.body);
    assert_eq!(strict.json()["reason"], "BadRequest");
    assert_eq!(
        strict.message(),
        r#"Node in version "v1" cannot be handled as a Node: strict decoding error: duplicate field "metadata.name""#
    );
    // `Warn`, the default: created (the last value wins), with a warning.
    let warned = send(
        &server,
        Method::POST,
        "/api/v1/nodes",
        "application/json",
        body,
    )
    .await;
    assert_eq!(warned.status, 201, "{}", warned.body);
    assert_eq!(warned.json()["metadata"]["name"], "d2");
    assert_eq!(
        warned.warnings(),
        [r#"299 - "duplicate field \"metadata.name\"""#]
    );
    let yaml = b"apiVersion: v1\nkind: Node\nmetadata:\n  name: d3\n  name: d4\n";
    let strict = send(
        &server,
        Method::POST,
        "/api/v1/nodes?fieldValidation=Strict",
        "application/yaml",
        yaml,
    )
    .await;
    assert_eq!(strict.status, 400, "{}", strict.body);
    assert_eq!(
        strict.message(),
        "Node in version \"v1\" cannot be handled as a Node: strict decoding error: yaml: unmarshal errors:\n  line 5: key \"name\" already set in map"
    );
    // A patch that brings an unknown field: kube's 422 on `patch`, naming the
    // patched object.
    let patched = send(
        &server,
        Method::PATCH,
        "/api/v1/nodes/d2?fieldValidation=Strict",
        "application/merge-patch+json",
        br#"{"spec": {"bogus": 1}}"#,
    )
    .await;
    assert_eq!(patched.status, 422, "{}", patched.body);
    let status = patched.json();
    assert_eq!(status["reason"], "Invalid");
    let message = patched.message();
    assert!(
        message.starts_with(r#" "" is invalid: patch: Invalid value: "{\"apiVersion\":\"v1\""#)
            && message.ends_with(r#"": strict decoding error: unknown field "spec.bogus""#),
        "{message}"
    );
    assert_eq!(status["details"]["causes"][0]["field"], "patch");
    assert_alive(&server).await;
}

/// Checks a kube-apiserver `Too large resource version` answer to `requested`.
fn assert_too_large(answer: &Answer, requested: u64, waited: Duration) {
    assert_eq!(answer.status, 504, "{}", answer.body);
    assert!(
        waited >= Duration::from_millis(2900),
        "answered after {waited:?}, before the 3 s wait"
    );
    let status = answer.json();
    assert_eq!(status["reason"], "Timeout");
    let message = answer.message();
    let prefix = format!("Timeout: Too large resource version: {requested}, current: ");
    assert!(
        message
            .strip_prefix(&prefix)
            .is_some_and(|n| n.parse::<u64>().is_ok()),
        "{message}"
    );
    assert_eq!(
        status["details"]["causes"],
        json!([{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}])
    );
    assert_eq!(status["details"]["retryAfterSeconds"], 1);
    assert_eq!(answer.headers.get(http::header::RETRY_AFTER).unwrap(), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_from_a_future_resource_version_waits_then_is_a_504() {
    let server = Server::start(API_ONLY);
    let now = current_revision(&server).await;
    for path in [
        "/api/v1/namespaces/default/pods?resourceVersion=999999999",
        "/api/v1/namespaces/default/pods?resourceVersion=999999999&resourceVersionMatch=NotOlderThan",
        "/api/v1/pods?resourceVersion=999999999&resourceVersionMatch=Exact",
    ] {
        let started = Instant::now();
        let answer = get(&server, path).await;
        assert_too_large(&answer, 999_999_999, started.elapsed());
        let current: u64 = answer
            .message()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(current >= now, "{}", answer.message());
    }
    // A revision the server has is served at once.
    let started = Instant::now();
    let reached = get(&server, &format!("/api/v1/pods?resourceVersion={now}")).await;
    assert_eq!(reached.status, 200, "{}", reached.body);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_alive(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_future_resource_version_is_a_504_before_the_stream_starts() {
    let server = Server::start(API_ONLY);
    for requested in [999_999_999_u64, i64::MAX as u64, i64::MAX as u64 + 1] {
        let started = Instant::now();
        let answer = get(
            &server,
            &format!("/api/v1/namespaces/default/pods?watch=true&resourceVersion={requested}"),
        )
        .await;
        // Not a `410 too old resource version`, as an overflow near 2^63 made it.
        assert_too_large(&answer, requested, started.elapsed());
    }
    // From the current revision, the watch starts at once.
    let now = current_revision(&server).await;
    let watch = get(
        &server,
        &format!("/api/v1/pods?watch=true&resourceVersion={now}&timeoutSeconds=1"),
    )
    .await;
    assert_eq!(watch.status, 200, "{}", watch.body);
    assert_alive(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_options_are_validated_as_kube_apiserver_validates_them() {
    let server = Server::start(API_ONLY);
    let cases = [
        (
            "/api/v1/pods?resourceVersionMatch=garbage&resourceVersion=1",
            r#"resourceVersionMatch: Unsupported value: "garbage": supported values: "Exact", "NotOlderThan", """#,
        ),
        (
            "/api/v1/pods?resourceVersionMatch=NotOlderThan",
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        ),
        (
            "/api/v1/pods?resourceVersionMatch=Exact&resourceVersion=0",
            r#"resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0""#,
        ),
        (
            "/api/v1/pods?watch=true&resourceVersionMatch=NotOlderThan&resourceVersion=1",
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ),
    ];
    for (path, error) in cases {
        let answer = get(&server, path).await;
        assert_eq!(answer.status, 422, "{path}: {}", answer.body);
        let status = answer.json();
        assert_eq!(status["reason"], "Invalid", "{path}");
        assert_eq!(
            answer.message(),
            format!(r#"ListOptions.meta.k8s.io "" is invalid: {error}"#),
            "{path}"
        );
        assert_eq!(status["details"]["kind"], "ListOptions", "{path}");
        assert_eq!(status["details"]["group"], "meta.k8s.io", "{path}");
    }
    assert_alive(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_create_with_ttl_0_makes_a_token_that_never_expires() {
    let server = Server::start(API_ONLY);
    let url = format!("https://{}:{}", server.host, server.port);
    let line =
        support::apiserver::token_create(&server.peer, &server.data_dir(), &url, &["--ttl", "0"]);
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[..2], ["rk8s-node", "join"], "{line}");
    let token = words[words.iter().position(|w| *w == "--token").unwrap() + 1];
    let store = server.store_client(&server.peer).await.unwrap();
    let found = store
        .range(
            rk8s_raftstore::proto::RangeRequest {
                key: rk8s_apiserver::auth::token_key(token).into_bytes(),
                ..Default::default()
            },
            true,
        )
        .await
        .unwrap();
    let record: rk8s_apiserver::auth::TokenRecord =
        serde_json::from_slice(&found.kvs[0].value).unwrap();
    assert_eq!(record.expires, None);
}

/// The server's resident memory, from `/proc/PID/status`.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_patch_copy_bomb_is_refused_and_the_server_stays_small() {
    let server = Server::start(API_ONLY);
    let nodes: Api<Node> = Api::all(server.client().await);
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    // Each copy doubles the annotations: 30 of them would make 2^30 times 1 kB.
    let mut ops = vec![json!({
        "op": "add", "path": "/metadata/annotations", "value": {"a": "x".repeat(1000)}
    })];
    for i in 0..30 {
        ops.push(json!({
            "op": "copy", "from": "/metadata/annotations", "path": format!("/metadata/annotations/c{i}")
        }));
    }
    let answer = send(
        &server,
        Method::PATCH,
        "/api/v1/nodes/n1",
        "application/json-patch+json",
        &serde_json::to_vec(&ops).unwrap(),
    )
    .await;
    assert!(
        [413, 422].contains(&answer.status),
        "{} {}",
        answer.status,
        answer.body
    );
    assert_alive(&server).await;
    let rss = rss_bytes(server.pid());
    assert!(rss < 500 * 1024 * 1024, "the server holds {rss} bytes");
}

/// `/readyz`, `/livez` and `/healthz` answer as kube-apiserver's do: `ok`, the list of
/// checks with `?verbose`, one check alone, 404 for a check there is not, a check
/// excluded; and the namespaces' discovery entry offers no collection delete (the
/// server answers it 405).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_are_listed_and_named_as_kube_apiservers() {
    let server = Server::start(&["--disable-scheduler", "--disable-controllers"]);
    assert_alive(&server).await;
    let verbose = get(&server, "/readyz?verbose").await;
    assert_eq!(
        (verbose.status, verbose.body.as_str()),
        (
            200,
            "[+]ping ok\n[+]log ok\n[+]etcd ok\nreadyz check passed\n"
        )
    );
    let live = get(&server, "/livez?verbose").await;
    assert_eq!(live.body, "[+]ping ok\n[+]log ok\nlivez check passed\n");
    let one = get(&server, "/readyz/etcd").await;
    assert_eq!((one.status, one.body.as_str()), (200, "ok"));
    let none = get(&server, "/healthz/nope").await;
    assert_eq!(none.status, 404, "{}", none.body);
    let excluded = get(&server, "/readyz?verbose&exclude=etcd").await;
    assert!(
        excluded.body.contains("[+]etcd excluded: ok") && !excluded.body.contains("[+]etcd ok"),
        "{}",
        excluded.body
    );
    let core = get(&server, "/api/v1").await.json();
    let namespaces = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "namespaces")
        .unwrap()
        .clone();
    assert!(
        !namespaces["verbs"].to_string().contains("deletecollection"),
        "{namespaces}"
    );
    let refused = send(
        &server,
        Method::DELETE,
        "/api/v1/namespaces",
        "application/json",
        b"",
    )
    .await;
    assert_eq!(refused.status, 405, "{}", refused.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_are_json_yaml_or_protobuf_as_accepted_and_anything_else_is_406() {
    let server = Server::start(API_ONLY);
    let accepting = async |path: &str, accept: &str| {
        let headers = [(http::header::ACCEPT, accept)];
        send_with(&server, Method::GET, path, &headers, b"").await
    };
    let path = "/api/v1/namespaces/default";
    let yaml = accepting(path, "application/yaml").await;
    assert_eq!(yaml.status, 200);
    assert_eq!(yaml.headers[http::header::CONTENT_TYPE], "application/yaml");
    assert!(
        yaml.body.starts_with("apiVersion: v1\nkind: Namespace\n"),
        "{}",
        yaml.body
    );
    let list = accepting("/api/v1/namespaces", "application/yaml").await;
    assert!(list.body.contains("kind: NamespaceList"), "{}", list.body);
    assert!(list.body.contains("name: kube-system"), "{}", list.body);
    // An error is a Status in the same encoding.
    let missing = accepting("/api/v1/namespaces/nope", "application/yaml").await;
    assert_eq!(missing.status, 404);
    assert!(
        missing.body.contains("reason: NotFound"),
        "{}",
        missing.body
    );
    // Nothing served: kube's 406, before anything is done.
    let xml = accepting(path, "application/xml").await;
    assert_eq!(xml.status, 406, "{}", xml.body);
    assert_eq!(xml.json()["reason"], "NotAcceptable");
    assert_eq!(
        xml.message(),
        "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
    );
    let post = send_with(
        &server,
        Method::POST,
        "/api/v1/namespaces/default/configmaps",
        &[
            (http::header::ACCEPT, "text/html"),
            (http::header::CONTENT_TYPE, "application/json"),
        ],
        br#"{"metadata":{"name":"never"}}"#,
    )
    .await;
    assert_eq!(post.status, 406);
    assert_eq!(
        get(&server, "/api/v1/namespaces/default/configmaps/never")
            .await
            .status,
        404
    );
    // A watch has no YAML form.
    let watch = accepting(
        "/api/v1/namespaces?watch=1&timeoutSeconds=1",
        "application/yaml",
    )
    .await;
    assert_eq!(
        (watch.status, watch.message().as_str()),
        (
            406,
            "only the following media types are accepted: application/json, application/vnd.kubernetes.protobuf"
        )
    );
    // A range among others still picks what is served.
    assert_eq!(
        accepting(path, "application/xml, */*;q=0.5").await.status,
        200
    );
}

//! The API's encodings side by side (`make bench`): one real release `rk8s-server`
//! (`--disable-scheduler --disable-controllers`) over HTTPS, driven by raw requests
//! through the `kube` client so that each request chooses its encoding.
//!
//! - 10,000 ConfigMaps created by 64 concurrent clients with JSON bodies, and 10,000
//!   with protobuf bodies (`k8s-pb` messages written by prost in the `k8s\0` +
//!   `runtime.Unknown` envelope); each answer is decoded in the encoding it came in;
//! - 10,000 ConfigMaps listed in one request with `Accept: application/json` and with
//!   `Accept: application/vnd.kubernetes.protobuf`, the whole answer decoded
//!   (serde_json into k8s-openapi's list, prost into k8s-pb's `ConfigMapList`);
//! - the same for 10,000 realistic Pods (created with JSON): the goal is the
//!   protobuf list at least 2x faster than the JSON one;
//! - a `Widget` CustomResourceDefinition and 10,000 widgets, created and listed in JSON
//!   (Kubernetes serves custom resources in JSON only).
//!
//! Each list is split into the server's part (until the response headers: a protobuf
//! list comes whole, so the server has read and encoded it by then; a JSON list longer
//! than a page is streamed, its headers sent with its first page, and the server's
//! work on the other pages falls in the transfer), the transfer of the body and the
//! client's decode; the server's stages are then
//! repeated in this process on the same 10,000 pods (the list written from the stored
//! bytes as JSON and as protobuf, and the way through decoded objects the server took
//! before) to show where its time goes. Each list is measured after one unmeasured
//! list of each; the server keeps listed objects' protobuf messages, so the measured
//! protobuf lists copy them, and that first list (every message transcoded) is shown
//! in rows of its own. Prints tables and writes `target/bench/api_encodings.json`.
//! Client and server share this machine's cores.
//!
//! `BENCH_OBJECTS` (default 10,000) and `BENCH_LISTS` (default 10) shorten a trial run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "api_encodings/stages.rs"]
mod stages;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::server::Server;
use common::{ms, percentile, print_table, write_json};
use http::{Method, StatusCode};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use prost::Message;
use serde_json::{Value, json};

// The server's allocator, so that the in-process stages allocate as the server does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const JSON: &str = "application/json";
const PROTOBUF: &str = rk8s_api::protobuf::MEDIA_TYPE;
const CLIENTS: usize = 64;
const WIDGET_GROUP: &str = "bench.example.com";

/// The answer to one raw request, with when its headers and its whole body arrived.
struct Answer {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
    headers_at: Duration,
    body_at: Duration,
}

/// Sends one request with the admin credentials; a 429 is retried after 50 ms (the
/// server's in-flight limit; never reached at 64 clients, but not a failure if it is).
async fn send(
    client: &kube::Client,
    method: &Method,
    path: &str,
    content_type: Option<&str>,
    accept: &str,
    body: &[u8],
) -> Answer {
    loop {
        let started = Instant::now();
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("Accept", accept);
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        let req = req.body(kube::client::Body::from(body.to_vec())).unwrap();
        let resp = client
            .send(req)
            .await
            .unwrap_or_else(|e| panic!("{method} {path} failed: {e}"));
        let headers_at = started.elapsed();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = resp.into_body().collect_bytes().await.unwrap();
        let body_at = started.elapsed();
        if status == StatusCode::TOO_MANY_REQUESTS {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        return Answer {
            status,
            content_type,
            body: bytes.to_vec(),
            headers_at,
            body_at,
        };
    }
}

/// As [`send`], failing unless the answer is `expected`.
async fn send_ok(
    client: &kube::Client,
    method: &Method,
    path: &str,
    content_type: Option<&str>,
    accept: &str,
    body: &[u8],
    expected: StatusCode,
) -> Answer {
    let a = send(client, method, path, content_type, accept, body).await;
    assert_eq!(
        a.status,
        expected,
        "{method} {path}: {}",
        String::from_utf8_lossy(&a.body)
    );
    a
}

/// A protobuf body: the magic and a `runtime.Unknown` envelope around `raw`, as
/// client-go writes it (`k8s.io/apimachinery/pkg/runtime/serializer/protobuf`).
fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = Vec::with_capacity(unknown.encoded_len() + 4);
    body.extend_from_slice(rk8s_api::protobuf::MAGIC);
    unknown.encode(&mut body).unwrap();
    body
}

/// The object message inside a protobuf body.
fn unwrap_envelope(body: &[u8]) -> Vec<u8> {
    let rest = body
        .strip_prefix(rk8s_api::protobuf::MAGIC)
        .expect("a protobuf body starts with k8s\\0");
    k8s_pb::apimachinery::pkg::runtime::Unknown::decode(rest)
        .unwrap()
        .raw
        .unwrap_or_default()
}

/// The labels and data of ConfigMap `i`: an application's settings, about 300 bytes.
fn config_content(i: usize) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let labels = [
        ("app", format!("shop-{}", i % 50)),
        ("tier", "backend".into()),
        ("env", "prod".into()),
    ];
    let data = [
        ("LOG_LEVEL", "info".to_string()),
        ("FEATURE_FLAGS", "search,checkout,recommendations".into()),
        (
            "app.properties",
            format!(
                "server.port=8080\nserver.threads=16\ncache.ttl=300s\n\
                 db.url=postgres://db-{}.prod.svc:5432/shop\ndb.pool.size=20\n",
                i % 8
            ),
        ),
    ];
    let own = |kv: &[(&str, String)]| kv.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    (own(&labels), own(&data))
}

/// ConfigMap `i` as JSON, written from k8s-openapi's type.
fn config_map_json(i: usize) -> Vec<u8> {
    let (labels, data) = config_content(i);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(format!("settings-{i}")),
            labels: Some(labels),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    };
    serde_json::to_vec(&cm).unwrap()
}

/// ConfigMap `i` as protobuf, written from k8s-pb's message.
fn config_map_protobuf(i: usize) -> Vec<u8> {
    use k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let (labels, data) = config_content(i);
    let cm = k8s_pb::api::core::v1::ConfigMap {
        metadata: Some(ObjectMeta {
            name: Some(format!("settings-{i}")),
            labels,
            ..Default::default()
        }),
        data,
        ..Default::default()
    };
    envelope("v1", "ConfigMap", cm.encode_to_vec())
}

/// Pod `i`: one web container of a Deployment's pod template, with ports, env,
/// resources, a probe and a config volume (about 1.5 KB as stored).
fn pod_json(i: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("web-7d9f8b6c5d-{i:05}"),
            "labels": {"app": "web", "tier": "frontend", "version": "v1.4.2",
                       "pod-template-hash": "7d9f8b6c5d"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}
        },
        "spec": {
            "containers": [{
                "name": "web",
                "image": "registry.example.com/shop/web:1.4.2",
                "args": ["--port=8080", "--log-level=info"],
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                          {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
                "env": [{"name": "LOG_LEVEL", "value": "info"},
                        {"name": "CACHE_TTL", "value": "300s"},
                        {"name": "POD_NAME",
                         "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                              "limits": {"cpu": "500m", "memory": "256Mi"}},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                                   "periodSeconds": 10},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/web"}]
            }],
            "volumes": [{"name": "config", "configMap": {"name": "web-config"}}],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30
        }
    }))
    .unwrap()
}

/// The `Widget` CustomResourceDefinition: namespaced, a small structural schema.
fn widget_crd() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{WIDGET_GROUP}")},
        "spec": {
            "group": WIDGET_GROUP,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                      "listKind": "WidgetList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "required": ["color", "size"],
                        "properties": {
                            "color": {"type": "string", "enum": ["red", "green", "blue"]},
                            "size": {"type": "integer", "minimum": 0},
                            "tags": {"type": "array", "items": {"type": "string"}}
                        }
                    }}
                }}
            }]
        }
    }))
    .unwrap()
}

/// Widget `i`.
fn widget_json(i: usize) -> Vec<u8> {
    let color = ["red", "green", "blue"][i % 3];
    serde_json::to_vec(&json!({
        "apiVersion": format!("{WIDGET_GROUP}/v1"),
        "kind": "Widget",
        "metadata": {"name": format!("widget-{i}"), "labels": {"app": "shop"}},
        "spec": {"color": color, "size": i % 10, "tags": ["stock", "shop"]}
    }))
    .unwrap()
}

/// A widget as a typed client would read it.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Widget {
    metadata: ObjectMeta,
    spec: WidgetSpec,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct WidgetSpec {
    color: String,
    size: i64,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(serde::Deserialize)]
struct WidgetList {
    items: Vec<Widget>,
}

/// How a create request is written and its answer read.
#[derive(Clone)]
struct Creates {
    path: String,
    /// `Content-Type` and `Accept`: the answer comes in the body's encoding.
    media_type: &'static str,
    body: fn(usize) -> Vec<u8>,
    /// Decodes the created object the server answers with.
    check: fn(&[u8]),
}

fn check_config_map_json(b: &[u8]) {
    let cm: ConfigMap = serde_json::from_slice(b).unwrap();
    assert!(cm.metadata.uid.is_some());
}

fn check_config_map_protobuf(b: &[u8]) {
    let cm = k8s_pb::api::core::v1::ConfigMap::decode(unwrap_envelope(b).as_slice()).unwrap();
    assert!(cm.metadata.and_then(|m| m.uid).is_some());
}

fn check_pod_json(b: &[u8]) {
    let pod: Pod = serde_json::from_slice(b).unwrap();
    assert!(pod.metadata.uid.is_some());
}

fn check_widget_json(b: &[u8]) {
    let w: Widget = serde_json::from_slice(b).unwrap();
    assert!(w.metadata.uid.is_some());
}

/// Latencies (sorted) and wall time of a run of requests.
struct Timed {
    latencies: Vec<Duration>,
    wall: Duration,
}

impl Timed {
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }
    fn p(&self, q: f64) -> f64 {
        ms(percentile(&self.latencies, q))
    }
}

/// Creates objects `from..from + total` from `CLIENTS` concurrent tasks; each request
/// is timed from writing its body to having decoded the answer.
async fn create_all(client: &kube::Client, c: &Creates, from: usize, total: usize) -> Timed {
    let next = Arc::new(AtomicUsize::new(from));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, c, next) = (client.clone(), c.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= from + total {
                    return lat;
                }
                let t = Instant::now();
                let body = (c.body)(i);
                let a = send_ok(
                    &client,
                    &Method::POST,
                    &c.path,
                    Some(c.media_type),
                    c.media_type,
                    &body,
                    StatusCode::CREATED,
                )
                .await;
                (c.check)(&a.body);
                lat.push(t.elapsed());
            }
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    latencies.sort();
    Timed {
        latencies,
        wall: started.elapsed(),
    }
}

/// How a list is asked for and decoded.
struct Lists {
    path: String,
    accept: &'static str,
    /// The `Content-Type` the answer must have.
    answered_as: &'static str,
    /// Decodes the whole body; returns the number of items.
    decode: fn(&[u8]) -> usize,
}

fn decode_config_maps_json(b: &[u8]) -> usize {
    serde_json::from_slice::<k8s_openapi::List<ConfigMap>>(b)
        .unwrap()
        .items
        .len()
}

fn decode_config_maps_protobuf(b: &[u8]) -> usize {
    k8s_pb::api::core::v1::ConfigMapList::decode(unwrap_envelope(b).as_slice())
        .unwrap()
        .items
        .len()
}

fn decode_pods_json(b: &[u8]) -> usize {
    serde_json::from_slice::<k8s_openapi::List<Pod>>(b)
        .unwrap()
        .items
        .len()
}

fn decode_pods_protobuf(b: &[u8]) -> usize {
    k8s_pb::api::core::v1::PodList::decode(unwrap_envelope(b).as_slice())
        .unwrap()
        .items
        .len()
}

fn decode_widgets_json(b: &[u8]) -> usize {
    serde_json::from_slice::<WidgetList>(b).unwrap().items.len()
}

/// The repetitions of one list: whole time (request to decoded), the server's part
/// (until the headers), the body's transfer, the client's decode; sorted.
#[derive(Default)]
struct ListTimes {
    total: Vec<Duration>,
    server: Vec<Duration>,
    transfer: Vec<Duration>,
    decode: Vec<Duration>,
    bytes: usize,
    /// The last answer's body (for the in-process stages).
    last_body: Vec<u8>,
    /// The unmeasured first list's server, transfer, decode and whole times: the
    /// server's first protobuf list of objects transcodes every one (later lists copy
    /// the messages it kept).
    first: [Duration; 4],
}

impl ListTimes {
    async fn sample(&mut self, client: &kube::Client, l: &Lists, expected: usize, keep: bool) {
        let a = send_ok(
            client,
            &Method::GET,
            &l.path,
            None,
            l.accept,
            &[],
            StatusCode::OK,
        )
        .await;
        assert!(
            a.content_type.starts_with(l.answered_as),
            "{} with Accept {} came back as {}",
            l.path,
            l.accept,
            a.content_type
        );
        let t = Instant::now();
        let items = (l.decode)(&a.body);
        let decode = t.elapsed();
        assert_eq!(items, expected, "{} listed {items} items", l.path);
        if !keep {
            let transfer = a.body_at - a.headers_at;
            self.first = [a.headers_at, transfer, decode, a.body_at + decode];
        }
        if keep {
            self.total.push(a.body_at + decode);
            self.server.push(a.headers_at);
            self.transfer.push(a.body_at - a.headers_at);
            self.decode.push(decode);
            self.bytes = a.body.len();
            self.last_body = a.body;
        }
    }

    fn finish(&mut self) {
        for v in [
            &mut self.total,
            &mut self.server,
            &mut self.transfer,
            &mut self.decode,
        ] {
            v.sort();
        }
    }

    fn median(&self) -> f64 {
        ms(percentile(&self.total, 0.5))
    }

    /// MB/s of body over the median whole time.
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / (self.median() / 1000.0)
    }

    fn json(&self) -> Value {
        let m = |v: &[Duration], q| ms(percentile(v, q));
        json!({
            "p50_ms": m(&self.total, 0.5), "p99_ms": m(&self.total, 0.99),
            "server_p50_ms": m(&self.server, 0.5), "transfer_p50_ms": m(&self.transfer, 0.5),
            "decode_p50_ms": m(&self.decode, 0.5), "body_bytes": self.bytes,
            "mb_per_s": self.mb_per_s(), "samples": self.total.len(),
            "first_ms": ms(self.first[3]), "first_server_ms": ms(self.first[0]),
        })
    }
}

/// `repetitions` lists of each of `ls`, in turns (so that the machine's slower
/// spells fall on every encoding alike), after one unmeasured list of each.
async fn list_in_turns(
    client: &kube::Client,
    ls: &[&Lists],
    expected: usize,
    repetitions: usize,
) -> Vec<ListTimes> {
    let mut times: Vec<ListTimes> = ls.iter().map(|_| ListTimes::default()).collect();
    for round in 0..=repetitions {
        for (l, t) in ls.iter().zip(times.iter_mut()) {
            t.sample(client, l, expected, round > 0).await;
        }
    }
    for t in &mut times {
        t.finish();
    }
    times
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let objects = env_number("BENCH_OBJECTS", 10_000);
    let repetitions = env_number("BENCH_LISTS", 10);
    let started = Instant::now();
    let server = Server::start(&["--disable-scheduler", "--disable-controllers"]);
    let client = server.client().await;
    let post_json = |path: &str, body: Vec<u8>| {
        let client = client.clone();
        let path = path.to_string();
        async move {
            send_ok(
                &client,
                &Method::POST,
                &path,
                Some(JSON),
                JSON,
                &body,
                StatusCode::CREATED,
            )
            .await
        }
    };
    for ns in ["cm-json", "cm-protobuf", "pods", "widgets"] {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        post_json("/api/v1/namespaces", serde_json::to_vec(&body).unwrap()).await;
    }

    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut report = serde_json::Map::new();
    let create_row = |t: &Timed| {
        format!(
            "{:.0} creates/s, p50 {:.1} ms, p99 {:.1} ms",
            t.per_second(),
            t.p(0.5),
            t.p(0.99)
        )
    };
    let create_json = |t: &Timed| {
        json!({"per_second": t.per_second(), "p50_ms": t.p(0.5), "p99_ms": t.p(0.99),
               "requests": t.latencies.len(), "clients": CLIENTS})
    };

    // 1. Creates of ConfigMaps, JSON and protobuf in turns of 1,000 (after a warm-up of
    // each), so that both meet the same machine.
    let cm_json = Creates {
        path: "/api/v1/namespaces/cm-json/configmaps".into(),
        media_type: JSON,
        body: config_map_json,
        check: check_config_map_json,
    };
    let cm_protobuf = Creates {
        path: "/api/v1/namespaces/cm-protobuf/configmaps".into(),
        media_type: PROTOBUF,
        body: config_map_protobuf,
        check: check_config_map_protobuf,
    };
    let warm = 200.min(objects);
    create_all(&client, &cm_json, 0, warm).await;
    create_all(&client, &cm_protobuf, 0, warm).await;
    let turn = 1000.min(objects);
    let (mut json_t, mut pb_t) = (Vec::new(), Vec::new());
    let (mut json_wall, mut pb_wall) = (Duration::ZERO, Duration::ZERO);
    let mut at = warm;
    while at < warm + objects {
        let n = turn.min(warm + objects - at);
        let t = create_all(&client, &cm_json, at, n).await;
        json_wall += t.wall;
        json_t.extend(t.latencies);
        let t = create_all(&client, &cm_protobuf, at, n).await;
        pb_wall += t.wall;
        pb_t.extend(t.latencies);
        at += n;
    }
    json_t.sort();
    pb_t.sort();
    let (json_t, pb_t) = (
        Timed {
            latencies: json_t,
            wall: json_wall,
        },
        Timed {
            latencies: pb_t,
            wall: pb_wall,
        },
    );
    eprintln!("created ConfigMaps ({:.0?})", started.elapsed());
    rows.push(vec![
        format!("create {objects} ConfigMaps, {CLIENTS} clients"),
        create_row(&json_t),
        create_row(&pb_t),
        format!(
            "protobuf/JSON creates/s {:.2}×",
            pb_t.per_second() / json_t.per_second()
        ),
    ]);
    report.insert(
        "create_config_maps".into(),
        json!({"json": create_json(&json_t), "protobuf": create_json(&pb_t)}),
    );

    // 2. Lists of those ConfigMaps (the JSON-created ones; warm-up objects included).
    // And the namespace's `kube-root-ca.crt`, which the server publishes in every
    // namespace (with the controllers off too).
    let cm_total = objects + warm + 1;
    let cm_path = "/api/v1/namespaces/cm-json/configmaps".to_string();
    let cm_lists = list_in_turns(
        &client,
        &[
            &Lists {
                path: cm_path.clone(),
                accept: JSON,
                answered_as: JSON,
                decode: decode_config_maps_json,
            },
            &Lists {
                path: cm_path,
                accept: PROTOBUF,
                answered_as: PROTOBUF,
                decode: decode_config_maps_protobuf,
            },
        ],
        cm_total,
        repetitions,
    )
    .await;
    eprintln!("listed ConfigMaps ({:.0?})", started.elapsed());
    let list_cell = |t: &ListTimes| {
        format!(
            "p50 {:.0} ms, p99 {:.0} ms, {:.1} MB at {:.0} MB/s",
            t.median(),
            ms(percentile(&t.total, 0.99)),
            t.bytes as f64 / 1e6,
            t.mb_per_s()
        )
    };
    rows.push(vec![
        format!("list {cm_total} ConfigMaps (one request, decoded)"),
        list_cell(&cm_lists[0]),
        list_cell(&cm_lists[1]),
        format!(
            "protobuf {:.2}× faster",
            cm_lists[0].median() / cm_lists[1].median()
        ),
    ]);
    report.insert(
        "list_config_maps".into(),
        json!({"items": cm_total, "json": cm_lists[0].json(), "protobuf": cm_lists[1].json()}),
    );

    // 3. Pods: created with JSON, listed both ways.
    let pods = Creates {
        path: "/api/v1/namespaces/pods/pods".into(),
        media_type: JSON,
        body: pod_json,
        check: check_pod_json,
    };
    let pods_t = create_all(&client, &pods, 0, objects).await;
    eprintln!("created Pods ({:.0?})", started.elapsed());
    let pod_path = "/api/v1/namespaces/pods/pods".to_string();
    let pod_lists = list_in_turns(
        &client,
        &[
            &Lists {
                path: pod_path.clone(),
                accept: JSON,
                answered_as: JSON,
                decode: decode_pods_json,
            },
            &Lists {
                path: pod_path,
                accept: PROTOBUF,
                answered_as: PROTOBUF,
                decode: decode_pods_protobuf,
            },
        ],
        objects,
        repetitions,
    )
    .await;
    eprintln!("listed Pods ({:.0?})", started.elapsed());
    let pod_ratio = pod_lists[0].median() / pod_lists[1].median();
    let goal_met = pod_ratio >= 2.0;
    rows.push(vec![
        format!("create {objects} Pods, {CLIENTS} clients"),
        create_row(&pods_t),
        "(created with JSON)".into(),
        String::new(),
    ]);
    rows.push(vec![
        format!("list {objects} Pods (one request, decoded)"),
        list_cell(&pod_lists[0]),
        list_cell(&pod_lists[1]),
        format!(
            "protobuf {pod_ratio:.2}× faster: goal ≥ 2× {}",
            if goal_met { "met" } else { "NOT met" }
        ),
    ]);
    report.insert("create_pods".into(), json!({"json": create_json(&pods_t)}));
    report.insert(
        "list_pods".into(),
        json!({"items": objects, "json": pod_lists[0].json(), "protobuf": pod_lists[1].json(),
               "protobuf_speedup": pod_ratio, "goal_speedup": 2.0, "goal_met": goal_met}),
    );

    // 4. A CustomResourceDefinition and its objects: JSON only.
    post_json(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        widget_crd(),
    )
    .await;
    let widget_path = format!("/apis/{WIDGET_GROUP}/v1/namespaces/widgets/widgets");
    let deadline = Instant::now() + Duration::from_secs(30);
    while send(&client, &Method::GET, &widget_path, None, JSON, &[])
        .await
        .status
        != StatusCode::OK
    {
        assert!(Instant::now() < deadline, "widgets were not served in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let widgets = Creates {
        path: widget_path.clone(),
        media_type: JSON,
        body: widget_json,
        check: check_widget_json,
    };
    let widgets_t = create_all(&client, &widgets, 0, objects).await;
    eprintln!("created widgets ({:.0?})", started.elapsed());
    let widget_lists = list_in_turns(
        &client,
        &[&Lists {
            path: widget_path.clone(),
            accept: JSON,
            answered_as: JSON,
            decode: decode_widgets_json,
        }],
        objects,
        repetitions,
    )
    .await;
    // A client that prefers protobuf gets JSON, as from kube-apiserver.
    let fallback = send_ok(
        &client,
        &Method::GET,
        &format!("{widget_path}?limit=1"),
        None,
        &format!("{PROTOBUF}, {JSON}"),
        &[],
        StatusCode::OK,
    )
    .await
    .content_type;
    let not_served = "n/a: custom resources are JSON only".to_string();
    rows.push(vec![
        format!("create {objects} Widgets (custom), {CLIENTS} clients"),
        create_row(&widgets_t),
        not_served.clone(),
        String::new(),
    ]);
    rows.push(vec![
        format!("list {objects} Widgets (one request, decoded)"),
        list_cell(&widget_lists[0]),
        not_served,
        format!("Accept protobuf, JSON → {fallback}"),
    ]);
    report.insert(
        "create_widgets".into(),
        json!({"json": create_json(&widgets_t), "protobuf": null}),
    );
    report.insert(
        "list_widgets".into(),
        json!({"items": objects, "json": widget_lists[0].json(), "protobuf": null,
               "protobuf_preferred_answered_as": fallback}),
    );
    eprintln!("listed widgets ({:.0?})", started.elapsed());

    // Where a list of pods goes: the server's part, transfer, the client's decode; then
    // the server's stages repeated here.
    let p50 = |v: &[Duration]| ms(percentile(v, 0.5));
    let split = |t: &ListTimes| {
        vec![
            format!("{:.0}", p50(&t.server)),
            format!("{:.0}", p50(&t.transfer)),
            format!("{:.0}", p50(&t.decode)),
            format!("{:.0}", t.median()),
        ]
    };
    let mut split_rows = Vec::new();
    for (what, t) in [
        ("ConfigMaps, JSON", &cm_lists[0]),
        ("ConfigMaps, protobuf", &cm_lists[1]),
        ("Pods, JSON", &pod_lists[0]),
        ("Pods, protobuf", &pod_lists[1]),
        ("Widgets, JSON", &widget_lists[0]),
    ] {
        let mut row = vec![what.to_string()];
        row.extend(split(t));
        split_rows.push(row);
    }
    for (what, t) in [
        ("Pods, JSON: first list", &pod_lists[0]),
        ("Pods, protobuf: first list (transcoded)", &pod_lists[1]),
    ] {
        let mut row = vec![what.to_string()];
        row.extend(t.first.iter().map(|d| format!("{:.0}", ms(*d))));
        split_rows.push(row);
    }
    let stages = stages::server_stages(&pod_lists[0].last_body);
    drop(server);
    report.insert(
        "pod_list_server_stages_ms".into(),
        stages
            .iter()
            .map(|(s, v)| (s.to_string(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    );

    println!(
        "\nrk8s API encodings: one member, HTTPS on loopback, client in the same machine \
         ({CLIENTS} clients for creates, {repetitions} lists of each)\n"
    );
    print_table(&["case", "JSON", "protobuf", ""], &rows);
    println!("\nwhere a list's time goes (p50 ms)\n");
    print_table(
        &[
            "list",
            "server (until headers)",
            "transfer",
            "client decode",
            "whole",
        ],
        &split_rows,
    );
    println!(
        "\nthe server's list stages for {objects} pods, repeated in this process (median of 3, ms)\n"
    );
    print_table(
        &["stage", "ms"],
        &stages
            .iter()
            .map(|(s, v)| vec![s.to_string(), format!("{v:.0}")])
            .collect::<Vec<_>>(),
    );
    println!("\ntook {:.0?}", started.elapsed());
    write_json(
        "api_encodings",
        &json!({"benchmark": "api_encodings", "objects": objects,
                "list_repetitions": repetitions, "results": report}),
    );
}

//! `application/vnd.kubernetes.protobuf` against a real `rk8s-server`: the Debian
//! `kubectl` (whose typed clients send protobuf bodies and ask for protobuf answers)
//! creates and reads namespaces, config maps, pods and services; raw requests check
//! GET, LIST, WATCH, POST and error `Status` bodies with `k8s-pb`'s prost types, which
//! nobody on this project wrote.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use http_body_util::BodyExt;
use k8s_pb::api::core::v1::{ConfigMap, ConfigMapList};
use k8s_pb::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Status, WatchEvent};
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message;
use support::apiserver::Server;

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// The `Unknown` envelope of a protobuf body, checked for the magic `k8s\0`.
fn envelope(body: &[u8]) -> Unknown {
    assert!(body.starts_with(b"k8s\0"), "not protobuf: {body:?}");
    Unknown::decode(&body[4..]).unwrap()
}

/// A protobuf body: the magic and an `Unknown` envelope around `raw`.
fn protobuf_body(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let mut body = b"k8s\0".to_vec();
    Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    }
    .encode(&mut body)
    .unwrap();
    body
}

/// A request with the admin credentials of `client`: status, content type, body.
async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, String, Vec<u8>) {
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Accept", format!("{PROTOBUF}, */*"));
    if let Some(ct) = content_type {
        req = req.header("Content-Type", ct);
    }
    let resp = client
        .send(req.body(kube::client::Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = resp.into_body().collect_bytes().await.unwrap();
    (status, ct, bytes.to_vec())
}

#[test]
fn kubectl_speaks_protobuf_to_rk8s() {
    let server = Server::start(&["--disable-scheduler", "--disable-controllers"]);
    let run = |args: &[&str]| {
        let (ok, out) = server.kubectl(args);
        assert!(ok, "kubectl {args:?} failed:\n{out}");
        out
    };
    // -v=8 shows the headers: the body went as protobuf, the answer came back so.
    let out = run(&["create", "namespace", "x", "-v=8"]);
    assert!(out.contains("namespace/x created"), "{out}");
    assert!(
        out.contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "kubectl did not send protobuf:\n{out}"
    );
    // As kubectl -v=8 prints a status ("Response Status: 415 Unsupported Media Type in
    // 2 milliseconds"); a bare "415" may be a time or a resourceVersion.
    assert!(
        !out.contains("415 Unsupported Media Type"),
        "the server refused kubectl's protobuf:\n{out}"
    );
    let out = run(&["create", "configmap", "c", "-n", "x", "--from-literal=a=b"]);
    assert!(out.contains("configmap/c created"), "{out}");
    let out = run(&["get", "ns", "x", "-o", "yaml"]);
    assert!(
        out.contains("name: x") && out.contains("phase: Active"),
        "{out}"
    );
    assert!(
        !out.contains("generateName") && out.contains("creationTimestamp: \"20"),
        "{out}"
    );
    let out = run(&[
        "get",
        "configmap",
        "c",
        "-n",
        "x",
        "-o",
        "jsonpath={.data.a}",
    ]);
    assert_eq!(out.trim(), "b");
    // A pod and a service from kubectl's generators, sent as protobuf.
    let out = run(&[
        "run",
        "web",
        "-n",
        "x",
        "--image=nginx",
        "--port=80",
        "--labels=app=web",
    ]);
    assert!(out.contains("pod/web created"), "{out}");
    let out = run(&[
        "expose",
        "pod",
        "web",
        "-n",
        "x",
        "--port=8080",
        "--target-port=80",
    ]);
    assert!(out.contains("service/web exposed"), "{out}");
    let jsonpath = |kind: &str, path: &str| {
        let template = format!("jsonpath={path}");
        run(&["get", kind, "web", "-n", "x", "-o", &template])
            .trim()
            .to_string()
    };
    let ports = "{.spec.ports[0].port} {.spec.ports[0].targetPort} {.spec.selector.app}";
    assert_eq!(jsonpath("service", ports), "8080 80 web");
    let port = "{.spec.containers[0].ports[0].containerPort}";
    assert_eq!(jsonpath("pod", port), "80");
    // The pod is not bound to a node "" (Go sends every empty string).
    assert_eq!(jsonpath("pod", "{.spec.nodeName}"), "");
    let out = run(&["delete", "configmap", "c", "-n", "x"]);
    assert!(out.contains("deleted"), "{out}");
    let (ok, out) = server.kubectl(&["get", "configmap", "c", "-n", "x"]);
    assert!(!ok && out.contains("NotFound"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_protobuf_requests_are_answered_in_protobuf() {
    let server = Server::start(&["--disable-scheduler", "--disable-controllers"]);
    let client = server.client().await;
    // POST a ConfigMap written by prost.
    let cm = ConfigMap {
        metadata: Some(ObjectMeta {
            name: Some("settings".into()),
            namespace: Some(String::new()),
            labels: [("app".to_string(), "web".to_string())].into(),
            ..Default::default()
        }),
        data: [("mode".to_string(), "fast".to_string())].into(),
        binary_data: [("blob".to_string(), vec![0, 159, 255])].into(),
        ..Default::default()
    };
    let body = protobuf_body("v1", "ConfigMap", cm.encode_to_vec());
    let path = "/api/v1/namespaces/default/configmaps";
    let (code, ct, bytes) = send(&client, "POST", path, Some(PROTOBUF), body).await;
    assert_eq!(
        (code, ct.as_str()),
        (201, PROTOBUF),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let created = ConfigMap::decode(envelope(&bytes).raw.unwrap().as_slice()).unwrap();
    let meta = created.metadata.unwrap();
    assert!(meta.uid.is_some_and(|u| !u.is_empty()));
    assert!(meta.creation_timestamp.unwrap().seconds.unwrap() > 1_700_000_000);
    // GET.
    let (code, ct, bytes) = send(&client, "GET", &format!("{path}/settings"), None, vec![]).await;
    assert_eq!((code, ct.as_str()), (200, PROTOBUF));
    let unknown = envelope(&bytes);
    let meta = unknown.type_meta.clone().unwrap();
    assert_eq!(
        (meta.api_version.as_deref(), meta.kind.as_deref()),
        (Some("v1"), Some("ConfigMap"))
    );
    let got = ConfigMap::decode(unknown.raw.unwrap().as_slice()).unwrap();
    assert_eq!(got.data["mode"], "fast");
    assert_eq!(got.binary_data["blob"], [0, 159, 255]);
    // LIST.
    let (code, ct, bytes) = send(&client, "GET", path, None, vec![]).await;
    assert_eq!((code, ct.as_str()), (200, PROTOBUF));
    let list = ConfigMapList::decode(envelope(&bytes).raw.unwrap().as_slice()).unwrap();
    assert!(
        list.items
            .iter()
            .any(|c| c.metadata.as_ref().unwrap().name.as_deref() == Some("settings"))
    );
    assert!(
        list.metadata
            .unwrap()
            .resource_version
            .is_some_and(|rv| !rv.is_empty())
    );
    // An error is a protobuf Status.
    let (code, ct, bytes) = send(&client, "GET", &format!("{path}/missing"), None, vec![]).await;
    assert_eq!((code, ct.as_str()), (404, PROTOBUF));
    let status = Status::decode(envelope(&bytes).raw.unwrap().as_slice()).unwrap();
    assert_eq!(
        (status.code, status.reason.as_deref()),
        (Some(404), Some("NotFound"))
    );
    // A table stays JSON.
    let req = http::Request::builder()
        .uri(path)
        .header(
            "Accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io, application/json",
        )
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = client.send(req).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    // WATCH: length-prefixed frames of WatchEvent envelopes.
    let req = http::Request::builder()
        .uri(format!(
            "{path}?watch=1&timeoutSeconds=5&fieldSelector=metadata.name%3Dsettings"
        ))
        .header("Accept", format!("{PROTOBUF}, */*"))
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = client.send(req).await.unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.kubernetes.protobuf;stream=watch"
    );
    let mut body = resp.into_body();
    let mut stream = Vec::new();
    let event = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if stream.len() >= 4 {
                let len = u32::from_be_bytes(stream[..4].try_into().unwrap()) as usize;
                if stream.len() >= 4 + len {
                    break stream[4..4 + len].to_vec();
                }
            }
            let frame = body.frame().await.expect("the stream ended").unwrap();
            if let Ok(data) = frame.into_data() {
                stream.extend_from_slice(&data);
            }
        }
    })
    .await
    .unwrap();
    // A bare WatchEvent, as apimachinery's raw stream serializer writes it (client-go
    // reads nothing else); its object has the magic and envelope of a body.
    assert_ne!(&event[..4], b"k8s\0");
    let event = WatchEvent::decode(event.as_slice()).unwrap();
    assert_eq!(event.r#type.as_deref(), Some("ADDED"));
    let object = envelope(&event.object.unwrap().raw.unwrap());
    let watched = ConfigMap::decode(object.raw.unwrap().as_slice()).unwrap();
    assert_eq!(watched.data["mode"], "fast");
    // DELETE with protobuf DeleteOptions.
    let options = k8s_pb::apimachinery::pkg::apis::meta::v1::DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    let body = protobuf_body("v1", "DeleteOptions", options.encode_to_vec());
    let (code, ct, bytes) = send(
        &client,
        "DELETE",
        &format!("{path}/settings"),
        Some(PROTOBUF),
        body,
    )
    .await;
    assert_eq!(
        (code, ct.as_str()),
        (200, PROTOBUF),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
}

/// `value` without the `apiVersion` and `kind` of the objects embedded in it (those
/// with their own `metadata`, such as a StatefulSet's `volumeClaimTemplates`): JSON
/// carries them, as kube-apiserver's does, and protobuf messages have no place for them.
fn without_embedded_type_meta(value: &mut serde_json::Value, root: bool) {
    match value {
        serde_json::Value::Object(map) => {
            if !root && map.contains_key("metadata") {
                map.remove("apiVersion");
                map.remove("kind");
            }
            for v in map.values_mut() {
                without_embedded_type_meta(v, false);
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                without_embedded_type_meta(v, false);
            }
        }
        _ => {}
    }
}

/// Every built-in kind of the every-kind fixtures: created from a protobuf body (the
/// fixture's JSON encoded), read back in JSON and in protobuf; both answers hold the
/// same object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_round_trips_between_protobuf_and_json() {
    let server = Server::start(&["--disable-scheduler", "--disable-controllers"]);
    let client = server.client().await;
    let path = "tests/fixtures/every-kind.yaml";
    let text = std::fs::read_to_string(path).unwrap();
    let mut checked = 0;
    for m in rk8s_api::manifest::load(path, &text).unwrap() {
        let obj = m.object;
        let kind = obj.kind();
        if !rk8s_api::protobuf::has_schema(kind.api_version, kind.kind) {
            continue;
        }
        let ns = obj.namespace().map(|_| "default");
        let body = rk8s_api::protobuf::encode(&obj.to_value()).unwrap();
        let (code, _, answer) = send(
            &client,
            "POST",
            &kind.collection_path(ns),
            Some(PROTOBUF),
            body,
        )
        .await;
        assert_eq!(
            code,
            201,
            "{}: {}",
            obj.reference(),
            String::from_utf8_lossy(&answer)
        );
        let item = kind.object_path(ns, obj.name());
        let (code, ct, proto) = send(&client, "GET", &item, None, vec![]).await;
        assert_eq!((code, ct.as_str()), (200, PROTOBUF), "{}", obj.reference());
        let from_proto = rk8s_api::protobuf::decode(&proto).unwrap().object;
        let json = client
            .request_text(http::Request::get(&item).body(Vec::new()).unwrap())
            .await
            .unwrap();
        let mut from_json: serde_json::Value = serde_json::from_str(&json).unwrap();
        let mut from_proto = from_proto;
        without_embedded_type_meta(&mut from_json, true);
        without_embedded_type_meta(&mut from_proto, true);
        assert_eq!(from_proto, from_json, "{}", obj.reference());
        // The collection, written from the stored bytes: the same object in both.
        let list = kind.collection_path(ns);
        let (code, ct, proto) = send(&client, "GET", &list, None, vec![]).await;
        assert_eq!((code, ct.as_str()), (200, PROTOBUF), "{}", obj.reference());
        let mut proto_list = rk8s_api::protobuf::decode(&proto).unwrap().object;
        let json = client
            .request_text(http::Request::get(&list).body(Vec::new()).unwrap())
            .await
            .unwrap();
        let mut json_list: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(json_list["kind"], format!("{}List", kind.kind));
        // The lists' revisions may differ: the control plane writes meanwhile (each new
        // namespace gets its ServiceAccount and CA ConfigMap).
        for list in [&mut proto_list, &mut json_list] {
            list["metadata"]
                .as_object_mut()
                .map(|m| m.remove("resourceVersion"));
        }
        assert_eq!(proto_list["metadata"], json_list["metadata"]);
        let named = |list: &mut serde_json::Value| {
            let items = list["items"].as_array_mut().unwrap();
            let at = items
                .iter()
                .position(|i| i["metadata"]["name"] == obj.name())
                .unwrap_or_else(|| panic!("{} is not listed", obj.reference()));
            let mut item = items.swap_remove(at);
            // Protobuf's items carry no `apiVersion` and `kind`.
            without_embedded_type_meta(&mut item, false);
            item
        };
        let (in_proto, in_json) = (named(&mut proto_list), named(&mut json_list));
        without_embedded_type_meta(&mut from_json, false);
        assert_eq!(
            in_proto,
            from_json,
            "{} as listed in protobuf",
            obj.reference()
        );
        assert_eq!(in_json, from_json, "{} as listed in JSON", obj.reference());
        checked += 1;
    }
    assert!(checked >= 35, "only {checked} kinds have a protobuf schema");
}

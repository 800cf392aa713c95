//! A JSON list without a `limit` longer than a page (500), which a real `rk8s-server`
//! sends page by page (kube-apiserver's streaming list encoding): 1,234 ConfigMaps
//! read whole by raw request (chunked, no `Content-Length`), by the `kube` client, by
//! the Debian `kubectl` with `--chunk-size=0` and by the PyPI client, each the same
//! items in the same order as a paginated list, at one revision; a label selector
//! streams the items it selects; a write made while a list is under way is not in
//! it; protobuf and `limit`ed lists are still answered whole, each page saying how
//! many items follow it; a watch from resourceVersion "0" begins with every item,
//! sent a page at a time, then goes on with the changes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use futures_util::StreamExt;
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use support::apiserver::Server;

const NS: &str = "streamed";
const COUNT: usize = 1234;

/// GET `path` with `accept`: the status, the `Content-Length` if any, the body.
async fn get(client: &kube::Client, path: &str, accept: &str) -> (u16, Option<String>, Vec<u8>) {
    let req = http::Request::builder()
        .uri(path)
        .header("Accept", accept)
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let length = resp
        .headers()
        .get("content-length")
        .map(|v| v.to_str().unwrap().to_string());
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect_bytes().await.unwrap();
    (status, length, bytes.to_vec())
}

/// The next event of a watch, which must be an ADDED one: its object's name.
async fn next_added(
    stream: &mut (impl futures_util::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin),
) -> String {
    match tokio::time::timeout(std::time::Duration::from_secs(30), stream.next()).await {
        Ok(Some(Ok(WatchEvent::Added(cm)))) => cm.metadata.name.unwrap(),
        other => panic!("not an ADDED event: {other:?}"),
    }
}

fn names(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_long_list_is_streamed_and_reads_like_the_paginated_one() {
    let server = Server::start(&["--disable-scheduler", "--disable-controllers"]);
    let client = server.client().await;
    let (ok, out) = server.kubectl(&["create", "namespace", NS]);
    assert!(ok, "{out}");
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    futures_util::stream::iter(0..COUNT)
        .for_each_concurrent(16, |i| {
            let maps = maps.clone();
            async move {
                let cm: ConfigMap = serde_json::from_value(json!({
                    "metadata": {"name": format!("cm-{i:05}"),
                        "labels": {"half": if i % 2 == 0 { "even" } else { "odd" }}},
                    "data": {"i": i.to_string()},
                }))
                .unwrap();
                maps.create(&PostParams::default(), &cm).await.unwrap();
            }
        })
        .await;

    // The paginated list, pages of 500: what every other reading must equal. Each
    // page says how many items follow it, at the first page's revision: a ConfigMap
    // created after the first page, in the last page's range, is neither listed nor
    // counted.
    let mut paged = Vec::new();
    let mut remaining = Vec::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = maps.list(&params).await.unwrap();
        paged.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        remaining.push(page.metadata.remaining_item_count);
        if remaining.len() == 1 {
            let late: ConfigMap =
                serde_json::from_value(json!({"metadata": {"name": "cm-99999-late"}})).unwrap();
            maps.create(&PostParams::default(), &late).await.unwrap();
        }
        match page.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(t) => params = params.continue_token(&t),
            None => break,
        }
    }
    // The namespace's own `kube-root-ca.crt`, if the server makes one, and ours.
    assert!(paged.len() >= COUNT, "{} listed", paged.len());
    assert!(!paged.contains(&"cm-99999-late".to_string()));
    let total = paged.len() as i64;
    assert_eq!(
        remaining,
        [Some(total - 500), Some(total - 1000), None],
        "remainingItemCount of each page"
    );
    maps.delete("cm-99999-late", &Default::default())
        .await
        .unwrap();

    let path = format!("/api/v1/namespaces/{NS}/configmaps");
    let (status, length, body) = get(&client, &path, "application/json").await;
    assert_eq!(status, 200);
    assert_eq!(length, None, "a streamed list has no Content-Length");
    let list: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["apiVersion"], "v1");
    assert!(list["metadata"].get("continue").is_none());
    let revision: u64 = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert!(
        names(items) == paged,
        "the streamed list differs from the paginated one"
    );
    for item in items {
        assert_eq!(item["kind"], "ConfigMap");
        let rv: u64 = item["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(rv <= revision, "{rv} after the list's {revision}");
    }

    // A selector: the items it selects, streamed across the pages that hold them.
    let (_, length, body) = get(
        &client,
        &format!("{path}?labelSelector=half%3Deven"),
        "application/json",
    )
    .await;
    assert_eq!(length, None);
    let list: Value = serde_json::from_slice(&body).unwrap();
    let even = names(list["items"].as_array().unwrap());
    assert_eq!(even.len(), COUNT.div_ceil(2));
    assert!(
        even.iter()
            .all(|n| n[3..].parse::<usize>().unwrap() % 2 == 0)
    );

    // Whole as before: a page asked for, and protobuf.
    let (_, length, body) = get(&client, &format!("{path}?limit=600"), "application/json").await;
    assert!(length.is_some());
    let page: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 600);
    assert!(page["metadata"]["continue"].is_string());
    assert_eq!(page["metadata"]["remainingItemCount"], json!(total - 600));
    // A selector's page does not count what follows it (kube-apiserver neither).
    let (_, _, body) = get(
        &client,
        &format!("{path}?limit=100&labelSelector=half%3Deven"),
        "application/json",
    )
    .await;
    let page: Value = serde_json::from_slice(&body).unwrap();
    assert!(page["metadata"]["continue"].is_string());
    assert!(page["metadata"].get("remainingItemCount").is_none());
    let (status, length, body) = get(&client, &path, "application/vnd.kubernetes.protobuf").await;
    assert_eq!(status, 200);
    assert!(length.is_some());
    assert!(body.starts_with(b"k8s\0"));

    // A write while a list is under way: the list is of its first page's revision.
    let req = http::Request::builder()
        .uri(&path)
        .header("Accept", "application/json")
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let late: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "cm-zzzzz"}})).unwrap();
    maps.create(&PostParams::default(), &late).await.unwrap();
    let rest = body.collect().await.unwrap().to_bytes();
    let list: Value = serde_json::from_slice(&[first.as_ref(), rest.as_ref()].concat()).unwrap();
    let during = names(list["items"].as_array().unwrap());
    assert!(during == paged, "a write made during the list is in it");

    // kube's typed list, kubectl without chunks, the PyPI client: the same items.
    let typed = maps.list(&ListParams::default()).await.unwrap();
    let typed: Vec<String> = typed
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    // In key order, as every list.
    let mut now = paged.clone();
    now.push("cm-zzzzz".into());
    now.sort();
    assert!(
        typed == now,
        "the typed list differs from the paginated one"
    );
    let (ok, out) = server.kubectl(&[
        "get",
        "configmaps",
        "-n",
        NS,
        "--chunk-size=0",
        "-o",
        "name",
    ]);
    assert!(ok, "{out}");
    let listed: Vec<&str> = out
        .lines()
        .map(|l| l.trim_start_matches("configmap/"))
        .collect();
    assert!(
        listed == now,
        "kubectl's list differs from the paginated one:\n{out}"
    );
    support::cli::run_python(
        "client_list.py",
        &[&server.kubeconfig(), std::path::Path::new(NS)],
    );

    // A watch from resourceVersion "0" begins with every object as ADDED, read and
    // sent a page at a time at one revision, then the changes after it.
    let stream = maps.watch(&WatchParams::default(), "0").await.unwrap();
    let mut stream = stream.boxed();
    let mut added = Vec::new();
    while added.len() < now.len() {
        added.push(next_added(&mut stream).await);
    }
    assert!(
        added == now,
        "the watch's initial events differ from the list"
    );
    let after: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "cm-zzzzz-after"}})).unwrap();
    maps.create(&PostParams::default(), &after).await.unwrap();
    assert_eq!(next_added(&mut stream).await, "cm-zzzzz-after");
}

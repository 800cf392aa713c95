//! The server's list stages, repeated in the benchmark's process on the pods it
//! listed (see the benchmark's notes).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{ms, percentile};

/// The median of `runs` timings of `f` (each run gets fresh input from `input`).
fn median_of<I, O>(runs: usize, mut input: impl FnMut() -> I, mut f: impl FnMut(I) -> O) -> f64 {
    let mut v: Vec<Duration> = (0..runs)
        .map(|_| {
            let i = input();
            let t = Instant::now();
            std::hint::black_box(f(i));
            t.elapsed()
        })
        .collect();
    v.sort();
    ms(percentile(&v, 0.5))
}

/// The server's list stages on the pods of `json_list`, in this process: the list
/// written from the stored bytes as the server writes it (`StoredList`, each item's
/// JSON with its revision spliced in, and in protobuf transcoded), and for comparison
/// the way through decoded objects that the server took before: every pod parsed, made
/// a typed object, turned back into a JSON value, the list encoded as JSON and as
/// protobuf. Returns (stage, median ms) in order.
pub fn server_stages(json_list: &[u8]) -> Vec<(&'static str, f64)> {
    let list: Value = serde_json::from_slice(json_list).unwrap();
    // What the store holds: each object's JSON without `resourceVersion`.
    let stored: Vec<Vec<u8>> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let mut item = item.clone();
            item["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("resourceVersion");
            serde_json::to_vec(&item).unwrap()
        })
        .collect();
    let kind = rk8s_api::object::kind_named("Pod").unwrap();
    let runs = 3;
    let stored_list = rk8s_apiserver::listing::StoredList {
        api_version: "v1",
        item_kind: "Pod",
        metadata: json!({"resourceVersion": "1"}),
        items: stored
            .iter()
            .enumerate()
            .map(|(i, value)| rk8s_raftstore::proto::KeyValue {
                key: format!("/registry/pods/bench/{i}").into_bytes(),
                value: value.clone().into(),
                mod_revision: 1 + i as i64,
                ..Default::default()
            })
            .collect(),
        encoded: None,
    };
    let list_json = median_of(runs, || (), |()| stored_list.to_json().unwrap());
    let list_protobuf = median_of(
        runs,
        || (),
        |()| stored_list.to_protobuf().unwrap().unwrap(),
    );
    // The server keeps listed objects' messages: a second list of unchanged objects
    // copies them.
    let warm = rk8s_apiserver::listing::StoredList {
        encoded: Some(std::sync::Arc::new(
            rk8s_apiserver::listing::EncodedItems::new(rk8s_apiserver::server::ENCODED_ITEMS_BYTES),
        )),
        items: stored_list.items.clone(),
        metadata: stored_list.metadata.clone(),
        ..stored_list
    };
    warm.to_protobuf().unwrap().unwrap();
    let list_protobuf_kept = median_of(runs, || (), |()| warm.to_protobuf().unwrap().unwrap());
    let parsed = || -> Vec<Value> {
        let parse = |b: &Vec<u8>| serde_json::from_slice(b).unwrap();
        stored.iter().map(parse).collect()
    };
    let into_typed = |values: Vec<Value>| -> Vec<rk8s_api::AnyObject> {
        let typed = |v| rk8s_api::AnyObject::from_value(&kind, v).unwrap().unwrap();
        values.into_iter().map(typed).collect()
    };
    let parse = median_of(runs, || (), |()| parsed());
    let to_typed = median_of(runs, &parsed, into_typed);
    let objects = into_typed(parsed());
    let to_values =
        || -> Vec<Value> { objects.iter().map(rk8s_api::AnyObject::to_value).collect() };
    let to_value = median_of(runs, || (), |()| to_values());
    let whole = json!({
        "kind": "PodList", "apiVersion": "v1",
        "metadata": {"resourceVersion": "1"},
        "items": to_values(),
    });
    let encode_json = median_of(runs, || (), |()| serde_json::to_vec(&whole).unwrap());
    let encode_protobuf = median_of(
        runs,
        || (),
        |()| rk8s_api::protobuf::encode(&whole).unwrap(),
    );
    vec![
        ("list from stored bytes: JSON", list_json),
        (
            "list from stored bytes: protobuf (transcoded)",
            list_protobuf,
        ),
        (
            "list from stored bytes: protobuf (messages kept)",
            list_protobuf_kept,
        ),
        ("before: parse stored JSON (× from_slice)", parse),
        ("before: JSON values into typed Pods", to_typed),
        ("before: typed Pods back into JSON values", to_value),
        ("before: encode the list as JSON", encode_json),
        ("before: encode the list as protobuf", encode_protobuf),
    ]
}

//! Pods for the API benchmarks: one pod of the shape every create case uses, and
//! concurrent creates of many.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;

/// A pod named `name`: one container with requests, no token volume.
pub fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"automountServiceAccountToken": false,
                 "containers": [{"name": "c", "image": "busybox:1.36",
                                  "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
    }))
    .unwrap()
}

/// Creates `total` pods named `{prefix}-{i}` from `clients` concurrent tasks; returns
/// each request's latency and the wall time.
pub async fn create_pods(
    api: &Api<Pod>,
    prefix: &str,
    total: usize,
    clients: usize,
) -> (Vec<Duration>, Duration) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let api = api.clone();
        let next = next.clone();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return lat;
                }
                let t = Instant::now();
                api.create(&PostParams::default(), &pod(&format!("{prefix}-{i}")))
                    .await
                    .unwrap();
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    (all, started.elapsed())
}

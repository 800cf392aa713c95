//! Image garbage collection by a real node agent (root), at the thresholds of its
//! flags: an image no pod uses any more goes, the image of a running pod stays and so
//! does the pod. kubelet collects every 5 minutes (its `ImageGCPeriod`), the first time
//! when it starts: the test restarts the agent with tiny thresholds to see that pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::Api;
use support::apiserver::Server;
use support::node::eventually;
use support::registry::Registry;

/// A copy of the busybox layout in `dir` whose config names `tag` (an image of its own
/// manifest and config, busybox's layer shared).
fn busybox_variant(dir: &Path, tag: &str) -> PathBuf {
    let layout = dir.join(tag);
    let busybox = support::images::busybox();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&busybox)
        .arg(&layout)
        .status()
        .unwrap();
    assert!(copied.success(), "cp -a {busybox}");
    let configured = Command::new("umoci")
        .args(["config", "--image"])
        .arg(format!("{}:latest", layout.display()))
        .arg(format!("--config.env=RK8S_VARIANT={tag}"))
        .status()
        .unwrap();
    assert!(configured.success(), "umoci config");
    layout
}

fn pod(name: &str, image: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": "gc",
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": image, "command": ["sleep", "3600"]}]
        }
    }))
    .unwrap()
}

async fn running(pods: &Api<Pod>, name: &str) -> PodStatus {
    eventually(&format!("pod {name} Running"), async || {
        let status = pods.get(name).await.ok()?.status?;
        (status.phase.as_deref() == Some("Running")).then_some(status)
    })
    .await
}

/// (container id, restart count, started at) of a pod's container.
fn container(status: &PodStatus) -> (Option<String>, i32, Option<String>) {
    let c = &status.container_statuses.as_ref().unwrap()[0];
    let started = c
        .state
        .as_ref()
        .and_then(|s| s.running.as_ref())
        .and_then(|r| r.started_at.as_ref())
        .map(|t| t.0.to_string());
    (c.container_id.clone(), c.restart_count, started)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_image_goes_at_tiny_thresholds_and_a_running_pods_image_stays() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let unused = registry.push(&busybox_variant(dir.path(), "unused"), "rk8s/unused:v1");
    let used = registry.push(&busybox_variant(dir.path(), "used"), "rk8s/used:v1");
    let host = format!("127.0.0.1:{}", registry.port);
    let registries = dir.path().join("registries.yaml");
    std::fs::write(
        &registries,
        format!("mirrors:\n  \"{host}\":\n    endpoint: [\"http://{host}\"]\n"),
    )
    .unwrap();
    let registries = registries.to_str().unwrap();

    let server = Server::start(&["--disable-scheduler"]);
    let admin = server.client().await;
    let mut agent =
        support::node::real_node_with(&server, "gc", 1, &["--registries", registries]).await;
    let pods: Api<Pod> = Api::namespaced(admin, "default");
    let pp = kube::api::PostParams::default();
    let unused_uid = pods
        .create(&pp, &pod("unused", &unused))
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    pods.create(&pp, &pod("used", &used)).await.unwrap();
    running(&pods, "unused").await;
    let record = agent.dir.path().join("data/pods").join(&unused_uid);
    assert!(
        record.exists(),
        "{} (the node's record of the pod)",
        record.display()
    );
    let before = container(&running(&pods, "used").await);

    // The pod of `unused` goes, from the API and from the node (its record: what the
    // agent counts as in use); its image stays in the node's store.
    pods.delete("unused", &Default::default()).await.unwrap();
    eventually("pod unused gone", async || {
        let gone = pods.get_opt("unused").await.ok()?.is_none() && !record.exists();
        gone.then_some(())
    })
    .await;
    let store =
        rk8s_runtime::image::ImageStore::open(agent.dir.path().join("data/images")).unwrap();
    let stored = |reference: &str| {
        let listed = store.list().unwrap();
        listed.into_iter().find(|i| i.reference == reference)
    };
    let unused_digest = stored(&unused).expect("the unused image stored").digest;
    assert!(stored(&used).is_some(), "{:?}", store.list());

    // The agent again, collecting above 1 % of the disk used down to 0 %, any image
    // unused now (kubelet's --image-gc-high-threshold, --image-gc-low-threshold,
    // --image-minimum-gc-age).
    agent.terminate();
    agent.run_again(&[
        "--registries",
        registries,
        "--image-gc-high-threshold",
        "1",
        "--image-gc-low-threshold",
        "0",
        "--image-minimum-gc-age",
        "0s",
    ]);
    // The agent says what it removed once the collection is over (its files swept).
    let said = format!("image garbage collection removed {unused}");
    let log = agent.dir.path().join("node.log");
    eventually("the unused image collected", async || {
        let done = std::fs::read_to_string(&log).ok()?.contains(&said);
        (done && stored(&unused).is_none()).then_some(())
    })
    .await;
    // Its manifest went with it; the running pod's image, its layers and the pod stay.
    assert!(!store.blob_path(&unused_digest).unwrap().exists());
    let kept = stored(&used).expect("the used image kept");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.blob_path(&kept.digest).unwrap()).unwrap())
            .unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let digest = layer["digest"].as_str().unwrap();
        assert!(store.blob_path(digest).unwrap().exists(), "layer {digest}");
    }
    assert_eq!(container(&running(&pods, "used").await), before);
    pods.delete("used", &Default::default()).await.unwrap();
    eventually("pod used gone", async || {
        pods.get_opt("used").await.ok()?.is_none().then_some(())
    })
    .await;
}

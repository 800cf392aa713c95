//! What a node does to pods beyond running them, as kubelet does: memory emptyDirs on
//! a tmpfs of the right size, a pod evicted for filling its emptyDir past its
//! `sizeLimit`, and a crash loop's BackOff counted on one event (see
//! `empty_dirs_evictions_and_event_series`).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;

use crate::support::apiserver::Server;
use crate::support::images::busybox;
use crate::support::node::{eventually, eventually_within};

/// The mounts of the host whose mount point holds `part` (`/proc/self/mountinfo`:
/// mount point, then the filesystem type after the ` - `).
fn mounts_with(part: &str) -> Vec<(String, String)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter_map(|l| {
            let point = l.split_whitespace().nth(4)?;
            let fs_type = l.split(" - ").nth(1)?.split_whitespace().next()?;
            point
                .contains(part)
                .then(|| (point.to_string(), fs_type.to_string()))
        })
        .collect()
}

/// The events about pod `name` with reason `reason`.
async fn events_of(events: &Api<Event>, name: &str, reason: &str) -> Vec<Event> {
    let fields = format!("involvedObject.name={name}");
    let listed = events.list(&ListParams::default().fields(&fields)).await;
    listed
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

/// Three pods at once on a real node: one with two memory emptyDirs (a tmpfs of its
/// `sizeLimit`, one of the pod's memory limit), unmounted when the pod goes; one that
/// writes 4 MiB into a disk emptyDir limited to 1Mi and is evicted for it (phase
/// Failed, reason Evicted, kubelet's message and event) and not run again, and one
/// that writes as much and ends (Succeeded, never evicted); one that
/// crashes in a loop, whose BackOff is one event counted past 2 (kubectl describe's
/// "x3 over").
pub async fn empty_dirs_evictions_and_event_series(server: &Server) {
    let client = server.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let events: Api<Event> = Api::namespaced(client, "default");
    let pp = PostParams::default();
    let memory: Pod = serde_json::from_value(json!({
        "metadata": {"name": "memory"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "main", "image": busybox(),
            "command": ["sh", "-c",
                "stat -f -c %T /small /big; df -k /small /big | awk 'NR > 1 {print $2}'; exec sleep 3600"],
            "resources": {"limits": {"memory": "48Mi"}},
            "volumeMounts": [{"name": "small", "mountPath": "/small"},
                             {"name": "big", "mountPath": "/big"}]}],
            "volumes": [{"name": "small", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                        {"name": "big", "emptyDir": {"medium": "Memory"}}]}
    }))
    .unwrap();
    let filler: Pod = serde_json::from_value(json!({
        "metadata": {"name": "filler"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "main", "image": busybox(),
            "command": ["sh", "-c", "dd if=/dev/zero of=/data/fill bs=1024 count=4096; exec sleep 3600"],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Mi"}}]}
    }))
    .unwrap();
    // The same writes from a pod that ends: after its first measurement (when it
    // starts), before the next one (an eviction period later), when it has ended.
    let finisher: Pod = serde_json::from_value(json!({
        "metadata": {"name": "finisher"},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": busybox(),
            "command": ["sh", "-c", "sleep 2; dd if=/dev/zero of=/data/fill bs=1024 count=4096; exit 0"],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Mi"}}]}
    }))
    .unwrap();
    let crasher: Pod = serde_json::from_value(json!({
        "metadata": {"name": "crasher"},
        "spec": {"containers": [{"name": "main", "image": busybox(),
            "command": ["sh", "-c", "exit 1"]}]}
    }))
    .unwrap();
    let created = std::time::Instant::now();
    for pod in [&memory, &filler, &finisher, &crasher] {
        pods.create(&pp, pod).await.unwrap();
    }

    // The memory volumes: tmpfs, 16Mi by their sizeLimit and 48Mi by the pod's limit.
    let log = eventually("the memory pod's sizes", async || {
        let log = pods.logs("memory", &Default::default()).await.ok()?;
        (log.lines().count() == 4).then_some(log)
    })
    .await;
    assert_eq!(log, "tmpfs\ntmpfs\n16384\n49152\n");
    let uid = pods.get("memory").await.unwrap().metadata.uid.unwrap();
    let mounted = mounts_with(&uid);
    for volume in ["small", "big"] {
        assert!(
            mounted
                .iter()
                .any(|(p, t)| p.ends_with(&format!("/volumes/{volume}")) && t == "tmpfs"),
            "{mounted:?}"
        );
    }

    // The filler is evicted within kubelet's eviction period, in its words.
    let message = "Usage of EmptyDir volume \"data\" exceeds the limit \"1Mi\". ";
    let status = eventually_within("the filler evicted", Duration::from_secs(40), async || {
        let status = pods.get("filler").await.ok()?.status?;
        (status.phase.as_deref() == Some("Failed")).then_some(status)
    })
    .await;
    assert_eq!(
        (status.reason.as_deref(), status.message.as_deref()),
        (Some("Evicted"), Some(message))
    );
    let state = status.container_statuses.unwrap()[0].state.clone().unwrap();
    assert!(state.terminated.is_some(), "{state:?}");
    let evicted = eventually("the Evicted event", async || {
        events_of(&events, "filler", "Evicted").await.pop()
    })
    .await;
    assert_eq!(
        (evicted.type_.as_deref(), evicted.message.as_deref()),
        (Some("Warning"), Some(message))
    );
    // Nothing of it runs again, and what it had on the node is gone.
    let filler_uid = pods.get("filler").await.unwrap().metadata.uid.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = pods.get("filler").await.unwrap().status.unwrap();
    assert_eq!(again.phase.as_deref(), Some("Failed"));
    assert_eq!(mounts_with(&filler_uid), []);
    // A pod that ended is not evicted (kubelet measures active pods only): measured
    // when it started and an eviction period (10 s) later, it stays Succeeded.
    eventually("the finisher succeeded", async || {
        let status = pods.get("finisher").await.ok()?.status?;
        (status.phase.as_deref() == Some("Succeeded")).then_some(())
    })
    .await;
    let measured_again = created + Duration::from_secs(14);
    tokio::time::sleep(measured_again.saturating_duration_since(std::time::Instant::now())).await;
    let finished = pods.get("finisher").await.unwrap().status.unwrap();
    assert_eq!(
        (finished.phase.as_deref(), finished.reason.as_deref()),
        (Some("Succeeded"), None)
    );
    assert!(events_of(&events, "finisher", "Evicted").await.is_empty());

    // The crash loop's BackOff: one event, counted (x3 and more), as describe shows it.
    let back_off = eventually_within(
        "BackOff counted 3 times",
        Duration::from_secs(120),
        async || {
            let found = events_of(&events, "crasher", "BackOff").await;
            (found.iter().any(|e| e.count.unwrap_or(1) >= 3)).then_some(found)
        },
    )
    .await;
    assert_eq!(back_off.len(), 1, "{back_off:?}");
    let (ok, out) = server.kubectl(&["describe", "pod", "crasher"]);
    assert!(ok, "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("BackOff") && l.contains("Back-off restarting failed container main"))
        .unwrap_or_else(|| panic!("{out}"));
    let times: u32 = line
        .split("(x")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(times >= 3 && line.contains(" over "), "{line}");

    for name in ["memory", "filler", "finisher", "crasher"] {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }
    eventually("the pods gone", async || {
        let left = pods.list(&Default::default()).await.ok()?;
        left.items.is_empty().then_some(())
    })
    .await;
    // The memory volumes were unmounted with their pod.
    assert_eq!(mounts_with(&uid), []);
}

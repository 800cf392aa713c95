//! A StatefulSet on the DaemonSet test's nodes (in network namespaces): three pods
//! with local-path volumes behind a headless Service (see `stateful_sets_keep_names_data_and_dns`).

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod, Service};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;

use crate::support::apiserver::Server;
use crate::support::images::busybox;
use crate::support::node::eventually_within;

/// `(pod, node)` of the Running, not deleted, pods labelled `app=web`.
async fn web_pods(pods: &Api<Pod>) -> Vec<(String, String)> {
    let mut on: Vec<(String, String)> = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .map(|p| (p.metadata.name.unwrap(), p.spec.unwrap().node_name.unwrap()))
        .collect();
    on.sort();
    on
}

/// The addresses busybox's `nslookup` answered for the name asked (the lines after
/// `Name:`; the server's own address comes before).
fn addresses(out: &str) -> Vec<String> {
    let answer = out.lines().skip_while(|l| !l.starts_with("Name:"));
    let mut found: Vec<String> = answer
        .filter(|l| l.starts_with("Address"))
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect();
    found.sort();
    found
}

/// A StatefulSet of three with a local-path volume each, behind a headless Service:
/// pods made in order with stable names and DNS names, each on the node its volume
/// is on; its data kept across the pod's deletion, its DNS name following it to its
/// new address; SRV records of the Service's named port; kept across a scale down
/// and up; rolled
/// with kubectl; deleted, its claims kept until deleted, then its volumes and their
/// directories go.
pub async fn stateful_sets_keep_names_data_and_dns(server: &Server) {
    let client = server.client().await;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"clusterIP": "None", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80}]},
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let web: StatefulSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "web", "image": busybox(),
                             "command": ["sh", "-c", "hostname >> /data/log; exec sleep 3600"],
                             "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "16Mi"}}}}],
        },
    }))
    .unwrap();
    sets.create(&PostParams::default(), &web).await.unwrap();
    let (ok, out) = server.kubectl(&["rollout", "status", "sts/web", "--timeout=180s"]);
    assert!(
        ok && out.contains("partitioned roll out complete: 3 new pods have been updated"),
        "{out}"
    );
    let placed = web_pods(&pods).await;
    let names: Vec<&str> = placed.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(names, ["web-0", "web-1", "web-2"]);
    // Each claim bound to a local volume on its pod's node, made by the default class.
    for (pod, node) in &placed {
        let claim = claims.get(&format!("data-{pod}")).await.unwrap();
        let spec = claim.spec.unwrap();
        assert_eq!(spec.storage_class_name.as_deref(), Some("local-path"));
        assert_eq!(claim.status.unwrap().phase.as_deref(), Some("Bound"));
        let pv = volumes.get(&spec.volume_name.unwrap()).await.unwrap();
        let affinity = serde_json::to_value(&pv.spec.as_ref().unwrap().node_affinity).unwrap();
        assert_eq!(
            affinity["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"],
            json!([node])
        );
    }
    let exec = |pod: &str, command: &[&str]| {
        let mut args = vec!["exec", pod, "--"];
        args.extend_from_slice(command);
        let (ok, out) = server.kubectl(&args);
        assert!(ok, "{out}");
        out
    };
    assert_eq!(exec("web-1", &["cat", "/data/log"]), "web-1\n");
    // Stable DNS names through the headless Service.
    let ip_of = async |name: &str| {
        pods.get(name)
            .await
            .unwrap()
            .status
            .unwrap()
            .pod_ip
            .unwrap()
    };
    let web1 = ip_of("web-1").await;
    let answer = exec(
        "web-0",
        &["nslookup", "web-1.web.default.svc.cluster.local"],
    );
    assert!(answer.contains(&web1), "{answer}");

    // Deleted, web-1 comes back with its name, on its volume's node, with its data.
    pods.delete("web-1", &DeleteParams::default())
        .await
        .unwrap();
    eventually_within("web-1 back", Duration::from_secs(90), async || {
        let pod = pods.get_opt("web-1").await.unwrap()?;
        let uid_changed = pod.metadata.deletion_timestamp.is_none();
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        (uid_changed && running).then_some(())
    })
    .await;
    assert_eq!(web_pods(&pods).await, placed);
    assert_eq!(exec("web-1", &["cat", "/data/log"]), "web-1\nweb-1\n");
    // Its DNS name answers with the new pod's address (the old pod's is gone from it).
    let new_web1 = ip_of("web-1").await;
    let name = "web-1.web.default.svc.cluster.local";
    let answers = eventually_within(
        "web-1's new address in DNS",
        Duration::from_secs(30),
        async || {
            let (ok, out) = server.kubectl(&["exec", "web-0", "--", "nslookup", name]);
            let answers = ok.then(|| addresses(&out))?;
            (answers == [new_web1.clone()]).then_some(answers)
        },
    )
    .await;
    assert_eq!(answers, [new_web1], "the old address was {web1}");
    // The headless Service's SRV records: one per pod, at its named port.
    let srv = exec(
        "web-0",
        &[
            "nslookup",
            "-type=SRV",
            "_http._tcp.web.default.svc.cluster.local",
        ],
    );
    for pod in ["web-0", "web-1", "web-2"] {
        let target = format!(" 80 {pod}.web.default.svc.cluster.local");
        assert!(
            srv.lines()
                .any(|l| l.contains("service = ") && l.trim_end_matches('.').ends_with(&target)),
            "{srv}"
        );
    }

    // Scaled down and up: the highest ordinals go first; the claims stay and are
    // mounted again.
    let (ok, out) = server.kubectl(&["scale", "sts/web", "--replicas=1"]);
    assert!(ok, "{out}");
    eventually_within(
        "web-1 and web-2 gone",
        Duration::from_secs(90),
        async || {
            let left = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .unwrap();
            (left.items.len() == 1).then_some(())
        },
    )
    .await;
    assert_eq!(
        claims
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    let (ok, out) = server.kubectl(&["scale", "sts/web", "--replicas=3"]);
    assert!(ok, "{out}");
    let (ok, out) = server.kubectl(&["rollout", "status", "sts/web", "--timeout=180s"]);
    assert!(ok, "{out}");
    assert_eq!(web_pods(&pods).await, placed);
    assert_eq!(exec("web-2", &["cat", "/data/log"]), "web-2\nweb-2\n");

    // A rolling update with kubectl, from the highest ordinal down; its history.
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {"rev": "2"}}}}});
    sets.patch("web", &Default::default(), &kube::api::Patch::Merge(&patch))
        .await
        .unwrap();
    let (ok, out) = server.kubectl(&["rollout", "status", "sts/web", "--timeout=180s"]);
    assert!(
        ok && out.contains("partitioned roll out complete: 3 new pods have been updated"),
        "{out}"
    );
    let status = sets.get("web").await.unwrap().status.unwrap();
    assert_eq!(status.current_revision, status.update_revision);
    assert_eq!(
        (status.ready_replicas, status.updated_replicas),
        (Some(3), Some(3))
    );
    let (ok, out) = server.kubectl(&["rollout", "history", "sts/web"]);
    assert!(ok, "{out}");
    let numbers: Vec<&str> = out
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(numbers, ["1", "2"], "{out}");
    assert_eq!(exec("web-0", &["cat", "/data/log"]), "web-0\nweb-0\n");

    // Deleted: its pods go, its claims stay (Retain) until deleted; then their
    // volumes and directories go.
    let dirs: Vec<String> = volumes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|pv| Some(pv.spec.as_ref()?.host_path.as_ref()?.path.clone()))
        .collect();
    assert_eq!(dirs.len(), 3);
    assert!(
        dirs.iter()
            .all(|d| std::path::Path::new(d).join("log").exists()),
        "{dirs:?}"
    );
    sets.delete("web", &DeleteParams::default()).await.unwrap();
    eventually_within("the web pods gone", Duration::from_secs(60), async || {
        let left = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap();
        left.items.is_empty().then_some(())
    })
    .await;
    assert_eq!(
        claims
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    claims
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("app=web"),
        )
        .await
        .unwrap();
    eventually_within(
        "the volumes and their directories gone",
        Duration::from_secs(90),
        async || {
            let left = volumes
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .len();
            let dirs_left = dirs
                .iter()
                .filter(|d| std::path::Path::new(d).exists())
                .count();
            (left == 0 && dirs_left == 0).then_some(())
        },
    )
    .await;
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
}

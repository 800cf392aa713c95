//! The scheduler end to end: a real `rk8s-server` (its scheduler actor on the Raft
//! leader) and 50 simulated nodes (`rk8s-node simulate`, real Node objects, Leases and
//! pod status through the API). 500 pods with node selectors, tolerations, topology
//! spread and anti-affinity land where their constraints allow; an unschedulable pod
//! gets its FailedScheduling event (one Event, counted again at each attempt) and is
//! placed as soon as a fitting node joins;
//! profiles from a configuration file pick by `schedulerName`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, HashSet};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::apiserver::Server;
use support::node::{eventually, simulate};

const CONFIG: &str = "
profiles:
- schedulerName: default-scheduler
- schedulerName: bin-packing
  pluginConfig:
  - name: NodeResourcesFit
    args: {scoringStrategy: {type: MostAllocated}}
";

fn pod(name: &str, labels: serde_json::Value, spec: serde_json::Value) -> Pod {
    let mut spec = spec;
    spec["containers"] = json!([{"name": "c", "image": "busybox",
                                  "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]);
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }))
    .unwrap()
}

/// The Events about the pod `name` with `reason`.
async fn events_of(events: &Api<Event>, name: &str, reason: &str) -> Option<Vec<Event>> {
    let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
    let list = events.list(&params).await.ok()?;
    Some(
        list.items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constraints_hold_across_fifty_nodes_and_five_hundred_pods() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("scheduler.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let server = Server::start(&["--scheduler-config", config.to_str().unwrap()]);
    let admin = server.client().await;
    let _zoned = simulate(
        &server,
        &[
            "--count", "40", "--prefix", "zoned", "--zones", "4", "--labels", "disk=ssd",
        ],
    );
    let _tainted = simulate(
        &server,
        &[
            "--count",
            "10",
            "--prefix",
            "gpu",
            "--labels",
            "gpu=a100",
            "--taints",
            "dedicated=gpu:NoSchedule",
        ],
    );
    let nodes: Api<Node> = Api::all(admin.clone());
    eventually("50 nodes registered", async || {
        (nodes.list(&ListParams::default()).await.ok()?.items.len() == 50).then_some(())
    })
    .await;

    let mut pods = Vec::new();
    for i in 0..200 {
        pods.push(pod(
            &format!("ssd-{i}"),
            json!({"app": "ssd"}),
            json!({"nodeSelector": {"disk": "ssd"}}),
        ));
    }
    for i in 0..100 {
        pods.push(pod(&format!("gpu-{i}"), json!({"app": "gpu"}), json!({
            "nodeSelector": {"gpu": "a100"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
        })));
    }
    for i in 0..100 {
        pods.push(pod(
            &format!("plain-{i}"),
            json!({"app": "plain"}),
            json!({}),
        ));
    }
    for i in 0..60 {
        pods.push(pod(&format!("spread-{i}"), json!({"app": "spread"}), json!({
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "spread"}}}],
        })));
    }
    for i in 0..40 {
        pods.push(pod(&format!("anti-{i}"), json!({"app": "anti"}), json!({
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "anti"}}}]}},
        })));
    }
    let api: Api<Pod> = Api::namespaced(admin.clone(), "default");
    futures_util::stream::iter(pods)
        .map(|p| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &p).await.unwrap() }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let placed = eventually("500 pods Running on their nodes", async || {
        let list = api.list(&ListParams::default()).await.ok()?;
        let running = list
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        (running == 500).then_some(list.items)
    })
    .await;
    let zone_of: BTreeMap<String, String> = nodes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| {
            let labels = n.metadata.labels.unwrap_or_default();
            let zone = labels
                .get("topology.kubernetes.io/zone")
                .cloned()
                .unwrap_or_default();
            (n.metadata.name.unwrap(), zone)
        })
        .collect();
    let mut spread_per_zone: BTreeMap<String, usize> = BTreeMap::new();
    let mut anti_nodes = HashSet::new();
    for p in &placed {
        let name = p.metadata.name.clone().unwrap();
        let node = p.spec.as_ref().unwrap().node_name.clone().unwrap();
        let app = p.metadata.labels.as_ref().unwrap()["app"].clone();
        match app.as_str() {
            "ssd" | "plain" | "spread" | "anti" => {
                assert!(
                    node.starts_with("zoned-"),
                    "{name} on {node}: untolerated taint or wrong selector"
                )
            }
            "gpu" => assert!(node.starts_with("gpu-"), "{name} on {node}"),
            _ => unreachable!(),
        }
        if app == "spread" {
            *spread_per_zone.entry(zone_of[&node].clone()).or_default() += 1;
        }
        if app == "anti" {
            assert!(anti_nodes.insert(node.clone()), "two anti pods on {node}");
        }
    }
    let (min, max) = (
        spread_per_zone.values().min().copied().unwrap(),
        spread_per_zone.values().max().copied().unwrap(),
    );
    assert_eq!(spread_per_zone.len(), 4, "{spread_per_zone:?}");
    assert!(max - min <= 1, "skew above 1: {spread_per_zone:?}");

    // No node has what this pod wants: a FailedScheduling event says why.
    let picky = pod(
        "picky",
        json!({"app": "picky"}),
        json!({"nodeSelector": {"gpu": "h100"}}),
    );
    api.create(&PostParams::default(), &picky).await.unwrap();
    let events: Api<Event> = Api::namespaced(admin.clone(), "default");
    let message = eventually("a FailedScheduling event for picky", async || {
        events_of(&events, "picky", "FailedScheduling")
            .await?
            .into_iter()
            .next()?
            .message
    })
    .await;
    assert!(
        message.starts_with("0/50 nodes are available: ")
            && message.contains("40 node(s) didn't match Pod's node affinity/selector")
            && message.contains("10 node(s) had untolerated taint {dedicated: gpu}"),
        "{message}"
    );
    let condition = api
        .get("picky")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .unwrap();
    assert!(condition.iter().any(|c| c.type_ == "PodScheduled"
        && c.status == "False"
        && c.reason.as_deref() == Some("Unschedulable")));
    // Each attempt reports it again (a changed node retries the pod): the event
    // correlator counts the repeats on the one Event, nothing new is created.
    let nodes: Api<Node> = Api::all(admin.clone());
    let mut poke = 0;
    let failed = eventually("picky's FailedScheduling counted 3 times", async || {
        poke += 1;
        let patch = json!({"metadata": {"annotations": {"test.rk8s.io/poke": poke.to_string()}}});
        let merge = Patch::Merge(&patch);
        nodes
            .patch("zoned-0", &PatchParams::default(), &merge)
            .await
            .ok()?;
        let failed = events_of(&events, "picky", "FailedScheduling").await?;
        failed
            .iter()
            .any(|e| e.count.unwrap_or(0) >= 3)
            .then_some(failed)
    })
    .await;
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].message.as_ref(), Some(&message));
    assert!(
        failed[0].last_timestamp.as_ref().map(|t| t.0)
            > failed[0].first_timestamp.as_ref().map(|t| t.0),
        "{failed:#?}"
    );
    // A fitting node joins: the pod is placed on it.
    let _late = simulate(
        &server,
        &["--count", "1", "--prefix", "h100", "--labels", "gpu=h100"],
    );
    eventually("picky placed on the new node", async || {
        let node = api.get("picky").await.ok()?.spec?.node_name?;
        (node == "h100-0").then_some(())
    })
    .await;
    // Placed: one Scheduled Event, as kube-scheduler writes it.
    let scheduled = eventually("picky's Scheduled event", async || {
        events_of(&events, "picky", "Scheduled")
            .await?
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(
        (scheduled.message.as_deref(), scheduled.count),
        (
            Some("Successfully assigned default/picky to h100-0"),
            Some(1)
        )
    );

    // Profiles: bin-packing schedules its pods; a name no profile has is left alone.
    let mut packed = pod(
        "packed",
        json!({"app": "packed"}),
        json!({"nodeSelector": {"disk": "ssd"}}),
    );
    packed.spec.as_mut().unwrap().scheduler_name = Some("bin-packing".into());
    api.create(&PostParams::default(), &packed).await.unwrap();
    let mut other = pod("other", json!({"app": "other"}), json!({}));
    other.spec.as_mut().unwrap().scheduler_name = Some("someone-else".into());
    api.create(&PostParams::default(), &other).await.unwrap();
    eventually("packed bound", async || {
        api.get("packed").await.ok()?.spec?.node_name
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let other = api.get("other").await.unwrap();
    assert!(other.spec.unwrap().node_name.is_none());
    assert!(
        other
            .status
            .and_then(|s| s.conditions)
            .is_none_or(|c| c.is_empty())
    );
}

/// Whether `member` is the Raft leader.
async fn leads(member: &Server) -> bool {
    let Ok(client) = member.store_client(&member.peer).await else {
        return false;
    };
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(2), client.status()).await,
        Ok(Ok(s)) if s.leader == s.id
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_and_controllers_follow_the_raft_leader() {
    let mut members = vec![Server::start(&[])];
    members.push(Server::join(&members[0]));
    members.push(Server::join(&members[0]));
    let clients = [
        members[0].client().await,
        members[0].client_for(&members[1]).await,
        members[0].client_for(&members[2]).await,
    ];
    for c in &clients {
        let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(c.clone());
        eventually("every member serves the API", async || {
            ns.get("default").await.ok()
        })
        .await;
    }
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}})).unwrap();
    let nodes: Api<Node> = Api::all(clients[0].clone());
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let status = json!({"status": {"allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"}}});
    nodes
        .patch_status("n1", &Default::default(), &kube::api::Patch::Merge(&status))
        .await
        .unwrap();
    let rs: k8s_openapi::api::apps::v1::ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    }))
    .unwrap();
    let sets: Api<k8s_openapi::api::apps::v1::ReplicaSet> =
        Api::namespaced(clients[0].clone(), "default");
    sets.create(&PostParams::default(), &rs).await.unwrap();
    let bound = async |client: &kube::Client, n: usize| {
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        eventually(&format!("{n} pods created and bound"), async || {
            let list = pods.list(&ListParams::default()).await.ok()?.items;
            let bound = list
                .iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("n1"))
                .count();
            (list.len() == n && bound == n).then_some(())
        })
        .await;
    };
    bound(&clients[0], 2).await;

    // SIGKILL the leader: the new leader starts its scheduler and controllers.
    let mut leader = None;
    for _ in 0..50 {
        for (i, m) in members.iter().enumerate() {
            if leads(m).await {
                leader = Some(i);
            }
        }
        if leader.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let leader = leader.expect("a leader");
    members[leader].kill();
    let survivor = (leader + 1) % 3;
    let sets: Api<k8s_openapi::api::apps::v1::ReplicaSet> =
        Api::namespaced(clients[survivor].clone(), "default");
    eventually("a write through a survivor", async || {
        sets.patch(
            "web",
            &Default::default(),
            &kube::api::Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .ok()
    })
    .await;
    bound(&clients[survivor], 4).await;
}

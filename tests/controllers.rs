//! The controllers end to end on a real `rk8s-server` (scheduler and controllers on
//! the leader) with simulated nodes: a Deployment's ReplicaSet and pods, a rolling
//! update within maxSurge/maxUnavailable and `kubectl rollout undo`, scaling, a
//! deleted pod replaced, the Endpoints and EndpointSlices of a Service following the
//! pods, and the three deletion cascades (background, orphan, foreground); a ReplicationController
//! scaled with kubectl; a PodDisruptionBudget's status, and `kubectl drain` held by it
//! until it allows the evictions; the EndpointSlices mirrored from the Endpoints of a
//! Service without a selector; simulated nodes never dialed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, ReplicationController, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use serde_json::json;
use support::apiserver::Server;
use support::node::{eventually, eventually_within, simulate};

fn deployment(image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": image}]}},
        },
    }))
    .unwrap()
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

async fn running_pods(pods: &Api<Pod>) -> Vec<Pod> {
    pods.list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .collect()
}

/// Waits until the Deployment has rolled out `image` on `replicas` pods, checking on
/// the way that the ReplicaSets never ask for more than replicas + maxSurge.
async fn rolled_out(deploys: &Api<Deployment>, sets: &Api<ReplicaSet>, image: &str, replicas: i32) {
    eventually(&format!("{image} rolled out"), async || {
        let total: i32 = sets
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .iter()
            .map(spec_replicas)
            .sum();
        assert!(
            total <= replicas + 1,
            "{total} replicas asked for, more than maxSurge allows"
        );
        let d = deploys.get("web").await.ok()?;
        let generation = d.metadata.generation;
        let s = d.status?;
        let template_image = d.spec?.template.spec?.containers[0].image.clone()?;
        let progressing = s
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Progressing")?;
        (template_image == image
            && s.observed_generation == generation
            && s.updated_replicas == Some(replicas)
            && s.available_replicas == Some(replicas)
            && s.replicas == Some(replicas)
            && progressing.reason.as_deref() == Some("NewReplicaSetAvailable"))
        .then_some(())
    })
    .await;
}

/// The value of the series `series` (name and labels as printed) in `text`.
/// Waits until the Endpoints of Service `web` list exactly the running pods' IPs,
/// ready, on port 8080.
async fn endpoints_follow(endpoints: &Api<Endpoints>, pods: &Api<Pod>) {
    eventually("the Endpoints following the pods", async || {
        let mut want: Vec<String> = running_pods(pods)
            .await
            .into_iter()
            .filter_map(|p| p.status?.pod_ip)
            .collect();
        want.sort();
        let e = endpoints.get("web").await.ok()?;
        let subset = e.subsets?.into_iter().next()?;
        let ips: Vec<String> = subset.addresses?.into_iter().map(|a| a.ip).collect();
        let port = subset.ports?.first()?.port;
        (ips == want && port == 8080 && subset.not_ready_addresses.is_none()).then_some(())
    })
    .await;
}

/// The slices the EndpointSlice controller keeps for Service `web`.
async fn slices_of_web(slices: &Api<EndpointSlice>) -> Option<Vec<EndpointSlice>> {
    let params = ListParams::default().labels(
        "kubernetes.io/service-name=web,endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io",
    );
    Some(slices.list(&params).await.ok()?.items)
}

/// Waits until the EndpointSlices of Service `web` hold exactly the running pods as
/// ready endpoints on port 8080 (any other endpoint a terminating pod's), each slice
/// labelled, named and owned as kube's controller makes them.
async fn endpoint_slices_follow(slices: &Api<EndpointSlice>, pods: &Api<Pod>, service: &Service) {
    eventually("the EndpointSlices following the pods", async || {
        let running = running_pods(pods).await;
        let mut want: Vec<(String, String)> = running
            .iter()
            .filter_map(|p| Some((p.status.clone()?.pod_ip?, p.metadata.name.clone()?)))
            .collect();
        want.sort();
        let mut ready = Vec::new();
        for slice in slices_of_web(slices).await? {
            let labels = slice.metadata.labels.clone().unwrap_or_default();
            assert_eq!(labels["kubernetes.io/service-name"], "web");
            assert!(slice.metadata.name.as_deref()?.starts_with("web-"));
            assert_eq!(slice.address_type, "IPv4");
            let owner = slice
                .metadata
                .owner_references
                .clone()?
                .into_iter()
                .next()?;
            assert_eq!(
                (owner.kind.as_str(), owner.name.as_str(), Some(&owner.uid)),
                ("Service", "web", service.metadata.uid.as_ref())
            );
            assert_eq!(
                (owner.controller, owner.block_owner_deletion),
                (Some(true), Some(true))
            );
            if slice.endpoints.is_empty() {
                continue;
            }
            let port = slice.ports.clone()?.into_iter().next()?;
            let port = (port.name?, port.port?, port.protocol?);
            assert_eq!(port, ("http".to_string(), 8080, "TCP".to_string()));
            for e in slice.endpoints {
                let c = e.conditions.clone()?;
                let target = e.target_ref.clone()?;
                assert_eq!(target.kind.as_deref(), Some("Pod"));
                assert!(e.node_name.is_some());
                if c.ready == Some(true) {
                    assert_eq!((c.serving, c.terminating), (Some(true), Some(false)));
                    ready.push((e.addresses.first()?.clone(), target.name?));
                } else if c.terminating != Some(true) {
                    return None;
                }
            }
        }
        ready.sort();
        (ready == want).then_some(())
    })
    .await;
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `/metrics` after a rollout: the API server's, the store's and the controllers'
/// series, with values that follow from what happened; a node may not read it.
async fn scraped_metrics_show_the_work(server: &Server, client: &kube::Client) {
    let get = || http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(get()).await.unwrap();
    let created = r#"apiserver_request_total{code="201",resource="deployments",subresource="",verb="create"}"#;
    assert_eq!(sample(&text, created), Some(1.0), "{text}");
    // The objects' series follow the server's own (sent in pieces, read as one text).
    assert_eq!(
        text.matches("# TYPE kube_pod_status_phase gauge\n").count(),
        1,
        "{text}"
    );
    assert!(
        text.lines()
            .filter(|l| l.starts_with("kube_pod_status_phase{"))
            .any(|l| l.contains(r#"phase="Running""#) && l.ends_with("} 1")),
        "{text}"
    );
    let watches = r#"apiserver_longrunning_requests{resource="pods",verb="WATCH"}"#;
    assert!(
        sample(&text, watches).unwrap() >= 1.0,
        "the shared pod informer watches pods"
    );
    // One informer (one watch) per kind the scheduler and controllers read: pods,
    // nodes, leases, ReplicaSets, ReplicationControllers, Deployments, DaemonSets,
    // StatefulSets, ControllerRevisions, Jobs, CronJobs, PodDisruptionBudgets,
    // Services, Endpoints, EndpointSlices, HPAs, PersistentVolumeClaims,
    // PersistentVolumes, StorageClasses, Namespaces, ServiceAccounts, ConfigMaps,
    // ClusterRoles, Secrets and ResourceQuotas (the quota controller's), Ingresses
    // and IngressClasses (the Ingress status controller's); the
    // EndpointSliceMirroring controller's Services, Endpoints and EndpointSlices are
    // among them already.
    assert_eq!(
        sample(&text, r#"rk8s_actors{kind="Informer"}"#),
        Some(27.0),
        "{text}"
    );
    // The pod informer listed once (its watch kept up) and has taken in changes
    // up to at most the store's last revision.
    assert_eq!(
        sample(&text, r#"rk8s_informer_lists_total{resource="pods"}"#),
        Some(1.0),
        "{text}"
    );
    let informer = sample(&text, r#"rk8s_informer_resource_version{resource="pods"}"#).unwrap();
    let store = sample(&text, "etcd_debugging_mvcc_current_revision").unwrap();
    assert!(informer > 0.0 && informer <= store, "{informer} / {store}");
    // The watch caches' series, labelled as kube-apiserver's (group outside core).
    for resource in ["pods", "deployments.apps"] {
        let series = format!(r#"apiserver_watch_cache_resource_version{{resource="{resource}"}}"#);
        let cache = sample(&text, &series).unwrap_or(0.0);
        assert!(cache > 0.0 && cache <= store, "{series}: {cache} / {store}");
    }
    assert_eq!(sample(&text, "etcd_server_is_leader"), Some(1.0));
    assert!(sample(&text, "etcd_server_proposals_applied_total").unwrap() > 10.0);
    assert!(sample(&text, "etcd_disk_wal_fsync_duration_seconds_count").unwrap() > 0.0);
    assert_eq!(
        sample(&text, r#"rk8s_actors{kind="Deployment"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"rk8s_actors{kind="ReplicaSet"}"#),
        Some(1.0)
    );
    // The scheduler, and the ReplicaSet, ReplicationController, Deployment, Job,
    // CronJob, DaemonSet, StatefulSet, HPA, Endpoints, EndpointSlice,
    // EndpointSliceMirroring, PersistentVolume, disruption, garbage collector, node lifecycle, ServiceAccount,
    // ClusterRole aggregation, ResourceQuota, service load balancer, Ingress
    // status, activation (scale from zero on request) and namespace controllers.
    assert_eq!(
        sample(&text, r#"rk8s_actors{kind="Controller"}"#),
        Some(23.0)
    );
    // The holders of the scheduler's and the controller manager's leader Leases.
    assert_eq!(
        sample(&text, r#"rk8s_actors{kind="LeaderLease"}"#),
        Some(2.0)
    );
    assert!(
        sample(
            &text,
            r#"rk8s_controller_reconciles_total{kind="ReplicaSet"}"#
        )
        .unwrap()
            >= 1.0
    );
    let scheduled =
        r#"scheduler_schedule_attempts_total{profile="default-scheduler",result="scheduled"}"#;
    assert!(sample(&text, scheduled).unwrap() >= 3.0, "{text}");
    assert_eq!(
        sample(&text, r#"scheduler_pending_pods{queue="active"}"#),
        Some(0.0)
    );
    let as_node = server
        .client_with_token(Some(&server.node_token("sim-0")))
        .await;
    let refused = as_node.request_text(get()).await.unwrap_err();
    assert!(
        matches!(refused, kube::Error::Api(ref s) if s.code == 403),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_roll_scale_heal_and_cascade() {
    let server = Server::start(&[]);
    let client = server.client().await;
    let _nodes = simulate(&server, &["--count", "3", "--start-latency", "200ms"]);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    deploys
        .create(&PostParams::default(), &deployment("busybox:1.36"))
        .await
        .unwrap();
    rolled_out(&deploys, &sets, "busybox:1.36", 3).await;
    scraped_metrics_show_the_work(&server, &client).await;
    let first = sets.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(first.len(), 1);
    let first_name = first[0].metadata.name.clone().unwrap();
    assert_eq!(running_pods(&pods).await.len(), 3);
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }))
    .unwrap();
    let service = services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    endpoints_follow(&endpoints, &pods).await;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    endpoint_slices_follow(&slices, &pods, &service).await;
    let out = server.kubectl_ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
    ]);
    assert!(out.contains("IPv4") && out.contains("8080"), "{out}");

    // A rolling update to a new image, then back with kubectl.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "busybox:1.37"}]}}}});
    deploys
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    rolled_out(&deploys, &sets, "busybox:1.37", 3).await;
    let after = sets.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(after.len(), 2);
    let old = after
        .iter()
        .find(|rs| rs.metadata.name.as_deref() == Some(&first_name))
        .unwrap();
    assert_eq!(spec_replicas(old), 0);
    let (ok, out) = server.kubectl(&["rollout", "undo", "deployment/web"]);
    assert!(ok, "{out}");
    rolled_out(&deploys, &sets, "busybox:1.36", 3).await;
    let back = sets.get(&first_name).await.unwrap();
    assert_eq!(spec_replicas(&back), 3);
    assert_eq!(
        back.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "3"
    );

    // Scale through the scale subresource; a deleted pod is replaced.
    deploys
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    rolled_out(&deploys, &sets, "busybox:1.36", 5).await;
    let victim = running_pods(&pods).await[0].metadata.name.clone().unwrap();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    eventually("the deleted pod replaced", async || {
        let now = running_pods(&pods).await;
        (now.len() == 5
            && now
                .iter()
                .all(|p| p.metadata.name.as_deref() != Some(&victim)))
        .then_some(())
    })
    .await;
    endpoints_follow(&endpoints, &pods).await;
    endpoint_slices_follow(&slices, &pods, &service).await;

    // Background cascade: the Deployment goes, then its ReplicaSets and pods.
    deploys
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    eventually("everything of web gone", async || {
        let sets_left = sets.list(&ListParams::default()).await.ok()?.items.len();
        let pods_left = pods.list(&ListParams::default()).await.ok()?.items.len();
        (sets_left == 0 && pods_left == 0).then_some(())
    })
    .await;
    eventually("the Service without endpoints", async || {
        let e = endpoints.get("web").await.ok()?;
        e.subsets.is_none().then_some(())
    })
    .await;
    // kube's placeholder: one slice without endpoints.
    eventually("the Service's one slice empty", async || {
        let left = slices_of_web(&slices).await?;
        (left.len() == 1 && left[0].endpoints.is_empty()).then_some(())
    })
    .await;
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    eventually("its Endpoints deleted with the Service", async || {
        endpoints.get_opt("web").await.ok()?.is_none().then_some(())
    })
    .await;
    eventually("its EndpointSlices deleted with the Service", async || {
        slices_of_web(&slices).await?.is_empty().then_some(())
    })
    .await;

    // Orphan: the ReplicaSet stays, without its owner reference.
    deploys
        .create(&PostParams::default(), &deployment("busybox:1.36"))
        .await
        .unwrap();
    rolled_out(&deploys, &sets, "busybox:1.36", 3).await;
    let orphan = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..Default::default()
    };
    deploys.delete("web", &orphan).await.unwrap();
    let rs_name = eventually("the ReplicaSet orphaned", async || {
        let items = sets.list(&ListParams::default()).await.ok()?.items;
        let gone = deploys.get_opt("web").await.ok()?.is_none();
        let rs = items.into_iter().next()?;
        (gone
            && rs
                .metadata
                .owner_references
                .as_ref()
                .is_none_or(|o| o.is_empty()))
        .then(|| rs.metadata.name.unwrap())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        running_pods(&pods).await.len(),
        3,
        "the orphaned ReplicaSet keeps its pods"
    );

    // A new Deployment with that template adopts the orphan, pods and all.
    let before: Vec<String> = running_pods(&pods)
        .await
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    deploys
        .create(&PostParams::default(), &deployment("busybox:1.36"))
        .await
        .unwrap();
    eventually("the orphan adopted", async || {
        let d = deploys.get("web").await.ok()?;
        let rs = sets.get(&rs_name).await.ok()?;
        let owner = rs.metadata.owner_references?.into_iter().next()?;
        (owner.uid == d.metadata.uid?).then_some(())
    })
    .await;
    rolled_out(&deploys, &sets, "busybox:1.36", 3).await;
    assert_eq!(
        sets.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    let mut after: Vec<String> = running_pods(&pods)
        .await
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    after.sort();
    let mut before = before;
    before.sort();
    assert_eq!(before, after, "adoption kept the pods");
    deploys.delete("web", &orphan).await.unwrap();
    eventually("orphaned again", async || {
        let rs = sets.get(&rs_name).await.ok()?;
        let gone = deploys.get_opt("web").await.ok()?.is_none();
        (gone && rs.metadata.owner_references.is_none_or(|o| o.is_empty())).then_some(())
    })
    .await;

    // Foreground: the ReplicaSet waits for its pods to go first.
    let foreground = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..Default::default()
    };
    sets.delete(&rs_name, &foreground).await.unwrap();
    let held = sets.get(&rs_name).await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(
        held.metadata.finalizers.as_deref(),
        Some(&["foregroundDeletion".to_string()][..])
    );
    eventually("pods, then the ReplicaSet, gone", async || {
        let pods_left = pods.list(&ListParams::default()).await.ok()?.items.len();
        let rs_left = sets.get_opt(&rs_name).await.ok()?;
        (pods_left == 0 && rs_left.is_none()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_a_silent_node_are_evicted_and_recreated_elsewhere() {
    // Test-sized timing: unreachable after 15 s without a Lease renewal (agents renew
    // every 10 s), pods evicted 2 s later.
    let server = Server::start(&[
        "--node-monitor-grace-period",
        "15s",
        "--default-unreachable-toleration-seconds",
        "2",
    ]);
    let client = server.client().await;
    let mut doomed = Some(simulate(&server, &["--count", "1", "--prefix", "doomed"]));
    let _spare = simulate(&server, &["--count", "1", "--prefix", "spare"]);
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    eventually("both nodes", async || {
        (nodes.list(&ListParams::default()).await.ok()?.items.len() == 2).then_some(())
    })
    .await;
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "busybox"}]}}},
    }))
    .unwrap();
    sets.create(&PostParams::default(), &rs).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let on = async |node: &str| {
        running_pods(&pods)
            .await
            .into_iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
            .count()
    };
    eventually("4 pods Running, some on the doomed node", async || {
        (running_pods(&pods).await.len() == 4 && on("doomed-0").await > 0).then_some(())
    })
    .await;

    // The node's agent dies: no more Lease renewals.
    doomed.take();
    // Tainted, then (a second write) its Ready condition Unknown.
    let taint = eventually_within(
        "the silent node tainted unreachable and Ready Unknown",
        Duration::from_secs(60),
        async || {
            let node = nodes.get("doomed-0").await.ok()?;
            let unknown = node
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "Unknown");
            let taint = node
                .spec?
                .taints?
                .into_iter()
                .find(|t| t.key == "node.kubernetes.io/unreachable")?;
            unknown.then_some(taint)
        },
    )
    .await;
    assert_eq!(taint.effect, "NoExecute");
    // Its pods are evicted (they stay Terminating: nobody confirms on a dead node) and
    // replaced on the spare node.
    eventually_within(
        "pods replaced on the spare node",
        Duration::from_secs(60),
        async || (on("spare-0").await == 4).then_some(()),
    )
    .await;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let evictions = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("TaintManagerEviction"))
        .count();
    assert!(evictions > 0);

    // The node comes back: the taint goes.
    let _back = simulate(&server, &["--count", "1", "--prefix", "doomed"]);
    eventually("the taint removed", async || {
        let node = nodes.get("doomed-0").await.ok()?;
        let tainted = node
            .spec?
            .taints
            .unwrap_or_default()
            .iter()
            .any(|t| t.key == "node.kubernetes.io/unreachable");
        (!tainted).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_controller_keeps_its_replicas_and_scales_with_kubectl() {
    let server = Server::start(&[]);
    let client = server.client().await;
    let _nodes = simulate(&server, &["--count", "2"]);
    let controllers: Api<ReplicationController> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // A legacy manifest: no selector (defaulted from the template's labels).
    let rc: ReplicationController = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "legacy"},
        "spec": {"replicas": 3,
                 "template": {"metadata": {"labels": {"app": "legacy"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    }))
    .unwrap();
    let running = async |n: usize| {
        let listed = pods
            .list(&ListParams::default().labels("app=legacy"))
            .await
            .ok()?;
        let live: Vec<Pod> = listed
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .collect();
        (live.len() == n).then_some(live)
    };
    // A pod that was there first, with the template's labels, before any owner of
    // the kind in its namespace: adopted, not doubled.
    let first: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "was-here-first", "labels": {"app": "legacy"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &first).await.unwrap();
    eventually("the pod that was there first", async || running(1).await).await;
    controllers
        .create(&PostParams::default(), &rc)
        .await
        .unwrap();
    let three = eventually("3 pods of the ReplicationController", async || {
        let three = running(3).await?;
        three
            .iter()
            .all(|p| {
                p.metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|o| !o.is_empty())
            })
            .then_some(three)
    })
    .await;
    for pod in &three {
        let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.api_version.as_str(),
                owner.kind.as_str(),
                owner.name.as_str()
            ),
            ("v1", "ReplicationController", "legacy")
        );
    }
    assert!(
        three
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some("was-here-first")),
        "the pod that was there first is adopted"
    );
    eventually("its status", async || {
        let s = controllers.get("legacy").await.ok()?.status?;
        (s.ready_replicas == Some(3) && s.replicas == 3).then_some(())
    })
    .await;

    let (ok, out) = server.kubectl(&["scale", "rc/legacy", "--replicas=1"]);
    assert!(
        ok && out.contains("replicationcontroller/legacy scaled"),
        "{out}"
    );
    eventually("scaled to 1", async || running(1).await).await;
    // A deleted pod is replaced.
    let last = running(1).await.unwrap()[0].metadata.name.clone().unwrap();
    pods.delete(&last, &DeleteParams::default()).await.unwrap();
    eventually("the pod replaced", async || {
        running(1)
            .await
            .filter(|p| p[0].metadata.name.as_deref() != Some(last.as_str()))
    })
    .await;
    controllers
        .delete("legacy", &DeleteParams::default())
        .await
        .unwrap();
    eventually("its pods gone with it", async || {
        let left = pods
            .list(&ListParams::default().labels("app=legacy"))
            .await
            .ok()?;
        left.items.is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disruption_budget_holds_evictions_and_drain_until_it_allows_them() {
    let server = Server::start(&[]);
    let client = server.client().await;
    let _nodes = simulate(&server, &["--count", "2", "--prefix", "pdb"]);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let nodes: Api<Node> = Api::all(client.clone());
    eventually("two simulated nodes", async || {
        (nodes.list(&ListParams::default()).await.ok()?.items.len() == 2).then_some(())
    })
    .await;
    deploys
        .create(&PostParams::default(), &deployment("busybox:1.36"))
        .await
        .unwrap();
    let budget: PodDisruptionBudget = serde_json::from_value(json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "web"},
        "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "web"}}},
    }))
    .unwrap();
    budgets
        .create(&PostParams::default(), &budget)
        .await
        .unwrap();
    // Three replicas Ready, none may be unavailable: no disruption allowed.
    let status = eventually("the budget's status", async || {
        let s = budgets.get("web").await.ok()?.status?;
        (s.current_healthy == 3 && s.observed_generation == Some(1)).then_some(s)
    })
    .await;
    assert_eq!((s_of(&status), status.disruptions_allowed), ((3, 3, 3), 0));
    let condition = &status.conditions.unwrap()[0];
    assert_eq!(
        (
            condition.type_.as_str(),
            condition.status.as_str(),
            condition.reason.as_str()
        ),
        ("DisruptionAllowed", "False", "InsufficientPods")
    );

    // An eviction is refused with kubectl's words and the budget as its cause.
    let victim = running_pods(&pods).await[0].metadata.name.clone().unwrap();
    let eviction =
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": victim}});
    // (Through kubectl: the Rust client retries a 429 on its own, for minutes.)
    let out = support::cli::output(
        server.kubectl_command().args([
            "create",
            "--raw",
            &format!("/api/v1/namespaces/default/pods/{victim}/eviction"),
            "-f",
            "-",
        ]),
        Some(&eviction.to_string()),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error from server (TooManyRequests): Cannot evict pod as it would violate the pod's disruption budget."
    );

    // kubectl drain tries, is refused, and gives up at its timeout.
    let node = running_pods(&pods).await[0]
        .spec
        .clone()
        .unwrap()
        .node_name
        .unwrap();
    let (ok, out) = server.kubectl(&["drain", &node, "--timeout=8s"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{out}"
    );
    assert_eq!(running_pods(&pods).await.len(), 3);

    // One may go: the drain evicts the node's pods, one at a time as the budget
    // allows (the Deployment puts each back on the other node).
    let patch = json!({"spec": {"maxUnavailable": 1}});
    budgets
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("one disruption allowed", async || {
        let s = budgets.get("web").await.ok()?.status?;
        (s.disruptions_allowed == 1).then_some(())
    })
    .await;
    // A server-side dry run evicts nothing.
    let (ok, out) = server.kubectl(&["drain", &node, "--dry-run=server", "--timeout=20s"]);
    assert!(ok && out.contains("(server dry run)"), "{out}");
    assert_eq!(running_pods(&pods).await.len(), 3);
    let drained = server.rk8sctl_ok(&["drain", &node, "--timeout=60s", "--grace-period=0"]);
    assert!(
        drained.contains("evicted") && drained.ends_with(&format!("node/{node} drained\n")),
        "{drained}"
    );
    let left = running_pods(&pods).await;
    assert!(
        left.iter()
            .all(|p| p.spec.as_ref().unwrap().node_name.as_deref() != Some(node.as_str()))
    );
}

/// (expected, current healthy, desired healthy) of a budget's status.
fn s_of(s: &k8s_openapi::api::policy::v1::PodDisruptionBudgetStatus) -> (i32, i32, i32) {
    (s.expected_pods, s.current_healthy, s.desired_healthy)
}

/// The slices the EndpointSliceMirroring controller keeps for Endpoints `db`.
async fn mirrored_db(slices: &Api<EndpointSlice>) -> Option<Vec<EndpointSlice>> {
    let lp = ListParams::default().labels(
        "kubernetes.io/service-name=db,endpointslice.kubernetes.io/managed-by=endpointslicemirroring-controller.k8s.io",
    );
    Some(slices.list(&lp).await.ok()?.items)
}

/// The (address, ready) pairs of `slice`, sorted.
fn addresses(slice: &EndpointSlice) -> Vec<(String, bool)> {
    let mut out: Vec<_> = slice
        .endpoints
        .iter()
        .map(|e| {
            let ready = e.conditions.as_ref().and_then(|c| c.ready);
            (e.addresses[0].clone(), ready == Some(true))
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoints_of_a_service_without_selector_are_mirrored_into_a_slice() {
    let server = Server::start(&[]);
    let client = server.client().await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"ports": [{"name": "sql", "port": 5432}]},
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let written: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "db", "labels": {"team": "data"}},
        "subsets": [{
            "addresses": [{"ip": "10.9.0.1"}],
            "notReadyAddresses": [{"ip": "10.9.0.2"}],
            "ports": [{"name": "sql", "port": 5432}],
        }],
    }))
    .unwrap();
    let written = endpoints
        .create(&PostParams::default(), &written)
        .await
        .unwrap();
    let slice = eventually("the Endpoints mirrored into a slice", async || {
        let mut found = mirrored_db(&slices).await?;
        (found.len() == 1).then(|| found.remove(0))
    })
    .await;
    assert_eq!(
        addresses(&slice),
        [("10.9.0.1".into(), true), ("10.9.0.2".into(), false)]
    );
    let port = &slice.ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("sql"), Some(5432)));
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(slice.metadata.labels.as_ref().unwrap()["team"], "data");
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.kind, "Endpoints");
    assert_eq!(Some(&owner.uid), written.metadata.uid.as_ref());
    // The EndpointSlice controller leaves a selector-less Service alone.
    let all = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=db"))
        .await
        .unwrap()
        .items;
    assert_eq!(all.len(), 1);

    // A change of the Endpoints is followed, in the same slice.
    let patch = json!({"subsets": [{
        "addresses": [{"ip": "10.9.0.1"}, {"ip": "10.9.0.3"}],
        "ports": [{"name": "sql", "port": 5432}],
    }]});
    endpoints
        .patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let name = slice.metadata.name.clone();
    eventually("the mirrored slice following the Endpoints", async || {
        let found = mirrored_db(&slices).await?;
        (found.len() == 1
            && found[0].metadata.name == name
            && addresses(&found[0]) == [("10.9.0.1".into(), true), ("10.9.0.3".into(), true)])
        .then_some(())
    })
    .await;

    // The `kubernetes` Service has one slice: the API server's (its Endpoints is
    // marked skip-mirror).
    let kubernetes = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=kubernetes"))
        .await
        .unwrap()
        .items;
    assert_eq!(kubernetes.len(), 1, "{kubernetes:?}");
    assert_eq!(kubernetes[0].metadata.name.as_deref(), Some("kubernetes"));
    eventually("the kubernetes Endpoints marked skip-mirror", async || {
        let labels = endpoints
            .get_opt("kubernetes")
            .await
            .ok()??
            .metadata
            .labels?;
        (labels.get("endpointslice.kubernetes.io/skip-mirror")? == "true").then_some(())
    })
    .await;

    // The Endpoints deleted: so is its slice.
    endpoints
        .delete("db", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the mirrored slice deleted with the Endpoints",
        async || mirrored_db(&slices).await?.is_empty().then_some(()),
    )
    .await;
}

/// A simulated node has made-up addresses: nothing dials them, not the activation
/// controller while a Deployment waits to be woken, not a proxy request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_nodes_are_never_dialed() {
    let server = Server::start(&[]);
    let client = server.client().await;
    let _nodes = simulate(&server, &["--count", "3", "--prefix", "sim"]);
    let nodes: Api<Node> = Api::all(client.clone());
    eventually("3 simulated nodes Ready", async || {
        let ready = nodes.list(&ListParams::default()).await.ok()?.items;
        (ready.len() == 3).then_some(())
    })
    .await;
    // Something to wake from zero: the activation controller follows the nodes
    // that have an agent.
    let mut web = deployment("registry.local/web:1");
    web.metadata.annotations = Some(
        [(
            "scale.rk8s.io/wake-on-request".to_string(),
            "true".to_string(),
        )]
        .into(),
    );
    web.spec.as_mut().unwrap().replicas = Some(0);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deploys.create(&PostParams::default(), &web).await.unwrap();
    // A dial would have timed out (5 s) by then.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (ok, out) = server.kubectl(&["get", "--raw", "/api/v1/nodes/sim-0/proxy/metrics"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("node sim-0 is simulated (rk8s.io/simulated=true): it has no agent to reach"),
        "{out}"
    );
    let log = server.log();
    assert!(
        !log.contains("dialing the node agent failed"),
        "a simulated node was dialed:\n{log}"
    );
}

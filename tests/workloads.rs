//! Workloads on a real node (`rk8s-node join`, real containers): a Deployment rolled
//! from one image to another and back with `rk8sctl rollout undo`, restarted and
//! paused; Jobs that complete (one Indexed, each pod its index), that exhaust their backoff limit, that pass their
//! deadline, that go after their TTL, and whose deletion lets their pods go.
//! Containers' environment from ConfigMaps, Secrets and the pod's fields; ConfigMap,
//! Secret and downwardAPI volumes that follow their sources (but for a subPath). A
//! DaemonSet on nodes in network namespaces: a pod on each, one more for a node that
//! joins, rolled to a new template and back with Debian's kubectl. A StatefulSet of
//! three on those nodes with local-path volumes: stable names, DNS names and data
//! across deletion and scaling, a rolling update, its volumes reclaimed. CronJobs: one every
//! minute, one every 15 s kept to its history limit, suspended, and deleted with its
//! Jobs. kubectl in a pod, as its ServiceAccount with a RoleBinding. Memory emptyDirs,
//! an eviction for an emptyDir's sizeLimit and a crash loop's counted BackOff event.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "workloads/kubelet.rs"]
mod kubelet;
#[path = "workloads/service_accounts.rs"]
mod service_accounts;
#[path = "workloads/stateful_sets.rs"]
mod stateful_sets;
mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, Deployment};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;
use support::apiserver::Server;
use support::images::{busybox, pause};
use support::netns::NodeNetwork;
use support::node::{
    eventually, eventually_within, real_node, real_node_in, two_nodes_in_namespaces,
};

/// The images of the Running, not deleted, pods labelled `selector`.
async fn running_images(pods: &Api<Pod>, selector: &str) -> Vec<String> {
    pods.list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .map(|p| p.spec.unwrap().containers[0].image.clone().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_rolls_between_real_images_and_back() {
    let busybox = busybox();
    let pause = pause();
    let server = Server::start(&[]);
    let _node = real_node(&server, "worker", 31).await;
    let client = server.client().await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    let web: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "web", "image": busybox,
                                         "command": ["sleep", "3600"]}]}},
        },
    }))
    .unwrap();
    deploys.create(&PostParams::default(), &web).await.unwrap();
    // Durations as kubectl spells them (Go's time.ParseDuration).
    let status = server.rk8sctl_ok(&["rollout", "status", "deploy/web", "--timeout", "1m30s"]);
    assert!(
        status.ends_with("deployment \"web\" successfully rolled out\n"),
        "{status}"
    );
    assert_eq!(
        running_images(&pods, "app=web").await,
        [busybox.as_str(), busybox.as_str()]
    );

    // To the pause image: its own entrypoint, real containers replaced one by one.
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": pause, "command": ["/pause"]}]}}}});
    deploys
        .patch(
            "web",
            &Default::default(),
            &kube::api::Patch::Strategic(&patch),
        )
        .await
        .unwrap();
    server.rk8sctl_ok(&["rollout", "status", "deploy/web", "--timeout", "60s"]);
    eventually("both pods on the pause image", async || {
        (running_images(&pods, "app=web").await == [pause.as_str(), pause.as_str()]).then_some(())
    })
    .await;
    let history = server.rk8sctl_ok(&["rollout", "history", "deployment", "web"]);
    assert!(
        history.contains("\n1          <none>\n2          <none>\n"),
        "{history}"
    );

    // And back.
    let undo = server.rk8sctl_ok(&["rollout", "undo", "deploy/web"]);
    assert_eq!(undo, "deployment.apps/web rolled back\n");
    server.rk8sctl_ok(&["rollout", "status", "deploy/web", "--timeout", "60s"]);
    eventually("both pods back on busybox", async || {
        (running_images(&pods, "app=web").await == [busybox.as_str(), busybox.as_str()])
            .then_some(())
    })
    .await;
    let history = server.rk8sctl_ok(&["rollout", "history", "deploy/web"]);
    assert!(
        history.contains("\n2          <none>\n3          <none>\n"),
        "{history}"
    );
    let revision = server.rk8sctl_ok(&["rollout", "history", "deploy/web", "--revision", "3"]);
    assert!(revision.contains(&busybox), "{revision}");

    // Paused, a restart is refused; resumed, a restart replaces every pod.
    server.rk8sctl_ok(&["rollout", "pause", "deploy/web"]);
    let out = server.rk8sctl(&["rollout", "restart", "deploy/web"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is paused"));
    server.rk8sctl_ok(&["rollout", "resume", "deploy/web"]);
    let before: Vec<String> = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    assert_eq!(
        server.rk8sctl_ok(&["rollout", "restart", "deploy/web"]),
        "deployment.apps/web restarted\n"
    );
    server.rk8sctl_ok(&["rollout", "status", "deploy/web", "--timeout", "60s"]);
    eventually("every pod replaced", async || {
        let now = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?
            .items;
        let fresh = now
            .iter()
            .filter(|p| !before.contains(p.metadata.name.as_ref().unwrap()))
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        (fresh == 2 && now.len() == 2).then_some(())
    })
    .await;
    deploys
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the pods gone with the Deployment", async || {
        let left = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        left.items.is_empty().then_some(())
    })
    .await;
}

fn job(name: &str, busybox: &str, script: &str, spec: serde_json::Value) -> Job {
    let mut spec = spec;
    spec["template"] = json!({"spec": {
        "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": busybox, "command": ["sh", "-c", script]}]}});
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

/// Waits for the Job's terminal condition (`Complete` or `Failed`) and returns it
/// with the Job.
async fn ended(jobs: &Api<Job>, name: &str) -> (String, String, Job) {
    eventually(&format!("job {name} ended"), async || {
        let j = jobs.get(name).await.ok()?;
        let c = j
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")?
            .clone();
        Some((c.type_, c.reason.unwrap_or_default(), j))
    })
    .await
}

async fn pods_of(pods: &Api<Pod>, job: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .unwrap()
        .items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_complete_fail_and_time_out_on_a_real_node() {
    let busybox = busybox();
    let server = Server::start(&[]);
    let _node = real_node(&server, "worker", 32).await;
    let client = server.client().await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let post = PostParams::default();

    // Three completions, two at a time: each success counted once.
    jobs.create(
        &post,
        &job(
            "count",
            &busybox,
            "echo done",
            json!({"completions": 3, "parallelism": 2}),
        ),
    )
    .await
    .unwrap();
    let (type_, reason, done) = ended(&jobs, "count").await;
    assert_eq!(
        (type_.as_str(), reason.as_str()),
        ("Complete", "CompletionsReached")
    );
    let status = done.status.unwrap();
    assert_eq!(status.succeeded, Some(3));
    assert_eq!(status.failed, None);
    assert!(status.completion_time.is_some() && status.start_time.is_some());
    let finished = pods_of(&pods, "count").await;
    assert_eq!(finished.len(), 3);
    for p in &finished {
        assert_eq!(
            p.status.as_ref().unwrap().phase.as_deref(),
            Some("Succeeded")
        );
        assert!(
            p.metadata.finalizers.as_ref().is_none_or(|f| f.is_empty()),
            "{:?}",
            p.metadata
        );
    }
    let logs = server.rk8sctl_ok(&["logs", finished[0].metadata.name.as_ref().unwrap()]);
    assert_eq!(logs, "done\n");
    let table = server.rk8sctl_ok(&["get", "jobs"]);
    assert!(table.contains("count") && table.contains("3/3"), "{table}");

    // Indexed: each pod runs its own index, with its hostname.
    jobs.create(
        &post,
        &job(
            "render",
            &busybox,
            "echo index $JOB_COMPLETION_INDEX on $(hostname)",
            json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed"}),
        ),
    )
    .await
    .unwrap();
    let (type_, _, done) = ended(&jobs, "render").await;
    assert_eq!(type_, "Complete");
    let status = done.status.unwrap();
    assert_eq!(
        (status.succeeded, status.completed_indexes.as_deref()),
        (Some(3), Some("0-2"))
    );
    let mut said: Vec<String> = Vec::new();
    for p in pods_of(&pods, "render").await {
        let name = p.metadata.name.unwrap();
        let index = &p.metadata.annotations.unwrap()["batch.kubernetes.io/job-completion-index"];
        assert!(name.starts_with(&format!("render-{index}-")), "{name}");
        said.push(server.rk8sctl_ok(&["logs", &name]));
    }
    said.sort();
    assert_eq!(
        said,
        [
            "index 0 on render-0\n",
            "index 1 on render-1\n",
            "index 2 on render-2\n"
        ]
    );

    // Failing pods: the limit is one retry, so two failures end it.
    jobs.create(
        &post,
        &job("broken", &busybox, "exit 3", json!({"backoffLimit": 1})),
    )
    .await
    .unwrap();
    let (type_, reason, failed) = ended(&jobs, "broken").await;
    assert_eq!(
        (type_.as_str(), reason.as_str()),
        ("Failed", "BackoffLimitExceeded")
    );
    assert_eq!(failed.status.unwrap().failed, Some(2));
    assert_eq!(pods_of(&pods, "broken").await.len(), 2);

    // Past its deadline, the running pod is stopped.
    jobs.create(
        &post,
        &job(
            "slow",
            &busybox,
            "sleep 600",
            json!({"activeDeadlineSeconds": 2}),
        ),
    )
    .await
    .unwrap();
    let (type_, reason, _) = ended(&jobs, "slow").await;
    assert_eq!(
        (type_.as_str(), reason.as_str()),
        ("Failed", "DeadlineExceeded")
    );
    eventually("the slow pod stopped", async || {
        pods_of(&pods, "slow")
            .await
            .iter()
            .all(|p| {
                p.metadata.deletion_timestamp.is_some()
                    || matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Failed" | "Succeeded")
                    )
            })
            .then_some(())
    })
    .await;

    // With ttlSecondsAfterFinished, a finished Job goes by itself, its pods first.
    jobs.create(
        &post,
        &job(
            "brief",
            &busybox,
            "true",
            json!({"ttlSecondsAfterFinished": 2}),
        ),
    )
    .await
    .unwrap();
    let (type_, _, _) = ended(&jobs, "brief").await;
    assert_eq!(type_, "Complete");
    eventually("the brief Job and its pod gone after its TTL", async || {
        let gone = jobs.get_opt("brief").await.ok()?.is_none();
        (gone && pods_of(&pods, "brief").await.is_empty()).then_some(())
    })
    .await;

    // Deleting a running Job takes its pods, tracking finalizer and all.
    jobs.create(
        &post,
        &job(
            "endless",
            &busybox,
            "sleep 600",
            json!({"parallelism": 2, "completions": 2}),
        ),
    )
    .await
    .unwrap();
    eventually("two endless pods Running", async || {
        let running = pods_of(&pods, "endless")
            .await
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        (running == 2).then_some(())
    })
    .await;
    jobs.delete("endless", &DeleteParams::background())
        .await
        .unwrap();
    eventually("the endless pods gone", async || {
        pods_of(&pods, "endless").await.is_empty().then_some(())
    })
    .await;
    for name in ["count", "render", "broken", "slow"] {
        jobs.delete(name, &DeleteParams::foreground())
            .await
            .unwrap();
    }
    eventually("every job and pod gone", async || {
        let left = pods.list(&ListParams::default()).await.ok()?.items.len()
            + jobs.list(&ListParams::default()).await.ok()?.items.len();
        (left == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_take_their_environment_from_config_maps_and_secrets() {
    let server = Server::start(&[]);
    let _node = real_node(&server, "worker", 33).await;
    let client = server.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "default");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, "default");
    let pp = PostParams::default();
    let secret = serde_json::from_value(json!({
        "metadata": {"name": "db"}, "stringData": {"password": "s3cret"}
    }))
    .unwrap();
    secrets.create(&pp, &secret).await.unwrap();
    // The ConfigMap does not exist yet: the container cannot be made, and says why.
    let pod = serde_json::from_value(json!({
        "metadata": {"name": "configured", "labels": {"tier": "web"}},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": busybox(),
            "command": ["sh", "-c", "echo \"$APP_level $LEVEL $DB_PASSWORD $TIER $(GREETING) $MEM_MI $CPU_M\""],
            "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}, "limits": {"memory": "48Mi"}},
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "APP_"}],
            "env": [
                {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level"}}},
                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                {"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}},
                {"name": "GREETING", "value": "hello $(TIER)"},
                {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}}
            ]}]}
    }))
    .unwrap();
    pods.create(&pp, &pod).await.unwrap();
    let waiting = eventually("the container config refused", async || {
        let status = pods.get("configured").await.ok()?.status?;
        let waiting = status.container_statuses?.first()?.state.clone()?.waiting?;
        (waiting.reason.as_deref() == Some("CreateContainerConfigError")).then_some(waiting)
    })
    .await;
    assert_eq!(
        waiting.message.as_deref(),
        Some("configmap \"settings\" not found")
    );
    // And says so in an event, from the node's kubelet.
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(server.client().await, "default");
    let event = eventually("the Failed event", async || {
        let listed = events.list(&ListParams::default()).await.ok()?;
        listed.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("Failed")
                && e.involved_object.name.as_deref() == Some("configured")
        })
    })
    .await;
    assert_eq!(
        event.message.as_deref(),
        Some("Error: configmap \"settings\" not found")
    );
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let source = event.source.unwrap_or_default();
    assert_eq!(
        (source.component.as_deref(), source.host.as_deref()),
        (Some("kubelet"), Some("worker"))
    );
    // It arrives: the node reads it again and the container starts with its values.
    let settings = serde_json::from_value(json!({
        "metadata": {"name": "settings"}, "data": {"level": "debug"}
    }))
    .unwrap();
    config_maps.create(&pp, &settings).await.unwrap();
    eventually("the pod succeeded", async || {
        let status = pods.get("configured").await.ok()?.status?;
        (status.phase.as_deref() == Some("Succeeded")).then_some(())
    })
    .await;
    let log = pods.logs("configured", &Default::default()).await.unwrap();
    assert_eq!(log, "debug debug s3cret web hello web 48 100\n");
    pods.delete("configured", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the pod gone", async || {
        pods.get_opt("configured")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_dirs_evictions_and_event_series_on_a_real_node() {
    let server = Server::start(&[]);
    let _node = real_node(&server, "worker", 35).await;
    kubelet::empty_dirs_evictions_and_event_series(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_map_secret_and_downward_api_volumes_follow_their_sources() {
    let server = Server::start(&[]);
    // The inputs read again every 2 s (kubelet's --sync-frequency, 1 minute by default).
    let _node = support::node::real_node_with(
        &server,
        "worker",
        34,
        &["--stats-interval", "1s", "--sync-frequency", "2s"],
    )
    .await;
    let client = server.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "default");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, "default");
    let pp = PostParams::default();
    let settings = serde_json::from_value(json!({
        "metadata": {"name": "settings"}, "data": {"app.conf": "level=info", "other": "x"}
    }))
    .unwrap();
    config_maps.create(&pp, &settings).await.unwrap();
    let secret = serde_json::from_value(json!({
        "metadata": {"name": "tls"}, "stringData": {"key.pem": "KEY"}
    }))
    .unwrap();
    secrets.create(&pp, &secret).await.unwrap();
    // Each second: the mounted file, the subPath copy, the secret's mode, content and
    // filesystem (a tmpfs: never on the node's disk), the pod's labels file; then
    // whether the volume is read-only.
    let script = "while true; do echo \"$(cat /etc/app/conf/app.conf)|$(cat /etc/app.conf)|$(stat -L -c %a /etc/tls/key.pem):$(cat /etc/tls/key.pem):$(stat -f -c %T /etc/tls)|$(cat /etc/info/labels) $(cat /etc/info/cpu)|$(touch /etc/app/conf/x 2>/dev/null && echo writable || echo read-only)\"; sleep 1; done";
    let pod = serde_json::from_value(json!({
        "metadata": {"name": "mounted", "labels": {"tier": "web"}},
        "spec": {"containers": [{
            "name": "main", "image": busybox(), "command": ["sh", "-c", script],
            "resources": {"limits": {"cpu": "1500m"}},
            "volumeMounts": [
                {"name": "conf", "mountPath": "/etc/app/conf"},
                {"name": "conf", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
                {"name": "tls", "mountPath": "/etc/tls"},
                {"name": "info", "mountPath": "/etc/info"}
            ]}],
            "volumes": [
                {"name": "conf", "configMap": {"name": "settings", "items": [{"key": "app.conf", "path": "app.conf"}]}},
                {"name": "tls", "secret": {"secretName": "tls", "defaultMode": 0o400}},
                {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {"path": "cpu", "resourceFieldRef": {"containerName": "main", "resource": "limits.cpu", "divisor": "1m"}}]}}
            ]}
    }))
    .unwrap();
    pods.create(&pp, &pod).await.unwrap();
    let last_line = async |pods: &Api<Pod>| -> Option<String> {
        let log = pods.logs("mounted", &Default::default()).await.ok()?;
        log.lines().last().map(str::to_string)
    };
    let first = eventually("the volumes read", async || {
        last_line(&pods).await.filter(|l| l.contains("level=info"))
    })
    .await;
    assert_eq!(
        first,
        "level=info|level=info|400:KEY:tmpfs|tier=\"web\" 1500|read-only"
    );
    // The ConfigMap changes: the mounted file follows, the subPath keeps its copy.
    let change = json!({"data": {"app.conf": "level=debug"}});
    config_maps
        .patch(
            "settings",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&change),
        )
        .await
        .unwrap();
    let changed = eventually("the mounted file changed", async || {
        last_line(&pods)
            .await
            .filter(|l| l.starts_with("level=debug"))
    })
    .await;
    assert_eq!(
        changed,
        "level=debug|level=info|400:KEY:tmpfs|tier=\"web\" 1500|read-only"
    );
    // A volume whose ConfigMap does not exist: the container waits, saying why.
    let missing = serde_json::from_value(json!({
        "metadata": {"name": "unmounted"},
        "spec": {"containers": [{"name": "main", "image": busybox(), "command": ["sleep", "60"],
            "volumeMounts": [{"name": "conf", "mountPath": "/etc/app"}]}],
            "volumes": [{"name": "conf", "configMap": {"name": "nope"}}]}
    }))
    .unwrap();
    pods.create(&pp, &missing).await.unwrap();
    let waiting = eventually("the container waiting for its volume", async || {
        let status = pods.get("unmounted").await.ok()?.status?;
        let waiting = status.container_statuses?.first()?.state.clone()?.waiting?;
        waiting.message.is_some().then_some(waiting)
    })
    .await;
    assert_eq!(waiting.reason.as_deref(), Some("ContainerCreating"));
    assert_eq!(
        waiting.message.as_deref(),
        Some("MountVolume.SetUp failed for volume \"conf\" : configmap \"nope\" not found")
    );
    for name in ["mounted", "unmounted"] {
        pods.delete(name, &DeleteParams::default().grace_period(1))
            .await
            .unwrap();
    }
    eventually("the pods gone", async || {
        let left = pods.list(&ListParams::default()).await.ok()?;
        left.items.is_empty().then_some(())
    })
    .await;
}

/// The nodes of the Running, not deleted, pods labelled `selector`, each with its
/// container's command, sorted.
async fn running_on(pods: &Api<Pod>, selector: &str) -> Vec<(String, String)> {
    let mut on: Vec<(String, String)> = pods
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .map(|p| {
            let spec = p.spec.unwrap();
            (
                spec.node_name.unwrap_or_default(),
                spec.containers[0].command.clone().unwrap().join(" "),
            )
        })
        .collect();
    on.sort();
    on
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_set_runs_on_every_node_and_rolls_with_kubectl() {
    let busybox = busybox();
    // Declared first, dropped last: nodes are reset inside their namespaces first.
    let mut net = NodeNetwork::new();
    let host = net.host_ip();
    let server = Server::start(&["--address", &host]);
    let (_agents, _namespaces) = two_nodes_in_namespaces(&server, &mut net, 60).await;
    let client = server.client().await;
    let daemons: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), "default");

    let agent: DaemonSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "agent", "image": busybox,
                                         "command": ["sleep", "3600"]}]}},
        },
    }))
    .unwrap();
    daemons
        .create(&PostParams::default(), &agent)
        .await
        .unwrap();
    let status = server.rk8sctl_ok(&["rollout", "status", "ds/agent", "--timeout", "90s"]);
    assert!(
        status.ends_with("daemon set \"agent\" successfully rolled out\n"),
        "{status}"
    );
    let one = |node: &str, command: &str| (node.to_string(), command.to_string());
    assert_eq!(
        running_on(&pods, "app=agent").await,
        [one("a", "sleep 3600"), one("b", "sleep 3600")]
    );

    // A node that joins gets its daemon pod.
    let third = net.add_node(3);
    let _c = real_node_in(&server, "c", 63, Some(third), &[]).await;
    eventually_within("a daemon pod on c", Duration::from_secs(60), async || {
        (running_on(&pods, "app=agent").await.len() == 3).then_some(())
    })
    .await;

    // A new template replaces the pods one node at a time; kubectl follows it.
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "agent", "image": busybox, "command": ["sleep", "7200"]}]}}}});
    daemons
        .patch(
            "agent",
            &Default::default(),
            &kube::api::Patch::Strategic(&patch),
        )
        .await
        .unwrap();
    let (ok, out) = server.kubectl(&["rollout", "status", "ds/agent", "--timeout=120s"]);
    assert!(
        ok && out.contains("daemon set \"agent\" successfully rolled out"),
        "{out}"
    );
    assert_eq!(
        running_on(&pods, "app=agent").await,
        [
            one("a", "sleep 7200"),
            one("b", "sleep 7200"),
            one("c", "sleep 7200")
        ]
    );
    let ds = daemons.get("agent").await.unwrap();
    let status = ds.status.unwrap();
    assert_eq!(
        (
            status.desired_number_scheduled,
            status.updated_number_scheduled,
            status.number_available
        ),
        (3, Some(3), Some(3))
    );

    // Its history is two ControllerRevisions, which kubectl lists and rolls back to.
    let (ok, out) = server.kubectl(&["rollout", "history", "ds/agent"]);
    assert!(ok, "{out}");
    let numbers: Vec<&str> = out
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(numbers, ["1", "2"], "{out}");
    let (ok, out) = server.kubectl(&["rollout", "undo", "ds/agent"]);
    assert!(
        ok && out.contains("daemonset.apps/agent rolled back"),
        "{out}"
    );
    let (ok, out) = server.kubectl(&["rollout", "status", "ds/agent", "--timeout=120s"]);
    assert!(ok, "{out}");
    eventually_within(
        "the old template back on every node",
        Duration::from_secs(60),
        async || {
            let on = running_on(&pods, "app=agent").await;
            (on == [
                one("a", "sleep 3600"),
                one("b", "sleep 3600"),
                one("c", "sleep 3600"),
            ])
            .then_some(())
        },
    )
    .await;
    // The rolled-back template's revision is the newest again, not a third copy.
    let mut numbers: Vec<i64> = revisions
        .list(&ListParams::default().labels("app=agent"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| r.revision)
        .collect();
    numbers.sort();
    assert_eq!(numbers, [2, 3]);

    // Deleted, its pods go with it.
    daemons
        .delete("agent", &DeleteParams::default())
        .await
        .unwrap();
    eventually_within(
        "the daemon pods gone",
        Duration::from_secs(60),
        async || {
            let left = pods
                .list(&ListParams::default().labels("app=agent"))
                .await
                .unwrap();
            left.items.is_empty().then_some(())
        },
    )
    .await;

    stateful_sets::stateful_sets_keep_names_data_and_dns(&server).await;
    cron_jobs_run_on_schedule_and_keep_their_history(&server).await;
}

fn cron_job(name: &str, busybox: &str, spec: serde_json::Value) -> CronJob {
    let mut spec = spec;
    spec["jobTemplate"] = json!({
        "metadata": {"labels": {"cron": name}},
        "spec": {"template": {"metadata": {"labels": {"cron": name}}, "spec": {
            "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": busybox, "command": ["true"]}]}}}});
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

/// The Jobs labelled `cron=NAME`, and how many of them completed.
async fn cron_jobs_of(jobs: &Api<Job>, name: &str) -> (Vec<Job>, usize) {
    let listed = jobs
        .list(&ListParams::default().labels(&format!("cron={name}")))
        .await
        .unwrap()
        .items;
    let complete = listed
        .iter()
        .filter(|j| {
            j.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Complete" && c.status == "True")
                })
        })
        .count();
    (listed, complete)
}

/// CronJobs on the nodes of [`a_daemon_set_runs_on_every_node_and_rolls_with_kubectl`]
/// (a real node of its own on the host's network would share the host's nftables
/// table with the other tests' nodes): one every 15 s kept to its history limit and
/// suspended, one every minute in Berlin's time zone, deleted with its Jobs.
async fn cron_jobs_run_on_schedule_and_keep_their_history(server: &Server) {
    let busybox = busybox();
    let client = server.client().await;
    let crons: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let post = PostParams::default();

    let tick = cron_job(
        "tick",
        &busybox,
        json!({"schedule": "@every 15s",
        "successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 1}),
    );
    crons.create(&post, &tick).await.unwrap();
    let minute = cron_job(
        "minute",
        &busybox,
        json!({"schedule": "* * * * *",
        "timeZone": "Europe/Berlin", "concurrencyPolicy": "Forbid"}),
    );
    crons.create(&post, &minute).await.unwrap();

    // Two runs of `tick`: the first Job is deleted once the second completes.
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    eventually_within(
        "tick's history trimmed to one Job",
        Duration::from_secs(90),
        async || {
            let (listed, complete) = cron_jobs_of(&jobs, "tick").await;
            let trimmed = events
                .list(&ListParams::default().fields("involvedObject.name=tick"))
                .await
                .ok()?
                .items
                .iter()
                .any(|e| e.reason.as_deref() == Some("SuccessfulDelete"));
            (trimmed && complete == 1 && listed.len() <= 2).then_some(())
        },
    )
    .await;
    let status = crons.get("tick").await.unwrap().status.unwrap();
    assert!(status.last_successful_time.is_some() && status.last_schedule_time.is_some());

    // Suspended, it starts nothing more.
    let suspend = json!({"spec": {"suspend": true}});
    crons
        .patch(
            "tick",
            &Default::default(),
            &kube::api::Patch::Merge(&suspend),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let suspended_at = crons
        .get("tick")
        .await
        .unwrap()
        .status
        .unwrap()
        .last_schedule_time;

    // `minute` runs at the top of a minute, named for it, its time in Berlin's zone.
    let job = eventually_within(
        "minute's first Job complete",
        Duration::from_secs(90),
        async || {
            // The oldest complete one (on a busy machine the wait may see two minutes).
            let (mut listed, _) = cron_jobs_of(&jobs, "minute").await;
            listed.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
            listed.into_iter().find(|j| {
                let conditions = j.status.as_ref().and_then(|s| s.conditions.as_ref());
                conditions.is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Complete" && c.status == "True")
                })
            })
        },
    )
    .await;
    let scheduled = &job.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/cronjob-scheduled-timestamp"];
    let at: jiff::Timestamp = scheduled.parse().unwrap();
    assert_eq!(at.as_second() % 60, 0, "{scheduled}");
    assert!(
        scheduled.ends_with("+01:00") || scheduled.ends_with("+02:00"),
        "{scheduled}"
    );
    assert_eq!(
        job.metadata.name.unwrap(),
        format!("minute-{}", at.as_second() / 60)
    );
    assert_eq!(
        crons
            .get("tick")
            .await
            .unwrap()
            .status
            .unwrap()
            .last_schedule_time,
        suspended_at,
        "a suspended CronJob ran"
    );

    // Deleted, its Jobs and their pods go with it.
    crons
        .delete("minute", &DeleteParams::default())
        .await
        .unwrap();
    eventually("minute's Jobs and pods gone", async || {
        let (listed, _) = cron_jobs_of(&jobs, "minute").await;
        let left = pods
            .list(&ListParams::default().labels("cron=minute"))
            .await
            .ok()?;
        (listed.is_empty() && left.items.is_empty()).then_some(())
    })
    .await;
}

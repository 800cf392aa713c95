//! The ClusterRole aggregation controller on a real `rk8s-server`, started with
//! `--disable-controllers` (it runs anyway): an aggregated role's rules follow the
//! roles its selectors select as they are created, changed, relabelled and deleted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::apiserver::Server;
use support::node::eventually;

const LABEL: &str = "example.com/aggregate-to-monitoring";

fn role(value: Value) -> ClusterRole {
    serde_json::from_value(value).unwrap()
}

fn source(name: &str, resource: &str) -> ClusterRole {
    role(json!({
        "metadata": {"name": name, "labels": {LABEL: "true"}},
        "rules": [{"apiGroups": [""], "resources": [resource], "verbs": ["get", "list"]}],
    }))
}

/// The resources of the aggregated role's rules, in order, once they are `want`.
async fn rules_become(roles: &Api<ClusterRole>, want: &[&str]) {
    let what = format!("the aggregated rules are {want:?}");
    eventually(&what, async || {
        let rules: Vec<PolicyRule> = roles
            .get("monitoring")
            .await
            .ok()?
            .rules
            .unwrap_or_default();
        let resources: Vec<String> = rules
            .into_iter()
            .flat_map(|r| r.resources.unwrap_or_default())
            .collect();
        (resources == want).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregated_rules_follow_the_selected_roles() {
    let server = Server::start(&["--disable-controllers"]);
    let roles: Api<ClusterRole> = Api::all(server.client().await);
    let post = PostParams::default();
    roles
        .create(&post, &source("monitor-pods", "pods"))
        .await
        .unwrap();
    let aggregated = role(json!({
        "metadata": {"name": "monitoring"},
        "aggregationRule": {"clusterRoleSelectors": [
            {"matchLabels": {LABEL: "true"}},
            {"matchExpressions": [{"key": "example.com/extra", "operator": "Exists"}]},
        ]},
    }));
    roles.create(&post, &aggregated).await.unwrap();
    rules_become(&roles, &["pods"]).await;

    // A new role selected: its rules join, in the order of the roles' names.
    roles
        .create(&post, &source("monitor-nodes", "nodes"))
        .await
        .unwrap();
    rules_become(&roles, &["nodes", "pods"]).await;

    // One selected by both selectors counts once; a rule already held is not repeated.
    let mut both = source("monitor-services", "services");
    let labels = both.metadata.labels.get_or_insert_default();
    labels.insert("example.com/extra".into(), "yes".into());
    both.rules
        .get_or_insert_default()
        .extend(source("x", "pods").rules.unwrap_or_default());
    roles.create(&post, &both).await.unwrap();
    rules_become(&roles, &["nodes", "pods", "services"]).await;

    // A selected role's rules change.
    let patch = json!({"rules": [{"apiGroups": [""], "resources": ["events"], "verbs": ["get"]}]});
    roles
        .patch(
            "monitor-nodes",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    rules_become(&roles, &["events", "pods", "services"]).await;

    // A rule written into the aggregated role by hand is taken out again.
    let patch = json!({"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}]});
    roles
        .patch("monitoring", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    rules_become(&roles, &["events", "pods", "services"]).await;

    // Relabelled out of the selection, and deleted.
    let patch = json!({"metadata": {"labels": {LABEL: null}}});
    roles
        .patch(
            "monitor-nodes",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    rules_become(&roles, &["pods", "services"]).await;
    roles
        .delete("monitor-services", &DeleteParams::default())
        .await
        .unwrap();
    rules_become(&roles, &["pods"]).await;
    roles
        .delete("monitor-pods", &DeleteParams::default())
        .await
        .unwrap();
    rules_become(&roles, &[]).await;
}

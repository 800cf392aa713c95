use super::*;
use rk8s_api::AnyObject;
use serde_json::json;

/// The text every family writes of `objects` (kind name and JSON), in the order a
/// scrape writes it.
fn text_of(objects: &[(&str, Vec<u8>)]) -> String {
    let mut out = Vec::new();
    for spec in &FAMILIES {
        let mut family = Family::new(spec);
        for (_, json) in objects.iter().filter(|(kind, _)| *kind == spec.kind) {
            family.add(json).unwrap();
        }
        out.extend(family.finish());
    }
    String::from_utf8(out.concat()).unwrap()
}

#[test]
fn objects_become_kube_state_metrics_series() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: default, uid: u1}\nspec: {containers: [{name: a, image: x}]}\nstatus: {phase: Running, conditions: [{type: Ready, status: 'True'}]}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: web}}\n  template: {metadata: {labels: {app: web}}, spec: {containers: [{name: a, image: x}]}}\nstatus: {replicas: 3, availableReplicas: 2}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus: {conditions: [{type: Ready, status: 'True'}]}\n---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web, namespace: default}\nspec: {scaleTargetRef: {kind: Deployment, name: web}, minReplicas: 2, maxReplicas: 5}\nstatus: {currentReplicas: 3, desiredReplicas: 4}\n---\napiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: web-1, namespace: default}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template: {metadata: {labels: {app: web}}, spec: {containers: [{name: a, image: x}]}}\nstatus: {replicas: 2, readyReplicas: 1}\n";
    let mut objects: Vec<(&str, Vec<u8>)> = rk8s_api::manifest::load("t.yaml", text)
        .unwrap()
        .into_iter()
        .map(|m| (m.object.kind().kind, m.object.to_json()))
        .collect();
    // Label values escaped as the text format wants (a name no API would take).
    let weird = br#"{"metadata": {"name": "we\"ird", "namespace": "default", "uid": "u2"}}"#;
    objects.push(("Pod", weird.to_vec()));
    let text = text_of(&objects);
    for line in [
        r#"kube_pod_status_phase{namespace="default",phase="Running",pod="web",uid="u1"} 1"#,
        r#"kube_pod_status_phase{namespace="default",phase="Pending",pod="web",uid="u1"} 0"#,
        r#"kube_pod_status_ready{condition="true",namespace="default",pod="web",uid="u1"} 1"#,
        r#"kube_pod_status_phase{namespace="default",phase="Pending",pod="we\"ird",uid="u2"} 1"#,
        r#"kube_pod_status_ready{condition="unknown",namespace="default",pod="we\"ird",uid="u2"} 1"#,
        r#"kube_deployment_status_replicas_available{deployment="web",namespace="default"} 2"#,
        r#"kube_deployment_status_replicas_unavailable{deployment="web",namespace="default"} 0"#,
        r#"kube_deployment_spec_replicas{deployment="web",namespace="default"} 3"#,
        r#"kube_replicaset_spec_replicas{namespace="default",replicaset="web-1"} 2"#,
        r#"kube_replicaset_status_ready_replicas{namespace="default",replicaset="web-1"} 1"#,
        r#"kube_node_status_condition{condition="Ready",node="n1",status="true"} 1"#,
        r#"kube_node_status_condition{condition="Ready",node="n1",status="false"} 0"#,
        r#"kube_node_spec_unschedulable{node="n1"} 0"#,
        r#"kube_horizontalpodautoscaler_status_desired_replicas{horizontalpodautoscaler="web",namespace="default"} 4"#,
        r#"kube_horizontalpodautoscaler_status_current_replicas{horizontalpodautoscaler="web",namespace="default"} 3"#,
        r#"kube_horizontalpodautoscaler_spec_min_replicas{horizontalpodautoscaler="web",namespace="default"} 2"#,
        r#"kube_horizontalpodautoscaler_spec_max_replicas{horizontalpodautoscaler="web",namespace="default"} 5"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    // One header per family; families without samples (Jobs) are left out.
    assert_eq!(
        text.matches("# TYPE kube_pod_status_phase gauge\n").count(),
        1
    );
    assert!(!text.contains("kube_job_status_active"));
    // What Prometheus reads: every line a header or `name{labels} value`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once("} ").unwrap();
        value.parse::<i64>().unwrap();
    }
}

#[test]
fn an_object_that_does_not_read_adds_nothing() {
    let mut family = Family::new(&FAMILIES[0]);
    assert!(family.add(b"{\"metadata\": 7}").is_err());
    assert!(family.finish().is_empty());
}

#[test]
fn a_family_is_cut_into_pieces_as_it_is_written() {
    let mut family = Family::new(&FAMILIES[0]);
    let mut pieces = Vec::new();
    for i in 0..2_000 {
        let pod = format!(
            r#"{{"metadata": {{"name": "p-{i}", "namespace": "default", "uid": "u{i}"}}, "status": {{"phase": "Running"}}}}"#
        );
        family.add(pod.as_bytes()).unwrap();
        // Taken as they fill, as a scrape sends them after each page.
        if i % 500 == 499 {
            pieces.extend(family.take_full());
        }
    }
    pieces.extend(family.finish());
    assert!(pieces.len() > 4, "{} pieces", pieces.len());
    assert!(pieces.iter().all(|p| p.len() < PIECE + 512));
    let text = String::from_utf8(pieces.concat()).unwrap();
    assert_eq!(
        text.matches("# TYPE kube_pod_status_phase gauge\n").count(),
        1
    );
    assert!(text.starts_with("# HELP kube_pod_status_phase The pods current phase.\n"));
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 2_000 * 5);
    assert!(text.contains(
        r#"kube_pod_status_phase{namespace="default",phase="Running",pod="p-1999",uid="u1999"} 1"#
    ));
}

fn pod(i: usize) -> AnyObject {
    let phase = if i.is_multiple_of(3) {
        "Pending"
    } else {
        "Running"
    };
    AnyObject::Pod(
        serde_json::from_value(json!({
            "metadata": {"name": format!("p-{i:03}"), "namespace": "default", "uid": format!("u{i}")},
            "spec": {"containers": [{"name": "a", "image": "x"}]},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .unwrap(),
    )
}

/// A scrape over a real store, four objects a page: every family whole and in
/// order, as if all were written at once, and read at one revision.
#[tokio::test]
async fn a_scrape_reads_each_family_a_page_at_a_time_at_one_revision() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(crate::testing::leading_store(dir.path()).await);
    let mut objects = Vec::new();
    for i in 0..23 {
        let pod = pod(i);
        registry.create(&pod).await.unwrap();
        objects.push(("Pod", pod.to_json()));
    }
    for name in ["n1", "n2"] {
        let node = AnyObject::Node(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"unschedulable": name == "n2"},
                "status": {"conditions": [{"type": "Ready", "status": "False"}]},
            }))
            .unwrap(),
        );
        registry.create(&node).await.unwrap();
        objects.push(("Node", node.to_json()));
    }
    let mut scrape = ObjectSeries::new(registry.clone(), 4);
    // The first piece is the pods' phases, all six pages of them.
    let first = scrape.next_piece().await.unwrap().unwrap();
    assert_eq!(String::from_utf8_lossy(&first).lines().count(), 2 + 23 * 5);
    // A pod created now is in no family of this scrape: each is read at the first
    // page's revision.
    registry.create(&pod(99)).await.unwrap();
    let mut pieces = vec![first];
    while let Some(piece) = scrape.next_piece().await.unwrap() {
        pieces.push(piece);
    }
    let text = String::from_utf8(pieces.concat()).unwrap();
    assert_eq!(text, text_of(&objects));
    assert!(text.contains(r#"kube_node_spec_unschedulable{node="n2"} 1"#));
    assert!(!text.contains("p-099"));
}

/// A page that cannot be read (its revision compacted away mid-scrape) ends the
/// scrape with a line no parser takes, not a text that looks whole.
#[tokio::test]
async fn a_scrape_that_cannot_be_finished_does_not_parse() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::testing::leading_store(dir.path()).await;
    let registry = Registry::new(store.clone());
    for i in 0..9 {
        registry.create(&pod(i)).await.unwrap();
    }
    let mut pieces = Box::pin(super::pieces(ObjectSeries::new(registry.clone(), 4)));
    use futures_util::StreamExt;
    let phases = pieces.next().await.unwrap();
    assert!(phases.starts_with(b"# HELP kube_pod_status_phase"));
    // Written and compacted past the scrape's revision: its next family cannot be read.
    let last = registry.create(&pod(99)).await.unwrap();
    let revision: i64 = last
        .metadata()
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    store.compact(revision).await.unwrap();
    let end = pieces.next().await.unwrap();
    let end = String::from_utf8(end.to_vec()).unwrap();
    assert!(
        end.starts_with("# rk8s: the object series end here: "),
        "{end}"
    );
    assert!(end.ends_with("\nrk8s_object_series_cut_short\n"), "{end}");
    assert!(pieces.next().await.is_none());
}

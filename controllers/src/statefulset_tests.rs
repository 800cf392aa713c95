use super::*;
use serde_json::json;

fn set(extra: serde_json::Value) -> StatefulSet {
    let mut v = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default", "uid": "sts-uid", "generation": 1},
        "spec": {
            "replicas": 3,
            "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "web:1"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}}}],
        },
    });
    crate::common::merge_json(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

/// Pod `ordinal` of `set` at `revision`, in `phase`, ready or not.
fn pod(set: &StatefulSet, ordinal: i32, revision: &str, phase: &str, ready: bool) -> Arc<Pod> {
    let owner = crate::common::controller_ref("apps/v1", "StatefulSet", &set.metadata);
    let template = set.spec.clone().unwrap().template;
    let mut p = pod_for(set, template, ordinal, revision, owner);
    p.metadata.uid = Some(format!("pod-{ordinal}"));
    p.status = Some(
        serde_json::from_value(json!({
            "phase": phase,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        }))
        .unwrap(),
    );
    Arc::new(p)
}

fn now() -> jiff::Timestamp {
    "2026-12-05T00:00:00Z".parse().unwrap()
}

fn created(d: &Decision) -> Vec<i32> {
    d.create.iter().map(|c| c.ordinal).collect()
}

#[test]
fn ordinals_are_read_off_names() {
    assert_eq!(ordinal_of("web", "web-0"), Some(0));
    assert_eq!(ordinal_of("web", "web-12"), Some(12));
    for other in [
        "web-01", "web-", "web", "webx-1", "web-a", "web-1-2", "api-1",
    ] {
        assert_eq!(ordinal_of("web", other), None, "{other}");
    }
    assert_eq!(ordinal_of("my-web", "my-web-3"), Some(3));
}

#[test]
fn ordered_ready_makes_one_pod_at_a_time_each_healthy_before_the_next() {
    let s = set(json!({}));
    let rev = update_revision(&s);
    let d = reconcile(&s, &[], true, now());
    assert_eq!(created(&d), [0]);
    assert_eq!(d.create[0].revision, rev);
    // web-0 made but not yet running: nothing more.
    let pending = [pod(&s, 0, &rev, "Pending", false)];
    assert!(reconcile(&s, &pending, true, now()).create.is_empty());
    let running = [pod(&s, 0, &rev, "Running", false)];
    assert!(reconcile(&s, &running, true, now()).create.is_empty());
    let ready = [pod(&s, 0, &rev, "Running", true)];
    assert_eq!(created(&reconcile(&s, &ready, true, now())), [1]);
    // Nothing while earlier creations are not seen yet.
    assert!(reconcile(&s, &ready, false, now()).create.is_empty());
}

#[test]
fn parallel_makes_and_removes_all_at_once() {
    let s = set(json!({"spec": {"podManagementPolicy": "Parallel"}}));
    assert_eq!(created(&reconcile(&s, &[], true, now())), [0, 1, 2]);
    let rev = update_revision(&s);
    let s1 = set(json!({"spec": {"podManagementPolicy": "Parallel", "replicas": 1}}));
    let pods: Vec<_> = (0..3).map(|o| pod(&s1, o, &rev, "Running", true)).collect();
    let d = reconcile(&s1, &pods, true, now());
    assert_eq!(d.delete, ["web-2", "web-1"]);
}

#[test]
fn scaling_down_removes_the_highest_ordinal_first_one_at_a_time() {
    let s = set(json!({"spec": {"replicas": 1}}));
    let rev = update_revision(&s);
    let pods: Vec<_> = (0..3).map(|o| pod(&s, o, &rev, "Running", true)).collect();
    let d = reconcile(&s, &pods, true, now());
    assert_eq!(d.delete, ["web-2"]);
    assert!(d.scaled_down.is_empty(), "claims are retained by default");
    // While web-2 terminates, web-1 waits.
    let mut going = (*pods[2]).clone();
    going.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
    let pods = [pods[0].clone(), pods[1].clone(), Arc::new(going)];
    assert!(reconcile(&s, &pods, true, now()).delete.is_empty());
    // whenScaled: Delete gives the claims to the pod that goes.
    let s = set(json!({"spec": {"replicas": 2,
        "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete"}}}));
    let pods: Vec<_> = (0..3)
        .map(|o| pod(&s, o, &update_revision(&s), "Running", true))
        .collect();
    let d = reconcile(&s, &pods, true, now());
    assert_eq!(
        (d.delete.clone(), d.scaled_down.clone()),
        (vec!["web-2".to_string()], vec!["web-2".to_string()])
    );
}

#[test]
fn failed_pods_are_replaced() {
    let s = set(json!({}));
    let rev = update_revision(&s);
    let pods = [
        pod(&s, 0, &rev, "Running", true),
        pod(&s, 1, &rev, "Failed", false),
    ];
    let d = reconcile(&s, &pods, true, now());
    assert_eq!(d.delete, ["web-1"]);
    assert!(d.create.is_empty());
}

#[test]
fn a_rolling_update_goes_down_to_the_partition_one_healthy_pod_at_a_time() {
    let old = set(json!({}));
    let old_rev = update_revision(&old);
    let new = set(json!({
        "metadata": {"generation": 2},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "web:2"}]}},
                 "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}},
        "status": {"currentRevision": old_rev.clone(), "replicas": 3},
    }));
    let new_rev = update_revision(&new);
    assert_ne!(old_rev, new_rev);
    let pods: Vec<_> = (0..3)
        .map(|o| pod(&old, o, &old_rev, "Running", true))
        .collect();
    let d = reconcile(&new, &pods, true, now());
    assert_eq!(d.delete, ["web-2"]);
    // web-2 gone: made again of the update revision.
    let d = reconcile(&new, &pods[..2], true, now());
    assert_eq!(
        d.create,
        [NewPod {
            ordinal: 2,
            revision: new_rev.clone()
        }]
    );
    // web-2 new but not ready: web-1 waits.
    let mut pods2 = pods[..2].to_vec();
    pods2.push(pod(&new, 2, &new_rev, "Running", false));
    assert!(reconcile(&new, &pods2, true, now()).delete.is_empty());
    pods2[2] = pod(&new, 2, &new_rev, "Running", true);
    let d = reconcile(&new, &pods2, true, now());
    assert_eq!(d.delete, ["web-1"]);
    // Below the partition, web-0 stays, and is made again of the current revision.
    pods2[1] = pod(&new, 1, &new_rev, "Running", true);
    assert!(reconcile(&new, &pods2, true, now()).delete.is_empty());
    let d = reconcile(&new, &pods2[1..], true, now());
    assert_eq!(
        d.create,
        [NewPod {
            ordinal: 0,
            revision: old_rev.clone()
        }]
    );
    let status = reconcile(&new, &pods2, true, now()).status;
    assert_eq!(
        (
            status.current_revision.as_deref(),
            status.update_revision.as_deref()
        ),
        (Some(old_rev.as_str()), Some(new_rev.as_str()))
    );
    assert_eq!(
        (status.current_replicas, status.updated_replicas),
        (Some(1), Some(2))
    );
}

#[test]
fn a_finished_update_makes_the_update_revision_current() {
    let new = set(json!({"status": {"currentRevision": "web-old", "replicas": 3}}));
    let rev = update_revision(&new);
    let pods: Vec<_> = (0..3)
        .map(|o| pod(&new, o, &rev, "Running", true))
        .collect();
    let status = reconcile(&new, &pods, true, now()).status;
    assert_eq!(status.current_revision.as_deref(), Some(rev.as_str()));
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.current_replicas,
            status.updated_replicas
        ),
        (3, Some(3), Some(3), Some(3))
    );
    assert_eq!(status.observed_generation, Some(1));
}

#[test]
fn on_delete_replaces_nothing_but_makes_missing_pods_new() {
    let old = set(json!({}));
    let old_rev = update_revision(&old);
    let new = set(json!({
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "web:2"}]}},
                 "updateStrategy": {"type": "OnDelete"}},
        "status": {"currentRevision": old_rev.clone()},
    }));
    let pods: Vec<_> = (0..3)
        .map(|o| pod(&old, o, &old_rev, "Running", true))
        .collect();
    let d = reconcile(&new, &pods, true, now());
    assert!(d.delete.is_empty() && d.create.is_empty());
    let d = reconcile(&new, &pods[..2], true, now());
    assert_eq!(
        d.create,
        [NewPod {
            ordinal: 2,
            revision: update_revision(&new)
        }]
    );
}

#[test]
fn pods_carry_their_identity_and_claims() {
    let s = set(json!({"spec": {"ordinals": {"start": 5}, "replicas": 1}}));
    let d = reconcile(&s, &[], true, now());
    assert_eq!(created(&d), [5]);
    let p = pod(&s, 5, "web-abc", "Running", true);
    assert_eq!(p.metadata.name.as_deref(), Some("web-5"));
    let labels = p.metadata.labels.clone().unwrap();
    assert_eq!(labels[POD_NAME_LABEL], "web-5");
    assert_eq!(labels[POD_INDEX_LABEL], "5");
    assert_eq!(labels[HASH_LABEL], "web-abc");
    let spec = p.spec.clone().unwrap();
    assert_eq!(
        (spec.hostname.as_deref(), spec.subdomain.as_deref()),
        (Some("web-5"), Some("web"))
    );
    let volume = &spec.volumes.unwrap()[0];
    assert_eq!(
        volume
            .persistent_volume_claim
            .as_ref()
            .map(|c| c.claim_name.as_str()),
        Some("data-web-5")
    );
    let claims = claims_for(&s, "web-5");
    assert_eq!(claims[0].metadata.name.as_deref(), Some("data-web-5"));
    assert_eq!(claims[0].metadata.labels.as_ref().unwrap()["app"], "web");
    assert!(claims[0].metadata.owner_references.is_none());
    let s =
        set(json!({"spec": {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"}}}));
    let owners = claims_for(&s, "web-0")[0]
        .metadata
        .owner_references
        .clone()
        .unwrap();
    assert_eq!(
        (owners[0].kind.as_str(), owners[0].controller),
        ("StatefulSet", None)
    );
}

#[test]
fn orphans_are_adopted_and_strays_released() {
    let s = set(json!({}));
    let rev = update_revision(&s);
    let mut orphan = (*pod(&s, 0, &rev, "Running", true)).clone();
    orphan.metadata.owner_references = None;
    let mut stray = (*pod(&s, 1, &rev, "Running", true)).clone();
    stray.metadata.labels = Some([("app".to_string(), "other".to_string())].into());
    let d = reconcile(&s, &[Arc::new(orphan), Arc::new(stray)], true, now());
    assert_eq!(
        (d.adopt, d.release),
        (vec!["web-0".to_string()], vec!["web-1".to_string()])
    );
}

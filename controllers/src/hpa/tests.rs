//! The worked examples of the Kubernetes HPA documentation ("Algorithm details",
//! "Configurable scaling behavior") and a table for each rule.

use super::*;
use k8s_openapi::api::autoscaling::v2::HPAScalingPolicy;
use serde_json::json;

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

/// A Running pod requesting `cpu_milli`, Ready since `ready_at` (started 10 minutes
/// before `at(0)` unless said).
fn pod(name: &str, phase: &str, ready: Option<(&str, i64)>, started: i64) -> Pod {
    let mut status = json!({"phase": phase, "startTime": at(started).to_string()});
    if let Some((s, t)) = ready {
        status["conditions"] =
            json!([{"type": "Ready", "status": s, "lastTransitionTime": at(t).to_string()}]);
    }
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
        "status": status,
    }))
    .unwrap()
}

fn running(name: &str) -> Pod {
    pod(name, "Running", Some(("True", -590)), -600)
}

fn metrics(values: &[(&str, i64)]) -> PodMetrics {
    values
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                PodMetric {
                    value: *v,
                    timestamp: at(0),
                    window: SignedDuration::from_secs(15),
                },
            )
        })
        .collect()
}

const T: Tunables = Tunables {
    tolerance: 0.1,
    cpu_initialization_period: SignedDuration::from_mins(5),
    initial_readiness_delay: SignedDuration::from_secs(30),
};

#[test]
fn the_ratio_multiplies_the_replicas_as_the_documentation_shows() {
    // "if the current metric value is 200m, and the desired value is 100m, the number
    // of replicas will be doubled ... If the current value is instead 50m, you'll
    // halve the number of replicas".
    let pods = [running("a"), running("b"), running("c")];
    let up = average_value_replicas(
        3,
        100,
        true,
        &pods,
        metrics(&[("a", 200), ("b", 200), ("c", 200)]),
        at(0),
        &T,
    );
    assert_eq!(up.unwrap().replicas, 6);
    let down = average_value_replicas(
        3,
        100,
        true,
        &pods,
        metrics(&[("a", 50), ("b", 50), ("c", 50)]),
        at(0),
        &T,
    );
    assert_eq!(down.unwrap().replicas, 2);
    // Utilization of requests: 3 pods at 90% of a 50% target → ceil(1.8 × 3) = 6.
    let u = resource_utilization_replicas(
        3,
        50,
        "cpu",
        None,
        &pods,
        metrics(&[("a", 90), ("b", 90), ("c", 90)]),
        at(0),
        &T,
    )
    .unwrap();
    assert_eq!((u.replicas, u.utilization, u.average), (6, Some(90), 90));
}

#[test]
fn ratios_within_the_tolerance_change_nothing() {
    let pods = [running("a"), running("b")];
    // The edges fall as Kubernetes' float64 arithmetic puts them: |1 - 55/50| is a
    // hair above 0.1 (scales), |1 - 45/50| a hair below (does not).
    for (usage, want) in [
        (54, 2),
        (46, 2),
        (55, 3),
        (45, 2),
        (56, 3),
        (44, 2),
        (40, 2),
        (24, 1),
    ] {
        let m = metrics(&[("a", usage), ("b", usage)]);
        let p = resource_utilization_replicas(2, 50, "cpu", None, &pods, m, at(0), &T).unwrap();
        assert_eq!(p.replicas, want, "usage {usage}%");
    }
}

#[test]
fn missing_metrics_damp_the_move_in_either_direction() {
    let pods = [running("a"), running("b"), running("c")];
    // Scale up: c counts as 0% → (90+90+0)/300 = 60% → ratio 1.2 → 4 (not 6).
    let up = resource_utilization_replicas(
        3,
        50,
        "cpu",
        None,
        &pods,
        metrics(&[("a", 90), ("b", 90)]),
        at(0),
        &T,
    );
    assert_eq!(up.unwrap().replicas, 4);
    // Scale down: c counts as its whole request → (10+10+100)/300 = 40% → ratio 0.8 →
    // ceil(2.4) = 3: no change.
    let down = resource_utilization_replicas(
        3,
        50,
        "cpu",
        None,
        &pods,
        metrics(&[("a", 10), ("b", 10)]),
        at(0),
        &T,
    );
    assert_eq!(down.unwrap().replicas, 3);
    // Without the missing pod the same values would halve it.
    let two = resource_utilization_replicas(
        3,
        50,
        "cpu",
        None,
        &pods[..2],
        metrics(&[("a", 10), ("b", 10)]),
        at(0),
        &T,
    );
    assert_eq!(two.unwrap().replicas, 1);
    // A flip of direction once the missing pods are counted: no change.
    let flip = resource_utilization_replicas(
        3,
        50,
        "cpu",
        None,
        &pods,
        metrics(&[("a", 60), ("b", 60)]),
        at(0),
        &T,
    );
    assert_eq!(flip.unwrap().replicas, 3);
}

#[test]
fn starting_pods_count_as_idle_when_scaling_up_and_are_ignored_otherwise() {
    // b started 60 s ago and is not Ready yet: unready for CPU.
    let pods = [
        running("a"),
        pod("b", "Running", Some(("False", -50)), -60),
        pod("c", "Pending", None, -5),
    ];
    let m = metrics(&[("a", 150), ("b", 300)]);
    // a alone: 150% of 50% → ratio 3; with b and c as 0%: 150/300 = 50% → ratio 1.0:
    // within tolerance, no change.
    let p = resource_utilization_replicas(3, 50, "cpu", None, &pods, m, at(0), &T).unwrap();
    assert_eq!(p.replicas, 3);
    // Ready for less than one window within the start-up period: still unready.
    let fresh = [running("a"), pod("b", "Running", Some(("True", -5)), -60)];
    let g = group_pods(&fresh, &metrics(&[("a", 1), ("b", 1)]), true, at(0), &T);
    assert_eq!(g.unready, BTreeSet::from(["b".to_string()]));
    // The same pod is ready for a memory metric.
    let g = group_pods(&fresh, &metrics(&[("a", 1), ("b", 1)]), false, at(0), &T);
    assert_eq!((g.ready, g.unready.len()), (2, 0));
    // Deleted and failed pods are ignored.
    let mut gone = running("d");
    gone.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(0)));
    let g = group_pods(
        &[gone, pod("e", "Failed", None, -600)],
        &metrics(&[]),
        true,
        at(0),
        &T,
    );
    assert_eq!(g.ignored.len(), 2);
}

#[test]
fn values_from_the_network_never_overflow() {
    let pods = [running("a"), running("b")];
    let huge = metrics(&[("a", i64::MAX), ("b", i64::MAX)]);
    let p =
        resource_utilization_replicas(2, 50, "cpu", None, &pods, huge.clone(), at(0), &T).unwrap();
    assert_eq!(p.utilization, Some(i32::MAX));
    assert_eq!(
        average_value_replicas(2, 100, false, &pods, huge, at(0), &T)
            .unwrap()
            .replicas,
        i32::MAX
    );
    assert!(value_replicas(1, i64::MAX, 1, 1, &T).is_ok());
}

#[test]
fn a_container_without_a_request_is_named() {
    let mut p = running("a");
    p.spec.as_mut().unwrap().containers[0].resources = None;
    let e =
        resource_utilization_replicas(1, 50, "cpu", None, &[p], metrics(&[("a", 10)]), at(0), &T)
            .unwrap_err();
    assert_eq!(e, "missing request for cpu in container main of Pod a");
    let e = resource_utilization_replicas(1, 50, "cpu", None, &[], metrics(&[]), at(0), &T)
        .unwrap_err();
    assert!(e.contains("no pods"));
    let e =
        resource_utilization_replicas(1, 50, "cpu", None, &[running("a")], metrics(&[]), at(0), &T)
            .unwrap_err();
    assert!(e.contains("did not receive metrics"));
}

#[test]
fn object_and_external_values_scale_the_ready_pods_and_from_zero() {
    // Value: 30 against 10 with 2 ready pods → ceil(3 × 2) = 6.
    assert_eq!(
        value_replicas(2, 30_000, 10_000, 2, &T).unwrap().replicas,
        6
    );
    assert_eq!(
        value_replicas(2, 10_500, 10_000, 2, &T).unwrap().replicas,
        2
    );
    // From zero replicas the ratio alone: 25 / 10 → 3; nothing to do → 0.
    assert_eq!(
        value_replicas(0, 25_000, 10_000, 0, &T).unwrap().replicas,
        3
    );
    assert_eq!(value_replicas(0, 0, 10_000, 0, &T).unwrap().replicas, 0);
    assert_eq!(value_replicas(3, 0, 10_000, 3, &T).unwrap().replicas, 0);
    // AverageValue: 10 in all, 2 per replica → 5; within tolerance → unchanged.
    assert_eq!(
        per_replica_replicas(2, 10_000, 2_000, &T).unwrap().replicas,
        5
    );
    assert_eq!(
        per_replica_replicas(5, 10_400, 2_000, &T).unwrap().replicas,
        5
    );
    assert_eq!(
        per_replica_replicas(0, 3_000, 2_000, &T).unwrap().replicas,
        2
    );
    assert!(value_replicas(1, 1, 0, 1, &T).is_err());
}

#[test]
fn the_largest_proposal_wins_and_a_failing_metric_blocks_scaling_down() {
    let p = |r| {
        Ok(Proposal {
            replicas: r,
            average: 0,
            utilization: None,
        })
    };
    let both = [("cpu".to_string(), p(3)), ("rps".to_string(), p(5))];
    assert_eq!(combine(4, &both).unwrap(), (5, "rps".to_string()));
    let failing = [
        ("cpu".to_string(), p(6)),
        ("rps".to_string(), Err("no data".to_string())),
    ];
    assert_eq!(combine(4, &failing).unwrap().0, 6);
    let down = [
        ("cpu".to_string(), p(2)),
        ("rps".to_string(), Err("no data".to_string())),
    ];
    assert_eq!(
        combine(4, &down).unwrap_err(),
        "invalid metrics (1 invalid out of 2), first error is: no data"
    );
    // A zero proposal (scale to zero) gives way to any other.
    let zero = [("queue".to_string(), p(0)), ("cpu".to_string(), p(2))];
    assert_eq!(combine(1, &zero).unwrap().0, 2);
}

fn behavior(
    up: Option<HPAScalingRules>,
    down: Option<HPAScalingRules>,
) -> HorizontalPodAutoscalerBehavior {
    HorizontalPodAutoscalerBehavior {
        scale_up: up,
        scale_down: down,
    }
}

fn rules_of(
    window: Option<i32>,
    select: Option<&str>,
    policies: &[(&str, i32, i32)],
) -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: window,
        select_policy: select.map(str::to_string),
        policies: Some(
            policies
                .iter()
                .map(|(t, v, p)| HPAScalingPolicy {
                    type_: t.to_string(),
                    value: *v,
                    period_seconds: *p,
                })
                .collect(),
        ),
        tolerance: None,
    }
}

#[test]
fn default_scale_up_is_four_pods_or_double_per_fifteen_seconds() {
    let mut h = History::default();
    let n = h.normalize(None, (1, 100), 1, 10, at(0));
    assert_eq!(n.replicas, 5);
    assert_eq!(
        (n.scaling_limited.status, n.scaling_limited.reason),
        ("True", "ScaleUpLimit")
    );
    h.record_scale(None, 1, 5, at(0));
    // Within the same 15 s the period started at 1: nothing more.
    assert_eq!(h.normalize(None, (1, 100), 5, 10, at(10)).replicas, 5);
    // After it: 100% of 5 → 10.
    assert_eq!(h.normalize(None, (1, 100), 5, 10, at(16)).replicas, 10);
    // maxReplicas binds first: TooManyReplicas.
    let n = History::default().normalize(None, (1, 3), 2, 10, at(0));
    assert_eq!(
        (n.replicas, n.scaling_limited.reason),
        (3, "TooManyReplicas")
    );
    let n = History::default().normalize(None, (1, 3), 2, 3, at(0));
    assert_eq!((n.replicas, n.scaling_limited.status), (3, "False"));
}

#[test]
fn the_documentations_scale_down_example_removes_ten_percent_a_minute() {
    // "scaleDown: policies: [{type: Pods, value: 4, periodSeconds: 60}, {type:
    // Percent, value: 10, periodSeconds: 60}]": from 80 replicas toward 10, 8 go in
    // the first step; at 72, 10% is 7.2, rounded up to 8.
    let b = behavior(
        None,
        Some(rules_of(
            Some(0),
            None,
            &[("Pods", 4, 60), ("Percent", 10, 60)],
        )),
    );
    let mut h = History::default();
    let n = h.normalize(Some(&b), (1, 100), 80, 10, at(0));
    assert_eq!(
        (n.replicas, n.scaling_limited.reason),
        (72, "ScaleDownLimit")
    );
    h.record_scale(Some(&b), 80, 72, at(0));
    assert_eq!(h.normalize(Some(&b), (1, 100), 72, 10, at(30)).replicas, 72);
    assert_eq!(h.normalize(Some(&b), (1, 100), 72, 10, at(61)).replicas, 64);
    // With selectPolicy Min the smaller change (4 pods) applies.
    let min = behavior(
        None,
        Some(rules_of(
            Some(0),
            Some("Min"),
            &[("Pods", 4, 60), ("Percent", 10, 60)],
        )),
    );
    assert_eq!(
        History::default()
            .normalize(Some(&min), (1, 100), 80, 10, at(0))
            .replicas,
        76
    );
    // Disabled: no scaling down at all.
    let off = behavior(None, Some(rules_of(None, Some("Disabled"), &[])));
    let n = History::default().normalize(Some(&off), (1, 100), 8, 2, at(0));
    assert_eq!(
        (n.replicas, n.scaling_limited.reason),
        (8, "ScaleDownLimit")
    );
    // minReplicas binds first: TooFewReplicas.
    let n = History::default().normalize(None, (4, 10), 6, 1, at(0));
    assert_eq!(
        (n.replicas, n.scaling_limited.reason),
        (4, "TooFewReplicas")
    );
}

#[test]
fn stabilization_takes_the_highest_recent_recommendation_before_scaling_down() {
    let mut h = History::default();
    assert_eq!(h.normalize(None, (1, 10), 5, 5, at(0)).replicas, 5);
    // The default 300 s window: a lower recommendation waits.
    let n = h.normalize(None, (1, 10), 5, 2, at(60));
    assert_eq!(
        (n.replicas, n.able_to_scale.reason),
        (5, "ScaleDownStabilized")
    );
    assert_eq!(h.normalize(None, (1, 10), 5, 2, at(240)).replicas, 5);
    // Once the 5 is older than the window, the highest left (2) applies.
    let n = h.normalize(None, (1, 10), 5, 2, at(301));
    assert_eq!(
        (n.replicas, n.able_to_scale.reason),
        (2, "ReadyForNewScale")
    );
    // A scale-up window holds increases back to the lowest recent recommendation.
    let slow = behavior(
        Some(rules_of(Some(60), None, &[("Percent", 100, 15)])),
        None,
    );
    let mut h = History::default();
    h.normalize(Some(&slow), (1, 10), 2, 2, at(0));
    let n = h.normalize(Some(&slow), (1, 10), 2, 6, at(30));
    assert_eq!(
        (n.replicas, n.able_to_scale.reason),
        (2, "ScaleUpStabilized")
    );
    assert_eq!(h.normalize(Some(&slow), (1, 10), 2, 6, at(61)).replicas, 4);
}

/// Load goes away right after a rate-limited scale-up: the high recommendation kept
/// for the scale-down window is a ceiling, never a reason to scale up further
/// (kube-controller-manager before 1.23 did; the demo showed rk8s doing it too).
#[test]
fn a_recommendation_kept_for_scaling_down_never_scales_up() {
    let mut h = History::default();
    // 2 → 7 wanted, the default scale-up rules allow 6 at once (2 + 4 pods).
    let n = h.normalize(None, (2, 8), 2, 7, at(0));
    assert_eq!(n.replicas, 6);
    h.record_scale(None, 2, 6, at(0));
    // The load is gone: 2 wanted. The 7 of the window holds the count at 6, no more.
    let n = h.normalize(None, (2, 8), 6, 2, at(15));
    assert_eq!(
        (n.replicas, n.able_to_scale.reason),
        (6, "ScaleDownStabilized")
    );
    // After the window, down to 2 (one step: the default scale-down rule is 100%).
    assert_eq!(h.normalize(None, (2, 8), 6, 2, at(301)).replicas, 2);
}

#[test]
fn an_activity_floor_holds_a_woken_target_then_the_scale_down_window_does() {
    let until = at(60);
    // Raised while it lasts, for a target that is up; never from zero.
    assert_eq!(with_activity_floor(1, 0, Some((1, until)), at(10)), 1);
    assert_eq!(with_activity_floor(3, 4, Some((1, until)), at(10)), 4);
    assert_eq!(with_activity_floor(0, 0, Some((1, until)), at(10)), 0);
    assert_eq!(with_activity_floor(1, 0, Some((1, until)), at(60)), 0);
    assert_eq!(with_activity_floor(1, 0, None, at(10)), 0);
    // Recorded as a recommendation: a 10 s scale-down window holds it after.
    let behavior: HorizontalPodAutoscalerBehavior = serde_json::from_value(json!({
        "scaleDown": {"stabilizationWindowSeconds": 10}
    }))
    .unwrap();
    let mut h = History::default();
    let floor = Some((1, until));
    for t in [0, 15, 30, 45, 58] {
        let desired = with_activity_floor(1, 0, floor, at(t));
        let n = h.normalize(Some(&behavior), (0, 5), 1, desired, at(t));
        assert_eq!(n.replicas, 1, "at {t} s");
    }
    let n = h.normalize(Some(&behavior), (0, 5), 1, 0, at(65));
    assert_eq!(n.replicas, 1, "within the window after the floor");
    let n = h.normalize(Some(&behavior), (0, 5), 1, 0, at(69));
    assert_eq!(n.replicas, 0, "after the window");
}

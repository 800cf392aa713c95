//! The HorizontalPodAutoscaler's arithmetic, as Kubernetes documents and implements
//! it (`pkg/controller/podautoscaler`): metric values become a replica proposal per
//! metric (ratio to target, tolerance, pods without metrics or not yet ready counted
//! conservatively), the largest proposal wins, and `behavior` turns it into the next
//! size (stabilization windows, then the Pods/Percent policies per period). Pure: the
//! caller passes the pods, their metrics, the time, and the history it keeps.
//!
//! Values are in milli-units throughout (Kubernetes' `MilliValue`): millicores,
//! millibytes, thousandths of a custom metric.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};
use k8s_openapi::api::core::v1::Pod;

/// Tunables, as kube-controller-manager's flags.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tunables {
    /// `--horizontal-pod-autoscaler-tolerance`: ratios within 1 ± this do nothing.
    pub tolerance: f64,
    /// `--horizontal-pod-autoscaler-cpu-initialization-period`.
    pub cpu_initialization_period: SignedDuration,
    /// `--horizontal-pod-autoscaler-initial-readiness-delay`.
    pub initial_readiness_delay: SignedDuration,
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            tolerance: 0.1,
            cpu_initialization_period: SignedDuration::from_mins(5),
            initial_readiness_delay: SignedDuration::from_secs(30),
        }
    }
}

/// One pod's value of a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodMetric {
    /// The value, in milli-units.
    pub value: i64,
    /// When it was measured (the end of its window).
    pub timestamp: Timestamp,
    /// The window it was averaged over.
    pub window: SignedDuration,
}

/// Metric values by pod name.
pub type PodMetrics = BTreeMap<String, PodMetric>;

/// A proposal from one metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Replicas the metric asks for.
    pub replicas: i32,
    /// The current average per pod (milli-units), for the status.
    pub average: i64,
    /// The current utilization of requests, in percent (resource utilization only).
    pub utilization: Option<i32>,
}

/// How the pods of the target stand for a metric.
#[derive(Debug, Default, PartialEq, Eq)]
struct Groups {
    ready: usize,
    unready: BTreeSet<String>,
    missing: BTreeSet<String>,
    ignored: BTreeSet<String>,
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// Kubernetes' `groupPods`: deleted and failed pods are ignored, pending ones are
/// unready, pods without a value are missing; for CPU, a pod is also unready while it
/// starts (within the initialization period: not Ready, or Ready for less than one
/// window of the metric; after it: never Ready since shortly after starting).
fn group_pods(
    pods: &[Pod],
    metrics: &PodMetrics,
    cpu: bool,
    now: Timestamp,
    t: &Tunables,
) -> Groups {
    let mut g = Groups::default();
    for pod in pods {
        let n = name(pod);
        if pod.metadata.deletion_timestamp.is_some() || phase(pod) == "Failed" {
            g.ignored.insert(n);
            continue;
        }
        if phase(pod) == "Pending" {
            g.unready.insert(n);
            continue;
        }
        let Some(metric) = metrics.get(&n) else {
            g.missing.insert(n);
            continue;
        };
        if cpu {
            let status = pod.status.as_ref();
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
            let start = status.and_then(|s| s.start_time.as_ref()).map(|t| t.0);
            let unready = match (ready, start) {
                (Some(ready), Some(start)) => {
                    let transition = ready
                        .last_transition_time
                        .as_ref()
                        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
                    if start + t.cpu_initialization_period > now {
                        ready.status == "False" || metric.timestamp < transition + metric.window
                    } else {
                        ready.status == "False" && start + t.initial_readiness_delay > transition
                    }
                }
                _ => true,
            };
            if unready {
                g.unready.insert(n);
                continue;
            }
        }
        g.ready += 1;
    }
    g
}

/// Each pod's request of `resource` (of `container` only, if given), in milli-units;
/// an error names the first container without one.
pub fn pod_requests(
    pods: &[Pod],
    container: Option<&str>,
    resource: &str,
) -> Result<BTreeMap<String, i64>, String> {
    let mut out = BTreeMap::new();
    for pod in pods {
        let mut sum = 0;
        let containers = pod.spec.iter().flat_map(|s| &s.containers);
        for c in containers.filter(|c| container.is_none_or(|n| n == c.name)) {
            let request = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(resource))
                .and_then(|q| rk8s_api::Quantity::try_from(q).ok())
                .ok_or_else(|| {
                    format!(
                        "missing request for {resource} in container {} of Pod {}",
                        c.name,
                        name(pod)
                    )
                })?;
            sum += request.milli_value();
        }
        out.insert(name(pod), sum);
    }
    Ok(out)
}

/// `(usage ratio, utilization %, raw average)` of the pods that have both a value and
/// a request.
fn utilization_ratio(
    metrics: &PodMetrics,
    requests: &BTreeMap<String, i64>,
    target: i32,
) -> Result<(f64, i32, i64), String> {
    if target <= 0 {
        return Err("the target utilization must be positive".into());
    }
    // Saturating: the values come from the network.
    let (mut used, mut requested, mut n) = (0i64, 0i64, 0i64);
    for (pod, m) in metrics {
        if let Some(r) = requests.get(pod) {
            used = used.saturating_add(m.value);
            requested = requested.saturating_add(*r);
            n += 1;
        }
    }
    if requested <= 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let utilization = i32::try_from(used.saturating_mul(100) / requested).unwrap_or(i32::MAX);
    Ok((
        f64::from(utilization) / f64::from(target),
        utilization,
        used / n,
    ))
}

fn ceil(x: f64) -> i32 {
    x.ceil().clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
}

/// A Resource (or ContainerResource) metric with a Utilization target (percent of
/// requests): Kubernetes' `GetResourceReplicas`.
#[allow(clippy::too_many_arguments)]
pub fn resource_utilization_replicas(
    current: i32,
    target: i32,
    resource: &str,
    container: Option<&str>,
    pods: &[Pod],
    mut metrics: PodMetrics,
    now: Timestamp,
    t: &Tunables,
) -> Result<Proposal, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let g = group_pods(pods, &metrics, resource == "cpu", now, t);
    metrics.retain(|p, _| !g.ignored.contains(p) && !g.unready.contains(p));
    let requests = pod_requests(pods, container, resource)?;
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let (ratio, utilization, average) = utilization_ratio(&metrics, &requests, target)?;
    let proposal = |replicas| Proposal {
        replicas,
        average,
        utilization: Some(utilization),
    };
    // Scale down: a pod without a value is taken to use its whole request (or the
    // target, if higher); scale up: nothing.
    let missing = |pod: &str| {
        let request = requests.get(pod).copied().unwrap_or(0);
        (ratio < 1.0)
            .then(|| request.max(request.saturating_mul(i64::from(target)) / 100))
            .or((ratio > 1.0).then_some(0))
    };
    let new_ratio = |m: &PodMetrics| utilization_ratio(m, &requests, target).map(|r| r.0);
    damped(current, ratio, &g, metrics, missing, new_ratio, now, t).map(proposal)
}

/// What utilization and average-value targets share (the end of Kubernetes'
/// `GetResourceReplicas` and `calcPlainMetricReplicas`): with no pod missing a value
/// and none unready while scaling up, the ratio times the ready pods; else missing
/// pods count as `missing` says and unready ones as 0 when scaling up, and a move
/// that those turn around, or that lands within the tolerance, is not made.
#[allow(clippy::too_many_arguments)]
fn damped(
    current: i32,
    ratio: f64,
    g: &Groups,
    mut metrics: PodMetrics,
    missing: impl Fn(&str) -> Option<i64>,
    ratio_of: impl Fn(&PodMetrics) -> Result<f64, String>,
    now: Timestamp,
    t: &Tunables,
) -> Result<i32, String> {
    let scale_up_with_unready = !g.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && g.missing.is_empty() {
        if (1.0 - ratio).abs() <= t.tolerance {
            return Ok(current);
        }
        return Ok(ceil(ratio * g.ready as f64));
    }
    let at_now = |value| PodMetric {
        value,
        timestamp: now,
        window: SignedDuration::ZERO,
    };
    for pod in &g.missing {
        if let Some(value) = missing(pod) {
            metrics.insert(pod.clone(), at_now(value));
        }
    }
    if scale_up_with_unready {
        for pod in &g.unready {
            metrics.insert(pod.clone(), at_now(0));
        }
    }
    let new_ratio = ratio_of(&metrics)?;
    if (1.0 - new_ratio).abs() <= t.tolerance
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(current);
    }
    let replicas = ceil(new_ratio * metrics.len() as f64);
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(current);
    }
    Ok(replicas)
}

/// A per-pod average target (Resource AverageValue, Pods): Kubernetes'
/// `calcPlainMetricReplicas`. `cpu` turns on the start-up rules for CPU.
pub fn average_value_replicas(
    current: i32,
    target: i64,
    cpu: bool,
    pods: &[Pod],
    mut metrics: PodMetrics,
    now: Timestamp,
    t: &Tunables,
) -> Result<Proposal, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    if target <= 0 {
        return Err("the target average value must be positive".into());
    }
    let g = group_pods(pods, &metrics, cpu, now, t);
    metrics.retain(|p, _| !g.ignored.contains(p) && !g.unready.contains(p));
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let ratio_of = |m: &PodMetrics| {
        let total = m.values().fold(0i64, |sum, v| sum.saturating_add(v.value));
        (
            total as f64 / (target as f64 * m.len() as f64),
            total / m.len() as i64,
        )
    };
    let (ratio, average) = ratio_of(&metrics);
    let proposal = |replicas| Proposal {
        replicas,
        average,
        utilization: None,
    };
    // Scale down: a pod without a value is taken to be at the target; up: at 0.
    let missing = |_: &str| Some(if ratio < 1.0 { target } else { 0 });
    let new_ratio = |m: &PodMetrics| Ok(ratio_of(m).0);
    damped(current, ratio, &g, metrics, missing, new_ratio, now, t).map(proposal)
}

/// Pods that are Running and Ready (what an Object or External Value target scales).
pub fn ready_pods(pods: &[Pod]) -> usize {
    pods.iter()
        .filter(|p| phase(p) == "Running" && crate::common::is_ready(p))
        .count()
}

/// A whole-value target (Object or External `Value`): Kubernetes'
/// `getUsageRatioReplicaCount`. From zero replicas, the ratio alone decides.
pub fn value_replicas(
    current: i32,
    value: i64,
    target: i64,
    ready: usize,
    t: &Tunables,
) -> Result<Proposal, String> {
    if target <= 0 {
        return Err("the target value must be positive".into());
    }
    let ratio = value as f64 / target as f64;
    let replicas = if current != 0 {
        if (1.0 - ratio).abs() <= t.tolerance {
            current
        } else {
            ceil(ratio * ready as f64)
        }
    } else {
        ceil(ratio)
    };
    Ok(Proposal {
        replicas,
        average: value,
        utilization: None,
    })
}

/// A per-replica target of one value (Object or External `AverageValue`):
/// `GetObjectPerPodMetricReplicas` / `GetExternalPerPodMetricReplicas`.
pub fn per_replica_replicas(
    current: i32,
    value: i64,
    target: i64,
    t: &Tunables,
) -> Result<Proposal, String> {
    if target <= 0 {
        return Err("the target average value must be positive".into());
    }
    let mut replicas = current;
    let ratio = value as f64 / (target as f64 * f64::from(current.max(0)));
    if current == 0 || (1.0 - ratio).abs() > t.tolerance {
        replicas = ceil(value as f64 / target as f64);
    }
    Ok(Proposal {
        replicas,
        average: if current > 0 {
            value / i64::from(current)
        } else {
            value
        },
        utilization: None,
    })
}

/// The largest proposal of the metrics, or why there is none: Kubernetes'
/// `computeReplicasForMetrics`. With some metrics failing, a scale down is refused
/// (an error), a scale up goes ahead.
pub fn combine(
    spec_replicas: i32,
    proposals: &[(String, Result<Proposal, String>)],
) -> Result<(i32, String), String> {
    let mut best: Option<(i32, &str)> = None;
    let mut invalid = 0;
    let mut first_error = None;
    for (metric, p) in proposals {
        match p {
            Ok(p) => {
                if best.is_none_or(|(r, _)| r == 0 || p.replicas > r) {
                    best = Some((p.replicas, metric));
                }
            }
            Err(e) => {
                invalid += 1;
                first_error.get_or_insert(e.clone());
            }
        }
    }
    let error = || {
        format!(
            "invalid metrics ({invalid} invalid out of {}), first error is: {}",
            proposals.len(),
            first_error.clone().unwrap_or_default()
        )
    };
    match best {
        None => Err(if proposals.is_empty() {
            "no metrics to compute a replica count from".to_string()
        } else {
            error()
        }),
        Some((replicas, _)) if invalid > 0 && replicas < spec_replicas => Err(error()),
        Some((replicas, metric)) => Ok((replicas, metric.to_string())),
    }
}

/// Scale from zero's activity floor (the activation controller's): while Ingress traffic
/// reaches the target of an HPA with `minReplicas: 0`, the activation controller
/// asks for at least `replicas` until a time, and the metrics' recommendation is
/// raised to it, so a wake is not undone by a metric still at zero; recorded as the
/// recommendation, it is then held through the scale-down stabilization window like
/// any other. Only a target already up is held: waking from 0 is the activation
/// controller's.
pub fn with_activity_floor(
    current: i32,
    desired: i32,
    floor: Option<(i32, Timestamp)>,
    now: Timestamp,
) -> i32 {
    match floor {
        Some((replicas, until)) if current > 0 && until > now => desired.max(replicas),
        _ => desired,
    }
}

/// What the controller remembers of one HPA between syncs (in memory, as
/// kube-controller-manager does): recent recommendations and scale events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    recommendations: Vec<(i32, Timestamp)>,
    scale_ups: Vec<(i32, Timestamp)>,
    scale_downs: Vec<(i32, Timestamp)>,
}

/// A condition as the HPA status writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// `True` or `False`.
    pub status: &'static str,
    /// CamelCase reason.
    pub reason: &'static str,
    /// A sentence.
    pub message: String,
}

/// What `behavior` makes of a metrics recommendation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalized {
    /// The next size.
    pub replicas: i32,
    /// `AbleToScale`: whether stabilization held the recommendation back.
    pub able_to_scale: Condition,
    /// `ScalingLimited`: whether the bounds or the rate limited it.
    pub scaling_limited: Condition,
}

fn window(rules: Option<&HPAScalingRules>, default: i32) -> i64 {
    i64::from(
        rules
            .and_then(|r| r.stabilization_window_seconds)
            .unwrap_or(default),
    )
}

fn changed_within(events: &[(i32, Timestamp)], period: i32, now: Timestamp) -> i32 {
    let since = now - SignedDuration::from_secs(i64::from(period));
    events
        .iter()
        .filter(|(_, t)| *t > since)
        .map(|(n, _)| n)
        .sum()
}

fn policy_select(rules: &HPAScalingRules) -> &str {
    rules.select_policy.as_deref().unwrap_or("Max")
}

/// Kubernetes' `calculateScaleUpLimitWithScalingRules`.
fn scale_up_limit(current: i32, h: &History, rules: &HPAScalingRules, now: Timestamp) -> i32 {
    let select = policy_select(rules);
    if select == "Disabled" {
        return current;
    }
    let mut result = if select == "Min" { i32::MAX } else { i32::MIN };
    for p in rules.policies.iter().flatten() {
        let start = current - changed_within(&h.scale_ups, p.period_seconds, now)
            + changed_within(&h.scale_downs, p.period_seconds, now);
        let proposed = match p.type_.as_str() {
            "Pods" => start.saturating_add(p.value),
            _ => ceil(f64::from(start) * (1.0 + f64::from(p.value) / 100.0)),
        };
        result = if select == "Min" {
            result.min(proposed)
        } else {
            result.max(proposed)
        };
    }
    result
}

/// Kubernetes' `calculateScaleDownLimitWithBehaviors`.
fn scale_down_limit(current: i32, h: &History, rules: &HPAScalingRules, now: Timestamp) -> i32 {
    let select = policy_select(rules);
    if select == "Disabled" {
        return current;
    }
    let mut result = if select == "Min" { i32::MIN } else { i32::MAX };
    for p in rules.policies.iter().flatten() {
        let start = current - changed_within(&h.scale_ups, p.period_seconds, now)
            + changed_within(&h.scale_downs, p.period_seconds, now);
        let proposed = match p.type_.as_str() {
            "Pods" => start - p.value,
            _ => (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32,
        };
        result = if select == "Min" {
            result.max(proposed)
        } else {
            result.min(proposed)
        };
    }
    result
}

/// The scale-up and scale-down rules, with Kubernetes' defaults for what `behavior`
/// leaves out.
pub fn rules(
    behavior: Option<&HorizontalPodAutoscalerBehavior>,
) -> (HPAScalingRules, HPAScalingRules) {
    use rk8s_api::defaults::{default_scale_down, default_scale_up, merge_rules};
    let b = behavior.cloned().unwrap_or_default();
    let (mut up, mut down) = (b.scale_up, b.scale_down);
    merge_rules(&mut up, default_scale_up());
    merge_rules(&mut down, default_scale_down());
    (up.unwrap_or_default(), down.unwrap_or_default())
}

impl History {
    /// Kubernetes' `normalizeDesiredReplicasWithBehaviors`: the stabilized
    /// recommendation (lowest of the scale-up window when going up, highest of the
    /// scale-down window when going down), then limited by the policies and bounds.
    pub fn normalize(
        &mut self,
        behavior: Option<&HorizontalPodAutoscalerBehavior>,
        (min, max): (i32, i32),
        current: i32,
        desired: i32,
        now: Timestamp,
    ) -> Normalized {
        let (up, down) = rules(behavior);
        let (up_window, down_window) = (window(Some(&up), 0), window(Some(&down), 300));
        // Stabilization, as kube-controller-manager does it since 1.23: the lowest
        // recommendation of the scale-up window is a floor, the highest of the
        // scale-down window a ceiling, and the count moves only as far as they make it
        // (a high recommendation kept for scaling down never scales up).
        let going_up = desired >= current;
        let obsolete = now - SignedDuration::from_secs(up_window.max(down_window));
        let up_cutoff = now - SignedDuration::from_secs(up_window);
        let down_cutoff = now - SignedDuration::from_secs(down_window);
        let (mut floor, mut ceiling) = (desired, desired);
        let mut old = None;
        for (i, (r, t)) in self.recommendations.iter().enumerate() {
            if *t > up_cutoff {
                floor = floor.min(*r);
            }
            if *t > down_cutoff {
                ceiling = ceiling.max(*r);
            }
            if *t < obsolete {
                old = Some(i);
            }
        }
        let stabilized = current.max(floor).min(ceiling);
        match old {
            Some(i) => self.recommendations[i] = (desired, now),
            None => self.recommendations.push((desired, now)),
        }
        let able_to_scale = if stabilized != desired {
            Condition {
                status: "True",
                reason: if going_up {
                    "ScaleUpStabilized"
                } else {
                    "ScaleDownStabilized"
                },
                message: if going_up {
                    "recent recommendations were lower than current one, applying the lowest recent recommendation"
                } else {
                    "recent recommendations were higher than current one, applying the highest recent recommendation"
                }
                .into(),
            }
        } else {
            Condition {
                status: "True",
                reason: "ReadyForNewScale",
                message: "recommended size matches current size".into(),
            }
        };
        // Rate and bounds.
        let (mut replicas, mut reason, mut message) = (
            stabilized,
            "DesiredWithinRange",
            "the desired count is within the acceptable range",
        );
        if stabilized > current {
            let limit = scale_up_limit(current, self, &up, now).max(current);
            let (allowed, r, m) = if max > limit {
                (
                    limit,
                    "ScaleUpLimit",
                    "the desired replica count is increasing faster than the maximum scale rate",
                )
            } else {
                (
                    max,
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                )
            };
            if stabilized > allowed {
                (replicas, reason, message) = (allowed, r, m);
            }
        } else if stabilized < current {
            let limit = scale_down_limit(current, self, &down, now).min(current);
            let (allowed, r, m) = if min < limit {
                (
                    limit,
                    "ScaleDownLimit",
                    "the desired replica count is decreasing faster than the maximum scale rate",
                )
            } else {
                (
                    min,
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                )
            };
            if stabilized < allowed {
                (replicas, reason, message) = (allowed, r, m);
            }
        }
        Normalized {
            replicas,
            able_to_scale,
            scaling_limited: Condition {
                status: if replicas == stabilized {
                    "False"
                } else {
                    "True"
                },
                reason,
                message: message.into(),
            },
        }
    }

    /// Records a rescale from `current` to `desired` (the policies count them),
    /// forgetting events older than the longest policy period.
    pub fn record_scale(
        &mut self,
        behavior: Option<&HorizontalPodAutoscalerBehavior>,
        current: i32,
        desired: i32,
        now: Timestamp,
    ) {
        let (up, down) = rules(behavior);
        let longest = |r: &HPAScalingRules| {
            r.policies
                .iter()
                .flatten()
                .map(|p| p.period_seconds)
                .max()
                .unwrap_or(0)
        };
        let keep_since =
            |r: &HPAScalingRules| now - SignedDuration::from_secs(i64::from(longest(r)));
        let (up_since, down_since) = (keep_since(&up), keep_since(&down));
        self.scale_ups.retain(|(_, t)| *t > up_since);
        self.scale_downs.retain(|(_, t)| *t > down_since);
        if desired > current {
            self.scale_ups.push((desired - current, now));
        } else if desired < current {
            self.scale_downs.push((current - desired, now));
        }
    }
}

#[cfg(test)]
mod tests;

//! What one object costs a ResourceQuota, as kube's quota evaluators measure it
//! (`pkg/quota/v1/evaluator/core`, `staging/.../apiserver/pkg/quota/v1/generic`): a
//! pod its compute resources and `pods` (while it is not terminal), a Service its
//! node ports and load balancer, a claim its storage (also by storage class), and any
//! object its `count/<resource>[.<group>]`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, Pod, PodAffinityTerm, Service, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Wire;

use super::ResourceList;
use crate::quantity::Quantity;
use crate::{AnyObject, ObjectKind};

/// The suffix of the names that quota storage by class:
/// `<class>.storageclass.storage.k8s.io/requests.storage`.
pub const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// The beta annotation that named a claim's class before `spec.storageClassName`.
const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

/// The names a pod's compute usage is counted under (kube's `podResources`).
const POD_RESOURCES: [&str; 11] = [
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
];

/// The names a Service is counted under.
const SERVICE_RESOURCES: [&str; 4] = [
    "count/services",
    "services",
    "services.nodeports",
    "services.loadbalancers",
];

/// The names a claim is counted under (also after `<class>.storageclass...`).
const CLAIM_RESOURCES: [&str; 3] = [
    "persistentvolumeclaims",
    "count/persistentvolumeclaims",
    "requests.storage",
];

/// The kinds counted under a legacy name as well as their `count/` name.
fn legacy_alias(kind: &ObjectKind) -> Option<&'static str> {
    match (kind.group, kind.plural) {
        ("", "configmaps") => Some("configmaps"),
        ("", "secrets") => Some("secrets"),
        ("", "replicationcontrollers") => Some("replicationcontrollers"),
        ("", "resourcequotas") => Some("resourcequotas"),
        _ => None,
    }
}

/// The object-count name of a kind: `count/pods`, `count/deployments.apps`.
pub fn count_name(kind: &ObjectKind) -> String {
    if kind.group.is_empty() {
        format!("count/{}", kind.plural)
    } else {
        format!("count/{}.{}", kind.plural, kind.group)
    }
}

/// The kind-independent part of a `count/` name: `(group, plural)`.
pub fn counted_kind(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("count/")?;
    Some(match rest.split_once('.') {
        Some((plural, group)) => (group, plural),
        None => ("", rest),
    })
}

/// Kinds quota never counts: events resist quota, as kube's ignored resources say.
pub fn is_ignored(kind: &ObjectKind) -> bool {
    matches!(
        (kind.group, kind.plural),
        ("", "events") | ("events.k8s.io", "events")
    )
}

/// kube's `IsNativeResource`: no domain, or a `kubernetes.io/` one.
fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// kube's `isExtendedResourceNameForQuota`: `requests.<non-native name>`.
fn is_extended_for_quota(name: &str) -> bool {
    name.starts_with("requests.") && !is_native(name)
}

/// kube's `IsExtendedResourceName`: a non-native name not itself a quota name.
fn is_extended(name: &str) -> bool {
    !is_native(name) && !name.starts_with("requests.")
}

/// The names of `names` that objects of `kind` are counted under (kube's
/// `MatchingResources`), in the order given.
pub fn matching_resources<'a>(
    kind: &ObjectKind,
    names: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let count = count_name(kind);
    let alias = legacy_alias(kind);
    names
        .into_iter()
        .filter(|name| match (kind.group, kind.plural) {
            ("", "pods") => {
                POD_RESOURCES.contains(name)
                    || name.starts_with("hugepages-")
                    || name.starts_with("requests.hugepages-")
                    || is_extended_for_quota(name)
            }
            ("", "services") => SERVICE_RESOURCES.contains(name),
            ("", "persistentvolumeclaims") => {
                CLAIM_RESOURCES.contains(name)
                    || CLAIM_RESOURCES
                        .iter()
                        .any(|r| name.ends_with(&format!("{STORAGE_CLASS_SUFFIX}{r}")))
            }
            _ => *name == count || Some(*name) == alias,
        })
        .map(str::to_string)
        .collect()
}

fn one() -> Quantity {
    Quantity::from_i64(1)
}

/// The list a wire map holds; quantities that do not parse count as absent (the
/// API's validation refuses them before they are stored).
pub fn parse_list(wire: Option<&BTreeMap<String, Wire>>) -> ResourceList {
    wire.into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), Quantity::try_from(v).ok()?)))
        .collect()
}

/// What `obj` costs, at `now` (a pod past its deletion grace costs only its count).
pub fn usage(obj: &AnyObject, now: jiff::Timestamp) -> ResourceList {
    let kind = obj.kind();
    match obj {
        AnyObject::Pod(pod) => pod_usage(pod, now),
        AnyObject::Service(svc) => service_usage(svc),
        AnyObject::PersistentVolumeClaim(claim) => claim_usage(claim),
        _ => {
            let mut result = ResourceList::from([(count_name(&kind), one())]);
            if let Some(alias) = legacy_alias(&kind) {
                result.insert(alias.to_string(), one());
            }
            result
        }
    }
}

/// kube's `QuotaV1Pod`: a pod is charged unless it is terminal or its deletion's
/// grace has run out (a pod stuck terminating on a lost node).
pub fn pod_is_charged(pod: &Pod, now: jiff::Timestamp) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return false;
    }
    let meta = &pod.metadata;
    if let (Some(deleted), Some(grace)) =
        (&meta.deletion_timestamp, meta.deletion_grace_period_seconds)
    {
        let end = deleted.0.as_second().saturating_add(grace);
        if now.as_second() > end {
            return false;
        }
    }
    true
}

fn pod_usage(pod: &Pod, now: jiff::Timestamp) -> ResourceList {
    let mut result = ResourceList::from([("count/pods".to_string(), one())]);
    if !pod_is_charged(pod, now) {
        return result;
    }
    let (requests, limits) = pod_requests_and_limits(pod);
    add_into(&mut result, &compute_usage(&requests, &limits));
    result
}

/// kube's `podComputeUsageHelper`: the quota names a set of requests and limits fill.
pub fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut result = ResourceList::from([("pods".to_string(), one())]);
    for name in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(q) = requests.get(name) {
            result.insert(name.to_string(), *q);
            result.insert(format!("requests.{name}"), *q);
        }
        if let Some(q) = limits.get(name) {
            result.insert(format!("limits.{name}"), *q);
        }
    }
    for (name, q) in requests {
        if name.starts_with("hugepages-") {
            result.insert(name.clone(), *q);
            result.insert(format!("requests.{name}"), *q);
        }
        if is_extended(name) {
            result.insert(format!("requests.{name}"), *q);
        }
    }
    result
}

fn container_list(c: &Container, limits: bool) -> ResourceList {
    let r = c.resources.as_ref();
    parse_list(r.and_then(|r| {
        if limits {
            r.limits.as_ref()
        } else {
            r.requests.as_ref()
        }
    }))
}

/// `a += b`, key by key (an overflow keeps the old amount: quantities that large are
/// refused by validation).
pub fn add_into(a: &mut ResourceList, b: &ResourceList) {
    for (k, v) in b {
        let sum = match a.get(k) {
            Some(have) => have.checked_add(v).unwrap_or(*have),
            None => *v,
        };
        a.insert(k.clone(), sum);
    }
}

fn max_into(a: &mut ResourceList, b: &ResourceList) {
    for (k, v) in b {
        if a.get(k).is_none_or(|have| v > have) {
            a.insert(k.clone(), *v);
        }
    }
}

/// A pod's requests and limits as kube's `resourcehelper.PodRequests`/`PodLimits`
/// count them: the sum of its containers (and sidecars: restartable init
/// containers), at least each init container with the sidecars started before it,
/// plus the pod's overhead (for limits, only on resources that have one).
pub fn pod_requests_and_limits(pod: &Pod) -> (ResourceList, ResourceList) {
    let Some(spec) = pod.spec.as_ref() else {
        return (ResourceList::new(), ResourceList::new());
    };
    let total = |limits: bool| {
        let mut sum = ResourceList::new();
        for c in &spec.containers {
            add_into(&mut sum, &container_list(c, limits));
        }
        let mut sidecars = ResourceList::new();
        let mut init_max = ResourceList::new();
        for c in spec.init_containers.iter().flatten() {
            let own = container_list(c, limits);
            let peak = if c.restart_policy.as_deref() == Some("Always") {
                add_into(&mut sum, &own);
                add_into(&mut sidecars, &own);
                sidecars.clone()
            } else {
                let mut peak = own;
                add_into(&mut peak, &sidecars);
                peak
            };
            max_into(&mut init_max, &peak);
        }
        max_into(&mut sum, &init_max);
        sum
    };
    let mut requests = total(false);
    let mut limits = total(true);
    let overhead = parse_list(spec.overhead.as_ref());
    add_into(&mut requests, &overhead);
    for (k, v) in &overhead {
        if let Some(have) = limits.get_mut(k) {
            *have = have.checked_add(v).unwrap_or(*have);
        }
    }
    (requests, limits)
}

/// kube's QoS rule: best effort when no container requests or limits a positive
/// amount of cpu or memory.
pub fn is_best_effort(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    !containers
        .flat_map(|c| [container_list(c, false), container_list(c, true)])
        .any(|list| {
            list.iter()
                .any(|(k, v)| (k == "cpu" || k == "memory") && v.signum() > 0)
        })
}

/// kube's `IsTerminating`: an `activeDeadlineSeconds` bounds the pod's life.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
        .is_some_and(|d| d >= 0)
}

/// kube's `usesCrossNamespacePodAffinity`: an (anti-)affinity term naming other
/// namespaces or selecting them.
pub fn uses_cross_namespace_affinity(pod: &Pod) -> bool {
    let Some(affinity) = pod.spec.as_ref().and_then(|s| s.affinity.as_ref()) else {
        return false;
    };
    let cross = |t: &PodAffinityTerm| {
        t.namespaces.as_ref().is_some_and(|n| !n.is_empty()) || t.namespace_selector.is_some()
    };
    let terms = |required: Option<&Vec<PodAffinityTerm>>,
                 preferred: Option<&Vec<WeightedPodAffinityTerm>>| {
        required.into_iter().flatten().any(cross)
            || preferred
                .into_iter()
                .flatten()
                .any(|w| cross(&w.pod_affinity_term))
    };
    affinity.pod_affinity.as_ref().is_some_and(|a| {
        terms(
            a.required_during_scheduling_ignored_during_execution
                .as_ref(),
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref(),
        )
    }) || affinity.pod_anti_affinity.as_ref().is_some_and(|a| {
        terms(
            a.required_during_scheduling_ignored_during_execution
                .as_ref(),
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref(),
        )
    })
}

fn service_usage(svc: &Service) -> ResourceList {
    let spec = svc.spec.as_ref();
    let ports = spec.and_then(|s| s.ports.as_ref());
    let count = |n: usize| Quantity::from_i64(i64::try_from(n).unwrap_or(i64::MAX));
    let mut node_ports = Quantity::from_i64(0);
    let mut load_balancers = Quantity::from_i64(0);
    match spec.and_then(|s| s.type_.as_deref()) {
        Some("NodePort") => node_ports = count(ports.map_or(0, Vec::len)),
        Some("LoadBalancer") => {
            let allocate = spec.and_then(|s| s.allocate_load_balancer_node_ports) != Some(false);
            node_ports = if allocate {
                count(ports.map_or(0, Vec::len))
            } else {
                count(
                    ports
                        .into_iter()
                        .flatten()
                        .filter(|p| p.node_port.is_some_and(|n| n != 0))
                        .count(),
                )
            };
            load_balancers = one();
        }
        _ => {}
    }
    ResourceList::from([
        ("count/services".to_string(), one()),
        ("services".to_string(), one()),
        ("services.nodeports".to_string(), node_ports),
        ("services.loadbalancers".to_string(), load_balancers),
    ])
}

/// kube's `GetPersistentVolumeClaimClass`: the beta annotation, else the spec.
fn claim_class(claim: &PersistentVolumeClaim) -> Option<&str> {
    let annotated = claim
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(BETA_STORAGE_CLASS))
        .map(String::as_str);
    annotated
        .or_else(|| claim.spec.as_ref()?.storage_class_name.as_deref())
        .filter(|c| !c.is_empty())
}

/// Storage counted in whole bytes (kube rounds a request up: issue 94313).
fn whole_bytes(q: Quantity) -> Quantity {
    let whole = Quantity::from_i64(q.value());
    if whole == q { q } else { whole }
}

fn claim_usage(claim: &PersistentVolumeClaim) -> ResourceList {
    let mut result = ResourceList::from([
        ("persistentvolumeclaims".to_string(), one()),
        ("count/persistentvolumeclaims".to_string(), one()),
    ]);
    let class = claim_class(claim);
    if let Some(class) = class {
        result.insert(
            format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
            one(),
        );
    }
    let requested = parse_list(
        claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref()),
    );
    let Some(mut storage) = requested.get("storage").copied().map(whole_bytes) else {
        return result;
    };
    // RecoverVolumeExpansionFailure (on by default): what was allocated, if more.
    let allocated = parse_list(
        claim
            .status
            .as_ref()
            .and_then(|s| s.allocated_resources.as_ref()),
    );
    if let Some(a) = allocated.get("storage").filter(|a| **a > storage) {
        storage = whole_bytes(*a);
    }
    result.insert("requests.storage".to_string(), storage);
    if let Some(class) = class {
        result.insert(
            format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"),
            storage,
        );
    }
    result
}

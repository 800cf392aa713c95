//! ResourceQuota as kube-apiserver's admission plugin
//! (`staging/src/k8s.io/apiserver/pkg/admission/plugin/resourcequota`) and
//! kube-controller-manager's quota controller (`pkg/controller/resourcequota`) decide
//! it: which quotas an object falls under (their `status.hard` names and scopes),
//! what it costs ([`usage`]), whether the cost fits, kube's exact refusals, and a
//! namespace's usage as the controller sums it.
//!
//! ```
//! use k8s_openapi::api::core::v1::{ConfigMap, ResourceQuota, ResourceQuotaStatus};
//! use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Wire;
//! use rk8s_api::{AnyObject, quota};
//!
//! let mut q = ResourceQuota::default();
//! q.metadata.name = Some("objects".into());
//! q.status = Some(ResourceQuotaStatus {
//!     hard: Some([("configmaps".to_string(), Wire("1".into()))].into()),
//!     used: Some([("configmaps".to_string(), Wire("1".into()))].into()),
//! });
//! let mut cm = ConfigMap::default();
//! cm.metadata.name = Some("c".into());
//! let refusal = quota::check(&[&q], &AnyObject::from(cm), None, jiff::Timestamp::now()).unwrap_err();
//! assert_eq!(
//!     refusal.to_string(),
//!     "exceeded quota: objects, requested: configmaps=1, used: configmaps=1, limited: configmaps=1"
//! );
//! ```

pub mod usage;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::core::v1::{
    Pod, ResourceQuota, ResourceQuotaStatus, ScopedResourceSelectorRequirement,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Wire;

pub use usage::{count_name, counted_kind, is_ignored, matching_resources, parse_list, usage};

use crate::AnyObject;
use crate::quantity::Quantity;

/// Amounts by resource name, in name order (kube's `ResourceList`).
pub type ResourceList = BTreeMap<String, Quantity>;

/// Why a write does not fit its namespace's quotas, worded as kube-apiserver words
/// it (the API prefixes `<resource> "<name>" is forbidden: `).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The cost would take a quota over its hard limit.
    Exceeded {
        /// The quota.
        quota: String,
        /// What was asked, of the resources over.
        requested: ResourceList,
        /// What the quota had used of them.
        used: ResourceList,
        /// Their limits.
        limited: ResourceList,
    },
    /// A pod under a cpu or memory quota leaves the amount unset in a container.
    Failed {
        /// The quota.
        quota: String,
        /// Each missing resource and the containers missing it.
        missing: BTreeMap<String, BTreeSet<String>>,
    },
    /// The quota's usage of resources it limits is not known yet.
    StatusUnknown {
        /// The quota.
        quota: String,
        /// The resources it limits that the object counts under.
        resources: Vec<String>,
    },
    /// The object asks a negative amount.
    Negative {
        /// The resources asked negatively.
        resources: Vec<String>,
    },
}

/// kube's `prettyPrint`: `name=value` by name, comma separated.
fn pretty(list: &ResourceList) -> String {
    let parts: Vec<String> = list.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(",")
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Exceeded {
                quota,
                requested,
                used,
                limited,
            } => write!(
                f,
                "exceeded quota: {quota}, requested: {}, used: {}, limited: {}",
                pretty(requested),
                pretty(used),
                pretty(limited)
            ),
            Refusal::Failed { quota, missing } => {
                let parts: Vec<String> = missing
                    .iter()
                    .map(|(resource, containers)| {
                        let names: Vec<&str> = containers.iter().map(String::as_str).collect();
                        format!("{resource} for: {}", names.join(","))
                    })
                    .collect();
                write!(
                    f,
                    "failed quota: {quota}: must specify {}",
                    parts.join("; ")
                )
            }
            Refusal::StatusUnknown { quota, resources } => {
                let mut sorted = resources.clone();
                sorted.sort();
                write!(
                    f,
                    "status unknown for quota: {quota}, resources: {}",
                    sorted.join(",")
                )
            }
            Refusal::Negative { resources } => {
                let mut sorted = resources.clone();
                sorted.sort();
                write!(
                    f,
                    "quota usage is negative for resource(s): {}",
                    sorted.join(",")
                )
            }
        }
    }
}

impl std::error::Error for Refusal {}

/// What admitting a write charges one quota.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charge {
    /// The quota's name.
    pub quota: String,
    /// Its `status.used` with the write's cost added.
    pub used: ResourceList,
}

/// A quota's scopes and scope selector as requirements (a scope is `Exists`).
fn scope_requirements(q: &ResourceQuota) -> Vec<ScopedResourceSelectorRequirement> {
    let spec = q.spec.as_ref();
    let scopes = spec.and_then(|s| s.scopes.as_ref()).into_iter().flatten();
    let mut all: Vec<ScopedResourceSelectorRequirement> = scopes
        .map(|scope| ScopedResourceSelectorRequirement {
            scope_name: scope.clone(),
            operator: "Exists".into(),
            values: None,
        })
        .collect();
    let selector = spec.and_then(|s| s.scope_selector.as_ref());
    all.extend(
        selector
            .and_then(|s| s.match_expressions.clone())
            .into_iter()
            .flatten(),
    );
    all
}

/// kube's `podMatchesScopeFunc`; other kinds match no scope.
fn scope_matches(req: &ScopedResourceSelectorRequirement, obj: &AnyObject) -> bool {
    let AnyObject::Pod(pod) = obj else {
        return false;
    };
    match req.scope_name.as_str() {
        "Terminating" => usage::is_terminating(pod),
        "NotTerminating" => !usage::is_terminating(pod),
        "BestEffort" => usage::is_best_effort(pod),
        "NotBestEffort" => !usage::is_best_effort(pod),
        "PriorityClass" => priority_class_matches(pod, req),
        "CrossNamespacePodAffinity" => usage::uses_cross_namespace_affinity(pod),
        _ => false,
    }
}

/// A PriorityClass requirement as a label selector over `{PriorityClass: <name>}`
/// (no label when the pod names no class).
fn priority_class_matches(pod: &Pod, req: &ScopedResourceSelectorRequirement) -> bool {
    let class = pod
        .spec
        .as_ref()
        .and_then(|s| s.priority_class_name.as_deref())
        .filter(|c| !c.is_empty());
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "Exists" => class.is_some(),
        "DoesNotExist" => class.is_none(),
        "In" => class.is_some_and(|c| values.iter().any(|v| v == c)),
        "NotIn" => class.is_none_or(|c| values.iter().all(|v| v != c)),
        _ => false,
    }
}

/// Whether every scope of `q` selects `obj` (no scope: every object).
pub fn scopes_match(q: &ResourceQuota, obj: &AnyObject) -> bool {
    scope_requirements(q).iter().all(|r| scope_matches(r, obj))
}

/// A quota's `status.hard`, parsed.
pub fn hard(q: &ResourceQuota) -> ResourceList {
    parse_list(q.status.as_ref().and_then(|s| s.hard.as_ref()))
}

/// A quota's `status.used`, parsed.
pub fn used(q: &ResourceQuota) -> ResourceList {
    parse_list(q.status.as_ref().and_then(|s| s.used.as_ref()))
}

/// A list as the API writes it.
pub fn to_wire(list: &ResourceList) -> BTreeMap<String, Wire> {
    list.iter().map(|(k, v)| (k.clone(), (*v).into())).collect()
}

/// Whether the admission looks at this write at all (kube's evaluators' `Handles`):
/// any counted object's create; a pod's update only when its Terminating scope
/// changes; Services' and claims' updates (a type, a size can change).
pub fn handles(obj: &AnyObject, old: Option<&AnyObject>) -> bool {
    if is_ignored(&obj.kind()) {
        return false;
    }
    match (obj, old) {
        (_, None) => true,
        (AnyObject::Pod(new), Some(AnyObject::Pod(old))) => {
            usage::is_terminating(new) != usage::is_terminating(old)
        }
        (AnyObject::Service(_) | AnyObject::PersistentVolumeClaim(_), Some(_)) => true,
        _ => false,
    }
}

/// kube's pod `Constraints`: a quota on cpu or memory (requests, limits or the bare
/// names) needs each container, init containers too, to set it.
fn pod_constraints(pod: &Pod, restricted: &[String]) -> BTreeMap<String, BTreeSet<String>> {
    const VALIDATED: [&str; 6] = [
        "cpu",
        "memory",
        "requests.cpu",
        "requests.memory",
        "limits.cpu",
        "limits.memory",
    ];
    let required: BTreeSet<&str> = restricted
        .iter()
        .map(String::as_str)
        .filter(|r| VALIDATED.contains(r))
        .collect();
    let mut missing: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let Some(spec) = pod.spec.as_ref() else {
        return missing;
    };
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let r = c.resources.as_ref();
        let requests = parse_list(r.and_then(|r| r.requests.as_ref()));
        let limits = parse_list(r.and_then(|r| r.limits.as_ref()));
        let set = usage::compute_usage(&requests, &limits);
        for name in &required {
            if !set.contains_key(*name) {
                missing
                    .entry((*name).to_string())
                    .or_default()
                    .insert(c.name.clone());
            }
        }
    }
    missing
}

/// kube's `CheckRequest`: the charges admitting `obj` (created, or replacing `old`)
/// makes to `quotas` (its namespace's, in the order given), or the first refusal.
/// A quota matches when its `status.hard` names something `obj` is counted under and
/// its scopes select it; an update is charged only what it adds.
pub fn check(
    quotas: &[&ResourceQuota],
    obj: &AnyObject,
    old: Option<&AnyObject>,
    now: jiff::Timestamp,
) -> Result<Vec<Charge>, Refusal> {
    if !handles(obj, old) {
        return Ok(Vec::new());
    }
    let kind = obj.kind();
    let mut interesting = Vec::new();
    for q in quotas {
        let name = q.metadata.name.clone().unwrap_or_default();
        let hard = hard(q);
        let restricted = matching_resources(&kind, hard.keys().map(String::as_str));
        if restricted.is_empty() || !scopes_match(q, obj) {
            continue;
        }
        if let AnyObject::Pod(pod) = obj {
            let missing = pod_constraints(pod, &restricted);
            if !missing.is_empty() {
                return Err(Refusal::Failed {
                    quota: name,
                    missing,
                });
            }
        }
        let used = used(q);
        if restricted.iter().any(|r| !used.contains_key(r)) {
            return Err(Refusal::StatusUnknown {
                quota: name,
                resources: restricted,
            });
        }
        interesting.push((name, hard, used));
    }
    if interesting.is_empty() {
        return Ok(Vec::new());
    }
    let mut delta = usage(obj, now);
    let negative: Vec<String> = delta
        .iter()
        .filter(|(_, v)| v.signum() < 0)
        .map(|(k, _)| k.clone())
        .collect();
    if !negative.is_empty() {
        return Err(Refusal::Negative {
            resources: negative,
        });
    }
    if let Some(old) = old.filter(|o| o.metadata().resource_version.is_some()) {
        // kube's SubtractWithNonNegativeResult: only increases are charged.
        let before = usage(old, now);
        for (k, v) in delta.iter_mut() {
            if let Some(b) = before.get(k) {
                // A difference too large to compute charges the whole new amount.
                *v = match v.checked_sub(b) {
                    Some(d) if d.signum() > 0 => d,
                    Some(_) => Quantity::from_i64(0),
                    None => *v,
                };
            }
        }
    }
    delta.retain(|_, v| !v.is_zero());
    if delta.is_empty() {
        return Ok(Vec::new());
    }
    let mut charges = Vec::new();
    for (name, hard, used) in interesting {
        let requested: ResourceList = delta
            .iter()
            .filter(|(k, _)| hard.contains_key(*k))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if requested.is_empty() {
            continue;
        }
        let mut new_used = used.clone();
        // A sum too large to compute exceeds any limit (kube's arbitrary precision
        // would find it over).
        let mut overflowed = Vec::new();
        for (k, v) in &requested {
            match new_used.get(k).map_or(Some(*v), |have| have.checked_add(v)) {
                Some(sum) => {
                    new_used.insert(k.clone(), sum);
                }
                None => overflowed.push(k.clone()),
            }
        }
        let exceeded: Vec<&String> = requested
            .keys()
            .filter(|k| {
                overflowed.contains(*k)
                    || match (new_used.get(*k), hard.get(*k)) {
                        (Some(n), Some(h)) => n > h,
                        _ => false,
                    }
            })
            .collect();
        if !exceeded.is_empty() {
            let mask = |list: &ResourceList| -> ResourceList {
                exceeded
                    .iter()
                    .filter_map(|k| Some(((*k).clone(), *list.get(*k)?)))
                    .collect()
            };
            return Err(Refusal::Exceeded {
                quota: name,
                requested: mask(&requested),
                used: mask(&used),
                limited: mask(&hard),
            });
        }
        charges.push(Charge {
            quota: name,
            used: new_used,
        });
    }
    Ok(charges)
}

/// A namespace's usage as kube's controller sums it (`CalculateUsage`): for each
/// name of `q`'s `spec.hard` that objects of a kind in `objects` are counted under,
/// the cost of those selected by `q`'s scopes (zero when none are).
///
/// `objects` must hold every object of the namespace of each kind it has one of, and
/// `kinds` every kind whose objects were gathered, even if none exist.
pub fn calculate_usage<'a>(
    q: &ResourceQuota,
    kinds: &[crate::ObjectKind],
    objects: impl IntoIterator<Item = &'a AnyObject>,
    now: jiff::Timestamp,
) -> ResourceList {
    let hard = parse_list(q.spec.as_ref().and_then(|s| s.hard.as_ref()));
    let mut by_kind: BTreeMap<usize, ResourceList> = BTreeMap::new();
    let matched: Vec<Vec<String>> = kinds
        .iter()
        .map(|k| matching_resources(k, hard.keys().map(String::as_str)))
        .collect();
    for (i, names) in matched.iter().enumerate() {
        if !names.is_empty() {
            let zeros = names.iter().map(|n| (n.clone(), Quantity::from_i64(0)));
            by_kind.insert(i, zeros.collect());
        }
    }
    for obj in objects {
        let kind = obj.kind();
        let Some(i) = kinds.iter().position(|k| *k == kind) else {
            continue;
        };
        let Some(sum) = by_kind.get_mut(&i) else {
            continue;
        };
        if !scopes_match(q, obj) {
            continue;
        }
        let cost: ResourceList = usage(obj, now)
            .into_iter()
            .filter(|(k, _)| matched[i].contains(k))
            .collect();
        usage::add_into(sum, &cost);
    }
    let mut result = ResourceList::new();
    for sum in by_kind.values() {
        usage::add_into(&mut result, sum);
    }
    result
}

/// The status kube's controller gives `q`: `hard` its `spec.hard`, `used` the
/// `computed` usage over its old `used` (names nothing computed keep their old
/// value), only names with a hard limit.
pub fn desired_status(q: &ResourceQuota, computed: &ResourceList) -> ResourceQuotaStatus {
    let spec_hard = q
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    let mut used = used(q);
    for (k, v) in computed {
        used.insert(k.clone(), *v);
    }
    used.retain(|k, _| spec_hard.contains_key(k));
    ResourceQuotaStatus {
        hard: Some(spec_hard),
        used: Some(to_wire(&used)),
    }
}

/// Whether two statuses say the same amounts (`1` and `1000m` are equal).
pub fn same_status(a: Option<&ResourceQuotaStatus>, b: &ResourceQuotaStatus) -> bool {
    let hard_a = parse_list(a.and_then(|s| s.hard.as_ref()));
    let used_a = parse_list(a.and_then(|s| s.used.as_ref()));
    let wire_a = a.and_then(|s| s.hard.as_ref()).map_or(0, BTreeMap::len);
    let wire_b = b.hard.as_ref().map_or(0, BTreeMap::len);
    wire_a == wire_b
        && a.and_then(|s| s.used.as_ref()).is_some()
        && hard_a == parse_list(b.hard.as_ref())
        && used_a == parse_list(b.used.as_ref())
}

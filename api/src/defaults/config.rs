//! Defaults of the core kinds that hold configuration and policy: Secrets,
//! LimitRanges, and PriorityClasses (scheduling/v1).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LimitRange, Secret};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::set_str;

/// core/v1 `SetDefaults_Secret`: a Secret without a type is `Opaque`.
pub(super) fn secret(s: &mut Secret) {
    set_str(&mut s.type_, "Opaque");
}

/// Adds each entry of `from` that `to` lacks, leaving `to` unset when nothing is added.
fn fill(to: &mut Option<BTreeMap<String, Quantity>>, from: Option<&BTreeMap<String, Quantity>>) {
    for (name, q) in from.into_iter().flatten() {
        to.get_or_insert_with(BTreeMap::new)
            .entry(name.clone())
            .or_insert_with(|| q.clone());
    }
}

/// core/v1 `SetDefaults_LimitRangeItem`, for `Container` items: the default limit is
/// the max, the default request is the default limit, else the min.
pub(super) fn limit_range(l: &mut LimitRange) {
    let items = l.spec.iter_mut().flat_map(|s| s.limits.iter_mut());
    for item in items.filter(|i| i.type_ == "Container") {
        fill(&mut item.default, item.max.as_ref());
        fill(&mut item.default_request, item.default.as_ref());
        fill(&mut item.default_request, item.min.as_ref());
    }
}

/// scheduling/v1 `SetDefaults_PriorityClass`: pods of the class preempt pods of lower
/// priority.
pub(super) fn priority_class(p: &mut PriorityClass) {
    set_str(&mut p.preemption_policy, "PreemptLowerPriority");
}

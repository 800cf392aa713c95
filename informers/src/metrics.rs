//! The informers' Prometheus metrics: how far each kind's cache has come, and how
//! often it had to list everything. With the store's `rk8s_store_revision`, the
//! first says how far behind the store an informer is (in revisions); a watch that
//! falls behind past the compacted history ends in a 410 and a list of every
//! object, counted by the second.

use std::sync::LazyLock;

use prometheus::{IntCounterVec, IntGaugeVec, Opts};
use rk8s_http::metrics::registered;

/// `rk8s_informer_resource_version{resource}`: the newest change an informer took in.
pub static RESOURCE_VERSION: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    registered(IntGaugeVec::new(
        Opts::new(
            "rk8s_informer_resource_version",
            "The resourceVersion of the newest object a shared informer took in, by resource.",
        ),
        &["resource"],
    ))
});

/// `rk8s_informer_lists_total{resource}`: lists of every object begun.
pub static LISTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    registered(IntCounterVec::new(
        Opts::new(
            "rk8s_informer_lists_total",
            "Lists of every object a shared informer began: the first, then one each time its watch could not resume.",
        ),
        &["resource"],
    ))
});

/// The `resource` label of kind `K`: its plural, then `.group` outside the core
/// group (`deployments.apps`), as kube-apiserver labels its watch caches.
pub(crate) fn resource<K: kube::Resource<DynamicType = ()>>() -> String {
    let group = K::group(&());
    if group.is_empty() {
        K::plural(&()).into_owned()
    } else {
        format!("{}.{group}", K::plural(&()))
    }
}

/// An object of `resource` at `resource_version` was taken in.
pub(crate) fn took_in(resource: &str, resource_version: Option<&str>) {
    if let Some(v) = resource_version.and_then(|v| v.parse::<i64>().ok()) {
        let gauge = RESOURCE_VERSION.with_label_values(&[resource]);
        if v > gauge.get() {
            gauge.set(v);
        }
    }
}

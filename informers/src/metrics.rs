//! The informers' Prometheus metrics: how far each kind's cache has come, and how
//! often it had to list everything. With the store's
//! `etcd_debugging_mvcc_current_revision`, the first says how far behind the store an
//! informer is (in revisions); a watch that falls behind past the compacted history
//! ends in a 410 and a list of every object, counted by the second. Both are the
//! leader's (informers run where the control plane leads).

use std::sync::LazyLock;

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts};
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

/// An object at `resource_version` was taken in: `gauge` (its kind's
/// [`RESOURCE_VERSION`]) keeps the newest (a list's objects come in any order).
pub(crate) fn took_in(gauge: &IntGauge, resource_version: Option<&str>) {
    if let Some(v) = resource_version.and_then(|v| v.parse::<i64>().ok())
        && v > gauge.get()
    {
        gauge.set(v);
    }
}

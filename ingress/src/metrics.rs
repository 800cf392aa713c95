//! The proxy's metrics, in the default Prometheus registry (served on the node's
//! `/metrics`): requests by Ingress, Service and status code, and their durations
//! by Ingress. Labels come from the served Ingresses only (a request no Ingress took
//! counts with empty ones). The held requests of scale from zero
//! (module `activation`): how many wait now and how long they waited, by Service.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

fn registered<M: prometheus::core::Collector + Clone + 'static>(
    metric: prometheus::Result<M>,
) -> Option<M> {
    let metric = metric.ok()?;
    // Registered once (the statics below); a clash would only lose the metric.
    let _ = prometheus::default_registry().register(Box::new(metric.clone()));
    Some(metric)
}

/// `rk8s_ingress_requests_total{namespace,ingress,service,code}`.
pub static REQUESTS: LazyLock<Option<IntCounterVec>> = LazyLock::new(|| {
    registered(IntCounterVec::new(
        Opts::new(
            "rk8s_ingress_requests_total",
            "Requests the Ingress proxy answered, by Ingress, Service and status code.",
        ),
        &["namespace", "ingress", "service", "code"],
    ))
});

/// `rk8s_ingress_request_duration_seconds{namespace,ingress}`: to the response head.
pub static DURATION: LazyLock<Option<HistogramVec>> = LazyLock::new(|| {
    registered(HistogramVec::new(
        HistogramOpts::new(
            "rk8s_ingress_request_duration_seconds",
            "Time from a request's arrival to its response head, by Ingress.",
        )
        .buckets(vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0, 60.0,
        ]),
        &["namespace", "ingress"],
    ))
});

/// `rk8s_ingress_activation_waiting{namespace,service}`: requests held now.
pub static WAITING: LazyLock<Option<IntGaugeVec>> = LazyLock::new(|| {
    registered(IntGaugeVec::new(
        Opts::new(
            "rk8s_ingress_activation_waiting",
            "Requests the Ingress proxy holds for an endpoint of a Service scaled to zero.",
        ),
        &["namespace", "service"],
    ))
});

/// `rk8s_ingress_activation_wait_seconds{namespace,service}`: how long held
/// requests waited (until forwarded, refused, or gone).
pub static WAIT: LazyLock<Option<HistogramVec>> = LazyLock::new(|| {
    registered(HistogramVec::new(
        HistogramOpts::new(
            "rk8s_ingress_activation_wait_seconds",
            "Time a request was held for an endpoint of a Service scaled to zero.",
        )
        .buckets(vec![
            0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0,
        ]),
        &["namespace", "service"],
    ))
});

/// Sets how many requests to the Service `key` are held.
pub fn waiting((namespace, service): &(String, String), n: u64) {
    if let Some(w) = WAITING.as_ref() {
        w.with_label_values(&[namespace, service])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// Records that a request to the Service `key` was held for `took`.
pub fn waited((namespace, service): &(String, String), took: Duration) {
    if let Some(w) = WAIT.as_ref() {
        w.with_label_values(&[namespace, service])
            .observe(took.as_secs_f64());
    }
}

/// Counts one answered request.
pub fn observe(
    namespace: &str,
    ingress: &str,
    service: &str,
    code: http::StatusCode,
    took: Duration,
) {
    if let Some(r) = REQUESTS.as_ref() {
        r.with_label_values(&[namespace, ingress, service, code.as_str()])
            .inc();
    }
    if let Some(d) = DURATION.as_ref() {
        d.with_label_values(&[namespace, ingress])
            .observe(took.as_secs_f64());
    }
}

/// Forgets the series of Ingresses no longer served (`keep`: those served).
pub fn forget(keep: &std::collections::BTreeSet<(String, String)>) {
    let gone = not_kept(keep, "ingress");
    if let Some(r) = REQUESTS.as_ref() {
        remove_where(r, &gone);
    }
    if let Some(d) = DURATION.as_ref() {
        remove_where(d, &gone);
    }
}

/// Forgets the held-request series of Services no longer counted (`keep`: those
/// counted, by namespace and name).
pub fn forget_activation(keep: &std::collections::BTreeSet<(String, String)>) {
    let gone = not_kept(keep, "service");
    if let Some(w) = WAITING.as_ref() {
        remove_where(w, &gone);
    }
    if let Some(w) = WAIT.as_ref() {
        remove_where(w, &gone);
    }
}

/// Picks the series whose `namespace` and `name_label` are not in `keep` (a series
/// without `name_label` is kept).
fn not_kept<'a>(
    keep: &'a std::collections::BTreeSet<(String, String)>,
    name_label: &'a str,
) -> impl Fn(&[prometheus::proto::LabelPair]) -> Option<Vec<prometheus::proto::LabelPair>> + 'a {
    move |labels| {
        let get = |n: &str| {
            labels
                .iter()
                .find(|l| l.get_name() == n)
                .map(|l| l.get_value().to_string())
                .unwrap_or_default()
        };
        let (ns, name) = (get("namespace"), get(name_label));
        (!name.is_empty() && !keep.contains(&(ns, name))).then(|| labels.to_vec())
    }
}

/// Removes the series of `vec` whose labels `gone` picks.
fn remove_where<T: prometheus::core::MetricVecBuilder>(
    vec: &prometheus::core::MetricVec<T>,
    gone: &dyn Fn(&[prometheus::proto::LabelPair]) -> Option<Vec<prometheus::proto::LabelPair>>,
) {
    use prometheus::core::Collector;
    for family in vec.collect() {
        for m in family.get_metric() {
            if let Some(labels) = gone(m.get_label()) {
                let values: std::collections::HashMap<&str, &str> = labels
                    .iter()
                    .map(|l| (l.get_name(), l.get_value()))
                    .collect();
                let _ = vec.remove(&values);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// The value of `rk8s_ingress_requests_total` with these labels in the default
    /// registry's exposition (`None`: no such series).
    fn scraped(labels: &str) -> Option<f64> {
        scraped_as("rk8s_ingress_requests_total", labels)
    }

    /// The value of the series `name{labels}` (`None`: no such series).
    fn scraped_as(name: &str, labels: &str) -> Option<f64> {
        let families = prometheus::default_registry().gather();
        let mut text = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &families, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        let line = format!("{name}{{{labels}}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&line))
            .map(|v| v.parse().unwrap())
    }

    #[test]
    fn requests_are_counted_by_ingress_service_and_code_and_forgotten_with_the_ingress() {
        // Names of this test's own; another test's table swap may forget them
        // between the count and the scrape, so a fresh name is tried again.
        let mut counted = None;
        for attempt in 0..20 {
            let ingress = format!("metrics-test-{attempt}");
            let code = http::StatusCode::SERVICE_UNAVAILABLE;
            for ms in [3, 4] {
                let took = Duration::from_millis(ms);
                observe("metrics-ns", &ingress, "svc", code, took);
            }
            let labels =
                format!(r#"code="503",ingress="{ingress}",namespace="metrics-ns",service="svc""#);
            if scraped(&labels) == Some(2.0) {
                counted = Some(labels);
                break;
            }
        }
        let labels = counted.expect("rk8s_ingress_requests_total counts each request");
        forget(&[("metrics-ns".to_string(), "other".to_string())].into());
        assert_eq!(scraped(&labels), None);
    }

    #[test]
    fn the_held_request_series_of_a_service_no_longer_counted_are_forgotten() {
        let kept = ("metrics-act".to_string(), "kept".to_string());
        let gone = ("metrics-act".to_string(), "gone".to_string());
        waiting(&kept, 1);
        waiting(&gone, 2);
        forget_activation(&[kept].into());
        let series = |s: &str| format!(r#"namespace="metrics-act",service="{s}""#);
        assert_eq!(
            scraped_as("rk8s_ingress_activation_waiting", &series("gone")),
            None
        );
        // Another test's swap may forget "kept" too; "gone" must be gone.
    }
}

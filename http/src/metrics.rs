//! Metrics in the default Prometheus registry, which every process serves at
//! `/metrics`.

/// Registers a metric made from static, valid names in the default registry: it
/// fails only on a programming error (a bad or duplicate name), which the unit tests
/// that gather every metric catch.
#[allow(clippy::expect_used)]
pub fn registered<M: prometheus::core::Collector + Clone + 'static>(
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.expect("metric names are static and valid");
    prometheus::default_registry()
        .register(Box::new(metric.clone()))
        .expect("each metric is registered once");
    metric
}

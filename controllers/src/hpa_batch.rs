//! The HPAs' metrics read in batches: one resource-metrics read per namespace (all its
//! pods) and one query per distinct PromQL expression per sync round, shared by every
//! HPA that needs it, instead of a read per HPA. kube-controller-manager reads
//! once per HPA; with many HPAs on the same metric that is many identical reads of
//! metrics-server and Prometheus every period. The supervisor syncs all HPAs together
//! (one round per sync period, [`crate::hpa_actor`]), so a round's reads overlap and
//! are made once; a sync outside the rounds (a new or changed HPA) reuses a read made
//! less than half a period ago, or reads anew.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use rk8s_api::metrics::{MetricsList, PodMetrics};

use crate::promql::{Prometheus, Sample};

/// A read under way or done, shared by everyone who asks for it.
type Read<T> = Shared<BoxFuture<'static, Result<Arc<T>, String>>>;

/// Reads by key, each made at most once while it is fresh: who asks for a key while
/// its read is under way waits for that read; who asks later gets its answer (a
/// failure too: a metrics source that is down is asked once per round, not once per
/// HPA).
pub(crate) struct Coalesced<K, T> {
    fresh_for: Duration,
    reads: Mutex<HashMap<K, (Instant, Read<T>)>>,
}

impl<K: Hash + Eq, T: Send + Sync + 'static> Coalesced<K, T> {
    /// Reads that stay fresh for `fresh_for` after they start.
    pub(crate) fn new(fresh_for: Duration) -> Self {
        Coalesced {
            fresh_for,
            reads: Mutex::new(HashMap::new()),
        }
    }

    /// The answer of the fresh read of `key`, or of `read()` started now.
    pub(crate) async fn get(
        &self,
        key: K,
        read: impl FnOnce() -> BoxFuture<'static, Result<T, String>>,
    ) -> Result<Arc<T>, String> {
        let pending = {
            let mut reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            // Stale reads go, so the map holds only what a round still shares.
            reads.retain(|_, (at, _)| now.duration_since(*at) < self.fresh_for);
            reads
                .entry(key)
                .or_insert_with(|| (now, read().map(|r| r.map(Arc::new)).boxed().shared()))
                .1
                .clone()
        };
        pending.await
    }
}

/// `rk8s_hpa_metric_reads_total{source}`: reads of the metrics sources.
fn count(source: &str) {
    crate::metrics::HPA_METRIC_READS
        .with_label_values(&[source])
        .inc();
}

/// The metrics sources of every HPA, read in batches.
pub(crate) struct Batches {
    client: kube::Client,
    prometheus: Option<Prometheus>,
    pods: Coalesced<String, MetricsList<PodMetrics>>,
    queries: Coalesced<String, Vec<Sample>>,
}

impl Batches {
    /// Batches of reads through `client` and of `prometheus`, for HPAs synced every
    /// `period`.
    pub(crate) fn new(
        client: kube::Client,
        prometheus: Option<Prometheus>,
        period: Duration,
    ) -> Self {
        let fresh_for = period / 2;
        Batches {
            client,
            prometheus,
            pods: Coalesced::new(fresh_for),
            queries: Coalesced::new(fresh_for),
        }
    }

    /// The resource metrics of every pod in `namespace` (`metrics.k8s.io`).
    pub(crate) async fn pod_metrics(
        &self,
        namespace: &str,
    ) -> Result<Arc<MetricsList<PodMetrics>>, String> {
        let client = self.client.clone();
        let path = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods");
        self.pods
            .get(namespace.to_string(), move || {
                async move {
                    count("resource-metrics");
                    let req = http::Request::get(path)
                        .body(Vec::new())
                        .map_err(|e| e.to_string())?;
                    client.request(req).await.map_err(|e| e.to_string())
                }
                .boxed()
            })
            .await
    }

    /// Whether a Prometheus server is configured.
    pub(crate) fn prometheus(&self) -> Result<&Prometheus, String> {
        self.prometheus.as_ref().ok_or_else(|| {
            "no Prometheus to read the metric from: start rk8s-server with --prometheus-url".into()
        })
    }

    /// The samples of `query` now.
    pub(crate) async fn query(&self, query: &str) -> Result<Arc<Vec<Sample>>, String> {
        let prometheus = self.prometheus()?.clone();
        let q = query.to_string();
        self.queries
            .get(query.to_string(), move || {
                async move {
                    count("prometheus");
                    prometheus.query(&q).await
                }
                .boxed()
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn counting(
        reads: &Arc<AtomicUsize>,
        answer: u32,
    ) -> impl FnOnce() -> BoxFuture<'static, Result<u32, String>> {
        let reads = reads.clone();
        move || {
            async move {
                reads.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(answer)
            }
            .boxed()
        }
    }

    #[tokio::test]
    async fn asks_under_way_or_fresh_share_one_read_per_key() {
        let batch: Coalesced<&str, u32> = Coalesced::new(Duration::from_secs(60));
        let reads = Arc::new(AtomicUsize::new(0));
        let asks =
            (0..20).map(|i| batch.get(if i % 2 == 0 { "a" } else { "b" }, counting(&reads, i)));
        let answers = futures_util::future::join_all(asks).await;
        assert_eq!(reads.load(Ordering::SeqCst), 2, "one read per key");
        // Everyone got the answer of the first ask of their key.
        for (i, a) in answers.iter().enumerate() {
            assert_eq!(**a.as_ref().unwrap(), (i % 2) as u32);
        }
        assert_eq!(*batch.get("a", counting(&reads, 99)).await.unwrap(), 0);
        assert_eq!(
            reads.load(Ordering::SeqCst),
            2,
            "a done read is reused while fresh"
        );
    }

    #[tokio::test]
    async fn a_stale_read_is_made_again_and_failures_are_shared_too() {
        let batch: Coalesced<(), u32> = Coalesced::new(Duration::from_millis(50));
        let reads = Arc::new(AtomicUsize::new(0));
        assert_eq!(*batch.get((), counting(&reads, 1)).await.unwrap(), 1);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(*batch.get((), counting(&reads, 2)).await.unwrap(), 2);
        assert_eq!(reads.load(Ordering::SeqCst), 2);

        let failing = Coalesced::<(), u32>::new(Duration::from_secs(60));
        let fails = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let fails = fails.clone();
            let e = failing
                .get((), move || {
                    async move {
                        fails.fetch_add(1, Ordering::SeqCst);
                        Err("down".to_string())
                    }
                    .boxed()
                })
                .await;
            assert_eq!(e.unwrap_err(), "down");
        }
        assert_eq!(fails.load(Ordering::SeqCst), 1);
    }
}

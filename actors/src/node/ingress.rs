//! The node's Ingress proxy ([`rk8s_ingress`]) kept in step with the API: it watches
//! Ingresses and IngressClasses, reads the Services and EndpointSlices the cluster
//! network watches already ([`super::network::keep`]; the endpoints chosen as the
//! Service proxy chooses them, [`super::proxy::tcp_endpoints`]), and swaps a new
//! table in after each change ([`SETTLE`] after it): requests and connections under
//! way keep the table they started with. What the table takes of an Ingress alone
//! (its compiled paths) is reused while its resourceVersion stays, so a change of
//! endpoints compiles nothing again.
//!
//! The TLS Secrets the served Ingresses name are fetched apart from the table
//! ([`fetch_secrets`]): by GET, [`MAX_FETCHES`] at a time, again every
//! [`SECRET_REFRESH`]; one that could not be read is tried again after
//! [`SECRET_RETRY`], doubling up to [`SECRET_REFRESH`] (a cert-manager Secret made
//! after its Ingress is served within seconds). The table swaps with the
//! certificates known; each batch fetched swaps the certificates in.
//!
//! The listeners (`--ingress-http-port`, `--ingress-https-port`, 0: off) bind every
//! address; a port that cannot be bound is reported and tried again with backoff,
//! and the agent runs on meanwhile. They and their connections run on threads of
//! their own ([`DataPlane`]), not on the agent's actor thread: the traffic uses
//! every core, and never delays what the agent does for its pods.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::{Mutex, PoisonError};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use rk8s_ingress::proxy::{Limits, Ports, Proxy};
use rk8s_ingress::table::{Cluster, Compiled, Table};
use rk8s_ingress::tls::{self, Certificates};
use rustls::sign::CertifiedKey;

use super::proxy::{SlicesByService, slices_by_service, tcp_endpoints};

/// How long changes are gathered before the table is rebuilt.
pub const SETTLE: Duration = Duration::from_millis(100);
/// How often a TLS Secret is fetched again.
pub const SECRET_REFRESH: Duration = Duration::from_secs(60);
/// How soon a Secret that could not be read is tried again (then doubling).
pub const SECRET_RETRY: Duration = Duration::from_secs(5);
/// The most Secret GETs under way at once.
pub const MAX_FETCHES: usize = 8;
/// The longest one Secret GET takes.
const SECRET_TIMEOUT: Duration = Duration::from_secs(10);

/// The Services and endpoints as the node's watches hold them.
struct Watched<'a> {
    services: &'a Store<Service>,
    by_service: SlicesByService,
}

impl Cluster for Watched<'_> {
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>> {
        self.services.get(&ObjectRef::new(name).within(namespace))
    }

    fn endpoints(&self, namespace: &str, service: &str, port: Option<&str>) -> Vec<SocketAddr> {
        let slices = self
            .by_service
            .get(&(namespace.to_string(), service.to_string()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        tcp_endpoints(slices, port)
            .into_iter()
            .map(SocketAddr::V4)
            .collect()
    }
}

/// A TLS Secret as last fetched.
struct Fetched {
    /// When to fetch it again.
    next: Instant,
    /// Failures in a row.
    failures: u32,
    /// The certificate, or why there is none.
    key: Result<Arc<CertifiedKey>, String>,
}

/// A Secret by namespace and name.
type SecretKey = (String, String);
/// The Secrets fetched, shared by the fetcher and the loop that swaps them in.
type Fetches = Arc<Mutex<BTreeMap<SecretKey, Fetched>>>;

/// Runs the proxy on `ports` until the task is dropped (holding requests to Services
/// that wake on request in `activation`), reading the Services and
/// EndpointSlices of `services`/`slices` (told of their changes through `changed`).
pub async fn keep(
    client: kube::Client,
    (ports, activation): (Ports, Arc<rk8s_ingress::activation::Activation>),
    (services, slices): (Store<Service>, Store<EndpointSlice>),
    changed: Arc<tokio::sync::Notify>,
) {
    if ports.http == 0 && ports.https == 0 {
        return;
    }
    let default = match tls::fake_certificate() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("no Ingress proxy on this node: {e}");
            return;
        }
    };
    let proxy = Proxy::with_activation(ports, default.clone(), Limits::default(), activation);
    let data_plane = DataPlane::start();
    let mut listeners = Vec::new();
    for (port, tls) in [(ports.http, false), (ports.https, true)] {
        if port != 0 {
            let listen = proxy.clone().listen(port, tls, move |e| {
                tracing::warn!(
                    port,
                    "the Ingress proxy cannot listen yet (trying again): {e}"
                );
            });
            listeners.push(AbortOnDrop(data_plane.handle().spawn(listen)));
        }
    }
    let (ingresses, ingresses_w) = reflector::store::<Ingress>();
    let (classes, classes_w) = reflector::store::<IngressClass>();
    let ingress_events = super::network::watched(&client, ingresses_w);
    let class_events = super::network::watched(&client, classes_w);
    let mut events = std::pin::pin!(futures_util::stream::select(ingress_events, class_events));
    let fetches: Fetches = Arc::default();
    let (wanted, wanted_rx) = tokio::sync::watch::channel(BTreeSet::new());
    let fetched = Arc::new(tokio::sync::Notify::new());
    let fetcher = tokio::spawn(fetch_secrets(
        client.clone(),
        wanted_rx,
        fetches.clone(),
        fetched.clone(),
    ));
    let _fetcher = AbortOnDrop(fetcher);
    let mut compiled = Compiled::default();
    let mut warned = BTreeSet::new();
    loop {
        tokio::select! {
            e = events.next() => if e.is_none() { return },
            () = changed.notified() => {}
            () = fetched.notified() => {
                proxy.set_certificates(certificates(&default, &proxy.table(), &fetches));
                continue;
            }
        }
        let deadline = tokio::time::sleep(SETTLE);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                e = events.next() => if e.is_none() { return },
                () = &mut deadline => break,
            }
        }
        let cluster = Watched {
            services: &services,
            by_service: slices_by_service(&slices),
        };
        let table = Table::build_with(
            &mut compiled,
            &ingresses.state(),
            &classes.state(),
            &cluster,
        );
        let now: BTreeSet<String> = table.warnings.iter().cloned().collect();
        for w in now.difference(&warned) {
            tracing::warn!("{w}");
        }
        warned = now;
        let named: BTreeSet<SecretKey> = table
            .tls
            .iter()
            .map(|t| (t.namespace.clone(), t.secret.clone()))
            .collect();
        wanted.send_if_modified(|w| {
            let new = *w != named;
            *w = named;
            new
        });
        let certificates = certificates(&default, &table, &fetches);
        proxy.set(table, certificates);
    }
}

/// Aborts the task when dropped (the fetcher ends with the proxy's loop).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

/// The threads the proxy's listeners and connections run on: a runtime with a worker
/// per two cores (1 to 4; the node's pods keep the other cores — on 2 cores a second
/// worker made the proxy slower, docs/benchmarks.md "Ingress"), named `ingress`;
/// shut down, without waiting for its connections, when the proxy's task ends. Where
/// it cannot be made, the agent's own runtime serves.
struct DataPlane(Option<tokio::runtime::Runtime>);

impl DataPlane {
    fn start() -> DataPlane {
        let workers = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).clamp(1, 4));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("ingress")
            .enable_all()
            .build()
            .inspect_err(|e| {
                tracing::warn!("the Ingress proxy runs on the agent's thread: {e}");
            })
            .ok();
        DataPlane(runtime)
    }

    fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(runtime) => runtime.handle().clone(),
            None => tokio::runtime::Handle::current(),
        }
    }
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The certificates of `table`'s Secrets among those fetched.
fn certificates(default: &Arc<CertifiedKey>, table: &Table, fetches: &Fetches) -> Certificates {
    let fetched = fetches.lock().unwrap_or_else(PoisonError::into_inner);
    let mut certificates = Certificates::new(default.clone());
    for entry in &table.tls {
        let key = (entry.namespace.clone(), entry.secret.clone());
        if let Some(Fetched { key: Ok(k), .. }) = fetched.get(&key) {
            certificates.add(&entry.hosts, k);
        }
    }
    certificates
}

/// Keeps `fetches` to the Secrets `wanted` names: each fetched when first named,
/// again when due ([`SECRET_REFRESH`], or [`SECRET_RETRY`] doubling after a
/// failure), [`MAX_FETCHES`] at a time; `fetched` is told after each batch.
async fn fetch_secrets(
    client: kube::Client,
    mut wanted: tokio::sync::watch::Receiver<BTreeSet<SecretKey>>,
    fetches: Fetches,
    fetched: Arc<tokio::sync::Notify>,
) {
    loop {
        let named = wanted.borrow_and_update().clone();
        let now = Instant::now();
        let (due, next) = {
            let mut all = fetches.lock().unwrap_or_else(PoisonError::into_inner);
            all.retain(|k, _| named.contains(k));
            let due: Vec<SecretKey> = named
                .iter()
                .filter(|k| all.get(*k).is_none_or(|f| f.next <= now))
                .cloned()
                .collect();
            let next = all.values().map(|f| f.next).min();
            (due, next)
        };
        if !due.is_empty() {
            let got: Vec<(SecretKey, Result<Arc<CertifiedKey>, Failure>)> =
                futures_util::stream::iter(due)
                    .map(|key| {
                        let client = client.clone();
                        async move {
                            let got = fetch(&client, &key).await;
                            (key, got)
                        }
                    })
                    .buffer_unordered(MAX_FETCHES)
                    .collect()
                    .await;
            let mut all = fetches.lock().unwrap_or_else(PoisonError::into_inner);
            for (key, got) in got {
                let before = all.remove(&key);
                all.insert(key.clone(), record(&key, before, got));
            }
            drop(all);
            fetched.notify_one();
            continue;
        }
        let wait = next.map_or(SECRET_REFRESH, |n| n.saturating_duration_since(now));
        tokio::select! {
            r = wanted.changed() => if r.is_err() { return },
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Why a Secret gave no certificate.
enum Failure {
    /// It is gone, or holds no usable certificate: the default is served.
    Unusable(String),
    /// It could not be read now: a certificate read before is served on.
    Unreachable(String),
}

/// One GET of the Secret `key` and its certificate.
async fn fetch(
    client: &kube::Client,
    (namespace, name): &SecretKey,
) -> Result<Arc<CertifiedKey>, Failure> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match tokio::time::timeout(SECRET_TIMEOUT, api.get(name)).await {
        Err(_) => Err(Failure::Unreachable("timed out".to_string())),
        Ok(Err(kube::Error::Api(e))) if e.code == 404 || e.code == 403 => {
            Err(Failure::Unusable(e.message))
        }
        Ok(Err(e)) => Err(Failure::Unreachable(e.to_string())),
        Ok(Ok(secret)) => certificate(&secret).map_err(Failure::Unusable),
    }
}

/// What is known of the Secret `key` after a fetch that `got` this.
fn record(
    (namespace, name): &SecretKey,
    before: Option<Fetched>,
    got: Result<Arc<CertifiedKey>, Failure>,
) -> Fetched {
    let now = Instant::now();
    let failed_before = before.as_ref().is_some_and(|f| f.failures > 0);
    let (message, key) = match got {
        Ok(k) => {
            return Fetched {
                next: now + SECRET_REFRESH,
                failures: 0,
                key: Ok(k),
            };
        }
        Err(Failure::Unusable(e)) => (e.clone(), Err(e)),
        Err(Failure::Unreachable(e)) => match before.as_ref().map(|f| &f.key) {
            Some(Ok(k)) => (e, Ok(k.clone())),
            _ => (e.clone(), Err(e)),
        },
    };
    if !failed_before {
        tracing::warn!(
            "ingress TLS secret {namespace}/{name}: {message}; {}",
            if key.is_ok() {
                "the certificate read before is served on"
            } else {
                "the default certificate is served instead"
            }
        );
    }
    let failures = before.map_or(0, |f| f.failures).saturating_add(1);
    let backoff = SECRET_RETRY
        .saturating_mul(1 << failures.saturating_sub(1).min(4))
        .min(SECRET_REFRESH);
    Fetched {
        next: now + backoff,
        failures,
        key,
    }
}

/// The certificate of a `kubernetes.io/tls` Secret.
fn certificate(secret: &Secret) -> Result<Arc<CertifiedKey>, String> {
    let data = secret.data.as_ref();
    let field = |name: &str| {
        data.and_then(|d| d.get(name))
            .map(|b| b.0.as_slice())
            .ok_or_else(|| format!("no {name}"))
    };
    tls::certified_key(field("tls.crt")?, field("tls.key")?).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::rt::TokioIo;

    /// An API server on loopback answering each Secret GET after 300 ms (404 for
    /// `missing`), and the most GETs it had under way at once.
    async fn slow_api() -> (kube::Client, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = listener.local_addr().unwrap();
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let seen = most.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (now, most) = (now.clone(), most.clone());
                let service = hyper::service::service_fn(move |req: http::Request<_>| {
                    let (now, most) = (now.clone(), most.clone());
                    async move {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        now.fetch_sub(1, Ordering::SeqCst);
                        let name = req
                            .uri()
                            .path()
                            .rsplit('/')
                            .next()
                            .unwrap_or_default()
                            .to_string();
                        let (code, body) = if name == "missing" {
                            (
                                404,
                                serde_json::json!({"kind": "Status", "apiVersion": "v1",
                                "status": "Failure", "reason": "NotFound", "code": 404,
                                "message": "secrets \"missing\" not found"}),
                            )
                        } else {
                            (
                                200,
                                serde_json::json!({"kind": "Secret", "apiVersion": "v1",
                                "metadata": {"name": name, "namespace": "default"},
                                "type": "kubernetes.io/tls"}),
                            )
                        };
                        let mut r = http::Response::new(Full::new(Bytes::from(body.to_string())));
                        *r.status_mut() = http::StatusCode::from_u16(code).unwrap();
                        r.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/json"),
                        );
                        Ok::<_, Infallible>(r)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        let config = kube::Config::new(format!("http://{at}").parse().unwrap());
        (kube::Client::try_from(config).unwrap(), seen)
    }

    #[tokio::test]
    async fn secrets_are_fetched_at_once_and_a_missing_one_is_retried_soon() {
        let (client, most) = slow_api().await;
        let fetches = Fetches::default();
        let (wanted, rx) = tokio::sync::watch::channel(BTreeSet::new());
        let fetched = Arc::new(tokio::sync::Notify::new());
        let task = AbortOnDrop(tokio::spawn(fetch_secrets(
            client,
            rx,
            fetches.clone(),
            fetched.clone(),
        )));
        let names: BTreeSet<SecretKey> = ["a", "b", "c", "d", "missing"]
            .into_iter()
            .map(|n| ("default".to_string(), n.to_string()))
            .collect();
        let started = Instant::now();
        wanted.send_replace(names);
        tokio::time::timeout(Duration::from_secs(5), fetched.notified())
            .await
            .unwrap();
        // Five GETs of 300 ms one after another would take 1.5 s.
        assert!(
            started.elapsed() < Duration::from_millis(1200),
            "{:?}",
            started.elapsed()
        );
        assert!(most.load(Ordering::SeqCst) >= 2);
        let all = fetches.lock().unwrap();
        assert_eq!(all.len(), 5);
        let missing = &all[&("default".to_string(), "missing".to_string())];
        assert!(missing.key.is_err());
        assert!(missing.next <= Instant::now() + SECRET_RETRY);
        drop(task);
    }

    #[test]
    fn failures_are_retried_with_backoff_and_a_known_certificate_is_kept() {
        let key = ("default".to_string(), "s".to_string());
        let gone = || Err(Failure::Unusable("not found".into()));
        let start = Instant::now();
        let first = record(&key, None, gone());
        assert_eq!(first.failures, 1);
        assert!(first.next < start + SECRET_RETRY + Duration::from_secs(1));
        let mut f = first;
        for _ in 0..10 {
            f = record(&key, Some(f), gone());
        }
        assert!(f.next > Instant::now() + SECRET_REFRESH - Duration::from_secs(1));
        assert!(f.next <= Instant::now() + SECRET_REFRESH);
        // A certificate read before is served on while the API cannot be reached.
        let cert = rk8s_ingress::tls::fake_certificate().unwrap();
        let ok = record(&key, None, Ok(cert));
        assert_eq!(ok.failures, 0);
        let slow = record(
            &key,
            Some(ok),
            Err(Failure::Unreachable("timed out".into())),
        );
        assert!(slow.key.is_ok() && slow.failures == 1);
        assert!(slow.next < Instant::now() + SECRET_RETRY + Duration::from_secs(1));
    }
}

//! The node's Ingress proxy ([`rk8s_ingress`]) kept in step with the API: it watches
//! Ingresses and IngressClasses, reads the Services and EndpointSlices the cluster
//! network watches already ([`super::network::keep`]; the endpoints chosen as the
//! Service proxy chooses them, [`super::proxy::tcp_endpoints`]), fetches the TLS
//! Secrets the served Ingresses name (each by GET, again every [`SECRET_REFRESH`]),
//! and swaps a new table in after each change ([`SETTLE`] after it): requests and
//! connections under way keep the table they started with.
//!
//! The listeners (`--ingress-http-port`, `--ingress-https-port`, 0: off) bind every
//! address; a port that cannot be bound is reported and tried again with backoff,
//! and the agent runs on meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use rk8s_ingress::proxy::{Ports, Proxy};
use rk8s_ingress::table::{Cluster, Table};
use rk8s_ingress::tls::{self, Certificates};
use rustls::sign::CertifiedKey;

use super::proxy::{SlicesByService, slices_by_service, tcp_endpoints};

/// How long changes are gathered before the table is rebuilt.
pub const SETTLE: Duration = Duration::from_millis(100);
/// How often a TLS Secret is fetched again.
pub const SECRET_REFRESH: Duration = Duration::from_secs(60);
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
    at: Instant,
    /// The certificate, or why there is none.
    key: Result<Arc<CertifiedKey>, String>,
}

/// Runs the proxy on `ports` until the task is dropped, reading the Services and
/// EndpointSlices of `services`/`slices` (told of their changes through `changed`).
pub async fn keep(
    client: kube::Client,
    ports: Ports,
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
    let proxy = Proxy::new(ports, default.clone());
    for (port, tls) in [(ports.http, false), (ports.https, true)] {
        if port != 0 {
            tokio::spawn(proxy.clone().listen(port, tls, move |e| {
                tracing::warn!(
                    port,
                    "the Ingress proxy cannot listen yet (trying again): {e}"
                );
            }));
        }
    }
    let (ingresses, ingresses_w) = reflector::store::<Ingress>();
    let (classes, classes_w) = reflector::store::<IngressClass>();
    let config = watcher::Config::default;
    let ingress_events = reflector::reflector(
        ingresses_w,
        watcher::watcher(Api::<Ingress>::all(client.clone()), config()),
    )
    .default_backoff()
    .map(|_| ());
    let class_events = reflector::reflector(
        classes_w,
        watcher::watcher(Api::<IngressClass>::all(client.clone()), config()),
    )
    .default_backoff()
    .map(|_| ());
    let mut events = std::pin::pin!(futures_util::stream::select(ingress_events, class_events));
    let mut secrets: BTreeMap<(String, String), Fetched> = BTreeMap::new();
    let mut warned = BTreeSet::new();
    let mut refresh = tokio::time::interval(SECRET_REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            e = events.next() => if e.is_none() { return },
            () = changed.notified() => {}
            _ = refresh.tick() => {}
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
        let table = Table::build(&ingresses.state(), &classes.state(), &cluster);
        let now: BTreeSet<String> = table.warnings.iter().cloned().collect();
        for w in now.difference(&warned) {
            tracing::warn!("{w}");
        }
        warned = now;
        fetch_secrets(&client, &table, &mut secrets).await;
        let mut certificates = Certificates::new(default.clone());
        for entry in &table.tls {
            let key = (entry.namespace.clone(), entry.secret.clone());
            if let Some(Fetched { key: Ok(k), .. }) = secrets.get(&key) {
                certificates.add(&entry.hosts, k);
            }
        }
        proxy.set(table, certificates);
    }
}

/// Fetches the Secrets `table` names that are missing or older than
/// [`SECRET_REFRESH`], and forgets those it no longer names.
async fn fetch_secrets(
    client: &kube::Client,
    table: &Table,
    secrets: &mut BTreeMap<(String, String), Fetched>,
) {
    let named: BTreeSet<(String, String)> = table
        .tls
        .iter()
        .map(|t| (t.namespace.clone(), t.secret.clone()))
        .collect();
    secrets.retain(|k, _| named.contains(k));
    for (namespace, name) in named {
        let key = (namespace.clone(), name.clone());
        if secrets
            .get(&key)
            .is_some_and(|f| f.at.elapsed() < SECRET_REFRESH)
        {
            continue;
        }
        let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        let got = tokio::time::timeout(SECRET_TIMEOUT, api.get(&name)).await;
        let key_of = match got {
            Err(_) => Err("timed out".to_string()),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(secret)) => certificate(&secret),
        };
        let before = secrets.get(&key).map(|f| f.key.is_ok());
        if let Err(e) = &key_of
            && before != Some(false)
        {
            tracing::warn!(
                "ingress TLS secret {namespace}/{name}: {e}; the default certificate is served instead"
            );
        }
        secrets.insert(
            key,
            Fetched {
                at: Instant::now(),
                key: key_of,
            },
        );
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

//! The route table: every served Ingress's rules, built at once from the
//! Ingresses, IngressClasses, Services and endpoints (pure: the caller passes them),
//! and read by each request ([`Table::route`]).
//!
//! - **Servers.** Rules are grouped by host as ingress-nginx groups them into
//!   servers: a request goes to the server of its exact host, else of the wildcard
//!   `*.` + its parent domain, else to the server of the rules without a host.
//! - **Paths.** A request's path is matched normalised ([`routes::normalize_path`];
//!   one that climbs above `/` is refused). Within a server the longest path wins
//!   (its length without a trailing slash); at equal length Exact beats Prefix,
//!   which beats a regular expression; the same path in two Ingresses goes to the
//!   oldest (creationTimestamp, then namespace/name), as in ingress-nginx.
//! - **TLS.** Only servers that rules made get TLS (the redirect to https, a
//!   certificate), after all rules are in, and only from the `spec.tls` of an
//!   Ingress that has a rule for the host (ingress-nginx's `createServers`): a host
//!   listed under `spec.tls` alone makes no server and takes no other Ingress's.
//! - **Default backends.** A server with no path matched answers with the
//!   `spec.defaultBackend` of its oldest Ingress that has one; else with the
//!   cluster's default backend — the `defaultBackend` of the oldest served Ingress
//!   without rules; else 404.
//! - **Backends.** `service.port.number|name` names a port of the Service; that
//!   port's name selects the EndpointSlices' port ([`Cluster::endpoints`]).
//!   `backend.resource` is not served (503).
//!
//! What depends on an Ingress alone (its annotations, its paths compiled, regular
//! expressions included) is kept between builds by its resourceVersion
//! ([`Compiled`]): a build after endpoints changed compiles nothing again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass, IngressTLS};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::annotations::{self, Options};
use crate::routes::{self, Matcher};

/// What the table reads of the cluster besides Ingresses and classes.
pub trait Cluster {
    /// The Service `namespace/name`.
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>>;
    /// The endpoints of the Service's port named `port` (`None`: unnamed) that take
    /// new connections (ready ones, else serving terminating ones), TCP.
    fn endpoints(&self, namespace: &str, service: &str, port: Option<&str>) -> Vec<SocketAddr>;
}

/// Where a route sends requests.
#[derive(Debug)]
pub enum Target {
    /// These endpoints, in turn (none: 503).
    Endpoints(Vec<SocketAddr>),
    /// No such Service or port (503).
    Missing(String),
    /// `backend.resource`, which rk8s' proxy does not serve (503).
    Resource,
}

/// One backend of one Ingress.
#[derive(Debug)]
pub struct Backend {
    /// The Ingress's namespace.
    pub namespace: String,
    /// The Ingress's name.
    pub ingress: String,
    /// The Service's name (empty for a resource backend).
    pub service: String,
    /// Its endpoints.
    pub target: Target,
    /// The Ingress's annotations.
    pub options: Arc<Options>,
    /// How long a request waits while there are no endpoints (the Service's
    /// `scale.rk8s.io/activation-timeout`: its Deployment wakes on request); `None`:
    /// 503 at once.
    pub hold: Option<std::time::Duration>,
    next: AtomicUsize,
}

impl Backend {
    /// Whether its Service exists with the port asked for but has no endpoint yet
    /// (what a held request waits out; a missing Service or port does not wake).
    pub fn cold(&self) -> bool {
        matches!(&self.target, Target::Endpoints(all) if all.is_empty())
    }

    /// Whether its Service or the port asked for is missing (no pod can answer).
    pub fn missing(&self) -> bool {
        matches!(&self.target, Target::Missing(_))
    }

    /// Its Service, by namespace and name.
    pub fn key(&self) -> (String, String) {
        (self.namespace.clone(), self.service.clone())
    }

    /// The next endpoint, round robin; `None` when there is none.
    pub fn pick(&self) -> Option<SocketAddr> {
        let Target::Endpoints(all) = &self.target else {
            return None;
        };
        if all.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        all.get(n % all.len()).copied()
    }
}

/// The order of Ingresses when two claim the same route: the oldest first.
type Age = (Option<Time>, String, String);

struct Rule {
    matcher: Matcher,
    /// The path's length, then Exact (0) before Prefix (1) before regex (2).
    rank: (std::cmp::Reverse<usize>, u8),
    age: Age,
    backend: Arc<Backend>,
}

#[derive(Default)]
struct Server {
    rules: Vec<Rule>,
    /// The oldest defaultBackend among its Ingresses.
    default: Option<(Age, Arc<Backend>)>,
    /// A served Ingress lists this host under `spec.tls`.
    tls: bool,
}

/// A Secret an Ingress names for hosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSecret {
    /// The Ingress's namespace (the Secret's).
    pub namespace: String,
    /// The Secret's name.
    pub secret: String,
    /// The hosts (lower case; `*.` wildcards allowed).
    pub hosts: Vec<String>,
}

/// What a request is answered with.
#[derive(Debug)]
pub enum Route<'a> {
    /// Sent to `backend` with `path` (with the query, rewritten if asked).
    Backend {
        /// The backend.
        backend: &'a Arc<Backend>,
        /// The path and query sent to the pod.
        path: String,
    },
    /// Plain HTTP to a host with TLS: 308 to https.
    Redirect,
    /// The path climbs above `/`: 400.
    BadPath,
    /// No rule and no default backend: 404.
    NotFound,
}

/// The table of one moment.
#[derive(Default)]
pub struct Table {
    exact: HashMap<String, Server>,
    wildcard: HashMap<String, Server>,
    any_host: Server,
    default: Option<(Age, Arc<Backend>)>,
    /// The Secrets of the served Ingresses' `spec.tls`, oldest Ingress first.
    pub tls: Vec<TlsSecret>,
    /// The served Ingresses (`namespace`, `name`).
    pub served: Vec<(String, String)>,
    /// What was wrong with the Ingresses (annotations, paths), one sentence each.
    pub warnings: Vec<String>,
}

fn age(ingress: &Ingress) -> Age {
    let m = &ingress.metadata;
    (
        m.creation_timestamp.clone(),
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

/// The backend `spec` of the Ingress `namespace/name`.
fn backend(
    (namespace, name): (&str, &str),
    spec: &IngressBackend,
    options: &Arc<Options>,
    cluster: &dyn Cluster,
) -> Arc<Backend> {
    let (service, target, hold) = match &spec.service {
        None => (String::new(), Target::Resource, None),
        Some(s) => {
            let hold = cluster.service(namespace, &s.name).and_then(|svc| {
                rk8s_api::activation::service_hold(svc.metadata.annotations.as_ref())
            });
            (s.name.clone(), service_target(namespace, s, cluster), hold)
        }
    };
    Arc::new(Backend {
        namespace: namespace.to_string(),
        ingress: name.to_string(),
        service,
        target,
        options: options.clone(),
        hold,
        next: AtomicUsize::new(0),
    })
}

fn service_target(
    namespace: &str,
    s: &k8s_openapi::api::networking::v1::IngressServiceBackend,
    cluster: &dyn Cluster,
) -> Target {
    let Some(svc) = cluster.service(namespace, &s.name) else {
        return Target::Missing(format!("service {namespace}/{} not found", s.name));
    };
    let wanted = s.port.as_ref();
    let port = svc
        .spec
        .as_ref()
        .and_then(|spec| spec.ports.as_ref())
        .and_then(|ports| {
            ports.iter().find(|p| match wanted {
                Some(w) => match (&w.name, w.number) {
                    (Some(n), _) if !n.is_empty() => p.name.as_deref() == Some(n.as_str()),
                    (_, Some(number)) => p.port == number,
                    _ => false,
                },
                None => false,
            })
        });
    match port {
        Some(p) if p.protocol.as_deref().unwrap_or("TCP") == "TCP" => {
            Target::Endpoints(cluster.endpoints(namespace, &s.name, p.name.as_deref()))
        }
        _ => Target::Missing(format!(
            "service {namespace}/{} has no such TCP port",
            s.name
        )),
    }
}

/// A path of a rule, compiled.
struct CompiledPath {
    matcher: Matcher,
    rank: (std::cmp::Reverse<usize>, u8),
    backend: IngressBackend,
}

/// What the table takes of one Ingress that does not depend on the cluster.
pub struct Parts {
    version: Option<String>,
    options: Arc<Options>,
    warnings: Vec<String>,
    default: Option<IngressBackend>,
    /// Each rule's host (lower case; `None`: any) and paths.
    rules: Vec<(Option<String>, Vec<CompiledPath>)>,
    tls: Vec<IngressTLS>,
}

impl Parts {
    fn of(ingress: &Ingress) -> Parts {
        let (options, mut warnings) = annotations::parse(ingress.metadata.annotations.as_ref());
        let spec = ingress.spec.as_ref();
        let mut rules = Vec::new();
        for rule in spec.and_then(|s| s.rules.as_deref()).unwrap_or_default() {
            let host = rule
                .host
                .as_deref()
                .filter(|h| !h.is_empty())
                .map(str::to_ascii_lowercase);
            let mut paths = Vec::new();
            for path in rule.http.iter().flat_map(|h| &h.paths) {
                let p = path.path.as_deref().unwrap_or("/");
                // Ranked by the length without a trailing slash: `Exact /foo` is as
                // long as `Prefix /foo/`, and beats it for `/foo`.
                let trimmed = p.trim_end_matches('/').len();
                let (matcher, rank) = match path.path_type.as_str() {
                    "Exact" => (Ok(Matcher::exact(p)), (trimmed, 0)),
                    "ImplementationSpecific" if options.use_regex => {
                        (Matcher::regex(p), (p.len(), 2))
                    }
                    _ => (Ok(Matcher::prefix(p)), (trimmed, 1)),
                };
                match matcher {
                    Ok(matcher) => paths.push(CompiledPath {
                        matcher,
                        rank: (std::cmp::Reverse(rank.0), rank.1),
                        backend: path.backend.clone(),
                    }),
                    Err(e) => warnings.push(e.to_string()),
                }
            }
            rules.push((host, paths));
        }
        Parts {
            version: ingress.metadata.resource_version.clone(),
            options: Arc::new(options),
            warnings,
            default: spec.and_then(|s| s.default_backend.clone()),
            rules,
            tls: spec.and_then(|s| s.tls.clone()).unwrap_or_default(),
        }
    }
}

/// The [`Parts`] of the Ingresses of the last build, by namespace and name, reused
/// while an Ingress's resourceVersion stays the same.
#[derive(Default)]
pub struct Compiled {
    by: HashMap<(String, String), Arc<Parts>>,
    compilations: usize,
}

impl Compiled {
    /// How many Ingresses have been compiled (not reused) so far.
    pub fn compilations(&self) -> usize {
        self.compilations
    }

    fn parts(&mut self, key: &(String, String), ingress: &Ingress) -> Arc<Parts> {
        let version = ingress.metadata.resource_version.as_ref();
        match self.by.get(key) {
            Some(p) if version.is_some() && p.version.as_ref() == version => p.clone(),
            _ => {
                self.compilations += 1;
                Arc::new(Parts::of(ingress))
            }
        }
    }
}

/// Whether the `spec.tls` host `tls` covers the rule host `rule`: the same, or a
/// wildcard over its parent domain (a certificate for `*.example.com` is one for
/// `a.example.com`, as ingress-nginx finds by the certificate's names).
fn covers(tls: &str, rule: &str) -> bool {
    tls == rule
        || routes::wildcard_suffix(tls).is_some_and(|suffix| {
            routes::wildcard_suffix(rule).is_none() && routes::parent(rule) == Some(suffix)
        })
}

/// Keeps the older of two defaults.
fn keep_oldest(slot: &mut Option<(Age, Arc<Backend>)>, age: &Age, backend: Arc<Backend>) {
    if slot.as_ref().is_none_or(|(a, _)| age < a) {
        *slot = Some((age.clone(), backend));
    }
}

impl Table {
    /// The table of the Ingresses `ingresses` that rk8s serves (by `classes`), with
    /// Services and endpoints from `cluster`.
    pub fn build(
        ingresses: &[Arc<Ingress>],
        classes: &[Arc<IngressClass>],
        cluster: &dyn Cluster,
    ) -> Table {
        Self::build_with(&mut Compiled::default(), ingresses, classes, cluster)
    }

    /// [`Table::build`], reusing (and keeping for the next build) what `compiled`
    /// holds of the Ingresses.
    pub fn build_with(
        compiled: &mut Compiled,
        ingresses: &[Arc<Ingress>],
        classes: &[Arc<IngressClass>],
        cluster: &dyn Cluster,
    ) -> Table {
        let mut table = Table::default();
        let mut served: Vec<(Age, &Arc<Ingress>)> = ingresses
            .iter()
            .filter(|i| rk8s_api::ingress::served(i, classes.iter().map(|c| c.as_ref())))
            .map(|i| (age(i), i))
            .collect();
        served.sort_by(|a, b| a.0.cmp(&b.0));
        let mut kept = HashMap::new();
        let mut all = Vec::with_capacity(served.len());
        for (age, ingress) in served {
            let key = (age.1.clone(), age.2.clone());
            let parts = compiled.parts(&key, ingress);
            table.add(&age, &parts, cluster);
            kept.insert(key, parts.clone());
            all.push((age, parts));
        }
        compiled.by = kept;
        // After every rule is in: TLS only for the servers they made.
        for (age, parts) in &all {
            table.add_tls(age, parts);
        }
        for server in table
            .exact
            .values_mut()
            .chain(table.wildcard.values_mut())
            .chain([&mut table.any_host])
        {
            server
                .rules
                .sort_by(|a, b| (a.rank, &a.age).cmp(&(b.rank, &b.age)));
        }
        table
    }

    fn server(&mut self, host: Option<&str>) -> &mut Server {
        match host {
            None => &mut self.any_host,
            Some(h) => match routes::wildcard_suffix(h) {
                Some(suffix) => self.wildcard.entry(suffix.to_string()).or_default(),
                None => self.exact.entry(h.to_string()).or_default(),
            },
        }
    }

    fn add(&mut self, age: &Age, parts: &Parts, cluster: &dyn Cluster) {
        let (namespace, name) = (age.1.clone(), age.2.clone());
        let options = &parts.options;
        let at = |w: &str| format!("ingress {namespace}/{name}: {w}");
        self.warnings.extend(parts.warnings.iter().map(|w| at(w)));
        self.served.push((namespace.clone(), name.clone()));
        let default = parts
            .default
            .as_ref()
            .map(|b| backend((&namespace, &name), b, options, cluster));
        if let (Some(d), true) = (&default, parts.rules.is_empty()) {
            keep_oldest(&mut self.default, age, d.clone());
        }
        for (host, paths) in &parts.rules {
            let added: Vec<Rule> = paths
                .iter()
                .map(|p| Rule {
                    matcher: p.matcher.clone(),
                    rank: p.rank,
                    age: age.clone(),
                    backend: backend((&namespace, &name), &p.backend, options, cluster),
                })
                .collect();
            let server = self.server(host.as_deref());
            server.rules.extend(added);
            if let Some(d) = &default {
                keep_oldest(&mut server.default, age, d.clone());
            }
        }
    }

    /// The `spec.tls` of one Ingress: for the hosts it has rules for, whose servers
    /// exist by now (oldest Ingress first, as [`Table::tls`] is read).
    fn add_tls(&mut self, age: &Age, parts: &Parts) {
        let ruled: BTreeSet<&str> = parts
            .rules
            .iter()
            .filter_map(|(h, _)| h.as_deref())
            .collect();
        for tls in &parts.tls {
            let listed: Vec<String> = tls
                .hosts
                .iter()
                .flatten()
                .map(|h| h.to_ascii_lowercase())
                .collect();
            let hosts: Vec<String> = ruled
                .iter()
                .filter(|rule| listed.iter().any(|t| covers(t, rule)))
                .map(|rule| rule.to_string())
                .collect();
            for h in &hosts {
                let server = match routes::wildcard_suffix(h) {
                    Some(suffix) => self.wildcard.get_mut(suffix),
                    None => self.exact.get_mut(h),
                };
                if let Some(server) = server {
                    server.tls = true;
                }
            }
            if let Some(secret) = tls.secret_name.as_ref().filter(|s| !s.is_empty())
                && !hosts.is_empty()
            {
                self.tls.push(TlsSecret {
                    namespace: age.1.clone(),
                    secret: secret.clone(),
                    hosts,
                });
            }
        }
    }

    /// The route of a request to `host` for `path_and_query`, arrived over TLS or
    /// not (`https`).
    pub fn route(&self, host: &str, path_and_query: &str, https: bool) -> Route<'_> {
        let host = routes::normalize_host(host).unwrap_or_default();
        let server = self
            .exact
            .get(&host)
            .or_else(|| self.wildcard.get(routes::parent(&host)?))
            .unwrap_or(&self.any_host);
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let path = if path.is_empty() { "/" } else { path };
        let Some(path) = routes::normalize_path(path) else {
            return Route::BadPath;
        };
        let path = path.as_str();
        let found = server.rules.iter().find(|r| r.matcher.matches(path));
        let (backend, sent) = match found {
            Some(rule) => {
                let sent = match &rule.backend.options.rewrite_target {
                    Some(target) => rule.matcher.rewrite(path, target),
                    None => path.to_string(),
                };
                (&rule.backend, sent)
            }
            None => match server.default.as_ref().or(self.default.as_ref()) {
                Some((_, d)) => (d, path.to_string()),
                None => return Route::NotFound,
            },
        };
        if server.tls && !https && backend.options.ssl_redirect {
            return Route::Redirect;
        }
        let path = match query {
            Some(q) => format!("{sent}?{q}"),
            None => sent,
        };
        Route::Backend { backend, path }
    }

    /// Every backend of the table (for metrics and tests).
    pub fn backends(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.exact
            .values()
            .chain(self.wildcard.values())
            .chain([&self.any_host])
            .flat_map(|s| {
                s.rules
                    .iter()
                    .map(|r| &r.backend)
                    .chain(s.default.iter().map(|d| &d.1))
            })
            .chain(self.default.iter().map(|d| &d.1))
    }
}

/// A [`Cluster`] of fixed Services and endpoints (tests, benchmarks).
#[derive(Default)]
pub struct StaticCluster {
    /// Services by `(namespace, name)`.
    pub services: BTreeMap<(String, String), Arc<Service>>,
    /// Endpoints by `(namespace, service, port name)`.
    pub endpoints: BTreeMap<(String, String, String), Vec<SocketAddr>>,
}

impl Cluster for StaticCluster {
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>> {
        self.services
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    fn endpoints(&self, namespace: &str, service: &str, port: Option<&str>) -> Vec<SocketAddr> {
        let key = (
            namespace.to_string(),
            service.to_string(),
            port.unwrap_or_default().to_string(),
        );
        self.endpoints.get(&key).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;

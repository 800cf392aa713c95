//! Service environment variables (`KUBERNETES_SERVICE_HOST`, `WEB_PORT_80_TCP`, …) as
//! kubelet gives every container (`getServiceEnvVarMap` in `pkg/kubelet/kubelet_pods.go`,
//! `FromServices` in `pkg/kubelet/envvars/envvars.go`): in-cluster clients find the
//! API through them.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};

use super::PodRuntime;

/// Where the runtime reads the cluster's Services: the agent's watch cache.
pub trait ServiceLister: Send + Sync {
    /// The Services `keep` keeps, or `None` while the cache has not been filled once
    /// (then a pod from the API waits: see [`PodRuntime`]'s use).
    fn select(&self, keep: &dyn Fn(&Service) -> bool) -> Option<Vec<Arc<Service>>>;
}

/// Namespace of the master service.
const MASTER_NAMESPACE: &str = "default";

/// The master service (kubelet's `masterServices`): its variables go to every pod.
const MASTER_SERVICE: &str = "kubernetes";

/// What kubelet says while it cannot build a pod's variables yet.
pub const NOT_SYNCED: &str =
    "services have not yet been read at least once, cannot construct envvars";

/// Whether `service` has a ClusterIP (not headless `None`, not empty): only those have
/// variables (`IsServiceIPSet`).
fn has_cluster_ip(service: &Service) -> bool {
    let ip = service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref());
    !matches!(ip, None | Some("") | Some("None"))
}

fn is_master(service: &Service) -> bool {
    service.metadata.namespace.as_deref() == Some(MASTER_NAMESPACE)
        && service.metadata.name.as_deref() == Some(MASTER_SERVICE)
}

/// Whether `service` gives variables to a pod of `namespace`: the master service
/// always, the Services of the pod's namespace when `links` (its
/// `enableServiceLinks`, default true); ClusterIP ones only.
pub fn relevant(service: &Service, namespace: &str, links: bool) -> bool {
    has_cluster_ip(service)
        && (is_master(service)
            || (links && service.metadata.namespace.as_deref() == Some(namespace)))
}

/// `NAME` of a Service's variables: upper case, `-` as `_` (`makeEnvVariableName`).
fn variable_name(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

/// The variables of `services` for a pod of `namespace` with `enableServiceLinks` =
/// `links`, sorted by name. A Service of the pod's namespace named like the master
/// service replaces it (kubelet's map keeps it over the master's).
pub fn variables<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    namespace: &str,
    links: bool,
) -> Vec<(String, String)> {
    let mut by_name: BTreeMap<&str, &Service> = BTreeMap::new();
    for service in services {
        if !relevant(service, namespace, links) {
            continue;
        }
        let name = service.metadata.name.as_deref().unwrap_or_default();
        let own = service.metadata.namespace.as_deref() == Some(namespace) && links;
        if own || !by_name.contains_key(name) {
            by_name.insert(name, service);
        }
    }
    let mut out = BTreeMap::new();
    for (name, service) in by_name {
        of_service(name, service, &mut out);
    }
    out.into_iter().collect()
}

/// One Service's variables (`FromServices` and the Docker link variables of
/// `makeLinkVariables`).
fn of_service(name: &str, service: &Service, out: &mut BTreeMap<String, String>) {
    let Some(spec) = &service.spec else { return };
    let ip = spec.cluster_ip.clone().unwrap_or_default();
    let prefix = variable_name(name);
    let ports = spec.ports.as_deref().unwrap_or_default();
    out.insert(format!("{prefix}_SERVICE_HOST"), ip.clone());
    // Validation gives a ClusterIP Service a port; kubelet would index the first.
    let Some(first) = ports.first() else { return };
    // The first port under the backwards-compatible name, every named one by name
    // (only the first may be unnamed).
    out.insert(format!("{prefix}_SERVICE_PORT"), first.port.to_string());
    for port in ports {
        if let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            let key = format!("{prefix}_SERVICE_PORT_{}", variable_name(port_name));
            out.insert(key, port.port.to_string());
        }
    }
    // Docker links: `net.JoinHostPort` brackets an IPv6 address.
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.clone()
    };
    for (i, port) in ports.iter().enumerate() {
        let protocol = port.protocol.as_deref().filter(|p| !p.is_empty());
        let protocol = protocol.unwrap_or("TCP");
        let (lower, upper) = (protocol.to_lowercase(), protocol.to_uppercase());
        let url = format!("{lower}://{host}:{}", port.port);
        if i == 0 {
            out.insert(format!("{prefix}_PORT"), url.clone());
        }
        let port_prefix = format!("{prefix}_PORT_{}_{upper}", port.port);
        out.insert(format!("{port_prefix}_PROTO"), lower);
        out.insert(format!("{port_prefix}_PORT"), port.port.to_string());
        out.insert(format!("{port_prefix}_ADDR"), ip.clone());
        out.insert(port_prefix, url);
    }
}

/// The annotation kubelet puts on static pods: `kubernetes.io/config.source: file`.
pub const SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";

/// Whether `pod` came from the API server (kubelet's `IsStaticPod` is the opposite):
/// static pods carry `kubernetes.io/config.source: file`.
fn from_api(pod: &Pod) -> bool {
    let annotations = pod.metadata.annotations.as_ref();
    let source = annotations.and_then(|a| a.get(SOURCE_ANNOTATION));
    source.is_none_or(|s| s == "api")
}

impl PodRuntime {
    /// The service variables of `pod`'s containers; why not yet, in kubelet's words,
    /// when the Services have not been read once and the pod came from the API (its
    /// container then waits with CreateContainerConfigError rather than start
    /// without `KUBERNETES_SERVICE_HOST`; a static pod goes on without).
    pub(super) fn service_env(&self, pod: &Pod) -> Result<Vec<(String, String)>, String> {
        let Some(lister) = &self.services else {
            return Ok(Vec::new());
        };
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let spec = pod.spec.as_ref();
        let links = spec.and_then(|s| s.enable_service_links).unwrap_or(true);
        match lister.select(&|s| relevant(s, namespace, links)) {
            Some(services) => Ok(variables(
                services.iter().map(AsRef::as_ref),
                namespace,
                links,
            )),
            None if from_api(pod) => Err(NOT_SYNCED.to_string()),
            None => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(namespace: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": namespace, "name": name},
            "spec": {"clusterIP": ip, "ports": ports}
        }))
        .unwrap()
    }

    fn cluster() -> Vec<Service> {
        vec![
            service(
                "default",
                "kubernetes",
                "10.96.0.1",
                serde_json::json!([{"name": "https", "port": 443, "protocol": "TCP"}]),
            ),
            service(
                "shop",
                "web-front",
                "10.96.0.20",
                serde_json::json!([
                    {"name": "http", "port": 80},
                    {"name": "metrics-port", "port": 9090, "protocol": "TCP"},
                    {"name": "dns", "port": 53, "protocol": "UDP"}
                ]),
            ),
            service(
                "shop",
                "headless",
                "None",
                serde_json::json!([{"port": 80}]),
            ),
            service(
                "other",
                "db",
                "10.96.0.30",
                serde_json::json!([{"port": 5432}]),
            ),
        ]
    }

    fn get<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
        vars.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn services_of_the_namespace_and_the_master_give_kubelets_variables() {
        let services = cluster();
        let vars = variables(&services, "shop", true);
        let expected = [
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
            ("KUBERNETES_PORT", "tcp://10.96.0.1:443"),
            ("KUBERNETES_PORT_443_TCP", "tcp://10.96.0.1:443"),
            ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"),
            ("KUBERNETES_PORT_443_TCP_PORT", "443"),
            ("KUBERNETES_PORT_443_TCP_ADDR", "10.96.0.1"),
            ("WEB_FRONT_SERVICE_HOST", "10.96.0.20"),
            ("WEB_FRONT_SERVICE_PORT", "80"),
            ("WEB_FRONT_SERVICE_PORT_HTTP", "80"),
            ("WEB_FRONT_SERVICE_PORT_METRICS_PORT", "9090"),
            ("WEB_FRONT_SERVICE_PORT_DNS", "53"),
            ("WEB_FRONT_PORT", "tcp://10.96.0.20:80"),
            ("WEB_FRONT_PORT_80_TCP", "tcp://10.96.0.20:80"),
            ("WEB_FRONT_PORT_9090_TCP_ADDR", "10.96.0.20"),
            ("WEB_FRONT_PORT_53_UDP", "udp://10.96.0.20:53"),
            ("WEB_FRONT_PORT_53_UDP_PROTO", "udp"),
            ("WEB_FRONT_PORT_53_UDP_PORT", "53"),
        ];
        for (name, value) in expected {
            assert_eq!(get(&vars, name), Some(value), "{name}");
        }
        // 8 of the master; of web-front the host, the first port, 3 named ports, the
        // Docker `_PORT` and 4 per port; none of the headless Service or of another
        // namespace.
        assert_eq!(vars.len(), 8 + 1 + 1 + 3 + 1 + 4 * 3, "{vars:?}");
        assert!(vars.iter().all(|(k, _)| !k.starts_with("HEADLESS_")));
        assert_eq!(get(&vars, "DB_SERVICE_HOST"), None);
    }

    #[test]
    fn without_service_links_only_the_master_service_is_given() {
        let services = cluster();
        let vars = variables(&services, "shop", false);
        assert_eq!(vars.len(), 8, "{vars:?}");
        assert!(vars.iter().all(|(k, _)| k.starts_with("KUBERNETES_")));
        // In the default namespace too.
        let vars = variables(&services, "default", false);
        assert_eq!(get(&vars, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(vars.len(), 8);
    }

    #[test]
    fn a_namespaces_own_kubernetes_service_replaces_the_masters() {
        let mut services = vec![service(
            "shop",
            "kubernetes",
            "10.96.0.99",
            serde_json::json!([{"port": 8080}]),
        )];
        services.extend(cluster());
        let vars = variables(&services, "shop", true);
        assert_eq!(get(&vars, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.99"));
        let vars = variables(&services, "shop", false);
        assert_eq!(get(&vars, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
    }

    /// Lists `services`, or nothing yet (`None`).
    struct Listed(Option<Vec<Arc<Service>>>);

    impl ServiceLister for Listed {
        fn select(&self, keep: &dyn Fn(&Service) -> bool) -> Option<Vec<Arc<Service>>> {
            let all = self.0.as_ref()?;
            Some(all.iter().filter(|s| keep(s)).cloned().collect())
        }
    }

    fn runtime(listed: Option<Vec<Service>>) -> (tempfile::TempDir, PodRuntime) {
        let dir = tempfile::tempdir().unwrap();
        let config = super::super::PodRuntimeConfig::new(dir.path(), "pause");
        let fake = Arc::new(crate::fake::FakeRuntime::new());
        let mut runtime = PodRuntime::new(config, fake, None).unwrap();
        let listed = listed.map(|l| l.into_iter().map(Arc::new).collect());
        runtime.read_services_from(Arc::new(Listed(listed)));
        (dir, runtime)
    }

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_pod_follows_its_enable_service_links_and_waits_for_the_first_list() {
        let (_dir, listed) = runtime(Some(cluster()));
        let linked = pod(serde_json::json!({"metadata": {"namespace": "shop", "name": "a"}}));
        let vars = listed.service_env(&linked).unwrap();
        assert_eq!(get(&vars, "WEB_FRONT_SERVICE_PORT_HTTP"), Some("80"));
        let unlinked = pod(
            serde_json::json!({"metadata": {"namespace": "shop", "name": "a"},
            "spec": {"containers": [], "enableServiceLinks": false}}),
        );
        let vars = listed.service_env(&unlinked).unwrap();
        assert_eq!(vars.len(), 8);
        assert_eq!(get(&vars, "KUBERNETES_SERVICE_PORT"), Some("443"));
        // Not listed yet: a pod from the API waits, a static pod goes on without.
        let (_dir, unlisted) = runtime(None);
        assert_eq!(unlisted.service_env(&linked).unwrap_err(), NOT_SYNCED);
        let static_pod = pod(serde_json::json!({"metadata": {"namespace": "kube-system",
            "name": "etcd-node1", "annotations": {"kubernetes.io/config.source": "file"}}}));
        assert_eq!(unlisted.service_env(&static_pod).unwrap(), []);
    }

    #[test]
    fn an_ipv6_cluster_ip_is_bracketed_in_urls() {
        let v6 = service("a", "v6", "fd00::1", serde_json::json!([{"port": 80}]));
        let vars = variables([&v6], "a", true);
        assert_eq!(get(&vars, "V6_PORT"), Some("tcp://[fd00::1]:80"));
        assert_eq!(get(&vars, "V6_PORT_80_TCP_ADDR"), Some("fd00::1"));
    }
}

//! Where `pods/proxy` and `services/proxy` go: kube-apiserver's `ResourceLocation` of
//! the pod and service storages. A pod is reached at its IP, on the port asked or its
//! first container's first; a service at one of its endpoints that is a pod (picked
//! at random), on the endpoint port of the service port asked (by name, or by number
//! through the service's ports). The API server does not dial pods itself: it asks
//! the pod's node agent to (see the agent's `podProxy` path), so it needs no route
//! into the pods' network.

use k8s_openapi::api::core::v1::{EndpointAddress, Pod};
use rk8s_api::{AnyObject, ObjectKind};

use crate::registry::Registry;
use crate::status::{ApiError, ApiResult};

/// A pod port a proxied request goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The pod's node (whose agent dials the pod).
    pub node: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod's uid (so a pod of the same name made since is not reached).
    pub uid: String,
    /// `http` or `https` (the pod's certificate is not verified, as kube-apiserver's
    /// proxy does not verify it).
    pub scheme: &'static str,
    /// The pod's address (its node checks that it is the pod's own).
    pub ip: String,
    /// The pod's port.
    pub port: u16,
}

/// An id of the proxy paths: `name`, `name:port` or `scheme:name:port` (apimachinery's
/// `SplitSchemeNamePort`); the scheme `http` or `https`, `http` if not given.
pub fn split_id(id: &str) -> Option<(&'static str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    let scheme = match scheme {
        "" | "http" => "http",
        "https" => "https",
        _ => return None,
    };
    (!name.is_empty()).then_some((scheme, name, port))
}

/// `pods/{id}/proxy` in `namespace`.
pub async fn pod(registry: &Registry, namespace: &str, id: &str) -> ApiResult<Location> {
    let (scheme, name, port) =
        split_id(id).ok_or_else(|| ApiError::bad_request(format!("invalid pod request {id:?}")))?;
    let pod = get_pod(registry, namespace, name).await?;
    // kube: no port asked, the first container's first port, else the scheme's.
    let first = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .find_map(|c| c.ports.as_ref()?.first().map(|p| p.container_port));
    let port = match (port, first) {
        ("", Some(p)) => u16::try_from(p).ok(),
        ("", None) => Some(default_port(scheme)),
        (p, _) => p.parse::<u16>().ok().filter(|p| *p != 0),
    }
    .ok_or_else(|| {
        ApiError::unavailable(format!(
            "error trying to reach service: the pod port {port:?} is no port number"
        ))
    })?;
    located(&pod, scheme, port)
}

/// `services/{id}/proxy` in `namespace`.
pub async fn service(registry: &Registry, namespace: &str, id: &str) -> ApiResult<Location> {
    let (scheme, name, asked) = split_id(id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid service request {id:?}")))?;
    // A port number names the service port that has it; its name is what the
    // endpoints' ports carry.
    let mut port_name = asked.to_string();
    if let Ok(number) = asked.parse::<i64>() {
        let service = typed(registry, namespace, name, |o| match o {
            AnyObject::Service(s) => Some(*s),
            _ => None,
        })
        .await?;
        let ports = service.spec.iter().flat_map(|s| s.ports.iter().flatten());
        port_name = ports
            .into_iter()
            .find(|p| i64::from(p.port) == number)
            .map(|p| p.name.clone().unwrap_or_default())
            .ok_or_else(|| {
                ApiError::unavailable(format!(
                    "no service port {number} found for service {name:?}"
                ))
            })?;
    }
    let endpoints = typed(registry, namespace, name, |o| match o {
        AnyObject::Endpoints(e) => Some(*e),
        _ => None,
    })
    .await?;
    let subsets = endpoints.subsets.unwrap_or_default();
    if subsets.is_empty() {
        return Err(no_endpoints(name));
    }
    let start = random_below(subsets.len());
    for i in 0..subsets.len() {
        let subset = &subsets[(start + i) % subsets.len()];
        let addresses = subset.addresses.as_deref().unwrap_or_default();
        let port = subset
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref().unwrap_or_default() == port_name);
        let (Some(port), false) = (port, addresses.is_empty()) else {
            continue;
        };
        let Some(port) = u16::try_from(port.port).ok().filter(|p| *p != 0) else {
            continue;
        };
        let first = random_below(addresses.len());
        for j in 0..addresses.len() {
            let address = &addresses[(first + j) % addresses.len()];
            // kube's isValidAddress: a pod's, with that address.
            match endpoint_pod(registry, namespace, address).await {
                Some(pod) => return located(&pod, scheme, port),
                None => tracing::debug!(ip = address.ip, "skipped: not a pod of the service"),
            }
        }
    }
    Err(no_endpoints(id))
}

fn no_endpoints(name: &str) -> ApiError {
    ApiError::unavailable(format!("no endpoints available for service {name:?}"))
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

/// `pod` on `port`, if it has an address a proxy may reach and a node.
fn located(pod: &Pod, scheme: &'static str, port: u16) -> ApiResult<Location> {
    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref());
    let global = ip
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        .filter(|ip| rk8s_api::net::is_host_address(*ip) && !ip.is_loopback());
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    let (Some(ip), Some(node)) = (global, node) else {
        return Err(ApiError::bad_request("address not allowed"));
    };
    Ok(Location {
        ip: ip.to_string(),
        node,
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        pod: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        scheme,
        port,
    })
}

/// The pod an endpoint address names, if it is there with that address, in the
/// Service's own namespace (kube's `isValidAddress`: Endpoints naming another
/// namespace's pod reach nothing).
async fn endpoint_pod(registry: &Registry, namespace: &str, a: &EndpointAddress) -> Option<Pod> {
    let target = a.target_ref.as_ref()?;
    if target.kind.as_deref() != Some("Pod")
        || target
            .namespace
            .as_deref()
            .is_some_and(|ns| ns != namespace)
    {
        return None;
    }
    let pod = get_pod(registry, namespace, target.name.as_deref()?)
        .await
        .ok()?;
    let ip = pod.status.as_ref()?.pod_ip.as_deref()?;
    (ip == a.ip).then_some(pod)
}

async fn get_pod(registry: &Registry, namespace: &str, name: &str) -> ApiResult<Pod> {
    typed(registry, namespace, name, |o| match o {
        AnyObject::Pod(p) => Some(*p),
        _ => None,
    })
    .await
}

/// The object `namespace/name` of `K`'s kind (404 if there is none), as `take` finds
/// it in the stored object.
async fn typed<K: k8s_openapi::Resource + 'static>(
    registry: &Registry,
    namespace: &str,
    name: &str,
    take: fn(AnyObject) -> Option<K>,
) -> ApiResult<K> {
    let kind = ObjectKind::of::<K>();
    let obj = registry.get(&kind, Some(namespace), name).await?;
    take(obj).ok_or_else(|| ApiError::internal(format!("{name} is not a {}", kind.kind)))
}

/// A number in `0..n` (`n` > 0), from the system's random source (0 if it fails:
/// the first is as good a start as any).
fn random_below(n: usize) -> usize {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return 0;
    }
    usize::try_from(u64::from_le_bytes(bytes) % n as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_name_name_port_or_scheme_name_port() {
        assert_eq!(split_id("web"), Some(("http", "web", "")));
        assert_eq!(split_id("web:80"), Some(("http", "web", "80")));
        assert_eq!(
            split_id("https:web:metrics"),
            Some(("https", "web", "metrics"))
        );
        assert_eq!(split_id("ftp:web:21"), None);
        assert_eq!(split_id("a:b:c:d"), None);
        assert_eq!(split_id(":80"), None);
    }
}

//! The `kubernetes` Service of namespace `default`, through which pods reach the API
//! (in-cluster clients read `KUBERNETES_SERVICE_HOST`/`PORT`): a ClusterIP Service on
//! the first address of the service range, port 443 `https`, and Endpoints listing
//! the API servers' advertised addresses, and the EndpointSlice `kubernetes` saying the
//! same (labelled `kubernetes.io/service-name: kubernetes`, which the nodes' Service
//! proxy reads). As kube-apiserver's bootstrap controller with the `lease` endpoint
//! reconciler: each member keeps a key of its own under [`LEASES_PREFIX`] on a store
//! lease it renews, and writes the Endpoints and the slice from the keys alive, so a
//! member gone for [`LEASE_TTL_SECONDS`] leaves them. The Endpoints is labelled
//! [`SKIP_MIRROR_LABEL`] `"true"`, as kube-apiserver's is, so that the
//! EndpointSliceMirroring controller does not mirror it into a second slice.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rk8s_api::AnyObject;
use rk8s_raftstore::proto::RangeRequest;

use crate::registry::Registry;
use crate::status::{ApiError, ApiResult};

/// The Service's name (and its Endpoints').
pub const NAME: &str = "kubernetes";

/// Where each member's advertised address is kept, one key per address.
pub const LEASES_PREFIX: &str = "/rk8s/masterleases/";

/// How long a member's key outlives its last renewal.
pub const LEASE_TTL_SECONDS: i64 = 15;

/// How often a member renews its key and reconciles (kube-apiserver: 10 s).
pub const INTERVAL: Duration = Duration::from_secs(10);

/// The Service, on `cluster_ip`, its port 443 reaching the API servers' `port`.
pub fn service(cluster_ip: IpAddr, port: u16) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some("default".into()),
            labels: Some(
                [
                    ("component".to_string(), "apiserver".to_string()),
                    ("provider".to_string(), "kubernetes".to_string()),
                ]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: Some(cluster_ip.to_string()),
            session_affinity: Some("None".into()),
            ports: Some(vec![ServicePort {
                name: Some("https".into()),
                port: 443,
                protocol: Some("TCP".into()),
                target_port: Some(IntOrString::Int(i32::from(port))),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The subsets listing `addresses` (sorted) on `port`.
pub fn subsets(addresses: &[IpAddr], port: u16) -> Vec<EndpointSubset> {
    if addresses.is_empty() {
        return Vec::new();
    }
    let mut sorted = addresses.to_vec();
    sorted.sort();
    sorted.dedup();
    vec![EndpointSubset {
        addresses: Some(
            sorted
                .iter()
                .map(|ip| EndpointAddress {
                    ip: ip.to_string(),
                    ..EndpointAddress::default()
                })
                .collect(),
        ),
        ports: Some(vec![EndpointPort {
            name: Some("https".into()),
            port: i32::from(port),
            protocol: Some("TCP".into()),
            app_protocol: None,
        }]),
        not_ready_addresses: None,
    }]
}

/// The label naming a slice's Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The label on the Endpoints that keeps the EndpointSliceMirroring controller from
/// mirroring it (kube-apiserver's endpoints reconciler puts it there: the slice is
/// written here already).
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";

/// The EndpointSlice listing `addresses` (sorted) on `port`, ready (kube-apiserver's
/// endpoints adapter writes the same slice beside the Endpoints); IPv6 when every
/// address is, and without ports when there is no address.
pub fn slice(addresses: &[IpAddr], port: u16) -> EndpointSlice {
    let mut sorted = addresses.to_vec();
    sorted.sort();
    sorted.dedup();
    let v6 = !sorted.is_empty() && sorted.iter().all(IpAddr::is_ipv6);
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some("default".into()),
            labels: Some([(SERVICE_NAME_LABEL.to_string(), NAME.to_string())].into()),
            ..ObjectMeta::default()
        },
        address_type: if v6 { "IPv6" } else { "IPv4" }.into(),
        endpoints: sorted
            .iter()
            .map(|ip| Endpoint {
                addresses: vec![ip.to_string()],
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    ..EndpointConditions::default()
                }),
                ..Endpoint::default()
            })
            .collect(),
        ports: Some(if sorted.is_empty() {
            Vec::new()
        } else {
            vec![k8s_openapi::api::discovery::v1::EndpointPort {
                name: Some("https".into()),
                port: Some(i32::from(port)),
                protocol: Some("TCP".into()),
                app_protocol: None,
            }]
        }),
    }
}

/// Keeps the Service, this member's key (`address`, the API on `port`) and the
/// Endpoints, every [`INTERVAL`], until the task is dropped.
pub async fn run(registry: Registry, address: IpAddr, port: u16) {
    let mut lease = None;
    let mut said = None::<String>;
    loop {
        let outcome = reconcile(&registry, address, port, &mut lease).await;
        match outcome {
            Ok(()) => said = None,
            Err(e) if said.as_deref() != Some(e.message.as_str()) => {
                tracing::warn!("the kubernetes Service: {}", e.message);
                said = Some(e.message);
            }
            Err(_) => {}
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

async fn reconcile(
    registry: &Registry,
    address: IpAddr,
    port: u16,
    lease: &mut Option<i64>,
) -> ApiResult<()> {
    let store = registry.store();
    let unavailable = |e: rk8s_raftstore::Error| ApiError::unavailable(e.to_string());
    let ip = registry
        .service_ranges()
        .cluster_ips
        .nth(1)
        .ok_or_else(|| {
            ApiError::internal("the service range has no address for the kubernetes Service")
        })?;
    registry
        .create_if_missing(service(IpAddr::V4(ip), port).into())
        .await?;
    // This member's key, on a lease kept alive (granted again when it lapsed: the
    // store was away longer than the lease, or this member was).
    let alive = match *lease {
        Some(id) => store.lease_keep_alive(id).await.is_ok_and(|ttl| ttl > 0),
        None => false,
    };
    if !alive {
        let id = store
            .lease_grant(LEASE_TTL_SECONDS)
            .await
            .map_err(unavailable)?;
        let key = format!("{LEASES_PREFIX}{address}");
        store
            .put(key.as_bytes(), port.to_string().as_bytes(), id, None)
            .await
            .map_err(unavailable)?;
        *lease = Some(id);
    }
    let keys = RangeRequest {
        key: LEASES_PREFIX.as_bytes().to_vec(),
        range_end: rk8s_raftstore::mvcc::prefix_end(LEASES_PREFIX.as_bytes()),
        keys_only: true,
        ..RangeRequest::default()
    };
    let live = store.range(keys, true).await.map_err(unavailable)?;
    let addresses: Vec<IpAddr> = live
        .kvs
        .iter()
        .filter_map(|kv| {
            let key = std::str::from_utf8(&kv.key).ok()?;
            key.strip_prefix(LEASES_PREFIX)?.parse().ok()
        })
        .collect();
    let wanted = subsets(&addresses, port);
    let kind = rk8s_api::object::kind_named("Endpoints")
        .ok_or_else(|| ApiError::internal("no Endpoints kind"))?;
    match registry.find(&kind, Some("default"), NAME).await? {
        Some(AnyObject::Endpoints(mut current)) => {
            let skipped = current
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SKIP_MIRROR_LABEL))
                .is_some_and(|v| v == "true");
            if !skipped || current.subsets.clone().unwrap_or_default() != wanted {
                current
                    .metadata
                    .labels
                    .get_or_insert_default()
                    .insert(SKIP_MIRROR_LABEL.into(), "true".into());
                current.subsets = Some(wanted);
                registry.replace(&AnyObject::Endpoints(current)).await?;
            }
        }
        _ => {
            let endpoints = Endpoints {
                metadata: ObjectMeta {
                    name: Some(NAME.into()),
                    namespace: Some("default".into()),
                    labels: Some([(SKIP_MIRROR_LABEL.to_string(), "true".to_string())].into()),
                    ..ObjectMeta::default()
                },
                subsets: Some(wanted),
            };
            registry.create_if_missing(endpoints.into()).await?;
        }
    }
    let wanted = slice(&addresses, port);
    let kind = rk8s_api::object::kind_named("EndpointSlice")
        .ok_or_else(|| ApiError::internal("no EndpointSlice kind"))?;
    match registry.find(&kind, Some("default"), NAME).await? {
        Some(AnyObject::EndpointSlice(mut current)) => {
            let labelled = current
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .is_some_and(|n| n == NAME);
            if !labelled
                || current.address_type != wanted.address_type
                || current.endpoints != wanted.endpoints
                || current.ports != wanted.ports
            {
                current
                    .metadata
                    .labels
                    .get_or_insert_default()
                    .insert(SERVICE_NAME_LABEL.into(), NAME.into());
                current.address_type = wanted.address_type;
                current.endpoints = wanted.endpoints;
                current.ports = wanted.ports;
                registry.replace(&AnyObject::EndpointSlice(current)).await?;
            }
        }
        _ => registry.create_if_missing(wanted.into()).await?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_list_each_member_once_in_order() {
        let a: IpAddr = "10.0.0.2".parse().unwrap();
        let b: IpAddr = "10.0.0.1".parse().unwrap();
        let s = subsets(&[a, b, a], 6443);
        let ips: Vec<_> = s[0]
            .addresses
            .iter()
            .flatten()
            .map(|x| x.ip.as_str())
            .collect();
        assert_eq!(ips, ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(s[0].ports.as_ref().unwrap()[0].port, 6443);
        assert!(subsets(&[], 6443).is_empty());
        let svc = service("10.96.0.1".parse().unwrap(), 6443);
        let spec = svc.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.1"));
        assert_eq!(spec.ports.unwrap()[0].port, 443);
    }

    #[test]
    fn the_slice_lists_each_member_once_ready() {
        let a: IpAddr = "10.0.0.2".parse().unwrap();
        let b: IpAddr = "10.0.0.1".parse().unwrap();
        let s = slice(&[a, b, a], 6443);
        assert_eq!(s.metadata.labels.unwrap()[SERVICE_NAME_LABEL], NAME);
        assert_eq!(s.address_type, "IPv4");
        let ips: Vec<_> = s
            .endpoints
            .iter()
            .map(|e| e.addresses[0].as_str())
            .collect();
        assert_eq!(ips, ["10.0.0.1", "10.0.0.2"]);
        assert!(
            s.endpoints
                .iter()
                .all(|e| e.conditions.as_ref().unwrap().ready == Some(true))
        );
        let port = &s.ports.unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.port),
            (Some("https"), Some(6443))
        );
        let empty = slice(&[], 6443);
        assert!(empty.endpoints.is_empty() && empty.ports.unwrap().is_empty());
        assert_eq!(
            slice(&["fd00::1".parse().unwrap()], 6443).address_type,
            "IPv6"
        );
    }
}

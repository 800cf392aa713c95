//! The EndpointSlices of a Service, as Kubernetes' EndpointSlice controller
//! (`pkg/controller/endpointslice/reconciler.go`) keeps them: for a Service with a
//! selector, one IPv4 endpoint per selected pod of its namespace that has an IP and is
//! not finished (terminating pods included, not ready), grouped by the ports the pod
//! resolves the Service's ports to, at most [`MAX_ENDPOINTS_PER_SLICE`] to a slice.
//!
//! The reconcile changes as little as it can, as kube's does: a slice whose port set
//! is still wanted keeps the endpoints it has that are still wanted (refreshed) and is
//! left alone when nothing in it changed; the endpoints left over go first into the
//! slices being updated anyway, then into one unchanged slice they fit in whole, and
//! only then into new slices; slices of port sets no longer wanted, not owned by the
//! Service, or emptied are deleted. A Service with no endpoint at all keeps one empty
//! placeholder slice. Endpoints are sorted by pod name, so that the same pods give the
//! same slices and no write. Pure: the caller passes the objects.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::endpoints::{HEADLESS, selects, target_port};

/// The label naming the Service a slice belongs to (`discovery.LabelServiceName`).
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// The label naming the controller that manages a slice (`discovery.LabelManagedBy`).
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY`]; slices without it are never touched.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// kube-controller-manager's `--max-endpoints-per-slice` default.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// The only address type rk8s' pods have.
pub const ADDRESS_TYPE: &str = "IPv4";
/// The Node label an endpoint's `zone` comes from.
pub const ZONE: &str = "topology.kubernetes.io/zone";

/// Whether the controller keeps this Service's slices: it has a selector (without one,
/// the user writes them) and is not an ExternalName Service (kube gives those none).
pub fn managed(service: &Service) -> bool {
    crate::endpoints::managed(service)
        && service.spec.as_ref().and_then(|s| s.type_.as_deref()) != Some("ExternalName")
}

/// Whether this controller manages `slice` (its [`MANAGED_BY`] label says so).
pub fn ours(slice: &EndpointSlice) -> bool {
    label(slice, MANAGED_BY) == Some(CONTROLLER_NAME)
}

/// The name of the Service `slice` belongs to (its [`SERVICE_NAME`] label).
pub fn service_name(slice: &EndpointSlice) -> Option<&str> {
    label(slice, SERVICE_NAME)
}

pub(crate) fn label<'a>(slice: &'a EndpointSlice, key: &str) -> Option<&'a str> {
    slice.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

/// Whether `slice` has an owner reference to `service` (this incarnation of it).
pub fn owned_by(slice: &EndpointSlice, service: &Service) -> bool {
    slice.metadata.owner_references.iter().flatten().any(|o| {
        o.kind == "Service"
            && o.api_version == "v1"
            && Some(&o.uid) == service.metadata.uid.as_ref()
    })
}

/// The labels of the Service's slices: the Service's own (except the reserved ones),
/// [`HEADLESS`] for a headless Service, [`SERVICE_NAME`] and [`MANAGED_BY`].
pub fn labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = service
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| ![SERVICE_NAME, MANAGED_BY, HEADLESS].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let cluster_ip = service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref());
    if cluster_ip == Some("None") {
        labels.insert(HEADLESS.into(), String::new());
    }
    labels.insert(
        SERVICE_NAME.into(),
        service.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(MANAGED_BY.into(), CONTROLLER_NAME.into());
    labels
}

/// The pod's IPv4 address, if it has one.
fn ipv4(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    status
        .pod_ips
        .iter()
        .flatten()
        .map(|ip| ip.ip.as_str())
        .chain(status.pod_ip.as_deref())
        .find(|ip| ip.parse::<Ipv4Addr>().is_ok())
        .map(str::to_string)
}

/// The ports `pod` serves `service`'s ports on, in the Service's order (a port the pod
/// cannot resolve is left out, as kube's `getEndpointPorts` does). Unnamed ports are
/// named `""` and the protocol is TCP unless set, as the API server defaults them.
pub fn ports(service: &Service, pod: &Pod) -> Vec<EndpointPort> {
    service
        .spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .filter_map(|p| {
            Some(EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(target_port(p, pod)?),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: p.app_protocol.clone(),
            })
        })
        .collect()
}

/// The endpoint of `pod` for `service`, if it has one: an IPv4 address and a phase
/// other than Succeeded or Failed. `zone` is its node's zone, if known.
pub fn endpoint(service: &Service, pod: &Pod, zone: Option<String>) -> Option<Endpoint> {
    let ip = ipv4(pod)?;
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return None;
    }
    let spec = pod.spec.as_ref();
    let service_spec = service.spec.as_ref();
    let publish_not_ready = service_spec
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let serving = crate::common::is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    // kube's podToEndpoint; a terminating endpoint is published, not ready.
    let ready = publish_not_ready || (serving && !terminating);
    let same_namespace = pod.metadata.namespace == service.metadata.namespace;
    Some(Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: spec
            .filter(|s| {
                same_namespace && s.subdomain.as_deref() == service.metadata.name.as_deref()
            })
            .and_then(|s| s.hostname.clone())
            .filter(|h| !h.is_empty()),
        node_name: spec.and_then(|s| s.node_name.clone()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
        zone: zone.filter(|z| !z.is_empty()),
        ..Default::default()
    })
}

/// A port set compared regardless of order: (name, port, protocol, appProtocol).
pub(crate) type PortKey = Vec<(String, i32, String, Option<String>)>;

pub(crate) fn port_key(ports: &[EndpointPort]) -> PortKey {
    let mut key: PortKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.app_protocol.clone(),
            )
        })
        .collect();
    key.sort();
    key
}

/// The endpoints of one port set, by pod name.
struct Group {
    ports: Vec<EndpointPort>,
    endpoints: BTreeMap<String, Endpoint>,
}

/// The endpoint's pod name (its key in a slice).
fn pod_name(e: &Endpoint) -> Option<&str> {
    e.target_ref.as_ref()?.name.as_deref()
}

/// What the Service's slices should be, grouped by port set.
fn desired<'a>(
    service: &Service,
    pods: impl IntoIterator<Item = &'a Pod>,
    zone: impl Fn(&str) -> Option<String>,
) -> BTreeMap<PortKey, Group> {
    let mut groups: BTreeMap<PortKey, Group> = BTreeMap::new();
    for pod in pods.into_iter().filter(|p| selects(service, p)) {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        let Some(e) = endpoint(service, pod, node.and_then(&zone)) else {
            continue;
        };
        let ports = ports(service, pod);
        let group = groups.entry(port_key(&ports)).or_insert_with(|| Group {
            ports,
            endpoints: BTreeMap::new(),
        });
        group
            .endpoints
            .insert(pod.metadata.name.clone().unwrap_or_default(), e);
    }
    groups
}

/// A new slice of the Service (named by the API server from `NAME-`).
pub fn new_slice(
    service: &Service,
    ports: Vec<EndpointPort>,
    endpoints: Vec<Endpoint>,
) -> EndpointSlice {
    let mut owner = crate::common::controller_ref("v1", "Service", &service.metadata);
    owner.block_owner_deletion = Some(true);
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                service.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: service.metadata.namespace.clone(),
            labels: Some(labels(service)),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        address_type: ADDRESS_TYPE.into(),
        endpoints,
        ports: Some(ports),
    }
}

/// Whether `slice` is a placeholder: no endpoints and no ports.
fn placeholder(slice: &EndpointSlice) -> bool {
    slice.endpoints.is_empty() && slice.ports.as_ref().is_none_or(|p| p.is_empty())
}

/// The writes that bring a Service's slices to what its pods say.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Changes {
    /// New slices (with `generateName`, no name).
    pub create: Vec<EndpointSlice>,
    /// Existing slices, changed (their resourceVersion kept: a compare-and-swap).
    pub update: Vec<EndpointSlice>,
    /// Existing slices to delete.
    pub delete: Vec<EndpointSlice>,
}

impl Changes {
    /// Whether nothing is to be written.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Fills `slice` from `remaining` (lowest pod names first) up to the limit, sorted.
fn fill(slice: &mut EndpointSlice, remaining: &mut BTreeMap<String, Endpoint>) {
    while slice.endpoints.len() < MAX_ENDPOINTS_PER_SLICE {
        let Some((_, e)) = remaining.pop_first() else {
            break;
        };
        slice.endpoints.push(e);
    }
    slice
        .endpoints
        .sort_by(|a, b| pod_name(a).cmp(&pod_name(b)));
}

/// The writes that make `existing` (the Service's slices that are [`ours`]) the
/// EndpointSlices of `service`, given the pods of its namespace and each node's zone.
/// The `existing` slices worth keeping, by port set, in name order: owned (`owned`),
/// IPv4 and of a port set still wanted (`wanted`); the others go into
/// `changes.delete`. The first step of both slice controllers' reconciles.
pub(crate) fn by_port_set<'e>(
    existing: &[&'e EndpointSlice],
    wanted: impl Fn(&PortKey) -> bool,
    owned: impl Fn(&EndpointSlice) -> bool,
    changes: &mut Changes,
) -> BTreeMap<PortKey, Vec<&'e EndpointSlice>> {
    let mut sorted: Vec<&EndpointSlice> = existing.to_vec();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut by_key: BTreeMap<PortKey, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in sorted {
        let key = port_key(slice.ports.as_deref().unwrap_or_default());
        if owned(slice) && slice.address_type == ADDRESS_TYPE && wanted(&key) {
            by_key.entry(key).or_default().push(slice);
        } else {
            changes.delete.push(slice.clone());
        }
    }
    by_key
}

/// The slices of a Service that is not [`managed`] are all deleted.
pub fn reconcile<'a>(
    service: &Service,
    pods: impl IntoIterator<Item = &'a Pod>,
    zone: impl Fn(&str) -> Option<String>,
    existing: &[&EndpointSlice],
) -> Changes {
    let mut changes = Changes::default();
    if !managed(service) {
        changes.delete = existing.iter().map(|s| (*s).clone()).collect();
        return changes;
    }
    let labels = labels(service);
    let mut desired = desired(service, pods, zone);
    let mut by_key = by_port_set(
        existing,
        |key| desired.contains_key(key),
        |s| owned_by(s, service),
        &mut changes,
    );
    for (key, group) in &mut desired {
        let remaining = &mut group.endpoints;
        let mut updated: Vec<EndpointSlice> = Vec::new();
        let mut unchanged: Vec<&EndpointSlice> = Vec::new();
        for slice in by_key.remove(key).unwrap_or_default() {
            // The endpoints still wanted, as wanted now; a pod in two slices stays in
            // the first.
            let mut kept: Vec<Endpoint> = slice
                .endpoints
                .iter()
                .filter_map(|e| remaining.remove(pod_name(e)?))
                .collect();
            kept.sort_by(|a, b| pod_name(a).cmp(&pod_name(b)));
            if kept.is_empty() && !slice.endpoints.is_empty() {
                changes.delete.push(slice.clone());
            } else if kept == slice.endpoints
                && slice.metadata.labels.as_ref() == Some(&labels)
                && slice.ports.as_deref().unwrap_or_default() == group.ports.as_slice()
            {
                unchanged.push(slice);
            } else {
                let mut slice = slice.clone();
                slice.endpoints = kept;
                slice.metadata.labels = Some(labels.clone());
                slice.ports = Some(group.ports.clone());
                updated.push(slice);
            }
        }
        // The fullest slices being written anyway take what is left first.
        updated.sort_by_key(|s| std::cmp::Reverse(s.endpoints.len()));
        for slice in &mut updated {
            fill(slice, remaining);
        }
        while !remaining.is_empty() {
            // What is left fits whole in an unchanged slice: the fullest such one.
            let fits = (remaining.len() < MAX_ENDPOINTS_PER_SLICE)
                .then(|| {
                    unchanged
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| {
                            s.endpoints.len() + remaining.len() <= MAX_ENDPOINTS_PER_SLICE
                        })
                        .max_by_key(|(i, s)| (s.endpoints.len(), std::cmp::Reverse(*i)))
                        .map(|(i, _)| i)
                })
                .flatten();
            match fits {
                Some(i) => {
                    let mut slice = unchanged.remove(i).clone();
                    fill(&mut slice, remaining);
                    updated.push(slice);
                }
                None => {
                    let mut slice = new_slice(service, group.ports.clone(), Vec::new());
                    fill(&mut slice, remaining);
                    changes.create.push(slice);
                }
            }
        }
        changes.update.extend(updated);
    }
    // kube's placeholder: a Service whose slices would all go keeps one empty slice.
    if existing.len() == changes.delete.len() && changes.create.is_empty() {
        match changes.delete.iter().position(placeholder) {
            Some(i) if changes.delete.len() == 1 => {
                let kept = changes.delete.remove(i);
                let owned = owned_by(&kept, service) && kept.address_type == ADDRESS_TYPE;
                if !owned {
                    changes.delete.push(kept);
                    changes
                        .create
                        .push(new_slice(service, Vec::new(), Vec::new()));
                } else if kept.metadata.labels.as_ref() != Some(&labels) {
                    let mut kept = kept;
                    kept.metadata.labels = Some(labels);
                    changes.update.push(kept);
                }
            }
            _ => changes
                .create
                .push(new_slice(service, Vec::new(), Vec::new())),
        }
    }
    changes
}

#[cfg(test)]
#[path = "endpoint_slices_tests.rs"]
mod tests;

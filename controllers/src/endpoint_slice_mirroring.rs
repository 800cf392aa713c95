//! The EndpointSlices mirrored from the Endpoints of a Service without a selector, as
//! Kubernetes' EndpointSliceMirroring controller
//! (`pkg/controller/endpointslicemirroring/reconciler.go`) keeps them: the nodes
//! program Services from EndpointSlices only, so the Endpoints a user writes for a
//! selector-less Service are copied into slices labelled
//! `endpointslice.kubernetes.io/managed-by: endpointslicemirroring-controller.k8s.io`
//! and owned by the Endpoints.
//!
//! An Endpoints is mirrored when its Service exists and has no selector, and it lacks
//! the label `endpointslice.kubernetes.io/skip-mirror: "true"` (the API server puts it
//! on the `kubernetes` Endpoints, whose slice it writes itself) and the leader-election
//! annotation. Its subsets with the same ports are merged into one port set; each
//! port set's IPv4 addresses become endpoints — `addresses` ready and serving,
//! `notReadyAddresses` neither (an address in both is ready) — with their `hostname`,
//! `nodeName` and `targetRef`, at most [`MAX_ENDPOINTS_PER_SUBSET`] of them a port set
//! (ready ones first, as kube's `maxEndpointsPerSubset`), at most
//! [`MAX_ENDPOINTS_PER_SLICE`] to a slice. The slices carry the Endpoints' labels and
//! annotations (less the skip-mirror label, the last-change trigger time and kubectl's
//! last-applied configuration).
//!
//! As [`crate::endpoint_slices`], the reconcile changes as little as it can: an
//! endpoint stays in the slice it is in, a slice whose content is unchanged is not
//! written, addresses left over go into slices written anyway, then into emptied
//! slices, then into an unchanged slice they fit in whole, then into new ones. Pure:
//! the caller passes the objects.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use crate::endpoint_slices::{
    ADDRESS_TYPE, Changes, MANAGED_BY, MAX_ENDPOINTS_PER_SLICE, SERVICE_NAME,
};
use crate::endpoint_slices::{PortKey, label, port_key};

/// This controller's value of [`MANAGED_BY`]; slices without it are never touched.
pub const CONTROLLER_NAME: &str = "endpointslicemirroring-controller.k8s.io";
/// The Endpoints label that keeps an Endpoints from being mirrored (when `"true"`).
pub const SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
/// The annotation of a leader-election Endpoints (never mirrored).
pub const LEADER: &str = "control-plane.alpha.kubernetes.io/leader";
/// kube-controller-manager's `--mirroring-max-endpoints-per-subset` default: the most
/// addresses of one port set mirrored.
pub const MAX_ENDPOINTS_PER_SUBSET: usize = 1000;
/// The Endpoints annotations not copied to the slices.
const NOT_COPIED: [&str; 2] = [
    "endpoints.kubernetes.io/last-change-trigger-time",
    "kubectl.kubernetes.io/last-applied-configuration",
];

/// Whether this controller manages `slice` (its [`MANAGED_BY`] label says so).
pub fn ours(slice: &EndpointSlice) -> bool {
    label(slice, MANAGED_BY) == Some(CONTROLLER_NAME)
}

/// Whether `endpoints` is to be mirrored, its Service being `service`: the Service
/// exists without a selector, and the Endpoints is neither marked skip-mirror nor a
/// leader-election record.
pub fn mirrored(endpoints: &Endpoints, service: Option<&Service>) -> bool {
    let skip = endpoints
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SKIP_MIRROR))
        .is_some_and(|v| v == "true");
    let leader = endpoints
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(LEADER));
    service.is_some_and(|s| !crate::endpoints::managed(s)) && !skip && !leader
}

/// The labels of the mirrored slices: the Endpoints' own (less [`SKIP_MIRROR`]),
/// [`SERVICE_NAME`] and [`MANAGED_BY`].
pub fn labels(endpoints: &Endpoints) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = endpoints
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != SKIP_MIRROR)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(
        SERVICE_NAME.into(),
        endpoints.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(MANAGED_BY.into(), CONTROLLER_NAME.into());
    labels
}

/// The annotations of the mirrored slices: the Endpoints' own, less the last-change
/// trigger time and the last-applied configuration.
pub fn annotations(endpoints: &Endpoints) -> BTreeMap<String, String> {
    endpoints
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Whether `slice` has an owner reference to `endpoints` (this incarnation of it).
pub fn owned_by(slice: &EndpointSlice, endpoints: &Endpoints) -> bool {
    slice.metadata.owner_references.iter().flatten().any(|o| {
        o.kind == "Endpoints"
            && o.api_version == "v1"
            && Some(&o.uid) == endpoints.metadata.uid.as_ref()
    })
}

/// The endpoint of one address (kube's `addressToEndpoint`), if it is IPv4.
fn endpoint(address: &EndpointAddress, ready: bool) -> Option<(Ipv4Addr, Endpoint)> {
    let ip: Ipv4Addr = address.ip.parse().ok()?;
    let endpoint = Endpoint {
        addresses: vec![ip.to_string()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(ready),
            terminating: Some(false),
        }),
        hostname: address.hostname.clone().filter(|h| !h.is_empty()),
        node_name: address.node_name.clone().filter(|n| !n.is_empty()),
        target_ref: address.target_ref.clone(),
        ..Default::default()
    };
    Some((ip, endpoint))
}

/// The endpoints of one port set, by address.
struct Group {
    ports: Vec<EndpointPort>,
    endpoints: BTreeMap<Ipv4Addr, Endpoint>,
}

/// What the mirrored slices should hold, by port set (only port sets with an endpoint).
fn desired(endpoints: &Endpoints) -> BTreeMap<PortKey, Group> {
    // Merged by port set: ready addresses, then the not-ready ones not also ready.
    type Merged = (
        Vec<EndpointPort>,
        BTreeMap<Ipv4Addr, Endpoint>,
        BTreeMap<Ipv4Addr, Endpoint>,
    );
    let mut merged: BTreeMap<PortKey, Merged> = BTreeMap::new();
    for subset in endpoints.subsets.iter().flatten() {
        let mut ports: Vec<EndpointPort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        ports.sort_by(|a, b| {
            port_key(std::slice::from_ref(a)).cmp(&port_key(std::slice::from_ref(b)))
        });
        ports.dedup();
        let entry = merged
            .entry(port_key(&ports))
            .or_insert_with(|| (ports, BTreeMap::new(), BTreeMap::new()));
        for (ip, e) in subset
            .addresses
            .iter()
            .flatten()
            .filter_map(|a| endpoint(a, true))
        {
            entry.1.insert(ip, e);
        }
        let not_ready = subset.not_ready_addresses.iter().flatten();
        for (ip, e) in not_ready.filter_map(|a| endpoint(a, false)) {
            entry.2.entry(ip).or_insert(e);
        }
    }
    let mut groups = BTreeMap::new();
    for (key, (ports, ready, not_ready)) in merged {
        let not_ready: Vec<(Ipv4Addr, Endpoint)> = not_ready
            .into_iter()
            .filter(|(ip, _)| !ready.contains_key(ip))
            .collect();
        let endpoints: BTreeMap<Ipv4Addr, Endpoint> = ready
            .into_iter()
            .chain(not_ready)
            .take(MAX_ENDPOINTS_PER_SUBSET)
            .collect();
        if !endpoints.is_empty() {
            groups.insert(key, Group { ports, endpoints });
        }
    }
    groups
}

/// A new mirrored slice of `endpoints` (named by the API server from `NAME-`).
pub fn new_slice(endpoints: &Endpoints, ports: Vec<EndpointPort>) -> EndpointSlice {
    let owner = crate::common::controller_ref("v1", "Endpoints", &endpoints.metadata);
    let annotations = annotations(endpoints);
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                endpoints.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: endpoints.metadata.namespace.clone(),
            labels: Some(labels(endpoints)),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        address_type: ADDRESS_TYPE.into(),
        endpoints: Vec::new(),
        ports: Some(ports),
    }
}

/// The address an endpoint is keyed by.
fn address(e: &Endpoint) -> Option<Ipv4Addr> {
    e.addresses.first()?.parse().ok()
}

/// Fills `slice` from `remaining` (lowest addresses first) up to the limit, sorted.
fn fill(slice: &mut EndpointSlice, remaining: &mut BTreeMap<Ipv4Addr, Endpoint>) {
    while slice.endpoints.len() < MAX_ENDPOINTS_PER_SLICE {
        let Some((_, e)) = remaining.pop_first() else {
            break;
        };
        slice.endpoints.push(e);
    }
    slice.endpoints.sort_by_key(address);
}

/// Whether `slice`'s metadata is what the mirrored slices' should be.
fn metadata_current(
    slice: &EndpointSlice,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> bool {
    slice.metadata.labels.as_ref() == Some(labels)
        && slice.metadata.annotations.clone().unwrap_or_default() == *annotations
}

/// The writes that make `existing` (the slices [`ours`] labelled with the Endpoints'
/// name) mirror `endpoints`, whose Service is `service`. When the Endpoints is not to
/// be [`mirrored`], they are all deleted.
pub fn reconcile(
    endpoints: &Endpoints,
    service: Option<&Service>,
    existing: &[&EndpointSlice],
) -> Changes {
    let mut changes = Changes::default();
    if !mirrored(endpoints, service) {
        changes.delete = existing.iter().map(|s| (*s).clone()).collect();
        return changes;
    }
    let labels = labels(endpoints);
    let annotations = annotations(endpoints);
    let mut desired = desired(endpoints);
    let mut by_key = crate::endpoint_slices::by_port_set(
        existing,
        |key| desired.contains_key(key),
        |s| owned_by(s, endpoints),
        &mut changes,
    );
    for (key, group) in &mut desired {
        let remaining = &mut group.endpoints;
        let mut updated: Vec<EndpointSlice> = Vec::new();
        let mut emptied: Vec<EndpointSlice> = Vec::new();
        let mut unchanged: Vec<&EndpointSlice> = Vec::new();
        for slice in by_key.remove(key).unwrap_or_default() {
            // The endpoints still wanted, as wanted now; an address in two slices
            // stays in the first.
            let mut kept: Vec<Endpoint> = slice
                .endpoints
                .iter()
                .filter_map(|e| remaining.remove(&address(e)?))
                .collect();
            kept.sort_by_key(address);
            if kept == slice.endpoints
                && metadata_current(slice, &labels, &annotations)
                && slice.ports.as_deref().unwrap_or_default() == group.ports.as_slice()
            {
                unchanged.push(slice);
                continue;
            }
            let mut slice = slice.clone();
            slice.endpoints = kept;
            slice.metadata.labels = Some(labels.clone());
            slice.metadata.annotations = (!annotations.is_empty()).then(|| annotations.clone());
            slice.ports = Some(group.ports.clone());
            if slice.endpoints.is_empty() {
                emptied.push(slice);
            } else {
                updated.push(slice);
            }
        }
        // The fullest slices being written anyway take what is left first, then the
        // emptied ones (written or deleted anyway).
        updated.sort_by_key(|s| std::cmp::Reverse(s.endpoints.len()));
        for slice in &mut updated {
            fill(slice, remaining);
        }
        for mut slice in emptied {
            if remaining.is_empty() {
                changes.delete.push(slice);
            } else {
                fill(&mut slice, remaining);
                updated.push(slice);
            }
        }
        while !remaining.is_empty() {
            // What is left fits whole in an unchanged slice: the fullest such one.
            let fits = unchanged
                .iter()
                .enumerate()
                .filter(|(_, s)| s.endpoints.len() + remaining.len() <= MAX_ENDPOINTS_PER_SLICE)
                .max_by_key(|(i, s)| (s.endpoints.len(), std::cmp::Reverse(*i)))
                .map(|(i, _)| i);
            let mut slice = match fits {
                Some(i) => unchanged.remove(i).clone(),
                None => new_slice(endpoints, group.ports.clone()),
            };
            fill(&mut slice, remaining);
            if slice.metadata.name.is_some() {
                updated.push(slice);
            } else {
                changes.create.push(slice);
            }
        }
        changes.update.extend(updated);
    }
    changes
}

#[cfg(test)]
#[path = "endpoint_slice_mirroring_tests.rs"]
mod tests;

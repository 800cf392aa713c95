//! Objects as the informers keep them ([`trimmed`]): without their managedFields,
//! and as compact as their fields allow.
//!
//! serde_json tells a `Vec` nothing of how many elements are coming, so a decoded
//! list grows as it is pushed to: a list of one element of up to 1 KiB (a
//! `ContainerStatus` is 752 bytes, a `PodCondition` 160) has room for four, five
//! conditions room for eight. A decoded pod as a node reports it carries about
//! 4.8 KB of such room (15.3 KB of heap, 10.5 KB once fitted); the informers keep
//! every pod for as long as the member leads, 150,000 of them at Kubernetes' limit.
//! The lists of pods and nodes that hold that room (containers, their ports, env and
//! mounts, volumes, tolerations, affinity terms, conditions, statuses, addresses,
//! images) are fitted to their length here (a reallocation only where there is
//! room), and every kind's owner references and finalizers.

use std::any::Any;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerStatus, Node, Pod, PodAffinityTerm, Volume,
};

/// `obj` as an informer keeps it: without its managedFields, its lists no longer
/// than they are.
pub(crate) fn trimmed<K: kube::Resource + 'static>(mut obj: K) -> Arc<K> {
    obj.meta_mut().managed_fields = None;
    compact(&mut obj);
    Arc::new(obj)
}

/// Fits `obj`'s lists to their lengths: every kind's metadata, and the lists of
/// pods and nodes.
pub(crate) fn compact<K: kube::Resource + 'static>(obj: &mut K) {
    let meta = obj.meta_mut();
    fit(&mut meta.owner_references);
    fit(&mut meta.finalizers);
    let any: &mut dyn Any = obj;
    if let Some(pod) = any.downcast_mut::<Pod>() {
        compact_pod(pod);
    } else if let Some(node) = any.downcast_mut::<Node>() {
        compact_node(node);
    }
}

fn fit<T>(list: &mut Option<Vec<T>>) {
    if let Some(list) = list {
        list.shrink_to_fit();
    }
}

/// Fits `list` and, with `each`, every element's own lists.
fn fit_each<T>(list: &mut Option<Vec<T>>, each: impl FnMut(&mut T)) {
    if let Some(list) = list {
        list.shrink_to_fit();
        list.iter_mut().for_each(each);
    }
}

fn compact_pod(pod: &mut Pod) {
    if let Some(spec) = pod.spec.as_mut() {
        spec.containers.shrink_to_fit();
        spec.containers.iter_mut().for_each(compact_container);
        fit_each(&mut spec.init_containers, compact_container);
        fit(&mut spec.ephemeral_containers);
        fit_each(&mut spec.volumes, compact_volume);
        fit(&mut spec.tolerations);
        fit_each(&mut spec.topology_spread_constraints, |c| {
            fit(&mut c.match_label_keys);
        });
        fit(&mut spec.host_aliases);
        fit(&mut spec.image_pull_secrets);
        fit(&mut spec.readiness_gates);
        fit(&mut spec.resource_claims);
        fit(&mut spec.scheduling_gates);
        if let Some(affinity) = spec.affinity.as_mut() {
            compact_affinity(affinity);
        }
    }
    if let Some(status) = pod.status.as_mut() {
        fit(&mut status.conditions);
        fit_each(&mut status.container_statuses, compact_container_status);
        fit_each(
            &mut status.init_container_statuses,
            compact_container_status,
        );
        fit_each(
            &mut status.ephemeral_container_statuses,
            compact_container_status,
        );
        fit(&mut status.host_ips);
        fit(&mut status.pod_ips);
        fit(&mut status.resource_claim_statuses);
    }
}

fn compact_container(c: &mut Container) {
    fit(&mut c.args);
    fit(&mut c.command);
    fit(&mut c.env);
    fit(&mut c.env_from);
    fit(&mut c.ports);
    fit(&mut c.resize_policy);
    fit(&mut c.volume_devices);
    fit(&mut c.volume_mounts);
}

fn compact_container_status(s: &mut ContainerStatus) {
    fit(&mut s.volume_mounts);
    fit(&mut s.allocated_resources_status);
}

/// The lists of the volumes every pod has (a service account's projected token,
/// ConfigMaps, Secrets, the downward API).
fn compact_volume(v: &mut Volume) {
    if let Some(projected) = v.projected.as_mut() {
        fit_each(&mut projected.sources, |source| {
            if let Some(c) = source.config_map.as_mut() {
                fit(&mut c.items);
            }
            if let Some(s) = source.secret.as_mut() {
                fit(&mut s.items);
            }
            if let Some(d) = source.downward_api.as_mut() {
                fit(&mut d.items);
            }
        });
    }
    if let Some(c) = v.config_map.as_mut() {
        fit(&mut c.items);
    }
    if let Some(s) = v.secret.as_mut() {
        fit(&mut s.items);
    }
    if let Some(d) = v.downward_api.as_mut() {
        fit(&mut d.items);
    }
}

fn compact_affinity(a: &mut Affinity) {
    if let Some(node) = a.node_affinity.as_mut() {
        if let Some(required) = node
            .required_during_scheduling_ignored_during_execution
            .as_mut()
        {
            required.node_selector_terms.shrink_to_fit();
        }
        fit(&mut node.preferred_during_scheduling_ignored_during_execution);
    }
    let term = |t: &mut PodAffinityTerm| {
        fit(&mut t.match_label_keys);
        fit(&mut t.mismatch_label_keys);
        fit(&mut t.namespaces);
    };
    if let Some(pod) = a.pod_affinity.as_mut() {
        fit_each(
            &mut pod.required_during_scheduling_ignored_during_execution,
            term,
        );
        fit_each(
            &mut pod.preferred_during_scheduling_ignored_during_execution,
            |w| {
                term(&mut w.pod_affinity_term);
            },
        );
    }
    if let Some(anti) = a.pod_anti_affinity.as_mut() {
        fit_each(
            &mut anti.required_during_scheduling_ignored_during_execution,
            term,
        );
        fit_each(
            &mut anti.preferred_during_scheduling_ignored_during_execution,
            |w| {
                term(&mut w.pod_affinity_term);
            },
        );
    }
}

fn compact_node(node: &mut Node) {
    if let Some(spec) = node.spec.as_mut() {
        fit(&mut spec.pod_cidrs);
        fit(&mut spec.taints);
    }
    if let Some(status) = node.status.as_mut() {
        fit(&mut status.addresses);
        fit(&mut status.conditions);
        fit_each(&mut status.images, |i| fit(&mut i.names));
        fit(&mut status.runtime_handlers);
        fit(&mut status.volumes_attached);
        fit(&mut status.volumes_in_use);
    }
}

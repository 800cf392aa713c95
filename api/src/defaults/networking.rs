//! Service and network defaults: Services, Endpoints and EndpointSlices (core/v1,
//! discovery/v1), NetworkPolicies and IngressClasses (networking/v1).

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{IngressClass, NetworkPolicy};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{set, set_str};

pub(super) fn service(s: &mut Service) {
    let Some(spec) = &mut s.spec else { return };
    set_str(&mut spec.type_, "ClusterIP");
    set_str(&mut spec.session_affinity, "None");
    // A client stays with its endpoint three hours unless told otherwise.
    if spec.session_affinity.as_deref() == Some("ClientIP") {
        let client_ip = spec
            .session_affinity_config
            .get_or_insert_with(Default::default)
            .client_ip
            .get_or_insert_with(Default::default);
        set(&mut client_ip.timeout_seconds, 10_800);
    }
    let kind = spec.type_.clone().unwrap_or_default();
    if kind != "ExternalName" {
        set_str(&mut spec.internal_traffic_policy, "Cluster");
    }
    if matches!(kind.as_str(), "NodePort" | "LoadBalancer") {
        set_str(&mut spec.external_traffic_policy, "Cluster");
    }
    for port in spec.ports.iter_mut().flatten() {
        set_str(&mut port.protocol, "TCP");
        set(&mut port.target_port, IntOrString::Int(port.port));
    }
}

pub(super) fn endpoints(e: &mut Endpoints) {
    for port in e
        .subsets
        .iter_mut()
        .flatten()
        .flat_map(|s| s.ports.iter_mut().flatten())
    {
        set_str(&mut port.protocol, "TCP");
    }
}

/// discovery/v1 `SetDefaults_EndpointPort`: an unnamed port is named `""`, and its
/// protocol is TCP.
pub(super) fn endpoint_slice(e: &mut EndpointSlice) {
    for port in e.ports.iter_mut().flatten() {
        set(&mut port.name, String::new());
        set_str(&mut port.protocol, "TCP");
    }
}

/// networking/v1 `SetDefaults_NetworkPolicy`: a policy without `policyTypes` is an
/// Ingress policy, and an Egress one too when it has egress rules; ports are TCP.
pub(super) fn network_policy(n: &mut NetworkPolicy) {
    let Some(spec) = &mut n.spec else { return };
    if spec.policy_types.as_ref().is_none_or(|t| t.is_empty()) {
        let mut types = vec!["Ingress".to_string()];
        if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
            types.push("Egress".to_string());
        }
        spec.policy_types = Some(types);
    }
    let ingress = spec
        .ingress
        .iter_mut()
        .flatten()
        .flat_map(|r| r.ports.iter_mut().flatten());
    let egress = spec
        .egress
        .iter_mut()
        .flatten()
        .flat_map(|r| r.ports.iter_mut().flatten());
    for port in ingress.chain(egress) {
        set_str(&mut port.protocol, "TCP");
    }
}

/// networking/v1 `SetDefaults_IngressClass`: parameters are cluster-scoped unless
/// said otherwise.
pub(super) fn ingress_class(i: &mut IngressClass) {
    if let Some(params) = i.spec.as_mut().and_then(|s| s.parameters.as_mut()) {
        set_str(&mut params.scope, "Cluster");
    }
}

//! Services and Endpoints.

use std::collections::HashSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Endpoints, Service};

use super::{Errors, FieldError, meta, pod::PROTOCOLS};
use crate::names;
use crate::path::FieldPath;

const SERVICE_TYPES: &[&str] = &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];

pub(super) fn service(errs: &mut Errors, svc: &Service) {
    let path = FieldPath::root().key("spec");
    let Some(spec) = &svc.spec else {
        return errs.required(&path);
    };
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    errs.one_of(&path.key("type"), kind, SERVICE_TYPES);
    let cluster_ip = spec.cluster_ip.as_deref().unwrap_or("");
    let headless = cluster_ip == "None";
    if !cluster_ip.is_empty() && !headless && cluster_ip.parse::<IpAddr>().is_err() {
        errs.invalid(
            &path.key("clusterIP"),
            cluster_ip,
            "must be empty, 'None', or a valid IP address",
        );
    }
    let ports = spec.ports.as_deref().unwrap_or_default();
    if kind == "ExternalName" {
        match spec.external_name.as_deref() {
            None | Some("") => errs.required(&path.key("externalName")),
            Some(n) => errs.syntax(&path.key("externalName"), n, names::dns1123_subdomain(n)),
        }
        if !cluster_ip.is_empty() && !headless {
            errs.forbidden(
                &path.key("clusterIP"),
                "may not be set for type 'ExternalName'",
            );
        }
    } else if ports.is_empty() && !headless {
        errs.required(&path.key("ports"));
    }
    let node_ports_allowed = matches!(kind, "NodePort" | "LoadBalancer");
    let mut port_names = HashSet::new();
    let mut port_protocols = HashSet::new();
    let mut node_ports = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.key("ports").index(i);
        match port.name.as_deref() {
            None | Some("") if ports.len() > 1 => errs.required(&p.key("name")),
            None | Some("") => {}
            Some(name) => {
                errs.syntax(&p.key("name"), name, names::dns1123_label(name));
                if !port_names.insert(name.to_string()) {
                    errs.duplicate(&p.key("name"), name);
                }
            }
        }
        errs.port(&p.key("port"), port.port);
        let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
        errs.one_of(&p.key("protocol"), &protocol, PROTOCOLS);
        if !port_protocols.insert((port.port, protocol.clone())) {
            errs.duplicate(&p, format!("{}/{protocol}", port.port));
        }
        if let Some(target) = &port.target_port {
            errs.port_or_name(&p.key("targetPort"), target);
        }
        if let Some(np) = port.node_port.filter(|n| *n != 0) {
            if !node_ports_allowed {
                errs.forbidden(
                    &p.key("nodePort"),
                    format!("may not be used when `type` is '{kind}'"),
                );
            } else if !(1..=65535).contains(&np) {
                // Whether it is in the server's --service-node-port-range (and free)
                // the server's allocator says, as Kubernetes' does.
                errs.port(&p.key("nodePort"), np);
            } else if !node_ports.insert((np, protocol)) {
                errs.duplicate(&p.key("nodePort"), np);
            }
        }
    }
    meta::labels(errs, &path.key("selector"), spec.selector.as_ref());
    errs.opt_one_of(
        &path.key("sessionAffinity"),
        spec.session_affinity.as_ref(),
        &["None", "ClientIP"],
    );
    if let Some(config) = &spec.session_affinity_config {
        let config_path = path.key("sessionAffinityConfig");
        match spec.session_affinity.as_deref().unwrap_or("None") {
            "ClientIP" => {
                // Kubernetes' MaxClientIPServiceAffinitySeconds: one day.
                let timeout = config.client_ip.as_ref().and_then(|c| c.timeout_seconds);
                if let Some(t) = timeout.filter(|t| !(1..=86_400).contains(t)) {
                    errs.invalid(
                        &config_path.key("clientIP").key("timeoutSeconds"),
                        t,
                        "must be greater than 0 and less than 86400",
                    );
                }
            }
            // Any config at all, even an empty one (kube's ValidateService).
            "None" => errs.forbidden(
                &config_path,
                "must not be set when session affinity is None",
            ),
            // Unsupported: said above.
            _ => {}
        }
    }
    // Load-balancer-only fields (kube's ValidateService, validateLoadBalancerClassField).
    let load_balancer_only = "may only be used when `type` is 'LoadBalancer'";
    if spec.allocate_load_balancer_node_ports.is_some() && kind != "LoadBalancer" {
        errs.forbidden(
            &path.key("allocateLoadBalancerNodePorts"),
            load_balancer_only,
        );
    }
    if let Some(class) = &spec.load_balancer_class {
        if kind == "LoadBalancer" {
            errs.syntax(
                &path.key("loadBalancerClass"),
                class,
                names::qualified_name(class),
            );
        } else {
            errs.forbidden(&path.key("loadBalancerClass"), load_balancer_only);
        }
    }
    if let Some(hc) = spec.health_check_node_port.filter(|p| *p != 0) {
        let needs =
            kind == "LoadBalancer" && spec.external_traffic_policy.as_deref() == Some("Local");
        if !needs {
            errs.invalid(
                &path.key("healthCheckNodePort"),
                hc,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            );
        } else {
            errs.port(&path.key("healthCheckNodePort"), hc);
        }
    }
    if let Some(policy) = &spec.external_traffic_policy {
        if node_ports_allowed {
            errs.one_of(
                &path.key("externalTrafficPolicy"),
                policy,
                &["Cluster", "Local"],
            );
        } else {
            errs.forbidden(
                &path.key("externalTrafficPolicy"),
                "may only be set for externally-accessible services (NodePort, LoadBalancer)",
            );
        }
    }
    errs.opt_one_of(
        &path.key("internalTrafficPolicy"),
        spec.internal_traffic_policy.as_ref(),
        &["Cluster", "Local"],
    );
}

/// What may not change when a Service is updated from `old` to `new`, beyond its
/// ClusterIP (kube's `ValidateServiceUpdate`): the `loadBalancerClass` of a Service
/// that stays a load balancer (the controller of the class it had would otherwise
/// keep its ingress written; leaving `type: LoadBalancer` clears the class and the
/// ingress), and the `healthCheckNodePort` of one that keeps needing it.
pub fn service_update(new: &Service, old: &Service) -> Vec<FieldError> {
    let mut errs = Errors::default();
    let (Some(spec), Some(old_spec)) = (&new.spec, &old.spec) else {
        return errs.0;
    };
    let path = FieldPath::root().key("spec");
    let load_balancer = |t: Option<&String>| t.is_some_and(|t| t == "LoadBalancer");
    let both = load_balancer(spec.type_.as_ref()) && load_balancer(old_spec.type_.as_ref());
    if both && spec.load_balancer_class != old_spec.load_balancer_class {
        errs.invalid(
            &path.key("loadBalancerClass"),
            spec.load_balancer_class.as_deref().unwrap_or("null"),
            "may not change once set",
        );
    }
    let needs_health_check = |s: &k8s_openapi::api::core::v1::ServiceSpec| {
        load_balancer(s.type_.as_ref()) && s.external_traffic_policy.as_deref() == Some("Local")
    };
    if needs_health_check(spec)
        && needs_health_check(old_spec)
        && spec.health_check_node_port != old_spec.health_check_node_port
    {
        errs.forbidden(&path.key("healthCheckNodePort"), "field is immutable");
    }
    errs.0
}

pub(super) fn endpoints(errs: &mut Errors, ep: &Endpoints) {
    for (i, subset) in ep.subsets.iter().flatten().enumerate() {
        let p = FieldPath::root().key("subsets").index(i);
        for field in ["addresses", "notReadyAddresses"] {
            let addrs = if field == "addresses" {
                &subset.addresses
            } else {
                &subset.not_ready_addresses
            };
            for (j, a) in addrs.iter().flatten().enumerate() {
                if a.ip.parse::<IpAddr>().is_err() {
                    errs.invalid(
                        &p.key(field).index(j).key("ip"),
                        &a.ip,
                        "must be a valid IP address",
                    );
                }
            }
        }
        let ports = subset.ports.as_deref().unwrap_or_default();
        for (j, port) in ports.iter().enumerate() {
            let pp = p.key("ports").index(j);
            errs.port(&pp.key("port"), port.port);
            errs.opt_one_of(&pp.key("protocol"), port.protocol.as_ref(), PROTOCOLS);
            if ports.len() > 1 && port.name.as_deref().unwrap_or("").is_empty() {
                errs.required(&pp.key("name"));
            }
        }
    }
}

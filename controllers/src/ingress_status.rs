//! The status of the Ingresses the nodes' built-in proxy serves: each served Ingress
//! (`rk8s_api::ingress::served`) has the addresses of the nodes that serve load
//! balancers as its `status.loadBalancer.ingress` (`ip`), as k3s' ServiceLB gives a
//! LoadBalancer Service ([`crate::service_lb::nodes_addresses`]: Ready nodes, their
//! ExternalIPs else InternalIPs, IPv4, sorted, each once) — every node's proxy
//! answers on its ports 80 and 443. An Ingress that is no longer served (another
//! class now) loses the addresses written here, but only when what it shows is a
//! subset of the nodes' addresses: an address another controller wrote is left to
//! it. Pure: the caller passes the objects.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::networking::v1::{
    Ingress, IngressClass, IngressLoadBalancerIngress, IngressLoadBalancerStatus, IngressStatus,
};

use crate::service_lb::nodes_addresses;

/// The addresses `ingress` shows now.
fn shown(ingress: &Ingress) -> Vec<String> {
    ingress
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
        .collect()
}

/// Every Ingress whose status should change, with that status in it.
pub fn decide(
    ingresses: &[Arc<Ingress>],
    classes: &[Arc<IngressClass>],
    nodes: &[Arc<Node>],
) -> Vec<Ingress> {
    let addresses: BTreeSet<Ipv4Addr> = nodes_addresses(nodes.iter().map(|n| n.as_ref()))
        .into_values()
        .flatten()
        .collect();
    let ours: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    let mut out = Vec::new();
    for ingress in ingresses {
        let now = shown(ingress);
        let served = rk8s_api::ingress::served(ingress, classes.iter().map(|c| c.as_ref()));
        let wanted = if served {
            ours.clone()
        } else if !now.is_empty() && now.iter().all(|a| ours.contains(a)) {
            Vec::new()
        } else {
            continue;
        };
        if wanted == now {
            continue;
        }
        let mut changed = (**ingress).clone();
        let status = changed.status.get_or_insert_with(IngressStatus::default);
        status.load_balancer = Some(IngressLoadBalancerStatus {
            ingress: (!wanted.is_empty()).then(|| {
                wanted
                    .iter()
                    .map(|ip| IngressLoadBalancerIngress {
                        ip: Some(ip.clone()),
                        ..Default::default()
                    })
                    .collect()
            }),
        });
        out.push(changed);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn node(name: &str, ip: &str, ready: bool) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                    "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
            }))
            .unwrap(),
        )
    }

    fn classes() -> Vec<Arc<IngressClass>> {
        vec![Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "rk8s", "annotations": {rk8s_api::ingress::DEFAULT_CLASS_ANNOTATION: "true"}},
                "spec": {"controller": rk8s_api::ingress::CONTROLLER}
            }))
            .unwrap(),
        )]
    }

    fn ingress(name: &str, class: Option<&str>, shown: &[&str]) -> Arc<Ingress> {
        let lb: Vec<_> = shown.iter().map(|ip| json!({"ip": ip})).collect();
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"ingressClassName": class},
                "status": {"loadBalancer": {"ingress": lb}}
            }))
            .unwrap(),
        )
    }

    fn ips(i: &Ingress) -> Vec<String> {
        shown(i)
    }

    #[test]
    fn served_ingresses_show_the_ready_nodes_addresses() {
        let nodes = [
            node("b", "10.0.0.2", true),
            node("a", "10.0.0.1", true),
            node("c", "10.0.0.3", false),
        ];
        let work = decide(
            &[
                ingress("new", Some("rk8s"), &[]),
                ingress("same", None, &["10.0.0.1", "10.0.0.2"]),
                ingress("stale", Some("rk8s"), &["10.0.0.3"]),
            ],
            &classes(),
            &nodes,
        );
        let names: Vec<_> = work
            .iter()
            .map(|i| i.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["new", "stale"]);
        assert_eq!(ips(&work[0]), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(ips(&work[1]), ["10.0.0.1", "10.0.0.2"]);
    }

    #[test]
    fn ingresses_no_longer_served_lose_only_our_addresses() {
        let nodes = [node("a", "10.0.0.1", true)];
        let work = decide(
            &[
                ingress("moved", Some("nginx"), &["10.0.0.1"]),
                ingress("theirs", Some("nginx"), &["192.0.2.7"]),
            ],
            &classes(),
            &nodes,
        );
        assert_eq!(work.len(), 1);
        assert_eq!(work[0].metadata.name.as_deref(), Some("moved"));
        assert!(ips(&work[0]).is_empty());
    }
}

//! The control plane's own identities and the least rights each needs, as
//! kube-apiserver bootstraps them (`bootstrappolicy/policy.go`): the scheduler runs
//! as user `system:kube-scheduler`, bound to the ClusterRoles `system:kube-scheduler`
//! (read what it places pods by, bind pods, write their status and events) and
//! `system:volume-scheduler` (claims and volumes it binds to a node). Reconciled at
//! every start with the other defaults ([`super::bootstrap::ensure_defaults`]).

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule};

use super::bootstrap::{READ, binding_to, role, rule};

/// The scheduler's user name.
pub const SCHEDULER: &str = "system:kube-scheduler";

/// Kubernetes' `ReadUpdate`.
const READ_UPDATE: &str = "get list watch update patch";

/// Kubernetes' `eventsRule()`: events written through either API.
fn events() -> Vec<PolicyRule> {
    vec![
        rule("create update patch", "", "events"),
        rule("create update patch", "events.k8s.io", "events"),
    ]
}

/// The components' ClusterRoles.
pub fn cluster_roles() -> Vec<ClusterRole> {
    let scheduler = [
        vec![
            // Checks of API access (these creates change nothing).
            rule("create", "authentication.k8s.io", "tokenreviews"),
            rule("create", "authorization.k8s.io", "subjectaccessreviews"),
            // Leader election.
            rule("create", "coordination.k8s.io", "leases"),
            PolicyRule {
                resource_names: Some(vec!["kube-scheduler".to_string()]),
                ..rule("get update", "coordination.k8s.io", "leases")
            },
            rule(READ, "", "nodes"),
        ],
        events(),
        vec![
            rule(READ, "", "pods"),
            rule("delete", "", "pods"),
            rule("create", "", "pods/binding bindings"),
            rule("patch update", "", "pods/status"),
            // What selects pods (spreading).
            rule(READ, "", "services replicationcontrollers"),
            rule(READ, "apps", "replicasets"),
            rule(READ, "extensions", "replicasets"),
            rule(READ, "apps", "statefulsets"),
            // What pods use, or applies to them.
            rule(READ, "policy", "poddisruptionbudgets"),
            rule(READ, "", "persistentvolumeclaims persistentvolumes"),
            rule(READ, "storage.k8s.io", "csinodes"),
            rule(READ, "", "namespaces"),
            rule(READ, "storage.k8s.io", "csidrivers csistoragecapacities"),
        ],
    ]
    .concat();
    vec![
        role(SCHEDULER, &[], scheduler),
        role(
            "system:volume-scheduler",
            &[],
            vec![
                rule(READ_UPDATE, "", "persistentvolumes"),
                rule(READ, "storage.k8s.io", "storageclasses"),
                rule(READ_UPDATE, "", "persistentvolumeclaims"),
            ],
        ),
    ]
}

/// The components' ClusterRoleBindings (kube's names).
pub fn cluster_role_bindings() -> Vec<ClusterRoleBinding> {
    vec![
        binding_to(SCHEDULER, SCHEDULER, "User", &[SCHEDULER]),
        binding_to(
            "system:volume-scheduler",
            "system:volume-scheduler",
            "User",
            &[SCHEDULER],
        ),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::rbac::{Attributes, Target, allows};

    fn may(verb: &str, group: &str, resource: &str, sub: Option<&str>) -> bool {
        let rules: Vec<PolicyRule> = cluster_roles()
            .into_iter()
            .flat_map(|r| r.rules.unwrap_or_default())
            .collect();
        let target = Target::Resource {
            group,
            resource,
            subresource: sub,
            name: None,
        };
        let attrs = Attributes {
            verb,
            namespace: None,
            target,
        };
        rules.iter().any(|r| allows(r, &attrs))
    }

    #[test]
    fn the_scheduler_may_bind_and_read_but_not_write_workloads() {
        assert!(may("create", "", "pods", Some("binding")));
        assert!(may("patch", "", "pods", Some("status")));
        assert!(may("patch", "", "persistentvolumeclaims", None));
        assert!(may("create", "", "events", None));
        assert!(may("watch", "", "nodes", None));
        assert!(!may("create", "", "pods", None));
        assert!(!may("update", "", "nodes", None));
        assert!(!may("get", "", "secrets", None));
        assert!(!may("delete", "apps", "deployments", None));
    }
}

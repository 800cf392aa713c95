//! The control plane's own identities and the least rights each needs, as
//! kube-apiserver bootstraps them (`bootstrappolicy/policy.go`): the scheduler runs
//! as user `system:kube-scheduler`, bound to the ClusterRoles `system:kube-scheduler`
//! (read what it places pods by, bind pods, write their status and events) and
//! `system:volume-scheduler` (claims and volumes it binds to a node); the shared
//! informers read as `system:kube-controller-manager` (list and watch everything);
//! each controller is its ServiceAccount in `kube-system` with kube's role for it
//! ([`super::controller_roles`]). Reconciled at every start with the other defaults
//! ([`super::bootstrap::ensure_defaults`]).

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule};
use rk8s_api::identities::{CONTROLLER_MANAGER, SCHEDULER, controller_of, leases};

use super::bootstrap::{READ, binding_to, role, rule};
use super::controller_roles;

/// Kubernetes' `ReadUpdate`.
const READ_UPDATE: &str = "get list watch update patch";

/// Kubernetes' `eventsRule()`.
fn events() -> Vec<PolicyRule> {
    vec![controller_roles::events()]
}

/// Whether `user` is one of the control plane's components (the default bindings
/// name it).
pub fn is_component(user: &str) -> bool {
    user == SCHEDULER
        || user == CONTROLLER_MANAGER
        || controller_of(user).is_some_and(|c| controller_roles::controllers().any(|n| n == c))
}

/// What the shared informers need: list and watch every kind, nothing else. (kube's
/// `system:kube-controller-manager` role also lets it make ServiceAccounts, their
/// Secrets and tokens, for the controllers' credentials; rk8s' controllers get theirs
/// in-process, so the informers' identity cannot mint a token for anyone.)
fn controller_manager() -> ClusterRole {
    let rules = vec![
        PolicyRule {
            api_groups: Some(vec!["*".to_string()]),
            ..rule("list watch", "", "*")
        },
        // Leader election (the Lease rk8s' leader holds for the controllers).
        rule("create", "coordination.k8s.io", "leases"),
        PolicyRule {
            resource_names: Some(vec![leases::CONTROLLER_MANAGER.to_string()]),
            ..rule("get update", "coordination.k8s.io", "leases")
        },
    ];
    role(CONTROLLER_MANAGER, &[], rules)
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
                resource_names: Some(vec![leases::SCHEDULER.to_string()]),
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
    let mut roles = vec![
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
        controller_manager(),
    ];
    roles.extend(controller_roles::cluster_roles());
    roles
}

/// The components' ClusterRoleBindings (kube's names).
pub fn cluster_role_bindings() -> Vec<ClusterRoleBinding> {
    let mut bindings = vec![
        binding_to(SCHEDULER, SCHEDULER, "User", &[SCHEDULER]),
        binding_to(
            "system:volume-scheduler",
            "system:volume-scheduler",
            "User",
            &[SCHEDULER],
        ),
        binding_to(
            CONTROLLER_MANAGER,
            CONTROLLER_MANAGER,
            "User",
            &[CONTROLLER_MANAGER],
        ),
    ];
    bindings.extend(controller_roles::cluster_role_bindings());
    bindings
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::rbac::{Attributes, Target, allows};
    use rk8s_api::identities::{controller, controller_user};

    /// The rules the default bindings give `user`.
    fn rules_of(user: &str) -> Vec<PolicyRule> {
        let bound: Vec<String> = cluster_role_bindings()
            .into_iter()
            .filter(|b| {
                b.subjects.iter().flatten().any(|s| match s.kind.as_str() {
                    "User" => s.name == user,
                    "ServiceAccount" => {
                        let ns = s.namespace.as_deref().unwrap_or_default();
                        format!("system:serviceaccount:{ns}:{}", s.name) == user
                    }
                    _ => false,
                })
            })
            .map(|b| b.role_ref.name)
            .collect();
        cluster_roles()
            .into_iter()
            .filter(|r| bound.iter().any(|b| Some(b) == r.metadata.name.as_ref()))
            .flat_map(|r| r.rules.unwrap_or_default())
            .collect()
    }

    /// Whether `user` may `verb` the `group/resource[/sub]` (group `""` is core).
    fn may(user: &str, verb: &str, what: &str) -> bool {
        let mut parts = what.splitn(3, '/');
        let (group, resource) = (parts.next().unwrap(), parts.next().unwrap());
        let target = Target::Resource {
            group,
            resource,
            subresource: parts.next(),
            name: None,
        };
        let attrs = Attributes {
            verb,
            namespace: Some("default"),
            target,
        };
        rules_of(user).iter().any(|r| allows(r, &attrs))
    }

    #[test]
    fn the_scheduler_may_bind_and_read_but_not_write_workloads() {
        let may = |verb, what| may(SCHEDULER, verb, what);
        assert!(may("create", "/pods/binding"));
        assert!(may("patch", "/pods/status"));
        assert!(may("patch", "/persistentvolumeclaims"));
        assert!(may("create", "/events"));
        assert!(may("watch", "/nodes"));
        assert!(!may("create", "/pods"));
        assert!(!may("update", "/nodes"));
        assert!(!may("get", "/secrets"));
        assert!(!may("delete", "apps/deployments"));
    }

    #[test]
    fn the_shared_informers_list_and_watch_everything_and_write_nothing() {
        let may = |verb, what| may(CONTROLLER_MANAGER, verb, what);
        assert!(may("list", "/secrets"));
        assert!(may("watch", "apps/controllerrevisions"));
        assert!(may("list", "rbac.authorization.k8s.io/clusterroles"));
        assert!(!may("get", "/pods"));
        assert!(!may("create", "/pods"));
        assert!(!may("delete", "apps/deployments"));
        assert!(!may("create", "/serviceaccounts/token"));
        assert!(!may("create", "/secrets"));
    }

    #[test]
    fn each_controller_may_do_its_work_and_no_other() {
        let may = |name: &str, verb, what| may(&controller_user(name), verb, what);
        // What each actor writes (the calls of controllers/src), and a write of another's.
        for (name, allowed, refused) in [
            (
                controller::REPLICASET,
                &[
                    "create /pods",
                    "delete /pods",
                    "patch /pods",
                    "update apps/replicasets/status",
                ][..],
                &[
                    "delete apps/deployments",
                    "get /secrets",
                    "create apps/replicasets",
                ][..],
            ),
            (
                controller::DEPLOYMENT,
                &[
                    "create apps/replicasets",
                    "patch apps/deployments",
                    "update apps/deployments/status",
                ],
                &["create /pods", "delete apps/deployments"],
            ),
            (
                controller::JOB,
                &[
                    "create /pods",
                    "update batch/jobs/status",
                    "delete batch/jobs",
                ],
                &["create batch/jobs", "delete apps/replicasets"],
            ),
            (
                controller::SERVICE_ACCOUNT,
                &[
                    "create /serviceaccounts",
                    "create /configmaps",
                    "patch /configmaps",
                ],
                &[
                    "delete /configmaps",
                    "get /secrets",
                    "delete /serviceaccounts",
                ],
            ),
            (
                controller::HPA,
                &["get apps/deployments/scale", "patch apps/deployments/scale"],
                &["update apps/deployments", "delete /pods"],
            ),
            (
                controller::STATEFULSET,
                &[
                    "create /persistentvolumeclaims",
                    "patch /persistentvolumeclaims",
                    "create apps/controllerrevisions",
                ],
                &["delete /persistentvolumes", "create apps/deployments"],
            ),
            (
                controller::VOLUMES,
                &[
                    "create /persistentvolumes",
                    "patch /persistentvolumes/status",
                    "patch /persistentvolumeclaims",
                ],
                &["delete /persistentvolumeclaims", "create /pods/binding"],
            ),
            (
                controller::GARBAGE_COLLECTOR,
                &[
                    "delete apps/deployments",
                    "patch /pods",
                    "delete example.com/widgets",
                ],
                &["create /pods"],
            ),
            (
                controller::ENDPOINT_SLICE,
                &[
                    "create discovery.k8s.io/endpointslices",
                    "update discovery.k8s.io/endpointslices",
                    "delete discovery.k8s.io/endpointslices",
                    "list /nodes",
                    "update /services/finalizers",
                ],
                &[
                    "patch discovery.k8s.io/endpointslices",
                    "update /endpoints",
                    "update /services",
                ],
            ),
            (
                controller::ENDPOINT_SLICE_MIRRORING,
                &[
                    "watch /endpoints",
                    "list /services",
                    "create discovery.k8s.io/endpointslices",
                    "update discovery.k8s.io/endpointslices",
                    "delete discovery.k8s.io/endpointslices",
                    "update /endpoints/finalizers",
                    "update /services/finalizers",
                ],
                &[
                    "patch discovery.k8s.io/endpointslices",
                    "update /endpoints",
                    "create /endpoints",
                    "list /pods",
                ],
            ),
            (
                controller::NODE_LIFECYCLE,
                &["patch /nodes", "delete /pods", "patch /pods/status"],
                &["create /pods", "delete /secrets"],
            ),
            (
                controller::SERVICE,
                &[
                    "watch /services",
                    "list /nodes",
                    "update /services/status",
                    "patch /services/status",
                ],
                &["update /services", "delete /services", "patch /nodes"],
            ),
            (
                controller::INGRESS_STATUS,
                &[
                    "watch networking.k8s.io/ingresses",
                    "list networking.k8s.io/ingressclasses",
                    "list /nodes",
                    "update networking.k8s.io/ingresses/status",
                ],
                &["update networking.k8s.io/ingresses", "get /secrets"],
            ),
            (
                controller::ACTIVATION,
                &[
                    "get apps/deployments/scale",
                    "patch apps/deployments/scale",
                    "patch /services",
                    "get /nodes/proxy",
                    "list autoscaling/horizontalpodautoscalers",
                ],
                &[
                    "update apps/deployments",
                    "patch apps/replicasets/scale",
                    "delete /services",
                    "get /secrets",
                    "patch /nodes",
                ],
            ),
            (
                controller::CLUSTERROLE_AGGREGATION,
                &[
                    "update rbac.authorization.k8s.io/clusterroles",
                    "escalate rbac.authorization.k8s.io/clusterroles",
                ],
                &["update rbac.authorization.k8s.io/clusterrolebindings"],
            ),
        ] {
            for call in allowed {
                let (verb, what) = call.split_once(' ').unwrap();
                assert!(may(name, verb, what), "{name} must be allowed to {call}");
            }
            for call in refused {
                let (verb, what) = call.split_once(' ').unwrap();
                assert!(
                    !may(name, verb, what),
                    "{name} must not be allowed to {call}"
                );
            }
        }
    }

    #[test]
    fn every_component_has_a_binding_and_no_one_else_is_one() {
        let controllers: Vec<_> = controller_roles::controllers().collect();
        assert!(controllers.len() >= 20, "{controllers:?}");
        for user in [SCHEDULER, CONTROLLER_MANAGER]
            .into_iter()
            .map(str::to_string)
            .chain(controllers.iter().map(|c| controller_user(c)))
        {
            assert!(is_component(&user), "{user}");
            assert!(!rules_of(&user).is_empty(), "{user} has no rules");
        }
        assert!(!is_component("admin"));
        assert!(!is_component(&controller_user("made-up-controller")));
        assert!(!is_component(
            "system:serviceaccount:default:replicaset-controller"
        ));
    }
}

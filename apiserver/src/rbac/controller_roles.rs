//! The controllers' ClusterRoles, as kube-apiserver bootstraps them
//! (`bootstrappolicy/controller_policy.go`): `system:controller:NAME` for each
//! controller rk8s runs, bound to the ServiceAccount `kube-system/NAME` its actor
//! authenticates as ([`rk8s_api::identities`]), with kube's rules, so that a
//! controller may do what kube's may and no more.
//!
//! Two differences, both kept small: rk8s' controllers write some objects with merge
//! patches where kube's update them, so their roles grant `patch` beside `update` on
//! those (the same power over the same object); and where one rk8s actor does the
//! work of two kube controllers (the ServiceAccount controller also publishes the
//! root CA, the Job controller also deletes finished Jobs past their TTL), the second
//! role's binding names the actor's ServiceAccount too ([`SHARED`]).

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Subject};
use rk8s_api::identities::{CONTROLLER_NAMESPACE, CONTROLLER_ROLE_PREFIX, controller};

use super::bootstrap::{READ, binding_to, role};

/// A rule granting `verbs` on `resources` of each API group of `groups`.
fn rule(verbs: &str, groups: &[&str], resources: &str) -> PolicyRule {
    PolicyRule {
        api_groups: Some(groups.iter().map(|g| g.to_string()).collect()),
        ..super::bootstrap::rule(verbs, "", resources)
    }
}

const CORE: &[&str] = &[""];
const APPS: &[&str] = &["apps"];
const APPS_EXTENSIONS: &[&str] = &["apps", "extensions"];
const BATCH: &[&str] = &["batch"];
const DISCOVERY: &[&str] = &["discovery.k8s.io"];
const ANY: &[&str] = &["*"];

/// Kubernetes' `eventsRule()`: events written through either API.
pub(super) fn events() -> PolicyRule {
    rule("create update patch", &["", "events.k8s.io"], "events")
}

/// Each controller's rules, by its name (kube's, in kube's order).
fn rules() -> Vec<(&'static str, Vec<PolicyRule>)> {
    vec![
        (
            controller::CLUSTERROLE_AGGREGATION,
            vec![rule(
                "escalate get list watch update patch",
                &["rbac.authorization.k8s.io"],
                "clusterroles",
            )],
        ),
        (
            controller::CRONJOB,
            vec![
                rule("get list watch update", BATCH, "cronjobs"),
                rule("get list watch create update delete patch", BATCH, "jobs"),
                rule("update", BATCH, "cronjobs/status"),
                rule("update", BATCH, "cronjobs/finalizers"),
                rule("list watch delete", CORE, "pods"),
                events(),
            ],
        ),
        (
            controller::DAEMONSET,
            vec![
                rule(READ, APPS_EXTENSIONS, "daemonsets"),
                rule("update", APPS_EXTENSIONS, "daemonsets/status"),
                rule("update", APPS_EXTENSIONS, "daemonsets/finalizers"),
                rule("list watch", CORE, "nodes"),
                rule("list watch create delete patch", CORE, "pods"),
                rule("create", CORE, "pods/binding"),
                rule(
                    "get list watch create delete update patch",
                    APPS,
                    "controllerrevisions",
                ),
                events(),
            ],
        ),
        (
            controller::DEPLOYMENT,
            vec![
                rule(
                    "get list watch update patch",
                    APPS_EXTENSIONS,
                    "deployments",
                ),
                rule("update", APPS_EXTENSIONS, "deployments/status"),
                rule("update", APPS_EXTENSIONS, "deployments/finalizers"),
                rule(
                    "get list watch create update patch delete",
                    APPS_EXTENSIONS,
                    "replicasets",
                ),
                rule("get list watch update", CORE, "pods"),
                events(),
            ],
        ),
        (
            controller::DISRUPTION,
            vec![
                rule(READ, APPS_EXTENSIONS, "deployments"),
                rule(READ, APPS_EXTENSIONS, "replicasets"),
                rule(READ, CORE, "replicationcontrollers"),
                rule(READ, &["policy"], "poddisruptionbudgets"),
                rule(READ, APPS, "statefulsets"),
                rule("update", &["policy"], "poddisruptionbudgets/status"),
                rule("patch update", CORE, "pods/status"),
                rule("get", ANY, "*/scale"),
                events(),
            ],
        ),
        (
            controller::ENDPOINTS,
            vec![
                rule(READ, CORE, "services pods"),
                rule("get list watch create update delete", CORE, "endpoints"),
                rule("create", CORE, "endpoints/restricted"),
                events(),
            ],
        ),
        (
            controller::ENDPOINT_SLICE,
            vec![
                rule(READ, CORE, "services pods nodes"),
                // To own its slices with blockOwnerDeletion (kube's comment).
                rule("update", CORE, "services/finalizers"),
                rule("get list create update delete", DISCOVERY, "endpointslices"),
                events(),
            ],
        ),
        (
            controller::ENDPOINT_SLICE_MIRRORING,
            vec![
                rule(READ, CORE, "services endpoints"),
                // To own its slices with blockOwnerDeletion (kube's comment).
                rule("update", CORE, "services/finalizers endpoints/finalizers"),
                rule(
                    "get list watch create update delete",
                    DISCOVERY,
                    "endpointslices",
                ),
                events(),
            ],
        ),
        (
            controller::GARBAGE_COLLECTOR,
            vec![
                rule("get list watch patch update delete", ANY, "*"),
                events(),
            ],
        ),
        (
            controller::HPA,
            vec![
                rule(READ, &["autoscaling"], "horizontalpodautoscalers"),
                rule(
                    "update",
                    &["autoscaling"],
                    "horizontalpodautoscalers/status",
                ),
                rule("get update patch", ANY, "*/scale"),
                rule("list watch", CORE, "pods"),
                rule("list watch", &["metrics.k8s.io"], "pods"),
                rule(READ, &["custom.metrics.k8s.io"], "*"),
                rule(READ, &["external.metrics.k8s.io"], "*"),
                events(),
            ],
        ),
        (
            controller::JOB,
            vec![
                rule("get list watch update patch", BATCH, "jobs"),
                rule("update", BATCH, "jobs/status"),
                rule("update", BATCH, "jobs/finalizers"),
                rule("list watch create delete patch", CORE, "pods"),
                events(),
            ],
        ),
        (
            controller::NAMESPACE,
            vec![
                rule("get list watch delete", CORE, "namespaces"),
                rule("update", CORE, "namespaces/finalize"),
                rule("update", CORE, "namespaces/status"),
                rule("get list delete deletecollection", ANY, "*"),
            ],
        ),
        (
            controller::NODE_LIFECYCLE,
            vec![
                rule("get list watch update delete patch", CORE, "nodes"),
                rule("patch update", CORE, "nodes/status"),
                rule("patch update", CORE, "pods/status"),
                rule("list watch get delete", CORE, "pods"),
                events(),
            ],
        ),
        (
            controller::VOLUMES,
            vec![
                rule(
                    "get list watch update patch create delete",
                    CORE,
                    "persistentvolumes",
                ),
                rule("update patch", CORE, "persistentvolumes/status"),
                rule(
                    "get list watch update patch",
                    CORE,
                    "persistentvolumeclaims",
                ),
                rule("update patch", CORE, "persistentvolumeclaims/status"),
                rule("list watch get create delete", CORE, "pods"),
                rule(READ, &["storage.k8s.io"], "storageclasses"),
                rule("list watch", CORE, "nodes"),
                events(),
                rule("watch", CORE, "events"),
                rule("get", CORE, "services"),
            ],
        ),
        (
            controller::REPLICASET,
            vec![
                rule("get list watch update", APPS_EXTENSIONS, "replicasets"),
                rule("update", APPS_EXTENSIONS, "replicasets/status"),
                rule("update", APPS_EXTENSIONS, "replicasets/finalizers"),
                rule("list watch patch create delete", CORE, "pods"),
                events(),
            ],
        ),
        (
            controller::REPLICATION,
            vec![
                rule("get list watch update", CORE, "replicationcontrollers"),
                rule("update", CORE, "replicationcontrollers/status"),
                rule("update", CORE, "replicationcontrollers/finalizers"),
                rule("list watch patch create delete", CORE, "pods"),
                events(),
            ],
        ),
        (
            controller::RESOURCE_QUOTA,
            vec![
                rule("list watch", ANY, "*"),
                rule("update", CORE, "resourcequotas/status"),
                events(),
            ],
        ),
        (
            controller::SERVICE,
            vec![
                rule(READ, CORE, "services"),
                rule("patch update", CORE, "services/status"),
                rule("list watch", CORE, "nodes"),
                events(),
            ],
        ),
        (
            controller::INGRESS_STATUS,
            vec![
                rule("list watch", &["networking.k8s.io"], "ingresses"),
                rule("update patch", &["networking.k8s.io"], "ingresses/status"),
                rule("list watch", &["networking.k8s.io"], "ingressclasses"),
                rule("list watch", CORE, "nodes"),
                events(),
            ],
        ),
        (
            controller::ACTIVATION,
            vec![
                rule("list watch", APPS, "deployments"),
                rule("get patch", APPS, "deployments/scale"),
                rule("list watch patch", CORE, "services"),
                rule("list watch", &["autoscaling"], "horizontalpodautoscalers"),
                rule("list watch", CORE, "nodes"),
                rule("get", CORE, "nodes/proxy"),
                events(),
            ],
        ),
        (
            controller::SERVICE_ACCOUNT,
            vec![rule("create", CORE, "serviceaccounts"), events()],
        ),
        (
            controller::STATEFULSET,
            vec![
                rule("list watch", CORE, "pods"),
                rule(READ, APPS, "statefulsets"),
                rule("update", APPS, "statefulsets/status"),
                rule("update", APPS, "statefulsets/finalizers"),
                rule("get create delete update patch", CORE, "pods"),
                rule(
                    "get create delete update patch list watch",
                    APPS,
                    "controllerrevisions",
                ),
                rule("get create list watch", CORE, "persistentvolumeclaims"),
                rule("update patch delete", CORE, "persistentvolumeclaims"),
                rule("update", CORE, "pods/finalizers"),
                events(),
            ],
        ),
        (
            controller::TTL_AFTER_FINISHED,
            vec![rule("get list watch delete", BATCH, "jobs"), events()],
        ),
        (
            controller::ROOT_CA_PUBLISHER,
            vec![rule("create update patch", CORE, "configmaps"), events()],
        ),
    ]
}

/// Roles whose binding also names the ServiceAccount of another controller, whose
/// rk8s actor does their work too: (role's controller, actor's controller).
pub const SHARED: &[(&str, &str)] = &[
    (controller::ROOT_CA_PUBLISHER, controller::SERVICE_ACCOUNT),
    (controller::TTL_AFTER_FINISHED, controller::JOB),
];

/// The controllers' ClusterRoles, `system:controller:NAME`.
pub fn cluster_roles() -> Vec<ClusterRole> {
    rules()
        .into_iter()
        .map(|(name, rules)| role(&format!("{CONTROLLER_ROLE_PREFIX}{name}"), &[], rules))
        .collect()
}

/// The controllers' ClusterRoleBindings, each of its role to its ServiceAccount.
pub fn cluster_role_bindings() -> Vec<ClusterRoleBinding> {
    rules()
        .into_iter()
        .map(|(name, _)| {
            let full = format!("{CONTROLLER_ROLE_PREFIX}{name}");
            let also = SHARED.iter().filter(|(r, _)| *r == name).map(|(_, a)| *a);
            let account = |n: &str| Subject {
                api_group: None,
                kind: "ServiceAccount".to_string(),
                name: n.to_string(),
                namespace: Some(CONTROLLER_NAMESPACE.to_string()),
            };
            ClusterRoleBinding {
                subjects: Some(std::iter::once(name).chain(also).map(account).collect()),
                ..binding_to(&full, &full, "User", &[])
            }
        })
        .collect()
}

/// The names of the controllers that have a role.
pub fn controllers() -> impl Iterator<Item = &'static str> {
    rules().into_iter().map(|(name, _)| name)
}

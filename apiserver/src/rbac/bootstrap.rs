//! The default RBAC policy kube-apiserver bootstraps (`plugin/pkg/auth/authorizer/rbac/
//! bootstrappolicy/policy.go`, as its `testdata/cluster-roles.yaml` and
//! `cluster-role-bindings.yaml` show it), and its reconciliation at every start
//! (`pkg/registry/rbac/reconciliation`, run by the `rbac/bootstrap-roles` post-start
//! hook).
//!
//! Reconciliation only adds: a default role gains the rules it lacks and the labels,
//! annotations and aggregation selectors it misses, a default binding the subjects it
//! misses; what a user added stays. An object annotated
//! `rbac.authorization.kubernetes.io/autoupdate: "false"` is left alone. A binding
//! whose `roleRef` (which cannot change) differs is deleted and made again.
//!
//! `admin`, `edit` and `view` carry no rules of their own: an aggregation controller
//! fills them from the roles their `aggregationRule` selects (`system:aggregate-to-*`,
//! and `edit` into `admin`, `view` into `edit`).

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{
    AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use rk8s_api::{AnyObject, ObjectKind};

use super::GROUP as RBAC_GROUP;
use super::covers::covers;
use crate::registry::{Change, Registry, Updated};
use crate::status::{ApiError, ApiResult};

/// The annotation with which an object opts out of reconciliation (`"false"`).
pub const AUTOUPDATE_ANNOTATION: &str = "rbac.authorization.kubernetes.io/autoupdate";

/// The label every default role and binding carries, and its value.
pub const BOOTSTRAPPING_LABEL: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");

/// The label prefix of aggregated roles (`...-admin`, `...-edit`, `...-view`).
const AGGREGATE_TO: &str = "rbac.authorization.k8s.io/aggregate-to-";

/// Kubernetes' `Read`.
pub(super) const READ: &str = "get list watch";

/// Kubernetes' `Write`.
const WRITE: &str = "create delete deletecollection patch update";

/// Kubernetes' `ReadWrite`.
const READ_WRITE: &str = "create delete deletecollection get list patch update watch";

/// The words of `list` (verbs, resources, URLs), written space-separated below.
fn words(list: &str) -> Vec<String> {
    list.split_whitespace().map(str::to_string).collect()
}

/// A rule granting `verbs` on `resources` of the API group `group`.
pub(super) fn rule(verbs: &str, group: &str, resources: &str) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_string()]),
        resources: Some(words(resources)),
        verbs: words(verbs),
        ..PolicyRule::default()
    }
}

/// A rule granting `verbs` on non-resource `urls`.
fn urls(verbs: &str, urls: &str) -> PolicyRule {
    PolicyRule {
        non_resource_urls: Some(words(urls)),
        verbs: words(verbs),
        ..PolicyRule::default()
    }
}

/// The metadata of a default object: its name, the bootstrapping label and `labels`,
/// and `autoupdate: "true"` (Kubernetes' `addDefaultMetadata`).
pub(super) fn default_meta(name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    let labels = std::iter::once(BOOTSTRAPPING_LABEL)
        .chain(labels.iter().copied())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ObjectMeta {
        name: Some(name.to_string()),
        labels: Some(labels),
        annotations: Some(BTreeMap::from([(
            AUTOUPDATE_ANNOTATION.to_string(),
            "true".to_string(),
        )])),
        ..ObjectMeta::default()
    }
}

pub(super) fn role(name: &str, labels: &[(&str, &str)], rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: default_meta(name, labels),
        rules: Some(rules),
        aggregation_rule: None,
    }
}

/// A role without rules of its own that aggregates those labelled
/// `aggregate-to-<to>: "true"`.
fn aggregating(name: &str, to: &str, labels: &[(&str, &str)]) -> ClusterRole {
    let selector = LabelSelector {
        match_labels: Some(BTreeMap::from([(
            format!("{AGGREGATE_TO}{to}"),
            "true".to_string(),
        )])),
        match_expressions: None,
    };
    ClusterRole {
        metadata: default_meta(name, labels),
        rules: None,
        aggregation_rule: Some(AggregationRule {
            cluster_role_selectors: Some(vec![selector]),
        }),
    }
}

/// What namespace admins have beyond `edit`: granting rights within the namespace.
fn aggregate_to_admin() -> Vec<PolicyRule> {
    vec![
        rule(
            "create",
            "authorization.k8s.io",
            "localsubjectaccessreviews",
        ),
        rule(READ_WRITE, RBAC_GROUP, "rolebindings roles"),
    ]
}

/// What editors have beyond `view`: every user-level write in a namespace, reading
/// secrets and entering pods, but nothing that grants rights or sets quotas.
fn aggregate_to_edit() -> Vec<PolicyRule> {
    let pods = "pods/attach pods/exec pods/portforward pods/proxy";
    vec![
        rule(READ, "", &format!("{pods} secrets services/proxy")),
        rule("impersonate", "", "serviceaccounts"),
        rule(WRITE, "", &format!("pods {pods}")),
        rule("create", "", "pods/eviction"),
        rule(
            WRITE,
            "",
            "configmaps events persistentvolumeclaims replicationcontrollers \
             replicationcontrollers/scale secrets serviceaccounts services services/proxy",
        ),
        rule("create", "", "serviceaccounts/token"),
        rule(
            WRITE,
            "apps",
            "daemonsets deployments deployments/rollback deployments/scale replicasets \
             replicasets/scale statefulsets statefulsets/scale",
        ),
        rule(WRITE, "autoscaling", "horizontalpodautoscalers"),
        rule(WRITE, "batch", "cronjobs jobs"),
        rule(
            WRITE,
            "extensions",
            "daemonsets deployments deployments/rollback deployments/scale ingresses \
             networkpolicies replicasets replicasets/scale replicationcontrollers/scale",
        ),
        rule(WRITE, "policy", "poddisruptionbudgets"),
        rule(WRITE, "networking.k8s.io", "ingresses networkpolicies"),
        rule(READ_WRITE, "coordination.k8s.io", "leases"),
    ]
}

/// What viewers have: reading what does not escalate (no secrets, no roles).
fn aggregate_to_view() -> Vec<PolicyRule> {
    vec![
        rule(
            READ,
            "",
            "configmaps endpoints persistentvolumeclaims persistentvolumeclaims/status pods \
             replicationcontrollers replicationcontrollers/scale serviceaccounts services \
             services/status",
        ),
        rule(
            READ,
            "",
            "bindings events limitranges namespaces/status pods/log pods/status \
             replicationcontrollers/status resourcequotas resourcequotas/status",
        ),
        // Reading namespaces at namespace scope reads *this* namespace: a hint of
        // which namespaces one has access to.
        rule(READ, "", "namespaces"),
        rule(READ, "discovery.k8s.io", "endpointslices"),
        rule(
            READ,
            "apps",
            "controllerrevisions daemonsets daemonsets/status deployments deployments/scale \
             deployments/status replicasets replicasets/scale replicasets/status statefulsets \
             statefulsets/scale statefulsets/status",
        ),
        rule(
            READ,
            "autoscaling",
            "horizontalpodautoscalers horizontalpodautoscalers/status",
        ),
        rule(READ, "batch", "cronjobs cronjobs/status jobs jobs/status"),
        rule(
            READ,
            "extensions",
            "daemonsets daemonsets/status deployments deployments/scale deployments/status \
             ingresses ingresses/status networkpolicies replicasets replicasets/scale \
             replicasets/status replicationcontrollers/scale",
        ),
        rule(
            READ,
            "policy",
            "poddisruptionbudgets poddisruptionbudgets/status",
        ),
        rule(
            READ,
            "networking.k8s.io",
            "ingresses ingresses/status networkpolicies",
        ),
    ]
}

/// The ClusterRoles kube-apiserver creates and keeps up to date, by name: the
/// user-facing `cluster-admin`, `admin`, `edit`, `view`, the roles aggregated into
/// the last three, and the `system:` roles every caller or monitor is bound to.
pub fn cluster_roles() -> Vec<ClusterRole> {
    let to_admin = [("rbac.authorization.k8s.io/aggregate-to-admin", "true")];
    let to_edit = [("rbac.authorization.k8s.io/aggregate-to-edit", "true")];
    let to_view = [("rbac.authorization.k8s.io/aggregate-to-view", "true")];
    let creates = |group, resources| vec![rule("create", group, resources)];
    vec![
        aggregating("admin", "admin", &[]),
        // The "root" role: anything, anywhere.
        role(
            "cluster-admin",
            &[],
            vec![rule("*", "*", "*"), urls("*", "*")],
        ),
        aggregating("edit", "edit", &to_admin),
        role("system:aggregate-to-admin", &to_admin, aggregate_to_admin()),
        role("system:aggregate-to-edit", &to_edit, aggregate_to_edit()),
        role("system:aggregate-to-view", &to_view, aggregate_to_view()),
        // Delegated authentication and authorization (these creates change nothing).
        role(
            "system:auth-delegator",
            &[],
            [
                creates("authentication.k8s.io", "tokenreviews"),
                creates("authorization.k8s.io", "subjectaccessreviews"),
            ]
            .concat(),
        ),
        // What any user may learn about itself.
        role(
            "system:basic-user",
            &[],
            [
                creates(
                    "authorization.k8s.io",
                    "selfsubjectaccessreviews selfsubjectrulesreviews",
                ),
                creates("authentication.k8s.io", "selfsubjectreviews"),
            ]
            .concat(),
        ),
        // Just enough to discover the API and negotiate versions.
        role(
            "system:discovery",
            &[],
            vec![urls(
                "get",
                "/api /api/* /apis /apis/* /healthz /livez /openapi /openapi/* /readyz \
                 /version /version/",
            )],
        ),
        role(
            "system:monitoring",
            &[],
            vec![urls(
                "get",
                "/healthz /healthz/* /livez /livez/* /metrics /metrics/slis /readyz /readyz/*",
            )],
        ),
        // What is safe to show anyone, authenticated or not.
        role(
            "system:public-info-viewer",
            &[],
            vec![urls("get", "/healthz /livez /readyz /version /version/")],
        ),
        aggregating("view", "view", &to_edit),
    ]
}

/// A default binding of the ClusterRole of the same name to `groups`.
fn binding(name: &str, groups: &[&str]) -> ClusterRoleBinding {
    binding_to(name, name, "Group", groups)
}

/// A default binding `name` of the ClusterRole `role` to the subjects of `kind`
/// (`User`, `Group`) named `names`.
pub(super) fn binding_to(name: &str, role: &str, kind: &str, names: &[&str]) -> ClusterRoleBinding {
    let subject = |n: &&str| Subject {
        api_group: Some(RBAC_GROUP.to_string()),
        kind: kind.to_string(),
        name: (*n).to_string(),
        namespace: None,
    };
    ClusterRoleBinding {
        metadata: default_meta(name, &[]),
        role_ref: RoleRef {
            api_group: RBAC_GROUP.to_string(),
            kind: "ClusterRole".to_string(),
            name: role.to_string(),
        },
        subjects: Some(names.iter().map(subject).collect()),
    }
}

/// The ClusterRoleBindings kube-apiserver creates and keeps up to date: `system:masters`
/// are cluster admins, every authenticated caller may discover the API and learn about
/// itself, everyone may read the public health and version endpoints, and
/// `system:monitoring` may read metrics.
pub fn cluster_role_bindings() -> Vec<ClusterRoleBinding> {
    vec![
        binding("cluster-admin", &["system:masters"]),
        binding("system:basic-user", &["system:authenticated"]),
        binding("system:discovery", &["system:authenticated"]),
        binding("system:monitoring", &["system:monitoring"]),
        binding(
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
    ]
}

/// Whether an object opted out of reconciliation.
fn protected(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(AUTOUPDATE_ANNOTATION))
        .is_some_and(|v| v == "false")
}

/// `existing` with the entries of `desired` it lacks; its own values win (Kubernetes'
/// `merge(expected, existing)`). Both absent stays absent.
fn merge_map(
    existing: &Option<BTreeMap<String, String>>,
    desired: &Option<BTreeMap<String, String>>,
) -> Option<BTreeMap<String, String>> {
    if existing.is_none() && desired.is_none() {
        return None;
    }
    let mut merged = desired.clone().unwrap_or_default();
    merged.extend(
        existing
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    Some(merged)
}

/// `meta` with the labels and annotations of `desired` it lacks.
fn merge_meta(meta: &mut ObjectMeta, desired: &ObjectMeta) {
    meta.labels = merge_map(&meta.labels, &desired.labels);
    meta.annotations = merge_map(&meta.annotations, &desired.annotations);
}

/// Whether two label selectors select alike (as Kubernetes' semantic equality has
/// it, an absent list or map equals an empty one).
fn same_selector(a: &LabelSelector, b: &LabelSelector) -> bool {
    a.match_labels.as_ref().filter(|m| !m.is_empty())
        == b.match_labels.as_ref().filter(|m| !m.is_empty())
        && a.match_expressions.as_deref().unwrap_or_default()
            == b.match_expressions.as_deref().unwrap_or_default()
}

/// The aggregation rule `existing` should have (Kubernetes' union case of
/// `computeReconciledRole`): none if `desired` has none, else `existing`'s selectors
/// and the ones of `desired` it lacks.
fn reconcile_aggregation(
    existing: Option<&AggregationRule>,
    desired: Option<&AggregationRule>,
) -> Option<AggregationRule> {
    let desired = desired?;
    let mut selectors = existing
        .and_then(|a| a.cluster_role_selectors.clone())
        .unwrap_or_default();
    let missing: Vec<LabelSelector> = desired
        .cluster_role_selectors
        .iter()
        .flatten()
        .filter(|d| !selectors.iter().any(|s| same_selector(s, d)))
        .cloned()
        .collect();
    if missing.is_empty() {
        return existing.cloned();
    }
    selectors.extend(missing);
    Some(AggregationRule {
        cluster_role_selectors: Some(selectors),
    })
}

/// The stored role `existing` brought up to the default `desired` (Kubernetes'
/// `computeReconciledRole` without removing extra permissions): the labels and
/// annotations it lacks, the rules of `desired` it does not cover (appended as
/// single-verb rules, [`covers`]), the aggregation selectors it lacks. `None` when
/// nothing changes, or when `existing` is annotated `autoupdate: "false"`.
pub fn reconcile_role(existing: &ClusterRole, desired: &ClusterRole) -> Option<ClusterRole> {
    if protected(&existing.metadata) {
        return None;
    }
    let mut role = existing.clone();
    merge_meta(&mut role.metadata, &desired.metadata);
    let missing = covers(
        existing.rules.as_deref().unwrap_or_default(),
        desired.rules.as_deref().unwrap_or_default(),
    );
    if !missing.is_empty() {
        role.rules.get_or_insert_with(Vec::new).extend(missing);
    }
    role.aggregation_rule = reconcile_aggregation(
        existing.aggregation_rule.as_ref(),
        desired.aggregation_rule.as_ref(),
    );
    (role != *existing).then_some(role)
}

/// What reconciling a default ClusterRoleBinding asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Reconciled {
    /// The binding is as it should be, or opted out (`autoupdate: "false"`).
    Unchanged,
    /// Store this binding: the existing one with the subjects, labels and
    /// annotations it lacked.
    Update(ClusterRoleBinding),
    /// The existing binding refers to another role, and `roleRef` cannot change:
    /// delete it and create this one (Kubernetes' `ReconcileRecreate`).
    Recreate(ClusterRoleBinding),
}

/// The stored binding `existing` brought up to the default `desired` (Kubernetes'
/// `computeReconciledRoleBinding` without removing extra subjects).
pub fn reconcile_binding(
    existing: &ClusterRoleBinding,
    desired: &ClusterRoleBinding,
) -> Reconciled {
    if protected(&existing.metadata) {
        return Reconciled::Unchanged;
    }
    if existing.role_ref != desired.role_ref {
        return Reconciled::Recreate(desired.clone());
    }
    let mut binding = existing.clone();
    merge_meta(&mut binding.metadata, &desired.metadata);
    let have = existing.subjects.as_deref().unwrap_or_default();
    let mut missing: Vec<Subject> = Vec::new();
    for s in desired.subjects.iter().flatten() {
        if !have.contains(s) && !missing.contains(s) {
            missing.push(s.clone());
        }
    }
    if !missing.is_empty() {
        binding
            .subjects
            .get_or_insert_with(Vec::new)
            .extend(missing);
    }
    if binding == *existing {
        Reconciled::Unchanged
    } else {
        Reconciled::Update(binding)
    }
}

/// Creates the default ClusterRoles and ClusterRoleBindings (and the control plane
/// components', [`super::components`]) that are missing and
/// reconciles the ones that exist ([`reconcile_role`], [`reconcile_binding`]), as
/// kube-apiserver's `rbac/bootstrap-roles` hook does at every start. Safe to run any
/// number of times, on any number of members at once: writes are conditional on the
/// revision read, and retried when another writer wins.
pub async fn ensure_defaults(registry: &Registry) -> ApiResult<()> {
    let roles = ObjectKind::of::<ClusterRole>();
    for desired in cluster_roles()
        .into_iter()
        .chain(super::components::cluster_roles())
    {
        ensure_role(registry, &roles, desired).await?;
    }
    let bindings = ObjectKind::of::<ClusterRoleBinding>();
    let component_bindings = super::components::cluster_role_bindings();
    for desired in cluster_role_bindings()
        .into_iter()
        .chain(component_bindings)
    {
        ensure_binding(registry, &bindings, desired).await?;
    }
    Ok(())
}

fn name_of(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

async fn ensure_role(
    registry: &Registry,
    kind: &ObjectKind,
    desired: ClusterRole,
) -> ApiResult<()> {
    let name = name_of(&desired.metadata).to_string();
    let updated = registry
        .update(kind, None, &name, |current| {
            let AnyObject::ClusterRole(existing) = current else {
                return Err(ApiError::internal(format!(
                    "the key of ClusterRole {name} holds another kind"
                )));
            };
            Ok(match reconcile_role(&existing, &desired) {
                Some(role) => Change::Replace(role.into()),
                None => Change::Unchanged,
            })
        })
        .await;
    match updated {
        Ok(Updated::Replaced(_)) => {
            tracing::info!(role = %name, "reconciled default ClusterRole");
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) if e.reason == "NotFound" => registry.create_if_missing(desired.into()).await,
        Err(e) => Err(e),
    }
}

async fn ensure_binding(
    registry: &Registry,
    kind: &ObjectKind,
    desired: ClusterRoleBinding,
) -> ApiResult<()> {
    let name = name_of(&desired.metadata).to_string();
    let updated = registry
        .update(kind, None, &name, |current| {
            let AnyObject::ClusterRoleBinding(existing) = current else {
                return Err(ApiError::internal(format!(
                    "the key of ClusterRoleBinding {name} holds another kind"
                )));
            };
            Ok(match reconcile_binding(&existing, &desired) {
                Reconciled::Unchanged => Change::Unchanged,
                Reconciled::Update(binding) => Change::Replace(binding.into()),
                // Deleted at the revision read; made again below.
                Reconciled::Recreate(_) => Change::Delete(AnyObject::ClusterRoleBinding(existing)),
            })
        })
        .await;
    match updated {
        Ok(Updated::Replaced(_)) => {
            tracing::info!(binding = %name, "reconciled default ClusterRoleBinding");
            Ok(())
        }
        Ok(Updated::Unchanged(_)) => Ok(()),
        Ok(Updated::Deleted(..)) => {
            tracing::info!(binding = %name, "recreating default ClusterRoleBinding with its roleRef");
            registry.create_if_missing(desired.into()).await
        }
        Err(e) if e.reason == "NotFound" => registry.create_if_missing(desired.into()).await,
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(roles: &'a [ClusterRole], name: &str) -> &'a ClusterRole {
        roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no default role {name}"))
    }

    /// The rules `name` ends up with once an aggregation controller has filled the
    /// aggregated roles (a selector matches a role carrying all its labels).
    fn effective(roles: &[ClusterRole], name: &str) -> Vec<PolicyRule> {
        let role = find(roles, name);
        let Some(agg) = &role.aggregation_rule else {
            return role.rules.clone().unwrap_or_default();
        };
        let selects = |r: &ClusterRole| {
            agg.cluster_role_selectors.iter().flatten().any(|s| {
                s.match_labels
                    .iter()
                    .flatten()
                    .all(|(k, v)| r.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
            })
        };
        roles
            .iter()
            .filter(|r| selects(r))
            .flat_map(|r| effective(roles, r.metadata.name.as_deref().unwrap_or_default()))
            .collect()
    }

    fn allowed(rules: &[PolicyRule], verbs: &str, group: &str, resources: &str) -> bool {
        covers(rules, &[rule(verbs, group, resources)]).is_empty()
    }

    fn selectors(role: &ClusterRole) -> Vec<LabelSelector> {
        let rule = role.aggregation_rule.as_ref();
        rule.and_then(|a| a.cluster_role_selectors.clone())
            .expect("selectors")
    }

    fn labels(meta: &ObjectMeta) -> &BTreeMap<String, String> {
        meta.labels.as_ref().expect("labels")
    }

    /// Every default role and binding, as the objects stored.
    fn defaults() -> Vec<AnyObject> {
        let roles = cluster_roles().into_iter().map(AnyObject::from);
        roles
            .chain(cluster_role_bindings().into_iter().map(AnyObject::from))
            .collect()
    }

    #[test]
    fn default_roles_and_bindings_parse_and_validate() {
        for obj in defaults() {
            let parsed = AnyObject::from_slice(&obj.kind(), &obj.to_json())
                .expect("the kind is served")
                .expect("decodes");
            assert_eq!(parsed, obj);
            let errs = rk8s_api::validation::validate(&obj);
            assert!(errs.is_empty(), "{}: {errs:?}", obj.name());
        }
    }

    #[test]
    fn every_rule_has_verbs_and_either_resources_or_urls() {
        for role in cluster_roles() {
            for r in role.rules.iter().flatten() {
                assert!(!r.verbs.is_empty(), "{:?}", role.metadata.name);
                let resources = r.resources.as_deref().unwrap_or_default();
                let groups = r.api_groups.as_deref().unwrap_or_default();
                let urls = r.non_resource_urls.as_deref().unwrap_or_default();
                assert!(
                    (!resources.is_empty() && !groups.is_empty()) == urls.is_empty(),
                    "{:?}: {r:?}",
                    role.metadata.name
                );
            }
        }
    }

    #[test]
    fn every_default_is_labelled_annotated_and_named_once() {
        let all = defaults();
        for obj in &all {
            let meta = obj.metadata();
            let label = labels(meta).get(BOOTSTRAPPING_LABEL.0);
            assert_eq!(label.map(String::as_str), Some(BOOTSTRAPPING_LABEL.1));
            let autoupdate = meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(AUTOUPDATE_ANNOTATION));
            assert_eq!(
                autoupdate.map(String::as_str),
                Some("true"),
                "{}",
                obj.name()
            );
        }
        let mut keys: Vec<_> = all.iter().map(|o| o.storage_key()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), all.len());
        let roles = cluster_roles();
        for b in &cluster_role_bindings() {
            assert_eq!(
                (b.role_ref.kind.as_str(), b.role_ref.api_group.as_str()),
                ("ClusterRole", RBAC_GROUP)
            );
            find(&roles, &b.role_ref.name);
        }
    }

    #[test]
    fn bindings_name_the_kubernetes_groups() {
        let described = |b: &ClusterRoleBinding| {
            let subjects: Vec<_> = b.subjects.iter().flatten().collect();
            let groups = subjects.iter().filter(|s| s.kind == "Group");
            assert!(groups.count() == subjects.len());
            let names: Vec<_> = subjects.iter().map(|s| s.name.as_str()).collect();
            format!("{} {}", name_of(&b.metadata), names.join(","))
        };
        let got: Vec<String> = cluster_role_bindings().iter().map(described).collect();
        let want = [
            "cluster-admin system:masters",
            "system:basic-user system:authenticated",
            "system:discovery system:authenticated",
            "system:monitoring system:monitoring",
            "system:public-info-viewer system:authenticated,system:unauthenticated",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn user_facing_roles_aggregate_and_carry_no_rules_of_their_own() {
        let roles = cluster_roles();
        for (name, to) in [("admin", "admin"), ("edit", "edit"), ("view", "view")] {
            let role = find(&roles, name);
            assert!(role.rules.as_deref().unwrap_or_default().is_empty());
            let key = format!("rbac.authorization.k8s.io/aggregate-to-{to}");
            assert_eq!(
                selectors(role)[0]
                    .match_labels
                    .as_ref()
                    .and_then(|m| m.get(&key)),
                Some(&"true".to_string())
            );
        }
        // view aggregates into edit, edit into admin.
        assert!(
            labels(&find(&roles, "view").metadata).contains_key(&format!("{AGGREGATE_TO}edit"))
        );
        assert!(
            labels(&find(&roles, "edit").metadata).contains_key(&format!("{AGGREGATE_TO}admin"))
        );
    }

    /// What the default roles allow: (role, verbs, API group, resources, allowed).
    #[rustfmt::skip]
    const GRANTS: &[(&str, &str, &str, &str, bool)] = &[
        ("view", READ, "", "pods pods/log configmaps namespaces", true),
        ("view", READ, "apps", "deployments deployments/scale", true),
        ("view", READ_WRITE, "", "secrets pods/exec", false),
        ("view", WRITE, "", "pods configmaps", false),
        ("view", READ, RBAC_GROUP, "roles rolebindings", false),
        ("edit", READ_WRITE, "", "pods secrets services configmaps", true),
        ("edit", READ_WRITE, "apps", "deployments statefulsets/scale", true),
        ("edit", "create", "", "pods/exec serviceaccounts/token", true),
        ("edit", READ_WRITE, RBAC_GROUP, "roles rolebindings", false),
        ("edit", WRITE, "", "resourcequotas limitranges", false),
        ("admin", READ_WRITE, RBAC_GROUP, "roles rolebindings", true),
        ("admin", "create", "authorization.k8s.io", "localsubjectaccessreviews", true),
        ("admin", READ_WRITE, RBAC_GROUP, "clusterroles clusterrolebindings", false),
        ("admin", WRITE, "", "nodes namespaces", false),
        ("system:basic-user", "create", "authentication.k8s.io", "selfsubjectreviews", true),
        ("system:basic-user", "create", "authorization.k8s.io", "selfsubjectrulesreviews", true),
        ("system:basic-user", "create", "authorization.k8s.io", "subjectaccessreviews", false),
    ];

    #[test]
    fn default_roles_grant_what_kubernetes_documents() {
        let roles = cluster_roles();
        // Each verb on each resource is checked alone: `false` means none is allowed.
        for &(role, verbs, group, resources, want) in GRANTS {
            let rules = effective(&roles, role);
            for verb in verbs.split_whitespace() {
                for res in resources.split_whitespace() {
                    let got = allowed(&rules, verb, group, res);
                    assert_eq!(got, want, "{role}: {verb} {group}/{res}");
                }
            }
        }
        // Each user-facing role includes the one below it.
        let [admin, edit, view] = ["admin", "edit", "view"].map(|r| effective(&roles, r));
        assert!(covers(&admin, &edit).is_empty() && covers(&edit, &view).is_empty());
        assert!(!covers(&edit, &admin).is_empty() && !covers(&view, &edit).is_empty());
        assert!(covers(&effective(&roles, "cluster-admin"), &admin).is_empty());
    }

    #[test]
    fn reconciling_the_default_itself_changes_nothing() {
        for role in cluster_roles() {
            assert_eq!(
                reconcile_role(&role, &role),
                None,
                "{:?}",
                role.metadata.name
            );
        }
        for binding in cluster_role_bindings() {
            assert_eq!(reconcile_binding(&binding, &binding), Reconciled::Unchanged);
        }
    }

    #[test]
    fn reconcile_adds_a_missing_rule_once() {
        let roles = cluster_roles();
        let desired = find(&roles, "system:basic-user");
        let mut existing = desired.clone();
        existing.rules = Some(vec![desired.rules.as_ref().expect("rules")[0].clone()]);
        let reconciled = reconcile_role(&existing, desired).expect("a rule to add");
        let rules = reconciled.rules.as_deref().unwrap_or_default();
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[1],
            rule("create", "authentication.k8s.io", "selfsubjectreviews")
        );
        assert_eq!(reconcile_role(&reconciled, desired), None);
    }

    #[test]
    fn reconcile_keeps_what_a_user_added_and_changed() {
        let roles = cluster_roles();
        let desired = find(&roles, "system:discovery");
        let mut existing = desired.clone();
        let extra = rule("get", "", "nodes");
        existing
            .rules
            .get_or_insert_with(Vec::new)
            .push(extra.clone());
        existing.metadata.labels = Some(BTreeMap::from([
            (BOOTSTRAPPING_LABEL.0.to_string(), "custom".to_string()),
            ("team".to_string(), "ops".to_string()),
        ]));
        // An extra rule and a label of another value are the user's: nothing to do.
        assert_eq!(reconcile_role(&existing, desired), None);
        // The default rule and annotation gone: they come back, the user's stay.
        existing.rules = Some(vec![extra.clone()]);
        existing.metadata.annotations = None;
        let reconciled = reconcile_role(&existing, desired).expect("a rule to add");
        let rules = reconciled.rules.clone().unwrap_or_default();
        assert_eq!(rules[0], extra);
        assert!(covers(&rules, desired.rules.as_deref().unwrap_or_default()).is_empty());
        let labels = labels(&reconciled.metadata);
        assert_eq!(
            labels.get(BOOTSTRAPPING_LABEL.0).map(String::as_str),
            Some("custom")
        );
        assert_eq!(labels.get("team").map(String::as_str), Some("ops"));
        let annotations = reconciled.metadata.annotations.expect("annotations");
        assert_eq!(
            annotations.get(AUTOUPDATE_ANNOTATION).map(String::as_str),
            Some("true")
        );
    }

    #[test]
    fn reconcile_respects_autoupdate_false() {
        let roles = cluster_roles();
        let desired = find(&roles, "system:monitoring");
        let mut existing = desired.clone();
        existing.rules = Some(Vec::new());
        existing.metadata.annotations = Some(BTreeMap::from([(
            AUTOUPDATE_ANNOTATION.to_string(),
            "false".to_string(),
        )]));
        assert_eq!(reconcile_role(&existing, desired), None);

        let bindings = cluster_role_bindings();
        let mut binding = bindings[0].clone();
        binding.subjects = None;
        binding.role_ref.name = "view".to_string();
        binding.metadata.annotations = existing.metadata.annotations.clone();
        assert_eq!(
            reconcile_binding(&binding, &bindings[0]),
            Reconciled::Unchanged
        );
    }

    #[test]
    fn reconcile_unions_aggregation_selectors() {
        let roles = cluster_roles();
        let desired = find(&roles, "admin");
        let mine = LabelSelector {
            match_labels: Some(BTreeMap::from([("mine".to_string(), "true".to_string())])),
            match_expressions: None,
        };
        let mut existing = desired.clone();
        existing.aggregation_rule = Some(AggregationRule {
            cluster_role_selectors: Some(vec![mine.clone()]),
        });
        // What an aggregation controller filled in is no missing rule.
        existing.rules = Some(effective(&roles, "admin"));
        let reconciled = reconcile_role(&existing, desired).expect("a selector to add");
        assert_eq!(
            selectors(&reconciled),
            [mine, selectors(desired)[0].clone()]
        );
        assert_eq!(reconciled.rules, existing.rules);

        // A default role that does not aggregate loses an aggregation rule.
        let plain = find(&roles, "system:discovery");
        let mut aggregated = plain.clone();
        aggregated.aggregation_rule = existing.aggregation_rule.clone();
        let reconciled = reconcile_role(&aggregated, plain).expect("rule to drop");
        assert_eq!(reconciled.aggregation_rule, None);
    }

    #[test]
    fn reconcile_binding_adds_missing_subjects_and_keeps_others() {
        let bindings = cluster_role_bindings();
        let desired = bindings
            .iter()
            .find(|b| b.metadata.name.as_deref() == Some("system:public-info-viewer"))
            .expect("binding");
        let mut existing = desired.clone();
        let robot = Subject {
            api_group: None,
            kind: "ServiceAccount".to_string(),
            name: "robot".to_string(),
            namespace: Some("d".to_string()),
        };
        existing.subjects = Some(vec![
            robot.clone(),
            desired.subjects.clone().expect("subjects")[1].clone(),
        ]);
        let Reconciled::Update(updated) = reconcile_binding(&existing, desired) else {
            panic!("expected an update");
        };
        let subjects = updated.subjects.clone().expect("subjects");
        assert_eq!(subjects.len(), 3);
        assert_eq!(subjects[0], robot);
        assert_eq!(subjects[2].name, "system:authenticated");
        assert_eq!(reconcile_binding(&updated, desired), Reconciled::Unchanged);
    }

    #[test]
    fn reconcile_binding_with_another_role_recreates_it() {
        let bindings = cluster_role_bindings();
        let desired = &bindings[0];
        let mut existing = desired.clone();
        existing.role_ref.name = "view".to_string();
        existing.metadata.uid = Some("1".to_string());
        assert_eq!(
            reconcile_binding(&existing, desired),
            Reconciled::Recreate(desired.clone())
        );
    }

    /// A registry over a one-member store in `dir` that leads.
    async fn registry(dir: &std::path::Path) -> Registry {
        Registry::new(crate::testing::leading_store(dir).await)
    }

    #[tokio::test]
    async fn ensure_defaults_creates_repairs_and_rebinds_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path()).await;
        ensure_defaults(&registry).await.unwrap();
        let (role_kind, binding_kind) = (
            ObjectKind::of::<ClusterRole>(),
            ObjectKind::of::<ClusterRoleBinding>(),
        );
        let get = |kind: &ObjectKind, name: &str| {
            let (registry, kind, name) = (registry.clone(), *kind, name.to_string());
            async move { registry.get(&kind, None, &name).await.unwrap() }
        };
        // A user drops a rule of a default role and points a default binding elsewhere.
        let AnyObject::ClusterRole(mut basic) = get(&role_kind, "system:basic-user").await else {
            panic!("a ClusterRole");
        };
        basic.rules.as_mut().unwrap().pop();
        registry.replace(&(*basic).into()).await.unwrap();
        let monitoring = get(&binding_kind, "system:monitoring").await;
        registry.remove(&monitoring).await.unwrap();
        let AnyObject::ClusterRoleBinding(mut elsewhere) = monitoring else {
            panic!("a ClusterRoleBinding");
        };
        elsewhere.role_ref.name = "view".into();
        registry
            .create_if_missing((*elsewhere).into())
            .await
            .unwrap();

        ensure_defaults(&registry).await.unwrap();
        let AnyObject::ClusterRole(basic) = get(&role_kind, "system:basic-user").await else {
            panic!("a ClusterRole");
        };
        let desired = find(&cluster_roles(), "system:basic-user").clone();
        assert!(
            covers(
                basic.rules.as_deref().unwrap(),
                desired.rules.as_deref().unwrap()
            )
            .is_empty()
        );
        let AnyObject::ClusterRoleBinding(rebound) = get(&binding_kind, "system:monitoring").await
        else {
            panic!("a ClusterRoleBinding");
        };
        assert_eq!(rebound.role_ref.name, "system:monitoring");
        // Once repaired, a run writes nothing.
        let prefix = role_kind.storage_prefix(None);
        let revision = || registry.page(&role_kind, &prefix, b"", 1, 0, false);
        let before = revision().await.unwrap().revision;
        ensure_defaults(&registry).await.unwrap();
        assert_eq!(revision().await.unwrap().revision, before);
    }
}

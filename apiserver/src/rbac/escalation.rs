//! Escalation prevention, as kube-apiserver's RBAC storage does it
//! (`pkg/registry/rbac/{role,clusterrole,rolebinding,clusterrolebinding}/policybased`):
//! a caller may write a Role or ClusterRole only with rules it holds itself, unless it
//! may `escalate` roles; and bind a role only when it holds the role's rules, unless it
//! may `bind` that role. A ClusterRole with an `aggregationRule` gathers others' rules,
//! so only a caller who may escalate writes one. Superusers are not checked.

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};
use rk8s_api::AnyObject;

use super::authorizer::{Attributes, GROUP, Target};
use super::covers::{atom_count, covers};
use crate::auth::Identity;
use crate::handlers::Handlers;
use crate::status::{ApiError, ApiResult};

/// The most single permissions (one group, resource, verb and name each) the rules
/// of one write may come to: checking each against the writer's costs time and
/// memory, and no real role comes near.
const MAX_ATOMS: usize = 100_000;

/// How many uncovered rules a refusal lists (a role of thousands would otherwise
/// make a message of megabytes).
const LISTED_RULES: usize = 50;

fn quoted(list: &[String]) -> String {
    let inner: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", inner.join(" "))
}

/// A rule as kube-apiserver prints one in a refusal (`CompactString`).
fn compact(rule: &PolicyRule) -> String {
    let mut parts = Vec::new();
    let mut field = |name: &str, v: &Option<Vec<String>>| {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            parts.push(format!("{name}:{}", quoted(v)));
        }
    };
    field("APIGroups", &rule.api_groups);
    field("Resources", &rule.resources);
    field("ResourceNames", &rule.resource_names);
    field("NonResourceURLs", &rule.non_resource_urls);
    parts.push(format!("Verbs:{}", quoted(&rule.verbs)));
    format!("{{{}}}", parts.join(", "))
}

impl Handlers {
    /// Refuses `identity` writing `obj` (a Role, ClusterRole, RoleBinding or
    /// ClusterRoleBinding) when that would grant rights it does not hold.
    pub(crate) fn confirm_no_escalation(
        &self,
        identity: &Identity,
        obj: &AnyObject,
    ) -> ApiResult<()> {
        if identity.is_superuser() {
            return Ok(());
        }
        let ns = obj.namespace();
        let name = obj.name();
        match obj {
            AnyObject::Role(r) => self.role_write(
                identity,
                ns,
                "roles",
                name,
                r.rules.as_deref().unwrap_or_default(),
            ),
            AnyObject::ClusterRole(r) => {
                if r.aggregation_rule.is_some()
                    && !self.may_verb(identity, "escalate", None, "clusterroles", name)?
                {
                    return Err(ApiError::forbidden(format!(
                        "clusterroles.{GROUP} \"{name}\" is forbidden: must have cluster-admin privileges to use the aggregationRule"
                    )));
                }
                self.role_write(
                    identity,
                    None,
                    "clusterroles",
                    name,
                    r.rules.as_deref().unwrap_or_default(),
                )
            }
            AnyObject::RoleBinding(b) => {
                self.binding_write(identity, ns, "rolebindings", name, &b.role_ref)
            }
            AnyObject::ClusterRoleBinding(b) => {
                self.binding_write(identity, None, "clusterrolebindings", name, &b.role_ref)
            }
            _ => Ok(()),
        }
    }

    fn may_verb(
        &self,
        identity: &Identity,
        verb: &str,
        namespace: Option<&str>,
        resource: &str,
        name: &str,
    ) -> ApiResult<bool> {
        self.may(
            identity,
            &Attributes {
                verb,
                namespace,
                target: Target::Resource {
                    group: GROUP,
                    resource,
                    subresource: None,
                    name: Some(name),
                },
            },
        )
    }

    fn role_write(
        &self,
        identity: &Identity,
        ns: Option<&str>,
        resource: &str,
        name: &str,
        rules: &[PolicyRule],
    ) -> ApiResult<()> {
        if self.may_verb(identity, "escalate", ns, resource, name)? {
            return Ok(());
        }
        self.holds(identity, ns, resource, name, rules)
    }

    fn binding_write(
        &self,
        identity: &Identity,
        ns: Option<&str>,
        resource: &str,
        name: &str,
        role: &RoleRef,
    ) -> ApiResult<()> {
        let role_resource = match role.kind.as_str() {
            "ClusterRole" => "clusterroles",
            _ => "roles",
        };
        if role.api_group == GROUP
            && self.may_verb(identity, "bind", ns, role_resource, &role.name)?
        {
            return Ok(());
        }
        let found = match (role.kind.as_str(), ns) {
            ("ClusterRole", _) => self.listers.cluster_roles.get(None, &role.name),
            ("Role", Some(ns)) => self.listers.roles.get(Some(ns), &role.name),
            _ => None,
        };
        let rules = match found.as_deref() {
            Some(AnyObject::ClusterRole(r)) => r.rules.clone().unwrap_or_default(),
            Some(AnyObject::Role(r)) => r.rules.clone().unwrap_or_default(),
            _ => {
                return Err(ApiError::forbidden(format!(
                    "{resource}.{GROUP} \"{name}\" is forbidden: {} \"{}\" not found",
                    role_resource.trim_end_matches('s'),
                    role.name
                )));
            }
        };
        self.holds(identity, ns, resource, name, &rules)
    }

    /// Refuses unless `identity` holds every one of `rules` in `ns`, in kube's words.
    fn holds(
        &self,
        identity: &Identity,
        ns: Option<&str>,
        resource: &str,
        name: &str,
        rules: &[PolicyRule],
    ) -> ApiResult<()> {
        let atoms = atom_count(rules);
        if atoms.is_none_or(|n| n > MAX_ATOMS) {
            return Err(ApiError::new(
                http::StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                format!(
                    "{resource}.{GROUP} \"{name}\" is invalid: rules: Too many: its rules come to {} single permissions (API group × resource × verb × resource name, URL × verb): must have at most {MAX_ATOMS} for the escalation check",
                    atoms.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string())
                ),
            ));
        }
        let (user, groups) = (identity.user(), identity.groups());
        let mut owned = Vec::new();
        self.visit_rules(&user, &groups, ns, &mut |rule| {
            owned.push(rule.clone());
            false
        })?;
        let missing = covers(&owned, rules);
        if missing.is_empty() {
            return Ok(());
        }
        let mut listed: Vec<String> = missing.iter().take(LISTED_RULES).map(compact).collect();
        if missing.len() > LISTED_RULES {
            listed.push(format!("and {} more", missing.len() - LISTED_RULES));
        }
        Err(ApiError::forbidden(format!(
            "{resource}.{GROUP} \"{name}\" is forbidden: user \"{user}\" (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
            quoted(&groups),
            listed.join("\n")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_print_rules_as_kube_apiserver_does() {
        let rule: PolicyRule = serde_json::from_value(serde_json::json!({
            "apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}))
        .unwrap();
        assert_eq!(
            compact(&rule),
            r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}"#
        );
        let path: PolicyRule = serde_json::from_value(serde_json::json!({
            "nonResourceURLs": ["/metrics"], "verbs": ["get"]}))
        .unwrap();
        assert_eq!(
            compact(&path),
            r#"{NonResourceURLs:["/metrics"], Verbs:["get"]}"#
        );
    }
}

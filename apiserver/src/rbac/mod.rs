//! Role-based access control for service accounts, as kube-apiserver's RBAC
//! authorizer decides (`plugin/pkg/auth/authorizer/rbac/rbac.go`,
//! `pkg/apis/rbac/v1/evaluation_helpers.go`): a request is allowed when a
//! ClusterRoleBinding, or a RoleBinding of the request's namespace, names the caller
//! (as a user, one of its groups, or a ServiceAccount) and the role it refers to has
//! a rule with the request's verb, API group, resource (`pods`, `pods/log`, `*`,
//! `*/scale`) and, when the rule names some, the object's name. Nothing is denied by
//! a rule: no rule, no access.
//!
//! The admin has every right and nodes have the Node authorizer's
//! ([`crate::auth`]); service accounts are authorized here, from the server's
//! in-memory copies of roles and bindings ([`crate::lister`]).

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef, Subject};
use rk8s_api::AnyObject;

use crate::auth::{Access, Identity};
use crate::handlers::Handlers;
use crate::request::ResourceRequest;
use crate::service_accounts::Account;
use crate::status::{ApiError, ApiResult};

/// The RBAC API group.
const GROUP: &str = "rbac.authorization.k8s.io";

/// Whether `subject` of a binding in `binding_ns` (`None`: a ClusterRoleBinding)
/// names the account `who` (user `system:serviceaccount:NS:NAME`, its groups).
pub fn names(subject: &Subject, binding_ns: Option<&str>, who: &Account) -> bool {
    match subject.kind.as_str() {
        "ServiceAccount" => {
            let ns = subject
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .or(binding_ns);
            ns == Some(who.namespace.as_str()) && subject.name == who.name
        }
        "User" => subject.name == crate::service_accounts::user_name(&who.namespace, &who.name),
        "Group" => who.groups().contains(&subject.name),
        _ => false,
    }
}

fn has(list: &[String], wanted: &str) -> bool {
    list.iter().any(|x| x == "*" || x == wanted)
}

/// Whether `rule` allows `req`.
pub fn allows(rule: &PolicyRule, req: &ResourceRequest) -> bool {
    if !has(&rule.verbs, req.verb.as_str()) {
        return false;
    }
    if !has(
        rule.api_groups.as_deref().unwrap_or_default(),
        req.kind.group,
    ) {
        return false;
    }
    let resource = req.kind.plural;
    let combined = match req.subresource.as_deref() {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_string(),
    };
    let resources = rule.resources.as_deref().unwrap_or_default();
    let resource_ok = resources.iter().any(|r| {
        r == "*"
            || *r == combined
            || req
                .subresource
                .as_deref()
                .is_some_and(|sub| r.strip_prefix("*/") == Some(sub))
    });
    if !resource_ok {
        return false;
    }
    match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => req
            .name
            .as_deref()
            .is_some_and(|n| names.iter().any(|x| x == n)),
    }
}

impl Handlers {
    /// Authorizes a service account's request by RBAC (from the server's in-memory
    /// copies of roles and bindings): [`Access::All`] or the Kubernetes 403.
    pub(crate) fn authorize_account(
        &self,
        identity: &Identity,
        account: &Account,
        req: &ResourceRequest,
    ) -> ApiResult<Access> {
        let l = &self.listers;
        let filled = [
            &l.roles,
            &l.cluster_roles,
            &l.role_bindings,
            &l.cluster_role_bindings,
        ];
        if !filled.iter().all(|x| x.listed()) {
            return Err(ApiError::unavailable(
                "the authorizer has not read the roles and bindings yet, try again",
            ));
        }
        let ns = req.namespace.as_deref();
        let mut bindings = l.cluster_role_bindings.list(None);
        if let Some(ns) = ns {
            bindings.extend(l.role_bindings.list(Some(ns)));
        }
        for binding in &bindings {
            let (binding_ns, subjects, role) = match binding.as_ref() {
                AnyObject::ClusterRoleBinding(b) => (None, &b.subjects, &b.role_ref),
                AnyObject::RoleBinding(b) => (ns, &b.subjects, &b.role_ref),
                _ => continue,
            };
            let named = subjects
                .iter()
                .flatten()
                .any(|s| names(s, binding_ns, account));
            if named && self.role_allows(binding_ns, role, req) {
                return Ok(Access::All);
            }
        }
        Err(crate::auth::denied(identity, req))
    }

    /// Whether the role `role` refers to from a binding in `ns` has a rule allowing
    /// `req` (a role that does not exist, yet, allows nothing).
    fn role_allows(&self, ns: Option<&str>, role: &RoleRef, req: &ResourceRequest) -> bool {
        if role.api_group != GROUP {
            return false;
        }
        let found = match (role.kind.as_str(), ns) {
            ("ClusterRole", _) => self.listers.cluster_roles.get(None, &role.name),
            ("Role", Some(ns)) => self.listers.roles.get(Some(ns), &role.name),
            _ => None,
        };
        let rules = match found.as_deref() {
            Some(AnyObject::ClusterRole(r)) => r.rules.as_deref(),
            Some(AnyObject::Role(r)) => r.rules.as_deref(),
            _ => None,
        };
        rules.into_iter().flatten().any(|r| allows(r, req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn req(method: Method, path: &str) -> ResourceRequest {
        crate::request::resource_request(&method, path)
    }

    fn rule(json: serde_json::Value) -> PolicyRule {
        serde_json::from_value(json).unwrap()
    }

    fn robot() -> Account {
        Account {
            namespace: "d".into(),
            name: "robot".into(),
            uid: "1".into(),
            pod: None,
        }
    }

    fn subject(json: serde_json::Value) -> Subject {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn rules_match_verbs_groups_resources_subresources_and_names() {
        let readers = rule(serde_json::json!({
            "apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]}));
        assert!(allows(
            &readers,
            &req(Method::GET, "/api/v1/namespaces/d/pods")
        ));
        assert!(allows(
            &readers,
            &req(Method::GET, "/api/v1/namespaces/d/pods/web/log")
        ));
        assert!(!allows(
            &readers,
            &req(Method::GET, "/api/v1/namespaces/d/pods/web/status")
        ));
        assert!(!allows(
            &readers,
            &req(Method::DELETE, "/api/v1/namespaces/d/pods/web")
        ));
        assert!(!allows(
            &readers,
            &req(Method::GET, "/apis/apps/v1/namespaces/d/deployments")
        ));
        let scalers = rule(serde_json::json!({
            "apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["*"]}));
        assert!(allows(
            &scalers,
            &req(
                Method::PUT,
                "/apis/apps/v1/namespaces/d/deployments/web/scale"
            )
        ));
        assert!(!allows(
            &scalers,
            &req(Method::PUT, "/apis/apps/v1/namespaces/d/deployments/web")
        ));
        let one = rule(serde_json::json!({
            "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["settings"],
            "verbs": ["get", "list"]}));
        assert!(allows(
            &one,
            &req(Method::GET, "/api/v1/namespaces/d/configmaps/settings")
        ));
        assert!(!allows(
            &one,
            &req(Method::GET, "/api/v1/namespaces/d/configmaps/other")
        ));
        // Names restrict to named objects: a list names none.
        assert!(!allows(
            &one,
            &req(Method::GET, "/api/v1/namespaces/d/configmaps")
        ));
    }

    #[test]
    fn subjects_name_the_account_by_itself_its_user_or_its_groups() {
        let me = robot();
        let sa = |ns: Option<&str>| {
            subject(serde_json::json!({"kind": "ServiceAccount", "name": "robot", "namespace": ns}))
        };
        assert!(names(&sa(Some("d")), None, &me));
        assert!(names(&sa(None), Some("d"), &me));
        assert!(!names(&sa(None), None, &me));
        assert!(!names(&sa(Some("e")), Some("d"), &me));
        let user = subject(
            serde_json::json!({"kind": "User", "name": "system:serviceaccount:d:robot",
            "apiGroup": GROUP}),
        );
        assert!(names(&user, None, &me));
        for group in [
            "system:serviceaccounts",
            "system:serviceaccounts:d",
            "system:authenticated",
        ] {
            let g = subject(serde_json::json!({"kind": "Group", "name": group, "apiGroup": GROUP}));
            assert!(names(&g, None, &me), "{group}");
        }
        let other =
            subject(serde_json::json!({"kind": "Group", "name": "system:serviceaccounts:e"}));
        assert!(!names(&other, None, &me));
    }
}

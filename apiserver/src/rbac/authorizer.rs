//! The authorizer chain of every request: `system:masters` (the admin, a user in the
//! group) may do everything; nodes get the Node authorizer's rights
//! ([`crate::auth::authorize`]); users and ServiceAccounts get what RBAC grants them,
//! as kube-apiserver's RBAC authorizer decides (`plugin/pkg/auth/authorizer/rbac`,
//! `pkg/apis/rbac/v1/evaluation_helpers.go`): a ClusterRoleBinding, or a RoleBinding
//! of the request's namespace, names the caller (user, group, or ServiceAccount) and
//! its role has a rule with the request's verb, API group, resource (`pods`,
//! `pods/log`, `*`, `*/scale`) and, when the rule names some, the object's name — or,
//! for a path outside the resources (`/metrics`, `/apis`), its `nonResourceURLs`
//! (`/healthz/*` is a prefix). Nothing is denied by a rule: no rule, no access. Roles
//! and bindings are read from the server's in-memory copies ([`crate::lister`]).

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef, Subject};
use rk8s_api::AnyObject;

use crate::auth::{Access, Identity};
use crate::handlers::Handlers;
use crate::request::{Query, ResourceRequest};
use crate::status::{ApiError, ApiResult};
use crate::users::Impersonation;

/// The RBAC API group.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// What a request asks, as an authorizer reads it (kube's `authorizer.Attributes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attributes<'a> {
    /// The verb (`get`, `list`, ..., `impersonate`, `escalate`, `bind`).
    pub verb: &'a str,
    /// The namespace (`None`: cluster scope).
    pub namespace: Option<&'a str>,
    /// A resource, or a path outside the resources.
    pub target: Target<'a>,
}

/// What a request is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// An API resource.
    Resource {
        /// The API group (`""`: core).
        group: &'a str,
        /// The resource (`pods`).
        resource: &'a str,
        /// The subresource (`log`).
        subresource: Option<&'a str>,
        /// The object's name, when the request names one.
        name: Option<&'a str>,
    },
    /// A path outside the resources (`/metrics`).
    NonResource {
        /// The path.
        path: &'a str,
    },
}

impl<'a> Attributes<'a> {
    /// The attributes of a resource request.
    pub fn of(req: &'a ResourceRequest) -> Self {
        Attributes {
            verb: req.verb.as_str(),
            namespace: req.namespace.as_deref(),
            target: Target::Resource {
                group: req.kind.group,
                resource: req.kind.plural,
                subresource: req.subresource.as_deref(),
                name: req.name.as_deref(),
            },
        }
    }

    /// The attributes of `verb` on `path`, outside the resources.
    pub fn path(verb: &'a str, path: &'a str) -> Self {
        Attributes {
            verb,
            namespace: None,
            target: Target::NonResource { path },
        }
    }
}

fn has(list: &[String], wanted: &str) -> bool {
    list.iter().any(|x| x == "*" || x == wanted)
}

/// Whether `rule` allows `a`.
pub fn allows(rule: &PolicyRule, a: &Attributes<'_>) -> bool {
    if !has(&rule.verbs, a.verb) {
        return false;
    }
    match a.target {
        Target::NonResource { path } => rule.non_resource_urls.iter().flatten().any(|url| {
            url == "*"
                || url == path
                || url
                    .strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix))
        }),
        Target::Resource {
            group,
            resource,
            subresource,
            name,
        } => {
            if !has(rule.api_groups.as_deref().unwrap_or_default(), group) {
                return false;
            }
            let resources = rule.resources.as_deref().unwrap_or_default();
            let resource_ok = resources.iter().any(|r| {
                if r == "*" {
                    return true;
                }
                match subresource {
                    None => r == resource,
                    Some(sub) => {
                        r.strip_prefix("*/") == Some(sub)
                            || r.split_once('/') == Some((resource, sub))
                    }
                }
            });
            if !resource_ok {
                return false;
            }
            match rule.resource_names.as_deref() {
                None | Some([]) => true,
                Some(names) => name.is_some_and(|n| names.iter().any(|x| x == n)),
            }
        }
    }
}

/// Whether `subject` of a binding in `binding_ns` (`None`: a ClusterRoleBinding)
/// names the user `user` in `groups`.
pub fn names(subject: &Subject, binding_ns: Option<&str>, user: &str, groups: &[String]) -> bool {
    match subject.kind.as_str() {
        "ServiceAccount" => {
            let ns = subject
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .or(binding_ns);
            crate::service_accounts::parse_user_name(user)
                .is_some_and(|(n, name)| Some(n) == ns && name == subject.name)
        }
        "User" => subject.name == user,
        "Group" => groups.contains(&subject.name),
        _ => false,
    }
}

/// The binding and role an allowing rule came from, in kube's words
/// (`ClusterRoleBinding "view-all" of ClusterRole "view" to User "jane"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// `ClusterRoleBinding "NAME"` or `RoleBinding "NAME/NS"`.
    pub binding: String,
    /// `ClusterRole "NAME"` or `Role "NAME"`.
    pub role: String,
    /// `User "NAME"`, `Group "NAME"` or `ServiceAccount "NAME/NS"`.
    pub subject: String,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {} to {}", self.binding, self.role, self.subject)
    }
}

fn describe_subject(s: &Subject, binding_ns: Option<&str>) -> String {
    match s.kind.as_str() {
        "ServiceAccount" => {
            let ns = s.namespace.as_deref().or(binding_ns).unwrap_or_default();
            format!("ServiceAccount \"{}/{ns}\"", s.name)
        }
        kind => format!("{kind} \"{}\"", s.name),
    }
}

impl Handlers {
    /// 503 until the roles and bindings have been read once.
    fn rbac_ready(&self) -> ApiResult<()> {
        let l = &self.listers;
        let filled = [
            &l.roles,
            &l.cluster_roles,
            &l.role_bindings,
            &l.cluster_role_bindings,
        ];
        if filled.iter().all(|x| x.listed()) {
            Ok(())
        } else {
            Err(ApiError::unavailable(
                "the authorizer has not read the roles and bindings yet, try again",
            ))
        }
    }

    /// Calls `visit` with every rule RBAC gives `user` in `groups` in `namespace`
    /// (the cluster's bindings, and the namespace's when there is one) until it
    /// returns true; then returns where that rule came from.
    pub(crate) fn visit_rules(
        &self,
        user: &str,
        groups: &[String],
        namespace: Option<&str>,
        visit: &mut dyn FnMut(&PolicyRule) -> bool,
    ) -> ApiResult<Option<Source>> {
        self.rbac_ready()?;
        let l = &self.listers;
        let mut bindings = l.cluster_role_bindings.list(None);
        if let Some(ns) = namespace {
            bindings.extend(l.role_bindings.list(Some(ns)));
        }
        for binding in &bindings {
            let (binding_ns, subjects, role, name) = match binding.as_ref() {
                AnyObject::ClusterRoleBinding(b) => {
                    (None, &b.subjects, &b.role_ref, &b.metadata.name)
                }
                AnyObject::RoleBinding(b) => {
                    (namespace, &b.subjects, &b.role_ref, &b.metadata.name)
                }
                _ => continue,
            };
            let Some(subject) = subjects
                .iter()
                .flatten()
                .find(|s| names(s, binding_ns, user, groups))
            else {
                continue;
            };
            if self.role_rules(binding_ns, role, visit) {
                let name = name.as_deref().unwrap_or_default();
                return Ok(Some(Source {
                    binding: match binding_ns {
                        None => format!("ClusterRoleBinding \"{name}\""),
                        Some(ns) => format!("RoleBinding \"{name}/{ns}\""),
                    },
                    role: format!("{} \"{}\"", role.kind, role.name),
                    subject: describe_subject(subject, binding_ns),
                }));
            }
        }
        Ok(None)
    }

    /// Calls `visit` with the rules of the role `role` refers to from a binding in
    /// `ns` until it returns true (a role that does not exist, yet, has none).
    fn role_rules(
        &self,
        ns: Option<&str>,
        role: &RoleRef,
        visit: &mut dyn FnMut(&PolicyRule) -> bool,
    ) -> bool {
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
        rules.into_iter().flatten().any(visit)
    }

    /// Where RBAC allows `a` to `user` in `groups` from (`None`: it does not).
    pub(crate) fn rbac_allows(
        &self,
        user: &str,
        groups: &[String],
        a: &Attributes<'_>,
    ) -> ApiResult<Option<Source>> {
        self.visit_rules(user, groups, a.namespace, &mut |rule| allows(rule, a))
    }

    /// Whether `identity` may do `a`: a superuser may do everything, a user or a
    /// ServiceAccount what RBAC allows; other callers (nodes, bootstrap tokens) only
    /// what their own authorizer allows ([`crate::auth::authorize`]), so never `a`
    /// when it is none of theirs.
    pub(crate) fn may(&self, identity: &Identity, a: &Attributes<'_>) -> ApiResult<bool> {
        if identity.is_superuser() {
            return Ok(true);
        }
        match identity {
            Identity::ServiceAccount(_) | Identity::User(_) => Ok(self
                .rbac_allows(&identity.user(), &identity.groups(), a)?
                .is_some()),
            _ => Ok(false),
        }
    }

    /// Authorizes a resource request: [`Access::All`], a node's narrower access, or
    /// Kubernetes' 403.
    pub(crate) fn authorize(
        &self,
        identity: &Identity,
        req: &ResourceRequest,
        q: &Query,
    ) -> ApiResult<Access> {
        match identity {
            i if i.is_superuser() => Ok(Access::All),
            Identity::ServiceAccount(_) | Identity::User(_) => {
                let started = std::time::Instant::now();
                let allowed = self.may(identity, &Attributes::of(req))?;
                crate::metrics::AUTHORIZATION
                    .with_label_values(&[if allowed { "allowed" } else { "denied" }])
                    .observe(started.elapsed().as_secs_f64());
                if allowed {
                    Ok(Access::All)
                } else {
                    Err(crate::auth::denied(identity, req))
                }
            }
            _ => crate::auth::authorize(identity, req, q),
        }
    }

    /// Authorizes `verb` on a path outside the resources (discovery, `/metrics`):
    /// superusers and what RBAC allows users and ServiceAccounts; nodes may read
    /// discovery when `discovery` (as every authenticated caller may by kube's
    /// `system:discovery` binding, which nodes do not depend on). Kubernetes' 403
    /// otherwise.
    pub(crate) fn authorize_path(
        &self,
        identity: &Identity,
        verb: &str,
        path: &str,
        discovery: bool,
    ) -> ApiResult<()> {
        let allowed = match identity {
            Identity::Node(_) | Identity::Bootstrap(_) | Identity::MemberBootstrap(_) => discovery,
            _ => self.may(identity, &Attributes::path(verb, path))?,
        };
        if allowed {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "forbidden: User \"{}\" cannot {verb} path \"{path}\"",
            identity.user()
        )))
    }
}

impl Handlers {
    /// The caller a request acts as when `identity` asks to impersonate `asked`:
    /// the user, each group and the uid must each be ones `identity` may
    /// `impersonate` (`users`, `serviceaccounts` in their namespace for a
    /// ServiceAccount's user name, `groups`, `uids`), or Kubernetes' 403 for the first
    /// that is not.
    pub(crate) fn impersonate(
        &self,
        identity: &Identity,
        asked: &Impersonation,
    ) -> ApiResult<Identity> {
        let check = |namespace: Option<&str>, resource: &str, name: &str| -> ApiResult<()> {
            let a = Attributes {
                verb: "impersonate",
                namespace,
                target: Target::Resource {
                    group: "",
                    resource,
                    subresource: None,
                    name: Some(name),
                },
            };
            if self.may(identity, &a)? {
                return Ok(());
            }
            let scope = match namespace {
                Some(ns) => format!("in the namespace \"{ns}\""),
                None => "at the cluster scope".to_string(),
            };
            Err(ApiError::forbidden(format!(
                "{resource} \"{name}\" is forbidden: User \"{}\" cannot impersonate resource \"{resource}\" in API group \"\" {scope}",
                identity.user()
            )))
        };
        match crate::service_accounts::parse_user_name(&asked.user) {
            Some((ns, name)) => check(Some(ns), "serviceaccounts", name)?,
            None => check(None, "users", &asked.user)?,
        }
        for group in &asked.groups {
            check(None, "groups", group)?;
        }
        if let Some(uid) = &asked.uid {
            check(None, "uids", uid)?;
        }
        Ok(Identity::User(asked.user()))
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

    fn subject(json: serde_json::Value) -> Subject {
        serde_json::from_value(json).unwrap()
    }

    fn ok(rule: &PolicyRule, method: Method, path: &str) -> bool {
        allows(rule, &Attributes::of(&req(method, path)))
    }

    #[test]
    fn rules_match_verbs_groups_resources_subresources_and_names() {
        let readers = rule(serde_json::json!({
            "apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]}));
        assert!(ok(&readers, Method::GET, "/api/v1/namespaces/d/pods"));
        assert!(ok(
            &readers,
            Method::GET,
            "/api/v1/namespaces/d/pods/web/log"
        ));
        assert!(!ok(
            &readers,
            Method::GET,
            "/api/v1/namespaces/d/pods/web/status"
        ));
        assert!(!ok(
            &readers,
            Method::DELETE,
            "/api/v1/namespaces/d/pods/web"
        ));
        assert!(!ok(
            &readers,
            Method::GET,
            "/apis/apps/v1/namespaces/d/deployments"
        ));
        let scalers = rule(serde_json::json!({
            "apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["*"]}));
        assert!(ok(
            &scalers,
            Method::PUT,
            "/apis/apps/v1/namespaces/d/deployments/web/scale"
        ));
        assert!(!ok(
            &scalers,
            Method::PUT,
            "/apis/apps/v1/namespaces/d/deployments/web"
        ));
        let one = rule(serde_json::json!({
            "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["settings"],
            "verbs": ["get", "list"]}));
        assert!(ok(
            &one,
            Method::GET,
            "/api/v1/namespaces/d/configmaps/settings"
        ));
        assert!(!ok(
            &one,
            Method::GET,
            "/api/v1/namespaces/d/configmaps/other"
        ));
        // Names restrict to named objects: a list names none.
        assert!(!ok(&one, Method::GET, "/api/v1/namespaces/d/configmaps"));
    }

    #[test]
    fn paths_match_exactly_or_by_a_star_prefix() {
        let r = rule(serde_json::json!({
            "nonResourceURLs": ["/healthz", "/apis/*"], "verbs": ["get"]}));
        let path = |v, p| allows(&r, &Attributes::path(v, p));
        assert!(path("get", "/healthz"));
        assert!(!path("get", "/healthz/etcd"));
        assert!(path("get", "/apis/apps/v1"));
        assert!(!path("get", "/api"));
        assert!(!path("post", "/healthz"));
        // Resource rules grant no path, path rules no resource.
        assert!(!ok(&r, Method::GET, "/api/v1/namespaces/d/pods"));
        let pods =
            rule(serde_json::json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}));
        assert!(!allows(&pods, &Attributes::path("get", "/metrics")));
    }

    #[test]
    fn subjects_name_users_groups_and_service_accounts() {
        let robot = "system:serviceaccount:d:robot";
        let groups: Vec<String> = ["system:serviceaccounts", "system:serviceaccounts:d"]
            .map(String::from)
            .to_vec();
        let sa = |ns: Option<&str>| {
            subject(serde_json::json!({"kind": "ServiceAccount", "name": "robot", "namespace": ns}))
        };
        assert!(names(&sa(Some("d")), None, robot, &groups));
        assert!(names(&sa(None), Some("d"), robot, &groups));
        assert!(!names(&sa(None), None, robot, &groups));
        assert!(!names(&sa(Some("e")), Some("d"), robot, &groups));
        assert!(!names(&sa(Some("d")), None, "robot", &groups));
        let user = subject(serde_json::json!({"kind": "User", "name": robot, "apiGroup": GROUP}));
        assert!(names(&user, None, robot, &groups));
        let jane = subject(serde_json::json!({"kind": "User", "name": "jane", "apiGroup": GROUP}));
        assert!(names(&jane, None, "jane", &[]));
        assert!(!names(&jane, None, "john", &[]));
        let g = subject(
            serde_json::json!({"kind": "Group", "name": "system:serviceaccounts:d", "apiGroup": GROUP}),
        );
        assert!(names(&g, None, robot, &groups));
        assert!(!names(&g, None, "jane", &[]));
    }
}

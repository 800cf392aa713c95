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

use std::sync::Arc;

use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::auth::{Access, Identity};
use crate::handlers::Handlers;
use crate::request::{Query, ResourceRequest};
use crate::status::{ApiError, ApiResult};
use crate::users::Impersonation;

pub use crate::rbac_index::Source;

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
        // kube's RequestInfo: a Namespace (and its status) is inside itself, so a
        // RoleBinding there may grant reading it.
        let namespace = match (req.kind.plural, req.kind.group, &req.name) {
            ("namespaces", "", Some(name)) => Some(name.as_str()),
            _ => req.namespace.as_deref(),
        };
        Attributes {
            verb: req.verb.as_str(),
            namespace,
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

    /// The 403 kube-apiserver answers `user` when these attributes are not allowed
    /// (`forbiddenMessage` wrapped by `NewForbidden`): `nodes.metrics.k8s.io "n1" is
    /// forbidden: User "u" cannot get resource "nodes" in API group "metrics.k8s.io"
    /// at the cluster scope`.
    pub fn forbidden(&self, user: &str) -> ApiError {
        let verb = self.verb;
        let (group, resource, subresource, name) = match self.target {
            Target::Resource {
                group,
                resource,
                subresource,
                name,
            } => (group, resource, subresource, name),
            Target::NonResource { path } => {
                return ApiError::forbidden(format!(
                    "forbidden: User \"{user}\" cannot {verb} path \"{path}\""
                ));
            }
        };
        let qualified = if group.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}.{group}")
        };
        let what = match name {
            Some(n) => format!("{qualified} \"{n}\""),
            None => qualified,
        };
        let full = match subresource {
            Some(s) => format!("{resource}/{s}"),
            None => resource.to_string(),
        };
        let scope = match self.namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_string(),
        };
        ApiError::forbidden(format!(
            "{what} is forbidden: User \"{user}\" cannot {verb} resource \"{full}\" in API group \"{group}\" {scope}"
        ))
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

/// What a decision depends on, each part length-prefixed (no name can pass for
/// another): the caller, its groups, and the attributes (the object's name only when
/// some rule names objects).
fn decision_key(user: &str, groups: &[String], a: &Attributes<'_>, names_matter: bool) -> String {
    use std::fmt::Write;
    let mut key = String::with_capacity(128);
    // Every value as `LEN:TEXT`; a missing one as `-`, which no value begins with.
    let mut part = |s: Option<&str>| {
        let _ = match s {
            Some(s) => write!(key, "{}:{s}", s.len()),
            None => write!(key, "-"),
        };
    };
    part(Some(user));
    part(Some(&groups.len().to_string()));
    for g in groups {
        part(Some(g));
    }
    part(Some(a.verb));
    part(a.namespace);
    match a.target {
        Target::NonResource { path } => part(Some(path)),
        Target::Resource {
            group,
            resource,
            subresource,
            name,
        } => {
            part(Some(group));
            part(Some(resource));
            part(subresource);
            part(if names_matter { name } else { Some("") });
        }
    }
    key
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
        let index = self.listers.rbac_index();
        for grant in index.grants(user, groups, namespace) {
            if grant.rules.iter().any(&mut *visit) {
                return Ok(Some(grant.source.clone()));
            }
        }
        Ok(None)
    }

    /// Where RBAC allows `a` to `user` in `groups` from (`None`: it does not), a
    /// decision remembered while the roles and bindings stay as they are.
    pub(crate) fn rbac_allows(
        &self,
        user: &str,
        groups: &[String],
        a: &Attributes<'_>,
    ) -> ApiResult<Option<Arc<Source>>> {
        self.rbac_ready()?;
        Ok(self.listers.rbac_decision(
            |index| decision_key(user, groups, a, index.names_matter()),
            |index| {
                index
                    .grants(user, groups, a.namespace)
                    .find(|g| g.rules.iter().any(|r| allows(r, a)))
                    .map(|g| g.source.clone())
            },
        ))
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
            // kube checks uids in authentication.k8s.io, the rest in the core group.
            let group = if resource == "uids" {
                "authentication.k8s.io"
            } else {
                ""
            };
            let a = Attributes {
                verb: "impersonate",
                namespace,
                target: Target::Resource {
                    group,
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
                "{resource} \"{name}\" is forbidden: User \"{}\" cannot impersonate resource \"{resource}\" in API group \"{group}\" {scope}",
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
}

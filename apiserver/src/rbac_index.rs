//! RBAC's roles and bindings indexed by subject, and its decisions remembered: what
//! [`crate::rbac`] reads on every request of a user or a ServiceAccount. kube-apiserver
//! walks every binding per request; with a thousand bindings that is most of a
//! request's time, so here the bindings are indexed by the user, group or account they
//! name (each grant holding its role's rules), rebuilt when a role or binding changes,
//! and each decision is remembered until then. Both are functions of the listers'
//! contents alone, so neither can say anything the bindings do not.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef, Subject};
use rk8s_api::AnyObject;

/// The RBAC API group.
const GROUP: &str = "rbac.authorization.k8s.io";

/// How many decisions are remembered at most (all are forgotten when full).
const DECISIONS: usize = 8192;

/// The longest key a decision is remembered under: longer ones (a long path, many
/// groups) are decided each time, so the memory kept stays bounded.
const MAX_KEY: usize = 1024;

/// The four RBAC listers' counts of changes (roles, cluster roles, role bindings,
/// cluster role bindings): equal counts, the same objects.
pub type Generation = [u64; 4];

/// The binding and role a rule came from, in kube's words
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

/// The rules one binding gives one subject.
pub struct Grant {
    /// The binding's namespace (`None`: a ClusterRoleBinding, every namespace).
    pub namespace: Option<String>,
    /// The rules of the role it refers to.
    pub rules: Arc<[PolicyRule]>,
    /// Where they come from.
    pub source: Source,
}

/// Every grant, by the user name or group it names (a ServiceAccount by its user
/// name, `system:serviceaccount:NS:NAME`).
#[derive(Default)]
pub struct Index {
    users: HashMap<String, Vec<Arc<Grant>>>,
    groups: HashMap<String, Vec<Arc<Grant>>>,
    /// Whether any rule names objects (`resourceNames`): if none does, a decision
    /// does not depend on the object's name.
    names_matter: bool,
}

impl Index {
    /// The index of `roles` (Roles and ClusterRoles) and `bindings` (RoleBindings and
    /// ClusterRoleBindings).
    pub fn build(
        roles: impl IntoIterator<Item = Arc<AnyObject>>,
        bindings: impl IntoIterator<Item = Arc<AnyObject>>,
    ) -> Self {
        let mut by_name: HashMap<(Option<String>, String), Arc<[PolicyRule]>> = HashMap::new();
        let mut names_matter = false;
        {
            for obj in roles {
                let (ns, name, rules) = match obj.as_ref() {
                    AnyObject::ClusterRole(r) => (None, &r.metadata.name, &r.rules),
                    AnyObject::Role(r) => {
                        (r.metadata.namespace.clone(), &r.metadata.name, &r.rules)
                    }
                    _ => continue,
                };
                let rules: Arc<[PolicyRule]> = rules.clone().unwrap_or_default().into();
                names_matter |= rules
                    .iter()
                    .any(|r| r.resource_names.as_ref().is_some_and(|n| !n.is_empty()));
                by_name.insert((ns, name.clone().unwrap_or_default()), rules);
            }
        }
        let mut index = Index {
            names_matter,
            ..Index::default()
        };
        {
            for obj in bindings {
                let (ns, name, subjects, role) = match obj.as_ref() {
                    AnyObject::ClusterRoleBinding(b) => {
                        (None, &b.metadata.name, &b.subjects, &b.role_ref)
                    }
                    AnyObject::RoleBinding(b) => (
                        b.metadata.namespace.clone(),
                        &b.metadata.name,
                        &b.subjects,
                        &b.role_ref,
                    ),
                    _ => continue,
                };
                let Some(rules) = role_rules(&by_name, ns.as_deref(), role) else {
                    continue;
                };
                let name = name.as_deref().unwrap_or_default();
                let binding = match &ns {
                    None => format!("ClusterRoleBinding \"{name}\""),
                    Some(ns) => format!("RoleBinding \"{name}/{ns}\""),
                };
                for subject in subjects.iter().flatten() {
                    index.add(subject, &ns, &binding, role, &rules);
                }
            }
        }
        index
    }

    fn add(
        &mut self,
        subject: &Subject,
        ns: &Option<String>,
        binding: &str,
        role: &RoleRef,
        rules: &Arc<[PolicyRule]>,
    ) {
        let (map, key, described) = match subject.kind.as_str() {
            "User" => (
                &mut self.users,
                subject.name.clone(),
                format!("User \"{}\"", subject.name),
            ),
            "Group" => (
                &mut self.groups,
                subject.name.clone(),
                format!("Group \"{}\"", subject.name),
            ),
            "ServiceAccount" => {
                let Some(sa_ns) = subject
                    .namespace
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .or(ns.as_deref())
                else {
                    return;
                };
                (
                    &mut self.users,
                    format!("system:serviceaccount:{sa_ns}:{}", subject.name),
                    format!("ServiceAccount \"{}/{sa_ns}\"", subject.name),
                )
            }
            _ => return,
        };
        map.entry(key).or_default().push(Arc::new(Grant {
            namespace: ns.clone(),
            rules: rules.clone(),
            source: Source {
                binding: binding.to_string(),
                role: format!("{} \"{}\"", role.kind, role.name),
                subject: described,
            },
        }));
    }

    /// The grants that apply to `user` in `groups` in `namespace` (the cluster's,
    /// and the namespace's when there is one).
    pub fn grants<'a>(
        &'a self,
        user: &str,
        groups: &'a [String],
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Grant> + 'a {
        let by_user = self.users.get(user).into_iter().flatten();
        let by_group = groups.iter().filter_map(|g| self.groups.get(g)).flatten();
        by_user
            .chain(by_group)
            .map(Arc::as_ref)
            .filter(move |g| g.namespace.is_none() || g.namespace.as_deref() == namespace)
    }

    /// Whether any rule names objects.
    pub fn names_matter(&self) -> bool {
        self.names_matter
    }
}

/// The rules of the role `role` refers to from a binding in `ns` (`None` for a role
/// that does not exist, yet).
fn role_rules(
    roles: &HashMap<(Option<String>, String), Arc<[PolicyRule]>>,
    ns: Option<&str>,
    role: &RoleRef,
) -> Option<Arc<[PolicyRule]>> {
    if role.api_group != GROUP {
        return None;
    }
    let key = match (role.kind.as_str(), ns) {
        ("ClusterRole", _) => (None, role.name.clone()),
        ("Role", Some(ns)) => (Some(ns.to_string()), role.name.clone()),
        _ => return None,
    };
    roles.get(&key).cloned()
}

/// The index of the roles and bindings as they are now, and the decisions made from
/// it, both replaced when a role or binding changes.
#[derive(Default)]
pub struct Cache {
    current: RwLock<Option<Current>>,
}

struct Current {
    generation: Generation,
    index: Arc<Index>,
    decisions: RwLock<HashMap<String, Option<Arc<Source>>>>,
}

impl Cache {
    /// The index for `generation` (the roles' and bindings' listers' count of
    /// changes), built by `build` unless it is the one kept.
    pub fn index(&self, generation: Generation, build: impl FnOnce() -> Index) -> Arc<Index> {
        if let Some(c) = self.read().as_ref()
            && c.generation == generation
        {
            return c.index.clone();
        }
        let index = Arc::new(build());
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        // Another request may have built a newer one meanwhile: kept unless older.
        let older = |c: &Current| c.generation.iter().zip(&generation).all(|(a, b)| a <= b);
        if current.as_ref().is_none_or(older) {
            *current = Some(Current {
                generation,
                index: index.clone(),
                decisions: RwLock::default(),
            });
        }
        index
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Option<Current>> {
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The decision for `key` (a request's attributes and its caller, written by
    /// `key` from the index) at `generation`, made by `decide` when not remembered
    /// from the same roles and bindings.
    pub fn decide(
        &self,
        generation: Generation,
        build: impl FnOnce() -> Index,
        key: impl FnOnce(&Index) -> String,
        decide: impl FnOnce(&Index) -> Option<Source>,
    ) -> Option<Arc<Source>> {
        let index = self.index(generation, build);
        let key = key(&index);
        if let Some(c) = self.read().as_ref().filter(|c| c.generation == generation) {
            let decisions = c.decisions.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(known) = decisions.get(&key) {
                return known.clone();
            }
        }
        let decided = decide(&index).map(Arc::new);
        if key.len() > MAX_KEY {
            return decided;
        }
        // Only into the decisions of the very index this one was made from.
        if let Some(c) = self
            .read()
            .as_ref()
            .filter(|c| c.generation == generation && Arc::ptr_eq(&c.index, &index))
        {
            let mut decisions = c.decisions.write().unwrap_or_else(PoisonError::into_inner);
            if decisions.len() >= DECISIONS {
                decisions.clear();
            }
            decisions.insert(key, decided.clone());
        }
        decided
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(json: serde_json::Value) -> Arc<AnyObject> {
        let kind = rk8s_api::object::kind_named(json["kind"].as_str().unwrap()).unwrap();
        Arc::new(AnyObject::from_value(&kind, json).unwrap().unwrap())
    }

    #[test]
    fn grants_name_users_groups_and_accounts_in_their_scope() {
        let role = object(
            serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole", "metadata": {"name": "r"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
        );
        let binding = object(
            serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding", "metadata": {"name": "b", "namespace": "d"},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "r"},
            "subjects": [
                {"kind": "ServiceAccount", "name": "robot"},
                {"kind": "User", "apiGroup": GROUP, "name": "jane"},
                {"kind": "Group", "apiGroup": GROUP, "name": "devs"}]}),
        );
        // A ServiceAccount without a namespace in a ClusterRoleBinding names nobody;
        // a binding to a role that does not exist grants nothing.
        let cluster = object(
            serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding", "metadata": {"name": "c"},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "robot"},
                {"kind": "User", "apiGroup": GROUP, "name": "root"}]}),
        );
        let dangling = object(
            serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding", "metadata": {"name": "x"},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "missing"},
            "subjects": [{"kind": "User", "apiGroup": GROUP, "name": "jane"}]}),
        );
        let index = Index::build([role], [binding, cluster, dangling]);
        let count = |user: &str, groups: &[String], ns: Option<&str>| {
            index.grants(user, groups, ns).count()
        };
        let none: &[String] = &[];
        assert_eq!(count("system:serviceaccount:d:robot", none, Some("d")), 1);
        assert_eq!(count("system:serviceaccount:d:robot", none, Some("e")), 0);
        assert_eq!(count("robot", none, Some("d")), 0);
        assert_eq!(count("jane", none, Some("d")), 1);
        assert_eq!(count("jane", none, None), 0);
        assert_eq!(count("someone", &["devs".to_string()], Some("d")), 1);
        assert_eq!(count("root", none, Some("e")), 1);
        let grant = index.grants("jane", none, Some("d")).next().unwrap();
        assert_eq!(
            grant.source.to_string(),
            "RoleBinding \"b/d\" of ClusterRole \"r\" to User \"jane\""
        );
        assert!(!index.names_matter());
    }
}

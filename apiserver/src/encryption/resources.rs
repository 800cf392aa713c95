//! Which store keys an `EncryptionConfiguration`'s resource names cover, and which
//! entry wins for a key, as kube-apiserver resolves them
//! (`encryptionconfig/config.go`): the resource named exactly (`secrets`,
//! `deployments.apps`), else its group's wildcard (`*.apps`, `*.` for the core group),
//! else `*.*`; among names of the same kind, the first entry of the file.
//!
//! Names become key prefixes: a kind rk8s serves is stored under its
//! [`ObjectKind::storage_prefix`]; any other name under `/registry/<plural>/` (core)
//! or `/registry/<group>/<plural>/`, where custom resources live. `events` also
//! covers `events.k8s.io` Events, which kube stores as core Events.

use rk8s_api::ObjectKind;

/// Where every API object is stored.
pub const REGISTRY_PREFIX: &str = "/registry/";

/// How specific a resource name is: an exact name wins over its group's wildcard,
/// which wins over `*.*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Specificity {
    Exact,
    Group,
    Any,
}

/// One key prefix and the entry (index into the file's `resources`) it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Route {
    prefix: String,
    specificity: Specificity,
    entry: usize,
}

/// The key prefixes of every configured resource, in the order they are tried.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routes {
    routes: Vec<Route>,
}

/// A resource name split as Kubernetes' `schema.ParseGroupResource` splits it:
/// `deployments.apps` → (`apps`, `deployments`); `secrets` → (``, `secrets`).
pub fn parse_group_resource(name: &str) -> (&str, &str) {
    match name.split_once('.') {
        Some((resource, group)) => (group, resource),
        None => ("", name),
    }
}

/// The key prefixes of the resource name `name` (already validated), given the
/// kinds rk8s serves.
fn prefixes(name: &str, kinds: &[ObjectKind]) -> (Specificity, Vec<String>) {
    let (group, resource) = parse_group_resource(name);
    match (group, resource) {
        ("*", _) => (Specificity::Any, vec![REGISTRY_PREFIX.to_string()]),
        (group, "*") => {
            let mut out: Vec<String> = kinds
                .iter()
                .filter(|k| k.group == group && !k.custom)
                .map(|k| k.storage_prefix(None))
                .collect();
            if group.is_empty() {
                // Core Events: events.k8s.io Events are the same objects to kube.
                out.push(format!("{REGISTRY_PREFIX}events.k8s.io/events/"));
            } else {
                // The group's custom resources, present and to come.
                out.push(format!("{REGISTRY_PREFIX}{group}/"));
            }
            (Specificity::Group, out)
        }
        (group, resource) => {
            let mut out = match kinds
                .iter()
                .find(|k| k.group == group && k.plural == resource && !k.custom)
            {
                Some(k) => vec![k.storage_prefix(None)],
                None if group.is_empty() => vec![format!("{REGISTRY_PREFIX}{resource}/")],
                None => vec![format!("{REGISTRY_PREFIX}{group}/{resource}/")],
            };
            if group.is_empty() && resource == "events" {
                out.push(format!("{REGISTRY_PREFIX}events.k8s.io/events/"));
            }
            (Specificity::Exact, out)
        }
    }
}

impl Routes {
    /// The routes of the file's entries: `entries[i]` lists entry `i`'s resource
    /// names.
    pub fn new(entries: &[Vec<String>], kinds: &[ObjectKind]) -> Self {
        let mut routes = Vec::new();
        for (entry, names) in entries.iter().enumerate() {
            for name in names {
                let (specificity, prefixes) = prefixes(name, kinds);
                for prefix in prefixes {
                    // The first entry naming a resource keeps it (kube ignores later
                    // ones).
                    if routes
                        .iter()
                        .any(|r: &Route| r.prefix == prefix && r.specificity == specificity)
                    {
                        continue;
                    }
                    routes.push(Route {
                        prefix,
                        specificity,
                        entry,
                    });
                }
            }
        }
        // Stable: the file's order stays within one specificity.
        routes.sort_by_key(|r| r.specificity);
        Routes { routes }
    }

    /// The entry whose providers transform the values stored under `key`.
    pub fn entry_for(&self, key: &[u8]) -> Option<usize> {
        self.routes
            .iter()
            .find(|r| key.starts_with(r.prefix.as_bytes()))
            .map(|r| r.entry)
    }

    /// Every key prefix an entry covers (for rewriting them all), without prefixes
    /// inside others.
    pub fn prefixes(&self) -> Vec<String> {
        let mut all: Vec<String> = self.routes.iter().map(|r| r.prefix.clone()).collect();
        all.sort();
        all.dedup();
        let mut out: Vec<String> = Vec::new();
        for p in all {
            if !out.iter().any(|o| p.starts_with(o.as_str())) {
                out.push(p);
            }
        }
        out
    }
}

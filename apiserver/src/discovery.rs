//! Discovery: what `kubectl` and client libraries read first (`/api`, `/apis`, the
//! resource list of each group version, `/version`) to learn which kinds the server
//! has, their verbs, short names and subresources.

use rk8s_api::ObjectKind;
use rk8s_api::metrics::METRICS_API_VERSION;
use rk8s_api::netpol::peer;
use rk8s_api::object::kinds;
use rk8s_api::versions::aliases;
use serde_json::{Value, json};

use crate::request::ReviewKind;

pub mod aggregated;

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The resource metrics API's group (served by `crate::resource_metrics`).
pub const METRICS_GROUP: &str = "metrics.k8s.io";
const METRICS_VERSION: &str = "v1beta1";

/// The groups of the review kinds (version `v1`; [`crate::routes::reviews`]).
const REVIEW_GROUPS: [&str; 2] = ["authentication.k8s.io", "authorization.k8s.io"];

/// The Kubernetes version whose API rk8s serves.
pub const KUBERNETES_MINOR: &str = "33";

fn resource_entries(kind: &ObjectKind) -> Vec<Value> {
    let short: Vec<String> = kind.short_names().iter().map(|s| s.to_string()).collect();
    let categories: Vec<String> = kind.categories().iter().map(|s| s.to_string()).collect();
    entries(kind, &kind.kind.to_lowercase(), &short, &categories)
}

/// The entries of a resource of `kind` and its subresources.
fn entries(
    kind: &ObjectKind,
    singular: &str,
    short: &[String],
    categories: &[String],
) -> Vec<Value> {
    // Namespaces are deleted one at a time (kube-apiserver serves no collection
    // delete of them, and answers 405).
    let verbs: Vec<&str> = VERBS
        .iter()
        .copied()
        .filter(|v| *v != "deletecollection" || kind.plural != "namespaces" || kind.custom)
        .collect();
    let mut out = vec![json!({
        "name": kind.plural,
        "singularName": singular,
        "namespaced": kind.is_namespaced(),
        "kind": kind.kind,
        "verbs": verbs,
        "shortNames": short,
        "categories": categories,
    })];
    let sub = |name: &str, kind_name: &str, verbs: &[&str]| {
        json!({
            "name": format!("{}/{name}", kind.plural),
            "singularName": "",
            "namespaced": kind.is_namespaced(),
            "kind": kind_name,
            "verbs": verbs,
        })
    };
    if kind.has_status() {
        out.push(sub("status", kind.kind, &["get", "patch", "update"]));
    }
    if kind.has_scale() {
        let mut s = sub("scale", "Scale", &["get", "patch", "update"]);
        s["group"] = json!("autoscaling");
        s["version"] = json!("v1");
        out.push(s);
    }
    if kind.plural == "nodes" {
        out.push(sub("proxy", "NodeProxyOptions", &["get"]));
    }
    let proxy_verbs = &["create", "delete", "get", "patch", "update"];
    if kind.plural == "services" {
        out.push(sub("proxy", "ServiceProxyOptions", proxy_verbs));
    }
    if kind.plural == "certificatesigningrequests" {
        out.push(sub("approval", kind.kind, &["get", "patch", "update"]));
    }
    if kind.plural == "namespaces" && kind.group.is_empty() {
        out.push(sub("finalize", kind.kind, &["update"]));
    }
    if kind.plural == "serviceaccounts" {
        let mut token = sub("token", "TokenRequest", &["create"]);
        token["group"] = json!("authentication.k8s.io");
        token["version"] = json!("v1");
        out.push(token);
    }
    if kind.plural == "pods" {
        out.push(sub("binding", "Binding", &["create"]));
        let mut eviction = sub("eviction", "Eviction", &["create"]);
        eviction["group"] = json!("policy");
        eviction["version"] = json!("v1");
        out.push(eviction);
        out.push(sub(
            "ephemeralcontainers",
            "Pod",
            &["get", "patch", "update"],
        ));
        out.push(sub("log", "Pod", &["get"]));
        out.push(sub("proxy", "PodProxyOptions", proxy_verbs));
        out.push(sub("exec", "PodExecOptions", &["create", "get"]));
        out.push(sub("attach", "PodAttachOptions", &["create", "get"]));
        out.push(sub(
            "portforward",
            "PodPortForwardOptions",
            &["create", "get"],
        ));
    }
    out
}

/// A resource served beside the built-in kinds (a custom kind in one served version).
#[derive(Clone, Debug)]
pub struct ExtraResource {
    /// The kind in that version.
    pub kind: ObjectKind,
    /// Its singular name (`crontab`).
    pub singular: String,
    /// Its short names (`ct`).
    pub short_names: Vec<String>,
    /// Its categories (`all`).
    pub categories: Vec<String>,
}

/// `/api/v1` or `/apis/<group>/<version>`: the resources of one group version (the
/// built-in kinds' and `extra`), or `None` if the server has none there.
pub fn resource_list(group: &str, version: &str, extra: &[ExtraResource]) -> Option<Value> {
    if (group, version) == (METRICS_GROUP, METRICS_VERSION) {
        return Some(metrics_resource_list());
    }
    if (group, version) == (peer::GROUP, peer::VERSION) {
        return Some(peers_resource_list());
    }
    if version == "v1" && REVIEW_GROUPS.contains(&group) {
        let resources: Vec<Value> = ReviewKind::ALL
            .into_iter()
            .filter(|k| k.group() == group)
            .map(|k| {
                json!({
                    "name": k.plural(),
                    "singularName": k.kind().to_lowercase(),
                    "namespaced": k.namespaced(),
                    "kind": k.kind(),
                    "verbs": ["create"],
                })
            })
            .collect();
        return Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": format!("{group}/v1"),
            "resources": resources,
        }));
    }
    let served = aliases().iter().map(|a| a.served);
    let mut resources: Vec<Value> = kinds()
        .into_iter()
        .chain(served)
        .filter(|k| k.group == group && k.version == version)
        .flat_map(|k| resource_entries(&k))
        .collect();
    if (group, version) == ("", "v1") {
        // Computed at each read (crate::routes::component_statuses), never stored.
        resources.push(json!({
            "name": "componentstatuses",
            "singularName": "componentstatus",
            "namespaced": false,
            "kind": "ComponentStatus",
            "verbs": ["get", "list"],
            "shortNames": ["cs"],
        }));
    }
    for e in extra
        .iter()
        .filter(|e| e.kind.group == group && e.kind.version == version)
    {
        resources.extend(entries(&e.kind, &e.singular, &e.short_names, &e.categories));
    }
    if resources.is_empty() {
        return None;
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": if group.is_empty() { version.to_string() } else { format!("{group}/{version}") },
        "resources": resources,
    }))
}

/// Kubernetes' version priority (`kube-aggregator`'s `CompareKubeAwareVersionStrings`):
/// GA before beta before alpha, higher numbers first, anything else last by name.
fn version_priority(v: &str) -> (u8, std::cmp::Reverse<u32>, std::cmp::Reverse<u32>, String) {
    let parse = |rest: &str| -> Option<(u8, u32, u32)> {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major = digits.parse().ok()?;
        match &rest[digits.len()..] {
            "" => Some((0, major, 0)),
            tail => {
                let (level, n) = if let Some(n) = tail.strip_prefix("beta") {
                    (1, n)
                } else {
                    (2, tail.strip_prefix("alpha")?)
                };
                Some((level, major, n.parse().ok()?))
            }
        }
    };
    match v.strip_prefix('v').and_then(parse) {
        Some((level, major, minor)) => (
            level,
            std::cmp::Reverse(major),
            std::cmp::Reverse(minor),
            String::new(),
        ),
        None => (3, std::cmp::Reverse(0), std::cmp::Reverse(0), v.to_string()),
    }
}

/// The versions `extra` serves of `group`, preferred first.
fn extra_versions(group: &str, extra: &[ExtraResource]) -> Vec<String> {
    let mut versions: Vec<String> = extra
        .iter()
        .filter(|e| e.kind.group == group)
        .map(|e| e.kind.version.to_string())
        .collect();
    versions.sort_by_key(|v| version_priority(v));
    versions.dedup();
    versions
}

/// `/api`.
pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [],
    })
}

/// The versions the server has of `group` (`""`: the core group), preferred first.
fn group_versions(group: &str, extra: &[ExtraResource]) -> Vec<String> {
    let versions = extra_versions(group, extra);
    if !versions.is_empty() {
        return versions;
    }
    let stored = kinds().into_iter().find(|k| k.group == group);
    let mut versions: Vec<String> = stored.iter().map(|k| k.version.to_string()).collect();
    // The versions served by conversion, after the stored one (which kube prefers).
    for a in aliases().iter().filter(|a| a.served.group == group) {
        if !versions.iter().any(|v| v == a.served.version) {
            versions.push(a.served.version.to_string());
        }
    }
    if versions.is_empty() {
        versions.push(
            match group {
                METRICS_GROUP => METRICS_VERSION,
                peer::GROUP => peer::VERSION,
                _ => "v1",
            }
            .to_string(),
        );
    }
    versions
}

fn group_entry(group: &str, extra: &[ExtraResource]) -> Value {
    let versions = group_versions(group, extra);
    let gv = |v: &String| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    json!({
        "name": group,
        "versions": versions.iter().map(gv).collect::<Vec<_>>(),
        "preferredVersion": versions.first().map(gv),
    })
}

fn groups(extra: &[ExtraResource]) -> Vec<String> {
    let mut groups: Vec<String> = Vec::new();
    let served = aliases().iter().map(|a| a.served);
    for k in kinds().into_iter().chain(served) {
        if !k.group.is_empty() && !groups.iter().any(|g| g == k.group) {
            groups.push(k.group.to_string());
        }
    }
    groups.push(METRICS_GROUP.to_string());
    groups.push(peer::GROUP.to_string());
    groups.extend(REVIEW_GROUPS.map(String::from));
    for e in extra {
        if !groups.iter().any(|g| g == e.kind.group) {
            groups.push(e.kind.group.to_string());
        }
    }
    groups
}

/// `/apis`.
pub fn group_list(extra: &[ExtraResource]) -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups(extra).iter().map(|g| group_entry(g, extra)).collect::<Vec<_>>(),
    })
}

/// `/apis/<group>`, or `None` if the group is not served.
pub fn group(name: &str, extra: &[ExtraResource]) -> Option<Value> {
    groups(extra).iter().any(|g| g == name).then(|| {
        let mut g = group_entry(name, extra);
        g["kind"] = json!("APIGroup");
        g["apiVersion"] = json!("v1");
        g
    })
}

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBERNETES_MINOR,
        "gitVersion": format!("v1.{KUBERNETES_MINOR}.0-rk8s.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": env!("RK8S_GIT_COMMIT"),
        "gitTreeState": env!("RK8S_GIT_TREE_STATE"),
        "buildDate": env!("RK8S_BUILD_DATE"),
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }),
    })
}

/// `/apis/metrics.k8s.io/v1beta1`: its two read-only resources.
fn metrics_resource_list() -> Value {
    let entry = |name: &str, kind: &str, namespaced: bool| json!({"name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": ["get", "list"]});
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": METRICS_API_VERSION,
        "resources": [entry("nodes", "NodeMetrics", false), entry("pods", "PodMetrics", true)],
    })
}

/// `/apis/networking.rk8s.io/v1alpha1`: the read-only PodPeer projection.
fn peers_resource_list() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": peer::API_VERSION,
        "resources": [{"name": peer::PLURAL, "singularName": "podpeer", "namespaced": true,
                       "kind": peer::KIND, "verbs": ["get", "list", "watch"]}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_peers_are_discoverable_read_only() {
        let none: Vec<ExtraResource> = Vec::new();
        assert!(groups(&none).iter().any(|g| g == peer::GROUP));
        let g = group(peer::GROUP, &none).unwrap();
        assert_eq!(g["preferredVersion"]["groupVersion"], peer::API_VERSION);
        let list = resource_list(peer::GROUP, peer::VERSION, &none).unwrap();
        assert_eq!(list["resources"][0]["name"], peer::PLURAL);
        assert_eq!(list["resources"][0]["namespaced"], true);
        assert_eq!(
            list["resources"][0]["verbs"],
            json!(["get", "list", "watch"])
        );
    }

    #[test]
    fn every_kind_is_discoverable() {
        let none: Vec<ExtraResource> = Vec::new();
        for k in kinds() {
            let list = resource_list(k.group, k.version, &none).unwrap();
            let names: Vec<&str> = list["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap())
                .collect();
            assert!(names.contains(&k.plural), "{names:?}");
        }
        let apps = resource_list("apps", "v1", &none).unwrap();
        let scale = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
        assert!(resource_list("apps", "v2", &none).is_none());
        let groups = group_list(&none);
        assert!(
            groups["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["preferredVersion"]["groupVersion"] == "autoscaling/v2")
        );
        assert!(group("apps", &none).is_some() && group("nope", &none).is_none());
    }

    #[test]
    fn extra_groups_list_their_versions_preferred_first() {
        let mut order = vec!["v1beta1", "v2", "v1", "v1alpha1", "foo", "v10"];
        order.sort_by_key(|v| version_priority(v));
        assert_eq!(order, ["v10", "v2", "v1", "v1beta1", "v1alpha1", "foo"]);
        let extra: Vec<ExtraResource> = ["v1beta1", "v1"]
            .into_iter()
            .map(|v| ExtraResource {
                kind: ObjectKind::custom(
                    "stable.example.com",
                    v,
                    "CronTab",
                    "crontabs",
                    rk8s_api::Scope::Namespaced,
                )
                .with_subresources(true, false),
                singular: "crontab".into(),
                short_names: vec!["ct".into()],
                categories: Vec::new(),
            })
            .collect();
        let g = group("stable.example.com", &extra).unwrap();
        assert_eq!(g["preferredVersion"]["version"], "v1");
        assert_eq!(g["versions"][1]["version"], "v1beta1");
        let list = resource_list("stable.example.com", "v1", &extra).unwrap();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["crontabs", "crontabs/status"]);
        assert_eq!(list["resources"][0]["shortNames"][0], "ct");
    }
}

//! Discovery: what `kubectl` and client libraries read first (`/api`, `/apis`, the
//! resource list of each group version, `/version`) to learn which kinds the server
//! has, their verbs, short names and subresources.

use rk8s_api::ObjectKind;
use rk8s_api::metrics::METRICS_API_VERSION;
use rk8s_api::object::kinds;
use serde_json::{Value, json};

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

/// The Kubernetes version whose API rk8s serves.
pub const KUBERNETES_MINOR: &str = "33";

fn resource_entries(kind: &ObjectKind) -> Vec<Value> {
    let singular = kind.kind.to_lowercase();
    let mut out = vec![json!({
        "name": kind.plural,
        "singularName": singular,
        "namespaced": kind.is_namespaced(),
        "kind": kind.kind,
        "verbs": VERBS,
        "shortNames": kind.short_names(),
        "categories": kind.categories(),
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
    if kind.plural == "pods" {
        out.push(sub("binding", "Binding", &["create"]));
        out.push(sub("log", "Pod", &["get"]));
        out.push(sub("exec", "PodExecOptions", &["create", "get"]));
    }
    out
}

/// `/api/v1` or `/apis/<group>/<version>`: the resources of one group version, or
/// `None` if the server has none there.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    if (group, version) == (METRICS_GROUP, METRICS_VERSION) {
        return Some(metrics_resource_list());
    }
    let served: Vec<ObjectKind> = kinds()
        .into_iter()
        .filter(|k| k.group == group && k.version == version)
        .collect();
    let first = served.first()?;
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": first.api_version,
        "resources": served.iter().flat_map(resource_entries).collect::<Vec<_>>(),
    }))
}

/// `/api`.
pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [],
    })
}

fn group_entry(group: &str) -> Value {
    let version = kinds()
        .into_iter()
        .find(|k| k.group == group)
        .map(|k| k.version)
        .unwrap_or(if group == METRICS_GROUP {
            METRICS_VERSION
        } else {
            "v1"
        });
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({
        "name": group,
        "versions": [gv.clone()],
        "preferredVersion": gv,
    })
}

fn groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for k in kinds() {
        if !k.group.is_empty() && !groups.contains(&k.group) {
            groups.push(k.group);
        }
    }
    groups.push(METRICS_GROUP);
    groups
}

/// `/apis`.
pub fn group_list() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups().into_iter().map(group_entry).collect::<Vec<_>>(),
    })
}

/// `/apis/<group>`, or `None` if the group is not served.
pub fn group(name: &str) -> Option<Value> {
    groups().contains(&name).then(|| {
        let mut g = group_entry(name);
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
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_discoverable() {
        for k in kinds() {
            let list = resource_list(k.group, k.version).unwrap();
            let names: Vec<&str> = list["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap())
                .collect();
            assert!(names.contains(&k.plural), "{names:?}");
        }
        let apps = resource_list("apps", "v1").unwrap();
        let scale = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
        assert!(resource_list("apps", "v2").is_none());
        let groups = group_list();
        assert!(
            groups["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["preferredVersion"]["groupVersion"] == "autoscaling/v2")
        );
        assert!(group("apps").is_some() && group("nope").is_none());
    }
}

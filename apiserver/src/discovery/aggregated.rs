//! Aggregated discovery (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`): every
//! group version's resources in one answer to `/api` (the core group) or `/apis`
//! (the others), as kube-apiserver serves it to the clients that ask for it in their
//! `Accept` (kubectl and client-go since 1.30: two requests for a cold `kubectl
//! api-resources` instead of one per group version). Built from the same resource
//! lists as the per-group-version documents, so the two never disagree.

use serde_json::{Map, Value, json};

use super::{ExtraResource, group_versions, groups, resource_list};

/// The versions of the document there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `apidiscovery.k8s.io/v2` (GA since Kubernetes 1.30).
    V2,
    /// `apidiscovery.k8s.io/v2beta1` (the same document, as 1.26–1.29 clients ask).
    V2Beta1,
}

impl Version {
    fn name(self) -> &'static str {
        match self {
            Version::V2 => "v2",
            Version::V2Beta1 => "v2beta1",
        }
    }

    /// The answer's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Version::V2 => "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            Version::V2Beta1 => {
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
            }
        }
    }
}

/// The aggregated document `accept` asks for before anything else it takes (`None`:
/// the plain `APIVersions`/`APIGroupList`). Media types are taken in the order
/// listed, as kubectl lists them by preference; a protobuf one is passed over.
pub fn asked(accept: Option<&str>) -> Option<Version> {
    for media in accept?.split(',') {
        let mut parts = media.split(';').map(str::trim);
        let essence = parts.next().unwrap_or_default();
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let aggregated = param("g") == Some("apidiscovery.k8s.io")
            && param("as") == Some("APIGroupDiscoveryList");
        match (essence, aggregated, param("v")) {
            ("application/json", true, Some("v2")) => return Some(Version::V2),
            ("application/json", true, Some("v2beta1")) => return Some(Version::V2Beta1),
            (_, true, _) => continue,
            ("application/json" | "application/*" | "*/*", false, _) => return None,
            _ => continue,
        }
    }
    None
}

/// The document for `/api` (`core`) or `/apis`, with `extra` (the custom kinds).
pub fn document(core: bool, extra: &[ExtraResource], version: Version) -> Value {
    let names: Vec<String> = if core {
        vec![String::new()]
    } else {
        groups(extra)
    };
    let items: Vec<Value> = names
        .iter()
        .map(|group| {
            let versions: Vec<Value> = group_versions(group, extra)
                .iter()
                .filter_map(|v| {
                    let list = resource_list(group, v, extra)?;
                    Some(json!({
                        "version": v,
                        "resources": resources(&list),
                        "freshness": "Current",
                    }))
                })
                .collect();
            json!({
                "metadata": {"name": group, "creationTimestamp": null},
                "versions": versions,
            })
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{}", version.name()),
        "metadata": {},
        "items": items,
    })
}

/// An `APIResourceList`'s entries as `APIResourceDiscovery`s: each resource with its
/// subresources (`pods/status`) inside it.
fn resources(list: &Value) -> Vec<Value> {
    let entries = list["resources"].as_array().map_or(&[][..], Vec::as_slice);
    let mut out: Vec<Value> = Vec::new();
    for e in entries {
        let name = e["name"].as_str().unwrap_or_default();
        let kind = json!({
            "group": e.get("group").cloned().unwrap_or(json!("")),
            "version": e.get("version").cloned().unwrap_or(json!("")),
            "kind": e["kind"],
        });
        if let Some((parent, sub)) = name.split_once('/') {
            let sub = json!({"subresource": sub, "responseKind": kind, "verbs": e["verbs"]});
            if let Some(Value::Object(r)) = out.iter_mut().find(|r| r["resource"] == parent)
                && let Value::Array(subs) = r.entry("subresources").or_insert(json!([]))
            {
                subs.push(sub);
            }
            continue;
        }
        let namespaced = e["namespaced"].as_bool().unwrap_or(false);
        let mut r = Map::new();
        r.insert("resource".into(), json!(name));
        r.insert("responseKind".into(), kind);
        r.insert(
            "scope".into(),
            json!(if namespaced { "Namespaced" } else { "Cluster" }),
        );
        r.insert("singularResource".into(), e["singularName"].clone());
        r.insert("verbs".into(), e["verbs"].clone());
        for field in ["shortNames", "categories"] {
            if e[field].as_array().is_some_and(|a| !a.is_empty()) {
                r.insert(field.into(), e[field].clone());
            }
        }
        out.push(Value::Object(r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectls_accept_header_gets_v2_and_plain_json_gets_the_old_lists() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(asked(Some(kubectl)), Some(Version::V2));
        let protobuf_first = "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
        assert_eq!(asked(Some(protobuf_first)), Some(Version::V2Beta1));
        assert_eq!(asked(Some("application/json")), None);
        assert_eq!(
            asked(Some(
                "application/json, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            )),
            None
        );
        assert_eq!(asked(None), None);
    }

    #[test]
    fn resources_carry_their_subresources_and_scope() {
        let doc = document(true, &[], Version::V2);
        assert_eq!(doc["items"][0]["metadata"]["name"], "");
        let v1 = &doc["items"][0]["versions"][0];
        assert_eq!(v1["version"], "v1");
        let resources = v1["resources"].as_array().unwrap();
        let pods = resources.iter().find(|r| r["resource"] == "pods").unwrap();
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(
            pods["responseKind"],
            json!({"group": "", "version": "", "kind": "Pod"})
        );
        assert_eq!(pods["shortNames"], json!(["po"]));
        let subs: Vec<&str> = pods["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["subresource"].as_str().unwrap())
            .collect();
        assert!(
            subs.contains(&"status") && subs.contains(&"eviction"),
            "{subs:?}"
        );
        let eviction = &pods["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subresource"] == "eviction")
            .unwrap()["responseKind"];
        assert_eq!(
            eviction,
            &json!({"group": "policy", "version": "v1", "kind": "Eviction"})
        );
        assert!(
            resources
                .iter()
                .all(|r| !r["resource"].as_str().unwrap().contains('/'))
        );
        let nodes = resources.iter().find(|r| r["resource"] == "nodes").unwrap();
        assert_eq!(nodes["scope"], "Cluster");
        let groups = document(false, &[], Version::V2);
        let names: Vec<&str> = groups["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["metadata"]["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"apps") && !names.contains(&""), "{names:?}");
    }
}

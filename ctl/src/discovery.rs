//! Kinds the cluster serves, found through API discovery as kubectl's RESTMapper finds
//! them: the names a user types (`crontabs`, `ct`, `crontab.stable.example.com`) and
//! the `apiVersion`/`kind` of manifests, for the custom kinds rk8sctl does not know.
//! Built-in kinds resolve from rk8s's own list without asking the server.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::core::GroupVersionKind;
use rk8s_api::object::{kind_by_plural, kind_for, resolve};
use rk8s_api::{ObjectKind, Scope};
use serde_json::Value;

use crate::cluster::explain;

/// One resource a server lists in discovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// The kind, its version and plural.
    pub kind: ObjectKind,
    /// `singularName` (the lowercase kind when the server leaves it empty).
    pub singular: String,
    /// `shortNames` (`ct`).
    pub short_names: Vec<String>,
    /// Whether the version is its group's preferred one.
    pub preferred: bool,
}

impl Served {
    /// Whether `name` (already lowercase) names this resource: its plural, singular,
    /// short name or kind, alone or qualified with the group (`crontabs.stable.example.com`)
    /// or the version and group (`crontabs.v1.stable.example.com`).
    fn is_named(&self, name: &str) -> bool {
        let kind = self.kind.kind.to_lowercase();
        let names = [self.kind.plural, self.singular.as_str(), kind.as_str()]
            .into_iter()
            .chain(self.short_names.iter().map(String::as_str));
        let group = self.kind.group;
        let version = self.kind.version;
        names.into_iter().any(|n| {
            name == n
                || (!group.is_empty()
                    && (name == format!("{n}.{group}") || name == format!("{n}.{version}.{group}")))
        })
    }
}

/// The resource `name` names among `served`: the group's preferred version first, then
/// the order of discovery (the core group, then the groups as the server lists them).
pub fn pick(served: &[Served], name: &str) -> Option<ObjectKind> {
    let name = name.to_lowercase();
    let matching: Vec<&Served> = served.iter().filter(|s| s.is_named(&name)).collect();
    matching
        .iter()
        .find(|s| s.preferred)
        .or(matching.first())
        .map(|s| s.kind)
}

/// The descriptor of a discovered resource: rk8s's own for a built-in kind at its
/// version, else a custom kind's.
fn descriptor(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    subresources: &[&str],
) -> ObjectKind {
    if let Some(k) = kind_by_plural(group, plural).filter(|k| k.version == version) {
        return k;
    }
    let scope = if namespaced {
        Scope::Namespaced
    } else {
        Scope::Cluster
    };
    ObjectKind::custom(group, version, kind, plural, scope).with_subresources(
        subresources.contains(&"status"),
        subresources.contains(&"scale"),
    )
}

/// The resources of one group version's discovery document.
fn resources_of(
    group: &str,
    version: &str,
    list: &APIResourceList,
    preferred: bool,
) -> Vec<Served> {
    list.resources
        .iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| {
            let prefix = format!("{}/", r.name);
            let subresources: Vec<&str> = list
                .resources
                .iter()
                .filter_map(|s| s.name.strip_prefix(&prefix))
                .collect();
            Served {
                kind: descriptor(
                    group,
                    version,
                    &r.kind,
                    &r.name,
                    r.namespaced,
                    &subresources,
                ),
                singular: if r.singular_name.is_empty() {
                    r.kind.to_lowercase()
                } else {
                    r.singular_name.clone()
                },
                short_names: r.short_names.clone().unwrap_or_default(),
                preferred,
            }
        })
        .collect()
}

/// Every resource the server serves, in every version: `/api`, `/apis` and each
/// group version's list. A group version whose list cannot be read is left out (as
/// kubectl goes on with partial discovery).
pub async fn served(client: &kube::Client) -> Result<Vec<Served>> {
    let mut out = Vec::new();
    let core = client.list_core_api_versions().await.map_err(explain)?;
    for (i, version) in core.versions.iter().enumerate() {
        if let Ok(list) = client.list_core_api_resources(version).await {
            out.extend(resources_of("", version, &list, i == 0));
        }
    }
    let groups = client.list_api_groups().await.map_err(explain)?;
    for group in &groups.groups {
        let preferred = group
            .preferred_version
            .as_ref()
            .map(|p| p.version.as_str())
            .or_else(|| group.versions.first().map(|v| v.version.as_str()));
        for v in &group.versions {
            if let Ok(list) = client.list_api_group_resources(&v.group_version).await {
                let is_preferred = preferred == Some(v.version.as_str());
                out.extend(resources_of(&group.name, &v.version, &list, is_preferred));
            }
        }
    }
    Ok(out)
}

/// Resolves the kind names of commands (`get crontabs`): rk8s's built-in kinds from
/// its own list, anything else through discovery, read once per resolver.
pub struct Resolver {
    client: kube::Client,
    served: Option<Vec<Served>>,
}

impl Resolver {
    /// A resolver asking `client`'s server when it must.
    pub fn new(client: kube::Client) -> Self {
        Resolver {
            client,
            served: None,
        }
    }

    /// The kind `name` names, `None` if neither rk8s nor the server knows it.
    pub async fn resolve(&mut self, name: &str) -> Result<Option<ObjectKind>> {
        if let Some(kind) = resolve(name) {
            return Ok(Some(kind));
        }
        if self.served.is_none() {
            self.served = Some(served(&self.client).await?);
        }
        Ok(self.served.as_deref().and_then(|s| pick(s, name)))
    }
}

/// The kind a manifest's `apiVersion` and `kind` name, as the server serves it (the
/// version's discovery document, through `kube::discovery::pinned_kind`); `None`
/// when the server has no such group, version or kind.
pub async fn kind_served(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
) -> Result<Option<ObjectKind>> {
    if let Some(k) = kind_for(api_version, kind) {
        return Ok(Some(k));
    }
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    match kube::discovery::pinned_kind(client, &gvk).await {
        Ok((ar, caps)) => {
            let subresources: Vec<&str> = caps
                .subresources
                .iter()
                .map(|(s, _)| s.plural.as_str())
                .collect();
            Ok(Some(descriptor(
                &ar.group,
                &ar.version,
                &ar.kind,
                &ar.plural,
                caps.scope == kube::discovery::Scope::Namespaced,
                &subresources,
            )))
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(kube::Error::Discovery(_)) => Ok(None),
        Err(e) => Err(explain(e)),
    }
}

/// Whether a CustomResourceDefinition (as JSON) has the condition `Established`.
pub fn is_established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        })
}

/// Waits until the CustomResourceDefinition `name` is `Established` (the server
/// serves its kind), polling until `deadline`; whether it is.
pub async fn wait_established(
    client: &kube::Client,
    name: &str,
    deadline: Instant,
) -> Result<bool> {
    let path = format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}");
    loop {
        let req = http::Request::get(&path)
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .context("failed to build a request")?;
        match client.request::<Value>(req).await {
            Ok(crd) if is_established(&crd) => return Ok(true),
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(explain(e)),
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crontabs(version: &str, preferred: bool) -> Served {
        Served {
            kind: ObjectKind::custom(
                "stable.example.com",
                version,
                "CronTab",
                "crontabs",
                Scope::Namespaced,
            ),
            singular: "crontab".into(),
            short_names: vec!["ct".into()],
            preferred,
        }
    }

    #[test]
    fn discovered_names_resolve_like_kubectl() {
        let served = vec![crontabs("v1beta1", false), crontabs("v1", true)];
        for name in [
            "crontabs",
            "crontab",
            "CronTab",
            "ct",
            "crontabs.stable.example.com",
            "ct.stable.example.com",
        ] {
            let kind = pick(&served, name).unwrap();
            assert_eq!((kind.plural, kind.version), ("crontabs", "v1"), "{name}");
        }
        let pinned = pick(&served, "crontabs.v1beta1.stable.example.com").unwrap();
        assert_eq!(pinned.version, "v1beta1");
        assert!(pick(&served, "crontabs.other.example.com").is_none());
        assert!(pick(&served, "widgets").is_none());
    }

    #[test]
    fn discovery_documents_become_descriptors() {
        let list: APIResourceList = serde_json::from_value(json!({
            "groupVersion": "stable.example.com/v1",
            "resources": [
                {"name": "crontabs", "singularName": "crontab", "namespaced": true,
                 "kind": "CronTab", "verbs": ["get", "list"], "shortNames": ["ct"]},
                {"name": "crontabs/status", "singularName": "", "namespaced": true,
                 "kind": "CronTab", "verbs": ["get"]},
                {"name": "pods", "singularName": "", "namespaced": true,
                 "kind": "Pod", "verbs": ["get"]}
            ]
        }))
        .unwrap();
        let served = resources_of("stable.example.com", "v1", &list, true);
        assert_eq!(served.len(), 2);
        assert!(served[0].kind.custom && served[0].kind.has_status());
        assert!(!served[0].kind.has_scale());
        assert_eq!(served[0].kind.api_version, "stable.example.com/v1");
        assert_eq!(served[1].singular, "pod");
        let core = resources_of("", "v1", &list, true);
        assert!(!core[1].kind.custom, "pods are rk8s's own");
    }

    #[test]
    fn established_is_a_true_condition() {
        assert!(is_established(
            &json!({"status": {"conditions": [{"type": "Established", "status": "True"}]}})
        ));
        assert!(!is_established(
            &json!({"status": {"conditions": [{"type": "Established", "status": "False"}]}})
        ));
        assert!(!is_established(&json!({})));
    }
}

//! Custom resources: the kinds that CustomResourceDefinitions define, served live at
//! `/apis/<group>/<version>/...` beside the built-in kinds.
//!
//! [`CustomKinds`] is the set the server serves right now, rebuilt from the store's
//! CRDs by [`sync`] whenever one changes (on every member: all of them serve reads).
//! Each served version carries its compiled schema ([`rk8s_api::crd`]), so a write of
//! a custom object is pruned, defaulted and validated ([`admission`]) without reading
//! the CRD again. Discovery and OpenAPI documents ([`openapi`]) list the served kinds,
//! and `kubectl get` prints their `additionalPrinterColumns` ([`table`]).

pub mod admission;
pub mod openapi;
pub mod sync;
pub mod table;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use rk8s_api::crd::CompiledVersion;
use rk8s_api::crd::columns::Columns;
use rk8s_api::{AnyObject, ObjectKind, Scope};
use rk8s_raftstore::prefix_end;
use rk8s_raftstore::proto::{DeleteRangeRequest, RequestOp, TxnRequest, request_op};

use crate::discovery::ExtraResource;
use crate::registry::Registry;
use crate::scale::ScalePaths;
use crate::status::ApiResult;

/// One served version of a custom kind.
#[derive(Debug)]
pub struct ServedVersion {
    /// The kind in this version (`stable.example.com/v1`, `CronTab`).
    pub kind: ObjectKind,
    /// Whether the version is served (a CRD may keep a version only stored).
    pub served: bool,
    /// Whether objects are stored in this version.
    pub storage: bool,
    /// The version's schema, compiled; `None` if it did not compile (the CRD's own
    /// validation refuses such CRDs, so only CRDs stored before a rule changed).
    pub schema: Option<CompiledVersion>,
    /// Whether the version has a `status` subresource.
    pub status: bool,
    /// Where the `scale` subresource reads and writes replicas, if it has one.
    pub scale: Option<ScalePaths>,
    /// The `kubectl get` columns (`additionalPrinterColumns`, with Name first); `None`
    /// if a column's JSONPath does not parse.
    pub columns: Option<Columns>,
}

/// A CustomResourceDefinition as the server serves it.
#[derive(Debug)]
pub struct Served {
    /// The definition (`crontabs.stable.example.com`).
    pub crd: CustomResourceDefinition,
    /// Its versions, in the order the CRD lists them.
    pub versions: Vec<ServedVersion>,
}

impl Served {
    /// Prepares `crd` for serving: a kind and a compiled schema per version.
    pub fn new(crd: CustomResourceDefinition) -> Self {
        let spec = &crd.spec;
        let scope = if spec.scope == "Cluster" {
            Scope::Cluster
        } else {
            Scope::Namespaced
        };
        let versions = spec
            .versions
            .iter()
            .map(|v| {
                let sub = v.subresources.as_ref();
                let status = sub.is_some_and(|s| s.status.is_some());
                let scale = sub.and_then(|s| s.scale.as_ref());
                ServedVersion {
                    kind: ObjectKind::custom(
                        &spec.group,
                        &v.name,
                        &spec.names.kind,
                        &spec.names.plural,
                        scope,
                    )
                    .with_subresources(status, scale.is_some()),
                    served: v.served,
                    storage: v.storage,
                    schema: match CompiledVersion::new(&crd, &v.name) {
                        Ok(c) => Some(c),
                        Err(e) => {
                            tracing::warn!(
                                crd = crd.metadata.name.as_deref().unwrap_or_default(),
                                "version {} is served without validation: {e}",
                                v.name
                            );
                            None
                        }
                    },
                    status,
                    scale: scale.map(|s| ScalePaths {
                        spec_replicas: json_pointer(&s.spec_replicas_path),
                        status_replicas: json_pointer(&s.status_replicas_path),
                        selector: s.label_selector_path.as_deref().map(json_pointer),
                    }),
                    columns: Columns::new(v).ok(),
                }
            })
            .collect();
        Served { crd, versions }
    }

    /// The CRD's group.
    pub fn group(&self) -> &str {
        &self.crd.spec.group
    }

    /// The plural its objects live at.
    pub fn plural(&self) -> &str {
        &self.crd.spec.names.plural
    }

    /// Version `version`, if the CRD serves it.
    pub fn version(&self, version: &str) -> Option<&ServedVersion> {
        self.versions
            .iter()
            .find(|v| v.served && v.kind.version == version)
    }

    /// The version objects are stored in.
    pub fn storage_version(&self) -> Option<&ServedVersion> {
        self.versions.iter().find(|v| v.storage)
    }

    /// Whether the CRD is `Established` (kube-apiserver serves only those).
    pub fn established(&self) -> bool {
        self.crd
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            })
    }
}

/// Deletes every object of the kind of `deleted`, if it is a CustomResourceDefinition,
/// and stops serving it (what kube-apiserver's `customresourcecleanup` finalizer does
/// before the CRD goes).
pub async fn delete_objects(
    registry: &Registry,
    kinds: &CustomKinds,
    deleted: &AnyObject,
) -> ApiResult<()> {
    let AnyObject::CustomResourceDefinition(crd) = deleted else {
        return Ok(());
    };
    let scope = if crd.spec.scope == "Cluster" {
        Scope::Cluster
    } else {
        Scope::Namespaced
    };
    let names = &crd.spec.names;
    // The storage prefix is the same in every version.
    let kind = ObjectKind::custom(&crd.spec.group, "v1", &names.kind, &names.plural, scope);
    let prefix = kind.storage_prefix(None);
    kinds.remove(deleted.name());
    let txn = TxnRequest {
        compare: Vec::new(),
        success: vec![RequestOp {
            request: Some(request_op::Request::DeleteRange(DeleteRangeRequest {
                range_end: prefix_end(prefix.as_bytes()),
                key: prefix.into_bytes(),
            })),
        }],
        failure: Vec::new(),
    };
    registry
        .store()
        .txn(txn)
        .await
        .map_err(|e| crate::status::store_error(&kind, deleted.name(), e))?;
    Ok(())
}

/// `.spec.replicas` (a CRD's JSON path) as a JSON pointer (`/spec/replicas`).
fn json_pointer(path: &str) -> String {
    path.trim_start_matches('.')
        .split('.')
        .fold(String::new(), |mut p, k| {
            p.push('/');
            p.push_str(k);
            p
        })
}

/// The custom kinds the server serves now, by group and plural.
#[derive(Debug, Default)]
pub struct CustomKinds {
    served: RwLock<BTreeMap<(String, String), Arc<Served>>>,
    /// Counts changes, for the hashes of OpenAPI document URLs (clients cache by them).
    generation: AtomicU64,
}

impl CustomKinds {
    /// How many times what is served has changed.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Serves `crd` (replacing what was served for its group and plural); kinds of
    /// CRDs that are not `Established` are not served.
    pub fn upsert(&self, crd: CustomResourceDefinition) -> Option<Arc<Served>> {
        let served = Arc::new(Served::new(crd));
        let key = (served.group().to_string(), served.plural().to_string());
        let mut map = self.served.write().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::Relaxed);
        if served.established() {
            map.insert(key, served.clone());
            Some(served)
        } else {
            map.remove(&key);
            None
        }
    }

    /// Stops serving the CRD named `name`.
    pub fn remove(&self, name: &str) {
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.served
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, s| s.crd.metadata.name.as_deref() != Some(name));
    }

    /// Replaces everything served by `crds`.
    pub fn reset(&self, crds: Vec<CustomResourceDefinition>) {
        self.served
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        for crd in crds {
            self.upsert(crd);
        }
    }

    /// The definition serving `plural` in `group`.
    pub fn get(&self, group: &str, plural: &str) -> Option<Arc<Served>> {
        self.served
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(group.to_string(), plural.to_string()))
            .cloned()
    }

    /// The kind at `/apis/<group>/<version>/<plural>`, if a CRD serves it.
    pub fn kind(&self, group: &str, version: &str, plural: &str) -> Option<ObjectKind> {
        self.get(group, plural)?.version(version).map(|v| v.kind)
    }

    /// Every served definition, by group and plural.
    pub fn all(&self) -> Vec<Arc<Served>> {
        self.served
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Calls `f` with the served version of `kind`, if there is one.
    pub fn with_version<T>(
        &self,
        kind: &ObjectKind,
        f: impl FnOnce(&ServedVersion) -> T,
    ) -> Option<T> {
        let served = self.get(kind.group, kind.plural)?;
        served.version(kind.version).map(f)
    }

    /// Every served version of every custom kind, as discovery lists them.
    pub fn discovery(&self) -> Vec<ExtraResource> {
        let mut out = Vec::new();
        for served in self.all() {
            let names = &served.crd.spec.names;
            for v in served.versions.iter().filter(|v| v.served) {
                out.push(ExtraResource {
                    kind: v.kind,
                    singular: names
                        .singular
                        .clone()
                        .unwrap_or_else(|| names.kind.to_lowercase()),
                    short_names: names.short_names.clone().unwrap_or_default(),
                    categories: names.categories.clone().unwrap_or_default(),
                });
            }
        }
        out
    }

    /// Every name a kind of another CRD already takes (plurals, singulars, short names,
    /// kinds), by group, for the `NamesAccepted` check of the CRD named `except`.
    pub fn taken_names(&self, group: &str, except: &str) -> Vec<String> {
        let mut taken = Vec::new();
        for s in self.all() {
            if s.group() != group || s.crd.metadata.name.as_deref() == Some(except) {
                continue;
            }
            let n = &s.crd.spec.names;
            taken.push(n.plural.clone());
            taken.extend(n.singular.clone());
            taken.extend(n.short_names.clone().unwrap_or_default());
            taken.push(n.kind.clone());
            taken.extend(n.list_kind.clone());
        }
        taken
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A CronTab CRD in `stable.example.com` (v1 served and stored, v1beta1 not
    /// served), `Established` if asked.
    pub(crate) fn crontab_crd(established: bool) -> CustomResourceDefinition {
        let status = if established {
            json!({"conditions": [{"type": "Established", "status": "True"}]})
        } else {
            json!({})
        };
        serde_json::from_value(json!({
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {
                "group": "stable.example.com", "scope": "Namespaced",
                "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}},
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}}},
                    {"name": "v1beta1", "served": false, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object"}}}
                ]
            },
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn established_crds_are_served_in_their_served_versions() {
        let kinds = CustomKinds::default();
        assert!(kinds.upsert(crontab_crd(false)).is_none());
        assert!(kinds.kind("stable.example.com", "v1", "crontabs").is_none());
        kinds.upsert(crontab_crd(true));
        let kind = kinds.kind("stable.example.com", "v1", "crontabs").unwrap();
        assert!(kind.custom);
        assert_eq!(kind.api_version, "stable.example.com/v1");
        assert_eq!(
            kind.storage_key(Some("default"), "x"),
            "/registry/stable.example.com/crontabs/default/x"
        );
        assert!(
            kinds
                .kind("stable.example.com", "v1beta1", "crontabs")
                .is_none()
        );
        let scale = kinds
            .with_version(&kind, |v| v.scale.clone())
            .flatten()
            .unwrap();
        assert_eq!(scale.spec_replicas, "/spec/replicas");
        assert_eq!(
            kinds.taken_names("stable.example.com", "other.stable.example.com"),
            ["crontabs", "crontab", "ct", "CronTab"]
        );
        let listed = kinds.discovery();
        assert_eq!(listed.len(), 1, "v1beta1 is not served");
        assert_eq!(listed[0].short_names, ["ct"]);
        kinds.remove("crontabs.stable.example.com");
        assert!(kinds.all().is_empty());
    }
}

//! `GET /api/v1/componentstatuses[/{name}]` (`kubectl get componentstatuses`, `cs`):
//! the control plane's health, computed at each read as kube-apiserver's
//! componentstatus registry computes it, and deprecated as there (every answer says
//! so). kube probes each component's `/healthz`; in rk8s the scheduler and the
//! controller manager run inside the member that leads, on any member, so each is
//! healthy while the leader Lease it holds ([`rk8s_api::identities::leases`]) was
//! renewed within its `leaseDurationSeconds`, and `etcd-0` is the store's quorum
//! read (the `etcd` check of `/readyz`). Read-only: `get` and `list`, with label and
//! field selectors (`metadata.name`), for whom RBAC lets.

use http::{Response, StatusCode};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ComponentCondition, ComponentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rk8s_api::identities::leases;
use rk8s_api::{AnyObject, ObjectKind};
use rk8s_http::body::{Body, json_response, yaml_response};
use serde_json::json;

use crate::auth::Identity;
use crate::content::Encoding;
use crate::list_options::Filter;
use crate::rbac::{Attributes, Target};
use crate::request::Query;
use crate::server::ApiServer;
use crate::status::{ApiError, ApiResult};

/// kube-apiserver's warning on every request for them.
pub const DEPRECATION: &str = "v1 ComponentStatus is deprecated in v1.19+";

/// The components, in the order kube lists them, and the Lease each holds (`None`:
/// the store).
const COMPONENTS: [(&str, Option<&str>); 3] = [
    ("scheduler", Some(leases::SCHEDULER)),
    ("controller-manager", Some(leases::CONTROLLER_MANAGER)),
    ("etcd-0", None),
];

/// A probe's outcome: kube's `probe.Result` with its message or error.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    Success,
    Failure(String),
    Unknown(String),
}

/// The `Healthy` condition of a component.
fn status(name: &str, probe: Probe) -> ComponentStatus {
    let (status, message, error) = match probe {
        Probe::Success => ("True", Some("ok".to_string()), None),
        Probe::Failure(e) => ("False", None, Some(e)),
        Probe::Unknown(e) => ("Unknown", None, Some(e)),
    };
    ComponentStatus {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        conditions: Some(vec![ComponentCondition {
            type_: "Healthy".to_string(),
            status: status.to_string(),
            message,
            error,
        }]),
    }
}

/// Whether the Lease `name` (`None`: not there) shows its holder alive at `now`.
fn lease_probe(name: &str, lease: Option<&Lease>, now: Timestamp) -> Probe {
    let at = format!("{}/{name}", leases::NAMESPACE);
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else {
        return Probe::Failure(format!("no member holds the leader Lease {at}"));
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    let Some(renewed) = spec.renew_time.as_ref().map(|t| t.0) else {
        return Probe::Failure(format!("the leader Lease {at} was never renewed"));
    };
    let seconds = spec
        .lease_duration_seconds
        .unwrap_or(leases::DURATION_SECONDS);
    let until = renewed
        .checked_add(jiff::SignedDuration::from_secs(i64::from(seconds)))
        .unwrap_or(renewed);
    if holder.is_empty() || now > until {
        return Probe::Failure(format!(
            "the leader Lease {at} (held by {holder:?}) expired at {until}: its holder renews it no longer"
        ));
    }
    Probe::Success
}

/// The names and values a field selector may ask of a component status (kube's
/// `ToFieldSet`: only `metadata.name`; any other field is empty).
fn field_value(cs: &ComponentStatus, field: &str) -> String {
    match field {
        "metadata.name" => cs.metadata.name.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

impl ApiServer {
    /// `GET /api/v1/componentstatuses[/{name}]`.
    pub(crate) async fn component_statuses(
        &self,
        identity: &Identity,
        name: Option<String>,
        query: &Query,
        accept: Option<&str>,
    ) -> ApiResult<Response<Body>> {
        let a = Attributes {
            verb: if name.is_some() { "get" } else { "list" },
            namespace: None,
            target: Target::Resource {
                group: "",
                resource: "componentstatuses",
                subresource: None,
                name: name.as_deref(),
            },
        };
        if !self.handlers.may(identity, &a)? {
            return Err(a.forbidden(&identity.user()));
        }
        let encoding = crate::content::accepted(accept, false)?;
        let warnings = [DEPRECATION.to_string()];
        let body = match name {
            Some(name) => {
                let Some((component, lease)) = COMPONENTS.iter().find(|(c, _)| *c == name) else {
                    // kube's registry answers a plain error here, which the API
                    // server turns into a 500 without a reason.
                    return Err(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "",
                        format!("Component not found: {name}"),
                    ));
                };
                let cs = self.probe(component, *lease).await;
                if crate::table::wants_table(accept) {
                    crate::table::component_statuses(&[cs], query.get("includeObject"))
                } else {
                    serde_json::to_value(&cs).map_err(|e| ApiError::internal(e.to_string()))?
                }
            }
            None => {
                let items = self.selected(query).await?;
                if crate::table::wants_table(accept) {
                    crate::table::component_statuses(&items, query.get("includeObject"))
                } else {
                    let items = serde_json::to_value(&items)
                        .map_err(|e| ApiError::internal(e.to_string()))?;
                    json!({"kind": "ComponentStatusList", "apiVersion": "v1",
                           "metadata": {}, "items": items})
                }
            }
        };
        Ok(match encoding {
            Encoding::Yaml => yaml_response(StatusCode::OK, &body, &warnings),
            Encoding::Json | Encoding::Protobuf => json_response(StatusCode::OK, &body, &warnings),
        })
    }

    /// Every component the selectors of `query` choose, probed at once (as kube
    /// probes them, one goroutine each).
    async fn selected(&self, query: &Query) -> ApiResult<Vec<ComponentStatus>> {
        let filter = Filter::parse(query)?;
        let probes = COMPONENTS.map(|(component, lease)| self.probe(component, lease));
        let statuses = futures_util::future::join_all(probes).await;
        // A component status has no labels.
        let no_labels = std::collections::BTreeMap::new();
        Ok(statuses
            .into_iter()
            .filter(|cs| filter.matches_with(&no_labels, |field| Some(field_value(cs, field))))
            .collect())
    }

    /// The status of `component`: its Lease's (`lease`), or the store's.
    async fn probe(&self, component: &str, lease: Option<&str>) -> ComponentStatus {
        let Some(lease) = lease else {
            let probe = match self.check("etcd").await {
                Ok(()) => Probe::Success,
                Err(e) => Probe::Failure(e),
            };
            return status(component, probe);
        };
        let probe = match self.read_lease(lease).await {
            Ok(found) => lease_probe(lease, found.as_ref(), Timestamp::now()),
            Err(e) => Probe::Unknown(e.message),
        };
        status(component, probe)
    }

    /// The Lease `name` in `kube-system`, read through a quorum.
    async fn read_lease(&self, name: &str) -> ApiResult<Option<Lease>> {
        let kind: ObjectKind = rk8s_api::object::kind_by_plural("coordination.k8s.io", "leases")
            .ok_or_else(ApiError::no_route)?;
        let found = self
            .handlers
            .registry
            .find(&kind, Some(leases::NAMESPACE), name)
            .await?;
        Ok(match found {
            Some(AnyObject::Lease(l)) => Some(*l),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn lease(holder: &str, renewed: i64) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.to_string()),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
                lease_duration_seconds: Some(15),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn a_component_is_healthy_while_its_lease_is_renewed_in_time() {
        let at = |s| Timestamp::from_second(s).unwrap();
        let l = lease("m1_x", 100);
        assert_eq!(
            lease_probe("kube-scheduler", Some(&l), at(110)),
            Probe::Success
        );
        assert_eq!(
            lease_probe("kube-scheduler", Some(&l), at(115)),
            Probe::Success
        );
        let Probe::Failure(e) = lease_probe("kube-scheduler", Some(&l), at(116)) else {
            panic!("an expired lease is a failure")
        };
        assert!(
            e.contains("kube-system/kube-scheduler") && e.contains("\"m1_x\""),
            "{e}"
        );
        let Probe::Failure(e) = lease_probe("kube-controller-manager", None, at(116)) else {
            panic!("no lease is a failure")
        };
        assert_eq!(
            e,
            "no member holds the leader Lease kube-system/kube-controller-manager"
        );
    }

    #[test]
    fn statuses_read_as_kubes_and_print_as_kubectl_shows_them() {
        let ok = status("etcd-0", Probe::Success);
        let bad = status("scheduler", Probe::Failure("gone".into()));
        let value = serde_json::to_value(&ok).unwrap();
        assert_eq!(
            value,
            json!({"kind": "ComponentStatus", "apiVersion": "v1", "metadata": {"name": "etcd-0"},
                   "conditions": [{"type": "Healthy", "status": "True", "message": "ok"}]})
        );
        let table = crate::table::component_statuses(&[bad, ok], None);
        let cells: Vec<&serde_json::Value> = table["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["cells"])
            .collect();
        assert_eq!(cells[0], &json!(["scheduler", "Unhealthy", "", "gone"]));
        assert_eq!(cells[1], &json!(["etcd-0", "Healthy", "ok", ""]));
        let names: Vec<&str> = table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["Name", "Status", "Message", "Error"]);
    }
}

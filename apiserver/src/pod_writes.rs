//! The pod subresources that write: `binding` (the scheduler's choice of node) and
//! `eviction` (policy/v1 `Eviction`: a deletion that respects the pod's
//! PodDisruptionBudget, as kube-apiserver's `pkg/registry/core/pod/storage/eviction.go`
//! makes it — the budget's allowed disruptions spent, with the pod noted among its
//! `disruptedPods`, before the pod is deleted; 429 when none is left).

use k8s_openapi::api::core::v1::{Binding, PodCondition};
use k8s_openapi::api::policy::v1::{Eviction, PodDisruptionBudget};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    DeleteOptions, StatusCause, StatusDetails, Time,
};
use rk8s_api::AnyObject;
use rk8s_api::selector::SelectorExt;
use serde_json::Value;

use crate::call::Call;
use crate::decode::{FieldValidation, parse_body};
use crate::handlers::{Handlers, Reply, check_preconditions, deletion};
use crate::registry::{Change, Updated};
use crate::request::Query;
use crate::status::{ApiError, ApiResult};
use crate::strategy;

/// Kubernetes' bound on a budget's `disruptedPods` (evictions the disruption
/// controller has not confirmed yet).
const MAX_DISRUPTED_PODS: usize = 2000;

/// The message of an eviction refused by a budget (kubectl drain retries on it).
pub const REFUSED: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

fn created() -> Reply {
    Reply {
        code: http::StatusCode::CREATED,
        body: crate::handlers::Body::Value(
            serde_json::to_value(crate::status::success()).unwrap_or(Value::Null),
        ),
        warnings: Vec::new(),
    }
}

/// 429 with the budget's reason as a cause.
fn refused(cause: String) -> ApiError {
    let mut e = ApiError::too_many_requests(REFUSED);
    e.details = Some(Box::new(StatusDetails {
        causes: Some(vec![StatusCause {
            reason: Some("DisruptionBudget".into()),
            message: Some(cause),
            field: None,
        }]),
        ..StatusDetails::default()
    }));
    e
}

fn is_ready(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Spends one of `pdb`'s allowed disruptions on the pod `pod` (Kubernetes'
/// `checkAndDecrement`).
fn spend(mut pdb: PodDisruptionBudget, pod: &str) -> ApiResult<Change> {
    let name = pdb.metadata.name.clone().unwrap_or_default();
    let mut status = pdb.status.clone().unwrap_or_default();
    if status.observed_generation < pdb.metadata.generation {
        return Err(refused(format!(
            "The disruption budget {name} is still being processed by the server."
        )));
    }
    if status.disruptions_allowed < 0 {
        return Err(ApiError::forbidden(format!(
            "poddisruptionbudgets.policy {name:?} is forbidden: pdb disruptions allowed is negative"
        )));
    }
    if status.disrupted_pods.as_ref().map_or(0, |d| d.len()) > MAX_DISRUPTED_PODS {
        return Err(ApiError::forbidden(format!(
            "poddisruptionbudgets.policy {name:?} is forbidden: DisruptedPods map too big - too many evictions not confirmed by PDB controller"
        )));
    }
    if status.disruptions_allowed == 0 {
        return Err(refused(format!(
            "The disruption budget {name} needs {} healthy pods and has {} currently",
            status.desired_healthy, status.current_healthy
        )));
    }
    status.disruptions_allowed -= 1;
    if status.disruptions_allowed == 0 {
        for c in status.conditions.iter_mut().flatten() {
            if c.type_ == "DisruptionAllowed" {
                c.status = "False".into();
                c.reason = "InsufficientPods".into();
                c.last_transition_time = Time(jiff::Timestamp::now());
            }
        }
    }
    status
        .disrupted_pods
        .get_or_insert_with(Default::default)
        .insert(pod.to_string(), Time(jiff::Timestamp::now()));
    pdb.status = Some(status);
    Ok(Change::Replace(AnyObject::PodDisruptionBudget(Box::new(
        pdb,
    ))))
}

fn dry_run(c: &Call<'_>, options: &DeleteOptions) -> ApiResult<bool> {
    Ok(crate::handlers::is_dry(options) || crate::handlers::dry_run(c.query)?)
}

impl Handlers {
    /// POST `pods/NAME/binding`: binds the pod to the node the Binding names.
    pub(crate) async fn bind(&self, c: &Call<'_>) -> ApiResult<Reply> {
        let body = parse_body(&c.content_type, &c.body, FieldValidation::Ignore)?;
        let binding: Binding = serde_json::from_value(body.value)
            .map_err(|e| ApiError::bad_request(format!("invalid Binding: {e}")))?;
        let node = binding.target.name.clone().unwrap_or_default();
        if node.is_empty() {
            return Err(ApiError::bad_request("Binding: target.name is required"));
        }
        let req = c.req;
        let kind = req.kind;
        let name = req.name().to_string();
        self.registry
            .update(&kind, req.namespace.as_deref(), &name, |current| {
                let AnyObject::Pod(mut pod) = current else {
                    return Err(ApiError::internal("binding on something that is not a pod"));
                };
                if pod.metadata.deletion_timestamp.is_some() {
                    return Err(ApiError::conflict(&kind, &name, "the pod is being deleted"));
                }
                let spec = pod.spec.get_or_insert_with(Default::default);
                if let Some(existing) = &spec.node_name {
                    return Err(ApiError::conflict(
                        &kind,
                        &name,
                        &format!("pod {name} is already assigned to node \"{existing}\""),
                    ));
                }
                spec.node_name = Some(node.clone());
                let status = pod.status.get_or_insert_with(Default::default);
                let conditions = status.conditions.get_or_insert_with(Vec::new);
                conditions.retain(|c| c.type_ != "PodScheduled");
                conditions.push(PodCondition {
                    type_: "PodScheduled".into(),
                    status: "True".into(),
                    last_transition_time: Some(strategy::now()),
                    ..PodCondition::default()
                });
                Ok(Change::Replace(AnyObject::Pod(pod)))
            })
            .await?;
        Ok(created())
    }

    /// POST `pods/NAME/eviction`: deletes the pod if its PodDisruptionBudget allows.
    pub(crate) async fn evict(&self, c: &Call<'_>) -> ApiResult<Reply> {
        let body = parse_body(&c.content_type, &c.body, FieldValidation::Ignore)?;
        let eviction: Eviction = serde_json::from_value(body.value)
            .map_err(|e| ApiError::bad_request(format!("invalid Eviction: {e}")))?;
        let req = c.req;
        let name = req.name().to_string();
        if eviction.metadata.name.as_deref().is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(
                "name in URL does not match name in Eviction object",
            ));
        }
        let ns = req.namespace.clone().unwrap_or_else(|| "default".into());
        let options = eviction.delete_options.clone().unwrap_or_default();
        // `dryRun=All` (in the query, or in the delete options as kubectl's drain
        // sends it): every check made, nothing written.
        let dry = dry_run(c, &options)?;
        let AnyObject::Pod(pod) = self.registry.get(&req.kind, Some(&ns), &name).await? else {
            return Err(ApiError::internal(
                "eviction of something that is not a pod",
            ));
        };
        // A pod that is done, not yet running or already going disrupts nothing more.
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed" | "Pending"))
            || pod.metadata.deletion_timestamp.is_some()
        {
            return self.delete_evicted(c, &ns, &name, &options).await;
        }
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let budgets: Vec<PodDisruptionBudget> = self
            .list_kind("PodDisruptionBudget", Some(&ns), &Query::default())
            .await?
            .into_iter()
            .filter_map(|o| match o {
                AnyObject::PodDisruptionBudget(b) => Some(*b),
                _ => None,
            })
            .filter(|b| {
                // policy/v1: no selector selects nothing, an empty one everything.
                let selector = b.spec.as_ref().and_then(|s| s.selector.as_ref());
                selector
                    .and_then(|s| rk8s_api::selector::label_selector(s).ok())
                    .is_some_and(|s| s.matches(&labels))
            })
            .collect();
        let budget = match budgets.as_slice() {
            [] => return self.delete_evicted(c, &ns, &name, &options).await,
            [one] => one,
            _ => {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
        };
        let spec = budget.spec.clone().unwrap_or_default();
        let status = budget.status.clone().unwrap_or_default();
        let unhealthy_ok = !is_ready(&pod)
            && (spec.unhealthy_pod_eviction_policy.as_deref() == Some("AlwaysAllow")
                || (status.current_healthy >= status.desired_healthy
                    && status.desired_healthy > 0));
        if !unhealthy_ok && dry {
            spend(budget.clone(), &name)?;
        } else if !unhealthy_ok {
            let kind = rk8s_api::object::kind_named("PodDisruptionBudget")
                .ok_or_else(ApiError::no_route)?;
            let budget_name = budget.metadata.name.clone().unwrap_or_default();
            self.registry
                .update(&kind, Some(&ns), &budget_name, |current| match current {
                    AnyObject::PodDisruptionBudget(b) => spend(*b, &name),
                    _ => Err(ApiError::internal("not a PodDisruptionBudget")),
                })
                .await?;
        }
        self.delete_evicted(c, &ns, &name, &options).await
    }

    /// Deletes the evicted pod (gracefully, as its Eviction's options say).
    async fn delete_evicted(
        &self,
        c: &Call<'_>,
        ns: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> ApiResult<Reply> {
        if dry_run(c, options)? {
            return Ok(created());
        }
        let kind = c.req.kind;
        let outcome = self
            .registry
            .update(&kind, Some(ns), name, |current| {
                check_preconditions(&kind, name, options, &current)?;
                deletion(current, options)
            })
            .await?;
        if let Updated::Deleted(o, _) = &outcome {
            crate::custom::delete_objects(&self.registry, &self.custom, o).await?;
        }
        Ok(created())
    }
}

//! Cluster policy and bookkeeping kinds: disruption budgets, priority classes, API
//! priority and fairness, leases, runtime classes.

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::flowcontrol::v1::{FlowSchema, PriorityLevelConfiguration};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::format::age;
use super::{AGE, Column, NAME, col};

/// `kubectl get poddisruptionbudgets`.
pub(super) const POD_DISRUPTION_BUDGET: &[Column] = &[
    NAME,
    col("Min Available", "string"),
    col("Max Unavailable", "string"),
    col("Allowed Disruptions", "integer"),
    AGE,
];
/// `kubectl get priorityclasses` (the preemption policy after the age, as kube has it).
pub(super) const PRIORITY_CLASS: &[Column] = &[
    NAME,
    col("Value", "integer"),
    col("Global-Default", "boolean"),
    AGE,
    col("PreemptionPolicy", "string"),
];
/// `kubectl get flowschemas`.
pub(super) const FLOW_SCHEMA: &[Column] = &[
    NAME,
    col("PriorityLevel", "string"),
    col("MatchingPrecedence", "string"),
    col("DistinguisherMethod", "string"),
    AGE,
    col("MissingPL", "string"),
];
/// `kubectl get prioritylevelconfigurations`.
pub(super) const PRIORITY_LEVEL_CONFIGURATION: &[Column] = &[
    NAME,
    col("Type", "string"),
    col("NominalConcurrencyShares", "string"),
    col("Queues", "string"),
    col("HandSize", "string"),
    col("QueueLengthLimit", "string"),
    AGE,
];
/// `kubectl get leases`.
pub(super) const LEASE: &[Column] = &[NAME, col("Holder", "string"), AGE];
/// `kubectl get runtimeclasses`.
pub(super) const RUNTIME_CLASS: &[Column] = &[NAME, col("Handler", "string"), AGE];

fn int_or_string(v: Option<&IntOrString>) -> String {
    match v {
        Some(IntOrString::Int(i)) => i.to_string(),
        Some(IntOrString::String(s)) => s.clone(),
        None => "N/A".to_string(),
    }
}

pub(super) fn pod_disruption_budget(pdb: &PodDisruptionBudget, now: Timestamp) -> Vec<Value> {
    let spec = pdb.spec.clone().unwrap_or_default();
    vec![
        pdb.metadata.name.clone().unwrap_or_default().into(),
        int_or_string(spec.min_available.as_ref()).into(),
        int_or_string(spec.max_unavailable.as_ref()).into(),
        pdb.status
            .as_ref()
            .map_or(0, |s| s.disruptions_allowed)
            .into(),
        age(pdb.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

pub(super) fn priority_class(pc: &PriorityClass, now: Timestamp) -> Vec<Value> {
    vec![
        pc.metadata.name.clone().unwrap_or_default().into(),
        pc.value.into(),
        pc.global_default.unwrap_or(false).into(),
        age(pc.metadata.creation_timestamp.as_ref(), now).into(),
        pc.preemption_policy.clone().unwrap_or_default().into(),
    ]
}

/// A flow schema's row; MISSINGPL is the status of its `Dangling` condition (`?`
/// before the controller has looked).
pub(super) fn flow_schema(fs: &FlowSchema, now: Timestamp) -> Vec<Value> {
    let spec = fs.spec.clone().unwrap_or_default();
    let dangling = fs
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .find(|c| c.type_.as_deref() == Some("Dangling"))
        .map_or_else(|| "?".to_string(), |c| c.status.clone().unwrap_or_default());
    vec![
        fs.metadata.name.clone().unwrap_or_default().into(),
        spec.priority_level_configuration.name.into(),
        // 1000 is the API's default precedence.
        spec.matching_precedence.unwrap_or(1000).into(),
        spec.distinguisher_method
            .map_or_else(|| "<none>".to_string(), |d| d.type_)
            .into(),
        age(fs.metadata.creation_timestamp.as_ref(), now).into(),
        dangling.into(),
    ]
}

/// A priority level's row: shares and queuing of a `Limited` level (with the API's
/// defaults, 30 shares, 64 queues, hand size 8, 50 per queue), `<none>` otherwise.
pub(super) fn priority_level_configuration(
    plc: &PriorityLevelConfiguration,
    now: Timestamp,
) -> Vec<Value> {
    let spec = plc.spec.clone().unwrap_or_default();
    let none = || Value::from("<none>");
    let (mut shares, mut queues, mut hand, mut limit) = (none(), none(), none(), none());
    if let Some(limited) = &spec.limited {
        shares = limited.nominal_concurrency_shares.unwrap_or(30).into();
        if let Some(q) = limited
            .limit_response
            .as_ref()
            .and_then(|r| r.queuing.as_ref())
        {
            queues = q.queues.unwrap_or(64).into();
            hand = q.hand_size.unwrap_or(8).into();
            limit = q.queue_length_limit.unwrap_or(50).into();
        }
    }
    vec![
        plc.metadata.name.clone().unwrap_or_default().into(),
        spec.type_.into(),
        shares,
        queues,
        hand,
        limit,
        age(plc.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

pub(super) fn lease(l: &Lease, now: Timestamp) -> Vec<Value> {
    vec![
        l.metadata.name.clone().unwrap_or_default().into(),
        l.spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default()
            .into(),
        age(l.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

pub(super) fn runtime_class(r: &RuntimeClass, now: Timestamp) -> Vec<Value> {
    vec![
        r.metadata.name.clone().unwrap_or_default().into(),
        r.handler.clone().into(),
        age(r.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

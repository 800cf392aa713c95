//! Who may do what: role bindings, admission webhooks and policies, certificate
//! signing requests.

use jiff::Timestamp;
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::rbac::v1::{RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde_json::Value;

use super::format::{age, human_duration};
use super::{AGE, Column, NAME, col, wide};

/// `kubectl get rolebindings` and `clusterrolebindings`.
pub(super) const ROLE_BINDING: &[Column] = &[
    NAME,
    col("Role", "string"),
    AGE,
    wide("Users", "string"),
    wide("Groups", "string"),
    wide("ServiceAccounts", "string"),
];
/// `kubectl get mutatingwebhookconfigurations` and `validatingwebhookconfigurations`.
pub(super) const WEBHOOK_CONFIGURATION: &[Column] = &[NAME, col("Webhooks", "integer"), AGE];
/// `kubectl get validatingadmissionpolicies`.
pub(super) const VALIDATING_ADMISSION_POLICY: &[Column] = &[
    NAME,
    col("Validations", "integer"),
    col("ParamKind", "string"),
    AGE,
];
/// `kubectl get validatingadmissionpolicybindings`.
pub(super) const VALIDATING_ADMISSION_POLICY_BINDING: &[Column] = &[
    NAME,
    col("PolicyName", "string"),
    col("ParamRef", "string"),
    AGE,
];
/// `kubectl get certificatesigningrequests` (age second, as kube has it).
pub(super) const CERTIFICATE_SIGNING_REQUEST: &[Column] = &[
    NAME,
    AGE,
    col("SignerName", "string"),
    col("Requestor", "string"),
    col("RequestedDuration", "string"),
    col("Condition", "string"),
];

/// A role or cluster role binding's row: the role as `Kind/name`, and its subjects
/// sorted into users, groups and service accounts (`namespace/name`).
pub(super) fn role_binding(
    meta: &ObjectMeta,
    role: &RoleRef,
    subjects: Option<&Vec<Subject>>,
    now: Timestamp,
) -> Vec<Value> {
    let (mut users, mut groups, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
    for s in subjects.into_iter().flatten() {
        match s.kind.as_str() {
            "User" => users.push(s.name.clone()),
            "Group" => groups.push(s.name.clone()),
            "ServiceAccount" => accounts.push(format!(
                "{}/{}",
                s.namespace.as_deref().unwrap_or(""),
                s.name
            )),
            _ => {}
        }
    }
    vec![
        meta.name.clone().unwrap_or_default().into(),
        format!("{}/{}", role.kind, role.name).into(),
        age(meta.creation_timestamp.as_ref(), now).into(),
        users.join(", ").into(),
        groups.join(", ").into(),
        accounts.join(", ").into(),
    ]
}

/// A webhook configuration's row: how many webhooks it registers.
pub(super) fn webhook_configuration(
    meta: &ObjectMeta,
    webhooks: usize,
    now: Timestamp,
) -> Vec<Value> {
    vec![
        meta.name.clone().unwrap_or_default().into(),
        webhooks.into(),
        age(meta.creation_timestamp.as_ref(), now).into(),
    ]
}

pub(super) fn validating_admission_policy(
    p: &ValidatingAdmissionPolicy,
    now: Timestamp,
) -> Vec<Value> {
    let spec = p.spec.clone().unwrap_or_default();
    let param_kind = spec.param_kind.map_or_else(
        || "<unset>".to_string(),
        |k| {
            format!(
                "{}/{}",
                k.api_version.unwrap_or_default(),
                k.kind.unwrap_or_default()
            )
        },
    );
    vec![
        p.metadata.name.clone().unwrap_or_default().into(),
        spec.validations.as_ref().map_or(0, |v| v.len()).into(),
        param_kind.into(),
        age(p.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

/// A label selector as Go prints the struct (`LabelSelector.String()`), which is
/// what kube shows for a binding's parameter selector.
fn go_selector_struct(sel: &LabelSelector) -> String {
    let labels: String = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}: {v},"))
        .collect();
    let expressions: String = sel
        .match_expressions
        .iter()
        .flatten()
        .map(|e| {
            format!(
                "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
                e.key,
                e.operator,
                e.values.as_deref().unwrap_or_default().join(" ")
            )
        })
        .collect();
    format!(
        "&LabelSelector{{MatchLabels:map[string]string{{{labels}}},MatchExpressions:[]LabelSelectorRequirement{{{expressions}}},}}"
    )
}

/// PARAMREF of a binding: `namespace/name` (`*/name` without a namespace), or the
/// selector; `<unset>` without a parameter.
pub(super) fn validating_admission_policy_binding(
    b: &ValidatingAdmissionPolicyBinding,
    now: Timestamp,
) -> Vec<Value> {
    let spec = b.spec.clone().unwrap_or_default();
    let param = match spec.param_ref {
        None => "<unset>".to_string(),
        Some(r) => match (r.name.filter(|n| !n.is_empty()), r.namespace, r.selector) {
            (Some(name), Some(ns), _) if !ns.is_empty() => format!("{ns}/{name}"),
            (Some(name), _, _) => format!("*/{name}"),
            (None, _, Some(sel)) => go_selector_struct(&sel),
            (None, _, None) => "<unset>".to_string(),
        },
    };
    vec![
        b.metadata.name.clone().unwrap_or_default().into(),
        spec.policy_name.unwrap_or_default().into(),
        param.into(),
        age(b.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

/// CONDITION of a request: `Denied`, `Approved` or `Pending`, then `,Failed` and
/// `,Issued` (`extractCSRStatus`).
fn csr_condition(csr: &CertificateSigningRequest) -> String {
    let status = csr.status.clone().unwrap_or_default();
    let has = |ty: &str| status.conditions.iter().flatten().any(|c| c.type_ == ty);
    let mut text = if has("Denied") {
        "Denied"
    } else if has("Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_string();
    if has("Failed") {
        text.push_str(",Failed");
    }
    if status.certificate.is_some_and(|c| !c.0.is_empty()) {
        text.push_str(",Issued");
    }
    text
}

pub(super) fn certificate_signing_request(
    csr: &CertificateSigningRequest,
    now: Timestamp,
) -> Vec<Value> {
    let spec = &csr.spec;
    let signer = if spec.signer_name.is_empty() {
        "<none>".to_string()
    } else {
        spec.signer_name.clone()
    };
    let duration = spec
        .expiration_seconds
        .map_or_else(|| "<none>".to_string(), |s| human_duration(s.into()));
    vec![
        csr.metadata.name.clone().unwrap_or_default().into(),
        age(csr.metadata.creation_timestamp.as_ref(), now).into(),
        signer.into(),
        spec.username.clone().unwrap_or_default().into(),
        duration.into(),
        csr_condition(csr).into(),
    ]
}

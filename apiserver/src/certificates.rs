//! CertificateSigningRequests as kube-apiserver keeps them
//! (`pkg/registry/certificates/certificates/strategy.go`, the `CertificateApproval`
//! admission plugin and `pkg/apis/certificates/validation`): the requester is the
//! caller, stamped on create; only the `approval` subresource adds or changes the
//! `Approved` and `Denied` conditions, and only for a caller who may `approve` the
//! request's signer; only `status` sets the certificate, once; no write takes an
//! `Approved`, `Denied` or `Failed` condition away.

use std::collections::HashSet;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use rk8s_api::AnyObject;
use rk8s_api::path::FieldPath;
use rk8s_api::validation::{FieldError, Reason};

use crate::auth::Identity;
use crate::status::ApiError;
use crate::strategy::Part;

/// The API group of CertificateSigningRequests (and of the `signers` an approver
/// needs the `approve` verb on).
pub const GROUP: &str = "certificates.k8s.io";

/// Condition types only `approval` may add or change.
const APPROVALS: [&str; 2] = ["Approved", "Denied"];

/// Condition types no write may take away.
const KEPT: [&str; 3] = ["Approved", "Denied", "Failed"];

/// Key usages a request may ask for (`allValidUsages`).
const USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

fn csr(obj: &AnyObject) -> Option<&CertificateSigningRequest> {
    match obj {
        AnyObject::CertificateSigningRequest(c) => Some(c),
        _ => None,
    }
}

fn csr_mut(obj: &mut AnyObject) -> Option<&mut CertificateSigningRequest> {
    match obj {
        AnyObject::CertificateSigningRequest(c) => Some(c),
        _ => None,
    }
}

/// On create: the requester is the caller, whatever the body says.
pub fn stamp_requester(obj: &mut AnyObject, identity: &Identity) {
    if let Some(c) = csr_mut(obj) {
        c.spec.username = Some(identity.user());
        c.spec.uid = identity.uid();
        c.spec.groups = Some(identity.groups());
        c.spec.extra = None;
    }
}

/// What an update of `part` may change of a request, `new` made from the generic
/// strategy's result: the object itself only its metadata (its spec is kept, as its
/// status already is), `approval` only the conditions. The conditions written get
/// their times (kube's `populateConditionTimestamps`).
pub fn prepare_update(new: &mut AnyObject, old: &AnyObject, part: Part) {
    let (Some(old), Some(c)) = (csr(old), csr_mut(new)) else {
        return;
    };
    match part {
        Part::Main => c.spec = old.spec.clone(),
        Part::Status | Part::EphemeralContainers | Part::Finalize => {}
        Part::Approval => {
            let conditions = c.status.as_mut().and_then(|s| s.conditions.take());
            let rv = c.metadata.resource_version.take();
            *c = old.clone();
            c.metadata.resource_version = rv;
            c.status.get_or_insert_with(Default::default).conditions = conditions;
        }
    }
    let now = crate::strategy::now();
    // The first transition time of each type and status before.
    let mut before = std::collections::HashMap::new();
    for o in conditions(old) {
        if let Some(at) = &o.last_transition_time {
            before
                .entry((o.type_.as_str(), o.status.as_str()))
                .or_insert(at);
        }
    }
    for cond in c
        .status
        .iter_mut()
        .flat_map(|s| s.conditions.iter_mut().flatten())
    {
        if cond.last_update_time.is_none() {
            cond.last_update_time = Some(now.clone());
        }
        if cond.last_transition_time.is_none() {
            let kept = before.get(&(cond.type_.as_str(), cond.status.as_str()));
            cond.last_transition_time = Some(kept.map_or_else(|| now.clone(), |t| (*t).clone()));
        }
    }
}

fn conditions(c: &CertificateSigningRequest) -> &[CertificateSigningRequestCondition] {
    c.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
}

fn of_type<'a>(
    c: &'a CertificateSigningRequest,
    ty: &str,
) -> Vec<&'a CertificateSigningRequestCondition> {
    conditions(c).iter().filter(|x| x.type_ == ty).collect()
}

fn certificate(c: &CertificateSigningRequest) -> &[u8] {
    c.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .map_or(&[][..], |b| b.0.as_slice())
}

/// The checks of a request written through `part` (`old`: the one it replaces),
/// as kube's validation makes them; an old request's data that no longer passes is
/// let be (kube's allowances for existing data), so an update is judged on what it
/// changes.
pub fn validate(new: &AnyObject, old: Option<&AnyObject>, part: Part) -> Vec<FieldError> {
    let Some(c) = csr(new) else {
        return Vec::new();
    };
    let old = old.and_then(csr);
    let mut errs = Vec::new();
    let err = |errs: &mut Vec<FieldError>, path: &str, reason: Reason| {
        errs.push(FieldError {
            path: FieldPath::parse(path),
            reason,
        })
    };
    if old.is_none_or(|o| o.spec.request != c.spec.request)
        && let Err(e) = check_request(&c.spec.request.0)
    {
        err(&mut errs, "spec.request", Reason::Message(e));
    }
    let usages = c.spec.usages.as_deref().unwrap_or_default();
    if usages.is_empty() {
        err(&mut errs, "spec.usages", Reason::Required);
    }
    let old_usages = old
        .and_then(|o| o.spec.usages.as_deref())
        .unwrap_or_default();
    let mut seen = HashSet::new();
    for (i, u) in usages.iter().enumerate() {
        let path = format!("spec.usages[{i}]");
        if !USAGES.contains(&u.as_str()) && !old_usages.contains(u) {
            let supported = USAGES.iter().map(|s| s.to_string()).collect();
            let reason = Reason::NotSupported {
                value: u.clone(),
                supported,
            };
            err(&mut errs, &path, reason);
        }
        if !seen.insert(u) && old.is_none() {
            err(&mut errs, &path, Reason::Duplicate(u.clone()));
        }
    }
    if let Some(e) = signer_name_error(&c.spec.signer_name) {
        err(&mut errs, "spec.signerName", e);
    }
    if let Some(s) = c.spec.expiration_seconds.filter(|s| *s < 600) {
        let reason = Reason::Invalid {
            value: s.to_string(),
            detail: "may not specify a duration less than 600 seconds (10 minutes)".into(),
        };
        err(&mut errs, "spec.expirationSeconds", reason);
    }
    check_conditions(&mut errs, c, old);
    let cert_changed = old.is_none_or(|o| certificate(o) != certificate(c));
    if cert_changed && let Err(e) = check_certificate(certificate(c)) {
        let reason = Reason::Invalid {
            value: "<certificate data>".into(),
            detail: e,
        };
        err(&mut errs, "status.certificate", reason);
    }
    let Some(old) = old else {
        return errs;
    };
    let forbidden = |errs: &mut Vec<FieldError>, path: &str, why: String| {
        err(errs, path, Reason::Forbidden(why))
    };
    for ty in KEPT {
        if of_type(c, ty).len() < of_type(old, ty).len() {
            let why = format!("updates may not remove a condition of type {ty:?}");
            forbidden(&mut errs, "status.conditions", why);
        }
    }
    if part != Part::Approval {
        for ty in APPROVALS {
            let (was, now) = (of_type(old, ty), of_type(c, ty));
            if now.len() > was.len() {
                let why = format!("updates may not add a condition of type {ty:?}");
                forbidden(&mut errs, "status.conditions", why);
            } else if now.len() == was.len() && now != was {
                let why = format!("updates may not modify a condition of type {ty:?}");
                forbidden(&mut errs, "status.conditions", why);
            }
        }
    }
    if certificate(c) != certificate(old) {
        let why = if part != Part::Status {
            "updates may not set certificate content"
        } else if !certificate(old).is_empty() {
            "updates may not modify existing certificate content"
        } else {
            ""
        };
        if !why.is_empty() {
            forbidden(&mut errs, "status.certificate", why.to_string());
        }
    }
    errs
}

/// The conditions' own rules: a type, a status (`True` alone for `Approved`,
/// `Denied` and `Failed`), `Approved` and `Denied` not both, no type twice.
fn check_conditions(
    errs: &mut Vec<FieldError>,
    c: &CertificateSigningRequest,
    old: Option<&CertificateSigningRequest>,
) {
    let old = old.map(conditions).unwrap_or_default();
    let old_has = |ty: &str| old.iter().any(|x| x.type_ == ty);
    let both_before = old_has("Approved") && old_has("Denied");
    let empty_before = old_has("");
    let duplicates_before = old.len() != old.iter().map(|x| &x.type_).collect::<HashSet<_>>().len();
    let mut types = HashSet::new();
    let (mut approved, mut denied) = (false, false);
    for (i, cond) in conditions(c).iter().enumerate() {
        let at = |field: &str| FieldPath::parse(&format!("status.conditions[{i}].{field}"));
        if cond.type_.is_empty() && !empty_before {
            errs.push(FieldError {
                path: at("type"),
                reason: Reason::Required,
            });
        }
        let allowed: &[&str] = if KEPT.contains(&cond.type_.as_str()) {
            &["True"]
        } else {
            &["False", "True", "Unknown"]
        };
        if cond.status.is_empty() {
            errs.push(FieldError {
                path: at("status"),
                reason: Reason::Required,
            });
        } else if !allowed.contains(&cond.status.as_str()) {
            errs.push(FieldError {
                path: at("status"),
                reason: Reason::NotSupported {
                    value: cond.status.clone(),
                    supported: allowed.iter().map(|s| s.to_string()).collect(),
                },
            });
        }
        match cond.type_.as_str() {
            "Approved" => approved = true,
            "Denied" => denied = true,
            _ => {}
        }
        if approved && denied && !both_before && APPROVALS.contains(&cond.type_.as_str()) {
            errs.push(FieldError {
                path: at("type"),
                reason: Reason::Invalid {
                    value: cond.type_.clone(),
                    detail: "Approved and Denied conditions are mutually exclusive".into(),
                },
            });
        }
        if !types.insert(cond.type_.as_str()) && !duplicates_before {
            errs.push(FieldError {
                path: at("type"),
                reason: Reason::Duplicate(cond.type_.clone()),
            });
        }
    }
}

/// A signer's name: `DOMAIN/PATH`, the domain a DNS subdomain (kube's
/// `ValidateSignerName`); `kubernetes.io/legacy-unknown` is not served by v1.
fn signer_name_error(name: &str) -> Option<Reason> {
    if name.is_empty() {
        return Some(Reason::Required);
    }
    let invalid = |detail: &str| {
        Some(Reason::Invalid {
            value: name.to_string(),
            detail: detail.to_string(),
        })
    };
    if name == "kubernetes.io/legacy-unknown" {
        return invalid("the legacy signerName is not allowed via this API version");
    }
    let Some((domain, path)) = name.split_once('/') else {
        return invalid(
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        );
    };
    if path.is_empty() {
        return invalid("validating path: must not be empty");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if domain.len() > 253 || !domain.contains('.') || !domain.split('.').all(label_ok) {
        return invalid(
            "validating domain: should be a domain with at least two segments separated by dots",
        );
    }
    None
}

/// The request parses as a PEM `CERTIFICATE REQUEST` and is signed by its key.
fn check_request(pem: &[u8]) -> Result<(), String> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem)
        .map_err(|_| "PEM block type must be CERTIFICATE REQUEST".to_string())?;
    if block.label != "CERTIFICATE REQUEST" {
        return Err("PEM block type must be CERTIFICATE REQUEST".into());
    }
    use x509_parser::prelude::FromDer as _;
    let (_, req) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
            .map_err(|e| e.to_string())?;
    req.verify_signature().map_err(|e| e.to_string())
}

/// A certificate is one or more PEM `CERTIFICATE` blocks, each a certificate.
fn check_certificate(pem: &[u8]) -> Result<(), String> {
    if pem.is_empty() {
        return Ok(());
    }
    let mut blocks = 0;
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| e.to_string())?;
        if block.label != "CERTIFICATE" {
            return Err(format!(
                "only CERTIFICATE PEM blocks are allowed, found {:?}",
                block.label
            ));
        }
        x509_parser::parse_x509_certificate(&block.contents).map_err(|e| e.to_string())?;
        blocks += 1;
    }
    if blocks == 0 {
        return Err("must contain at least one CERTIFICATE PEM block".into());
    }
    Ok(())
}

/// The `CertificateApproval` admission plugin's question about a write through
/// `approval`: the `signers` names whose `approve` verb lets a caller approve `obj`
/// (the signer's own, and its domain's `DOMAIN/*`), and the refusal for a caller who
/// has none; `None` for what is not a request.
pub fn approval_signers(obj: &AnyObject) -> Option<(Vec<String>, ApiError)> {
    let c = csr(obj)?;
    let signer = c.spec.signer_name.clone();
    let mut names = vec![signer.clone()];
    if let Some((domain, _)) = signer.split_once('/') {
        names.push(format!("{domain}/*"));
    }
    let refusal = ApiError::forbidden(format!(
        "certificatesigningrequests.{GROUP} \"{}\" is forbidden: user not permitted to approve requests with signerName {signer:?}",
        c.metadata.name.as_deref().unwrap_or_default()
    ));
    Some((names, refusal))
}

#[cfg(test)]
pub(crate) mod tests;

//! The `kubernetes.io/kube-apiserver-client` signer (kube-controller-manager's
//! `csrsigning`): an approved request for a client certificate gets one from the
//! client CA, the CA whose certificates this server takes as users, so `kubectl
//! certificate approve` ends with a certificate its requester can log in with. A
//! request the signer may not sign (a server usage, a subject alternative name) gets
//! a `Failed` condition instead, as kube's does. The leader signs; the others wait.
//!
//! The other signers kube-controller-manager runs (`kube-apiserver-client-kubelet`,
//! `kubelet-serving`) are not here: rk8s' nodes get their certificates when they
//! join, and requests for those signers stay pending.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use rcgen::KeyUsagePurpose;
use rk8s_api::AnyObject;

use crate::bootstrap::pki::ClusterCa;
use crate::registry::Change;
use crate::server::ApiServer;
use crate::status::ApiResult;

/// The signer this module is.
pub const SIGNER: &str = "kubernetes.io/kube-apiserver-client";

/// How often the leader looks for approved requests.
const EVERY: Duration = Duration::from_secs(1);

/// Signs approved requests for as long as the server runs, on the leader.
pub async fn run(api: Arc<ApiServer>, ca: ClusterCa) {
    let mut said = None::<String>;
    loop {
        tokio::time::sleep(EVERY).await;
        if !api.store.leadership().borrow().is_self {
            continue;
        }
        match sign_approved(&api, &ca).await {
            Ok(()) => said = None,
            Err(e) if said.as_deref() != Some(e.message.as_str()) => {
                tracing::warn!("signing certificate requests: {}", e.message);
                said = Some(e.message);
            }
            Err(_) => {}
        }
    }
}

/// Whether `c` waits for this signer: approved, not failed, no certificate yet.
fn waiting(c: &CertificateSigningRequest) -> bool {
    let has = |ty: &str| {
        c.status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .any(|x| x.type_ == ty && x.status == "True")
    };
    c.spec.signer_name == SIGNER
        && has("Approved")
        && !has("Denied")
        && !has("Failed")
        && c.status
            .as_ref()
            .and_then(|s| s.certificate.as_ref())
            .is_none_or(|b| b.0.is_empty())
}

async fn sign_approved(api: &ApiServer, ca: &ClusterCa) -> ApiResult<()> {
    let mut names = Vec::new();
    api.handlers
        .scan_kind("CertificateSigningRequest", |kv| {
            // Stored values are JSON (a request that does not read as one is looked
            // at whole below).
            let read = serde_json::from_slice::<CertificateSigningRequest>(&kv.value);
            if read.as_ref().is_ok_and(waiting) || read.is_err() {
                let key = String::from_utf8_lossy(&kv.key);
                names.push(key.rsplit('/').next().unwrap_or_default().to_string());
            }
        })
        .await?;
    let Some(kind) = rk8s_api::object::kind_named("CertificateSigningRequest") else {
        return Ok(());
    };
    let validity = api
        .signing_duration
        .get()
        .copied()
        .unwrap_or(Duration::from_secs(365 * 24 * 3600));
    for name in names {
        api.handlers
            .registry
            .update(&kind, None, &name, |current| {
                let AnyObject::CertificateSigningRequest(mut c) = current else {
                    return Ok(Change::Unchanged);
                };
                if !waiting(&c) {
                    return Ok(Change::Unchanged);
                }
                let issued = issue(&c_spec(&c), ca, validity);
                let status = c.status.get_or_insert_with(Default::default);
                match issued {
                    Ok(pem) => status.certificate = Some(ByteString(pem.into_bytes())),
                    Err(why) => {
                        let now = crate::strategy::now();
                        status.conditions.get_or_insert_with(Vec::new).push(
                            CertificateSigningRequestCondition {
                                type_: "Failed".into(),
                                status: "True".into(),
                                reason: Some("SignerValidationFailure".into()),
                                message: Some(why),
                                last_update_time: Some(now.clone()),
                                last_transition_time: Some(now),
                            },
                        );
                    }
                }
                Ok(Change::Replace(AnyObject::CertificateSigningRequest(c)))
            })
            .await?;
    }
    Ok(())
}

/// What signing reads of a request.
struct Asked {
    request: String,
    usages: Vec<String>,
    expiration_seconds: Option<i32>,
}

fn c_spec(c: &CertificateSigningRequest) -> Asked {
    Asked {
        request: String::from_utf8_lossy(&c.spec.request.0).into_owned(),
        usages: c.spec.usages.clone().unwrap_or_default(),
        expiration_seconds: c.spec.expiration_seconds,
    }
}

/// The certificate of `asked`, or why this signer may not issue it (kube's
/// `ValidateKubeAPIServerClientCSR` words).
fn issue(asked: &Asked, ca: &ClusterCa, validity: Duration) -> Result<String, String> {
    let (_, block) = x509_parser::pem::parse_x509_pem(asked.request.as_bytes())
        .map_err(|e| format!("unable to parse csr: {e}"))?;
    use x509_parser::prelude::FromDer as _;
    let (_, req) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
            .map_err(|e| format!("unable to parse csr: {e}"))?;
    let info = &req.certification_request_info;
    let sans = req.requested_extensions().into_iter().flatten().any(|e| {
        matches!(
            e,
            x509_parser::extensions::ParsedExtension::SubjectAlternativeName(_)
        )
    });
    if sans {
        return Err("subjectAltNames are not allowed for this signer".into());
    }
    if !asked.usages.iter().any(|u| u == "client auth") {
        return Err("usages did not contain client auth".into());
    }
    let mut key_usages = Vec::new();
    for usage in &asked.usages {
        match usage.as_str() {
            "client auth" => {}
            "digital signature" => key_usages.push(KeyUsagePurpose::DigitalSignature),
            "key encipherment" => key_usages.push(KeyUsagePurpose::KeyEncipherment),
            other => return Err(format!("usage {other:?} is not allowed for this signer")),
        }
    }
    let user = info
        .subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string();
    if user.is_empty() {
        return Err("subject common name must not be empty".into());
    }
    let groups: Vec<String> = info
        .subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    // The shorter of what the request asks and what the cluster signs for.
    let asked_for = asked
        .expiration_seconds
        .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)));
    let lasts = asked_for.map_or(validity, |a| a.min(validity));
    let ends = jiff::SignedDuration::try_from(lasts)
        .ok()
        .and_then(|d| jiff::Timestamp::now().checked_add(d).ok())
        .unwrap_or(jiff::Timestamp::MAX);
    ca.issue_for_request(&asked.request, &user, &groups, key_usages, ends)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_request_is_signed_by_the_client_ca_for_its_subject() {
        let ca = ClusterCa::generate_client_ca().unwrap();
        let asked = Asked {
            // rcgen writes one organization; openssl's requests with several are
            // read whole (x509-parser) and signed with all of them.
            request: crate::certificates::tests::request_pem("jane", &["dev"]),
            usages: vec!["client auth".into(), "digital signature".into()],
            expiration_seconds: Some(3600),
        };
        let pem = issue(&asked, &ca, Duration::from_secs(365 * 24 * 3600)).unwrap();
        // The server reads its user as it reads any client certificate.
        let der = rk8s_http::tls::pem_to_der(&pem).unwrap();
        let user = crate::users::from_certificate(&der).unwrap();
        assert_eq!(user.name, "jane");
        assert!(
            user.groups.contains(&"dev".to_string()),
            "{:?}",
            user.groups
        );
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let lasts = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        assert_eq!(lasts, 3600 + 300, "an hour asked, from five minutes ago");
        // A server usage is refused.
        let server = Asked {
            usages: vec!["client auth".into(), "server auth".into()],
            ..asked
        };
        assert_eq!(
            issue(&server, &ca, Duration::from_secs(3600)).unwrap_err(),
            "usage \"server auth\" is not allowed for this signer"
        );
    }
}

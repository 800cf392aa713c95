use k8s_openapi::ByteString;
use serde_json::json;

use super::*;

/// A request for a client certificate of `user` in `groups`, signed by a fresh key.
pub(crate) fn request_pem(user: &str, groups: &[&str]) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, user);
    for g in groups {
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, *g);
    }
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn request(conditions: serde_json::Value) -> AnyObject {
    let csr: CertificateSigningRequest = serde_json::from_value(json!({
        "metadata": {"name": "jane", "resourceVersion": "7"},
        "spec": {"request": ByteString(request_pem("jane", &["dev"]).into_bytes()),
            "signerName": "kubernetes.io/kube-apiserver-client",
            "usages": ["client auth"]},
        "status": {"conditions": conditions},
    }))
    .unwrap();
    csr.into()
}

fn messages(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(FieldError::kubernetes_message).collect()
}

#[test]
fn a_new_request_is_checked_as_kube_checks_it() {
    assert!(validate(&request(json!([])), None, Part::Main).is_empty());
    let mut bad = request(json!([]));
    if let Some(c) = csr_mut(&mut bad) {
        c.spec.request = ByteString(b"not a request".to_vec());
        c.spec.usages = Some(vec![
            "client auth".into(),
            "client auth".into(),
            "flying".into(),
        ]);
        c.spec.signer_name = "example".into();
        c.spec.expiration_seconds = Some(60);
    }
    let errs = messages(&validate(&bad, None, Part::Main));
    let wanted = [
        "spec.request",
        "spec.usages[1]: Duplicate value: \"client auth\"",
        "spec.usages[2]: Unsupported value: \"flying\"",
        "spec.signerName",
        "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 600 seconds (10 minutes)",
    ];
    for w in wanted {
        assert!(
            errs.iter().any(|e| e.starts_with(w)),
            "no {w:?} in {errs:#?}"
        );
    }
}

#[test]
fn only_approval_approves_and_nothing_takes_an_approval_away() {
    let pending = request(json!([]));
    let approved =
        request(json!([{"type": "Approved", "status": "True", "reason": "KubectlApprove"}]));
    // Through `approval`: allowed. Through the object or `status`: forbidden.
    assert!(validate(&approved, Some(&pending), Part::Approval).is_empty());
    for part in [Part::Main, Part::Status] {
        let errs = messages(&validate(&approved, Some(&pending), part));
        assert_eq!(
            errs,
            ["status.conditions: Forbidden: updates may not add a condition of type \"Approved\""]
        );
    }
    let errs = messages(&validate(&pending, Some(&approved), Part::Approval));
    assert_eq!(
        errs,
        ["status.conditions: Forbidden: updates may not remove a condition of type \"Approved\""]
    );
    let both = request(
        json!([{"type": "Approved", "status": "True"}, {"type": "Denied", "status": "True"}]),
    );
    let errs = messages(&validate(&both, Some(&pending), Part::Approval));
    assert_eq!(
        errs,
        [
            "status.conditions[1].type: Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive"
        ]
    );
    let no = request(json!([{"type": "Approved", "status": "False"}]));
    let errs = messages(&validate(&no, Some(&pending), Part::Approval));
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("status.conditions[0].status: Unsupported value: \"False\""),
        "{errs:?}"
    );
}

#[test]
fn approval_writes_the_conditions_alone_with_their_times() {
    let current = request(json!([]));
    let mut new =
        request(json!([{"type": "Approved", "status": "True", "reason": "KubectlApprove"}]));
    if let Some(c) = csr_mut(&mut new) {
        c.spec.usages = Some(vec!["server auth".into()]);
        c.metadata.resource_version = Some("7".into());
    }
    prepare_update(&mut new, &current, Part::Approval);
    let c = csr(&new).unwrap();
    assert_eq!(
        c.spec.usages.as_deref(),
        Some(&["client auth".to_string()][..])
    );
    let cond = &conditions(c)[0];
    assert_eq!(
        (cond.type_.as_str(), cond.status.as_str()),
        ("Approved", "True")
    );
    assert!(cond.last_update_time.is_some() && cond.last_transition_time.is_some());
    assert_eq!(c.metadata.resource_version.as_deref(), Some("7"));
}

#[test]
fn the_requester_is_the_caller() {
    let mut obj = request(json!([]));
    if let Some(c) = csr_mut(&mut obj) {
        c.spec.username = Some("someone-else".into());
    }
    let user = crate::users::User::new("jane".into(), vec!["dev".into()]);
    stamp_requester(&mut obj, &Identity::User(user));
    let c = csr(&obj).unwrap();
    assert_eq!(c.spec.username.as_deref(), Some("jane"));
    let groups = c.spec.groups.clone().unwrap_or_default();
    assert!(
        groups.contains(&"dev".to_string()) && groups.contains(&"system:authenticated".to_string())
    );
}

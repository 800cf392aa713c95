//! Users: people and programs that show a client certificate of the cluster's client
//! CA, read as kube-apiserver's x509 authenticator reads one (the subject's common
//! name is the user, each organization a group), and the users a request may act as
//! through kube-apiserver's impersonation headers (`Impersonate-User`,
//! `Impersonate-Group`, `Impersonate-Uid`; `kubectl --as`, `--as-group`), once the
//! caller may `impersonate` them ([`crate::rbac`]).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

use http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::status::{ApiError, ApiResult};

/// The group whose members may do everything, before any authorizer is asked.
pub const MASTERS: &str = "system:masters";
/// The group of every authenticated caller.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group of callers without credentials (only for the public endpoints).
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The group of this process' own components that run as users (the scheduler):
/// authorized by RBAC like anyone, but not held to the in-flight limits, as
/// kube-apiserver's priority levels keep its control plane's requests apart from
/// users' (the scheduler's `workload-high`).
pub const CONTROL_PLANE: &str = "system:rk8s:control-plane";

/// The most groups a certificate or a request's headers may name.
const MAX_GROUPS: usize = 64;

/// A user known by name and groups (a client certificate, or impersonation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user name.
    pub name: String,
    /// The groups, `system:authenticated` included.
    pub groups: Vec<String>,
    /// The uid, when impersonation named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

impl User {
    /// A user `name` in `groups`, and in `system:authenticated` as every user is.
    pub fn new(name: String, mut groups: Vec<String>) -> Self {
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.to_string());
        }
        User {
            name,
            groups,
            uid: None,
        }
    }

    /// Whether the user is in `system:masters`.
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }
}

fn unauthorized(why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        http::StatusCode::UNAUTHORIZED,
        "Unauthorized",
        format!("Unauthorized: {why}"),
    )
}

/// The user of a client certificate (DER) the TLS handshake verified against the
/// client CA: its common name and organizations. A certificate without a common name
/// is refused, as kube-apiserver does.
pub fn from_certificate(der: &[u8]) -> ApiResult<User> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| unauthorized(format!("the client certificate does not parse: {e}")))?;
    let subject = cert.subject();
    let text = |attr: &x509_parser::x509::AttributeTypeAndValue<'_>| {
        attr.as_str()
            .map(str::to_string)
            .map_err(|_| unauthorized("the client certificate's subject is not text"))
    };
    let name = match subject.iter_common_name().next() {
        Some(cn) => text(cn)?,
        None => return Err(unauthorized("the client certificate names no user")),
    };
    if name.is_empty() {
        return Err(unauthorized("the client certificate names no user"));
    }
    let groups = subject
        .iter_organization()
        .take(MAX_GROUPS)
        .map(text)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(User::new(name, groups))
}

/// The most client certificates whose users [`CertificateUsers`] remembers (all are
/// forgotten when one more comes).
pub const MAX_CERTIFICATE_USERS: usize = 1_024;

/// The users of the client certificates seen lately, by certificate (DER): each is
/// parsed once, not at every request of the connections that present it (their
/// handshakes verified it).
#[derive(Default)]
pub struct CertificateUsers(std::sync::Mutex<HashMap<Arc<[u8]>, User>>);

impl CertificateUsers {
    /// [`from_certificate`] of `der`, remembered.
    pub fn user(&self, der: &[u8]) -> ApiResult<User> {
        let lock = || self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(user) = lock().get(der) {
            return Ok(user.clone());
        }
        let user = from_certificate(der)?;
        let mut known = lock();
        if known.len() >= MAX_CERTIFICATE_USERS {
            known.clear();
        }
        known.insert(Arc::from(der), user.clone());
        Ok(user)
    }
}

/// What a request's impersonation headers ask to act as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Impersonation {
    /// `Impersonate-User`.
    pub user: String,
    /// `Impersonate-Group` (any number of headers).
    pub groups: Vec<String>,
    /// `Impersonate-Uid`.
    pub uid: Option<String>,
}

impl Impersonation {
    /// The user the request then acts as: the groups asked for (a ServiceAccount's
    /// when none are and the user names one), in `system:authenticated`.
    pub fn user(&self) -> User {
        let mut groups = self.groups.clone();
        if groups.is_empty()
            && let Some((ns, _)) = crate::service_accounts::parse_user_name(&self.user)
        {
            groups = vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{ns}"),
            ];
        }
        // kube leaves anonymous out of `system:authenticated`, in its own group.
        if self.user == "system:anonymous" {
            if !groups.iter().any(|g| g == UNAUTHENTICATED) {
                groups.push(UNAUTHENTICATED.to_string());
            }
            return User {
                name: self.user.clone(),
                groups,
                uid: self.uid.clone(),
            };
        }
        let mut user = User::new(self.user.clone(), groups);
        user.uid = self.uid.clone();
        user
    }
}

/// The impersonation a request's headers ask for, if any; 400 for groups or a uid
/// without a user, or headers that are not text.
pub fn impersonation(headers: &HeaderMap) -> ApiResult<Option<Impersonation>> {
    let text = |v: &http::HeaderValue, name: &str| {
        v.to_str()
            .map(str::to_string)
            .map_err(|_| ApiError::bad_request(format!("the {name} header is not text")))
    };
    let user = headers
        .get("impersonate-user")
        .map(|v| text(v, "Impersonate-User"))
        .transpose()?;
    let groups = headers
        .get_all("impersonate-group")
        .iter()
        .take(MAX_GROUPS + 1)
        .map(|v| text(v, "Impersonate-Group"))
        .collect::<ApiResult<Vec<_>>>()?;
    if groups.len() > MAX_GROUPS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_GROUPS} Impersonate-Group headers"
        )));
    }
    let uid = headers
        .get("impersonate-uid")
        .map(|v| text(v, "Impersonate-Uid"))
        .transpose()?;
    match user {
        Some(user) if !user.is_empty() => Ok(Some(Impersonation { user, groups, uid })),
        // kube-apiserver's wording.
        _ if !groups.is_empty() || uid.is_some() => Err(ApiError::bad_request(
            "requested impersonation of groups or a uid without impersonating a user",
        )),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_name_the_user_and_its_groups() {
        let ca = crate::bootstrap::pki::ClusterCa::generate_client_ca().unwrap();
        let (pem, _) = ca
            .issue_client(
                "jane",
                &["devs".to_string(), "ops".to_string()],
                std::time::Duration::from_secs(3600),
            )
            .unwrap();
        let der = rk8s_http::tls::pem_to_der(&pem).unwrap();
        let user = from_certificate(&der).unwrap();
        assert_eq!(user.name, "jane");
        assert_eq!(user.groups, ["devs", "ops", AUTHENTICATED]);
        assert!(!user.is_master());
        assert!(from_certificate(b"not a certificate").is_err());
    }

    #[test]
    fn certificate_users_are_remembered_by_certificate_and_bounded() {
        let ca = crate::bootstrap::pki::ClusterCa::generate_client_ca().unwrap();
        let der = |name: &str| {
            let (pem, _) = ca
                .issue_client(name, &[], std::time::Duration::from_secs(3600))
                .unwrap();
            rk8s_http::tls::pem_to_der(&pem).unwrap()
        };
        let (jane, joe) = (der("jane"), der("joe"));
        let users = CertificateUsers::default();
        for _ in 0..2 {
            assert_eq!(users.user(&jane).unwrap().name, "jane");
            assert_eq!(users.user(&joe).unwrap().name, "joe");
        }
        assert!(users.user(b"not a certificate").is_err());
        assert_eq!(users.0.lock().unwrap().len(), 2, "refusals are not kept");
        {
            let mut known = users.0.lock().unwrap();
            known.remove(jane.as_slice());
            for i in known.len()..MAX_CERTIFICATE_USERS {
                let filler = Arc::from(i.to_le_bytes().as_slice());
                known.insert(filler, User::new(format!("u{i}"), vec![]));
            }
        }
        // Full: one more certificate and the others are forgotten.
        assert_eq!(users.user(&jane).unwrap().name, "jane");
        assert_eq!(users.0.lock().unwrap().len(), 1);
    }

    #[test]
    fn impersonation_headers_need_a_user() {
        let mut h = HeaderMap::new();
        assert_eq!(impersonation(&h).unwrap(), None);
        h.append("impersonate-group", "devs".parse().unwrap());
        assert_eq!(impersonation(&h).unwrap_err().code, 400);
        h.append("impersonate-user", "jane".parse().unwrap());
        h.append("impersonate-group", "ops".parse().unwrap());
        let asked = impersonation(&h).unwrap().unwrap();
        assert_eq!(asked.groups, ["devs", "ops"]);
        assert_eq!(asked.user().groups, ["devs", "ops", AUTHENTICATED]);
        let mut sa = HeaderMap::new();
        sa.append(
            "impersonate-user",
            "system:serviceaccount:d:robot".parse().unwrap(),
        );
        let robot = impersonation(&sa).unwrap().unwrap().user();
        assert_eq!(
            robot.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:d",
                AUTHENTICATED
            ]
        );
    }
}

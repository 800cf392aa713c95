//! Bound service-account tokens, as kube-apiserver issues and checks them: JWTs
//! signed with the cluster's service-account key (ES256, one key every member shares
//! in [`crate::bootstrap::secrets`]), naming the ServiceAccount, the object the token
//! is bound to (a Pod, Secret or Node) and the pod's node, valid for an audience and
//! until an expiry. A token stops working when its bound object is deleted or
//! replaced, even before it expires (kube-apiserver's `validator.Validate` in
//! `pkg/serviceaccount/claims.go`).
//!
//! - [`crate::token_request`]: `POST serviceaccounts/NAME/token` (the TokenRequest
//!   API);
//! - [`admission`]: the ServiceAccount admission plugin (default account, the
//!   `kube-api-access-*` projected volume);
//! - [`master_service`]: the `kubernetes` Service and its Endpoints, through which
//!   pods reach the API.

pub mod admission;
pub mod master_service;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::status::{ApiError, ApiResult};

/// The tokens' issuer (`--service-account-issuer`, kubeadm's default).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The audience the API server accepts (`--api-audiences`, which defaults to the
/// issuer), given to tokens requested without one.
pub const API_AUDIENCE: &str = ISSUER;

/// The account pods run as when they name none.
pub const DEFAULT_ACCOUNT: &str = "default";

/// Where the `kube-api-access-*` volume is mounted in every container.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The ConfigMap in every namespace holding the cluster CA (`ca.crt`), as
/// kube-controller-manager's root-ca-cert-publisher keeps it.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// Shortest lifetime a TokenRequest may ask for (kube-apiserver: 10 minutes).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;

/// Longest lifetime a TokenRequest may ask for (kube-apiserver: 2^32 seconds).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// How long after its bound pod began deleting a token still works
/// (kube-apiserver's 60 s: the pod's containers are still stopping).
const DELETED_GRACE_SECONDS: i64 = 60;

/// Tolerated clock difference for `nbf` and `exp` (go-jose's default leeway).
const LEEWAY_SECONDS: u64 = 60;

/// A name and uid in a token's private claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    /// The object's name.
    pub name: String,
    /// The object's uid.
    pub uid: String,
}

/// The `kubernetes.io` claims of a token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Private {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount.
    pub serviceaccount: Ref,
    /// The pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    /// The Secret the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Ref>,
    /// The node the token is bound to, or the node of the bound pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Ref>,
}

/// A token's claims, named as kube-apiserver names them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// `system:serviceaccount:NAMESPACE:NAME`.
    pub sub: String,
    /// The issuer, [`ISSUER`].
    pub iss: String,
    /// Who the token is for.
    pub aud: Vec<String>,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Not before, Unix seconds.
    pub nbf: i64,
    /// The token's id.
    pub jti: String,
    /// What the token stands for and is bound to.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: Private,
}

/// The user name of a ServiceAccount.
pub fn user_name(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// The namespace and name of a ServiceAccount user name
/// (`system:serviceaccount:NS:NAME`), if `user` is one.
pub fn parse_user_name(user: &str) -> Option<(&str, &str)> {
    let (ns, name) = user
        .strip_prefix("system:serviceaccount:")?
        .split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// A caller authenticated by a service-account token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount's name.
    pub name: String,
    /// The ServiceAccount's uid.
    pub uid: String,
    /// The pod the token is bound to, if any (`authentication.kubernetes.io/pod-name`
    /// in the user's extra).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
}

impl Account {
    /// The groups Kubernetes puts a ServiceAccount in.
    pub fn groups(&self) -> Vec<String> {
        vec![
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{}", self.namespace),
            "system:authenticated".to_string(),
        ]
    }
}

/// The key tokens are signed and checked with.
pub struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The key id in tokens' headers: the public key's SHA-256, base64url.
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A new P-256 key as PKCS#8 DER, base64 (as [`crate::bootstrap::secrets`] keeps it).
pub fn generate_key() -> ApiResult<String> {
    use base64::Engine;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .map_err(|_| ApiError::internal("could not generate a service-account signing key"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref()))
}

impl SigningKey {
    /// The key of [`generate_key`]'s text.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        use base64::Engine;
        use ring::signature::KeyPair;
        let der = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| format!("the service-account key is not base64: {e}"))?;
        let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &der,
            &ring::rand::SystemRandom::new(),
        )
        .map_err(|e| format!("the service-account key is not a P-256 PKCS#8 key: {e}"))?;
        let public = pair.public_key().as_ref();
        let digest = ring::digest::digest(&ring::digest::SHA256, public);
        Ok(SigningKey {
            encoding: EncodingKey::from_ec_der(&der),
            decoding: DecodingKey::from_ec_der(public),
            kid: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()),
        })
    }

    /// The signed token of `claims`.
    pub fn issue(&self, claims: &Claims) -> ApiResult<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| ApiError::internal(format!("could not sign a token: {e}")))
    }

    /// The claims of `token` if this key signed it for [`ISSUER`] and
    /// [`API_AUDIENCE`], and it is within its lifetime (give or take a minute);
    /// otherwise why not.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[API_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    "service account token has expired".to_string()
                }
                jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                    "token audiences do not include the API server's".to_string()
                }
                _ => format!("invalid service account token: {e}"),
            })
    }
}

/// Whether `token` has a JWT's shape (three base64url parts, a JSON header): such
/// tokens are checked as service-account tokens, others against the token records.
pub fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    parts.next().is_some_and(|h| h.starts_with("eyJ"))
        && parts.next().is_some_and(|p| !p.is_empty())
        && parts.next().is_some()
        && parts.next().is_none()
}

/// Whether the object `named` in a token is the one found now (`found`: its uid, or
/// `None` when there is none), in kube-apiserver's words (`plural`, `what`).
fn same_object(named: &Ref, found: Option<&str>, plural: &str, what: &str) -> Result<(), String> {
    match found {
        None => Err(format!("{plural} \"{}\" not found", named.name)),
        Some(uid) if uid != named.uid => Err(format!(
            "{what} UID ({uid}) does not match claim ({})",
            named.uid
        )),
        Some(_) => Ok(()),
    }
}

/// Why a correctly signed token no longer stands for its account: the objects it
/// names as they are now (`None`: not found). `now` is Unix seconds.
pub fn still_bound(
    claims: &Claims,
    account_uid: Option<&str>,
    pod: Option<(&str, Option<i64>)>,
    secret_uid: Option<&str>,
    node_uid: Option<&str>,
    now: i64,
) -> Result<(), String> {
    let k = &claims.kubernetes;
    same_object(
        &k.serviceaccount,
        account_uid,
        "serviceaccounts",
        "service account",
    )?;
    if let Some(bound) = &k.pod {
        same_object(bound, pod.map(|(uid, _)| uid), "pods", "pod")?;
        if let Some((_, Some(deleting))) = pod
            && deleting < now - DELETED_GRACE_SECONDS
        {
            return Err(format!(
                "pod {}/{} has been deleted",
                k.namespace, bound.name
            ));
        }
    }
    if let Some(bound) = &k.secret {
        same_object(bound, secret_uid, "secrets", "secret")?;
    }
    // A pod's node is named for information; only a token bound to the node itself
    // ends with it (kube-apiserver's rule).
    if k.pod.is_none()
        && let Some(bound) = &k.node
    {
        same_object(bound, node_uid, "nodes", "node")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! `POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`: the TokenRequest API
//! (kube-apiserver's `pkg/registry/core/serviceaccount/storage/token.go`). The answer
//! is the request with its audiences filled in and `status.token`, a JWT for the
//! account, bound to the object the request names (a Pod, Secret or Node) and valid
//! for `expirationSeconds` (default one hour). A node may only ask for tokens bound
//! to a pod on it, for that pod's own account (NodeRestriction).

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rk8s_api::AnyObject;
use rk8s_api::object::kind_named;

use crate::auth::Access;
use crate::call::Call;
use crate::decode::{FieldValidation, parse_body};
use crate::handlers::{Handlers, Reply};
use crate::service_accounts::{
    API_AUDIENCE, Claims, DEFAULT_ACCOUNT, ISSUER, MAX_EXPIRATION_SECONDS, MIN_EXPIRATION_SECONDS,
    Private, Ref, user_name,
};
use crate::status::{ApiError, ApiResult};

/// A TokenRequest's lifetime when it asks for none (kube-apiserver: one hour).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

fn invalid(name: &str, field: &str, value: impl std::fmt::Display, detail: &str) -> ApiError {
    ApiError::new(
        http::StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        format!(
            "TokenRequest.authentication.k8s.io \"{name}\" is invalid: {field}: Invalid value: {value}: {detail}"
        ),
    )
}

fn uid_of(obj: &AnyObject) -> String {
    obj.metadata().uid.clone().unwrap_or_default()
}

/// What a token is bound to, read from the store.
#[derive(Default)]
struct Bound {
    pod: Option<Ref>,
    secret: Option<Ref>,
    node: Option<Ref>,
    /// The node of a bound pod (NodeRestriction checks it).
    pod_node: Option<String>,
}

impl Handlers {
    /// Answers a TokenRequest for the account the request names.
    pub(crate) async fn token_request(&self, c: &Call<'_>) -> ApiResult<Reply> {
        let key = self.service_account_key.get().ok_or_else(|| {
            ApiError::unavailable("this API server has no service-account signing key yet")
        })?;
        let mut body = parse_body(&c.content_type, &c.body, FieldValidation::Ignore)?;
        // The status is the server's to fill (kubectl sends an empty one).
        if let Some(fields) = body.value.as_object_mut() {
            fields.remove("status");
        }
        let mut request: TokenRequest = serde_json::from_value(body.value)
            .map_err(|e| ApiError::bad_request(format!("invalid TokenRequest: {e}")))?;
        let req = c.req;
        let name = req.name().to_string();
        let ns = req.namespace.clone().unwrap_or_else(|| "default".into());
        let account_kind = kind_named("ServiceAccount")
            .ok_or_else(|| ApiError::internal("no ServiceAccount kind"))?;
        let account = self.registry.get(&account_kind, Some(&ns), &name).await?;
        let spec = &mut request.spec;
        let expiration = spec
            .expiration_seconds
            .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
        if expiration < MIN_EXPIRATION_SECONDS {
            return Err(invalid(
                &name,
                "spec.expirationSeconds",
                expiration,
                "may not specify a duration less than 10 minutes",
            ));
        }
        if expiration > MAX_EXPIRATION_SECONDS {
            return Err(invalid(
                &name,
                "spec.expirationSeconds",
                expiration,
                "may not specify a duration larger than 2^32 seconds",
            ));
        }
        spec.expiration_seconds = Some(expiration);
        if spec.audiences.is_empty() {
            spec.audiences = vec![API_AUDIENCE.to_string()];
        }
        let bound = match &spec.bound_object_ref {
            Some(r) => self.bound(&ns, &name, r).await?,
            None => Bound::default(),
        };
        if let Access::UsedOnNode(node) = &c.access {
            match (&bound.pod, &bound.pod_node) {
                (None, _) => {
                    return Err(ApiError::forbidden(format!(
                        "serviceaccounts \"{name}\" is forbidden: node requested token not bound to a pod"
                    )));
                }
                (Some(_), Some(n)) if n == node => {}
                (Some(_), _) => {
                    return Err(ApiError::forbidden(format!(
                        "serviceaccounts \"{name}\" is forbidden: node requested token bound to a pod scheduled on a different node"
                    )));
                }
            }
        }
        let now = jiff::Timestamp::now();
        let issued = now.as_second();
        let claims = Claims {
            sub: user_name(&ns, &name),
            iss: ISSUER.to_string(),
            aud: spec.audiences.clone(),
            exp: issued + expiration,
            iat: issued,
            nbf: issued,
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes: Private {
                namespace: ns.clone(),
                serviceaccount: Ref {
                    name: name.clone(),
                    uid: uid_of(&account),
                },
                pod: bound.pod,
                secret: bound.secret,
                node: bound.node,
            },
        };
        let token = key.issue(&claims)?;
        let expires = jiff::Timestamp::from_second(claims.exp)
            .map_err(|e| ApiError::internal(format!("token expiry out of range: {e}")))?;
        request.metadata.name = Some(name);
        request.metadata.namespace = Some(ns);
        request.metadata.creation_timestamp = Some(Time(now));
        request.status = Some(k8s_openapi::api::authentication::v1::TokenRequestStatus {
            token,
            expiration_timestamp: Time(expires),
        });
        let mut value = serde_json::to_value(&request)
            .map_err(|e| ApiError::internal(format!("TokenRequest: {e}")))?;
        value["apiVersion"] = "authentication.k8s.io/v1".into();
        value["kind"] = "TokenRequest".into();
        Ok(Reply {
            code: http::StatusCode::CREATED,
            body: crate::handlers::Body::Value(value),
            warnings: Vec::new(),
        })
    }

    /// Reads the object `r` names for a token of the account `account` in `ns`:
    /// it must exist with the uid `r` gives, and a pod must run as `account`.
    async fn bound(&self, ns: &str, account: &str, r: &BoundObjectReference) -> ApiResult<Bound> {
        let kind_name = r.kind.as_deref().unwrap_or_default();
        let api_version = r.api_version.as_deref().unwrap_or("v1");
        let object_name = r.name.as_deref().unwrap_or_default();
        let (kind, namespace) = match (api_version, kind_name) {
            ("v1", "Pod" | "Secret") => (kind_named(kind_name), Some(ns)),
            ("v1", "Node") => (kind_named("Node"), None),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount \"{account}\" to object of type {api_version}/{kind_name}: only v1 Pod, Secret and Node"
                )));
            }
        };
        let kind = kind.ok_or_else(|| ApiError::internal("unknown bound kind"))?;
        let obj = self.registry.get(&kind, namespace, object_name).await?;
        let uid = uid_of(&obj);
        if let Some(asked) = r.uid.as_deref().filter(|u| !u.is_empty() && *u != uid) {
            return Err(ApiError::conflict(
                &kind,
                object_name,
                &format!(
                    "the UID in the bound object reference ({asked}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            ));
        }
        let named = Ref {
            name: object_name.to_string(),
            uid,
        };
        match obj {
            AnyObject::Pod(pod) => {
                let spec = pod.spec.as_ref();
                let runs_as = spec
                    .and_then(|s| s.service_account_name.as_deref())
                    .filter(|n| !n.is_empty())
                    .unwrap_or(DEFAULT_ACCOUNT);
                if runs_as != account {
                    return Err(ApiError::bad_request(format!(
                        "cannot bind token for serviceaccount \"{account}\" to pod running with different serviceaccount name."
                    )));
                }
                let pod_node = spec.and_then(|s| s.node_name.clone());
                let node = match &pod_node {
                    Some(n) => self.node_ref(n).await?,
                    None => None,
                };
                Ok(Bound {
                    pod: Some(named),
                    secret: None,
                    node,
                    pod_node,
                })
            }
            AnyObject::Secret(_) => Ok(Bound {
                secret: Some(named),
                ..Bound::default()
            }),
            _ => Ok(Bound {
                node: Some(named),
                ..Bound::default()
            }),
        }
    }

    async fn node_ref(&self, node: &str) -> ApiResult<Option<Ref>> {
        let kind = kind_named("Node").ok_or_else(|| ApiError::internal("no Node kind"))?;
        Ok(self
            .registry
            .find_locally(&kind, None, node)
            .await?
            .map(|n| Ref {
                name: node.to_string(),
                uid: uid_of(&n),
            }))
    }
}

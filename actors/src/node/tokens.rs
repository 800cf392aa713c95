//! A pod's bound service-account tokens, requested from the API as kubelet requests
//! them (the projected volume plugin, `pkg/volume/projected/projected.go`, through
//! the token manager, `pkg/kubelet/token/token_manager.go`): one per distinct
//! (audience, expirationSeconds) of its `serviceAccountToken` sources, for its service
//! account, bound to the pod; the one held is reused until 80 % of its TTL.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::Api;
use kube::api::PostParams;
use rk8s_runtime::pod::PodInputs;
use rk8s_runtime::pod::inputs::Read;
use rk8s_runtime::pod::tokens::{self, ServiceAccountToken, TokenKey};

/// The TokenRequest for `key` of `pod`: a token of the pod's service account for
/// `key`'s audience (none: the API server's default audiences) and TTL, bound to the
/// pod (name and uid), so that it is worthless once the pod is gone. The API server
/// lets a node ask exactly this for the pods bound to it.
pub fn request_for(pod: &Pod, key: &TokenKey) -> TokenRequest {
    let audiences = if key.audience.is_empty() {
        Vec::new()
    } else {
        vec![key.audience.clone()]
    };
    TokenRequest {
        spec: TokenRequestSpec {
            audiences,
            expiration_seconds: Some(key.expiration_seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".to_string()),
                kind: Some("Pod".to_string()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    }
}

/// The token the API server granted in `response`: issued at its expiry less the TTL
/// granted (kubelet's `iat`, on the server's clock), or at `requested_at` when the
/// answer gives no TTL.
pub fn granted(
    response: TokenRequest,
    requested_at: Timestamp,
) -> Result<ServiceAccountToken, String> {
    let status = response
        .status
        .filter(|s| !s.token.is_empty())
        .ok_or_else(|| "the API server answered without a token".to_string())?;
    let expires = status.expiration_timestamp.0;
    let ttl = response.spec.expiration_seconds;
    let issued = ttl
        .and_then(|s| expires.checked_sub(jiff::SignedDuration::from_secs(s)).ok())
        .unwrap_or(requested_at);
    Ok(ServiceAccountToken {
        token: status.token,
        issued,
        expires,
    })
}

/// Asks the API for the token `key` of `pod`; the server's message when refused.
async fn request(
    client: &kube::Client,
    pod: &Pod,
    key: &TokenKey,
) -> Result<ServiceAccountToken, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let spec = pod.spec.clone().unwrap_or_default();
    let account = tokens::service_account(&spec);
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let requested_at = Timestamp::now();
    let answer = api
        .create_token_request(account, &PostParams::default(), &request_for(pod, key))
        .await;
    match answer {
        Ok(response) => granted(response, requested_at),
        // Kubelet shows the server's message (`serviceaccounts "x" not found`).
        Err(kube::Error::Api(status)) if !status.message.is_empty() => Err(status.message),
        Err(e) => Err(e.to_string()),
    }
}

/// The tokens `pod` asks for at `now`: those of `previous` (what the pod had) that
/// need no refresh yet, new ones for the others; a failed request keeps a token still
/// valid and otherwise says why in kubelet's words ([`tokens::after_failure`]).
pub async fn read(
    client: &kube::Client,
    pod: &Pod,
    previous: &PodInputs,
    now: Timestamp,
) -> BTreeMap<TokenKey, Read<ServiceAccountToken>> {
    let Some(spec) = &pod.spec else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for key in tokens::keys(spec) {
        let held = previous.tokens.get(&key);
        if let Some(token) = tokens::reusable(held, now) {
            out.insert(key, Ok(token.clone()));
            continue;
        }
        let read = match request(client, pod, &key).await {
            Ok(token) => Ok(token),
            Err(why) => {
                tracing::warn!(
                    pod = %format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or("default"),
                        pod.metadata.name.as_deref().unwrap_or_default()),
                    token = %key,
                    "couldn't update token: {why}"
                );
                tokens::after_failure(held, &why, now)
            }
        };
        out.insert(key, read);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::TokenRequestStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1"},
            "spec": {"serviceAccountName": "robot", "containers": []}
        }))
        .unwrap()
    }

    #[test]
    fn the_request_is_bound_to_the_pod_with_its_audience_and_ttl() {
        let key = TokenKey {
            audience: String::new(),
            expiration_seconds: 3607,
        };
        let json = serde_json::to_value(request_for(&pod(), &key)).unwrap();
        assert_eq!(
            json["spec"],
            serde_json::json!({
                "audiences": [],
                "expirationSeconds": 3607,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "u-1"}
            })
        );
        let vault = TokenKey {
            audience: "vault".to_string(),
            expiration_seconds: 600,
        };
        let json = serde_json::to_value(request_for(&pod(), &vault)).unwrap();
        assert_eq!(json["spec"]["audiences"], serde_json::json!(["vault"]));
    }

    #[test]
    fn a_granted_token_is_issued_at_its_expiry_less_the_ttl_granted() {
        let expires = Timestamp::from_second(1_800_003_607).unwrap();
        let mut response = request_for(
            &pod(),
            &TokenKey {
                audience: String::new(),
                expiration_seconds: 3607,
            },
        );
        response.status = Some(TokenRequestStatus {
            token: "jwt".to_string(),
            expiration_timestamp: Time(expires),
        });
        let local = Timestamp::from_second(1_800_000_005).unwrap();
        let token = granted(response.clone(), local).unwrap();
        assert_eq!(token.token, "jwt");
        assert_eq!(token.expires, expires);
        assert_eq!(token.issued, Timestamp::from_second(1_800_000_000).unwrap());
        response.spec.expiration_seconds = None;
        assert_eq!(granted(response.clone(), local).unwrap().issued, local);
        response.status = None;
        assert!(granted(response, local).is_err());
    }
}

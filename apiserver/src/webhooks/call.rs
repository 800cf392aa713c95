//! One call of an admission webhook: the `AdmissionReview` request, the HTTPS POST
//! (the webhook's `caBundle`, its timeout), and the checks kube-apiserver makes of the
//! answer (`admission/plugin/webhook/request` and `.../mutating`, `.../validating`).
//!
//! A webhook is named by `url` or by `service` (namespace, name, path, port): a
//! Service is reached at one of its ready endpoints, its certificate checked for
//! `NAME.NAMESPACE.svc`, as kube-apiserver's endpoint routing does.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::admissionregistration::v1::WebhookClientConfig;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};

use super::matching::Hook;
use crate::registry::Registry;

/// The default and the longest wait for a webhook's answer (kube's).
pub const DEFAULT_TIMEOUT_SECONDS: i32 = 10;
const MAX_TIMEOUT_SECONDS: i32 = 30;
/// The largest answer read from a webhook.
const MAX_RESPONSE_BYTES: usize = 8 << 20;
/// The trust roots used for a webhook without a `caBundle` (Debian's bundle).
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Why a webhook could not be called or its answer not used (kube's
/// `ErrCallingWebhook`); the failure policy decides what it does to the request.
#[derive(Debug, thiserror::Error)]
#[error("failed calling webhook \"{webhook}\": {reason}")]
pub struct CallError {
    /// The webhook's name.
    pub webhook: String,
    /// What went wrong.
    pub reason: String,
}

/// A webhook's answer, checked.
#[derive(Debug, Default)]
pub struct Answer {
    /// Whether it allows the request.
    pub allowed: bool,
    /// Its `status` (why it refused).
    pub status: Option<Value>,
    /// A JSON patch (mutating webhooks), decoded from base64.
    pub patch: Option<Vec<u8>>,
    /// Warnings for the client.
    pub warnings: Vec<String>,
}

/// Where a webhook is reached.
struct Target {
    /// The URL as written in errors (`https://10.0.0.5:8443/validate?timeout=10s`).
    url: String,
    ip_or_host: String,
    port: u16,
    server_name: String,
    /// The `Host` header: the name, and the port when it is not 443.
    host: String,
    path_and_query: String,
}

/// Sends `review` (an `AdmissionReview` whose request has `uid`) to `hook` and
/// checks its answer.
pub async fn call(
    registry: &Registry,
    hook: &Hook<'_>,
    review: &Value,
    uid: &str,
) -> Result<Answer, CallError> {
    let fail = |reason: String| CallError {
        webhook: hook.name.to_string(),
        reason,
    };
    let seconds = hook
        .timeout_seconds
        .unwrap_or(DEFAULT_TIMEOUT_SECONDS)
        .clamp(1, MAX_TIMEOUT_SECONDS);
    let target = target(registry, hook.client, seconds).await.map_err(fail)?;
    let body = serde_json::to_vec(review).map_err(|e| fail(e.to_string()))?;
    let sent = tokio::time::timeout(
        Duration::from_secs(u64::try_from(seconds).unwrap_or(10)),
        post(hook.client, &target, body),
    )
    .await;
    let raw = match sent {
        Err(_) => Err("context deadline exceeded".to_string()),
        Ok(r) => r,
    }
    .map_err(|e| {
        fail(format!(
            "failed to call webhook: Post \"{}\": {e}",
            target.url
        ))
    })?;
    let (code, bytes) = raw;
    if !code.is_success() {
        return Err(fail(format!(
            "the server responded with the status code {} but did not return more information",
            code.as_u16()
        )));
    }
    let sent = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    answer(&bytes, sent, uid).map_err(fail)
}

/// kube's checks of an answer: an AdmissionReview of the version sent (`version`),
/// `response` present, the same `uid`.
fn answer(bytes: &[u8], version_sent: &str, uid: &str) -> Result<Answer, String> {
    let review: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("received invalid webhook response: {e}"))?;
    let kind = review
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let version = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind != "AdmissionReview" || version != version_sent {
        return Err(format!(
            "expected webhook response of {version_sent}, Kind=AdmissionReview, got {version}, Kind={kind}"
        ));
    }
    let Some(response) = review.get("response").filter(|r| r.is_object()) else {
        return Err("webhook response was absent".to_string());
    };
    let got = response
        .get("uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if got != uid {
        return Err(format!("expected response.uid={uid:?}, got {got:?}"));
    }
    let patch = match response.get("patch").and_then(Value::as_str) {
        None => None,
        Some(p) => {
            let kind = response.get("patchType").and_then(Value::as_str);
            if kind != Some("JSONPatch") {
                return Err(format!(
                    "expected patchType \"JSONPatch\", got {:?}",
                    kind.unwrap_or_default()
                ));
            }
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(p)
                    .map_err(|e| format!("the patch is not base64: {e}"))?,
            )
        }
    };
    Ok(Answer {
        allowed: response.get("allowed").and_then(Value::as_bool) == Some(true),
        status: response.get("status").cloned(),
        patch,
        warnings: response
            .get("warnings")
            .and_then(Value::as_array)
            .map(|w| {
                w.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Where `client` points: its `url`, or a ready endpoint of its `service`.
async fn target(
    registry: &Registry,
    client: &WebhookClientConfig,
    seconds: i32,
) -> Result<Target, String> {
    let timeout = format!("timeout={seconds}s");
    if let Some(url) = &client.url {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("the webhook URL {url:?} does not parse: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!("the webhook URL {url:?} is not https"));
        }
        let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
        let path = uri.path();
        let query = match uri.query() {
            Some(q) => format!("{q}&{timeout}"),
            None => timeout,
        };
        let port = uri.port_u16().unwrap_or(443);
        return Ok(Target {
            url: format!("https://{}{path}?{query}", authority(&uri)),
            ip_or_host: host.to_string(),
            port,
            server_name: host.to_string(),
            host: authority(&uri),
            path_and_query: format!("{path}?{query}"),
        });
    }
    let Some(svc) = &client.service else {
        return Err("the webhook names neither a url nor a service".to_string());
    };
    let port = svc.port.unwrap_or(443);
    let (ip, target_port) = endpoint(registry, &svc.namespace, &svc.name, port).await?;
    let path = svc.path.as_deref().unwrap_or("/");
    let server_name = format!("{}.{}.svc", svc.name, svc.namespace);
    let host = if port == 443 {
        server_name.clone()
    } else {
        format!("{server_name}:{port}")
    };
    Ok(Target {
        url: format!("https://{server_name}:{port}{path}?{timeout}"),
        ip_or_host: ip.to_string(),
        port: target_port,
        server_name,
        host,
        path_and_query: format!("{path}?{timeout}"),
    })
}

fn authority(uri: &http::Uri) -> String {
    uri.authority().map(ToString::to_string).unwrap_or_default()
}

/// A ready endpoint of the Service `ns/name` for its port `port`: the address and the
/// endpoint's port (the Service's `targetPort`, by number or by name).
async fn endpoint(
    registry: &Registry,
    ns: &str,
    name: &str,
    port: i32,
) -> Result<(IpAddr, u16), String> {
    let missing = || format!("service \"{name}\" not found");
    let find = async |kind: &str| {
        let kind = rk8s_api::object::kind_named(kind).ok_or_else(missing)?;
        registry
            .find_locally(&kind, Some(ns), name)
            .await
            .map_err(|e| e.message)
    };
    let Some(rk8s_api::AnyObject::Service(service)) = find("Service").await? else {
        return Err(missing());
    };
    let service: &Service = &service;
    let port_name = service
        .spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .find(|p| p.port == port)
        .map(|p| p.name.clone().unwrap_or_default())
        .ok_or_else(|| format!("service \"{name}\" has no port {port}"))?;
    let Some(rk8s_api::AnyObject::Endpoints(endpoints)) = find("Endpoints").await? else {
        return Err(format!("service \"{name}\" has no endpoints"));
    };
    let endpoints: &Endpoints = &endpoints;
    for subset in endpoints.subsets.iter().flatten() {
        let Some(ep_port) = subset
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.clone().unwrap_or_default() == port_name)
        else {
            continue;
        };
        let address = subset
            .addresses
            .iter()
            .flatten()
            .find_map(|a| a.ip.parse().ok());
        if let (Some(ip), Ok(port)) = (address, u16::try_from(ep_port.port)) {
            return Ok((ip, port));
        }
    }
    Err(format!("no endpoints available for service \"{name}\""))
}

/// The system's trust roots (read once).
fn system_roots() -> Result<String, String> {
    static ROOTS: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            std::fs::read_to_string(SYSTEM_ROOTS)
                .map_err(|e| format!("no caBundle, and the system roots {SYSTEM_ROOTS}: {e}"))
        })
        .clone()
}

/// The TLS client for `client`: its `caBundle`, or the system's roots.
fn tls(client: &WebhookClientConfig) -> Result<tokio_rustls::TlsConnector, String> {
    let pem = match &client.ca_bundle {
        Some(bundle) if !bundle.0.is_empty() => {
            String::from_utf8(bundle.0.clone()).map_err(|_| "caBundle is not PEM".to_string())?
        }
        _ => system_roots()?,
    };
    let mut config = (*rk8s_http::tls::client_config(&pem).map_err(|e| e.to_string())?).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )))
}

/// POSTs `body` to `target`: the status and the (bounded) answer.
async fn post(
    client: &WebhookClientConfig,
    target: &Target,
    body: Vec<u8>,
) -> Result<(StatusCode, Bytes), String> {
    let connector = tls(client)?;
    let host = target.ip_or_host.as_str();
    let tcp = tokio::net::TcpStream::connect((host, target.port))
        .await
        .map_err(|e| format!("dial tcp {host}:{}: {e}", target.port))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(target.server_name.clone())
        .map_err(|e| format!("{:?} is not a server name: {e}", target.server_name))?;
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("admission webhook connection: {e}");
        }
    });
    let request = Request::post(target.path_and_query.as_str())
        .header(header::HOST, target.host.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string());
    let result = match response {
        Ok(r) => {
            let code = r.status();
            Limited::new(r.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map(|b| (code, b.to_bytes()))
                .map_err(|e| format!("reading the answer: {e}"))
        }
        Err(e) => Err(e),
    };
    driver.abort();
    result
}

/// The `AdmissionReview` (in `version`, `admission.k8s.io/v1` or `v1beta1`) of a
/// request described by `request` (its fields, `uid` included).
pub fn review(version: &str, request: Value) -> Value {
    json!({
        "apiVersion": format!("admission.k8s.io/{version}"),
        "kind": "AdmissionReview",
        "request": request,
    })
}

/// The AdmissionReview version to send `hook`: the first it lists that is served
/// (`v1`, `v1beta1`).
pub fn review_version<'a>(hook: &Hook<'a>) -> Result<&'a str, CallError> {
    hook.review_versions
        .iter()
        .map(String::as_str)
        .find(|v| matches!(*v, "v1" | "v1beta1"))
        .ok_or_else(|| CallError {
            webhook: hook.name.to_string(),
            reason: format!(
                "webhook does not accept known AdmissionReview versions: {:?}",
                hook.review_versions
            ),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn reply(v: Value) -> Result<Answer, String> {
        answer(
            &serde_json::to_vec(&v).unwrap(),
            "admission.k8s.io/v1",
            "u1",
        )
    }

    #[test]
    fn an_answer_must_carry_the_request_uid() {
        let e = reply(
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": "other", "allowed": true}}),
        )
        .unwrap_err();
        assert_eq!(e, "expected response.uid=\"u1\", got \"other\"");
        let e = reply(json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}))
            .unwrap_err();
        assert_eq!(e, "webhook response was absent");
        let e = reply(json!({"apiVersion": "v1", "kind": "Status"})).unwrap_err();
        assert!(
            e.starts_with("expected webhook response of admission.k8s.io/v1"),
            "{e}"
        );
    }

    #[test]
    fn a_patch_is_base64_json_patch() {
        let patch = base64::engine::general_purpose::STANDARD.encode(b"[]");
        let ok = reply(
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": "u1", "allowed": true, "patch": patch, "patchType": "JSONPatch",
                "warnings": ["w"]}}),
        )
        .unwrap();
        assert!(ok.allowed);
        assert_eq!(ok.patch.as_deref(), Some(&b"[]"[..]));
        assert_eq!(ok.warnings, ["w"]);
        let e = reply(
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": "u1", "allowed": true, "patch": patch}}),
        )
        .unwrap_err();
        assert!(e.contains("patchType"), "{e}");
    }

    #[test]
    fn an_answer_without_allowed_refuses() {
        let a = reply(
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": "u1"}}),
        )
        .unwrap();
        assert!(!a.allowed);
    }
}

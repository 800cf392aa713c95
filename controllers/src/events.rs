//! Events for the decisions a user wants to see (`SuccessfulCreate`,
//! `ScalingReplicaSet`, …), written like kube-controller-manager writes them. Best
//! effort: a failure is logged, never retried.

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;

/// The object an event is about.
#[derive(Clone, Debug)]
pub struct Involved {
    api_version: String,
    kind: String,
    name: String,
    namespace: String,
    uid: Option<String>,
}

impl Involved {
    /// The object with `meta`, of `kind` in `api_version`.
    pub fn of(api_version: &str, kind: &str, meta: &ObjectMeta) -> Self {
        Involved {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
            uid: meta.uid.clone(),
        }
    }
}

/// The component events are from.
pub const COMPONENT: &str = "rk8s-controller-manager";

/// Records an event (`type_` Normal or Warning).
pub async fn record(
    client: &kube::Client,
    about: Involved,
    type_: &str,
    reason: &str,
    message: &str,
) {
    let now = jiff::Timestamp::now().to_string();
    let value = serde_json::json!({
        "metadata": {"generateName": format!("{}.", about.name), "namespace": about.namespace},
        "involvedObject": {"apiVersion": about.api_version, "kind": about.kind,
                           "name": about.name, "namespace": about.namespace, "uid": about.uid},
        "type": type_, "reason": reason, "message": message,
        "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    });
    let Ok(event) = serde_json::from_value::<Event>(value) else {
        return;
    };
    let events: Api<Event> = Api::namespaced(client.clone(), &about.namespace);
    let created = events.create(&PostParams::default(), &event).await;
    rk8s_supervision::wrote();
    if let Err(e) = created {
        tracing::debug!("event {reason} for {}/{}: {e}", about.namespace, about.name);
    }
}

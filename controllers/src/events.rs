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
    let from = Source {
        component: COMPONENT,
        host: None,
    };
    record_from(client, &from, &about, type_, reason, message).await;
}

/// Who reports an event (`kubelet` on a node names its host).
#[derive(Clone, Debug)]
pub struct Source<'a> {
    /// The component.
    pub component: &'a str,
    /// The node it runs on, if any.
    pub host: Option<&'a str>,
}

/// Records an event from `from`; returns its name (to count it again with
/// [`repeat`]), `None` when it could not be written (logged).
pub async fn record_from(
    client: &kube::Client,
    from: &Source<'_>,
    about: &Involved,
    type_: &str,
    reason: &str,
    message: &str,
) -> Option<String> {
    let now = jiff::Timestamp::now().to_string();
    let value = serde_json::json!({
        "metadata": {"generateName": format!("{}.", about.name), "namespace": about.namespace},
        "involvedObject": {"apiVersion": about.api_version, "kind": about.kind,
                           "name": about.name, "namespace": about.namespace, "uid": about.uid},
        "type": type_, "reason": reason, "message": message,
        "source": {"component": from.component, "host": from.host},
        "reportingComponent": from.component, "reportingInstance": from.host,
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    });
    let event = serde_json::from_value::<Event>(value).ok()?;
    let events: Api<Event> = Api::namespaced(client.clone(), &about.namespace);
    let created = events.create(&PostParams::default(), &event).await;
    rk8s_supervision::wrote();
    match created {
        Ok(e) => e.metadata.name,
        Err(e) => {
            tracing::debug!("event {reason} for {}/{}: {e}", about.namespace, about.name);
            None
        }
    }
}

/// Counts the event `name` in `namespace` once more (its `count` now `count`, its
/// `lastTimestamp` now), as Kubernetes' event correlator does for a repeated event.
pub async fn repeat(client: &kube::Client, namespace: &str, name: &str, count: i32) -> bool {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let patch =
        serde_json::json!({"count": count, "lastTimestamp": jiff::Timestamp::now().to_string()});
    let patched = events
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await;
    rk8s_supervision::wrote();
    patched.is_ok()
}

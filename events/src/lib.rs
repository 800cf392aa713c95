//! Events for the decisions a user wants to see (`SuccessfulCreate`,
//! `ScalingReplicaSet`, `FailedScheduling`, …), written like kube-controller-manager,
//! kube-scheduler and kubelet write them: through one event correlator per process
//! ([`correlator`], client-go's `EventCorrelator`), so a repeated event is one Event
//! whose `count` grows (`kubectl describe` shows "x5 over 2m") and many similar ones
//! are combined. Best effort: a failure is logged, never retried.

pub mod correlator;

use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

use correlator::{Correlator, Outcome, Report, Write};

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

/// The process's correlator (client-go has one per broadcaster; a process has one
/// here, shared by its controllers, its scheduler or its kubelet).
static CORRELATOR: LazyLock<Mutex<Correlator>> = LazyLock::new(Mutex::default);

/// The correlator, locked for a decision (never across an await).
fn correlator() -> MutexGuard<'static, Correlator> {
    CORRELATOR.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records an event from `from`: a new Event, or one more on the Event already
/// written for the same report (see [`correlator`]). Returns the name of the Event
/// written, `None` when it could not be written (logged) or when the report was
/// counted on a write of the same Event in flight (which writes it after).
pub async fn record_from(
    client: &kube::Client,
    from: &Source<'_>,
    about: &Involved,
    type_: &str,
    reason: &str,
    message: &str,
) -> Option<String> {
    let report = Report {
        component: from.component,
        host: from.host.unwrap_or_default(),
        api_version: &about.api_version,
        kind: &about.kind,
        namespace: &about.namespace,
        name: &about.name,
        uid: about.uid.as_deref().unwrap_or_default(),
        type_,
        reason,
        message,
    };
    let step = correlator().decide(&report, Instant::now())?;
    let mut pending = Pending {
        key: step.key,
        settled: false,
    };
    let events: Api<Event> = Api::namespaced(client.clone(), &about.namespace);
    let mut write = step.write;
    loop {
        let outcome = match &write {
            Write::Create {
                message,
                count,
                first,
            } => {
                let first = first.as_deref();
                let written = create(
                    &events,
                    from,
                    about,
                    (type_, reason, message),
                    *count,
                    first,
                );
                match written.await {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        tracing::debug!(
                            "event {reason} for {}/{}: {e}",
                            about.namespace,
                            about.name
                        );
                        Outcome::Failed
                    }
                }
            }
            Write::Patch {
                name,
                count,
                message,
            } => match count_on(&events, name, *count, message).await {
                Ok(outcome) => outcome,
                Err(kube::Error::Api(s)) if s.code == 404 => Outcome::Gone,
                Err(e) => {
                    tracing::debug!("event {reason} for {}/{}: {e}", about.namespace, about.name);
                    Outcome::Failed
                }
            },
        };
        let name = match &outcome {
            Outcome::Written { name, .. } => Some(name.clone()),
            Outcome::Gone | Outcome::Failed => None,
        };
        match correlator().settle(&pending.key, outcome, Instant::now()) {
            Some(next) => write = next,
            None => {
                pending.settled = true;
                return name;
            }
        }
    }
}

/// A write in flight: given up if its task ends before it settles (the actor that
/// recorded it was stopped), so that the next report writes instead of waiting.
struct Pending {
    key: String,
    settled: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.settled {
            correlator().abandon(&self.key);
        }
    }
}

/// Creates the Event for a report: (type, reason, message), its `count`, and its
/// `firstTimestamp` when it replaces one that was deleted.
async fn create(
    events: &Api<Event>,
    from: &Source<'_>,
    about: &Involved,
    (type_, reason, message): (&str, &str, &str),
    count: i32,
    first: Option<&str>,
) -> Result<Outcome, kube::Error> {
    let now = jiff::Timestamp::now().to_string();
    let value = serde_json::json!({
        "metadata": {"generateName": format!("{}.", about.name), "namespace": about.namespace},
        "involvedObject": {"apiVersion": about.api_version, "kind": about.kind,
                           "name": about.name, "namespace": about.namespace, "uid": about.uid},
        "type": type_, "reason": reason, "message": message,
        "source": {"component": from.component, "host": from.host},
        "reportingComponent": from.component, "reportingInstance": from.host,
        "firstTimestamp": first.unwrap_or(&now), "lastTimestamp": now, "count": count,
    });
    let event = serde_json::from_value::<Event>(value).map_err(kube::Error::SerdeError)?;
    let created = events.create(&PostParams::default(), &event).await;
    rk8s_supervision::wrote();
    let created = created?;
    Ok(Outcome::Written {
        name: created.metadata.name.unwrap_or_default(),
        first: created
            .first_timestamp
            .map(|t| t.0.to_string())
            .unwrap_or(now),
    })
}

/// Counts the Event `name` once more: its `count`, `message` and `lastTimestamp`.
async fn count_on(
    events: &Api<Event>,
    name: &str,
    count: i32,
    message: &str,
) -> Result<Outcome, kube::Error> {
    let patch = serde_json::json!({"count": count, "message": message,
                                   "lastTimestamp": jiff::Timestamp::now().to_string()});
    let patched = events
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    rk8s_supervision::wrote();
    let patched = patched?;
    Ok(Outcome::Written {
        name: name.to_string(),
        first: patched
            .first_timestamp
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
    })
}

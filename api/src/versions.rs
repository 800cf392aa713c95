//! Kinds served in more than one version, as kube-apiserver serves them: objects are
//! stored in one version and converted on their way in and out of the others.
//!
//! - `autoscaling/v1` HorizontalPodAutoscalers are stored as `autoscaling/v2` ones.
//!   v1 has one target, CPU utilization; what else a v2 object holds (its other
//!   metrics, its behavior, its conditions and current metrics) travels in v1 in the
//!   annotations kube-apiserver uses for it (`autoscaling.alpha.kubernetes.io/…`,
//!   here in v2's JSON), so an object read and written back in v1 loses nothing.
//! - `events.k8s.io/v1` Events are stored as core `v1` Events: one store seen
//!   through both APIs (`regarding` is `involvedObject`, `note` is `message`,
//!   `reportingController` is `reportingComponent`, the `deprecated*` fields the
//!   core ones), with the field selectors of events.k8s.io mapped onto the core ones.
//!
//! Each conversion goes through the typed objects of both versions, so a value that
//! does not fit one is an error naming the field.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::{v1 as autoscaling_v1, v2 as autoscaling_v2};
use k8s_openapi::api::core::v1::{Event as CoreEvent, EventSeries as CoreSeries};
use k8s_openapi::api::events::v1::{Event as EventsEvent, EventSeries};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::object::ObjectKind;

/// A kind served in a version other than the one it is stored in.
pub struct Alias {
    /// The kind as served (`autoscaling/v1` HorizontalPodAutoscaler).
    pub served: ObjectKind,
    /// The kind as stored (`autoscaling/v2` HorizontalPodAutoscaler).
    pub stored: ObjectKind,
    to_served: fn(Value) -> Result<Value, String>,
    from_served: fn(Value) -> Result<Value, String>,
    /// A body as the served version's typed form writes it again (what it keeps).
    reserialized: fn(&Value) -> Result<Value, String>,
    /// Field selector labels of the served version, and the stored ones they mean.
    field_labels: &'static [(&'static str, &'static str)],
}

impl std::fmt::Debug for Alias {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alias")
            .field("served", &self.served.api_version)
            .field("stored", &self.stored.api_version)
            .finish_non_exhaustive()
    }
}

impl Alias {
    /// A stored object (JSON) as the served version shows it.
    pub fn to_served(&self, stored: Value) -> Result<Value, String> {
        (self.to_served)(stored)
    }

    /// An object written in the served version (JSON) as it is stored.
    pub fn from_served(&self, served: Value) -> Result<Value, String> {
        (self.from_served)(served)
    }

    /// An applied configuration (server-side apply) written in the served version as
    /// the stored version's, holding only what it sets: the fields a conversion fills
    /// in by itself (a typed form's required fields at their zero value, such as a v1
    /// HPA's `maxReplicas: 0`) are left out where the configuration has nothing at
    /// their path, so that a partial configuration owns no field it does not name.
    pub fn applied(&self, served: Value) -> Result<Value, String> {
        let mut skeleton = serde_json::Map::new();
        for key in ["apiVersion", "kind", "metadata"] {
            if let Some(v) = served.get(key) {
                skeleton.insert(key.to_string(), v.clone());
            }
        }
        let stored = self.from_served(served.clone())?;
        // What the conversion makes of nothing but the object's names.
        let Ok(filled) = self.from_served(Value::Object(skeleton)) else {
            return Ok(stored);
        };
        let mut stored = stored;
        leave_out_filled(&mut stored, &filled, Some(&served));
        Ok(stored)
    }

    /// The fields of `body` (in the served version) that the served version does not
    /// have, by path (`spec.foo`): what `fieldValidation` warns of or refuses.
    pub fn unknown_fields(&self, body: &Value) -> Result<Vec<String>, String> {
        let known = (self.reserialized)(body)?;
        let mut unknown = Vec::new();
        crate::path::unknown_fields(body, &known, &crate::path::FieldPath::root(), &mut unknown);
        Ok(unknown.iter().map(|(path, _)| path.to_string()).collect())
    }

    /// A stored object's bytes as the served version's JSON.
    pub fn stored_bytes_to_served(&self, stored: &[u8]) -> Result<Vec<u8>, String> {
        let value: Value = serde_json::from_slice(stored).map_err(|e| e.to_string())?;
        serde_json::to_vec(&self.to_served(value)?).map_err(|e| e.to_string())
    }

    /// The stored version's field selector label for the served version's `label`
    /// (the same where the versions do not differ).
    pub fn field_label<'a>(&self, label: &'a str) -> &'a str {
        self.field_labels
            .iter()
            .find(|(served, _)| *served == label)
            .map_or(label, |(_, stored)| stored)
    }
}

/// Removes from `converted` what equals `filled` (the conversion of nothing) where
/// `input` has nothing at the same path: fields the conversion filled in, not ones the
/// input set.
fn leave_out_filled(converted: &mut Value, filled: &Value, input: Option<&Value>) {
    let (Value::Object(c), Value::Object(f)) = (converted, filled) else {
        return;
    };
    c.retain(|key, value| {
        let given = input.and_then(|i| i.get(key));
        let Some(default) = f.get(key) else {
            return true;
        };
        if given.is_none() && value == default {
            return false;
        }
        leave_out_filled(value, default, given);
        // An object left empty held only filled-in fields.
        given.is_some() || !value.as_object().is_some_and(serde_json::Map::is_empty)
    });
}

/// `body` decoded as `T` and written again.
fn reserialized<T: Serialize + DeserializeOwned>(body: &Value) -> Result<Value, String> {
    let typed = T::deserialize(body).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// Every kind served in a version other than its stored one.
pub fn aliases() -> &'static [Alias] {
    static ALIASES: std::sync::OnceLock<Vec<Alias>> = std::sync::OnceLock::new();
    ALIASES.get_or_init(|| {
        vec![
            Alias {
                served: ObjectKind::of::<autoscaling_v1::HorizontalPodAutoscaler>(),
                stored: ObjectKind::of::<autoscaling_v2::HorizontalPodAutoscaler>(),
                to_served: |v| typed(v, hpa_to_v1),
                from_served: |v| typed(v, hpa_from_v1),
                reserialized: reserialized::<autoscaling_v1::HorizontalPodAutoscaler>,
                field_labels: &[],
            },
            Alias {
                served: ObjectKind::of::<EventsEvent>(),
                stored: ObjectKind::of::<CoreEvent>(),
                to_served: |v| typed(v, event_to_events),
                from_served: |v| typed(v, event_from_events),
                reserialized: reserialized::<EventsEvent>,
                field_labels: EVENT_FIELD_LABELS,
            },
        ]
    })
}

/// The JSON schemas of the served versions' kinds (as [`crate::object::schemas`]
/// gives the stored ones'), for the OpenAPI documents.
pub fn schemas(generator: &mut schemars::SchemaGenerator) -> Vec<(ObjectKind, schemars::Schema)> {
    vec![
        (
            ObjectKind::of::<autoscaling_v1::HorizontalPodAutoscaler>(),
            generator.subschema_for::<autoscaling_v1::HorizontalPodAutoscaler>(),
        ),
        (
            ObjectKind::of::<EventsEvent>(),
            generator.subschema_for::<EventsEvent>(),
        ),
    ]
}

/// The alias serving `group/version` `plural`, if one does.
pub fn alias_for(group: &str, version: &str, plural: &str) -> Option<&'static Alias> {
    aliases().iter().find(|a| {
        a.served.group == group && a.served.version == version && a.served.plural == plural
    })
}

/// The alias serving `kind` in `api_version` (as a manifest names them), if one does.
pub fn alias_named(api_version: &str, kind: &str) -> Option<&'static Alias> {
    aliases()
        .iter()
        .find(|a| a.served.api_version == api_version && a.served.kind == kind)
}

/// The alias serving `kind`, if it is served by one.
pub fn alias_of(kind: &ObjectKind) -> Option<&'static Alias> {
    alias_for(kind.group, kind.version, kind.plural)
}

/// kube's field label conversion of events.k8s.io/v1 (`AddFieldLabelConversionsForEvent`).
const EVENT_FIELD_LABELS: &[(&str, &str)] = &[
    ("regarding.kind", "involvedObject.kind"),
    ("regarding.namespace", "involvedObject.namespace"),
    ("regarding.name", "involvedObject.name"),
    ("regarding.uid", "involvedObject.uid"),
    ("regarding.apiVersion", "involvedObject.apiVersion"),
    (
        "regarding.resourceVersion",
        "involvedObject.resourceVersion",
    ),
    ("regarding.fieldPath", "involvedObject.fieldPath"),
    ("reportingController", "reportingComponent"),
];

/// `convert` between the typed forms of two versions, `apiVersion` and `kind` set.
fn typed<A, B>(v: Value, convert: fn(A) -> Result<B, String>) -> Result<Value, String>
where
    A: DeserializeOwned,
    B: Serialize + k8s_openapi::Resource,
{
    let mut de = v;
    if let Value::Object(map) = &mut de {
        map.remove("apiVersion");
        map.remove("kind");
    }
    let a: A = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        format!("{path}: {}", e.into_inner())
    })?;
    let mut out = serde_json::to_value(convert(a)?).map_err(|e| e.to_string())?;
    if let Value::Object(map) = &mut out {
        map.insert("apiVersion".into(), Value::from(B::API_VERSION));
        map.insert("kind".into(), Value::from(B::KIND));
    }
    Ok(out)
}

fn event_to_events(e: CoreEvent) -> Result<EventsEvent, String> {
    Ok(EventsEvent {
        metadata: e.metadata,
        action: e.action,
        reason: e.reason,
        regarding: Some(e.involved_object),
        related: e.related,
        note: e.message,
        reporting_controller: e.reporting_component,
        reporting_instance: e.reporting_instance,
        type_: e.type_,
        event_time: e.event_time,
        series: e.series.and_then(|s| {
            Some(EventSeries {
                count: s.count.unwrap_or(0),
                last_observed_time: s.last_observed_time?,
            })
        }),
        deprecated_source: e.source,
        deprecated_first_timestamp: e.first_timestamp,
        deprecated_last_timestamp: e.last_timestamp,
        deprecated_count: e.count,
    })
}

fn event_from_events(e: EventsEvent) -> Result<CoreEvent, String> {
    Ok(CoreEvent {
        metadata: e.metadata,
        action: e.action,
        reason: e.reason,
        involved_object: e.regarding.unwrap_or_default(),
        related: e.related,
        message: e.note,
        reporting_component: e.reporting_controller,
        reporting_instance: e.reporting_instance,
        type_: e.type_,
        event_time: e.event_time,
        series: e.series.map(|s| CoreSeries {
            count: Some(s.count),
            last_observed_time: Some(s.last_observed_time),
        }),
        source: e.deprecated_source,
        first_timestamp: e.deprecated_first_timestamp,
        last_timestamp: e.deprecated_last_timestamp,
        count: e.deprecated_count,
    })
}

/// The annotations that carry in v1 what only v2 can say (kube's names).
pub const METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
/// v2's `spec.behavior`, in v1.
pub const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";
/// v2's `status.conditions`, in v1.
pub const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
/// v2's `status.currentMetrics`, in v1.
pub const CURRENT_METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";

/// Whether `m` is the one target v1 has: the average CPU utilization of the pods.
fn is_cpu_utilization(m: &autoscaling_v2::MetricSpec) -> bool {
    m.type_ == "Resource"
        && m.resource.as_ref().is_some_and(|r| {
            r.name == "cpu"
                && r.target.type_ == "Utilization"
                && r.target.average_utilization.is_some()
        })
}

fn hpa_to_v1(
    h: autoscaling_v2::HorizontalPodAutoscaler,
) -> Result<autoscaling_v1::HorizontalPodAutoscaler, String> {
    let mut metadata = h.metadata;
    let mut notes: BTreeMap<String, String> = BTreeMap::new();
    let spec = h.spec.unwrap_or_default();
    let metrics = spec.metrics.unwrap_or_default();
    let cpu = metrics.iter().position(is_cpu_utilization);
    let target = cpu.and_then(|i| metrics[i].resource.as_ref()?.target.average_utilization);
    let others: Vec<&autoscaling_v2::MetricSpec> = metrics
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != cpu)
        .map(|(_, m)| m)
        .collect();
    if !others.is_empty() {
        notes.insert(METRICS_ANNOTATION.into(), json(&others)?);
    }
    if let Some(b) = &spec.behavior {
        notes.insert(BEHAVIOR_ANNOTATION.into(), json(b)?);
    }
    let status = h.status.map(|s| {
        let current = s.current_metrics.clone().unwrap_or_default();
        let cpu_now = current.iter().find_map(|m| {
            let r = m.resource.as_ref().filter(|r| r.name == "cpu")?;
            r.current.average_utilization
        });
        (s, current, cpu_now)
    });
    if let Some((s, current, _)) = &status {
        if let Some(c) = s.conditions.as_ref().filter(|c| !c.is_empty()) {
            notes.insert(CONDITIONS_ANNOTATION.into(), json(c)?);
        }
        if !current.is_empty() {
            notes.insert(CURRENT_METRICS_ANNOTATION.into(), json(current)?);
        }
    }
    if !notes.is_empty() {
        metadata
            .annotations
            .get_or_insert_with(Default::default)
            .extend(notes);
    }
    let target_ref = spec.scale_target_ref;
    Ok(autoscaling_v1::HorizontalPodAutoscaler {
        metadata,
        spec: Some(autoscaling_v1::HorizontalPodAutoscalerSpec {
            max_replicas: spec.max_replicas,
            min_replicas: spec.min_replicas,
            scale_target_ref: autoscaling_v1::CrossVersionObjectReference {
                api_version: target_ref.api_version,
                kind: target_ref.kind,
                name: target_ref.name,
            },
            target_cpu_utilization_percentage: target,
        }),
        status: status.map(
            |(s, _, cpu_now)| autoscaling_v1::HorizontalPodAutoscalerStatus {
                current_cpu_utilization_percentage: cpu_now,
                current_replicas: s.current_replicas.unwrap_or(0),
                desired_replicas: s.desired_replicas,
                last_scale_time: s.last_scale_time,
                observed_generation: s.observed_generation,
            },
        ),
    })
}

fn hpa_from_v1(
    h: autoscaling_v1::HorizontalPodAutoscaler,
) -> Result<autoscaling_v2::HorizontalPodAutoscaler, String> {
    let mut metadata = h.metadata;
    let mut notes = metadata.annotations.take().unwrap_or_default();
    let others: Option<Vec<autoscaling_v2::MetricSpec>> =
        annotation(&mut notes, METRICS_ANNOTATION)?;
    let behavior = annotation(&mut notes, BEHAVIOR_ANNOTATION)?;
    let conditions = annotation(&mut notes, CONDITIONS_ANNOTATION)?;
    let mut current: Option<Vec<autoscaling_v2::MetricStatus>> =
        annotation(&mut notes, CURRENT_METRICS_ANNOTATION)?;
    metadata.annotations = (!notes.is_empty()).then_some(notes);
    let spec = h.spec.unwrap_or_default();
    let mut metrics: Vec<autoscaling_v2::MetricSpec> = Vec::new();
    if let Some(target) = spec.target_cpu_utilization_percentage {
        metrics.push(autoscaling_v2::MetricSpec {
            type_: "Resource".to_string(),
            resource: Some(autoscaling_v2::ResourceMetricSource {
                name: "cpu".to_string(),
                target: autoscaling_v2::MetricTarget {
                    type_: "Utilization".to_string(),
                    average_utilization: Some(target),
                    ..Default::default()
                },
            }),
            ..Default::default()
        });
    }
    metrics.extend(others.into_iter().flatten());
    // kube: v1's current CPU utilization is a current metric of v2's.
    let cpu_now = h
        .status
        .as_ref()
        .and_then(|s| s.current_cpu_utilization_percentage);
    if let (None, Some(utilization)) = (&current, cpu_now) {
        current = Some(vec![autoscaling_v2::MetricStatus {
            type_: "Resource".to_string(),
            resource: Some(autoscaling_v2::ResourceMetricStatus {
                name: "cpu".to_string(),
                current: autoscaling_v2::MetricValueStatus {
                    average_utilization: Some(utilization),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }]);
    }
    let target_ref = spec.scale_target_ref;
    Ok(autoscaling_v2::HorizontalPodAutoscaler {
        metadata,
        spec: Some(autoscaling_v2::HorizontalPodAutoscalerSpec {
            behavior,
            max_replicas: spec.max_replicas,
            metrics: (!metrics.is_empty()).then_some(metrics),
            min_replicas: spec.min_replicas,
            scale_target_ref: autoscaling_v2::CrossVersionObjectReference {
                api_version: target_ref.api_version,
                kind: target_ref.kind,
                name: target_ref.name,
            },
        }),
        status: h
            .status
            .map(|s| autoscaling_v2::HorizontalPodAutoscalerStatus {
                conditions,
                current_metrics: current,
                current_replicas: Some(s.current_replicas),
                desired_replicas: s.desired_replicas,
                last_scale_time: s.last_scale_time,
                observed_generation: s.observed_generation,
            }),
    })
}

/// The v2 value annotation `key` of `notes` holds, if it is there (taken out of them).
fn annotation<T: DeserializeOwned>(
    notes: &mut BTreeMap<String, String>,
    key: &str,
) -> Result<Option<T>, String> {
    notes
        .remove(key)
        .map(|text| {
            serde_json::from_str(&text)
                .map_err(|e| format!("metadata.annotations[{key}]: not what v2 holds there: {e}"))
        })
        .transpose()
}

/// `v` as JSON text (an annotation's value).
fn json<T: Serialize>(v: &T) -> Result<String, String> {
    serde_json::to_string(v).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;

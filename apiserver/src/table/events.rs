//! Events of both APIs, core `v1` and `events.k8s.io/v1`: kube-apiserver serves them
//! from one store (here, core Events; `rk8s_api::versions`) and prints them alike.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use serde_json::Value;

use super::format::since;
use super::{Column, col, wide};

/// `kubectl get events`: no name first, and the wide columns between the others.
pub(super) const EVENT: &[Column] = &[
    col("Last Seen", "string"),
    col("Type", "string"),
    col("Reason", "string"),
    col("Object", "string"),
    wide("Subobject", "string"),
    wide("Source", "string"),
    col("Message", "string"),
    wide("First Seen", "string"),
    wide("Count", "string"),
    Column {
        format: "name",
        ..wide("Name", "string")
    },
];

/// What the printer reads of an event, whichever API it came from.
struct Fields<'a> {
    meta: &'a ObjectMeta,
    first: Option<&'a Time>,
    last: Option<&'a Time>,
    event_time: Option<&'a MicroTime>,
    series: Option<(i32, Option<&'a MicroTime>)>,
    count: i32,
    type_: Option<&'a str>,
    reason: Option<&'a str>,
    object: Option<&'a ObjectReference>,
    source: Option<&'a EventSource>,
    reporting_controller: Option<&'a str>,
    reporting_instance: Option<&'a str>,
    message: Option<&'a str>,
}

fn micro_since(t: Option<&MicroTime>, now: Timestamp) -> String {
    t.map_or_else(|| "<unknown>".to_string(), |t| since(t.0, now))
}

fn first_non_empty<'a>(a: Option<&'a str>, b: Option<&'a str>) -> &'a str {
    a.filter(|s| !s.is_empty()).or(b).unwrap_or("")
}

/// A row as kube's `printEvent` writes it: the last time seen (the series' last
/// observation when there is one), the object as `kind/name`, the source as
/// `component, host`, and a count of at least one.
fn row(e: Fields<'_>, now: Timestamp) -> Vec<Value> {
    let first = match e.first {
        Some(t) => since(t.0, now),
        None => micro_since(e.event_time, now),
    };
    let mut last = e.last.map_or_else(|| first.clone(), |t| since(t.0, now));
    let mut count = e.count;
    if let Some((series_count, observed)) = e.series {
        last = micro_since(observed, now);
        count = series_count;
    } else if count == 0 {
        count = 1;
    }
    let object = e.object.cloned().unwrap_or_default();
    let kind = object.kind.unwrap_or_default().to_lowercase();
    let target = match object.name.filter(|n| !n.is_empty()) {
        Some(name) => format!("{kind}/{name}"),
        None => kind,
    };
    let source = e.source.cloned().unwrap_or_default();
    let component = first_non_empty(source.component.as_deref(), e.reporting_controller);
    let host = first_non_empty(source.host.as_deref(), e.reporting_instance);
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        last.into(),
        e.type_.unwrap_or_default().into(),
        e.reason.unwrap_or_default().into(),
        target.into(),
        object.field_path.unwrap_or_default().into(),
        source.into(),
        e.message.unwrap_or_default().trim().into(),
        first.into(),
        count.into(),
        e.meta.name.clone().unwrap_or_default().into(),
    ]
}

pub(super) fn event(e: &Event, now: Timestamp) -> Vec<Value> {
    row(
        Fields {
            meta: &e.metadata,
            first: e.first_timestamp.as_ref(),
            last: e.last_timestamp.as_ref(),
            event_time: e.event_time.as_ref(),
            series: e
                .series
                .as_ref()
                .map(|s| (s.count.unwrap_or(0), s.last_observed_time.as_ref())),
            count: e.count.unwrap_or(0),
            type_: e.type_.as_deref(),
            reason: e.reason.as_deref(),
            object: Some(&e.involved_object),
            source: e.source.as_ref(),
            reporting_controller: e.reporting_component.as_deref(),
            reporting_instance: e.reporting_instance.as_deref(),
            message: e.message.as_deref(),
        },
        now,
    )
}

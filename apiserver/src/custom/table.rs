//! `kubectl get` of custom objects: the Name column, then the CRD version's
//! `additionalPrinterColumns` (Age when it names none), as kube-apiserver prints them
//! ([`rk8s_api::crd::columns`]).

use rk8s_api::{AnyObject, ObjectKind};
use serde_json::{Value, json};

use super::CustomKinds;

/// The `Table` of custom `objects` of `kind`, or `None` if no CRD serves the kind.
pub fn table(
    kinds: &CustomKinds,
    kind: &ObjectKind,
    objects: &[AnyObject],
    resource_version: &str,
    continue_token: Option<&str>,
    include_object: Option<&str>,
) -> Option<Value> {
    let columns = kinds.with_version(kind, |v| v.columns.clone())??;
    let defs = columns.definitions();
    let dates: Vec<bool> = defs.iter().map(|c| c.type_ == "date").collect();
    let definitions = serde_json::to_value(defs).unwrap_or(Value::Null);
    let now = jiff::Timestamp::now();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let value = o.to_value();
            let mut cells = columns.cells(&value);
            // Date cells read as ages (`5m`), as apiextensions' `cellForJSONValue`
            // renders them (`ConvertToHumanReadableDateType`).
            for (cell, _) in cells.iter_mut().zip(&dates).filter(|(_, d)| **d) {
                if let Some(t) = cell
                    .as_str()
                    .and_then(|s| s.parse::<jiff::Timestamp>().ok())
                {
                    *cell = json!(crate::table::human_duration(
                        now.as_second() - t.as_second()
                    ));
                }
            }
            let object = match include_object {
                Some("None") => Value::Null,
                Some("Object") => value,
                _ => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": serde_json::to_value(o.metadata()).unwrap_or(Value::Null),
                }),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    let mut metadata = json!({"resourceVersion": resource_version});
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    Some(json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": definitions,
        "rows": rows,
    }))
}

/// A `Table` of `objects` of `kind`: a custom kind's printer columns, or the built-in
/// kind's columns.
pub fn any_table(
    kinds: &CustomKinds,
    kind: &ObjectKind,
    objects: &[AnyObject],
    resource_version: &str,
    continue_token: Option<&str>,
    include_object: Option<&str>,
) -> Value {
    let custom = kind.custom.then(|| {
        table(
            kinds,
            kind,
            objects,
            resource_version,
            continue_token,
            include_object,
        )
    });
    custom.flatten().unwrap_or_else(|| {
        crate::table::table(
            kind,
            objects,
            resource_version,
            continue_token,
            include_object,
        )
    })
}

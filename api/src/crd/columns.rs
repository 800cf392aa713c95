//! `additionalPrinterColumns`: the columns of the Table kube-apiserver returns for custom
//! objects (`kubectl get crontabs`), as apiextensions-apiserver's `tableconvertor` builds
//! them: `Name` first, then the version's columns, or `Age` when it has none.
//!
//! Each cell is the first value the column's JSONPath selects, typed by the column:
//! `integer` and `number` cells are numbers, `boolean` a boolean, `string` the value as
//! text, `date` an RFC 3339 timestamp (or `<invalid>`), and a missing or mistyped
//! value is `null` (printed empty).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinitionVersion,
};
use serde::Serialize;
use serde_json::{Value, json};

use super::Result;
use super::jsonpath::JsonPath;

/// Kubernetes' description of `metadata.name` (the `Name` column).
const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

/// Kubernetes' description of `metadata.creationTimestamp` (the default `Age` column).
const AGE_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// A column of a Table (`meta.k8s.io/v1` `TableColumnDefinition`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Column {
    /// The header (`Replicas`).
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    #[serde(rename = "type")]
    pub type_: String,
    /// An OpenAPI format hint (`name` for the Name column).
    pub format: String,
    /// What the column shows.
    pub description: String,
    /// 0 for columns shown by default; higher ones appear with `-o wide`.
    pub priority: i32,
}

/// The columns of one CRD version, their JSONPaths parsed once.
#[derive(Clone, Debug)]
pub struct Columns {
    columns: Vec<(Column, Option<JsonPath>)>,
}

impl Columns {
    /// The columns of `version`: `Name`, then its `additionalPrinterColumns` (or `Age`).
    /// Fails when a column's JSONPath does not parse.
    pub fn new(version: &CustomResourceDefinitionVersion) -> Result<Self> {
        let mut columns = vec![(
            Column {
                name: "Name".to_string(),
                type_: "string".to_string(),
                format: "name".to_string(),
                description: NAME_DESCRIPTION.to_string(),
                priority: 0,
            },
            None,
        )];
        let age = [CustomResourceColumnDefinition {
            name: "Age".to_string(),
            type_: "date".to_string(),
            description: Some(AGE_DESCRIPTION.to_string()),
            json_path: ".metadata.creationTimestamp".to_string(),
            ..CustomResourceColumnDefinition::default()
        }];
        let given = version.additional_printer_columns.as_deref().unwrap_or(&[]);
        let defs = if given.is_empty() { &age[..] } else { given };
        for def in defs {
            let description = def.description.clone().unwrap_or_else(|| {
                format!(
                    "Custom resource definition column (in JSONPath format): {}",
                    def.json_path
                )
            });
            columns.push((
                Column {
                    name: def.name.clone(),
                    type_: def.type_.clone(),
                    format: def.format.clone().unwrap_or_default(),
                    description,
                    priority: def.priority.unwrap_or(0),
                },
                Some(JsonPath::parse(&def.json_path)?),
            ));
        }
        Ok(Self { columns })
    }

    /// The column definitions, in order.
    pub fn definitions(&self) -> Vec<Column> {
        self.columns.iter().map(|(c, _)| c.clone()).collect()
    }

    /// The cells of `obj`'s row, one per column.
    pub fn cells(&self, obj: &Value) -> Vec<Value> {
        self.columns
            .iter()
            .map(|(column, path)| match path {
                None => obj
                    .pointer("/metadata/name")
                    .cloned()
                    .unwrap_or(Value::Null),
                Some(path) => match path.find(obj).first() {
                    Some(v) => cell(&column.type_, v),
                    None => Value::Null,
                },
            })
            .collect()
    }
}

/// A cell from the value a column's path selected (apiextensions `cellForJSONValue`).
pub fn cell(type_: &str, value: &Value) -> Value {
    match (type_, value) {
        (_, Value::Null) => Value::Null,
        ("integer", Value::Number(n)) => match n.as_i64() {
            Some(i) => json!(i),
            None => n.as_f64().map_or(Value::Null, |f| json!(f.trunc() as i64)),
        },
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, |f| json!(f)),
        ("boolean", Value::Bool(b)) => json!(b),
        ("string", Value::String(s)) => json!(s),
        // A string column prints whatever it finds, as kubectl's JSONPath printer does.
        ("string", other) => json!(other.to_string()),
        ("date", Value::String(s)) if is_rfc3339(s) => json!(s),
        ("date", Value::String(_)) => json!("<invalid>"),
        _ => Value::Null,
    }
}

/// `2006-01-02T15:04:05Z`, with optional fraction and a `Z` or `±hh:mm` offset.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let fixed = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !fixed {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::fixtures::crontab_crd;

    fn version(name: &str) -> CustomResourceDefinitionVersion {
        crontab_crd()
            .spec
            .versions
            .into_iter()
            .find(|v| v.name == name)
            .unwrap()
    }

    fn crontab() -> Value {
        json!({
            "apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": "nightly", "creationTimestamp": "2026-01-02T03:04:05Z"},
            "spec": {"cronSpec": "0 0 * * *", "replicas": 2},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        })
    }

    #[test]
    fn columns_start_with_name_and_follow_the_crd() {
        let columns = Columns::new(&version("v1")).unwrap();
        let names: Vec<String> = columns.definitions().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["Name", "Spec", "Replicas", "Ready", "Age"]);
        assert_eq!(
            columns.cells(&crontab()),
            [
                json!("nightly"),
                json!("0 0 * * *"),
                json!(2),
                json!("True"),
                json!("2026-01-02T03:04:05Z")
            ]
        );
    }

    #[test]
    fn a_version_without_columns_shows_name_and_age() {
        let columns = Columns::new(&version("v1beta1")).unwrap();
        let defs = columns.definitions();
        assert_eq!(defs.len(), 2);
        assert_eq!(defs[1].name, "Age");
        assert_eq!(defs[1].type_, "date");
        assert_eq!(
            columns.cells(&crontab()),
            [json!("nightly"), json!("2026-01-02T03:04:05Z")]
        );
    }

    #[test]
    fn missing_values_are_null_cells() {
        let columns = Columns::new(&version("v1")).unwrap();
        let cells = columns.cells(&json!({"metadata": {"name": "bare"}}));
        assert_eq!(
            cells,
            [
                json!("bare"),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null
            ]
        );
    }

    #[test]
    fn cells_follow_the_column_type() {
        assert_eq!(cell("integer", &json!(2.7)), json!(2));
        assert_eq!(cell("number", &json!(2)), json!(2.0));
        assert_eq!(cell("boolean", &json!(true)), json!(true));
        assert_eq!(cell("boolean", &json!("yes")), Value::Null);
        assert_eq!(cell("string", &json!(5)), json!("5"));
        assert_eq!(cell("date", &json!("yesterday")), json!("<invalid>"));
        assert_eq!(
            cell("date", &json!("2026-01-02T03:04:05.5+01:00")),
            json!("2026-01-02T03:04:05.5+01:00")
        );
    }

    #[test]
    fn a_column_without_description_describes_its_path() {
        let columns = Columns::new(&version("v1")).unwrap();
        assert_eq!(
            columns.definitions()[2].description,
            "Custom resource definition column (in JSONPath format): .spec.replicas"
        );
    }

    #[test]
    fn a_malformed_json_path_is_an_error() {
        let mut v = version("v1");
        v.additional_printer_columns.as_mut().unwrap()[0].json_path = ".spec[".into();
        assert!(Columns::new(&v).is_err());
    }
}

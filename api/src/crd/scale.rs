//! The scale subresource of custom resources: replicas read from and written to the
//! paths the CRD names (`specReplicasPath: .spec.replicas`,
//! `statusReplicasPath: .status.replicas`, `labelSelectorPath: .status.selector`), as
//! apiextensions-apiserver's `registry/customresource` scale storage does (a missing
//! value reads as absent; a value of the wrong type is an error).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceSubresourceScale;
use serde_json::{Map, Value};

use super::jsonpath::JsonPath;
use super::{Error, Result};

/// The scale paths of one CRD version, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalePaths {
    spec_replicas: Path,
    status_replicas: Path,
    label_selector: Option<Path>,
}

#[derive(Clone, Debug, PartialEq)]
struct Path {
    text: String,
    fields: Vec<String>,
}

impl Path {
    fn parse(text: &str) -> Result<Self> {
        let fields = JsonPath::parse(text)?
            .fields()
            .map(|f| f.into_iter().map(str::to_string).collect::<Vec<_>>())
            .filter(|f| !f.is_empty())
            .ok_or_else(|| Error::InvalidJsonPath {
                expression: text.to_string(),
                reason: "must be a json path in the dot notation".to_string(),
            })?;
        Ok(Self {
            text: text.to_string(),
            fields,
        })
    }

    fn get<'a>(&self, obj: &'a Value) -> Result<Option<&'a Value>> {
        let mut v = obj;
        for (i, f) in self.fields.iter().enumerate() {
            match v {
                Value::Object(m) => match m.get(f) {
                    Some(next) => v = next,
                    None => return Ok(None),
                },
                Value::Null => return Ok(None),
                other => return Err(self.mistyped(&self.fields[..i].join("."), other, "map")),
            }
        }
        Ok(Some(v).filter(|v| !v.is_null()))
    }

    fn set(&self, obj: &mut Value, value: Value) -> Result<()> {
        let mut v = obj;
        let (last, parents) = self
            .fields
            .split_last()
            .ok_or_else(|| self.error("empty path".to_string()))?;
        for (i, f) in parents.iter().enumerate() {
            if v.is_null() {
                *v = Value::Object(Map::new());
            }
            let Value::Object(m) = v else {
                return Err(self.mistyped(&self.fields[..i].join("."), v, "map"));
            };
            v = m.entry(f.clone()).or_insert(Value::Null);
        }
        if v.is_null() {
            *v = Value::Object(Map::new());
        }
        match v {
            Value::Object(m) => {
                m.insert(last.clone(), value);
                Ok(())
            }
            other => Err(self.mistyped(&parents.join("."), other, "map")),
        }
    }

    fn error(&self, reason: String) -> Error {
        Error::Scale {
            path: self.text.clone(),
            reason,
        }
    }

    fn mistyped(&self, at: &str, v: &Value, expected: &str) -> Error {
        let kind = match v {
            Value::Bool(_) => "bool",
            Value::Number(n) if n.is_f64() => "float64",
            Value::Number(_) => "int64",
            Value::String(_) => "string",
            Value::Array(_) => "[]interface {}",
            Value::Object(_) => "map[string]interface {}",
            Value::Null => "nil",
        };
        let at = if at.is_empty() {
            String::new()
        } else {
            format!(".{at}")
        };
        self.error(format!(
            "accessor error: {at} is of the type {kind}, expected {expected}",
        ))
    }

    fn int(&self, obj: &Value) -> Result<Option<i32>> {
        match self.get(obj)? {
            None => Ok(None),
            Some(Value::Number(n)) => {
                let i = n
                    .as_i64()
                    .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                    .ok_or_else(|| self.error(format!("{n} is not an integer")))?;
                i32::try_from(i)
                    .map(Some)
                    .map_err(|_| self.error(format!("{i} is out of range")))
            }
            Some(other) => Err(self.mistyped(&self.fields.join("."), other, "int64")),
        }
    }
}

impl ScalePaths {
    /// Parses the paths of a version's scale subresource.
    pub fn new(scale: &CustomResourceSubresourceScale) -> Result<Self> {
        Ok(Self {
            spec_replicas: Path::parse(&scale.spec_replicas_path)?,
            status_replicas: Path::parse(&scale.status_replicas_path)?,
            label_selector: scale
                .label_selector_path
                .as_deref()
                .filter(|p| !p.is_empty())
                .map(Path::parse)
                .transpose()?,
        })
    }

    /// The desired replicas (`spec.replicas` of the Scale), absent when unset.
    pub fn spec_replicas(&self, obj: &Value) -> Result<Option<i32>> {
        self.spec_replicas.int(obj)
    }

    /// Writes the desired replicas, creating the objects on the way.
    pub fn set_spec_replicas(&self, obj: &mut Value, replicas: i32) -> Result<()> {
        self.spec_replicas.set(obj, Value::from(replicas))
    }

    /// The observed replicas (`status.replicas` of the Scale), absent when unset.
    pub fn status_replicas(&self, obj: &Value) -> Result<Option<i32>> {
        self.status_replicas.int(obj)
    }

    /// Writes the observed replicas (by the CRD's controller, through `/status`).
    pub fn set_status_replicas(&self, obj: &mut Value, replicas: i32) -> Result<()> {
        self.status_replicas.set(obj, Value::from(replicas))
    }

    /// The label selector in its string form (`status.selector` of the Scale), absent
    /// when the CRD names no path or the object has none there.
    pub fn label_selector(&self, obj: &Value) -> Result<Option<String>> {
        let Some(path) = &self.label_selector else {
            return Ok(None);
        };
        match path.get(obj)? {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(path.mistyped(&path.fields.join("."), other, "string")),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn paths() -> ScalePaths {
        ScalePaths::new(&CustomResourceSubresourceScale {
            spec_replicas_path: ".spec.replicas".into(),
            status_replicas_path: ".status.replicas".into(),
            label_selector_path: Some(".status.labelSelector".into()),
        })
        .unwrap()
    }

    #[test]
    fn replicas_and_selector_are_read_from_their_paths() {
        let obj = json!({"spec": {"replicas": 3},
            "status": {"replicas": 2, "labelSelector": "app=web"}});
        let p = paths();
        assert_eq!(p.spec_replicas(&obj).unwrap(), Some(3));
        assert_eq!(p.status_replicas(&obj).unwrap(), Some(2));
        assert_eq!(p.label_selector(&obj).unwrap().as_deref(), Some("app=web"));
    }

    #[test]
    fn missing_values_read_as_absent() {
        let p = paths();
        let obj = json!({"spec": {}});
        assert_eq!(p.spec_replicas(&obj).unwrap(), None);
        assert_eq!(p.status_replicas(&obj).unwrap(), None);
        assert_eq!(p.label_selector(&obj).unwrap(), None);
    }

    #[test]
    fn writing_replicas_creates_missing_objects() {
        let p = paths();
        let mut obj = json!({"metadata": {"name": "x"}});
        p.set_spec_replicas(&mut obj, 5).unwrap();
        p.set_status_replicas(&mut obj, 1).unwrap();
        assert_eq!(obj["spec"]["replicas"], 5);
        assert_eq!(obj["status"]["replicas"], 1);
    }

    #[test]
    fn a_value_of_the_wrong_type_is_an_error_naming_the_path() {
        let p = paths();
        let err = p
            .spec_replicas(&json!({"spec": {"replicas": "three"}}))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            ".spec.replicas: accessor error: .spec.replicas is of the type string, expected int64"
        );
        assert!(p.set_spec_replicas(&mut json!({"spec": 1}), 2).is_err());
    }

    #[test]
    fn paths_must_be_plain_field_chains() {
        let bad = CustomResourceSubresourceScale {
            spec_replicas_path: ".spec.items[0]".into(),
            status_replicas_path: ".status.replicas".into(),
            label_selector_path: None,
        };
        assert!(ScalePaths::new(&bad).is_err());
    }
}

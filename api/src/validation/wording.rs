//! Field errors in kube-apiserver's words (`field.Error.Error()`): `spec.replicas:
//! Invalid value: -1: must be greater than or equal to 0`, as API responses carry them.
//! (The `Display` form is rk8sctl's, for messages about files.)

use serde_json::Value;

use super::{FieldError, Reason};

impl FieldError {
    /// The error as kube-apiserver words it, field first.
    pub fn kubernetes_message(&self) -> String {
        let body = self.kubernetes_message_without_field();
        if self.path.is_root() {
            body
        } else {
            format!("{}: {body}", self.path)
        }
    }

    /// The error as kube-apiserver words it, without the field (a `Status` cause's
    /// message: the field is beside it).
    pub fn kubernetes_message_without_field(&self) -> String {
        match &self.reason {
            Reason::Required => "Required value".to_string(),
            Reason::Duplicate(v) => format!("Duplicate value: {}", quote(v)),
            Reason::Invalid { value, detail } => {
                format!("Invalid value: {}: {detail}", quote(value))
            }
            Reason::NotSupported { value, supported } => {
                let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
                format!(
                    "Unsupported value: {}: supported values: {}",
                    quote(value),
                    list.join(", ")
                )
            }
            Reason::Forbidden(detail) => format!("Forbidden: {detail}"),
            Reason::Message(m) => m.clone(),
        }
    }
}

/// A value as Go's `%#v` shows it in these messages: numbers and booleans bare,
/// anything else quoted. Values are held as text: the string `"20"` prints as `20`.
fn quote(value: &str) -> String {
    match serde_json::from_str::<Value>(value) {
        Ok(Value::Number(_) | Value::Bool(_)) => value.to_string(),
        _ => format!("\"{value}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FieldPath;

    #[test]
    fn errors_read_as_kube_apiserver_words_them() {
        let e = FieldError {
            path: FieldPath::root().key("spec").key("replicas"),
            reason: Reason::Invalid {
                value: "20".into(),
                detail: "must be less than or equal to 10".into(),
            },
        };
        assert_eq!(
            e.kubernetes_message(),
            "spec.replicas: Invalid value: 20: must be less than or equal to 10"
        );
        let e = FieldError {
            path: FieldPath::root().key("spec").key("size"),
            reason: Reason::NotSupported {
                value: "huge".into(),
                supported: vec!["small".into(), "large".into()],
            },
        };
        assert_eq!(
            e.kubernetes_message_without_field(),
            "Unsupported value: \"huge\": supported values: \"small\", \"large\""
        );
    }
}

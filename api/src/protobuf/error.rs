//! What can go wrong reading or writing Kubernetes protobuf, with the field it went
//! wrong at.

/// An encoding or decoding error. `path` names the field, as `spec.containers[0].ports`
/// (empty at the top level).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The body does not start with `k8s\0`.
    #[error(
        "the body is not Kubernetes protobuf: it does not start with the magic bytes \"k8s\\x00\""
    )]
    MissingMagic,
    /// No schema is known for the kind (a custom resource, say).
    #[error("no protobuf schema for kind {kind:?} in {api_version:?}")]
    UnknownKind {
        /// The object's `apiVersion`.
        api_version: String,
        /// The object's `kind`.
        kind: String,
    },
    /// The input ends inside a value, or a length runs past it.
    #[error("{}: the message is truncated", Self::at(path))]
    Truncated {
        /// Where.
        path: String,
    },
    /// A varint longer than ten bytes.
    #[error("{}: a varint is longer than ten bytes", Self::at(path))]
    BadVarint {
        /// Where.
        path: String,
    },
    /// A field arrived with a wire type its schema does not allow.
    #[error(
        "{}: wire type {found} where the schema expects {expected}",
        Self::at(path)
    )]
    WireType {
        /// Where.
        path: String,
        /// The wire type the schema expects.
        expected: u8,
        /// The wire type received.
        found: u8,
    },
    /// Wire types 3, 4, 6 and 7 (groups, or garbage).
    #[error("{}: unsupported wire type {wire_type}", Self::at(path))]
    UnsupportedWireType {
        /// Where.
        path: String,
        /// The wire type received.
        wire_type: u8,
    },
    /// Messages nested deeper than [`super::MAX_DEPTH`].
    #[error("{}: nested deeper than {} messages", Self::at(path), super::MAX_DEPTH)]
    TooDeep {
        /// Where.
        path: String,
    },
    /// A value that does not fit its field: text that is not UTF-8, a JSON value of
    /// the wrong type, a time that is not RFC 3339, a number out of range.
    #[error("{}: {message}", Self::at(path))]
    InvalidValue {
        /// Where.
        path: String,
        /// What was wrong.
        message: String,
    },
}

impl Error {
    fn at(path: &str) -> &str {
        if path.is_empty() { "<root>" } else { path }
    }

    /// An [`Error::InvalidValue`] at the current field.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidValue {
            path: String::new(),
            message: message.into(),
        }
    }

    /// The same error, one field further out: `segment` is a field name or `[i]`.
    pub(crate) fn within(mut self, segment: &str) -> Self {
        match &mut self {
            Error::Truncated { path }
            | Error::BadVarint { path }
            | Error::WireType { path, .. }
            | Error::UnsupportedWireType { path, .. }
            | Error::TooDeep { path }
            | Error::InvalidValue { path, .. } => {
                if segment.is_empty() {
                } else if path.is_empty() {
                    *path = segment.to_string();
                } else if path.starts_with('[') {
                    path.insert_str(0, segment);
                } else {
                    path.insert(0, '.');
                    path.insert_str(0, segment);
                }
            }
            Error::MissingMagic | Error::UnknownKind { .. } => {}
        }
        self
    }

    /// As [`Error::within`], for the `i`th item of a list.
    pub(crate) fn at_index(self, i: usize) -> Self {
        self.within(&format!("[{i}]"))
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_built_from_the_inside_out() {
        let e = Error::invalid("\"x\" is not a quantity")
            .within("cpu")
            .within("limits")
            .within("resources")
            .at_index(0)
            .within("containers")
            .within("spec");
        assert_eq!(
            e.to_string(),
            "spec.containers[0].resources.limits.cpu: \"x\" is not a quantity"
        );
        assert_eq!(
            Error::Truncated {
                path: String::new()
            }
            .to_string(),
            "<root>: the message is truncated"
        );
    }
}

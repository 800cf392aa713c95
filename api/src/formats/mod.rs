//! rk8s's own file formats, besides Kubernetes manifests: the original single-container
//! file and the Compose subset of `rk8sctl compose`.

pub mod compose;
pub mod container;

use serde::de::DeserializeOwned;

use crate::manifest::Diagnostic;
use crate::path::FieldPath;
use crate::validation::{FieldError, Reason};
use crate::yaml::{self, Positions};

pub use compose::{ComposeFile, decode_compose};
pub use container::{ContainerSpec, decode_container};

/// A field error as a diagnostic located in `file`.
pub(crate) fn diagnostic(file: &str, positions: &Positions, e: &FieldError) -> Diagnostic {
    Diagnostic {
        file: file.to_string(),
        location: positions.locate(&e.path),
        field: Some(e.path.clone()),
        message: e.to_string(),
    }
}

/// Decodes a file that holds exactly one YAML/JSON document into `T`; every error
/// names the file, line, column and field.
pub fn decode_single<T: DeserializeOwned>(
    file: &str,
    text: &str,
) -> Result<(T, Positions), Vec<Diagnostic>> {
    let one = |location, message: String| {
        vec![Diagnostic {
            file: file.to_string(),
            location,
            field: None,
            message,
        }]
    };
    let docs = yaml::parse_documents(text).map_err(|e| one(Some(e.location), e.message))?;
    let mut docs = docs.into_iter().filter(|d| !d.value.is_null());
    let Some(doc) = docs.next() else {
        return Err(one(None, "the file is empty".into()));
    };
    if let Some(extra) = docs.next() {
        return Err(one(
            Some(extra.start),
            "expected one document, found several".into(),
        ));
    }
    match serde_path_to_error::deserialize::<_, T>(doc.value) {
        Ok(v) => Ok((v, doc.positions)),
        Err(e) => {
            let err = FieldError {
                path: FieldPath::from(e.path()),
                reason: Reason::Message(e.inner().to_string()),
            };
            Err(vec![diagnostic(file, &doc.positions, &err)])
        }
    }
}

/// What kind of file a text is, judged by its first document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// Kubernetes manifests (documents with `kind`).
    Manifests,
    /// A Compose file (`services`, no `kind`).
    Compose,
    /// An rk8s single-container file (`image`, no `kind`).
    Container,
}

/// Guesses the format of a text; malformed or unrecognised text counts as manifests,
/// whose decoder then reports what is wrong.
pub fn detect(text: &str) -> FileFormat {
    let Ok(docs) = yaml::parse_documents(text) else {
        return FileFormat::Manifests;
    };
    let first = docs.into_iter().find(|d| !d.value.is_null());
    match first.as_ref().and_then(|d| d.value.as_object()) {
        Some(m) if m.contains_key("kind") => FileFormat::Manifests,
        Some(m) if m.contains_key("services") => FileFormat::Compose,
        Some(m) if m.contains_key("image") => FileFormat::Container,
        _ => FileFormat::Manifests,
    }
}

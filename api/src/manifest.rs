//! Manifests: YAML or JSON text (several documents, `kind: List`) decoded into
//! objects, with every problem reported at its file, line, column and field.
//!
//! ```
//! use rk8s_api::manifest;
//!
//! let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: web, image: busybox, resources: {limits: {cpu: 5OOm}}}\n";
//! let errors = manifest::load("pod.yaml", text).unwrap_err();
//! assert_eq!(
//!     errors[0].to_string(),
//!     "pod.yaml:6:54: spec.containers[0].resources.limits.cpu: \"5OOm\" is not a quantity"
//! );
//! ```

use std::cell::RefCell;
use std::fmt;

use serde_json::Value;

use crate::defaults::apply_defaults;
use crate::object::{AnyObject, ObjectKind, kind_for, kind_named, kinds};
use crate::path::{FieldPath, unknown_fields};
use crate::validation::{self, FieldError, Reason};
use crate::versions::Alias;
use crate::yaml::{self, Location, Positions};

/// A problem in a manifest, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name as the user gave it (`-` or `<stdin>` for standard input).
    pub file: String,
    /// Line and column, when known.
    pub location: Option<Location>,
    /// The field, when the problem is in one.
    pub field: Option<FieldPath>,
    /// What is wrong (including the field path, as Kubernetes prints it).
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(l) => write!(f, "{}:{}:{}: {}", self.file, l.line, l.column, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// One decoded object and where it came from.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The file it was read from.
    pub file: String,
    /// Its document number in the file, from 1.
    pub document: usize,
    /// The object.
    pub object: AnyObject,
    positions: Positions,
}

impl Manifest {
    /// Where a field of this object is in its file.
    pub fn locate(&self, path: &FieldPath) -> Option<Location> {
        self.positions.locate(path)
    }

    /// A validation error as a diagnostic pointing into the file.
    pub fn diagnostic(&self, err: &FieldError) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            location: self.locate(&err.path),
            field: Some(err.path.clone()),
            message: err.to_string(),
        }
    }

    /// Validates the object (as it is now: call [`apply_defaults`] first to validate
    /// what the API server would store).
    /// The diagnostics come in the order of the file.
    pub fn validate(&self) -> Vec<Diagnostic> {
        let mut diags: Vec<Diagnostic> = validation::validate(&self.object)
            .iter()
            .map(|e| self.diagnostic(e))
            .collect();
        diags.sort_by_key(|d| d.location);
        diags
    }
}

/// A document of a kind rk8s does not know (a custom kind, or one that no server
/// serves), kept as it was written for a client to resolve through the API server's
/// discovery; see [`decode_with_untyped`].
#[derive(Clone, Debug)]
pub struct Untyped {
    /// The file it was read from.
    pub file: String,
    /// Its document number in the file, from 1.
    pub document: usize,
    /// Its `apiVersion` (`stable.example.com/v1`).
    pub api_version: String,
    /// Its `kind` (`CronTab`).
    pub kind: String,
    /// The object as written.
    pub value: Value,
    positions: Positions,
}

impl Untyped {
    /// Where a field of this object is in its file.
    pub fn locate(&self, path: &FieldPath) -> Option<Location> {
        self.positions.locate(path)
    }

    /// Where the object starts in its file (its `kind`, else its first field).
    pub fn location(&self) -> Option<Location> {
        self.locate(&FieldPath::root().key("kind"))
    }

    /// `metadata.name`, empty if the document has none.
    pub fn name(&self) -> &str {
        self.value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// `metadata.namespace`, empty if the document has none.
    pub fn namespace(&self) -> &str {
        self.value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// What [`decode_with_untyped`] found in a text.
#[derive(Clone, Debug, Default)]
pub struct Decoded {
    /// The objects of known kinds that decoded.
    pub manifests: Vec<Manifest>,
    /// The documents of kinds rk8s does not know.
    pub untyped: Vec<Untyped>,
    /// The problems in the rest, as [`decode`] reports them.
    pub diagnostics: Vec<Diagnostic>,
}

/// Decodes every document of a YAML or JSON text into objects.
///
/// Returns the objects that decoded and a diagnostic for each problem in the rest:
/// malformed YAML, a missing or unknown `kind`, a wrong `apiVersion`, a field of the
/// wrong type, or an unknown field (as kubectl's strict field validation reports).
pub fn decode(file: &str, text: &str) -> (Vec<Manifest>, Vec<Diagnostic>) {
    decode_into(file, text, None)
}

/// Like [`decode`], but a document whose `apiVersion` and `kind` name no kind rk8s
/// knows comes back as an [`Untyped`] value instead of a diagnostic, for a client to
/// look up in the cluster (custom kinds). That is a document with an `apiVersion`
/// whose kind is unknown, or whose group is not one of rk8s's (`example.com/v1`
/// `Job`); a wrong version of a built-in kind (`apps/v1beta1` `Deployment`) stays a
/// diagnostic. Objects of known kinds decode as [`decode`] decodes them.
///
/// ```
/// use rk8s_api::manifest;
///
/// let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: b}\n";
/// let decoded = manifest::decode_with_untyped("f.yaml", text);
/// assert_eq!(decoded.manifests.len(), 1);
/// assert_eq!(decoded.untyped[0].kind, "CronTab");
/// assert_eq!(decoded.untyped[0].document, 2);
/// assert!(decoded.diagnostics.is_empty());
/// ```
pub fn decode_with_untyped(file: &str, text: &str) -> Decoded {
    let untyped = RefCell::new(Vec::new());
    let (manifests, diagnostics) = decode_into(file, text, Some(&untyped));
    Decoded {
        manifests,
        untyped: untyped.into_inner(),
        diagnostics,
    }
}

/// [`decode`], handing documents of unknown kinds to `untyped` when it is given.
fn decode_into(
    file: &str,
    text: &str,
    untyped: Option<&RefCell<Vec<Untyped>>>,
) -> (Vec<Manifest>, Vec<Diagnostic>) {
    let mut out = Vec::new();
    let mut diags = Vec::new();
    let docs = match yaml::parse_documents(text) {
        Ok(docs) => docs,
        Err(e) => {
            diags.push(Diagnostic {
                file: file.to_string(),
                location: Some(e.location),
                field: None,
                message: e.message,
            });
            return (out, diags);
        }
    };
    for (i, doc) in docs.into_iter().enumerate() {
        if doc.value.is_null() {
            continue;
        }
        let ctx = Context {
            file,
            document: i + 1,
            untyped,
        };
        match ctx.decode_value(doc.value, doc.positions) {
            Ok(mut objects) => out.append(&mut objects),
            Err(mut d) => diags.append(&mut d),
        }
    }
    (out, diags)
}

/// Decodes, defaults and validates: the objects if everything is valid, otherwise every
/// problem found.
pub fn load(file: &str, text: &str) -> Result<Vec<Manifest>, Vec<Diagnostic>> {
    let (mut manifests, mut diags) = decode(file, text);
    for m in &mut manifests {
        apply_defaults(&mut m.object);
        diags.extend(m.validate());
    }
    if diags.is_empty() {
        Ok(manifests)
    } else {
        Err(diags)
    }
}

struct Context<'a> {
    file: &'a str,
    document: usize,
    /// Where documents of unknown kinds go, when they are not errors.
    untyped: Option<&'a RefCell<Vec<Untyped>>>,
}

impl Context<'_> {
    fn diag(&self, positions: &Positions, path: FieldPath, reason: Reason) -> Diagnostic {
        let err = FieldError { path, reason };
        Diagnostic {
            file: self.file.to_string(),
            location: positions.locate(&err.path),
            message: err.to_string(),
            field: Some(err.path),
        }
    }

    fn decode_value(
        &self,
        value: Value,
        positions: Positions,
    ) -> Result<Vec<Manifest>, Vec<Diagnostic>> {
        let root = FieldPath::root();
        let Value::Object(map) = &value else {
            let what = match value {
                Value::Array(_) => "a list",
                Value::String(_) => "a string",
                _ => "a scalar",
            };
            return Err(vec![self.diag(
                &positions,
                root,
                Reason::Message(format!(
                    "document {} is {what}, not an object with apiVersion and kind",
                    self.document
                )),
            )]);
        };
        let kind = match map.get("kind") {
            Some(Value::String(k)) if !k.is_empty() => k.clone(),
            Some(Value::String(_)) | None => {
                let hint = if map.contains_key("services") {
                    " (this looks like a Compose file: use `rk8sctl compose`)"
                } else if map.contains_key("image") {
                    " (this looks like a single-container file: use `rk8sctl container run`)"
                } else {
                    ""
                };
                return Err(vec![self.diag(
                    &positions,
                    root.key("kind"),
                    Reason::Message(format!("required value{hint}")),
                )]);
            }
            Some(other) => {
                return Err(vec![self.diag(
                    &positions,
                    root.key("kind"),
                    Reason::Invalid {
                        value: other.to_string(),
                        detail: "must be a string".into(),
                    },
                )]);
            }
        };
        if kind == "List" {
            return self.decode_list(value, &positions);
        }
        let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        if let Some(untyped) = self.untyped
            && is_foreign(api_version, &kind)
        {
            untyped.borrow_mut().push(Untyped {
                file: self.file.to_string(),
                document: self.document,
                api_version: api_version.to_string(),
                kind,
                value,
                positions,
            });
            return Ok(Vec::new());
        }
        if let Some(alias) = crate::versions::alias_named(api_version, &kind) {
            return self.decode_served(alias, value, positions).map(|m| vec![m]);
        }
        let Some(object_kind) = kind_for(api_version, &kind).or_else(|| kind_named(&kind)) else {
            // kubectl's words for a kind no API serves; a custom kind is served once
            // its CustomResourceDefinition is.
            return Err(vec![self.diag(
                &positions,
                root.key("kind"),
                Reason::Message(format!(
                    "no matches for kind \"{kind}\" in version \"{api_version}\": not a built-in kind (a custom resource's kind needs its CustomResourceDefinition)"
                )),
            )]);
        };
        if api_version != object_kind.api_version {
            let reason = if api_version.is_empty() {
                Reason::Message(format!(
                    "required value (kind {kind} is served as apiVersion \"{}\")",
                    object_kind.api_version
                ))
            } else {
                Reason::NotSupported {
                    value: api_version.to_string(),
                    supported: vec![object_kind.api_version.to_string()],
                }
            };
            return Err(vec![self.diag(&positions, root.key("apiVersion"), reason)]);
        }
        self.decode_object(&object_kind, value, positions)
            .map(|m| vec![m])
    }

    fn decode_list(
        &self,
        value: Value,
        positions: &Positions,
    ) -> Result<Vec<Manifest>, Vec<Diagnostic>> {
        let items = match value {
            Value::Object(mut m) => m.remove("items"),
            _ => None,
        };
        let items = match items {
            Some(Value::Array(items)) => items,
            None | Some(Value::Null) => Vec::new(),
            Some(_) => {
                return Err(vec![self.diag(
                    positions,
                    FieldPath::root().key("items"),
                    Reason::Message("must be a list of objects".into()),
                )]);
            }
        };
        let mut out = Vec::new();
        let mut diags = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let sub = positions.subtree(&FieldPath::root().key("items").index(i));
            match self.decode_value(item, sub) {
                Ok(mut m) => out.append(&mut m),
                Err(mut d) => diags.append(&mut d),
            }
        }
        if diags.is_empty() {
            Ok(out)
        } else {
            Err(diags)
        }
    }

    /// An object of a version served by conversion (`autoscaling/v1`), as it is
    /// stored: its fields that the conversion does not carry are unknown fields.
    fn decode_served(
        &self,
        alias: &Alias,
        value: Value,
        positions: Positions,
    ) -> Result<Manifest, Vec<Diagnostic>> {
        let message =
            |e: String| vec![self.diag(&positions, FieldPath::root(), Reason::Message(e))];
        let stored = alias.from_served(value.clone()).map_err(message)?;
        let again = alias.to_served(stored.clone()).map_err(message)?;
        self.unknown_fields(&value, &again, &positions)?;
        self.decode_object(&alias.stored, stored, positions)
    }

    /// An error for each field of `input` that `decoded` (what was made of it) lost.
    fn unknown_fields(
        &self,
        input: &Value,
        decoded: &Value,
        positions: &Positions,
    ) -> Result<(), Vec<Diagnostic>> {
        let mut unknown = Vec::new();
        unknown_fields(input, decoded, &FieldPath::root(), &mut unknown);
        if unknown.is_empty() {
            return Ok(());
        }
        Err(unknown
            .into_iter()
            .map(|(path, name)| {
                self.diag(
                    positions,
                    path,
                    Reason::Message(format!("unknown field \"{name}\"")),
                )
            })
            .collect())
    }

    fn decode_object(
        &self,
        kind: &ObjectKind,
        value: Value,
        positions: Positions,
    ) -> Result<Manifest, Vec<Diagnostic>> {
        let decoded = AnyObject::from_value(kind, value.clone()).ok_or_else(|| {
            vec![self.diag(
                &positions,
                FieldPath::root().key("kind"),
                Reason::Message(format!("kind {} cannot be decoded", kind.kind)),
            )]
        })?;
        let object = decoded.map_err(|e| {
            let path = FieldPath::from(e.path());
            vec![self.diag(&positions, path, Reason::Message(e.inner().to_string()))]
        })?;
        self.unknown_fields(&value, &object.to_value(), &positions)?;
        Ok(Manifest {
            file: self.file.to_string(),
            document: self.document,
            object,
            positions,
        })
    }
}

/// Whether `apiVersion` and `kind` name a kind rk8s does not know, rather than a
/// mistake in one it does: an unknown kind, or a known kind name in a group that is
/// not rk8s's (custom kinds may reuse built-in names).
fn is_foreign(api_version: &str, kind: &str) -> bool {
    if api_version.is_empty()
        || kind_for(api_version, kind).is_some()
        || crate::versions::alias_named(api_version, kind).is_some()
    {
        return false;
    }
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    kind_named(kind).is_none() || !kinds().iter().any(|k| k.group == group)
}

/// Encodes objects as a YAML stream (one document per object).
pub fn to_yaml(objects: &[AnyObject]) -> String {
    let mut out = String::new();
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        crate::emit::write_yaml(&mut out, &o.to_value());
    }
    out
}

#[cfg(test)]
mod untyped_tests {
    use super::*;

    #[test]
    fn unknown_kinds_come_back_untyped_with_their_document_and_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: example.com/v1\nkind: Foo\nmetadata: {name: x}\n---\nkind: List\napiVersion: v1\nitems:\n- {apiVersion: example.com/v1, kind: Job, metadata: {name: j}}\n";
        let d = decode_with_untyped("f.yaml", text);
        assert_eq!(d.manifests.len(), 1);
        assert!(d.diagnostics.is_empty(), "{:?}", d.diagnostics);
        let found: Vec<(usize, &str, &str, &str)> = d
            .untyped
            .iter()
            .map(|u| {
                (
                    u.document,
                    u.api_version.as_str(),
                    u.kind.as_str(),
                    u.name(),
                )
            })
            .collect();
        assert_eq!(
            found,
            vec![
                (2, "example.com/v1", "Foo", "x"),
                (3, "example.com/v1", "Job", "j")
            ]
        );
        assert_eq!(d.untyped[0].location().map(|l| l.line), Some(6));
    }

    #[test]
    fn mistakes_in_known_kinds_stay_diagnostics() {
        let text = "apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: a}\n---\nkind: Foo\nmetadata: {name: b}\n";
        let d = decode_with_untyped("f.yaml", text);
        assert!(d.untyped.is_empty());
        assert_eq!(d.diagnostics.len(), 2, "{:?}", d.diagnostics);
        // `decode` itself still reports unknown kinds.
        let (_, diags) = decode("f.yaml", "apiVersion: example.com/v1\nkind: Foo\n");
        assert!(diags[0].message.contains("no matches for kind \"Foo\""));
    }
}

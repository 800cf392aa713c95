//! Field paths such as `spec.containers[1].resources.limits.cpu`, as Kubernetes prints them.

use std::fmt;

use serde_json::Value;

/// One step of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// A named field or a map key (`spec`, `cpu`, `app.kubernetes.io/name`).
    Key(String),
    /// A position in a list (`[1]`).
    Index(usize),
}

/// A path from the root of an object to one of its fields.
///
/// Displayed the way Kubernetes reports validation errors: fields joined by `.`, list
/// positions in brackets, and map keys that are not plain words in brackets
/// (`metadata.labels[app.kubernetes.io/name]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// The empty path: the object itself.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// Parses a dotted path such as `spec.containers[0].name` (used in tests and by the
    /// CLI; keys holding dots must use the bracket form).
    pub fn parse(s: &str) -> Self {
        let mut path = Self::root();
        let mut word = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            match c {
                '.' | '[' => {
                    if !word.is_empty() {
                        path.0.push(Segment::Key(std::mem::take(&mut word)));
                    }
                    if c == '[' {
                        let inner: String = chars.by_ref().take_while(|&c| c != ']').collect();
                        path.0.push(match inner.parse() {
                            Ok(i) => Segment::Index(i),
                            Err(_) => Segment::Key(inner),
                        });
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            path.0.push(Segment::Key(word));
        }
        path
    }

    /// This path extended by a field or map key.
    #[must_use]
    pub fn key(&self, name: impl Into<String>) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Key(name.into()));
        p
    }

    /// This path extended by a list index.
    #[must_use]
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Index(i));
        p
    }

    /// This path followed by `other`.
    #[must_use]
    pub fn join(&self, other: &FieldPath) -> Self {
        let mut p = self.clone();
        p.0.extend(other.0.iter().cloned());
        p
    }

    /// The path's segments, from the root.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// Whether this is the root path.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

fn is_plain_word(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("<root>");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) if is_plain_word(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Segment::Key(k) => write!(f, "[{k}]")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

impl From<&serde_path_to_error::Path> for FieldPath {
    fn from(p: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment as S;
        let mut path = FieldPath::root();
        for seg in p.iter() {
            match seg {
                S::Seq { index } => path.0.push(Segment::Index(*index)),
                S::Map { key } => path.0.push(Segment::Key(key.clone())),
                S::Enum { variant } => path.0.push(Segment::Key(variant.clone())),
                S::Unknown => {}
            }
        }
        path
    }
}

/// Finds the fields of `input` that did not survive decoding into a typed object (and
/// so are not fields of that kind). Nulls are skipped: they mean "unset".
pub fn unknown_fields(
    input: &Value,
    decoded: &Value,
    path: &FieldPath,
    out: &mut Vec<(FieldPath, String)>,
) {
    match (input, decoded) {
        (Value::Object(i), Value::Object(d)) => {
            for (k, v) in i {
                if v.is_null() {
                    continue;
                }
                match d.get(k) {
                    Some(dv) => unknown_fields(v, dv, &path.key(k.clone()), out),
                    None => out.push((path.key(k.clone()), k.clone())),
                }
            }
        }
        (Value::Array(i), Value::Array(d)) => {
            for (n, (iv, dv)) in i.iter().zip(d).enumerate() {
                unknown_fields(iv, dv, &path.index(n), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_kubernetes() {
        let p = FieldPath::root()
            .key("spec")
            .key("containers")
            .index(1)
            .key("name");
        assert_eq!(p.to_string(), "spec.containers[1].name");
        let p = FieldPath::root()
            .key("metadata")
            .key("labels")
            .key("app.kubernetes.io/name");
        assert_eq!(p.to_string(), "metadata.labels[app.kubernetes.io/name]");
    }

    #[test]
    fn parse_is_the_inverse_of_display() {
        for s in [
            "spec.containers[1].name",
            "metadata.labels[app.kubernetes.io/name]",
            "spec.template.spec.containers[0].resources.limits.cpu",
        ] {
            assert_eq!(FieldPath::parse(s).to_string(), s);
        }
    }
}

//! Field sets: which fields of an object a manager owns, in the `FieldsV1` format
//! Kubernetes stores in `metadata.managedFields[].fieldsV1`.
//!
//! The shape is structured-merge-diff's `fieldpath.Set`: a set holds *members* (paths
//! that end here) and *children* (sets one path element deeper). In `FieldsV1`, each
//! key names one path element (`f:<field>`, `k:<key fields as JSON>`, `v:<value as
//! JSON>`, `i:<index>`), an empty object marks a member, and `"."` marks a member that
//! also has children (a list item whose fields are owned too).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

/// Why a `FieldsV1` value could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldSetError {
    /// Not a JSON object where one was expected.
    #[error("fieldsV1: expected an object at {at:?}")]
    NotAnObject {
        /// The path element whose value was not an object (empty at the root).
        at: String,
    },
    /// A key that is none of `f:`, `k:`, `v:`, `i:` or `.`, or whose JSON is bad.
    #[error("fieldsV1: unknown path element {0:?}")]
    BadElement(String),
}

/// One step of a path into an object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Element {
    /// A field of a map: `f:name`.
    Field(String),
    /// An item of an associative list, by its key fields: the canonical JSON object
    /// of those fields, names sorted (`{"name":"web"}`).
    Key(String),
    /// An item of a set list, by its canonical JSON value.
    Value(String),
    /// An item of a list by position (never written for the lists rk8s knows).
    Index(usize),
}

impl Element {
    /// The `FieldsV1` key of this element.
    pub fn to_key(&self) -> String {
        match self {
            Element::Field(name) => format!("f:{name}"),
            Element::Key(json) => format!("k:{json}"),
            Element::Value(json) => format!("v:{json}"),
            Element::Index(i) => format!("i:{i}"),
        }
    }

    /// Reads a `FieldsV1` key.
    pub fn from_key(key: &str) -> Result<Self, FieldSetError> {
        let bad = || FieldSetError::BadElement(key.to_string());
        let (kind, rest) = key.split_at_checked(2).ok_or_else(bad)?;
        match kind {
            "f:" => Ok(Element::Field(rest.to_string())),
            "k:" => match serde_json::from_str::<Value>(rest) {
                Ok(Value::Object(fields)) => Ok(Element::Key(canonical_key(
                    fields.iter().map(|(k, v)| (k.as_str(), v)),
                ))),
                _ => Err(bad()),
            },
            "v:" => serde_json::from_str::<Value>(rest)
                .map(|v| Element::Value(canonical(&v)))
                .map_err(|_| bad()),
            "i:" => rest.parse().map(Element::Index).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

/// structured-merge-diff's `PathElement.String()`: `.name`, `[name="web"]`,
/// `[="value"]`, `[0]`.
impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Element::Field(name) => write!(f, ".{name}"),
            Element::Key(json) => {
                let fields: Map<String, Value> = serde_json::from_str(json).unwrap_or_default();
                let mut names: Vec<&String> = fields.keys().collect();
                names.sort();
                f.write_str("[")?;
                for (n, name) in names.into_iter().enumerate() {
                    if n > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{name}={}", fields[name])?;
                }
                f.write_str("]")
            }
            Element::Value(json) => write!(f, "[={json}]"),
            Element::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path from the object root, written as structured-merge-diff writes it
/// (`.spec.template.spec.containers[name="web"].image`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Path(pub Vec<Element>);

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|e| write!(f, "{e}"))
    }
}

/// JSON text that is the same for equal values: object keys sorted, no spaces.
pub(crate) fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(fields) => {
            let mut names: Vec<&String> = fields.keys().collect();
            names.sort();
            out.push('{');
            for (n, name) in names.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(name.clone()).to_string());
                out.push(':');
                write_canonical(&fields[name], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The canonical JSON of an associative list item's key fields.
pub(crate) fn canonical_key<'a>(fields: impl Iterator<Item = (&'a str, &'a Value)>) -> String {
    let mut fields: Vec<(&str, &Value)> = fields.collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::from("{");
    for (n, (name, value)) in fields.into_iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(name.to_string()).to_string());
        out.push(':');
        write_canonical(value, &mut out);
    }
    out.push('}');
    out
}

/// A set of paths into an object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    /// Paths that end at this level.
    pub members: BTreeSet<Element>,
    /// Paths that go deeper, by their next element; never empty sets.
    pub children: BTreeMap<Element, FieldSet>,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the set holds no path.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// Reads a `FieldsV1` value.
    pub fn from_fields_v1(v: &Value) -> Result<Self, FieldSetError> {
        Self::parse(v, "").map(|(_, set)| set)
    }

    /// Parses one level: whether it holds `"."`, and its set.
    fn parse(v: &Value, at: &str) -> Result<(bool, Self), FieldSetError> {
        let Value::Object(fields) = v else {
            return Err(FieldSetError::NotAnObject { at: at.to_string() });
        };
        let mut set = FieldSet::new();
        let mut dot = false;
        for (key, sub) in fields {
            if key == "." {
                dot = true;
                continue;
            }
            let element = Element::from_key(key)?;
            let (member, child) = Self::parse(sub, key)?;
            if member || child.is_empty() {
                set.members.insert(element.clone());
            }
            if !child.is_empty() {
                set.children.insert(element, child);
            }
        }
        Ok((dot, set))
    }

    /// The `FieldsV1` value of this set.
    pub fn to_fields_v1(&self) -> Value {
        let mut out = Map::new();
        for m in &self.members {
            if !self.children.contains_key(m) {
                out.insert(m.to_key(), Value::Object(Map::new()));
            }
        }
        for (e, child) in &self.children {
            let mut v = child.to_fields_v1();
            if self.members.contains(e)
                && let Value::Object(fields) = &mut v
            {
                fields.insert(".".to_string(), Value::Object(Map::new()));
            }
            out.insert(e.to_key(), v);
        }
        Value::Object(out)
    }

    /// Adds a path.
    pub fn insert(&mut self, path: &[Element]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether the set holds this path.
    pub fn has(&self, path: &[Element]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// Whether the set holds `e` or any path through it.
    pub fn touches(&self, e: &Element) -> bool {
        self.members.contains(e) || self.children.contains_key(e)
    }

    /// Adds `e` as a member with `children` below it.
    pub(crate) fn put(&mut self, e: Element, member: bool, children: FieldSet) {
        if member {
            self.members.insert(e.clone());
        }
        if !children.is_empty() {
            self.children.entry(e).or_default().union_with(&children);
        }
    }

    /// The paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.union_with(other);
        out
    }

    /// Adds every path of `other`.
    pub fn union_with(&mut self, other: &FieldSet) {
        self.members.extend(other.members.iter().cloned());
        for (e, child) in &other.children {
            match self.children.get_mut(e) {
                Some(mine) => mine.union_with(child),
                None => {
                    self.children.insert(e.clone(), child.clone());
                }
            }
        }
    }

    /// The paths in this set and not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(e, child)| {
                let rest = match other.children.get(e) {
                    Some(theirs) => child.difference(theirs),
                    None => child.clone(),
                };
                (!rest.is_empty()).then(|| (e.clone(), rest))
            })
            .collect();
        FieldSet { members, children }
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(e, child)| {
                let both = child.intersection(other.children.get(e)?);
                (!both.is_empty()).then(|| (e.clone(), both))
            })
            .collect();
        FieldSet { members, children }
    }

    /// Every path of the set, in structured-merge-diff's order (`Set.Iterate`: the
    /// members of a level, then the levels below).
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<Element>, out: &mut Vec<Path>) {
        for m in &self.members {
            prefix.push(m.clone());
            out.push(Path(prefix.clone()));
            prefix.pop();
        }
        for (e, child) in &self.children {
            prefix.push(e.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(v: Value) -> FieldSet {
        FieldSet::from_fields_v1(&v).unwrap()
    }

    #[test]
    fn fields_v1_round_trips_with_dots_for_owned_items() {
        let v = json!({"f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}}}},
            "f:finalizers": {"v:\"a\"": {}}});
        let s = set(v.clone());
        assert!(s.has(&[
            Element::Field("spec".into()),
            Element::Field("containers".into()),
            Element::Key(r#"{"name":"web"}"#.into())
        ]));
        assert_eq!(s.to_fields_v1(), v);
    }

    #[test]
    fn key_elements_are_canonical_whatever_the_input_order() {
        let a = Element::from_key(r#"k:{"protocol":"TCP","containerPort":80}"#).unwrap();
        let b = Element::from_key(r#"k:{"containerPort": 80, "protocol": "TCP"}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), r#"[containerPort=80,protocol="TCP"]"#);
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(FieldSet::from_fields_v1(&json!({"x:y": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"k:{": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!([])).is_err());
    }

    #[test]
    fn union_difference_and_intersection_work_level_by_level() {
        let a = set(json!({"f:spec": {"f:replicas": {}, "f:paused": {}}}));
        let b = set(json!({"f:spec": {"f:replicas": {}}, "f:data": {}}));
        assert_eq!(
            a.union(&b),
            set(json!({"f:spec": {"f:replicas": {}, "f:paused": {}}, "f:data": {}}))
        );
        assert_eq!(a.difference(&b), set(json!({"f:spec": {"f:paused": {}}})));
        assert_eq!(
            a.intersection(&b),
            set(json!({"f:spec": {"f:replicas": {}}}))
        );
        assert!(b.difference(&b).is_empty());
    }

    #[test]
    fn paths_print_as_structured_merge_diff_prints_them() {
        let s = set(json!({"f:spec": {"f:replicas": {},
            "f:containers": {"k:{\"name\":\"web\"}": {"f:image": {}}}}}));
        let printed: Vec<String> = s.paths().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            printed,
            vec![".spec.replicas", r#".spec.containers[name="web"].image"#]
        );
    }
}

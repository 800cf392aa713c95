//! Walks over objects with their schema: the field set of an object, the merge of an
//! applied configuration into a live object, the comparison of two objects, and the
//! removal of fields nobody owns any more. Each walk visits every value once (list
//! items are matched through hash maps), and recurses only as deep as its input.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::fieldset::{Element, FieldSet, canonical, canonical_key};
use super::schema::{ListType, ListTypes, MapKey};

/// The empty set, for levels where a set has nothing.
static EMPTY: FieldSet = FieldSet {
    members: std::collections::BTreeSet::new(),
    children: std::collections::BTreeMap::new(),
};

/// What a value is, for field ownership.
enum Shape<'a> {
    /// Owned as one field: a scalar, an empty map or list, an atomic map or list.
    Leaf,
    /// A map whose fields are owned one by one.
    Map(&'a Map<String, Value>),
    /// An associative list: its items with their keys (canonical JSON).
    Keyed(Vec<(String, &'a Map<String, Value>)>),
    /// A set list: its items by canonical JSON.
    Set(&'a [Value]),
}

/// The path string the schema is asked about: field names, list items left out.
struct SchemaPath(String);

impl SchemaPath {
    fn push(&mut self, name: &str) -> usize {
        let len = self.0.len();
        if len > 0 {
            self.0.push('.');
        }
        self.0.push_str(name);
        len
    }

    fn pop(&mut self, len: usize) {
        self.0.truncate(len);
    }
}

/// The key of an associative list item, or `None` when it has none of the key fields
/// (or is not a map).
fn item_key(item: &Value, keys: &[MapKey]) -> Option<String> {
    let fields = item.as_object()?;
    let mut present: Vec<(&str, &Value)> = Vec::with_capacity(keys.len());
    for k in keys {
        match fields.get(&k.name).or(k.default.as_ref()) {
            Some(v) => present.push((k.name.as_str(), v)),
            None => return None,
        }
    }
    Some(canonical_key(present.into_iter()))
}

/// The items of an associative list with their keys, or `None` when an item has no key
/// or two items share one (such a list is owned whole, as a leaf).
fn keyed_items<'a>(
    items: &'a [Value],
    keys: &[MapKey],
) -> Option<Vec<(String, &'a Map<String, Value>)>> {
    let mut seen = HashSet::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let key = item_key(item, keys)?;
        if !seen.insert(key.clone()) {
            return None;
        }
        out.push((key, item.as_object()?));
    }
    Some(out)
}

fn shape<'a>(v: &'a Value, path: &str, types: &dyn ListTypes) -> Shape<'a> {
    match v {
        Value::Object(fields) if !fields.is_empty() && !types.map_is_atomic(path) => {
            Shape::Map(fields)
        }
        Value::Array(items) if !items.is_empty() => match types.list_type(path) {
            ListType::Atomic => Shape::Leaf,
            ListType::Set => Shape::Set(items),
            ListType::Map(keys) => match keyed_items(items, &keys) {
                Some(keyed) => Shape::Keyed(keyed),
                None => Shape::Leaf,
            },
        },
        _ => Shape::Leaf,
    }
}

/// The fields of an object (a map at the root).
pub(crate) fn object_fields(v: &Value, types: &dyn ListTypes) -> FieldSet {
    match v {
        Value::Object(fields) => map_fields(fields, &mut SchemaPath(String::new()), types),
        _ => FieldSet::new(),
    }
}

fn map_fields(
    fields: &Map<String, Value>,
    path: &mut SchemaPath,
    types: &dyn ListTypes,
) -> FieldSet {
    let mut set = FieldSet::new();
    for (name, v) in fields {
        let len = path.push(name);
        let (member, children) = value_fields(v, path, types);
        path.pop(len);
        set.put(Element::Field(name.clone()), member, children);
    }
    set
}

/// Whether a value is owned as a member itself, and the fields below it.
fn value_fields(v: &Value, path: &mut SchemaPath, types: &dyn ListTypes) -> (bool, FieldSet) {
    match shape(v, &path.0, types) {
        Shape::Leaf => (true, FieldSet::new()),
        Shape::Map(fields) => (false, map_fields(fields, path, types)),
        Shape::Keyed(items) => {
            let mut set = FieldSet::new();
            for (key, item) in items {
                set.put(Element::Key(key), true, map_fields(item, path, types));
            }
            (false, set)
        }
        Shape::Set(items) => {
            let mut set = FieldSet::new();
            set.members
                .extend(items.iter().map(|i| Element::Value(canonical(i))));
            (false, set)
        }
    }
}

/// Why an applied configuration cannot be merged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// Two items of an associative list with the same key.
    #[error(".{path}: duplicate entries for key {key}")]
    DuplicateKey {
        /// The list's path.
        path: String,
        /// The key, as structured-merge-diff prints it.
        key: String,
    },
    /// An item of an associative list without one of its key fields.
    #[error(
        ".{path}: associative list with keys has an element that omits key field {field:?} (and doesn't have default value)"
    )]
    MissingKey {
        /// The list's path.
        path: String,
        /// The missing key field.
        field: String,
    },
}

/// Merges the applied configuration `config` into `live` as server-side apply does
/// (structured-merge-diff's `TypedValue.Merge`): maps merge field by field,
/// associative lists item by item by key and sets item by item, in the order of the
/// configuration for its items; everything else takes the configuration's value.
pub(crate) fn merge(
    live: &Value,
    config: &Value,
    types: &dyn ListTypes,
) -> Result<Value, MergeError> {
    merge_value(Some(live), config, &mut SchemaPath(String::new()), types)
}

fn merge_value(
    live: Option<&Value>,
    config: &Value,
    path: &mut SchemaPath,
    types: &dyn ListTypes,
) -> Result<Value, MergeError> {
    match (live, config) {
        (Some(Value::Object(l)), Value::Object(c)) if !types.map_is_atomic(&path.0) => {
            let mut out = Map::new();
            for (name, lv) in l {
                let v = match c.get(name) {
                    Some(cv) => {
                        let len = path.push(name);
                        let merged = merge_value(Some(lv), cv, path, types);
                        path.pop(len);
                        merged?
                    }
                    None => lv.clone(),
                };
                out.insert(name.clone(), v);
            }
            for (name, cv) in c {
                if !l.contains_key(name) {
                    let len = path.push(name);
                    let merged = merge_value(None, cv, path, types);
                    path.pop(len);
                    out.insert(name.clone(), merged?);
                }
            }
            Ok(Value::Object(out))
        }
        (_, Value::Object(c)) if !types.map_is_atomic(&path.0) => {
            // Nothing live to merge into; still check the lists below.
            let mut out = Map::new();
            for (name, cv) in c {
                let len = path.push(name);
                let merged = merge_value(None, cv, path, types);
                path.pop(len);
                out.insert(name.clone(), merged?);
            }
            Ok(Value::Object(out))
        }
        (live, Value::Array(c)) => match types.list_type(&path.0) {
            ListType::Atomic => Ok(config.clone()),
            ListType::Set => {
                let keyed: Vec<(String, &Value)> = c.iter().map(|i| (canonical(i), i)).collect();
                let live_items: Vec<(String, &Value)> = match live {
                    Some(Value::Array(l)) => l.iter().map(|i| (canonical(i), i)).collect(),
                    _ => Vec::new(),
                };
                let mut unique = HashSet::new();
                let deduped: Vec<(String, &Value)> = keyed
                    .into_iter()
                    .filter(|(k, _)| unique.insert(k.clone()))
                    .collect();
                merge_ordered(&live_items, &deduped, |_, c| Ok(c.clone()))
            }
            ListType::Map(keys) => {
                let mut seen = HashSet::new();
                let mut config_items = Vec::with_capacity(c.len());
                for item in c {
                    let Some(key) = item_key(item, &keys) else {
                        let field = keys
                            .iter()
                            .find(|k| item.get(&k.name).is_none() && k.default.is_none())
                            .map(|k| k.name.clone())
                            .unwrap_or_default();
                        return Err(MergeError::MissingKey {
                            path: path.0.clone(),
                            field,
                        });
                    };
                    if !seen.insert(key.clone()) {
                        return Err(MergeError::DuplicateKey {
                            path: path.0.clone(),
                            key: Element::Key(key).to_string(),
                        });
                    }
                    config_items.push((key, item));
                }
                let live_items: Vec<(String, &Value)> = match live {
                    Some(Value::Array(l)) => match keyed_items(l, &keys) {
                        Some(k) => l
                            .iter()
                            .zip(k)
                            .map(|(item, (key, _))| (key, item))
                            .collect(),
                        // A live list with duplicate keys is replaced whole.
                        None => Vec::new(),
                    },
                    _ => Vec::new(),
                };
                merge_ordered(&live_items, &config_items, |l, c| {
                    merge_value(l, c, path, types)
                })
            }
        },
        _ => Ok(config.clone()),
    }
}

/// Merges two keyed lists: live items the configuration does not name stay where they
/// were, the configuration's items come in its order (the applier's order wins for its
/// items), each merged with the live item of the same key.
fn merge_ordered<F>(
    live: &[(String, &Value)],
    config: &[(String, &Value)],
    mut merge_item: F,
) -> Result<Value, MergeError>
where
    F: FnMut(Option<&Value>, &Value) -> Result<Value, MergeError>,
{
    let position: HashMap<&str, usize> = config
        .iter()
        .enumerate()
        .map(|(n, (k, _))| (k.as_str(), n))
        .collect();
    let by_key: HashMap<&str, &Value> = live.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let mut out = Vec::with_capacity(live.len() + config.len());
    // Configuration items before `next` are out. A live item the configuration names
    // brings out every configuration item up to it; one it does not name stays where
    // it was among them. Each item is visited once.
    let mut next = 0;
    for (key, item) in live {
        match position.get(key.as_str()) {
            None => out.push((*item).clone()),
            Some(&at) => {
                while next <= at {
                    let (ck, cv) = &config[next];
                    out.push(merge_item(by_key.get(ck.as_str()).copied(), cv)?);
                    next += 1;
                }
            }
        }
    }
    for (ck, cv) in &config[next.min(config.len())..] {
        out.push(merge_item(by_key.get(ck.as_str()).copied(), cv)?);
    }
    Ok(Value::Array(out))
}

/// What changed between two objects, as field sets.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Diff {
    /// Fields only the new object has.
    pub added: FieldSet,
    /// Fields both have, with different values.
    pub modified: FieldSet,
    /// Fields only the old object has.
    pub removed: FieldSet,
}

impl Diff {
    fn nest(&mut self, e: &Element, sub: Diff) {
        self.added.put(e.clone(), false, sub.added);
        self.modified.put(e.clone(), false, sub.modified);
        self.removed.put(e.clone(), false, sub.removed);
    }
}

/// Compares two objects (structured-merge-diff's `TypedValue.Compare`).
pub(crate) fn compare(old: &Value, new: &Value, types: &dyn ListTypes) -> Diff {
    let mut diff = Diff::default();
    let empty = Map::new();
    let (o, n) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    compare_maps(o, n, &mut SchemaPath(String::new()), types, &mut diff);
    diff
}

fn compare_maps(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    path: &mut SchemaPath,
    types: &dyn ListTypes,
    out: &mut Diff,
) {
    for (name, ov) in old {
        let len = path.push(name);
        compare_node(
            Some(ov),
            new.get(name),
            Element::Field(name.clone()),
            path,
            types,
            out,
        );
        path.pop(len);
    }
    for (name, nv) in new {
        if !old.contains_key(name) {
            let len = path.push(name);
            compare_node(
                None,
                Some(nv),
                Element::Field(name.clone()),
                path,
                types,
                out,
            );
            path.pop(len);
        }
    }
}

fn compare_node(
    old: Option<&Value>,
    new: Option<&Value>,
    e: Element,
    path: &mut SchemaPath,
    types: &dyn ListTypes,
    out: &mut Diff,
) {
    let (o, n) = match (old, new) {
        (Some(o), Some(n)) => (o, n),
        (None, Some(n)) => {
            let (member, below) = value_fields(n, path, types);
            out.added.put(e, member, below);
            return;
        }
        (Some(o), None) => {
            let (member, below) = value_fields(o, path, types);
            out.removed.put(e, member, below);
            return;
        }
        (None, None) => return,
    };
    let mut sub = Diff::default();
    match (shape(o, &path.0, types), shape(n, &path.0, types)) {
        (Shape::Leaf, Shape::Leaf) => {
            if o != n {
                out.modified.members.insert(e);
            }
            return;
        }
        (Shape::Map(a), Shape::Map(b)) => compare_maps(a, b, path, types, &mut sub),
        (Shape::Keyed(a), Shape::Keyed(b)) => {
            let by_key: HashMap<&str, &Map<String, Value>> =
                b.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let mut old_keys = HashSet::with_capacity(a.len());
            for (key, item) in &a {
                old_keys.insert(key.as_str());
                let ke = Element::Key(key.clone());
                match by_key.get(key.as_str()) {
                    Some(new_item) => {
                        let mut item_diff = Diff::default();
                        compare_maps(item, new_item, path, types, &mut item_diff);
                        sub.nest(&ke, item_diff);
                    }
                    None => sub.removed.put(ke, true, map_fields(item, path, types)),
                }
            }
            for (key, item) in &b {
                if !old_keys.contains(key.as_str()) {
                    sub.added.put(
                        Element::Key(key.clone()),
                        true,
                        map_fields(item, path, types),
                    );
                }
            }
        }
        (Shape::Set(a), Shape::Set(b)) => {
            let a: HashSet<String> = a.iter().map(canonical).collect();
            let b: HashSet<String> = b.iter().map(canonical).collect();
            sub.removed
                .members
                .extend(a.difference(&b).map(|v| Element::Value(v.clone())));
            sub.added
                .members
                .extend(b.difference(&a).map(|v| Element::Value(v.clone())));
        }
        _ => {
            let (member, below) = value_fields(o, path, types);
            out.removed.put(e.clone(), member, below);
            let (member, below) = value_fields(n, path, types);
            out.added.put(e, member, below);
            return;
        }
    }
    out.nest(&e, sub);
}

/// Removes from `object` the fields of `candidates` that nobody in `owned` owns, with
/// everything below them (structured-merge-diff's `prune`). A field under which
/// something is owned stays; so do the key fields of a list item that stays.
///
/// A map or list field the manager owned something under, and under which nobody owns
/// anything now, goes whole, with what the server defaulted below it (the `scheme`
/// and `timeoutSeconds` of a dropped probe): structured-merge-diff makes the named
/// fields above owned leaves members of the removed set (`EnsureNamedFieldsAreMembers`,
/// kubernetes/kubernetes#99037). The object's own `metadata` always stays.
pub(crate) fn prune(
    object: &mut Value,
    candidates: &FieldSet,
    owned: &FieldSet,
    types: &dyn ListTypes,
) {
    prune_value(
        object,
        candidates,
        owned,
        &mut SchemaPath(String::new()),
        types,
        &[],
    );
}

fn prune_value(
    v: &mut Value,
    candidates: &FieldSet,
    owned: &FieldSet,
    path: &mut SchemaPath,
    types: &dyn ListTypes,
    protected: &[MapKey],
) {
    match v {
        Value::Object(fields) => {
            let gone: HashSet<&str> = candidates
                .members
                .iter()
                .filter_map(|e| match e {
                    Element::Field(name)
                        if !owned.touches(e) && !protected.iter().any(|k| &k.name == name) =>
                    {
                        Some(name.as_str())
                    }
                    _ => None,
                })
                .collect();
            if !gone.is_empty() {
                fields.retain(|name, _| !gone.contains(name.as_str()));
            }
            for (e, below) in &candidates.children {
                let Element::Field(name) = e else { continue };
                let kept = owned.touches(e)
                    || (path.0.is_empty() && name == "metadata")
                    || protected.iter().any(|k| &k.name == name);
                let nested = fields
                    .get(name)
                    .is_some_and(|c| c.is_object() || c.is_array());
                if !kept && nested {
                    fields.remove(name);
                    continue;
                }
                if let Some(child) = fields.get_mut(name) {
                    let len = path.push(name);
                    let owned_below = owned.children.get(e).unwrap_or(&EMPTY);
                    prune_value(child, below, owned_below, path, types, &[]);
                    path.pop(len);
                }
            }
        }
        Value::Array(items) => match types.list_type(&path.0) {
            ListType::Map(keys) => {
                let Some(item_keys) = keyed_items(items, &keys).map(|k| {
                    k.into_iter()
                        .map(|(key, _)| Element::Key(key))
                        .collect::<Vec<_>>()
                }) else {
                    return;
                };
                for (item, e) in items.iter_mut().zip(&item_keys) {
                    if let Some(below) = candidates.children.get(e) {
                        let owned_below = owned.children.get(e).unwrap_or(&EMPTY);
                        prune_value(item, below, owned_below, path, types, &keys);
                    }
                }
                let mut n = 0;
                items.retain(|_| {
                    let e = &item_keys[n];
                    n += 1;
                    !candidates.members.contains(e) || owned.touches(e)
                });
            }
            ListType::Set => items.retain(|item| {
                let e = Element::Value(canonical(item));
                !candidates.members.contains(&e) || owned.members.contains(&e)
            }),
            ListType::Atomic => {}
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::schema::BuiltIn;
    use serde_json::json;

    #[test]
    fn object_fields_own_list_items_by_key_and_leaves_by_name() {
        let pod = json!({"metadata": {"labels": {"app": "web"}, "finalizers": ["a"]},
            "spec": {"containers": [{"name": "web", "image": "nginx",
                "ports": [{"containerPort": 80}]}], "tolerations": [{"key": "x"}]}});
        let set = object_fields(&pod, &BuiltIn);
        assert_eq!(
            set.to_fields_v1(),
            json!({"f:metadata": {"f:labels": {"f:app": {}}, "f:finalizers": {"v:\"a\"": {}}},
                "f:spec": {"f:tolerations": {}, "f:containers": {"k:{\"name\":\"web\"}": {".": {},
                    "f:name": {}, "f:image": {},
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {},
                        "f:containerPort": {}}}}}}})
        );
    }

    #[test]
    fn merge_keeps_live_only_items_in_place_and_config_items_in_config_order() {
        let live = json!({"spec": {"containers": [
            {"name": "a", "image": "1"}, {"name": "x", "image": "x"}, {"name": "b", "image": "1"}]}});
        let config = json!({"spec": {"containers": [
            {"name": "b", "image": "2"}, {"name": "a"}, {"name": "c", "image": "3"}]}});
        let merged = merge(&live, &config, &BuiltIn).unwrap();
        let names: Vec<&str> = merged["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["b", "a", "x", "c"]);
        assert_eq!(merged["spec"]["containers"][0]["image"], "2");
        assert_eq!(merged["spec"]["containers"][1]["image"], "1");
    }

    #[test]
    fn merge_refuses_duplicate_and_missing_keys() {
        let live = json!({});
        let dup = json!({"spec": {"containers": [{"name": "a"}, {"name": "a"}]}});
        assert_eq!(
            merge(&live, &dup, &BuiltIn).unwrap_err().to_string(),
            r#".spec.containers: duplicate entries for key [name="a"]"#
        );
        let missing = json!({"spec": {"containers": [{"image": "a"}]}});
        assert!(matches!(
            merge(&live, &missing, &BuiltIn),
            Err(MergeError::MissingKey { .. })
        ));
    }

    #[test]
    fn compare_reports_added_modified_and_removed_leaves() {
        let old = json!({"data": {"a": "1", "b": "2"}, "metadata": {"finalizers": ["x"]}});
        let new = json!({"data": {"a": "9", "c": "3"}, "metadata": {"finalizers": ["y"]}});
        let d = compare(&old, &new, &BuiltIn);
        assert_eq!(
            d.added.to_fields_v1(),
            json!({"f:data": {"f:c": {}}, "f:metadata": {"f:finalizers": {"v:\"y\"": {}}}})
        );
        assert_eq!(d.modified.to_fields_v1(), json!({"f:data": {"f:a": {}}}));
        assert_eq!(
            d.removed.to_fields_v1(),
            json!({"f:data": {"f:b": {}}, "f:metadata": {"f:finalizers": {"v:\"x\"": {}}}})
        );
    }

    #[test]
    fn prune_keeps_fields_owned_below_and_the_keys_of_kept_items() {
        let mut obj = json!({"spec": {"containers": [
            {"name": "a", "image": "1", "args": ["x"]}, {"name": "b", "image": "2"}]}});
        let candidates = object_fields(&obj, &BuiltIn);
        let owned = FieldSet::from_fields_v1(&json!({"f:spec": {"f:containers": {
            "k:{\"name\":\"a\"}": {"f:image": {}}}}}))
        .unwrap();
        prune(&mut obj, &candidates, &owned, &BuiltIn);
        assert_eq!(
            obj,
            json!({"spec": {"containers": [{"name": "a", "image": "1"}]}})
        );
    }
}

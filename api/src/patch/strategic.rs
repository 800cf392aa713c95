//! Strategic merge patch (`application/strategic-merge-patch+json`), as
//! `k8s.io/apimachinery/pkg/util/strategicpatch` applies it: maps merge, lists merge
//! by their fields' merge keys (or as sets of scalars) and take the order the patch
//! gives them, and the directives `$patch`, `$retainKeys`, `$setElementOrder/` and
//! `$deleteFromPrimitiveList/`.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::{PatchError, Result};

/// How a list field merges: by which key of its elements (`None`: a set of scalars).
fn merge_key(path: &str) -> Option<Option<&'static str>> {
    // Paths are the field names from the object root, list elements left out:
    // `spec.template.spec.containers`. Every pod spec can sit at `spec` (Pod),
    // `spec.template.spec` (workloads) or `spec.jobTemplate.spec.template.spec`.
    let last = path.rsplit('.').next().unwrap_or(path);
    let parent = path.rsplit('.').nth(1).unwrap_or("");
    let key = match (parent, last) {
        (_, "containers" | "initContainers" | "ephemeralContainers") => "name",
        (_, "volumes" | "imagePullSecrets" | "env" | "resourceClaims") => "name",
        ("containers" | "initContainers" | "ephemeralContainers", "ports") => "containerPort",
        ("containers" | "initContainers" | "ephemeralContainers", "volumeMounts") => "mountPath",
        ("containers" | "initContainers" | "ephemeralContainers", "volumeDevices") => "devicePath",
        ("spec", "ports") => "port",
        (_, "hostAliases") => "ip",
        (_, "ownerReferences") => "uid",
        (_, "conditions") => "type",
        (_, "topologySpreadConstraints") => "topologyKey",
        // Mutating and validating webhook configurations.
        ("", "webhooks") => "name",
        (_, "finalizers") => return Some(None),
        _ => return None,
    };
    Some(Some(key))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A value's identity for set and merge-key lookups: its JSON text, which is the same
/// for equal values (object keys are sorted).
fn identity(v: &Value) -> String {
    v.to_string()
}

/// What a `$patch` directive in a map asks for.
enum MapDirective {
    /// No directive: merge.
    Merge,
    /// `replace`: the map becomes the patch.
    Replace,
    /// `delete`: the map goes.
    Delete,
}

/// Reads a map's `$patch`; kube-apiserver knows only `replace` and `delete` here
/// (`handleDirectiveInMergeMap` in `k8s.io/apimachinery/pkg/util/strategicpatch/patch.go`).
fn map_directive(patch: &Map<String, Value>) -> Result<MapDirective> {
    match patch.get("$patch") {
        None => Ok(MapDirective::Merge),
        Some(Value::String(s)) if s == "replace" => Ok(MapDirective::Replace),
        Some(Value::String(s)) if s == "delete" => Ok(MapDirective::Delete),
        Some(other) => Err(bad_patch_type(other, patch)),
    }
}

/// kube-apiserver's `mergepatch.ErrBadPatchType`: `unknown patch type: %s in map: %v`.
fn bad_patch_type(directive: &Value, map: &Map<String, Value>) -> PatchError {
    let mut text = String::from("unknown patch type: ");
    match directive {
        Value::String(s) => text.push_str(s),
        other => go_format(other, &mut text),
    }
    text.push_str(" in map: ");
    go_format(&Value::Object(map.clone()), &mut text);
    PatchError::BadDirective(text)
}

/// At most this much of a map is quoted in an error.
const QUOTE_LIMIT: usize = 1024;

/// Writes `v` as Go's `%v` prints decoded JSON (`map[a:1 b:[x y]]`), cut at
/// [`QUOTE_LIMIT`] bytes.
fn go_format(v: &Value, out: &mut String) {
    if out.len() > QUOTE_LIMIT {
        if !out.ends_with("...") {
            out.push_str("...");
        }
        return;
    }
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                go_format(item, out);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().collect();
            keys.sort();
            out.push_str("map[");
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(key);
                out.push(':');
                go_format(&fields[key.as_str()], out);
            }
            out.push(']');
        }
    }
}

pub(super) fn strategic_merge(
    target: &mut Value,
    patch: &Map<String, Value>,
    path: &str,
) -> Result<()> {
    match map_directive(patch)? {
        MapDirective::Merge => {}
        MapDirective::Replace => {
            let mut replacement = patch.clone();
            replacement.remove("$patch");
            *target = Value::Object(replacement);
            return Ok(());
        }
        MapDirective::Delete => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(obj) = target else {
        return Ok(());
    };
    if let Some(retain) = patch.get("$retainKeys").and_then(Value::as_array) {
        let keep: HashSet<&str> = retain.iter().filter_map(Value::as_str).collect();
        obj.retain(|k, _| keep.contains(k.as_str()));
    }
    let ordered = set_element_orders(obj, patch, path)?;
    for (key, value) in patch {
        if key == "$patch"
            || key == "$retainKeys"
            || key.starts_with("$setElementOrder/")
            || ordered.contains(key.as_str())
        {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(remove)) = (obj.get_mut(field), value) {
                let remove: HashSet<String> = remove.iter().map(identity).collect();
                list.retain(|v| !remove.contains(&identity(v)));
            }
            continue;
        }
        let field_path = join(path, key);
        match value {
            Value::Null => {
                obj.remove(key);
            }
            Value::Object(p) => {
                if let MapDirective::Delete = map_directive(p)? {
                    obj.remove(key);
                    continue;
                }
                let slot = obj.entry(key.clone()).or_insert(Value::Null);
                strategic_merge(slot, p, &field_path)?;
            }
            Value::Array(items) => match merge_key(&field_path) {
                Some(k) => {
                    let slot = obj.entry(key.clone()).or_insert(Value::Array(Vec::new()));
                    merge_list(slot, items, k, &field_path)?;
                }
                None => {
                    obj.insert(key.clone(), value.clone());
                }
            },
            scalar => {
                obj.insert(key.clone(), scalar.clone());
            }
        }
    }
    Ok(())
}

/// Carries out the `$setElementOrder/FIELD` directives of `patch` on `obj`, as
/// kube's `mergePatchIntoOriginal` does before the rest: FIELD's patch list (if any)
/// is merged, then the list is put in the order the directive gives, the elements it
/// does not name kept where the object had them. kubectl sends one with every list it
/// changes, and an order alone when only the order changed (a container's `env`,
/// where `$(VAR)` sees only the variables before it). Returns the fields done.
fn set_element_orders<'p>(
    obj: &mut Map<String, Value>,
    patch: &'p Map<String, Value>,
    path: &str,
) -> Result<HashSet<&'p str>> {
    let mut done = HashSet::new();
    for (directive, order) in patch {
        let Some(field) = directive.strip_prefix("$setElementOrder/") else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(PatchError::BadRequest(
                "invalid patch format of setElementOrder list".into(),
            ));
        };
        let field_path = join(path, field);
        // A list that does not merge is replaced by its patch value, order and all.
        let Some(key) = merge_key(&field_path) else {
            continue;
        };
        let items = match patch.get(field) {
            Some(Value::Array(items)) => Some(items),
            None => None,
            // `null` or another value: the list goes or is replaced as the patch says.
            Some(_) => continue,
        };
        if let Some(items) = items {
            check_set_order(items, order, key)?;
        }
        let original = positions(obj.get(field).and_then(Value::as_array), key);
        let list = match (obj.get_mut(field), items) {
            (_, Some(items)) => {
                let slot = obj.entry(field.to_string()).or_insert(Value::Null);
                merge_list(slot, items, key, &field_path)?;
                slot
            }
            (Some(list), None) => list,
            (None, None) => continue,
        };
        if let Value::Array(list) = list {
            reorder(list, &original, &positions(Some(order), key), key);
        }
        done.insert(field);
    }
    Ok(done)
}

/// The identity of a list element for ordering: its merge key's value, or the
/// element itself in a set of scalars.
fn element_id(element: &Value, key: Option<&str>) -> Option<String> {
    match key {
        Some(k) => element.get(k).map(identity),
        None => Some(identity(element)),
    }
}

/// Where each element of `list` stands in it, by identity (its first occurrence).
fn positions(list: Option<&Vec<Value>>, key: Option<&str>) -> HashMap<String, usize> {
    let mut at = HashMap::new();
    for (i, element) in list.into_iter().flatten().enumerate() {
        if let Some(id) = element_id(element, key) {
            at.entry(id).or_insert(i);
        }
    }
    at
}

/// kube's `validatePatchWithSetOrderList`: the patch list's elements (deletions left
/// out) are among the directive's, in the same order.
fn check_set_order(items: &[Value], order: &[Value], key: Option<&str>) -> Result<()> {
    let kept: Vec<&Value> = items.iter().filter(|i| i.get("$patch").is_none()).collect();
    let (mut p, mut o) = (0, 0);
    while p < kept.len() && o < order.len() {
        if element_id(kept[p], key) == element_id(&order[o], key) {
            p += 1;
        }
        o += 1;
    }
    if p < kept.len() {
        let mut text = String::from("The order in patch list:\n");
        go_format(&Value::Array(items.to_vec()), &mut text);
        text.push_str("\n doesn't match $setElementOrder list:\n");
        go_format(&Value::Array(order.to_vec()), &mut text);
        text.push('\n');
        return Err(PatchError::BadRequest(text));
    }
    Ok(())
}

/// Puts a merged list in the order kube's `normalizeElementOrder` gives it: the
/// elements `wanted` places in its order, the others (the object's alone) in the
/// order `original` had them, the two interleaved where `original` orders both.
fn reorder(
    list: &mut Vec<Value>,
    original: &HashMap<String, usize>,
    wanted: &HashMap<String, usize>,
    key: Option<&str>,
) {
    // (sort position, position in the original, element)
    let mut named = Vec::new();
    let mut others = Vec::new();
    for element in std::mem::take(list) {
        let id = element_id(&element, key);
        let was = id.as_ref().and_then(|id| original.get(id).copied());
        match id.as_ref().and_then(|id| wanted.get(id).copied()) {
            Some(at) => named.push((at, was, element)),
            None => others.push((was.unwrap_or(usize::MAX), was, element)),
        }
    }
    named.sort_by_key(|(at, _, _)| *at);
    others.sort_by_key(|(at, _, _)| *at);
    let (mut named, mut others) = (named.into_iter().peekable(), others.into_iter().peekable());
    loop {
        let take_other = match (others.peek(), named.peek()) {
            (Some((_, Some(l), _)), Some((_, Some(r), _))) => l < r,
            (Some(_), None) => true,
            (_, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_other {
            others.next()
        } else {
            named.next()
        };
        if let Some((_, _, element)) = next {
            list.push(element);
        }
    }
}

/// Merges the patch list `items` into the list `target`, by the elements' `key` or, for
/// a set of scalars, by value, then orders it as kube's `mergeSlice` does (the patch's
/// elements in its order, the object's others where they were: see [`reorder`]).
fn merge_list(target: &mut Value, items: &[Value], key: Option<&str>, path: &str) -> Result<()> {
    let original = positions(target.as_array(), key);
    merge_list_items(target, items, key, path)?;
    if let Value::Array(list) = target {
        let mut wanted = HashMap::new();
        let kept = items.iter().filter(|i| i.get("$patch").is_none());
        for (i, element) in kept.enumerate() {
            if let Some(id) = element_id(element, key) {
                wanted.entry(id).or_insert(i);
            }
        }
        reorder(list, &original, &wanted, key);
    }
    Ok(())
}

/// Merges the patch list `items` into the list `target` (see [`merge_list`]), in no
/// particular order. Elements are found through a hash index, so the merge takes
/// time linear in both lists.
fn merge_list_items(
    target: &mut Value,
    items: &[Value],
    key: Option<&str>,
    path: &str,
) -> Result<()> {
    if !target.is_array() {
        *target = Value::Array(Vec::new());
    }
    let Value::Array(list) = target else {
        return Ok(());
    };
    // Directives in list elements, as `mergeSliceWithSpecialElements` reads them:
    // `replace` replaces the whole list with the other elements, `delete` removes the
    // elements with the same key, anything else is refused.
    let mut replace = false;
    for item in items {
        let Some(directive) = item.get("$patch") else {
            continue;
        };
        match directive.as_str() {
            Some("replace") => replace = true,
            Some("delete") => {}
            Some("merge") => {
                return Err(PatchError::BadDirective(
                    "merging lists cannot yet be specified in the patch".into(),
                ));
            }
            _ => {
                let fields = item.as_object().cloned().unwrap_or_default();
                return Err(bad_patch_type(directive, &fields));
            }
        }
    }
    if replace {
        *list = items
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .cloned()
            .collect();
        return Ok(());
    }
    let Some(key) = key else {
        // A set of scalars (finalizers): add what is missing.
        let mut present: HashSet<String> = list.iter().map(identity).collect();
        for item in items.iter().filter(|i| i.get("$patch").is_none()) {
            if present.insert(identity(item)) {
                list.push(item.clone());
            }
        }
        return Ok(());
    };
    // Elements by the identity of their key, first occurrence first; `None` marks one
    // deleted, so that indexes stay valid until the list is rebuilt at the end.
    let mut slots: Vec<Option<Value>> = std::mem::take(list).into_iter().map(Some).collect();
    let mut index: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, element) in slots.iter().enumerate() {
        if let Some(id) = element.as_ref().and_then(|e| e.get(key)) {
            index.entry(identity(id)).or_default().push(i);
        }
    }
    for item in items {
        let Value::Object(fields) = item else {
            return Err(PatchError::BadRequest(format!(
                "{path}: list elements must be objects with a {key:?} field"
            )));
        };
        let Some(id) = fields.get(key) else {
            return Err(PatchError::BadRequest(format!(
                "{path}: an element has no merge key {key:?}"
            )));
        };
        let id = identity(id);
        if fields.get("$patch").and_then(Value::as_str) == Some("delete") {
            // Every element with this key goes, as in `deleteMatchingEntries`.
            for p in index.remove(&id).unwrap_or_default() {
                slots[p] = None;
            }
            continue;
        }
        match index.get(&id).and_then(|positions| positions.first()) {
            Some(&p) => {
                let slot = slots[p].get_or_insert(Value::Null);
                strategic_merge(slot, fields, path)?;
            }
            None => {
                let mut new = Value::Object(Map::new());
                strategic_merge(&mut new, fields, path)?;
                index.insert(id, vec![slots.len()]);
                slots.push(Some(new));
            }
        }
    }
    *list = slots.into_iter().flatten().collect();
    Ok(())
}

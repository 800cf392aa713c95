//! What structured-merge-diff's typed conversion refuses in an applied configuration:
//! fields its kind does not declare. kube-apiserver refuses them whatever the
//! request's `fieldValidation` (the directive governs only repeated keys of an
//! apply), with smd's words: `.spec.foo: field not declared in schema`, a list item
//! named by its keys (`.spec.containers[name="web"].bogus`), by its value in a set,
//! by its position in an atomic list.

use serde_json::Value;

use super::schema::{ListType, ListTypes};
use crate::path::{FieldPath, Segment};

/// `path` (a field of `applied`) as smd prints a path: each step a `.field`, a list
/// item `[k=v,…]` by its keys (sorted by name, values as JSON), `[=v]` in a set,
/// `[n]` in an atomic list.
pub fn smd_path(path: &FieldPath, applied: &Value, types: &dyn ListTypes) -> String {
    let mut out = String::new();
    // The field names so far, without list items: how the schema names a list.
    let mut names: Vec<&str> = Vec::new();
    let mut at = Some(applied);
    for segment in path.segments() {
        match segment {
            Segment::Key(k) => {
                out.push('.');
                out.push_str(k);
                names.push(k);
                at = at.and_then(|v| v.get(k));
            }
            Segment::Index(i) => {
                let item = at.and_then(|v| v.get(*i));
                out.push_str(&item_name(*i, item, &types.list_type(&names.join("."))));
                at = item;
            }
        }
    }
    out
}

/// How smd names the `i`th item of a list of `list_type`.
fn item_name(i: usize, item: Option<&Value>, list_type: &ListType) -> String {
    match (list_type, item) {
        (ListType::Map(keys), Some(item)) => {
            let mut pairs: Vec<(&str, String)> = keys
                .iter()
                .filter_map(|k| {
                    let value = item.get(&k.name).or(k.default.as_ref())?;
                    Some((k.name.as_str(), value.to_string()))
                })
                .collect();
            pairs.sort();
            let each: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("[{}]", each.join(","))
        }
        (ListType::Set, Some(item)) => format!("[={item}]"),
        _ => format!("[{i}]"),
    }
}

/// smd's `ValidationErrors` for the undeclared fields `unknown` of `applied`: the one
/// error, or `errors:` and one indented line each.
pub fn not_declared(unknown: &[FieldPath], applied: &Value, types: &dyn ListTypes) -> String {
    let lines: Vec<String> = unknown
        .iter()
        .map(|p| {
            format!(
                "{}: field not declared in schema",
                smd_path(p, applied, types)
            )
        })
        .collect();
    match lines.as_slice() {
        [one] => one.clone(),
        many => format!("errors:\n  {}", many.join("\n  ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::BuiltIn;
    use serde_json::json;

    #[test]
    fn paths_name_list_items_as_smd_does() {
        let applied = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "web", "bogus": 1,
                            "ports": [{"containerPort": 80, "nope": true}]}],
            "tolerations": [{"key": "a", "x": 1}]}}}});
        let root = FieldPath::root().key("spec").key("template").key("spec");
        let bogus = root.key("containers").index(0).key("bogus");
        assert_eq!(
            smd_path(&bogus, &applied, &BuiltIn),
            r#".spec.template.spec.containers[name="web"].bogus"#
        );
        let port = root
            .key("containers")
            .index(0)
            .key("ports")
            .index(0)
            .key("nope");
        assert_eq!(
            smd_path(&port, &applied, &BuiltIn),
            r#".spec.template.spec.containers[name="web"].ports[containerPort=80,protocol="TCP"].nope"#
        );
        let toleration = root.key("tolerations").index(0).key("x");
        assert_eq!(
            smd_path(&toleration, &applied, &BuiltIn),
            ".spec.template.spec.tolerations[0].x"
        );
        let top = FieldPath::root().key("foo");
        assert_eq!(
            not_declared(std::slice::from_ref(&top), &applied, &BuiltIn),
            ".foo: field not declared in schema"
        );
        assert_eq!(
            not_declared(&[top, bogus], &applied, &BuiltIn),
            "errors:\n  .foo: field not declared in schema\n  .spec.template.spec.containers[name=\"web\"].bogus: field not declared in schema"
        );
    }
}

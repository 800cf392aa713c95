//! JSON values written out as YAML (block style, strings quoted only where a plain
//! scalar would read back as something else), through saphyr's emitter.

use std::borrow::Cow;

use saphyr::{Mapping, Scalar, ScalarStyle, Yaml, YamlEmitter};
use serde_json::Value;

fn string(s: &str) -> Yaml<'_> {
    // YAML 1.1 readers (Go's yaml.v2, so kubectl and kube-openapi) read these as
    // booleans; saphyr's emitter leaves them plain.
    if matches!(s, "y" | "Y" | "n" | "N") {
        return Yaml::Representation(Cow::Borrowed(s), ScalarStyle::DoubleQuoted, None);
    }
    Yaml::Value(Scalar::String(Cow::Borrowed(s)))
}

fn to_yaml(v: &Value) -> Yaml<'_> {
    match v {
        Value::Null => Yaml::Value(Scalar::Null),
        Value::Bool(b) => Yaml::Value(Scalar::Boolean(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Value(Scalar::Integer(i)),
            // Floats and integers past i64 are written as JSON writes them, which is
            // also a valid YAML 1.2 number.
            None => Yaml::Representation(Cow::Owned(n.to_string()), ScalarStyle::Plain, None),
        },
        Value::String(s) => string(s),
        Value::Array(items) => Yaml::Sequence(items.iter().map(to_yaml).collect()),
        Value::Object(map) => {
            let mut m = Mapping::new();
            for (k, v) in map {
                m.insert(string(k), to_yaml(v));
            }
            Yaml::Mapping(m)
        }
    }
}

/// Appends `value` to `out` as one YAML document (without a `---` line).
pub fn write_yaml(out: &mut String, value: &Value) {
    let mut text = String::new();
    let yaml = to_yaml(value);
    let mut emitter = YamlEmitter::new(&mut text);
    // Writing into a String cannot fail.
    if emitter.dump(&yaml).is_err() {
        return;
    }
    out.push_str(text.strip_prefix("---\n").unwrap_or(&text));
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_output_reads_back_as_the_same_value() {
        let v = json!({"a": "500m", "b": "1", "c": "true", "d": 1.5, "e": [1, {"f": null}],
                       "g": "multi\nline", "h": {}, "i": [], "j": "", "k": "a: b", "l": 18446744073709551615u64,
                       "m": "y", "n": "N", "y": "n"});
        let mut out = String::new();
        write_yaml(&mut out, &v);
        assert!(
            out.contains("m: \"y\"\n") && out.contains("\"y\": \"n\"\n"),
            "{out}"
        );
        let back = crate::yaml::parse_documents(&out).unwrap();
        assert_eq!(back[0].value, v, "{out}");
    }
}

//! YAML (and JSON, its subset) to `serde_json::Value`, remembering where every field is.
//!
//! The events of `saphyr-parser` (a YAML 1.2 parser) are folded into JSON values
//! with the YAML 1.2 core schema, while a [`Positions`] table records the line and
//! column of each field, so that errors found later — a bad quantity, a duplicate
//! container name — can point at the place in the file.
//!
//! Limits guard against hostile input: nesting depth, and the number of nodes after
//! aliases are expanded ("billion laughs").

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Number, Value};

use crate::path::{FieldPath, Segment};

/// Deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 100;
/// Most nodes a stream may produce, counting those copied by aliases.
pub const MAX_NODES: usize = 1_000_000;

/// A line and column in a source text, both starting at 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Where each field of one document starts (for a map entry: its key).
#[derive(Clone, Debug, Default)]
pub struct Positions {
    map: HashMap<Vec<Segment>, Location>,
}

impl Positions {
    /// The location of `path`, or of its nearest ancestor that has one.
    pub fn locate(&self, path: &FieldPath) -> Option<Location> {
        let segs = path.segments();
        (0..=segs.len())
            .rev()
            .find_map(|n| self.map.get(&segs[..n]).copied())
    }

    /// The positions below `prefix`, re-rooted there (used for the items of a `List`).
    pub fn subtree(&self, prefix: &FieldPath) -> Positions {
        let pre = prefix.segments();
        Positions {
            map: self
                .map
                .iter()
                .filter(|(k, _)| k.starts_with(pre))
                .map(|(k, v)| (k[pre.len()..].to_vec(), *v))
                .collect(),
        }
    }
}

/// One YAML document of a stream.
#[derive(Clone, Debug)]
pub struct Document {
    /// The document's content (JSON null for an empty document).
    pub value: Value,
    /// Where each field starts.
    pub positions: Positions,
    /// Where the document starts.
    pub start: Location,
}

/// Malformed YAML, with the place it was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct SyntaxError {
    /// Where the problem is.
    pub location: Location,
    /// What is wrong, in a lowercase sentence.
    pub message: String,
}

fn loc(span: &Span) -> Location {
    Location {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

fn err(span: &Span, message: impl Into<String>) -> SyntaxError {
    SyntaxError {
        location: loc(span),
        message: message.into(),
    }
}

/// A collection being built.
enum Frame {
    Seq {
        items: Vec<Value>,
        anchor: usize,
        path: FieldPath,
    },
    Map {
        map: Map<String, Value>,
        /// A key waiting for its value, with where it was written.
        key: Option<(String, Span)>,
        /// Keys merged in with `<<`, which explicit keys may override.
        merged: Vec<String>,
        anchor: usize,
        path: FieldPath,
    },
}

struct Loader {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Value>,
    positions: Positions,
    nodes: usize,
    /// Set while inside a document's root.
    root: Option<Value>,
}

/// Parses every document of a YAML or JSON stream.
///
/// Empty documents (such as one after a trailing `---`) are returned as JSON null so
/// that document numbers stay true; callers usually skip them.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, SyntaxError> {
    let mut docs = Vec::new();
    let mut loader = Loader {
        stack: Vec::new(),
        anchors: HashMap::new(),
        positions: Positions::default(),
        nodes: 0,
        root: None,
    };
    let mut doc_start = Location { line: 1, column: 1 };
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| SyntaxError {
            location: Location {
                line: e.marker().line(),
                column: e.marker().col() + 1,
            },
            message: e.info().to_string(),
        })?;
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd => {}
            Event::DocumentStart(_) => {
                doc_start = loc(&span);
                loader.positions = Positions::default();
                loader.positions.map.insert(Vec::new(), doc_start);
                loader.root = None;
                loader.anchors.clear();
            }
            Event::DocumentEnd => {
                docs.push(Document {
                    value: loader.root.take().unwrap_or(Value::Null),
                    positions: std::mem::take(&mut loader.positions),
                    start: doc_start,
                });
            }
            Event::Alias(id) => {
                let value = loader
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| err(&span, "alias refers to an unknown anchor"))?;
                loader.count(&span, count_nodes(&value))?;
                loader.complete(value, &span)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                loader.count(&span, 1)?;
                let value = resolve_scalar(&text, style, tag.as_deref(), &span)?;
                if anchor > 0 {
                    loader.anchors.insert(anchor, value.clone());
                }
                loader.complete(value, &span)?;
            }
            Event::SequenceStart(anchor, tag) => {
                check_collection_tag(tag.as_deref(), "seq", &span)?;
                loader.count(&span, 1)?;
                let path = loader.child_path(&span)?;
                loader.stack.push(Frame::Seq {
                    items: Vec::new(),
                    anchor,
                    path,
                });
            }
            Event::MappingStart(anchor, tag) => {
                check_collection_tag(tag.as_deref(), "map", &span)?;
                loader.count(&span, 1)?;
                let path = loader.child_path(&span)?;
                loader.stack.push(Frame::Map {
                    map: Map::new(),
                    key: None,
                    merged: Vec::new(),
                    anchor,
                    path,
                });
            }
            Event::SequenceEnd => match loader.stack.pop() {
                Some(Frame::Seq { items, anchor, .. }) => {
                    let value = Value::Array(items);
                    if anchor > 0 {
                        loader.anchors.insert(anchor, value.clone());
                    }
                    loader.complete(value, &span)?;
                }
                _ => return Err(err(&span, "unbalanced sequence end")),
            },
            Event::MappingEnd => match loader.stack.pop() {
                Some(Frame::Map { map, anchor, .. }) => {
                    let value = Value::Object(map);
                    if anchor > 0 {
                        loader.anchors.insert(anchor, value.clone());
                    }
                    loader.complete(value, &span)?;
                }
                _ => return Err(err(&span, "unbalanced mapping end")),
            },
        }
    }
    Ok(docs)
}

impl Loader {
    fn count(&mut self, span: &Span, n: usize) -> Result<(), SyntaxError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(err(
                span,
                format!(
                    "document is too large: more than {MAX_NODES} nodes after expanding aliases"
                ),
            ));
        }
        Ok(())
    }

    /// The path of a collection that starts now, recording its position; checks depth.
    fn child_path(&mut self, span: &Span) -> Result<FieldPath, SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(err(
                span,
                format!("nesting is deeper than {MAX_DEPTH} levels"),
            ));
        }
        let path = match self.stack.last() {
            None => FieldPath::root(),
            Some(Frame::Seq { items, path, .. }) => {
                let p = path.index(items.len());
                self.positions.map.insert(p.segments().to_vec(), loc(span));
                p
            }
            Some(Frame::Map {
                key: Some((k, _)),
                path,
                ..
            }) => path.key(k.clone()),
            Some(Frame::Map { key: None, .. }) => {
                return Err(err(
                    span,
                    "a mapping or sequence cannot be used as a mapping key",
                ));
            }
        };
        Ok(path)
    }

    /// Places a finished node into its parent (or makes it the document's root).
    fn complete(&mut self, value: Value, span: &Span) -> Result<(), SyntaxError> {
        match self.stack.last_mut() {
            None => {
                self.root = Some(value);
                Ok(())
            }
            Some(Frame::Seq { items, path, .. }) => {
                let p = path.index(items.len());
                self.positions
                    .map
                    .entry(p.segments().to_vec())
                    .or_insert(loc(span));
                items.push(value);
                Ok(())
            }
            Some(Frame::Map {
                map,
                key,
                merged,
                path,
                ..
            }) => match key.take() {
                None => {
                    let k = match value {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Null => "null".to_string(),
                        _ => return Err(err(span, "a mapping key must be a scalar")),
                    };
                    *key = Some((k, *span));
                    Ok(())
                }
                Some((k, key_span)) if k == "<<" => merge_into(map, merged, value, &key_span),
                Some((k, key_span)) => {
                    if map.contains_key(&k) && !merged.contains(&k) {
                        return Err(err(&key_span, format!("duplicate key \"{k}\"")));
                    }
                    merged.retain(|m| m != &k);
                    self.positions
                        .map
                        .insert(path.key(k.clone()).segments().to_vec(), loc(&key_span));
                    map.insert(k, value);
                    Ok(())
                }
            },
        }
    }
}

/// YAML merge keys (`<<: *defaults`), as Compose files and go-yaml use them: keys of
/// the merged mapping(s) fill in what the mapping does not set itself.
fn merge_into(
    map: &mut Map<String, Value>,
    merged: &mut Vec<String>,
    value: Value,
    span: &Span,
) -> Result<(), SyntaxError> {
    let sources = match value {
        Value::Object(m) => vec![m],
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::Object(m) => Ok(m),
                _ => Err(err(
                    span,
                    "a merge key (<<) takes a mapping or a list of mappings",
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(err(
                span,
                "a merge key (<<) takes a mapping or a list of mappings",
            ));
        }
    };
    for source in sources {
        for (k, v) in source {
            if !map.contains_key(&k) {
                merged.push(k.clone());
                map.insert(k, v);
            }
        }
    }
    Ok(())
}

fn count_nodes(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(count_nodes).sum::<usize>(),
        Value::Object(m) => 1 + m.values().map(count_nodes).sum::<usize>(),
        _ => 1,
    }
}

fn check_collection_tag(tag: Option<&Tag>, expected: &str, span: &Span) -> Result<(), SyntaxError> {
    match tag {
        None => Ok(()),
        Some(t) if t.is_yaml_core_schema() && t.suffix == expected => Ok(()),
        Some(t) => Err(err(span, format!("unsupported tag {t}"))),
    }
}

/// Resolves a scalar with the YAML 1.2 core schema; quoted and block scalars are
/// always strings.
fn resolve_scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    span: &Span,
) -> Result<Value, SyntaxError> {
    if let Some(tag) = tag {
        if !tag.is_yaml_core_schema() {
            return Err(err(span, format!("unsupported tag {tag}")));
        }
        let resolved = resolve_plain(text);
        return match tag.suffix.as_str() {
            "str" => Ok(Value::String(text.to_string())),
            "null" if matches!(resolved, Value::Null) => Ok(Value::Null),
            "bool" if resolved.is_boolean() => Ok(resolved),
            "int" if resolved.is_i64() || resolved.is_u64() => Ok(resolved),
            "float" if resolved.is_number() => Ok(resolved),
            "null" | "bool" | "int" | "float" => Err(err(
                span,
                format!("\"{text}\" is not a valid !!{}", tag.suffix),
            )),
            _ => Err(err(span, format!("unsupported tag {tag}"))),
        };
    }
    Ok(match style {
        ScalarStyle::Plain => resolve_plain(text),
        _ => Value::String(text.to_string()),
    })
}

fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = parse_int(text) {
        return Value::Number(n);
    }
    if is_float(text)
        && let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64)
    {
        return Value::Number(n);
    }
    Value::String(text.to_string())
}

fn parse_int(text: &str) -> Option<Number> {
    let radix = |digits: &str, radix| {
        if digits.is_empty() {
            None
        } else {
            u64::from_str_radix(digits, radix).ok().map(Number::from)
        }
    };
    if let Some(hex) = text.strip_prefix("0x") {
        return radix(hex, 16);
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return radix(oct, 8);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let text = text.strip_prefix('+').unwrap_or(text);
    text.parse::<i64>()
        .ok()
        .map(Number::from)
        .or_else(|| text.parse::<u64>().ok().map(Number::from))
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` (YAML 1.2 core schema). The
/// infinities and NaN of the schema have no JSON form and stay strings.
fn is_float(text: &str) -> bool {
    let s = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], Some(&mantissa[i + 1..])),
        None => (mantissa, None),
    };
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac {
        None => !int.is_empty() && digits(int),
        Some(f) => digits(int) && digits(f) && !(int.is_empty() && f.is_empty()),
    };
    let exponent_ok = match exponent {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && digits(e)
        }
    };
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(text: &str) -> Document {
        let mut docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 1);
        docs.remove(0)
    }

    #[test]
    fn resolves_scalars_with_the_core_schema() {
        let d =
            one("a: 1\nb: -2\nc: 1.5\nd: 1e3\ne: true\nf: ~\ng: yes\nh: '1'\ni: 0x1f\nj: 500m\n");
        assert_eq!(
            d.value,
            json!({"a": 1, "b": -2, "c": 1.5, "d": 1000.0, "e": true, "f": null,
                   "g": "yes", "h": "1", "i": 31, "j": "500m"})
        );
    }

    #[test]
    fn records_where_each_field_starts() {
        let d = one("kind: Pod\nspec:\n  containers:\n  - name: a\n    image: x\n  - name: b\n");
        let at = |p: &str| d.positions.locate(&FieldPath::parse(p)).unwrap();
        assert_eq!(at("kind"), Location { line: 1, column: 1 });
        assert_eq!(at("spec.containers"), Location { line: 3, column: 3 });
        assert_eq!(
            at("spec.containers[0].image"),
            Location { line: 5, column: 5 }
        );
        assert_eq!(
            at("spec.containers[1].name"),
            Location { line: 6, column: 5 }
        );
        // A path with no entry of its own falls back to its nearest ancestor.
        assert_eq!(
            at("spec.containers[1].ports[0]"),
            Location { line: 6, column: 5 }
        );
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = parse_documents("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.to_string(), "3:1: duplicate key \"a\"");
    }

    #[test]
    fn merge_keys_fill_in_without_overriding() {
        let d = one("base: &b {x: 1, y: 2}\nsvc:\n  <<: *b\n  y: 3\n");
        assert_eq!(d.value["svc"], json!({"x": 1, "y": 3}));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse_documents(&text).unwrap_err();
        assert!(e.message.contains("too large"), "{e}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(1000);
        let e = parse_documents(&text).unwrap_err();
        // saphyr-parser stops at its own recursion limit before ours is reached.
        assert!(
            e.message.contains("deeper") || e.message.contains("recursion"),
            "{e}"
        );
    }

    #[test]
    fn json_is_read_as_yaml() {
        let d = one("{\n  \"kind\": \"Pod\",\n\t\"n\": [1, 2.5, null]\n}\n");
        assert_eq!(d.value, json!({"kind": "Pod", "n": [1, 2.5, null]}));
        assert_eq!(
            d.positions.locate(&FieldPath::parse("n")).unwrap(),
            Location { line: 3, column: 2 }
        );
    }

    #[test]
    fn several_documents_keep_their_numbers() {
        let docs = parse_documents("a: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[1].value, Value::Null);
        assert_eq!(docs[2].start.line, 3);
    }
}

//! kubectl's JSONPath, as `-o jsonpath=…`, `-o custom-columns=…` and `--sort-by` read
//! it: templates of text and `{…}` actions (`{range EXPR}…{end}`, `{"\n"}`), field
//! expressions such as `.items[*].metadata.name`, `..image`,
//! `.metadata.labels.app\.kubernetes\.io/name` or `.items[?(@.type=="Ready")]`.
//!
//! An expression is translated into an RFC 9535 query (every field name quoted, so
//! names with `-`, `/` or escaped dots work as kubectl allows them) and run by the
//! `jsonpath-rust` crate. Missing fields give nothing, as kubectl's
//! `--allow-missing-template-keys` (on by default) has it.

use anyhow::{Result, bail};
use jsonpath_rust::JsonPath;
use serde_json::Value;

/// A field expression, ready to run against an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expr {
    /// As given (for error messages).
    source: String,
    /// The RFC 9535 query.
    query: String,
}

impl Expr {
    /// Parses a field expression: `.a.b`, `{.a.b}`, `$.a`, `a.b` (kubectl's relaxed
    /// form, as `custom-columns` and `--sort-by` take it).
    pub fn relaxed(text: &str) -> Result<Self> {
        let trimmed = text.trim();
        let inner = match trimmed.strip_prefix('{') {
            Some(rest) => rest
                .strip_suffix('}')
                .ok_or_else(|| anyhow::anyhow!("unclosed action in {text:?}"))?,
            None => trimmed,
        };
        let inner = inner.trim();
        if inner.is_empty() {
            bail!("the JSONPath expression {text:?} is empty");
        }
        let dotted = if inner.starts_with(['.', '[', '$', '@']) {
            inner.to_string()
        } else {
            format!(".{inner}")
        };
        Self::parse(&dotted)
    }

    fn parse(text: &str) -> Result<Self> {
        Ok(Expr {
            source: text.to_string(),
            query: to_query(text)?,
        })
    }

    /// What the expression selects in `root`, in document order.
    pub fn select<'a>(&self, root: &'a Value) -> Result<Vec<&'a Value>> {
        root.query(&self.query)
            .map_err(|e| anyhow::anyhow!("error executing jsonpath {:?}: {e}", self.source))
    }
}

/// Translates kubectl's field syntax into an RFC 9535 query: `.name` (with `\.` an
/// escaped dot) becomes `['name']`, `.*` `[*]`, `..` stays a descendant segment, and
/// brackets pass through (`[0]`, `[*]`, `[1:3]`, `[?(@.x=="y")]`, `['key']`).
fn to_query(text: &str) -> Result<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    if matches!(chars.first(), Some('$' | '@')) {
        i = 1;
    }
    let mut out = String::from("$");
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                if chars.get(i) == Some(&'.') {
                    out.push_str("..");
                    i += 1;
                }
                if chars.get(i) == Some(&'[') {
                    continue;
                }
                if chars.get(i) == Some(&'*') {
                    out.push_str("[*]");
                    i += 1;
                    continue;
                }
                let mut name = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    name.push(chars[i]);
                    i += 1;
                }
                if name.is_empty() {
                    if out.ends_with("..") {
                        bail!("invalid JSONPath {text:?}: a field name must follow \"..\"");
                    }
                    // A trailing `.` (`{.}`) is the current object.
                    continue;
                }
                out.push_str("['");
                for c in name.chars() {
                    if c == '\'' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push_str("']");
            }
            '[' => {
                let end = closing_bracket(&chars, i).ok_or_else(|| {
                    anyhow::anyhow!("invalid JSONPath {text:?}: unterminated array")
                })?;
                out.extend(&chars[i..=end]);
                i = end + 1;
            }
            c => bail!("invalid JSONPath {text:?}: unexpected {c:?} (a field starts with '.')"),
        }
    }
    Ok(out)
}

/// The index of the `]` closing the `[` at `open`, skipping quoted text and nested
/// brackets (filters hold paths of their own).
fn closing_bracket(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut i = open;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some(_) if c == '\\' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' => quote = Some(c),
                '[' => depth += 1,
                ']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(i);
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    None
}

/// A `-o jsonpath=` template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Expr),
    Range(Expr, Vec<Part>),
}

impl Template {
    /// Parses `template` as kubectl does: text, `{EXPR}`, `{"text"}`,
    /// `{range EXPR}…{end}`.
    pub fn parse(template: &str) -> Result<Self> {
        let fail = |why: &str| anyhow::anyhow!("error parsing jsonpath {template}, {why}");
        // Open ranges: the parts before each, and its expression.
        let mut stack: Vec<(Vec<Part>, Expr)> = Vec::new();
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                parts.push(Part::Text(rest.to_string()));
                break;
            };
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = action_end(after).ok_or_else(|| fail("unclosed action"))?;
            let action = after[..close].trim();
            rest = &after[close + 1..];
            if let Some(quoted) = action.strip_prefix('"') {
                let text = quoted
                    .strip_suffix('"')
                    .ok_or_else(|| fail("unterminated quoted string"))?;
                parts.push(Part::Text(unescape(text)));
            } else if action == "end" {
                let (before, expr) = stack
                    .pop()
                    .ok_or_else(|| fail("not in range, nothing to end"))?;
                let body = std::mem::replace(&mut parts, before);
                parts.push(Part::Range(expr, body));
            } else if let Some(expr) = action.strip_prefix("range ") {
                let expr = Expr::parse(expr.trim()).map_err(|e| fail(&e.to_string()))?;
                stack.push((std::mem::take(&mut parts), expr));
            } else if action.is_empty() {
                continue;
            } else {
                parts.push(Part::Field(
                    Expr::parse(action).map_err(|e| fail(&e.to_string()))?,
                ));
            }
        }
        if !stack.is_empty() {
            return Err(fail("unclosed range"));
        }
        Ok(Template { parts })
    }

    /// The template run against `root`.
    pub fn render(&self, root: &Value) -> Result<String> {
        let mut out = String::new();
        render(&self.parts, root, &mut out)?;
        Ok(out)
    }
}

fn render(parts: &[Part], root: &Value, out: &mut String) -> Result<()> {
    for part in parts {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Field(expr) => {
                let texts: Vec<String> = expr.select(root)?.into_iter().map(json_text).collect();
                out.push_str(&texts.join(" "));
            }
            Part::Range(expr, body) => {
                for item in expr.select(root)? {
                    render(body, item, out)?;
                }
            }
        }
    }
    Ok(())
}

/// Where the action opened before `text` ends: its `}`, outside quotes.
fn action_end(text: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '}' => return Some(i),
            None => {}
        }
    }
    None
}

/// Go's escapes in a quoted template string (`\n`, `\t`, `\"`, `\\`).
fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// A value as `-o jsonpath` prints it: strings as they are, anything else as compact
/// JSON.
pub fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value as `-o custom-columns` prints it (Go's `%v` of a decoded object):
/// `map[k:v]`, `[a b]`, strings as they are.
pub fn go_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".to_string(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_text).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_text(&map[k])))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> Value {
        json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"app": "a", "app.kubernetes.io/name": "x", "pod-template-hash": "h1"}},
             "spec": {"replicas": 2, "paused": false, "containers": [{"name": "c1", "image": "busybox"}, {"name": "c2", "image": "nginx"}]},
             "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Scheduled", "status": "True"}]}},
            {"metadata": {"name": "b10", "labels": {}},
             "spec": {"replicas": 1, "containers": [{"name": "c", "image": "busybox:1.36"}]}}
        ]})
    }

    fn run(template: &str) -> String {
        Template::parse(template).unwrap().render(&list()).unwrap()
    }

    #[test]
    fn templates_print_as_kubectl_prints_them() {
        assert_eq!(run("{.items[*].metadata.name}"), "a b10");
        assert_eq!(run("{.kind}-{$.kind}"), "List-List");
        assert_eq!(
            run(r#"{range .items[*]}{.metadata.name}{"\t"}{.spec.replicas}{"\n"}{end}"#),
            "a\t2\nb10\t1\n"
        );
        assert_eq!(run("{..image}"), "busybox nginx busybox:1.36");
        assert_eq!(
            run(r"{.items[0].metadata.labels.app\.kubernetes\.io/name}"),
            "x"
        );
        assert_eq!(run("{.items[0].metadata.labels.pod-template-hash}"), "h1");
        assert_eq!(run("{.items[0].metadata.labels['app']}"), "a");
        assert_eq!(
            run("{.items[-1:].metadata.name}|{.items[0:2].metadata.name}"),
            "b10|a b10"
        );
        assert_eq!(
            run(r#"{.items[0].status.conditions[?(@.type=="Ready")].status}"#),
            "True"
        );
        assert_eq!(run(r#"{.items[?(@.spec.replicas>1)].metadata.name}"#), "a");
        // Objects and arrays as compact JSON, scalars as text, missing fields as nothing.
        assert_eq!(run("{.items[1].metadata.labels}"), "{}");
        assert_eq!(run("{.items[0].spec.paused}{.items[0].nope}"), "false");
        assert_eq!(
            run("{.items[1].spec.containers}"),
            r#"[{"image":"busybox:1.36","name":"c"}]"#
        );
        // Text outside actions is printed as it is.
        assert_eq!(run(".metadata.name"), ".metadata.name");
        // Ranges nest.
        assert_eq!(
            run("{range .items[*]}{.metadata.name}:{range .spec.containers[*]}{.name},{end};{end}"),
            "a:c1,c2,;b10:c,;"
        );
    }

    #[test]
    fn bad_templates_are_named() {
        let e = Template::parse("{.items[0].metadata.uid").unwrap_err();
        assert_eq!(
            e.to_string(),
            "error parsing jsonpath {.items[0].metadata.uid, unclosed action"
        );
        assert!(
            Template::parse("{range .items[*]}{.a}")
                .unwrap_err()
                .to_string()
                .contains("unclosed range")
        );
        assert!(
            Template::parse("{end}")
                .unwrap_err()
                .to_string()
                .contains("not in range")
        );
        assert!(Template::parse("{.items[0}").is_err());
        assert!(Template::parse("{items}").is_err());
    }

    #[test]
    fn relaxed_expressions_and_go_values() {
        let v = list();
        for text in [
            ".items[0].metadata.name",
            "{.items[0].metadata.name}",
            "items[0].metadata.name",
        ] {
            let e = Expr::relaxed(text).unwrap();
            assert_eq!(e.select(&v).unwrap(), vec![&json!("a")], "{text}");
        }
        assert!(Expr::relaxed("{}").is_err());
        assert_eq!(
            go_text(&json!({"b": [1, "x", {"c": true}], "a": null})),
            "map[a:<nil> b:[1 x map[c:true]]]"
        );
    }
}

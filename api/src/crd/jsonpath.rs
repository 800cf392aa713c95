//! The JSONPath subset Kubernetes uses in printer columns and `kubectl get -o
//! jsonpath`: fields (`.spec.replicas`, `['app.kubernetes.io/name']`), list indexes
//! (`[0]`, `[-1]`), wildcards (`[*]`, `.*`) and filters
//! (`[?(@.type=="Ready")]`, `[?(@.ready)]`). The braces kubectl writes
//! (`{.spec.replicas}`) and a leading `$` are accepted.
//!
//! Recursive descent (`..name`), slices (`[1:3]`), unions (`[0,1]`) and `range` are not
//! supported: [`JsonPath::parse`] refuses them.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

use super::{Error, Result};

/// One step of a path.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Wildcard,
    Filter(Filter),
}

/// `?(@.path <op> literal)`, or `?(@.path)` for "exists and is not false/null".
#[derive(Clone, Debug, PartialEq)]
struct Filter {
    path: Vec<Step>,
    test: Option<(Op, Value)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A parsed JSONPath expression.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath {
    text: String,
    steps: Vec<Step>,
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl JsonPath {
    /// Parses an expression such as `.status.conditions[?(@.type=="Ready")].status`.
    pub fn parse(text: &str) -> Result<Self> {
        let err = |reason: &str| Error::InvalidJsonPath {
            expression: text.to_string(),
            reason: reason.to_string(),
        };
        let mut inner = text.trim();
        if let Some(rest) = inner.strip_prefix('{') {
            inner = rest
                .strip_suffix('}')
                .ok_or_else(|| err("unclosed '{'"))?
                .trim();
        }
        let inner = inner.strip_prefix('$').unwrap_or(inner);
        let mut parser = Parser {
            chars: inner.chars().collect(),
            pos: 0,
        };
        let steps = parser.steps(false).map_err(|r| err(&r))?;
        if parser.pos < parser.chars.len() {
            return Err(err(&format!(
                "unexpected {:?} at position {}",
                parser.chars[parser.pos], parser.pos
            )));
        }
        Ok(Self {
            text: text.to_string(),
            steps,
        })
    }

    /// Every value the path selects in `root`, in document order.
    pub fn find<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        eval(&self.steps, root)
    }

    /// The names of the path when it is a plain chain of fields (`.spec.replicas` →
    /// `["spec", "replicas"]`), as the scale subresource's paths must be.
    pub fn fields(&self) -> Option<Vec<&str>> {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Field(f) => Some(f.as_str()),
                _ => None,
            })
            .collect()
    }
}

fn eval<'a>(steps: &[Step], root: &'a Value) -> Vec<&'a Value> {
    let mut current = vec![root];
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            match (step, v) {
                (Step::Field(name), Value::Object(m)) => next.extend(m.get(name)),
                (Step::Index(i), Value::Array(a)) => {
                    let len = a.len() as i64;
                    let i = if *i < 0 { len + i } else { *i };
                    if (0..len).contains(&i) {
                        next.extend(a.get(i as usize));
                    }
                }
                (Step::Wildcard, Value::Array(a)) => next.extend(a.iter()),
                (Step::Wildcard, Value::Object(m)) => next.extend(m.values()),
                (Step::Filter(f), Value::Array(a)) => {
                    next.extend(a.iter().filter(|item| f.matches(item)));
                }
                (Step::Filter(f), item @ Value::Object(_)) if f.matches(item) => next.push(item),
                _ => {}
            }
        }
        current = next;
    }
    current
}

impl Filter {
    fn matches(&self, item: &Value) -> bool {
        let found = eval(&self.path, item);
        match &self.test {
            None => found
                .first()
                .is_some_and(|v| !matches!(v, Value::Null | Value::Bool(false))),
            Some((op, literal)) => found.iter().any(|v| compare(v, *op, literal)),
        }
    }
}

fn compare(v: &Value, op: Op, literal: &Value) -> bool {
    let ordering = match (v, literal) {
        (Value::Number(a), Value::Number(b)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(a, b)| a.partial_cmp(&b)),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (a, b) if a == b => Some(Ordering::Equal),
        _ => None,
    };
    match (op, ordering) {
        (Op::Eq, o) => o == Some(Ordering::Equal),
        (Op::Ne, o) => o != Some(Ordering::Equal),
        (Op::Lt, Some(o)) => o == Ordering::Less,
        (Op::Le, Some(o)) => o != Ordering::Greater,
        (Op::Gt, Some(o)) => o == Ordering::Greater,
        (Op::Ge, Some(o)) => o != Ordering::Less,
        (_, None) => false,
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// Steps until the end, or (inside a filter) until an operator or `)`.
    fn steps(&mut self, in_filter: bool) -> Result<Vec<Step>, String> {
        let mut steps = Vec::new();
        loop {
            match self.peek() {
                None => break,
                Some('.') => {
                    self.pos += 1;
                    match self.peek() {
                        Some('.') => return Err("recursive descent (..) is not supported".into()),
                        Some('*') => {
                            self.pos += 1;
                            steps.push(Step::Wildcard);
                        }
                        Some('[') | None => {}
                        Some(_) => steps.push(Step::Field(self.name()?)),
                    }
                }
                Some('[') => {
                    self.pos += 1;
                    steps.push(self.bracket()?);
                }
                Some(_) if in_filter => break,
                Some(c) if steps.is_empty() && (c.is_alphanumeric() || c == '_') => {
                    // `spec.replicas` without the leading dot, as some users write it.
                    steps.push(Step::Field(self.name()?));
                }
                Some(c) => return Err(format!("unexpected {c:?} at position {}", self.pos)),
            }
        }
        Ok(steps)
    }

    fn name(&mut self) -> Result<String, String> {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c == '\\' {
                // `\.` escapes a dot in a field name.
                self.pos += 1;
                match self.peek() {
                    Some(e) => name.push(e),
                    None => return Err("dangling escape".into()),
                }
            } else if c.is_alphanumeric() || matches!(c, '_' | '-' | '/') {
                name.push(c);
            } else {
                break;
            }
            self.pos += 1;
        }
        if name.is_empty() {
            return Err(format!("expected a field name at position {}", self.pos));
        }
        Ok(name)
    }

    fn bracket(&mut self) -> Result<Step, String> {
        self.skip_spaces();
        let step = match self.peek() {
            Some('*') => {
                self.pos += 1;
                Step::Wildcard
            }
            Some('\'' | '"') => Step::Field(self.quoted()?),
            Some('?') => {
                self.pos += 1;
                Step::Filter(self.filter()?)
            }
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let start = self.pos;
                self.pos += 1;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                if matches!(self.peek(), Some(':' | ',')) {
                    return Err("slices and unions are not supported".into());
                }
                Step::Index(
                    text.parse()
                        .map_err(|_| format!("invalid array index {text:?}"))?,
                )
            }
            _ => return Err(format!("unexpected '[' content at position {}", self.pos)),
        };
        self.skip_spaces();
        if !self.eat(']') {
            return Err(format!("expected ']' at position {}", self.pos));
        }
        Ok(step)
    }

    fn quoted(&mut self) -> Result<String, String> {
        let quote = self.peek().unwrap_or('\'');
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return Err("unterminated string".into()),
                Some('\\') => {
                    self.pos += 1;
                    if let Some(c) = self.peek() {
                        s.push(c);
                        self.pos += 1;
                    }
                }
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some(c) => {
                    s.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn filter(&mut self) -> Result<Filter, String> {
        self.skip_spaces();
        if !self.eat('(') {
            return Err("expected '(' after '?'".into());
        }
        self.skip_spaces();
        if !self.eat('@') {
            return Err("a filter must start with '@'".into());
        }
        let path = self.steps(true)?;
        self.skip_spaces();
        let test = if self.eat(')') {
            None
        } else {
            let op = self.op()?;
            self.skip_spaces();
            let literal = self.literal()?;
            self.skip_spaces();
            if !self.eat(')') {
                return Err(format!("expected ')' at position {}", self.pos));
            }
            Some((op, literal))
        };
        Ok(Filter { path, test })
    }

    fn op(&mut self) -> Result<Op, String> {
        let two: String = self.chars[self.pos..].iter().take(2).collect();
        let (op, len) = match two.as_str() {
            "==" => (Op::Eq, 2),
            "!=" => (Op::Ne, 2),
            "<=" => (Op::Le, 2),
            ">=" => (Op::Ge, 2),
            _ if two.starts_with('<') => (Op::Lt, 1),
            _ if two.starts_with('>') => (Op::Gt, 1),
            _ => return Err(format!("expected a comparison at position {}", self.pos)),
        };
        self.pos += len;
        Ok(op)
    }

    fn literal(&mut self) -> Result<Value, String> {
        if matches!(self.peek(), Some('\'' | '"')) {
            return self.quoted().map(Value::String);
        }
        let start = self.pos;
        while self.peek().is_some_and(|c| !c.is_whitespace() && c != ')') {
            self.pos += 1;
        }
        let word: String = self.chars[start..self.pos].iter().collect();
        match serde_json::from_str::<Value>(&word) {
            Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => Ok(v),
            _ => Err(format!("invalid literal {word:?} in filter")),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn find(path: &str, v: &Value) -> Vec<Value> {
        JsonPath::parse(path)
            .unwrap()
            .find(v)
            .into_iter()
            .cloned()
            .collect()
    }

    fn object() -> Value {
        json!({
            "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"replicas": 3, "items": [{"name": "a"}, {"name": "b"}]},
            "status": {"conditions": [
                {"type": "Progressing", "status": "True", "count": 1},
                {"type": "Ready", "status": "False", "count": 5}
            ]}
        })
    }

    #[test]
    fn dotted_fields_select_one_value() {
        assert_eq!(find(".spec.replicas", &object()), [json!(3)]);
        assert_eq!(find("{.spec.replicas}", &object()), [json!(3)]);
        assert_eq!(find("$.spec.replicas", &object()), [json!(3)]);
    }

    #[test]
    fn indexes_and_wildcards_walk_lists() {
        assert_eq!(find(".spec.items[0].name", &object()), [json!("a")]);
        assert_eq!(find(".spec.items[-1].name", &object()), [json!("b")]);
        assert_eq!(
            find(".spec.items[*].name", &object()),
            [json!("a"), json!("b")]
        );
        assert_eq!(find(".spec.items[5].name", &object()), Vec::<Value>::new());
    }

    #[test]
    fn filters_compare_strings_and_numbers() {
        assert_eq!(
            find(
                r#".status.conditions[?(@.type=="Ready")].status"#,
                &object()
            ),
            [json!("False")]
        );
        assert_eq!(
            find(".status.conditions[?(@.count > 2)].type", &object()),
            [json!("Ready")]
        );
        assert_eq!(
            find(".status.conditions[?(@.type != 'Ready')].type", &object()),
            [json!("Progressing")]
        );
    }

    #[test]
    fn bracketed_keys_may_hold_dots() {
        assert_eq!(
            find(".metadata.labels['app.kubernetes.io/name']", &object()),
            [json!("web")]
        );
        assert_eq!(
            find(r".metadata.labels.app\.kubernetes\.io/name", &object()),
            [json!("web")]
        );
    }

    #[test]
    fn unsupported_syntax_is_refused_with_the_reason() {
        let err = JsonPath::parse("..name").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid JSONPath \"..name\": recursive descent (..) is not supported"
        );
        assert!(JsonPath::parse(".items[0:2]").is_err());
        assert!(JsonPath::parse(".items[?(@.a == bare)]").is_err());
        assert!(JsonPath::parse("{.spec").is_err());
    }

    #[test]
    fn plain_paths_list_their_fields() {
        let p = JsonPath::parse(".spec.replicas").unwrap();
        assert_eq!(p.fields(), Some(vec!["spec", "replicas"]));
        assert_eq!(JsonPath::parse(".spec.items[0]").unwrap().fields(), None);
    }
}

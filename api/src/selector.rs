//! Label and field selectors.
//!
//! Label selectors use `kube-core`'s [`Selector`] and [`Expression`] (matching, the
//! string form, conversion to and from `LabelSelector`); this module adds what kube-core
//! lacks: parsing the string syntax (`app=web,tier!=db,env in (a,b),!legacy`) and
//! checking a `LabelSelector`'s keys, values and operators. Field selectors
//! (`metadata.name=web,spec.nodeName!=n1`) are rk8s's own.
//!
//! ```
//! use rk8s_api::selector::parse_label_selector;
//! use kube_core::SelectorExt;
//!
//! let sel = parse_label_selector("app=web, env in (prod,staging), !legacy")?;
//! let labels = [("app".to_string(), "web".to_string()), ("env".into(), "prod".into())];
//! assert!(sel.matches(&labels.into_iter().collect()));
//! # Ok::<(), rk8s_api::selector::SelectorError>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::IgnoredAny;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
pub use kube_core::{Expression, Selector, SelectorExt};

use crate::names;
use crate::object::{AnyObject, ObjectKind};
use crate::stored::StoredView;

/// A selector that cannot be parsed or used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The text does not follow the selector syntax.
    #[error("invalid selector \"{selector}\": {reason}")]
    Syntax {
        /// The whole selector text.
        selector: String,
        /// What is wrong.
        reason: String,
    },
    /// A field selector names a field that the kind cannot be selected by.
    #[error("field label not supported: {field} (supported for {kind}: {supported})")]
    UnsupportedField {
        /// The field named.
        field: String,
        /// The kind selected.
        kind: String,
        /// The fields that are supported, comma-separated.
        supported: String,
    },
}

#[derive(Debug, PartialEq, Clone)]
enum Token {
    Word(String),
    Comma,
    Open,
    Close,
    Eq,
    DoubleEq,
    NotEq,
    Bang,
}

fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            ',' => out.push(Token::Comma),
            '(' => out.push(Token::Open),
            ')' => out.push(Token::Close),
            '=' if chars.peek() == Some(&'=') => {
                chars.next();
                out.push(Token::DoubleEq);
            }
            '=' => out.push(Token::Eq),
            '!' if chars.peek() == Some(&'=') => {
                chars.next();
                out.push(Token::NotEq);
            }
            '!' => out.push(Token::Bang),
            '<' | '>' => {
                return Err(format!(
                    "operator '{c}' is not supported (use =, ==, !=, in, notin, exists or !key)"
                ));
            }
            c => {
                let mut word = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || ",()=!<>".contains(n) {
                        break;
                    }
                    word.push(n);
                    chars.next();
                }
                out.push(Token::Word(word));
            }
        }
    }
    Ok(out)
}

fn check_key(key: &str) -> Result<(), String> {
    match names::qualified_name(key).first() {
        None => Ok(()),
        Some(e) => Err(format!("invalid label key \"{key}\": {e}")),
    }
}

fn check_value(value: &str) -> Result<(), String> {
    match names::label_value(value).first() {
        None => Ok(()),
        Some(e) => Err(format!("invalid label value \"{value}\": {e}")),
    }
}

/// Parses the string form of a label selector, as `kubectl -l` and `?labelSelector=`
/// take it. The empty string selects everything.
pub fn parse_label_selector(s: &str) -> Result<Selector, SelectorError> {
    parse_expressions(s)
        .map(Selector::from_iter)
        .map_err(|reason| SelectorError::Syntax {
            selector: s.to_string(),
            reason,
        })
}

fn parse_expressions(s: &str) -> Result<Vec<Expression>, String> {
    let tokens = tokenize(s)?;
    let mut exprs = Vec::new();
    let mut pos = 0;
    let word = |pos: usize, what: &str| match tokens.get(pos) {
        Some(Token::Word(w)) => Ok(w.clone()),
        Some(t) => Err(format!("expected {what}, found {t:?}")),
        None => Err(format!("expected {what} at the end")),
    };
    while pos < tokens.len() {
        let expr = if tokens[pos] == Token::Bang {
            let key = word(pos + 1, "a label key after '!'")?;
            check_key(&key)?;
            pos += 2;
            Expression::DoesNotExist(key)
        } else {
            let key = word(pos, "a label key")?;
            check_key(&key)?;
            pos += 1;
            match tokens.get(pos) {
                None | Some(Token::Comma) => Expression::Exists(key),
                Some(op @ (Token::Eq | Token::DoubleEq | Token::NotEq)) => {
                    let op = op.clone();
                    // `key=` selects an empty value.
                    let value = match tokens.get(pos + 1) {
                        Some(Token::Word(w)) => {
                            pos += 2;
                            w.clone()
                        }
                        None | Some(Token::Comma) => {
                            pos += 1;
                            String::new()
                        }
                        Some(t) => return Err(format!("expected a label value, found {t:?}")),
                    };
                    check_value(&value)?;
                    if op == Token::NotEq {
                        Expression::NotEqual(key, value)
                    } else {
                        Expression::Equal(key, value)
                    }
                }
                Some(Token::Word(op)) if op == "in" || op == "notin" => {
                    let op = op.clone();
                    if tokens.get(pos + 1) != Some(&Token::Open) {
                        return Err(format!("expected '(' after '{op}'"));
                    }
                    pos += 2;
                    let mut values = BTreeSet::new();
                    loop {
                        match tokens.get(pos) {
                            Some(Token::Word(v)) => {
                                check_value(v)?;
                                values.insert(v.clone());
                                pos += 1;
                            }
                            Some(t) => return Err(format!("expected a label value, found {t:?}")),
                            None => return Err("missing ')'".to_string()),
                        }
                        match tokens.get(pos) {
                            Some(Token::Comma) => pos += 1,
                            Some(Token::Close) => {
                                pos += 1;
                                break;
                            }
                            _ => return Err("expected ',' or ')' in a value list".to_string()),
                        }
                    }
                    if op == "in" {
                        Expression::In(key, values)
                    } else {
                        Expression::NotIn(key, values)
                    }
                }
                Some(t) => {
                    return Err(format!("expected an operator after \"{key}\", found {t:?}"));
                }
            }
        };
        exprs.push(expr);
        match tokens.get(pos) {
            None => {}
            Some(Token::Comma) if pos + 1 < tokens.len() => pos += 1,
            Some(Token::Comma) => return Err("trailing ','".to_string()),
            Some(t) => return Err(format!("expected ',' between requirements, found {t:?}")),
        }
    }
    Ok(exprs)
}

/// Checks a `LabelSelector` (keys, values, operators and their values) and turns it
/// into a [`Selector`]. Each problem is returned with the field it is in, relative to
/// the selector (`matchExpressions[0].values`).
pub fn label_selector(sel: &LabelSelector) -> Result<Selector, Vec<(String, String)>> {
    let mut errs = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        if let Err(e) = check_key(k) {
            errs.push((format!("matchLabels[{k}]"), e));
        }
        if let Err(e) = check_value(v) {
            errs.push((format!("matchLabels[{k}]"), e));
        }
    }
    for (i, req) in sel.match_expressions.iter().flatten().enumerate() {
        if let Err(e) = check_key(&req.key) {
            errs.push((format!("matchExpressions[{i}].key"), e));
        }
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => errs.push((
                format!("matchExpressions[{i}].values"),
                "must be specified when `operator` is 'In' or 'NotIn'".to_string(),
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.push((
                format!("matchExpressions[{i}].values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'".to_string(),
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push((
                format!("matchExpressions[{i}].operator"),
                format!(
                    "unsupported value \"{other}\": supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\""
                ),
            )),
        }
        for v in values {
            if let Err(e) = check_value(v) {
                errs.push((format!("matchExpressions[{i}].values"), e));
            }
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Selector::try_from(sel.clone()).map_err(|e| vec![(String::new(), e.to_string())])
}

/// The operator of a field selector requirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldOp {
    /// `=` or `==`.
    Equal,
    /// `!=`.
    NotEqual,
}

/// One `field=value` or `field!=value` requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field (`spec.nodeName`).
    pub field: String,
    /// `=` or `!=`.
    pub op: FieldOp,
    /// The value compared with (may be empty).
    pub value: String,
}

/// A field selector: all requirements must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<FieldRequirement>);

/// Splits on an unescaped `sep`, keeping escapes (`\,` `\=` `\\`) for a later unescape.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in s.chars() {
        let last = parts.last_mut();
        match (escaped, c, last) {
            (false, '\\', Some(p)) => {
                escaped = true;
                p.push(c);
            }
            (false, c, _) if c == sep => parts.push(String::new()),
            (_, c, Some(p)) => {
                escaped = false;
                p.push(c);
            }
            (_, _, None) => {}
        }
    }
    parts
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                _ => return Err(format!("invalid escape sequence in \"{s}\"")),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = |reason: String| SelectorError::Syntax {
            selector: s.to_string(),
            reason,
        };
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector(reqs));
        }
        for part in split_unescaped(s, ',') {
            let (field, op, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, FieldOp::NotEqual, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, FieldOp::Equal, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, FieldOp::Equal, v)
            } else {
                return Err(syntax(format!("\"{part}\" has no operator (=, == or !=)")));
            };
            let field = field.trim();
            if field.is_empty() {
                return Err(syntax(format!("\"{part}\" has no field name")));
            }
            reqs.push(FieldRequirement {
                field: field.to_string(),
                op,
                value: unescape(value.trim()).map_err(syntax)?,
            });
        }
        Ok(FieldSelector(reqs))
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let value = r
                .value
                .replace('\\', "\\\\")
                .replace(',', "\\,")
                .replace('=', "\\=");
            let op = match r.op {
                FieldOp::Equal => "=",
                FieldOp::NotEqual => "!=",
            };
            write!(f, "{}{op}{value}", r.field)?;
        }
        Ok(())
    }
}

/// The fields a kind can be selected by (every kind: `metadata.name` and
/// `metadata.namespace`).
pub fn supported_fields(kind: &ObjectKind) -> &'static [&'static str] {
    match kind.kind {
        "Pod" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Node" => &["metadata.name", "spec.unschedulable"],
        "Namespace" => &["metadata.name", "status.phase"],
        "Event" if kind.api_version == "v1" => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Secret" => &["metadata.name", "metadata.namespace", "type"],
        "ReplicaSet" | "ReplicationController" => {
            &["metadata.name", "metadata.namespace", "status.replicas"]
        }
        "Job" => &["metadata.name", "metadata.namespace", "status.successful"],
        "CertificateSigningRequest" => &["metadata.name", "spec.signerName"],
        _ if kind.is_namespaced() => &["metadata.name", "metadata.namespace"],
        _ => &["metadata.name"],
    }
}

/// The value of a selectable field of an object (empty when unset, as Kubernetes
/// compares it), or `None` if the field is not selectable on that kind.
pub fn field_value(obj: &AnyObject, field: &str) -> Option<String> {
    if !supported_fields(&obj.kind()).contains(&field) {
        return None;
    }
    let s = |v: Option<&String>| v.cloned().unwrap_or_default();
    let meta = obj.metadata();
    Some(match (obj, field) {
        (_, "metadata.name") => s(meta.name.as_ref()),
        (_, "metadata.namespace") => s(meta.namespace.as_ref()),
        (AnyObject::Pod(p), f) => {
            let spec = p.spec.as_ref();
            let status = p.status.as_ref();
            match f {
                "spec.nodeName" => s(spec.and_then(|s| s.node_name.as_ref())),
                "spec.restartPolicy" => s(spec.and_then(|s| s.restart_policy.as_ref())),
                "spec.schedulerName" => s(spec.and_then(|s| s.scheduler_name.as_ref())),
                "spec.serviceAccountName" => s(spec.and_then(|s| s.service_account_name.as_ref())),
                "spec.hostNetwork" => spec
                    .and_then(|s| s.host_network)
                    .unwrap_or(false)
                    .to_string(),
                "status.phase" => s(status.and_then(|s| s.phase.as_ref())),
                "status.podIP" => s(status.and_then(|s| s.pod_ip.as_ref())),
                "status.nominatedNodeName" => {
                    s(status.and_then(|s| s.nominated_node_name.as_ref()))
                }
                _ => return None,
            }
        }
        (AnyObject::Node(n), "spec.unschedulable") => n
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false)
            .to_string(),
        (AnyObject::Namespace(n), "status.phase") => {
            s(n.status.as_ref().and_then(|s| s.phase.as_ref()))
        }
        (AnyObject::Event(e), f) => {
            let o = &e.involved_object;
            match f {
                "involvedObject.kind" => s(o.kind.as_ref()),
                "involvedObject.name" => s(o.name.as_ref()),
                "involvedObject.namespace" => s(o.namespace.as_ref()),
                "involvedObject.uid" => s(o.uid.as_ref()),
                "involvedObject.apiVersion" => s(o.api_version.as_ref()),
                "involvedObject.resourceVersion" => s(o.resource_version.as_ref()),
                "involvedObject.fieldPath" => s(o.field_path.as_ref()),
                "reason" => s(e.reason.as_ref()),
                "reportingComponent" => s(e.reporting_component.as_ref()),
                "source" => s(e.source.as_ref().and_then(|s| s.component.as_ref())),
                "type" => s(e.type_.as_ref()),
                _ => return None,
            }
        }
        (AnyObject::Secret(secret), "type") => s(secret.type_.as_ref()),
        (AnyObject::ReplicaSet(rs), "status.replicas") => {
            rs.status.as_ref().map_or(0, |s| s.replicas).to_string()
        }
        (AnyObject::ReplicationController(rc), "status.replicas") => {
            rc.status.as_ref().map_or(0, |s| s.replicas).to_string()
        }
        (AnyObject::Job(job), "status.successful") => job
            .status
            .as_ref()
            .and_then(|s| s.succeeded)
            .unwrap_or(0)
            .to_string(),
        (AnyObject::CertificateSigningRequest(csr), "spec.signerName") => {
            csr.spec.signer_name.clone()
        }
        _ => return None,
    })
}

/// The fields a pod's field selector can name besides its metadata, as a
/// [`StoredView`] reads them.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodSpecFields {
    node_name: Option<String>,
    restart_policy: Option<String>,
    scheduler_name: Option<String>,
    service_account_name: Option<String>,
    host_network: Option<bool>,
}

/// See [`PodSpecFields`].
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodStatusFields {
    phase: Option<String>,
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
    nominated_node_name: Option<String>,
}

/// An object as selectors see it, read from its stored JSON without decoding it: its
/// labels, and for a pod every field a field selector can name (kubelet watches the
/// pods of its node with `spec.nodeName=NODE`, so that selector meets every pod
/// change). Objects of other kinds are decoded for a field selector.
#[derive(Debug, Default)]
pub struct Selectable {
    /// The object's labels.
    pub labels: BTreeMap<String, String>,
    pod: Option<StoredView<PodSpecFields, PodStatusFields>>,
}

impl Selectable {
    /// Reads a stored object of `kind`; `None` if its JSON does not have the shape
    /// the view expects (decoding it tells what is wrong).
    pub fn read(kind: &ObjectKind, json: &[u8]) -> Option<Self> {
        if kind.kind == "Pod" && kind.api_version == "v1" {
            let mut pod = StoredView::<PodSpecFields, PodStatusFields>::read(json).ok()?;
            Some(Selectable {
                labels: std::mem::take(&mut pod.metadata.labels),
                pod: Some(pod),
            })
        } else {
            let view = StoredView::<IgnoredAny, IgnoredAny>::read(json).ok()?;
            Some(Selectable {
                labels: view.metadata.labels,
                pod: None,
            })
        }
    }

    /// A pod's `spec.nodeName` (empty while it is not bound); `None` if the object is
    /// not a pod.
    pub fn node_name(&self) -> Option<&str> {
        let pod = self.pod.as_ref()?;
        Some(
            pod.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .unwrap_or_default(),
        )
    }

    /// Whether `selector` selects the object, as [`FieldSelector::matches`] says of
    /// it decoded; `None` if the view does not hold the fields (not a pod).
    pub fn matches_fields(&self, selector: &FieldSelector) -> Option<bool> {
        let pod = self.pod.as_ref()?;
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        Some(selector.matches_with(|field| {
            Some(match field {
                "metadata.name" => pod.metadata.name.clone(),
                "metadata.namespace" => pod.metadata.namespace.clone(),
                "spec.nodeName" => spec.map(|p| s(&p.node_name)).unwrap_or_default(),
                "spec.restartPolicy" => spec.map(|p| s(&p.restart_policy)).unwrap_or_default(),
                "spec.schedulerName" => spec.map(|p| s(&p.scheduler_name)).unwrap_or_default(),
                "spec.serviceAccountName" => {
                    spec.map(|p| s(&p.service_account_name)).unwrap_or_default()
                }
                "spec.hostNetwork" => spec
                    .and_then(|p| p.host_network)
                    .unwrap_or(false)
                    .to_string(),
                "status.phase" => status.map(|p| s(&p.phase)).unwrap_or_default(),
                "status.podIP" => status.map(|p| s(&p.pod_ip)).unwrap_or_default(),
                "status.nominatedNodeName" => status
                    .map(|p| s(&p.nominated_node_name))
                    .unwrap_or_default(),
                _ => return None,
            })
        }))
    }
}

impl FieldSelector {
    /// The value `field` must equal (its `field=value` requirement), if there is one.
    pub fn required(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.field == field && r.op == FieldOp::Equal)
            .map(|r| r.value.as_str())
    }

    /// Checks that every field can be selected on `kind`.
    pub fn check(&self, kind: &ObjectKind) -> Result<(), SelectorError> {
        let supported = supported_fields(kind);
        match self
            .0
            .iter()
            .find(|r| !supported.contains(&r.field.as_str()))
        {
            None => Ok(()),
            Some(r) => Err(SelectorError::UnsupportedField {
                field: r.field.clone(),
                kind: kind.kind.to_string(),
                supported: supported.join(", "),
            }),
        }
    }

    /// Whether `obj` satisfies every requirement (an unsupported field never matches).
    pub fn matches(&self, obj: &AnyObject) -> bool {
        self.matches_with(|field| field_value(obj, field))
    }

    /// Whether every requirement holds of the fields `value` gives (`None`: not
    /// selectable, never matches).
    pub fn matches_with(&self, value: impl Fn(&str) -> Option<String>) -> bool {
        self.0.iter().all(|r| match value(&r.field) {
            None => false,
            Some(v) => (v == r.value) == (r.op == FieldOp::Equal),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, ObjectMeta};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_operator() {
        let sel =
            parse_label_selector("app=web,tier!=db,env in (a,b),!legacy,track,x==y,k notin (z)")
                .unwrap();
        assert_eq!(
            sel.to_string(),
            "app=web,tier!=db,env in (a,b),!legacy,track,x=y,k notin (z)"
        );
        let l = labels(&[("app", "web"), ("env", "a"), ("track", "1"), ("x", "y")]);
        assert!(sel.matches(&l));
        let l = labels(&[("app", "web"), ("env", "c"), ("track", "1"), ("x", "y")]);
        assert!(!sel.matches(&l));
        assert!(parse_label_selector("").unwrap().selects_all());
        assert!(
            parse_label_selector("a=")
                .unwrap()
                .matches(&labels(&[("a", "")]))
        );
    }

    #[test]
    fn syntax_errors_say_what_is_wrong() {
        let err = |s: &str| parse_label_selector(s).unwrap_err().to_string();
        assert_eq!(
            err("env in a,b"),
            "invalid selector \"env in a,b\": expected '(' after 'in'"
        );
        assert_eq!(err("a=b,"), "invalid selector \"a=b,\": trailing ','");
        assert!(err("x>1").contains("not supported"));
        assert!(err("bad key=1").contains("expected an operator"));
        assert!(err("-a=1").contains("invalid label key"));
        assert!(err("env in ()").contains("expected a label value"));
    }

    #[test]
    fn label_selector_struct_is_checked() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "env".into(),
                    operator: "In".into(),
                    values: None,
                },
                LabelSelectorRequirement {
                    key: "x".into(),
                    operator: "Matches".into(),
                    values: None,
                },
            ]),
        };
        let errs = label_selector(&sel).unwrap_err();
        assert_eq!(errs[0].0, "matchExpressions[0].values");
        assert!(errs[1].1.contains("unsupported value \"Matches\""));
    }

    #[test]
    fn field_selectors_match_pods() {
        let pod: AnyObject = Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                ..Default::default()
            }),
        }
        .into();
        let sel: FieldSelector = "spec.nodeName=n1,status.phase!=Pending".parse().unwrap();
        assert!(sel.matches(&pod));
        let sel: FieldSelector = "spec.nodeName==".parse().unwrap();
        assert!(!sel.matches(&pod));
        let sel: FieldSelector = "spec.host=n1".parse().unwrap();
        assert_eq!(
            sel.check(&pod.kind()).unwrap_err().to_string(),
            "field label not supported: spec.host (supported for Pod: metadata.name, \
             metadata.namespace, spec.nodeName, spec.restartPolicy, spec.schedulerName, \
             spec.serviceAccountName, spec.hostNetwork, status.phase, status.podIP, \
             status.nominatedNodeName)"
        );
        let escaped: FieldSelector = r"metadata.name=a\,b".parse().unwrap();
        assert_eq!(escaped.0[0].value, "a,b");
        assert_eq!(escaped.to_string(), r"metadata.name=a\,b");
    }

    fn maybe(values: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop::sample::select(values).prop_map(String::from))
    }

    proptest! {
        /// A pod read from its JSON is selected exactly as the decoded pod is, for
        /// every field a pod's selector can name.
        #[test]
        fn a_pods_stored_json_is_selected_as_the_decoded_pod(
            node in maybe(&["n1", "n2", ""]),
            phase in maybe(&["Running", "Pending"]),
            restart in maybe(&["Always", "Never"]),
            scheduler in maybe(&["default-scheduler", "other"]),
            ip in maybe(&["10.0.0.1"]),
            account in maybe(&["default", "other"]),
            host_network in prop::option::of(any::<bool>()),
            nominated in maybe(&["n2"]),
            reqs in prop::collection::vec(
                (
                    prop::sample::select(supported_fields(&crate::object::kind_named("Pod").unwrap())),
                    any::<bool>(),
                    prop::sample::select(&["n1", "n2", "", "Running", "Never", "other", "web", "default", "10.0.0.1", "true", "false"][..]),
                ),
                1..4,
            ),
        ) {
            let pod = Pod {
                metadata: ObjectMeta {
                    name: Some("web".into()),
                    namespace: Some("default".into()),
                    ..Default::default()
                },
                spec: Some(PodSpec {
                    node_name: node,
                    restart_policy: restart,
                    scheduler_name: scheduler,
                    service_account_name: account,
                    host_network,
                    ..Default::default()
                }),
                status: Some(PodStatus {
                    phase,
                    pod_ip: ip,
                    nominated_node_name: nominated,
                    ..Default::default()
                }),
            };
            let json = serde_json::to_vec(&pod).unwrap();
            let pod: AnyObject = pod.into();
            let view = Selectable::read(&pod.kind(), &json).unwrap();
            let text: Vec<String> = reqs
                .iter()
                .map(|(f, eq, v)| format!("{f}{}{v}", if *eq { "=" } else { "!=" }))
                .collect();
            let sel: FieldSelector = text.join(",").parse().unwrap();
            prop_assert_eq!(view.matches_fields(&sel), Some(sel.matches(&pod)));
        }
    }

    #[test]
    fn events_secrets_jobs_and_sets_are_selected_by_kubes_fields() {
        let event: AnyObject = serde_json::from_value::<k8s_openapi::api::core::v1::Event>(
            serde_json::json!({"metadata": {"name": "e", "namespace": "default"},
                "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                    "namespace": "default", "fieldPath": "spec"},
                "source": {"component": "kubelet"}, "reportingComponent": "kubelet",
                "reason": "Started", "type": "Normal"}),
        )
        .unwrap()
        .into();
        // What `kubectl events --for deployment/web` asks for.
        let sel: FieldSelector = "involvedObject.kind=Deployment,involvedObject.name=web,\
            involvedObject.apiVersion=apps/v1,involvedObject.fieldPath=spec,source=kubelet,\
            reportingComponent=kubelet,involvedObject.resourceVersion="
            .parse()
            .unwrap();
        assert!(sel.check(&event.kind()).is_ok());
        assert!(sel.matches(&event));
        let other: FieldSelector = "involvedObject.apiVersion=v1".parse().unwrap();
        assert!(!other.matches(&event));
        let secret: AnyObject = serde_json::from_value::<k8s_openapi::api::core::v1::Secret>(
            serde_json::json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls"}),
        )
        .unwrap()
        .into();
        let sel: FieldSelector = "type=kubernetes.io/tls".parse().unwrap();
        assert!(sel.matches(&secret));
        let job: AnyObject = serde_json::from_value::<k8s_openapi::api::batch::v1::Job>(
            serde_json::json!({"metadata": {"name": "j"}, "status": {"succeeded": 2}}),
        )
        .unwrap()
        .into();
        let sel: FieldSelector = "status.successful=2".parse().unwrap();
        assert!(sel.matches(&job));
        let rs: AnyObject = serde_json::from_value::<k8s_openapi::api::apps::v1::ReplicaSet>(
            serde_json::json!({"metadata": {"name": "r"}}),
        )
        .unwrap()
        .into();
        let sel: FieldSelector = "status.replicas=0".parse().unwrap();
        assert!(sel.matches(&rs));
    }

    #[test]
    fn only_pods_are_field_selected_from_their_json() {
        let node = crate::object::kind_named("Node").unwrap();
        let json =
            br#"{"metadata":{"name":"n1","labels":{"a":"b"}},"spec":{"unschedulable":true}}"#;
        let view = Selectable::read(&node, json).unwrap();
        assert_eq!(view.labels.get("a").map(String::as_str), Some("b"));
        let sel: FieldSelector = "spec.unschedulable=true".parse().unwrap();
        assert_eq!(view.matches_fields(&sel), None);
        // A pod whose field has another type is left to the decoder to refuse.
        let pod = crate::object::kind_named("Pod").unwrap();
        assert!(Selectable::read(&pod, br#"{"metadata":{},"spec":{"nodeName":5}}"#).is_none());
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][a-z0-9]{0,8}",
            "[a-z]{1,5}\\.[a-z]{2,4}/[a-zA-Z][a-zA-Z0-9_.-]{0,6}[a-zA-Z0-9]",
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z0-9]([A-Za-z0-9_.-]{0,8}[A-Za-z0-9])?",
            Just(String::new())
        ]
    }

    fn nonempty_values() -> impl Strategy<Value = BTreeSet<String>> {
        proptest::collection::btree_set("[a-z0-9]{1,6}", 1..4)
    }

    fn expression() -> impl Strategy<Value = Expression> {
        prop_oneof![
            (key(), nonempty_values()).prop_map(|(k, v)| Expression::In(k, v)),
            (key(), nonempty_values()).prop_map(|(k, v)| Expression::NotIn(k, v)),
            (key(), value()).prop_map(|(k, v)| Expression::Equal(k, v)),
            (key(), value()).prop_map(|(k, v)| Expression::NotEqual(k, v)),
            key().prop_map(Expression::Exists),
            key().prop_map(Expression::DoesNotExist),
        ]
    }

    fn requirement() -> impl Strategy<Value = LabelSelectorRequirement> {
        prop_oneof![
            (key(), nonempty_values(), prop::bool::ANY).prop_map(|(k, v, in_)| {
                LabelSelectorRequirement {
                    key: k,
                    operator: if in_ { "In" } else { "NotIn" }.into(),
                    values: Some(v.into_iter().collect()),
                }
            }),
            (key(), prop::bool::ANY).prop_map(|(k, exists)| LabelSelectorRequirement {
                key: k,
                operator: if exists { "Exists" } else { "DoesNotExist" }.into(),
                values: None,
            }),
        ]
    }

    proptest! {
        #[test]
        fn string_form_round_trips(exprs in proptest::collection::vec(expression(), 0..6)) {
            let sel = Selector::from_iter(exprs);
            let parsed = parse_label_selector(&sel.to_string()).unwrap();
            prop_assert_eq!(parsed, sel);
        }

        #[test]
        fn struct_form_round_trips_through_the_string_form(
            match_labels in proptest::collection::btree_map(key(), value(), 0..4),
            match_expressions in proptest::collection::vec(requirement(), 0..4),
        ) {
            let original = LabelSelector {
                match_labels: (!match_labels.is_empty()).then_some(match_labels),
                match_expressions: (!match_expressions.is_empty()).then_some(match_expressions),
            };
            let text = label_selector(&original).unwrap().to_string();
            let back = LabelSelector::from(parse_label_selector(&text).unwrap());
            prop_assert_eq!(back, original);
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(s in "\\PC{0,40}") {
            let _ = parse_label_selector(&s);
            let _ = s.parse::<FieldSelector>();
        }
    }
}

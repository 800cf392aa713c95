//! `wait --for=condition=C[=V]|jsonpath=EXPR[=V]|delete|create`: until each object
//! named (or selected with `-l`, or `--all` of a kind) is in the state asked, as
//! kubectl waits: through a watch of the object, each with the whole `--timeout`.

use std::time::Duration;

use anyhow::{Result, bail};
use kube::api::{DynamicObject, ListParams};
use kube::runtime::wait::await_condition;
use rk8s_api::duration::parse_duration;

use super::{Global, Selection, resolve_targets};
use crate::cluster::explain;
use crate::jsonpath::{Expr, json_text};

/// The state `wait` waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitFor {
    /// The object is gone.
    Delete,
    /// The object exists.
    Create,
    /// A `status.conditions` entry of this type has this status (`True` unless
    /// given; both compared without case, as kubectl compares them).
    Condition {
        /// The condition's type.
        kind: String,
        /// Its status.
        status: String,
    },
    /// The expression selects this value (or, without one, anything).
    JsonPath {
        /// The expression.
        expr: Expr,
        /// The value.
        value: Option<String>,
    },
}

impl WaitFor {
    /// Parses `--for`'s value.
    pub fn parse(text: &str) -> Result<Self> {
        if text.eq_ignore_ascii_case("delete") {
            return Ok(WaitFor::Delete);
        }
        if text.eq_ignore_ascii_case("create") {
            return Ok(WaitFor::Create);
        }
        if let Some(cond) = text.strip_prefix("condition=") {
            let (kind, status) = cond.split_once('=').unwrap_or((cond, "True"));
            if kind.is_empty() {
                bail!("condition name is empty in --for={text}");
            }
            return Ok(WaitFor::Condition {
                kind: kind.to_string(),
                status: status.to_string(),
            });
        }
        if let Some(spec) = text.strip_prefix("jsonpath=") {
            // `{EXPR}=VALUE`, `{EXPR}`, or `EXPR=VALUE` (split at the last `=`).
            let (expr, value) = match spec.strip_prefix('{') {
                Some(_) => {
                    let end = spec
                        .find('}')
                        .ok_or_else(|| anyhow::anyhow!("unclosed action in --for={text}"))?;
                    let rest = &spec[end + 1..];
                    let value = match rest.strip_prefix('=') {
                        Some(v) => Some(v),
                        None if rest.is_empty() => None,
                        None => bail!("unexpected {rest:?} after the JSONPath in --for={text}"),
                    };
                    (&spec[..=end], value)
                }
                None => match spec.rsplit_once('=') {
                    Some((e, v)) => (e, Some(v)),
                    None => (spec, None),
                },
            };
            return Ok(WaitFor::JsonPath {
                expr: Expr::relaxed(expr)?,
                value: value.map(str::to_string),
            });
        }
        bail!("unrecognized condition: {text:?}")
    }

    /// Whether `obj` (`None`: it does not exist) is in this state.
    fn met(&self, obj: Option<&DynamicObject>) -> bool {
        let Some(obj) = obj else {
            return *self == WaitFor::Delete;
        };
        match self {
            WaitFor::Delete => false,
            WaitFor::Create => true,
            WaitFor::Condition { kind, status } => condition_met(obj, kind, status),
            WaitFor::JsonPath { expr, value } => {
                let Ok(doc) = serde_json::to_value(obj) else {
                    return false;
                };
                let found = expr.select(&doc).unwrap_or_default();
                match value {
                    None => !found.is_empty(),
                    Some(v) => found.len() == 1 && json_text(found[0]) == *v,
                }
            }
        }
    }
}

/// Whether the object's condition `kind` has `status`, and (when the condition says
/// which generation it saw) for the object's current generation.
fn condition_met(obj: &DynamicObject, kind: &str, status: &str) -> bool {
    let generation = obj.metadata.generation;
    obj.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case(kind))
        })
        .any(|c| {
            let fresh = match (c["observedGeneration"].as_i64(), generation) {
                (Some(seen), Some(now)) => seen >= now,
                _ => true,
            };
            fresh
                && c["status"]
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(status))
        })
}

/// `wait`'s arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct WaitArgs {
    /// `KIND/NAME...`, `KIND NAME...`, or `KIND` with `-l` or `--all`.
    #[arg(required = true, add = crate::completion::resources(1))]
    pub resources: Vec<String>,
    /// What to wait for: `delete`, `create`, `condition=NAME[=VALUE]`,
    /// `jsonpath=EXPR[=VALUE]`.
    #[arg(long = "for", value_parser = WaitFor::parse)]
    pub wait_for: WaitFor,
    /// Every object of the kinds named.
    #[arg(long)]
    pub all: bool,
    /// Which objects (with a kind and no names).
    #[command(flatten)]
    pub select: Selection,
    /// How long to wait for each object (`30s`, `1m30s`; 0 checks once).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// `wait`.
pub async fn wait(g: &Global, a: &WaitArgs) -> Result<()> {
    let cluster = g.connect().await?;
    let targets = resolve_targets(&cluster, &a.resources).await?;
    let by_list = a.all || a.select.selector.is_some() || a.select.field_selector.is_some();
    let ns = a.select.namespace(&cluster);
    // Each object: its kind, namespace and name.
    let mut objects = Vec::new();
    for (kind, names) in &targets {
        if names.is_empty() && !by_list {
            bail!("resource(s) were provided, but no name was specified");
        }
        if names.is_empty() {
            let params = ListParams {
                label_selector: a.select.selector.clone(),
                field_selector: a.select.field_selector.clone(),
                ..Default::default()
            };
            let list = cluster.api(kind, ns).list(&params).await.map_err(explain)?;
            for o in list.items {
                let name = o.metadata.name.clone().unwrap_or_default();
                objects.push((*kind, o.metadata.namespace.clone(), name));
            }
        } else {
            for n in names {
                objects.push((*kind, ns.map(str::to_string), n.clone()));
            }
        }
    }
    if objects.is_empty() {
        bail!("no matching resources found");
    }
    let mut failures = Vec::new();
    for (kind, namespace, name) in objects {
        let api = cluster.api(&kind, namespace.as_deref());
        match a.wait_for {
            WaitFor::Create => {}
            // Already gone: nothing to wait for (and nothing printed).
            WaitFor::Delete => {
                if api.get_opt(&name).await.map_err(explain)?.is_none() {
                    continue;
                }
            }
            // A named object that does not exist is an error at once, as kubectl has it.
            _ => {
                api.get(&name).await.map_err(explain)?;
            }
        }
        let want = a.wait_for.clone();
        let waiting = await_condition(api, &name, move |o: Option<&DynamicObject>| want.met(o));
        // Zero checks once: the watch's first state.
        let limit = a.timeout.max(Duration::from_millis(200));
        match tokio::time::timeout(limit, waiting).await {
            Ok(Ok(_)) => println!("{}/{name} condition met", kind.qualified_singular()),
            Ok(Err(e)) => failures.push(format!("waiting for {}/{name}: {e}", kind.plural)),
            Err(_) => failures.push(format!(
                "timed out waiting for the condition on {}/{name}",
                kind.plural
            )),
        }
    }
    match failures.len() {
        0 => Ok(()),
        _ => bail!("{}", failures.join("\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn obj(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn conditions_parse_and_match_as_kubectls() {
        let d = obj(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "generation": 2},
            "spec": {"replicas": 2},
            "status": {"phase": "Running", "conditions": [
                {"type": "Available", "status": "False"},
                {"type": "Progressing", "status": "True", "observedGeneration": 2},
                {"type": "Stale", "status": "True", "observedGeneration": 1}]}}));
        let met = |s: &str| WaitFor::parse(s).unwrap().met(Some(&d));
        assert!(met("condition=Progressing"));
        assert!(met("condition=progressing=true"));
        assert!(!met("condition=Available"));
        assert!(met("condition=Available=False"));
        assert!(!met("condition=Stale"), "seen for an older generation");
        assert!(met("jsonpath={.status.phase}=Running"));
        assert!(met("jsonpath=.spec.replicas=2"));
        assert!(met("jsonpath={.status.phase}"));
        assert!(!met("jsonpath={.status.nope}"));
        assert!(!met("delete") && met("create"));
        assert!(WaitFor::parse("delete").unwrap().met(None));
        assert!(!WaitFor::parse("condition=Ready").unwrap().met(None));
        assert_eq!(
            WaitFor::parse("foo").unwrap_err().to_string(),
            "unrecognized condition: \"foo\""
        );
        assert!(WaitFor::parse("condition=").is_err());
        assert!(WaitFor::parse("jsonpath={.a").is_err());
    }
}

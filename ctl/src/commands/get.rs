//! `get KIND [NAME...]`: tables from the server, YAML, JSON or names, and `--watch`.

use anyhow::{Result, bail};
use futures_util::StreamExt;
use rk8s_api::ObjectKind;
use serde_json::{Value, json};

use super::{Global, query, resolve_targets, with_kind};
use crate::cluster::{Cluster, explain};
use crate::print::{self, TABLE_ACCEPT, TableStyle};

/// `get` output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// More columns.
    Wide,
    /// The objects as YAML.
    Yaml,
    /// The objects as JSON.
    Json,
    /// `kind/name` only.
    Name,
}

/// `get`'s arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct GetArgs {
    /// `KIND [NAME...]`, `KIND/NAME...` or `KIND,KIND`.
    #[arg(required = true)]
    pub resources: Vec<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector (`app=web,tier!=db`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector (`status.phase=Running`).
    #[arg(long)]
    pub field_selector: Option<String>,
    /// Output format.
    #[arg(short = 'o', long)]
    pub output: Option<Output>,
    /// After listing, watch for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

/// `get`.
pub async fn get(g: &Global, a: &GetArgs) -> Result<()> {
    let cluster = g.connect().await?;
    let targets = resolve_targets(&cluster, &a.resources).await?;
    let several = targets.len() > 1;
    let ns = (!a.all_namespaces).then_some(cluster.namespace.as_str());
    // Each object with its kind as `-o name` prints it.
    let mut structured: Vec<(String, Value)> = Vec::new();
    let mut printed_any = false;
    for (kind, names) in &targets {
        let collection = kind.collection_path(ns);
        let style = TableStyle {
            wide: a.output == Some(Output::Wide),
            namespace_column: a.all_namespaces && kind.is_namespaced(),
            no_headers: false,
            kind_prefix: None,
        };
        let list_query = query(&[
            ("labelSelector", a.selector.as_deref()),
            ("fieldSelector", a.field_selector.as_deref()),
        ]);
        let tables: Vec<Value> = match a.output {
            None | Some(Output::Wide) => {
                let mut t = Vec::new();
                if names.is_empty() {
                    t.push(
                        cluster
                            .get_json(&format!("{collection}{list_query}"), TABLE_ACCEPT)
                            .await?,
                    );
                } else {
                    for n in names {
                        t.push(
                            cluster
                                .get_json(&kind.object_path(ns, n), TABLE_ACCEPT)
                                .await?,
                        );
                    }
                }
                t
            }
            Some(_) => {
                if names.is_empty() {
                    let list = cluster
                        .get_json(&format!("{collection}{list_query}"), "application/json")
                        .await?;
                    for item in list["items"].as_array().cloned().unwrap_or_default() {
                        structured.push((kind.qualified_singular(), with_kind(item, kind)));
                    }
                } else {
                    for n in names {
                        let obj = cluster
                            .get_json(&kind.object_path(ns, n), "application/json")
                            .await?;
                        structured.push((kind.qualified_singular(), with_kind(obj, kind)));
                    }
                }
                Vec::new()
            }
        };
        let mut rows = 0;
        let mut lines = Vec::new();
        let mut printer = print::Printer::new(TableStyle {
            kind_prefix: several.then(|| kind.qualified_singular()),
            ..style
        });
        for t in &tables {
            rows += t["rows"].as_array().map_or(0, Vec::len);
            printer.style.no_headers = !lines.is_empty();
            lines.extend(printer.lines(t));
        }
        if rows > 0 {
            if printed_any {
                println!();
            }
            printed_any = true;
            for l in lines {
                println!("{l}");
            }
        }
        if a.watch {
            let rv = tables
                .first()
                .and_then(|t| t["metadata"]["resourceVersion"].as_str())
                .unwrap_or("")
                .to_string();
            printer.style.no_headers = true;
            return watch(&cluster, kind, ns, names, a, &rv, printer).await;
        }
    }
    match a.output {
        Some(Output::Yaml) | Some(Output::Json) => {
            let single = targets.len() == 1 && targets[0].1.len() == 1;
            let mut items: Vec<Value> = structured.into_iter().map(|(_, o)| o).collect();
            let doc = if single {
                items.pop().unwrap_or(Value::Null)
            } else {
                json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})
            };
            if a.output == Some(Output::Yaml) {
                print!("{}", print::yaml(&doc));
            } else {
                println!("{}", serde_json::to_string_pretty(&doc)?);
            }
        }
        Some(Output::Name) => {
            for (kind, o) in &structured {
                println!("{kind}/{}", o["metadata"]["name"].as_str().unwrap_or(""));
            }
        }
        _ if !printed_any => match ns {
            Some(ns) => eprintln!("No resources found in {ns} namespace."),
            None => eprintln!("No resources found"),
        },
        _ => {}
    }
    Ok(())
}

async fn watch(
    cluster: &Cluster,
    kind: &ObjectKind,
    ns: Option<&str>,
    names: &[String],
    a: &GetArgs,
    rv: &str,
    mut printer: print::Printer,
) -> Result<()> {
    let field = match names {
        [one] => Some(format!("metadata.name={one}")),
        _ => a.field_selector.clone(),
    };
    let path = format!(
        "{}{}",
        kind.collection_path(ns),
        query(&[
            ("watch", Some("true")),
            ("resourceVersion", Some(rv)),
            ("labelSelector", a.selector.as_deref()),
            ("fieldSelector", field.as_deref()),
        ])
    );
    let accept = match a.output {
        None | Some(Output::Wide) => TABLE_ACCEPT,
        _ => "application/json",
    };
    let req = http::Request::get(path)
        .header(http::header::ACCEPT, accept)
        .body(Vec::new())?;
    let mut events = cluster
        .client
        .request_events::<Value>(req)
        .await
        .map_err(explain)?
        .boxed();
    while let Some(ev) = events.next().await {
        let obj = match ev.map_err(explain)? {
            kube::api::WatchEvent::Added(o)
            | kube::api::WatchEvent::Modified(o)
            | kube::api::WatchEvent::Deleted(o) => o,
            kube::api::WatchEvent::Bookmark(_) => continue,
            kube::api::WatchEvent::Error(e) => {
                bail!("Error from server ({}): {}", e.reason, e.message)
            }
        };
        match a.output {
            None | Some(Output::Wide) => {
                for l in printer.lines(&obj) {
                    println!("{l}");
                }
            }
            Some(Output::Yaml) => print!("---\n{}", print::yaml(&with_kind(obj, kind))),
            Some(Output::Json) => {
                println!("{}", serde_json::to_string_pretty(&with_kind(obj, kind))?)
            }
            Some(Output::Name) => println!(
                "{}/{}",
                kind.qualified_singular(),
                obj["metadata"]["name"].as_str().unwrap_or("")
            ),
        }
    }
    Ok(())
}

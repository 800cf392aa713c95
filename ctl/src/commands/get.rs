//! `get KIND [NAME...]`: tables from the server, YAML, JSON or names, and `--watch`.

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use rk8s_api::{ObjectKind, Quantity};
use serde_json::{Value, json};

use super::{Global, Selection, query, resolve_targets, with_kind};
use crate::cluster::{Cluster, explain};
use crate::jsonpath::{Expr, Template, go_text, json_text};
use crate::print::{self, TABLE_ACCEPT, TableStyle};

/// `get`'s output formats (`-o`), as kubectl names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// More columns.
    Wide,
    /// The objects as YAML.
    Yaml,
    /// The objects as JSON.
    Json,
    /// `kind/name` only.
    Name,
    /// `jsonpath=TEMPLATE` or `jsonpath-file=FILE`.
    JsonPath(Template),
    /// `custom-columns=HEADER:EXPR,...` or `custom-columns-file=FILE`: a header and an
    /// expression per column.
    CustomColumns(Vec<(String, Expr)>),
}

impl Output {
    /// Parses `-o`'s value.
    pub fn parse(text: &str) -> Result<Self> {
        let read = |path: &str| {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))
        };
        Ok(match text.split_once('=') {
            None => match text {
                "wide" => Output::Wide,
                "yaml" => Output::Yaml,
                "json" => Output::Json,
                "name" => Output::Name,
                "jsonpath" | "jsonpath-file" | "custom-columns" | "custom-columns-file" => {
                    bail!(
                        "{text} format specified but no {} given",
                        if text.starts_with("custom") {
                            "custom column format"
                        } else {
                            "template"
                        }
                    )
                }
                _ => bail!(
                    "unable to match a printer suitable for the output format {text:?}, allowed formats are: custom-columns,custom-columns-file,json,jsonpath,jsonpath-file,name,wide,yaml"
                ),
            },
            Some(("jsonpath", t)) => Output::JsonPath(Template::parse(t)?),
            Some(("jsonpath-file", f)) => Output::JsonPath(Template::parse(&read(f)?)?),
            Some(("custom-columns", spec)) => Output::CustomColumns(custom_columns(spec)?),
            Some(("custom-columns-file", f)) => {
                let text = read(f)?;
                let mut lines = text.lines().filter(|l| !l.trim().is_empty());
                let headers: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
                let exprs: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
                if headers.len() != exprs.len() {
                    bail!(
                        "{f}: expected {} columns, got {}: the first line names the columns, the second gives their expressions",
                        headers.len(),
                        exprs.len()
                    );
                }
                headers
                    .into_iter()
                    .zip(exprs)
                    .map(|(h, e)| Ok((h.to_string(), Expr::relaxed(e)?)))
                    .collect::<Result<_>>()
                    .map(Output::CustomColumns)?
            }
            Some(_) => bail!(
                "unable to match a printer suitable for the output format {text:?}, allowed formats are: custom-columns,custom-columns-file,json,jsonpath,jsonpath-file,name,wide,yaml"
            ),
        })
    }

    fn is_table(o: Option<&Output>) -> bool {
        matches!(o, None | Some(Output::Wide))
    }
}

/// `HEADER:EXPR,HEADER:EXPR` as kubectl splits it.
fn custom_columns(spec: &str) -> Result<Vec<(String, Expr)>> {
    if spec.is_empty() {
        bail!("custom-columns format specified but no custom columns given");
    }
    spec.split(',')
        .map(|part| {
            let (header, expr) = part.split_once(':').ok_or_else(|| {
                anyhow::anyhow!(
                    "unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>"
                )
            })?;
            Ok((header.to_string(), Expr::relaxed(expr)?))
        })
        .collect()
}

/// `get`'s arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct GetArgs {
    /// `KIND [NAME...]`, `KIND/NAME...` or `KIND,KIND`.
    #[arg(required = true, add = crate::completion::resources(1))]
    pub resources: Vec<String>,
    /// Which objects.
    #[command(flatten)]
    pub select: Selection,
    /// Output format: wide, yaml, json, name, jsonpath=TEMPLATE, jsonpath-file=FILE,
    /// custom-columns=HEADER:EXPR[,...], custom-columns-file=FILE.
    #[arg(short = 'o', long, value_parser = Output::parse)]
    pub output: Option<Output>,
    /// Sort by a field (a JSONPath expression such as `.metadata.name` or
    /// `{.spec.replicas}`); objects without it first.
    #[arg(long, value_parser = Expr::relaxed)]
    pub sort_by: Option<Expr>,
    /// Leave out the header line (tables and custom columns).
    #[arg(long)]
    pub no_headers: bool,
    /// A column with the value of each of these labels (`-L app -L tier` or `-L app,tier`).
    #[arg(short = 'L', long = "label-columns", value_delimiter = ',')]
    pub label_columns: Vec<String>,
    /// A column with every label, last.
    #[arg(long)]
    pub show_labels: bool,
    /// After listing, watch for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

/// `get`.
pub async fn get(g: &Global, a: &GetArgs) -> Result<()> {
    let cluster = g.connect().await?;
    let targets = resolve_targets(&cluster, &a.resources).await?;
    let several = targets.len() > 1;
    let ns = a.select.namespace(&cluster);
    let table = Output::is_table(a.output.as_ref());
    // Each object with its kind as `-o name` prints it.
    let mut structured: Vec<(String, Value)> = Vec::new();
    let mut printed_any = false;
    let mut watched = Vec::new();
    for (kind, names) in &targets {
        let collection = kind.collection_path(ns);
        // Sorting a table needs whole objects in its rows (kubectl asks the same).
        let include = (table && a.sort_by.is_some()).then_some("Object");
        let list_query = query(&[
            ("labelSelector", a.select.selector.as_deref()),
            ("fieldSelector", a.select.field_selector.as_deref()),
            ("includeObject", include),
        ]);
        let accept = if table {
            TABLE_ACCEPT
        } else {
            "application/json"
        };
        let mut fetched = Vec::new();
        if names.is_empty() {
            fetched.push(
                cluster
                    .get_json(&format!("{collection}{list_query}"), accept)
                    .await?,
            );
        } else {
            let one_query = query(&[("includeObject", include)]);
            for n in names {
                let path = format!("{}{one_query}", kind.object_path(ns, n));
                fetched.push(cluster.get_json(&path, accept).await?);
            }
        }
        if !table {
            let mut objects: Vec<Value> = Vec::new();
            for got in fetched {
                match got.get("items") {
                    Some(items) if names.is_empty() => {
                        objects.extend(items.as_array().cloned().unwrap_or_default())
                    }
                    _ => objects.push(got),
                }
            }
            if let Some(by) = &a.sort_by {
                sort_by_field(&mut objects, by, |o| o)?;
            }
            if a.watch {
                // A watch from no revision starts with every object (ADDED).
                watched.push(Watched {
                    kind: *kind,
                    names: names.clone(),
                    rv: String::new(),
                    printer: print::Printer::new(TableStyle::default()),
                });
                continue;
            }
            structured.extend(
                objects
                    .into_iter()
                    .map(|o| (kind.qualified_singular(), with_kind(o, kind))),
            );
            continue;
        }
        let mut tables = fetched;
        if let (Some(by), [t]) = (&a.sort_by, tables.as_mut_slice())
            && let Some(rows) = t.get_mut("rows").and_then(Value::as_array_mut)
        {
            sort_by_field(rows, by, |r| &r["object"])?;
        }
        let mut printer = print::Printer::new(TableStyle {
            wide: a.output == Some(Output::Wide),
            namespace_column: a.select.all_namespaces && kind.is_namespaced(),
            no_headers: a.no_headers,
            kind_prefix: several.then(|| kind.qualified_singular()),
            label_columns: a.label_columns.clone(),
            show_labels: a.show_labels,
        });
        let mut rows = 0;
        let mut lines = Vec::new();
        for t in &tables {
            rows += t["rows"].as_array().map_or(0, Vec::len);
            printer.style.no_headers = a.no_headers || !lines.is_empty();
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
            watched.push(Watched {
                kind: *kind,
                names: names.clone(),
                rv,
                printer,
            });
        }
    }
    if a.watch {
        return watch(&cluster, ns, a, watched).await;
    }
    match a.output {
        None | Some(Output::Wide) if !printed_any => match ns {
            Some(ns) => eprintln!("No resources found in {ns} namespace."),
            None => eprintln!("No resources found"),
        },
        None | Some(Output::Wide) => {}
        _ => {
            if structured.is_empty() && !matches!(a.output, Some(Output::Yaml | Output::Json)) {
                match ns {
                    Some(ns) => eprintln!("No resources found in {ns} namespace."),
                    None => eprintln!("No resources found"),
                }
            }
            print_structured(
                a.output.as_ref(),
                &structured,
                targets_single(&targets),
                a.no_headers,
            )?;
        }
    }
    Ok(())
}

/// Whether the targets name exactly one object (printed alone, not in a List).
fn targets_single(targets: &[(ObjectKind, Vec<String>)]) -> bool {
    targets.len() == 1 && targets[0].1.len() == 1
}

/// Prints objects as `-o yaml|json|name|jsonpath|custom-columns` print them: one
/// object alone when one was named, else a `List`.
pub(super) fn print_structured(
    output: Option<&Output>,
    structured: &[(String, Value)],
    single: bool,
    no_headers: bool,
) -> Result<()> {
    let doc = || {
        let mut items: Vec<Value> = structured.iter().map(|(_, o)| o.clone()).collect();
        if single && items.len() == 1 {
            items.pop().unwrap_or(Value::Null)
        } else {
            json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})
        }
    };
    match output {
        Some(Output::Yaml) => print!("{}", print::yaml(&doc())),
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&doc())?),
        Some(Output::JsonPath(t)) => print!("{}", t.render(&doc())?),
        Some(Output::Name) => {
            for (kind, o) in structured {
                println!("{kind}/{}", o["metadata"]["name"].as_str().unwrap_or(""));
            }
        }
        Some(Output::CustomColumns(columns)) => {
            let objects: Vec<&Value> = structured.iter().map(|(_, o)| o).collect();
            for line in custom_column_lines(columns, &objects, no_headers)? {
                println!("{line}");
            }
        }
        None | Some(Output::Wide) => {}
    }
    Ok(())
}

/// The lines of `-o custom-columns`: a header (unless `no_headers`), then a row per
/// object, each cell its expression's values joined by commas, `<none>` without any.
fn custom_column_lines(
    columns: &[(String, Expr)],
    objects: &[&Value],
    no_headers: bool,
) -> Result<Vec<String>> {
    let mut grid = Vec::new();
    if !no_headers {
        grid.push(columns.iter().map(|(h, _)| h.clone()).collect::<Vec<_>>());
    }
    for o in objects {
        let mut row = Vec::new();
        for (_, expr) in columns {
            let values = expr.select(o)?;
            row.push(if values.is_empty() {
                "<none>".to_string()
            } else {
                values
                    .into_iter()
                    .map(go_text)
                    .collect::<Vec<_>>()
                    .join(",")
            });
        }
        grid.push(row);
    }
    Ok(print::aligned(&grid, &mut Vec::new()))
}

/// Sorts `items` by the first value `by` selects in each (`of` finds the object in an
/// item), as kubectl's sorter compares: items without it first, numbers by value,
/// strings that are both quantities (`2`, `10`, `512Mi`, `1Gi`) by amount, anything
/// else by its text; ties in the order the server gave them.
fn sort_by_field<T>(items: &mut Vec<T>, by: &Expr, of: impl Fn(&T) -> &Value) -> Result<()> {
    // Each item's key read once (quantities parsed once), then a stable sort.
    let mut keyed = Vec::with_capacity(items.len());
    for item in std::mem::take(items) {
        let key = by.select(of(&item))?.first().map(|v| {
            let quantity = v.as_str().and_then(|s| s.parse::<Quantity>().ok());
            ((*v).clone(), quantity)
        });
        keyed.push((key, item));
    }
    keyed.sort_by(|(a, _), (b, _)| match (a, b) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some((_, Some(qx))), Some((_, Some(qy)))) => qx.cmp(qy),
        (Some((Value::Number(x), _)), Some((Value::Number(y), _))) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.total_cmp(&y)
        }
        (Some((x, _)), Some((y, _))) => json_text(x).cmp(&json_text(y)),
    });
    items.extend(keyed.into_iter().map(|(_, item)| item));
    Ok(())
}

/// A kind `get -w` watches: its names, the revision its list was read at, and the
/// printer its rows continue with.
struct Watched {
    kind: ObjectKind,
    names: Vec<String>,
    rv: String,
    printer: print::Printer,
}

/// Watches every kind in `watched` at once, printing each change as its kind prints.
async fn watch(
    cluster: &Cluster,
    ns: Option<&str>,
    a: &GetArgs,
    mut watched: Vec<Watched>,
) -> Result<()> {
    let accept = match a.output {
        None | Some(Output::Wide) => TABLE_ACCEPT,
        _ => "application/json",
    };
    let mut streams = Vec::new();
    for (i, w) in watched.iter().enumerate() {
        let field = match w.names.as_slice() {
            [one] => Some(format!("metadata.name={one}")),
            _ => a.select.field_selector.clone(),
        };
        let path = format!(
            "{}{}",
            w.kind.collection_path(ns),
            query(&[
                ("watch", Some("true")),
                ("resourceVersion", Some(&w.rv)),
                ("labelSelector", a.select.selector.as_deref()),
                ("fieldSelector", field.as_deref()),
            ])
        );
        let req = http::Request::get(path)
            .header(http::header::ACCEPT, accept)
            .body(Vec::new())?;
        let events = cluster
            .client
            .request_events::<Value>(req)
            .await
            .map_err(explain)?;
        streams.push(events.map(move |ev| (i, ev)).boxed());
    }
    let mut events = futures_util::stream::select_all(streams);
    let mut headed = false;
    while let Some((i, ev)) = events.next().await {
        let obj = match ev.map_err(explain)? {
            kube::api::WatchEvent::Added(o)
            | kube::api::WatchEvent::Modified(o)
            | kube::api::WatchEvent::Deleted(o) => o,
            kube::api::WatchEvent::Bookmark(_) => continue,
            kube::api::WatchEvent::Error(e) => {
                bail!("Error from server ({}): {}", e.reason, e.message)
            }
        };
        let Watched { kind, printer, .. } = &mut watched[i];
        match &a.output {
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
            Some(Output::JsonPath(t)) => print!("{}", t.render(&with_kind(obj, kind))?),
            Some(Output::CustomColumns(columns)) => {
                let lines = custom_column_lines(columns, &[&obj], a.no_headers || headed)?;
                headed = true;
                for l in lines {
                    println!("{l}");
                }
            }
        }
    }
    Ok(())
}

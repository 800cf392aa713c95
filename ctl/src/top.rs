//! `top nodes` and `top pods`: CPU and memory from the resource metrics API
//! (`metrics.k8s.io/v1beta1`), printed as `kubectl top` prints them.

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use rk8s_api::Quantity;
use rk8s_api::metrics::{MetricsList, NodeMetrics, PodMetrics};

use crate::cluster::explain;
use crate::commands::Global;
use crate::print;

/// What `top` shows.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum TopCommand {
    /// CPU and memory of nodes, and their share of what the nodes offer pods.
    #[command(visible_aliases = ["node", "no"])]
    Nodes {
        /// One node.
        name: Option<String>,
        /// Selector, sorting and headers.
        #[command(flatten)]
        options: TopOptions,
    },
    /// CPU and memory of pods.
    #[command(visible_aliases = ["pod", "po"])]
    Pods {
        /// One pod.
        name: Option<String>,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// One line per container.
        #[arg(long)]
        containers: bool,
        /// Selector, sorting and headers.
        #[command(flatten)]
        options: TopOptions,
    },
}

/// Options of both.
#[derive(clap::Args, Clone, Debug)]
pub struct TopOptions {
    /// Label selector (`app=web,tier!=db`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Sort by `cpu` or `memory`, highest first.
    #[arg(long, value_parser = ["cpu", "memory"])]
    pub sort_by: Option<String>,
    /// Leave out the header line.
    #[arg(long)]
    pub no_headers: bool,
}

/// Usage in millicores and bytes.
fn usage(
    of: &std::collections::BTreeMap<
        String,
        k8s_openapi::apimachinery::pkg::api::resource::Quantity,
    >,
) -> (i64, i64) {
    let get = |k: &str| of.get(k).and_then(|q| Quantity::try_from(q).ok());
    (
        get("cpu").map_or(0, |q| q.milli_value()),
        get("memory").map_or(0, |q| q.value()),
    )
}

fn cores(milli: i64) -> String {
    format!("{milli}m")
}

fn bytes(b: i64) -> String {
    format!("{}Mi", b / (1024 * 1024))
}

fn query(selector: Option<&str>) -> String {
    match selector {
        Some(s) => format!(
            "?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("labelSelector", s)
                .finish()
        ),
        None => String::new(),
    }
}

/// Runs a `top` command.
pub async fn top(g: &Global, command: &TopCommand) -> Result<()> {
    let cluster = g.connect().await?;
    let base = "/apis/metrics.k8s.io/v1beta1";
    let fetch = |path: String| {
        let cluster = &cluster;
        async move { cluster.get_json(&path, "application/json").await }
    };
    let mut rows: Vec<(i64, i64, Vec<String>)> = Vec::new();
    let (header, options) = match command {
        TopCommand::Nodes { name, options } => {
            let items: Vec<NodeMetrics> = match name {
                Some(n) => vec![serde_json::from_value(
                    fetch(format!("{base}/nodes/{n}")).await?,
                )?],
                None => {
                    let list: MetricsList<NodeMetrics> = serde_json::from_value(
                        fetch(format!(
                            "{base}/nodes{}",
                            query(options.selector.as_deref())
                        ))
                        .await?,
                    )
                    .context("the metrics API answered with something other than NodeMetrics")?;
                    list.items
                }
            };
            let nodes: Api<Node> = Api::all(cluster.client.clone());
            for m in items {
                let name = m.metadata.name.clone().unwrap_or_default();
                let (cpu, memory) = usage(&m.usage);
                let allocatable = nodes
                    .get_opt(&name)
                    .await
                    .map_err(explain)?
                    .and_then(|n| n.status?.allocatable)
                    .map(|a| usage(&a));
                let share = |used: i64, of: Option<i64>| match of.filter(|v| *v > 0) {
                    Some(of) => format!("{}%", used * 100 / of),
                    None => "<unknown>".to_string(),
                };
                rows.push((
                    cpu,
                    memory,
                    vec![
                        name,
                        cores(cpu),
                        share(cpu, allocatable.map(|a| a.0)),
                        bytes(memory),
                        share(memory, allocatable.map(|a| a.1)),
                    ],
                ));
            }
            (
                vec!["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"],
                options,
            )
        }
        TopCommand::Pods {
            name,
            all_namespaces,
            containers,
            options,
        } => {
            if name.is_some() && *all_namespaces {
                bail!("a pod name cannot be given with --all-namespaces");
            }
            let scope = if *all_namespaces {
                String::new()
            } else {
                format!("/namespaces/{}", cluster.namespace)
            };
            let items: Vec<PodMetrics> = match name {
                Some(n) => vec![serde_json::from_value(
                    fetch(format!("{base}{scope}/pods/{n}")).await?,
                )?],
                None => {
                    let list: MetricsList<PodMetrics> = serde_json::from_value(
                        fetch(format!(
                            "{base}{scope}/pods{}",
                            query(options.selector.as_deref())
                        ))
                        .await?,
                    )
                    .context("the metrics API answered with something other than PodMetrics")?;
                    list.items
                }
            };
            if items.is_empty() && name.is_none() {
                eprintln!("No resources found");
            }
            for m in items {
                let ns = m.metadata.namespace.clone().unwrap_or_default();
                let pod = m.metadata.name.clone().unwrap_or_default();
                let lead = |mut row: Vec<String>| {
                    if *all_namespaces {
                        row.insert(0, ns.clone());
                    }
                    row
                };
                if *containers {
                    for c in &m.containers {
                        let (cpu, memory) = usage(&c.usage);
                        rows.push((
                            cpu,
                            memory,
                            lead(vec![pod.clone(), c.name.clone(), cores(cpu), bytes(memory)]),
                        ));
                    }
                } else {
                    let (cpu, memory) = m
                        .containers
                        .iter()
                        .map(|c| usage(&c.usage))
                        .fold((0i64, 0i64), |(a, b), (c, d)| {
                            (a.saturating_add(c), b.saturating_add(d))
                        });
                    rows.push((cpu, memory, lead(vec![pod, cores(cpu), bytes(memory)])));
                }
            }
            let mut header = vec!["NAME", "CPU(cores)", "MEMORY(bytes)"];
            if *containers {
                header = vec!["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"];
            }
            if *all_namespaces {
                header.insert(0, "NAMESPACE");
            }
            (header, options)
        }
    };
    match options.sort_by.as_deref() {
        Some("cpu") => rows.sort_by_key(|r| std::cmp::Reverse(r.0)),
        Some("memory") => rows.sort_by_key(|r| std::cmp::Reverse(r.1)),
        _ => {}
    }
    let header = (!options.no_headers).then(|| header.iter().map(|h| h.to_string()).collect());
    let table: Vec<Vec<String>> = header
        .into_iter()
        .chain(rows.into_iter().map(|(_, _, row)| row))
        .collect();
    if table.len() > usize::from(!options.no_headers) {
        print::table(&table);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_reads_the_metrics_api_units() {
        let u = rk8s_api::metrics::usage(1_500_000, 3 << 20);
        // 1.5 millicores round up, as Kubernetes' MilliValue (and so kubectl top) does.
        assert_eq!(usage(&u), (2, 3 << 20));
        assert_eq!(
            (cores(250), bytes(64 << 20)),
            ("250m".to_string(), "64Mi".to_string())
        );
        assert_eq!(query(Some("app=web")), "?labelSelector=app%3Dweb");
    }
}

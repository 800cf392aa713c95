//! `rk8sctl logs` against a cluster, as kubectl reads logs: of a pod (`POD`,
//! `pod/NAME`), of one pod of a workload or Service (`deploy/NAME`, `rs/NAME`,
//! `job/NAME`, `svc/NAME`, ...: the one kubectl would pick, announced when there are
//! several), or of every pod a selector matches (`-l`); one container, or all
//! (`--all-containers`), optionally each line prefixed with where it came from. The
//! API server forwards each read to the node running the pod (`pods/log`).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Api;
use kube::api::{ListParams, LogParams};
use rk8s_api::duration::parse_duration;
use tokio::io::AsyncWriteExt;

use crate::cluster::{Cluster, explain};
use crate::commands::{Global, one};
use crate::stream::{container_of, pod_name};

/// `logs` arguments (kubectl's).
#[derive(clap::Args, Clone, Debug)]
pub struct LogsArgs {
    /// `POD`, `pod/NAME`, or `TYPE/NAME` of a workload or Service (one of its pods);
    /// none with `-l`.
    #[arg(required_unless_present = "selector", add = crate::completion::pods())]
    pub target: Option<String>,
    /// The container (default: the pod's default container).
    #[arg(short, long)]
    pub container: Option<String>,
    /// Every container of the pods (init containers first).
    #[arg(long)]
    pub all_containers: bool,
    /// The logs of every pod this label selector matches.
    #[arg(short = 'l', long, conflicts_with = "target")]
    pub selector: Option<String>,
    /// Keep streaming new lines until the container stops.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines (-1: all; with -l the default is 10, as kubectl's).
    #[arg(long, allow_negative_numbers = true)]
    pub tail: Option<i64>,
    /// Only lines newer than this (`5s`, `2m`, `1h`).
    #[arg(long, value_parser = parse_duration, conflicts_with = "since_time")]
    pub since: Option<Duration>,
    /// Only lines written at or after this time (RFC 3339).
    #[arg(long)]
    pub since_time: Option<String>,
    /// Prefix each line with its RFC 3339 timestamp.
    #[arg(long)]
    pub timestamps: bool,
    /// Prefix each line with its source (`[pod/NAME/CONTAINER]`).
    #[arg(long)]
    pub prefix: bool,
    /// The log of the previous (restarted) instance of the container.
    #[arg(short, long)]
    pub previous: bool,
    /// At most this many bytes.
    #[arg(long)]
    pub limit_bytes: Option<i64>,
    /// With -f, at most this many logs followed at once.
    #[arg(long, default_value_t = 5)]
    pub max_log_requests: usize,
}

/// `rk8sctl logs`.
pub async fn logs(g: &Global, args: &LogsArgs) -> Result<()> {
    let cluster = g.connect().await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let (chosen, many) = match (&args.target, &args.selector) {
        (Some(target), _) => (vec![target_pod(&cluster, &pods, target).await?], false),
        (None, Some(selector)) => {
            let mut found = pods
                .list(&ListParams::default().labels(selector))
                .await
                .map_err(explain)?
                .items;
            found.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
            (found, true)
        }
        (None, None) => bail!("a pod, TYPE/NAME or -l SELECTOR is required"),
    };
    // Each log to read: the pod's name and the container.
    let mut sources = Vec::new();
    for pod in &chosen {
        let name = pod.metadata.name.clone().unwrap_or_default();
        if args.all_containers {
            let spec = pod.spec.as_ref();
            for c in spec.into_iter().flat_map(|s| {
                s.init_containers
                    .iter()
                    .flatten()
                    .chain(s.containers.iter())
            }) {
                sources.push((name.clone(), c.name.clone()));
            }
        } else {
            if let Some(asked) = &args.container
                && !has_container(pod, asked)
            {
                // kubectl checks before asking the server (logsForObject).
                bail!("container {asked} is not valid for pod {name}");
            }
            sources.push((name, container_of(pod, args.container.as_deref())?));
        }
    }
    if args.follow && sources.len() > args.max_log_requests {
        bail!(
            "you are attempting to follow {} log streams, but maximum allowed concurrency is {}, use --max-log-requests to increase the limit",
            sources.len(),
            args.max_log_requests
        );
    }
    let tail = match args.tail {
        Some(n) => n,
        None if many => 10,
        None => -1,
    };
    let since_time = match &args.since_time {
        Some(t) => Some(
            t.parse::<jiff::Timestamp>()
                .with_context(|| format!("--since-time {t:?} is not an RFC 3339 time"))?,
        ),
        None => None,
    };
    let params = |container: &str| LogParams {
        container: Some(container.to_string()),
        follow: args.follow,
        tail_lines: (tail >= 0).then_some(tail),
        timestamps: args.timestamps,
        previous: args.previous,
        limit_bytes: args.limit_bytes,
        since_seconds: args.since.map(|d| d.as_secs().max(1) as i64),
        since_time,
        ..Default::default()
    };
    let prefix = |pod: &str, c: &str| args.prefix.then(|| format!("[pod/{pod}/{c}] "));
    if args.follow {
        // Followed logs run side by side, each line written whole as it comes.
        let streams = sources
            .iter()
            .map(|(pod, c)| copy_log(&pods, pod, params(c), prefix(pod, c)));
        for result in futures_util::future::join_all(streams).await {
            result?;
        }
        return Ok(());
    }
    for (pod, c) in &sources {
        copy_log(&pods, pod, params(c), prefix(pod, c)).await?;
    }
    Ok(())
}

/// Whether `pod` has a container (init, app or ephemeral) named `name`.
fn has_container(pod: &Pod, name: &str) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.init_containers
            .iter()
            .flatten()
            .chain(&s.containers)
            .any(|c| c.name == name)
            || s.ephemeral_containers
                .iter()
                .flatten()
                .any(|c| c.name == name)
    })
}

/// The pod `target` means: a pod by name, else one pod of the workload or Service
/// named (kubectl's pick, announced on stderr when there are several).
pub(crate) async fn target_pod(cluster: &Cluster, pods: &Api<Pod>, target: &str) -> Result<Pod> {
    if let Ok(name) = pod_name(target) {
        return pods.get(name).await.map_err(explain);
    }
    let (kind, name) = one(cluster, target, None).await?;
    let obj = cluster
        .api(&kind, Some(&cluster.namespace))
        .get(&name)
        .await
        .map_err(explain)?;
    let spec = &obj.data["spec"];
    let selector: LabelSelector = match kind.kind {
        "Service" => LabelSelector {
            match_labels: serde_json::from_value(spec["selector"].clone()).ok(),
            ..Default::default()
        },
        _ => serde_json::from_value(spec["selector"].clone()).with_context(|| {
            format!(
                "{target}: a {} has no pod selector to read logs by",
                kind.kind
            )
        })?,
    };
    let selector = rk8s_api::selector::label_selector(&selector)
        .map_err(|e| anyhow::anyhow!("{target}: its selector is invalid: {e:?}"))?;
    let selector = selector.to_string();
    if selector.is_empty() {
        bail!("{target}: its selector is empty (it would select every pod)");
    }
    let mut found = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(explain)?
        .items;
    if found.is_empty() {
        bail!("no pods found for {target} (selector {selector})");
    }
    found.sort_by_key(logging_rank);
    let chosen = found.remove(0);
    if !found.is_empty() {
        eprintln!(
            "Found {} pods, using pod/{}",
            found.len() + 1,
            chosen.metadata.name.as_deref().unwrap_or("")
        );
    }
    Ok(chosen)
}

/// kubectl's order of the pods worth reading (its `ByLogging`): scheduled first, then
/// Running before Unknown before Pending, ready first, more restarts first, older
/// first.
fn logging_rank(pod: &Pod) -> (bool, u8, bool, std::cmp::Reverse<i32>, String) {
    let spec_node = pod.spec.as_ref().and_then(|s| s.node_name.as_ref());
    let status = pod.status.as_ref();
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Running") => 0,
        Some("Unknown") => 1,
        Some("Pending") => 2,
        _ => 3,
    };
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let restarts = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0);
    let created = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    (
        spec_node.is_none(),
        phase,
        !ready,
        std::cmp::Reverse(restarts),
        created,
    )
}

/// Copies one log to standard output, each line whole (with `prefix` before it).
async fn copy_log(
    pods: &Api<Pod>,
    pod: &str,
    params: LogParams,
    prefix: Option<String>,
) -> Result<()> {
    let mut lines = pods
        .log_stream(pod, &params)
        .await
        .map_err(explain)?
        .lines();
    let mut out = tokio::io::stdout();
    while let Some(line) = lines.next().await {
        let line = line.context("the log stream broke")?;
        let mut whole = prefix.clone().unwrap_or_default();
        whole.push_str(&line);
        whole.push('\n');
        out.write_all(whole.as_bytes()).await?;
        out.flush().await?;
    }
    Ok(())
}

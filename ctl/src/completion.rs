//! Dynamic shell completion, as kubectl's: `rk8sctl get <TAB>` offers the kinds the
//! server serves, `rk8sctl get pods <TAB>` the names of its pods (in `-n`'s namespace),
//! `rk8sctl logs deploy/<TAB>` `deploy/NAME`s, `-n <TAB>` namespaces. It runs on
//! clap_complete's protocol: the script `rk8sctl completion SHELL` prints calls
//! `rk8sctl` back with `COMPLETE=SHELL` and the words of the line, and these
//! completers ask the server (within [`DEADLINE`]; nothing is offered when it cannot
//! be reached, as kubectl).

use std::ffi::OsStr;
use std::time::Duration;

use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};
use kube::api::ListParams;

use crate::cluster::{Cluster, Target};
use crate::discovery::Resolver;

/// How long a completion may wait for the server.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// Flags whose value is the next word (`-n web`): the words after them are not
/// positional arguments.
const VALUE_FLAGS: &[&str] = &[
    "-n",
    "--namespace",
    "--kubeconfig",
    "--context",
    "-l",
    "--selector",
    "--field-selector",
    "-o",
    "--output",
    "-c",
    "--container",
    "-L",
    "--label-columns",
    "--sort-by",
    "-f",
    "--filename",
    "--for",
    "--timeout",
    "--since",
    "--since-time",
    "--tail",
    "--replicas",
    "--image",
    "--port",
    "--grace-period",
];

/// The words of the line being completed before the cursor, without the program's
/// name: those after `--` in this process's arguments, up to `_CLAP_COMPLETE_INDEX`
/// (the word completed) when the shell gives it.
fn words_before_cursor() -> Vec<String> {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let line = match args.iter().position(|a| a == "--") {
        Some(i) => &args[i + 1..],
        None => &args[..0],
    };
    let index = std::env::var("_CLAP_COMPLETE_INDEX")
        .ok()
        .and_then(|i| i.parse::<usize>().ok())
        .unwrap_or(line.len().saturating_sub(1))
        .min(line.len());
    line.iter().take(index).skip(1).cloned().collect()
}

/// What the words say: the connection flags and the positional words.
#[derive(Debug, Default)]
struct Line {
    target: Target,
    positional: Vec<String>,
}

fn parse(words: &[String]) -> Line {
    let mut line = Line::default();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        if let Some((flag, value)) = word.split_once('=').filter(|_| word.starts_with('-')) {
            set(&mut line.target, flag, value);
        } else if VALUE_FLAGS.contains(&word.as_str()) {
            if let Some(value) = words.next() {
                set(&mut line.target, word, value);
            }
        } else if !word.starts_with('-') {
            line.positional.push(word.clone());
        }
    }
    line
}

fn set(target: &mut Target, flag: &str, value: &str) {
    match flag {
        "-n" | "--namespace" => target.namespace = Some(value.to_string()),
        "--kubeconfig" => target.kubeconfig = Some(value.into()),
        "--context" => target.context = Some(value.to_string()),
        _ => {}
    }
}

/// Runs `f` against the cluster the line names, within [`DEADLINE`]; `None` when it
/// cannot.
fn with_cluster<T>(
    target: &Target,
    f: impl AsyncFnOnce(Cluster) -> anyhow::Result<T>,
) -> Option<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(async {
        let work = async {
            let cluster = Cluster::connect(target).await?;
            f(cluster).await
        };
        tokio::time::timeout(DEADLINE, work).await.ok()?.ok()
    })
}

/// The names of `kind`'s objects in the line's namespace.
async fn names(cluster: &Cluster, kind: &str) -> anyhow::Result<Vec<String>> {
    let Some(kind) = Resolver::new(cluster.client.clone()).resolve(kind).await? else {
        return Ok(Vec::new());
    };
    let listed = cluster
        .api(&kind, Some(&cluster.namespace))
        .list_metadata(&ListParams::default())
        .await?;
    Ok(listed
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect())
}

/// The resource names (plurals) the server serves, each once, sorted.
async fn kinds(cluster: &Cluster) -> anyhow::Result<Vec<String>> {
    let served = crate::discovery::served(&cluster.client).await?;
    let mut plurals: Vec<String> = served
        .iter()
        .map(|s| s.kind.plural.to_string())
        .filter(|p| !p.contains('/'))
        .collect();
    plurals.sort();
    plurals.dedup();
    Ok(plurals)
}

fn candidates(values: Vec<String>, current: &str, typed: &[String]) -> Vec<CompletionCandidate> {
    values
        .into_iter()
        .filter(|v| v.starts_with(current) && !typed.contains(v))
        .map(CompletionCandidate::new)
        .collect()
}

/// What to offer for an argument of `KIND [NAME...]` or `KIND/NAME` form, the
/// command's name being `depth` words (`get`: 1, `rollout status`: 2).
fn kind_and_names(depth: usize, current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    let line = parse(&words_before_cursor());
    let positional = line.positional.get(depth..).unwrap_or_default();
    if let Some((kind, _)) = current.split_once('/') {
        let found = with_cluster(&line.target, async |c| names(&c, kind).await);
        let slashed = found
            .unwrap_or_default()
            .into_iter()
            .map(|n| format!("{kind}/{n}"))
            .collect();
        return candidates(slashed, &current, positional);
    }
    match positional.first() {
        None => {
            let found = with_cluster(&line.target, async |c| kinds(&c).await);
            candidates(found.unwrap_or_default(), &current, &[])
        }
        Some(kind) if !kind.contains('/') => {
            let found = with_cluster(&line.target, async |c| names(&c, kind).await);
            candidates(found.unwrap_or_default(), &current, &positional[1..])
        }
        Some(_) => Vec::new(),
    }
}

/// The completer of a `KIND [NAME...]` / `KIND/NAME` argument of a command named by
/// `depth` words.
pub fn resources(depth: usize) -> ArgValueCompleter {
    ArgValueCompleter::new(move |current: &OsStr| kind_and_names(depth, current))
}

/// The completer of an argument naming objects of one kind (`nodes` for `drain`,
/// `namespaces` for `-n`, `pods` for `exec`).
pub fn names_of(kind: &'static str) -> ArgValueCompleter {
    ArgValueCompleter::new(move |current: &OsStr| {
        let current = current.to_string_lossy();
        let line = parse(&words_before_cursor());
        let found = with_cluster(&line.target, async |c| names(&c, kind).await);
        candidates(found.unwrap_or_default(), &current, &[])
    })
}

/// The completer of a pod argument (`exec`, `logs`): pod names, or `KIND/NAME`
/// once a `/` is typed.
pub fn pods() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        if current.to_string_lossy().contains('/') {
            kind_and_names(0, current)
        } else {
            names_of("pods").complete(current)
        }
    })
}

/// Writes the script that registers rk8sctl's completion in `shell` (bash, zsh, fish,
/// elvish, powershell): it calls `rk8sctl` (found on `PATH`) back as each word is
/// completed.
pub fn write_script(shell: &str, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let shells = clap_complete::env::Shells::builtins();
    let Some(completer) = shells.completer(shell) else {
        let known: Vec<&str> = shells.names().collect();
        anyhow::bail!(
            "no completion for the shell {shell} (known: {})",
            known.join(", ")
        );
    };
    completer.write_registration("COMPLETE", "rk8sctl", "rk8sctl", "rk8sctl", out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn connection_flags_and_positional_words_are_told_apart() {
        let line = parse(&words(
            "get -n team pods --context=dev -l app=web web-1 -o wide --kubeconfig /k",
        ));
        assert_eq!(line.positional, ["get", "pods", "web-1"]);
        assert_eq!(line.target.namespace.as_deref(), Some("team"));
        assert_eq!(line.target.context.as_deref(), Some("dev"));
        assert_eq!(
            line.target.kubeconfig.as_deref(),
            Some(std::path::Path::new("/k"))
        );
        let line = parse(&words("logs --namespace=kube-system -c main"));
        assert_eq!(line.positional, ["logs"]);
        assert_eq!(line.target.namespace.as_deref(), Some("kube-system"));
    }

    #[test]
    fn candidates_start_with_the_word_and_skip_those_typed() {
        let values = words("web-1 web-2 db-1");
        let offered: Vec<String> = candidates(values, "web", &words("web-1"))
            .iter()
            .map(|c| c.get_value().to_string_lossy().into_owned())
            .collect();
        assert_eq!(offered, ["web-2"]);
    }
}

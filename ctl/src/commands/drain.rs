//! `cordon`, `uncordon` and `drain`: a node out of scheduling, back in, and emptied
//! of its pods for maintenance, as kubectl does them. `drain` evicts each pod through
//! the eviction subresource, so PodDisruptionBudgets hold (an eviction a budget
//! refuses is tried again every 5 s, as kubectl does), or deletes it with
//! `--disable-eviction`; each pod gets its grace period (or `--grace-period`) and is
//! waited for until it is gone.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use rk8s_api::duration::parse_duration;
use serde_json::json;

use super::Global;
use crate::cluster::{Cluster, explain};

/// Sets the node's `spec.unschedulable` (`cordon`: true, `uncordon`: false) and says
/// so as kubectl says it.
pub async fn cordon(g: &Global, node: &str, unschedulable: bool) -> Result<()> {
    let cluster = g.connect().await?;
    println!(
        "{}",
        set_unschedulable(&cluster, node, unschedulable).await?
    );
    Ok(())
}

async fn set_unschedulable(cluster: &Cluster, node: &str, unschedulable: bool) -> Result<String> {
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let now = nodes.get(node).await.map_err(explain)?;
    let verb = if unschedulable {
        "cordoned"
    } else {
        "uncordoned"
    };
    let is = now.spec.and_then(|s| s.unschedulable).unwrap_or(false);
    if is == unschedulable {
        return Ok(format!("node/{node} already {verb}"));
    }
    // Unset rather than false when uncordoned, as kubectl leaves it.
    let value = if unschedulable {
        json!(true)
    } else {
        json!(null)
    };
    nodes
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": value}})),
        )
        .await
        .map_err(explain)?;
    Ok(format!("node/{node} {verb}"))
}

/// `drain`'s arguments (kubectl's).
#[derive(clap::Args, Clone, Debug)]
pub struct DrainArgs {
    /// The node.
    #[arg(add = crate::completion::names_of("nodes"))]
    pub node: String,
    /// Also delete pods no controller owns (nothing recreates them).
    #[arg(long)]
    pub force: bool,
    /// Leave DaemonSet pods (their controller would put them back at once).
    #[arg(long)]
    pub ignore_daemonsets: bool,
    /// Also delete pods with emptyDir volumes (their data is lost).
    #[arg(long)]
    pub delete_emptydir_data: bool,
    /// Seconds each pod gets to stop (-1: its own terminationGracePeriodSeconds).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// Give up after this long (`0s`: wait for ever).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Only the pods this label selector matches.
    #[arg(long)]
    pub pod_selector: Option<String>,
    /// Delete the pods instead of evicting them (PodDisruptionBudgets are not asked).
    #[arg(long)]
    pub disable_eviction: bool,
}

/// How long a drain waits before trying again an eviction a budget refused
/// (kubectl's).
const EVICTION_RETRY: Duration = Duration::from_secs(5);

/// Why a pod is not deleted by a drain, or may not be: kubectl's filters.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Deleted.
    Delete,
    /// Deleted, with a warning (no controller, `--force`).
    DeleteUnowned,
    /// Left alone, with a warning (DaemonSet, `--ignore-daemonsets`).
    SkipDaemonSet,
    /// Left alone silently (static pods: their node runs them from its files).
    SkipMirror,
    /// Refused: the drain stops, naming the pods.
    Refuse(&'static str),
}

/// Evicts the pod `ns/name` (policy/v1 `Eviction`, its grace period `grace` seconds
/// unless negative). Written here rather than with the client's `evict`, which sends
/// its delete options under a name the API does not read.
async fn evict(client: &kube::Client, ns: &str, name: &str, grace: i64) -> kube::Result<()> {
    let eviction = json!({
        "apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": name, "namespace": ns},
        "deleteOptions": if grace >= 0 { json!({"gracePeriodSeconds": grace}) } else { json!({}) },
    });
    let request = http::Request::post(format!("/api/v1/namespaces/{ns}/pods/{name}/eviction"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&eviction).map_err(kube::Error::SerdeError)?)
        .map_err(kube::Error::HttpError)?;
    client
        .request::<kube::core::Status>(request)
        .await
        .map(drop)
}

/// What a drain does with `pod`.
fn verdict(pod: &Pod, a: &DrainArgs) -> Verdict {
    let annotations = pod.metadata.annotations.as_ref();
    if annotations.is_some_and(|m| m.contains_key("kubernetes.io/config.mirror")) {
        return Verdict::SkipMirror;
    }
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    let controller = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    if controller.is_some_and(|o| o.kind == "DaemonSet") && !finished {
        return if a.ignore_daemonsets {
            Verdict::SkipDaemonSet
        } else {
            Verdict::Refuse(
                "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)",
            )
        };
    }
    let empty_dir = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .any(|v| v.empty_dir.is_some());
    if empty_dir && !finished && !a.delete_emptydir_data {
        return Verdict::Refuse(
            "cannot delete Pods with local storage (use --delete-emptydir-data to override)",
        );
    }
    if controller.is_none() && !finished {
        return if a.force {
            Verdict::DeleteUnowned
        } else {
            Verdict::Refuse(
                "cannot delete Pods that declare no controller (use --force to override)",
            )
        };
    }
    Verdict::Delete
}

/// `drain`: cordon, then delete the node's pods and wait until they are gone.
pub async fn drain(g: &Global, a: &DrainArgs) -> Result<()> {
    let cluster = g.connect().await?;
    println!("{}", set_unschedulable(&cluster, &a.node, true).await?);
    let pods: Api<Pod> = Api::all(cluster.client.clone());
    let mut params = ListParams::default().fields(&format!("spec.nodeName={}", a.node));
    if let Some(s) = &a.pod_selector {
        params = params.labels(s);
    }
    let on_node = pods.list(&params).await.map_err(explain)?.items;
    let key = |p: &Pod| {
        format!(
            "{}/{}",
            p.metadata.namespace.as_deref().unwrap_or(""),
            p.metadata.name.as_deref().unwrap_or("")
        )
    };
    let mut refused: Vec<(&str, String)> = Vec::new();
    let (mut unowned, mut daemons, mut doomed) = (Vec::new(), Vec::new(), Vec::new());
    for pod in &on_node {
        match verdict(pod, a) {
            Verdict::Delete => doomed.push(pod),
            Verdict::DeleteUnowned => {
                unowned.push(key(pod));
                doomed.push(pod);
            }
            Verdict::SkipDaemonSet => daemons.push(key(pod)),
            Verdict::SkipMirror => {}
            Verdict::Refuse(why) => refused.push((why, key(pod))),
        }
    }
    if !refused.is_empty() {
        let mut reasons: Vec<&str> = refused.iter().map(|(why, _)| *why).collect();
        reasons.sort_unstable();
        reasons.dedup();
        let lines: Vec<String> = reasons
            .into_iter()
            .map(|why| {
                let named: Vec<&str> = refused
                    .iter()
                    .filter(|(w, _)| *w == why)
                    .map(|(_, k)| k.as_str())
                    .collect();
                format!("{why}: {}", named.join(", "))
            })
            .collect();
        bail!("unable to drain node {:?}: {}", a.node, lines.join("; "));
    }
    if !daemons.is_empty() {
        eprintln!(
            "Warning: ignoring DaemonSet-managed Pods: {}",
            daemons.join(", ")
        );
    }
    if !unowned.is_empty() {
        eprintln!(
            "Warning: deleting Pods that declare no controller: {}",
            unowned.join(", ")
        );
    }
    let delete = DeleteParams {
        grace_period_seconds: u32::try_from(a.grace_period).ok(),
        ..Default::default()
    };
    let started = Instant::now();
    let mut pending: Vec<&Pod> = doomed.clone();
    while !pending.is_empty() {
        let mut refused_now = Vec::new();
        for pod in pending {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            let name = pod.metadata.name.as_deref().unwrap_or("");
            let api: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
            let outcome = if a.disable_eviction {
                api.delete(name, &delete).await.map(drop)
            } else {
                println!("evicting pod {ns}/{name}");
                evict(&cluster.client, ns, name, a.grace_period).await
            };
            match outcome {
                Ok(()) => {}
                Err(e) if crate::cluster::is_not_found(&e) => {}
                Err(kube::Error::Api(s)) if s.code == 429 => {
                    eprintln!(
                        "error when evicting pods/{name:?} -n {ns:?} (will retry after 5s): {}",
                        s.message
                    );
                    refused_now.push(pod);
                }
                Err(e) => return Err(explain(e)),
            }
        }
        pending = refused_now;
        if pending.is_empty() {
            break;
        }
        if !a.timeout.is_zero() && started.elapsed() >= a.timeout {
            bail!(
                "drain did not complete within {}s: evictions refused: {}",
                a.timeout.as_secs(),
                pending
                    .iter()
                    .map(|p| key(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        tokio::time::sleep(EVICTION_RETRY).await;
    }
    // Gone: no longer there, or there again under the same name as another pod.
    let done = if a.disable_eviction {
        "deleted"
    } else {
        "evicted"
    };
    let mut waiting: Vec<&Pod> = doomed;
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for pod in waiting {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            let name = pod.metadata.name.as_deref().unwrap_or("");
            let api: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
            match api.get_opt(name).await.map_err(explain)? {
                Some(now) if now.metadata.uid == pod.metadata.uid => still.push(pod),
                _ => println!("pod/{name} {done}"),
            }
        }
        waiting = still;
        if waiting.is_empty() {
            break;
        }
        if !a.timeout.is_zero() && started.elapsed() >= a.timeout {
            bail!(
                "drain did not complete within {}s: pods still there: {}",
                a.timeout.as_secs(),
                waiting
                    .iter()
                    .map(|p| key(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("node/{} drained", a.node);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn args(flags: &[&str]) -> DrainArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            a: DrainArgs,
        }
        <Cli as clap::Parser>::parse_from(["drain", "n1"].iter().chain(flags)).a
    }

    #[test]
    fn drains_filter_pods_as_kubectls() {
        let owned = |kind: &str| json!({"metadata": {"name": "p", "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": "o", "uid": "u", "controller": true}]}, "spec": {"containers": []}});
        let none = args(&[]);
        assert_eq!(verdict(&pod(owned("ReplicaSet")), &none), Verdict::Delete);
        assert!(matches!(
            verdict(&pod(owned("DaemonSet")), &none),
            Verdict::Refuse(_)
        ));
        assert_eq!(
            verdict(&pod(owned("DaemonSet")), &args(&["--ignore-daemonsets"])),
            Verdict::SkipDaemonSet
        );
        let bare = pod(json!({"metadata": {"name": "b"}, "spec": {"containers": []}}));
        assert!(matches!(verdict(&bare, &none), Verdict::Refuse(w) if w.contains("--force")));
        assert_eq!(verdict(&bare, &args(&["--force"])), Verdict::DeleteUnowned);
        let finished = pod(
            json!({"metadata": {"name": "b"}, "spec": {"containers": []}, "status": {"phase": "Succeeded"}}),
        );
        assert_eq!(verdict(&finished, &none), Verdict::Delete);
        let mut scratch = owned("ReplicaSet");
        scratch["spec"]["volumes"] = json!([{"name": "s", "emptyDir": {}}]);
        assert!(
            matches!(verdict(&pod(scratch.clone()), &none), Verdict::Refuse(w) if w.contains("emptydir"))
        );
        assert_eq!(
            verdict(&pod(scratch), &args(&["--delete-emptydir-data"])),
            Verdict::Delete
        );
        let mirror = pod(
            json!({"metadata": {"name": "m", "annotations": {"kubernetes.io/config.mirror": "x"}}, "spec": {"containers": []}}),
        );
        assert_eq!(verdict(&mirror, &none), Verdict::SkipMirror);
    }
}

//! `rollout status|history|undo|restart|pause|resume` for Deployments, worded as
//! kubectl words them. History is the Deployment's ReplicaSets, by their
//! `deployment.kubernetes.io/revision` annotation; undo copies a revision's template
//! back into the Deployment (the controller then reuses that ReplicaSet).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use rk8s_api::duration::parse_duration;
use serde_json::json;

use crate::cluster::explain;
use crate::commands::{Global, one};

/// What `rollout` does.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum RolloutCommand {
    /// Wait until the rollout is done (or its progress deadline passes).
    Status {
        /// The Deployment.
        #[command(flatten)]
        target: RolloutTarget,
        /// Give up after this long (`30s`, `5m`; 0 waits for ever).
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        timeout: Duration,
        /// Keep waiting (`--watch=false` prints the state once).
        #[arg(short = 'w', long, default_value_t = true, action = clap::ArgAction::Set)]
        watch: bool,
    },
    /// The revisions, or one revision's pod template.
    History {
        /// The Deployment.
        #[command(flatten)]
        target: RolloutTarget,
        /// Show this revision's pod template.
        #[arg(long)]
        revision: Option<i64>,
    },
    /// Go back to the previous revision, or to `--to-revision`.
    Undo {
        /// The Deployment.
        #[command(flatten)]
        target: RolloutTarget,
        /// The revision to go back to (0: the previous one).
        #[arg(long, default_value_t = 0)]
        to_revision: i64,
    },
    /// Replace every pod, one step at a time (a new revision of the same template).
    Restart {
        /// The Deployment.
        #[command(flatten)]
        target: RolloutTarget,
    },
    /// Stop rolling out changes of the template until `resume`.
    Pause {
        /// The Deployment.
        #[command(flatten)]
        target: RolloutTarget,
    },
    /// Roll out the template's changes again.
    Resume {
        /// The Deployment.
        #[command(flatten)]
        target: RolloutTarget,
    },
}

/// `deployment/NAME` or `deployment NAME`.
#[derive(clap::Args, Clone, Debug)]
pub struct RolloutTarget {
    /// `KIND/NAME` or `KIND`.
    #[arg(add = crate::completion::resources(2))]
    resource: String,
    /// The name, when not given as KIND/NAME.
    #[arg(add = crate::completion::resources(2))]
    name: Option<String>,
}

/// Runs a `rollout` command.
pub async fn rollout(g: &Global, command: &RolloutCommand) -> Result<()> {
    let target = match command {
        RolloutCommand::Status { target, .. }
        | RolloutCommand::History { target, .. }
        | RolloutCommand::Undo { target, .. }
        | RolloutCommand::Restart { target }
        | RolloutCommand::Pause { target }
        | RolloutCommand::Resume { target } => target,
    };
    let cluster = g.connect().await?;
    let (kind, name) = one(&cluster, &target.resource, target.name.as_deref()).await?;
    if kind.plural != "deployments" {
        bail!(
            "no rollout for {}: only deployments have rollouts here",
            kind.qualified_plural()
        );
    }
    let deploys: Api<Deployment> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let sets: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let patch = async |value: serde_json::Value, done: &str| -> Result<()> {
        deploys
            .patch(&name, &PatchParams::default(), &Patch::Merge(&value))
            .await
            .map_err(explain)?;
        println!("deployment.apps/{name} {done}");
        Ok(())
    };
    match command {
        RolloutCommand::Status { timeout, watch, .. } => {
            status(&deploys, &name, *timeout, *watch).await
        }
        RolloutCommand::History { revision, .. } => {
            let d = deploys.get(&name).await.map_err(explain)?;
            history(&d, &revisions(&sets, &d).await?, *revision)
        }
        RolloutCommand::Undo { to_revision, .. } => {
            let d = deploys.get(&name).await.map_err(explain)?;
            let revisions = revisions(&sets, &d).await?;
            let template = undo_template(&d, &revisions, *to_revision)?;
            let Some(template) = template else {
                println!(
                    "deployment.apps/{name} skipped rollback (current template already matches revision {})",
                    target_revision(&revisions, *to_revision).unwrap_or(*to_revision)
                );
                return Ok(());
            };
            let value = json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": d.metadata.resource_version},
                {"op": "replace", "path": "/spec/template", "value": template},
            ]);
            let value: json_patch::Patch = serde_json::from_value(value)?;
            deploys
                .patch(&name, &PatchParams::default(), &Patch::<()>::Json(value))
                .await
                .map_err(explain)?;
            println!("deployment.apps/{name} rolled back");
            Ok(())
        }
        RolloutCommand::Restart { .. } => {
            let d = deploys.get(&name).await.map_err(explain)?;
            if d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
                bail!(
                    "deployments/{name} is paused: resume it first (rk8sctl rollout resume deployment/{name})"
                );
            }
            let now = jiff::Timestamp::now()
                .round(jiff::Unit::Second)?
                .to_string();
            let value = json!({"spec": {"template": {"metadata": {"annotations":
                {"kubectl.kubernetes.io/restartedAt": now}}}}});
            patch(value, "restarted").await
        }
        RolloutCommand::Pause { .. } => patch(json!({"spec": {"paused": true}}), "paused").await,
        RolloutCommand::Resume { .. } => patch(json!({"spec": {"paused": null}}), "resumed").await,
    }
}

/// Where a rollout is: `Ok(Some(message))` while waiting, `Ok(None)` when done.
pub fn rollout_state(d: &Deployment) -> Result<Option<String>> {
    let name = d.metadata.name.as_deref().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    if d.metadata.generation.unwrap_or(0) > status.observed_generation.unwrap_or(0) {
        return Ok(Some(
            "Waiting for deployment spec update to be observed...".into(),
        ));
    }
    let progressing = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing");
    if progressing.and_then(|c| c.reason.as_deref()) == Some("ProgressDeadlineExceeded") {
        bail!("deployment {name:?} exceeded its progress deadline");
    }
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let wait = |what: String| {
        Ok(Some(format!(
            "Waiting for deployment {name:?} rollout to finish: {what}"
        )))
    };
    if updated < replicas {
        return wait(format!(
            "{updated} out of {replicas} new replicas have been updated..."
        ));
    }
    if total > updated {
        return wait(format!(
            "{} old replicas are pending termination...",
            total - updated
        ));
    }
    if available < updated {
        return wait(format!(
            "{available} of {updated} updated replicas are available..."
        ));
    }
    Ok(None)
}

async fn status(
    deploys: &Api<Deployment>,
    name: &str,
    timeout: Duration,
    watch: bool,
) -> Result<()> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let d = deploys.get(name).await.map_err(explain)?;
        match rollout_state(&d)? {
            None => {
                println!("deployment {name:?} successfully rolled out");
                return Ok(());
            }
            Some(message) => {
                if message != last {
                    println!("{message}");
                    last = message;
                }
                if !watch {
                    return Ok(());
                }
            }
        }
        if !timeout.is_zero() && start.elapsed() >= timeout {
            bail!("timed out waiting for the condition");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

const REVISION: &str = "deployment.kubernetes.io/revision";

/// The Deployment's ReplicaSets with their revisions, oldest first.
async fn revisions(sets: &Api<ReplicaSet>, d: &Deployment) -> Result<Vec<(i64, ReplicaSet)>> {
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let mut owned: Vec<(i64, ReplicaSet)> = sets
        .list(&ListParams::default())
        .await
        .map_err(explain)?
        .items
        .into_iter()
        .filter(|rs| controller_uid(rs) == Some(uid.as_str()))
        .filter_map(|rs| {
            let revision = rs
                .metadata
                .annotations
                .as_ref()?
                .get(REVISION)?
                .parse()
                .ok()?;
            Some((revision, rs))
        })
        .collect();
    owned.sort_by_key(|(r, _)| *r);
    Ok(owned)
}

fn controller_uid(rs: &ReplicaSet) -> Option<&str> {
    rs.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

/// A ReplicaSet's template as a Deployment's: without the pod-template-hash label.
fn template_of(rs: &ReplicaSet) -> PodTemplateSpec {
    let mut template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove("pod-template-hash");
    }
    template
}

fn history(d: &Deployment, revisions: &[(i64, ReplicaSet)], revision: Option<i64>) -> Result<()> {
    let name = d.metadata.name.as_deref().unwrap_or_default();
    if let Some(wanted) = revision {
        let Some((_, rs)) = revisions.iter().find(|(r, _)| *r == wanted) else {
            bail!("unable to find the specified revision {wanted} of deployment {name:?}");
        };
        println!("deployment.apps/{name} with revision #{wanted}");
        print!(
            "{}",
            crate::print::yaml(&serde_json::to_value(template_of(rs))?)
        );
        return Ok(());
    }
    println!("deployment.apps/{name}");
    println!("REVISION   CHANGE-CAUSE");
    for (r, rs) in revisions {
        let cause = rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("kubernetes.io/change-cause"))
            .map_or("<none>", String::as_str);
        println!("{r:<10} {cause}");
    }
    Ok(())
}

/// The revision `to` means: itself, or the one before the newest when 0.
fn target_revision(revisions: &[(i64, ReplicaSet)], to: i64) -> Option<i64> {
    if to != 0 {
        return Some(to);
    }
    revisions.iter().rev().nth(1).map(|(r, _)| *r)
}

/// The template to roll back to, or `None` when the Deployment already has it.
fn undo_template(
    d: &Deployment,
    revisions: &[(i64, ReplicaSet)],
    to: i64,
) -> Result<Option<PodTemplateSpec>> {
    let name = d.metadata.name.as_deref().unwrap_or_default();
    let Some(wanted) = target_revision(revisions, to) else {
        bail!("no rollout history found for deployment {name:?}");
    };
    let Some((_, rs)) = revisions.iter().find(|(r, _)| *r == wanted) else {
        bail!("unable to find the specified revision {wanted} of deployment {name:?}");
    };
    let template = template_of(rs);
    let current = d.spec.as_ref().map(|s| &s.template);
    Ok((current != Some(&template)).then_some(template))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(generation: i64, status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn rollout_status_words_each_stage_as_kubectl_does() {
        let cases = [
            (
                2,
                json!({"observedGeneration": 1}),
                Some("Waiting for deployment spec update to be observed..."),
            ),
            (
                1,
                json!({"observedGeneration": 1, "updatedReplicas": 1, "replicas": 3}),
                Some(
                    "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...",
                ),
            ),
            (
                1,
                json!({"observedGeneration": 1, "updatedReplicas": 3, "replicas": 4}),
                Some(
                    "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...",
                ),
            ),
            (
                1,
                json!({"observedGeneration": 1, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 2}),
                Some(
                    "Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available...",
                ),
            ),
            (
                1,
                json!({"observedGeneration": 1, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 3}),
                None,
            ),
        ];
        for (generation, status, want) in cases {
            let got = rollout_state(&deployment(generation, status)).unwrap();
            assert_eq!(got.as_deref(), want);
        }
        let stuck = deployment(
            1,
            json!({"observedGeneration": 1, "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
        );
        assert!(
            rollout_state(&stuck)
                .unwrap_err()
                .to_string()
                .contains("progress deadline")
        );
    }
}

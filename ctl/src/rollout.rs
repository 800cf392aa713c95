//! `rollout status|history|undo|restart|pause|resume` for Deployments, DaemonSets
//! and StatefulSets, worded as kubectl words them. A Deployment's history is its
//! ReplicaSets, by their `deployment.kubernetes.io/revision` annotation; a
//! DaemonSet's or StatefulSet's is its ControllerRevisions. Undo copies a revision's template back
//! into the object (its controller then reuses that revision); pause and resume are
//! for Deployments only.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
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
        /// The Deployment, DaemonSet or StatefulSet.
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
        /// The Deployment, DaemonSet or StatefulSet.
        #[command(flatten)]
        target: RolloutTarget,
        /// Show this revision's pod template.
        #[arg(long)]
        revision: Option<i64>,
    },
    /// Go back to the previous revision, or to `--to-revision`.
    Undo {
        /// The Deployment, DaemonSet or StatefulSet.
        #[command(flatten)]
        target: RolloutTarget,
        /// The revision to go back to (0: the previous one).
        #[arg(long, default_value_t = 0)]
        to_revision: i64,
    },
    /// Replace every pod, one step at a time (a new revision of the same template).
    Restart {
        /// The Deployment, DaemonSet or StatefulSet.
        #[command(flatten)]
        target: RolloutTarget,
    },
    /// Stop rolling out changes of the template until `resume` (Deployments).
    Pause {
        /// The Deployment.
        #[command(flatten)]
        target: RolloutTarget,
    },
    /// Roll out the template's changes again (Deployments).
    Resume {
        /// The Deployment.
        #[command(flatten)]
        target: RolloutTarget,
    },
}

/// `deployment/NAME`, `daemonset NAME`, ….
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
    let ns = &cluster.namespace;
    let object = match kind.plural {
        "deployments" => Rollout::Deployment(Api::namespaced(cluster.client.clone(), ns)),
        "daemonsets" => Rollout::DaemonSet(Api::namespaced(cluster.client.clone(), ns)),
        "statefulsets" => Rollout::StatefulSet(Api::namespaced(cluster.client.clone(), ns)),
        _ => bail!(
            "no rollout for {}: only deployments, daemonsets and statefulsets have rollouts here",
            kind.qualified_plural()
        ),
    };
    let client = cluster.client.clone();
    match command {
        RolloutCommand::Status { timeout, watch, .. } => {
            status(&object, &name, *timeout, *watch).await
        }
        RolloutCommand::History { revision, .. } => {
            let revisions = object.revisions(&client, ns, &name).await?;
            history(&object, &name, &revisions, *revision)
        }
        RolloutCommand::Undo { to_revision, .. } => {
            let (resource_version, current) = object.template(&name).await?;
            let revisions = object.revisions(&client, ns, &name).await?;
            let template = undo_template(&object, &name, &current, &revisions, *to_revision)?;
            let Some(template) = template else {
                println!(
                    "{}/{name} skipped rollback (current template already matches revision {})",
                    object.kind(),
                    target_revision(&revisions, *to_revision).unwrap_or(*to_revision)
                );
                return Ok(());
            };
            let value = json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
                {"op": "replace", "path": "/spec/template", "value": template},
            ]);
            let value: json_patch::Patch = serde_json::from_value(value)?;
            object.patch(&name, &Patch::<()>::Json(value)).await?;
            println!("{}/{name} rolled back", object.kind());
            Ok(())
        }
        RolloutCommand::Restart { .. } => {
            if let Rollout::Deployment(deploys) = &object {
                let d = deploys.get(&name).await.map_err(explain)?;
                if d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
                    bail!(
                        "deployments/{name} is paused: resume it first (rk8sctl rollout resume deployment/{name})"
                    );
                }
            }
            let now = jiff::Timestamp::now()
                .round(jiff::Unit::Second)?
                .to_string();
            let value = json!({"spec": {"template": {"metadata": {"annotations":
                {"kubectl.kubernetes.io/restartedAt": now}}}}});
            object.patch(&name, &Patch::Merge(&value)).await?;
            println!("{}/{name} restarted", object.kind());
            Ok(())
        }
        RolloutCommand::Pause { .. } | RolloutCommand::Resume { .. } => {
            let (value, done, doing) = match command {
                RolloutCommand::Pause { .. } => {
                    (json!({"spec": {"paused": true}}), "paused", "pausing")
                }
                _ => (json!({"spec": {"paused": null}}), "resumed", "resuming"),
            };
            match object {
                Rollout::DaemonSet(_) => bail!("daemonsets.apps {name:?} {doing} is not supported"),
                Rollout::StatefulSet(_) => {
                    bail!("statefulsets.apps {name:?} {doing} is not supported")
                }
                Rollout::Deployment(_) => {}
            }
            object.patch(&name, &Patch::Merge(&value)).await?;
            println!("{}/{name} {done}", object.kind());
            Ok(())
        }
    }
}

/// The object a rollout command is about.
enum Rollout {
    Deployment(Api<Deployment>),
    DaemonSet(Api<DaemonSet>),
    StatefulSet(Api<StatefulSet>),
}

/// One revision of a rollout's history.
struct Revision {
    number: i64,
    /// Its `kubernetes.io/change-cause`.
    cause: Option<String>,
    template: PodTemplateSpec,
}

impl Rollout {
    /// `deployment.apps` or `daemonset.apps`.
    fn kind(&self) -> &'static str {
        match self {
            Rollout::Deployment(_) => "deployment.apps",
            Rollout::DaemonSet(_) => "daemonset.apps",
            Rollout::StatefulSet(_) => "statefulset.apps",
        }
    }

    /// kubectl's name of the kind in its messages.
    fn words(&self) -> &'static str {
        match self {
            Rollout::Deployment(_) => "deployment",
            Rollout::DaemonSet(_) => "daemon set",
            Rollout::StatefulSet(_) => "statefulset",
        }
    }

    async fn patch<P: serde::Serialize + std::fmt::Debug>(
        &self,
        name: &str,
        patch: &Patch<P>,
    ) -> Result<()> {
        let params = PatchParams::default();
        match self {
            Rollout::Deployment(api) => api.patch(name, &params, patch).await.map(drop),
            Rollout::DaemonSet(api) => api.patch(name, &params, patch).await.map(drop),
            Rollout::StatefulSet(api) => api.patch(name, &params, patch).await.map(drop),
        }
        .map_err(explain)
    }

    /// The object's resourceVersion and pod template.
    async fn template(&self, name: &str) -> Result<(Option<String>, PodTemplateSpec)> {
        let (meta, template) = match self {
            Rollout::Deployment(api) => {
                let d = api.get(name).await.map_err(explain)?;
                (d.metadata, d.spec.map(|s| s.template))
            }
            Rollout::DaemonSet(api) => {
                let d = api.get(name).await.map_err(explain)?;
                (d.metadata, d.spec.map(|s| s.template))
            }
            Rollout::StatefulSet(api) => {
                let s = api.get(name).await.map_err(explain)?;
                (s.metadata, s.spec.map(|s| s.template))
            }
        };
        Ok((meta.resource_version, template.unwrap_or_default()))
    }

    /// Where the rollout is: `Ok(Some(message))` while waiting, `Ok(None)` when done.
    async fn state(&self, name: &str) -> Result<Option<String>> {
        match self {
            Rollout::Deployment(api) => rollout_state(&api.get(name).await.map_err(explain)?),
            Rollout::DaemonSet(api) => {
                daemonset_rollout_state(&api.get(name).await.map_err(explain)?)
            }
            Rollout::StatefulSet(api) => {
                statefulset_rollout_state(&api.get(name).await.map_err(explain)?)
            }
        }
    }

    /// What kubectl says when the rollout is done.
    async fn done(&self, name: &str) -> Result<String> {
        match self {
            Rollout::StatefulSet(api) => {
                Ok(statefulset_done(&api.get(name).await.map_err(explain)?))
            }
            _ => Ok(format!("{} {name:?} successfully rolled out", self.words())),
        }
    }

    /// The object's revisions, oldest first.
    async fn revisions(
        &self,
        client: &kube::Client,
        ns: &str,
        name: &str,
    ) -> Result<Vec<Revision>> {
        match self {
            Rollout::Deployment(api) => {
                let d = api.get(name).await.map_err(explain)?;
                deployment_revisions(&Api::namespaced(client.clone(), ns), &d).await
            }
            Rollout::DaemonSet(api) => {
                let d = api.get(name).await.map_err(explain)?;
                let selector = d.spec.as_ref().map(|s| &s.selector);
                controller_revisions(&Api::namespaced(client.clone(), ns), &d.metadata, selector)
                    .await
            }
            Rollout::StatefulSet(api) => {
                let s = api.get(name).await.map_err(explain)?;
                let selector = s.spec.as_ref().map(|s| &s.selector);
                controller_revisions(&Api::namespaced(client.clone(), ns), &s.metadata, selector)
                    .await
            }
        }
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

/// Where a DaemonSet's rollout is, as kubectl's `DaemonSetStatusViewer` says.
pub fn daemonset_rollout_state(ds: &DaemonSet) -> Result<Option<String>> {
    let name = ds.metadata.name.as_deref().unwrap_or_default();
    let strategy = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate");
    if strategy != "RollingUpdate" {
        bail!("rollout status is only available for RollingUpdate strategy type");
    }
    let status = ds.status.clone().unwrap_or_default();
    if ds.metadata.generation.unwrap_or(0) > status.observed_generation.unwrap_or(0) {
        return Ok(Some(
            "Waiting for daemon set spec update to be observed...".into(),
        ));
    }
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let available = status.number_available.unwrap_or(0);
    if updated < desired {
        return Ok(Some(format!(
            "Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired} new pods have been updated..."
        )));
    }
    if available < desired {
        return Ok(Some(format!(
            "Waiting for daemon set {name:?} rollout to finish: {available} of {desired} updated pods are available..."
        )));
    }
    Ok(None)
}

/// Where a StatefulSet's rollout is, as kubectl's `StatefulSetStatusViewer` says
/// (`Ok(None)` when done; its last words are then [`statefulset_done`]'s).
pub fn statefulset_rollout_state(sts: &StatefulSet) -> Result<Option<String>> {
    let spec = sts.spec.clone().unwrap_or_default();
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    if strategy.type_.as_deref().unwrap_or("RollingUpdate") != "RollingUpdate" {
        bail!("rollout status is only available for RollingUpdate strategy type");
    }
    let status = sts.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0);
    if observed == 0 || sts.metadata.generation.unwrap_or(0) > observed {
        return Ok(Some(
            "Waiting for statefulset spec update to be observed...".into(),
        ));
    }
    let replicas = spec.replicas.unwrap_or(1);
    let ready = status.ready_replicas.unwrap_or(0);
    if ready < replicas {
        return Ok(Some(format!(
            "Waiting for {} pods to be ready...",
            replicas - ready
        )));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    if let Some(partition) = strategy.rolling_update.as_ref().and_then(|r| r.partition) {
        if updated < replicas - partition {
            return Ok(Some(format!(
                "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                replicas - partition
            )));
        }
        return Ok(None);
    }
    if status.update_revision != status.current_revision {
        return Ok(Some(format!(
            "waiting for statefulset rolling update to complete {updated} pods at revision {}...",
            status.update_revision.unwrap_or_default()
        )));
    }
    Ok(None)
}

/// What kubectl says when a StatefulSet's rollout is done.
pub fn statefulset_done(sts: &StatefulSet) -> String {
    let status = sts.status.clone().unwrap_or_default();
    let partitioned = sts
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref())
        .is_some();
    if partitioned {
        format!(
            "partitioned roll out complete: {} new pods have been updated...",
            status.updated_replicas.unwrap_or(0)
        )
    } else {
        format!(
            "statefulset rolling update complete {} pods at revision {}...",
            status.current_replicas.unwrap_or(0),
            status.current_revision.unwrap_or_default()
        )
    }
}

async fn status(object: &Rollout, name: &str, timeout: Duration, watch: bool) -> Result<()> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        match object.state(name).await? {
            None => {
                println!("{}", object.done(name).await?);
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

fn change_cause(meta: &ObjectMeta) -> Option<String> {
    meta.annotations
        .as_ref()?
        .get("kubernetes.io/change-cause")
        .cloned()
}

fn controlled_by(meta: &ObjectMeta, uid: Option<&str>) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .is_some_and(|r| Some(r.uid.as_str()) == uid)
}

/// The Deployment's ReplicaSets as revisions (their templates without the
/// pod-template-hash label), oldest first.
async fn deployment_revisions(sets: &Api<ReplicaSet>, d: &Deployment) -> Result<Vec<Revision>> {
    let uid = d.metadata.uid.as_deref();
    let mut owned: Vec<Revision> = sets
        .list(&ListParams::default())
        .await
        .map_err(explain)?
        .items
        .into_iter()
        .filter(|rs| controlled_by(&rs.metadata, uid))
        .filter_map(|rs| {
            let number = rs
                .metadata
                .annotations
                .as_ref()?
                .get(REVISION)?
                .parse()
                .ok()?;
            let mut template = rs.spec.and_then(|s| s.template).unwrap_or_default();
            if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
                labels.remove("pod-template-hash");
            }
            Some(Revision {
                number,
                cause: change_cause(&rs.metadata),
                template,
            })
        })
        .collect();
    owned.sort_by_key(|r| r.number);
    Ok(owned)
}

/// A DaemonSet's or StatefulSet's ControllerRevisions (the template each holds as
/// the patch that puts it back), oldest first.
async fn controller_revisions(
    revisions: &Api<ControllerRevision>,
    owner: &ObjectMeta,
    selector: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> Result<Vec<Revision>> {
    let uid = owner.uid.as_deref();
    let selector = selector
        .and_then(|s| rk8s_api::selector::label_selector(s).ok())
        .map(|s| s.to_string());
    let params = ListParams {
        label_selector: selector,
        ..Default::default()
    };
    let mut owned: Vec<Revision> = revisions
        .list(&params)
        .await
        .map_err(explain)?
        .items
        .into_iter()
        .filter(|r| controlled_by(&r.metadata, uid))
        .filter_map(|r| {
            let mut template = r.data.as_ref()?.0.get("spec")?.get("template")?.clone();
            template.as_object_mut()?.remove("$patch");
            Some(Revision {
                number: r.revision,
                cause: change_cause(&r.metadata),
                template: serde_json::from_value(template).ok()?,
            })
        })
        .collect();
    owned.sort_by_key(|r| r.number);
    Ok(owned)
}

fn history(
    object: &Rollout,
    name: &str,
    revisions: &[Revision],
    revision: Option<i64>,
) -> Result<()> {
    let kind = object.kind();
    if let Some(wanted) = revision {
        let Some(r) = revisions.iter().find(|r| r.number == wanted) else {
            bail!(
                "unable to find the specified revision {wanted} of {} {name:?}",
                object.words()
            );
        };
        println!("{kind}/{name} with revision #{wanted}");
        print!(
            "{}",
            crate::print::yaml(&serde_json::to_value(&r.template)?)
        );
        return Ok(());
    }
    println!("{kind}/{name}");
    println!("REVISION   CHANGE-CAUSE");
    for r in revisions {
        println!(
            "{:<10} {}",
            r.number,
            r.cause.as_deref().unwrap_or("<none>")
        );
    }
    Ok(())
}

/// The revision `to` means: itself, or the one before the newest when 0.
fn target_revision(revisions: &[Revision], to: i64) -> Option<i64> {
    if to != 0 {
        return Some(to);
    }
    revisions.iter().rev().nth(1).map(|r| r.number)
}

/// The template to roll back to, or `None` when the object already has it.
fn undo_template(
    object: &Rollout,
    name: &str,
    current: &PodTemplateSpec,
    revisions: &[Revision],
    to: i64,
) -> Result<Option<PodTemplateSpec>> {
    let Some(wanted) = target_revision(revisions, to) else {
        bail!("no rollout history found for {} {name:?}", object.words());
    };
    let Some(r) = revisions.iter().find(|r| r.number == wanted) else {
        bail!(
            "unable to find the specified revision {wanted} of {} {name:?}",
            object.words()
        );
    };
    Ok((current != &r.template).then(|| r.template.clone()))
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

    #[test]
    fn daemon_set_rollout_status_words_each_stage_as_kubectl_does() {
        let ds = |generation: i64, strategy: &str, status: serde_json::Value| -> DaemonSet {
            serde_json::from_value(json!({
                "metadata": {"name": "agent", "generation": generation},
                "spec": {"selector": {}, "template": {}, "updateStrategy": {"type": strategy}},
                "status": status,
            }))
            .unwrap()
        };
        let base = json!({"currentNumberScheduled": 3, "numberMisscheduled": 0,
                          "numberReady": 3, "desiredNumberScheduled": 3});
        let with = |extra: serde_json::Value| {
            let mut v = base.clone();
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            v
        };
        let cases = [
            (
                2,
                with(json!({"observedGeneration": 1})),
                Some("Waiting for daemon set spec update to be observed..."),
            ),
            (
                1,
                with(json!({"observedGeneration": 1, "updatedNumberScheduled": 1})),
                Some(
                    "Waiting for daemon set \"agent\" rollout to finish: 1 out of 3 new pods have been updated...",
                ),
            ),
            (
                1,
                with(
                    json!({"observedGeneration": 1, "updatedNumberScheduled": 3, "numberAvailable": 2}),
                ),
                Some(
                    "Waiting for daemon set \"agent\" rollout to finish: 2 of 3 updated pods are available...",
                ),
            ),
            (
                1,
                with(
                    json!({"observedGeneration": 1, "updatedNumberScheduled": 3, "numberAvailable": 3}),
                ),
                None,
            ),
        ];
        for (generation, status, want) in cases {
            let got = daemonset_rollout_state(&ds(generation, "RollingUpdate", status)).unwrap();
            assert_eq!(got.as_deref(), want);
        }
        let on_delete = ds(1, "OnDelete", with(json!({"observedGeneration": 1})));
        assert!(daemonset_rollout_state(&on_delete).is_err());
    }

    #[test]
    fn stateful_set_rollout_status_words_each_stage_as_kubectl_does() {
        let sts = |strategy: serde_json::Value, status: serde_json::Value| -> StatefulSet {
            serde_json::from_value(json!({
                "metadata": {"name": "web", "generation": 2},
                "spec": {"replicas": 3, "selector": {}, "template": {}, "serviceName": "web",
                         "updateStrategy": strategy},
                "status": status,
            }))
            .unwrap()
        };
        let partitioned = json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 1}});
        let plain = json!({"type": "RollingUpdate"});
        let state = |s: &StatefulSet| statefulset_rollout_state(s).unwrap();
        let behind = sts(
            plain.clone(),
            json!({"replicas": 3, "observedGeneration": 1}),
        );
        assert_eq!(
            state(&behind).as_deref(),
            Some("Waiting for statefulset spec update to be observed...")
        );
        let unready = json!({"replicas": 3, "observedGeneration": 2, "readyReplicas": 1});
        assert_eq!(
            state(&sts(plain.clone(), unready)).as_deref(),
            Some("Waiting for 2 pods to be ready...")
        );
        let ready = json!({"replicas": 3, "observedGeneration": 2, "readyReplicas": 3,
            "updatedReplicas": 1, "currentReplicas": 2,
            "currentRevision": "web-a", "updateRevision": "web-b"});
        assert_eq!(
            state(&sts(partitioned.clone(), ready.clone())).as_deref(),
            Some(
                "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated..."
            )
        );
        assert_eq!(
            state(&sts(plain.clone(), ready)).as_deref(),
            Some("waiting for statefulset rolling update to complete 1 pods at revision web-b...")
        );
        let done = json!({"replicas": 3, "observedGeneration": 2, "readyReplicas": 3,
            "updatedReplicas": 3, "currentReplicas": 3,
            "currentRevision": "web-b", "updateRevision": "web-b"});
        let finished = sts(plain, done.clone());
        assert_eq!(state(&finished), None);
        assert_eq!(
            statefulset_done(&finished),
            "statefulset rolling update complete 3 pods at revision web-b..."
        );
        assert_eq!(
            statefulset_done(&sts(partitioned, done)),
            "partitioned roll out complete: 3 new pods have been updated..."
        );
        let on_delete = sts(
            json!({"type": "OnDelete"}),
            json!({"observedGeneration": 2}),
        );
        assert!(statefulset_rollout_state(&on_delete).is_err());
    }
}

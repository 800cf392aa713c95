//! `scale` and `autoscale`: a Deployment's or ReplicaSet's replicas, set once or by a
//! HorizontalPodAutoscaler.

use anyhow::{Context, Result, bail};
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{Global, one};
use crate::cluster::explain;

/// `scale KIND/NAME --replicas N`.
pub async fn scale(g: &Global, resource: &str, name: Option<&str>, replicas: u32) -> Result<()> {
    let cluster = g.connect().await?;
    let (kind, name) = one(&cluster, resource, name).await?;
    if !matches!(kind.plural, "deployments" | "replicasets") {
        bail!(
            "{} cannot be scaled: only deployments and replicasets have replicas",
            kind.qualified_plural()
        );
    }
    let api = cluster.api(&kind, Some(&cluster.namespace));
    api.patch_scale(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await
    .map_err(explain)?;
    println!("{}/{name} scaled", kind.qualified_singular());
    Ok(())
}

/// `autoscale` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct AutoscaleArgs {
    /// `KIND/NAME` or `KIND`.
    #[arg(add = crate::completion::resources(1))]
    pub resource: String,
    /// The name, when not given as KIND/NAME.
    #[arg(add = crate::completion::resources(1))]
    pub name: Option<String>,
    /// The fewest replicas (default: the server's, 1).
    #[arg(long)]
    pub min: Option<i32>,
    /// The most replicas.
    #[arg(long)]
    pub max: i32,
    /// The average CPU use to keep, in percent of the pods' requests (default: the
    /// server's, 80).
    #[arg(long)]
    pub cpu_percent: Option<i32>,
    /// The autoscaler's name (default: the target's).
    #[arg(long = "name")]
    pub hpa_name: Option<String>,
}

/// `autoscale KIND NAME --max N [--min N] [--cpu-percent P]`: a
/// HorizontalPodAutoscaler (autoscaling/v2) for the Deployment or ReplicaSet.
pub async fn autoscale(g: &Global, args: &AutoscaleArgs) -> Result<()> {
    let cluster = g.connect().await?;
    let (kind, name) = one(&cluster, &args.resource, args.name.as_deref()).await?;
    if !matches!(kind.plural, "deployments" | "replicasets") {
        bail!(
            "cannot autoscale a {}: only deployments and replicasets have a scale subresource",
            kind.kind
        );
    }
    let api_version = if kind.group.is_empty() {
        kind.version.to_string()
    } else {
        format!("{}/{}", kind.group, kind.version)
    };
    let hpa_name = args.hpa_name.clone().unwrap_or_else(|| name.clone());
    let mut spec = json!({
        "scaleTargetRef": {"apiVersion": api_version, "kind": kind.kind, "name": name},
        "maxReplicas": args.max,
    });
    if let Some(min) = args.min {
        spec["minReplicas"] = json!(min);
    }
    if let Some(cpu) = args.cpu_percent {
        spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": cpu}}}]);
    }
    let hpa = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": hpa_name, "namespace": cluster.namespace},
        "spec": spec,
    });
    let hpa_kind = rk8s_api::object::kind_named("HorizontalPodAutoscaler")
        .context("this build has no HorizontalPodAutoscaler kind")?;
    let object: DynamicObject = serde_json::from_value(hpa)?;
    cluster
        .api(&hpa_kind, Some(&cluster.namespace))
        .create(&PostParams::default(), &object)
        .await
        .map_err(explain)?;
    println!("{}/{hpa_name} autoscaled", hpa_kind.qualified_singular());
    Ok(())
}

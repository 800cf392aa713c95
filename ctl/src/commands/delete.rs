//! `delete`: objects by name, selector or file, with a cascade policy.

use anyhow::{Result, bail};
use kube::api::{DeleteParams, ListParams, PropagationPolicy};
use rk8s_api::ObjectKind;

use super::apply::{Files, kinds_and_names};
use super::{Global, resolve_targets};
use crate::cluster::explain;

/// `delete`'s arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct DeleteArgs {
    /// `KIND NAME...` or `KIND/NAME...` (or use -f).
    #[arg(add = crate::completion::resources(1))]
    pub resources: Vec<String>,
    /// Delete what these files describe.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    /// Every object of the kind in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Objects matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// What happens to dependents: background (default), foreground or orphan.
    #[arg(long, default_value = "background")]
    pub cascade: String,
    /// Seconds a pod gets to stop (default: its own terminationGracePeriodSeconds).
    #[arg(long)]
    pub grace_period: Option<u32>,
    /// Wait until the objects are gone.
    #[arg(long)]
    pub wait: bool,
}

/// `delete`.
pub async fn delete(g: &Global, a: &DeleteArgs) -> Result<()> {
    let cluster = g.connect().await?;
    let policy = match a.cascade.as_str() {
        "background" | "true" => PropagationPolicy::Background,
        "foreground" => PropagationPolicy::Foreground,
        "orphan" | "false" => PropagationPolicy::Orphan,
        other => bail!("--cascade: {other:?} is not one of background, foreground, orphan"),
    };
    let params = DeleteParams {
        propagation_policy: Some(policy),
        grace_period_seconds: a.grace_period,
        ..DeleteParams::default()
    };
    let mut work: Vec<(ObjectKind, Option<String>, String)> = Vec::new();
    if !a.files.is_empty() {
        let files = Files::only(a.files.clone());
        work = kinds_and_names(&cluster, g, &files).await?;
    } else {
        for (kind, names) in resolve_targets(&cluster, &a.resources).await? {
            let ns = kind.is_namespaced().then(|| cluster.namespace.clone());
            let names = if names.is_empty() {
                if !a.all && a.selector.is_none() {
                    bail!(
                        "resource(s) were provided, but no name was specified (use --all or -l to delete several)"
                    );
                }
                let lp = ListParams {
                    label_selector: a.selector.clone(),
                    ..ListParams::default()
                };
                cluster
                    .api(&kind, ns.as_deref())
                    .list(&lp)
                    .await
                    .map_err(explain)?
                    .items
                    .into_iter()
                    .filter_map(|o| o.metadata.name)
                    .collect()
            } else {
                names
            };
            for n in names {
                work.push((kind, ns.clone(), n));
            }
        }
    }
    for (kind, ns, name) in &work {
        let api = cluster.api(kind, ns.as_deref());
        api.delete(name, &params).await.map_err(explain)?;
        println!("{} \"{name}\" deleted", kind.qualified_plural());
    }
    if a.wait {
        for (kind, ns, name) in &work {
            let api = cluster.api(kind, ns.as_deref());
            while api.get_opt(name).await.map_err(explain)?.is_some() {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
    Ok(())
}

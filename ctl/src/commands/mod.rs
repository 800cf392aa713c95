//! The cluster commands of `rk8sctl`, with their arguments, one module per verb
//! group: [`apply`](apply()) and [`create`] (`-f` files), [`get`] (with `--watch`),
//! [`describe`](describe()), [`delete`], [`scale`] and [`autoscale`], [`set_metadata`]
//! (`label`, `annotate`), [`edit`], [`cluster_info`] and [`version`], [`config`],
//! [`wait`], [`run`], [`expose`], [`set_image`], [`cordon`] and [`drain`]. What
//! they share is here: the [`Global`] options and how `KIND NAME` arguments name
//! objects.

mod apply;
mod config;
mod delete;
mod describe;
mod drain;
mod edit;
mod generate;
mod get;
mod info;
mod metadata;
mod scale;
mod wait;

use std::path::PathBuf;

use anyhow::{Result, bail};
use rk8s_api::ObjectKind;
use serde_json::{Value, json};

use crate::cluster::{Cluster, Target};
use crate::discovery::Resolver;
use crate::print;

pub use apply::{Files, apply, create};
pub use config::{ConfigCommand, config};
pub use delete::{DeleteArgs, delete};
pub use describe::describe;
pub use drain::{DrainArgs, cordon, drain};
pub use edit::edit;
pub use generate::{DryRun, Emit, ExposeArgs, RunArgs, SetImageArgs, expose, run, set_image};
pub use get::{GetArgs, Output, get};
pub use info::{cluster_info, version};
pub use metadata::{MetaMap, set_metadata};
pub use scale::{AutoscaleArgs, autoscale, scale};
pub use wait::{WaitArgs, WaitFor, wait};

/// Options every cluster command takes.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Global {
    /// The kubeconfig file [default: $RK8S_CONFIG, else the files in $KUBECONFIG,
    /// else ~/.rk8s/config and ~/.kube/config].
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The namespace (default: the context's, else `default`).
    #[arg(short = 'n', long, global = true, add = crate::completion::names_of("namespaces"))]
    pub namespace: Option<String>,
}

/// Which objects a command lists: `-A`, `-l`, `--field-selector` (`get`, `wait`).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Selection {
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector (`app=web,tier!=db`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector (`status.phase=Running`).
    #[arg(long)]
    pub field_selector: Option<String>,
}

impl Selection {
    /// The namespace to list in (`None`: every one, with `-A`).
    pub(crate) fn namespace<'a>(&self, cluster: &'a Cluster) -> Option<&'a str> {
        (!self.all_namespaces).then_some(cluster.namespace.as_str())
    }
}

impl Global {
    pub(crate) async fn connect(&self) -> Result<Cluster> {
        Cluster::connect(&Target {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            namespace: self.namespace.clone(),
        })
        .await
    }
}

/// What `get`, `describe`, `delete`, `label`... address: `KIND[,KIND] [NAME...]` or
/// `KIND/NAME...`, the kinds named as typed (resolved by [`resolve_targets`]).
fn parse_targets(args: &[String]) -> Result<Vec<(String, Vec<String>)>> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    if args.iter().any(|a| a.contains('/')) {
        for a in args {
            let (k, n) = a
                .split_once('/')
                .ok_or_else(|| anyhow::anyhow!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'rk8sctl get resource/<resource_name>' instead of 'rk8sctl get resource resource/<resource_name>')"))?;
            match out.iter_mut().find(|(kk, _)| kk == k) {
                Some((_, names)) => names.push(n.to_string()),
                None => out.push((k.to_string(), vec![n.to_string()])),
            }
        }
        return Ok(out);
    }
    let Some((first, names)) = args.split_first() else {
        bail!("you must specify the type of resource, e.g. pods, deployments, nodes");
    };
    for k in first.split(',').filter(|k| !k.is_empty()) {
        if k == "all" {
            for plural in [
                "pods",
                "services",
                "deployments",
                "replicasets",
                "horizontalpodautoscalers",
                "jobs",
            ] {
                out.push((plural.to_string(), names.to_vec()));
            }
        } else {
            out.push((k.to_string(), names.to_vec()));
        }
    }
    Ok(out)
}

/// The kinds of [`parse_targets`]' names: built-in kinds from rk8s's list, any other
/// (custom kinds: plural, singular, short name, kind, `plural.group`) through the
/// server's discovery. Two names of one kind (`deploy/a deployments/b`) merge.
async fn resolve_targets(
    cluster: &Cluster,
    args: &[String],
) -> Result<Vec<(ObjectKind, Vec<String>)>> {
    let mut resolver = Resolver::new(cluster.client.clone());
    let mut out: Vec<(ObjectKind, Vec<String>)> = Vec::new();
    let by_slash = args.iter().any(|a| a.contains('/'));
    for (name, names) in parse_targets(args)? {
        let kind = resolver
            .resolve(&name)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the server doesn't have a resource type {name:?}"))?;
        match out.iter_mut().find(|(k, _)| by_slash && *k == kind) {
            Some((_, known)) => known.extend(names),
            None => out.push((kind, names)),
        }
    }
    Ok(out)
}

fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            s.append_pair(k, v);
        }
    }
    let q = s.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}

/// `KIND/NAME` or `KIND NAME` as one object.
pub(crate) async fn one(
    cluster: &Cluster,
    resource: &str,
    name: Option<&str>,
) -> Result<(ObjectKind, String)> {
    let args: Vec<String> = std::iter::once(resource.to_string())
        .chain(name.map(str::to_string))
        .collect();
    match resolve_targets(cluster, &args).await?.as_slice() {
        [(kind, names)] if names.len() == 1 => Ok((*kind, names[0].clone())),
        _ => bail!("name exactly one object: KIND/NAME or KIND NAME"),
    }
}

fn with_kind(mut obj: Value, kind: &ObjectKind) -> Value {
    obj["apiVersion"] = json!(kind.api_version);
    obj["kind"] = json!(kind.kind);
    print::for_output(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(args: &[&str]) -> Vec<(String, Vec<String>)> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse_targets(&args).unwrap()
    }

    #[test]
    fn targets_read_like_kubectl() {
        assert_eq!(t(&["po"]), vec![("po".into(), vec![])]);
        assert_eq!(
            t(&["deploy", "a", "b"]),
            vec![("deploy".into(), vec!["a".into(), "b".into()])]
        );
        assert_eq!(
            t(&["deploy/a", "svc/b", "deploy/c"]),
            vec![
                ("deploy".into(), vec!["a".into(), "c".into()]),
                ("svc".into(), vec!["b".into()])
            ]
        );
        assert_eq!(t(&["deploy,ct"]).len(), 2);
        assert_eq!(t(&["all"]).len(), 6);
        let both: Vec<String> = vec!["deploy".into(), "svc/b".into()];
        assert!(parse_targets(&both).is_err());
        let none: Vec<String> = Vec::new();
        assert!(parse_targets(&none).is_err());
        assert_eq!(
            query(&[
                ("labelSelector", Some("app=web,x in (a)")),
                ("fieldSelector", None)
            ]),
            "?labelSelector=app%3Dweb%2Cx+in+%28a%29"
        );
    }
}

//! The cluster commands of `rk8sctl`, with their arguments, one module per verb
//! group: [`apply`](apply()) and [`create`] (`-f` files), [`get`] (with `--watch`),
//! [`describe`](describe()), [`delete`], [`scale`] and [`autoscale`], [`set_metadata`]
//! (`label`, `annotate`), [`edit`], [`cluster_info`] and [`version`], [`config`]. What
//! they share is here: the [`Global`] options and how `KIND NAME` arguments name
//! objects.

mod apply;
mod config;
mod delete;
mod describe;
mod edit;
mod get;
mod info;
mod metadata;
mod scale;

use std::path::PathBuf;

use anyhow::{Result, bail};
use rk8s_api::ObjectKind;
use rk8s_api::object::resolve;
use serde_json::{Value, json};

use crate::cluster::{Cluster, Target};
use crate::print;

pub use apply::{Files, apply, create};
pub use config::{ConfigCommand, config};
pub use delete::{DeleteArgs, delete};
pub use describe::describe;
pub use edit::edit;
pub use get::{GetArgs, Output, get};
pub use info::{cluster_info, version};
pub use metadata::{MetaMap, set_metadata};
pub use scale::{AutoscaleArgs, autoscale, scale};

/// Options every cluster command takes.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Global {
    /// The kubeconfig file [default: $RK8S_CONFIG, else ~/.rk8s/config].
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The namespace (default: the context's, else `default`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
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
/// `KIND/NAME...`.
fn targets(args: &[String]) -> Result<Vec<(ObjectKind, Vec<String>)>> {
    let unknown = |k: &str| {
        anyhow::anyhow!(
            "the server doesn't have a resource type {k:?} (known: {})",
            rk8s_api::object::kinds()
                .iter()
                .map(|k| k.plural)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut out: Vec<(ObjectKind, Vec<String>)> = Vec::new();
    if args.iter().any(|a| a.contains('/')) {
        for a in args {
            let (k, n) = a
                .split_once('/')
                .ok_or_else(|| anyhow::anyhow!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'rk8sctl get resource/<resource_name>' instead of 'rk8sctl get resource resource/<resource_name>')"))?;
            let kind = resolve(k).ok_or_else(|| unknown(k))?;
            match out.iter_mut().find(|(kk, _)| *kk == kind) {
                Some((_, names)) => names.push(n.to_string()),
                None => out.push((kind, vec![n.to_string()])),
            }
        }
        return Ok(out);
    }
    let Some((first, names)) = args.split_first() else {
        bail!("you must specify the type of resource, e.g. pods, deployments, nodes");
    };
    for k in first.split(',').filter(|k| !k.is_empty()) {
        let kind = if k == "all" {
            for plural in [
                "pods",
                "services",
                "deployments",
                "replicasets",
                "horizontalpodautoscalers",
                "jobs",
            ] {
                out.extend(resolve(plural).map(|k| (k, names.to_vec())));
            }
            continue;
        } else {
            resolve(k).ok_or_else(|| unknown(k))?
        };
        out.push((kind, names.to_vec()));
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
pub(crate) fn one(resource: &str, name: Option<&str>) -> Result<(ObjectKind, String)> {
    let args: Vec<String> = std::iter::once(resource.to_string())
        .chain(name.map(str::to_string))
        .collect();
    match targets(&args)?.as_slice() {
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
        targets(&args)
            .unwrap()
            .into_iter()
            .map(|(k, n)| (k.plural.to_string(), n))
            .collect()
    }

    #[test]
    fn targets_read_like_kubectl() {
        assert_eq!(t(&["po"]), vec![("pods".into(), vec![])]);
        assert_eq!(
            t(&["deploy", "a", "b"]),
            vec![("deployments".into(), vec!["a".into(), "b".into()])]
        );
        assert_eq!(
            t(&["deploy/a", "svc/b", "deploy/c"]),
            vec![
                ("deployments".into(), vec!["a".into(), "c".into()]),
                ("services".into(), vec!["b".into()])
            ]
        );
        assert_eq!(t(&["deploy,svc"]).len(), 2);
        assert_eq!(t(&["all"]).len(), 6);
        let bad: Vec<String> = vec!["secrets".into()];
        assert!(
            targets(&bad)
                .unwrap_err()
                .to_string()
                .contains("doesn't have a resource type")
        );
        assert_eq!(
            query(&[
                ("labelSelector", Some("app=web,x in (a)")),
                ("fieldSelector", None)
            ]),
            "?labelSelector=app%3Dweb%2Cx+in+%28a%29"
        );
    }
}

//! `apply -f` and `create -f`: objects from files, read, decoded and validated here
//! before anything is sent.

use anyhow::{Result, bail};
use kube::api::{DynamicObject, PostParams};
use rk8s_api::formats::{self, FileFormat};
use rk8s_api::{AnyObject, manifest};

use super::Global;
use crate::apply;
use crate::cluster::explain;
use crate::input;

/// `-f` files.
#[derive(clap::Args, Clone, Debug)]
pub struct Files {
    /// File, directory or `-` (standard input); may be repeated.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Descend into subdirectories of directories given with -f.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

/// Reads, decodes and validates every object in `files`; every problem (with file,
/// line and column) is reported before anything is sent.
pub(super) fn objects_from(files: &Files, g: &Global, cluster_ns: &str) -> Result<Vec<AnyObject>> {
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    for input in input::read_all(&files.files, files.recursive)? {
        match formats::detect(&input.text) {
            FileFormat::Manifests => {}
            other => {
                eprintln!(
                    "skipping {}: {}, not Kubernetes objects",
                    input.name,
                    match other {
                        FileFormat::Compose => "a Compose file",
                        _ => "a single-container file",
                    },
                );
                continue;
            }
        }
        let (manifests, diags) = manifest::decode(&input.name, &input.text);
        problems.extend(diags);
        for m in manifests {
            let mut checked = m.clone();
            rk8s_api::defaults::apply_defaults(&mut checked.object);
            problems.extend(checked.validate());
            let mut obj = m.object;
            if obj.kind().is_namespaced() {
                let ns = obj.metadata().namespace.clone().filter(|n| !n.is_empty());
                match (ns, &g.namespace) {
                    (Some(own), Some(flag)) if own != *flag => bail!(
                        "{}: the namespace from the provided object {own:?} does not match the namespace {flag:?}. You must pass '--namespace={own}' to perform this operation.",
                        input.name
                    ),
                    (Some(_), _) => {}
                    (None, _) => obj.metadata_mut().namespace = Some(cluster_ns.to_string()),
                }
            }
            objects.push(obj);
        }
    }
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        bail!("{}", list.join("\n"));
    }
    Ok(objects)
}

/// `apply -f`.
pub async fn apply(g: &Global, files: &Files) -> Result<()> {
    let cluster = g.connect().await?;
    let objects = objects_from(files, g, &cluster.namespace)?;
    // Namespaces first, so the objects in them can be created in the same run.
    let (namespaces, rest): (Vec<_>, Vec<_>) = objects
        .into_iter()
        .partition(|o| o.kind().kind == "Namespace");
    let mut failed = 0;
    for obj in namespaces.iter().chain(&rest) {
        let name = format!("{}/{}", obj.kind().qualified_singular(), obj.name());
        match apply::apply(&cluster, obj).await {
            Ok(outcome) => println!("{name} {}", outcome.as_str()),
            Err(e) => {
                failed += 1;
                eprintln!("{name}: {e:#}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} object(s) could not be applied");
    }
    Ok(())
}

/// `create -f`.
pub async fn create(g: &Global, files: &Files) -> Result<()> {
    let cluster = g.connect().await?;
    let objects = objects_from(files, g, &cluster.namespace)?;
    for obj in &objects {
        let api = cluster.api(&obj.kind(), obj.namespace());
        let value: DynamicObject = serde_json::from_value(obj.to_value())?;
        api.create(&PostParams::default(), &value)
            .await
            .map_err(explain)?;
        println!("{}/{} created", obj.kind().qualified_singular(), obj.name());
    }
    Ok(())
}

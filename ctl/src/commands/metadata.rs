//! `label` and `annotate`: set (`key=value`) or remove (`key-`) entries of an object's
//! labels or annotations.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use super::{Global, one};
use crate::cluster::explain;

/// `label` / `annotate`: which metadata map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaMap {
    /// `metadata.labels`.
    Labels,
    /// `metadata.annotations`.
    Annotations,
}

/// `label|annotate KIND NAME k=v k-... [--overwrite]`.
pub async fn set_metadata(
    g: &Global,
    which: MetaMap,
    args: &[String],
    overwrite: bool,
) -> Result<()> {
    let cluster = g.connect().await?;
    let (target, changes): (Vec<String>, Vec<String>) = args
        .iter()
        .cloned()
        .partition(|a| !a.contains('=') && !a.ends_with('-'));
    let (kind, name) = match target.as_slice() {
        [r] => one(&cluster, r, None).await?,
        [r, n] => one(&cluster, r, Some(n)).await?,
        _ => bail!("give one object (KIND NAME or KIND/NAME) and then key=value or key- pairs"),
    };
    if changes.is_empty() {
        bail!("at least one key=value or key- is required");
    }
    let api = cluster.api(&kind, Some(&cluster.namespace));
    let live = api.get(&name).await.map_err(explain)?;
    let current: BTreeMap<String, String> = match which {
        MetaMap::Labels => live.metadata.labels.clone().unwrap_or_default(),
        MetaMap::Annotations => live.metadata.annotations.clone().unwrap_or_default(),
    };
    let mut patch = serde_json::Map::new();
    for c in &changes {
        if let Some(key) = c.strip_suffix('-').filter(|_| !c.contains('=')) {
            patch.insert(key.to_string(), Value::Null);
            continue;
        }
        let (k, v) = c.split_once('=').unwrap_or((c, ""));
        if let Some(old) = current.get(k)
            && old != v
            && !overwrite
        {
            bail!("'{k}' already has a value ({old}), and --overwrite is false");
        }
        patch.insert(k.to_string(), Value::String(v.to_string()));
    }
    let field = match which {
        MetaMap::Labels => "labels",
        MetaMap::Annotations => "annotations",
    };
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {field: patch}})),
    )
    .await
    .map_err(explain)?;
    let verb = match which {
        MetaMap::Labels => "labeled",
        MetaMap::Annotations => "annotated",
    };
    println!("{}/{name} {verb}", kind.qualified_singular());
    Ok(())
}

//! `edit KIND NAME`: the object in `$EDITOR`, sent back as a patch of what changed.

use anyhow::{Context, Result, bail};
use kube::api::{Patch, PatchParams};
use rk8s_api::manifest;

use super::{Global, one, with_kind};
use crate::cluster::explain;
use crate::print;

/// `edit KIND NAME`: the object in `$EDITOR`, saved back with a compare-and-swap.
pub async fn edit(g: &Global, resource: &str, name: Option<&str>) -> Result<()> {
    let cluster = g.connect().await?;
    let (kind, name) = one(&cluster, resource, name).await?;
    let ns = Some(cluster.namespace.as_str());
    let obj = cluster
        .get_json(&kind.object_path(ns, &name), "application/json")
        .await?;
    let obj = with_kind(obj, &kind);
    let original = print::yaml(&obj);
    let header = "# Edit the object below; lines starting with '#' are ignored.\n# Save and quit to apply; an unchanged file (or an empty one) cancels.\n";
    let dir = std::env::temp_dir().join(format!("rk8sctl-edit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}-{name}.yaml", kind.plural));
    std::fs::write(&path, format!("{header}{original}"))?;
    let editor = std::env::var("RK8S_EDITOR")
        .or_else(|_| std::env::var("EDITOR"))
        .or_else(|_| std::env::var("VISUAL"))
        .unwrap_or_else(|_| "vi".to_string());
    let mut parts = editor.split_whitespace();
    let program = parts.next().unwrap_or("vi");
    let status = std::process::Command::new(program)
        .args(parts)
        .arg(&path)
        .status()
        .with_context(|| format!("cannot run the editor {editor:?} (set EDITOR)"))?;
    if !status.success() {
        bail!(
            "the editor {editor:?} failed; your changes are in {}",
            path.display()
        );
    }
    let edited = std::fs::read_to_string(&path)?;
    let body: String = edited
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    if body.trim().is_empty() || body == original {
        let _ = std::fs::remove_dir_all(&dir);
        println!("Edit cancelled, no changes made.");
        return Ok(());
    }
    let (mut manifests, diags) = manifest::decode(&path.display().to_string(), &edited);
    if !diags.is_empty() || manifests.len() != 1 {
        let list: Vec<String> = diags.iter().map(ToString::to_string).collect();
        bail!(
            "{}\nyour changes are kept in {}",
            list.join("\n"),
            path.display()
        );
    }
    let new = manifests.remove(0).object.to_value();
    // Sent as a JSON patch of what the user changed (both sides decoded alike), as
    // kubectl edit sends a patch: a status or annotation another writer changed in
    // the meantime is no conflict; the same field changed by both is the server's to
    // judge.
    let (before, _) = manifest::decode(&path.display().to_string(), &original);
    let before = before
        .into_iter()
        .next()
        .map(|m| m.object.to_value())
        .unwrap_or_default();
    let patch = json_patch::diff(&before, &new);
    if patch.0.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
        println!("Edit cancelled, no changes made.");
        return Ok(());
    }
    match cluster
        .api(&kind, ns)
        .patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
    {
        Ok(_) => {
            let _ = std::fs::remove_dir_all(&dir);
            println!("{}/{name} edited", kind.qualified_singular());
            Ok(())
        }
        Err(e) => Err(explain(e).context(format!("your changes are kept in {}", path.display()))),
    }
}

//! The node's part of local-path volumes (rk8s' provisioner, k3s' `local-path`): it
//! announces the directory they are made under (`rk8s.io/local-path-dir` on its
//! Node; the PersistentVolume controller makes each volume `DIR/pvc-UID_NS_NAME`
//! there), the runtime makes a volume's directory when its first pod starts, and
//! [`collect`] removes the directories of volumes that are gone — deleted by their
//! reclaim policy once their claim was. A volume the API still has (Retain, or
//! bound) keeps its directory; so does one the API cannot be asked about.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::PersistentVolume;
use kube::Api;

/// The Node annotation naming the directory.
pub const DIR_ANNOTATION: &str = "rk8s.io/local-path-dir";

/// How often directories of deleted volumes are looked for.
pub const COLLECT_EVERY: Duration = Duration::from_secs(10);

/// The directory local-path volumes are made under, in the node's data directory.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("storage")
}

/// The volume a directory under [`dir`] belongs to (`pvc-UID_NS_NAME` → `pvc-UID`).
fn volume_of(entry: &str) -> Option<&str> {
    let (volume, _) = entry.split_once('_')?;
    volume.starts_with("pvc-").then_some(volume)
}

/// Removes, every [`COLLECT_EVERY`], the directories under `dir` whose volume the
/// API no longer has.
pub async fn collect(client: kube::Client, dir: PathBuf) {
    let volumes: Api<PersistentVolume> = Api::all(client);
    loop {
        tokio::time::sleep(COLLECT_EVERY).await;
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(volume) = volume_of(&name) else {
                continue;
            };
            match volumes.get(volume).await {
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    let path = entry.path();
                    match std::fs::remove_dir_all(&path) {
                        Ok(()) => tracing::info!(
                            volume,
                            path = %path.display(),
                            "removed the directory of a deleted local-path volume"
                        ),
                        Err(e) => tracing::warn!(path = %path.display(), "removing: {e}"),
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(volume, "reading: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_name_their_volume() {
        assert_eq!(volume_of("pvc-1f2e_default_data-web-0"), Some("pvc-1f2e"));
        assert_eq!(volume_of("pvc-1f2e"), None);
        assert_eq!(volume_of("other_default_x"), None);
    }
}

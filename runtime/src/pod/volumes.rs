//! A pod's volumes: emptyDir under the pod's directory, hostPath on the host, a
//! claim's at its volume's directory (read by the agent: [`super::inputs`]),
//! ConfigMap, Secret, downwardAPI and projected ones under the pod's directory too
//! ([`super::projected`]); made with the sandbox, bind-mounted where the containers'
//! volumeMounts say.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, PodSpec, Volume};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::inputs::{ClaimVolume, Read};
use crate::error::{Error, Result, io};
use crate::spec::BindMount;

/// Makes the directories of `volumes` for the pod with directory `dir`.
pub(super) fn create<'a>(dir: &Path, volumes: impl IntoIterator<Item = &'a Volume>) -> Result<()> {
    for volume in volumes {
        if volume.empty_dir.is_some() {
            let path = dir.join("volumes").join(&volume.name);
            std::fs::create_dir_all(&path).map_err(io(&path))?;
        } else if super::projected::is_projected(volume) {
            // Filled as the containers start and kept up to date by each sync; Secrets
            // on a tmpfs, as kubelet keeps them: never on the node's disk.
            let path = dir.join("volumes").join(&volume.name);
            std::fs::create_dir_all(&path).map_err(io(&path))?;
            if holds_secrets(volume) && !is_mount_point(&path)? {
                let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
                mount(
                    Some("tmpfs"),
                    &path,
                    Some("tmpfs"),
                    flags,
                    Some("mode=0755"),
                )
                .map_err(|e| {
                    Error::InvalidSpec(format!("tmpfs for volume {:?}: {e}", volume.name))
                })?;
            }
        } else if let Some(host_path) = &volume.host_path {
            if host_path.type_.as_deref() == Some("DirectoryOrCreate") {
                std::fs::create_dir_all(&host_path.path).map_err(io(&host_path.path))?;
            }
        } else if volume.persistent_volume_claim.is_some() {
            // Its volume's directory is found when the containers start
            // ([`claim_dir`]): the claim may be bound only then.
        } else {
            return Err(Error::InvalidSpec(format!(
                "volume {:?}: only emptyDir, hostPath, persistentVolumeClaim, configMap, secret, downwardAPI and projected volumes are supported",
                volume.name
            )));
        }
    }
    Ok(())
}

/// Whether `volume` holds Secrets or tokens (a secret volume, or a projected one with
/// a secret or serviceAccountToken source).
fn holds_secrets(volume: &Volume) -> bool {
    let projected = volume.projected.as_ref().and_then(|p| p.sources.as_ref());
    volume.secret.is_some()
        || projected
            .into_iter()
            .flatten()
            .any(|s| s.secret.is_some() || s.service_account_token.is_some())
}

/// Whether `path` is a mount point (another filesystem than its parent's).
fn is_mount_point(path: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let parent = path.parent().unwrap_or(path);
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).map_err(io(p));
    Ok(dev(path)? != dev(parent)?)
}

/// Unmounts the tmpfs of the pod's volumes under `dir`, before its files go.
pub(super) fn unmount(dir: &Path) -> Result<()> {
    let volumes = dir.join("volumes");
    let Ok(entries) = std::fs::read_dir(&volumes) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry.map_err(io(&volumes))?.path();
        if is_mount_point(&path)? {
            umount2(&path, MntFlags::MNT_DETACH)
                .map_err(|e| Error::InvalidSpec(format!("umount {}: {e}", path.display())))?;
        }
    }
    Ok(())
}

/// The directory of the volume a claim volume is bound to, made if it is a
/// local-path one (open to every user, as the provisioner makes them: the pod's
/// user writes there); or why there is none yet (kubelet's FailedMount words).
pub(super) fn claim_dir(
    volume: &Volume,
    claims: &BTreeMap<String, Read<ClaimVolume>>,
) -> std::result::Result<Option<PathBuf>, String> {
    let Some(source) = &volume.persistent_volume_claim else {
        return Ok(None);
    };
    let claim = &source.claim_name;
    let found = claims
        .get(claim)
        .ok_or_else(|| format!("persistentvolumeclaim \"{claim}\" not found"))?;
    let found = found.as_ref().map_err(|e| e.to_string())?;
    if found.create && !found.path.exists() {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o777)
            .create(&found.path)
            .map_err(|e| format!("{}: {e}", found.path.display()))?;
        // The umask took some bits away.
        let open = std::fs::Permissions::from_mode(0o777);
        std::fs::set_permissions(&found.path, open)
            .map_err(|e| format!("{}: {e}", found.path.display()))?;
    }
    if !found.path.is_dir() {
        return Err(format!(
            "the volume of persistentvolumeclaim \"{claim}\" is not a directory here: {}",
            found.path.display()
        ));
    }
    Ok(Some(found.path.clone()))
}

/// The bind mounts of container `c`'s volumeMounts, in their order (a subPath of
/// an emptyDir, hostPath or claim is made if missing; one of a ConfigMap, Secret,
/// downwardAPI or projected volume is the file it names now).
pub(super) fn mounts(
    dir: &Path,
    pod_spec: &PodSpec,
    c: &Container,
    claims: &BTreeMap<String, Read<ClaimVolume>>,
) -> Result<Vec<BindMount>> {
    let mut mounts = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let volume = pod_spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == m.name)
            .ok_or_else(|| {
                Error::InvalidSpec(format!(
                    "volumeMount {:?}: no such volume in the pod",
                    m.name
                ))
            })?;
        // ConfigMap, Secret, downwardAPI and projected volumes are read-only.
        let projected = super::projected::is_projected(volume);
        let claim = claim_dir(volume, claims).map_err(Error::InvalidSpec)?;
        let source = match (&volume.empty_dir, &volume.host_path) {
            (Some(_), _) => dir.join("volumes").join(&volume.name),
            (None, Some(h)) => PathBuf::from(&h.path),
            _ if projected => dir.join("volumes").join(&volume.name),
            _ if claim.is_some() => claim.unwrap_or_default(),
            _ => {
                return Err(Error::InvalidSpec(format!(
                    "volume {:?} is not supported",
                    volume.name
                )));
            }
        };
        let source = match &m.sub_path {
            Some(sub) if !sub.is_empty() => {
                let leaves = || Error::InvalidSpec(format!("subPath {sub:?} leaves the volume"));
                if sub.starts_with('/') || sub.split('/').any(|p| p == "..") {
                    return Err(leaves());
                }
                let s = source.join(sub);
                if projected {
                    // The file of the version current now (it keeps it), which must be
                    // the volume's own.
                    let file = std::fs::canonicalize(&s).map_err(io(&s))?;
                    let volume = std::fs::canonicalize(&source).map_err(io(&source))?;
                    if !file.starts_with(&volume) {
                        return Err(leaves());
                    }
                    file
                } else {
                    std::fs::create_dir_all(&s).map_err(io(&s))?;
                    s
                }
            }
            _ => source,
        };
        let claim_read_only = volume
            .persistent_volume_claim
            .as_ref()
            .and_then(|c| c.read_only)
            .unwrap_or(false);
        mounts.push(BindMount {
            source,
            destination: m.mount_path.clone(),
            readonly: projected || claim_read_only || m.read_only.unwrap_or(false),
        });
    }
    Ok(mounts)
}

//! A pod's volumes: emptyDir under the pod's directory (a tmpfs for `medium: Memory`),
//! hostPath on the host, a claim's at its volume's directory (read by the agent:
//! [`super::inputs`]), ConfigMap, Secret, downwardAPI and projected ones under the
//! pod's directory too ([`super::projected`]); made with the sandbox, bind-mounted
//! where the containers' volumeMounts say. A disk emptyDir's `sizeLimit` is held by
//! eviction ([`over_size_limit`]), as kubelet's eviction manager holds it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Volume};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use rk8s_api::quantity::Quantity;

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::inputs::{ClaimVolume, Read};
use super::{PodRuntime, blocking};
use crate::error::{Error, Result, io};
use crate::spec::BindMount;

/// Makes the directories of `volumes` for the pod with directory `dir`; a memory
/// emptyDir is a tmpfs of at most `memory` bytes ([`memory_ceiling`]) or its
/// `sizeLimit` if smaller.
pub(super) fn create<'a>(
    dir: &Path,
    volumes: impl IntoIterator<Item = &'a Volume>,
    memory: i64,
) -> Result<()> {
    for volume in volumes {
        if let Some(empty_dir) = &volume.empty_dir {
            let path = dir.join("volumes").join(&volume.name);
            std::fs::create_dir_all(&path).map_err(io(&path))?;
            match empty_dir.medium.as_deref() {
                None | Some("") => {}
                Some("Memory") if !is_mount_point(&path)? => {
                    let size = tmpfs_size(memory, empty_dir.size_limit.as_ref());
                    let options = (size > 0).then(|| format!("size={size}"));
                    mount(
                        Some("tmpfs"),
                        &path,
                        Some("tmpfs"),
                        MsFlags::empty(),
                        options.as_deref(),
                    )
                    .map_err(|e| {
                        Error::InvalidSpec(format!("tmpfs for volume {:?}: {e}", volume.name))
                    })?;
                }
                Some("Memory") => {}
                Some(other) => {
                    return Err(Error::InvalidSpec(format!(
                        "volume {:?}: emptyDir medium {other:?} is not supported (only the default and Memory)",
                        volume.name
                    )));
                }
            }
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

/// The most a memory emptyDir of `pod` may hold (kubelet's
/// `calculateEmptyDirMemorySize`): the node's allocatable memory `allocatable`, or the
/// pod's memory limit when every container sets one and it is smaller.
pub(super) fn memory_ceiling(pod: &Pod, allocatable: i64) -> i64 {
    let Some(spec) = pod.spec.as_ref() else {
        return allocatable;
    };
    let mut containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let limited = containers.all(|c| {
        let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
        let limit = limits.and_then(|l| l.get("memory"));
        limit
            .and_then(|q| Quantity::try_from(q).ok())
            .is_some_and(|q| q.signum() > 0)
    });
    if !limited {
        return allocatable;
    }
    let (_, limits) = rk8s_api::quota::usage::pod_requests_and_limits(pod);
    match limits.get("memory").map(Quantity::value) {
        Some(limit) if limit > 0 && limit <= allocatable => limit,
        _ => allocatable,
    }
}

/// The size of a memory emptyDir: its `sizeLimit` when positive and below `ceiling`.
fn tmpfs_size(ceiling: i64, size_limit: Option<&K8sQuantity>) -> i64 {
    let limit = size_limit.and_then(|q| Quantity::try_from(q).ok());
    match limit.map(|q| q.value()) {
        Some(limit) if limit > 0 && limit <= ceiling => limit,
        _ => ceiling,
    }
}

/// kubelet's eviction message for the first disk emptyDir of `spec` whose usage
/// under the pod directory `dir` exceeds its `sizeLimit` (`Usage of EmptyDir volume
/// "NAME" exceeds the limit "LIMIT". `, `pkg/kubelet/eviction/helpers.go`).
pub(super) fn over_size_limit(dir: &Path, spec: &PodSpec) -> Option<String> {
    spec.volumes.iter().flatten().find_map(|volume| {
        let empty_dir = volume.empty_dir.as_ref()?;
        if empty_dir.medium.as_deref().is_some_and(|m| !m.is_empty()) {
            return None;
        }
        let wire = empty_dir.size_limit.as_ref()?;
        let limit = Quantity::try_from(wire).ok()?;
        if limit.signum() <= 0 {
            return None;
        }
        let used = disk_usage(&dir.join("volumes").join(&volume.name));
        (u128::from(used) > u128::try_from(limit.value()).unwrap_or(0)).then(|| {
            format!(
                "Usage of EmptyDir volume {:?} exceeds the limit {:?}. ",
                volume.name,
                limit.canonical()
            )
        })
    })
}

impl PodRuntime {
    /// kubelet's eviction message when a disk emptyDir of pod `uid` holds more than
    /// its `sizeLimit` (None when none does, or the pod is not here).
    pub async fn empty_dir_over_limit(&self, uid: &str) -> Result<Option<String>> {
        let Some(record) = self.record(uid)? else {
            return Ok(None);
        };
        let dir = self.pod_dir(uid);
        let spec = record.pod.spec.unwrap_or_default();
        blocking(move || Ok(over_size_limit(&dir, &spec))).await
    }
}

/// Whether `spec` has a disk emptyDir with a `sizeLimit` (one eviction watches).
pub fn has_sized_empty_dir(spec: &PodSpec) -> bool {
    spec.volumes.iter().flatten().any(|v| {
        v.empty_dir.as_ref().is_some_and(|e| {
            e.size_limit.is_some() && e.medium.as_deref().is_none_or(str::is_empty)
        })
    })
}

/// Most files and directories a usage walk reads: a volume with more is taken as
/// over any limit (a walk that stopped there could be dodged by many empty files).
const WALKED: usize = 1_000_000;

/// The disk space the files under `root` take (`du -x`: blocks, each hard-linked
/// file once, not crossing into other filesystems, symbolic links not followed).
fn disk_usage(root: &Path) -> u64 {
    disk_usage_within(root, WALKED)
}

/// [`disk_usage`], `u64::MAX` past `most` entries. Each directory is opened without
/// following a symbolic link and read only if it is still the one listed (device
/// and inode), through its descriptor: a container that swaps a directory for a
/// link to the host's files while the walk runs does not send it there.
fn disk_usage_within(root: &Path, most: usize) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = std::fs::symlink_metadata(root) else {
        return 0;
    };
    if !top.is_dir() {
        return top.blocks().saturating_mul(512);
    }
    let mut used = top.blocks().saturating_mul(512);
    let mut linked = std::collections::HashSet::new();
    let mut dirs = vec![(root.to_path_buf(), top.ino())];
    let mut walked = 0;
    while let Some((dir, ino)) = dirs.pop() {
        let Some(opened) = open_dir(&dir, top.dev(), ino) else {
            continue;
        };
        let fd = std::os::fd::AsRawFd::as_raw_fd(&opened);
        let Ok(entries) = std::fs::read_dir(format!("/proc/self/fd/{fd}")) else {
            continue;
        };
        for entry in entries.flatten() {
            walked += 1;
            if walked > most {
                return u64::MAX;
            }
            // Of the entry itself (fstatat on the directory's descriptor, no link
            // followed).
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.dev() != top.dev()
                || (meta.nlink() > 1 && !meta.is_dir() && !linked.insert(meta.ino()))
            {
                continue;
            }
            used = used.saturating_add(meta.blocks().saturating_mul(512));
            if meta.is_dir() {
                dirs.push((dir.join(entry.file_name()), meta.ino()));
            }
        }
    }
    used
}

/// Directory `path` opened without following a link, if it is the one of device
/// `dev` and inode `ino`.
fn open_dir(path: &Path, dev: u64, ino: u64) -> Option<std::fs::File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let flags = nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_DIRECTORY;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    (meta.dev() == dev && meta.ino() == ino).then_some(file)
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

/// Unmounts the tmpfs of the pod's volumes under `dir` (Secrets' and memory
/// emptyDirs'), before its files go.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_memory_volume_takes_its_size_limit_else_the_pods_limit_else_the_nodes() {
        const NODE: i64 = 8 << 30;
        let limited = |memory: Option<&str>| {
            let resources = memory.map_or(
                serde_json::json!({}),
                |m| serde_json::json!({"limits": {"memory": m}}),
            );
            pod(serde_json::json!({"spec": {"containers": [
                {"name": "a", "resources": {"limits": {"memory": "32Mi"}}},
                {"name": "b", "resources": resources}
            ]}}))
        };
        // Every container limited: their sum.
        assert_eq!(memory_ceiling(&limited(Some("16Mi")), NODE), 48 << 20);
        // One without a limit: the node's.
        assert_eq!(memory_ceiling(&limited(None), NODE), NODE);
        // A limit above what the node has: the node's.
        assert_eq!(memory_ceiling(&limited(Some("100Gi")), NODE), NODE);
        let q = |s: &str| K8sQuantity(s.to_string());
        assert_eq!(tmpfs_size(48 << 20, Some(&q("16Mi"))), 16 << 20);
        assert_eq!(tmpfs_size(48 << 20, Some(&q("1Gi"))), 48 << 20);
        assert_eq!(tmpfs_size(48 << 20, Some(&q("0"))), 48 << 20);
        assert_eq!(tmpfs_size(48 << 20, None), 48 << 20);
    }

    #[test]
    fn a_disk_volume_over_its_size_limit_says_so_in_kubelets_words() {
        let dir = tempfile::tempdir().unwrap();
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [],
            "volumes": [
                {"name": "memory", "emptyDir": {"medium": "Memory", "sizeLimit": "1Ki"}},
                {"name": "free", "emptyDir": {}},
                {"name": "data", "emptyDir": {"sizeLimit": "64Ki"}}
            ]
        }))
        .unwrap();
        assert!(has_sized_empty_dir(&spec));
        for name in ["memory", "free", "data"] {
            std::fs::create_dir_all(dir.path().join("volumes").join(name)).unwrap();
        }
        let big = vec![7u8; 256 << 10];
        std::fs::write(dir.path().join("volumes/free/big"), &big).unwrap();
        std::fs::write(dir.path().join("volumes/memory/big"), &big).unwrap();
        assert_eq!(over_size_limit(dir.path(), &spec), None);
        let nested = dir.path().join("volumes/data/a/b");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(nested.join("big"), &big).unwrap();
        assert_eq!(
            over_size_limit(dir.path(), &spec).as_deref(),
            Some("Usage of EmptyDir volume \"data\" exceeds the limit \"64Ki\". ")
        );
        let unsized_: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [], "volumes": [{"name": "free", "emptyDir": {}}]
        }))
        .unwrap();
        assert!(!has_sized_empty_dir(&unsized_));
    }

    #[test]
    fn usage_follows_no_link_and_too_many_entries_are_over_any_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (volume, outside) = (dir.path().join("volume"), dir.path().join("outside"));
        std::fs::create_dir_all(volume.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("big"), vec![7u8; 1 << 20]).unwrap();
        std::os::unix::fs::symlink(&outside, volume.join("link")).unwrap();
        let small = disk_usage(&volume);
        assert!(small < 1 << 20, "{small}");
        // A directory swapped for a link after it was listed is not read.
        assert!(open_dir(&volume.join("link"), 0, 0).is_none());
        let sub = std::fs::symlink_metadata(volume.join("sub")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert!(open_dir(&volume.join("sub"), sub.dev(), sub.ino()).is_some());
        assert!(open_dir(&outside, sub.dev(), sub.ino()).is_none());
        for i in 0..20 {
            std::fs::write(volume.join(format!("f{i}")), b"").unwrap();
        }
        assert_eq!(disk_usage_within(&volume, 10), u64::MAX);
        assert!(disk_usage_within(&volume, 100) < 1 << 20);
    }
}

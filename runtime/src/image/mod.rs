//! The image store: content-addressed blobs (`blobs/sha256/<hex>`), each layer unpacked
//! once (`layers/<hex>/`) and shared by every container that uses it, and a table of
//! references (`refs.json`: `docker.io/library/busybox:latest` → manifest digest).
//!
//! An `image:` is one of
//! - a registry reference (`busybox`, `localhost:5000/web:v1`), pulled with oci-client;
//! - a local OCI image layout (a directory with `index.json`), imported;
//! - a local bundle directory with a `rootfs/` (the original rk8s format), used in
//!   place as the read-only bottom of the container's overlay;
//! - [`BUILTIN_PAUSE`], the sandbox image built into the binary.

mod builtin;
pub mod gc;
mod pull;
pub mod pull_secrets;
pub mod registries;
pub mod unpack;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};

pub use builtin::BUILTIN_PAUSE;
pub use pull::{LayerProgress, Progress, PullOptions};
use unpack::{Compression, unpack_layer};

use crate::error::{Error, Result, io};

/// The process an image asks for (its config's Entrypoint, Cmd, Env, WorkingDir, User).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageProcess {
    /// Entrypoint.
    pub entrypoint: Vec<String>,
    /// Cmd (the arguments after the entrypoint).
    pub cmd: Vec<String>,
    /// `KEY=VALUE` pairs.
    pub env: Vec<String>,
    /// Working directory ("" for /).
    pub working_dir: String,
    /// `uid[:gid]` or a name (names are looked up in the rootfs' /etc/passwd).
    pub user: String,
}

/// An image ready to run: its layers (bottom first) and process defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The reference it was found by.
    pub reference: String,
    /// Manifest digest (`sha256:…`), or the bundle path for a bundle directory.
    pub id: String,
    /// Directories to stack, bottom first.
    pub layers: Vec<PathBuf>,
    /// The process defaults.
    pub process: ImageProcess,
    /// The size of its layer blobs, in bytes (0 for a bundle directory).
    pub size: u64,
}

/// How [`ImageStore::ensure_fetched`] came by an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// It was in the store (or is local).
    Present,
    /// It was pulled, taking this long.
    Pulled(std::time::Duration),
}

/// One entry of `rk8sctl image ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSummary {
    /// Reference.
    pub reference: String,
    /// Manifest digest.
    pub digest: String,
    /// Sum of the layer blobs' sizes.
    pub size: u64,
}

/// When to pull (Kubernetes `imagePullPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull every time.
    Always,
    /// Pull when not in the store.
    IfNotPresent,
    /// Never pull: fail when missing.
    Never,
}

impl PullPolicy {
    /// From a pod's `imagePullPolicy`; when unset, Kubernetes' default: Always for
    /// `:latest` or no tag, else IfNotPresent.
    pub fn from_k8s(policy: Option<&str>, image: &str) -> Self {
        match policy {
            Some("Always") => PullPolicy::Always,
            Some("Never") => PullPolicy::Never,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            _ => {
                let name = image.rsplit('/').next().unwrap_or(image);
                if image.contains('@') || (name.contains(':') && !name.ends_with(":latest")) {
                    PullPolicy::IfNotPresent
                } else {
                    PullPolicy::Always
                }
            }
        }
    }
}

/// The image store under a root directory.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

/// The pause image to use when none is configured: `RK8S_PAUSE_IMAGE`, else the
/// built-in one.
pub fn default_pause_image() -> String {
    std::env::var("RK8S_PAUSE_IMAGE")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| BUILTIN_PAUSE.to_string())
}

/// Whether `image` names a local path rather than a registry reference.
pub fn is_local(image: &str) -> bool {
    image.starts_with('/') || image.starts_with("./") || image.starts_with("../") || image == "."
}

/// The full form of a registry reference: `busybox` → `docker.io/library/busybox:latest`.
pub fn normalize(reference: &str) -> String {
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_registry {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if digest.is_none() && !last.contains(':') {
        full.push_str(":latest");
    }
    if let Some(d) = digest {
        full.push('@');
        full.push_str(d);
    }
    full
}

impl ImageStore {
    /// Opens (creating) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for dir in [root.join("blobs/sha256"), root.join("layers")] {
            fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        Ok(Self { root })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of blob `digest` (`sha256:…`).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = digest.strip_prefix("sha256:").ok_or_else(|| Error::Image {
            reference: digest.to_string(),
            message: "only sha256 digests are supported".to_string(),
        })?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Image {
                reference: digest.to_string(),
                message: "malformed digest".to_string(),
            });
        }
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    fn refs(&self) -> Result<BTreeMap<String, String>> {
        let path = self.root.join("refs.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Image {
                reference: path.display().to_string(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn set_ref(&self, reference: &str, digest: Option<&str>) -> Result<()> {
        // One writer at a time, across processes too.
        let lock_path = self.root.join("refs.lock");
        let lock_file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| crate::error::sys(format!("flock {}", lock_path.display()))(e))?;
        let mut refs = self.refs()?;
        match digest {
            Some(d) => refs.insert(reference.to_string(), d.to_string()),
            None => refs.remove(reference),
        };
        let path = self.root.join("refs.json");
        let tmp = self
            .root
            .join(format!("refs.json.{}.tmp", std::process::id()));
        let json = serde_json::to_vec_pretty(&refs).unwrap_or_default();
        fs::write(&tmp, json).map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Stores `bytes` as a blob, checking them against `digest`.
    pub fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.blob_path(digest)?;
        let actual = sha256(bytes);
        if actual != digest {
            return Err(Error::Image {
                reference: digest.to_string(),
                message: format!("content has digest {actual}"),
            });
        }
        if !path.exists() {
            let tmp = unique_tmp(&path);
            fs::write(&tmp, bytes).map_err(io(&tmp))?;
            fs::rename(&tmp, &path).map_err(io(&path))?;
        }
        Ok(path)
    }

    /// Imports the image tagged `tag` (or the only one) from the OCI layout at `layout`
    /// under `reference` (default: the layout's path).
    pub fn import_layout(
        &self,
        layout: &Path,
        tag: Option<&str>,
        reference: Option<&str>,
    ) -> Result<Image> {
        let not_layout = |message: String| Error::Image {
            reference: layout.display().to_string(),
            message,
        };
        let index_path = layout.join("index.json");
        if !index_path.is_file() {
            return Err(not_layout(format!(
                "not an OCI image layout: {} does not exist",
                index_path.display()
            )));
        }
        let index = ImageIndex::from_file(&index_path)
            .map_err(|e| not_layout(format!("{}: {e}", index_path.display())))?;
        let manifests = index.manifests();
        let chosen = match tag {
            Some(tag) => manifests.iter().find(|m| {
                m.annotations()
                    .as_ref()
                    .and_then(|a| a.get("org.opencontainers.image.ref.name"))
                    .is_some_and(|name| name == tag)
            }),
            None if manifests.len() == 1 => manifests.first(),
            None => manifests.iter().find(|m| {
                m.annotations()
                    .as_ref()
                    .and_then(|a| a.get("org.opencontainers.image.ref.name"))
                    .is_some_and(|name| name == "latest")
            }),
        }
        .ok_or_else(|| {
            not_layout(format!(
                "no image tagged {:?} in index.json",
                tag.unwrap_or("latest")
            ))
        })?;
        let digest = chosen.digest().to_string();
        let read_blob = |digest: &str| -> Result<Vec<u8>> {
            let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
            let path = layout.join("blobs/sha256").join(hex);
            fs::read(&path).map_err(io(&path))
        };
        let manifest_bytes = read_blob(&digest)?;
        self.put_blob(&digest, &manifest_bytes)?;
        let manifest = ImageManifest::from_reader(&manifest_bytes[..])
            .map_err(|e| not_layout(format!("manifest {digest}: {e}")))?;
        let config_digest = manifest.config().digest().to_string();
        self.put_blob(&config_digest, &read_blob(&config_digest)?)?;
        for layer in manifest.layers() {
            let d = layer.digest().to_string();
            if !self.blob_path(&d)?.exists() {
                let src = layout
                    .join("blobs/sha256")
                    .join(d.trim_start_matches("sha256:"));
                let dst = self.blob_path(&d)?;
                let tmp = unique_tmp(&dst);
                fs::copy(&src, &tmp).map_err(io(&src))?;
                let got = sha256_file(&tmp)?;
                if got != d {
                    let _ = fs::remove_file(&tmp);
                    return Err(not_layout(format!("layer {d} has digest {got}")));
                }
                fs::rename(&tmp, &dst).map_err(io(&dst))?;
            }
        }
        let reference = reference
            .map(str::to_string)
            .unwrap_or_else(|| layout.display().to_string());
        self.set_ref(&reference, Some(&digest))?;
        self.image(&reference, &digest)
    }

    /// The image stored under `reference`, with its layers unpacked.
    pub fn get(&self, reference: &str) -> Result<Option<Image>> {
        match self.refs()?.get(reference) {
            Some(digest) => self.image(reference, digest).map(Some),
            None => Ok(None),
        }
    }

    fn image(&self, reference: &str, digest: &str) -> Result<Image> {
        let broken = |message: String| Error::Image {
            reference: reference.to_string(),
            message,
        };
        // Its last use, for garbage collection ([`gc`]).
        let _ = fs::File::options()
            .write(true)
            .open(self.blob_path(digest)?)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        let manifest = ImageManifest::from_file(self.blob_path(digest)?)
            .map_err(|e| broken(format!("manifest: {e}")))?;
        let config =
            ImageConfiguration::from_file(self.blob_path(manifest.config().digest().as_ref())?)
                .map_err(|e| broken(format!("config: {e}")))?;
        let mut layers = Vec::new();
        for layer in manifest.layers() {
            let d = layer.digest().to_string();
            let dir = self
                .root
                .join("layers")
                .join(d.trim_start_matches("sha256:"));
            if !dir.exists() {
                let compression = Compression::from_media_type(layer.media_type().as_ref())?;
                unpack_layer(&self.blob_path(&d)?, compression, &dir)?;
            }
            layers.push(dir);
        }
        let process = config
            .config()
            .as_ref()
            .map(|c| ImageProcess {
                entrypoint: c.entrypoint().clone().unwrap_or_default(),
                cmd: c.cmd().clone().unwrap_or_default(),
                env: c.env().clone().unwrap_or_default(),
                working_dir: c.working_dir().clone().unwrap_or_default(),
                user: c.user().clone().unwrap_or_default(),
            })
            .unwrap_or_default();
        let size = manifest.layers().iter().map(|l| l.size()).sum();
        Ok(Image {
            reference: reference.to_string(),
            id: digest.to_string(),
            layers,
            process,
            size,
        })
    }

    /// A local image: an OCI layout (imported under its path) or a bundle directory
    /// (used in place).
    pub fn local(&self, path: &str) -> Result<Image> {
        let dir = fs::canonicalize(path).map_err(|e| Error::Image {
            reference: path.to_string(),
            message: format!("no such directory: {e}"),
        })?;
        if dir.join("index.json").exists() {
            let reference = dir.display().to_string();
            if let Some(image) = self.get(&reference)? {
                // Re-import when the layout changed since.
                let index_digest = self.refs()?.get(&reference).cloned().unwrap_or_default();
                let fresh = ImageIndex::from_file(dir.join("index.json"))
                    .ok()
                    .is_some_and(|i| {
                        i.manifests()
                            .iter()
                            .any(|m| m.digest().to_string() == index_digest)
                    });
                if fresh {
                    return Ok(image);
                }
            }
            return self.import_layout(&dir, None, Some(&reference));
        }
        let rootfs = dir.join("rootfs");
        if rootfs.is_dir() {
            return Ok(Image {
                reference: path.to_string(),
                id: dir.display().to_string(),
                layers: vec![rootfs],
                process: bundle_process(&dir.join("config.json")),
                size: 0,
            });
        }
        Err(Error::Image {
            reference: path.to_string(),
            message: format!(
                "{} is neither an OCI image layout (index.json) nor a bundle (rootfs/)",
                dir.display()
            ),
        })
    }

    /// Finds or fetches `image` as `policy` says. Local paths are always read in place.
    pub async fn ensure(
        &self,
        image: &str,
        policy: PullPolicy,
        options: &PullOptions,
    ) -> Result<Image> {
        let fetched = self.ensure_fetched(image, policy, options, || Ok(())).await;
        fetched.map(|(image, _)| image)
    }

    /// [`ImageStore::ensure`], saying how the image was come by; `pulling` is called
    /// just before a pull starts, and its error (a pull back-off) is returned instead.
    pub async fn ensure_fetched(
        &self,
        image: &str,
        policy: PullPolicy,
        options: &PullOptions,
        pulling: impl FnOnce() -> Result<()>,
    ) -> Result<(Image, Fetched)> {
        if is_local(image) {
            let store = self.clone();
            let image = image.to_string();
            let found = blocking(move || store.local(&image)).await?;
            return Ok((found, Fetched::Present));
        }
        let reference = normalize(image);
        if reference == BUILTIN_PAUSE {
            let store = self.clone();
            let found = blocking(move || store.builtin_pause()).await?;
            return Ok((found, Fetched::Present));
        }
        if policy != PullPolicy::Always {
            let store = self.clone();
            let r = reference.clone();
            if let Some(found) = blocking(move || store.get(&r)).await? {
                return Ok((found, Fetched::Present));
            }
            if policy == PullPolicy::Never {
                return Err(Error::ImageNeverPull {
                    image: image.to_string(),
                });
            }
        }
        pulling()?;
        let began = std::time::Instant::now();
        let digest = pull::pull(self, &reference, options).await?;
        let store = self.clone();
        let found = blocking(move || store.image(&reference, &digest)).await?;
        Ok((found, Fetched::Pulled(began.elapsed())))
    }

    /// Every stored image.
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let mut out = Vec::new();
        for (reference, digest) in self.refs()? {
            let size = ImageManifest::from_file(self.blob_path(&digest)?)
                .map(|m| m.layers().iter().map(|l| l.size()).sum())
                .unwrap_or(0);
            out.push(ImageSummary {
                reference,
                digest,
                size,
            });
        }
        Ok(out)
    }

    /// Removes `reference` and every blob and layer no other image uses.
    pub fn remove(&self, reference: &str) -> Result<()> {
        let key = if is_local(reference) {
            fs::canonicalize(reference)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| reference.to_string())
        } else {
            normalize(reference)
        };
        let refs = self.refs()?;
        let key = if refs.contains_key(&key) {
            key
        } else {
            reference.to_string()
        };
        if !refs.contains_key(&key) {
            return Err(Error::Image {
                reference: reference.to_string(),
                message: "no such image in the store".to_string(),
            });
        }
        self.set_ref(&key, None)?;
        self.gc()
    }

    /// Deletes blobs and unpacked layers that no reference reaches.
    pub fn gc(&self) -> Result<()> {
        self.sweep(&std::collections::BTreeSet::new(), None)
    }

    /// [`ImageStore::gc`], keeping besides what the images of the manifest digests
    /// `also` hold (those running containers were made from, whatever their tags name
    /// now) and, with `younger`, every file changed more recently than that (a pull
    /// under way writes its layers before its reference).
    pub(crate) fn sweep(
        &self,
        also: &std::collections::BTreeSet<String>,
        younger: Option<std::time::Duration>,
    ) -> Result<()> {
        let mut keep = std::collections::BTreeSet::new();
        let refs = self.refs()?;
        for digest in refs.values().chain(also.iter()) {
            keep.insert(digest.trim_start_matches("sha256:").to_string());
            if let Ok(m) = ImageManifest::from_file(self.blob_path(digest)?) {
                keep.insert(
                    m.config()
                        .digest()
                        .to_string()
                        .trim_start_matches("sha256:")
                        .to_string(),
                );
                for l in m.layers() {
                    keep.insert(
                        l.digest()
                            .to_string()
                            .trim_start_matches("sha256:")
                            .to_string(),
                    );
                }
            }
        }
        for dir in ["blobs/sha256", "layers"] {
            let dir = self.root.join(dir);
            for entry in fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                // Files being written by a concurrent pull or unpack are not garbage.
                let in_progress = name.ends_with(".tmp") || name.contains(".unpacking-");
                let fresh = younger.is_some_and(|age| {
                    let changed = entry.metadata().and_then(|m| m.modified());
                    changed.is_ok_and(|t| t.elapsed().unwrap_or_default() < age)
                });
                if !keep.contains(&name) && !in_progress && !fresh {
                    let path = entry.path();
                    let removed = if path.is_dir() {
                        fs::remove_dir_all(&path)
                    } else {
                        fs::remove_file(&path)
                    };
                    removed.map_err(io(&path))?;
                }
            }
        }
        Ok(())
    }
}

/// The process of a bundle's config.json (original rk8s bundles carry one).
fn bundle_process(config: &Path) -> ImageProcess {
    let Ok(bytes) = fs::read(config) else {
        return ImageProcess::default();
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return ImageProcess::default();
    };
    let strings = |pointer: &str| -> Vec<String> {
        value
            .pointer(pointer)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    ImageProcess {
        entrypoint: Vec::new(),
        cmd: strings("/process/args"),
        env: strings("/process/env"),
        working_dir: value
            .pointer("/process/cwd")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string(),
        user: String::new(),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::InvalidSpec(format!("image task failed: {e}")))?
}

/// A temporary name next to `path` that no concurrent writer shares.
pub(crate) fn unique_tmp(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    PathBuf::from(format!("{}.{}-{n}.tmp", path.display(), std::process::id()))
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    format!("sha256:{}", hex(digest.as_ref()))
}

fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut file = fs::File::open(path).map_err(io(path))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer).map_err(io(path))?;
        if n == 0 {
            break;
        }
        ctx.update(&buffer[..n]);
    }
    Ok(format!("sha256:{}", hex(ctx.finish().as_ref())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_normalized_like_docker_does() {
        assert_eq!(normalize("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalize("user/app:1"), "docker.io/user/app:1");
        assert_eq!(normalize("localhost:5000/web"), "localhost:5000/web:latest");
        assert_eq!(normalize("127.0.0.1:5000/a/b:v2"), "127.0.0.1:5000/a/b:v2");
        assert_eq!(
            normalize("quay.io/x/y@sha256:abc"),
            "quay.io/x/y@sha256:abc"
        );
        assert!(is_local("./bundles/busybox") && is_local("/x") && !is_local("busybox"));
    }

    #[test]
    fn pull_policy_defaults_follow_kubernetes() {
        assert_eq!(PullPolicy::from_k8s(None, "busybox"), PullPolicy::Always);
        assert_eq!(
            PullPolicy::from_k8s(None, "busybox:latest"),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::from_k8s(None, "busybox:1.36"),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            PullPolicy::from_k8s(None, "localhost:5000/b"),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::from_k8s(Some("Never"), "b:1"),
            PullPolicy::Never
        );
    }

    #[test]
    fn a_missing_image_names_what_was_tried() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("store")).unwrap();
        let err = store
            .local("/nonexistent/bundles/web")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/bundles/web"), "{err}");
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let err = store
            .local(&empty.display().to_string())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("neither an OCI image layout") && err.contains("rootfs"),
            "{err}"
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = runtime
            .block_on(store.ensure("busybox:1.36", PullPolicy::Never, &PullOptions::default()))
            .unwrap_err()
            .to_string();
        // kubelet's ErrImageNeverPull message, with the image as the pod names it.
        assert_eq!(
            err,
            "Container image \"busybox:1.36\" is not present with pull policy of Never"
        );
    }

    #[test]
    fn blobs_are_checked_against_their_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let digest = sha256(b"hello");
        store.put_blob(&digest, b"hello").unwrap();
        assert!(store.put_blob(&digest, b"other").is_err());
        assert!(store.blob_path("sha256:../../etc").is_err());
        assert!(store.blob_path("md5:00").is_err());
    }
}

//! The built-in pause image, [`BUILTIN_PAUSE`]: the static `pause` program the build
//! compiles from `runtime/pause.c` and embeds in the binary, stored as an ordinary
//! one-layer OCI image (an uncompressed tar holding `/pause`) the first time a sandbox
//! needs it. A fresh host runs pods with no image files laid out beforehand, and an
//! upgraded binary replaces the stored image with its own.

use std::sync::OnceLock;

use serde_json::json;

use super::{Image, ImageStore, sha256};
use crate::error::{Error, Result};

/// The reference of the built-in pause image (`.internal` is reserved for private use:
/// no registry serves it).
pub const BUILTIN_PAUSE: &str = "rk8s.internal/pause:builtin";

static PAUSE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));

const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// The image's three blobs, each with its digest.
struct Blobs {
    layer: (String, Vec<u8>),
    config: (String, Vec<u8>),
    manifest: (String, Vec<u8>),
}

fn with_digest(bytes: Vec<u8>) -> (String, Vec<u8>) {
    (sha256(&bytes), bytes)
}

/// The blobs, made once per process. They are the same for the same binary: the tar
/// entry's metadata is fixed, and JSON objects are written with sorted keys.
fn blobs() -> Result<&'static Blobs> {
    static BLOBS: OnceLock<std::result::Result<Blobs, String>> = OnceLock::new();
    BLOBS
        .get_or_init(|| make_blobs().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|message| Error::Image {
            reference: BUILTIN_PAUSE.to_string(),
            message: message.clone(),
        })
}

fn make_blobs() -> std::io::Result<Blobs> {
    let mut header = tar::Header::new_ustar();
    header.set_size(PAUSE.len() as u64);
    header.set_mode(0o755);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_data(&mut header, "pause", PAUSE)?;
    let layer = with_digest(tar.into_inner()?);
    let config = with_digest(serde_json::to_vec(&json!({
        "architecture": go_arch(),
        "os": "linux",
        "config": {"Entrypoint": ["/pause"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.0]},
    }))?);
    let manifest = with_digest(serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": config.0, "size": config.1.len()},
        "layers": [{"mediaType": LAYER_TYPE, "digest": layer.0, "size": layer.1.len()}],
    }))?);
    Ok(Blobs {
        layer,
        config,
        manifest,
    })
}

/// The OCI (Go) name of the architecture this binary was built for.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

impl ImageStore {
    /// The built-in pause image, stored (or replaced by this binary's) on first use.
    pub fn builtin_pause(&self) -> Result<Image> {
        let blobs = blobs()?;
        let digest = &blobs.manifest.0;
        if self.refs()?.get(BUILTIN_PAUSE) != Some(digest) {
            for (d, bytes) in [&blobs.layer, &blobs.config, &blobs.manifest] {
                self.put_blob(d, bytes)?;
            }
            self.set_ref(BUILTIN_PAUSE, Some(digest))?;
        }
        self.image(BUILTIN_PAUSE, digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_pause_is_stored_once_and_unpacks_to_an_executable() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let image = store.builtin_pause().unwrap();
        assert_eq!(image.reference, BUILTIN_PAUSE);
        assert_eq!(image.process.entrypoint, ["/pause"]);
        assert_eq!(image.layers.len(), 1);
        let pause = image.layers[0].join("pause");
        let meta = std::fs::metadata(&pause).unwrap();
        assert_eq!(meta.len(), PAUSE.len() as u64);
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o755
        );
        // The program itself: it answers -v without needing anything from the host.
        let out = std::process::Command::new(&pause)
            .arg("-v")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "rk8s pause 1\n");
        // Stored again: the same image; listed under its reference.
        assert_eq!(store.builtin_pause().unwrap(), image);
        let listed = store.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].reference, BUILTIN_PAUSE);
        assert_eq!(listed[0].digest, image.id);
    }

    #[test]
    fn a_stale_builtin_reference_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let digest = sha256(b"an older build");
        store.set_ref(BUILTIN_PAUSE, Some(&digest)).unwrap();
        let image = store.builtin_pause().unwrap();
        assert_ne!(image.id, digest);
        assert_eq!(store.get(BUILTIN_PAUSE).unwrap(), Some(image));
    }
}

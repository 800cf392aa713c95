//! Unpacking a layer tarball into a directory that overlayfs can stack: whiteout files
//! (`.wh.NAME`) become 0:0 character devices and opaque markers (`.wh..wh..opq`) the
//! `trusted.overlay.opaque` attribute, as overlayfs expects them.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{Mode, SFlag, makedev, mknod};

use crate::error::{Error, Result, io, sys};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd (`application/vnd.oci.image.layer.v1.tar+zstd`).
    Zstd,
}

impl Compression {
    /// From an OCI or Docker layer media type.
    pub fn from_media_type(media_type: &str) -> Result<Self> {
        if media_type.ends_with("tar+gzip") || media_type.ends_with("tar.gzip") {
            Ok(Compression::Gzip)
        } else if media_type.ends_with("tar+zstd") {
            Ok(Compression::Zstd)
        } else if media_type.ends_with(".tar") || media_type.ends_with("layer.v1.tar") {
            Ok(Compression::None)
        } else {
            Err(Error::Image {
                reference: media_type.to_string(),
                message: "unsupported layer media type (plain tar, gzip and zstd are)".to_string(),
            })
        }
    }
}

/// Unpacks the layer `blob` into `target` (created; must not exist). Unpacks into a
/// temporary sibling first, so a crash never leaves a half-unpacked layer in place.
pub fn unpack_layer(blob: &Path, compression: Compression, target: &Path) -> Result<()> {
    // Unique per call: two pods may unpack the same layer at once; the first rename
    // wins and the other copy is dropped.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = PathBuf::from(format!(
        "{}.unpacking-{}-{n}",
        target.display(),
        std::process::id()
    ));
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let file = File::open(blob).map_err(io(blob))?;
    let reader: Box<dyn Read> = match compression {
        Compression::None => Box::new(BufReader::new(file)),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(BufReader::new(file))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(file).map_err(io(blob))?),
    };
    if let Err(e) = unpack_into(reader, &tmp, blob) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match std::fs::rename(&tmp, target) {
        Ok(()) => Ok(()),
        Err(_) if target.is_dir() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(io(target)(e))
        }
    }
}

fn unpack_into(reader: impl Read, dir: &Path, blob: &Path) -> Result<()> {
    let broken = |message: String| Error::Image {
        reference: blob.display().to_string(),
        message,
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    let entries = archive.entries().map_err(|e| broken(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| broken(e.to_string()))?;
        let path = entry
            .path()
            .map_err(|e| broken(e.to_string()))?
            .into_owned();
        if path.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(broken(format!("{} leaves the layer", path.display())));
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let parent = dir.join(path.parent().unwrap_or(Path::new("")));
        match name.as_deref() {
            Some(OPAQUE) => {
                std::fs::create_dir_all(&parent).map_err(io(&parent))?;
                xattr::set(&parent, "trusted.overlay.opaque", b"y").map_err(io(&parent))?;
            }
            Some(n) if n.starts_with(WHITEOUT_PREFIX) => {
                std::fs::create_dir_all(&parent).map_err(io(&parent))?;
                let hidden = parent.join(&n[WHITEOUT_PREFIX.len()..]);
                let _ = std::fs::remove_file(&hidden);
                mknod(&hidden, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                    .map_err(sys(format!("mknod {}", hidden.display())))?;
            }
            _ => {
                entry.unpack_in(dir).map_err(|e| {
                    // tar's message names the file; the cause is in the source.
                    let cause = std::error::Error::source(&e)
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default();
                    broken(format!("{e}{cause}"))
                })?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    fn layer(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            header.set_cksum();
            builder.append_data(&mut header, path, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn whiteouts_become_what_overlayfs_expects() {
        // A root test, like the integration tests: it fails rather than passing
        // silently when it cannot check anything.
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root: mknod of a whiteout and trusted.* attributes"
        );
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("layer.tar");
        std::fs::write(
            &blob,
            layer(&[
                ("etc/motd", b"hi"),
                ("etc/.wh.passwd", b""),
                ("var/cache/.wh..wh..opq", b""),
            ]),
        )
        .unwrap();
        let target = dir.path().join("unpacked");
        unpack_layer(&blob, Compression::None, &target).unwrap();
        assert_eq!(std::fs::read(target.join("etc/motd")).unwrap(), b"hi");
        let whiteout = std::fs::symlink_metadata(target.join("etc/passwd")).unwrap();
        assert!(whiteout.file_type().is_char_device());
        assert!(!target.join("etc/.wh.passwd").exists());
        assert_eq!(
            xattr::get(target.join("var/cache"), "trusted.overlay.opaque")
                .unwrap()
                .as_deref(),
            Some(&b"y"[..])
        );
        // A path that climbs out of the layer is refused and nothing is left behind.
        let evil = dir.path().join("evil.tar");
        let mut data = layer(&[("ok", b"1")]);
        // Rewrite the name in the header: tar::Builder refuses to write "..".
        data[..5].copy_from_slice(b"../x\0");
        let mut header = tar::Header::from_byte_slice(&data[..512]).clone();
        header.set_cksum();
        data[..512].copy_from_slice(header.as_bytes());
        std::fs::write(&evil, &data).unwrap();
        let err = unpack_layer(&evil, Compression::None, &dir.path().join("evil")).unwrap_err();
        assert!(err.to_string().contains("leaves the layer"), "{err}");
        assert!(!dir.path().join("evil").exists() && !dir.path().join("x").exists());
    }

    #[test]
    fn media_types_name_their_compression() {
        assert_eq!(
            Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+gzip").unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            Compression::from_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip")
                .unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            Compression::from_media_type("application/vnd.oci.image.layer.v1.tar").unwrap(),
            Compression::None
        );
        assert_eq!(
            Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+zstd").unwrap(),
            Compression::Zstd
        );
        assert!(
            Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+bzip2").is_err()
        );
    }

    #[test]
    fn zstd_layers_unpack() {
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("layer.tar.zst");
        let tar = layer(&[("etc/motd", b"compressed with zstd")]);
        std::fs::write(&blob, zstd::stream::encode_all(&tar[..], 3).unwrap()).unwrap();
        let target = dir.path().join("unpacked");
        unpack_layer(&blob, Compression::Zstd, &target).unwrap();
        assert_eq!(
            std::fs::read(target.join("etc/motd")).unwrap(),
            b"compressed with zstd"
        );
    }
}

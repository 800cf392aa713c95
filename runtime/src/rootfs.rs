//! Each container's root filesystem: an overlayfs of its image's layers (read-only,
//! shared) with a writable upper directory of its own, so no container ever writes
//! into a layer or a bundle another container uses.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::error::{Error, Result, io, sys};

/// The directories of one container's rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    /// The mount point (the bundle's `rootfs`).
    pub target: PathBuf,
    /// The container's writable layer.
    pub upper: PathBuf,
    /// overlayfs' work directory (same filesystem as `upper`).
    pub work: PathBuf,
}

impl Rootfs {
    /// The rootfs layout inside a bundle directory.
    pub fn in_bundle(bundle: &Path) -> Self {
        Self {
            target: bundle.join("rootfs"),
            upper: bundle.join("upper"),
            work: bundle.join("work"),
        }
    }

    /// Mounts `layers` (bottom first) with the upper directory on top. Mounting an
    /// already mounted rootfs does nothing.
    pub fn mount(&self, layers: &[PathBuf]) -> Result<()> {
        if layers.is_empty() {
            return Err(Error::InvalidSpec(
                "an image without layers has no rootfs".to_string(),
            ));
        }
        if self.is_mounted() {
            return Ok(());
        }
        for dir in [&self.target, &self.upper, &self.work] {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        // overlayfs lists lower directories top first.
        let lower: Vec<String> = layers.iter().rev().map(|l| escape(l)).collect();
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            escape(&self.upper),
            escape(&self.work)
        );
        if options.len() >= 4096 {
            return Err(Error::InvalidSpec(format!(
                "{} layers make overlay mount options longer than a page",
                layers.len()
            )));
        }
        mount(
            Some("overlay"),
            &self.target,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(sys(format!("mount overlay on {}", self.target.display())))
    }

    /// Whether the target is a mount point.
    pub fn is_mounted(&self) -> bool {
        is_mount_point(&self.target)
    }

    /// Unmounts (lazily, so a process still holding a file does not block it).
    pub fn unmount(&self) -> Result<()> {
        if !self.is_mounted() {
            return Ok(());
        }
        umount2(&self.target, MntFlags::MNT_DETACH)
            .map_err(sys(format!("umount {}", self.target.display())))
    }
}

/// overlayfs separates options with `,` and lower directories with `:`.
fn escape(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace(',', "\\,")
}

/// Whether `path` is a mount point (listed in /proc/self/mountinfo).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(canonical) = std::fs::canonicalize(path) else {
        return false;
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = canonical.display().to_string();
    info.lines().any(|line| {
        line.split(' ')
            .nth(4)
            .map(unescape_mountinfo)
            .is_some_and(|p| p == wanted)
    })
}

fn unescape_mountinfo(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_are_escaped() {
        assert_eq!(escape(Path::new("/a:b,c")), "/a\\:b\\,c");
        assert!(is_mount_point(Path::new("/")));
        assert!(!is_mount_point(Path::new("/nonexistent/x")));
    }
}

//! The OCI image layouts `images/build.sh` makes (busybox and pause), built once per
//! test process, for tests and benchmarks that run real containers.

// Each test file uses part of this harness.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The directory of the layouts (`target/images`), built on first use.
pub fn images() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/images");
    static BUILT: Mutex<bool> = Mutex::new(false);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !*built {
        let status = std::process::Command::new(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("images/build.sh"),
        )
        .arg(&dir)
        .status()
        .expect("run images/build.sh");
        assert!(status.success(), "images/build.sh failed");
        *built = true;
    }
    dir
}

/// The busybox layout, as an image reference (its path).
pub fn busybox() -> String {
    images().join("busybox").display().to_string()
}

/// The pause layout, as an image reference (its path).
pub fn pause() -> String {
    images().join("pause").display().to_string()
}

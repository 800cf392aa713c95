//! The images tests and benchmarks run in real containers: the busybox layout
//! `images/build.sh` makes (built once per test process) and the pause built into the
//! runtime.

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

/// The built-in pause image's reference.
pub fn pause() -> String {
    rk8s_runtime::image::BUILTIN_PAUSE.to_string()
}

/// The kubectl layout (busybox and Debian's static kubectl: an in-cluster client), as
/// an image reference.
pub fn kubectl() -> String {
    let layout = images().join("kubectl");
    assert!(
        layout.join("index.json").exists(),
        "no kubectl image: images/build.sh makes it where kubectl is installed (scripts/setup.sh installs it)"
    );
    layout.display().to_string()
}

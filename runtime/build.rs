//! Builds `pause.c` into a static executable that the runtime embeds as its built-in
//! sandbox image (`image::BUILTIN_PAUSE`), so that a node runs pods with nothing on the
//! host but its own binary and the images it pulls.

use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let source = "pause.c";
    println!("cargo::rerun-if-changed={source}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("cargo sets OUT_DIR")?).join("pause");
    // The C compiler cargo's `cc` crate finds for the target (CC, CC_<target>, cc).
    let mut compile = cc::Build::new()
        .cargo_metadata(false)
        .get_compiler()
        .to_command();
    compile
        .args(["-static", "-Os", "-s", "-o"])
        .arg(&out)
        .arg(source);
    let status = compile
        .status()
        .map_err(|e| format!("running the C compiler ({compile:?}): {e}"))?;
    if !status.success() {
        return Err(format!(
            "{compile:?} failed ({status}): the static pause needs a C compiler and the \
             C library's static archive (Debian: build-essential, libc6-dev)"
        )
        .into());
    }
    Ok(())
}

//! `rk8sctl` and `kubectl` run as a user runs them: one way to start each, to feed
//! its standard input and to read what it printed, for every test that drives them.

// Each test file uses part of this harness.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Debug;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// This build's `rk8sctl`, started in the repository (so `examples/…` paths work).
pub fn rk8sctl_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rk8sctl"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

/// `kubectl --kubeconfig KUBECONFIG` (scripts/setup.sh installs kubectl).
pub fn kubectl_command(kubeconfig: &Path) -> Command {
    let mut command = Command::new("kubectl");
    command.arg("--kubeconfig").arg(kubeconfig);
    command
}

/// Runs `command` to its end with `stdin` as its standard input (closed after it, or
/// at once without it); its status and what it printed.
pub fn output(command: &mut Command, stdin: Option<&str>) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to start {:?}: {e}", command.get_program()));
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// `rk8sctl ARGS`, with `stdin` as its standard input; its status and what it printed.
pub fn rk8sctl(args: &[&str], stdin: Option<&str>) -> Output {
    output(rk8sctl_command().args(args), stdin)
}

/// The standard output of `out`, which must have succeeded: else the test fails with
/// `what` (the command or its arguments) and everything it printed.
pub fn success(what: impl Debug, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `tests/python/SCRIPT` with the PyPI client and `args`; fails the test when it
/// fails, with what it printed.
pub fn run_python(script: &str, args: &[&std::path::Path]) {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/target/python/bin/python");
    assert!(
        std::path::Path::new(python).exists(),
        "{python} is missing: run scripts/setup.sh"
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let out = output(Command::new(python).arg(path).args(args), None);
    assert!(
        out.status.success(),
        "the Python client failed ({script}):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

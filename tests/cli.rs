//! `rk8sctl` as a user runs it: exit codes, messages on standard error, standard input.

// Test helpers may panic: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn rk8sctl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rk8sctl"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("failed to start rk8sctl");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

#[test]
fn validate_accepts_every_example() {
    let out = rk8sctl(&["validate", "-f", "examples"], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("examples/deployment.yaml: deployment/web is valid"),
        "{stdout}"
    );
    assert!(
        stdout.contains("compose app with 2 services is valid"),
        "{stdout}"
    );
    assert!(
        stdout.contains("container single-container-test is valid"),
        "{stdout}"
    );
}

#[test]
fn validate_lists_every_error_and_exits_1() {
    let out = rk8sctl(
        &[
            "validate",
            "-f",
            "api/tests/fixtures/invalid/pod-errors.yaml",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected =
        std::fs::read_to_string("api/tests/fixtures/invalid/pod-errors.expected").unwrap();
    for line in expected.lines() {
        assert!(
            stderr.contains(&format!("api/tests/fixtures/invalid/{line}")),
            "missing {line}\n{stderr}"
        );
    }
    assert!(stderr.ends_with("12 errors in 1 file\n"), "{stderr}");
}

#[test]
fn validate_reads_standard_input_and_prints_defaulted_objects() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: busybox}]}\n";
    let out = rk8sctl(&["validate", "-f", "-", "-o", "json"], Some(pod));
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["spec"]["containers"][0]["imagePullPolicy"], "Always");
    assert_eq!(v["metadata"]["namespace"], "default");

    let out = rk8sctl(&["validate", "-f", "-"], Some("kind: Pod\nmetadata: [\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("<stdin>:"));
}

#[test]
fn a_missing_file_is_named() {
    let out = rk8sctl(&["validate", "-f", "no/such.yaml"], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: failed to read no/such.yaml: "),
        "{stderr}"
    );
}

#[test]
fn image_import_ls_and_rm_round_trip_through_the_local_store() {
    let images = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/images");
    let built =
        Command::new(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("images/build.sh"))
            .arg(&images)
            .output()
            .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let root = tempfile::tempdir().unwrap();
    let root_arg = root.path().display().to_string();
    let layout = images.join("busybox").display().to_string();
    let out = rk8sctl(
        &[
            "image",
            "--root",
            &root_arg,
            "import",
            &layout,
            "--name",
            "busybox:local",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("busybox:local sha256:"));
    let ls = rk8sctl(&["image", "--root", &root_arg, "ls"], None);
    let table = String::from_utf8_lossy(&ls.stdout).to_string();
    assert!(
        table.starts_with("REFERENCE") && table.contains("busybox:local"),
        "{table}"
    );
    let rm = rk8sctl(&["image", "--root", &root_arg, "rm", "busybox:local"], None);
    assert!(
        rm.status.success(),
        "{}",
        String::from_utf8_lossy(&rm.stderr)
    );
    let blobs = std::fs::read_dir(root.path().join("images/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0, "every blob of a removed image goes");
    let missing = rk8sctl(
        &[
            "image",
            "--root",
            &root_arg,
            "import",
            "/nonexistent-layout",
        ],
        None,
    );
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("/nonexistent-layout") && err.contains("index.json"),
        "{err}"
    );
}

//! `rk8sctl` as a user runs it: exit codes, messages on standard error, standard input.

// Test helpers may panic: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::cli::{rk8sctl, success};
use support::images::busybox;

#[test]
fn validate_accepts_every_example() {
    let stdout = success("validate", rk8sctl(&["validate", "-f", "examples"], None));
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
    let root = tempfile::tempdir().unwrap();
    let root_arg = root.path().display().to_string();
    let layout = busybox();
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
    assert!(success("image import", out).starts_with("busybox:local sha256:"));
    let ls = rk8sctl(&["image", "--root", &root_arg, "ls"], None);
    let table = success("image ls", ls);
    assert!(
        table.starts_with("REFERENCE") && table.contains("busybox:local"),
        "{table}"
    );
    let rm = rk8sctl(&["image", "--root", &root_arg, "rm", "busybox:local"], None);
    success("image rm", rm);
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

//! `docs/cli.md`, the CLI reference, is generated from the binaries' own help (clap):
//! every command and subcommand of `rk8sctl`, `rk8s-server` and `rk8s-node`. This test
//! fails when the file is not what the binaries print; `RK8S_UPDATE_DOCS=1 cargo test
//! --test cli_reference` rewrites it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

/// The long help of `binary path... --help`.
fn help(binary: &str, path: &[String]) -> String {
    let out = Command::new(binary)
        .args(path)
        .arg("--help")
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert!(out.status.success(), "{binary} {path:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands a help text lists under `Commands:` (but `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// One section per command, depth first.
fn document(out: &mut String, name: &str, binary: &str, path: &mut Vec<String>) {
    let text = help(binary, path);
    let title = std::iter::once(name.to_string())
        .chain(path.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let level = "#".repeat((path.len() + 2).min(4));
    out.push_str(&format!(
        "{level} `{title}`\n\n```text\n{}\n```\n\n",
        text.trim_end()
    ));
    for sub in subcommands(&text) {
        path.push(sub);
        document(out, name, binary, path);
        path.pop();
    }
}

#[test]
fn docs_cli_md_is_what_the_binaries_print() {
    let mut doc = String::from(
        "# CLI reference\n\n\
         Generated from the binaries' help by `tests/cli_reference.rs` \
         (`RK8S_UPDATE_DOCS=1 cargo test --test cli_reference` rewrites it); the test fails \
         when it is out of date. Configuration: every flag below; the files they name are \
         Kubernetes' formats (manifests, kubeconfig, `KubeSchedulerConfiguration`), the \
         original rk8s single-container format and the Compose format.\n\n",
    );
    for (name, binary) in [
        ("rk8sctl", env!("CARGO_BIN_EXE_rk8sctl")),
        ("rk8s-server", env!("CARGO_BIN_EXE_rk8s-server")),
        ("rk8s-node", env!("CARGO_BIN_EXE_rk8s-node")),
    ] {
        document(&mut doc, name, binary, &mut Vec::new());
    }
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cli.md");
    if std::env::var_os("RK8S_UPDATE_DOCS").is_some() {
        std::fs::write(&file, &doc).unwrap();
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        committed == doc,
        "docs/cli.md is out of date: run RK8S_UPDATE_DOCS=1 cargo test --test cli_reference"
    );
}

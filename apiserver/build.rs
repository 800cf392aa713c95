//! Records which commit the API server is built from, for `/version` (`kubectl
//! version`): `RK8S_GIT_COMMIT`, `RK8S_GIT_TREE_STATE` (`clean`, `dirty`, or
//! `archive` outside a Git checkout) and `RK8S_BUILD_DATE` (the commit's time, so that
//! a build is reproducible; `SOURCE_DATE_EPOCH` wins when set, as for Debian builds).

use std::path::Path;
use std::process::Command;

/// What `command` prints, trimmed; empty when it cannot run or fails.
fn run(command: &mut Command) -> String {
    match command.output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => String::new(),
    }
}

fn git(args: &[&str]) -> Option<String> {
    Some(run(Command::new("git").args(args))).filter(|s| !s.is_empty())
}

fn main() {
    // Built again when the checked-out commit changes.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let dir = Path::new(&dir);
        let head = git(&["symbolic-ref", "-q", "HEAD"]);
        // Only files that exist: cargo runs a script again at every build while a file
        // it watches is missing.
        let watched = ["HEAD", "packed-refs"]
            .into_iter()
            .map(|f| dir.join(f))
            .chain(head.map(|h| dir.join(h)))
            .filter(|p| p.exists());
        for file in watched {
            println!("cargo::rerun-if-changed={}", file.display());
        }
    }
    println!("cargo::rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let commit = git(&["rev-parse", "HEAD"]);
    let state = match (
        &commit,
        git(&["status", "--porcelain", "--untracked-files=no"]),
    ) {
        (None, _) => "archive",
        (Some(_), None) => "clean",
        (Some(_), Some(_)) => "dirty",
    };
    let date = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(epoch) => run(Command::new("date").args([
            "-u",
            "-d",
            &format!("@{epoch}"),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])),
        Err(_) => run(Command::new("git").env("TZ", "UTC").args([
            "show",
            "-s",
            "--format=%cd",
            "--date=format-local:%Y-%m-%dT%H:%M:%SZ",
            "HEAD",
        ])),
    };
    println!(
        "cargo::rustc-env=RK8S_GIT_COMMIT={}",
        commit.unwrap_or_default()
    );
    println!("cargo::rustc-env=RK8S_GIT_TREE_STATE={state}");
    println!("cargo::rustc-env=RK8S_BUILD_DATE={date}");
}

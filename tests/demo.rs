//! The README's first command cannot rot: `scripts/demo.sh up --short` (the same
//! narrated steps as `make demo`, shorter waits) runs against this build's binaries,
//! then `scripts/demo.sh down`; afterwards this machine has no namespace, link,
//! nftables table, mount, cgroup, process or file more than before.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// What the demo could leave behind: one line per thing.
fn snapshot() -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut add = |what: &str, program: &str, args: &[&str]| {
        let out = Command::new(program).args(args).output().unwrap();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // Interface indexes and counters change; names do not.
            let name = match what {
                "link" => line
                    .split(": ")
                    .nth(1)
                    .map(|n| n.split('@').next().unwrap_or(n).to_string()),
                // A process by its program: rk8s' own (a build of this tree running
                // beside the test is none of the demo's).
                "process" => line
                    .split_whitespace()
                    .next()
                    .and_then(|program| program.rsplit('/').next())
                    .filter(|program| program.starts_with("rk8s"))
                    .map(|_| line.to_string()),
                _ => Some(line.to_string()),
            };
            if let Some(name) = name.filter(|n| n.contains("rk8s")) {
                seen.insert(format!("{what}: {name}"));
            }
        }
    };
    add("netns", "ip", &["netns", "list"]);
    add("link", "ip", &["-o", "link"]);
    add("nft", "nft", &["list", "tables"]);
    add("mount", "cat", &["/proc/mounts"]);
    add("process", "ps", &["-eo", "args"]);
    for dir in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        if dir.path().join("rk8s").exists() {
            seen.insert(format!("cgroup: {}/rk8s", dir.path().display()));
        }
    }
    seen.retain(|s| !s.contains("demo.rs") && !s.contains("/deps/demo-"));
    seen
}

fn demo(args: &[&str], dir: &Path) -> (bool, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = Path::new(env!("CARGO_BIN_EXE_rk8s-server"))
        .parent()
        .unwrap();
    let out = Command::new("bash")
        .arg(root.join("scripts/demo.sh"))
        .args(args)
        .env("RK8S_BIN_DIR", bin)
        .env("RK8S_DEMO_DIR", dir.join("state"))
        .env("RK8S_DEMO_KUBECONFIG", dir.join("kubeconfig"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs `down` when the test fails half-way.
struct Down<'a>(&'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = demo(&["down"], self.0);
    }
}

#[test]
fn the_demo_runs_and_demo_down_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let before = snapshot();
    // A kubeconfig of another cluster is set aside while the demo runs, then restored.
    let mine = "apiVersion: v1\nkind: Config\nclusters: []\n";
    std::fs::write(dir.path().join("kubeconfig"), mine).unwrap();
    let down = Down(dir.path());
    let (ok, text) = demo(&["up", "--short"], dir.path());
    assert!(ok, "scripts/demo.sh up --short failed:\n{text}");
    for expected in [
        "Ready",
        "hello from web-",
        "hello from greeter-",
        "(blocked by NetworkPolicy db-deny-all)",
        "hello from db-",
        "up:",
        "New size: ",
        "hello from compose",
        "make demo-down",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    // Pods on both nodes.
    assert!(
        text.contains("10.244.0.") && text.contains("10.244.1."),
        "{text}"
    );
    // Running it again, the first cluster still up, replaces it.
    let (ok, text) = demo(&["up", "--short"], dir.path());
    assert!(ok, "the second scripts/demo.sh up --short failed:\n{text}");
    std::mem::forget(down);
    let (ok, text) = demo(&["down"], dir.path());
    assert!(ok, "{text}");
    assert!(!dir.path().join("state").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("kubeconfig")).unwrap(),
        mine
    );
    // Killed processes may take a moment to be reaped.
    let mut left = Vec::new();
    for _ in 0..50 {
        let after = snapshot();
        left = after.difference(&before).cloned().collect();
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(left.is_empty(), "left behind: {left:?}");
}

//! The architecture's floors, held against the code (issue 28; ARCHITECTURE.md's
//! dependency rules): which crates may not link which, no import circle between the
//! modules of a crate, and no source file over 1,000 lines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const CRATES: [&str; 15] = [
    "api",
    "http",
    "raftstore",
    "apiserver",
    "scheduler",
    "controllers",
    "actors",
    "runtime",
    "netoverlay",
    "ctl",
    "supervision",
    "informers",
    "ingress",
    "deviceplugin",
    "events",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace crates `package` links (normal dependencies, transitively).
fn links(package: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(["-p", package])
        .current_dir(root())
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.starts_with("rk8s-") && *name != package)
        .map(str::to_string)
        .collect()
}

#[test]
fn crates_link_only_the_floors_below_them() {
    for (package, forbidden) in [
        // The node agent reaches the control plane over HTTP only.
        ("rk8s-actors", "rk8s-apiserver"),
        // Controllers see state through the API, not the store.
        ("rk8s-controllers", "rk8s-raftstore"),
        // The API server allocates addresses but never programs a network.
        ("rk8s-apiserver", "rk8s-netoverlay"),
        // The object model and the HTTP floor know no store, server or node.
        ("rk8s-api", "rk8s-raftstore"),
        ("rk8s-http", "rk8s-apiserver"),
        ("rk8s-http", "rk8s-raftstore"),
        // The store knows bytes and revisions, not kinds.
        ("rk8s-raftstore", "rk8s-api"),
        // The actor kit knows actors, not the cluster.
        ("rk8s-supervision", "rk8s-api"),
        // The scheduler and the controllers are siblings on the leader: the
        // scheduler links no controller (both write Events through rk8s-events).
        ("rk8s-scheduler", "rk8s-controllers"),
        // The event recorder is a client's floor: the API's types and a kube client
        // (its writes counted in the reconcile that makes them).
        ("rk8s-events", "rk8s-api"),
        // The informers read the cluster through the API, as the controllers do.
        ("rk8s-informers", "rk8s-raftstore"),
        ("rk8s-informers", "rk8s-apiserver"),
        // The runtime knows containers, not networks or the cluster.
        ("rk8s-runtime", "rk8s-netoverlay"),
        // The Ingress proxy is a library of pure tables and a server: the node
        // agent feeds it, not the other way round.
        ("rk8s-ingress", "rk8s-actors"),
        // The device-plugin API is a wire floor: messages and sockets, no cluster.
        ("rk8s-deviceplugin", "rk8s-api"),
        ("rk8s-deviceplugin", "rk8s-runtime"),
    ] {
        let linked = links(package);
        assert!(
            !linked.contains(forbidden),
            "{package} links {forbidden}: {linked:?}"
        );
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's top-level module in its crate (`handlers`, `pod` for `pod/sandbox.rs`);
/// `None` for the crate root.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib" && name != "main").then_some(name)
}

/// The top-level modules `text` names through `crate::` paths.
fn named_modules(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.insert(name);
        } else if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c}`
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for part in group.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        }
    }
    found
}

/// A circle in `edges`, if there is one.
fn circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_an_import_circle_between_its_modules() {
    let mut circles = Vec::new();
    for krate in CRATES {
        let src = root().join(krate).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(&src, f)).collect();
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in &files {
            let Some(from) = top_module(&src, file) else {
                continue;
            };
            // A `tests.rs` is a test module of its own.
            if file.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(file).unwrap();
            // Test modules may reach anywhere, and docs may link anywhere: only the
            // code itself counts.
            let code: String = text
                .split("#[cfg(test)]")
                .next()
                .unwrap_or("")
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            for to in named_modules(&code) {
                if to != from && modules.contains(&to) {
                    edges.entry(from.clone()).or_default().insert(to);
                }
            }
        }
        if let Some(c) = circle(&edges) {
            circles.push(format!("{krate}: {}", c.join(" -> ")));
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn no_source_file_is_over_a_thousand_lines() {
    let mut files = Vec::new();
    for dir in CRATES.iter().map(|c| root().join(c).join("src")) {
        rust_files(&dir, &mut files);
    }
    for dir in ["src", "tests", "benches", "fuzz/fuzz_targets"] {
        rust_files(&root().join(dir), &mut files);
    }
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).unwrap().lines().count();
            (lines > 1000).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "files over 1,000 lines: {long:#?}");
}

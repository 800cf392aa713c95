//! Encryption at rest on a real `rk8s-server` (`--encryption-provider-config`, as
//! kube-apiserver's): a Secret created with kubectl reads back plain, while no file
//! under the data directory (raft log, raft-engine files, snapshots) nor a `snapshot
//! save` file holds its value, plain or base64 — and a ConfigMap, not configured, is
//! found there plain (the search works). A key rotation (new key first, restart,
//! `rk8s-server encryption rewrite`, old key removed) keeps the Secret readable; a
//! Secret stored before encryption was configured is read through `identity` and
//! rewritten encrypted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use support::apiserver::Server;
use support::cli;

/// A value no other test writes: 24 characters, so that its base64 is exact.
fn marker(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let m = format!(
        "{tag}{:020}{:x}",
        nanos % 10u128.pow(20),
        std::process::id()
    );
    m[..24].to_string()
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A key's secret in the file: base64 of 32 bytes of `b`.
fn key(b: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([b; 32])
}

/// An EncryptionConfiguration for Secrets with `providers` (YAML list items).
fn config(providers: &[String]) -> String {
    let mut out = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n".to_string();
    for p in providers {
        out.push_str(&format!("  - {p}\n"));
    }
    out
}

fn aesgcm(name: &str, b: u8) -> String {
    format!("aesgcm: {{keys: [{{name: {name}, secret: {}}}]}}", key(b))
}

const IDENTITY: &str = "identity: {}";

/// The files under `dir` (recursively) whose bytes hold `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() && holds(&entry.path(), needle.as_bytes()) {
                found.push(entry.path());
            }
        }
    }
    found
}

/// Whether the file at `path` holds `needle` (binary-safe).
fn holds(path: &Path, needle: &[u8]) -> bool {
    // A file removed between the listing and the read (a log file recycled) holds
    // nothing any more.
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    let first = needle[0];
    let mut from = 0;
    while let Some(at) = bytes[from..].iter().position(|b| *b == first) {
        let start = from + at;
        if bytes[start..].starts_with(needle) {
            return true;
        }
        from = start + 1;
    }
    false
}

/// Waits for `f` to succeed, up to a minute.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the server answers kubectl again (after a restart).
fn ready(server: &Server) {
    eventually("the server answers after its restart", || {
        server.kubectl(&["get", "--raw", "/readyz"]).0.then_some(())
    });
}

/// The `password` of Secret `name`, read with kubectl and decoded.
fn password(server: &Server, name: &str) -> Result<String, String> {
    let (ok, out) = server.kubectl(&["get", "secret", name, "-o", "jsonpath={.data.password}"]);
    if !ok {
        return Err(out);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(out.trim())
        .map_err(|e| format!("{e}: {out}"))?;
    Ok(String::from_utf8(bytes).unwrap())
}

/// `rk8s-server encryption rewrite` with the file `file` against `server`'s store.
fn rewrite(server: &Server, file: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rk8s-server"))
        .args(["encryption", "rewrite", "--encryption-provider-config"])
        .arg(file)
        .args(server.store_access())
        .output()
        .unwrap();
    cli::success("encryption rewrite", out)
}

/// How many values a rewrite's output says it wrote.
fn rewritten(out: &str) -> u64 {
    let last = out.lines().last().unwrap_or_default();
    let n = last.split_whitespace().next().unwrap_or_default();
    n.parse()
        .unwrap_or_else(|_| panic!("no count in the rewrite's output: {out}"))
}

#[test]
fn secrets_are_encrypted_at_rest_and_survive_a_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("encryption.yaml");
    std::fs::write(&file, config(&[aesgcm("key1", 1), IDENTITY.into()])).unwrap();
    let mut server = Server::start(&[
        "--disable-scheduler",
        "--disable-controllers",
        "--encryption-provider-config",
        file.to_str().unwrap(),
    ]);
    let secret = marker("sec");
    let plain = marker("cfg");
    server.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "s",
        &format!("--from-literal=password={secret}"),
    ]);
    server.kubectl_ok(&[
        "create",
        "configmap",
        "c",
        &format!("--from-literal=note={plain}"),
    ]);
    server.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "t",
        "--from-literal=password=t",
    ]);
    assert_eq!(password(&server, "s").unwrap(), secret);
    // A list and a watch's first events read through the same store handle.
    let listed = server.kubectl_ok(&["get", "secrets", "-o", "json"]);
    assert!(listed.contains(&b64(&secret)), "{listed}");

    let snapshot = dir.path().join("backup.db");
    let out = Command::new(env!("CARGO_BIN_EXE_rk8s-server"))
        .args(["snapshot", "save"])
        .arg(&snapshot)
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .output()
        .unwrap();
    cli::success("snapshot save", out);

    let data = server.data_dir();
    for needle in [secret.clone(), b64(&secret)] {
        let found = files_holding(&data, &needle);
        assert!(
            found.is_empty(),
            "{needle} is stored in plain text in {found:?}"
        );
        assert!(
            !holds(&snapshot, needle.as_bytes()),
            "{needle} is in the snapshot"
        );
    }
    // The search does find what is stored plain.
    assert!(
        !files_holding(&data, &plain).is_empty(),
        "the ConfigMap's value is in no file of {}",
        data.display()
    );
    assert!(holds(&snapshot, plain.as_bytes()));

    // Rotation: the new key first (the old one still reads), restart, rewrite.
    std::fs::write(
        &file,
        config(&[aesgcm("key2", 2), aesgcm("key1", 1), IDENTITY.into()]),
    )
    .unwrap();
    server.restart();
    ready(&server);
    assert_eq!(password(&server, "s").unwrap(), secret);
    // kube's way: a replace that changes nothing still writes a value stored under an
    // older key. Without the old key, `t` reads and `s` (not replaced) does not.
    let t = server.kubectl_ok(&["get", "secret", "t", "-o", "json"]);
    let t_file = dir.path().join("t.json");
    std::fs::write(&t_file, t).unwrap();
    server.kubectl_ok(&["replace", "-f", t_file.to_str().unwrap()]);
    std::fs::write(&file, config(&[aesgcm("key2", 2)])).unwrap();
    server.restart();
    ready(&server);
    assert_eq!(password(&server, "t").unwrap(), "t");
    assert!(password(&server, "s").is_err());
    std::fs::write(
        &file,
        config(&[aesgcm("key2", 2), aesgcm("key1", 1), IDENTITY.into()]),
    )
    .unwrap();
    server.restart();
    ready(&server);
    let out = rewrite(&server, &file);
    assert!(rewritten(&out) >= 1, "{out}");
    assert!(out.contains("/registry/secrets/"), "{out}");

    // The old key gone: what was rewritten reads with the new one alone.
    std::fs::write(&file, config(&[aesgcm("key2", 2)])).unwrap();
    server.restart();
    ready(&server);
    assert_eq!(password(&server, "s").unwrap(), secret);
    for needle in [secret.clone(), b64(&secret)] {
        let found = files_holding(&data, &needle);
        assert!(
            found.is_empty(),
            "{needle} is stored in plain text in {found:?}"
        );
    }
}

#[test]
fn a_secret_stored_before_encryption_is_read_through_identity_and_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("server.yaml");
    let file = dir.path().join("encryption.yaml");
    std::fs::write(&settings, "disable-scheduler: true\n").unwrap();
    let mut server = Server::start(&[
        "--disable-controllers",
        "--config",
        settings.to_str().unwrap(),
    ]);
    let secret = marker("old");
    server.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "before",
        &format!("--from-literal=password={secret}"),
    ]);
    // Unencrypted, the Secret's value is there to be found (base64 in JSON).
    let found = [secret.clone(), b64(&secret)]
        .iter()
        .any(|needle| !files_holding(&server.data_dir(), needle).is_empty());
    assert!(found, "the plain Secret is in no file");

    // Encryption configured without identity: the plain value is refused, with why.
    std::fs::write(&file, config(&[aesgcm("key1", 1)])).unwrap();
    std::fs::write(
        &settings,
        format!(
            "disable-scheduler: true\nencryption-provider-config: {}\n",
            file.display()
        ),
    )
    .unwrap();
    server.restart();
    ready(&server);
    let refused = password(&server, "before").unwrap_err();
    assert!(
        refused.contains("unable to transform key \"/registry/secrets/default/before\"")
            && refused.contains("identity provider is not in the encryption configuration"),
        "{refused}"
    );

    // With identity listed after the key, it reads; the rewrite encrypts it.
    std::fs::write(&file, config(&[aesgcm("key1", 1), IDENTITY.into()])).unwrap();
    server.restart();
    ready(&server);
    assert_eq!(password(&server, "before").unwrap(), secret);
    let out = rewrite(&server, &file);
    assert!(rewritten(&out) >= 1, "{out}");

    // Without identity again: the rewritten Secret reads, so it is encrypted now.
    std::fs::write(&file, config(&[aesgcm("key1", 1)])).unwrap();
    server.restart();
    ready(&server);
    assert_eq!(password(&server, "before").unwrap(), secret);
}

#[test]
fn a_bad_encryption_configuration_stops_the_start_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("encryption.yaml");
    let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
    std::fs::write(
        &file,
        config(&[
            IDENTITY.into(),
            format!("aescbc: {{keys: [{{name: k, secret: {short}}}]}}"),
        ]),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rk8s-server"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--encryption-provider-config")
        .arg(&file)
        .args(["--peer-listen", "127.0.0.1:1", "--port", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:7:",
            file.display()
        )) && err.contains("resources[0].providers[1].aescbc.keys[0].secret: invalid value \"REDACTED\": secret is not of the expected length, got 16, expected one of [32]"),
        "{err}"
    );
    assert!(!err.contains(&short), "the key is printed: {err}");
}

//! Config files: `rk8s-server --config FILE` and `rk8s-node run|join|reset --config
//! FILE` take every flag as a setting, the command line over the file; a bad setting
//! stops the binary with the file, line and key named.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::apiserver::Server;

#[test]
fn the_server_runs_from_its_config_file_under_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("server.yaml");
    // `port` is also given on the command line (by the harness): that one is used.
    std::fs::write(
        &file,
        "# rk8s-server settings\nport: 1\nservice-cluster-ip-range: 10.50.0.0/16\ntls-san: [rk8s.example, 10.9.9.9]\n",
    )
    .unwrap();
    let server = Server::start(&["--config", file.to_str().unwrap()]);
    assert!(
        server
            .log()
            .contains(&format!("settings read from {}", file.display()))
    );
    let service = r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"selector": {"app": "s"}, "ports": [{"port": 80}]}}"#;
    let out = support::cli::output(
        server.rk8sctl_command().args(["apply", "-f", "-"]),
        Some(service),
    );
    assert!(out.status.success(), "{out:?}");
    let ip = server.rk8sctl_ok(&["get", "svc", "s", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(ip.starts_with("10.50."), "{ip}");
    // The serving certificate names the extra name the file gave: kubectl trusts it
    // under that name.
    let (ok, out) = server.kubectl(&[
        "--tls-server-name",
        "rk8s.example",
        "get",
        "ns",
        "default",
        "-o",
        "name",
    ]);
    assert!(ok, "{out}");
    let (ok, _) = server.kubectl(&["--tls-server-name", "other.example", "get", "ns", "default"]);
    assert!(!ok);
}

#[test]
fn bad_settings_stop_the_binaries_with_the_place_named() {
    let dir = tempfile::tempdir().unwrap();
    let server_file = dir.path().join("server.yaml");
    std::fs::write(&server_file, "port: 7443\ndata-dri: /tmp/x\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rk8s-server"))
        .args(["--config", server_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:2:1: data-dri: no such setting",
            server_file.display()
        )),
        "{err}"
    );
    std::fs::write(&server_file, "port: [1, 2]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rk8s-server"))
        .args(["--config", server_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(":1:1: port: expected one value, not a list")
    );

    let node_file = dir.path().join("node.yaml");
    // join's own settings are no error for run and reset (they pass them over).
    std::fs::write(
        &node_file,
        "server: https://192.0.2.1:6443\nmax-pods: 50\nmax-podz: 1\n",
    )
    .unwrap();
    for sub in ["run", "reset"] {
        let out = Command::new(env!("CARGO_BIN_EXE_rk8s-node"))
            .args([sub, "--config", node_file.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{sub}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "{}:3:1: max-podz: no such setting",
                node_file.display()
            )),
            "{sub}: {err}"
        );
    }
    // join needs a server: its argument, --server or `server:`.
    std::fs::write(
        &node_file,
        "token: abcdef.0123456789abcdef\nca-cert-hash: sha256:00\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rk8s-node"))
        .args(["join", "--config", node_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with(
            "error: no API server: give it as `rk8s-node join https://HOST:6443`, with --server, or as `server:` in the config file"
        ),
        "{out:?}"
    );
    // A value of the wrong type is refused as the flag would be.
    std::fs::write(&node_file, "max-pods: many\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rk8s-node"))
        .args(["run", "--config", node_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-pods"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_the_server_listens_everywhere_and_advertises_its_primary_address() {
    let server = Server::start(&["--address", "0.0.0.0"]);
    let advertised = rk8s_apiserver::cluster::advertise_address("0.0.0.0".parse().unwrap());
    let url = format!(
        "https://{}",
        std::net::SocketAddr::new(advertised, server.port)
    );
    let file = server
        .data_dir()
        .join(rk8s_apiserver::cluster::ADVERTISE_URL_FILE);
    assert_eq!(std::fs::read_to_string(file).unwrap(), url);
    // The join command names it (no --server needed) ...
    let out = Command::new(env!("CARGO_BIN_EXE_rk8s-server"))
        .args(["token", "create", "--endpoint", &server.peer, "--data-dir"])
        .arg(server.data_dir())
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        line.starts_with(&format!("rk8s-node join {url} --token ")),
        "{line} {out:?}"
    );
    // ... and the serving certificate names it (checked over loopback, under that name).
    let (ok, out) = server.kubectl(&[
        "--tls-server-name",
        &advertised.to_string(),
        "get",
        "ns",
        "default",
    ]);
    assert!(ok, "{out}");
}

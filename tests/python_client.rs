//! The official Python client (PyPI `kubernetes`, installed by scripts/setup.sh into
//! `target/python`) against a real `rk8s-server`: ConfigMap, Secret, CRD and custom
//! object CRUD as `tests/python/client_crud.py` drives it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::apiserver::Server;

#[test]
fn python_kubernetes_client_crud_works_against_rk8s() {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/target/python/bin/python");
    assert!(
        std::path::Path::new(python).exists(),
        "{python} is missing: run scripts/setup.sh"
    );
    let server = Server::start(&["--disable-scheduler", "--disable-controllers"]);
    let out = support::cli::output(
        Command::new(python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/python/client_crud.py"
            ))
            .arg(server.kubeconfig()),
        None,
    );
    assert!(
        out.status.success(),
        "the Python client failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

//! The official Python client (PyPI `kubernetes`, installed by scripts/setup.sh into
//! `target/python`) against a real `rk8s-server`: ConfigMap, Secret, CRD and custom
//! object CRUD as `tests/python/client_crud.py` drives it, and a user by client
//! certificate under RBAC with the access and self reviews
//! (`tests/python/client_rbac.py`).

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

#[test]
fn python_kubernetes_client_sees_rbac_as_kube_apiserver_answers_it() {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/target/python/bin/python");
    let server = Server::start(&["--disable-scheduler", "--disable-controllers"]);
    let dir = tempfile::tempdir().unwrap();
    let user = server.user_kubeconfig(dir.path(), "pat", &["testers"]);
    let out = support::cli::output(
        Command::new(python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/python/client_rbac.py"
            ))
            .arg(server.kubeconfig())
            .arg(&user),
        None,
    );
    assert!(
        out.status.success(),
        "the Python client failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

//! The official Python client (PyPI `kubernetes`, installed by scripts/setup.sh into
//! `target/python`) against a real `rk8s-server`: ConfigMap, Secret, CRD and custom
//! object CRUD as `tests/python/client_crud.py` drives it, and a user by client
//! certificate under RBAC with the access and self reviews
//! (`tests/python/client_rbac.py`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::apiserver::Server;

/// Runs `tests/python/SCRIPT` with the PyPI client and `args`; fails the test when it
/// fails, with what it printed.
fn run_python(script: &str, args: &[&std::path::Path]) {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/target/python/bin/python");
    assert!(
        std::path::Path::new(python).exists(),
        "{python} is missing: run scripts/setup.sh"
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let out = support::cli::output(Command::new(python).arg(path).args(args), None);
    assert!(
        out.status.success(),
        "the Python client failed ({script}):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn python_kubernetes_client_crud_works_against_rk8s() {
    let server = Server::start(&["--disable-scheduler", "--disable-controllers"]);
    run_python("client_crud.py", &[&server.kubeconfig()]);
}

#[test]
fn python_kubernetes_client_sees_rbac_as_kube_apiserver_answers_it() {
    let server = Server::start(&["--disable-scheduler", "--disable-controllers"]);
    let dir = tempfile::tempdir().unwrap();
    let user = server.user_kubeconfig(dir.path(), "pat", &["testers"]);
    run_python("client_rbac.py", &[&server.kubeconfig(), &user]);
}

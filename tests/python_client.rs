//! The official Python client (PyPI `kubernetes`, installed by scripts/setup.sh into
//! `target/python`) against a real `rk8s-server`: ConfigMap, Secret, CRD and custom
//! object CRUD as `tests/python/client_crud.py` drives it, and a user by client
//! certificate under RBAC with the access and self reviews
//! (`tests/python/client_rbac.py`), and kinds served in two versions
//! (`tests/python/client_versions.py`). Its port forwarding runs in `tests/port_forward.rs`,
//! which has a node.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::apiserver::Server;
use support::cli::run_python;

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

#[test]
fn python_kubernetes_client_reads_each_kind_in_both_its_versions() {
    let server = Server::start(&["--disable-scheduler", "--disable-controllers"]);
    run_python("client_versions.py", &[&server.kubeconfig()]);
}

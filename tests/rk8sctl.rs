//! `rk8sctl` against a real `rk8s-server`: apply (created / unchanged / configured,
//! with removals), get in every output format, describe, scale, label, annotate,
//! edit through $EDITOR, delete, config, completion, and errors that name the file,
//! line and field and apply nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::apiserver::Server;
use support::cli;

struct Ctl<'a> {
    server: &'a Server,
}

impl Ctl<'_> {
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_env(args, &[])
    }

    /// `rk8sctl ARGS` finding the kubeconfig through `RK8S_CONFIG` (not
    /// `--kubeconfig`, as [`Server::rk8sctl`] does), with `env` besides.
    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut command = cli::rk8sctl_command();
        command
            .args(args)
            .env("RK8S_CONFIG", self.server.kubeconfig())
            .envs(env.iter().copied());
        command
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let out = cli::output(&mut self.command(args, env), None);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        cli::success(args, cli::output(&mut self.command(args, &[]), None))
    }
}

fn write(server: &Server, name: &str, text: &str) -> String {
    let path = server.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {app: web, team: a}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: busybox}]\n";

#[test]
fn apply_get_and_change_objects() {
    let server = Server::start(&[]);
    let ctl = Ctl { server: &server };
    let file = write(&server, "web.yaml", DEPLOY);
    assert_eq!(
        ctl.ok(&["apply", "-f", &file]),
        "deployment.apps/web created\n"
    );
    assert_eq!(
        ctl.ok(&["apply", "-f", &file]),
        "deployment.apps/web unchanged\n"
    );
    // A label someone else added survives; one the file stopped setting goes.
    ctl.ok(&["label", "deploy", "web", "owner=ops"]);
    let changed = DEPLOY
        .replace("labels: {app: web, team: a}", "labels: {app: web}")
        .replace("replicas: 2", "replicas: 3");
    std::fs::write(&file, changed).unwrap();
    assert_eq!(
        ctl.ok(&["apply", "-f", &file]),
        "deployment.apps/web configured\n"
    );
    let labels = ctl.ok(&["get", "deploy", "web", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(
        v["metadata"]["labels"],
        serde_json::json!({"app": "web", "owner": "ops"})
    );
    assert_eq!(v["spec"]["replicas"], 3);
    // kubectl sees the same last-applied configuration: its apply is a no-op too.
    let out = cli::output(server.kubectl_command().args(["apply", "-f", &file]), None);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "deployment.apps/web unchanged\n"
    );
    // Tables.
    let table = ctl.ok(&["get", "deployments"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("NAME   READY   UP-TO-DATE   AVAILABLE   AGE"),
        "{table}"
    );
    assert!(lines.next().unwrap().starts_with("web    0/3"), "{table}");
    assert!(
        ctl.ok(&["get", "deploy", "-A", "-o", "wide"])
            .starts_with("NAMESPACE   NAME")
    );
    assert_eq!(
        ctl.ok(&["get", "deploy", "-o", "name"]),
        "deployment.apps/web\n"
    );
    assert!(
        ctl.ok(&["get", "deploy/web", "-o", "yaml"])
            .contains("kind: Deployment\n")
    );
    assert!(ctl.ok(&["get", "ns"]).contains("kube-system"));
    // Scale, annotate, label rules.
    assert_eq!(
        ctl.ok(&["scale", "deploy/web", "--replicas", "5"]),
        "deployment.apps/web scaled\n"
    );
    assert!(
        ctl.ok(&["describe", "deploy", "web"])
            .contains("replicas: 5")
    );
    ctl.ok(&["annotate", "deploy", "web", "note=hi"]);
    let (code, _, err) = ctl.run(&["label", "deploy/web", "owner=dev"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("'owner' already has a value (ops), and --overwrite is false"),
        "{err}"
    );
    ctl.ok(&["label", "deploy/web", "owner=dev", "--overwrite"]);
    ctl.ok(&["label", "deploy/web", "owner-"]);
    // Edit through an "editor" that changes the replicas.
    let editor = write(
        &server,
        "editor.sh",
        "#!/bin/sh\nsed -i 's/replicas: 5/replicas: 7/' \"$1\"\n",
    );
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (code, out, err) = ctl.run_env(&["edit", "deploy/web"], &[("EDITOR", &editor)]);
    assert_eq!(
        (code, out.as_str()),
        (0, "deployment.apps/web edited\n"),
        "{err}"
    );
    assert_eq!(
        ctl.ok(&["get", "deploy", "web", "-o", "json"])
            .matches("\"replicas\": 7")
            .count(),
        1
    );
    // Delete.
    assert_eq!(
        ctl.ok(&["delete", "deploy", "web"]),
        "deployments.apps \"web\" deleted\n"
    );
    let (code, _, err) = ctl.run(&["get", "deploy", "web"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Error from server (NotFound): deployments.apps \"web\" not found"),
        "{err}"
    );
    let (_, out, err) = ctl.run(&["get", "deploy"]);
    assert_eq!(out, "");
    assert!(err.contains("No resources found in default namespace."));
}

#[test]
fn bad_files_apply_nothing_and_say_where() {
    let server = Server::start(&[]);
    let ctl = Ctl { server: &server };
    let good = "apiVersion: v1\nkind: Namespace\nmetadata: {name: fine}\n---\n";
    let file = write(
        &server,
        "bad.yaml",
        &format!("{good}{}", DEPLOY.replace("replicas: 2", "replicas: -2")),
    );
    let (code, out, err) = ctl.run(&["apply", "-f", &file]);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("bad.yaml:11:3: spec.replicas: invalid value \"-2\""),
        "{err}"
    );
    // Nothing was applied, not even the valid namespace.
    let (code, _, _) = ctl.run(&["get", "ns", "fine"]);
    assert_eq!(code, 1);
    let (code, _, err) = ctl.run(&["get", "widgets"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("doesn't have a resource type \"widgets\""),
        "{err}"
    );
}

#[test]
fn get_watch_prints_changes() {
    let server = Server::start(&[]);
    let ctl = Ctl { server: &server };
    let file = write(&server, "web.yaml", DEPLOY);
    ctl.ok(&["apply", "-f", &file]);
    let mut watch = ctl
        .command(&["get", "deploy", "-w"], &[])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    ctl.ok(&["scale", "deploy/web", "--replicas", "4"]);
    std::thread::sleep(std::time::Duration::from_secs(1));
    watch.kill().unwrap();
    let out = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{text}");
    assert!(lines[1].starts_with("web    0/2"), "{text}");
    assert!(lines.iter().any(|l| l.starts_with("web    0/4")), "{text}");
}

#[test]
fn config_and_completion() {
    let server = Server::start(&[]);
    let ctl = Ctl { server: &server };
    let view = ctl.ok(&["config", "view"]);
    // The admin kubeconfig's key and certificate are not printed.
    assert!(
        view.contains("client-key-data: DATA+OMITTED")
            && view.contains("client-certificate-data: DATA+OMITTED"),
        "{view}"
    );
    assert!(
        !view.contains("PRIVATE KEY") && !view.contains("LS0t"),
        "{view}"
    );
    assert_eq!(ctl.ok(&["config", "current-context"]), "rk8s\n");
    assert_eq!(
        ctl.ok(&["config", "use-context", "rk8s"]),
        "Switched to context \"rk8s\".\n"
    );
    let (code, _, err) = ctl.run(&["config", "use-context", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("no context exists with the name: \"nope\""));
    // The rewritten kubeconfig still works.
    assert!(ctl.ok(&["version"]).contains("Server Version: v1.33"));
    assert!(ctl.ok(&["cluster-info"]).contains("(readyz: ok)"));
    assert!(ctl.ok(&["completion", "bash"]).contains("rk8sctl"));
}

/// A namespaced custom kind with printer columns and a short name.
const CRONTAB_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: crontabs.stable.example.com}
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct]}
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - {name: Schedule, type: string, jsonPath: .spec.cronSpec}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {type: string}
              image: {type: string}
"#;

/// Two CronTabs, written before their definition in the file.
const CRONTABS: &str = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: nightly}\nspec: {cronSpec: '0 3 * * *', image: backup}\n---\napiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: hourly}\nspec: {cronSpec: '0 * * * *', image: sync}\n";

/// Applies the CronTab definition and two CronTabs in one file; the file's path.
fn apply_crontabs(ctl: &Ctl) -> String {
    let file = write(
        ctl.server,
        "crontabs.yaml",
        &format!("{CRONTABS}---\n{CRONTAB_CRD}"),
    );
    assert_eq!(
        ctl.ok(&["apply", "-f", &file]),
        "customresourcedefinition.apiextensions.k8s.io/crontabs.stable.example.com created\n\
         crontab.stable.example.com/nightly created\n\
         crontab.stable.example.com/hourly created\n"
    );
    file
}

#[test]
fn a_definition_and_its_objects_apply_in_one_run() {
    let server = Server::start(&[]);
    let ctl = Ctl { server: &server };
    let file = apply_crontabs(&ctl);
    assert_eq!(
        ctl.ok(&["apply", "-f", &file]),
        "customresourcedefinition.apiextensions.k8s.io/crontabs.stable.example.com unchanged\n\
         crontab.stable.example.com/nightly unchanged\n\
         crontab.stable.example.com/hourly unchanged\n"
    );
    // A changed object is configured, as a built-in one is.
    std::fs::write(
        &file,
        format!(
            "{}---\n{CRONTAB_CRD}",
            CRONTABS.replace("image: sync", "image: sync2")
        ),
    )
    .unwrap();
    assert!(
        ctl.ok(&["apply", "-f", &file])
            .contains("crontab.stable.example.com/hourly configured\n")
    );
    let v: serde_json::Value =
        serde_json::from_str(&ctl.ok(&["get", "ct", "hourly", "-o", "json"])).unwrap();
    assert_eq!(v["spec"]["image"], "sync2");
    assert_eq!(v["metadata"]["namespace"], "default");
}

#[test]
fn custom_objects_are_got_by_plural_short_name_and_as_yaml() {
    let server = Server::start(&[]);
    let ctl = Ctl { server: &server };
    apply_crontabs(&ctl);
    // The server's table, with the definition's printer columns.
    let table = ctl.ok(&["get", "crontabs"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAME      SCHEDULE    AGE"), "{table}");
    assert!(lines[1].starts_with("hourly    0 * * * *   "), "{table}");
    assert!(lines[2].starts_with("nightly   0 3 * * *   "), "{table}");
    let names = |out: &str| -> Vec<String> {
        out.lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect()
    };
    for name in ["ct", "crontab", "CronTab", "crontabs.stable.example.com"] {
        assert_eq!(
            names(&ctl.ok(&["get", name])),
            ["hourly", "nightly"],
            "{name}"
        );
    }
    let yaml = ctl.ok(&["get", "ct", "nightly", "-o", "yaml"]);
    for line in [
        "apiVersion: stable.example.com/v1\n",
        "kind: CronTab\n",
        "  name: nightly\n",
        "  image: backup\n",
    ] {
        assert!(yaml.contains(line), "{line:?} in\n{yaml}");
    }
    assert_eq!(
        ctl.ok(&["get", "ct", "-o", "name"]),
        "crontab.stable.example.com/hourly\ncrontab.stable.example.com/nightly\n"
    );
    assert!(ctl.ok(&["describe", "crontab/nightly"]).contains("nightly"));
    let (code, _, err) = ctl.run(&["get", "widgets"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the server doesn't have a resource type \"widgets\""),
        "{err}"
    );
}

#[test]
fn custom_objects_are_deleted_by_kind_and_name() {
    let server = Server::start(&[]);
    let ctl = Ctl { server: &server };
    apply_crontabs(&ctl);
    assert_eq!(
        ctl.ok(&["delete", "crontab", "nightly"]),
        "crontabs.stable.example.com \"nightly\" deleted\n"
    );
    let (code, _, err) = ctl.run(&["get", "ct", "nightly"]);
    assert_eq!(code, 1);
    assert!(err.contains("(NotFound)"), "{err}");
    assert_eq!(
        ctl.ok(&["get", "ct", "-o", "name"]),
        "crontab.stable.example.com/hourly\n"
    );
    // By file, too: the CronTab's kind is found in discovery.
    let one = write(
        &server,
        "hourly.yaml",
        CRONTABS.split("---\n").nth(1).unwrap(),
    );
    assert_eq!(
        ctl.ok(&["delete", "-f", &one]),
        "crontabs.stable.example.com \"hourly\" deleted\n"
    );
}

#[test]
fn a_kind_the_server_does_not_serve_is_reported_and_the_rest_applied() {
    let server = Server::start(&[]);
    let ctl = Ctl { server: &server };
    let file = write(
        &server,
        "mixed.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\n---\napiVersion: example.com/v1\nkind: Foo\nmetadata: {name: x}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: two}\n",
    );
    let (code, out, err) = ctl.run(&["apply", "-f", &file]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(out, "configmap/one created\nconfigmap/two created\n");
    assert!(
        err.contains(&format!(
            "error: resource mapping not found for name: \"x\" namespace: \"\" from \"{file}\" (document 2, line 6): no matches for kind \"Foo\" in version \"example.com/v1\"\nensure CRDs are installed first\n"
        )),
        "{err}"
    );
    for name in ["one", "two"] {
        ctl.ok(&["get", "cm", name]);
    }
}

#[test]
fn server_side_apply_twice_removes_the_key_the_file_dropped() {
    let server = Server::start(&[]);
    let ctl = Ctl { server: &server };
    let config =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: '1', b: '2'}\n";
    let file = write(&server, "settings.yaml", config);
    for _ in 0..2 {
        assert_eq!(
            ctl.ok(&["apply", "--server-side", "-f", &file]),
            "configmap/settings serverside-applied\n"
        );
    }
    std::fs::write(&file, config.replace(", b: '2'", "")).unwrap();
    ctl.ok(&["apply", "--server-side", "-f", &file]);
    let data = |ctl: &Ctl| -> serde_json::Value {
        let v: serde_json::Value =
            serde_json::from_str(&ctl.ok(&["get", "cm", "settings", "-o", "json"])).unwrap();
        v["data"].clone()
    };
    assert_eq!(data(&ctl), serde_json::json!({"a": "1"}));
    // Another manager's change to a field rk8sctl owns conflicts, unless forced.
    let other = write(
        &server,
        "other.yaml",
        &config.replace(", b: '2'", "").replace("'1'", "'9'"),
    );
    let (code, _, err) = ctl.run(&[
        "apply",
        "--server-side",
        "--field-manager",
        "other",
        "-f",
        &other,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--force-conflicts"), "{err}");
    ctl.ok(&[
        "apply",
        "--server-side",
        "--field-manager",
        "other",
        "--force-conflicts",
        "-f",
        &other,
    ]);
    assert_eq!(data(&ctl), serde_json::json!({"a": "9"}));
}

#[test]
fn server_side_apply_sends_custom_objects_too() {
    let server = Server::start(&[]);
    let ctl = Ctl { server: &server };
    let file = write(
        &server,
        "crontabs.yaml",
        &format!("{CRONTAB_CRD}---\n{CRONTABS}"),
    );
    assert_eq!(
        ctl.ok(&["apply", "--server-side", "-f", &file]),
        "customresourcedefinition.apiextensions.k8s.io/crontabs.stable.example.com serverside-applied\n\
         crontab.stable.example.com/nightly serverside-applied\n\
         crontab.stable.example.com/hourly serverside-applied\n"
    );
    std::fs::write(
        &file,
        format!(
            "{CRONTAB_CRD}---\n{}",
            CRONTABS.replace(", image: sync", "")
        ),
    )
    .unwrap();
    ctl.ok(&["apply", "--server-side", "-f", &file]);
    let v: serde_json::Value =
        serde_json::from_str(&ctl.ok(&["get", "ct", "hourly", "-o", "json"])).unwrap();
    assert_eq!(v["spec"], serde_json::json!({"cronSpec": "0 * * * *"}));
}

//! kubectl's habits in `rk8sctl`, each held against kubectl itself on the same real
//! `rk8s-server`: `-o jsonpath|jsonpath-file|custom-columns|custom-columns-file`,
//! `--sort-by`, `--no-headers`, `-L`, `--show-labels` (the same bytes printed),
//! `wait --for=…`, `$KUBECONFIG` lists and `~/.kube/config`, and the `config set-*`
//! family writing where kubectl writes. Shell completion of kinds and object names
//! from the server, through bash and the script `rk8sctl completion bash` prints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::apiserver::Server;
use support::cli;

const OBJECTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web, app.kubernetes.io/name: shop, tier: fe}}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: busybox:1.36}, {name: side, image: nginx}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, labels: {app: api, tier: be}}
spec:
  replicas: 1
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: busybox}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db}
spec:
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: busybox}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c-10, labels: {a: x}}
data: {num: "10", key: v}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c-2}
data: {num: "2"}
"#;

/// A server with [`OBJECTS`] applied (by kubectl).
fn with_objects() -> Server {
    let server = Server::start(&[]);
    let o = cli::output(
        server.kubectl_command().args(["apply", "-f", "-"]),
        Some(OBJECTS),
    );
    assert!(o.status.success(), "{o:?}");
    server
}

fn text(out: &Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Both tools with `args` against `server`: what each printed must be the same, but
/// for the digits of ages (`11s`), which tick between the two runs; their widths count.
fn same(server: &Server, args: &[&str]) {
    let ours = text(&server.rk8sctl(args));
    let theirs = text(&cli::output(server.kubectl_command().args(args), None));
    assert_eq!(ours.0, 0, "rk8sctl {args:?} failed: {}", ours.2);
    assert_eq!(theirs.0, 0, "kubectl {args:?} failed: {}", theirs.2);
    assert_eq!(
        mask_ages(&ours.1),
        mask_ages(&theirs.1),
        "rk8sctl and kubectl differ on {args:?}"
    );
}

/// `text` with the digits of every `NNs` word replaced by `N`.
fn mask_ages(text: &str) -> String {
    let age = |w: &str| {
        w.len() > 1 && w.ends_with('s') && w[..w.len() - 1].bytes().all(|b| b.is_ascii_digit())
    };
    text.split('\n')
        .map(|line| {
            line.split(' ')
                .map(|w| {
                    if age(w) {
                        format!("{}s", "N".repeat(w.len() - 1))
                    } else {
                        w.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn output_formats_print_what_kubectl_prints() {
    let server = with_objects();
    // Every object exists by now: their ages are at least the time since.
    let made = Instant::now();
    let dir = server.dir.path();
    let columns_file = dir.join("columns.txt");
    std::fs::write(
        &columns_file,
        "NAME   REPLICAS\n.metadata.name   {.spec.replicas}\n",
    )
    .unwrap();
    let template_file = dir.join("template.txt");
    std::fs::write(
        &template_file,
        "{range .items[*]}{.metadata.name}={.data.num};{end}\n",
    )
    .unwrap();
    let columns_arg = format!("custom-columns-file={}", columns_file.display());
    let template_arg = format!("jsonpath-file={}", template_file.display());
    // Outputs without an age column.
    for args in [
        vec![
            "get",
            "deploy",
            "-o",
            "custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas,LABELS:.metadata.labels,IMAGES:.spec.template.spec.containers[*].image,NONE:.status.nope",
        ],
        vec![
            "get",
            "deploy",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}{"\t"}{.spec.replicas}{"\n"}{end}"#,
        ],
        vec![
            "get",
            "deploy",
            "web",
            "-o",
            r"jsonpath={.metadata.labels} {.spec.template.spec.containers[*].name} {.metadata.labels.app\.kubernetes\.io/name} {..image}",
        ],
        vec![
            "get",
            "deploy",
            "-o",
            r#"jsonpath={.items[?(@.spec.replicas>1)].metadata.name}|{.items[-1:].metadata.name}|{.kind}"#,
        ],
        vec!["get", "deploy", "--sort-by=.spec.replicas", "-o", "name"],
        vec![
            "get",
            "deploy",
            "--sort-by={.metadata.name}",
            "--no-headers",
            "-o",
            "custom-columns=N:.metadata.name,R:{.spec.replicas}",
        ],
        vec![
            "get",
            "cm",
            "--sort-by=.data.num",
            "-o",
            "custom-columns=N:.metadata.name,V:.data.num,K:.data.key",
        ],
        vec![
            "get",
            "deploy",
            "--sort-by=.spec.replicas",
            "-o",
            &columns_arg,
        ],
        vec!["get", "cm", "-o", &template_arg],
    ] {
        same(&server, &args);
    }
    // Tables: wait until every age has two digits (and a while before it has three),
    // so both tools read the same widths.
    std::thread::sleep(Duration::from_secs(11).saturating_sub(made.elapsed()));
    for args in [
        vec![
            "get",
            "deploy",
            "-L",
            "app,app.kubernetes.io/name",
            "-L",
            "tier,missing",
        ],
        vec!["get", "cm", "--show-labels", "--sort-by=.metadata.name"],
        vec!["get", "deploy", "--no-headers", "--sort-by=.spec.replicas"],
    ] {
        same(&server, &args);
    }
    // A template that does not parse names what is wrong, and nothing is printed.
    let (code, out, err) = text(&server.rk8sctl(&["get", "deploy", "-o", "jsonpath={.items[0]"]));
    assert_ne!(code, 0);
    assert_eq!(out, "");
    assert!(
        err.contains("error parsing jsonpath {.items[0], unclosed action"),
        "{err}"
    );
    let (code, _, err) = text(&server.rk8sctl(&["get", "deploy", "-o", "custom-columns=NAME"]));
    assert_ne!(code, 0);
    assert!(err.contains("expected <header>:<json-path-expr>"), "{err}");
}

#[test]
fn wait_for_conditions_fields_and_deletion() {
    let server = with_objects();
    // The Deployment controller sets Progressing on every Deployment.
    assert_eq!(
        server.rk8sctl_ok(&[
            "wait",
            "--for=condition=Progressing",
            "deploy/web",
            "--timeout=60s"
        ]),
        "deployment.apps/web condition met\n"
    );
    assert_eq!(
        server.rk8sctl_ok(&[
            "wait",
            "--for=jsonpath={.spec.replicas}=1",
            "deploy",
            "-l",
            "tier=be"
        ]),
        "deployment.apps/api condition met\n"
    );
    // No node runs the pods: never Available.
    let (code, _, err) = text(&server.rk8sctl(&[
        "wait",
        "--for=condition=Available",
        "deploy/web",
        "--timeout=1s",
    ]));
    assert_eq!(code, 1);
    assert!(
        err.contains("timed out waiting for the condition on deployments/web"),
        "{err}"
    );
    let (code, _, err) = text(&server.rk8sctl(&["wait", "--for=condition=Ready", "deploy/nope"]));
    assert_eq!(code, 1);
    assert!(err.contains("deployments.apps \"nope\" not found"), "{err}");
    let (code, _, err) = text(&server.rk8sctl(&["wait", "--for=condition=Ready", "deploy"]));
    assert_eq!(code, 1);
    assert!(err.contains("no name was specified"), "{err}");
    // get -w of several kinds: every kind's objects, then their changes as they come.
    let mut watching = server
        .rk8sctl_command()
        .args(["get", "deploy,cm", "-w", "-o", "name"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watching.stdout.take().unwrap();
    let seen = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line == "configmap/late";
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.is_finished() && Instant::now() < deadline {
        if server.kubectl(&["get", "cm", "late"]).0 {
            std::thread::sleep(Duration::from_millis(200));
        } else {
            server.kubectl(&["create", "cm", "late"]);
        }
    }
    let _ = watching.kill();
    let _ = watching.wait();
    let seen = seen.join().unwrap();
    for name in ["deployment.apps/web", "configmap/c-10", "configmap/late"] {
        assert!(seen.iter().any(|l| l == name), "{name} not in {seen:?}");
    }
    // Already gone: done at once, silently.
    assert_eq!(server.rk8sctl_ok(&["wait", "--for=delete", "cm/never"]), "");
    // Deleted while waiting.
    let waiting = server
        .rk8sctl_command()
        .args(["wait", "--for=delete", "cm/c-2", "--timeout=60s"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    server.rk8sctl_ok(&["delete", "cm", "c-2"]);
    let out = waiting.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "configmap/c-2 condition met\n"
    );
}

/// `rk8sctl ARGS` with only `env` (and PATH) for its environment.
fn ctl_env(args: &[&str], env: &[(&str, &Path)]) -> (i32, String, String) {
    let mut command: Command = cli::rk8sctl_command();
    command.env_clear().args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    text(&cli::output(&mut command, None))
}

#[test]
fn kubeconfig_lists_home_files_and_config_setters() {
    let server = Server::start(&[]);
    let home = tempfile::tempdir().unwrap();
    let missing = home.path().join("missing");
    // KUBECONFIG: a list, files that do not exist skipped.
    let list = std::env::join_paths([missing.as_path(), server.kubeconfig().as_path()]).unwrap();
    let (code, out, err) = ctl_env(
        &["get", "ns", "default", "-o", "name"],
        &[("KUBECONFIG", Path::new(&list)), ("HOME", home.path())],
    );
    assert_eq!((code, out.as_str()), (0, "namespace/default\n"), "{err}");
    // Nothing found: every file looked at is named.
    let (code, _, err) = ctl_env(&["get", "ns"], &[("HOME", home.path())]);
    assert_eq!(code, 1);
    assert!(
        err.contains(".rk8s/config or ") && err.contains(".kube/config"),
        "{err}"
    );
    // ~/.kube/config when there is no ~/.rk8s/config.
    std::fs::create_dir_all(home.path().join(".kube")).unwrap();
    std::fs::copy(server.kubeconfig(), home.path().join(".kube/config")).unwrap();
    let (code, out, err) = ctl_env(
        &["get", "ns", "default", "-o", "name"],
        &[("HOME", home.path())],
    );
    assert_eq!((code, out.as_str()), (0, "namespace/default\n"), "{err}");

    // A kubeconfig built from nothing with the setters, by each tool into its own
    // pair of files: the same messages, the same files, and both tools use it.
    let pki = server.data_dir().join("pki");
    let token = std::fs::read_to_string(pki.join("admin.token")).unwrap();
    let url = std::fs::read_to_string(server.kubeconfig())
        .unwrap()
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("server: ")
                .map(|s| s.trim_matches('"').to_string())
        })
        .unwrap();
    let ca = pki.join("ca.crt").display().to_string();
    // A server that does not answer: its address and why, as kubectl says it.
    let port = support::apiserver::free_port();
    let refused = home.path().join("refused");
    let config = std::fs::read_to_string(server.kubeconfig()).unwrap();
    std::fs::write(
        &refused,
        config.replace(&url, &format!("https://127.0.0.1:{port}")),
    )
    .unwrap();
    let (code, _, err) = ctl_env(&["get", "pods"], &[("RK8S_CONFIG", &refused)]);
    assert_eq!(code, 1);
    let expected = format!(
        "The connection to the server 127.0.0.1:{port} was refused - did you specify the right host or port?"
    );
    assert!(err.contains(&expected), "{err}");
    let steps: Vec<Vec<&str>> = vec![
        vec![
            "config",
            "set-cluster",
            "one",
            "--server",
            &url,
            "--certificate-authority",
            &ca,
            "--embed-certs",
        ],
        vec!["config", "set-credentials", "me", "--token", token.trim()],
        vec![
            "config",
            "set-context",
            "ctx",
            "--cluster",
            "one",
            "--user",
            "me",
        ],
        vec![
            "config",
            "set-context",
            "--current",
            "--namespace",
            "kube-system",
        ],
        vec!["config", "use-context", "ctx"],
        vec![
            "config",
            "set-context",
            "--current",
            "--namespace",
            "kube-system",
        ],
        vec!["config", "set-context", "spare", "--cluster", "one"],
        vec!["config", "rename-context", "spare", "other"],
        vec!["config", "get-contexts"],
        vec!["config", "get-clusters"],
        vec!["config", "delete-context", "other"],
        vec!["config", "delete-context", "other"],
        vec!["get", "ns", "kube-system", "-o", "name"],
        vec!["config", "current-context"],
    ];
    let mut printed: Vec<Vec<(i32, String, String)>> = Vec::new();
    for tool in ["rk8sctl", "kubectl"] {
        let dir = home.path().join(tool);
        std::fs::create_dir_all(&dir).unwrap();
        let files = std::env::join_paths([dir.join("a"), dir.join("b")]).unwrap();
        let mut outputs = Vec::new();
        for step in &steps {
            let mut command = match tool {
                "rk8sctl" => cli::rk8sctl_command(),
                _ => Command::new("kubectl"),
            };
            command
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", home.path())
                .env("KUBECONFIG", &files)
                .args(step);
            let (code, out, err) = text(&cli::output(&mut command, None));
            let dir = dir.display().to_string();
            let clean = |s: &str| {
                s.replace(&dir, "DIR")
                    .replace("error: ", "")
                    .replace(tool, "TOOL")
            };
            outputs.push((code.min(1), clean(&out), clean(&err)));
        }
        // kubectl makes the last file of a list none of which exists.
        assert!(!dir.join("a").exists() && dir.join("b").exists(), "{tool}");
        printed.push(outputs);
    }
    for (i, step) in steps.iter().enumerate() {
        assert_eq!(
            printed[0][i], printed[1][i],
            "rk8sctl and kubectl differ on {step:?}"
        );
    }
    assert_eq!(printed[0][12].1, "namespace/kube-system\n");
}

#[test]
fn two_populated_kubeconfig_files_merge_as_kubectls_do() {
    let server = Server::start(&[]);
    let home = tempfile::tempdir().unwrap();
    let pki = server.data_dir().join("pki");
    let token = std::fs::read_to_string(pki.join("admin.token")).unwrap();
    let url = format!("https://127.0.0.1:{}", server.port);
    let ca = pki.join("ca.crt").display().to_string();
    let refused = format!("https://127.0.0.1:{}", support::apiserver::free_port());
    // The first file: the cluster, the user and a context of the same name as the
    // second's. The second: that context and another, the current context, and the
    // same cluster and user under the same names but wrong (the first file wins).
    let a = home.path().join("a");
    std::fs::write(
        &a,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: one\n  cluster:\n    server: {url}\n    certificate-authority: {ca}\nusers:\n- name: me\n  user:\n    token: {}\ncontexts:\n- name: ctx\n  context:\n    cluster: one\n    user: me\n    namespace: kube-system\n",
            token.trim()
        ),
    )
    .unwrap();
    let b = home.path().join("b");
    std::fs::write(
        &b,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: ctx\nclusters:\n- name: one\n  cluster:\n    server: {refused}\n    insecure-skip-tls-verify: true\n- name: two\n  cluster:\n    server: {refused}\nusers:\n- name: me\n  user:\n    token: wrong.token\ncontexts:\n- name: ctx\n  context:\n    cluster: two\n    user: me\n    namespace: default\n- name: spare\n  context:\n    cluster: two\n    user: me\n"
        ),
    )
    .unwrap();
    let files = std::env::join_paths([&a, &b]).unwrap();
    let run = |tool: &str, args: &[&str]| {
        let mut command = match tool {
            "rk8sctl" => cli::rk8sctl_command(),
            _ => Command::new("kubectl"),
        };
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("KUBECONFIG", &files)
            .args(args);
        text(&cli::output(&mut command, None))
    };
    for args in [
        &["config", "view"][..],
        &["config", "view", "--raw"],
        &["config", "current-context"],
        &["config", "get-contexts"],
        &["config", "get-clusters"],
        // The first file's cluster, user and namespace: the real server, as admin.
        &["get", "sa", "default", "-o", "name"],
    ] {
        let mut ours = run("rk8sctl", args);
        let mut theirs = run("kubectl", args);
        assert_eq!(theirs.0, 0, "kubectl {args:?}: {}", theirs.2);
        if args[1] == "view" {
            // The same document (the YAML printers indent and quote differently;
            // kubectl adds its empty preferences).
            let value = |t: &str| {
                let mut v = rk8s_api::yaml::parse_documents(t).unwrap().remove(0).value;
                v.as_object_mut().unwrap().remove("preferences");
                v.to_string()
            };
            ours.1 = value(&ours.1);
            theirs.1 = value(&theirs.1);
        }
        if args[1] == "get-clusters" {
            // kubectl prints the clusters in Go's map order (random): compared as sets.
            let sorted = |t: &str| {
                let mut lines: Vec<&str> = t.lines().collect();
                if let Some(rows) = lines.get_mut(1..) {
                    rows.sort_unstable();
                }
                lines.join("\n")
            };
            ours.1 = sorted(&ours.1);
            theirs.1 = sorted(&theirs.1);
        }
        assert_eq!(ours, theirs, "rk8sctl and kubectl differ on {args:?}");
    }
    let (_, view, _) = run("kubectl", &["config", "view", "--raw"]);
    assert!(
        view.contains(&format!("server: {url}")) && !view.contains("wrong.token"),
        "{view}"
    );
    assert!(
        view.contains("namespace: kube-system") && view.contains("name: spare"),
        "{view}"
    );
    let (_, listed, _) = run(
        "rk8sctl",
        &[
            "get",
            "sa",
            "default",
            "-o",
            "jsonpath={.metadata.namespace}",
        ],
    );
    assert_eq!(listed, "kube-system");
}

/// The object a tool prints as JSON, without what differs by nature
/// (names, times, uids, addresses the server picks).
fn json_of(server: &Server, tool: &str, args: &[&str]) -> serde_json::Value {
    let out = match tool {
        "rk8sctl" => server.rk8sctl(args),
        _ => cli::output(server.kubectl_command().args(args), None),
    };
    let (code, out, err) = text(&out);
    assert_eq!(code, 0, "{tool} {args:?}: {err}");
    let mut v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for key in [
        "creationTimestamp",
        "uid",
        "resourceVersion",
        "managedFields",
        "generation",
    ] {
        v["metadata"].as_object_mut().unwrap().remove(key);
    }
    v.as_object_mut().unwrap().remove("status");
    v
}

#[test]
fn run_expose_and_set_image_make_what_kubectl_makes() {
    let server = with_objects();
    // Generated objects, not sent: the same as kubectl's generators make.
    for args in [
        vec![
            "run",
            "p",
            "--image=busybox",
            "--dry-run=client",
            "-o",
            "json",
        ],
        vec![
            "run",
            "p",
            "--image=busybox",
            "--port=80",
            "--labels=a=b,c=d",
            "--env=K=V",
            "--restart=Never",
            "--dry-run=client",
            "-o",
            "json",
            "--command",
            "--",
            "sh",
            "-c",
            "echo hi",
        ],
        vec![
            "run",
            "p",
            "--image=busybox",
            "--dry-run=client",
            "-o",
            "json",
            "--",
            "arg1",
            "arg2",
        ],
        vec![
            "expose",
            "deploy/web",
            "--port=80",
            "--target-port=8080",
            "--dry-run=client",
            "-o",
            "json",
        ],
        vec![
            "expose",
            "deploy",
            "api",
            "--port=81",
            "--name=api-svc",
            "--type=NodePort",
            "--dry-run=client",
            "-o",
            "json",
        ],
    ] {
        assert_eq!(
            json_of(&server, "rk8sctl", &args),
            json_of(&server, "kubectl", &args),
            "{args:?}"
        );
    }
    // Sent: the same objects stored, the same words.
    assert_eq!(
        server.rk8sctl_ok(&["run", "p1", "--image=busybox", "--port=8080"]),
        "pod/p1 created\n"
    );
    assert_eq!(
        server
            .kubectl(&["run", "p2", "--image=busybox", "--port=8080"])
            .1,
        "pod/p2 created\n"
    );
    let spec = |name: &str| {
        json_of(&server, "kubectl", &["get", "pod", name, "-o", "json"])["spec"]["containers"][0]["ports"].clone()
    };
    assert_eq!(spec("p1"), spec("p2"));
    assert_eq!(
        server.rk8sctl_ok(&["expose", "pod/p1", "--port=80"]),
        "service/p1 exposed\n"
    );
    assert_eq!(
        server.kubectl(&["expose", "pod/p2", "--port=80"]).1,
        "service/p2 exposed\n"
    );
    let svc = |name: &str| {
        let v = json_of(&server, "kubectl", &["get", "svc", name, "-o", "json"]);
        (v["spec"]["ports"].clone(), v["spec"]["type"].clone())
    };
    assert_eq!(svc("p1"), svc("p2"));
    let selector =
        json_of(&server, "kubectl", &["get", "svc", "p1", "-o", "json"])["spec"]["selector"]
            .clone();
    assert_eq!(selector, serde_json::json!({"run": "p1"}));
    // A workload's port found from its pods' declared ports, or none to find.
    let (code, _, err) = text(&server.rk8sctl(&["expose", "deploy/db"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("couldn't find port via --port flag or introspection"),
        "{err}"
    );
    // set image: one container by name, every container with *.
    assert_eq!(
        server.rk8sctl_ok(&["set", "image", "deploy/web", "side=nginx:1.27"]),
        "deployment.apps/web image updated\n"
    );
    let images = |name: &str| {
        server
            .kubectl(&[
                "get",
                "deploy",
                name,
                "-o",
                "jsonpath={.spec.template.spec.containers[*].image}",
            ])
            .1
    };
    assert_eq!(images("web"), "busybox:1.36 nginx:1.27");
    server.rk8sctl_ok(&["set", "image", "deploy/web", "*=busybox:1.37"]);
    assert_eq!(images("web"), "busybox:1.37 busybox:1.37");
    let (code, _, err) = text(&server.rk8sctl(&["set", "image", "deploy/web", "nope=x"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("unable to find container named \"nope\""),
        "{err}"
    );
    // --dry-run=server: checked by the server, nothing stored.
    assert_eq!(
        server.rk8sctl_ok(&["set", "image", "deploy/api", "api=x:1", "--dry-run=server"]),
        "deployment.apps/api image updated (server dry run)\n"
    );
    assert_eq!(images("api"), "busybox");
}

#[test]
fn cordon_uncordon_and_drain_say_what_kubectl_says() {
    let server = Server::start(&[]);
    let mut printed: Vec<Vec<(i32, String)>> = Vec::new();
    for tool in ["rk8sctl", "kubectl"] {
        // A node of each tool's own, with a pod no controller owns bound to it.
        let objects = format!(
            "apiVersion: v1\nkind: Node\nmetadata: {{name: node-{tool}}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: bare-{tool}}}\nspec: {{nodeName: node-{tool}, containers: [{{name: c, image: busybox}}]}}\n"
        );
        let o = cli::output(
            server.kubectl_command().args(["apply", "-f", "-"]),
            Some(&objects),
        );
        assert!(o.status.success(), "{o:?}");
        let node = format!("node-{tool}");
        let steps: [Vec<&str>; 6] = [
            vec!["cordon", &node],
            vec!["cordon", &node],
            vec!["uncordon", &node],
            vec!["uncordon", &node],
            vec!["drain", &node, "--timeout=5s"],
            vec![
                "drain",
                &node,
                "--force",
                "--grace-period=0",
                "--timeout=30s",
            ],
        ];
        let mut outputs = Vec::new();
        for step in &steps {
            let out = match tool {
                "rk8sctl" => server.rk8sctl(step),
                _ => cli::output(server.kubectl_command().args(step), None),
            };
            let (code, out, err) = text(&out);
            if step.contains(&"--force") {
                assert!(
                    err.contains(&format!(
                        "deleting Pods that declare no controller: default/bare-{tool}"
                    )),
                    "{tool}: {err}"
                );
            }
            if step.len() == 3 {
                assert!(err.contains(&format!("cannot delete Pods that declare no controller (use --force to override): default/bare-{tool}")), "{tool}: {err}");
            }
            outputs.push((code.min(1), out.replace(tool, "TOOL")));
        }
        let spec = server
            .kubectl(&["get", "node", &node, "-o", "jsonpath={.spec.unschedulable}"])
            .1;
        assert_eq!(spec, "true", "{tool}");
        printed.push(outputs);
    }
    assert_eq!(printed[0], printed[1]);
    assert_eq!(
        printed[0][5].1,
        "node/node-TOOL already cordoned\nevicting pod default/bare-TOOL\npod/bare-TOOL evicted\nnode/node-TOOL drained\n"
    );
}

/// What bash completes for the line `words` (the cursor at the end of its last
/// word), with the script `rk8sctl completion bash` prints, against `server`; flags
/// (offered with every empty word) left out.
fn bash_completes(server: &Server, words: &[&str]) -> Vec<String> {
    let bin = Path::new(env!("CARGO_BIN_EXE_rk8sctl")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let line: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "source <(rk8sctl completion bash)\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_TYPE=9\n_clap_complete_rk8sctl rk8sctl '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        line.join(" "),
        words.len() - 1,
        words.last().unwrap()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("PATH", path)
        .env("RK8S_CONFIG", server.kubeconfig())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut offered: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('-'))
        .collect();
    offered.sort();
    offered
}

#[test]
fn shell_completion_offers_kinds_and_the_servers_object_names() {
    let server = with_objects();
    // Verbs and flags, from the command's definition.
    assert!(bash_completes(&server, &["rk8sctl", "ge"]).contains(&"get".to_string()));
    // The kinds the server serves, then the names of its objects.
    let kinds = bash_completes(&server, &["rk8sctl", "get", "deploy"]);
    assert_eq!(kinds, ["deployments"]);
    assert_eq!(
        bash_completes(&server, &["rk8sctl", "get", "deployments", ""]),
        ["api", "db", "web"]
    );
    assert_eq!(
        bash_completes(&server, &["rk8sctl", "describe", "configmaps", "c-"]),
        ["c-10", "c-2"]
    );
    // Names already on the line are not offered again; KIND/NAME forms; namespaces.
    assert_eq!(
        bash_completes(&server, &["rk8sctl", "delete", "deploy", "web", ""]),
        ["api", "db"]
    );
    assert_eq!(
        bash_completes(&server, &["rk8sctl", "rollout", "status", "deploy/w"]),
        ["deploy/web"]
    );
    assert!(
        bash_completes(&server, &["rk8sctl", "get", "-n", "kube-"])
            .contains(&"kube-system".to_string())
    );
    // Another namespace's objects with -n; none from a server that is not there.
    assert!(
        bash_completes(
            &server,
            &["rk8sctl", "-n", "kube-system", "get", "deployments", ""]
        )
        .is_empty()
    );
    let kubeconfig = server.kubeconfig();
    drop(server);
    let bin = Path::new(env!("CARGO_BIN_EXE_rk8sctl"));
    let out = Command::new(bin)
        .args(["--", "rk8sctl", "get", "pods", ""])
        .env("COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "4")
        .env("RK8S_CONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "", "{out:?}");
}

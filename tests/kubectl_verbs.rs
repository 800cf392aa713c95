//! kubectl's verb set against a real `rk8s-server`: the Debian `kubectl` (a client
//! nobody here wrote) runs each command of the table as a user types it, and its output
//! must say what it says against kube-apiserver. The generators of `kubectl create`,
//! `run` and `expose` send protobuf; `apply --server-side` sends apply patches.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::apiserver::Server;

/// The API alone: no scheduler or controller writes to these objects.
const API_ONLY: &[&str] = &["--disable-scheduler", "--disable-controllers"];

/// Runs `kubectl ARGS` (with `stdin`, if any) and checks that it succeeds and prints
/// every one of `expected`.
fn check(server: &Server, args: &[&str], stdin: Option<&str>, expected: &[&str]) {
    let out = support::cli::output(server.kubectl_command().args(args), stdin);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kubectl {args:?} failed:\n{text}");
    for e in expected {
        assert!(
            text.contains(e),
            "kubectl {args:?} printed no {e:?}:\n{text}"
        );
    }
}

/// Applies the CustomResourceDefinition `crd`, named `name`, and waits until it is
/// `Established`.
fn define(server: &Server, crd: &str, name: &str) {
    check(server, &["apply", "-f", "-"], Some(crd), &["created"]);
    let crd = format!("crd/{name}");
    let wait = ["wait", "--for=condition=Established", &crd, "--timeout=30s"];
    check(server, &wait, None, &["condition met"]);
}

#[test]
fn kubectl_create_generators_and_set_work() {
    let server = Server::start(API_ONLY);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.properties");
    std::fs::write(&file, "a=1\n").unwrap();
    let from_file = format!("--from-file={}", file.display());
    let table: &[(&[&str], &[&str])] = &[
        (
            &["create", "namespace", "shop"],
            &["namespace/shop created"],
        ),
        (
            &[
                "create",
                "deployment",
                "web",
                "--image=busybox:1.36",
                "--replicas=2",
                "-n",
                "shop",
            ],
            &["deployment.apps/web created"],
        ),
        (
            &[
                "create",
                "configmap",
                "cfg",
                "--from-literal=a=b",
                &from_file,
                "-n",
                "shop",
            ],
            &["configmap/cfg created"],
        ),
        (
            &[
                "create",
                "secret",
                "generic",
                "pw",
                "--from-literal=password=s3cr3t",
                "-n",
                "shop",
            ],
            &["secret/pw created"],
        ),
        (
            &[
                "create",
                "secret",
                "docker-registry",
                "reg",
                "--docker-server=registry.local:5000",
                "--docker-username=u",
                "--docker-password=p",
                "-n",
                "shop",
            ],
            &["secret/reg created"],
        ),
        (
            &["create", "serviceaccount", "builder", "-n", "shop"],
            &["serviceaccount/builder created"],
        ),
        (
            &[
                "create",
                "service",
                "clusterip",
                "web",
                "--tcp=80:8080",
                "-n",
                "shop",
            ],
            &["service/web created"],
        ),
        (
            &[
                "create",
                "job",
                "once",
                "--image=busybox:1.36",
                "-n",
                "shop",
                "--",
                "date",
            ],
            &["job.batch/once created"],
        ),
        (
            &[
                "create",
                "cronjob",
                "nightly",
                "--image=busybox:1.36",
                "--schedule=0 3 * * *",
                "-n",
                "shop",
            ],
            &["cronjob.batch/nightly created"],
        ),
        (
            &[
                "create",
                "role",
                "reader",
                "--verb=get,list",
                "--resource=pods",
                "-n",
                "shop",
            ],
            &["role.rbac.authorization.k8s.io/reader created"],
        ),
        (
            &[
                "create",
                "rolebinding",
                "read",
                "--role=reader",
                "--serviceaccount=shop:builder",
                "-n",
                "shop",
            ],
            &["rolebinding.rbac.authorization.k8s.io/read created"],
        ),
        (
            &[
                "create",
                "clusterrole",
                "node-reader",
                "--verb=get",
                "--resource=nodes",
            ],
            &["clusterrole.rbac.authorization.k8s.io/node-reader created"],
        ),
        (
            &[
                "create",
                "priorityclass",
                "high",
                "--value=1000",
                "--description=important",
            ],
            &["priorityclass.scheduling.k8s.io/high created"],
        ),
        (
            &[
                "create",
                "quota",
                "q",
                "--hard=pods=10,requests.cpu=4",
                "-n",
                "shop",
            ],
            &["resourcequota/q created"],
        ),
        (
            &[
                "create",
                "ingress",
                "web",
                "--rule=web.example.com/=web:80",
                "-n",
                "shop",
            ],
            &["ingress.networking.k8s.io/web created"],
        ),
        (
            &[
                "create",
                "poddisruptionbudget",
                "web",
                "--selector=app=web",
                "--min-available=1",
                "-n",
                "shop",
            ],
            &["poddisruptionbudget.policy/web created"],
        ),
        (
            &[
                "run",
                "one",
                "--image=busybox:1.36",
                "-n",
                "shop",
                "--",
                "sleep",
                "60",
            ],
            &["pod/one created"],
        ),
        (
            &[
                "expose",
                "deployment",
                "web",
                "--name=web-np",
                "--port=80",
                "--type=NodePort",
                "-n",
                "shop",
            ],
            &["service/web-np exposed"],
        ),
        (
            &[
                "set",
                "image",
                "deployment/web",
                "busybox=busybox:1.37",
                "-n",
                "shop",
            ],
            &["deployment.apps/web image updated"],
        ),
        (
            &["set", "env", "deployment/web", "MODE=fast", "-n", "shop"],
            &["deployment.apps/web env updated"],
        ),
        (
            &[
                "set",
                "resources",
                "deployment/web",
                "--limits=cpu=200m,memory=64Mi",
                "-n",
                "shop",
            ],
            &["deployment.apps/web resource requirements updated"],
        ),
        (
            &[
                "set",
                "serviceaccount",
                "deployment/web",
                "builder",
                "-n",
                "shop",
            ],
            &["deployment.apps/web serviceaccount updated"],
        ),
        (
            &[
                "get",
                "deployment",
                "web",
                "-n",
                "shop",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.serviceAccountName}",
            ],
            &["busybox:1.37 builder"],
        ),
        (
            &["get", "all", "-n", "shop"],
            &[
                "deployment.apps/web",
                "service/web",
                "cronjob.batch/nightly",
                "job.batch/once",
                "pod/one",
            ],
        ),
        (&["get", "secret", "pw", "-n", "shop"], &["Opaque"]),
        (
            &[
                "get",
                "cm",
                "cfg",
                "-n",
                "shop",
                "-o",
                "jsonpath={.data.app\\.properties}",
            ],
            &["a=1"],
        ),
        (
            &["api-resources"],
            &[
                "configmaps",
                "cm",
                "statefulsets",
                "sts",
                "customresourcedefinitions",
                "crd,crds",
                "ingresses",
                "ing",
                "networkpolicies",
                "netpol",
                "poddisruptionbudgets",
                "pdb",
                "priorityclasses",
                "pc",
            ],
        ),
        (
            &["explain", "statefulset.spec.serviceName"],
            &["serviceName"],
        ),
        (&["explain", "ingress.spec.rules"], &["host"]),
        // A pod's empty security context, as kube-apiserver defaults it (clients such
        // as `kubectl debug` read it without checking).
        (
            &[
                "get",
                "pod",
                "one",
                "-n",
                "shop",
                "-o",
                "jsonpath={.spec.securityContext}",
            ],
            &["{}"],
        ),
        // v1 Endpoints are deprecated since 1.33: every request says so.
        (
            &["get", "endpoints", "-n", "default"],
            &[
                "Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice",
            ],
        ),
        // DefaultTolerationSeconds: a new pod tolerates a node gone missing for 300 s.
        (
            &["describe", "pod", "one", "-n", "shop"],
            &[
                "node.kubernetes.io/not-ready:NoExecute op=Exists for 300s",
                "node.kubernetes.io/unreachable:NoExecute op=Exists for 300s",
            ],
        ),
        // `kubectl events --for` selects by involvedObject.apiVersion too.
        (
            &["events", "--for", "pod/one", "-n", "shop"],
            &["No events found in shop namespace."],
        ),
        (
            &["delete", "namespace", "shop", "--wait=false"],
            &["namespace \"shop\" deleted"],
        ),
    ];
    for (args, expected) in table {
        check(&server, args, None, expected);
    }
}

const CRONTAB_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: crontabs.stable.example.com}
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct], categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Spec, type: string, jsonPath: .spec.cronSpec}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        description: A CronTab runs a command on a schedule.
        properties:
          spec:
            type: object
            required: [cronSpec]
            properties:
              cronSpec: {type: string, pattern: '^(\S+ ){4}\S+$', description: The schedule in cron format.}
              image: {type: string}
              replicas: {type: integer, minimum: 1, maximum: 10, default: 1}
              size: {type: string, enum: [small, large]}
              port: {x-kubernetes-int-or-string: true}
              extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status:
            type: object
            properties:
              replicas: {type: integer}
"#;

#[test]
fn custom_resources_live_and_die_with_their_definition() {
    let server = Server::start(API_ONLY);
    define(&server, CRONTAB_CRD, "crontabs.stable.example.com");
    let good = r#"
apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: nightly}
spec: {cronSpec: "0 3 * * *", image: busybox:1.36, port: http, extra: {anything: [1, 2]}, unknown: dropped}
"#;
    // kubectl asks for strict field validation: an unknown field is refused, as
    // kube-apiserver refuses it; under `--validate=warn` it is pruned with a warning.
    let out = support::cli::output(
        server.kubectl_command().args(["apply", "-f", "-"]),
        Some(good),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "CronTab in version \"v1\" cannot be handled as a CronTab: strict decoding error: unknown field \"spec.unknown\""
        ),
        "{err}"
    );
    check(
        &server,
        &["apply", "--validate=warn", "-f", "-"],
        Some(good),
        &[
            "Warning: unknown field \"spec.unknown\"",
            "crontab.stable.example.com/nightly created",
        ],
    );
    // Defaulted, pruned, kept where the schema keeps unknown fields.
    check(
        &server,
        &[
            "get",
            "ct",
            "nightly",
            "-o",
            "jsonpath={.spec.replicas} {.spec.extra.anything} {.spec.unknown}",
        ],
        None,
        &["1 [1,2] "],
    );
    // Printer columns.
    check(
        &server,
        &["get", "crontabs"],
        None,
        &[
            "NAME",
            "SPEC",
            "REPLICAS",
            "AGE",
            "nightly   0 3 * * *   1          ",
        ],
    );
    check(
        &server,
        &["get", "all"],
        None,
        &["crontab.stable.example.com/nightly"],
    );
    // Validation, worded as kube-apiserver words it.
    let bad = r#"
apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: bad}
spec: {cronSpec: "nope", replicas: 20, size: huge, port: 1.5}
"#;
    let out = support::cli::output(
        server.kubectl_command().args(["apply", "-f", "-"]),
        Some(bad),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for e in [
        "spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10",
        "spec.size: Unsupported value: \"huge\": supported values: \"small\", \"large\"",
        "spec.cronSpec: Invalid value: \"nope\"",
    ] {
        assert!(err.contains(e), "no {e:?} in:\n{err}");
    }
    // The scale subresource and explain.
    check(
        &server,
        &["scale", "ct/nightly", "--replicas=3"],
        None,
        &["crontab.stable.example.com/nightly scaled"],
    );
    check(
        &server,
        &["get", "ct", "nightly", "-o", "jsonpath={.spec.replicas}"],
        None,
        &["3"],
    );
    check(
        &server,
        &["explain", "crontab.spec.cronSpec"],
        None,
        &["The schedule in cron format."],
    );
    check(
        &server,
        &["api-resources", "--api-group=stable.example.com"],
        None,
        &["crontabs", "ct", "CronTab"],
    );
    // Deleting the definition deletes its objects; the kind is gone.
    check(
        &server,
        &["delete", "crd", "crontabs.stable.example.com"],
        None,
        &["deleted"],
    );
    define(&server, CRONTAB_CRD, "crontabs.stable.example.com");
    check(
        &server,
        &["get", "crontabs", "-A"],
        None,
        &["No resources found"],
    );
}

const GADGET_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.versions.example.com}
spec:
  group: versions.example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, properties: {spec: {type: object, properties: {size: {type: integer}}}}}
  - name: v2
    served: true
    storage: false
    schema:
      openAPIV3Schema: {type: object, properties: {spec: {type: object, properties: {size: {type: integer}}}}}
";

/// A custom object is stored in one version and read in any served one: get, list
/// and watch (from the watch cache, which holds one version per resource) all say the
/// version asked for (conversion `None`).
#[test]
fn custom_objects_read_in_each_served_version_say_that_version() {
    let server = Server::start(API_ONLY);
    define(&server, GADGET_CRD, "gadgets.versions.example.com");
    let object = "apiVersion: versions.example.com/v1
kind: Gadget
metadata: {name: one}
spec: {size: 1}
";
    check(&server, &["apply", "-f", "-"], Some(object), &["created"]);
    for version in ["v1", "v2"] {
        let resource = format!("gadgets.{version}.versions.example.com");
        let want = format!("versions.example.com/{version}");
        let get = ["get", &resource, "one", "-o", "jsonpath={.apiVersion}"];
        check(&server, &get, None, &[&want]);
        let list = ["get", &resource, "-o", "jsonpath={.items[*].apiVersion}"];
        check(&server, &list, None, &[&want]);
        // A change after the list's revision, watched from it: it comes from the
        // watch cache's backlog.
        let collection = format!("/apis/versions.example.com/{version}/namespaces/default/gadgets");
        let out = support::cli::output(
            server.kubectl_command().args(["get", "--raw", &collection]),
            None,
        );
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let rv = listed["metadata"]["resourceVersion"].as_str().unwrap();
        // A size no earlier pass wrote (the revision grows), so the patch changes it.
        let next: u64 = rv.parse::<u64>().unwrap() + 1;
        let size = format!("{{\"spec\":{{\"size\":{next}}}}}");
        let patch = ["patch", &resource, "one", "--type=merge", "-p", &size];
        check(&server, &patch, None, &["patched"]);
        // A custom resource has no patch strategy: a strategic merge patch is 415.
        let strategic = ["patch", &resource, "one", "--type=strategic", "-p", &size];
        let out = support::cli::output(server.kubectl_command().args(strategic), None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("application/merge-patch+json"),
            "{err}"
        );
        let path = format!("{collection}?watch=true&resourceVersion={rv}&timeoutSeconds=1");
        let out =
            support::cli::output(server.kubectl_command().args(["get", "--raw", &path]), None);
        let text = String::from_utf8_lossy(&out.stdout);
        let versions: Vec<String> = text
            .lines()
            .map(|line| {
                let event: serde_json::Value = serde_json::from_str(line).unwrap();
                event["object"]["apiVersion"].as_str().unwrap().to_string()
            })
            .collect();
        assert!(
            !versions.is_empty() && versions.iter().all(|v| *v == want),
            "watch of {version} shows {versions:?}:\n{text}"
        );
    }
}

const APP: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, labels: {app: shop}}
data: {mode: fast}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: extra, labels: {app: shop}}
data: {a: "1"}
"#;

#[test]
fn kubectl_apply_prune_wait_diff_and_events_work() {
    let server = Server::start(API_ONLY);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, APP).unwrap();
    let f = file.display().to_string();
    check(
        &server,
        &["apply", "-f", &f],
        None,
        &["configmap/settings created", "configmap/extra created"],
    );
    // Server-side apply takes over from client-side apply; a second manager conflicts.
    check(
        &server,
        &["apply", "--server-side", "-f", &f],
        None,
        &["configmap/settings serverside-applied"],
    );
    let changed = APP.replace("mode: fast", "mode: slow");
    let out = support::cli::output(
        server.kubectl_command().args([
            "apply",
            "--server-side",
            "--field-manager=other",
            "-f",
            "-",
        ]),
        Some(&changed),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("conflict with \"kubectl\""), "{err}");
    check(
        &server,
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            "-",
        ],
        Some(&changed),
        &["configmap/settings serverside-applied"],
    );
    // diff: exit status 1 and the change when the file differs from the cluster.
    let out = support::cli::output(server.kubectl_command().args(["diff", "-f", &f]), None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("-  mode: slow") && text.contains("+  mode: fast"),
        "{text}"
    );
    // A list's order as the file has it: kubectl's patch inserts B between A and C with
    // `$setElementOrder/env` (C's `$(B)` sees only the variables before it), and puts a
    // sidecar before the main container.
    let deploy = |env: &str, containers: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: ordered}}\nspec:\n  selector: {{matchLabels: {{app: ordered}}}}\n  template:\n    metadata: {{labels: {{app: ordered}}}}\n    spec:\n      containers:\n{containers}      - name: main\n        image: busybox\n        env: [{env}]\n"
        )
    };
    let first = deploy("{name: A, value: a}, {name: C, value: $(B)-c}", "");
    check(&server, &["apply", "-f", "-"], Some(&first), &["created"]);
    let sidecar = "      - {name: side, image: busybox}\n";
    let second = deploy(
        "{name: A, value: a}, {name: B, value: b}, {name: C, value: $(B)-c}",
        sidecar,
    );
    check(
        &server,
        &["apply", "-f", "-"],
        Some(&second),
        &["configured"],
    );
    let names = "jsonpath={.spec.template.spec.containers[*].name} {.spec.template.spec.containers[1].env[*].name}";
    check(
        &server,
        &["get", "deployment", "ordered", "-o", names],
        None,
        &["side main A B C"],
    );
    // Dry runs on the server's side write nothing: a delete (kubectl sends `dryRun`
    // in the DeleteOptions of its body), the query's form, a namespace's delete and a
    // prune. They once deleted for real.
    check(
        &server,
        &["delete", "configmap", "extra", "--dry-run=server"],
        None,
        &["configmap \"extra\" deleted (server dry run)"],
    );
    let raw = "/api/v1/namespaces/default/configmaps/extra?dryRun=All";
    check(
        &server,
        &["delete", "--raw", raw],
        None,
        &["\"name\":\"extra\""],
    );
    check(
        &server,
        &["create", "namespace", "kept"],
        None,
        &["created"],
    );
    check(
        &server,
        &["delete", "namespace", "kept", "--dry-run=server"],
        None,
        &["namespace \"kept\" deleted (server dry run)"],
    );
    check(&server, &["get", "configmap", "extra"], None, &["extra"]);
    check(&server, &["get", "namespace", "kept"], None, &["kept"]);
    let bad = "/api/v1/namespaces/default/configmaps/extra?dryRun=Some";
    let out = support::cli::output(
        server.kubectl_command().args(["delete", "--raw", bad]),
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("BadRequest"), "{err}");
    check(&server, &["get", "configmap", "extra"], None, &["extra"]);
    // prune: the object the file no longer has goes (after a dry run of it).
    let only_settings = APP.split("---").next().unwrap().to_string();
    std::fs::write(&file, only_settings).unwrap();
    check(
        &server,
        &[
            "apply",
            "--prune",
            "-l",
            "app=shop",
            "-f",
            &f,
            "--dry-run=server",
        ],
        None,
        &["configmap/extra pruned (server dry run)"],
    );
    check(&server, &["get", "configmap", "extra"], None, &["extra"]);
    check(
        &server,
        &["apply", "--prune", "-l", "app=shop", "-f", &f],
        None,
        &["configmap/settings configured", "configmap/extra pruned"],
    );
    // wait: for a jsonpath value, and for a deletion.
    check(
        &server,
        &[
            "wait",
            "--for=jsonpath={.data.mode}=fast",
            "configmap/settings",
            "--timeout=20s",
        ],
        None,
        &["condition met"],
    );
    let mut waiting = server
        .kubectl_command()
        .args([
            "wait",
            "--for=delete",
            "configmap/settings",
            "--timeout=30s",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    check(
        &server,
        &["delete", "configmap", "settings"],
        None,
        &["deleted"],
    );
    assert!(waiting.wait().unwrap().success());
    // Events sorted by time, as `kubectl get events --sort-by` orders them.
    for (name, at) in [
        ("late", "2026-12-03T06:00:00Z"),
        ("early", "2026-12-03T05:00:00Z"),
    ] {
        let event = format!(
            "apiVersion: v1\nkind: Event\nmetadata: {{name: {name}}}\ninvolvedObject: {{kind: Pod, name: {name}, namespace: default}}\nreason: Started\nmessage: {name}\ntype: Normal\nlastTimestamp: \"{at}\"\nfirstTimestamp: \"{at}\"\n"
        );
        check(&server, &["apply", "-f", "-"], Some(&event), &["created"]);
    }
    let out = support::cli::output(
        server
            .kubectl_command()
            .args(["get", "events", "--sort-by=.lastTimestamp", "-o", "name"]),
        None,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["event/early", "event/late"],
        "{text}"
    );
    // `kubectl events --watch` watches in protobuf, decoding frames as client-go does:
    // it keeps watching and shows an event made after it started (it stopped at once
    // when each frame had the envelope of a body).
    let mut watching = server
        .kubectl_command()
        .args(["events", "--watch"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let event = "apiVersion: v1\nkind: Event\nmetadata: {name: later}\ninvolvedObject: {kind: Pod, name: later, namespace: default}\nreason: Pulled\nmessage: made while watched\ntype: Normal\n";
    check(&server, &["apply", "-f", "-"], Some(event), &["created"]);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let still = watching.try_wait().unwrap();
    let _ = watching.kill();
    let out = watching.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(still.is_none(), "kubectl events --watch ended: {text}");
    assert!(text.contains("made while watched"), "{text}");
}

/// A `List` kubectl validates on its side: its kind has no operation in the v3
/// documents, so kubectl falls back to the v2 schema, which it reads only as protobuf.
const POD_LIST: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: checked}
  spec:
    containers: [{name: app, image: busybox:1.36, bogusField: 1}]
"#;

#[test]
fn kubectl_reads_openapi_v2_as_protobuf_for_explain_and_client_side_validation() {
    let server = Server::start(API_ONLY);
    check(
        &server,
        &[
            "explain",
            "pods.spec.containers",
            "--output=plaintext-openapiv2",
        ],
        None,
        &[
            "KIND:     Pod",
            "RESOURCE: containers <[]Object>",
            "List of containers belonging to the pod.",
            "image\t<string>",
            "name\t<string> -required-",
            "ports\t<[]Object>",
        ],
    );
    // Refused by kubectl before anything is sent, as against kube-apiserver.
    let out = support::cli::output(
        server
            .kubectl_command()
            .args(["create", "--validate=true", "-f", "-"]),
        Some(POD_LIST),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(
            "ValidationError(Pod.spec.containers[0]): unknown field \"bogusField\" in io.k8s.api.core.v1.Container"
        ),
        "{err}"
    );
    check(
        &server,
        &["create", "--validate=true", "-f", "-"],
        Some(&POD_LIST.replace(", bogusField: 1", "")),
        &["pod/checked created"],
    );
    // Custom kinds are in the same document.
    define(&server, CRONTAB_CRD, "crontabs.stable.example.com");
    check(
        &server,
        &["explain", "crontab.spec", "--output=plaintext-openapiv2"],
        None,
        &[
            "KIND:     CronTab",
            "cronSpec\t<string> -required-",
            "The schedule in cron format.",
        ],
    );
    check(
        &server,
        &[
            "explain",
            "crontab.metadata",
            "--output=plaintext-openapiv2",
        ],
        None,
        &["RESOURCE: metadata <Object>", "creationTimestamp\t<string>"],
    );
    let crontabs = r#"
apiVersion: v1
kind: List
items:
- apiVersion: stable.example.com/v1
  kind: CronTab
  metadata: {name: typed}
  spec: {cronSpec: "0 3 * * *", replicas: three}
"#;
    let out = support::cli::output(
        server
            .kubectl_command()
            .args(["create", "--validate=true", "-f", "-"]),
        Some(crontabs),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ValidationError(CronTab.spec.replicas): invalid type for com.example.stable.v1.CronTab.spec.replicas: got \"string\", expected \"integer\""),
        "{err}"
    );
}

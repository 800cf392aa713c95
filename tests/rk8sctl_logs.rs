//! `rk8sctl logs` as a table against a real server and a real node, each row compared
//! with what kubectl prints for the same arguments (standard output and standard
//! error): a workload's logs (`deploy/NAME`), the default container announced, one
//! container (`-c`), the previous instance of a restarted container (`--previous`),
//! every container (`--all-containers`), every pod of a selector (`-l`) with
//! `--prefix`, and the server's errors for a container that never restarted and one
//! that does not exist.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, PostParams};
use support::apiserver::Server;
use support::images::busybox;
use support::node::{eventually_within, real_node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_workloads_containers_and_restarts_print_what_kubectl_prints() {
    let busybox = busybox();
    let server = Server::start(&[]);
    let _node = real_node(&server, "logs", 41).await;
    let client = server.client().await;
    // Two containers; the second fails once (it leaves a mark in a shared volume),
    // then runs: its previous instance said "once", the current one "again".
    let talk: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "talk"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "talk"}},
            "template": {"metadata": {"labels": {"app": "talk"}},
                "spec": {"terminationGracePeriodSeconds": 1,
                    "volumes": [{"name": "marks", "emptyDir": {}}],
                    "containers": [
                        {"name": "first", "image": busybox,
                         "command": ["sh", "-c", "echo first says hi; exec sleep 3600"]},
                        {"name": "second", "image": busybox,
                         "volumeMounts": [{"name": "marks", "mountPath": "/marks"}],
                         "command": ["sh", "-c",
                            "if [ -e /marks/ran ]; then echo second again; exec sleep 3600; fi; touch /marks/ran; echo second once; exit 1"]},
                    ]}},
        },
    }))
    .unwrap();
    Api::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &talk)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = eventually_within(
        "the pod Ready after its second container restarted once",
        std::time::Duration::from_secs(90),
        async || {
            let pod = pods
                .list(&ListParams::default().labels("app=talk"))
                .await
                .ok()?
                .items
                .pop()?;
            let status = pod.status.as_ref()?;
            let ready = status
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let restarted = status
                .container_statuses
                .as_ref()?
                .iter()
                .any(|c| c.name == "second" && c.restart_count == 1);
            (ready && restarted).then_some(pod)
        },
    )
    .await;
    let name = pod.metadata.name.unwrap();
    let defaulted = "Defaulted container \"first\" out of: first, second\n";
    // Arguments, standard output, standard error (`None`: a failure, whose message
    // must be kubectl's).
    let table: Vec<(Vec<&str>, String, Option<String>)> = vec![
        (
            vec!["logs", "deploy/talk"],
            "first says hi\n".into(),
            Some(defaulted.into()),
        ),
        (
            vec!["logs", "deploy/talk", "-c", "second"],
            "second again\n".into(),
            Some(String::new()),
        ),
        (
            vec!["logs", &name, "-c", "second", "--previous"],
            "second once\n".into(),
            Some(String::new()),
        ),
        (
            vec!["logs", "deployment/talk", "--all-containers"],
            "first says hi\nsecond again\n".into(),
            Some(String::new()),
        ),
        (
            vec!["logs", "-l", "app=talk", "--all-containers", "--prefix"],
            format!("[pod/{name}/first] first says hi\n[pod/{name}/second] second again\n"),
            Some(String::new()),
        ),
        (
            vec!["logs", &name, "-c", "first", "--previous"],
            String::new(),
            None,
        ),
        (vec!["logs", &name, "-c", "nope"], String::new(), None),
    ];
    for (args, stdout, stderr) in table {
        let ours = server.rk8sctl(&args);
        let theirs = server.kubectl_command().args(&args).output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        assert_eq!(
            ours.status.success(),
            stderr.is_some(),
            "rk8sctl {args:?}: {ours:?}"
        );
        assert_eq!(
            theirs.status.success(),
            stderr.is_some(),
            "kubectl {args:?}: {theirs:?}"
        );
        assert_eq!(text(&ours.stdout), stdout, "rk8sctl {args:?}");
        // kubectl reads the logs of several pods or containers in a map's order
        // (random): the same lines, in any order.
        let sorted = |t: &str| {
            let mut lines: Vec<String> = t.lines().map(str::to_string).collect();
            lines.sort();
            lines
        };
        assert_eq!(
            sorted(&text(&theirs.stdout)),
            sorted(&stdout),
            "kubectl {args:?}"
        );
        if let Some(stderr) = stderr {
            assert_eq!(text(&ours.stderr), stderr, "rk8sctl {args:?}");
        }
        assert_eq!(
            text(&ours.stderr),
            text(&theirs.stderr),
            "rk8sctl and kubectl {args:?}"
        );
    }
}

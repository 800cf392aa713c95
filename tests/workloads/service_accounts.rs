//! A pod that talks to the API as its ServiceAccount: Debian's kubectl in a container
//! finds the API through the `kubernetes` Service's environment variables, proves
//! itself with the projected token, trusts the server through the projected CA, and
//! can do what a RoleBinding gives its account and nothing else.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use crate::support::apiserver::Server;
use crate::support::images::kubectl;
use crate::support::netns::NodeNetwork;
use crate::support::node::{eventually_within, real_node_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_in_a_pod_uses_its_service_account() {
    let image = kubectl();
    // Declared first, dropped last: nodes are reset inside their namespaces first.
    let mut net = NodeNetwork::new();
    let host = net.host_ip();
    let server = Server::start(&["--address", &host]);
    let netns = net.add_node(1);
    let _node = real_node_in(&server, "sa", 71, Some(netns), &[]).await;
    for args in [
        &["create", "serviceaccount", "reader"][..],
        &[
            "create",
            "role",
            "pod-reader",
            "--verb=get,list",
            "--resource=pods",
        ],
        &[
            "create",
            "rolebinding",
            "reader",
            "--role=pod-reader",
            "--serviceaccount=default:reader",
        ],
    ] {
        let (ok, out) = server.kubectl(args);
        assert!(ok, "{out}");
    }
    let script = "kubectl get pods -o name; echo ---; kubectl get secrets 2>&1; echo ---; \
        cat /var/run/secrets/kubernetes.io/serviceaccount/namespace; echo; \
        echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT; echo done; sleep 3600";
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "client"},
        "spec": {"serviceAccountName": "reader", "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "kubectl", "image": image,
                "command": ["sh", "-c", script]}]},
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(server.client().await, "default");
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let logs = eventually_within(
        "kubectl's output",
        std::time::Duration::from_secs(120),
        async || {
            let logs = pods.logs("client", &Default::default()).await.ok()?;
            logs.contains("done").then_some(logs)
        },
    )
    .await;
    let parts: Vec<&str> = logs.split("---\n").collect();
    assert_eq!(parts[0], "pod/client\n", "{logs}");
    assert!(
        parts[1].contains(
            "secrets is forbidden: User \"system:serviceaccount:default:reader\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\""
        ),
        "{logs}"
    );
    assert_eq!(parts[2], "default\n10.96.0.1:443\ndone\n", "{logs}");
}

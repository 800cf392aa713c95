//! What a security probe found, against real `rk8s-server` processes: a node's serving
//! certificate does not pass for the API server (kubectl refuses it), the API server
//! does not dial where a node points it (its own port, loopback, link-local) and
//! answers every failed dial alike, NodeRestriction (labels, taints, podCIDR) and the
//! node's reads (its pods', and only the Secrets and ConfigMaps they use), a used bootstrap token refused at once, the `Bearer` scheme in any
//! case.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::apiserver::Server;

const API_ONLY: &[&str] = &["--disable-scheduler", "--disable-controllers"];

/// `METHOD PATH` with `token` (or none) and a JSON body: the status code and the body.
async fn call(
    server: &Server,
    token: Option<&str>,
    method: http::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = server.client_with_token(token).await;
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.map(|b| b.to_string().into_bytes()).unwrap_or_default())
        .unwrap();
    match client.request_text(request).await {
        Ok(text) => (200, serde_json::from_str(&text).unwrap_or(Value::Null)),
        Err(kube::Error::Api(s)) => (s.code, json!({"message": s.message})),
        Err(other) => panic!("{other}"),
    }
}

fn code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("not an API error: {other}"),
    }
}

fn message(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message,
        other => panic!("not an API error: {other}"),
    }
}

/// Serves `cert`/`key` over TLS on a loopback port (answering nothing) until the
/// returned task is dropped.
async fn tls_server(cert: &str, key: &str) -> (u16, tokio::task::JoinHandle<()>) {
    let tls = rk8s_http::tls::server_config(cert, key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    use tokio::io::AsyncReadExt;
                    let mut buf = [0u8; 1024];
                    let _ = tls.read(&mut buf).await;
                }
            });
        }
    });
    (port, task)
}

/// A serving certificate for `node` with its credential: (status, certificate, key).
async fn serving_cert(server: &Server, token: &str, addresses: &[&str]) -> (u16, Value) {
    let path = "/rk8s/v1/serving-cert";
    let body = json!({ "addresses": addresses });
    call(server, Some(token), http::Method::POST, path, Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_certificate_does_not_pass_for_the_api_server() {
    let server = Server::start(API_ONLY);
    let token = server.node_token("n1");
    // Loopback is no address of a node's for others to reach.
    let (status, body) = serving_cert(&server, &token, &["127.0.0.1"]).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("127.0.0.1"),
        "{body}"
    );
    let (status, cert) = serving_cert(&server, &token, &["10.99.0.5"]).await;
    assert_eq!(status, 200, "{cert}");
    // Served on a port of this host, kubectl with the admin kubeconfig refuses it and
    // sends nothing: the kubeconfig trusts the cluster CA, which signs no node's
    // certificate.
    let (port, task) = tls_server(
        cert["cert"].as_str().unwrap(),
        cert["key"].as_str().unwrap(),
    )
    .await;
    let kubeconfig = server.kubeconfig().display().to_string();
    let url = format!("https://127.0.0.1:{port}");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("kubectl")
            .args(["--kubeconfig", &kubeconfig, "--server", &url])
            // The name the certificate does carry: what is left to refuse is the CA.
            .args(["--tls-server-name", "n1"])
            .args(["--request-timeout", "10s", "get", "ns"])
            .output()
            .expect("kubectl is installed by scripts/setup.sh")
    })
    .await
    .unwrap();
    task.abort();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "kubectl accepted a node certificate");
    assert!(
        err.contains("certificate signed by unknown authority"),
        "{err}"
    );
    // Only node credentials get one.
    let admin = std::fs::read_to_string(server.data_dir().join("pki/admin.token")).unwrap();
    let (status, _) = serving_cert(&server, admin.trim(), &["10.99.0.5"]).await;
    assert_eq!(status, 403);
}

/// A node `name` of `server` reporting `ip:port` as where it is served.
async fn point_node(nodes: &Api<Node>, name: &str, ip: &str, port: u16) {
    let status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": ip}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

/// `GET /api/v1/nodes/NODE/proxy/healthz` as the admin: the error's code and message.
async fn proxied(admin: &kube::Client, node: &str) -> (u16, String) {
    let request = http::Request::get(format!("/api/v1/nodes/{node}/proxy/healthz"))
        .body(Vec::new())
        .unwrap();
    match admin.request_text(request).await {
        Ok(text) => (200, text),
        Err(kube::Error::Api(s)) => (s.code, s.message),
        Err(other) => panic!("not an API error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_does_not_dial_where_a_node_points_it() {
    // A server listening on every address: loopback is not a node's address then.
    let wide = Server::start(&[
        "--disable-scheduler",
        "--disable-controllers",
        "--address",
        "0.0.0.0",
    ]);
    let admin = wide.client().await;
    let n1 = wide.client_with_token(Some(&wide.node_token("n1"))).await;
    let nodes: Api<Node> = Api::all(n1);
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    for (ip, port, why) in [
        ("127.0.0.1", wide.port, "own port"),
        ("10.1.2.3", wide.port, "own port"),
        ("127.0.0.1", 10250, "loopback"),
        ("169.254.169.254", 80, "link-local"),
        ("0.0.0.0", 10250, "not an address"),
    ] {
        point_node(&nodes, "n1", ip, port).await;
        let (status, msg) = proxied(&admin, "n1").await;
        assert_eq!(status, 500, "{ip}:{port}: {msg}");
        assert!(msg.contains(why) && msg.contains("not dialed"), "{msg}");
    }

    // A one-host server (on loopback) dials loopback nodes, but only a node that
    // proves it is that node; a closed port, another TLS server and another node's
    // certificate all get the same answer, so the proxy is no port scanner.
    let server = Server::start(API_ONLY);
    let admin = server.client().await;
    let n1_token = server.node_token("n1");
    let nodes: Api<Node> = Api::all(server.client_with_token(Some(&n1_token)).await);
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let n2_token = server.node_token("n2");
    let (_, n2_cert) = serving_cert(&server, &n2_token, &[]).await;
    let (n2_port, n2_task) = tls_server(
        n2_cert["cert"].as_str().unwrap(),
        n2_cert["key"].as_str().unwrap(),
    )
    .await;
    // The API server's own certificate, on another port.
    let apiserver_cert = std::fs::read_to_string(server.data_dir().join("pki/apiserver.crt"));
    let apiserver_key = std::fs::read_to_string(server.data_dir().join("pki/apiserver.key"));
    let (api_port, api_task) = tls_server(&apiserver_cert.unwrap(), &apiserver_key.unwrap()).await;
    let closed = support::apiserver::free_port();
    let mut answers = Vec::new();
    for port in [closed, n2_port, api_port] {
        point_node(&nodes, "n1", "127.0.0.1", port).await;
        let (status, msg) = proxied(&admin, "n1").await;
        assert_eq!(status, 500, "port {port}: {msg}");
        assert!(!msg.contains(&port.to_string()), "{msg}");
        answers.push(msg);
    }
    n2_task.abort();
    api_task.abort();
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:#?}");
    assert!(
        answers[0].contains("error dialing backend: node \"n1\" could not be reached"),
        "{}",
        answers[0]
    );
    // Logs of a pod on that node go the same way.
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
        "spec": {"nodeName": "n1", "containers": [{"name": "a", "image": "x"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let e = pods.logs("p", &Default::default()).await.unwrap_err();
    assert_eq!(message(e), answers[0]);
    // The server is alive.
    assert_eq!(
        call(&server, None, http::Method::GET, "/healthz", None)
            .await
            .0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_cannot_relabel_untaint_or_move_themselves_nor_read_other_nodes_pods() {
    let server = Server::start(API_ONLY);
    let admin = server.client().await;
    let n1 = server
        .client_with_token(Some(&server.node_token("n1")))
        .await;
    let as_n1: Api<Node> = Api::all(n1.clone());
    let as_admin: Api<Node> = Api::all(admin.clone());
    let pp = PostParams::default();
    // Registering with a restricted label is refused; with taints and kubelet's
    // labels it is not.
    let with = |labels: Value| -> Node {
        serde_json::from_value(json!({"metadata": {"name": "n1", "labels": labels},
            "spec": {"podCIDR": "10.244.7.0/24", "podCIDRs": ["10.244.7.0/24"],
                     "taints": [{"key": "own", "effect": "NoSchedule"}]}}))
        .unwrap()
    };
    let e = as_n1
        .create(
            &pp,
            &with(json!({"node-role.kubernetes.io/control-plane": ""})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        message(e),
        "nodes \"n1\" is forbidden: node \"n1\" is not allowed to set the following labels: node-role.kubernetes.io/control-plane"
    );
    as_n1
        .create(
            &pp,
            &with(json!({"kubernetes.io/hostname": "n1", "team": "a"})),
        )
        .await
        .unwrap();
    // The admin restricts it.
    let restrict = json!({"metadata": {"labels": {"node-restriction.kubernetes.io/secure": "true"}},
        "spec": {"taints": [{"key": "own", "effect": "NoSchedule"},
                            {"key": "quarantine", "effect": "NoExecute"}]}});
    as_admin
        .patch("n1", &PatchParams::default(), &Patch::Merge(&restrict))
        .await
        .unwrap();
    let patch = |p: Value| {
        let nodes = as_n1.clone();
        async move {
            nodes
                .patch("n1", &PatchParams::default(), &Patch::Merge(&p))
                .await
        }
    };
    let e = patch(json!({"spec": {"taints": [{"key": "own", "effect": "NoSchedule"}]}}))
        .await
        .unwrap_err();
    assert_eq!(
        message(e),
        "nodes \"n1\" is forbidden: node \"n1\" is not allowed to modify taints"
    );
    for labels in [
        json!({"node-restriction.kubernetes.io/secure": null}),
        json!({"node-role.kubernetes.io/control-plane": ""}),
    ] {
        let e = patch(json!({"metadata": {"labels": labels}}))
            .await
            .unwrap_err();
        assert_eq!(code(e), 403, "{labels}");
    }
    // Its own kind of labels it may change.
    let n = patch(json!({"metadata": {"labels": {"team": "b", "node.kubernetes.io/x": "y"}}}))
        .await
        .unwrap();
    assert_eq!(n.metadata.labels.unwrap()["team"], "b");
    // The podCIDR does not move, not even by the admin.
    let moved = json!({"spec": {"podCIDR": "10.244.8.0/24", "podCIDRs": ["10.244.8.0/24"]}});
    let e = as_admin
        .patch("n1", &PatchParams::default(), &Patch::Merge(&moved))
        .await
        .unwrap_err();
    assert_eq!(code(e), 422);

    // Reads: its own pods with the selector, not other nodes' pods.
    let pods: Api<Pod> = Api::namespaced(admin, "default");
    for (name, node) in [("on-n1", "n1"), ("on-n2", "n2")] {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "a", "image": "x"}]}}))
        .unwrap();
        pods.create(&pp, &pod).await.unwrap();
    }
    let n1_pods: Api<Pod> = Api::all(n1.clone());
    let e = n1_pods.list(&ListParams::default()).await.unwrap_err();
    assert!(message(e).ends_with("can only list/watch pods with spec.nodeName field selector"));
    let own = n1_pods
        .list(&ListParams::default().fields("spec.nodeName=n1"))
        .await
        .unwrap();
    assert_eq!(own.items.len(), 1);
    let n1_default: Api<Pod> = Api::namespaced(n1.clone(), "default");
    n1_default.get("on-n1").await.unwrap();
    assert_eq!(code(n1_default.get("on-n2").await.unwrap_err()), 403);
    assert_eq!(code(n1_default.get("nowhere").await.unwrap_err()), 403);
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::all(n1);
    assert_eq!(
        code(deployments.list(&ListParams::default()).await.unwrap_err()),
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reads_only_the_secrets_and_config_maps_of_pods_bound_to_it() {
    let server = Server::start(API_ONLY);
    let admin = server.client().await;
    let n1 = server
        .client_with_token(Some(&server.node_token("n1")))
        .await;
    let pp = PostParams::default();
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "default");
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), "default");
    for name in ["pull", "env", "elsewhere", "unused"] {
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": name}, "stringData": {"k": name}}))
                .unwrap();
        secrets.create(&pp, &secret).await.unwrap();
    }
    for name in ["settings", "other"] {
        let map: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": name}}))
                .unwrap();
        config_maps.create(&pp, &map).await.unwrap();
    }
    let pods: Api<Pod> = Api::namespaced(admin, "default");
    let on_n1: Pod = serde_json::from_value(json!({"metadata": {"name": "uses"},
        "spec": {"nodeName": "n1", "imagePullSecrets": [{"name": "pull"}, {"name": "missing"}],
                 "volumes": [{"name": "s", "configMap": {"name": "settings"}}],
                 "containers": [{"name": "a", "image": "x",
                     "envFrom": [{"secretRef": {"name": "env"}}]}]}}))
    .unwrap();
    let on_n2: Pod = serde_json::from_value(json!({"metadata": {"name": "there"},
        "spec": {"nodeName": "n2", "imagePullSecrets": [{"name": "elsewhere"}],
                 "containers": [{"name": "a", "image": "x"}]}}))
    .unwrap();
    pods.create(&pp, &on_n1).await.unwrap();
    pods.create(&pp, &on_n2).await.unwrap();
    let n1_secrets: Api<Secret> = Api::namespaced(n1.clone(), "default");
    let n1_maps: Api<ConfigMap> = Api::namespaced(n1.clone(), "default");
    for name in ["pull", "env"] {
        let read = n1_secrets.get(name).await.unwrap();
        assert_eq!(read.data.unwrap()["k"].0, name.as_bytes());
    }
    n1_maps.get("settings").await.unwrap();
    // Used but absent: its node learns that much.
    assert_eq!(code(n1_secrets.get("missing").await.unwrap_err()), 404);
    // Another node's pod's, nobody's, and the lists: refused.
    let e = n1_secrets.get("elsewhere").await.unwrap_err();
    assert_eq!(
        message(e),
        "secrets \"elsewhere\" is forbidden: User \"system:node:n1\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\": no relationship found between node 'n1' and this object"
    );
    assert_eq!(code(n1_secrets.get("unused").await.unwrap_err()), 403);
    assert_eq!(code(n1_maps.get("other").await.unwrap_err()), 403);
    assert_eq!(
        code(n1_secrets.list(&ListParams::default()).await.unwrap_err()),
        403
    );
    // Once the pod is gone, so is the node's access.
    pods.delete("uses", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert!(pods.get_opt("uses").await.unwrap().is_none());
    assert_eq!(code(n1_secrets.get("pull").await.unwrap_err()), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_bootstrap_token_is_refused_at_once_and_the_scheme_is_case_insensitive() {
    let server = Server::start(API_ONLY);
    // Reusable until it expires by default: two nodes join with one token.
    let (reusable, _) = support::node::bootstrap_token(&server);
    for name in ["r1", "r2"] {
        let (status, body) = call(
            &server,
            Some(&reusable),
            http::Method::POST,
            "/rk8s/v1/join",
            Some(json!({ "nodeName": name })),
        )
        .await;
        assert_eq!(status, 200, "{name}: {body}");
    }
    let (token, _) = support::node::bootstrap_token_with(&server, &["--usage-limit", "1"]);
    let list_pods = || {
        call(
            &server,
            Some(&token),
            http::Method::GET,
            "/api/v1/pods",
            None,
        )
    };
    // Authenticated (and remembered, were it cached), but not allowed.
    let (status, _) = list_pods().await;
    assert_eq!(status, 403);
    let join = |name: &'static str| {
        call(
            &server,
            Some(&token),
            http::Method::POST,
            "/rk8s/v1/join",
            Some(json!({ "nodeName": name })),
        )
    };
    // A node is verified by its name as a DNS name: no IP addresses for names.
    let (status, body) = join("10.0.0.5").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("must not be an IP address"),
        "{body}"
    );
    let (status, body) = join("j1").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = list_pods().await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("already used"),
        "{body}"
    );

    // `bearer` as well as `Bearer`.
    let admin = std::fs::read_to_string(server.data_dir().join("pki/admin.token")).unwrap();
    let client = server.client_with_token(None).await;
    for scheme in ["bearer", "BEARER"] {
        let request = http::Request::get("/api/v1/namespaces")
            .header(
                http::header::AUTHORIZATION,
                format!("{scheme} {}", admin.trim()),
            )
            .body(Vec::new())
            .unwrap();
        client.request_text(request).await.unwrap();
    }
}

/// A TokenRequest through the API as `token` (the admin's when `None`): the status
/// code and the answer.
async fn request_token(
    server: &Server,
    token: Option<&str>,
    account: &str,
    spec: Value,
) -> (u16, Value) {
    let client = match token {
        Some(t) => server.client_with_token(Some(t)).await,
        None => server.client().await,
    };
    let body =
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec});
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!(
            "/api/v1/namespaces/default/serviceaccounts/{account}/token"
        ))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.to_string().into_bytes())
        .unwrap();
    match client.request_text(request).await {
        Ok(text) => (200, serde_json::from_str(&text).unwrap()),
        Err(kube::Error::Api(s)) => (s.code, json!({"message": s.message})),
        Err(other) => panic!("{other}"),
    }
}

/// `GET` of the default namespace's pods with `token`: the status code and body.
async fn list_pods(server: &Server, token: &str) -> (u16, Value) {
    call(
        server,
        Some(token),
        http::Method::GET,
        "/api/v1/namespaces/default/pods",
        None,
    )
    .await
}

#[tokio::test]
async fn service_account_tokens_authenticate_until_their_pod_goes_and_rbac_decides() {
    let server = Server::start(API_ONLY);
    let admin = server.client().await;
    // The default account and the CA ConfigMap come with the namespace.
    support::node::eventually("the default ServiceAccount", async || {
        let (ok, out) = server.kubectl(&["get", "serviceaccount", "default", "-o", "name"]);
        (ok && out.trim() == "serviceaccount/default").then_some(())
    })
    .await;
    let maps: Api<ConfigMap> = Api::namespaced(admin.clone(), "kube-system");
    let root = support::node::eventually("kube-root-ca.crt", async || {
        maps.get_opt("kube-root-ca.crt").await.ok()?
    })
    .await;
    let ca = std::fs::read_to_string(server.data_dir().join("pki/ca.crt")).unwrap();
    assert_eq!(root.data.unwrap()["ca.crt"], ca);

    // A pod gets the account's token volume; a pod naming a missing account is refused.
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"containers": [{"name": "c", "image": "x"}]}}))
    .unwrap();
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    let spec = pod.spec.clone().unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("default"));
    let mount = &spec.containers[0].volume_mounts.as_ref().unwrap()[0];
    assert_eq!(
        mount.mount_path,
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );
    assert!(mount.name.starts_with("kube-api-access-"));
    let ghost: Pod = serde_json::from_value(json!({"metadata": {"name": "ghost"},
        "spec": {"serviceAccountName": "ghost", "containers": [{"name": "c", "image": "x"}]}}))
    .unwrap();
    let refused = pods
        .create(&PostParams::default(), &ghost)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains(
            "pods \"ghost\" is forbidden: error looking up service account default/ghost: serviceaccount \"ghost\" not found"
        ),
        "{refused}"
    );

    // A token bound to the pod: it is the account, which may do nothing yet.
    let uid = pod.metadata.uid.clone().unwrap();
    let bound =
        json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": uid}});
    let (code, answer) = request_token(&server, None, "default", bound.clone()).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["spec"]["expirationSeconds"], 3600);
    assert_eq!(
        answer["spec"]["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    let jwt = answer["status"]["token"].as_str().unwrap().to_string();
    let (code, body) = list_pods(&server, &jwt).await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "pods is forbidden: User \"system:serviceaccount:default:default\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    // A Role bound to the account lets it read pods, and only that.
    for args in [
        &[
            "create",
            "role",
            "pod-reader",
            "--verb=get,list",
            "--resource=pods",
        ][..],
        &[
            "create",
            "rolebinding",
            "reads",
            "--role=pod-reader",
            "--serviceaccount=default:default",
        ],
    ] {
        let (ok, out) = server.kubectl(args);
        assert!(ok, "{out}");
    }
    // (Read from the server's copy of roles and bindings, a watch behind the store.)
    let body = support::node::eventually("the RoleBinding in effect", async || {
        let (code, body) = list_pods(&server, &jwt).await;
        (code == 200).then_some(body)
    })
    .await;
    assert_eq!(body["items"][0]["metadata"]["name"], "web");
    let (code, _) = call(
        &server,
        Some(&jwt),
        http::Method::DELETE,
        "/api/v1/namespaces/default/pods/web",
        None,
    )
    .await;
    assert_eq!(code, 403);

    // Requests the TokenRequest API refuses, in Kubernetes' words.
    let (code, body) =
        request_token(&server, None, "default", json!({"expirationSeconds": 60})).await;
    assert_eq!(code, 422);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .ends_with("spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"),
        "{body}"
    );
    let stale = json!({"boundObjectRef": {"kind": "Pod", "name": "web", "uid": "not-its-uid"}});
    assert_eq!(request_token(&server, None, "default", stale).await.0, 409);
    let (code, _) = request_token(&server, None, "nobody", json!({})).await;
    assert_eq!(code, 404);
    // The account's token may not mint tokens; a node only for pods bound to it.
    let (code, _) = request_token(&server, Some(&jwt), "default", json!({})).await;
    assert_eq!(code, 403);
    let node = server.node_token("n1");
    let (code, body) = request_token(&server, Some(&node), "default", bound).await;
    assert_eq!(code, 403);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("node requested token bound to a pod scheduled on a different node"),
        "{body}"
    );

    // A token for another audience does not pass here.
    let (_, vault) = request_token(&server, None, "default", json!({"audiences": ["vault"]})).await;
    let vault = vault["status"]["token"].as_str().unwrap().to_string();
    let (code, _) = list_pods(&server, &vault).await;
    assert_eq!(code, 401);

    // The pod deleted, its token stops working (authentication remembers a success
    // for up to 10 s).
    pods.delete("web", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    support::node::eventually("the bound token refused", async || {
        let (code, _) = list_pods(&server, &jwt).await;
        (code == 401).then_some(())
    })
    .await;
}

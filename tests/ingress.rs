//! The built-in Ingress proxy end to end: one `rk8s-server` and two real nodes, each
//! in its own network namespace on a host bridge, running real containers (busybox
//! httpd answering with the pod's name, a CGI that sleeps, an `nc` backend that
//! answers an upgrade and echoes). An Ingress created without a class gets `rk8s`;
//! two hosts and two paths reach pods on both nodes through each node's port 80;
//! TLS on 443 serves each host's certificate by SNI from its Secret (checked with
//! the test's own rustls client) and the fake default one otherwise; an upgrade is
//! joined both ways; a Service's endpoints change (its selector moved to another
//! Deployment) while a long request is under way: the new backend answers while the
//! long request still runs, which then completes; `status.loadBalancer` lists both
//! nodes (kubectl's ADDRESS); a node reads the TLS Secrets served Ingresses of the
//! Secret's namespace name, and no other (an Opaque one, one only another class's
//! Ingress names, one only an Ingress of another namespace names). Traffic stays in
//! these namespaces and the test's bridge; everything is removed afterwards, also
//! when the test fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use support::images::busybox;
use support::netns::NodeNetwork;
use support::node::{eventually, two_nodes_in_namespaces};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A web server on 8080: `/` and `/api/` are the pod's name, `/cgi-bin/slow` the
/// same after 8 s.
const HTTPD: &str = "mkdir -p /www/cgi-bin /www/api && hostname > /www/index.html \
    && hostname > /www/api/index.html \
    && printf '#!/bin/sh\\nsleep 8\\necho Content-Type: text/plain\\necho\\nhostname\\n' > /www/cgi-bin/slow \
    && chmod +x /www/cgi-bin/slow && exec httpd -f -p 8080 -h /www";

/// On 8081, an upgrade answered 101, then everything echoed.
const ECHO: &str = r#"cat > /ws.sh <<'SCRIPT'
#!/bin/sh
while read -r l; do
  l=$(printf '%s' "$l" | tr -d '\r')
  [ -z "$l" ] && break
done
printf 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'
exec cat
SCRIPT
chmod +x /ws.sh && exec nc -ll -p 8081 -e /ws.sh"#;

fn deployment(name: &str, replicas: i32, script: &str, port: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": name}}}],
                "containers": [{"name": "c", "image": busybox(), "command": ["sh", "-c", script],
                    "ports": [{"name": "http", "containerPort": port}],
                    "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1}}]
            }}
        }
    }))
    .unwrap()
}

fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .unwrap()
}

/// A `kubernetes.io/tls` Secret for `host`, and its certificate (DER).
fn tls_secret(name: &str, host: &str) -> (Secret, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![host.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(
            [
                ("tls.crt".to_string(), ByteString(cert.pem().into_bytes())),
                (
                    "tls.key".to_string(),
                    ByteString(key.serialize_pem().into_bytes()),
                ),
            ]
            .into(),
        ),
        ..Default::default()
    };
    (secret, cert.der().to_vec())
}

/// One GET of `path` for `host` at `address` (HTTP/1.0: the body is not chunked):
/// the status line and the body.
fn get(address: &str, host: &str, path: &str) -> Option<(String, String)> {
    let mut stream =
        std::net::TcpStream::connect_timeout(&address.parse().ok()?, Duration::from_secs(2))
            .ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.trim().to_string()))
}

/// The body of a 200 for `host` and `path` at `address` that starts with `prefix`,
/// once there is one (the last reply, if any, in the failure).
async fn answer(address: &str, host: &str, path: &str, prefix: &str) -> String {
    let mut last = None;
    for _ in 0..100 {
        match get(address, host, path) {
            Some((status, body)) if status.contains(" 200 ") && body.starts_with(prefix) => {
                return body;
            }
            other => last = other,
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("no {prefix}… from {host}{path} at {address}; the last reply: {last:?}");
}

/// Accepts any certificate and keeps the one it saw.
#[derive(Debug)]
struct Seen(Arc<Mutex<Vec<u8>>>, Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Seen {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        *self.0.lock().unwrap() = end_entity.to_vec();
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.1.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.1.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.1.signature_verification_algorithms.supported_schemes()
    }
}

/// The certificate served at `address` for the SNI name `sni`, and the body of a GET
/// of `/` for it over that connection.
async fn over_tls(address: &str, sni: &str) -> Option<(Vec<u8>, String)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Seen(seen.clone(), provider)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(address),
    )
    .await
    .ok()?
    .ok()?;
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).ok()?;
    let mut tls = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .ok()?
        .ok()?;
    let request = format!("GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.ok()?;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_string())
        .unwrap_or_default();
    let cert = seen.lock().unwrap().clone();
    Some((cert, body))
}

/// An upgrade asked of `ws.test` at `address`: what comes back of `ping`.
async fn upgraded_echo(address: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(address).await.ok()?;
    let request = "GET /chat HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    s.write_all(request.as_bytes()).await.ok()?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") && head.len() < 4096 {
        let mut byte = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut byte))
            .await
            .ok()?
            .ok()?;
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return None;
    }
    s.write_all(b"ping\n").await.ok()?;
    let mut echo = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut echo))
        .await
        .ok()?
        .ok()?;
    Some(String::from_utf8_lossy(&echo).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_routes_hosts_paths_tls_upgrades_and_changes() {
    // Declared first, dropped last: nodes are reset inside their namespaces first.
    let mut net = NodeNetwork::new();
    let host = net.host_ip();
    let server = support::apiserver::Server::start(&["--address", &host]);
    let admin = server.client().await;
    let (_agents, _namespaces) = two_nodes_in_namespaces(&server, &mut net, 70).await;
    let (ip_a, ip_b) = (net.node_ip(1), net.node_ip(2));
    let post = PostParams::default();
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), "default");
    let services: Api<Service> = Api::namespaced(admin.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "default");
    let ingresses: Api<Ingress> = Api::namespaced(admin.clone(), "default");

    for (name, script, port, replicas) in [
        ("web", HTTPD, 8080, 2),
        ("api", HTTPD, 8080, 2),
        ("ws", ECHO, 8081, 1),
    ] {
        deployments
            .create(&post, &deployment(name, replicas, script, port))
            .await
            .unwrap();
        services.create(&post, &service(name)).await.unwrap();
    }
    let (secret_a, der_a) = tls_secret("tls-a", "a.test");
    let (secret_b, der_b) = tls_secret("tls-b", "b.test");
    let (unnamed, _) = tls_secret("unnamed", "c.test");
    for s in [&secret_a, &secret_b, &unnamed] {
        secrets.create(&post, s).await.unwrap();
    }
    let path = |p: &str, svc: &str| {
        json!({"path": p, "pathType": "Prefix",
            "backend": {"service": {"name": svc, "port": {"number": 80}}}})
    };
    let rules = |a_backend: &str| {
        json!([
            {"host": "a.test", "http": {"paths": [path("/", a_backend)]}},
            {"host": "b.test", "http": {"paths": [path("/api", "api"), path("/", "web")]}},
            {"host": "ws.test", "http": {"paths": [path("/", "ws")]}}
        ])
    };
    let site: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "site", "annotations": {"nginx.ingress.kubernetes.io/ssl-redirect": "false"}},
        "spec": {
            "tls": [{"hosts": ["a.test"], "secretName": "tls-a"}, {"hosts": ["b.test"], "secretName": "tls-b"}],
            "rules": rules("web")
        }
    }))
    .unwrap();
    let created = ingresses.create(&post, &site).await.unwrap();
    // DefaultIngressClass admission.
    assert_eq!(
        created.spec.unwrap().ingress_class_name.as_deref(),
        Some("rk8s")
    );

    // Two hosts, two paths, through each node; both web pods are reached.
    let node_a = format!("{ip_a}:80");
    let node_b = format!("{ip_b}:80");
    let mut web_pods = std::collections::BTreeSet::new();
    for at in [&node_a, &node_b] {
        answer(at, "b.test", "/api/", "api-").await;
        answer(at, "b.test", "/", "web-").await;
        web_pods.insert(answer(at, "a.test", "/", "web-").await);
    }
    // The second web pod may become ready after the first answered: ask
    // again (bounded) until both have.
    for _ in 0..60 {
        if web_pods.len() == 2 {
            break;
        }
        web_pods.insert(answer(&node_a, "a.test", "/", "web-").await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(web_pods.len(), 2, "{web_pods:?}");
    let (status, body) = get(&node_a, "nowhere.test", "/").unwrap();
    assert!(status.contains(" 404 "), "{status} {body}");

    // TLS by SNI from the two Secrets; another name gets the fake default.
    let tls_at = format!("{ip_b}:443");
    for (sni, der) in [("a.test", &der_a), ("b.test", &der_b)] {
        let body = eventually(&format!("{sni}'s certificate"), async || {
            let (cert, body) = over_tls(&tls_at, sni).await?;
            (&cert == der).then_some(body)
        })
        .await;
        assert!(body.starts_with("web-"), "{body}");
    }
    let (fake, _) = over_tls(&format!("{ip_a}:443"), "other.test")
        .await
        .unwrap();
    assert!(fake != der_a && fake != der_b && !fake.is_empty());

    // An upgrade joined both ways.
    let echoed = eventually("the upgraded echo", async || upgraded_echo(&node_b).await).await;
    assert_eq!(echoed, "ping\n");

    // The load balancer status: both nodes; kubectl's ADDRESS.
    eventually("the ingress status", async || {
        let i = ingresses.get("site").await.ok()?;
        let ips: Vec<String> = i
            .status?
            .load_balancer?
            .ingress?
            .into_iter()
            .filter_map(|i| i.ip)
            .collect();
        (ips == [ip_a.clone(), ip_b.clone()]).then_some(())
    })
    .await;
    let out = server
        .kubectl_command()
        .args(["get", "ingress", "site"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(table.contains(&format!("{ip_a},{ip_b}")), "{table}");

    // The Service's endpoints change while a long request is under way: new requests
    // go to the new backend while it still runs; then it completes.
    let long_at = node_a.clone();
    let long = std::thread::spawn(move || get(&long_at, "a.test", "/cgi-bin/slow"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let moved = json!({"spec": {"selector": {"app": "api"}}});
    services
        .patch("web", &PatchParams::default(), &Patch::Merge(&moved))
        .await
        .unwrap();
    answer(&node_a, "a.test", "/", "api-").await;
    assert!(
        !long.is_finished(),
        "the long request ended before the new endpoints answered"
    );
    let (status, body) = long.join().unwrap().expect("the long request is answered");
    assert!(
        status.contains(" 200 ") && body.starts_with("web-"),
        "{status} {body}"
    );

    // A node reads the TLS Secrets served Ingresses of their namespace name, and no
    // other: not one no Ingress names, an Opaque one, one only an Ingress of another
    // class names, one only an Ingress of another namespace names.
    let mut opaque = tls_secret("opaque", "o.test").0;
    opaque.type_ = Some("Opaque".into());
    let (foreign, _) = tls_secret("tls-foreign", "f.test");
    let (elsewhere, _) = tls_secret("tls-elsewhere", "e.test");
    for s in [&opaque, &foreign, &elsewhere] {
        secrets.create(&post, s).await.unwrap();
    }
    let classes: Api<IngressClass> = Api::all(admin.clone());
    let other_class: IngressClass = serde_json::from_value(
        json!({"metadata": {"name": "other"}, "spec": {"controller": "example.com/other"}}),
    )
    .unwrap();
    classes.create(&post, &other_class).await.unwrap();
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let team: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    namespaces.create(&post, &team).await.unwrap();
    let naming = |name: &str, class: Option<&str>, secret: &str, host: &str| -> Ingress {
        let mut spec = json!({
            "tls": [{"hosts": [host], "secretName": secret}],
            "rules": [{"host": host, "http": {"paths": [path("/", "web")]}}]
        });
        if let Some(c) = class {
            spec["ingressClassName"] = c.into();
        }
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
    };
    ingresses
        .create(&post, &naming("opaque", None, "opaque", "o.test"))
        .await
        .unwrap();
    ingresses
        .create(
            &post,
            &naming("foreign", Some("other"), "tls-foreign", "f.test"),
        )
        .await
        .unwrap();
    Api::<Ingress>::namespaced(admin.clone(), "team")
        .create(&post, &naming("elsewhere", None, "tls-elsewhere", "e.test"))
        .await
        .unwrap();
    let as_node = server
        .client_with_token(Some(&server.node_token("a")))
        .await;
    let node_secrets: Api<Secret> = Api::namespaced(as_node, "default");
    node_secrets.get("tls-a").await.unwrap();
    for name in ["unnamed", "opaque", "tls-foreign", "tls-elsewhere"] {
        let refused = node_secrets.get(name).await.unwrap_err();
        assert!(
            matches!(refused, kube::Error::Api(ref s) if s.code == 403
                && s.message.contains("no relationship found between node")),
            "{name}: {refused:?}"
        );
    }
}

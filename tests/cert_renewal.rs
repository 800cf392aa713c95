//! Certificates renewed while in use (issue 27's "renewed before expiry"): a real
//! `rk8s-server` issuing certificates valid for 20 s (`--cluster-signing-duration`),
//! a second store member that joined it, and a real node. Past the first
//! certificates' end, kubectl still reaches the API server (its serving certificate
//! renewed), `kubectl logs` still reaches the node (the API server's client
//! certificate and the node's serving certificate renewed), the second member's peer
//! port presents a renewed certificate and a write through it is read through the
//! first; each presents a certificate other than the first, valid now.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use support::apiserver::Server;
use support::images::busybox;
use support::node::{eventually, real_node};

/// Records the certificate a server presents, and accepts it (the test reads it; it
/// sends nothing over the connection).
#[derive(Debug, Default)]
struct Recorder(Mutex<Option<Vec<u8>>>);

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.0.lock().unwrap() = Some(end_entity.to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The PEM of the certificate the TLS server at `addr` presents now.
fn presented(addr: &str) -> String {
    let recorder = Arc::new(Recorder::default());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(recorder.clone())
    .with_no_client_auth();
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server's certificate comes before any client certificate is asked for: the
    // handshake may end there (a node agent wants one), the record is kept.
    while conn.is_handshaking() {
        if conn.complete_io(&mut sock).is_err() {
            break;
        }
    }
    let der = recorder
        .0
        .lock()
        .unwrap()
        .clone()
        .expect("no certificate presented");
    pem(&der)
}

fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The end of the certificate presented at `addr`, after checking that it is valid
/// now and lives `life` seconds (± 2).
fn valid_now(addr: &str, life: i64) -> (String, i64) {
    let cert = presented(addr);
    let (not_before, not_after) = rk8s_http::renewal::validity(&cert).unwrap();
    let now = now();
    assert!(
        not_before <= now && now < not_after,
        "{addr} presents a certificate valid from {not_before} to {not_after}, now is {now}"
    );
    assert!(
        (not_after - not_before - life - life / 10).abs() <= 2,
        "{addr}: valid from {not_before} to {not_after}, not {life} s (and a tenth before)"
    );
    (cert, not_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_renewed_while_the_server_and_node_run() {
    const LIFE: i64 = 20;
    let server = Server::start(&["--cluster-signing-duration", "20s"]);
    let second = Server::join_with(&server, &["--cluster-signing-duration", "20s"]);
    let _node = real_node(&server, "renewed", 71).await;
    let api_addr = format!("{}:{}", server.host, server.port);
    let pods: Api<Pod> = Api::default_namespaced(server.client().await);
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "talker"},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "talker", "image": busybox(),
            "command": ["sh", "-c", "echo hello from talker; sleep 3600"],
        }]},
    });
    pods.create(&Default::default(), &serde_json::from_value(pod).unwrap())
        .await
        .unwrap();
    eventually("talker running", async || {
        let pod = pods.get("talker").await.ok()?;
        (pod.status?.phase? == "Running").then_some(())
    })
    .await;

    let node_addr = {
        let node: Api<k8s_openapi::api::core::v1::Node> = Api::all(server.client().await);
        let node = node.get("renewed").await.unwrap();
        let status = node.status.unwrap();
        let ip = status.addresses.unwrap()[0].address.clone();
        let port = status
            .daemon_endpoints
            .unwrap()
            .kubelet_endpoint
            .unwrap()
            .port;
        format!("{ip}:{port}")
    };
    let (first_api, api_end) = valid_now(&api_addr, LIFE);
    let (first_node, node_end) = valid_now(&node_addr, LIFE);
    let (first_member, member_end) = valid_now(&second.peer, LIFE);
    assert!(
        server
            .kubectl_ok(&["logs", "talker"])
            .contains("hello from talker")
    );

    // Past the end of both first certificates.
    let wait = api_end.max(node_end).max(member_end) - now() + 3;
    tokio::time::sleep(Duration::from_secs(wait.max(0) as u64)).await;
    let (api, _) = valid_now(&api_addr, LIFE);
    let (node, _) = valid_now(&node_addr, LIFE);
    assert_ne!(
        api, first_api,
        "the API server presents its first certificate still"
    );
    assert_ne!(
        node, first_node,
        "the node presents its first certificate still"
    );
    let (member, _) = valid_now(&second.peer, LIFE);
    assert_ne!(
        member, first_member,
        "the second member presents its first certificate still"
    );
    // The store still replicates: written through the second member, read through the
    // first.
    let through_second: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::default_namespaced(server.client_for(&second).await);
    let written: k8s_openapi::api::core::v1::ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "after-renewal"}})).unwrap();
    through_second
        .create(&Default::default(), &written)
        .await
        .unwrap();
    let through_first: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::default_namespaced(server.client().await);
    eventually(
        "the write through the second member read through the first",
        async || {
            through_first
                .get_opt("after-renewal")
                .await
                .ok()?
                .map(|_| ())
        },
    )
    .await;
    // kubectl checks the API server's; the API server checks the node's and presents
    // its own client certificate to the node, which checks it.
    let listed = server.kubectl_ok(&["get", "pods", "-o", "name"]);
    assert!(listed.contains("pod/talker"), "{listed}");
    let logged = server.kubectl_ok(&["logs", "talker"]);
    assert!(logged.contains("hello from talker"), "{logged}");
    // Renewed, not reissued at a restart: the log says so.
    let log = server.log();
    assert!(
        log.contains("the API server's serving certificate was renewed"),
        "{log}"
    );
    assert!(
        log.contains("the API server's client (towards node agents) certificate was renewed"),
        "{log}"
    );
    let log = second.log();
    assert!(
        log.contains("the store member's certificate was renewed"),
        "{log}"
    );
    pods.delete("talker", &Default::default()).await.unwrap();
}

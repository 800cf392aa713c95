#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::table::StaticCluster;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A backend on loopback that answers each request with its method, path and the
/// headers it got, one per line; `Upgrade: echo` is answered 101 and echoed.
async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|mut req: Request<Incoming>| async move {
                    if req.headers().get(header::UPGRADE).is_some() {
                        let on = hyper::upgrade::on(&mut req);
                        tokio::spawn(async move {
                            let mut io = TokioIo::new(on.await.unwrap());
                            let mut buf = [0u8; 64];
                            let n = io.read(&mut buf).await.unwrap();
                            io.write_all(&buf[..n]).await.unwrap();
                        });
                        let mut r = Response::new(Full::new(Bytes::new()));
                        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                        r.headers_mut()
                            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                        r.headers_mut()
                            .insert(header::UPGRADE, HeaderValue::from_static("echo"));
                        return Ok::<_, Infallible>(r);
                    }
                    let mut text = format!("{} {}\n", req.method(), req.uri());
                    for (k, v) in req.headers() {
                        text.push_str(&format!("{k}: {}\n", v.to_str().unwrap()));
                    }
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes().len())
                        .unwrap_or(0);
                    text.push_str(&format!("body: {body}\n"));
                    Ok(Response::new(Full::new(Bytes::from(text))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    at
}

fn class() -> Arc<IngressClass> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": "rk8s", "annotations": {rk8s_api::ingress::DEFAULT_CLASS_ANNOTATION: "true"}},
            "spec": {"controller": rk8s_api::ingress::CONTROLLER}
        }))
        .unwrap(),
    )
}

/// A proxy on loopback routing `a.test` to `pod` (`/big` with a 10-byte body limit,
/// `/down` to a Service without endpoints, `/dead` to a closed port).
async fn proxy(pod: SocketAddr) -> (SocketAddr, Arc<Proxy>) {
    let mut cluster = StaticCluster::default();
    for (name, at) in [
        ("web", Some(pod)),
        ("down", None),
        ("dead", Some(SocketAddr::from(([127, 0, 0, 1], 1)))),
    ] {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80}]}
        }))
        .unwrap();
        cluster
            .services
            .insert(("default".into(), name.into()), Arc::new(svc));
        cluster.endpoints.insert(
            ("default".into(), name.into(), "http".into()),
            at.into_iter().collect(),
        );
    }
    let path = |p: &str, svc: &str| {
        json!({"pathType": "Prefix", "path": p,
        "backend": {"service": {"name": svc, "port": {"number": 80}}}})
    };
    let main: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "main", "namespace": "default"},
        "spec": {"rules": [{"host": "a.test", "http": {"paths": [
            path("/", "web"), path("/down", "down"), path("/dead", "dead")]}}],
            "tls": [{"hosts": ["secure.test"], "secretName": "s"}]}
    }))
    .unwrap();
    let big: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "big", "namespace": "default",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "10"}},
        "spec": {"rules": [{"host": "a.test", "http": {"paths": [path("/big", "web")]}},
                           {"host": "secure.test", "http": {"paths": [path("/", "web")]}}]}
    }))
    .unwrap();
    let table = Table::build(&[Arc::new(main), Arc::new(big)], &[class()], &cluster);
    let default = tls::fake_certificate().unwrap();
    let proxy = Proxy::new(
        Ports {
            http: 80,
            https: 8443,
        },
        default.clone(),
    );
    proxy.set(table, Certificates::new(default));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    tokio::spawn(proxy.clone().serve(listener, false));
    (at, proxy)
}

/// Sends `request` raw and reads the answer to the end.
async fn raw(at: SocketAddr, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn requests_are_forwarded_with_forwarded_headers_and_without_hop_by_hop_ones() {
    let (at, _p) = proxy(backend().await).await;
    let reply = raw(
        at,
        "GET /shop?x=1 HTTP/1.1\r\nHost: a.test\r\nConnection: close, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 203.0.113.1\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("GET /shop?x=1\n"), "{reply}");
    assert!(reply.contains("host: a.test\n"), "{reply}");
    assert!(
        reply.contains("x-forwarded-for: 203.0.113.1, 127.0.0.1\n"),
        "{reply}"
    );
    assert!(reply.contains("x-real-ip: 127.0.0.1\n"), "{reply}");
    assert!(reply.contains("x-forwarded-proto: http\n"), "{reply}");
    assert!(reply.contains("x-forwarded-host: a.test\n"), "{reply}");
    assert!(
        reply.contains(&format!("x-forwarded-port: {}\n", at.port())),
        "{reply}"
    );
    assert!(!reply.contains("x-drop"), "{reply}");
    assert!(!reply.contains("keep-alive: 5"), "{reply}");
}

#[tokio::test]
async fn the_proxy_answers_errors_itself() {
    let (at, _p) = proxy(backend().await).await;
    let get = |host: &str, path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
    };
    let r = raw(at, &get("nowhere.test", "/")).await;
    assert!(
        r.starts_with("HTTP/1.1 404") && r.ends_with("default backend - 404\n"),
        "{r}"
    );
    let r = raw(at, &get("a.test", "/down")).await;
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    let r = raw(at, &get("a.test", "/dead")).await;
    assert!(r.starts_with("HTTP/1.1 502"), "{r}");
    let r = raw(at, &get("secure.test", "/x?y")).await;
    assert!(r.starts_with("HTTP/1.1 308"), "{r}");
    assert!(
        r.contains("location: https://secure.test:8443/x?y\r\n"),
        "{r}"
    );
    let big = "POST /big HTTP/1.1\r\nHost: a.test\r\nContent-Length: 11\r\nConnection: close\r\n\r\n01234567890";
    let r = raw(at, big).await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    let chunked = "POST /big HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nb\r\n01234567890\r\n0\r\n\r\n";
    let r = raw(at, chunked).await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    let small =
        "POST /big HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc";
    let r = raw(at, small).await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("body: 3"),
        "{r}"
    );
    // Garbage is answered, not a panic.
    let r = raw(at, "\x00\x01 nonsense\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 400") || r.is_empty(), "{r}");
}

#[tokio::test]
async fn an_upgrade_joins_both_sides() {
    let (at, _p) = proxy(backend().await).await;
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        s.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    s.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"ping");
}

#[tokio::test]
async fn a_new_table_applies_to_the_next_request() {
    let (at, proxy) = proxy(backend().await).await;
    let get = "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
    assert!(raw(at, get).await.starts_with("HTTP/1.1 200"));
    proxy.set(
        Table::default(),
        Certificates::new(tls::fake_certificate().unwrap()),
    );
    assert!(raw(at, get).await.starts_with("HTTP/1.1 404"));
}

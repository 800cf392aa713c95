#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::table::StaticCluster;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A backend on loopback that answers each request with its method, path and the
/// headers it got, one per line; an upgrade to a WebSocket (`Connection: upgrade`
/// and `Upgrade: websocket` as they reach it) is answered 101 and echoed until the
/// end; any other `Upgrade` is answered 400.
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
                        let connection = req.headers().get(header::CONNECTION);
                        let upgrade = req.headers().get(header::UPGRADE);
                        if connection.is_none_or(|c| !c.as_bytes().eq_ignore_ascii_case(b"upgrade"))
                            || upgrade.is_none_or(|u| u != "websocket")
                        {
                            let mut r = Response::new(Full::new(Bytes::from_static(
                                b"the upgrade did not reach the pod as asked\n",
                            )));
                            *r.status_mut() = StatusCode::BAD_REQUEST;
                            return Ok::<_, Infallible>(r);
                        }
                        let on = hyper::upgrade::on(&mut req);
                        tokio::spawn(async move {
                            let io = TokioIo::new(on.await.unwrap());
                            let (mut r, mut w) = tokio::io::split(io);
                            let _ = tokio::io::copy(&mut r, &mut w).await;
                        });
                        let mut r = Response::new(Full::new(Bytes::new()));
                        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                        r.headers_mut()
                            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                        r.headers_mut()
                            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
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

/// A backend on loopback that reads a request head, then answers a head and 3 of
/// the 10 bytes of its body, and then nothing (`/silent`: nothing at all).
async fn stalling_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let mut byte = [0u8; 1];
                    if stream.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                if !head.starts_with(b"GET /silent") {
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
                        .await;
                }
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    at
}

/// A proxy on loopback routing `a.test` to `pod` (`/big` with a 10-byte body limit,
/// `/down` to a Service without endpoints, `/dead` to a closed port), and
/// `slow.test` (1 s connect and read timeouts) to `pod` and, `/stall`, to a
/// [`stalling_backend`].
async fn proxy(pod: SocketAddr) -> (SocketAddr, Arc<Proxy>) {
    proxy_with(pod, Limits::default()).await
}

/// [`proxy`] with `limits`.
async fn proxy_with(pod: SocketAddr, limits: Limits) -> (SocketAddr, Arc<Proxy>) {
    let mut cluster = StaticCluster::default();
    for (name, at) in [
        ("web", Some(pod)),
        ("down", None),
        ("dead", Some(SocketAddr::from(([127, 0, 0, 1], 1)))),
        ("stall", Some(stalling_backend().await)),
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
            path("/", "web"), path("/down", "down"), path("/dead", "dead")]}}]}
    }))
    .unwrap();
    let big: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "big", "namespace": "default",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "10"}},
        "spec": {"rules": [{"host": "a.test", "http": {"paths": [path("/big", "web")]}},
                           {"host": "secure.test", "http": {"paths": [path("/", "web")]}}],
                 "tls": [{"hosts": ["secure.test"], "secretName": "s"}]}
    }))
    .unwrap();
    let slow: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "slow", "namespace": "default",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "1",
                            "nginx.ingress.kubernetes.io/proxy-connect-timeout": "1"}},
        "spec": {"rules": [{"host": "slow.test", "http": {"paths": [
            path("/", "web"), path("/stall", "stall"), path("/silent", "stall")]}}]}
    }))
    .unwrap();
    let table = Table::build(
        &[Arc::new(main), Arc::new(big), Arc::new(slow)],
        &[class()],
        &cluster,
    );
    let default = tls::fake_certificate().unwrap();
    let proxy = Proxy::with_limits(
        Ports {
            http: 80,
            https: 8443,
        },
        default.clone(),
        limits,
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
        "GET /shop?x=1 HTTP/1.1\r\nHost: a.test\r\nConnection: close, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 203.0.113.1\r\nProxy: http://evil.test:3128\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("GET /shop?x=1\n"), "{reply}");
    assert!(reply.contains("host: a.test\n"), "{reply}");
    // The peer's address only: what the client claims is dropped (ingress-nginx
    // without use-forwarded-headers), and so is `Proxy` (httpoxy).
    assert!(reply.contains("x-forwarded-for: 127.0.0.1\n"), "{reply}");
    assert!(!reply.contains("203.0.113.1"), "{reply}");
    assert!(!reply.contains("proxy:"), "{reply}");
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
    let mut s = upgraded(at, "a.test").await;
    s.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"ping");
}

/// A connection to `at` upgraded to a WebSocket for `host` (101 read).
async fn upgraded(at: SocketAddr, host: &str) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    let ask = format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"
    );
    s.write_all(ask.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        s.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    s
}

/// Reads `s` to its end; `None` if it has not ended within `within`.
async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match tokio::time::timeout(within, s.read_to_end(&mut out)).await {
        Ok(_) => Some(out),
        Err(_) => None,
    }
}

/// Short bounds for the tests of idle clients.
fn short() -> Limits {
    Limits {
        max_connections: 1,
        header_read_timeout: Duration::from_millis(300),
        keep_alive_timeout: Duration::from_millis(500),
        ..Limits::default()
    }
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_header_timeout() {
    let (at, _p) = proxy_with(backend().await, short()).await;
    // Nothing sent: hyper-util's auto builder would wait for the first bytes for ever.
    let mut silent = tokio::net::TcpStream::connect(at).await.unwrap();
    let started = Instant::now();
    let out = closed_within(&mut silent, Duration::from_secs(3)).await;
    assert_eq!(out.as_deref(), Some(&b""[..]), "closed, nothing answered");
    assert!(started.elapsed() >= Duration::from_millis(250));
    // A head begun and never ended.
    let mut slow = tokio::net::TcpStream::connect(at).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: a.t")
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(3))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn an_http2_connection_without_requests_is_closed_and_its_cookies_are_joined() {
    let (at, _p) = proxy_with(backend().await, short()).await;
    let tcp = tokio::net::TcpStream::connect(at).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = Request::builder()
        .uri("http://a.test/cookies")
        .header(header::COOKIE, "a=1")
        .header(header::COOKIE, "b=2")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = send.send_request(req).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&text);
    // One field for the HTTP/1.1 pod (RFC 9113 §8.2.3).
    assert!(text.contains("cookie: a=1; b=2\n"), "{text}");
    assert_eq!(text.matches("cookie:").count(), 1, "{text}");
    // No request in flight for the keep-alive timeout: the proxy closes it.
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the idle HTTP/2 connection is closed")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_quiet_tunnel_is_closed_and_counts_as_a_connection_until_then() {
    // One connection at a time; slow.test's proxy-read-timeout is 1 s.
    let (at, _p) = proxy_with(backend().await, short()).await;
    let mut tunnel = upgraded(at, "slow.test").await;
    tunnel.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tunnel.read_exact(&mut echo).await.unwrap();
    let opened = Instant::now();
    // The tunnel holds the listener's one connection: the next waits.
    let mut next = tokio::net::TcpStream::connect(at).await.unwrap();
    next.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), next.read_exact(&mut first))
            .await
            .is_err(),
        "answered while the tunnel held the only connection"
    );
    // Nothing either way for 1 s: the tunnel is closed, then the next is served.
    let out = closed_within(&mut tunnel, Duration::from_secs(5)).await;
    assert_eq!(out.as_deref(), Some(&b""[..]));
    assert!(opened.elapsed() >= Duration::from_millis(900));
    let rest = closed_within(&mut next, Duration::from_secs(5))
        .await
        .unwrap();
    let reply = String::from_utf8_lossy(&rest);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[tokio::test]
async fn a_slow_upload_is_not_a_read_timeout_but_a_stalled_response_is() {
    let (at, _p) = proxy(backend().await).await;
    // 3 s of upload, each piece well within proxy-send-timeout, to a backend with
    // 1 s connect and read timeouts.
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    s.write_all(
        b"POST / HTTP/1.1\r\nHost: slow.test\r\nContent-Length: 6\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        s.write_all(b"x").await.unwrap();
    }
    let reply = closed_within(&mut s, Duration::from_secs(5)).await.unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.starts_with("HTTP/1.1 200") && reply.contains("body: 6"),
        "{reply}"
    );
    // A response body that stops for longer than proxy-read-timeout is cut off.
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    s.write_all(b"GET /stall HTTP/1.1\r\nHost: slow.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let reply = closed_within(&mut s, Duration::from_secs(5))
        .await
        .expect("the stalled response is ended by the proxy");
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.starts_with("HTTP/1.1 200") && reply.ends_with("abc"),
        "{reply}"
    );
    // No answer to a request without a body: 504 once proxy-read-timeout (1 s) runs
    // out after it was sent.
    let started = Instant::now();
    let r = raw(
        at,
        "GET /silent HTTP/1.1\r\nHost: slow.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 504"), "{r}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn paths_are_forwarded_normalised_and_may_not_climb_above_the_root() {
    let (at, _p) = proxy(backend().await).await;
    let get =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
    // `/down` has no endpoints (503): these are not under it.
    for path in ["/down/../x?q=1", "/down/%2e%2E/x?q=1", "//down/./..//x?q=1"] {
        let r = raw(at, &get(path)).await;
        assert!(
            r.starts_with("HTTP/1.1 200") && r.contains("GET /x?q=1\n"),
            "{path}: {r}"
        );
    }
    let r = raw(at, &get("/a/../../etc/passwd")).await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
}

#[tokio::test]
async fn transfer_encoding_drops_content_length() {
    let (at, _p) = proxy(backend().await).await;
    // RFC 9112 §6.3: the chunked body is the body; the Content-Length is not passed on
    // (the pod would read 3 bytes of 11) nor trusted for the size limit.
    let both = "POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\nConnection: close\r\n\r\nb\r\n01234567890\r\n0\r\n\r\n";
    let r = raw(at, both).await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("body: 11\n"),
        "{r}"
    );
    assert!(!r.contains("content-length: 3"), "{r}");
    let small = "POST /big HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 100\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let r = raw(at, small).await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("body: 3\n"),
        "{r}"
    );
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

/// The table of `cold.test` → the Service `cold`, which wakes on request (held 1 s),
/// with the endpoint `pod` or none.
fn cold_table(pod: Option<SocketAddr>) -> Table {
    cold_table_on(pod, 80)
}

/// [`cold_table`] with the Ingress asking for the Service's `port`.
fn cold_table_on(pod: Option<SocketAddr>, port: u16) -> Table {
    let mut cluster = StaticCluster::default();
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "cold", "namespace": "default",
            "annotations": {rk8s_api::activation::ACTIVATION_TIMEOUT: "1s"}},
        "spec": {"ports": [{"name": "http", "port": 80}]}
    }))
    .unwrap();
    cluster
        .services
        .insert(("default".into(), "cold".into()), Arc::new(svc));
    cluster.endpoints.insert(
        ("default".into(), "cold".into(), "http".into()),
        pod.into_iter().collect(),
    );
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "cold", "namespace": "default"},
        "spec": {"rules": [{"host": "cold.test", "http": {"paths": [{"pathType": "Prefix",
            "path": "/", "backend": {"service": {"name": "cold", "port": {"number": port}}}}]}}]}
    }))
    .unwrap();
    Table::build(&[Arc::new(ingress)], &[class()], &cluster)
}

/// A proxy holding at most `queue` requests a backend, serving [`cold_table`]
/// without endpoints.
async fn cold_proxy(queue: usize) -> (SocketAddr, Arc<Proxy>) {
    let default = tls::fake_certificate().unwrap();
    let ports = Ports {
        http: 80,
        https: 443,
    };
    let proxy = Proxy::with_activation(
        ports,
        default.clone(),
        Limits::default(),
        Activation::new(queue),
    );
    proxy.set(cold_table(None), Certificates::new(default));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    tokio::spawn(proxy.clone().serve(listener, false));
    (at, proxy)
}

const COLD_GET: &str = "GET /x HTTP/1.1\r\nHost: cold.test\r\nConnection: close\r\n\r\n";

/// Polls `f` every 10 ms for up to 5 s.
async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen");
}

#[tokio::test]
async fn a_held_request_is_forwarded_when_an_endpoint_comes_and_says_it_waited() {
    let (at, proxy) = cold_proxy(4).await;
    let request = tokio::spawn(raw(at, COLD_GET));
    let activation = proxy.activation().clone();
    until("the request is held", || {
        activation
            .snapshot()
            .first()
            .is_some_and(|b| b.waiting == 1)
    })
    .await;
    proxy.set(
        cold_table(Some(backend().await)),
        Certificates::new(tls::fake_certificate().unwrap()),
    );
    let reply = request.await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("x-rk8s-cold-start: true\r\n"), "{reply}");
    assert!(reply.contains("GET /x\n"), "{reply}");
    let counts = &activation.snapshot()[0];
    assert_eq!((counts.requests, counts.waiting), (1, 0), "{counts:?}");
    until("the answer's end", || {
        activation.snapshot()[0].in_flight == 0
    })
    .await;
    // Warm: no header, counted as a request.
    let reply = raw(at, COLD_GET).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(!reply.contains("x-rk8s-cold-start"), "{reply}");
    assert_eq!(activation.snapshot()[0].requests, 2);
}

#[tokio::test]
async fn a_full_queue_is_refused_at_once_and_held_requests_time_out_with_retry_after() {
    let (at, proxy) = cold_proxy(2).await;
    let started = std::time::Instant::now();
    let held: Vec<_> = (0..2).map(|_| tokio::spawn(raw(at, COLD_GET))).collect();
    let activation = proxy.activation().clone();
    until("two requests are held", || {
        activation
            .snapshot()
            .first()
            .is_some_and(|b| b.waiting == 2)
    })
    .await;
    // Timed from here: the setup and the poll are not the refusal's.
    let asked = std::time::Instant::now();
    let refused = raw(at, COLD_GET).await;
    assert!(asked.elapsed() < Duration::from_millis(900));
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("retry-after: 1\r\n"), "{refused}");
    for h in held {
        let reply = h.await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
        assert!(reply.contains("retry-after: 5\r\n"), "{reply}");
        assert!(reply.contains("x-rk8s-cold-start: true\r\n"), "{reply}");
    }
    // Held for the Service's 1 s.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(activation.snapshot()[0].waiting, 0);
}

#[tokio::test]
async fn a_table_swap_without_endpoints_keeps_requests_held_and_another_route_is_followed() {
    let (at, proxy) = cold_proxy(4).await;
    let request = tokio::spawn(raw(at, COLD_GET));
    let activation = proxy.activation().clone();
    until("the request is held", || {
        activation
            .snapshot()
            .first()
            .is_some_and(|b| b.waiting == 1)
    })
    .await;
    let certificates = || Certificates::new(tls::fake_certificate().unwrap());
    proxy.set(cold_table(None), certificates());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !request.is_finished(),
        "still held after a swap without endpoints"
    );
    // The Ingress is gone: routed again, 404 at once.
    proxy.set(Table::default(), certificates());
    let reply = request.await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
}

#[tokio::test]
async fn a_client_that_leaves_gives_up_its_place_in_the_queue() {
    let (at, proxy) = cold_proxy(1).await;
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    s.write_all(COLD_GET.as_bytes()).await.unwrap();
    let activation = proxy.activation().clone();
    until("the request is held", || {
        activation
            .snapshot()
            .first()
            .is_some_and(|b| b.waiting == 1)
    })
    .await;
    drop(s);
    until("its place is given up", || {
        activation.snapshot()[0].waiting == 0
    })
    .await;
    // The place is free again: the next one is held, not refused.
    let next = tokio::spawn(raw(at, COLD_GET));
    until("the next request is held", || {
        activation.snapshot()[0].waiting == 1
    })
    .await;
    let reply = next.await.unwrap();
    assert!(reply.contains("retry-after: 5\r\n"), "{reply}");
}

#[tokio::test]
async fn a_websocket_to_a_counted_backend_is_in_flight_until_it_closes() {
    let (at, proxy) = cold_proxy(4).await;
    proxy.set(
        cold_table(Some(backend().await)),
        Certificates::new(tls::fake_certificate().unwrap()),
    );
    let activation = proxy.activation().clone();
    let mut s = upgraded(at, "cold.test").await;
    s.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    s.read_exact(&mut echo).await.unwrap();
    // The 101's empty body is long sent; the tunnel is still traffic.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(activation.snapshot()[0].in_flight, 1, "the open tunnel");
    drop(s);
    until("the closed tunnel is no longer in flight", || {
        activation.snapshot()[0].in_flight == 0
    })
    .await;
}

#[tokio::test]
async fn a_port_the_service_lacks_is_refused_at_once_and_waits_for_nothing() {
    let (at, proxy) = cold_proxy(4).await;
    proxy.set(
        cold_table_on(None, 81),
        Certificates::new(tls::fake_certificate().unwrap()),
    );
    let asked = std::time::Instant::now();
    let reply = raw(at, COLD_GET).await;
    assert!(asked.elapsed() < Duration::from_millis(500));
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(!reply.contains("x-rk8s-cold-start"), "{reply}");
    let activation = proxy.activation();
    assert!(
        activation
            .snapshot()
            .iter()
            .all(|b| b.waiting == 0 && b.requests == 0),
        "nothing held, nothing woken: {:?}",
        activation.snapshot()
    );
}

#[tokio::test]
async fn a_client_that_leaves_with_a_small_body_gives_up_its_place_at_once() {
    // Read along with the head. (One that leaves with most of a large body unsent
    // is not noticed while held: activation::BODY_HOLD bounds it.)
    let (at, proxy) = cold_proxy(1).await;
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    let post = "POST /x HTTP/1.1\r\nHost: cold.test\r\nContent-Length: 5\r\n\r\nhello";
    s.write_all(post.as_bytes()).await.unwrap();
    let activation = proxy.activation().clone();
    until("the request is held", || {
        activation
            .snapshot()
            .first()
            .is_some_and(|b| b.waiting == 1)
    })
    .await;
    drop(s);
    // Well within the Service's 1 s hold.
    let left = std::time::Instant::now();
    while activation.snapshot()[0].waiting != 0 {
        assert!(left.elapsed() < Duration::from_millis(500), "still held");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

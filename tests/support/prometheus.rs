//! A real Prometheus (the Debian package) on loopback, configured with what
//! `rk8sctl prometheus-config` prints for a test server; killed on drop.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::apiserver::Server;

/// The Prometheus process and its port; its files live in `dir`.
pub struct Prometheus {
    child: Child,
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus on `port`, scraping `server`'s cluster every second.
    pub fn start(server: &Server, port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let dir_arg = dir.path().display().to_string();
        let out = server.rk8sctl(&[
            "prometheus-config",
            "--scrape-interval",
            "1s",
            "--dir",
            &dir_arg,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, &out.stdout).unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus is installed by scripts/setup.sh");
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    /// The token `prometheus-config` wrote for Prometheus.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("token")).unwrap()
    }

    /// `http://127.0.0.1:PORT`, for `--prometheus-url`.
    pub fn url(port: u16) -> String {
        format!("http://127.0.0.1:{port}")
    }

    /// GETs `path` from its HTTP API; the body.
    pub async fn text(&self, path: &str) -> Option<String> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        let answer = String::from_utf8(answer).ok()?;
        let (_, body) = answer.split_once("\r\n\r\n")?;
        Some(body.to_string())
    }

    /// GETs `path` from its HTTP API; the JSON answer.
    pub async fn get(&self, path: &str) -> Option<Value> {
        serde_json::from_str(&self.text(path).await?).ok()
    }

    /// The instant queries this Prometheus has answered (its own
    /// `prometheus_http_requests_total{handler="/api/v1/query"}`).
    pub async fn queries_answered(&self) -> f64 {
        let text = self.text("/metrics").await.unwrap_or_default();
        text.lines()
            .filter(|l| {
                l.starts_with("prometheus_http_requests_total{")
                    && l.contains(r#"handler="/api/v1/query""#)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The first sample of an instant query (`None` while it has none).
    pub async fn first(&self, query: &str) -> Option<Value> {
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair("query", query)
            .finish();
        let v = self.get(&format!("/api/v1/query?{q}")).await?;
        v["data"]["result"].as_array()?.first().cloned()
    }
}

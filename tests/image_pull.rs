//! Image pulls end to end (root): an image of four layers, one of them zstd, pushed to
//! a local registry (Debian's docker-registry) with skopeo, pulled through a proxy
//! that sees how many layer downloads are under way at once, and run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/runtime.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::PodHost;
use support::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// Runs `program` with `args`; panics with its output when it fails.
fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Stores `bytes` as a blob of the OCI layout `layout`; its descriptor's digest and size.
fn put_blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let digest = rk8s_runtime::image::sha256(bytes);
    let hex = digest.trim_start_matches("sha256:");
    std::fs::write(layout.join("blobs/sha256").join(hex), bytes).unwrap();
    (digest, bytes.len())
}

fn read_blob(layout: &Path, digest: &str) -> Value {
    let hex = digest.trim_start_matches("sha256:");
    serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()).unwrap()
}

/// An OCI layout in `dir` (tag `latest`) of four layers: busybox, a gzip layer with
/// `/layer-two`, another with `/layer-three` (both made by umoci), and on top a zstd
/// layer (tar and zstd, added to the manifest by hand: umoci writes gzip only) with
/// `/layer-zstd` and a whiteout of busybox's `/var/www/index.html`.
fn layered_image(dir: &Path) -> PathBuf {
    let layout = dir.join("layout");
    run("cp", &["-a", &support::busybox(), layout.to_str().unwrap()]);
    let tagged = format!("{}:latest", layout.display());
    for name in ["two", "three"] {
        let bundle = dir.join(format!("bundle-{name}"));
        run(
            "umoci",
            &["unpack", "--image", &tagged, bundle.to_str().unwrap()],
        );
        std::fs::write(
            bundle.join(format!("rootfs/layer-{name}")),
            format!("{name}\n"),
        )
        .unwrap();
        run(
            "umoci",
            &["repack", "--image", &tagged, bundle.to_str().unwrap()],
        );
    }
    let files = dir.join("zstd-files");
    std::fs::create_dir_all(files.join("var/www")).unwrap();
    std::fs::write(files.join("layer-zstd"), "zstd\n").unwrap();
    std::fs::write(files.join("var/www/.wh.index.html"), "").unwrap();
    let tar = dir.join("zstd-layer.tar");
    run(
        "tar",
        &[
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "-C",
            files.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            "layer-zstd",
            "var/www/.wh.index.html",
        ],
    );
    let zst = dir.join("zstd-layer.tar.zst");
    run(
        "zstd",
        &["-q", tar.to_str().unwrap(), "-o", zst.to_str().unwrap()],
    );
    let diff_id = rk8s_runtime::image::sha256(&std::fs::read(&tar).unwrap());
    let (layer, layer_size) = put_blob(&layout, &std::fs::read(&zst).unwrap());

    let index_path = layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let mut manifest = read_blob(&layout, index["manifests"][0]["digest"].as_str().unwrap());
    let mut config = read_blob(&layout, manifest["config"]["digest"].as_str().unwrap());
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(json!(diff_id));
    if let Some(history) = config["history"].as_array_mut() {
        history.push(json!({"created_by": "rk8s test: a zstd layer"}));
    }
    let (config_digest, config_size) = put_blob(&layout, &serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = json!(config_digest);
    manifest["config"]["size"] = json!(config_size);
    manifest["layers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"mediaType": ZSTD, "digest": layer, "size": layer_size}));
    let (manifest_digest, manifest_size) =
        put_blob(&layout, &serde_json::to_vec(&manifest).unwrap());
    index["manifests"][0]["digest"] = json!(manifest_digest);
    index["manifests"][0]["size"] = json!(manifest_size);
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    layout
}

/// A plain HTTP proxy in front of a registry that holds each download of one of
/// `layers` until `hold` of them are under way at once (or `patience` passed), and
/// records the most that were under way at once. A puller that fetches one layer after
/// another waits `patience` per layer and shows 1.
struct LayerGate {
    port: u16,
    most: tokio::sync::watch::Sender<usize>,
    task: tokio::task::JoinHandle<()>,
}

struct Gate {
    upstream: u16,
    layers: BTreeSet<String>,
    hold: usize,
    patience: Duration,
    current: AtomicUsize,
    most: tokio::sync::watch::Sender<usize>,
}

impl LayerGate {
    async fn start(
        upstream: u16,
        layers: BTreeSet<String>,
        hold: usize,
        patience: Duration,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (most, _) = tokio::sync::watch::channel(0);
        let gate = Arc::new(Gate {
            upstream,
            layers,
            hold,
            patience,
            current: AtomicUsize::new(0),
            most: most.clone(),
        });
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, gate.clone()));
            }
        });
        LayerGate { port, most, task }
    }

    /// The most layer downloads under way at once so far.
    fn most(&self) -> usize {
        *self.most.borrow()
    }
}

impl Drop for LayerGate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Relays one request of `client` to the registry (asking it to close the connection
/// after its answer, so that the answer ends where the stream does), holding layer
/// downloads at the gate.
async fn relay(mut client: TcpStream, gate: Arc<Gate>) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = client.read(&mut buf).await?;
        if n == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    };
    let text = String::from_utf8_lossy(&head[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut request = format!("{request_line}\r\n");
    for line in lines.filter(|l| !l.to_ascii_lowercase().starts_with("connection:")) {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    let mut request = request.into_bytes();
    request.extend_from_slice(&head[end + 4..]);
    let held = request_line.starts_with("GET ")
        && gate
            .layers
            .iter()
            .any(|d| request_line.contains(&format!("/blobs/{d} ")));
    if held {
        let now = gate.current.fetch_add(1, Ordering::SeqCst) + 1;
        gate.most.send_modify(|most| *most = (*most).max(now));
        let mut most = gate.most.subscribe();
        let _ = tokio::time::timeout(gate.patience, most.wait_for(|m| *m >= gate.hold)).await;
    }
    let relayed = async {
        let mut upstream = TcpStream::connect(("127.0.0.1", gate.upstream)).await?;
        upstream.write_all(&request).await?;
        tokio::io::copy(&mut upstream, &mut client).await?;
        client.shutdown().await
    }
    .await;
    if held {
        gate.current.fetch_sub(1, Ordering::SeqCst);
    }
    relayed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zstd_layer_among_gzip_ones_is_pulled_three_layers_at_a_time_and_runs() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let pushed = registry.push(&layered_image(dir.path()), "rk8s/layered:v1");
    // The registry serves the layers as they were pushed: three gzip, one zstd.
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{pushed}"))
        .output()
        .unwrap();
    assert!(raw.status.success(), "skopeo inspect");
    let manifest: Value = serde_json::from_slice(&raw.stdout).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    let media_types: Vec<&str> = layers
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert_eq!(media_types, [GZIP, GZIP, GZIP, ZSTD]);
    let digests: BTreeSet<String> = layers
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();

    // Downloads are held until three are under way (the puller's limit), 5 s at most.
    let gate = LayerGate::start(registry.port, digests.clone(), 3, Duration::from_secs(5)).await;
    let reference = format!("127.0.0.1:{}/rk8s/layered:v1", gate.port);
    let counts = Arc::new(Mutex::new(BTreeMap::<String, (u64, u64)>::new()));
    let counted = counts.clone();
    let host = PodHost::with_config(|c| {
        c.pull.insecure_registries = vec![format!("127.0.0.1:{}", gate.port)];
        c.pull.layer_progress = Some(Arc::new(move |digest: &str, n, size| {
            counted
                .lock()
                .unwrap()
                .insert(digest.to_string(), (n, size));
        }));
    });
    // A file of each layer, and busybox's page hidden by the zstd layer's whiteout.
    let script = "cat /layer-two /layer-three /layer-zstd; \
                  if [ -e /var/www/index.html ]; then echo index.html still there; \
                  else echo index.html whited out; fi";
    let pod = host.pod(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "layered"},
        "spec": {"restartPolicy": "Never",
                 "containers": [{"name": "main", "image": reference, "command": ["sh", "-c", script]}]}
    }));
    let uid = pod.metadata.uid.clone().unwrap();
    host.pods.run_pod(&pod).await.unwrap();
    host.sync_until(&uid, "Succeeded", |s| {
        s.phase.as_deref() == Some("Succeeded")
    })
    .await;
    let (path, _) = host.pods.container_log(&uid, "main", false).unwrap();
    let mut log = Vec::new();
    rk8s_runtime::logs::read(&path, &Default::default(), &mut log, &mut || false).unwrap();
    assert_eq!(
        String::from_utf8(log).unwrap(),
        "two\nthree\nzstd\nindex.html whited out\n"
    );
    // Every layer came through the gate, to its last byte.
    let counts = counts.lock().unwrap().clone();
    assert_eq!(counts.keys().cloned().collect::<BTreeSet<_>>(), digests);
    assert!(counts.values().all(|(n, size)| n == size), "{counts:?}");
    assert_eq!(
        gate.most(),
        3,
        "layer downloads under way at once (the puller fetches 3 at a time)"
    );
    host.pods.stop_pod(&uid, Duration::ZERO).await.unwrap();
    assert_eq!(host.leftovers(&uid), Vec::<String>::new());
}

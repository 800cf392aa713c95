//! Starting the API server on a store member: the cluster's CA and admin token
//! (created once, kept in the store so every member shares them), this member's
//! serving certificate, the system namespaces, and the admin kubeconfig.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rk8s_raftstore::Error as StoreError;
use rk8s_raftstore::proto::RangeRequest;
use rk8s_raftstore::server::Store;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::{Identity, TokenRecord, new_secret, store_token};
use crate::handlers::ensure_system_namespaces;
use crate::pki::{ClusterCa, PkiError, server_config};
use crate::server::{ApiServer, serve};

/// Where the cluster's shared secrets live in the store.
pub const CLUSTER_KEY: &str = "/rk8s/cluster/ca";

/// How the API server starts.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// The member's data directory (certificates go to `<data_dir>/pki`).
    pub data_dir: PathBuf,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Extra names or addresses for the serving certificate.
    pub tls_sans: Vec<String>,
    /// Where to write the admin kubeconfig (`None`: do not write one).
    pub admin_kubeconfig: Option<PathBuf>,
    /// How often the leader compacts the store's history (as Kubernetes compacts
    /// etcd): each time, everything older than the previous round goes.
    pub compaction_interval: Duration,
    /// Concurrent reads served before 429 (0: no limit).
    pub max_requests_inflight: usize,
    /// Concurrent writes served before 429 (0: no limit).
    pub max_mutating_requests_inflight: usize,
    /// The ranges joining nodes get.
    pub pod_cidrs: crate::join::PodCidrs,
    /// Where Services' ClusterIPs and node ports come from.
    pub service_ranges: crate::allocator::ServiceRanges,
    /// The member CA this member made as the cluster's first (see
    /// [`crate::members::bootstrap`]): stored with the cluster's secrets.
    pub member_ca: Option<ClusterCa>,
    /// The store's peer address: like the API port, never dialed as a node's.
    pub peer_listen: Option<SocketAddr>,
}

/// Why the API server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Certificates could not be made or loaded.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store did not become ready.
    #[error("the store is not ready: {0}")]
    Store(String),
    /// The address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The secrets every member shares.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSecrets {
    /// The cluster CA.
    pub ca: ClusterCa,
    /// The member CA (store members' mutual TLS; see [`crate::members`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_ca: Option<ClusterCa>,
    /// The node CA: node agents' serving certificates (see [`crate::pki`]). A cluster
    /// made before it existed gets one at the next start of an API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_ca: Option<ClusterCa>,
}

/// Writes a file atomically (through a temporary file), `private` ones mode 0600.
pub(crate) fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), StartError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| StartError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if private {
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io)?;
    std::io::Write::write_all(&mut f, contents.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Waits until the store answers a quorum read (it has a leader).
async fn wait_ready(store: &Store) -> Result<(), StartError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let probe = RangeRequest {
            key: CLUSTER_KEY.as_bytes().to_vec(),
            count_only: true,
            ..RangeRequest::default()
        };
        match tokio::time::timeout(Duration::from_secs(3), store.range(probe, true)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) if tokio::time::Instant::now() > deadline => {
                return Err(StartError::Store(e.to_string()));
            }
            Err(_) if tokio::time::Instant::now() > deadline => {
                return Err(StartError::Store("no leader after 60s".into()));
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Reads the cluster's secrets, creating them (and the admin token) if this is the
/// first start of the cluster, with the member CA the first member made. Returns them
/// and, when this call created the cluster, the admin token.
async fn cluster_secrets(
    store: &Store,
    member_ca: Option<&ClusterCa>,
) -> Result<(ClusterSecrets, Option<String>), StartError> {
    let failed = |e: StoreError| StartError::Store(e.to_string());
    loop {
        let read = RangeRequest {
            key: CLUSTER_KEY.as_bytes().to_vec(),
            ..RangeRequest::default()
        };
        let found = store.range(read, true).await.map_err(failed)?;
        if let Some(kv) = found.kvs.first() {
            let mut secrets: ClusterSecrets = serde_json::from_slice(&kv.value)
                .map_err(|e| StartError::Store(format!("{CLUSTER_KEY} does not decode: {e}")))?;
            if secrets.node_ca.is_some() {
                return Ok((secrets, None));
            }
            // A cluster from before the node CA: add one, unless another member does
            // first (then read theirs).
            secrets.node_ca = Some(ClusterCa::generate_node_ca()?);
            let value =
                serde_json::to_vec(&secrets).map_err(|e| StartError::Store(e.to_string()))?;
            match store
                .put(CLUSTER_KEY.as_bytes(), &value, 0, Some(kv.mod_revision))
                .await
            {
                Ok(_) => {
                    tracing::info!(
                        "the cluster has a node CA now: restart node agents for new serving certificates"
                    );
                    return Ok((secrets, None));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(failed(e)),
            }
        }
        let secrets = ClusterSecrets {
            ca: ClusterCa::generate()?,
            member_ca: member_ca.cloned(),
            node_ca: Some(ClusterCa::generate_node_ca()?),
        };
        let value = serde_json::to_vec(&secrets).map_err(|e| StartError::Store(e.to_string()))?;
        match store.put(CLUSTER_KEY.as_bytes(), &value, 0, Some(0)).await {
            Ok(_) => {
                let token = new_secret().map_err(|e| StartError::Store(e.message))?;
                let record = TokenRecord {
                    identity: Identity::Admin,
                    expires: None,
                    used_by: None,
                };
                store_token(store, &token, &record)
                    .await
                    .map_err(|e| StartError::Store(e.message))?;
                return Ok((secrets, Some(token)));
            }
            // Another member created them first: read theirs.
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(failed(e)),
        }
    }
}

/// A kubeconfig for `server` trusting `ca_pem`, authenticating with `token`.
pub fn kubeconfig(server: &str, ca_pem: &str, user: &str, token: &str) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "rk8s", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "rk8s", "context": {"cluster": "rk8s", "user": user}}],
        "current-context": "rk8s",
        "preferences": {},
    });
    let mut out = String::new();
    rk8s_api::emit::write_yaml(&mut out, &config);
    out
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// Every `interval`, on the leader, compacts history up to the revision seen one
/// interval earlier, so watchers and paginated lists get at least one interval.
async fn compact_periodically(store: Store, interval: Duration) {
    let mut previous: Option<i64> = None;
    let mut compacted = 0;
    let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(100)));
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if !store.leadership().borrow().is_self {
            previous = None;
            continue;
        }
        let probe = RangeRequest {
            key: CLUSTER_KEY.as_bytes().to_vec(),
            count_only: true,
            ..RangeRequest::default()
        };
        let Ok(now) = store.range(probe, true).await.map(|r| r.revision) else {
            continue;
        };
        if let Some(rev) = previous.filter(|r| *r > compacted) {
            match store.compact(rev).await {
                Ok(()) => {
                    compacted = rev;
                    tracing::debug!("compacted the store up to revision {rev}");
                }
                Err(e) => tracing::debug!("compaction to {rev} skipped: {e}"),
            }
        }
        previous = Some(now);
    }
}

/// A running API server.
pub struct Running {
    /// The server's state (for in-process callers).
    pub api: Arc<ApiServer>,
    /// The address it listens on.
    pub local_addr: SocketAddr,
    /// How this process' own clients reach it.
    pub internal: InternalAccess,
    task: tokio::task::JoinHandle<()>,
}

/// What an in-process client (the scheduler, the controllers) needs: the URL, the
/// CA to verify it, and a credential valid for this process' lifetime.
#[derive(Clone)]
pub struct InternalAccess {
    /// `https://ADDRESS:PORT`.
    pub url: String,
    /// The cluster CA (PEM).
    pub ca_pem: String,
    /// The credential.
    pub token: String,
}

impl std::fmt::Debug for InternalAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalAccess")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Stops accepting connections.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Starts the API server on `store` as `cfg` says.
pub async fn start(store: Store, cfg: ApiConfig) -> Result<Running, StartError> {
    wait_ready(&store).await?;
    let (secrets, admin_token) = cluster_secrets(&store, cfg.member_ca.as_ref()).await?;
    let pki = cfg.data_dir.join("pki");
    write_file(&pki.join("ca.crt"), &secrets.ca.cert_pem, false)?;
    let token_file = pki.join("admin.token");
    if let Some(t) = &admin_token {
        write_file(&token_file, &format!("{t}\n"), true)?;
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: cfg.listen,
        source,
    })?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    names.extend(hostname());
    if !local_addr.ip().is_unspecified() {
        names.push(local_addr.ip().to_string());
    }
    names.extend(cfg.tls_sans.iter().cloned());
    names.sort();
    names.dedup();
    let (cert, key) = secrets.ca.issue_server(&names)?;
    write_file(&pki.join("apiserver.crt"), &cert, false)?;
    write_file(&pki.join("apiserver.key"), &key, true)?;
    let tls = server_config(&cert, &key)?;
    let unlimited = |n: usize| {
        if n == 0 {
            tokio::sync::Semaphore::MAX_PERMITS
        } else {
            n
        }
    };
    let api = ApiServer::with_limits(
        store.clone(),
        unlimited(cfg.max_requests_inflight),
        unlimited(cfg.max_mutating_requests_inflight),
    );
    api.set_pod_cidrs(cfg.pod_cidrs);
    api.registry().set_service_ranges(cfg.service_ranges);
    let node_ca = secrets.node_ca.as_ref().ok_or_else(|| PkiError::Invalid {
        what: "cluster secrets",
        detail: "no node CA".into(),
    })?;
    let policy = crate::proxy::DialPolicy {
        allow_loopback: local_addr.ip().is_loopback(),
        own: std::iter::once(local_addr).chain(cfg.peer_listen).collect(),
    };
    api.set_node_dialer(crate::proxy::NodeDialer::new(
        &secrets.ca,
        &node_ca.cert_pem,
        policy,
    )?);
    ensure_system_namespaces(api.registry())
        .await
        .map_err(|e| StartError::Store(e.message))?;
    if let Some(path) = &cfg.admin_kubeconfig {
        match std::fs::read_to_string(&token_file) {
            Ok(token) => {
                let host = if local_addr.ip().is_unspecified() {
                    "127.0.0.1".to_string()
                } else {
                    local_addr.ip().to_string()
                };
                let server = format!("https://{host}:{}", local_addr.port());
                let text = kubeconfig(&server, &secrets.ca.cert_pem, "admin", token.trim());
                write_file(path, &text, true)?;
                tracing::info!("admin kubeconfig written to {}", path.display());
            }
            Err(_) => tracing::info!(
                "no admin token on this member (it was created on the first member); copy that member's kubeconfig"
            ),
        }
    }
    tracing::info!("API server listening on https://{local_addr}");
    let serving = tokio::spawn(serve(api.clone(), listener, tls));
    let compacting = tokio::spawn(compact_periodically(store, cfg.compaction_interval));
    let task = tokio::spawn(async move {
        let _ = tokio::join!(serving, compacting);
    });
    let host = if local_addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        local_addr.ip().to_string()
    };
    let internal = InternalAccess {
        url: format!("https://{host}:{}", local_addr.port()),
        ca_pem: secrets.ca.cert_pem.clone(),
        token: api
            .internal_token()
            .map_err(|e| StartError::Store(e.message))?,
    };
    Ok(Running {
        api,
        local_addr,
        internal,
        task,
    })
}

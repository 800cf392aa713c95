//! Starting the API server on a store member: the cluster's CA and admin token
//! (created once, kept in the store so every member shares them), this member's
//! serving certificate, the system namespaces, and the admin kubeconfig.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rk8s_raftstore::proto::RangeRequest;
use rk8s_raftstore::server::Store;

use rk8s_http::renewal::{LiveCert, keep_renewed};
use rk8s_http::tls::api_server_config;
use rk8s_http::wire::kubeconfig_with_certificate;

use crate::bootstrap::pki::{ClusterCa, PkiError};
use crate::bootstrap::secrets::{self, CLUSTER_KEY};
use crate::bootstrap::write_file;
use crate::server::{ApiServer, serve};
use crate::status::{ApiError, ApiResult};
use crate::system_objects::ensure_system_objects;

pub use crate::bootstrap::StartError;

/// The file in a member's data directory that holds the URL its API server
/// advertises (what `rk8s-server token create` prints in join commands).
pub const ADVERTISE_URL_FILE: &str = "advertise-url";

pub use crate::bootstrap::ADMIN_TOKEN_FILE;

/// The address to advertise for an API server listening on `listen`: `listen`
/// itself when it is one address, else this host's primary address (the source
/// address of its default route: a UDP socket is connected, which sends nothing),
/// else loopback.
pub fn advertise_address(listen: IpAddr) -> IpAddr {
    if !listen.is_unspecified() {
        return listen;
    }
    let primary = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|socket| {
        // TEST-NET-2: any global address selects the default route.
        socket.connect("198.51.100.1:9")?;
        socket.local_addr()
    });
    match primary {
        Ok(addr) if !addr.ip().is_unspecified() => addr.ip(),
        _ => IpAddr::from([127, 0, 0, 1]),
    }
}

/// How the API server starts.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// The member's data directory (certificates go to `<data_dir>/pki`).
    pub data_dir: PathBuf,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The address nodes and clients on other hosts reach this API server at
    /// ([`advertise_address`]): in the serving certificate, and in
    /// `<data_dir>/advertise-url` for `token create`'s join commands.
    pub advertise: IpAddr,
    /// Extra names or addresses for the serving certificate.
    pub tls_sans: Vec<String>,
    /// Where to write the admin kubeconfig (`None`: do not write one).
    pub admin_kubeconfig: Option<PathBuf>,
    /// How often the leader compacts the store's history (as Kubernetes compacts
    /// etcd): each time, everything older than the previous round goes.
    pub compaction_interval: Duration,
    /// How long the API server's serving and client certificates and the node agents'
    /// serving certificates are valid; each is renewed while in use.
    pub cluster_signing_duration: Duration,
    /// Bytes of history (values no longer current) beyond which the leader compacts
    /// sooner, keeping [`crate::compaction::MIN_HISTORY`] (0: no limit).
    pub compaction_history_limit: u64,
    /// Concurrent reads served before 429 (0: no limit).
    pub max_requests_inflight: usize,
    /// Concurrent writes served before 429 (0: no limit).
    pub max_mutating_requests_inflight: usize,
    /// The ranges joining nodes get.
    pub pod_cidrs: crate::bootstrap::join::PodCidrs,
    /// Where Services' ClusterIPs and node ports come from.
    pub service_ranges: crate::allocator::ServiceRanges,
    /// The member CA this member made as the cluster's first (see
    /// [`crate::bootstrap::members::bootstrap`]): stored with the cluster's secrets.
    pub member_ca: Option<ClusterCa>,
    /// The store's peer address: like the API port, never dialed as a node's.
    pub peer_listen: Option<SocketAddr>,
    /// Scheduled snapshots of the store (`None`: none).
    pub snapshots: Option<crate::snapshots::Schedule>,
    /// The audit log (`None`: none is kept).
    pub audit: Option<crate::audit::AuditConfig>,
    /// Whether callers without credentials reach health and version.
    pub anonymous_auth: bool,
    /// How long new pods tolerate a node gone missing (DefaultTolerationSeconds).
    pub default_tolerations: crate::default_tolerations::DefaultTolerationSeconds,
}

/// An audit log that cannot start, as a start error.
fn audit_error(e: crate::audit::Error) -> StartError {
    match e {
        crate::audit::Error::Open { path, source } => StartError::Io { path, source },
        crate::audit::Error::Writer(source) => StartError::Io {
            path: PathBuf::from("audit log writer thread"),
            source,
        },
        other @ crate::audit::Error::InvalidPolicy { .. } => StartError::Io {
            path: PathBuf::from("audit policy"),
            source: std::io::Error::other(other.to_string()),
        },
    }
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

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// A running API server.
pub struct Running {
    /// The server's state (for in-process callers).
    pub api: Arc<ApiServer>,
    /// The address it listens on.
    pub local_addr: SocketAddr,
    /// How this process' own clients reach it.
    pub internal: InternalAccess,
    /// The cluster CA certificate (PEM).
    pub ca_cert: String,
    task: tokio::task::JoinHandle<()>,
}

/// What an in-process client (the scheduler, the controllers) needs: connections to
/// this member's API that stay in the process, and credentials valid for this
/// process' lifetime, one per component.
#[derive(Clone)]
pub struct InternalAccess {
    /// Opens connections (see [`rk8s_http::loopback`]).
    pub connector: rk8s_http::loopback::Connector,
    api: Arc<ApiServer>,
}

impl InternalAccess {
    /// The credential of the component that runs as `user` (one of
    /// [`rk8s_api::identities`]): refused for a user the control plane's default
    /// bindings do not name, whose every request would be forbidden.
    pub fn token(&self, user: &str) -> ApiResult<String> {
        if !crate::rbac::components::is_component(user) {
            return Err(ApiError::internal(format!(
                "{user:?} is not one of the control plane's components"
            )));
        }
        self.api.component_token(user)
    }
}

impl std::fmt::Debug for InternalAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalAccess").finish_non_exhaustive()
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
    // The log opens first: a path that cannot be written stops the start at once.
    let auditor = match &cfg.audit {
        Some(audit) => Some(crate::audit::Auditor::start(audit).map_err(audit_error)?),
        None => None,
    };
    wait_ready(&store).await?;
    let (secrets, admin_token) = secrets::read_or_create(&store, cfg.member_ca.as_ref()).await?;
    let pki = cfg.data_dir.join("pki");
    write_file(&pki.join("ca.crt"), &secrets.ca.cert_pem, false)?;
    let token_file = cfg.data_dir.join(ADMIN_TOKEN_FILE);
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
    if !cfg.advertise.is_unspecified() {
        names.push(cfg.advertise.to_string());
    }
    names.extend(cfg.tls_sans.iter().cloned());
    // What in-cluster clients dial: the `kubernetes` Service by name and address.
    names.extend(
        [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        .map(String::from),
    );
    names.extend(
        cfg.service_ranges
            .cluster_ips
            .nth(1)
            .map(|ip| ip.to_string()),
    );
    names.sort();
    names.dedup();
    let cluster_ca = secrets
        .ca
        .clone()
        .with_leaf_validity(cfg.cluster_signing_duration);
    // Written where `certs check` reads it, at the start and at each renewal.
    let write_serving = {
        let pki = pki.clone();
        move |cert: &str, key: &str| -> Result<(), StartError> {
            write_file(&pki.join("apiserver.crt"), cert, false)?;
            write_file(&pki.join("apiserver.key"), key, true)
        }
    };
    let (cert, key) = cluster_ca.issue_server(&names)?;
    write_serving(&cert, &key)?;
    let serving_cert = LiveCert::new(&cert, &key).map_err(PkiError::from)?;
    let renewing_serving = keep_renewed(
        "API server's serving",
        serving_cert.clone(),
        cert,
        {
            let ca = cluster_ca.clone();
            move || std::future::ready(ca.issue_server(&names).map_err(|e| e.to_string()))
        },
        move |cert: &str, key: &str| write_serving(cert, key).map_err(|e| e.to_string()),
    );
    let client_ca = secrets
        .client_ca
        .as_ref()
        .ok_or_else(|| PkiError::Invalid {
            what: "cluster secrets",
            detail: "no client CA".into(),
        })?;
    write_file(&pki.join("client-ca.crt"), &client_ca.cert_pem, false)?;
    let (tls, clients) =
        api_server_config(serving_cert, &client_ca.cert_pem).map_err(PkiError::from)?;
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
    api.set_anonymous_auth(cfg.anonymous_auth);
    if let Some(auditor) = auditor {
        api.set_audit(auditor);
    }
    let account_key = secrets
        .service_account_key
        .as_deref()
        .ok_or_else(|| PkiError::Invalid {
            what: "cluster secrets",
            detail: "no service-account key".into(),
        })
        .and_then(|k| {
            crate::service_accounts::SigningKey::from_base64(k).map_err(|detail| {
                PkiError::Invalid {
                    what: "cluster secrets",
                    detail,
                }
            })
        })?;
    api.set_service_account_key(account_key);
    api.registry().set_service_ranges(cfg.service_ranges);
    api.set_default_tolerations(cfg.default_tolerations);
    let node_ca = secrets.node_ca.as_ref().ok_or_else(|| PkiError::Invalid {
        what: "cluster secrets",
        detail: "no node CA".into(),
    })?;
    // Nodes on loopback share this host: only when the API server is reached on
    // loopback (it listens there, or everywhere and advertises nothing else).
    let policy = crate::proxy::DialPolicy {
        allow_loopback: local_addr.ip().is_loopback()
            || (local_addr.ip().is_unspecified() && cfg.advertise.is_loopback()),
        own: std::iter::once(local_addr).chain(cfg.peer_listen).collect(),
    };
    let (cert, key) = cluster_ca.issue_apiserver_client()?;
    let client_cert = LiveCert::new(&cert, &key).map_err(PkiError::from)?;
    api.set_node_dialer(crate::proxy::NodeDialer::new(
        client_cert.clone(),
        &node_ca.cert_pem,
        policy,
    )?);
    let renewing_client = keep_renewed(
        "API server's client (towards node agents)",
        client_cert,
        cert,
        move || {
            std::future::ready(
                cluster_ca
                    .issue_apiserver_client()
                    .map_err(|e| e.to_string()),
            )
        },
        |_: &str, _: &str| Ok(()),
    );
    api.set_cluster_signing_duration(cfg.cluster_signing_duration);
    ensure_system_objects(api.registry())
        .await
        .map_err(|e| StartError::Store(e.message))?;
    // kube-apiserver's default roles and bindings, reconciled at every start.
    crate::rbac::bootstrap::ensure_defaults(api.registry())
        .await
        .map_err(|e| StartError::Store(e.message))?;
    // Before the kubeconfig, which tells whoever waits for it that the server is up.
    let advertised = format!(
        "https://{}",
        SocketAddr::new(cfg.advertise, local_addr.port())
    );
    write_file(&cfg.data_dir.join(ADVERTISE_URL_FILE), &advertised, false)?;
    if let Some(path) = &cfg.admin_kubeconfig {
        let host = if local_addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            local_addr.ip().to_string()
        };
        let server = format!("https://{host}:{}", local_addr.port());
        // A client certificate in `system:masters` (kubeadm's super-admin.conf; kept in
        // `pki/admin.crt`, renewed near its end); the static token stays in
        // `pki/admin.token` for clients that want one.
        let (cert, key) = crate::bootstrap::certs::admin_certificate(&cfg.data_dir, client_ca)?;
        let text = kubeconfig_with_certificate(&server, &secrets.ca.cert_pem, "admin", &cert, &key);
        write_file(path, &text, true)?;
        tracing::info!("admin kubeconfig written to {}", path.display());
    }
    tracing::info!("API server listening on https://{local_addr}, advertised as {advertised}");
    let serving = tokio::spawn(serve(api.clone(), listener, tls, clients));
    let compacting = tokio::spawn(crate::compaction::compact_periodically(
        store.clone(),
        cfg.compaction_interval,
        cfg.compaction_history_limit,
    ));
    let master_service = tokio::spawn({
        let (registry, advertise, port) =
            (api.registry().clone(), cfg.advertise, local_addr.port());
        async move {
            // A member that advertises no address is no endpoint for pods.
            if !advertise.is_unspecified() {
                crate::service_accounts::master_service::run(registry, advertise, port).await;
            }
        }
    });
    let signing = tokio::spawn(crate::certificate_signer::run(
        api.clone(),
        client_ca.clone(),
    ));
    let snapshotting = tokio::spawn(async move {
        if let Some(schedule) = cfg.snapshots {
            crate::snapshots::save_periodically(store, schedule).await;
        }
    });
    let task = tokio::spawn(async move {
        // The certificates are renewed for as long as the server serves.
        tokio::select! {
            _ = async { tokio::join!(serving, compacting, snapshotting, master_service, signing) } => {}
            _ = async { tokio::join!(renewing_serving, renewing_client) } => {}
        }
    });
    let internal = InternalAccess {
        connector: crate::server::in_process(api.clone()),
        api: api.clone(),
    };
    Ok(Running {
        api,
        local_addr,
        internal,
        ca_cert: secrets.ca.cert_pem.clone(),
        task,
    })
}

//! `rk8s-server` (no verb): run a control-plane member — the store and the API
//! server — until SIGTERM or Ctrl-C.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use rk8s_apiserver::bootstrap::certs;
use rk8s_apiserver::bootstrap::members::{self, MemberCerts};
use rk8s_apiserver::cluster::{self, ApiConfig};
use rk8s_apiserver::snapshots::Schedule;
use rk8s_raftstore::server::{self, MemberConfig};
use tokio::signal::unix::{SignalKind, signal};

#[derive(clap::Args)]
pub struct Args {
    /// A YAML file of settings: these flags without their dashes as keys
    /// (`data-dir: /srv/rk8s`, `tls-san: [a, b]`); flags given here win [default:
    /// /etc/rk8s/server.yaml when it exists].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the store's log and snapshots and the certificates live.
    #[arg(long, default_value = super::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Address the API server listens on (all of this host's by default, as k3s).
    #[arg(long, default_value = "0.0.0.0")]
    address: IpAddr,
    /// The address nodes and clients on other hosts reach the API server at: named in
    /// its certificate and in the join commands `token create` prints [default:
    /// --address if it is one address, else this host's primary address (the one its
    /// default route leaves from), else 127.0.0.1].
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// Port of the API server (HTTPS).
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// Extra DNS names or IP addresses for the API server's certificate.
    #[arg(long = "tls-san", value_name = "NAME")]
    tls_sans: Vec<String>,
    /// Where to write the admin kubeconfig [default: ~/.rk8s/config].
    #[arg(long, env = "RK8S_ADMIN_KUBECONFIG")]
    admin_kubeconfig: Option<PathBuf>,
    /// Address for peers and store clients.
    #[arg(long, default_value = "127.0.0.1:2380")]
    peer_listen: SocketAddr,
    /// Address peers should use to reach this member (default: --peer-listen).
    #[arg(long)]
    advertise: Option<String>,
    /// Join an existing cluster through a member's API server (`https://HOST:PORT`),
    /// with a member bootstrap token (`rk8s-server token create --member` prints the
    /// whole command); only used the first time, when the data directory is new.
    #[arg(long, value_name = "URL", requires_all = ["token", "ca_cert_hash"])]
    join: Option<String>,
    /// The member bootstrap token for --join.
    #[arg(long, requires = "join")]
    token: Option<String>,
    /// The cluster CA's hash (`sha256:<hex>`) for --join: the member trusts the server
    /// only if its CA has this hash.
    #[arg(long, requires = "join")]
    ca_cert_hash: Option<String>,
    /// How often the store's history is compacted (watchers and paginated lists can
    /// resume from revisions up to one interval old).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    compaction_interval: std::time::Duration,
    /// How long the certificates this cluster issues are valid: its API servers'
    /// (serving, and client towards node agents), node agents' (serving), joining
    /// store members' and every renewal. Each is renewed while in use at 70-90 % of
    /// its life, as kubelet renews its own (kube-controller-manager's flag of this
    /// name); at least 10s.
    #[arg(long, default_value = "8760h", value_parser = parse_signing_duration)]
    cluster_signing_duration: std::time::Duration,
    /// MiB of history (values no longer current, kept in memory until compacted)
    /// beyond which the history is compacted sooner, keeping its last 60 seconds (0: no
    /// limit).
    #[arg(long, default_value_t = 256)]
    compaction_history_mib: u64,
    /// How often this member saves a snapshot of the store into --snapshot-dir, as
    /// `rk8s-server snapshot save` does (0s: never).
    #[arg(long, default_value = "12h", value_parser = parse_duration)]
    snapshot_interval: std::time::Duration,
    /// How many of this member's scheduled snapshots are kept (the oldest go first).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    snapshot_retention: u32,
    /// Where scheduled snapshots go [default: DATA_DIR/snapshots].
    #[arg(long)]
    snapshot_dir: Option<PathBuf>,
    /// Concurrent non-mutating requests served before 429 Too Many Requests (0: no
    /// limit; the admin and the control plane, system:masters, are always served).
    #[arg(long, default_value_t = rk8s_apiserver::server::MAX_READS_INFLIGHT)]
    max_requests_inflight: usize,
    /// Concurrent mutating requests served before 429 (0: no limit; the admin and the
    /// control plane, system:masters, are always served).
    #[arg(long, default_value_t = rk8s_apiserver::server::MAX_WRITES_INFLIGHT)]
    max_mutating_requests_inflight: usize,
    /// The pods' address range of the whole cluster; each joining node gets a piece.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: rk8s_netoverlay::Ipv4Net,
    /// The prefix length of each node's piece of --cluster-cidr.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u8).range(8..=30))]
    node_cidr_mask_size: u8,
    /// Services' virtual addresses (ClusterIPs) come from this range.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: rk8s_netoverlay::Ipv4Net,
    /// Services' node ports come from this range (`LOW-HIGH`).
    #[arg(long, default_value = "30000-32767", value_parser = parse_port_range)]
    service_node_port_range: (u16, u16),
    /// The scheduler's profiles (a `KubeSchedulerConfiguration`-shaped YAML file;
    /// default: one profile, `default-scheduler`, with the default plugins).
    #[arg(long)]
    scheduler_config: Option<PathBuf>,
    /// Run no scheduler on this member (pods stay Pending unless bound otherwise).
    #[arg(long)]
    disable_scheduler: bool,
    /// Run no controllers on this member (ReplicaSets, Deployments… are not acted on;
    /// each namespace still gets its `default` ServiceAccount and `kube-root-ca.crt`,
    /// without which no pod is admitted).
    #[arg(long)]
    disable_controllers: bool,
    /// A node whose Lease is not renewed for this long is unreachable: tainted, and
    /// its pods evicted after their tolerations.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    node_monitor_grace_period: std::time::Duration,
    /// How long a new pod tolerates its node's `node.kubernetes.io/not-ready:NoExecute`
    /// taint unless it says otherwise (a toleration added to it), in seconds.
    #[arg(long, default_value_t = 300)]
    default_not_ready_toleration_seconds: i64,
    /// How long a new pod tolerates its node's `node.kubernetes.io/unreachable:NoExecute`
    /// taint unless it says otherwise (a toleration added to it; pods made before have
    /// it applied), in seconds.
    #[arg(long, default_value_t = 300)]
    default_unreachable_toleration_seconds: i64,
    /// The Prometheus server HorizontalPodAutoscalers read Pods, Object and External
    /// metrics from (`http://HOST:PORT`).
    #[arg(long)]
    prometheus_url: Option<String>,
    /// Time between two syncs of one HorizontalPodAutoscaler.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    horizontal_pod_autoscaler_sync_period: std::time::Duration,
    /// Metric ratios within 1 ± this do not rescale.
    #[arg(long, default_value_t = 0.1)]
    horizontal_pod_autoscaler_tolerance: f64,
    /// After a pod starts, its CPU is trusted only once it is Ready and measured for a
    /// whole window, for this long.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    horizontal_pod_autoscaler_cpu_initialization_period: std::time::Duration,
    /// A pod that never became Ready this soon after starting is taken as not yet
    /// ready, for CPU.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    horizontal_pod_autoscaler_initial_readiness_delay: std::time::Duration,
    /// Serve `/rk8s/v1/debug/actors` (admin only): list the control plane's actors
    /// and kill them (`rk8sctl debug actors|kill-actor`), for chaos testing.
    #[arg(long)]
    enable_chaos: bool,
    /// Log entries between store snapshots (etcd's --snapshot-count); a snapshot is
    /// also taken once the entries since the last one hold 64 MiB and as many bytes
    /// as the store's state.
    #[arg(long, default_value_t = rk8s_raftstore::node::DEFAULT_SNAPSHOT_ENTRIES)]
    snapshot_entries: u64,
    /// The audit policy (kube-apiserver's `audit.k8s.io/v1` Policy, YAML or JSON):
    /// which requests the audit log records, and how much of each. Needs
    /// --audit-log-path.
    #[arg(long, value_name = "FILE")]
    audit_policy_file: Option<PathBuf>,
    /// Where the audit log is written, one JSON event a line (`-`: standard output).
    /// Needs --audit-policy-file.
    #[arg(long, value_name = "FILE")]
    audit_log_path: Option<PathBuf>,
    /// Size in MiB past which the audit log file is rotated (renamed
    /// NAME-<UTC time>.EXT); 0 is taken as 100, as kube-apiserver does.
    #[arg(long, default_value_t = 100)]
    audit_log_maxsize: u64,
    /// Rotated audit log files kept, the newest (0: all).
    #[arg(long, default_value_t = 0)]
    audit_log_maxbackup: usize,
    /// Days rotated audit log files are kept, by the time in their names (0: no
    /// limit).
    #[arg(long, default_value_t = 0)]
    audit_log_maxage: u64,
    /// Whether requests without credentials reach /healthz, /livez, /readyz and
    /// /version (kube-apiserver's --anonymous-auth); with false, they need a credential
    /// RBAC lets read them (every authenticated user's, by default). The cluster CA
    /// (/rk8s/v1/cluster-info) stays public: nodes pin it by its hash.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    anonymous_auth: bool,
    /// Encrypt objects at rest as this file says (kube-apiserver's
    /// `apiserver.config.k8s.io/v1` EncryptionConfiguration: resources, and
    /// aesgcm/aescbc/secretbox/identity providers; the first key writes, every key
    /// reads). Every member needs the same file; after adding a key first, `rk8s-server
    /// encryption rewrite` moves the stored objects to it.
    #[arg(long, value_name = "FILE")]
    encryption_provider_config: Option<PathBuf>,
}

pub use rk8s_api::duration::parse_duration;

/// `--cluster-signing-duration`: a duration of at least 10 seconds (a certificate
/// renewed at 70-90 % of a shorter life would be renewed all the time).
fn parse_signing_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(s)?;
    if d < std::time::Duration::from_secs(10) {
        return Err(format!("{s:?} is shorter than 10s"));
    }
    Ok(d)
}

fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (low, high) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?} is not a port range such as 30000-32767"))?;
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{p:?} in {s:?} is not a port (1-65535)"))
    };
    let (low, high) = (port(low)?, port(high)?);
    if low > high {
        return Err(format!("{s:?}: the first port is above the last"));
    }
    Ok((low, high))
}

pub fn default_kubeconfig() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rk8s").join("config"))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(file) = &args.config {
        tracing::info!("settings read from {}", file.display());
    }
    super::check_data_dir(&args.data_dir)?;
    let hpa = hpa_config(&args)?;
    if args.node_cidr_mask_size < args.cluster_cidr.prefix() {
        anyhow::bail!(
            "--node-cidr-mask-size {} is larger a range than --cluster-cidr {} itself",
            args.node_cidr_mask_size,
            args.cluster_cidr
        );
    }
    // A bad scheduler configuration stops the start, naming the file, line and field.
    let profiles = scheduler_profiles(args.scheduler_config.as_deref())?;
    // So does a bad audit policy.
    let audit = audit_config(&args)?;
    // And a bad encryption configuration (its keys are checked before any is used).
    let transformer = encryption_transformer(args.encryption_provider_config.as_deref())?;
    let advertise = args
        .advertise
        .clone()
        .unwrap_or_else(|| args.peer_listen.to_string());
    let pki = member_pki(&args, &advertise).await?;
    let mut cfg = MemberConfig::new(&args.data_dir, args.peer_listen);
    cfg.advertise = Some(advertise);
    cfg.join = pki.join.clone();
    cfg.snapshot_entries = args.snapshot_entries;
    let (tls, member_cert) = pki
        .certs
        .renewable_tls()
        .context("the member's certificates")?;
    cfg.tls = Some(tls);
    cfg.transformer = transformer;
    let store = server::start(cfg)
        .await
        .context("failed to start the store member")?;
    if pki.join.is_some() {
        // Kept only once the store has this member: a failed join leaves no
        // certificate that a restart would take for a finished one.
        pki.certs.save(&args.data_dir)?;
    }
    let snapshot_dir = args
        .snapshot_dir
        .clone()
        .unwrap_or_else(|| args.data_dir.join("snapshots"));
    let data_dir = args.data_dir.clone();
    let api = cluster::start(
        store.clone(),
        ApiConfig {
            data_dir: args.data_dir,
            listen: SocketAddr::new(args.address, args.port),
            advertise: args
                .advertise_address
                .unwrap_or_else(|| cluster::advertise_address(args.address)),
            tls_sans: args.tls_sans,
            admin_kubeconfig: args.admin_kubeconfig.or_else(default_kubeconfig),
            compaction_interval: args.compaction_interval,
            cluster_signing_duration: args.cluster_signing_duration,
            compaction_history_limit: args.compaction_history_mib.saturating_mul(1 << 20),
            max_requests_inflight: args.max_requests_inflight,
            max_mutating_requests_inflight: args.max_mutating_requests_inflight,
            pod_cidrs: rk8s_apiserver::bootstrap::join::PodCidrs {
                cluster: args.cluster_cidr,
                node_prefix: args.node_cidr_mask_size,
            },
            service_ranges: rk8s_apiserver::allocator::ServiceRanges {
                cluster_ips: args.service_cluster_ip_range,
                node_ports: args.service_node_port_range,
            },
            member_ca: pki.member_ca,
            peer_listen: Some(args.peer_listen),
            snapshots: (!args.snapshot_interval.is_zero()).then_some(Schedule {
                dir: snapshot_dir,
                interval: args.snapshot_interval,
                retention: args.snapshot_retention as usize,
            }),
            audit,
            default_tolerations: rk8s_apiserver::default_tolerations::DefaultTolerationSeconds {
                not_ready: args.default_not_ready_toleration_seconds,
                unreachable: args.default_unreachable_toleration_seconds,
            },
            anonymous_auth: args.anonymous_auth,
        },
    )
    .await
    .context("failed to start the API server")?;
    tokio::spawn(certs::keep_member_renewed(
        store.clone(),
        data_dir.clone(),
        member_cert,
        (pki.certs.cert.clone(), args.cluster_signing_duration),
    ));
    let actors = rk8s_actors::supervision::Actors::default();
    if let Err(e) = rk8s_actors::supervision::metrics::ActorMetrics::register(actors.clone()) {
        tracing::warn!("the actors' metrics are not exported: {e}");
    }
    if args.enable_chaos {
        tracing::warn!("chaos endpoints on: the admin may kill the control plane's actors");
        api.api.set_chaos(std::sync::Arc::new(
            rk8s_actors::control_plane::ChaosControl(actors.clone()),
        ));
    }
    {
        let internal = api.internal.clone();
        rk8s_actors::control_plane::spawn(
            store.leadership(),
            rk8s_actors::control_plane::ControlPlaneConfig {
                client: Box::new({
                    let pool = InternalPool::new(&internal);
                    move |user| {
                        let token = internal.token(user).map_err(|e| e.message)?;
                        pool.client(user, &token)
                    }
                }),
                profiles,
                scheduler: !args.disable_scheduler,
                controllers: !args.disable_controllers,
                root_ca: api.ca_cert.clone(),
                lifecycle: rk8s_controllers::node_lifecycle_actor::LifecycleConfig {
                    grace: args.node_monitor_grace_period,
                    default_toleration_seconds: args.default_unreachable_toleration_seconds,
                },
                hpa,
                actors,
            },
        )
        .context("failed to start the control plane's actors")?;
    }
    let mut term = signal(SignalKind::terminate()).context("failed to handle SIGTERM")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
    api.stop();
    store.shutdown();
    // Give the raft thread a moment to finish its batch.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    Ok(())
}

/// What the store member needs for its mutual TLS, and where it joins.
struct MemberPki {
    certs: MemberCerts,
    /// The member CA, on the cluster's first member.
    member_ca: Option<rk8s_apiserver::bootstrap::pki::ClusterCa>,
    /// The store address to join through, when the certificates came from a join
    /// just now (they are saved once the store has this member).
    join: Option<String>,
}

/// The member's certificates as `members::member_pki` decides, joining through a
/// member's API server when it says so.
async fn member_pki(args: &Args, advertise: &str) -> anyhow::Result<MemberPki> {
    let joining = (&args.join, &args.token, &args.ca_cert_hash);
    let decided = members::member_pki(&args.data_dir, advertise, args.join.is_some())?;
    let (certs, member_ca) = match decided {
        members::MemberPki::Saved { certs, member_ca } => (certs, member_ca),
        members::MemberPki::Bootstrapped { certs, member_ca } => (certs, Some(member_ca)),
        members::MemberPki::Join => {
            let (Some(url), Some(token), Some(hash)) = joining else {
                anyhow::bail!("--join needs --token and --ca-cert-hash");
            };
            let joined = join_through_api(url, token, hash, advertise)
                .await
                .with_context(|| format!("failed to join the cluster through {url}"))?;
            tracing::info!(through = %joined.join, "got a member certificate; joining the store");
            return Ok(MemberPki {
                certs: joined.certs,
                member_ca: None,
                join: Some(joined.join),
            });
        }
    };
    Ok(MemberPki {
        certs,
        member_ca,
        join: None,
    })
}

/// Asks the API server at `url` (trusted once its CA matches `hash`) for a member
/// certificate for `advertise`.
async fn join_through_api(
    url: &str,
    token: &str,
    hash: &str,
    advertise: &str,
) -> anyhow::Result<members::JoinResponse> {
    use rk8s_actors::node::identity;
    let ca = identity::trusted_ca(url, hash).await?;
    let client = identity::client_for(url, &ca, token)?;
    let body = serde_json::to_vec(&serde_json::json!({ "peerAddress": advertise }))?;
    let request = http::Request::post("/rk8s/v1/members")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)?;
    client.request(request).await.map_err(|e| match e {
        kube::Error::Api(status) => anyhow::anyhow!("the server refused: {}", status.message),
        other => anyhow::anyhow!("the request failed: {other}"),
    })
}

fn hpa_config(args: &Args) -> anyhow::Result<rk8s_controllers::hpa_actor::HpaConfig> {
    let duration = |d: std::time::Duration| jiff::SignedDuration::try_from(d).unwrap_or_default();
    if !(0.0..1.0).contains(&args.horizontal_pod_autoscaler_tolerance) {
        anyhow::bail!(
            "--horizontal-pod-autoscaler-tolerance {}: must be at least 0 and below 1",
            args.horizontal_pod_autoscaler_tolerance
        );
    }
    Ok(rk8s_controllers::hpa_actor::HpaConfig {
        sync_period: args
            .horizontal_pod_autoscaler_sync_period
            .max(std::time::Duration::from_millis(100)),
        tunables: rk8s_controllers::hpa::Tunables {
            tolerance: args.horizontal_pod_autoscaler_tolerance,
            cpu_initialization_period: duration(
                args.horizontal_pod_autoscaler_cpu_initialization_period,
            ),
            initial_readiness_delay: duration(
                args.horizontal_pod_autoscaler_initial_readiness_delay,
            ),
        },
        prometheus: args
            .prometheus_url
            .as_deref()
            .map(rk8s_controllers::promql::Prometheus::new)
            .transpose()
            .map_err(anyhow::Error::msg)?,
    })
}

/// The audit log the flags ask for: both a policy and a log path, as
/// kube-apiserver's log backend needs both (either alone records nothing).
fn audit_config(args: &Args) -> anyhow::Result<Option<rk8s_apiserver::audit::AuditConfig>> {
    use rk8s_apiserver::audit::{AuditConfig, LogTarget, Rotation};
    let (policy, log) = match (&args.audit_policy_file, &args.audit_log_path) {
        (Some(policy), Some(log)) => (policy, log),
        (None, None) => return Ok(None),
        (Some(_), None) => {
            tracing::warn!("--audit-policy-file without --audit-log-path: no audit log is kept");
            return Ok(None);
        }
        (None, Some(_)) => {
            tracing::warn!("--audit-log-path without --audit-policy-file: no audit log is kept");
            return Ok(None);
        }
    };
    let text = std::fs::read_to_string(policy)
        .with_context(|| format!("cannot read the audit policy {}", policy.display()))?;
    let rotation = Rotation::from_flags(
        args.audit_log_maxsize,
        args.audit_log_maxbackup,
        args.audit_log_maxage,
    );
    let target = LogTarget::from_path(log.clone(), rotation);
    let config = AuditConfig::load(&policy.display().to_string(), &text, target)
        .context("the audit policy is not valid")?;
    config.log.check()?;
    Ok(Some(config))
}

/// The store's encryption at rest from `--encryption-provider-config`, if given.
fn encryption_transformer(
    file: Option<&std::path::Path>,
) -> anyhow::Result<Option<std::sync::Arc<dyn rk8s_raftstore::transform::ValueTransformer>>> {
    let Some(file) = file else {
        return Ok(None);
    };
    let t = rk8s_apiserver::encryption::EncryptionTransformer::load(file)
        .context("the encryption provider configuration is not valid")?;
    tracing::info!(
        "encryption at rest of {} (from {})",
        t.prefixes().join(", "),
        file.display()
    );
    Ok(Some(std::sync::Arc::new(t)))
}

fn scheduler_profiles(
    file: Option<&std::path::Path>,
) -> anyhow::Result<Vec<rk8s_scheduler::profile::Profile>> {
    use rk8s_scheduler::profile;
    let config = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            profile::load(&path.display().to_string(), &text).map_err(anyhow::Error::msg)?
        }
        None => profile::Configuration::default(),
    };
    let registry = rk8s_scheduler::plugins::Registry::default();
    profile::build(&config, &registry).map_err(|e| match file {
        Some(path) => anyhow::anyhow!("{}: {e}", path.display()),
        None => anyhow::anyhow!(e),
    })
}

/// How many requests the controllers (with the shared informers) have under way at
/// once, all together; the others wait their turn in order (kube-controller-manager's
/// clients are bounded too, by rate: `--kube-api-qps`, `--kube-api-burst`). Each
/// request under way holds an in-process connection with its buffers, kept in the pool
/// afterwards: 1,000 ReplicaSets created at once had over 2,000 of them open. A watch
/// counts only until its response begins. The scheduler has as many of its own, so
/// that its bindings never wait behind the controllers' bursts.
const CONCURRENT_REQUESTS: usize = 128;

/// The in-process connections of the control plane's clients: one pool, two bounds
/// (the scheduler's, everyone else's).
struct InternalPool {
    http: hyper_util::client::legacy::Client<rk8s_http::loopback::Connector, kube::client::Body>,
    scheduler: std::sync::Arc<tokio::sync::Semaphore>,
    controllers: std::sync::Arc<tokio::sync::Semaphore>,
}

impl InternalPool {
    fn new(access: &rk8s_apiserver::cluster::InternalAccess) -> Self {
        let bound = || std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENT_REQUESTS));
        InternalPool {
            http: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(access.connector.clone()),
            scheduler: bound(),
            controllers: bound(),
        }
    }

    /// A client of this member's own API as the component `user` with its credential
    /// `token`, over in-process connections (no TLS, no sockets: see
    /// `rk8s_http::loopback`).
    fn client(&self, user: &str, token: &str) -> Result<kube::Client, String> {
        use kube::client::ConfigExt;
        let mut config = kube::Config::new(http::Uri::from_static("http://in-process"));
        config.auth_info.token = Some(token.to_string().into());
        let auth = config
            .auth_layer()
            .map_err(|e| e.to_string())?
            .ok_or("the internal credential makes no authentication layer")?;
        let bound = match user {
            rk8s_api::identities::SCHEDULER => &self.scheduler,
            _ => &self.controllers,
        };
        let http = tower::limit::ConcurrencyLimit::with_semaphore(self.http.clone(), bound.clone());
        let http = tower::ServiceExt::map_err(http, tower::BoxError::from);
        Ok(kube::client::ClientBuilder::new(http, "default")
            .with_layer(&config.base_uri_layer())
            .with_layer(&auth)
            .build())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn a_bare_zero_is_a_duration_like_any_other() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(
            parse_duration("-5m")
                .unwrap_err()
                .contains("must not be negative")
        );
        assert!(parse_duration("5").is_err());
    }
}

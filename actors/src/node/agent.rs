//! The node agent as a whole: the runtime and pod network of this host, the static
//! pods of its manifest directory, and — when it has joined a cluster — the
//! supervised NodeActor, the HTTPS endpoint the API server proxies logs, exec and
//! metrics to, the usage readings behind those metrics, and (for chaos tests) a
//! socket that kills actors on request.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Service, Taint};
use kube::runtime::reflector::store::Writer;
use rk8s_http::renewal::{LiveCert, keep_renewed};
use rk8s_netoverlay::dns::{DnsServer, Records};
use rk8s_netoverlay::host::System;
use rk8s_netoverlay::overlay::Overlay;
use rk8s_netoverlay::services::ServiceProxy;
use rk8s_netoverlay::{Ipv4Net, Network, NetworkConfig};
use rk8s_runtime::helper::HelperClient;
use rk8s_runtime::pod::{ClusterDns, PodRuntime, PodRuntimeConfig};
use rk8s_runtime::static_pods::StaticPods;
use rk8s_supervision::Actors;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use super::devices::DeviceManager;
use super::identity::{self, Identity};
use super::network::{self, ClusterNetwork};
use super::node_actor::NodeActor;
use super::registration::{self, NodeInfo};
use super::services::ServiceCache;
use super::stats::Stats;
use super::{Error, Result, server};

/// How the agent runs on this host.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The directory of static Pod manifests.
    pub manifests: PathBuf,
    /// Persistent data: identity, images, bundles, pod records.
    pub data_dir: PathBuf,
    /// Runtime state: the container helper, network allocations.
    pub run_dir: PathBuf,
    /// The pod sandbox's image; default: the pause built in
    /// ([`rk8s_runtime::image::BUILTIN_PAUSE`]).
    pub pause_image: Option<String>,
    /// Mirrors, credentials and TLS for image pulls (`registries.yaml`; no file: none).
    pub registries: PathBuf,
    /// The node's name when it has not joined (default: the hostname).
    pub name: Option<String>,
    /// The pods' range when it has not joined (a joined node uses its podCIDR).
    pub pod_cidr: Ipv4Net,
    /// The pods' bridge.
    pub bridge: String,
    /// How often the manifest directory is read.
    pub sync_period: Duration,
    /// The longest a running pod goes without its ConfigMaps and Secrets read again
    /// (kubelet's `--sync-frequency`, 1 minute).
    pub sync_frequency: Duration,
    /// CPU kept for the system (millicores).
    pub reserved_cpu_milli: u64,
    /// Memory kept for the system (bytes).
    pub reserved_memory: u64,
    /// Most pods.
    pub max_pods: u32,
    /// DiskPressure below this share of free space (percent).
    pub disk_free_percent: u8,
    /// The address of the HTTPS endpoint (logs, exec).
    pub address: IpAddr,
    /// Its port (0: any free one, reported in the Node's status).
    pub port: u16,
    /// The node's InternalIP (default: the source address towards the API server).
    pub node_ip: Option<String>,
    /// Serve `run_dir/chaos.sock`, through which tests kill actors.
    pub chaos: bool,
    /// How often usage is read for the metrics.
    pub stats_interval: Duration,
    /// When unused images are removed.
    pub image_gc: rk8s_runtime::image::gc::GcPolicy,
    /// The whole cluster's pod range (kube-proxy's `--cluster-cidr`): traffic to it
    /// is not masqueraded.
    pub cluster_cidr: Ipv4Net,
    /// The cluster domain of Service names (`cluster.local`).
    pub cluster_domain: String,
    /// The Ingress proxy's plain HTTP port on every address (0: off).
    pub ingress_http_port: u16,
    /// The Ingress proxy's HTTPS port on every address (0: off).
    pub ingress_https_port: u16,
    /// The most requests the Ingress proxy holds per Service waking from zero.
    pub ingress_activation_queue: usize,
    /// Where device plugins register (`kubelet.sock`) and put their sockets, and the
    /// device checkpoint lives (kubelet's `/var/lib/kubelet/device-plugins/`).
    pub device_plugin_dir: PathBuf,
}

/// What a join adds to the Node (kept as given; `run` after a restart keeps what the
/// Node has).
#[derive(Clone, Debug, Default)]
pub struct Registration {
    /// Labels besides kubernetes.io/*.
    pub labels: BTreeMap<String, String>,
    /// Taints.
    pub taints: Vec<Taint>,
}

/// This host's name, lower case.
pub fn hostname() -> Result<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|n| n.trim().to_lowercase())
        .map_err(|source| Error::Io {
            path: "/proc/sys/kernel/hostname".into(),
            source,
        })
}

/// Joins the cluster at `server` with a bootstrap token, saves the identity, and runs.
pub async fn join(
    server: &str,
    token: &str,
    ca_cert_hash: &str,
    config: AgentConfig,
    registration: Registration,
) -> Result<()> {
    let node = match &config.name {
        Some(n) => n.clone(),
        None => hostname()?,
    };
    // Joined already (a unit may run the same join at every boot): run as that node.
    if let Some(saved) = Identity::load(&config.data_dir)? {
        let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
        if !same(&saved.server, server) || saved.node_name != node {
            return Err(Error::Other(format!(
                "this host joined {} as node {} already ({}): to join {server} as {node}, remove that file first",
                saved.server,
                saved.node_name,
                Identity::path(&config.data_dir).display()
            )));
        }
        println!(
            "joined {} as node {} already; running from the saved identity",
            saved.server, saved.node_name
        );
        return run(config, Some(registration)).await;
    }
    let identity = identity::join(server, token, ca_cert_hash, &node).await?;
    identity.save(&config.data_dir)?;
    println!(
        "joined {} as node {} (podCIDR {}); credentials in {}",
        identity.server,
        identity.node_name,
        identity.pod_cidr,
        config.data_dir.display()
    );
    run(config, Some(registration)).await
}

/// Runs the agent until SIGTERM or Ctrl-C; the pods keep running after it (the next
/// start re-adopts them).
pub async fn run(config: AgentConfig, registration: Option<Registration>) -> Result<()> {
    let identity = Identity::load(&config.data_dir)?;
    let node = match (&identity, &config.name) {
        (Some(id), _) => id.node_name.clone(),
        (None, Some(n)) => n.clone(),
        (None, None) => hostname()?,
    };
    let subnet = match &identity {
        Some(id) => id
            .pod_cidr
            .parse()
            .map_err(|e| Error::Other(format!("the saved podCIDR {:?}: {e}", id.pod_cidr)))?,
        None => config.pod_cidr,
    };
    // A cluster node's pods resolve through the node's DNS server on their gateway.
    let dns = identity.as_ref().and_then(|_| {
        Some(ClusterDns {
            nameserver: dns_address(subnet)?.to_string(),
            domain: config.cluster_domain.clone(),
        })
    });
    let mut runtime = parts(&config, subnet, dns)?.0;
    // The Services the cluster network watches give a cluster node's containers their
    // service variables (kubelet's service lister): one watch, one cache.
    let (services, services_w) = kube::runtime::reflector::store::<Service>();
    if identity.is_some() {
        runtime.read_services_from(Arc::new(ServiceCache(services)));
    }
    // What the runtime sees happen to pods (pulls, failed probes) becomes events of a
    // cluster node's pods.
    let happenings = identity.as_ref().map(|_| {
        let (tx, rx) = tokio::sync::mpsc::channel(rk8s_runtime::pod::HAPPENINGS_QUEUED);
        runtime.tell_to(tx);
        rx
    });
    // A cluster node serves the device-plugin API; its containers get their devices.
    let devices = match &identity {
        Some(_) => start_devices(&config, &runtime).await,
        None => None,
    };
    if let Some(devices) = &devices {
        runtime.use_devices_from(devices.clone());
    }
    let runtime = Arc::new(runtime);
    if let Some(devices) = &devices {
        devices.use_runtime(Arc::downgrade(&runtime));
    }
    let pods = StaticPods::new(&config.manifests, node.clone(), runtime.clone());
    tracing::info!(node, manifests = %config.manifests.display(), "running static pods");
    // Everything that can fail comes before the actors start.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| Error::Io {
        path: "SIGTERM".into(),
        source,
    })?;
    let chaos_listener = match (&identity, config.chaos) {
        (Some(_), true) => Some(bind_chaos(&config)?),
        _ => None,
    };
    let node_actor = match &identity {
        Some(id) => {
            let side = start_cluster_side(
                &config,
                id,
                registration,
                (runtime.clone(), devices),
                (subnet, services_w),
            );
            let actors = side.await?;
            if let (Some(rx), Ok(client)) = (happenings, id.client()) {
                tokio::spawn(super::pod_events::tell(client, id.node_name.clone(), rx));
            }
            Some(actors)
        }
        None => None,
    };
    let chaos = match (node_actor, chaos_listener) {
        (Some(actors), Some(listener)) => {
            Some(tokio::spawn(serve_chaos(listener, actors, node.clone())))
        }
        _ => None,
    };
    loop {
        if let Err(e) = pods.reconcile().await {
            tracing::warn!("static pods: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(config.sync_period) => {}
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    if let Some(task) = chaos {
        task.abort();
        let _ = std::fs::remove_file(config.run_dir.join(CHAOS_SOCKET));
    }
    // Like kubelet: the pods keep running; the next start finds them.
    tracing::info!("stopping; pods keep running");
    Ok(())
}

/// `rk8s-node reset`: stops and removes every pod this node runs (static ones too),
/// then its pod network, its container helper and the pods' parent cgroup. The
/// identity and the images stay. Returns the pods removed (`namespace/name`).
pub async fn reset(config: &AgentConfig) -> Result<Vec<String>> {
    let subnet = match Identity::load(&config.data_dir)? {
        Some(id) => id.pod_cidr.parse().unwrap_or(config.pod_cidr),
        None => config.pod_cidr,
    };
    let (runtime, network, helper) = parts(config, subnet, None)?;
    let removed = runtime
        .remove_orphans(|_| false)
        .await
        .map_err(|e| Error::Other(format!("failed to remove the pods: {e}")))?;
    helper
        .shutdown()
        .map_err(|e| Error::Other(format!("failed to stop the container helper: {e}")))?;
    network
        .destroy()
        .map_err(|e| Error::Other(format!("failed to remove the pod network: {e}")))?;
    rk8s_netoverlay::netpol::PolicyProxy::new(System)
        .remove()
        .map_err(|e| Error::Other(format!("failed to remove the NetworkPolicy table: {e}")))?;
    ServiceProxy::new(System, &config.bridge, subnet)
        .remove()
        .and_then(|()| Overlay::remove_device(&System))
        .map_err(|e| Error::Other(format!("failed to remove the cluster network: {e}")))?;
    // The device manager's sockets (its own and the plugins', which register again
    // when the agent serves again) and checkpoint (the pods holding devices are gone).
    let dir = &config.device_plugin_dir;
    for socket in super::devices::stale_sockets(dir).unwrap_or_default() {
        let _ = std::fs::remove_file(socket);
    }
    let _ = std::fs::remove_file(dir.join(super::devices::checkpoint::FILE));
    // The pods' parent cgroup, unless another agent's pods are still in it.
    for dir in rk8s_runtime::cgroups::directories("/rk8s") {
        let _ = std::fs::remove_dir(dir);
    }
    Ok(removed)
}

/// The device manager on `config.device_plugin_dir`, keeping the allocations of the
/// pods `runtime` holds; none (with a warning) when it cannot serve there.
async fn start_devices(config: &AgentConfig, runtime: &PodRuntime) -> Option<Arc<DeviceManager>> {
    let running = match runtime.pods() {
        Ok(pods) => pods.into_iter().map(|r| r.uid).collect(),
        Err(e) => {
            tracing::warn!("no device plugins: the node's pods cannot be read: {e}");
            return None;
        }
    };
    DeviceManager::start(&config.device_plugin_dir, &running)
        .await
        .inspect_err(|e| tracing::warn!("no device plugins: {e}"))
        .ok()
}

type Parts = (PodRuntime, Arc<Network>, Arc<HelperClient>);

fn parts(config: &AgentConfig, subnet: Ipv4Net, dns: Option<ClusterDns>) -> Result<Parts> {
    let network = Network::new(
        NetworkConfig {
            name: "node".into(),
            bridge: config.bridge.clone(),
            subnet,
            state_dir: config.run_dir.join("net"),
            cluster_cidr: Some(config.cluster_cidr),
        },
        System,
    )
    .map_err(|e| Error::Other(format!("failed to set up the pod network: {e}")))?;
    let pause = config
        .pause_image
        .clone()
        .unwrap_or_else(rk8s_runtime::image::default_pause_image);
    let mut runtime_config = PodRuntimeConfig::new(&config.data_dir, pause);
    runtime_config.cluster_dns = dns;
    let host = rk8s_runtime::pod::Allocatable::host();
    let reserved = |r: u64| i64::try_from(r).unwrap_or(i64::MAX);
    runtime_config.allocatable = rk8s_runtime::pod::Allocatable {
        cpu_milli: host
            .cpu_milli
            .saturating_sub(reserved(config.reserved_cpu_milli)),
        memory: host.memory.saturating_sub(reserved(config.reserved_memory)),
    };
    runtime_config.pull.registries = Arc::new(
        rk8s_runtime::image::registries::Registries::load(&config.registries)
            .map_err(|e| Error::Other(e.to_string()))?,
    );
    let exe = std::env::current_exe().map_err(|source| Error::Io {
        path: "/proc/self/exe".into(),
        source,
    })?;
    let helper = Arc::new(HelperClient::new(config.run_dir.join("helper"), exe));
    let network = Arc::new(network);
    let runtime = PodRuntime::new(runtime_config, helper.clone(), Some(network.clone()))
        .map_err(|e| Error::Other(format!("failed to open the node's state: {e}")))?;
    Ok((runtime, network, helper))
}

/// The HTTPS endpoint and the supervised NodeActor (which registers the node and
/// keeps retrying while the control plane is away); returns the registry of the
/// node's actors (the NodeActor and its PodActors) for the chaos socket. The cluster
/// network is programmed for the pods' range `subnet`, its Service watch filling
/// `services_w`.
async fn start_cluster_side(
    config: &AgentConfig,
    id: &Identity,
    registration: Option<Registration>,
    (runtime, devices): (Arc<PodRuntime>, Option<Arc<DeviceManager>>),
    (subnet, services_w): (Ipv4Net, Writer<Service>),
) -> Result<Actors> {
    let client = id.client()?;
    let node_ip = config
        .node_ip
        .clone()
        .or_else(|| registration::node_ip(&id.server));
    let listener = tokio::net::TcpListener::bind((config.address, config.port))
        .await
        .map_err(|source| Error::Io {
            path: format!("{}:{}", config.address, config.port).into(),
            source,
        })?;
    let port = listener
        .local_addr()
        .map_err(|source| Error::Io {
            path: "the endpoint's address".into(),
            source,
        })?
        .port();
    let registration = registration.unwrap_or_default();
    let info = NodeInfo {
        name: id.node_name.clone(),
        labels: registration.labels,
        taints: registration.taints,
        pod_cidr: id.pod_cidr.clone(),
        reserved_cpu_milli: config.reserved_cpu_milli,
        reserved_memory: config.reserved_memory,
        max_pods: config.max_pods,
        data_dir: config.data_dir.clone(),
        disk_free_percent: config.disk_free_percent,
        address: node_ip.clone(),
        port,
        sync_frequency: config.sync_frequency,
        extra_conditions: Default::default(),
        devices,
    };
    tokio::spawn(collect_images(runtime.clone(), config.image_gc));
    tokio::spawn(super::local_volumes::collect(
        client.clone(),
        super::local_volumes::dir(&config.data_dir),
    ));
    let stats = Arc::new(Stats::new(&id.node_name));
    // Held requests and Ingress traffic: the proxy's, reported on the endpoint.
    let activation = super::activity::Activation::new(config.ingress_activation_queue.max(1));
    tokio::spawn(stats.clone().keep(
        runtime.clone(),
        config.stats_interval.max(Duration::from_millis(100)),
    ));
    tokio::spawn(serve_when_certified(
        id.clone(),
        client.clone(),
        config.data_dir.clone(),
        // A loopback address (a node on the API server's host) is no one else's way
        // in: the certificate names the node alone then.
        node_ip
            .iter()
            .filter(|ip| ip.parse().is_ok_and(rk8s_api::net::is_host_address))
            .cloned()
            .collect(),
        listener,
        (runtime.clone(), stats, activation.clone()),
    ));
    start_cluster_network(
        config,
        id,
        &client,
        node_ip.as_deref(),
        (subnet, services_w, activation),
    )
    .await;
    let conditions = info.extra_conditions.clone();
    let gate = dns_address(subnet)
        .map(|gw| super::netpol::start(client.clone(), id.node_name.clone(), gw, conditions));
    tracing::info!(node = %info.name, server = %id.server, port, "running as a cluster node");
    let actors = Actors::default();
    let (a, name) = (actors.clone(), info.name.clone());
    actors.start("Node", &name, move |me| {
        let node = NodeActor::new(client.clone(), info.clone(), runtime.clone(), a.clone(), me);
        match &gate {
            Some(g) => node.with_netpol(g.clone()),
            None => node,
        }
    });
    Ok(actors)
}

/// Where the node's DNS server listens and its pods send queries: their gateway,
/// the first address of the node's range (where [`Network`] puts the bridge).
fn dns_address(subnet: Ipv4Net) -> Option<std::net::Ipv4Addr> {
    subnet.nth(1)
}

/// The VXLAN overlay, the Service proxy and the DNS server, kept by a task (its
/// Service watch filling `services_w`). A part that cannot start is reported and left
/// out; pods still run on this node.
async fn start_cluster_network(
    config: &AgentConfig,
    id: &Identity,
    client: &kube::Client,
    node_ip: Option<&str>,
    (subnet, services_w, activation): (Ipv4Net, Writer<Service>, Arc<super::activity::Activation>),
) {
    let overlay = match node_ip.map(str::parse::<std::net::Ipv4Addr>) {
        // A node that reaches the API over loopback shares its host with it: there is
        // no other host to tunnel to.
        Some(Ok(ip)) if ip.is_loopback() => None,
        Some(Ok(ip)) => Overlay::new(System, ip, subnet)
            .inspect_err(|e| tracing::warn!("no VXLAN overlay: {e}"))
            .ok(),
        _ => {
            tracing::warn!("no VXLAN overlay: the node has no IPv4 InternalIP");
            None
        }
    };
    // Other names go to this host's nameservers (CoreDNS' `forward . /etc/resolv.conf`).
    let upstreams = rk8s_netoverlay::dns::nameservers_of(
        &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    );
    let records = Records::new(&config.cluster_domain).with_upstreams(upstreams);
    let dns = match dns_address(subnet) {
        Some(gateway) => {
            let address = std::net::SocketAddr::from((gateway, 53));
            DnsServer::start(address, records.clone())
                .await
                .inspect_err(|e| tracing::warn!("no cluster DNS on this node: {e}"))
                .ok()
        }
        None => None,
    };
    let network = ClusterNetwork {
        node: id.node_name.clone(),
        overlay,
        proxy: ServiceProxy::new(System, &config.bridge, subnet),
        records,
    };
    // The Ingress proxy reads the Services and EndpointSlices the network watches.
    let (slices, slices_w) = kube::runtime::reflector::store();
    let changed = Arc::new(tokio::sync::Notify::new());
    let ports = rk8s_ingress::proxy::Ports {
        http: config.ingress_http_port,
        https: config.ingress_https_port,
    };
    tokio::spawn(super::ingress::keep(
        client.clone(),
        (ports, activation),
        (services_w.as_reader(), slices),
        changed.clone(),
    ));
    let client = client.clone();
    tokio::spawn(async move {
        // The DNS server lives as long as the task that feeds it.
        let _dns = dns;
        network::keep(client, network, (services_w, slices_w), changed).await;
    });
}

/// Gets a serving certificate (retrying while the control plane is away, using the
/// saved one meanwhile) and serves logs and exec, renewing the certificate while it
/// serves (at 70-90 % of its life, as kubelet's `--rotate-server-certificates`).
async fn serve_when_certified(
    id: Identity,
    client: kube::Client,
    data_dir: PathBuf,
    addresses: Vec<String>,
    listener: tokio::net::TcpListener,
    (runtime, stats, activation): (
        Arc<PodRuntime>,
        Arc<Stats>,
        Arc<super::activity::Activation>,
    ),
) {
    // A `hostNetwork` pod's address is one of these (what `pods/proxy` may dial).
    let host_ips = addresses.clone();
    let (cert_pem, live, tls) = loop {
        let cert = id.serving_cert(&client, &data_dir, &addresses).await;
        let tls = cert.and_then(|c| {
            let live = LiveCert::new(&c.cert, &c.key).map_err(|e| Error::Other(e.to_string()))?;
            let tls = rk8s_http::tls::node_server_config(live.clone(), &id.ca_cert)
                .map_err(|e| Error::Other(e.to_string()))?;
            Ok((c.cert, live, tls))
        });
        match tls {
            Ok(tls) => break tls,
            Err(e) => {
                tracing::warn!("logs and exec wait for a serving certificate: {e}");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    // `serving_cert` saves what the API server gives (used at a start while the
    // control plane is away).
    let renew = move || {
        let (id, client, data_dir, addresses) = (
            id.clone(),
            client.clone(),
            data_dir.clone(),
            addresses.clone(),
        );
        async move {
            id.serving_cert(&client, &data_dir, &addresses)
                .await
                .map(|c| (c.cert, c.key))
                .map_err(|e| e.to_string())
        }
    };
    let kept = |_: &str, _: &str| Ok(());
    let renewing = keep_renewed("node's serving", live, cert_pem, renew, kept);
    tokio::select! {
        () = server::serve(listener, tls, runtime, (stats, activation), host_ips) => {}
        () = renewing => {}
    }
}

/// How often unused images are looked for (kubelet's image GC period).
const IMAGE_GC_PERIOD: Duration = Duration::from_secs(300);

/// Removes unused images as `policy` says, every [`IMAGE_GC_PERIOD`]: the images of
/// the pods on this node (and the sandbox's) are in use.
async fn collect_images(runtime: Arc<PodRuntime>, policy: rk8s_runtime::image::gc::GcPolicy) {
    let mut ticks = tokio::time::interval(IMAGE_GC_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let runtime = runtime.clone();
        let collected = tokio::task::spawn_blocking(move || {
            let mut in_use =
                std::collections::BTreeSet::from([runtime.config().pause_image.clone()]);
            let mut running = std::collections::BTreeSet::new();
            for record in runtime.pods()? {
                running.extend(record.containers.values().map(|c| c.image_id.clone()));
                let spec = record.pod.spec.unwrap_or_default();
                let containers = spec
                    .init_containers
                    .into_iter()
                    .flatten()
                    .chain(spec.containers);
                in_use.extend(containers.filter_map(|c| c.image));
                let ephemeral = spec.ephemeral_containers.into_iter().flatten();
                in_use.extend(ephemeral.filter_map(|c| c.image));
            }
            let store = runtime.images();
            store.collect_garbage(&policy, &in_use, &running, || {
                rk8s_runtime::image::gc::used_percent(store.root())
            })
        })
        .await;
        match collected {
            Ok(Ok(removed)) if !removed.is_empty() => {
                tracing::info!("image garbage collection removed {}", removed.join(", "));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("image garbage collection failed: {e}"),
            Err(e) => tracing::warn!("image garbage collection failed: {e}"),
        }
    }
}

/// The chaos socket's name in the run directory.
pub const CHAOS_SOCKET: &str = "chaos.sock";

/// Binds `run_dir/chaos.sock` (root only).
fn bind_chaos(config: &AgentConfig) -> Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = config.run_dir.join(CHAOS_SOCKET);
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&config.run_dir).map_err(io)?;
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).map_err(io)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    tracing::warn!(socket = %path.display(), "chaos socket open: actors can be killed on request");
    Ok(listener)
}

/// Serves the chaos socket: one line per request — `list`, `kill node`, `kill pod
/// NAMESPACE/NAME` or `kill random` — answered with `ok[ DETAIL]` or `error: …`
/// (`list`: the actors as JSON, kind, name, restarts, mailbox).
async fn serve_chaos(listener: tokio::net::UnixListener, actors: Actors, node: String) {
    while let Ok((stream, _)) = listener.accept().await {
        let (read, mut write) = stream.into_split();
        let mut line = String::new();
        let mut reader = tokio::io::BufReader::new(read);
        if reader.read_line(&mut line).await.is_err() {
            continue;
        }
        let answer = match chaos(line.trim(), &actors, &node) {
            Ok(detail) if detail.is_empty() => "ok\n".to_string(),
            Ok(detail) => format!("ok {detail}\n"),
            Err(e) => format!("error: {e}\n"),
        };
        let _ = write.write_all(answer.as_bytes()).await;
    }
}

fn chaos(request: &str, actors: &Actors, node: &str) -> std::result::Result<String, String> {
    let killed = |found: bool, what: &str| {
        if found {
            Ok(String::new())
        } else {
            Err(format!("no actor for {what} on this node"))
        }
    };
    match request.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["list"] => serde_json::to_string(&actors.list()).map_err(|e| e.to_string()),
        ["kill", "node"] => killed(actors.kill("Node", node), "the node"),
        ["kill", "pod", key] => {
            if !key.contains('/') {
                return Err(format!("{key:?}: expected NAMESPACE/NAME"));
            }
            killed(actors.kill("Pod", key), &format!("pod {key}"))
        }
        ["kill", "random"] => actors
            .kill_random()
            .map(|(kind, name)| format!("{kind}/{name}"))
            .ok_or_else(|| "no actors".to_string()),
        _ => Err(format!(
            "{request:?}: expected `list`, `kill node`, `kill pod NAMESPACE/NAME` or `kill random`"
        )),
    }
}

/// Sends one request to a running agent's chaos socket; returns its answer.
pub async fn send_chaos(run_dir: &std::path::Path, request: &str) -> Result<String> {
    let path = run_dir.join(CHAOS_SOCKET);
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let stream = tokio::net::UnixStream::connect(&path).await.map_err(io)?;
    let (read, mut write) = stream.into_split();
    write
        .write_all(format!("{request}\n").as_bytes())
        .await
        .map_err(io)?;
    let mut answer = String::new();
    tokio::io::BufReader::new(read)
        .read_line(&mut answer)
        .await
        .map_err(io)?;
    match answer.trim().strip_prefix("error: ") {
        Some(e) => Err(Error::Other(e.to_string())),
        None => Ok(answer.trim().to_string()),
    }
}

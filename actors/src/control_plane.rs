//! The control plane's actors, run on the Raft leader only: the scheduler and the
//! controllers (ReplicaSet, ReplicationController, Deployment, Job, CronJob,
//! DaemonSet, StatefulSet, HorizontalPodAutoscaler, Endpoints, EndpointSlice,
//! EndpointSliceMirroring, PersistentVolume, PodDisruptionBudget, ResourceQuota,
//! garbage collector, node lifecycle, service load balancer, Ingress status,
//! activation: scale from zero on request) and, always, the ServiceAccount and root CA controller (pods cannot be
//! created without them) and the ClusterRole aggregation controller (the default
//! roles `admin`, `edit` and `view` have no rules without it).
//! They live on an actix system of their own thread, in one `rk8s_supervision`
//! registry; when this member becomes leader they start, when it loses leadership
//! they all stop. Each is supervised: killed — wherever it is, mid-reconcile too — it
//! starts again from nothing and rebuilds from the API. They read the cluster through
//! one set of shared informers ([`rk8s_informers`]: one watch and one cache per kind),
//! made anew at each election.

use crate::leader_lease::LeaderLease;
use rk8s_api::identities::{self, controller};
use rk8s_controllers::activation_actor::ActivationController;
use rk8s_controllers::clusterrole_aggregation_actor::ClusterRoleAggregationController;
use rk8s_controllers::cronjob_actor::CronJobSupervisor;
use rk8s_controllers::daemonset_actor::DaemonSetSupervisor;
use rk8s_controllers::deployment_actor::DeploymentSupervisor;
use rk8s_controllers::disruption_actor::DisruptionController;
use rk8s_controllers::endpoint_slice_mirroring_actor::EndpointSliceMirroringController;
use rk8s_controllers::endpoint_slices_actor::EndpointSliceController;
use rk8s_controllers::endpoints_actor::EndpointsController;
use rk8s_controllers::gc::GarbageCollector;
use rk8s_controllers::hpa_actor::{HpaConfig, HpaSupervisor};
use rk8s_controllers::ingress_status_actor::IngressStatusController;
use rk8s_controllers::job_actor::JobSupervisor;
use rk8s_controllers::namespace_actor::NamespaceController;
use rk8s_controllers::node_lifecycle_actor::{LifecycleConfig, NodeLifecycleSupervisor};
use rk8s_controllers::replicaset_actor::ReplicaSetSupervisor;
use rk8s_controllers::replicationcontroller::ReplicationControllerSupervisor;
use rk8s_controllers::resource_quota_actor::ResourceQuotaController;
use rk8s_controllers::service_accounts_actor::ServiceAccountsController;
use rk8s_controllers::service_lb_actor::ServiceLbController;
use rk8s_controllers::statefulset_actor::StatefulSetSupervisor;
use rk8s_controllers::volumes_actor::VolumeController;
use rk8s_informers::Informers;
use rk8s_raftstore::node::Leadership;
use rk8s_scheduler::actor::SchedulerActor;
use rk8s_scheduler::metrics::SchedulerMetrics;
use rk8s_scheduler::profile::Profile;
use rk8s_supervision::Actors;
use tokio::sync::watch;

/// Makes a client of this member's API that authenticates as the component named.
pub type ClientFor = Box<dyn Fn(&str) -> Result<kube::Client, String> + Send>;

/// What the control plane's actors need.
pub struct ControlPlaneConfig {
    /// Makes a client of this member's API that authenticates as the component
    /// named (one of [`rk8s_api::identities`]; its rights are RBAC's, as kube's).
    pub client: ClientFor,
    /// The scheduler's profiles.
    pub profiles: Vec<Profile>,
    /// Run the scheduler.
    pub scheduler: bool,
    /// Run the controllers (the ServiceAccount and root CA controller and the
    /// ClusterRole aggregation controller run anyway).
    pub controllers: bool,
    /// The cluster CA (PEM), published in every namespace as `kube-root-ca.crt`.
    pub root_ca: String,
    /// The node lifecycle controller's settings.
    pub lifecycle: LifecycleConfig,
    /// The HorizontalPodAutoscalers' settings.
    pub hpa: HpaConfig,
    /// Where the actors run while this member leads (`--enable-chaos` shows and kills
    /// them through the API).
    pub actors: Actors,
}

/// The kind the top-level actors are listed under.
const CONTROLLER: &str = "Controller";
/// The kind the leader Leases' holders are listed under.
const LEASE: &str = "LeaderLease";

/// The components' clients, each with its own identity, all made before any actor
/// starts (a failure starts none).
struct Clients {
    informers: kube::Client,
    scheduler: kube::Client,
    service_account: kube::Client,
    namespace: kube::Client,
    aggregation: kube::Client,
    replicaset: kube::Client,
    replication: kube::Client,
    deployment: kube::Client,
    job: kube::Client,
    cronjob: kube::Client,
    daemonset: kube::Client,
    statefulset: kube::Client,
    hpa: kube::Client,
    endpoints: kube::Client,
    endpoint_slice: kube::Client,
    endpoint_slice_mirroring: kube::Client,
    volumes: kube::Client,
    disruption: kube::Client,
    resource_quota: kube::Client,
    garbage_collector: kube::Client,
    node_lifecycle: kube::Client,
    service_lb: kube::Client,
    ingress_status: kube::Client,
    activation: kube::Client,
}

impl Clients {
    fn new(config: &ControlPlaneConfig) -> Result<Self, String> {
        let client = |user: &str| (config.client)(user);
        let controller = |name: &str| client(&identities::controller_user(name));
        Ok(Clients {
            informers: client(identities::CONTROLLER_MANAGER)?,
            scheduler: client(identities::SCHEDULER)?,
            service_account: controller(controller::SERVICE_ACCOUNT)?,
            namespace: controller(controller::NAMESPACE)?,
            aggregation: controller(controller::CLUSTERROLE_AGGREGATION)?,
            replicaset: controller(controller::REPLICASET)?,
            replication: controller(controller::REPLICATION)?,
            deployment: controller(controller::DEPLOYMENT)?,
            job: controller(controller::JOB)?,
            cronjob: controller(controller::CRONJOB)?,
            daemonset: controller(controller::DAEMONSET)?,
            statefulset: controller(controller::STATEFULSET)?,
            hpa: controller(controller::HPA)?,
            endpoints: controller(controller::ENDPOINTS)?,
            endpoint_slice: controller(controller::ENDPOINT_SLICE)?,
            endpoint_slice_mirroring: controller(controller::ENDPOINT_SLICE_MIRRORING)?,
            volumes: controller(controller::VOLUMES)?,
            disruption: controller(controller::DISRUPTION)?,
            resource_quota: controller(controller::RESOURCE_QUOTA)?,
            garbage_collector: controller(controller::GARBAGE_COLLECTOR)?,
            node_lifecycle: controller(controller::NODE_LIFECYCLE)?,
            service_lb: controller(controller::SERVICE)?,
            ingress_status: controller(controller::INGRESS_STATUS)?,
            activation: controller(controller::ACTIVATION)?,
        })
    }
}

/// Starts the scheduler and the controllers in `config.actors`, each listed as
/// `Controller/NAME` (their per-object actors under their kinds).
///
/// Each component is a client of its own with an identity of its own, as
/// kube-scheduler and kube-controller-manager's controllers (run with
/// `--use-service-account-credentials`) are: each may do what its kube role grants
/// and no more, and the shared informers read as `system:kube-controller-manager`.
fn lead(config: &ControlPlaneConfig, metrics: Option<&SchedulerMetrics>) -> Result<(), String> {
    let clients = Clients::new(config)?;
    let actors = &config.actors;
    // This member leads: it holds the components' leader Leases, as their leader.
    let holder = format!(
        "{}_{}",
        crate::node::agent::hostname().unwrap_or_else(|_| "rk8s-server".into()),
        uuid::Uuid::new_v4()
    );
    let leases = [
        (
            config.scheduler,
            identities::leases::SCHEDULER,
            clients.scheduler.clone(),
        ),
        (
            true,
            identities::leases::CONTROLLER_MANAGER,
            clients.informers.clone(),
        ),
    ];
    for (_, name, client) in leases.into_iter().filter(|(runs, ..)| *runs) {
        let holder = holder.clone();
        actors.start(LEASE, name, move |me| {
            LeaderLease::new(client.clone(), name, holder.clone(), me)
        });
    }
    let informers = Informers::new(clients.informers, actors.clone());
    if config.scheduler {
        let c = clients.scheduler;
        let (profiles, metrics) = (config.profiles.clone(), metrics.cloned());
        let i = informers.clone();
        actors.start(CONTROLLER, "scheduler", move |me| {
            let actor = SchedulerActor::new(c.clone(), &i, profiles.clone(), me);
            match &metrics {
                Some(m) => actor.with_metrics(m.clone()),
                None => actor,
            }
        });
    }
    let (c, i, ca) = (
        clients.service_account,
        informers.clone(),
        config.root_ca.clone(),
    );
    actors.start(CONTROLLER, "serviceaccount", move |me| {
        ServiceAccountsController::new(c.clone(), ca.clone(), &i, me)
    });
    // Namespaces are deleted as kube-apiserver's are even without the other
    // controllers: their content first.
    let (c, i) = (clients.namespace, informers.clone());
    actors.start(CONTROLLER, "namespace", move |me| {
        NamespaceController::new(c.clone(), &i, me)
    });
    let (c, i) = (clients.aggregation, informers.clone());
    actors.start(CONTROLLER, "clusterrole-aggregation", move |me| {
        ClusterRoleAggregationController::new(c.clone(), &i, me)
    });
    if !config.controllers {
        return Ok(());
    }
    let (c, i, a) = (clients.replicaset, informers.clone(), actors.clone());
    actors.start(CONTROLLER, "replicaset", move |me| {
        ReplicaSetSupervisor::new(c.clone(), &i, a.clone(), me)
    });
    let (c, i, a) = (clients.replication, informers.clone(), actors.clone());
    actors.start(CONTROLLER, "replicationcontroller", move |me| {
        ReplicationControllerSupervisor::new(c.clone(), &i, a.clone(), me)
    });
    let (c, i, a) = (clients.deployment, informers.clone(), actors.clone());
    actors.start(CONTROLLER, "deployment", move |me| {
        DeploymentSupervisor::new(c.clone(), &i, a.clone(), me)
    });
    let (c, i, a) = (clients.job, informers.clone(), actors.clone());
    actors.start(CONTROLLER, "job", move |me| {
        JobSupervisor::new(c.clone(), &i, a.clone(), me)
    });
    let (c, i, a) = (clients.cronjob, informers.clone(), actors.clone());
    actors.start(CONTROLLER, "cronjob", move |me| {
        CronJobSupervisor::new(c.clone(), &i, a.clone(), me)
    });
    let (c, i, a) = (clients.daemonset, informers.clone(), actors.clone());
    actors.start(CONTROLLER, "daemonset", move |me| {
        DaemonSetSupervisor::new(c.clone(), &i, a.clone(), me)
    });
    let (c, i, a) = (clients.statefulset, informers.clone(), actors.clone());
    actors.start(CONTROLLER, "statefulset", move |me| {
        StatefulSetSupervisor::new(c.clone(), &i, a.clone(), me)
    });
    let (c, i, a, hpa) = (
        clients.hpa,
        informers.clone(),
        actors.clone(),
        config.hpa.clone(),
    );
    actors.start(CONTROLLER, "horizontal-pod-autoscaler", move |me| {
        HpaSupervisor::new(c.clone(), &i, hpa.clone(), a.clone(), me)
    });
    let (c, i) = (clients.endpoints, informers.clone());
    actors.start(CONTROLLER, "endpoints", move |me| {
        EndpointsController::new(c.clone(), &i, me)
    });
    let (c, i) = (clients.endpoint_slice, informers.clone());
    actors.start(CONTROLLER, "endpointslice", move |me| {
        EndpointSliceController::new(c.clone(), &i, me)
    });
    let (c, i) = (clients.endpoint_slice_mirroring, informers.clone());
    actors.start(CONTROLLER, "endpointslice-mirroring", move |me| {
        EndpointSliceMirroringController::new(c.clone(), &i, me)
    });
    let (c, i) = (clients.volumes, informers.clone());
    actors.start(CONTROLLER, "persistentvolume", move |me| {
        VolumeController::new(c.clone(), &i, me)
    });
    let (c, i) = (clients.disruption, informers.clone());
    actors.start(CONTROLLER, "disruption", move |me| {
        DisruptionController::new(c.clone(), &i, me)
    });
    let (c, i) = (clients.resource_quota, informers.clone());
    actors.start(CONTROLLER, "resourcequota", move |me| {
        ResourceQuotaController::new(c.clone(), &i, me)
    });
    let (c, i) = (clients.garbage_collector, informers.clone());
    actors.start(CONTROLLER, "garbage-collector", move |me| {
        GarbageCollector::new(c.clone(), &i, me)
    });
    let (c, i) = (clients.service_lb, informers.clone());
    actors.start(CONTROLLER, "service-lb", move |me| {
        ServiceLbController::new(c.clone(), &i, me)
    });
    let (c, i) = (clients.ingress_status, informers.clone());
    actors.start(CONTROLLER, "ingress-status", move |me| {
        IngressStatusController::new(c.clone(), &i, me)
    });
    let (c, i, a) = (clients.activation, informers.clone(), actors.clone());
    actors.start(CONTROLLER, "activation", move |me| {
        ActivationController::new(c.clone(), &i, a.clone(), me)
    });
    let (c, i, a, lifecycle) = (
        clients.node_lifecycle,
        informers,
        actors.clone(),
        config.lifecycle,
    );
    actors.start(CONTROLLER, "node-lifecycle", move |_| {
        NodeLifecycleSupervisor::new(c.clone(), &i, lifecycle, a.clone())
    });
    Ok(())
}

/// Runs the control plane's actors on a thread of their own, following `leadership`,
/// until the watch closes (the store stopped).
pub fn spawn(
    mut leadership: watch::Receiver<Leadership>,
    config: ControlPlaneConfig,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("control-plane".into())
        .spawn(move || {
            // Made once per process: the scheduler is started again at each election.
            let metrics = SchedulerMetrics::register(prometheus::default_registry())
                .inspect_err(|e| tracing::warn!("the scheduler's metrics are not exported: {e}"))
                .ok();
            let system = actix::System::new();
            system.block_on(async move {
                let mut leading = false;
                loop {
                    let is_leader = leadership.borrow_and_update().is_self;
                    match (is_leader, leading) {
                        (true, false) => {
                            tracing::info!("leading: starting the scheduler and the controllers");
                            if let Err(e) = lead(&config, metrics.as_ref()) {
                                tracing::error!("the control plane cannot reach its own API: {e}");
                            }
                        }
                        (false, true) => {
                            tracing::info!(
                                "no longer leading: stopping the scheduler and the controllers"
                            );
                            config.actors.clear();
                        }
                        _ => {}
                    }
                    leading = is_leader;
                    if leadership.changed().await.is_err() {
                        break;
                    }
                }
                config.actors.clear();
            });
        })
}

/// The API's view of the control plane's actors (`rk8s-server --enable-chaos`).
pub struct ChaosControl(pub Actors);

impl rk8s_http::debug::ActorControl for ChaosControl {
    fn list(&self) -> serde_json::Value {
        serde_json::to_value(self.0.list()).unwrap_or_default()
    }

    fn kill(&self, target: Option<(&str, &str)>) -> Option<(String, String)> {
        match target {
            Some((kind, name)) => self
                .0
                .kill(kind, name)
                .then(|| (kind.to_string(), name.to_string())),
            None => self.0.kill_random(),
        }
    }
}

//! The control plane's actors, run on the Raft leader only: the scheduler and the
//! controllers (ReplicaSet, Deployment, garbage collector, node lifecycle). They live on an actix system of their own thread; when this
//! member becomes leader they start, when it loses leadership they stop. Each is
//! supervised: killed, it restarts and rebuilds from the API (list, then watch).

use actix::prelude::*;
use rk8s_controllers::deployment_actor::DeploymentSupervisor;
use rk8s_controllers::gc::GarbageCollector;
use rk8s_controllers::node_lifecycle_actor::{LifecycleConfig, NodeLifecycleSupervisor};
use rk8s_controllers::replicaset_actor::ReplicaSetSupervisor;
use rk8s_raftstore::node::Leadership;
use rk8s_scheduler::actor::SchedulerActor;
use rk8s_scheduler::profile::Profile;
use tokio::sync::watch;

/// What the control plane's actors need.
pub struct ControlPlaneConfig {
    /// Makes a client of this member's API (with its internal credential).
    pub client: Box<dyn Fn() -> Result<kube::Client, String> + Send>,
    /// The scheduler's profiles.
    pub profiles: Vec<Profile>,
    /// Run the scheduler.
    pub scheduler: bool,
    /// Run the controllers.
    pub controllers: bool,
    /// The node lifecycle controller's settings.
    pub lifecycle: LifecycleConfig,
}

/// The running control plane (while this member leads).
#[derive(Default)]
struct Leading {
    scheduler: Option<Addr<SchedulerActor>>,
    replicasets: Option<Addr<ReplicaSetSupervisor>>,
    deployments: Option<Addr<DeploymentSupervisor>>,
    gc: Option<Addr<GarbageCollector>>,
    nodes: Option<Addr<NodeLifecycleSupervisor>>,
}

impl Leading {
    fn start(config: &ControlPlaneConfig) -> Self {
        let client = match (config.client)() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("the control plane cannot reach its own API: {e}");
                return Leading::default();
            }
        };
        let profiles = config.profiles.clone();
        let scheduler = config.scheduler.then(|| {
            let client = client.clone();
            Supervisor::start(move |_| SchedulerActor::new(client, profiles))
        });
        let replicasets = config.controllers.then(|| {
            let client = client.clone();
            Supervisor::start(move |_| ReplicaSetSupervisor::new(client))
        });
        let deployments = config.controllers.then(|| {
            let client = client.clone();
            Supervisor::start(move |_| DeploymentSupervisor::new(client))
        });
        let gc = config.controllers.then(|| {
            let client = client.clone();
            Supervisor::start(move |_| GarbageCollector::new(client))
        });
        let lifecycle = config.lifecycle;
        let nodes = config
            .controllers
            .then(|| Supervisor::start(move |_| NodeLifecycleSupervisor::new(client, lifecycle)));
        Leading {
            scheduler,
            replicasets,
            deployments,
            gc,
            nodes,
        }
    }

    fn stop(self) {
        // Without an address left, a stopped actor's supervisor does not restart it.
        if let Some(s) = self.scheduler {
            s.do_send(rk8s_scheduler::actor::Crash);
        }
        if let Some(r) = self.replicasets {
            r.do_send(rk8s_controllers::replicaset_actor::Crash);
        }
        if let Some(d) = self.deployments {
            d.do_send(rk8s_controllers::deployment_actor::Crash);
        }
        if let Some(g) = self.gc {
            g.do_send(rk8s_controllers::gc::Crash);
        }
        if let Some(n) = self.nodes {
            n.do_send(rk8s_controllers::node_lifecycle_actor::Crash);
        }
    }
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
            let system = actix::System::new();
            system.block_on(async move {
                let mut leading: Option<Leading> = None;
                loop {
                    let is_leader = leadership.borrow_and_update().is_self;
                    match (is_leader, leading.is_some()) {
                        (true, false) => {
                            tracing::info!("leading: starting the scheduler and the controllers");
                            leading = Some(Leading::start(&config));
                        }
                        (false, true) => {
                            tracing::info!(
                                "no longer leading: stopping the scheduler and the controllers"
                            );
                            if let Some(l) = leading.take() {
                                l.stop();
                            }
                        }
                        _ => {}
                    }
                    if leadership.changed().await.is_err() {
                        break;
                    }
                }
                if let Some(l) = leading.take() {
                    l.stop();
                }
            });
        })
}

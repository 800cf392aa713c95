//! The control plane's actors, run on the Raft leader only: the scheduler and the
//! controllers (ReplicaSet, Deployment, Job, HorizontalPodAutoscaler, Endpoints,
//! garbage collector, node lifecycle). They live on an actix system of their own thread; when this
//! member becomes leader they start, when it loses leadership they stop. Each is
//! supervised: killed, it restarts and rebuilds from the API (list, then watch).

use actix::prelude::*;
use rk8s_controllers::chaos::{Actors, Tracker};
use rk8s_controllers::common::Crash;
use rk8s_controllers::deployment_actor::DeploymentSupervisor;
use rk8s_controllers::endpoints_actor::EndpointsController;
use rk8s_controllers::gc::GarbageCollector;
use rk8s_controllers::hpa_actor::{HpaConfig, HpaSupervisor};
use rk8s_controllers::job_actor::JobSupervisor;
use rk8s_controllers::node_lifecycle_actor::{LifecycleConfig, NodeLifecycleSupervisor};
use rk8s_controllers::replicaset_actor::ReplicaSetSupervisor;
use rk8s_raftstore::node::Leadership;
use rk8s_scheduler::actor::SchedulerActor;
use rk8s_scheduler::metrics::SchedulerMetrics;
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
    /// The HorizontalPodAutoscalers' settings.
    pub hpa: HpaConfig,
    /// Where the actors are listed while this member leads (`--enable-chaos` shows
    /// and kills them through the API).
    pub actors: Actors,
}

/// The kind the top-level actors are listed under.
const CONTROLLER: &str = "Controller";

/// Stops the running control plane (while this member leads): each top-level actor
/// is sent its crash message, and without an address left its supervisor does not
/// restart it.
#[derive(Default)]
struct Leading {
    stops: Vec<Box<dyn FnOnce()>>,
}

impl Leading {
    /// Starts `make()` supervised, listed as `Controller/name`.
    fn run<A>(&mut self, actors: &Actors, name: &str, make: impl FnOnce(Tracker) -> A)
    where
        A: Actor<Context = Context<A>> + Supervised + Handler<Crash>,
    {
        let tracker = Tracker::default();
        let actor = make(tracker.clone());
        let addr = Supervisor::start(move |_| actor);
        actors.add(CONTROLLER, name, &addr, &tracker);
        self.stops.push(Box::new(move || addr.do_send(Crash)));
    }

    fn start(config: &ControlPlaneConfig, metrics: Option<&SchedulerMetrics>) -> Self {
        let mut leading = Leading::default();
        let client = match (config.client)() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("the control plane cannot reach its own API: {e}");
                return leading;
            }
        };
        let actors = &config.actors;
        if config.scheduler {
            let tracker = Tracker::default();
            let t = tracker.clone();
            let (client, profiles) = (client.clone(), config.profiles.clone());
            let metrics = metrics.cloned();
            let scheduler = Supervisor::start(move |_| {
                let actor = SchedulerActor::new(client, profiles).on_restart(move || t.restarted());
                match metrics {
                    Some(m) => actor.with_metrics(m),
                    None => actor,
                }
            });
            let s = scheduler.clone();
            actors.add_with(
                CONTROLLER,
                "scheduler",
                move || s.do_send(rk8s_scheduler::actor::Crash),
                &tracker,
            );
            leading.stops.push(Box::new(move || {
                scheduler.do_send(rk8s_scheduler::actor::Crash)
            }));
        }
        if config.controllers {
            let c = || client.clone();
            let a = || actors.clone();
            leading.run(actors, "replicaset", |t| {
                ReplicaSetSupervisor::replicasets(c(), a(), t)
            });
            leading.run(actors, "deployment", |t| {
                DeploymentSupervisor::new(c(), a(), t)
            });
            leading.run(actors, "job", |t| JobSupervisor::jobs(c(), a(), t));
            let hpa = config.hpa.clone();
            leading.run(actors, "horizontal-pod-autoscaler", |t| {
                HpaSupervisor::new(c(), hpa, a(), t)
            });
            leading.run(actors, "endpoints", |t| EndpointsController::new(c(), t));
            leading.run(actors, "garbage-collector", |t| {
                GarbageCollector::new(c(), t)
            });
            let lifecycle = config.lifecycle;
            leading.run(actors, "node-lifecycle", |t| {
                NodeLifecycleSupervisor::new(c(), lifecycle, a(), t)
            });
        }
        leading
    }

    fn stop(self, actors: &Actors) {
        for stop in self.stops {
            stop();
        }
        actors.clear();
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
            // Made once per process: the scheduler is started again at each election.
            let metrics = SchedulerMetrics::register(prometheus::default_registry())
                .inspect_err(|e| tracing::warn!("the scheduler's metrics are not exported: {e}"))
                .ok();
            let system = actix::System::new();
            system.block_on(async move {
                let mut leading: Option<Leading> = None;
                loop {
                    let is_leader = leadership.borrow_and_update().is_self;
                    match (is_leader, leading.is_some()) {
                        (true, false) => {
                            tracing::info!("leading: starting the scheduler and the controllers");
                            leading = Some(Leading::start(&config, metrics.as_ref()));
                        }
                        (false, true) => {
                            tracing::info!(
                                "no longer leading: stopping the scheduler and the controllers"
                            );
                            if let Some(l) = leading.take() {
                                l.stop(&config.actors);
                            }
                        }
                        _ => {}
                    }
                    if leadership.changed().await.is_err() {
                        break;
                    }
                }
                if let Some(l) = leading.take() {
                    l.stop(&config.actors);
                }
            });
        })
}

/// The API's view of the control plane's actors (`rk8s-server --enable-chaos`).
pub struct ChaosControl(pub Actors);

impl rk8s_apiserver::server::ActorControl for ChaosControl {
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

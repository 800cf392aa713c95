//! Scale from zero on request, decided: which Deployments wake on request
//! ([`targets`]), which Services the nodes' Ingress proxies hold requests for
//! ([`service_changes`]: the annotation `scale.rk8s.io/activation-timeout` mirrored
//! from the Deployment), what the nodes' activity streams say ([`Activity`]), and
//! the scale writes that follow ([`decide`]). Pure: the actor
//! (`activation_actor`) gathers the objects and the streams and carries
//! the actions out.
//!
//! - **Wakeable**: a Deployment annotated `scale.rk8s.io/wake-on-request: "true"`,
//!   or the target of an HPA with `minReplicas: 0` (kube's HPAScaleToZero); its
//!   Services are those of its namespace whose non-empty selector its pod
//!   template's labels match.
//! - **Wake**: at 0 replicas and a request waiting for one of its Services on any
//!   node → `activation-replicas` (not the count before it went idle, as Knative's
//!   `activation-scale`).
//! - **Idle** (annotated Deployments only; an HPA with `minReplicas: 0` scales its
//!   target down itself): no request counted, in flight or waiting on any node for
//!   `idle-after`, and the last wake older than that (KEDA's `LastActiveTime +
//!   cooldownPeriod`); never while a node reports a request in flight. A Ready
//!   node whose stream is down counts as active; a new leader, and a node whose
//!   stream comes back, make every Service active now (in memory, as Knative's
//!   autoscaler). A manual scale-up from zero starts the idle clock as a wake does.
//! - **HPA floor**: for an HPA's target, an activity floor ([`floors`]) is sent to
//!   the HPA's actor while traffic lasts (plus `idle-after`), so its next sync does
//!   not undo the wake with a metric still at zero (kube's HPA with `minReplicas:
//!   0` computes at zero; its scale-down window would hold only zeros).
//! - A Deployment without a matching Service is left alone: no Ingress traffic can
//!   reach it, so it is neither woken nor found idle.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use rk8s_api::activation::{
    self, ACTIVATION_TIMEOUT, ActivityLine, BackendActivity, Problem, Settings,
};

/// How long a node's stream may be silent before its activity is unknown (three
/// of its 10 s snapshots, and some).
pub const STALE: Duration = Duration::from_secs(35);

/// A Service or Deployment by namespace and name.
pub type Key = (String, String);

/// A Deployment that wakes on request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The Deployment's namespace and name.
    pub deployment: Key,
    /// Its resourceVersion as read (the scale write's precondition).
    pub resource_version: Option<String>,
    /// `spec.replicas` (1 when unset, as defaulted).
    pub replicas: i32,
    /// What its annotations ask for.
    pub settings: Settings,
    /// What was wrong with them.
    pub problems: Vec<Problem>,
    /// The names of its Services (same namespace).
    pub services: Vec<String>,
    /// The HPA with `minReplicas: 0` that scales it, if any (it owns scaling down).
    pub hpa: Option<String>,
}

/// Whether `selector` (a Service's) picks pods labelled `labels`: every pair in
/// them, and not empty (a Service without a selector has no pods of ours).
fn selects(selector: Option<&BTreeMap<String, String>>, labels: &BTreeMap<String, String>) -> bool {
    selector.is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// The HPAs with `minReplicas: 0`, by the Deployment they scale.
fn zero_min_hpas(hpas: &[Arc<HorizontalPodAutoscaler>]) -> BTreeMap<Key, String> {
    hpas.iter()
        .filter_map(|h| {
            let spec = h.spec.as_ref()?;
            let target = &spec.scale_target_ref;
            let apps = target.api_version.as_deref().is_none_or(|v| v == "apps/v1");
            (spec.min_replicas == Some(0) && target.kind == "Deployment" && apps).then(|| {
                let ns = h.metadata.namespace.clone().unwrap_or_default();
                (
                    (ns, target.name.clone()),
                    h.metadata.name.clone().unwrap_or_default(),
                )
            })
        })
        .collect()
}

/// Every Deployment that wakes on request, with its Services.
pub fn targets(
    deployments: &[Arc<Deployment>],
    services: &[Arc<Service>],
    hpas: &[Arc<HorizontalPodAutoscaler>],
) -> Vec<Target> {
    let by_hpa = zero_min_hpas(hpas);
    let mut out = Vec::new();
    for d in deployments {
        let meta = &d.metadata;
        let key = (
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        );
        let (settings, problems) = activation::settings(meta.annotations.as_ref());
        let hpa = by_hpa.get(&key).cloned();
        if !settings.wake_on_request && hpa.is_none() {
            continue;
        }
        let Some(spec) = d.spec.as_ref() else {
            continue;
        };
        let labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let mut names: Vec<String> = services
            .iter()
            .filter(|s| s.metadata.namespace.as_deref() == Some(key.0.as_str()))
            .filter(|s| selects(s.spec.as_ref().and_then(|s| s.selector.as_ref()), &labels))
            .filter_map(|s| s.metadata.name.clone())
            .collect();
        names.sort();
        out.push(Target {
            deployment: key,
            resource_version: meta.resource_version.clone(),
            replicas: spec.replicas.unwrap_or(1),
            settings,
            problems,
            services: names,
            hpa,
        });
    }
    out
}

/// A Service's annotation to set (`Some`) or remove (`None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceChange {
    /// The Service's namespace and name.
    pub service: Key,
    /// The value of `scale.rk8s.io/activation-timeout`, or none.
    pub timeout: Option<String>,
}

/// The Services whose `scale.rk8s.io/activation-timeout` must change: set on every
/// Service of a target (the longest timeout of its targets), removed from the rest.
pub fn service_changes(targets: &[Target], services: &[Arc<Service>]) -> Vec<ServiceChange> {
    let mut wanted: BTreeMap<Key, Duration> = BTreeMap::new();
    for t in targets {
        for s in &t.services {
            let slot = wanted
                .entry((t.deployment.0.clone(), s.clone()))
                .or_default();
            *slot = (*slot).max(t.settings.activation_timeout);
        }
    }
    let mut out = Vec::new();
    for s in services {
        let key = (
            s.metadata.namespace.clone().unwrap_or_default(),
            s.metadata.name.clone().unwrap_or_default(),
        );
        let now = s
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ACTIVATION_TIMEOUT))
            .cloned();
        let want = wanted.get(&key).map(|d| activation::timeout_value(*d));
        if now != want {
            out.push(ServiceChange {
                service: key,
                timeout: want,
            });
        }
    }
    out
}

/// What one node last said of one Service.
#[derive(Clone, Debug)]
struct Reported {
    counts: BackendActivity,
}

/// What is known of one Service's Ingress traffic.
#[derive(Clone, Debug, Default)]
struct ServiceActivity {
    /// Each node's last report (kept while its stream is down, to tell growth
    /// when it comes back; only a node with a live stream counts as holding).
    nodes: BTreeMap<String, Reported>,
    /// When traffic was last seen (`None`: not since this leader started).
    last_active: Option<Instant>,
}

/// The Ingress traffic the nodes' activity streams report, kept by the leader.
///
/// Bounded by what the leader follows: only the Services [`Activity::track`]ed
/// are kept (all of them until the first call), only the nodes
/// [`Activity::retain_nodes`] keeps.
#[derive(Debug)]
pub struct Activity {
    services: BTreeMap<Key, ServiceActivity>,
    /// When each node's last line came, for the nodes whose stream is up.
    heard: BTreeMap<String, Instant>,
    /// Every Service counts as active then: this leader's start, or the last time
    /// a node's traffic became known again (a stream back after an outage or a
    /// node restart: what it served meanwhile is not known).
    since: Instant,
    /// The Services followed (`None`: every one, until [`Activity::track`]).
    tracked: Option<BTreeSet<Key>>,
}

impl Activity {
    /// Nothing heard yet; every Service active at `since`.
    pub fn new(since: Instant) -> Self {
        Activity {
            services: BTreeMap::new(),
            heard: BTreeMap::new(),
            since,
            tracked: None,
        }
    }

    /// Takes `line` from `node` at `now`: a Service is active when requests grew
    /// (changed: a restarted node counts from 0), some are in flight or waiting, or
    /// some were in flight at the node's last report (they ended since). A node
    /// whose traffic was unknown (no live stream, or silent for [`STALE`]) makes
    /// every Service active now.
    pub fn observe(&mut self, node: &str, line: &ActivityLine, now: Instant) {
        let known = self
            .heard
            .get(node)
            .is_some_and(|t| now.saturating_duration_since(*t) <= STALE);
        if !known {
            self.since = self.since.max(now);
        }
        self.heard.insert(node.to_string(), now);
        let mut reported = BTreeSet::new();
        for b in &line.backends {
            let key = (b.namespace.clone(), b.service.clone());
            if self.tracked.as_ref().is_some_and(|t| !t.contains(&key)) {
                continue;
            }
            let s = self.services.entry(key.clone()).or_default();
            let before = s.nodes.get(node).map(|r| &r.counts);
            let grew = before.is_some_and(|r| r.requests != b.requests);
            let ended = before.is_some_and(|r| r.in_flight > 0);
            if grew || ended || b.in_flight > 0 || b.waiting > 0 {
                s.last_active = Some(now);
            }
            s.nodes
                .insert(node.to_string(), Reported { counts: b.clone() });
            reported.insert(key);
        }
        // What the node no longer reports holds no requests there.
        for (key, s) in &mut self.services {
            if !reported.contains(key) {
                s.nodes.remove(node);
            }
        }
    }

    /// `node`'s stream ended: its traffic is unknown until it reports again (its
    /// last report is kept but no longer counts as holding requests).
    pub fn down(&mut self, node: &str) {
        self.heard.remove(node);
    }

    /// Forgets every node not in `ready` (a node that is not Ready holds nothing
    /// the leader can count on).
    pub fn retain_nodes(&mut self, ready: &BTreeSet<String>) {
        self.heard.retain(|n, _| ready.contains(n));
        for s in self.services.values_mut() {
            s.nodes.retain(|n, _| ready.contains(n));
        }
    }

    /// Keeps only `services` (the targets' Services) and ignores the others from
    /// now on: what a node sends of anything else is not kept.
    pub fn track(&mut self, services: BTreeSet<Key>) {
        self.services.retain(|k, _| services.contains(k));
        self.tracked = Some(services);
    }

    /// The current reports of `service`: those of nodes whose stream is up.
    fn current<'a>(&'a self, service: &Key) -> impl Iterator<Item = &'a BackendActivity> + 'a {
        self.services
            .get(service)
            .into_iter()
            .flat_map(|s| s.nodes.iter())
            .filter(|(n, _)| self.heard.contains_key(*n))
            .map(|(_, r)| &r.counts)
    }

    /// Whether a request for `service` waits on some node (by a current report).
    pub fn waiting(&self, service: &Key) -> bool {
        self.current(service).any(|c| c.waiting > 0)
    }

    /// Whether a request for `service` is under way at a pod or waits on some node
    /// (by a current report).
    pub fn busy(&self, service: &Key) -> bool {
        self.current(service)
            .any(|c| c.in_flight > 0 || c.waiting > 0)
    }

    /// When `service` last had traffic (this leader's start, or a node's return,
    /// at the earliest).
    pub fn last_active(&self, service: &Key) -> Instant {
        self.services
            .get(service)
            .and_then(|s| s.last_active)
            .map_or(self.since, |t| t.max(self.since))
    }

    /// Whether some of `ready` nodes has said nothing for [`STALE`] (or never).
    pub fn unknown<'a>(&self, mut ready: impl Iterator<Item = &'a str>, now: Instant) -> bool {
        ready.any(|n| {
            self.heard
                .get(n)
                .is_none_or(|t| now.saturating_duration_since(*t) > STALE)
        })
    }
}

/// The Deployments among `targets` that went from 0 replicas to more (or appeared
/// with more) since the last call, by `replicas` as last seen (updated, and pruned
/// of Deployments no longer targets): a user's manual scale-up or a new
/// Deployment starts its idle clock as a wake does.
pub fn scaled_up(targets: &[Target], replicas: &mut BTreeMap<Key, i32>) -> Vec<Key> {
    let mut out = Vec::new();
    let mut now: BTreeMap<Key, i32> = BTreeMap::new();
    for t in targets {
        let before = replicas.get(&t.deployment).copied().unwrap_or(0);
        if before == 0 && t.replicas > 0 {
            out.push(t.deployment.clone());
        }
        now.insert(t.deployment.clone(), t.replicas);
    }
    *replicas = now;
    out
}

/// What the controller does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Scale the Deployment from zero to `replicas` (Event `ScaledFromZero`).
    Wake {
        /// The Deployment.
        deployment: Key,
        /// To how many.
        replicas: i32,
        /// The resourceVersion read.
        resource_version: Option<String>,
    },
    /// Scale the idle Deployment to zero (Event `ScaledToZero`).
    Sleep {
        /// The Deployment.
        deployment: Key,
        /// The resourceVersion read.
        resource_version: Option<String>,
    },
}

/// The scale writes for `targets`, given the `activity`, whether some Ready node's
/// traffic is `unknown`, the last wakes, and `now`.
pub fn decide(
    targets: &[Target],
    activity: &Activity,
    unknown: bool,
    woken: &BTreeMap<Key, Instant>,
    now: Instant,
) -> Vec<Action> {
    let mut out = Vec::new();
    for t in targets {
        if t.services.is_empty() {
            continue;
        }
        let keys: Vec<Key> = t
            .services
            .iter()
            .map(|s| (t.deployment.0.clone(), s.clone()))
            .collect();
        let waiting = keys.iter().any(|k| activity.waiting(k));
        // A request under way (a long one, a WebSocket) keeps it up, however long
        // ago it started.
        let busy = keys.iter().any(|k| activity.busy(k));
        if t.replicas == 0 {
            if waiting {
                out.push(Action::Wake {
                    deployment: t.deployment.clone(),
                    replicas: t.settings.activation_replicas,
                    resource_version: t.resource_version.clone(),
                });
            }
            continue;
        }
        let Some(idle_after) = t.settings.idle_after else {
            continue;
        };
        if !t.settings.wake_on_request || t.hpa.is_some() || unknown || busy {
            continue;
        }
        let last = keys
            .iter()
            .map(|k| activity.last_active(k))
            .chain(woken.get(&t.deployment).copied())
            .max();
        if last.is_some_and(|l| now.saturating_duration_since(l) >= idle_after) {
            out.push(Action::Sleep {
                deployment: t.deployment.clone(),
                resource_version: t.resource_version.clone(),
            });
        }
    }
    out
}

/// An activity floor for an HPA with `minReplicas: 0` (kube's HPA would undo a wake
/// at its next sync, its metric still at zero): at least `replicas` until `until`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Floor {
    /// The HPA's namespace and name.
    pub hpa: Key,
    /// At least this many.
    pub replicas: i32,
    /// Until then: `idle-after` (default 5 minutes) past the last traffic or wake.
    pub until: Instant,
}

/// The floors of the HPA-scaled targets behind a Service that have had traffic (or a
/// wake, or the leader's start: it knows nothing of the traffic before) within their
/// `idle-after`.
pub fn floors(
    targets: &[Target],
    activity: &Activity,
    woken: &BTreeMap<Key, Instant>,
    now: Instant,
) -> Vec<Floor> {
    let mut out = Vec::new();
    for t in targets {
        let Some(hpa) = &t.hpa else {
            continue;
        };
        // No Service: no request is ever held for it, so there is nothing to hold
        // up; the HPA alone scales it (to zero as well).
        if t.services.is_empty() {
            continue;
        }
        let idle = t
            .settings
            .idle_after
            .unwrap_or(rk8s_api::activation::DEFAULT_IDLE_AFTER);
        let keys = t
            .services
            .iter()
            .map(|s| (t.deployment.0.clone(), s.clone()));
        let waiting = keys.clone().any(|k| activity.waiting(&k));
        let last = keys
            .map(|k| activity.last_active(&k))
            .chain(woken.get(&t.deployment).copied())
            .max();
        let until = if waiting {
            Some(now + idle)
        } else {
            last.map(|l| l + idle).filter(|u| *u > now)
        };
        if let Some(until) = until {
            out.push(Floor {
                hpa: (t.deployment.0.clone(), hpa.clone()),
                replicas: t.settings.activation_replicas,
                until,
            });
        }
    }
    out
}

#[cfg(test)]
#[path = "activation_tests.rs"]
mod tests;

//! rk8s' controllers. Each reconcile is a pure function from what is desired and what
//! is observed to the actions that close the gap, tested on its own; actors gather the
//! state, call it, and carry the actions out with compare-and-swap writes.
//!
//! - [`replicaset`]: pods to match `replicas`, with expectations, adoption and release,
//!   deletion ranking and status; [`replicaset_actor`]: how a ReplicaSet's decision is
//!   carried out.
//! - [`replicationcontroller`]: ReplicationControllers, decided and carried out as
//!   the ReplicaSets they convert to.
//! - [`job`]: pods to run until `completions` succeed or `backoffLimit` fail, counted
//!   exactly through the tracking finalizer ([`job_index`]: Indexed Jobs' indexes); [`job_actor`]: how a Job's is.
//! - [`daemonset`]: a daemon pod on each node its template selects and tolerates,
//!   rolling updates within maxUnavailable or maxSurge, status; [`history`]: the
//!   ControllerRevisions of its (and a StatefulSet's) templates; [`daemonset_actor`]: how it is carried out.
//! - [`statefulset`]: a pod per ordinal with a stable name, hostname and claims,
//!   made and removed in order (or in parallel), rolling updates down to a
//!   partition, status and revisions; [`statefulset_actor`]: how it is carried out.
//! - [`volumes`]: claims bound to volumes, local-path volumes provisioned on the
//!   node of a claim's first pod, released ones reclaimed, protection finalizers;
//!   [`volumes_actor`]: the PersistentVolume controller that writes them.
//! - [`cronjob`]: Jobs at the times a cron schedule names in its time zone, missed
//!   times after downtime, concurrency policies, history limits; [`cronjob_actor`]:
//!   how it is carried out.
//! - What owning kinds share ([`owner`]): their [`owner_supervisor`] (watches
//!   and routes) and their [`owner_actor`] (decides and acts), both generic over the
//!   kind — a ReplicaSet's actor is an `OwnerActor<ReplicaSet>`; a DaemonSet's
//!   supervisor follows the nodes as well.
//! - [`deployment`]: RollingUpdate within maxSurge/maxUnavailable or Recreate, the
//!   pod-template hash, revisions and history, status and conditions;
//!   [`deployment_actor`]: its supervisor and one actor per Deployment (adopting
//!   orphaned ReplicaSets).
//! - [`node_lifecycle`]: unreachable nodes tainted, their pods evicted after their
//!   tolerations; [`node_lifecycle_actor`]: its supervisor and one actor per node.
//! - [`hpa`]: the HorizontalPodAutoscaler's arithmetic; [`hpa_metrics`]: its metrics
//!   read; [`hpa_actor`]: its supervisor and one actor per HPA; [`promql`]: queries.
//! - [`disruption`] and [`disruption_actor`]: PodDisruptionBudgets' status (the
//!   disruptions the eviction subresource may spend).
//! - [`endpoints`] and [`endpoints_actor`]: the Endpoints of selector Services;
//!   [`endpoint_slices`] and [`endpoint_slices_actor`]: their EndpointSlices
//!   (discovery.k8s.io/v1), at most 100 endpoints to a slice, with few writes.
//! - [`endpoint_slice_mirroring`] and [`endpoint_slice_mirroring_actor`]: the
//!   EndpointSlices mirrored from the Endpoints a user writes for a Service without a
//!   selector (the nodes read slices only), owned by the Endpoints; [`slice_cache`]:
//!   the two controllers' cache of their slices and their writes.
//! - [`service_lb`] and [`service_lb_actor`]: the built-in service load balancer
//!   (k3s' ServiceLB): the nodes' addresses as the ingress of `type: LoadBalancer`
//!   Services without a class.
//! - [`ingress_status`] and [`ingress_status_actor`]: the nodes' addresses as the
//!   `status.loadBalancer` of the Ingresses the nodes' built-in proxy serves.
//! - [`activation`] and [`activation_actor`]: scale from zero on request through
//!   the Ingress — the nodes' activity streams read through the API server's node
//!   proxy, Deployments woken and put to sleep through their `scale` subresource.
//! - [`namespace`] and [`namespace_actor`]: a deleted namespace's content deleted
//!   (gracefully, finalizers honoured), its conditions kept, then its finalizer
//!   `kubernetes` removed.
//! - [`service_accounts`] and [`service_accounts_actor`]: each namespace's `default`
//!   ServiceAccount and `kube-root-ca.crt` ConfigMap.
//! - [`clusterrole_aggregation`] and [`clusterrole_aggregation_actor`]: the rules of
//!   each ClusterRole with an `aggregationRule` (`admin`, `edit`, `view`), the union
//!   of the roles it selects.
//! - [`resource_quota`] and [`resource_quota_actor`]: each ResourceQuota's `status`
//!   (`hard` from its spec, `used` the namespace's real usage).
//! - [`gc`]: the garbage collector (background, foreground and orphan cascades).
//! - [`common`]: owner references, pod readiness, expectations; [`metrics`]:
//!   Prometheus metrics. Events are written through `rk8s_events` (one event
//!   correlator per process, client-go's).
//!
//! Every actor runs under `rk8s_supervision`: started through its registry, found
//! there again by kind and name, killed (chaos) as a crash kills, restarted from
//! scratch to rebuild from the API.

pub mod activation;
pub mod activation_actor;
pub mod clusterrole_aggregation;
pub mod clusterrole_aggregation_actor;
pub mod common;
pub mod cronjob;
pub mod cronjob_actor;
pub mod daemonset;
pub mod daemonset_actor;
pub mod deployment;
pub mod deployment_actor;
pub mod disruption;
pub mod disruption_actor;
pub mod endpoint_slice_mirroring;
pub mod endpoint_slice_mirroring_actor;
pub mod endpoint_slices;
pub mod endpoint_slices_actor;
pub mod endpoints;
pub mod endpoints_actor;
pub mod gc;
pub mod history;
pub mod hpa;
pub mod hpa_actor;
pub mod hpa_batch;
pub mod hpa_metrics;
pub mod ingress_status;
pub mod ingress_status_actor;
pub mod job;
pub mod job_actor;
pub mod job_index;
pub mod metrics;
pub mod namespace;
pub mod namespace_actor;
pub mod node_lifecycle;
pub mod node_lifecycle_actor;
pub mod owner;
pub mod owner_actor;
pub mod owner_supervisor;
pub mod promql;
pub mod replicaset;
pub mod replicaset_actor;
pub mod replicationcontroller;
pub mod resource_quota;
pub mod resource_quota_actor;
pub mod service_accounts;
pub mod service_accounts_actor;
pub mod service_lb;
pub mod service_lb_actor;
pub mod slice_cache;
pub mod statefulset;
pub mod statefulset_actor;
pub mod volumes;
pub mod volumes_actor;

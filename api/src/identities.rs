//! The names the control plane's own components authenticate as, shared by the API
//! server (which binds each to the least it needs, as kube-apiserver's bootstrap
//! policy does) and the components (which ask for a credential under that name).
//!
//! As kube-controller-manager run with `--use-service-account-credentials`, each
//! controller is the ServiceAccount `kube-system/NAME` (user
//! `system:serviceaccount:kube-system:NAME`, bound to the ClusterRole
//! `system:controller:NAME`), and the shared informers read as
//! `system:kube-controller-manager`.

/// The scheduler's user.
pub const SCHEDULER: &str = "system:kube-scheduler";

/// The shared informers' user: lists and watches every kind, writes nothing.
pub const CONTROLLER_MANAGER: &str = "system:kube-controller-manager";

/// Where the controllers' ServiceAccounts live.
pub const CONTROLLER_NAMESPACE: &str = "kube-system";

/// The prefix of the controllers' ClusterRoles and ClusterRoleBindings.
pub const CONTROLLER_ROLE_PREFIX: &str = "system:controller:";

/// The leader election Leases the components hold in `kube-system` while the member
/// running them leads (kube's names; `kubectl get componentstatuses` reads them).
pub mod leases {
    /// Where they live.
    pub const NAMESPACE: &str = "kube-system";
    /// The scheduler's.
    pub const SCHEDULER: &str = "kube-scheduler";
    /// The controller manager's.
    pub const CONTROLLER_MANAGER: &str = "kube-controller-manager";
    /// How long one holds without renewal (kube's `--leader-elect-lease-duration`).
    pub const DURATION_SECONDS: i32 = 15;
}

/// Kubernetes' names of the controllers rk8s runs (each its ServiceAccount's name).
pub mod controller {
    /// Makes the `default` ServiceAccount of every namespace.
    pub const SERVICE_ACCOUNT: &str = "service-account-controller";
    /// Publishes the cluster CA as the ConfigMap `kube-root-ca.crt` in every
    /// namespace (in rk8s, the ServiceAccount controller's actor, bound to this role
    /// too).
    pub const ROOT_CA_PUBLISHER: &str = "root-ca-cert-publisher";
    /// Fills aggregated ClusterRoles with the rules of the roles they select.
    pub const CLUSTERROLE_AGGREGATION: &str = "clusterrole-aggregation-controller";
    /// Keeps ReplicaSets' pods.
    pub const REPLICASET: &str = "replicaset-controller";
    /// Keeps ReplicationControllers' pods.
    pub const REPLICATION: &str = "replication-controller";
    /// Rolls Deployments out through ReplicaSets.
    pub const DEPLOYMENT: &str = "deployment-controller";
    /// Runs Jobs' pods to completion.
    pub const JOB: &str = "job-controller";
    /// Deletes finished Jobs past their `ttlSecondsAfterFinished` (in rk8s, the
    /// Job controller's actor, bound to this role too).
    pub const TTL_AFTER_FINISHED: &str = "ttl-after-finished-controller";
    /// Makes CronJobs' Jobs on schedule.
    pub const CRONJOB: &str = "cronjob-controller";
    /// Keeps a DaemonSet's pod on each eligible node.
    pub const DAEMONSET: &str = "daemon-set-controller";
    /// Keeps StatefulSets' ordered pods and their claims.
    pub const STATEFULSET: &str = "statefulset-controller";
    /// Scales HorizontalPodAutoscalers' targets.
    pub const HPA: &str = "horizontal-pod-autoscaler";
    /// Keeps Services' Endpoints.
    pub const ENDPOINTS: &str = "endpoint-controller";
    /// Keeps Services' EndpointSlices.
    pub const ENDPOINT_SLICE: &str = "endpointslice-controller";
    /// Mirrors selector-less Services' Endpoints into EndpointSlices.
    pub const ENDPOINT_SLICE_MIRRORING: &str = "endpointslicemirroring-controller";
    /// Binds claims to volumes and provisions local ones.
    pub const VOLUMES: &str = "persistent-volume-binder";
    /// Keeps PodDisruptionBudgets' status.
    pub const DISRUPTION: &str = "disruption-controller";
    /// Keeps ResourceQuotas' `status.used`.
    pub const RESOURCE_QUOTA: &str = "resourcequota-controller";
    /// Deletes objects whose owners are gone.
    pub const GARBAGE_COLLECTOR: &str = "generic-garbage-collector";
    /// Deletes a deleted namespace's content, then finalizes it.
    pub const NAMESPACE: &str = "namespace-controller";
    /// Marks unreachable nodes and evicts their pods.
    pub const NODE_LIFECYCLE: &str = "node-controller";
    /// Gives `type: LoadBalancer` Services their ingress (in rk8s, the built-in
    /// service load balancer: the nodes' addresses).
    pub const SERVICE: &str = "service-controller";
    /// Gives the Ingresses the nodes' built-in proxy serves their status (rk8s' own:
    /// in kube an ingress controller does this with its own account).
    pub const INGRESS_STATUS: &str = "ingress-status-controller";
    /// Wakes Deployments scaled to zero on a request through the built-in Ingress
    /// and scales idle ones back to zero (rk8s' own: KEDA's http-add-on or
    /// Knative's activator do this with their own accounts).
    pub const ACTIVATION: &str = "activation-controller";
}

/// The user name of the controller `name` (its ServiceAccount's).
pub fn controller_user(name: &str) -> String {
    format!("system:serviceaccount:{CONTROLLER_NAMESPACE}:{name}")
}

/// The controller a user name is, when it is one's (`system:serviceaccount:kube-system:NAME`).
pub fn controller_of(user: &str) -> Option<&str> {
    user.strip_prefix("system:serviceaccount:")?
        .strip_prefix(CONTROLLER_NAMESPACE)?
        .strip_prefix(':')
        .filter(|n| !n.is_empty() && !n.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_controller_user_names_its_service_account_and_back() {
        let user = controller_user(controller::REPLICASET);
        assert_eq!(
            user,
            "system:serviceaccount:kube-system:replicaset-controller"
        );
        assert_eq!(controller_of(&user), Some(controller::REPLICASET));
        assert_eq!(controller_of("system:serviceaccount:default:x"), None);
        assert_eq!(controller_of("system:serviceaccount:kube-system:"), None);
        assert_eq!(controller_of(SCHEDULER), None);
    }
}

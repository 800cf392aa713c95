//! The leader election Leases of the control plane's components, as kube-scheduler
//! and kube-controller-manager keep them (`kube-system/kube-scheduler`,
//! `kube-system/kube-controller-manager`): in rk8s the Raft leader runs both, so the
//! member that leads holds them, renewing each every [`RENEW`] while it leads. A
//! Lease not renewed within its `leaseDurationSeconds` says the component is gone
//! (`kubectl get componentstatuses` reads them), and `kubectl get lease -n
//! kube-system` shows which member leads. The decision is [`renewed`]; the actor
//! only reads and writes.

use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use rk8s_supervision::Handle;

/// How often the holder renews (kube's `--leader-elect-retry-period`).
pub const RENEW: Duration = Duration::from_secs(2);
use rk8s_api::identities::leases::{DURATION_SECONDS as LEASE_SECONDS, NAMESPACE};

/// `current` (if there is one) renewed by `holder` at `now`: taken over (a new
/// `acquireTime`, one more transition) when another held it.
pub fn renewed(current: Option<Lease>, name: &str, holder: &str, now: jiff::Timestamp) -> Lease {
    let mut lease = current.unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            ..ObjectMeta::default()
        },
        spec: None,
    });
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(holder) {
        if spec.holder_identity.is_some() {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(holder.to_string());
        spec.acquire_time = Some(MicroTime(now));
    }
    spec.lease_duration_seconds = Some(LEASE_SECONDS);
    spec.lease_transitions.get_or_insert(0);
    spec.renew_time = Some(MicroTime(now));
    lease
}

/// Keeps one component's Lease while this member leads.
pub struct LeaderLease {
    client: kube::Client,
    name: &'static str,
    /// `HOSTNAME_UUID`, as kube's components name themselves.
    holder: String,
    busy: bool,
    me: Handle<Self>,
}

impl LeaderLease {
    /// The holder of the Lease `name`, writing as `client`'s identity (the
    /// component's own).
    pub fn new(client: kube::Client, name: &'static str, holder: String, me: Handle<Self>) -> Self {
        LeaderLease {
            client,
            name,
            holder,
            busy: false,
            me,
        }
    }

    fn renew(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let (client, name, holder) = (self.client.clone(), self.name, self.holder.clone());
        let work = self.me.reconcile(async move {
            let leases: Api<Lease> = Api::namespaced(client, NAMESPACE);
            let outcome = match leases.get_opt(name).await {
                Ok(current) => {
                    let exists = current.is_some();
                    let lease = renewed(current, name, &holder, jiff::Timestamp::now());
                    rk8s_supervision::wrote();
                    let pp = PostParams::default();
                    if exists {
                        leases.replace(name, &pp, &lease).await.map(drop)
                    } else {
                        leases.create(&pp, &lease).await.map(drop)
                    }
                }
                Err(e) => Err(e),
            };
            // A conflict is another write of the same Lease: the next renewal reads it.
            if let Err(e) = outcome {
                tracing::debug!("lease {NAMESPACE}/{name}: {e}");
            }
        });
        ctx.spawn(work.into_actor(self).map(|(), act, _| act.busy = false));
    }
}

impl Actor for LeaderLease {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.renew(ctx);
        ctx.run_interval(RENEW, |act, ctx| act.renew(ctx));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn a_lease_is_made_renewed_and_taken_over_as_kubes_leader_election_does() {
        let made = renewed(None, "kube-scheduler", "a_1", at(100));
        let spec = made.spec.clone().unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("a_1"));
        assert_eq!(spec.lease_duration_seconds, Some(LEASE_SECONDS));
        assert_eq!(spec.lease_transitions, Some(0));
        assert_eq!(spec.acquire_time, Some(MicroTime(at(100))));
        assert_eq!(made.metadata.namespace.as_deref(), Some("kube-system"));
        // Renewed by its holder: only the renew time moves.
        let again = renewed(Some(made), "kube-scheduler", "a_1", at(102));
        let spec = again.spec.clone().unwrap();
        assert_eq!(spec.acquire_time, Some(MicroTime(at(100))));
        assert_eq!(spec.renew_time, Some(MicroTime(at(102))));
        assert_eq!(spec.lease_transitions, Some(0));
        // Another member leads now: it takes the Lease over.
        let taken = renewed(Some(again), "kube-scheduler", "b_2", at(130))
            .spec
            .unwrap();
        assert_eq!(taken.holder_identity.as_deref(), Some("b_2"));
        assert_eq!(taken.acquire_time, Some(MicroTime(at(130))));
        assert_eq!(taken.lease_transitions, Some(1));
    }
}

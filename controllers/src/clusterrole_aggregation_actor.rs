//! The `clusterrole-aggregation` controller as one actor: it follows the ClusterRoles
//! through their shared informer and, [`BATCH`] after any change to any of them,
//! decides every aggregated role again from the informer's cache
//! ([`crate::clusterrole_aggregation::decide`]) — as kube-controller-manager does, which
//! does not know which roles select which and queues every aggregated role at each
//! event; the roles are few. Each write is a merge patch of `rules` with the
//! resourceVersion decided from as its precondition: a 409 means the role changed, and
//! that change brings the next decision. Killed, it starts from nothing.
//!
//! It runs on the leader also with `--disable-controllers`, as the ServiceAccount
//! controller does: the default roles `admin`, `edit` and `view` get their rules only
//! through it.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::Api;
use kube::api::{Patch, PatchParams};
use rk8s_informers::{Informer, Informers, Notice};
use rk8s_supervision::Handle;
use serde_json::json;

use crate::clusterrole_aggregation::{FIELD_MANAGER, Update, decide};

/// How long after a change the controller decides.
pub const BATCH: Duration = Duration::from_millis(200);
/// How often it decides anyway (and so retries a write that failed).
const RESYNC: Duration = Duration::from_secs(60);

#[derive(Message)]
#[rtype(result = "()")]
struct Done;

/// Keeps each aggregated ClusterRole's rules the union of the roles it selects.
pub struct ClusterRoleAggregationController {
    client: kube::Client,
    roles: Informer<ClusterRole>,
    dirty: bool,
    busy: bool,
    me: Handle<Self>,
}

impl ClusterRoleAggregationController {
    /// A controller following the ClusterRoles through `informers` and writing through
    /// `client`; `me` is its handle.
    pub fn new(client: kube::Client, informers: &Informers, me: Handle<Self>) -> Self {
        ClusterRoleAggregationController {
            client,
            roles: informers.get(),
            dirty: true,
            busy: false,
            me,
        }
    }

    fn run(&mut self, ctx: &mut Context<Self>) {
        if !self.dirty || self.busy || !self.roles.listed() {
            return;
        }
        self.dirty = false;
        let all: Vec<Arc<ClusterRole>> = self.roles.list();
        let (updates, invalid) = decide(&all);
        for e in invalid {
            tracing::warn!("clusterrole aggregation: {e}");
        }
        if updates.is_empty() {
            return;
        }
        self.busy = true;
        let client = self.client.clone();
        let work = self.me.reconcile(async move {
            let api = Api::<ClusterRole>::all(client);
            for update in updates {
                let name = update.name.clone();
                match write(&api, update).await {
                    Ok(()) => rk8s_supervision::wrote(),
                    // Changed or deleted meanwhile: the change brings the next look.
                    Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409) => {
                        tracing::debug!("clusterrole aggregation: {name}: {}", s.message);
                    }
                    Err(e) => tracing::warn!("clusterrole aggregation: {name}: {e}"),
                }
            }
        });
        ctx.spawn(work.into_actor(self).map(|(), _, ctx| ctx.notify(Done)));
    }
}

async fn write(api: &Api<ClusterRole>, update: Update) -> Result<(), kube::Error> {
    let mut body = json!({"rules": update.rules});
    if let Some(rv) = update.resource_version {
        body["metadata"] = json!({"resourceVersion": rv});
    }
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch(&update.name, &params, &Patch::Merge(body))
        .await?;
    Ok(())
}

impl Actor for ClusterRoleAggregationController {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.roles.subscribe(ctx.address().recipient());
        ctx.run_interval(BATCH, |act, ctx| act.run(ctx));
        ctx.run_interval(RESYNC, |act, _| act.dirty = true);
        tracing::info!("clusterrole aggregation controller started");
    }
}

impl Handler<Done> for ClusterRoleAggregationController {
    type Result = ();

    fn handle(&mut self, _: Done, _: &mut Self::Context) {
        self.busy = false;
    }
}

impl Handler<Notice<ClusterRole>> for ClusterRoleAggregationController {
    type Result = ();

    fn handle(&mut self, _: Notice<ClusterRole>, _: &mut Self::Context) {
        self.me.received();
        self.dirty = true;
    }
}

//! The ServiceAccount and root CA controllers as one actor (their inputs are the
//! same: namespaces, accounts, ConfigMaps through the shared informers): each
//! [`BATCH`] after a change it decides over every namespace
//! ([`crate::service_accounts::decide`]) and makes the writes. Creating what exists
//! already (another leader's write, a stale view) is a 409, looked at again at the
//! next change; killed, it starts from nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use rk8s_informers::{Informer, Informers, Notice};
use rk8s_supervision::Handle;
use serde_json::json;

use crate::service_accounts::{
    Action, DEFAULT_ACCOUNT, DESCRIPTION, Namespace as Seen, ROOT_CA_CONFIG_MAP, ROOT_CA_KEY,
    decide,
};

/// How long after a change the controller decides.
pub const BATCH: Duration = Duration::from_millis(200);
/// How often it decides anyway.
const RESYNC: Duration = Duration::from_secs(60);

#[derive(Message)]
#[rtype(result = "()")]
struct Done;

/// Keeps each namespace's `default` ServiceAccount and `kube-root-ca.crt`.
pub struct ServiceAccountsController {
    client: kube::Client,
    /// The cluster CA (PEM) every namespace gets.
    ca: String,
    namespaces: Informer<Namespace>,
    accounts: Informer<ServiceAccount>,
    config_maps: Informer<ConfigMap>,
    dirty: bool,
    busy: bool,
    me: Handle<Self>,
}

impl ServiceAccountsController {
    /// A controller publishing `ca`, following its kinds through `informers` and
    /// writing through `client`; `me` is its handle.
    pub fn new(client: kube::Client, ca: String, informers: &Informers, me: Handle<Self>) -> Self {
        ServiceAccountsController {
            client,
            ca,
            namespaces: informers.get(),
            accounts: informers.get(),
            config_maps: informers.get(),
            dirty: true,
            busy: false,
            me,
        }
    }

    fn run(&mut self, ctx: &mut Context<Self>) {
        let synced =
            self.namespaces.listed() && self.accounts.listed() && self.config_maps.listed();
        if !self.dirty || self.busy || !synced {
            return;
        }
        self.dirty = false;
        let seen: BTreeMap<String, Seen> = self
            .namespaces
            .list()
            .iter()
            .filter_map(|ns| {
                let name = ns.metadata.name.clone()?;
                let phase = ns.status.as_ref().and_then(|s| s.phase.as_deref());
                let root_ca = self
                    .config_maps
                    .get(&format!("{name}/{ROOT_CA_CONFIG_MAP}"))
                    .map(|c| {
                        let held = c.data.as_ref().and_then(|d| d.get(ROOT_CA_KEY)).cloned();
                        (
                            held,
                            c.metadata.resource_version.clone().unwrap_or_default(),
                        )
                    });
                let seen = Seen {
                    terminating: ns.metadata.deletion_timestamp.is_some()
                        || phase == Some("Terminating"),
                    has_account: self
                        .accounts
                        .get(&format!("{name}/{DEFAULT_ACCOUNT}"))
                        .is_some(),
                    root_ca,
                };
                Some((name, seen))
            })
            .collect();
        let actions = decide(&seen, &self.ca);
        if actions.is_empty() {
            return;
        }
        self.busy = true;
        let (client, ca) = (self.client.clone(), self.ca.clone());
        let work = self.me.reconcile(async move {
            for action in actions {
                let what = format!("{action:?}");
                match write(&client, &ca, action).await {
                    Ok(()) => rk8s_supervision::wrote(),
                    // Made meanwhile, or the namespace is going: the next look says.
                    Err(kube::Error::Api(s)) if matches!(s.code, 403 | 404 | 409) => {
                        tracing::debug!("service accounts: {what}: {}", s.message);
                    }
                    Err(e) => tracing::warn!("service accounts: {what}: {e}"),
                }
            }
        });
        ctx.spawn(work.into_actor(self).map(|(), _, ctx| ctx.notify(Done)));
    }
}

fn root_ca(namespace: &str, ca: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(ROOT_CA_CONFIG_MAP.into()),
            namespace: Some(namespace.into()),
            annotations: Some(
                [("kubernetes.io/description".to_string(), DESCRIPTION.into())].into(),
            ),
            ..ObjectMeta::default()
        },
        data: Some([(ROOT_CA_KEY.to_string(), ca.to_string())].into()),
        ..ConfigMap::default()
    }
}

async fn write(client: &kube::Client, ca: &str, action: Action) -> Result<(), kube::Error> {
    let post = PostParams::default();
    match action {
        Action::CreateAccount(ns) => {
            let account = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(DEFAULT_ACCOUNT.into()),
                    namespace: Some(ns.clone()),
                    ..ObjectMeta::default()
                },
                ..ServiceAccount::default()
            };
            Api::<ServiceAccount>::namespaced(client.clone(), &ns)
                .create(&post, &account)
                .await?;
        }
        Action::CreateRootCa(ns) => {
            Api::<ConfigMap>::namespaced(client.clone(), &ns)
                .create(&post, &root_ca(&ns, ca))
                .await?;
        }
        Action::UpdateRootCa(ns, rv) => {
            let body = json!({
                "metadata": {"resourceVersion": rv},
                "data": {ROOT_CA_KEY: ca},
            });
            Api::<ConfigMap>::namespaced(client.clone(), &ns)
                .patch(
                    ROOT_CA_CONFIG_MAP,
                    &PatchParams::default(),
                    &Patch::Merge(body),
                )
                .await?;
        }
    }
    Ok(())
}

impl Actor for ServiceAccountsController {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let me = ctx.address();
        self.namespaces.subscribe(me.clone().recipient());
        self.accounts.subscribe(me.clone().recipient());
        self.config_maps.subscribe(me.recipient());
        ctx.run_interval(BATCH, |act, ctx| act.run(ctx));
        ctx.run_interval(RESYNC, |act, _| act.dirty = true);
        tracing::info!("service account controller started");
    }
}

impl Handler<Done> for ServiceAccountsController {
    type Result = ();

    fn handle(&mut self, _: Done, _: &mut Self::Context) {
        self.busy = false;
    }
}

macro_rules! marks_dirty {
    ($($kind:ty),*) => {$(
        impl Handler<Notice<$kind>> for ServiceAccountsController {
            type Result = ();

            fn handle(&mut self, _: Notice<$kind>, _: &mut Self::Context) {
                self.me.received();
                self.dirty = true;
            }
        }
    )*};
}

marks_dirty!(Namespace, ServiceAccount, ConfigMap);

//! In-memory copies of the few kinds the server itself reads on its hot paths — the
//! ServiceAccount admission's accounts, RBAC's roles and bindings, and what the other
//! admission plugins read (LimitRanges, ResourceQuotas, PriorityClasses, StorageClasses,
//! webhook configurations) — as kube-apiserver's admission plugins and authorizers
//! read informers' listers instead of etcd: a list, then a watch from the listed revision through the kind's watch cache, and a fresh
//! list whenever the watch ends (a member that fell behind, a compaction). A copy may
//! lag a write by the watch's delay: readers that must see a just-made object look in
//! the store when it is missing here (as kube's admission does).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rk8s_api::{AnyObject, ObjectKind};

use crate::caches::Caches;
use crate::rbac_index::{Index, Source};
use crate::registry::{self, Registry};
use crate::status::{ApiError, ApiResult};
use crate::watch::Message;

/// The objects of one kind, by store key.
pub struct Lister {
    kind: ObjectKind,
    objects: RwLock<HashMap<String, Arc<AnyObject>>>,
    listed: AtomicBool,
    /// How many times the objects changed (a list, a batch of watch events).
    generation: AtomicU64,
}

impl Lister {
    /// A lister of `kind`, filled and kept by a task started here (until the process
    /// ends).
    pub fn start(registry: Registry, caches: Arc<Caches>, kind: ObjectKind) -> Arc<Self> {
        let lister = Arc::new(Lister {
            kind,
            objects: RwLock::default(),
            listed: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        });
        let follower = lister.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match follower.follow(&registry, &caches).await {
                    Ok(()) => backoff = Duration::from_millis(100),
                    Err(e) => {
                        tracing::debug!("{} relisted: {e}", follower.kind.plural);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
            }
        });
        lister
    }

    /// Whether the first list is in.
    pub fn listed(&self) -> bool {
        self.listed.load(Ordering::Acquire)
    }

    /// How many times the objects changed: equal counts, the same objects.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The object `namespace`/`name`, if this copy has it.
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<AnyObject>> {
        let key = self.kind.storage_key(namespace, name);
        self.read().get(&key).cloned()
    }

    /// The objects of `namespace` (every one for `None`).
    pub fn list(&self, namespace: Option<&str>) -> Vec<Arc<AnyObject>> {
        self.read()
            .values()
            .filter(|o| namespace.is_none() || o.namespace() == namespace)
            .cloned()
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<AnyObject>>> {
        self.objects.read().unwrap_or_else(PoisonError::into_inner)
    }

    async fn follow(&self, registry: &Registry, caches: &Caches) -> ApiResult<()> {
        let kind = self.kind;
        let prefix = kind.storage_prefix(None);
        let page = registry.page(&kind, &prefix, &[], 0, 0, false).await?;
        let mut listed = HashMap::new();
        for kv in &page.kvs {
            let key = String::from_utf8_lossy(&kv.key).into_owned();
            listed.insert(key, Arc::new(registry::decode(&kind, kv)?));
        }
        *self.objects.write().unwrap_or_else(PoisonError::into_inner) = listed;
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.listed.store(true, Ordering::Release);
        let cache = caches.ensure(kind);
        let mut sub = cache.subscribe(&prefix, page.revision, None).await?;
        loop {
            let messages = sub.next(&kind).await.map_err(|e| {
                e.unwrap_or_else(|| ApiError::gone(format!("the watch of {} ended", kind.plural)))
            })?;
            let mut objects = self.objects.write().unwrap_or_else(PoisonError::into_inner);
            for m in messages {
                let Message::Change(change) = m else { continue };
                let key = String::from_utf8_lossy(&change.key).into_owned();
                match change.object() {
                    Some(obj) => objects.insert(key, Arc::new(obj.clone())),
                    None => objects.remove(&key),
                };
            }
            // While the write lock is held: a reader that sees the new count sees
            // the new objects.
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// The listers the server keeps.
pub struct Listers {
    /// ServiceAccounts (admission).
    pub accounts: Arc<Lister>,
    /// Roles, ClusterRoles and their bindings (RBAC).
    pub roles: Arc<Lister>,
    /// See [`Listers::roles`].
    pub cluster_roles: Arc<Lister>,
    /// See [`Listers::roles`].
    pub role_bindings: Arc<Lister>,
    /// See [`Listers::roles`].
    pub cluster_role_bindings: Arc<Lister>,
    /// LimitRanges (LimitRanger admission).
    pub limit_ranges: Arc<Lister>,
    /// ResourceQuotas (ResourceQuota admission).
    pub resource_quotas: Arc<Lister>,
    /// PriorityClasses (Priority admission).
    pub priority_classes: Arc<Lister>,
    /// StorageClasses (DefaultStorageClass admission).
    pub storage_classes: Arc<Lister>,
    /// IngressClasses (DefaultIngressClass admission).
    pub ingress_classes: Arc<Lister>,
    /// MutatingWebhookConfigurations (mutating admission webhooks).
    pub mutating_webhooks: Arc<Lister>,
    /// ValidatingWebhookConfigurations (validating admission webhooks).
    pub validating_webhooks: Arc<Lister>,
    /// RBAC's index of the roles and bindings, and its decisions.
    rbac: crate::rbac_index::Cache,
}

impl Listers {
    /// Starts every lister over `registry`, watching through `caches`.
    pub fn start(registry: &Registry, caches: &Arc<Caches>) -> Self {
        use k8s_openapi::api::admissionregistration::v1::{
            MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
        };
        use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota, ServiceAccount};
        use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
        use k8s_openapi::api::scheduling::v1::PriorityClass;
        use k8s_openapi::api::storage::v1::StorageClass;
        let start = |kind: ObjectKind| Lister::start(registry.clone(), caches.clone(), kind);
        Listers {
            accounts: start(ObjectKind::of::<ServiceAccount>()),
            roles: start(ObjectKind::of::<Role>()),
            cluster_roles: start(ObjectKind::of::<ClusterRole>()),
            role_bindings: start(ObjectKind::of::<RoleBinding>()),
            cluster_role_bindings: start(ObjectKind::of::<ClusterRoleBinding>()),
            limit_ranges: start(ObjectKind::of::<LimitRange>()),
            resource_quotas: start(ObjectKind::of::<ResourceQuota>()),
            priority_classes: start(ObjectKind::of::<PriorityClass>()),
            storage_classes: start(ObjectKind::of::<StorageClass>()),
            ingress_classes: start(ObjectKind::of::<
                k8s_openapi::api::networking::v1::IngressClass,
            >()),
            mutating_webhooks: start(ObjectKind::of::<MutatingWebhookConfiguration>()),
            validating_webhooks: start(ObjectKind::of::<ValidatingWebhookConfiguration>()),
            rbac: crate::rbac_index::Cache::default(),
        }
    }

    /// The four RBAC listers' counts of changes.
    fn rbac_generation(&self) -> crate::rbac_index::Generation {
        [
            &self.roles,
            &self.cluster_roles,
            &self.role_bindings,
            &self.cluster_role_bindings,
        ]
        .map(|l| l.generation())
    }

    fn build_rbac_index(&self) -> Index {
        let roles = self.cluster_roles.list(None).into_iter();
        let bindings = self.cluster_role_bindings.list(None).into_iter();
        Index::build(
            roles.chain(self.roles.list(None)),
            bindings.chain(self.role_bindings.list(None)),
        )
    }

    /// RBAC's index of the roles and bindings held now.
    pub fn rbac_index(&self) -> Arc<Index> {
        self.rbac
            .index(self.rbac_generation(), || self.build_rbac_index())
    }

    /// An RBAC decision: remembered for `key` (written from the index) while the
    /// roles and bindings stay as they are, else made by `decide`.
    pub fn rbac_decision(
        &self,
        key: impl FnOnce(&Index) -> String,
        decide: impl FnOnce(&Index) -> Option<Source>,
    ) -> Option<Arc<Source>> {
        self.rbac.decide(
            self.rbac_generation(),
            || self.build_rbac_index(),
            key,
            decide,
        )
    }
}

//! What every cluster has from its first start: the system namespaces, the
//! `local-path` StorageClass, the `rk8s` IngressClass and kube's two system
//! PriorityClasses, made again at each start when missing; and the name label on
//! namespaces stored before the server set it.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rk8s_api::{AnyObject, ObjectKind};

use crate::handlers::SYSTEM_NAMESPACES;
use crate::registry::{Change, Registry};
use crate::status::ApiResult;

/// The StorageClass every cluster has, as k3s ships one: `local-path`, the default,
/// its volumes directories on the node of a claim's first pod.
fn local_path_class() -> AnyObject {
    k8s_openapi::api::storage::v1::StorageClass {
        metadata: ObjectMeta {
            name: Some("local-path".into()),
            annotations: Some(
                [(
                    rk8s_api::placement::DEFAULT_CLASS_ANNOTATIONS[0].to_string(),
                    "true".to_string(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        provisioner: "rk8s.io/local-path".into(),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("WaitForFirstConsumer".into()),
        ..Default::default()
    }
    .into()
}

/// The IngressClass of the nodes' built-in Ingress proxy, the default one.
fn rk8s_ingress_class() -> AnyObject {
    k8s_openapi::api::networking::v1::IngressClass {
        metadata: ObjectMeta {
            name: Some(rk8s_api::ingress::CLASS.into()),
            annotations: Some(
                [(
                    rk8s_api::ingress::DEFAULT_CLASS_ANNOTATION.to_string(),
                    "true".to_string(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(k8s_openapi::api::networking::v1::IngressClassSpec {
            controller: Some(rk8s_api::ingress::CONTROLLER.into()),
            ..Default::default()
        }),
    }
    .into()
}

/// The PriorityClasses kube-apiserver makes at start (`scheduling/v1` bootstrap):
/// `system-node-critical` and `system-cluster-critical`.
fn system_priority_classes() -> [AnyObject; 2] {
    let class = |name: &str, value: i32, description: &str| {
        k8s_openapi::api::scheduling::v1::PriorityClass {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            value,
            description: Some(description.into()),
            ..Default::default()
        }
        .into()
    };
    [
        class(
            "system-node-critical",
            2_000_001_000,
            "Used for system critical pods that must not be moved from their current node.",
        ),
        class(
            "system-cluster-critical",
            2_000_000_000,
            "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
        ),
    ]
}

/// Creates the namespaces every cluster has, the `local-path` StorageClass and the
/// system PriorityClasses, if they are missing (a class deleted comes back at the
/// next start, as k3s' does).
pub async fn ensure_system_objects(registry: &Registry) -> ApiResult<()> {
    let namespaces = SYSTEM_NAMESPACES.iter().map(|name| {
        k8s_openapi::api::core::v1::Namespace {
            metadata: ObjectMeta {
                name: Some((*name).to_string()),
                ..ObjectMeta::default()
            },
            ..Default::default()
        }
        .into()
    });
    for obj in namespaces
        .chain([local_path_class(), rk8s_ingress_class()])
        .chain(system_priority_classes())
    {
        registry.create_if_missing(obj).await?;
    }
    label_namespaces(registry).await
}

/// What a namespace stored by an older server lacks: the label
/// `kubernetes.io/metadata.name`, and (unless it is being deleted) the finalizer
/// `kubernetes`, without which the namespace controller would not empty it.
fn upgraded(ns: &AnyObject) -> AnyObject {
    let mut ns = ns.clone();
    crate::strategy::namespace::label(&mut ns);
    if ns.metadata().deletion_timestamp.is_none() {
        crate::strategy::namespace::add_finalizer(&mut ns);
    }
    ns
}

/// Gives namespaces stored by an older server what [`upgraded`] adds (one update
/// each, logged); later writes keep it (`strategy::namespace`).
async fn label_namespaces(registry: &Registry) -> ApiResult<()> {
    let kind = ObjectKind::of::<Namespace>();
    let page = registry
        .page(&kind, &kind.storage_prefix(None), &[], 0, 0, false)
        .await?;
    for kv in &page.kvs {
        let ns = crate::registry::decode(&kind, kv)?;
        if upgraded(&ns) == ns {
            continue;
        }
        let name = ns.name().to_string();
        registry
            .update(&kind, None, &name, |current| {
                let new = upgraded(&current);
                Ok(if new == current {
                    Change::Unchanged
                } else {
                    Change::Replace(new)
                })
            })
            .await?;
        tracing::info!(namespace = %name, "gave namespace its label kubernetes.io/metadata.name and finalizer kubernetes");
    }
    Ok(())
}

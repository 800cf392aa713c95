//! What every cluster has from its first start: the system namespaces and the
//! `local-path` StorageClass, made again at each start when missing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rk8s_api::AnyObject;

use crate::handlers::SYSTEM_NAMESPACES;
use crate::registry::Registry;
use crate::status::ApiResult;

/// The StorageClass every cluster has, as k3s ships one: `local-path`, the default,
/// its volumes directories on the node of a claim's first pod.
fn local_path_class() -> AnyObject {
    k8s_openapi::api::storage::v1::StorageClass {
        metadata: ObjectMeta {
            name: Some("local-path".into()),
            annotations: Some(
                [(
                    "storageclass.kubernetes.io/is-default-class".to_string(),
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

/// Creates the namespaces every cluster has and the `local-path` StorageClass, if
/// they are missing (a class deleted comes back at the next start, as k3s' does).
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
    for obj in namespaces.chain([local_path_class()]) {
        registry.create_if_missing(obj).await?;
    }
    Ok(())
}

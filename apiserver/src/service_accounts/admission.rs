//! The ServiceAccount admission plugin, as kube-apiserver runs it on a new pod
//! (`plugin/pkg/admission/serviceaccount/admission.go`): the pod runs as `default`
//! when it names no account; the account must exist (the `default` one is waited for
//! a moment: a namespace's controller makes it just after the namespace); its image
//! pull secrets go to a pod that has none; and unless the pod or its account opts
//! out (`automountServiceAccountToken: false`), every container mounts a projected
//! `kube-api-access-XXXXX` volume — a token of the account bound to the pod, the
//! cluster CA and the namespace — at [`MOUNT_PATH`], kubelet keeping the token fresh.

use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ConfigMapProjection, Container, DownwardAPIProjection, DownwardAPIVolumeFile,
    ObjectFieldSelector, Pod, ProjectedVolumeSource, ServiceAccount, ServiceAccountTokenProjection,
    Volume, VolumeMount, VolumeProjection,
};
use rk8s_api::AnyObject;
use rk8s_api::object::kind_named;

use super::{DEFAULT_ACCOUNT, MOUNT_PATH, ROOT_CA_CONFIG_MAP};
use crate::lister::Lister;
use crate::registry::Registry;
use crate::status::{ApiError, ApiResult};

/// The prefix of the token volume's name.
pub const VOLUME_PREFIX: &str = "kube-api-access-";

/// The lifetime of the mounted token kubelet asks for (kube-apiserver's
/// `WarnOnlyBoundTokenExpirationSeconds`: an hour and seven seconds, so that a token
/// of this length is known to be a projected one).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

/// How often, and how far apart, the `default` account is looked for before the pod
/// is refused (kube-apiserver: 10 tries, 100–200 ms apart).
const DEFAULT_ACCOUNT_TRIES: u32 = 10;
const DEFAULT_ACCOUNT_WAIT: Duration = Duration::from_millis(150);

/// The mirror pod annotation: such pods (a node's static pods) may not use accounts.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Admits a new pod: see the module's documentation. `suffix` makes the volume's
/// random name.
pub async fn admit_pod(
    registry: &Registry,
    accounts: &Lister,
    pod: &mut Pod,
    suffix: impl FnOnce() -> ApiResult<String>,
) -> ApiResult<()> {
    let is_mirror = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION));
    if is_mirror {
        return Ok(());
    }
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let spec = pod.spec.get_or_insert_with(Default::default);
    let account_name = spec
        .service_account_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_ACCOUNT.to_string());
    spec.service_account_name = Some(account_name.clone());
    spec.service_account = Some(account_name.clone());
    let account = find_account(registry, accounts, &namespace, &account_name)
        .await?
        .ok_or_else(|| {
            ApiError::forbidden(format!(
                "pods \"{name}\" is forbidden: error looking up service account {namespace}/{account_name}: serviceaccount \"{account_name}\" not found"
            ))
        })?;
    if spec.image_pull_secrets.as_ref().is_none_or(Vec::is_empty)
        && let Some(secrets) = account.image_pull_secrets.clone().filter(|s| !s.is_empty())
    {
        spec.image_pull_secrets = Some(secrets);
    }
    let automount = spec
        .automount_service_account_token
        .or(account.automount_service_account_token)
        .unwrap_or(true);
    if automount {
        mount_token(pod, suffix)?;
    }
    Ok(())
}

/// The account, from memory, or from the store when the copy in memory does not have
/// it (yet), waiting a moment for `default`.
async fn find_account(
    registry: &Registry,
    accounts: &Lister,
    namespace: &str,
    name: &str,
) -> ApiResult<Option<ServiceAccount>> {
    if let Some(AnyObject::ServiceAccount(a)) = accounts.get(Some(namespace), name).as_deref() {
        return Ok(Some(ServiceAccount::clone(a)));
    }
    let kind =
        kind_named("ServiceAccount").ok_or_else(|| ApiError::internal("no ServiceAccount kind"))?;
    let tries = if name == DEFAULT_ACCOUNT {
        DEFAULT_ACCOUNT_TRIES
    } else {
        1
    };
    for attempt in 0..tries {
        if attempt > 0 {
            tokio::time::sleep(DEFAULT_ACCOUNT_WAIT).await;
        }
        if let Some(AnyObject::ServiceAccount(a)) =
            registry.find_locally(&kind, Some(namespace), name).await?
        {
            return Ok(Some(*a));
        }
    }
    Ok(None)
}

/// Mounts the token volume into every container and init container that has
/// nothing mounted at [`MOUNT_PATH`] yet, adding the volume if one needs it.
fn mount_token(pod: &mut Pod, suffix: impl FnOnce() -> ApiResult<String>) -> ApiResult<()> {
    let Some(spec) = pod.spec.as_mut() else {
        return Ok(());
    };
    let existing = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name.starts_with(VOLUME_PREFIX))
        .map(|v| v.name.clone());
    let volume_name = match &existing {
        Some(n) => n.clone(),
        None => format!("{VOLUME_PREFIX}{}", suffix()?),
    };
    let mount = VolumeMount {
        name: volume_name.clone(),
        read_only: Some(true),
        mount_path: MOUNT_PATH.to_string(),
        ..VolumeMount::default()
    };
    let mut needed = false;
    let containers: Vec<&mut Container> = spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut())
        .collect();
    for container in containers {
        let mounts = container.volume_mounts.get_or_insert_with(Vec::new);
        if !mounts.iter().any(|m| m.mount_path == MOUNT_PATH) {
            mounts.push(mount.clone());
            needed = true;
        }
    }
    if existing.is_none() && needed {
        spec.volumes
            .get_or_insert_with(Vec::new)
            .push(token_volume(volume_name));
    }
    Ok(())
}

/// The `kube-api-access-*` volume, as kube-apiserver writes it.
pub fn token_volume(name: String) -> Volume {
    Volume {
        name,
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o644),
            sources: Some(vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".into(),
                        expiration_seconds: Some(TOKEN_EXPIRATION_SECONDS),
                        audience: None,
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: ROOT_CA_CONFIG_MAP.into(),
                        items: Some(vec![k8s_openapi::api::core::v1::KeyToPath {
                            key: "ca.crt".into(),
                            path: "ca.crt".into(),
                            mode: None,
                        }]),
                        optional: None,
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: "namespace".into(),
                            field_ref: Some(ObjectFieldSelector {
                                api_version: Some("v1".into()),
                                field_path: "metadata.namespace".into(),
                            }),
                            ..DownwardAPIVolumeFile::default()
                        }]),
                    }),
                    ..VolumeProjection::default()
                },
            ]),
        }),
        ..Volume::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "d"}, "spec": spec}))
        .unwrap()
    }

    #[test]
    fn every_container_mounts_one_token_volume() {
        let mut p = pod(serde_json::json!({
            "initContainers": [{"name": "i", "image": "x"}],
            "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x",
                "volumeMounts": [{"name": "own", "mountPath": MOUNT_PATH}]}],
            "volumes": [{"name": "own", "emptyDir": {}}]}));
        mount_token(&mut p, || Ok("abcde".into())).unwrap();
        let spec = p.spec.as_ref().unwrap();
        let volumes = spec.volumes.as_ref().unwrap();
        assert_eq!(volumes.len(), 2);
        assert_eq!(volumes[1].name, "kube-api-access-abcde");
        let sources = volumes[1]
            .projected
            .as_ref()
            .unwrap()
            .sources
            .as_ref()
            .unwrap();
        assert_eq!(
            sources[0]
                .service_account_token
                .as_ref()
                .unwrap()
                .expiration_seconds,
            Some(3607)
        );
        let mounted = |c: &Container| {
            c.volume_mounts
                .iter()
                .flatten()
                .filter(|m| m.mount_path == MOUNT_PATH)
                .map(|m| (m.name.clone(), m.read_only))
                .collect::<Vec<_>>()
        };
        let token = ("kube-api-access-abcde".to_string(), Some(true));
        assert_eq!(
            mounted(&spec.init_containers.as_ref().unwrap()[0]),
            vec![token.clone()]
        );
        assert_eq!(mounted(&spec.containers[0]), vec![token]);
        // A container with its own mount there keeps it.
        assert_eq!(
            mounted(&spec.containers[1]),
            vec![("own".to_string(), None)]
        );
        // Admitted again (a pod re-created from this one): nothing doubles.
        let before = p.clone();
        mount_token(&mut p, || panic!("no new name")).unwrap();
        assert_eq!(p, before);
    }

    #[test]
    fn no_volume_when_every_container_has_its_own_mount() {
        let mut p = pod(
            serde_json::json!({"containers": [{"name": "a", "image": "x",
            "volumeMounts": [{"name": "own", "mountPath": MOUNT_PATH}]}]}),
        );
        mount_token(&mut p, || Ok("abcde".into())).unwrap();
        assert!(p.spec.unwrap().volumes.is_none());
    }
}

//! The Secrets, ConfigMaps and PersistentVolumeClaims a pod uses, as kube-apiserver's
//! Node authorizer reads them off the pod (`VisitPodSecretNames`,
//! `VisitPodConfigmapNames`, its claim edges): a node may read exactly those of the
//! pods bound to it.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, PodSpec, Volume};

/// The environment of every container of `spec`: init, app and ephemeral ones.
fn environments(spec: &PodSpec) -> impl Iterator<Item = (&[EnvVar], &[EnvFromSource])> {
    let init = spec.init_containers.iter().flatten();
    let app = spec.containers.iter();
    let regular = init
        .chain(app)
        .map(|c| (c.env.as_deref(), c.env_from.as_deref()));
    let ephemeral = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(|c| (c.env.as_deref(), c.env_from.as_deref()));
    regular
        .chain(ephemeral)
        .map(|(env, from)| (env.unwrap_or_default(), from.unwrap_or_default()))
}

/// The names of the PersistentVolumeClaims `spec`'s volumes name.
pub fn claims(spec: &PodSpec) -> BTreeSet<&str> {
    let volumes = spec.volumes.iter().flatten();
    volumes
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.as_str())
        .collect()
}

/// The names of the Secrets `spec` refers to: image pull secrets, secret volumes
/// (also projected ones and the volume plugins' credentials) and environment.
pub fn secrets(spec: &PodSpec) -> BTreeSet<&str> {
    let mut names = BTreeSet::new();
    names.extend(
        spec.image_pull_secrets
            .iter()
            .flatten()
            .map(|r| r.name.as_str()),
    );
    for volume in spec.volumes.iter().flatten() {
        volume_secrets(volume, &mut names);
    }
    for (env, from) in environments(spec) {
        names.extend(
            env.iter()
                .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
                .map(|r| r.name.as_str()),
        );
        names.extend(
            from.iter()
                .filter_map(|f| f.secret_ref.as_ref())
                .map(|r| r.name.as_str()),
        );
    }
    names.remove("");
    names
}

fn volume_secrets<'a>(volume: &'a Volume, names: &mut BTreeSet<&'a str>) {
    if let Some(s) = volume
        .secret
        .as_ref()
        .and_then(|s| s.secret_name.as_deref())
    {
        names.insert(s);
    }
    let projected = volume.projected.as_ref().and_then(|p| p.sources.as_ref());
    names.extend(
        projected
            .into_iter()
            .flatten()
            .filter_map(|s| s.secret.as_ref())
            .map(|s| s.name.as_str()),
    );
    if let Some(f) = &volume.azure_file {
        names.insert(&f.secret_name);
    }
    if let Some(s) = &volume.scale_io {
        names.insert(&s.secret_ref.name);
    }
    let refs = [
        volume.cephfs.as_ref().and_then(|v| v.secret_ref.as_ref()),
        volume.cinder.as_ref().and_then(|v| v.secret_ref.as_ref()),
        volume
            .flex_volume
            .as_ref()
            .and_then(|v| v.secret_ref.as_ref()),
        volume.iscsi.as_ref().and_then(|v| v.secret_ref.as_ref()),
        volume.rbd.as_ref().and_then(|v| v.secret_ref.as_ref()),
        volume
            .storageos
            .as_ref()
            .and_then(|v| v.secret_ref.as_ref()),
        volume
            .csi
            .as_ref()
            .and_then(|v| v.node_publish_secret_ref.as_ref()),
    ];
    names.extend(refs.into_iter().flatten().map(|r| r.name.as_str()));
}

/// The names of the ConfigMaps `spec` refers to: configMap volumes (also projected
/// ones) and environment.
pub fn config_maps(spec: &PodSpec) -> BTreeSet<&str> {
    let mut names = BTreeSet::new();
    for volume in spec.volumes.iter().flatten() {
        if let Some(c) = &volume.config_map {
            names.insert(c.name.as_str());
        }
        let projected = volume.projected.as_ref().and_then(|p| p.sources.as_ref());
        names.extend(
            projected
                .into_iter()
                .flatten()
                .filter_map(|s| s.config_map.as_ref())
                .map(|c| c.name.as_str()),
        );
    }
    for (env, from) in environments(spec) {
        names.extend(
            env.iter()
                .filter_map(|e| e.value_from.as_ref()?.config_map_key_ref.as_ref())
                .map(|r| r.name.as_str()),
        );
        names.extend(
            from.iter()
                .filter_map(|f| f.config_map_ref.as_ref())
                .map(|r| r.name.as_str()),
        );
    }
    names.remove("");
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> PodSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn every_place_a_pod_names_a_secret_or_config_map_is_read() {
        let spec = spec(serde_json::json!({
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [
                {"name": "a", "secret": {"secretName": "vol"}},
                {"name": "b", "projected": {"sources": [
                    {"secret": {"name": "proj"}}, {"configMap": {"name": "proj-cm"}}]}},
                {"name": "c", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi"}}},
                {"name": "d", "configMap": {"name": "vol-cm"}},
                {"name": "e", "cephfs": {"monitors": ["m"], "secretRef": {"name": "ceph"}}}
            ],
            "initContainers": [{"name": "i", "env": [
                {"name": "X", "valueFrom": {"secretKeyRef": {"name": "init-env", "key": "k"}}}]}],
            "containers": [{"name": "m",
                "env": [{"name": "Y", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}},
                        {"name": "Z", "value": "plain"}],
                "envFrom": [{"secretRef": {"name": "from"}}, {"configMapRef": {"name": "from-cm"}}]}],
            "ephemeralContainers": [{"name": "dbg", "envFrom": [{"secretRef": {"name": "debug"}}]}]
        }));
        assert_eq!(
            secrets(&spec).into_iter().collect::<Vec<_>>(),
            [
                "ceph", "csi", "debug", "from", "init-env", "proj", "pull", "vol"
            ]
        );
        assert_eq!(
            config_maps(&spec).into_iter().collect::<Vec<_>>(),
            ["env-cm", "from-cm", "proj-cm", "vol-cm"]
        );
    }

    #[test]
    fn a_pod_without_references_names_none() {
        let spec = spec(serde_json::json!({"containers": [{"name": "m", "image": "busybox"}]}));
        assert!(secrets(&spec).is_empty());
        assert!(config_maps(&spec).is_empty());
    }
}

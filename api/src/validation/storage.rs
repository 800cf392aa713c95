//! Storage: PersistentVolumes and claims (core/v1 `ValidatePersistentVolumeSpec`,
//! `ValidatePersistentVolumeClaimSpec`), StorageClasses and CSIDrivers (storage/v1).

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaimSpec};
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass};
use serde_json::Value;

use super::{Errors, meta};
use crate::names;
use crate::path::FieldPath;

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const VOLUME_MODES: &[&str] = &["Block", "Filesystem"];
/// The fields of a PersistentVolume spec that are volume sources (one is required,
/// and none may change once the volume exists).
pub const PV_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "glusterfs",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];
/// The most a StorageClass's parameters may hold, keys and values together.
const MAX_PARAMETERS_BYTES: usize = 256 * 1024;

fn access_modes(errs: &mut Errors, path: &FieldPath, modes: &[String], detail: &str) {
    if modes.is_empty() {
        if detail.is_empty() {
            errs.required(path);
        } else {
            errs.message(path, format!("required value: {detail}"));
        }
    }
    for mode in modes {
        errs.one_of(path, mode, ACCESS_MODES);
    }
    if modes.len() > 1 && modes.iter().any(|m| m == "ReadWriteOncePod") {
        errs.forbidden(path, "may not use ReadWriteOncePod with other access modes");
    }
}

fn class_name(errs: &mut Errors, path: &FieldPath, name: Option<&String>) {
    if let Some(n) = name.filter(|n| !n.is_empty()) {
        errs.syntax(path, n, names::dns1123_subdomain(n));
    }
}

/// A claim's spec (also a StatefulSet's claim templates).
pub(super) fn claim_spec(errs: &mut Errors, path: &FieldPath, spec: &PersistentVolumeClaimSpec) {
    access_modes(
        errs,
        &path.key("accessModes"),
        spec.access_modes.as_deref().unwrap_or_default(),
        "at least 1 access mode is required",
    );
    if let Some(sel) = &spec.selector {
        meta::label_selector(errs, &path.key("selector"), sel);
    }
    let storage = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"));
    let storage_path = path.key("resources").key("requests").key("storage");
    match storage {
        None => errs.required(&storage_path),
        Some(q) => {
            if let Some(v) = errs.quantity(&storage_path, q)
                && v.signum() <= 0
            {
                errs.invalid(&storage_path, &q.0, "must be greater than zero");
            }
        }
    }
    class_name(
        errs,
        &path.key("storageClassName"),
        spec.storage_class_name.as_ref(),
    );
    errs.opt_one_of(
        &path.key("volumeMode"),
        spec.volume_mode.as_ref(),
        VOLUME_MODES,
    );
    if let Some(ds) = &spec.data_source {
        let p = path.key("dataSource");
        if ds.name.is_empty() {
            errs.required(&p.key("name"));
        }
        if ds.kind.is_empty() {
            errs.required(&p.key("kind"));
        }
        let group = ds.api_group.as_deref().unwrap_or_default();
        if group.is_empty() && !ds.kind.is_empty() && ds.kind != "PersistentVolumeClaim" {
            errs.invalid(
                &p.key("kind"),
                &ds.kind,
                "must be 'PersistentVolumeClaim' when referencing the default apiGroup",
            );
        }
    }
}

pub(super) fn persistent_volume(errs: &mut Errors, pv: &PersistentVolume) {
    let path = FieldPath::root().key("spec");
    let Some(spec) = &pv.spec else {
        return errs.required(&path);
    };
    access_modes(
        errs,
        &path.key("accessModes"),
        spec.access_modes.as_deref().unwrap_or_default(),
        "",
    );
    let capacity = spec.capacity.clone().unwrap_or_default();
    if capacity.is_empty() {
        errs.required(&path.key("capacity"));
    } else if !capacity.contains_key("storage") || capacity.len() > 1 {
        for name in capacity.keys().filter(|k| *k != "storage") {
            errs.one_of(&path.key("capacity"), name, &["storage"]);
        }
        if !capacity.contains_key("storage") {
            errs.required(&path.key("capacity").key("storage"));
        }
    }
    for (name, q) in &capacity {
        let p = path.key("capacity").key(name.clone());
        if let Some(v) = errs.quantity(&p, q)
            && v.signum() < 0
        {
            errs.invalid(&p, &q.0, "must be greater than or equal to 0");
        }
    }
    errs.opt_one_of(
        &path.key("persistentVolumeReclaimPolicy"),
        spec.persistent_volume_reclaim_policy.as_ref(),
        &["Delete", "Recycle", "Retain"],
    );
    class_name(
        errs,
        &path.key("storageClassName"),
        spec.storage_class_name.as_ref(),
    );
    errs.opt_one_of(
        &path.key("volumeMode"),
        spec.volume_mode.as_ref(),
        VOLUME_MODES,
    );
    let value = serde_json::to_value(spec).unwrap_or(Value::Null);
    let sources: Vec<&str> = PV_SOURCES
        .iter()
        .copied()
        .filter(|s| value.get(s).is_some_and(|v| !v.is_null()))
        .collect();
    match sources.as_slice() {
        [] => errs.message(&path, "required value: must specify a volume type"),
        [_] => {}
        [_, rest @ ..] => {
            for s in rest {
                errs.forbidden(&path.key(*s), "may not specify more than 1 volume type");
            }
        }
    }
    if let Some(h) = &spec.host_path
        && h.path.is_empty()
    {
        errs.required(&path.key("hostPath").key("path"));
    }
    if let Some(l) = &spec.local {
        if l.path.is_empty() {
            errs.required(&path.key("local").key("path"));
        }
        if spec.node_affinity.is_none() {
            errs.message(
                &path.key("nodeAffinity"),
                "required value: Local volume requires node affinity",
            );
        }
    }
    if let Some(nfs) = &spec.nfs {
        let p = path.key("nfs");
        if nfs.server.is_empty() {
            errs.required(&p.key("server"));
        }
        if nfs.path.is_empty() {
            errs.required(&p.key("path"));
        } else if !nfs.path.starts_with('/') {
            errs.invalid(&p.key("path"), &nfs.path, "must be an absolute path");
        }
    }
    if let Some(csi) = &spec.csi {
        let p = path.key("csi");
        if csi.driver.is_empty() {
            errs.required(&p.key("driver"));
        }
        if csi.volume_handle.is_empty() {
            errs.required(&p.key("volumeHandle"));
        }
    }
}

pub(super) fn storage_class(errs: &mut Errors, sc: &StorageClass) {
    let root = FieldPath::root();
    if sc.provisioner.is_empty() {
        errs.required(&root.key("provisioner"));
    } else {
        errs.syntax(
            &root.key("provisioner"),
            &sc.provisioner,
            names::qualified_name(&sc.provisioner.to_lowercase()),
        );
    }
    let mut size = 0;
    for (k, v) in sc.parameters.iter().flatten() {
        if k.is_empty() {
            errs.invalid(&root.key("parameters"), k, "field can not be empty");
        }
        size += k.len() + v.len();
    }
    if size > MAX_PARAMETERS_BYTES {
        errs.message(
            &root.key("parameters"),
            format!("too long: must have at most {MAX_PARAMETERS_BYTES} bytes"),
        );
    }
    errs.opt_one_of(
        &root.key("reclaimPolicy"),
        sc.reclaim_policy.as_ref(),
        &["Delete", "Retain"],
    );
    match &sc.volume_binding_mode {
        None => errs.required(&root.key("volumeBindingMode")),
        Some(m) => errs.one_of(
            &root.key("volumeBindingMode"),
            m,
            &["Immediate", "WaitForFirstConsumer"],
        ),
    }
}

pub(super) fn csi_driver(errs: &mut Errors, d: &CSIDriver) {
    if let Some(name) = &d.metadata.name
        && name.len() > 63
    {
        errs.message(
            &FieldPath::root().key("metadata").key("name"),
            "too long: may not be more than 63 bytes",
        );
    }
    let path = FieldPath::root().key("spec");
    let spec = &d.spec;
    for (field, set) in [
        ("attachRequired", spec.attach_required.is_some()),
        ("podInfoOnMount", spec.pod_info_on_mount.is_some()),
        ("storageCapacity", spec.storage_capacity.is_some()),
        ("requiresRepublish", spec.requires_republish.is_some()),
    ] {
        if !set {
            errs.required(&path.key(field));
        }
    }
    errs.opt_one_of(
        &path.key("fsGroupPolicy"),
        spec.fs_group_policy.as_ref(),
        &["File", "None", "ReadWriteOnceWithFSType"],
    );
    for (i, mode) in spec.volume_lifecycle_modes.iter().flatten().enumerate() {
        errs.one_of(
            &path.key("volumeLifecycleModes").index(i),
            mode,
            &["Ephemeral", "Persistent"],
        );
    }
    let mut audiences = std::collections::HashSet::new();
    for (i, t) in spec.token_requests.iter().flatten().enumerate() {
        let p = path.key("tokenRequests").index(i);
        if !audiences.insert(t.audience.clone()) {
            errs.duplicate(&p.key("audience"), &t.audience);
        }
        if let Some(s) = t.expiration_seconds {
            if s < 600 {
                errs.invalid(
                    &p.key("expirationSeconds"),
                    s,
                    "may not specify a duration less than 10 minutes",
                );
            } else if s > 1 << 32 {
                errs.invalid(
                    &p.key("expirationSeconds"),
                    s,
                    "may not specify a duration larger than 2^32 seconds",
                );
            }
        }
    }
}

//! Storage defaults: PersistentVolumes and claims (core/v1), StorageClasses and
//! CSIDrivers (storage/v1).

use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus, PersistentVolumeStatus,
};
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass};

use super::{set, set_str};

/// core/v1 `SetDefaults_PersistentVolume`: volumes are retained when released, hold a
/// filesystem, and start Pending.
pub(super) fn persistent_volume(pv: &mut PersistentVolume) {
    if let Some(spec) = &mut pv.spec {
        set_str(&mut spec.persistent_volume_reclaim_policy, "Retain");
        set_str(&mut spec.volume_mode, "Filesystem");
    }
    let status = pv
        .status
        .get_or_insert_with(PersistentVolumeStatus::default);
    set_str(&mut status.phase, "Pending");
}

/// core/v1 `SetDefaults_PersistentVolumeClaim`: claims ask for a filesystem and start
/// Pending (also applied to a StatefulSet's claim templates).
pub(super) fn persistent_volume_claim(pvc: &mut PersistentVolumeClaim) {
    if let Some(spec) = &mut pvc.spec {
        set_str(&mut spec.volume_mode, "Filesystem");
    }
    let status = pvc
        .status
        .get_or_insert_with(PersistentVolumeClaimStatus::default);
    set_str(&mut status.phase, "Pending");
}

/// storage/v1 `SetDefaults_StorageClass`: provisioned volumes are deleted with their
/// claim and bound at once.
pub(super) fn storage_class(sc: &mut StorageClass) {
    set_str(&mut sc.reclaim_policy, "Delete");
    set_str(&mut sc.volume_binding_mode, "Immediate");
}

/// storage/v1 `SetDefaults_CSIDriver`.
pub(super) fn csi_driver(d: &mut CSIDriver) {
    let spec = &mut d.spec;
    set(&mut spec.attach_required, true);
    set(&mut spec.pod_info_on_mount, false);
    set(&mut spec.storage_capacity, false);
    set_str(&mut spec.fs_group_policy, "ReadWriteOnceWithFSType");
    set(&mut spec.requires_republish, false);
    set(&mut spec.se_linux_mount, false);
    if spec
        .volume_lifecycle_modes
        .as_ref()
        .is_none_or(|m| m.is_empty())
    {
        spec.volume_lifecycle_modes = Some(vec!["Persistent".to_string()]);
    }
}

//! Storage kinds: persistent volumes and claims, storage classes, CSI drivers, nodes
//! and capacities, volume attachments.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::{
    CSIDriver, CSINode, CSIStorageCapacity, StorageClass, VolumeAttachment,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::format::{age, quantity, quantity_of};
use super::{AGE, Column, NAME, col, wide};

/// `kubectl get persistentvolumes`.
pub(super) const PERSISTENT_VOLUME: &[Column] = &[
    NAME,
    col("Capacity", "string"),
    col("Access Modes", "string"),
    col("Reclaim Policy", "string"),
    col("Status", "string"),
    col("Claim", "string"),
    col("StorageClass", "string"),
    col("VolumeAttributesClass", "string"),
    col("Reason", "string"),
    AGE,
    wide("VolumeMode", "string"),
];
/// `kubectl get persistentvolumeclaims`.
pub(super) const PERSISTENT_VOLUME_CLAIM: &[Column] = &[
    NAME,
    col("Status", "string"),
    col("Volume", "string"),
    col("Capacity", "string"),
    col("Access Modes", "string"),
    col("StorageClass", "string"),
    col("VolumeAttributesClass", "string"),
    AGE,
    wide("VolumeMode", "string"),
];
/// `kubectl get storageclasses`.
pub(super) const STORAGE_CLASS: &[Column] = &[
    NAME,
    col("Provisioner", "string"),
    col("ReclaimPolicy", "string"),
    col("VolumeBindingMode", "string"),
    col("AllowVolumeExpansion", "string"),
    AGE,
];
/// `kubectl get csidrivers`.
pub(super) const CSI_DRIVER: &[Column] = &[
    NAME,
    col("AttachRequired", "boolean"),
    col("PodInfoOnMount", "boolean"),
    col("StorageCapacity", "boolean"),
    col("TokenRequests", "string"),
    col("RequiresRepublish", "boolean"),
    col("Modes", "string"),
    AGE,
];
/// `kubectl get csinodes`.
pub(super) const CSI_NODE: &[Column] = &[NAME, col("Drivers", "integer"), AGE];
/// `kubectl get csistoragecapacities` (no age: kube prints none).
pub(super) const CSI_STORAGE_CAPACITY: &[Column] = &[
    NAME,
    col("StorageClassName", "string"),
    col("Capacity", "string"),
];
/// `kubectl get volumeattachments` (kube marks the attacher a name too).
pub(super) const VOLUME_ATTACHMENT: &[Column] = &[
    NAME,
    Column {
        format: "name",
        ..col("Attacher", "string")
    },
    col("PV", "string"),
    col("Node", "string"),
    col("Attached", "boolean"),
    AGE,
];

/// Access modes in kube's short form and fixed order: `RWO,ROX,RWX,RWOP`
/// (`GetAccessModesAsString`).
pub(super) fn access_modes(modes: Option<&Vec<String>>) -> String {
    let modes = modes.map(Vec::as_slice).unwrap_or_default();
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(long, _)| modes.iter().any(|m| m == long))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The class of a volume or claim: the beta annotation, else `storageClassName`.
fn class(meta: &ObjectMeta, spec_class: Option<&String>) -> String {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"))
        .or(spec_class)
        .cloned()
        .unwrap_or_default()
}

fn phase(meta: &ObjectMeta, phase: Option<String>) -> String {
    if meta.deletion_timestamp.is_some() {
        "Terminating".to_string()
    } else {
        phase.unwrap_or_default()
    }
}

fn unset(s: Option<String>) -> String {
    s.unwrap_or_else(|| "<unset>".to_string())
}

pub(super) fn persistent_volume(pv: &PersistentVolume, now: Timestamp) -> Vec<Value> {
    let spec = pv.spec.clone().unwrap_or_default();
    let status = pv.status.clone().unwrap_or_default();
    let claim = spec.claim_ref.as_ref().map_or_else(String::new, |c| {
        format!(
            "{}/{}",
            c.namespace.as_deref().unwrap_or(""),
            c.name.as_deref().unwrap_or("")
        )
    });
    vec![
        pv.metadata.name.clone().unwrap_or_default().into(),
        quantity_of(spec.capacity.as_ref(), "storage").into(),
        access_modes(spec.access_modes.as_ref()).into(),
        spec.persistent_volume_reclaim_policy
            .clone()
            .unwrap_or_default()
            .into(),
        phase(&pv.metadata, status.phase).into(),
        claim.into(),
        class(&pv.metadata, spec.storage_class_name.as_ref()).into(),
        unset(spec.volume_attributes_class_name).into(),
        status.reason.unwrap_or_default().into(),
        age(pv.metadata.creation_timestamp.as_ref(), now).into(),
        unset(spec.volume_mode).into(),
    ]
}

/// A claim's row: capacity and access modes only once it is bound to a volume.
pub(super) fn persistent_volume_claim(pvc: &PersistentVolumeClaim, now: Timestamp) -> Vec<Value> {
    let spec = pvc.spec.clone().unwrap_or_default();
    let status = pvc.status.clone().unwrap_or_default();
    let volume = spec.volume_name.clone().unwrap_or_default();
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity_of(status.capacity.as_ref(), "storage"),
            access_modes(status.access_modes.as_ref()),
        )
    };
    vec![
        pvc.metadata.name.clone().unwrap_or_default().into(),
        phase(&pvc.metadata, status.phase).into(),
        volume.into(),
        capacity.into(),
        modes.into(),
        class(&pvc.metadata, spec.storage_class_name.as_ref()).into(),
        unset(spec.volume_attributes_class_name).into(),
        age(pvc.metadata.creation_timestamp.as_ref(), now).into(),
        unset(spec.volume_mode).into(),
    ]
}

/// A storage class's row: ` (default)` after the default class's name, and kube's
/// defaults (`Delete`, `Immediate`) for unset policies.
pub(super) fn storage_class(sc: &StorageClass, now: Timestamp) -> Vec<Value> {
    let mut name = sc.metadata.name.clone().unwrap_or_default();
    if rk8s_api::placement::is_default_class(&sc.metadata) {
        name.push_str(" (default)");
    }
    vec![
        name.into(),
        sc.provisioner.clone().into(),
        sc.reclaim_policy
            .clone()
            .unwrap_or_else(|| "Delete".into())
            .into(),
        sc.volume_binding_mode
            .clone()
            .unwrap_or_else(|| "Immediate".into())
            .into(),
        sc.allow_volume_expansion.unwrap_or(false).into(),
        age(sc.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

pub(super) fn csi_driver(d: &CSIDriver, now: Timestamp) -> Vec<Value> {
    let spec = &d.spec;
    let tokens = spec.token_requests.as_ref().map_or_else(
        || "<unset>".to_string(),
        |t| {
            t.iter()
                .map(|t| t.audience.as_str())
                .collect::<Vec<_>>()
                .join(",")
        },
    );
    let modes = spec
        .volume_lifecycle_modes
        .as_ref()
        .map(|m| m.join(","))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "<none>".into());
    vec![
        d.metadata.name.clone().unwrap_or_default().into(),
        spec.attach_required.unwrap_or(true).into(),
        spec.pod_info_on_mount.unwrap_or(false).into(),
        spec.storage_capacity.unwrap_or(false).into(),
        tokens.into(),
        spec.requires_republish.unwrap_or(false).into(),
        modes.into(),
        age(d.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

pub(super) fn csi_node(n: &CSINode, now: Timestamp) -> Vec<Value> {
    vec![
        n.metadata.name.clone().unwrap_or_default().into(),
        n.spec.drivers.len().into(),
        age(n.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

pub(super) fn csi_storage_capacity(c: &CSIStorageCapacity) -> Vec<Value> {
    vec![
        c.metadata.name.clone().unwrap_or_default().into(),
        c.storage_class_name.clone().into(),
        c.capacity
            .as_ref()
            .map_or_else(|| "<unset>".to_string(), quantity)
            .into(),
    ]
}

pub(super) fn volume_attachment(va: &VolumeAttachment, now: Timestamp) -> Vec<Value> {
    vec![
        va.metadata.name.clone().unwrap_or_default().into(),
        va.spec.attacher.clone().into(),
        va.spec
            .source
            .persistent_volume_name
            .clone()
            .unwrap_or_default()
            .into(),
        va.spec.node_name.clone().into(),
        va.status.as_ref().is_some_and(|s| s.attached).into(),
        age(va.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

//! What a device plugin gives a container (kubelet's `DeviceRunContainerOptions`):
//! environment variables, host mounts, device nodes and annotations. The runtime
//! asks a [`DeviceProvider`] for them at every start of a container, as kubelet asks
//! its device manager; the node agent's answers come from the allocations it made
//! when it admitted the pod.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use k8s_openapi::api::core::v1::Pod;

use crate::spec::{BindMount, DeviceNode};

/// The devices of one container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerDevices {
    /// Variables, under the container's own (which win) and over the image's.
    pub env: Vec<(String, String)>,
    /// Host paths mounted in it, before its volumes.
    pub mounts: Vec<BindMount>,
    /// Device nodes made in it.
    pub devices: Vec<DeviceNode>,
    /// Its spec's annotations.
    pub annotations: BTreeMap<String, String>,
}

/// The answer of a [`DeviceProvider`]: the devices, or why the container cannot start.
pub type Answer<'a> = Pin<Box<dyn Future<Output = Result<ContainerDevices, String>> + Send + 'a>>;

/// Where containers' devices come from (the node agent's device manager).
pub trait DeviceProvider: Send + Sync {
    /// The devices container `container` of `pod` starts with (none when it asks for
    /// no device-plugin resource); `Err`: why it cannot start now, in kubelet's
    /// words (its waiting reason is then `CreateContainerConfigError`).
    fn container_devices<'a>(&'a self, pod: &'a Pod, container: &'a str) -> Answer<'a>;
}

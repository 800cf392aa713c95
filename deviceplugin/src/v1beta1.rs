//! The `v1beta1` messages and services. Field numbers, types and names follow
//! `api.proto` one for one (Go's `ID`, `available_deviceIDs` are `id`,
//! `available_device_ids` here: names do not travel, numbers do).

use std::collections::BTreeMap;

/// The API version a plugin registers with (kubelet's `SupportedVersions`).
pub const VERSION: &str = "v1beta1";
/// A device's `health` when usable.
pub const HEALTHY: &str = "Healthy";
/// A device's `health` when not.
pub const UNHEALTHY: &str = "Unhealthy";
/// Where kubelet serves `Registration` and plugins put their sockets.
pub const DEVICE_PLUGIN_PATH: &str = "/var/lib/kubelet/device-plugins/";
/// The registration socket's name in that directory.
pub const KUBELET_SOCKET: &str = "kubelet.sock";
/// How long a `PreStartContainer` call may take (kubelet's
/// `KubeletPreStartContainerRPCTimeoutInSecs`).
pub const PRE_START_CONTAINER_TIMEOUT_SECS: u64 = 30;

/// Options a plugin tells the device manager.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct DevicePluginOptions {
    /// `PreStartContainer` is to be called before each container start.
    #[prost(bool, tag = "1")]
    pub pre_start_required: bool,
    /// `GetPreferredAllocation` is implemented.
    #[prost(bool, tag = "2")]
    pub get_preferred_allocation_available: bool,
}

/// A plugin asking to be registered.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct RegisterRequest {
    /// The API version the plugin was built against.
    #[prost(string, tag = "1")]
    pub version: String,
    /// The name of its socket in the device-plugin directory.
    #[prost(string, tag = "2")]
    pub endpoint: String,
    /// The extended resource it serves (`vendor.com/gpu`).
    #[prost(string, tag = "3")]
    pub resource_name: String,
    /// Its options.
    #[prost(message, optional, tag = "4")]
    pub options: Option<DevicePluginOptions>,
}

/// Nothing.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Empty {}

/// The devices of a plugin, sent whenever one changes or goes.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ListAndWatchResponse {
    /// All of them.
    #[prost(message, repeated, tag = "1")]
    pub devices: Vec<Device>,
}

/// The NUMA nodes a device is attached to.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct TopologyInfo {
    /// Its nodes.
    #[prost(message, repeated, tag = "1")]
    pub nodes: Vec<NumaNode>,
}

/// A NUMA node.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct NumaNode {
    /// Its id (`ID`).
    #[prost(int64, tag = "1")]
    pub id: i64,
}

/// One device.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Device {
    /// Its id, unique in the plugin (`ID`, at most 63 characters).
    #[prost(string, tag = "1")]
    pub id: String,
    /// [`HEALTHY`] or [`UNHEALTHY`].
    #[prost(string, tag = "2")]
    pub health: String,
    /// Its topology.
    #[prost(message, optional, tag = "3")]
    pub topology: Option<TopologyInfo>,
}

/// The devices a container is about to start with.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PreStartContainerRequest {
    /// Their ids.
    #[prost(string, repeated, tag = "1")]
    pub devices_ids: Vec<String>,
}

/// The answer to [`PreStartContainerRequest`].
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct PreStartContainerResponse {}

/// Asks which devices a plugin would rather give.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PreferredAllocationRequest {
    /// One per container.
    #[prost(message, repeated, tag = "1")]
    pub container_requests: Vec<ContainerPreferredAllocationRequest>,
}

/// One container's choice.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ContainerPreferredAllocationRequest {
    /// The devices to choose from (`available_deviceIDs`).
    #[prost(string, repeated, tag = "1")]
    pub available_device_ids: Vec<String>,
    /// The devices the choice must include (`must_include_deviceIDs`).
    #[prost(string, repeated, tag = "2")]
    pub must_include_device_ids: Vec<String>,
    /// How many to choose.
    #[prost(int32, tag = "3")]
    pub allocation_size: i32,
}

/// The plugin's preferences.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PreferredAllocationResponse {
    /// One per container asked about.
    #[prost(message, repeated, tag = "1")]
    pub container_responses: Vec<ContainerPreferredAllocationResponse>,
}

/// One container's preferred devices.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ContainerPreferredAllocationResponse {
    /// Their ids (`deviceIDs`).
    #[prost(string, repeated, tag = "1")]
    pub device_ids: Vec<String>,
}

/// Devices allocated to containers.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AllocateRequest {
    /// One per container.
    #[prost(message, repeated, tag = "1")]
    pub container_requests: Vec<ContainerAllocateRequest>,
}

/// The devices of one container.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ContainerAllocateRequest {
    /// Their ids.
    #[prost(string, repeated, tag = "1")]
    pub devices_ids: Vec<String>,
}

/// A CDI device (`vendor.com/gpu=gpudevice1`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct CdiDevice {
    /// Its fully qualified name.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// What the containers get to use their devices.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct AllocateResponse {
    /// One per container asked for.
    #[prost(message, repeated, tag = "1")]
    pub container_responses: Vec<ContainerAllocateResponse>,
}

/// What one container gets.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ContainerAllocateResponse {
    /// Environment variables.
    #[prost(btree_map = "string, string", tag = "1")]
    pub envs: BTreeMap<String, String>,
    /// Host paths mounted into it.
    #[prost(message, repeated, tag = "2")]
    pub mounts: Vec<Mount>,
    /// Device nodes made in it.
    #[prost(message, repeated, tag = "3")]
    pub devices: Vec<DeviceSpec>,
    /// Annotations for the container runtime.
    #[prost(btree_map = "string, string", tag = "4")]
    pub annotations: BTreeMap<String, String>,
    /// CDI devices.
    #[prost(message, repeated, tag = "5")]
    pub cdi_devices: Vec<CdiDevice>,
}

/// A host path mounted into a container.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Mount {
    /// Where in the container.
    #[prost(string, tag = "1")]
    pub container_path: String,
    /// Which host path.
    #[prost(string, tag = "2")]
    pub host_path: String,
    /// Mounted read-only.
    #[prost(bool, tag = "3")]
    pub read_only: bool,
}

/// A host device node made in a container.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct DeviceSpec {
    /// Its path in the container.
    #[prost(string, tag = "1")]
    pub container_path: String,
    /// Its path on the host.
    #[prost(string, tag = "2")]
    pub host_path: String,
    /// Its cgroup permissions: some of `r`, `w`, `m`.
    #[prost(string, tag = "3")]
    pub permissions: String,
}

#[allow(missing_docs, clippy::all, clippy::unwrap_used, clippy::expect_used)]
mod generated {
    use super::*;
    include!(concat!(env!("OUT_DIR"), "/v1beta1.Registration.rs"));
    include!(concat!(env!("OUT_DIR"), "/v1beta1.DevicePlugin.rs"));
}

pub use generated::{
    device_plugin_client, device_plugin_server, registration_client, registration_server,
};

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn messages_use_the_field_numbers_of_api_proto() {
        // RegisterRequest{version: "v1beta1", endpoint: "a.sock", resource_name: "x/y",
        // options: {pre_start_required: true}} as Go's protobuf encodes it.
        let request = RegisterRequest {
            version: VERSION.into(),
            endpoint: "a.sock".into(),
            resource_name: "x/y".into(),
            options: Some(DevicePluginOptions {
                pre_start_required: true,
                get_preferred_allocation_available: false,
            }),
        };
        let expected: &[u8] = &[
            0x0a, 7, b'v', b'1', b'b', b'e', b't', b'a', b'1', 0x12, 6, b'a', b'.', b's', b'o',
            b'c', b'k', 0x1a, 3, b'x', b'/', b'y', 0x22, 2, 0x08, 1,
        ];
        assert_eq!(request.encode_to_vec(), expected);
        // A device with a topology: ID (1), health (2), topology (3) { nodes (1) { ID (1) } }.
        let device = Device {
            id: "d".into(),
            health: HEALTHY.into(),
            topology: Some(TopologyInfo {
                nodes: vec![NumaNode { id: 1 }],
            }),
        };
        let bytes = device.encode_to_vec();
        assert_eq!(&bytes[..3], &[0x0a, 1, b'd']);
        assert_eq!(&bytes[bytes.len() - 6..], &[0x1a, 4, 0x0a, 2, 0x08, 1]);
        // Maps are repeated entries of (key 1, value 2).
        let response = ContainerAllocateResponse {
            envs: [("K".to_string(), "V".to_string())].into(),
            ..Default::default()
        };
        assert_eq!(
            response.encode_to_vec(),
            [0x0a, 6, 0x0a, 1, b'K', 0x12, 1, b'V']
        );
        assert_eq!(
            ContainerAllocateResponse::decode(&response.encode_to_vec()[..]).unwrap(),
            response
        );
    }
}

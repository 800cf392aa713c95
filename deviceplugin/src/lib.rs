//! The Kubernetes device-plugin API, `v1beta1` (kubelet's
//! `staging/src/k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1/api.proto`): the messages
//! as prost structs with the proto's field numbers (the wire contract), and the two
//! gRPC services over Unix sockets — `Registration`, which the node agent serves on
//! `kubelet.sock`, and `DevicePlugin`, which each plugin serves on a socket of its own
//! in the same directory. Vendors' plugins (NVIDIA's) speak exactly this.
//!
//! ```no_run
//! # async fn register(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
//! use rk8s_deviceplugin::v1beta1::{self, registration_client::RegistrationClient};
//! let channel = rk8s_deviceplugin::unix::connect(&dir.join(v1beta1::KUBELET_SOCKET)).await?;
//! RegistrationClient::new(channel)
//!     .register(v1beta1::RegisterRequest {
//!         version: v1beta1::VERSION.into(),
//!         endpoint: "foo.sock".into(),
//!         resource_name: "example.com/foo".into(),
//!         options: None,
//!     })
//!     .await?;
//! # Ok(())
//! # }
//! ```

pub mod unix;
pub mod v1beta1;

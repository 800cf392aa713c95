//! The gRPC services of the device-plugin API (`v1beta1`), generated without `protoc`:
//! the messages are prost derives in `src/v1beta1.rs`; this writes the clients and
//! servers of `service Registration` and `service DevicePlugin` as kubelet's
//! `api.proto` declares them (package `v1beta1`, the same method names and streams).

fn method(name: &str, route: &str, input: &str, output: &str) -> tonic_build::manual::Method {
    tonic_build::manual::Method::builder()
        .name(name)
        .route_name(route)
        .input_type(format!("super::{input}"))
        .output_type(format!("super::{output}"))
        .codec_path("tonic_prost::ProstCodec")
        .build()
}

fn main() {
    let registration = tonic_build::manual::Service::builder()
        .name("Registration")
        .package("v1beta1")
        .comment("Registration is the service advertised by the Kubelet.")
        .method(method("register", "Register", "RegisterRequest", "Empty"))
        .build();
    let list_and_watch = tonic_build::manual::Method::builder()
        .name("list_and_watch")
        .route_name("ListAndWatch")
        .input_type("super::Empty")
        .output_type("super::ListAndWatchResponse")
        .codec_path("tonic_prost::ProstCodec")
        .server_streaming()
        .build();
    let device_plugin = tonic_build::manual::Service::builder()
        .name("DevicePlugin")
        .package("v1beta1")
        .comment("DevicePlugin is the service advertised by Device Plugins.")
        .method(method(
            "get_device_plugin_options",
            "GetDevicePluginOptions",
            "Empty",
            "DevicePluginOptions",
        ))
        .method(list_and_watch)
        .method(method(
            "get_preferred_allocation",
            "GetPreferredAllocation",
            "PreferredAllocationRequest",
            "PreferredAllocationResponse",
        ))
        .method(method(
            "allocate",
            "Allocate",
            "AllocateRequest",
            "AllocateResponse",
        ))
        .method(method(
            "pre_start_container",
            "PreStartContainer",
            "PreStartContainerRequest",
            "PreStartContainerResponse",
        ))
        .build();
    tonic_build::manual::Builder::new().compile(&[registration, device_plugin]);
    println!("cargo::rerun-if-changed=build.rs");
}

//! The Kubernetes device-plugin API on a real node (issue 23, "Devices"): a device
//! plugin written here — a tonic server on its own socket in the node's plugin
//! directory, as vendors' plugins are — registers `example.com/foo` with two devices
//! through the node's `kubelet.sock`. The Node shows them; a pod asking for one runs
//! with what the plugin's `Allocate` answered (a variable, a mounted directory, a
//! device node); one asking for two stays Pending, and bound to the node past the
//! scheduler it is rejected as kubelet rejects it; a device turning unhealthy and the
//! plugin stopping change the Node's allocatable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use rk8s_deviceplugin::v1beta1::{
    self, AllocateRequest, AllocateResponse, ContainerAllocateResponse,
    ContainerPreferredAllocationResponse, Device, DevicePluginOptions, DeviceSpec, Empty,
    ListAndWatchResponse, Mount, PreStartContainerRequest, PreStartContainerResponse,
    PreferredAllocationRequest, PreferredAllocationResponse, RegisterRequest,
    device_plugin_server::{DevicePlugin, DevicePluginServer},
    registration_client::RegistrationClient,
};
use serde_json::json;
use support::apiserver::Server;
use support::images::busybox;
use support::netns::NodeNetwork;
use support::node::{eventually, real_node_in};
use tokio_stream::StreamExt;

const FOO: &str = "example.com/foo";

/// What the plugin was asked.
#[derive(Default)]
struct Calls {
    preferred: Vec<Vec<String>>,
    allocated: Vec<Vec<String>>,
    pre_started: Vec<Vec<String>>,
}

/// The plugin: two devices (`dev-0`, `dev-1`), preferring the highest ids, giving a
/// variable, a read-only directory and /dev/null as `/dev/foo0`.
struct FooPlugin {
    devices: tokio::sync::watch::Receiver<Vec<Device>>,
    data: PathBuf,
    calls: Arc<Mutex<Calls>>,
}

type Stream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<ListAndWatchResponse, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl DevicePlugin for FooPlugin {
    async fn get_device_plugin_options(
        &self,
        _: tonic::Request<Empty>,
    ) -> Result<tonic::Response<DevicePluginOptions>, tonic::Status> {
        Ok(tonic::Response::new(DevicePluginOptions {
            pre_start_required: true,
            get_preferred_allocation_available: true,
        }))
    }

    type ListAndWatchStream = Stream;

    async fn list_and_watch(
        &self,
        _: tonic::Request<Empty>,
    ) -> Result<tonic::Response<Stream>, tonic::Status> {
        let lists = tokio_stream::wrappers::WatchStream::new(self.devices.clone())
            .map(|devices| Ok(ListAndWatchResponse { devices }));
        Ok(tonic::Response::new(Box::pin(lists)))
    }

    async fn get_preferred_allocation(
        &self,
        request: tonic::Request<PreferredAllocationRequest>,
    ) -> Result<tonic::Response<PreferredAllocationResponse>, tonic::Status> {
        let mut responses = Vec::new();
        for r in request.into_inner().container_requests {
            let mut ids = r.available_device_ids.clone();
            ids.sort();
            ids.reverse();
            ids.truncate(usize::try_from(r.allocation_size).unwrap());
            self.calls
                .lock()
                .unwrap()
                .preferred
                .push(r.available_device_ids);
            responses.push(ContainerPreferredAllocationResponse { device_ids: ids });
        }
        Ok(tonic::Response::new(PreferredAllocationResponse {
            container_responses: responses,
        }))
    }

    async fn allocate(
        &self,
        request: tonic::Request<AllocateRequest>,
    ) -> Result<tonic::Response<AllocateResponse>, tonic::Status> {
        let mut responses = Vec::new();
        for r in request.into_inner().container_requests {
            let ids = r.devices_ids.join(",");
            self.calls.lock().unwrap().allocated.push(r.devices_ids);
            responses.push(ContainerAllocateResponse {
                envs: [("FOO_DEVICES".to_string(), ids.clone())].into(),
                mounts: vec![Mount {
                    container_path: "/var/run/foo".into(),
                    host_path: self.data.display().to_string(),
                    read_only: true,
                }],
                devices: vec![DeviceSpec {
                    container_path: "/dev/foo0".into(),
                    host_path: "/dev/null".into(),
                    permissions: "rw".into(),
                }],
                annotations: [(FOO.to_string(), ids)].into(),
                cdi_devices: vec![],
            });
        }
        Ok(tonic::Response::new(AllocateResponse {
            container_responses: responses,
        }))
    }

    async fn pre_start_container(
        &self,
        request: tonic::Request<PreStartContainerRequest>,
    ) -> Result<tonic::Response<PreStartContainerResponse>, tonic::Status> {
        let ids = request.into_inner().devices_ids;
        self.calls.lock().unwrap().pre_started.push(ids);
        Ok(tonic::Response::new(PreStartContainerResponse {}))
    }
}

fn device(id: &str, health: &str) -> Device {
    Device {
        id: id.into(),
        health: health.into(),
        topology: None,
    }
}

/// Serves `plugin` on `socket`; the task serving it.
fn serve(plugin: FooPlugin, socket: &Path) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(DevicePluginServer::new(plugin))
            .serve_with_incoming(rk8s_deviceplugin::unix::incoming(listener))
            .await
            .unwrap();
    })
}

async fn register(dir: &Path, version: &str, resource: &str) -> Result<(), tonic::Status> {
    let channel = rk8s_deviceplugin::unix::connect(&dir.join(v1beta1::KUBELET_SOCKET))
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    RegistrationClient::new(channel)
        .register(RegisterRequest {
            version: version.into(),
            endpoint: "foo.sock".into(),
            resource_name: resource.into(),
            options: Some(DevicePluginOptions {
                pre_start_required: true,
                get_preferred_allocation_available: true,
            }),
        })
        .await
        .map(|_| ())
}

/// The node's (capacity, allocatable) of `example.com/foo`.
async fn foo_of(nodes: &Api<Node>) -> Option<(String, String)> {
    let status = nodes.get("gpu").await.ok()?.status?;
    let capacity = status.capacity?.get(FOO)?.0.clone();
    let allocatable = status.allocatable?.get(FOO)?.0.clone();
    Some((capacity, allocatable))
}

async fn foo_becomes(nodes: &Api<Node>, want: (&str, &str)) {
    eventually(
        &format!("{FOO} capacity/allocatable {want:?}"),
        async || {
            let got = foo_of(nodes).await?;
            (got.0 == want.0 && got.1 == want.1).then_some(())
        },
    )
    .await;
}

fn pod(name: &str, count: u32, node: Option<&str>) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [{
                "name": "main", "image": busybox(),
                "command": ["sh", "-c", "echo \"FOO_DEVICES=$FOO_DEVICES\"; cat /var/run/foo/hello; ls -l /dev/foo0; sleep 3600"],
                "resources": {"limits": {FOO: count.to_string()}},
            }],
        },
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_plugin_registers_and_its_devices_go_to_pods() {
    // Declared first, dropped last: the node is reset inside its namespace first.
    let mut net = NodeNetwork::new();
    let host = net.host_ip();
    let server = Server::start(&["--address", &host]);
    let ns = net.add_node(1);
    let mut agent = real_node_in(&server, "gpu", 1, Some(ns), &[]).await;
    let dir = agent.dir.path().join("device-plugins");
    let admin = server.client().await;
    let nodes: Api<Node> = Api::all(admin.clone());
    let pods: Api<Pod> = Api::namespaced(admin, "default");

    // Refused as kubelet refuses them, over the node's registration socket.
    let e = register(&dir, "v1alpha1", FOO).await.unwrap_err();
    assert_eq!(
        e.message(),
        "requested API version \"v1alpha1\" is not supported by kubelet. Supported version is [\"v1beta1\"]"
    );
    let e = register(&dir, v1beta1::VERSION, "foo").await.unwrap_err();
    assert_eq!(e.message(), "the ResourceName \"foo\" is invalid");
    let e = register(&dir, v1beta1::VERSION, FOO).await.unwrap_err();
    assert!(
        e.message().starts_with("failed to dial device plugin"),
        "{}",
        e.message()
    );

    // The plugin, its socket in the node's directory, then registered: two devices.
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("hello"), "hello from foo\n").unwrap();
    let (devices, listed) = tokio::sync::watch::channel(vec![
        device("dev-0", v1beta1::HEALTHY),
        device("dev-1", v1beta1::HEALTHY),
    ]);
    drop(listed);
    let calls = Arc::new(Mutex::new(Calls::default()));
    let plugin = || FooPlugin {
        devices: devices.subscribe(),
        data: data.path().to_path_buf(),
        calls: calls.clone(),
    };
    let socket = dir.join("foo.sock");
    let mut serving = serve(plugin(), &socket);
    register(&dir, v1beta1::VERSION, FOO).await.unwrap();
    foo_becomes(&nodes, ("2", "2")).await;

    // A pod asking for one runs with the device the plugin preferred and what its
    // Allocate answered.
    let pp = PostParams::default();
    pods.create(&pp, &pod("one", 1, None)).await.unwrap();
    let log = eventually("pod one's container prints its devices", async || {
        let log = pods.logs("one", &Default::default()).await.ok()?;
        log.contains("/dev/foo0").then_some(log)
    })
    .await;
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], "FOO_DEVICES=dev-1", "{log}");
    assert_eq!(lines[1], "hello from foo", "{log}");
    // A character device 1,3 (the host's /dev/null), made in the container.
    let words: Vec<&str> = lines[2].split_whitespace().collect();
    assert!(
        lines[2].starts_with('c') && words.windows(2).any(|w| w == ["1,", "3"]),
        "{log}"
    );
    {
        let calls = calls.lock().unwrap();
        assert_eq!(calls.preferred, vec![vec!["dev-0", "dev-1"]]);
        assert_eq!(calls.allocated, vec![vec!["dev-1"]]);
        assert_eq!(calls.pre_started, vec![vec!["dev-1"]]);
    }
    // The allocation is checkpointed as kubelet's file.
    let uid = pods.get("one").await.unwrap().metadata.uid.unwrap();
    let checkpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("kubelet_internal_checkpoint")).unwrap())
            .unwrap();
    let entry = &checkpoint["Data"]["PodDeviceEntries"][0];
    assert_eq!(entry["PodUID"], uid.as_str());
    assert_eq!(entry["DeviceIDs"]["-1"], json!(["dev-1"]));

    // The agent killed and started again: it keeps the allocation (the checkpoint),
    // reports nothing until the plugin registers again, then gives the next pod the
    // other device.
    agent.kill();
    agent.run_again(&[]);
    foo_becomes(&nodes, ("0", "0")).await;
    // The new agent removed the stale sockets, the plugin's too: as plugins do, it
    // serves again and registers again.
    eventually("the plugin's socket removed", async || {
        (!socket.exists()).then_some(())
    })
    .await;
    serving.abort();
    let _ = (&mut serving).await;
    serving = serve(plugin(), &socket);
    eventually("the plugin registered again", async || {
        register(&dir, v1beta1::VERSION, FOO).await.ok()
    })
    .await;
    foo_becomes(&nodes, ("2", "2")).await;
    pods.create(&pp, &pod("three", 1, None)).await.unwrap();
    let log = eventually("pod three's container prints its devices", async || {
        let log = pods.logs("three", &Default::default()).await.ok()?;
        log.contains("/dev/foo0").then_some(log)
    })
    .await;
    assert!(log.starts_with("FOO_DEVICES=dev-0\n"), "{log}");
    let one = pods.get("one").await.unwrap().status.unwrap();
    assert_eq!(one.container_statuses.unwrap()[0].restart_count, 0);
    assert_eq!(
        calls.lock().unwrap().allocated,
        vec![vec!["dev-1"], vec!["dev-0"]]
    );

    // Two more do not fit: the scheduler leaves the pod Pending.
    pods.create(&pp, &pod("two", 2, None)).await.unwrap();
    let message = eventually("pod two unschedulable", async || {
        let status = pods.get("two").await.ok()?.status?;
        let c = status
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "PodScheduled")?;
        (c.reason.as_deref() == Some("Unschedulable")).then_some(c.message?)
    })
    .await;
    assert!(
        message.contains(&format!("Insufficient {FOO}")),
        "{message}"
    );
    // Bound to the node past the scheduler, the node's admission rejects it.
    let created = pods
        .create(&pp, &pod("bound", 2, Some("gpu")))
        .await
        .unwrap();
    let qos = created.status.and_then(|s| s.qos_class);
    assert!(qos.is_some());
    let status = eventually("pod bound rejected", async || {
        let status = pods.get("bound").await.ok()?.status?;
        (status.phase.as_deref() == Some("Failed")).then_some(status)
    })
    .await;
    assert_eq!(status.reason.as_deref(), Some("UnexpectedAdmissionError"));
    // Its QoS class kept, as kubelet's rejectPod keeps it.
    assert_eq!(status.qos_class, qos);
    assert_eq!(
        status.message.as_deref(),
        Some(
            "Pod was rejected: Allocate failed due to requested number of devices unavailable for example.com/foo. Requested: 2, Available: 0, which is unexpected"
        )
    );
    assert_eq!(calls.lock().unwrap().allocated.len(), 2);

    // A device turning unhealthy: allocatable drops, capacity stays.
    devices
        .send(vec![
            device("dev-0", v1beta1::UNHEALTHY),
            device("dev-1", v1beta1::HEALTHY),
        ])
        .unwrap();
    foo_becomes(&nodes, ("2", "1")).await;

    // The pod ending frees its device (gone from the checkpoint).
    let quick = DeleteParams {
        grace_period_seconds: Some(1),
        ..Default::default()
    };
    pods.delete("one", &quick).await.unwrap();
    eventually("pod one's devices freed", async || {
        let text = std::fs::read_to_string(dir.join("kubelet_internal_checkpoint")).ok()?;
        (!text.contains(&uid)).then_some(())
    })
    .await;

    // A pod evicted for its emptyDir frees its device (kubelet frees the devices of
    // pods no longer active): the next pod asking for the only healthy one runs
    // (both bound here past the scheduler, which counts pod three's device).
    let filler: Pod = serde_json::from_value(json!({
        "metadata": {"name": "filler"},
        "spec": {
            "nodeName": "gpu",
            "containers": [{
                "name": "main", "image": busybox(),
                "command": ["sh", "-c", "dd if=/dev/zero of=/data/big bs=1024 count=4096; sleep 3600"],
                "resources": {"limits": {FOO: "1"}},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }],
            "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Mi"}}],
        },
    }))
    .unwrap();
    pods.create(&pp, &filler).await.unwrap();
    eventually("pod filler evicted", async || {
        let status = pods.get("filler").await.ok()?.status?;
        (status.reason.as_deref() == Some("Evicted")).then_some(())
    })
    .await;
    pods.create(&pp, &pod("after", 1, Some("gpu")))
        .await
        .unwrap();
    let log = eventually("pod after's container prints its devices", async || {
        let log = pods.logs("after", &Default::default()).await.ok()?;
        log.contains("/dev/foo0").then_some(log)
    })
    .await;
    assert!(log.starts_with("FOO_DEVICES=dev-1\n"), "{log}");

    // The plugin stopping (its server gone, its socket removed): nothing allocatable,
    // the capacity kept for the grace period.
    serving.abort();
    let _ = serving.await;
    std::fs::remove_file(&socket).unwrap();
    foo_becomes(&nodes, ("2", "0")).await;
    drop(devices);

    // The checkpoint gone (a node recreated or reset) and no plugin: the agent
    // started again zeroes the extended resource the Node still lists (kubelet's
    // ShouldResetExtendedResourceCapacity), so nothing is scheduled for it.
    agent.kill();
    std::fs::remove_file(dir.join("kubelet_internal_checkpoint")).unwrap();
    agent.run_again(&[]);
    foo_becomes(&nodes, ("0", "0")).await;
}

//! The device manager's decisions and checkpoint, as pure functions.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rk8s_deviceplugin::v1beta1::{
    ContainerAllocateResponse, Device, DevicePluginOptions, DeviceSpec, HEALTHY, Mount, NumaNode,
    RegisterRequest, TopologyInfo, UNHEALTHY,
};

use super::checkpoint;
use super::state::{Devices, KnownPods, Need, STOP_GRACE_PERIOD, active_pods, choose};
use super::{admission_message, is_extended_resource_name, refusal};

const FOO: &str = "example.com/foo";

fn device(id: &str, health: &str) -> Device {
    Device {
        id: id.into(),
        health: health.into(),
        topology: None,
    }
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn registered(devices: &[Device]) -> (Devices, u64) {
    let mut state = Devices::default();
    let generation = state.connected(FOO, DevicePluginOptions::default());
    assert!(state.listed(FOO, generation, devices.to_vec()));
    (state, generation)
}

fn answer(env: &str) -> ContainerAllocateResponse {
    ContainerAllocateResponse {
        envs: [("FOO".to_string(), env.to_string())].into(),
        ..Default::default()
    }
}

#[test]
fn capacity_counts_every_device_and_allocatable_the_healthy_ones() {
    let (mut state, _) = registered(&[device("a", HEALTHY), device("b", UNHEALTHY)]);
    let c = state.capacity(Instant::now());
    assert_eq!(c.capacity[FOO], 2);
    assert_eq!(c.allocatable[FOO], 1);
    assert!(c.removed.is_empty());
}

#[test]
fn a_gone_plugin_keeps_its_capacity_for_the_grace_period_with_nothing_allocatable() {
    let (mut state, generation) = registered(&[device("a", HEALTHY), device("b", HEALTHY)]);
    let gone = Instant::now();
    assert!(state.disconnected(FOO, generation, gone));
    let c = state.capacity(gone + Duration::from_secs(10));
    assert_eq!((c.capacity[FOO], c.allocatable[FOO]), (2, 0));
    let c = state.capacity(gone + STOP_GRACE_PERIOD + Duration::from_secs(1));
    assert!(c.capacity.is_empty());
    assert_eq!(c.removed, vec![FOO.to_string()]);
    // Forgotten: nothing is reported again.
    assert!(
        state
            .capacity(gone + STOP_GRACE_PERIOD * 2)
            .removed
            .is_empty()
    );
}

#[test]
fn a_newer_registration_is_not_stopped_by_the_older_stream_ending() {
    let (mut state, old) = registered(&[device("a", HEALTHY)]);
    let new = state.connected(FOO, DevicePluginOptions::default());
    assert!(!state.listed(FOO, old, vec![]));
    assert!(state.listed(FOO, new, vec![device("a", HEALTHY)]));
    assert!(!state.disconnected(FOO, old, Instant::now()));
    assert_eq!(state.capacity(Instant::now()).allocatable[FOO], 1);
}

#[test]
fn a_container_gets_healthy_free_devices_or_kubelets_reason() {
    let (mut state, _) = registered(&[
        device("a", HEALTHY),
        device("b", HEALTHY),
        device("c", UNHEALTHY),
    ]);
    let none = BTreeSet::new();
    let need = state.need(("p1", "main"), FOO, 1, &none).unwrap();
    assert_eq!(
        need,
        Need::Devices {
            needed: 1,
            available: ids(&["a", "b"]),
            reusable: BTreeSet::new()
        }
    );
    state.insert(("p1", "main"), FOO, ids(&["a"]), answer("a"));
    // Held already: nothing more to do (a restart of the container).
    assert_eq!(
        state.need(("p1", "main"), FOO, 1, &none).unwrap(),
        Need::Nothing
    );
    // The same container asking for a different number.
    assert_eq!(
        state.need(("p1", "main"), FOO, 2, &none).unwrap_err(),
        "pod \"p1\" container \"main\" changed request for resource \"example.com/foo\" from 1 to 2"
    );
    // Another pod: only b is free and healthy.
    let err = state.need(("p2", "main"), FOO, 2, &none).unwrap_err();
    assert_eq!(
        err,
        "requested number of devices unavailable for example.com/foo. Requested: 2, Available: 1"
    );
    assert_eq!(
        admission_message(&err),
        "Allocate failed due to requested number of devices unavailable for example.com/foo. Requested: 2, Available: 1, which is unexpected"
    );
    // Freed when the pod ends: two are free again.
    assert!(state.free("p1"));
    assert!(!state.free("p1"));
    assert!(matches!(
        state.need(("p2", "main"), FOO, 2, &none).unwrap(),
        Need::Devices { available, .. } if available == ids(&["a", "b"])
    ));
}

#[test]
fn unregistered_and_unhealthy_resources_are_refused_in_kubelets_words() {
    let state = Devices::default();
    let none = BTreeSet::new();
    assert_eq!(
        state.need(("p", "c"), FOO, 1, &none).unwrap_err(),
        "cannot allocate unregistered device example.com/foo"
    );
    let (mut state, generation) = registered(&[device("a", HEALTHY)]);
    state.insert(("p", "c"), FOO, ids(&["a"]), answer("a"));
    state.disconnected(FOO, generation, Instant::now());
    assert_eq!(
        state.need(("q", "c"), FOO, 1, &none).unwrap_err(),
        "no healthy devices present; cannot allocate unhealthy devices example.com/foo"
    );
    let g = state.connected(FOO, DevicePluginOptions::default());
    state.listed(FOO, g, vec![device("a", UNHEALTHY), device("b", HEALTHY)]);
    assert_eq!(
        state.need(("p", "c"), FOO, 1, &none).unwrap_err(),
        "previously allocated devices are no longer healthy; cannot allocate unhealthy devices example.com/foo"
    );
}

#[test]
fn init_containers_devices_are_given_again_to_the_app_containers() {
    let (mut state, _) = registered(&[device("a", HEALTHY), device("b", HEALTHY)]);
    state.insert(("p", "init"), FOO, ids(&["b"]), answer("b"));
    let need = state.need(("p", "main"), FOO, 1, &ids(&["b"])).unwrap();
    assert_eq!(
        need,
        Need::Devices {
            needed: 1,
            available: BTreeSet::new(),
            reusable: ids(&["b"])
        }
    );
}

#[test]
fn choice_takes_reusable_then_preferred_then_the_rest() {
    let available = ids(&["a", "b", "c", "d"]);
    assert_eq!(choose(2, &ids(&[]), &available, &[]), ids(&["a", "b"]));
    let preferred = vec!["d".to_string(), "zz".to_string(), "c".to_string()];
    assert_eq!(
        choose(2, &ids(&[]), &available, &preferred),
        ids(&["c", "d"])
    );
    assert_eq!(
        choose(3, &ids(&["x"]), &available, &preferred),
        ids(&["x", "d", "c"])
    );
    assert_eq!(choose(9, &ids(&[]), &available, &[]).len(), 4);
}

#[test]
fn run_options_merge_resources_keeping_the_first_of_each_name() {
    let mut state = Devices::default();
    let first = ContainerAllocateResponse {
        envs: [("A".to_string(), "1".to_string())].into(),
        mounts: vec![Mount {
            container_path: "/data".into(),
            host_path: "/srv/a".into(),
            read_only: true,
        }],
        devices: vec![DeviceSpec {
            container_path: "/dev/x".into(),
            host_path: "/dev/null".into(),
            permissions: "rw".into(),
        }],
        ..Default::default()
    };
    let mut second = first.clone();
    second.envs.insert("A".into(), "2".into());
    second.envs.insert("B".into(), "3".into());
    second.mounts[0].host_path = "/srv/b".into();
    state.insert(("p", "c"), "a.com/x", ids(&["1"]), first);
    state.insert(("p", "c"), "b.com/y", ids(&["2"]), second);
    let options = state.run_options("p", "c").unwrap();
    assert_eq!(options.envs["A"], "1");
    assert_eq!(options.envs["B"], "3");
    assert_eq!(options.mounts.len(), 1);
    assert_eq!(options.mounts[0].host_path, "/srv/a");
    assert_eq!(options.devices.len(), 1);
    assert!(state.run_options("p", "other").is_none());
}

#[test]
fn the_checkpoint_keeps_allocations_and_restores_registered_resources_empty() {
    let (mut state, _) = registered(&[
        Device {
            id: "a".into(),
            health: HEALTHY.into(),
            topology: Some(TopologyInfo {
                nodes: vec![NumaNode { id: 0 }],
            }),
        },
        device("b", HEALTHY),
    ]);
    state.insert(("p", "c"), FOO, ids(&["a", "b"]), answer("ab"));
    let written = checkpoint::of(&state);
    let json = serde_json::to_value(&written).unwrap();
    let entry = &json["Data"]["PodDeviceEntries"][0];
    assert_eq!(entry["PodUID"], "p");
    assert_eq!(entry["ContainerName"], "c");
    assert_eq!(entry["ResourceName"], FOO);
    assert_eq!(entry["DeviceIDs"]["0"], serde_json::json!(["a"]));
    assert_eq!(entry["DeviceIDs"]["-1"], serde_json::json!(["b"]));
    assert_eq!(
        json["Data"]["RegisteredDevices"][FOO],
        serde_json::json!(["a", "b"])
    );
    // Read back from its bytes, as a restarted agent does.
    let read: checkpoint::Checkpoint =
        serde_json::from_slice(&serde_json::to_vec(&written).unwrap()).unwrap();
    let now = Instant::now();
    let mut restored = checkpoint::restore(&read, now).unwrap();
    let held = restored.container_devices("p", "c", FOO).unwrap();
    assert_eq!(held.ids, ids(&["a", "b"]));
    assert_eq!(held.response, answer("ab"));
    // Capacity 0 until the plugin registers again; its devices stay taken.
    let c = restored.capacity(now);
    assert_eq!((c.capacity[FOO], c.allocatable[FOO]), (0, 0));
    assert!(restored.is_device_resource(FOO));
    // A changed file is refused.
    let mut tampered = read.clone();
    tampered.data.pod_device_entries[0].pod_uid = "q".into();
    assert_eq!(
        checkpoint::restore(&tampered, now).unwrap_err(),
        "checkpoint is corrupted"
    );
}

#[test]
fn the_checkpoint_file_is_written_whole_and_read_back() {
    let dir = std::env::temp_dir().join(format!("rk8s-dp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(checkpoint::read(&dir).unwrap(), None);
    let (mut state, _) = registered(&[device("a", HEALTHY)]);
    state.insert(("p", "c"), FOO, ids(&["a"]), answer("a"));
    let written = checkpoint::of(&state);
    checkpoint::write(&dir, &written).unwrap();
    assert_eq!(checkpoint::read(&dir).unwrap(), Some(written));
    std::fs::write(dir.join(checkpoint::FILE), b"{not json").unwrap();
    assert!(checkpoint::read(&dir).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn registrations_are_refused_as_kubelet_refuses_them() {
    let request = |version: &str, name: &str, endpoint: &str| RegisterRequest {
        version: version.into(),
        endpoint: endpoint.into(),
        resource_name: name.into(),
        options: None,
    };
    assert_eq!(refusal(&request("v1beta1", FOO, "foo.sock")), None);
    assert_eq!(
        refusal(&request("v1alpha", FOO, "foo.sock")).unwrap(),
        "requested API version \"v1alpha\" is not supported by kubelet. Supported version is [\"v1beta1\"]"
    );
    for bad in [
        "foo",
        "kubernetes.io/foo",
        "requests.example.com/foo",
        "example.com/-x",
        "a/b/c",
    ] {
        assert_eq!(
            refusal(&request("v1beta1", bad, "foo.sock")).unwrap(),
            format!("the ResourceName {bad:?} is invalid")
        );
    }
    for bad in ["../kubelet.sock", "/tmp/x.sock", "", "a/b.sock"] {
        assert!(refusal(&request("v1beta1", FOO, bad)).is_some(), "{bad}");
    }
    assert!(is_extended_resource_name("nvidia.com/gpu"));
    assert!(!is_extended_resource_name("cpu"));
}

#[test]
fn devices_of_pods_no_longer_active_are_freed() {
    // (API pods running, API pods ended, pods the runtime holds) -> active.
    type Ids<'a> = &'a [&'a str];
    let cases: &[(Ids, Ids, Ids, Ids)] = &[
        // Running in the API: active, with or without containers yet.
        (&["a"], &[], &[], &["a"]),
        (&["a"], &[], &["a"], &["a"]),
        // Ended (Succeeded, Failed, Evicted): not active, even with its record left.
        (&[], &["a"], &["a"], &[]),
        // Gone from the API but its containers may still run (a failed stop, an old
        // uid not yet removed as an orphan, a static pod): active.
        (&[], &[], &["a"], &["a"]),
        // Gone from the API and from the node (deleted, removed as an orphan).
        (&[], &[], &[], &[]),
        (&["a"], &["b"], &["b", "c"], &["a", "c"]),
    ];
    for (running, ended, on_node, want) in cases {
        let known = KnownPods {
            running: ids(running),
            ended: ids(ended),
        };
        assert_eq!(
            active_pods(&known, &ids(on_node)),
            ids(want),
            "{running:?} {ended:?} {on_node:?}"
        );
    }
    let (mut state, _) = registered(&[device("x", HEALTHY), device("y", HEALTHY)]);
    state.insert(("evicted", "c"), FOO, ids(&["x"]), answer("x"));
    state.insert(("running", "c"), FOO, ids(&["y"]), answer("y"));
    assert_eq!(state.retain_active(&ids(&["running"])), vec!["evicted"]);
    assert_eq!(state.allocated()[FOO], ids(&["y"]));
    assert!(state.retain_active(&ids(&["running"])).is_empty());
}

#[test]
fn a_container_allocated_again_reuses_its_init_containers_devices_not_a_sidecars() {
    let spec: k8s_openapi::api::core::v1::PodSpec = serde_json::from_value(serde_json::json!({
        "initContainers": [
            {"name": "init", "image": "i"},
            {"name": "sidecar", "image": "i", "restartPolicy": "Always"}
        ],
        "containers": [{"name": "app", "image": "i"}, {"name": "second", "image": "i"}]
    }))
    .unwrap();
    let (mut state, _) = registered(&[device("x", HEALTHY), device("y", HEALTHY)]);
    state.insert(("p", "init"), FOO, ids(&["x"]), answer("x"));
    state.insert(("p", "sidecar"), FOO, ids(&["y"]), answer("y"));
    let reusable = |state: &Devices, name: &str| {
        state
            .reusable_before("p", &spec, name)
            .get(FOO)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(reusable(&state, "init"), ids(&[]));
    assert_eq!(reusable(&state, "sidecar"), ids(&["x"]));
    assert_eq!(reusable(&state, "app"), ids(&["x"]));
    // The app container took it: the next one cannot.
    state.insert(("p", "app"), FOO, ids(&["x"]), answer("x"));
    assert_eq!(reusable(&state, "second"), ids(&[]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_checkpoint_writes_leave_the_newest_state_whole() {
    let dir = std::env::temp_dir().join(format!("rk8s-dpw-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let manager = super::DeviceManager::start(&dir, &BTreeSet::new())
        .await
        .unwrap();
    std::thread::scope(|scope| {
        for i in 0..8 {
            let (manager, dir) = (&manager, &dir);
            scope.spawn(move || {
                for j in 0..100 {
                    let uid = format!("p{i}");
                    let id = format!("d{i}-{j}");
                    super::lock(&manager.state).insert((&uid, "c"), FOO, ids(&[&id]), answer(&id));
                    manager.write_checkpoint();
                    // Whatever was written since holds this allocation too: the
                    // file is whole and never goes back to an older state.
                    let read = checkpoint::read(dir).unwrap().unwrap();
                    let restored = checkpoint::restore(&read, Instant::now()).unwrap();
                    let held = restored.container_devices(&uid, "c", FOO).map(|a| &a.ids);
                    assert_eq!(held, Some(&ids(&[&id])));
                }
            });
        }
    });
    let read = checkpoint::read(&dir).unwrap().unwrap();
    let restored = checkpoint::restore(&read, Instant::now()).unwrap();
    assert_eq!(restored.pods, super::lock(&manager.state).pods);
    assert_eq!(restored.pods.len(), 8);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn only_a_device_plugin_directorys_sockets_are_swept() {
    let dir = std::env::temp_dir().join(format!("rk8s-dps-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    assert!(super::stale_sockets(&dir).unwrap().is_empty());
    // Another daemon's directory: refused, its socket left alone.
    let _daemon = std::os::unix::net::UnixListener::bind(dir.join("docker.sock")).unwrap();
    std::fs::write(dir.join("notes"), b"x").unwrap();
    let refused = super::stale_sockets(&dir).unwrap_err();
    assert!(
        refused.contains("is not a device plugin directory"),
        "{refused}"
    );
    assert!(refused.contains("docker.sock"), "{refused}");
    assert!(dir.join("docker.sock").exists());
    // Once it holds the checkpoint, its sockets (not other files) are stale ones.
    std::fs::write(dir.join(checkpoint::FILE), b"{}").unwrap();
    let stale = super::stale_sockets(&dir).unwrap();
    assert_eq!(stale, vec![dir.join("docker.sock")]);
    std::fs::remove_dir_all(&dir).unwrap();
}

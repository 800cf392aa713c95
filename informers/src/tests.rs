use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::informer::{Informer, Notice, key_of};

fn map(name: &str, version: &str) -> Arc<ConfigMap> {
    Arc::new(ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            resource_version: Some(version.into()),
            ..Default::default()
        },
        ..Default::default()
    })
}

fn listing(objects: &[Arc<ConfigMap>]) -> BTreeMap<String, Arc<ConfigMap>> {
    objects
        .iter()
        .map(|o| (key_of(o.as_ref()), o.clone()))
        .collect()
}

/// A later list of `objects`, as the watch takes it in: object by object, then done.
fn relist(informer: &Informer<ConfigMap>, objects: &[Arc<ConfigMap>]) {
    let seen = objects
        .iter()
        .map(|o| informer.relisted_object(ConfigMap::clone(o)))
        .collect();
    informer.relist_done(&seen);
}

/// Writes down each notice as `listed a,b` / `applied a@2` / `deleted a@1`.
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Actor for Recorder {
    type Context = Context<Self>;
}

fn at(o: &ConfigMap) -> String {
    format!(
        "{}@{}",
        o.metadata.name.as_deref().unwrap_or_default(),
        o.metadata.resource_version.as_deref().unwrap_or_default()
    )
}

impl Handler<Notice<ConfigMap>> for Recorder {
    type Result = ();

    fn handle(&mut self, notice: Notice<ConfigMap>, _: &mut Context<Self>) {
        let line = match notice {
            Notice::Listed(all) => {
                let mut names: Vec<_> = all.iter().map(|o| at(o)).collect();
                names.sort();
                format!("listed {}", names.join(","))
            }
            Notice::Applied(o) => format!("applied {}", at(&o)),
            Notice::Deleted(o) => format!("deleted {}", at(&o)),
        };
        self.0.lock().unwrap().push(line);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Stop;

impl Handler<Stop> for Recorder {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

async fn settle() {
    for _ in 0..10 {
        actix_rt::task::yield_now().await;
    }
}

#[test]
fn subscribers_get_the_whole_state_once_then_each_change_in_order() {
    System::new().block_on(async {
        let informer = Informer::<ConfigMap>::default();
        let early = Arc::new(Mutex::new(Vec::new()));
        informer.subscribe(Recorder(early.clone()).start().recipient());
        informer.first_listed(listing(&[map("a", "1"), map("b", "1")]));
        informer.applied(map("c", "2"));
        let late = Arc::new(Mutex::new(Vec::new()));
        informer.subscribe(Recorder(late.clone()).start().recipient());
        informer.deleted(map("a", "3"));
        settle().await;
        assert_eq!(
            *early.lock().unwrap(),
            ["listed a@1,b@1", "applied c@2", "deleted a@3"]
        );
        assert_eq!(*late.lock().unwrap(), ["listed a@1,b@1,c@2", "deleted a@3"]);
        assert_eq!(informer.list().len(), 2);
        assert_eq!(informer.get("ns/b").map(|o| at(&o)), Some("b@1".into()));
    });
}

#[test]
fn a_relist_is_told_as_the_changes_it_shows() {
    System::new().block_on(async {
        let informer = Informer::<ConfigMap>::default();
        let b = map("b", "1");
        informer.first_listed(listing(&[map("a", "1"), b.clone()]));
        let seen = Arc::new(Mutex::new(Vec::new()));
        informer.subscribe(Recorder(seen.clone()).start().recipient());
        // a deleted and c added while the watch was down, b unchanged, d changed.
        informer.applied(map("d", "2"));
        relist(&informer, &[map("b", "1"), map("c", "5"), map("d", "4")]);
        settle().await;
        let mut lines = seen.lock().unwrap().clone();
        lines[2..].sort();
        assert_eq!(
            lines,
            [
                "listed a@1,b@1",
                "applied d@2",
                "applied c@5",
                "applied d@4",
                "deleted a@1"
            ]
        );
        // The unchanged object is the one subscribers already hold.
        assert!(Arc::ptr_eq(&informer.get("ns/b").unwrap(), &b));
    });
}

#[test]
fn a_killed_subscriber_is_dropped_and_its_next_incarnation_starts_from_the_whole_state() {
    System::new().block_on(async {
        let informer = Informer::<ConfigMap>::default();
        informer.first_listed(listing(&[map("a", "1")]));
        let first = Arc::new(Mutex::new(Vec::new()));
        let addr = Recorder(first.clone()).start();
        informer.subscribe(addr.clone().recipient());
        settle().await;
        addr.do_send(Stop);
        settle().await;
        informer.applied(map("b", "2"));
        let second = Arc::new(Mutex::new(Vec::new()));
        informer.subscribe(Recorder(second.clone()).start().recipient());
        settle().await;
        assert_eq!(*first.lock().unwrap(), ["listed a@1"]);
        assert_eq!(*second.lock().unwrap(), ["listed a@1,b@2"]);
    });
}

#[test]
fn objects_are_kept_without_their_managed_fields() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    let mut m = ConfigMap::clone(&map("a", "1"));
    m.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
        manager: Some("kubectl".into()),
        ..Default::default()
    }]);
    let kept = crate::compact::trimmed(m);
    assert_eq!(kept.metadata.managed_fields, None);
    assert_eq!(kept.metadata.name.as_deref(), Some("a"));
}

#[test]
fn a_namespace_lists_its_own_objects_only() {
    let informer = Informer::<ConfigMap>::default();
    let in_ns = |ns: &str, name: &str| {
        let mut m = ConfigMap::clone(&map(name, "1"));
        m.metadata.namespace = Some(ns.into());
        Arc::new(m)
    };
    // "ns-a" and "ns0" sort right after "ns/…" and "ns" is a prefix of both.
    informer.first_listed(listing(&[
        in_ns("ns", "a"),
        in_ns("ns", "b"),
        in_ns("ns-a", "c"),
        in_ns("ns0", "d"),
        in_ns("n", "e"),
    ]));
    let names = |ns: &str| -> Vec<String> {
        informer
            .list_in(ns)
            .iter()
            .map(|o| o.metadata.name.clone().unwrap_or_default())
            .collect()
    };
    assert_eq!(names("ns"), ["a", "b"]);
    assert_eq!(names("ns-a"), ["c"]);
    assert_eq!(names("ns0"), ["d"]);
    assert_eq!(names("n"), ["e"]);
    assert!(names("absent").is_empty());
}

#[test]
fn pods_and_nodes_are_kept_with_their_lists_fitted_and_nothing_else_changed() {
    use k8s_openapi::api::core::v1::{Node, Pod};
    let conditions: Vec<serde_json::Value> = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ]
    .map(|t| serde_json::json!({"type": t, "status": "True"}))
    .into();
    let pod = serde_json::json!({
        "metadata": {"name": "p", "namespace": "ns", "finalizers": ["f"],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u"}]},
        "spec": {
            "containers": [{"name": "c", "ports": [{"containerPort": 80}],
                "env": [{"name": "A", "value": "1"}],
                "volumeMounts": [{"name": "token", "mountPath": "/var/run/secrets"}]}],
            "volumes": [{"name": "token", "projected": {"sources": [
                {"serviceAccountToken": {"path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}}],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}],
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"topologyKey": "zone", "namespaces": ["ns"]}]}}
        },
        "status": {
            "conditions": conditions,
            "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": 0}],
            "hostIPs": [{"ip": "10.0.0.1"}], "podIPs": [{"ip": "10.244.0.5"}]
        }
    });
    // Decoded from bytes, as the watch decodes it (from a `Value`, lists fit).
    let decoded: Pod = serde_json::from_slice(&serde_json::to_vec(&pod).unwrap()).unwrap();
    // As decoded from JSON, a list of one has room for more.
    let statuses = decoded
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap();
    assert!(statuses.capacity() > statuses.len());
    // (A clone would fit them: the decoded object itself is kept.)
    let expected = decoded.clone();
    let kept = crate::compact::trimmed(decoded);
    assert_eq!(*kept, expected);
    fn fitted<T>(list: &Option<Vec<T>>) -> bool {
        list.as_ref().is_some_and(|l| l.capacity() == l.len())
    }
    let (spec, status) = (kept.spec.as_ref().unwrap(), kept.status.as_ref().unwrap());
    let c = &spec.containers[0];
    let volume = &spec.volumes.as_ref().unwrap()[0];
    let projected = volume.projected.as_ref().unwrap();
    let anti = spec
        .affinity
        .as_ref()
        .unwrap()
        .pod_anti_affinity
        .as_ref()
        .unwrap();
    let term = &anti
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()[0];
    for (what, ok) in [
        ("ownerReferences", fitted(&kept.metadata.owner_references)),
        ("finalizers", fitted(&kept.metadata.finalizers)),
        ("ports", fitted(&c.ports)),
        ("env", fitted(&c.env)),
        ("volumeMounts", fitted(&c.volume_mounts)),
        ("volumes", fitted(&spec.volumes)),
        ("projected sources", fitted(&projected.sources)),
        (
            "configMap items",
            fitted(
                &projected.sources.as_ref().unwrap()[1]
                    .config_map
                    .as_ref()
                    .unwrap()
                    .items,
            ),
        ),
        ("tolerations", fitted(&spec.tolerations)),
        (
            "anti-affinity terms",
            fitted(&anti.required_during_scheduling_ignored_during_execution),
        ),
        ("term namespaces", fitted(&term.namespaces)),
        ("conditions", fitted(&status.conditions)),
        ("containerStatuses", fitted(&status.container_statuses)),
        ("hostIPs", fitted(&status.host_ips)),
        ("podIPs", fitted(&status.pod_ips)),
    ] {
        assert!(ok, "{what} not fitted");
    }

    let decoded: Node = serde_json::from_slice(
        br#"{"metadata": {"name": "n"}, "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "images": [{"names": ["busybox:latest"]}]}}"#,
    )
    .unwrap();
    let expected = decoded.clone();
    let kept = crate::compact::trimmed(decoded);
    assert_eq!(*kept, expected);
    let (spec, status) = (kept.spec.as_ref().unwrap(), kept.status.as_ref().unwrap());
    assert!(fitted(&spec.taints) && fitted(&status.addresses) && fitted(&status.conditions));
    assert!(fitted(&status.images) && fitted(&status.images.as_ref().unwrap()[0].names));
}

#[test]
fn a_relist_keeps_the_known_copy_of_what_did_not_change_and_takes_in_the_rest_at_once() {
    let informer = Informer::<ConfigMap>::default();
    let (a, b) = (map("a", "1"), map("b", "1"));
    informer.first_listed(listing(&[a.clone(), b.clone()]));
    // Listed again: "a" unchanged, "b" changed, "c" new.
    assert_eq!(informer.relisted_object(ConfigMap::clone(&a)), "ns/a");
    assert!(
        Arc::ptr_eq(&informer.get("ns/a").unwrap(), &a),
        "the known copy, not a second one"
    );
    // A changed object replaces the known one before the list completes: the list
    // holds no second copy of it.
    informer.relisted_object(ConfigMap::clone(&map("b", "2")));
    let now_b = informer.get("ns/b").unwrap();
    assert_eq!(now_b.metadata.resource_version.as_deref(), Some("2"));
    assert_eq!(Arc::strong_count(&b), 1, "the old copy is let go");
    assert_eq!(
        informer.relisted_object(ConfigMap::clone(&map("c", "1"))),
        "ns/c"
    );
    assert_eq!(informer.list().len(), 3);
    // An object without a version is never taken for the known one.
    let mut unversioned = ConfigMap::clone(&a);
    unversioned.metadata.resource_version = None;
    informer.relisted_object(unversioned);
    assert!(!Arc::ptr_eq(&informer.get("ns/a").unwrap(), &a));
    // Completed having shown every key: nothing goes.
    let seen = ["ns/a", "ns/b", "ns/c"].map(String::from).into();
    informer.relist_done(&seen);
    assert_eq!(informer.list().len(), 3);
}

#[test]
fn an_informer_s_resource_version_is_the_newest_it_took_in() {
    let gauge = crate::metrics::RESOURCE_VERSION.with_label_values(&["test-versions"]);
    crate::metrics::took_in(&gauge, Some("12"));
    // A re-list's objects come in any order: an older one does not move it back.
    crate::metrics::took_in(&gauge, Some("7"));
    assert_eq!(gauge.get(), 12);
    crate::metrics::took_in(&gauge, Some("not a number"));
    crate::metrics::took_in(&gauge, None);
    assert_eq!(gauge.get(), 12);
    crate::metrics::took_in(&gauge, Some("40"));
    assert_eq!(gauge.get(), 40);
}

#[test]
fn a_kind_outside_the_core_group_is_labelled_with_its_group() {
    use k8s_openapi::api::apps::v1::Deployment;
    assert_eq!(crate::metrics::resource::<ConfigMap>(), "configmaps");
    assert_eq!(crate::metrics::resource::<Deployment>(), "deployments.apps");
}

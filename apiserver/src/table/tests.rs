//! Every kind's columns and cells against what kube-apiserver prints for the same
//! object.

use super::*;
use rk8s_api::manifest;

/// The clock of these tests; objects are created an hour before it.
fn now() -> Timestamp {
    "2024-05-01T12:00:00Z".parse().unwrap()
}

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "default", "creationTimestamp": "2024-05-01T11:00:00Z"})
}

/// The object `value` as stored (an object of a version served by conversion, such as
/// an `events.k8s.io` Event, converted to its stored one).
fn object(value: Value) -> AnyObject {
    let api_version = value["apiVersion"].as_str().unwrap_or_default().to_string();
    let kind = value["kind"].as_str().unwrap_or_default().to_string();
    if let Some(alias) = rk8s_api::versions::alias_named(&api_version, &kind) {
        let stored = alias.from_served(value).unwrap();
        return AnyObject::from_value(&alias.stored, stored)
            .unwrap()
            .unwrap();
    }
    let kind = rk8s_api::object::kind_for(&api_version, &kind).unwrap();
    AnyObject::from_value(&kind, value).unwrap().unwrap()
}

fn row(value: Value) -> Vec<Value> {
    let obj = object(value);
    let cells = cells(&obj, now());
    assert_eq!(
        cells.len(),
        columns(&obj.kind()).len(),
        "{}",
        obj.kind().kind
    );
    cells
}

fn cells_of(value: Value) -> Value {
    Value::Array(row(value))
}

#[test]
fn every_kind_has_a_cell_for_every_column() {
    let kinds = rk8s_api::object::kinds();
    assert!(kinds.len() >= 48);
    for kind in kinds {
        let obj = AnyObject::from_value(&kind, json!({"metadata": {"name": "x"}}))
            .unwrap_or_else(|| panic!("{} is not served", kind.kind))
            .unwrap_or_else(|e| panic!("a minimal {} does not decode: {e}", kind.kind));
        let t = table_at(&kind, &[obj], "1", None, None, now());
        let width = t["columnDefinitions"].as_array().unwrap().len();
        let cells = t["rows"][0]["cells"].as_array().unwrap();
        assert_eq!(cells.len(), width, "{} {}", kind.api_version, kind.kind);
        let names: Vec<&Value> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"] == "Name")
            .collect();
        assert_eq!(names.len(), 1, "{} has one Name column", kind.kind);
        assert_eq!(names[0]["format"], "name");
        assert!(cells.contains(&json!("x")), "{} shows its name", kind.kind);
    }
}

#[test]
fn events_of_both_apis_share_kubes_event_columns() {
    let core = rk8s_api::object::kind_for("v1", "Event").unwrap();
    let new = rk8s_api::versions::alias_for("events.k8s.io", "v1", "events")
        .unwrap()
        .served;
    assert_eq!(columns(&core), columns(&new));
    let headers: Vec<(&str, u8)> = columns(&core)
        .iter()
        .map(|c| (c.name, c.priority))
        .collect();
    assert_eq!(
        headers,
        [
            ("Last Seen", 0),
            ("Type", 0),
            ("Reason", 0),
            ("Object", 0),
            ("Subobject", 1),
            ("Source", 1),
            ("Message", 0),
            ("First Seen", 1),
            ("Count", 1),
            ("Name", 1),
        ]
    );
}

#[test]
fn wide_columns_of_pvs_rolebindings_and_statefulsets_are_priority_one() {
    let wide_of = |api: &str, kind: &str| -> Vec<&str> {
        columns(&rk8s_api::object::kind_for(api, kind).unwrap())
            .iter()
            .filter(|c| c.priority == 1)
            .map(|c| c.name)
            .collect()
    };
    assert_eq!(wide_of("v1", "PersistentVolume"), ["VolumeMode"]);
    assert_eq!(
        wide_of("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ["Users", "Groups", "ServiceAccounts"]
    );
    assert_eq!(wide_of("apps/v1", "StatefulSet"), ["Containers", "Images"]);
    assert_eq!(wide_of("v1", "ConfigMap"), Vec::<&str>::new());
}

#[test]
fn pods_show_the_most_telling_container_reason_and_recent_restarts() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": meta("web"),
        "spec": {
            "nodeName": "n1",
            "containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "nginx"}],
            "readinessGates": [{"conditionType": "example.com/gate"}],
        },
        "status": {
            "phase": "Running",
            "podIPs": [{"ip": "10.0.0.5"}],
            "conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "example.com/gate", "status": "True"},
            ],
            "containerStatuses": [
                {"name": "a", "image": "busybox", "imageID": "", "ready": true, "restartCount": 2,
                 "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:55:00Z"}}},
                {"name": "b", "image": "nginx", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            ],
        },
    });
    assert_eq!(
        cells_of(pod),
        json!([
            "web",
            "1/2",
            "CrashLoopBackOff",
            "2 (5m ago)",
            "60m",
            "10.0.0.5",
            "n1",
            "<none>",
            "1/1"
        ])
    );
    let initializing = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": meta("init"),
        "spec": {
            "initContainers": [{"name": "setup", "image": "busybox"}],
            "containers": [{"name": "a", "image": "busybox"}],
        },
        "status": {
            "phase": "Pending",
            "initContainerStatuses": [{"name": "setup", "image": "busybox", "imageID": "",
                "ready": false, "restartCount": 0, "state": {"running": {}}}],
        },
    });
    assert_eq!(
        cells_of(initializing),
        json!([
            "init", "0/1", "Init:0/1", "0", "60m", "<none>", "<none>", "<none>", "<none>"
        ])
    );
    let mut deleted = object(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": meta("gone"),
        "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running"},
    }));
    deleted.metadata_mut().deletion_timestamp = Some(Time(now()));
    assert_eq!(cells(&deleted, now())[2], "Terminating");
}

#[test]
fn sidecars_count_with_the_app_containers_and_failed_inits_show_their_exit() {
    let status = |name: &str, state: Value, extra: Value| {
        let mut s = json!({"name": name, "image": "i", "imageID": "", "ready": true,
            "restartCount": 0, "state": state});
        s.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        s
    };
    let sidecar = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": meta("mesh"),
        "spec": {
            "initContainers": [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}],
            "containers": [{"name": "app", "image": "app"}],
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [status("proxy", json!({"running": {}}), json!({
                "started": true, "restartCount": 1,
                "lastState": {"terminated": {"exitCode": 137, "finishedAt": "2024-05-01T11:50:00Z"}}}))],
            "containerStatuses": [status("app", json!({"running": {}}), json!({}))],
        },
    });
    let cells = row(sidecar);
    assert_eq!(
        cells[1..4],
        [json!("2/2"), json!("Running"), json!("1 (10m ago)")]
    );
    let failed_init = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": meta("bad"),
        "spec": {
            "initContainers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}],
            "containers": [{"name": "app", "image": "app"}],
        },
        "status": {
            "phase": "Pending",
            "initContainerStatuses": [
                status("a", json!({"terminated": {"exitCode": 0, "reason": "Completed"}}), json!({})),
                status("b", json!({"terminated": {"exitCode": 3}}), json!({"restartCount": 2})),
            ],
        },
    });
    assert_eq!(
        row(failed_init)[1..4],
        [json!("0/1"), json!("Init:ExitCode:3"), json!("2")]
    );
    let finished_but_one = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": meta("half"),
        "spec": {"containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                status("a", json!({"running": {}}), json!({})),
                status("b", json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
                    json!({"ready": false})),
            ],
        },
    });
    assert_eq!(
        row(finished_but_one)[1..3],
        [json!("1/2"), json!("NotReady")]
    );
}

#[test]
fn finished_pods_carry_kubes_completed_row_condition() {
    let pod = object(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": meta("done"),
        "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Succeeded"},
    }));
    let t = table_at(&pod.kind(), &[pod], "1", None, None, now());
    assert_eq!(t["rows"][0]["conditions"][0]["type"], "Completed");
    assert_eq!(t["rows"][0]["conditions"][0]["reason"], "Succeeded");
}

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Realistic objects of every other kind with data, and the cells kube prints.
#[test]
fn every_kind_prints_the_cells_kube_prints() {
    let cases = [
        (
            json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "n1", "creationTimestamp": "2024-05-01T11:00:00Z",
                    "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"}},
                "spec": {"unschedulable": true},
                "status": {"conditions": [{"type": "Ready", "status": "True"}],
                    "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                    "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Ubuntu 24.04",
                        "kernelVersion": "6.8.0", "containerRuntimeVersion": "containerd://1.7"}}}),
            json!([
                "n1",
                "Ready,SchedulingDisabled",
                "control-plane,worker",
                "60m",
                "v1.33.0",
                "10.0.0.1",
                "<none>",
                "Ubuntu 24.04",
                "6.8.0",
                "containerd://1.7"
            ]),
        ),
        (
            json!({"apiVersion": "v1", "kind": "Service", "metadata": meta("web"),
                "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.0.10"], "externalIPs": ["5.6.7.8"],
                    "selector": {"app": "web"},
                    "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                              {"port": 53, "protocol": "UDP"}]},
                "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}),
            json!([
                "web",
                "LoadBalancer",
                "10.96.0.10",
                "1.2.3.4,5.6.7.8",
                "80:30080/TCP,53/UDP",
                "60m",
                "app=web"
            ]),
        ),
        (
            json!({"apiVersion": "v1", "kind": "Service", "metadata": meta("pending"),
                "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.11"}}),
            json!([
                "pending",
                "LoadBalancer",
                "10.96.0.11",
                "<pending>",
                "<none>",
                "60m",
                "<none>"
            ]),
        ),
        (
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta("ns1"),
                "status": {"phase": "Terminating"}}),
            json!(["ns1", "Terminating", "60m"]),
        ),
        (
            json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": meta("web"),
                "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::2"}],
                             "ports": [{"port": 80}, {"port": 443}]}]}),
            json!([
                "web",
                "10.0.0.1:80,[fd00::2]:80,10.0.0.1:443 + 1 more...",
                "60m"
            ]),
        ),
        (
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("cfg"),
                "data": {"a": "1", "b": "2"}, "binaryData": {"c": "aGk="}}),
            json!(["cfg", 3, "60m"]),
        ),
        (
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("tls"),
                "type": "kubernetes.io/tls", "data": {"tls.crt": "YQ==", "tls.key": "Yg=="}}),
            json!(["tls", "kubernetes.io/tls", 2, "60m"]),
        ),
        (
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("ci"),
                "secrets": [{"name": "ci-token"}]}),
            json!(["ci", 1, "60m"]),
        ),
        (
            json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta("quota"),
                "status": {"hard": {"requests.cpu": "1", "limits.memory": "2Gi", "pods": "10"},
                           "used": {"requests.cpu": "500m", "pods": "3"}}}),
            json!([
                "quota",
                "pods: 3/10, requests.cpu: 500m/1",
                "limits.memory: 0/2Gi",
                "60m"
            ]),
        ),
        (
            json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": meta("tpl"),
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "a", "image": "busybox"}]}}}),
            json!(["tpl", "a", "busybox", "app=web"]),
        ),
        (
            json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": meta("limits")}),
            json!(["limits", "2024-05-01T11:00:00Z"]),
        ),
        (
            json!({"apiVersion": "v1", "kind": "Event", "metadata": meta("web.17a"),
                "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{a}"},
                "reason": "Pulled", "message": "  Pulled image \n", "type": "Normal",
                "source": {"component": "kubelet", "host": "n1"},
                "firstTimestamp": "2024-05-01T11:50:00Z", "lastTimestamp": "2024-05-01T11:58:00Z",
                "count": 3}),
            json!([
                "2m",
                "Normal",
                "Pulled",
                "pod/web",
                "spec.containers{a}",
                "kubelet, n1",
                "Pulled image",
                "10m",
                3,
                "web.17a"
            ]),
        ),
        (
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": meta("e2"),
                "eventTime": "2024-05-01T11:59:00.000000Z", "regarding": {"kind": "Node", "name": "n1"},
                "reason": "Starting", "note": "Starting kubelet.", "type": "Normal", "action": "Start",
                "reportingController": "kubelet", "reportingInstance": "n1",
                "series": {"count": 4, "lastObservedTime": "2024-05-01T11:59:30.000000Z"}}),
            json!([
                "30s",
                "Normal",
                "Starting",
                "node/n1",
                "",
                "kubelet, n1",
                "Starting kubelet.",
                "60s",
                4,
                "e2"
            ]),
        ),
        (
            json!({"apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": "pv1", "creationTimestamp": "2024-05-01T11:00:00Z"},
                "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "fast",
                    "claimRef": {"namespace": "default", "name": "data"},
                    "volumeMode": "Filesystem", "hostPath": {"path": "/data"}},
                "status": {"phase": "Bound"}}),
            json!([
                "pv1",
                "10Gi",
                "RWO,RWX",
                "Retain",
                "Bound",
                "default/data",
                "fast",
                "<unset>",
                "",
                "60m",
                "Filesystem"
            ]),
        ),
        (
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta("data"),
                "spec": {"volumeName": "pv1", "storageClassName": "fast",
                    "resources": {"requests": {"storage": "5Gi"}}},
                "status": {"phase": "Bound", "capacity": {"storage": "10Gi"},
                    "accessModes": ["ReadWriteOnce"]}}),
            json!([
                "data", "Bound", "pv1", "10Gi", "RWO", "fast", "<unset>", "60m", "<unset>"
            ]),
        ),
        (
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta("wait"),
                "spec": {"resources": {"requests": {"storage": "5Gi"}}},
                "status": {"phase": "Pending"}}),
            json!([
                "wait", "Pending", "", "", "", "", "<unset>", "60m", "<unset>"
            ]),
        ),
        (
            json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": meta("rc"),
                "spec": {"replicas": 3, "selector": {"app": "web"},
                    "template": {"spec": {"containers": [{"name": "a", "image": "busybox"}]}}},
                "status": {"replicas": 3, "readyReplicas": 2}}),
            json!(["rc", 3, 3, 2, "60m", "a", "busybox", "app=web"]),
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web"),
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.25"},
                                                         {"name": "log", "image": "fluent-bit"}]}}},
                "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}),
            json!([
                "web",
                "2/3",
                3,
                2,
                "60m",
                "web,log",
                "nginx:1.25,fluent-bit",
                "app=web"
            ]),
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta("web-abc"),
                "spec": {"replicas": 2,
                    "selector": {"matchLabels": {"pod-template-hash": "abc", "app": "web"}},
                    "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
                "status": {"replicas": 2, "readyReplicas": 1}}),
            json!([
                "web-abc",
                2,
                2,
                1,
                "60m",
                "web",
                "nginx",
                "app=web,pod-template-hash=abc"
            ]),
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta("agent"),
                "spec": {"selector": {"matchLabels": {"app": "agent"}},
                    "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                        "containers": [{"name": "agent", "image": "fluentd"}]}}},
                "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                    "updatedNumberScheduled": 3, "numberAvailable": 2, "numberMisscheduled": 0}}),
            json!([
                "agent",
                3,
                3,
                2,
                3,
                2,
                "kubernetes.io/os=linux",
                "60m",
                "agent",
                "fluentd",
                "app=agent"
            ]),
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta("db"),
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "db"}},
                    "template": {"spec": {"containers": [{"name": "pg", "image": "postgres:16"}]}}},
                "status": {"replicas": 2, "readyReplicas": 1}}),
            json!(["db", "1/3", "60m", "pg", "postgres:16"]),
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "ControllerRevision",
                "metadata": {"name": "db-7d9f", "namespace": "default",
                    "creationTimestamp": "2024-05-01T11:00:00Z",
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db",
                        "uid": "u1", "controller": true}]},
                "revision": 2}),
            json!(["db-7d9f", "statefulset.apps/db", 2, "60m"]),
        ),
        (
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta("pi"),
                "spec": {"completions": 3, "parallelism": 1,
                    "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}},
                    "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
                "status": {"succeeded": 3, "startTime": "2024-05-01T11:00:00Z",
                    "completionTime": "2024-05-01T11:02:30Z",
                    "conditions": [{"type": "Complete", "status": "True"}]}}),
            json!([
                "pi",
                "Complete",
                "3/3",
                "2m30s",
                "60m",
                "pi",
                "perl",
                "batch.kubernetes.io/controller-uid=abc"
            ]),
        ),
        (
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta("queue"),
                "spec": {"parallelism": 4,
                    "template": {"spec": {"containers": [{"name": "w", "image": "worker"}]}}},
                "status": {"succeeded": 1, "startTime": "2024-05-01T11:30:00Z"}}),
            json!([
                "queue", "Running", "1/1 of 4", "30m", "60m", "w", "worker", "<none>"
            ]),
        ),
        (
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta("hello"),
                "spec": {"schedule": "*/5 * * * *", "timeZone": "Etc/UTC", "suspend": false,
                    "jobTemplate": {"spec": {"template": {"spec": {
                        "containers": [{"name": "hello", "image": "busybox"}]}}}}},
                "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": "2024-05-01T11:55:00Z"}}),
            json!([
                "hello",
                "*/5 * * * *",
                "Etc/UTC",
                "False",
                1,
                "5m",
                "60m",
                "hello",
                "busybox",
                "<none>"
            ]),
        ),
        (
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta("web"),
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    "minReplicas": 2, "maxReplicas": 10,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50}}}]},
                "status": {"currentReplicas": 3, "desiredReplicas": 3,
                    "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
                        "current": {"averageUtilization": 40}}}]}}),
            json!(["web", "Deployment/web", "cpu: 40%/50%", "2", 10, 3, "60m"]),
        ),
        (
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta("web"),
                "spec": {"ingressClassName": "nginx", "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}],
                    "tls": [{"hosts": ["a.example.com"], "secretName": "tls"}]},
                "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}, {"ip": "1.2.3.4"}]}}}),
            json!([
                "web",
                "nginx",
                "a.example.com,b.example.com",
                "1.2.3.4,lb.example.com",
                "80, 443",
                "60m"
            ]),
        ),
        (
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta("many"),
                "spec": {"rules": [{"host": "a"}, {"host": "b"}, {"host": "c"}, {"http": {"paths": []}}]}}),
            json!(["many", "<none>", "a,b,c + 1 more...", "", "80", "60m"]),
        ),
        (
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                "metadata": {"name": "nginx", "creationTimestamp": "2024-05-01T11:00:00Z"},
                "spec": {"controller": "k8s.io/ingress-nginx",
                    "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "lb"}}}),
            json!([
                "nginx",
                "k8s.io/ingress-nginx",
                "IngressParameters.k8s.example.com/lb",
                "60m"
            ]),
        ),
        (
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("db"),
                "spec": {"podSelector": {"matchLabels": {"role": "db"}}}}),
            json!(["db", "role=db", "60m"]),
        ),
        (
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("all"),
                "spec": {"podSelector": {}}}),
            json!(["all", "<none>", "60m"]),
        ),
        (
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta("web-x"),
                "addressType": "IPv4", "ports": [{"port": 80}, {"name": "https"}, {}],
                "endpoints": [{"addresses": ["10.0.0.1", "10.0.0.2"]}, {"addresses": ["10.0.0.3"]},
                              {"addresses": ["10.0.0.4"]}]}),
            json!([
                "web-x",
                "IPv4",
                "80,https,*",
                "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...",
                "60m"
            ]),
        ),
        (
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta("empty"),
                "addressType": "IPv6", "endpoints": []}),
            json!(["empty", "IPv6", "<unset>", "<unset>", "60m"]),
        ),
        (
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": "local-path", "creationTimestamp": "2024-05-01T11:00:00Z",
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"}),
            json!([
                "local-path (default)",
                "rancher.io/local-path",
                "Delete",
                "WaitForFirstConsumer",
                false,
                "60m"
            ]),
        ),
        (
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
                "metadata": {"name": "csi.example.com", "creationTimestamp": "2024-05-01T11:00:00Z"},
                "spec": {"attachRequired": false, "podInfoOnMount": true,
                    "tokenRequests": [{"audience": "vault"}, {"audience": "gcp"}],
                    "volumeLifecycleModes": ["Persistent", "Ephemeral"]}}),
            json!([
                "csi.example.com",
                false,
                true,
                false,
                "vault,gcp",
                false,
                "Persistent,Ephemeral",
                "60m"
            ]),
        ),
        (
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSINode",
                "metadata": {"name": "n1", "creationTimestamp": "2024-05-01T11:00:00Z"},
                "spec": {"drivers": [{"name": "csi.example.com", "nodeID": "n1"}]}}),
            json!(["n1", 1, "60m"]),
        ),
        (
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIStorageCapacity", "metadata": meta("cap"),
                "storageClassName": "fast", "capacity": "1024Mi"}),
            json!(["cap", "fast", "1Gi"]),
        ),
        (
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
                "metadata": {"name": "va1", "creationTimestamp": "2024-05-01T11:00:00Z"},
                "spec": {"attacher": "csi.example.com", "nodeName": "n1",
                    "source": {"persistentVolumeName": "pv1"}},
                "status": {"attached": true}}),
            json!(["va1", "csi.example.com", "pv1", "n1", true, "60m"]),
        ),
        (
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta("web"),
                "spec": {"minAvailable": "50%"},
                "status": {"disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3}}),
            json!(["web", "50%", "N/A", 1, "60m"]),
        ),
        (
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": "high", "creationTimestamp": "2024-05-01T11:00:00Z"},
                "value": 1_000_000, "globalDefault": true, "preemptionPolicy": "Never"}),
            json!(["high", 1_000_000, true, "60m", "Never"]),
        ),
        (
            json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
                "metadata": {"name": "service-accounts", "creationTimestamp": "2024-05-01T11:00:00Z"},
                "spec": {"priorityLevelConfiguration": {"name": "workload-low"}, "matchingPrecedence": 9000,
                    "distinguisherMethod": {"type": "ByUser"}},
                "status": {"conditions": [{"type": "Dangling", "status": "False"}]}}),
            json!([
                "service-accounts",
                "workload-low",
                9000,
                "ByUser",
                "60m",
                "False"
            ]),
        ),
        (
            json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration",
                "metadata": {"name": "workload-high", "creationTimestamp": "2024-05-01T11:00:00Z"},
                "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 40,
                    "limitResponse": {"type": "Queue",
                        "queuing": {"queues": 128, "handSize": 6, "queueLengthLimit": 50}}}}}),
            json!(["workload-high", "Limited", 40, 128, 6, 50, "60m"]),
        ),
        (
            json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration",
                "metadata": {"name": "exempt", "creationTimestamp": "2024-05-01T11:00:00Z"},
                "spec": {"type": "Exempt", "exempt": {}}}),
            json!([
                "exempt", "Exempt", "<none>", "<none>", "<none>", "<none>", "60m"
            ]),
        ),
        (
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta("n1"),
                "spec": {"holderIdentity": "n1_abc"}}),
            json!(["n1", "n1_abc", "60m"]),
        ),
        (
            json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                "metadata": {"name": "gvisor", "creationTimestamp": "2024-05-01T11:00:00Z"}, "handler": "runsc"}),
            json!(["gvisor", "runsc", "60m"]),
        ),
        (
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta("reader")}),
            json!(["reader", "2024-05-01T11:00:00Z"]),
        ),
        (
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta("view"),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                    {"kind": "ServiceAccount", "name": "ci", "namespace": "build"},
                    {"kind": "User", "name": "bob"}]}),
            json!([
                "view",
                "ClusterRole/view",
                "60m",
                "alice, bob",
                "devs",
                "build/ci"
            ]),
        ),
        (
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "admin", "creationTimestamp": "2024-05-01T11:00:00Z"}}),
            json!(["admin", "2024-05-01T11:00:00Z"]),
        ),
        (
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "crontabs.example.com", "creationTimestamp": "2024-05-01T11:00:00Z"}}),
            json!(["crontabs.example.com", "2024-05-01T11:00:00Z"]),
        ),
        (
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": "hooks", "creationTimestamp": "2024-05-01T11:00:00Z"},
                "webhooks": [{"name": "a.example.com", "clientConfig": {}, "sideEffects": "None",
                    "admissionReviewVersions": ["v1"]}]}),
            json!(["hooks", 1, "60m"]),
        ),
        (
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": "replicas", "creationTimestamp": "2024-05-01T11:00:00Z"},
                "spec": {"paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                    "validations": [{"expression": "object.spec.replicas <= 5"}]}}),
            json!(["replicas", 1, "v1/ConfigMap", "60m"]),
        ),
        (
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": "replicas-prod", "creationTimestamp": "2024-05-01T11:00:00Z"},
                "spec": {"policyName": "replicas", "paramRef": {"name": "limits", "namespace": "prod"}}}),
            json!(["replicas-prod", "replicas", "prod/limits", "60m"]),
        ),
        (
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": "by-label", "creationTimestamp": "2024-05-01T11:00:00Z"},
                "spec": {"policyName": "replicas", "paramRef": {"selector": {"matchLabels": {"env": "prod"}}}}}),
            json!([
                "by-label",
                "replicas",
                "&LabelSelector{MatchLabels:map[string]string{env: prod,},MatchExpressions:[]LabelSelectorRequirement{},}",
                "60m"
            ]),
        ),
        (
            json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                "metadata": {"name": "alice", "creationTimestamp": "2024-05-01T11:00:00Z"},
                "spec": {"signerName": "kubernetes.io/kube-apiserver-client", "username": "alice",
                    "expirationSeconds": 86_400, "request": ""},
                "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "Zm9v"}}),
            json!([
                "alice",
                "60m",
                "kubernetes.io/kube-apiserver-client",
                "alice",
                "24h",
                "Approved,Issued"
            ]),
        ),
    ];
    for (obj, expected) in cases {
        let what = format!("{} {}", obj["kind"], obj["metadata"]["name"]);
        assert_eq!(cells_of(obj), expected, "{what}");
    }
}

#[test]
fn pods_and_deployments_print_their_columns() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {nodeName: n1, containers: [{name: a, image: busybox}]}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: busybox}]}\n";
    let objs = manifest::load("t.yaml", text).unwrap();
    let pod = &objs[0].object;
    let t = table(&pod.kind(), std::slice::from_ref(pod), "7", None, None);
    assert_eq!(t["rows"][0]["cells"][0], "web");
    assert_eq!(t["rows"][0]["cells"][1], "0/1");
    assert_eq!(t["rows"][0]["cells"][2], "");
    assert_eq!(t["rows"][0]["cells"][6], "n1");
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 9);
    let d = &objs[1].object;
    let t = table(
        &d.kind(),
        std::slice::from_ref(d),
        "7",
        Some("c"),
        Some("Object"),
    );
    assert_eq!(t["rows"][0]["cells"][1], "0/3");
    assert_eq!(t["rows"][0]["cells"][7], "app=web");
    assert_eq!(t["rows"][0]["object"]["kind"], "Deployment");
    assert_eq!(t["metadata"]["continue"], "c");
    assert!(wants_table(Some(
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    )));
    assert!(!wants_table(Some("application/json")));
}

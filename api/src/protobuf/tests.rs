//! The encoder and decoder checked against `k8s-pb`'s prost types: realistic objects
//! of the common kinds are encoded here, decoded by prost, encoded again by prost and
//! decoded here; the JSON must come back unchanged. Each fixture is also read and
//! written by `k8s-openapi`, so every JSON name in it is one Kubernetes uses.

use prost::Message as _;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::*;

/// The protobuf round trip through prost's type `T`, which it returns.
fn through_prost<T: prost::Message + Default>(fixture: &Value) -> T {
    let (api_version, kind) = type_meta(fixture);
    let bytes = encode_message(api_version, kind, fixture).unwrap();
    let typed = T::decode(bytes.as_slice()).expect("k8s-pb decodes the encoder's bytes");
    let again = typed.encode_to_vec();
    let mut back = decode_message(api_version, kind, &again).unwrap();
    back["apiVersion"] = json!(api_version);
    back["kind"] = json!(kind);
    assert_eq!(&back, fixture, "the JSON changed through prost");
    // With the envelope too.
    let body = encode(fixture).unwrap();
    let decoded = decode(&body).unwrap();
    assert_eq!(
        (decoded.api_version.as_str(), decoded.kind.as_str()),
        (api_version, kind)
    );
    assert_eq!(&decoded.object, fixture);
    let unknown =
        k8s_pb::apimachinery::pkg::runtime::Unknown::decode(&body[4..]).expect("an Unknown");
    let meta = unknown.type_meta.unwrap();
    assert_eq!(meta.api_version.as_deref(), Some(api_version));
    assert_eq!(meta.kind.as_deref(), Some(kind));
    assert_eq!(unknown.raw.unwrap(), bytes);
    typed
}

/// The fixture is what `k8s-openapi`'s type `T` reads and writes: no misspelt field.
fn is_kubernetes_json<T: DeserializeOwned + Serialize>(fixture: &Value) {
    let typed: T = serde_json::from_value(fixture.clone()).unwrap();
    assert_eq!(&serde_json::to_value(typed).unwrap(), fixture);
}

fn metadata(name: &str) -> Value {
    json!({
        "name": name,
        "namespace": "prod",
        "uid": "6f1c6d3e-5f43-4a8a-9a57-2b5b1d0c8e11",
        "resourceVersion": "4711",
        "generation": 3,
        "creationTimestamp": "2025-03-04T05:06:07Z",
        "labels": {"app": "web", "tier": "frontend"},
        "annotations": {"deployment.kubernetes.io/revision": "2"},
        "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f",
            "uid": "0b0e2a8c-1111-2222-3333-444455556666",
            "controller": true, "blockOwnerDeletion": true
        }],
        "finalizers": ["example.com/cleanup"],
        "managedFields": [{
            "manager": "kubectl", "operation": "Update", "apiVersion": "v1",
            "time": "2025-03-04T05:06:07Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}}
        }]
    })
}

fn pod_spec() -> Value {
    json!({
        "containers": [{
            "name": "web",
            "image": "nginx:1.27",
            "command": ["nginx"],
            "args": ["-g", "daemon off;"],
            "ports": [
                {"name": "http", "containerPort": 80, "protocol": "TCP"},
                {"containerPort": 9090, "hostPort": 19090, "protocol": "UDP"}
            ],
            "env": [
                {"name": "MODE", "value": "production"},
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password", "optional": false}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}},
                {"name": "LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}}
            ],
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
            "resources": {
                "limits": {"cpu": "500m", "memory": "128Mi", "nvidia.com/gpu": "1"},
                "requests": {"cpu": "250m", "memory": "64Mi"}
            },
            "volumeMounts": [
                {"name": "config", "mountPath": "/etc/nginx", "readOnly": true},
                {"name": "cache", "mountPath": "/var/cache/nginx", "subPath": "nginx"}
            ],
            "readinessProbe": {
                "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP",
                            "httpHeaders": [{"name": "X-Probe", "value": "1"}]},
                "initialDelaySeconds": 5, "periodSeconds": 10, "failureThreshold": 3
            },
            "livenessProbe": {"tcpSocket": {"port": 80}, "timeoutSeconds": 2},
            "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "sleep 5"]}}},
            "securityContext": {
                "runAsUser": 0, "runAsNonRoot": false, "readOnlyRootFilesystem": true,
                "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}
            },
            "imagePullPolicy": "IfNotPresent",
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File"
        }],
        "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
        "volumes": [
            {"name": "config", "configMap": {"name": "nginx", "defaultMode": 420,
                                             "items": [{"key": "nginx.conf", "path": "nginx.conf", "mode": 256}]}},
            {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
            {"name": "tls", "secret": {"secretName": "web-tls", "optional": true}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "host", "hostPath": {"path": "/var/log", "type": "Directory"}},
            {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}]}}
        ],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 300}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                "labelSelector": {"matchLabels": {"app": "web"}}}
        }]}},
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "activeDeadlineSeconds": 86400,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "web",
        "automountServiceAccountToken": false,
        "nodeName": "node-1",
        "hostNetwork": true,
        "priority": -5,
        "enableServiceLinks": false
    })
}

pub(super) fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata("web-5d4f-x7k2p"),
        "spec": pod_spec(),
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2025-03-04T05:06:17Z"}],
            "hostIP": "10.0.0.5",
            "hostIPs": [{"ip": "10.0.0.5"}],
            "podIP": "10.244.1.7",
            "podIPs": [{"ip": "10.244.1.7"}, {"ip": "fd00::7"}],
            "startTime": "2025-03-04T05:06:08Z",
            "qosClass": "Burstable",
            "containerStatuses": [{
                "name": "web", "ready": true, "started": true, "restartCount": 0,
                "image": "nginx:1.27", "imageID": "docker.io/library/nginx@sha256:abc",
                "containerID": "containerd://0123",
                "state": {"running": {"startedAt": "2025-03-04T05:06:10Z"}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                                             "startedAt": "2025-03-04T05:00:00Z",
                                             "finishedAt": "2025-03-04T05:06:09Z"}}
            }]
        }
    })
}

#[test]
fn a_pod_round_trips_through_k8s_pb() {
    let fixture = pod();
    is_kubernetes_json::<k8s_openapi::api::core::v1::Pod>(&fixture);
    let pod: k8s_pb::api::core::v1::Pod = through_prost(&fixture);
    // What prost read is what the JSON says, field by field.
    let meta = pod.metadata.unwrap();
    assert_eq!(
        meta.creation_timestamp.unwrap().seconds,
        Some(1_741_064_767)
    );
    assert_eq!(meta.labels["tier"], "frontend");
    let spec = pod.spec.unwrap();
    let c = &spec.containers[0];
    assert_eq!(
        c.resources.as_ref().unwrap().limits["cpu"]
            .string
            .as_deref(),
        Some("500m")
    );
    let probe = c
        .readiness_probe
        .as_ref()
        .unwrap()
        .handler
        .as_ref()
        .unwrap();
    let port = probe.http_get.as_ref().unwrap().port.as_ref().unwrap();
    assert_eq!(
        (port.r#type, port.str_val.as_deref()),
        (Some(1), Some("http"))
    );
    assert_eq!(spec.priority, Some(-5));
    assert_eq!(
        spec.volumes[0]
            .volume_source
            .as_ref()
            .unwrap()
            .config_map
            .as_ref()
            .unwrap()
            .default_mode,
        Some(420)
    );
    assert_eq!(pod.status.unwrap().pod_ips.len(), 2);
}

fn template() -> Value {
    json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                                 "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}
    })
}

#[test]
fn a_deployment_round_trips_through_k8s_pb() {
    let fixture = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata("web"),
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"},
                         "matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend"]}]},
            "template": template(),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "minReadySeconds": 5
        },
        "status": {
            "observedGeneration": 3, "replicas": 2, "readyReplicas": 2, "availableReplicas": 2,
            "updatedReplicas": 2,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                            "message": "Deployment has minimum availability.",
                            "lastUpdateTime": "2025-03-04T05:06:17Z", "lastTransitionTime": "2025-03-04T05:06:17Z"}]
        }
    });
    is_kubernetes_json::<k8s_openapi::api::apps::v1::Deployment>(&fixture);
    let d: k8s_pb::api::apps::v1::Deployment = through_prost(&fixture);
    let spec = d.spec.unwrap();
    // A pointer set to 0 stays 0.
    assert_eq!(spec.replicas, Some(0));
    let rolling = spec.strategy.unwrap().rolling_update.unwrap();
    assert_eq!(rolling.max_unavailable.unwrap().int_val, Some(1));
}

#[test]
fn a_service_round_trips_through_k8s_pb() {
    let fixture = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata("web"),
        "spec": {
            "type": "NodePort",
            "selector": {"app": "web"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080, "protocol": "TCP"},
                {"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP", "appProtocol": "http"}
            ],
            "clusterIP": "10.96.0.12",
            "clusterIPs": ["10.96.0.12"],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
            "externalTrafficPolicy": "Cluster",
            "internalTrafficPolicy": "Cluster"
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10", "ipMode": "VIP",
                                                 "ports": [{"port": 80, "protocol": "TCP"}]}]}}
    });
    is_kubernetes_json::<k8s_openapi::api::core::v1::Service>(&fixture);
    let s: k8s_pb::api::core::v1::Service = through_prost(&fixture);
    assert_eq!(s.spec.unwrap().cluster_ips, ["10.96.0.12"]);
}

#[test]
fn config_maps_and_secrets_keep_their_bytes() {
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "prod"},
        "data": {"a": "b", "nginx.conf": "server {\n  listen 80;\n}\n"},
        "binaryData": {"logo.png": "iVBORw0KGgo="},
        "immutable": true
    });
    is_kubernetes_json::<k8s_openapi::api::core::v1::ConfigMap>(&cm);
    let typed: k8s_pb::api::core::v1::ConfigMap = through_prost(&cm);
    assert_eq!(typed.binary_data["logo.png"], b"\x89PNG\r\n\x1a\n");
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "prod"},
        "type": "kubernetes.io/basic-auth",
        "data": {"username": "YWRtaW4=", "password": "czNjcjN0IQ==", "blank": ""}
    });
    is_kubernetes_json::<k8s_openapi::api::core::v1::Secret>(&secret);
    let typed: k8s_pb::api::core::v1::Secret = through_prost(&secret);
    assert_eq!(typed.data["password"], b"s3cr3t!");
    assert_eq!(typed.data["blank"], b"");
}

#[test]
fn a_namespace_and_a_node_round_trip_through_k8s_pb() {
    let ns = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "prod", "labels": {"kubernetes.io/metadata.name": "prod"},
                     "creationTimestamp": "2025-01-01T00:00:00Z"},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}
    });
    is_kubernetes_json::<k8s_openapi::api::core::v1::Namespace>(&ns);
    let _: k8s_pb::api::core::v1::Namespace = through_prost(&ns);
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
        "spec": {
            "podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:1::/64"],
            "unschedulable": true,
            "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule",
                        "timeAdded": "2025-03-04T05:06:07Z"}]
        },
        "status": {
            "capacity": {"cpu": "4", "memory": "16318436Ki", "pods": "110", "ephemeral-storage": "100Gi"},
            "allocatable": {"cpu": "3800m", "memory": "15Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "lastHeartbeatTime": "2025-03-04T05:06:07Z",
                            "lastTransitionTime": "2025-03-01T00:00:00Z"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}, {"type": "Hostname", "address": "node-1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": "m", "systemUUID": "s", "bootID": "b", "kernelVersion": "6.1.0",
                         "osImage": "Debian GNU/Linux 12", "containerRuntimeVersion": "containerd://1.7",
                         "kubeletVersion": "v1.33.0", "kubeProxyVersion": "v1.33.0",
                         "operatingSystem": "linux", "architecture": "amd64"},
            "images": [{"names": ["docker.io/library/nginx:1.27"], "sizeBytes": 72_000_000_000_i64}]
        }
    });
    is_kubernetes_json::<k8s_openapi::api::core::v1::Node>(&node);
    let typed: k8s_pb::api::core::v1::Node = through_prost(&node);
    let status = typed.status.unwrap();
    assert_eq!(status.images[0].size_bytes, Some(72_000_000_000));
    assert_eq!(
        status
            .daemon_endpoints
            .unwrap()
            .kubelet_endpoint
            .unwrap()
            .port,
        Some(10250)
    );
}

#[test]
fn a_job_round_trips_through_k8s_pb() {
    let fixture = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata("backup"),
        "spec": {
            "parallelism": 2, "completions": 4, "backoffLimit": 6, "activeDeadlineSeconds": 3600,
            "ttlSecondsAfterFinished": 100, "completionMode": "Indexed", "suspend": false,
            "podFailurePolicy": {"rules": [{"action": "FailJob",
                                            "onExitCodes": {"operator": "In", "values": [42, 43]}}]},
            "template": template()
        },
        "status": {"startTime": "2025-03-04T05:06:07Z", "completionTime": "2025-03-04T05:16:07Z",
                   "succeeded": 4, "failed": 0, "completedIndexes": "0-3",
                   "conditions": [{"type": "Complete", "status": "True",
                                   "lastProbeTime": "2025-03-04T05:16:07Z",
                                   "lastTransitionTime": "2025-03-04T05:16:07Z"}]}
    });
    is_kubernetes_json::<k8s_openapi::api::batch::v1::Job>(&fixture);
    let job: k8s_pb::api::batch::v1::Job = through_prost(&fixture);
    let spec = job.spec.unwrap();
    assert_eq!(
        spec.pod_failure_policy.unwrap().rules[0]
            .on_exit_codes
            .as_ref()
            .unwrap()
            .values,
        [42, 43]
    );
}

#[test]
fn events_and_leases_keep_their_microseconds() {
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web.1822", "namespace": "prod"},
        "involvedObject": {"kind": "Pod", "namespace": "prod", "name": "web", "uid": "u-1",
                           "apiVersion": "v1", "resourceVersion": "4711", "fieldPath": "spec.containers{web}"},
        "reason": "Pulled", "message": "Successfully pulled image", "type": "Normal",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2025-03-04T05:06:07Z", "lastTimestamp": "2025-03-04T05:06:09Z",
        "count": 2,
        "eventTime": "2025-03-04T05:06:07.123456Z",
        "series": {"count": 2, "lastObservedTime": "2025-03-04T05:06:09.000001Z"},
        "reportingComponent": "kubelet", "reportingInstance": "node-1", "action": "Pull"
    });
    is_kubernetes_json::<k8s_openapi::api::core::v1::Event>(&event);
    let typed: k8s_pb::api::core::v1::Event = through_prost(&event);
    assert_eq!(typed.event_time.unwrap().nanos, Some(123_456_000));
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40,
                 "acquireTime": "2025-03-04T05:00:00.000000Z", "renewTime": "2025-03-04T05:06:07.654321Z",
                 "leaseTransitions": 0}
    });
    is_kubernetes_json::<k8s_openapi::api::coordination::v1::Lease>(&lease);
    let typed: k8s_pb::api::coordination::v1::Lease = through_prost(&lease);
    assert_eq!(typed.spec.unwrap().lease_transitions, Some(0));
}

#[test]
fn a_pod_list_round_trips_through_k8s_pb() {
    // List items carry no apiVersion and kind, in protobuf as in kube-apiserver's JSON.
    let item = |name: &str| {
        let mut p = pod();
        p["metadata"]["name"] = json!(name);
        let o = p.as_object_mut().unwrap();
        o.remove("apiVersion");
        o.remove("kind");
        p
    };
    let list = json!({
        "apiVersion": "v1",
        "kind": "PodList",
        "metadata": {"resourceVersion": "4800", "continue": "eyJydiI6NDgwMH0", "remainingItemCount": 7},
        "items": [item("web-5d4f-x7k2p"), item("web-5d4f-abcde")]
    });
    let typed: k8s_pb::api::core::v1::PodList = through_prost(&list);
    assert_eq!(typed.items.len(), 2);
    assert_eq!(typed.metadata.unwrap().remaining_item_count, Some(7));
}

#[test]
fn a_crd_keeps_its_schemas_booleans_and_lists() {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                      "shortNames": ["wd"], "categories": ["all"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                         "statusReplicasPath": ".status.replicas"}},
                "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "required": ["spec"],
                    "properties": {
                        "spec": {
                            "type": "object",
                            "properties": {
                                "size": {"type": "integer", "minimum": 1.0, "maximum": 10.0, "default": 3},
                                "mode": {"type": "string", "enum": ["fast", "slow"]},
                                "port": {"x-kubernetes-int-or-string": true},
                                "tags": {"type": "array", "items": {"type": "string"}},
                                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                                "closed": {"type": "object", "additionalProperties": false}
                            },
                            "x-kubernetes-validations": [{"rule": "self.size <= 10", "message": "too big"}]
                        },
                        "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}
                    }
                }}
            }]
        }
    });
    is_kubernetes_json::<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    >(&crd);
    let typed: k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        through_prost(&crd);
    let spec = typed.spec.unwrap();
    let schema = spec.versions[0]
        .schema
        .as_ref()
        .unwrap()
        .open_apiv3_schema
        .as_ref()
        .unwrap();
    let closed = &schema.properties["spec"].properties["closed"];
    assert_eq!(
        closed.additional_properties.as_ref().unwrap().allows,
        Some(false)
    );
}

#[test]
fn a_status_round_trips_through_k8s_pb() {
    let status = json!({
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": "pods \"web\" not found",
        "reason": "NotFound",
        "details": {"name": "web", "kind": "pods", "retryAfterSeconds": 1,
                    "causes": [{"reason": "FieldValueInvalid", "message": "bad", "field": "spec.x"}]},
        "code": 404
    });
    let typed: k8s_pb::apimachinery::pkg::apis::meta::v1::Status = through_prost(&status);
    assert_eq!(typed.code, Some(404));
}

#[test]
fn a_watch_frame_holds_a_bare_event_whose_object_is_an_envelope() {
    let object = encode(&pod()).unwrap();
    let frame = watch_frame("MODIFIED", &object);
    assert_eq!(
        u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize,
        frame.len() - 4
    );
    // k8s-pb reads the frame as kube-apiserver writes it (apimachinery's raw stream
    // serializer: the event's own message, no magic, no envelope) and client-go reads
    // it: an envelope here ended every Go client's protobuf watch at its first event.
    assert_ne!(&frame[4..8], b"k8s\0");
    let event = k8s_pb::apimachinery::pkg::apis::meta::v1::WatchEvent::decode(&frame[4..]).unwrap();
    assert_eq!(event.r#type.as_deref(), Some("MODIFIED"));
    assert_eq!(event.object.unwrap().raw.unwrap(), object);
    // And back, from a stream that holds one frame and a half.
    let mut stream = frame.clone();
    stream.extend_from_slice(&frame[..10]);
    let (ty, obj, used) = read_watch_frame(&stream).unwrap().unwrap();
    assert_eq!((ty.as_str(), used), ("MODIFIED", frame.len()));
    assert_eq!(obj, pod());
    assert_eq!(read_watch_frame(&stream[used..]).unwrap(), None);
}

#[test]
fn go_clients_empty_strings_and_zero_times_are_left_out() {
    // What a Go client sends for `kubectl create namespace x`: every string field of
    // ObjectMeta, empty, and an empty creationTimestamp.
    let meta = k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some("x".into()),
        generate_name: Some(String::new()),
        namespace: Some(String::new()),
        creation_timestamp: Some(Default::default()),
        generation: Some(0),
        ..Default::default()
    };
    let ns = k8s_pb::api::core::v1::Namespace {
        metadata: Some(meta),
        spec: Some(Default::default()),
        status: Some(Default::default()),
    };
    let value = decode_message("v1", "Namespace", &ns.encode_to_vec()).unwrap();
    assert_eq!(
        value,
        json!({"metadata": {"name": "x", "generation": 0}, "spec": {}, "status": {}})
    );
}

#[test]
fn kinds_without_a_schema_are_refused_by_name() {
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "spec": {}});
    assert_eq!(
        encode(&widget).unwrap_err().to_string(),
        "no protobuf schema for kind \"Widget\" in \"example.com/v1\""
    );
    assert!(!has_schema("example.com/v1", "Widget"));
    assert!(has_schema("apps/v1", "DeploymentList"));
}

#[test]
fn wrong_values_are_refused_with_the_field_path() {
    let mut bad = pod();
    bad["spec"]["containers"][0]["ports"][1]["containerPort"] = json!("eighty");
    assert_eq!(
        encode(&bad).unwrap_err().to_string(),
        "spec.containers[0].ports[1].containerPort: \"eighty\" is not an integer"
    );
    let mut bad = pod();
    bad["metadata"]["creationTimestamp"] = json!("yesterday");
    assert_eq!(
        encode(&bad).unwrap_err().to_string(),
        "metadata.creationTimestamp: \"yesterday\" is not an RFC 3339 time"
    );
}

#[test]
fn broken_bodies_are_errors_not_panics() {
    let body = encode(&pod()).unwrap();
    assert_eq!(decode(b"{\"kind\":\"Pod\"}"), Err(Error::MissingMagic));
    // Every truncation of a real body is an error or a smaller object, never a panic.
    for end in 0..body.len() {
        let _ = decode(&body[..end]);
    }
    // A string where a message should be.
    let mut wrong = MAGIC.to_vec();
    wrong.extend_from_slice(&[0x0a, 0x07, 0x0a, 0x02, b'v', b'1', 0x12, 0x01, b'X']);
    wrong.extend_from_slice(&[0x12, 0x02, 0x08, 0x01]);
    let e = decode(&wrong).unwrap_err();
    assert!(matches!(e, Error::UnknownKind { .. }), "{e}");
    let pod_bytes = encode_message("v1", "Pod", &pod()).unwrap();
    let mut flipped = pod_bytes.clone();
    flipped[0] = 1 << 3; // metadata (field 1) as a varint (wire type 0)
    let e = decode_message("v1", "Pod", &flipped).unwrap_err();
    assert!(e.to_string().starts_with("metadata: wire type 0"), "{e}");
}

#[test]
fn nesting_past_the_limit_is_refused() {
    // A JSONSchemaProps `not` inside `not`... 200 levels deep.
    let mut bytes = Vec::new();
    for _ in 0..200 {
        let mut outer = Vec::new();
        wire::put_bytes(&mut outer, 28, &bytes); // `not`
        bytes = outer;
    }
    let e = decode_message("apiextensions.k8s.io/v1", "JSONSchemaProps", &bytes);
    // Either the kind is unknown by this name or the depth is refused: never a stack overflow.
    let m = schema::schema()
        .message_named("apiextensions_apiserver.pkg.apis.apiextensions.v1.JsonSchemaProps")
        .unwrap();
    let e2 = decode::message(schema::schema(), m, &bytes, 0).unwrap_err();
    assert!(matches!(e2, Error::TooDeep { .. }), "{e2}");
    let _ = e;
}

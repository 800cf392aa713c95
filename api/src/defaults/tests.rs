//! Defaults checked kind by kind, on small manifests, and defaulting twice.

use serde_json::{Value, json};

use super::*;
use crate::manifest;
use crate::object::kinds;

/// The object of a one-document manifest, defaulted, as JSON.
fn defaulted(text: &str) -> Value {
    let (mut objects, diags) = manifest::decode("t.yaml", text);
    assert!(diags.is_empty(), "{diags:?}");
    let mut obj = objects.remove(0).object;
    apply_defaults(&mut obj);
    let once = obj.clone();
    apply_defaults(&mut obj);
    assert_eq!(obj, once, "defaulting twice changed the object");
    obj.to_value()
}

const POD_SPEC: &str = "{containers: [{name: a, image: busybox}]}";

#[test]
fn pull_policy_follows_the_tag() {
    assert_eq!(image_pull_policy("busybox"), "Always");
    assert_eq!(image_pull_policy("busybox:latest"), "Always");
    assert_eq!(image_pull_policy("busybox:1.36"), "IfNotPresent");
    assert_eq!(image_pull_policy("localhost:5000/busybox"), "Always");
    assert_eq!(
        image_pull_policy("localhost:5000/busybox:1"),
        "IfNotPresent"
    );
    assert_eq!(image_pull_policy("busybox@sha256:abcd"), "IfNotPresent");
}

#[test]
fn every_kind_is_defaulted_or_listed_as_having_no_defaults() {
    let defaulted = [
        "Pod",
        "ReplicaSet",
        "Deployment",
        "Job",
        "StatefulSet",
        "DaemonSet",
        "CronJob",
        "ReplicationController",
        "PodTemplate",
        "HorizontalPodAutoscaler",
        "Service",
        "Endpoints",
        "EndpointSlice",
        "NetworkPolicy",
        "IngressClass",
        "Secret",
        "LimitRange",
        "PriorityClass",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "StorageClass",
        "CSIDriver",
        "RoleBinding",
        "ClusterRoleBinding",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
    ];
    for kind in kinds() {
        assert!(
            defaulted.contains(&kind.kind) || WITHOUT_DEFAULTS.contains(&kind.kind),
            "{} is in neither list",
            kind.kind
        );
    }
}

#[test]
fn secrets_are_opaque_unless_typed() {
    let v = defaulted("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n");
    assert_eq!(v["type"], "Opaque");
    let v =
        defaulted("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\n");
    assert_eq!(v["type"], "kubernetes.io/tls");
}

#[test]
fn stateful_sets_roll_in_order_and_keep_their_claims() {
    let v = defaulted(&format!(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: db}}\nspec:\n  selector: {{matchLabels: {{app: db}}}}\n  template:\n    metadata: {{labels: {{app: db}}}}\n    spec: {POD_SPEC}\n  volumeClaimTemplates:\n  - metadata: {{name: data}}\n    spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}\n"
    ));
    let spec = &v["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["podManagementPolicy"], "OrderedReady");
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(
        spec["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(
        spec["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(
        spec["volumeClaimTemplates"][0]["spec"]["volumeMode"],
        "Filesystem"
    );
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
    assert_eq!(
        spec["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "Always"
    );
}

#[test]
fn daemon_sets_replace_one_node_at_a_time() {
    let v = defaulted(&format!(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {{name: agent}}\nspec:\n  selector: {{matchLabels: {{app: a}}}}\n  template:\n    metadata: {{labels: {{app: a}}}}\n    spec: {POD_SPEC}\n"
    ));
    assert_eq!(
        v["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert_eq!(v["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(v["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    let v = defaulted(&format!(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {{name: agent}}\nspec:\n  updateStrategy: {{type: OnDelete}}\n  selector: {{matchLabels: {{app: a}}}}\n  template:\n    metadata: {{labels: {{app: a}}}}\n    spec: {POD_SPEC}\n"
    ));
    assert_eq!(v["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
}

#[test]
fn cron_jobs_allow_overlap_and_keep_a_short_history() {
    let v = defaulted(&format!(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: c}}\nspec:\n  schedule: '@hourly'\n  jobTemplate:\n    spec:\n      template:\n        spec: {POD_SPEC}\n"
    ));
    let spec = &v["spec"];
    assert_eq!(spec["concurrencyPolicy"], "Allow");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["successfulJobsHistoryLimit"], 3);
    assert_eq!(spec["failedJobsHistoryLimit"], 1);
    let pod = &spec["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["schedulerName"], DEFAULT_SCHEDULER);
    // Left for validation to ask for OnFailure or Never.
    assert_eq!(pod["restartPolicy"], Value::Null);
}

#[test]
fn a_volume_without_a_source_is_an_empty_dir() {
    let v = defaulted(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: a, image: busybox, volumeMounts: [{name: scratch, mountPath: /scratch}]}]\n      volumes: [{name: scratch}, {name: conf, configMap: {name: conf}}]\n",
    );
    assert_eq!(
        v["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "scratch", "emptyDir": {}}, {"name": "conf", "configMap": {"name": "conf"}}])
    );
}

#[test]
fn replication_controllers_select_their_template_labels() {
    let v = defaulted(&format!(
        "apiVersion: v1\nkind: ReplicationController\nmetadata: {{name: rc}}\nspec:\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {POD_SPEC}\n"
    ));
    assert_eq!(v["spec"]["replicas"], 1);
    assert_eq!(v["spec"]["selector"], json!({"app": "web"}));
    assert_eq!(v["metadata"]["labels"], json!({"app": "web"}));
    let v = defaulted(&format!(
        "apiVersion: v1\nkind: PodTemplate\nmetadata: {{name: t}}\ntemplate:\n  spec: {POD_SPEC}\n"
    ));
    assert_eq!(v["template"]["spec"]["restartPolicy"], "Always");
}

#[test]
fn volumes_and_claims_hold_filesystems_and_start_pending() {
    let v = defaulted(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: pv}\nspec:\n  capacity: {storage: 1Gi}\n  accessModes: [ReadWriteOnce]\n  hostPath: {path: /data}\n",
    );
    assert_eq!(v["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(v["spec"]["volumeMode"], "Filesystem");
    assert_eq!(v["status"]["phase"], "Pending");
    let v = defaulted(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n",
    );
    assert_eq!(v["spec"]["volumeMode"], "Filesystem");
    assert_eq!(v["status"]["phase"], "Pending");
    let v = defaulted(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: fast}\nprovisioner: example.com/fast\n",
    );
    assert_eq!(v["reclaimPolicy"], "Delete");
    assert_eq!(v["volumeBindingMode"], "Immediate");
    let v = defaulted(
        "apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata: {name: csi.example.com}\nspec: {}\n",
    );
    assert_eq!(v["spec"]["attachRequired"], true);
    assert_eq!(v["spec"]["fsGroupPolicy"], "ReadWriteOnceWithFSType");
    assert_eq!(v["spec"]["volumeLifecycleModes"], json!(["Persistent"]));
}

#[test]
fn network_policies_are_ingress_policies_plus_egress_when_they_have_egress_rules() {
    let v = defaulted(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: 80}]}]\n",
    );
    assert_eq!(v["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(v["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
    let v = defaulted(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n}\nspec:\n  podSelector: {}\n  egress: [{ports: [{port: 53, protocol: UDP}]}]\n",
    );
    assert_eq!(v["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(v["spec"]["egress"][0]["ports"][0]["protocol"], "UDP");
    let v = defaulted(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\nspec:\n  controller: k8s.io/ingress-nginx\n  parameters: {kind: Params, name: p}\n",
    );
    assert_eq!(v["spec"]["parameters"]["scope"], "Cluster");
}

#[test]
fn endpoint_slice_ports_are_named_and_tcp() {
    let v = defaulted(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e}\naddressType: IPv4\nendpoints: [{addresses: [10.0.0.1]}]\nports: [{port: 80}]\n",
    );
    assert_eq!(
        v["ports"][0],
        json!({"name": "", "port": 80, "protocol": "TCP"})
    );
}

#[test]
fn bindings_name_the_rbac_group_for_roles_users_and_groups() {
    let v = defaulted(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: b}\nroleRef: {kind: Role, name: r, apiGroup: ''}\nsubjects:\n- {kind: User, name: alice}\n- {kind: ServiceAccount, name: default, namespace: default}\n",
    );
    assert_eq!(v["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
    assert_eq!(v["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
    assert_eq!(v["subjects"][1]["apiGroup"], Value::Null);
}

#[test]
fn priority_classes_preempt_and_limit_ranges_fill_defaults_from_max_and_min() {
    let v = defaulted(
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: high}\nvalue: 1000\n",
    );
    assert_eq!(v["preemptionPolicy"], "PreemptLowerPriority");
    let v = defaulted(
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: l}\nspec:\n  limits:\n  - type: Container\n    max: {cpu: '2'}\n    min: {memory: 64Mi}\n  - type: Pod\n    max: {cpu: '4'}\n",
    );
    let item = &v["spec"]["limits"][0];
    assert_eq!(item["default"], json!({"cpu": "2"}));
    assert_eq!(
        item["defaultRequest"],
        json!({"cpu": "2", "memory": "64Mi"})
    );
    assert_eq!(v["spec"]["limits"][1]["default"], Value::Null);
}

#[test]
fn webhooks_fail_closed_match_everything_and_time_out_after_ten_seconds() {
    let v = defaulted(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata: {name: m}\nwebhooks:\n- name: m.example.com\n  sideEffects: None\n  admissionReviewVersions: [v1]\n  clientConfig: {service: {name: s, namespace: default}}\n  rules: [{operations: [CREATE], apiGroups: [''], apiVersions: [v1], resources: [pods]}]\n",
    );
    let w = &v["webhooks"][0];
    assert_eq!(w["failurePolicy"], "Fail");
    assert_eq!(w["matchPolicy"], "Equivalent");
    assert_eq!(w["namespaceSelector"], json!({}));
    assert_eq!(w["objectSelector"], json!({}));
    assert_eq!(w["timeoutSeconds"], 10);
    assert_eq!(w["reinvocationPolicy"], "Never");
    assert_eq!(w["rules"][0]["scope"], "*");
    assert_eq!(w["clientConfig"]["service"]["port"], 443);
    let v = defaulted(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {name: v}\nwebhooks:\n- name: v.example.com\n  sideEffects: None\n  admissionReviewVersions: [v1]\n  clientConfig: {url: 'https://example.com'}\n",
    );
    assert_eq!(v["webhooks"][0]["timeoutSeconds"], 10);
    assert_eq!(v["webhooks"][0]["reinvocationPolicy"], Value::Null);
}

#[test]
fn client_ip_affinity_lasts_three_hours_unless_told() {
    let svc = |extra: &str| {
        defaulted(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec:\n  ports: [{{port: 80}}]\n{extra}"
        ))
    };
    assert_eq!(
        svc("  sessionAffinity: ClientIP\n")["spec"]["sessionAffinityConfig"],
        json!({"clientIP": {"timeoutSeconds": 10800}})
    );
    assert_eq!(
        svc(
            "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}\n"
        )["spec"]["sessionAffinityConfig"],
        json!({"clientIP": {"timeoutSeconds": 60}})
    );
    assert!(
        svc("")
            .get("spec")
            .unwrap()
            .get("sessionAffinityConfig")
            .is_none()
    );
}

#[test]
fn an_hpa_gets_default_scaling_rules_only_where_it_gives_a_behavior() {
    let hpa = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  maxReplicas: 5\n";
    let v = defaulted(hpa);
    assert_eq!(v["spec"]["minReplicas"], 1);
    assert_eq!(v["spec"]["behavior"], Value::Null, "{v}");
    let v = defaulted(&format!(
        "{hpa}  behavior: {{scaleDown: {{stabilizationWindowSeconds: 60}}}}\n"
    ));
    let behavior = &v["spec"]["behavior"];
    assert_eq!(behavior["scaleDown"]["stabilizationWindowSeconds"], 60);
    assert_eq!(behavior["scaleDown"]["selectPolicy"], "Max");
    assert_eq!(behavior["scaleUp"]["stabilizationWindowSeconds"], 0);
    assert_eq!(
        behavior["scaleUp"]["policies"],
        json!([{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}])
    );
}

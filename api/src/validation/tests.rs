//! Validation rules checked one at a time, on small manifests.

use crate::manifest;

/// The messages `load` gives for a manifest (without the file name).
fn errors(text: &str) -> Vec<String> {
    match manifest::load("t.yaml", text) {
        Ok(_) => Vec::new(),
        Err(diags) => diags.into_iter().map(|d| d.message).collect(),
    }
}

fn pod(containers: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers: {containers}\n")
}

#[test]
fn a_minimal_pod_is_valid() {
    assert_eq!(
        errors(&pod("[{name: a, image: busybox}]")),
        Vec::<String>::new()
    );
}

#[test]
fn container_names_are_unique_across_init_and_app_containers() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  initContainers: [{name: web, image: x}]\n  containers: [{name: web, image: x}]\n";
    assert_eq!(
        errors(text),
        ["spec.containers[0].name: duplicate value \"web\""]
    );
}

#[test]
fn extended_resources_are_whole_and_not_overcommitted() {
    let e = errors(&pod(
        "[{name: a, image: x, resources: {requests: {nvidia.com/gpu: 1}, limits: {nvidia.com/gpu: 2}}}]",
    ));
    assert_eq!(
        e,
        [
            "spec.containers[0].resources.requests[nvidia.com/gpu]: invalid value \"1\": must be equal to nvidia.com/gpu limit of 2"
        ]
    );
    let e = errors(&pod(
        "[{name: a, image: x, resources: {limits: {nvidia.com/gpu: 500m}}}]",
    ));
    assert!(e[0].ends_with("must be an integer"), "{e:?}");
    let e = errors(&pod("[{name: a, image: x, resources: {limits: {gpu: 1}}}]"));
    assert!(e[0].contains("must be a standard resource type"), "{e:?}");
}

#[test]
fn negative_quantities_are_refused() {
    let e = errors(&pod(
        "[{name: a, image: x, resources: {limits: {memory: -1Gi}}}]",
    ));
    assert_eq!(
        e,
        [
            "spec.containers[0].resources.limits.memory: invalid value \"-1Gi\": must be greater than or equal to 0"
        ]
    );
}

#[test]
fn probes_need_exactly_one_handler_and_liveness_succeeds_once() {
    let e = errors(&pod(
        "[{name: a, image: x, livenessProbe: {exec: {command: [test]}, tcpSocket: {port: 80}, successThreshold: 2}}]",
    ));
    assert_eq!(
        e,
        [
            "spec.containers[0].livenessProbe: forbidden: may not specify more than 1 handler type",
            "spec.containers[0].livenessProbe.successThreshold: invalid value \"2\": must be 1",
        ]
    );
}

#[test]
fn tolerations_follow_their_operator() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: x}]\n  tolerations:\n  - {key: k, operator: Exists, value: v}\n  - {key: k, effect: NoSchedule, tolerationSeconds: 5}\n";
    assert_eq!(
        errors(text),
        [
            "spec.tolerations[0].value: invalid value \"v\": value must be empty when `operator` is 'Exists'",
            "spec.tolerations[1].effect: invalid value \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
        ]
    );
}

#[test]
fn services_check_ports_names_and_types() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  type: ClusterIP\n  selector: {app: web}\n  ports:\n  - {port: 80, nodePort: 30080}\n  - {port: 80, name: Http, targetPort: 0}\n";
    assert_eq!(
        errors(text),
        [
            "spec.ports[0].name: required value",
            "spec.ports[0].nodePort: forbidden: may not be used when `type` is 'ClusterIP'",
            "spec.ports[1]: duplicate value \"80/TCP\"",
            "spec.ports[1].name: invalid value \"Http\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name' or '123-abc')",
            "spec.ports[1].targetPort: invalid value \"0\": must be between 1 and 65535, inclusive",
        ]
    );
    // The node port range is the server's to check (--service-node-port-range).
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  type: NodePort\n  ports: [{name: a, port: 80, nodePort: 80}, {name: b, port: 81, nodePort: 70000}]\n";
    assert_eq!(
        errors(text),
        ["spec.ports[1].nodePort: invalid value \"70000\": must be between 1 and 65535, inclusive"]
    );
}

#[test]
fn jobs_must_not_restart_forever() {
    let text = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n      containers: [{name: a, image: x}]\n";
    assert_eq!(
        errors(text),
        [
            "spec.template.spec.restartPolicy: unsupported value \"\": supported values: \"OnFailure\", \"Never\""
        ]
    );
}

#[test]
fn indexed_jobs_need_bounded_completions() {
    let job = |spec: &str| {
        format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: j}}\nspec:\n{spec}  completionMode: Indexed\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: a, image: x}}]\n"
        )
    };
    assert!(errors(&job("  completions: 3\n")).is_empty());
    // (Without parallelism either, defaulting gives it one completion.)
    assert_eq!(
        errors(&job("  parallelism: 2\n")),
        ["spec.completions: required value"]
    );
    assert_eq!(
        errors(&job("  completions: 200000\n")),
        [
            "spec.completions: invalid value \"200000\": must be less than or equal to 100000 when completion mode is Indexed"
        ]
    );
}

#[test]
fn cluster_scoped_objects_have_no_namespace() {
    let text = "apiVersion: v1\nkind: Node\nmetadata: {name: n1, namespace: default}\nspec:\n  podCIDR: 10.244.1.0/33\n  taints: [{key: k, effect: Sometimes}]\n";
    assert_eq!(
        errors(text),
        [
            "metadata.namespace: forbidden: not allowed on a cluster-scoped kind (Node)",
            "spec.podCIDR: invalid value \"10.244.1.0/33\": must be a valid CIDR (e.g. 10.244.1.0/24)",
            "spec.taints[0].effect: unsupported value \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
        ]
    );
}

#[test]
fn hpa_targets_need_their_value() {
    let text = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\nspec:\n  scaleTargetRef: {kind: Deployment, name: web}\n  maxReplicas: 3\n  metrics:\n  - type: Resource\n    resource: {name: cpu, target: {type: Utilization}}\n  - type: Pods\n    pods: {metric: {name: rps}, target: {type: AverageValue, averageValue: 0}}\n";
    assert_eq!(
        errors(text),
        [
            "spec.metrics[0].resource.target.averageUtilization: required value: must be set when the target type is Utilization",
            "spec.metrics[1].pods.target.averageValue: invalid value \"0\": must be positive",
        ]
    );
}

#[test]
fn hpas_scale_to_zero_only_on_a_metric_outside_the_pods() {
    let hpa = |min: i32, metric: &str| {
        format!(
            "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: h}}\nspec:\n  scaleTargetRef: {{kind: Deployment, name: web}}\n  minReplicas: {min}\n  maxReplicas: 3\n  metrics:\n  - {metric}\n"
        )
    };
    let cpu = "{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}";
    let queue = "{type: External, external: {metric: {name: queue_depth}, target: {type: Value, value: 10}}}";
    assert_eq!(
        errors(&hpa(0, cpu)),
        [
            "spec.minReplicas: invalid value \"0\": must be greater than or equal to 1 (0 only with an Object or External metric)"
        ]
    );
    assert!(errors(&hpa(0, queue)).is_empty());
    assert!(errors(&hpa(1, cpu)).is_empty());
    let value = "{type: Resource, resource: {name: cpu, target: {type: Value, value: 1}}}";
    assert!(
        errors(&hpa(1, value))[0]
            .starts_with("spec.metrics[0].resource.target.type: unsupported value \"Value\"")
    );
}

#[test]
fn selectors_must_be_well_formed_and_select_something() {
    let text = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: r}\nspec:\n  selector: {matchExpressions: [{key: app, operator: In}]}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: a, image: x}]}\n";
    assert_eq!(
        errors(text),
        [
            "spec.selector.matchExpressions[0].values: must be specified when `operator` is 'In' or 'NotIn'"
        ]
    );
    let text = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: r}\nspec:\n  selector: {}\n  template:\n    spec: {containers: [{name: a, image: x}]}\n";
    assert!(errors(text)[0].contains("empty selector is invalid"));
}

#[test]
fn runtime_classes_need_a_handler() {
    let text = "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: fast}\nhandler: Fast_Runtime\n";
    assert!(errors(text)[0].starts_with("handler: invalid value \"Fast_Runtime\""));
}

#[test]
fn ephemeral_containers_are_containers_named_uniquely_with_no_workload_fields() {
    let with = |ephemeral: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  initContainers: [{{name: init, image: x}}]\n  containers: [{{name: app, image: x}}]\n  ephemeralContainers: {ephemeral}\n"
        )
    };
    assert_eq!(
        errors(&with(
            "[{name: dbg, image: busybox, targetContainerName: init, stdin: true, tty: true, resources: {}}]"
        )),
        Vec::<String>::new()
    );
    assert_eq!(
        errors(&with(
            "[{name: app, image: x}, {name: d, targetContainerName: d}, {name: e, image: x, ports: [{containerPort: 80}], readinessProbe: {exec: {command: [x]}}, volumeMounts: [{name: v, mountPath: /v, subPath: s}]}]"
        )),
        [
            "spec.ephemeralContainers[0].name: duplicate value \"app\"",
            "spec.ephemeralContainers[1].image: required value",
            "spec.ephemeralContainers[1].targetContainerName: Not found: \"d\"",
            "spec.ephemeralContainers[2].ports: forbidden: cannot be set for an Ephemeral Container",
            "spec.ephemeralContainers[2].readinessProbe: forbidden: cannot be set for an Ephemeral Container",
            "spec.ephemeralContainers[2].volumeMounts[0].name: not found \"v\"",
            "spec.ephemeralContainers[2].volumeMounts[0].subPath: forbidden: cannot be set for an Ephemeral Container",
        ]
    );
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers: [{name: app, image: x}]\n      ephemeralContainers: [{name: dbg, image: x}]\n";
    assert_eq!(
        errors(deployment),
        [
            "spec.template.spec.ephemeralContainers: forbidden: ephemeral containers not allowed in pod template"
        ]
    );
}

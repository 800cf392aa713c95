//! Table tests of the rules of the kinds beyond pods and their first controllers:
//! each row a small manifest and the messages it must give (none: valid).

use crate::defaults::apply_defaults;
use crate::object::{AnyObject, kind_for, kinds};

/// The messages validation gives for a manifest, defaulted first as `manifest::load`
/// defaults it (read here without the manifest module, which stands above validation).
fn errors(text: &str) -> Vec<String> {
    let docs = crate::yaml::parse_documents(text).expect("the manifest is YAML");
    let mut out = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.value.is_null()) {
        let field = |f: &str| {
            doc.value
                .get(f)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let kind = kind_for(&field("apiVersion"), &field("kind")).expect("a served kind");
        let mut obj = match AnyObject::from_value(&kind, doc.value.clone()) {
            Some(Ok(o)) => o,
            Some(Err(e)) => {
                out.push(format!("{}: {}", e.path(), e.inner()));
                continue;
            }
            None => unreachable!("kind_for gives served kinds"),
        };
        apply_defaults(&mut obj);
        out.extend(super::validate(&obj).iter().map(ToString::to_string));
    }
    out
}

/// Checks every row: `header` + the row's text gives the row's messages (in any
/// order: `load` sorts them by their place in the file).
fn table(header: &str, rows: &[(&str, &[&str])]) {
    for (body, expected) in rows {
        let text = format!("{header}{body}");
        let mut actual = errors(&text);
        actual.sort();
        let mut expected = expected.to_vec();
        expected.sort();
        assert_eq!(actual, expected, "\n{text}");
    }
}

const POD: &str = "{containers: [{name: a, image: x}]}";

#[test]
fn every_kind_has_rules_or_is_listed_as_having_none() {
    let checked = [
        "Pod",
        "ReplicaSet",
        "Deployment",
        "Job",
        "Service",
        "Endpoints",
        "HorizontalPodAutoscaler",
        "Node",
        "Event",
        "Lease",
        "RuntimeClass",
        "ConfigMap",
        "Secret",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "StorageClass",
        "CSIDriver",
        "StatefulSet",
        "DaemonSet",
        "CronJob",
        "ReplicationController",
        "PodTemplate",
        "Ingress",
        "IngressClass",
        "NetworkPolicy",
        "EndpointSlice",
        "PodDisruptionBudget",
        "PriorityClass",
        "LimitRange",
        "ResourceQuota",
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ];
    for kind in kinds() {
        assert!(
            checked.contains(&kind.kind) || super::WITHOUT_RULES.contains(&kind.kind),
            "{} is in neither list",
            kind.kind
        );
    }
}

#[test]
fn namespace_finalizers_are_qualified_or_standard_names() {
    let errors = |finalizers: &[&str]| -> Vec<String> {
        let ns = k8s_openapi::api::core::v1::Namespace {
            spec: Some(k8s_openapi::api::core::v1::NamespaceSpec {
                finalizers: Some(finalizers.iter().map(|f| f.to_string()).collect()),
            }),
            ..Default::default()
        };
        super::namespace_finalizers(&AnyObject::Namespace(Box::new(ns)))
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert!(errors(&["kubernetes", "example.com/cleanup"]).is_empty());
    assert_eq!(
        errors(&["cleanup"]),
        [
            "spec.finalizers[0]: invalid value \"cleanup\": name is neither a standard finalizer name nor is it fully qualified"
        ]
    );
}

#[test]
fn config_map_keys_are_config_keys_unique_across_data_and_binary_data() {
    table(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
        &[
            ("data: {a.conf: x, KEY_1: y}\n", &[]),
            (
                "data: {'a b': x}\n",
                &[
                    "data[a b]: invalid value \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name', or 'KEY_NAME', or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                ],
            ),
            (
                "data: {'..': x}\n",
                &["data[..]: invalid value \"..\": must not be '..'"],
            ),
            (
                "data: {'..a': x}\n",
                &["data[..a]: invalid value \"..a\": must not start with '..'"],
            ),
            (
                "data: {k: x}\nbinaryData: {k: eA==}\n",
                &["data.k: invalid value \"k\": duplicate of key present in binaryData"],
            ),
        ],
    );
    let big = "x".repeat(crate::validation::MAX_DATA_BYTES + 1);
    assert_eq!(
        errors(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {{k: {big}}}\n"
        )),
        ["too long: must have at most 1048576 bytes"]
    );
}

#[test]
fn secrets_hold_the_keys_their_type_requires() {
    table(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n",
        &[
            ("stringData: {password: p}\n", &[]),
            (
                "type: kubernetes.io/tls\ndata: {tls.crt: eA==}\n",
                &["data[tls.key]: required value"],
            ),
            (
                "type: kubernetes.io/tls\nstringData: {tls.crt: x, tls.key: y}\n",
                &[],
            ),
            (
                "type: kubernetes.io/dockerconfigjson\nstringData: {.dockerconfigjson: '{\"auths\": {}}'}\n",
                &[],
            ),
            (
                "type: kubernetes.io/dockerconfigjson\ndata: {}\n",
                &["data[.dockerconfigjson]: required value"],
            ),
            (
                "type: kubernetes.io/dockercfg\nstringData: {.dockercfg: 'not json'}\n",
                &[
                    "data[.dockercfg]: invalid value \"<secret contents redacted>\": expected ident at line 1 column 2",
                ],
            ),
            (
                "type: kubernetes.io/basic-auth\nstringData: {user: u}\n",
                &[
                    "data.username: required value",
                    "data.password: required value",
                ],
            ),
            (
                "type: kubernetes.io/basic-auth\nstringData: {password: ''}\n",
                &[],
            ),
            (
                "type: kubernetes.io/ssh-auth\nstringData: {ssh-privatekey: ''}\n",
                &["data.ssh-privatekey: required value"],
            ),
            (
                "type: kubernetes.io/service-account-token\n",
                &["metadata.annotations[kubernetes.io/service-account.name]: required value"],
            ),
            (
                "type: example.com/custom\ndata: {'a/b': eA==}\n",
                &[
                    "data[a/b]: invalid value \"a/b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name', or 'KEY_NAME', or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                ],
            ),
        ],
    );
}

#[test]
fn claims_need_access_modes_and_a_positive_storage_request() {
    table(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\n",
        &[
            (
                "spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}, storageClassName: fast}\n",
                &[],
            ),
            (
                "spec: {resources: {requests: {storage: 1Gi}}}\n",
                &["spec.accessModes: required value: at least 1 access mode is required"],
            ),
            (
                "spec: {accessModes: [ReadWriteOncePod, ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n",
                &[
                    "spec.accessModes: forbidden: may not use ReadWriteOncePod with other access modes",
                ],
            ),
            (
                "spec: {accessModes: [ReadWriteAll], resources: {requests: {storage: 0}}, volumeMode: Raw}\n",
                &[
                    "spec.accessModes: unsupported value \"ReadWriteAll\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
                    "spec.resources.requests.storage: invalid value \"0\": must be greater than zero",
                    "spec.volumeMode: unsupported value \"Raw\": supported values: \"Block\", \"Filesystem\"",
                ],
            ),
            (
                "spec: {accessModes: [ReadWriteOnce]}\n",
                &["spec.resources.requests.storage: required value"],
            ),
        ],
    );
}

#[test]
fn volumes_have_one_source_a_storage_capacity_and_a_known_reclaim_policy() {
    table(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: pv}\n",
        &[
            (
                "spec: {capacity: {storage: 1Gi}, accessModes: [ReadWriteOnce], hostPath: {path: /d}}\n",
                &[],
            ),
            (
                "spec: {capacity: {storage: 1Gi}, accessModes: [ReadWriteOnce]}\n",
                &["spec: required value: must specify a volume type"],
            ),
            (
                "spec: {capacity: {storage: 1Gi}, accessModes: [ReadWriteOnce], hostPath: {path: /d}, nfs: {server: s, path: /e}}\n",
                &["spec.nfs: forbidden: may not specify more than 1 volume type"],
            ),
            (
                "spec: {capacity: {cpu: 1}, accessModes: [ReadWriteOnce], persistentVolumeReclaimPolicy: Keep, local: {path: /d}}\n",
                &[
                    "spec.capacity: unsupported value \"cpu\": supported values: \"storage\"",
                    "spec.capacity.storage: required value",
                    "spec.persistentVolumeReclaimPolicy: unsupported value \"Keep\": supported values: \"Delete\", \"Recycle\", \"Retain\"",
                    "spec.nodeAffinity: required value: Local volume requires node affinity",
                ],
            ),
        ],
    );
}

#[test]
fn storage_classes_and_csi_drivers_check_their_policies() {
    table(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: fast}\n",
        &[
            ("provisioner: example.com/fast\n", &[]),
            (
                "provisioner: 'bad provisioner'\nreclaimPolicy: Recycle\nvolumeBindingMode: Later\n",
                &[
                    "provisioner: invalid value \"bad provisioner\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName' or 'my.name' or '123-abc')",
                    "reclaimPolicy: unsupported value \"Recycle\": supported values: \"Delete\", \"Retain\"",
                    "volumeBindingMode: unsupported value \"Later\": supported values: \"Immediate\", \"WaitForFirstConsumer\"",
                ],
            ),
        ],
    );
    table(
        "apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata: {name: csi.example.com}\n",
        &[
            ("spec: {}\n", &[]),
            (
                "spec: {fsGroupPolicy: Always, volumeLifecycleModes: [Temporary], tokenRequests: [{audience: a, expirationSeconds: 60}]}\n",
                &[
                    "spec.fsGroupPolicy: unsupported value \"Always\": supported values: \"File\", \"None\", \"ReadWriteOnceWithFSType\"",
                    "spec.tokenRequests[0].expirationSeconds: invalid value \"60\": may not specify a duration less than 10 minutes",
                    "spec.volumeLifecycleModes[0]: unsupported value \"Temporary\": supported values: \"Ephemeral\", \"Persistent\"",
                ],
            ),
        ],
    );
}

#[test]
fn stateful_sets_check_policies_strategy_and_claim_templates() {
    let header = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  selector: {matchLabels: {app: db}}\n";
    let template = "  template:\n    metadata: {labels: {app: db}}\n    spec: {containers: [{name: a, image: x, volumeMounts: [{name: data, mountPath: /d}]}]}\n";
    let claims = "  volumeClaimTemplates: [{metadata: {name: data}, spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}}]\n";
    table(
        header,
        &[
            (&format!("{template}{claims}"), &[]),
            (
                &format!(
                    "  podManagementPolicy: Random\n  updateStrategy: {{type: OnDelete, rollingUpdate: {{partition: 1}}}}\n{template}{claims}"
                ),
                &[
                    "spec.podManagementPolicy: invalid value \"Random\": must be 'OrderedReady' or 'Parallel'",
                    "spec.updateStrategy.rollingUpdate: invalid value \"\": only allowed for updateStrategy 'RollingUpdate'",
                ],
            ),
            (
                &format!(
                    "  persistentVolumeClaimRetentionPolicy: {{whenDeleted: Keep}}\n{template}"
                ),
                &[
                    "spec.persistentVolumeClaimRetentionPolicy.whenDeleted: unsupported value \"Keep\": supported values: \"Retain\", \"Delete\"",
                    "spec.template.spec.containers[0].volumeMounts[0].name: not found \"data\"",
                ],
            ),
            (
                &format!(
                    "{template}  volumeClaimTemplates: [{{metadata: {{name: data}}, spec: {{resources: {{requests: {{storage: 1Gi}}}}}}}}]\n"
                ),
                &[
                    "spec.volumeClaimTemplates[0].spec.accessModes: required value: at least 1 access mode is required",
                ],
            ),
        ],
    );
}

#[test]
fn daemon_sets_need_a_matching_selector_and_a_strategy_that_makes_progress() {
    let header = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec:\n  selector: {matchLabels: {app: a}}\n";
    table(
        header,
        &[
            (
                &format!("  template:\n    metadata: {{labels: {{app: a}}}}\n    spec: {POD}\n"),
                &[],
            ),
            (
                &format!(
                    "  updateStrategy: {{type: RollingUpdate, rollingUpdate: {{maxUnavailable: 0, maxSurge: 0}}}}\n  template:\n    metadata: {{labels: {{app: a}}}}\n    spec: {POD}\n"
                ),
                &[
                    "spec.updateStrategy.rollingUpdate.maxUnavailable: invalid value \"0\": may not be 0 when `maxSurge` is 0",
                ],
            ),
            (
                "  template:\n    metadata: {labels: {app: b}}\n    spec: {restartPolicy: OnFailure, activeDeadlineSeconds: 5, containers: [{name: a, image: x}]}\n",
                &[
                    "spec.template.metadata.labels: invalid value \"app=b\": `selector` does not match template `labels` (selector: app=a)",
                    "spec.template.spec.restartPolicy: unsupported value \"OnFailure\": supported values: \"Always\"",
                    "spec.template.spec.activeDeadlineSeconds: invalid value \"5\": activeDeadlineSeconds in DaemonSet is not Supported",
                ],
            ),
        ],
    );
}

#[test]
fn cron_jobs_check_schedule_time_zone_and_job_template() {
    let job = "  jobTemplate:\n    spec:\n      template:\n        spec: {restartPolicy: OnFailure, containers: [{name: a, image: x}]}\n";
    table(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec:\n",
        &[
            (&format!("  schedule: '*/5 * * * *'\n{job}"), &[]),
            (
                &format!("  schedule: '@hourly'\n  timeZone: Etc/UTC\n{job}"),
                &[],
            ),
            (
                &format!("  schedule: '61 * * * *'\n{job}"),
                &[
                    "spec.schedule: invalid value \"61 * * * *\": end of range (61) above maximum (59): 61",
                ],
            ),
            (
                &format!("  schedule: 'CRON_TZ=UTC 0 * * * *'\n{job}"),
                &[
                    "spec.schedule: invalid value \"CRON_TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                ],
            ),
            (
                &format!(
                    "  schedule: '@daily'\n  timeZone: Local\n  concurrencyPolicy: Sometimes\n{job}"
                ),
                &[
                    "spec.timeZone: invalid value \"Local\": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
                    "spec.concurrencyPolicy: unsupported value \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"",
                ],
            ),
            (
                "  schedule: '@daily'\n  jobTemplate:\n    spec:\n      template:\n        spec: {containers: [{name: a, image: x}]}\n",
                &[
                    "spec.jobTemplate.spec.template.spec.restartPolicy: unsupported value \"\": supported values: \"OnFailure\", \"Never\"",
                ],
            ),
        ],
    );
    let long = "c".repeat(53);
    assert_eq!(
        errors(&format!(
            "apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: {long}}}\nspec:\n  schedule: '@daily'\n{job}"
        )),
        [format!(
            "metadata.name: invalid value \"{long}\": must be no more than 52 characters"
        )]
    );
}

#[test]
fn replication_controllers_and_pod_templates_check_their_templates() {
    table(
        "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: rc}\nspec:\n",
        &[
            (
                &format!("  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {POD}\n"),
                &[],
            ),
            (
                &format!(
                    "  selector: {{app: api}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {POD}\n"
                ),
                &[
                    "spec.template.metadata.labels: invalid value \"app=web\": `selector` does not match template `labels`",
                ],
            ),
            (
                "  replicas: -1\n",
                &[
                    "spec.replicas: invalid value \"-1\": must be greater than or equal to 0",
                    "spec.selector: required value",
                    "spec.template: required value",
                ],
            ),
        ],
    );
    table(
        "apiVersion: v1\nkind: PodTemplate\nmetadata: {name: t}\n",
        &[
            (&format!("template:\n  spec: {POD}\n"), &[]),
            (
                "template:\n  spec: {containers: [{name: A, image: x}]}\n",
                &[
                    "template.spec.containers[0].name: invalid value \"A\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name' or '123-abc')",
                ],
            ),
        ],
    );
}

#[test]
fn ingresses_check_hosts_paths_and_backends() {
    let backend = "{service: {name: web, port: {number: 80}}}";
    table(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\nspec:\n",
        &[
            (
                &format!(
                    "  rules: [{{host: '*.example.com', http: {{paths: [{{path: /, pathType: Prefix, backend: {backend}}}]}}}}]\n"
                ),
                &[],
            ),
            (
                "  ingressClassName: nginx\n",
                &[
                    "spec.rules: invalid value \"[]\": either `defaultBackend` or `rules` must be specified",
                ],
            ),
            (
                &format!(
                    "  rules: [{{host: 10.0.0.1, http: {{paths: [{{path: api, pathType: Exact, backend: {backend}}}, {{path: /a//b, pathType: Prefix, backend: {backend}}}, {{path: /, pathType: Regex, backend: {backend}}}]}}}}]\n"
                ),
                &[
                    "spec.rules[0].host: invalid value \"10.0.0.1\": must be a DNS name, not an IP address",
                    "spec.rules[0].http.paths[0].path: invalid value \"api\": must be an absolute path",
                    "spec.rules[0].http.paths[1].path: invalid value \"/a//b\": must not contain '//'",
                    "spec.rules[0].http.paths[2].pathType: unsupported value \"Regex\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\"",
                ],
            ),
            (
                "  defaultBackend: {service: {name: web, port: {name: http, number: 80}}}\n",
                &[
                    "spec.defaultBackend.service.port: invalid value \"\": cannot set both port name & port number",
                ],
            ),
            (
                "  defaultBackend: {service: {name: web}}\n",
                &[
                    "spec.defaultBackend.service.port: required value: port name or port number is required",
                ],
            ),
        ],
    );
}

#[test]
fn ingress_classes_name_a_domain_prefixed_controller() {
    table(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\nspec:\n",
        &[
            ("  controller: k8s.io/ingress-nginx\n", &[]),
            (
                "  controller: nginx\n",
                &[
                    "spec.controller: invalid value \"nginx\": must be a domain-prefixed path (such as \"acme.io/foo\")",
                ],
            ),
            (
                "  controller: k8s.io/nginx\n  parameters: {kind: P, name: p, scope: Namespace}\n",
                &[
                    "spec.parameters.namespace: required value: `parameters.scope` is set to 'Namespace'",
                ],
            ),
        ],
    );
}

#[test]
fn network_policies_check_ports_peers_and_types() {
    table(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n}\nspec:\n  podSelector: {}\n",
        &[
            (
                "  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}], ports: [{port: 80, endPort: 90}]}]\n",
                &[],
            ),
            (
                "  ingress: [{ports: [{port: 90, endPort: 80}, {port: http, endPort: 81}, {endPort: 82, protocol: ICMP}]}]\n",
                &[
                    "spec.ingress[0].ports[0].endPort: invalid value \"80\": must be greater than or equal to `port`",
                    "spec.ingress[0].ports[1].endPort: invalid value \"81\": may not be specified when `port` is non-numeric",
                    "spec.ingress[0].ports[2].protocol: unsupported value \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
                    "spec.ingress[0].ports[2].endPort: invalid value \"82\": may not be specified when `port` is not specified",
                ],
            ),
            (
                "  egress: [{to: [{}, {ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}, podSelector: {}}]}]\n",
                &[
                    "spec.egress[0].to[0]: required value: must specify a peer",
                    "spec.egress[0].to[1]: forbidden: may not specify both ipBlock and another peer",
                    "spec.egress[0].to[1].ipBlock.except[0]: invalid value \"11.0.0.0/16\": must be a strict subset of `cidr`",
                ],
            ),
            (
                "  policyTypes: [Ingress, Sideways]\n",
                &[
                    "spec.policyTypes[1]: unsupported value \"Sideways\": supported values: \"Ingress\", \"Egress\"",
                ],
            ),
        ],
    );
}

#[test]
fn endpoint_slices_check_addresses_by_type_and_port_names() {
    table(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e}\n",
        &[
            (
                "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1]}]\nports: [{name: http, port: 80}]\n",
                &[],
            ),
            (
                "addressType: IPv4\nendpoints: [{addresses: ['fd00::1']}, {addresses: []}]\nports: [{name: http, port: 80}, {name: http, port: 81}]\n",
                &[
                    "endpoints[0].addresses[0]: invalid value \"fd00::1\": must be a valid IPv4 address",
                    "endpoints[1].addresses: required value: must contain at least 1 address",
                    "ports[1].name: duplicate value \"http\"",
                ],
            ),
            (
                "addressType: IPX\nendpoints: []\n",
                &[
                    "addressType: unsupported value \"IPX\": supported values: \"IPv4\", \"IPv6\", \"FQDN\"",
                ],
            ),
        ],
    );
}

#[test]
fn disruption_budgets_and_priority_classes_check_their_numbers() {
    table(
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: p}\nspec:\n  selector: {matchLabels: {app: a}}\n",
        &[
            ("  minAvailable: 50%\n", &[]),
            (
                "  minAvailable: 1\n  maxUnavailable: 1\n",
                &["spec: invalid value \"\": minAvailable and maxUnavailable cannot be both set"],
            ),
            (
                "  maxUnavailable: 150%\n",
                &["spec.maxUnavailable: invalid value \"150%\": must not be greater than 100%"],
            ),
            (
                "  minAvailable: half\n",
                &[
                    "spec.minAvailable: invalid value \"half\": must be an integer or percentage (e.g. '5%')",
                ],
            ),
        ],
    );
    table(
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\n",
        &[
            ("metadata: {name: high}\nvalue: 1000000\n", &[]),
            (
                "metadata: {name: high}\nvalue: 1000000001\npreemptionPolicy: Always\n",
                &[
                    "value: forbidden: maximum allowed value of a user defined priority is 1000000000",
                    "preemptionPolicy: unsupported value \"Always\": supported values: \"PreemptLowerPriority\", \"Never\"",
                ],
            ),
            (
                "metadata: {name: system-mine}\nvalue: 10\n",
                &[
                    "metadata.name: forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class",
                ],
            ),
        ],
    );
}

#[test]
fn limit_ranges_keep_min_default_and_max_in_order() {
    table(
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: l}\nspec:\n  limits:\n",
        &[
            (
                "  - {type: Container, min: {cpu: 100m}, max: {cpu: '1'}, default: {cpu: 500m}}\n",
                &[],
            ),
            (
                "  - {type: Container, min: {cpu: '2'}, max: {cpu: '1'}}\n",
                &[
                    "spec.limits[0].min.cpu: invalid value \"2\": min value 2 is greater than max value 1",
                    "spec.limits[0].default.cpu: invalid value \"1\": min value 2 is greater than default value 1",
                    "spec.limits[0].defaultRequest.cpu: invalid value \"1\": min value 2 is greater than default request value 1",
                ],
            ),
            (
                "  - {type: Pod, default: {cpu: '1'}, maxLimitRequestRatio: {cpu: 500m}}\n",
                &[
                    "spec.limits[0].default: forbidden: may not be specified when `type` is 'Pod'",
                    "spec.limits[0].maxLimitRequestRatio.cpu: invalid value \"500m\": ratio 500m is less than 1",
                ],
            ),
        ],
    );
    table(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}\nspec:\n",
        &[
            ("  hard: {pods: '10', requests.cpu: '4'}\n", &[]),
            (
                "  hard: {pods: -1}\n  scopes: [Forever]\n",
                &[
                    "spec.hard.pods: invalid value \"-1\": must be greater than or equal to 0",
                    "spec.scopes[0]: unsupported value \"Forever\": supported values: \"BestEffort\", \"CrossNamespacePodAffinity\", \"NotBestEffort\", \"NotTerminating\", \"PriorityClass\", \"Terminating\", \"VolumeAttributesClass\"",
                ],
            ),
        ],
    );
}

#[test]
fn rbac_rules_and_bindings_follow_kubernetes() {
    table(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: 'system:reader'}\n",
        &[
            (
                "rules: [{apiGroups: [''], resources: [pods], verbs: [get]}]\n",
                &[],
            ),
            (
                "rules: [{verbs: [], nonResourceURLs: [/healthz]}, {verbs: [get]}]\n",
                &[
                    "rules[0].verbs: required value: verbs must contain at least one value",
                    "rules[0].nonResourceURLs: invalid value \"/healthz\": namespaced rules cannot apply to non-resource URLs",
                    "rules[1].apiGroups: required value: resource rules must supply at least one api group",
                    "rules[1].resources: required value: resource rules must supply at least one resource",
                ],
            ),
        ],
    );
    table(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: b}\n",
        &[
            (
                "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\nsubjects: [{kind: ServiceAccount, name: sa, namespace: default}, {kind: Group, name: devs}]\n",
                &[],
            ),
            (
                "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: a/b}\nsubjects: [{kind: ServiceAccount, name: sa}, {kind: Robot, name: r}]\n",
                &[
                    "roleRef.kind: unsupported value \"Role\": supported values: \"ClusterRole\"",
                    "roleRef.name: invalid value \"a/b\": may not contain '/'",
                    "subjects[0].namespace: required value",
                    "subjects[1].kind: unsupported value \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
                ],
            ),
        ],
    );
}

#[test]
fn webhook_configurations_check_names_rules_and_client_config() {
    table(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {name: v}\nwebhooks:\n",
        &[
            (
                "- {name: v.example.com, sideEffects: None, admissionReviewVersions: [v1], clientConfig: {service: {name: s, namespace: default}}, rules: [{operations: [CREATE], apiGroups: [''], apiVersions: [v1], resources: [pods]}]}\n",
                &[],
            ),
            (
                "- {name: example.com, sideEffects: Some, admissionReviewVersions: [v2], timeoutSeconds: 31, clientConfig: {url: 'http://example.com/x'}, rules: [{operations: ['*', CREATE], apiGroups: [''], apiVersions: [v1], resources: [pods]}]}\n",
                &[
                    "webhooks[0].name: invalid value \"example.com\": should be a domain with at least three segments separated by dots",
                    "webhooks[0].rules[0].operations: invalid value \"*, CREATE\": if '*' is present, must not specify other operations",
                    "webhooks[0].sideEffects: unsupported value \"Some\": supported values: \"None\", \"NoneOnDryRun\"",
                    "webhooks[0].timeoutSeconds: invalid value \"31\": the timeout value must be between 1 and 30 seconds",
                    "webhooks[0].admissionReviewVersions: invalid value \"v2\": must include at least one of v1, v1beta1",
                    "webhooks[0].clientConfig.url: invalid value \"http://example.com/x\": 'https' is the only allowed URL scheme",
                ],
            ),
            (
                "- {name: a.example.com, sideEffects: None, admissionReviewVersions: [v1], clientConfig: {}}\n- {name: a.example.com, sideEffects: None, admissionReviewVersions: [v1], clientConfig: {url: 'https://example.com'}}\n",
                &[
                    "webhooks[0].clientConfig: required value: exactly one of url or service is required",
                    "webhooks[1].name: duplicate value \"a.example.com\"",
                ],
            ),
        ],
    );
}

#[test]
fn sub_paths_stay_inside_their_volume() {
    let header = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  volumes: [{name: v, emptyDir: {}}]\n";
    let row = |sub: &str| {
        format!(
            "  containers: [{{name: a, image: x, volumeMounts: [{{name: v, mountPath: /m, subPath: \"{sub}\"}}]}}]\n"
        )
    };
    let rows = [
        (row("conf/app"), vec![]),
        (
            row("/etc"),
            vec![
                "spec.containers[0].volumeMounts[0].subPath: invalid value \"/etc\": must be a relative path",
            ],
        ),
        (
            row("a/../../x"),
            vec![
                "spec.containers[0].volumeMounts[0].subPath: invalid value \"a/../../x\": must not contain '..'",
            ],
        ),
    ];
    for (body, expected) in &rows {
        assert_eq!(errors(&format!("{header}{body}")), *expected, "{body}");
    }
}

#[test]
fn services_check_their_affinity_timeout_and_health_check_port() {
    table(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 80}]\n",
        &[
            ("  sessionAffinity: ClientIP\n", &[]),
            (
                "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 86401}}\n",
                &[
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds: invalid value \"86401\": must be greater than 0 and less than 86400",
                ],
            ),
            (
                "  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}\n",
                &[
                    "spec.sessionAffinityConfig: forbidden: must not be set when session affinity is None",
                ],
            ),
            (
                "  type: LoadBalancer\n  externalTrafficPolicy: Local\n  healthCheckNodePort: 30100\n",
                &[],
            ),
            (
                "  type: LoadBalancer\n  healthCheckNodePort: 30100\n",
                &[
                    "spec.healthCheckNodePort: invalid value \"30100\": may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
                ],
            ),
            // Any config without ClientIP, even an empty one.
            (
                "  sessionAffinity: None\n  sessionAffinityConfig: {}\n",
                &[
                    "spec.sessionAffinityConfig: forbidden: must not be set when session affinity is None",
                ],
            ),
        ],
    );
}

#[test]
fn load_balancer_fields_need_type_load_balancer() {
    table(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 80}]\n",
        &[
            (
                "  type: LoadBalancer\n  loadBalancerClass: example.com/lb\n  allocateLoadBalancerNodePorts: false\n",
                &[],
            ),
            (
                "  type: NodePort\n  loadBalancerClass: example.com/lb\n",
                &[
                    "spec.loadBalancerClass: forbidden: may only be used when `type` is 'LoadBalancer'",
                ],
            ),
            (
                "  allocateLoadBalancerNodePorts: true\n",
                &[
                    "spec.allocateLoadBalancerNodePorts: forbidden: may only be used when `type` is 'LoadBalancer'",
                ],
            ),
            (
                "  type: LoadBalancer\n  loadBalancerClass: -bad\n",
                &[
                    "spec.loadBalancerClass: invalid value \"-bad\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName' or 'my.name' or '123-abc')",
                ],
            ),
        ],
    );
}

#[test]
fn a_load_balancer_keeps_its_class_and_health_check_port() {
    let svc = |spec: &str| -> k8s_openapi::api::core::v1::Service {
        let text = format!("{{metadata: {{name: web}}, spec: {spec}}}");
        serde_json::from_value(crate::yaml::parse_documents(&text).unwrap().remove(0).value)
            .unwrap()
    };
    let errors = |new: &str, old: &str| -> Vec<String> {
        super::service_update(&svc(new), &svc(old))
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let lb = "{type: LoadBalancer, loadBalancerClass: example.com/a}";
    assert!(errors(lb, lb).is_empty());
    assert_eq!(
        errors("{type: LoadBalancer, loadBalancerClass: example.com/b}", lb),
        ["spec.loadBalancerClass: invalid value \"example.com/b\": may not change once set"]
    );
    assert_eq!(
        errors("{type: LoadBalancer}", lb),
        ["spec.loadBalancerClass: invalid value \"null\": may not change once set"]
    );
    // Nor set on an existing load balancer of the default class.
    assert_eq!(errors(lb, "{type: LoadBalancer}").len(), 1);
    // Leaving the type, or taking it, is the time to change it.
    assert!(errors("{type: ClusterIP}", lb).is_empty());
    assert!(errors(lb, "{type: NodePort}").is_empty());
    let local = |port: u16| {
        format!("{{type: LoadBalancer, externalTrafficPolicy: Local, healthCheckNodePort: {port}}}")
    };
    assert!(errors(&local(30100), &local(30100)).is_empty());
    assert_eq!(
        errors(&local(30101), &local(30100)),
        ["spec.healthCheckNodePort: forbidden: field is immutable"]
    );
    assert!(errors("{type: LoadBalancer}", &local(30100)).is_empty());
}

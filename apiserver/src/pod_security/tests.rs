//! Unit tests of PodSecurity admission: each check with a pod that passes and one that
//! fails (worded as kube words it), the labels, and the admission decisions.

use serde_json::{Value, json};

use super::*;

fn pod(meta: Value, spec: Value) -> Pod {
    let mut meta = meta;
    meta["name"] = json!("web");
    serde_json::from_value(json!({"metadata": meta, "spec": spec})).unwrap()
}

/// What `level` finds wrong with a pod of `spec` (and `meta`), as kube's
/// `ForbiddenDetail` prints it; empty when it passes.
fn found_with(level: Level, meta: Value, spec: Value) -> String {
    let p = pod(meta, spec);
    forbidden_detail(&evaluate(level, &p.metadata, spec_of(&p)))
}

fn found(level: Level, spec: Value) -> String {
    found_with(level, json!({}), spec)
}

/// A container that passes the restricted level, with `extra` merged into its
/// security context.
fn restricted(name: &str, extra: Value) -> Value {
    let mut sc = json!({
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": true,
        "seccompProfile": {"type": "RuntimeDefault"},
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        sc[k] = v;
    }
    json!({"name": name, "image": "busybox", "securityContext": sc})
}

fn container(name: &str, sc: Value) -> Value {
    json!({"name": name, "image": "busybox", "securityContext": sc})
}

#[test]
fn host_process_is_refused_for_pod_and_containers() {
    let ok =
        json!({"containers": [container("c", json!({"windowsOptions": {"hostProcess": false}}))]});
    assert_eq!(found(Level::Baseline, ok), "");
    let bad = json!({
        "securityContext": {"windowsOptions": {"hostProcess": true}},
        "containers": [container("c", json!({"windowsOptions": {"hostProcess": true}}))],
    });
    assert_eq!(
        found(Level::Baseline, bad),
        r#"hostProcess (pod and container "c" must not set securityContext.windowsOptions.hostProcess=true)"#
    );
}

#[test]
fn host_namespaces_are_refused() {
    let ok = json!({"hostNetwork": false, "containers": [{"name": "c"}]});
    assert_eq!(found(Level::Baseline, ok), "");
    let bad = json!({"hostIPC": true, "hostPID": true, "hostNetwork": true, "containers": [{"name": "c"}]});
    assert_eq!(
        found(Level::Baseline, bad),
        "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)"
    );
}

#[test]
fn privileged_containers_of_every_sort_are_refused() {
    let ok = json!({"containers": [container("c", json!({"privileged": false}))]});
    assert_eq!(found(Level::Baseline, ok), "");
    // Init containers first, then containers, then ephemeral containers (kube's order).
    let bad = json!({
        "containers": [container("c", json!({"privileged": true}))],
        "initContainers": [container("i", json!({"privileged": true}))],
        "ephemeralContainers": [container("debug", json!({"privileged": true}))],
    });
    assert_eq!(
        found(Level::Baseline, bad),
        r#"privileged (containers "i", "c", "debug" must not set securityContext.privileged=true)"#
    );
}

#[test]
fn capabilities_beyond_the_default_set_are_refused_at_baseline() {
    let ok = json!({"containers": [container("c", json!({"capabilities": {"add": ["CHOWN", "NET_BIND_SERVICE"]}}))]});
    assert_eq!(found(Level::Baseline, ok), "");
    let bad = json!({"containers": [
        container("c", json!({"capabilities": {"add": ["SYS_ADMIN", "CHOWN", "NET_RAW"]}})),
        container("d", json!({"capabilities": {"add": ["NET_RAW"]}})),
    ]});
    assert_eq!(
        found(Level::Baseline, bad),
        r#"non-default capabilities (containers "c", "d" must not include "NET_RAW", "SYS_ADMIN" in securityContext.capabilities.add)"#
    );
}

#[test]
fn host_path_volumes_are_refused_at_baseline() {
    let ok = json!({"containers": [{"name": "c"}], "volumes": [{"name": "a", "emptyDir": {}}]});
    assert_eq!(found(Level::Baseline, ok), "");
    let bad = json!({"containers": [{"name": "c"}], "volumes": [
        {"name": "a", "hostPath": {"path": "/etc"}},
        {"name": "b", "emptyDir": {}},
        {"name": "c", "hostPath": {"path": "/var"}},
    ]});
    assert_eq!(
        found(Level::Baseline, bad),
        r#"hostPath volumes (volumes "a", "c")"#
    );
}

#[test]
fn host_ports_are_refused_and_listed_as_text() {
    let ok =
        json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 0}]}]});
    assert_eq!(found(Level::Baseline, ok), "");
    let bad = json!({"containers": [
        {"name": "a", "ports": [{"containerPort": 80}]},
        {"name": "b", "ports": [{"containerPort": 80, "hostPort": 20}]},
        {"name": "c", "ports": [{"containerPort": 81, "hostPort": 100}, {"containerPort": 82, "hostPort": 20}]},
    ]});
    // kube keeps the ports as strings: 100 sorts before 20.
    assert_eq!(
        found(Level::Baseline, bad),
        r#"hostPort (containers "b", "c" use hostPorts 100, 20)"#
    );
    let one =
        json!({"containers": [{"name": "b", "ports": [{"containerPort": 80, "hostPort": 8080}]}]});
    assert_eq!(
        found(Level::Baseline, one),
        r#"hostPort (container "b" uses hostPort 8080)"#
    );
}

#[test]
fn app_armor_profiles_must_be_runtime_default_or_localhost() {
    let ok = json!({
        "securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}},
        "containers": [container("c", json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": "p"}}))],
    });
    let annotated = json!({"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "runtime/default"}});
    assert_eq!(found_with(Level::Baseline, annotated, ok), "");
    let bad = json!({
        "securityContext": {"appArmorProfile": {"type": "Unconfined"}},
        "containers": [container("c", json!({}))],
    });
    let annotated =
        json!({"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}});
    assert_eq!(
        found_with(Level::Baseline, annotated, bad),
        r#"forbidden AppArmor profiles (pod and annotation must not set AppArmor profile type to "Unconfined", "container.apparmor.security.beta.kubernetes.io/c="unconfined"")"#
    );
    let one =
        json!({"containers": [container("c", json!({"appArmorProfile": {"type": "Unconfined"}}))]});
    assert_eq!(
        found(Level::Baseline, one),
        r#"forbidden AppArmor profile (container "c" must not set AppArmor profile type to "Unconfined")"#
    );
}

#[test]
fn selinux_options_allow_container_types_only() {
    let ok = json!({
        "securityContext": {"seLinuxOptions": {"type": "container_engine_t", "level": "s0:c1"}},
        "containers": [container("c", json!({"seLinuxOptions": {"type": "container_t"}}))],
    });
    assert_eq!(found(Level::Baseline, ok), "");
    let bad = json!({
        "securityContext": {"seLinuxOptions": {"type": "spc_t", "user": "system_u"}},
        "containers": [container("c", json!({"seLinuxOptions": {"role": "sysadm_r"}}))],
    });
    assert_eq!(
        found(Level::Baseline, bad),
        r#"seLinuxOptions (pod and container "c" set forbidden securityContext.seLinuxOptions: type "spc_t"; user may not be set; role may not be set)"#
    );
    let user_only = json!({"securityContext": {"seLinuxOptions": {"user": "u"}}, "containers": [{"name": "c"}]});
    assert_eq!(
        found(Level::Baseline, user_only),
        "seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: user may not be set)"
    );
}

#[test]
fn proc_mount_must_stay_default() {
    let ok = json!({"containers": [container("c", json!({"procMount": "Default"}))]});
    assert_eq!(found(Level::Baseline, ok), "");
    let bad = json!({"containers": [container("c", json!({"procMount": "Unmasked"}))]});
    assert_eq!(
        found(Level::Baseline, bad),
        r#"procMount (container "c" must not set securityContext.procMount to "Unmasked")"#
    );
}

#[test]
fn seccomp_unconfined_is_refused_at_baseline() {
    let ok = json!({
        "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}},
        "containers": [{"name": "c"}, container("d", json!({"seccompProfile": {"type": "RuntimeDefault"}}))],
    });
    assert_eq!(found(Level::Baseline, ok), "");
    // Baseline allows no profile at all.
    assert_eq!(
        found(Level::Baseline, json!({"containers": [{"name": "c"}]})),
        ""
    );
    let bad = json!({
        "securityContext": {"seccompProfile": {"type": "Unconfined"}},
        "containers": [container("c", json!({"seccompProfile": {"type": "Unconfined"}}))],
    });
    assert_eq!(
        found(Level::Baseline, bad),
        r#"seccompProfile (pod and container "c" must not set securityContext.seccompProfile.type to "Unconfined")"#
    );
}

#[test]
fn only_safe_sysctls_are_allowed() {
    let ok = json!({"securityContext": {"sysctls": [
        {"name": "net.ipv4.tcp_rmem", "value": "4096 87380 6291456"},
        {"name": "kernel.shm_rmid_forced", "value": "1"},
    ]}, "containers": [{"name": "c"}]});
    assert_eq!(found(Level::Baseline, ok), "");
    let bad = json!({"securityContext": {"sysctls": [
        {"name": "kernel.msgmax", "value": "1"},
        {"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"},
        {"name": "net.core.somaxconn", "value": "1024"},
    ]}, "containers": [{"name": "c"}]});
    assert_eq!(
        found(Level::Baseline, bad),
        "forbidden sysctls (kernel.msgmax, net.core.somaxconn)"
    );
}

#[test]
fn restricted_allows_only_the_listed_volume_types() {
    let ok = json!({"containers": [restricted("c", json!({}))], "volumes": [
        {"name": "a", "configMap": {"name": "m"}},
        {"name": "b", "secret": {"secretName": "s"}},
        {"name": "c", "emptyDir": {}},
        {"name": "d", "persistentVolumeClaim": {"claimName": "p"}},
        {"name": "e", "projected": {"sources": []}},
        {"name": "f", "downwardAPI": {}},
        {"name": "g", "image": {"reference": "busybox"}},
        {"name": "h", "csi": {"driver": "d"}},
        {"name": "i", "ephemeral": {}},
    ]});
    assert_eq!(found(Level::Restricted, ok), "");
    // The hostPath volume is reported once, by the restricted check.
    let bad = json!({"containers": [restricted("c", json!({}))], "volumes": [
        {"name": "a", "hostPath": {"path": "/"}},
        {"name": "b", "nfs": {"server": "s", "path": "/"}},
        {"name": "c", "configMap": {"name": "m"}},
    ]});
    assert_eq!(
        found(Level::Restricted, bad),
        r#"restricted volume types (volumes "a", "b" use restricted volume types "hostPath", "nfs")"#
    );
}

#[test]
fn restricted_needs_allow_privilege_escalation_false_except_on_windows() {
    let ok = json!({"containers": [restricted("c", json!({}))]});
    assert_eq!(found(Level::Restricted, ok), "");
    let bad = json!({"containers": [restricted("c", json!({"allowPrivilegeEscalation": true}))]});
    assert_eq!(
        found(Level::Restricted, bad),
        r#"allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false)"#
    );
    let windows = json!({"os": {"name": "windows"}, "securityContext": {"runAsNonRoot": true}, "containers": [{"name": "c"}]});
    assert_eq!(found(Level::Restricted, windows), "");
}

#[test]
fn restricted_needs_run_as_non_root() {
    let ok = json!({"securityContext": {"runAsNonRoot": true}, "containers": [restricted("c", json!({"runAsNonRoot": null}))]});
    assert_eq!(found(Level::Restricted, ok), "");
    let explicit = json!({"securityContext": {"runAsNonRoot": true}, "containers": [restricted("c", json!({"runAsNonRoot": false}))]});
    assert_eq!(
        found(Level::Restricted, explicit),
        r#"runAsNonRoot != true (container "c" must not set securityContext.runAsNonRoot=false)"#
    );
    let implicit = json!({"containers": [
        restricted("c", json!({"runAsNonRoot": null})),
        restricted("d", json!({"runAsNonRoot": null})),
    ]});
    assert_eq!(
        found(Level::Restricted, implicit),
        r#"runAsNonRoot != true (pod or containers "c", "d" must set securityContext.runAsNonRoot=true)"#
    );
}

#[test]
fn restricted_refuses_run_as_user_zero() {
    let ok =
        json!({"securityContext": {"runAsUser": 1000}, "containers": [restricted("c", json!({}))]});
    assert_eq!(found(Level::Restricted, ok), "");
    let bad = json!({"securityContext": {"runAsUser": 0}, "containers": [restricted("c", json!({"runAsUser": 0}))]});
    assert_eq!(
        found(Level::Restricted, bad),
        r#"runAsUser=0 (pod and container "c" must not set runAsUser=0)"#
    );
}

#[test]
fn restricted_needs_a_seccomp_profile() {
    let ok = json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [restricted("c", json!({"seccompProfile": null}))]});
    assert_eq!(found(Level::Restricted, ok), "");
    let missing = json!({"containers": [restricted("c", json!({"seccompProfile": null}))]});
    assert_eq!(
        found(Level::Restricted, missing),
        r#"seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
    );
    // Unconfined is reported once, by the restricted check.
    let unconfined =
        json!({"containers": [restricted("c", json!({"seccompProfile": {"type": "Unconfined"}}))]});
    assert_eq!(
        found(Level::Restricted, unconfined),
        r#"seccompProfile (container "c" must not set securityContext.seccompProfile.type to "Unconfined")"#
    );
}

#[test]
fn restricted_needs_all_capabilities_dropped() {
    let ok = json!({"containers": [restricted("c", json!({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}))]});
    assert_eq!(found(Level::Restricted, ok), "");
    let bad = json!({"containers": [restricted("c", json!({"capabilities": {"drop": ["NET_RAW"], "add": ["SYS_ADMIN", "NET_BIND_SERVICE"]}}))]});
    assert_eq!(
        found(Level::Restricted, bad),
        r#"unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]; container "c" must not include "SYS_ADMIN" in securityContext.capabilities.add)"#
    );
}

#[test]
fn privileged_level_allows_anything() {
    let bad =
        json!({"hostNetwork": true, "containers": [container("c", json!({"privileged": true}))]});
    assert_eq!(found(Level::Privileged, bad), "");
}

fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn context(pairs: &[(&str, &str)]) -> Context {
    Context {
        labels: labels(pairs),
        ..Context::default()
    }
}

fn object(kind: &str, value: Value) -> AnyObject {
    let kind = rk8s_api::object::kind_named(kind).unwrap();
    AnyObject::from_value(&kind, value).unwrap().unwrap()
}

#[test]
fn labels_choose_levels_and_versions() {
    let (p, errors) = Policy::from_labels(
        labels(&[
            (ENFORCE_LABEL, "restricted"),
            (ENFORCE_VERSION_LABEL, "v1.30"),
            (WARN_LABEL, "baseline"),
        ])
        .as_ref(),
    );
    assert!(errors.is_empty());
    assert_eq!(p.enforce.to_string(), "restricted:v1.30");
    assert_eq!(p.warn.to_string(), "baseline:latest");
    assert_eq!(p.audit.to_string(), "privileged:latest");
    assert_eq!(Policy::from_labels(None).0, Policy::default());
    for bad in ["v1.030", "v2.1", "1.30", "v1.", "latest "] {
        assert_eq!(Version::parse(bad), None, "{bad}");
    }
    assert_eq!(Version::parse("v1.0"), Some(Version::V1(0)));
}

#[test]
fn invalid_levels_fail_closed_for_enforce_and_open_for_warn() {
    let (p, errors) = Policy::from_labels(
        labels(&[
            (ENFORCE_LABEL, "strict"),
            (WARN_LABEL, "loud"),
            (AUDIT_VERSION_LABEL, "v1.x"),
        ])
        .as_ref(),
    );
    assert_eq!(p.enforce.level, Level::Restricted);
    assert_eq!(p.warn.level, Level::Privileged);
    assert_eq!(p.audit.version, Version::Latest);
    let messages: Vec<String> = errors.iter().map(FieldError::kubernetes_message).collect();
    assert_eq!(
        messages,
        [
            r#"metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": must be one of privileged, baseline, restricted"#,
            r#"metadata.labels[pod-security.kubernetes.io/audit-version]: Invalid value: "v1.x": must be "latest" or "v1.x""#,
            r#"metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: "loud": must be one of privileged, baseline, restricted"#,
        ]
    );
}

/// The brief's privileged pod: kube's 403, word for word.
#[test]
fn enforce_refuses_a_privileged_pod_with_kubes_message() {
    let ctx = context(&[(ENFORCE_LABEL, "restricted")]);
    let p = pod(
        json!({}),
        json!({"containers": [container("c", json!({"privileged": true}))]}),
    );
    let err = ctx.admit(&AnyObject::Pod(Box::new(p)), None).unwrap_err();
    assert_eq!(err.code, http::StatusCode::FORBIDDEN);
    assert_eq!(err.reason, "Forbidden");
    assert_eq!(
        err.message,
        r#"pods "web" is forbidden: violates PodSecurity "restricted:latest": privileged (container "c" must not set securityContext.privileged=true), allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
    );
    let details = err.details.unwrap();
    assert_eq!(details.kind.as_deref(), Some("pods"));
    assert_eq!(details.name.as_deref(), Some("web"));
}

#[test]
fn warn_and_audit_report_without_refusing() {
    let ctx = context(&[
        (ENFORCE_LABEL, "baseline"),
        (WARN_LABEL, "restricted"),
        (AUDIT_LABEL, "restricted"),
        (AUDIT_VERSION_LABEL, "v1.29"),
    ]);
    let p = pod(
        json!({}),
        json!({"containers": [restricted("c", json!({"runAsNonRoot": null}))]}),
    );
    let decision = ctx.admit(&AnyObject::Pod(Box::new(p)), None).unwrap();
    let detail =
        r#"runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true)"#;
    assert_eq!(
        decision.warnings,
        [format!(
            r#"would violate PodSecurity "restricted:latest": {detail}"#
        )]
    );
    assert_eq!(
        decision.audit_annotations[AUDIT_VIOLATIONS_ANNOTATION],
        format!(r#"would violate PodSecurity "restricted:v1.29": {detail}"#)
    );
    assert_eq!(
        decision.audit_annotations[ENFORCE_POLICY_ANNOTATION],
        "baseline:latest"
    );
}

#[test]
fn workloads_are_warned_about_but_never_refused() {
    let spec = json!({"hostNetwork": true, "containers": [{"name": "c", "image": "busybox"}]});
    let d = object(
        "Deployment",
        json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec}},
        }),
    );
    let ctx = context(&[(ENFORCE_LABEL, "restricted"), (WARN_LABEL, "baseline")]);
    let decision = ctx.admit(&d, None).unwrap();
    assert_eq!(
        decision.warnings,
        [r#"would violate PodSecurity "baseline:latest": host namespaces (hostNetwork=true)"#]
    );
    // Its scale or status subresource is not looked at.
    let scaled = Context {
        subresource: Some("scale".into()),
        ..context(&[(WARN_LABEL, "baseline")])
    };
    assert_eq!(scaled.admit(&d, Some(&d)).unwrap(), Decision::default());
}

#[test]
fn an_unlabelled_namespace_admits_anything() {
    let p = pod(
        json!({}),
        json!({"hostPID": true, "containers": [container("c", json!({"privileged": true}))]}),
    );
    let decision = Context::default()
        .admit(&AnyObject::Pod(Box::new(p)), None)
        .unwrap();
    assert!(decision.warnings.is_empty());
}

#[test]
fn an_invalid_enforce_label_enforces_restricted() {
    let ctx = context(&[(ENFORCE_LABEL, "strict")]);
    let p = pod(
        json!({}),
        json!({"containers": [restricted("c", json!({"runAsUser": 0}))]}),
    );
    let err = ctx.admit(&AnyObject::Pod(Box::new(p)), None).unwrap_err();
    assert_eq!(
        err.message,
        r#"pods "web" is forbidden: violates PodSecurity "restricted:latest": runAsUser=0 (container "c" must not set runAsUser=0)"#
    );
}

#[test]
fn pod_updates_are_checked_only_when_significant() {
    let ctx = context(&[(ENFORCE_LABEL, "baseline")]);
    let old = pod(
        json!({}),
        json!({"containers": [container("c", json!({"privileged": true}))]}),
    );
    // A label added: allowed, as kube allows updates that change nothing it checks.
    let mut relabelled = old.clone();
    relabelled.metadata.labels = labels(&[("tier", "web")]);
    let (new, current) = (
        AnyObject::Pod(Box::new(relabelled)),
        AnyObject::Pod(Box::new(old.clone())),
    );
    assert!(ctx.admit(&new, Some(&current)).is_ok());
    // A new image: checked, and refused.
    let mut reimaged = old.clone();
    if let Some(spec) = reimaged.spec.as_mut() {
        spec.containers[0].image = Some("nginx".into());
    }
    assert!(significant_update(&reimaged, &old));
    let new = AnyObject::Pod(Box::new(reimaged));
    assert_eq!(
        ctx.admit(&new, Some(&current)).unwrap_err().code,
        http::StatusCode::FORBIDDEN
    );
    // The status subresource is never checked.
    let status = Context {
        subresource: Some("status".into()),
        ..ctx
    };
    assert!(status.admit(&new, Some(&current)).is_ok());
    // An ephemeral container added is significant.
    let mut debugged = old.clone();
    if let Some(spec) = debugged.spec.as_mut() {
        spec.ephemeral_containers = serde_json::from_value(json!([{"name": "debug"}])).ok();
    }
    assert!(significant_update(&debugged, &old));
}

fn namespace(pairs: &[(&str, &str)]) -> AnyObject {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("team".into()),
            labels: labels(pairs),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    AnyObject::Namespace(Box::new(ns))
}

#[test]
fn namespaces_with_invalid_labels_are_invalid() {
    let err = Context::default()
        .admit(&namespace(&[(ENFORCE_LABEL, "strict")]), None)
        .unwrap_err();
    assert_eq!(err.code, http::StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        err.message,
        r#"Namespace "team" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": must be one of privileged, baseline, restricted"#
    );
    // An update that keeps the same invalid label is allowed (kube: only changes are
    // validated).
    let old = namespace(&[(ENFORCE_LABEL, "strict")]);
    let new = namespace(&[(ENFORCE_LABEL, "strict"), ("team", "a")]);
    assert!(Context::default().admit(&new, Some(&old)).is_ok());
}

#[test]
fn tightening_enforce_warns_about_existing_pods() {
    let privileged = |name: &str| {
        pod(
            json!({}),
            json!({"containers": [container("c", json!({"privileged": true}))]}),
        )
        .tap_name(name)
    };
    let host = |name: &str| {
        pod(
            json!({}),
            json!({"hostNetwork": true, "containers": [{"name": "c"}]}),
        )
        .tap_name(name)
    };
    let ctx = Context {
        pods: vec![privileged("b"), privileged("a"), host("z"), privileged("c")],
        ..Context::default()
    };
    let old = namespace(&[]);
    let new = namespace(&[(ENFORCE_LABEL, "baseline")]);
    let decision = ctx.admit(&new, Some(&old)).unwrap();
    assert_eq!(
        decision.warnings,
        [
            r#"existing pods in namespace "team" violate the new PodSecurity enforce level "baseline:latest""#,
            "a (and 2 other pods): privileged",
            "z: host namespaces",
        ]
    );
    // Relaxing says nothing.
    assert!(ctx.admit(&old, Some(&new)).unwrap().warnings.is_empty());
}

trait TapName {
    fn tap_name(self, name: &str) -> Self;
}

impl TapName for Pod {
    fn tap_name(mut self, name: &str) -> Self {
        self.metadata.name = Some(name.to_string());
        self
    }
}

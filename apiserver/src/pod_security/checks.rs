//! The Pod Security Standards' checks, one function each, as k8s.io/pod-security-admission
//! `policy/check_*.go` words them at Kubernetes v1.33 (the `latest` this server, which
//! reports v1.33, evaluates). A check looks at a pod's metadata and spec and answers
//! `None` (allowed) or a [`Violation`]: a short reason and a detail naming what to fix.
//!
//! The order is kube's (`policy/registry.go`): baseline checks sorted by their check ID,
//! then restricted ones sorted by ID. At `restricted` three baseline checks are replaced
//! by the stricter restricted check covering the same field (`OverrideCheckIDs`):
//! `hostPathVolumes` by `restrictedVolumes`, `capabilities_baseline` by
//! `capabilities_restricted`, `seccompProfile_baseline` by `seccompProfile_restricted`,
//! so one cause is reported once.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ContainerPort, PodSpec, SecurityContext};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::Level;

/// Why a check refused a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// What was refused, shortly (`privileged`, `host namespaces`).
    pub reason: String,
    /// Which containers or fields, and what they must do instead (may be empty).
    pub detail: String,
}

/// A check: `None` when the pod passes.
type Check = fn(&ObjectMeta, &PodSpec) -> Option<Violation>;

/// The baseline checks, in kube's order (sorted by check ID).
const BASELINE: &[Check] = &[
    app_armor_profile,        // appArmorProfile
    capabilities_baseline,    // capabilities_baseline
    host_namespaces,          // hostNamespaces
    host_path_volumes,        // hostPathVolumes
    host_ports,               // hostPorts
    privileged,               // privileged
    proc_mount,               // procMount
    se_linux_options,         // seLinuxOptions
    seccomp_profile_baseline, // seccompProfile_baseline
    sysctls,                  // sysctls
    windows_host_process,     // windowsHostProcess
];

/// The restricted checks: the baseline ones not overridden, then the restricted ones
/// sorted by check ID.
const RESTRICTED: &[Check] = &[
    app_armor_profile,
    host_namespaces,
    host_ports,
    privileged,
    proc_mount,
    se_linux_options,
    sysctls,
    windows_host_process,
    allow_privilege_escalation, // allowPrivilegeEscalation
    capabilities_restricted,    // capabilities_restricted
    restricted_volumes,         // restrictedVolumes
    run_as_non_root,            // runAsNonRoot
    run_as_user,                // runAsUser
    seccomp_profile_restricted, // seccompProfile_restricted
];

/// Every violation of `level` by a pod with this metadata and spec, in kube's order.
pub fn evaluate(level: Level, meta: &ObjectMeta, spec: &PodSpec) -> Vec<Violation> {
    let checks = match level {
        Level::Privileged => return Vec::new(),
        Level::Baseline => BASELINE,
        Level::Restricted => RESTRICTED,
    };
    checks
        .iter()
        .filter_map(|check| check(meta, spec))
        .collect()
}

/// One container of any sort, as the checks see it.
struct Container<'a> {
    name: &'a str,
    security_context: Option<&'a SecurityContext>,
    ports: &'a [ContainerPort],
}

/// The pod's init containers, containers and ephemeral containers, in that order
/// (kube's `visitContainers`).
fn containers(spec: &PodSpec) -> Vec<Container<'_>> {
    let regular = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .map(|c| Container {
            name: &c.name,
            security_context: c.security_context.as_ref(),
            ports: c.ports.as_deref().unwrap_or_default(),
        });
    let ephemeral = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(|c| Container {
            name: &c.name,
            security_context: c.security_context.as_ref(),
            ports: c.ports.as_deref().unwrap_or_default(),
        });
    regular.chain(ephemeral).collect()
}

/// The names of the containers for which `bad` holds.
fn names_where(spec: &PodSpec, bad: impl Fn(&Container<'_>) -> bool) -> Vec<String> {
    containers(spec)
        .iter()
        .filter(|c| bad(c))
        .map(|c| c.name.to_string())
        .collect()
}

/// `"a", "b"` (kube's `joinQuote`: quotes added, nothing escaped).
pub fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("\"{}\"", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn pluralize<'a>(singular: &'a str, plural: &'a str, count: usize) -> &'a str {
    if count == 1 { singular } else { plural }
}

/// `container "a"`, `containers "a", "b"`.
fn containers_named(names: &[String]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

/// A string as Go's `%q` prints it.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn violation(reason: impl Into<String>, detail: impl Into<String>) -> Option<Violation> {
    Some(Violation {
        reason: reason.into(),
        detail: detail.into(),
    })
}

fn is_windows(spec: &PodSpec) -> bool {
    spec.os.as_ref().is_some_and(|os| os.name == "windows")
}

const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// `appArmorProfile`: the profile type, if set, is `RuntimeDefault` or `Localhost`; the
/// deprecated annotations hold `runtime/default`, `localhost/*` or nothing.
fn app_armor_profile(meta: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let allowed = |t: &str| t == "RuntimeDefault" || t == "Localhost";
    let mut setters = Vec::new();
    let mut bad_values = BTreeSet::new();
    let pod_profile = spec
        .security_context
        .as_ref()
        .and_then(|s| s.app_armor_profile.as_ref());
    if let Some(p) = pod_profile.filter(|p| !allowed(&p.type_)) {
        setters.push("pod".to_string());
        bad_values.insert(p.type_.clone());
    }
    let mut bad_containers = Vec::new();
    for c in containers(spec) {
        let profile = c
            .security_context
            .and_then(|s| s.app_armor_profile.as_ref());
        if let Some(p) = profile.filter(|p| !allowed(&p.type_)) {
            bad_containers.push(c.name.to_string());
            bad_values.insert(p.type_.clone());
        }
    }
    if !bad_containers.is_empty() {
        setters.push(containers_named(&bad_containers));
    }
    let mut annotations: Vec<String> = meta
        .annotations
        .iter()
        .flatten()
        .filter(|(k, v)| {
            k.starts_with(APPARMOR_ANNOTATION_PREFIX)
                && !(v.is_empty() || *v == "runtime/default" || v.starts_with("localhost/"))
        })
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect();
    let mut values: Vec<String> = bad_values.into_iter().collect();
    if !annotations.is_empty() {
        annotations.sort();
        setters.push(pluralize("annotation", "annotations", annotations.len()).to_string());
        values.extend(annotations);
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            values.len(),
        ),
        format!(
            "{} must not set AppArmor profile type to {}",
            setters.join(" and "),
            join_quote(&values)
        ),
    )
}

/// The capabilities a baseline container may add: Docker's default set without NET_RAW.
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// `capabilities_baseline`: containers add only capabilities of the default set.
fn capabilities_baseline(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut added = BTreeSet::new();
    let mut bad = Vec::new();
    for c in containers(spec) {
        let adds = c
            .security_context
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|caps| caps.add.as_ref());
        let extra: Vec<&String> = adds
            .into_iter()
            .flatten()
            .filter(|cap| !BASELINE_CAPABILITIES.contains(&cap.as_str()))
            .collect();
        if !extra.is_empty() {
            bad.push(c.name.to_string());
            added.extend(extra.into_iter().cloned());
        }
    }
    if bad.is_empty() {
        return None;
    }
    let added: Vec<String> = added.into_iter().collect();
    violation(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_named(&bad),
            join_quote(&added)
        ),
    )
}

/// `hostNamespaces`: no host network, PID or IPC namespace.
fn host_namespaces(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let used: Vec<&str> = [
        (spec.host_network, "hostNetwork=true"),
        (spec.host_pid, "hostPID=true"),
        (spec.host_ipc, "hostIPC=true"),
    ]
    .into_iter()
    .filter(|(set, _)| *set == Some(true))
    .map(|(_, name)| name)
    .collect();
    if used.is_empty() {
        return None;
    }
    violation("host namespaces", used.join(", "))
}

/// `hostPathVolumes`: no hostPath volume.
fn host_path_volumes(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let volumes: Vec<String> = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.host_path.is_some())
        .map(|v| v.name.clone())
        .collect();
    if volumes.is_empty() {
        return None;
    }
    violation(
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", volumes.len()),
            join_quote(&volumes)
        ),
    )
}

/// `hostPorts`: no container port bound on the host.
fn host_ports(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    // Kubernetes keeps the ports as a set of strings: sorted as text.
    let mut ports = BTreeSet::new();
    let mut bad = Vec::new();
    for c in containers(spec) {
        let used: Vec<String> = c
            .ports
            .iter()
            .filter_map(|p| p.host_port.filter(|&h| h != 0))
            .map(|h| h.to_string())
            .collect();
        if !used.is_empty() {
            bad.push(c.name.to_string());
            ports.extend(used);
        }
    }
    if bad.is_empty() {
        return None;
    }
    let ports: Vec<String> = ports.into_iter().collect();
    violation(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_named(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
    )
}

/// `privileged`: no privileged container.
fn privileged(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let bad = names_where(spec, |c| {
        c.security_context.and_then(|s| s.privileged) == Some(true)
    });
    if bad.is_empty() {
        return None;
    }
    violation(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers_named(&bad)
        ),
    )
}

/// `procMount`: the default /proc masks (`Default` or unset).
fn proc_mount(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut types = BTreeSet::new();
    let mut bad = Vec::new();
    for c in containers(spec) {
        if let Some(m) = c.security_context.and_then(|s| s.proc_mount.as_ref())
            && m != "Default"
        {
            bad.push(c.name.to_string());
            types.insert(m.clone());
        }
    }
    if bad.is_empty() {
        return None;
    }
    let types: Vec<String> = types.into_iter().collect();
    violation(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers_named(&bad),
            join_quote(&types)
        ),
    )
}

/// The SELinux types a baseline pod may ask for (v1.31+: `container_engine_t` too).
const SELINUX_TYPES: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// `seLinuxOptions`: an allowed type, and no user or role.
fn se_linux_options(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut bad_types = BTreeSet::new();
    let (mut set_user, mut set_role) = (false, false);
    let mut valid = |opts: &k8s_openapi::api::core::v1::SELinuxOptions| {
        let mut ok = true;
        let t = opts.type_.as_deref().unwrap_or("");
        if !SELINUX_TYPES.contains(&t) {
            ok = false;
            bad_types.insert(t.to_string());
        }
        if opts.user.as_deref().is_some_and(|u| !u.is_empty()) {
            ok = false;
            set_user = true;
        }
        if opts.role.as_deref().is_some_and(|r| !r.is_empty()) {
            ok = false;
            set_role = true;
        }
        ok
    };
    let mut setters = Vec::new();
    let pod_opts = spec
        .security_context
        .as_ref()
        .and_then(|s| s.se_linux_options.as_ref());
    if pod_opts.is_some_and(|o| !valid(o)) {
        setters.push("pod".to_string());
    }
    let mut bad = Vec::new();
    for c in containers(spec) {
        if let Some(o) = c.security_context.and_then(|s| s.se_linux_options.as_ref())
            && !valid(o)
        {
            bad.push(c.name.to_string());
        }
    }
    if !bad.is_empty() {
        setters.push(containers_named(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    if !bad_types.is_empty() {
        let types: Vec<String> = bad_types.into_iter().collect();
        data.push(format!(
            "{} {}",
            pluralize("type", "types", types.len()),
            join_quote(&types)
        ));
    }
    if set_user {
        data.push("user may not be set".to_string());
    }
    if set_role {
        data.push("role may not be set".to_string());
    }
    violation(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters.join(" and "),
            data.join("; ")
        ),
    )
}

fn valid_seccomp(t: &str) -> bool {
    t == "RuntimeDefault" || t == "Localhost"
}

/// The seccomp profile types set to a refused value (`pod`, `containers "a"`), the
/// values, and the containers that set no profile of their own.
fn seccomp_setters(spec: &PodSpec) -> (Vec<String>, Vec<String>, bool, Vec<String>) {
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    let pod_profile = spec
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref());
    let pod_set = pod_profile.is_some_and(|p| valid_seccomp(&p.type_));
    if let Some(p) = pod_profile.filter(|p| !valid_seccomp(&p.type_)) {
        setters.push("pod".to_string());
        values.insert(p.type_.clone());
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in containers(spec) {
        match c.security_context.and_then(|s| s.seccomp_profile.as_ref()) {
            Some(p) if !valid_seccomp(&p.type_) => {
                explicit.push(c.name.to_string());
                values.insert(p.type_.clone());
            }
            Some(_) => {}
            None => implicit.push(c.name.to_string()),
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_named(&explicit));
    }
    (setters, values.into_iter().collect(), pod_set, implicit)
}

/// `seccompProfile_baseline`: a profile, where set, is `RuntimeDefault` or `Localhost`.
fn seccomp_profile_baseline(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let (setters, values, _, _) = seccomp_setters(spec);
    if setters.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            setters.join(" and "),
            join_quote(&values)
        ),
    )
}

/// The sysctls a baseline pod may set: namespaced and isolated from other pods
/// (the v1.32 set).
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// `sysctls`: only the safe set.
fn sysctls(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let forbidden: Vec<&str> = spec
        .security_context
        .iter()
        .flat_map(|s| s.sysctls.iter().flatten())
        .map(|s| s.name.as_str())
        .filter(|name| !SAFE_SYSCTLS.contains(name))
        .collect();
    if forbidden.is_empty() {
        return None;
    }
    violation("forbidden sysctls", forbidden.join(", "))
}

/// `windowsHostProcess`: no Windows HostProcess pod or container.
fn windows_host_process(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut setters = Vec::new();
    let pod = spec
        .security_context
        .as_ref()
        .and_then(|s| s.windows_options.as_ref())
        .and_then(|w| w.host_process);
    if pod == Some(true) {
        setters.push("pod".to_string());
    }
    let bad = names_where(spec, |c| {
        c.security_context
            .and_then(|s| s.windows_options.as_ref())
            .and_then(|w| w.host_process)
            == Some(true)
    });
    if !bad.is_empty() {
        setters.push(containers_named(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters.join(" and ")
        ),
    )
}

/// `allowPrivilegeEscalation`: every container sets it to false (Windows pods are
/// exempt since v1.25).
fn allow_privilege_escalation(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    if is_windows(spec) {
        return None;
    }
    let bad = names_where(spec, |c| {
        c.security_context
            .and_then(|s| s.allow_privilege_escalation)
            != Some(false)
    });
    if bad.is_empty() {
        return None;
    }
    violation(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_named(&bad)
        ),
    )
}

/// `capabilities_restricted`: every container drops ALL and adds at most
/// NET_BIND_SERVICE (Windows pods are exempt since v1.25).
fn capabilities_restricted(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    if is_windows(spec) {
        return None;
    }
    let mut missing_drop = Vec::new();
    let mut adding = Vec::new();
    let mut forbidden = BTreeSet::new();
    for c in containers(spec) {
        let Some(caps) = c.security_context.and_then(|s| s.capabilities.as_ref()) else {
            missing_drop.push(c.name.to_string());
            continue;
        };
        if !caps.drop.iter().flatten().any(|d| d == "ALL") {
            missing_drop.push(c.name.to_string());
        }
        let extra: Vec<&String> = caps
            .add
            .iter()
            .flatten()
            .filter(|a| *a != "NET_BIND_SERVICE")
            .collect();
        if !extra.is_empty() {
            adding.push(c.name.to_string());
            forbidden.extend(extra.into_iter().cloned());
        }
    }
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_named(&missing_drop)
        ));
    }
    if !adding.is_empty() {
        let forbidden: Vec<String> = forbidden.into_iter().collect();
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_named(&adding),
            join_quote(&forbidden)
        ));
    }
    if details.is_empty() {
        return None;
    }
    violation("unrestricted capabilities", details.join("; "))
}

/// The type of a volume the restricted level refuses, by its source (kube's order);
/// `None` for the allowed sources.
fn restricted_volume_type(v: &k8s_openapi::api::core::v1::Volume) -> Option<&'static str> {
    let allowed = v.config_map.is_some()
        || v.csi.is_some()
        || v.downward_api.is_some()
        || v.empty_dir.is_some()
        || v.ephemeral.is_some()
        || v.image.is_some()
        || v.persistent_volume_claim.is_some()
        || v.projected.is_some()
        || v.secret.is_some();
    if allowed {
        return None;
    }
    let sources = [
        (v.host_path.is_some(), "hostPath"),
        (v.gce_persistent_disk.is_some(), "gcePersistentDisk"),
        (v.aws_elastic_block_store.is_some(), "awsElasticBlockStore"),
        (v.git_repo.is_some(), "gitRepo"),
        (v.nfs.is_some(), "nfs"),
        (v.iscsi.is_some(), "iscsi"),
        (v.glusterfs.is_some(), "glusterfs"),
        (v.rbd.is_some(), "rbd"),
        (v.flex_volume.is_some(), "flexVolume"),
        (v.cinder.is_some(), "cinder"),
        (v.cephfs.is_some(), "cephfs"),
        (v.flocker.is_some(), "flocker"),
        (v.fc.is_some(), "fc"),
        (v.azure_file.is_some(), "azureFile"),
        (v.vsphere_volume.is_some(), "vsphereVolume"),
        (v.quobyte.is_some(), "quobyte"),
        (v.azure_disk.is_some(), "azureDisk"),
        (v.photon_persistent_disk.is_some(), "photonPersistentDisk"),
        (v.portworx_volume.is_some(), "portworxVolume"),
        (v.scale_io.is_some(), "scaleIO"),
        (v.storageos.is_some(), "storageos"),
    ];
    Some(
        sources
            .into_iter()
            .find(|(set, _)| *set)
            .map_or("unknown", |(_, name)| name),
    )
}

/// `restrictedVolumes`: only configMap, csi, downwardAPI, emptyDir, ephemeral, image
/// (v1.33), persistentVolumeClaim, projected and secret volumes.
fn restricted_volumes(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut names = Vec::new();
    let mut types = BTreeSet::new();
    for v in spec.volumes.iter().flatten() {
        if let Some(t) = restricted_volume_type(v) {
            names.push(v.name.clone());
            types.insert(t);
        }
    }
    if names.is_empty() {
        return None;
    }
    let types: Vec<&str> = types.into_iter().collect();
    violation(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", names.len()),
            join_quote(&names),
            pluralize("uses", "use", names.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&types)
        ),
    )
}

/// `runAsNonRoot`: the pod sets it true (and no container false), or every container
/// does.
fn run_as_non_root(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut setters = Vec::new();
    let pod = spec
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_non_root);
    if pod == Some(false) {
        setters.push("pod".to_string());
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in containers(spec) {
        match c.security_context.and_then(|s| s.run_as_non_root) {
            Some(false) => explicit.push(c.name.to_string()),
            Some(true) => {}
            None if pod != Some(true) => implicit.push(c.name.to_string()),
            None => {}
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_named(&explicit));
    }
    if !setters.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        );
    }
    if implicit.is_empty() {
        return None;
    }
    violation(
        "runAsNonRoot != true",
        format!(
            "pod or {} must set securityContext.runAsNonRoot=true",
            containers_named(&implicit)
        ),
    )
}

/// `runAsUser`: neither the pod nor a container runs as user 0.
fn run_as_user(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut setters = Vec::new();
    if spec.security_context.as_ref().and_then(|s| s.run_as_user) == Some(0) {
        setters.push("pod".to_string());
    }
    let bad = names_where(spec, |c| {
        c.security_context.and_then(|s| s.run_as_user) == Some(0)
    });
    if !bad.is_empty() {
        setters.push(containers_named(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", setters.join(" and ")),
    )
}

/// `seccompProfile_restricted`: a `RuntimeDefault` or `Localhost` profile for the pod,
/// or for every container (Windows pods are exempt since v1.25).
fn seccomp_profile_restricted(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    if is_windows(spec) {
        return None;
    }
    let (setters, values, pod_set, implicit) = seccomp_setters(spec);
    if !setters.is_empty() {
        return violation(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters.join(" and "),
                join_quote(&values)
            ),
        );
    }
    if pod_set || implicit.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            containers_named(&implicit)
        ),
    )
}

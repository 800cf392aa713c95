//! PodSecurity admission, as kube-apiserver's built-in plugin (k8s.io/pod-security-admission
//! `admission/admission.go`) runs it: a namespace chooses a Pod Security Standard per
//! mode with its labels, and every pod written into it, and every pod template, is held
//! to it.
//!
//! - `pod-security.kubernetes.io/enforce`: a pod that violates the level is refused, 403
//!   `pods "web" is forbidden: violates PodSecurity "restricted:latest": ...`. Enforce
//!   applies to pods only (kube: a workload's template is not enforced, its pods are).
//! - `pod-security.kubernetes.io/warn`: the write succeeds with a `Warning` header
//!   `would violate PodSecurity "baseline:latest": ...`, for pods and for the kinds
//!   with pod templates (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob,
//!   ReplicationController, PodTemplate).
//! - `pod-security.kubernetes.io/audit`: the same text as an audit annotation
//!   (`pod-security.kubernetes.io/audit-violations`), returned in [`Decision`].
//!
//! Levels are `privileged` (the default: anything goes), `baseline` and `restricted`;
//! [`evaluate`] applies a level's checks (`checks.rs`, one function per check). The
//! `-version` labels accept `latest` and `v1.X` (and are shown in messages as written),
//! but **every version is evaluated with the checks of `latest`**, which is Kubernetes
//! v1.33's policy, the version this server reports: kube would evaluate `v1.X` with the
//! checks as they were in that release (older sysctl and SELinux allow-lists, no
//! Windows exemptions before v1.25, and so on).
//!
//! An unparsable label is an error on the namespace (422 on its create, and on an
//! update that changes the errors) and, when already stored, fails closed for enforce
//! (`restricted`) and open for warn and audit (`privileged`), as kube's
//! `api.PolicyToEvaluate` does. Nothing is exempt (kube-apiserver's default
//! configuration exempts no user, namespace or runtime class). A pod update is checked
//! only when it changes what the checks can see changing (kube's
//! `isSignificantPodUpdate`: images, seccomp annotations, containers added); the
//! `status`, `binding` and `eviction` subresources are not checked. Tightening a
//! namespace's enforce level warns about its existing pods that would be refused.

mod checks;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::LazyLock;

use k8s_openapi::api::core::v1::{Namespace, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, StatusDetails};
use rk8s_api::validation::{FieldError, Reason};
use rk8s_api::{AnyObject, FieldPath, ObjectKind};

use crate::registry::{self, Registry};
use crate::request::ResourceRequest;
use crate::status::{ApiError, ApiResult};

pub use checks::{Violation, evaluate};

/// The label choosing the level refused (`enforce`).
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";
/// The label choosing the version of the enforced level.
pub const ENFORCE_VERSION_LABEL: &str = "pod-security.kubernetes.io/enforce-version";
/// The label choosing the level recorded in audit annotations.
pub const AUDIT_LABEL: &str = "pod-security.kubernetes.io/audit";
/// The label choosing the version of the audited level.
pub const AUDIT_VERSION_LABEL: &str = "pod-security.kubernetes.io/audit-version";
/// The label choosing the level warned about.
pub const WARN_LABEL: &str = "pod-security.kubernetes.io/warn";
/// The label choosing the version of the warned level.
pub const WARN_VERSION_LABEL: &str = "pod-security.kubernetes.io/warn-version";

/// The audit annotation naming the enforced policy of an admitted pod.
pub const ENFORCE_POLICY_ANNOTATION: &str = "pod-security.kubernetes.io/enforce-policy";
/// The audit annotation holding what the audit level found.
pub const AUDIT_VIOLATIONS_ANNOTATION: &str = "pod-security.kubernetes.io/audit-violations";
/// The audit annotation holding why the namespace's labels were not understood.
pub const ERROR_ANNOTATION: &str = "pod-security.kubernetes.io/error";

/// kube's cap on the existing pods checked when a namespace's enforce level tightens.
const MAX_PODS_TO_CHECK: usize = 3000;

/// Pod subresources whose writes cannot change what the checks look at.
const IGNORED_POD_SUBRESOURCES: &[&str] = &[
    "exec",
    "attach",
    "binding",
    "eviction",
    "log",
    "portforward",
    "proxy",
    "status",
];

/// The kinds with a pod template that warn and audit look at, by group and kind.
const TEMPLATE_KINDS: &[(&str, &str)] = &[
    ("", "ReplicationController"),
    ("", "PodTemplate"),
    ("apps", "ReplicaSet"),
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
];

/// A Pod Security Standard, from the least to the most restrictive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Unrestricted.
    Privileged,
    /// Prevents known privilege escalations; allows the default pod.
    Baseline,
    /// Current pod hardening practice.
    Restricted,
}

impl Level {
    /// The level a label value names.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    /// The label value naming this level.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// A policy version: `latest` or `v1.X`. Every version is evaluated as `latest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// The newest policy.
    Latest,
    /// `v1.X`, with X.
    V1(u64),
}

impl Version {
    /// The version a label value names: `latest`, or `v1.` and a minor without
    /// leading zeros.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "latest" {
            return Some(Version::Latest);
        }
        let minor = s.strip_prefix("v1.")?;
        let digits = !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit());
        if !digits || (minor.len() > 1 && minor.starts_with('0')) {
            return None;
        }
        minor.parse().ok().map(Version::V1)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Latest => f.write_str("latest"),
            Version::V1(minor) => write!(f, "v1.{minor}"),
        }
    }
}

/// A level at a version: `restricted:latest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LevelVersion {
    /// The level.
    pub level: Level,
    /// The version.
    pub version: Version,
}

impl LevelVersion {
    const PRIVILEGED: LevelVersion = LevelVersion {
        level: Level::Privileged,
        version: Version::Latest,
    };
}

impl fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.level.as_str(), self.version)
    }
}

/// A namespace's policy: a level and version per mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// What is refused.
    pub enforce: LevelVersion,
    /// What is recorded in audit annotations.
    pub audit: LevelVersion,
    /// What is warned about.
    pub warn: LevelVersion,
}

impl Default for Policy {
    /// kube-apiserver's default: `privileged:latest` in every mode.
    fn default() -> Self {
        Policy {
            enforce: LevelVersion::PRIVILEGED,
            audit: LevelVersion::PRIVILEGED,
            warn: LevelVersion::PRIVILEGED,
        }
    }
}

impl Policy {
    /// The policy a namespace's labels choose, and what is wrong with them (kube's
    /// `api.PolicyToEvaluate`): an unknown level enforces `restricted` and audits and
    /// warns at `privileged`; an unknown version is `latest`.
    pub fn from_labels(labels: Option<&BTreeMap<String, String>>) -> (Self, Vec<FieldError>) {
        let mut policy = Policy::default();
        let mut errors = Vec::new();
        let Some(labels) = labels else {
            return (policy, errors);
        };
        let modes = [
            (
                &mut policy.enforce,
                ENFORCE_LABEL,
                ENFORCE_VERSION_LABEL,
                Level::Restricted,
            ),
            (
                &mut policy.audit,
                AUDIT_LABEL,
                AUDIT_VERSION_LABEL,
                Level::Privileged,
            ),
            (
                &mut policy.warn,
                WARN_LABEL,
                WARN_VERSION_LABEL,
                Level::Privileged,
            ),
        ];
        for (mode, level_label, version_label, fallback) in modes {
            if let Some(value) = labels.get(level_label) {
                mode.level = Level::parse(value).unwrap_or_else(|| {
                    errors.push(label_error(
                        level_label,
                        value,
                        "must be one of privileged, baseline, restricted",
                    ));
                    fallback
                });
            }
            if let Some(value) = labels.get(version_label) {
                mode.version = Version::parse(value).unwrap_or_else(|| {
                    errors.push(label_error(
                        version_label,
                        value,
                        "must be \"latest\" or \"v1.x\"",
                    ));
                    Version::Latest
                });
            }
        }
        (policy, errors)
    }

    fn all_privileged(&self) -> bool {
        [self.enforce, self.audit, self.warn]
            .iter()
            .all(|lv| lv.level == Level::Privileged)
    }
}

fn label_error(label: &str, value: &str, detail: &str) -> FieldError {
    FieldError {
        path: FieldPath::root().key("metadata").key("labels").key(label),
        reason: Reason::Invalid {
            value: value.to_string(),
            detail: detail.to_string(),
        },
    }
}

/// What PodSecurity admission says about an admitted write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Warnings for the reply's `Warning` headers.
    pub warnings: Vec<String>,
    /// Annotations for the request's audit event (`pod-security.kubernetes.io/...`).
    pub audit_annotations: BTreeMap<String, String>,
}

/// What PodSecurity admission reads of the cluster for one write, read before it (so
/// that the check itself, [`Context::admit`], can run inside a store update): the
/// labels of the object's namespace, and the pods of a namespace being updated.
#[derive(Clone, Debug, Default)]
pub struct Context {
    subresource: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    pods: Vec<Pod>,
}

impl Context {
    /// Reads what a write of `req` needs: nothing for the kinds PodSecurity does not
    /// look at; the namespace's labels (as far as this member has applied, as kube
    /// reads them from an informer) for pods and pod templates; the namespace's pods
    /// for an update of a namespace. `namespace`: the request's namespace when the
    /// caller has read it already (a create, after NamespaceLifecycle).
    pub async fn read(
        registry: &Registry,
        req: &ResourceRequest,
        namespace: Option<&AnyObject>,
    ) -> ApiResult<Self> {
        let kind = &req.kind;
        let sub = req.subresource.as_deref();
        let mut context = Context {
            subresource: req.subresource.clone(),
            ..Context::default()
        };
        if kind.custom {
            return Ok(context);
        }
        let is_pod = (kind.group, kind.kind) == ("", "Pod");
        if (kind.group, kind.kind) == ("", "Namespace") {
            if let (None, Some(name)) = (sub, req.name.as_deref()) {
                context.pods = namespace_pods(registry, name).await?;
            }
            return Ok(context);
        }
        let examined = if is_pod {
            sub.is_none_or(|s| !IGNORED_POD_SUBRESOURCES.contains(&s))
        } else {
            sub.is_none() && TEMPLATE_KINDS.contains(&(kind.group, kind.kind))
        };
        let Some(ns) = req.namespace.as_deref().filter(|_| examined) else {
            return Ok(context);
        };
        let read = match namespace {
            Some(known) => Some(known.clone()),
            None => {
                let namespaces = ObjectKind::of::<Namespace>();
                registry.find_locally(&namespaces, None, ns).await?
            }
        };
        if let Some(AnyObject::Namespace(n)) = read {
            context.labels = n.metadata.labels;
        }
        Ok(context)
    }

    /// Admits `new` (replacing `old`, for an update): `Err` with kube's 403 when a pod
    /// violates the enforced level, or its 422 for a namespace with unparsable labels;
    /// else the warnings and audit annotations.
    pub fn admit(&self, new: &AnyObject, old: Option<&AnyObject>) -> ApiResult<Decision> {
        match new {
            AnyObject::Namespace(ns) => self.admit_namespace(ns, old),
            AnyObject::Pod(pod) => self.admit_pod(pod, old),
            other => match pod_template(other) {
                Some(template) if self.subresource.is_none() => self.admit_template(template),
                _ => Ok(Decision::default()),
            },
        }
    }

    fn policy(&self) -> (Policy, Vec<FieldError>) {
        Policy::from_labels(self.labels.as_ref())
    }

    fn admit_pod(&self, pod: &Pod, old: Option<&AnyObject>) -> ApiResult<Decision> {
        let sub = self.subresource.as_deref();
        if sub.is_some_and(|s| IGNORED_POD_SUBRESOURCES.contains(&s)) {
            return Ok(Decision::default());
        }
        let (policy, errors) = self.policy();
        if errors.is_empty() && policy.all_privileged() {
            let mut decision = Decision::default();
            decision.audit_annotations.insert(
                ENFORCE_POLICY_ANNOTATION.to_string(),
                policy.enforce.to_string(),
            );
            return Ok(decision);
        }
        if let Some(AnyObject::Pod(old)) = old
            && !significant_update(pod, old)
        {
            return Ok(Decision::default());
        }
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        decide(&policy, &errors, &pod.metadata, spec_of(pod), Some(name))
    }

    fn admit_template(&self, template: &PodTemplateSpec) -> ApiResult<Decision> {
        let (policy, errors) = self.policy();
        let quiet = [policy.warn, policy.audit]
            .iter()
            .all(|lv| lv.level == Level::Privileged);
        if errors.is_empty() && quiet {
            return Ok(Decision::default());
        }
        let meta = template.metadata.as_ref().unwrap_or(&EMPTY_META);
        let spec = template.spec.as_ref().unwrap_or(&EMPTY_SPEC);
        decide(&policy, &errors, meta, spec, None)
    }

    fn admit_namespace(&self, ns: &Namespace, old: Option<&AnyObject>) -> ApiResult<Decision> {
        if self.subresource.is_some() {
            return Ok(Decision::default());
        }
        let name = ns.metadata.name.as_deref().unwrap_or_default();
        let (policy, errors) = Policy::from_labels(ns.metadata.labels.as_ref());
        let invalid = || ApiError::invalid(&ObjectKind::of::<Namespace>(), name, &errors);
        let Some(AnyObject::Namespace(old)) = old else {
            return if errors.is_empty() {
                Ok(Decision::default())
            } else {
                Err(invalid())
            };
        };
        let (old_policy, old_errors) = Policy::from_labels(old.metadata.labels.as_ref());
        if !errors.is_empty() && (old_errors.is_empty() || errors != old_errors) {
            return Err(invalid());
        }
        let (new, old) = (policy.enforce, old_policy.enforce);
        let relaxed = new.version == old.version && new.level <= old.level;
        if new == old || new.level == Level::Privileged || relaxed {
            return Ok(Decision::default());
        }
        Ok(Decision {
            warnings: existing_pod_warnings(name, new, &self.pods),
            ..Decision::default()
        })
    }
}

/// The pod template of a workload, if it has one.
fn pod_template(obj: &AnyObject) -> Option<&PodTemplateSpec> {
    match obj {
        AnyObject::PodTemplate(t) => t.template.as_ref(),
        AnyObject::ReplicationController(rc) => rc.spec.as_ref()?.template.as_ref(),
        AnyObject::ReplicaSet(rs) => rs.spec.as_ref()?.template.as_ref(),
        AnyObject::Deployment(d) => d.spec.as_ref().map(|s| &s.template),
        AnyObject::StatefulSet(s) => s.spec.as_ref().map(|s| &s.template),
        AnyObject::DaemonSet(d) => d.spec.as_ref().map(|s| &s.template),
        AnyObject::Job(j) => j.spec.as_ref().map(|s| &s.template),
        AnyObject::CronJob(c) => c
            .spec
            .as_ref()?
            .job_template
            .spec
            .as_ref()
            .map(|s| &s.template),
        _ => None,
    }
}

/// kube's `EvaluatePod`: the enforced level for a pod (`enforce_as` its name), then
/// audit and warn.
fn decide(
    policy: &Policy,
    errors: &[FieldError],
    meta: &ObjectMeta,
    spec: &PodSpec,
    enforce_as: Option<&str>,
) -> ApiResult<Decision> {
    let mut decision = Decision::default();
    if !errors.is_empty() {
        decision.audit_annotations.insert(
            ERROR_ANNOTATION.to_string(),
            format!("Failed to parse policy: {}", aggregate(errors)),
        );
    }
    if let Some(name) = enforce_as {
        decision.audit_annotations.insert(
            ENFORCE_POLICY_ANNOTATION.to_string(),
            policy.enforce.to_string(),
        );
        let violations = evaluate(policy.enforce.level, meta, spec);
        if !violations.is_empty() {
            return Err(forbidden(name, policy.enforce, &violations));
        }
    }
    let audit = evaluate(policy.audit.level, meta, spec);
    if !audit.is_empty() {
        decision.audit_annotations.insert(
            AUDIT_VIOLATIONS_ANNOTATION.to_string(),
            would_violate(policy.audit, &audit),
        );
    }
    let warn = evaluate(policy.warn.level, meta, spec);
    if !warn.is_empty() {
        decision.warnings.push(would_violate(policy.warn, &warn));
    }
    Ok(decision)
}

/// Field errors as kube's `ErrorList.ToAggregate` prints them.
fn aggregate(errors: &[FieldError]) -> String {
    let list: Vec<String> = errors.iter().map(FieldError::kubernetes_message).collect();
    match list.as_slice() {
        [one] => one.clone(),
        _ => format!("[{}]", list.join(", ")),
    }
}

/// `privileged (container "c" must not ...), hostPort (...)`: kube's `ForbiddenDetail`.
pub fn forbidden_detail(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| {
            if v.detail.is_empty() {
                v.reason.clone()
            } else {
                format!("{} ({})", v.reason, v.detail)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn would_violate(lv: LevelVersion, violations: &[Violation]) -> String {
    format!(
        "would violate PodSecurity {}: {}",
        checks::go_quote(&lv.to_string()),
        forbidden_detail(violations)
    )
}

/// kube's refusal: `pods "web" is forbidden: violates PodSecurity "restricted:latest": ...`.
fn forbidden(name: &str, lv: LevelVersion, violations: &[Violation]) -> ApiError {
    let pods = ObjectKind::of::<Pod>();
    let mut error = ApiError::forbidden(format!(
        "{} is forbidden: violates PodSecurity {}: {}",
        crate::status::qualified(&pods, name),
        checks::go_quote(&lv.to_string()),
        forbidden_detail(violations)
    ));
    error.details = Some(Box::new(StatusDetails {
        group: Some(String::new()),
        kind: Some(pods.plural.to_string()),
        name: Some(name.to_string()),
        ..StatusDetails::default()
    }));
    error
}

/// What an absent pod spec or template metadata reads as.
static EMPTY_SPEC: LazyLock<PodSpec> = LazyLock::new(PodSpec::default);
static EMPTY_META: LazyLock<ObjectMeta> = LazyLock::new(ObjectMeta::default);

fn spec_of(pod: &Pod) -> &PodSpec {
    pod.spec.as_ref().unwrap_or(&EMPTY_SPEC)
}

const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

fn annotation<'a>(pod: &'a Pod, key: &str) -> &'a str {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map_or("", String::as_str)
}

/// Whether an update of `old` to `pod` can change what the checks find (kube's
/// `isSignificantPodUpdate`): the pod's seccomp annotation, the number of containers
/// or init containers, a container's image or seccomp annotation, an ephemeral
/// container added or changed.
pub fn significant_update(pod: &Pod, old: &Pod) -> bool {
    if annotation(pod, SECCOMP_POD_ANNOTATION) != annotation(old, SECCOMP_POD_ANNOTATION) {
        return true;
    }
    let (spec, old_spec) = (spec_of(pod), spec_of(old));
    let container_changed = |name: &str, image: Option<&String>, old_image: Option<&String>| {
        let key = format!("{SECCOMP_CONTAINER_PREFIX}{name}");
        image.map_or("", String::as_str) != old_image.map_or("", String::as_str)
            || annotation(pod, &key) != annotation(old, &key)
    };
    let (init, old_init) = (
        spec.init_containers.as_deref().unwrap_or_default(),
        old_spec.init_containers.as_deref().unwrap_or_default(),
    );
    if spec.containers.len() != old_spec.containers.len() || init.len() != old_init.len() {
        return true;
    }
    let regular = spec.containers.iter().zip(&old_spec.containers);
    let any_changed = regular
        .chain(init.iter().zip(old_init))
        .any(|(c, o)| container_changed(&c.name, c.image.as_ref(), o.image.as_ref()));
    if any_changed {
        return true;
    }
    let old_ephemeral = old_spec.ephemeral_containers.as_deref().unwrap_or_default();
    spec.ephemeral_containers.iter().flatten().any(|c| {
        match old_ephemeral.iter().find(|o| o.name == c.name) {
            None => true,
            Some(o) => container_changed(&c.name, c.image.as_ref(), o.image.as_ref()),
        }
    })
}

/// The pods stored in namespace `ns`.
async fn namespace_pods(registry: &Registry, ns: &str) -> ApiResult<Vec<Pod>> {
    let pods = ObjectKind::of::<Pod>();
    let page = registry
        .page(&pods, &pods.storage_prefix(Some(ns)), &[], 0, 0, false)
        .await?;
    Ok(page
        .kvs
        .iter()
        .filter_map(|kv| match registry::decode(&pods, kv) {
            Ok(AnyObject::Pod(p)) => Some(*p),
            _ => None,
        })
        .collect())
}

/// The pods to check first (kube's `prioritizePods`): those without a controller and
/// the first of each controller's, then the other pods of controllers already seen.
fn prioritized(pods: &[Pod]) -> Vec<&Pod> {
    let mut first = Vec::new();
    let mut later = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for pod in pods {
        let controller = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true));
        match controller {
            Some(c) if !seen.insert(c.uid.as_str()) => later.push(pod),
            _ => first.push(pod),
        }
    }
    first.extend(later);
    first
}

/// kube's `EvaluatePodsInNamespace`: what a namespace's new enforce level would refuse
/// of the pods it holds, one warning per distinct set of reasons, naming the first pod
/// (by name) and how many others share it.
fn existing_pod_warnings(ns: &str, enforce: LevelVersion, pods: &[Pod]) -> Vec<String> {
    let mut order = prioritized(pods);
    let total = order.len();
    order.truncate(MAX_PODS_TO_CHECK);
    let checked = order.len();
    let mut reasons_seen: Vec<String> = Vec::new();
    let mut counts: HashMap<String, (String, usize)> = HashMap::new();
    for pod in order {
        let violations = evaluate(enforce.level, &pod.metadata, spec_of(pod));
        if violations.is_empty() {
            continue;
        }
        let reason = violations
            .iter()
            .map(|v| v.reason.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let name = pod.metadata.name.clone().unwrap_or_default();
        match counts.get_mut(&reason) {
            Some((first, count)) => {
                if name < *first {
                    *first = name;
                }
                *count += 1;
            }
            None => {
                reasons_seen.push(reason.clone());
                counts.insert(reason, (name, 1));
            }
        }
    }
    let mut warnings = Vec::new();
    if checked < total {
        warnings.push(format!(
            "new PodSecurity enforce level only checked against the first {checked} of {total} existing pods"
        ));
    }
    if !reasons_seen.is_empty() {
        warnings.push(format!(
            "existing pods in namespace {} violate the new PodSecurity enforce level {}",
            checks::go_quote(ns),
            checks::go_quote(&enforce.to_string())
        ));
    }
    let mut per_reason: Vec<String> = reasons_seen
        .into_iter()
        .map(|reason| {
            let (name, count) = counts.get(&reason).cloned().unwrap_or_default();
            match count {
                0 | 1 => format!("{name}: {reason}"),
                2 => format!("{name} (and 1 other pod): {reason}"),
                n => format!("{name} (and {} other pods): {reason}", n - 1),
            }
        })
        .collect();
    per_reason.sort();
    warnings.extend(per_reason);
    warnings
}

//! The audit policy: kube-apiserver's `audit.k8s.io/v1` `Policy` file, checked when it
//! is read, and the level (and the stages left out) it gives each request.
//!
//! The rules are tried in order and the first that matches decides, as
//! `k8s.io/apiserver/pkg/audit/policy/checker.go` does; a request no rule matches is
//! not logged (level `None`). A rule matches when every field it sets matches: `users`,
//! `userGroups` (any of the user's groups), `verbs`, then either `resources` and
//! `namespaces` (resource requests only) or `nonResourceURLs` (the others only).

use std::collections::BTreeSet;

use rk8s_api::manifest::Diagnostic;
use rk8s_api::path::FieldPath;
use rk8s_api::validation::{FieldError, Reason};
use rk8s_api::yaml::Positions;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How much of a request the log keeps (`audit.k8s.io/v1` `Level`), in increasing
/// order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
pub enum Level {
    /// Nothing: the request is not logged.
    None,
    /// Who asked what, when, and the answer's status; no bodies.
    Metadata,
    /// As `Metadata`, and the request's body (resource requests only).
    Request,
    /// As `Request`, and the response's body (resource requests only).
    RequestResponse,
}

impl Level {
    /// The level's name as the policy and the log spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }
}

/// When in a request's handling an event is written (`audit.k8s.io/v1` `Stage`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
pub enum Stage {
    /// As soon as the request is authenticated, before it is handled.
    RequestReceived,
    /// Once the response's head is sent, before its body: long-running requests
    /// (watches, logs, exec) and refused authentications only.
    ResponseStarted,
    /// Once the response is complete.
    ResponseComplete,
    /// When the handler panicked (accepted in policies; rk8s' handlers return errors).
    Panic,
}

impl Stage {
    fn bit(self) -> u8 {
        match self {
            Stage::RequestReceived => 1,
            Stage::ResponseStarted => 2,
            Stage::ResponseComplete => 4,
            Stage::Panic => 8,
        }
    }
}

/// A set of stages (those a rule leaves out).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stages(u8);

impl Stages {
    /// The set of `stages`.
    pub fn of(stages: &[Stage]) -> Self {
        Stages(stages.iter().fold(0, |acc, s| acc | s.bit()))
    }

    /// Whether `stage` is in the set.
    pub fn contains(self, stage: Stage) -> bool {
        self.0 & stage.bit() != 0
    }

    fn union(self, other: Stages) -> Stages {
        Stages(self.0 | other.0)
    }
}

/// The user a request is authenticated as, as the policy matches it and the log
/// writes it (`authentication.k8s.io/v1` `UserInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct User {
    /// The user name (`admin`, `system:node:n1`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// The user's uid, when it has one (a ServiceAccount's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The user's groups.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl User {
    /// Kubernetes' anonymous user: who asks for the endpoints served without
    /// credentials (`/healthz`, `/version`) without giving any.
    pub fn anonymous() -> Self {
        User {
            username: "system:anonymous".into(),
            uid: None,
            groups: vec!["system:unauthenticated".into()],
        }
    }
}

/// What a resource request addresses, as authorization sees it (and the log's
/// `objectRef`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resource {
    /// The API group (`""` for core).
    pub group: String,
    /// The version in the path.
    pub version: String,
    /// The resource (`pods`).
    pub resource: String,
    /// The subresource (`log`, `status`), or `""`.
    pub subresource: String,
    /// The namespace, `""` for cluster-scoped requests.
    pub namespace: String,
    /// The object's name, `""` for collections.
    pub name: String,
}

/// A request as the policy sees it.
#[derive(Clone, Copy, Debug)]
pub struct Attributes<'a> {
    /// Who asks; `None` when authentication failed.
    pub user: Option<&'a User>,
    /// The verb: Kubernetes' for resource requests, the lowercase HTTP method for the
    /// others.
    pub verb: &'a str,
    /// The URL path.
    pub path: &'a str,
    /// What a resource request addresses (`None` for the others).
    pub resource: Option<&'a Resource>,
}

/// What the policy decided for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// How much is logged.
    pub level: Level,
    /// The stages not logged (the rule's and the policy's).
    pub omit_stages: Stages,
    /// Whether `metadata.managedFields` is left out of logged bodies.
    pub omit_managed_fields: bool,
}

/// One checked rule of a policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    level: Level,
    users: Vec<String>,
    user_groups: Vec<String>,
    verbs: Vec<String>,
    resources: Vec<GroupResources>,
    namespaces: Vec<String>,
    non_resource_urls: Vec<String>,
    omit_stages: Stages,
    omit_managed_fields: Option<bool>,
}

/// Resources of one API group that a rule names.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GroupResources {
    #[serde(default)]
    group: String,
    #[serde(default, deserialize_with = "nullable")]
    resources: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    resource_names: Vec<String>,
}

/// A checked audit policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    rules: Vec<Rule>,
    omit_stages: Stages,
}

/// The policy file as written (`audit.k8s.io/v1` `Policy`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicyFile {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    /// Read and ignored, as kube-apiserver ignores a policy's `ObjectMeta`.
    #[serde(default, rename = "metadata")]
    _metadata: Option<Value>,
    #[serde(default, deserialize_with = "nullable")]
    rules: Vec<RuleFile>,
    #[serde(default, deserialize_with = "nullable")]
    omit_stages: Vec<Stage>,
    #[serde(default)]
    omit_managed_fields: bool,
}

/// A rule as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleFile {
    level: Level,
    #[serde(default, deserialize_with = "nullable")]
    users: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    user_groups: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    verbs: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    resources: Vec<GroupResources>,
    #[serde(default, deserialize_with = "nullable")]
    namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs", deserialize_with = "nullable")]
    non_resource_urls: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    omit_stages: Vec<Stage>,
    #[serde(default)]
    omit_managed_fields: Option<bool>,
}

/// A list written `null` (`users:` with nothing after it) is an empty one, as Go's
/// decoder reads it.
fn nullable<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// The only policy version kube-apiserver 1.33 reads.
pub const API_VERSION: &str = "audit.k8s.io/v1";

impl Policy {
    /// Reads the policy in `text` (YAML or JSON) of the file named `file`; every
    /// problem is reported with the file, line, column and field.
    pub fn load(file: &str, text: &str) -> Result<Policy, Vec<Diagnostic>> {
        let (raw, positions): (PolicyFile, Positions) =
            rk8s_api::formats::decode_single(file, text)?;
        let at = |e: FieldError| Diagnostic {
            file: file.to_string(),
            location: positions.locate(&e.path),
            message: e.to_string(),
            field: Some(e.path),
        };
        let errors = check(&raw);
        if !errors.is_empty() {
            return Err(errors.into_iter().map(at).collect());
        }
        let omit_stages = Stages::of(&raw.omit_stages);
        let rules = raw
            .rules
            .into_iter()
            .map(|r| Rule {
                level: r.level,
                users: r.users,
                user_groups: r.user_groups,
                verbs: r.verbs,
                resources: r.resources,
                namespaces: r.namespaces,
                non_resource_urls: r.non_resource_urls,
                // Kubernetes' `NewChecker`: a rule omits the policy's stages too.
                omit_stages: Stages::of(&r.omit_stages).union(omit_stages),
                // A rule's own setting wins over the policy's.
                omit_managed_fields: Some(r.omit_managed_fields.unwrap_or(raw.omit_managed_fields)),
            })
            .collect();
        Ok(Policy { rules, omit_stages })
    }

    /// The level and omitted stages for a request: the first matching rule's, else
    /// `None`.
    pub fn decide(&self, attrs: &Attributes<'_>) -> Decision {
        match self.rules.iter().find(|r| r.matches(attrs)) {
            Some(rule) => Decision {
                level: rule.level,
                omit_stages: rule.omit_stages,
                omit_managed_fields: rule.omit_managed_fields.unwrap_or(false),
            },
            None => Decision {
                level: Level::None,
                omit_stages: self.omit_stages,
                omit_managed_fields: false,
            },
        }
    }
}

/// What is wrong with a policy as written (kube-apiserver's `ValidatePolicy`, the
/// version check of its `LoadPolicyFromBytes`, and the refusal of an empty policy).
fn check(raw: &PolicyFile) -> Vec<FieldError> {
    let mut errors = rk8s_api::validation::type_meta_errors(
        &raw.api_version,
        &raw.kind,
        (API_VERSION, "Policy"),
    );
    let mut push = |path: FieldPath, reason: Reason| errors.push(FieldError { path, reason });
    let root = FieldPath::root();
    if raw.rules.is_empty() {
        push(
            root.key("rules"),
            Reason::Message("a policy needs at least one rule (no rule: nothing is logged)".into()),
        );
    }
    for (i, rule) in raw.rules.iter().enumerate() {
        let at = root.key("rules").index(i);
        for (j, url) in rule.non_resource_urls.iter().enumerate() {
            if url == "*" {
                continue;
            }
            let invalid = |detail: &str| Reason::Invalid {
                value: url.clone(),
                detail: detail.into(),
            };
            if !url.starts_with('/') {
                push(
                    at.key("nonResourceURLs").index(j),
                    invalid("non-resource URL rules must begin with a '/' character"),
                );
            }
            if url[..url.len().saturating_sub(1)].contains('*') {
                push(
                    at.key("nonResourceURLs").index(j),
                    invalid(
                        "non-resource URL wildcards '*' must be the final character of the rule",
                    ),
                );
            }
        }
        if !rule.non_resource_urls.is_empty()
            && (!rule.resources.is_empty() || !rule.namespaces.is_empty())
        {
            push(
                at.key("nonResourceURLs"),
                Reason::Message(
                    "rules cannot apply to both regular resources and non-resource URLs".into(),
                ),
            );
        }
        for (j, group) in rule.resources.iter().enumerate() {
            let at = at.key("resources").index(j);
            if !group.group.is_empty() {
                let problems = rk8s_api::names::dns1123_subdomain(&group.group);
                if !problems.is_empty() {
                    push(
                        at.key("group"),
                        Reason::Invalid {
                            value: group.group.clone(),
                            detail: problems.join(", "),
                        },
                    );
                }
            }
            if !group.resource_names.is_empty() && group.resources.is_empty() {
                push(
                    at.key("resourceNames"),
                    Reason::Message("using resourceNames requires at least one resource".into()),
                );
            }
        }
    }
    errors
}

impl Rule {
    fn matches(&self, attrs: &Attributes<'_>) -> bool {
        if !self.users.is_empty() && !attrs.user.is_some_and(|u| self.users.contains(&u.username)) {
            return false;
        }
        if !self.user_groups.is_empty()
            && !attrs
                .user
                .is_some_and(|u| u.groups.iter().any(|g| self.user_groups.contains(g)))
        {
            return false;
        }
        if !self.verbs.is_empty() && !self.verbs.iter().any(|v| v == attrs.verb) {
            return false;
        }
        if !self.namespaces.is_empty() || !self.resources.is_empty() {
            return attrs.resource.is_some_and(|r| self.matches_resource(r));
        }
        if !self.non_resource_urls.is_empty() {
            return attrs.resource.is_none()
                && self
                    .non_resource_urls
                    .iter()
                    .any(|spec| path_matches(attrs.path, spec));
        }
        true
    }

    fn matches_resource(&self, r: &Resource) -> bool {
        // A cluster-scoped request has the namespace "".
        if !self.namespaces.is_empty() && !self.namespaces.contains(&r.namespace) {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        let combined = if r.subresource.is_empty() {
            r.resource.clone()
        } else {
            format!("{}/{}", r.resource, r.subresource)
        };
        self.resources
            .iter()
            .filter(|g| g.group == r.group)
            .any(|g| {
                if g.resources.is_empty() {
                    return true;
                }
                if !g.resource_names.is_empty() && !g.resource_names.contains(&r.name) {
                    return false;
                }
                g.resources.iter().any(|spec| {
                    spec == "*"
                        || *spec == combined
                        // `*/scale`: that subresource of every resource.
                        || (!r.subresource.is_empty()
                            && spec.strip_prefix("*/") == Some(r.subresource.as_str()))
                        // `pods/*`: the resource and all its subresources.
                        || spec.strip_suffix("/*") == Some(r.resource.as_str())
                })
            })
    }
}

/// Whether `path` matches a rule's URL: `*`, the path itself, or a prefix ending in
/// `*` (`/healthz*`).
fn path_matches(path: &str, spec: &str) -> bool {
    if spec == "*" || spec == path {
        return true;
    }
    spec.strip_suffix('*')
        .is_some_and(|prefix| path.starts_with(prefix.trim_end_matches('*')))
}

/// The distinct names of `levels` in use, for a log line at start.
pub fn summary(policy: &Policy) -> String {
    let levels: BTreeSet<&str> = policy.rules.iter().map(|r| r.level.as_str()).collect();
    format!(
        "{} rule(s), levels {}",
        policy.rules.len(),
        levels.into_iter().collect::<Vec<_>>().join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  nonResourceURLs: ["/healthz*", /version]
- level: None
  users: ["system:kube-proxy"]
  verbs: [watch]
  resources: [{group: "", resources: [endpoints, services]}]
- level: Metadata
  userGroups: [system:nodes]
  omitStages: [ResponseStarted]
- level: RequestResponse
  resources:
  - group: ""
    resources: [configmaps]
    resourceNames: [settings]
- level: Request
  resources: [{group: apps, resources: ["*/scale"]}]
- level: Metadata
  resources: [{group: "", resources: ["pods/log", "secrets"]}]
- level: Request
  namespaces: [kube-system]
- level: Metadata
  resources: [{group: "", resources: ["pods/*"]}]
- level: RequestResponse
  verbs: [create]
  omitManagedFields: true
"#;

    fn policy() -> Policy {
        Policy::load("policy.yaml", POLICY).unwrap()
    }

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            username: name.into(),
            uid: None,
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn resource(group: &str, path: &str, namespace: &str, name: &str) -> Resource {
        let (resource, subresource) = path.split_once('/').unwrap_or((path, ""));
        Resource {
            group: group.into(),
            version: "v1".into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn level(u: &User, verb: &str, r: Option<&Resource>, path: &str) -> Level {
        policy()
            .decide(&Attributes {
                user: Some(u),
                verb,
                path,
                resource: r,
            })
            .level
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_a_final_star() {
        let admin = user("admin", &["system:masters"]);
        assert_eq!(level(&admin, "get", None, "/healthz"), Level::None);
        assert_eq!(level(&admin, "get", None, "/healthz/ping"), Level::None);
        assert_eq!(level(&admin, "get", None, "/version"), Level::None);
        // No other rule names URLs, and the resource rules never match them: the last
        // rule (verb create) does not either.
        assert_eq!(level(&admin, "get", None, "/metrics"), Level::None);
        // A resource request never matches a URL rule: `pods/*` decides.
        let pods = resource("", "pods", "default", "");
        assert_eq!(
            level(&admin, "get", Some(&pods), "/healthz"),
            Level::Metadata
        );
    }

    #[test]
    fn users_verbs_and_resources_must_all_match() {
        let proxy = user("system:kube-proxy", &["system:authenticated"]);
        let endpoints = resource("", "endpoints", "default", "");
        assert_eq!(
            level(&proxy, "watch", Some(&endpoints), "/api/v1/endpoints"),
            Level::None
        );
        // Another verb: the next rules decide (none matches a list of endpoints in
        // default by this user).
        assert_eq!(
            level(&proxy, "list", Some(&endpoints), "/api/v1/endpoints"),
            Level::None
        );
        let someone = user("alice", &["system:authenticated"]);
        assert_eq!(
            level(&someone, "create", Some(&endpoints), "/api/v1/endpoints"),
            Level::RequestResponse
        );
    }

    #[test]
    fn any_of_the_users_groups_matches_user_groups() {
        let node = user("system:node:n1", &["system:nodes", "system:authenticated"]);
        let pods = resource("", "pods", "default", "web");
        let decision = policy().decide(&Attributes {
            user: Some(&node),
            verb: "get",
            path: "/api/v1/namespaces/default/pods/web",
            resource: Some(&pods),
        });
        assert_eq!(decision.level, Level::Metadata);
        // The rule's stages and the policy's.
        assert!(decision.omit_stages.contains(Stage::ResponseStarted));
        assert!(decision.omit_stages.contains(Stage::RequestReceived));
        assert!(!decision.omit_stages.contains(Stage::ResponseComplete));
        // Without a user (a refused authentication) no user or group rule matches.
        let none = policy().decide(&Attributes {
            user: None,
            verb: "get",
            path: "/api/v1/namespaces/default/pods/web",
            resource: Some(&pods),
        });
        assert_eq!(none.level, Level::Metadata, "the pods/* rule");
        assert!(!none.omit_stages.contains(Stage::ResponseStarted));
        assert!(none.omit_stages.contains(Stage::RequestReceived));
    }

    #[test]
    fn resource_names_groups_subresources_and_wildcards() {
        let alice = user("alice", &["system:authenticated"]);
        let settings = resource("", "configmaps", "default", "settings");
        let other = resource("", "configmaps", "default", "other");
        assert_eq!(
            level(&alice, "get", Some(&settings), "/"),
            Level::RequestResponse
        );
        assert_eq!(level(&alice, "get", Some(&other), "/"), Level::None);
        // `*/scale` in apps, and not in another group.
        let scale = resource("apps", "deployments/scale", "default", "web");
        assert_eq!(level(&alice, "update", Some(&scale), "/"), Level::Request);
        let core_scale = resource("", "replicationcontrollers/scale", "default", "web");
        assert_eq!(level(&alice, "update", Some(&core_scale), "/"), Level::None);
        // `pods/log` names the subresource only: pods themselves fall to `pods/*`.
        let log = resource("", "pods/log", "default", "web");
        assert_eq!(level(&alice, "get", Some(&log), "/"), Level::Metadata);
        let pods = resource("", "pods", "default", "web");
        assert_eq!(level(&alice, "get", Some(&pods), "/"), Level::Metadata);
        let status = resource("", "pods/status", "default", "web");
        assert_eq!(level(&alice, "patch", Some(&status), "/"), Level::Metadata);
        // The `pods/*` rule covers the subresources, not other resources.
        let services = resource("", "services", "default", "web");
        assert_eq!(level(&alice, "get", Some(&services), "/"), Level::None);
    }

    #[test]
    fn namespaces_match_resource_requests_only() {
        let alice = user("alice", &[]);
        let in_system = resource("", "services", "kube-system", "dns");
        assert_eq!(level(&alice, "get", Some(&in_system), "/"), Level::Request);
        let cluster = resource("", "nodes", "", "n1");
        assert_eq!(level(&alice, "get", Some(&cluster), "/"), Level::None);
        assert_eq!(level(&alice, "get", None, "/apis"), Level::None);
    }

    #[test]
    fn no_rule_means_none_with_the_policys_stages() {
        let decision = policy().decide(&Attributes {
            user: None,
            verb: "get",
            path: "/openapi/v2",
            resource: None,
        });
        assert_eq!(decision.level, Level::None);
        assert!(decision.omit_stages.contains(Stage::RequestReceived));
    }

    #[test]
    fn omit_managed_fields_of_a_rule_wins_over_the_policys() {
        let text = r#"{"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
            "omitManagedFields": true,
            "rules": [{"level": "Request", "verbs": ["get"], "omitManagedFields": false},
                      {"level": "Metadata"}]}"#;
        let policy = Policy::load("p.json", text).unwrap();
        let attrs = |verb| Attributes {
            user: None,
            verb,
            path: "/api",
            resource: None,
        };
        assert!(!policy.decide(&attrs("get")).omit_managed_fields);
        assert!(policy.decide(&attrs("list")).omit_managed_fields);
    }

    fn errors(text: &str) -> String {
        Policy::load("audit.yaml", text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_bad_policy_names_the_file_line_and_field() {
        let head = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n";
        assert_eq!(
            errors(&format!("{head}- level: Metadata\n- level: Everything\n")),
            "audit.yaml:5:3: rules[1].level: unknown variant `Everything`, expected one of `None`, `Metadata`, `Request`, `RequestResponse`"
        );
        assert_eq!(
            errors(&format!("{head}- level: None\n  resource: [pods]\n")),
            "audit.yaml:5:3: rules[0].resource: unknown field `resource`, expected one of `level`, `users`, `userGroups`, `verbs`, `resources`, `namespaces`, `nonResourceURLs`, `omitStages`, `omitManagedFields`"
        );
        assert_eq!(
            errors(&format!(
                "{head}- level: None\n  nonResourceURLs: [healthz, \"/a*b\"]\n  namespaces: [x]\n"
            )),
            [
                "audit.yaml:5:21: rules[0].nonResourceURLs[0]: invalid value \"healthz\": non-resource URL rules must begin with a '/' character",
                "audit.yaml:5:30: rules[0].nonResourceURLs[1]: invalid value \"/a*b\": non-resource URL wildcards '*' must be the final character of the rule",
                "audit.yaml:5:3: rules[0].nonResourceURLs: rules cannot apply to both regular resources and non-resource URLs",
            ]
            .join("\n")
        );
        assert_eq!(
            errors(&format!(
                "{head}- level: None\n  resources:\n  - group: Apps/v1\n    resourceNames: [x]\n"
            )),
            [
                "audit.yaml:6:5: rules[0].resources[0].group: invalid value \"Apps/v1\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')",
                "audit.yaml:7:5: rules[0].resources[0].resourceNames: using resourceNames requires at least one resource",
            ]
            .join("\n")
        );
        assert_eq!(
            errors(&format!("{head}- level: None\n  omitStages: [Done]\n")),
            "audit.yaml:5:16: rules[0].omitStages[0]: unknown variant `Done`, expected one of `RequestReceived`, `ResponseStarted`, `ResponseComplete`, `Panic`"
        );
        assert_eq!(
            errors("apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules: []\n"),
            [
                "audit.yaml:1:1: apiVersion: unsupported value \"audit.k8s.io/v1beta1\": supported values: \"audit.k8s.io/v1\"",
                "audit.yaml:3:1: rules: a policy needs at least one rule (no rule: nothing is logged)",
            ]
            .join("\n")
        );
        assert_eq!(errors(""), "audit.yaml: the file is empty");
    }

    #[test]
    fn the_policy_in_the_configuration_reference_loads() {
        let doc = include_str!("../../../docs/configuration.md");
        let section = doc.split("### The audit log").nth(1).unwrap();
        let policy = section
            .split("```yaml\n")
            .map(|block| block.split("```").next().unwrap())
            .find(|block| block.starts_with("apiVersion: audit.k8s.io/v1"))
            .unwrap();
        let policy = Policy::load("configuration.md", policy).unwrap();
        assert_eq!(policy.rules.len(), 5);
    }

    #[test]
    fn null_lists_are_empty_lists() {
        let text = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages:\nrules:\n- level: Metadata\n  users:\n";
        let policy = Policy::load("p.yaml", text).unwrap();
        assert_eq!(
            policy
                .decide(&Attributes {
                    user: None,
                    verb: "get",
                    path: "/",
                    resource: None
                })
                .level,
            Level::Metadata
        );
        assert_eq!(summary(&policy), "1 rule(s), levels Metadata");
    }
}

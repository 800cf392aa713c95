//! A container's environment as kubelet makes it (`makeEnvironmentVariables`): the
//! service variables ([`super::service_env`]), the `envFrom` sources in order, then
//! `env` (a later variable replaces an earlier one of the same name), values from
//! ConfigMaps, Secrets and the pod's own fields, and `$(NAME)` references in `value`s,
//! `command` and `args` expanded.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, ResourceFieldSelector};
use rk8s_api::quantity::Quantity;

use super::Allocatable;
use super::inputs::{Missing, PodInputs, Read};
use super::record::PodRecord;

/// The value of the pod's field `path` (a `fieldRef`'s `fieldPath`), `pod_ip` being
/// its address; `None` for a path this runtime does not answer.
pub fn field(record: &PodRecord, pod_ip: &str, path: &str) -> Option<String> {
    let meta = &record.pod.metadata;
    let spec = record.pod.spec.as_ref();
    let keyed = |prefix: &str| Some(path.strip_prefix(prefix)?.strip_suffix("']")?.to_string());
    let map_line = |map: Option<&BTreeMap<String, String>>| {
        let lines: Vec<String> = map
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        lines.join("\n")
    };
    Some(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => record.uid.clone(),
        "metadata.labels" => map_line(meta.labels.as_ref()),
        "metadata.annotations" => map_line(meta.annotations.as_ref()),
        "status.podIP" | "status.podIPs" => pod_ip.to_string(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        _ => {
            if let Some(key) = keyed("metadata.labels['") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(&key).cloned())
                    .unwrap_or_default()
            } else if let Some(key) = keyed("metadata.annotations['") {
                let annotations = meta.annotations.as_ref();
                annotations
                    .and_then(|a| a.get(&key).cloned())
                    .unwrap_or_default()
            } else {
                return None;
            }
        }
    })
}

/// Where a value comes from when it is not written out, for errors.
enum Source<'a> {
    ConfigMap(&'a str),
    Secret(&'a str),
}

impl Source<'_> {
    /// The object's entries, or why there are none; `Ok(None)` when it is missing
    /// and optional.
    fn entries(
        &self,
        inputs: &PodInputs,
        optional: bool,
    ) -> Result<Option<BTreeMap<String, String>>, String> {
        let read = match self {
            Source::ConfigMap(name) => lookup(&inputs.config_maps, name, "configmap")
                .map(|c| c.data.clone().unwrap_or_default()),
            Source::Secret(name) => lookup(&inputs.secrets, name, "secret").map(|s| {
                let data = s.data.clone().unwrap_or_default();
                data.into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect()
            }),
        };
        match read {
            Ok(entries) => Ok(Some(entries)),
            Err(Missing::NotFound(_)) if optional => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn missing_key(&self, key: &str, namespace: &str) -> String {
        match self {
            Source::ConfigMap(name) => {
                format!("couldn't find key {key} in ConfigMap {namespace}/{name}")
            }
            Source::Secret(name) => format!("couldn't find key {key} in Secret {namespace}/{name}"),
        }
    }
}

pub(super) fn lookup<'a, T>(
    read: &'a BTreeMap<String, Read<T>>,
    name: &str,
    what: &str,
) -> Result<&'a T, Missing> {
    match read.get(name) {
        Some(Ok(object)) => Ok(object),
        Some(Err(e)) => Err(e.clone()),
        None => Err(Missing::NotFound(format!("{what} \"{name}\" not found"))),
    }
}

/// A `resourceFieldRef`'s value for the container it names (or `container`, in an
/// env var where it names none) of the pod `spec`, as kubelet reads it
/// (`ExtractContainerResourceValue`): the request or limit divided by `divisor`
/// (default 1) and rounded up; a CPU, memory or ephemeral-storage limit the container
/// does not set reads as what the node offers (`allocatable`; ephemeral storage is
/// not known here, so asking for it without a limit is refused).
pub fn resource(
    spec: &PodSpec,
    container: &str,
    selector: &ResourceFieldSelector,
    allocatable: Allocatable,
) -> Result<String, String> {
    let name = selector
        .container_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(container);
    let c = spec
        .containers
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| format!("resourceFieldRef: no container {name:?} in the pod"))?;
    let parse = |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| {
        q.0.parse::<Quantity>()
            .map_err(|e| format!("resourceFieldRef {:?}: {:?}: {e}", selector.resource, q.0))
    };
    let divisor = match &selector.divisor {
        Some(d) => Some(parse(d)?).filter(|d| d.milli_value() != 0),
        None => None,
    };
    let (kind, resource) = selector
        .resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported container resource : {}", selector.resource))?;
    let resources = c.resources.clone().unwrap_or_default();
    let set = match kind {
        "limits" => resources.limits,
        "requests" => resources.requests,
        _ => {
            return Err(format!(
                "unsupported container resource : {}",
                selector.resource
            ));
        }
    };
    let given = set
        .as_ref()
        .and_then(|m| m.get(resource))
        .map(parse)
        .transpose()?;
    let known = matches!(resource, "cpu" | "memory" | "ephemeral-storage")
        || resource.starts_with("hugepages-");
    if !known {
        return Err(format!(
            "unsupported container resource : {}",
            selector.resource
        ));
    }
    let ceil_div = |value: i64, by: i64| -> i64 {
        if by <= 0 {
            return value;
        }
        value / by + i64::from(value % by > 0)
    };
    if resource == "cpu" {
        let milli = match given {
            Some(q) => q.milli_value(),
            None if kind == "limits" => allocatable.cpu_milli,
            None => 0,
        };
        let by = divisor.map_or(1000, |d| d.milli_value());
        return Ok(ceil_div(milli, by).to_string());
    }
    let value = match (given, kind, resource) {
        (Some(q), _, _) => q.value(),
        (None, "limits", "memory") => allocatable.memory,
        (None, "limits", "ephemeral-storage") => {
            return Err(format!(
                "resourceFieldRef {:?}: container {name:?} sets no ephemeral-storage limit, and the node's is not known here",
                selector.resource
            ));
        }
        (None, _, _) => 0,
    };
    Ok(ceil_div(value, divisor.map_or(1, |d| d.value())).to_string())
}

/// `$(NAME)` replaced by `vars`' value of NAME where it has one (kept as written
/// otherwise); `$$` is a `$`, as Kubernetes' `third_party/forked/golang/expansion`.
pub fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(open) = after.strip_prefix('(')
            && let Some(close) = open.find(')')
        {
            let name = &open[..close];
            match vars.get(name) {
                Some(value) => out.push_str(value),
                None => out.push_str(&format!("$({name})")),
            }
            rest = &open[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// How a container's `valueFrom` reads the pod itself: `field` answers a
/// `fieldRef`'s path (`None`: not supported), `resource` a `resourceFieldRef`.
pub struct PodFields<'a> {
    /// A `fieldRef`'s value.
    pub field: &'a dyn Fn(&str) -> Option<String>,
    /// A `resourceFieldRef`'s value.
    pub resource: &'a dyn Fn(&ResourceFieldSelector) -> Result<String, String>,
}

/// The variables of container `c`, in order: the pod's service variables
/// (`services`) it does not set itself, then those it sets (`$(VAR)` in a value
/// expanded from those before it and the service variables), reading the pod's own
/// fields through `fields`.
pub fn container_env(
    c: &Container,
    inputs: &PodInputs,
    namespace: &str,
    fields: &PodFields<'_>,
    services: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    // Kubelet: `$(VAR)` reads the container's variables, then the service ones; the
    // service ones are set unless the container sets the same name. Starting from
    // them gives both (a name set again moves to the container's place).
    let mut env: Vec<(String, String)> = services.to_vec();
    let set = |env: &mut Vec<(String, String)>, name: String, value: String| {
        env.retain(|(n, _)| *n != name);
        env.push((name, value));
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let (source, optional) = match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), _) => (Source::ConfigMap(&r.name), r.optional.unwrap_or(false)),
            (None, Some(r)) => (Source::Secret(&r.name), r.optional.unwrap_or(false)),
            (None, None) => continue,
        };
        for (key, value) in source.entries(inputs, optional)?.unwrap_or_default() {
            let name = format!("{prefix}{key}");
            if !name.is_empty() && !name.contains('=') {
                set(&mut env, name, value);
            }
        }
    }
    for var in c.env.iter().flatten() {
        if let Some(value) = value_of(var, inputs, namespace, &env, fields)? {
            set(&mut env, var.name.clone(), value);
        }
    }
    Ok(env)
}

/// The value of `var` (`None`: an optional one whose source is missing).
fn value_of(
    var: &EnvVar,
    inputs: &PodInputs,
    namespace: &str,
    env: &[(String, String)],
    fields: &PodFields<'_>,
) -> Result<Option<String>, String> {
    let Some(from) = &var.value_from else {
        let defined: BTreeMap<String, String> = env.iter().cloned().collect();
        return Ok(Some(expand(
            var.value.as_deref().unwrap_or_default(),
            &defined,
        )));
    };
    if let Some(r) = &from.resource_field_ref {
        return (fields.resource)(r)
            .map(Some)
            .map_err(|e| format!("env {}: {e}", var.name));
    }
    if let Some(f) = &from.field_ref {
        return (fields.field)(&f.field_path).map(Some).ok_or_else(|| {
            format!(
                "env {}: fieldRef {:?} is not supported",
                var.name, f.field_path
            )
        });
    }
    let (source, key, optional) = match (&from.config_map_key_ref, &from.secret_key_ref) {
        (Some(r), _) => (
            Source::ConfigMap(&r.name),
            &r.key,
            r.optional.unwrap_or(false),
        ),
        (None, Some(r)) => (Source::Secret(&r.name), &r.key, r.optional.unwrap_or(false)),
        (None, None) => {
            return Err(format!(
                "env {}: only valueFrom.fieldRef, resourceFieldRef, configMapKeyRef and secretKeyRef are supported here",
                var.name
            ));
        }
    };
    let Some(entries) = source.entries(inputs, optional)? else {
        return Ok(None);
    };
    match entries.get(key) {
        Some(value) => Ok(Some(value.clone())),
        None if optional => Ok(None),
        None => Err(source.missing_key(key, namespace)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(json: serde_json::Value) -> Container {
        serde_json::from_value(json).unwrap()
    }

    fn inputs() -> PodInputs {
        let cm = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "settings"}, "data": {"LEVEL": "debug", "MODE": "fast", "bad=key": "x"}
        }))
        .unwrap();
        let secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db"}, "data": {"password": "czNjcmV0"}
        }))
        .unwrap();
        PodInputs {
            config_maps: [
                ("settings".to_string(), Ok(cm)),
                (
                    "gone".to_string(),
                    Err(Missing::NotFound(
                        "configmap \"gone\" not found".to_string(),
                    )),
                ),
                (
                    "away".to_string(),
                    Err(Missing::Unreadable(
                        "configmap \"away\": connection refused".to_string(),
                    )),
                ),
            ]
            .into(),
            secrets: [("db".to_string(), Ok(secret))].into(),
            ..Default::default()
        }
    }

    fn field(path: &str) -> Option<String> {
        (path == "metadata.name").then(|| "web-1".to_string())
    }

    fn env_of(c: &Container) -> Result<Vec<(String, String)>, String> {
        env_with_services(c, &[])
    }

    fn env_with_services(
        c: &Container,
        services: &[(String, String)],
    ) -> Result<Vec<(String, String)>, String> {
        let spec = PodSpec {
            containers: vec![c.clone()],
            ..Default::default()
        };
        let node = Allocatable {
            cpu_milli: 2000,
            memory: 8 << 30,
        };
        let resource = |r: &ResourceFieldSelector| super::resource(&spec, &c.name, r, node);
        let fields = PodFields {
            field: &field,
            resource: &resource,
        };
        container_env(c, &inputs(), "team", &fields, services)
    }

    #[test]
    fn service_variables_come_first_and_the_containers_own_win() {
        let services: Vec<(String, String)> = [
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("WEB_SERVICE_HOST", "10.96.0.20"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        let c = container(serde_json::json!({
            "name": "app",
            "env": [
                {"name": "WEB_SERVICE_HOST", "value": "web.example"},
                {"name": "API", "value": "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"}
            ]
        }));
        let env = env_with_services(&c, &services).unwrap();
        let got: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            got,
            [
                "KUBERNETES_SERVICE_HOST=10.96.0.1",
                "KUBERNETES_SERVICE_PORT=443",
                "WEB_SERVICE_HOST=web.example",
                "API=https://10.96.0.1:443"
            ]
        );
        // envFrom replaces a service variable too.
        let from = container(serde_json::json!({"name": "app",
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "KUBERNETES_SERVICE_"}]}));
        let services = [("KUBERNETES_SERVICE_MODE".to_string(), "x".to_string())];
        let env = env_with_services(&from, &services).unwrap();
        assert_eq!(
            env.iter()
                .filter(|(k, _)| k == "KUBERNETES_SERVICE_MODE")
                .count(),
            1
        );
        assert!(env.contains(&("KUBERNETES_SERVICE_MODE".to_string(), "fast".to_string())));
    }

    #[test]
    fn resource_fields_read_requests_and_limits_rounded_up_by_their_divisor() {
        let c = container(serde_json::json!({
            "name": "app",
            "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                          "limits": {"memory": "100M"}},
            "env": [
                {"name": "CPU_REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
                {"name": "CPU_REQ_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
                {"name": "MEM_REQ_MI", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory", "divisor": "1Mi"}}},
                {"name": "MEM_LIM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                {"name": "CPU_LIM", "valueFrom": {"resourceFieldRef": {"containerName": "app", "resource": "limits.cpu"}}},
            ],
        }));
        let env = env_of(&c).unwrap();
        let get = |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        // 250m of a core rounds up to 1; 100 MB is 95.4 MiB, rounded up.
        assert_eq!(get("CPU_REQ"), Some("1"));
        assert_eq!(get("CPU_REQ_M"), Some("250"));
        assert_eq!(get("MEM_REQ_MI"), Some("64"));
        assert_eq!(get("MEM_LIM_MI"), Some("96"));
        // No CPU limit: the node's allocatable (2 cores).
        assert_eq!(get("CPU_LIM"), Some("2"));
        let bad = container(serde_json::json!({"name": "app", "env": [
            {"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}]}));
        assert_eq!(
            env_of(&bad).unwrap_err(),
            "env X: unsupported container resource : limits.gpu"
        );
    }

    #[test]
    fn env_from_then_env_with_references_and_expansion() {
        let c = container(serde_json::json!({
            "name": "app",
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "APP_"},
                        {"configMapRef": {"name": "gone", "optional": true}}],
            "env": [
                {"name": "APP_MODE", "value": "slow"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "LEVEL"}}},
                {"name": "NOPE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "x", "optional": true}}},
                {"name": "URL", "value": "http://$(POD):80/$(UNSET)/$$(POD)"},
                {"name": "SEARCH", "value": "$(PATH)"}
            ]
        }));
        let env = env_of(&c).unwrap();
        let got: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            got,
            [
                "APP_LEVEL=debug",
                "APP_MODE=slow",
                "POD=web-1",
                "DB_PASSWORD=s3cret",
                "LEVEL=debug",
                "URL=http://web-1:80/$(UNSET)/$(POD)",
                "SEARCH=$(PATH)"
            ]
        );
    }

    #[test]
    fn missing_sources_and_keys_are_kubelets_errors() {
        let missing_map = container(
            serde_json::json!({"name": "a", "envFrom": [{"configMapRef": {"name": "gone"}}]}),
        );
        assert_eq!(
            env_of(&missing_map).unwrap_err(),
            "configmap \"gone\" not found"
        );
        // Optional skips what does not exist, not what could not be read.
        let away = container(
            serde_json::json!({"name": "a", "envFrom": [{"configMapRef": {"name": "away", "optional": true}}]}),
        );
        assert_eq!(
            env_of(&away).unwrap_err(),
            "configmap \"away\": connection refused"
        );
        let unread = container(serde_json::json!({"name": "a", "env": [
            {"name": "X", "valueFrom": {"secretKeyRef": {"name": "other", "key": "k"}}}]}));
        assert_eq!(env_of(&unread).unwrap_err(), "secret \"other\" not found");
        let missing_key = container(serde_json::json!({"name": "a", "env": [
            {"name": "X", "valueFrom": {"secretKeyRef": {"name": "db", "key": "user"}}}]}));
        assert_eq!(
            env_of(&missing_key).unwrap_err(),
            "couldn't find key user in Secret team/db"
        );
        let unsupported = container(serde_json::json!({"name": "a", "env": [
            {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}]}));
        assert!(env_of(&unsupported).unwrap_err().contains("status.hostIP"));
    }

    #[test]
    fn expansion_leaves_unknown_and_unclosed_references() {
        let vars: BTreeMap<String, String> = [("A".to_string(), "1".to_string())].into();
        assert_eq!(expand("$(A)-$(B)-$$(A)-$(A-$", &vars), "1-$(B)-$(A)-$(A-$");
        assert_eq!(expand("no refs", &vars), "no refs");
    }
}

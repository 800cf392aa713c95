//! The subset of the Compose specification that `rk8sctl compose` runs: services with
//! image, command/entrypoint, environment, ports, volumes (bind and named), networks,
//! depends_on and container_name, plus top-level volumes and networks.
//!
//! Anything else is refused with its file:line and the list of supported keys, rather
//! than silently ignored. `version` is accepted and ignored, as the specification says.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use serde::Deserialize;
use serde_json::Value;

use crate::manifest::Diagnostic;
use crate::path::FieldPath;
use crate::validation::{FieldError, Reason};

use super::{decode_single, diagnostic};

/// A Compose file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeFile {
    /// Project name (otherwise the caller uses the directory name or `-p`).
    #[serde(default)]
    pub name: Option<String>,
    /// Obsolete in the Compose specification: accepted and ignored.
    #[serde(default)]
    pub version: Option<Value>,
    /// The services, by name.
    pub services: BTreeMap<String, Service>,
    /// Named volumes.
    #[serde(default)]
    pub volumes: BTreeMap<String, Option<TopLevelVolume>>,
    /// Networks (`default` exists without being declared).
    #[serde(default)]
    pub networks: BTreeMap<String, Option<TopLevelNetwork>>,
}

/// A top-level named volume.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopLevelVolume {
    /// Only `local` is supported.
    #[serde(default)]
    pub driver: Option<String>,
    /// Name on the host, if not `<project>_<key>`.
    #[serde(default)]
    pub name: Option<String>,
    /// Created outside Compose: never created or removed by it.
    #[serde(default)]
    pub external: Option<bool>,
    /// Labels.
    #[serde(default)]
    pub labels: Option<KeyValues>,
}

/// A top-level network.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopLevelNetwork {
    /// Only `bridge` is supported.
    #[serde(default)]
    pub driver: Option<String>,
    /// Name on the host, if not `<project>_<key>`.
    #[serde(default)]
    pub name: Option<String>,
    /// Created outside Compose.
    #[serde(default)]
    pub external: Option<bool>,
    /// No route out of the network.
    #[serde(default)]
    pub internal: Option<bool>,
    /// Labels.
    #[serde(default)]
    pub labels: Option<KeyValues>,
}

/// One service.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Image reference or OCI layout path (`build` is not supported).
    #[serde(default)]
    pub image: Option<String>,
    /// Fixed container name instead of `<project>-<service>-1`.
    #[serde(default)]
    pub container_name: Option<String>,
    /// Replaces the image's cmd.
    #[serde(default)]
    pub command: Option<Command>,
    /// Replaces the image's entrypoint.
    #[serde(default)]
    pub entrypoint: Option<Command>,
    /// Environment (`KEY: value` or `- KEY=value`; a key alone takes the value from
    /// the environment of `rk8sctl compose up`).
    #[serde(default)]
    pub environment: Option<Environment>,
    /// Published ports.
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    /// Mounts.
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
    /// Networks joined (`default` when none).
    #[serde(default)]
    pub networks: Option<ServiceNetworks>,
    /// Services to start first.
    #[serde(default)]
    pub depends_on: Option<DependsOn>,
    /// Working directory.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// `user[:group]` to run as.
    #[serde(default)]
    pub user: Option<String>,
    /// Hostname.
    #[serde(default)]
    pub hostname: Option<String>,
    /// `no`, `always`, `on-failure[:N]` or `unless-stopped`.
    #[serde(default)]
    pub restart: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: Option<KeyValues>,
}

/// A command, written as a list or as one string split like a shell would.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(try_from = "Value")]
pub struct Command(pub Vec<String>);

impl TryFrom<Value> for Command {
    type Error = String;

    fn try_from(v: Value) -> Result<Self, String> {
        match v {
            Value::String(s) => shell_words::split(&s)
                .map(Command)
                .map_err(|e| format!("cannot split \"{s}\" into words: {e}")),
            Value::Array(items) => items
                .into_iter()
                .map(|i| {
                    scalar_string(&i)
                        .ok_or_else(|| "command list entries must be strings".to_string())
                })
                .collect::<Result<_, _>>()
                .map(Command),
            _ => Err("must be a string or a list of strings".into()),
        }
    }
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `KEY: value` pairs, written as a map or as a list of `KEY=value`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(try_from = "Value")]
pub struct KeyValues(pub BTreeMap<String, String>);

impl TryFrom<Value> for KeyValues {
    type Error = String;

    fn try_from(v: Value) -> Result<Self, String> {
        let env = Environment::try_from(v)?;
        Ok(KeyValues(
            env.0
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect(),
        ))
    }
}

/// Environment variables; `None` means "take it from the caller's environment".
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(try_from = "Value")]
pub struct Environment(pub BTreeMap<String, Option<String>>);

impl TryFrom<Value> for Environment {
    type Error = String;

    fn try_from(v: Value) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    let value = match &v {
                        Value::Null => None,
                        other => Some(scalar_string(other).ok_or_else(|| {
                            format!("the value of \"{k}\" must be a string, number or boolean")
                        })?),
                    };
                    out.insert(k, value);
                }
            }
            Value::Array(items) => {
                for item in items {
                    let Value::String(s) = item else {
                        return Err("list entries must be strings like KEY=value".into());
                    };
                    match s.split_once('=') {
                        Some((k, v)) => out.insert(k.to_string(), Some(v.to_string())),
                        None => out.insert(s, None),
                    };
                }
            }
            _ => return Err("must be a map or a list of KEY=value".into()),
        }
        Ok(Environment(out))
    }
}

/// A transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
}

/// A port published on the host.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Value")]
pub struct PortMapping {
    /// Host address to bind (all addresses when unset).
    pub host_ip: Option<IpAddr>,
    /// Host port (none: only exposed to other services).
    pub published: Option<u16>,
    /// Port in the container.
    pub target: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

fn parse_port(s: &str) -> Result<u16, String> {
    if s.contains('-') {
        return Err(format!("port ranges ({s}) are not supported"));
    }
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("\"{s}\" is not a port number (1-65535)")),
    }
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    match s {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        other => Err(format!(
            "unsupported protocol \"{other}\": supported: tcp, udp"
        )),
    }
}

impl TryFrom<Value> for PortMapping {
    type Error = String;

    fn try_from(v: Value) -> Result<Self, String> {
        match v {
            Value::Number(n) => Ok(PortMapping {
                host_ip: None,
                published: None,
                target: parse_port(&n.to_string())?,
                protocol: Protocol::Tcp,
            }),
            Value::String(s) => {
                // [HOST_IP:][PUBLISHED:]TARGET[/PROTOCOL]; an IPv6 host is in brackets.
                let (spec, protocol) = match s.rsplit_once('/') {
                    Some((spec, proto)) => (spec, parse_protocol(proto)?),
                    None => (s.as_str(), Protocol::Tcp),
                };
                let (host_ip, rest) = match spec.strip_prefix('[') {
                    Some(v6) => {
                        let (ip, rest) = v6
                            .split_once("]:")
                            .ok_or_else(|| format!("\"{s}\": expected [IPv6]:PUBLISHED:TARGET"))?;
                        (Some(ip), rest)
                    }
                    None => {
                        let parts: Vec<&str> = spec.split(':').collect();
                        if parts.len() == 3 {
                            (Some(parts[0]), &spec[parts[0].len() + 1..])
                        } else {
                            (None, spec)
                        }
                    }
                };
                let host_ip = host_ip
                    .map(|ip| {
                        ip.parse::<IpAddr>()
                            .map_err(|_| format!("\"{ip}\" is not an IP address"))
                    })
                    .transpose()?;
                let (published, target) = match rest.split_once(':') {
                    Some(("", t)) => (None, t),
                    Some((p, t)) => (Some(parse_port(p)?), t),
                    None => (None, rest),
                };
                Ok(PortMapping {
                    host_ip,
                    published,
                    target: parse_port(target)?,
                    protocol,
                })
            }
            Value::Object(mut m) => {
                let known = [
                    "target",
                    "published",
                    "host_ip",
                    "protocol",
                    "mode",
                    "name",
                    "app_protocol",
                ];
                if let Some(k) = m.keys().find(|k| !known.contains(&k.as_str())) {
                    return Err(format!(
                        "unknown field `{k}`, expected one of `{}`",
                        known.join("`, `")
                    ));
                }
                let field = |m: &mut serde_json::Map<String, Value>, k: &str| {
                    m.remove(k).and_then(|v| scalar_string(&v))
                };
                let target = field(&mut m, "target").ok_or("`target` is required")?;
                Ok(PortMapping {
                    target: parse_port(&target)?,
                    published: field(&mut m, "published")
                        .map(|p| parse_port(&p))
                        .transpose()?,
                    host_ip: field(&mut m, "host_ip")
                        .map(|ip| {
                            ip.parse()
                                .map_err(|_| format!("\"{ip}\" is not an IP address"))
                        })
                        .transpose()?,
                    protocol: field(&mut m, "protocol")
                        .map(|p| parse_protocol(&p))
                        .transpose()?
                        .unwrap_or(Protocol::Tcp),
                })
            }
            _ => Err("must be a port string (\"8080:80\"), a number, or a map".into()),
        }
    }
}

/// What a mount's source is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountKind {
    /// A host path.
    Bind,
    /// A named (or, without a source, anonymous) volume.
    Volume,
    /// A tmpfs.
    Tmpfs,
}

/// A mount into a service's container.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Value")]
pub struct VolumeMount {
    /// Bind, volume or tmpfs.
    pub kind: MountKind,
    /// Host path (bind) or volume name; `None` for anonymous volumes and tmpfs.
    pub source: Option<String>,
    /// Path in the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
}

impl TryFrom<Value> for VolumeMount {
    type Error = String;

    fn try_from(v: Value) -> Result<Self, String> {
        match v {
            Value::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                let (source, target, mode) = match parts.as_slice() {
                    [t] => (None, *t, None),
                    [s, t] => (Some(*s), *t, None),
                    [s, t, m] => (Some(*s), *t, Some(*m)),
                    _ => return Err(format!("\"{s}\": expected [SOURCE:]TARGET[:ro|rw]")),
                };
                let read_only = match mode {
                    None | Some("rw") => false,
                    Some("ro") => true,
                    Some(m) => {
                        return Err(format!("unsupported mount mode \"{m}\": supported: ro, rw"));
                    }
                };
                let kind = match source {
                    Some(s) if s.starts_with(['/', '.', '~']) => MountKind::Bind,
                    _ => MountKind::Volume,
                };
                Ok(VolumeMount {
                    kind,
                    source: source.map(str::to_string),
                    target: target.to_string(),
                    read_only,
                })
            }
            Value::Object(m) => {
                let known = [
                    "type",
                    "source",
                    "target",
                    "read_only",
                    "bind",
                    "volume",
                    "tmpfs",
                ];
                if let Some(k) = m.keys().find(|k| !known.contains(&k.as_str())) {
                    return Err(format!(
                        "unknown field `{k}`, expected one of `{}`",
                        known.join("`, `")
                    ));
                }
                let get = |k: &str| m.get(k).and_then(scalar_string);
                let kind = match get("type").as_deref() {
                    Some("bind") => MountKind::Bind,
                    Some("volume") | None => MountKind::Volume,
                    Some("tmpfs") => MountKind::Tmpfs,
                    Some(t) => {
                        return Err(format!(
                            "unsupported mount type \"{t}\": supported: bind, volume, tmpfs"
                        ));
                    }
                };
                Ok(VolumeMount {
                    kind,
                    source: get("source"),
                    target: get("target").ok_or("`target` is required")?,
                    read_only: m.get("read_only").and_then(Value::as_bool).unwrap_or(false),
                })
            }
            _ => Err("must be a string (\"SOURCE:TARGET[:ro]\") or a map".into()),
        }
    }
}

/// The networks a service joins, with its extra DNS aliases on each.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(try_from = "Value")]
pub struct ServiceNetworks(pub BTreeMap<String, Vec<String>>);

impl TryFrom<Value> for ServiceNetworks {
    type Error = String;

    fn try_from(v: Value) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        match v {
            Value::Array(items) => {
                for i in items {
                    let name = scalar_string(&i).ok_or("list entries must be network names")?;
                    out.insert(name, Vec::new());
                }
            }
            Value::Object(map) => {
                for (name, cfg) in map {
                    let aliases = match cfg {
                        Value::Null => Vec::new(),
                        Value::Object(c) => {
                            if let Some(k) = c.keys().find(|k| *k != "aliases") {
                                return Err(format!(
                                    "unknown field `{k}` in network \"{name}\", expected `aliases`"
                                ));
                            }
                            match c.get("aliases") {
                                Some(Value::Array(a)) => {
                                    a.iter().filter_map(scalar_string).collect()
                                }
                                None => Vec::new(),
                                Some(_) => return Err("`aliases` must be a list".into()),
                            }
                        }
                        _ => return Err(format!("network \"{name}\" must map to null or a map")),
                    };
                    out.insert(name, aliases);
                }
            }
            _ => return Err("must be a list or a map of network names".into()),
        }
        Ok(ServiceNetworks(out))
    }
}

/// When a dependency counts as ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Its container has started.
    Started,
    /// Its healthcheck passes.
    Healthy,
    /// It has exited with status 0.
    CompletedSuccessfully,
}

/// Services that must be started first, and when they count as ready.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(try_from = "Value")]
pub struct DependsOn(pub BTreeMap<String, Condition>);

impl TryFrom<Value> for DependsOn {
    type Error = String;

    fn try_from(v: Value) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        match v {
            Value::Array(items) => {
                for i in items {
                    let name = scalar_string(&i).ok_or("list entries must be service names")?;
                    out.insert(name, Condition::Started);
                }
            }
            Value::Object(map) => {
                for (name, cfg) in map {
                    let condition = match cfg.get("condition").and_then(Value::as_str) {
                        None | Some("service_started") => Condition::Started,
                        Some("service_healthy") => Condition::Healthy,
                        Some("service_completed_successfully") => Condition::CompletedSuccessfully,
                        Some(c) => {
                            return Err(format!(
                                "unsupported condition \"{c}\": supported: service_started, service_healthy, service_completed_successfully"
                            ));
                        }
                    };
                    out.insert(name, condition);
                }
            }
            _ => return Err("must be a list or a map of service names".into()),
        }
        Ok(DependsOn(out))
    }
}

const RESTART_POLICIES: &[&str] = &["no", "always", "on-failure", "unless-stopped"];

/// Compose's rule for service names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn valid_service_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Turns a directory name into a project name as Compose does: lowercase, keeping only
/// `[a-z0-9_-]`.
pub fn normalize_project_name(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect()
}

impl Service {
    /// The networks this service joins (`default` when none is named).
    pub fn network_names(&self) -> Vec<String> {
        match &self.networks {
            Some(n) if !n.0.is_empty() => n.0.keys().cloned().collect(),
            _ => vec!["default".to_string()],
        }
    }
}

impl ComposeFile {
    /// The order to start services in: every service after those it depends on, ties
    /// broken by name. Fails on a dependency cycle, naming it.
    pub fn start_order(&self) -> Result<Vec<String>, String> {
        let mut order = Vec::new();
        let mut done = HashSet::new();
        let mut visiting = Vec::new();
        fn visit(
            file: &ComposeFile,
            name: &str,
            done: &mut HashSet<String>,
            visiting: &mut Vec<String>,
            order: &mut Vec<String>,
        ) -> Result<(), String> {
            if done.contains(name) {
                return Ok(());
            }
            if let Some(i) = visiting.iter().position(|v| v == name) {
                let mut cycle = visiting[i..].to_vec();
                cycle.push(name.to_string());
                return Err(format!("dependency cycle: {}", cycle.join(" -> ")));
            }
            visiting.push(name.to_string());
            if let Some(deps) = file.services.get(name).and_then(|s| s.depends_on.as_ref()) {
                for dep in deps.0.keys() {
                    if file.services.contains_key(dep) {
                        visit(file, dep, done, visiting, order)?;
                    }
                }
            }
            visiting.pop();
            done.insert(name.to_string());
            order.push(name.to_string());
            Ok(())
        }
        for name in self.services.keys() {
            visit(self, name, &mut done, &mut visiting, &mut order)?;
        }
        Ok(order)
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let mut push = |path: FieldPath, msg: String| {
            errs.push(FieldError {
                path,
                reason: Reason::Message(msg),
            })
        };
        let root = FieldPath::root();
        if self.services.is_empty() {
            push(
                root.key("services"),
                "must define at least one service".into(),
            );
        }
        let mut container_names = HashMap::new();
        let mut published = HashSet::new();
        for (name, svc) in &self.services {
            let p = root.key("services").key(name.clone());
            if !valid_service_name(name) {
                push(
                    p.clone(),
                    format!(
                        "invalid service name \"{name}\": must match [a-zA-Z0-9][a-zA-Z0-9_.-]*"
                    ),
                );
            }
            if svc.image.as_deref().is_none_or(str::is_empty) {
                push(
                    p.key("image"),
                    "required value (rk8s runs images; `build` is not supported)".into(),
                );
            }
            if let Some(cn) = &svc.container_name
                && let Some(other) = container_names.insert(cn.clone(), name.clone())
            {
                push(
                    p.key("container_name"),
                    format!("duplicate value \"{cn}\" (also used by service \"{other}\")"),
                );
            }
            if let Some(r) = &svc.restart {
                let base = r.split(':').next().unwrap_or_default();
                if !RESTART_POLICIES.contains(&base) {
                    push(
                        p.key("restart"),
                        format!(
                            "unsupported value \"{r}\": supported values: no, always, on-failure[:N], unless-stopped"
                        ),
                    );
                }
            }
            for (i, port) in svc.ports.iter().enumerate() {
                if let Some(host) = port.published
                    && !published.insert((port.host_ip, host, port.protocol))
                {
                    push(
                        p.key("ports").index(i),
                        format!("host port {host} is published twice"),
                    );
                }
            }
            for (i, m) in svc.volumes.iter().enumerate() {
                let mp = p.key("volumes").index(i);
                if !m.target.starts_with('/') {
                    push(
                        mp.clone(),
                        format!("target \"{}\" must be an absolute path", m.target),
                    );
                }
                if m.kind == MountKind::Volume
                    && let Some(source) = &m.source
                    && !self.volumes.contains_key(source)
                {
                    push(
                        mp,
                        format!(
                            "service \"{name}\" refers to undefined volume \"{source}\": declare it under the top-level `volumes`"
                        ),
                    );
                }
            }
            if let Some(n) = &svc.networks {
                for net in n.0.keys() {
                    if net != "default" && !self.networks.contains_key(net) {
                        push(
                            p.key("networks"),
                            format!("service \"{name}\" refers to undefined network \"{net}\""),
                        );
                    }
                }
            }
            if let Some(deps) = &svc.depends_on {
                for dep in deps.0.keys() {
                    if !self.services.contains_key(dep) {
                        push(
                            p.key("depends_on"),
                            format!("service \"{name}\" depends on undefined service \"{dep}\""),
                        );
                    }
                }
            }
        }
        for (name, v) in &self.volumes {
            if let Some(driver) = v.as_ref().and_then(|v| v.driver.as_deref())
                && driver != "local"
            {
                push(
                    root.key("volumes").key(name.clone()).key("driver"),
                    format!("unsupported driver \"{driver}\": supported: local"),
                );
            }
        }
        for (name, n) in &self.networks {
            if let Some(driver) = n.as_ref().and_then(|n| n.driver.as_deref())
                && driver != "bridge"
            {
                push(
                    root.key("networks").key(name.clone()).key("driver"),
                    format!("unsupported driver \"{driver}\": supported: bridge"),
                );
            }
        }
        if let Err(cycle) = self.start_order() {
            push(root.key("services"), cycle);
        }
        errs
    }
}

/// Decodes and validates a Compose file.
pub fn decode_compose(file: &str, text: &str) -> Result<ComposeFile, Vec<Diagnostic>> {
    let (compose, positions): (ComposeFile, _) = decode_single(file, text)?;
    let mut diags: Vec<Diagnostic> = compose
        .validate()
        .iter()
        .map(|e| diagnostic(file, &positions, e))
        .collect();
    diags.sort_by_key(|d| d.location);
    if diags.is_empty() {
        Ok(compose)
    } else {
        Err(diags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = r#"
name: shop
services:
  web:
    image: busybox:1.36
    command: httpd -f -p 8080 -h "/www root"
    ports: ["8080:8080", "127.0.0.1:9090:90/udp", 3000]
    environment:
      DB_HOST: db
      DEBUG: 1
      FROM_SHELL:
    volumes:
      - ./site:/www:ro
      - data:/data
    depends_on: [db]
  db:
    image: busybox:1.36
    entrypoint: ["sleep"]
    command: ["3600"]
    environment: ["A=1", "B"]
    networks:
      back:
        aliases: [database]
    depends_on:
      cache: {condition: service_started}
  cache:
    image: busybox:1.36
volumes:
  data:
networks:
  back:
"#;

    #[test]
    fn a_typical_app_decodes() {
        let c = decode_compose("compose.yaml", APP).unwrap();
        let web = &c.services["web"];
        assert_eq!(
            web.command.as_ref().unwrap().0,
            ["httpd", "-f", "-p", "8080", "-h", "/www root"]
        );
        assert_eq!(web.ports[1].host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(web.ports[1].protocol, Protocol::Udp);
        assert_eq!(web.ports[2].published, None);
        let env = &web.environment.as_ref().unwrap().0;
        assert_eq!(env["DEBUG"].as_deref(), Some("1"));
        assert_eq!(env["FROM_SHELL"], None);
        assert_eq!(web.volumes[0].kind, MountKind::Bind);
        assert!(web.volumes[0].read_only);
        assert_eq!(web.volumes[1].kind, MountKind::Volume);
        assert_eq!(web.network_names(), ["default"]);
        assert_eq!(c.start_order().unwrap(), ["cache", "db", "web"]);
    }

    #[test]
    fn unknown_keys_name_the_line_and_the_supported_keys() {
        let text = "services:\n  web:\n    image: x\n    build: .\n";
        let err = decode_compose("compose.yaml", text).unwrap_err();
        let msg = err[0].to_string();
        assert!(msg.starts_with("compose.yaml:4:5: services.web.build: unknown field `build`, expected one of `image`, `container_name`"), "{msg}");
    }

    #[test]
    fn references_and_cycles_are_checked() {
        let text = "services:\n  a:\n    image: x\n    depends_on: [b]\n    volumes: [\"v:/v\"]\n  b:\n    image: x\n    depends_on: [a]\n    networks: [n]\n";
        let msgs: Vec<String> = decode_compose("c.yaml", text)
            .unwrap_err()
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(
            msgs,
            [
                "c.yaml:1:1: services: dependency cycle: a -> b -> a",
                "c.yaml:5:15: services.a.volumes[0]: service \"a\" refers to undefined volume \"v\": declare it under the top-level `volumes`",
                "c.yaml:9:5: services.b.networks: service \"b\" refers to undefined network \"n\"",
            ]
        );
    }

    #[test]
    fn bad_ports_say_why() {
        let text = "services:\n  a:\n    image: x\n    ports: [\"80:99999\"]\n";
        let msg = decode_compose("c.yaml", text).unwrap_err()[0].to_string();
        assert_eq!(
            msg,
            "c.yaml:4:13: services.a.ports[0]: \"99999\" is not a port number (1-65535)"
        );
    }
}

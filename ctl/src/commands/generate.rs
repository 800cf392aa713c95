//! The commands that write an object for the user, as kubectl's generators write
//! them: `run` (a Pod), `expose` (a Service for a workload, Service or Pod), and
//! `set image` (containers' images of a workload or Pod). Each can show what it
//! would send instead (`--dry-run=client|server`, `-o yaml`).

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use rk8s_api::ObjectKind;
use serde_json::{Value, json};

use super::get::{Output, print_structured};
use super::{Global, one, with_kind};
use crate::cluster::{Cluster, explain};

/// `--dry-run`: nothing sent (`client`), or sent and not stored (`server`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DryRun {
    /// Send the object.
    #[default]
    None,
    /// Only print what would be sent.
    Client,
    /// Send it with `dryRun=All`: checked and defaulted by the server, not stored.
    Server,
}

/// How a generated object is sent and shown.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Emit {
    /// `client`: print the object only; `server`: have the server check it and store
    /// nothing.
    #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "client")]
    pub dry_run: DryRun,
    /// Print the object (yaml, json, name, jsonpath=…, custom-columns=…) instead of a
    /// line saying what was done.
    #[arg(short = 'o', long, value_parser = Output::parse)]
    pub output: Option<Output>,
}

impl Emit {
    fn suffix(&self) -> &'static str {
        match self.dry_run {
            DryRun::None => "",
            DryRun::Client => " (dry run)",
            DryRun::Server => " (server dry run)",
        }
    }

    /// Creates `obj` of `kind` (as `--dry-run` says) and reports it with `verb`.
    async fn create(
        &self,
        cluster: &Cluster,
        kind: &ObjectKind,
        obj: Value,
        verb: &str,
    ) -> Result<()> {
        let obj = match self.dry_run {
            DryRun::Client => obj,
            DryRun::None | DryRun::Server => {
                let params = PostParams {
                    dry_run: self.dry_run == DryRun::Server,
                    field_manager: Some("rk8sctl".into()),
                };
                let typed: DynamicObject = serde_json::from_value(obj)?;
                let made = cluster
                    .api(kind, Some(&cluster.namespace))
                    .create(&params, &typed)
                    .await
                    .map_err(explain)?;
                serde_json::to_value(made)?
            }
        };
        self.report(kind, obj, verb)
    }

    fn report(&self, kind: &ObjectKind, obj: Value, verb: &str) -> Result<()> {
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        match &self.output {
            None => {
                println!(
                    "{}/{name} {verb}{}",
                    kind.qualified_singular(),
                    self.suffix()
                );
                Ok(())
            }
            Some(output) => print_structured(
                Some(output),
                &[(kind.qualified_singular(), with_kind(obj, kind))],
                true,
                false,
            ),
        }
    }
}

/// A pod's restart policy (`run --restart`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "PascalCase")]
pub enum Restart {
    /// Restarted whenever it ends.
    Always,
    /// Restarted when it fails.
    OnFailure,
    /// Never restarted.
    Never,
}

/// `run`'s arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// The pod's name (and its container's).
    pub name: String,
    /// The container image.
    #[arg(long)]
    pub image: String,
    /// A port the container serves.
    #[arg(long)]
    pub port: Option<i32>,
    /// The pod's labels (`k=v,k2=v2`; default `run=NAME`).
    #[arg(short = 'l', long)]
    pub labels: Option<String>,
    /// Environment variables (`--env K=V`, repeated).
    #[arg(long = "env")]
    pub env: Vec<String>,
    /// The pod's restart policy.
    #[arg(long, value_enum, default_value = "Always")]
    pub restart: Restart,
    /// The image's pull policy (Always, IfNotPresent, Never).
    #[arg(long)]
    pub image_pull_policy: Option<String>,
    /// The arguments after `--` are the command, not the image's command's arguments.
    #[arg(long)]
    pub command: bool,
    /// How the object is sent and shown.
    #[command(flatten)]
    pub emit: Emit,
    /// The container's arguments (or, with --command, its command), after `--`.
    #[arg(last = true)]
    pub args: Vec<String>,
}

fn pairs(text: &str, what: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            bail!("invalid {what} {pair:?}: expected KEY=VALUE");
        };
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// The pod `run` makes, as kubectl's generator makes it.
pub fn run_pod(a: &RunArgs) -> Result<Value> {
    let labels = match &a.labels {
        Some(l) => pairs(l, "label")?,
        None => BTreeMap::from([("run".to_string(), a.name.clone())]),
    };
    let mut container = json!({"name": a.name, "image": a.image, "resources": {}});
    if !a.args.is_empty() {
        container[if a.command { "command" } else { "args" }] = json!(a.args);
    }
    if let Some(p) = a.port {
        container["ports"] = json!([{"containerPort": p}]);
    }
    if !a.env.is_empty() {
        let mut env = Vec::new();
        for e in &a.env {
            let Some((k, v)) = e.split_once('=') else {
                bail!("invalid env {e:?}: expected NAME=VALUE");
            };
            env.push(json!({"name": k, "value": v}));
        }
        container["env"] = json!(env);
    }
    if let Some(p) = &a.image_pull_policy {
        container["imagePullPolicy"] = json!(p);
    }
    let restart = match a.restart {
        Restart::Always => "Always",
        Restart::OnFailure => "OnFailure",
        Restart::Never => "Never",
    };
    Ok(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": a.name, "labels": labels},
        "spec": {"containers": [container], "restartPolicy": restart, "dnsPolicy": "ClusterFirst"}}))
}

/// `run`.
pub async fn run(g: &Global, a: &RunArgs) -> Result<()> {
    let pod = run_pod(a)?;
    let kind = ObjectKind::of::<Pod>();
    if a.emit.dry_run == DryRun::Client {
        return a.emit.report(&kind, pod, "created");
    }
    let cluster = g.connect().await?;
    a.emit.create(&cluster, &kind, pod, "created").await
}

/// `expose`'s arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct ExposeArgs {
    /// `KIND/NAME` or `KIND` (a Deployment, ReplicaSet, ReplicationController,
    /// StatefulSet, DaemonSet, Service or Pod).
    #[arg(add = crate::completion::resources(1))]
    pub resource: String,
    /// The name, when not given as KIND/NAME.
    #[arg(add = crate::completion::resources(1))]
    pub name: Option<String>,
    /// The Service's port (default: the pods' container port).
    #[arg(long)]
    pub port: Option<i32>,
    /// The pods' port (a number or a port's name; default: --port).
    #[arg(long)]
    pub target_port: Option<String>,
    /// The Service's name (default: the object's).
    #[arg(long = "name")]
    pub service_name: Option<String>,
    /// ClusterIP, NodePort, LoadBalancer or ExternalName.
    #[arg(long = "type")]
    pub service_type: Option<String>,
    /// TCP, UDP or SCTP.
    #[arg(long, default_value = "TCP")]
    pub protocol: String,
    /// Labels of the Service (`k=v,...`; default: the object's).
    #[arg(short = 'l', long)]
    pub labels: Option<String>,
    /// The selector (`k=v,...`; default: the object's).
    #[arg(long)]
    pub selector: Option<String>,
    /// How the object is sent and shown.
    #[command(flatten)]
    pub emit: Emit,
}

/// The Service `expose` makes for `obj` (kubectl's generator): its selector and
/// labels, its ports (from the flags or the pods' declared ports).
pub fn exposing(a: &ExposeArgs, kind: &ObjectKind, obj: &Value) -> Result<Value> {
    let name = a
        .service_name
        .clone()
        .unwrap_or_else(|| obj["metadata"]["name"].as_str().unwrap_or("").to_string());
    let (selector, pod_spec) = match kind.kind {
        "Pod" => (obj["metadata"]["labels"].clone(), &obj["spec"]),
        "Service" | "ReplicationController" => (
            obj["spec"]["selector"].clone(),
            &obj["spec"]["template"]["spec"],
        ),
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => {
            if obj["spec"]["selector"]["matchExpressions"]
                .as_array()
                .is_some_and(|e| !e.is_empty())
            {
                bail!(
                    "couldn't convert expressions - \"{}\" to map-based selector format",
                    obj["spec"]["selector"]["matchExpressions"]
                );
            }
            (
                obj["spec"]["selector"]["matchLabels"].clone(),
                &obj["spec"]["template"]["spec"],
            )
        }
        other => bail!("cannot expose a {other}"),
    };
    let selector = match &a.selector {
        Some(s) => json!(pairs(s, "selector")?),
        None => selector,
    };
    if selector.as_object().is_none_or(|m| m.is_empty()) {
        bail!("couldn't retrieve selectors via --selector flag or introspection");
    }
    let labels = match &a.labels {
        Some(l) => json!(pairs(l, "label")?),
        None => obj["metadata"]["labels"].clone(),
    };
    let target = |port: i32| match &a.target_port {
        Some(t) => t.parse::<i64>().map_or_else(|_| json!(t), |n| json!(n)),
        None => json!(port),
    };
    let ports: Vec<Value> = match (a.port, kind.kind) {
        (Some(p), _) => vec![json!({"protocol": a.protocol, "port": p, "targetPort": target(p)})],
        (None, "Service") => obj["spec"]["ports"].as_array().cloned().unwrap_or_default().into_iter().map(|p| {
            json!({"protocol": p["protocol"].as_str().unwrap_or("TCP"), "port": p["port"], "targetPort": p.get("targetPort").cloned().unwrap_or_else(|| p["port"].clone())})
        }).collect(),
        (None, _) => {
            let declared: Vec<&Value> = pod_spec["containers"].as_array().into_iter().flatten()
                .flat_map(|c| c["ports"].as_array().into_iter().flatten())
                .collect();
            let several = declared.len() > 1;
            declared.into_iter().enumerate().map(|(i, p)| {
                let port = p["containerPort"].as_i64().unwrap_or(0) as i32;
                let mut out = json!({"protocol": p["protocol"].as_str().unwrap_or(&a.protocol), "port": port, "targetPort": target(port)});
                if several {
                    out["name"] = json!(format!("port-{}", i + 1));
                }
                out
            }).collect()
        }
    };
    if ports.is_empty() {
        bail!("couldn't find port via --port flag or introspection");
    }
    let mut spec = json!({"ports": ports, "selector": selector});
    if let Some(t) = &a.service_type {
        spec["type"] = json!(t);
    }
    let mut metadata = json!({"name": name});
    if labels.as_object().is_some_and(|m| !m.is_empty()) {
        metadata["labels"] = labels;
    }
    Ok(json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}))
}

/// `expose`.
pub async fn expose(g: &Global, a: &ExposeArgs) -> Result<()> {
    let cluster = g.connect().await?;
    let (kind, name) = one(&cluster, &a.resource, a.name.as_deref()).await?;
    let obj = cluster
        .api(&kind, Some(&cluster.namespace))
        .get(&name)
        .await
        .map_err(explain)?;
    let service = exposing(a, &kind, &serde_json::to_value(obj)?)?;
    a.emit
        .create(&cluster, &ObjectKind::of::<Service>(), service, "exposed")
        .await
}

/// `set image`'s arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct SetImageArgs {
    /// `KIND/NAME` (a Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob,
    /// ReplicationController or Pod), then `CONTAINER=IMAGE` pairs (`*=IMAGE`: every
    /// container).
    #[arg(required = true, num_args = 2.., add = crate::completion::resources(2))]
    pub args: Vec<String>,
    /// How the object is sent and shown.
    #[command(flatten)]
    pub emit: Emit,
}

/// The containers' images `changes` set in `obj`: a strategic merge patch of the
/// containers by name (init containers too), or an error naming a container that
/// is not there.
pub fn image_patch(kind: &ObjectKind, obj: &Value, changes: &[(String, String)]) -> Result<Value> {
    let path: &[&str] = match kind.kind {
        "Pod" => &["spec"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => &["spec", "template", "spec"],
    };
    let spec = path.iter().fold(obj, |v, k| &v[*k]);
    let mut lists = serde_json::Map::new();
    let mut matched = vec![false; changes.len()];
    for list in ["initContainers", "containers"] {
        let mut patched = Vec::new();
        for c in spec[list].as_array().into_iter().flatten() {
            let name = c["name"].as_str().unwrap_or("");
            for (i, (want, image)) in changes.iter().enumerate() {
                if want == "*" || want == name {
                    matched[i] = true;
                    patched.push(json!({"name": name, "image": image}));
                }
            }
        }
        if !patched.is_empty() {
            lists.insert(list.to_string(), json!(patched));
        }
    }
    if let Some(i) = matched.iter().position(|m| !m) {
        bail!("unable to find container named {:?}", changes[i].0);
    }
    let mut patch = Value::Object(lists);
    for key in path.iter().rev() {
        patch = json!({ *key: patch });
    }
    Ok(patch)
}

/// `obj` with the images `patch` ([`image_patch`]) sets, as the server would merge
/// them (containers by name).
fn with_images(mut obj: Value, patch: &Value) -> Value {
    fn walk(obj: &mut Value, patch: &Value) {
        let Some(fields) = patch.as_object() else {
            return;
        };
        for (key, sub) in fields {
            match (sub.as_array(), obj.get_mut(key)) {
                (Some(changes), Some(Value::Array(containers))) => {
                    for change in changes {
                        for c in containers
                            .iter_mut()
                            .filter(|c| c["name"] == change["name"])
                        {
                            c["image"] = change["image"].clone();
                        }
                    }
                }
                (None, Some(inner)) => walk(inner, sub),
                _ => {}
            }
        }
    }
    walk(&mut obj, patch);
    obj
}

/// `set image`.
pub async fn set_image(g: &Global, a: &SetImageArgs) -> Result<()> {
    let (target, pairs_given) = a.args.split_at(1);
    let mut changes = Vec::new();
    for p in pairs_given {
        let Some((c, image)) = p
            .split_once('=')
            .filter(|(c, i)| !c.is_empty() && !i.is_empty())
        else {
            bail!("invalid image change {p:?}: expected CONTAINER=IMAGE");
        };
        changes.push((c.to_string(), image.to_string()));
    }
    let cluster = g.connect().await?;
    let (kind, name) = one(&cluster, &target[0], None).await?;
    let api = cluster.api(&kind, Some(&cluster.namespace));
    let obj = serde_json::to_value(api.get(&name).await.map_err(explain)?)?;
    let patch = image_patch(&kind, &obj, &changes)?;
    let updated = match a.emit.dry_run {
        DryRun::Client => with_images(obj, &patch),
        DryRun::None | DryRun::Server => {
            let params = PatchParams {
                dry_run: a.emit.dry_run == DryRun::Server,
                field_manager: Some("rk8sctl".into()),
                ..Default::default()
            };
            let done = api
                .patch(&name, &params, &Patch::Strategic(patch))
                .await
                .map_err(explain)?;
            serde_json::to_value(done)?
        }
    };
    a.emit.report(&kind, updated, "image updated")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Sub,
    }

    #[derive(clap::Subcommand)]
    enum Sub {
        Run(RunArgs),
        Expose(ExposeArgs),
    }

    fn run_args(args: &[&str]) -> RunArgs {
        match Cli::parse_from(["t", "run"].iter().chain(args)).command {
            Sub::Run(a) => a,
            Sub::Expose(_) => unreachable!(),
        }
    }

    fn expose_args(args: &[&str]) -> ExposeArgs {
        match Cli::parse_from(["t", "expose"].iter().chain(args)).command {
            Sub::Expose(a) => a,
            Sub::Run(_) => unreachable!(),
        }
    }

    #[test]
    fn run_makes_kubectls_pod() {
        let pod = run_pod(&run_args(&["x", "--image", "busybox"])).unwrap();
        assert_eq!(pod["metadata"]["labels"], json!({"run": "x"}));
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(
            pod["spec"]["containers"][0],
            json!({"name": "x", "image": "busybox", "resources": {}})
        );
        let pod = run_pod(&run_args(&[
            "y",
            "--image=busybox",
            "--port=80",
            "-l",
            "a=b,c=d",
            "--env",
            "K=V",
            "--restart",
            "Never",
            "--command",
            "--",
            "sh",
            "-c",
            "echo hi",
        ]))
        .unwrap();
        let c = &pod["spec"]["containers"][0];
        assert_eq!(c["command"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(c["ports"], json!([{"containerPort": 80}]));
        assert_eq!(c["env"], json!([{"name": "K", "value": "V"}]));
        assert_eq!(pod["metadata"]["labels"], json!({"a": "b", "c": "d"}));
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        assert!(run_pod(&run_args(&["z", "--image=b", "--env", "novalue"])).is_err());
        assert!(run_pod(&run_args(&["x", "--image=b", "-l", "x"])).is_err());
    }

    #[test]
    fn expose_reads_selector_and_ports_like_kubectl() {
        let deploy = ObjectKind::of::<k8s_openapi::api::apps::v1::Deployment>();
        let d = json!({"metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 8080}, {"containerPort": 9090, "protocol": "UDP"}]}]}}}});
        let svc = exposing(
            &expose_args(&["deploy/web", "--port=80", "--target-port=8080"]),
            &deploy,
            &d,
        )
        .unwrap();
        assert_eq!(
            svc["spec"],
            json!({"ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080}], "selector": {"app": "web"}})
        );
        assert_eq!(
            svc["metadata"],
            json!({"name": "web", "labels": {"app": "web"}})
        );
        let svc = exposing(
            &expose_args(&["deploy/web", "--name=w2", "--type=NodePort"]),
            &deploy,
            &d,
        )
        .unwrap();
        assert_eq!(
            svc["spec"]["ports"][1],
            json!({"protocol": "UDP", "port": 9090, "targetPort": 9090, "name": "port-2"})
        );
        assert_eq!(svc["spec"]["type"], "NodePort");
        let bare = json!({"metadata": {"name": "x"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"containers": [{"name": "c"}]}}}});
        let e = exposing(&expose_args(&["deploy/x"]), &deploy, &bare).unwrap_err();
        assert_eq!(
            e.to_string(),
            "couldn't find port via --port flag or introspection"
        );
    }

    #[test]
    fn set_image_patches_containers_by_name() {
        let deploy = ObjectKind::of::<k8s_openapi::api::apps::v1::Deployment>();
        let d = json!({"spec": {"template": {"spec": {
            "initContainers": [{"name": "init", "image": "a"}],
            "containers": [{"name": "web", "image": "b"}, {"name": "side", "image": "c"}]}}}});
        let changes = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            image_patch(&deploy, &d, &changes(&[("web", "nginx:1")])).unwrap(),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}}})
        );
        let all = image_patch(&deploy, &d, &changes(&[("*", "x")])).unwrap();
        assert_eq!(
            all["spec"]["template"]["spec"]["initContainers"][0]["image"],
            "x"
        );
        assert_eq!(
            all["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let shown = with_images(d.clone(), &all);
        assert_eq!(
            shown["spec"]["template"]["spec"]["containers"][1],
            json!({"name": "side", "image": "x"})
        );
        let e = image_patch(&deploy, &d, &changes(&[("nope", "x")])).unwrap_err();
        assert_eq!(e.to_string(), "unable to find container named \"nope\"");
    }
}

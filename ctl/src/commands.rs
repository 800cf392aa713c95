//! The cluster commands of `rk8sctl`, with their arguments: apply, create, get,
//! describe, delete, scale, label, annotate, edit, cluster-info, version, config.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use kube::api::{
    DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, PropagationPolicy,
};
use rk8s_api::formats::{self, FileFormat};
use rk8s_api::object::resolve;
use rk8s_api::{AnyObject, ObjectKind, manifest};
use serde_json::{Value, json};

use crate::apply;
use crate::cluster::{Cluster, Target, explain, kubeconfig_path};
use crate::input;
use crate::print::{self, TABLE_ACCEPT, TableStyle};

/// Options every cluster command takes.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Global {
    /// The kubeconfig file [default: $RK8S_CONFIG, else ~/.rk8s/config].
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The namespace (default: the context's, else `default`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
}

impl Global {
    pub(crate) async fn connect(&self) -> Result<Cluster> {
        Cluster::connect(&Target {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            namespace: self.namespace.clone(),
        })
        .await
    }
}

/// `-f` files.
#[derive(clap::Args, Clone, Debug)]
pub struct Files {
    /// File, directory or `-` (standard input); may be repeated.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Descend into subdirectories of directories given with -f.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

/// Reads, decodes and validates every object in `files`; every problem (with file,
/// line and column) is reported before anything is sent.
fn objects_from(files: &Files, g: &Global, cluster_ns: &str) -> Result<Vec<AnyObject>> {
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    for input in input::read_all(&files.files, files.recursive)? {
        match formats::detect(&input.text) {
            FileFormat::Manifests => {}
            other => {
                eprintln!(
                    "skipping {}: {}, not Kubernetes objects",
                    input.name,
                    match other {
                        FileFormat::Compose => "a Compose file",
                        _ => "a single-container file",
                    },
                );
                continue;
            }
        }
        let (manifests, diags) = manifest::decode(&input.name, &input.text);
        problems.extend(diags);
        for m in manifests {
            let mut checked = m.clone();
            rk8s_api::defaults::apply_defaults(&mut checked.object);
            problems.extend(checked.validate());
            let mut obj = m.object;
            if obj.kind().is_namespaced() {
                let ns = obj.metadata().namespace.clone().filter(|n| !n.is_empty());
                match (ns, &g.namespace) {
                    (Some(own), Some(flag)) if own != *flag => bail!(
                        "{}: the namespace from the provided object {own:?} does not match the namespace {flag:?}. You must pass '--namespace={own}' to perform this operation.",
                        input.name
                    ),
                    (Some(_), _) => {}
                    (None, _) => obj.metadata_mut().namespace = Some(cluster_ns.to_string()),
                }
            }
            objects.push(obj);
        }
    }
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        bail!("{}", list.join("\n"));
    }
    Ok(objects)
}

/// `apply -f`.
pub async fn apply(g: &Global, files: &Files) -> Result<()> {
    let cluster = g.connect().await?;
    let objects = objects_from(files, g, &cluster.namespace)?;
    // Namespaces first, so the objects in them can be created in the same run.
    let (namespaces, rest): (Vec<_>, Vec<_>) = objects
        .into_iter()
        .partition(|o| o.kind().kind == "Namespace");
    let mut failed = 0;
    for obj in namespaces.iter().chain(&rest) {
        let name = format!("{}/{}", obj.kind().qualified_singular(), obj.name());
        match apply::apply(&cluster, obj).await {
            Ok(outcome) => println!("{name} {}", outcome.as_str()),
            Err(e) => {
                failed += 1;
                eprintln!("{name}: {e:#}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} object(s) could not be applied");
    }
    Ok(())
}

/// `create -f`.
pub async fn create(g: &Global, files: &Files) -> Result<()> {
    let cluster = g.connect().await?;
    let objects = objects_from(files, g, &cluster.namespace)?;
    for obj in &objects {
        let api = cluster.api(&obj.kind(), obj.namespace());
        let value: DynamicObject = serde_json::from_value(obj.to_value())?;
        api.create(&PostParams::default(), &value)
            .await
            .map_err(explain)?;
        println!("{}/{} created", obj.kind().qualified_singular(), obj.name());
    }
    Ok(())
}

/// What `get`, `describe`, `delete`, `label`... address: `KIND[,KIND] [NAME...]` or
/// `KIND/NAME...`.
fn targets(args: &[String]) -> Result<Vec<(ObjectKind, Vec<String>)>> {
    let unknown = |k: &str| {
        anyhow::anyhow!(
            "the server doesn't have a resource type {k:?} (known: {})",
            rk8s_api::object::kinds()
                .iter()
                .map(|k| k.plural)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut out: Vec<(ObjectKind, Vec<String>)> = Vec::new();
    if args.iter().any(|a| a.contains('/')) {
        for a in args {
            let (k, n) = a
                .split_once('/')
                .ok_or_else(|| anyhow::anyhow!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'rk8sctl get resource/<resource_name>' instead of 'rk8sctl get resource resource/<resource_name>')"))?;
            let kind = resolve(k).ok_or_else(|| unknown(k))?;
            match out.iter_mut().find(|(kk, _)| *kk == kind) {
                Some((_, names)) => names.push(n.to_string()),
                None => out.push((kind, vec![n.to_string()])),
            }
        }
        return Ok(out);
    }
    let Some((first, names)) = args.split_first() else {
        bail!("you must specify the type of resource, e.g. pods, deployments, nodes");
    };
    for k in first.split(',').filter(|k| !k.is_empty()) {
        let kind = if k == "all" {
            for plural in [
                "pods",
                "services",
                "deployments",
                "replicasets",
                "horizontalpodautoscalers",
                "jobs",
            ] {
                out.extend(resolve(plural).map(|k| (k, names.to_vec())));
            }
            continue;
        } else {
            resolve(k).ok_or_else(|| unknown(k))?
        };
        out.push((kind, names.to_vec()));
    }
    Ok(out)
}

fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            s.append_pair(k, v);
        }
    }
    let q = s.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}

/// `get` output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// More columns.
    Wide,
    /// The objects as YAML.
    Yaml,
    /// The objects as JSON.
    Json,
    /// `kind/name` only.
    Name,
}

/// `get`'s arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct GetArgs {
    /// `KIND [NAME...]`, `KIND/NAME...` or `KIND,KIND`.
    #[arg(required = true)]
    pub resources: Vec<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector (`app=web,tier!=db`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector (`status.phase=Running`).
    #[arg(long)]
    pub field_selector: Option<String>,
    /// Output format.
    #[arg(short = 'o', long)]
    pub output: Option<Output>,
    /// After listing, watch for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

/// `get`.
pub async fn get(g: &Global, a: &GetArgs) -> Result<()> {
    let cluster = g.connect().await?;
    let targets = targets(&a.resources)?;
    let several = targets.len() > 1;
    let ns = (!a.all_namespaces).then_some(cluster.namespace.as_str());
    let mut structured: Vec<Value> = Vec::new();
    let mut printed_any = false;
    for (kind, names) in &targets {
        let collection = kind.collection_path(ns);
        let style = TableStyle {
            wide: a.output == Some(Output::Wide),
            namespace_column: a.all_namespaces && kind.is_namespaced(),
            no_headers: false,
            kind_prefix: None,
        };
        let list_query = query(&[
            ("labelSelector", a.selector.as_deref()),
            ("fieldSelector", a.field_selector.as_deref()),
        ]);
        let tables: Vec<Value> = match a.output {
            None | Some(Output::Wide) => {
                let mut t = Vec::new();
                if names.is_empty() {
                    t.push(
                        cluster
                            .get_json(&format!("{collection}{list_query}"), TABLE_ACCEPT)
                            .await?,
                    );
                } else {
                    for n in names {
                        t.push(
                            cluster
                                .get_json(&kind.object_path(ns, n), TABLE_ACCEPT)
                                .await?,
                        );
                    }
                }
                t
            }
            Some(_) => {
                if names.is_empty() {
                    let list = cluster
                        .get_json(&format!("{collection}{list_query}"), "application/json")
                        .await?;
                    for item in list["items"].as_array().cloned().unwrap_or_default() {
                        structured.push(with_kind(item, kind));
                    }
                } else {
                    for n in names {
                        let obj = cluster
                            .get_json(&kind.object_path(ns, n), "application/json")
                            .await?;
                        structured.push(with_kind(obj, kind));
                    }
                }
                Vec::new()
            }
        };
        let mut rows = 0;
        let mut lines = Vec::new();
        let mut printer = print::Printer::new(TableStyle {
            kind_prefix: several.then(|| kind.qualified_singular()),
            ..style
        });
        for t in &tables {
            rows += t["rows"].as_array().map_or(0, Vec::len);
            printer.style.no_headers = !lines.is_empty();
            lines.extend(printer.lines(t));
        }
        if rows > 0 {
            if printed_any {
                println!();
            }
            printed_any = true;
            for l in lines {
                println!("{l}");
            }
        }
        if a.watch {
            let rv = tables
                .first()
                .and_then(|t| t["metadata"]["resourceVersion"].as_str())
                .unwrap_or("")
                .to_string();
            printer.style.no_headers = true;
            return watch(&cluster, kind, ns, names, a, &rv, printer).await;
        }
    }
    match a.output {
        Some(Output::Yaml) | Some(Output::Json) => {
            let single = targets.len() == 1 && targets[0].1.len() == 1;
            let doc = if single {
                structured.pop().unwrap_or(Value::Null)
            } else {
                json!({"apiVersion": "v1", "kind": "List", "items": structured, "metadata": {"resourceVersion": ""}})
            };
            if a.output == Some(Output::Yaml) {
                print!("{}", print::yaml(&doc));
            } else {
                println!("{}", serde_json::to_string_pretty(&doc)?);
            }
        }
        Some(Output::Name) => {
            for o in &structured {
                let kind = o["kind"].as_str().and_then(rk8s_api::object::kind_named);
                if let Some(k) = kind {
                    println!(
                        "{}/{}",
                        k.qualified_singular(),
                        o["metadata"]["name"].as_str().unwrap_or("")
                    );
                }
            }
        }
        _ if !printed_any => match ns {
            Some(ns) => eprintln!("No resources found in {ns} namespace."),
            None => eprintln!("No resources found"),
        },
        _ => {}
    }
    Ok(())
}

fn with_kind(mut obj: Value, kind: &ObjectKind) -> Value {
    obj["apiVersion"] = json!(kind.api_version);
    obj["kind"] = json!(kind.kind);
    print::for_output(obj)
}

async fn watch(
    cluster: &Cluster,
    kind: &ObjectKind,
    ns: Option<&str>,
    names: &[String],
    a: &GetArgs,
    rv: &str,
    mut printer: print::Printer,
) -> Result<()> {
    let field = match names {
        [one] => Some(format!("metadata.name={one}")),
        _ => a.field_selector.clone(),
    };
    let path = format!(
        "{}{}",
        kind.collection_path(ns),
        query(&[
            ("watch", Some("true")),
            ("resourceVersion", Some(rv)),
            ("labelSelector", a.selector.as_deref()),
            ("fieldSelector", field.as_deref()),
        ])
    );
    let accept = match a.output {
        None | Some(Output::Wide) => TABLE_ACCEPT,
        _ => "application/json",
    };
    let req = http::Request::get(path)
        .header(http::header::ACCEPT, accept)
        .body(Vec::new())?;
    let mut events = cluster
        .client
        .request_events::<Value>(req)
        .await
        .map_err(explain)?
        .boxed();
    while let Some(ev) = events.next().await {
        let obj = match ev.map_err(explain)? {
            kube::api::WatchEvent::Added(o)
            | kube::api::WatchEvent::Modified(o)
            | kube::api::WatchEvent::Deleted(o) => o,
            kube::api::WatchEvent::Bookmark(_) => continue,
            kube::api::WatchEvent::Error(e) => {
                bail!("Error from server ({}): {}", e.reason, e.message)
            }
        };
        match a.output {
            None | Some(Output::Wide) => {
                for l in printer.lines(&obj) {
                    println!("{l}");
                }
            }
            Some(Output::Yaml) => print!("---\n{}", print::yaml(&with_kind(obj, kind))),
            Some(Output::Json) => {
                println!("{}", serde_json::to_string_pretty(&with_kind(obj, kind))?)
            }
            Some(Output::Name) => println!(
                "{}/{}",
                kind.qualified_singular(),
                obj["metadata"]["name"].as_str().unwrap_or("")
            ),
        }
    }
    Ok(())
}

/// `describe KIND NAME`: the object's fields, then its recent events.
pub async fn describe(g: &Global, resources: &[String]) -> Result<()> {
    let cluster = g.connect().await?;
    let mut first = true;
    for (kind, names) in targets(resources)? {
        let ns = Some(cluster.namespace.as_str());
        let names = if names.is_empty() {
            let list = cluster
                .get_json(&kind.collection_path(ns), "application/json")
                .await?;
            list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
                .collect()
        } else {
            names
        };
        for name in names {
            if !first {
                println!();
            }
            first = false;
            let obj = cluster
                .get_json(&kind.object_path(ns, &name), "application/json")
                .await?;
            let events = if let Some(events_kind) = resolve("events") {
                let ns_value = obj["metadata"]["namespace"].as_str().unwrap_or("");
                let mut selector = format!(
                    "involvedObject.name={name},involvedObject.kind={}",
                    kind.kind
                );
                if !ns_value.is_empty() {
                    selector.push_str(&format!(",involvedObject.namespace={ns_value}"));
                }
                let path = format!(
                    "{}{}",
                    events_kind.collection_path(kind.is_namespaced().then_some(ns_value)),
                    query(&[("fieldSelector", Some(&selector))])
                );
                cluster.get_json(&path, "application/json").await?["items"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            print!("{}", crate::describe::describe(&obj, &events));
        }
    }
    Ok(())
}

/// `delete`'s arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct DeleteArgs {
    /// `KIND NAME...` or `KIND/NAME...` (or use -f).
    pub resources: Vec<String>,
    /// Delete what these files describe.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    /// Every object of the kind in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Objects matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// What happens to dependents: background (default), foreground or orphan.
    #[arg(long, default_value = "background")]
    pub cascade: String,
    /// Seconds a pod gets to stop (default: its own terminationGracePeriodSeconds).
    #[arg(long)]
    pub grace_period: Option<u32>,
    /// Wait until the objects are gone.
    #[arg(long)]
    pub wait: bool,
}

/// `delete`.
pub async fn delete(g: &Global, a: &DeleteArgs) -> Result<()> {
    let cluster = g.connect().await?;
    let policy = match a.cascade.as_str() {
        "background" | "true" => PropagationPolicy::Background,
        "foreground" => PropagationPolicy::Foreground,
        "orphan" | "false" => PropagationPolicy::Orphan,
        other => bail!("--cascade: {other:?} is not one of background, foreground, orphan"),
    };
    let params = DeleteParams {
        propagation_policy: Some(policy),
        grace_period_seconds: a.grace_period,
        ..DeleteParams::default()
    };
    let mut work: Vec<(ObjectKind, Option<String>, String)> = Vec::new();
    if !a.files.is_empty() {
        let files = Files {
            files: a.files.clone(),
            recursive: false,
        };
        for o in objects_from(&files, g, &cluster.namespace)? {
            work.push((
                o.kind(),
                o.namespace().map(str::to_string),
                o.name().to_string(),
            ));
        }
    } else {
        for (kind, names) in targets(&a.resources)? {
            let ns = kind.is_namespaced().then(|| cluster.namespace.clone());
            let names = if names.is_empty() {
                if !a.all && a.selector.is_none() {
                    bail!(
                        "resource(s) were provided, but no name was specified (use --all or -l to delete several)"
                    );
                }
                let lp = ListParams {
                    label_selector: a.selector.clone(),
                    ..ListParams::default()
                };
                cluster
                    .api(&kind, ns.as_deref())
                    .list(&lp)
                    .await
                    .map_err(explain)?
                    .items
                    .into_iter()
                    .filter_map(|o| o.metadata.name)
                    .collect()
            } else {
                names
            };
            for n in names {
                work.push((kind, ns.clone(), n));
            }
        }
    }
    for (kind, ns, name) in &work {
        let api = cluster.api(kind, ns.as_deref());
        api.delete(name, &params).await.map_err(explain)?;
        println!("{} \"{name}\" deleted", kind.qualified_plural());
    }
    if a.wait {
        for (kind, ns, name) in &work {
            let api = cluster.api(kind, ns.as_deref());
            while api.get_opt(name).await.map_err(explain)?.is_some() {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
    Ok(())
}

/// `KIND/NAME` or `KIND NAME` as one object.
pub(crate) fn one(resource: &str, name: Option<&str>) -> Result<(ObjectKind, String)> {
    let args: Vec<String> = std::iter::once(resource.to_string())
        .chain(name.map(str::to_string))
        .collect();
    match targets(&args)?.as_slice() {
        [(kind, names)] if names.len() == 1 => Ok((*kind, names[0].clone())),
        _ => bail!("name exactly one object: KIND/NAME or KIND NAME"),
    }
}

/// `scale KIND/NAME --replicas N`.
pub async fn scale(g: &Global, resource: &str, name: Option<&str>, replicas: u32) -> Result<()> {
    let cluster = g.connect().await?;
    let (kind, name) = one(resource, name)?;
    if !matches!(kind.plural, "deployments" | "replicasets") {
        bail!(
            "{} cannot be scaled: only deployments and replicasets have replicas",
            kind.qualified_plural()
        );
    }
    let api = cluster.api(&kind, Some(&cluster.namespace));
    api.patch_scale(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await
    .map_err(explain)?;
    println!("{}/{name} scaled", kind.qualified_singular());
    Ok(())
}

/// `autoscale` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct AutoscaleArgs {
    /// `KIND/NAME` or `KIND`.
    pub resource: String,
    /// The name, when not given as KIND/NAME.
    pub name: Option<String>,
    /// The fewest replicas (default: the server's, 1).
    #[arg(long)]
    pub min: Option<i32>,
    /// The most replicas.
    #[arg(long)]
    pub max: i32,
    /// The average CPU use to keep, in percent of the pods' requests (default: the
    /// server's, 80).
    #[arg(long)]
    pub cpu_percent: Option<i32>,
    /// The autoscaler's name (default: the target's).
    #[arg(long = "name")]
    pub hpa_name: Option<String>,
}

/// `autoscale KIND NAME --max N [--min N] [--cpu-percent P]`: a
/// HorizontalPodAutoscaler (autoscaling/v2) for the Deployment or ReplicaSet.
pub async fn autoscale(g: &Global, args: &AutoscaleArgs) -> Result<()> {
    let cluster = g.connect().await?;
    let (kind, name) = one(&args.resource, args.name.as_deref())?;
    if !matches!(kind.plural, "deployments" | "replicasets") {
        bail!(
            "cannot autoscale a {}: only deployments and replicasets have a scale subresource",
            kind.kind
        );
    }
    let api_version = if kind.group.is_empty() {
        kind.version.to_string()
    } else {
        format!("{}/{}", kind.group, kind.version)
    };
    let hpa_name = args.hpa_name.clone().unwrap_or_else(|| name.clone());
    let mut spec = json!({
        "scaleTargetRef": {"apiVersion": api_version, "kind": kind.kind, "name": name},
        "maxReplicas": args.max,
    });
    if let Some(min) = args.min {
        spec["minReplicas"] = json!(min);
    }
    if let Some(cpu) = args.cpu_percent {
        spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": cpu}}}]);
    }
    let hpa = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": hpa_name, "namespace": cluster.namespace},
        "spec": spec,
    });
    let hpa_kind = rk8s_api::object::kind_named("HorizontalPodAutoscaler")
        .context("this build has no HorizontalPodAutoscaler kind")?;
    let object: DynamicObject = serde_json::from_value(hpa)?;
    cluster
        .api(&hpa_kind, Some(&cluster.namespace))
        .create(&PostParams::default(), &object)
        .await
        .map_err(explain)?;
    println!("{}/{hpa_name} autoscaled", hpa_kind.qualified_singular());
    Ok(())
}

/// `label` / `annotate`: which metadata map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaMap {
    /// `metadata.labels`.
    Labels,
    /// `metadata.annotations`.
    Annotations,
}

/// `label|annotate KIND NAME k=v k-... [--overwrite]`.
pub async fn set_metadata(
    g: &Global,
    which: MetaMap,
    args: &[String],
    overwrite: bool,
) -> Result<()> {
    let cluster = g.connect().await?;
    let (target, changes): (Vec<String>, Vec<String>) = args
        .iter()
        .cloned()
        .partition(|a| !a.contains('=') && !a.ends_with('-'));
    let (kind, name) = match target.as_slice() {
        [r] => one(r, None)?,
        [r, n] => one(r, Some(n))?,
        _ => bail!("give one object (KIND NAME or KIND/NAME) and then key=value or key- pairs"),
    };
    if changes.is_empty() {
        bail!("at least one key=value or key- is required");
    }
    let api = cluster.api(&kind, Some(&cluster.namespace));
    let live = api.get(&name).await.map_err(explain)?;
    let current: BTreeMap<String, String> = match which {
        MetaMap::Labels => live.metadata.labels.clone().unwrap_or_default(),
        MetaMap::Annotations => live.metadata.annotations.clone().unwrap_or_default(),
    };
    let mut patch = serde_json::Map::new();
    for c in &changes {
        if let Some(key) = c.strip_suffix('-').filter(|_| !c.contains('=')) {
            patch.insert(key.to_string(), Value::Null);
            continue;
        }
        let (k, v) = c.split_once('=').unwrap_or((c, ""));
        if let Some(old) = current.get(k)
            && old != v
            && !overwrite
        {
            bail!("'{k}' already has a value ({old}), and --overwrite is false");
        }
        patch.insert(k.to_string(), Value::String(v.to_string()));
    }
    let field = match which {
        MetaMap::Labels => "labels",
        MetaMap::Annotations => "annotations",
    };
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {field: patch}})),
    )
    .await
    .map_err(explain)?;
    let verb = match which {
        MetaMap::Labels => "labeled",
        MetaMap::Annotations => "annotated",
    };
    println!("{}/{name} {verb}", kind.qualified_singular());
    Ok(())
}

/// `edit KIND NAME`: the object in `$EDITOR`, saved back with a compare-and-swap.
pub async fn edit(g: &Global, resource: &str, name: Option<&str>) -> Result<()> {
    let cluster = g.connect().await?;
    let (kind, name) = one(resource, name)?;
    let ns = Some(cluster.namespace.as_str());
    let obj = cluster
        .get_json(&kind.object_path(ns, &name), "application/json")
        .await?;
    let obj = with_kind(obj, &kind);
    let original = print::yaml(&obj);
    let header = "# Edit the object below; lines starting with '#' are ignored.\n# Save and quit to apply; an unchanged file (or an empty one) cancels.\n";
    let dir = std::env::temp_dir().join(format!("rk8sctl-edit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}-{name}.yaml", kind.plural));
    std::fs::write(&path, format!("{header}{original}"))?;
    let editor = std::env::var("RK8S_EDITOR")
        .or_else(|_| std::env::var("EDITOR"))
        .or_else(|_| std::env::var("VISUAL"))
        .unwrap_or_else(|_| "vi".to_string());
    let mut parts = editor.split_whitespace();
    let program = parts.next().unwrap_or("vi");
    let status = std::process::Command::new(program)
        .args(parts)
        .arg(&path)
        .status()
        .with_context(|| format!("cannot run the editor {editor:?} (set EDITOR)"))?;
    if !status.success() {
        bail!(
            "the editor {editor:?} failed; your changes are in {}",
            path.display()
        );
    }
    let edited = std::fs::read_to_string(&path)?;
    let body: String = edited
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    if body.trim().is_empty() || body == original {
        let _ = std::fs::remove_dir_all(&dir);
        println!("Edit cancelled, no changes made.");
        return Ok(());
    }
    let (mut manifests, diags) = manifest::decode(&path.display().to_string(), &edited);
    if !diags.is_empty() || manifests.len() != 1 {
        let list: Vec<String> = diags.iter().map(ToString::to_string).collect();
        bail!(
            "{}\nyour changes are kept in {}",
            list.join("\n"),
            path.display()
        );
    }
    let new = manifests.remove(0).object.to_value();
    // Sent as a JSON patch of what the user changed (both sides decoded alike), as
    // kubectl edit sends a patch: a status or annotation another writer changed in
    // the meantime is no conflict; the same field changed by both is the server's to
    // judge.
    let (before, _) = manifest::decode(&path.display().to_string(), &original);
    let before = before
        .into_iter()
        .next()
        .map(|m| m.object.to_value())
        .unwrap_or_default();
    let patch = json_patch::diff(&before, &new);
    if patch.0.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
        println!("Edit cancelled, no changes made.");
        return Ok(());
    }
    match cluster
        .api(&kind, ns)
        .patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
    {
        Ok(_) => {
            let _ = std::fs::remove_dir_all(&dir);
            println!("{}/{name} edited", kind.qualified_singular());
            Ok(())
        }
        Err(e) => Err(explain(e).context(format!("your changes are kept in {}", path.display()))),
    }
}

/// `cluster-info`.
pub async fn cluster_info(g: &Global) -> Result<()> {
    let cluster = g.connect().await?;
    let req = http::Request::get("/readyz").body(Vec::new())?;
    let ready = cluster.client.request_text(req).await.map_err(explain)?;
    println!(
        "Kubernetes control plane is running at {} (readyz: {})",
        cluster.server,
        ready.trim()
    );
    Ok(())
}

/// `version`: the client's, and the server's if one answers.
pub async fn version(g: &Global) -> Result<()> {
    println!("Client Version: rk8sctl {}", env!("CARGO_PKG_VERSION"));
    let cluster = g.connect().await?;
    let v = cluster.get_json("/version", "application/json").await?;
    println!(
        "Server Version: {}",
        v["gitVersion"].as_str().unwrap_or("unknown")
    );
    Ok(())
}

/// `config` subcommands.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum ConfigCommand {
    /// Print the kubeconfig (secrets left out unless --raw).
    View {
        /// Include tokens and certificate data.
        #[arg(long)]
        raw: bool,
    },
    /// Print the current context.
    CurrentContext,
    /// List the contexts.
    GetContexts,
    /// Make NAME the current context.
    UseContext {
        /// The context.
        name: String,
    },
}

fn read_kubeconfig(g: &Global) -> Result<(PathBuf, Value)> {
    let path = kubeconfig_path(g.kubeconfig.as_ref())?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let docs = rk8s_api::yaml::parse_documents(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}:{}:{}: {}",
            path.display(),
            e.location.line,
            e.location.column,
            e.message
        )
    })?;
    let value = docs
        .into_iter()
        .map(|d| d.value)
        .find(|v| !v.is_null())
        .unwrap_or(Value::Null);
    Ok((path, value))
}

fn redact(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                match k.as_str() {
                    "token" | "password" => *val = json!("REDACTED"),
                    k if k.ends_with("-data") => *val = json!("DATA+OMITTED"),
                    _ => redact(val),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

/// `config ...`.
pub fn config(g: &Global, cmd: &ConfigCommand) -> Result<()> {
    let (path, mut value) = read_kubeconfig(g)?;
    match cmd {
        ConfigCommand::View { raw } => {
            if !raw {
                redact(&mut value);
            }
            print!("{}", print::yaml(&value));
        }
        ConfigCommand::CurrentContext => {
            println!("{}", value["current-context"].as_str().unwrap_or(""));
        }
        ConfigCommand::GetContexts => {
            let current = value["current-context"].as_str().unwrap_or("").to_string();
            println!("CURRENT   NAME   CLUSTER   AUTHINFO   NAMESPACE");
            for c in value["contexts"].as_array().into_iter().flatten() {
                let name = c["name"].as_str().unwrap_or("");
                println!(
                    "{:<9} {name}   {}   {}   {}",
                    if name == current { "*" } else { "" },
                    c["context"]["cluster"].as_str().unwrap_or(""),
                    c["context"]["user"].as_str().unwrap_or(""),
                    c["context"]["namespace"].as_str().unwrap_or("")
                );
            }
        }
        ConfigCommand::UseContext { name } => {
            let known = value["contexts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["name"].as_str() == Some(name));
            if !known {
                bail!(
                    "no context exists with the name: {name:?} in {}",
                    path.display()
                );
            }
            value["current-context"] = json!(name);
            std::fs::write(&path, print::yaml(&value))
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("Switched to context {name:?}.");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(args: &[&str]) -> Vec<(String, Vec<String>)> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        targets(&args)
            .unwrap()
            .into_iter()
            .map(|(k, n)| (k.plural.to_string(), n))
            .collect()
    }

    #[test]
    fn targets_read_like_kubectl() {
        assert_eq!(t(&["po"]), vec![("pods".into(), vec![])]);
        assert_eq!(
            t(&["deploy", "a", "b"]),
            vec![("deployments".into(), vec!["a".into(), "b".into()])]
        );
        assert_eq!(
            t(&["deploy/a", "svc/b", "deploy/c"]),
            vec![
                ("deployments".into(), vec!["a".into(), "c".into()]),
                ("services".into(), vec!["b".into()])
            ]
        );
        assert_eq!(t(&["deploy,svc"]).len(), 2);
        assert_eq!(t(&["all"]).len(), 6);
        let bad: Vec<String> = vec!["secrets".into()];
        assert!(
            targets(&bad)
                .unwrap_err()
                .to_string()
                .contains("doesn't have a resource type")
        );
        assert_eq!(
            query(&[
                ("labelSelector", Some("app=web,x in (a)")),
                ("fieldSelector", None)
            ]),
            "?labelSelector=app%3Dweb%2Cx+in+%28a%29"
        );
    }

    #[test]
    fn config_view_hides_secrets() {
        let mut v = json!({"users": [{"name": "admin", "user": {"token": "s3cret"}}],
                           "clusters": [{"cluster": {"certificate-authority-data": "AAAA", "server": "https://x"}}]});
        redact(&mut v);
        assert_eq!(v["users"][0]["user"]["token"], "REDACTED");
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority-data"],
            "DATA+OMITTED"
        );
        assert_eq!(v["clusters"][0]["cluster"]["server"], "https://x");
    }
}

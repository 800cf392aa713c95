//! `apply -f` and `create -f`: objects from files, read, decoded and validated here
//! before anything is sent. Documents of kinds rk8sctl does not know (custom kinds)
//! are looked up in the server's discovery when their turn comes and validated by
//! the server; one the server does not serve is reported as kubectl reports it, and
//! the rest are still sent.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kube::api::{DynamicObject, PostParams};
use rk8s_api::formats::{self, FileFormat};
use rk8s_api::manifest::{self, Untyped};
use rk8s_api::path::FieldPath;
use rk8s_api::{AnyObject, ObjectKind};

use super::Global;
use crate::apply::{self, Outcome, ServerSide};
use crate::cluster::{Cluster, explain};
use crate::discovery::{kind_served, wait_established};
use crate::input;

/// How long an apply waits for the CustomResourceDefinitions it created to be
/// `Established` before it sends their objects.
const CRD_WAIT: Duration = Duration::from_secs(30);

/// `-f` files, and how `apply` sends them.
#[derive(clap::Args, Clone, Debug)]
pub struct Files {
    /// File, directory or `-` (standard input); may be repeated.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Descend into subdirectories of directories given with -f.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Apply on the server (server-side apply: a PATCH of `application/apply-patch+yaml`)
    /// instead of by the last applied configuration; apply only.
    #[arg(long)]
    pub server_side: bool,
    /// With --server-side: take over the fields other field managers own instead of
    /// failing on the conflict.
    #[arg(long, requires = "server_side")]
    pub force_conflicts: bool,
    /// The name the server records as the owner of the fields sent.
    #[arg(long, default_value = "rk8sctl")]
    pub field_manager: String,
}

impl Files {
    /// Just these files (`delete -f`).
    pub(super) fn only(files: Vec<String>) -> Self {
        Files {
            files,
            recursive: false,
            server_side: false,
            force_conflicts: false,
            field_manager: "rk8sctl".into(),
        }
    }
}

/// One document of the files.
pub(super) enum Item {
    /// An object of a kind rk8sctl knows, decoded and validated.
    Typed(AnyObject),
    /// A document of a kind rk8sctl does not know, for the server to resolve.
    Untyped(Untyped),
}

/// Sets the namespace of a namespaced object that names none; an object naming
/// another namespace than `-n` is an error, as kubectl makes it.
fn place(obj: &mut AnyObject, g: &Global, cluster_ns: &str, file: &str) -> Result<()> {
    if !obj.kind().is_namespaced() {
        return Ok(());
    }
    let ns = obj.metadata().namespace.clone().filter(|n| !n.is_empty());
    match (ns, &g.namespace) {
        (Some(own), Some(flag)) if own != *flag => bail!(
            "{file}: the namespace from the provided object {own:?} does not match the namespace {flag:?}. You must pass '--namespace={own}' to perform this operation."
        ),
        (Some(_), _) => {}
        (None, _) => obj.metadata_mut().namespace = Some(cluster_ns.to_string()),
    }
    Ok(())
}

/// Reads, decodes and validates every object of a kind rk8sctl knows in `files`;
/// every problem (with file, line and column) is reported before anything is sent.
/// Documents of other kinds come back untyped, in their place.
pub(super) fn objects_from(files: &Files, g: &Global, cluster_ns: &str) -> Result<Vec<Item>> {
    let mut items = Vec::new();
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
        let decoded = manifest::decode_with_untyped(&input.name, &input.text);
        problems.extend(decoded.diagnostics);
        let mut typed = Vec::new();
        for m in decoded.manifests {
            let mut checked = m.clone();
            rk8s_api::defaults::apply_defaults(&mut checked.object);
            problems.extend(checked.validate());
            let mut obj = m.object;
            place(&mut obj, g, cluster_ns, &input.name)?;
            typed.push((m.document, Item::Typed(obj)));
        }
        // Back into the order of the file (a List's items share their document).
        let untyped = decoded
            .untyped
            .into_iter()
            .map(|u| (u.document, Item::Untyped(u)));
        let mut in_file: Vec<(usize, Item)> = typed.into_iter().chain(untyped).collect();
        in_file.sort_by_key(|(document, _)| *document);
        items.extend(in_file.into_iter().map(|(_, item)| item));
    }
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        bail!("{}", list.join("\n"));
    }
    Ok(items)
}

/// Namespaces first, then CustomResourceDefinitions, then the rest in the order of
/// the files, so the objects in a namespace and of a custom kind defined in the same
/// files can be sent in one run.
fn order(items: Vec<Item>) -> (Vec<Item>, Vec<Item>) {
    let (namespaces, rest): (Vec<Item>, Vec<Item>) = items
        .into_iter()
        .partition(|i| matches!(i, Item::Typed(AnyObject::Namespace(_))));
    let (crds, rest): (Vec<Item>, Vec<Item>) = rest
        .into_iter()
        .partition(|i| matches!(i, Item::Typed(AnyObject::CustomResourceDefinition(_))));
    (namespaces.into_iter().chain(crds).collect(), rest)
}

/// kubectl's words for a document whose kind the server does not serve, with the
/// document's place in its file.
fn mapping_error(u: &Untyped) -> String {
    let place = match u.location() {
        Some(l) => format!("document {}, line {}", u.document, l.line),
        None => format!("document {}", u.document),
    };
    format!(
        "error: resource mapping not found for name: {:?} namespace: {:?} from {:?} ({place}): no matches for kind {:?} in version {:?}\nensure CRDs are installed first",
        u.name(),
        u.namespace(),
        u.file,
        u.kind,
        u.api_version
    )
}

/// The object an untyped document is, once the server says what its kind is; `None`
/// if the server does not serve the kind (asking again until `retry_until`, while a
/// CustomResourceDefinition just created becomes served).
async fn resolve(
    cluster: &Cluster,
    u: &Untyped,
    retry_until: Option<Instant>,
) -> Result<Option<AnyObject>> {
    let kind = loop {
        match kind_served(&cluster.client, &u.api_version, &u.kind).await? {
            Some(kind) => break kind,
            None if retry_until.is_some_and(|t| Instant::now() < t) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            None => return Ok(None),
        }
    };
    let decoded = AnyObject::from_value(&kind, u.value.clone())
        .ok_or_else(|| anyhow::anyhow!("{}: kind {} cannot be decoded", u.file, kind.kind))?;
    match decoded {
        Ok(obj) => Ok(Some(obj)),
        Err(e) => {
            let path = FieldPath::from(e.path());
            let at = match u.locate(&path) {
                Some(l) => format!("{}:{}:{}", u.file, l.line, l.column),
                None => u.file.clone(),
            };
            bail!("{at}: {path}: {}", e.inner())
        }
    }
}

/// What is done with each object.
enum Verb {
    /// Client-side apply (the last applied configuration).
    Apply,
    /// Server-side apply.
    ApplyServerSide(ServerSide),
    /// Create.
    Create(PostParams),
}

impl Verb {
    async fn send(&self, cluster: &Cluster, obj: &AnyObject) -> Result<&'static str> {
        match self {
            Verb::Apply => Ok(apply::apply(cluster, obj).await?.as_str()),
            Verb::ApplyServerSide(how) => Ok(apply::server_side(cluster, obj, how).await?.as_str()),
            Verb::Create(params) => {
                let api = cluster.api(&obj.kind(), obj.namespace());
                let value: DynamicObject = serde_json::from_value(obj.to_value())?;
                api.create(params, &value).await.map_err(explain)?;
                Ok(Outcome::Created.as_str())
            }
        }
    }

    /// `applied`, `created`: for the closing error.
    fn done(&self) -> &'static str {
        match self {
            Verb::Create(_) => "created",
            _ => "applied",
        }
    }
}

/// Sends one object, printing what happened; whether it went through.
async fn send(cluster: &Cluster, verb: &Verb, obj: &AnyObject) -> bool {
    let name = format!("{}/{}", obj.kind().qualified_singular(), obj.name());
    match verb.send(cluster, obj).await {
        Ok(outcome) => {
            println!("{name} {outcome}");
            true
        }
        Err(e) => {
            eprintln!("{name}: {e:#}");
            false
        }
    }
}

/// Sends every object of the files; every one that fails is reported, the others
/// still sent, and the command fails at the end.
async fn send_all(g: &Global, files: &Files, verb: Verb) -> Result<()> {
    let cluster = g.connect().await?;
    let (first, rest) = order(objects_from(files, g, &cluster.namespace)?);
    let mut failed = 0;
    let mut crds: Vec<(String, String)> = Vec::new();
    for item in &first {
        if let Item::Typed(obj) = item {
            if !send(&cluster, &verb, obj).await {
                failed += 1;
            } else if let AnyObject::CustomResourceDefinition(crd) = obj {
                crds.push((obj.name().to_string(), crd.spec.group.clone()));
            }
        }
    }
    // Objects of kinds just defined wait until the server serves them (bounded).
    let mut new_groups = BTreeSet::new();
    let deadline = Instant::now() + CRD_WAIT;
    if rest.iter().any(|i| matches!(i, Item::Untyped(_))) {
        for (name, group) in &crds {
            if !wait_established(&cluster.client, name, deadline).await? {
                eprintln!(
                    "warning: customresourcedefinition.apiextensions.k8s.io/{name} is not Established after {}s",
                    CRD_WAIT.as_secs()
                );
            }
            new_groups.insert(group.as_str());
        }
    }
    for item in rest {
        let obj = match item {
            Item::Typed(obj) => obj,
            Item::Untyped(u) => {
                let group = u.api_version.rsplit_once('/').map_or("", |(g, _)| g);
                let retry = new_groups.contains(group).then_some(deadline);
                match resolve(&cluster, &u, retry).await {
                    Ok(Some(mut obj)) => match place(&mut obj, g, &cluster.namespace, &u.file) {
                        Ok(()) => obj,
                        Err(e) => {
                            failed += 1;
                            eprintln!("error: {e:#}");
                            continue;
                        }
                    },
                    Ok(None) => {
                        failed += 1;
                        eprintln!("{}", mapping_error(&u));
                        continue;
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: {e:#}");
                        continue;
                    }
                }
            }
        };
        if !send(&cluster, &verb, &obj).await {
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} object(s) could not be {}", verb.done());
    }
    Ok(())
}

/// `apply -f`, client-side or (`--server-side`) server-side.
pub async fn apply(g: &Global, files: &Files) -> Result<()> {
    let verb = if files.server_side {
        Verb::ApplyServerSide(ServerSide {
            field_manager: files.field_manager.clone(),
            force: files.force_conflicts,
        })
    } else {
        if files.force_conflicts {
            bail!("--force-conflicts only applies to --server-side");
        }
        Verb::Apply
    };
    send_all(g, files, verb).await
}

/// `create -f`.
pub async fn create(g: &Global, files: &Files) -> Result<()> {
    if files.server_side || files.force_conflicts {
        bail!("--server-side and --force-conflicts are options of apply, not create");
    }
    let params = PostParams {
        field_manager: Some(files.field_manager.clone()),
        ..PostParams::default()
    };
    send_all(g, files, Verb::Create(params)).await
}

/// Every object the files name, of known kinds and (through discovery) custom ones:
/// what `delete -f` deletes.
pub(super) async fn kinds_and_names(
    cluster: &Cluster,
    g: &Global,
    files: &Files,
) -> Result<Vec<(ObjectKind, Option<String>, String)>> {
    let mut out = Vec::new();
    for item in objects_from(files, g, &cluster.namespace)? {
        let obj = match item {
            Item::Typed(obj) => obj,
            Item::Untyped(u) => {
                let Some(mut obj) = resolve(cluster, &u, None).await? else {
                    bail!("{}", mapping_error(&u).trim_start_matches("error: "));
                };
                place(&mut obj, g, &cluster.namespace, &u.file)?;
                obj
            }
        };
        out.push((
            obj.kind(),
            obj.namespace().map(str::to_string),
            obj.name().to_string(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str) -> Vec<Item> {
        let d = manifest::decode_with_untyped("f.yaml", text);
        assert!(d.diagnostics.is_empty(), "{:?}", d.diagnostics);
        let mut out: Vec<(usize, Item)> = d
            .manifests
            .into_iter()
            .map(|m| (m.document, Item::Typed(m.object)))
            .chain(
                d.untyped
                    .into_iter()
                    .map(|u| (u.document, Item::Untyped(u))),
            )
            .collect();
        out.sort_by_key(|(d, _)| *d);
        out.into_iter().map(|(_, i)| i).collect()
    }

    fn names(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                Item::Typed(o) => format!("{}/{}", o.kind().kind, o.name()),
                Item::Untyped(u) => format!("{}/{}", u.kind, u.name()),
            })
            .collect()
    }

    const FILE: &str = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: a}\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: crontabs.stable.example.com}\nspec:\n  group: stable.example.com\n  scope: Namespaced\n  names: {plural: crontabs, singular: crontab, kind: CronTab}\n  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n";

    #[test]
    fn namespaces_then_definitions_then_the_rest_in_file_order() {
        let (first, rest) = order(items(FILE));
        assert_eq!(
            names(&first),
            [
                "Namespace/n",
                "CustomResourceDefinition/crontabs.stable.example.com"
            ]
        );
        assert_eq!(names(&rest), ["CronTab/a", "ConfigMap/c"]);
    }

    #[test]
    fn an_unserved_kind_is_reported_as_kubectl_reports_it() {
        let d = manifest::decode_with_untyped(
            "objs.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: example.com/v1\nkind: Foo\nmetadata: {name: x}\n",
        );
        assert_eq!(
            mapping_error(&d.untyped[0]),
            "error: resource mapping not found for name: \"x\" namespace: \"\" from \"objs.yaml\" (document 2, line 6): no matches for kind \"Foo\" in version \"example.com/v1\"\nensure CRDs are installed first"
        );
    }
}

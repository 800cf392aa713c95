//! Static pods: the pods of a manifest directory (default `/etc/rk8s/manifests`), run
//! by the node without any control plane, as kubelet runs its static pods. A file
//! added starts its pod, an edited file replaces it, a removed file stops it. A file
//! that does not decode is reported (file:line) and its running pod is kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use rk8s_api::AnyObject;

use crate::error::Result;
use crate::pod::{PodRecord, PodRuntime};

/// Annotation naming the file a static pod came from.
pub const FILE_ANNOTATION: &str = "rk8s.io/static-pod-file";
/// Annotation with the hash of that file's pod (kubelet's `kubernetes.io/config.hash`).
pub const HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
pub use crate::pod::service_env::SOURCE_ANNOTATION;

/// A pod a manifest file asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// The file.
    pub file: PathBuf,
    /// A hash of its contents and path.
    pub hash: String,
    /// The pod, named `<name>-<node>` with a uid from the hash.
    pub pod: Pod,
}

/// What reading the directory found.
#[derive(Debug, Default)]
pub struct Manifests {
    /// The pods.
    pub desired: Vec<Desired>,
    /// Files that could not be used, with every problem (file:line:column: …).
    pub errors: BTreeMap<PathBuf, String>,
}

/// Reads every `.yaml`, `.yml` and `.json` file of `dir` (each one Pod). A missing
/// directory holds no pods.
pub fn read_manifests(dir: &Path, node: &str) -> Manifests {
    let mut out = Manifests::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        })
        .collect();
    files.sort();
    for file in files {
        match read_one(&file, node) {
            Ok(desired) => out.desired.push(desired),
            Err(message) => {
                out.errors.insert(file, message);
            }
        }
    }
    out
}

fn read_one(file: &Path, node: &str) -> Result<Desired, String> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| format!("{name}: {e}"))?;
    let (manifests, diags) = rk8s_api::manifest::decode(&name, &text);
    if !diags.is_empty() {
        return Err(diags
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"));
    }
    let mut pod = match manifests.as_slice() {
        [one] => match &one.object {
            AnyObject::Pod(pod) => pod.as_ref().clone(),
            other => {
                return Err(format!(
                    "{name}: a static pod file holds a Pod, not a {}",
                    other.kind().kind
                ));
            }
        },
        _ => {
            return Err(format!(
                "{name}: a static pod file holds one Pod, not {}",
                manifests.len()
            ));
        }
    };
    let hash = crate::image::sha256(format!("{name}\n{text}").as_bytes());
    let hex = hash.trim_start_matches("sha256:");
    let uid = format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    let base = pod.metadata.name.clone().unwrap_or_default();
    pod.metadata.name = Some(format!("{base}-{node}"));
    pod.metadata
        .namespace
        .get_or_insert_with(|| "default".to_string());
    pod.metadata.uid = Some(uid);
    let annotations = pod
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    annotations.insert(FILE_ANNOTATION.to_string(), name);
    annotations.insert(HASH_ANNOTATION.to_string(), hex[..32].to_string());
    annotations.insert(SOURCE_ANNOTATION.to_string(), "file".to_string());
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = Some(node.to_string());
    }
    Ok(Desired {
        file: file.to_path_buf(),
        hash: hex[..32].to_string(),
        pod,
    })
}

/// A change to make.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start this pod.
    Start(Box<Desired>),
    /// Stop the pod with this uid (its file changed or went away).
    Stop {
        /// The pod.
        uid: String,
        /// Its file.
        file: String,
    },
}

fn annotation<'a>(record: &'a PodRecord, key: &str) -> Option<&'a str> {
    record
        .pod
        .metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// The changes that make the running static pods match the manifests (pure).
pub fn plan(manifests: &Manifests, running: &[PodRecord]) -> Vec<Action> {
    let mut actions = Vec::new();
    let statics: Vec<&PodRecord> = running
        .iter()
        .filter(|r| annotation(r, FILE_ANNOTATION).is_some())
        .collect();
    for record in &statics {
        let file = annotation(record, FILE_ANNOTATION).unwrap_or_default();
        let hash = annotation(record, HASH_ANNOTATION).unwrap_or_default();
        let wanted = manifests
            .desired
            .iter()
            .find(|d| d.file.display().to_string() == file);
        let unreadable = manifests
            .errors
            .keys()
            .any(|f| f.display().to_string() == file);
        let keep = wanted.is_some_and(|d| d.hash == hash) || (wanted.is_none() && unreadable);
        if !keep {
            actions.push(Action::Stop {
                uid: record.uid.clone(),
                file: file.to_string(),
            });
        }
    }
    for desired in &manifests.desired {
        let file = desired.file.display().to_string();
        let current = statics.iter().any(|r| {
            annotation(r, FILE_ANNOTATION) == Some(file.as_str())
                && annotation(r, HASH_ANNOTATION) == Some(desired.hash.as_str())
        });
        if !current {
            actions.push(Action::Start(Box::new(desired.clone())));
        }
    }
    actions
}

/// Keeps the pods of a manifest directory running on `runtime`.
#[derive(Debug)]
pub struct StaticPods {
    dir: PathBuf,
    node: String,
    runtime: Arc<PodRuntime>,
    grace: Duration,
}

impl StaticPods {
    /// Static pods from `dir` for node `node`.
    pub fn new(dir: impl Into<PathBuf>, node: impl Into<String>, runtime: Arc<PodRuntime>) -> Self {
        Self {
            dir: dir.into(),
            node: node.into(),
            runtime,
            grace: Duration::from_secs(30),
        }
    }

    /// The grace period when a pod is stopped (its own terminationGracePeriodSeconds
    /// wins when set).
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// One pass: read the directory, start, replace and stop pods, then sync every
    /// static pod (restart policies). Returns the files that could not be used.
    pub async fn reconcile(&self) -> Result<BTreeMap<PathBuf, String>> {
        let dir = self.dir.clone();
        let node = self.node.clone();
        let manifests = tokio::task::spawn_blocking(move || read_manifests(&dir, &node))
            .await
            .unwrap_or_default();
        let running = self.runtime.pods()?;
        for action in plan(&manifests, &running) {
            match action {
                Action::Stop { uid, file } => {
                    tracing::info!(%file, %uid, "static pod stopped");
                    let grace = running
                        .iter()
                        .find(|r| r.uid == uid)
                        .and_then(|r| r.pod.spec.as_ref()?.termination_grace_period_seconds)
                        .and_then(|s| u64::try_from(s).ok())
                        .map_or(self.grace, Duration::from_secs);
                    self.runtime.stop_pod(&uid, grace).await?;
                }
                Action::Start(desired) => {
                    tracing::info!(file = %desired.file.display(), "static pod started");
                    if let Err(e) = self.runtime.run_pod(&desired.pod).await {
                        tracing::warn!(file = %desired.file.display(), "static pod failed to start: {e}");
                    }
                }
            }
        }
        for record in self.runtime.pods()? {
            if annotation(&record, FILE_ANNOTATION).is_some() {
                self.runtime
                    .sync_pod(&record.uid, crate::container::now_ns())
                    .await?;
            }
        }
        for (file, message) in &manifests.errors {
            tracing::warn!(file = %file.display(), "{message}");
        }
        Ok(manifests.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn record(desired: &Desired) -> PodRecord {
        PodRecord {
            pod: desired.pod.clone(),
            uid: desired.pod.metadata.uid.clone().unwrap(),
            engine: Default::default(),
            attachment: None,
            pause_id: String::new(),
            containers: Default::default(),
            created_at_ns: 0,
        }
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n";

    #[test]
    fn new_changed_and_removed_files_start_replace_and_stop_pods() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "web.yaml", POD);
        write(dir.path(), "notes.txt", "not a manifest");
        let first = read_manifests(dir.path(), "node1");
        assert_eq!(first.desired.len(), 1);
        let pod = &first.desired[0].pod;
        assert_eq!(pod.metadata.name.as_deref(), Some("web-node1"));
        assert_eq!(
            pod.spec.as_ref().unwrap().node_name.as_deref(),
            Some("node1")
        );
        let actions = plan(&first, &[]);
        assert!(matches!(actions.as_slice(), [Action::Start(_)]));
        let running = vec![record(&first.desired[0])];
        assert!(
            plan(&first, &running).is_empty(),
            "nothing changes while the file does not"
        );

        write(dir.path(), "web.yaml", &POD.replace("busybox", "busybox:1"));
        let edited = read_manifests(dir.path(), "node1");
        let actions = plan(&edited, &running);
        assert!(
            matches!(actions.as_slice(), [Action::Stop { .. }, Action::Start(_)]),
            "{actions:?}"
        );

        std::fs::remove_file(dir.path().join("web.yaml")).unwrap();
        let gone = read_manifests(dir.path(), "node1");
        assert!(matches!(
            plan(&gone, &running).as_slice(),
            [Action::Stop { .. }]
        ));
    }

    #[test]
    fn a_broken_file_is_reported_and_its_running_pod_kept() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "web.yaml", POD);
        let good = read_manifests(dir.path(), "n");
        let running = vec![record(&good.desired[0])];
        write(
            dir.path(),
            "web.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    imagee: busybox\n",
        );
        let broken = read_manifests(dir.path(), "n");
        assert!(broken.desired.is_empty());
        let message = broken.errors.values().next().unwrap();
        assert!(
            message.contains("web.yaml:8:5") && message.contains("imagee"),
            "{message}"
        );
        assert!(plan(&broken, &running).is_empty());
    }
}

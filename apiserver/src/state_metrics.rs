//! Object-state series in the style of kube-state-metrics, named and labelled as it
//! names them, computed from the objects when `/metrics` is scraped: pods' phase and
//! readiness, Deployments' and ReplicaSets' replicas, nodes' conditions, Jobs'
//! counts and HorizontalPodAutoscalers' bounds and replicas. No extra deployment.
//!
//! Written as text exposition straight from the stored objects and sent as it is
//! written ([`ObjectSeries`]): the text format wants each family's samples together,
//! so the objects of a family's kind are read once per family, a page at a time, at
//! one revision, and each page's lines go out in pieces of about [`PIECE`] bytes
//! before the next page is read. A scrape holds one page and one piece, whatever the
//! cluster's size. Each object is read into a small view of the fields its family
//! needs (the JSON reader skips the rest). Decoding every object and building the
//! series as `prometheus` metrics first took 40 s and about 5 GB at 150,000 pods; the
//! text of them all, made before any was sent, some 120 MB.

use std::collections::VecDeque;
use std::fmt::Write as _;

use bytes::Bytes;
use rk8s_http::body::PIECE;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use rk8s_api::stored::StoredView;

use crate::cursor::Cursor;
use crate::list_options::Filter;
use crate::registry::Registry;
use crate::status::{ApiError, ApiResult};

const PHASES: [&str; 5] = ["Pending", "Running", "Succeeded", "Failed", "Unknown"];

/// kube-state-metrics' `true`/`false`/`unknown` for a condition status.
fn statuses(status: &str) -> [(&'static str, i64); 3] {
    let is = |s: &str| i64::from(status.eq_ignore_ascii_case(s));
    [
        ("true", is("True")),
        ("false", is("False")),
        ("unknown", is("Unknown")),
    ]
}

/// How many objects a scrape reads from the store at a time.
pub const SCRAPE_PAGE: i64 = 1000;

/// One family of series: the kind it is read from, and how one object of that kind
/// writes its samples.
pub struct Spec {
    /// The kind's name.
    pub kind: &'static str,
    name: &'static str,
    help: &'static str,
    samples: fn(&[u8], &mut Family) -> serde_json::Result<()>,
}

/// Every family, in the order a scrape writes them.
pub const FAMILIES: [Spec; 18] = [
    Spec {
        kind: "Pod",
        name: "kube_pod_status_phase",
        help: "The pods current phase.",
        samples: pod_phase,
    },
    Spec {
        kind: "Pod",
        name: "kube_pod_status_ready",
        help: "Describes whether the pod is ready to serve requests.",
        samples: pod_ready,
    },
    Spec {
        kind: "Deployment",
        name: "kube_deployment_spec_replicas",
        help: "Number of desired pods for a deployment.",
        samples: |j, f| workload(j, f, "deployment", |spec, _| spec.replicas.unwrap_or(1)),
    },
    Spec {
        kind: "Deployment",
        name: "kube_deployment_status_replicas",
        help: "The number of replicas per deployment.",
        samples: |j, f| workload(j, f, "deployment", |_, s| s.replicas.unwrap_or(0)),
    },
    Spec {
        kind: "Deployment",
        name: "kube_deployment_status_replicas_available",
        help: "The number of available replicas per deployment.",
        samples: |j, f| workload(j, f, "deployment", |_, s| s.available_replicas.unwrap_or(0)),
    },
    Spec {
        kind: "Deployment",
        name: "kube_deployment_status_replicas_unavailable",
        help: "The number of unavailable replicas per deployment.",
        samples: |j, f| {
            workload(j, f, "deployment", |_, s| {
                s.unavailable_replicas.unwrap_or(0)
            })
        },
    },
    Spec {
        kind: "Deployment",
        name: "kube_deployment_status_replicas_updated",
        help: "The number of updated replicas per deployment.",
        samples: |j, f| workload(j, f, "deployment", |_, s| s.updated_replicas.unwrap_or(0)),
    },
    Spec {
        kind: "ReplicaSet",
        name: "kube_replicaset_spec_replicas",
        help: "Number of desired pods for a ReplicaSet.",
        samples: |j, f| workload(j, f, "replicaset", |spec, _| spec.replicas.unwrap_or(1)),
    },
    Spec {
        kind: "ReplicaSet",
        name: "kube_replicaset_status_ready_replicas",
        help: "The number of ready replicas per ReplicaSet.",
        samples: |j, f| workload(j, f, "replicaset", |_, s| s.ready_replicas.unwrap_or(0)),
    },
    Spec {
        kind: "Node",
        name: "kube_node_status_condition",
        help: "The condition of a cluster node.",
        samples: node_condition,
    },
    Spec {
        kind: "Node",
        name: "kube_node_spec_unschedulable",
        help: "Whether a node can schedule new pods.",
        samples: node_unschedulable,
    },
    Spec {
        kind: "Job",
        name: "kube_job_status_active",
        help: "The number of actively running pods.",
        samples: |j, f| job(j, f, |s| s.active),
    },
    Spec {
        kind: "Job",
        name: "kube_job_status_succeeded",
        help: "The number of pods which reached Phase Succeeded.",
        samples: |j, f| job(j, f, |s| s.succeeded),
    },
    Spec {
        kind: "Job",
        name: "kube_job_status_failed",
        help: "The number of pods which reached Phase Failed.",
        samples: |j, f| job(j, f, |s| s.failed),
    },
    Spec {
        kind: "HorizontalPodAutoscaler",
        name: "kube_horizontalpodautoscaler_spec_min_replicas",
        help: "Lower limit for the number of pods that can be set by the autoscaler.",
        samples: |j, f| hpa(j, f, |spec, _| spec.min_replicas.unwrap_or(1)),
    },
    Spec {
        kind: "HorizontalPodAutoscaler",
        name: "kube_horizontalpodautoscaler_spec_max_replicas",
        help: "Upper limit for the number of pods that can be set by the autoscaler.",
        samples: |j, f| hpa(j, f, |spec, _| spec.max_replicas),
    },
    Spec {
        kind: "HorizontalPodAutoscaler",
        name: "kube_horizontalpodautoscaler_status_current_replicas",
        help: "Current number of replicas of pods managed by this autoscaler.",
        samples: |j, f| hpa(j, f, |_, s| s.current_replicas.unwrap_or(0)),
    },
    Spec {
        kind: "HorizontalPodAutoscaler",
        name: "kube_horizontalpodautoscaler_status_desired_replicas",
        help: "Desired number of replicas of pods managed by this autoscaler.",
        samples: |j, f| hpa(j, f, |_, s| s.desired_replicas),
    },
];

/// One family's text as it is written: its help and type before its first sample,
/// its lines cut into pieces of about [`PIECE`] bytes.
pub struct Family {
    spec: &'static Spec,
    /// Whether a sample (and so the header) has been written.
    started: bool,
    /// The full pieces not yet taken.
    full: Vec<Bytes>,
    /// The piece being written.
    lines: String,
}

impl Family {
    /// The family `spec`, with nothing written yet.
    pub fn new(spec: &'static Spec) -> Self {
        Family {
            spec,
            started: false,
            full: Vec::new(),
            lines: String::new(),
        }
    }

    /// Adds the samples of one stored object of the family's kind, from its JSON.
    pub fn add(&mut self, json: &[u8]) -> serde_json::Result<()> {
        (self.spec.samples)(json, self)
    }

    /// A sample; `labels` in the order they are written (by name, as the
    /// `prometheus` crate writes them).
    fn sample(&mut self, labels: &[(&str, &str)], value: i64) {
        let name = self.spec.name;
        if !self.started {
            self.started = true;
            // Writing into a String cannot fail.
            let _ = write!(
                self.lines,
                "# HELP {name} {}\n# TYPE {name} gauge\n",
                self.spec.help
            );
        }
        self.lines.push_str(name);
        self.lines.push('{');
        for (i, (name, v)) in labels.iter().enumerate() {
            if i > 0 {
                self.lines.push(',');
            }
            self.lines.push_str(name);
            self.lines.push_str("=\"");
            // The text format's escapes in label values.
            for c in v.chars() {
                match c {
                    '\\' => self.lines.push_str("\\\\"),
                    '"' => self.lines.push_str("\\\""),
                    '\n' => self.lines.push_str("\\n"),
                    c => self.lines.push(c),
                }
            }
            self.lines.push('"');
        }
        let _ = writeln!(self.lines, "}} {value}");
        if self.lines.len() >= PIECE {
            let full = std::mem::replace(&mut self.lines, String::with_capacity(PIECE + 256));
            self.full.push(Bytes::from(full));
        }
    }

    /// The pieces filled since the last call, to be sent.
    pub fn take_full(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.full)
    }

    /// What is left once every object has been added (nothing for a family without
    /// samples: it is left out, header and all).
    pub fn finish(mut self) -> Vec<Bytes> {
        let mut out = self.take_full();
        if !self.lines.is_empty() {
            out.push(Bytes::from(self.lines));
        }
        out
    }
}

/// The objects' series of one scrape, read and written as the connection takes them.
pub struct ObjectSeries {
    registry: Registry,
    page: i64,
    /// The next family to read, once the one being read (if any) is done.
    next: usize,
    /// The family being read and where its objects stand.
    reading: Option<(Family, Cursor)>,
    /// The revision every family is read at (0 until the first page is read).
    revision: i64,
    /// Written, not yet sent.
    unsent: VecDeque<Bytes>,
}

impl ObjectSeries {
    /// Every family of [`FAMILIES`], read from `registry` `page` objects at a time.
    pub fn new(registry: Registry, page: i64) -> Self {
        ObjectSeries {
            registry,
            page,
            next: 0,
            reading: None,
            revision: 0,
            unsent: VecDeque::new(),
        }
    }

    /// The next piece of text; `None` once every family has been written. A page
    /// that cannot be read (its revision compacted away mid-scrape) is an error.
    pub async fn next_piece(&mut self) -> ApiResult<Option<Bytes>> {
        loop {
            if let Some(piece) = self.unsent.pop_front() {
                return Ok(Some(piece));
            }
            let (mut family, mut cursor) = match self.reading.take() {
                Some(reading) => reading,
                None => {
                    let Some(spec) = FAMILIES.get(self.next) else {
                        return Ok(None);
                    };
                    self.next += 1;
                    let kind = rk8s_api::object::kind_named(spec.kind)
                        .ok_or_else(|| ApiError::internal(format!("no kind {}", spec.kind)))?;
                    let cursor = Cursor::new(
                        self.registry.clone(),
                        kind,
                        kind.storage_prefix(None),
                        Filter::everything(),
                    )
                    .at(self.revision);
                    (Family::new(spec), cursor)
                }
            };
            let page = cursor.next_page(self.page).await?;
            self.revision = cursor.revision();
            for item in &page.items {
                if let Err(e) = family.add(&item.kv.value) {
                    let kind = family.spec.kind;
                    tracing::debug!(kind, "object-state series of a stored object: {e}");
                }
            }
            if page.next.is_some() {
                self.unsent.extend(family.take_full());
                self.reading = Some((family, cursor));
            } else {
                self.unsent.extend(family.finish());
            }
        }
    }
}

/// What a scrape sends when a page could not be read: a comment saying why, then a
/// line no exposition parser accepts, so that Prometheus counts the scrape failed
/// rather than take the families before it for all there is (the pieces end at line
/// ends, so a body merely cut short would read as whole).
pub fn cut_short(message: &str) -> Bytes {
    let why = message.replace(['\n', '\r'], " ");
    Bytes::from(format!(
        "# rk8s: the object series end here: {why}\nrk8s_object_series_cut_short\n"
    ))
}

/// The pieces of `series` as they are written; a scrape that cannot be finished ends
/// with [`cut_short`].
pub fn pieces(series: ObjectSeries) -> impl futures_util::Stream<Item = Bytes> {
    futures_util::stream::unfold(Some(series), |series| async move {
        let mut series = series?;
        match series.next_piece().await {
            Ok(piece) => Some((piece?, Some(series))),
            Err(e) => {
                tracing::warn!("/metrics: the object series end short: {}", e.message);
                Some((cut_short(&e.message), None))
            }
        }
    })
}

fn pod_view(json: &[u8]) -> serde_json::Result<(rk8s_api::stored::StoredMeta, PodStatus)> {
    let p = StoredView::<IgnoredAny, PodStatus>::read(json)?;
    Ok((p.metadata, p.status.unwrap_or_default()))
}

fn pod_phase(json: &[u8], f: &mut Family) -> serde_json::Result<()> {
    let (m, status) = pod_view(json)?;
    let phase = status.phase.as_deref().unwrap_or("Pending");
    for each in PHASES {
        let labels = [
            ("namespace", m.namespace.as_str()),
            ("phase", each),
            ("pod", &m.name),
            ("uid", &m.uid),
        ];
        f.sample(&labels, i64::from(each == phase));
    }
    Ok(())
}

fn pod_ready(json: &[u8], f: &mut Family) -> serde_json::Result<()> {
    let (m, status) = pod_view(json)?;
    let ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .map_or("Unknown", |c| c.status.as_str());
    for (condition, v) in statuses(ready) {
        let labels = [
            ("condition", condition),
            ("namespace", &m.namespace),
            ("pod", &m.name),
            ("uid", &m.uid),
        ];
        f.sample(&labels, v);
    }
    Ok(())
}

/// A namespaced object's one sample, labelled with its name (as `label`) and its
/// namespace in name order, valued from its spec and status as `value` reads them.
fn namespaced<S, T>(
    json: &[u8],
    f: &mut Family,
    label: &str,
    value: impl FnOnce(S, T) -> i64,
) -> serde_json::Result<()>
where
    S: Default + DeserializeOwned,
    T: Default + DeserializeOwned,
{
    let v = StoredView::<S, T>::read(json)?;
    let (name, namespace) = (v.metadata.name.as_str(), v.metadata.namespace.as_str());
    let n = value(v.spec.unwrap_or_default(), v.status.unwrap_or_default());
    if label < "namespace" {
        f.sample(&[(label, name), ("namespace", namespace)], n);
    } else {
        f.sample(&[("namespace", namespace), (label, name)], n);
    }
    Ok(())
}

/// A Deployment's or ReplicaSet's sample.
fn workload(
    json: &[u8],
    f: &mut Family,
    label: &str,
    value: fn(Replicas, WorkloadStatus) -> i64,
) -> serde_json::Result<()> {
    namespaced(json, f, label, value)
}

fn job(json: &[u8], f: &mut Family, value: fn(JobStatus) -> Option<i64>) -> serde_json::Result<()> {
    namespaced(json, f, "job_name", |_: IgnoredAny, s: JobStatus| {
        value(s).unwrap_or(0)
    })
}

fn hpa(
    json: &[u8],
    f: &mut Family,
    value: fn(HpaSpec, HpaStatus) -> i64,
) -> serde_json::Result<()> {
    namespaced(json, f, "horizontalpodautoscaler", value)
}

fn node_condition(json: &[u8], f: &mut Family) -> serde_json::Result<()> {
    let n = StoredView::<IgnoredAny, NodeStatus>::read(json)?;
    let name = n.metadata.name.as_str();
    for c in n.status.and_then(|s| s.conditions).iter().flatten() {
        for (status, v) in statuses(&c.status) {
            let labels = [
                ("condition", c.type_.as_str()),
                ("node", name),
                ("status", status),
            ];
            f.sample(&labels, v);
        }
    }
    Ok(())
}

fn node_unschedulable(json: &[u8], f: &mut Family) -> serde_json::Result<()> {
    let n = StoredView::<NodeSpec, IgnoredAny>::read(json)?;
    let off = n.spec.and_then(|s| s.unschedulable).unwrap_or(false);
    f.sample(&[("node", n.metadata.name.as_str())], i64::from(off));
    Ok(())
}

#[derive(Deserialize)]
struct Condition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct PodStatus {
    phase: Option<String>,
    conditions: Option<Vec<Condition>>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Replicas {
    replicas: Option<i64>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WorkloadStatus {
    replicas: Option<i64>,
    available_replicas: Option<i64>,
    unavailable_replicas: Option<i64>,
    updated_replicas: Option<i64>,
    ready_replicas: Option<i64>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct NodeSpec {
    unschedulable: Option<bool>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct NodeStatus {
    conditions: Option<Vec<Condition>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct JobStatus {
    active: Option<i64>,
    succeeded: Option<i64>,
    failed: Option<i64>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct HpaSpec {
    min_replicas: Option<i64>,
    max_replicas: i64,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct HpaStatus {
    current_replicas: Option<i64>,
    desired_replicas: i64,
}

#[cfg(test)]
#[path = "state_metrics_tests.rs"]
mod tests;

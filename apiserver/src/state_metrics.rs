//! Object-state series in the style of kube-state-metrics, named and labelled as it
//! names them, computed from the objects when `/metrics` is scraped: pods' phase and
//! readiness, Deployments' and ReplicaSets' replicas, nodes' conditions, Jobs'
//! counts and HorizontalPodAutoscalers' bounds and replicas. No extra deployment.
//!
//! Written as text exposition straight from the stored objects, a page at a time
//! ([`StateSeries::add`]): each object is read into a small view of the fields its
//! series need (the JSON reader skips the rest), so a scrape holds its text and one
//! page. Decoding every object and building the series as `prometheus` metrics first
//! took 40 s and about 5 GB at 150,000 pods. The text is kept in pieces of
//! [`PIECE`] bytes and sent as they are ([`StateSeries::pieces`]): never joined into
//! one buffer, nor grown by doubling one (some 120 MB at 150,000 pods).

use std::fmt::Write as _;

use bytes::Bytes;

use rk8s_api::stored::StoredView;
use serde::Deserialize;
use serde::de::IgnoredAny;

/// The kinds [`StateSeries::add`] reads, by kind name.
pub const KINDS: [&str; 6] = [
    "Pod",
    "Deployment",
    "ReplicaSet",
    "Node",
    "Job",
    "HorizontalPodAutoscaler",
];

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

/// A family's text is kept in pieces of about this many bytes.
pub const PIECE: usize = 64 << 10;

/// One gauge family: its samples as exposition lines.
struct Family {
    name: &'static str,
    help: &'static str,
    /// The full pieces.
    pieces: Vec<Bytes>,
    /// The piece being written.
    lines: String,
}

impl Family {
    fn new(name: &'static str, help: &'static str) -> Self {
        Family {
            name,
            help,
            pieces: Vec::new(),
            lines: String::new(),
        }
    }

    /// A sample; `labels` in the order they are written (by name, as the
    /// `prometheus` crate writes them).
    fn sample(&mut self, labels: &[(&str, &str)], value: i64) {
        self.lines.push_str(self.name);
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
        // Writing into a String cannot fail.
        let _ = writeln!(self.lines, "}} {value}");
        if self.lines.len() >= PIECE {
            let full = std::mem::replace(&mut self.lines, String::with_capacity(PIECE + 256));
            self.pieces.push(Bytes::from(full));
        }
    }

    /// Appends the family's text to `out`: its help and type, then its samples.
    fn write(self, out: &mut Vec<Bytes>) {
        if self.pieces.is_empty() && self.lines.is_empty() {
            return;
        }
        out.push(Bytes::from(format!(
            "# HELP {} {}\n# TYPE {} gauge\n",
            self.name, self.help, self.name
        )));
        out.extend(self.pieces);
        if !self.lines.is_empty() {
            out.push(Bytes::from(self.lines));
        }
    }
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

/// The object-state series of one scrape, built object by object.
pub struct StateSeries {
    pod_phase: Family,
    pod_ready: Family,
    d_spec: Family,
    d_replicas: Family,
    d_available: Family,
    d_unavailable: Family,
    d_updated: Family,
    rs_spec: Family,
    rs_ready: Family,
    node_condition: Family,
    node_unschedulable: Family,
    job_active: Family,
    job_succeeded: Family,
    job_failed: Family,
    hpa_min: Family,
    hpa_max: Family,
    hpa_current: Family,
    hpa_desired: Family,
}

impl Default for StateSeries {
    fn default() -> Self {
        StateSeries {
            pod_phase: Family::new("kube_pod_status_phase", "The pods current phase."),
            pod_ready: Family::new(
                "kube_pod_status_ready",
                "Describes whether the pod is ready to serve requests.",
            ),
            d_spec: Family::new(
                "kube_deployment_spec_replicas",
                "Number of desired pods for a deployment.",
            ),
            d_replicas: Family::new(
                "kube_deployment_status_replicas",
                "The number of replicas per deployment.",
            ),
            d_available: Family::new(
                "kube_deployment_status_replicas_available",
                "The number of available replicas per deployment.",
            ),
            d_unavailable: Family::new(
                "kube_deployment_status_replicas_unavailable",
                "The number of unavailable replicas per deployment.",
            ),
            d_updated: Family::new(
                "kube_deployment_status_replicas_updated",
                "The number of updated replicas per deployment.",
            ),
            rs_spec: Family::new(
                "kube_replicaset_spec_replicas",
                "Number of desired pods for a ReplicaSet.",
            ),
            rs_ready: Family::new(
                "kube_replicaset_status_ready_replicas",
                "The number of ready replicas per ReplicaSet.",
            ),
            node_condition: Family::new(
                "kube_node_status_condition",
                "The condition of a cluster node.",
            ),
            node_unschedulable: Family::new(
                "kube_node_spec_unschedulable",
                "Whether a node can schedule new pods.",
            ),
            job_active: Family::new(
                "kube_job_status_active",
                "The number of actively running pods.",
            ),
            job_succeeded: Family::new(
                "kube_job_status_succeeded",
                "The number of pods which reached Phase Succeeded.",
            ),
            job_failed: Family::new(
                "kube_job_status_failed",
                "The number of pods which reached Phase Failed.",
            ),
            hpa_min: Family::new(
                "kube_horizontalpodautoscaler_spec_min_replicas",
                "Lower limit for the number of pods that can be set by the autoscaler.",
            ),
            hpa_max: Family::new(
                "kube_horizontalpodautoscaler_spec_max_replicas",
                "Upper limit for the number of pods that can be set by the autoscaler.",
            ),
            hpa_current: Family::new(
                "kube_horizontalpodautoscaler_status_current_replicas",
                "Current number of replicas of pods managed by this autoscaler.",
            ),
            hpa_desired: Family::new(
                "kube_horizontalpodautoscaler_status_desired_replicas",
                "Desired number of replicas of pods managed by this autoscaler.",
            ),
        }
    }
}

impl StateSeries {
    /// Adds the series of one stored object of `kind` (one of [`KINDS`]), from its
    /// JSON; other kinds add nothing.
    pub fn add(&mut self, kind: &str, json: &[u8]) -> serde_json::Result<()> {
        match kind {
            "Pod" => {
                let p = StoredView::<IgnoredAny, PodStatus>::read(json)?;
                let m = &p.metadata;
                let status = p.status.unwrap_or_default();
                let phase = status.phase.as_deref().unwrap_or("Pending");
                for each in PHASES {
                    let labels = [
                        ("namespace", m.namespace.as_str()),
                        ("phase", each),
                        ("pod", &m.name),
                        ("uid", &m.uid),
                    ];
                    self.pod_phase.sample(&labels, i64::from(each == phase));
                }
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
                    self.pod_ready.sample(&labels, v);
                }
            }
            "Deployment" => {
                let d = StoredView::<Replicas, WorkloadStatus>::read(json)?;
                let labels = [
                    ("deployment", d.metadata.name.as_str()),
                    ("namespace", &d.metadata.namespace),
                ];
                let s = d.status.unwrap_or_default();
                let spec = d.spec.and_then(|s| s.replicas).unwrap_or(1);
                self.d_spec.sample(&labels, spec);
                self.d_replicas.sample(&labels, s.replicas.unwrap_or(0));
                self.d_available
                    .sample(&labels, s.available_replicas.unwrap_or(0));
                self.d_unavailable
                    .sample(&labels, s.unavailable_replicas.unwrap_or(0));
                self.d_updated
                    .sample(&labels, s.updated_replicas.unwrap_or(0));
            }
            "ReplicaSet" => {
                let r = StoredView::<Replicas, WorkloadStatus>::read(json)?;
                let labels = [
                    ("namespace", r.metadata.namespace.as_str()),
                    ("replicaset", &r.metadata.name),
                ];
                let spec = r.spec.and_then(|s| s.replicas).unwrap_or(1);
                self.rs_spec.sample(&labels, spec);
                let ready = r.status.and_then(|s| s.ready_replicas).unwrap_or(0);
                self.rs_ready.sample(&labels, ready);
            }
            "Node" => {
                let n = StoredView::<NodeSpec, NodeStatus>::read(json)?;
                let name = n.metadata.name.as_str();
                for c in n.status.and_then(|s| s.conditions).iter().flatten() {
                    for (status, v) in statuses(&c.status) {
                        let labels = [
                            ("condition", c.type_.as_str()),
                            ("node", name),
                            ("status", status),
                        ];
                        self.node_condition.sample(&labels, v);
                    }
                }
                let off = n.spec.and_then(|s| s.unschedulable).unwrap_or(false);
                self.node_unschedulable
                    .sample(&[("node", name)], i64::from(off));
            }
            "Job" => {
                let j = StoredView::<IgnoredAny, JobStatus>::read(json)?;
                let labels = [
                    ("job_name", j.metadata.name.as_str()),
                    ("namespace", &j.metadata.namespace),
                ];
                let s = j.status.unwrap_or_default();
                self.job_active.sample(&labels, s.active.unwrap_or(0));
                self.job_succeeded.sample(&labels, s.succeeded.unwrap_or(0));
                self.job_failed.sample(&labels, s.failed.unwrap_or(0));
            }
            "HorizontalPodAutoscaler" => {
                let h = StoredView::<HpaSpec, HpaStatus>::read(json)?;
                let labels = [
                    ("horizontalpodautoscaler", h.metadata.name.as_str()),
                    ("namespace", &h.metadata.namespace),
                ];
                let spec = h.spec.unwrap_or_default();
                self.hpa_min.sample(&labels, spec.min_replicas.unwrap_or(1));
                self.hpa_max.sample(&labels, spec.max_replicas);
                let s = h.status.unwrap_or_default();
                self.hpa_current
                    .sample(&labels, s.current_replicas.unwrap_or(0));
                self.hpa_desired.sample(&labels, s.desired_replicas);
            }
            _ => {}
        }
        Ok(())
    }

    /// The series as text exposition, in pieces to send one after another: each
    /// family that has samples, with its help and type.
    pub fn pieces(self) -> Vec<Bytes> {
        let mut out = Vec::new();
        for f in [
            self.pod_phase,
            self.pod_ready,
            self.d_spec,
            self.d_replicas,
            self.d_available,
            self.d_unavailable,
            self.d_updated,
            self.rs_spec,
            self.rs_ready,
            self.node_condition,
            self.node_unschedulable,
            self.job_active,
            self.job_succeeded,
            self.job_failed,
            self.hpa_min,
            self.hpa_max,
            self.hpa_current,
            self.hpa_desired,
        ] {
            f.write(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_become_kube_state_metrics_series() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: default, uid: u1}\nspec: {containers: [{name: a, image: x}]}\nstatus: {phase: Running, conditions: [{type: Ready, status: 'True'}]}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: web}}\n  template: {metadata: {labels: {app: web}}, spec: {containers: [{name: a, image: x}]}}\nstatus: {replicas: 3, availableReplicas: 2}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus: {conditions: [{type: Ready, status: 'True'}]}\n---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web, namespace: default}\nspec: {scaleTargetRef: {kind: Deployment, name: web}, minReplicas: 2, maxReplicas: 5}\nstatus: {currentReplicas: 3, desiredReplicas: 4}\n";
        let mut series = StateSeries::default();
        for m in rk8s_api::manifest::load("t.yaml", text).unwrap() {
            let kind = m.object.kind().kind;
            series.add(kind, &m.object.to_json()).unwrap();
        }
        // Label values escaped as the text format wants (a name no API would take).
        let weird = br#"{"metadata": {"name": "we\"ird", "namespace": "default", "uid": "u2"}}"#;
        series.add("Pod", weird).unwrap();
        let text = joined(series);
        for line in [
            r#"kube_pod_status_phase{namespace="default",phase="Running",pod="web",uid="u1"} 1"#,
            r#"kube_pod_status_phase{namespace="default",phase="Pending",pod="web",uid="u1"} 0"#,
            r#"kube_pod_status_ready{condition="true",namespace="default",pod="web",uid="u1"} 1"#,
            r#"kube_pod_status_phase{namespace="default",phase="Pending",pod="we\"ird",uid="u2"} 1"#,
            r#"kube_pod_status_ready{condition="unknown",namespace="default",pod="we\"ird",uid="u2"} 1"#,
            r#"kube_deployment_status_replicas_available{deployment="web",namespace="default"} 2"#,
            r#"kube_deployment_spec_replicas{deployment="web",namespace="default"} 3"#,
            r#"kube_node_status_condition{condition="Ready",node="n1",status="true"} 1"#,
            r#"kube_node_spec_unschedulable{node="n1"} 0"#,
            r#"kube_horizontalpodautoscaler_status_desired_replicas{horizontalpodautoscaler="web",namespace="default"} 4"#,
            r#"kube_horizontalpodautoscaler_spec_min_replicas{horizontalpodautoscaler="web",namespace="default"} 2"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        // One header per family; families without samples (Jobs) are left out.
        assert_eq!(
            text.matches("# TYPE kube_pod_status_phase gauge\n").count(),
            1
        );
        assert!(!text.contains("kube_job_status_active"));
        // What Prometheus reads: every line a header or `name{labels} value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once("} ").unwrap();
            value.parse::<i64>().unwrap();
        }
    }

    #[test]
    fn an_object_that_does_not_read_adds_nothing() {
        let mut series = StateSeries::default();
        assert!(series.add("Pod", b"{\"metadata\": 7}").is_err());
        assert!(series.pieces().is_empty());
    }

    fn joined(series: StateSeries) -> String {
        let pieces = series.pieces();
        String::from_utf8(pieces.concat()).unwrap()
    }

    #[test]
    fn many_objects_are_kept_in_pieces_and_read_as_one_text() {
        let mut series = StateSeries::default();
        for i in 0..2_000 {
            let pod = format!(
                r#"{{"metadata": {{"name": "p-{i}", "namespace": "default", "uid": "u{i}"}}, "status": {{"phase": "Running"}}}}"#
            );
            series.add("Pod", pod.as_bytes()).unwrap();
        }
        let pieces = series.pieces();
        assert!(pieces.len() > 4, "{} pieces", pieces.len());
        assert!(pieces.iter().all(|p| p.len() < PIECE + 512));
        let text = String::from_utf8(pieces.concat()).unwrap();
        assert_eq!(
            text.matches("# TYPE kube_pod_status_phase gauge\n").count(),
            1
        );
        assert_eq!(
            text.matches("# TYPE kube_pod_status_ready gauge\n").count(),
            1
        );
        // Every pod's five phases, then every pod's three readiness values: a family
        // is never split by another's lines.
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines.len(), 2_000 * 8);
        assert!(
            lines[..10_000]
                .iter()
                .all(|l| l.starts_with("kube_pod_status_phase{"))
        );
        assert!(
            lines[10_000..]
                .iter()
                .all(|l| l.starts_with("kube_pod_status_ready{"))
        );
        assert!(text.contains(r#"kube_pod_status_phase{namespace="default",phase="Running",pod="p-1999",uid="u1999"} 1"#));
    }
}

//! Object-state series in the style of kube-state-metrics, named and labelled as it
//! names them, computed from the objects when `/metrics` is scraped: pods' phase and
//! readiness, Deployments' and ReplicaSets' replicas, nodes' conditions, Jobs'
//! counts and HorizontalPodAutoscalers' bounds and replicas. No extra deployment.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, Opts, Registry};
use rk8s_api::AnyObject;

const PHASES: [&str; 5] = ["Pending", "Running", "Succeeded", "Failed", "Unknown"];

/// kube-state-metrics' `true`/`false`/`unknown` for a condition status.
fn statuses(status: &str) -> [(&'static str, f64); 3] {
    let is = |s: &str| {
        if status.eq_ignore_ascii_case(s) {
            1.0
        } else {
            0.0
        }
    };
    [
        ("true", is("True")),
        ("false", is("False")),
        ("unknown", is("Unknown")),
    ]
}

struct Families {
    registry: Registry,
}

impl Families {
    fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<GaugeVec> {
        let g = GaugeVec::new(Opts::new(name, help), labels)?;
        self.registry.register(Box::new(g.clone()))?;
        Ok(g)
    }
}

/// The series of `objects` (any mix of kinds; others are skipped).
pub fn families(objects: &[AnyObject]) -> prometheus::Result<Vec<MetricFamily>> {
    let f = Families {
        registry: Registry::new(),
    };
    let pod_phase = f.gauge(
        "kube_pod_status_phase",
        "The pods current phase.",
        &["namespace", "pod", "uid", "phase"],
    )?;
    let pod_ready = f.gauge(
        "kube_pod_status_ready",
        "Describes whether the pod is ready to serve requests.",
        &["namespace", "pod", "uid", "condition"],
    )?;
    let deployment = |name: &str, help: &str| f.gauge(name, help, &["namespace", "deployment"]);
    let d_spec = deployment(
        "kube_deployment_spec_replicas",
        "Number of desired pods for a deployment.",
    )?;
    let d_replicas = deployment(
        "kube_deployment_status_replicas",
        "The number of replicas per deployment.",
    )?;
    let d_available = deployment(
        "kube_deployment_status_replicas_available",
        "The number of available replicas per deployment.",
    )?;
    let d_unavailable = deployment(
        "kube_deployment_status_replicas_unavailable",
        "The number of unavailable replicas per deployment.",
    )?;
    let d_updated = deployment(
        "kube_deployment_status_replicas_updated",
        "The number of updated replicas per deployment.",
    )?;
    let rs_spec = f.gauge(
        "kube_replicaset_spec_replicas",
        "Number of desired pods for a ReplicaSet.",
        &["namespace", "replicaset"],
    )?;
    let rs_ready = f.gauge(
        "kube_replicaset_status_ready_replicas",
        "The number of ready replicas per ReplicaSet.",
        &["namespace", "replicaset"],
    )?;
    let node_condition = f.gauge(
        "kube_node_status_condition",
        "The condition of a cluster node.",
        &["node", "condition", "status"],
    )?;
    let node_unschedulable = f.gauge(
        "kube_node_spec_unschedulable",
        "Whether a node can schedule new pods.",
        &["node"],
    )?;
    let job = |name: &str, help: &str| f.gauge(name, help, &["namespace", "job_name"]);
    let job_active = job(
        "kube_job_status_active",
        "The number of actively running pods.",
    )?;
    let job_succeeded = job(
        "kube_job_status_succeeded",
        "The number of pods which reached Phase Succeeded.",
    )?;
    let job_failed = job(
        "kube_job_status_failed",
        "The number of pods which reached Phase Failed.",
    )?;
    let hpa =
        |name: &str, help: &str| f.gauge(name, help, &["namespace", "horizontalpodautoscaler"]);
    let hpa_min = hpa(
        "kube_horizontalpodautoscaler_spec_min_replicas",
        "Lower limit for the number of pods that can be set by the autoscaler.",
    )?;
    let hpa_max = hpa(
        "kube_horizontalpodautoscaler_spec_max_replicas",
        "Upper limit for the number of pods that can be set by the autoscaler.",
    )?;
    let hpa_current = hpa(
        "kube_horizontalpodautoscaler_status_current_replicas",
        "Current number of replicas of pods managed by this autoscaler.",
    )?;
    let hpa_desired = hpa(
        "kube_horizontalpodautoscaler_status_desired_replicas",
        "Desired number of replicas of pods managed by this autoscaler.",
    )?;
    for object in objects {
        let meta = object.metadata();
        let ns = meta.namespace.as_deref().unwrap_or_default();
        let name = meta.name.as_deref().unwrap_or_default();
        match object {
            AnyObject::Pod(p) => {
                let p: &Pod = p;
                let uid = meta.uid.as_deref().unwrap_or_default();
                let phase = p
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .unwrap_or("Pending");
                for each in PHASES {
                    let v = if each == phase { 1.0 } else { 0.0 };
                    pod_phase.with_label_values(&[ns, name, uid, each]).set(v);
                }
                let ready = p
                    .status
                    .iter()
                    .flat_map(|s| s.conditions.iter().flatten())
                    .find(|c| c.type_ == "Ready")
                    .map_or("Unknown", |c| c.status.as_str());
                for (label, v) in statuses(ready) {
                    pod_ready.with_label_values(&[ns, name, uid, label]).set(v);
                }
            }
            AnyObject::Deployment(d) => {
                let d: &Deployment = d;
                let s = d.status.clone().unwrap_or_default();
                let labels = [ns, name];
                let spec = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                d_spec.with_label_values(&labels).set(f64::from(spec));
                d_replicas
                    .with_label_values(&labels)
                    .set(f64::from(s.replicas.unwrap_or(0)));
                d_available
                    .with_label_values(&labels)
                    .set(f64::from(s.available_replicas.unwrap_or(0)));
                d_unavailable
                    .with_label_values(&labels)
                    .set(f64::from(s.unavailable_replicas.unwrap_or(0)));
                d_updated
                    .with_label_values(&labels)
                    .set(f64::from(s.updated_replicas.unwrap_or(0)));
            }
            AnyObject::ReplicaSet(r) => {
                let r: &ReplicaSet = r;
                let spec = r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                rs_spec.with_label_values(&[ns, name]).set(f64::from(spec));
                let ready = r
                    .status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0);
                rs_ready
                    .with_label_values(&[ns, name])
                    .set(f64::from(ready));
            }
            AnyObject::Node(n) => {
                let n: &Node = n;
                for c in n.status.iter().flat_map(|s| s.conditions.iter().flatten()) {
                    for (label, v) in statuses(&c.status) {
                        node_condition
                            .with_label_values(&[name, &c.type_, label])
                            .set(v);
                    }
                }
                let off = n
                    .spec
                    .as_ref()
                    .and_then(|s| s.unschedulable)
                    .unwrap_or(false);
                node_unschedulable
                    .with_label_values(&[name])
                    .set(if off { 1.0 } else { 0.0 });
            }
            AnyObject::Job(j) => {
                let j: &Job = j;
                let s = j.status.clone().unwrap_or_default();
                let labels = [ns, name];
                job_active
                    .with_label_values(&labels)
                    .set(f64::from(s.active.unwrap_or(0)));
                job_succeeded
                    .with_label_values(&labels)
                    .set(f64::from(s.succeeded.unwrap_or(0)));
                job_failed
                    .with_label_values(&labels)
                    .set(f64::from(s.failed.unwrap_or(0)));
            }
            AnyObject::HorizontalPodAutoscaler(h) => {
                let h: &HorizontalPodAutoscaler = h;
                let labels = [ns, name];
                let spec = h.spec.clone().unwrap_or_default();
                hpa_min
                    .with_label_values(&labels)
                    .set(f64::from(spec.min_replicas.unwrap_or(1)));
                hpa_max
                    .with_label_values(&labels)
                    .set(f64::from(spec.max_replicas));
                let s = h.status.clone().unwrap_or_default();
                hpa_current
                    .with_label_values(&labels)
                    .set(f64::from(s.current_replicas.unwrap_or(0)));
                hpa_desired
                    .with_label_values(&labels)
                    .set(f64::from(s.desired_replicas));
            }
            _ => {}
        }
    }
    Ok(f.registry.gather())
}

/// The kinds [`families`] reads, by kind name.
pub const KINDS: [&str; 6] = [
    "Pod",
    "Deployment",
    "ReplicaSet",
    "Node",
    "Job",
    "HorizontalPodAutoscaler",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_become_kube_state_metrics_series() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: default, uid: u1}\nspec: {containers: [{name: a, image: x}]}\nstatus: {phase: Running, conditions: [{type: Ready, status: 'True'}]}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: web}}\n  template: {metadata: {labels: {app: web}}, spec: {containers: [{name: a, image: x}]}}\nstatus: {replicas: 3, availableReplicas: 2}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus: {conditions: [{type: Ready, status: 'True'}]}\n---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web, namespace: default}\nspec: {scaleTargetRef: {kind: Deployment, name: web}, minReplicas: 2, maxReplicas: 5}\nstatus: {currentReplicas: 3, desiredReplicas: 4}\n";
        let objects: Vec<AnyObject> = rk8s_api::manifest::load("t.yaml", text)
            .unwrap()
            .into_iter()
            .map(|m| m.object)
            .collect();
        let mut out = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &families(&objects).unwrap(),
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        for line in [
            r#"kube_pod_status_phase{namespace="default",phase="Running",pod="web",uid="u1"} 1"#,
            r#"kube_pod_status_phase{namespace="default",phase="Pending",pod="web",uid="u1"} 0"#,
            r#"kube_pod_status_ready{condition="true",namespace="default",pod="web",uid="u1"} 1"#,
            r#"kube_deployment_status_replicas_available{deployment="web",namespace="default"} 2"#,
            r#"kube_deployment_spec_replicas{deployment="web",namespace="default"} 3"#,
            r#"kube_node_status_condition{condition="Ready",node="n1",status="true"} 1"#,
            r#"kube_horizontalpodautoscaler_status_desired_replicas{horizontalpodautoscaler="web",namespace="default"} 4"#,
            r#"kube_horizontalpodautoscaler_spec_min_replicas{horizontalpodautoscaler="web",namespace="default"} 2"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}

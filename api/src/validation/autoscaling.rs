//! HorizontalPodAutoscalers (autoscaling/v2): bounds, metric sources, targets, behavior.

use k8s_openapi::api::autoscaling::v2::{
    HPAScalingRules, HorizontalPodAutoscaler, MetricSpec, MetricTarget,
};

use super::Errors;
use crate::path::FieldPath;

const METRIC_TYPES: &[&str] = &[
    "Object",
    "Pods",
    "Resource",
    "ContainerResource",
    "External",
];

pub(super) fn hpa(errs: &mut Errors, hpa: &HorizontalPodAutoscaler) {
    let path = FieldPath::root().key("spec");
    let Some(spec) = &hpa.spec else {
        return errs.required(&path);
    };
    let target = path.key("scaleTargetRef");
    if spec.scale_target_ref.kind.is_empty() {
        errs.required(&target.key("kind"));
    }
    if spec.scale_target_ref.name.is_empty() {
        errs.required(&target.key("name"));
    }
    let min = spec.min_replicas.unwrap_or(1);
    // Scale to zero (Kubernetes' HPAScaleToZero) needs a metric that is not measured
    // on the pods, or nothing would bring them back.
    let to_zero = spec
        .metrics
        .iter()
        .flatten()
        .any(|m| m.type_ == "Object" || m.type_ == "External");
    if min < 0 || (min == 0 && !to_zero) {
        errs.invalid(
            &path.key("minReplicas"),
            min,
            "must be greater than or equal to 1 (0 only with an Object or External metric)",
        );
    }
    if spec.max_replicas < 1 {
        errs.invalid(
            &path.key("maxReplicas"),
            spec.max_replicas,
            "must be greater than or equal to 1",
        );
    } else if spec.max_replicas < min {
        errs.invalid(
            &path.key("maxReplicas"),
            spec.max_replicas,
            format!("must be greater than or equal to `minReplicas` ({min})"),
        );
    }
    for (i, m) in spec.metrics.iter().flatten().enumerate() {
        metric(errs, &path.key("metrics").index(i), m);
    }
    if let Some(b) = &spec.behavior {
        let p = path.key("behavior");
        if let Some(r) = &b.scale_up {
            rules(errs, &p.key("scaleUp"), r);
        }
        if let Some(r) = &b.scale_down {
            rules(errs, &p.key("scaleDown"), r);
        }
    }
}

fn metric(errs: &mut Errors, path: &FieldPath, m: &MetricSpec) {
    errs.one_of(&path.key("type"), &m.type_, METRIC_TYPES);
    let sources = [
        ("object", m.object.is_some()),
        ("pods", m.pods.is_some()),
        ("resource", m.resource.is_some()),
        ("containerResource", m.container_resource.is_some()),
        ("external", m.external.is_some()),
    ];
    let expected = match m.type_.as_str() {
        "Object" => "object",
        "Pods" => "pods",
        "Resource" => "resource",
        "ContainerResource" => "containerResource",
        "External" => "external",
        _ => "",
    };
    for (field, set) in sources {
        if field == expected && !set {
            errs.message(
                &path.key(field),
                "required value: must populate information for the given metric source",
            );
        } else if field != expected && set && !expected.is_empty() {
            errs.forbidden(
                &path.key(field),
                "must populate the given metric source only",
            );
        }
    }
    if let Some(r) = &m.resource {
        let p = path.key("resource");
        if r.name.is_empty() {
            errs.required(&p.key("name"));
        }
        target(
            errs,
            &p.key("target"),
            &r.target,
            &["Utilization", "AverageValue"],
        );
    }
    if let Some(r) = &m.container_resource {
        let p = path.key("containerResource");
        if r.name.is_empty() {
            errs.required(&p.key("name"));
        }
        if r.container.is_empty() {
            errs.required(&p.key("container"));
        }
        target(
            errs,
            &p.key("target"),
            &r.target,
            &["Utilization", "AverageValue"],
        );
    }
    if let Some(pods) = &m.pods {
        let p = path.key("pods");
        if pods.metric.name.is_empty() {
            errs.required(&p.key("metric").key("name"));
        }
        target(errs, &p.key("target"), &pods.target, &["AverageValue"]);
    }
    if let Some(o) = &m.object {
        let p = path.key("object");
        if o.described_object.kind.is_empty() {
            errs.required(&p.key("describedObject").key("kind"));
        }
        if o.described_object.name.is_empty() {
            errs.required(&p.key("describedObject").key("name"));
        }
        if o.metric.name.is_empty() {
            errs.required(&p.key("metric").key("name"));
        }
        target(
            errs,
            &p.key("target"),
            &o.target,
            &["Value", "AverageValue"],
        );
    }
    if let Some(e) = &m.external {
        let p = path.key("external");
        if e.metric.name.is_empty() {
            errs.required(&p.key("metric").key("name"));
        }
        target(
            errs,
            &p.key("target"),
            &e.target,
            &["Value", "AverageValue"],
        );
    }
}

fn target(errs: &mut Errors, path: &FieldPath, t: &MetricTarget, types: &[&str]) {
    errs.one_of(&path.key("type"), &t.type_, types);
    let positive =
        |errs: &mut Errors,
         field: &str,
         q: &Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>| {
            match q {
                None => errs.message(
                    &path.key(field),
                    format!(
                        "required value: must be set when the target type is {}",
                        t.type_
                    ),
                ),
                Some(q) => {
                    if let Some(v) = errs.quantity(&path.key(field), q)
                        && v.signum() <= 0
                    {
                        errs.invalid(&path.key(field), &q.0, "must be positive");
                    }
                }
            }
        };
    match t.type_.as_str() {
        "Utilization" => match t.average_utilization {
            None => errs.message(
                &path.key("averageUtilization"),
                "required value: must be set when the target type is Utilization",
            ),
            Some(u) if u <= 0 => {
                errs.invalid(&path.key("averageUtilization"), u, "must be greater than 0")
            }
            Some(_) => {}
        },
        "Value" => positive(errs, "value", &t.value),
        "AverageValue" => positive(errs, "averageValue", &t.average_value),
        _ => {}
    }
}

fn rules(errs: &mut Errors, path: &FieldPath, r: &HPAScalingRules) {
    errs.in_range(
        &path.key("stabilizationWindowSeconds"),
        r.stabilization_window_seconds,
        0,
        3600,
    );
    errs.opt_one_of(
        &path.key("selectPolicy"),
        r.select_policy.as_ref(),
        &["Max", "Min", "Disabled"],
    );
    match r.policies.as_deref() {
        Some([]) => errs.message(
            &path.key("policies"),
            "required value: must specify at least one Policy",
        ),
        Some(policies) => {
            for (i, p) in policies.iter().enumerate() {
                let pp = path.key("policies").index(i);
                errs.one_of(&pp.key("type"), &p.type_, &["Pods", "Percent"]);
                if p.value <= 0 {
                    errs.invalid(&pp.key("value"), p.value, "must be greater than zero");
                }
                errs.in_range(&pp.key("periodSeconds"), Some(p.period_seconds), 1, 1800);
            }
        }
        None => {}
    }
}

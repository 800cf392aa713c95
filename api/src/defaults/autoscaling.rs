//! HorizontalPodAutoscaler defaults (autoscaling/v2 `SetDefaults_HorizontalPodAutoscaler`
//! and the scaling rules of `behavior`).

use k8s_openapi::api::autoscaling::v2::{
    HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler, MetricSpec, MetricTarget,
    ResourceMetricSource,
};

use super::{DEFAULT_HPA_CPU_UTILIZATION, set, set_str};

/// The HPA's default scale-up rules (autoscaling/v2): no stabilization, the larger of
/// 4 pods or 100% every 15 seconds.
pub fn default_scale_up() -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: Some(0),
        select_policy: Some("Max".into()),
        policies: Some(vec![
            HPAScalingPolicy {
                type_: "Pods".into(),
                value: 4,
                period_seconds: 15,
            },
            HPAScalingPolicy {
                type_: "Percent".into(),
                value: 100,
                period_seconds: 15,
            },
        ]),
        tolerance: None,
    }
}

/// The HPA's default scale-down rules: a 300-second stabilization window, then up to
/// 100% every 15 seconds.
pub fn default_scale_down() -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: Some(300),
        select_policy: Some("Max".into()),
        policies: Some(vec![HPAScalingPolicy {
            type_: "Percent".into(),
            value: 100,
            period_seconds: 15,
        }]),
        tolerance: None,
    }
}

/// Fills the unset parts of user rules from the defaults, part by part.
pub fn merge_rules(rules: &mut Option<HPAScalingRules>, defaults: HPAScalingRules) {
    match rules {
        None => *rules = Some(defaults),
        Some(r) => {
            set(
                &mut r.stabilization_window_seconds,
                defaults.stabilization_window_seconds.unwrap_or(0),
            );
            set_str(&mut r.select_policy, "Max");
            if r.policies.is_none() {
                r.policies = defaults.policies;
            }
        }
    }
}

pub(super) fn hpa(h: &mut HorizontalPodAutoscaler) {
    let Some(spec) = &mut h.spec else { return };
    set(&mut spec.min_replicas, 1);
    if spec.metrics.as_ref().is_none_or(|m| m.is_empty()) {
        spec.metrics = Some(vec![MetricSpec {
            type_: "Resource".into(),
            resource: Some(ResourceMetricSource {
                name: "cpu".into(),
                target: MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(DEFAULT_HPA_CPU_UTILIZATION),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }]);
    }
    // A behavior given is completed with the default rules; none stays none, and the
    // controller uses the default rules (kube's
    // `SetDefaults_HorizontalPodAutoscalerBehavior`).
    if let Some(behavior) = &mut spec.behavior {
        merge_rules(&mut behavior.scale_up, default_scale_up());
        merge_rules(&mut behavior.scale_down, default_scale_down());
    }
}

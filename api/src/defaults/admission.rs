//! Admission webhook and policy defaults (admissionregistration/v1).

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, RuleWithOperations, ServiceReference, ValidatingAdmissionPolicy,
    ValidatingWebhookConfiguration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::{set, set_str};

/// The fields every webhook has, defaulted alike (`SetDefaults_ValidatingWebhook`,
/// `_MutatingWebhook`): a failed call refuses the request, equivalent versions of a
/// resource match, empty selectors match everything, calls time out after 10 s.
struct Webhook<'a> {
    failure_policy: &'a mut Option<String>,
    match_policy: &'a mut Option<String>,
    namespace_selector: &'a mut Option<LabelSelector>,
    object_selector: &'a mut Option<LabelSelector>,
    timeout_seconds: &'a mut Option<i32>,
    rules: &'a mut Option<Vec<RuleWithOperations>>,
    service: Option<&'a mut ServiceReference>,
}

impl Webhook<'_> {
    fn default(self) {
        set_str(self.failure_policy, "Fail");
        set_str(self.match_policy, "Equivalent");
        set(self.namespace_selector, LabelSelector::default());
        set(self.object_selector, LabelSelector::default());
        set(self.timeout_seconds, 10);
        for rule in self.rules.iter_mut().flatten() {
            set_str(&mut rule.scope, "*");
        }
        if let Some(service) = self.service {
            set(&mut service.port, 443);
        }
    }
}

pub(super) fn mutating(c: &mut MutatingWebhookConfiguration) {
    for w in c.webhooks.iter_mut().flatten() {
        set_str(&mut w.reinvocation_policy, "Never");
        Webhook {
            failure_policy: &mut w.failure_policy,
            match_policy: &mut w.match_policy,
            namespace_selector: &mut w.namespace_selector,
            object_selector: &mut w.object_selector,
            timeout_seconds: &mut w.timeout_seconds,
            rules: &mut w.rules,
            service: w.client_config.service.as_mut(),
        }
        .default();
    }
}

pub(super) fn validating(c: &mut ValidatingWebhookConfiguration) {
    for w in c.webhooks.iter_mut().flatten() {
        Webhook {
            failure_policy: &mut w.failure_policy,
            match_policy: &mut w.match_policy,
            namespace_selector: &mut w.namespace_selector,
            object_selector: &mut w.object_selector,
            timeout_seconds: &mut w.timeout_seconds,
            rules: &mut w.rules,
            service: w.client_config.service.as_mut(),
        }
        .default();
    }
}

/// `SetDefaults_ValidatingAdmissionPolicySpec` and `_MatchResources`.
pub(super) fn policy(p: &mut ValidatingAdmissionPolicy) {
    let Some(spec) = &mut p.spec else { return };
    set_str(&mut spec.failure_policy, "Fail");
    let Some(m) = &mut spec.match_constraints else {
        return;
    };
    set_str(&mut m.match_policy, "Equivalent");
    set(&mut m.namespace_selector, LabelSelector::default());
    set(&mut m.object_selector, LabelSelector::default());
    let rules = m.resource_rules.iter_mut().flatten();
    let excluded = m.exclude_resource_rules.iter_mut().flatten();
    for rule in rules.chain(excluded) {
        set_str(&mut rule.scope, "*");
    }
}

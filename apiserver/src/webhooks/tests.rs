#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::admissionregistration::v1::RuleWithOperations;
use rk8s_api::object::kind_named;
use serde_json::json;

use super::denied;
use super::matching::{Operation, rule_matches};

fn rule(v: serde_json::Value) -> RuleWithOperations {
    serde_json::from_value(v).unwrap()
}

#[test]
fn rules_match_operations_groups_versions_and_resources() {
    let pods = kind_named("Pod").unwrap();
    let deployments = kind_named("Deployment").unwrap();
    let r = rule(
        json!({"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
        "resources": ["pods"]}),
    );
    assert!(rule_matches(&r, Operation::Create, &pods, None));
    assert!(!rule_matches(&r, Operation::Update, &pods, None));
    assert!(!rule_matches(&r, Operation::Create, &pods, Some("status")));
    assert!(!rule_matches(&r, Operation::Create, &deployments, None));
    let any = rule(
        json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"],
        "resources": ["*"]}),
    );
    assert!(rule_matches(&any, Operation::Delete, &deployments, None));
    assert!(!rule_matches(
        &any,
        Operation::Update,
        &deployments,
        Some("status")
    ));
}

#[test]
fn subresource_patterns_follow_kube() {
    let pods = kind_named("Pod").unwrap();
    let with = |res: &str, sub: Option<&str>| {
        let r = rule(
            json!({"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
            "resources": [res]}),
        );
        rule_matches(&r, Operation::Update, &pods, sub)
    };
    assert!(with("pods/status", Some("status")));
    assert!(with("*/status", Some("status")));
    assert!(with("pods/*", Some("status")));
    assert!(with("pods/*", None));
    assert!(with("*/*", Some("status")));
    assert!(!with("pods/status", None));
    assert!(!with("*", Some("status")));
}

#[test]
fn scope_limits_a_rule() {
    let pods = kind_named("Pod").unwrap();
    let nodes = kind_named("Node").unwrap();
    let r = |scope: &str| {
        rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"],
            "resources": ["*"], "scope": scope}),
        )
    };
    assert!(rule_matches(
        &r("Namespaced"),
        Operation::Create,
        &pods,
        None
    ));
    assert!(!rule_matches(
        &r("Namespaced"),
        Operation::Create,
        &nodes,
        None
    ));
    assert!(rule_matches(&r("Cluster"), Operation::Create, &nodes, None));
    assert!(!rule_matches(&r("Cluster"), Operation::Create, &pods, None));
}

#[test]
fn a_refusal_reads_as_kube_apiserver_words_it() {
    let e = denied(
        "deny.example.com",
        Some(&json!({"code": 403, "message": "no latest tags"})),
    );
    assert_eq!(e.code, http::StatusCode::FORBIDDEN);
    assert_eq!(
        e.message,
        "admission webhook \"deny.example.com\" denied the request: no latest tags"
    );
    let e = denied("d", Some(&json!({"code": 200, "reason": "Forbidden"})));
    assert_eq!(e.code, http::StatusCode::BAD_REQUEST);
    assert_eq!(e.reason, "Forbidden");
    assert_eq!(
        e.message,
        "admission webhook \"d\" denied the request: Forbidden"
    );
    let e = denied("d", None);
    assert_eq!(
        e.message,
        "admission webhook \"d\" denied the request without explanation"
    );
}

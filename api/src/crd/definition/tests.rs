//! Tests of CRD validation, defaulting and status.

use serde_json::{Value, json};

use super::*;
use crate::crd::fixtures::{crontab_crd, crontab_json};
use crate::crd::validate::kubernetes_message;

fn crd_from(v: Value) -> CustomResourceDefinition {
    let mut crd: CustomResourceDefinition = serde_json::from_value(v).unwrap();
    default_crd(&mut crd);
    crd
}

fn errors(crd: &CustomResourceDefinition) -> Vec<String> {
    validate_crd(crd).iter().map(kubernetes_message).collect()
}

fn now() -> Time {
    serde_json::from_value(json!("2026-01-01T00:00:00Z")).unwrap()
}

#[test]
fn defaulting_fills_singular_list_kind_and_conversion() {
    let mut v = crontab_json();
    v["spec"]["names"] = json!({"plural": "crontabs", "kind": "CronTab"});
    let crd = crd_from(v);
    assert_eq!(crd.spec.names.singular.as_deref(), Some("crontab"));
    assert_eq!(crd.spec.names.list_kind.as_deref(), Some("CronTabList"));
    assert_eq!(crd.spec.conversion.unwrap().strategy, "None");
}

#[test]
fn the_crontab_crd_is_valid() {
    let mut crd = crontab_crd();
    default_crd(&mut crd);
    assert_eq!(errors(&crd), Vec::<String>::new());
}

#[test]
fn the_name_must_be_plural_dot_group() {
    let mut v = crontab_json();
    v["metadata"]["name"] = json!("crontab.stable.example.com");
    assert_eq!(
        errors(&crd_from(v)),
        [
            r#"metadata.name: Invalid value: "crontab.stable.example.com": must be spec.names.plural+"."+spec.group"#
        ]
    );
}

#[test]
fn scope_and_group_are_checked() {
    let mut v = crontab_json();
    v["spec"]["scope"] = json!("Global");
    v["spec"]["group"] = json!("example");
    v["metadata"]["name"] = json!("crontabs.example");
    assert_eq!(
        errors(&crd_from(v)),
        [
            r#"spec.group: Invalid value: "example": should be a domain with at least one dot"#,
            r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#,
        ]
    );
}

#[test]
fn exactly_one_version_is_stored() {
    let mut v = crontab_json();
    v["spec"]["versions"][0]["storage"] = json!(true);
    assert_eq!(
        errors(&crd_from(v)),
        ["spec.versions: must have exactly one version marked as storage version"]
    );
    let mut v = crontab_json();
    v["spec"]["versions"] = json!([]);
    assert_eq!(
        errors(&crd_from(v)),
        ["spec.versions: must have exactly one version marked as storage version"]
    );
}

#[test]
fn version_names_are_unique_dns_labels() {
    let mut v = crontab_json();
    v["spec"]["versions"][0]["name"] = json!("v1");
    let errs = errors(&crd_from(v));
    assert_eq!(errs, ["spec.versions: must contain unique version names"]);
    let mut v = crontab_json();
    v["spec"]["versions"][0]["name"] = json!("V1Beta1");
    let errs = errors(&crd_from(v));
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with(r#"spec.versions[0].name: Invalid value: "V1Beta1": a DNS-1035 label"#)
    );
}

#[test]
fn a_version_needs_a_structural_schema() {
    let mut v = crontab_json();
    v["spec"]["versions"][0]["schema"] = Value::Null;
    v["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["extra"] =
        json!({"description": "untyped"});
    assert_eq!(
        errors(&crd_from(v)),
        [
            "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required",
            "spec.versions[1].schema.openAPIV3Schema.properties.spec.properties.extra.type: Required value: must not be empty for specified object fields",
        ]
    );
}

#[test]
fn names_follow_the_lowercase_rules() {
    let mut v = crontab_json();
    v["spec"]["names"] = json!({"plural": "CronTabs", "singular": "crontab", "kind": "Cron_Tab",
        "listKind": "Cron_Tab", "shortNames": ["c t"]});
    v["metadata"]["name"] = json!("CronTabs.stable.example.com");
    let errs = errors(&crd_from(v));
    let fields: Vec<&str> = errs.iter().map(|e| e.split(':').next().unwrap()).collect();
    assert_eq!(
        fields,
        [
            "metadata.name",
            "spec.names.plural",
            "spec.names.kind",
            "spec.names.listKind",
            "spec.names.shortNames[0]",
            "spec.names.listKind",
        ]
    );
    assert!(errs[2].contains("may have mixed case, but should otherwise match"));
    assert!(errs[5].ends_with("kind and listKind may not be the same"));
}

#[test]
fn conversion_webhooks_are_refused_with_a_reason() {
    let mut v = crontab_json();
    v["spec"]["conversion"] = json!({"strategy": "Webhook",
        "webhook": {"conversionReviewVersions": ["v1"],
                    "clientConfig": {"url": "https://conv.example.com"}}});
    assert_eq!(
        errors(&crd_from(v)),
        [
            "spec.conversion.strategy: Forbidden: rk8s does not support conversion webhooks: use strategy None (objects of every served version are then converted by rewriting apiVersion only)"
        ]
    );
}

#[test]
fn scale_paths_and_printer_columns_are_checked() {
    let mut v = crontab_json();
    v["spec"]["versions"][1]["subresources"]["scale"]["specReplicasPath"] =
        json!(".status.replicas");
    v["spec"]["versions"][1]["additionalPrinterColumns"][0]["type"] = json!("text");
    v["spec"]["versions"][1]["additionalPrinterColumns"][1]["jsonPath"] = json!("spec.replicas");
    assert_eq!(
        errors(&crd_from(v)),
        [
            r#"spec.versions[1].subresources[scale.specReplicasPath]: Invalid value: ".status.replicas": should be a json path under .spec"#,
            r#"spec.versions[1].additionalPrinterColumns[0].type: Invalid value: "text": must be one of boolean,date,integer,number,string"#,
            r#"spec.versions[1].additionalPrinterColumns[1].JSONPath: Invalid value: "spec.replicas": must be a simple json path starting with ."#,
        ]
    );
}

#[test]
fn updates_keep_group_and_plural_and_every_stored_version() {
    let mut old = crontab_crd();
    prepare_for_create(&mut old);
    old.status = Some(compute_status(&old, &TakenNames::default(), &now()));
    let mut new = old.clone();
    new.spec.group = "other.example.com".into();
    new.spec.versions.retain(|v| v.name == "v1beta1");
    new.spec.versions[0].storage = true;
    new.metadata.name = Some("crontabs.other.example.com".into());
    prepare_for_update(&mut new, &old);
    let errs: Vec<String> = validate_crd_update(&new, &old)
        .iter()
        .map(kubernetes_message)
        .collect();
    assert_eq!(
        errs,
        [
            r#"spec.group: Invalid value: "other.example.com": field is immutable"#,
            r#"status.storedVersions[0]: Invalid value: "v1": missing from spec.versions; v1 was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in v1 and removes v1 from status.storedVersions"#,
        ]
    );
    assert_eq!(new.metadata.generation, Some(2));
    assert_eq!(
        new.status.unwrap().stored_versions.unwrap(),
        ["v1", "v1beta1"]
    );
}

#[test]
fn a_crd_without_conflicts_is_accepted_and_established() {
    let mut crd = crontab_crd();
    prepare_for_create(&mut crd);
    let status = compute_status(&crd, &TakenNames::default(), &now());
    let names = status.accepted_names.unwrap();
    assert_eq!(names.plural, "crontabs");
    assert_eq!(names.list_kind.as_deref(), Some("CronTabList"));
    assert_eq!(names.short_names.unwrap(), ["ct"]);
    let conditions = status.conditions.unwrap();
    let summary: Vec<(&str, &str, &str)> = conditions
        .iter()
        .map(|c| {
            (
                c.type_.as_str(),
                c.status.as_str(),
                c.reason.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("NamesAccepted", "True", "NoConflicts"),
            ("Established", "True", "InitialNamesAccepted")
        ]
    );
    assert_eq!(status.stored_versions.unwrap(), ["v1"]);
}

#[test]
fn a_taken_short_name_is_not_accepted() {
    let mut crd = crontab_crd();
    prepare_for_create(&mut crd);
    let taken = TakenNames::default().with_resource("ct");
    let status = compute_status(&crd, &taken, &now());
    let names = status.accepted_names.unwrap();
    assert_eq!(names.plural, "crontabs");
    assert_eq!(names.short_names, None);
    let c = &status.conditions.unwrap();
    assert_eq!(c[0].status, "False");
    assert_eq!(c[0].reason.as_deref(), Some("ShortNamesConflict"));
    assert_eq!(c[0].message.as_deref(), Some(r#""ct" is already in use"#));
    assert_eq!(c[1].status, "False");
    assert_eq!(c[1].reason.as_deref(), Some("NotAccepted"));
    assert_eq!(c[1].message.as_deref(), Some("not all names are accepted"));
}

#[test]
fn another_crd_of_the_group_holds_its_names() {
    let mut other = crontab_crd();
    other.metadata.name = Some("crontabs2.stable.example.com".into());
    other.status = Some(CustomResourceDefinitionStatus {
        accepted_names: Some(CustomResourceDefinitionNames {
            plural: "crontabs".into(),
            kind: "CronTab".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    let mut crd = crontab_crd();
    prepare_for_create(&mut crd);
    let taken = TakenNames::from_crds(
        "stable.example.com",
        "crontabs.stable.example.com",
        [&other],
    );
    let status = compute_status(&crd, &taken, &now());
    let c = status.conditions.unwrap();
    // The last conflict found is the one reported, as in kube-apiserver.
    assert_eq!(c[0].reason.as_deref(), Some("KindConflict"));
    assert_eq!(
        c[0].message.as_deref(),
        Some(r#""CronTab" is already in use"#)
    );
    assert_eq!(status.accepted_names.unwrap().plural, "");
}

#[test]
fn names_already_granted_stay_granted_and_times_are_kept() {
    let mut crd = crontab_crd();
    prepare_for_create(&mut crd);
    crd.status = Some(compute_status(&crd, &TakenNames::default(), &now()));
    let later: Time = serde_json::from_value(json!("2026-02-01T00:00:00Z")).unwrap();
    // Its own names count as taken now (another CRD's list would hold them): still fine.
    let taken = TakenNames::default()
        .with_resource("crontabs")
        .with_kind("CronTab");
    let status = compute_status(&crd, &taken, &later);
    let c = status.conditions.unwrap();
    assert_eq!(c[0].status, "True");
    assert_eq!(c[0].last_transition_time, Some(now()));
}

#[test]
fn an_established_crd_stays_established_after_a_conflict() {
    let mut crd = crontab_crd();
    prepare_for_create(&mut crd);
    crd.status = Some(compute_status(&crd, &TakenNames::default(), &now()));
    crd.spec.names.short_names = Some(vec!["cron".into()]);
    let status = compute_status(&crd, &TakenNames::default().with_resource("cron"), &now());
    let c = status.conditions.unwrap();
    assert_eq!(c[0].status, "False");
    assert_eq!(c[1].status, "True");
    assert_eq!(status.accepted_names.unwrap().short_names.unwrap(), ["ct"]);
}

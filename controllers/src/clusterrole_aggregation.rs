//! Aggregated ClusterRoles, as kube-controller-manager's `clusterrole-aggregation`
//! controller keeps them (`pkg/controller/clusterroleaggregation`): a ClusterRole with
//! an `aggregationRule` holds, as its `rules`, the rules of every other ClusterRole one
//! of its `clusterRoleSelectors` selects — selector by selector, the selected roles in
//! the order of their names, each rule once, in the order first met. This is how the
//! default roles `admin`, `edit` and `view` grow when a role labelled
//! `rbac.authorization.k8s.io/aggregate-to-edit: "true"` is added (a CRD's permissions,
//! say). Rules are compared as Kubernetes' semantic equality compares them: an absent
//! list is the same as an empty one.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use rk8s_api::selector::{Selector, SelectorExt};

/// The field manager kube-controller-manager writes aggregated rules as.
pub const FIELD_MANAGER: &str = "clusterrole-aggregation-controller";

/// An aggregated ClusterRole whose selector cannot be used: its rules are left as they
/// are (kube-controller-manager retries such a role and leaves it too). The API
/// server's validation refuses such selectors, so only a role stored before that
/// check has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidSelector {
    /// The aggregated ClusterRole.
    pub role: String,
    /// Which of its `clusterRoleSelectors`.
    pub index: usize,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for InvalidSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "clusterrole \"{}\": aggregationRule.clusterRoleSelectors[{}]: {}",
            self.role, self.index, self.reason
        )
    }
}

impl std::error::Error for InvalidSelector {}

/// A write to make: the aggregated ClusterRole `name`, seen at `resource_version`,
/// gets `rules`.
#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    /// The aggregated ClusterRole.
    pub name: String,
    /// Its resourceVersion when decided (the write's precondition).
    pub resource_version: Option<String>,
    /// The rules it is to hold.
    pub rules: Vec<PolicyRule>,
}

fn name(role: &ClusterRole) -> &str {
    role.metadata.name.as_deref().unwrap_or_default()
}

fn selector(role: &str, index: usize, sel: &LabelSelector) -> Result<Selector, InvalidSelector> {
    rk8s_api::selector::label_selector(sel).map_err(|errs| InvalidSelector {
        role: role.to_string(),
        index,
        reason: errs
            .iter()
            .map(|(field, message)| match field.as_str() {
                "" => message.clone(),
                field => format!("{field}: {message}"),
            })
            .collect::<Vec<_>>()
            .join("; "),
    })
}

/// Whether two rules are the same, an absent list being an empty one (what
/// `equality.Semantic.DeepEqual` says of two `PolicyRule`s).
pub fn same_rule(a: &PolicyRule, b: &PolicyRule) -> bool {
    fn list(l: &Option<Vec<String>>) -> &[String] {
        l.as_deref().unwrap_or_default()
    }
    a.verbs == b.verbs
        && list(&a.api_groups) == list(&b.api_groups)
        && list(&a.resources) == list(&b.resources)
        && list(&a.resource_names) == list(&b.resource_names)
        && list(&a.non_resource_urls) == list(&b.non_resource_urls)
}

/// Whether two lists of rules are the same, rule by rule in order (an absent list is
/// an empty one).
pub fn same_rules(a: &[PolicyRule], b: &[PolicyRule]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_rule(a, b))
}

/// The rules `role` aggregates from `all` (every ClusterRole, in any order; `role`
/// itself may be among them and is never selected): `None` when it has no
/// `aggregationRule`, an empty list when its selectors select nothing (or no rules),
/// an error when one of its selectors is invalid.
pub fn aggregated_rules(
    role: &ClusterRole,
    all: &[Arc<ClusterRole>],
) -> Option<Result<Vec<PolicyRule>, InvalidSelector>> {
    let rule = role.aggregation_rule.as_ref()?;
    let me = name(role);
    // Sorted once: kube sorts each selector's selection by name.
    let mut by_name: Vec<&ClusterRole> = all.iter().map(Arc::as_ref).collect();
    by_name.sort_by(|a, b| name(a).cmp(name(b)));
    let no_labels = BTreeMap::new();
    let mut rules: Vec<PolicyRule> = Vec::new();
    for (index, sel) in rule.cluster_role_selectors.iter().flatten().enumerate() {
        let sel = match selector(me, index, sel) {
            Ok(sel) => sel,
            Err(e) => return Some(Err(e)),
        };
        let selected = by_name.iter().filter(|other| {
            name(other) != me && sel.matches(other.metadata.labels.as_ref().unwrap_or(&no_labels))
        });
        for other in selected {
            for r in other.rules.iter().flatten() {
                if !rules.iter().any(|have| same_rule(have, r)) {
                    rules.push(r.clone());
                }
            }
        }
    }
    Some(Ok(rules))
}

/// The writes that bring every aggregated ClusterRole of `all` to hold the rules it
/// aggregates (one per role whose rules differ, in the order of their names), and the
/// roles left as they are for an invalid selector. Every aggregated role is decided
/// from `all` as it is: a role that aggregates another aggregated role follows it at
/// the next decision, after that role's write is seen.
pub fn decide(all: &[Arc<ClusterRole>]) -> (Vec<Update>, Vec<InvalidSelector>) {
    let mut aggregated: Vec<&ClusterRole> = all
        .iter()
        .map(Arc::as_ref)
        .filter(|r| r.aggregation_rule.is_some())
        .collect();
    aggregated.sort_by(|a, b| name(a).cmp(name(b)));
    let (mut updates, mut invalid) = (Vec::new(), Vec::new());
    for role in aggregated {
        match aggregated_rules(role, all) {
            None => {}
            Some(Err(e)) => invalid.push(e),
            Some(Ok(rules)) if same_rules(&rules, role.rules.as_deref().unwrap_or_default()) => {}
            Some(Ok(rules)) => updates.push(Update {
                name: name(role).to_string(),
                resource_version: role.metadata.resource_version.clone(),
                rules,
            }),
        }
    }
    (updates, invalid)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde::Serialize;
    use serde_json::{Value, json};

    fn role(value: Value) -> Arc<ClusterRole> {
        Arc::new(serde_json::from_value(value).unwrap())
    }

    fn rule(verbs: &[&str], resources: &[&str]) -> PolicyRule {
        PolicyRule {
            api_groups: Some(vec![String::new()]),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            resources: Some(resources.iter().map(|s| s.to_string()).collect()),
            ..PolicyRule::default()
        }
    }

    /// A role labelled `labels` with `rules`.
    fn source(name: &str, labels: Value, rules: impl Serialize) -> Arc<ClusterRole> {
        role(json!({
            "metadata": {"name": name, "labels": labels, "resourceVersion": "1"},
            "rules": rules,
        }))
    }

    /// An aggregated role with `selectors`, holding `rules` (`Value::Null`: none).
    fn aggregate(name: &str, selectors: Value, rules: impl Serialize) -> Arc<ClusterRole> {
        role(json!({
            "metadata": {"name": name, "resourceVersion": "7",
                         "labels": {"aggregate-to-view": "true"}},
            "aggregationRule": {"clusterRoleSelectors": selectors},
            "rules": rules,
        }))
    }

    fn rules_of(role: &ClusterRole, all: &[Arc<ClusterRole>]) -> Vec<PolicyRule> {
        aggregated_rules(role, all).unwrap().unwrap()
    }

    fn names(updates: &[Update]) -> Vec<&str> {
        updates.iter().map(|u| u.name.as_str()).collect()
    }

    #[test]
    fn match_labels_select_the_roles_labelled_so() {
        let get = rule(&["get"], &["pods"]);
        let list = rule(&["list"], &["pods"]);
        let view = json!({"aggregate-to-view": "true"});
        let all = vec![
            source("b-view", view.clone(), [&list]),
            source(
                "a-view",
                json!({"aggregate-to-view": "true", "x": "y"}),
                [&get],
            ),
            source(
                "other",
                json!({"aggregate-to-view": "false"}),
                [rule(&["watch"], &["pods"])],
            ),
            source("bare", Value::Null, [rule(&["*"], &["*"])]),
            aggregate("view", json!([{ "matchLabels": view }]), Value::Null),
        ];
        // Sorted by name: a-view's rule before b-view's.
        assert_eq!(rules_of(&all[4], &all), vec![get, list]);
    }

    #[test]
    fn match_expressions_select_with_every_operator() {
        let rules: Vec<PolicyRule> = (0..4)
            .map(|i| rule(&["get"], &[&format!("r{i}")]))
            .collect();
        let all = vec![
            source("r0", json!({"tier": "a"}), &rules[0..1]),
            source("r1", json!({"tier": "b", "legacy": "1"}), &rules[1..2]),
            source("r2", json!({"tier": "c"}), &rules[2..3]),
            source("r3", json!({}), &rules[3..4]),
        ];
        let picked = |expr: Value| {
            let agg = aggregate("agg", json!([{"matchExpressions": [expr]}]), Value::Null);
            rules_of(&agg, &all)
        };
        let these = |i: &[usize]| i.iter().map(|&i| rules[i].clone()).collect::<Vec<_>>();
        let is_in = json!({"key": "tier", "operator": "In", "values": ["a", "c"]});
        assert_eq!(picked(is_in), these(&[0, 2]));
        let not_in = json!({"key": "tier", "operator": "NotIn", "values": ["a", "c"]});
        assert_eq!(picked(not_in), these(&[1, 3]));
        let exists = json!({"key": "legacy", "operator": "Exists"});
        assert_eq!(picked(exists), these(&[1]));
        let does_not_exist = json!({"key": "tier", "operator": "DoesNotExist"});
        assert_eq!(picked(does_not_exist), these(&[3]));
        // matchLabels and matchExpressions of one selector must all hold.
        let both = aggregate(
            "agg",
            json!([{"matchLabels": {"tier": "b"},
                    "matchExpressions": [{"key": "legacy", "operator": "DoesNotExist"}]}]),
            Value::Null,
        );
        assert_eq!(rules_of(&both, &all), these(&[]));
    }

    #[test]
    fn a_rule_held_by_several_roles_is_aggregated_once() {
        let get = rule(&["get"], &["pods"]);
        let list = rule(&["list"], &["pods"]);
        // The same rule, once with an absent resourceNames and once with an empty one.
        let mut get_again = get.clone();
        get_again.resource_names = Some(Vec::new());
        let all = vec![
            source("a", json!({"agg": "x"}), [&get, &list, &get]),
            source("b", json!({"agg": "x"}), [&get_again, &list]),
            aggregate("x", json!([{"matchLabels": {"agg": "x"}}]), Value::Null),
        ];
        assert_eq!(rules_of(&all[2], &all), vec![get, list]);
    }

    #[test]
    fn the_aggregated_role_never_selects_itself() {
        let get = rule(&["get"], &["pods"]);
        let own = rule(&["delete"], &["nodes"]);
        // Its own label matches its own selector; its own (stale) rules are not taken.
        let all = vec![
            source("reader", json!({"aggregate-to-view": "true"}), [&get]),
            aggregate(
                "view",
                json!([{"matchLabels": {"aggregate-to-view": "true"}}]),
                [own],
            ),
        ];
        assert_eq!(rules_of(&all[1], &all), vec![get]);
    }

    #[test]
    fn a_role_selected_by_two_selectors_counts_once() {
        let (a, b, c) = (
            rule(&["get"], &["a"]),
            rule(&["get"], &["b"]),
            rule(&["get"], &["c"]),
        );
        let all = vec![
            source("one", json!({"x": "1"}), [&a]),
            source("both", json!({"x": "1", "y": "1"}), [&b]),
            source("two", json!({"y": "1"}), [&c]),
            aggregate(
                "agg",
                json!([{"matchLabels": {"x": "1"}}, {"matchLabels": {"y": "1"}}]),
                Value::Null,
            ),
        ];
        // Selector by selector: both then one (x), then two (y); `both` not again.
        assert_eq!(rules_of(&all[3], &all), vec![b, a, c]);
    }

    #[test]
    fn the_aggregate_of_nothing_is_no_rules() {
        let nobody = json!([{"matchLabels": {"nobody": "has-this"}}]);
        let unrelated = source("unrelated", json!({"x": "1"}), [rule(&["get"], &["pods"])]);
        let empty = aggregate("agg", nobody.clone(), Value::Null);
        let all = vec![unrelated.clone(), empty];
        assert_eq!(rules_of(&all[1], &all), Vec::<PolicyRule>::new());
        // Nothing to write where it holds no rules (absent is empty)...
        assert_eq!(decide(&all), (vec![], vec![]));
        // ...and `rules: []` where it held some.
        let held = aggregate("agg", nobody, [rule(&["get"], &["pods"])]);
        let (updates, invalid) = decide(&[unrelated, held]);
        assert!(invalid.is_empty());
        assert_eq!(names(&updates), vec!["agg"]);
        assert_eq!(serde_json::to_value(&updates[0].rules).unwrap(), json!([]));
    }

    #[test]
    fn an_empty_selector_selects_every_other_role() {
        let (a, b) = (rule(&["get"], &["a"]), rule(&["get"], &["b"]));
        let all = vec![
            source("one", Value::Null, [&a]),
            source("two", json!({"x": "1"}), [&b]),
            aggregate("agg", json!([{}]), Value::Null),
        ];
        assert_eq!(rules_of(&all[2], &all), vec![a, b]);
    }

    #[test]
    fn a_role_without_an_aggregation_rule_is_not_aggregated() {
        let plain = source("plain", json!({}), [rule(&["get"], &["pods"])]);
        assert_eq!(aggregated_rules(&plain, std::slice::from_ref(&plain)), None);
        assert_eq!(decide(&[plain]), (vec![], vec![]));
    }

    #[test]
    fn only_roles_whose_rules_differ_are_written() {
        let get = rule(&["get"], &["pods"]);
        let list = rule(&["list"], &["pods"]);
        let selector = json!([{"matchLabels": {"agg": "x"}}]);
        let all = vec![
            source("a", json!({"agg": "x"}), [&get, &list]),
            aggregate("done", selector.clone(), [&get, &list]),
            aggregate("stale", selector.clone(), [&get]),
            aggregate("reordered", selector, [&list, &get]),
        ];
        let (updates, invalid) = decide(&all);
        assert!(invalid.is_empty());
        assert_eq!(names(&updates), vec!["reordered", "stale"]);
        for u in &updates {
            assert_eq!(u.resource_version.as_deref(), Some("7"));
            assert_eq!(u.rules, vec![get.clone(), list.clone()]);
        }
    }

    #[test]
    fn an_aggregated_role_may_select_another_and_follows_it_at_the_next_decision() {
        let get = rule(&["get"], &["pods"]);
        let edit = role(json!({
            "metadata": {"name": "edit", "labels": {"aggregate-to-admin": "true"}},
            "aggregationRule": {"clusterRoleSelectors": [
                {"matchLabels": {"aggregate-to-edit": "true"}},
            ]},
        }));
        let admin = aggregate(
            "admin",
            json!([{"matchLabels": {"aggregate-to-admin": "true"}}]),
            Value::Null,
        );
        let crd = source("crd-editor", json!({"aggregate-to-edit": "true"}), [&get]);
        let (updates, _) = decide(&[edit.clone(), admin.clone(), crd.clone()]);
        assert_eq!(names(&updates), vec!["edit"]);
        let mut edited = (*edit).clone();
        edited.rules = Some(updates[0].rules.clone());
        let (updates, _) = decide(&[Arc::new(edited), admin, crd]);
        assert_eq!(names(&updates), vec!["admin"]);
        assert_eq!(updates[0].rules, vec![get]);
    }

    #[test]
    fn an_invalid_selector_leaves_the_role_as_it_is() {
        let all = vec![
            source("a", json!({"x": "1"}), [rule(&["list"], &["pods"])]),
            aggregate(
                "broken",
                json!([{"matchLabels": {"x": "1"}},
                       {"matchExpressions": [{"key": "x", "operator": "Near"}]}]),
                [rule(&["get"], &["pods"])],
            ),
        ];
        let (updates, invalid) = decide(&all);
        assert!(updates.is_empty());
        assert_eq!(invalid.len(), 1);
        assert_eq!(invalid[0].index, 1);
        let message = invalid[0].to_string();
        let want = "clusterrole \"broken\": aggregationRule.clusterRoleSelectors[1]: \
            matchExpressions[0].operator: unsupported value \"Near\"";
        assert!(message.starts_with(want), "{message}");
    }
}

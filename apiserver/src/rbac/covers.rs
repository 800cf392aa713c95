//! Whether one set of RBAC rules grants everything another does, as Kubernetes'
//! `Covers` decides (`k8s.io/component-helpers/auth/rbac/validation/policy_comparator.go`).
//!
//! The servant's rules are broken down into atoms (one API group, resource, verb and
//! resource name each, or one non-resource URL and verb): an atom is covered when a
//! single owner rule covers it, so what is left over is exactly what the owner lacks.
//! The default-policy reconciliation ([`super::bootstrap`]) appends those atoms to a
//! role; the escalation check would refuse a role that grants them.

use k8s_openapi::api::rbac::v1::PolicyRule;

/// `*`: every verb, API group or resource.
const ALL: &str = "*";

/// `rule` as atoms: one rule per API group × resource × verb (× resource name, when
/// the rule names some), then one per non-resource URL × verb (Kubernetes'
/// `BreakdownRule`). A rule with resources but no API group yields no resource atoms,
/// as Kubernetes' does.
pub fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let groups = rule.api_groups.as_deref().unwrap_or_default();
    let resources = rule.resources.as_deref().unwrap_or_default();
    let names = rule.resource_names.as_deref().unwrap_or_default();
    let urls = rule.non_resource_urls.as_deref().unwrap_or_default();
    let mut atoms = Vec::new();
    for group in groups {
        for resource in resources {
            for verb in &rule.verbs {
                let atom = |name: Option<&String>| PolicyRule {
                    api_groups: Some(vec![group.clone()]),
                    resources: Some(vec![resource.clone()]),
                    verbs: vec![verb.clone()],
                    resource_names: name.map(|n| vec![n.clone()]),
                    non_resource_urls: None,
                };
                if names.is_empty() {
                    atoms.push(atom(None));
                } else {
                    atoms.extend(names.iter().map(|n| atom(Some(n))));
                }
            }
        }
    }
    // Non-resource URLs combine with verbs only.
    for url in urls {
        for verb in &rule.verbs {
            atoms.push(PolicyRule {
                non_resource_urls: Some(vec![url.clone()]),
                verbs: vec![verb.clone()],
                ..PolicyRule::default()
            });
        }
    }
    atoms
}

/// How many atoms [`breakdown`] makes of `rules` (its lists' distinct entries
/// multiplied out); `None` past `usize`. What a check may cost is known before the
/// atoms are made: a rule of a few kilobytes can name billions.
pub fn atom_count(rules: &[PolicyRule]) -> Option<usize> {
    let distinct = |list: Option<&Vec<String>>| {
        let mut v: Vec<&String> = list.into_iter().flatten().collect();
        v.sort();
        v.dedup();
        v.len()
    };
    rules.iter().try_fold(0usize, |total, r| {
        let verbs = distinct(Some(&r.verbs));
        let names = distinct(r.resource_names.as_ref()).max(1);
        let resources = distinct(r.api_groups.as_ref())
            .checked_mul(distinct(r.resources.as_ref()))?
            .checked_mul(verbs)?
            .checked_mul(names)?;
        let urls = distinct(r.non_resource_urls.as_ref()).checked_mul(verbs)?;
        total.checked_add(resources)?.checked_add(urls)
    })
}

/// The atoms ([`breakdown`]) of `servant`'s rules that no rule of `owner` covers, in
/// order: empty when `owner` grants everything `servant` does (Kubernetes' `Covers`).
pub fn covers(owner: &[PolicyRule], servant: &[PolicyRule]) -> Vec<PolicyRule> {
    servant
        .iter()
        .flat_map(breakdown)
        .filter(|atom| !owner.iter().any(|o| rule_covers(o, atom)))
        .collect()
}

/// Whether `owner` allows everything `sub` does, `sub` being an atom of
/// [`breakdown`] (Kubernetes' `ruleCovers`): a `*` of the owner covers anything, a
/// `*` of the servant only a `*`; resources match exactly or by `*/<subresource>`;
/// an owner's non-resource URL ending in `*` covers the URLs it prefixes; an owner
/// that names no resources covers every name, one that names some only those.
pub fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let owner_names = owner.resource_names.as_deref().unwrap_or_default();
    let sub_names = sub.resource_names.as_deref().unwrap_or_default();
    let names_match =
        owner_names.is_empty() || (!sub_names.is_empty() && has_all(owner_names, sub_names));
    names_match
        && all_or_has_all(&owner.verbs, &sub.verbs)
        && all_or_has_all(
            owner.api_groups.as_deref().unwrap_or_default(),
            sub.api_groups.as_deref().unwrap_or_default(),
        )
        && resources_cover(
            owner.resources.as_deref().unwrap_or_default(),
            sub.resources.as_deref().unwrap_or_default(),
        )
        && urls_cover(
            owner.non_resource_urls.as_deref().unwrap_or_default(),
            sub.non_resource_urls.as_deref().unwrap_or_default(),
        )
}

fn has(set: &[String], wanted: &str) -> bool {
    set.iter().any(|s| s == wanted)
}

/// Whether every one of `wanted` is in `set` (literally: a `*` only matches a `*`).
fn has_all(set: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| has(set, w))
}

/// Verbs and API groups: `*` in `set`, or all of `wanted` in it.
fn all_or_has_all(set: &[String], wanted: &[String]) -> bool {
    has(set, ALL) || has_all(set, wanted)
}

/// Kubernetes' `resourceCoversAll`: `*`, the resource itself, or for a subresource
/// `res/sub`, `*/sub`. (`res/*` is no wildcard: it covers only itself.)
fn resources_cover(set: &[String], wanted: &[String]) -> bool {
    if has(set, ALL) {
        return true;
    }
    wanted.iter().all(|path| {
        has(set, path)
            || path
                .split_once('/')
                .is_some_and(|(_, sub)| has(set, &format!("*/{sub}")))
    })
}

/// Kubernetes' `nonResourceURLsCoversAll`: every wanted URL is one of `set`'s or
/// under one of its `prefix*` URLs.
fn urls_cover(set: &[String], wanted: &[String]) -> bool {
    wanted
        .iter()
        .all(|path| set.iter().any(|owner| url_covers(owner, path)))
}

fn url_covers(owner: &str, path: &str) -> bool {
    owner == path || (owner.ends_with('*') && path.starts_with(owner.trim_end_matches('*')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Option<Vec<String>> {
        Some(list.iter().map(|s| (*s).to_string()).collect())
    }

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        PolicyRule {
            api_groups: strings(groups),
            resources: strings(resources),
            verbs: verbs.iter().map(|s| (*s).to_string()).collect(),
            ..PolicyRule::default()
        }
    }

    fn named(mut r: PolicyRule, names: &[&str]) -> PolicyRule {
        r.resource_names = strings(names);
        r
    }

    fn urls(urls: &[&str], verbs: &[&str]) -> PolicyRule {
        PolicyRule {
            non_resource_urls: strings(urls),
            verbs: verbs.iter().map(|s| (*s).to_string()).collect(),
            ..PolicyRule::default()
        }
    }

    #[test]
    fn breakdown_yields_one_atom_per_group_resource_verb_and_name() {
        let r = named(
            rule(&["", "apps"], &["pods", "deployments"], &["get", "list"]),
            &["a", "b"],
        );
        let atoms = breakdown(&r);
        assert_eq!(atoms.len(), 2 * 2 * 2 * 2);
        assert_eq!(atoms[0], named(rule(&[""], &["pods"], &["get"]), &["a"]));
        assert_eq!(atoms[1], named(rule(&[""], &["pods"], &["get"]), &["b"]));
        assert!(atoms.iter().all(|a| a.non_resource_urls.is_none()));

        let unnamed = breakdown(&rule(&[""], &["pods"], &["get", "watch"]));
        assert_eq!(
            unnamed,
            vec![
                rule(&[""], &["pods"], &["get"]),
                rule(&[""], &["pods"], &["watch"])
            ]
        );
    }

    #[test]
    fn breakdown_pairs_non_resource_urls_with_verbs_only() {
        let atoms = breakdown(&urls(&["/healthz", "/version"], &["get"]));
        assert_eq!(
            atoms,
            vec![urls(&["/healthz"], &["get"]), urls(&["/version"], &["get"])]
        );
        // Resources without an API group grant nothing, as in Kubernetes.
        assert!(breakdown(&rule(&[], &["pods"], &["get"])).is_empty());
    }

    #[test]
    fn stars_of_the_owner_cover_anything() {
        let admin = [rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])];
        let wanted = [
            named(
                rule(&["apps"], &["deployments/scale"], &["update"]),
                &["web"],
            ),
            rule(&["*"], &["*"], &["*"]),
            urls(&["/metrics", "/api/v1"], &["get"]),
        ];
        assert!(covers(&admin, &wanted).is_empty());
    }

    #[test]
    fn stars_of_the_servant_need_stars_of_the_owner() {
        let owner = [rule(
            &["", "apps"],
            &["pods", "deployments"],
            &["get", "list"],
        )];
        let uncovered = covers(&owner, &[rule(&[""], &["pods"], &["*"])]);
        assert_eq!(uncovered, vec![rule(&[""], &["pods"], &["*"])]);
        assert_eq!(
            covers(&owner, &[rule(&["*"], &["pods"], &["get"])]).len(),
            1
        );
        assert_eq!(covers(&owner, &[rule(&[""], &["*"], &["get"])]).len(), 1);
    }

    #[test]
    fn subresources_are_covered_by_themselves_or_a_star_prefix() {
        let owner = [rule(&["apps"], &["deployments", "*/scale"], &["get"])];
        assert!(covers(&owner, &[rule(&["apps"], &["deployments/scale"], &["get"])]).is_empty());
        assert!(covers(&owner, &[rule(&["apps"], &["replicasets/scale"], &["get"])]).is_empty());
        // A resource does not cover its subresources.
        assert_eq!(
            covers(
                &owner,
                &[rule(&["apps"], &["deployments/status"], &["get"])]
            )
            .len(),
            1
        );
        // `pods/*` is no wildcard in Kubernetes' comparison.
        let pods = [rule(&[""], &["pods/*"], &["get"])];
        assert_eq!(
            covers(&pods, &[rule(&[""], &["pods/log"], &["get"])]).len(),
            1
        );
        assert!(covers(&pods, &[rule(&[""], &["pods/*"], &["get"])]).is_empty());
    }

    #[test]
    fn resource_names_restrict_the_owner_and_none_covers_all() {
        let any = [rule(&[""], &["configmaps"], &["get"])];
        let one = [named(rule(&[""], &["configmaps"], &["get"]), &["settings"])];
        let wants_one = [named(rule(&[""], &["configmaps"], &["get"]), &["settings"])];
        let wants_other = [named(rule(&[""], &["configmaps"], &["get"]), &["other"])];
        let wants_all = [rule(&[""], &["configmaps"], &["get"])];
        assert!(covers(&any, &wants_one).is_empty());
        assert!(covers(&any, &wants_all).is_empty());
        assert!(covers(&one, &wants_one).is_empty());
        assert_eq!(covers(&one, &wants_other).len(), 1);
        assert_eq!(covers(&one, &wants_all).len(), 1);
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_a_trailing_star() {
        let owner = [urls(&["/healthz", "/apis/*", "/version"], &["get"])];
        assert!(
            covers(
                &owner,
                &[urls(&["/healthz", "/apis/apps/v1", "/apis/"], &["get"])]
            )
            .is_empty()
        );
        assert_eq!(
            covers(&owner, &[urls(&["/healthz/etcd"], &["get"])]).len(),
            1
        );
        assert_eq!(covers(&owner, &[urls(&["/apis"], &["get"])]).len(), 1);
        assert_eq!(covers(&owner, &[urls(&["/version"], &["post"])]).len(), 1);
        // URLs and resources never cover each other.
        let resources = [rule(&["*"], &["*"], &["*"])];
        assert_eq!(
            covers(&resources, &[urls(&["/healthz"], &["get"])]).len(),
            1
        );
        let everything_url = [urls(&["*"], &["*"])];
        assert_eq!(
            covers(&everything_url, &[rule(&[""], &["pods"], &["get"])]).len(),
            1
        );
    }

    #[test]
    fn uncovered_atoms_are_returned_in_order() {
        let owner = [rule(&[""], &["pods"], &["get", "list"])];
        let servant = [rule(&[""], &["pods", "services"], &["get", "delete"])];
        assert_eq!(
            covers(&owner, &servant),
            vec![
                rule(&[""], &["pods"], &["delete"]),
                rule(&[""], &["services"], &["get"]),
                rule(&[""], &["services"], &["delete"]),
            ]
        );
        assert!(covers(&owner, &[]).is_empty());
        assert_eq!(covers(&[], &owner).len(), 2);
    }
}

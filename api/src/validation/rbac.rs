//! RBAC: the rules of Roles and ClusterRoles, the role references and subjects of
//! bindings (rbac/v1 validation).

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role, RoleRef, Subject};

use super::{Errors, meta};
use crate::names;
use crate::path::FieldPath;

/// The RBAC API group.
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn rule(errs: &mut Errors, path: &FieldPath, rule: &PolicyRule, namespaced: bool) {
    if rule.verbs.is_empty() {
        errs.message(
            &path.key("verbs"),
            "required value: verbs must contain at least one value",
        );
    }
    let urls = rule.non_resource_urls.as_deref().unwrap_or_default();
    let groups = rule.api_groups.as_deref().unwrap_or_default();
    let resources = rule.resources.as_deref().unwrap_or_default();
    let names = rule.resource_names.as_deref().unwrap_or_default();
    if !urls.is_empty() {
        let p = path.key("nonResourceURLs");
        if namespaced {
            errs.invalid(
                &p,
                urls.join(", "),
                "namespaced rules cannot apply to non-resource URLs",
            );
        }
        if !groups.is_empty() || !resources.is_empty() || !names.is_empty() {
            errs.invalid(
                &p,
                urls.join(", "),
                "rules cannot apply to both regular resources and non-resource URLs",
            );
        }
        return;
    }
    if groups.is_empty() {
        errs.message(
            &path.key("apiGroups"),
            "required value: resource rules must supply at least one api group",
        );
    }
    if resources.is_empty() {
        errs.message(
            &path.key("resources"),
            "required value: resource rules must supply at least one resource",
        );
    }
}

pub(super) fn role(errs: &mut Errors, r: &Role) {
    for (i, r) in r.rules.iter().flatten().enumerate() {
        rule(errs, &FieldPath::root().key("rules").index(i), r, true);
    }
}

pub(super) fn cluster_role(errs: &mut Errors, r: &ClusterRole) {
    for (i, r) in r.rules.iter().flatten().enumerate() {
        rule(errs, &FieldPath::root().key("rules").index(i), r, false);
    }
    if let Some(agg) = &r.aggregation_rule {
        let p = FieldPath::root()
            .key("aggregationRule")
            .key("clusterRoleSelectors");
        let selectors = agg.cluster_role_selectors.as_deref().unwrap_or_default();
        if selectors.is_empty() {
            errs.message(
                &p,
                "required value: at least one clusterRoleSelector required if aggregationRule is non-nil",
            );
        }
        for (i, s) in selectors.iter().enumerate() {
            meta::label_selector(errs, &p.index(i), s);
        }
    }
}

/// A binding's role reference and subjects; `namespaced` for RoleBindings, which may
/// refer to a Role or a ClusterRole and leave a ServiceAccount's namespace to theirs.
pub(super) fn binding(
    errs: &mut Errors,
    role_ref: &RoleRef,
    subjects: &[Subject],
    namespaced: bool,
) {
    let p = FieldPath::root().key("roleRef");
    errs.one_of(&p.key("apiGroup"), &role_ref.api_group, &[RBAC_GROUP]);
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    errs.one_of(&p.key("kind"), &role_ref.kind, kinds);
    if role_ref.name.is_empty() {
        errs.required(&p.key("name"));
    } else {
        errs.syntax(
            &p.key("name"),
            &role_ref.name,
            meta::path_segment_name(&role_ref.name),
        );
    }
    for (i, s) in subjects.iter().enumerate() {
        subject(
            errs,
            &FieldPath::root().key("subjects").index(i),
            s,
            namespaced,
        );
    }
}

fn subject(errs: &mut Errors, path: &FieldPath, s: &Subject, namespaced: bool) {
    if s.name.is_empty() {
        errs.required(&path.key("name"));
    }
    let group = s.api_group.as_deref().unwrap_or_default();
    match s.kind.as_str() {
        "ServiceAccount" => {
            if !s.name.is_empty() {
                errs.syntax(
                    &path.key("name"),
                    &s.name,
                    names::dns1123_subdomain(&s.name),
                );
            }
            if !group.is_empty() {
                errs.one_of(&path.key("apiGroup"), group, &[""]);
            }
            if !namespaced && s.namespace.as_deref().unwrap_or_default().is_empty() {
                errs.required(&path.key("namespace"));
            }
        }
        "User" | "Group" => errs.one_of(&path.key("apiGroup"), group, &[RBAC_GROUP]),
        other => errs.one_of(
            &path.key("kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        ),
    }
}

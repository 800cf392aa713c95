//! RBAC defaults (rbac/v1): the API group of role references and of subjects.

use k8s_openapi::api::rbac::v1::{RoleRef, Subject};

use super::set_str;

/// The RBAC API group, which roles, users and groups belong to.
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// `SetDefaults_RoleBinding`, `_ClusterRoleBinding` and `_Subject`: a role reference
/// and User and Group subjects are in the RBAC group; ServiceAccounts are in the core
/// group (no `apiGroup`).
pub(super) fn role_binding(role_ref: &mut RoleRef, subjects: &mut Option<Vec<Subject>>) {
    if role_ref.api_group.is_empty() {
        role_ref.api_group = RBAC_GROUP.to_string();
    }
    for s in subjects.iter_mut().flatten() {
        if matches!(s.kind.as_str(), "User" | "Group") {
            set_str(&mut s.api_group, RBAC_GROUP);
        }
    }
}

//! Namespaces' own label: `kubernetes.io/metadata.name` with the namespace's name,
//! set on every create and update, so no user can change or remove it (kube's
//! namespace strategy, `pkg/registry/core/namespace/strategy.go`; NetworkPolicies
//! select namespaces by it).

use rk8s_api::AnyObject;

/// Gives a Namespace the label `kubernetes.io/metadata.name` with its name.
pub fn label(obj: &mut AnyObject) {
    if let AnyObject::Namespace(ns) = obj
        && let Some(name) = ns.metadata.name.clone()
    {
        ns.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(rk8s_api::netpol::NAMESPACE_NAME_LABEL.to_string(), name);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{prepare_create, prepare_update};
    use rk8s_api::{AnyObject, manifest};

    fn load(text: &str) -> AnyObject {
        manifest::load("t.yaml", text).unwrap().remove(0).object
    }

    #[test]
    fn namespaces_carry_their_name_label_which_no_update_changes() {
        let mut ns =
            load("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a, labels: {a: b}}\n");
        prepare_create(&mut ns);
        let label = |o: &AnyObject| {
            o.metadata()
                .labels
                .clone()
                .unwrap_or_default()
                .get("kubernetes.io/metadata.name")
                .cloned()
        };
        assert_eq!(label(&ns).as_deref(), Some("team-a"));
        assert_eq!(ns.metadata().labels.as_ref().unwrap()["a"], "b");
        let mut changed = load(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a, labels: {kubernetes.io/metadata.name: other}}\n",
        );
        prepare_update(&mut changed, &ns);
        assert_eq!(label(&changed).as_deref(), Some("team-a"));
        let mut removed = load("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n");
        prepare_update(&mut removed, &ns);
        assert_eq!(label(&removed).as_deref(), Some("team-a"));
    }
}

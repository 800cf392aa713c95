//! What every namespace holds for its pods, as two controllers of
//! kube-controller-manager keep it: the `serviceaccount` controller's `default`
//! ServiceAccount (pods run as it unless they name another; pod admission refuses a
//! pod whose account is missing) and the `root-ca-cert-publisher`'s
//! `kube-root-ca.crt` ConfigMap (the cluster CA, `ca.crt`, which the token volume of
//! every pod projects). A namespace being deleted gets neither; one deleted or
//! changed comes back.

use std::collections::BTreeMap;

/// The account every namespace has.
pub const DEFAULT_ACCOUNT: &str = "default";

/// The ConfigMap holding the cluster CA.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// The key of the CA in it.
pub const ROOT_CA_KEY: &str = "ca.crt";

/// The annotation kube-controller-manager puts on it.
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// A namespace's state as far as these controllers look.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Namespace {
    /// Being deleted (`status.phase` Terminating or a deletion timestamp).
    pub terminating: bool,
    /// Has its `default` ServiceAccount.
    pub has_account: bool,
    /// Its `kube-root-ca.crt`: the `ca.crt` it holds and its resourceVersion.
    pub root_ca: Option<(Option<String>, String)>,
}

/// A write to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create the `default` ServiceAccount in the namespace.
    CreateAccount(String),
    /// Create `kube-root-ca.crt` in the namespace.
    CreateRootCa(String),
    /// Replace `kube-root-ca.crt`'s data in the namespace (at the resourceVersion).
    UpdateRootCa(String, String),
}

/// The writes that bring `namespaces` (by name) to hold their account and the CA
/// `ca`.
pub fn decide(namespaces: &BTreeMap<String, Namespace>, ca: &str) -> Vec<Action> {
    let mut actions = Vec::new();
    for (name, ns) in namespaces {
        if ns.terminating {
            continue;
        }
        if !ns.has_account {
            actions.push(Action::CreateAccount(name.clone()));
        }
        match &ns.root_ca {
            None => actions.push(Action::CreateRootCa(name.clone())),
            Some((held, rv)) if held.as_deref() != Some(ca) => {
                actions.push(Action::UpdateRootCa(name.clone(), rv.clone()));
            }
            Some(_) => {}
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_live_namespace_gets_its_account_and_the_current_ca() {
        let ca = "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n";
        let done = Namespace {
            terminating: false,
            has_account: true,
            root_ca: Some((Some(ca.into()), "5".into())),
        };
        let namespaces: BTreeMap<String, Namespace> = [
            ("new".to_string(), Namespace::default()),
            ("done".to_string(), done.clone()),
            (
                "stale".to_string(),
                Namespace {
                    root_ca: Some((Some("old".into()), "7".into())),
                    ..done.clone()
                },
            ),
            (
                "emptied".to_string(),
                Namespace {
                    root_ca: Some((None, "8".into())),
                    has_account: false,
                    ..done
                },
            ),
            (
                "going".to_string(),
                Namespace {
                    terminating: true,
                    ..Namespace::default()
                },
            ),
        ]
        .into();
        assert_eq!(
            decide(&namespaces, ca),
            vec![
                Action::CreateAccount("emptied".into()),
                Action::UpdateRootCa("emptied".into(), "8".into()),
                Action::CreateAccount("new".into()),
                Action::CreateRootCa("new".into()),
                Action::UpdateRootCa("stale".into(), "7".into()),
            ]
        );
    }
}

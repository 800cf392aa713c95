//! DefaultTolerationSeconds, kube-apiserver's admission plugin
//! (`plugin/pkg/admission/defaulttolerationseconds`): every new pod that does not
//! tolerate them already gets tolerations of the `node.kubernetes.io/not-ready` and
//! `node.kubernetes.io/unreachable` `NoExecute` taints for a bounded time
//! (`--default-not-ready-toleration-seconds`, `--default-unreachable-toleration-seconds`,
//! 300 s each), so that the node lifecycle controller evicts it from a node gone
//! missing after that long, and `kubectl describe pod` shows why.

use k8s_openapi::api::core::v1::Toleration;
use rk8s_api::AnyObject;

use rk8s_api::placement::{NOT_READY, UNREACHABLE};

/// How long new pods tolerate each taint by default, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultTolerationSeconds {
    /// For `node.kubernetes.io/not-ready`.
    pub not_ready: i64,
    /// For `node.kubernetes.io/unreachable`.
    pub unreachable: i64,
}

impl Default for DefaultTolerationSeconds {
    fn default() -> Self {
        DefaultTolerationSeconds {
            not_ready: 300,
            unreachable: 300,
        }
    }
}

/// Whether `t` tolerates the `NoExecute` taint `key` (any key when it names none,
/// any effect when it names none), as the plugin decides it.
fn tolerates(t: &Toleration, key: &str) -> bool {
    let key_ok = t.key.as_deref().is_none_or(|k| k.is_empty() || k == key);
    let effect_ok = t
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == "NoExecute");
    key_ok && effect_ok
}

/// Adds the default tolerations to a new pod that lacks them.
pub fn admit(obj: &mut AnyObject, seconds: DefaultTolerationSeconds) {
    let AnyObject::Pod(pod) = obj else { return };
    let Some(spec) = &mut pod.spec else { return };
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, seconds) in [
        (NOT_READY, seconds.not_ready),
        (UNREACHABLE, seconds.unreachable),
    ] {
        if !tolerations.iter().any(|t| tolerates(t, key)) {
            tolerations.push(Toleration {
                key: Some(key.to_string()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(seconds),
                value: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rk8s_api::manifest;

    fn pod(tolerations: &str) -> AnyObject {
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers: [{{name: a, image: busybox}}]\n  tolerations: {tolerations}\n"
        );
        manifest::load("p.yaml", &text).unwrap().remove(0).object
    }

    fn tolerations(obj: &AnyObject) -> Vec<(String, Option<i64>)> {
        let AnyObject::Pod(p) = obj else { panic!() };
        let spec = p.spec.as_ref().unwrap();
        let listed = spec.tolerations.clone().unwrap_or_default();
        listed
            .into_iter()
            .map(|t| (t.key.unwrap_or_default(), t.toleration_seconds))
            .collect()
    }

    #[test]
    fn a_new_pod_tolerates_a_missing_node_for_the_default_time() {
        let mut p = pod("[]");
        let seconds = DefaultTolerationSeconds {
            not_ready: 30,
            unreachable: 60,
        };
        admit(&mut p, seconds);
        assert_eq!(
            tolerations(&p),
            [(NOT_READY.into(), Some(30)), (UNREACHABLE.into(), Some(60))]
        );
        // Admitted again (a webhook's patch): nothing doubles.
        admit(&mut p, seconds);
        assert_eq!(tolerations(&p).len(), 2);
    }

    #[test]
    fn a_pod_keeps_its_own_toleration_of_either_taint() {
        let mut own = pod(
            "[{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 5}]",
        );
        admit(&mut own, DefaultTolerationSeconds::default());
        assert_eq!(
            tolerations(&own),
            [(UNREACHABLE.into(), Some(5)), (NOT_READY.into(), Some(300))]
        );
        // A toleration of every taint (no key, no effect) covers both.
        let mut all = pod("[{operator: Exists}]");
        admit(&mut all, DefaultTolerationSeconds::default());
        assert_eq!(tolerations(&all).len(), 1);
        // A NoSchedule toleration of the key does not.
        let mut other =
            pod("[{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoSchedule}]");
        admit(&mut other, DefaultTolerationSeconds::default());
        assert_eq!(tolerations(&other).len(), 3);
    }
}

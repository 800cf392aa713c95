//! Node lifecycle: a node whose Lease is not renewed within the grace period
//! (`--node-monitor-grace-period`, 40 s) goes `Ready=Unknown` and gets the
//! `node.kubernetes.io/unreachable:NoExecute` taint; its pods are evicted once their
//! toleration of that taint runs out (`tolerationSeconds`, or
//! `--default-unreachable-toleration-seconds`, 300 s, for pods without one), at a
//! limited rate, and not at all while every node is unreachable (a network split of
//! the control plane, not the nodes' failure). A node that renews again loses the
//! taint. Decisions here are pure; [`crate::node_lifecycle_actor`] runs them.

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};

pub use rk8s_api::placement::UNREACHABLE;

/// What the controller knows of a node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeView {
    /// Its name.
    pub name: String,
    /// The last Lease renewal (or status heartbeat).
    pub heartbeat: Option<jiff::Timestamp>,
    /// Its Ready condition's status.
    pub ready: Option<String>,
    /// When the unreachable taint was added, if it has it.
    pub tainted_at: Option<jiff::Timestamp>,
}

impl NodeView {
    /// The view of `node` with its Lease's renewal time.
    pub fn of(node: &Node, lease_renewed: Option<jiff::Timestamp>) -> Self {
        let status = node.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
        let heartbeat = lease_renewed.or_else(|| {
            ready
                .and_then(|c| c.last_heartbeat_time.as_ref())
                .map(|t| t.0)
        });
        let tainted_at = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .and_then(|t| t.iter().find(|t| t.key == UNREACHABLE))
            .map(|t| {
                t.time_added
                    .as_ref()
                    .map_or(jiff::Timestamp::UNIX_EPOCH, |t| t.0)
            });
        NodeView {
            name: node.metadata.name.clone().unwrap_or_default(),
            heartbeat,
            ready: ready.map(|c| c.status.clone()),
            tainted_at,
        }
    }
}

/// What to do with a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeAction {
    /// Nothing.
    None,
    /// Set Ready (and the other conditions) to Unknown and add the unreachable taint.
    MarkUnreachable,
    /// Remove the unreachable taint (it renews again).
    Recovered,
}

/// Decides for one node at `now`.
pub fn node_action(
    view: &NodeView,
    now: jiff::Timestamp,
    grace: jiff::SignedDuration,
) -> NodeAction {
    // A node never heard from is given the grace period from now on.
    let silent = view
        .heartbeat
        .is_some_and(|h| now.duration_since(h) > grace);
    match (silent, view.tainted_at.is_some()) {
        (true, false) => NodeAction::MarkUnreachable,
        (true, true) if view.ready.as_deref() != Some("Unknown") => NodeAction::MarkUnreachable,
        (false, true) => NodeAction::Recovered,
        _ => NodeAction::None,
    }
}

/// Whether the toleration covers the unreachable NoExecute taint.
fn tolerates_unreachable(t: &Toleration) -> bool {
    let taint = Taint {
        key: UNREACHABLE.into(),
        effect: "NoExecute".into(),
        ..Default::default()
    };
    let key_ok = t
        .key
        .as_deref()
        .is_none_or(|k| k.is_empty() || k == taint.key);
    let effect_ok = t
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let op_ok = match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        _ => t.key.as_deref() == Some(UNREACHABLE) && t.value.as_deref().unwrap_or("").is_empty(),
    };
    key_ok && effect_ok && op_ok
}

/// When a pod on an unreachable node (tainted at `tainted_at`) is to be evicted:
/// `None` if it tolerates the taint forever.
pub fn eviction_due(
    pod: &Pod,
    tainted_at: jiff::Timestamp,
    default_seconds: i64,
) -> Option<jiff::Timestamp> {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    let matching: Vec<&Toleration> = tolerations
        .iter()
        .filter(|t| tolerates_unreachable(t))
        .collect();
    let seconds = if matching.is_empty() {
        Some(default_seconds)
    } else if matching.iter().any(|t| t.toleration_seconds.is_none()) {
        None
    } else {
        matching.iter().filter_map(|t| t.toleration_seconds).min()
    };
    seconds.map(|s| tainted_at + jiff::SignedDuration::from_secs(s.max(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn view(heartbeat: &str, ready: &str, tainted: Option<&str>) -> NodeView {
        NodeView {
            name: "n".into(),
            heartbeat: Some(t(heartbeat)),
            ready: Some(ready.into()),
            tainted_at: tainted.map(t),
        }
    }

    #[test]
    fn silence_beyond_the_grace_period_marks_a_node_unreachable_and_renewal_clears_it() {
        let grace = jiff::SignedDuration::from_secs(40);
        let now = t("2026-11-23T00:01:00Z");
        assert_eq!(
            node_action(&view("2026-11-23T00:00:30Z", "True", None), now, grace),
            NodeAction::None
        );
        assert_eq!(
            node_action(&view("2026-11-23T00:00:10Z", "True", None), now, grace),
            NodeAction::MarkUnreachable
        );
        assert_eq!(
            node_action(
                &view(
                    "2026-11-23T00:00:10Z",
                    "Unknown",
                    Some("2026-11-23T00:00:55Z")
                ),
                now,
                grace
            ),
            NodeAction::None
        );
        assert_eq!(
            node_action(
                &view("2026-11-23T00:00:59Z", "True", Some("2026-11-23T00:00:55Z")),
                now,
                grace
            ),
            NodeAction::Recovered
        );
    }

    #[test]
    fn pods_go_after_their_toleration_seconds_or_the_default() {
        let tainted = t("2026-11-23T00:00:00Z");
        let pod = |tolerations: serde_json::Value| -> Pod {
            serde_json::from_value(
                serde_json::json!({"spec": {"containers": [], "tolerations": tolerations}}),
            )
            .unwrap()
        };
        assert_eq!(
            eviction_due(&pod(serde_json::json!([])), tainted, 300),
            Some(t("2026-11-23T00:05:00Z"))
        );
        let short = pod(
            serde_json::json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]),
        );
        assert_eq!(
            eviction_due(&short, tainted, 300),
            Some(t("2026-11-23T00:00:05Z"))
        );
        let forever = pod(serde_json::json!([{"operator": "Exists"}]));
        assert_eq!(eviction_due(&forever, tainted, 300), None);
        let other =
            pod(serde_json::json!([{"key": "gpu", "operator": "Exists", "effect": "NoExecute"}]));
        assert_eq!(
            eviction_due(&other, tainted, 300),
            Some(t("2026-11-23T00:05:00Z"))
        );
    }
}

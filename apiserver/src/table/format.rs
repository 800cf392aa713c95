//! The small formats kube's printers share: ages, `<none>`, label maps and selectors,
//! lists cut short with `+ N more...`, container names and images, quantities.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use rk8s_api::quantity::Quantity as ExactQuantity;

/// Kubernetes' short human durations (`duration.HumanDuration`): `45s`, `3m12s`,
/// `5h`, `2d3h`, `40d`, `3y12d`; `<invalid>` for a time more than a second ahead.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    let s = seconds.max(0);
    let (m, h) = (s / 60, s / 3600);
    let d = h / 24;
    match () {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 && s % 60 != 0 => format!("{m}m{}s", s % 60),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 && m % 60 != 0 => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ if h < 24 * 8 && h % 24 != 0 => format!("{d}d{}h", h % 24),
        _ if h < 24 * 365 * 2 => format!("{d}d"),
        _ if h < 24 * 365 * 8 && d % 365 != 0 => format!("{}y{}d", d / 365, d % 365),
        _ => format!("{}y", d / 365),
    }
}

/// The time since `t` (`translateTimestampSince`).
pub(super) fn since(t: Timestamp, now: Timestamp) -> String {
    human_duration(now.as_second() - t.as_second())
}

/// The age of an object or event: the time since `t`, `<unknown>` when unset.
pub(super) fn age(t: Option<&Time>, now: Timestamp) -> String {
    t.map_or_else(|| "<unknown>".to_string(), |t| since(t.0, now))
}

/// The `Created At` cell of kube's default table: RFC 3339 in UTC, second precision
/// (Go's zero time when unset).
pub(super) fn created_at(t: Option<&Time>) -> String {
    t.map_or_else(
        || "0001-01-01T00:00:00Z".to_string(),
        |t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

/// `s`, or `<none>` when it is empty.
pub(super) fn or_none(s: impl Into<String>) -> String {
    or(s, "<none>")
}

/// `s`, or `placeholder` when it is empty.
pub(super) fn or(s: impl Into<String>, placeholder: &str) -> String {
    let s = s.into();
    if s.is_empty() {
        placeholder.to_string()
    } else {
        s
    }
}

/// `True`, `False` or `<unset>` (`printBoolPtr`).
pub(super) fn bool_text(b: Option<bool>) -> String {
    match b {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    }
    .to_string()
}

/// A label map as `a=b,c=d`, sorted by key; `<none>` when empty (`labels.FormatLabels`).
pub(super) fn format_labels(labels: Option<&BTreeMap<String, String>>) -> String {
    or_none(
        labels
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// A label selector as kube's `labels.Selector` prints it: requirements sorted by
/// key, `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`. `None` when the selector is
/// not valid; empty for a selector without requirements.
pub(super) fn selector_text(sel: &LabelSelector) -> Option<String> {
    rk8s_api::selector::label_selector(sel).ok()?;
    let mut reqs: Vec<(&str, String)> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), format!("{k}={v}")))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let mut values = e.values.clone().unwrap_or_default();
        values.sort();
        let values = values.join(",");
        let text = match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        };
        reqs.push((e.key.as_str(), text));
    }
    reqs.sort_by(|a, b| a.0.cmp(b.0));
    Some(
        reqs.into_iter()
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// A selector cell (`metav1.FormatLabelSelector`): `<none>` when it selects
/// everything or nothing, `<error>` when it is not valid.
pub(super) fn format_label_selector(sel: Option<&LabelSelector>) -> String {
    match sel.map(selector_text) {
        None => "<none>".to_string(),
        Some(None) => "<error>".to_string(),
        Some(Some(s)) => or_none(s),
    }
}

/// The first `max` items joined with `sep`, then ` + N more...` for the rest.
pub(super) fn with_more(items: &[String], max: usize, sep: &str) -> String {
    let shown = items.get(..max).unwrap_or(items).join(sep);
    if items.len() > max {
        format!("{shown} + {} more...", items.len() - max)
    } else {
        shown
    }
}

/// The container names and images of a pod template, comma-separated
/// (`layoutContainerCells`).
pub(super) fn containers_and_images(spec: Option<&PodSpec>) -> (String, String) {
    let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = containers
        .iter()
        .map(|c| c.image.as_deref().unwrap_or(""))
        .collect();
    (names.join(","), images.join(","))
}

/// A quantity in Kubernetes' canonical form (`1536Mi` for `1.5Gi`), as its
/// `String()` prints it; text that is not a quantity is shown as written.
pub(super) fn quantity(q: &Quantity) -> String {
    q.0.parse::<ExactQuantity>()
        .map_or_else(|_| q.0.clone(), |q| q.to_string())
}

/// The quantity named `name` in a resource list, `0` when absent (Go's zero
/// `Quantity`).
pub(super) fn quantity_of(list: Option<&BTreeMap<String, Quantity>>, name: &str) -> String {
    list.and_then(|l| l.get(name))
        .map_or_else(|| "0".to_string(), quantity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(-1), "0s");
        assert_eq!(human_duration(-5), "<invalid>");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3600 * 3 + 60), "3h1m");
        assert_eq!(human_duration(3600 * 30), "30h");
        assert_eq!(human_duration(86_400 * 3), "3d");
        assert_eq!(human_duration(86_400 * 3 + 3600 * 2), "3d2h");
        assert_eq!(human_duration(86_400 * 400), "400d");
        assert_eq!(human_duration(86_400 * (365 * 3 + 10)), "3y10d");
        assert_eq!(human_duration(86_400 * 365 * 9), "9y");
    }

    #[test]
    fn selectors_print_sorted_by_key_as_kube_does() {
        let sel: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"tier": "web", "app": "shop"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "Exists"},
            ],
        }))
        .unwrap();
        assert_eq!(
            format_label_selector(Some(&sel)),
            "app=shop,!canary,env in (dev,prod),tier=web,zone"
        );
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(
            format_label_selector(Some(&LabelSelector::default())),
            "<none>"
        );
        let bad: LabelSelector =
            serde_json::from_value(serde_json::json!({"matchLabels": {"a b": "c"}})).unwrap();
        assert_eq!(format_label_selector(Some(&bad)), "<error>");
    }

    #[test]
    fn long_lists_end_with_how_many_more() {
        let items: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        assert_eq!(with_more(&items, 3, ","), "a,b,c + 2 more...");
        assert_eq!(with_more(&items[..3], 3, ","), "a,b,c");
        assert_eq!(with_more(&[], 3, ","), "");
    }

    #[test]
    fn quantities_print_in_canonical_form() {
        assert_eq!(quantity(&Quantity("1.5Gi".into())), "1536Mi");
        assert_eq!(quantity(&Quantity("1000m".into())), "1");
        assert_eq!(quantity(&Quantity("lots".into())), "lots");
        assert_eq!(quantity_of(None, "storage"), "0");
    }
}

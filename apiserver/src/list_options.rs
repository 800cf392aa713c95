//! What a list or watch asks besides its path: `resourceVersion` and
//! `resourceVersionMatch` checked as kube-apiserver's `ValidateListOptions` does,
//! `continue` tokens, and the label and field selectors ([`Filter`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};
use rk8s_api::selector::{FieldSelector, SelectorExt, parse_label_selector};
use rk8s_api::{AnyObject, ObjectKind};
use serde_json::{Value, json};

use crate::registry::parse_resource_version;
use crate::request::Query;
use crate::status::{ApiError, ApiResult};

/// A continue token: where the next page starts and the revision the list is read at.
/// The continue token of a list of the keys under `prefix` read at `revision`, that
/// goes on at `next_key`; `remaining`: the keys from there on, if counted (kept with
/// the prefix they were counted under: a token is taken by any list whose prefix its
/// key is under).
pub(crate) fn encode_continue(
    revision: i64,
    prefix: &str,
    next_key: &[u8],
    remaining: Option<i64>,
) -> String {
    use base64::Engine;
    let mut token = json!({"rv": revision, "start": String::from_utf8_lossy(next_key)});
    if let Some(n) = remaining {
        token["remaining"] = json!(n);
        token["prefix"] = json!(prefix);
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

pub(crate) fn decode_continue(token: &str, prefix: &str) -> ApiResult<(i64, Vec<u8>, Option<i64>)> {
    use base64::Engine;
    let bad =
        || ApiError::bad_request("continue: invalid token: it was not returned by this server");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_i64).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    if !start.starts_with(prefix) {
        return Err(bad());
    }
    let remaining = match v.get("remaining") {
        None => None,
        Some(n) => Some(n.as_i64().filter(|n| *n >= 0).ok_or_else(bad)?),
    }
    .filter(|_| v.get("prefix").and_then(Value::as_str) == Some(prefix));
    Ok((rv, start.as_bytes().to_vec(), remaining))
}

/// One invalid list option, worded as kube's `field.Error`.
struct OptionError {
    field: &'static str,
    /// The cause type (`FieldValueForbidden`, `FieldValueNotSupported`).
    kind: &'static str,
    /// What `ErrorBody()` says: `Forbidden: ...`, `Unsupported value: "x": ...`.
    body: String,
}

impl OptionError {
    fn forbidden(field: &'static str, detail: &str) -> Self {
        OptionError {
            field,
            kind: "FieldValueForbidden",
            body: format!("Forbidden: {detail}"),
        }
    }

    fn not_supported(field: &'static str, value: &str, supported: &[&str]) -> Self {
        let supported: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        OptionError {
            field,
            kind: "FieldValueNotSupported",
            body: format!(
                "Unsupported value: {value:?}: supported values: {}",
                supported.join(", ")
            ),
        }
    }
}

/// Checks the options of a list (or, with `watch`, a watch) as kube-apiserver's
/// `ValidateListOptions` does (`apimachinery/pkg/apis/meta/internalversion/validation`):
/// `resourceVersionMatch` is `Exact` or `NotOlderThan`, needs a `resourceVersion`,
/// goes without `continue`, and `Exact` does not take `resourceVersion=0`; a watch
/// takes `resourceVersionMatch` only with `sendInitialEvents`, which this server does
/// not offer (as kube-apiserver without its `WatchList` feature gate). A violation is
/// 422 `ListOptions.meta.k8s.io "" is invalid: ...`, one cause per rule broken.
pub fn validate_list_options(q: &Query, watch: bool) -> ApiResult<()> {
    const EXACT: &str = "Exact";
    const NOT_OLDER_THAN: &str = "NotOlderThan";
    let rv = q.get("resourceVersion").unwrap_or("");
    let matching = q.get("resourceVersionMatch").unwrap_or("");
    let continuing = !q.get("continue").unwrap_or("").is_empty();
    let initial_events = q.get("sendInitialEvents").is_some();
    let rvm = "resourceVersionMatch";
    let mut errors = Vec::new();
    if watch {
        if initial_events {
            if matching != NOT_OLDER_THAN {
                errors.push(OptionError::forbidden(
                    rvm,
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            errors.push(OptionError::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
            ));
        }
        if !matching.is_empty() {
            if !initial_events {
                errors.push(OptionError::forbidden(
                    rvm,
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            if matching != NOT_OLDER_THAN {
                errors.push(OptionError::not_supported(rvm, matching, &[NOT_OLDER_THAN]));
            }
            if continuing {
                errors.push(OptionError::forbidden(
                    rvm,
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
        }
    } else {
        if !matching.is_empty() {
            if rv.is_empty() {
                errors.push(OptionError::forbidden(
                    rvm,
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if continuing {
                errors.push(OptionError::forbidden(
                    rvm,
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            if matching != EXACT && matching != NOT_OLDER_THAN {
                errors.push(OptionError::not_supported(
                    rvm,
                    matching,
                    &[EXACT, NOT_OLDER_THAN, ""],
                ));
            }
            if matching == EXACT && rv == "0" {
                errors.push(OptionError::forbidden(
                    rvm,
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        if initial_events {
            errors.push(OptionError::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    // `ErrorList.ToAggregate`: one message per distinct error, `[a, b]` for several.
    let mut seen = std::collections::HashSet::new();
    errors.retain(|e| seen.insert(format!("{}: {}", e.field, e.body)));
    let list: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.body))
        .collect();
    let message = match list.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    let causes = errors
        .into_iter()
        .map(|e| StatusCause {
            field: Some(e.field.to_string()),
            message: Some(e.body),
            reason: Some(e.kind.to_string()),
        })
        .collect();
    Err(ApiError {
        details: Some(Box::new(StatusDetails {
            group: Some("meta.k8s.io".to_string()),
            kind: Some("ListOptions".to_string()),
            causes: Some(causes),
            ..StatusDetails::default()
        })),
        ..ApiError::new(
            http::StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("ListOptions.meta.k8s.io \"\" is invalid: {message}"),
        )
    })
}

/// A `resourceVersion` as kube-apiserver's versioner reads it: an unsigned 64-bit
/// number (0 when empty). Values past `i64::MAX` are no revision the store will reach,
/// but they are well-formed: they wait and get the 504 of any future revision.
pub fn requested_revision(rv: &str) -> ApiResult<u64> {
    if rv.is_empty() {
        return Ok(0);
    }
    match rv.parse::<u64>() {
        Ok(n) => Ok(n),
        Err(_) => parse_resource_version(rv).map(i64::unsigned_abs),
    }
}

/// Label and field selectors of a list or watch.
pub struct Filter {
    labels: Option<kube_core::Selector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    /// The filter that selects every object.
    pub const fn everything() -> Self {
        Filter {
            labels: None,
            fields: None,
        }
    }

    /// Reads `labelSelector` and `fieldSelector`; 400 if either does not parse or
    /// selects a field `kind` does not have.
    pub fn from_query(kind: &ObjectKind, q: &Query) -> ApiResult<Self> {
        let filter = Self::parse(q)?;
        if let Some(f) = &filter.fields {
            f.check(kind)
                .map_err(|e| ApiError::bad_request(format!("fieldSelector: {e}")))?;
        }
        Ok(filter)
    }

    /// Reads `labelSelector` and `fieldSelector` for what is not a stored kind (the
    /// computed ones, whose fields [`Self::matches_with`] gives); 400 if either does
    /// not parse.
    pub fn parse(q: &Query) -> ApiResult<Self> {
        let labels = q
            .get("labelSelector")
            .filter(|s| !s.is_empty())
            .map(|s| {
                parse_label_selector(s)
                    .map_err(|e| ApiError::bad_request(format!("labelSelector: {e}")))
            })
            .transpose()?;
        let fields = q
            .get("fieldSelector")
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<FieldSelector>()
                    .map_err(|e| ApiError::bad_request(format!("fieldSelector: {e}")))
            })
            .transpose()?;
        Ok(Filter { labels, fields })
    }

    /// Whether an object with `labels` and the fields `value` gives is selected.
    pub fn matches_with(
        &self,
        labels: &std::collections::BTreeMap<String, String>,
        value: impl Fn(&str) -> Option<String>,
    ) -> bool {
        self.matches_labels(labels) && self.fields.as_ref().is_none_or(|f| f.matches_with(value))
    }

    /// Whether the filter reads labels only (no field selector): then an object's
    /// labels are all it needs (see [`Self::matches_labels`]).
    pub fn is_labels_only(&self) -> bool {
        self.fields.is_none()
    }

    /// Whether objects with `labels` are selected by the label selector.
    pub fn matches_labels(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.labels.as_ref().is_none_or(|s| s.matches(labels))
    }

    /// Whether an object read as `view` is selected; `None` when a field selector
    /// names fields the view does not hold (the object must be decoded).
    pub fn matches_view(&self, view: &rk8s_api::selector::Selectable) -> Option<bool> {
        if !self.matches_labels(&view.labels) {
            return Some(false);
        }
        match &self.fields {
            None => Some(true),
            Some(f) => view.matches_fields(f),
        }
    }

    /// The node a pod watch is confined to (`fieldSelector=spec.nodeName=NODE`, as
    /// every kubelet watches its pods): the watch cache then hands it only the changes
    /// of that node's pods, as kube-apiserver's cacher does by its `spec.nodeName`
    /// trigger, instead of every pod change for the selector to drop.
    pub fn node_trigger(&self, kind: &ObjectKind) -> Option<String> {
        if kind.kind != "Pod" || kind.api_version != "v1" {
            return None;
        }
        self.fields
            .as_ref()?
            .required("spec.nodeName")
            .map(str::to_string)
    }

    /// Whether the filter selects everything.
    pub fn is_everything(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    /// Whether `obj` is selected (without copying its labels: this runs for every
    /// object a list reads and every change a watcher sees).
    pub fn matches(&self, obj: &AnyObject) -> bool {
        static NO_LABELS: std::collections::BTreeMap<String, String> =
            std::collections::BTreeMap::new();
        let labels = obj.metadata().labels.as_ref().unwrap_or(&NO_LABELS);
        self.matches_labels(labels) && self.fields.as_ref().is_none_or(|f| f.matches(obj))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_foreign_prefixes() {
        let t = encode_continue(
            42,
            "/registry/pods/default/",
            b"/registry/pods/default/web\0",
            None,
        );
        assert_eq!(
            decode_continue(&t, "/registry/pods/default/").unwrap(),
            (42, b"/registry/pods/default/web\0".to_vec(), None)
        );
        assert!(decode_continue(&t, "/registry/pods/other/").is_err());
        assert!(decode_continue("garbage!", "/registry/pods/").is_err());
        // The keys after the page, when it counted them.
        let t = encode_continue(
            42,
            "/registry/pods/default/",
            b"/registry/pods/default/web\0",
            Some(7),
        );
        let (_, _, remaining) = decode_continue(&t, "/registry/pods/default/").unwrap();
        assert_eq!(remaining, Some(7));
        // Taken by a list of another prefix (all namespaces), the count is not its.
        let (_, start, remaining) = decode_continue(&t, "/registry/pods/").unwrap();
        assert_eq!((start.len(), remaining), (27, None));
        use base64::Engine;
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"rv": 42, "start": "/registry/pods/a", "remaining": -1}"#);
        assert!(decode_continue(&forged, "/registry/pods/").is_err());
    }

    fn query(pairs: &[(&str, &str)]) -> Query {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
        Query::parse(Some(&q.finish()))
    }

    fn list_option_errors(pairs: &[(&str, &str)], watch: bool) -> Option<String> {
        validate_list_options(&query(pairs), watch)
            .err()
            .map(|e| e.message)
    }

    #[test]
    fn an_unsupported_resource_version_match_is_invalid_in_kube_apiserver_words() {
        let e = validate_list_options(
            &query(&[
                ("resourceVersion", "5"),
                ("resourceVersionMatch", "garbage"),
            ]),
            false,
        )
        .unwrap_err();
        assert_eq!((e.code.as_u16(), e.reason), (422, "Invalid"));
        assert_eq!(
            e.message,
            r#"ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Unsupported value: "garbage": supported values: "Exact", "NotOlderThan", """#
        );
        let details = e.details.unwrap();
        assert_eq!(
            (
                details.group.as_deref(),
                details.kind.as_deref(),
                details.name
            ),
            (Some("meta.k8s.io"), Some("ListOptions"), None)
        );
        let cause = &details.causes.unwrap()[0];
        assert_eq!(
            (cause.reason.as_deref(), cause.field.as_deref()),
            (Some("FieldValueNotSupported"), Some("resourceVersionMatch"))
        );
    }

    #[test]
    fn list_options_follow_every_rule_of_validate_list_options() {
        assert_eq!(list_option_errors(&[], false), None);
        assert_eq!(
            list_option_errors(
                &[("resourceVersion", "5"), ("resourceVersionMatch", "Exact")],
                false
            ),
            None
        );
        assert_eq!(
            list_option_errors(
                &[
                    ("resourceVersion", "0"),
                    ("resourceVersionMatch", "NotOlderThan")
                ],
                false
            ),
            None
        );
        assert_eq!(
            list_option_errors(&[("resourceVersionMatch", "NotOlderThan")], false).unwrap(),
            r#"ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"#
        );
        assert_eq!(
            list_option_errors(
                &[("resourceVersion", "0"), ("resourceVersionMatch", "Exact")],
                false
            )
            .unwrap(),
            r#"ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0""#
        );
        assert_eq!(
            list_option_errors(&[("resourceVersionMatch", "x"), ("continue", "abc")], false)
                .unwrap(),
            r#"ListOptions.meta.k8s.io "" is invalid: [resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided, resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided, resourceVersionMatch: Unsupported value: "x": supported values: "Exact", "NotOlderThan", ""]"#
        );
        assert_eq!(
            list_option_errors(&[("sendInitialEvents", "true")], false).unwrap(),
            r#"ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list"#
        );
    }

    #[test]
    fn watch_options_take_no_resource_version_match_without_initial_events() {
        assert_eq!(list_option_errors(&[("resourceVersion", "7")], true), None);
        assert_eq!(
            list_option_errors(&[("resourceVersionMatch", "NotOlderThan")], true).unwrap(),
            r#"ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"#
        );
        assert_eq!(
            list_option_errors(&[("resourceVersionMatch", "Exact")], true).unwrap(),
            r#"ListOptions.meta.k8s.io "" is invalid: [resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided, resourceVersionMatch: Unsupported value: "Exact": supported values: "NotOlderThan"]"#
        );
        // This server has no watch-list streams: kube-apiserver without WatchList.
        assert_eq!(
            list_option_errors(
                &[
                    ("sendInitialEvents", "true"),
                    ("resourceVersionMatch", "NotOlderThan")
                ],
                true
            )
            .unwrap(),
            r#"ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"#
        );
    }

    #[test]
    fn resource_versions_are_read_as_unsigned_64_bit_numbers() {
        assert_eq!(requested_revision("").unwrap(), 0);
        assert_eq!(requested_revision("42").unwrap(), 42);
        assert_eq!(
            requested_revision("18446744073709551615").unwrap(),
            u64::MAX
        );
        for bad in ["-1", "x", "18446744073709551616", "1.5"] {
            assert_eq!(
                requested_revision(bad).unwrap_err().code.as_u16(),
                400,
                "{bad}"
            );
        }
    }
}

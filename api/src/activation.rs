//! Scale from zero on request: the annotations a user puts on a Deployment, the one
//! the activation controller mirrors onto the Services in front of it (what makes a
//! node's Ingress proxy hold requests), and the activity lines a node reports.
//!
//! - On the Deployment (the user's): [`WAKE_ON_REQUEST`] `"true"`; [`IDLE_AFTER`]
//!   (a Go duration, default [`DEFAULT_IDLE_AFTER`], `0`: never scaled down);
//!   [`ACTIVATION_REPLICAS`] (default 1, Knative's `activation-scale`);
//!   [`ACTIVATION_TIMEOUT`] (default [`DEFAULT_ACTIVATION_TIMEOUT`], ingress-nginx's
//!   `proxy-read-timeout`). A bad value is reported and its default used.
//! - On the Service (the controller's): [`ACTIVATION_TIMEOUT`] again, the
//!   Deployment's value. It only makes the proxy hold requests while the Service
//!   has no endpoints; it never makes anything scale.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::parse_duration;

/// `"true"`: the Deployment is scaled up from zero by a request through the Ingress.
pub const WAKE_ON_REQUEST: &str = "scale.rk8s.io/wake-on-request";
/// How long without Ingress traffic before the Deployment goes back to zero.
pub const IDLE_AFTER: &str = "scale.rk8s.io/idle-after";
/// How many replicas a wake asks for.
pub const ACTIVATION_REPLICAS: &str = "scale.rk8s.io/activation-replicas";
/// How long a request waits for an endpoint (on the Deployment: the user's; on a
/// Service: the activation controller's copy, which makes the proxy hold).
pub const ACTIVATION_TIMEOUT: &str = "scale.rk8s.io/activation-timeout";

/// [`IDLE_AFTER`]'s default (KEDA http-add-on's `scaledownPeriod`, 300 s).
pub const DEFAULT_IDLE_AFTER: Duration = Duration::from_secs(300);
/// [`ACTIVATION_TIMEOUT`]'s default (ingress-nginx's `proxy-read-timeout`).
pub const DEFAULT_ACTIVATION_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest [`ACTIVATION_TIMEOUT`] taken: every held request is bounded.
pub const MAX_ACTIVATION_TIMEOUT: Duration = Duration::from_secs(600);
/// The most replicas [`ACTIVATION_REPLICAS`] may ask for.
pub const MAX_ACTIVATION_REPLICAS: i32 = 1000;

/// What a Deployment's annotations ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// [`WAKE_ON_REQUEST`] is `"true"`.
    pub wake_on_request: bool,
    /// [`IDLE_AFTER`] (`None`: never scaled down by idleness).
    pub idle_after: Option<Duration>,
    /// [`ACTIVATION_REPLICAS`].
    pub activation_replicas: i32,
    /// [`ACTIVATION_TIMEOUT`].
    pub activation_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            wake_on_request: false,
            idle_after: Some(DEFAULT_IDLE_AFTER),
            activation_replicas: 1,
            activation_timeout: DEFAULT_ACTIVATION_TIMEOUT,
        }
    }
}

/// A bad annotation value: its name, its value and why (the default is used).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The annotation.
    pub annotation: &'static str,
    /// Its value.
    pub value: String,
    /// Why it was not taken.
    pub why: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "annotation {}: {:?} {}; the default is used",
            self.annotation, self.value, self.why
        )
    }
}

/// The settings a Deployment's `annotations` ask for, and what was wrong with them.
pub fn settings(annotations: Option<&BTreeMap<String, String>>) -> (Settings, Vec<Problem>) {
    let mut out = Settings::default();
    let mut problems = Vec::new();
    let Some(a) = annotations else {
        return (out, problems);
    };
    let mut bad = |annotation: &'static str, value: &str, why: String| {
        problems.push(Problem {
            annotation,
            value: value.to_string(),
            why,
        });
    };
    if let Some(v) = a.get(WAKE_ON_REQUEST) {
        match v.trim() {
            "true" => out.wake_on_request = true,
            "false" | "" => {}
            _ => bad(WAKE_ON_REQUEST, v, "is not \"true\" or \"false\"".into()),
        }
    }
    if let Some(v) = a.get(IDLE_AFTER) {
        match parse_duration(v.trim()) {
            Ok(d) if d.is_zero() => out.idle_after = None,
            Ok(d) => out.idle_after = Some(d),
            Err(e) => bad(IDLE_AFTER, v, format!("is not a duration ({e})")),
        }
    }
    if let Some(v) = a.get(ACTIVATION_REPLICAS) {
        match v.trim().parse::<i32>() {
            Ok(n) if (1..=MAX_ACTIVATION_REPLICAS).contains(&n) => out.activation_replicas = n,
            _ => bad(
                ACTIVATION_REPLICAS,
                v,
                format!("is not a whole number from 1 to {MAX_ACTIVATION_REPLICAS}"),
            ),
        }
    }
    if let Some(v) = a.get(ACTIVATION_TIMEOUT) {
        match parse_duration(v.trim()) {
            Ok(d) if !d.is_zero() && d <= MAX_ACTIVATION_TIMEOUT => out.activation_timeout = d,
            Ok(_) => bad(
                ACTIVATION_TIMEOUT,
                v,
                format!(
                    "is not between 0 and {} s",
                    MAX_ACTIVATION_TIMEOUT.as_secs()
                ),
            ),
            Err(e) => bad(ACTIVATION_TIMEOUT, v, format!("is not a duration ({e})")),
        }
    }
    (out, problems)
}

/// How long the proxy holds requests to a Service with these `annotations` while it
/// has no endpoints (`None`: it does not hold; a bad value holds for the default).
pub fn service_hold(annotations: Option<&BTreeMap<String, String>>) -> Option<Duration> {
    let v = annotations?.get(ACTIVATION_TIMEOUT)?;
    Some(
        parse_duration(v.trim())
            .ok()
            .filter(|d| !d.is_zero())
            .map_or(DEFAULT_ACTIVATION_TIMEOUT, |d| {
                d.min(MAX_ACTIVATION_TIMEOUT)
            }),
    )
}

/// The Service annotation's value for a timeout (whole seconds, or milliseconds).
pub fn timeout_value(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// One backend's Ingress traffic on one node, as its activity stream reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendActivity {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
    /// Requests routed to it since the node's proxy started (grows with traffic).
    pub requests: u64,
    /// Requests passed to a pod and not yet answered.
    pub in_flight: u64,
    /// Requests held for an endpoint now.
    pub waiting: u64,
}

/// What a line of a node's `GET /ingress/activity` stream says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LineKind {
    /// The periodic report (and the first line).
    Snapshot,
    /// Sent at once when a backend's waiting count went from 0 to more.
    Waiting,
}

/// One line of a node's activity stream (NDJSON): every holding backend's counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityLine {
    /// Why the line was sent.
    #[serde(rename = "type")]
    pub kind: LineKind,
    /// The backends whose Service makes the proxy hold.
    #[serde(default)]
    pub backends: Vec<BackendActivity>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn annotations_are_read_with_defaults_and_bad_values_reported() {
        let (s, p) = settings(None);
        assert_eq!(s, Settings::default());
        assert!(p.is_empty());
        let (s, p) = settings(Some(&of(&[
            (WAKE_ON_REQUEST, "true"),
            (IDLE_AFTER, "10s"),
            (ACTIVATION_REPLICAS, "2"),
            (ACTIVATION_TIMEOUT, "1m30s"),
        ])));
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            s,
            Settings {
                wake_on_request: true,
                idle_after: Some(Duration::from_secs(10)),
                activation_replicas: 2,
                activation_timeout: Duration::from_secs(90),
            }
        );
        let (s, _) = settings(Some(&of(&[(IDLE_AFTER, "0")])));
        assert_eq!(s.idle_after, None);
        let (s, p) = settings(Some(&of(&[
            (WAKE_ON_REQUEST, "yes"),
            (IDLE_AFTER, "5"),
            (ACTIVATION_REPLICAS, "0"),
            (ACTIVATION_TIMEOUT, "2h"),
        ])));
        assert_eq!(s, Settings::default());
        let named: Vec<&str> = p.iter().map(|p| p.annotation).collect();
        assert_eq!(
            named,
            [
                WAKE_ON_REQUEST,
                IDLE_AFTER,
                ACTIVATION_REPLICAS,
                ACTIVATION_TIMEOUT
            ]
        );
        assert!(p[1].to_string().contains("\"5\""), "{}", p[1]);
    }

    #[test]
    fn a_service_holds_only_with_the_annotation_and_always_bounded() {
        assert_eq!(service_hold(None), None);
        assert_eq!(service_hold(Some(&of(&[("other", "1")]))), None);
        let hold = |v: &str| service_hold(Some(&of(&[(ACTIVATION_TIMEOUT, v)])));
        assert_eq!(hold("2s"), Some(Duration::from_secs(2)));
        assert_eq!(hold("bad"), Some(DEFAULT_ACTIVATION_TIMEOUT));
        assert_eq!(hold("100h"), Some(MAX_ACTIVATION_TIMEOUT));
        assert_eq!(
            hold(&timeout_value(Duration::from_millis(1500))),
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn activity_lines_are_camel_case_json() {
        let line = ActivityLine {
            kind: LineKind::Waiting,
            backends: vec![BackendActivity {
                namespace: "default".into(),
                service: "web".into(),
                requests: 3,
                in_flight: 1,
                waiting: 2,
            }],
        };
        let text = serde_json::to_string(&line).unwrap();
        assert_eq!(
            text,
            r#"{"type":"waiting","backends":[{"namespace":"default","service":"web","requests":3,"inFlight":1,"waiting":2}]}"#
        );
        assert_eq!(serde_json::from_str::<ActivityLine>(&text).unwrap(), line);
    }
}

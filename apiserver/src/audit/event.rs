//! One audit event (`audit.k8s.io/v1` `Event`) and its JSON line, as kube-apiserver's
//! log backend writes it. Bodies travel as the bytes that were sent and are decoded
//! (JSON, YAML or protobuf) only when the line is written, off the request's path.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use super::attributes::RequestInfo;
use super::policy::{Level, Stage, User};

/// The `apiVersion` of events.
pub const EVENT_API_VERSION: &str = "audit.k8s.io/v1";

/// Bodies larger than this are not logged (the event says so in its
/// `audit.k8s.io/truncated` annotation, as kube-apiserver's truncating backend does).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The annotation of an event whose bodies were left out.
pub const TRUNCATED: &str = "audit.k8s.io/truncated";

/// A body kept for the log.
#[derive(Clone, Debug, PartialEq)]
pub enum Captured {
    /// As sent, with its media type.
    Bytes {
        /// The bytes.
        bytes: Bytes,
        /// The `Content-Type` they came with.
        content_type: String,
    },
    /// Already an object (the `Status` of an error).
    Value(Value),
}

impl Captured {
    fn len(&self) -> usize {
        match self {
            Captured::Bytes { bytes, .. } => bytes.len(),
            Captured::Value(_) => 0,
        }
    }

    /// The body as JSON: protobuf (by its magic), YAML (by its media type) or JSON;
    /// `None` when it is none of them.
    fn decode(&self) -> Option<Value> {
        let (bytes, content_type) = match self {
            Captured::Value(v) => return Some(v.clone()),
            Captured::Bytes {
                bytes,
                content_type,
            } => (bytes, content_type),
        };
        if bytes.is_empty() {
            return None;
        }
        if bytes.starts_with(rk8s_api::protobuf::MAGIC) {
            return rk8s_api::protobuf::decode(bytes).ok().map(|d| d.object);
        }
        if content_type.contains("yaml") {
            let text = std::str::from_utf8(bytes).ok()?;
            let docs = rk8s_api::yaml::parse_documents(text).ok()?;
            return docs.into_iter().map(|d| d.value).find(|v| !v.is_null());
        }
        serde_json::from_slice(bytes).ok()
    }
}

/// One event, ready to be written.
#[derive(Clone, Debug)]
pub struct Event {
    /// The request.
    pub info: Arc<RequestInfo>,
    /// The level it is logged at.
    pub level: Level,
    /// The stage this event is written at.
    pub stage: Stage,
    /// When the request reached this stage.
    pub stage_timestamp: Timestamp,
    /// Who made it (empty when authentication failed).
    pub user: Arc<User>,
    /// The user it impersonated.
    pub impersonated: Option<Arc<User>>,
    /// The response's `Status` (`{"metadata":{},"code":201}` for a success).
    pub response_status: Option<ResponseStatus>,
    /// The request's body: logged at `Request` and above, and read at every level for
    /// the name, uid and resourceVersion of the object a create or update sends.
    pub request_body: Option<Captured>,
    /// The response's body (`RequestResponse`).
    pub response_body: Option<Captured>,
    /// Whether `metadata.managedFields` is left out of the bodies.
    pub omit_managed_fields: bool,
    /// Notes of the serving chain (`authorization.k8s.io/decision`).
    pub annotations: BTreeMap<String, String>,
}

/// `audit.k8s.io/v1` `ObjectReference`.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct ObjectRef<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    resource: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    namespace: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    uid: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    api_group: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    api_version: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    resource_version: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    subresource: &'a str,
}

/// An event as written, fields in kube-apiserver's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    kind: &'static str,
    api_version: &'static str,
    level: Level,
    #[serde(rename = "auditID")]
    audit_id: &'a str,
    stage: Stage,
    #[serde(rename = "requestURI")]
    request_uri: &'a str,
    verb: &'a str,
    user: &'a User,
    #[serde(skip_serializing_if = "Option::is_none")]
    impersonated_user: Option<&'a User>,
    #[serde(rename = "sourceIPs", skip_serializing_if = "<[String]>::is_empty")]
    source_ips: &'a [String],
    #[serde(skip_serializing_if = "str::is_empty")]
    user_agent: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    object_ref: Option<ObjectRef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_status: Option<&'a ResponseStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_object: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_object: Option<Value>,
    request_received_timestamp: String,
    stage_timestamp: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

/// A `metav1.MicroTime`: RFC 3339 in UTC with microseconds.
fn micro_time(t: Timestamp) -> String {
    format!("{t:.6}")
}

/// The response's `metav1.Status` as the log writes it: the code, and for an error
/// what the `Status` answered said.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ResponseStatus {
    metadata: BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
}

impl ResponseStatus {
    /// A response answered with `code` (its body is not read).
    pub fn code(code: u16) -> Self {
        ResponseStatus {
            code: Some(code),
            ..Self::default()
        }
    }

    /// A failure: `Status` of `code` with `reason`, `message` and `details`.
    pub fn failure(code: u16, reason: &str, message: &str, details: Option<Value>) -> Self {
        ResponseStatus {
            status: Some("Failure"),
            message: Some(message.to_string()),
            reason: Some(reason.to_string()),
            details,
            code: Some(code),
            ..Self::default()
        }
    }

    /// A refused authentication: its message, and the code once known.
    pub fn unauthenticated(message: String, code: u16) -> Self {
        ResponseStatus {
            message: Some(message),
            code: Some(code),
            ..Self::default()
        }
    }
}

/// Drops `metadata.managedFields` from an object, a list's items or a table's rows.
fn strip_managed_fields(v: &mut Value) {
    fn one(v: &mut Value) {
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
    }
    one(v);
    if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
        items.iter_mut().for_each(one);
    }
    if let Some(rows) = v.get_mut("rows").and_then(Value::as_array_mut) {
        for row in rows {
            if let Some(object) = row.get_mut("object") {
                one(object);
            }
        }
    }
}

impl Event {
    /// The bytes of bodies the event holds.
    pub fn body_bytes(&self) -> usize {
        self.request_body.as_ref().map_or(0, Captured::len)
            + self.response_body.as_ref().map_or(0, Captured::len)
    }

    /// Leaves the bodies out, saying so.
    pub fn drop_bodies(&mut self) {
        let request = self.request_body.take().is_some() && self.level >= Level::Request;
        let response = self.response_body.take().is_some();
        if request || response {
            self.annotations.insert(TRUNCATED.into(), "true".into());
        }
    }

    /// The event as one JSON line (with its newline).
    pub fn render(&self) -> Vec<u8> {
        let info = &self.info;
        let decode = |body: &Option<Captured>| {
            let mut v = body.as_ref()?.decode()?;
            if self.omit_managed_fields {
                strip_managed_fields(&mut v);
            }
            Some(v)
        };
        let request_object = decode(&self.request_body);
        // kube-apiserver's `LogRequestObject`: what the URL does not say is read off
        // the object sent (a create's name; an update's uid and resourceVersion). A
        // patch is no object.
        let sent = (info.verb != "patch")
            .then(|| request_object.as_ref()?.get("metadata"))
            .flatten();
        let from_sent = |key: &str| {
            sent.and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        let object_ref = info.resource.as_ref().map(|r| ObjectRef {
            resource: &r.resource,
            namespace: if r.namespace.is_empty() {
                from_sent("namespace")
            } else {
                &r.namespace
            },
            name: if r.name.is_empty() {
                from_sent("name")
            } else {
                &r.name
            },
            uid: from_sent("uid"),
            api_group: &r.group,
            api_version: &r.version,
            resource_version: from_sent("resourceVersion"),
            subresource: &r.subresource,
        });
        let bodies = info.resource.is_some();
        let line = Line {
            kind: "Event",
            api_version: EVENT_API_VERSION,
            level: self.level,
            audit_id: &info.audit_id,
            stage: self.stage,
            request_uri: &info.request_uri,
            verb: &info.verb,
            user: &self.user,
            impersonated_user: self.impersonated.as_deref(),
            source_ips: &info.source_ips,
            user_agent: &info.user_agent,
            object_ref,
            response_status: self.response_status.as_ref(),
            request_object: request_object
                .clone()
                .filter(|_| bodies && self.level >= Level::Request),
            response_object: decode(&self.response_body)
                .filter(|_| bodies && self.level >= Level::RequestResponse),
            request_received_timestamp: micro_time(info.received),
            stage_timestamp: micro_time(self.stage_timestamp),
            annotations: &self.annotations,
        };
        let mut out = serde_json::to_vec(&line).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::attributes::Credentials;
    use crate::audit::policy::Resource;

    fn info(verb: &str, resource: Option<Resource>) -> Arc<RequestInfo> {
        Arc::new(RequestInfo {
            audit_id: "2f1ed5c8-0c63-4c42-8d1f-86a2b6f0b1a9".into(),
            received: "2026-11-02T10:00:00.123456789Z".parse().unwrap(),
            request_uri: "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create".into(),
            path: "/api/v1/namespaces/default/configmaps".into(),
            verb: verb.into(),
            resource,
            long_running: false,
            source_ips: vec!["127.0.0.1".into()],
            user_agent: "kubectl/v1.33.0".into(),
            content_type: "application/json".into(),
            credentials: Credentials::default(),
        })
    }

    fn configmaps() -> Resource {
        Resource {
            group: String::new(),
            version: "v1".into(),
            resource: "configmaps".into(),
            subresource: String::new(),
            namespace: "default".into(),
            name: String::new(),
        }
    }

    fn event(level: Level, verb: &str) -> Event {
        let sent = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "managedFields": [{"manager": "kubectl"}]},
            "data": {"a": "1"}
        });
        let stored = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "default", "uid": "u-1",
                         "resourceVersion": "42", "managedFields": [{"manager": "kubectl"}]},
            "data": {"a": "1"}
        });
        Event {
            info: info(verb, Some(configmaps())),
            level,
            stage: Stage::ResponseComplete,
            stage_timestamp: "2026-11-02T10:00:00.2Z".parse().unwrap(),
            user: Arc::new(User {
                username: "admin".into(),
                uid: None,
                groups: vec!["system:masters".into(), "system:authenticated".into()],
            }),
            impersonated: None,
            response_status: Some(ResponseStatus::code(201)),
            request_body: Some(Captured::Bytes {
                bytes: Bytes::from(sent.to_string()),
                content_type: "application/json".into(),
            }),
            response_body: Some(Captured::Bytes {
                bytes: Bytes::from(stored.to_string()),
                content_type: "application/json".into(),
            }),
            omit_managed_fields: false,
            annotations: BTreeMap::from([(
                "authorization.k8s.io/decision".to_string(),
                "allow".to_string(),
            )]),
        }
    }

    fn rendered(e: &Event) -> (String, Value) {
        let line = String::from_utf8(e.render()).unwrap();
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let v = serde_json::from_str(&line).unwrap();
        (line, v)
    }

    #[test]
    fn a_request_response_event_has_kubernetes_shape() {
        let (line, v) = rendered(&event(Level::RequestResponse, "create"));
        assert!(
            line.starts_with(
                r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"2f1ed5c8-0c63-4c42-8d1f-86a2b6f0b1a9","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create","verb":"create","user":{"username":"admin","groups":["system:masters","system:authenticated"]},"sourceIPs":["127.0.0.1"],"userAgent":"kubectl/v1.33.0","objectRef":{"resource":"configmaps","namespace":"default","name":"settings","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestObject":"#
            ),
            "{line}"
        );
        assert_eq!(v["requestObject"]["data"]["a"], "1");
        assert_eq!(v["responseObject"]["metadata"]["uid"], "u-1");
        assert_eq!(
            v["requestReceivedTimestamp"], "2026-11-02T10:00:00.123456Z",
            "microseconds, as metav1.MicroTime"
        );
        assert_eq!(v["stageTimestamp"], "2026-11-02T10:00:00.200000Z");
        assert_eq!(v["annotations"]["authorization.k8s.io/decision"], "allow");
        assert!(v["responseObject"]["metadata"]["managedFields"].is_array());
    }

    #[test]
    fn lower_levels_leave_the_bodies_out() {
        let (_, v) = rendered(&event(Level::Request, "create"));
        assert!(v["requestObject"].is_object());
        assert!(v.get("responseObject").is_none());
        let (_, v) = rendered(&event(Level::Metadata, "create"));
        assert!(v.get("requestObject").is_none());
        assert!(v.get("responseObject").is_none());
        // The name still comes from the object sent.
        assert_eq!(v["objectRef"]["name"], "settings");
        // A patch is no object: nothing is read off it.
        let (_, v) = rendered(&event(Level::Metadata, "patch"));
        assert!(v["objectRef"].get("name").is_none());
    }

    #[test]
    fn managed_fields_can_be_left_out() {
        let mut e = event(Level::RequestResponse, "create");
        e.omit_managed_fields = true;
        let (_, v) = rendered(&e);
        assert!(
            v["requestObject"]["metadata"]
                .get("managedFields")
                .is_none()
        );
        assert!(
            v["responseObject"]["metadata"]
                .get("managedFields")
                .is_none()
        );
        let mut list = serde_json::json!({"items": [{"metadata": {"managedFields": []}}],
            "rows": [{"object": {"metadata": {"managedFields": []}}}]});
        strip_managed_fields(&mut list);
        assert_eq!(
            list,
            serde_json::json!({"items": [{"metadata": {}}], "rows": [{"object": {"metadata": {}}}]})
        );
    }

    #[test]
    fn dropped_bodies_are_noted() {
        let mut e = event(Level::RequestResponse, "create");
        assert!(e.body_bytes() > 100);
        e.drop_bodies();
        assert_eq!(e.body_bytes(), 0);
        let (_, v) = rendered(&e);
        assert_eq!(v["annotations"][TRUNCATED], "true");
        assert!(v.get("requestObject").is_none());
    }

    #[test]
    fn a_refused_authentication_has_an_empty_user_and_non_resource_requests_no_bodies() {
        let mut e = event(Level::RequestResponse, "get");
        e.info = info("get", None);
        e.user = Arc::new(User::default());
        e.stage = Stage::ResponseStarted;
        e.annotations.clear();
        let (line, v) = rendered(&e);
        assert!(line.contains(r#""user":{},"#), "{line}");
        assert!(v.get("objectRef").is_none());
        assert!(v.get("requestObject").is_none() && v.get("responseObject").is_none());
        assert!(v.get("annotations").is_none());
    }

    #[test]
    fn bodies_are_read_as_json_yaml_or_protobuf() {
        let yaml = Captured::Bytes {
            bytes: Bytes::from_static(b"kind: ConfigMap\ndata: {a: '1'}\n"),
            content_type: "application/apply-patch+yaml".into(),
        };
        assert_eq!(yaml.decode().unwrap()["data"]["a"], "1");
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web"}});
        let bytes = rk8s_api::protobuf::encode(&pod).unwrap();
        let proto = Captured::Bytes {
            bytes: Bytes::from(bytes),
            content_type: rk8s_api::protobuf::MEDIA_TYPE.into(),
        };
        assert_eq!(proto.decode().unwrap()["metadata"]["name"], "web");
        let garbage = Captured::Bytes {
            bytes: Bytes::from_static(b"\xff not json"),
            content_type: "application/json".into(),
        };
        assert_eq!(garbage.decode(), None);
    }
}

//! Lists answered from the stored bytes. A stored object is the JSON the server would
//! send but for its `resourceVersion` (the key's revision, see [`crate::registry`]),
//! so a list needs no object decoded and encoded again: each item is its stored JSON
//! with the revision written into its `metadata`, and in protobuf that JSON transcoded
//! straight into the item's message. Objects are decoded only where something must
//! look inside them (a label or field selector, a `Table`).

use rk8s_api::protobuf;
use rk8s_raftstore::proto::KeyValue;
use serde::de::{self, Deserializer as _, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::status::{ApiError, ApiResult};

/// A list of stored objects of one kind, with its `ListMeta`.
#[derive(Debug)]
pub struct StoredList {
    /// The `apiVersion` of the list and of its items.
    pub api_version: &'static str,
    /// The kind of the items (`Pod` for a `PodList`).
    pub item_kind: &'static str,
    /// The list's `metadata` (`resourceVersion`, `continue`, `remainingItemCount`).
    pub metadata: Value,
    /// The items as stored, in key order.
    pub items: Vec<KeyValue>,
}

impl StoredList {
    fn list_kind(&self) -> String {
        format!("{}List", self.item_kind)
    }

    /// The list as JSON.
    pub fn to_json(&self) -> ApiResult<Vec<u8>> {
        let size: usize = self.items.iter().map(|kv| kv.value.len() + 40).sum();
        let mut out = Vec::with_capacity(size + 256);
        let head = serde_json::json!({
            "kind": self.list_kind(),
            "apiVersion": self.api_version,
        });
        // `{"apiVersion":...,"kind":...` and then the rest, in kube-apiserver's order.
        let head = serde_json::to_vec(&head).unwrap_or_default();
        out.extend_from_slice(&head[..head.len().saturating_sub(1)]);
        out.extend_from_slice(b",\"metadata\":");
        serde_json::to_writer(&mut out, &self.metadata).map_err(internal)?;
        out.extend_from_slice(b",\"items\":[");
        for (i, kv) in self.items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            with_resource_version(&kv.value, kv.mod_revision, &mut out)
                .map_err(|e| stored_error(kv, &e))?;
        }
        out.extend_from_slice(b"]}");
        Ok(out)
    }

    /// The list as a protobuf body; `None` for a kind without a protobuf encoding
    /// (custom resources), which is answered in JSON.
    pub fn to_protobuf(&self) -> Option<ApiResult<Vec<u8>>> {
        let list_kind = self.list_kind();
        let (_, items_tag) = protobuf::list_field_tags(self.api_version, &list_kind)?;
        Some(self.encode_protobuf(&list_kind, items_tag))
    }

    fn encode_protobuf(&self, list_kind: &str, items_tag: u32) -> ApiResult<Vec<u8>> {
        let header = serde_json::json!({
            "apiVersion": self.api_version,
            "kind": list_kind,
            "metadata": self.metadata,
        });
        let mut raw = protobuf::encode_message(self.api_version, list_kind, &header)
            .map_err(|e| ApiError::internal(format!("encoding the list's metadata: {e}")))?;
        let size: usize = self.items.iter().map(|kv| kv.value.len()).sum();
        raw.reserve(size);
        let mut json = Vec::new();
        let mut item = Vec::new();
        for kv in &self.items {
            json.clear();
            with_resource_version(&kv.value, kv.mod_revision, &mut json)
                .map_err(|e| stored_error(kv, &e))?;
            item.clear();
            protobuf::transcode_message(self.api_version, self.item_kind, &json, &mut item)
                .map_err(|e| stored_error(kv, &e.to_string()))?;
            protobuf::put_message_field(&mut raw, items_tag, &item);
        }
        Ok(protobuf::envelope_body(self.api_version, list_kind, &raw))
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

fn stored_error(kv: &KeyValue, e: &str) -> ApiError {
    ApiError::internal(format!(
        "stored object {}: {e}",
        String::from_utf8_lossy(&kv.key)
    ))
}

/// Appends the stored JSON object `stored` to `out` with `metadata.resourceVersion`
/// set to `revision`. The object is read once, without building it: only the offsets
/// of its top-level `metadata` and of that object's keys are looked for. The field is
/// written in key order, as a `serde_json::Map` would hold it, so that an object
/// stored with sorted keys stays sorted (the protobuf transcoder relies on it).
pub fn with_resource_version(
    stored: &[u8],
    revision: i64,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let text = std::str::from_utf8(stored).map_err(|e| format!("not UTF-8: {e}"))?;
    let rv = format!("\"resourceVersion\":\"{revision}\"");
    let Some(metadata) = top_level(text, Some("metadata"))?.found else {
        // No metadata: one with just the revision, first (it sorts before most keys,
        // and an object without metadata is not one the server stored).
        let at = text
            .find('{')
            .ok_or_else(|| "not a JSON object".to_string())?;
        out.extend_from_slice(&stored[..=at]);
        out.extend_from_slice(b"\"metadata\":{");
        out.extend_from_slice(rv.as_bytes());
        out.push(b'}');
        if text[at + 1..].trim_start() != "}" {
            out.push(b',');
        }
        out.extend_from_slice(&stored[at + 1..]);
        return Ok(());
    };
    let body = metadata.get();
    if !body.starts_with('{') {
        return Err("metadata is not an object".to_string());
    }
    let keys = top_level(body, None)?;
    if keys.has_resource_version {
        return Err("a stored object has a resourceVersion".to_string());
    }
    let open = offset_in(text, body);
    match keys.before_resource_version {
        // After the value of the last key that sorts before it.
        Some(value) => {
            let at = offset_in(text, value.get()) + value.get().len();
            out.extend_from_slice(&stored[..at]);
            out.push(b',');
            out.extend_from_slice(rv.as_bytes());
            out.extend_from_slice(&stored[at..]);
        }
        // First.
        None => {
            out.extend_from_slice(&stored[..=open]);
            out.extend_from_slice(rv.as_bytes());
            if body[1..].trim_start() != "}" {
                out.push(b',');
            }
            out.extend_from_slice(&stored[open + 1..]);
        }
    }
    Ok(())
}

/// Where `part` (a slice of `whole`) starts in `whole`.
fn offset_in(whole: &str, part: &str) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

/// What [`top_level`] found in an object.
#[derive(Default)]
struct Keys<'a> {
    /// The value of the key looked for.
    found: Option<&'a RawValue>,
    /// The value of the last key that sorts before `resourceVersion`.
    before_resource_version: Option<&'a RawValue>,
    /// Whether `resourceVersion` is a key.
    has_resource_version: bool,
}

/// Reads the JSON object `text` (the whole text) key by key without building it.
fn top_level<'a>(text: &'a str, find: Option<&'static str>) -> Result<Keys<'a>, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let keys = de
        .deserialize_map(KeyScan { find })
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(keys)
}

/// Reads a JSON object's keys; the values are kept as slices of the input only where
/// [`Keys`] needs them, skipped otherwise.
struct KeyScan {
    find: Option<&'static str>,
}

impl<'de> Visitor<'de> for KeyScan {
    type Value = Keys<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut keys = Keys::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.find {
                Some(find) => {
                    if key == find && keys.found.is_none() {
                        keys.found = Some(map.next_value::<&'de RawValue>()?);
                    } else {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
                None => {
                    let value = map.next_value::<&'de RawValue>()?;
                    match key.as_ref().cmp("resourceVersion") {
                        std::cmp::Ordering::Less => keys.before_resource_version = Some(value),
                        std::cmp::Ordering::Equal => keys.has_resource_version = true,
                        std::cmp::Ordering::Greater => {}
                    }
                }
            }
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_rv(stored: &str, rv: i64) -> Result<Value, String> {
        let mut out = Vec::new();
        with_resource_version(stored.as_bytes(), rv, &mut out)?;
        serde_json::from_slice(&out).map_err(|e| e.to_string())
    }

    #[test]
    fn the_revision_goes_into_metadata() {
        let v = with_rv(
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","labels":{"metadata":"x"}},"data":{"k":"v"}}"#,
            42,
        )
        .unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], "42");
        assert_eq!(v["metadata"]["name"], "a");
        assert_eq!(v["metadata"]["labels"]["metadata"], "x");
        assert_eq!(v["data"]["k"], "v");
        // In key order: after `namespace`, before `uid`.
        let mut out = Vec::new();
        with_resource_version(
            br#"{"metadata":{"annotations":{"z":"1"},"namespace":"d","uid":"u"}}"#,
            8,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"metadata":{"annotations":{"z":"1"},"namespace":"d","resourceVersion":"8","uid":"u"}}"#
        );
        // A stored object (keys sorted, as serde_json writes a `Value`) stays as
        // serde_json would write it with the revision: sorted, so the protobuf
        // transcoder takes its fast path.
        let stored = serde_json::to_vec(&serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "d", "labels": {"a": "b"},
                         "creationTimestamp": "2026-12-03T10:00:00Z", "uid": "u",
                         "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        }))
        .unwrap();
        let mut out = Vec::new();
        with_resource_version(&stored, 12, &mut out).unwrap();
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(out, serde_json::to_vec(&value).unwrap());
        let mut out = Vec::new();
        with_resource_version(br#"{"metadata":{"uid":"u"}}"#, 8, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"metadata":{"resourceVersion":"8","uid":"u"}}"#
        );
        // Whitespace, an empty metadata, and none at all.
        let v = with_rv(r#"{ "kind" : "X", "metadata" : { } }"#, 7).unwrap();
        assert_eq!(v["metadata"], serde_json::json!({"resourceVersion": "7"}));
        let v = with_rv(r#"{"kind":"X"}"#, 7).unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], "7");
        assert_eq!(v["kind"], "X");
        let v = with_rv("{}", 7).unwrap();
        assert_eq!(v, serde_json::json!({"metadata": {"resourceVersion": "7"}}));
    }

    #[test]
    fn keys_in_strings_and_nested_objects_do_not_fool_it() {
        let v = with_rv(
            r#"{"a":"\"metadata\":{","spec":{"metadata":{"name":"inner"}},"metadata":{"name":"outer"}}"#,
            3,
        )
        .unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], "3");
        assert!(v["spec"]["metadata"].get("resourceVersion").is_none());
        assert_eq!(v["a"], "\"metadata\":{");
    }

    #[test]
    fn what_is_not_a_stored_object_is_an_error() {
        for bad in [
            "",
            "[]",
            "{",
            r#"{"metadata":[]}"#,
            r#"{"metadata":{"resourceVersion":"1"}}"#,
            r#"{"kind":"X"} trailing"#,
            "\u{0}",
        ] {
            assert!(with_rv(bad, 1).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_list_reads_as_json_and_as_protobuf_like_the_objects_it_holds() {
        let stored = |name: &str, rev: i64| KeyValue {
            key: format!("/registry/configmaps/default/{name}").into_bytes(),
            value: serde_json::to_vec(&serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "default"},
                "data": {"k": name},
            }))
            .unwrap(),
            mod_revision: rev,
            ..KeyValue::default()
        };
        let list = StoredList {
            api_version: "v1",
            item_kind: "ConfigMap",
            metadata: serde_json::json!({"resourceVersion": "9", "continue": "c"}),
            items: vec![stored("a", 5), stored("b", 9)],
        };
        let json: Value = serde_json::from_slice(&list.to_json().unwrap()).unwrap();
        assert_eq!(json["kind"], "ConfigMapList");
        assert_eq!(json["apiVersion"], "v1");
        assert_eq!(json["metadata"]["continue"], "c");
        assert_eq!(json["items"][1]["metadata"]["resourceVersion"], "9");
        assert_eq!(json["items"][0]["data"]["k"], "a");
        let bytes = list.to_protobuf().unwrap().unwrap();
        let decoded = protobuf::decode(&bytes).unwrap();
        assert_eq!(decoded.kind, "ConfigMapList");
        // Protobuf's items carry no `apiVersion` and `kind`.
        let mut items = json["items"].clone();
        for item in items.as_array_mut().unwrap() {
            let item = item.as_object_mut().unwrap();
            item.remove("apiVersion");
            item.remove("kind");
        }
        assert_eq!(decoded.object["items"], items);
        assert_eq!(decoded.object["metadata"], json["metadata"]);

        let empty = StoredList {
            items: Vec::new(),
            ..list
        };
        let json: Value = serde_json::from_slice(&empty.to_json().unwrap()).unwrap();
        assert_eq!(json["items"], serde_json::json!([]));
    }
}

//! Lists answered from the stored bytes. A stored object is the JSON the server would
//! send but for its `resourceVersion` (the key's revision, see [`crate::registry`]),
//! so a list needs no object decoded and encoded again: each item is its stored JSON
//! with the revision written into its `metadata`, and in protobuf that JSON transcoded
//! straight into the item's message. Objects are decoded only where something must
//! look inside them (a label or field selector, a `Table`).

use rk8s_api::protobuf;
use rk8s_api::stored::with_resource_version;
use rk8s_raftstore::proto::KeyValue;
use serde_json::Value;

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
            with_resource_version(&kv.value, self.api_version, kv.mod_revision, &mut out)
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
            with_resource_version(&kv.value, self.api_version, kv.mod_revision, &mut json)
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

#[cfg(test)]
mod tests {
    use super::*;

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

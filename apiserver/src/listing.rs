//! Lists answered from the stored bytes. A stored object is the JSON the server would
//! send but for its `resourceVersion` (the key's revision, see [`crate::registry`]),
//! so a list needs no object decoded and encoded again: each item is its stored JSON
//! with the revision written into its `metadata`, and in protobuf that JSON transcoded
//! straight into the item's message. Objects are decoded only where something must
//! look inside them (a label or field selector, a `Table`).
//!
//! Transcoding is most of a protobuf list's time, so the messages of listed objects
//! are kept ([`EncodedItems`], bounded) while their revision stays: a list that finds
//! an object unchanged since the last list copies its message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
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
    /// Where the items' protobuf messages are kept between lists, if anywhere.
    pub encoded: Option<Arc<EncodedItems>>,
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
        let kept = match &self.encoded {
            Some(encoded) => encoded.get(self.api_version, &self.items),
            None => vec![None; self.items.len()],
        };
        let mut fresh = Vec::new();
        let mut json = Vec::new();
        let mut item = Vec::new();
        for (kv, kept) in self.items.iter().zip(kept) {
            if let Some(message) = kept {
                protobuf::put_message_field(&mut raw, items_tag, &message);
                continue;
            }
            json.clear();
            with_resource_version(&kv.value, self.api_version, kv.mod_revision, &mut json)
                .map_err(|e| stored_error(kv, &e))?;
            item.clear();
            protobuf::transcode_message(self.api_version, self.item_kind, &json, &mut item)
                .map_err(|e| stored_error(kv, &e.to_string()))?;
            protobuf::put_message_field(&mut raw, items_tag, &item);
            if self.encoded.is_some() {
                fresh.push((kv, Bytes::copy_from_slice(&item)));
            }
        }
        if let Some(encoded) = &self.encoded {
            encoded.put(self.api_version, fresh);
        }
        Ok(protobuf::envelope_body(self.api_version, list_kind, &raw))
    }
}

/// The protobuf messages of listed objects, by `apiVersion` and key, each with the
/// revision it was transcoded at: a key's value at one revision never changes, so a
/// message found at the object's revision is the one transcoding would write. Bounded
/// to [`EncodedItems::new`]'s budget of bytes (messages and keys): beyond it, entries
/// are dropped (in the map's order, which is no order) until a quarter is free.
/// Entries of deleted or changed objects stay until a list replaces or the budget
/// drops them.
#[derive(Debug)]
pub struct EncodedItems {
    budget: usize,
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    /// By `apiVersion`, then key: the revision and the message.
    messages: HashMap<&'static str, HashMap<Vec<u8>, (i64, Bytes)>>,
    bytes: usize,
}

/// What an entry costs beyond its message and key (the map's slot, the `Bytes`).
const ENTRY_OVERHEAD: usize = 96;

/// What the entry of `key` holding `message` counts against the budget.
fn cost(key: &[u8], message: &Bytes) -> usize {
    key.len() + message.len() + ENTRY_OVERHEAD
}

impl EncodedItems {
    /// A store of messages holding at most about `budget` bytes.
    pub fn new(budget: usize) -> Self {
        EncodedItems {
            budget,
            kept: Mutex::default(),
        }
    }

    /// The kept message of each of `items` (of `api_version`) at its revision.
    fn get(&self, api_version: &'static str, items: &[KeyValue]) -> Vec<Option<Bytes>> {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(messages) = kept.messages.get(api_version) else {
            return vec![None; items.len()];
        };
        items
            .iter()
            .map(|kv| {
                let (revision, message) = messages.get(kv.key.as_slice())?;
                (*revision == kv.mod_revision).then(|| message.clone())
            })
            .collect()
    }

    /// Keeps the messages `fresh` of objects of `api_version`, each at its object's
    /// revision.
    fn put(&self, api_version: &'static str, fresh: Vec<(&KeyValue, Bytes)>) {
        if fresh.is_empty() {
            return;
        }
        let mut guard = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = &mut *guard;
        let messages = kept.messages.entry(api_version).or_default();
        for (kv, message) in fresh {
            let added = cost(&kv.key, &message);
            if added > self.budget {
                continue;
            }
            let old = messages.insert(kv.key.clone(), (kv.mod_revision, message));
            kept.bytes += added;
            if let Some((_, old)) = old {
                kept.bytes -= cost(&kv.key, &old);
            }
        }
        // Over budget: entries go (in the maps' order) until a quarter is free.
        if kept.bytes > self.budget {
            let target = self.budget / 4 * 3;
            let bytes = &mut kept.bytes;
            for messages in kept.messages.values_mut() {
                messages.retain(|key, (_, message)| {
                    if *bytes <= target {
                        return true;
                    }
                    *bytes -= cost(key, message);
                    false
                });
            }
        }
    }

    /// The bytes kept now (messages, keys and the entries' overhead).
    pub fn bytes(&self) -> usize {
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
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
            .unwrap()
            .into(),
            mod_revision: rev,
            ..KeyValue::default()
        };
        let list = StoredList {
            api_version: "v1",
            item_kind: "ConfigMap",
            metadata: serde_json::json!({"resourceVersion": "9", "continue": "c"}),
            items: vec![stored("a", 5), stored("b", 9)],
            encoded: None,
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

    #[test]
    fn kept_messages_are_those_of_the_revision_listed_and_stay_within_the_budget() {
        let stored = |name: &str, rev: i64, value: &str| KeyValue {
            key: format!("/registry/configmaps/default/{name}").into_bytes(),
            value: serde_json::to_vec(&serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "default"},
                "data": {"k": value},
            }))
            .unwrap()
            .into(),
            mod_revision: rev,
            ..KeyValue::default()
        };
        let encoded = Arc::new(EncodedItems::new(1 << 20));
        let list = |items: Vec<KeyValue>, encoded: Option<Arc<EncodedItems>>| {
            let list = StoredList {
                api_version: "v1",
                item_kind: "ConfigMap",
                metadata: serde_json::json!({"resourceVersion": "20"}),
                items,
                encoded,
            };
            list.to_protobuf().unwrap().unwrap()
        };
        let items = vec![stored("a", 5, "x"), stored("b", 9, "y")];
        let plain = list(items.clone(), None);
        assert_eq!(list(items.clone(), Some(encoded.clone())), plain);
        assert!(encoded.bytes() > 0);
        // Kept: the same bytes again.
        assert_eq!(list(items, Some(encoded.clone())), plain);
        // `b` changed at revision 12: its new message, not the kept one.
        let changed = vec![stored("a", 5, "x"), stored("b", 12, "z")];
        let fresh = list(changed.clone(), None);
        assert_ne!(fresh, plain);
        assert_eq!(list(changed, Some(encoded.clone())), fresh);
        let decoded = protobuf::decode(&fresh).unwrap();
        assert_eq!(decoded.object["items"][1]["data"]["k"], "z");
        assert_eq!(
            decoded.object["items"][1]["metadata"]["resourceVersion"],
            "12"
        );

        // A budget for about three entries: never more than it is kept.
        let one = list(vec![stored("a", 5, "x")], None).len();
        let budget = 3 * (one + 40 + ENTRY_OVERHEAD);
        let small = Arc::new(EncodedItems::new(budget));
        for round in 0..5 {
            let many: Vec<KeyValue> = (0..10)
                .map(|i| stored(&format!("n{i}"), 100 + round, "v"))
                .collect();
            let bytes = list(many.clone(), Some(small.clone()));
            assert_eq!(bytes, list(many, None));
            assert!(small.bytes() <= budget, "{} > {budget}", small.bytes());
        }
    }
}

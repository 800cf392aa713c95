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
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use rk8s_api::ObjectKind;
use rk8s_api::protobuf;
use rk8s_api::stored::with_resource_version;
use rk8s_api::versions::Alias;
use rk8s_http::body::{Body, PIECE};
use rk8s_raftstore::proto::KeyValue;
use serde_json::Value;

use crate::cursor::Cursor;
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
        json_head(
            self.api_version,
            &self.list_kind(),
            &self.metadata,
            &mut out,
        )?;
        json_items(self.api_version, &self.items, true, None, &mut out)?;
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

/// How many keys a streamed list reads, encodes and sends at a time (kubectl's and
/// client-go's page).
pub const STREAM_PAGE: i64 = 500;

/// A JSON list without a `limit` that does not fit one page, sent as it is read, as
/// kube-apiserver (1.33, `StreamingCollectionEncodingToJSON`) encodes large lists:
/// the first page with the list's head, then each further page read at the first
/// one's revision once the one before has been handed to the connection. The server
/// holds a page at a time, not the whole list twice over (its values and their
/// JSON). A page that cannot be read (its revision compacted away mid-list, which
/// keeps a minute of history at least) ends the body short, and the client's decode
/// fails, as when kube-apiserver's encoding fails mid-stream.
pub struct StreamedList {
    api_version: &'static str,
    item_kind: &'static str,
    first: Vec<KeyValue>,
    cursor: Cursor,
    /// The version the items are served in, if not the stored one.
    served: Option<&'static Alias>,
}

impl std::fmt::Debug for StreamedList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamedList")
            .field("api_version", &self.api_version)
            .field("item_kind", &self.item_kind)
            .field("first", &self.first.len())
            .field("revision", &self.cursor.revision())
            .finish_non_exhaustive()
    }
}

impl StreamedList {
    /// The list of `kind` whose first page is `first`, read on by `cursor`.
    pub fn new(kind: &ObjectKind, first: Vec<KeyValue>, cursor: Cursor) -> Self {
        StreamedList {
            api_version: kind.api_version,
            item_kind: kind.kind,
            first,
            cursor,
            served: None,
        }
    }

    /// The same list, its items served in `alias`'s version.
    pub fn served_by(mut self, alias: &'static Alias) -> Self {
        self.api_version = alias.served.api_version;
        self.item_kind = alias.served.kind;
        self.served = Some(alias);
        self
    }

    /// The list's JSON body; `hold` (the request's place among those in flight) is
    /// kept until it ends. The first page is written here, so that an item that
    /// cannot be written there is still answered with an error.
    pub fn into_body<T: Send + Sync + 'static>(self, hold: T) -> ApiResult<Body> {
        let list_kind = format!("{}List", self.item_kind);
        let size: usize = self.first.iter().map(|kv| kv.value.len() + 40).sum();
        let mut head = Vec::with_capacity(size + 256);
        let metadata = serde_json::json!({"resourceVersion": self.cursor.revision().to_string()});
        json_head(self.api_version, &list_kind, &metadata, &mut head)?;
        json_items(self.api_version, &self.first, true, self.served, &mut head)?;
        let state = Streaming {
            api_version: self.api_version,
            served: self.served,
            list_kind,
            cursor: Some(self.cursor),
            unsent: Bytes::from(head),
            _hold: hold,
        };
        let frames = futures_util::stream::unfold(state, |mut state| async move {
            let frame = state.next_frame().await?;
            Some((Ok(Frame::data(frame)), state))
        });
        Ok(StreamBody::new(frames).boxed())
    }
}

/// A streamed list's state: what is left of the page being sent, and the cursor until
/// the last page has been read.
struct Streaming<T> {
    api_version: &'static str,
    served: Option<&'static Alias>,
    list_kind: String,
    cursor: Option<Cursor>,
    /// What is left of the last page's JSON, handed on [`PIECE`] bytes at a time.
    unsent: Bytes,
    _hold: T,
}

impl<T> Streaming<T> {
    /// The next frame of the body; `None` once it has all been sent, or when a page
    /// cannot be read or written (the body then ends short).
    async fn next_frame(&mut self) -> Option<Bytes> {
        if self.unsent.is_empty() {
            match self.next_page().await {
                Ok(page) => self.unsent = page?,
                Err(e) => {
                    let kind = &self.list_kind;
                    tracing::warn!("a streamed {kind} ends short: {}", e.message);
                    return None;
                }
            }
        }
        Some(self.unsent.split_to(self.unsent.len().min(PIECE)))
    }

    /// The JSON of the next page's items (with the list's end after the last page);
    /// `None` once the last page has been read.
    async fn next_page(&mut self) -> ApiResult<Option<Bytes>> {
        let Some(cursor) = &mut self.cursor else {
            return Ok(None);
        };
        let page = cursor.next_page(STREAM_PAGE).await?;
        let items: Vec<KeyValue> = page.items.into_iter().map(|item| item.kv).collect();
        let size: usize = items.iter().map(|kv| kv.value.len() + 40).sum();
        let mut out = Vec::with_capacity(size + 2);
        json_items(self.api_version, &items, false, self.served, &mut out)?;
        if page.next.is_none() {
            out.extend_from_slice(b"]}");
            self.cursor = None;
        }
        Ok(Some(Bytes::from(out)))
    }
}

/// A JSON list's head: `{"apiVersion":...,"kind":...,"metadata":...,"items":[`, in
/// kube-apiserver's order.
fn json_head(
    api_version: &str,
    list_kind: &str,
    metadata: &Value,
    out: &mut Vec<u8>,
) -> ApiResult<()> {
    let head = serde_json::json!({
        "kind": list_kind,
        "apiVersion": api_version,
    });
    let head = serde_json::to_vec(&head).map_err(internal)?;
    out.extend_from_slice(&head[..head.len().saturating_sub(1)]);
    out.extend_from_slice(b",\"metadata\":");
    serde_json::to_writer(&mut *out, metadata).map_err(internal)?;
    out.extend_from_slice(b",\"items\":[");
    Ok(())
}

/// `items` as the JSON of a list's items, each with its revision, comma-separated
/// (`first`: none before the first of them); converted to `served`'s version if
/// they are served in another.
fn json_items(
    api_version: &'static str,
    items: &[KeyValue],
    first: bool,
    served: Option<&Alias>,
    out: &mut Vec<u8>,
) -> ApiResult<()> {
    for (i, kv) in items.iter().enumerate() {
        if i > 0 || !first {
            out.push(b',');
        }
        let converted = served
            .map(|a| a.stored_bytes_to_served(&kv.value))
            .transpose()
            .map_err(|e| stored_error(kv, &e))?;
        let value = converted.as_deref().unwrap_or(&kv.value);
        with_resource_version(value, api_version, kv.mod_revision, out)
            .map_err(|e| stored_error(kv, &e))?;
    }
    Ok(())
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

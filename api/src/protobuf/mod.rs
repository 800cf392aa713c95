//! Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`) of the
//! built-in kinds, to and from the JSON values the rest of rk8s works with.
//!
//! kube-apiserver speaks protobuf to kubectl, client-go and the kubelet; rk8s holds
//! objects as JSON. This module converts between the two, driven by a schema of every
//! message of Kubernetes' `generated.proto` files (read from the `k8s-pb` crate by
//! `scripts/gen-protobuf-schema.py` into `k8s.schema`), so a kind with a schema needs
//! no code of its own.
//!
//! A body is the magic `k8s\0` and a `runtime.Unknown` envelope: `{1 typeMeta
//! {1 apiVersion, 2 kind}, 2 raw, 3 contentEncoding, 4 contentType}` whose `raw` is the
//! object's own message (`k8s.io/apimachinery/pkg/runtime/serializer/protobuf`). A
//! watch stream is a sequence of frames, each a 4-byte big-endian length and a bare
//! `meta.v1.WatchEvent` message (no magic, no envelope) whose object is an envelope.
//!
//! A stored object need not be parsed to be served: [`transcode_message`] and
//! [`transcode`] write the protobuf of JSON bytes as they read them, a few times
//! faster than parsing and encoding.
//!
//! JSON and protobuf differ where apimachinery's types marshal themselves:
//! `Time`/`MicroTime` are RFC 3339 strings, `Duration` a Go duration, `IntOrString` a
//! number or a string, `Quantity` a string, `RawExtension` and `FieldsV1` the embedded
//! JSON, `bytes` base64; 64-bit integers stay JSON numbers.
//!
//! ```
//! use rk8s_api::protobuf;
//! use serde_json::json;
//!
//! let ns = json!({"apiVersion": "v1", "kind": "Namespace",
//!                 "metadata": {"name": "web", "labels": {"team": "a"}}});
//! let bytes = protobuf::encode(&ns)?;
//! assert!(bytes.starts_with(b"k8s\0"));
//! let back = protobuf::decode(&bytes)?;
//! assert_eq!((back.api_version.as_str(), back.kind.as_str()), ("v1", "Namespace"));
//! assert_eq!(back.object, ns);
//! # Ok::<(), protobuf::Error>(())
//! ```

mod decode;
mod encode;
mod error;
mod schema;
mod special;
pub(crate) mod transcode;
mod wire;

#[cfg(test)]
mod tests;

use serde_json::Value;

pub use error::{Error, Result};

/// The media type of protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// The media type of protobuf watch streams.
pub const WATCH_MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf;stream=watch";
/// The four bytes every protobuf body starts with.
pub const MAGIC: &[u8] = b"k8s\0";
/// The deepest nesting of messages decoded or encoded (Pods nest about 12 deep;
/// protobuf's own default limit is 100).
pub const MAX_DEPTH: usize = 128;

/// An object read from a protobuf body.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The envelope's `apiVersion`.
    pub api_version: String,
    /// The envelope's `kind`.
    pub kind: String,
    /// The object as JSON, with `apiVersion` and `kind` set from the envelope.
    pub object: Value,
}

/// Whether objects of `kind` in `api_version` have a protobuf encoding (built-in
/// kinds, their lists and `meta.k8s.io/v1`'s `Status` and options do; custom
/// resources do not, and are served as JSON, as kube-apiserver serves them).
pub fn has_schema(api_version: &str, kind: &str) -> bool {
    schema::schema().message_for(api_version, kind).is_some()
}

fn message_for(api_version: &str, kind: &str) -> Result<usize> {
    schema::schema()
        .message_for(api_version, kind)
        .ok_or_else(|| Error::UnknownKind {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        })
}

fn type_meta(object: &Value) -> (&str, &str) {
    let get = |k: &str| object.get(k).and_then(Value::as_str).unwrap_or("");
    (get("apiVersion"), get("kind"))
}

/// Encodes `object` (with its `apiVersion` and `kind`) as a protobuf body: the magic
/// and the envelope.
pub fn encode(object: &Value) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(256);
    encode_into(object, &mut buf)?;
    Ok(buf)
}

/// As [`encode`], appending to `buf` (which is left as it was on an error).
pub fn encode_into(object: &Value, buf: &mut Vec<u8>) -> Result<()> {
    let (api_version, kind) = type_meta(object);
    let m = message_for(api_version, kind)?;
    let start = buf.len();
    let result = envelope(api_version, kind, buf, |buf| {
        encode::message(schema::schema(), m, object, buf, 0)
    });
    if result.is_err() {
        buf.truncate(start);
    }
    result
}

/// Writes the magic and an envelope whose `raw` is what `raw` writes.
fn envelope(
    api_version: &str,
    kind: &str,
    buf: &mut Vec<u8>,
    raw: impl FnOnce(&mut Vec<u8>) -> Result<()>,
) -> Result<()> {
    let mark = begin_envelope(api_version, kind, buf);
    raw(buf)?;
    end_envelope(buf, mark);
    Ok(())
}

/// Writes the magic and an envelope up to its `raw`, whose value is written next;
/// [`end_envelope`] with the returned mark closes it.
fn begin_envelope(api_version: &str, kind: &str, buf: &mut Vec<u8>) -> usize {
    buf.extend_from_slice(MAGIC);
    let mark = wire::begin_nested(buf, 1);
    wire::put_bytes(buf, 1, api_version.as_bytes());
    wire::put_bytes(buf, 2, kind.as_bytes());
    wire::end_nested(buf, mark);
    wire::begin_nested(buf, 2)
}

/// Ends an envelope started by [`begin_envelope`].
fn end_envelope(buf: &mut Vec<u8>, raw: usize) {
    wire::end_nested(buf, raw);
    // Go writes the two strings even when empty.
    wire::put_bytes(buf, 3, b"");
    wire::put_bytes(buf, 4, b"");
}

/// Encodes `object` as the bare message of `kind` in `api_version`, without the magic
/// and envelope (as it sits in an envelope's `raw`).
pub fn encode_message(api_version: &str, kind: &str, object: &Value) -> Result<Vec<u8>> {
    let m = message_for(api_version, kind)?;
    let mut buf = Vec::with_capacity(256);
    encode::message(schema::schema(), m, object, &mut buf, 0)?;
    Ok(buf)
}

/// Transcodes the JSON object in `json` straight to the bare message of `kind` in
/// `api_version`, appended to `buf` (which is left as it was on an error), without
/// building a [`Value`]: the fast way to answer a protobuf list from stored JSON.
/// The bytes and errors are [`encode_message`]'s on the object parsed from `json`.
/// Objects whose keys are in order (as serde_json writes them, and the server stores
/// them) are read once; others are parsed into a `Value` after all.
pub fn transcode_message(
    api_version: &str,
    kind: &str,
    json: &[u8],
    buf: &mut Vec<u8>,
) -> Result<()> {
    let m = message_for(api_version, kind)?;
    transcode::message(m, json, buf)
}

/// Transcodes the JSON object in `json` to a protobuf body (the magic and the
/// envelope), as [`encode`] writes the parsed object, reading `apiVersion` and `kind`
/// from the JSON. See [`transcode_message`].
pub fn transcode(json: &[u8]) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(json.len() + 64);
    transcode::body(json, &mut buf)?;
    Ok(buf)
}

/// The field numbers of `metadata` and `items` in the list message `list_kind` of
/// `api_version` (`PodList`: `(1, 2)`), for a server that writes a list itself: the
/// `ListMeta` under the first, each item's message (see [`transcode_message`]) under
/// the second. `None` if the kind has no schema or is not a list.
pub fn list_field_tags(api_version: &str, list_kind: &str) -> Option<(u32, u32)> {
    let schema = schema::schema();
    let list = &schema.messages[schema.message_for(api_version, list_kind)?];
    let metadata = list.field_by_json("metadata")?;
    let items = list
        .field_by_json("items")
        .filter(|f| f.cardinality == schema::Cardinality::Repeated)?;
    Some((metadata.tag, items.tag))
}

/// Decodes a protobuf body (magic and envelope).
pub fn decode(body: &[u8]) -> Result<Decoded> {
    let (api_version, kind, object) = decode_envelope_at(body, 0)?;
    Ok(Decoded {
        api_version,
        kind,
        object,
    })
}

/// Decodes the bare message of `kind` in `api_version` (no magic, no envelope).
pub fn decode_message(api_version: &str, kind: &str, bytes: &[u8]) -> Result<Value> {
    let m = message_for(api_version, kind)?;
    Ok(decode::message(schema::schema(), m, bytes, 0)?.unwrap_or(Value::Null))
}

/// Reads an envelope at nesting `depth` (an embedded object is one level deeper).
fn decode_envelope_at(body: &[u8], depth: usize) -> Result<(String, String, Value)> {
    let rest = body.strip_prefix(MAGIC).ok_or(Error::MissingMagic)?;
    let mut r = wire::Reader::new(rest);
    let (mut api_version, mut kind, mut raw, mut encoding) =
        (String::new(), String::new(), &[][..], String::new());
    let wrap = |e: Error, at: &str| e.within(at);
    while !r.is_empty() {
        match r.key()? {
            (1, wire::LEN) => {
                let mut t = wire::Reader::new(r.len_delimited()?);
                while !t.is_empty() {
                    match t.key().map_err(|e| wrap(e, "typeMeta"))? {
                        (1, wire::LEN) => {
                            api_version = special::utf8(t.len_delimited()?)
                                .map_err(|e| wrap(e, "typeMeta.apiVersion"))?
                        }
                        (2, wire::LEN) => {
                            kind = special::utf8(t.len_delimited()?)
                                .map_err(|e| wrap(e, "typeMeta.kind"))?
                        }
                        (_, wt) => t.skip(wt).map_err(|e| wrap(e, "typeMeta"))?,
                    }
                }
            }
            (2, wire::LEN) => raw = r.len_delimited()?,
            (3, wire::LEN) => {
                encoding =
                    special::utf8(r.len_delimited()?).map_err(|e| wrap(e, "contentEncoding"))?
            }
            (_, wt) => r.skip(wt)?,
        }
    }
    if !encoding.is_empty() {
        return Err(Error::invalid(format!(
            "unsupported content encoding {encoding:?}"
        )));
    }
    let m = message_for(&api_version, &kind)?;
    let mut object = decode::message(schema::schema(), m, raw, depth)?.unwrap_or(Value::Null);
    if let Value::Object(o) = &mut object {
        if !api_version.is_empty() {
            o.insert("apiVersion".into(), Value::String(api_version.clone()));
        }
        if !kind.is_empty() {
            o.insert("kind".into(), Value::String(kind.clone()));
        }
    }
    Ok((api_version, kind, object))
}

/// One frame of a protobuf watch stream: the 4-byte big-endian length, then a bare
/// `WatchEvent` message (no magic, no envelope: kube-apiserver's stream serializer is
/// apimachinery's raw one) of type `event_type` whose object is `object`, an encoded
/// body with its own magic and envelope (see [`encode`]).
pub fn watch_frame(event_type: &str, object: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(object.len() + 32);
    buf.extend_from_slice(&[0; 4]);
    wire::put_bytes(&mut buf, 1, event_type.as_bytes());
    let mark = wire::begin_nested(&mut buf, 2);
    wire::put_bytes(&mut buf, 1, object);
    wire::end_nested(&mut buf, mark);
    let len = u32::try_from(buf.len() - 4).unwrap_or(u32::MAX);
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf
}

/// Reads the first frame of a protobuf watch stream: the event's type and object, and
/// how many bytes the frame took; `None` if `stream` does not hold a whole frame yet.
pub fn read_watch_frame(stream: &[u8]) -> Result<Option<(String, Value, usize)>> {
    let Some(header) = stream.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let Some(frame) = stream.get(4..4 + len) else {
        return Ok(None);
    };
    // `WatchEvent` is meta.k8s.io/v1's, served in every group version.
    let event = decode_message("v1", "WatchEvent", frame)?;
    let ty = event
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let object = event.get("object").cloned().unwrap_or(Value::Null);
    Ok(Some((ty, object, 4 + len)))
}

/// A protobuf body (magic and envelope) of `kind` in `api_version` around `raw`, the
/// bare message already encoded (a list written item by item, say).
pub fn envelope_body(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(raw.len() + api_version.len() + kind.len() + 24);
    // Writing cannot fail: the closure returns Ok.
    let _ = envelope(api_version, kind, &mut buf, |buf| {
        buf.extend_from_slice(raw);
        Ok(())
    });
    buf
}

/// Appends the field numbered `tag` holding the encoded message `message` (an item of
/// a list, say) to `buf`.
pub fn put_message_field(buf: &mut Vec<u8>, tag: u32, message: &[u8]) {
    wire::put_bytes(buf, tag, message);
}

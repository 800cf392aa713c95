//! Stored objects: the store holds each object as the JSON the server sends but for
//! `metadata.resourceVersion`, which is the revision of the object's key. A read
//! writes the revision in ([`with_resource_version`]) instead of decoding the object
//! and encoding it again.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::protobuf::transcode::scan::{Scanner, Token};

/// The metadata of a stored object as [`StoredView`] reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StoredMeta {
    /// `metadata.name` (empty if absent).
    pub name: String,
    /// `metadata.namespace` (empty for cluster-scoped objects).
    pub namespace: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// Whether `metadata.deletionTimestamp` is set.
    pub deletion_timestamp: Option<IgnoredAny>,
}

/// A stored object read into a small view: its metadata, and what `Spec` and
/// `Status` take of its `spec` and `status` ([`IgnoredAny`] for none). The JSON
/// reader skips everything else, so whatever must look at many stored objects (a
/// scrape of `/metrics`, Prometheus' discovery, a watch with a label selector) reads
/// them without decoding them.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StoredView<Spec = IgnoredAny, Status = IgnoredAny> {
    /// The object's metadata.
    pub metadata: StoredMeta,
    /// What the view takes of the spec.
    pub spec: Option<Spec>,
    /// What the view takes of the status.
    pub status: Option<Status>,
}

impl<Spec: Default + for<'de> Deserialize<'de>, Status: Default + for<'de> Deserialize<'de>>
    StoredView<Spec, Status>
{
    /// Reads `stored` (a stored object's JSON).
    pub fn read(stored: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(stored)
    }
}

/// Appends the stored JSON object `stored` to `out` as it is read at `api_version`
/// and `revision`: `metadata.resourceVersion` set to `revision`, in key order (after
/// the last key of `metadata` that sorts before it, as a `serde_json::Map` would hold
/// it, so that an object stored with sorted keys stays sorted: the protobuf
/// transcoder's fast path relies on it), and an `apiVersion` before `metadata` that is
/// not `api_version` replaced by it (a custom kind read in a version other than the
/// one it is stored in, which is all a conversion of strategy `None` does).
///
/// Only what comes before the end of `metadata` is read (for a pod, its `apiVersion`,
/// `kind` and `metadata`; its `spec` and `status`, most of its bytes, are copied
/// unread): the store holds what the server itself wrote. An object without
/// `metadata` is read whole.
pub fn with_resource_version(
    stored: &[u8],
    api_version: &str,
    revision: i64,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let not_json = |_| "not a JSON object as the server writes them".to_string();
    let mut sc = Scanner::new(stored, 0);
    let open = sc.offset();
    if !matches!(sc.token().map_err(not_json)?, Token::Object) {
        return Err("not a JSON object".to_string());
    }
    let rv = format!("\"resourceVersion\":\"{revision}\"");
    // The bytes of `stored` to put in place of `apiVersion`'s value, and where.
    let mut version: Option<(usize, usize, String)> = None;
    let mut first = true;
    while let Some(key) = sc.next_key(&mut first).map_err(not_json)? {
        match key.bytes() {
            b"metadata" => {}
            b"apiVersion" => {
                let start = sc.offset();
                let value = sc.token().map_err(not_json)?;
                match value {
                    Token::Str(s) if s.as_str() == api_version => {}
                    value => {
                        sc.skip_rest(value).map_err(not_json)?;
                        let quoted = serde_json::to_string(api_version).unwrap_or_default();
                        version = Some((start, sc.position(), quoted));
                    }
                }
                continue;
            }
            _ => {
                sc.skip().map_err(not_json)?;
                continue;
            }
        }
        let meta_open = sc.offset();
        if !matches!(sc.token().map_err(not_json)?, Token::Object) {
            return Err("metadata is not an object".to_string());
        }
        // Where the revision goes: after the value of the last key that sorts before
        // it, or first.
        let mut after = None;
        let mut first = true;
        while let Some(key) = sc.next_key(&mut first).map_err(not_json)? {
            sc.skip().map_err(not_json)?;
            match key.bytes().cmp(b"resourceVersion".as_slice()) {
                Ordering::Less => after = Some(sc.position()),
                Ordering::Equal => return Err("a stored object has a resourceVersion".into()),
                Ordering::Greater => {}
            }
        }
        let revision = match after {
            Some(at) => (at, format!(",{rv}")),
            None if first => (meta_open + 1, rv),
            None => (meta_open + 1, format!("{rv},")),
        };
        splice(stored, version, revision, out);
        return Ok(());
    }
    sc.end().map_err(not_json)?;
    // No metadata (not an object the server stored): one with just the revision,
    // first (it sorts before most keys).
    let comma = if first { "" } else { "," };
    let revision = (open + 1, format!("\"metadata\":{{{rv}}}{comma}"));
    splice(stored, version, revision, out);
    Ok(())
}

/// Appends `stored` to `out` with the revision's text put in at its offset and, where
/// `replace` says so, the bytes `start..end` replaced by its text.
fn splice(
    stored: &[u8],
    replace: Option<(usize, usize, String)>,
    (at, text): (usize, String),
    out: &mut Vec<u8>,
) {
    out.reserve(stored.len() + text.len() + 16);
    let mut edits = [Some((at, at, text)), replace];
    edits.sort_by_key(|e| e.as_ref().map(|(start, _, _)| *start));
    let mut from = 0;
    for (start, end, text) in edits.into_iter().flatten() {
        out.extend_from_slice(&stored[from..start]);
        out.extend_from_slice(text.as_bytes());
        from = end;
    }
    out.extend_from_slice(&stored[from..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn with_rv(stored: &str, rv: i64) -> Result<Value, String> {
        let mut out = Vec::new();
        with_resource_version(stored.as_bytes(), "v1", rv, &mut out)?;
        serde_json::from_slice(&out).map_err(|e| e.to_string())
    }

    fn spliced(stored: &[u8], rv: i64) -> String {
        let mut out = Vec::new();
        with_resource_version(stored, "v1", rv, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_revision_goes_into_metadata_in_key_order() {
        let v = with_rv(
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","labels":{"metadata":"x"}},"data":{"k":"v"}}"#,
            42,
        )
        .unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], "42");
        assert_eq!(v["metadata"]["name"], "a");
        assert_eq!(v["metadata"]["labels"]["metadata"], "x");
        assert_eq!(v["data"]["k"], "v");
        assert_eq!(
            spliced(
                br#"{"metadata":{"annotations":{"z":"1"},"namespace":"d","uid":"u"}}"#,
                8
            ),
            r#"{"metadata":{"annotations":{"z":"1"},"namespace":"d","resourceVersion":"8","uid":"u"}}"#
        );
        assert_eq!(
            spliced(br#"{"metadata":{"uid":"u"}}"#, 8),
            r#"{"metadata":{"resourceVersion":"8","uid":"u"}}"#
        );
        // A stored object (keys sorted, as serde_json writes a `Value`) stays as
        // serde_json would write it with the revision.
        let stored = serde_json::to_vec(&json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "d", "labels": {"a": "b"},
                         "annotations": {"q": "say \"hi\"\n", "é": "ü"},
                         "creationTimestamp": "2026-12-03T10:00:00Z", "uid": "u",
                         "generation": 3,
                         "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"containers": [{"name": "c", "image": "i"}], "priority": -1.5},
        }))
        .unwrap();
        let out = spliced(&stored, 12);
        let value: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(out, serde_json::to_string(&value).unwrap());
        assert_eq!(value["metadata"]["resourceVersion"], "12");
    }

    #[test]
    fn whitespace_an_empty_metadata_and_none_at_all() {
        let v = with_rv(r#" { "kind" : "X", "metadata" : { } } "#, 7).unwrap();
        assert_eq!(v["metadata"], json!({"resourceVersion": "7"}));
        let v = with_rv(r#"{"kind":"X" , "metadata":{ "name" : "n" } }"#, 7).unwrap();
        assert_eq!(v["metadata"], json!({"name": "n", "resourceVersion": "7"}));
        let v = with_rv(r#"{"kind":"X"}"#, 7).unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], "7");
        assert_eq!(v["kind"], "X");
        let v = with_rv("{}", 7).unwrap();
        assert_eq!(v, json!({"metadata": {"resourceVersion": "7"}}));
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
        // An escaped key is the key it spells.
        let v = with_rv(r#"{"meta\u0064ata":{"name":"n"}}"#, 4).unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], "4");
    }

    #[test]
    fn an_object_read_in_another_version_says_that_version() {
        let mut out = Vec::new();
        let stored = br#"{"apiVersion":"example.com/v2","kind":"W","metadata":{"name":"w"},"spec":{"apiVersion":"x"}}"#;
        with_resource_version(stored, "example.com/v1", 5, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"apiVersion":"example.com/v1","kind":"W","metadata":{"name":"w","resourceVersion":"5"},"spec":{"apiVersion":"x"}}"#
        );
        // Also where the revision goes before it (an object without metadata).
        let mut out = Vec::new();
        with_resource_version(br#"{"apiVersion":"a/v2","kind":"W"}"#, "a/v1", 5, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"metadata":{"resourceVersion":"5"},"apiVersion":"a/v1","kind":"W"}"#
        );
    }

    #[test]
    fn what_is_not_a_stored_object_is_an_error() {
        for bad in [
            "",
            "[]",
            "{",
            r#"{"metadata":[]}"#,
            r#"{"metadata":{"resourceVersion":"1"}}"#,
            r#"{"metadata":{"name":"n""#,
            r#"{"kind":"X"} trailing"#,
            "\u{0}",
        ] {
            assert!(with_rv(bad, 1).is_err(), "{bad:?}");
        }
    }
}

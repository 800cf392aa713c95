//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), and Kubernetes'
//! strategic merge patch, which merges lists of named things (containers, ports, env,
//! volumes, ...) by key instead of replacing them, for the fields `kubectl apply` and
//! `kubectl edit` send.
//!
//! Every patch is bounded as kube-apiserver bounds it, so that a small body cannot make
//! a large object: at most [`MAX_JSON_PATCH_OPERATIONS`] operations in a JSON patch, at
//! most [`MAX_COPY_BYTES`] added by its `copy` operations, and for every patch type a
//! result no larger than the request size limit ([`MAX_OBJECT_BYTES`]). Strategic merge
//! runs in time linear in the object and the patch.
//!
//! ```
//! use rk8s_api::patch::{self, Limits, PatchType};
//! use serde_json::json;
//!
//! let mut deployment = json!({"spec": {"replicas": 1}});
//! let kind = PatchType::from_content_type("application/merge-patch+json")?;
//! patch::apply(kind, &mut deployment, br#"{"spec": {"replicas": 3}}"#, &Limits::default())?;
//! assert_eq!(deployment, json!({"spec": {"replicas": 3}}));
//! # Ok::<(), rk8s_api::patch::PatchError>(())
//! ```

use std::fmt::Write as _;

use json_patch::PatchOperation;
use serde_json::Value;

mod strategic;

use strategic::strategic_merge;

/// The patch media types, as `Content-Type` names them.
pub const PATCH_TYPES: &[&str] = &[
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
];

/// The most operations a JSON patch may hold (kube-apiserver's `maxJSONPatchOperations`,
/// `staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go`).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The most bytes the `copy` operations of one JSON patch may add (kube-apiserver's
/// `JSONPatchMaxCopyBytes`, set as json-patch's `AccumulatedCopySizeLimit` in
/// `staging/src/k8s.io/apiserver/pkg/server/config.go`: 3 MiB).
pub const MAX_COPY_BYTES: usize = 3 * 1024 * 1024;

/// The largest patched object, serialized as compact JSON: the request size limit
/// (kube-apiserver's `MaxRequestBodyBytes`, 3 MiB), since a patch may not make an object
/// that could not have been sent whole.
pub const MAX_OBJECT_BYTES: usize = 3 * 1024 * 1024;

/// The deepest a patched object may nest objects and arrays: what `serde_json` parses
/// (its recursion limit), so whatever a patch makes can be stored and read back, and
/// code that walks a value recursively (serializing, dropping) keeps a small stack.
pub const MAX_DEPTH: usize = 128;

/// How far over [`Limits::max_depth`] the depth bound kept during a JSON patch may go
/// before the patch is refused (the exact depth of the result is checked after).
const RUNNING_DEPTH_FACTOR: usize = 4;

/// The bounds a patch is applied under; [`Limits::default`] holds kube-apiserver's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most operations in a JSON patch.
    pub max_operations: usize,
    /// The most bytes the `copy` operations of a JSON patch may add, together.
    pub max_copy_bytes: usize,
    /// The largest patched object, in bytes of compact JSON.
    pub max_object_bytes: usize,
    /// The deepest nesting of objects and arrays in a patched object.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: MAX_JSON_PATCH_OPERATIONS,
            max_copy_bytes: MAX_COPY_BYTES,
            max_object_bytes: MAX_OBJECT_BYTES,
            max_depth: MAX_DEPTH,
        }
    }
}

/// Why a patch was refused. Each variant says which HTTP status kube-apiserver answers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// 415: not one of [`PATCH_TYPES`].
    #[error("unsupported patch type {content_type:?}")]
    UnsupportedMediaType {
        /// The media type asked for, parameters left out.
        content_type: String,
    },
    /// 400: the body is not a patch of its type.
    #[error("{0}")]
    BadRequest(String),
    /// 422: a well-formed patch that does not apply to this object.
    #[error("{0}")]
    Invalid(String),
    /// 422: the `copy` operations of a JSON patch add more than the limit. The wording is
    /// json-patch's (`AccumulatedCopySizeError`); counting stops once past the limit.
    #[error(
        "Unable to complete the copy, the accumulated size increase of copy is at least {accumulated}, exceeding the limit {limit}"
    )]
    CopyLimitExceeded {
        /// Bytes counted so far, the copy that crossed the limit included.
        accumulated: usize,
        /// [`Limits::max_copy_bytes`].
        limit: usize,
    },
    /// 422: the patched object would nest objects and arrays too deep.
    #[error("the patched object would nest objects and arrays more than {limit} levels deep")]
    TooDeep {
        /// [`Limits::max_depth`].
        limit: usize,
    },
    /// 413: a JSON patch with too many operations (kube-apiserver's wording).
    #[error("The allowed maximum operations in a JSON patch is {limit}, got {got}")]
    TooManyOperations {
        /// [`Limits::max_operations`].
        limit: usize,
        /// Operations in the patch.
        got: usize,
    },
    /// 413: the patched object is larger than the request size limit.
    #[error("the patched object is larger than the limit of {limit} bytes")]
    TooLarge {
        /// [`Limits::max_object_bytes`].
        limit: usize,
    },
    /// 500 with no reason, as kube-apiserver answers: a strategic merge `$patch`
    /// directive it does not know, or a list `$patch: merge` (its wording, from
    /// `strategicpatch` and `mergepatch.ErrBadPatchType`, passed through untyped).
    #[error("{0}")]
    BadDirective(String),
}

/// `Result` with a [`PatchError`].
pub type Result<T, E = PatchError> = std::result::Result<T, E>;

/// The three patch formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PatchType {
    /// `application/merge-patch+json`: RFC 7386.
    Merge,
    /// `application/json-patch+json`: RFC 6902.
    Json,
    /// `application/strategic-merge-patch+json`: Kubernetes' strategic merge patch.
    StrategicMerge,
}

impl PatchType {
    /// The patch type of a `Content-Type` value (`; charset=...` and case ignored).
    pub fn from_content_type(content_type: &str) -> Result<Self> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/strategic-merge-patch+json" => Ok(PatchType::StrategicMerge),
            _ => Err(PatchError::UnsupportedMediaType {
                content_type: media,
            }),
        }
    }

    /// The media type that names this patch type.
    pub fn media_type(self) -> &'static str {
        match self {
            PatchType::Merge => PATCH_TYPES[0],
            PatchType::Json => PATCH_TYPES[1],
            PatchType::StrategicMerge => PATCH_TYPES[2],
        }
    }
}

/// Applies the patch `body` of type `kind` to `target`, within `limits`.
///
/// On error `target` may be left partly patched: callers patch a copy and drop it.
pub fn apply(kind: PatchType, target: &mut Value, body: &[u8], limits: &Limits) -> Result<()> {
    match kind {
        PatchType::Merge => {
            let patch = parse(body)?;
            if !patch.is_object() {
                return Err(PatchError::BadRequest(
                    "a merge patch must be a JSON object".into(),
                ));
            }
            json_patch::merge(target, &patch);
        }
        PatchType::Json => apply_json_patch(target, body, limits)?,
        PatchType::StrategicMerge => match parse(body)? {
            Value::Object(p) => strategic_merge(target, &p, "")?,
            _ => {
                return Err(PatchError::BadRequest(
                    "a strategic merge patch must be a JSON object".into(),
                ));
            }
        },
    }
    // Merge and strategic merge patches only move bytes from the body into the object,
    // and JSON patches are bounded above, so the result is at most a few limits large
    // here; refuse it before anything serializes or stores it.
    let result = measure(target, limits.max_object_bytes);
    if result.bytes > limits.max_object_bytes {
        return Err(PatchError::TooLarge {
            limit: limits.max_object_bytes,
        });
    }
    if result.depth > limits.max_depth {
        return Err(PatchError::TooDeep {
            limit: limits.max_depth,
        });
    }
    Ok(())
}

fn parse(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body)
        .map_err(|e| PatchError::BadRequest(format!("the patch is not valid JSON: {e}")))
}

/// Applies a JSON patch one operation at a time, accounting before each for what it
/// adds, so that neither size nor nesting can run away (the `copy` bomb: each copy of a
/// growing value doubles the object).
fn apply_json_patch(target: &mut Value, body: &[u8], limits: &Limits) -> Result<()> {
    let patch: json_patch::Patch = serde_json::from_slice(body)
        .map_err(|e| PatchError::BadRequest(format!("invalid JSON patch: {e}")))?;
    if patch.len() > limits.max_operations {
        return Err(PatchError::TooManyOperations {
            limit: limits.max_operations,
            got: patch.len(),
        });
    }
    let mut copied = 0usize;
    // An upper bound on the document's nesting depth, kept without walking the whole
    // document after each operation. Moves can make it overestimate, so while the
    // operations run it may reach `RUNNING_DEPTH_FACTOR` times the limit, which still
    // keeps recursive drops and clones well inside a 2 MiB stack; the result is then
    // measured exactly.
    let running_limit = limits.max_depth.saturating_mul(RUNNING_DEPTH_FACTOR);
    let mut depth = measure(target, usize::MAX).depth;
    for (i, op) in patch.iter().enumerate() {
        let placed = match op {
            PatchOperation::Add(o) => Some(o.path.count() + measure(&o.value, usize::MAX).depth),
            PatchOperation::Replace(o) => {
                Some(o.path.count() + measure(&o.value, usize::MAX).depth)
            }
            PatchOperation::Copy(o) => match target.pointer(o.from.as_str()) {
                Some(source) => {
                    let m = measure(source, limits.max_copy_bytes - copied);
                    copied = copied.saturating_add(m.bytes);
                    if copied > limits.max_copy_bytes {
                        return Err(PatchError::CopyLimitExceeded {
                            accumulated: copied,
                            limit: limits.max_copy_bytes,
                        });
                    }
                    Some(o.path.count() + m.depth)
                }
                // json-patch reports the missing source below.
                None => None,
            },
            // What moves nests at most as deep below `from` as the document does.
            PatchOperation::Move(o) => Some(o.path.count() + depth.saturating_sub(o.from.count())),
            PatchOperation::Remove(_) | PatchOperation::Test(_) => None,
        };
        if let Some(d) = placed {
            depth = depth.max(d);
            if depth > running_limit {
                return Err(PatchError::TooDeep {
                    limit: limits.max_depth,
                });
            }
        }
        json_patch::patch_unsafe(target, std::slice::from_ref(op)).map_err(|e| {
            PatchError::Invalid(format!(
                "the JSON patch does not apply: operation '/{i}' failed at path '{}': {}",
                e.path, e.kind
            ))
        })?;
    }
    Ok(())
}

/// The size of a value's compact JSON and how deep it nests, found by walking it (no
/// recursion, no allocation of the text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Measure {
    /// Bytes of compact JSON; once past the budget, a partial count above it.
    bytes: usize,
    /// Nesting of objects and arrays (a scalar is 0, `{}` is 1); only complete when
    /// `bytes` is within the budget.
    depth: usize,
}

fn measure(value: &Value, budget: usize) -> Measure {
    let mut bytes = 0usize;
    let mut depth = 0usize;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, level)) = stack.pop() {
        bytes = bytes.saturating_add(match v {
            Value::Null | Value::Bool(true) => 4,
            Value::Bool(false) => 5,
            Value::Number(n) => {
                let mut counter = Counter(0);
                // Writing to a counter cannot fail.
                let _ = write!(counter, "{n}");
                counter.0
            }
            Value::String(s) => string_len(s),
            Value::Array(items) => {
                depth = depth.max(level + 1);
                stack.extend(items.iter().map(|item| (item, level + 1)));
                2 + items.len().saturating_sub(1)
            }
            Value::Object(fields) => {
                depth = depth.max(level + 1);
                let mut n = 2 + fields.len().saturating_sub(1);
                for (key, item) in fields {
                    n += string_len(key) + 1;
                    stack.push((item, level + 1));
                }
                n
            }
        });
        if bytes > budget {
            break;
        }
    }
    Measure { bytes, depth }
}

/// Bytes of a string as `serde_json` writes it: quoted, with `"`, `\` and control
/// characters escaped.
fn string_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\x08' | b'\x0c' | b'\n' | b'\r' | b'\t' => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// Counts what is written to it.
struct Counter(usize);

impl std::fmt::Write for Counter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(kind: PatchType, target: &mut Value, body: &[u8]) -> Result<()> {
        apply(kind, target, body, &Limits::default())
    }

    fn smp(target: Value, patch: Value) -> Value {
        let mut t = target;
        run(
            PatchType::StrategicMerge,
            &mut t,
            patch.to_string().as_bytes(),
        )
        .unwrap();
        t
    }

    /// The body of the copy bomb: one annotation of 1000 bytes, then `copies` copies of
    /// the growing annotations map into itself.
    fn copy_bomb(copies: usize) -> Vec<u8> {
        let mut ops = vec![json!({"op": "add", "path": "/metadata/annotations",
                                  "value": {"a": "x".repeat(1000)}})];
        for n in 0..copies {
            ops.push(json!({"op": "copy", "from": "/metadata/annotations",
                            "path": format!("/metadata/annotations/c{n}")}));
        }
        Value::Array(ops).to_string().into_bytes()
    }

    #[test]
    fn containers_merge_by_name() {
        let target = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "c"}],
        "containers": [
            {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
            {"name": "b", "$patch": "delete"},
            {"name": "c", "image": "c:1"}
        ]}}}});
        let out = smp(target, patch);
        // Y, new and not ordered by a directive, goes first (kube's mergeSlice).
        assert_eq!(
            out,
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}]},
                {"name": "c", "image": "c:1"}
            ]}}}})
        );
    }

    /// The patches `kubectl apply` sends when a list's order matters, and what
    /// kube-apiserver makes of them (`k8s.io/apimachinery`'s strategicpatch).
    #[test]
    fn lists_take_the_order_set_element_order_gives() {
        let env = |names: &[&str]| {
            json!({"spec": {"containers": [{"name": "c", "env": names.iter()
                .map(|n| json!({"name": n, "value": n.to_lowercase()})).collect::<Vec<_>>()}]}})
        };
        let names = |v: &Value| -> Vec<String> {
            v["spec"]["containers"][0]["env"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_string())
                .collect()
        };
        // B inserted between A and C (C's `$(B)` sees only the variables before it).
        let patch = json!({"spec": {"containers": [{"name": "c",
            "$setElementOrder/env": [{"name": "A"}, {"name": "B"}, {"name": "C"}],
            "env": [{"name": "B", "value": "b"}]}],
            "$setElementOrder/containers": [{"name": "c"}]}});
        assert_eq!(names(&smp(env(&["A", "C"]), patch)), ["A", "B", "C"]);
        // The order alone changed.
        let patch = json!({"spec": {"containers": [{"name": "c",
            "$setElementOrder/env": [{"name": "B"}, {"name": "A"}]}],
            "$setElementOrder/containers": [{"name": "c"}]}});
        assert_eq!(names(&smp(env(&["A", "B"]), patch)), ["B", "A"]);
        // A sidecar put before the main container.
        let live = json!({"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "side"}, {"name": "nginx"}],
            "containers": [{"name": "side", "image": "busybox"}]}});
        assert_eq!(
            smp(live, patch)["spec"]["containers"],
            json!([{"name": "side", "image": "busybox"}, {"name": "nginx", "image": "nginx"}])
        );
        // What only the object has stays where it was among the others.
        let live = json!({"spec": {"containers": [{"name": "a"}, {"name": "x"}, {"name": "b"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
            "containers": [{"name": "c"}]}});
        assert_eq!(
            smp(live, patch)["spec"]["containers"],
            json!([{"name": "a"}, {"name": "x"}, {"name": "b"}, {"name": "c"}])
        );
        // A set of scalars.
        let live = json!({"metadata": {"finalizers": ["x", "y"]}});
        let patch = json!({"metadata": {"$setElementOrder/finalizers": ["y", "x"]}});
        assert_eq!(
            smp(live, patch)["metadata"]["finalizers"],
            json!(["y", "x"])
        );
        // Without the directive, the patch's elements take the patch's order.
        let live = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}});
        let patch = json!({"spec": {"containers": [{"name": "c"}, {"name": "a"}]}});
        assert_eq!(
            smp(live, patch)["spec"]["containers"],
            json!([{"name": "b"}, {"name": "c"}, {"name": "a"}])
        );
        // A patch list the directive does not order is refused, in kube's words.
        let mut live = json!({"spec": {"containers": [{"name": "a"}]}});
        let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"name": "c"}]}});
        let err = run(
            PatchType::StrategicMerge,
            &mut live,
            patch.to_string().as_bytes(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "The order in patch list:\n[map[name:c]]\n doesn't match $setElementOrder list:\n[map[name:a]]\n"
        );
    }

    #[test]
    fn directives_retain_delete_and_replace() {
        let target = json!({
            "metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]},
            "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                     "ports": [{"port": 80, "name": "http"}], "args": ["a", "b"]}
        });
        let patch = json!({
            "metadata": {"labels": {"b": null, "c": "3"}, "$deleteFromPrimitiveList/finalizers": ["x"]},
            "spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"},
                     "ports": [{"port": 80, "name": "web"}, {"port": 443}], "args": ["c"]}
        });
        let out = smp(target, patch);
        assert_eq!(out["metadata"]["labels"], json!({"a": "1", "c": "3"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["y"]));
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 80, "name": "web"}, {"port": 443}])
        );
        // Lists without a merge key are replaced.
        assert_eq!(out["spec"]["args"], json!(["c"]));
        let replaced = smp(
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "z"}]}}),
        );
        assert_eq!(replaced, json!({"spec": {"containers": [{"name": "z"}]}}));
    }

    #[test]
    fn merge_and_json_patches() {
        let mut t = json!({"spec": {"replicas": 1, "paused": true}});
        run(
            PatchType::Merge,
            &mut t,
            br#"{"spec": {"replicas": 3, "paused": null}}"#,
        )
        .unwrap();
        assert_eq!(t, json!({"spec": {"replicas": 3}}));
        run(
            PatchType::Json,
            &mut t,
            br#"[{"op": "replace", "path": "/spec/replicas", "value": 5}]"#,
        )
        .unwrap();
        assert_eq!(t, json!({"spec": {"replicas": 5}}));
        let e = run(
            PatchType::Json,
            &mut t,
            br#"[{"op": "test", "path": "/spec/replicas", "value": 1}]"#,
        )
        .unwrap_err();
        assert!(matches!(e, PatchError::Invalid(_)), "{e:?}");
        let e = PatchType::from_content_type("application/apply-patch+yaml").unwrap_err();
        assert_eq!(
            e,
            PatchError::UnsupportedMediaType {
                content_type: "application/apply-patch+yaml".into()
            }
        );
        let e = run(PatchType::Merge, &mut t, b"[1]").unwrap_err();
        assert!(matches!(e, PatchError::BadRequest(_)), "{e:?}");
        let e = run(
            PatchType::StrategicMerge,
            &mut t,
            b"{\"spec\": {\"containers\": [1]}}",
        )
        .unwrap_err();
        assert!(matches!(e, PatchError::BadRequest(_)), "{e:?}");
    }

    #[test]
    fn content_types_name_patch_types_with_parameters_and_any_case() {
        for kind in [PatchType::Merge, PatchType::Json, PatchType::StrategicMerge] {
            let ct = format!("{}; charset=utf-8", kind.media_type().to_uppercase());
            assert_eq!(PatchType::from_content_type(&ct), Ok(kind));
        }
    }

    #[test]
    fn copy_bomb_is_refused_at_the_accumulated_copy_limit() {
        let mut t = json!({"metadata": {"name": "web"}});
        let started = std::time::Instant::now();
        let e = run(PatchType::Json, &mut t, &copy_bomb(30)).unwrap_err();
        let PatchError::CopyLimitExceeded { accumulated, limit } = e else {
            panic!("expected the copy limit, got {e:?}");
        };
        assert_eq!(limit, MAX_COPY_BYTES);
        assert!(accumulated > MAX_COPY_BYTES);
        // The refusal comes before the object grows past a few times the limit.
        assert!(measure(&t, usize::MAX).bytes < 3 * MAX_COPY_BYTES);
        // Loose enough for a debug build on a busy machine; the bomb took minutes.
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        // A few copies stay well within the limit and apply.
        let mut t = json!({"metadata": {"name": "web"}});
        run(PatchType::Json, &mut t, &copy_bomb(3)).unwrap();
        assert_eq!(
            t["metadata"]["annotations"]["c2"]["c1"]["c0"]["a"]
                .as_str()
                .map(str::len),
            Some(1000)
        );
    }

    #[test]
    fn json_patch_with_more_than_ten_thousand_operations_is_too_large() {
        let op = json!({"op": "test", "path": "/metadata/name", "value": "web"});
        let body = |n: usize| Value::Array(vec![op.clone(); n]).to_string().into_bytes();
        let mut t = json!({"metadata": {"name": "web"}});
        run(PatchType::Json, &mut t, &body(MAX_JSON_PATCH_OPERATIONS)).unwrap();
        let e = run(
            PatchType::Json,
            &mut t,
            &body(MAX_JSON_PATCH_OPERATIONS + 1),
        )
        .unwrap_err();
        assert_eq!(
            e,
            PatchError::TooManyOperations {
                limit: 10_000,
                got: 10_001
            }
        );
        assert_eq!(
            e.to_string(),
            "The allowed maximum operations in a JSON patch is 10000, got 10001"
        );
    }

    #[test]
    fn results_over_the_size_limit_are_too_large_for_every_patch_type() {
        let limits = Limits {
            max_object_bytes: 1000,
            ..Limits::default()
        };
        let big = "x".repeat(1000);
        let bodies = [
            (
                PatchType::Merge,
                json!({"metadata": {"annotations": {"a": big}}}),
            ),
            (
                PatchType::Json,
                json!([{"op": "add", "path": "/metadata/annotations", "value": {"a": big}}]),
            ),
            (
                PatchType::StrategicMerge,
                json!({"metadata": {"annotations": {"a": big}}}),
            ),
        ];
        for (kind, body) in bodies {
            let mut t = json!({"metadata": {"name": "web"}});
            let e = apply(kind, &mut t, body.to_string().as_bytes(), &limits).unwrap_err();
            assert_eq!(e, PatchError::TooLarge { limit: 1000 }, "{kind:?}");
            // The same patch fits under the default limit.
            let mut t = json!({"metadata": {"name": "web"}});
            run(kind, &mut t, body.to_string().as_bytes()).unwrap();
        }
    }

    #[test]
    fn unknown_patch_directives_are_errors_in_maps_and_lists() {
        let mut t = json!({"metadata": {"name": "web", "labels": {"a": "1"}}});
        let e = run(
            PatchType::StrategicMerge,
            &mut t,
            br#"{"metadata": {"$patch": "explode"}}"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            PatchError::BadDirective(
                "unknown patch type: explode in map: map[$patch:explode]".into()
            )
        );
        let e = run(
            PatchType::StrategicMerge,
            &mut t,
            br#"{"metadata": {"labels": {"$patch": "explode", "b": "2"}}}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown patch type: explode in map: map[$patch:explode b:2]"
        );
        let mut t = json!({"spec": {"containers": [{"name": "a"}]}});
        let e = run(
            PatchType::StrategicMerge,
            &mut t,
            br#"{"spec": {"containers": [{"name": "a", "$patch": "explode"}]}}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown patch type: explode in map: map[$patch:explode name:a]"
        );
        let e = run(
            PatchType::StrategicMerge,
            &mut t,
            br#"{"spec": {"containers": [{"name": "a", "$patch": "merge"}]}}"#,
        )
        .unwrap_err();
        assert!(matches!(e, PatchError::BadDirective(_)), "{e:?}");
    }

    #[test]
    fn list_delete_directive_removes_every_element_with_the_key() {
        let out = smp(
            json!({"spec": {"containers": [{"name": "a", "n": 1}, {"name": "b"}, {"name": "a", "n": 2}]}}),
            json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}, {"name": "c"}]}}),
        );
        // A new element goes before those only the object has, as kube orders it.
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "c"}, {"name": "b"}]}})
        );
    }

    #[test]
    fn strategic_merge_of_large_lists_merges_every_element() {
        const N: usize = 50_000;
        let containers = |image: &str| -> Value {
            (0..N)
                .map(|i| json!({"name": format!("c{i}"), "image": image}))
                .collect()
        };
        let strings = |prefix: &str, range: std::ops::Range<usize>| -> Value {
            range.map(|i| format!("{prefix}{i}")).collect()
        };
        let target = json!({"spec": {"template": {"spec": {
            "containers": containers("old"),
            "finalizers": strings("f", 0..N),
            "args": strings("a", 0..N),
        }}}});
        // Patch the elements in reverse order, so that a linear scan would be quadratic.
        let mut items = containers("new");
        if let Value::Array(list) = &mut items {
            list.reverse();
            list.push(json!({"name": "extra", "image": "new"}));
        }
        let patch = json!({"spec": {"template": {"spec": {
            "containers": items,
            "finalizers": strings("f", N / 2..N + N / 2),
            "$deleteFromPrimitiveList/args": strings("a", 1..N),
        }}}});
        let out = smp(target, patch);
        let spec = &out["spec"]["template"]["spec"];
        let list = spec["containers"].as_array().unwrap();
        assert_eq!(list.len(), N + 1);
        // In the patch's order, as kube's mergeSlice orders them.
        assert_eq!(
            list[0],
            json!({"name": format!("c{}", N - 1), "image": "new"})
        );
        assert_eq!(list[N - 1], json!({"name": "c0", "image": "new"}));
        assert_eq!(list[N], json!({"name": "extra", "image": "new"}));
        assert!(list.iter().all(|c| c["image"] == "new"));
        assert_eq!(spec["finalizers"], strings("f", 0..N + N / 2));
        assert_eq!(spec["args"], json!(["a0"]));
    }

    #[test]
    fn nesting_by_moves_is_refused_past_the_depth_limit() {
        // Each round nests the document inside a fresh chain: without a bound, a few
        // thousand rounds make a value too deep to drop on a thread's stack.
        let chain = (0..100).fold(json!({}), |inner, _| json!({"c": inner}));
        let deep_path = format!("/a{}", "/c".repeat(100));
        let mut ops = vec![json!({"op": "add", "path": "/b", "value": {}})];
        for _ in 0..50 {
            ops.push(json!({"op": "add", "path": "/a", "value": chain}));
            ops.push(json!({"op": "move", "from": "/b", "path": deep_path}));
            ops.push(json!({"op": "move", "from": "/a", "path": "/b"}));
        }
        let mut t = json!({});
        let e = run(
            PatchType::Json,
            &mut t,
            Value::Array(ops).to_string().as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e, PatchError::TooDeep { limit: MAX_DEPTH });
        // The result itself is measured exactly against the limit.
        let limits = Limits {
            max_depth: 3,
            ..Limits::default()
        };
        let body = br#"[{"op": "add", "path": "/a", "value": {"b": {"c": {}}}}]"#;
        let e = apply(PatchType::Json, &mut json!({}), body, &limits).unwrap_err();
        assert_eq!(e, PatchError::TooDeep { limit: 3 });
        let body = br#"[{"op": "add", "path": "/a", "value": {"b": {}}}]"#;
        apply(PatchType::Json, &mut json!({}), body, &limits).unwrap();
    }

    #[test]
    fn measure_counts_the_bytes_serde_json_writes() {
        let v = json!({"a\"\\\n\u{1}é": [1, -2, 3.5, 1e300, true, false, null, "t\tx", {}, []],
                       "b": {"c": {"d": [[]]}}});
        let m = measure(&v, usize::MAX);
        assert_eq!(m.bytes, serde_json::to_string(&v).unwrap().len());
        assert_eq!(m.depth, 5);
        assert!(measure(&v, 10).bytes > 10);
    }
}

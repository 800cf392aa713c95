//! JSON to protobuf: a `serde_json::Value` written as the message its schema names,
//! straight into one buffer (nested lengths are patched in, see
//! [`super::wire::begin_nested`]). JSON keys the message does not have are left out,
//! as `apiVersion` and `kind` are (the envelope carries them).

use base64::Engine as _;
use serde_json::{Map, Value};

use super::MAX_DEPTH;
use super::error::{Error, Result};
use super::schema::{Cardinality, Field, Message, Schema, Special, Type};
use super::wire::{self, FIXED64, VARINT};

/// Writes the fields of message `m` holding `v` to `buf`.
pub(crate) fn message(
    schema: &Schema,
    m: usize,
    v: &Value,
    buf: &mut Vec<u8>,
    depth: usize,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep {
            path: String::new(),
        });
    }
    let msg = &schema.messages[m];
    if msg.special == Some(Special::Either) {
        return either(schema, msg, v, buf, depth);
    }
    if let Some(special) = msg.special {
        return super::special::encode(special, v, buf);
    }
    let object = match v {
        Value::Object(o) => o,
        Value::Null => return Ok(()),
        other => {
            return Err(Error::invalid(format!(
                "expected an object, found {}",
                kind_of(other)
            )));
        }
    };
    fields(schema, msg, object, buf, depth)
}

/// A schema-or-value ([`Special::Either`]): an object is the `schema` field (and
/// `allows`, for `JSONSchemaPropsOrBool`), a boolean or list the other field.
fn either(
    schema: &Schema,
    msg: &Message,
    v: &Value,
    buf: &mut Vec<u8>,
    depth: usize,
) -> Result<()> {
    let schema_field = msg.fields.iter().find(|f| f.json == "schema");
    let other = msg.fields.iter().find(|f| f.json != "schema");
    match (v, schema_field, other) {
        (Value::Null, _, _) => Ok(()),
        (Value::Object(_), Some(s), other) => {
            if let Some(allows) = other.filter(|f| f.ty == Type::Bool) {
                single(
                    schema,
                    allows.tag,
                    Type::Bool,
                    &Value::Bool(true),
                    buf,
                    depth,
                )?;
            }
            single(schema, s.tag, s.ty, v, buf, depth)
        }
        (Value::Bool(_), _, Some(f)) if f.ty == Type::Bool => {
            single(schema, f.tag, f.ty, v, buf, depth)
        }
        (Value::Array(_), _, Some(f)) if f.cardinality == Cardinality::Repeated => {
            field(schema, f, v, buf, depth)
        }
        (other, _, _) => Err(Error::invalid(format!(
            "expected a schema or {}, found {}",
            if msg.name.ends_with("OrBool") {
                "a boolean"
            } else {
                "a list"
            },
            kind_of(other)
        ))),
    }
}

fn fields(
    schema: &Schema,
    msg: &Message,
    object: &Map<String, Value>,
    buf: &mut Vec<u8>,
    depth: usize,
) -> Result<()> {
    for (key, value) in object {
        if value.is_null() {
            continue;
        }
        if let Some(field) = msg.field_by_json(key) {
            self::field(schema, field, value, buf, depth).map_err(|e| e.within(key))?;
        }
    }
    for &i in &msg.inline {
        let field = &msg.fields[usize::from(i)];
        if let Type::Message(child) = field.ty {
            let mark = wire::begin_nested(buf, field.tag);
            fields(schema, &schema.messages[child], object, buf, depth + 1)?;
            wire::end_nested(buf, mark);
        }
    }
    Ok(())
}

fn field(
    schema: &Schema,
    field: &Field,
    value: &Value,
    buf: &mut Vec<u8>,
    depth: usize,
) -> Result<()> {
    match field.cardinality {
        Cardinality::Single => single(schema, field.tag, field.ty, value, buf, depth),
        Cardinality::Repeated => {
            let items = value.as_array().ok_or_else(|| {
                Error::invalid(format!("expected a list, found {}", kind_of(value)))
            })?;
            for (i, item) in items.iter().enumerate() {
                single(schema, field.tag, field.ty, item, buf, depth).map_err(|e| e.at_index(i))?;
            }
            Ok(())
        }
        Cardinality::Map => {
            let entries = value.as_object().ok_or_else(|| {
                Error::invalid(format!("expected a map, found {}", kind_of(value)))
            })?;
            for (key, item) in entries {
                let mark = wire::begin_nested(buf, field.tag);
                wire::put_bytes(buf, 1, key.as_bytes());
                single(schema, 2, field.ty, item, buf, depth).map_err(|e| e.within(key))?;
                wire::end_nested(buf, mark);
            }
            Ok(())
        }
    }
}

/// Writes one value (a field, a list item or a map value) numbered `tag`.
fn single(
    schema: &Schema,
    tag: u32,
    ty: Type,
    value: &Value,
    buf: &mut Vec<u8>,
    depth: usize,
) -> Result<()> {
    match ty {
        Type::String => match value {
            Value::String(s) => wire::put_bytes(buf, tag, s.as_bytes()),
            other => return Err(expected("a string", other)),
        },
        Type::Int32 => {
            let i = integer(value)?;
            let i = i32::try_from(i)
                .map_err(|_| Error::invalid(format!("{i} does not fit in 32 bits")))?;
            wire::put_key(buf, tag, VARINT);
            // Negative int32s are sign-extended to ten bytes, as protobuf requires.
            wire::put_varint(buf, i64::from(i) as u64);
        }
        Type::Int64 => {
            let i = integer(value)?;
            wire::put_key(buf, tag, VARINT);
            wire::put_varint(buf, i as u64);
        }
        Type::Bool => match value {
            Value::Bool(b) => {
                wire::put_key(buf, tag, VARINT);
                wire::put_varint(buf, u64::from(*b));
            }
            other => return Err(expected("a boolean", other)),
        },
        Type::Double => {
            let f = value.as_f64().ok_or_else(|| expected("a number", value))?;
            wire::put_key(buf, tag, FIXED64);
            buf.extend_from_slice(&f.to_le_bytes());
        }
        Type::Bytes => match value {
            Value::String(s) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|_| Error::invalid(format!("{s:?} is not base64")))?;
                wire::put_bytes(buf, tag, &bytes);
            }
            other => return Err(expected("a base64 string", other)),
        },
        Type::Message(m) => {
            let mark = wire::begin_nested(buf, tag);
            message(schema, m, value, buf, depth + 1)?;
            wire::end_nested(buf, mark);
        }
    }
    Ok(())
}

/// An integer from a JSON number (or a string of digits, as proto3's JSON writes
/// 64-bit integers).
fn integer(value: &Value) -> Result<i64> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| Error::invalid(format!("{n} is not a 64-bit integer"))),
        Value::String(s) => s
            .parse()
            .map_err(|_| Error::invalid(format!("{s:?} is not an integer"))),
        other => Err(expected("an integer", other)),
    }
}

/// The encoder's error for a value that is not `what`.
pub(crate) fn expected(what: &str, found: &Value) -> Error {
    Error::invalid(format!("expected {what}, found {}", kind_of(found)))
}

/// A found value, as errors name it.
pub(crate) fn kind_of(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.len() <= 40 => format!("{s:?}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

//! Protobuf to JSON: a message read field by field as its schema says, into the
//! `serde_json::Value` Kubernetes' JSON would hold. Unknown fields are skipped, every
//! length is checked against the input, nesting is bounded by [`MAX_DEPTH`].
//!
//! Go writes every non-pointer field, so a message from a Go client holds empty
//! strings for each unset string field (`generateName: ""`). Go's JSON leaves those
//! out (`omitempty`), and so does this decoder: an empty string field is no JSON
//! field. Numbers and booleans are kept as sent, since a Go pointer set to 0 or
//! `false` means something.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::MAX_DEPTH;
use super::error::{Error, Result};
use super::schema::{Cardinality, Field, Schema, Special, Type};
use super::wire::{FIXED64, LEN, Reader, VARINT};

/// Reads message `m` from `bytes` into a JSON value (`None`: a zero special value,
/// left out).
pub(crate) fn message(
    schema: &Schema,
    m: usize,
    bytes: &[u8],
    depth: usize,
) -> Result<Option<Value>> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep {
            path: String::new(),
        });
    }
    let msg = &schema.messages[m];
    if msg.special == Some(Special::Either) {
        // The schema if there is one, else the other field's value.
        let mut fields = Map::new();
        fields_into(schema, m, bytes, &mut fields, depth)?;
        if let Some(s) = fields.remove("schema") {
            return Ok(Some(s));
        }
        return Ok(fields.into_iter().next().map(|(_, v)| v));
    }
    if let Some(special) = msg.special {
        return super::special::decode(special, bytes, &mut |raw| {
            super::decode_envelope_at(raw, depth + 1).map(|(_, _, v)| v)
        });
    }
    let mut object = Map::new();
    fields_into(schema, m, bytes, &mut object, depth)?;
    Ok(Some(Value::Object(object)))
}

/// Reads the fields of message `m` into `object` (an inline struct's go into its
/// parent's object).
fn fields_into(
    schema: &Schema,
    m: usize,
    bytes: &[u8],
    object: &mut Map<String, Value>,
    depth: usize,
) -> Result<()> {
    let msg = &schema.messages[m];
    let mut r = Reader::new(bytes);
    while !r.is_empty() {
        let (tag, wire_type) = r.key()?;
        let Some(field) = msg.field_by_tag(tag) else {
            r.skip(wire_type)?;
            continue;
        };
        self::field(schema, field, wire_type, &mut r, object, depth)
            .map_err(|e| e.within(field.json))?;
    }
    Ok(())
}

fn field(
    schema: &Schema,
    field: &Field,
    wire_type: u8,
    r: &mut Reader<'_>,
    object: &mut Map<String, Value>,
    depth: usize,
) -> Result<()> {
    if field.is_inline() {
        let bytes = expect_len(r, wire_type)?;
        if let Type::Message(child) = field.ty {
            fields_into(schema, child, bytes, object, depth + 1)?;
        }
        return Ok(());
    }
    match field.cardinality {
        Cardinality::Single => {
            // A message sent twice is merged, as protobuf merges it.
            if let (Type::Message(child), Some(Value::Object(existing))) =
                (field.ty, object.get_mut(field.json))
                && schema.messages[child].special.is_none()
            {
                let bytes = expect_len(r, wire_type)?;
                return fields_into(schema, child, bytes, existing, depth + 1);
            }
            match single(schema, field.ty, wire_type, r, depth)? {
                Some(Value::String(s)) if s.is_empty() && field.ty == Type::String => {
                    object.remove(field.json);
                }
                Some(v) => {
                    object.insert(field.json.to_string(), v);
                }
                None => {}
            }
        }
        Cardinality::Repeated => {
            let items = match object
                .entry(field.json)
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                Value::Array(items) => items,
                other => {
                    *other = Value::Array(Vec::new());
                    match other {
                        Value::Array(items) => items,
                        _ => return Ok(()),
                    }
                }
            };
            let numeric = matches!(
                field.ty,
                Type::Int32 | Type::Int64 | Type::Bool | Type::Double
            );
            if numeric && wire_type == LEN {
                // Packed: accepted, though Go never packs.
                let mut packed = Reader::new(r.len_delimited()?);
                let inner = if field.ty == Type::Double {
                    FIXED64
                } else {
                    VARINT
                };
                while !packed.is_empty() {
                    let i = items.len();
                    let v = single(schema, field.ty, inner, &mut packed, depth)
                        .map_err(|e| e.at_index(i))?;
                    items.push(v.unwrap_or(Value::Null));
                }
            } else {
                let i = items.len();
                let v = single(schema, field.ty, wire_type, r, depth).map_err(|e| e.at_index(i))?;
                items.push(v.unwrap_or(Value::Null));
            }
        }
        Cardinality::Map => {
            let entry = expect_len(r, wire_type)?;
            let mut e = Reader::new(entry);
            let (mut key, mut value) = (String::new(), None);
            while !e.is_empty() {
                match e.key()? {
                    (1, LEN) => key = super::special::utf8(e.len_delimited()?)?,
                    (2, wt) => value = single(schema, field.ty, wt, &mut e, depth)?,
                    (_, wt) => e.skip(wt)?,
                }
            }
            // A value left out is the type's zero value.
            let value = match value {
                Some(v) => v,
                None => zero(schema, field.ty),
            };
            let map = match object
                .entry(field.json)
                .or_insert_with(|| Value::Object(Map::new()))
            {
                Value::Object(map) => map,
                other => {
                    *other = Value::Object(Map::new());
                    match other {
                        Value::Object(map) => map,
                        _ => return Ok(()),
                    }
                }
            };
            map.insert(key, value);
        }
    }
    Ok(())
}

/// The JSON of a value of `ty` that protobuf left out.
fn zero(schema: &Schema, ty: Type) -> Value {
    match ty {
        Type::String | Type::Bytes => Value::String(String::new()),
        Type::Int32 | Type::Int64 => Value::from(0),
        Type::Bool => Value::Bool(false),
        Type::Double => Value::from(0.0),
        Type::Message(m) => match schema.messages[m].special {
            Some(super::schema::Special::Quantity) => Value::String("0".into()),
            _ => Value::Object(Map::new()),
        },
    }
}

fn expect_len<'a>(r: &mut Reader<'a>, wire_type: u8) -> Result<&'a [u8]> {
    if wire_type != LEN {
        return Err(Error::WireType {
            path: String::new(),
            expected: LEN,
            found: wire_type,
        });
    }
    r.len_delimited()
}

fn expect(wire_type: u8, expected: u8) -> Result<()> {
    if wire_type == expected {
        Ok(())
    } else {
        Err(Error::WireType {
            path: String::new(),
            expected,
            found: wire_type,
        })
    }
}

/// Reads one value of `ty`.
fn single(
    schema: &Schema,
    ty: Type,
    wire_type: u8,
    r: &mut Reader<'_>,
    depth: usize,
) -> Result<Option<Value>> {
    Ok(Some(match ty {
        Type::String => Value::String(super::special::utf8(expect_len(r, wire_type)?)?),
        Type::Bytes => Value::String(
            base64::engine::general_purpose::STANDARD.encode(expect_len(r, wire_type)?),
        ),
        Type::Int32 => {
            expect(wire_type, VARINT)?;
            Value::from(r.varint()? as i32)
        }
        Type::Int64 => {
            expect(wire_type, VARINT)?;
            Value::from(r.varint()? as i64)
        }
        Type::Bool => {
            expect(wire_type, VARINT)?;
            Value::Bool(r.varint()? != 0)
        }
        Type::Double => {
            expect(wire_type, FIXED64)?;
            let f = f64::from_bits(r.fixed64()?);
            // JSON has no NaN or infinity: such a value is left out.
            match serde_json::Number::from_f64(f) {
                Some(n) => Value::Number(n),
                None => return Ok(None),
            }
        }
        Type::Message(m) => return message(schema, m, expect_len(r, wire_type)?, depth + 1),
    }))
}

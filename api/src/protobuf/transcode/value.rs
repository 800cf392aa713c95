//! One JSON value written as protobuf, driven by the schema: a field (repeated, map
//! or single), a message, a special type, embedded JSON. Each function mirrors its
//! namesake in [`crate::protobuf::encode`] (`many` its `field` for lists and maps,
//! `canon` the embedding of JSON in [`crate::protobuf::special`]), and fails with
//! the same errors.

use base64::Engine as _;
use serde_json::Value;

use super::scan::{Num, Scanner, Str, Token, text};
use super::{Object, Stop, Tx, in_order, plan};
use crate::protobuf::MAX_DEPTH;
use crate::protobuf::encode::{expected, kind_of};
use crate::protobuf::error::{Error, Result};
use crate::protobuf::schema::{Cardinality, Field, Message, Special, Type};
use crate::protobuf::wire::{self, FIXED64, VARINT};

/// A JSON scalar.
#[derive(Clone, Copy)]
enum Head<'s> {
    Null,
    Bool(bool),
    Num(Num),
    /// A string's bytes (UTF-8).
    Str(&'s [u8]),
}

impl Head<'_> {
    /// The scalar as a `Value` holds it (as serde_json's own visitor builds it).
    fn value(self) -> Value {
        match self {
            Head::Null => Value::Null,
            Head::Bool(b) => Value::Bool(b),
            Head::Num(Num::U64(u)) => Value::from(u),
            Head::Num(Num::I64(i)) => Value::from(i),
            Head::Num(Num::F64(f)) => Value::from(f),
            Head::Str(s) => Value::String(text(s).to_string()),
        }
    }
}

/// A token that is not an object or array, as a scalar.
#[inline]
fn head<'s>(token: &'s Token<'_>) -> Option<Head<'s>> {
    Some(match token {
        Token::Null => Head::Null,
        Token::Bool(b) => Head::Bool(*b),
        Token::Num(n) => Head::Num(*n),
        Token::Str(s) => Head::Str(s.bytes()),
        Token::Object | Token::Array => return None,
    })
}

/// How the encoder names a found value.
fn found(token: &Token<'_>) -> String {
    match head(token) {
        Some(h) => kind_of(&h.value()),
        None if matches!(token, Token::Object) => "an object".into(),
        None => "a list".into(),
    }
}

/// Writes the value of `field` (`null` writes nothing).
#[inline]
pub(super) fn field(
    tx: &mut Tx,
    sc: &mut Scanner<'_>,
    field: &'static Field,
    depth: usize,
) -> Result<(), Stop> {
    if field.cardinality == Cardinality::Single {
        return single(tx, sc, field.tag, field.ty, depth, false);
    }
    let token = sc.token()?;
    many(tx, sc, field, depth, token)
}

/// Writes a repeated or map field whose first token was `token`.
fn many(
    tx: &mut Tx,
    sc: &mut Scanner<'_>,
    field: &'static Field,
    depth: usize,
    token: Token<'_>,
) -> Result<(), Stop> {
    let mut first = true;
    match (field.cardinality, token) {
        (_, Token::Null) => Ok(()),
        (Cardinality::Repeated, Token::Array) => {
            let mut i = 0;
            while sc.next_item(&mut first)? {
                single(tx, sc, field.tag, field.ty, depth, true).map_err(|s| s.at_index(i))?;
                i += 1;
            }
            Ok(())
        }
        (Cardinality::Map, Token::Object) => {
            let mut prev = None;
            while let Some(key) = sc.next_key(&mut first)? {
                in_order(prev.as_ref(), &key)?;
                let mark = wire::begin_nested(&mut tx.buf, field.tag);
                wire::put_bytes(&mut tx.buf, 1, key.bytes());
                single(tx, sc, 2, field.ty, depth, true).map_err(|s| s.within(key.as_str()))?;
                wire::end_nested(&mut tx.buf, mark);
                prev = Some(key);
            }
            Ok(())
        }
        (cardinality, token) => {
            let what = if cardinality == Cardinality::Map {
                "a map"
            } else {
                "a list"
            };
            Err(invalid(expected_text(what, &found(&token))))
        }
    }
}

/// Writes one value numbered `tag`: a field's (whose `null` writes nothing), or a
/// list item's or map value's (`item`, whose `null` is a value).
fn single(
    tx: &mut Tx,
    sc: &mut Scanner<'_>,
    tag: u32,
    ty: Type,
    depth: usize,
    item: bool,
) -> Result<(), Stop> {
    let start = sc.offset();
    let token = sc.token()?;
    if matches!(token, Token::Null) && !item {
        return Ok(());
    }
    match (ty, head(&token)) {
        (Type::Message(m), _) => {
            let mark = wire::begin_nested(&mut tx.buf, tag);
            message(tx, sc, m, depth + 1, token, start)?;
            wire::end_nested(&mut tx.buf, mark);
            Ok(())
        }
        (ty, Some(h)) => scalar(&mut tx.buf, tag, ty, h).map_err(Stop::invalid),
        (ty, None) => Err(invalid(expected_text(what(ty), &found(&token)))),
    }
}

/// Writes the fields of message `m` at nesting `depth`, whose value's first token,
/// at `start`, was `token`.
pub(super) fn message(
    tx: &mut Tx,
    sc: &mut Scanner<'_>,
    m: usize,
    depth: usize,
    token: Token<'_>,
    start: usize,
) -> Result<(), Stop> {
    if depth > MAX_DEPTH {
        return Err(invalid(Error::TooDeep {
            path: String::new(),
        }));
    }
    let plan = plan(tx.schema, m);
    let buf = &mut tx.buf;
    match (plan.special, token) {
        (None, Token::Object) => {
            let mut object = Object::new(tx, plan, depth);
            let mut prev = None;
            let mut first = true;
            while let Some(key) = sc.next_key(&mut first)? {
                in_order(prev.as_ref(), &key)?;
                object.entry(tx, sc, &key)?;
                prev = Some(key);
            }
            object.finish(tx);
            Ok(())
        }
        (None, Token::Null) => Ok(()),
        (None, token) => Err(invalid(expected_text("an object", &found(&token)))),
        (Some(Special::Either), token) => either(tx, sc, plan.message, depth, token, start),
        (Some(Special::Raw), token) => {
            let mark = wire::begin_nested(buf, 1);
            canon(tx, sc, token)?;
            wire::end_nested(&mut tx.buf, mark);
            Ok(())
        }
        (Some(Special::Quantity), Token::Str(s)) => {
            wire::put_bytes(buf, 1, s.bytes());
            Ok(())
        }
        (Some(Special::IntOrString), Token::Str(s)) => {
            wire::put_key(buf, 1, VARINT);
            wire::put_varint(buf, 1);
            wire::put_bytes(buf, 3, s.bytes());
            Ok(())
        }
        (Some(special), Token::Str(s)) => {
            // Times, mostly: a reused string, not one allocated each time.
            match &mut tx.text {
                Value::String(text) => {
                    text.clear();
                    text.push_str(s.as_str());
                }
                other => *other = Value::String(s.as_str().to_string()),
            }
            crate::protobuf::special::encode(special, &tx.text, buf).map_err(Stop::invalid)
        }
        (Some(special), token) => {
            // Anything else is rare (verbs) or wrong: read whole, for the encoder.
            let value = match head(&token) {
                Some(h) => h.value(),
                None => {
                    sc.skip_rest(token)?;
                    serde_json::from_slice(sc.since(start)).map_err(|_| Stop::Redo)?
                }
            };
            crate::protobuf::special::encode(special, &value, buf).map_err(Stop::invalid)
        }
    }
}

/// A schema-or-value ([`Special::Either`]): an object is the `schema` field (and
/// `allows`, for `JSONSchemaPropsOrBool`), a boolean or list the other field.
fn either(
    tx: &mut Tx,
    sc: &mut Scanner<'_>,
    msg: &'static Message,
    depth: usize,
    token: Token<'_>,
    start: usize,
) -> Result<(), Stop> {
    let schema = msg.fields.iter().find(|f| f.json == "schema");
    let other = msg.fields.iter().find(|f| f.json != "schema");
    match (token, schema, other) {
        (Token::Null, _, _) => Ok(()),
        (Token::Object, Some(s), other) => {
            if let Some(allows) = other.filter(|f| f.ty == Type::Bool) {
                wire::put_key(&mut tx.buf, allows.tag, VARINT);
                wire::put_varint(&mut tx.buf, 1);
            }
            match s.ty {
                Type::Message(m) => {
                    let mark = wire::begin_nested(&mut tx.buf, s.tag);
                    message(tx, sc, m, depth + 1, Token::Object, start)?;
                    wire::end_nested(&mut tx.buf, mark);
                    Ok(())
                }
                ty => Err(invalid(expected_text(what(ty), "an object"))),
            }
        }
        (Token::Bool(b), _, Some(f)) if f.ty == Type::Bool => {
            scalar(&mut tx.buf, f.tag, Type::Bool, Head::Bool(b)).map_err(Stop::invalid)
        }
        (Token::Array, _, Some(f)) if f.cardinality == Cardinality::Repeated => {
            many(tx, sc, f, depth, Token::Array)
        }
        (token, _, _) => {
            let other = if msg.name.ends_with("OrBool") {
                "a boolean"
            } else {
                "a list"
            };
            Err(invalid(Error::invalid(format!(
                "expected a schema or {other}, found {}",
                found(&token)
            ))))
        }
    }
}

/// Embedded JSON (`RawExtension`, `FieldsV1`) whose first token was `token`, written
/// compactly as serde_json writes a `Value`.
fn canon(tx: &mut Tx, sc: &mut Scanner<'_>, token: Token<'_>) -> Result<(), Stop> {
    let mut first = true;
    match token {
        Token::Null => tx.buf.extend_from_slice(b"null"),
        Token::Bool(true) => tx.buf.extend_from_slice(b"true"),
        Token::Bool(false) => tx.buf.extend_from_slice(b"false"),
        Token::Num(Num::U64(u)) => tx.json(&u),
        Token::Num(Num::I64(i)) => tx.json(&i),
        Token::Num(Num::F64(f)) => tx.json(&Value::from(f)),
        // Nothing in it needs an escape (it had none, and cannot hold a control
        // character): as serde_json would write it.
        Token::Str(Str::Plain(s)) => {
            tx.buf.push(b'"');
            tx.buf.extend_from_slice(s);
            tx.buf.push(b'"');
        }
        Token::Str(Str::Escaped(s)) => tx.json(&s),
        Token::Array => {
            tx.buf.push(b'[');
            while sc.next_item(&mut first)? {
                if tx.buf.last() != Some(&b'[') {
                    // Not the first item: the bracket is the last byte only then
                    // (an item ends in a bracket, brace, quote, digit or letter).
                    tx.buf.push(b',');
                }
                let item = sc.token()?;
                canon(tx, sc, item)?;
            }
            tx.buf.push(b']');
        }
        Token::Object => {
            tx.buf.push(b'{');
            let mut prev = None;
            while let Some(key) = sc.next_key(&mut first)? {
                in_order(prev.as_ref(), &key)?;
                if prev.is_some() {
                    tx.buf.push(b',');
                }
                canon(tx, sc, Token::Str(key.clone()))?;
                tx.buf.push(b':');
                let value = sc.token()?;
                canon(tx, sc, value)?;
                prev = Some(key);
            }
            tx.buf.push(b'}');
        }
    }
    Ok(())
}

fn invalid(e: Error) -> Stop {
    Stop::invalid(e)
}

/// Writes scalar `h` as type `ty` numbered `tag` (the encoder's `single`, for every
/// type but messages).
fn scalar(buf: &mut Vec<u8>, tag: u32, ty: Type, h: Head<'_>) -> Result<()> {
    match (ty, h) {
        (Type::String, Head::Str(s)) => wire::put_bytes(buf, tag, s),
        (Type::Int32, h) => {
            let i = integer(h)?;
            let i = i32::try_from(i)
                .map_err(|_| Error::invalid(format!("{i} does not fit in 32 bits")))?;
            wire::put_key(buf, tag, VARINT);
            // Negative int32s are sign-extended to ten bytes, as protobuf requires.
            wire::put_varint(buf, i64::from(i) as u64);
        }
        (Type::Int64, h) => {
            let i = integer(h)?;
            wire::put_key(buf, tag, VARINT);
            wire::put_varint(buf, i as u64);
        }
        (Type::Bool, Head::Bool(b)) => {
            wire::put_key(buf, tag, VARINT);
            wire::put_varint(buf, u64::from(b));
        }
        (Type::Double, h @ Head::Num(_)) => {
            let value = h.value();
            let f = value.as_f64().ok_or_else(|| expected("a number", &value))?;
            wire::put_key(buf, tag, FIXED64);
            buf.extend_from_slice(&f.to_le_bytes());
        }
        (Type::Bytes, Head::Str(s)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| Error::invalid(format!("{:?} is not base64", text(s))))?;
            wire::put_bytes(buf, tag, &bytes);
        }
        (ty, h) => return Err(expected(what(ty), &h.value())),
    }
    Ok(())
}

/// What a value of `ty` should have been, as the encoder says it.
fn what(ty: Type) -> &'static str {
    match ty {
        Type::String => "a string",
        Type::Int32 | Type::Int64 => "an integer",
        Type::Bool => "a boolean",
        Type::Double => "a number",
        Type::Bytes => "a base64 string",
        Type::Message(_) => "an object",
    }
}

/// An integer from a JSON number or a string of digits (the encoder's `integer`).
fn integer(h: Head<'_>) -> Result<i64> {
    match h {
        Head::Num(Num::I64(i)) => Ok(i),
        Head::Num(_) => match h.value() {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| Error::invalid(format!("{n} is not a 64-bit integer"))),
            other => Err(expected("an integer", &other)),
        },
        Head::Str(s) => text(s)
            .parse()
            .map_err(|_| Error::invalid(format!("{:?} is not an integer", text(s)))),
        h => Err(expected("an integer", &h.value())),
    }
}

fn expected_text(what: &str, found: &str) -> Error {
    Error::invalid(format!("expected {what}, found {found}"))
}

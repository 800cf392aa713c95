//! JSON bytes to protobuf without a `serde_json::Value` in between: the schema drives
//! serde visitors over `serde_json`'s tokens, and each value is written to the buffer
//! as it is read (nested lengths patched in, as [`super::encode`] does).
//!
//! A list of stored objects is mostly parsing: a `Value` costs an allocation per
//! string and per map node, which protobuf throws away. The bytes written are those
//! of [`super::encode::message`] on the parsed value, which walks each object in key
//! order (a `serde_json::Map` is sorted) and writes the fields of inline structs
//! (`Volume`'s `VolumeSource`) after the object's own. So here:
//!
//! - an inline struct's fields go to a scratch buffer of their own, appended as its
//!   nested field once the object ends;
//! - a key not after the one before it (unsorted or repeated keys, which a `Map`
//!   would reorder or merge) stops the transcoder, and the object is encoded through
//!   a `Value` instead; so is an object whose error arose in an inline struct, where
//!   the encoder could have met another first;
//! - `RawExtension` and `FieldsV1` embed their JSON rewritten compactly, as
//!   serde_json writes a `Value`; the other special types are small, and those that
//!   are not a plain string are read as a `Value` for [`super::special::encode`].
//!
//! Errors carry the field's path as the encoder's do. An error found by the
//! transcoder is smuggled through serde's error type: it is kept in [`Tx::fail`] and
//! a bare marker error unwinds serde_json.

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::OnceLock;

use serde::de::Visitor;
use serde::de::{self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess};
use serde_json::Value;
use serde_json::value::RawValue;

use super::error::{Error, Result};
use super::schema::{self, Field, Message, Schema, Special, Type};
use super::wire;

mod value;

use value::{FieldSeed, Msg};

#[cfg(test)]
mod tests;

/// Appends the message `m` transcoded from the JSON in `json` to `buf` (left as it
/// was on an error).
pub(crate) fn message(m: usize, json: &[u8], buf: &mut Vec<u8>) -> Result<()> {
    let start = buf.len();
    let stop = match run(json, buf, |de, tx| Msg { tx, m, depth: 0 }.deserialize(de)) {
        Ok(()) => return Ok(()),
        Err(stop) => stop,
    };
    buf.truncate(start);
    match stop {
        Stop::Invalid(e) => Err(e),
        Stop::NotJson(e) => Err(not_json(e)),
        Stop::Redo => {
            let value: Value = serde_json::from_slice(json).map_err(not_json)?;
            super::encode::message(schema::schema(), m, &value, buf, 0)
                .inspect_err(|_| buf.truncate(start))
        }
    }
}

/// Appends the body (magic and envelope) of the JSON object in `json` to `buf` (left
/// as it was on an error).
pub(crate) fn body(json: &[u8], buf: &mut Vec<u8>) -> Result<()> {
    let start = buf.len();
    let stop = match run(json, buf, |de, tx| de.deserialize_any(Top { tx })) {
        Ok(()) => return Ok(()),
        Err(stop) => stop,
    };
    buf.truncate(start);
    match stop {
        Stop::Invalid(e) => Err(e),
        Stop::NotJson(e) => Err(not_json(e)),
        Stop::Redo => {
            let value: Value = serde_json::from_slice(json).map_err(not_json)?;
            super::encode_into(&value, buf)
        }
    }
}

fn not_json(e: serde_json::Error) -> Error {
    Error::invalid(format!("the object is not JSON: {e}"))
}

/// Why a transcode stopped.
enum Stop {
    /// The value does not fit the schema.
    Invalid(Error),
    /// The object must be encoded through a `Value` (see the module's notes).
    Redo,
    /// The bytes are not JSON.
    NotJson(serde_json::Error),
}

/// Runs `transcode` over the JSON in `json`, writing to `buf`.
fn run(
    json: &[u8],
    buf: &mut Vec<u8>,
    transcode: impl FnOnce(
        &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>,
        &mut Tx,
    ) -> serde_json::Result<()>,
) -> Result<(), Stop> {
    let (scratch, text) = SPARE.take();
    let mut tx = Tx {
        schema: schema::schema(),
        buf: std::mem::take(buf),
        fail: None,
        scratch,
        used: 0,
        text: Value::String(text),
    };
    let mut de = serde_json::Deserializer::from_slice(json);
    let result = transcode(&mut de, &mut tx).and_then(|()| de.end());
    *buf = tx.buf;
    // Left filled by an error.
    for s in &mut tx.scratch[..tx.used] {
        s.clear();
    }
    if let Value::String(text) = tx.text {
        SPARE.set((tx.scratch, text));
    }
    result.map_err(|e| match tx.fail {
        Some(Fail::Invalid(e)) => Stop::Invalid(e),
        Some(Fail::Redo) => Stop::Redo,
        None => Stop::NotJson(e),
    })
}

thread_local! {
    /// [`Tx::scratch`] and [`Tx::text`] between transcodes, so that a list's items
    /// allocate none.
    static SPARE: Cell<(Vec<Vec<u8>>, String)> = const { Cell::new((Vec::new(), String::new())) };
}

/// A transcode in progress: the buffer written to and what stopped it.
struct Tx {
    schema: &'static Schema,
    buf: Vec<u8>,
    /// Set when the transcoder (not serde_json) stops, before the marker error
    /// unwinds.
    fail: Option<Fail>,
    /// The fields of inline structs so far, a buffer for each: a stack, of which the
    /// objects being written use the first `used` (each [`Object`] its own).
    scratch: Vec<Vec<u8>>,
    used: usize,
    /// A string value, for the special encoders that take a `Value`.
    text: Value,
}

enum Fail {
    Invalid(Error),
    Redo,
}

impl Tx {
    /// Stops with `fail`: the marker error for serde_json to unwind with.
    fn stop<E: de::Error>(&mut self, fail: Fail) -> E {
        self.fail = Some(fail);
        E::custom("the transcoder stopped")
    }

    fn invalid<E: de::Error>(&mut self, e: Error) -> E {
        self.stop(Fail::Invalid(e))
    }

    fn redo<E: de::Error>(&mut self) -> E {
        self.stop(Fail::Redo)
    }

    /// Rewrites an [`Error`] unwinding through here (adds a path segment).
    fn wrap<E>(&mut self, e: E, f: impl FnOnce(Error) -> Error) -> E {
        if let Some(Fail::Invalid(inner)) = &mut self.fail {
            *inner = f(std::mem::replace(inner, Error::MissingMagic));
        }
        e
    }

    /// Turns an [`Error`] unwinding through here into [`Fail::Redo`].
    fn redo_invalid<E>(&mut self, e: E) -> E {
        if let Some(Fail::Invalid(_)) = self.fail {
            self.fail = Some(Fail::Redo);
        }
        e
    }

    /// Writes `v` as serde_json writes it in a `Value` (it cannot fail on a `Vec`).
    fn json<T: serde::Serialize + ?Sized>(&mut self, v: &T) {
        let _ = v.serialize(&mut serde_json::Serializer::new(&mut self.buf));
    }
}

/// Fails with [`Fail::Redo`] unless `key` comes after `prev`, as in a sorted map.
fn in_order<E: de::Error>(tx: &mut Tx, prev: Option<&Cow<'_, str>>, key: &str) -> Result<(), E> {
    match prev {
        Some(p) if !before(p.as_bytes(), key.as_bytes()) => Err(tx.redo()),
        _ => Ok(()),
    }
}

/// Whether `a` sorts strictly before `b`, as `str`s do; a loop beats a call to
/// `memcmp` on keys this short, which mostly differ in their first byte.
fn before(a: &[u8], b: &[u8]) -> bool {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x < y;
        }
    }
    a.len() < b.len()
}

/// A JSON key, borrowed from the input unless it holds escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_string()))
    }
}

/// The top-level object of a body: its message is known once `apiVersion` and `kind`
/// are read; the fields before them (a `ConfigMap`'s `binaryData` and `data`) are
/// kept as raw JSON and transcoded then.
struct Top<'t> {
    tx: &'t mut Tx,
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object")
    }

    // Not an object: no kind, which the encoder reports.
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.tx.redo())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.tx.redo())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self.tx.redo())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self.tx.redo())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self.tx.redo())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.tx.redo())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.tx.redo())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let tx = self.tx;
        let mut prev: Option<Cow<'de, str>> = None;
        let (mut api_version, mut kind) = (None, None);
        let mut pending: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
        // The object, and the mark of the envelope's `raw`, once the kind is known.
        let mut open: Option<(Object, usize)> = None;
        while let Some(key) = map.next_key_seed(Key)? {
            in_order(tx, prev.as_ref(), &key)?;
            if let Some((object, _)) = &mut open {
                object.entry(tx, &key, |seed| next_value(&mut map, seed))?;
            } else {
                let raw: &'de RawValue = map.next_value()?;
                // The encoder reads a missing or non-string type meta as "".
                let text = || Key.deserialize(&mut serde_json::Deserializer::from_str(raw.get()));
                match key.as_ref() {
                    "apiVersion" => api_version = Some(text().unwrap_or_default()),
                    "kind" => kind = Some(text().unwrap_or_default()),
                    _ => {}
                }
                pending.push((key.clone(), raw));
                if let (Some(api_version), Some(kind)) = (&api_version, &kind) {
                    open = Some(start(tx, api_version, kind, &mut pending)?);
                }
            }
            prev = Some(key);
        }
        // No kind (or no apiVersion): the encoder's error, through a `Value`.
        let Some((object, raw)) = open else {
            return Err(tx.redo());
        };
        object.finish(tx);
        super::end_envelope(&mut tx.buf, raw);
        Ok(())
    }
}

/// Starts the body of a `kind` in `api_version`: the envelope, then the fields read
/// before the kind was known.
fn start<'de, E: de::Error>(
    tx: &mut Tx,
    api_version: &str,
    kind: &str,
    pending: &mut Vec<(Cow<'de, str>, &'de RawValue)>,
) -> Result<(Object, usize), E> {
    let Some(m) = tx.schema.message_for(api_version, kind) else {
        // Unknown, unless a later duplicate key changes the kind: the encoder decides.
        return Err(tx.redo());
    };
    let plan = plan(tx.schema, m);
    if plan.special.is_some() {
        return Err(tx.redo());
    }
    let raw = super::begin_envelope(api_version, kind, &mut tx.buf);
    let mut object = Object::new(tx, plan, 0);
    for (key, value) in pending.drain(..) {
        object.entry(tx, &key, |seed| match seed {
            Some(seed) => seed
                .deserialize(&mut serde_json::Deserializer::from_str(value.get()))
                .map_err(E::custom),
            None => Ok(()),
        })?;
    }
    Ok((object, raw))
}

/// Reads the next map value with `seed`, or skips it.
fn next_value<'de, A: MapAccess<'de>>(
    map: &mut A,
    seed: Option<FieldSeed<'_>>,
) -> Result<(), A::Error> {
    match seed {
        Some(seed) => map.next_value_seed(seed),
        None => map.next_value::<IgnoredAny>().map(drop),
    }
}

/// The inline structs of a message, depth first: each a nested field of its parent
/// (the message itself for `parent` `None`).
struct Inline {
    parent: Option<usize>,
    message: usize,
    tag: u32,
    /// How many inline structs deep (the encoder counts each as a level).
    level: usize,
}

/// Where a key of an object goes.
#[derive(Clone, Copy)]
enum Route {
    Skip,
    /// A field of the message.
    Own(&'static Field),
    /// A field of the `n`th inline struct.
    Inline(usize, &'static Field),
    /// More than one place (no schema has such a key; the encoder writes it to each).
    Many,
}

/// How the keys of a message's objects are written: its inline structs, and every
/// JSON name of it and them with where it goes, found by a hash of a few bytes of the
/// name (the schema's own map hashes every byte: this lookup is the transcoder's
/// most frequent step).
struct Plan {
    message: &'static Message,
    /// The message's, here to spare a read of the message on the hot path.
    special: Option<Special>,
    inline: Vec<Inline>,
    /// The names, linearly probed from [`slot`]; empty slots have the name "" (and
    /// no field is named ""). At least twice as many as the names, so a probe ends.
    slots: Vec<Slot>,
}

#[derive(Clone, Copy)]
struct Slot {
    /// The name's [`prefix`], to tell most keys from it without reading it.
    prefix: u64,
    name: &'static str,
    route: Route,
}

/// The plan of message `m`.
fn plan(schema: &'static Schema, m: usize) -> &'static Plan {
    static PLANS: OnceLock<Vec<Plan>> = OnceLock::new();
    &PLANS.get_or_init(|| {
        (0..schema.messages.len())
            .map(|m| Plan::new(schema, m))
            .collect()
    })[m]
}

/// Where `name` starts its probe in a table of `slots` (a power of two).
fn slot(name: &[u8], slots: usize) -> usize {
    let (first, middle, last) = match name {
        [] => (0, 0, 0),
        _ => (name[0], name[name.len() / 2], name[name.len() - 1]),
    };
    let h = name.len().wrapping_mul(0x9e37_79b9)
        ^ usize::from(first).wrapping_mul(0x85eb_ca6b)
        ^ usize::from(middle).wrapping_mul(0xc2b2_ae35)
        ^ usize::from(last).wrapping_mul(0x27d4_eb2f);
    (h ^ (h >> 16)) & (slots - 1)
}

/// The first eight bytes of `name`, zero-padded.
fn prefix(name: &[u8]) -> u64 {
    let mut bytes = [0; 8];
    let n = name.len().min(8);
    bytes[..n].copy_from_slice(&name[..n]);
    u64::from_le_bytes(bytes)
}

/// Whether `a` and `b` are the same bytes; a loop beats a call to `memcmp` on names
/// this short.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

impl Plan {
    fn new(schema: &'static Schema, m: usize) -> Plan {
        fn add(schema: &Schema, m: usize, parent: Option<usize>, to: &mut Vec<Inline>) {
            let level = parent.map_or(1, |p| to[p].level + 1);
            for &i in &schema.messages[m].inline {
                let field = &schema.messages[m].fields[usize::from(i)];
                if let Type::Message(child) = field.ty {
                    to.push(Inline {
                        parent,
                        message: child,
                        tag: field.tag,
                        level,
                    });
                    add(schema, child, Some(to.len() - 1), to);
                }
            }
        }
        let mut inline = Vec::new();
        add(schema, m, None, &mut inline);
        let own = schema.messages[m].fields.iter().map(|f| (f, Route::Own(f)));
        let of_inline = inline.iter().enumerate().flat_map(|(n, s)| {
            let fields = schema.messages[s.message].fields.iter();
            fields.map(move |f| (f, Route::Inline(n, f)))
        });
        let mut names: Vec<(&'static str, Route)> = Vec::new();
        for (field, route) in own.chain(of_inline) {
            if field.is_inline() {
                continue;
            }
            match names.iter_mut().find(|(name, _)| *name == field.json) {
                Some((_, seen)) => *seen = Route::Many,
                None => names.push((field.json, route)),
            }
        }
        let empty = Slot {
            prefix: 0,
            name: "",
            route: Route::Skip,
        };
        let mut slots = vec![empty; (names.len() * 2).next_power_of_two().max(2)];
        for (name, route) in names {
            let mut i = slot(name.as_bytes(), slots.len());
            while !slots[i].name.is_empty() {
                i = (i + 1) & (slots.len() - 1);
            }
            let prefix = prefix(name.as_bytes());
            slots[i] = Slot {
                prefix,
                name,
                route,
            };
        }
        Plan {
            message: &schema.messages[m],
            special: schema.messages[m].special,
            inline,
            slots,
        }
    }

    fn route(&self, key: &str) -> Route {
        let key = key.as_bytes();
        let (mut i, prefix) = (slot(key, self.slots.len()), prefix(key));
        loop {
            let s = &self.slots[i];
            if s.prefix == prefix
                && s.name.len() == key.len()
                && (key.len() <= 8 || same(&s.name.as_bytes()[8..], &key[8..]))
            {
                return s.route;
            }
            if s.name.is_empty() {
                return Route::Skip;
            }
            i = (i + 1) & (self.slots.len() - 1);
        }
    }
}

/// An object being written as a message's fields ([`super::encode`]'s `fields`).
struct Object {
    plan: &'static Plan,
    depth: usize,
    /// The first of its inline structs' buffers in [`Tx::scratch`].
    base: usize,
}

impl Object {
    fn new(tx: &mut Tx, plan: &'static Plan, depth: usize) -> Self {
        let base = tx.used;
        tx.used += plan.inline.len();
        if tx.scratch.len() < tx.used {
            tx.scratch.resize_with(tx.used, Vec::new);
        }
        Object { plan, depth, base }
    }

    /// Writes the field `key` names, with its value read by `value` (given no seed
    /// for a key the message does not have).
    fn entry<E: de::Error>(
        &mut self,
        tx: &mut Tx,
        key: &str,
        value: impl FnOnce(Option<FieldSeed<'_>>) -> Result<(), E>,
    ) -> Result<(), E> {
        match self.plan.route(key) {
            Route::Skip => value(None),
            Route::Own(field) => {
                let depth = self.depth;
                value(Some(FieldSeed { tx, field, depth }))
                    .map_err(|e| tx.wrap(e, |x| x.within(key)))
            }
            Route::Inline(n, field) => {
                let depth = self.depth + self.plan.inline[n].level;
                std::mem::swap(&mut tx.buf, &mut tx.scratch[self.base + n]);
                let result = value(Some(FieldSeed { tx, field, depth }));
                std::mem::swap(&mut tx.buf, &mut tx.scratch[self.base + n]);
                // The encoder writes inline fields after the object's own, so it may
                // have met an error in one of those first: it decides.
                result.map_err(|e| tx.redo_invalid(e))
            }
            Route::Many => Err(tx.redo()),
        }
    }

    /// Appends the inline structs, each a nested field of its parent.
    fn finish(self, tx: &mut Tx) {
        self.emit(tx, None);
        for s in &mut tx.scratch[self.base..tx.used] {
            s.clear();
        }
        tx.used = self.base;
    }

    fn emit(&self, tx: &mut Tx, parent: Option<usize>) {
        for (n, s) in self.plan.inline.iter().enumerate() {
            if s.parent == parent {
                let mark = wire::begin_nested(&mut tx.buf, s.tag);
                tx.buf.extend_from_slice(&tx.scratch[self.base + n]);
                self.emit(tx, Some(n));
                wire::end_nested(&mut tx.buf, mark);
            }
        }
    }
}

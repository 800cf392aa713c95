//! JSON bytes to protobuf without a `serde_json::Value` in between: the schema drives
//! a reader of JSON tokens ([`scan`]), and each value is written to the buffer as it
//! is read (nested lengths patched in, as [`super::encode`] does).
//!
//! A list of stored objects is mostly parsing: a `Value` costs an allocation per
//! string and per map node, which protobuf throws away. Nor does this ride on serde:
//! serde_json's deserializer driving a visitor that does nothing takes three
//! quarters of the time this whole transcoder takes, its reader less than half that.
//!
//! The bytes and errors are those of [`super::encode::message`] on the parsed value,
//! which walks each object in key order (a `serde_json::Map` is sorted) and writes
//! the fields of inline structs (`Volume`'s `VolumeSource`) after the object's own.
//! So here:
//!
//! - an inline struct's fields go to a scratch buffer of their own, appended as its
//!   nested field once the object ends;
//! - a key not after the one before it (unsorted or repeated keys, which a `Map`
//!   would reorder or merge), JSON the reader leaves to serde_json (see [`scan`]), or
//!   an error in an inline struct (where the encoder could have met another error
//!   first) stop the transcoder with [`Stop::Redo`]: the object is then parsed into
//!   a `Value` and encoded, which gives the encoder's bytes or error, or
//!   serde_json's;
//! - any other error is the encoder's if every object of the JSON has its keys in
//!   order (as serde_json writes them, and the server stores them), otherwise the
//!   object is encoded through a `Value` too;
//! - `RawExtension` and `FieldsV1` embed their JSON rewritten compactly, as
//!   serde_json writes a `Value`; the other special types are small: a string goes
//!   to [`super::special::encode`] as a `Value` reused, anything else is parsed.

use std::cell::Cell;
use std::sync::OnceLock;

use serde_json::Value;

use super::error::{Error, Result};
use super::schema::{self, Field, Message, Schema, Special, Type};
use super::wire;

pub(crate) mod scan;
mod value;

use scan::{Scanner, Str, Token};

#[cfg(test)]
mod tests;

/// Appends the message `m` transcoded from the JSON in `json` to `buf` (left as it
/// was on an error).
pub(crate) fn message(m: usize, json: &[u8], buf: &mut Vec<u8>) -> Result<()> {
    let start = buf.len();
    let result = run(json, buf, |tx, sc| {
        let at = sc.offset();
        let token = sc.token()?;
        value::message(tx, sc, m, 0, token, at)
    });
    settle(json, buf, start, result, |value, buf| {
        super::encode::message(schema::schema(), m, value, buf, 0)
    })
}

/// Appends the body (magic and envelope) of the JSON object in `json` to `buf` (left
/// as it was on an error).
pub(crate) fn body(json: &[u8], buf: &mut Vec<u8>) -> Result<()> {
    let start = buf.len();
    let result = run(json, buf, top);
    settle(json, buf, start, result, super::encode_into)
}

/// The outcome of a transcode that wrote `buf` from `start`: its error if the
/// encoder would have met it first (the keys of every object in order), otherwise
/// what `encode` makes of the parsed value.
fn settle(
    json: &[u8],
    buf: &mut Vec<u8>,
    start: usize,
    result: Result<(), Stop>,
    encode: impl FnOnce(&Value, &mut Vec<u8>) -> Result<()>,
) -> Result<()> {
    let stop = match result {
        Ok(()) => return Ok(()),
        Err(stop) => stop,
    };
    buf.truncate(start);
    match stop {
        // Keys out of order further on could override or come before the value at
        // fault, as they would in a `Value`.
        Stop::Invalid(e) if in_order_throughout(json) => Err(*e),
        _ => {
            let value: Value = serde_json::from_slice(json).map_err(not_json)?;
            encode(&value, buf).inspect_err(|_| buf.truncate(start))
        }
    }
}

/// Whether `json` is JSON this reader reads (see [`scan`]) whose every object has
/// its keys in order.
fn in_order_throughout(json: &[u8]) -> bool {
    fn value(sc: &mut Scanner<'_>) -> Result<(), Stop> {
        let mut first = true;
        match sc.token()? {
            Token::Object => {
                let mut prev = None;
                while let Some(key) = sc.next_key(&mut first)? {
                    in_order(prev.as_ref(), &key)?;
                    value(sc)?;
                    prev = Some(key);
                }
            }
            Token::Array => {
                while sc.next_item(&mut first)? {
                    value(sc)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
    let mut sc = Scanner::new(json, 0);
    value(&mut sc).and_then(|()| sc.end()).is_ok()
}

fn not_json(e: serde_json::Error) -> Error {
    Error::invalid(format!("the object is not JSON: {e}"))
}

/// Why a transcode stopped.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The value does not fit the schema. (Boxed: every step returns a `Stop`, which
    /// is best small enough to come back in registers.)
    Invalid(Box<Error>),
    /// The object must be encoded through a `Value` (see the module's notes).
    Redo,
}

impl Stop {
    fn invalid(e: Error) -> Stop {
        Stop::Invalid(Box::new(e))
    }

    /// As [`Error::within`].
    fn within(self, segment: &str) -> Stop {
        match self {
            Stop::Invalid(e) => Stop::invalid(e.within(segment)),
            Stop::Redo => Stop::Redo,
        }
    }

    /// As [`Error::at_index`].
    fn at_index(self, i: usize) -> Stop {
        match self {
            Stop::Invalid(e) => Stop::invalid(e.at_index(i)),
            Stop::Redo => Stop::Redo,
        }
    }
}

/// Runs `transcode` over the JSON in `json`, writing to `buf`; what follows the value
/// must be whitespace.
fn run(
    json: &[u8],
    buf: &mut Vec<u8>,
    transcode: impl FnOnce(&mut Tx, &mut Scanner<'_>) -> Result<(), Stop>,
) -> Result<(), Stop> {
    let (scratch, text) = SPARE.take();
    let mut tx = Tx {
        schema: schema::schema(),
        buf: std::mem::take(buf),
        scratch,
        used: 0,
        text: Value::String(text),
    };
    let mut sc = Scanner::new(json, 0);
    let result = transcode(&mut tx, &mut sc).and_then(|()| sc.end());
    *buf = tx.buf;
    // Left filled by an error.
    for s in &mut tx.scratch[..tx.used] {
        s.clear();
    }
    if let Value::String(text) = tx.text {
        SPARE.set((tx.scratch, text));
    }
    result
}

thread_local! {
    /// [`Tx::scratch`] and [`Tx::text`] between transcodes, so that a list's items
    /// allocate none.
    static SPARE: Cell<(Vec<Vec<u8>>, String)> = const { Cell::new((Vec::new(), String::new())) };
}

/// A transcode in progress.
struct Tx {
    schema: &'static Schema,
    buf: Vec<u8>,
    /// The fields of inline structs so far, a buffer for each: a stack, of which the
    /// objects being written use the first `used` (each [`Object`] its own).
    scratch: Vec<Vec<u8>>,
    used: usize,
    /// A string value, for the special encoders that take a `Value`.
    text: Value,
}

impl Tx {
    /// Writes `v` as serde_json writes it in a `Value` (it cannot fail on a `Vec`).
    fn json<T: serde::Serialize + ?Sized>(&mut self, v: &T) {
        let _ = v.serialize(&mut serde_json::Serializer::new(&mut self.buf));
    }
}

/// Fails with [`Stop::Redo`] unless `key` comes after `prev`, as in a sorted map.
#[inline]
fn in_order(prev: Option<&Str<'_>>, key: &Str<'_>) -> Result<(), Stop> {
    match prev {
        Some(p) if !before(p.bytes(), key.bytes()) => Err(Stop::Redo),
        _ => Ok(()),
    }
}

/// Whether `a` sorts strictly before `b`, as `str`s do; a loop beats a call to
/// `memcmp` on keys this short, which mostly differ in their first byte.
#[inline]
fn before(a: &[u8], b: &[u8]) -> bool {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x < y;
        }
    }
    a.len() < b.len()
}

/// The top-level object of a body: its message is known once `apiVersion` and `kind`
/// are read; the fields before them (a `ConfigMap`'s `binaryData` and `data`) are
/// kept as JSON text and transcoded then.
fn top(tx: &mut Tx, sc: &mut Scanner<'_>) -> Result<(), Stop> {
    if !matches!(sc.token()?, Token::Object) {
        // No kind: the encoder's error, through a `Value`.
        return Err(Stop::Redo);
    }
    let (mut api_version, mut kind) = (None, None);
    let mut pending = Vec::new();
    // The object, and the mark of the envelope's `raw`, once the kind is known.
    let mut open: Option<(Object, usize)> = None;
    let mut prev = None;
    let mut first = true;
    while let Some(key) = sc.next_key(&mut first)? {
        in_order(prev.as_ref(), &key)?;
        if let Some((object, _)) = &mut open {
            object.entry(tx, sc, &key)?;
        } else {
            let depth = sc.depth();
            let text = sc.span()?;
            // The encoder reads a type meta that is not a string as "".
            let string = || match Scanner::new(text, depth).token() {
                Ok(Token::Str(s)) => s,
                _ => Str::Plain(b""),
            };
            match key.as_str() {
                "apiVersion" => api_version = Some(string()),
                "kind" => kind = Some(string()),
                _ => {}
            }
            pending.push((key.clone(), text, depth));
            if let (Some(api_version), Some(kind)) = (&api_version, &kind) {
                open = Some(start(
                    tx,
                    api_version.as_str(),
                    kind.as_str(),
                    &mut pending,
                )?);
            }
        }
        prev = Some(key);
    }
    // No kind (or no apiVersion): the encoder's error, through a `Value`.
    let (object, raw) = open.ok_or(Stop::Redo)?;
    object.finish(tx);
    super::end_envelope(&mut tx.buf, raw);
    Ok(())
}

/// Starts the body of a `kind` in `api_version`: the envelope, then the fields read
/// before the kind was known.
fn start(
    tx: &mut Tx,
    api_version: &str,
    kind: &str,
    pending: &mut Vec<(Str<'_>, &[u8], usize)>,
) -> Result<(Object, usize), Stop> {
    // Unknown, unless a later repeated key changes the kind: the encoder decides.
    let m = tx.schema.message_for(api_version, kind).ok_or(Stop::Redo)?;
    let plan = plan(tx.schema, m);
    if plan.special.is_some() {
        return Err(Stop::Redo);
    }
    let raw = super::begin_envelope(api_version, kind, &mut tx.buf);
    let mut object = Object::new(tx, plan, 0);
    for (key, text, depth) in pending.drain(..) {
        object.entry(tx, &mut Scanner::new(text, depth), &key)?;
    }
    Ok((object, raw))
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
    /// Nowhere: the value is skipped.
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
#[inline]
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
#[inline]
fn prefix(name: &[u8]) -> u64 {
    match name.first_chunk::<8>() {
        Some(first) => u64::from_le_bytes(*first),
        None => name
            .iter()
            .enumerate()
            .fold(0, |p, (i, &b)| p | u64::from(b) << (8 * i)),
    }
}

/// Whether `a` and `b` are the same bytes; a loop beats a call to `memcmp` on names
/// this short.
#[inline]
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

    /// Where `key` goes.
    #[inline]
    fn route(&self, key: &[u8]) -> Route {
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

    /// Writes the field `key` names, its value read from `sc`.
    fn entry(&mut self, tx: &mut Tx, sc: &mut Scanner<'_>, key: &Str<'_>) -> Result<(), Stop> {
        match self.plan.route(key.bytes()) {
            Route::Skip => sc.skip(),
            Route::Own(field) => {
                value::field(tx, sc, field, self.depth).map_err(|s| s.within(key.as_str()))
            }
            Route::Inline(n, field) => {
                let depth = self.depth + self.plan.inline[n].level;
                std::mem::swap(&mut tx.buf, &mut tx.scratch[self.base + n]);
                let result = value::field(tx, sc, field, depth);
                std::mem::swap(&mut tx.buf, &mut tx.scratch[self.base + n]);
                // The encoder writes inline fields after the object's own, so it may
                // have met an error in one of those first: it decides.
                result.map_err(|_| Stop::Redo)
            }
            Route::Many => Err(Stop::Redo),
        }
    }

    /// Appends the inline structs, each a nested field of its parent.
    fn finish(self, tx: &mut Tx) {
        if !self.plan.inline.is_empty() {
            self.emit(tx, None);
        }
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

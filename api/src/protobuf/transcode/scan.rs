//! A JSON reader for the transcoder: tokens straight from the bytes, strings borrowed
//! where they hold no escape.
//!
//! It accepts no more than serde_json does: what it cannot read exactly as serde_json
//! would (a string with escapes, a number with a fraction or exponent, or too long)
//! it hands to serde_json, and anything else it does not expect, or nesting deeper
//! than serde_json allows, stops it with [`Stop::Redo`], so that serde_json parses the
//! whole object and says what is wrong (or reads what this reader was too strict
//! for).

use super::Stop;

/// serde_json's limit: the 128th level of nesting is refused.
const MAX_NESTING: usize = 127;

/// A JSON string.
#[derive(Clone)]
pub(crate) enum Str<'a> {
    /// Written without escapes: as it stands in the input (checked to be UTF-8).
    Plain(&'a [u8]),
    /// Decoded from escapes (by serde_json).
    Escaped(String),
}

impl Str<'_> {
    /// The string's bytes: what protobuf holds, and what keys are looked up by.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Str::Plain(b) => b,
            Str::Escaped(s) => s.as_bytes(),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Str::Plain(b) => text(b),
            Str::Escaped(s) => s,
        }
    }
}

/// The text of bytes the reader read as a string (and so checked are UTF-8: the
/// check is not repeated where only the bytes are needed).
pub(crate) fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

/// A JSON number, as serde_json reads it: a non-negative integer that fits 64 bits, a
/// negative one that fits, or anything else as a double.
#[derive(Clone, Copy)]
pub(crate) enum Num {
    U64(u64),
    I64(i64),
    F64(f64),
}

/// A value's first token; for an object or array, its opening bracket (the caller
/// reads the rest with [`Scanner::next_key`] or [`Scanner::next_item`], or skips it
/// with [`Scanner::skip_rest`]).
pub(crate) enum Token<'a> {
    Null,
    Bool(bool),
    Num(Num),
    Str(Str<'a>),
    Object,
    Array,
}

pub(crate) struct Scanner<'a> {
    json: &'a [u8],
    at: usize,
    /// Objects and arrays open around the reader.
    depth: usize,
}

impl<'a> Scanner<'a> {
    /// A reader of `json`, which sits `depth` objects and arrays deep.
    pub(crate) fn new(json: &'a [u8], depth: usize) -> Self {
        Scanner { json, at: 0, depth }
    }

    pub(crate) fn depth(&self) -> usize {
        self.depth
    }

    /// Skips whitespace (the four bytes JSON allows).
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.json.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    #[inline]
    fn peek(&mut self) -> Result<u8, Stop> {
        self.ws();
        self.json.get(self.at).copied().ok_or(Stop::Redo)
    }

    /// Nothing but whitespace is left.
    pub(crate) fn end(&mut self) -> Result<(), Stop> {
        self.ws();
        if self.at == self.json.len() {
            Ok(())
        } else {
            Err(Stop::Redo)
        }
    }

    /// The next value's first token. Always inlined, as are the other steps that
    /// return a token or a key: returned through memory, they stall the reader on
    /// every value (the caller's wide loads wait for the callee's narrow stores).
    #[inline(always)]
    pub(crate) fn token(&mut self) -> Result<Token<'a>, Stop> {
        Ok(match self.peek()? {
            b'"' => Token::Str(self.string()?),
            b'{' | b'[' => {
                if self.depth == MAX_NESTING {
                    return Err(Stop::Redo);
                }
                self.depth += 1;
                self.at += 1;
                if self.json[self.at - 1] == b'{' {
                    Token::Object
                } else {
                    Token::Array
                }
            }
            b't' => self.literal(b"true", Token::Bool(true))?,
            b'f' => self.literal(b"false", Token::Bool(false))?,
            b'n' => self.literal(b"null", Token::Null)?,
            _ => Token::Num(self.number()?),
        })
    }

    #[inline]
    fn literal(&mut self, word: &[u8], token: Token<'a>) -> Result<Token<'a>, Stop> {
        if self.json[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(token)
        } else {
            Err(Stop::Redo)
        }
    }

    /// The next key of an object whose `{` was read (`first`: no key read yet), or
    /// `None` at its `}`. The key's `:` is read too.
    #[inline(always)]
    pub(crate) fn next_key(&mut self, first: &mut bool) -> Result<Option<Str<'a>>, Stop> {
        match (self.peek()?, *first) {
            (b'}', _) => {
                self.at += 1;
                self.depth -= 1;
                return Ok(None);
            }
            (b',', false) => {
                self.at += 1;
                if self.peek()? != b'"' {
                    return Err(Stop::Redo);
                }
            }
            (b'"', true) => {}
            _ => return Err(Stop::Redo),
        }
        *first = false;
        let key = self.string()?;
        if self.peek()? != b':' {
            return Err(Stop::Redo);
        }
        self.at += 1;
        Ok(Some(key))
    }

    /// Whether an array whose `[` was read has another item (`first`: none read
    /// yet); at its `]`, reads it.
    #[inline]
    pub(crate) fn next_item(&mut self, first: &mut bool) -> Result<bool, Stop> {
        match (self.peek()?, *first) {
            (b']', _) => {
                self.at += 1;
                self.depth -= 1;
                Ok(false)
            }
            (b',', false) => {
                self.at += 1;
                Ok(true)
            }
            (_, true) => {
                *first = false;
                Ok(true)
            }
            _ => Err(Stop::Redo),
        }
    }

    /// Skips the next value.
    pub(crate) fn skip(&mut self) -> Result<(), Stop> {
        let token = self.token()?;
        self.skip_rest(token)
    }

    /// Skips the rest of a value whose first token was `token`.
    pub(crate) fn skip_rest(&mut self, token: Token<'_>) -> Result<(), Stop> {
        let mut first = true;
        match token {
            Token::Object => {
                while self.next_key(&mut first)?.is_some() {
                    self.skip()?;
                }
            }
            Token::Array => {
                while self.next_item(&mut first)? {
                    self.skip()?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The next value's text (its whitespace around left out).
    pub(crate) fn span(&mut self) -> Result<&'a [u8], Stop> {
        self.ws();
        let start = self.at;
        self.skip()?;
        Ok(&self.json[start..self.at])
    }

    /// The text since `start` (an offset from [`Scanner::offset`]).
    pub(crate) fn since(&self, start: usize) -> &'a [u8] {
        &self.json[start..self.at]
    }

    /// How far the reader is (whitespace after the last value not skipped).
    pub(crate) fn position(&self) -> usize {
        self.at
    }

    /// Where the next value starts.
    pub(crate) fn offset(&mut self) -> usize {
        self.ws();
        self.at
    }

    /// A string at its opening quote.
    #[inline(always)]
    fn string(&mut self) -> Result<Str<'a>, Stop> {
        match self.plain() {
            Some(text) => Ok(Str::Plain(text)),
            None => self.escaped(self.at + 1),
        }
    }

    /// A string without escapes at its opening quote, or `None` (nothing read).
    fn plain(&mut self) -> Option<&'a [u8]> {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let json = self.json;
        let start = self.at + 1;
        let mut i = start;
        // Eight bytes at a time while none is a quote, a backslash, a control
        // character or not ASCII (the usual bit tricks: a byte below n in x shows as
        // a high bit in `(x - n) & !x`).
        while let Some(chunk) = json.get(i..).and_then(<[u8]>::first_chunk::<8>) {
            let x = u64::from_le_bytes(*chunk);
            let quote = x ^ (ONES * u64::from(b'"'));
            let backslash = x ^ (ONES * u64::from(b'\\'));
            let special = (quote.wrapping_sub(ONES) & !quote)
                | (backslash.wrapping_sub(ONES) & !backslash)
                | (x.wrapping_sub(ONES * 0x20) & !x)
                | x;
            if special & HIGH != 0 {
                break;
            }
            i += 8;
        }
        let mut ascii = true;
        loop {
            match *json.get(i)? {
                b'"' => break,
                // serde_json refuses control characters in strings.
                b'\\' | 0..=0x1f => return None,
                byte => {
                    ascii &= byte.is_ascii();
                    i += 1;
                }
            }
        }
        let bytes = &json[start..i];
        if !ascii {
            std::str::from_utf8(bytes).ok()?;
        }
        self.at = i + 1;
        Some(bytes)
    }

    /// A string with escapes (or not a string) from after its opening quote:
    /// decoded by serde_json.
    #[cold]
    fn escaped(&mut self, start: usize) -> Result<Str<'a>, Stop> {
        let mut i = start;
        loop {
            match self.json.get(i) {
                Some(b'"') => break,
                Some(b'\\') => i += 2,
                Some(_) => i += 1,
                None => return Err(Stop::Redo),
            }
        }
        let text: String =
            serde_json::from_slice(&self.json[start - 1..=i]).map_err(|_| Stop::Redo)?;
        self.at = i + 1;
        Ok(Str::Escaped(text))
    }

    /// A number: integers here, as serde_json reads them; others by serde_json.
    fn number(&mut self) -> Result<Num, Stop> {
        let start = self.at;
        let negative = self.json[self.at] == b'-';
        if negative {
            self.at += 1;
        }
        let mut n: u64 = match self.json.get(self.at) {
            Some(b'0') => {
                self.at += 1;
                0
            }
            Some(&d @ b'1'..=b'9') => {
                self.at += 1;
                u64::from(d - b'0')
            }
            _ => return Err(Stop::Redo),
        };
        while let Some(&d @ b'0'..=b'9') = self.json.get(self.at) {
            if n == 0 {
                // A leading zero, which serde_json refuses.
                return Err(Stop::Redo);
            }
            match n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(d - b'0')))
            {
                Some(more) => n = more,
                None => return self.by_serde(start),
            }
            self.at += 1;
        }
        if let Some(b'.' | b'e' | b'E') = self.json.get(self.at) {
            return self.by_serde(start);
        }
        Ok(if !negative {
            Num::U64(n)
        } else {
            // As serde_json: a double for -0 and below i64::MIN.
            match (n as i64).wrapping_neg() {
                i if i >= 0 => Num::F64(-(n as f64)),
                i => Num::I64(i),
            }
        })
    }

    /// The number starting at `start`, read by serde_json.
    fn by_serde(&mut self, start: usize) -> Result<Num, Stop> {
        let mut end = start;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.json.get(end) {
            end += 1;
        }
        let n: serde_json::Number =
            serde_json::from_slice(&self.json[start..end]).map_err(|_| Stop::Redo)?;
        self.at = end;
        Ok(match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Num::U64(u),
            (_, Some(i), _) => Num::I64(i),
            (_, _, Some(f)) => Num::F64(f),
            _ => return Err(Stop::Redo),
        })
    }
}

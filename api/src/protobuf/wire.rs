//! The protobuf wire format: varints, tags and length-delimited values, read from a
//! byte slice without trusting any length in it.

use super::error::{Error, Result};

/// Wire type of varints (`int32`, `int64`, `bool`).
pub(crate) const VARINT: u8 = 0;
/// Wire type of 64-bit fixed values (`double`).
pub(crate) const FIXED64: u8 = 1;
/// Wire type of length-delimited values (strings, bytes, messages, map entries).
pub(crate) const LEN: u8 = 2;
/// Wire type of 32-bit fixed values (`float`, not used by Kubernetes).
pub(crate) const FIXED32: u8 = 5;

/// Appends `v` as a varint.
#[inline]
pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// How many bytes `v` takes as a varint.
#[inline]
pub(crate) fn varint_len(v: u64) -> usize {
    // 1 byte per started 7 bits, at least one.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends a field key.
#[inline]
pub(crate) fn put_key(buf: &mut Vec<u8>, tag: u32, wire_type: u8) {
    put_varint(buf, (u64::from(tag) << 3) | u64::from(wire_type));
}

/// Appends a length-delimited field with `bytes` as its value.
#[inline]
pub(crate) fn put_bytes(buf: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    put_key(buf, tag, LEN);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// Starts a length-delimited field whose value is written next; [`end_nested`] with
/// the returned mark writes its length. One byte is reserved for the length, the
/// value is moved right only when it is 128 bytes or longer, so nesting costs a copy
/// of each large value per level, never a second encoding.
#[inline]
pub(crate) fn begin_nested(buf: &mut Vec<u8>, tag: u32) -> usize {
    put_key(buf, tag, LEN);
    buf.push(0);
    buf.len()
}

/// Ends a value started by [`begin_nested`].
#[inline]
pub(crate) fn end_nested(buf: &mut Vec<u8>, mark: usize) {
    let len = buf.len() - mark;
    if len < 0x80 {
        buf[mark - 1] = len as u8;
        return;
    }
    let width = varint_len(len as u64);
    let end = buf.len();
    buf.resize(end + width - 1, 0);
    buf.copy_within(mark..end, mark + width - 1);
    let mut v = len as u64;
    for byte in &mut buf[mark - 1..mark - 1 + width] {
        *byte = (v as u8 & 0x7f) | if v >= 0x80 { 0x80 } else { 0 };
        v >>= 7;
    }
}

/// A cursor over a message's bytes.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.at >= self.bytes.len()
    }

    pub(crate) fn varint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for shift in 0..10 {
            let Some(&b) = self.bytes.get(self.at) else {
                return Err(Error::Truncated {
                    path: String::new(),
                });
            };
            self.at += 1;
            v |= u64::from(b & 0x7f) << (shift * 7);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Error::BadVarint {
            path: String::new(),
        })
    }

    /// A field key: (field number, wire type).
    pub(crate) fn key(&mut self) -> Result<(u64, u8)> {
        let k = self.varint()?;
        Ok((k >> 3, (k & 7) as u8))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(Error::Truncated {
                path: String::new(),
            })?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    /// A length-delimited value.
    pub(crate) fn len_delimited(&mut self) -> Result<&'a [u8]> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| Error::Truncated {
            path: String::new(),
        })?;
        self.take(n)
    }

    pub(crate) fn fixed64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Skips a value of `wire_type`.
    pub(crate) fn skip(&mut self, wire_type: u8) -> Result<()> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.len_delimited().map(drop),
            FIXED32 => self.take(4).map(drop),
            other => Err(Error::UnsupportedWireType {
                path: String::new(),
                wire_type: other,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_every_width() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), varint_len(v), "{v}");
            assert_eq!(Reader::new(&buf).varint().unwrap(), v);
        }
    }

    #[test]
    fn nested_lengths_are_patched_in_place() {
        for len in [0usize, 5, 127, 128, 200, 20_000, 3_000_000] {
            let mut buf = vec![9];
            let mark = begin_nested(&mut buf, 2);
            buf.extend(std::iter::repeat_n(7u8, len));
            end_nested(&mut buf, mark);
            let mut r = Reader::new(&buf[1..]);
            assert_eq!(r.key().unwrap(), (2, LEN));
            let value = r.len_delimited().unwrap();
            assert_eq!(value.len(), len);
            assert!(value.iter().all(|&b| b == 7));
            assert!(r.is_empty());
        }
    }

    #[test]
    fn lengths_past_the_input_are_refused() {
        let mut r = Reader::new(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1]);
        assert_eq!(r.key().unwrap(), (1, LEN));
        assert!(matches!(r.len_delimited(), Err(Error::Truncated { .. })));
        let mut r = Reader::new(&[0xff; 11]);
        assert!(matches!(r.varint(), Err(Error::BadVarint { .. })));
    }
}

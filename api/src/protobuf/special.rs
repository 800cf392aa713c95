//! apimachinery's types whose JSON is not an object of their protobuf fields: times,
//! durations, int-or-strings, quantities, embedded raw JSON and verb lists. Each
//! encoder writes the message's fields (its caller writes the tag and length); each
//! decoder reads them back (`None`: the JSON field is left out, as Go leaves out a
//! zero `Time`).

use serde_json::Value;

use super::error::{Error, Result};
use super::schema::Special;
use super::wire::{self, LEN, Reader, VARINT};

/// Writes the fields of a `special` message holding `v`.
pub(crate) fn encode(special: Special, v: &Value, buf: &mut Vec<u8>) -> Result<()> {
    match special {
        // Needs the schema: written by the message encoder.
        Special::Either => return Err(Error::invalid("a schema-or-value needs its schema")),
        Special::Time | Special::MicroTime => {
            let s = v
                .as_str()
                .ok_or_else(|| Error::invalid(format!("{v} is not an RFC 3339 time")))?;
            let (seconds, nanos) = match utc_time(s) {
                Some(t) => t,
                None => {
                    let t: jiff::Timestamp = s
                        .parse()
                        .map_err(|_| Error::invalid(format!("{s:?} is not an RFC 3339 time")))?;
                    go_timestamp(t)
                }
            };
            // Go's Timestamp leaves zero fields out (proto3 rules).
            if seconds != 0 {
                wire::put_key(buf, 1, VARINT);
                wire::put_varint(buf, seconds as u64);
            }
            if nanos != 0 {
                wire::put_key(buf, 2, VARINT);
                wire::put_varint(buf, i64::from(nanos) as u64);
            }
        }
        Special::Duration => {
            let s = v
                .as_str()
                .ok_or_else(|| Error::invalid(format!("{v} is not a duration")))?;
            let nanos = parse_go_duration(s)?;
            wire::put_key(buf, 1, VARINT);
            wire::put_varint(buf, nanos as u64);
        }
        Special::IntOrString => match v {
            Value::Number(n) => {
                let i = n
                    .as_i64()
                    .and_then(|i| i32::try_from(i).ok())
                    .ok_or_else(|| Error::invalid(format!("{n} is not a 32-bit integer")))?;
                wire::put_key(buf, 1, VARINT);
                wire::put_varint(buf, 0);
                wire::put_key(buf, 2, VARINT);
                wire::put_varint(buf, i64::from(i) as u64);
            }
            Value::String(s) => {
                wire::put_key(buf, 1, VARINT);
                wire::put_varint(buf, 1);
                wire::put_bytes(buf, 3, s.as_bytes());
            }
            other => {
                return Err(Error::invalid(format!(
                    "{other} is neither an integer nor a string"
                )));
            }
        },
        Special::Quantity => match v {
            Value::String(s) => wire::put_bytes(buf, 1, s.as_bytes()),
            Value::Number(n) => wire::put_bytes(buf, 1, n.to_string().as_bytes()),
            other => return Err(Error::invalid(format!("{other} is not a quantity"))),
        },
        Special::Raw => {
            let mark = wire::begin_nested(buf, 1);
            serde_json::to_writer(&mut *buf, v).map_err(|e| Error::invalid(e.to_string()))?;
            wire::end_nested(buf, mark);
        }
        Special::Verbs => {
            let items = v
                .as_array()
                .ok_or_else(|| Error::invalid(format!("{v} is not a list of verbs")))?;
            for (i, item) in items.iter().enumerate() {
                let s = item
                    .as_str()
                    .ok_or_else(|| Error::invalid(format!("{item} is not a verb")).at_index(i))?;
                wire::put_bytes(buf, 1, s.as_bytes());
            }
        }
    }
    Ok(())
}

/// Reads a `special` message back into its JSON value. `embedded` decodes a raw value
/// that is itself a protobuf object (`k8s\0...`), as a watch event's object is.
pub(crate) fn decode(
    special: Special,
    bytes: &[u8],
    embedded: &mut dyn FnMut(&[u8]) -> Result<Value>,
) -> Result<Option<Value>> {
    let mut r = Reader::new(bytes);
    match special {
        // Read by the message decoder, which has the schema.
        Special::Either => Ok(None),
        Special::Time | Special::MicroTime => {
            if bytes.is_empty() {
                return Ok(None);
            }
            let (mut seconds, mut nanos) = (0i64, 0i64);
            while !r.is_empty() {
                match r.key()? {
                    (1, VARINT) => seconds = r.varint()? as i64,
                    (2, VARINT) => nanos = i64::from(r.varint()? as i32),
                    (_, wt) => r.skip(wt)?,
                }
            }
            let t = jiff::Timestamp::new(seconds, nanos as i32)
                .map_err(|_| Error::invalid(format!("{seconds}s {nanos}ns is not a time")))?;
            let text = if special == Special::Time {
                t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
            } else {
                format!(
                    "{}.{:06}Z",
                    t.strftime("%Y-%m-%dT%H:%M:%S"),
                    t.subsec_nanosecond() / 1000
                )
            };
            Ok(Some(Value::String(text)))
        }
        Special::Duration => {
            let mut nanos = 0i64;
            while !r.is_empty() {
                match r.key()? {
                    (1, VARINT) => nanos = r.varint()? as i64,
                    (_, wt) => r.skip(wt)?,
                }
            }
            Ok(Some(Value::String(format_go_duration(nanos))))
        }
        Special::IntOrString => {
            let (mut ty, mut int, mut text) = (0u64, 0i32, String::new());
            while !r.is_empty() {
                match r.key()? {
                    (1, VARINT) => ty = r.varint()?,
                    (2, VARINT) => int = r.varint()? as i32,
                    (3, LEN) => text = utf8(r.len_delimited()?)?,
                    (_, wt) => r.skip(wt)?,
                }
            }
            Ok(Some(if ty == 1 {
                Value::String(text)
            } else {
                Value::from(int)
            }))
        }
        Special::Quantity => {
            let mut text = String::new();
            while !r.is_empty() {
                match r.key()? {
                    (1, LEN) => text = utf8(r.len_delimited()?)?,
                    (_, wt) => r.skip(wt)?,
                }
            }
            Ok(Some(Value::String(text)))
        }
        Special::Raw => {
            let mut raw: &[u8] = &[];
            while !r.is_empty() {
                match r.key()? {
                    (1, LEN) => raw = r.len_delimited()?,
                    (_, wt) => r.skip(wt)?,
                }
            }
            if raw.is_empty() {
                return Ok(None);
            }
            if raw.starts_with(super::MAGIC) {
                return embedded(raw).map(Some);
            }
            serde_json::from_slice(raw)
                .map(Some)
                .map_err(|e| Error::invalid(format!("the embedded object is not JSON: {e}")))
        }
        Special::Verbs => {
            let mut items = Vec::new();
            while !r.is_empty() {
                match r.key()? {
                    (1, LEN) => items.push(Value::String(utf8(r.len_delimited()?)?)),
                    (_, wt) => r.skip(wt)?,
                }
            }
            Ok(Some(Value::Array(items)))
        }
    }
}

/// `t` as protobuf's `Timestamp` holds it: nanoseconds never negative (jiff counts a
/// time before 1970 as a negative fraction of the second after it).
fn go_timestamp(t: jiff::Timestamp) -> (i64, i32) {
    let (seconds, nanos) = (t.as_second(), t.subsec_nanosecond());
    if nanos < 0 {
        (seconds - 1, nanos + 1_000_000_000)
    } else {
        (seconds, nanos)
    }
}

/// The time of the form every Kubernetes server writes, `2006-01-02T15:04:05Z` with an
/// optional fraction, as (seconds, nanoseconds) since the epoch, without a general
/// RFC 3339 parser; `None` for any other form (offsets, leap seconds), which jiff reads.
fn utc_time(s: &str) -> Option<(i64, i32)> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        b.get(r)?.iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' || !matches!(b[b.len() - 1], b'Z' | b'z') {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let nanos = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', frac @ ..] if (1..=9).contains(&frac.len()) => {
            let n = digits(20..20 + frac.len())?;
            n * 10i64.pow(9 - frac.len() as u32)
        }
        _ => return None,
    };
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=days_in_month).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days from 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((
        days * 86_400 + hour * 3600 + minute * 60 + second,
        nanos as i32,
    ))
}

/// `bytes` as a string, or an error.
pub(crate) fn utf8(bytes: &[u8]) -> Result<String> {
    std::str::from_utf8(bytes)
        .map(str::to_string)
        .map_err(|_| Error::invalid("the text is not UTF-8"))
}

/// Parses a Go duration (`1m30s`, `-1.5h`, `0`) into nanoseconds.
fn parse_go_duration(s: &str) -> Result<i64> {
    let (negative, unsigned) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let d = crate::duration::parse_duration(unsigned).map_err(Error::invalid)?;
    let nanos = i64::try_from(d.as_nanos())
        .map_err(|_| Error::invalid(format!("{s:?} is longer than Go's durations")))?;
    Ok(if negative { -nanos } else { nanos })
}

/// Formats nanoseconds as Go's `time.Duration.String` does: `1h2m3.5s`, `1.5ms`,
/// `0s`.
pub(crate) fn format_go_duration(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n == 0 {
        return "0s".to_string();
    }
    // Below a second: one unit, with a fraction.
    let fraction = |value: u64, unit: u64| {
        let (whole, rest) = (value / unit, value % unit);
        let digits = unit.ilog10() as usize;
        let mut f = format!("{rest:0digits$}");
        while f.ends_with('0') {
            f.pop();
        }
        if f.is_empty() {
            whole.to_string()
        } else {
            format!("{whole}.{f}")
        }
    };
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}µs", fraction(n, 1_000));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}ms", fraction(n, 1_000_000));
    }
    let seconds = fraction(n % 60_000_000_000, 1_000_000_000);
    let minutes = n / 60_000_000_000;
    match (minutes / 60, minutes % 60) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(special: Special, v: Value) -> Option<Value> {
        let mut buf = Vec::new();
        encode(special, &v, &mut buf).unwrap();
        decode(special, &buf, &mut |_| Ok(Value::Null)).unwrap()
    }

    #[test]
    fn durations_print_as_go_prints_them() {
        for (nanos, text) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (1_500_000, "1.5ms"),
            (1_000_000_000, "1s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (5_430_500_000_000, "1h30m30.5s"),
            (-2_000_000_000, "-2s"),
        ] {
            assert_eq!(format_go_duration(nanos), text);
            assert_eq!(parse_go_duration(text).unwrap(), nanos, "{text}");
        }
    }

    #[test]
    fn special_values_round_trip_through_their_messages() {
        let t = json!("2024-05-06T07:08:09Z");
        assert_eq!(round_trip(Special::Time, t.clone()), Some(t));
        let micro = json!("2024-05-06T07:08:09.123456Z");
        assert_eq!(round_trip(Special::MicroTime, micro.clone()), Some(micro));
        assert_eq!(
            round_trip(Special::IntOrString, json!(8080)),
            Some(json!(8080))
        );
        assert_eq!(
            round_trip(Special::IntOrString, json!("http")),
            Some(json!("http"))
        );
        assert_eq!(
            round_trip(Special::Quantity, json!("500m")),
            Some(json!("500m"))
        );
        let raw = json!({"a": [1, "b"]});
        assert_eq!(round_trip(Special::Raw, raw.clone()), Some(raw));
        assert_eq!(
            round_trip(Special::Duration, json!("1m30s")),
            Some(json!("1m30s"))
        );
        let verbs = json!(["get", "list"]);
        assert_eq!(round_trip(Special::Verbs, verbs.clone()), Some(verbs));
        // A zero time is an empty message, and no JSON field.
        assert_eq!(
            decode(Special::Time, &[], &mut |_| Ok(Value::Null)).unwrap(),
            None
        );
    }

    #[test]
    fn the_fast_time_reader_agrees_with_jiff() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2024-02-29T23:59:59Z",
            "2025-03-04T05:06:07.123456Z",
            "1969-12-31T23:59:59.5Z",
            "2100-03-01T00:00:00Z",
            "0001-01-01T00:00:00Z",
        ] {
            let t: jiff::Timestamp = s.parse().unwrap();
            assert_eq!(utc_time(s), Some(go_timestamp(t)), "{s}");
        }
        for s in [
            "2023-02-29T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00+01:00",
            "2024-01-01",
        ] {
            assert_eq!(utc_time(s), None, "{s}");
        }
    }

    #[test]
    fn values_of_the_wrong_shape_are_refused() {
        let mut buf = Vec::new();
        assert!(encode(Special::Time, &json!("yesterday"), &mut buf).is_err());
        assert!(encode(Special::IntOrString, &json!(1u64 << 40), &mut buf).is_err());
        assert!(encode(Special::IntOrString, &json!(true), &mut buf).is_err());
        assert!(encode(Special::Duration, &json!("5"), &mut buf).is_err());
    }
}

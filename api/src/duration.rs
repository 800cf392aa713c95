//! Durations written as Kubernetes' command lines take them (`90s`, `5m`, `1h30m`,
//! `500ms`, `1.5h`): Go's `time.ParseDuration`, which kubectl, kube-apiserver and the
//! kubelet use for every duration flag. One parser, so that every rk8s binary takes
//! the same spellings.

use std::time::Duration;

/// Go's units, in nanoseconds (`time.ParseDuration` takes both micro signs).
const UNITS: [(&str, u64); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
];

/// Go's limit: a duration is an `int64` of nanoseconds (about 292 years).
const MAX_NANOS: u128 = i64::MAX as u128;

/// Parses `s` as Go's `time.ParseDuration` does: a sequence of decimal numbers, each
/// with an optional fraction and a unit (`ns`, `us`, `ms`, `s`, `m`, `h`), such as
/// `300ms` or `1h30m`, and a bare `0` (flags such as `token create --ttl 0` give 0 a
/// meaning of its own). A negative duration is refused: no flag here takes one.
/// The error is a sentence for a command line (clap's `value_parser` shows it).
///
/// ```
/// use std::time::Duration;
/// use rk8s_api::duration::parse_duration;
///
/// assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
/// assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert!(parse_duration("5").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let invalid = |why: &str| format!("{s:?} is not a duration such as 30s, 5m or 1h30m: {why}");
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid("it is empty"));
    }
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let digits = |t: &str| t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let int_len = digits(rest);
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(f) => f.split_at(digits(f)),
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(invalid("expected a number"));
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(invalid("a number has no unit (ns, us, ms, s, m, h)"));
        }
        let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(invalid(&format!(
                "unknown unit {unit:?} (ns, us, ms, s, m, h)"
            )));
        };
        let too_long = || invalid("it is longer than 292 years");
        let whole = int
            .parse::<u128>()
            .ok()
            .or(int.is_empty().then_some(0))
            .ok_or_else(too_long)?;
        // Digits past the nineteenth cannot change a count of nanoseconds.
        let frac = &frac[..frac.len().min(19)];
        let fraction = match frac {
            "" => 0,
            f => f.parse::<u128>().unwrap_or(0) * u128::from(scale) / 10u128.pow(f.len() as u32),
        };
        nanos = whole
            .checked_mul(u128::from(scale))
            .and_then(|n| n.checked_add(fraction))
            .and_then(|n| n.checked_add(nanos))
            .filter(|n| *n <= MAX_NANOS)
            .ok_or_else(too_long)?;
        rest = after;
    }
    if negative && nanos > 0 {
        return Err(format!("{s:?} must not be negative"));
    }
    let secs = (nanos / 1_000_000_000) as u64;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use proptest::prelude::*;
    use std::time::Duration;

    proptest! {
        #[test]
        fn every_unit_adds_up(h in 0u64..1000, m in 0u64..1000, s in 0u64..1000, ms in 0u64..1000, ns in 0u64..1_000_000) {
            let text = format!("{h}h{m}m{s}s{ms}ms{ns}ns");
            let want = Duration::from_secs(h * 3600 + m * 60 + s)
                + Duration::from_millis(ms)
                + Duration::from_nanos(ns);
            prop_assert_eq!(parse_duration(&text), Ok(want));
        }

        #[test]
        fn a_fraction_is_the_same_as_the_next_unit_down(whole in 0u64..10_000, tenths in 0u64..10) {
            let text = format!("{whole}.{tenths}m");
            prop_assert_eq!(parse_duration(&text), Ok(Duration::from_secs(whole * 60 + tenths * 6)));
        }
    }

    #[test]
    fn go_durations_parse_as_kubectl_parses_them() {
        for (text, want) in [
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("-0", Duration::ZERO),
            ("+5s", Duration::from_secs(5)),
            ("90s", Duration::from_secs(90)),
            ("5m", Duration::from_secs(300)),
            ("1h30m", Duration::from_secs(5400)),
            ("1h0m0s", Duration::from_secs(3600)),
            ("500ms", Duration::from_millis(500)),
            ("1.5s", Duration::from_millis(1500)),
            (".5m", Duration::from_secs(30)),
            ("2.s", Duration::from_secs(2)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("1.000000001s", Duration::new(1, 1)),
            ("2562047h", Duration::from_secs(2_562_047 * 3600)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn malformed_durations_say_what_is_wrong() {
        for (text, why) in [
            ("", "empty"),
            ("5", "no unit"),
            ("5 minutes", "unknown unit \" minutes\""),
            ("5d", "unknown unit \"d\""),
            ("s", "expected a number"),
            (".s", "expected a number"),
            ("1h-5m", "unknown unit \"h-\""),
            ("-5m", "must not be negative"),
            ("2562048h", "longer than 292 years"),
            (
                "99999999999999999999999999999999999999999h",
                "longer than 292 years",
            ),
        ] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.contains(&format!("{text:?}")), "{text}: {err}");
        }
    }
}

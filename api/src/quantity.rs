//! Resource quantities (`500m`, `1.5`, `128974848`, `129M`, `123Mi`, `1e3`), parsed,
//! compared, added and printed exactly as Kubernetes does
//! (`k8s.io/apimachinery/pkg/api/resource`), without floating point.
//!
//! ```
//! use rk8s_api::quantity::Quantity;
//!
//! let q: Quantity = "1.5Gi".parse()?;
//! assert_eq!(q.to_string(), "1536Mi");
//! assert_eq!(q.value(), 1_610_612_736);
//! assert!(q > "1G".parse()?);
//! # Ok::<(), rk8s_api::quantity::QuantityError>(())
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// How a quantity is written, remembered from parsing and used again when printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Powers of ten with SI suffixes (`m`, `k`, `M`, …) or none.
    DecimalSI,
    /// Powers of 1024 (`Ki`, `Mi`, …).
    BinarySI,
    /// Scientific notation (`1e3`, `5E-3`).
    DecimalExponent,
}

/// A quantity that could not be parsed or represented.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text is not `<signed number><suffix>`.
    #[error("\"{0}\" is not a quantity")]
    Invalid(String),
    /// More significant digits than rk8s keeps exactly.
    #[error("\"{0}\" has more than {MAX_DIGITS} significant digits")]
    TooPrecise(String),
    /// An exponent too large to work with.
    #[error("\"{0}\" is out of range")]
    OutOfRange(String),
}

/// Most significant digits kept (an `i128` holds 38 decimal digits).
pub const MAX_DIGITS: usize = 38;
/// Largest power of ten accepted.
pub const MAX_EXPONENT: i64 = 10_000;
/// Kubernetes caps binary quantities at 2^63-1 ("the max is just a simple cap").
const MAX_BINARY: i128 = i64::MAX as i128;
/// Everything is rounded up to a precision of 10^-9 ("nano"), as Kubernetes does.
const NANO: i32 = -9;

/// An exact quantity: `mantissa × 10^exponent`, kept normalised (no trailing zeros in
/// the mantissa; zero is `0 × 10^0`), plus the format it was written in.
///
/// Equality, ordering and hashing look only at the value: `1k == 1000 == 1e3`.
#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    mantissa: i128,
    exponent: i32,
    format: Format,
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

/// `m × 10^e` rounded away from zero to a multiple of 10^-9.
fn round_up_to_nano(m: i128, e: i32) -> (i128, i32) {
    if e >= NANO || m == 0 {
        return (m, e);
    }
    let drop = (NANO - e) as u32;
    match pow10(drop) {
        Some(div) => {
            let q = m / div;
            if m % div == 0 {
                (q, NANO)
            } else {
                (q + m.signum(), NANO)
            }
        }
        // Everything is below a nano: the smallest non-zero amount.
        None => (m.signum(), NANO),
    }
}

fn normalize(mut m: i128, mut e: i32) -> (i128, i32) {
    if m == 0 {
        return (0, 0);
    }
    while m % 10 == 0 {
        m /= 10;
        e += 1;
    }
    (m, e)
}

fn decimal_suffix(exp: i32) -> Option<&'static str> {
    Some(match exp {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        _ => return None,
    })
}

const BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

impl Quantity {
    /// An integer quantity in the decimal SI format.
    pub fn from_i64(v: i64) -> Self {
        Self::from_parts(v.into(), 0, Format::DecimalSI)
    }

    /// `v / 1000`, the way CPU is counted (`250` → `250m`).
    pub fn from_milli(v: i64) -> Self {
        Self::from_parts(v.into(), -3, Format::DecimalSI)
    }

    /// A byte count in the binary SI format (printed as `Ki`, `Mi`, … when exact).
    pub fn from_bytes(v: i64) -> Self {
        Self::from_parts(v.into(), 0, Format::BinarySI)
    }

    fn from_parts(m: i128, e: i32, format: Format) -> Self {
        let (m, e) = round_up_to_nano(m, e);
        let (mantissa, exponent) = normalize(m, e);
        Quantity {
            mantissa,
            exponent,
            format,
        }
    }

    /// The format it prints in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether it is zero.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// -1, 0 or 1.
    pub fn signum(&self) -> i32 {
        self.mantissa.signum() as i32
    }

    /// The value in units of 10^`scale`, rounded away from zero, saturating at the
    /// bounds of `i64` (Kubernetes' `ScaledValue`).
    pub fn scaled_value(&self, scale: i32) -> i64 {
        let shift = i64::from(self.exponent) - i64::from(scale);
        let saturated = if self.mantissa < 0 {
            i64::MIN
        } else {
            i64::MAX
        };
        let v = if shift >= 0 {
            match u32::try_from(shift).ok().and_then(pow10) {
                Some(p) => self.mantissa.checked_mul(p),
                None => None,
            }
        } else {
            match u32::try_from(-shift).ok().and_then(pow10) {
                Some(div) => {
                    let q = self.mantissa / div;
                    Some(if self.mantissa % div == 0 {
                        q
                    } else {
                        q + self.mantissa.signum()
                    })
                }
                None => Some(self.mantissa.signum()),
            }
        };
        v.and_then(|v| i64::try_from(v).ok()).unwrap_or(saturated)
    }

    /// The value as an integer, rounded away from zero (Kubernetes' `Value`): bytes for
    /// memory, whole cores for CPU.
    pub fn value(&self) -> i64 {
        self.scaled_value(0)
    }

    /// The value in thousandths, rounded away from zero (Kubernetes' `MilliValue`):
    /// millicores for CPU.
    pub fn milli_value(&self) -> i64 {
        self.scaled_value(-3)
    }

    /// The value as a float, for display and ratios only (HPA utilisation).
    pub fn as_f64(&self) -> f64 {
        format!("{}e{}", self.mantissa, self.exponent)
            .parse()
            .unwrap_or(f64::NAN)
    }

    /// Aligns two quantities to the same exponent, or `None` on overflow.
    fn aligned(&self, other: &Self) -> Option<(i128, i128, i32)> {
        let e = self.exponent.min(other.exponent);
        let scale = |q: &Self| {
            u32::try_from(q.exponent - e)
                .ok()
                .and_then(pow10)
                .and_then(|p| q.mantissa.checked_mul(p))
        };
        Some((scale(self)?, scale(other)?, e))
    }

    /// `self + other` exactly, keeping `self`'s format; `None` on overflow.
    pub fn checked_add(&self, other: &Self) -> Option<Self> {
        let (a, b, e) = self.aligned(other)?;
        Some(Self::from_parts(a.checked_add(b)?, e, self.format))
    }

    /// `self - other` exactly, keeping `self`'s format; `None` on overflow.
    pub fn checked_sub(&self, other: &Self) -> Option<Self> {
        let (a, b, e) = self.aligned(other)?;
        Some(Self::from_parts(a.checked_sub(b)?, e, self.format))
    }

    /// `self × n` exactly; `None` on overflow.
    pub fn checked_mul(&self, n: i64) -> Option<Self> {
        Some(Self::from_parts(
            self.mantissa.checked_mul(n.into())?,
            self.exponent,
            self.format,
        ))
    }

    /// The canonical text Kubernetes would print: the largest suffix (or exponent, a
    /// multiple of 3) that keeps the number whole and loses nothing.
    ///
    /// One deliberate difference: Kubernetes rounds a fractional binary quantity up to
    /// a whole number (`1.1Ki` → `1127`), which loses the exact value; rk8s prints it in
    /// decimal instead (`1126400m`), as the TODO in Kubernetes' `CanonicalizeBytes`
    /// proposes. Parsing the printed text always gives back the same value.
    pub fn canonical(&self) -> String {
        let mut format = self.format;
        if format == Format::BinarySI
            && (self.exponent < 0 || (-1024 < self.mantissa && self.mantissa < 1024))
        {
            format = Format::DecimalSI;
        }
        if format == Format::BinarySI {
            if let Some(mut n) = u32::try_from(self.exponent)
                .ok()
                .and_then(pow10)
                .and_then(|p| self.mantissa.checked_mul(p))
            {
                let mut k = 0;
                while k < 6 && n % 1024 == 0 {
                    n /= 1024;
                    k += 1;
                }
                return format!("{n}{}", BINARY_SUFFIXES[k]);
            }
            format = Format::DecimalSI;
        }
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let mut digits = self.mantissa.unsigned_abs().to_string();
        let mut e = self.exponent;
        while e.rem_euclid(3) != 0 {
            digits.push('0');
            e -= 1;
        }
        match format {
            Format::DecimalExponent if e == 0 => format!("{sign}{digits}"),
            Format::DecimalExponent => format!("{sign}{digits}e{e}"),
            _ => {
                while e > 18 {
                    digits.push_str("000");
                    e -= 3;
                }
                match decimal_suffix(e) {
                    Some(s) => format!("{sign}{digits}{s}"),
                    None => format!("{sign}{digits}e{e}"),
                }
            }
        }
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    /// Parses `<signedNumber><suffix>` as Kubernetes' `ParseQuantity` does, including
    /// rounding up to 1n and capping binary quantities at 2^63-1.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || QuantityError::Invalid(s.to_string());
        let (negative, rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let number_len = rest
            .bytes()
            .position(|b| !(b.is_ascii_digit() || b == b'.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_len);
        let (int, frac) = match number.split_once('.') {
            Some((i, f)) => (i, f),
            None => (number, ""),
        };
        if frac.contains('.') || (int.is_empty() && frac.is_empty()) {
            return Err(invalid());
        }
        let (base2, suffix_exp, format) = match suffix {
            "" => (false, 0, Format::DecimalSI),
            "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
                let k = BINARY_SUFFIXES
                    .iter()
                    .position(|x| *x == suffix)
                    .unwrap_or(0);
                (true, 10 * k as i64, Format::BinarySI)
            }
            s if s.len() > 1 && s.starts_with(['e', 'E']) => {
                let exp = &s[1..];
                let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid());
                }
                let e: i64 = exp
                    .parse()
                    .map_err(|_| QuantityError::OutOfRange(s.to_string()))?;
                (false, e, Format::DecimalExponent)
            }
            s => match (-9..=18).step_by(3).find(|e| decimal_suffix(*e) == Some(s)) {
                Some(e) => (false, i64::from(e), Format::DecimalSI),
                None => return Err(invalid()),
            },
        };

        // The digits without leading or trailing zeros, and their power of ten.
        let all: String = format!("{int}{frac}");
        let trimmed = all.trim_start_matches('0');
        let significant = trimmed.trim_end_matches('0');
        let mut exp10 = (trimmed.len() - significant.len()) as i64 - frac.len() as i64;
        let mut digits = significant.to_string();
        if digits.is_empty() {
            return Ok(Quantity {
                mantissa: 0,
                exponent: 0,
                format,
            });
        }
        if !base2 {
            exp10 = exp10.saturating_add(suffix_exp);
            // Round up to nano on the text, so that long fractions need no big integers.
            if exp10 < i64::from(NANO) {
                let drop = (i64::from(NANO) - exp10) as usize;
                digits = if drop >= digits.len() {
                    "1".to_string()
                } else {
                    digits.truncate(digits.len() - drop);
                    increment_decimal(&digits)
                };
                exp10 = i64::from(NANO);
            }
        }
        if !(-MAX_EXPONENT..=MAX_EXPONENT).contains(&exp10) {
            return Err(QuantityError::OutOfRange(s.to_string()));
        }
        if digits.len() > MAX_DIGITS {
            return Err(QuantityError::TooPrecise(s.to_string()));
        }
        let mut m: i128 = digits.parse().map_err(|_| invalid())?;
        if negative {
            m = -m;
        }
        let exp10 = exp10 as i32;
        if !base2 {
            return Ok(Self::from_parts(m, exp10, format));
        }
        let scaled = m
            .checked_mul(1i128 << suffix_exp)
            .map(|m| round_up_to_nano(m, exp10));
        let (m, e) = match scaled {
            Some((m, e)) => normalize(m, e),
            None => (m.signum() * MAX_BINARY, 0),
        };
        let mut q = Quantity {
            mantissa: m,
            exponent: e,
            format,
        };
        // "The max is just a simple cap."
        let limit = Quantity {
            mantissa: MAX_BINARY,
            exponent: 0,
            format,
        };
        let magnitude = Quantity {
            mantissa: q.mantissa.abs(),
            ..q
        };
        if magnitude > limit {
            q = Quantity {
                mantissa: MAX_BINARY * q.mantissa.signum(),
                ..limit
            };
        }
        // "This avoids rounding and hopefully confusion, too."
        if q.exponent < 0 && q.mantissa > 0 && q.scaled_value(0) == 1 {
            q.format = Format::DecimalSI;
        }
        Ok(q)
    }
}

/// Adds one to a string of decimal digits.
fn increment_decimal(digits: &str) -> String {
    let mut bytes = digits.as_bytes().to_vec();
    for b in bytes.iter_mut().rev() {
        if *b == b'9' {
            *b = b'0';
        } else {
            *b += 1;
            return String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    format!("1{}", String::from_utf8_lossy(&bytes))
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.mantissa == other.mantissa && self.exponent == other.exponent
    }
}

impl Eq for Quantity {}

impl std::hash::Hash for Quantity {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.mantissa.hash(state);
        self.exponent.hash(state);
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.mantissa, other.mantissa);
        match a.signum().cmp(&b.signum()) {
            Ordering::Equal if a == 0 => return Ordering::Equal,
            Ordering::Equal => {}
            o => return o,
        }
        // Same sign, both non-zero: compare magnitudes by order of magnitude first, so
        // that no scaling can overflow.
        let magnitude = |m: i128, e: i32| m.unsigned_abs().ilog10() as i64 + i64::from(e);
        let by_abs = match magnitude(a, self.exponent).cmp(&magnitude(b, other.exponent)) {
            Ordering::Equal => {
                // Same number of integer digits: the exponents differ by at most 38,
                // and scaling the smaller-exponent side up cannot exceed 10^39 > u128.
                let (x, y) = (a.unsigned_abs(), b.unsigned_abs());
                let d = self.exponent - other.exponent;
                if d >= 0 {
                    (x * 10u128.pow(d as u32)).cmp(&y)
                } else {
                    x.cmp(&(y * 10u128.pow((-d) as u32)))
                }
            }
            o => o,
        };
        if a > 0 { by_abs } else { by_abs.reverse() }
    }
}

impl TryFrom<&k8s_openapi::apimachinery::pkg::api::resource::Quantity> for Quantity {
    type Error = QuantityError;

    fn try_from(
        q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
    ) -> Result<Self, Self::Error> {
        q.0.parse()
    }
}

impl From<Quantity> for k8s_openapi::apimachinery::pkg::api::resource::Quantity {
    fn from(q: Quantity) -> Self {
        Self(q.canonical())
    }
}

impl serde::Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.canonical())
    }
}

impl<'de> serde::Deserialize<'de> for Quantity {
    /// Accepts a string or, as Kubernetes does, a bare number (`cpu: 2`).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let q = k8s_openapi::apimachinery::pkg::api::resource::Quantity::deserialize(d)?;
        q.0.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(s: &str) -> Quantity {
        s.parse().unwrap()
    }

    #[test]
    fn parses_every_suffix() {
        let cases = [
            ("500m", 1, "500m"),
            ("1.5", 2, "1500m"),
            ("2", 2, "2"),
            ("1e3", 1000, "1e3"),
            ("1E3", 1000, "1e3"),
            ("128974848", 128_974_848, "128974848"),
            ("129M", 129_000_000, "129M"),
            ("123Mi", 128_974_848, "123Mi"),
            ("1Gi", 1 << 30, "1Gi"),
            ("1.5Gi", 1_610_612_736, "1536Mi"),
            ("0.5Ki", 512, "512"),
            ("1k", 1000, "1k"),
            ("1E", 1_000_000_000_000_000_000, "1E"),
            ("1Ei", 1 << 60, "1Ei"),
            ("100u", 1, "100u"),
            ("7n", 1, "7n"),
            ("-2Ki", -2048, "-2Ki"),
            ("+3", 3, "3"),
            (".5", 1, "500m"),
            ("5.", 5, "5"),
            ("0", 0, "0"),
            ("1000m", 1, "1"),
            ("12e6", 12_000_000, "12e6"),
            ("1500", 1500, "1500"),
        ];
        for (text, value, canonical) in cases {
            let parsed = q(text);
            assert_eq!(parsed.value(), value, "{text}");
            assert_eq!(parsed.to_string(), canonical, "{text}");
        }
    }

    #[test]
    fn rejects_what_kubernetes_rejects() {
        for bad in [
            "", "m", "1.2.3", "5OOm", "1K", "1 Gi", " 1", "1e", "1e+", "1Gb", "--1", "1ee3",
        ] {
            assert_eq!(
                bad.parse::<Quantity>(),
                Err(QuantityError::Invalid(bad.to_string())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rounds_up_to_a_nano_and_caps_binary_values() {
        assert_eq!(q("0.1n").to_string(), "1n");
        assert_eq!(q("1.0000000001").to_string(), "1000000001n");
        assert_eq!(q("-0.1n").to_string(), "-1n");
        assert_eq!(q("16Ei").value(), i64::MAX);
        assert_eq!(q("1e-40").to_string(), "1e-9");
    }

    #[test]
    fn milli_and_scaled_values_round_away_from_zero() {
        assert_eq!(q("500m").milli_value(), 500);
        assert_eq!(q("0.1m").milli_value(), 1);
        assert_eq!(q("1.5").value(), 2);
        assert_eq!(q("-1.5").value(), -2);
        assert_eq!(q("1e30").value(), i64::MAX);
    }

    #[test]
    fn arithmetic_is_exact() {
        assert_eq!(q("100m").checked_add(&q("200m")).unwrap(), q("300m"));
        assert_eq!(
            q("1Gi").checked_sub(&q("512Mi")).unwrap().to_string(),
            "512Mi"
        );
        assert_eq!(q("0.1").checked_mul(3).unwrap(), q("300m"));
        assert!(q("1e10000").checked_add(&q("1")).is_none());
    }

    #[test]
    fn fractional_binary_quantities_stay_exact() {
        assert_eq!(q("1.1Ki").to_string(), "1126400m");
        assert_eq!(q("1126400m"), q("1.1Ki"));
    }

    /// A quantity as text, with the exact value it stands for in nano units.
    fn quantity_text() -> impl Strategy<Value = (String, i128)> {
        let suffixes: Vec<(&str, i128)> = vec![
            ("n", 1),
            ("u", 1_000),
            ("m", 1_000_000),
            ("", 1_000_000_000),
            ("k", 1_000_000_000_000),
            ("M", 10i128.pow(15)),
            ("G", 10i128.pow(18)),
            ("T", 10i128.pow(21)),
            ("Ki", 1024 * 10i128.pow(9)),
            ("Mi", (1 << 20) * 10i128.pow(9)),
            ("Gi", (1 << 30) * 10i128.pow(9)),
            ("Ei", (1 << 60) * 10i128.pow(9)),
            ("e3", 10i128.pow(12)),
            ("e-3", 1_000_000),
        ];
        (
            -1_000_000_000i64..1_000_000_000,
            0u32..1000,
            proptest::sample::select(suffixes),
        )
            .prop_map(|(int, milli, (suffix, unit))| {
                // Fractions of a nano would be rounded: keep them whole there.
                let (text, nanos) = if unit < 1000 {
                    (format!("{int}{suffix}"), i128::from(int) * unit)
                } else {
                    let sign = if int < 0 { "-" } else { "" };
                    let whole = i128::from(int).abs() * 1000 + i128::from(milli);
                    let v = whole * (unit / 1000) * if int < 0 { -1 } else { 1 };
                    (
                        format!("{sign}{}.{milli:03}{suffix}", int.unsigned_abs()),
                        v,
                    )
                };
                let nanos = if suffix.ends_with('i') {
                    let cap = i128::from(i64::MAX) * 1_000_000_000;
                    nanos.clamp(-cap, cap)
                } else {
                    nanos
                };
                (text, nanos)
            })
    }

    proptest! {
        #[test]
        fn parse_of_format_is_identity((text, _) in quantity_text()) {
            let parsed = q(&text);
            let printed = parsed.to_string();
            let reparsed = q(&printed);
            prop_assert_eq!(reparsed, parsed);
            prop_assert_eq!(reparsed.to_string(), printed);
        }

        #[test]
        fn ordering_agrees_with_value((a, va) in quantity_text(), (b, vb) in quantity_text()) {
            prop_assert_eq!(q(&a).cmp(&q(&b)), va.cmp(&vb), "{} vs {}", a, b);
            prop_assert_eq!(q(&a) == q(&b), va == vb);
        }

        #[test]
        fn sums_agree_with_value((a, va) in quantity_text(), (b, vb) in quantity_text()) {
            let sum = q(&a).checked_add(&q(&b)).unwrap();
            prop_assert_eq!(sum, Quantity::from_parts(va + vb, -9, Format::DecimalSI));
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,40}") {
            if let Ok(v) = s.parse::<Quantity>() {
                let _ = (v.to_string(), v.value(), v.milli_value(), v.as_f64());
            }
        }
    }
}

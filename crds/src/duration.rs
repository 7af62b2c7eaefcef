//! Go `time.Duration` / `metav1.Duration` compatible durations.
//!
//! MetalLB (and every Kubernetes API written in Go) stores durations as strings in the grammar of Go's
//! `time.ParseDuration` and writes them back with `time.Duration.String()`. [`GoDuration`] parses and
//! formats exactly like Go, so a `holdTime: 90s` read from a manifest is written back as `1m30s`, just as
//! MetalLB's controller would do, and anything Go rejects (`3`, `1d`, `1 m`) is rejected here too.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Regular expression (RE2 / ECMA-262 compatible) accepting exactly Go's `time.ParseDuration` grammar:
/// an optional sign, then either the bare `0` or one or more `<decimal><unit>` runs. Written without
/// backslashes (`[.]`, not `\.`) so that it can stand as it is inside a CEL string literal.
pub const GO_DURATION_PATTERN: &str =
    "^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$";

/// The accepted form of a duration, in words, for error messages.
pub const DURATION_FORM: &str =
    "numbers with units (h, m, s, ms, us, ns), such as 90s, 1m30s or 500ms, or 0";

const NANOSECOND: u64 = 1;
const MICROSECOND: u64 = 1_000 * NANOSECOND;
const MILLISECOND: u64 = 1_000 * MICROSECOND;
const SECOND: u64 = 1_000 * MILLISECOND;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

/// `1 << 63`: one past `i64::MAX`, the magnitude of `i64::MIN`.
const LIMIT: u64 = 1 << 63;

/// A signed duration with nanosecond resolution and the range of Go's `time.Duration` (`i64` nanoseconds,
/// about ±292 years), parsed and formatted exactly like Go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration(i64);

/// Why a string is not a Go duration. Each message quotes the input and states the accepted form
/// ([`DURATION_FORM`]); the caller names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not of the form `[-+]?(<decimal><unit>)+` or `0`.
    #[error("{0:?} is not a duration: write {DURATION_FORM}")]
    Invalid(String),
    /// A number without a unit, such as `3`.
    #[error("{0:?} has no unit: write {DURATION_FORM}")]
    MissingUnit(String),
    /// A unit Go does not know, such as `d` or `min`.
    #[error("{input:?} has the unknown unit {unit:?}: write {DURATION_FORM}")]
    UnknownUnit {
        /// The offending unit.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// Larger than Go's `time.Duration` can hold (about 292 years).
    #[error("{0:?} is too long: a duration is at most 2562047h (about 292 years)")]
    Overflow(String),
}

impl GoDuration {
    /// The zero duration (`0s`).
    pub const ZERO: GoDuration = GoDuration(0);

    /// A duration of `nanos` nanoseconds.
    pub const fn from_nanos(nanos: i64) -> Self {
        GoDuration(nanos)
    }

    /// A duration of whole seconds; `None` if it does not fit in Go's range.
    pub const fn from_secs(secs: i64) -> Option<Self> {
        match secs.checked_mul(SECOND as i64) {
            Some(n) => Some(GoDuration(n)),
            None => None,
        }
    }

    /// A duration of whole milliseconds; `None` if it does not fit in Go's range.
    pub const fn from_millis(millis: i64) -> Option<Self> {
        match millis.checked_mul(MILLISECOND as i64) {
            Some(n) => Some(GoDuration(n)),
            None => None,
        }
    }

    /// Nanoseconds, as Go's `int64(d)`.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// True below zero.
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// True for exactly zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// True when the duration is a whole number of seconds.
    pub const fn is_whole_seconds(self) -> bool {
        self.0 % SECOND as i64 == 0
    }

    /// Whole seconds, truncated toward zero (Go's `d / time.Second`).
    pub const fn whole_seconds(self) -> i64 {
        self.0 / SECOND as i64
    }

    /// The equivalent [`std::time::Duration`]; `None` for negative durations.
    pub fn to_std(self) -> Option<std::time::Duration> {
        u64::try_from(self.0)
            .ok()
            .map(std::time::Duration::from_nanos)
    }

    /// Parse with Go's `time.ParseDuration` rules.
    pub fn parse(input: &str) -> Result<Self, DurationError> {
        let invalid = || DurationError::Invalid(input.to_owned());
        let mut s = input;
        let mut neg = false;
        if let Some(c) = s.chars().next() {
            if c == '-' || c == '+' {
                neg = c == '-';
                s = &s[1..];
            }
        }
        if s == "0" {
            return Ok(GoDuration::ZERO);
        }
        if s.is_empty() {
            return Err(invalid());
        }
        let mut total: u64 = 0;
        while !s.is_empty() {
            let first = s.as_bytes()[0];
            if !(first == b'.' || first.is_ascii_digit()) {
                return Err(invalid());
            }
            // The integer part.
            let before = s.len();
            let (int, rest) =
                leading_int(s).ok_or_else(|| DurationError::Overflow(input.to_owned()))?;
            s = rest;
            let pre = before != s.len();
            // The fraction.
            let mut frac: u64 = 0;
            let mut scale: f64 = 1.0;
            let mut post = false;
            if let Some(rest) = s.strip_prefix('.') {
                let before = rest.len();
                let (f, sc, rest) = leading_fraction(rest);
                frac = f;
                scale = sc;
                s = rest;
                post = before != s.len();
            }
            if !pre && !post {
                // No digits at all, e.g. ".s".
                return Err(invalid());
            }
            // The unit runs until the next '.' or digit.
            let unit_len = s
                .find(|c: char| c == '.' || c.is_ascii_digit())
                .unwrap_or(s.len());
            if unit_len == 0 {
                return Err(DurationError::MissingUnit(input.to_owned()));
            }
            let (unit_str, rest) = s.split_at(unit_len);
            s = rest;
            let unit = unit_nanos(unit_str).ok_or_else(|| DurationError::UnknownUnit {
                unit: unit_str.to_owned(),
                input: input.to_owned(),
            })?;
            if int > LIMIT / unit {
                return Err(DurationError::Overflow(input.to_owned()));
            }
            let mut v = int * unit;
            if frac > 0 {
                // Same float arithmetic as Go: float64(f) * (float64(unit) / scale).
                v += (frac as f64 * (unit as f64 / scale)) as u64;
                if v > LIMIT {
                    return Err(DurationError::Overflow(input.to_owned()));
                }
            }
            total = total
                .checked_add(v)
                .ok_or_else(|| DurationError::Overflow(input.to_owned()))?;
            if total > LIMIT {
                return Err(DurationError::Overflow(input.to_owned()));
            }
        }
        if neg {
            // total <= 1<<63, so the negation fits (1<<63 becomes i64::MIN).
            return Ok(GoDuration((total as i64).wrapping_neg()));
        }
        if total > LIMIT - 1 {
            return Err(DurationError::Overflow(input.to_owned()));
        }
        Ok(GoDuration(total as i64))
    }
}

/// Go's `leadingInt`: consume leading digits; `None` on overflow past `1 << 63`.
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let bytes = s.as_bytes();
    let mut x: u64 = 0;
    let mut i = 0;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        if x > LIMIT / 10 {
            return None;
        }
        x = x * 10 + u64::from(bytes[i] - b'0');
        if x > LIMIT {
            return None;
        }
        i += 1;
    }
    Some((x, &s[i..]))
}

/// Go's `leadingFraction`: consume leading digits of a fraction, ignoring digits past the precision
/// an `i64` can hold; returns the value, its scale (10^digits kept) and the rest.
fn leading_fraction(s: &str) -> (u64, f64, &str) {
    let bytes = s.as_bytes();
    let mut x: u64 = 0;
    let mut scale: f64 = 1.0;
    let mut overflow = false;
    let mut i = 0;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        if !overflow {
            if x > (LIMIT - 1) / 10 {
                overflow = true;
            } else {
                let y = x * 10 + u64::from(bytes[i] - b'0');
                if y > LIMIT {
                    overflow = true;
                } else {
                    x = y;
                    scale *= 10.0;
                }
            }
        }
        i += 1;
    }
    (x, scale, &s[i..])
}

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => NANOSECOND,
        "us" | "µs" | "μs" => MICROSECOND,
        "ms" => MILLISECOND,
        "s" => SECOND,
        "m" => MINUTE,
        "h" => HOUR,
        _ => return None,
    })
}

/// Go's `fmtFrac`: the fraction of `v / 10^prec` without trailing zeros (`".5"`, or `""` when zero),
/// and the integer part `v / 10^prec`.
fn fmt_frac(mut v: u64, prec: u32) -> (String, u64) {
    let mut digits = Vec::with_capacity(prec as usize);
    let mut print = false;
    for _ in 0..prec {
        let digit = (v % 10) as u8;
        print = print || digit != 0;
        if print {
            digits.push(b'0' + digit);
        }
        v /= 10;
    }
    if !print {
        return (String::new(), v);
    }
    digits.push(b'.');
    digits.reverse();
    (String::from_utf8(digits).expect("ASCII digits"), v)
}

impl fmt::Display for GoDuration {
    /// Go's `time.Duration.String()`: `1h0m0s`, `1m30s`, `1.5s`, `300ms`, `1µs`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let neg = self.0 < 0;
        let u = self.0.unsigned_abs();
        let mut out = String::new();
        if neg {
            out.push('-');
        }
        if u < SECOND {
            let (prec, unit) = match u {
                0 => return f.write_str("0s"),
                u if u < MICROSECOND => (0, "ns"),
                u if u < MILLISECOND => (3, "µs"),
                _ => (6, "ms"),
            };
            let (frac, int) = fmt_frac(u, prec);
            out.push_str(&format!("{int}{frac}{unit}"));
        } else {
            let (frac, secs_total) = fmt_frac(u, 9);
            let secs = secs_total % 60;
            let mins_total = secs_total / 60;
            if mins_total > 0 {
                let mins = mins_total % 60;
                let hours = mins_total / 60;
                if hours > 0 {
                    out.push_str(&format!("{hours}h"));
                }
                out.push_str(&format!("{mins}m"));
            }
            out.push_str(&format!("{secs}{frac}s"));
        }
        f.write_str(&out)
    }
}

impl FromStr for GoDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GoDuration::parse(s)
    }
}

impl TryFrom<std::time::Duration> for GoDuration {
    type Error = DurationError;
    fn try_from(d: std::time::Duration) -> Result<Self, Self::Error> {
        i64::try_from(d.as_nanos())
            .map(GoDuration)
            .map_err(|_| DurationError::Overflow(format!("{d:?}")))
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<'de, str>::deserialize(deserializer)?;
        GoDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for GoDuration {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "GoDuration".into()
    }

    /// A string of at most 64 characters, checked by a CEL rule rather than by `pattern`, so that a bad
    /// value draws one plain message (an API server reports a failed `pattern` by quoting the regular
    /// expression). The fields' own rules must guard every `duration(…)` with the same `matches`: an API
    /// server evaluates them even when this rule fails, and `duration()` of a non-duration is a type
    /// conversion error, not `false`.
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "maxLength": 64,
            "x-kubernetes-validations": [{
                "rule": format!("self.matches('{GO_DURATION_PATTERN}')"),
                "message": format!("must be a duration: {DURATION_FORM}"),
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> GoDuration {
        GoDuration::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn formats_like_go() {
        // The examples from Go's time package and MetalLB's write-back.
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (300_000_000, "300ms"),
            (3_300_000_000, "3.3s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (4 * 60_000_000_000 + 5_000_000_000, "4m5s"),
            (4 * 60_000_000_000 + 5_001_000_000, "4m5.001s"),
            (
                5 * 3_600_000_000_000 + 6 * 60_000_000_000 + 7_001_000_000,
                "5h6m7.001s",
            ),
            (8 * 60_000_000_000 + 1, "8m0.000000001s"),
            (-90_000_000_000, "-1m30s"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for &(nanos, want) in cases {
            assert_eq!(GoDuration::from_nanos(nanos).to_string(), want, "{nanos}ns");
        }
    }

    #[test]
    fn parses_like_go() {
        let s = 1_000_000_000i64;
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("-0", 0),
            ("+0", 0),
            ("0s", 0),
            ("5s", 5 * s),
            ("30s", 30 * s),
            ("1478s", 1478 * s),
            ("-5s", -5 * s),
            ("+5s", 5 * s),
            ("5.0s", 5 * s),
            ("5.6s", 5 * s + 600_000_000),
            ("5.s", 5 * s),
            (".5s", s / 2),
            ("1.0s", s),
            ("1.004s", s + 4_000_000),
            ("100.00100s", 100 * s + 1_000_000),
            ("10ns", 10),
            ("11us", 11_000),
            ("12µs", 12_000),
            ("12μs", 12_000),
            ("13ms", 13_000_000),
            ("14s", 14 * s),
            ("15m", 15 * 60 * s),
            ("16h", 16 * 3600 * s),
            ("3h30m", (3 * 3600 + 30 * 60) * s),
            ("10.5s4m", 4 * 60 * s + 10 * s + 500_000_000),
            ("-2m3.4s", -(2 * 60 * s + 3 * s + 400_000_000)),
            (
                "1h2m3s4ms5us6ns",
                3600 * s + 2 * 60 * s + 3 * s + 4_000_000 + 5_000 + 6,
            ),
            ("39h9m14.425s", (39 * 3600 + 9 * 60 + 14) * s + 425_000_000),
            ("52763797000ns", 52_763_797_000),
            ("0.3333333333333333333h", 20 * 60 * s),
            ("9007199254740993ns", (1 << 53) + 1),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036854775.807us", i64::MAX),
            ("9223372036s854ms775us807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("-9223372036s854ms775us808ns", i64::MIN),
            ("0.100000000000000000000h", 6 * 60 * s),
            ("0.830103483285477580700h", 49 * 60 * s + 48_372_539_827),
            ("90s", 90 * s),
            ("1m30s", 90 * s),
            ("2h45m", (2 * 3600 + 45 * 60) * s),
            ("300ms", 300_000_000),
            ("1h0m0s", 3600 * s),
        ];
        for &(input, want) in cases {
            assert_eq!(d(input).as_nanos(), want, "{input}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "",
            "3",
            "-",
            "+",
            "s",
            ".",
            "-.",
            ".s",
            "+.s",
            "1d",
            "1 m",
            " 1m",
            "1m ",
            "1min",
            "1sec",
            "1.5.5s",
            "1e3s",
            "1_000s",
            "1h 30m",
            "1H",
            "1S",
            "0.0",
            "00",
            "-1",
            "∞s",
            "1μ",
            "3000000h",
            "9223372036854775808ns",
            "9223372036854775.808us",
            "9223372036854ms775us808ns",
            "-9223372036854775809ns",
        ] {
            assert!(GoDuration::parse(bad).is_err(), "{bad:?} must be rejected");
        }
        assert!(matches!(
            GoDuration::parse("3"),
            Err(DurationError::MissingUnit(_))
        ));
        assert!(matches!(
            GoDuration::parse("1d"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            GoDuration::parse("1 m"),
            Err(DurationError::UnknownUnit { .. })
        ));
    }

    #[test]
    fn round_trips_the_metallb_examples() {
        for (input, written) in [
            ("90s", "1m30s"),
            ("3600s", "1h0m0s"),
            ("300ms", "300ms"),
            ("0", "0s"),
            ("0s", "0s"),
        ] {
            let parsed = d(input);
            assert_eq!(parsed.to_string(), written);
            assert_eq!(
                d(written),
                parsed,
                "{written} parses back to the same value"
            );
        }
    }

    #[test]
    fn serde_uses_go_strings() {
        let v: GoDuration = serde_json::from_str("\"1m30s\"").unwrap();
        assert_eq!(v, GoDuration::from_secs(90).unwrap());
        assert_eq!(
            serde_json::to_string(&GoDuration::from_secs(3600).unwrap()).unwrap(),
            "\"1h0m0s\""
        );
        let err = serde_json::from_str::<GoDuration>("\"1d\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown unit"), "{err}");
        assert!(
            serde_json::from_str::<GoDuration>("90").is_err(),
            "numbers are not durations"
        );
        let y: GoDuration = serde_yaml::from_str("300ms").unwrap();
        assert_eq!(y, GoDuration::from_millis(300).unwrap());
    }

    #[test]
    fn schema_is_a_string_with_a_rule_for_the_go_pattern() {
        let schema = schemars::SchemaGenerator::default().into_root_schema_for::<GoDuration>();
        let v = serde_json::to_value(&schema).unwrap();
        assert_eq!(v["type"], "string");
        assert_eq!(v["maxLength"], 64);
        assert!(v.get("pattern").is_none(), "{v}");
        assert_eq!(
            v["x-kubernetes-validations"][0]["rule"],
            format!("self.matches('{GO_DURATION_PATTERN}')")
        );
        assert!(!GO_DURATION_PATTERN.contains('\\') && !GO_DURATION_PATTERN.contains('\''));
    }

    #[test]
    fn errors_quote_the_input_and_state_the_form() {
        for (input, start) in [
            (
                "3x",
                "\"3x\" has the unknown unit \"x\": write numbers with units",
            ),
            ("90", "\"90\" has no unit: write numbers with units"),
            ("abc", "\"abc\" is not a duration: write numbers with units"),
            ("3000000h", "\"3000000h\" is too long"),
        ] {
            let e = GoDuration::parse(input).unwrap_err().to_string();
            assert!(e.starts_with(start), "{input}: {e}");
            for noise in ["time:", "protobuf", "conversion"] {
                assert!(!e.contains(noise), "{input}: {e}");
            }
        }
    }

    #[test]
    fn conversions() {
        assert_eq!(
            d("1m30s").to_std(),
            Some(std::time::Duration::from_secs(90))
        );
        assert_eq!(d("-1s").to_std(), None);
        assert!(d("1.5s").whole_seconds() == 1 && !d("1.5s").is_whole_seconds());
        assert_eq!(
            GoDuration::try_from(std::time::Duration::from_millis(1500)).unwrap(),
            d("1.5s")
        );
        assert!(GoDuration::try_from(std::time::Duration::from_secs(u64::MAX)).is_err());
        assert!(d("-0s").is_zero() && d("-1ns").is_negative());
        assert!(d("1h") > d("59m59s"));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn format_then_parse_is_identity(n in any::<i64>()) {
                let g = GoDuration::from_nanos(n);
                prop_assert_eq!(GoDuration::parse(&g.to_string()), Ok(g));
            }

            #[test]
            fn pattern_agrees_with_parser_on_shape(s in "[-+]?([0-9]{0,3}(\\.[0-9]{0,3})?(ns|us|ms|s|m|h|d| )){1,3}") {
                // Anything the parser accepts must match the CRD pattern (the pattern cannot express overflow).
                if GoDuration::parse(&s).is_ok() {
                    prop_assert!(crate::duration::tests::pattern_matches(&s), "{} parsed but does not match the pattern", s);
                }
            }
        }
    }

    /// A tiny matcher for [`GO_DURATION_PATTERN`] written without a regex engine, used to check that the
    /// pattern and the parser agree: sign, then `0` or runs of number+unit.
    pub(super) fn pattern_matches(s: &str) -> bool {
        let s = s.strip_prefix(['-', '+']).unwrap_or(s);
        if s == "0" {
            return true;
        }
        if s.is_empty() {
            return false;
        }
        let mut rest = s;
        while !rest.is_empty() {
            let int_len = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let mut num_len = int_len;
            let mut frac_len = 0;
            if rest[int_len..].starts_with('.') {
                let after = &rest[int_len + 1..];
                frac_len = after
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(after.len());
                num_len = int_len + 1 + frac_len;
            }
            if int_len == 0 && frac_len == 0 {
                return false;
            }
            rest = &rest[num_len..];
            let unit = ["ns", "us", "µs", "μs", "ms", "s", "m", "h"]
                .iter()
                .filter(|u| rest.starts_with(*u))
                .max_by_key(|u| u.len());
            match unit {
                Some(u) => rest = &rest[u.len()..],
                None => return false,
            }
        }
        true
    }
}

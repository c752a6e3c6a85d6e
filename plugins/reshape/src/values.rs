//! Values: casts between types, PostgreSQL's text forms, and the JSON forms Debezium's
//! `JsonConverter` writes in a payload (for unwrapped records).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use walrelay_plugin_sdk::pg_text;
use walrelay_plugin_sdk::{oid, Column, Value};

/// What Debezium writes for a TOASTed value PostgreSQL did not send.
pub const UNAVAILABLE: &str = "__debezium_unavailable_value";

/// A type a column can be cast to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Text,
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
}

impl Target {
    /// A type name: PostgreSQL's (`float8`, `int4`, ...), its SQL spelling (`double precision`,
    /// `integer`, ...) or Kafka Connect's (`float64`, `int32`, `string`, ...).
    pub fn parse(name: &str) -> Option<Target> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "text" | "string" | "varchar" => Target::Text,
            "bool" | "boolean" => Target::Bool,
            "int2" | "smallint" | "int16" => Target::Int2,
            "int4" | "int" | "integer" | "int32" => Target::Int4,
            "int8" | "bigint" | "int64" => Target::Int8,
            "float4" | "real" | "float32" => Target::Float4,
            "float8" | "double precision" | "double" | "float64" => Target::Float8,
            "numeric" | "decimal" => Target::Numeric,
            _ => return None,
        })
    }

    fn oid_and_name(self) -> (u32, &'static str) {
        match self {
            Target::Text => (oid::TEXT, "text"),
            Target::Bool => (oid::BOOL, "bool"),
            Target::Int2 => (oid::INT2, "int2"),
            Target::Int4 => (oid::INT4, "int4"),
            Target::Int8 => (oid::INT8, "int8"),
            Target::Float4 => (oid::FLOAT4, "float4"),
            Target::Float8 => (oid::FLOAT8, "float8"),
            Target::Numeric => (oid::NUMERIC, "numeric"),
        }
    }

    /// Makes `column` a column of this type (no modifier, default or enum labels), keeping its
    /// name, nullability and key flag.
    pub fn apply_to(self, column: &mut Column) {
        let (type_oid, name) = self.oid_and_name();
        column.type_oid = type_oid;
        column.base_type_oid = type_oid;
        column.type_name = name.to_string();
        column.type_modifier = -1;
        column.default_expr = None;
        column.enum_labels.clear();
    }

    /// A new nullable column of this type.
    pub fn column(self, name: &str) -> Column {
        let (type_oid, type_name) = self.oid_and_name();
        Column::new(name, type_oid, type_name)
    }
}

/// `value` cast to `target`, as PostgreSQL's `CAST` would (null and unchanged TOAST stay).
pub fn cast(value: &Value, target: Target) -> Result<Value, String> {
    if matches!(value, Value::Null | Value::UnchangedToast) {
        return Ok(value.clone());
    }
    let name = target.oid_and_name().1;
    let fail = || format!("cannot cast {value:?} to {name}");
    Ok(match target {
        Target::Text => Value::Text(pg_text(value)),
        Target::Bool => Value::Boolean(match value {
            Value::Boolean(b) => *b,
            Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => value.as_i64() != Some(0),
            Value::Text(s) => parse_bool(s).ok_or_else(fail)?,
            _ => return Err(fail()),
        }),
        Target::Int2 | Target::Int4 | Target::Int8 => {
            let v: i64 = match value {
                Value::Boolean(b) => i64::from(*b),
                Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => value.as_i64().unwrap_or(0),
                Value::Float32(f) => float_to_int(f64::from(*f)).ok_or_else(fail)?,
                Value::Float64(f) => float_to_int(*f).ok_or_else(fail)?,
                Value::Numeric(s) => numeric_to_int(s).ok_or_else(fail)?,
                Value::Text(s) => s.trim().parse::<i64>().map_err(|_| fail())?,
                _ => return Err(fail()),
            };
            let out_of_range = || format!("{v} is out of range for {name}");
            match target {
                Target::Int2 => Value::Int16(i16::try_from(v).map_err(|_| out_of_range())?),
                Target::Int4 => Value::Int32(i32::try_from(v).map_err(|_| out_of_range())?),
                _ => Value::Int64(v),
            }
        }
        Target::Float4 | Target::Float8 => {
            let v: f64 = match value {
                Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => {
                    value.as_i64().unwrap_or(0) as f64
                }
                Value::Float32(f) => f64::from(*f),
                Value::Float64(f) => *f,
                Value::Numeric(s) | Value::Text(s) => parse_float(s).ok_or_else(fail)?,
                _ => return Err(fail()),
            };
            if target == Target::Float4 {
                Value::Float32(v as f32)
            } else {
                Value::Float64(v)
            }
        }
        Target::Numeric => Value::Numeric(match value {
            Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => {
                value.as_i64().unwrap_or(0).to_string()
            }
            Value::Float32(f) => float_numeric(f64::from(*f)),
            Value::Float64(f) => float_numeric(*f),
            Value::Numeric(s) => s.clone(),
            Value::Text(s) => {
                let t = s.trim();
                if Decimal::parse(t).is_none() && !is_special(t) {
                    return Err(fail());
                }
                t.to_string()
            }
            _ => return Err(fail()),
        }),
    })
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn is_special(t: &str) -> bool {
    [
        "nan",
        "infinity",
        "+infinity",
        "-infinity",
        "inf",
        "+inf",
        "-inf",
    ]
    .contains(&t.to_ascii_lowercase().as_str())
}

fn parse_float(s: &str) -> Option<f64> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "infinity" | "+infinity" | "inf" | "+inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => t.parse::<f64>().ok(),
    }
}

/// PostgreSQL rounds a float to the nearest integer, ties to even (`rint`).
fn float_to_int(f: f64) -> Option<i64> {
    if !f.is_finite() {
        return None;
    }
    let r = f.round_ties_even();
    if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&r) {
        return None;
    }
    Some(r as i64)
}

/// PostgreSQL rounds a numeric to the nearest integer, ties away from zero.
fn numeric_to_int(s: &str) -> Option<i64> {
    let d = Decimal::parse(s.trim())?;
    let digits = d.unscaled_at(0);
    let mut v: i64 = 0;
    for &c in &digits {
        v = v.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
    }
    Some(if d.negative { -v } else { v })
}

fn float_numeric(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        // Display prints the shortest round-trip digits without an exponent.
        format!("{f}")
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL text forms
// ---------------------------------------------------------------------------------------------

/// A value's text as PostgreSQL prints it (`::text`, `DateStyle=ISO`, `TimeZone=UTC`).
pub fn pg_text(value: &Value) -> String {
    match value {
        Value::Null | Value::UnchangedToast => String::new(),
        Value::Boolean(b) => if *b { "true" } else { "false" }.into(),
        Value::Float32(f) => pg_float(f64::from(*f), format!("{f:e}"), 6),
        Value::Float64(f) => pg_float(*f, format!("{f:e}"), 15),
        Value::Date(d) => pg_text::date(*d),
        Value::Time(us) => pg_text::time(*us),
        Value::Timestamp(us) => pg_text::timestamp(*us, ""),
        Value::Timestamptz(us) => pg_text::timestamp(*us, "+00"),
        other => other.to_text().unwrap_or_default(),
    }
}

/// PostgreSQL's shortest float output: plain for exponents in `-4..precision`, else
/// `d.ddde+XX`.
fn pg_float(f: f64, sci: String, precision: i32) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let (negative, digits, exp) = split_sci(&sci);
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if (-4..precision).contains(&exp) {
        plain_digits(&mut out, &digits, exp, false);
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        ));
    }
    out
}

/// `LowerExp` output (`-1.25e-3`) as (negative, significant digits, decimal exponent).
fn split_sci(sci: &str) -> (bool, String, i32) {
    let (negative, s) = match sci.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, sci),
    };
    let (mantissa, exp) = s.split_once('e').unwrap_or((s, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    (negative, digits.to_string(), exp.parse().unwrap_or(0))
}

/// `d1.d2d3… × 10^exp` written without exponent; `java` keeps at least one fraction digit.
fn plain_digits(out: &mut String, digits: &str, exp: i32, java: bool) {
    let point = exp + 1;
    let n = digits.len() as i32;
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.push_str(digits);
    } else if point >= n {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', (point - n) as usize));
        if java {
            out.push_str(".0");
        }
    } else {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    }
}

// ---------------------------------------------------------------------------------------------
// numeric
// ---------------------------------------------------------------------------------------------

/// A finite decimal in PostgreSQL's text form.
pub struct Decimal<'a> {
    negative: bool,
    int: &'a str,
    frac: &'a str,
}

impl<'a> Decimal<'a> {
    /// `[+-]digits[.digits]`; `None` for anything else (NaN, infinities).
    pub fn parse(t: &'a str) -> Option<Self> {
        let (negative, body) = match t.as_bytes().first() {
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            _ => (false, t),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
            return None;
        }
        Some(Decimal {
            negative,
            int,
            frac,
        })
    }

    /// The unscaled value's digits at `scale`, rounded half away from zero.
    fn unscaled_at(&self, scale: i32) -> Vec<u8> {
        let mut digits: Vec<u8> = self.int.bytes().chain(self.frac.bytes()).collect();
        let have = self.frac.len() as i64;
        let want = i64::from(scale);
        if want >= have {
            digits.extend(std::iter::repeat_n(b'0', (want - have) as usize));
            return digits;
        }
        let drop = (have - want) as usize;
        if drop > digits.len() {
            // Pad so that the first dropped digit exists.
            let pad = drop - digits.len();
            digits.splice(0..0, std::iter::repeat_n(b'0', pad));
        }
        let keep = digits.len() - drop;
        let up = digits[keep] >= b'5';
        digits.truncate(keep);
        if up {
            let mut i = digits.len();
            loop {
                if i == 0 {
                    digits.insert(0, b'1');
                    break;
                }
                i -= 1;
                if digits[i] == b'9' {
                    digits[i] = b'0';
                } else {
                    digits[i] += 1;
                    break;
                }
            }
        }
        if digits.is_empty() {
            digits.push(b'0');
        }
        digits
    }

    /// Trailing fraction zeros stripped (Java's `stripTrailingZeros`, negative scales set back
    /// to 0): the unscaled digits and the scale.
    fn stripped(&self) -> (Vec<u8>, usize) {
        let frac = self.frac.trim_end_matches('0');
        let digits: Vec<u8> = self.int.bytes().chain(frac.bytes()).collect();
        let scale = if digits.iter().all(|&d| d == b'0') {
            0
        } else {
            frac.len()
        };
        (digits, scale)
    }
}

/// Java's `BigInteger.toByteArray()` of a signed decimal: big-endian two's complement, minimal.
fn twos_complement(negative: bool, digits: &[u8]) -> Vec<u8> {
    let mut mag: Vec<u8> = Vec::new(); // big-endian magnitude
    for &d in digits {
        let mut carry = u32::from(d - b'0');
        for byte in mag.iter_mut().rev() {
            let x = u32::from(*byte) * 10 + carry;
            *byte = (x & 0xff) as u8;
            carry = x >> 8;
        }
        while carry > 0 {
            mag.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let first = mag.iter().position(|&b| b != 0).unwrap_or(mag.len());
    mag.drain(..first);
    if mag.is_empty() {
        return vec![0];
    }
    if !negative {
        if mag[0] & 0x80 != 0 {
            mag.insert(0, 0);
        }
        return mag;
    }
    for b in mag.iter_mut() {
        *b = !*b;
    }
    for b in mag.iter_mut().rev() {
        let (v, overflow) = b.overflowing_add(1);
        *b = v;
        if !overflow {
            break;
        }
    }
    if mag[0] & 0x80 == 0 {
        mag.insert(0, 0xff);
    }
    mag
}

/// `numeric(p,s)`'s typmod is `((p << 16) | s) + 4`; `None` for an unconstrained numeric.
fn numeric_scale(typmod: i32) -> Option<i32> {
    if typmod < 4 {
        return None;
    }
    let t = typmod - 4;
    Some(((t & 0x7ff) ^ 1024) - 1024)
}

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

/// How unwrapped records write `numeric` values (Debezium's `decimal.handling.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalMode {
    /// Connect `Decimal` (base64 two's complement) or `VariableScaleDecimal` (`{scale, value}`).
    Precise,
    /// The decimal text, as a JSON string.
    String,
    /// A JSON number (NaN and the infinities as strings).
    Double,
}

/// Appends `s` as a JSON string, escaped as Jackson escapes it.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Java's `Double.toString` (`1.5`, `2.0`, `1.0E-5`, `1.2345678E7`) of a finite non-zero value
/// given its shortest `LowerExp` form.
fn java_float(out: &mut String, f: f64, sci: String) {
    if f == 0.0 {
        out.push_str(if f.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    let (negative, digits, exp) = split_sci(&sci);
    if negative {
        out.push('-');
    }
    if (-3..7).contains(&exp) {
        plain_digits(out, &digits, exp, true);
    } else {
        out.push_str(&digits[..1]);
        out.push('.');
        out.push_str(if digits.len() > 1 { &digits[1..] } else { "0" });
        out.push('E');
        out.push_str(&exp.to_string());
    }
}

fn write_f64(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("\"NaN\"");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        });
    } else {
        java_float(out, f, format!("{f:e}"));
    }
}

fn write_f32(out: &mut String, f: f32) {
    if f.is_finite() {
        java_float(out, f64::from(f), format!("{f:e}"));
    } else {
        write_f64(out, f64::from(f));
    }
}

fn write_base64(out: &mut String, bytes: &[u8]) {
    out.push('"');
    BASE64.encode_string(bytes, out);
    out.push('"');
}

/// pgjdbc's infinity sentinels, which Debezium writes for `timestamp` ±infinity.
const PG_POSITIVE_INFINITY: i64 = 9_223_372_036_825_200_000;
const PG_NEGATIVE_INFINITY: i64 = -9_223_372_036_832_400_000;

/// Appends `value` of `column` in the form Debezium's JsonConverter gives it in a payload.
pub fn write_json(
    out: &mut String,
    column: &Column,
    value: &Value,
    decimals: DecimalMode,
) -> Result<(), String> {
    let typmod = column.type_modifier;
    match value {
        Value::Null => out.push_str("null"),
        // reshape declares every column of interest: the relay withholds none from it.
        Value::Withheld => {
            return Err(format!(
                "column {} arrived withheld: its value was not sent",
                column.name
            ))
        }
        Value::UnchangedToast => match column.base_type_oid {
            oid::BYTEA => write_base64(out, UNAVAILABLE.as_bytes()),
            oid::BOOL
            | oid::INT2
            | oid::INT4
            | oid::INT8
            | oid::FLOAT4
            | oid::FLOAT8
            | oid::NUMERIC
            | oid::DATE
            | oid::TIME
            | oid::TIMESTAMP
            | oid::TIMESTAMPTZ => out.push_str("null"),
            _ => write_str(out, UNAVAILABLE),
        },
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int16(v) => out.push_str(&v.to_string()),
        Value::Int32(v) => out.push_str(&v.to_string()),
        Value::Int64(v) => out.push_str(&v.to_string()),
        Value::Float32(f) => write_f32(out, *f),
        Value::Float64(f) => write_f64(out, *f),
        Value::Numeric(text) => match decimals {
            DecimalMode::String => write_str(out, text),
            DecimalMode::Double => write_f64(out, parse_float(text).unwrap_or(f64::NAN)),
            DecimalMode::Precise => {
                let d = Decimal::parse(text.trim()).ok_or_else(|| {
                    format!(
                        "numeric {text} has no Decimal form (Debezium's precise decimal mode \
                         rejects it too); set decimal_handling: string or double"
                    )
                })?;
                match numeric_scale(typmod) {
                    Some(scale) => {
                        write_base64(out, &twos_complement(d.negative, &d.unscaled_at(scale)))
                    }
                    None => {
                        let (digits, scale) = d.stripped();
                        out.push_str(&format!("{{\"scale\":{scale},\"value\":"));
                        write_base64(out, &twos_complement(d.negative, &digits));
                        out.push('}');
                    }
                }
            }
        },
        Value::Text(s) | Value::Uuid(s) | Value::Json(s) => write_str(out, s),
        Value::Bytes(b) => write_base64(out, b),
        Value::Date(d) => {
            let days = match *d {
                i32::MAX => pg_text::days_from_civil(5_877_611, 6, 21),
                i32::MIN => pg_text::days_from_civil(-5_877_611, 6, 22),
                d => i64::from(d),
            };
            out.push_str(&days.to_string());
        }
        Value::Time(us) => {
            let v = if (0..=3).contains(&typmod) {
                us.div_euclid(1000)
            } else {
                *us
            };
            out.push_str(&v.to_string());
        }
        Value::Timestamp(us) => {
            let us = match *us {
                i64::MAX => PG_POSITIVE_INFINITY,
                i64::MIN => PG_NEGATIVE_INFINITY,
                us => us,
            };
            let v = if (0..=3).contains(&typmod) {
                us / 1000
            } else {
                us
            };
            out.push_str(&v.to_string());
        }
        Value::Timestamptz(us) => match *us {
            i64::MAX => out.push_str("\"infinity\""),
            i64::MIN => out.push_str("\"-infinity\""),
            us => {
                let digits = if (0..=6).contains(&typmod) { typmod } else { 6 };
                out.push('"');
                out.push_str(&zoned(us, digits as u32));
                out.push('"');
            }
        },
    }
    Ok(())
}

/// Debezium's `ZonedTimestamp`: `YYYY-MM-DDTHH:MM:SS[.f{digits}]Z`.
fn zoned(us: i64, digits: u32) -> String {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    let (y, m, d) = pg_text::civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let year = if y > 9999 {
        format!("+{y}")
    } else if y < 0 {
        format!("-{:04}", -y)
    } else {
        format!("{y:04}")
    };
    let mut s = format!(
        "{year}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    if digits > 0 {
        let frac = micros / 10i64.pow(6 - digits.min(6));
        s.push_str(&format!(".{frac:0width$}", width = digits.min(6) as usize));
    }
    s.push('Z');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(column: &Column, value: Value) -> String {
        let mut out = String::new();
        write_json(&mut out, column, &value, DecimalMode::Precise).unwrap();
        out
    }

    fn col(type_oid: u32, typmod: i32) -> Column {
        let mut c = Column::new("c", type_oid, "t");
        c.type_modifier = typmod;
        c
    }

    #[test]
    fn debezium_payload_forms() {
        // Examples from the format reference (debezium-format.md, section 4).
        let numeric_10_2 = ((10 << 16) | 2) + 4;
        assert_eq!(
            json(
                &col(oid::NUMERIC, numeric_10_2),
                Value::Numeric("1234.56".into())
            ),
            "\"AeJA\""
        );
        assert_eq!(
            json(&col(oid::NUMERIC, -1), Value::Numeric("10.1111".into())),
            r#"{"scale":4,"value":"AYr3"}"#
        );
        assert_eq!(
            json(
                &col(oid::NUMERIC, numeric_10_2),
                Value::Numeric("-1".into())
            ),
            "\"nA==\""
        );
        assert_eq!(
            json(&col(oid::BYTEA, -1), Value::Bytes(vec![1, 2, 3])),
            "\"AQID\""
        );
        assert_eq!(json(&col(oid::DATE, -1), Value::Date(17109)), "17109");
        assert_eq!(
            json(
                &col(oid::TIMESTAMPTZ, -1),
                Value::Timestamptz(1_478_260_290_123_456)
            ),
            "\"2016-11-04T11:51:30.123456Z\""
        );
        assert_eq!(
            json(
                &col(oid::TIMESTAMPTZ, 0),
                Value::Timestamptz(1_478_260_290_123_456)
            ),
            "\"2016-11-04T11:51:30Z\""
        );
        assert_eq!(
            json(&col(oid::TIME, 3), Value::Time(49_890_000_123)),
            "49890000"
        );
        assert_eq!(json(&col(oid::FLOAT8, -1), Value::Float64(1.5)), "1.5");
        assert_eq!(json(&col(oid::FLOAT8, -1), Value::Float64(2.0)), "2.0");
        assert_eq!(json(&col(oid::FLOAT8, -1), Value::Float64(1e-5)), "1.0E-5");
        assert_eq!(
            json(&col(oid::FLOAT8, -1), Value::Float64(12_345_678.0)),
            "1.2345678E7"
        );
        assert_eq!(json(&col(oid::FLOAT8, -1), Value::Float64(0.001)), "0.001");
        assert_eq!(json(&col(oid::FLOAT4, -1), Value::Float32(3.3)), "3.3");
        assert_eq!(
            json(&col(oid::FLOAT8, -1), Value::Float64(f64::NAN)),
            "\"NaN\""
        );
        assert_eq!(
            json(&col(oid::TEXT, -1), "a\"\u{1}".into()),
            r#""a\"\u0001""#
        );
        assert_eq!(
            json(&col(oid::TEXT, -1), Value::UnchangedToast),
            "\"__debezium_unavailable_value\""
        );
        assert_eq!(json(&col(oid::INT4, -1), Value::UnchangedToast), "null");
    }

    #[test]
    fn big_decimals() {
        let digits = b"123456789012345678901234567890123456789012";
        let bytes = twos_complement(false, digits);
        // 0x0161 2A83 ... : check by converting back.
        let mut v: Vec<u8> = Vec::new();
        let mut n = bytes.clone();
        while n.iter().any(|&b| b != 0) {
            let mut rem = 0u32;
            for b in n.iter_mut() {
                let x = (rem << 8) | u32::from(*b);
                *b = (x / 10) as u8;
                rem = x % 10;
            }
            v.push(b'0' + rem as u8);
        }
        v.reverse();
        assert_eq!(v, digits);
        assert_eq!(twos_complement(true, b"128"), vec![0x80]);
        assert_eq!(twos_complement(true, b"129"), vec![0xff, 0x7f]);
        assert_eq!(twos_complement(false, b"128"), vec![0x00, 0x80]);
        assert_eq!(twos_complement(false, b"0"), vec![0]);
    }

    #[test]
    fn rounding_to_scale() {
        let d = Decimal::parse("1.005").unwrap();
        assert_eq!(d.unscaled_at(2), b"101");
        let d = Decimal::parse("9.99").unwrap();
        assert_eq!(d.unscaled_at(1), b"100");
        assert_eq!(d.unscaled_at(-2), b"0");
        assert_eq!(numeric_to_int("-2.5"), Some(-3));
        assert_eq!(numeric_to_int("2.49"), Some(2));
    }

    #[test]
    fn casts() {
        let n = Value::Numeric("12.50".into());
        assert_eq!(cast(&n, Target::Float8), Ok(Value::Float64(12.5)));
        assert_eq!(cast(&n, Target::Text), Ok(Value::Text("12.50".into())));
        assert_eq!(cast(&n, Target::Int4), Ok(Value::Int32(13)));
        assert_eq!(cast(&Value::Int32(7), Target::Text), Ok("7".into()));
        assert_eq!(
            cast(&Value::Int64(70_000), Target::Int2),
            Err("70000 is out of range for int2".into())
        );
        assert_eq!(
            cast(&Value::Float64(2.5), Target::Int8),
            Ok(Value::Int64(2))
        );
        assert_eq!(cast(&"yes".into(), Target::Bool), Ok(Value::Boolean(true)));
        assert!(cast(&"abc".into(), Target::Int4).is_err());
        assert!(cast(&"abc".into(), Target::Numeric).is_err());
        assert_eq!(
            cast(&" 3.25 ".into(), Target::Numeric),
            Ok(Value::Numeric("3.25".into()))
        );
        assert_eq!(cast(&Value::Null, Target::Int4), Ok(Value::Null));
        assert_eq!(
            cast(&Value::Date(17109), Target::Text),
            Ok("2016-11-04".into())
        );
        assert_eq!(
            cast(&Value::Timestamptz(1_478_267_490_123_456), Target::Text),
            Ok("2016-11-04 13:51:30.123456+00".into())
        );
        assert_eq!(
            cast(&Value::Float64(1e20), Target::Text),
            Ok("1e+20".into())
        );
        assert_eq!(cast(&Value::Float64(0.5), Target::Text), Ok("0.5".into()));
        assert_eq!(
            cast(&Value::Float64(1e20), Target::Numeric),
            Ok(Value::Numeric("100000000000000000000".into()))
        );
    }
}

//! PostgreSQL text output to typed [`Value`]s.
//!
//! Both pgoutput (text mode) and `COPY ... TO STDOUT` deliver column values in the type's text
//! output form. [`parse_value`] turns that text into a [`Value`], dispatching on the column's base
//! type oid, so a domain is parsed as the type it is declared over.
//!
//! The relay sets `DateStyle=ISO`, `TimeZone=UTC`, `IntervalStyle=postgres` and
//! `extra_float_digits=3` on its sessions, so dates and times arrive in ISO form; `timestamptz`
//! still accepts every UTC offset form PostgreSQL prints (`+02`, `-05:30`, `+05:53:28`).
//!
//! Types not listed in [`parse_value`] are carried as [`Value::Text`] for now.
//!
//! Calendar arithmetic is proleptic Gregorian (as PostgreSQL's), implemented here: `N BC` is the
//! astronomical year `1 - N`.
use std::borrow::Cow;

use thiserror::Error;

use crate::model::{Column, Value};

/// Oids of the built-in types [`parse_value`] knows (`pg_type.oid`, stable across versions).
pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
    pub const XML: u32 = 142;
    pub const POINT: u32 = 600;
    pub const CIDR: u32 = 650;
    pub const MACADDR8: u32 = 774;
    pub const MONEY: u32 = 790;
    pub const MACADDR: u32 = 829;
    pub const INET: u32 = 869;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const BIT: u32 = 1560;
    pub const VARBIT: u32 = 1562;
    pub const INT4RANGE: u32 = 3904;
    pub const NUMRANGE: u32 = 3906;
    pub const TSRANGE: u32 = 3908;
    pub const TSTZRANGE: u32 = 3910;
    pub const DATERANGE: u32 = 3912;
    pub const INT8RANGE: u32 = 3926;
}

/// Microseconds in a day.
const DAY_US: i64 = 86_400_000_000;

/// Longest excerpt of the offending text quoted in a [`ValueError`], in characters.
const MAX_QUOTED_CHARS: usize = 64;

/// A column value whose text could not be parsed as its type.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("invalid {type_name} value {text:?} for column \"{column}\": {reason}")]
pub struct ValueError {
    /// The column's name.
    pub column: String,
    /// The column's type name (for a domain, the domain's name and its base type).
    pub type_name: String,
    /// The offending text, cut to about 64 characters (`…` marks a cut).
    pub text: String,
    pub reason: String,
}

impl ValueError {
    fn new(column: &Column, text: &str, reason: impl Into<String>) -> Self {
        let base = base_oid(column);
        let builtin = builtin_name(base);
        let type_name = match (column.type_name.as_str(), builtin) {
            ("", Some(b)) => b.to_owned(),
            ("", None) => format!("type {base}"),
            (name, Some(b)) if base != column.type_oid && name != b => format!("{name} ({b})"),
            (name, _) => name.to_owned(),
        };
        let mut quoted: String = text.chars().take(MAX_QUOTED_CHARS).collect();
        if quoted.len() < text.len() {
            quoted.push('…');
        }
        ValueError {
            column: column.name.clone(),
            type_name,
            text: quoted,
            reason: reason.into(),
        }
    }
}

fn base_oid(column: &Column) -> u32 {
    if column.base_type_oid == 0 {
        column.type_oid
    } else {
        column.base_type_oid
    }
}

fn builtin_name(oid: u32) -> Option<&'static str> {
    Some(match oid {
        oid::BOOL => "bool",
        oid::BYTEA => "bytea",
        oid::CHAR => "char",
        oid::NAME => "name",
        oid::INT8 => "int8",
        oid::INT2 => "int2",
        oid::INT4 => "int4",
        oid::TEXT => "text",
        oid::OID => "oid",
        oid::JSON => "json",
        oid::FLOAT4 => "float4",
        oid::FLOAT8 => "float8",
        oid::BPCHAR => "bpchar",
        oid::VARCHAR => "varchar",
        oid::DATE => "date",
        oid::TIME => "time",
        oid::TIMESTAMP => "timestamp",
        oid::TIMESTAMPTZ => "timestamptz",
        oid::NUMERIC => "numeric",
        oid::UUID => "uuid",
        oid::JSONB => "jsonb",
        _ => return None,
    })
}

/// Parses PostgreSQL's text output of a value of `column`'s type.
///
/// | base type | value |
/// |---|---|
/// | `bool` | [`Value::Bool`] from `t`/`f` |
/// | `int2`, `int4` | [`Value::Int16`], [`Value::Int32`] |
/// | `int8`, `oid` | [`Value::Int64`] |
/// | `float4`, `float8` | [`Value::Float32`], [`Value::Float64`] (with `NaN`, `±Infinity`) |
/// | `numeric` | [`Value::Numeric`], the text as is (checked) |
/// | `text`, `varchar`, `bpchar`, `name`, `"char"` | [`Value::Text`] (bpchar padding kept) |
/// | `uuid` | [`Value::Uuid`], canonical lower case |
/// | `json`, `jsonb` | [`Value::Json`], the text as is |
/// | `bytea` | [`Value::Bytes`], from the hex (`\x…`) or the escape format |
/// | `date` | [`Value::Date`] |
/// | `time` | [`Value::Time`] |
/// | `timestamp`, `timestamptz` | [`Value::Timestamp`], [`Value::TimestampTz`] |
/// | anything else | [`Value::Text`], the text as is |
///
/// Timestamps that PostgreSQL accepts but that do not fit `i64` microseconds since 1970 (after
/// 294247-01-10 04:00:54.775806 UTC) are rejected, as are finite values colliding with the
/// `i64::MAX`/`i64::MIN` infinity markers.
pub fn parse_value(column: &Column, text: &str) -> Result<Value, ValueError> {
    parse_text(base_oid(column), text).map_err(|reason| ValueError::new(column, text, reason))
}

/// As [`parse_value`], taking the text: the types carried as text (`text`, `numeric`, `json`, and
/// every type without a typed [`Value`]) keep its allocation instead of copying it.
pub fn parse_value_owned(column: &Column, text: String) -> Result<Value, ValueError> {
    parse_cow(base_oid(column), Cow::Owned(text))
        .map_err(|(text, reason)| ValueError::new(column, &text, reason))
}

/// Parses PostgreSQL's text of a value of the (base) type `base_oid`. Types without a typed
/// [`Value`] stay [`Value::Text`].
pub fn parse_text(base_oid: u32, text: &str) -> Result<Value, Cow<'static, str>> {
    parse_cow(base_oid, Cow::Borrowed(text)).map_err(|(_, reason)| reason)
}

/// [`parse_text`] of borrowed or owned text; an error gives the text back with the reason.
fn parse_cow(
    base_oid: u32,
    text: Cow<'_, str>,
) -> Result<Value, (Cow<'_, str>, Cow<'static, str>)> {
    macro_rules! parsed {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(reason) => return Err((text, reason.into())),
            }
        };
    }
    Ok(match base_oid {
        oid::BOOL => match &*text {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            _ => return Err((text, "expected 't' or 'f'".into())),
        },
        oid::INT2 => Value::Int16(parsed!(parse_int(&text))),
        oid::INT4 => Value::Int32(parsed!(parse_int(&text))),
        oid::INT8 => Value::Int64(parsed!(parse_int(&text))),
        oid::OID => Value::Int64(i64::from(parsed!(parse_int::<u32>(&text)))),
        oid::FLOAT4 => Value::Float32(parsed!(parse_float::<f32>(&text))),
        oid::FLOAT8 => Value::Float64(parsed!(parse_float::<f64>(&text))),
        oid::NUMERIC => {
            parsed!(check_numeric(&text));
            Value::Numeric(text.into_owned())
        }
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::CHAR => {
            Value::Text(text.into_owned())
        }
        oid::UUID => Value::Uuid(parsed!(parse_uuid(&text))),
        oid::JSON | oid::JSONB => Value::Json(text.into_owned()),
        oid::BYTEA => Value::Bytes(parsed!(parse_bytea(&text))),
        oid::DATE => Value::Date(parsed!(parse_date(&text))),
        oid::TIME => Value::Time(parsed!(parse_time(&text))),
        oid::TIMESTAMP => Value::Timestamp(parsed!(parse_timestamp(&text, false))),
        oid::TIMESTAMPTZ => Value::TimestampTz(parsed!(parse_timestamp(&text, true))),
        _ => Value::Text(text.into_owned()),
    })
}

fn parse_int<T: std::str::FromStr>(text: &str) -> Result<T, &'static str> {
    // `FromStr` for integers accepts a leading '+', which PostgreSQL never prints but accepts.
    text.parse::<T>()
        .map_err(|_| "not an integer in the type's range")
}

trait Float: std::str::FromStr + Copy {
    const NAN: Self;
    const INFINITY: Self;
    const NEG_INFINITY: Self;
    fn is_finite(self) -> bool;
}

impl Float for f32 {
    const NAN: Self = f32::NAN;
    const INFINITY: Self = f32::INFINITY;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
}

impl Float for f64 {
    const NAN: Self = f64::NAN;
    const INFINITY: Self = f64::INFINITY;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
}

fn parse_float<T: Float>(text: &str) -> Result<T, &'static str> {
    match text {
        "NaN" => return Ok(T::NAN),
        "Infinity" => return Ok(T::INFINITY),
        "-Infinity" => return Ok(T::NEG_INFINITY),
        _ => {}
    }
    // Rust also accepts "inf", "nan" and friends: only let plain decimal notation through.
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && text.bytes().any(|b| b.is_ascii_digit());
    if !plain {
        return Err("not a floating-point number");
    }
    let v = text
        .parse::<T>()
        .map_err(|_| "not a floating-point number")?;
    if !v.is_finite() {
        return Err("out of the type's range");
    }
    Ok(v)
}

/// numeric output: `NaN`, `Infinity`, `-Infinity` or `-?digits(.digits)?`.
fn check_numeric(text: &str) -> Result<(), &'static str> {
    if matches!(text, "NaN" | "Infinity" | "-Infinity") {
        return Ok(());
    }
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits(int) && frac.is_none_or(digits) {
        Ok(())
    } else {
        Err("not a numeric value")
    }
}

/// Canonical `8-4-4-4-12` form (any case), or 32 bare hex digits; returned in lower case.
fn parse_uuid(text: &str) -> Result<String, &'static str> {
    const HYPHENS: [usize; 4] = [8, 13, 18, 23];
    let bytes = text.as_bytes();
    let valid = match bytes.len() {
        36 => bytes.iter().enumerate().all(|(i, b)| {
            if HYPHENS.contains(&i) {
                *b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        }),
        32 => bytes.iter().all(u8::is_ascii_hexdigit),
        _ => false,
    };
    if !valid {
        return Err("expected 32 hex digits in the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx");
    }
    let mut out = String::with_capacity(36);
    for b in bytes.iter().filter(|b| **b != b'-') {
        if HYPHENS.contains(&out.len()) {
            out.push('-');
        }
        out.push(char::from(b.to_ascii_lowercase()));
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// bytea output: hex format (`\x0102`, the default) or the legacy escape format.
fn parse_bytea(text: &str) -> Result<Vec<u8>, String> {
    if let Some(hex) = text.strip_prefix("\\x") {
        let hex = hex.as_bytes();
        if hex.len() % 2 != 0 {
            return Err("odd number of hex digits".into());
        }
        return hex
            .chunks_exact(2)
            .enumerate()
            .map(|(i, pair)| match pair {
                [hi, lo] => match (hex_value(*hi), hex_value(*lo)) {
                    (Some(h), Some(l)) => Ok((h << 4) | l),
                    (None, _) => Err(format!("invalid hex digit at byte {}", 2 + 2 * i)),
                    (_, None) => Err(format!("invalid hex digit at byte {}", 3 + 2 * i)),
                },
                _ => Err("odd number of hex digits".into()),
            })
            .collect();
    }
    // Escape format: bytes as is, except `\\` for a backslash and `\ooo` (octal) for any byte.
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        match bytes.get(i + 1..i + 4) {
            _ if bytes.get(i + 1) == Some(&b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some([d0 @ b'0'..=b'3', d1 @ b'0'..=b'7', d2 @ b'0'..=b'7']) => {
                out.push(((d0 - b'0') << 6) | ((d1 - b'0') << 3) | (d2 - b'0'));
                i += 4;
            }
            _ => return Err(format!("invalid escape sequence at byte {i}")),
        }
    }
    Ok(out)
}

/// Days from 1970-01-01 to the proleptic Gregorian date `year-month-day`, where `year` is
/// astronomical (1 BC is year 0). Counts in eras of 400 years (146 097 days), with years starting
/// on March 1st so that the leap day is the last day of a year.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400); // [0, 399]
    let m = i64::from(month);
    let day_of_year = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719 468 days separate 0000-03-01 from 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

fn is_leap(year: i64) -> bool {
    year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A cursor over ASCII text.
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor {
            s: text.as_bytes(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8, what: &str) -> Result<(), String> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(format!("expected {what} at character {}", self.pos))
        }
    }

    /// Between `min` and `max` decimal digits (`max` <= 18 so the value fits); returns the value
    /// and the number of digits.
    fn digits(&mut self, min: usize, max: usize, what: &str) -> Result<(i64, usize), String> {
        let start = self.pos;
        let mut value: i64 = 0;
        while self.pos - start < max {
            match self.peek() {
                Some(d @ b'0'..=b'9') => {
                    value = value * 10 + i64::from(d - b'0');
                    self.pos += 1;
                }
                _ => break,
            }
        }
        let n = self.pos - start;
        if n < min || matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(format!(
                "expected {what} ({min} to {max} digits) at character {start}"
            ));
        }
        Ok((value, n))
    }

    fn rest(&self) -> &'a [u8] {
        self.s.get(self.pos..).unwrap_or_default()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }
}

/// `YYYY-MM-DD` (year of 1 to 9 digits), validated; returns (year as printed, month, day).
fn read_date(c: &mut Cursor<'_>) -> Result<(i64, u32, u32), String> {
    let (year, _) = c.digits(1, 9, "a year")?;
    c.expect(b'-', "'-'")?;
    let (month, _) = c.digits(2, 2, "a month")?;
    c.expect(b'-', "'-'")?;
    let (day, _) = c.digits(2, 2, "a day")?;
    let month = u32::try_from(month).unwrap_or(0);
    let day = u32::try_from(day).unwrap_or(0);
    if !(1..=12).contains(&month) {
        return Err(format!("month {month} out of range"));
    }
    if year == 0 {
        return Err("year 0 does not exist (1 BC precedes 1 AD)".into());
    }
    Ok((year, month, day))
}

/// Applies an optional ` BC` suffix (which must then end the text) and checks the day of month;
/// returns days since 1970-01-01.
fn finish_date(c: &mut Cursor<'_>, (year, month, day): (i64, u32, u32)) -> Result<i64, String> {
    let year = if c.rest() == b" BC" {
        c.pos += 3;
        1 - year
    } else {
        year
    };
    if day == 0 || day > days_in_month(year, month) {
        return Err(format!("day {day} out of range for the month"));
    }
    Ok(days_from_civil(year, month, day))
}

/// `HH:MM:SS[.f{1,6}]`, `24:00:00` allowed; returns µs since midnight.
fn read_time(c: &mut Cursor<'_>) -> Result<i64, String> {
    let (h, _) = c.digits(2, 2, "an hour")?;
    c.expect(b':', "':'")?;
    let (m, _) = c.digits(2, 2, "minutes")?;
    c.expect(b':', "':'")?;
    let (s, _) = c.digits(2, 2, "seconds")?;
    let mut frac_us = 0;
    if c.eat(b'.') {
        let (f, n) = c.digits(1, 6, "fractional seconds")?;
        frac_us = f * 10_i64.pow(6 - n as u32);
    }
    if h > 24 || m > 59 || s > 59 || (h == 24 && (m, s, frac_us) != (0, 0, 0)) {
        return Err("time of day out of range".into());
    }
    Ok(((h * 60 + m) * 60 + s) * 1_000_000 + frac_us)
}

/// `±HH[:MM[:SS]]`; returns the offset east of UTC in µs.
fn read_offset(c: &mut Cursor<'_>) -> Result<i64, String> {
    let sign = match c.peek() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Err(format!("expected a UTC offset at character {}", c.pos)),
    };
    c.pos += 1;
    let (h, _) = c.digits(2, 2, "offset hours")?;
    let mut m = 0;
    let mut s = 0;
    if c.eat(b':') {
        m = c.digits(2, 2, "offset minutes")?.0;
        if c.eat(b':') {
            s = c.digits(2, 2, "offset seconds")?.0;
        }
    }
    if h > 23 || m > 59 || s > 59 {
        return Err("UTC offset out of range".into());
    }
    Ok(sign * ((h * 60 + m) * 60 + s) * 1_000_000)
}

fn trailing(c: &Cursor<'_>) -> Result<(), String> {
    if c.at_end() {
        Ok(())
    } else {
        Err(format!("unexpected text at character {}", c.pos))
    }
}

fn parse_date(text: &str) -> Result<i32, String> {
    match text {
        "infinity" => return Ok(i32::MAX),
        "-infinity" => return Ok(i32::MIN),
        _ => {}
    }
    let mut c = Cursor::new(text);
    let date = read_date(&mut c)?;
    let days = finish_date(&mut c, date)?;
    trailing(&c)?;
    i32::try_from(days)
        .ok()
        .filter(|d| *d != i32::MAX && *d != i32::MIN)
        .ok_or_else(|| "date out of range".into())
}

fn parse_time(text: &str) -> Result<i64, String> {
    let mut c = Cursor::new(text);
    let us = read_time(&mut c)?;
    trailing(&c)?;
    Ok(us)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][±HH[:MM[:SS]]][ BC]`; the offset is required for timestamptz
/// and refused for timestamp.
fn parse_timestamp(text: &str, with_tz: bool) -> Result<i64, String> {
    match text {
        "infinity" => return Ok(i64::MAX),
        "-infinity" => return Ok(i64::MIN),
        _ => {}
    }
    let mut c = Cursor::new(text);
    let date = read_date(&mut c)?;
    c.expect(b' ', "' '")?;
    let time_us = read_time(&mut c)?;
    let offset_us = if with_tz { read_offset(&mut c)? } else { 0 };
    let days = finish_date(&mut c, date)?;
    trailing(&c)?;
    let us = i128::from(days) * i128::from(DAY_US) + i128::from(time_us) - i128::from(offset_us);
    i64::try_from(us)
        .ok()
        .filter(|v| *v != i64::MAX && *v != i64::MIN)
        .ok_or_else(|| {
            "beyond the range of microseconds since 1970 in a signed 64-bit integer".into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(type_oid: u32, type_name: &str) -> Column {
        Column {
            name: "c".into(),
            type_oid,
            type_modifier: -1,
            type_name: type_name.into(),
            base_type_oid: type_oid,
            nullable: true,
            is_key: false,
            default: None,
            enum_labels: vec![],
        }
    }

    fn parse(type_oid: u32, text: &str) -> Result<Value, ValueError> {
        parse_value(
            &col(type_oid, builtin_name(type_oid).unwrap_or("other")),
            text,
        )
    }

    fn ok(type_oid: u32, text: &str) -> Value {
        match parse(type_oid, text) {
            Ok(v) => v,
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    fn err(type_oid: u32, text: &str) -> String {
        match parse(type_oid, text) {
            Ok(v) => panic!("{text:?} parsed as {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// Independent day count: walk whole years, then months, from 1970-01-01.
    fn naive_days(year: i64, month: u32, day: u32) -> i64 {
        let year_len = |y: i64| if is_leap_naive(y) { 366 } else { 365 };
        let mut days = 0i64;
        if year >= 1970 {
            for y in 1970..year {
                days += year_len(y);
            }
        } else {
            for y in year..1970 {
                days -= year_len(y);
            }
        }
        let lens = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        for (m, len) in lens.iter().enumerate().take(month as usize - 1) {
            days += len + i64::from(m == 1 && is_leap_naive(year));
        }
        days + i64::from(day) - 1
    }

    fn is_leap_naive(y: i64) -> bool {
        (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
    }

    #[test]
    fn civil_days_match_naive_count() {
        for &(y, m, d) in &[
            (1970, 1, 1),
            (1969, 12, 31),
            (2000, 2, 29),
            (2000, 3, 1),
            (1900, 2, 28),
            (1900, 3, 1),
            (2016, 11, 4),
            (1600, 2, 29),
            (1, 1, 1),
            (0, 1, 1),
            (0, 2, 29),
            (-4713, 11, 24),
            (-400, 3, 1),
            (-1, 12, 31),
            (9999, 12, 31),
            (294_276, 12, 31),
        ] {
            assert_eq!(days_from_civil(y, m, d), naive_days(y, m, d), "{y}-{m}-{d}");
        }
        // Every day of a span crossing several leap rules, consecutively.
        let mut expected = days_from_civil(1895, 1, 1);
        for y in 1895..2105 {
            for m in 1..=12 {
                for d in 1..=days_in_month(y, m) {
                    assert_eq!(days_from_civil(y, m, d), expected, "{y}-{m}-{d}");
                    expected += 1;
                }
            }
        }
        assert_eq!(expected, naive_days(2105, 1, 1));
    }

    #[test]
    fn dates() {
        assert_eq!(ok(oid::DATE, "2016-11-04"), Value::Date(17_109));
        assert_eq!(ok(oid::DATE, "1970-01-01"), Value::Date(0));
        assert_eq!(ok(oid::DATE, "1969-12-31"), Value::Date(-1));
        assert_eq!(ok(oid::DATE, "2000-02-29"), Value::Date(11_016));
        assert_eq!(ok(oid::DATE, "infinity"), Value::Date(i32::MAX));
        assert_eq!(ok(oid::DATE, "-infinity"), Value::Date(i32::MIN));
        // 1 BC is astronomical year 0, a leap year; 0001-01-01 AD is 719 162 days before 1970.
        assert_eq!(
            ok(oid::DATE, "0001-01-01"),
            Value::Date(-(365 * 1969 + 1969 / 4 - 1969 / 100 + 1969 / 400))
        );
        assert_eq!(ok(oid::DATE, "0001-01-01"), Value::Date(-719_162));
        assert_eq!(ok(oid::DATE, "0001-12-31 BC"), Value::Date(-719_163));
        assert_eq!(ok(oid::DATE, "0001-01-01 BC"), Value::Date(-719_162 - 366));
        assert_eq!(
            ok(oid::DATE, "0001-02-29 BC"),
            Value::Date(-719_162 - 366 + 59)
        );
        // PostgreSQL's minimum date is Julian day 0: 4714-11-24 BC.
        assert_eq!(
            ok(oid::DATE, "4714-11-24 BC"),
            Value::Date(naive_days(-4713, 11, 24) as i32)
        );
        assert_eq!(ok(oid::DATE, "4714-11-24 BC"), Value::Date(-2_440_588));
        // Large years print with more than four digits.
        assert_eq!(
            ok(oid::DATE, "294276-12-31"),
            Value::Date(naive_days(294_276, 12, 31) as i32)
        );
        assert_eq!(
            ok(oid::DATE, "5874897-12-31"),
            Value::Date(days_from_civil(5_874_897, 12, 31) as i32)
        );
    }

    #[test]
    fn malformed_dates() {
        let e = err(oid::DATE, "2016-02-30");
        assert_eq!(
            e,
            "invalid date value \"2016-02-30\" for column \"c\": day 30 out of range for the month"
        );
        assert!(err(oid::DATE, "2015-02-29").contains("day 29 out of range"));
        assert!(err(oid::DATE, "2016-13-01").contains("month 13 out of range"));
        assert!(err(oid::DATE, "0000-01-01").contains("year 0"));
        assert!(err(oid::DATE, "2016-1-04").contains("month"));
        assert!(err(oid::DATE, "2016-11-04 AD").contains("unexpected text"));
        assert!(err(oid::DATE, "2016-11-04 BC ").contains("unexpected text"));
        assert!(err(oid::DATE, "").starts_with("invalid date value \"\""));
        assert!(err(oid::DATE, "Infinity").contains("date"));
        assert!(err(oid::DATE, "04/11/2016").contains("date"));
        assert!(err(oid::DATE, "1234567890-01-01").contains("date"));
    }

    #[test]
    fn times() {
        assert_eq!(ok(oid::TIME, "00:00:00"), Value::Time(0));
        assert_eq!(
            ok(oid::TIME, "13:51:30.123456"),
            Value::Time(((13 * 60 + 51) * 60 + 30) * 1_000_000 + 123_456)
        );
        assert_eq!(ok(oid::TIME, "00:00:00.5"), Value::Time(500_000));
        assert_eq!(ok(oid::TIME, "00:00:00.000001"), Value::Time(1));
        assert_eq!(
            ok(oid::TIME, "23:59:59.999999"),
            Value::Time(86_399_999_999)
        );
        assert_eq!(ok(oid::TIME, "24:00:00"), Value::Time(86_400_000_000));
        assert!(err(oid::TIME, "24:00:01").contains("out of range"));
        assert!(err(oid::TIME, "12:60:00").contains("out of range"));
        assert!(err(oid::TIME, "12:00:00.1234567").starts_with("invalid time value"));
        assert!(err(oid::TIME, "12:00").contains("expected ':'"));
        assert!(err(oid::TIME, "12:00:00.").contains("fractional seconds"));
        assert!(err(oid::TIME, "12:00:00+02").contains("unexpected text"));
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            ok(oid::TIMESTAMP, "2016-11-04 13:51:30.123456"),
            Value::Timestamp(1_478_267_490_123_456)
        );
        assert_eq!(
            ok(oid::TIMESTAMP, "2016-11-04 13:51:30"),
            Value::Timestamp(1_478_267_490_000_000)
        );
        assert_eq!(
            ok(oid::TIMESTAMP, "2016-11-04 13:51:30.1"),
            Value::Timestamp(1_478_267_490_100_000)
        );
        assert_eq!(
            ok(oid::TIMESTAMP, "1970-01-01 00:00:00"),
            Value::Timestamp(0)
        );
        assert_eq!(
            ok(oid::TIMESTAMP, "1969-12-31 23:59:59.999999"),
            Value::Timestamp(-1)
        );
        assert_eq!(ok(oid::TIMESTAMP, "infinity"), Value::Timestamp(i64::MAX));
        assert_eq!(ok(oid::TIMESTAMP, "-infinity"), Value::Timestamp(i64::MIN));
        // 1 BC: astronomical year 0.
        let bc = naive_days(0, 1, 1) * DAY_US;
        assert_eq!(
            ok(oid::TIMESTAMP, "0001-01-01 00:00:00 BC"),
            Value::Timestamp(bc)
        );
        // 0001-01-01 AD is -62 135 596 800 s; 1 BC (a leap year) starts 366 days earlier.
        assert_eq!(bc, (-62_135_596_800 - 366 * 86_400) * 1_000_000);
        assert_eq!(bc, -62_167_219_200_000_000);
        assert_eq!(
            ok(oid::TIMESTAMP, "0044-03-15 12:00:00.25 BC"),
            Value::Timestamp(naive_days(-43, 3, 15) * DAY_US + 12 * 3_600_000_000 + 250_000)
        );
        // Largest finite value representable (i64::MAX is the infinity marker).
        assert_eq!(
            ok(oid::TIMESTAMP, "294247-01-10 04:00:54.775806"),
            Value::Timestamp(i64::MAX - 1)
        );
        assert_eq!(
            naive_days(294_247, 1, 10) * DAY_US + ((4 * 60) * 60 + 54) * 1_000_000 + 775_806,
            i64::MAX - 1
        );
        assert!(err(oid::TIMESTAMP, "294247-01-10 04:00:54.775807").contains("beyond the range"));
        // 24:00:00 is the next midnight.
        assert_eq!(
            ok(oid::TIMESTAMP, "2016-11-04 24:00:00"),
            ok(oid::TIMESTAMP, "2016-11-05 00:00:00")
        );
    }

    #[test]
    fn postgres_max_timestamp_does_not_fit_i64_since_1970() {
        // PostgreSQL's largest timestamp is 294276-12-31 23:59:59.999999 (µs since 2000 in an
        // i64); counted from 1970 it exceeds i64::MAX, so it cannot be a Value::Timestamp.
        let us =
            i128::from(naive_days(294_276, 12, 31)) * i128::from(DAY_US) + i128::from(DAY_US - 1);
        assert_eq!(us, 9_224_318_015_999_999_999);
        assert!(us > i128::from(i64::MAX));
        let e = err(oid::TIMESTAMP, "294276-12-31 23:59:59.999999");
        assert_eq!(
            e,
            "invalid timestamp value \"294276-12-31 23:59:59.999999\" for column \"c\": beyond \
             the range of microseconds since 1970 in a signed 64-bit integer"
        );
        assert!(err(oid::TIMESTAMPTZ, "294276-12-31 23:59:59.999999+00")
            .starts_with("invalid timestamptz value"));
    }

    #[test]
    fn timestamptz_offsets() {
        assert_eq!(
            ok(oid::TIMESTAMPTZ, "2016-11-04 13:51:30.123456+00"),
            Value::TimestampTz(1_478_267_490_123_456)
        );
        assert_eq!(
            ok(oid::TIMESTAMPTZ, "2016-11-04 13:51:30.123456+02"),
            Value::TimestampTz(1_478_260_290_123_456)
        );
        assert_eq!(
            ok(oid::TIMESTAMPTZ, "2016-11-04 13:51:30-05:30"),
            Value::TimestampTz(1_478_267_490_000_000 + (5 * 60 + 30) * 60_000_000)
        );
        assert_eq!(
            ok(oid::TIMESTAMPTZ, "2016-11-04 13:51:30+05:30:15"),
            Value::TimestampTz(1_478_267_490_000_000 - ((5 * 60 + 30) * 60 + 15) * 1_000_000)
        );
        // The offset can move the instant across midnight and the epoch.
        assert_eq!(
            ok(oid::TIMESTAMPTZ, "1970-01-01 01:00:00+02"),
            Value::TimestampTz(-3_600_000_000)
        );
        assert_eq!(
            ok(oid::TIMESTAMPTZ, "0001-01-01 00:00:00+00 BC"),
            Value::TimestampTz(naive_days(0, 1, 1) * DAY_US)
        );
        assert_eq!(
            ok(oid::TIMESTAMPTZ, "infinity"),
            Value::TimestampTz(i64::MAX)
        );
        assert_eq!(
            ok(oid::TIMESTAMPTZ, "-infinity"),
            Value::TimestampTz(i64::MIN)
        );
        assert!(err(oid::TIMESTAMPTZ, "2016-11-04 13:51:30").contains("expected a UTC offset"));
        assert!(err(oid::TIMESTAMPTZ, "2016-11-04 13:51:30+2").contains("offset hours"));
        assert!(err(oid::TIMESTAMPTZ, "2016-11-04 13:51:30+02:60").contains("out of range"));
        assert!(err(oid::TIMESTAMPTZ, "2016-11-04 13:51:30+02 BC x").contains("unexpected"));
        assert!(err(oid::TIMESTAMP, "2016-11-04 13:51:30+02").contains("unexpected text"));
        assert!(err(oid::TIMESTAMP, "2016-11-04T13:51:30").contains("expected ' '"));
    }

    #[test]
    fn booleans_and_integers() {
        assert_eq!(ok(oid::BOOL, "t"), Value::Bool(true));
        assert_eq!(ok(oid::BOOL, "f"), Value::Bool(false));
        assert_eq!(
            err(oid::BOOL, "yes"),
            "invalid bool value \"yes\" for column \"c\": expected 't' or 'f'"
        );
        assert_eq!(ok(oid::INT2, "-32768"), Value::Int16(i16::MIN));
        assert_eq!(ok(oid::INT4, "2147483647"), Value::Int32(i32::MAX));
        assert_eq!(
            ok(oid::INT8, "-9223372036854775808"),
            Value::Int64(i64::MIN)
        );
        assert_eq!(ok(oid::OID, "4294967295"), Value::Int64(4_294_967_295));
        assert!(err(oid::INT2, "32768").starts_with("invalid int2 value \"32768\""));
        assert!(err(oid::INT4, "1.5").starts_with("invalid int4 value"));
        assert!(err(oid::INT8, "").starts_with("invalid int8 value"));
        assert!(err(oid::OID, "-1").starts_with("invalid oid value"));
    }

    #[test]
    fn floats() {
        assert_eq!(ok(oid::FLOAT8, "1.5"), Value::Float64(1.5));
        assert_eq!(ok(oid::FLOAT8, "-0"), Value::Float64(-0.0));
        assert_eq!(
            ok(oid::FLOAT8, "0.30000000000000004"),
            Value::Float64(0.1 + 0.2)
        );
        assert_eq!(ok(oid::FLOAT8, "1e+300"), Value::Float64(1e300));
        assert_eq!(
            ok(oid::FLOAT8, "2.2250738585072014e-308"),
            Value::Float64(f64::MIN_POSITIVE)
        );
        assert_eq!(ok(oid::FLOAT4, "3.4028235e+38"), Value::Float32(f32::MAX));
        assert_eq!(ok(oid::FLOAT4, "0.1"), Value::Float32(0.1));
        assert_eq!(ok(oid::FLOAT8, "Infinity"), Value::Float64(f64::INFINITY));
        assert_eq!(
            ok(oid::FLOAT4, "-Infinity"),
            Value::Float32(f32::NEG_INFINITY)
        );
        match ok(oid::FLOAT8, "NaN") {
            Value::Float64(v) => assert!(v.is_nan()),
            other => panic!("{other:?}"),
        }
        match ok(oid::FLOAT4, "NaN") {
            Value::Float32(v) => assert!(v.is_nan()),
            other => panic!("{other:?}"),
        }
        assert!(err(oid::FLOAT8, "inf").starts_with("invalid float8 value \"inf\""));
        assert!(err(oid::FLOAT8, "nan").starts_with("invalid float8 value"));
        assert!(err(oid::FLOAT8, "1.5x").starts_with("invalid float8 value"));
        assert!(err(oid::FLOAT8, "e").starts_with("invalid float8 value"));
        assert!(err(oid::FLOAT4, "1e39").contains("out of the type's range"));
    }

    #[test]
    fn numeric_text_and_json_are_kept_as_is() {
        for t in [
            "-12.3400",
            "0",
            "123456789012345678901234567890.5",
            "NaN",
            "Infinity",
            "-Infinity",
        ] {
            assert_eq!(ok(oid::NUMERIC, t), Value::Numeric(t.to_owned()));
        }
        for t in ["1.", ".5", "1e5", "--1", "", "nan", "1.2.3"] {
            assert!(
                err(oid::NUMERIC, t).starts_with("invalid numeric value"),
                "{t}"
            );
        }
        assert_eq!(ok(oid::BPCHAR, "ab   "), Value::Text("ab   ".into()));
        assert_eq!(ok(oid::VARCHAR, ""), Value::Text(String::new()));
        assert_eq!(ok(oid::TEXT, "héllo\n\t"), Value::Text("héllo\n\t".into()));
        assert_eq!(ok(oid::NAME, "pg_class"), Value::Text("pg_class".into()));
        assert_eq!(ok(oid::CHAR, "x"), Value::Text("x".into()));
        assert_eq!(
            ok(oid::JSONB, r#"{"a": [1, 2]}"#),
            Value::Json(r#"{"a": [1, 2]}"#.into())
        );
        assert_eq!(ok(oid::JSON, " [1,2] "), Value::Json(" [1,2] ".into()));
    }

    #[test]
    fn uuids() {
        let canonical = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        assert_eq!(ok(oid::UUID, canonical), Value::Uuid(canonical.into()));
        assert_eq!(
            ok(oid::UUID, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"),
            Value::Uuid(canonical.into())
        );
        assert_eq!(
            ok(oid::UUID, "a0eebc999c0b4ef8bb6d6bb9bd380a11"),
            Value::Uuid(canonical.into())
        );
        for bad in [
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g",
            "a0eebc999-c0b-4ef8-bb6d-6bb9bd380a11",
            "",
        ] {
            assert!(
                err(oid::UUID, bad).starts_with("invalid uuid value"),
                "{bad}"
            );
        }
    }

    #[test]
    fn bytea_hex_and_escape() {
        assert_eq!(ok(oid::BYTEA, "\\x"), Value::Bytes(vec![]));
        assert_eq!(
            ok(oid::BYTEA, "\\x0102fFa0"),
            Value::Bytes(vec![1, 2, 0xff, 0xa0])
        );
        assert!(err(oid::BYTEA, "\\x012").contains("odd number of hex digits"));
        assert!(err(oid::BYTEA, "\\x0g").contains("invalid hex digit at byte 3"));
        // Escape format: printable bytes as is, `\\`, and `\ooo`.
        assert_eq!(
            ok(oid::BYTEA, "ab\\\\c\\000\\377\\012"),
            Value::Bytes(vec![b'a', b'b', b'\\', b'c', 0, 0xff, b'\n'])
        );
        assert_eq!(ok(oid::BYTEA, ""), Value::Bytes(vec![]));
        assert!(err(oid::BYTEA, "a\\").contains("invalid escape sequence at byte 1"));
        assert!(err(oid::BYTEA, "\\400").contains("invalid escape"));
        assert!(err(oid::BYTEA, "\\01").contains("invalid escape"));
    }

    #[test]
    fn other_types_are_text_and_domains_use_their_base() {
        let mut c = col(1186, "interval");
        assert_eq!(
            parse_value(&c, "1 day 02:00:00").unwrap(),
            Value::Text("1 day 02:00:00".into())
        );
        c = col(1007, "_int4");
        assert_eq!(
            parse_value(&c, "{1,2,NULL}").unwrap(),
            Value::Text("{1,2,NULL}".into())
        );
        // A domain over int4.
        let mut d = col(90_001, "positive_int");
        d.base_type_oid = oid::INT4;
        assert_eq!(parse_value(&d, "7").unwrap(), Value::Int32(7));
        assert_eq!(
            parse_value(&d, "x").unwrap_err().to_string(),
            "invalid positive_int (int4) value \"x\" for column \"c\": not an integer in the \
             type's range"
        );
        // A missing base oid falls back to the type oid.
        let mut z = col(oid::INT2, "");
        z.base_type_oid = 0;
        assert_eq!(parse_value(&z, "3").unwrap(), Value::Int16(3));
        assert!(parse_value(&z, "x")
            .unwrap_err()
            .to_string()
            .starts_with("invalid int2 value"));
    }

    #[test]
    fn error_text_is_truncated() {
        let long = "9".repeat(500);
        let e = parse(oid::INT4, &long).unwrap_err();
        assert_eq!(e.text, format!("{}…", "9".repeat(64)));
        assert_eq!(e.type_name, "int4");
        let multibyte = "é".repeat(100);
        let e = parse(oid::DATE, &multibyte).unwrap_err();
        assert_eq!(e.text.chars().count(), 65);
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let alphabet = b"0123456789-: .+BCinfty\\xe";
        let oids = [
            oid::DATE,
            oid::TIME,
            oid::TIMESTAMP,
            oid::TIMESTAMPTZ,
            oid::BYTEA,
            oid::UUID,
            oid::NUMERIC,
            oid::FLOAT4,
            oid::INT2,
        ];
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let s: String = (0..len)
                .map(|i| char::from(alphabet[((x >> (i % 50)) as usize + i * 7) % alphabet.len()]))
                .collect();
            for &o in &oids {
                let _ = parse(o, &s);
            }
        }
    }
}

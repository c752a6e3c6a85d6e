//! PostgreSQL columns as Kafka Connect data, the way Debezium's PostgreSQL connector maps them
//! under its defaults (`decimal.handling.mode=precise`, `time.precision.mode=adaptive`,
//! `binary.handling.mode=bytes`, `hstore.handling.mode=json`, `interval.handling.mode=numeric`).
//!
//! Every format writes what this module produces: [`ColumnType::of`] picks the Connect
//! [`Schema`] of a column once per table schema, [`ColumnType::datum`] converts a captured
//! [`Value`] into a [`Datum`] per event. The facts come from `/work/shared/reference/debezium-format.md`
//! section 4; where it is silent, from Debezium's `PostgresValueConverter`,
//! `PostgresDefaultValueConverter` and `JdbcValueConverters`, named where they decide.
//!
//! # How the values arrive
//!
//! The event model keeps the common types typed ([`Value::Int32`], [`Value::TimestampTz`], …);
//! every other type travels as PostgreSQL's own text ([`Value::Text`]) so plugins see exactly
//! what PostgreSQL printed, and this module parses that text when it writes Connect data: bit
//! strings, money, intervals, `timetz`, points, hstore, and arrays (`{…}` text, elements parsed
//! by their element type). The relay's sessions fix `DateStyle=ISO`, `IntervalStyle=postgres`,
//! `TimeZone=UTC` and `lc_monetary=C`, so those texts have one form.
//!
//! # Types walrelay does not map
//!
//! Like Debezium (`include.unknown.datatypes=false`), a column of a type with no mapping
//! (composite types, geometric types other than `point`, `tsvector`, multiranges, …) follows
//! [`UnknownTypes`]: left out of schema and payload (the default), written as its PostgreSQL
//! text, or refused.
use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::connect::{Datum, Schema, Type};
use crate::event::{Column, Value};
use crate::pg::text::{days_from_civil, oid, parse_text};

/// What Debezium writes for a TOASTed column PostgreSQL did not send (`unavailable.value.placeholder`).
pub const UNAVAILABLE_VALUE_PLACEHOLDER: &str = "__debezium_unavailable_value";

/// What to do with a column whose type walrelay cannot map (`format.unknown_types`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownTypes {
    /// Leave the column out of schema and payload, with one warning per column (Debezium's
    /// default, `include.unknown.datatypes=false`).
    #[default]
    Skip,
    /// Write it as a Connect `string` holding PostgreSQL's text of the value.
    Text,
    /// Refuse the table: encoding its first event fails with an error naming the column.
    Fail,
}

/// Why a value could not be converted (the caller adds table, column and LSN).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeErrorKind {
    #[error("NULL in a NOT NULL column")]
    NullInRequiredColumn,
    #[error("a {value} value does not fit the column type {type_name} (oid {oid})")]
    TypeMismatch {
        value: &'static str,
        type_name: String,
        oid: u32,
    },
    #[error(
        "numeric {0} has no Decimal form (Debezium's precise decimal mode rejects it as well)"
    )]
    SpecialNumeric(String),
    #[error("invalid numeric text {0:?}")]
    InvalidNumeric(String),
    #[error("invalid {what} text {text:?}: {reason}")]
    InvalidText {
        what: &'static str,
        text: String,
        reason: String,
    },
    #[error("unchanged TOAST value in a NOT NULL column whose type has no placeholder form")]
    UnchangedToast,
    #[error("the event has no {0} row")]
    MissingRow(&'static str),
    #[error("the row has {found} values but the table has {expected} columns")]
    RowLength { expected: usize, found: usize },
    #[error("type {type_name} (oid {oid}) has no Debezium mapping and format.unknown_types is `fail`: set it to `skip` (leave the column out) or `text` (write PostgreSQL's text), or exclude the column")]
    UnknownType { type_name: String, oid: u32 },
}

/// How a column is written: its Connect schema and payload form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// `org.apache.kafka.connect.data.Decimal`.
    Decimal {
        precision: i32,
        scale: i32,
    },
    /// `io.debezium.data.VariableScaleDecimal`.
    VariableDecimal,
    /// `money`: a Decimal of scale 2 without precision.
    Money,
    /// Plain `string`: text types, network addresses, ranges, citext, and unknown types under
    /// `unknown_types: text`.
    Text,
    Uuid,
    Json,
    /// `hstore`, as a JSON object text (`hstore.handling.mode=json`).
    Hstore,
    Xml,
    Ltree,
    Enum,
    /// `bit(n>1)`/`varbit`: `io.debezium.data.Bits`, little-endian bytes.
    Bits {
        length: i32,
    },
    Bytes,
    Date,
    TimeMillis,
    TimeMicros,
    /// `timetz`: `io.debezium.time.ZonedTime`, in UTC.
    ZonedTime,
    TimestampMillis,
    TimestampMicros,
    /// `io.debezium.time.ZonedTimestamp` with this many fraction digits.
    ZonedTimestamp {
        digits: u8,
    },
    /// `interval`: `io.debezium.time.MicroDuration`.
    Interval,
    /// `point`: `io.debezium.data.geometry.Point`.
    Point,
    /// A one-dimensional array; elements are optional.
    Array {
        element: Box<Kind>,
        /// The element type's oid, to parse the elements' text.
        element_oid: u32,
    },
}

/// A column's Connect form, decided once per table schema.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnType {
    /// Written with this kind and schema (the schema has no field name; see [`Schema::field`]).
    Mapped { kind: Kind, schema: Schema },
    /// Left out of schema and payload (`unknown_types: skip`).
    Skipped,
}

/// Builtin array types: array oid → element oid.
const ARRAYS: &[(u32, u32)] = &[
    (1000, oid::BOOL),
    (1001, oid::BYTEA),
    (1002, oid::CHAR),
    (1003, oid::NAME),
    (1005, oid::INT2),
    (1007, oid::INT4),
    (1009, oid::TEXT),
    (1014, oid::BPCHAR),
    (1015, oid::VARCHAR),
    (1016, oid::INT8),
    (1021, oid::FLOAT4),
    (1022, oid::FLOAT8),
    (1028, oid::OID),
    (1041, oid::INET),
    (651, oid::CIDR),
    (1040, oid::MACADDR),
    (775, oid::MACADDR8),
    (1182, oid::DATE),
    (1183, oid::TIME),
    (1115, oid::TIMESTAMP),
    (1185, oid::TIMESTAMPTZ),
    (1187, oid::INTERVAL),
    (1231, oid::NUMERIC),
    (1270, oid::TIMETZ),
    (1561, oid::BIT),
    (1563, oid::VARBIT),
    (2951, oid::UUID),
    (199, oid::JSON),
    (3807, oid::JSONB),
    (791, oid::MONEY),
    (143, oid::XML),
    (1017, oid::POINT),
    (3905, oid::INT4RANGE),
    (3907, oid::NUMRANGE),
    (3909, oid::TSRANGE),
    (3911, oid::TSTZRANGE),
    (3913, oid::DATERANGE),
    (3927, oid::INT8RANGE),
];

/// Extension types Debezium maps by name (their oids differ per database).
fn extension_kind(type_name: &str) -> Option<Kind> {
    Some(match type_name {
        "citext" => Kind::Text,
        "hstore" => Kind::Hstore,
        "ltree" => Kind::Ltree,
        _ => return None,
    })
}

/// The kind of a (non-array) type, or `None` when walrelay has no mapping for it.
fn scalar_kind(
    base_oid: u32,
    typmod: i32,
    type_name: &str,
    enum_labels: &[String],
) -> Option<Kind> {
    if !enum_labels.is_empty() {
        return Some(Kind::Enum);
    }
    Some(match base_oid {
        oid::BOOL => Kind::Bool,
        // bit(1) is a boolean; so is varbit(1) (Debezium 2.7+, PostgresValueConverter).
        oid::BIT | oid::VARBIT if typmod == 1 => Kind::Bool,
        oid::BIT | oid::VARBIT => Kind::Bits { length: typmod },
        oid::INT2 => Kind::Int16,
        oid::INT4 => Kind::Int32,
        oid::INT8 | oid::OID => Kind::Int64,
        oid::FLOAT4 => Kind::Float32,
        oid::FLOAT8 => Kind::Float64,
        oid::NUMERIC => match numeric_typmod(typmod) {
            Some((precision, scale)) => Kind::Decimal { precision, scale },
            None => Kind::VariableDecimal,
        },
        oid::MONEY => Kind::Money,
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::CHAR => Kind::Text,
        oid::INET | oid::CIDR | oid::MACADDR | oid::MACADDR8 => Kind::Text,
        oid::INT4RANGE
        | oid::NUMRANGE
        | oid::TSRANGE
        | oid::TSTZRANGE
        | oid::DATERANGE
        | oid::INT8RANGE => Kind::Text,
        oid::UUID => Kind::Uuid,
        oid::JSON | oid::JSONB => Kind::Json,
        oid::XML => Kind::Xml,
        oid::BYTEA => Kind::Bytes,
        oid::DATE => Kind::Date,
        // time.precision.mode=adaptive: precision 0..3 in milliseconds, else microseconds.
        oid::TIME if (0..=3).contains(&typmod) => Kind::TimeMillis,
        oid::TIME => Kind::TimeMicros,
        oid::TIMETZ => Kind::ZonedTime,
        oid::TIMESTAMP if (0..=3).contains(&typmod) => Kind::TimestampMillis,
        oid::TIMESTAMP => Kind::TimestampMicros,
        oid::TIMESTAMPTZ => Kind::ZonedTimestamp {
            digits: if (0..=6).contains(&typmod) {
                typmod as u8
            } else {
                6
            },
        },
        oid::INTERVAL => Kind::Interval,
        oid::POINT => Kind::Point,
        _ => return extension_kind(type_name),
    })
}

impl Kind {
    /// The column's kind; `None` when walrelay has no mapping for its type.
    pub fn of(col: &Column) -> Option<Kind> {
        let typmod = col.type_modifier;
        if let Some(&(_, element_oid)) = ARRAYS.iter().find(|(a, _)| *a == col.base_type_oid) {
            let element = scalar_kind(element_oid, typmod, "", &[])?;
            return Some(Kind::Array {
                element: Box::new(element),
                element_oid,
            });
        }
        if let Some(element_name) = col.type_name.strip_prefix('_') {
            // Arrays of enums (the catalog gives the element's labels) and of extension types.
            let element = if col.enum_labels.is_empty() {
                extension_kind(element_name)?
            } else {
                Kind::Enum
            };
            return Some(Kind::Array {
                element: Box::new(element),
                element_oid: oid::TEXT,
            });
        }
        scalar_kind(col.base_type_oid, typmod, &col.type_name, &col.enum_labels)
    }

    fn is_string(&self) -> bool {
        matches!(
            self,
            Kind::Text
                | Kind::Uuid
                | Kind::Json
                | Kind::Hstore
                | Kind::Xml
                | Kind::Ltree
                | Kind::Enum
                | Kind::ZonedTime
        )
    }

    /// The Connect schema of a value of this kind (`optional`, no default).
    fn schema(&self, col: &Column, optional: bool) -> Schema {
        let s = |ty: Type| Schema::new(ty, optional);
        let named = |ty: Type, name: &str| Schema::new(ty, optional).named(name).version(1);
        match self {
            Kind::Bool => s(Type::Boolean),
            Kind::Int16 => s(Type::Int16),
            Kind::Int32 => s(Type::Int32),
            Kind::Int64 => s(Type::Int64),
            Kind::Float32 => s(Type::Float32),
            Kind::Float64 => s(Type::Float64),
            Kind::Decimal { precision, scale } => {
                named(Type::Bytes, "org.apache.kafka.connect.data.Decimal")
                    .param("scale", scale.to_string())
                    .param("connect.decimal.precision", precision.to_string())
            }
            Kind::VariableDecimal => Schema::structure(
                "io.debezium.data.VariableScaleDecimal",
                optional,
                vec![
                    Schema::new(Type::Int32, false).field("scale"),
                    Schema::new(Type::Bytes, false).field("value"),
                ],
            )
            .version(1)
            .doc("Variable scaled decimal"),
            Kind::Money => {
                named(Type::Bytes, "org.apache.kafka.connect.data.Decimal").param("scale", "2")
            }
            Kind::Text => s(Type::String),
            Kind::Uuid => named(Type::String, "io.debezium.data.Uuid"),
            Kind::Json | Kind::Hstore => named(Type::String, "io.debezium.data.Json"),
            Kind::Xml => named(Type::String, "io.debezium.data.Xml"),
            Kind::Ltree => named(Type::String, "io.debezium.data.Ltree"),
            Kind::Enum => named(Type::String, "io.debezium.data.Enum")
                .param("allowed", col.enum_labels.join(",")),
            Kind::Bits { length } => named(Type::Bytes, "io.debezium.data.Bits").param(
                "length",
                // An unconstrained varbit: Integer.MAX_VALUE, the length pgjdbc reports.
                if *length > 0 {
                    length.to_string()
                } else {
                    i32::MAX.to_string()
                },
            ),
            Kind::Bytes => s(Type::Bytes),
            Kind::Date => named(Type::Int32, "io.debezium.time.Date"),
            Kind::TimeMillis => named(Type::Int32, "io.debezium.time.Time"),
            Kind::TimeMicros => named(Type::Int64, "io.debezium.time.MicroTime"),
            Kind::ZonedTime => named(Type::String, "io.debezium.time.ZonedTime"),
            Kind::TimestampMillis => named(Type::Int64, "io.debezium.time.Timestamp"),
            Kind::TimestampMicros => named(Type::Int64, "io.debezium.time.MicroTimestamp"),
            Kind::ZonedTimestamp { .. } => named(Type::String, "io.debezium.time.ZonedTimestamp"),
            Kind::Interval => named(Type::Int64, "io.debezium.time.MicroDuration"),
            // io.debezium.data.geometry.Point.builder().
            Kind::Point => Schema::structure(
                "io.debezium.data.geometry.Point",
                optional,
                vec![
                    Schema::new(Type::Float64, false).field("x"),
                    Schema::new(Type::Float64, false).field("y"),
                    Schema::new(Type::Bytes, true).field("wkb"),
                    Schema::new(Type::Int32, true).field("srid"),
                ],
            )
            .version(1)
            .doc("Geometry (POINT)"),
            // Items are optional, except enum items: Debezium builds an enum array as
            // `SchemaBuilder.array(Enum.builder(labels))`, whose items are required
            // (RecordsSnapshotProducerIT.shouldSnapshotEnumArrayAsKnownType, DBZ-1969).
            Kind::Array { element, .. } => s(Type::Array(Box::new(
                element.schema(col, !matches!(**element, Kind::Enum)),
            ))),
        }
    }
}

impl ColumnType {
    /// Decides a column's form. `Err` only under [`UnknownTypes::Fail`].
    pub fn of(col: &Column, unknown: UnknownTypes) -> Result<ColumnType, EncodeErrorKind> {
        let kind = match Kind::of(col) {
            Some(k) => k,
            None => match unknown {
                UnknownTypes::Skip => return Ok(ColumnType::Skipped),
                UnknownTypes::Text => Kind::Text,
                UnknownTypes::Fail => {
                    return Err(EncodeErrorKind::UnknownType {
                        type_name: col.type_name.clone(),
                        oid: col.type_oid,
                    })
                }
            },
        };
        let default = column_default(col, &kind);
        let schema = kind.schema(col, col.nullable).with_default(default);
        Ok(ColumnType::Mapped { kind, schema })
    }
}

/// `numeric(p,s)`'s typmod is `((p << 16) | s) + 4`; PostgreSQL 15+ stores `s` as an 11-bit
/// signed field (negative scales). `None` for an unconstrained `numeric`.
fn numeric_typmod(typmod: i32) -> Option<(i32, i32)> {
    if typmod < 4 {
        return None;
    }
    let t = typmod - 4;
    let precision = (t >> 16) & 0xffff;
    let scale = ((t & 0x7ff) ^ 1024) - 1024;
    Some((precision, scale))
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

fn invalid(what: &'static str, text: &str, reason: impl Into<String>) -> EncodeErrorKind {
    EncodeErrorKind::InvalidText {
        what,
        text: text.to_string(),
        reason: reason.into(),
    }
}

fn mismatch(v: &Value) -> EncodeErrorKind {
    // Type name and oid are filled in by the caller, which knows the column.
    EncodeErrorKind::TypeMismatch {
        value: value_name(v),
        type_name: String::new(),
        oid: 0,
    }
}

impl Kind {
    /// Converts a non-null, available value. [`Value::Null`] and [`Value::UnchangedToast`] are
    /// the caller's (they depend on the column's optionality, default and the format).
    pub fn datum<'a>(&self, v: &'a Value) -> Result<Datum<'a>, EncodeErrorKind> {
        Ok(match (self, v) {
            (Kind::Bool, Value::Bool(b)) => Datum::Boolean(*b),
            (Kind::Bool, Value::Text(t)) => match t.as_str() {
                // bit(1) / varbit(1)
                "1" => Datum::Boolean(true),
                "0" => Datum::Boolean(false),
                _ => return Err(invalid("bit", t, "expected 0 or 1")),
            },
            (Kind::Int16, Value::Int16(x)) => Datum::Int16(*x),
            (Kind::Int32, Value::Int16(x)) => Datum::Int32(i32::from(*x)),
            (Kind::Int32, Value::Int32(x)) => Datum::Int32(*x),
            (Kind::Int64, Value::Int16(x)) => Datum::Int64(i64::from(*x)),
            (Kind::Int64, Value::Int32(x)) => Datum::Int64(i64::from(*x)),
            (Kind::Int64, Value::Int64(x)) => Datum::Int64(*x),
            (Kind::Float32, Value::Float32(x)) => Datum::Float32(*x),
            (Kind::Float64, Value::Float32(x)) => Datum::Float64(f64::from(*x)),
            (Kind::Float64, Value::Float64(x)) => Datum::Float64(*x),
            (Kind::Decimal { scale, .. }, Value::Numeric(text)) => {
                let dec = parse_numeric(text)?;
                let digits = dec
                    .unscaled_at(*scale, true)
                    .ok_or_else(|| EncodeErrorKind::InvalidNumeric(text.clone()))?;
                Datum::Bytes(Cow::Owned(twos_complement(dec.negative, &digits)))
            }
            (Kind::VariableDecimal, Value::Numeric(text)) => {
                let dec = parse_numeric(text)?;
                let (digits, scale) = dec.stripped();
                Datum::Struct(vec![
                    Datum::Int32(scale as i32),
                    Datum::Bytes(Cow::Owned(twos_complement(dec.negative, &digits))),
                ])
            }
            (Kind::Money, Value::Text(t)) => Datum::Bytes(Cow::Owned(money_bytes(t)?)),
            (
                Kind::Text | Kind::Uuid | Kind::Json | Kind::Enum | Kind::Xml | Kind::Ltree,
                Value::Text(s),
            )
            | (Kind::Text | Kind::Uuid, Value::Uuid(s))
            | (Kind::Text | Kind::Json, Value::Json(s))
            | (Kind::Text, Value::Numeric(s)) => Datum::str(s),
            (Kind::Hstore, Value::Text(t)) => Datum::string(hstore_json(t)?),
            (Kind::Bits { .. }, Value::Text(t)) => Datum::Bytes(Cow::Owned(bits_bytes(t)?)),
            (Kind::Bytes, Value::Bytes(b)) => Datum::Bytes(Cow::Borrowed(b)),
            (Kind::Date, Value::Date(d)) => Datum::Int32(date_days(*d)),
            (Kind::TimeMillis, Value::Time(us)) => Datum::Int32(us.div_euclid(1000) as i32),
            (Kind::TimeMicros, Value::Time(us)) => Datum::Int64(*us),
            (Kind::ZonedTime, Value::Text(t)) => Datum::string(zoned_time(t)?),
            (Kind::TimestampMillis, Value::Timestamp(us)) => Datum::Int64(match *us {
                i64::MAX => PG_POSITIVE_INFINITY / 1000,
                i64::MIN => PG_NEGATIVE_INFINITY / 1000,
                us => us.div_euclid(1000),
            }),
            (Kind::TimestampMicros, Value::Timestamp(us)) => Datum::Int64(match *us {
                i64::MAX => PG_POSITIVE_INFINITY,
                i64::MIN => PG_NEGATIVE_INFINITY,
                us => us,
            }),
            (Kind::ZonedTimestamp { digits }, Value::TimestampTz(us)) => match *us {
                // PostgresValueConverter.convertTimestampWithZone returns PostgreSQL's own text.
                i64::MAX => Datum::str("infinity"),
                i64::MIN => Datum::str("-infinity"),
                us => {
                    let mut s = String::with_capacity(32);
                    push_zoned_timestamp(&mut s, us, *digits);
                    Datum::string(s)
                }
            },
            (Kind::Interval, Value::Text(t)) => Datum::Int64(interval_micros(t)?),
            (Kind::Point, Value::Text(t)) => {
                let (x, y) = parse_point(t)?;
                point_datum(x, y)
            }
            (
                Kind::Array {
                    element,
                    element_oid,
                },
                Value::Text(t),
            ) => {
                let mut items = Vec::new();
                for item in parse_array(t)? {
                    items.push(match item {
                        None => Datum::Null,
                        Some(text) => {
                            let v = parse_text(*element_oid, &text)
                                .map_err(|reason| invalid("array element", &text, reason))?;
                            element.datum(&v)?.into_owned()
                        }
                    });
                }
                Datum::Array(items)
            }
            (_, other) => return Err(mismatch(other)),
        })
    }

    /// The value written for an unchanged TOASTed column (`PostgresValueConverter`: the
    /// placeholder for string and bytes columns, nothing for others).
    pub fn toast_placeholder(&self) -> Option<Datum<'static>> {
        match self {
            Kind::Bytes => Some(Datum::Bytes(Cow::Borrowed(
                UNAVAILABLE_VALUE_PLACEHOLDER.as_bytes(),
            ))),
            k if k.is_string() => Some(Datum::str(UNAVAILABLE_VALUE_PLACEHOLDER)),
            // Arrays of text: Debezium writes a one-element list holding the placeholder.
            Kind::Array { element, .. } if element.is_string() => {
                Some(Datum::Array(vec![Datum::str(
                    UNAVAILABLE_VALUE_PLACEHOLDER,
                )]))
            }
            _ => None,
        }
    }

    /// What Debezium writes for a NULL in a NOT NULL column without a default in a key-only
    /// old row (the `fallback` arguments of the `JdbcValueConverters`/`PostgresValueConverter`
    /// converters).
    pub fn fallback(&self) -> Datum<'static> {
        match self {
            Kind::Bool => Datum::Boolean(false),
            Kind::Int16 => Datum::Int16(0),
            Kind::Int32 | Kind::Date | Kind::TimeMillis => Datum::Int32(0),
            Kind::Int64
            | Kind::TimeMicros
            | Kind::TimestampMillis
            | Kind::TimestampMicros
            | Kind::Interval => Datum::Int64(0),
            Kind::Float32 => Datum::Float32(0.0),
            Kind::Float64 => Datum::Float64(0.0),
            Kind::Decimal { .. } | Kind::Money => Datum::Bytes(Cow::Borrowed(&[0])),
            Kind::VariableDecimal => {
                Datum::Struct(vec![Datum::Int32(0), Datum::Bytes(Cow::Borrowed(&[0]))])
            }
            Kind::Hstore => Datum::str("{}"),
            Kind::Text | Kind::Uuid | Kind::Json | Kind::Enum | Kind::Xml | Kind::Ltree => {
                Datum::str("")
            }
            Kind::Bits { .. } | Kind::Bytes => Datum::Bytes(Cow::Borrowed(&[])),
            Kind::ZonedTime => Datum::str("00:00:00Z"),
            // fallbackTimestampWithTimeZone: ZonedTimestamp.toIsoString(epoch, …, null fraction).
            Kind::ZonedTimestamp { .. } => Datum::str("1970-01-01T00:00:00Z"),
            Kind::Point => point_datum(0.0, 0.0),
            Kind::Array { .. } => Datum::Array(Vec::new()),
        }
    }
}

pub fn value_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::UnchangedToast => "unchanged-TOAST",
        Value::Bool(_) => "bool",
        Value::Int16(_) => "int16",
        Value::Int32(_) => "int32",
        Value::Int64(_) => "int64",
        Value::Float32(_) => "float32",
        Value::Float64(_) => "float64",
        Value::Numeric(_) => "numeric",
        Value::Text(_) => "text",
        Value::Bytes(_) => "bytes",
        Value::Uuid(_) => "uuid",
        Value::Json(_) => "json",
        Value::Date(_) => "date",
        Value::Time(_) => "time",
        Value::Timestamp(_) => "timestamp",
        Value::TimestampTz(_) => "timestamptz",
    }
}

/// pgjdbc's `PGStatement.DATE_POSITIVE_INFINITY`, which Debezium reads as µs for `timestamp`.
const PG_POSITIVE_INFINITY: i64 = 9_223_372_036_825_200_000;
/// pgjdbc's `PGStatement.DATE_NEGATIVE_INFINITY`.
const PG_NEGATIVE_INFINITY: i64 = -9_223_372_036_832_400_000;

/// Epoch days, with PostgreSQL's infinities as Debezium's sentinel dates
/// (`PostgresValueConverter.POSITIVE_INFINITY_LOCAL_DATE` = +5877611-06-21,
/// `NEGATIVE_INFINITY_LOCAL_DATE` = -5877611-06-22).
fn date_days(d: i32) -> i32 {
    match d {
        i32::MAX => days_from_civil(5_877_611, 6, 21) as i32,
        i32::MIN => days_from_civil(-5_877_611, 6, 22) as i32,
        d => d,
    }
}

// ---------------------------------------------------------------------------------------------
// numeric and money
// ---------------------------------------------------------------------------------------------

/// A finite numeric in PostgreSQL's text form, split into its parts.
struct Numeric<'a> {
    negative: bool,
    int: &'a str,
    frac: &'a str,
}

fn parse_numeric(text: &str) -> Result<Numeric<'_>, EncodeErrorKind> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("nan")
        || t.eq_ignore_ascii_case("infinity")
        || t.eq_ignore_ascii_case("+infinity")
        || t.eq_ignore_ascii_case("-infinity")
    {
        return Err(EncodeErrorKind::SpecialNumeric(t.to_string()));
    }
    parse_decimal_text(t).ok_or_else(|| EncodeErrorKind::InvalidNumeric(text.to_string()))
}

/// `[+-]digits[.digits]` (at least one digit).
fn parse_decimal_text(t: &str) -> Option<Numeric<'_>> {
    let (negative, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    Some(Numeric {
        negative,
        int,
        frac,
    })
}

impl Numeric<'_> {
    /// The unscaled value's decimal digits at `scale` (leading zeros possible). With `round`,
    /// surplus fraction digits are rounded half away from zero; without it, `None` when a
    /// dropped digit is not zero (Java's `setScale` without a rounding mode).
    fn unscaled_at(&self, scale: i32, round: bool) -> Option<Vec<u8>> {
        let mut digits: Vec<u8> = Vec::with_capacity(self.int.len() + self.frac.len() + 8);
        digits.extend(self.int.bytes());
        digits.extend(self.frac.bytes());
        let have = self.frac.len() as i64;
        let want = i64::from(scale);
        if want >= have {
            digits.extend(std::iter::repeat_n(b'0', (want - have) as usize));
            return Some(digits);
        }
        let drop = (have - want) as usize;
        let keep = digits.len().saturating_sub(drop);
        let dropped = &digits[keep..];
        let first_dropped = if drop > digits.len() {
            b'0'
        } else {
            dropped.first().copied().unwrap_or(b'0')
        };
        if !round && dropped.iter().any(|&d| d != b'0') {
            return None;
        }
        let up = round && first_dropped >= b'5';
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
        Some(digits)
    }

    /// Java's `stripTrailingZeros()` then a negative scale set back to 0 (what Debezium does for
    /// a variable-scale numeric): the unscaled digits and the scale.
    fn stripped(&self) -> (Vec<u8>, usize) {
        let frac = self.frac.trim_end_matches('0');
        let mut digits: Vec<u8> = Vec::with_capacity(self.int.len() + frac.len());
        digits.extend(self.int.bytes());
        digits.extend(frac.bytes());
        let scale = if digits.iter().all(|&d| d == b'0') {
            0 // BigDecimal.ZERO
        } else {
            frac.len()
        };
        (digits, scale)
    }
}

/// The unscaled value (decimal `digits`, sign apart) as Java's `BigInteger.toByteArray()`:
/// big-endian two's complement, minimal length.
fn twos_complement(negative: bool, digits: &[u8]) -> Vec<u8> {
    let significant = {
        let first = digits
            .iter()
            .position(|&d| d != b'0')
            .unwrap_or(digits.len());
        &digits[first..]
    };
    if significant.len() <= 38 {
        // Fast path: fits an i128.
        let mut m: i128 = 0;
        for &d in significant {
            m = m * 10 + i128::from(d - b'0');
        }
        if negative {
            m = -m;
        }
        let bytes = m.to_be_bytes();
        let mut start = 0;
        while start < 15 {
            let (b0, b1) = (bytes[start], bytes[start + 1]);
            let redundant = (b0 == 0x00 && b1 & 0x80 == 0) || (b0 == 0xff && b1 & 0x80 != 0);
            if !redundant {
                break;
            }
            start += 1;
        }
        bytes[start..].to_vec()
    } else {
        big_twos_complement(negative, significant)
    }
}

/// Two's complement bytes of an arbitrarily long decimal (no leading zeros, non-empty).
fn big_twos_complement(negative: bool, digits: &[u8]) -> Vec<u8> {
    // Magnitude in little-endian base-2^32 limbs, built by multiply-and-add per 9 digits.
    let mut limbs: Vec<u64> = Vec::with_capacity(digits.len() / 9 + 1);
    for chunk_start in (0..digits.len()).step_by(9) {
        let chunk = &digits[chunk_start..(chunk_start + 9).min(digits.len())];
        let mut mul: u64 = 1;
        let mut add: u64 = 0;
        for &d in chunk {
            mul *= 10;
            add = add * 10 + u64::from(d - b'0');
        }
        let mut carry = add;
        for limb in limbs.iter_mut() {
            let x = *limb * mul + carry;
            *limb = x & 0xffff_ffff;
            carry = x >> 32;
        }
        while carry > 0 {
            limbs.push(carry & 0xffff_ffff);
            carry >>= 32;
        }
    }
    let mut mag: Vec<u8> = Vec::with_capacity(limbs.len() * 4 + 1);
    for limb in limbs.iter().rev() {
        mag.extend_from_slice(&(*limb as u32).to_be_bytes());
    }
    let first = mag.iter().position(|&b| b != 0).unwrap_or(mag.len());
    let mut mag = mag.split_off(first);
    if mag.is_empty() {
        mag.push(0);
    }
    if !negative {
        if mag[0] & 0x80 != 0 {
            mag.insert(0, 0);
        }
        return mag;
    }
    // Negate: invert and add one.
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

/// `money` text (`$1,234.56`, `-$1,234.56`; the sessions use `lc_monetary=C`) as the Decimal
/// bytes at scale 2 (Debezium's `money.fraction.digits` default).
fn money_bytes(text: &str) -> Result<Vec<u8>, EncodeErrorKind> {
    let t = text.trim();
    let negative = t.starts_with('-') || (t.starts_with('(') && t.ends_with(')'));
    let digits: String = t
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let dec = parse_decimal_text(&digits).ok_or_else(|| invalid("money", text, "no amount"))?;
    let dec = Numeric { negative, ..dec };
    let unscaled = dec
        .unscaled_at(2, true)
        .ok_or_else(|| invalid("money", text, "bad amount"))?;
    Ok(twos_complement(dec.negative, &unscaled))
}

// ---------------------------------------------------------------------------------------------
// bits, hstore, points, arrays
// ---------------------------------------------------------------------------------------------

/// A bit string (`'1011'`) as Debezium writes it (`PostgresValueConverter.convertBits`): the
/// rightmost character is bit 0, the bytes are that number little-endian, as many as the
/// highest set bit needs (none for all zeros).
fn bits_bytes(text: &str) -> Result<Vec<u8>, EncodeErrorKind> {
    let bits = text.as_bytes();
    if let Some(i) = bits.iter().position(|b| !matches!(b, b'0' | b'1')) {
        return Err(invalid(
            "bit",
            text,
            format!("character {} is not 0 or 1", i + 1),
        ));
    }
    let n = bits.len();
    let highest = bits.iter().position(|&b| b == b'1').map(|i| n - i);
    let len = highest.map_or(0, |h| h.div_ceil(8));
    let mut out = vec![0u8; len];
    for (i, &b) in bits.iter().enumerate() {
        if b == b'1' {
            let bit = n - 1 - i;
            out[bit / 8] |= 1 << (bit % 8);
        }
    }
    Ok(out)
}

/// `hstore` text (`"a"=>"1", "b"=>NULL`) as the JSON object text Debezium writes
/// (`hstore.handling.mode=json`): pgjdbc's `HStoreConverter.fromString` fills a
/// `java.util.HashMap`, which Jackson writes in the map's iteration order. That order is
/// reproduced: entries sorted (stably, from PostgreSQL's order) by their bucket in a table of
/// the size the map would have grown to.
fn hstore_json(text: &str) -> Result<String, EncodeErrorKind> {
    let pairs = parse_hstore(text).map_err(|reason| invalid("hstore", text, reason))?;
    let mut cap = 16usize;
    while pairs.len() > cap * 3 / 4 {
        cap *= 2;
    }
    let mut order: Vec<(usize, &(String, Option<String>))> = pairs
        .iter()
        .map(|p| (java_hash_bucket(&p.0, cap), p))
        .collect();
    order.sort_by_key(|(bucket, _)| *bucket);
    let mut out = String::with_capacity(text.len() + 2);
    out.push('{');
    for (i, (_, (k, v))) in order.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        super::json::write_json_str(&mut out, k);
        out.push(':');
        match v {
            Some(v) => super::json::write_json_str(&mut out, v),
            None => out.push_str("null"),
        }
    }
    out.push('}');
    Ok(out)
}

/// The bucket of a key in a `java.util.HashMap` of capacity `cap`: `String.hashCode()` over
/// UTF-16 units, spread by `h ^ (h >>> 16)`.
fn java_hash_bucket(key: &str, cap: usize) -> usize {
    let mut h: i32 = 0;
    for unit in key.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    let h = h ^ ((h as u32) >> 16) as i32;
    (h as u32 as usize) & (cap - 1)
}

fn parse_hstore(text: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let skip_ws = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
    };
    let quoted = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> Result<String, String> {
        if chars.next() != Some('"') {
            return Err("expected a quoted string".into());
        }
        let mut s = String::new();
        loop {
            match chars.next() {
                Some('\\') => s.push(chars.next().ok_or("unterminated escape")?),
                Some('"') => return Ok(s),
                Some(c) => s.push(c),
                None => return Err("unterminated string".into()),
            }
        }
    };
    loop {
        skip_ws(&mut chars);
        if chars.peek().is_none() {
            return Ok(out);
        }
        let key = quoted(&mut chars)?;
        skip_ws(&mut chars);
        if chars.next() != Some('=') || chars.next() != Some('>') {
            return Err("expected =>".into());
        }
        skip_ws(&mut chars);
        let value = if chars.peek() == Some(&'"') {
            Some(quoted(&mut chars)?)
        } else {
            let word: String =
                std::iter::from_fn(|| chars.next_if(|c| c.is_ascii_alphabetic())).collect();
            if !word.eq_ignore_ascii_case("null") {
                return Err(format!("unexpected value {word:?}"));
            }
            None
        };
        out.push((key, value));
        skip_ws(&mut chars);
        match chars.next() {
            Some(',') | None => {}
            Some(c) => return Err(format!("unexpected {c:?}")),
        }
    }
}

/// `(x,y)` → the coordinates.
fn parse_point(text: &str) -> Result<(f64, f64), EncodeErrorKind> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| invalid("point", text, "expected (x,y)"))?;
    let (x, y) = inner
        .split_once(',')
        .ok_or_else(|| invalid("point", text, "expected (x,y)"))?;
    let num = |s: &str| {
        s.trim()
            .parse::<f64>()
            .map_err(|e| invalid("point", text, e.to_string()))
    };
    Ok((num(x)?, num(y)?))
}

/// `Point.createValue`: x, y, the WKB of the point (byte order 1, type 1, x, y little-endian),
/// no SRID.
fn point_datum(x: f64, y: f64) -> Datum<'static> {
    let mut wkb = Vec::with_capacity(21);
    wkb.push(1);
    wkb.extend_from_slice(&1u32.to_le_bytes());
    wkb.extend_from_slice(&x.to_le_bytes());
    wkb.extend_from_slice(&y.to_le_bytes());
    Datum::Struct(vec![
        Datum::Float64(x),
        Datum::Float64(y),
        Datum::Bytes(Cow::Owned(wkb)),
        Datum::Null,
    ])
}

/// A one-dimensional array's text (`{1,NULL,"a b"}`, optionally `[lo:hi]=` first) → its
/// elements' texts, `None` for NULL.
fn parse_array(text: &str) -> Result<Vec<Option<String>>, EncodeErrorKind> {
    let bad = |reason: &str| invalid("array", text, reason);
    let mut body = text.trim();
    if body.starts_with('[') {
        body = body
            .split_once('=')
            .map(|(_, b)| b)
            .ok_or_else(|| bad("bad dimension decoration"))?;
    }
    let inner = body
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .ok_or_else(|| bad("expected {…}"))?;
    let mut out = Vec::new();
    if inner.trim().is_empty() {
        return Ok(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            Some('{') => return Err(bad("multi-dimensional arrays are not supported")),
            Some('"') => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => {
                            s.push(chars.next().ok_or_else(|| bad("unterminated escape"))?)
                        }
                        Some('"') => break,
                        Some(c) => s.push(c),
                        None => return Err(bad("unterminated quoted element")),
                    }
                }
                out.push(Some(s));
            }
            _ => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    if c == '\\' {
                        chars.next();
                        s.push(chars.next().ok_or_else(|| bad("unterminated escape"))?);
                        continue;
                    }
                    s.push(c);
                    chars.next();
                }
                let s = s.trim_end().to_string();
                out.push(if s.eq_ignore_ascii_case("null") {
                    None
                } else {
                    Some(s)
                });
            }
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            Some(',') => {}
            None => return Ok(out),
            Some(c) => return Err(invalid("array", text, format!("unexpected {c:?}"))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Intervals and times
// ---------------------------------------------------------------------------------------------

/// An `interval` in `IntervalStyle=postgres` text (`1 year 2 mons 3 days 04:05:06.78`,
/// `-1 days +02:00:00`) as Debezium's `MicroDuration.durationMicros` computes it: a month is
/// 365.25/12 days, the sum is taken in doubles and truncated, as Java does.
fn interval_micros(text: &str) -> Result<i64, EncodeErrorKind> {
    let bad = |reason: &str| invalid("interval", text, reason);
    let (mut years, mut months, mut days) = (0i64, 0i64, 0i64);
    let (mut hours, mut minutes, mut seconds) = (0i64, 0i64, 0f64);
    let mut words = text.split_whitespace().peekable();
    while let Some(w) = words.next() {
        if w.contains(':') {
            let (negative, hms) = match w.as_bytes()[0] {
                b'-' => (true, &w[1..]),
                b'+' => (false, &w[1..]),
                _ => (false, w),
            };
            let mut parts = hms.split(':');
            let h: i64 = parts
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| bad("bad hours"))?;
            let m: i64 = parts
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| bad("bad minutes"))?;
            let s: f64 = match parts.next() {
                Some(p) => p.parse().map_err(|_| bad("bad seconds"))?,
                None => 0.0,
            };
            let sign = if negative { -1 } else { 1 };
            hours += sign * h;
            minutes += sign * m;
            seconds += if negative { -s } else { s };
            continue;
        }
        let n: i64 = w.parse().map_err(|_| bad("expected a number"))?;
        let unit = words.next().ok_or_else(|| bad("a number without a unit"))?;
        match unit.trim_end_matches('s') {
            "year" => years += n,
            "mon" => months += n,
            "day" => days += n,
            _ => return Err(bad("unknown unit")),
        }
    }
    const DAYS_PER_MONTH_AVG: f64 = 365.25 / 12.0;
    let number_of_days = ((years * 12 + months) as f64) * DAYS_PER_MONTH_AVG + days as f64;
    let number_of_seconds =
        ((number_of_days * 24.0 + hours as f64) * 60.0 + minutes as f64) * 60.0 + seconds;
    Ok((number_of_seconds * 1e6) as i64)
}

/// `timetz` text (`13:51:30.123789+02`) → `io.debezium.time.ZonedTime`: the time moved to UTC,
/// printed as `java.time`'s `ISO_OFFSET_TIME` does (seconds always, the fraction without
/// trailing zeros, `Z`).
fn zoned_time(text: &str) -> Result<String, EncodeErrorKind> {
    let bad = |reason: &str| invalid("timetz", text, reason);
    let split = text.rfind(['+', '-']).ok_or_else(|| bad("no UTC offset"))?;
    let (time, offset) = text.split_at(split);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut parts = hms.split(':');
    let mut next = |what: &str| -> Result<i64, EncodeErrorKind> {
        match parts.next() {
            Some(p) => p.parse().map_err(|_| bad(what)),
            None => Ok(0),
        }
    };
    let (h, m, s) = (
        next("bad hours")?,
        next("bad minutes")?,
        next("bad seconds")?,
    );
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("bad fraction"));
    }
    let mut micros = 0i64;
    for i in 0..6 {
        micros = micros * 10 + frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
    }
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let mut off = 0i64;
    for (i, part) in offset[1..].split(':').enumerate() {
        let v: i64 = part.parse().map_err(|_| bad("bad offset"))?;
        off += v * [3600, 60, 1].get(i).ok_or_else(|| bad("bad offset"))?;
    }
    let local = ((h * 60 + m) * 60 + s) * 1_000_000 + micros;
    let utc = (local - sign * off * 1_000_000).rem_euclid(86_400_000_000);
    let secs = utc / 1_000_000;
    let mut out = String::with_capacity(20);
    push_padded(&mut out, (secs / 3600) as u64, 2);
    out.push(':');
    push_padded(&mut out, (secs / 60 % 60) as u64, 2);
    out.push(':');
    push_padded(&mut out, (secs % 60) as u64, 2);
    let frac = utc % 1_000_000;
    if frac != 0 {
        out.push('.');
        let mut digits = String::new();
        push_padded(&mut digits, frac as u64, 6);
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('Z');
    Ok(out)
}

/// Days since 1970-01-01 → the date.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYY-MM-DDTHH:MM:SS[.f{digits}]Z` of µs since the epoch (Debezium's `ZonedTimestamp` with a
/// fixed fraction width; years past 9999 get a `+`, as `java.time` prints them).
pub(crate) fn push_zoned_timestamp(out: &mut String, us: i64, digits: u8) {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    if y > 9999 {
        out.push('+');
        out.push_str(&y.to_string());
    } else if y < 0 {
        out.push('-');
        push_padded(out, y.unsigned_abs(), 4);
    } else {
        push_padded(out, y as u64, 4);
    }
    out.push('-');
    push_padded(out, u64::from(m), 2);
    out.push('-');
    push_padded(out, u64::from(d), 2);
    out.push('T');
    push_padded(out, (sod / 3600) as u64, 2);
    out.push(':');
    push_padded(out, (sod / 60 % 60) as u64, 2);
    out.push(':');
    push_padded(out, (sod % 60) as u64, 2);
    if digits > 0 {
        out.push('.');
        let frac = micros as u64 / 10u64.pow(6 - u32::from(digits.min(6)));
        push_padded(out, frac, usize::from(digits.min(6)));
    }
    out.push('Z');
}

fn push_padded(out: &mut String, v: u64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let s = buf.format(v);
    for _ in s.len()..width {
        out.push('0');
    }
    out.push_str(s);
}

// ---------------------------------------------------------------------------------------------
// Column defaults (PostgresDefaultValueConverter)
// ---------------------------------------------------------------------------------------------

/// The column default as a Connect value, or `None` (no default, or not one Debezium parses).
///
/// A literal is parsed per type; a function call (`name(...)`) or a `CURRENT_TIMESTAMP`-like
/// keyword gives the type's placeholder (`0`, `0.0`, `false`, `""`, `"{}"` for json, the zero
/// uuid, the epoch); `bytea`, `name`, `oid`, domains, arrays, points, bits and unmapped types
/// get none; a variable-scale numeric gets none either (a struct default, KAFKA-12694); a
/// numeric literal that would need rounding gets none. Unlike Debezium, a quoted literal's
/// `''` is unescaped to `'` and a string type needs a quoted literal (an unquoted expression
/// such as `CURRENT_USER` gives no default).
fn column_default(col: &Column, kind: &Kind) -> Option<Datum<'static>> {
    // Debezium picks a parser by type name: a domain's name has none.
    if col.type_oid != col.base_type_oid {
        return None;
    }
    let expr = col.default.as_deref()?.trim();
    if expr.is_empty() || expr.eq_ignore_ascii_case("null") || expr.starts_with("NULL::") {
        return None;
    }
    let generated = is_generated_default(expr);
    // The literal text, or the type's placeholder for a generated default.
    let (text, quoted) = if generated {
        let placeholder = match kind {
            Kind::Bool => "f",
            Kind::Float32 | Kind::Float64 => "0.0",
            Kind::Decimal { .. } | Kind::Money => "0",
            Kind::Json => "{}",
            Kind::Uuid => "00000000-0000-0000-0000-000000000000",
            Kind::Date | Kind::TimestampMillis | Kind::TimestampMicros => "1970-01-01",
            Kind::ZonedTimestamp { .. } => "1970-01-01 00:00:00+00",
            Kind::TimeMillis | Kind::TimeMicros => "00:00:00",
            Kind::ZonedTime => "00:00:00+00",
            Kind::Interval => "00:00:00",
            Kind::Text | Kind::Xml | Kind::Ltree => "",
            _ => "0",
        };
        (placeholder.to_string(), true)
    } else {
        literal(expr)?
    };
    let text = text.trim();
    let value = match kind {
        Kind::Bool => Value::Bool(match text.to_ascii_lowercase().as_str() {
            "true" | "t" => true,
            "false" | "f" => false,
            _ => return None,
        }),
        Kind::Int64 if col.base_type_oid == oid::OID => return None,
        Kind::Decimal { scale, .. } => {
            let dec = parse_decimal_text(text)?;
            let digits = dec.unscaled_at(*scale, false)?;
            return Some(Datum::Bytes(Cow::Owned(twos_complement(
                dec.negative,
                &digits,
            ))));
        }
        Kind::Money => return money_bytes(text).ok().map(|b| Datum::Bytes(Cow::Owned(b))),
        Kind::Text => {
            if !matches!(col.base_type_oid, oid::TEXT | oid::VARCHAR | oid::BPCHAR) || !quoted {
                return None;
            }
            Value::Text(text.to_string())
        }
        Kind::Json | Kind::Xml | Kind::Ltree if !quoted => return None,
        Kind::Enum => {
            // extractEnumDefault: `'label'::type_name`.
            let body = expr
                .strip_suffix(col.type_name.as_str())?
                .strip_suffix("::")?;
            let label = body.strip_prefix('\'')?.strip_suffix('\'')?;
            return Some(Datum::string(label.replace("''", "'")));
        }
        Kind::VariableDecimal
        | Kind::Bytes
        | Kind::Bits { .. }
        | Kind::Point
        | Kind::Hstore
        | Kind::Array { .. } => return None,
        Kind::Json | Kind::Xml | Kind::Ltree | Kind::ZonedTime | Kind::Interval => {
            Value::Text(text.to_string())
        }
        _ => parse_text(col.base_type_oid, text).ok()?,
    };
    let value = match (kind, value) {
        (Kind::Json, Value::Text(t)) => Value::Json(t),
        (_, v) => v,
    };
    kind.datum(&value).ok().map(Datum::into_owned)
}

/// Debezium's `FUNCTION_DEFAULT_PATTERN` (`^[(]?[A-Za-z0-9_.]+\((?:.+(?:, ?.+)*)?\)`) or one of
/// the SQL date/time keywords.
fn is_generated_default(expr: &str) -> bool {
    const KEYWORDS: [&str; 5] = [
        "current_timestamp",
        "current_time",
        "current_date",
        "localtime",
        "localtimestamp",
    ];
    if KEYWORDS.iter().any(|k| expr.eq_ignore_ascii_case(k)) {
        return true;
    }
    let s = expr.strip_prefix('(').unwrap_or(expr);
    let ident_len = s
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.')
        .count();
    ident_len > 0 && s[ident_len..].starts_with('(') && s[ident_len + 1..].contains(')')
}

/// A default's literal: the contents of a leading `'…'` (with `''` unescaped) when only a cast
/// follows it, else the bare expression without a trailing cast. The flag says it was quoted.
fn literal(expr: &str) -> Option<(String, bool)> {
    if let Some(rest) = expr.strip_prefix('\'') {
        let mut s = String::with_capacity(rest.len());
        let mut iter = rest.char_indices().peekable();
        while let Some((i, c)) = iter.next() {
            if c == '\'' {
                if matches!(iter.peek(), Some((_, '\''))) {
                    iter.next();
                    s.push('\'');
                    continue;
                }
                let tail = rest[i + 1..].trim_start();
                return (tail.is_empty() || tail.starts_with("::")).then_some((s, true));
            }
            s.push(c);
        }
        None
    } else if expr.contains('\'') {
        None
    } else {
        let bare = expr.split("::").next().unwrap_or(expr).trim();
        Some((bare.to_string(), false))
    }
}

/// Standard Base64 with padding (how Connect's converters write bytes).
pub fn base64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(d: Datum<'_>) -> String {
        match d {
            Datum::Bytes(b) => base64(&b),
            other => panic!("not bytes: {other:?}"),
        }
    }

    #[test]
    fn bits_are_little_endian_numbers() {
        // Reference section 4: '11'::bit(2) → "Aw==".
        assert_eq!(base64(&bits_bytes("11").unwrap()), "Aw==");
        // 0b1_0000_0001 = 257 → [0x01, 0x01].
        assert_eq!(bits_bytes("100000001").unwrap(), vec![0x01, 0x01]);
        // Leading zeros add no bytes; all zeros give none (BitSet.length() = 0).
        assert_eq!(bits_bytes("00000101").unwrap(), vec![0x05]);
        assert_eq!(bits_bytes("000").unwrap(), Vec::<u8>::new());
        assert!(bits_bytes("102").is_err());
    }

    #[test]
    fn money_is_a_scale_2_decimal() {
        // Reference section 4: $1234.11 → "AeIT" (123411 = 0x01E213).
        assert_eq!(
            b64(Kind::Money.datum(&Value::Text("$1,234.11".into())).unwrap()),
            "AeIT"
        );
        // -123411 = 0xFE1DED.
        assert_eq!(
            b64(Kind::Money
                .datum(&Value::Text("-$1,234.11".into()))
                .unwrap()),
            "/h3t"
        );
        assert_eq!(
            b64(Kind::Money.datum(&Value::Text("$0.00".into())).unwrap()),
            "AA=="
        );
    }

    #[test]
    fn intervals_follow_micro_duration() {
        // Reference section 4: P1Y2M3DT4H5M6.78S → 37091106780000.
        assert_eq!(
            interval_micros("1 year 2 mons 3 days 04:05:06.78").unwrap(),
            37_091_106_780_000
        );
        assert_eq!(interval_micros("00:00:01").unwrap(), 1_000_000);
        assert_eq!(
            interval_micros("-1 days +02:00:00").unwrap(),
            -79_200_000_000
        );
        assert_eq!(interval_micros("-00:00:00.5").unwrap(), -500_000);
        assert_eq!(interval_micros("1 mon").unwrap(), 2_629_800_000_000);
        assert!(interval_micros("3 fortnights").is_err());
    }

    #[test]
    fn timetz_moves_to_utc() {
        // Reference section 4: "11:51:30.123789Z".
        assert_eq!(
            zoned_time("13:51:30.123789+02").unwrap(),
            "11:51:30.123789Z"
        );
        assert_eq!(zoned_time("01:00:00+02").unwrap(), "23:00:00Z");
        assert_eq!(zoned_time("23:30:00.5-01:30").unwrap(), "01:00:00.5Z");
    }

    #[test]
    fn hstore_in_java_hash_map_order() {
        assert_eq!(hstore_json(r#""key"=>"val""#).unwrap(), r#"{"key":"val"}"#);
        // "a".hashCode() = 97 → bucket 1; "b" = 98 → bucket 2: PostgreSQL's order is kept.
        assert_eq!(
            hstore_json(r#""b"=>"2", "a"=>NULL"#).unwrap(),
            r#"{"a":null,"b":"2"}"#
        );
        // "q" = 113 → bucket 1, "c" = 99 → bucket 3: q before c.
        assert_eq!(
            hstore_json(r#""c"=>"1", "q"=>"2""#).unwrap(),
            r#"{"q":"2","c":"1"}"#
        );
        assert_eq!(
            hstore_json(r#""a\"b"=>"x\\y""#).unwrap(),
            r#"{"a\"b":"x\\y"}"#
        );
        assert_eq!(hstore_json("").unwrap(), "{}");
    }

    #[test]
    fn arrays_parse_quoted_and_null_elements() {
        assert_eq!(
            parse_array(r#"{1,NULL,"a b","x\"y","NULL"}"#).unwrap(),
            vec![
                Some("1".into()),
                None,
                Some("a b".into()),
                Some("x\"y".into()),
                Some("NULL".into())
            ]
        );
        assert_eq!(parse_array("{}").unwrap(), Vec::<Option<String>>::new());
        assert_eq!(
            parse_array("[0:1]={7,8}").unwrap(),
            vec![Some("7".into()), Some("8".into())]
        );
        assert!(parse_array("{{1,2},{3,4}}").is_err());
    }

    #[test]
    fn points_carry_wkb() {
        let text = Value::Text("(1,2.5)".into());
        let Datum::Struct(fields) = Kind::Point.datum(&text).unwrap() else {
            panic!()
        };
        assert_eq!(fields[0], Datum::Float64(1.0));
        assert_eq!(fields[1], Datum::Float64(2.5));
        // 01 | 01000000 | 1.0 LE | 2.5 LE
        assert_eq!(b64(fields[2].clone()), "AQEAAAAAAAAAAADwPwAAAAAAAARA");
        assert_eq!(fields[3], Datum::Null);
    }
}

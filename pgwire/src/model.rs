//! The values the decoder and the parsers produce, shared with the engine's change-event model
//! (`walrelay::event` re-exports them): WAL positions, captured columns and typed column values.
use std::fmt;

/// A PostgreSQL write-ahead-log position (`pg_lsn`), printed as `X/Y` in hex halves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    pub const ZERO: Lsn = Lsn(0);

    /// Parses PostgreSQL's `X/Y` text form.
    pub fn parse(s: &str) -> Option<Lsn> {
        let (hi, lo) = s.trim().split_once('/')?;
        let hi = u32::from_str_radix(hi, 16).ok()?;
        let lo = u32::from_str_radix(lo, 16).ok()?;
        Some(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

/// One column of a table as captured: the pgoutput Relation message gives name, type and key
/// flag; the catalog (read when the relation is first seen, best effort) adds nullability, the
/// default expression and enum labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    /// `pg_type.oid` of the column type (for a domain, the domain's oid; see `base_type_oid`).
    pub type_oid: u32,
    /// `atttypmod` (for a domain, the domain's): precision/scale for numeric, length for varchar/bit, fraction digits for
    /// time types; `-1` when the type has none.
    pub type_modifier: i32,
    /// The type's name (`pg_type.typname`), e.g. `numeric`, `timestamptz`, `_int4`, or an enum's name.
    pub type_name: String,
    /// For a domain, the oid of the base type it is declared over; equal to `type_oid` otherwise.
    pub base_type_oid: u32,
    /// `NOT NULL` absent. Relation messages do not carry it: from the catalog.
    pub nullable: bool,
    /// Part of the event key: the primary key, or the replica identity index when there is none.
    pub is_key: bool,
    /// The default expression as `pg_get_expr` prints it (`now()`, `'x'::text`, `0`), if any.
    pub default: Option<String>,
    /// For an enum type (or an array of one), the labels in sort order; empty otherwise.
    pub enum_labels: Vec<String>,
}

/// A column value, decoded from PostgreSQL's text output into a typed form.
///
/// Time values are integers so encoders never re-parse text: dates in days and timestamps in
/// microseconds since 1970-01-01 (a `timestamp` without time zone is its wall clock read as UTC).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    /// The column is TOASTed and unchanged by this update; PostgreSQL did not send its value.
    UnchangedToast,
    Bool(bool),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    /// `numeric`, in PostgreSQL's own text form (`-12.3400`, `NaN`, `Infinity`): exact.
    Numeric(String),
    /// text, varchar, bpchar (padding kept), name, citext and any type carried as text.
    Text(String),
    Bytes(Vec<u8>),
    /// A uuid in its canonical lower-case text form.
    Uuid(String),
    /// json or jsonb, in PostgreSQL's own text form of the value.
    Json(String),
    /// Days since 1970-01-01. `infinity`/`-infinity` are `i32::MAX`/`i32::MIN`.
    Date(i32),
    /// Microseconds since midnight (`24:00:00` is 86 400 000 000).
    Time(i64),
    /// A `timestamp` (without time zone): microseconds since 1970-01-01 00:00, wall clock as UTC.
    /// `infinity`/`-infinity` are `i64::MAX`/`i64::MIN`. PostgreSQL's last ~29 years
    /// (after 294247-01-10) do not fit and are refused by the parser.
    Timestamp(i64),
    /// A `timestamptz`: microseconds since 1970-01-01 00:00 UTC. Infinities as for `Timestamp`.
    TimestampTz(i64),
}

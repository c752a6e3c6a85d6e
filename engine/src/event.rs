//! The change-event model: what capture produces, what the plugin chain sees, what encoders write.
//!
//! # CDC semantics carried by these types
//!
//! * **Positions.** Every event carries the [`Lsn`] of the WAL record it came from. The position
//!   that is *confirmed* to PostgreSQL is not on the event: it belongs to the pipeline, which
//!   confirms a transaction's commit LSN only after every event of that transaction (and of all
//!   before it) was acknowledged by the broker. Nothing a plugin does can move it.
//! * **Replica identity** decides what `before` holds (see [`ReplicaIdentity`]): with `DEFAULT` an
//!   update that keeps the key has no `before`, a delete has a `before` in which only the key
//!   columns carry values (the rest are [`Value::Null`]); with `FULL` both carry the whole old row.
//! * **TOAST.** An update that leaves a large (TOASTed) value untouched does not ship that value
//!   under `DEFAULT` identity. The model keeps this explicit as [`Value::UnchangedToast`] rather
//!   than inventing a value; encoders choose how to write it (Debezium writes a placeholder).
//! * **Rows are positional** against the [`TableSchema`] they were decoded with. A schema change
//!   (a new pgoutput Relation message) produces a new `Arc<TableSchema>`; events decoded before it
//!   keep the old one.
use std::fmt;
use std::sync::Arc;

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

/// What the table's `REPLICA IDENTITY` makes PostgreSQL log as the old row of updates and deletes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaIdentity {
    /// `DEFAULT` (`d`): old key columns only, and only when the key changed or on delete.
    Default,
    /// `FULL` (`f`): the whole old row on every update and delete.
    Full,
    /// `USING INDEX` (`i`): the old values of the index's columns, as for `DEFAULT`.
    Index,
    /// `NOTHING` (`n`): no old row at all; deletes carry no identifying values.
    Nothing,
}

impl ReplicaIdentity {
    /// From pgoutput's Relation message / `pg_class.relreplident`.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            b'd' => Self::Default,
            b'f' => Self::Full,
            b'i' => Self::Index,
            b'n' => Self::Nothing,
            _ => return None,
        })
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

/// A table as captured. Identity is the relation oid; a schema change makes a new value.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSchema {
    /// `pg_class.oid` of the relation.
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub columns: Vec<Column>,
    pub replica_identity: ReplicaIdentity,
}

impl TableSchema {
    /// `schema.table`, as used in configuration and error messages.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// Whether the table has key columns (otherwise Debezium writes a null key).
    pub fn has_key(&self) -> bool {
        self.columns.iter().any(|c| c.is_key)
    }
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

/// The change's kind, with Debezium's one-letter codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `c`: an insert.
    Create,
    /// `u`: an update.
    Update,
    /// `d`: a delete.
    Delete,
    /// `r`: a row read by a snapshot.
    Read,
    /// `t`: a truncate.
    Truncate,
}

impl Op {
    pub fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
        }
    }
}

/// Where a snapshot row stands in the snapshot (Debezium 2.6+'s `source.snapshot` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotMarker {
    /// A streamed change, not a snapshot row.
    False,
    /// A snapshot row that is neither first nor last of its table.
    True,
    /// The first row of the first table.
    First,
    /// The first row of each later table.
    FirstInDataCollection,
    /// The last row of each table but the last.
    LastInDataCollection,
    /// The very last row of the snapshot.
    Last,
}

impl SnapshotMarker {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotMarker::False => "false",
            SnapshotMarker::True => "true",
            SnapshotMarker::First => "first",
            SnapshotMarker::FirstInDataCollection => "first_in_data_collection",
            SnapshotMarker::LastInDataCollection => "last_in_data_collection",
            SnapshotMarker::Last => "last",
        }
    }
}

/// The source position of an event. Owned by the host: plugins may read it, never change it.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    /// The WAL position of this change; for snapshot rows, the slot's consistent point.
    pub lsn: Lsn,
    /// The commit LSN of the last transaction streamed before this one (Debezium's `sequence`).
    pub last_commit_lsn: Option<Lsn>,
    /// The transaction id (`xid`) of the change; for snapshot rows, the snapshot transaction's.
    pub tx_id: Option<i64>,
    /// Commit time of the transaction (streaming) or read time (snapshot), µs since the Unix epoch.
    pub ts_us: i64,
    pub snapshot: SnapshotMarker,
}

/// One row change.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeEvent {
    pub op: Op,
    pub table: Arc<TableSchema>,
    /// The old row, per replica identity (see the module docs); positional against `table`.
    pub before: Option<Vec<Value>>,
    /// The new row (`c`, `u`, `r`); `None` for `d` and `t`.
    pub after: Option<Vec<Value>>,
    pub source: Source,
    /// The destination topic when a plugin routed the event; `None` means the default,
    /// `<prefix>.<schema>.<table>`.
    pub topic: Option<String>,
    /// Kafka headers added by plugins (or the dead-letter policy).
    pub headers: Vec<Header>,
}

/// A logical decoding message (`pg_logical_emit_message(transactional, prefix, content)`), as
/// Debezium's PostgreSQL connector streams it (`op: "m"` on `<prefix>.message`).
///
/// * **Transactional** messages are decoded with their transaction: they arrive between its
///   `BEGIN` and `COMMIT`, carry its `tx_id` and commit time, and are confirmed with it.
/// * **Non-transactional** messages are sent as soon as PostgreSQL decodes them, outside any
///   transaction: `tx_id` is `None`, `ts_us` is the relay's clock when it received the message
///   (PostgreSQL sends no time for them), and capture confirms the position just past the
///   message's own LSN once it is acknowledged (see `pg::capture`).
///
/// Messages do not pass through the plugin chain: plugins see row changes only.
#[derive(Clone, Debug, PartialEq)]
pub struct LogicalMessage {
    pub transactional: bool,
    pub prefix: String,
    pub content: Vec<u8>,
    /// `lsn` is the message's own WAL position.
    pub source: Source,
}

/// A Kafka record header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: Vec<u8>,
}

/// A record a plugin wrote as it is (unwrap, outbox): it bypasses the encoder. A `None` value is
/// a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<Header>,
}

/// What the plugin chain hands to the sink.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// A change event, encoded (Debezium JSON) on its way out.
    Change(ChangeEvent),
    /// A record written as it is.
    Record(Record),
}

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
use std::sync::Arc;

// The types the pgoutput decoder and the text-value parsers produce live in the lean
// `walrelay-pgwire` crate (fuzzed on its own); they are part of this model all the same.
pub use walrelay_pgwire::model::{Column, Lsn, Value};

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

    /// Where the table's events go unless something routes them: `<prefix>.<schema>.<table>`,
    /// Debezium's topic naming.
    pub fn default_topic(&self, prefix: &str) -> String {
        format!("{prefix}.{}.{}", self.schema, self.name)
    }

    /// `topic == self.default_topic(prefix)`, without building the string.
    pub fn is_default_topic(&self, topic: &str, prefix: &str) -> bool {
        topic
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('.'))
            .and_then(|r| r.strip_prefix(self.schema.as_str()))
            .and_then(|r| r.strip_prefix('.'))
            == Some(self.name.as_str())
    }

    /// Whether the table has key columns (otherwise Debezium writes a null key).
    pub fn has_key(&self) -> bool {
        self.columns.iter().any(|c| c.is_key)
    }
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
    /// A row read by an incremental snapshot, while streaming (see `pg::incremental`).
    Incremental,
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
            SnapshotMarker::Incremental => "incremental",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_topic_and_its_test_agree() {
        let t = TableSchema {
            oid: 1,
            schema: "public".into(),
            name: "products".into(),
            columns: vec![],
            replica_identity: ReplicaIdentity::Full,
        };
        assert_eq!(t.default_topic("inventory"), "inventory.public.products");
        assert!(t.is_default_topic("inventory.public.products", "inventory"));
        for other in [
            "inventory.public.product",
            "inventory.public.products.x",
            "inventory.other.products",
            "inv.public.products",
            "inventorypublic.products",
            "",
        ] {
            assert!(!t.is_default_topic(other, "inventory"), "{other}");
        }
        // A prefix with dots of its own.
        assert!(t.is_default_topic("a.b.public.products", "a.b"));
    }
}

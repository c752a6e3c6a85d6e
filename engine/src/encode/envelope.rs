//! Debezium's change-event record as Connect data: the key struct, the envelope (`before`,
//! `after`, `source`, `transaction`, `op`, `ts_*`) and the PostgreSQL source block
//! (reference sections 1 and 2). Both formats write what this module builds.
//!
//! # Decisions where the reference is silent
//!
//! Each follows Debezium's source, named at the place it is implemented:
//!
//! * **Required column, NULL value.** In the old row of an update/delete under a replica identity
//!   other than `FULL`, PostgreSQL sends only the key columns; Debezium's
//!   `JdbcValueConverters.convertValue` then writes the column default, or a per-type fallback
//!   (`""`, `0`, `0.0`, `false`, `"1970-01-01T00:00:00Z"`, …) for a NOT NULL column. The layout
//!   does the same there; anywhere else a NULL in a NOT NULL column is an [`EncodeError`].
//! * **Optional column, NULL value, with a default.** Written as the default (both converters
//!   replace nulls by the schema default).
//! * **numeric `NaN`/`±Infinity`.** Debezium's precise decimal mode throws
//!   (`SpecialValueDecimal.fromLogical`: "Got a special value (NaN/Infinity) for Decimal type …"),
//!   stopping the connector. The encoder returns [`EncodeErrorKind::SpecialNumeric`] instead of
//!   inventing a value.
//! * **Infinite dates and timestamps** (`PostgresValueConverter`): `timestamptz` ±infinity is
//!   written as the strings `"infinity"`/`"-infinity"`; `timestamp` ±infinity as pgjdbc's
//!   sentinels (`PGStatement.DATE_POSITIVE_INFINITY` = 9223372036825200000 read as µs for
//!   `MicroTimestamp`, /1000 for the millisecond `Timestamp`; negative: -9223372036832400000);
//!   `date` ±infinity as the epoch days of Debezium's `POSITIVE_INFINITY_LOCAL_DATE`
//!   (`+5877611-06-21` = 2146033979) and `NEGATIVE_INFINITY_LOCAL_DATE` (`-5877611-06-22` =
//!   -2147472691). Debezium up to the dbz#2524 fix (so 2.7–3.0) had the positive date sentinel as
//!   `-5877611-06-21` (-2147472692, i.e. *before* -infinity); walrelay uses the fixed value.
//! * **numeric(p,s) values with more than `s` fraction digits** (PostgreSQL never sends them)
//!   are rounded half away from zero, as PostgreSQL rounds.
//! * **Unchanged TOAST values** ([`Value::UnchangedToast`]) are written as Debezium's
//!   placeholder `__debezium_unavailable_value` (its bytes for `bytea`) in string and bytes
//!   columns; for other types `PostgresValueConverter` has no placeholder: null for an optional
//!   column, an error for a required one. The event model keeps the marker explicit, so a plugin
//!   may drop or fill the column before this point.
use std::sync::Arc;

use super::columns::{ColumnType, EncodeErrorKind, Kind, UnknownTypes};
use super::connect::{Datum, Field, Schema, Type};
use crate::event::{ChangeEvent, Column, Lsn, Op, ReplicaIdentity, TableSchema, Value};

/// Record settings shared by the formats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordOptions {
    /// Debezium's `topic.prefix`: the first part of topic and schema names, and `source.name`.
    pub topic_prefix: String,
    /// The database name, written as `source.db`.
    pub database: String,
    /// Written as `source.version`.
    pub connector_version: String,
    /// Columns of types walrelay cannot map.
    pub unknown_types: UnknownTypes,
}

/// Why an event could not be encoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot encode an event of {table}{} at LSN {lsn}: {kind}", column_suffix(.column))]
pub struct EncodeError {
    /// `schema.table`.
    pub table: String,
    /// The column at fault, when one is.
    pub column: Option<String>,
    /// The event's LSN.
    pub lsn: Lsn,
    pub kind: EncodeErrorKind,
}

fn column_suffix(column: &Option<String>) -> String {
    match column {
        Some(c) => format!(", column {c}"),
        None => String::new(),
    }
}

/// One mapped column of a table.
#[derive(Clone, Debug)]
pub struct LayoutColumn {
    /// Position in the captured row.
    pub index: usize,
    pub name: String,
    pub kind: Kind,
    /// The member schema (with its default).
    pub schema: Schema,
    pub is_key: bool,
    /// What a NULL in this NOT NULL column of a key-only old row becomes: the default, else
    /// the type's fallback.
    pub fallback: Datum<'static>,
}

/// A table's record layout: which columns are written, and the Key, Value and Envelope schemas.
/// Built once per table schema.
#[derive(Clone, Debug)]
pub struct TableLayout {
    pub table: Arc<TableSchema>,
    /// `schema.table`, for errors.
    pub qualified: String,
    pub columns: Vec<LayoutColumn>,
    /// Positions in `columns` of the key columns.
    pub key_columns: Vec<usize>,
    /// `<prefix>.<schema>.<table>.Key`; `None` without key columns.
    pub key_schema: Option<Schema>,
    /// `<prefix>.<schema>.<table>.Envelope`.
    pub envelope_schema: Schema,
    /// Columns left out (`unknown_types: skip`): name and type name.
    pub skipped: Vec<(String, String)>,
    /// Whether `before` carries whole rows (`REPLICA IDENTITY FULL`).
    pub full_identity: bool,
}

impl TableLayout {
    pub fn build(
        opts: &RecordOptions,
        table: &Arc<TableSchema>,
    ) -> Result<TableLayout, EncodeError> {
        // Debezium names the schemas after the table's default topic, wherever a record goes.
        let base = table.default_topic(&opts.topic_prefix);
        let qualified = table.qualified_name();
        let mut columns = Vec::with_capacity(table.columns.len());
        let mut skipped = Vec::new();
        for (index, col) in table.columns.iter().enumerate() {
            match ColumnType::of(col, opts.unknown_types) {
                Ok(ColumnType::Mapped { kind, schema }) => {
                    let fallback = schema.default.clone().unwrap_or_else(|| kind.fallback());
                    columns.push(LayoutColumn {
                        index,
                        name: col.name.clone(),
                        kind,
                        schema,
                        is_key: col.is_key,
                        fallback,
                    });
                }
                Ok(ColumnType::Skipped) => {
                    // Once per column and table schema: each format builds a layout once per
                    // schema version (a schema change builds a new one, and warns again).
                    tracing::warn!(
                        table = %qualified,
                        column = %col.name,
                        type_name = %col.type_name,
                        "column left out of the records: walrelay has no Debezium mapping for its type (format.unknown_types: skip)"
                    );
                    skipped.push((col.name.clone(), col.type_name.clone()))
                }
                Err(kind) => {
                    return Err(EncodeError {
                        table: qualified,
                        column: Some(col.name.clone()),
                        lsn: Lsn::ZERO,
                        kind,
                    })
                }
            }
        }
        let key_columns: Vec<usize> = (0..columns.len()).filter(|&i| columns[i].is_key).collect();
        let member = |c: &LayoutColumn| Field {
            name: c.name.clone(),
            schema: c.schema.clone(),
        };
        let key_schema = (!key_columns.is_empty()).then(|| {
            Schema::structure(
                format!("{base}.Key"),
                false,
                key_columns.iter().map(|&i| member(&columns[i])).collect(),
            )
        });
        let value = Schema::structure(
            format!("{base}.Value"),
            true,
            columns.iter().map(member).collect(),
        );
        let envelope_schema = Schema::structure(
            format!("{base}.Envelope"),
            false,
            vec![
                value.clone().field("before"),
                value.field("after"),
                source_schema().field("source"),
                transaction_schema().field("transaction"),
                Schema::new(Type::String, false).field("op"),
                Schema::new(Type::Int64, true).field("ts_ms"),
                Schema::new(Type::Int64, true).field("ts_us"),
                Schema::new(Type::Int64, true).field("ts_ns"),
            ],
        )
        .version(2);
        Ok(TableLayout {
            table: Arc::clone(table),
            qualified,
            columns,
            key_columns,
            key_schema,
            envelope_schema,
            skipped,
            full_identity: table.replica_identity == ReplicaIdentity::Full,
        })
    }

    pub fn error(
        &self,
        ev: &ChangeEvent,
        col: Option<&LayoutColumn>,
        kind: EncodeErrorKind,
    ) -> EncodeError {
        let column = col.map(|c| &self.table.columns[c.index]);
        EncodeError {
            table: self.qualified.clone(),
            column: column.map(|c| c.name.clone()),
            lsn: ev.source.lsn,
            kind: match column {
                Some(c) => with_type(kind, c),
                None => kind,
            },
        }
    }

    pub fn check_len(&self, ev: &ChangeEvent, row: &[Value]) -> Result<(), EncodeError> {
        let expected = self.table.columns.len();
        if row.len() == expected {
            Ok(())
        } else {
            Err(self.error(
                ev,
                None,
                EncodeErrorKind::RowLength {
                    expected,
                    found: row.len(),
                },
            ))
        }
    }

    /// One column's value. `fill_required_nulls`: a NULL in a NOT NULL non-key column is
    /// written as default-or-fallback rather than refused (key-only old rows).
    pub fn cell<'a>(
        &self,
        col: &LayoutColumn,
        v: &'a Value,
        fill_required_nulls: bool,
    ) -> Result<Datum<'a>, EncodeErrorKind> {
        let optional = col.schema.optional;
        match v {
            Value::Null => {
                if let Some(d) = &col.schema.default {
                    if optional || fill_required_nulls && !col.is_key {
                        return Ok(d.clone());
                    }
                }
                if optional {
                    Ok(Datum::Null)
                } else if fill_required_nulls && !col.is_key {
                    Ok(col.fallback.clone())
                } else {
                    Err(EncodeErrorKind::NullInRequiredColumn)
                }
            }
            Value::UnchangedToast => match col.kind.toast_placeholder() {
                Some(d) => Ok(d),
                None if optional => Ok(Datum::Null),
                None => Err(EncodeErrorKind::UnchangedToast),
            },
            v => col.kind.datum(v),
        }
    }

    /// The `.Value` struct of a row, or null.
    pub fn row<'a>(
        &self,
        ev: &ChangeEvent,
        row: Option<&'a [Value]>,
        key_only_old_row: bool,
    ) -> Result<Datum<'a>, EncodeError> {
        let Some(row) = row else {
            return Ok(Datum::Null);
        };
        self.check_len(ev, row)?;
        let mut fields = Vec::with_capacity(self.columns.len());
        for col in &self.columns {
            fields.push(
                self.cell(col, &row[col.index], key_only_old_row)
                    .map_err(|k| self.error(ev, Some(col), k))?,
            );
        }
        Ok(Datum::Struct(fields))
    }

    /// The key struct: the key columns, from `after` (from `before` for a delete). `None` when
    /// the table has no key columns, and for truncates.
    pub fn key<'a>(&self, ev: &'a ChangeEvent) -> Result<Option<Datum<'a>>, EncodeError> {
        if ev.op == Op::Truncate || self.key_schema.is_none() {
            return Ok(None);
        }
        let (row, which) = if ev.op == Op::Delete {
            (ev.before.as_deref(), "old")
        } else {
            (ev.after.as_deref(), "new")
        };
        let row = row.ok_or_else(|| self.error(ev, None, EncodeErrorKind::MissingRow(which)))?;
        self.check_len(ev, row)?;
        let mut fields = Vec::with_capacity(self.key_columns.len());
        for &i in &self.key_columns {
            let col = &self.columns[i];
            fields.push(
                self.cell(col, &row[col.index], false)
                    .map_err(|k| self.error(ev, Some(col), k))?,
            );
        }
        Ok(Some(Datum::Struct(fields)))
    }

    /// The envelope. `now_ns` is the relay's clock (ns since the epoch), written as the
    /// envelope's `ts_ms`/`ts_us`/`ts_ns`.
    pub fn envelope<'a>(
        &self,
        opts: &'a RecordOptions,
        ev: &'a ChangeEvent,
        now_ns: i64,
    ) -> Result<Datum<'a>, EncodeError> {
        // Old rows under DEFAULT/INDEX identity carry only the key columns: Debezium fills the
        // NOT NULL others with default-or-fallback (JdbcValueConverters.convertValue).
        let before = self.row(ev, ev.before.as_deref(), !self.full_identity)?;
        let after = self.row(ev, ev.after.as_deref(), false)?;
        Ok(Datum::Struct(vec![
            before,
            after,
            source_datum(opts, ev),
            Datum::Null,
            Datum::str(ev.op.code()),
            Datum::Int64(now_ns.div_euclid(1_000_000)),
            Datum::Int64(now_ns.div_euclid(1000)),
            Datum::Int64(now_ns),
        ]))
    }
}

/// Fills in the real type in a mismatch error (the converters only know the kind).
fn with_type(kind: EncodeErrorKind, col: &Column) -> EncodeErrorKind {
    match kind {
        EncodeErrorKind::TypeMismatch { value, .. } => EncodeErrorKind::TypeMismatch {
            value,
            type_name: col.type_name.clone(),
            oid: col.type_oid,
        },
        k => k,
    }
}

/// `io.debezium.connector.postgresql.Source` (reference section 2).
pub fn source_schema() -> Schema {
    let s = |ty: Type, optional: bool, name: &str| Schema::new(ty, optional).field(name);
    Schema::structure(
        "io.debezium.connector.postgresql.Source",
        false,
        vec![
            s(Type::String, false, "version"),
            s(Type::String, false, "connector"),
            s(Type::String, false, "name"),
            s(Type::Int64, false, "ts_ms"),
            Schema::new(Type::String, true)
                .named("io.debezium.data.Enum")
                .version(1)
                .param("allowed", "true,last,false,incremental")
                .with_default(Some(Datum::str("false")))
                .field("snapshot"),
            s(Type::String, false, "db"),
            s(Type::String, true, "sequence"),
            s(Type::Int64, true, "ts_us"),
            s(Type::Int64, true, "ts_ns"),
            s(Type::String, false, "schema"),
            s(Type::String, false, "table"),
            s(Type::Int64, true, "txId"),
            s(Type::Int64, true, "lsn"),
            s(Type::Int64, true, "xmin"),
        ],
    )
}

/// Debezium's `event.block` (transaction metadata), optional.
pub fn transaction_schema() -> Schema {
    Schema::structure(
        "event.block",
        true,
        vec![
            Schema::new(Type::String, false).field("id"),
            Schema::new(Type::Int64, false).field("total_order"),
            Schema::new(Type::Int64, false).field("data_collection_order"),
        ],
    )
    .version(1)
}

/// The source block of an event.
pub fn source_datum<'a>(opts: &'a RecordOptions, ev: &'a ChangeEvent) -> Datum<'a> {
    source_block(opts, &ev.source, &ev.table.schema, &ev.table.name)
}

/// The source block of a position in `schema.table` (both empty for records of no table, such
/// as logical decoding messages).
pub fn source_block<'a>(
    opts: &'a RecordOptions,
    src: &crate::event::Source,
    schema: &'a str,
    table: &'a str,
) -> Datum<'a> {
    // The JSON array text ["<last commit lsn>","<lsn>"].
    let sequence = match src.last_commit_lsn {
        Some(l) => format!("[\"{}\",\"{}\"]", l.0, src.lsn.0),
        None => format!("[null,\"{}\"]", src.lsn.0),
    };
    Datum::Struct(vec![
        Datum::str(&opts.connector_version),
        Datum::str("postgresql"),
        Datum::str(&opts.topic_prefix),
        Datum::Int64(src.ts_us.div_euclid(1000)),
        Datum::str(src.snapshot.as_str()),
        Datum::str(&opts.database),
        Datum::string(sequence),
        Datum::Int64(src.ts_us),
        Datum::Int64(src.ts_us.saturating_mul(1000)),
        Datum::str(schema),
        Datum::str(table),
        src.tx_id.map_or(Datum::Null, Datum::Int64),
        Datum::Int64(src.lsn.0 as i64),
        Datum::Null,
    ])
}

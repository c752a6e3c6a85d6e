//! Debezium's PostgreSQL change-event format, written the way Kafka's `JsonConverter` writes it:
//! `{"schema":…,"payload":…}` (`schemas.enable=true`, the default) or the payload alone
//! (`format.schemas: false`), compact, keys in Connect's order (reference section 3).
//!
//! What is written comes from [`envelope`](super::envelope) and [`columns`](super::columns);
//! this module only renders Connect schemas and values as JSON. The schema half of every
//! message is constant per table schema, so it is rendered once per `Arc<TableSchema>` and
//! cached; the payload is appended to a `String` per event with a hand-written writer (no
//! `serde_json::Value` trees on the hot path).
//!
//! * **JSON string escaping** follows Jackson: `\"`, `\\`, `\b`, `\t`, `\n`, `\f`, `\r`, other
//!   control characters as `\u00XX` (upper-case hex), everything else (including non-ASCII) raw.
//! * **Floats** print like Java (`1.5`, `2.0`, `1.0E-5`); NaN and the infinities as the strings
//!   `"NaN"`, `"Infinity"`, `"-Infinity"` (Jackson's default quoting).
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

pub use super::columns::{EncodeErrorKind, UnknownTypes, UNAVAILABLE_VALUE_PLACEHOLDER};
use super::connect::{Datum, Schema, Type};
use super::envelope::TableLayout;
pub use super::envelope::{EncodeError, RecordOptions};
use super::javanum::{write_f32, write_f64};
use super::records::{write_transaction_block, TransactionBlock};
use crate::event::ChangeEvent;

/// Encoder settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonOptions {
    pub record: RecordOptions,
    /// `{"schema":…,"payload":…}` (Kafka's `schemas.enable=true`) or the payload alone.
    pub schemas: bool,
}

/// The Debezium JSON encoder. Holds per-table caches; one per encoding thread.
pub struct DebeziumJson {
    opts: JsonOptions,
    tables: HashMap<u32, TablePlan>,
    /// Size of the last payload, to size the next buffer.
    payload_hint: usize,
}

/// A table's layout and its rendered constant parts.
struct TablePlan {
    layout: TableLayout,
    /// `{"schema":<key schema>,"payload":`, or empty without schemas.
    key_prefix: String,
    /// `{"schema":<envelope schema>,"payload":`, or empty without schemas.
    value_prefix: String,
    /// `"name":` of each layout column, escaped.
    member_keys: Vec<String>,
    /// `{"version":…,"connector":"postgresql","name":…,"ts_ms":`
    source_head: String,
    /// `,"db":…,"sequence":`
    source_db: String,
    /// `,"schema":…,"table":…,"txId":`
    source_table: String,
}

impl DebeziumJson {
    pub fn new(opts: JsonOptions) -> Self {
        DebeziumJson {
            opts,
            tables: HashMap::new(),
            payload_hint: 256,
        }
    }

    pub fn options(&self) -> &JsonOptions {
        &self.opts
    }

    /// Columns left out of a table's records (`unknown_types: skip`), as (column, type name).
    pub fn skipped_columns(
        &mut self,
        ev: &ChangeEvent,
    ) -> Result<Vec<(String, String)>, EncodeError> {
        Ok(plan_for(&mut self.tables, &self.opts, ev)?
            .layout
            .skipped
            .clone())
    }

    /// A record given as Connect data (logical decoding messages, transaction metadata,
    /// heartbeats: see [`super::records::connect`]), with its schema unless `schemas: false`.
    pub fn record(&self, schema: &Schema, d: &Datum<'_>) -> Vec<u8> {
        let mut out = String::with_capacity(512);
        if self.opts.schemas {
            out.push_str("{\"schema\":");
            write_schema(&mut out, schema, None);
            out.push_str(",\"payload\":");
        }
        write_value(&mut out, schema, d);
        if self.opts.schemas {
            out.push('}');
        }
        out.into_bytes()
    }

    /// How many of the event's table's columns are left out (`unknown_types: skip`).
    pub fn unmapped_columns(&mut self, ev: &ChangeEvent) -> Result<usize, EncodeError> {
        Ok(plan_for(&mut self.tables, &self.opts, ev)?
            .layout
            .skipped
            .len())
    }

    /// The record key: the key columns' struct. `None` when the table has no key columns, and
    /// for truncates.
    pub fn key(&mut self, ev: &ChangeEvent) -> Result<Option<Vec<u8>>, EncodeError> {
        let plan = plan_for(&mut self.tables, &self.opts, ev)?;
        let layout = &plan.layout;
        if ev.op == crate::event::Op::Truncate || layout.key_schema.is_none() {
            return Ok(None);
        }
        let (row, which) = if ev.op == crate::event::Op::Delete {
            (ev.before.as_deref(), "old")
        } else {
            (ev.after.as_deref(), "new")
        };
        let row = row.ok_or_else(|| layout.error(ev, None, EncodeErrorKind::MissingRow(which)))?;
        layout.check_len(ev, row)?;
        let mut out = String::with_capacity(plan.key_prefix.len() + 64);
        out.push_str(&plan.key_prefix);
        out.push('{');
        for (n, &i) in layout.key_columns.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str(&plan.member_keys[i]);
            write_cell(&mut out, plan, ev, i, row, false)?;
        }
        out.push('}');
        if !plan.key_prefix.is_empty() {
            out.push('}');
        }
        Ok(Some(out.into_bytes()))
    }

    /// The record value: the full envelope. `now_ns` is the relay's clock (ns since the epoch).
    ///
    /// This is the hot path, so the envelope is written directly rather than built as a
    /// [`Datum`] first; it writes exactly what [`TableLayout::envelope`] describes (the unit
    /// tests compare the two).
    pub fn value(&mut self, ev: &ChangeEvent, now_ns: i64) -> Result<Vec<u8>, EncodeError> {
        self.value_in_transaction(ev, now_ns, None)
    }

    /// [`Self::value`] with the envelope's `transaction` block filled in (transaction metadata,
    /// see [`super::records::TransactionBlock`]); `None` writes `"transaction":null`.
    pub fn value_in_transaction(
        &mut self,
        ev: &ChangeEvent,
        now_ns: i64,
        tx: Option<&TransactionBlock<'_>>,
    ) -> Result<Vec<u8>, EncodeError> {
        let hint = self.payload_hint;
        let plan = plan_for(&mut self.tables, &self.opts, ev)?;
        let mut out = String::with_capacity(plan.value_prefix.len() + hint + 64);
        out.push_str(&plan.value_prefix);
        let start = out.len();
        write_envelope_payload(&mut out, plan, ev, now_ns, tx)?;
        self.payload_hint = out.len() - start;
        if !plan.value_prefix.is_empty() {
            out.push('}');
        }
        Ok(out.into_bytes())
    }
}

fn write_envelope_payload(
    out: &mut String,
    plan: &TablePlan,
    ev: &ChangeEvent,
    now_ns: i64,
    tx: Option<&TransactionBlock<'_>>,
) -> Result<(), EncodeError> {
    let layout = &plan.layout;
    out.push_str("{\"before\":");
    // Old rows under DEFAULT/INDEX identity carry only the key columns: Debezium fills the
    // NOT NULL others with default-or-fallback (JdbcValueConverters.convertValue).
    write_row(out, plan, ev, ev.before.as_deref(), !layout.full_identity)?;
    out.push_str(",\"after\":");
    write_row(out, plan, ev, ev.after.as_deref(), false)?;

    let src = &ev.source;
    out.push_str(",\"source\":");
    out.push_str(&plan.source_head);
    push_i64(out, src.ts_us.div_euclid(1000));
    out.push_str(",\"snapshot\":\"");
    out.push_str(src.snapshot.as_str());
    out.push('"');
    out.push_str(&plan.source_db);
    // The JSON array text ["<last commit lsn>","<lsn>"], as a JSON string.
    out.push_str("\"[");
    match src.last_commit_lsn {
        Some(l) => {
            out.push_str("\\\"");
            push_i64(out, l.0 as i64);
            out.push_str("\\\"");
        }
        None => out.push_str("null"),
    }
    out.push_str(",\\\"");
    push_i64(out, src.lsn.0 as i64);
    out.push_str("\\\"]\",\"ts_us\":");
    push_i64(out, src.ts_us);
    out.push_str(",\"ts_ns\":");
    push_i64(out, src.ts_us.saturating_mul(1000));
    out.push_str(&plan.source_table);
    match src.tx_id {
        Some(x) => push_i64(out, x),
        None => out.push_str("null"),
    }
    out.push_str(",\"lsn\":");
    push_i64(out, src.lsn.0 as i64);
    out.push_str(",\"xmin\":null},\"transaction\":");
    write_transaction_block(out, tx);
    out.push_str(",\"op\":\"");
    out.push_str(ev.op.code());
    out.push_str("\",\"ts_ms\":");
    push_i64(out, now_ns.div_euclid(1_000_000));
    out.push_str(",\"ts_us\":");
    push_i64(out, now_ns.div_euclid(1000));
    out.push_str(",\"ts_ns\":");
    push_i64(out, now_ns);
    out.push('}');
    Ok(())
}

/// One column's value: the common types directly, the others through their [`Datum`].
fn write_cell(
    out: &mut String,
    plan: &TablePlan,
    ev: &ChangeEvent,
    i: usize,
    row: &[crate::event::Value],
    fill_required_nulls: bool,
) -> Result<(), EncodeError> {
    use crate::encode::columns::Kind;
    use crate::event::Value;
    let layout = &plan.layout;
    let col = &layout.columns[i];
    match (&col.kind, &row[col.index]) {
        (
            Kind::Text | Kind::Uuid | Kind::Json,
            Value::Text(s) | Value::Uuid(s) | Value::Json(s),
        ) => write_json_str(out, s),
        (Kind::Int32, Value::Int32(x)) => push_i64(out, i64::from(*x)),
        (Kind::Int64, Value::Int64(x)) => push_i64(out, *x),
        (Kind::Float64, Value::Float64(x)) => push_f64(out, *x),
        (Kind::ZonedTimestamp { digits }, Value::TimestampTz(us))
            if *us != i64::MAX && *us != i64::MIN =>
        {
            out.push('"');
            crate::encode::columns::push_zoned_timestamp(out, *us, *digits);
            out.push('"');
        }
        (_, v) => {
            let d = layout
                .cell(col, v, fill_required_nulls)
                .map_err(|k| layout.error(ev, Some(col), k))?;
            write_value(out, &col.schema, &d);
        }
    }
    Ok(())
}

fn write_row(
    out: &mut String,
    plan: &TablePlan,
    ev: &ChangeEvent,
    row: Option<&[crate::event::Value]>,
    key_only_old_row: bool,
) -> Result<(), EncodeError> {
    let layout = &plan.layout;
    let Some(row) = row else {
        out.push_str("null");
        return Ok(());
    };
    layout.check_len(ev, row)?;
    out.push('{');
    for (i, key) in plan.member_keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(key);
        write_cell(out, plan, ev, i, row, key_only_old_row)?;
    }
    out.push('}');
    Ok(())
}

/// Finds (or builds) the cached plan of an event's table schema. The cache holds the `Arc` it
/// was built from: the same `Arc` is a hit, an equal schema in another `Arc` is a hit that
/// adopts the new `Arc`, anything else rebuilds.
fn plan_for<'a>(
    tables: &'a mut HashMap<u32, TablePlan>,
    opts: &JsonOptions,
    ev: &ChangeEvent,
) -> Result<&'a TablePlan, EncodeError> {
    let table = &ev.table;
    let with_lsn = |mut e: EncodeError| {
        e.lsn = ev.source.lsn;
        e
    };
    match tables.entry(table.oid) {
        Entry::Occupied(o) => {
            let plan = o.into_mut();
            if !Arc::ptr_eq(&plan.layout.table, table) {
                if *plan.layout.table == **table {
                    plan.layout.table = Arc::clone(table);
                } else {
                    *plan = TablePlan::build(opts, table).map_err(with_lsn)?;
                }
            }
            Ok(plan)
        }
        Entry::Vacant(v) => Ok(v.insert(TablePlan::build(opts, table).map_err(with_lsn)?)),
    }
}

impl TablePlan {
    fn build(
        opts: &JsonOptions,
        table: &Arc<crate::event::TableSchema>,
    ) -> Result<TablePlan, EncodeError> {
        let layout = TableLayout::build(&opts.record, table)?;
        let prefix = |schema: Option<&Schema>| match (opts.schemas, schema) {
            (true, Some(s)) => {
                let mut out = String::from("{\"schema\":");
                write_schema(&mut out, s, None);
                out.push_str(",\"payload\":");
                out
            }
            _ => String::new(),
        };
        let record = &opts.record;
        let table = &layout.table;
        let member_keys = layout
            .columns
            .iter()
            .map(|c| {
                let mut k = String::with_capacity(c.name.len() + 3);
                write_json_str(&mut k, &c.name);
                k.push(':');
                k
            })
            .collect();
        let mut source_head = String::from("{\"version\":");
        write_json_str(&mut source_head, &record.connector_version);
        source_head.push_str(",\"connector\":\"postgresql\",\"name\":");
        write_json_str(&mut source_head, &record.topic_prefix);
        source_head.push_str(",\"ts_ms\":");
        let mut source_db = String::from(",\"db\":");
        write_json_str(&mut source_db, &record.database);
        source_db.push_str(",\"sequence\":");
        let mut source_table = String::from(",\"schema\":");
        write_json_str(&mut source_table, &table.schema);
        source_table.push_str(",\"table\":");
        write_json_str(&mut source_table, &table.name);
        source_table.push_str(",\"txId\":");
        Ok(TablePlan {
            key_prefix: prefix(layout.key_schema.as_ref()),
            value_prefix: prefix(Some(&layout.envelope_schema)),
            member_keys,
            source_head,
            source_db,
            source_table,
            layout,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Connect → JSON (JsonConverter)
// ---------------------------------------------------------------------------------------------

/// A schema node in `JsonConverter.asJsonSchema`'s key order: `type`, `fields`/`items`/
/// `keys`+`values`, `optional`, `name`, `version`, `doc`, `parameters`, `default`, and `field`
/// last for a struct member.
pub fn write_schema(out: &mut String, s: &Schema, field: Option<&str>) {
    out.push_str("{\"type\":\"");
    out.push_str(match &s.ty {
        Type::Boolean => "boolean",
        Type::Int8 => "int8",
        Type::Int16 => "int16",
        Type::Int32 => "int32",
        Type::Int64 => "int64",
        Type::Float32 => "float",
        Type::Float64 => "double",
        Type::Bytes => "bytes",
        Type::String => "string",
        Type::Array(_) => "array",
        Type::Map(..) => "map",
        Type::Struct(_) => "struct",
    });
    out.push('"');
    match &s.ty {
        Type::Struct(fields) => {
            out.push_str(",\"fields\":[");
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_schema(out, &f.schema, Some(&f.name));
            }
            out.push(']');
        }
        Type::Array(items) => {
            out.push_str(",\"items\":");
            write_schema(out, items, None);
        }
        Type::Map(keys, values) => {
            out.push_str(",\"keys\":");
            write_schema(out, keys, None);
            out.push_str(",\"values\":");
            write_schema(out, values, None);
        }
        _ => {}
    }
    out.push_str(",\"optional\":");
    out.push_str(if s.optional { "true" } else { "false" });
    if let Some(n) = &s.name {
        out.push_str(",\"name\":");
        write_json_str(out, n);
    }
    if let Some(v) = s.version {
        out.push_str(",\"version\":");
        push_i64(out, i64::from(v));
    }
    if let Some(d) = &s.doc {
        out.push_str(",\"doc\":");
        write_json_str(out, d);
    }
    if !s.parameters.is_empty() {
        out.push_str(",\"parameters\":{");
        for (i, (k, v)) in s.parameters.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_json_str(out, k);
            out.push(':');
            write_json_str(out, v);
        }
        out.push('}');
    }
    if let Some(d) = &s.default {
        out.push_str(",\"default\":");
        write_value(out, s, d);
    }
    if let Some(f) = field {
        out.push_str(",\"field\":");
        write_json_str(out, f);
    }
    out.push('}');
}

/// A value as `JsonConverter.convertToJson` writes it, walking its schema alongside for the
/// struct members' names.
pub fn write_value(out: &mut String, schema: &Schema, d: &Datum<'_>) {
    match (d, &schema.ty) {
        (Datum::Null, _) => out.push_str("null"),
        (Datum::Boolean(b), _) => out.push_str(if *b { "true" } else { "false" }),
        (Datum::Int8(x), _) => push_i64(out, i64::from(*x)),
        (Datum::Int16(x), _) => push_i64(out, i64::from(*x)),
        (Datum::Int32(x), _) => push_i64(out, i64::from(*x)),
        (Datum::Int64(x), _) => push_i64(out, *x),
        (Datum::Float32(x), _) => push_f32(out, *x),
        (Datum::Float64(x), _) => push_f64(out, *x),
        (Datum::String(s), _) => write_json_str(out, s),
        (Datum::Bytes(b), _) => {
            out.push('"');
            BASE64.encode_string(b, out);
            out.push('"');
        }
        (Datum::Array(items), Type::Array(item_schema)) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item_schema, item);
            }
            out.push(']');
        }
        (Datum::Map(entries), Type::Map(key_schema, value_schema)) => {
            // String keys: an object; any other key type: a list of [key, value] pairs.
            let object = key_schema.ty == Type::String;
            out.push(if object { '{' } else { '[' });
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if !object {
                    out.push('[');
                }
                write_value(out, key_schema, k);
                out.push(if object { ':' } else { ',' });
                write_value(out, value_schema, v);
                if !object {
                    out.push(']');
                }
            }
            out.push(if object { '}' } else { ']' });
        }
        (Datum::Struct(values), Type::Struct(fields)) => {
            out.push('{');
            for (i, (f, v)) in fields.iter().zip(values).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_str(out, &f.name);
                out.push(':');
                match v {
                    // JsonConverter writes a null member as the member's default.
                    Datum::Null => match &f.schema.default {
                        Some(d) => write_value(out, &f.schema, d),
                        None => out.push_str("null"),
                    },
                    v => write_value(out, &f.schema, v),
                }
            }
            out.push('}');
        }
        (d, ty) => unreachable!("a {d:?} datum for a {ty:?} schema"),
    }
}

// ---------------------------------------------------------------------------------------------
// Low-level writers
// ---------------------------------------------------------------------------------------------

/// Appends `s` as a JSON string the way Jackson escapes it.
pub(crate) fn write_json_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => {
                out.push_str(&s[start..i]);
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.push_str(&s[start..i]);
        out.push_str(esc);
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

pub(crate) fn push_i64(out: &mut String, v: i64) {
    out.push_str(itoa::Buffer::new().format(v));
}

/// Floats: Java's digits; NaN and the infinities as strings (Jackson's default quoting).
fn push_f64(out: &mut String, v: f64) {
    if v.is_finite() {
        write_f64(out, v);
    } else {
        out.push('"');
        write_f64(out, v);
        out.push('"');
    }
}

fn push_f32(out: &mut String, v: f32) {
    if v.is_finite() {
        write_f32(out, v);
    } else {
        out.push('"');
        write_f32(out, v);
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    //! Expected texts are typed from `/work/shared/reference/debezium-format.md` (section cited
    //! per test) or Debezium's source as named, never taken from this encoder's output.
    use super::*;
    use crate::event::{
        Column, Lsn, Op, ReplicaIdentity, SnapshotMarker, Source, TableSchema, Value,
    };

    const VERSION: &str = "0.1.0-test";

    fn opts() -> JsonOptions {
        JsonOptions {
            record: RecordOptions {
                topic_prefix: "pg".into(),
                database: "shop".into(),
                connector_version: VERSION.into(),
                unknown_types: UnknownTypes::Skip,
            },
            schemas: true,
        }
    }

    fn col(name: &str, type_oid: u32, typmod: i32, type_name: &str, nullable: bool) -> Column {
        Column {
            name: name.into(),
            type_oid,
            type_modifier: typmod,
            type_name: type_name.into(),
            base_type_oid: type_oid,
            nullable,
            is_key: false,
            default: None,
            enum_labels: vec![],
        }
    }

    fn key(mut c: Column) -> Column {
        c.is_key = true;
        c
    }

    fn with_default(mut c: Column, d: &str) -> Column {
        c.default = Some(d.into());
        c
    }

    fn table(name: &str, columns: Vec<Column>, ri: ReplicaIdentity) -> Arc<TableSchema> {
        Arc::new(TableSchema {
            oid: 16384,
            schema: "public".into(),
            name: name.into(),
            columns,
            replica_identity: ri,
        })
    }

    /// Section 8: `products(id uuid primary key, name text not null, weight float8 not null,
    /// created_at timestamptz not null default now())`.
    fn products(ri: ReplicaIdentity) -> Arc<TableSchema> {
        table(
            "products",
            vec![
                key(col("id", 2950, -1, "uuid", false)),
                col("name", 25, -1, "text", false),
                col("weight", 701, -1, "float8", false),
                with_default(col("created_at", 1184, -1, "timestamptz", false), "now()"),
            ],
            ri,
        )
    }

    const UUID: &str = "3f1c9a52-7b8e-4d2a-9c61-0e5b2f7a4d10";
    /// 2024-05-01T10:15:30.123456Z in µs.
    const CREATED_AT_US: i64 = 1_714_558_530_123_456;

    fn product_row() -> Vec<Value> {
        vec![
            Value::Uuid(UUID.into()),
            Value::Text("Widget".into()),
            Value::Float64(1.5),
            Value::TimestampTz(CREATED_AT_US),
        ]
    }

    fn source(snapshot: SnapshotMarker) -> Source {
        Source {
            lsn: Lsn(24_023_128),
            last_commit_lsn: None,
            tx_id: Some(771),
            ts_us: 1_714_558_530_125_012,
            snapshot,
        }
    }

    fn event(
        op: Op,
        t: &Arc<TableSchema>,
        before: Option<Vec<Value>>,
        after: Option<Vec<Value>>,
    ) -> ChangeEvent {
        ChangeEvent {
            op,
            table: Arc::clone(t),
            before,
            after,
            source: source(SnapshotMarker::False),
            topic: None,
            headers: Vec::new(),
        }
    }

    const NOW_NS: i64 = 1_714_558_530_412_345_678;

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).expect("utf-8")
    }

    fn parse(s: &str) -> serde_json::Value {
        serde_json::from_str(s).expect("valid JSON")
    }

    // Section 8, typed from the reference.
    const GOLDEN_KEY: &str = r#"{"schema":{"type":"struct","fields":[{"type":"string","optional":false,"name":"io.debezium.data.Uuid","version":1,"field":"id"}],"optional":false,"name":"pg.public.products.Key"},"payload":{"id":"3f1c9a52-7b8e-4d2a-9c61-0e5b2f7a4d10"}}"#;

    const GOLDEN_VALUE_FIELDS: &str = r#"[{"type":"string","optional":false,"name":"io.debezium.data.Uuid","version":1,"field":"id"},{"type":"string","optional":false,"field":"name"},{"type":"double","optional":false,"field":"weight"},{"type":"string","optional":false,"name":"io.debezium.time.ZonedTimestamp","version":1,"default":"1970-01-01T00:00:00.000000Z","field":"created_at"}]"#;

    // Section 2 (source block fields and schemas, in order) in section 3's key order.
    const GOLDEN_SOURCE_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,last,false,incremental"},"default":"false","field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":true,"field":"sequence"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},{"type":"int64","optional":true,"field":"txId"},{"type":"int64","optional":true,"field":"lsn"},{"type":"int64","optional":true,"field":"xmin"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"}"#;

    const GOLDEN_TX_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"name":"event.block","version":1,"field":"transaction"}"#;

    const GOLDEN_PAYLOAD: &str = r#"{"before":null,"after":{"id":"3f1c9a52-7b8e-4d2a-9c61-0e5b2f7a4d10","name":"Widget","weight":1.5,"created_at":"2024-05-01T10:15:30.123456Z"},"source":{"version":"0.1.0-test","connector":"postgresql","name":"pg","ts_ms":1714558530125,"snapshot":"false","db":"shop","sequence":"[null,\"24023128\"]","ts_us":1714558530125012,"ts_ns":1714558530125012000,"schema":"public","table":"products","txId":771,"lsn":24023128,"xmin":null},"transaction":null,"op":"c","ts_ms":1714558530412,"ts_us":1714558530412345,"ts_ns":1714558530412345678}"#;

    fn golden_envelope_schema(fields: &str) -> String {
        format!(
            concat!(
                r#"{{"type":"struct","fields":["#,
                r#"{{"type":"struct","fields":{f},"optional":true,"name":"pg.public.products.Value","field":"before"}},"#,
                r#"{{"type":"struct","fields":{f},"optional":true,"name":"pg.public.products.Value","field":"after"}},"#,
                "{src},{tx},",
                r#"{{"type":"string","optional":false,"field":"op"}},"#,
                r#"{{"type":"int64","optional":true,"field":"ts_ms"}},"#,
                r#"{{"type":"int64","optional":true,"field":"ts_us"}},"#,
                r#"{{"type":"int64","optional":true,"field":"ts_ns"}}"#,
                r#"],"optional":false,"name":"pg.public.products.Envelope","version":2}}"#
            ),
            f = fields,
            src = GOLDEN_SOURCE_SCHEMA,
            tx = GOLDEN_TX_SCHEMA
        )
    }

    fn payload_of(value: &[u8]) -> serde_json::Value {
        parse(std::str::from_utf8(value).expect("utf-8"))["payload"].clone()
    }

    #[test]
    fn golden_example_key_and_value() {
        let t = products(ReplicaIdentity::Default);
        let ev = event(Op::Create, &t, None, Some(product_row()));
        let mut enc = DebeziumJson::new(opts());

        let key = text(enc.key(&ev).expect("key").expect("has key"));
        assert_eq!(parse(&key), parse(GOLDEN_KEY));
        assert_eq!(key, GOLDEN_KEY);

        let value = text(enc.value(&ev, NOW_NS).expect("value"));
        let expected = format!(
            r#"{{"schema":{},"payload":{}}}"#,
            golden_envelope_schema(GOLDEN_VALUE_FIELDS),
            GOLDEN_PAYLOAD
        );
        assert_eq!(parse(&value), parse(&expected));
        assert_eq!(value, expected);

        // Again from the cache: identical bytes.
        assert_eq!(text(enc.value(&ev, NOW_NS).expect("value")), expected);
        assert_eq!(
            text(enc.key(&ev).expect("key").expect("has key")),
            GOLDEN_KEY
        );
    }

    #[test]
    fn sequence_with_last_commit_and_no_tx_id() {
        let t = products(ReplicaIdentity::Default);
        let mut ev = event(Op::Create, &t, None, Some(product_row()));
        ev.source.last_commit_lsn = Some(Lsn(24_023_000));
        ev.source.tx_id = None;
        let mut enc = DebeziumJson::new(opts());
        let v = text(enc.value(&ev, NOW_NS).expect("value"));
        assert!(
            v.contains(r#""sequence":"[\"24023000\",\"24023128\"]""#),
            "{v}"
        );
        assert!(
            v.contains(r#""txId":null,"lsn":24023128,"xmin":null"#),
            "{v}"
        );
    }

    /// Section 2: DEFAULT delete → only the key columns carry values; FULL → the whole old row.
    /// The NOT NULL non-key columns of a key-only old row get the column default or Debezium's
    /// fallback (JdbcValueConverters.convertValue: `""` for strings, `0.0` for doubles).
    #[test]
    fn delete_default_vs_full_identity() {
        let mut enc = DebeziumJson::new(opts());

        let t = products(ReplicaIdentity::Default);
        let old = vec![
            Value::Uuid(UUID.into()),
            Value::Null,
            Value::Null,
            Value::Null,
        ];
        let ev = event(Op::Delete, &t, Some(old), None);
        let v = enc.value(&ev, NOW_NS).expect("value");
        let p = payload_of(&v);
        assert_eq!(
            p["before"],
            parse(
                r#"{"id":"3f1c9a52-7b8e-4d2a-9c61-0e5b2f7a4d10","name":"","weight":0.0,"created_at":"1970-01-01T00:00:00.000000Z"}"#
            )
        );
        assert!(text(v).contains(r#""weight":0.0,"#));
        assert_eq!(p["after"], serde_json::Value::Null);
        assert_eq!(p["op"], "d");
        assert_eq!(
            text(enc.key(&ev).expect("key").expect("has key")),
            GOLDEN_KEY
        );

        let t = products(ReplicaIdentity::Full);
        let ev = event(Op::Delete, &t, Some(product_row()), None);
        let v = enc.value(&ev, NOW_NS).expect("value");
        let p = payload_of(&v);
        assert_eq!(
            p["before"],
            parse(
                r#"{"id":"3f1c9a52-7b8e-4d2a-9c61-0e5b2f7a4d10","name":"Widget","weight":1.5,"created_at":"2024-05-01T10:15:30.123456Z"}"#
            )
        );
        assert_eq!(
            text(enc.key(&ev).expect("key").expect("has key")),
            GOLDEN_KEY
        );

        // Under FULL identity a NULL in a NOT NULL column is an error, not a fallback.
        let old = vec![
            Value::Uuid(UUID.into()),
            Value::Null,
            Value::Null,
            Value::Null,
        ];
        let ev = event(Op::Delete, &t, Some(old), None);
        let err = enc.value(&ev, NOW_NS).expect_err("null in NOT NULL");
        assert_eq!(err.column.as_deref(), Some("name"));
    }

    #[test]
    fn update_under_default_identity_has_null_before() {
        let t = products(ReplicaIdentity::Default);
        let ev = event(Op::Update, &t, None, Some(product_row()));
        let mut enc = DebeziumJson::new(opts());
        let p = payload_of(&enc.value(&ev, NOW_NS).expect("value"));
        assert_eq!(p["before"], serde_json::Value::Null);
        assert_eq!(p["op"], "u");
    }

    #[test]
    fn snapshot_marker_row() {
        let t = products(ReplicaIdentity::Default);
        let mut enc = DebeziumJson::new(opts());
        for (marker, text_) in [
            (SnapshotMarker::First, "first"),
            (
                SnapshotMarker::FirstInDataCollection,
                "first_in_data_collection",
            ),
            (SnapshotMarker::True, "true"),
            (
                SnapshotMarker::LastInDataCollection,
                "last_in_data_collection",
            ),
            (SnapshotMarker::Last, "last"),
        ] {
            let mut ev = event(Op::Read, &t, None, Some(product_row()));
            ev.source.snapshot = marker;
            let v = text(enc.value(&ev, NOW_NS).expect("value"));
            let p = payload_of(v.as_bytes());
            assert_eq!(p["op"], "r");
            assert_eq!(p["source"]["snapshot"], text_);
            assert!(v.contains(&format!(r#","snapshot":"{text_}","db":"shop","#)));
        }
    }

    #[test]
    fn truncate_has_no_key_and_null_rows() {
        let t = products(ReplicaIdentity::Default);
        let ev = event(Op::Truncate, &t, None, None);
        let mut enc = DebeziumJson::new(opts());
        assert_eq!(enc.key(&ev).expect("key"), None);
        let p = payload_of(&enc.value(&ev, NOW_NS).expect("value"));
        assert_eq!(p["op"], "t");
        assert_eq!(p["before"], serde_json::Value::Null);
        assert_eq!(p["after"], serde_json::Value::Null);
    }

    #[test]
    fn keyless_table_has_no_key() {
        let t = table(
            "log",
            vec![col("msg", 25, -1, "text", true)],
            ReplicaIdentity::Full,
        );
        let ev = event(Op::Create, &t, None, Some(vec![Value::Text("x".into())]));
        let mut enc = DebeziumJson::new(opts());
        assert_eq!(enc.key(&ev).expect("key"), None);
        assert!(enc.value(&ev, NOW_NS).is_ok());
    }

    /// Encodes one optional column (and a dummy key) and returns (field schema, payload value).
    fn one(c: Column, v: Value) -> (serde_json::Value, serde_json::Value, String) {
        let name = c.name.clone();
        let t = table(
            "types",
            vec![key(col("pk", 23, -1, "int4", false)), c],
            ReplicaIdentity::Default,
        );
        let ev = event(Op::Create, &t, None, Some(vec![Value::Int32(1), v]));
        let mut enc = DebeziumJson::new(opts());
        let raw = text(enc.value(&ev, NOW_NS).expect("value"));
        let j = parse(&raw);
        let schema = j["schema"]["fields"][1]["fields"][1].clone();
        assert_eq!(schema["field"], name.as_str());
        (schema, j["payload"]["after"][name.as_str()].clone(), raw)
    }

    fn payload(c: Column, v: Value) -> serde_json::Value {
        one(c, v).1
    }

    /// Section 4's table.
    #[test]
    fn type_mapping_payloads() {
        use serde_json::json;
        assert_eq!(
            payload(col("b", 16, -1, "bool", true), Value::Bool(true)),
            json!(true)
        );
        assert_eq!(
            payload(col("s", 21, -1, "int2", true), Value::Int16(1)),
            json!(1)
        );
        assert_eq!(
            payload(col("i", 23, -1, "int4", true), Value::Int32(123456)),
            json!(123456)
        );
        assert_eq!(
            payload(col("l", 20, -1, "int8", true), Value::Int64(4_000_000_000)),
            json!(4_000_000_000i64)
        );
        assert_eq!(
            payload(col("d", 701, -1, "float8", true), Value::Float64(3.3)),
            json!(3.3)
        );
        assert_eq!(
            payload(
                col("u", 2950, -1, "uuid", true),
                Value::Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into())
            ),
            json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        );
        assert_eq!(
            payload(
                col("j", 3802, -1, "jsonb", true),
                Value::Json(r#"{"a": 1}"#.into())
            ),
            json!(r#"{"a": 1}"#)
        );
        assert_eq!(
            payload(
                col("c", 1042, 14, "bpchar", true),
                Value::Text("ab        ".into())
            ),
            json!("ab        ")
        );
        assert_eq!(
            payload(col("dt", 1082, -1, "date", true), Value::Date(17109)),
            json!(17109)
        );
        assert_eq!(
            payload(
                col("by", 17, -1, "bytea", true),
                Value::Bytes(vec![1, 2, 3])
            ),
            json!("AQID")
        );
        // time 13:51:30 → 49890000000 µs (MicroTime); time(3) in ms.
        assert_eq!(
            payload(
                col("t", 1083, -1, "time", true),
                Value::Time(49_890_000_000)
            ),
            json!(49_890_000_000i64)
        );
        assert_eq!(
            payload(
                col("t3", 1083, 3, "time", true),
                Value::Time(49_890_123_000)
            ),
            json!(49_890_123)
        );
        // timestamp 2016-11-04 13:51:30.123456 → 1478267490123456; timestamp(3) in ms.
        assert_eq!(
            payload(
                col("ts", 1114, -1, "timestamp", true),
                Value::Timestamp(1_478_267_490_123_456)
            ),
            json!(1_478_267_490_123_456i64)
        );
        assert_eq!(
            payload(
                col("ts3", 1114, 3, "timestamp", true),
                Value::Timestamp(1_478_267_490_123_000)
            ),
            json!(1_478_267_490_123i64)
        );
        // timestamptz '2016-11-04 13:51:30.123456+02' → "2016-11-04T11:51:30.123456Z".
        assert_eq!(
            payload(
                col("tz", 1184, -1, "timestamptz", true),
                Value::TimestampTz(1_478_260_290_123_456)
            ),
            json!("2016-11-04T11:51:30.123456Z")
        );
        assert_eq!(
            payload(
                col("tz6", 1184, 6, "timestamptz", true),
                Value::TimestampTz(1_478_260_290_000_000)
            ),
            json!("2016-11-04T11:51:30.000000Z")
        );
        assert_eq!(
            payload(
                col("tz3", 1184, 3, "timestamptz", true),
                Value::TimestampTz(1_478_260_290_123_000)
            ),
            json!("2016-11-04T11:51:30.123Z")
        );
        assert_eq!(
            payload(
                col("tz0", 1184, 0, "timestamptz", true),
                Value::TimestampTz(1_478_260_290_000_000)
            ),
            json!("2016-11-04T11:51:30Z")
        );
        // Unmapped types are plain strings.
        let (schema, v, _) = one(
            col("r", 3904, -1, "int4range", true),
            Value::Text("[1000,6000)".into()),
        );
        assert_eq!(v, json!("[1000,6000)"));
        assert_eq!(schema, json!({"type":"string","optional":true,"field":"r"}));
    }

    #[test]
    fn type_mapping_schemas() {
        use serde_json::json;
        let s = |c: Column, v: Value| one(c, v).0;
        assert_eq!(
            s(
                col("n", 1700, ((10 << 16) | 2) + 4, "numeric", true),
                Value::Numeric("1.00".into())
            ),
            json!({"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,
                   "parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"n"})
        );
        let (schema, _, raw) = one(
            col("v", 1700, -1, "numeric", true),
            Value::Numeric("1".into()),
        );
        assert_eq!(
            schema,
            json!({"type":"struct","fields":[{"type":"int32","optional":false,"field":"scale"},
                   {"type":"bytes","optional":false,"field":"value"}],"optional":true,
                   "name":"io.debezium.data.VariableScaleDecimal","version":1,"doc":"Variable scaled decimal","field":"v"})
        );
        assert!(raw.contains(r#"{"type":"struct","fields":[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}],"optional":true,"name":"io.debezium.data.VariableScaleDecimal","version":1,"doc":"Variable scaled decimal","field":"v"}"#));
        assert_eq!(
            s(col("f", 700, -1, "float4", true), Value::Float32(1.0)),
            json!({"type":"float","optional":true,"field":"f"})
        );
        assert_eq!(
            s(col("d", 1082, -1, "date", false), Value::Date(0)),
            json!({"type":"int32","optional":false,"name":"io.debezium.time.Date","version":1,"field":"d"})
        );
        assert_eq!(
            s(col("t", 1083, 3, "time", true), Value::Time(0)),
            json!({"type":"int32","optional":true,"name":"io.debezium.time.Time","version":1,"field":"t"})
        );
        assert_eq!(
            s(col("t", 1083, 6, "time", true), Value::Time(0)),
            json!({"type":"int64","optional":true,"name":"io.debezium.time.MicroTime","version":1,"field":"t"})
        );
        assert_eq!(
            s(col("t", 1114, 0, "timestamp", true), Value::Timestamp(0)),
            json!({"type":"int64","optional":true,"name":"io.debezium.time.Timestamp","version":1,"field":"t"})
        );
        assert_eq!(
            s(col("t", 1114, 4, "timestamp", true), Value::Timestamp(0)),
            json!({"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","version":1,"field":"t"})
        );
        assert_eq!(
            s(col("j", 114, -1, "json", true), Value::Json("{}".into())),
            json!({"type":"string","optional":true,"name":"io.debezium.data.Json","version":1,"field":"j"})
        );
        assert_eq!(
            s(col("b", 17, -1, "bytea", true), Value::Bytes(vec![])),
            json!({"type":"bytes","optional":true,"field":"b"})
        );
        let mut e = col("mood", 40000, -1, "mood", true);
        e.enum_labels = vec!["happy".into(), "ok".into(), "sad".into()];
        let (schema, v, _) = one(e, Value::Text("ok".into()));
        assert_eq!(
            schema,
            json!({"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,
                   "parameters":{"allowed":"happy,ok,sad"},"field":"mood"})
        );
        assert_eq!(v, json!("ok"));
    }

    /// Decimal bytes: Java's `BigInteger.toByteArray()` (two's complement, big-endian, minimal),
    /// base64. Expected strings computed independently from that definition.
    #[test]
    fn numerics() {
        use serde_json::json;
        let dec = |p: i32, s: i32, v: &str| {
            payload(
                col("n", 1700, ((p << 16) | s) + 4, "numeric", true),
                Value::Numeric(v.into()),
            )
        };
        let var = |v: &str| {
            payload(
                col("n", 1700, -1, "numeric", true),
                Value::Numeric(v.into()),
            )
        };
        // Reference section 4.
        assert_eq!(dec(10, 2, "1234.56"), json!("AeJA"));
        assert_eq!(var("10.1111"), json!({"scale":4,"value":"AYr3"}));
        // Negative and boundary values.
        assert_eq!(dec(10, 2, "-1234.56"), json!("/h3A"));
        assert_eq!(dec(10, 2, "0.00"), json!("AA=="));
        assert_eq!(dec(10, 2, "-0.01"), json!("/w=="));
        assert_eq!(dec(10, 2, "1.28"), json!("AIA="));
        assert_eq!(dec(10, 2, "-1.28"), json!("gA=="));
        assert_eq!(dec(10, 2, "2.55"), json!("AP8="));
        assert_eq!(dec(10, 2, "-2.55"), json!("/wE="));
        assert_eq!(dec(10, 2, "-2.56"), json!("/wA="));
        // Rescaled to the column scale.
        assert_eq!(dec(10, 2, "15"), json!("Bdw="));
        assert_eq!(dec(10, 3, "1.5"), json!("Bdw="));
        // 38 digits (the i128 path) and 60 digits (the general path).
        let nines = "9".repeat(38);
        assert_eq!(dec(38, 0, &nines), json!("SztMqFqGxHoJiiI//////w=="));
        assert_eq!(
            dec(38, 0, &format!("-{nines}")),
            json!("tMSzV6V5O4X2dd3AAAAAAQ==")
        );
        assert_eq!(
            dec(38, 10, "1234567890123456789012345678.9012345678"),
            json!("CUmw9vACMxPESZBQ3jjzTg==")
        );
        assert_eq!(
            dec(38, 10, "-1234567890123456789012345678.9012345678"),
            json!("9rZPCQ/9zOw7tm+vIccMsg==")
        );
        let big = "123456789012345678901234567890123456789012345678901234567890";
        assert_eq!(
            var(big),
            json!({"scale":0,"value":"E6r1BOS8HmIXP4ekN4w3tJyMz/GWzj8K0g=="})
        );
        assert_eq!(
            var(&format!("-{big}")),
            json!({"scale":0,"value":"7FUK+xtD4Z3owHhbyHPIS2NzMA5pMcD1Lg=="})
        );
        assert_eq!(
            var("-123456789012345678901234567890.123456789012345678901234567890"),
            json!({"scale":29,"value":"/giBGRxTlo/KeaWixz7HOr0lHmfXUcZ+6w=="})
        );
        // Variable scale: trailing zeros stripped, negative scale set back to 0.
        assert_eq!(var("-0.5"), json!({"scale":1,"value":"+w=="}));
        assert_eq!(var("15.00"), json!({"scale":0,"value":"Dw=="}));
        assert_eq!(var("100"), json!({"scale":0,"value":"ZA=="}));
        assert_eq!(var("0.000"), json!({"scale":0,"value":"AA=="}));
    }

    #[test]
    fn numeric_special_values_are_errors() {
        for s in ["NaN", "Infinity", "-Infinity"] {
            for typmod in [-1, ((10 << 16) | 2) + 4] {
                let t = table(
                    "types",
                    vec![
                        key(col("pk", 23, -1, "int4", false)),
                        col("n", 1700, typmod, "numeric", true),
                    ],
                    ReplicaIdentity::Default,
                );
                let ev = event(
                    Op::Create,
                    &t,
                    None,
                    Some(vec![Value::Int32(1), Value::Numeric(s.into())]),
                );
                let err = DebeziumJson::new(opts())
                    .value(&ev, NOW_NS)
                    .expect_err("special");
                assert_eq!(err.kind, EncodeErrorKind::SpecialNumeric(s.into()));
                assert_eq!(err.table, "public.types");
                assert_eq!(err.column.as_deref(), Some("n"));
                assert_eq!(err.lsn, Lsn(24_023_128));
                let msg = err.to_string();
                assert!(
                    msg.contains("public.types")
                        && msg.contains("column n")
                        && msg.contains("0/16E9058"),
                    "{msg}"
                );
            }
        }
    }

    /// Section 4: NaN/±Infinity floats as JSON strings; Java's number layout otherwise.
    #[test]
    fn floats() {
        use serde_json::json;
        let d = |v: f64| one(col("d", 701, -1, "float8", true), Value::Float64(v)).2;
        assert!(d(f64::NAN).contains(r#""d":"NaN""#));
        assert!(d(f64::INFINITY).contains(r#""d":"Infinity""#));
        assert!(d(f64::NEG_INFINITY).contains(r#""d":"-Infinity""#));
        assert!(d(2.0).contains(r#""d":2.0}"#));
        assert!(d(1.0e-5).contains(r#""d":1.0E-5}"#));
        assert!(d(1.2345678e7).contains(r#""d":1.2345678E7}"#));
        let f = |v: f32| one(col("f", 700, -1, "float4", true), Value::Float32(v));
        assert_eq!(f(f32::NAN).1, json!("NaN"));
        assert!(f(3.3).2.contains(r#""f":3.3}"#));
        assert!(f(1.0e10).2.contains(r#""f":1.0E10}"#));
    }

    /// PostgresValueConverter (see the module docs) for infinite dates and timestamps.
    #[test]
    fn infinities() {
        use serde_json::json;
        let p = payload;
        assert_eq!(
            p(
                col("t", 1184, -1, "timestamptz", true),
                Value::TimestampTz(i64::MAX)
            ),
            json!("infinity")
        );
        assert_eq!(
            p(
                col("t", 1184, -1, "timestamptz", true),
                Value::TimestampTz(i64::MIN)
            ),
            json!("-infinity")
        );
        assert_eq!(
            p(
                col("t", 1114, -1, "timestamp", true),
                Value::Timestamp(i64::MAX)
            ),
            json!(9_223_372_036_825_200_000i64)
        );
        assert_eq!(
            p(
                col("t", 1114, -1, "timestamp", true),
                Value::Timestamp(i64::MIN)
            ),
            json!(-9_223_372_036_832_400_000i64)
        );
        assert_eq!(
            p(
                col("t", 1114, 3, "timestamp", true),
                Value::Timestamp(i64::MAX)
            ),
            json!(9_223_372_036_825_200i64)
        );
        // +5877611-06-21 and -5877611-06-22 as epoch days.
        assert_eq!(
            p(col("d", 1082, -1, "date", true), Value::Date(i32::MAX)),
            json!(2_146_033_979)
        );
        assert_eq!(
            p(col("d", 1082, -1, "date", true), Value::Date(i32::MIN)),
            json!(-2_147_472_691)
        );
    }

    #[test]
    fn zoned_timestamp_edges() {
        let z = |us: i64, digits: u8| {
            let mut s = String::new();
            crate::encode::columns::push_zoned_timestamp(&mut s, us, digits);
            s
        };
        assert_eq!(z(0, 6), "1970-01-01T00:00:00.000000Z");
        assert_eq!(z(-1, 6), "1969-12-31T23:59:59.999999Z");
        assert_eq!(z(-1, 0), "1969-12-31T23:59:59Z");
        assert_eq!(z(951_782_400_000_000, 3), "2000-02-29T00:00:00.000Z");
        assert_eq!(z(253_402_300_800_000_000, 0), "+10000-01-01T00:00:00Z");
        // 0001-01-01 BC is ISO year 0.
        assert_eq!(z(-62_167_219_200_000_000, 0), "0000-01-01T00:00:00Z");
        assert_eq!(z(-62_198_755_200_000_000, 0), "-0001-01-01T00:00:00Z");
    }

    #[test]
    fn unchanged_toast_placeholder() {
        use serde_json::json;
        assert_eq!(
            payload(col("t", 25, -1, "text", false), Value::UnchangedToast),
            json!("__debezium_unavailable_value")
        );
        assert_eq!(
            payload(col("j", 3802, -1, "jsonb", true), Value::UnchangedToast),
            json!("__debezium_unavailable_value")
        );
        assert_eq!(
            payload(col("b", 17, -1, "bytea", false), Value::UnchangedToast),
            json!("X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==")
        );
    }

    #[test]
    fn null_in_required_column_is_an_error() {
        let t = products(ReplicaIdentity::Default);
        let mut row = product_row();
        row[2] = Value::Null;
        let ev = event(Op::Create, &t, None, Some(row));
        let err = DebeziumJson::new(opts())
            .value(&ev, NOW_NS)
            .expect_err("null");
        assert_eq!(err.kind, EncodeErrorKind::NullInRequiredColumn);
        assert_eq!(err.table, "public.products");
        assert_eq!(err.column.as_deref(), Some("weight"));
    }

    #[test]
    fn null_in_optional_column_with_default_writes_the_default() {
        use serde_json::json;
        let c = with_default(col("qty", 23, -1, "int4", true), "5");
        assert_eq!(payload(c, Value::Null), json!(5));
        assert_eq!(
            payload(col("qty", 23, -1, "int4", true), Value::Null),
            json!(null)
        );
    }

    #[test]
    fn type_mismatch_names_the_type() {
        let t = products(ReplicaIdentity::Default);
        let mut row = product_row();
        row[2] = Value::Text("heavy".into());
        let ev = event(Op::Create, &t, None, Some(row));
        let err = DebeziumJson::new(opts())
            .value(&ev, NOW_NS)
            .expect_err("mismatch");
        assert_eq!(
            err.kind,
            EncodeErrorKind::TypeMismatch {
                value: "text",
                type_name: "float8".into(),
                oid: 701
            }
        );
    }

    /// Section 4's column defaults and PostgresDefaultValueConverter's placeholders.
    #[test]
    fn defaults() {
        use serde_json::json;
        let d = |c: Column, expr: &str| {
            one(with_default(c, expr), Value::Null)
                .0
                .get("default")
                .cloned()
        };
        assert_eq!(
            d(col("t", 25, -1, "text", true), "'abc'::text"),
            Some(json!("abc"))
        );
        assert_eq!(
            d(
                col("t", 1043, 14, "varchar", true),
                "'it''s'::character varying"
            ),
            Some(json!("it's"))
        );
        assert_eq!(d(col("t", 25, -1, "text", true), "CURRENT_USER"), None);
        assert_eq!(d(col("i", 23, -1, "int4", true), "0"), Some(json!(0)));
        assert_eq!(
            d(col("i", 23, -1, "int4", true), "'-1'::integer"),
            Some(json!(-1))
        );
        assert_eq!(
            d(
                col("i", 23, -1, "int4", true),
                "nextval('t_i_seq'::regclass)"
            ),
            Some(json!(0))
        );
        assert_eq!(
            d(
                col("i", 20, -1, "int8", true),
                "'9223372036854775807'::bigint"
            ),
            Some(json!(i64::MAX))
        );
        assert_eq!(
            d(col("f", 701, -1, "float8", true), "1.5"),
            Some(json!(1.5))
        );
        assert_eq!(d(col("b", 16, -1, "bool", true), "true"), Some(json!(true)));
        assert_eq!(
            d(col("d", 1082, -1, "date", true), "'2020-01-01'::date"),
            Some(json!(18262))
        );
        assert_eq!(
            d(col("d", 1082, -1, "date", true), "CURRENT_DATE"),
            Some(json!(0))
        );
        assert_eq!(
            d(col("u", 2950, -1, "uuid", true), "uuid_generate_v4()"),
            Some(json!("00000000-0000-0000-0000-000000000000"))
        );
        assert_eq!(
            d(col("u", 2950, -1, "uuid", true), "gen_random_uuid()"),
            Some(json!("00000000-0000-0000-0000-000000000000"))
        );
        assert_eq!(
            d(col("z", 1184, -1, "timestamptz", true), "now()"),
            Some(json!("1970-01-01T00:00:00.000000Z"))
        );
        assert_eq!(
            d(col("z", 1184, 3, "timestamptz", true), "CURRENT_TIMESTAMP"),
            Some(json!("1970-01-01T00:00:00.000Z"))
        );
        assert_eq!(
            d(
                col("z", 1184, 0, "timestamptz", true),
                "'2016-11-04 13:51:30+02'::timestamp with time zone"
            ),
            Some(json!("2016-11-04T11:51:30Z"))
        );
        assert_eq!(
            d(
                col("ts", 1114, -1, "timestamp", true),
                "'2016-11-04 13:51:30.123456'::timestamp without time zone"
            ),
            Some(json!(1_478_267_490_123_456i64))
        );
        assert_eq!(
            d(
                col("t", 1083, -1, "time", true),
                "'13:51:30'::time without time zone"
            ),
            Some(json!(49_890_000_000i64))
        );
        assert_eq!(
            d(col("j", 3802, -1, "jsonb", true), "'{}'::jsonb"),
            Some(json!("{}"))
        );
        assert_eq!(
            d(
                col("n", 1700, ((10 << 16) | 2) + 4, "numeric", true),
                "1234.56"
            ),
            Some(json!("AeJA"))
        );
        assert_eq!(
            d(
                col("n", 1700, ((10 << 16) | 2) + 4, "numeric", true),
                "1234.567"
            ),
            None
        );
        assert_eq!(d(col("n", 1700, -1, "numeric", true), "1.5"), None);
        assert_eq!(d(col("b", 17, -1, "bytea", true), "'\\x00'::bytea"), None);
        assert_eq!(d(col("i", 23, -1, "int4", true), "(1 + 2)"), None);
        assert_eq!(d(col("t", 25, -1, "text", true), "NULL::text"), None);
        let mut e = col("mood", 40000, -1, "mood", true);
        e.enum_labels = vec!["happy".into(), "ok".into()];
        assert_eq!(d(e, "'ok'::mood"), Some(json!("ok")));
        let mut dom = col("dom", 50000, -1, "posint", true);
        dom.base_type_oid = 23;
        assert_eq!(d(dom, "1"), None);
    }

    #[test]
    fn schema_cache_follows_table_schema_changes() {
        let mut enc = DebeziumJson::new(opts());
        let t1 = products(ReplicaIdentity::Default);
        let ev = event(Op::Create, &t1, None, Some(product_row()));
        let v1 = text(enc.value(&ev, NOW_NS).expect("value"));

        // An equal schema in another Arc: same output, plan kept.
        let t1b = products(ReplicaIdentity::Default);
        let ev = event(Op::Create, &t1b, None, Some(product_row()));
        assert_eq!(text(enc.value(&ev, NOW_NS).expect("value")), v1);
        assert!(Arc::ptr_eq(&enc.tables[&16384].layout.table, &t1b));

        // A changed schema (new column): the cached schema is rebuilt.
        let mut cols = products(ReplicaIdentity::Default).columns.clone();
        cols.push(col("note", 25, -1, "text", true));
        let t2 = table("products", cols, ReplicaIdentity::Default);
        let mut row = product_row();
        row.push(Value::Text("n".into()));
        let ev = event(Op::Create, &t2, None, Some(row));
        let v2 = text(enc.value(&ev, NOW_NS).expect("value"));
        assert!(v2.contains(r#"{"type":"string","optional":true,"field":"note"}"#));
        assert!(v2.contains(r#","note":"n"}"#));

        // An event still carrying the old schema gets the old schema back.
        let ev = event(Op::Create, &t1, None, Some(product_row()));
        assert_eq!(text(enc.value(&ev, NOW_NS).expect("value")), v1);
    }

    #[test]
    fn row_length_mismatch_is_an_error() {
        let t = products(ReplicaIdentity::Default);
        let ev = event(Op::Create, &t, None, Some(vec![Value::Uuid(UUID.into())]));
        let err = DebeziumJson::new(opts())
            .value(&ev, NOW_NS)
            .expect_err("length");
        assert_eq!(
            err.kind,
            EncodeErrorKind::RowLength {
                expected: 4,
                found: 1
            }
        );
    }

    #[test]
    fn strings_are_escaped_like_jackson() {
        let mut s = String::new();
        write_json_str(&mut s, "a\"b\\c\nd\te\u{1}f\u{8}g\u{c}h\ri/é€😀\u{7f}");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\te\\u0001f\\bg\\fh\\ri/é€😀\u{7f}\"");
        let mut s = String::new();
        write_json_str(&mut s, "\u{1f}");
        assert_eq!(s, "\"\\u001F\"");
        let parsed: String = serde_json::from_str(&s).expect("json");
        assert_eq!(parsed, "\u{1f}");
    }

    /// Rough throughput check: `cargo test --release -- --ignored --nocapture throughput`.
    #[test]
    #[ignore]
    fn throughput() {
        let t = products(ReplicaIdentity::Default);
        let ev = event(Op::Create, &t, None, Some(product_row()));
        let mut enc = DebeziumJson::new(opts());
        let n = 1_000_000;
        let start = std::time::Instant::now();
        let mut bytes = 0usize;
        for i in 0..n {
            bytes += enc.key(&ev).expect("key").map_or(0, |k| k.len());
            bytes += enc.value(&ev, NOW_NS + i).expect("value").len();
        }
        let secs = start.elapsed().as_secs_f64();
        println!("{:.0} events/s (key+value), {bytes} bytes", n as f64 / secs);
    }

    /// The fast JSON path writes what the format-neutral envelope describes.
    #[test]
    fn fast_path_matches_the_generic_envelope() {
        let t = products(ReplicaIdentity::Full);
        let mut old = product_row();
        old[1] = Value::Text("Old \"name\"\n".into());
        let events = [
            event(Op::Create, &t, None, Some(product_row())),
            event(Op::Update, &t, Some(old.clone()), Some(product_row())),
            event(Op::Delete, &t, Some(old), None),
        ];
        let o = opts();
        let mut enc = DebeziumJson::new(o.clone());
        for ev in &events {
            let layout = TableLayout::build(&o.record, &t).expect("layout");
            let fast = payload_of(&enc.value(ev, NOW_NS).expect("value"));
            let mut generic = String::new();
            write_value(
                &mut generic,
                &layout.envelope_schema,
                &layout.envelope(&o.record, ev, NOW_NS).expect("envelope"),
            );
            assert_eq!(fast, parse(&generic), "{:?}", ev.op);
            let fast_key =
                parse(&text(enc.key(ev).expect("key").expect("has key")))["payload"].clone();
            let mut generic_key = String::new();
            write_value(
                &mut generic_key,
                layout.key_schema.as_ref().expect("key schema"),
                &layout.key(ev).expect("key").expect("has key"),
            );
            assert_eq!(fast_key, parse(&generic_key));
        }
    }
}

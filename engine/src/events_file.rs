//! Events files: change events outside the relay, as `walrelay-events/v1` JSON Lines.
//!
//! The format is specified in `docs/events-format.md`. `walrelay record` writes it, `walrelay
//! plugin test` and `walrelay plugin diff` read it, and the declarative plugin tests
//! ([`crate::plugin::declarative`]) use the same objects in YAML.
//!
//! Each line holds one object with exactly one key: `table` (a [`TableDoc`]), `event` (an
//! [`EventDoc`]) or `record` (a [`RecordDoc`], in output only). The `*Doc` types are the serde
//! shapes of those objects; [`Tables::event`] and [`table_schema`] turn them into the relay's
//! [`ChangeEvent`]s and [`TableSchema`]s, and [`event_doc`], [`table_doc`] and [`record_doc`] go
//! the other way.
//!
//! # Values
//! A value is read against its column's type: `bool` from a JSON boolean, the integer types from
//! JSON integers, the float types from JSON numbers or the strings `NaN`, `Infinity`,
//! `-Infinity`, and every other type from a JSON string in PostgreSQL's text output form. The
//! text is then parsed by the relay's own parser ([`crate::pg::text::parse_value`]), so a file
//! holds exactly what PostgreSQL would send. Writing is the inverse ([`value_to_json`]), driven by
//! the value's variant; `read(write(x)) == x` for every [`Value`] whose variant matches its
//! column's type.
//!
//! # Type names
//! A column's `type` is a PostgreSQL type name. The built-in types of [`type_oid`] get their
//! oid; any other name (an enum, `inet`, an array such as `_int4`) is carried as text: type oid
//! `0`, base type oid `0`, its values read as [`Value::Text`] (which is what the relay makes of
//! such types). Writing a column names its base type when that is a built-in type, so a domain
//! over `int4` is written as `int4` (its values read back the same); otherwise its own name.
//!
//! Table oids are not carried: tables read from a file have oid `0`.
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as Json;

use crate::event::{
    ChangeEvent, Column, Header, Lsn, Op, Output, Record, ReplicaIdentity, SnapshotMarker, Source,
    TableSchema, Value,
};
use crate::pg::text::{days_from_civil, oid, parse_value};

/// The format's name and version, as in the documentation.
pub const FORMAT: &str = "walrelay-events/v1";

/// Microseconds in a day.
const DAY_US: i64 = 86_400_000_000;

/// A JSON object whose keys keep their order (and whose values may be JSON or text): a row keyed
/// by column name, or headers. Duplicate keys are refused when read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fields<V>(pub Vec<(String, V)>);

impl<V> Fields<V> {
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl<V: Serialize> Serialize for Fields<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Fields<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for FieldsVisitor<V> {
            type Value = Fields<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<V>, A::Error> {
                let mut out: Vec<(String, V)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, V>()? {
                    if out.iter().any(|(seen, _)| *seen == k) {
                        return Err(serde::de::Error::custom(format!("duplicate key `{k}`")));
                    }
                    out.push((k, v));
                }
                Ok(Fields(out))
            }
        }
        deserializer.deserialize_map(FieldsVisitor(std::marker::PhantomData))
    }
}

/// A `table` object: a table descriptor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDoc {
    pub schema: String,
    pub name: String,
    /// `default`, `full`, `index` or `nothing`; `default` when absent.
    #[serde(default = "default_identity")]
    pub replica_identity: String,
    pub columns: Vec<ColumnDoc>,
}

fn default_identity() -> String {
    "default".into()
}

/// A column of a [`TableDoc`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDoc {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub key: bool,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub nullable: bool,
    #[serde(default = "minus_one", skip_serializing_if = "is_minus_one")]
    pub typmod: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enum_labels: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_true(b: &bool) -> bool {
    *b
}
fn yes() -> bool {
    true
}
fn minus_one() -> i32 {
    -1
}
fn is_minus_one(v: &i32) -> bool {
    *v == -1
}

/// An `event` object: one change. Rows are kept as JSON until read against their table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventDoc {
    /// `c`, `u`, `d`, `r` or `t`.
    pub op: String,
    /// `schema.table`.
    pub table: String,
    #[serde(default)]
    pub before: Option<Fields<Json>>,
    #[serde(default)]
    pub after: Option<Fields<Json>>,
    /// Absent: the defaults (written only when not all default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceDoc>,
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub headers: Fields<String>,
}

/// An event's `source`; every field may be absent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDoc {
    /// `X/Y`; `0/0` when absent.
    #[serde(default)]
    pub lsn: Option<String>,
    #[serde(default)]
    pub last_commit_lsn: Option<String>,
    #[serde(default)]
    pub tx_id: Option<i64>,
    /// 0 when absent.
    #[serde(default)]
    pub ts_us: Option<i64>,
    /// Debezium's `source.snapshot` value (a string; a YAML/JSON boolean is taken as its text);
    /// `"false"` when absent.
    #[serde(default)]
    pub snapshot: Option<Json>,
}

/// A `record` object: a record a plugin wrote as it is (output only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordDoc {
    pub topic: String,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub headers: Fields<String>,
}

/// One line of an events file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LineDoc {
    Table(TableDoc),
    Event(EventDoc),
    Record(RecordDoc),
}

/// An events file's error: the file, the line (1-based) and what is wrong, the field first
/// (`events.jsonl:7: after.price: invalid numeric value "abc": not a numeric value`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}: {message}")]
pub struct EventsFileError {
    pub origin: String,
    pub line: usize,
    pub message: String,
}

/// What a line of an events file holds, read.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Table(Arc<TableSchema>),
    Event(ChangeEvent),
    Record(Record),
}

/// An item and the line (1-based) it was read from.
#[derive(Clone, Debug, PartialEq)]
pub struct Located<T> {
    pub line: usize,
    pub item: T,
}

/// Reads the events file at `path`.
pub fn read_file(path: &Path) -> Result<Vec<Located<Item>>, EventsFileError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| EventsFileError {
        origin: origin.clone(),
        line: 0,
        message: format!("cannot read the events file: {e}"),
    })?;
    read_str(&origin, &text)
}

/// Reads events-file `text`; `origin` names it in errors. Blank lines are skipped.
pub fn read_str(origin: &str, text: &str) -> Result<Vec<Located<Item>>, EventsFileError> {
    let mut tables = Tables::default();
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let err = |message: String| EventsFileError {
            origin: origin.to_string(),
            line,
            message,
        };
        let doc: LineDoc = serde_json::from_str(raw).map_err(|e| err(describe_json_error(&e)))?;
        let item = match doc {
            LineDoc::Table(t) => Item::Table(tables.define(&t).map_err(err)?),
            LineDoc::Event(e) => Item::Event(tables.event(&e).map_err(err)?),
            LineDoc::Record(r) => Item::Record(record_from_doc(&r)),
        };
        out.push(Located { line, item });
    }
    Ok(out)
}

fn describe_json_error(e: &serde_json::Error) -> String {
    // serde_json appends " at line 1 column N": the line is always 1 here, the column helps.
    let text = e.to_string();
    let text = match text.rsplit_once(" at line 1 column ") {
        Some((head, col)) => format!("{head} (column {col})"),
        None => text,
    };
    format!("not a walrelay-events/v1 line: {text}")
}

/// The change events of `items`, with their lines.
pub fn events(items: Vec<Located<Item>>) -> Vec<Located<ChangeEvent>> {
    items
        .into_iter()
        .filter_map(|l| match l.item {
            Item::Event(e) => Some(Located {
                line: l.line,
                item: e,
            }),
            _ => None,
        })
        .collect()
}

/// The tables described so far, by `schema.table`: what events are read against.
#[derive(Clone, Debug, Default)]
pub struct Tables {
    by_name: HashMap<String, Arc<TableSchema>>,
}

impl Tables {
    /// Reads a table object and makes it the current description of its table.
    pub fn define(&mut self, doc: &TableDoc) -> Result<Arc<TableSchema>, String> {
        let table = Arc::new(table_schema(doc)?);
        self.insert(table.clone());
        Ok(table)
    }

    /// Makes `table` the current description of its table.
    pub fn insert(&mut self, table: Arc<TableSchema>) {
        self.by_name.insert(table.qualified_name(), table);
    }

    pub fn get(&self, qualified_name: &str) -> Option<&Arc<TableSchema>> {
        self.by_name.get(qualified_name)
    }

    /// Reads an event object against the tables described so far.
    pub fn event(&self, doc: &EventDoc) -> Result<ChangeEvent, String> {
        let table = self.get(&doc.table).ok_or_else(|| {
            format!(
                "table: `{}` was not described by an earlier table line",
                doc.table
            )
        })?;
        event_from_doc(doc, table.clone())
    }
}

/// The built-in type names the format knows, with their oids.
pub fn type_oid(name: &str) -> Option<u32> {
    Some(match name {
        "bool" => oid::BOOL,
        "int2" => oid::INT2,
        "int4" => oid::INT4,
        "int8" => oid::INT8,
        "oid" => oid::OID,
        "float4" => oid::FLOAT4,
        "float8" => oid::FLOAT8,
        "numeric" => oid::NUMERIC,
        "text" => oid::TEXT,
        "varchar" => oid::VARCHAR,
        "bpchar" => oid::BPCHAR,
        "name" => oid::NAME,
        "uuid" => oid::UUID,
        "json" => oid::JSON,
        "jsonb" => oid::JSONB,
        "bytea" => oid::BYTEA,
        "date" => oid::DATE,
        "time" => oid::TIME,
        "timestamp" => oid::TIMESTAMP,
        "timestamptz" => oid::TIMESTAMPTZ,
        _ => return None,
    })
}

fn type_name_of_oid(type_oid: u32) -> Option<&'static str> {
    Some(match type_oid {
        oid::BOOL => "bool",
        oid::INT2 => "int2",
        oid::INT4 => "int4",
        oid::INT8 => "int8",
        oid::OID => "oid",
        oid::FLOAT4 => "float4",
        oid::FLOAT8 => "float8",
        oid::NUMERIC => "numeric",
        oid::TEXT => "text",
        oid::VARCHAR => "varchar",
        oid::BPCHAR => "bpchar",
        oid::NAME => "name",
        oid::UUID => "uuid",
        oid::JSON => "json",
        oid::JSONB => "jsonb",
        oid::BYTEA => "bytea",
        oid::DATE => "date",
        oid::TIME => "time",
        oid::TIMESTAMP => "timestamp",
        oid::TIMESTAMPTZ => "timestamptz",
        _ => return None,
    })
}

/// A table object as a [`TableSchema`] (oid 0).
pub fn table_schema(doc: &TableDoc) -> Result<TableSchema, String> {
    if doc.name.is_empty() {
        return Err("table.name: empty".into());
    }
    let replica_identity = match doc.replica_identity.as_str() {
        "default" => ReplicaIdentity::Default,
        "full" => ReplicaIdentity::Full,
        "index" => ReplicaIdentity::Index,
        "nothing" => ReplicaIdentity::Nothing,
        other => {
            return Err(format!(
                "table.replica_identity: `{other}` is not one of default, full, index, nothing"
            ))
        }
    };
    let mut columns: Vec<Column> = Vec::with_capacity(doc.columns.len());
    for (i, c) in doc.columns.iter().enumerate() {
        if c.name.is_empty() {
            return Err(format!("table.columns[{i}].name: empty"));
        }
        if columns.iter().any(|seen| seen.name == c.name) {
            return Err(format!(
                "table.columns[{i}]: a second column named `{}`",
                c.name
            ));
        }
        if c.type_name.is_empty() {
            return Err(format!("table.columns[{i}].type: empty"));
        }
        let type_oid = type_oid(&c.type_name).unwrap_or(0);
        columns.push(Column {
            name: c.name.clone(),
            type_oid,
            type_modifier: c.typmod,
            type_name: c.type_name.clone(),
            base_type_oid: type_oid,
            nullable: c.nullable,
            is_key: c.key,
            default: c.default.clone(),
            enum_labels: c.enum_labels.clone(),
        });
    }
    Ok(TableSchema {
        oid: 0,
        schema: doc.schema.clone(),
        name: doc.name.clone(),
        columns,
        replica_identity,
    })
}

/// A [`TableSchema`] as a table object. A domain over a built-in type is written as that type.
pub fn table_doc(t: &TableSchema) -> TableDoc {
    TableDoc {
        schema: t.schema.clone(),
        name: t.name.clone(),
        replica_identity: match t.replica_identity {
            ReplicaIdentity::Default => "default",
            ReplicaIdentity::Full => "full",
            ReplicaIdentity::Index => "index",
            ReplicaIdentity::Nothing => "nothing",
        }
        .into(),
        columns: t
            .columns
            .iter()
            .map(|c| ColumnDoc {
                name: c.name.clone(),
                type_name: column_type_name(c),
                key: c.is_key,
                nullable: c.nullable,
                typmod: c.type_modifier,
                default: c.default.clone(),
                enum_labels: c.enum_labels.clone(),
            })
            .collect(),
    }
}

fn column_type_name(c: &Column) -> String {
    let base = if c.base_type_oid == 0 {
        c.type_oid
    } else {
        c.base_type_oid
    };
    match type_name_of_oid(base) {
        Some(builtin) => builtin.to_string(),
        None if c.type_name.is_empty() => format!("oid{}", c.type_oid),
        None => c.type_name.clone(),
    }
}

fn op_from_code(code: &str) -> Option<Op> {
    Some(match code {
        "c" => Op::Create,
        "u" => Op::Update,
        "d" => Op::Delete,
        "r" => Op::Read,
        "t" => Op::Truncate,
        _ => return None,
    })
}

fn marker_from_str(s: &str) -> Option<SnapshotMarker> {
    Some(match s {
        "false" => SnapshotMarker::False,
        "true" => SnapshotMarker::True,
        "first" => SnapshotMarker::First,
        "first_in_data_collection" => SnapshotMarker::FirstInDataCollection,
        "last_in_data_collection" => SnapshotMarker::LastInDataCollection,
        "last" => SnapshotMarker::Last,
        _ => return None,
    })
}

/// Reads a `source` object; absent fields take their defaults.
pub fn source_from_doc(doc: Option<&SourceDoc>) -> Result<Source, String> {
    let default = SourceDoc::default();
    let doc = doc.unwrap_or(&default);
    let lsn = |field: &str, text: &Option<String>| -> Result<Option<Lsn>, String> {
        text.as_deref()
            .map(|t| {
                Lsn::parse(t).ok_or_else(|| {
                    format!("source.{field}: {t:?} is not an LSN (X/Y, two hex numbers)")
                })
            })
            .transpose()
    };
    let snapshot = match &doc.snapshot {
        None | Some(Json::Null) => SnapshotMarker::False,
        Some(Json::Bool(b)) => {
            if *b {
                SnapshotMarker::True
            } else {
                SnapshotMarker::False
            }
        }
        Some(Json::String(s)) => marker_from_str(s).ok_or_else(|| {
            format!(
                "source.snapshot: {s:?} is not one of false, true, first, \
                 first_in_data_collection, last_in_data_collection, last"
            )
        })?,
        Some(other) => return Err(format!("source.snapshot: expected a string, not {other}")),
    };
    Ok(Source {
        lsn: lsn("lsn", &doc.lsn)?.unwrap_or(Lsn::ZERO),
        last_commit_lsn: lsn("last_commit_lsn", &doc.last_commit_lsn)?,
        tx_id: doc.tx_id,
        ts_us: doc.ts_us.unwrap_or(0),
        snapshot,
    })
}

/// A [`Source`] as a `source` object, every field given.
pub fn source_doc(s: &Source) -> SourceDoc {
    SourceDoc {
        lsn: Some(s.lsn.to_string()),
        last_commit_lsn: s.last_commit_lsn.map(|l| l.to_string()),
        tx_id: s.tx_id,
        ts_us: Some(s.ts_us),
        snapshot: Some(Json::String(s.snapshot.as_str().into())),
    }
}

fn default_source() -> Source {
    Source {
        lsn: Lsn::ZERO,
        last_commit_lsn: None,
        tx_id: None,
        ts_us: 0,
        snapshot: SnapshotMarker::False,
    }
}

/// Reads an event object against `table` (which must be the table it names).
pub fn event_from_doc(doc: &EventDoc, table: Arc<TableSchema>) -> Result<ChangeEvent, String> {
    let op = op_from_code(&doc.op)
        .ok_or_else(|| format!("op: {:?} is not one of c, u, d, r, t", doc.op))?;
    let row = |which: &str, fields: &Option<Fields<Json>>| -> Result<Option<Vec<Value>>, String> {
        let Some(fields) = fields else {
            return Ok(None);
        };
        for (name, _) in &fields.0 {
            if !table.columns.iter().any(|c| c.name == *name) {
                return Err(format!(
                    "{which}.{name}: {} has no column `{name}`",
                    table.qualified_name()
                ));
            }
        }
        table
            .columns
            .iter()
            .map(|c| match fields.get(&c.name) {
                None => Ok(Value::Null),
                Some(v) => value_from_json(c, v).map_err(|e| format!("{which}.{}: {e}", c.name)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    };
    let before = row("before", &doc.before)?;
    let after = row("after", &doc.after)?;
    match op {
        Op::Create | Op::Update | Op::Read if after.is_none() => {
            return Err(format!("after: a `{}` event needs an after row", op.code()))
        }
        Op::Delete if before.is_none() => {
            return Err("before: a `d` event needs a before row".into())
        }
        _ => {}
    }
    Ok(ChangeEvent {
        op,
        before,
        after,
        source: source_from_doc(doc.source.as_ref())?,
        topic: doc.topic.clone(),
        headers: doc
            .headers
            .0
            .iter()
            .map(|(k, v)| Header {
                key: k.clone(),
                value: v.clone().into_bytes(),
            })
            .collect(),
        table,
    })
}

/// A [`ChangeEvent`] as an event object. `source` is left out when it is all default; fails on
/// a row whose length is not the table's or a header that is not UTF-8.
pub fn event_doc(ev: &ChangeEvent) -> Result<EventDoc, String> {
    let row = |which: &str, values: &Option<Vec<Value>>| -> Result<Option<Fields<Json>>, String> {
        let Some(values) = values else {
            return Ok(None);
        };
        if values.len() != ev.table.columns.len() {
            return Err(format!(
                "{which}: {} values for the {} columns of {}",
                values.len(),
                ev.table.columns.len(),
                ev.table.qualified_name()
            ));
        }
        Ok(Some(Fields(
            ev.table
                .columns
                .iter()
                .zip(values)
                .map(|(c, v)| (c.name.clone(), value_to_json(v)))
                .collect(),
        )))
    };
    Ok(EventDoc {
        op: ev.op.code().into(),
        table: ev.table.qualified_name(),
        before: row("before", &ev.before)?,
        after: row("after", &ev.after)?,
        source: (ev.source != default_source()).then(|| source_doc(&ev.source)),
        topic: ev.topic.clone(),
        headers: headers_doc(&ev.headers)?,
    })
}

fn headers_doc(headers: &[Header]) -> Result<Fields<String>, String> {
    headers
        .iter()
        .map(|h| {
            String::from_utf8(h.value.clone())
                .map(|v| (h.key.clone(), v))
                .map_err(|_| format!("headers.{}: the value is not UTF-8", h.key))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Fields)
}

/// A record object as a [`Record`].
pub fn record_from_doc(doc: &RecordDoc) -> Record {
    Record {
        topic: doc.topic.clone(),
        key: doc.key.clone().map(String::into_bytes),
        value: doc.value.clone().map(String::into_bytes),
        headers: doc
            .headers
            .0
            .iter()
            .map(|(k, v)| Header {
                key: k.clone(),
                value: v.clone().into_bytes(),
            })
            .collect(),
    }
}

/// A [`Record`] as a record object; fails when its key, value or a header is not UTF-8.
pub fn record_doc(r: &Record) -> Result<RecordDoc, String> {
    let text = |what: &str, b: &Option<Vec<u8>>| {
        b.clone()
            .map(String::from_utf8)
            .transpose()
            .map_err(|_| format!("record.{what}: not UTF-8"))
    };
    Ok(RecordDoc {
        topic: r.topic.clone(),
        key: text("key", &r.key)?,
        value: text("value", &r.value)?,
        headers: headers_doc(&r.headers)?,
    })
}

/// A `table` line (no newline).
pub fn table_line(t: &TableSchema) -> String {
    line(&LineDoc::Table(table_doc(t)))
}

/// An `event` line (no newline).
pub fn event_line(ev: &ChangeEvent) -> Result<String, String> {
    Ok(line(&LineDoc::Event(event_doc(ev)?)))
}

/// A `record` line (no newline): the serializer for [`Output::Record`].
pub fn record_line(r: &Record) -> Result<String, String> {
    Ok(line(&LineDoc::Record(record_doc(r)?)))
}

/// One line of JSON for a line object.
pub fn line(doc: &LineDoc) -> String {
    // The docs hold only strings, numbers, booleans, null and string-keyed objects.
    serde_json::to_string(doc).unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()))
}

/// Writes outputs as lines, each table line before the first event of its table and again
/// whenever the table's description changes (a plugin reshaped it, or a schema change).
#[derive(Debug, Default)]
pub struct Writer {
    described: HashMap<String, TableDoc>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes `t` as already described (an input table): only a different description of the
    /// same table gets a line.
    pub fn assume(&mut self, t: &TableSchema) {
        self.described.insert(t.qualified_name(), table_doc(t));
    }

    /// The lines for `ev`: its table's line when needed, then the event's.
    pub fn event_lines(&mut self, ev: &ChangeEvent) -> Result<Vec<String>, String> {
        let mut out = Vec::with_capacity(2);
        let doc = table_doc(&ev.table);
        let name = ev.table.qualified_name();
        if self.described.get(&name) != Some(&doc) {
            out.push(line(&LineDoc::Table(doc.clone())));
            self.described.insert(name, doc);
        }
        out.push(event_line(ev)?);
        Ok(out)
    }

    /// The lines for one output of the plugin chain.
    pub fn output_lines(&mut self, o: &Output) -> Result<Vec<String>, String> {
        match o {
            Output::Change(ev) => self.event_lines(ev),
            Output::Record(r) => Ok(vec![record_line(r)?]),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Values

/// Reads a JSON value of a row against its column's type (see the module docs).
pub fn value_from_json(column: &Column, json: &Json) -> Result<Value, String> {
    if json.is_null() {
        return Ok(Value::Null);
    }
    if let Json::Object(map) = json {
        if map.len() == 1 && map.get("unchanged_toast") == Some(&Json::Bool(true)) {
            return Ok(Value::UnchangedToast);
        }
    }
    let base = if column.base_type_oid == 0 {
        column.type_oid
    } else {
        column.base_type_oid
    };
    let type_name = type_name_of_oid(base).unwrap_or(column.type_name.as_str());
    let text: String = match base {
        oid::BOOL => match json {
            Json::Bool(true) => "t".into(),
            Json::Bool(false) => "f".into(),
            other => return Err(format!("expected true or false for bool, not {other}")),
        },
        oid::INT2 | oid::INT4 | oid::INT8 | oid::OID => match json {
            Json::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
            other => return Err(format!("expected an integer for {type_name}, not {other}")),
        },
        oid::FLOAT4 | oid::FLOAT8 => match json {
            Json::Number(n) => match n.as_f64() {
                Some(f) if f.is_finite() => ryu::Buffer::new().format_finite(f).to_string(),
                _ => return Err(format!("{n} is out of range for {type_name}")),
            },
            Json::String(s) if matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity") => s.clone(),
            other => {
                return Err(format!(
                    "expected a number, \"NaN\", \"Infinity\" or \"-Infinity\" for {type_name}, \
                     not {other}"
                ))
            }
        },
        _ => match json {
            Json::String(s) => s.clone(),
            other => {
                return Err(format!(
                    "expected a string (PostgreSQL's text form) for {}, not {other}",
                    if type_name.is_empty() {
                        "a value carried as text"
                    } else {
                        type_name
                    }
                ))
            }
        },
    };
    parse_value(column, &text).map_err(|e| {
        format!(
            "invalid {} value {:?}: {}",
            if type_name.is_empty() {
                e.type_name.as_str()
            } else {
                type_name
            },
            e.text,
            e.reason
        )
    })
}

/// Writes a value as JSON, by its variant (the inverse of [`value_from_json`]).
pub fn value_to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::UnchangedToast => serde_json::json!({"unchanged_toast": true}),
        Value::Bool(b) => Json::Bool(*b),
        Value::Int16(i) => Json::from(*i),
        Value::Int32(i) => Json::from(*i),
        Value::Int64(i) => Json::from(*i),
        Value::Float32(f) => {
            if f.is_finite() {
                // The shortest text that reads back as this f32; as an f64 it prints the same.
                let text = ryu::Buffer::new().format_finite(*f).to_string();
                text.parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Json::Null, Json::Number)
            } else {
                Json::String(float_special(f64::from(*f)).into())
            }
        }
        Value::Float64(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => Json::Number(n),
            None => Json::String(float_special(*f).into()),
        },
        other => Json::String(pg_text(other).unwrap_or_default()),
    }
}

fn float_special(f: f64) -> &'static str {
    if f.is_nan() {
        "NaN"
    } else if f > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// PostgreSQL's text output of a value (`DateStyle=ISO`, `TimeZone=UTC`); `None` for null and
/// unchanged TOAST.
pub fn pg_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null | Value::UnchangedToast => return None,
        Value::Bool(b) => if *b { "t" } else { "f" }.into(),
        Value::Int16(i) => i.to_string(),
        Value::Int32(i) => i.to_string(),
        Value::Int64(i) => i.to_string(),
        Value::Float32(f) if f.is_finite() => ryu::Buffer::new().format_finite(*f).to_string(),
        Value::Float32(f) => float_special(f64::from(*f)).into(),
        Value::Float64(f) if f.is_finite() => ryu::Buffer::new().format_finite(*f).to_string(),
        Value::Float64(f) => float_special(*f).into(),
        Value::Numeric(s) | Value::Text(s) | Value::Uuid(s) | Value::Json(s) => s.clone(),
        Value::Bytes(b) => {
            let mut s = String::with_capacity(2 + 2 * b.len());
            s.push_str("\\x");
            for byte in b {
                s.push(char::from(HEX[usize::from(byte >> 4)]));
                s.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
            s
        }
        Value::Date(d) => match *d {
            i32::MAX => "infinity".into(),
            i32::MIN => "-infinity".into(),
            d => {
                let (date, bc) = format_date(i64::from(d));
                format!("{date}{bc}")
            }
        },
        Value::Time(us) => format_time(*us),
        Value::Timestamp(us) | Value::TimestampTz(us) => match *us {
            i64::MAX => "infinity".into(),
            i64::MIN => "-infinity".into(),
            us => {
                let (date, bc) = format_date(us.div_euclid(DAY_US));
                let time = format_time(us.rem_euclid(DAY_US));
                let zone = if matches!(v, Value::TimestampTz(_)) {
                    "+00"
                } else {
                    ""
                };
                format!("{date} {time}{zone}{bc}")
            }
        },
    })
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The proleptic Gregorian date of a day count since 1970-01-01, as (astronomical year, month,
/// day). Counts in 400-year eras of 146 097 days, with years starting on March 1st so the leap
/// day ends a year; the inverse of [`days_from_civil`].
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097); // [0, 146 096]
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153; // 0 = March .. 11 = February
    let day = day_of_year - (153 * march_month + 2) / 5 + 1;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    };
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    debug_assert_eq!(days_from_civil(year, month as u32, day as u32), days);
    (year, month as u32, day as u32)
}

/// `YYYY-MM-DD` and the ` BC` suffix (empty for AD), as PostgreSQL prints them.
fn format_date(days: i64) -> (String, &'static str) {
    let (year, month, day) = civil_from_days(days);
    if year <= 0 {
        (format!("{:04}-{month:02}-{day:02}", 1 - year), " BC")
    } else {
        (format!("{year:04}-{month:02}-{day:02}"), "")
    }
}

/// `HH:MM:SS[.ffffff]`, trailing zeros of the fraction dropped, as PostgreSQL prints it.
fn format_time(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = format!("{h:02}:{m:02}:{s:02}");
    if frac != 0 {
        let digits = format!("{frac:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, type_name: &str) -> Column {
        let type_oid = type_oid(type_name).unwrap_or(0);
        Column {
            name: name.into(),
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

    fn round_trip(type_name: &str, v: Value) -> Value {
        let c = column("c", type_name);
        let json = value_to_json(&v);
        // Through text, as a file would carry it.
        let json: Json = serde_json::from_str(&json.to_string()).unwrap();
        value_from_json(&c, &json).unwrap_or_else(|e| panic!("{type_name} {v:?} as {json}: {e}"))
    }

    fn assert_round_trip(type_name: &str, v: Value) {
        assert_eq!(round_trip(type_name, v.clone()), v, "{type_name}");
    }

    #[test]
    fn every_variant_round_trips() {
        for (t, v) in [
            ("int4", Value::Null),
            ("text", Value::UnchangedToast),
            ("int8", Value::UnchangedToast),
            ("bool", Value::Bool(true)),
            ("bool", Value::Bool(false)),
            ("int2", Value::Int16(i16::MIN)),
            ("int2", Value::Int16(i16::MAX)),
            ("int4", Value::Int32(i32::MIN)),
            ("int4", Value::Int32(-7)),
            ("int8", Value::Int64(i64::MIN)),
            ("int8", Value::Int64(i64::MAX)),
            ("oid", Value::Int64(i64::from(u32::MAX))),
            ("float4", Value::Float32(0.1)),
            ("float4", Value::Float32(f32::MAX)),
            ("float4", Value::Float32(f32::MIN_POSITIVE)),
            ("float4", Value::Float32(1e-45)),
            ("float4", Value::Float32(-3.4028235e38)),
            ("float4", Value::Float32(f32::INFINITY)),
            ("float4", Value::Float32(f32::NEG_INFINITY)),
            ("float8", Value::Float64(0.1)),
            ("float8", Value::Float64(1.0 / 3.0)),
            ("float8", Value::Float64(f64::MAX)),
            ("float8", Value::Float64(5e-324)),
            ("float8", Value::Float64(2.2250738585072014e-308)),
            ("float8", Value::Float64(9007199254740993.0)),
            ("float8", Value::Float64(-0.0)),
            ("float8", Value::Float64(1e300)),
            ("float8", Value::Float64(f64::INFINITY)),
            ("float8", Value::Float64(f64::NEG_INFINITY)),
            ("numeric", Value::Numeric("-12.3400".into())),
            ("numeric", Value::Numeric("NaN".into())),
            ("numeric", Value::Numeric("Infinity".into())),
            ("numeric", Value::Numeric("-Infinity".into())),
            ("text", Value::Text("a \"quoted\"\n\ttab ünï €".into())),
            ("text", Value::Text(String::new())),
            ("bpchar", Value::Text("ab   ".into())),
            ("varchar", Value::Text("v".into())),
            ("name", Value::Text("pg_class".into())),
            ("mood", Value::Text("happy".into())),
            ("_int4", Value::Text("{1,2,NULL}".into())),
            ("bytea", Value::Bytes(vec![])),
            ("bytea", Value::Bytes((0..=255).collect())),
            (
                "uuid",
                Value::Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
            ),
            ("json", Value::Json(r#"{"a": [1, 2.5, null]}"#.into())),
            ("jsonb", Value::Json(r#"{"a": "b"}"#.into())),
            ("date", Value::Date(0)),
            ("date", Value::Date(17_109)),
            ("date", Value::Date(-1)),
            ("date", Value::Date(-719_162)),   // 0001-01-01
            ("date", Value::Date(-719_163)),   // 0001-12-31 BC
            ("date", Value::Date(-2_440_588)), // 4714-11-24 BC
            ("date", Value::Date(i32::MAX - 1)),
            ("date", Value::Date(i32::MIN + 1)),
            ("date", Value::Date(i32::MAX)),
            ("date", Value::Date(i32::MIN)),
            ("time", Value::Time(0)),
            ("time", Value::Time(49_890_123_456)),
            ("time", Value::Time(49_890_100_000)),
            ("time", Value::Time(1)),
            ("time", Value::Time(DAY_US)), // 24:00:00
            ("timestamp", Value::Timestamp(0)),
            ("timestamp", Value::Timestamp(1_478_267_490_123_456)),
            ("timestamp", Value::Timestamp(-1)),
            ("timestamp", Value::Timestamp(-62_135_596_800_000_001)), // just before 0001 AD
            ("timestamp", Value::Timestamp(i64::MAX - 1)),
            ("timestamp", Value::Timestamp(i64::MIN + 1)),
            ("timestamp", Value::Timestamp(i64::MAX)),
            ("timestamp", Value::Timestamp(i64::MIN)),
            ("timestamptz", Value::TimestampTz(1_478_267_490_123_456)),
            ("timestamptz", Value::TimestampTz(-62_135_596_800_000_001)),
            ("timestamptz", Value::TimestampTz(i64::MAX - 1)),
            ("timestamptz", Value::TimestampTz(i64::MIN + 1)),
            ("timestamptz", Value::TimestampTz(i64::MAX)),
            ("timestamptz", Value::TimestampTz(i64::MIN)),
        ] {
            assert_round_trip(t, v);
        }
        for t in ["float4", "float8"] {
            let v = if t == "float4" {
                Value::Float32(f32::NAN)
            } else {
                Value::Float64(f64::NAN)
            };
            match round_trip(t, v) {
                Value::Float32(f) if f.is_nan() => {}
                Value::Float64(f) if f.is_nan() => {}
                other => panic!("{t} NaN read back as {other:?}"),
            }
        }
    }

    #[test]
    fn many_floats_round_trip() {
        // A deterministic spread of bit patterns, including subnormals and large exponents.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if f.is_finite() {
                assert_round_trip("float8", Value::Float64(f));
            }
            let g = f32::from_bits(x as u32);
            if g.is_finite() {
                assert_round_trip("float4", Value::Float32(g));
            }
        }
    }

    #[test]
    fn many_dates_and_timestamps_round_trip() {
        for d in (-3_000_000..3_000_000).step_by(997) {
            assert_round_trip("date", Value::Date(d));
        }
        for us in (-300_000_000_000_000_000i64..300_000_000_000_000_000).step_by(7_777_777_777_777)
        {
            assert_round_trip("timestamp", Value::Timestamp(us));
            assert_round_trip("timestamptz", Value::TimestampTz(us));
        }
    }

    #[test]
    fn postgres_text_forms() {
        let text = |v: Value| pg_text(&v).unwrap();
        assert_eq!(text(Value::Date(17_109)), "2016-11-04");
        assert_eq!(text(Value::Date(-719_163)), "0001-12-31 BC");
        assert_eq!(text(Value::Date(-2_440_588)), "4714-11-24 BC");
        assert_eq!(text(Value::Date(i32::MAX)), "infinity");
        assert_eq!(text(Value::Time(49_890_123_456)), "13:51:30.123456");
        assert_eq!(text(Value::Time(49_890_100_000)), "13:51:30.1");
        assert_eq!(text(Value::Time(DAY_US)), "24:00:00");
        assert_eq!(
            text(Value::Timestamp(1_478_267_490_123_456)),
            "2016-11-04 13:51:30.123456"
        );
        assert_eq!(
            text(Value::TimestampTz(1_478_267_490_123_456)),
            "2016-11-04 13:51:30.123456+00"
        );
        assert_eq!(
            text(Value::TimestampTz(-62_135_596_800_000_001)),
            "0001-12-31 23:59:59.999999+00 BC"
        );
        assert_eq!(text(Value::TimestampTz(i64::MIN)), "-infinity");
        assert_eq!(text(Value::Bytes(vec![1, 2, 0xab])), "\\x0102ab");
        assert_eq!(text(Value::Float64(f64::NEG_INFINITY)), "-Infinity");
        assert_eq!(value_to_json(&Value::Float32(0.1)).to_string(), "0.1");
        assert_eq!(value_to_json(&Value::Float64(12.5)).to_string(), "12.5");
        assert_eq!(
            value_to_json(&Value::UnchangedToast).to_string(),
            r#"{"unchanged_toast":true}"#
        );
    }

    #[test]
    fn civil_from_days_inverts_days_from_civil() {
        for (y, m, d) in [
            (1970, 1, 1),
            (2000, 2, 29),
            (1900, 3, 1),
            (0, 2, 29),
            (-4713, 11, 24),
            (1, 1, 1),
            (-1, 12, 31),
            (294_247, 1, 10),
        ] {
            assert_eq!(civil_from_days(days_from_civil(y, m, d)), (y, m, d));
        }
        for days in -800_000..800_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    const TABLE: &str = r#"{"table": {"schema": "public", "name": "customers", "replica_identity": "full", "columns": [{"name": "id", "type": "int4", "key": true, "nullable": false}, {"name": "email", "type": "text"}, {"name": "price", "type": "numeric", "typmod": 655366}, {"name": "status", "type": "mood", "enum_labels": ["happy", "sad"]}, {"name": "at", "type": "timestamptz", "default": "now()"}]}}"#;

    #[test]
    fn reads_tables_and_events() {
        let text = format!(
            "{TABLE}\n\n{}\n{}\n",
            r#"{"event": {"op": "u", "table": "public.customers", "before": null, "after": {"id": 1, "email": "ada@example.com", "price": "12.50", "status": "happy", "at": "2016-11-04 13:51:30.123456+02"}, "source": {"lsn": "0/16B3748", "last_commit_lsn": null, "tx_id": 771, "ts_us": 1714558530125012, "snapshot": "false"}, "topic": null, "headers": {"trace": "abc"}}}"#,
            r#"{"event": {"op": "d", "table": "public.customers", "before": {"id": 1, "email": {"unchanged_toast": true}}}}"#
        );
        let items = read_str("events.jsonl", &text).unwrap();
        assert_eq!(items.len(), 3);
        let Item::Table(t) = &items[0].item else {
            panic!("{:?}", items[0])
        };
        assert_eq!(t.qualified_name(), "public.customers");
        assert_eq!(t.replica_identity, ReplicaIdentity::Full);
        assert_eq!(t.columns[0].type_oid, 23);
        assert!(t.columns[0].is_key && !t.columns[0].nullable);
        assert!(!t.columns[1].is_key && t.columns[1].nullable);
        assert_eq!(t.columns[2].type_modifier, 655_366);
        assert_eq!(t.columns[3].type_oid, 0);
        assert_eq!(t.columns[3].type_name, "mood");
        assert_eq!(t.columns[3].enum_labels, ["happy", "sad"]);
        assert_eq!(t.columns[4].default.as_deref(), Some("now()"));
        let evs = events(items);
        assert_eq!(evs[0].line, 3);
        assert_eq!(evs[1].line, 4);
        let e = &evs[0].item;
        assert_eq!(e.op, Op::Update);
        assert_eq!(e.before, None);
        assert_eq!(
            e.after,
            Some(vec![
                Value::Int32(1),
                Value::Text("ada@example.com".into()),
                Value::Numeric("12.50".into()),
                Value::Text("happy".into()),
                Value::TimestampTz(1_478_260_290_123_456),
            ])
        );
        assert_eq!(e.source.lsn, Lsn(0x16B_3748));
        assert_eq!(e.source.tx_id, Some(771));
        assert_eq!(e.source.ts_us, 1_714_558_530_125_012);
        assert_eq!(e.source.snapshot, SnapshotMarker::False);
        assert_eq!(e.topic, None);
        assert_eq!(
            e.headers,
            vec![Header {
                key: "trace".into(),
                value: b"abc".to_vec()
            }]
        );
        let d = &evs[1].item;
        assert_eq!(d.source, default_source());
        assert_eq!(
            d.before,
            Some(vec![
                Value::Int32(1),
                Value::UnchangedToast,
                Value::Null,
                Value::Null,
                Value::Null
            ])
        );
    }

    #[test]
    fn writes_what_it_reads() {
        let table = r#"{"table":{"schema":"public","name":"customers","replica_identity":"full","columns":[{"name":"id","type":"int4","key":true,"nullable":false},{"name":"email","type":"text"},{"name":"price","type":"numeric","typmod":655366},{"name":"status","type":"mood","enum_labels":["happy","sad"]},{"name":"at","type":"timestamptz","default":"now()"}]}}"#;
        let event = r#"{"event":{"op":"u","table":"public.customers","before":{"id":1,"email":{"unchanged_toast":true},"price":null,"status":null,"at":null},"after":{"id":1,"email":"ada@example.com","price":"12.50","status":"happy","at":"2016-11-04 11:51:30.123456+00"},"source":{"lsn":"0/16B3748","last_commit_lsn":"0/16B3000","tx_id":771,"ts_us":1714558530125012,"snapshot":"last"},"topic":"elsewhere","headers":{"trace":"abc","b":"c"}}}"#;
        let plain = r#"{"event":{"op":"c","table":"public.customers","before":null,"after":{"id":2,"email":null,"price":null,"status":null,"at":null},"topic":null,"headers":{}}}"#;
        let record = r#"{"record":{"topic":"orders","key":"1","value":null,"headers":{"h":"v"}}}"#;
        let text = [table, event, plain, record].join("\n");
        let items = read_str("x.jsonl", &text).unwrap();
        let mut w = Writer::new();
        let mut lines = Vec::new();
        for l in &items {
            match &l.item {
                Item::Table(_) => {}
                Item::Event(e) => lines.extend(w.event_lines(e).unwrap()),
                Item::Record(r) => lines.push(record_line(r).unwrap()),
            }
        }
        assert_eq!(lines, [table, event, plain, record]);
        // And reading the written lines gives the same items.
        let again = read_str("y.jsonl", &lines.join("\n")).unwrap();
        assert_eq!(again, items);
    }

    #[test]
    fn the_writer_describes_changed_tables_again() {
        let t1 = Arc::new(
            table_schema(&TableDoc {
                schema: "s".into(),
                name: "t".into(),
                replica_identity: "default".into(),
                columns: vec![ColumnDoc {
                    name: "a".into(),
                    type_name: "int8".into(),
                    key: false,
                    nullable: true,
                    typmod: -1,
                    default: None,
                    enum_labels: vec![],
                }],
            })
            .unwrap(),
        );
        let mut t2 = (*t1).clone();
        t2.columns[0].name = "b".into();
        let t2 = Arc::new(t2);
        let ev = |t: &Arc<TableSchema>| ChangeEvent {
            op: Op::Create,
            table: t.clone(),
            before: None,
            after: Some(vec![Value::Int64(5)]),
            source: default_source(),
            topic: None,
            headers: vec![],
        };
        let mut w = Writer::new();
        w.assume(&t1);
        assert_eq!(w.event_lines(&ev(&t1)).unwrap().len(), 1);
        let lines = w.event_lines(&ev(&t2)).unwrap();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with(r#"{"table":"#), "{}", lines[0]);
        assert!(lines[1].contains(r#""after":{"b":5}"#), "{}", lines[1]);
        assert_eq!(w.event_lines(&ev(&t2)).unwrap().len(), 1);
        assert_eq!(w.event_lines(&ev(&t1)).unwrap().len(), 2);
    }

    #[test]
    fn domains_are_written_as_their_base_type() {
        let mut c = column("n", "int4");
        c.type_oid = 90_001;
        c.type_name = "positive".into();
        let t = TableSchema {
            oid: 5,
            schema: "s".into(),
            name: "t".into(),
            columns: vec![c],
            replica_identity: ReplicaIdentity::Default,
        };
        assert_eq!(table_doc(&t).columns[0].type_name, "int4");
    }

    fn read_err(lines: &[&str]) -> String {
        read_str("events.jsonl", &lines.join("\n"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_the_file_line_and_field() {
        let ev = |after: &str| {
            format!(r#"{{"event": {{"op": "c", "table": "public.customers", "after": {after}}}}}"#)
        };
        assert_eq!(
            read_err(&[
                TABLE,
                "",
                &ev(r#"{"id": 1}"#),
                &ev(r#"{"id": 2, "price": "abc"}"#)
            ]),
            r#"events.jsonl:4: after.price: invalid numeric value "abc": not a numeric value"#
        );
        assert_eq!(
            read_err(&[TABLE, &ev(r#"{"id": "1"}"#)]),
            r#"events.jsonl:2: after.id: expected an integer for int4, not "1""#
        );
        assert_eq!(
            read_err(&[TABLE, &ev(r#"{"id": 1, "nope": 2}"#)]),
            "events.jsonl:2: after.nope: public.customers has no column `nope`"
        );
        assert_eq!(
            read_err(&[TABLE, &ev(r#"{"id": 1, "at": "2016-02-30 00:00:00+00"}"#)]),
            "events.jsonl:2: after.at: invalid timestamptz value \"2016-02-30 00:00:00+00\": day 30 out of range for the month"
        );
        assert_eq!(
            read_err(&[TABLE, &ev(r#"{"id": 1, "price": 12.5}"#)]),
            "events.jsonl:2: after.price: expected a string (PostgreSQL's text form) for numeric, not 12.5"
        );
        assert_eq!(
            read_err(&[&ev(r#"{"id": 1}"#)]),
            "events.jsonl:1: table: `public.customers` was not described by an earlier table line"
        );
        assert_eq!(
            read_err(&[
                TABLE,
                r#"{"event": {"op": "x", "table": "public.customers"}}"#
            ]),
            r#"events.jsonl:2: op: "x" is not one of c, u, d, r, t"#
        );
        assert_eq!(
            read_err(&[
                TABLE,
                r#"{"event": {"op": "c", "table": "public.customers"}}"#
            ]),
            "events.jsonl:2: after: a `c` event needs an after row"
        );
        assert_eq!(
            read_err(&[
                TABLE,
                r#"{"event": {"op": "d", "table": "public.customers", "before": {"id": 1}, "source": {"lsn": "zz"}}}"#
            ]),
            r#"events.jsonl:2: source.lsn: "zz" is not an LSN (X/Y, two hex numbers)"#
        );
        let e = read_err(&[TABLE, r#"{"evnt": {}}"#]);
        assert!(
            e.starts_with("events.jsonl:2: not a walrelay-events/v1 line: unknown variant `evnt`"),
            "{e}"
        );
        let e = read_err(&[
            r#"{"table": {"schema": "s", "name": "t", "columns": [{"name": "a", "type": "int4"}, {"name": "a", "type": "text"}]}}"#,
        ]);
        assert_eq!(
            e,
            "events.jsonl:1: table.columns[1]: a second column named `a`"
        );
        let e = read_err(&[TABLE, &ev(r#"{"id": 1, "id": 2}"#)]);
        assert!(e.contains("duplicate key `id`"), "{e}");
        let e = read_err(&[TABLE, "{\"table\": {}, \"event\": {}}"]);
        assert!(
            e.starts_with("events.jsonl:2: not a walrelay-events/v1 line"),
            "{e}"
        );
    }

    #[test]
    fn a_later_table_line_replaces_the_description() {
        let text = [
            r#"{"table": {"schema": "s", "name": "t", "columns": [{"name": "a", "type": "int4"}]}}"#,
            r#"{"event": {"op": "c", "table": "s.t", "after": {"a": 1}}}"#,
            r#"{"table": {"schema": "s", "name": "t", "columns": [{"name": "a", "type": "text"}]}}"#,
            r#"{"event": {"op": "c", "table": "s.t", "after": {"a": "x"}}}"#,
        ]
        .join("\n");
        let evs = events(read_str("f", &text).unwrap());
        assert_eq!(evs[0].item.after, Some(vec![Value::Int32(1)]));
        assert_eq!(evs[1].item.after, Some(vec![Value::Text("x".into())]));
        assert_eq!(evs[1].line, 4);
    }

    #[test]
    fn snapshot_markers_and_booleans() {
        for (json, marker) in [
            (
                r#""first_in_data_collection""#,
                SnapshotMarker::FirstInDataCollection,
            ),
            ("true", SnapshotMarker::True),
            ("false", SnapshotMarker::False),
            (r#""last""#, SnapshotMarker::Last),
        ] {
            let doc: SourceDoc =
                serde_json::from_str(&format!(r#"{{"snapshot": {json}}}"#)).unwrap();
            assert_eq!(source_from_doc(Some(&doc)).unwrap().snapshot, marker);
        }
    }

    #[test]
    fn records_must_be_text() {
        let r = Record {
            topic: "t".into(),
            key: Some(vec![0xff]),
            value: None,
            headers: vec![],
        };
        assert_eq!(record_line(&r).unwrap_err(), "record.key: not UTF-8");
    }
}

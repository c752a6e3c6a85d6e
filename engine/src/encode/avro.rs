//! Confluent's `AvroConverter` over the Connect model (reference section 6): the Avro schema of a
//! Connect schema (as `AvroData.fromConnectSchema` builds it with the default settings:
//! `connect.meta.data=true`, `enhanced.avro.schema.support=false`), the Avro binary encoding of
//! Connect values, and [`AvroEncoder`], which frames each datum in Confluent's wire format with
//! the schema id the registry hands out for `<topic>-key` / `<topic>-value`.
//!
//! # The schema mapping
//!
//! * Struct → `record`; its Connect name splits at the last dot into namespace and name
//!   (`pg.public.products.Value` → namespace `pg.public.products`, name `Value`); an unnamed
//!   struct is `io.confluent.connect.avro.ConnectDefault` (then `ConnectDefault2`, …).
//! * A record met again within one schema is a reference by name, written as Avro's
//!   `Schema.toString` writes it: the short name when its namespace is the enclosing one
//!   (`["null","Value"]` for the envelope's `after`), else the full name.
//! * `int8`/`int16` → `{"type":"int","connect.type":"int16"}`; `int32` → `int`; `int64` → `long`.
//! * Every named/versioned/documented schema carries `connect.doc`, `connect.version`,
//!   `connect.parameters`, `connect.default`, `connect.name` (in that order), then `connect.type`.
//! * Only Connect's logical types become Avro logical types: `Decimal` → bytes with `scale`,
//!   `precision` (`connect.decimal.precision`, 64 when absent) and `logicalType: decimal`;
//!   `Date` → `date`, `Time` → `time-millis`, `Timestamp` → `timestamp-millis`. Debezium's
//!   `io.debezium.*` types stay primitives carrying `connect.name`.
//! * Optional without default → `["null",T]` with field default `null`; optional with default
//!   → `[T,"null"]` with that default (an optional struct is always `["null",T]`); required
//!   with default → `T` with the default. Bytes defaults are ISO-8859-1 strings.
//! * Arrays → `array`; maps with required string keys → `map`; other maps → an array of
//!   `io.confluent.connect.avro.MapEntry` records `{key, value}`.
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use super::connect::{Datum, Schema, Type};
use super::envelope::{EncodeError, RecordOptions, TableLayout};
use super::records::TransactionBlock;
use super::registry::{key_subject, value_subject, wire_header, RegistryError, SchemaRegistry};
use crate::event::ChangeEvent;

/// Confluent's namespace for the records it names itself.
const CONNECT_NAMESPACE: &str = "io.confluent.connect.avro";
const DEFAULT_RECORD_NAME: &str = "ConnectDefault";
const MAP_ENTRY_NAME: &str = "MapEntry";
const DECIMAL_PRECISION_PARAM: &str = "connect.decimal.precision";
const DECIMAL_PRECISION_DEFAULT: i64 = 64;

/// Why a schema or a value could not be written as Avro.
#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    #[error(
        "`{name}` ({what}) is not a valid Avro name: Avro names start with a letter or `_` and \
         contain only letters, digits and `_`. Rename it, or set format.avro.sanitize_names: \
         true to replace invalid characters by `_` (Confluent's \
         schema.name.adjustment.mode=avro)"
    )]
    InvalidName { name: String, what: String },

    #[error("cannot write a value as Avro: {0}")]
    Value(String),

    #[error(transparent)]
    Encode(#[from] EncodeError),

    #[error("{0}")]
    Registry(#[from] RegistryError),
}

impl AvroError {
    /// Whether retrying later may succeed (an unreachable or failing registry).
    pub fn is_transient(&self) -> bool {
        matches!(self, AvroError::Registry(e) if e.is_transient())
    }
}

/// An ordered JSON value: Avro schemas are written in Avro's own key order.
#[derive(Clone, Debug, PartialEq)]
enum J {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    fn s(s: impl Into<String>) -> J {
        J::Str(s.into())
    }

    fn write(&self, out: &mut String) {
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Int(i) => {
                let _ = write!(out, "{i}");
            }
            J::Float(f) => out.push_str(
                &serde_json::Number::from_f64(*f)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "null".into()),
            ),
            J::Str(s) => out.push_str(&serde_json::to_string(s).expect("string")),
            J::Arr(items) => {
                out.push('[');
                for (i, x) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    x.write(out);
                }
                out.push(']');
            }
            J::Obj(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).expect("string"));
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// The Avro schema of a Connect schema, as JSON.
pub fn avro_schema(schema: &Schema, sanitize_names: bool) -> Result<serde_json::Value, AvroError> {
    let text = avro_schema_string(schema, sanitize_names)?;
    Ok(serde_json::from_str(&text).expect("the schema writer writes JSON"))
}

/// The Avro schema of a Connect schema, as the compact text sent to the registry (Avro's
/// `Schema.toString` key order).
pub fn avro_schema_string(schema: &Schema, sanitize_names: bool) -> Result<String, AvroError> {
    let mut b = Builder {
        sanitize: sanitize_names,
        defined: HashSet::new(),
        unnamed: 0,
    };
    let j = b.schema(schema, None, false)?;
    let mut out = String::with_capacity(1024);
    j.write(&mut out);
    Ok(out)
}

struct Builder {
    sanitize: bool,
    /// Full names of the records written so far.
    defined: HashSet<String>,
    /// Unnamed records so far (`ConnectDefault`, `ConnectDefault2`, …).
    unnamed: usize,
}

/// Whether `s` is an Avro name: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_avro_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `s` with invalid characters replaced by `_` and a leading digit prefixed by `_`.
fn sanitize_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    for (i, c) in s.chars().enumerate() {
        if i == 0 && c.is_ascii_digit() {
            out.push('_');
        }
        out.push(if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        });
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

impl Builder {
    fn name(&self, name: &str, what: impl FnOnce() -> String) -> Result<String, AvroError> {
        if is_avro_name(name) {
            Ok(name.to_string())
        } else if self.sanitize {
            Ok(sanitize_name(name))
        } else {
            Err(AvroError::InvalidName {
                name: name.to_string(),
                what: what(),
            })
        }
    }

    /// `(namespace, name)` of a record's Connect name, checked or sanitized.
    fn record_name(&mut self, full: Option<&str>) -> Result<(Option<String>, String), AvroError> {
        let Some(full) = full else {
            self.unnamed += 1;
            let name = if self.unnamed == 1 {
                DEFAULT_RECORD_NAME.to_string()
            } else {
                format!("{DEFAULT_RECORD_NAME}{}", self.unnamed)
            };
            return Ok((Some(CONNECT_NAMESPACE.to_string()), name));
        };
        let (space, name) = match full.rfind('.') {
            Some(i) => (Some(&full[..i]), &full[i + 1..]),
            None => (None, full),
        };
        let what = || format!("the record name of `{full}`");
        let name = self.name(name, what)?;
        let space = match space {
            None => None,
            Some(space) => {
                let parts: Result<Vec<String>, AvroError> = space
                    .split('.')
                    .map(|p| self.name(p, || format!("a part of the namespace of `{full}`")))
                    .collect();
                Some(parts?.join("."))
            }
        };
        Ok((space, name))
    }

    /// `enclosing`: the namespace of the record being written (for short references).
    fn schema(
        &mut self,
        s: &Schema,
        enclosing: Option<&str>,
        ignore_optional: bool,
    ) -> Result<J, AvroError> {
        if let Type::Struct(_) = s.ty {
            if s.optional && !ignore_optional {
                return Ok(J::Arr(vec![J::s("null"), self.base(s, enclosing)?]));
            }
        }
        let base = self.base(s, enclosing)?;
        if !s.optional || ignore_optional || matches!(s.ty, Type::Struct(_)) {
            return Ok(base);
        }
        Ok(if s.default.is_some() {
            J::Arr(vec![base, J::s("null")])
        } else {
            J::Arr(vec![J::s("null"), base])
        })
    }

    /// The schema without its optional union, with its Connect properties.
    fn base(&mut self, s: &Schema, enclosing: Option<&str>) -> Result<J, AvroError> {
        let mut props: Vec<(String, J)> = Vec::new();
        let mut connect_type = None;
        let primitive = |t: &str| vec![("type".to_string(), J::s(t))];
        let is_decimal = s.name.as_deref() == Some("org.apache.kafka.connect.data.Decimal");
        let mut obj = match &s.ty {
            Type::Boolean => primitive("boolean"),
            Type::Int8 => {
                connect_type = Some("int8");
                primitive("int")
            }
            Type::Int16 => {
                connect_type = Some("int16");
                primitive("int")
            }
            Type::Int32 => primitive("int"),
            Type::Int64 => primitive("long"),
            Type::Float32 => primitive("float"),
            Type::Float64 => primitive("double"),
            Type::String => primitive("string"),
            Type::Bytes => {
                let mut o = primitive("bytes");
                if is_decimal {
                    o.push(("scale".into(), J::Int(decimal_scale(s))));
                    o.push(("precision".into(), J::Int(decimal_precision(s))));
                }
                o
            }
            Type::Array(items) => vec![
                ("type".into(), J::s("array")),
                ("items".into(), self.schema(items, enclosing, false)?),
            ],
            Type::Map(k, v) if k.ty == Type::String && !k.optional => vec![
                ("type".into(), J::s("map")),
                ("values".into(), self.schema(v, enclosing, false)?),
            ],
            Type::Map(k, v) => {
                let (space, name) = match &s.name {
                    None => (
                        Some(CONNECT_NAMESPACE.to_string()),
                        MAP_ENTRY_NAME.to_string(),
                    ),
                    Some(_) => self.record_name(s.name.as_deref())?,
                };
                let full = full_name(space.as_deref(), &name);
                let entry = if self.defined.contains(&full) {
                    J::s(reference(space.as_deref(), &name, enclosing))
                } else {
                    self.defined.insert(full);
                    let mut r = vec![
                        ("type".to_string(), J::s("record")),
                        ("name".to_string(), J::s(name)),
                    ];
                    push_namespace(&mut r, space.as_deref(), enclosing);
                    let fields = J::Arr(vec![
                        self.field("key", k, space.as_deref())?,
                        self.field("value", v, space.as_deref())?,
                    ]);
                    r.push(("fields".into(), fields));
                    if s.name.is_some() {
                        r.push(("connect.internal.type".into(), J::s(MAP_ENTRY_NAME)));
                    }
                    J::Obj(r)
                };
                vec![("type".into(), J::s("array")), ("items".into(), entry)]
            }
            Type::Struct(fields) => {
                let (space, name) = self.record_name(s.name.as_deref())?;
                let full = full_name(space.as_deref(), &name);
                if self.defined.contains(&full) {
                    return Ok(J::s(reference(space.as_deref(), &name, enclosing)));
                }
                self.defined.insert(full);
                let mut r = vec![
                    ("type".to_string(), J::s("record")),
                    ("name".to_string(), J::s(name)),
                ];
                push_namespace(&mut r, space.as_deref(), enclosing);
                let mut members = Vec::with_capacity(fields.len());
                for f in fields {
                    members.push(self.field(&f.name, &f.schema, space.as_deref())?);
                }
                r.push(("fields".into(), J::Arr(members)));
                r
            }
        };
        if let Some(doc) = &s.doc {
            props.push(("connect.doc".into(), J::s(doc.clone())));
        }
        if let Some(v) = s.version {
            props.push(("connect.version".into(), J::Int(i64::from(v))));
        }
        if !s.parameters.is_empty() {
            props.push((
                "connect.parameters".into(),
                J::Obj(
                    s.parameters
                        .iter()
                        .map(|(k, v)| (k.clone(), J::s(v.clone())))
                        .collect(),
                ),
            ));
        }
        if let Some(d) = &s.default {
            props.push(("connect.default".into(), default_json(s, d)?));
        }
        if let Some(name) = &s.name {
            let name = match (&s.ty, self.sanitize) {
                // The record's own name is adjusted; keep connect.name in step with it.
                (Type::Struct(_), true) => name
                    .split('.')
                    .map(sanitize_name)
                    .collect::<Vec<_>>()
                    .join("."),
                _ => name.clone(),
            };
            props.push(("connect.name".into(), J::s(name)));
        }
        if let Some(t) = connect_type {
            props.push(("connect.type".into(), J::s(t)));
        }
        match s.name.as_deref() {
            _ if is_decimal => props.push(("logicalType".into(), J::s("decimal"))),
            Some("org.apache.kafka.connect.data.Date") => {
                props.push(("logicalType".into(), J::s("date")))
            }
            Some("org.apache.kafka.connect.data.Time") => {
                props.push(("logicalType".into(), J::s("time-millis")))
            }
            Some("org.apache.kafka.connect.data.Timestamp") => {
                props.push(("logicalType".into(), J::s("timestamp-millis")))
            }
            _ => {}
        }
        if props.is_empty() && obj.len() == 1 {
            return Ok(obj.pop().expect("type").1);
        }
        obj.extend(props);
        Ok(J::Obj(obj))
    }

    fn field(&mut self, name: &str, s: &Schema, space: Option<&str>) -> Result<J, AvroError> {
        let avro_name = self.name(name, || format!("the field `{name}`"))?;
        let mut f = vec![
            ("name".to_string(), J::s(avro_name)),
            ("type".to_string(), self.schema(s, space, false)?),
        ];
        match &s.default {
            Some(d) => f.push(("default".into(), default_json(s, d)?)),
            None if s.optional => f.push(("default".into(), J::Null)),
            None => {}
        }
        Ok(J::Obj(f))
    }
}

fn full_name(space: Option<&str>, name: &str) -> String {
    match space {
        Some(s) if !s.is_empty() => format!("{s}.{name}"),
        _ => name.to_string(),
    }
}

/// How Avro writes a reference to an already defined name from within `enclosing`.
fn reference(space: Option<&str>, name: &str, enclosing: Option<&str>) -> String {
    if space.unwrap_or("") == enclosing.unwrap_or("") {
        name.to_string()
    } else {
        full_name(space, name)
    }
}

/// Avro writes `namespace` only where it differs from the enclosing one.
fn push_namespace(r: &mut Vec<(String, J)>, space: Option<&str>, enclosing: Option<&str>) {
    let space = space.unwrap_or("");
    if space != enclosing.unwrap_or("") {
        r.push(("namespace".into(), J::s(space)));
    }
}

fn decimal_scale(s: &Schema) -> i64 {
    param(s, "scale").and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn decimal_precision(s: &Schema) -> i64 {
    param(s, DECIMAL_PRECISION_PARAM)
        .and_then(|v| v.parse().ok())
        .unwrap_or(DECIMAL_PRECISION_DEFAULT)
}

fn param<'a>(s: &'a Schema, key: &str) -> Option<&'a str> {
    s.parameters
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A Connect default as Avro writes defaults in JSON.
fn default_json(s: &Schema, d: &Datum<'_>) -> Result<J, AvroError> {
    Ok(match (&s.ty, d) {
        (_, Datum::Null) => J::Null,
        (_, Datum::Boolean(b)) => J::Bool(*b),
        (_, Datum::Int8(x)) => J::Int(i64::from(*x)),
        (_, Datum::Int16(x)) => J::Int(i64::from(*x)),
        (_, Datum::Int32(x)) => J::Int(i64::from(*x)),
        (_, Datum::Int64(x)) => J::Int(*x),
        (_, Datum::Float32(x)) => J::Float(f64::from(*x)),
        (_, Datum::Float64(x)) => J::Float(*x),
        (_, Datum::String(x)) => J::s(x.to_string()),
        // ISO-8859-1: each byte is the code point of one character.
        (_, Datum::Bytes(b)) => J::Str(b.iter().map(|&c| char::from(c)).collect()),
        (Type::Array(items), Datum::Array(v)) => J::Arr(
            v.iter()
                .map(|x| default_json(items, x))
                .collect::<Result<_, _>>()?,
        ),
        (Type::Map(k, v), Datum::Map(entries)) if k.ty == Type::String && !k.optional => J::Obj(
            entries
                .iter()
                .map(|(key, val)| match key {
                    Datum::String(key) => Ok((key.to_string(), default_json(v, val)?)),
                    _ => Err(AvroError::Value("a map key is not a string".into())),
                })
                .collect::<Result<_, _>>()?,
        ),
        (Type::Map(k, v), Datum::Map(entries)) => J::Arr(
            entries
                .iter()
                .map(|(key, val)| Ok(J::Arr(vec![default_json(k, key)?, default_json(v, val)?])))
                .collect::<Result<_, AvroError>>()?,
        ),
        (Type::Struct(fields), Datum::Struct(values)) => J::Obj(
            fields
                .iter()
                .zip(values)
                .map(|(f, v)| Ok((f.name.clone(), default_json(&f.schema, v)?)))
                .collect::<Result<_, AvroError>>()?,
        ),
        (t, d) => {
            return Err(AvroError::Value(format!(
                "a default {d:?} does not fit the type {t:?}"
            )))
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Binary encoding
// ---------------------------------------------------------------------------------------------

fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

/// Appends the Avro binary encoding of `d` against the Avro schema of `s`
/// ([`avro_schema_string`]).
pub fn write_datum(out: &mut Vec<u8>, s: &Schema, d: &Datum<'_>) -> Result<(), AvroError> {
    if s.optional {
        // The union's order: ["null",T], or [T,"null"] for a non-struct with a default.
        let null_first = matches!(s.ty, Type::Struct(_)) || s.default.is_none();
        let (null_branch, value_branch) = if null_first { (0, 1) } else { (1, 0) };
        if matches!(d, Datum::Null) {
            put_long(out, null_branch);
            return Ok(());
        }
        put_long(out, value_branch);
    }
    write_plain(out, s, d)
}

fn mismatch(s: &Schema, d: &Datum<'_>) -> AvroError {
    let what = match d {
        Datum::Null => "null".to_string(),
        d => format!("{d:?}"),
    };
    AvroError::Value(format!(
        "the value {what} does not fit the schema {:?}{}",
        s.ty_name(),
        s.name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    ))
}

impl Schema {
    fn ty_name(&self) -> &'static str {
        match self.ty {
            Type::Boolean => "boolean",
            Type::Int8 => "int8",
            Type::Int16 => "int16",
            Type::Int32 => "int32",
            Type::Int64 => "int64",
            Type::Float32 => "float32",
            Type::Float64 => "float64",
            Type::Bytes => "bytes",
            Type::String => "string",
            Type::Array(_) => "array",
            Type::Map(..) => "map",
            Type::Struct(_) => "struct",
        }
    }
}

fn write_plain(out: &mut Vec<u8>, s: &Schema, d: &Datum<'_>) -> Result<(), AvroError> {
    match (&s.ty, d) {
        (Type::Boolean, Datum::Boolean(b)) => out.push(u8::from(*b)),
        (Type::Int8 | Type::Int16 | Type::Int32 | Type::Int64, d) => {
            let v = match d {
                Datum::Int8(x) => i64::from(*x),
                Datum::Int16(x) => i64::from(*x),
                Datum::Int32(x) => i64::from(*x),
                Datum::Int64(x) => *x,
                _ => return Err(mismatch(s, d)),
            };
            put_long(out, v);
        }
        (Type::Float32, Datum::Float32(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (Type::Float64, Datum::Float64(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (Type::Float64, Datum::Float32(x)) => out.extend_from_slice(&f64::from(*x).to_le_bytes()),
        (Type::String, Datum::String(x)) => put_bytes(out, x.as_bytes()),
        (Type::Bytes, Datum::Bytes(x)) => put_bytes(out, x),
        (Type::Array(items), Datum::Array(v)) => {
            if !v.is_empty() {
                put_long(out, v.len() as i64);
                for x in v {
                    write_datum(out, items, x)?;
                }
            }
            out.push(0);
        }
        (Type::Map(k, v), Datum::Map(entries)) => {
            let avro_map = k.ty == Type::String && !k.optional;
            if !entries.is_empty() {
                put_long(out, entries.len() as i64);
                for (key, val) in entries {
                    if avro_map {
                        write_plain(out, k, key)?;
                    } else {
                        write_datum(out, k, key)?;
                    }
                    write_datum(out, v, val)?;
                }
            }
            out.push(0);
        }
        (Type::Struct(fields), Datum::Struct(values)) if fields.len() == values.len() => {
            for (f, v) in fields.iter().zip(values) {
                write_datum(out, &f.schema, v).map_err(|e| match e {
                    AvroError::Value(m) => AvroError::Value(format!("field `{}`: {m}", f.name)),
                    e => e,
                })?;
            }
        }
        (_, d) => return Err(mismatch(s, d)),
    }
    Ok(())
}

/// The Avro binary encoding of one datum.
pub fn encode_datum(s: &Schema, d: &Datum<'_>) -> Result<Vec<u8>, AvroError> {
    let mut out = Vec::with_capacity(128);
    write_datum(&mut out, s, d)?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The encoder
// ---------------------------------------------------------------------------------------------

/// Avro settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvroOptions {
    pub record: RecordOptions,
    /// Confluent's `schema.name.adjustment.mode=avro`: replace characters invalid in Avro names.
    pub sanitize_names: bool,
}

/// A Connect schema with its Avro text, and the registry id per subject.
#[derive(Debug)]
struct Registered {
    schema: Schema,
    text: String,
    /// subject → id.
    ids: HashMap<String, u32>,
}

impl Registered {
    fn new(schema: Schema, sanitize: bool) -> Result<Self, AvroError> {
        let text = avro_schema_string(&schema, sanitize)?;
        Ok(Registered {
            schema,
            text,
            ids: HashMap::new(),
        })
    }
}

struct AvroTable {
    layout: TableLayout,
    key: Option<Registered>,
    value: Registered,
}

/// Writes records as Confluent-framed Avro. One per pipeline: caches per table and per schema.
pub struct AvroEncoder {
    opts: AvroOptions,
    registry: Arc<SchemaRegistry>,
    tables: HashMap<u32, AvroTable>,
    /// Schemas of the other record kinds, by Connect name.
    fixed: HashMap<String, Registered>,
}

impl AvroEncoder {
    pub fn new(opts: AvroOptions, registry: Arc<SchemaRegistry>) -> Self {
        AvroEncoder {
            opts,
            registry,
            tables: HashMap::new(),
            fixed: HashMap::new(),
        }
    }

    pub fn options(&self) -> &AvroOptions {
        &self.opts
    }

    fn table(&mut self, ev: &ChangeEvent) -> Result<&mut AvroTable, AvroError> {
        let table = &ev.table;
        let current = match self.tables.get_mut(&table.oid) {
            Some(t) if Arc::ptr_eq(&t.layout.table, table) => true,
            Some(t) if *t.layout.table == **table => {
                t.layout.table = Arc::clone(table);
                true
            }
            _ => false,
        };
        if !current {
            let mut layout = TableLayout::build(&self.opts.record, table).map_err(|mut e| {
                e.lsn = ev.source.lsn;
                e
            })?;
            let sanitize = self.opts.sanitize_names;
            let named = |e: AvroError| match e {
                AvroError::InvalidName { name, what } => AvroError::InvalidName {
                    name,
                    what: format!("{what}, table {}", table.qualified_name()),
                },
                e => e,
            };
            let key = match layout.key_schema.take() {
                Some(k) => Some(Registered::new(k, sanitize).map_err(named)?),
                None => None,
            };
            let value = Registered::new(layout.envelope_schema.clone(), sanitize).map_err(named)?;
            layout.key_schema = key.as_ref().map(|k| k.schema.clone());
            self.tables
                .insert(table.oid, AvroTable { layout, key, value });
        }
        Ok(self.tables.get_mut(&table.oid).expect("inserted"))
    }

    /// The record key on `topic`, or `None` (no key columns, truncates).
    pub async fn key(
        &mut self,
        topic: &str,
        ev: &ChangeEvent,
    ) -> Result<Option<Vec<u8>>, AvroError> {
        let registry = Arc::clone(&self.registry);
        let t = self.table(ev)?;
        let Some(datum) = t.layout.key(ev)? else {
            return Ok(None);
        };
        let Some(reg) = t.key.as_mut() else {
            return Ok(None);
        };
        frame(&registry, reg, &key_subject(topic), &datum)
            .await
            .map(Some)
    }

    /// The envelope on `topic`, with the transaction block `tx`.
    pub async fn value(
        &mut self,
        topic: &str,
        ev: &ChangeEvent,
        now_ns: i64,
        tx: Option<&TransactionBlock<'_>>,
    ) -> Result<Vec<u8>, AvroError> {
        let registry = Arc::clone(&self.registry);
        let opts = self.opts.record.clone();
        let t = self.table(ev)?;
        let mut datum = t.layout.envelope(&opts, ev, now_ns)?;
        if let (Some(tx), Datum::Struct(fields)) = (tx, &mut datum) {
            fields[3] = super::records::transaction_block_datum(tx);
        }
        frame(&registry, &mut t.value, &value_subject(topic), &datum).await
    }

    /// A record of a fixed layout (messages, transaction metadata, heartbeats) on `topic`:
    /// `(key, value)`.
    pub async fn record(
        &mut self,
        topic: &str,
        key: (&Schema, &Datum<'_>),
        value: (&Schema, &Datum<'_>),
    ) -> Result<(Vec<u8>, Vec<u8>), AvroError> {
        let k = self.fixed_record(&key_subject(topic), key.0, key.1).await?;
        let v = self
            .fixed_record(&value_subject(topic), value.0, value.1)
            .await?;
        Ok((k, v))
    }

    async fn fixed_record(
        &mut self,
        subject: &str,
        schema: &Schema,
        datum: &Datum<'_>,
    ) -> Result<Vec<u8>, AvroError> {
        let name = schema.name.clone().unwrap_or_default();
        let reg = match self.fixed.get(&name) {
            Some(r) if r.schema == *schema => self.fixed.get_mut(&name).expect("present"),
            _ => {
                let r = Registered::new(schema.clone(), self.opts.sanitize_names)?;
                self.fixed.insert(name.clone(), r);
                self.fixed.get_mut(&name).expect("inserted")
            }
        };
        frame(&self.registry, reg, subject, datum).await
    }
}

/// Confluent's wire format of `datum`: magic byte, schema id, Avro binary.
async fn frame(
    registry: &SchemaRegistry,
    reg: &mut Registered,
    subject: &str,
    datum: &Datum<'_>,
) -> Result<Vec<u8>, AvroError> {
    let id = match reg.ids.get(subject) {
        Some(id) => *id,
        None => {
            let id = registry.id_for(subject, &reg.text).await?;
            reg.ids.insert(subject.to_string(), id);
            id
        }
    };
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&wire_header(id));
    write_datum(&mut out, &reg.schema, datum)?;
    Ok(out)
}

#[cfg(test)]
mod tests;

//! Debezium's `ExtractNewRecordState` (`unwrap`: the new row state as a plain record) plus field
//! operations: drop, insert and cast columns. See README.md for the configuration.

mod values;

use std::collections::BTreeMap;

use walrelay_plugin_sdk::prelude::*;
use walrelay_plugin_sdk::serde_json::Value as Json;
use walrelay_plugin_sdk::SnapshotMarker;

use values::{cast, write_json, write_str, DecimalMode, Target};

/// What an unwrapped delete becomes (Debezium's `delete.handling.mode` /
/// `delete.tombstone.handling.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeleteHandling {
    /// Nothing for the delete itself.
    Drop,
    /// A tombstone (the key, a null value) in place of the delete.
    Tombstone,
    /// The old row with `__deleted: "true"`; every other record gets `__deleted: "false"`.
    Rewrite,
}

/// A metadata field `add_fields` can add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meta {
    Op,
    Schema,
    Table,
    Lsn,
    TxId,
    Snapshot,
    Sequence,
    Connector,
    TsMs,
    TsUs,
    TsNs,
}

/// A column pattern, split into its dotted parts (1 to 3, matched against the end of
/// `schema.table.column`).
type Pattern = Vec<String>;

/// An `insert_fields` entry: in the tables `tables` matches (the end of `schema.table`, empty
/// for every table), add `column` of type `target` holding `value`.
#[derive(Debug, Clone)]
struct Insert {
    tables: Pattern,
    column: String,
    target: Target,
    value: Value,
}

/// What to do to one input table.
#[derive(Debug, Default)]
struct Plan {
    drop: Vec<String>,
    cast: Vec<(String, Target)>,
    insert: Vec<usize>,
}

#[derive(Debug)]
struct Reshape {
    unwrap: bool,
    add_fields: Vec<(Meta, String)>,
    delete_handling: DeleteHandling,
    drop_tombstones: bool,
    decimals: DecimalMode,
    drop: Vec<Pattern>,
    insert: Vec<Insert>,
    cast: Vec<(Pattern, Target)>,
    plans: BTreeMap<u32, Plan>,
}

const KEYS: &[&str] = &[
    "unwrap",
    "add_fields",
    "delete_handling",
    "drop_tombstones",
    "decimal_handling",
    "drop_fields",
    "insert_fields",
    "cast",
];

/// Keys that only mean something with `unwrap: true`.
const UNWRAP_KEYS: &[&str] = &[
    "add_fields",
    "delete_handling",
    "drop_tombstones",
    "decimal_handling",
];

impl Plugin for Reshape {
    fn new(config: Config) -> Result<Self, String> {
        config.deny_unknown(KEYS)?;
        let unwrap = config.get_bool("unwrap")?.unwrap_or(false);
        if !unwrap {
            if let Some(key) = UNWRAP_KEYS
                .iter()
                .find(|k| matches!(config.get(k), Ok(Some(_))))
            {
                return Err(format!(
                    "`{key}` only applies to unwrapped records: set `unwrap: true`"
                ));
            }
        }
        let add_fields = config
            .get_strs("add_fields")?
            .unwrap_or_default()
            .into_iter()
            .map(parse_add_field)
            .collect::<Result<Vec<_>, _>>()?;
        let delete_handling = match config.get_str("delete_handling")?.unwrap_or("tombstone") {
            "drop" => DeleteHandling::Drop,
            "tombstone" => DeleteHandling::Tombstone,
            "rewrite" => DeleteHandling::Rewrite,
            other => {
                return Err(format!(
                    "`delete_handling` must be drop, tombstone or rewrite, not `{other}`"
                ))
            }
        };
        let drop_tombstones = config.get_bool("drop_tombstones")?;
        if delete_handling == DeleteHandling::Tombstone && drop_tombstones == Some(true) {
            return Err(
                "`delete_handling: tombstone` turns each delete into its tombstone: it cannot go \
                 with `drop_tombstones: true` (use `delete_handling: drop` to drop both)"
                    .into(),
            );
        }
        let decimals = match config.get_str("decimal_handling")?.unwrap_or("precise") {
            "precise" => DecimalMode::Precise,
            "string" => DecimalMode::String,
            "double" => DecimalMode::Double,
            other => {
                return Err(format!(
                    "`decimal_handling` must be precise, string or double, not `{other}`"
                ))
            }
        };
        let drop = config
            .get_strs("drop_fields")?
            .unwrap_or_default()
            .into_iter()
            .map(|p| pattern(p, "drop_fields"))
            .collect::<Result<Vec<_>, _>>()?;
        let insert = match config.get("insert_fields")? {
            None => Vec::new(),
            Some(Json::Object(map)) => map
                .iter()
                .map(|(k, v)| parse_insert(k, v))
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => {
                return Err("`insert_fields` must map `schema.table.column` to a value".into())
            }
        };
        let cast = match config.get("cast")? {
            None => Vec::new(),
            Some(Json::Object(map)) => map
                .iter()
                .map(|(k, v)| {
                    let target = v
                        .as_str()
                        .and_then(Target::parse)
                        .ok_or_else(|| format!("cast of `{k}`: unknown type {v} (expected text, bool, int2, int4, int8, float4, float8 or numeric)"))?;
                    Ok((pattern(k, "cast")?, target))
                })
                .collect::<Result<Vec<_>, String>>()?,
            Some(_) => return Err("`cast` must map column patterns to type names".into()),
        };
        if !unwrap && drop.is_empty() && insert.is_empty() && cast.is_empty() {
            return Err(
                "nothing to do: set `unwrap: true` or one of drop_fields, insert_fields, cast"
                    .into(),
            );
        }
        Ok(Reshape {
            unwrap,
            add_fields,
            delete_handling,
            drop_tombstones: drop_tombstones.unwrap_or(false),
            decimals,
            drop,
            insert,
            cast,
            plans: BTreeMap::new(),
        })
    }

    fn on_event(&mut self, mut event: Event) -> Result<Emit, String> {
        let id = event.table().id;
        if !self.plans.contains_key(&id) {
            let plan = self.plan(event.table());
            self.plans.insert(id, plan);
        }
        if !self.unwrap {
            self.apply(&mut event)?;
            return Ok(Emit::Keep(event));
        }
        // Unwrapped: the key is the input's (as Debezium's SMT leaves the key alone), the value
        // the reshaped row.
        if event.op() == Op::Truncate {
            return Ok(Emit::Drop);
        }
        let key = self.key(&event)?;
        self.apply(&mut event)?;
        let topic = event.topic().to_string();
        let record = |value: Option<String>| Record {
            topic: topic.clone(),
            key: key.clone(),
            value: value.map(String::into_bytes),
            headers: event.headers().to_vec(),
        };
        let tombstone = !self.drop_tombstones;
        let mut out = Vec::new();
        match (event.op(), self.delete_handling) {
            (Op::Delete, DeleteHandling::Drop) => {
                if tombstone {
                    out.push(record(None));
                }
            }
            (Op::Delete, DeleteHandling::Tombstone) => out.push(record(None)),
            (Op::Delete, DeleteHandling::Rewrite) => {
                out.push(record(Some(self.value(&event, Row::Before)?)));
                if tombstone {
                    out.push(record(None));
                }
            }
            _ => out.push(record(Some(self.value(&event, Row::After)?))),
        }
        Ok(Emit::Many(out.into_iter().map(Output::Record).collect()))
    }
}

impl Reshape {
    /// The operations on `table`'s columns. Outside unwrap, key columns are never dropped:
    /// the relay derives the Kafka key from them.
    fn plan(&self, table: &Table) -> Plan {
        let mut plan = Plan::default();
        let matches = |p: &Pattern, column: &str| {
            let name = [table.schema.as_str(), &table.name, column];
            name[3 - p.len()..].iter().zip(p).all(|(n, p)| glob(p, n))
        };
        for c in &table.columns {
            if !self.drop.iter().any(|p| matches(p, &c.name)) {
                if let Some((_, target)) = self.cast.iter().find(|(p, _)| matches(p, &c.name)) {
                    plan.cast.push((c.name.clone(), *target));
                }
                continue;
            }
            if c.is_key && !self.unwrap {
                host_log(
                    Level::Warn,
                    &format!(
                        "reshape: drop_fields matches key column {}.{}.{}, which stays (dropping it \
                         would change the Kafka key)",
                        table.schema, table.name, c.name
                    ),
                );
                continue;
            }
            plan.drop.push(c.name.clone());
        }
        let table_name = [table.schema.as_str(), &table.name];
        for (i, insert) in self.insert.iter().enumerate() {
            let p = &insert.tables;
            if table_name[2 - p.len()..]
                .iter()
                .zip(p)
                .all(|(n, p)| glob(p, n))
            {
                plan.insert.push(i);
            }
        }
        plan
    }

    /// Drops, casts and inserts columns as planned.
    fn apply(&self, event: &mut Event) -> Result<(), String> {
        let plan = &self.plans[&event.table().id];
        for name in &plan.drop {
            event.remove(name);
        }
        for (name, target) in &plan.cast {
            for row in [Row::Before, Row::After] {
                let Some(value) = event.get(row, name) else {
                    continue;
                };
                let value = cast(value, *target)
                    .map_err(|e| located(event, format!("cast of column {name}: {e}")))?;
                event.set(row, name, value);
            }
            if let Some(c) = event.column_mut(name) {
                target.apply_to(c);
            }
        }
        for &i in &plan.insert {
            let insert = &self.insert[i];
            if event.has_column(&insert.column) {
                // An insert overrides a column of that name.
                event.remove(&insert.column);
            }
            event.add_column(
                insert.target.column(&insert.column),
                insert.value.clone(),
                insert.value.clone(),
            );
        }
        Ok(())
    }

    /// The record key: the key columns of the row (the old row for a delete) as a JSON object,
    /// `None` when the table has no key.
    fn key(&self, event: &Event) -> Result<Option<Vec<u8>>, String> {
        let row = if event.op() == Op::Delete {
            Row::Before
        } else {
            Row::After
        };
        let Some(values) = event.row(row) else {
            return Ok(None);
        };
        let mut out = String::from("{");
        let mut any = false;
        for (column, value) in event.columns().zip(values) {
            if !column.is_key {
                continue;
            }
            if any {
                out.push(',');
            }
            any = true;
            write_str(&mut out, &column.name);
            out.push(':');
            write_json(&mut out, column, value, self.decimals).map_err(|e| located(event, e))?;
        }
        out.push('}');
        Ok(any.then(|| out.into_bytes()))
    }

    /// The unwrapped value: `row` as a JSON object, then the `add_fields`, then `__deleted`
    /// under `delete_handling: rewrite`.
    fn value(&self, event: &Event, row: Row) -> Result<String, String> {
        let mut out = String::from("{");
        let mut first = true;
        let mut field = |out: &mut String, name: &str| {
            if !first {
                out.push(',');
            }
            first = false;
            write_str(out, name);
            out.push(':');
        };
        if let Some(values) = event.row(row) {
            for (column, value) in event.columns().zip(values) {
                field(&mut out, &column.name);
                write_json(&mut out, column, value, self.decimals)
                    .map_err(|e| located(event, format!("column {}: {e}", column.name)))?;
            }
        }
        let source = event.source();
        for (meta, name) in &self.add_fields {
            field(&mut out, name);
            match meta {
                Meta::Op => write_str(&mut out, op_code(event.op())),
                Meta::Schema => write_str(&mut out, event.schema()),
                Meta::Table => write_str(&mut out, event.table_name()),
                Meta::Lsn => out.push_str(&source.lsn.to_string()),
                Meta::TxId => match source.tx_id {
                    Some(x) => out.push_str(&x.to_string()),
                    None => out.push_str("null"),
                },
                Meta::Snapshot => write_str(&mut out, snapshot(source.snapshot)),
                Meta::Sequence => {
                    let last = source
                        .last_commit_lsn
                        .map_or("null".to_string(), |l| format!("\"{l}\""));
                    write_str(&mut out, &format!("[{last},\"{}\"]", source.lsn));
                }
                Meta::Connector => write_str(&mut out, "postgresql"),
                Meta::TsMs => out.push_str(&source.ts_us.div_euclid(1000).to_string()),
                Meta::TsUs => out.push_str(&source.ts_us.to_string()),
                Meta::TsNs => out.push_str(&source.ts_us.saturating_mul(1000).to_string()),
            }
        }
        if self.delete_handling == DeleteHandling::Rewrite {
            field(&mut out, "__deleted");
            out.push_str(if event.op() == Op::Delete {
                "\"true\""
            } else {
                "\"false\""
            });
        }
        out.push('}');
        Ok(out)
    }
}

fn located(event: &Event, message: String) -> String {
    format!(
        "reshape: {}.{} at LSN {}: {message}",
        event.schema(),
        event.table_name(),
        event.source().lsn
    )
}

fn op_code(op: Op) -> &'static str {
    match op {
        Op::Create => "c",
        Op::Update => "u",
        Op::Delete => "d",
        Op::Read => "r",
        Op::Truncate => "t",
    }
}

fn snapshot(marker: SnapshotMarker) -> &'static str {
    match marker {
        SnapshotMarker::Streaming => "false",
        SnapshotMarker::InSnapshot => "true",
        SnapshotMarker::First => "first",
        SnapshotMarker::FirstInDataCollection => "first_in_data_collection",
        SnapshotMarker::LastInDataCollection => "last_in_data_collection",
        SnapshotMarker::Last => "last",
    }
}

/// An `add_fields` entry: `name` or `source.name`, optionally `:alias`. The field is named
/// `__<name>` (`.` becoming `_`) unless aliased, as Debezium names it.
fn parse_add_field(entry: &str) -> Result<(Meta, String), String> {
    let (path, alias) = match entry.split_once(':') {
        Some((p, a)) if !a.is_empty() => (p, Some(a)),
        Some(_) => return Err(format!("`add_fields` entry `{entry}` has an empty alias")),
        None => (entry, None),
    };
    let (in_source, name) = match path.strip_prefix("source.") {
        Some(name) => (true, name),
        None => (false, path),
    };
    let meta = match (in_source, name) {
        (false, "op") => Meta::Op,
        (_, "schema") => Meta::Schema,
        (_, "table") => Meta::Table,
        (_, "lsn") => Meta::Lsn,
        (_, "txId") => Meta::TxId,
        (_, "snapshot") => Meta::Snapshot,
        (_, "sequence") => Meta::Sequence,
        (_, "connector") => Meta::Connector,
        (true, "ts_ms") => Meta::TsMs,
        (true, "ts_us") => Meta::TsUs,
        (true, "ts_ns") => Meta::TsNs,
        (false, "ts_ms" | "ts_us" | "ts_ns") => {
            return Err(format!(
                "`add_fields`: `{name}` is the time the relay encodes the event, which plugins do \
                 not know; use `source.{name}` (the commit time)"
            ))
        }
        (_, "version" | "name" | "db" | "xmin") => {
            return Err(format!(
                "`add_fields`: `{path}` is not known to plugins (the relay writes it)"
            ))
        }
        _ => {
            return Err(format!(
                "`add_fields`: unknown field `{path}` (expected op, schema, table, lsn, txId, \
                 snapshot, sequence, connector, source.ts_ms, source.ts_us or source.ts_ns)"
            ))
        }
    };
    let alias = alias.map_or_else(|| format!("__{}", path.replace('.', "_")), str::to_string);
    Ok((meta, alias))
}

/// A `[schema.][table.]column` pattern.
fn pattern(p: &str, key: &str) -> Result<Pattern, String> {
    let parts: Vec<String> = p.split('.').map(str::to_string).collect();
    if parts.len() > 3 || parts.iter().any(String::is_empty) {
        return Err(format!(
            "{key}: `{p}` is not a column pattern ([schema.][table.]column)"
        ));
    }
    Ok(parts)
}

/// An `insert_fields` entry. The value is a JSON scalar (a string is text, an integer int8, a
/// number float8, true/false bool) or `{value: …, type: …}` for another type.
fn parse_insert(key: &str, value: &Json) -> Result<Insert, String> {
    let mut parts = pattern(key, "insert_fields")?;
    let column = parts.pop().unwrap_or_default();
    if column.contains('*') {
        return Err(format!(
            "insert_fields: `{key}`: the column name (last part) cannot hold `*`"
        ));
    }
    let err = |m: &str| format!("insert_fields: `{key}`: {m}");
    let (target, value) = match value {
        Json::String(s) => (Target::Text, Value::Text(s.clone())),
        Json::Bool(b) => (Target::Bool, Value::Boolean(*b)),
        Json::Number(n) => match n.as_i64() {
            Some(i) => (Target::Int8, Value::Int64(i)),
            None => (
                Target::Float8,
                Value::Float64(n.as_f64().unwrap_or(f64::NAN)),
            ),
        },
        Json::Null => (Target::Text, Value::Null),
        Json::Object(map) => {
            if let Some(k) = map
                .keys()
                .find(|k| !["value", "type"].contains(&k.as_str()))
            {
                return Err(err(&format!("unknown key `{k}` (expected value, type)")));
            }
            let target = map
                .get("type")
                .and_then(Json::as_str)
                .and_then(Target::parse)
                .ok_or_else(|| {
                    err("`type` must be text, bool, int2, int4, int8, float4, float8 or numeric")
                })?;
            let raw = match map.get("value") {
                None | Some(Json::Null) => Value::Null,
                Some(Json::String(s)) => Value::Text(s.clone()),
                Some(Json::Bool(b)) => Value::Boolean(*b),
                Some(Json::Number(n)) => match n.as_i64() {
                    Some(i) => Value::Int64(i),
                    None => Value::Float64(n.as_f64().unwrap_or(f64::NAN)),
                },
                Some(_) => return Err(err("`value` must be a string, number or boolean")),
            };
            (target, cast(&raw, target).map_err(|e| err(&e))?)
        }
        Json::Array(_) => return Err(err("the value must be a scalar or {value, type}")),
    };
    Ok(Insert {
        tables: parts,
        column,
        target,
        value,
    })
}

walrelay_plugin_sdk::export_plugin!(Reshape);

#[cfg(test)]
mod tests;

//! Runs a plugin natively, without WebAssembly, for `#[test]`s in plugin crates.
//!
//! [`Harness`] plays the relay: it builds the plugin from JSON configuration and sends it batches
//! in the wire form — [`Table`] descriptors and positional [`ChangeEvent`]s — and returns the
//! wire form of the output: the descriptors the plugin derived and the [`Output`]s.
//!
//! ```
//! use walrelay_plugin_sdk::prelude::*;
//! use walrelay_plugin_sdk::testing::{self, Harness};
//! # struct Upper;
//! # impl Plugin for Upper {
//! #     fn new(_: Config) -> Result<Self, String> { Ok(Upper) }
//! #     fn on_event(&mut self, mut e: Event) -> Result<Emit, String> {
//! #         e.rename("email", "mail");
//! #         Ok(e.into())
//! #     }
//! # }
//!
//! let users = testing::table(1, "public", "users", &[("id", "int4"), ("email", "text")]);
//! let insert = testing::insert(1, vec![Value::Int32(7), Value::Text("a@b.c".into())]);
//!
//! let mut harness = Harness::<Upper>::new("null").unwrap();
//! let (tables, outputs) = harness.run(vec![users], vec![insert]).unwrap();
//! assert_eq!(tables.len(), 1);
//! assert_eq!(tables[0].columns[1].name, "mail");
//! let event = testing::change(&outputs[0]).unwrap();
//! assert_eq!(event.table, tables[0].id);
//! harness.check(&outputs).unwrap();
//! ```

use crate::runtime::Runtime;
use crate::{oid, Column, Interest, Map, Op, Plugin, ReplicaIdentity, Table, Value};

/// The wire form of a change event: rows positional against the descriptor `table` names.
pub use crate::wit::ChangeEvent;
/// The wire form of one output item: a change event or a plain record.
pub use crate::wit::{EventPatch, Output};

/// A plugin instance driven as the relay drives it.
pub struct Harness<P> {
    runtime: Runtime<P>,
    interest: Interest,
    /// Every descriptor either side has sent, as the relay keeps them.
    known: Map<u32, Table>,
}

impl<P: Plugin> Harness<P> {
    /// Builds the plugin from its configuration's JSON text (`"null"` for none), as the relay's
    /// `init` does.
    pub fn new(config_json: &str) -> Result<Self, String> {
        let (runtime, interest) = Runtime::<P>::new(config_json)?;
        Ok(Harness {
            runtime,
            interest,
            known: Map::default(),
        })
    }

    /// What the plugin declared it wants to see. The harness sends it every event regardless,
    /// but as the relay does it withholds the values of columns the plugin did not declare
    /// (`Interest::only_columns`) and puts them back into its output.
    pub fn interest(&self) -> &Interest {
        &self.interest
    }

    /// Sends one batch: the descriptors not sent before, then the events. Returns the
    /// descriptors the plugin derived in this batch and its output.
    pub fn run(
        &mut self,
        tables: Vec<Table>,
        events: Vec<ChangeEvent>,
    ) -> Result<(Vec<Table>, Vec<Output>), String> {
        for table in &tables {
            self.known.insert(table.id, table.clone());
        }
        let inputs = events.clone();
        let events = events.into_iter().map(|e| self.withhold(e)).collect();
        let out = self.runtime.transform(tables, events)?;
        for table in &out.tables {
            self.known.insert(table.id, table.clone());
        }
        // Resolved against the inputs as they were: what was withheld comes back.
        let events = out
            .events
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                if let Output::Change(e) = &o {
                    let withheld = [&e.before, &e.after]
                        .into_iter()
                        .flatten()
                        .flatten()
                        .any(|v| matches!(v, Value::Withheld));
                    if withheld {
                        return Err(format!(
                            "output {i}: a whole change event carries a withheld value (the \
                             relay refuses it: return the event itself, or declare every column)"
                        ));
                    }
                }
                resolve(&inputs, o)
            })
            .collect::<Result<_, _>>()?;
        Ok((out.tables, events))
    }

    /// `event` as the relay sends it to this plugin: the values of undeclared columns withheld.
    fn withhold(&self, mut event: ChangeEvent) -> ChangeEvent {
        let (Some(columns), Some(table)) = (&self.interest.columns, self.known.get(&event.table))
        else {
            return event;
        };
        for row in [&mut event.before, &mut event.after].into_iter().flatten() {
            for (value, column) in row.iter_mut().zip(&table.columns) {
                if !columns.iter().any(|p| crate::glob(p, &column.name)) {
                    *value = Value::Withheld;
                }
            }
        }
        event
    }

    /// A descriptor as the relay knows it: sent to the plugin or derived by it.
    pub fn table(&self, id: u32) -> Option<&Table> {
        self.known.get(&id)
    }

    /// Checks output as the relay would: every change names a known descriptor and its rows
    /// have one value per column; `after` is there unless the op is delete or truncate.
    pub fn check(&self, outputs: &[Output]) -> Result<(), String> {
        for (i, output) in outputs.iter().enumerate() {
            let Output::Change(event) = output else {
                continue;
            };
            let table = self
                .known
                .get(&event.table)
                .ok_or_else(|| format!("output {i}: unknown table descriptor {}", event.table))?;
            for (name, row) in [("before", &event.before), ("after", &event.after)] {
                if let Some(values) = row {
                    if values.len() != table.columns.len() {
                        return Err(format!(
                            "output {i}: {name} has {} values, descriptor {} has {} columns",
                            values.len(),
                            table.id,
                            table.columns.len()
                        ));
                    }
                }
            }
            let needs_after = !matches!(event.op, Op::Delete | Op::Truncate);
            if needs_after && event.after.is_none() {
                return Err(format!("output {i}: {:?} without an after row", event.op));
            }
        }
        Ok(())
    }
}

/// A table descriptor with columns given as `(name, type name)`; known type names (`int4`,
/// `text`, `bool`, ...) get their oid, others oid 0. The first column is the key. Its events go
/// to `test.<schema>.<name>` by default (the prefix `walrelay plugin test` runs with).
pub fn table(id: u32, schema: &str, name: &str, columns: &[(&str, &str)]) -> Table {
    Table {
        topic: format!("test.{schema}.{name}"),
        id,
        schema: schema.to_string(),
        name: name.to_string(),
        columns: columns
            .iter()
            .enumerate()
            .map(|(i, (name, ty))| {
                let mut column = Column::new(*name, type_oid(ty), *ty);
                column.is_key = i == 0;
                column.nullable = i != 0;
                column
            })
            .collect(),
        replica_identity: ReplicaIdentity::Default,
    }
}

fn type_oid(name: &str) -> u32 {
    match name {
        "bool" => oid::BOOL,
        "bytea" => oid::BYTEA,
        "int8" => oid::INT8,
        "int2" => oid::INT2,
        "int4" => oid::INT4,
        "text" => oid::TEXT,
        "json" => oid::JSON,
        "float4" => oid::FLOAT4,
        "float8" => oid::FLOAT8,
        "bpchar" => oid::BPCHAR,
        "varchar" => oid::VARCHAR,
        "date" => oid::DATE,
        "time" => oid::TIME,
        "timestamp" => oid::TIMESTAMP,
        "timestamptz" => oid::TIMESTAMPTZ,
        "numeric" => oid::NUMERIC,
        "uuid" => oid::UUID,
        "jsonb" => oid::JSONB,
        _ => 0,
    }
}

/// A change event of `op` against descriptor `table`, to its table's default topic, with no
/// headers.
pub fn event(
    op: Op,
    table: u32,
    before: Option<Vec<Value>>,
    after: Option<Vec<Value>>,
) -> ChangeEvent {
    ChangeEvent {
        op,
        table,
        before,
        after,
        source: crate::event::lower_source_default(),
        topic: None,
        headers: None,
    }
}

/// An insert.
pub fn insert(table: u32, after: Vec<Value>) -> ChangeEvent {
    event(Op::Create, table, None, Some(after))
}

/// An update.
pub fn update(table: u32, before: Option<Vec<Value>>, after: Vec<Value>) -> ChangeEvent {
    event(Op::Update, table, before, Some(after))
}

/// A delete.
pub fn delete(table: u32, before: Vec<Value>) -> ChangeEvent {
    event(Op::Delete, table, Some(before), None)
}

/// The change event of an output item, if it is one.
pub fn change(output: &Output) -> Option<&ChangeEvent> {
    match output {
        Output::Change(event) => Some(event),
        Output::Plain(_) | Output::Keep(_) | Output::Patch(_) => None,
    }
}

/// An output as a whole event, as the relay reads it: `keep` and `patch` name an input event
/// of the batch and what changed in it; anything else is returned as it is.
pub fn resolve(inputs: &[ChangeEvent], output: Output) -> Result<Output, String> {
    let input = |at: u32| {
        inputs
            .get(at as usize)
            .cloned()
            .ok_or_else(|| format!("an output names input {at} of a batch of {}", inputs.len()))
    };
    Ok(match output {
        Output::Keep(at) => Output::Change(input(at)?),
        Output::Patch(p) => {
            let mut event = input(p.input)?;
            event.op = p.op;
            event.table = p.table;
            for (which, row, changes) in [
                ("before", &mut event.before, p.before),
                ("after", &mut event.after, p.after),
            ] {
                for (pos, value) in changes {
                    let slot = row
                        .as_mut()
                        .and_then(|r| r.get_mut(pos as usize))
                        .ok_or_else(|| {
                            format!(
                                "a patch of input {} sets {which}[{pos}], which it does not have",
                                p.input
                            )
                        })?;
                    *slot = value;
                }
            }
            if let Some(topic) = p.topic {
                event.topic = Some(topic);
            }
            if let Some(headers) = p.headers {
                event.headers = Some(headers).filter(|h| !h.is_empty());
            }
            Output::Change(event)
        }
        other => other,
    })
}

//! The per-instance state behind [`export_plugin!`](crate::export_plugin) and
//! [`Harness`](crate::testing::Harness): the plugin, the table descriptors it was sent and the
//! descriptors it derived.

use std::sync::Arc;

use crate::event::{Edits, ShapeCol, TableInfo};
use crate::wit::{self, BatchOutput, ChangeEvent, PluginInfo};
use crate::{Config, Event, Map, Output, Plugin, Table, Value};

/// A plugin instance with its descriptor bookkeeping.
#[doc(hidden)]
pub struct Runtime<P> {
    plugin: P,
    pub(crate) tables: Tables,
}

/// Input descriptors by id, and the descriptors derived from them.
///
/// Derived ids count down from `u32::MAX`, skipping ids the relay has sent; the relay is expected
/// to number its own descriptors from the bottom. A derived descriptor is sent once, the first
/// time an event of its shape goes out, and reused by every later event of that shape.
#[derive(Default)]
pub(crate) struct Tables {
    inputs: Map<u32, Arc<TableInfo>>,
    /// Input id -> the shapes derived from it, with their ids.
    derived: Map<u32, Vec<(Vec<ShapeCol>, u32)>>,
    /// Derived id -> the input id it derives from.
    derived_from: Map<u32, u32>,
    /// The next derived id to hand out, counting down.
    next_id: Option<u32>,
    /// Counts `transform` calls.
    pub(crate) call: u64,
}

impl Tables {
    pub(crate) fn add_input(&mut self, table: Table) {
        let id = table.id;
        // A relay id that collides with a derived one retires the derived one: events of its
        // shape get a fresh id (and descriptor) from now on.
        if let Some(input) = self.derived_from.remove(&id) {
            if let Some(shapes) = self.derived.get_mut(&input) {
                shapes.retain(|(_, d)| *d != id);
            }
        }
        // A descriptor re-sent under a known id invalidates what was derived from the old one.
        if let Some(shapes) = self.derived.remove(&id) {
            for (_, d) in shapes {
                self.derived_from.remove(&d);
            }
        }
        self.inputs.insert(id, Arc::new(TableInfo::new(table)));
    }

    /// The event at position `input` of a batch, for the plugin.
    pub(crate) fn lift(&self, raw: ChangeEvent, input: u32) -> Result<Event, String> {
        match self.inputs.get(&raw.table) {
            Some(table) => Ok(Event::new(raw, Arc::clone(table), input, self.call)),
            None => Err(format!(
                "event refers to table descriptor {} which was never sent",
                raw.table
            )),
        }
    }

    /// The wire form of `event`: `keep` when the plugin left it as it came, a `patch` of what it
    /// changed, or the whole event when its rows changed width. The descriptor its shape needs
    /// is appended to `new_tables` when it is the first event of that shape.
    pub(crate) fn lower(&mut self, event: Event, new_tables: &mut Vec<Table>) -> wit::Output {
        let Event {
            mut raw,
            table,
            shape,
            unchecked,
            input,
            call,
            edits,
        } = event;
        if unchecked {
            return wit::Output::Change(raw);
        }
        let id = self.shape_id(&table, shape, new_tables);
        // An event kept from an earlier call names no input of this one.
        if edits.whole || call != self.call {
            raw.table = id;
            return wit::Output::Change(raw);
        }
        if edits.is_empty() && id == table.table.id {
            return wit::Output::Keep(input);
        }
        let mut written = edits.written;
        written.sort_unstable();
        written.dedup();
        // After-row positions sort first (the flag is the top bit).
        let split = written.partition_point(|p| p & Edits::BEFORE == 0);
        let changes = |row: &mut Option<Vec<Value>>, positions: &[u32]| -> Vec<(u32, Value)> {
            let Some(values) = row else {
                return Vec::new();
            };
            positions
                .iter()
                .map(|p| p & !Edits::BEFORE)
                .filter_map(|p| {
                    let v = values.get_mut(p as usize)?;
                    // Still withheld: not written, so unchanged (the relay puts it back).
                    if matches!(v, Value::Withheld) {
                        return None;
                    }
                    Some((p, std::mem::replace(v, Value::Null)))
                })
                .collect()
        };
        wit::Output::Patch(wit::EventPatch {
            input,
            op: raw.op,
            table: id,
            before: changes(&mut raw.before, &written[split..]),
            after: changes(&mut raw.after, &written[..split]),
            topic: raw.topic.filter(|_| edits.topic),
            headers: edits.headers.then(|| raw.headers.unwrap_or_default()),
        })
    }

    /// The descriptor id of an event of `shape` made from an input of `table`.
    fn shape_id(
        &mut self,
        table: &TableInfo,
        shape: Option<Vec<ShapeCol>>,
        new_tables: &mut Vec<Table>,
    ) -> u32 {
        let Some(shape) = shape else {
            return table.table.id;
        };
        let input = &table.table.columns;
        let identity = shape.len() == input.len()
            && shape.iter().enumerate().all(|(i, c)| match c {
                ShapeCol::Input(j) => *j as usize == i,
                ShapeCol::Own(c) => **c == input[i],
            });
        if identity {
            return table.table.id;
        }
        let shapes = self.derived.entry(table.table.id).or_default();
        if let Some((_, id)) = shapes.iter().find(|(s, _)| *s == shape) {
            return *id;
        }
        let id = loop {
            let id = self.next_id.unwrap_or(u32::MAX);
            self.next_id = Some(id.wrapping_sub(1));
            if !self.inputs.contains_key(&id) && !self.derived_from.contains_key(&id) {
                break id;
            }
        };
        let columns = shape
            .iter()
            .map(|c| match c {
                ShapeCol::Input(i) => input[*i as usize].clone(),
                ShapeCol::Own(c) => (**c).clone(),
            })
            .collect();
        new_tables.push(Table {
            id,
            schema: table.table.schema.clone(),
            name: table.table.name.clone(),
            columns,
            replica_identity: table.table.replica_identity,
            // The relay derives a declared descriptor's default topic itself.
            topic: table.table.topic.clone(),
        });
        shapes.push((shape, id));
        self.derived_from.insert(id, table.table.id);
        id
    }
}

impl<P: Plugin> Runtime<P> {
    /// Builds the plugin from its configuration's JSON text.
    pub(crate) fn new(config_json: &str) -> Result<(Self, wit::Interest), String> {
        let config = Config::parse(config_json)?;
        let plugin = P::new(config)?;
        let interest = plugin.interest();
        Ok((
            Runtime {
                plugin,
                tables: Tables::default(),
            },
            interest,
        ))
    }

    /// One `transform` call.
    pub(crate) fn transform(
        &mut self,
        tables: Vec<Table>,
        events: Vec<ChangeEvent>,
    ) -> Result<BatchOutput, String> {
        self.tables.call += 1;
        for table in tables {
            self.tables.add_input(table);
        }
        let events = events
            .into_iter()
            .enumerate()
            .map(|(i, raw)| self.tables.lift(raw, i as u32))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = self.plugin.on_batch(events)?;
        let mut new_tables = Vec::new();
        let events = outputs
            .into_iter()
            .map(|output| match output {
                Output::Event(event) => self.tables.lower(event, &mut new_tables),
                Output::Record(record) => wit::Output::Plain(record),
            })
            .collect();
        Ok(BatchOutput {
            tables: new_tables,
            events,
        })
    }
}

/// `init` of the exported interface.
pub fn init<P: Plugin>(
    slot: &mut Option<Runtime<P>>,
    config: &str,
    name: &str,
    version: &str,
) -> Result<PluginInfo, String> {
    *slot = None;
    // A panic traps the instance; say why in the relay's log first (std would write it to
    // stderr, which the relay may not keep).
    #[cfg(target_arch = "wasm32")]
    std::panic::set_hook(Box::new(|info| {
        crate::host_log(crate::Level::Error, &format!("plugin panicked: {info}"))
    }));
    let (runtime, interest) = Runtime::<P>::new(config)?;
    *slot = Some(runtime);
    Ok(PluginInfo {
        name: name.to_string(),
        version: version.to_string(),
        interest,
    })
}

/// `transform` of the exported interface.
pub fn transform<P: Plugin>(
    slot: &mut Option<Runtime<P>>,
    tables: Vec<Table>,
    events: Vec<ChangeEvent>,
) -> Result<BatchOutput, String> {
    match slot {
        Some(runtime) => runtime.transform(tables, events),
        None => Err("transform called before init".to_string()),
    }
}

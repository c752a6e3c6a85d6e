//! The plugin chain: an ordered list of plugin instances, each with a scope, limits and a failure
//! policy, run on every segment of events between two source positions.
//!
//! # Semantics
//! * **Order.** Events outside a plugin's scope (or its declared interest) go around it, in place:
//!   a batch is cut into runs of in-scope and out-of-scope events and their order is kept.
//! * **Positions.** Checkpoints never enter the chain; the position confirmed to PostgreSQL does
//!   not depend on what plugins output. An output event must carry one of its inputs' sources
//!   unchanged: the source is read-only.
//! * **Failures.** When a batch fails (the plugin returned an error, trapped, ran out of time or
//!   memory, or returned malformed output), the host runs its events one by one on a fresh
//!   instance if the old one is poisoned, so that only the culprit meets the plugin's policy:
//!   `fail` stops the relay without confirming the culprit's position; `skip` drops it and
//!   counts it; `dead-letter` sends it, as the plugin received it, to the dead-letter topic with
//!   the error in its headers.
//! * **Descriptors.** Each table schema gets an id the first time a stage sees it; an instance is
//!   sent a descriptor once (again after it was re-instantiated). Plugins describe reshaped tables
//!   in their output; the host keeps those per stage.
//! * **Form.** An event is moved into WIT form when the first stage in scope takes it and stays
//!   in that form from stage to stage; it is moved back into the relay's model once, when it
//!   leaves the chain. Nothing is copied on the way: a stage costs the component-boundary copies
//!   (lowering the batch into the guest, lifting its output) and the checks of its output.
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use rustc_hash::{FxHashMap, FxHashSet};

use super::runtime::{
    event_size, value_size, wit, CallError, Grants, Limits, LoadedPlugin, PluginInstance,
    PluginRuntime,
};
use crate::event::{
    ChangeEvent, Column, Header, Lsn, Op, Output, Record, ReplicaIdentity, SnapshotMarker, Source,
    TableSchema, Value,
};

/// What happens to an event a plugin fails on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnError {
    Fail,
    Skip,
    DeadLetter { topic: String },
}

/// Which events a plugin sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// `schema.table`; `None` means all.
    pub tables: Option<HashSet<String>>,
    /// `None` means all.
    pub ops: Option<HashSet<Op>>,
}

impl Scope {
    /// The narrower of the operator's scope and the plugin's declared interest.
    fn with_interest(&self, interest: &wit::Interest) -> Scope {
        let tables = match (&self.tables, &interest.tables) {
            (Some(a), Some(b)) => Some(a.iter().filter(|t| b.contains(t)).cloned().collect()),
            (Some(a), None) => Some(a.clone()),
            (None, Some(b)) => Some(b.iter().cloned().collect()),
            (None, None) => None,
        };
        let declared: Option<HashSet<Op>> = interest
            .ops
            .as_ref()
            .map(|ops| ops.iter().map(|o| op_from_wit(*o)).collect());
        let ops = match (&self.ops, declared) {
            (Some(a), Some(b)) => Some(a.intersection(&b).copied().collect()),
            (Some(a), None) => Some(a.clone()),
            (None, b) => b,
        };
        Scope { tables, ops }
    }
}

/// One plugin of the chain, as configured and admitted.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    pub name: String,
    pub component: PathBuf,
    /// The plugin's `config` as JSON text.
    pub config_json: String,
    /// Where the plugin's entry is, for error messages (`walrelay.yaml: plugins[0]`).
    pub origin: String,
    pub limits: Limits,
    pub on_error: OnError,
    pub scope: Scope,
    pub grants: Grants,
}

/// Counters of a stage, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageCounters {
    pub events_in: u64,
    pub events_out: u64,
    pub skipped: u64,
    pub dead_lettered: u64,
    pub instantiations: u64,
}

struct Stage {
    spec: PluginSpec,
    loaded: LoadedPlugin,
    instance: Option<PluginInstance>,
    version: String,
    scope: Scope,
    /// Descriptor ids the current instance has been sent.
    sent: FxHashSet<u32>,
    /// Descriptors this plugin declared for its output, by its ids.
    declared: FxHashMap<u32, Arc<TableSchema>>,
    /// Whether the scope's tables take a registered descriptor, by its id.
    admitted: FxHashMap<u32, bool>,
    /// The columns whose values the plugin wants (its interest; `None`: all), by name pattern.
    columns: Option<Vec<String>>,
    /// Which positions of a registered descriptor's rows are sent (`None`: all), by its id.
    sent_values: FxHashMap<u32, Option<Arc<[u32]>>>,
    /// The rows withheld from the events of the current call.
    held: Held,
    counters: StageCounters,
}

/// Host-side descriptor ids: one per distinct table schema (by identity of its `Arc`).
struct Registry {
    prefix: String,
    by_ptr: FxHashMap<usize, u32>,
    by_id: FxHashMap<u32, Arc<TableSchema>>,
    next: u32,
    /// The last lookup: a batch's events are mostly of one table.
    last: Option<(usize, u32)>,
}

impl Registry {
    fn new(prefix: &str) -> Registry {
        Registry {
            prefix: prefix.to_string(),
            by_ptr: FxHashMap::default(),
            by_id: FxHashMap::default(),
            next: 0,
            last: None,
        }
    }

    fn id(&mut self, t: &Arc<TableSchema>) -> u32 {
        let key = Arc::as_ptr(t) as usize;
        if let Some((k, id)) = self.last {
            if k == key {
                return id;
            }
        }
        let id = match self.by_ptr.get(&key) {
            Some(id) => *id,
            None => {
                self.next += 1;
                let id = self.next;
                self.by_ptr.insert(key, id);
                // Holding the Arc keeps the pointer from being reused by another schema.
                self.by_id.insert(id, t.clone());
                id
            }
        };
        self.last = Some((key, id));
        id
    }

    fn table(&self, id: u32) -> Option<&Arc<TableSchema>> {
        self.by_id.get(&id)
    }
}

/// The chain, ready to run. Create it once per run; plugins are instantiated (and their
/// configuration checked) here.
pub struct PluginChain {
    _runtime: PluginRuntime,
    stages: Vec<Stage>,
    registry: Registry,
    topic_prefix: String,
}

impl PluginChain {
    pub fn new(specs: Vec<PluginSpec>, topic_prefix: &str) -> anyhow::Result<PluginChain> {
        let runtime = PluginRuntime::new()?;
        let mut stages = Vec::with_capacity(specs.len());
        for spec in specs {
            let loaded = runtime
                .load(&spec.name, &spec.component)
                .with_context(|| spec.origin.clone())?;
            let (instance, info) = loaded
                .instantiate(&spec.config_json, spec.limits, &spec.grants)
                .with_context(|| spec.origin.clone())?;
            tracing::info!(plugin = %spec.name, version = %info.version, reports_name = %info.name, "plugin loaded");
            let scope = spec.scope.with_interest(&info.interest);
            stages.push(Stage {
                version: info.version,
                scope,
                loaded,
                instance: Some(instance),
                sent: FxHashSet::default(),
                declared: FxHashMap::default(),
                admitted: FxHashMap::default(),
                columns: info.interest.columns.clone(),
                sent_values: FxHashMap::default(),
                held: Held::default(),
                counters: StageCounters {
                    instantiations: 1,
                    ..Default::default()
                },
                spec,
            });
        }
        Ok(PluginChain {
            _runtime: runtime,
            stages,
            registry: Registry::new(topic_prefix),
            topic_prefix: topic_prefix.to_string(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Counters per plugin, in chain order.
    pub fn counters(&self) -> Vec<(String, StageCounters)> {
        self.stages
            .iter()
            .map(|s| (s.spec.name.clone(), s.counters))
            .collect()
    }

    /// Runs the events of one segment through every stage.
    pub fn run(&mut self, events: Vec<ChangeEvent>) -> anyhow::Result<Vec<Output>> {
        let mut current: Vec<InFlight> = events.into_iter().map(InFlight::Model).collect();
        for stage in &mut self.stages {
            current = stage.run(current, &mut self.registry, &self.topic_prefix)?;
        }
        Ok(current
            .into_iter()
            .map(|item| match item {
                InFlight::Model(ev) => Output::Change(ev),
                InFlight::Wit(w) => Output::Change(w.into_model(&self.topic_prefix)),
                InFlight::Record(r) => Output::Record(r),
            })
            .collect())
    }
}

impl crate::pipeline::Stage for PluginChain {
    fn process(&mut self, events: Vec<ChangeEvent>) -> anyhow::Result<Vec<Output>> {
        self.run(events)
    }
}

impl Stage {
    /// Whether the stage takes an event of `op` on `table` (registered under `id`).
    fn admits(&mut self, op: Op, id: u32, table: &TableSchema) -> bool {
        if !self.scope.ops.as_ref().is_none_or(|ops| ops.contains(&op)) {
            return false;
        }
        match &self.scope.tables {
            None => true,
            Some(tables) => *self
                .admitted
                .entry(id)
                .or_insert_with(|| tables.contains(&table.qualified_name())),
        }
    }

    fn run(
        &mut self,
        inputs: Vec<InFlight>,
        registry: &mut Registry,
        prefix: &str,
    ) -> anyhow::Result<Vec<InFlight>> {
        let mut out = Vec::with_capacity(inputs.len());
        let mut batch = Batch {
            events: Vec::with_capacity(inputs.len()),
            inputs: Vec::with_capacity(inputs.len()),
        };
        for item in inputs {
            let taken = match item {
                InFlight::Model(ev) => {
                    let id = registry.id(&ev.table);
                    if self.admits(ev.op, id, &ev.table) {
                        batch.push(WitEvent::from_model(ev, id));
                        None
                    } else {
                        Some(InFlight::Model(ev))
                    }
                }
                InFlight::Wit(mut w) => {
                    let id = registry.id(&w.table);
                    if self.admits(op_from_wit(w.event.op), id, &w.table) {
                        w.event.table = id;
                        batch.push(w);
                        None
                    } else {
                        Some(InFlight::Wit(w))
                    }
                }
                record @ InFlight::Record(_) => Some(record),
            };
            if let Some(other) = taken {
                // Out of scope: it keeps its place after the run of events before it.
                if !batch.events.is_empty() {
                    self.run_batch(std::mem::take(&mut batch), registry, prefix, &mut out)?;
                }
                out.push(other);
            }
        }
        if !batch.events.is_empty() {
            self.run_batch(batch, registry, prefix, &mut out)?;
        }
        Ok(out)
    }

    fn run_batch(
        &mut self,
        mut batch: Batch,
        registry: &Registry,
        prefix: &str,
        out: &mut Vec<InFlight>,
    ) -> anyhow::Result<()> {
        self.counters.events_in += batch.events.len() as u64;
        let before = out.len();
        match self.call(&mut batch.events, &batch.inputs, registry) {
            Ok(outputs) => out.extend(outputs),
            Err(err) => {
                // The events are intact: a call moves inputs out only once its output is valid.
                if batch.events.len() > 1 {
                    tracing::debug!(plugin = %self.spec.name, error = %err, events = batch.events.len(), "batch failed; running its events one by one");
                }
                let single = batch.events.len() == 1;
                for (event, input) in batch.events.into_iter().zip(batch.inputs) {
                    let mut one = vec![event];
                    let result = if single {
                        Err(err.clone())
                    } else {
                        self.call(&mut one, std::slice::from_ref(&input), registry)
                    };
                    match (result, one.pop()) {
                        (Ok(outputs), _) => out.extend(outputs),
                        (Err(err), Some(event)) => {
                            let (table, source) = input;
                            let ev = WitEvent {
                                event,
                                table,
                                source,
                            };
                            self.apply_policy(ev.into_model(prefix), err, prefix, out)?
                        }
                        (Err(err), None) => {
                            return Err(anyhow!("plugin `{}`: {err}", self.spec.name))
                        }
                    }
                }
            }
        }
        self.counters.events_out += (out.len() - before) as u64;
        Ok(())
    }

    /// `ev` is the event as this plugin received it.
    fn apply_policy(
        &mut self,
        ev: ChangeEvent,
        err: CallError,
        prefix: &str,
        out: &mut Vec<InFlight>,
    ) -> anyhow::Result<()> {
        let what = format!(
            "plugin `{}` {} {err} on the `{}` event of {} at LSN {}",
            self.spec.name,
            self.version,
            ev.op.code(),
            ev.table.qualified_name(),
            ev.source.lsn
        );
        match &self.spec.on_error {
            OnError::Fail => Err(anyhow!("{what} (on_error: fail stops the relay; this position is not confirmed, so the event is read again on restart)")),
            OnError::Skip => {
                self.counters.skipped += 1;
                tracing::warn!(plugin = %self.spec.name, skipped = self.counters.skipped, "{what}; skipped (on_error: skip)");
                Ok(())
            }
            OnError::DeadLetter { topic } => {
                self.counters.dead_lettered += 1;
                tracing::warn!(plugin = %self.spec.name, %topic, "{what}; sent to the dead-letter topic");
                let mut ev = ev;
                let original_topic = ev.topic.take().unwrap_or_else(|| ev.table.default_topic(prefix));
                ev.headers.extend([
                    Header { key: "walrelay.error".into(), value: err.to_string().into_bytes() },
                    Header { key: "walrelay.plugin".into(), value: self.spec.name.clone().into_bytes() },
                    Header { key: "walrelay.plugin.version".into(), value: self.version.clone().into_bytes() },
                    Header { key: "walrelay.topic".into(), value: original_topic.into_bytes() },
                ]);
                ev.topic = Some(topic.clone());
                out.push(InFlight::Model(ev));
                Ok(())
            }
        }
    }

    /// One `transform` call and the validation of its output. `inputs[i]` is the descriptor and
    /// source of `events[i]`. On success the inputs that outputs kept or patched are moved out
    /// of `events`; on failure `events` is as it was.
    fn call(
        &mut self,
        events: &mut [wit::ChangeEvent],
        inputs: &[(Arc<TableSchema>, Source)],
        registry: &Registry,
    ) -> Result<Vec<InFlight>, CallError> {
        if self.instance.is_none() {
            let (instance, _info) = self
                .loaded
                .instantiate(&self.spec.config_json, self.spec.limits, &self.spec.grants)
                .map_err(|e| CallError::Trap(format!("re-instantiation failed: {e}")))?;
            self.instance = Some(instance);
            self.sent.clear();
            self.counters.instantiations += 1;
        }
        let mut tables = Vec::new();
        for (ev, (table, _)) in events.iter().zip(inputs) {
            if self.sent.insert(ev.table) {
                // An input sent under an id the plugin once declared replaces that descriptor.
                self.declared.remove(&ev.table);
                tables.push(table_to_wit(ev.table, table, &registry.prefix));
            }
        }
        self.withhold(events, inputs);
        let mut held = std::mem::take(&mut self.held);
        let result = self.call_withheld(events, inputs, registry, tables, &mut held);
        if result.is_err() {
            held.put_back(events);
        }
        self.held = held;
        result
    }

    /// Replaces the rows of events with rows of `withheld` carrying only the values of the
    /// columns the plugin asked for, keeping the rows aside in `held`.
    fn withhold(&mut self, events: &mut [wit::ChangeEvent], inputs: &[(Arc<TableSchema>, Source)]) {
        let held = &mut self.held;
        held.rows.clear();
        let Some(columns) = &self.columns else {
            return;
        };
        for (ev, (table, _)) in events.iter_mut().zip(inputs) {
            let sent = self
                .sent_values
                .entry(ev.table)
                .or_insert_with(|| sent_positions(columns, table));
            let Some(sent) = sent else {
                held.rows.push(HeldRows::default());
                continue;
            };
            let mut rows = HeldRows {
                sent: Some(sent.clone()),
                before: None,
                after: None,
            };
            for (row, slot) in [
                (&mut ev.before, &mut rows.before),
                (&mut ev.after, &mut rows.after),
            ] {
                if let Some(values) = row {
                    // Pooled rows are all `withheld` (see `Held::restore`).
                    let mut withheld = held.pool.pop().unwrap_or_default();
                    if withheld.len() != values.len() {
                        withheld.clear();
                        withheld.resize(values.len(), wit::Value::Withheld);
                    }
                    for &pos in sent.iter() {
                        if let (Some(w), Some(v)) =
                            (withheld.get_mut(pos as usize), values.get_mut(pos as usize))
                        {
                            std::mem::swap(w, v);
                        }
                    }
                    *slot = Some(std::mem::replace(values, withheld));
                }
            }
            held.rows.push(rows);
        }
    }

    /// The call itself, with the events' withheld values in `held`; on an error the caller
    /// puts them back.
    fn call_withheld(
        &mut self,
        events: &mut [wit::ChangeEvent],
        inputs: &[(Arc<TableSchema>, Source)],
        registry: &Registry,
        tables: Vec<wit::Table>,
        held: &mut Held,
    ) -> Result<Vec<InFlight>, CallError> {
        let instance = self
            .instance
            .as_mut()
            .ok_or_else(|| CallError::Trap("no instance".into()))?;
        let output = match instance.transform(&tables, events) {
            Ok(o) => o,
            Err(e) => {
                // Output refused for its size or fan-out was not read, the descriptors it
                // declared included: start the plugin afresh so that it declares them again.
                if e.poisons_instance() || matches!(e, CallError::Malformed(_)) {
                    self.instance = None;
                }
                return Err(e);
            }
        };
        for t in output.tables {
            let schema = table_from_wit(&t).map_err(CallError::Malformed)?;
            self.declared.insert(t.id, Arc::new(schema));
        }
        // First check every output (nothing is moved yet, so a failed batch can be run again
        // event by event), resolving descriptors and sources and counting uses of each input.
        let mut uses = vec![0u32; events.len()];
        let mut resolved = Vec::with_capacity(output.events.len());
        for (i, o) in output.events.iter().enumerate() {
            let r = match o {
                wit::Output::Plain(_) => None,
                wit::Output::Change(e) => {
                    let table = self.descriptor(e.table, registry)?;
                    WitEvent::check(
                        e.op,
                        e.before.as_ref().map(Vec::len),
                        e.after.as_ref().map(Vec::len),
                        &table,
                    )?;
                    // Usually output i comes from input i (one to one): check that first, and
                    // scan only when a plugin filtered or fanned out.
                    let (_, source) = inputs
                        .get(i)
                        .filter(|(_, source)| same_source(source, &e.source))
                        .or_else(|| inputs.iter().find(|(_, source)| same_source(source, &e.source)))
                        .ok_or_else(|| {
                            CallError::Malformed(format!(
                                "an event's source (lsn {}) is not one of its inputs': the source position is read-only",
                                Lsn(e.source.lsn)
                            ))
                        })?;
                    // A whole event names no input (sources may repeat, snapshot rows share
                    // one), so nothing withheld can be put back into it: it must carry values.
                    for (which, row) in [(Which::Before, &e.before), (Which::After, &e.after)] {
                        if let Some(pos) = row
                            .iter()
                            .flatten()
                            .position(|v| matches!(v, wit::Value::Withheld))
                        {
                            return Err(CallError::Malformed(format!(
                                "a whole `change` event carries a `withheld` {} value at position {pos}; answer `keep` or `patch` for an input event, or declare interest in every column",
                                which.name()
                            )));
                        }
                    }
                    Some((table, source.clone()))
                }
                wit::Output::Keep(at) => {
                    Some(self.check_input_output(*at, None, events, inputs, registry, &mut uses)?)
                }
                wit::Output::Patch(p) => Some(self.check_input_output(
                    p.input,
                    Some(p),
                    events,
                    inputs,
                    registry,
                    &mut uses,
                )?),
            };
            resolved.push(r);
        }
        // Every use of an input but the last is a copy: copies count toward the output limit.
        let copies: u64 = uses
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 1)
            .map(|(i, n)| u64::from(n - 1) * (event_size(&events[i]) + held.size(i)))
            .sum();
        let limit = self.spec.limits.max_output_bytes;
        if copies > limit {
            return Err(CallError::Malformed(format!(
                "{copies} bytes of copies of input events kept or patched more than once, above max_output_bytes {limit}"
            )));
        }
        // Then build: an input (and what was withheld from it) used once is moved, one used
        // more often is copied until its last use.
        let mut taken = |at: usize, uses: &mut [u32]| {
            uses[at] -= 1;
            let last = uses[at] == 0;
            let mut event = if last {
                std::mem::replace(&mut events[at], empty_event())
            } else {
                events[at].clone()
            };
            held.restore(at, &mut event, last);
            event
        };
        let mut converted = Vec::with_capacity(output.events.len());
        for (o, r) in output.events.into_iter().zip(resolved) {
            let item = match (o, r) {
                (wit::Output::Plain(r), _) => InFlight::Record(Record {
                    topic: r.topic,
                    key: r.key,
                    value: r.value,
                    headers: headers_from_wit(r.headers),
                }),
                (wit::Output::Change(event), Some((table, source))) => InFlight::Wit(WitEvent {
                    event,
                    table,
                    source,
                }),
                (wit::Output::Keep(at), Some((table, source))) => InFlight::Wit(WitEvent {
                    event: taken(at as usize, &mut uses),
                    table,
                    source,
                }),
                (wit::Output::Patch(p), Some((table, source))) => {
                    // Patched values are written over the restored ones.
                    let mut event = taken(p.input as usize, &mut uses);
                    event.op = p.op;
                    event.table = p.table;
                    for (row, changes) in
                        [(&mut event.before, p.before), (&mut event.after, p.after)]
                    {
                        if let Some(row) = row {
                            for (pos, value) in changes {
                                row[pos as usize] = value;
                            }
                        }
                    }
                    if let Some(topic) = p.topic {
                        event.topic = Some(topic);
                    }
                    if let Some(headers) = p.headers {
                        event.headers = Some(headers).filter(|h| !h.is_empty());
                    }
                    InFlight::Wit(WitEvent {
                        event,
                        table,
                        source,
                    })
                }
                (_, None) => {
                    return Err(CallError::Malformed(
                        "output without a resolved input".into(),
                    ))
                }
            };
            converted.push(item);
        }
        Ok(converted)
    }

    /// Checks a `keep` (no patch) or a `patch` of input `at` and counts the use of the input:
    /// the input exists, the patch's positions are in its rows and write no `withheld`, and the
    /// result fits its descriptor. Returns the descriptor and the input's source.
    fn check_input_output(
        &self,
        at: u32,
        patch: Option<&wit::EventPatch>,
        events: &[wit::ChangeEvent],
        inputs: &[(Arc<TableSchema>, Source)],
        registry: &Registry,
        uses: &mut [u32],
    ) -> Result<(Arc<TableSchema>, Source), CallError> {
        let at = input_at(at, events.len())?;
        uses[at] += 1;
        let input = &events[at];
        let (op, id) = patch.map_or((input.op, input.table), |p| (p.op, p.table));
        let table = if id == input.table {
            self.input_descriptor(id, &inputs[at].0)
        } else {
            self.descriptor(id, registry)?
        };
        let before = input.before.as_ref().map(Vec::len);
        let after = input.after.as_ref().map(Vec::len);
        if let Some(p) = patch {
            for (row, len, which) in [(&p.before, before, "before"), (&p.after, after, "after")] {
                if let Some((pos, _)) = row
                    .iter()
                    .find(|(pos, _)| (*pos as usize) >= len.unwrap_or(0))
                {
                    return Err(CallError::Malformed(match len {
                        Some(n) => format!("a patch of input {at} sets {which}[{pos}], and its {which} row has {n} values"),
                        None => format!("a patch of input {at} sets {which}[{pos}], and it has no {which} row"),
                    }));
                }
            }
            if p.before
                .iter()
                .chain(&p.after)
                .any(|(_, v)| matches!(v, wit::Value::Withheld))
            {
                return Err(CallError::Malformed(format!(
                    "a patch of input {at} writes a `withheld` value"
                )));
            }
        }
        WitEvent::check(op, before, after, &table)?;
        Ok((table, inputs[at].1.clone()))
    }

    /// The descriptor of an output that stays on its input's id: the input's own, unless the
    /// plugin declared a descriptor under that id (which replaces it).
    fn input_descriptor(&self, id: u32, input: &Arc<TableSchema>) -> Arc<TableSchema> {
        match self.declared.get(&id) {
            Some(declared) => declared.clone(),
            None => input.clone(),
        }
    }

    /// The descriptor an output event refers to: one this plugin declared, or an input's.
    fn descriptor(&self, id: u32, registry: &Registry) -> Result<Arc<TableSchema>, CallError> {
        self.declared
            .get(&id)
            .or_else(|| registry.table(id).filter(|_| self.sent.contains(&id)))
            .cloned()
            .ok_or_else(|| {
                CallError::Malformed(format!(
                    "an event refers to table descriptor {id}, which is neither an input nor declared"
                ))
            })
    }
}

/// A row of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Before,
    After,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Before => "before",
            Which::After => "after",
        }
    }
}

/// The rows withheld from a call's events, by event: while the plugin is called, an event's
/// rows are rows of `withheld` with only the sent values moved in; its own rows (holding
/// `withheld` where a value was sent) wait here. Kept by the stage from call to call, with a
/// pool of rows to reuse.
#[derive(Default)]
struct Held {
    rows: Vec<HeldRows>,
    pool: Vec<Vec<wit::Value>>,
}

/// One event's own rows while it is in a call; `None` when nothing was withheld from it.
#[derive(Default)]
struct HeldRows {
    /// The positions whose values were sent.
    sent: Option<Arc<[u32]>>,
    before: Option<Vec<wit::Value>>,
    after: Option<Vec<wit::Value>>,
}

impl Held {
    /// The approximate size of event `i`'s withheld values.
    fn size(&self, i: usize) -> u64 {
        self.rows.get(i).map_or(0, |r| {
            [&r.before, &r.after]
                .into_iter()
                .flatten()
                .flatten()
                .map(value_size)
                .sum()
        })
    }

    /// Gives `event` (input `i` as the plugin was sent it, or a copy of it) its own rows back:
    /// the sent values go into them, and they replace the rows of `withheld`. The rows kept
    /// here are moved when `last`, copied otherwise.
    fn restore(&mut self, i: usize, event: &mut wit::ChangeEvent, last: bool) {
        let Some(held) = self.rows.get_mut(i) else {
            return;
        };
        let Some(sent) = &held.sent else {
            return;
        };
        for (row, own) in [
            (&mut event.before, &mut held.before),
            (&mut event.after, &mut held.after),
        ] {
            let (Some(values), Some(kept)) = (row.as_mut(), own.as_mut()) else {
                continue;
            };
            let mut own = if last {
                std::mem::take(kept)
            } else {
                kept.clone()
            };
            for &pos in sent.iter() {
                if let (Some(o), Some(v)) =
                    (own.get_mut(pos as usize), values.get_mut(pos as usize))
                {
                    std::mem::swap(o, v);
                }
            }
            // What the row of `withheld` held at the sent positions is now back in `own`, so
            // it is all `withheld` again, ready for reuse.
            let withheld = std::mem::replace(values, own);
            debug_assert!(withheld.iter().all(|v| matches!(v, wit::Value::Withheld)));
            if self.pool.len() < POOL_ROWS {
                self.pool.push(withheld);
            }
        }
    }

    /// Puts every withheld row back into the events it came from (after a failed call).
    fn put_back(&mut self, events: &mut [wit::ChangeEvent]) {
        for (i, event) in events.iter_mut().enumerate() {
            self.restore(i, event, true);
        }
    }
}

/// At most this many rows of `withheld` are kept for reuse (two per event of a full batch).
const POOL_ROWS: usize = 2 * 1024;

/// The positions of `table`'s rows a plugin interested in `columns` is sent; `None` when all.
fn sent_positions(columns: &[String], table: &TableSchema) -> Option<Arc<[u32]>> {
    let sent: Vec<u32> = table
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            columns
                .iter()
                .any(|p| crate::config::glob::matches(p, &c.name))
        })
        .map(|(i, _)| i as u32)
        .collect();
    if sent.len() == table.columns.len() {
        None
    } else {
        Some(sent.into())
    }
}

/// The input position `at` of a `keep` or `patch`, checked against the batch's size.
fn input_at(at: u32, n: usize) -> Result<usize, CallError> {
    let at = at as usize;
    if at < n {
        Ok(at)
    } else {
        Err(CallError::Malformed(format!(
            "an output refers to input {at} of a batch of {n} events"
        )))
    }
}

/// What a moved-out input leaves behind (never read).
fn empty_event() -> wit::ChangeEvent {
    wit::ChangeEvent {
        op: wit::Op::Create,
        table: 0,
        before: None,
        after: None,
        source: wit::Source {
            lsn: 0,
            last_commit_lsn: None,
            tx_id: None,
            ts_us: 0,
            snapshot: wit::SnapshotMarker::Streaming,
        },
        topic: None,
        headers: None,
    }
}

/// The events of one call with their descriptors and sources (kept apart: `transform` takes a
/// slice of WIT events).
#[derive(Default)]
struct Batch {
    events: Vec<wit::ChangeEvent>,
    inputs: Vec<(Arc<TableSchema>, Source)>,
}

impl Batch {
    fn push(&mut self, w: WitEvent) {
        self.events.push(w.event);
        self.inputs.push((w.table, w.source));
    }
}

/// An event on its way through the chain.
///
/// Between two stages an event stays in WIT form, as the earlier stage returned it: it is
/// converted from the model once, when the first stage in scope takes it, and back once, when it
/// leaves the chain. Values are moved, never copied, on both conversions.
enum InFlight {
    /// As captured: no stage has taken it yet.
    Model(ChangeEvent),
    /// In WIT form, as a stage returned it (or as it was made ready for one).
    Wit(WitEvent),
    /// A plain record: it goes around every later stage.
    Record(Record),
}

/// An event in WIT form with what WIT does not carry.
struct WitEvent {
    /// The WIT event; its `table` is the id the last stage knew it by, set afresh before each
    /// stage from `table`.
    event: wit::ChangeEvent,
    /// The host's descriptor of the event's rows.
    table: Arc<TableSchema>,
    /// Exactly the source of the input the event came from (WIT cannot carry all of it: an
    /// incremental snapshot's marker).
    source: Source,
}

impl WitEvent {
    /// Moves an event into WIT form.
    fn from_model(ev: ChangeEvent, id: u32) -> WitEvent {
        let event = wit::ChangeEvent {
            op: op_to_wit(ev.op),
            table: id,
            before: ev
                .before
                .map(|r| r.into_iter().map(value_into_wit).collect()),
            after: ev
                .after
                .map(|r| r.into_iter().map(value_into_wit).collect()),
            source: source_to_wit(&ev.source),
            topic: ev.topic,
            headers: (!ev.headers.is_empty()).then(|| {
                ev.headers
                    .into_iter()
                    .map(|h| wit::Header {
                        key: h.key,
                        value: h.value,
                    })
                    .collect()
            }),
        };
        WitEvent {
            event,
            table: ev.table,
            source: ev.source,
        }
    }

    /// Moves the event back into the model: a topic equal to the default becomes `None`.
    fn into_model(self, prefix: &str) -> ChangeEvent {
        let WitEvent {
            event: e,
            table,
            source,
        } = self;
        // An empty topic, or one equal to the default, is the default.
        let topic = e
            .topic
            .filter(|t| !t.is_empty() && !table.is_default_topic(t, prefix));
        ChangeEvent {
            op: op_from_wit(e.op),
            before: e
                .before
                .map(|r| r.into_iter().map(value_from_wit).collect()),
            after: e.after.map(|r| r.into_iter().map(value_from_wit).collect()),
            source,
            topic,
            headers: e.headers.map(headers_from_wit).unwrap_or_default(),
            table,
        }
    }

    /// Checks an output event, given its op and the lengths of its rows, against its
    /// descriptor: as many values as columns, and the rows its op needs.
    fn check(
        op: wit::Op,
        before: Option<usize>,
        after: Option<usize>,
        table: &TableSchema,
    ) -> Result<(), CallError> {
        let op = op_from_wit(op);
        let n = table.columns.len();
        for (len, which) in [(before, "before"), (after, "after")] {
            if let Some(len) = len {
                if len != n {
                    return Err(CallError::Malformed(format!(
                        "a `{}` event's {which} row has {len} values for the {n} columns of {}",
                        op.code(),
                        table.qualified_name()
                    )));
                }
            }
        }
        if matches!(op, Op::Create | Op::Update | Op::Read) && after.is_none() {
            return Err(CallError::Malformed(format!(
                "a `{}` event of {} has no after row",
                op.code(),
                table.qualified_name()
            )));
        }
        if op == Op::Delete && before.is_none() {
            return Err(CallError::Malformed(format!(
                "a `d` event of {} has no before row",
                table.qualified_name()
            )));
        }
        Ok(())
    }
}

fn op_to_wit(op: Op) -> wit::Op {
    match op {
        Op::Create => wit::Op::Create,
        Op::Update => wit::Op::Update,
        Op::Delete => wit::Op::Delete,
        Op::Read => wit::Op::Read,
        Op::Truncate => wit::Op::Truncate,
    }
}

fn op_from_wit(op: wit::Op) -> Op {
    match op {
        wit::Op::Create => Op::Create,
        wit::Op::Update => Op::Update,
        wit::Op::Delete => Op::Delete,
        wit::Op::Read => Op::Read,
        wit::Op::Truncate => Op::Truncate,
    }
}

fn marker_to_wit(m: SnapshotMarker) -> wit::SnapshotMarker {
    match m {
        SnapshotMarker::False => wit::SnapshotMarker::Streaming,
        SnapshotMarker::True => wit::SnapshotMarker::InSnapshot,
        SnapshotMarker::First => wit::SnapshotMarker::First,
        SnapshotMarker::FirstInDataCollection => wit::SnapshotMarker::FirstInDataCollection,
        SnapshotMarker::LastInDataCollection => wit::SnapshotMarker::LastInDataCollection,
        SnapshotMarker::Last => wit::SnapshotMarker::Last,
        // WIT 0.1.0 has no `incremental`: plugins see an in-snapshot row, and the host restores
        // the marker from the input event (the source is read-only).
        SnapshotMarker::Incremental => wit::SnapshotMarker::InSnapshot,
    }
}

/// Whether an output's source is an input's, as far as WIT can tell them apart.
fn same_source(input: &Source, output: &wit::Source) -> bool {
    input.lsn.0 == output.lsn
        && input.last_commit_lsn.map(|l| l.0) == output.last_commit_lsn
        && input.tx_id == output.tx_id
        && input.ts_us == output.ts_us
        && marker_to_wit(input.snapshot) == output.snapshot
}

fn headers_from_wit(headers: Vec<wit::Header>) -> Vec<Header> {
    headers
        .into_iter()
        .map(|h| Header {
            key: h.key,
            value: h.value,
        })
        .collect()
}

fn source_to_wit(s: &Source) -> wit::Source {
    wit::Source {
        lsn: s.lsn.0,
        last_commit_lsn: s.last_commit_lsn.map(|l| l.0),
        tx_id: s.tx_id,
        ts_us: s.ts_us,
        snapshot: marker_to_wit(s.snapshot),
    }
}

fn identity_to_wit(r: ReplicaIdentity) -> wit::ReplicaIdentity {
    match r {
        ReplicaIdentity::Default => wit::ReplicaIdentity::Default,
        ReplicaIdentity::Full => wit::ReplicaIdentity::Full,
        ReplicaIdentity::Index => wit::ReplicaIdentity::Index,
        ReplicaIdentity::Nothing => wit::ReplicaIdentity::Nothing,
    }
}

fn identity_from_wit(r: wit::ReplicaIdentity) -> ReplicaIdentity {
    match r {
        wit::ReplicaIdentity::Default => ReplicaIdentity::Default,
        wit::ReplicaIdentity::Full => ReplicaIdentity::Full,
        wit::ReplicaIdentity::Index => ReplicaIdentity::Index,
        wit::ReplicaIdentity::Nothing => ReplicaIdentity::Nothing,
    }
}

/// Descriptor `id` of `t`, with the default topic of its events under `prefix`.
fn table_to_wit(id: u32, t: &TableSchema, prefix: &str) -> wit::Table {
    wit::Table {
        topic: t.default_topic(prefix),
        id,
        schema: t.schema.clone(),
        name: t.name.clone(),
        columns: t
            .columns
            .iter()
            .map(|c| wit::Column {
                name: c.name.clone(),
                type_oid: c.type_oid,
                type_modifier: c.type_modifier,
                type_name: c.type_name.clone(),
                base_type_oid: c.base_type_oid,
                nullable: c.nullable,
                is_key: c.is_key,
                default_expr: c.default.clone(),
                enum_labels: c.enum_labels.clone(),
            })
            .collect(),
        replica_identity: identity_to_wit(t.replica_identity),
    }
}

fn table_from_wit(t: &wit::Table) -> Result<TableSchema, String> {
    if t.name.is_empty() {
        return Err(format!("table descriptor {} has no name", t.id));
    }
    Ok(TableSchema {
        // Declared tables keep no PostgreSQL oid of their own; the id distinguishes them.
        oid: t.id,
        schema: t.schema.clone(),
        name: t.name.clone(),
        columns: t
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                type_oid: c.type_oid,
                type_modifier: c.type_modifier,
                type_name: c.type_name.clone(),
                base_type_oid: c.base_type_oid,
                nullable: c.nullable,
                is_key: c.is_key,
                default: c.default_expr.clone(),
                enum_labels: c.enum_labels.clone(),
            })
            .collect(),
        replica_identity: identity_from_wit(t.replica_identity),
    })
}

fn value_into_wit(v: Value) -> wit::Value {
    match v {
        Value::Null => wit::Value::Null,
        Value::UnchangedToast => wit::Value::UnchangedToast,
        Value::Bool(b) => wit::Value::Boolean(b),
        Value::Int16(i) => wit::Value::Int16(i),
        Value::Int32(i) => wit::Value::Int32(i),
        Value::Int64(i) => wit::Value::Int64(i),
        Value::Float32(f) => wit::Value::Float32(f),
        Value::Float64(f) => wit::Value::Float64(f),
        Value::Numeric(s) => wit::Value::Numeric(s),
        Value::Text(s) => wit::Value::Text(s),
        Value::Bytes(b) => wit::Value::Bytes(b),
        Value::Uuid(s) => wit::Value::Uuid(s),
        Value::Json(s) => wit::Value::Json(s),
        Value::Date(d) => wit::Value::Date(d),
        Value::Time(t) => wit::Value::Time(t),
        Value::Timestamp(t) => wit::Value::Timestamp(t),
        Value::TimestampTz(t) => wit::Value::Timestamptz(t),
    }
}

fn value_from_wit(v: wit::Value) -> Value {
    match v {
        wit::Value::Null => Value::Null,
        wit::Value::UnchangedToast => Value::UnchangedToast,
        wit::Value::Boolean(b) => Value::Bool(b),
        wit::Value::Int16(i) => Value::Int16(i),
        wit::Value::Int32(i) => Value::Int32(i),
        wit::Value::Int64(i) => Value::Int64(i),
        wit::Value::Float32(f) => Value::Float32(f),
        wit::Value::Float64(f) => Value::Float64(f),
        wit::Value::Numeric(s) => Value::Numeric(s),
        wit::Value::Text(s) => Value::Text(s),
        wit::Value::Bytes(b) => Value::Bytes(b),
        wit::Value::Uuid(s) => Value::Uuid(s),
        wit::Value::Json(s) => Value::Json(s),
        wit::Value::Date(d) => Value::Date(d),
        wit::Value::Time(t) => Value::Time(t),
        wit::Value::Timestamp(t) => Value::Timestamp(t),
        wit::Value::Timestamptz(t) => Value::TimestampTz(t),
        // Never left in an event: a stage puts back what it withheld, and refuses output that
        // says `withheld` where nothing was (see `Stage::call`).
        wit::Value::Withheld => Value::Null,
    }
}

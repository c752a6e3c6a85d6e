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
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};

use super::runtime::{wit, CallError, Grants, Limits, LoadedPlugin, PluginInstance, PluginRuntime};
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
    fn admits(&self, ev: &ChangeEvent) -> bool {
        self.ops.as_ref().is_none_or(|ops| ops.contains(&ev.op))
            && self
                .tables
                .as_ref()
                .is_none_or(|t| t.contains(&ev.table.qualified_name()))
    }

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
    sent: HashSet<u32>,
    /// Descriptors this plugin declared for its output, by its ids.
    declared: HashMap<u32, Arc<TableSchema>>,
    counters: StageCounters,
}

/// Host-side descriptor ids: one per distinct table schema (by identity of its `Arc`).
#[derive(Default)]
struct Registry {
    by_ptr: HashMap<usize, u32>,
    by_id: HashMap<u32, Arc<TableSchema>>,
    next: u32,
}

impl Registry {
    fn id(&mut self, t: &Arc<TableSchema>) -> u32 {
        let key = Arc::as_ptr(t) as usize;
        if let Some(id) = self.by_ptr.get(&key) {
            return *id;
        }
        self.next += 1;
        let id = self.next;
        self.by_ptr.insert(key, id);
        // Holding the Arc keeps the pointer from being reused by another schema.
        self.by_id.insert(id, t.clone());
        id
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
                sent: HashSet::new(),
                declared: HashMap::new(),
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
            registry: Registry::default(),
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
        let mut current: Vec<Output> = events.into_iter().map(Output::Change).collect();
        for stage in &mut self.stages {
            current = stage.run(current, &mut self.registry, &self.topic_prefix)?;
        }
        Ok(current)
    }
}

impl crate::pipeline::Stage for PluginChain {
    fn process(&mut self, events: Vec<ChangeEvent>) -> anyhow::Result<Vec<Output>> {
        self.run(events)
    }
}

fn default_topic(prefix: &str, t: &TableSchema) -> String {
    format!("{prefix}.{}.{}", t.schema, t.name)
}

/// `topic == default_topic(prefix, t)`, without building the string.
fn is_default_topic(topic: &str, prefix: &str, t: &TableSchema) -> bool {
    let rest = topic.strip_prefix(prefix).and_then(|r| r.strip_prefix('.'));
    let rest = rest
        .and_then(|r| r.strip_prefix(t.schema.as_str()))
        .and_then(|r| r.strip_prefix('.'));
    rest == Some(t.name.as_str())
}

impl Stage {
    fn run(
        &mut self,
        inputs: Vec<Output>,
        registry: &mut Registry,
        prefix: &str,
    ) -> anyhow::Result<Vec<Output>> {
        let mut out = Vec::with_capacity(inputs.len());
        let mut run: Vec<ChangeEvent> = Vec::new();
        for item in inputs {
            match item {
                Output::Change(ev) if self.scope.admits(&ev) => run.push(ev),
                other => {
                    if !run.is_empty() {
                        let batch = std::mem::take(&mut run);
                        self.run_batch(batch, registry, prefix, &mut out)?;
                    }
                    out.push(other);
                }
            }
        }
        if !run.is_empty() {
            self.run_batch(run, registry, prefix, &mut out)?;
        }
        Ok(out)
    }

    fn run_batch(
        &mut self,
        batch: Vec<ChangeEvent>,
        registry: &mut Registry,
        prefix: &str,
        out: &mut Vec<Output>,
    ) -> anyhow::Result<()> {
        self.counters.events_in += batch.len() as u64;
        let before = out.len();
        match self.call(&batch, registry, prefix) {
            Ok(outputs) => out.extend(outputs),
            Err(err) if batch.len() == 1 => {
                let ev = batch
                    .into_iter()
                    .next()
                    .ok_or_else(|| anyhow!("empty batch"))?;
                self.apply_policy(ev, err, prefix, out)?;
            }
            Err(err) => {
                tracing::debug!(plugin = %self.spec.name, error = %err, events = batch.len(), "batch failed; running its events one by one");
                for ev in batch {
                    match self.call(std::slice::from_ref(&ev), registry, prefix) {
                        Ok(outputs) => out.extend(outputs),
                        Err(err) => self.apply_policy(ev, err, prefix, out)?,
                    }
                }
            }
        }
        self.counters.events_out += (out.len() - before) as u64;
        Ok(())
    }

    fn apply_policy(
        &mut self,
        ev: ChangeEvent,
        err: CallError,
        prefix: &str,
        out: &mut Vec<Output>,
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
                let original_topic = ev.topic.take().unwrap_or_else(|| default_topic(prefix, &ev.table));
                ev.headers.extend([
                    Header { key: "walrelay.error".into(), value: err.to_string().into_bytes() },
                    Header { key: "walrelay.plugin".into(), value: self.spec.name.clone().into_bytes() },
                    Header { key: "walrelay.plugin.version".into(), value: self.version.clone().into_bytes() },
                    Header { key: "walrelay.topic".into(), value: original_topic.into_bytes() },
                ]);
                ev.topic = Some(topic.clone());
                out.push(Output::Change(ev));
                Ok(())
            }
        }
    }

    /// One `transform` call with conversion both ways and validation of the output.
    fn call(
        &mut self,
        events: &[ChangeEvent],
        registry: &mut Registry,
        prefix: &str,
    ) -> Result<Vec<Output>, CallError> {
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
        let mut wit_events = Vec::with_capacity(events.len());
        for ev in events {
            let id = registry.id(&ev.table);
            if self.sent.insert(id) {
                tables.push(table_to_wit(id, &ev.table));
            }
            wit_events.push(event_to_wit(ev, id, prefix));
        }
        let instance = self
            .instance
            .as_mut()
            .ok_or_else(|| CallError::Trap("no instance".into()))?;
        let result = instance.transform(&tables, &wit_events);
        let output = match result {
            Ok(o) => o,
            Err(e) => {
                if e.poisons_instance() {
                    self.instance = None;
                }
                return Err(e);
            }
        };
        for t in output.tables {
            let schema = table_from_wit(&t).map_err(CallError::Malformed)?;
            self.declared.insert(t.id, Arc::new(schema));
        }
        let mut converted = Vec::with_capacity(output.events.len());
        for (i, o) in output.events.into_iter().enumerate() {
            match o {
                wit::Output::Plain(r) => converted.push(Output::Record(Record {
                    topic: r.topic,
                    key: r.key,
                    value: r.value,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|h| Header {
                            key: h.key,
                            value: h.value,
                        })
                        .collect(),
                })),
                wit::Output::Change(e) => {
                    let table = self
                        .declared
                        .get(&e.table)
                        .or_else(|| registry.by_id.get(&e.table).filter(|_| self.sent.contains(&e.table)))
                        .cloned()
                        .ok_or_else(|| CallError::Malformed(format!("an event refers to table descriptor {}, which is neither an input nor declared", e.table)))?;
                    let mut ev = event_from_wit(e, table, prefix)?;
                    // Usually output i comes from input i (one to one): check that first, and
                    // scan only when a plugin filtered or fanned out.
                    let input = events
                        .get(i)
                        .filter(|input| same_source(&input.source, &ev.source))
                        .or_else(|| events.iter().find(|input| same_source(&input.source, &ev.source)))
                        .ok_or_else(|| {
                            CallError::Malformed(format!(
                                "an event's source (lsn {}) is not one of its inputs': the source position is read-only",
                                ev.source.lsn
                            ))
                        })?;
                    // Exactly the input's (what WIT cannot carry included).
                    ev.source = input.source.clone();
                    converted.push(Output::Change(ev));
                }
            }
        }
        Ok(converted)
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
fn same_source(input: &Source, output: &Source) -> bool {
    input.lsn == output.lsn
        && input.last_commit_lsn == output.last_commit_lsn
        && input.tx_id == output.tx_id
        && input.ts_us == output.ts_us
        && marker_to_wit(input.snapshot) == marker_to_wit(output.snapshot)
}

fn marker_from_wit(m: wit::SnapshotMarker) -> SnapshotMarker {
    match m {
        wit::SnapshotMarker::Streaming => SnapshotMarker::False,
        wit::SnapshotMarker::InSnapshot => SnapshotMarker::True,
        wit::SnapshotMarker::First => SnapshotMarker::First,
        wit::SnapshotMarker::FirstInDataCollection => SnapshotMarker::FirstInDataCollection,
        wit::SnapshotMarker::LastInDataCollection => SnapshotMarker::LastInDataCollection,
        wit::SnapshotMarker::Last => SnapshotMarker::Last,
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

fn table_to_wit(id: u32, t: &TableSchema) -> wit::Table {
    wit::Table {
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

fn value_to_wit(v: &Value) -> wit::Value {
    match v {
        Value::Null => wit::Value::Null,
        Value::UnchangedToast => wit::Value::UnchangedToast,
        Value::Bool(b) => wit::Value::Boolean(*b),
        Value::Int16(i) => wit::Value::Int16(*i),
        Value::Int32(i) => wit::Value::Int32(*i),
        Value::Int64(i) => wit::Value::Int64(*i),
        Value::Float32(f) => wit::Value::Float32(*f),
        Value::Float64(f) => wit::Value::Float64(*f),
        Value::Numeric(s) => wit::Value::Numeric(s.clone()),
        Value::Text(s) => wit::Value::Text(s.clone()),
        Value::Bytes(b) => wit::Value::Bytes(b.clone()),
        Value::Uuid(s) => wit::Value::Uuid(s.clone()),
        Value::Json(s) => wit::Value::Json(s.clone()),
        Value::Date(d) => wit::Value::Date(*d),
        Value::Time(t) => wit::Value::Time(*t),
        Value::Timestamp(t) => wit::Value::Timestamp(*t),
        Value::TimestampTz(t) => wit::Value::Timestamptz(*t),
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
    }
}

fn event_to_wit(ev: &ChangeEvent, table: u32, prefix: &str) -> wit::ChangeEvent {
    wit::ChangeEvent {
        op: op_to_wit(ev.op),
        table,
        before: ev
            .before
            .as_ref()
            .map(|r| r.iter().map(value_to_wit).collect()),
        after: ev
            .after
            .as_ref()
            .map(|r| r.iter().map(value_to_wit).collect()),
        source: wit::Source {
            lsn: ev.source.lsn.0,
            last_commit_lsn: ev.source.last_commit_lsn.map(|l| l.0),
            tx_id: ev.source.tx_id,
            ts_us: ev.source.ts_us,
            snapshot: marker_to_wit(ev.source.snapshot),
        },
        topic: ev
            .topic
            .clone()
            .unwrap_or_else(|| default_topic(prefix, &ev.table)),
        headers: ev
            .headers
            .iter()
            .map(|h| wit::Header {
                key: h.key.clone(),
                value: h.value.clone(),
            })
            .collect(),
    }
}

fn event_from_wit(
    e: wit::ChangeEvent,
    table: Arc<TableSchema>,
    prefix: &str,
) -> Result<ChangeEvent, CallError> {
    let op = op_from_wit(e.op);
    let n = table.columns.len();
    let check = |row: &Option<Vec<wit::Value>>, which: &str| -> Result<(), CallError> {
        match row {
            Some(r) if r.len() != n => Err(CallError::Malformed(format!(
                "a `{}` event's {which} row has {} values for the {n} columns of {}",
                op.code(),
                r.len(),
                table.qualified_name()
            ))),
            _ => Ok(()),
        }
    };
    check(&e.before, "before")?;
    check(&e.after, "after")?;
    let needs_after = matches!(op, Op::Create | Op::Update | Op::Read);
    if needs_after && e.after.is_none() {
        return Err(CallError::Malformed(format!(
            "a `{}` event of {} has no after row",
            op.code(),
            table.qualified_name()
        )));
    }
    if op == Op::Delete && e.before.is_none() {
        return Err(CallError::Malformed(format!(
            "a `d` event of {} has no before row",
            table.qualified_name()
        )));
    }
    let topic = if e.topic.is_empty() || is_default_topic(&e.topic, prefix, &table) {
        None
    } else {
        Some(e.topic)
    };
    Ok(ChangeEvent {
        op,
        before: e
            .before
            .map(|r| r.into_iter().map(value_from_wit).collect()),
        after: e.after.map(|r| r.into_iter().map(value_from_wit).collect()),
        source: Source {
            lsn: Lsn(e.source.lsn),
            last_commit_lsn: e.source.last_commit_lsn.map(Lsn),
            tx_id: e.source.tx_id,
            ts_us: e.source.ts_us,
            snapshot: marker_from_wit(e.source.snapshot),
        },
        topic,
        headers: e
            .headers
            .into_iter()
            .map(|h| Header {
                key: h.key,
                value: h.value,
            })
            .collect(),
        table,
    })
}

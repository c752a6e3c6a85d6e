//! Test fixture: returns every event malformed, as config `{"kind": ...}` says:
//!
//! - `unknown-table`: the event names table descriptor 999999, which nobody sent;
//! - `short-row`: its `after` row (its `before` row when it has none) lacks the last value;
//! - `wrong-op`: it is an `update` without an `after` row;
//! - `patch-input`: a patch of input 999, which the batch does not have;
//! - `patch-position`: a patch that sets `after[99]`;
//! - `patch-table`: a patch that points the event at descriptor 999999;
//! - `patch-withheld`: a patch that writes `withheld` into `after[0]`;
//! - `change-withheld`: a whole event with `withheld` in `after[0]`.
//!
//! Uses the SDK's hidden raw access and runtime, which exist for fixtures like this one.

use std::cell::RefCell;

use walrelay_plugin_sdk::__private::{
    self as sdk, BatchOutput, ChangeEvent, EventPatch, PluginInfo, Runtime,
};
use walrelay_plugin_sdk::prelude::*;
use walrelay_plugin_sdk::testing::Output as WireOutput;

#[derive(Clone, Copy)]
enum Kind {
    UnknownTable,
    ShortRow,
    WrongOp,
    PatchInput,
    PatchPosition,
    PatchTable,
    PatchWithheld,
    ChangeWithheld,
}

fn kind(config: &Config) -> Result<Kind, String> {
    config.deny_unknown(&["kind"])?;
    Ok(match config.require_str("kind")? {
        "unknown-table" => Kind::UnknownTable,
        "short-row" => Kind::ShortRow,
        "wrong-op" => Kind::WrongOp,
        "patch-input" => Kind::PatchInput,
        "patch-position" => Kind::PatchPosition,
        "patch-table" => Kind::PatchTable,
        "patch-withheld" => Kind::PatchWithheld,
        "change-withheld" => Kind::ChangeWithheld,
        other => return Err(format!("unknown kind `{other}`")),
    })
}

struct Malformed(Kind);

impl Plugin for Malformed {
    fn new(config: Config) -> Result<Self, String> {
        Ok(Malformed(kind(&config)?))
    }

    fn on_event(&mut self, mut event: Event) -> Result<Emit, String> {
        let raw = event.__raw_mut();
        match self.0 {
            Kind::UnknownTable => raw.table = 999_999,
            Kind::ShortRow => {
                if let Some(row) = raw.after.as_mut().or(raw.before.as_mut()) {
                    row.pop();
                }
            }
            Kind::WrongOp => {
                raw.op = Op::Update;
                raw.after = None;
            }
            Kind::ChangeWithheld => {
                if let Some(v) = raw.after.as_mut().and_then(|r| r.first_mut()) {
                    *v = Value::Withheld;
                }
            }
            // Made below, from the event as it came.
            Kind::PatchInput | Kind::PatchPosition | Kind::PatchTable | Kind::PatchWithheld => {}
        }
        Ok(Emit::Keep(event))
    }
}

#[derive(Default)]
struct State {
    runtime: Option<Runtime<Malformed>>,
    kind: Option<Kind>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

struct Component;

impl sdk::Guest for Component {
    fn init(config: String) -> Result<PluginInfo, String> {
        STATE.with(|state| {
            let state = &mut *state.borrow_mut();
            let info = sdk::init::<Malformed>(
                &mut state.runtime,
                &config,
                env!("CARGO_PKG_NAME"),
                env!("CARGO_PKG_VERSION"),
            )?;
            state.kind = Some(kind(&Config::parse(&config)?)?);
            Ok(info)
        })
    }

    fn transform(tables: Vec<Table>, events: Vec<ChangeEvent>) -> Result<BatchOutput, String> {
        STATE.with(|state| {
            let state = &mut *state.borrow_mut();
            let inputs: Vec<(u32, Op)> = events.iter().map(|e| (e.table, e.op)).collect();
            let mut out = sdk::transform::<Malformed>(&mut state.runtime, tables, events)?;
            for (i, output) in out.events.iter_mut().enumerate() {
                let (table, op) = inputs[i];
                let patch = |input: u32, table: u32, after: Vec<(u32, Value)>| {
                    WireOutput::Patch(EventPatch {
                        input,
                        op,
                        table,
                        before: Vec::new(),
                        after,
                        topic: None,
                        headers: None,
                    })
                };
                match state.kind {
                    Some(Kind::PatchInput) => *output = patch(999, table, Vec::new()),
                    Some(Kind::PatchPosition) => {
                        *output = patch(i as u32, table, vec![(99, Value::Null)])
                    }
                    Some(Kind::PatchTable) => *output = patch(i as u32, 999_999, Vec::new()),
                    Some(Kind::PatchWithheld) => {
                        *output = patch(i as u32, table, vec![(0, Value::Withheld)])
                    }
                    _ => {}
                }
            }
            Ok(out)
        })
    }
}

walrelay_plugin_sdk::bindings::__export_walrelay_plugin!(
    Component with_types_in walrelay_plugin_sdk::bindings
);

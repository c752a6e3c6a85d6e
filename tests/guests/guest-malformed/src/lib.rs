//! Test fixture: returns every event malformed, as config `{"kind": ...}` says:
//!
//! - `unknown-table`: the event names table descriptor 999999, which nobody sent;
//! - `short-row`: its `after` row (its `before` row when it has none) lacks the last value;
//! - `wrong-op`: it is an `update` without an `after` row.
//!
//! Uses the SDK's hidden raw access, which exists for fixtures like this one.

use walrelay_plugin_sdk::prelude::*;

enum Kind {
    UnknownTable,
    ShortRow,
    WrongOp,
}

struct Malformed(Kind);

impl Plugin for Malformed {
    fn new(config: Config) -> Result<Self, String> {
        config.deny_unknown(&["kind"])?;
        Ok(Malformed(match config.require_str("kind")? {
            "unknown-table" => Kind::UnknownTable,
            "short-row" => Kind::ShortRow,
            "wrong-op" => Kind::WrongOp,
            other => return Err(format!("unknown kind `{other}`")),
        }))
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
        }
        Ok(Emit::Keep(event))
    }
}

walrelay_plugin_sdk::export_plugin!(Malformed);

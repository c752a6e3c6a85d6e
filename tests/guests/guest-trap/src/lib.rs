//! Test fixture: panics (a trap) in `on_event` on every event (config `{"on": "all"}`) or on the
//! event whose `id` column equals config `"id"` (`{"id": 42}`); passes the others unchanged.
//! For the relay's per-event rerun of a failed batch.

use walrelay_plugin_sdk::prelude::*;

enum Target {
    All,
    Id(i64),
}

struct Trap(Target);

impl Plugin for Trap {
    fn new(config: Config) -> Result<Self, String> {
        config.deny_unknown(&["on", "id"])?;
        match (config.get_str("on")?, config.get_i64("id")?) {
            (Some("all"), None) => Ok(Trap(Target::All)),
            (None, Some(id)) => Ok(Trap(Target::Id(id))),
            _ => Err(r#"config must be {"on": "all"} or {"id": <integer>}"#.into()),
        }
    }

    fn on_event(&mut self, event: Event) -> Result<Emit, String> {
        let id = event
            .get(Row::After, "id")
            .or_else(|| event.get(Row::Before, "id"))
            .and_then(Value::as_i64);
        match self.0 {
            Target::All => panic!("guest-trap: trapping on every event"),
            Target::Id(target) if id == Some(target) => panic!("guest-trap: event {target}"),
            Target::Id(_) => Ok(Emit::Keep(event)),
        }
    }
}

walrelay_plugin_sdk::export_plugin!(Trap);

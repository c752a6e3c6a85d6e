//! Test fixture: emits config `{"copies": N}` copies of each event (0 drops every event).

use walrelay_plugin_sdk::prelude::*;

struct Fanout(usize);

impl Plugin for Fanout {
    fn new(config: Config) -> Result<Self, String> {
        config.deny_unknown(&["copies"])?;
        let copies = config.require_u64("copies")?;
        Ok(Fanout(usize::try_from(copies).map_err(|e| e.to_string())?))
    }

    fn on_event(&mut self, event: Event) -> Result<Emit, String> {
        Ok(Emit::Many(vec![Output::Event(event); self.0]))
    }
}

walrelay_plugin_sdk::export_plugin!(Fanout);

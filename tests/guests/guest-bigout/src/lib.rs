//! Test fixture: adds a header `big` of config `{"bytes": N}` bytes (`x`s) to each event.
//! For the relay's output size limit.

use walrelay_plugin_sdk::prelude::*;

struct BigOut(usize);

impl Plugin for BigOut {
    fn new(config: Config) -> Result<Self, String> {
        config.deny_unknown(&["bytes"])?;
        let bytes = config.require_u64("bytes")?;
        Ok(BigOut(usize::try_from(bytes).map_err(|e| e.to_string())?))
    }

    fn on_event(&mut self, mut event: Event) -> Result<Emit, String> {
        event.add_header("big", vec![b'x'; self.0]);
        Ok(Emit::Keep(event))
    }
}

walrelay_plugin_sdk::export_plugin!(BigOut);

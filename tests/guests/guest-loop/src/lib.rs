//! Test fixture: `on_event` never returns (a busy loop). For the relay's time limit.

use walrelay_plugin_sdk::prelude::*;

struct Loop;

impl Plugin for Loop {
    fn new(_config: Config) -> Result<Self, String> {
        Ok(Loop)
    }

    fn on_event(&mut self, _event: Event) -> Result<Emit, String> {
        let mut spins = 0u64;
        loop {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }
}

walrelay_plugin_sdk::export_plugin!(Loop);

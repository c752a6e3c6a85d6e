//! Test fixture: `on_event` allocates and writes 1 MiB blocks until allocation fails (which
//! traps). For the relay's memory limit.

use walrelay_plugin_sdk::prelude::*;

struct MemBomb;

impl Plugin for MemBomb {
    fn new(_config: Config) -> Result<Self, String> {
        Ok(MemBomb)
    }

    fn on_event(&mut self, _event: Event) -> Result<Emit, String> {
        const MIB: usize = 1 << 20;
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut block = Vec::<u8>::with_capacity(MIB);
            block.resize(MIB, 0xa5);
            hoard.push(std::hint::black_box(block));
        }
    }
}

walrelay_plugin_sdk::export_plugin!(MemBomb);

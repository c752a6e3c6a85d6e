//! Test fixture: adds headers `now` (the wall clock, whole seconds since the Unix epoch, or
//! `err:<error>`) and `random` (8 bytes from `getrandom`, i.e. `wasi:random`, in hex, or
//! `err:<error>`) to each event; passes it on. For the relay's clock and randomness grants.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use walrelay_plugin_sdk::prelude::*;

struct ClockProbe;

impl Plugin for ClockProbe {
    fn new(_config: Config) -> Result<Self, String> {
        Ok(ClockProbe)
    }

    fn on_event(&mut self, mut event: Event) -> Result<Emit, String> {
        let now = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs().to_string(),
            Err(e) => format!("err:{e}"),
        };
        let mut bytes = [0u8; 8];
        let random = match getrandom::fill(&mut bytes) {
            Ok(()) => bytes.iter().fold(String::new(), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            }),
            Err(e) => format!("err:{e}"),
        };
        event.add_header("now", now);
        event.add_header("random", random);
        Ok(Emit::Keep(event))
    }
}

walrelay_plugin_sdk::export_plugin!(ClockProbe);

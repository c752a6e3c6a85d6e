//! Test fixture: refuses (returns `Err("refused event <id>")`, not a panic) the event whose `id`
//! column equals config `{"id": 42}`; passes the others unchanged. For the relay's failure
//! policies.

use walrelay_plugin_sdk::prelude::*;

struct FailOn(i64);

impl Plugin for FailOn {
    fn new(config: Config) -> Result<Self, String> {
        config.deny_unknown(&["id"])?;
        Ok(FailOn(
            config
                .get_i64("id")?
                .ok_or("configuration key `id` is required")?,
        ))
    }

    fn on_event(&mut self, event: Event) -> Result<Emit, String> {
        let id = event
            .get(Row::After, "id")
            .or_else(|| event.get(Row::Before, "id"))
            .and_then(Value::as_i64);
        if id == Some(self.0) {
            return Err(format!("refused event {}", self.0));
        }
        Ok(Emit::Keep(event))
    }
}

walrelay_plugin_sdk::export_plugin!(FailOn);

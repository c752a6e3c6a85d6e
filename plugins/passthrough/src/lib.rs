//! Returns every event unchanged: the baseline for measuring the plugin runtime's overhead.

use walrelay_plugin_sdk::prelude::*;

struct Passthrough;

impl Plugin for Passthrough {
    fn new(_config: Config) -> Result<Self, String> {
        Ok(Passthrough)
    }

    /// It reads no values, so none are sent.
    fn interest(&self) -> Interest {
        Interest::all().only_columns(Vec::<String>::new())
    }

    fn on_batch(&mut self, events: Vec<Event>) -> Result<Vec<Output>, String> {
        Ok(events.into_iter().map(Output::Event).collect())
    }
}

walrelay_plugin_sdk::export_plugin!(Passthrough);

#[cfg(test)]
mod tests {
    use super::Passthrough;
    use walrelay_plugin_sdk::testing::{self, Harness, Output};
    use walrelay_plugin_sdk::Value;

    #[test]
    fn events_pass_unchanged() {
        let table = testing::table(1, "public", "t", &[("id", "int4"), ("v", "text")]);
        let events = vec![
            testing::insert(1, vec![Value::Int32(1), "a".into()]),
            testing::delete(1, vec![Value::Int32(1), Value::Null]),
        ];
        let mut harness = Harness::<Passthrough>::new("null").unwrap();
        let (tables, out) = harness.run(vec![table], events.clone()).unwrap();
        assert!(tables.is_empty());
        assert_eq!(
            out,
            events.into_iter().map(Output::Change).collect::<Vec<_>>()
        );
    }
}

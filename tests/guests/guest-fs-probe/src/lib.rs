//! Test fixture: for each event, reads the file at config `{"path": "/data/x.txt"}` and adds
//! header `probe` = `ok:<content>` or `err:<error>`; passes the event on. For the relay's
//! filesystem grants.

use walrelay_plugin_sdk::prelude::*;

struct FsProbe(String);

impl Plugin for FsProbe {
    fn new(config: Config) -> Result<Self, String> {
        config.deny_unknown(&["path"])?;
        Ok(FsProbe(config.require_str("path")?.to_string()))
    }

    fn on_event(&mut self, mut event: Event) -> Result<Emit, String> {
        let probe = match std::fs::read_to_string(&self.0) {
            Ok(content) => format!("ok:{content}"),
            Err(e) => format!("err:{e}"),
        };
        event.add_header("probe", probe);
        Ok(Emit::Keep(event))
    }
}

walrelay_plugin_sdk::export_plugin!(FsProbe);

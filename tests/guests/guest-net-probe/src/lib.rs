//! Test fixture: for each event, opens a TCP connection to config `{"addr": "127.0.0.1:1"}`
//! and adds header `probe` = `ok` or `err:<error>`; passes the event on. For the relay's
//! network grants.

use walrelay_plugin_sdk::prelude::*;

struct NetProbe(String);

impl Plugin for NetProbe {
    fn new(config: Config) -> Result<Self, String> {
        config.deny_unknown(&["addr"])?;
        Ok(NetProbe(config.require_str("addr")?.to_string()))
    }

    fn on_event(&mut self, mut event: Event) -> Result<Emit, String> {
        let probe = match std::net::TcpStream::connect(self.0.as_str()) {
            Ok(_stream) => "ok".to_string(),
            Err(e) => format!("err:{e}"),
        };
        event.add_header("probe", probe);
        Ok(Emit::Keep(event))
    }
}

walrelay_plugin_sdk::export_plugin!(NetProbe);

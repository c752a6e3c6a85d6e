//! The initial snapshot's progress bar, for a person at a terminal: one line at the bottom of
//! stderr, redrawn four times a second from the metrics registry's per-table progress, with log
//! lines written above it ([`StderrBelowBar`] clears the bar before each one). Off when stderr
//! is not a terminal (files, journald, a collector read the logs, which report progress every
//! 10 s anyway).
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Whether a bar line is on the screen now.
static DRAWN: Mutex<bool> = Mutex::new(false);

/// A `tracing` writer for stderr that clears the bar before a log line; the next tick draws
/// it again below.
pub struct StderrBelowBar;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrBelowBar {
    type Writer = BarAwareStderr;
    fn make_writer(&'a self) -> BarAwareStderr {
        BarAwareStderr
    }
}

pub struct BarAwareStderr;

impl Write for BarAwareStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut drawn = DRAWN.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        if *drawn {
            err.write_all(b"\r\x1b[2K")?;
            *drawn = false;
        }
        err.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Draws the bar while tables are being read, until the process ends.
pub fn spawn_snapshot_bar() {
    let _ = std::thread::Builder::new()
        .name("walrelay-progress".into())
        .spawn(|| loop {
            std::thread::sleep(Duration::from_millis(250));
            let line = crate::metrics::metrics().snapshot_bar();
            let mut drawn = DRAWN.lock().unwrap_or_else(|e| e.into_inner());
            let mut err = std::io::stderr().lock();
            match line {
                Some(line) => {
                    let _ = write!(err, "\r\x1b[2K{line}");
                    *drawn = true;
                }
                None if *drawn => {
                    let _ = err.write_all(b"\r\x1b[2K");
                    *drawn = false;
                }
                None => {}
            }
            let _ = err.flush();
        });
}

/// `snapshot public.t [#######-------------] 35% 350000/1000000 rows` (without an estimate:
/// the rows alone).
pub fn bar_text(table: &str, rows: u64, estimated: u64) -> String {
    const WIDTH: u64 = 20;
    if estimated == 0 {
        return format!("snapshot {table} {rows} rows");
    }
    let done = rows.min(estimated);
    let filled = (done * WIDTH / estimated) as usize;
    format!(
        "snapshot {table} [{}{}] {}% {rows}/{estimated} rows",
        "#".repeat(filled),
        "-".repeat(WIDTH as usize - filled),
        done * 100 / estimated
    )
}

#[cfg(test)]
mod tests {
    use super::bar_text;

    #[test]
    fn bars() {
        assert_eq!(
            bar_text("public.t", 350, 1000),
            "snapshot public.t [#######-------------] 35% 350/1000 rows"
        );
        assert_eq!(
            bar_text("public.t", 0, 10),
            "snapshot public.t [--------------------] 0% 0/10 rows"
        );
        // Past an estimate that was low: full, 100%.
        assert_eq!(
            bar_text("t", 12, 10),
            "snapshot t [####################] 100% 12/10 rows"
        );
        assert_eq!(bar_text("t", 7, 0), "snapshot t 7 rows");
    }
}

//! The relay's metrics, served in Prometheus' text format on `metrics.listen` (`GET /metrics`).
//!
//! One registry per process ([`metrics`]): capture and delivery update it as they go (per batch,
//! never per event), the server renders it on each scrape. What it holds:
//! - what was handed to the sink since start (records, tombstones, bytes) and the
//!   commit-to-acknowledgement latency of streamed changes (a summary: p50, p99, count);
//! - replication positions: the confirmed LSN, the server's WAL end from its keepalives, and the
//!   slot's lag between them, in bytes;
//! - per table, the initial snapshot's rows read and the planner's estimate, and the rows an
//!   incremental snapshot emitted;
//! - how often a run failed and was restarted.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::sink::Tally;

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::default)
}

#[derive(Default)]
pub struct Metrics {
    tally: Mutex<Tally>,
    pub confirmed_lsn: AtomicU64,
    pub server_wal_end: AtomicU64,
    pub restarts: AtomicU64,
    /// Per table: (rows read, estimated rows, done) of its initial snapshot.
    snapshot: Mutex<BTreeMap<String, (u64, u64, bool)>>,
    /// Per table: rows an incremental snapshot emitted.
    incremental: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// What was handed to the sink so far (all runs).
    pub fn set_tally(&self, tally: &Tally) {
        *self.tally.lock().expect("metrics") = *tally;
    }

    pub fn snapshot_progress(&self, table: &str, rows: u64, estimated: u64, done: bool) {
        self.snapshot
            .lock()
            .expect("metrics")
            .insert(table.to_string(), (rows, estimated, done));
    }

    /// The progress bar of the tables being read now (see [`crate::progress`]); `None` when
    /// none is.
    pub fn snapshot_bar(&self) -> Option<String> {
        let snapshot = self.snapshot.lock().expect("metrics");
        let bars: Vec<String> = snapshot
            .iter()
            .filter(|(_, (_, _, done))| !done)
            .map(|(table, (rows, estimated, _))| {
                crate::progress::bar_text(table, *rows, *estimated)
            })
            .collect();
        (!bars.is_empty()).then(|| bars.join("  "))
    }

    pub fn incremental_rows(&self, table: &str, rows: u64) {
        *self
            .incremental
            .lock()
            .expect("metrics")
            .entry(table.to_string())
            .or_default() += rows;
    }

    /// The registry in Prometheus' text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let tally = *self.tally.lock().expect("metrics");
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            );
        };
        counter(
            "walrelay_records_total",
            "Records handed to the sink (tombstones included).",
            tally.records,
        );
        counter(
            "walrelay_tombstones_total",
            "Tombstones handed to the sink.",
            tally.tombstones,
        );
        counter(
            "walrelay_bytes_total",
            "Bytes of keys and values handed to the sink.",
            tally.bytes,
        );
        counter(
            "walrelay_run_restarts_total",
            "Runs that failed transiently and restarted from the confirmed position.",
            self.restarts.load(Ordering::Relaxed),
        );
        let h = &tally.commit_to_ack;
        let _ = writeln!(out, "# HELP walrelay_commit_to_ack_seconds From a streamed change's commit to the sink's acknowledgement of its record.\n# TYPE walrelay_commit_to_ack_seconds summary");
        for q in [0.5, 0.99] {
            if let Some(us) = h.quantile_us(q) {
                let _ = writeln!(
                    out,
                    "walrelay_commit_to_ack_seconds{{quantile=\"{q}\"}} {}",
                    us as f64 / 1e6
                );
            }
        }
        let _ = writeln!(out, "walrelay_commit_to_ack_seconds_count {}", h.count);
        let confirmed = self.confirmed_lsn.load(Ordering::Relaxed);
        let wal_end = self.server_wal_end.load(Ordering::Relaxed);
        let mut gauge = |name: &str, help: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            );
        };
        gauge(
            "walrelay_confirmed_lsn",
            "The LSN confirmed to PostgreSQL (every record before it acknowledged), as a byte position.",
            confirmed,
        );
        gauge(
            "walrelay_server_wal_end_lsn",
            "The server's WAL end from its latest keepalive, as a byte position.",
            wal_end,
        );
        gauge(
            "walrelay_slot_lag_bytes",
            "The server's WAL end minus the confirmed LSN: WAL the slot holds back.",
            wal_end.saturating_sub(confirmed),
        );
        let snapshot = self.snapshot.lock().expect("metrics");
        if !snapshot.is_empty() {
            let _ = writeln!(out, "# HELP walrelay_snapshot_rows Rows of a table read by the initial snapshot.\n# TYPE walrelay_snapshot_rows gauge");
            for (table, (rows, _, _)) in snapshot.iter() {
                let _ = writeln!(out, "walrelay_snapshot_rows{{table=\"{table}\"}} {rows}");
            }
            let _ = writeln!(out, "# HELP walrelay_snapshot_rows_estimated The planner's estimate of a table's rows when its snapshot started.\n# TYPE walrelay_snapshot_rows_estimated gauge");
            for (table, (_, estimated, _)) in snapshot.iter() {
                let _ = writeln!(
                    out,
                    "walrelay_snapshot_rows_estimated{{table=\"{table}\"}} {estimated}"
                );
            }
        }
        let incremental = self.incremental.lock().expect("metrics");
        if !incremental.is_empty() {
            let _ = writeln!(out, "# HELP walrelay_incremental_snapshot_rows_total Rows an incremental snapshot emitted.\n# TYPE walrelay_incremental_snapshot_rows_total counter");
            for (table, rows) in incremental.iter() {
                let _ = writeln!(
                    out,
                    "walrelay_incremental_snapshot_rows_total{{table=\"{table}\"}} {rows}"
                );
            }
        }
        out
    }
}

/// Serves `GET /metrics` on `addr` until the process ends; logs the bound address (port 0
/// picks a free one). A request is read up to its blank line (8 KiB at most).
pub async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(address = %listener.local_addr()?, "metrics listening");
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut request = Vec::with_capacity(512);
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
                let (status, body) = if line.starts_with(b"GET /metrics ") {
                    ("200 OK", metrics().render())
                } else {
                    ("404 Not Found", "GET /metrics\n".to_string())
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_exposition_format() {
        let m = Metrics::default();
        let mut t = Tally::default();
        t.add("p.public.t", Some(b"k"), Some(b"vv"));
        t.add("p.public.t", Some(b"k"), None);
        t.commit_to_ack.record(2_000);
        m.set_tally(&t);
        m.confirmed_lsn.store(1_000, Ordering::Relaxed);
        m.server_wal_end.store(1_500, Ordering::Relaxed);
        m.snapshot_progress("public.t", 10, 12, false);
        assert_eq!(
            m.snapshot_bar().as_deref(),
            Some("snapshot public.t [################----] 83% 10/12 rows")
        );
        m.snapshot_progress("public.t", 12, 12, true);
        assert_eq!(m.snapshot_bar(), None);
        m.snapshot_progress("public.t", 10, 12, true);
        m.incremental_rows("public.t", 3);
        m.incremental_rows("public.t", 4);
        let text = m.render();
        for line in [
            "walrelay_records_total 2",
            "walrelay_tombstones_total 1",
            "walrelay_bytes_total 4",
            "walrelay_commit_to_ack_seconds{quantile=\"0.5\"} 0.002",
            "walrelay_commit_to_ack_seconds_count 1",
            "walrelay_slot_lag_bytes 500",
            "walrelay_snapshot_rows{table=\"public.t\"} 10",
            "walrelay_snapshot_rows_estimated{table=\"public.t\"} 12",
            "walrelay_incremental_snapshot_rows_total{table=\"public.t\"} 7",
            "# TYPE walrelay_records_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
    }
}

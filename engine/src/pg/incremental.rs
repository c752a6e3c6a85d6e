//! Incremental snapshots while streaming: DBLog's watermark method, as Debezium uses it.
//!
//! A table is read in chunks of `chunk_size` rows in key order. Each chunk is read between two
//! logical decoding messages the relay writes itself, a low and a high watermark
//! ([`WATERMARK_PREFIX`]), and held back:
//! - events of the chunk's table that the stream delivers between the two watermarks win: the
//!   chunk rows with their keys (old or new) are dropped, the stream carrying the newer state;
//! - at the high watermark the rest of the chunk goes out as `r` events with
//!   `source.snapshot = "incremental"`, placed in the stream at the watermark.
//!
//! Why nothing is reordered or lost: the walsender sends committed transactions and
//! non-transactional messages in LSN order, and the chunk's SELECT sees the table as of a moment
//! between the two watermarks. A change committed before the low watermark is older than the
//! chunk's rows and precedes them; one committed between the watermarks removes its row from the
//! chunk; one committed after the high watermark follows the chunk. So for every key, the last
//! event on the topic is its current state.
//!
//! Progress (the tables left and the last key read) is recorded once a chunk's rows were
//! acknowledged ([`crate::pipeline::Checkpoint::Incremental`]); after a restart the snapshot
//! resumes after the last recorded chunk, and watermarks of the earlier run that the stream
//! replays are ignored (each run names its watermarks with a fresh nonce).
use std::sync::Arc;

use crate::event::{ChangeEvent, TableSchema, Value};
use crate::state::IncrementalProgress;

/// The prefix of the relay's watermark messages (content `low:<id>` or `high:<id>`); consumed
/// by capture, never published.
pub const WATERMARK_PREFIX: &str = "walrelay_watermark";

/// `source.postgres.incremental_snapshots`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncrementalSettings {
    /// `schema.table` of the signal table.
    pub signal_table: String,
    pub chunk_size: usize,
}

/// The tables a signal row asks to read: `Ok(None)` for a signal of another type (walrelay acts
/// on `execute-snapshot` only), an error for a malformed or non-incremental one.
pub fn parse_signal(kind: &str, data: Option<&str>) -> Result<Option<Vec<String>>, String> {
    if kind != "execute-snapshot" {
        return Ok(None);
    }
    let data = data.ok_or("an execute-snapshot signal needs `data`")?;
    let v: serde_json::Value =
        serde_json::from_str(data).map_err(|e| format!("`data` is not JSON ({e}): {data}"))?;
    if let Some(kind) = v.get("type").and_then(|t| t.as_str()) {
        if !kind.eq_ignore_ascii_case("incremental") {
            return Err(format!(
                "snapshot type `{kind}`: walrelay takes incremental snapshots while streaming (\"type\": \"incremental\")"
            ));
        }
    }
    let tables = v
        .get("data-collections")
        .and_then(|d| d.as_array())
        .ok_or("`data` needs \"data-collections\": [\"schema.table\", …]")?
        .iter()
        .map(|t| {
            let t = t.as_str().ok_or("data-collections holds table names")?;
            Ok(if t.contains('.') {
                t.to_string()
            } else {
                format!("public.{t}")
            })
        })
        .collect::<Result<Vec<String>, String>>()?;
    if tables.is_empty() {
        return Err("\"data-collections\" is empty".into());
    }
    Ok(Some(tables))
}

/// A watermark message's content: `(is_low, id)`.
pub fn parse_watermark(content: &[u8]) -> Option<(bool, &str)> {
    let text = std::str::from_utf8(content).ok()?;
    if let Some(id) = text.strip_prefix("low:") {
        Some((true, id))
    } else {
        text.strip_prefix("high:").map(|id| (false, id))
    }
}

/// A row of a chunk.
#[derive(Debug)]
pub struct ChunkRow {
    pub key: Vec<Value>,
    pub row: Vec<Value>,
}

/// A chunk read between its watermarks, held back until the high one.
#[derive(Debug)]
pub struct Chunk {
    /// Names both watermarks.
    pub id: String,
    pub table: Arc<TableSchema>,
    /// Positions of the key columns in `table.columns`.
    pub key_columns: Vec<usize>,
    pub rows: Vec<ChunkRow>,
    /// Between the watermarks: the stream's events for the table win over the chunk's rows.
    pub open: bool,
    /// Fewer rows than a chunk holds: the table is done after this one.
    pub last_of_table: bool,
    /// The key text of the chunk's last row, where the next chunk starts.
    pub last_key: Option<crate::state::KeyText>,
    /// Rows of the chunk the stream took over.
    pub dropped: usize,
}

impl Chunk {
    /// Drops the rows whose key an event of the stream carries (old or new row).
    pub fn yield_to(&mut self, ev: &ChangeEvent) {
        if !self.open || ev.table.oid != self.table.oid || self.rows.is_empty() {
            return;
        }
        for row in [&ev.before, &ev.after].into_iter().flatten() {
            let Some(key) = self
                .key_columns
                .iter()
                .map(|&i| row.get(i).cloned())
                .collect::<Option<Vec<Value>>>()
            else {
                continue;
            };
            let before = self.rows.len();
            self.rows.retain(|r| r.key != key);
            self.dropped += before - self.rows.len();
        }
    }
}

/// An incremental snapshot in a streaming run.
#[derive(Debug)]
pub struct Incremental {
    pub settings: IncrementalSettings,
    /// The signal table's relation.
    pub signal_oid: u32,
    /// `None` while no snapshot is under way.
    pub progress: Option<IncrementalProgress>,
    pub chunk: Option<Chunk>,
    /// Rows emitted for `progress.tables[0]` in this run.
    pub rows_emitted: u64,
    nonce: String,
    seq: u64,
}

impl Incremental {
    pub fn new(
        settings: IncrementalSettings,
        signal_oid: u32,
        progress: Option<IncrementalProgress>,
    ) -> Self {
        let nonce = format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        Incremental {
            settings,
            signal_oid,
            progress: progress.filter(|p| !p.tables.is_empty()),
            chunk: None,
            rows_emitted: 0,
            nonce,
            seq: 0,
        }
    }

    /// Adds tables to read (after those already queued, without repeats).
    pub fn request(&mut self, tables: Vec<String>) {
        let p = self.progress.get_or_insert_with(|| IncrementalProgress {
            tables: Vec::new(),
            last_key: None,
        });
        for t in tables {
            if !p.tables.contains(&t) {
                p.tables.push(t);
            }
        }
    }

    /// Whether the next chunk should be read now.
    pub fn wants_chunk(&self) -> bool {
        self.chunk.is_none() && self.progress.as_ref().is_some_and(|p| !p.tables.is_empty())
    }

    /// A fresh watermark id.
    pub fn next_id(&mut self) -> String {
        self.seq += 1;
        format!("{}-{}", self.nonce, self.seq)
    }

    /// Leaves the current table (done, or unreadable); the next one starts from its first key.
    pub fn finish_table(&mut self) -> Option<String> {
        let p = self.progress.as_mut()?;
        let done = (!p.tables.is_empty()).then(|| p.tables.remove(0));
        p.last_key = None;
        self.rows_emitted = 0;
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(
            parse_signal(
                "execute-snapshot",
                Some(r#"{"data-collections": ["public.a", "b"], "type": "incremental"}"#)
            ),
            Ok(Some(vec!["public.a".to_string(), "public.b".to_string()]))
        );
        // Debezium writes the type in capitals too; it may be left out.
        assert_eq!(
            parse_signal(
                "execute-snapshot",
                Some(r#"{"data-collections": ["s.t"], "type": "INCREMENTAL"}"#)
            ),
            Ok(Some(vec!["s.t".to_string()]))
        );
        assert_eq!(parse_signal("log", Some("{}")), Ok(None));
        assert!(parse_signal(
            "execute-snapshot",
            Some(r#"{"data-collections": ["a"], "type": "blocking"}"#)
        )
        .unwrap_err()
        .contains("blocking"));
        assert!(parse_signal("execute-snapshot", Some("nope")).is_err());
        assert!(parse_signal("execute-snapshot", Some(r#"{"data-collections": []}"#)).is_err());
        assert!(parse_signal("execute-snapshot", None).is_err());
    }

    #[test]
    fn watermarks() {
        assert_eq!(parse_watermark(b"low:ab-1"), Some((true, "ab-1")));
        assert_eq!(parse_watermark(b"high:ab-1"), Some((false, "ab-1")));
        assert_eq!(parse_watermark(b"other"), None);
    }

    #[test]
    fn queue() {
        let settings = IncrementalSettings {
            signal_table: "public.s".into(),
            chunk_size: 2,
        };
        let mut inc = Incremental::new(settings, 1, None);
        assert!(!inc.wants_chunk());
        inc.request(vec!["public.a".into(), "public.b".into()]);
        inc.request(vec!["public.b".into(), "public.c".into()]);
        assert_eq!(
            inc.progress.as_ref().unwrap().tables,
            ["public.a", "public.b", "public.c"]
        );
        assert!(inc.wants_chunk());
        assert_ne!(inc.next_id(), inc.next_id());
        assert_eq!(inc.finish_table().as_deref(), Some("public.a"));
        assert_eq!(
            inc.progress.as_ref().unwrap().tables,
            ["public.b", "public.c"]
        );
    }
}

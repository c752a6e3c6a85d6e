//! What the relay must remember across restarts beyond the slot itself: whether a slot's initial
//! snapshot completed.
//!
//! The slot's `confirmed_flush_lsn` is the streaming position, kept by PostgreSQL. But a slot's
//! exported snapshot lives only while the connection that created it is open, so a relay killed
//! mid-snapshot cannot resume that snapshot: on restart it must drop the slot and take a new one,
//! never fall through to streaming with rows missing. This store records, per slot, that the
//! snapshot's events were all acknowledged by the broker. Files are written atomically (write,
//! fsync, rename).
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::event::Lsn;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot write relay state {path}: {source} (check state_dir in the config)")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read relay state {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("relay state {path} is corrupt ({source}); delete it to redo the initial snapshot")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Where the initial snapshot of a slot stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotState {
    /// Started from the slot's exported snapshot; not every row was acknowledged yet.
    InProgress,
    /// Every snapshot row was acknowledged by the broker.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotState {
    pub slot: String,
    pub snapshot: SnapshotState,
    /// The slot's consistent point (text `X/Y`): where streaming takes over from the snapshot.
    pub consistent_point: String,
}

/// PostgreSQL's text of a row's key columns, in key order (`None`: NULL).
pub type KeyText = Vec<Option<String>>;

/// Where an incremental snapshot stands, recorded once its rows so far were acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncrementalProgress {
    /// Tables still to read, `schema.table`, the one being read first.
    pub tables: Vec<String>,
    /// PostgreSQL's text of the key columns of the last row delivered from `tables[0]`, in key
    /// order; `None` before its first chunk.
    pub last_key: Option<KeyText>,
}

/// A directory of per-slot state files.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, slot: &str) -> PathBuf {
        self.dir.join(format!("{slot}.json"))
    }

    pub fn load(&self, slot: &str) -> Result<Option<SlotState>, StateError> {
        self.read(self.path(slot))
    }

    pub fn save(&self, state: &SlotState) -> Result<(), StateError> {
        self.write(self.path(&state.slot), state)
    }

    fn incremental_path(&self, slot: &str) -> PathBuf {
        self.dir.join(format!("{slot}.incremental.json"))
    }

    /// The recorded incremental snapshot of `slot`, if one is under way.
    pub fn load_incremental(&self, slot: &str) -> Result<Option<IncrementalProgress>, StateError> {
        self.read(self.incremental_path(slot))
    }

    /// Records an incremental snapshot's progress; no tables left removes the record.
    pub fn save_incremental(
        &self,
        slot: &str,
        progress: &IncrementalProgress,
    ) -> Result<(), StateError> {
        let path = self.incremental_path(slot);
        if !progress.tables.is_empty() {
            return self.write(path, progress);
        }
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StateError::Write { path, source: e })
            }
            _ => Ok(()),
        }
    }

    /// A state file's content; `None` when there is none.
    fn read<T: serde::de::DeserializeOwned>(&self, path: PathBuf) -> Result<Option<T>, StateError> {
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StateError::Corrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Read { path, source }),
        }
    }

    /// Writes a state file atomically and durably (a temporary file synced, then renamed).
    fn write<T: Serialize>(&self, path: PathBuf, value: &T) -> Result<(), StateError> {
        let tmp = path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            fs::create_dir_all(&self.dir)?;
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            if let Ok(d) = fs::File::open(&self.dir) {
                let _ = d.sync_all();
            }
            Ok(())
        };
        write().map_err(|source| StateError::Write { path, source })
    }

    pub fn snapshot_started(&self, slot: &str, consistent_point: Lsn) -> Result<(), StateError> {
        self.save(&SlotState {
            slot: slot.into(),
            snapshot: SnapshotState::InProgress,
            consistent_point: consistent_point.to_string(),
        })
    }

    pub fn snapshot_done(&self, slot: &str, consistent_point: Lsn) -> Result<(), StateError> {
        self.save(&SlotState {
            slot: slot.into(),
            snapshot: SnapshotState::Done,
            consistent_point: consistent_point.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reports_corruption() {
        let dir = std::env::temp_dir().join(format!("walrelay-state-test-{}", std::process::id()));
        let store = StateStore::new(&dir);
        assert_eq!(store.load("s1").unwrap(), None);
        store.snapshot_started("s1", Lsn(0x1_0000_00A0)).unwrap();
        let s = store.load("s1").unwrap().unwrap();
        assert_eq!(s.snapshot, SnapshotState::InProgress);
        assert_eq!(s.consistent_point, "1/A0");
        store.snapshot_done("s1", Lsn(0x1_0000_00A0)).unwrap();
        assert_eq!(
            store.load("s1").unwrap().unwrap().snapshot,
            SnapshotState::Done
        );
        std::fs::write(dir.join("s2.json"), b"{not json").unwrap();
        let err = store.load("s2").unwrap_err().to_string();
        assert!(err.contains("s2.json is corrupt"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

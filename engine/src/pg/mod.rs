//! PostgreSQL capture: transport, decoding, catalog, snapshot and streaming.
//!
//! The pure decoders (pgoutput messages, COPY text rows, text-format values) live in the
//! `walrelay-pgwire` crate, which is fuzzed on its own (`fuzz/`); they are re-exported here.
pub mod capture;
pub mod catalog;
pub mod incremental;
pub mod replication;
pub mod tls;

pub use walrelay_pgwire::{copy_text, pgoutput, text};

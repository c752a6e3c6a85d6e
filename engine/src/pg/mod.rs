//! PostgreSQL capture: transport, decoding, catalog, snapshot and streaming.
pub mod capture;
pub mod catalog;
pub mod copy_text;
pub mod pgoutput;
pub mod replication;
pub mod text;

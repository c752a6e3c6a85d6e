//! walrelay's pure decoding of what PostgreSQL sends: the `pgoutput` logical replication messages
//! ([`pgoutput`]), rows of the COPY text format used by snapshots ([`copy_text`]) and the text
//! output of column values ([`text`]), plus the few model types they produce ([`model`]).
//!
//! No I/O, no state, no heavy dependencies: the engine (`walrelay`) re-exports these modules
//! under `walrelay::pg` and the types under `walrelay::event`, and `fuzz/` builds this crate
//! alone with sanitizers. Malformed input is an error, never a panic.
pub mod copy_text;
pub mod model;
pub mod pgoutput;
pub mod text;

pub use model::{Column, Lsn, Value};

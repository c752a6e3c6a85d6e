//! walrelay: PostgreSQL logical replication (pgoutput) → a chain of sandboxed WebAssembly plugins
//! → Debezium-compatible records → Kafka.
//!
//! Modules, in the order data flows through them:
//! * [`config`]: the YAML configuration, interpolated, parsed and validated all at once;
//! * [`pg`]: capture — the replication transport, the pgoutput decoder, value parsers, the
//!   catalog, the initial snapshot and streaming;
//! * [`event`]: the change-event model and its CDC semantics;
//! * [`pipeline`]: the chain stage, delivery and the confirmation of positions;
//! * [`encode`]: Debezium JSON;
//! * [`sink`]: the Kafka producer;
//! * [`state`]: what the relay records between runs (initial snapshot completion);
//! * [`metrics`]: counters and gauges served in Prometheus' format; [`progress`]: the snapshot's
//!   progress bar on a terminal;
//! * [`tail`]: reading a topic back, for operators.
pub mod config;
pub mod encode;
pub mod event;
pub mod events_file;
pub mod metrics;
pub mod pg;
pub mod pipeline;
pub mod plugin;
pub mod progress;
pub mod sink;
pub mod state;
pub mod tail;

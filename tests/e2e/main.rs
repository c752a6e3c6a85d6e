#![recursion_limit = "512"]
//! walrelay's end-to-end tests: the relay binary against a real PostgreSQL and a real
//! Kafka-protocol broker (Tansu), both started by `scripts/services` (idempotent).
mod support;

mod avro;
mod capture;
mod cli;
mod connections;
mod cookbook;
mod cross_client;
mod declarative;
mod delivery;
mod incremental;
mod languages;
mod null_sink;
mod plugin_cli;
mod plugins;
mod record_kinds;
mod registry;
mod selection;
mod shipped;
mod tooling;
mod types;

//! Encoders: turn [`ChangeEvent`](crate::event::ChangeEvent)s into the bytes written to Kafka.
//!
//! * [`json`]: Debezium's PostgreSQL connector format as Kafka's `JsonConverter` writes it
//!   (`schemas.enable=true`), byte for byte where the reference fixes the bytes.
//! * [`records`]: the records that are not row changes (logical decoding messages, transaction
//!   metadata, heartbeats), the envelope's transaction block, and primary-key-change headers.
mod javanum;
pub mod json;
pub mod records;

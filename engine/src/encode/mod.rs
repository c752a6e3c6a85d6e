//! Encoders: turn [`ChangeEvent`](crate::event::ChangeEvent)s into the bytes written to Kafka.
//!
//! * [`json`]: Debezium's PostgreSQL connector format as Kafka's `JsonConverter` writes it
//!   (`schemas.enable=true`), byte for byte where the reference fixes the bytes.
//! * [`registry`]: the Confluent Schema Registry client the Avro encoder takes schema ids from.
mod javanum;
pub mod json;
pub mod registry;

//! Encoders: turn [`ChangeEvent`](crate::event::ChangeEvent)s into the bytes written to Kafka.
//!
//! Debezium builds Kafka Connect data and lets a converter write it; walrelay keeps that split:
//!
//! * [`connect`]: Connect's schemas and values.
//! * [`columns`]: a PostgreSQL column's Connect schema and values (Debezium's type mapping).
//! * [`envelope`]: the key, the envelope and the source block of a change event.
//! * [`records`]: the records that are not row changes (logical decoding messages, transaction
//!   metadata, heartbeats), the envelope's transaction block, and primary-key-change headers.
//! * [`json`]: Kafka's `JsonConverter` (`schemas.enable` true or false), byte for byte where
//!   the reference fixes the bytes.
//! * [`avro`]: Confluent's `AvroConverter` (Avro schemas, binary encoding, wire format).
//! * [`registry`]: the Confluent Schema Registry client the Avro encoder takes schema ids from.
pub mod avro;
pub mod columns;
pub mod connect;
pub mod envelope;
mod javanum;
pub mod json;
pub mod records;
pub mod registry;

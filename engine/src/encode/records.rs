//! The records Debezium's PostgreSQL connector writes besides row changes, as Connect data
//! ([`connect`]) that each format writes: JSON in the `JsonConverter` layout of
//! [`super::json`] (reference section 3), Avro as Confluent's `AvroConverter` would.
//!
//! | record | topic | key | value |
//! |---|---|---|---|
//! | logical decoding message | `<prefix>.message` | `io.debezium.connector.postgresql.MessageKey` | `io.debezium.connector.postgresql.MessageValue` |
//! | transaction BEGIN / END | `<prefix>.transaction` | `io.debezium.connector.common.TransactionMetadataKey` | `io.debezium.connector.common.TransactionMetadataValue` |
//! | heartbeat | `__debezium-heartbeat.<prefix>` | `io.debezium.connector.common.ServerNameKey` | `io.debezium.connector.common.Heartbeat` |
//!
//! # Where the layouts come from (Debezium's source)
//!
//! * **Messages**: `debezium-connector-postgres/…/PostgresSchemaFactory.java`
//!   (`logicalDecodingMessageMonitorKeySchema` / `…BlockSchema` / `…ValueSchema`: key
//!   `MessageKey` v1 with an optional string `prefix`; value `MessageValue` v1 with `op` (string),
//!   `ts_ms` (optional int64), `source`, `transaction` (`event.block`), and `message`, a required
//!   struct `io.debezium.connector.postgresql.Message` v1 of an optional string `prefix` and
//!   optional bytes `content` under the default `binary.handling.mode=bytes`), and
//!   `LogicalDecodingMessageMonitor.java` (topic suffix `.message`, `op` = `m`, `ts_ms` = the
//!   connector's clock). `LogicalDecodingMessageIT.java` fixes the source block of a message: empty
//!   `schema` and `table`, `txId` only for transactional messages, `transaction` null unless
//!   transaction metadata is on.
//! * **Transaction metadata** and **heartbeats**: `debezium-core/…/schema/SchemaFactory.java`
//!   (`transactionKeySchema`, `transactionValueSchema` with `status`, `id`, optional `event_count`,
//!   optional array of optional `event.collection` v1 structs `{data_collection, event_count}`,
//!   `ts_ms`; `transactionBlockSchema` = `event.block` v1; `heartbeatKeySchema` = `ServerNameKey`
//!   v1 `{serverName}`, `heartbeatValueSchema` = `Heartbeat` v1 `{ts_ms}`), and
//!   `debezium-core/…/pipeline/txmetadata/TransactionMonitor.java` (BEGIN has null `event_count`
//!   and `data_collections`; END counts the events per data collection; the block's
//!   `total_order` / `data_collection_order` are 1-based positions in the transaction).
//! * **Transaction id.** The PostgreSQL connector uses the bare transaction id: its streaming
//!   source starts a transaction with `toString(message.getTransactionId())`
//!   (`PostgresStreamingChangeEventSource.java`) and matches events to it with
//!   `Long.toString(source.txId)` (`PostgresEventMetadataProvider.getTransactionId`). Debezium's
//!   documentation shows `"571:53195829"` (`txID:LSN`) instead, with a different id for BEGIN
//!   and END of one transaction; walrelay follows the code, so BEGIN, END and every event of a
//!   transaction share the id `"<txId>"`.
//! * **Primary-key change headers**: `RelationalChangeRecordEmitter.java`
//!   (`emitUpdateAsPrimaryKeyChangeRecord`: the `d` record carries `__debezium.newkey`, the `c`
//!   record `__debezium.oldkey`), checked by `RecordsStreamProducerIT.java`
//!   (`shouldReceiveChangesForUpdatesWithPKChanges`). Kafka Connect writes a struct header with
//!   its default `SimpleHeaderConverter`, i.e. `Values.convertToString`: `{"pk":2}`. walrelay
//!   writes the key's JSON payload, which is that text for integer, string and uuid keys
//!   (Connect would print a decimal key column as a number where the payload has base64).
use super::json::{push_i64, write_json_str};

/// Header on the `d` record of a primary-key change: the new key.
pub const PK_UPDATE_NEWKEY_HEADER: &str = "__debezium.newkey";
/// Header on the `c` record of a primary-key change: the old key.
pub const PK_UPDATE_OLDKEY_HEADER: &str = "__debezium.oldkey";
/// The data collection logical decoding messages are counted under in transaction metadata
/// (`LogicalDecodingMessageMonitor.LogicalDecodingMessageId`).
pub const MESSAGE_DATA_COLLECTION: &str = "LOGICAL_DECODING_MESSAGE";

/// `<prefix>.message`.
pub fn message_topic(prefix: &str) -> String {
    format!("{prefix}.message")
}

/// `<prefix>.transaction`.
pub fn transaction_topic(prefix: &str) -> String {
    format!("{prefix}.transaction")
}

/// `__debezium-heartbeat.<prefix>` (Debezium's default `topic.heartbeat.prefix`).
pub fn heartbeat_topic(prefix: &str) -> String {
    format!("__debezium-heartbeat.{prefix}")
}

/// The envelope's `transaction` block of one event (Debezium's `event.block`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransactionBlock<'a> {
    /// The transaction's id, `"<txId>"`.
    pub id: &'a str,
    /// 1-based position of the event among the transaction's emitted events.
    pub total_order: u64,
    /// 1-based position of the event among the transaction's emitted events of its data
    /// collection (`schema.table`).
    pub data_collection_order: u64,
}

/// Writes the `transaction` payload: the block, or `null`.
pub(crate) fn write_transaction_block(out: &mut String, tx: Option<&TransactionBlock<'_>>) {
    match tx {
        None => out.push_str("null"),
        Some(tx) => {
            out.push_str("{\"id\":");
            write_json_str(out, tx.id);
            out.push_str(",\"total_order\":");
            push_i64(out, tx.total_order as i64);
            out.push_str(",\"data_collection_order\":");
            push_i64(out, tx.data_collection_order as i64);
            out.push('}');
        }
    }
}

/// The records as Connect data, which each format writes (JSON through
/// [`DebeziumJson::record`](super::json::DebeziumJson::record), Avro through its encoder).
pub mod connect {
    use std::borrow::Cow;

    use super::super::connect::{Datum, Schema, Type};
    use super::super::envelope::{source_schema, transaction_schema, RecordOptions};
    use super::TransactionBlock;
    use crate::event::{LogicalMessage, Source};

    /// `io.debezium.connector.postgresql.MessageKey` v1.
    pub fn message_key_schema() -> Schema {
        Schema::structure(
            "io.debezium.connector.postgresql.MessageKey",
            false,
            vec![Schema::new(Type::String, true).field("prefix")],
        )
        .version(1)
    }

    pub fn message_key(prefix: &str) -> Datum<'_> {
        Datum::Struct(vec![Datum::str(prefix)])
    }

    /// `io.debezium.connector.postgresql.MessageValue` v1.
    pub fn message_value_schema() -> Schema {
        Schema::structure(
            "io.debezium.connector.postgresql.MessageValue",
            false,
            vec![
                Schema::new(Type::String, false).field("op"),
                Schema::new(Type::Int64, true).field("ts_ms"),
                source_schema().field("source"),
                transaction_schema().field("transaction"),
                Schema::structure(
                    "io.debezium.connector.postgresql.Message",
                    false,
                    vec![
                        Schema::new(Type::String, true).field("prefix"),
                        Schema::new(Type::Bytes, true).field("content"),
                    ],
                )
                .version(1)
                .field("message"),
            ],
        )
        .version(1)
    }

    pub fn message_value<'a>(
        opts: &'a RecordOptions,
        msg: &'a LogicalMessage,
        tx: Option<&TransactionBlock<'_>>,
        now_ms: i64,
    ) -> Datum<'a> {
        Datum::Struct(vec![
            Datum::str("m"),
            Datum::Int64(now_ms),
            source(opts, &msg.source),
            tx.map_or(Datum::Null, transaction_block_datum),
            Datum::Struct(vec![
                Datum::str(&msg.prefix),
                Datum::Bytes(Cow::Borrowed(&msg.content)),
            ]),
        ])
    }

    /// The source block of a record of no table (`schema` and `table` empty).
    fn source<'a>(opts: &'a RecordOptions, src: &Source) -> Datum<'a> {
        super::super::envelope::source_block(opts, src, "", "")
    }

    /// The envelope's `transaction` block (`event.block`).
    pub fn transaction_block_datum(tx: &TransactionBlock<'_>) -> Datum<'static> {
        Datum::Struct(vec![
            Datum::string(tx.id.to_string()),
            Datum::Int64(tx.total_order as i64),
            Datum::Int64(tx.data_collection_order as i64),
        ])
    }

    /// `io.debezium.connector.common.TransactionMetadataKey` v1.
    pub fn transaction_key_schema() -> Schema {
        Schema::structure(
            "io.debezium.connector.common.TransactionMetadataKey",
            false,
            vec![Schema::new(Type::String, false).field("id")],
        )
        .version(1)
    }

    pub fn transaction_key(id: &str) -> Datum<'_> {
        Datum::Struct(vec![Datum::str(id)])
    }

    /// `io.debezium.connector.common.TransactionMetadataValue` v1.
    pub fn transaction_value_schema() -> Schema {
        let collection = Schema::structure(
            "event.collection",
            true,
            vec![
                Schema::new(Type::String, false).field("data_collection"),
                Schema::new(Type::Int64, false).field("event_count"),
            ],
        )
        .version(1);
        Schema::structure(
            "io.debezium.connector.common.TransactionMetadataValue",
            false,
            vec![
                Schema::new(Type::String, false).field("status"),
                Schema::new(Type::String, false).field("id"),
                Schema::new(Type::Int64, true).field("event_count"),
                Schema::new(Type::Array(Box::new(collection)), true).field("data_collections"),
                Schema::new(Type::Int64, false).field("ts_ms"),
            ],
        )
        .version(1)
    }

    /// BEGIN (`counts` `None`) or END.
    pub fn transaction_value<'a>(
        status: &'static str,
        id: &'a str,
        counts: Option<(u64, &'a [(String, u64)])>,
        ts_ms: i64,
    ) -> Datum<'a> {
        let (count, collections) = match counts {
            None => (Datum::Null, Datum::Null),
            Some((total, collections)) => (
                Datum::Int64(total as i64),
                Datum::Array(
                    collections
                        .iter()
                        .map(|(name, n)| {
                            Datum::Struct(vec![Datum::str(name), Datum::Int64(*n as i64)])
                        })
                        .collect(),
                ),
            ),
        };
        Datum::Struct(vec![
            Datum::str(status),
            Datum::str(id),
            count,
            collections,
            Datum::Int64(ts_ms),
        ])
    }

    /// `io.debezium.connector.common.ServerNameKey` v1.
    pub fn heartbeat_key_schema() -> Schema {
        Schema::structure(
            "io.debezium.connector.common.ServerNameKey",
            false,
            vec![Schema::new(Type::String, false).field("serverName")],
        )
        .version(1)
    }

    pub fn heartbeat_key(server_name: &str) -> Datum<'_> {
        Datum::Struct(vec![Datum::str(server_name)])
    }

    /// `io.debezium.connector.common.Heartbeat` v1.
    pub fn heartbeat_value_schema() -> Schema {
        Schema::structure(
            "io.debezium.connector.common.Heartbeat",
            false,
            vec![Schema::new(Type::Int64, false).field("ts_ms")],
        )
        .version(1)
    }

    pub fn heartbeat_value(ts_ms: i64) -> Datum<'static> {
        Datum::Struct(vec![Datum::Int64(ts_ms)])
    }
}

pub use connect::transaction_block_datum;

#[cfg(test)]
mod tests {
    //! Expected texts are typed from the Debezium schema definitions named in the module docs
    //! (in reference section 3's key order) and from `/work/shared/reference/debezium-format.md`,
    //! never from this encoder's output.
    use super::*;
    use crate::encode::connect::{Datum, Schema};
    use crate::encode::json::{DebeziumJson, JsonOptions};
    use crate::event::{LogicalMessage, Lsn, SnapshotMarker, Source};

    fn opts() -> JsonOptions {
        JsonOptions {
            record: crate::encode::envelope::RecordOptions {
                topic_prefix: "pg".into(),
                database: "shop".into(),
                connector_version: "0.1.0-test".into(),
                unknown_types: crate::encode::columns::UnknownTypes::Skip,
            },
            schemas: true,
        }
    }

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).expect("utf-8")
    }

    // Reference section 2 / json.rs's golden source schema, as a struct member `source`.
    const GOLDEN_SOURCE_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,last,false,incremental"},"default":"false","field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":true,"field":"sequence"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},{"type":"int64","optional":true,"field":"txId"},{"type":"int64","optional":true,"field":"lsn"},{"type":"int64","optional":true,"field":"xmin"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"}"#;

    // SchemaFactory.transactionBlockSchema: optional struct `event.block` v1.
    const GOLDEN_TX_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"name":"event.block","version":1,"field":"transaction"}"#;

    /// PostgresSchemaFactory.logicalDecodingMessageMonitorKeySchema; payload as in
    /// LogicalDecodingMessageIT (`key.getString("prefix")`).
    #[test]
    fn message_key_layout() {
        assert_eq!(
            text(message_key("foo")),
            r#"{"schema":{"type":"struct","fields":[{"type":"string","optional":true,"field":"prefix"}],"optional":false,"name":"io.debezium.connector.postgresql.MessageKey","version":1},"payload":{"prefix":"foo"}}"#
        );
    }

    fn message(transactional: bool) -> LogicalMessage {
        LogicalMessage {
            transactional,
            prefix: "foo".into(),
            content: b"bar".to_vec(),
            source: Source {
                lsn: Lsn(24_023_200),
                last_commit_lsn: Some(Lsn(24_023_128)),
                tx_id: transactional.then_some(772),
                ts_us: 1_714_558_531_000_001,
                snapshot: SnapshotMarker::False,
            },
        }
    }

    fn golden_message_value(payload: &str) -> String {
        format!(
            r#"{{"schema":{{"type":"struct","fields":[{{"type":"string","optional":false,"field":"op"}},{{"type":"int64","optional":true,"field":"ts_ms"}},{GOLDEN_SOURCE_SCHEMA},{GOLDEN_TX_SCHEMA},{{"type":"struct","fields":[{{"type":"string","optional":true,"field":"prefix"}},{{"type":"bytes","optional":true,"field":"content"}}],"optional":false,"name":"io.debezium.connector.postgresql.Message","version":1,"field":"message"}}],"optional":false,"name":"io.debezium.connector.postgresql.MessageValue","version":1}},"payload":{payload}}}"#
        )
    }

    /// PostgresSchemaFactory.logicalDecodingMessageMonitorValueSchema; LogicalDecodingMessageIT
    /// `shouldConsumeNonTransactionalLogicalDecodingMessages` (txId null, schema and table "",
    /// transaction null, content `bar`, i.e. base64 `YmFy`).
    #[test]
    fn non_transactional_message_value() {
        let payload = r#"{"op":"m","ts_ms":1714558531500,"source":{"version":"0.1.0-test","connector":"postgresql","name":"pg","ts_ms":1714558531000,"snapshot":"false","db":"shop","sequence":"[\"24023128\",\"24023200\"]","ts_us":1714558531000001,"ts_ns":1714558531000001000,"schema":"","table":"","txId":null,"lsn":24023200,"xmin":null},"transaction":null,"message":{"prefix":"foo","content":"YmFy"}}"#;
        assert_eq!(
            text(message_value(
                &opts(),
                &message(false),
                None,
                1_714_558_531_500
            )),
            golden_message_value(payload)
        );
    }

    /// LogicalDecodingMessageIT
    /// `shouldConsumeTransactionalLogicalDecodingMessagesThatContainTransactionData`: txId set,
    /// a transaction block with total_order 1 and data_collection_order 1.
    #[test]
    fn transactional_message_value_with_block() {
        let payload = r#"{"op":"m","ts_ms":1714558531500,"source":{"version":"0.1.0-test","connector":"postgresql","name":"pg","ts_ms":1714558531000,"snapshot":"false","db":"shop","sequence":"[\"24023128\",\"24023200\"]","ts_us":1714558531000001,"ts_ns":1714558531000001000,"schema":"","table":"","txId":772,"lsn":24023200,"xmin":null},"transaction":{"id":"772","total_order":1,"data_collection_order":1},"message":{"prefix":"foo","content":"YmFy"}}"#;
        let block = TransactionBlock {
            id: "772",
            total_order: 1,
            data_collection_order: 1,
        };
        assert_eq!(
            text(message_value(
                &opts(),
                &message(true),
                Some(&block),
                1_714_558_531_500
            )),
            golden_message_value(payload)
        );
    }

    const GOLDEN_TX_VALUE_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"status"},{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":true,"field":"event_count"},{"type":"array","items":{"type":"struct","fields":[{"type":"string","optional":false,"field":"data_collection"},{"type":"int64","optional":false,"field":"event_count"}],"optional":true,"name":"event.collection","version":1},"optional":true,"field":"data_collections"},{"type":"int64","optional":false,"field":"ts_ms"}],"optional":false,"name":"io.debezium.connector.common.TransactionMetadataValue","version":1}"#;

    /// SchemaFactory.transactionKeySchema / transactionValueSchema; the payloads follow the
    /// BEGIN/END example of Debezium's PostgreSQL documentation (`event_count` and
    /// `data_collections` null on BEGIN; `s1.a` and `s2.a` one event each, as in
    /// TransactionMetadataIT), with the id as the connector's code writes it (module docs).
    #[test]
    fn transaction_records() {
        assert_eq!(
            text(transaction_key("571")),
            r#"{"schema":{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"}],"optional":false,"name":"io.debezium.connector.common.TransactionMetadataKey","version":1},"payload":{"id":"571"}}"#
        );
        assert_eq!(
            text(transaction_begin_value("571", 1_486_500_577_125)),
            format!(
                r#"{{"schema":{GOLDEN_TX_VALUE_SCHEMA},"payload":{{"status":"BEGIN","id":"571","event_count":null,"data_collections":null,"ts_ms":1486500577125}}}}"#
            )
        );
        assert_eq!(
            text(transaction_end_value(
                "571",
                2,
                &[("s1.a".into(), 1), ("s2.a".into(), 1)],
                1_486_500_577_691
            )),
            format!(
                r#"{{"schema":{GOLDEN_TX_VALUE_SCHEMA},"payload":{{"status":"END","id":"571","event_count":2,"data_collections":[{{"data_collection":"s1.a","event_count":1}},{{"data_collection":"s2.a","event_count":1}}],"ts_ms":1486500577691}}}}"#
            )
        );
    }

    /// SchemaFactory.heartbeatKeySchema / heartbeatValueSchema; values as in Debezium's
    /// `ExtractNewDocumentStateTest.shouldPassHeartbeatMessages` (serverName, ts_ms
    /// 1565787098802).
    #[test]
    fn heartbeat_records() {
        assert_eq!(
            text(heartbeat_key("op.with.heartbeat")),
            r#"{"schema":{"type":"struct","fields":[{"type":"string","optional":false,"field":"serverName"}],"optional":false,"name":"io.debezium.connector.common.ServerNameKey","version":1},"payload":{"serverName":"op.with.heartbeat"}}"#
        );
        assert_eq!(
            text(heartbeat_value(1_565_787_098_802)),
            r#"{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"ts_ms"}],"optional":false,"name":"io.debezium.connector.common.Heartbeat","version":1},"payload":{"ts_ms":1565787098802}}"#
        );
        assert_eq!(heartbeat_topic("pg"), "__debezium-heartbeat.pg");
        assert_eq!(message_topic("pg"), "pg.message");
        assert_eq!(transaction_topic("pg"), "pg.transaction");
    }

    // The record functions the tests call: the Connect forms rendered by the JSON encoder.
    fn render(schema: Schema, d: Datum<'_>) -> Vec<u8> {
        DebeziumJson::new(opts()).record(&schema, &d)
    }

    fn message_key(prefix: &str) -> Vec<u8> {
        render(connect::message_key_schema(), connect::message_key(prefix))
    }

    fn message_value(
        o: &JsonOptions,
        m: &LogicalMessage,
        tx: Option<&TransactionBlock<'_>>,
        now_ms: i64,
    ) -> Vec<u8> {
        render(
            connect::message_value_schema(),
            connect::message_value(&o.record, m, tx, now_ms),
        )
    }

    fn transaction_key(id: &str) -> Vec<u8> {
        render(
            connect::transaction_key_schema(),
            connect::transaction_key(id),
        )
    }

    fn transaction_begin_value(id: &str, ts_ms: i64) -> Vec<u8> {
        render(
            connect::transaction_value_schema(),
            connect::transaction_value("BEGIN", id, None, ts_ms),
        )
    }

    fn transaction_end_value(id: &str, n: u64, cols: &[(String, u64)], ts_ms: i64) -> Vec<u8> {
        render(
            connect::transaction_value_schema(),
            connect::transaction_value("END", id, Some((n, cols)), ts_ms),
        )
    }

    fn heartbeat_key(server: &str) -> Vec<u8> {
        render(
            connect::heartbeat_key_schema(),
            connect::heartbeat_key(server),
        )
    }

    fn heartbeat_value(ts_ms: i64) -> Vec<u8> {
        render(
            connect::heartbeat_value_schema(),
            connect::heartbeat_value(ts_ms),
        )
    }

    /// `format.schemas: false` writes these records' payloads alone too.
    #[test]
    fn payload_only_records() {
        let mut o = opts();
        o.schemas = false;
        let out = DebeziumJson::new(o).record(
            &connect::heartbeat_value_schema(),
            &connect::heartbeat_value(1_565_787_098_802),
        );
        assert_eq!(text(out), r#"{"ts_ms":1565787098802}"#);
    }

    /// The envelope's `transaction` block (reference section 2: `event.block` with `id`,
    /// `total_order`, `data_collection_order`) sits between `source` and `op`.
    #[test]
    fn envelope_carries_the_transaction_block() {
        use crate::encode::json::DebeziumJson;
        use crate::event::{ChangeEvent, Column, Op, ReplicaIdentity, TableSchema, Value};
        use std::sync::Arc;
        let table = Arc::new(TableSchema {
            oid: 1,
            schema: "s1".into(),
            name: "a".into(),
            columns: vec![Column {
                name: "pk".into(),
                type_oid: 23,
                type_modifier: -1,
                type_name: "int4".into(),
                base_type_oid: 23,
                nullable: false,
                is_key: true,
                default: None,
                enum_labels: vec![],
            }],
            replica_identity: ReplicaIdentity::Default,
        });
        let ev = ChangeEvent {
            op: Op::Create,
            table,
            before: None,
            after: Some(vec![Value::Int32(1)]),
            source: message(true).source,
            topic: None,
            headers: vec![],
        };
        let block = TransactionBlock {
            id: "772",
            total_order: 2,
            data_collection_order: 1,
        };
        let mut enc = DebeziumJson::new(opts());
        let with = text(
            enc.value_in_transaction(&ev, 1_714_558_531_500_000_000, Some(&block))
                .expect("encodes"),
        );
        assert!(
            with.contains(r#""xmin":null},"transaction":{"id":"772","total_order":2,"data_collection_order":1},"op":"c","#),
            "{with}"
        );
        let without = text(enc.value(&ev, 1_714_558_531_500_000_000).expect("encodes"));
        assert!(
            without.contains(r#""xmin":null},"transaction":null,"op":"c","#),
            "{without}"
        );
    }
}

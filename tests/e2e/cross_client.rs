//! Cross-client checks: walrelay's topics read by a different Kafka client library than ours
//! (kafka-python, pure Python, instead of librdkafka) and decoded by a different decoder (Python's
//! json; fastavro for Confluent-framed Avro, with writer schemas from the registry stand-in).
use std::collections::BTreeMap;
use std::time::Duration;

use apache_avro::types::Value as Avro;
use base64::Engine as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use walrelay::encode::registry::{
    key_subject, value_subject, wire_header, RegistrySettings, SchemaRegistry,
};

use crate::support::registry::TestSchemaRegistry;
use crate::support::{
    python_consume, relay_yaml, services, unique, Db, Record, Relay, TopicReader, WireFormat,
};

const WAIT: Duration = Duration::from_secs(90);

const TABLE_SQL: &str = r#"
CREATE TABLE products (
  id SERIAL PRIMARY KEY,
  name TEXT NOT NULL,
  description TEXT,
  weight FLOAT8,
  price NUMERIC(10,2),
  in_stock BOOLEAN NOT NULL DEFAULT true,
  photo BYTEA,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO products (name, description, weight, price, photo) VALUES
  ('scooter', 'Small 2-wheel scooter', 3.14, 19.99, '\xdeadbeef'),
  ('Schraubenschlüssel ✓', NULL, NULL, NULL, NULL),
  ('hammer', '12oz carpenter''s hammer', 0.75, 7.50, '\x00ff');
"#;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A record as both sides see it: key, value (null for a tombstone), headers (base64 values).
fn as_seen_by_rdkafka(r: &Record) -> Value {
    json!({
        "key": r.key.as_deref().map(|k| serde_json::from_slice::<Value>(k).expect("JSON key")),
        "value": r.value_json(),
        "headers": r.headers.iter().map(|(k, v)| json!([k, b64(v)])).collect::<Vec<_>>(),
    })
}

fn as_seen_by_python(line: &Value) -> Value {
    json!({"key": line["key"], "value": line["value"], "headers": line["headers"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_kafka_client_reads_the_same_events_as_rdkafka() {
    let s = services();
    let db = Db::create("crossclient").await;
    db.exec(TABLE_SQL).await;
    let slot = unique("crossclient");
    let prefix = unique("cross");
    let topic = format!("{prefix}.public.products");
    let yaml = relay_yaml(
        &db,
        &slot,
        &["public.products"],
        &prefix,
        &s.brokers,
        "    topics:\n      partitions: 3\n",
        "",
    );
    let mut relay = Relay::start(&slot, &yaml);
    let mut reader = TopicReader::new(&s.brokers, &topic);
    tokio::task::block_in_place(|| {
        reader.read_until(WAIT, "3 snapshot rows", |r| r.len() >= 3);
    });
    relay.assert_running();

    // Streaming: an insert, an update, a delete (event plus tombstone): 7 records in all.
    db.exec(
        "INSERT INTO products (name, weight, price, photo) VALUES ('drill', 1.5, 120.00, '\\x0102');
         UPDATE products SET weight = 0.8, in_stock = false WHERE name = 'hammer';
         DELETE FROM products WHERE name = 'scooter';",
    )
    .await;
    let ours: Vec<Record> = tokio::task::block_in_place(|| {
        reader
            .read_until(WAIT, "7 records", |r| r.len() >= 7)
            .to_vec()
    });
    let theirs = tokio::task::block_in_place(|| {
        python_consume(&s.brokers, &[&topic], &WireFormat::Json, 7, WAIT)
    });
    assert_eq!(ours.len(), 7, "rdkafka read exactly the 7 records");
    assert_eq!(theirs.len(), 7, "kafka-python read exactly the 7 records");

    // Message by message, by (partition, offset): identical keys, values and headers.
    let ours: BTreeMap<(i64, i64), Value> = ours
        .iter()
        .map(|r| ((i64::from(r.partition), r.offset), as_seen_by_rdkafka(r)))
        .collect();
    let theirs: BTreeMap<(i64, i64), Value> = theirs
        .iter()
        .map(|l| {
            assert_eq!(l["topic"], topic.as_str());
            let at = (
                l["partition"].as_i64().expect("partition"),
                l["offset"].as_i64().expect("offset"),
            );
            (at, as_seen_by_python(l))
        })
        .collect();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "the same positions"
    );
    for (at, mine) in &ours {
        assert_eq!(mine, &theirs[at], "record at (partition, offset) {at:?}");
    }

    // And the content is what the table went through, tombstone included.
    let mut ops: Vec<(String, Value)> = Vec::new();
    let mut tombstones = Vec::new();
    for record in ours.values() {
        let id = record["key"]["payload"]["id"].clone();
        match record["value"].get("payload") {
            Some(p) => ops.push((p["op"].as_str().expect("op").to_string(), id)),
            None => {
                assert_eq!(record["value"], Value::Null);
                tombstones.push(id);
            }
        }
    }
    ops.sort_by_key(|(op, id)| (id.as_i64(), op.clone()));
    assert_eq!(
        ops,
        [
            ("d".to_string(), json!(1)),
            ("r".to_string(), json!(1)),
            ("r".to_string(), json!(2)),
            ("r".to_string(), json!(3)),
            ("u".to_string(), json!(3)),
            ("c".to_string(), json!(4)),
        ]
    );
    assert_eq!(tombstones, [json!(1)], "the deleted scooter's tombstone");
    let unicode = ours
        .values()
        .find(|r| r["key"]["payload"]["id"] == 2)
        .expect("row 2");
    assert_eq!(
        unicode["value"]["payload"]["after"]["name"],
        "Schraubenschlüssel ✓"
    );
    relay.assert_running();
}

/// consume.py's Avro path against the registry stand-in, reached from another process: records
/// framed as Confluent's serializer frames them (magic byte, big-endian schema id, Avro binary),
/// with ids from walrelay's registry client, decoded by fastavro.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_consumer_decodes_confluent_avro_with_the_registry() {
    let s = services();
    let server = TestSchemaRegistry::start();
    let topic = unique("avro_cross");
    let key_schema = json!({"type": "record", "name": "Key", "namespace": "t", "fields": [
        {"name": "id", "type": "long"}
    ]});
    let value_schema = json!({"type": "record", "name": "Value", "namespace": "t", "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": "string"},
        {"name": "weight", "type": ["null", "double"], "default": null},
        {"name": "photo", "type": "bytes"},
        {"name": "in_stock", "type": "boolean"}
    ]});
    let registry = SchemaRegistry::new(RegistrySettings::new(vec![server.url()])).expect("client");
    let key_id = registry
        .id_for(&key_subject(&topic), &key_schema.to_string())
        .await
        .expect("key schema");
    let value_id = registry
        .id_for(&value_subject(&topic), &value_schema.to_string())
        .await
        .expect("value schema");
    assert_ne!(key_id, value_id);

    let key_avro = apache_avro::Schema::parse(&key_schema).expect("key schema");
    let value_avro = apache_avro::Schema::parse(&value_schema).expect("value schema");
    let framed = |id: u32, schema: &apache_avro::Schema, v: Avro| {
        let mut bytes = wire_header(id).to_vec();
        bytes.extend(apache_avro::to_avro_datum(schema, v).expect("encode"));
        bytes
    };
    let key = |id: i64| {
        framed(
            key_id,
            &key_avro,
            Avro::Record(vec![("id".into(), Avro::Long(id))]),
        )
    };
    let value = |id: i64, name: &str, weight: Option<f64>, photo: &[u8], in_stock: bool| {
        framed(
            value_id,
            &value_avro,
            Avro::Record(vec![
                ("id".into(), Avro::Long(id)),
                ("name".into(), Avro::String(name.into())),
                (
                    "weight".into(),
                    match weight {
                        Some(w) => Avro::Union(1, Box::new(Avro::Double(w))),
                        None => Avro::Union(0, Box::new(Avro::Null)),
                    },
                ),
                ("photo".into(), Avro::Bytes(photo.to_vec())),
                ("in_stock".into(), Avro::Boolean(in_stock)),
            ]),
        )
    };
    let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = vec![
        (
            key(1),
            Some(value(1, "scooter", Some(2.5), &[0xde, 0xad], true)),
        ),
        (key(2), Some(value(2, "Schlüssel", None, &[], false))),
        (key(1), None),
    ];

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .create()
        .expect("admin");
    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .create()
        .expect("producer");
    for (k, v) in &records {
        let mut record = FutureRecord::<Vec<u8>, Vec<u8>>::to(&topic).key(k);
        if let Some(v) = v {
            record = record.payload(v);
        }
        producer
            .send(record, Duration::from_secs(30))
            .await
            .expect("delivered");
    }

    let lines = tokio::task::block_in_place(|| {
        python_consume(
            &s.brokers,
            &[&topic],
            &WireFormat::Avro {
                registry: server.url(),
            },
            3,
            WAIT,
        )
    });
    let decoded: Vec<Value> = lines
        .iter()
        .map(|l| json!([l["offset"], l["key"], l["value"]]))
        .collect();
    assert_eq!(
        decoded,
        [
            json!([0, {"id": 1}, {"id": 1, "name": "scooter", "weight": 2.5, "photo": b64(&[0xde, 0xad]), "in_stock": true}]),
            json!([1, {"id": 2}, {"id": 2, "name": "Schlüssel", "weight": null, "photo": "", "in_stock": false}]),
            json!([2, {"id": 1}, null]),
        ]
    );
    // The writer schemas were fetched by id, once each, from the other process.
    assert_eq!(server.count("GET", &format!("/schemas/ids/{key_id}")), 1);
    assert_eq!(server.count("GET", &format!("/schemas/ids/{value_id}")), 1);
}

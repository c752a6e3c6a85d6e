//! `format.type: avro`: the relay writes Confluent-framed Avro with schemas registered in a
//! Schema Registry (the test stand-in); a second client (Python, fastavro) decodes it with the
//! registered writer schemas. Expected values are typed from the reference (sections 1, 4, 6).
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::registry::TestSchemaRegistry;
use crate::support::{
    python_consume, relay_yaml, services, unique, wait_until, Db, Relay, WireFormat,
};

const WAIT: Duration = Duration::from_secs(90);

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn avro_format(registry: &TestSchemaRegistry) -> String {
    format!(
        "format:\n  type: avro\n  avro:\n    schema_registry:\n      urls: [{}]\n",
        registry.url()
    )
}

const TABLE_SQL: &str = "
CREATE TABLE items (
    id int4 PRIMARY KEY,
    small int2 NOT NULL,
    price numeric(10,2),
    amount numeric,
    name text,
    uid uuid,
    at timestamptz,
    day date,
    data bytea,
    tags text[],
    loc point
);
ALTER TABLE items REPLICA IDENTITY FULL;
INSERT INTO items VALUES (1, 3, 1234.56, 12.345, 'drill', '3f1c9a52-7b8e-4d2a-9c61-0e5b2f7a4d10',
    '2016-11-04 12:34:56.789+00', '2016-11-04', '\\x0102', '{a,b}', '(1.5,-2)');
INSERT INTO items (id, small) VALUES (2, -1);
";

/// WKB of POINT(x y), little-endian (Debezium's `io.debezium.data.geometry.Point.wkb`).
fn wkb(x: f64, y: f64) -> String {
    let mut b = vec![1, 1, 0, 0, 0];
    b.extend_from_slice(&x.to_le_bytes());
    b.extend_from_slice(&y.to_le_bytes());
    b64(&b)
}

fn row_one(name: &str) -> Value {
    json!({
        "id": 1,
        "small": 3,
        // numeric(10,2) → Decimal logical type (bytes "AeJA", reference section 4).
        "price": "1234.56",
        // numeric → VariableScaleDecimal {scale 3, unscaled 12345 = 0x3039}.
        "amount": {"scale": 3, "value": b64(&[0x30, 0x39])},
        "name": name,
        "uid": "3f1c9a52-7b8e-4d2a-9c61-0e5b2f7a4d10",
        "at": "2016-11-04T12:34:56.789000Z",
        // io.debezium.time.Date stays a plain int: days since the epoch.
        "day": 17109,
        "data": b64(&[1, 2]),
        "tags": ["a", "b"],
        "loc": {"x": 1.5, "y": -2.0, "wkb": wkb(1.5, -2.0), "srid": null},
    })
}

fn row_two() -> Value {
    json!({
        "id": 2, "small": -1, "price": null, "amount": null, "name": null, "uid": null,
        "at": null, "day": null, "data": null, "tags": null, "loc": null,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_writes_confluent_avro_that_python_decodes() {
    let s = services();
    let registry = TestSchemaRegistry::start();
    let db = Db::create("avro").await;
    db.exec(TABLE_SQL).await;
    let slot = unique("avro");
    let prefix = unique("av");
    let topic = format!("{prefix}.public.items");
    let yaml = relay_yaml(
        &db,
        &slot,
        &["public.items"],
        &prefix,
        &s.brokers,
        "",
        &avro_format(&registry),
    );
    let mut relay = Relay::start(&slot, &yaml);
    let format = WireFormat::Avro {
        registry: registry.url(),
    };
    let snapshot =
        tokio::task::block_in_place(|| python_consume(&s.brokers, &[&topic], &format, 2, WAIT));
    assert_eq!(snapshot.len(), 2);
    relay.assert_running();
    db.exec("UPDATE items SET name = 'hammer' WHERE id = 1; DELETE FROM items WHERE id = 2;")
        .await;
    let lines =
        tokio::task::block_in_place(|| python_consume(&s.brokers, &[&topic], &format, 5, WAIT));
    relay.assert_running();
    let by_id = |lines: &[Value], id: i64, op: &str| -> Value {
        lines
            .iter()
            .find(|l| l["key"]["id"] == id && l["value"]["op"] == op)
            .unwrap_or_else(|| panic!("no {op} record of id {id} in {lines:#?}"))["value"]
            .clone()
    };
    let r1 = by_id(&lines, 1, "r");
    assert_eq!(r1["before"], Value::Null);
    assert_eq!(r1["after"], row_one("drill"));
    assert_eq!(r1["source"]["table"], "items");
    assert!(
        ["first", "last"].contains(&r1["source"]["snapshot"].as_str().expect("snapshot")),
        "{r1}"
    );
    assert_eq!(r1["transaction"], Value::Null);
    assert_eq!(by_id(&lines, 2, "r")["after"], row_two());
    let u = by_id(&lines, 1, "u");
    assert_eq!(u["before"], row_one("drill"));
    assert_eq!(u["after"], row_one("hammer"));
    let d = by_id(&lines, 2, "d");
    assert_eq!(d["before"], row_two());
    assert_eq!(d["after"], Value::Null);
    // The tombstone stays a Kafka null.
    let last = lines.last().expect("records");
    assert_eq!(last["key"], json!({"id": 2}));
    assert_eq!(last["value"], Value::Null);

    // Subjects <topic>-key / <topic>-value, with namespace/name split (reference section 6).
    let mut subjects = registry.subjects();
    subjects.sort();
    assert_eq!(
        subjects,
        vec![format!("{topic}-key"), format!("{topic}-value")]
    );
    for (subject, name) in [("key", "Key"), ("value", "Envelope")] {
        let (status, latest) = registry.call(
            "GET",
            &format!("/subjects/{topic}-{subject}/versions/latest"),
            None,
        );
        assert_eq!(status, 200, "{latest}");
        let schema: Value =
            serde_json::from_str(latest["schema"].as_str().expect("schema text")).expect("json");
        assert_eq!(schema["name"], name);
        assert_eq!(schema["namespace"], format!("{prefix}.public.items"));
        assert_eq!(
            schema["connect.name"],
            format!("{prefix}.public.items.{name}")
        );
    }
    relay.stop();
}

/// A table change that the subject's BACKWARD level refuses stops the relay with the
/// registry's 409 message and the subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incompatible_schema_change_stops_the_relay() {
    let s = services();
    let registry = TestSchemaRegistry::start();
    let db = Db::create("avroincompat").await;
    db.exec("CREATE TABLE t (id int4 PRIMARY KEY, name text); INSERT INTO t VALUES (1, 'a');")
        .await;
    let slot = unique("avroincompat");
    let prefix = unique("avi");
    let topic = format!("{prefix}.public.t");
    let yaml = relay_yaml(
        &db,
        &slot,
        &["public.t"],
        &prefix,
        &s.brokers,
        "",
        &avro_format(&registry),
    );
    let mut relay = Relay::start(&slot, &yaml);
    let format = WireFormat::Avro {
        registry: registry.url(),
    };
    let first =
        tokio::task::block_in_place(|| python_consume(&s.brokers, &[&topic], &format, 1, WAIT));
    assert_eq!(first[0]["value"]["after"], json!({"id": 1, "name": "a"}));
    // string → int: a reader with the new schema cannot read the old data.
    db.exec(
        "ALTER TABLE t ALTER COLUMN name TYPE int4 USING length(name);
         INSERT INTO t VALUES (2, 7);",
    )
    .await;
    let subject = format!("{topic}-value");
    let log = wait_until(WAIT, "the relay to stop on the incompatible schema", || {
        let log = relay.log_text();
        async move { log.contains("HTTP 409").then_some(log) }
    })
    .await;
    assert!(log.contains(&format!("subject `{subject}`")), "{log}");
    assert!(log.contains("The registry says:"), "{log}");
    assert!(
        log.contains("encoding the value of the c event of public.t"),
        "{log}"
    );
    let status = wait_until(WAIT, "the relay to exit", || {
        let exited = relay.child.try_wait().ok().flatten();
        async move { exited }
    })
    .await;
    assert!(!status.success(), "a fatal error exits non-zero");
}

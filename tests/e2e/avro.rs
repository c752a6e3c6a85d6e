//! `format.type: avro`: the relay writes Confluent-framed Avro with schemas registered in a
//! Schema Registry (the test stand-in); a second client (Python, fastavro) decodes it with the
//! registered writer schemas. Expected values are typed from the reference (sections 1, 4, 6).
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::registry::{TestAuth, TestSchemaRegistry};
use crate::support::{
    python_consume, python_consume_with, relay_yaml, services, unique, wait_until, Db, Relay,
    WireFormat,
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
    // Two rows read in table order: the first is "first", the other "last" (reference
    // section 2).
    assert_eq!(r1["source"]["snapshot"], "first", "{r1}");
    assert_eq!(by_id(&lines, 2, "r")["source"]["snapshot"], "last");
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
        let schema = registry.latest_schema(&format!("{topic}-{subject}"));
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

/// Through a registry that demands basic authentication (the password interpolated from the
/// environment), with a column whose name Avro refuses. Without `sanitize_names`
/// the relay stops and names the offending name; with it, every record kind — snapshot and
/// streamed rows, a logical decoding message, transaction BEGIN/END and heartbeats — arrives as
/// Confluent Avro that a second client (kafka-python, fastavro) decodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticated_registry_sanitized_names_and_every_record_kind() {
    let s = services();
    let registry = TestSchemaRegistry::start_with(TestAuth::Basic {
        username: "relay".into(),
        password: "s3cret".into(),
    });
    let db = Db::create("avro").await;
    db.exec(
        r#"CREATE TABLE order_lines (id int4 PRIMARY KEY, "unit-price" numeric(10,2));
           INSERT INTO order_lines VALUES (1, 9.99);"#,
    )
    .await;
    let prefix = unique("av");
    let config = |sanitize: bool| {
        format!(
            "format:\n  type: avro\n  avro:\n    schema_registry:\n      urls: [{}]\n      \
             basic_auth: {{username: relay, password: \"${{REGISTRY_PASSWORD}}\"}}\n    \
             sanitize_names: {sanitize}\ntransaction_metadata: true\nheartbeat_interval_ms: 200\n",
            registry.url()
        )
    };
    let env = [("REGISTRY_PASSWORD", "s3cret")];

    let start = |sanitize: bool| {
        let slot = unique("avro");
        let yaml = relay_yaml(
            &db,
            &slot,
            &["public.order_lines"],
            &prefix,
            &s.brokers,
            "",
            &config(sanitize),
        );
        Relay::start_with_env(&slot, &yaml, &env)
    };
    let mut refused = start(false);
    let log = tokio::task::block_in_place(|| refused.failure_log(WAIT));
    assert!(
        log.contains("is not a valid Avro name") && log.contains("sanitize_names"),
        "the error names the problem and the fix: {log}"
    );

    let mut relay = start(true);
    let topic = format!("{prefix}.public.order_lines");
    let avro = WireFormat::Avro {
        registry: registry.url(),
    };
    let auth = ["--basic-auth", "relay:s3cret"];
    let consume = |topic: &str, n: usize| {
        tokio::task::block_in_place(|| {
            python_consume_with(&s.brokers, &[topic], &avro, &auth, n, WAIT)
        })
    };
    let snap = consume(&topic, 1);
    assert_eq!(snap[0]["key"], json!({"id": 1}));
    assert_eq!(
        snap[0]["value"]["after"],
        json!({"id": 1, "unit_price": "9.99"}),
        "the column under its sanitized name"
    );
    relay.assert_running();
    db.exec(
        r#"BEGIN; INSERT INTO order_lines VALUES (2, 0.5);
           SELECT pg_logical_emit_message(true, 'audit', 'who=ann'); COMMIT;"#,
    )
    .await;

    let rows = consume(&topic, 2);
    let insert = &rows[1]["value"];
    assert_eq!(insert["op"], "c");
    assert_eq!(insert["after"], json!({"id": 2, "unit_price": "0.50"}));
    assert_eq!(insert["source"]["table"], "order_lines");
    let tx_id = insert["transaction"]["id"]
        .as_str()
        .expect("the transaction block")
        .to_string();
    assert_eq!(tx_id, insert["source"]["txId"].to_string());
    assert_eq!(
        (
            &insert["transaction"]["total_order"],
            &insert["transaction"]["data_collection_order"]
        ),
        (&json!(1), &json!(1))
    );

    let message = consume(&format!("{prefix}.message"), 1);
    assert_eq!(message[0]["key"], json!({"prefix": "audit"}));
    let m = &message[0]["value"];
    assert_eq!(m["op"], "m");
    assert_eq!(
        m["message"],
        json!({"prefix": "audit", "content": b64(b"who=ann")})
    );
    assert_eq!(m["transaction"]["id"], tx_id.as_str());

    let tx = consume(&format!("{prefix}.transaction"), 2);
    let (begin, end) = (&tx[0]["value"], &tx[1]["value"]);
    assert_eq!(tx[0]["key"], json!({"id": tx_id}));
    assert_eq!(
        (&begin["status"], &begin["id"]),
        (&json!("BEGIN"), &json!(tx_id))
    );
    assert_eq!(begin["event_count"], Value::Null);
    assert_eq!((&end["status"], &end["id"]), (&json!("END"), &json!(tx_id)));
    assert_eq!(end["event_count"], 2, "the row and the message");
    assert_eq!(
        end["data_collections"],
        json!([
            {"data_collection": "public.order_lines", "event_count": 1},
            {"data_collection": "LOGICAL_DECODING_MESSAGE", "event_count": 1},
        ])
    );

    let heartbeat = consume(&format!("__debezium-heartbeat.{prefix}"), 1);
    assert_eq!(heartbeat[0]["key"], json!({"serverName": prefix}));
    assert!(
        heartbeat[0]["value"]["ts_ms"]
            .as_i64()
            .is_some_and(|t| t > 1_600_000_000_000),
        "{}",
        heartbeat[0]
    );

    // Every subject was registered through the authenticated API; the field name is sanitized.
    let schema = registry.latest_schema(&format!("{topic}-value"));
    assert_eq!(schema["namespace"], format!("{prefix}.public.order_lines"));
    let value_fields: Vec<&str> = schema["fields"][0]["type"][1]["fields"]
        .as_array()
        .expect("Value fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(value_fields, ["id", "unit_price"]);
    let (status, _) = registry.call_with_authorization(
        "GET",
        &format!("/subjects/{topic}-value/versions"),
        None,
        None,
    );
    assert_eq!(status, 401, "the stand-in does demand authentication");
    relay.stop();
}

//! The Debezium cookbook, end to end: `inventory.products`, initial snapshot, streaming updates,
//! `REPLICA IDENTITY FULL`, deletes with tombstones, confirmation of positions, clean restart.
//! Expected values follow ../shared/reference/debezium-format.md (sections 1, 2 and 8).
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::murmur2::java_partition;
use crate::support::{relay_yaml, services, unique, wait_until, Db, Record, Relay, TopicReader};

const COOKBOOK_SQL: &str = r#"
CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
CREATE TABLE products (
  id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
  name TEXT NOT NULL,
  weight FLOAT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO products (name, weight) VALUES
  ('scooter', 3.14), ('car battery', 8.1), ('12-pack drill bits', 0.8), ('hammer', 0.75);
"#;

const WAIT: Duration = Duration::from_secs(90);

fn op(r: &Record) -> String {
    r.payload()["op"].as_str().unwrap_or_default().to_string()
}

/// The `after` struct's field schemas for the cookbook table (reference §4 and §8: uuid and
/// timestamptz semantic types; function defaults become the type's zero value).
fn expected_row_fields() -> Value {
    json!([
        {"type":"string","optional":false,"name":"io.debezium.data.Uuid","version":1,"default":"00000000-0000-0000-0000-000000000000","field":"id"},
        {"type":"string","optional":false,"field":"name"},
        {"type":"double","optional":false,"field":"weight"},
        {"type":"string","optional":false,"name":"io.debezium.time.ZonedTimestamp","version":1,"default":"1970-01-01T00:00:00.000000Z","field":"created_at"}
    ])
}

fn is_zoned_timestamp_micros(s: &str) -> bool {
    // 2024-05-01T10:15:30.123456Z
    s.len() == 27
        && s.as_bytes()[10] == b'T'
        && s.ends_with('Z')
        && s.as_bytes()[19] == b'.'
        && s[20..26].bytes().all(|b| b.is_ascii_digit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::approx_constant)] // 3.14 is the cookbook's scooter weight, not π
async fn cookbook_snapshot_streaming_replica_identity_full_and_restart() {
    let s = services();
    let db = Db::create("inventory").await;
    db.exec(COOKBOOK_SQL).await;
    let slot = unique("cookbook");
    let prefix = unique("inventory");
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

    // 1. The snapshot: four `r` events with Debezium's markers, exact keys and schemas.
    let snapshot: Vec<Record> = tokio::task::block_in_place(|| {
        reader
            .read_until(WAIT, "4 snapshot rows", |r| r.len() >= 4)
            .to_vec()
    });
    assert_eq!(snapshot.len(), 4, "exactly the four cookbook rows");
    assert_eq!(
        reader.partitions(),
        3,
        "topic created with the configured partitions"
    );
    let mut by_name = std::collections::BTreeMap::new();
    let mut markers = Vec::new();
    for r in &snapshot {
        let value = r.value_json().expect("snapshot rows are not tombstones");
        let p = &value["payload"];
        assert_eq!(p["op"], "r");
        assert_eq!(p["before"], Value::Null);
        let src = &p["source"];
        assert_eq!(src["connector"], "postgresql");
        assert_eq!(src["name"], prefix.as_str());
        assert_eq!(src["db"], db.name.as_str());
        assert_eq!(src["schema"], "public");
        assert_eq!(src["table"], "products");
        assert!(
            src["lsn"].as_i64().is_some_and(|l| l > 0),
            "snapshot lsn: {src}"
        );
        assert!(src["txId"].as_i64().is_some(), "snapshot txId: {src}");
        markers.push(src["snapshot"].as_str().expect("marker").to_string());
        let after = &p["after"];
        assert!(
            is_zoned_timestamp_micros(after["created_at"].as_str().expect("created_at")),
            "{after}"
        );
        // Key: exactly the reference's key layout (§1, §8), and the same id as the row.
        let key = r.key_json();
        assert_eq!(
            key["schema"],
            json!({"type":"struct","fields":[{"type":"string","optional":false,"name":"io.debezium.data.Uuid","version":1,"default":"00000000-0000-0000-0000-000000000000","field":"id"}],"optional":false,"name":format!("{prefix}.public.products.Key")})
        );
        assert_eq!(key["payload"]["id"], after["id"]);
        // Value schema: envelope v2 with before/after/source/transaction/op/ts_* in order.
        let schema = &value["schema"];
        assert_eq!(schema["name"], format!("{prefix}.public.products.Envelope"));
        assert_eq!(schema["version"], 2);
        assert_eq!(schema["optional"], false);
        let names: Vec<&str> = schema["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .map(|f| f["field"].as_str().expect("field"))
            .collect();
        assert_eq!(
            names,
            [
                "before",
                "after",
                "source",
                "transaction",
                "op",
                "ts_ms",
                "ts_us",
                "ts_ns"
            ]
        );
        let after_schema = &schema["fields"][1];
        assert_eq!(
            after_schema["name"],
            format!("{prefix}.public.products.Value")
        );
        assert_eq!(after_schema["optional"], true);
        assert_eq!(after_schema["fields"], expected_row_fields());
        // Partitioned as the Java client would (murmur2 over the serialized key).
        assert_eq!(
            r.partition,
            java_partition(r.key.as_deref().expect("key"), 3),
            "partition of key {key}"
        );
        by_name.insert(
            after["name"].as_str().expect("name").to_string(),
            after["weight"].as_f64().expect("weight"),
        );
    }
    let expected: std::collections::BTreeMap<String, f64> = [
        ("scooter", 3.14),
        ("car battery", 8.1),
        ("12-pack drill bits", 0.8),
        ("hammer", 0.75),
    ]
    .into_iter()
    .map(|(n, w)| (n.to_string(), w))
    .collect();
    assert_eq!(by_name, expected);
    markers.sort();
    assert_eq!(
        markers,
        ["first", "last", "true", "true"],
        "snapshot markers (reference §2)"
    );

    // 2. Streaming with REPLICA IDENTITY DEFAULT: `u` without `before`.
    db.exec("UPDATE products SET weight = 0.5 WHERE name = 'hammer'")
        .await;
    let recs = tokio::task::block_in_place(|| {
        reader
            .read_until(WAIT, "the update", |r| r.len() >= 5)
            .to_vec()
    });
    let upd = &recs[4];
    let p = upd.payload();
    assert_eq!(p["op"], "u");
    assert_eq!(
        p["before"],
        Value::Null,
        "DEFAULT identity: no before on an update that keeps the key"
    );
    assert_eq!(p["after"]["name"], "hammer");
    assert_eq!(p["after"]["weight"], 0.5);
    assert_eq!(p["source"]["snapshot"], "false");
    let txid = p["source"]["txId"].as_i64().expect("txId");
    assert!(txid > 0);
    let lsn = p["source"]["lsn"].as_i64().expect("lsn");
    let seq: Vec<Option<String>> = serde_json::from_str(
        p["source"]["sequence"]
            .as_str()
            .expect("sequence is a string"),
    )
    .expect("sequence is a JSON array");
    assert_eq!(seq.len(), 2);
    assert_eq!(
        seq[1].as_deref(),
        Some(lsn.to_string().as_str()),
        "sequence ends with this event's lsn"
    );
    let hammer_key = upd.key.clone();

    // 3. REPLICA IDENTITY FULL: `before` carries the whole old row.
    db.exec("ALTER TABLE products REPLICA IDENTITY FULL; UPDATE products SET weight = 0.25 WHERE name = 'hammer'").await;
    let recs = tokio::task::block_in_place(|| {
        reader
            .read_until(WAIT, "the FULL update", |r| r.len() >= 6)
            .to_vec()
    });
    let p = recs[5].payload();
    assert_eq!(p["op"], "u");
    assert_eq!(p["before"]["name"], "hammer");
    assert_eq!(p["before"]["weight"], 0.5);
    assert_eq!(p["after"]["weight"], 0.25);
    assert_eq!(p["before"]["id"], p["after"]["id"]);
    assert_eq!(recs[5].key, hammer_key, "same key, same partition");
    assert_eq!(recs[5].partition, recs[4].partition);

    // 4. Delete: `d` with the full old row, then a tombstone with the same key.
    db.exec("DELETE FROM products WHERE name = 'hammer'").await;
    let recs = tokio::task::block_in_place(|| {
        reader
            .read_until(WAIT, "delete and tombstone", |r| r.len() >= 8)
            .to_vec()
    });
    let del = &recs[6];
    assert_eq!(op(del), "d");
    assert_eq!(del.payload()["before"]["weight"], 0.25);
    assert_eq!(del.payload()["after"], Value::Null);
    let del_lsn = del.payload()["source"]["lsn"].as_i64().expect("lsn");
    assert_eq!(recs[7].value, None, "tombstone after delete");
    assert_eq!(recs[7].key, hammer_key);

    // 5. The slot is confirmed past the delete once the broker acknowledged it.
    let confirmed = wait_until(WAIT, "confirmed_flush_lsn past the delete", || async {
        let text = db.confirmed_flush(&slot).await?;
        let lsn = walrelay::event::Lsn::parse(&text)?;
        (lsn.0 as i64 > del_lsn).then_some(lsn)
    })
    .await;
    assert!(confirmed.0 > 0);

    // 6. A clean stop, then a restart: no second snapshot, streaming resumes.
    let status = relay.stop();
    assert!(
        status.success(),
        "clean exit on SIGTERM: {status}; log:\n{}",
        relay.log_text()
    );
    db.exec("INSERT INTO products (name, weight) VALUES ('wrench', 1.25)")
        .await;
    relay.restart();
    let recs = tokio::task::block_in_place(|| {
        reader
            .read_until(WAIT, "the insert after restart", |r| {
                r.iter().any(|r| r.value.is_some() && op(r) == "c")
            })
            .to_vec()
    });
    let tail = &recs[8..];
    assert!(
        tail.iter().all(|r| r.value.is_none() || op(r) != "r"),
        "no second snapshot after a clean restart: {tail:?}"
    );
    let ins = tail
        .iter()
        .find(|r| r.value.is_some() && op(r) == "c")
        .expect("insert");
    assert_eq!(ins.payload()["after"]["name"], "wrench");
    assert_eq!(ins.payload()["after"]["weight"], 1.25);
    relay.assert_running();

    // 7. `walrelay tail` prints the same records, verbatim, one JSON line each.
    let out = std::process::Command::new(crate::support::relay_binary())
        .args([
            "tail",
            "--brokers",
            &s.brokers,
            "--topic",
            &topic,
            "--idle-secs",
            "2",
        ])
        .output()
        .expect("walrelay tail");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tailed: std::collections::HashMap<(i64, i64), Value> = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .map(|l| {
            (
                (
                    l["partition"].as_i64().expect("partition"),
                    l["offset"].as_i64().expect("offset"),
                ),
                l["value"].clone(),
            )
        })
        .collect();
    assert!(
        tailed.len() >= recs.len(),
        "tail printed {} records, the reader saw {}",
        tailed.len(),
        recs.len()
    );
    for r in &recs {
        let printed = &tailed[&(i64::from(r.partition), r.offset)];
        assert!(
            *printed == r.value_json().unwrap_or(Value::Null),
            "tail differs at partition {} offset {}",
            r.partition,
            r.offset
        );
    }
}

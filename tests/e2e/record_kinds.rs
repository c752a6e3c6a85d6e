//! Every kind of record Debezium's PostgreSQL connector writes, end to end against the real
//! PostgreSQL and broker: primary-key changes, tombstones off, truncates (off by default, on with
//! `truncate_events`), logical decoding messages (transactional and not), transaction metadata
//! (`transaction_metadata`) and heartbeats (`heartbeat_interval_ms`). Expectations follow
//! ../shared/reference/debezium-format.md (sections 1 and 2) and the Debezium tests named per
//! test.
use std::time::Duration;

use serde_json::{json, Value};
use walrelay::event::Lsn;

use crate::support::{
    component, relay_yaml, services, sha256, unique, wait_until, Db, Record, Relay, TopicReader,
};

const WAIT: Duration = Duration::from_secs(90);

/// Starts the relay on `tables` with `extra` top-level YAML (and `plugins` YAML replacing the
/// empty chain when given), and waits until its slot exists: changes from then on are streamed.
/// Returns the relay, the topic prefix and the slot.
async fn start(
    db: &Db,
    tables: &[&str],
    extra: &str,
    plugins: Option<&str>,
) -> (Relay, String, String) {
    let s = services();
    let slot = unique("kinds");
    let prefix = unique("kinds");
    let mut yaml = relay_yaml(db, &slot, tables, &prefix, &s.brokers, "", extra);
    if let Some(p) = plugins {
        yaml = yaml.replace("plugins: []\n", p);
    }
    let mut relay = Relay::start(&slot, &yaml);
    let started = std::time::Instant::now();
    while db.confirmed_flush(&slot).await.is_none() {
        relay.assert_running();
        assert!(
            started.elapsed() < WAIT,
            "the relay did not create its slot: {}",
            relay.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (relay, prefix, slot)
}

/// Reads `topic` until `n` records are there.
fn read(topic: &str, what: &str, n: usize) -> Vec<Record> {
    let mut reader = TopicReader::new(&services().brokers, topic);
    tokio::task::block_in_place(|| reader.read_until(WAIT, what, |r| r.len() >= n).to_vec())
}

/// Reads `topic` until a record satisfies `last`; returns everything read.
fn read_through(topic: &str, what: &str, last: impl Fn(&Record) -> bool) -> Vec<Record> {
    let mut reader = TopicReader::new(&services().brokers, topic);
    tokio::task::block_in_place(|| {
        reader
            .read_until(WAIT, what, |r| r.iter().any(&last))
            .to_vec()
    })
}

fn op(r: &Record) -> Option<String> {
    r.value_json()
        .map(|v| v["payload"]["op"].as_str().unwrap_or_default().to_string())
}

fn key_payload(r: &Record) -> Value {
    r.key_json()["payload"].clone()
}

/// The slot's confirmed position, once it is at least `lsn`.
async fn confirmed_at_least(db: &Db, slot: &str, lsn: u64, what: &str) -> Lsn {
    wait_until(WAIT, what, || async {
        let text = db.confirmed_flush(slot).await?;
        let confirmed = Lsn::parse(&text)?;
        (confirmed.0 >= lsn).then_some(confirmed)
    })
    .await
}

/// RecordsStreamProducerIT.shouldReceiveChangesForUpdatesWithPKChanges: `d` of the old key, a
/// tombstone of it, `c` of the new key; the `d` carries `__debezium.newkey`, the `c`
/// `__debezium.oldkey`. Under DEFAULT the `d`'s `before` holds the key only (pgoutput's `K`
/// tuple); under FULL the whole old row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_key_change_is_delete_tombstone_create() {
    let db = Db::create("pkchange").await;
    db.exec("CREATE TABLE test_table (pk int PRIMARY KEY, text text); INSERT INTO test_table VALUES (1, 'insert');").await;
    let (mut relay, prefix, _) = start(&db, &["public.test_table"], "", None).await;
    let topic = format!("{prefix}.public.test_table");
    read(&topic, "the snapshot row", 1);

    db.exec("UPDATE test_table SET text = 'update', pk = 2")
        .await;
    let recs = read(&topic, "d, tombstone, c", 4);
    assert_eq!(recs.len(), 4, "{recs:?}");
    let (del, tomb, ins) = (&recs[1], &recs[2], &recs[3]);

    assert_eq!(op(del).as_deref(), Some("d"));
    assert_eq!(key_payload(del), json!({"pk": 1}));
    let p = del.payload();
    assert_eq!(
        p["before"],
        json!({"pk": 1, "text": null}),
        "DEFAULT: key only"
    );
    assert_eq!(p["after"], Value::Null);
    assert_eq!(
        del.header("__debezium.newkey").as_deref(),
        Some(r#"{"pk":2}"#)
    );

    assert_eq!(tomb.value, None, "tombstone of the old key");
    assert_eq!(tomb.key, del.key);

    assert_eq!(op(ins).as_deref(), Some("c"));
    assert_eq!(key_payload(ins), json!({"pk": 2}));
    let p = ins.payload();
    assert_eq!(p["before"], Value::Null);
    assert_eq!(p["after"], json!({"pk": 2, "text": "update"}));
    assert_eq!(
        ins.header("__debezium.oldkey").as_deref(),
        Some(r#"{"pk":1}"#)
    );
    // Both come from the same change.
    assert_eq!(
        del.payload()["source"]["lsn"],
        ins.payload()["source"]["lsn"]
    );

    // REPLICA IDENTITY FULL: the `d` carries the whole old row.
    db.exec("ALTER TABLE test_table REPLICA IDENTITY FULL; UPDATE test_table SET pk = 3")
        .await;
    let recs = read(&topic, "the FULL key change", 7);
    assert_eq!(op(&recs[4]).as_deref(), Some("d"));
    assert_eq!(
        recs[4].payload()["before"],
        json!({"pk": 2, "text": "update"})
    );
    assert_eq!(recs[5].value, None);
    assert_eq!(op(&recs[6]).as_deref(), Some("c"));
    assert_eq!(
        recs[6].payload()["after"],
        json!({"pk": 3, "text": "update"})
    );
    relay.assert_running();
}

/// RecordsStreamProducerIT.shouldReceiveChangesForUpdatesWithPKChangesWithoutTombstone and
/// shouldReceiveChangesForDeletesWithoutTombstone (`tombstones.on.delete=false`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_off() {
    let db = Db::create("notomb").await;
    db.exec("CREATE TABLE test_table (pk int PRIMARY KEY, text text); INSERT INTO test_table VALUES (1, 'insert');").await;
    let (mut relay, prefix, _) = start(
        &db,
        &["public.test_table"],
        "tombstones_on_delete: false\n",
        None,
    )
    .await;
    let topic = format!("{prefix}.public.test_table");
    read(&topic, "the snapshot row", 1);

    db.exec("UPDATE test_table SET text = 'update', pk = 2")
        .await;
    db.exec("DELETE FROM test_table WHERE pk = 2").await;
    db.exec("INSERT INTO test_table VALUES (99, 'marker')")
        .await;
    let recs = read_through(&topic, "the marker insert", |r| {
        r.value_json()
            .is_some_and(|v| v["payload"]["after"]["pk"] == 99)
    });
    let kinds: Vec<(Option<String>, Value)> =
        recs.iter().map(|r| (op(r), key_payload(r))).collect();
    assert_eq!(
        kinds,
        vec![
            (Some("r".into()), json!({"pk": 1})),
            (Some("d".into()), json!({"pk": 1})),
            (Some("c".into()), json!({"pk": 2})),
            (Some("d".into()), json!({"pk": 2})),
            (Some("c".into()), json!({"pk": 99})),
        ],
        "no tombstones"
    );
    relay.assert_running();
}

/// Truncates are skipped by default (Debezium's `skipped.operations=t`): a truncate followed by
/// an insert shows only the insert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_is_skipped_by_default() {
    let db = Db::create("trunc_off").await;
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');")
        .await;
    let (mut relay, prefix, _) = start(&db, &["public.t"], "", None).await;
    let topic = format!("{prefix}.public.t");
    read(&topic, "the snapshot row", 1);
    db.exec("TRUNCATE t; INSERT INTO t VALUES (2, 'b');").await;
    let recs = read_through(&topic, "the insert after the truncate", |r| {
        op(r).as_deref() == Some("c")
    });
    let ops: Vec<Option<String>> = recs.iter().map(op).collect();
    assert_eq!(ops, vec![Some("r".into()), Some("c".into())]);
    relay.assert_running();
}

/// With `truncate_events: true`, each truncated table gets one record on its topic: op `t`, a
/// null key, `before` and `after` null, the table in `source` (reference section 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_events_on() {
    let db = Db::create("trunc_on").await;
    db.exec(
        "CREATE TABLE t1 (id int PRIMARY KEY); CREATE TABLE t2 (id int PRIMARY KEY);\
         INSERT INTO t1 VALUES (1); INSERT INTO t2 VALUES (1);",
    )
    .await;
    let (mut relay, prefix, _) = start(
        &db,
        &["public.t1", "public.t2"],
        "truncate_events: true\n",
        None,
    )
    .await;
    read(&format!("{prefix}.public.t1"), "t1's snapshot row", 1);
    db.exec("TRUNCATE t1, t2").await;
    for table in ["t1", "t2"] {
        let recs = read(&format!("{prefix}.public.{table}"), "the truncate", 2);
        let t = &recs[1];
        assert_eq!(t.key, None, "truncates have a null key");
        let p = t.payload();
        assert_eq!(p["op"], "t");
        assert_eq!(p["before"], Value::Null);
        assert_eq!(p["after"], Value::Null);
        assert_eq!(p["source"]["table"], table);
        assert_eq!(p["source"]["schema"], "public");
        assert!(p["source"]["txId"].as_i64().is_some(), "{p}");
        assert_eq!(
            t.value_json().expect("value")["schema"]["name"],
            format!("{prefix}.public.{table}.Envelope")
        );
    }
    relay.assert_running();
}

/// LogicalDecodingMessageIT (shouldConsumeNonTransactionalLogicalDecodingMessages,
/// shouldConsumeTransactionalLogicalDecodingMessages): both kinds on `<prefix>.message`, key
/// `{prefix}`, op `m`, content bytes, empty schema and table, txId only when transactional,
/// transaction null. The non-transactional message is confirmed past its own LSN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logical_decoding_messages() {
    let db = Db::create("messages").await;
    db.exec("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);")
        .await;
    let (mut relay, prefix, slot) = start(&db, &["public.t"], "", None).await;
    read(&format!("{prefix}.public.t"), "the snapshot row", 1);

    db.exec("SELECT pg_logical_emit_message(false, 'foo', 'bar')")
        .await;
    db.exec("BEGIN; INSERT INTO t VALUES (2); SELECT pg_logical_emit_message(true, 'txn_foo', E'\\\\x00ff'::bytea); COMMIT;").await;
    let topic = format!("{prefix}.message");
    let recs = read(&topic, "two messages", 2);
    assert_eq!(recs.len(), 2);

    let (plain, txn) = (&recs[0], &recs[1]);
    assert_eq!(
        plain.key_json(),
        json!({"schema":{"type":"struct","fields":[{"type":"string","optional":true,"field":"prefix"}],"optional":false,"name":"io.debezium.connector.postgresql.MessageKey","version":1},"payload":{"prefix":"foo"}})
    );
    let value = plain.value_json().expect("value");
    assert_eq!(
        value["schema"]["name"],
        "io.debezium.connector.postgresql.MessageValue"
    );
    let fields: Vec<&str> = value["schema"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| f["field"].as_str().expect("field"))
        .collect();
    assert_eq!(fields, ["op", "ts_ms", "source", "transaction", "message"]);
    let p = &value["payload"];
    assert_eq!(p["op"], "m");
    assert!(p["ts_ms"].as_i64().is_some());
    assert_eq!(p["message"], json!({"prefix": "foo", "content": "YmFy"}));
    assert_eq!(p["transaction"], Value::Null);
    let src = &p["source"];
    assert_eq!(src["txId"], Value::Null, "non-transactional: no txId");
    assert_eq!(src["schema"], "");
    assert_eq!(src["table"], "");
    assert!(src["ts_ms"].as_i64().is_some());
    let plain_lsn = src["lsn"].as_u64().expect("lsn");

    assert_eq!(key_payload(txn), json!({"prefix": "txn_foo"}));
    let p = txn.payload();
    assert_eq!(p["op"], "m");
    assert_eq!(
        p["message"],
        json!({"prefix": "txn_foo", "content": "AP8="})
    );
    assert!(
        p["source"]["txId"].as_i64().is_some(),
        "transactional: txId"
    );
    assert_eq!(p["transaction"], Value::Null, "transaction metadata is off");

    // The transaction's insert is on the table's topic too.
    let rows = read(&format!("{prefix}.public.t"), "the insert", 2);
    assert_eq!(rows[1].payload()["source"]["txId"], p["source"]["txId"]);

    confirmed_at_least(
        &db,
        &slot,
        plain_lsn + 1,
        "confirmed_flush_lsn past the non-transactional message",
    )
    .await;
    relay.assert_running();
}

/// TransactionMetadataIT.transactionMetadata: BEGIN, the events with their `transaction` block,
/// END with the counts per data collection. Here a filter plugin drops one event: END counts
/// what was emitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_metadata_begin_end_and_blocks() {
    let db = Db::create("txmeta").await;
    db.exec(
        "CREATE TABLE a (pk int PRIMARY KEY, aa int); CREATE TABLE b (pk int PRIMARY KEY, bb text);",
    )
    .await;
    let path = component("filter");
    let plugins = format!(
        "plugins:\n  - name: filter\n    component: {}\n    sha256: {}\n    config: {{drop: \"after.bb == 'skip'\", tables: [public.b]}}\n",
        path.display(),
        sha256(&path)
    );
    let (mut relay, prefix, _) = start(
        &db,
        &["public.a", "public.b"],
        "transaction_metadata: true\n",
        Some(&plugins),
    )
    .await;

    db.exec(
        "BEGIN; INSERT INTO a VALUES (1, 1); INSERT INTO b VALUES (1, 'x'); \
         INSERT INTO b VALUES (2, 'skip'); INSERT INTO a VALUES (2, 2); \
         SELECT pg_logical_emit_message(true, 'audit', 'in tx'); COMMIT;",
    )
    .await;
    let tx = read(&format!("{prefix}.transaction"), "BEGIN and END", 2);
    let (begin, end) = (&tx[0], &tx[1]);
    let begin_v = begin.value_json().expect("value");
    assert_eq!(
        begin_v["schema"]["name"],
        "io.debezium.connector.common.TransactionMetadataValue"
    );
    let id = begin_v["payload"]["id"].as_str().expect("id").to_string();
    assert_eq!(begin_v["payload"]["status"], "BEGIN");
    assert_eq!(begin_v["payload"]["event_count"], Value::Null);
    assert_eq!(begin_v["payload"]["data_collections"], Value::Null);
    assert_eq!(
        begin.key_json(),
        json!({"schema":{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"}],"optional":false,"name":"io.debezium.connector.common.TransactionMetadataKey","version":1},"payload":{"id": id}})
    );
    let e = end.payload();
    assert_eq!(e["status"], "END");
    assert_eq!(e["id"], id.as_str());
    assert_eq!(
        e["event_count"], 4,
        "2 of a, 1 of b (one dropped), 1 message"
    );
    assert_eq!(
        e["data_collections"],
        json!([
            {"data_collection": "public.a", "event_count": 2},
            {"data_collection": "public.b", "event_count": 1},
            {"data_collection": "LOGICAL_DECODING_MESSAGE", "event_count": 1},
        ])
    );
    assert_eq!(e["ts_ms"], begin_v["payload"]["ts_ms"], "commit time");

    let a = read(&format!("{prefix}.public.a"), "a's events", 2);
    let b = read(&format!("{prefix}.public.b"), "b's event", 1);
    let m = read(&format!("{prefix}.message"), "the message", 1);
    let block = |r: &Record| r.payload()["transaction"].clone();
    assert_eq!(
        block(&a[0]),
        json!({"id": id, "total_order": 1, "data_collection_order": 1})
    );
    assert_eq!(
        block(&b[0]),
        json!({"id": id, "total_order": 2, "data_collection_order": 1})
    );
    assert_eq!(
        block(&a[1]),
        json!({"id": id, "total_order": 3, "data_collection_order": 2})
    );
    assert_eq!(
        block(&m[0]),
        json!({"id": id, "total_order": 4, "data_collection_order": 1})
    );
    assert_eq!(b.len(), 1, "the filtered event is not on the topic");
    // The id is the transaction's txId (PostgresStreamingChangeEventSource).
    assert_eq!(a[0].payload()["source"]["txId"].to_string(), id);
    relay.assert_running();
}

/// `heartbeat_interval_ms`: heartbeat records on `__debezium-heartbeat.<prefix>` (key
/// `{serverName}`, value `{ts_ms}`), and the slot advances while only a table outside the
/// publication is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_and_an_advancing_slot() {
    let db = Db::create("heartbeat").await;
    db.exec("CREATE TABLE watched (id int PRIMARY KEY); CREATE TABLE unwatched (id serial PRIMARY KEY, v text);")
        .await;
    let (mut relay, prefix, slot) = start(
        &db,
        &["public.watched"],
        "heartbeat_interval_ms: 200\n",
        None,
    )
    .await;
    let topic = format!("__debezium-heartbeat.{prefix}");
    let beats = read(&topic, "three heartbeats", 3);
    for b in &beats[..3] {
        assert_eq!(
            b.key_json(),
            json!({"schema":{"type":"struct","fields":[{"type":"string","optional":false,"field":"serverName"}],"optional":false,"name":"io.debezium.connector.common.ServerNameKey","version":1},"payload":{"serverName": prefix}})
        );
        let v = b.value_json().expect("value");
        assert_eq!(
            v["schema"],
            json!({"type":"struct","fields":[{"type":"int64","optional":false,"field":"ts_ms"}],"optional":false,"name":"io.debezium.connector.common.Heartbeat","version":1})
        );
        assert!(v["payload"]["ts_ms"].as_i64().is_some_and(|t| t > 0));
    }

    for i in 0..5 {
        db.exec(&format!("INSERT INTO unwatched (v) VALUES ('{i}')"))
            .await;
    }
    let written = db.current_wal_lsn().await;
    confirmed_at_least(
        &db,
        &slot,
        written.0,
        "confirmed_flush_lsn past the writes to the unwatched table",
    )
    .await;
    relay.assert_running();
}

/// `source.postgres.heartbeat_message`: each heartbeat also writes a non-transactional
/// `walrelay_heartbeat` logical decoding message into the database (seen here through a second,
/// test_decoding slot), the slot is confirmed past them, and none of them is published on
/// `<prefix>.message`, which still carries the application's own messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_messages_are_written_and_never_published() {
    let db = Db::create("hbmsg").await;
    db.exec("CREATE TABLE watched (id int PRIMARY KEY);").await;
    let witness = unique("hbwitness");
    db.exec(&format!(
        "SELECT pg_create_logical_replication_slot('{witness}', 'test_decoding')"
    ))
    .await;
    let slot = unique("kinds");
    let prefix = unique("kinds");
    let yaml = relay_yaml(
        &db,
        &slot,
        &["public.watched"],
        &prefix,
        &services().brokers,
        "",
        "heartbeat_interval_ms: 200\n",
    )
    .replace(
        "    snapshot: initial\n",
        "    snapshot: initial\n    heartbeat_message: true\n",
    );
    let mut relay = Relay::start(&slot, &yaml);

    // Three heartbeat messages in the WAL of this database.
    let messages = wait_until(WAIT, "three heartbeat messages in the WAL", || async {
        let rows = db
            .client
            .query(
                "SELECT data FROM pg_logical_slot_peek_changes($1, NULL, NULL) \
                 WHERE data LIKE 'message:%'",
                &[&witness],
            )
            .await
            .ok()?;
        let texts: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        (texts.len() >= 3).then_some(texts)
    })
    .await;
    for m in &messages {
        assert!(
            m.starts_with("message: transactional: 0 prefix: walrelay_heartbeat, sz: 0 content:"),
            "{m}"
        );
    }
    let written = db.current_wal_lsn().await;
    confirmed_at_least(
        &db,
        &slot,
        written.0,
        "the slot confirmed past the heartbeat messages",
    )
    .await;

    // The application's message is published; the heartbeat messages before it are not.
    db.exec("SELECT pg_logical_emit_message(false, 'audit', 'mine')")
        .await;
    let published = read(&format!("{prefix}.message"), "the application's message", 1);
    assert_eq!(published[0].payload()["message"]["prefix"], "audit");
    assert_eq!(published.len(), 1, "no heartbeat message on the topic");
    relay.assert_running();
    db.exec(&format!("SELECT pg_drop_replication_slot('{witness}')"))
        .await;
}

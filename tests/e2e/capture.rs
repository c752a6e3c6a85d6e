//! Capture under stress, against the real PostgreSQL and broker: schema changes in the middle of
//! a stream of writes, and a replication connection killed by the server.
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use walrelay::event::Lsn;

use crate::support::{
    after_field, after_fields, connect, read_topic, relay_yaml, services, unique, wait_until, Db,
    Record, Relay, TopicReader,
};

const WAIT: Duration = Duration::from_secs(120);

/// Starts a relay on `table` and waits until its slot exists.
async fn start(db: &Db, table: &str) -> (Relay, String, String) {
    let s = services();
    let slot = unique("capture");
    let prefix = unique("capture");
    let yaml = relay_yaml(db, &slot, &[table], &prefix, &s.brokers, "", "");
    let relay = Relay::start(&slot, &yaml);
    wait_until(WAIT, "the relay's slot", || async {
        db.confirmed_flush(&slot).await
    })
    .await;
    (relay, prefix, slot)
}

/// How many records `topic` holds, read once at least one is there and until the broker has
/// nothing more (its writer has exited).
fn records_on(topic: &str) -> usize {
    let mut reader = TopicReader::new(&services().brokers, topic);
    tokio::task::block_in_place(|| {
        reader.read_until(WAIT, "records", |r| !r.is_empty());
        while !reader.read_more(Duration::from_secs(1)).is_empty() {}
    });
    reader.records.len()
}

fn after_field_type(v: &Value, name: &str) -> Option<String> {
    after_field(v, name)["type"].as_str().map(str::to_string)
}

/// ADD COLUMN, DROP COLUMN, a type change and a rename while another session keeps inserting:
/// every row arrives, and each event carries the schema in force at its LSN — the new column
/// from the first row written after the DDL committed, never before, never a value under the
/// wrong column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_changes_mid_stream_under_load() {
    let db = Db::create("schemachange").await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text DEFAULT 'x', gone int DEFAULT 1, num int DEFAULT 5);",
    )
    .await;
    let (mut relay, prefix, _slot) = start(&db, "public.t").await;
    let topic = format!("{prefix}.public.t");

    // The writer: 60 transactions of 100 rows, each row naming only its id.
    let writer_db = connect(&db.url).await;
    const TXS: i32 = 60;
    const ROWS: i32 = 100;
    let writer = tokio::spawn(async move {
        for tx in 0..TXS {
            let first = tx * ROWS + 1;
            writer_db
                // Paced, so the DDL lands between the writer's transactions.
                .batch_execute(&format!(
                    "INSERT INTO t (id) SELECT g FROM generate_series({first}, {}) g; SELECT pg_sleep(0.02)",
                    first + ROWS - 1
                ))
                .await
                .expect("insert");
        }
    });

    // The DDL, spread over the writer's run. Each one's position is the WAL insert position
    // taken inside its transaction, which holds the table's exclusive lock: every row written
    // before it is below, every row written after its commit above.
    let ddl = [
        ("add", "ALTER TABLE t ADD COLUMN extra int DEFAULT 7"),
        ("drop", "ALTER TABLE t DROP COLUMN gone"),
        ("type", "ALTER TABLE t ALTER COLUMN num TYPE bigint"),
        ("rename", "ALTER TABLE t RENAME COLUMN v TO v2"),
    ];
    let mut at: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, (name, sql)) in ddl.iter().enumerate() {
        // Let the writer get ahead between changes.
        let target = (i as i64 + 1) * 1200;
        wait_until(WAIT, "rows written before the next change", || async {
            let n: i64 = db
                .client
                .query_one("SELECT count(*) FROM t", &[])
                .await
                .ok()?
                .get(0);
            (n >= target).then_some(())
        })
        .await;
        db.exec(&format!("BEGIN; {sql}")).await;
        let lsn: String = db
            .client
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .await
            .expect("lsn")
            .get(0);
        db.exec("COMMIT").await;
        at.insert(name, Lsn::parse(&lsn).expect("lsn").0);
    }
    writer.await.expect("writer");
    let total = (TXS * ROWS) as usize;

    let records = read_topic(&topic, WAIT, "every inserted row", |r| r.len() >= total);
    relay.assert_running();
    let mut seen = std::collections::BTreeSet::new();
    for r in &records {
        let v = r.value_json().expect("no deletes here");
        let p = &v["payload"];
        assert_eq!(p["op"], "c");
        let lsn = p["source"]["lsn"].as_u64().expect("lsn");
        let id = p["after"]["id"].as_i64().expect("id");
        seen.insert(id);
        let mut fields = after_fields(&v);
        fields.sort();
        let after = &p["after"];
        // Payload members are exactly the schema's (serde_json's map is sorted).
        let members: Vec<String> = after.as_object().expect("after").keys().cloned().collect();
        assert_eq!(members, fields, "row {id}: payload and schema disagree");
        let past = |name: &str| lsn > at[name];
        let ctx = format!("row {id} at LSN {lsn} (DDL at {at:?})");
        // ADD COLUMN: the column and its default from the first row after it.
        if past("add") {
            assert_eq!(after["extra"], 7, "{ctx}: extra");
            // From the catalog, read when the Relation message arrived: the default converges.
            assert_eq!(
                after_field(&v, "extra")["default"],
                7,
                "{ctx}: extra's default"
            );
        } else {
            assert!(
                after.get("extra").is_none(),
                "{ctx}: extra before it existed"
            );
        }
        if past("drop") {
            assert!(after.get("gone").is_none(), "{ctx}: gone after the drop");
        } else {
            assert_eq!(after["gone"], 1, "{ctx}: gone");
        }
        assert_eq!(after["num"], 5, "{ctx}: num");
        let num_type = after_field_type(&v, "num");
        assert_eq!(
            num_type.as_deref(),
            Some(if past("type") { "int64" } else { "int32" }),
            "{ctx}: num's type"
        );
        if past("rename") {
            assert_eq!(after["v2"], "x", "{ctx}: v2");
            assert!(after.get("v").is_none(), "{ctx}: v after the rename");
        } else {
            assert_eq!(after["v"], "x", "{ctx}: v");
        }
    }
    assert_eq!(seen.len(), total, "every row arrived");
    // Rows landed on both sides of every change.
    for (name, lsn) in &at {
        let lsns = records
            .iter()
            .map(|r| r.payload()["source"]["lsn"].as_u64().unwrap_or(0));
        assert!(
            lsns.clone().any(|l| l < *lsn) && lsns.clone().any(|l| l > *lsn),
            "rows on both sides of {name}"
        );
    }
    relay.stop();
}

/// The server kills the walsender in the middle of a stream: the relay reconnects from the
/// confirmed position and every row arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_replication_connection_is_resumed() {
    let db = Db::create("killconn").await;
    db.exec("CREATE TABLE k (id int PRIMARY KEY, v text NOT NULL);")
        .await;
    let (mut relay, prefix, slot) = start(&db, "public.k").await;
    let topic = format!("{prefix}.public.k");

    const TXS: i32 = 40;
    const ROWS: i32 = 250;
    let mut kills = 0;
    for tx in 0..TXS {
        let first = tx * ROWS + 1;
        db.exec(&format!(
            "INSERT INTO k SELECT g, 'row ' || g FROM generate_series({first}, {}) g",
            first + ROWS - 1
        ))
        .await;
        if tx % 10 == 5 {
            // Terminate the walsender that holds the slot.
            let pid = wait_until(WAIT, "an active walsender", || db.active_walsender(&slot)).await;
            db.exec(&format!("SELECT pg_terminate_backend({pid})"))
                .await;
            kills += 1;
        }
    }
    assert_eq!(kills, 4);
    let total = (TXS * ROWS) as usize;
    let records = read_topic(&topic, WAIT, "every row, across reconnections", |r| {
        let ids: std::collections::BTreeSet<i64> = r
            .iter()
            .filter_map(|r| r.value_json())
            .filter_map(|v| v["payload"]["after"]["id"].as_i64())
            .collect();
        ids.len() >= total
    });
    relay.assert_running();
    let mut by_id = BTreeMap::new();
    for r in &records {
        let p = r.payload();
        let id = p["after"]["id"].as_i64().expect("id");
        by_id.insert(id, p["after"]["v"].as_str().expect("v").to_string());
    }
    assert_eq!(by_id.len(), total);
    for (id, v) in &by_id {
        assert_eq!(v, &format!("row {id}"));
    }
    let log = relay.log_text();
    assert!(
        log.contains("retry") || log.contains("reconnect"),
        "the relay logged its reconnection: {log}"
    );
    // The slot is confirmed past the last row's change.
    let last = records
        .iter()
        .filter_map(|r| r.payload()["source"]["lsn"].as_u64())
        .max()
        .expect("lsns");
    wait_until(WAIT, "the slot confirmed past the last row", || async {
        let c = Lsn::parse(&db.confirmed_flush(&slot).await?)?;
        (c.0 > last).then_some(())
    })
    .await;
    relay.stop();
}

/// `snapshot: initial_only` reads the tables, exits once the broker has them, leaves no slot
/// behind, and does nothing when started again. `snapshot: always` reads them at every start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_modes_initial_only_and_always() {
    let s = services();
    let db = Db::create("snapmodes").await;
    db.exec(
        "CREATE TABLE m (id int PRIMARY KEY, v text NOT NULL);
         INSERT INTO m SELECT g, 'v' || g FROM generate_series(1, 300) g;
         ANALYZE m;",
    )
    .await;
    let ids = |records: &[Record]| -> Vec<i64> {
        records
            .iter()
            .map(|r| {
                let p = r.payload();
                assert_eq!(p["op"], "r", "snapshot reads only");
                assert_eq!(p["after"]["v"], format!("v{}", p["after"]["id"]));
                p["after"]["id"].as_i64().expect("id")
            })
            .collect()
    };

    // initial_only
    let slot = unique("snapmodes");
    let prefix = unique("snapmodes");
    let yaml = relay_yaml(&db, &slot, &["public.m"], &prefix, &s.brokers, "", "")
        .replace("snapshot: initial", "snapshot: initial_only");
    let mut relay = Relay::start(&slot, &yaml);
    let status = tokio::task::block_in_place(|| relay.wait_exit(WAIT));
    assert!(
        status.success(),
        "initial_only exits 0: {}",
        relay.log_text()
    );
    let topic = format!("{prefix}.public.m");
    let records = read_topic(&topic, WAIT, "the snapshot", |r| r.len() >= 300);
    let mut got = ids(&records);
    got.sort();
    assert_eq!(got, (1..=300).collect::<Vec<_>>());
    assert_eq!(db.confirmed_flush(&slot).await, None, "no slot left behind");
    // Progress: the planner's estimate at the start, the rows read at the end.
    let log = relay.log_text();
    let line = |what: &str| {
        log.lines()
            .find(|l| l.contains(what) && l.contains("public.m"))
            .unwrap_or_else(|| panic!("no `{what}` line: {log}"))
            .to_string()
    };
    assert!(line("snapshot of table started").contains("estimated_rows=300"));
    assert!(line("snapshot of table read").contains("rows=300"));
    // Started again: nothing to do, nothing written.
    relay.restart();
    let status = tokio::task::block_in_place(|| relay.wait_exit(WAIT));
    assert!(status.success());
    assert!(relay.log_text().contains("nothing to do"));
    // The relay exited, so anything it wrote is on the broker already.
    assert_eq!(records_on(&topic), 300, "no second snapshot");
    assert_eq!(db.confirmed_flush(&slot).await, None);

    // always: a second start reads the table again, then streams.
    let slot = unique("snapmodes");
    let prefix = unique("snapmodes");
    let yaml = relay_yaml(&db, &slot, &["public.m"], &prefix, &s.brokers, "", "")
        .replace("snapshot: initial", "snapshot: always");
    let mut relay = Relay::start(&slot, &yaml);
    let topic = format!("{prefix}.public.m");
    read_topic(&topic, WAIT, "the first snapshot", |r| r.len() >= 300);
    assert!(relay.stop().success());
    relay.restart();
    let records = read_topic(&topic, WAIT, "the second snapshot", |r| r.len() >= 600);
    let got = ids(&records[..600]);
    for id in 1..=300 {
        assert_eq!(
            got.iter().filter(|&&g| g == id).count(),
            2,
            "id {id} read twice"
        );
    }
    db.exec("INSERT INTO m VALUES (301, 'v301')").await;
    let records = read_topic(&topic, WAIT, "the streamed insert", |r| r.len() >= 601);
    assert_eq!(records[600].payload()["op"], "c");
    assert_eq!(records[600].payload()["after"]["id"], 301);
    relay.stop();
}

/// Every replica identity, a table without a key, and a partitioned table published through its
/// root (reference section 1 for keys; section 2 for `before`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_identities_keyless_and_partitioned_tables() {
    let s = services();
    let db = Db::create("identities").await;
    db.exec(
        "CREATE TABLE ux (a int NOT NULL, b int NOT NULL, v text);
         CREATE UNIQUE INDEX ux_ab ON ux (a, b);
         ALTER TABLE ux REPLICA IDENTITY USING INDEX ux_ab;
         CREATE TABLE nothing (id int PRIMARY KEY, v text);
         ALTER TABLE nothing REPLICA IDENTITY NOTHING;
         CREATE TABLE keyless (v text, n int);
         ALTER TABLE keyless REPLICA IDENTITY FULL;
         CREATE TABLE measurement (id int, city text, day date, PRIMARY KEY (id, day))
             PARTITION BY RANGE (day);
         CREATE TABLE measurement_2024 PARTITION OF measurement
             FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE measurement_2025 PARTITION OF measurement
             FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         INSERT INTO measurement VALUES (1, 'Oslo', '2024-05-01'), (2, 'Rome', '2025-05-01');",
    )
    .await;
    let slot = unique("identities");
    let prefix = unique("identities");
    let yaml = relay_yaml(
        &db,
        &slot,
        &[
            "public.ux",
            "public.nothing",
            "public.keyless",
            "public.measurement",
        ],
        &prefix,
        &s.brokers,
        "",
        "",
    );
    let mut relay = Relay::start(&slot, &yaml);
    let topic = |t: &str| format!("{prefix}.public.{t}");
    // The partitioned table's snapshot: its rows, on the root's topic.
    let snap = read_topic(
        &topic("measurement"),
        WAIT,
        "the partitioned snapshot",
        |r| r.len() >= 2,
    );
    let cities: Vec<Value> = snap
        .iter()
        .map(|r| r.payload()["after"]["city"].clone())
        .collect();
    assert_eq!(cities, vec!["Oslo", "Rome"]);
    relay.assert_running();

    db.exec(
        "INSERT INTO ux VALUES (1, 2, 'one');
         UPDATE ux SET v = 'uno' WHERE a = 1;
         DELETE FROM ux WHERE a = 1;
         INSERT INTO nothing VALUES (1, 'x');
         INSERT INTO keyless VALUES ('k', 1);
         UPDATE keyless SET n = 2;
         DELETE FROM keyless;
         INSERT INTO measurement VALUES (3, 'Lima', '2025-06-01');
         UPDATE measurement SET city = 'Bergen' WHERE id = 1;",
    )
    .await;

    // USING INDEX: the key is the index's columns; the old row of an update that keeps them
    // is absent, a delete's carries the index columns only.
    let ux = read_topic(&topic("ux"), WAIT, "ux changes", |r| r.len() >= 4);
    assert_eq!(
        ux[0].key_json()["payload"],
        serde_json::json!({"a": 1, "b": 2})
    );
    assert_eq!(ux[1].payload()["op"], "u");
    assert_eq!(ux[1].payload()["before"], Value::Null);
    assert_eq!(ux[1].payload()["after"]["v"], "uno");
    let d = ux[2].payload();
    assert_eq!(d["op"], "d");
    assert_eq!(d["before"], serde_json::json!({"a": 1, "b": 2, "v": null}));
    assert_eq!(ux[3].value, None, "tombstone");
    assert_eq!(
        ux[3].key_json()["payload"],
        serde_json::json!({"a": 1, "b": 2})
    );

    // NOTHING: PostgreSQL refuses updates and deletes of a published table without an identity
    // (so nothing is lost unseen); inserts flow, keyed by the primary key.
    let nothing = read_topic(&topic("nothing"), WAIT, "nothing's insert", |r| {
        !r.is_empty()
    });
    let c = nothing[0].payload();
    assert_eq!(c["op"], "c");
    assert_eq!(c["after"], serde_json::json!({"id": 1, "v": "x"}));
    assert_eq!(
        nothing[0].key_json()["payload"],
        serde_json::json!({"id": 1})
    );
    let refused = db
        .client
        .batch_execute("UPDATE nothing SET v = 'y'")
        .await
        .expect_err("PostgreSQL refuses it");
    assert_eq!(
        refused.as_db_error().map(|e| e.code().code()),
        Some("55000")
    );

    // No key, FULL: null Kafka keys, whole old rows.
    let keyless = read_topic(&topic("keyless"), WAIT, "keyless changes", |r| r.len() >= 3);
    for r in &keyless {
        assert_eq!(r.key, None, "a table without a key has null keys");
    }
    let u = keyless[1].payload();
    assert_eq!(u["before"], serde_json::json!({"v": "k", "n": 1}));
    assert_eq!(u["after"], serde_json::json!({"v": "k", "n": 2}));
    let d = keyless[2].payload();
    assert_eq!(d["op"], "d");
    assert_eq!(d["before"], serde_json::json!({"v": "k", "n": 2}));
    assert_eq!(keyless.len(), 3, "no tombstone without a key");

    // Partitioned: changes to either partition come as the root table's.
    let m = read_topic(&topic("measurement"), WAIT, "partition changes", |r| {
        r.len() >= 4
    });
    let p = m[2].payload();
    assert_eq!(
        (p["op"].as_str(), p["after"]["city"].as_str()),
        (Some("c"), Some("Lima"))
    );
    assert_eq!(p["source"]["table"], "measurement");
    let p = m[3].payload();
    assert_eq!(
        (p["op"].as_str(), p["after"]["city"].as_str()),
        (Some("u"), Some("Bergen"))
    );
    assert_eq!(
        m[3].key_json()["payload"],
        serde_json::json!({"id": 1, "day": 19844})
    );
    relay.stop();
}

/// Cutover from another consumer of a slot — a Debezium connector being replaced — played by a
/// relay stopped mid-stream. A new relay with its own, empty state directory is pointed at the
/// same slot, publication and topic prefix:
/// - under `snapshot: initial` it refuses to drop a slot it did not create, says how to take it
///   over, and leaves the slot as it was;
/// - under `snapshot: never` it streams from the slot's confirmed_flush_lsn: no second
///   snapshot, every row written before and after the stop on the same topic, each key on the
///   partition the first relay used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutover_takes_over_a_running_slot_without_a_snapshot() {
    let s = services();
    let db = Db::create("cutover").await;
    db.exec(
        "CREATE TABLE c (id int PRIMARY KEY, v text NOT NULL);
         INSERT INTO c SELECT g, 'row ' || g FROM generate_series(1, 50) g;",
    )
    .await;
    let slot = unique("cutover");
    let prefix = unique("cutover");
    let topic = format!("{prefix}.public.c");
    let partitions = "    topics: { partitions: 3 }\n";
    let yaml = |snapshot: &str| {
        relay_yaml(
            &db,
            &slot,
            &["public.c"],
            &prefix,
            &s.brokers,
            partitions,
            "",
        )
        .replace("snapshot: initial", &format!("snapshot: {snapshot}"))
    };
    // The old consumer: snapshot, then streaming while rows keep coming.
    let mut old = Relay::start(&format!("{slot}-old"), &yaml("initial"));
    read_topic(&topic, WAIT, "the old consumer's snapshot", |r| {
        r.len() >= 50
    });
    const LAST: i32 = 400;
    let writer = {
        let url = db.url.clone();
        tokio::spawn(async move {
            let client = connect(&url).await;
            for id in 51..=LAST {
                client
                    .execute(
                        "INSERT INTO c VALUES ($1, $2)",
                        &[&id, &format!("row {id}")],
                    )
                    .await
                    .expect("insert");
            }
        })
    };
    read_topic(&topic, WAIT, "the old consumer mid-stream", |r| {
        r.len() >= 120
    });
    assert!(old.stop().success(), "the old consumer stops cleanly");
    let taken_over_at = Lsn::parse(&db.confirmed_flush(&slot).await.expect("slot")).expect("lsn");

    // `initial` on a slot this relay has no record of: refused, slot untouched.
    let mut refused = Relay::start(&format!("{slot}-refused"), &yaml("initial"));
    let log = tokio::task::block_in_place(|| refused.failure_log(WAIT));
    assert!(
        log.contains(&format!("replication slot {slot} exists"))
            && log.contains("snapshot: never")
            && log.contains(&format!("pg_drop_replication_slot('{slot}')")),
        "the refusal names the slot and both ways on: {log}"
    );
    assert_eq!(
        Lsn::parse(
            &db.confirmed_flush(&slot)
                .await
                .expect("the slot is still there")
        )
        .expect("lsn"),
        taken_over_at,
        "the refused relay did not move the slot"
    );

    // `never`: the takeover.
    let mut new = Relay::start(&format!("{slot}-new"), &yaml("never"));
    writer.await.expect("writer");
    let records = read_topic(&topic, WAIT, "every row after the takeover", |r| {
        let ids: std::collections::BTreeSet<i64> = r
            .iter()
            .filter_map(|r| r.value_json())
            .filter_map(|v| v["payload"]["after"]["id"].as_i64())
            .collect();
        ids.len() >= LAST as usize
    });
    new.assert_running();
    let mut partition_of = BTreeMap::new();
    let mut reads = 0;
    for r in &records {
        let p = r.payload();
        let id = p["after"]["id"].as_i64().expect("id");
        assert_eq!(p["after"]["v"], format!("row {id}"));
        if p["op"] == "r" {
            reads += 1;
        } else {
            assert_eq!(p["op"], "c", "{p}");
        }
        let first = *partition_of.entry(id).or_insert(r.partition);
        assert_eq!(first, r.partition, "id {id} stays on one partition");
    }
    assert_eq!(
        reads, 50,
        "one snapshot, the old consumer's: none after the takeover"
    );
    assert_eq!(
        partition_of.keys().copied().collect::<Vec<_>>(),
        (1..=i64::from(LAST)).collect::<Vec<_>>()
    );
    let log = new.log_text();
    assert!(log.contains("resuming from the replication slot"), "{log}");
    new.stop();
}

/// A walsender that falls silent without closing the connection (SIGSTOP: the TCP connection
/// stays open, nothing arrives, as with a half-open connection or a frozen server) is taken for
/// dead after `server_timeout_ms`, although no error ever reaches the socket. The relay
/// reconnects by itself and, once the old walsender is gone and the slot free again, streams on
/// without losing a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_is_detected_and_capture_reconnects() {
    let s = services();
    let db = Db::create("silent").await;
    db.exec("CREATE TABLE k (id int PRIMARY KEY, v text NOT NULL);")
        .await;
    let slot = unique("silent");
    let prefix = unique("silent");
    let topic = format!("{prefix}.public.k");
    let yaml = relay_yaml(&db, &slot, &["public.k"], &prefix, &s.brokers, "", "").replace(
        "    status_interval_ms: 1000\n",
        "    status_interval_ms: 1000\n    server_timeout_ms: 2000\n",
    );
    let mut relay = Relay::start(&slot, &yaml);
    let pid = wait_until(WAIT, "an active walsender", || db.active_walsender(&slot)).await;
    let insert = |from: i32, to: i32| {
        format!("INSERT INTO k SELECT g, 'row ' || g FROM generate_series({from}, {to}) g")
    };
    db.exec(&insert(1, 100)).await;
    read_topic(&topic, WAIT, "the first rows", |r| r.len() >= 100);

    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {sig} {pid}");
    };
    signal("-STOP");
    db.exec(&insert(101, 200)).await;
    wait_until(
        WAIT,
        "the relay to take the silent connection for dead",
        || {
            relay.assert_running();
            let seen = relay.log_text().contains("taking the connection for dead");
            async move { seen.then_some(()) }
        },
    )
    .await;
    // Let the old walsender see the closed connection and exit, freeing the slot.
    signal("-CONT");
    let records = read_topic(&topic, WAIT, "every row after the reconnection", |r| {
        let ids: std::collections::BTreeSet<i64> = r
            .iter()
            .filter_map(|r| r.value_json())
            .filter_map(|v| v["payload"]["after"]["id"].as_i64())
            .collect();
        ids.len() >= 200
    });
    relay.assert_running();
    for r in &records {
        let after = &r.payload()["after"];
        let id = after["id"].as_i64().expect("id");
        assert_eq!(after["v"], format!("row {id}"));
    }
    let now = wait_until(WAIT, "a new walsender", || async {
        db.active_walsender(&slot).await.filter(|p| *p != pid)
    })
    .await;
    assert_ne!(now, pid);
    relay.stop();
}

/// `snapshot_workers: 3`: three connections read four tables of the same exported snapshot in
/// parallel. Every row arrives once, and the markers stay Debezium's: one `first` and one `last` in all, each table's first and
/// last row marked, `true` in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_snapshot_reads_every_table_once_with_markers() {
    let s = services();
    let db = Db::create("parsnap").await;
    let sizes = [("a", 3000), ("b", 1), ("c", 2500), ("d", 700)];
    for (t, n) in sizes {
        db.exec(&format!(
            "CREATE TABLE {t} (id int PRIMARY KEY, v text NOT NULL);
             INSERT INTO {t} SELECT g, '{t}' || g FROM generate_series(1, {n}) g;"
        ))
        .await;
    }
    let slot = unique("parsnap");
    let prefix = unique("parsnap");
    let tables: Vec<String> = sizes.iter().map(|(t, _)| format!("public.{t}")).collect();
    let table_refs: Vec<&str> = tables.iter().map(String::as_str).collect();
    let yaml = relay_yaml(&db, &slot, &table_refs, &prefix, &s.brokers, "", "").replace(
        "    snapshot: initial\n",
        "    snapshot: initial\n    snapshot_workers: 3\n",
    );
    let mut relay = Relay::start(&slot, &yaml);
    let mut markers = Vec::new();
    for (t, n) in sizes {
        let records = read_topic(
            &format!("{prefix}.public.{t}"),
            WAIT,
            "a table's snapshot",
            |r| r.len() >= n,
        );
        let mut ids: Vec<i64> = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let p = r.payload();
            assert_eq!(p["op"], "r");
            let id = p["after"]["id"].as_i64().expect("id");
            assert_eq!(p["after"]["v"], format!("{t}{id}"));
            ids.push(id);
            let m = p["source"]["snapshot"]
                .as_str()
                .expect("marker")
                .to_string();
            let expected: &[&str] = match (i == 0, i + 1 == n) {
                (true, true) => &[
                    "first",
                    "last",
                    "first_in_data_collection",
                    "last_in_data_collection",
                ],
                (true, false) => &["first", "first_in_data_collection"],
                (false, true) => &["last", "last_in_data_collection"],
                (false, false) => &["true"],
            };
            assert!(expected.contains(&m.as_str()), "{t} row {i} of {n}: {m}");
            markers.push(m);
        }
        ids.sort();
        assert_eq!(
            ids,
            (1..=n as i64).collect::<Vec<_>>(),
            "{t}: every row once"
        );
    }
    let count = |m: &str| markers.iter().filter(|x| *x == m).count();
    assert_eq!((count("first"), count("last")), (1, 1), "{markers:?}");
    let log = relay.log_text();
    assert!(
        log.contains("snapshot read in parallel") && log.contains("readers=3"),
        "{log}"
    );
    relay.assert_running();
    relay.stop();
}

/// `metrics: {listen: …}`: `GET /metrics` answers in Prometheus' text format with the initial
/// snapshot's rows per table (and the planner's estimate), what was handed to the sink, the
/// commit-to-acknowledgement summary of streamed changes and the slot's positions; anything
/// else is a 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_over_http() {
    use std::io::{Read, Write};
    let s = services();
    let db = Db::create("metrics").await;
    db.exec(
        "CREATE TABLE met (id int PRIMARY KEY, v text NOT NULL);
         INSERT INTO met SELECT g, 'v' || g FROM generate_series(1, 120) g;
         ANALYZE met;",
    )
    .await;
    let slot = unique("metrics");
    let prefix = unique("metrics");
    let topic = format!("{prefix}.public.met");
    let yaml = relay_yaml(
        &db,
        &slot,
        &["public.met"],
        &prefix,
        &s.brokers,
        "",
        "metrics: {listen: '127.0.0.1:0'}\n",
    );
    let mut relay = Relay::start(&slot, &yaml);
    read_topic(&topic, WAIT, "the snapshot", |r| r.len() >= 120);
    db.exec("INSERT INTO met SELECT g, 'v' || g FROM generate_series(121, 125) g")
        .await;
    read_topic(&topic, WAIT, "the streamed rows", |r| r.len() >= 125);
    let log = relay.log_text();
    let address = log
        .lines()
        .find_map(|l| l.split("metrics listening address=").nth(1))
        .unwrap_or_else(|| panic!("no metrics address in the log: {log}"))
        .trim()
        .to_string();
    let get = |path: &str| -> String {
        let mut conn = std::net::TcpStream::connect(&address).expect("connect to metrics");
        write!(conn, "GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n").expect("request");
        let mut response = String::new();
        conn.read_to_string(&mut response).expect("response");
        response
    };
    let value = |text: &str, name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    let text = wait_until(WAIT, "metrics of the streamed rows", || {
        let text = get("/metrics");
        let done = value(&text, "walrelay_commit_to_ack_seconds_count").is_some_and(|n| n >= 5.0)
            && value(&text, "walrelay_records_total").is_some_and(|n| n >= 125.0);
        async move { done.then_some(text) }
    })
    .await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("Content-Type: text/plain; version=0.0.4"),
        "{text}"
    );
    assert_eq!(
        value(&text, "walrelay_snapshot_rows{table=\"public.met\"}"),
        Some(120.0)
    );
    assert_eq!(
        value(
            &text,
            "walrelay_snapshot_rows_estimated{table=\"public.met\"}"
        ),
        Some(120.0)
    );
    assert_eq!(value(&text, "walrelay_tombstones_total"), Some(0.0));
    assert!(value(&text, "walrelay_bytes_total").is_some_and(|b| b > 125.0 * 500.0));
    let p99 = value(&text, "walrelay_commit_to_ack_seconds{quantile=\"0.99\"}").expect("p99");
    assert!(p99 > 0.0 && p99 < 60.0, "{p99}");
    assert!(
        value(&text, "walrelay_confirmed_lsn").is_some_and(|l| l > 0.0),
        "{text}"
    );
    assert!(value(&text, "walrelay_slot_lag_bytes").is_some(), "{text}");
    assert!(get("/other").starts_with("HTTP/1.1 404 Not Found\r\n"));
    relay.assert_running();
    relay.stop();
}

/// A slot held by another consumer (pg_recvlogical here): the relay says which process holds
/// it and what to do, keeps retrying, and takes the slot over once the other consumer is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_held_by_another_process_is_waited_for() {
    let s = services();
    let db = Db::create("slotbusy").await;
    let slot = unique("slotbusy");
    db.exec(&format!(
        "CREATE TABLE h (id int PRIMARY KEY); CREATE PUBLICATION {slot} FOR TABLE h;"
    ))
    .await;
    db.exec(&format!(
        "SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"
    ))
    .await;
    let mut other = std::process::Command::new(s.pg_bin.join("pg_recvlogical"))
        .args(["-d", &db.url, "--slot", &slot, "--start", "-f", "/dev/null"])
        .args([
            "-o",
            "proto_version=1",
            "-o",
            &format!("publication_names={slot}"),
        ])
        .spawn()
        .expect("pg_recvlogical");
    let holder = wait_until(WAIT, "pg_recvlogical holding the slot", || {
        db.active_walsender(&slot)
    })
    .await;
    let prefix = unique("slotbusy");
    let yaml = relay_yaml(&db, &slot, &["public.h"], &prefix, &s.brokers, "", "")
        .replace("snapshot: initial", "snapshot: never");
    let mut relay = Relay::start(&slot, &yaml);
    wait_until(WAIT, "the relay to report the busy slot", || {
        relay.assert_running();
        let log = relay.log_text();
        let seen = log.contains(&format!(
            "replication slot `{slot}` is in use by another process (pid {holder})"
        )) && log.contains("stop the other consumer")
            && log.contains("restarting from the last confirmed position");
        async move { seen.then_some(()) }
    })
    .await;
    let _ = other.kill();
    let _ = other.wait();
    db.exec("INSERT INTO h VALUES (1)").await;
    let records = read_topic(
        &format!("{prefix}.public.h"),
        WAIT,
        "the row after the takeover",
        |r| !r.is_empty(),
    );
    assert_eq!(records[0].payload()["after"], serde_json::json!({"id": 1}));
    relay.assert_running();
    relay.stop();
}

/// Server states the shared cluster must not be put in, on a private cluster
/// (`max_slot_wal_keep_size = 1MB`): a slot PostgreSQL invalidated (its WAL removed) stops
/// `snapshot: initial` with the fix spelled out, and `snapshot: when_needed` drops it and reads
/// the tables again; then, restarted with `wal_level = replica`, the server is refused with the
/// setting to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidated_slot_and_wal_level_on_a_private_cluster() {
    use crate::support::cluster::PrivateCluster;
    let s = services();
    let cluster = PrivateCluster::start(&["max_slot_wal_keep_size = 1MB", "wal_keep_size = 0"]);
    let url = cluster.url();
    let db = Db {
        name: "postgres".into(),
        url: url.clone(),
        client: connect(&url).await,
    };
    db.exec(
        "CREATE TABLE w (id int PRIMARY KEY, v text NOT NULL); INSERT INTO w VALUES (1, 'one');",
    )
    .await;
    let slot = unique("inval");
    let prefix = unique("inval");
    let topic = format!("{prefix}.public.w");
    let yaml = relay_yaml(&db, &slot, &["public.w"], &prefix, &s.brokers, "", "");
    let mut relay = Relay::start(&slot, &yaml);
    read_topic(&topic, WAIT, "the snapshot", |r| !r.is_empty());
    wait_until(WAIT, "the snapshot recorded", || {
        relay.assert_running();
        let done = relay
            .log_text()
            .contains("initial snapshot delivered and recorded");
        async move { done.then_some(()) }
    })
    .await;
    assert!(relay.stop().success());

    // WAL beyond max_slot_wal_keep_size, checkpointed away: the slot is lost.
    let mut next = 2;
    wait_until(WAIT, "the slot invalidated", || {
        let sql = format!(
            "INSERT INTO w SELECT g, 'filler' FROM generate_series({next}, {}) g; \
             SELECT pg_switch_wal(); CHECKPOINT;",
            next + 9
        );
        next += 10;
        let db = &db;
        let slot = &slot;
        async move {
            db.exec(&sql).await;
            let status: Option<String> = db
                .client
                .query_one(
                    "SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1",
                    &[slot],
                )
                .await
                .ok()?
                .get(0);
            (status.as_deref() == Some("lost")).then_some(())
        }
    })
    .await;

    relay.restart();
    let log = tokio::task::block_in_place(|| relay.failure_log(WAIT));
    assert!(
        log.contains(&format!("replication slot `{slot}` was invalidated"))
            && log.contains(&format!("pg_drop_replication_slot('{slot}')")),
        "initial stops with the fix: {log}"
    );

    std::fs::write(
        &relay.config,
        yaml.replace("snapshot: initial", "snapshot: when_needed"),
    )
    .expect("config");
    relay.restart();
    let rows: i64 = db
        .client
        .query_one("SELECT count(*) FROM w", &[])
        .await
        .expect("count")
        .get(0);
    let records = read_topic(&topic, WAIT, "the second snapshot", |r| {
        r.len() as i64 > rows
    });
    relay.assert_running();
    let reads_of_one = records
        .iter()
        .filter(|r| r.payload()["op"] == "r" && r.payload()["after"]["id"] == 1)
        .count();
    assert_eq!(reads_of_one, 2, "row 1 read by both snapshots");
    assert!(relay
        .log_text()
        .contains("the replication slot was invalidated: dropping it and taking a new snapshot"));
    assert!(relay.stop().success());

    // wal_level = replica: logical slots must go first (the server refuses to start otherwise).
    db.exec("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots")
        .await;
    drop(db);
    cluster.restart_with(&["wal_level=replica"]);
    let db = Db {
        name: "postgres".into(),
        url: url.clone(),
        client: connect(&url).await,
    };
    let slot = unique("walreplica");
    let mut relay = Relay::start(
        &slot,
        &relay_yaml(&db, &slot, &["public.w"], &prefix, &s.brokers, "", ""),
    );
    let log = tokio::task::block_in_place(|| relay.failure_log(WAIT));
    assert!(
        log.contains("wal_level is `replica`, logical replication needs `logical`")
            && log.contains("wal_level = logical"),
        "{log}"
    );
}

/// On a terminal (tmux here, as a person would run it), the initial snapshot draws a progress
/// bar with the planner's estimate, below the log lines, and clears it when the table is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_progress_bar_on_a_terminal() {
    let s = services();
    let db = Db::create("bar").await;
    db.exec(
        "CREATE TABLE big (id int PRIMARY KEY, v text NOT NULL);
         INSERT INTO big SELECT g, repeat('v', 200) FROM generate_series(1, 200000) g;
         ANALYZE big;",
    )
    .await;
    let slot = unique("bar");
    let prefix = unique("bar");
    let dir = crate::support::scratch_dir("bar");
    let config = dir.join("walrelay.yaml");
    std::fs::write(
        &config,
        relay_yaml(&db, &slot, &["public.big"], &prefix, &s.brokers, "", "")
            .replace("sink:\n  kafka:\n", "sink:\n  null: {}\n  # kafka:\n")
            .replace(&format!("    brokers: {}\n", s.brokers), ""),
    )
    .expect("config");
    let session = unique("walrelay_bar");
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .args(args)
            .output()
            .expect("tmux")
    };
    let command = format!(
        "cd {} && {} run --config walrelay.yaml",
        dir.display(),
        crate::support::relay_binary().display()
    );
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "160",
        "-y",
        "30",
        &command,
    ]);
    assert!(started.status.success(), "{started:?}");
    let pane = || {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &session]).stdout).to_string()
    };
    let bar = wait_until(WAIT, "the progress bar", || {
        let screen = pane();
        let line = screen
            .lines()
            .find(|l| l.starts_with("snapshot public.big [") && l.contains("% "))
            .map(str::to_string);
        async move { line }
    })
    .await;
    assert!(bar.ends_with("/200000 rows"), "{bar}");
    // Read: the bar is gone, the log line stays.
    wait_until(WAIT, "the bar cleared after the table was read", || {
        let screen = pane();
        let cleared = screen.contains("snapshot of table read")
            && !screen
                .lines()
                .any(|l| l.starts_with("snapshot public.big ["));
        async move { cleared.then_some(()) }
    })
    .await;
    tmux(&["kill-session", "-t", &session]);
}

//! Incremental snapshots (`source.postgres.incremental_snapshots`) against the real PostgreSQL and
//! broker: a table read again in chunks while another session keeps updating, deleting and
//! inserting, triggered by `walrelay snapshot`, the relay killed mid-way and resumed. What the
//! watermark method promises is checked on the topic: for every key, the last record is the
//! row's current state, and every row nobody touched arrives as an `incremental` read.
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{
    connect, read_topic, relay_binary, relay_yaml, services, unique, wait_until, Db, Relay,
};

const WAIT: Duration = Duration::from_secs(180);
const ROWS: i32 = 20_000;
const WRITES: i32 = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_snapshot_while_writing_resumes_after_a_kill() {
    let s = services();
    let db = Db::create("incr").await;
    db.exec(&format!(
        "CREATE TABLE walrelay_signal (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048));
         CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);
         INSERT INTO t SELECT g, 'initial ' || g FROM generate_series(1, {ROWS}) g;"
    ))
    .await;
    let slot = unique("incr");
    let prefix = unique("incr");
    let topic = format!("{prefix}.public.t");
    let yaml = relay_yaml(&db, &slot, &["public.t"], &prefix, &s.brokers, "", "")
        .replace("snapshot: initial", "snapshot: never")
        .replace(
            "    status_interval_ms: 1000\n",
            "    status_interval_ms: 1000\n    incremental_snapshots: {signal_table: public.walrelay_signal, chunk_size: 200}\n",
        );
    let mut relay = Relay::start(&slot, &yaml);
    wait_until(WAIT, "the relay's slot", || async {
        db.confirmed_flush(&slot).await
    })
    .await;

    // Another session writes all along: updates, deletes and inserts, each its own transaction
    // with a value written once.
    let writer = {
        let url = db.url.clone();
        tokio::spawn(async move {
            let client = connect(&url).await;
            for i in 0..WRITES {
                let sql = match i % 3 {
                    0 => format!(
                        "UPDATE t SET v = 'update {i}' WHERE id = {}",
                        (i * 7919) % ROWS + 1
                    ),
                    1 => format!("DELETE FROM t WHERE id = {}", (i * 104_729) % ROWS + 1),
                    _ => format!("INSERT INTO t VALUES ({}, 'insert {i}')", ROWS + i),
                };
                client.batch_execute(&sql).await.expect("write");
            }
        })
    };

    // The trigger, as an operator gives it.
    let out = Command::new(relay_binary())
        .args(["snapshot", "--config"])
        .arg(&relay.config)
        .arg("public.t")
        .output()
        .expect("walrelay snapshot");
    assert!(
        out.status.success(),
        "walrelay snapshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("reads public.t incrementally"));

    // Killed once progress is recorded (a chunk delivered), restarted: it resumes.
    let progress = relay
        .dir
        .join("state")
        .join(format!("{slot}.incremental.json"));
    wait_until(WAIT, "recorded incremental progress", || {
        relay.assert_running();
        let seen = progress.exists();
        async move { seen.then_some(()) }
    })
    .await;
    relay.kill9();
    relay.restart();
    writer.await.expect("writer");
    wait_until(WAIT, "the incremental snapshot to finish", || {
        relay.assert_running();
        let log = relay.log_text();
        let done = log.contains("incremental snapshot done");
        async move { done.then_some(()) }
    })
    .await;
    let log = relay.log_text();
    assert!(log.contains("resuming the incremental snapshot"), "{log}");
    // Once the last chunk is acknowledged, the record of the progress goes.
    wait_until(WAIT, "the progress record removed", || {
        let gone = !progress.exists();
        async move { gone.then_some(()) }
    })
    .await;

    // The table as it ends.
    let rows = db
        .client
        .query("SELECT id, v FROM t", &[])
        .await
        .expect("final rows");
    let expected: BTreeMap<i64, String> = rows
        .iter()
        .map(|r| (i64::from(r.get::<_, i32>(0)), r.get(1)))
        .collect();
    // The topic's last record per key (tombstones aside) until it matches the table.
    let last_state = |records: &[crate::support::Record]| {
        let mut last: BTreeMap<i64, Value> = BTreeMap::new();
        for r in records {
            if let Some(v) = r.value_json() {
                let p = &v["payload"];
                let row = if p["op"] == "d" {
                    &p["before"]
                } else {
                    &p["after"]
                };
                if let Some(id) = row["id"].as_i64() {
                    last.insert(id, p.clone());
                }
            }
        }
        last
    };
    // Every current row's last record carries its value; every other key's last record is
    // its delete (every delete happened while streaming, so each was captured).
    let matches = |last: &BTreeMap<i64, Value>| {
        expected.iter().all(|(id, v)| {
            last.get(id)
                .is_some_and(|p| p["op"] != "d" && p["after"]["v"] == v.as_str())
        }) && last
            .iter()
            .all(|(id, p)| expected.contains_key(id) || p["op"] == "d")
    };
    let records = read_topic(
        &topic,
        WAIT,
        "the table's current state on the topic",
        |r| matches(&last_state(r)),
    );
    let last = last_state(&records);
    assert!(matches(&last));

    // Every row nobody wrote arrived as an incremental read of its initial value.
    let mut reads: BTreeMap<i64, String> = BTreeMap::new();
    for v in records.iter().filter_map(|r| r.value_json()) {
        let p = &v["payload"];
        if p["op"] == "r" {
            assert_eq!(p["source"]["snapshot"], "incremental", "{v}");
            let id = p["after"]["id"].as_i64().expect("id");
            reads.insert(id, p["after"]["v"].as_str().expect("v").to_string());
        }
    }
    let untouched: Vec<i64> = expected
        .iter()
        .filter(|(_, v)| v.starts_with("initial "))
        .map(|(k, _)| *k)
        .collect();
    assert!(
        untouched.len() > 10_000,
        "most rows untouched: {}",
        untouched.len()
    );
    for id in untouched {
        assert_eq!(
            reads.get(&id).map(String::as_str),
            Some(format!("initial {id}").as_str()),
            "row {id}"
        );
    }
    relay.stop();
}

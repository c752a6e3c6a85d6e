//! At-least-once delivery under failure: the relay killed with SIGKILL mid-snapshot and several
//! times during a stream of 100k changes; the broker frozen for longer than `message.timeout.ms`.
//! After each, every change must be on the topic with its content (duplicates allowed).
use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::support::{
    connect, relay_yaml, services, unique, wait_until, Db, Record, Relay, TopicReader,
};

/// One expected change: (op, id, v); deletes have v = -1.
type Change = (char, i64, i64);

const WAIT: Duration = Duration::from_secs(300);

/// A workload of rounds; each round is one transaction of 200 inserts, 250 updates of snapshot
/// rows and (from the second round on) 50 deletes of rows the previous round inserted. Every
/// change writes a value of `v` unique to it, so each can be found on the topic.
#[derive(Clone, Copy)]
struct Workload {
    snapshot_rows: i64,
    rounds: i64,
}

impl Workload {
    fn round_sql(&self, r: i64) -> (String, Vec<Change>) {
        let ins_start = self.snapshot_rows + 1 + r * 200;
        let ustart = 1 + (r * 250) % (self.snapshot_rows - 250);
        let mut sql = format!(
            "BEGIN;\nINSERT INTO kv (id, v, note) SELECT g, {base} + (g - {ins_start}), 'round {r}' FROM generate_series({ins_start}, {ins_end}) g;\n\
             UPDATE kv SET v = {ubase} + (id - {ustart}) WHERE id >= {ustart} AND id < {uend};\n",
            base = r * 1000,
            ins_end = ins_start + 199,
            ubase = r * 1000 + 200,
            uend = ustart + 250,
        );
        let mut changes: Vec<Change> = (0..200)
            .map(|k| ('c', ins_start + k, r * 1000 + k))
            .collect();
        changes.extend((0..250).map(|k| ('u', ustart + k, r * 1000 + 200 + k)));
        if r > 0 {
            let dstart = self.snapshot_rows + 1 + (r - 1) * 200;
            sql.push_str(&format!(
                "DELETE FROM kv WHERE id >= {dstart} AND id < {};\n",
                dstart + 50
            ));
            changes.extend((0..50).map(|k| ('d', dstart + k, -1)));
        }
        sql.push_str("COMMIT;");
        (sql, changes)
    }

    fn all_changes(&self) -> Vec<Change> {
        (0..self.rounds).flat_map(|r| self.round_sql(r).1).collect()
    }

    async fn run(self, client: Client, rounds: std::ops::Range<i64>) {
        for r in rounds {
            client
                .batch_execute(&self.round_sql(r).0)
                .await
                .unwrap_or_else(|e| panic!("round {r}: {e}"));
        }
    }
}

/// What the topic holds, reduced to the facts the tests check.
#[derive(Default)]
struct Seen {
    changes: HashSet<Change>,
    tombstones: HashSet<i64>,
    records: usize,
}

impl Seen {
    fn absorb(&mut self, records: &[Record]) {
        for r in records {
            self.records += 1;
            let id_of = |v: &serde_json::Value| v["id"].as_i64().expect("id");
            match r.value_json() {
                None => {
                    self.tombstones.insert(id_of(&r.key_json()["payload"]));
                }
                Some(value) => {
                    let p = &value["payload"];
                    let op = p["op"]
                        .as_str()
                        .expect("op")
                        .chars()
                        .next()
                        .expect("op letter");
                    let change = match op {
                        'd' => ('d', id_of(&p["before"]), -1),
                        _ => (op, id_of(&p["after"]), p["after"]["v"].as_i64().expect("v")),
                    };
                    // The key is the primary key of the same row.
                    assert_eq!(
                        r.key_json()["payload"]["id"].as_i64(),
                        Some(change.1),
                        "key matches the row: {p}"
                    );
                    self.changes.insert(change);
                }
            }
        }
    }

    fn missing<'a>(&self, expected: &'a [Change]) -> Vec<&'a Change> {
        expected
            .iter()
            .filter(|c| !self.changes.contains(c))
            .collect()
    }
}

async fn kv_database(snapshot_rows: i64) -> Db {
    let db = Db::create("kv").await;
    db.exec(&format!(
        "CREATE TABLE kv (id bigint PRIMARY KEY, v bigint NOT NULL, note text);\n\
         INSERT INTO kv SELECT g, 0, 'snapshot' FROM generate_series(1, {snapshot_rows}) g;"
    ))
    .await;
    db
}

fn state_file(relay: &Relay, slot: &str) -> String {
    std::fs::read_to_string(relay.dir.join("state").join(format!("{slot}.json")))
        .unwrap_or_default()
}

/// Reads the topic until every expected change (and a tombstone per delete) is there.
fn read_all(reader: &mut TopicReader, seen: &mut Seen, expected: &[Change], relay: &mut Relay) {
    let start = Instant::now();
    let deletes: Vec<i64> = expected
        .iter()
        .filter(|c| c.0 == 'd')
        .map(|c| c.1)
        .collect();
    loop {
        let new = reader.read_more(Duration::from_millis(500)).to_vec();
        seen.absorb(&new);
        let missing = seen.missing(expected);
        if missing.is_empty() && deletes.iter().all(|id| seen.tombstones.contains(id)) {
            return;
        }
        relay.assert_running();
        assert!(
            start.elapsed() < WAIT,
            "{} changes missing after {:?} (of {}; {} records read), e.g. {:?}; relay log tail:\n{}",
            missing.len(),
            WAIT,
            expected.len(),
            seen.records,
            &missing[..missing.len().min(5)],
            tail(&relay.log_text(), 40)
        );
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_snapshot_and_during_100k_changes_loses_nothing() {
    let s = services();
    let work = Workload {
        snapshot_rows: 100_000,
        rounds: 201,
    };
    let db = kv_database(work.snapshot_rows).await;
    let slot = unique("kill9");
    let prefix = unique("kill9");
    let topic = format!("{prefix}.public.kv");
    let yaml = relay_yaml(
        &db,
        &slot,
        &["public.kv"],
        &prefix,
        &s.brokers,
        "    topics:\n      partitions: 2\n",
        "",
    );
    let mut relay = Relay::start(&slot, &yaml);
    let mut reader = TopicReader::new(&s.brokers, &topic);
    let mut seen = Seen::default();

    // Kill mid-snapshot: as soon as the broker holds snapshot records and the state says the
    // snapshot is in progress.
    tokio::task::block_in_place(|| {
        let start = Instant::now();
        while !(state_file(&relay, &slot).contains("in_progress")
            && reader.high_watermark_total() > 0)
        {
            relay.assert_running();
            assert!(
                start.elapsed() < WAIT,
                "the snapshot never started: {}",
                tail(&relay.log_text(), 30)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    relay.kill9();
    assert!(
        state_file(&relay, &slot).contains("in_progress"),
        "the kill landed mid-snapshot"
    );
    relay.restart();

    // The redone snapshot completes: every row, then the state records it.
    let snapshot: Vec<Change> = (1..=work.snapshot_rows).map(|id| ('r', id, 0)).collect();
    tokio::task::block_in_place(|| read_all(&mut reader, &mut seen, &snapshot, &mut relay));
    wait_until(WAIT, "the snapshot recorded as done", || async {
        state_file(&relay, &slot).contains("\"done\"").then_some(())
    })
    .await;

    // 100k changes while the relay is killed three times.
    let expected = work.all_changes();
    assert!(expected.len() >= 100_000, "{} changes", expected.len());
    let rounds = 0..work.rounds;
    let writer = tokio::spawn(work.run(connect(&db.url).await, rounds));
    // Each kill lands while the relay streams: after the broker gained 15k records since the
    // previous kill and the restarted relay resumed from its slot.
    let mut mark = tokio::task::block_in_place(|| reader.high_watermark_total());
    for kill in 1..=3 {
        tokio::task::block_in_place(|| {
            let start = Instant::now();
            while reader.high_watermark_total() < mark + 15_000 {
                relay.assert_running();
                assert!(
                    start.elapsed() < WAIT,
                    "no progress before kill {kill}: {}",
                    tail(&relay.log_text(), 30)
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        relay.kill9();
        relay.restart();
        let log = relay.log.clone();
        wait_until(WAIT, "the restarted relay to resume from its slot", || {
            let log = log.clone();
            async move {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                (text.matches("resuming from the replication slot").count() >= kill).then_some(())
            }
        })
        .await;
        mark = tokio::task::block_in_place(|| reader.high_watermark_total());
    }
    writer.await.expect("writer");
    let mut all = snapshot.clone();
    all.extend(expected);
    tokio::task::block_in_place(|| read_all(&mut reader, &mut seen, &all, &mut relay));
    assert!(
        relay
            .log_text()
            .contains("did not complete: dropping the slot and taking the snapshot again"),
        "the mid-snapshot kill led to a new snapshot"
    );
}

/// A broker of its own, so freezing it does not disturb other tests.
struct OwnBroker {
    child: Child,
    brokers: String,
}

impl OwnBroker {
    fn start() -> OwnBroker {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("addr")
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&services().tansu_bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "own broker did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        OwnBroker {
            child,
            brokers: format!("127.0.0.1:{port}"),
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig}");
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_frozen_past_message_timeout_loses_nothing() {
    let broker = OwnBroker::start();
    let work = Workload {
        snapshot_rows: 2_000,
        rounds: 40,
    };
    let db = kv_database(work.snapshot_rows).await;
    let slot = unique("outage");
    let prefix = unique("outage");
    let topic = format!("{prefix}.public.kv");
    let kafka_extra =
        "    properties:\n      message.timeout.ms: 3000\n      socket.timeout.ms: 3000\n";
    let yaml = relay_yaml(
        &db,
        &slot,
        &["public.kv"],
        &prefix,
        &broker.brokers,
        kafka_extra,
        "",
    );
    let mut relay = Relay::start(&slot, &yaml);
    let mut reader = TopicReader::new(&broker.brokers, &topic);
    let mut seen = Seen::default();
    let snapshot: Vec<Change> = (1..=work.snapshot_rows).map(|id| ('r', id, 0)).collect();
    tokio::task::block_in_place(|| read_all(&mut reader, &mut seen, &snapshot, &mut relay));

    let expected = work.all_changes();
    // A first part of the changes flows normally...
    work.run(connect(&db.url).await, 0..10).await;
    tokio::task::block_in_place(|| {
        while seen.records < snapshot.len() + 4_000 {
            let new = reader.read_more(Duration::from_millis(200)).to_vec();
            seen.absorb(&new);
            relay.assert_running();
        }
    });
    // ...then the broker freezes and the rest is written while it is frozen.
    broker.signal("-STOP");
    let frozen_at = Instant::now();
    let writer = tokio::spawn(work.run(connect(&db.url).await, 10..work.rounds));
    // Keep it frozen until the relay has seen a record time out (message.timeout.ms elapsed) and
    // started over from the last confirmed position — where a naive relay would move on.
    relay.assert_running();
    let log = relay.log.clone();
    wait_until(WAIT, "the relay to report the delivery failure", || {
        let log = log.clone();
        async move {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("restarting from the last confirmed position")
                .then_some(())
        }
    })
    .await;
    relay.assert_running();
    assert!(
        frozen_at.elapsed() >= Duration::from_secs(3),
        "frozen longer than message.timeout.ms"
    );
    broker.signal("-CONT");
    writer.await.expect("writer");
    let mut all = snapshot;
    all.extend(expected);
    tokio::task::block_in_place(|| read_all(&mut reader, &mut seen, &all, &mut relay));
    let log = relay.log_text();
    assert!(
        log.contains("did not deliver") || log.contains("timed out"),
        "the failure was a delivery timeout:\n{}",
        tail(&log, 40)
    );
    // The per-key order of the final state: the last record of each key is its latest change.
    let mut last: HashMap<i64, Option<i64>> = HashMap::new();
    for r in &reader.records {
        let id = r.key_json()["payload"]["id"].as_i64().expect("id");
        let v = r
            .value_json()
            .and_then(|v| v["payload"]["after"]["v"].as_i64());
        last.insert(id, v);
    }
    let final_rows: HashMap<i64, i64> = db
        .client
        .query("SELECT id, v FROM kv", &[])
        .await
        .expect("final rows")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (id, v) in &final_rows {
        assert_eq!(
            last.get(id).copied().flatten(),
            Some(*v),
            "latest record for key {id}"
        );
    }
}

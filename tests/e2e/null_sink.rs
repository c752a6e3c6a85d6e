//! The discarding sink (`sink: { null: {} }`): it encodes every record and logs their count and
//! checksum, equal to those of the records the same configuration writes to the broker.
use std::time::Duration;

use crate::support::{relay_yaml, services, unique, wait_until, Db, Record, Relay, TopicReader};

/// Any fixed instant (ns): with it, both relays write identical records.
const FIXED_CLOCK_NS: &str = "1767225600000000000";

/// The checksum's definition (engine/src/sink/mod.rs), written out again here.
fn sum64_record(topic: &str, key: Option<&[u8]>, value: Option<&[u8]>) -> u64 {
    fn mix(h: u64, w: u64) -> u64 {
        let g = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3);
        g ^ (g >> 32)
    }
    fn field(h: u64, bytes: Option<&[u8]>) -> u64 {
        let Some(bytes) = bytes else {
            return mix(h, u64::MAX);
        };
        let mut padded = bytes.to_vec();
        padded.resize(bytes.len().div_ceil(32) * 32, 0);
        let mut l: Vec<u64> = (0..4).map(|i| mix(h, bytes.len() as u64 + i)).collect();
        for (n, word) in padded.chunks(8).enumerate() {
            let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            l[n % 4] = mix(l[n % 4], w);
        }
        mix(mix(mix(l[0], l[1]), l[2]), l[3])
    }
    let h = field(0xcbf2_9ce4_8422_2325, Some(topic.as_bytes()));
    field(field(h, key), value)
}

/// `(records, tombstones, checksum)` of the relay's last `sink tally (final)` log line.
fn logged_tally(relay: &Relay) -> (u64, u64, String) {
    let log = relay.log_text();
    let line = log
        .lines()
        .rfind(|l| l.contains("sink tally (final)"))
        .unwrap_or_else(|| panic!("no final sink tally in the log:\n{log}"));
    let field = |name: &str| -> String {
        let at = line
            .find(&format!(" {name}="))
            .unwrap_or_else(|| panic!("no {name} in {line}"));
        line[at + name.len() + 2..]
            .split_whitespace()
            .next()
            .expect("value")
            .to_string()
    };
    (
        field("records").parse().expect("records"),
        field("tombstones").parse().expect("tombstones"),
        field("checksum"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn null_sink_counts_and_checksums_what_the_broker_run_writes() {
    let s = services();
    let db = Db::create("nullsink").await;
    let null_slot = unique("nullsink_null");
    let kafka_slot = unique("nullsink_kafka");
    let prefix = unique("nullsink");
    let topic = format!("{prefix}.public.items");
    // Both slots exist before the changes: both relays decode the same WAL.
    db.exec(&format!(
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2));\n\
         CREATE PUBLICATION {null_slot} FOR TABLE items;\n\
         CREATE PUBLICATION {kafka_slot} FOR TABLE items;"
    ))
    .await;
    // One statement each: a slot cannot be created in a transaction that wrote.
    for slot in [&null_slot, &kafka_slot] {
        db.exec(&format!(
            "SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"
        ))
        .await;
    }
    db.exec(
        "INSERT INTO items VALUES (1, 'bolt', 0.25), (2, 'nut', 0.10);\n\
         INSERT INTO items VALUES (3, 'washer', 0.05);\n\
         UPDATE items SET price = 0.30 WHERE id = 1;\n\
         DELETE FROM items WHERE id = 2;",
    )
    .await;
    let end_lsn: String = db
        .client
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .expect("end lsn")
        .get(0);
    // 3 inserts, 1 update, 1 delete and its tombstone.
    let expected_records = 6;

    let yaml = |slot: &str, sink: &str| {
        relay_yaml(&db, slot, &["public.items"], &prefix, &s.brokers, "", "")
            .replace("snapshot: initial", "snapshot: never")
            .replace(
                &format!("sink:\n  kafka:\n    brokers: {}\n", s.brokers),
                sink,
            )
    };
    let env = [("WALRELAY_FIXED_CLOCK_NS", FIXED_CLOCK_NS)];
    let mut kafka = Relay::start_with_env(
        &kafka_slot,
        &yaml(
            &kafka_slot,
            &format!("sink:\n  kafka:\n    brokers: {}\n", s.brokers),
        ),
        &env,
    );
    let mut null =
        Relay::start_with_env(&null_slot, &yaml(&null_slot, "sink:\n  null: {}\n"), &env);

    // Each relay has confirmed everything up to the end of the changes.
    for (relay, slot) in [(&mut kafka, &kafka_slot), (&mut null, &null_slot)] {
        let db = &db;
        let end = &end_lsn;
        wait_until(
            Duration::from_secs(60),
            "the slot confirmed past the changes",
            || {
                relay.assert_running();
                async move {
                    let row = db
                    .client
                    .query_one(
                        "SELECT confirmed_flush_lsn >= $2::text::pg_lsn FROM pg_replication_slots \
                         WHERE slot_name = $1",
                        &[slot, end],
                    )
                    .await
                    .expect("slot query");
                    row.get::<_, Option<bool>>(0).unwrap_or(false).then_some(())
                }
            },
        )
        .await;
    }
    assert!(kafka.stop().success(), "kafka relay:\n{}", kafka.log_text());
    assert!(null.stop().success(), "null relay:\n{}", null.log_text());

    // What the broker holds, read back and checksummed here.
    let mut reader = TopicReader::new(&s.brokers, &topic);
    let records: Vec<Record> = reader
        .read_until(Duration::from_secs(60), "the six records", |r| {
            r.len() >= expected_records
        })
        .to_vec();
    assert_eq!(records.len(), expected_records);
    let ops: Vec<Option<String>> = records
        .iter()
        .map(|r| {
            r.value_json()
                .map(|v| v["payload"]["op"].as_str().expect("op").to_string())
        })
        .collect();
    let op = |o: &str| Some(o.to_string());
    assert_eq!(ops, [op("c"), op("c"), op("c"), op("u"), op("d"), None]);
    assert_eq!(records[5].key_json()["payload"]["id"], 2);
    assert_eq!(
        records[0].payload()["ts_ms"].as_i64(),
        Some(FIXED_CLOCK_NS.parse::<i64>().expect("ns") / 1_000_000)
    );
    let checksum = records.iter().fold(0u64, |sum, r| {
        sum.wrapping_add(sum64_record(&topic, r.key.as_deref(), r.value.as_deref()))
    });
    let expected = (expected_records as u64, 1, format!("{checksum:016x}"));

    assert_eq!(logged_tally(&kafka), expected, "kafka relay's tally");
    assert_eq!(logged_tally(&null), expected, "null relay's tally");

    // The cluster's replication slots are shared: give ours back.
    for slot in [&null_slot, &kafka_slot] {
        db.exec(&format!("SELECT pg_drop_replication_slot('{slot}')"))
            .await;
    }
}

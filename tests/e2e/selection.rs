//! Selection (issue 6): table patterns with exclusions, column exclusion, and
//! `publication_mode: disabled`, against the real PostgreSQL and broker.
use std::time::Duration;

use serde_json::Value;

use crate::support::{
    after_fields, read_topic, relay_yaml, services, unique, wait_until, Db, Record, Relay,
};

const WAIT: Duration = Duration::from_secs(120);

/// A relay config for `db` with `tables` and extra `source.postgres` keys (indented by 4).
fn yaml(db: &Db, slot: &str, prefix: &str, tables: &[&str], postgres_extra: &str) -> String {
    relay_yaml(db, slot, tables, prefix, &services().brokers, "", "").replace(
        "    snapshot: initial\n",
        &format!("    snapshot: initial\n{postgres_extra}"),
    )
}

fn ops(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.value.is_some())
        .map(|r| r.payload()["op"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn published(db: &Db, publication: &str) -> Vec<String> {
    db.client
        .query(
            "SELECT schemaname::text || '.' || tablename::text FROM pg_publication_tables \
             WHERE pubname = $1 ORDER BY 1",
            &[&publication],
        )
        .await
        .expect("publication tables")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// `public.*` minus an excluded table: snapshot and streamed events arrive for the included
/// tables, by topic; the excluded one is neither published nor captured, and a table of another
/// schema is not matched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_patterns_with_an_exclusion() {
    let db = Db::create("selpattern").await;
    db.exec(
        "CREATE SCHEMA other;
         CREATE TABLE alpha (id int PRIMARY KEY, v text);
         CREATE TABLE beta (id int PRIMARY KEY, v text);
         CREATE TABLE skipped (id int PRIMARY KEY, v text);
         CREATE TABLE other.gamma (id int PRIMARY KEY, v text);
         INSERT INTO alpha VALUES (1, 'a1'); INSERT INTO beta VALUES (1, 'b1');
         INSERT INTO skipped VALUES (1, 's1'); INSERT INTO other.gamma VALUES (1, 'g1');",
    )
    .await;
    let slot = unique("selpattern");
    let prefix = unique("selpattern");
    let config = yaml(
        &db,
        &slot,
        &prefix,
        &["public.*"],
        "    exclude_tables: [public.skip*]\n",
    );
    let mut relay = Relay::start(&slot, &config);
    wait_until(WAIT, "the relay's slot", || async {
        db.confirmed_flush(&slot).await
    })
    .await;
    assert_eq!(
        published(&db, &slot).await,
        ["public.alpha", "public.beta"],
        "the publication holds the resolved tables only"
    );
    // Streamed: the excluded table is written first in each transaction.
    db.exec(
        "BEGIN; INSERT INTO skipped VALUES (2, 's2'); INSERT INTO alpha VALUES (2, 'a2'); COMMIT;
         BEGIN; INSERT INTO skipped VALUES (3, 's3'); INSERT INTO other.gamma VALUES (2, 'g2');
         INSERT INTO beta VALUES (2, 'b2'); COMMIT;",
    )
    .await;
    for (table, first) in [("alpha", "a"), ("beta", "b")] {
        let records = read_topic(&format!("{prefix}.public.{table}"), WAIT, table, |r| {
            r.len() >= 2
        });
        assert_eq!(ops(&records), ["r", "c"], "{table}");
        let values: Vec<Value> = records
            .iter()
            .map(|r| r.payload()["after"]["v"].clone())
            .collect();
        assert_eq!(
            values,
            [format!("{first}1"), format!("{first}2")],
            "{table}"
        );
    }
    relay.assert_running();
    let log = relay.log_text();
    let selected = log
        .lines()
        .find(|l| l.contains("selected tables"))
        .unwrap_or_else(|| panic!("no `selected tables` line in:\n{log}"));
    assert!(
        selected.contains("public.alpha, public.beta") && !selected.contains("skipped"),
        "{selected}"
    );
    assert!(!log.contains("skipped\""), "{log}");
    relay.stop();
}

/// A left-out column is absent from schema and payload of snapshot and streamed events (insert,
/// update, delete with REPLICA IDENTITY FULL); leaving out a key column is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_columns_vanish_from_events() {
    let db = Db::create("selcolumns").await;
    db.exec(
        "CREATE TABLE people (id int PRIMARY KEY, name text, secret text, secret_pin int);
         ALTER TABLE people REPLICA IDENTITY FULL;
         INSERT INTO people VALUES (1, 'ann', 'hidden', 1234);",
    )
    .await;
    let slot = unique("selcolumns");
    let prefix = unique("selcolumns");
    let config = yaml(
        &db,
        &slot,
        &prefix,
        &["public.people"],
        "    columns:\n      exclude: [public.people.secret, '*.*.secret_*']\n",
    );
    let mut relay = Relay::start(&slot, &config);
    wait_until(WAIT, "the relay's slot", || async {
        db.confirmed_flush(&slot).await
    })
    .await;
    db.exec(
        "INSERT INTO people VALUES (2, 'bob', 'hidden2', 99);
         UPDATE people SET name = 'ann2', secret = 'changed' WHERE id = 1;
         DELETE FROM people WHERE id = 2;",
    )
    .await;
    let records = read_topic(&format!("{prefix}.public.people"), WAIT, "people", |r| {
        r.iter().filter(|r| r.value.is_some()).count() >= 4
    });
    let values: Vec<&Record> = records.iter().filter(|r| r.value.is_some()).collect();
    assert_eq!(ops(&records), ["r", "c", "u", "d"]);
    for r in &values {
        let v = r.value_json().unwrap();
        assert_eq!(after_fields(&v), ["id", "name"], "{v}");
        let text = v.to_string();
        assert!(
            !text.contains("secret") && !text.contains("hidden") && !text.contains("1234"),
            "{text}"
        );
        assert_eq!(
            r.key_json()["payload"],
            serde_json::json!({"id": r.payload()["after"]["id"].as_i64().or(r.payload()["before"]["id"].as_i64())}),
            "{v}"
        );
    }
    let payload = |i: usize| values[i].payload();
    assert_eq!(
        payload(0)["after"],
        serde_json::json!({"id": 1, "name": "ann"})
    );
    assert_eq!(
        payload(1)["after"],
        serde_json::json!({"id": 2, "name": "bob"})
    );
    assert_eq!(
        payload(2)["before"],
        serde_json::json!({"id": 1, "name": "ann"})
    );
    assert_eq!(
        payload(2)["after"],
        serde_json::json!({"id": 1, "name": "ann2"})
    );
    assert_eq!(
        payload(3)["before"],
        serde_json::json!({"id": 2, "name": "bob"})
    );
    relay.assert_running();
    relay.stop();

    // A key column left out: refused at start, naming it.
    let slot = unique("selkey");
    let config = yaml(
        &db,
        &slot,
        &prefix,
        &["public.people"],
        "    columns:\n      exclude: [public.people.id]\n",
    );
    let mut relay = Relay::start(&slot, &config);
    let status = tokio::task::block_in_place(|| relay.wait_exit(WAIT));
    assert!(!status.success());
    let log = relay.log_text();
    assert!(
        log.contains("source.postgres.columns leaves out public.people.id, a key column"),
        "{log}"
    );
}

/// `publication_mode: disabled`: a missing publication is an error that gives the SQL; once
/// the owner created it, the relay runs on it without altering it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publication_mode_disabled() {
    let db = Db::create("selpub").await;
    db.exec(
        "CREATE TABLE items (id int PRIMARY KEY, v text);
         CREATE TABLE extra (id int PRIMARY KEY);
         INSERT INTO items VALUES (1, 'one');",
    )
    .await;
    let slot = unique("selpub");
    let prefix = unique("selpub");
    let config = yaml(
        &db,
        &slot,
        &prefix,
        &["public.items", "public.extra"],
        "    publication_mode: disabled\n",
    );
    let mut relay = Relay::start(&slot, &config);
    let status = tokio::task::block_in_place(|| relay.wait_exit(WAIT));
    assert!(!status.success());
    let log = relay.log_text();
    assert!(
        log.contains(&format!(
            "publication `{slot}` does not exist and source.postgres.publication_mode is `disabled`"
        )) && log.contains(&format!(
            "CREATE PUBLICATION \"{slot}\" FOR TABLE \"public\".\"items\", \"public\".\"extra\""
        )),
        "{log}"
    );
    assert!(published(&db, &slot).await.is_empty());

    // A publication lacking a selected table: named, with the SQL.
    db.exec(&format!("CREATE PUBLICATION {slot} FOR TABLE items"))
        .await;
    relay.restart();
    let status = tokio::task::block_in_place(|| relay.wait_exit(WAIT));
    assert!(!status.success());
    let log = relay.log_text();
    assert!(
        log.contains(&format!(
            "publication `{slot}` does not publish public.extra"
        )) && log.contains(&format!(
            "ALTER PUBLICATION \"{slot}\" ADD TABLE \"public\".\"extra\";"
        )),
        "{log}"
    );
    assert_eq!(published(&db, &slot).await, ["public.items"], "not altered");

    db.exec(&format!("ALTER PUBLICATION {slot} ADD TABLE extra"))
        .await;
    relay.restart();
    wait_until(WAIT, "the relay's slot", || async {
        db.confirmed_flush(&slot).await
    })
    .await;
    db.exec("INSERT INTO items VALUES (2, 'two')").await;
    let records = read_topic(&format!("{prefix}.public.items"), WAIT, "items", |r| {
        r.len() >= 2
    });
    assert_eq!(ops(&records), ["r", "c"]);
    assert_eq!(records[1].payload()["after"]["v"], "two");
    relay.assert_running();
    relay.stop();
}

//! Each shipped plugin end to end: a real table in PostgreSQL, the relay with the plugin pinned
//! in its YAML, and the records on the broker, checked for content.
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{
    component, relay_yaml, services, sha256, unique, Db, Record, Relay, TopicReader,
};

const WAIT: Duration = Duration::from_secs(90);

/// Starts the relay on `table` with one plugin and waits until its slot exists (changes from then
/// on are captured); returns the relay and the topic prefix.
async fn start(db: &Db, table: &str, plugin: &str, config_yaml: &str) -> (Relay, String) {
    let s = services();
    let slot = unique(plugin);
    let prefix = unique(plugin);
    let path = component(plugin);
    let plugins = format!(
        "plugins:\n  - name: {plugin}\n    component: {}\n    sha256: {}\n    config: {config_yaml}\n",
        path.display(),
        sha256(&path)
    );
    let yaml = relay_yaml(db, &slot, &[table], &prefix, &s.brokers, "", "")
        .replace("plugins: []\n", &plugins);
    let mut relay = Relay::start(&slot, &yaml);
    let start = std::time::Instant::now();
    while db.confirmed_flush(&slot).await.is_none() {
        relay.assert_running();
        assert!(
            start.elapsed() < WAIT,
            "the relay did not create its slot: {}",
            relay.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (relay, prefix)
}

fn read(topic: &str, what: &str, n: usize) -> Vec<Record> {
    let mut reader = TopicReader::new(&services().brokers, topic);
    tokio::task::block_in_place(|| reader.read_until(WAIT, what, |r| r.len() >= n).to_vec())
}

fn ops_and_ids(records: &[Record]) -> Vec<(String, i64)> {
    records
        .iter()
        .map(|r| match r.value_json() {
            None => (
                "tombstone".to_string(),
                r.key_json()["payload"]["id"].as_i64().expect("id"),
            ),
            Some(v) => {
                let p = &v["payload"];
                let row = if p["after"].is_null() {
                    &p["before"]
                } else {
                    &p["after"]
                };
                (
                    p["op"].as_str().expect("op").to_string(),
                    row["id"].as_i64().expect("id"),
                )
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_drops_archived_orders() {
    let db = Db::create("filter").await;
    db.exec("CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL); INSERT INTO orders VALUES (1, 'new'), (2, 'archived');").await;
    let (mut relay, prefix) = start(
        &db,
        "public.orders",
        "filter",
        "{drop: \"after.status == 'archived'\"}",
    )
    .await;
    let topic = format!("{prefix}.public.orders");
    read(&topic, "the snapshot of order 1", 1);
    db.exec("INSERT INTO orders VALUES (3, 'paid'); UPDATE orders SET status = 'archived' WHERE id = 1; DELETE FROM orders WHERE id = 2;").await;
    let recs = read(&topic, "order 3 and the delete of 2", 4);
    relay.assert_running();
    // The snapshot of 1 (2 was archived), the insert of 3; 1's archiving is dropped; the delete
    // of 2 has no `after`, so `after.status` is unknown and it passes, with its tombstone.
    assert_eq!(
        ops_and_ids(&recs),
        [
            ("r".into(), 1),
            ("c".into(), 3),
            ("d".into(), 2),
            ("tombstone".into(), 2)
        ]
    );
    assert_eq!(recs[1].payload()["after"]["status"], "paid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_renames_a_column_and_routes_the_topic() {
    let db = Db::create("rename").await;
    db.exec("CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL); INSERT INTO customers VALUES (1, 'ada@example.com');").await;
    let routed = unique("renamed");
    let (mut relay, prefix) = start(
        &db,
        "public.customers",
        "rename",
        &format!("{{columns: {{public.customers.email: email_address}}, topics: [{{regex: '[^.]+\\.public\\.(.*)', replacement: '{routed}.$1'}}]}}"),
    ).await;
    let recs = read(
        &format!("{routed}.customers"),
        "the renamed, rerouted snapshot row",
        1,
    );
    relay.assert_running();
    let v = recs
        .iter()
        .rev()
        .find(|r| r.value.is_some())
        .expect("a value")
        .value_json()
        .expect("json");
    assert_eq!(
        v["payload"]["after"],
        json!({"id": 1, "email_address": "ada@example.com"})
    );
    let after_schema: Vec<&str> = v["schema"]["fields"][1]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        after_schema,
        ["id", "email_address"],
        "the schema follows the rename"
    );
    assert_eq!(v["payload"]["source"]["name"], prefix.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reshape_unwraps_rows_and_rewrites_deletes() {
    let db = Db::create("reshape").await;
    // FULL identity: the delete carries the whole old row (under DEFAULT only the key columns
    // would have values, and the rewritten delete would show the others as null).
    db.exec("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL); ALTER TABLE items REPLICA IDENTITY FULL;").await;
    let (mut relay, prefix) = start(&db, "public.items", "reshape", "{unwrap: true, add_fields: [op, table], delete_handling: rewrite, decimal_handling: string}").await;
    let topic = format!("{prefix}.public.items");
    db.exec("INSERT INTO items VALUES (1, 'bolt', 0.25); DELETE FROM items WHERE id = 1;")
        .await;
    let recs = read(&topic, "the unwrapped insert and the rewritten delete", 2);
    relay.assert_running();
    let values: Vec<Value> = recs.iter().filter_map(|r| r.value_json()).collect();
    assert_eq!(
        values[0],
        json!({"id": 1, "name": "bolt", "price": "0.25", "__op": "c", "__table": "items", "__deleted": "false"})
    );
    assert_eq!(
        values[1],
        json!({"id": 1, "name": "bolt", "price": "0.25", "__op": "d", "__table": "items", "__deleted": "true"})
    );
    assert_eq!(
        recs[0].key_json(),
        json!({"id": 1}),
        "the key is the primary key, without a schema"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_routes_events_by_aggregate_type() {
    let db = Db::create("outbox").await;
    db.exec(
        "CREATE TABLE outbox (id uuid PRIMARY KEY, aggregatetype text NOT NULL, aggregateid text NOT NULL, type text NOT NULL, payload jsonb);",
    )
    .await;
    let route = unique("ob");
    let config = format!("{{route_topic_replacement: \"{route}.$${{routedByValue}}\", fields_additional_placement: [{{field: type, placement: header, alias: eventType}}]}}");
    let (mut relay, _prefix) = start(&db, "public.outbox", "outbox", &config).await;
    db.exec(
        "INSERT INTO outbox VALUES ('5a1f0e2e-0000-4000-8000-000000000001', 'order', 'o-17', 'OrderCreated', '{\"total\": 12.5}');\n\
         DELETE FROM outbox;",
    )
    .await;
    let recs = read(&format!("{route}.order"), "the routed outbox event", 1);
    relay.assert_running();
    assert_eq!(recs.len(), 1, "the delete of the outbox row emits nothing");
    assert_eq!(recs[0].key.as_deref(), Some(&b"o-17"[..]));
    assert_eq!(
        serde_json::from_slice::<Value>(recs[0].value.as_deref().expect("payload")).expect("json"),
        json!({"total": 12.5})
    );
    assert_eq!(
        recs[0].header("id").as_deref(),
        Some("5a1f0e2e-0000-4000-8000-000000000001")
    );
    assert_eq!(recs[0].header("eventType").as_deref(), Some("OrderCreated"));
}

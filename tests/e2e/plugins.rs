//! The plugin sandbox: both sides of every limit, every failure policy, capabilities granted and
//! not, malformed output, and admission (pin, signature) — with small guest components from
//! `tests/guests/` and the shipped `plugins/`, run by the engine's chain.
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use walrelay::event::{
    ChangeEvent, Column, Header, Lsn, Op, Output, ReplicaIdentity, SnapshotMarker, Source,
    TableSchema, Value,
};
use walrelay::plugin::chain::{OnError, PluginChain, PluginSpec, Scope};
use walrelay::plugin::runtime::{DirGrant, Grants, Limits};

use crate::support::{component, sha256, unique};

const PREFIX: &str = "shop";

fn table() -> Arc<TableSchema> {
    let col = |name: &str, oid: u32, key: bool| Column {
        name: name.into(),
        type_oid: oid,
        type_modifier: -1,
        type_name: String::new(),
        base_type_oid: oid,
        nullable: !key,
        is_key: key,
        default: None,
        enum_labels: vec![],
    };
    Arc::new(TableSchema {
        oid: 16384,
        schema: "public".into(),
        name: "customers".into(),
        columns: vec![
            col("id", 23, true),
            col("name", 25, false),
            col("email", 25, false),
        ],
        replica_identity: ReplicaIdentity::Default,
    })
}

fn event(t: &Arc<TableSchema>, id: i32) -> ChangeEvent {
    ChangeEvent {
        op: Op::Create,
        table: t.clone(),
        before: None,
        after: Some(vec![
            Value::Int32(id),
            Value::Text(format!("name {id}")),
            Value::Text(format!("user{id}@example.com")),
        ]),
        source: Source {
            lsn: Lsn(1000 + id as u64),
            last_commit_lsn: None,
            tx_id: Some(7),
            ts_us: 1_700_000_000_000_000,
            snapshot: SnapshotMarker::False,
        },
        topic: None,
        headers: vec![],
    }
}

fn events(n: i32) -> (Arc<TableSchema>, Vec<ChangeEvent>) {
    let t = table();
    let evs = (1..=n).map(|i| event(&t, i)).collect();
    (t, evs)
}

fn spec(name: &str, config: serde_json::Value) -> PluginSpec {
    PluginSpec {
        name: name.into(),
        component: component(name),
        config_json: config.to_string(),
        origin: format!("plugins[0] (`{name}`)"),
        limits: Limits::default(),
        on_error: OnError::Fail,
        scope: Scope::default(),
        grants: Grants::default(),
    }
}

fn chain(specs: Vec<PluginSpec>) -> PluginChain {
    PluginChain::new(specs, PREFIX).expect("chain loads")
}

fn changes(out: &[Output]) -> Vec<&ChangeEvent> {
    out.iter()
        .map(|o| match o {
            Output::Change(e) => e,
            Output::Record(r) => panic!("unexpected plain record to {}", r.topic),
        })
        .collect()
}

fn ids(out: &[Output]) -> Vec<i32> {
    changes(out)
        .iter()
        .map(|e| match e.after.as_ref().expect("after")[0] {
            Value::Int32(i) => i,
            ref v => panic!("id {v:?}"),
        })
        .collect()
}

fn header<'a>(e: &'a ChangeEvent, key: &str) -> Option<String> {
    e.headers
        .iter()
        .find(|h: &&'a Header| h.key == key)
        .map(|h| String::from_utf8_lossy(&h.value).into_owned())
}

#[test]
fn passthrough_keeps_events_exactly() {
    let (_, evs) = events(5);
    let mut c = chain(vec![spec("passthrough", serde_json::Value::Null)]);
    let out = c.run(evs.clone()).expect("run");
    let got: Vec<ChangeEvent> = changes(&out).into_iter().cloned().collect();
    assert_eq!(got, evs, "same events, same table schema, same source");
}

#[test]
fn mask_redacts_configured_columns_only() {
    let (_, evs) = events(2);
    let mut c = chain(vec![spec(
        "mask",
        serde_json::json!({"columns": ["public.customers.email"], "mode": "redact", "text": "****"}),
    )]);
    let out = c.run(evs).expect("run");
    let got = changes(&out);
    assert_eq!(got.len(), 2);
    for (i, e) in got.iter().enumerate() {
        let after = e.after.as_ref().expect("after");
        assert_eq!(after[0], Value::Int32(i as i32 + 1));
        assert_eq!(after[1], Value::Text(format!("name {}", i + 1)));
        assert_eq!(after[2], Value::Text("****".into()));
    }
}

#[test]
fn cpu_budget_stops_an_infinite_loop_and_spares_a_quick_plugin() {
    let (_, evs) = events(3);
    // Fail side: the loop is interrupted at its deadline; the error names plugin, table, LSN.
    let mut s = spec("guest-loop", serde_json::Value::Null);
    s.limits.cpu_ms_per_batch = 50;
    let start = std::time::Instant::now();
    let err = chain(vec![s.clone()])
        .run(evs.clone())
        .expect_err("the loop must fail")
        .to_string();
    assert!(err.contains("exceeded its CPU budget of 50 ms"), "{err}");
    assert!(
        err.contains("guest-loop") && err.contains("public.customers") && err.contains("LSN 0/3E9"),
        "{err}"
    );
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "interrupted, not hung"
    );
    // With skip, every looping event is dropped and the relay goes on.
    s.on_error = OnError::Skip;
    let mut c = chain(vec![s]);
    assert!(c.run(evs.clone()).expect("skip").is_empty());
    assert_eq!(c.counters()[0].1.skipped, 3);
    // Pass side: the same budget is plenty for a plugin that does its work.
    let mut p = spec("passthrough", serde_json::Value::Null);
    p.limits.cpu_ms_per_batch = 50;
    assert_eq!(chain(vec![p]).run(evs).expect("quick plugin").len(), 3);
}

#[test]
fn memory_cap_stops_a_memory_bomb_and_spares_a_small_plugin() {
    let (_, evs) = events(1);
    let mut s = spec("guest-membomb", serde_json::Value::Null);
    s.limits.memory_mb = 32;
    let err = chain(vec![s])
        .run(evs.clone())
        .expect_err("the bomb must fail")
        .to_string();
    assert!(err.contains("exceeded its memory limit of 32 MiB"), "{err}");
    let mut p = spec("passthrough", serde_json::Value::Null);
    p.limits.memory_mb = 32;
    assert_eq!(chain(vec![p]).run(evs).expect("small plugin").len(), 1);
}

#[test]
fn a_trap_fails_only_its_event_under_each_policy() {
    let (_, evs) = events(5);
    let trap_on_3 = serde_json::json!({"id": 3});
    // fail: the error names the plugin, its version, the table and the culprit's LSN.
    let err = chain(vec![spec("guest-trap", trap_on_3.clone())])
        .run(evs.clone())
        .expect_err("fail")
        .to_string();
    assert!(
        err.contains("guest-trap") && err.contains("trapped") && err.contains("LSN 0/3EB"),
        "{err}"
    );
    assert!(err.contains("on_error: fail"), "{err}");
    // skip: the batch is re-run event by event; only event 3 is dropped, order kept.
    let mut s = spec("guest-trap", trap_on_3.clone());
    s.on_error = OnError::Skip;
    let mut c = chain(vec![s]);
    assert_eq!(ids(&c.run(evs.clone()).expect("skip")), [1, 2, 4, 5]);
    assert_eq!(c.counters()[0].1.skipped, 1);
    // The instance was replaced after the trap and keeps working.
    assert_eq!(
        ids(&c.run(vec![evs[0].clone()]).expect("after a trap")),
        [1]
    );
    // dead-letter: event 3, as the plugin received it, goes to the dead-letter topic.
    let mut s = spec("guest-trap", trap_on_3);
    s.on_error = OnError::DeadLetter {
        topic: "shop.dlq".into(),
    };
    let out = chain(vec![s]).run(evs.clone()).expect("dead-letter");
    let got = changes(&out);
    assert_eq!(ids(&out), [1, 2, 3, 4, 5]);
    let dead = got[2];
    assert_eq!(dead.topic.as_deref(), Some("shop.dlq"));
    assert_eq!(dead.after, evs[2].after, "the original event");
    assert!(
        header(dead, "walrelay.error").is_some_and(|e| e.contains("trapped")),
        "{:?}",
        dead.headers
    );
    assert_eq!(
        header(dead, "walrelay.plugin").as_deref(),
        Some("guest-trap")
    );
    assert_eq!(
        header(dead, "walrelay.topic").as_deref(),
        Some("shop.public.customers")
    );
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, e)| i == 2 || e.topic.is_none()),
        "others stay on their topic"
    );
}

#[test]
fn an_error_returned_by_the_plugin_meets_the_policy() {
    let (_, evs) = events(3);
    let mut s = spec("guest-fail-on", serde_json::json!({"id": 2}));
    let err = chain(vec![s.clone()])
        .run(evs.clone())
        .expect_err("fail")
        .to_string();
    assert!(err.contains("returned an error: refused event 2"), "{err}");
    s.on_error = OnError::Skip;
    assert_eq!(ids(&chain(vec![s]).run(evs).expect("skip")), [1, 3]);
}

#[test]
fn malformed_output_is_refused() {
    let (_, evs) = events(1);
    for (kind, expected) in [
        ("unknown-table", "neither an input nor declared"),
        ("short-row", "row has 2 values for the 3 columns"),
        ("wrong-op", "has no after row"),
        ("patch-input", "refers to input 999 of a batch of 1 events"),
        (
            "patch-position",
            "sets after[99], and its after row has 3 values",
        ),
        (
            "patch-table",
            "descriptor 999999, which is neither an input nor declared",
        ),
        ("patch-withheld", "writes a `withheld` value"),
        (
            "change-withheld",
            "carries a `withheld` after value at position 0",
        ),
    ] {
        let err = chain(vec![spec(
            "guest-malformed",
            serde_json::json!({"kind": kind}),
        )])
        .run(evs.clone())
        .expect_err(kind)
        .to_string();
        assert!(
            err.contains("malformed output") && err.contains(expected),
            "{kind}: {err}"
        );
    }
}

#[test]
fn fan_out_and_output_size_limits_have_two_sides() {
    let (_, evs) = events(2);
    let mut fan = spec("guest-fanout", serde_json::json!({"copies": 3}));
    fan.limits.max_fan_out = 3;
    assert_eq!(
        ids(&chain(vec![fan.clone()])
            .run(evs.clone())
            .expect("3 copies allowed")),
        [1, 1, 1, 2, 2, 2]
    );
    // Copies of an input kept more than once count toward max_output_bytes too.
    let mut tight = fan.clone();
    tight.limits.max_output_bytes = 100;
    let err = chain(vec![tight])
        .run(evs.clone())
        .expect_err("copies above max_output_bytes")
        .to_string();
    assert!(
        err.contains("copies of input events") && err.contains("above max_output_bytes 100"),
        "{err}"
    );
    fan.limits.max_fan_out = 2;
    let err = chain(vec![fan])
        .run(evs.clone())
        .expect_err("above max_fan_out")
        .to_string();
    assert!(err.contains("above max_fan_out 2"), "{err}");
    let mut big = spec("guest-bigout", serde_json::json!({"bytes": 100_000}));
    big.limits.max_output_bytes = 1_000_000;
    assert_eq!(
        chain(vec![big.clone()])
            .run(evs.clone())
            .expect("within max_output_bytes")
            .len(),
        2
    );
    // The limit is per call: a batch over it is re-run event by event, and an event whose own
    // output is over it meets the policy.
    big.limits.max_output_bytes = 150_000;
    assert_eq!(
        chain(vec![big.clone()])
            .run(evs.clone())
            .expect("each event fits on its own")
            .len(),
        2
    );
    big.limits.max_output_bytes = 50_000;
    let err = chain(vec![big])
        .run(evs)
        .expect_err("above max_output_bytes")
        .to_string();
    assert!(err.contains("above max_output_bytes 50000"), "{err}");
}

#[test]
fn files_are_reachable_only_inside_a_granted_directory() {
    let (_, evs) = events(1);
    let dir = std::env::temp_dir().join(unique("grant"));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/x.txt"), "granted content").unwrap();
    std::fs::write(dir.join("secret.txt"), "outside").unwrap();
    let probe = |path: &str, grants: Grants| -> String {
        let mut s = spec("guest-fs-probe", serde_json::json!({"path": path}));
        s.grants = grants;
        let out = chain(vec![s]).run(evs.clone()).expect("probe runs");
        header(changes(&out)[0], "probe").expect("probe header")
    };
    // Not granted: nothing to open.
    assert!(probe("/data/x.txt", Grants::default()).starts_with("err:"));
    assert!(probe("/etc/passwd", Grants::default()).starts_with("err:"));
    let granted = Grants {
        dirs: vec![DirGrant {
            host: dir.join("data"),
            guest: "/data".into(),
            readonly: true,
        }],
        ..Default::default()
    };
    assert_eq!(probe("/data/x.txt", granted.clone()), "ok:granted content");
    // Confined: neither `..` nor an absolute path leaves the grant.
    assert!(probe("/data/../secret.txt", granted.clone()).starts_with("err:"));
    assert!(probe("/etc/passwd", granted).starts_with("err:"));
}

#[test]
fn sockets_need_the_network_grant() {
    let (_, evs) = events(1);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let probe = |grants: Grants| -> String {
        let mut s = spec("guest-net-probe", serde_json::json!({"addr": addr}));
        s.grants = grants;
        let out = chain(vec![s]).run(evs.clone()).expect("probe runs");
        header(changes(&out)[0], "probe").expect("probe header")
    };
    let denied = probe(Grants::default());
    assert!(denied.starts_with("err:"), "{denied}");
    assert_eq!(
        probe(Grants {
            network: true,
            ..Default::default()
        }),
        "ok"
    );
}

#[test]
fn clock_and_randomness_are_fixed_unless_granted() {
    let (_, evs) = events(1);
    let probe = |grants: Grants| -> (String, String) {
        let mut s = spec("guest-clock-probe", serde_json::Value::Null);
        s.grants = grants;
        let out = chain(vec![s]).run(evs.clone()).expect("probe runs");
        let e = changes(&out)[0].clone();
        (
            header(&e, "now").expect("now"),
            header(&e, "random").expect("random"),
        )
    };
    let (now_a, random_a) = probe(Grants::default());
    let (_, random_b) = probe(Grants::default());
    assert_eq!(now_a, "0", "the wall clock reads the epoch");
    assert_eq!(
        random_a, random_b,
        "randomness is a fixed stream: replays reproduce"
    );
    let (now, random_c) = probe(Grants {
        clock: true,
        random: true,
        ..Default::default()
    });
    assert!(
        now.parse::<u64>().expect("seconds") > 1_700_000_000,
        "real clock: {now}"
    );
    assert_ne!(random_c, random_a);
}

#[test]
fn scope_and_order_are_kept_around_a_plugin() {
    let t = table();
    let other = Arc::new(TableSchema {
        oid: 16385,
        name: "orders".into(),
        ..(*t).clone()
    });
    let evs = vec![
        event(&t, 1),
        event(&other, 2),
        event(&t, 3),
        event(&other, 4),
    ];
    let mut s = spec(
        "mask",
        serde_json::json!({"columns": ["*.*.email"], "mode": "redact", "text": "x"}),
    );
    s.scope = Scope {
        tables: Some(HashSet::from(["public.customers".to_string()])),
        ops: None,
    };
    let out = chain(vec![s]).run(evs).expect("run");
    let got = changes(&out);
    assert_eq!(
        ids(&out),
        [1, 2, 3, 4],
        "order kept across in- and out-of-scope events"
    );
    let email = |e: &ChangeEvent| e.after.as_ref().unwrap()[2].clone();
    assert_eq!(email(got[0]), Value::Text("x".into()));
    assert_eq!(
        email(got[1]),
        Value::Text("user2@example.com".into()),
        "out of scope: untouched"
    );
    assert_eq!(email(got[2]), Value::Text("x".into()));
}

#[test]
fn a_component_without_the_plugin_interface_is_refused_before_instantiation() {
    let not_a_plugin: PathBuf = component("guest-not-a-plugin");
    let mut s = spec("guest-not-a-plugin", serde_json::Value::Null);
    s.component = not_a_plugin;
    let err = format!(
        "{:#}",
        PluginChain::new(vec![s], PREFIX).err().expect("refused")
    );
    assert!(
        err.contains("exports no walrelay:plugin interface")
            || err.contains("this relay runs walrelay:plugin/transform@0.1.0"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_two_plugins_through_postgres_and_kafka() {
    use crate::support::{relay_yaml, services, Db, Relay, TopicReader};
    let s = services();
    let db = Db::create("chain").await;
    db.exec(
        "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL);\n\
         INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Bob', 'bob@example.com');",
    )
    .await;
    let slot = unique("chain");
    let prefix = unique("chain");
    let mask = component("mask");
    let fail_on = component("guest-fail-on");
    let plugins = format!(
        "plugins:\n\
         \x20 - name: mask-email\n    component: {mask}\n    sha256: {mask_sha}\n    config: {{columns: [public.customers.email], mode: redact, text: '****'}}\n\
         \x20 - name: refuse-3\n    component: {fail}\n    sha256: {fail_sha}\n    config: {{id: 3}}\n    on_error: dead-letter\n    dead_letter_topic: {prefix}.dlq\n",
        mask = mask.display(),
        mask_sha = sha256(&mask),
        fail = fail_on.display(),
        fail_sha = sha256(&fail_on),
    );
    let yaml = relay_yaml(
        &db,
        &slot,
        &["public.customers"],
        &prefix,
        &s.brokers,
        "",
        "",
    )
    .replace("plugins: []\n", &plugins);
    let mut relay = Relay::start(&slot, &yaml);
    let mut main = TopicReader::new(&s.brokers, &format!("{prefix}.public.customers"));
    tokio::task::block_in_place(|| {
        main.read_until(
            std::time::Duration::from_secs(90),
            "the snapshot of ids 1 and 2",
            |r| r.len() >= 2,
        )
    });
    db.exec(
        "INSERT INTO customers VALUES (3, 'Cy', 'cy@example.com'), (4, 'Di', 'di@example.com')",
    )
    .await;
    let recs = tokio::task::block_in_place(|| {
        main.read_until(std::time::Duration::from_secs(90), "ids 1, 2 and 4", |r| {
            r.len() >= 3
        })
        .to_vec()
    });
    relay.assert_running();
    let mut seen: Vec<(i64, String, String)> = recs
        .iter()
        .map(|r| {
            let after = &r.payload()["after"];
            (
                after["id"].as_i64().unwrap(),
                after["name"].as_str().unwrap().to_string(),
                after["email"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (1, "Ada".into(), "****".into()),
            (2, "Bob".into(), "****".into()),
            (4, "Di".into(), "****".into())
        ],
        "masked by the first plugin; id 3 refused by the second"
    );
    let mut dlq = TopicReader::new(&s.brokers, &format!("{prefix}.dlq"));
    let dead = tokio::task::block_in_place(|| {
        dlq.read_until(std::time::Duration::from_secs(60), "the dead letter", |r| {
            !r.is_empty()
        })
        .to_vec()
    });
    assert_eq!(dead.len(), 1);
    let p = dead[0].payload();
    assert_eq!(p["op"], "c");
    assert_eq!(p["after"]["id"], 3);
    assert_eq!(
        p["after"]["email"], "****",
        "as the failing plugin received it: already masked"
    );
    assert_eq!(
        dead[0].header("walrelay.plugin").as_deref(),
        Some("refuse-3")
    );
    assert_eq!(
        dead[0].header("walrelay.topic"),
        Some(format!("{prefix}.public.customers"))
    );
    assert!(
        dead[0]
            .header("walrelay.error")
            .is_some_and(|e| e.contains("refused event 3")),
        "{:?}",
        dead[0].headers
    );
}

/// Admission happens when the configuration is resolved, before anything is compiled or
/// instantiated: `walrelay check` refuses a wrong pin and, under a signature policy, an unsigned
/// or untrusted component, naming the plugin's place in the file.
#[test]
fn pins_and_signatures_are_enforced_before_instantiation() {
    let dir = std::env::temp_dir()
        .join("walrelay-e2e")
        .join(unique("admission"));
    std::fs::create_dir_all(&dir).unwrap();
    let mask = dir.join("mask.wasm");
    std::fs::copy(component("mask"), &mask).unwrap();
    let digest = sha256(&mask);
    let config = |sha: &str, policy: &str| {
        format!(
            "source:\n  postgres:\n    url: postgres://u@127.0.0.1:1/db\n    slot: s\n    publication: p\n    tables: [public.t]\n\
             topic_prefix: p\nsink:\n  kafka:\n    brokers: 127.0.0.1:1\n{policy}plugins:\n  - name: mask\n    component: mask.wasm\n    sha256: {sha}\n"
        )
    };
    let check = |yaml: String| -> (bool, String) {
        let path = dir.join("relay.yaml");
        std::fs::write(&path, yaml).unwrap();
        let out = std::process::Command::new(crate::support::relay_binary())
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, text) = check(config(&digest, ""));
    assert!(ok, "pinned, no policy: admitted: {text}");
    let wrong = "0".repeat(64);
    let (ok, text) = check(config(&wrong, ""));
    assert!(
        !ok && text.contains(&digest) && text.contains("relay.yaml") && text.contains("plugins[0]"),
        "wrong pin refused: {text}"
    );
    // A signature policy: unsigned is refused; signed by the trusted key is admitted.
    let key = dir.join("release");
    let keygen = std::process::Command::new(crate::support::relay_binary())
        .args(["plugin", "keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let public = std::fs::read_to_string(key.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string();
    let policy =
        format!("plugin_policy:\n  require_signature: true\n  trusted_keys: [\"{public}\"]\n");
    let (ok, text) = check(config(&digest, &policy));
    assert!(
        !ok && text.contains("mask.wasm.sig"),
        "unsigned refused: {text}"
    );
    let sign = std::process::Command::new(crate::support::relay_binary())
        .args(["plugin", "sign", "--key"])
        .arg(key.with_extension("key"))
        .arg(&mask)
        .output()
        .unwrap();
    assert!(
        sign.status.success(),
        "{}",
        String::from_utf8_lossy(&sign.stderr)
    );
    let (ok, text) = check(config(&digest, &policy));
    assert!(ok, "signed by a trusted key: admitted: {text}");
    // Tampered after signing: the pin no longer matches (and the signature would not either).
    std::fs::OpenOptions::new()
        .append(true)
        .open(&mask)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"\0"))
        .unwrap();
    let (ok, text) = check(config(&digest, &policy));
    assert!(!ok, "tampered refused: {text}");
}

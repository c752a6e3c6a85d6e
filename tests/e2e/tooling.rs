//! Plugin-author tooling as an author uses it: `walrelay plugin test` over an events file,
//! `walrelay plugin new` (the scaffold builds and its declarative tests pass), `walrelay plugin
//! diff` between two configurations, and `walrelay record` against a real PostgreSQL.
use std::path::{Path, PathBuf};
use std::process::Command;

use walrelay::event::{Op, Value};
use walrelay::events_file::{self, Item};

use crate::support::{
    arg, component, plugins_dir, relay_binary, relay_yaml, scratch_dir, services, unique, Db,
};

/// Runs walrelay; returns its exit code, stdout and stderr.
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(relay_binary())
        .args(args)
        .output()
        .expect("run walrelay");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const CUSTOMERS: &str = r#"{"table": {"schema": "public", "name": "customers", "columns": [{"name": "id", "type": "int4", "key": true, "nullable": false}, {"name": "email", "type": "text"}, {"name": "phone", "type": "int8"}]}}"#;

/// An events file: the customers table, then `events` (one JSON object per line).
fn events_file(dir: &Path, events: &[&str]) -> PathBuf {
    let path = dir.join("events.jsonl");
    let mut text = format!("{CUSTOMERS}\n");
    for e in events {
        text.push_str(e);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn plugin_test_prints_the_output_as_events_lines() {
    let dir = scratch_dir("tooling_test");
    let events = events_file(
        &dir,
        &[
            r#"{"event": {"op": "c", "table": "public.customers", "after": {"id": 1, "email": "ada@example.com", "phone": 5551234}, "source": {"lsn": "0/16B3748", "tx_id": 771, "ts_us": 1714558530125012}}}"#,
            r#"{"event": {"op": "u", "table": "public.customers", "after": {"id": 1, "email": null, "phone": 5550000}, "headers": {"trace": "abc"}}}"#,
            r#"{"event": {"op": "d", "table": "public.customers", "before": {"id": 1}}}"#,
        ],
    );
    let config = dir.join("mask.yaml");
    std::fs::write(
        &config,
        "columns: [public.customers.email, phone]\ntext: '****'\n",
    )
    .unwrap();
    let mask = component("mask");
    let (code, stdout, stderr) = run(&[
        "plugin",
        "test",
        "--plugin",
        arg(&mask),
        "--events",
        arg(&events),
        "--config",
        arg(&config),
    ]);
    assert_eq!(code, 0, "{stderr}");
    // phone (int8) is retyped to text: the reshaped table is described before its events.
    let expected = [
        r#"{"table":{"schema":"public","name":"customers","replica_identity":"default","columns":[{"name":"id","type":"int4","key":true,"nullable":false},{"name":"email","type":"text"},{"name":"phone","type":"text"}]}}"#,
        r#"{"event":{"op":"c","table":"public.customers","before":null,"after":{"id":1,"email":"****","phone":"****"},"source":{"lsn":"0/16B3748","last_commit_lsn":null,"tx_id":771,"ts_us":1714558530125012,"snapshot":"false"},"topic":null,"headers":{}}}"#,
        r#"{"event":{"op":"u","table":"public.customers","before":null,"after":{"id":1,"email":null,"phone":"****"},"topic":null,"headers":{"trace":"abc"}}}"#,
        r#"{"event":{"op":"d","table":"public.customers","before":{"id":1,"email":null,"phone":null},"after":null,"topic":null,"headers":{}}}"#,
    ];
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected, "{stderr}");
    // The output is itself an events file, read by the same code.
    let out = dir.join("out.jsonl");
    std::fs::write(&out, &stdout).unwrap();
    assert_eq!(
        events_file::events(events_file::read_file(&out).unwrap()).len(),
        3
    );

    // A value that does not read: the file, the line and the field.
    let bad = events_file(
        &dir,
        &[
            r#"{"event": {"op": "c", "table": "public.customers", "after": {"id": 1}}}"#,
            r#"{"event": {"op": "c", "table": "public.customers", "after": {"id": 2, "phone": "x"}}}"#,
        ],
    );
    let (code, stdout, stderr) = run(&[
        "plugin",
        "test",
        "--plugin",
        arg(&mask),
        "--events",
        arg(&bad),
        "--config",
        arg(&config),
    ]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "{}:3: after.phone: expected an integer for int8, not \"x\"",
            bad.display()
        )),
        "{stderr}"
    );

    // A plugin that fails an event: its line in the events file.
    let refuse = dir.join("refuse.yaml");
    std::fs::write(&refuse, "{id: 7}").unwrap();
    let events = events_file(
        &dir,
        &[
            r#"{"event": {"op": "c", "table": "public.customers", "after": {"id": 1}}}"#,
            r#"{"event": {"op": "c", "table": "public.customers", "after": {"id": 7}}}"#,
            r#"{"event": {"op": "c", "table": "public.customers", "after": {"id": 8}}}"#,
        ],
    );
    let (code, _, stderr) = run(&[
        "plugin",
        "test",
        "--plugin",
        arg(&component("guest-fail-on")),
        "--events",
        arg(&events),
        "--config",
        arg(&refuse),
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!(
            "{}:3: the `c` event of public.customers: ",
            events.display()
        )) && stderr.contains("refused event 7"),
        "{stderr}"
    );
}

/// The shared target directory (`$CARGO_TARGET_DIR` or the repo's `target`).
fn target_dir() -> PathBuf {
    plugins_dir().parent().expect("target dir").to_path_buf()
}

#[test]
fn plugin_new_scaffold_builds_and_its_tests_pass() {
    // Inside the repository, so the scaffold depends on the SDK by path.
    let repo = &services().repo;
    let parent = repo.join("target").join(unique("scaffold"));
    std::fs::create_dir_all(&parent).unwrap();
    let dir = parent.join("e2e-scaffold");
    let (code, stdout, stderr) = run(&["plugin", "new", "e2e-scaffold", "--dir", arg(&dir)]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "README.md",
        "tests/basic.yaml",
        ".gitignore",
    ] {
        assert!(dir.join(file).is_file(), "no {file}");
    }
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("walrelay-plugin-sdk = { path = \"../../../plugin-sdk\" }"),
        "{manifest}"
    );
    assert!(manifest.contains("crate-type = [\"cdylib\"]"), "{manifest}");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    for needle in [
        "cargo build --release --target wasm32-wasip2",
        "walrelay plugin test",
        "walrelay plugin digest",
    ] {
        assert!(readme.contains(needle), "README lacks {needle}");
    }
    // A second time: the directory is not empty.
    let (code, _, stderr) = run(&["plugin", "new", "e2e-scaffold", "--dir", arg(&dir)]);
    assert_eq!(code, 1);
    assert!(stderr.contains("is not an empty directory"), "{stderr}");

    // Built where scripts/build-plugins builds, so compiled dependencies are reused.
    let build_dir = target_dir().join("wasm");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&dir)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&build_dir)
        .status()
        .expect("cargo build");
    assert!(status.success(), "the scaffold does not build");
    let components = build_dir.join("wasm32-wasip2/release");
    assert!(components.join("e2e_scaffold.wasm").is_file());
    let basic = dir.join("tests/basic.yaml");
    let (code, stdout, stderr) = run(&[
        "plugin",
        "test",
        "--cases",
        arg(&basic),
        "--components",
        arg(&components),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("ok      drops deletes"), "{stdout}");
    assert!(stdout.contains("4 cases: 4 passed, 0 failed"), "{stdout}");
    let _ = std::fs::remove_dir_all(&parent);

    // Outside a walrelay checkout: the registry's SDK, pinned.
    let elsewhere = scratch_dir("scaffold_out").join("filter");
    let (code, _, stderr) = run(&["plugin", "new", "filter", "--dir", arg(&elsewhere)]);
    assert_eq!(code, 0, "{stderr}");
    let manifest = std::fs::read_to_string(elsewhere.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("walrelay-plugin-sdk = \"=0.1.0\""),
        "{manifest}"
    );
}

fn sha256(path: &Path) -> String {
    walrelay::plugin::signing::sha256_file(path)
        .expect("digest")
        .to_string()
}

#[test]
fn plugin_diff_reports_the_events_whose_outputs_differ() {
    let dir = scratch_dir("tooling_diff");
    let mask = dir.join("mask.wasm");
    std::fs::copy(component("mask"), &mask).unwrap();
    let config = |file: &str, mask_config: &str| {
        let path = dir.join(file);
        std::fs::write(
            &path,
            format!(
                "source:\n  postgres:\n    url: postgres://u@127.0.0.1:1/db\n    slot: s\n    publication: p\n    tables: [public.customers]\n\
                 topic_prefix: p\nsink:\n  kafka:\n    brokers: 127.0.0.1:1\nplugins:\n  - name: mask\n    component: mask.wasm\n    sha256: {}\n    config: {mask_config}\n",
                sha256(&mask)
            ),
        )
        .unwrap();
        path
    };
    let current = config("current.yaml", "{columns: [email], mode: redact}");
    let candidate = config("candidate.yaml", "{columns: [email], mode: hash}");
    let events = events_file(
        &dir,
        &[
            r#"{"event": {"op": "c", "table": "public.customers", "after": {"id": 1, "email": "ada@example.com"}}}"#,
            r#"{"event": {"op": "u", "table": "public.customers", "after": {"id": 1, "email": null, "phone": 5}}}"#,
            r#"{"event": {"op": "d", "table": "public.customers", "before": {"id": 1}}}"#,
            r#"{"event": {"op": "c", "table": "public.customers", "after": {"id": 2, "email": "bo@example.com"}}}"#,
        ],
    );
    let (code, stdout, stderr) = run(&[
        "plugin",
        "diff",
        "--current",
        arg(&current),
        "--candidate",
        arg(&candidate),
        "--events",
        arg(&events),
    ]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.ends_with("2 of 4 events differ\n"),
        "{stdout}{stderr}"
    );
    let ev = events.display();
    assert!(
        stdout.contains(&format!("{ev}:2: the outputs differ")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{ev}:5: the outputs differ")),
        "{stdout}"
    );
    assert!(!stdout.contains(&format!("{ev}:3:")), "{stdout}");
    assert!(stdout.contains(r#""email":"****""#), "{stdout}");
    // sha256("ada@example.com"), as the hash mode writes it.
    assert!(
        stdout.contains(
            r#""email":"b5fc85e55755f9e0d030a10ab4429b6b2944855f9a0d60077fe832becbc41d72""#
        ),
        "{stdout}"
    );

    // The same chain on both sides: nothing differs.
    let (code, stdout, _) = run(&[
        "plugin",
        "diff",
        "--current",
        arg(&current),
        "--candidate",
        arg(&current),
        "--events",
        arg(&events),
    ]);
    assert_eq!(code, 0);
    assert_eq!(stdout, "0 of 4 events differ\n");

    // Pins are enforced as in production.
    let wrong = dir.join("wrong.yaml");
    std::fs::write(
        &wrong,
        std::fs::read_to_string(&candidate)
            .unwrap()
            .replace(&sha256(&mask), &"0".repeat(64)),
    )
    .unwrap();
    let (code, _, stderr) = run(&[
        "plugin",
        "diff",
        "--current",
        arg(&current),
        "--candidate",
        arg(&wrong),
        "--events",
        arg(&events),
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("wrong.yaml"), "{stderr}");
    assert!(stderr.to_lowercase().contains("sha256"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_captures_changes_without_confirming_them() {
    let s = services();
    let db = Db::create("record").await;
    db.exec(
        "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2), at timestamptz, tags text[])",
    )
    .await;
    let slot = unique("record");
    let dir = scratch_dir("record");
    let config = dir.join("walrelay.yaml");
    let yaml = relay_yaml(&db, &slot, &["public.items"], "rec", &s.brokers, "", "")
        .replace("snapshot: initial", "snapshot: never");
    std::fs::write(&config, yaml).unwrap();
    let record = |out: &Path, extra: &[&str]| {
        let mut args = vec!["record", "--config", arg(&config), "--out", arg(out)];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = tokio::task::block_in_place(|| run(&args));
        assert_eq!(code, 0, "{stdout}{stderr}");
        stderr
    };

    // The first run creates the slot (no snapshot): nothing to record yet.
    let empty = dir.join("empty.jsonl");
    record(&empty, &["--idle-secs", "2"]);
    assert_eq!(std::fs::read_to_string(&empty).unwrap(), "");
    let confirmed = db
        .confirmed_flush(&slot)
        .await
        .expect("record created the slot");

    db.exec(
        "BEGIN;\
         INSERT INTO items VALUES (1, 'apple', 1.5, '2024-05-01 12:15:30.5+02', '{a,b}');\
         INSERT INTO items VALUES (2, 'pear', NULL, NULL, NULL);\
         COMMIT;\
         UPDATE items SET price = 2.25 WHERE id = 1;\
         DELETE FROM items WHERE id = 2;",
    )
    .await;

    let first = dir.join("first.jsonl");
    let stderr = record(&first, &["--limit", "4", "--idle-secs", "60"]);
    assert!(stderr.contains("recorded 4 events"), "{stderr}");
    let text = std::fs::read_to_string(&first).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert_eq!(
        lines[0],
        r#"{"table":{"schema":"public","name":"items","replica_identity":"default","columns":[{"name":"id","type":"int4","key":true,"nullable":false},{"name":"name","type":"text"},{"name":"price","type":"numeric","typmod":655366},{"name":"at","type":"timestamptz"},{"name":"tags","type":"_text"}]}}"#
    );
    let items = events_file::read_file(&first).unwrap();
    assert!(matches!(items[0].item, Item::Table(_)));
    let events: Vec<_> = events_file::events(items)
        .into_iter()
        .map(|l| l.item)
        .collect();
    let ops: Vec<Op> = events.iter().map(|e| e.op).collect();
    assert_eq!(ops, [Op::Create, Op::Create, Op::Update, Op::Delete]);
    assert_eq!(
        events[0].after,
        Some(vec![
            Value::Int32(1),
            Value::Text("apple".into()),
            Value::Numeric("1.50".into()),
            Value::TimestampTz(1_714_558_530_500_000),
            Value::Text("{a,b}".into()),
        ])
    );
    assert_eq!(
        events[1].after,
        Some(vec![
            Value::Int32(2),
            Value::Text("pear".into()),
            Value::Null,
            Value::Null,
            Value::Null,
        ])
    );
    assert_eq!(
        events[2].after.as_ref().unwrap()[2],
        Value::Numeric("2.25".into())
    );
    assert_eq!(
        events[3].before,
        Some(vec![
            Value::Int32(2),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null
        ])
    );
    // One transaction for both inserts; a later one for the update.
    assert_eq!(events[0].source.tx_id, events[1].source.tx_id);
    assert!(events[2].source.tx_id > events[0].source.tx_id);
    assert!(events[0].source.lsn < events[3].source.lsn);
    assert!(
        lines[1].contains(r#""at":"2024-05-01 10:15:30.5+00""#),
        "{}",
        lines[1]
    );

    // Nothing was confirmed: the slot did not move, and recording again gives the same file.
    assert_eq!(
        db.confirmed_flush(&slot).await.as_deref(),
        Some(confirmed.as_str())
    );
    let second = dir.join("second.jsonl");
    record(&second, &["--limit", "4", "--idle-secs", "60"]);
    assert_eq!(std::fs::read_to_string(&second).unwrap(), text);
    assert_eq!(
        db.confirmed_flush(&slot).await.as_deref(),
        Some(confirmed.as_str())
    );
}

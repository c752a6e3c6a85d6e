//! Plugins in other languages: the redact mask of `examples/plugins/{python,javascript,c}`,
//! built into components by `scripts/build-language-plugins`, run by the engine's chain over the
//! same events as the Rust `mask` plugin, must give exactly its output — and the values written
//! out below. A language whose toolchain cannot be installed fails here: nothing is skipped.
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use walrelay::event::{
    ChangeEvent, Column, Lsn, Op, Output, ReplicaIdentity, SnapshotMarker, Source, TableSchema,
    Value,
};
use walrelay::plugin::chain::{OnError, PluginChain, PluginSpec, Scope};
use walrelay::plugin::runtime::{Grants, Limits};

use crate::support::{component, language_plugins_dir};

/// Masks text, varchar and bpchar columns (kept as they are typed) and int2, bytea and jsonb ones
/// (retyped to text), with exact names and `*` in each part; `other.customers.name` must not
/// match `public.customers.name`.
const CONFIG: &str = r#"{
    "columns": [
        "public.customers.email",
        "*.phone",
        "shop.orders.card_*",
        "orders.*load",
        "meta",
        "shop.*.ship_email",
        "other.customers.name"
    ],
    "mode": "redact",
    "text": "[redacted]"
}"#;
const R: &str = "[redacted]";
/// Above 2^53: a language that carries s64 as a float would change it.
const BIG_ID: i64 = 9_007_199_254_740_993;

fn language_component(file: &str) -> PathBuf {
    let path = language_plugins_dir().join(file);
    assert!(path.exists(), "no component {}", path.display());
    path
}

fn col(name: &str, oid: u32, type_name: &str, key: bool) -> Column {
    Column {
        name: name.into(),
        type_oid: oid,
        type_modifier: -1,
        type_name: type_name.into(),
        base_type_oid: oid,
        nullable: !key,
        is_key: key,
        default: None,
        enum_labels: vec![],
    }
}

fn customers() -> Arc<TableSchema> {
    let mut phone = col("phone", 1043, "varchar", false);
    phone.type_modifier = 24;
    Arc::new(TableSchema {
        oid: 16385,
        schema: "public".into(),
        name: "customers".into(),
        columns: vec![
            col("id", 23, "int4", true),
            col("name", 25, "text", false),
            col("email", 25, "text", false),
            phone,
            col("birthday", 1082, "date", false),
            col("note", 25, "text", false),
        ],
        replica_identity: ReplicaIdentity::Default,
    })
}

fn orders_columns() -> Vec<Column> {
    let mut card_number = col("card_number", 1042, "bpchar", false);
    card_number.type_modifier = 20;
    let mut card_cvv = col("card_cvv", 21, "int2", false);
    card_cvv.default = Some("0".into());
    // A domain over text: masked, and still text underneath, so not retyped.
    let mut ship_email = col("ship_email", 90_001, "email_address", false);
    ship_email.base_type_oid = 25;
    vec![
        col("id", 20, "int8", true),
        col("customer_email", 1043, "varchar", false),
        col("total", 1700, "numeric", false),
        col("paid", 16, "bool", false),
        card_number,
        card_cvv,
        col("payload", 17, "bytea", false),
        col("placed_at", 1184, "timestamptz", false),
        col("meta", 3802, "jsonb", false),
        col("token", 2950, "uuid", false),
        col("weight", 701, "float8", false),
        ship_email,
    ]
}

fn orders() -> Arc<TableSchema> {
    Arc::new(TableSchema {
        oid: 16386,
        schema: "shop".into(),
        name: "orders".into(),
        columns: orders_columns(),
        replica_identity: ReplicaIdentity::Full,
    })
}

/// `shop.orders` as every mask describes it: card_cvv, payload and meta are text now, under the
/// first id a plugin derives (u32::MAX).
fn masked_orders() -> Arc<TableSchema> {
    let mut columns = orders_columns();
    for i in [5, 6, 8] {
        let c = &mut columns[i];
        c.type_oid = 25;
        c.base_type_oid = 25;
        c.type_modifier = -1;
        c.type_name = "text".into();
        c.default = None;
        c.enum_labels.clear();
    }
    Arc::new(TableSchema {
        oid: u32::MAX,
        schema: "shop".into(),
        name: "orders".into(),
        columns,
        replica_identity: ReplicaIdentity::Full,
    })
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn event(
    op: Op,
    table: &Arc<TableSchema>,
    lsn: u64,
    before: Option<Vec<Value>>,
    after: Option<Vec<Value>>,
) -> ChangeEvent {
    ChangeEvent {
        op,
        table: table.clone(),
        before,
        after,
        source: Source {
            lsn: Lsn(lsn),
            last_commit_lsn: Some(Lsn(0x16_B374_D000)),
            tx_id: Some(4_242),
            ts_us: 1_700_000_000_123_456,
            snapshot: SnapshotMarker::False,
        },
        topic: None,
        headers: vec![],
    }
}

fn ada() -> Vec<Value> {
    vec![
        Value::Int32(1),
        text("Ada"),
        text("ada@example.com"),
        text("+44 20 7946 0000"),
        Value::Date(-47_482),
        text("vip"),
    ]
}

fn order() -> Vec<Value> {
    vec![
        Value::Int64(BIG_ID),
        text("ada@example.com"),
        Value::Numeric("-12.3400".into()),
        Value::Bool(true),
        text("4111111111111111    "),
        Value::Int16(-123),
        Value::Bytes(vec![0, 1, 0xfe, 0xff]),
        Value::TimestampTz(1_700_000_000_654_321),
        Value::Json(r#"{"gift": true}"#.into()),
        Value::Uuid("5f0c6a1e-8d4b-4c1a-9b7e-2d3f4a5b6c7d".into()),
        Value::Float64(0.1),
        text("ship@example.com"),
    ]
}

/// Two batches over two tables: creates, updates (without and with an old row, with a null and
/// an unchanged TOASTed value, with a key change) and deletes (key-only old rows).
fn batches() -> Vec<Vec<ChangeEvent>> {
    let (c, o) = (customers(), orders());
    let mut toasted = ada();
    toasted[3] = Value::Null;
    toasted[5] = Value::UnchangedToast;
    let mut renumbered = ada();
    renumbered[0] = Value::Int32(2);
    let mut key_only = vec![Value::Null; 6];
    key_only[0] = Value::Int32(1);
    let mut paid = order();
    paid[3] = Value::Bool(false);
    paid[5] = Value::Null;
    paid[6] = Value::UnchangedToast;
    paid[10] = Value::Float64(-2.5e-7);
    let mut order_key = vec![Value::Null; 12];
    order_key[0] = Value::Int64(BIG_ID);
    let mut gone = vec![Value::Null; 6];
    gone[0] = Value::Int32(2);
    vec![
        vec![
            event(Op::Create, &c, 0x16_B374_D848, None, Some(ada())),
            event(Op::Create, &o, 0x16_B374_D900, None, Some(order())),
            event(Op::Update, &c, 0x16_B374_DA00, None, Some(toasted)),
            event(
                Op::Update,
                &c,
                0x16_B374_DB00,
                Some(key_only),
                Some(renumbered),
            ),
        ],
        vec![
            event(Op::Update, &o, 0x16_B374_E000, Some(order()), Some(paid)),
            event(Op::Delete, &o, 0x16_B374_E100, Some(order_key), None),
            event(Op::Delete, &c, 0x16_B374_E200, Some(gone), None),
        ],
    ]
}

/// The output every mask must give for `batches()`, written out.
fn expected() -> Vec<Vec<ChangeEvent>> {
    let (c, m) = (customers(), masked_orders());
    let ada = || {
        vec![
            Value::Int32(1),
            text("Ada"),
            text(R),
            text(R),
            Value::Date(-47_482),
            text("vip"),
        ]
    };
    let order = || {
        vec![
            Value::Int64(BIG_ID),
            text("ada@example.com"),
            Value::Numeric("-12.3400".into()),
            Value::Bool(true),
            text(R),
            text(R),
            text(R),
            Value::TimestampTz(1_700_000_000_654_321),
            text(R),
            Value::Uuid("5f0c6a1e-8d4b-4c1a-9b7e-2d3f4a5b6c7d".into()),
            Value::Float64(0.1),
            text(R),
        ]
    };
    let toasted = vec![
        Value::Int32(1),
        text("Ada"),
        text(R),
        Value::Null,
        Value::Date(-47_482),
        Value::UnchangedToast,
    ];
    let mut key_only = vec![Value::Null; 6];
    key_only[0] = Value::Int32(1);
    let mut renumbered = ada();
    renumbered[0] = Value::Int32(2);
    let paid = vec![
        Value::Int64(BIG_ID),
        text("ada@example.com"),
        Value::Numeric("-12.3400".into()),
        Value::Bool(false),
        text(R),
        Value::Null,
        Value::UnchangedToast,
        Value::TimestampTz(1_700_000_000_654_321),
        text(R),
        Value::Uuid("5f0c6a1e-8d4b-4c1a-9b7e-2d3f4a5b6c7d".into()),
        Value::Float64(-2.5e-7),
        text(R),
    ];
    let mut order_key = vec![Value::Null; 12];
    order_key[0] = Value::Int64(BIG_ID);
    let mut gone = vec![Value::Null; 6];
    gone[0] = Value::Int32(2);
    vec![
        vec![
            event(Op::Create, &c, 0x16_B374_D848, None, Some(ada())),
            event(Op::Create, &m, 0x16_B374_D900, None, Some(order())),
            event(Op::Update, &c, 0x16_B374_DA00, None, Some(toasted)),
            event(
                Op::Update,
                &c,
                0x16_B374_DB00,
                Some(key_only),
                Some(renumbered),
            ),
        ],
        vec![
            event(Op::Update, &m, 0x16_B374_E000, Some(order()), Some(paid)),
            event(Op::Delete, &m, 0x16_B374_E100, Some(order_key), None),
            event(Op::Delete, &c, 0x16_B374_E200, Some(gone), None),
        ],
    ]
}

fn spec(name: &str, component: PathBuf, config: &str) -> PluginSpec {
    PluginSpec {
        name: name.into(),
        component,
        config_json: config.into(),
        origin: format!("plugins[0] (`{name}`)"),
        // The deadline is measured on the epoch clock, so a busy machine eats into it: the
        // Python and JavaScript components start whole interpreters, give them room.
        limits: Limits {
            cpu_ms_per_batch: 5_000,
            ..Limits::default()
        },
        on_error: OnError::Fail,
        scope: Scope::default(),
        grants: Grants::default(),
    }
}

/// Runs `batches()` through one chain of the component, batch by batch.
fn run(name: &str, component: PathBuf) -> Vec<Vec<ChangeEvent>> {
    let mut chain = PluginChain::new(vec![spec(name, component, CONFIG)], "shop")
        .unwrap_or_else(|e| panic!("{name} loads: {e:#}"));
    batches()
        .into_iter()
        .map(|batch| {
            chain
                .run(batch)
                .unwrap_or_else(|e| panic!("{name} runs: {e:#}"))
                .into_iter()
                .map(|o| match o {
                    Output::Change(e) => e,
                    Output::Record(r) => panic!("{name}: unexpected plain record to {}", r.topic),
                })
                .collect()
        })
        .collect()
}

fn rust_output() -> &'static Vec<Vec<ChangeEvent>> {
    static OUT: OnceLock<Vec<Vec<ChangeEvent>>> = OnceLock::new();
    OUT.get_or_init(|| run("mask", component("mask")))
}

/// The configurations every mask refuses at `init`.
const BAD_CONFIGS: &[&str] = &[
    "null",
    "[]",
    r#"{"columns": "x"}"#,
    r#"{"columns": [1]}"#,
    r#"{"columns": ["a.b.c.d"]}"#,
    r#"{"columns": ["a..b"]}"#,
    r#"{"columns": ["x"], "mode": "shred"}"#,
    r#"{"columns": ["x"], "text": 5}"#,
    r#"{"columns": ["x"], "colums": []}"#,
];

fn assert_refuses_bad_configs(name: &str, component: PathBuf) {
    for config in BAD_CONFIGS {
        let result = PluginChain::new(vec![spec(name, component.clone(), config)], "shop");
        assert!(result.is_err(), "{name} accepted {config}");
        // The Rust twin refuses it too.
        assert!(
            PluginChain::new(vec![spec("mask", component_of_rust(), config)], "shop").is_err(),
            "mask accepted {config}"
        );
    }
    // And both accept the defaults: mode and text may go.
    for good in [
        r#"{"columns": ["email"]}"#,
        r#"{"columns": [], "mode": null}"#,
    ] {
        PluginChain::new(vec![spec(name, component.clone(), good)], "shop")
            .unwrap_or_else(|e| panic!("{name} refused {good}: {e:#}"));
    }
}

fn component_of_rust() -> PathBuf {
    component("mask")
}

/// Asserts one language's output equals the explicit expectation and the Rust twin's, event by
/// event so a failure names the first difference.
fn assert_same_as_rust(name: &str, file: &str) {
    let got = run(name, language_component(file));
    let want = expected();
    assert_eq!(got.len(), want.len(), "{name}: batches");
    for (b, (got_batch, want_batch)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            got_batch.len(),
            want_batch.len(),
            "{name}: events of batch {b}"
        );
        for (i, (g, w)) in got_batch.iter().zip(want_batch).enumerate() {
            assert_eq!(
                g, w,
                "{name}: batch {b} event {i} differs from the expected output"
            );
        }
    }
    assert_eq!(&got, rust_output(), "{name}: differs from the Rust mask");
    assert_refuses_bad_configs(name, language_component(file));
}

#[test]
fn rust_mask_gives_the_expected_output() {
    assert_eq!(rust_output(), &expected());
}

#[test]
fn python_mask_matches_the_rust_mask() {
    assert_same_as_rust("mask-python", "mask-python.wasm");
}

#[test]
fn javascript_mask_matches_the_rust_mask() {
    assert_same_as_rust("mask-js", "mask-js.wasm");
}

#[test]
fn c_mask_matches_the_rust_mask() {
    assert_same_as_rust("mask-c", "mask-c.wasm");
}

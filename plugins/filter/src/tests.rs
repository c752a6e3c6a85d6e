use walrelay_plugin_sdk::testing::{self, change, ChangeEvent, Harness};
use walrelay_plugin_sdk::{Op, Value};

use super::Filter;
use crate::expr;

const COLUMNS: &[(&str, &str)] = &[
    ("id", "int4"),
    ("status", "text"),
    ("price", "numeric"),
    ("amount", "float8"),
    ("active", "bool"),
    ("created", "timestamptz"),
    ("big", "int8"),
    ("Mixed Case", "text"),
];

/// A row of `orders` with these values and nulls elsewhere.
fn row(values: &[(&str, Value)]) -> Vec<Value> {
    COLUMNS
        .iter()
        .map(|(name, _)| {
            values
                .iter()
                .find(|(n, _)| n == name)
                .map_or(Value::Null, |(_, v)| v.clone())
        })
        .collect()
}

fn config(expr_key: &str, expr: &str) -> String {
    serde_json_string(&[(expr_key, expr)])
}

fn serde_json_string(pairs: &[(&str, &str)]) -> String {
    let map: walrelay_plugin_sdk::serde_json::Map<_, _> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), (*v).into()))
        .collect();
    walrelay_plugin_sdk::serde_json::Value::Object(map).to_string()
}

/// Runs one event through a filter built from `config`; whether it came out.
fn passes(config: &str, event: ChangeEvent) -> bool {
    let mut harness = Harness::<Filter>::new(config).unwrap();
    let orders = testing::table(1, "public", "orders", COLUMNS);
    let other = testing::table(2, "public", "other", &[("id", "int4")]);
    let (tables, outputs) = harness
        .run(vec![orders, other], vec![event.clone()])
        .unwrap();
    assert!(tables.is_empty(), "the filter never reshapes");
    harness.check(&outputs).unwrap();
    match outputs.as_slice() {
        [] => false,
        [out] => {
            assert_eq!(change(out), Some(&event), "kept events are unchanged");
            true
        }
        _ => panic!("more than one output"),
    }
}

fn keeps(expr: &str, event: ChangeEvent) -> bool {
    passes(&config("keep", expr), event)
}

fn insert(values: &[(&str, Value)]) -> ChangeEvent {
    testing::insert(1, row(values))
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn numeric(s: &str) -> Value {
    Value::Numeric(s.into())
}

#[test]
fn parse_errors_point_at_the_column() {
    let err = |src| expr::parse(src).unwrap_err();
    assert_eq!(
        err("after.id == 1 and )"),
        "unexpected ')' at column 19 (expected a value)"
    );
    assert_eq!(
        err("(after.id == 1"),
        "unexpected end of expression at column 15 (expected ')')"
    );
    assert_eq!(
        err("after.id = 1"),
        "unexpected '=' at column 10 (did you mean '=='?)"
    );
    assert_eq!(
        err("after.status == 'abc"),
        "unterminated string starting at column 17"
    );
    assert_eq!(
        err("status == 'x'"),
        "unknown name 'status' at column 1 (expected op, table, before.<column>, after.<column> \
         or a literal; strings take single quotes)"
    );
    assert_eq!(
        err("after.id in [1, 2"),
        "unexpected end of expression at column 18 (expected ',' or ']')"
    );
    assert_eq!(
        err("after.id is 1"),
        "unexpected number 1 at column 13 (expected 'null')"
    );
    assert_eq!(
        err("after.id == 1 after.id == 2"),
        "unexpected 'after' at column 15 (expected 'and', 'or' or the end)"
    );
    assert!(err("'x'").starts_with("string 'x' at column 1 is not a condition"));
    assert!(err("op").starts_with("'op' at column 1 is not a condition"));
    assert_eq!(
        err("after.x > - 1"),
        "unexpected '-' at column 11 (only number literals may be negative)"
    );
    assert_eq!(
        err("after. == 1"),
        "unexpected '==' at column 8 (expected a column name)"
    );
    // Columns count characters, not bytes.
    assert_eq!(
        err("after.s == 'é' )"),
        "unexpected ')' at column 16 (expected 'and', 'or' or the end)"
    );
}

#[test]
fn parses_precedence_and_forms() {
    // `not` binds tighter than `and`, `and` tighter than `or`.
    let a = expr::parse("not after.active or after.id == 1 and op == c").unwrap();
    let b = expr::parse("(not after.active) or ((after.id == 1) and (op == 'c'))").unwrap();
    assert_eq!(a, b);
    // Keywords are case-insensitive.
    let c = expr::parse("NOT after.active OR after.id == 1 AND op == C").unwrap();
    assert_eq!(a, c);
    for ok in [
        "true",
        "after.status is not null",
        "after.id not in []",
        "after.\"Mixed Case\" == 'x'",
        "after.2fa == true",
        "after.price >= -12.50",
        "table == 'public.orders' and op in [c, u, d, r, t]",
        "before.x == null or not (after.x != 1)",
        "after.s == 'it''s'",
    ] {
        expr::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn config_errors() {
    let err = |json: &str| Harness::<Filter>::new(json).err().unwrap();
    assert_eq!(
        err(r#"{"keep": "after.id == 1", "drop": "true"}"#),
        "give either `keep` or `drop`, not both"
    );
    assert!(err(r#"{"tables": ["public.t"]}"#).starts_with("an expression is required"));
    assert!(err("null").starts_with("an expression is required"));
    assert_eq!(
        err(r#"{"drop": "after.id > (1)"}"#),
        "drop: unexpected '(' at column 12 (expected a value)"
    );
    assert_eq!(
        err(r#"{"keep": "true", "ops": ["x"]}"#),
        "`ops`: `x` is not an op (c, u, d, r or t)"
    );
    assert_eq!(
        err(r#"{"keep": "true", "tables": ["orders"]}"#),
        "`tables`: `orders` is not a schema.table name"
    );
    assert!(err(r#"{"keep": "true", "tables": []}"#).starts_with("`tables` is empty"));
    assert!(err(r#"{"keep": "true", "filter": 1}"#).starts_with("unknown configuration key"));
    assert!(err(r#"{"keep": 1}"#).contains("`keep` must be a string"));
}

#[test]
fn interest_follows_tables_and_ops() {
    let harness =
        Harness::<Filter>::new(r#"{"keep": "true", "tables": ["public.orders"], "ops": ["c"]}"#)
            .unwrap();
    assert_eq!(
        harness.interest().tables,
        Some(vec!["public.orders".to_string()])
    );
    assert_eq!(harness.interest().ops, Some(vec![Op::Create]));
    let all = Harness::<Filter>::new(r#"{"keep": "true"}"#).unwrap();
    assert_eq!(all.interest().tables, None);
    assert_eq!(all.interest().ops, None);
}

#[test]
fn scope_limits_what_is_filtered() {
    let config = r#"{"drop": "true", "tables": ["public.orders"], "ops": ["u", "d"]}"#;
    assert!(passes(config, insert(&[("id", Value::Int32(1))])));
    assert!(!passes(
        config,
        testing::update(1, None, row(&[("id", Value::Int32(1))]))
    ));
    assert!(!passes(config, testing::delete(1, row(&[]))));
    // Another table passes whatever its op.
    assert!(passes(config, testing::delete(2, vec![Value::Int32(1)])));
}

#[test]
fn keep_and_drop() {
    let event = || insert(&[("status", text("archived"))]);
    assert!(!keeps("after.status != 'archived'", event()));
    assert!(keeps("after.status == 'archived'", event()));
    assert!(passes(
        &config("drop", "after.status != 'archived'"),
        event()
    ));
    assert!(!passes(
        &config("drop", "after.status == 'archived'"),
        event()
    ));
}

#[test]
fn op_and_table() {
    let ins = || insert(&[]);
    assert!(keeps("op == 'c'", ins()));
    assert!(keeps("op == c", ins()));
    assert!(!keeps("op == u", ins()));
    assert!(keeps("op in [u, c]", ins()));
    assert!(keeps("op not in [u, d]", ins()));
    assert!(keeps("table == 'public.orders'", ins()));
    assert!(!keeps("table != 'public.orders'", ins()));
    assert!(keeps("table > 'public.a'", ins()));
    let truncate = testing::event(Op::Truncate, 1, None, None);
    assert!(keeps("op == t and after.id is null", truncate));
}

#[test]
fn numbers_compare_across_kinds() {
    let e = || {
        insert(&[
            ("id", Value::Int32(42)),
            ("price", numeric("12.50")),
            ("amount", Value::Float64(0.1)),
            ("big", Value::Int64(9_007_199_254_740_993)),
            ("created", Value::Timestamptz(1_714_558_530_125_012)),
        ])
    };
    for (expr, expected) in [
        ("after.id == 42", true),
        ("after.id == 42.0", true),
        ("after.id < 42.000001", true),
        ("after.id > -1", true),
        ("after.price == 12.5", true),
        ("after.price == 12.50000", true),
        ("after.price > 12.49999999999999999999999", true),
        ("after.price < 12.50000000000000000000001", true),
        ("after.price > 12", true),
        ("after.price < 13", true),
        ("after.price == after.price", true),
        ("after.amount == 0.1", true),
        ("after.amount < after.price", true),
        ("after.amount > 0", true),
        // int8 beyond f64's precision still compares exactly with integer literals.
        ("after.big == 9007199254740993", true),
        ("after.big > 9007199254740992", true),
        ("after.created >= 1714558530125012", true),
        ("after.created > 1714558530125012", false),
        // Numbers never equal strings.
        ("after.id == '42'", false),
        ("after.id != '42'", false),
        ("after.price == '12.50'", false),
    ] {
        assert_eq!(keeps(expr, e()), expected, "{expr}");
    }
}

#[test]
fn exact_decimals() {
    let cmp = |a: &str, b: &str| {
        expr::Dec::parse(a)
            .unwrap()
            .cmp(&expr::Dec::parse(b).unwrap())
    };
    use std::cmp::Ordering::*;
    assert_eq!(cmp("12.50", "12.5"), Equal);
    assert_eq!(cmp("-0.0", "0"), Equal);
    assert_eq!(cmp("0.51", "0.6"), Less);
    assert_eq!(cmp("-0.51", "-0.6"), Greater);
    assert_eq!(cmp("100", "99.999"), Greater);
    assert_eq!(cmp("-100", "99"), Less);
    assert_eq!(cmp("007", "7.000"), Equal);
    assert_eq!(
        cmp(
            "123456789012345678901234567890.1",
            "123456789012345678901234567890.09"
        ),
        Greater
    );
    assert!(expr::Dec::parse("1e5").is_none());
    assert!(expr::Dec::parse(".").is_none());
    assert!(expr::Dec::parse("NaN").is_none());
}

#[test]
fn special_numerics_and_floats() {
    let nan = || {
        insert(&[
            ("price", numeric("NaN")),
            ("amount", Value::Float64(f64::NAN)),
        ])
    };
    assert!(!keeps("after.price == 1", nan()));
    assert!(!keeps("after.price != 1", nan()));
    assert!(!keeps("after.amount == after.amount", nan()));
    let inf = || insert(&[("price", numeric("Infinity"))]);
    assert!(keeps("after.price > 99999999999999999999999", inf()));
    let f4 = || testing::insert(3, vec![Value::Float32(0.1)]);
    let mut harness = Harness::<Filter>::new(&config("keep", "after.f == 0.1")).unwrap();
    let t = testing::table(3, "public", "floats", &[("f", "float4")]);
    let (_, out) = harness.run(vec![t], vec![f4()]).unwrap();
    assert_eq!(out.len(), 1, "a float4 0.1 equals the literal 0.1");
}

#[test]
fn strings_and_other_kinds() {
    let e = || {
        insert(&[
            ("status", text("it's")),
            ("active", Value::Boolean(true)),
            ("Mixed Case", text("b")),
        ])
    };
    assert!(keeps("after.status == 'it''s'", e()));
    assert!(keeps("after.status > 'it'", e()));
    assert!(keeps("after.\"Mixed Case\" in ['a', 'b']", e()));
    assert!(keeps("after.active", e()));
    assert!(keeps("after.active == true", e()));
    assert!(!keeps("not after.active", e()));
    // A non-boolean used as a condition is false.
    assert!(!keeps("after.status", e()));
    // Incompatible kinds are false, not an error.
    assert!(!keeps("after.active == 1", e()));
    assert!(!keeps("after.active != 1", e()));
    assert!(!keeps("after.status < 5", e()));
}

#[test]
fn nulls_and_missing_rows_are_unknown() {
    let e = || insert(&[("id", Value::Int32(1))]);
    assert!(keeps("after.status is null", e()));
    assert!(!keeps("after.status is not null", e()));
    assert!(keeps("after.id is not null", e()));
    // No `before` in an insert: every before.<col> is null.
    assert!(keeps("before.id is null", e()));
    // A column the table lacks reads as null.
    assert!(keeps("after.nope is null", e()));
    // Comparisons with null are unknown: neither they nor their negation match.
    assert!(!keeps("after.status != 'archived'", e()));
    assert!(!keeps("not (after.status == 'archived')", e()));
    assert!(!keeps("after.status == null", e()));
    assert!(!keeps("after.status in ['a', 'b']", e()));
    assert!(!keeps("after.status not in ['a', 'b']", e()));
    // Three-valued and/or.
    assert!(keeps("after.status == 'x' or true", e()));
    assert!(!keeps("after.status == 'x' and true", e()));
    assert!(!keeps("after.status == 'x' or false", e()));
    assert!(keeps("not (after.status == 'x' and false)", e()));
    // `in` with a null item: true when another item matches, else unknown.
    assert!(keeps("after.id in [null, 1]", e()));
    assert!(!keeps("after.id not in [null, 2]", e()));
    // Unknown drops under keep and keeps under drop.
    assert!(passes(&config("drop", "after.status == 'archived'"), e()));
    assert!(passes(&config("drop", "after.status != 'archived'"), e()));
}

#[test]
fn unchanged_toast_is_unknown_but_not_null() {
    let e = || {
        testing::update(
            1,
            None,
            row(&[("id", Value::Int32(1)), ("status", Value::UnchangedToast)]),
        )
    };
    assert!(!keeps("after.status == 'x'", e()));
    assert!(!keeps("after.status != 'x'", e()));
    assert!(!keeps("not (after.status == 'x')", e()));
    assert!(!keeps("after.status is null", e()));
    assert!(keeps("after.status is not null", e()));
    assert!(passes(&config("drop", "after.status != 'x'"), e()));
}

#[test]
fn the_readme_example() {
    let expr = "after.status != 'archived' and (op in [c, u] or before.id > 100)";
    let config = serde_json_string(&[("keep", expr)]);
    let active = || row(&[("id", Value::Int32(7)), ("status", text("open"))]);
    let archived = || row(&[("id", Value::Int32(7)), ("status", text("archived"))]);
    assert!(passes(&config, testing::insert(1, active())));
    assert!(!passes(&config, testing::insert(1, archived())));
    assert!(passes(&config, testing::update(1, None, active())));
    let mut read = testing::insert(1, active());
    read.op = Op::Read;
    assert!(!passes(&config, read.clone()));
    read.before = Some(row(&[("id", Value::Int32(101))]));
    assert!(passes(&config, read));
    // A delete has no after row: after.status is unknown, so the delete is dropped.
    assert!(!passes(&config, testing::delete(1, active())));
}

#[test]
fn many_events_in_a_batch() {
    let mut harness = Harness::<Filter>::new(&config("keep", "after.id >= 2")).unwrap();
    let orders = testing::table(1, "public", "orders", COLUMNS);
    let events: Vec<_> = (0..5).map(|i| insert(&[("id", Value::Int32(i))])).collect();
    let (_, out) = harness.run(vec![orders], events.clone()).unwrap();
    let kept: Vec<_> = out.iter().map(|o| change(o).unwrap().clone()).collect();
    assert_eq!(kept, events[2..]);
}

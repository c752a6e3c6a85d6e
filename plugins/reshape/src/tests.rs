use super::*;
use walrelay_plugin_sdk::testing::{self, change, ChangeEvent, Harness, Output};

/// `public.orders(id int4 key, amount numeric(10,2), note text, internal_note text, placed
/// timestamptz)`.
fn orders() -> Table {
    let mut t = testing::table(
        1,
        "public",
        "orders",
        &[
            ("id", "int4"),
            ("amount", "numeric"),
            ("note", "text"),
            ("internal_note", "text"),
            ("placed", "timestamptz"),
        ],
    );
    t.columns[1].type_modifier = ((10 << 16) | 2) + 4;
    t
}

fn row(id: i32, amount: &str) -> Vec<Value> {
    vec![
        Value::Int32(id),
        Value::Numeric(amount.into()),
        "hello".into(),
        "secret".into(),
        Value::Timestamptz(1_478_260_290_123_456),
    ]
}

fn with_source(mut event: ChangeEvent) -> ChangeEvent {
    event.topic = Some("pg.public.orders".into());
    event.source.lsn = 24_023_128;
    event.source.ts_us = 1_714_558_530_125_012;
    event.source.tx_id = Some(771);
    event
}

fn records(outputs: &[Output]) -> Vec<(String, Option<String>, Option<String>)> {
    outputs
        .iter()
        .map(|o| match o {
            Output::Plain(r) => (
                r.topic.clone(),
                r.key.clone().map(|k| String::from_utf8(k).unwrap()),
                r.value.clone().map(|v| String::from_utf8(v).unwrap()),
            ),
            other => panic!("expected a record, got {other:?}"),
        })
        .collect()
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[test]
fn unwraps_with_metadata_fields() {
    let config =
        r#"{"unwrap": true, "add_fields": ["op", "table", "lsn", "source.ts_ms", "txId:tx"]}"#;
    let mut h = Harness::<Reshape>::new(config).unwrap();
    let (tables, out) = h
        .run(
            vec![orders()],
            vec![with_source(testing::insert(1, row(1, "1234.56")))],
        )
        .unwrap();
    assert!(tables.is_empty());
    assert_eq!(
        records(&out),
        vec![(
            "pg.public.orders".to_string(),
            some(r#"{"id":1}"#),
            some(concat!(
                r#"{"id":1,"amount":"AeJA","note":"hello","internal_note":"secret","#,
                r#""placed":"2016-11-04T11:51:30.123456Z","__op":"c","__table":"orders","#,
                r#""__lsn":24023128,"__source_ts_ms":1714558530125,"tx":771}"#
            )),
        )]
    );
}

#[test]
fn delete_handling() {
    let delete = || {
        with_source(testing::delete(
            1,
            vec![
                Value::Int32(1),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
            ],
        ))
    };
    let tombstone = ("pg.public.orders".to_string(), some(r#"{"id":1}"#), None);

    // The default: each delete becomes one tombstone.
    let mut h = Harness::<Reshape>::new(r#"{"unwrap": true}"#).unwrap();
    let (_, out) = h.run(vec![orders()], vec![delete()]).unwrap();
    assert_eq!(records(&out), vec![tombstone.clone()]);

    // rewrite keeps the tombstone unless drop_tombstones.
    let mut h =
        Harness::<Reshape>::new(r#"{"unwrap": true, "delete_handling": "rewrite"}"#).unwrap();
    let (_, out) = h
        .run(
            vec![orders()],
            vec![delete(), with_source(testing::update(1, None, row(1, "2")))],
        )
        .unwrap();
    let deleted = concat!(
        r#"{"id":1,"amount":null,"note":null,"internal_note":null,"placed":null,"#,
        r#""__deleted":"true"}"#
    );
    assert_eq!(
        records(&out),
        vec![
            (
                "pg.public.orders".to_string(),
                some(r#"{"id":1}"#),
                some(deleted)
            ),
            tombstone.clone(),
            (
                "pg.public.orders".to_string(),
                some(r#"{"id":1}"#),
                some(concat!(
                    r#"{"id":1,"amount":"AMg=","note":"hello","internal_note":"secret","#,
                    r#""placed":"2016-11-04T11:51:30.123456Z","__deleted":"false"}"#
                ))
            ),
        ]
    );
    let config = r#"{"unwrap": true, "delete_handling": "rewrite", "drop_tombstones": true}"#;
    let mut h = Harness::<Reshape>::new(config).unwrap();
    let (_, out) = h.run(vec![orders()], vec![delete()]).unwrap();
    assert_eq!(out.len(), 1);

    // drop: nothing, or only the tombstone.
    let config = r#"{"unwrap": true, "delete_handling": "drop", "drop_tombstones": true}"#;
    let mut h = Harness::<Reshape>::new(config).unwrap();
    let (_, out) = h.run(vec![orders()], vec![delete()]).unwrap();
    assert!(out.is_empty());
    let mut h = Harness::<Reshape>::new(r#"{"unwrap": true, "delete_handling": "drop"}"#).unwrap();
    let (_, out) = h.run(vec![orders()], vec![delete()]).unwrap();
    assert_eq!(records(&out), vec![tombstone]);
}

#[test]
fn field_ops_on_the_envelope() {
    let config = r#"{
        "drop_fields": ["public.orders.internal_*", "*.id"],
        "insert_fields": {"public.orders.source_system": "pg-main",
                          "orders.shard": {"value": "3", "type": "int2"}},
        "cast": {"public.orders.amount": "float8"}
    }"#;
    let mut h = Harness::<Reshape>::new(config).unwrap();
    let (tables, out) = h
        .run(
            vec![orders()],
            vec![
                testing::insert(1, row(1, "12.50")),
                testing::update(1, Some(row(1, "12.50")), row(1, "13")),
            ],
        )
        .unwrap();
    h.check(&out).unwrap();
    assert_eq!(tables.len(), 1, "one derived descriptor for both events");
    let names: Vec<&str> = tables[0].columns.iter().map(|c| c.name.as_str()).collect();
    // The key column id stays although `*.id` matches it.
    // Inserted columns come in the sorted order of their keys.
    assert_eq!(
        names,
        ["id", "amount", "note", "placed", "shard", "source_system"]
    );
    assert_eq!(tables[0].columns[1].type_name, "float8");
    assert_eq!(tables[0].columns[1].type_modifier, -1);
    assert_eq!(tables[0].columns[4].type_name, "int2");
    let update = change(&out[1]).unwrap();
    assert_eq!(
        update.before.as_ref().unwrap()[1..],
        [
            Value::Float64(12.5),
            "hello".into(),
            Value::Timestamptz(1_478_260_290_123_456),
            Value::Int16(3),
            "pg-main".into()
        ]
    );
    assert_eq!(update.after.as_ref().unwrap()[1], Value::Float64(13.0));
}

#[test]
fn unwrap_with_field_ops_keeps_the_input_key() {
    let config = r#"{"unwrap": true, "drop_fields": ["id", "placed", "note"],
        "cast": {"amount": "text", "id": "text"}, "insert_fields": {"flag": true}}"#;
    let mut h = Harness::<Reshape>::new(config).unwrap();
    let (_, out) = h
        .run(
            vec![orders()],
            vec![with_source(testing::insert(1, row(7, "0.10")))],
        )
        .unwrap();
    assert_eq!(
        records(&out),
        vec![(
            "pg.public.orders".to_string(),
            some(r#"{"id":7}"#),
            some(r#"{"amount":"0.10","internal_note":"secret","flag":true}"#)
        )]
    );
}

#[test]
fn decimal_handling_and_failures() {
    let mut table = orders();
    table.columns[1].type_modifier = -1; // unconstrained numeric: VariableScaleDecimal
    let mut h = Harness::<Reshape>::new(
        r#"{"unwrap": true, "drop_fields": ["note", "internal_note", "placed"]}"#,
    )
    .unwrap();
    let (_, out) = h
        .run(
            vec![table.clone()],
            vec![testing::insert(1, row(1, "10.1111"))],
        )
        .unwrap();
    assert_eq!(
        records(&out)[0].2,
        some(r#"{"id":1,"amount":{"scale":4,"value":"AYr3"}}"#)
    );
    let err = h
        .run(vec![], vec![testing::insert(1, row(1, "NaN"))])
        .unwrap_err();
    assert!(err.contains("decimal_handling"), "{err}");

    for (mode, expected) in [("string", r#""NaN""#), ("double", r#""NaN""#)] {
        let config = format!(
            r#"{{"unwrap": true, "decimal_handling": "{mode}", "drop_fields": ["note", "internal_note", "placed"]}}"#
        );
        let mut h = Harness::<Reshape>::new(&config).unwrap();
        let (_, out) = h
            .run(
                vec![table.clone()],
                vec![
                    testing::insert(1, row(1, "NaN")),
                    testing::insert(1, row(2, "1.50")),
                ],
            )
            .unwrap();
        let values: Vec<_> = records(&out).into_iter().map(|r| r.2.unwrap()).collect();
        assert_eq!(values[0], format!(r#"{{"id":1,"amount":{expected}}}"#));
        let second = if mode == "string" { r#""1.50""# } else { "1.5" };
        assert_eq!(values[1], format!(r#"{{"id":2,"amount":{second}}}"#));
    }

    // A cast that cannot be done fails the event.
    let mut h = Harness::<Reshape>::new(r#"{"cast": {"note": "int4"}}"#).unwrap();
    let err = h
        .run(vec![orders()], vec![testing::insert(1, row(1, "1"))])
        .unwrap_err();
    assert!(err.contains("cast of column note"), "{err}");
}

#[test]
fn truncates_are_dropped_when_unwrapping() {
    let mut h = Harness::<Reshape>::new(r#"{"unwrap": true}"#).unwrap();
    let truncate = testing::event(Op::Truncate, 1, None, None);
    let (_, out) = h.run(vec![orders()], vec![truncate]).unwrap();
    assert!(out.is_empty());
}

#[test]
fn bad_configs_are_refused() {
    for config in [
        "null",
        r#"{"unwrap": false}"#,
        r#"{"unwrap": "yes"}"#,
        r#"{"add_fields": ["op"]}"#,
        r#"{"unwrap": true, "add_fields": ["ts_ms"]}"#,
        r#"{"unwrap": true, "add_fields": ["source.db"]}"#,
        r#"{"unwrap": true, "add_fields": ["nonsense"]}"#,
        r#"{"unwrap": true, "delete_handling": "rewrite-with-tombstone"}"#,
        r#"{"unwrap": true, "delete_handling": "tombstone", "drop_tombstones": true}"#,
        r#"{"unwrap": true, "decimal_handling": "exact"}"#,
        r#"{"cast": {"amount": "money"}}"#,
        r#"{"cast": ["amount"]}"#,
        r#"{"drop_fields": ["a.b.c.d"]}"#,
        r#"{"insert_fields": {"orders.*": "x"}}"#,
        r#"{"insert_fields": {"x": [1]}}"#,
        r#"{"insert_fields": {"x": {"value": "abc", "type": "int4"}}}"#,
        r#"{"unwrap": true, "unwarp": true}"#,
    ] {
        assert!(Harness::<Reshape>::new(config).is_err(), "{config}");
    }
    assert!(Harness::<Reshape>::new(r#"{"unwrap": true}"#).is_ok());
}

#[test]
fn add_field_names() {
    assert_eq!(
        parse_add_field("source.ts_ms").unwrap(),
        (Meta::TsMs, "__source_ts_ms".to_string())
    );
    assert_eq!(
        parse_add_field("source.ts_ms:EVENT_TIMESTAMP").unwrap(),
        (Meta::TsMs, "EVENT_TIMESTAMP".to_string())
    );
    assert_eq!(
        parse_add_field("lsn").unwrap(),
        (Meta::Lsn, "__lsn".to_string())
    );
    assert_eq!(
        parse_add_field("source.table").unwrap(),
        (Meta::Table, "__source_table".to_string())
    );
}

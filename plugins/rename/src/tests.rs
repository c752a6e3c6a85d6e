use walrelay_plugin_sdk::__private::BatchOutput;
use walrelay_plugin_sdk::__private::Guest;
use walrelay_plugin_sdk::testing::{self, change, resolve, ChangeEvent, Harness};
use walrelay_plugin_sdk::{Table, Value};

use super::{glob, Component, Rename};

fn customers() -> Table {
    testing::table(
        1,
        "public",
        "customers",
        &[
            ("id", "int4"),
            ("email", "text"),
            ("created", "timestamptz"),
        ],
    )
}

fn orders() -> Table {
    testing::table(
        2,
        "public",
        "orders",
        &[("id", "int4"), ("created", "timestamptz")],
    )
}

fn customer(id: i32) -> Vec<Value> {
    vec![
        Value::Int32(id),
        Value::Text("ada@example.com".into()),
        Value::Timestamptz(1),
    ]
}

fn with_topic(mut event: ChangeEvent, topic: &str) -> ChangeEvent {
    event.topic = Some(topic.to_string());
    event
}

fn names(table: &Table) -> Vec<&str> {
    table.columns.iter().map(|c| c.name.as_str()).collect()
}

#[test]
fn globs() {
    assert!(glob("*", ""));
    assert!(glob("*", "abc"));
    assert!(glob("a*c", "abc"));
    assert!(glob("a*c", "ac"));
    assert!(glob("*b*", "abc"));
    assert!(glob("a*b*c", "aXbYbZc"));
    assert!(!glob("a*c", "abcd"));
    assert!(!glob("abc", "ab"));
    assert!(!glob("ab*ba", "aba"));
    assert!(glob("é*", "été"));
}

#[test]
fn renames_columns_in_both_rows() {
    let config =
        r#"{"columns": {"public.customers.email": "email_address", "*.*.created": "created_at"}}"#;
    let mut harness = Harness::<Rename>::new(config).unwrap();
    let update = testing::update(1, Some(customer(1)), customer(1));
    let (tables, out) = harness
        .run(vec![customers()], vec![update.clone(), update])
        .unwrap();
    assert_eq!(tables.len(), 1, "one derived descriptor for one shape");
    assert_eq!(names(&tables[0]), ["id", "email_address", "created_at"]);
    assert_eq!(
        (tables[0].schema.as_str(), tables[0].name.as_str()),
        ("public", "customers")
    );
    // Types, keys and values are unchanged.
    assert_eq!(tables[0].columns[1].type_name, "text");
    assert!(tables[0].columns[0].is_key);
    for o in &out {
        let e = change(o).unwrap();
        assert_eq!(e.table, tables[0].id);
        assert_eq!(e.before.as_ref().unwrap(), &customer(1));
        assert_eq!(e.after.as_ref().unwrap(), &customer(1));
    }
    harness.check(&out).unwrap();
}

#[test]
fn patterns_with_fewer_parts_and_specificity() {
    let config = r#"{"columns": {"created": "a", "orders.created": "b", "public.*.created": "c",
                                 "public.orders.cr*": "d"}}"#;
    let mut harness = Harness::<Rename>::new(config).unwrap();
    let (tables, _) = harness
        .run(
            vec![customers(), orders()],
            vec![
                testing::insert(1, customer(1)),
                testing::insert(2, vec![Value::Int32(1), Value::Timestamptz(1)]),
            ],
        )
        .unwrap();
    // public.*.created (13 literal characters) beats created (7); public.orders.cr* (14)
    // beats orders.created (13).
    assert_eq!(names(&tables[0]), ["id", "email", "c"]);
    assert_eq!(names(&tables[1]), ["id", "d"]);
}

#[test]
fn untouched_tables_keep_their_descriptor() {
    let config = r#"{"columns": {"public.customers.email": "mail"}}"#;
    let mut harness = Harness::<Rename>::new(config).unwrap();
    let ins = testing::insert(2, vec![Value::Int32(1), Value::Timestamptz(1)]);
    let (tables, out) = harness.run(vec![orders()], vec![ins.clone()]).unwrap();
    assert!(tables.is_empty());
    assert_eq!(change(&out[0]), Some(&ins));
}

#[test]
fn swaps_and_clashes() {
    let swap = r#"{"columns": {"email": "created", "created": "email"}}"#;
    let mut harness = Harness::<Rename>::new(swap).unwrap();
    let (tables, out) = harness
        .run(vec![customers()], vec![testing::insert(1, customer(1))])
        .unwrap();
    assert_eq!(names(&tables[0]), ["id", "created", "email"]);
    assert_eq!(tables[0].columns[1].type_name, "text");
    harness.check(&out).unwrap();

    let clash = r#"{"columns": {"email": "id"}}"#;
    let mut harness = Harness::<Rename>::new(clash).unwrap();
    let err = harness
        .run(vec![customers()], vec![testing::insert(1, customer(1))])
        .unwrap_err();
    assert_eq!(
        err,
        "renaming the columns of public.customers would name both `id` and `email` `id`"
    );
    // Other tables are unaffected.
    let (_, out) = harness
        .run(
            vec![orders()],
            vec![testing::insert(
                2,
                vec![Value::Int32(1), Value::Timestamptz(1)],
            )],
        )
        .unwrap();
    assert_eq!(out.len(), 1);
}

#[test]
fn topic_rules_full_match_first_wins() {
    let config = r#"{"topics": [
        {"regex": "inventory\\.public\\.(.*)", "replacement": "inv.$1"},
        {"regex": "inventory\\.(?P<schema>[^.]+)\\.(.*)", "replacement": "${schema}-${2}"},
        {"regex": "public", "replacement": "never"}
    ]}"#;
    let mut harness = Harness::<Rename>::new(config).unwrap();
    let events = vec![
        with_topic(
            testing::insert(1, customer(1)),
            "inventory.public.customers",
        ),
        with_topic(testing::insert(1, customer(2)), "inventory.crm.customers"),
        // `public` must match the whole topic, not a part of it.
        with_topic(testing::insert(1, customer(3)), "other.public.customers"),
        with_topic(
            testing::insert(1, customer(4)),
            "xinventory.public.customers",
        ),
    ];
    let (tables, out) = harness.run(vec![customers()], events).unwrap();
    assert!(tables.is_empty());
    let topics: Vec<_> = out
        .iter()
        .map(|o| change(o).unwrap().topic.as_deref().unwrap())
        .collect();
    assert_eq!(
        topics,
        [
            "inv.customers",
            "crm-customers",
            "other.public.customers",
            "xinventory.public.customers"
        ]
    );
}

#[test]
fn empty_topic_fails_the_event() {
    let config = r#"{"topics": [{"regex": "t.*", "replacement": ""}]}"#;
    let mut harness = Harness::<Rename>::new(config).unwrap();
    let err = harness
        .run(
            vec![customers()],
            vec![with_topic(testing::insert(1, customer(1)), "test")],
        )
        .unwrap_err();
    assert_eq!(err, "topics[0] turned topic `test` into an empty one");
}

#[test]
fn config_errors() {
    let err = |json: &str| Harness::<Rename>::new(json).err().unwrap();
    assert!(err(r#"{"column": {}}"#).starts_with("unknown configuration key `column`"));
    assert_eq!(
        err(r#"{"columns": ["a"]}"#),
        "`columns` must be a map of names to new names"
    );
    assert_eq!(
        err(r#"{"columns": {"a..b": "c"}}"#),
        "`columns`: `a..b` is not a column pattern ([[schema.]table.]column)"
    );
    assert_eq!(
        err(r#"{"columns": {"a.b.c.d": "c"}}"#),
        "`columns`: `a.b.c.d` is not a column pattern ([[schema.]table.]column)"
    );
    assert_eq!(
        err(r#"{"columns": {"a": 1}}"#),
        "`columns`: the new name of `a` must be a string"
    );
    assert_eq!(
        err(r#"{"columns": {"a": ""}}"#),
        "`columns`: `a` is renamed to an empty name"
    );
    assert_eq!(
        err(r#"{"tables": {"customers": "clients"}}"#),
        "`tables`: `customers` is not a schema.table name"
    );
    assert_eq!(
        err(r#"{"tables": {"public.customers": "crm."}}"#),
        "`tables`: `public.customers` is renamed to `crm.`, which is not a [schema.]table name"
    );
    assert_eq!(
        err(r#"{"topics": {"regex": "a"}}"#),
        "`topics` must be a list of {regex, replacement} rules"
    );
    assert_eq!(
        err(r#"{"topics": [{"regex": "a"}]}"#),
        "topics[0]: configuration key `replacement` is required"
    );
    assert_eq!(
        err(r#"{"topics": [{"regex": "a", "replacement": "b", "x": 1}]}"#),
        "topics[0]: unknown configuration key `x` (expected one of: regex, replacement)"
    );
    assert!(err(r#"{"topics": [{"regex": "(a", "replacement": "b"}]}"#)
        .starts_with("topics[0]: bad regex `(a`: "));
    assert_eq!(
        err(r#"{"topics": [{"regex": "(a)", "replacement": "$2"}]}"#),
        "topics[0]: replacement `$2` refers to $2, which the regex does not have"
    );
    assert_eq!(
        err(r#"{"topics": [{"regex": "(a)", "replacement": "$1x"}]}"#),
        "topics[0]: replacement `$1x` refers to $1x, which the regex does not have (for group \
         1 followed by text write `${1}`)"
    );
    assert_eq!(
        err(r#"{"topics": [{"regex": "(a)", "replacement": "${nope}"}]}"#),
        "topics[0]: replacement `${nope}` refers to ${nope}, which the regex does not have"
    );
    assert!(
        err(r#"{"topics": [{"regex": "(a)", "replacement": "x$"}]}"#).contains("names no group")
    );
    // `$$` is a dollar sign; `${1}x` and named groups are fine.
    Harness::<Rename>::new(
        r#"{"topics": [{"regex": "(?P<n>a)", "replacement": "$$${1}x$n${n}$0"}]}"#,
    )
    .unwrap();
    // Perl classes and case-insensitivity are compiled in; other Unicode classes are not.
    Harness::<Rename>::new(r#"{"topics": [{"regex": "(?i)t\\d+\\w\\s*", "replacement": "x"}]}"#)
        .unwrap();
    assert!(
        err(r#"{"topics": [{"regex": "\\p{Greek}", "replacement": "x"}]}"#)
            .starts_with("topics[0]: bad regex")
    );
    Harness::<Rename>::new("null").unwrap();
    Harness::<Rename>::new("{}").unwrap();
}

/// Runs batches through the component's exports, as the relay does.
/// The whole events of a component's output (`keep` and `patch` resolved against `inputs`).
fn whole(inputs: &[ChangeEvent], out: &BatchOutput) -> Vec<ChangeEvent> {
    out.events
        .iter()
        .map(|o| match resolve(inputs, o.clone()).unwrap() {
            testing::Output::Change(e) => e,
            other => panic!("expected a change event, got {other:?}"),
        })
        .collect()
}

fn component(config: &str) {
    Component::init(config.to_string()).unwrap();
}

#[test]
fn renames_tables_through_the_exports() {
    component(
        r#"{"tables": {"public.customers": "crm.clients", "public.orders": "purchases"},
            "columns": {"public.customers.email": "mail"}}"#,
    );
    let ins = with_topic(
        testing::insert(1, customer(1)),
        "inventory.public.customers",
    );
    let ord = with_topic(
        testing::insert(2, vec![Value::Int32(1), Value::Timestamptz(1)]),
        "inventory.public.orders",
    );
    let out =
        Component::transform(vec![customers(), orders()], vec![ins.clone(), ord.clone()]).unwrap();
    // customers: a derived descriptor (renamed column) with the new table name;
    // orders: a renamed copy of the input under its own id.
    assert_eq!(out.tables.len(), 2);
    let derived = &out.tables[0];
    assert_eq!(
        (derived.schema.as_str(), derived.name.as_str()),
        ("crm", "clients")
    );
    assert_eq!(names(derived), ["id", "mail", "created"]);
    let copy = &out.tables[1];
    assert_eq!(copy.id, 2);
    assert_eq!(
        (copy.schema.as_str(), copy.name.as_str()),
        ("public", "purchases")
    );
    assert_eq!(names(copy), names(&orders()));
    let events = whole(&[ins.clone(), ord.clone()], &out);
    assert_eq!(events[0].table, derived.id);
    assert_eq!(
        events[0].topic.as_deref(),
        Some("inventory.crm.clients"),
        "the default topic follows"
    );
    assert_eq!(events[1].table, 2);
    assert_eq!(
        events[1].topic.as_deref(),
        Some("inventory.public.purchases")
    );

    // Later batches reuse what was declared.
    let out = Component::transform(vec![], vec![ins.clone(), ord.clone()]).unwrap();
    assert!(out.tables.is_empty());
    // A routed topic that is not the table's default stays as it is.
    let routed = with_topic(ord.clone(), "somewhere.else");
    let out = Component::transform(vec![], vec![routed.clone()]).unwrap();
    assert_eq!(
        whole(&[routed], &out)[0].topic.as_deref(),
        Some("somewhere.else")
    );

    // A descriptor re-sent under the same id is declared again.
    let out = Component::transform(vec![orders()], vec![ord]).unwrap();
    assert_eq!(out.tables.len(), 1);
    assert_eq!(out.tables[0].name, "purchases");

    // init starts over.
    component("null");
    let out = Component::transform(vec![customers()], vec![ins.clone()]).unwrap();
    assert!(out.tables.is_empty());
    assert_eq!(
        whole(std::slice::from_ref(&ins), &out),
        std::slice::from_ref(&ins)
    );
    assert_eq!(
        out.events,
        [testing::Output::Keep(0)],
        "an untouched event is kept, not sent back"
    );
}

#[test]
fn table_rename_then_topic_rules() {
    component(
        r#"{"tables": {"public.customers": "crm.clients"},
            "topics": [{"regex": "inventory\\.crm\\.(.*)", "replacement": "crm-$1"}]}"#,
    );
    let ins = with_topic(
        testing::insert(1, customer(1)),
        "inventory.public.customers",
    );
    let out = Component::transform(vec![customers()], vec![ins.clone()]).unwrap();
    assert_eq!(out.tables.len(), 1);
    assert_eq!(whole(&[ins], &out)[0].topic.as_deref(), Some("crm-clients"));
}

#[test]
fn component_refuses_bad_config() {
    let err = Component::init(r#"{"tables": {"x": "y"}}"#.to_string()).unwrap_err();
    assert_eq!(err, "`tables`: `x` is not a schema.table name");
}

#[test]
fn table_rename_of_an_event_on_its_default_topic() {
    component(r#"{"tables": {"public.customers": "crm.clients"}}"#);
    // As the relay sends it: no topic of its own, the table's default on the descriptor.
    let ins = testing::insert(1, customer(1));
    assert_eq!(customers().topic, "test.public.customers");
    let out = Component::transform(vec![customers()], vec![ins.clone()]).unwrap();
    assert_eq!(out.tables.len(), 1);
    assert_eq!(
        whole(&[ins], &out)[0].topic.as_deref(),
        Some("test.crm.clients"),
        "the default topic follows the table"
    );
}

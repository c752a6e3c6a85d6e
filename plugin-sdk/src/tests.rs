use crate::prelude::*;
use crate::testing::{self, change, Harness};

fn users() -> Table {
    testing::table(
        1,
        "public",
        "users",
        &[("id", "int4"), ("email", "text"), ("name", "text")],
    )
}

fn row(id: i32, email: &str, name: &str) -> Vec<Value> {
    vec![Value::Int32(id), email.into(), name.into()]
}

/// Renames `email` to `mail` when config `rename` is true, removes `name` when `remove` is.
struct Reshape {
    rename: bool,
    remove: bool,
}

impl Plugin for Reshape {
    fn new(config: Config) -> Result<Self, String> {
        Ok(Reshape {
            rename: config.get_bool("rename")?.unwrap_or(false),
            remove: config.get_bool("remove")?.unwrap_or(false),
        })
    }

    fn on_event(&mut self, mut event: Event) -> Result<Emit, String> {
        if self.rename {
            assert!(event.rename("email", "mail"));
        }
        if self.remove {
            assert!(event.remove("name"));
        }
        Ok(event.into())
    }
}

struct Passthrough;

impl Plugin for Passthrough {
    fn new(_: Config) -> Result<Self, String> {
        Ok(Passthrough)
    }

    fn on_event(&mut self, event: Event) -> Result<Emit, String> {
        Ok(Emit::Keep(event))
    }
}

#[test]
fn pass_through_keeps_the_input_descriptor() {
    let mut h = Harness::<Passthrough>::new("null").unwrap();
    let input = testing::insert(1, row(1, "a@x", "A"));
    let (tables, out) = h.run(vec![users()], vec![input.clone()]).unwrap();
    assert!(tables.is_empty());
    assert_eq!(out, vec![testing::Output::Change(input)]);
}

#[test]
fn rename_derives_a_descriptor_once() {
    let mut h = Harness::<Reshape>::new(r#"{"rename": true}"#).unwrap();
    let (tables, out) = h
        .run(
            vec![users()],
            vec![
                testing::insert(1, row(1, "a@x", "A")),
                testing::insert(1, row(2, "b@x", "B")),
            ],
        )
        .unwrap();
    assert_eq!(tables.len(), 1);
    let derived = &tables[0];
    assert_ne!(derived.id, 1);
    assert_eq!(
        (derived.schema.as_str(), derived.name.as_str()),
        ("public", "users")
    );
    let names: Vec<_> = derived.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "mail", "name"]);
    assert_eq!(derived.columns[1].type_oid, crate::oid::TEXT);
    assert_eq!(out.len(), 2);
    for o in &out {
        assert_eq!(change(o).unwrap().table, derived.id);
    }
    h.check(&out).unwrap();

    // The next batch reuses the id without sending the descriptor again.
    let (tables, out) = h
        .run(vec![], vec![testing::insert(1, row(3, "c@x", "C"))])
        .unwrap();
    assert!(tables.is_empty());
    assert_eq!(change(&out[0]).unwrap().table, derived.id);
}

#[test]
fn remove_drops_the_column_from_descriptor_and_rows() {
    let mut h = Harness::<Reshape>::new(r#"{"rename": true, "remove": true}"#).unwrap();
    let (tables, out) = h
        .run(
            vec![users()],
            vec![testing::update(
                1,
                Some(row(1, "a@x", "A")),
                row(1, "b@x", "B"),
            )],
        )
        .unwrap();
    assert_eq!(tables.len(), 1);
    let names: Vec<_> = tables[0].columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "mail"]);
    let event = change(&out[0]).unwrap();
    assert_eq!(event.table, tables[0].id);
    assert_eq!(event.before, Some(vec![Value::Int32(1), "a@x".into()]));
    assert_eq!(event.after, Some(vec![Value::Int32(1), "b@x".into()]));
    h.check(&out).unwrap();
}

#[test]
fn each_input_descriptor_gets_its_own_derived_one() {
    let mut h = Harness::<Reshape>::new(r#"{"remove": true}"#).unwrap();
    let mut orders = testing::table(2, "public", "orders", &[("id", "int8"), ("name", "text")]);
    orders.columns[1].name = "name".into();
    let (tables, out) = h
        .run(
            vec![users(), orders],
            vec![
                testing::insert(1, row(1, "a@x", "A")),
                testing::insert(2, vec![Value::Int64(9), "n".into()]),
                testing::insert(1, row(2, "b@x", "B")),
            ],
        )
        .unwrap();
    assert_eq!(tables.len(), 2);
    assert_ne!(tables[0].id, tables[1].id);
    let ids: Vec<_> = out.iter().map(|o| change(o).unwrap().table).collect();
    assert_eq!(ids, [tables[0].id, tables[1].id, tables[0].id]);
    h.check(&out).unwrap();
}

/// Renames a column and back: the shape is the input's again.
struct RenameBack;

impl Plugin for RenameBack {
    fn new(_: Config) -> Result<Self, String> {
        Ok(RenameBack)
    }

    fn on_event(&mut self, mut event: Event) -> Result<Emit, String> {
        assert!(event.rename("email", "tmp"));
        assert!(!event.rename("tmp", "id"), "renaming onto a column refused");
        assert_eq!(event.get(Row::After, "tmp"), Some(&"a@x".into()));
        assert_eq!(event.get(Row::After, "email"), None);
        assert!(event.rename("tmp", "email"));
        Ok(event.into())
    }
}

#[test]
fn renaming_back_keeps_the_input_descriptor() {
    let mut h = Harness::<RenameBack>::new("null").unwrap();
    let (tables, out) = h
        .run(vec![users()], vec![testing::insert(1, row(1, "a@x", "A"))])
        .unwrap();
    assert!(tables.is_empty());
    assert_eq!(change(&out[0]).unwrap().table, 1);
}

/// Keeps inserts only.
struct InsertsOnly;

impl Plugin for InsertsOnly {
    fn new(_: Config) -> Result<Self, String> {
        Ok(InsertsOnly)
    }

    fn interest(&self) -> Interest {
        Interest::all().only_tables(["public.users"])
    }

    fn on_event(&mut self, event: Event) -> Result<Emit, String> {
        Ok(if event.op() == Op::Create {
            Emit::Keep(event)
        } else {
            Emit::Drop
        })
    }
}

#[test]
fn a_filter_drops() {
    let mut h = Harness::<InsertsOnly>::new("").unwrap();
    assert_eq!(h.interest().tables, Some(vec!["public.users".to_string()]));
    let (_, out) = h
        .run(
            vec![users()],
            vec![
                testing::delete(1, row(1, "a@x", "A")),
                testing::insert(1, row(2, "b@x", "B")),
                testing::update(1, None, row(2, "c@x", "B")),
            ],
        )
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(change(&out[0]).unwrap().after, Some(row(2, "b@x", "B")));
}

/// Routes by id parity, tags with a header, and emits a record after each event.
struct Router;

impl Plugin for Router {
    fn new(_: Config) -> Result<Self, String> {
        Ok(Router)
    }

    fn on_event(&mut self, mut event: Event) -> Result<Emit, String> {
        let id = event
            .get(Row::After, "id")
            .and_then(Value::as_i64)
            .ok_or("no id")?;
        event.set_topic(if id % 2 == 0 { "even" } else { "odd" });
        event.add_header("table", event.table().qualified_name());
        assert!(event.set(Row::After, "name", Value::Null));
        assert!(
            !event.set(Row::Before, "name", Value::Null),
            "an insert has no before"
        );
        let record = Record::new("audit", None, Some(id.to_string().into_bytes()));
        Ok(Emit::Many(vec![event.into(), record.into()]))
    }
}

#[test]
fn headers_topics_and_records_come_through() {
    let mut h = Harness::<Router>::new("null").unwrap();
    let (tables, out) = h
        .run(
            vec![users()],
            vec![
                testing::insert(1, row(1, "a@x", "A")),
                testing::insert(1, row(2, "b@x", "B")),
            ],
        )
        .unwrap();
    assert!(tables.is_empty());
    assert_eq!(out.len(), 4);
    let first = change(&out[0]).unwrap();
    assert_eq!(first.topic.as_deref(), Some("odd"));
    assert_eq!(first.table, 1);
    assert_eq!(
        first.headers,
        Some(vec![Header::new("table", "public.users")])
    );
    assert_eq!(
        first.after,
        Some(vec![Value::Int32(1), "a@x".into(), Value::Null])
    );
    assert_eq!(change(&out[2]).unwrap().topic.as_deref(), Some("even"));
    match &out[3] {
        testing::Output::Plain(r) => {
            assert_eq!(r.topic, "audit");
            assert_eq!(r.value.as_deref(), Some(&b"2"[..]));
        }
        other => panic!("expected a record, got {other:?}"),
    }
    // An error from on_event fails the batch.
    let err = h
        .run(vec![], vec![testing::delete(1, row(3, "c@x", "C"))])
        .unwrap_err();
    assert_eq!(err, "no id");
}

/// Adds a column and retypes another.
struct AddAndRetype;

impl Plugin for AddAndRetype {
    fn new(_: Config) -> Result<Self, String> {
        Ok(AddAndRetype)
    }

    fn on_event(&mut self, mut event: Event) -> Result<Emit, String> {
        let column = Column::new("flag", crate::oid::BOOL, "bool");
        assert!(event.add_column(column.clone(), Value::Null, Value::Boolean(true)));
        assert!(!event.add_column(column, Value::Null, Value::Null));
        let id = event.get_mut(Row::After, "id").unwrap();
        *id = Value::Text(id.to_text().unwrap());
        event.column_mut("id").unwrap().set_text_type();
        Ok(event.into())
    }
}

#[test]
fn added_and_retyped_columns_are_described() {
    let mut h = Harness::<AddAndRetype>::new("null").unwrap();
    let (tables, out) = h
        .run(vec![users()], vec![testing::insert(1, row(5, "a@x", "A"))])
        .unwrap();
    assert_eq!(tables.len(), 1);
    let t = &tables[0];
    assert_eq!(t.columns.len(), 4);
    assert_eq!(
        (t.columns[0].type_oid, t.columns[0].is_key),
        (crate::oid::TEXT, true)
    );
    assert_eq!(t.columns[3].name, "flag");
    let event = change(&out[0]).unwrap();
    assert_eq!(
        event.after,
        Some(vec![
            "5".into(),
            "a@x".into(),
            "A".into(),
            Value::Boolean(true)
        ])
    );
    h.check(&out).unwrap();
}

#[test]
fn derived_ids_move_out_of_the_way_of_the_relays() {
    let mut h = Harness::<Reshape>::new(r#"{"remove": true}"#).unwrap();
    let (tables, _) = h
        .run(vec![users()], vec![testing::insert(1, row(1, "a@x", "A"))])
        .unwrap();
    let first = tables[0].id;
    assert_eq!(first, u32::MAX);
    // The relay then sends a descriptor under that very id: it replaces the derived one, so
    // users' events get a fresh derived descriptor.
    let mut other = users();
    other.id = first;
    other.name = "other".into();
    let (tables, out) = h
        .run(
            vec![other],
            vec![
                testing::insert(1, row(2, "b@x", "B")),
                testing::insert(first, row(3, "c@x", "C")),
            ],
        )
        .unwrap();
    assert_eq!(tables.len(), 2);
    assert!(tables.iter().all(|t| t.id != first));
    assert_eq!(tables[0].name, "users");
    assert_eq!(tables[1].name, "other");
    h.check(&out).unwrap();
}

#[test]
fn an_unknown_table_fails_the_batch() {
    let mut h = Harness::<Passthrough>::new("null").unwrap();
    let err = h.run(vec![], vec![testing::insert(3, vec![])]).unwrap_err();
    assert!(err.contains("descriptor 3"), "{err}");
}

#[test]
fn event_accessors() {
    struct Look;
    impl Plugin for Look {
        fn new(_: Config) -> Result<Self, String> {
            Ok(Look)
        }
        fn on_event(&mut self, mut e: Event) -> Result<Emit, String> {
            assert_eq!((e.schema(), e.table_name()), ("public", "users"));
            assert_eq!(e.position("name"), Some(2));
            assert_eq!(e.row(Row::Before).unwrap().len(), 3);
            assert!(e.column("id").unwrap().is_key);
            assert!(e.remove("email"));
            assert!(!e.remove("email"));
            assert_eq!(e.position("name"), Some(1));
            let names: Vec<_> = e.columns().map(|c| c.name.as_str()).collect();
            assert_eq!(names, ["id", "name"]);
            assert_eq!(
                e.table().columns.len(),
                3,
                "the input descriptor is unchanged"
            );
            assert!(e.shape_changed());
            e.add_header("k", "v1");
            e.add_header("k", "v2");
            assert_eq!(e.header("k"), Some(&b"v1"[..]));
            assert_eq!(e.remove_header("k"), 2);
            assert_eq!(e.source().lsn, 0);
            // As the relay sends it: no topic of its own, no headers.
            assert_eq!(e.topic(), "test.public.users", "the table's default topic");
            assert_eq!(e.routed_topic(), None);
            assert_eq!(e.remove_header("absent"), 0);
            assert!(e.headers().is_empty());
            e.set_topic("elsewhere");
            assert_eq!(
                (e.topic(), e.routed_topic()),
                ("elsewhere", Some("elsewhere"))
            );
            Ok(Emit::Drop)
        }
    }
    let mut h = Harness::<Look>::new("null").unwrap();
    let (tables, out) = h
        .run(vec![users()], vec![testing::delete(1, row(1, "a@x", "A"))])
        .unwrap();
    assert!(tables.is_empty() && out.is_empty());
}

#[test]
fn config_getters() {
    let c = Config::parse(r#"{"a": "x", "n": 3, "l": ["p", "q"], "b": true, "z": null}"#).unwrap();
    assert_eq!(c.get_str("a").unwrap(), Some("x"));
    assert_eq!(c.get_u64("n").unwrap(), Some(3));
    assert_eq!(c.get_strs("l").unwrap(), Some(vec!["p", "q"]));
    assert_eq!(c.get_bool("b").unwrap(), Some(true));
    assert_eq!(c.get_str("z").unwrap(), None);
    assert!(c.get_str("n").unwrap_err().contains("`n` must be a string"));
    assert!(c.require_str("missing").unwrap_err().contains("required"));
    assert!(c
        .deny_unknown(&["a", "n", "l", "b"])
        .unwrap_err()
        .contains("`z`"));
    assert!(Config::parse("[1]").unwrap().get_str("a").is_err());
    assert!(Config::parse("null")
        .unwrap()
        .get_str("a")
        .unwrap()
        .is_none());
    assert!(Config::parse("{").is_err());
}

#[test]
fn init_and_transform_through_the_exported_entry_points() {
    let mut slot = None;
    assert!(crate::runtime::transform::<Passthrough>(&mut slot, vec![], vec![]).is_err());
    let info = crate::runtime::init::<InsertsOnly>(&mut None, "null", "x", "1.0").unwrap();
    assert_eq!(info.name, "x");
    crate::runtime::init::<Passthrough>(&mut slot, "null", "p", "0.1").unwrap();
    let out = crate::runtime::transform(&mut slot, vec![users()], vec![]).unwrap();
    assert!(out.events.is_empty());
}

/// `export_plugin!` expands in a crate other than the SDK; check that it compiles here too.
#[allow(unsafe_code)]
mod exported {
    crate::export_plugin!(super::Passthrough);
}

/// Edits by config: `set` sets `name` in the new row, `topic` routes, `header` adds one,
/// `rename` renames `email`, `remove` removes `name`; `op` turns an insert into a read.
struct Edit(Config);

impl Plugin for Edit {
    fn new(config: Config) -> Result<Self, String> {
        Ok(Edit(config))
    }

    fn on_event(&mut self, mut event: Event) -> Result<Emit, String> {
        let on = |key: &str| self.0.get_bool(key).ok().flatten().unwrap_or(false);
        if on("set") {
            assert!(event.set(Row::After, "name", "****".into()));
            // Written twice: sent once.
            assert!(event.set(Row::After, "name", "####".into()));
        }
        if on("topic") {
            event.set_topic("elsewhere");
        }
        if on("header") {
            event.add_header("h", "v");
        }
        if on("rename") {
            assert!(event.rename("email", "mail"));
        }
        if on("remove") {
            assert!(event.remove("name"));
        }
        if on("op") {
            event.set_op(Op::Read);
        }
        Ok(event.into())
    }
}

/// The wire output of one `Edit` batch of two inserts, with the inputs.
fn edit_wire(config: &str) -> (crate::wit::BatchOutput, Vec<testing::ChangeEvent>) {
    let (mut runtime, _) = crate::runtime::Runtime::<Edit>::new(config).unwrap();
    let inputs = vec![
        testing::insert(1, row(1, "a@x", "A")),
        testing::insert(1, row(2, "b@x", "B")),
    ];
    let out = runtime.transform(vec![users()], inputs.clone()).unwrap();
    (out, inputs)
}

#[test]
fn untouched_events_go_back_as_keep() {
    let (out, _) = edit_wire("null");
    assert!(out.tables.is_empty());
    assert_eq!(
        out.events,
        [testing::Output::Keep(0), testing::Output::Keep(1)]
    );
}

#[test]
fn a_set_value_goes_back_alone_in_a_patch() {
    let (out, inputs) = edit_wire(r#"{"set": true}"#);
    let testing::Output::Patch(p) = &out.events[1] else {
        panic!("expected a patch, got {:?}", out.events[1]);
    };
    assert_eq!(p.input, 1);
    assert_eq!(p.table, 1, "the input descriptor");
    assert_eq!(p.op, Op::Create);
    assert!(p.before.is_empty());
    assert_eq!(p.after, [(2, Value::Text("####".into()))]);
    assert_eq!((&p.topic, &p.headers), (&None, &None));
    let whole = testing::resolve(&inputs, out.events[1].clone()).unwrap();
    let mut expected = inputs[1].clone();
    expected.after.as_mut().unwrap()[2] = "####".into();
    assert_eq!(whole, testing::Output::Change(expected));
}

#[test]
fn a_rename_patches_the_descriptor_only() {
    let (out, inputs) = edit_wire(r#"{"rename": true, "topic": true, "header": true, "op": true}"#);
    assert_eq!(out.tables.len(), 1);
    let derived = out.tables[0].id;
    for (i, output) in out.events.iter().enumerate() {
        let testing::Output::Patch(p) = output else {
            panic!("expected a patch, got {output:?}");
        };
        assert_eq!((p.input, p.table, p.op), (i as u32, derived, Op::Read));
        assert!(
            p.before.is_empty() && p.after.is_empty(),
            "no values: {p:?}"
        );
        assert_eq!(p.topic.as_deref(), Some("elsewhere"));
        assert_eq!(p.headers.as_ref().map(Vec::len), Some(1));
        let testing::Output::Change(whole) = testing::resolve(&inputs, output.clone()).unwrap()
        else {
            panic!("resolve gives a whole event");
        };
        assert_eq!(whole.after, inputs[i].after, "values as they came");
        assert_eq!(
            (whole.table, whole.topic.as_deref()),
            (derived, Some("elsewhere"))
        );
    }
}

#[test]
fn a_change_of_width_goes_back_whole() {
    let (out, _) = edit_wire(r#"{"remove": true}"#);
    let Some(e) = change(&out.events[0]) else {
        panic!("expected a whole event, got {:?}", out.events[0]);
    };
    assert_eq!(e.after.as_ref().map(Vec::len), Some(2));
    assert_eq!(out.tables[0].columns.len(), 2);
}

#[test]
fn resolve_refuses_what_the_batch_does_not_have() {
    let inputs = vec![testing::insert(1, row(1, "a@x", "A"))];
    let err = testing::resolve(&inputs, testing::Output::Keep(3)).unwrap_err();
    assert!(err.contains("input 3 of a batch of 1"), "{err}");
    let patch = testing::EventPatch {
        input: 0,
        op: Op::Create,
        table: 1,
        before: vec![(0, Value::Null)],
        after: vec![],
        topic: None,
        headers: None,
    };
    let err = testing::resolve(&inputs, testing::Output::Patch(patch)).unwrap_err();
    assert!(err.contains("sets before[0]"), "{err}");
}

/// Holds each batch's events and returns them with the next batch (a debounce).
#[derive(Default)]
struct Delay(Vec<Event>);

impl Plugin for Delay {
    fn new(_: Config) -> Result<Self, String> {
        Ok(Delay::default())
    }

    fn on_batch(&mut self, events: Vec<Event>) -> Result<Vec<Output>, String> {
        let held = std::mem::replace(&mut self.0, events);
        Ok(held.into_iter().map(Output::Event).collect())
    }
}

#[test]
fn an_event_kept_for_a_later_call_goes_back_whole() {
    let (mut runtime, _) = crate::runtime::Runtime::<Delay>::new("null").unwrap();
    let first = testing::insert(1, row(1, "a@x", "A"));
    let out = runtime
        .transform(vec![users()], vec![first.clone()])
        .unwrap();
    assert!(out.events.is_empty());
    let second = testing::insert(1, row(2, "b@x", "B"));
    let out = runtime.transform(vec![], vec![second]).unwrap();
    // Not keep(0): input 0 of this call is the second event.
    assert_eq!(out.events, [testing::Output::Change(first)]);
}

/// Reads `name` through `get_mut` without writing it.
struct Peek;

impl Plugin for Peek {
    fn new(_: Config) -> Result<Self, String> {
        Ok(Peek)
    }

    fn on_event(&mut self, mut event: Event) -> Result<Emit, String> {
        let _ = event.get_mut(Row::After, "name");
        Ok(event.into())
    }
}

#[test]
fn a_withheld_value_is_never_patched() {
    let (mut runtime, _) = crate::runtime::Runtime::<Peek>::new("null").unwrap();
    let input = testing::insert(1, vec![Value::Int32(1), "a@x".into(), Value::Withheld]);
    let out = runtime.transform(vec![users()], vec![input]).unwrap();
    let testing::Output::Patch(p) = &out.events[0] else {
        panic!("expected a patch, got {:?}", out.events[0]);
    };
    assert!(p.after.is_empty(), "{p:?}");
}

/// Declares `email` only; uppercases it and says in a header what `name` looked like.
struct EmailOnly;

impl Plugin for EmailOnly {
    fn new(_: Config) -> Result<Self, String> {
        Ok(EmailOnly)
    }

    fn interest(&self) -> Interest {
        Interest::all().only_columns(["email"])
    }

    fn on_event(&mut self, mut event: Event) -> Result<Emit, String> {
        let seen = format!("{:?}", event.get(Row::After, "name"));
        event.add_header("name-seen", seen);
        if let Some(Value::Text(s)) = event.get_mut(Row::After, "email") {
            *s = s.to_uppercase();
        }
        Ok(event.into())
    }
}

#[test]
fn the_harness_withholds_undeclared_columns_and_puts_them_back() {
    let mut h = Harness::<EmailOnly>::new("null").unwrap();
    let input = testing::insert(1, row(1, "a@x", "Ann"));
    let (_, out) = h.run(vec![users()], vec![input]).unwrap();
    let e = change(&out[0]).unwrap();
    assert_eq!(e.after, Some(row(1, "A@X", "Ann")), "name put back");
    assert_eq!(
        e.headers.as_ref().unwrap()[0].value,
        b"Some(Value::Withheld)",
        "name was not sent"
    );
}

#[test]
fn default_topic_and_no_headers_go_back_as_keep() {
    struct Reader;
    impl Plugin for Reader {
        fn new(_: Config) -> Result<Self, String> {
            Ok(Reader)
        }
        fn on_event(&mut self, e: Event) -> Result<Emit, String> {
            // Reading the topic and headers changes nothing.
            assert_eq!((e.topic(), e.headers().len()), ("test.public.users", 0));
            Ok(e.into())
        }
    }
    let (mut runtime, _) = crate::runtime::Runtime::<Reader>::new("null").unwrap();
    let input = testing::insert(1, row(1, "a@x", "A"));
    assert_eq!(
        (input.topic.as_deref(), input.headers.as_ref()),
        (None, None)
    );
    let out = runtime.transform(vec![users()], vec![input]).unwrap();
    assert_eq!(out.events, [testing::Output::Keep(0)]);
}

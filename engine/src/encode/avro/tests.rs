//! Expected schemas are typed from reference section 6 and Confluent's `AvroData` conventions;
//! expected values from reference sections 1 and 4. Encoded data is decoded with the
//! `apache-avro` crate, an independent Avro implementation.
use std::sync::Arc;

use apache_avro::types::Value as A;
use serde_json::json;

use super::*;
use crate::encode::columns::UnknownTypes;
use crate::event::{Column, Lsn, Op, ReplicaIdentity, SnapshotMarker, Source, TableSchema, Value};

fn opts() -> RecordOptions {
    RecordOptions {
        topic_prefix: "pg".into(),
        database: "shop".into(),
        connector_version: "0.1.0-test".into(),
        unknown_types: UnknownTypes::Skip,
    }
}

fn col(name: &str, type_oid: u32, typmod: i32, type_name: &str, nullable: bool) -> Column {
    Column {
        name: name.into(),
        type_oid,
        type_modifier: typmod,
        type_name: type_name.into(),
        base_type_oid: type_oid,
        nullable,
        is_key: false,
        default: None,
        enum_labels: vec![],
    }
}

/// `items(id int4 pk, small int2, price numeric(10,2), amount numeric, loc point, tags text[],
/// mood mood_enum, at timestamptz, data bytea, note text default 'n/a', extra int4)`.
fn items(name: &str) -> Arc<TableSchema> {
    let mut id = col("id", 23, -1, "int4", false);
    id.is_key = true;
    let mut mood = col("mood", 90000, -1, "mood", true);
    mood.enum_labels = vec!["sad".into(), "ok".into(), "happy".into()];
    let mut note = col("note", 25, -1, "text", true);
    note.default = Some("'n/a'::text".into());
    Arc::new(TableSchema {
        oid: 16390,
        schema: "public".into(),
        name: name.into(),
        columns: vec![
            id,
            col("small", 21, -1, "int2", false),
            col("price", 1700, ((10 << 16) | 2) + 4, "numeric", true),
            col("amount", 1700, -1, "numeric", true),
            col("loc", 600, -1, "point", true),
            col("tags", 1009, -1, "_text", true),
            mood,
            col("at", 1184, -1, "timestamptz", true),
            col("data", 17, -1, "bytea", true),
            note,
            col("extra", 23, -1, "int4", true),
        ],
        replica_identity: ReplicaIdentity::Full,
    })
}

fn event(table: Arc<TableSchema>) -> ChangeEvent {
    ChangeEvent {
        op: Op::Create,
        table,
        before: None,
        after: Some(vec![
            Value::Int32(7),
            Value::Int16(-3),
            Value::Numeric("1234.56".into()),
            Value::Numeric("-12.345".into()),
            Value::Text("(1.5,-2)".into()),
            Value::Text("{a,\"b c\",NULL}".into()),
            Value::Text("happy".into()),
            // 2016-11-04T12:34:56.789Z (timestamptz(6): six fraction digits)
            Value::TimestampTz(1_478_262_896_789_000),
            Value::Bytes(vec![0, 1, 0xff]),
            Value::Null,
            Value::Null,
        ]),
        source: Source {
            lsn: Lsn(24_023_200),
            last_commit_lsn: Some(Lsn(24_023_128)),
            tx_id: Some(772),
            ts_us: 1_714_558_531_000_001,
            snapshot: SnapshotMarker::False,
        },
        topic: None,
        headers: vec![],
    }
}

fn field<'a>(record: &'a A, name: &str) -> &'a A {
    match record {
        A::Record(fields) => &fields.iter().find(|(n, _)| n == name).expect(name).1,
        other => panic!("not a record: {other:?}"),
    }
}

fn unwrap_union(v: &A) -> &A {
    match v {
        A::Union(_, inner) => inner,
        v => v,
    }
}

fn decode(schema_text: &str, bytes: &[u8]) -> A {
    let schema = apache_avro::Schema::parse_str(schema_text).expect("apache-avro parses it");
    let mut rd = bytes;
    let v = apache_avro::from_avro_datum(&schema, &mut rd, None).expect("decodes");
    assert!(rd.is_empty(), "trailing bytes");
    v
}

fn find_field<'a>(schema: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    schema["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["name"] == name)
        .expect(name)
}

#[test]
fn key_schema_splits_the_name() {
    let layout = TableLayout::build(&opts(), &items("items")).expect("layout");
    let key = layout.key_schema.expect("key");
    assert_eq!(
        avro_schema_string(&key, false).expect("schema"),
        r#"{"type":"record","name":"Key","namespace":"pg.public.items","fields":[{"name":"id","type":"int"}],"connect.name":"pg.public.items.Key"}"#
    );
}

#[test]
fn envelope_schema_follows_section_6() {
    let layout = TableLayout::build(&opts(), &items("items")).expect("layout");
    let s = avro_schema(&layout.envelope_schema, false).expect("schema");
    assert_eq!(s["type"], "record");
    assert_eq!(s["name"], "Envelope");
    assert_eq!(s["namespace"], "pg.public.items");
    assert_eq!(s["connect.version"], 2);
    assert_eq!(s["connect.name"], "pg.public.items.Envelope");
    let before = find_field(&s, "before");
    assert_eq!(before["type"][0], "null");
    assert_eq!(before["type"][1]["name"], "Value");
    assert_eq!(before["type"][1]["connect.name"], "pg.public.items.Value");
    assert_eq!(before["type"][1].get("namespace"), None);
    assert_eq!(before["default"], serde_json::Value::Null);
    // A second use is a bare reference.
    assert_eq!(
        find_field(&s, "after"),
        &json!({"name":"after","type":["null","Value"],"default":null})
    );
    let value = &before["type"][1];
    assert_eq!(find_field(value, "id"), &json!({"name":"id","type":"int"}));
    assert_eq!(
        find_field(value, "small"),
        &json!({"name":"small","type":{"type":"int","connect.type":"int16"}})
    );
    assert_eq!(
        find_field(value, "price"),
        &json!({"name":"price","type":["null",{"type":"bytes","scale":2,"precision":10,
            "connect.version":1,"connect.parameters":{"scale":"2","connect.decimal.precision":"10"},
            "connect.name":"org.apache.kafka.connect.data.Decimal","logicalType":"decimal"}],
            "default":null})
    );
    assert_eq!(
        find_field(value, "amount"),
        &json!({"name":"amount","type":["null",{"type":"record","name":"VariableScaleDecimal",
            "namespace":"io.debezium.data","fields":[{"name":"scale","type":"int"},
            {"name":"value","type":"bytes"}],"connect.doc":"Variable scaled decimal",
            "connect.version":1,"connect.name":"io.debezium.data.VariableScaleDecimal"}],
            "default":null})
    );
    // Debezium's semantic types stay primitives with connect.name.
    assert_eq!(
        find_field(value, "at")["type"],
        json!(["null",{"type":"string","connect.version":1,"connect.name":"io.debezium.time.ZonedTimestamp"}])
    );
    assert_eq!(
        find_field(value, "tags")["type"],
        json!(["null",{"type":"array","items":["null","string"]}])
    );
    // Optional with a default: [T,"null"] and that default.
    assert_eq!(
        find_field(value, "note"),
        &json!({"name":"note","type":[{"type":"string","connect.default":"n/a"},"null"],"default":"n/a"})
    );
    let source = find_field(&s, "source");
    assert_eq!(source["type"]["name"], "Source");
    assert_eq!(
        source["type"]["namespace"],
        "io.debezium.connector.postgresql"
    );
    assert_eq!(
        find_field(&source["type"], "snapshot"),
        &json!({"name":"snapshot","type":[{"type":"string","connect.version":1,
            "connect.parameters":{"allowed":"true,last,false,incremental"},
            "connect.default":"false","connect.name":"io.debezium.data.Enum"},"null"],
            "default":"false"})
    );
    assert_eq!(
        find_field(&s, "transaction")["type"][1]["namespace"],
        json!("event")
    );
}

#[test]
fn encoded_values_decode_with_an_independent_avro_library() {
    let table = items("items");
    let layout = TableLayout::build(&opts(), &table).expect("layout");
    let ev = event(table);
    let o = opts();
    let env = layout
        .envelope(&o, &ev, 1_714_558_531_500_000_000)
        .expect("envelope");
    let text = avro_schema_string(&layout.envelope_schema, false).expect("schema");
    let bytes = encode_datum(&layout.envelope_schema, &env).expect("encodes");
    let v = decode(&text, &bytes);
    assert_eq!(field(&v, "before"), &A::Union(0, Box::new(A::Null)));
    assert_eq!(field(&v, "op"), &A::String("c".into()));
    assert_eq!(
        field(&v, "ts_ms"),
        &A::Union(1, Box::new(A::Long(1_714_558_531_500)))
    );
    let after = unwrap_union(field(&v, "after"));
    assert_eq!(field(after, "id"), &A::Int(7));
    assert_eq!(field(after, "small"), &A::Int(-3));
    // 1234.56 at scale 2: unscaled 123456 = 0x01E240 (base64 "AeJA", reference section 4).
    match unwrap_union(field(after, "price")) {
        A::Decimal(d) => {
            let bytes: Vec<u8> = d.try_into().expect("bytes");
            assert_eq!(bytes, vec![0x01, 0xE2, 0x40]);
        }
        other => panic!("price: {other:?}"),
    }
    // -12.345: scale 3, unscaled -12345 = 0xCFC7.
    let amount = unwrap_union(field(after, "amount"));
    assert_eq!(field(amount, "scale"), &A::Int(3));
    assert_eq!(field(amount, "value"), &A::Bytes(vec![0xCF, 0xC7]));
    let loc = unwrap_union(field(after, "loc"));
    assert_eq!(field(loc, "x"), &A::Double(1.5));
    assert_eq!(field(loc, "y"), &A::Double(-2.0));
    assert_eq!(
        unwrap_union(field(after, "tags")),
        &A::Array(vec![
            A::Union(1, Box::new(A::String("a".into()))),
            A::Union(1, Box::new(A::String("b c".into()))),
            A::Union(0, Box::new(A::Null)),
        ])
    );
    assert_eq!(
        unwrap_union(field(after, "mood")),
        &A::String("happy".into())
    );
    assert_eq!(
        unwrap_union(field(after, "at")),
        &A::String("2016-11-04T12:34:56.789000Z".into())
    );
    assert_eq!(
        unwrap_union(field(after, "data")),
        &A::Bytes(vec![0, 1, 0xff])
    );
    // A NULL in an optional column with a default is written as the default, branch 0 of
    // [string,"null"].
    assert_eq!(
        field(after, "note"),
        &A::Union(0, Box::new(A::String("n/a".into())))
    );
    assert_eq!(field(after, "extra"), &A::Union(0, Box::new(A::Null)));
    let source = field(&v, "source");
    assert_eq!(field(source, "name"), &A::String("pg".into()));
    assert_eq!(field(source, "txId"), &A::Union(1, Box::new(A::Long(772))));
    assert_eq!(
        field(source, "snapshot"),
        &A::Union(0, Box::new(A::String("false".into())))
    );
}

#[test]
fn binary_primitives() {
    let mut out = Vec::new();
    for v in [0i64, -1, 1, -64, 64, i64::MIN] {
        put_long(&mut out, v);
    }
    assert_eq!(
        out,
        [
            vec![0x00, 0x01, 0x02, 0x7f, 0x80, 0x01],
            vec![0xff; 9],
            vec![0x01]
        ]
        .concat()
    );
}

#[test]
fn names_are_checked_or_sanitized() {
    let mut t = (*items("items")).clone();
    t.name = "2nd-items".into();
    t.columns[1].name = "small value".into();
    let t = Arc::new(t);
    let layout = TableLayout::build(&opts(), &t).expect("layout");
    let err = avro_schema_string(&layout.envelope_schema, false).expect_err("invalid names");
    let msg = err.to_string();
    assert!(
        msg.contains("2nd-items") && msg.contains("sanitize_names"),
        "{msg}"
    );
    let s = avro_schema(&layout.envelope_schema, true).expect("sanitized");
    assert_eq!(s["namespace"], "pg.public._2nd_items");
    assert_eq!(s["connect.name"], "pg.public._2nd_items.Envelope");
    let value = &find_field(&s, "before")["type"][1];
    assert!(value["fields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == "small_value"));
    apache_avro::Schema::parse_str(&s.to_string()).expect("valid Avro");
}

#[test]
fn unnamed_structs_and_maps_get_confluent_names() {
    let inner = Schema::new(
        Type::Struct(vec![Schema::new(Type::Int32, false).field("a")]),
        false,
    );
    let outer = Schema::new(
        Type::Struct(vec![
            inner.field("x"),
            Schema::new(
                Type::Map(
                    Box::new(Schema::new(Type::String, false)),
                    Box::new(Schema::new(Type::Int64, false)),
                ),
                false,
            )
            .field("m"),
        ]),
        false,
    );
    let s = avro_schema(&outer, false).expect("schema");
    assert_eq!(s["name"], "ConnectDefault");
    assert_eq!(s["namespace"], "io.confluent.connect.avro");
    assert_eq!(find_field(&s, "x")["type"]["name"], "ConnectDefault2");
    assert_eq!(
        find_field(&s, "m")["type"],
        json!({"type":"map","values":"long"})
    );
    let d = Datum::Struct(vec![
        Datum::Struct(vec![Datum::Int32(5)]),
        Datum::Map(vec![(Datum::str("k"), Datum::Int64(-2))]),
    ]);
    let v = decode(&s.to_string(), &encode_datum(&outer, &d).expect("encodes"));
    assert_eq!(field(field(&v, "x"), "a"), &A::Int(5));
    assert_eq!(
        field(&v, "m"),
        &A::Map([("k".to_string(), A::Long(-2))].into_iter().collect())
    );
}

/// Logical decoding messages, transaction metadata and heartbeats encode and decode too.
#[test]
fn other_record_kinds_round_trip() {
    use crate::encode::records::connect as c;
    let o = opts();
    let msg = crate::event::LogicalMessage {
        transactional: true,
        prefix: "foo".into(),
        content: b"bar".to_vec(),
        source: event(items("items")).source,
    };
    let block = TransactionBlock {
        id: "772",
        total_order: 1,
        data_collection_order: 1,
    };
    let schema = c::message_value_schema();
    let d = c::message_value(&o, &msg, Some(&block), 5);
    let v = decode(
        &avro_schema_string(&schema, false).unwrap(),
        &encode_datum(&schema, &d).unwrap(),
    );
    assert_eq!(
        field(field(&v, "message"), "content"),
        &A::Union(1, Box::new(A::Bytes(b"bar".to_vec())))
    );
    let tx = unwrap_union(field(&v, "transaction"));
    assert_eq!(field(tx, "id"), &A::String("772".into()));
    let cols = vec![("public.items".to_string(), 2u64)];
    let schema = c::transaction_value_schema();
    let d = c::transaction_value("END", "772", Some((2, &cols)), 6);
    let v = decode(
        &avro_schema_string(&schema, false).unwrap(),
        &encode_datum(&schema, &d).unwrap(),
    );
    assert_eq!(field(&v, "event_count"), &A::Union(1, Box::new(A::Long(2))));
    let schema = c::heartbeat_value_schema();
    let v = decode(
        &avro_schema_string(&schema, false).unwrap(),
        &encode_datum(&schema, &c::heartbeat_value(9)).unwrap(),
    );
    assert_eq!(field(&v, "ts_ms"), &A::Long(9));
}

//! The golden type matrix: a table with every PostgreSQL type walrelay maps, read through a
//! snapshot, an insert, an update (TOAST) and a delete against the real PostgreSQL and broker,
//! compared field by field — schema and payload — with Debezium's output.
//!
//! Expected values are typed from ../shared/reference/debezium-format.md section 4 (the
//! example values there: `'11'::bit(2)`, numeric(10,2) 1234.56, `$1234.11`, 10.1111, the
//! 2016-11-04 13:51:30 times, `P1Y2M3DT4H5M6.78S`, `\x010203`) and, where the reference is
//! silent, from Debezium's `debezium-connector-postgres/src/test/java/io/debezium/connector/
//! postgresql/AbstractRecordsProducerTest.java` (`schemasAndValuesForNumericTypes`,
//! `schemaAndValuesForGeomTypes`, `schemasAndValuesForArrayTypes`,
//! `schemaAndValueFieldForMapEncodedHStoreType`, `schemasAndValuesForStringTypes`,
//! `schemaAndValuesForTstzRangeTypes`) and `PostgresValueConverter.java` (infinities,
//! `convertBits`), never from walrelay's encoder. Base64 and two's-complement bytes were
//! computed independently (Python's `int.to_bytes(signed=True)`, `struct.pack('<d')`).
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::json_order::assert_connect_layout;
use crate::support::{
    python_consume, relay_yaml, services, unique, Db, Record, Relay, TopicReader, WireFormat,
};

const WAIT: Duration = Duration::from_secs(90);

const SETUP: &str = "
CREATE EXTENSION IF NOT EXISTS hstore;
CREATE EXTENSION IF NOT EXISTS ltree;
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
CREATE TABLE matrix (
    id int4 PRIMARY KEY,
    b bool, bit1 bit(1), bits bit(4), vb varbit(8),
    i2 int2, i4 int4, i8 int8, f4 float4, f8 float8,
    n numeric(10,2), n38 numeric(38,0), nv numeric, m money,
    t text, vc varchar(10), c char(3), u uuid, j json, jb jsonb, x xml,
    hs hstore, lt ltree, ct citext, e mood,
    d date, tm time, tm3 time(3), ttz timetz, ts timestamp, ts3 timestamp(3),
    tstz timestamptz, tstz0 timestamptz(0), iv interval, by bytea, pt point,
    ia int4[], ta text[], ea mood[], ip inet, r int4range,
    dm posint, s serial, o oid, nm name, cr cidr, mac macaddr, mac8 macaddr8,
    tstz3 timestamptz(3),
    tv tsvector,
    dflt int4 DEFAULT 42,
    big text
);
ALTER TABLE matrix ALTER COLUMN big SET STORAGE EXTERNAL;
INSERT INTO matrix VALUES (
    1, true, B'1', B'1010', B'101',
    1, 123456, 4000000000, 3.3, 3.3,
    1234.56, 12345678901234567890123456789012345678, 10.1111, '1234.11',
    'hello', 'varchar', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": 1}', '{\"a\": 1}', '<a>1</a>',
    '\"key\"=>\"val\"', 'Top.Science', 'CiText', 'happy',
    '2016-11-04', '13:51:30', '13:51:30.123', '13:51:30.123789+02',
    '2016-11-04 13:51:30.123456', '2016-11-04 13:51:30.123',
    '2016-11-04 13:51:30.123456+02', '2016-11-04 13:51:30+02',
    '1 year 2 months 3 days 4 hours 5 minutes 6.78 seconds', '\\x010203', '(1,2)',
    '{1,2,3}', '{\"a b\",NULL}', '{happy,sad}', '192.168.0.1', '[1000,6000)',
    5, 10, 4000000000, 'pg_name', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05',
    '2016-11-04 13:51:30.1+02',
    'a b', DEFAULT, repeat('x', 10000)
);
INSERT INTO matrix (id, dflt) VALUES (2, NULL);
";

/// The `after` member schemas, in column order (`tv tsvector` has no mapping: left out).
fn expected_fields() -> Value {
    let opt = |ty: &str, field: &str| json!({"type": ty, "optional": true, "field": field});
    let named = |ty: &str, name: &str, field: &str| json!({"type": ty, "optional": true, "name": name, "version": 1, "field": field});
    let params = |ty: &str, name: &str, p: Value, field: &str| json!({"type": ty, "optional": true, "name": name, "version": 1, "parameters": p, "field": field});
    let enum_params = json!({"allowed": "sad,ok,happy"});
    json!([
        {"type": "int32", "optional": false, "field": "id"},
        opt("boolean", "b"),
        opt("boolean", "bit1"),
        params("bytes", "io.debezium.data.Bits", json!({"length": "4"}), "bits"),
        params("bytes", "io.debezium.data.Bits", json!({"length": "8"}), "vb"),
        opt("int16", "i2"),
        opt("int32", "i4"),
        opt("int64", "i8"),
        opt("float", "f4"),
        opt("double", "f8"),
        params("bytes", "org.apache.kafka.connect.data.Decimal", json!({"scale": "2", "connect.decimal.precision": "10"}), "n"),
        params("bytes", "org.apache.kafka.connect.data.Decimal", json!({"scale": "0", "connect.decimal.precision": "38"}), "n38"),
        {"type": "struct", "fields": [
            {"type": "int32", "optional": false, "field": "scale"},
            {"type": "bytes", "optional": false, "field": "value"}],
         "optional": true, "name": "io.debezium.data.VariableScaleDecimal", "version": 1,
         "doc": "Variable scaled decimal", "field": "nv"},
        params("bytes", "org.apache.kafka.connect.data.Decimal", json!({"scale": "2"}), "m"),
        opt("string", "t"),
        opt("string", "vc"),
        opt("string", "c"),
        named("string", "io.debezium.data.Uuid", "u"),
        named("string", "io.debezium.data.Json", "j"),
        named("string", "io.debezium.data.Json", "jb"),
        named("string", "io.debezium.data.Xml", "x"),
        named("string", "io.debezium.data.Json", "hs"),
        named("string", "io.debezium.data.Ltree", "lt"),
        opt("string", "ct"),
        params("string", "io.debezium.data.Enum", enum_params.clone(), "e"),
        named("int32", "io.debezium.time.Date", "d"),
        named("int64", "io.debezium.time.MicroTime", "tm"),
        named("int32", "io.debezium.time.Time", "tm3"),
        named("string", "io.debezium.time.ZonedTime", "ttz"),
        named("int64", "io.debezium.time.MicroTimestamp", "ts"),
        named("int64", "io.debezium.time.Timestamp", "ts3"),
        named("string", "io.debezium.time.ZonedTimestamp", "tstz"),
        named("string", "io.debezium.time.ZonedTimestamp", "tstz0"),
        named("int64", "io.debezium.time.MicroDuration", "iv"),
        opt("bytes", "by"),
        {"type": "struct", "fields": [
            {"type": "double", "optional": false, "field": "x"},
            {"type": "double", "optional": false, "field": "y"},
            {"type": "bytes", "optional": true, "field": "wkb"},
            {"type": "int32", "optional": true, "field": "srid"}],
         "optional": true, "name": "io.debezium.data.geometry.Point", "version": 1,
         "doc": "Geometry (POINT)", "field": "pt"},
        {"type": "array", "items": {"type": "int32", "optional": true}, "optional": true, "field": "ia"},
        {"type": "array", "items": {"type": "string", "optional": true}, "optional": true, "field": "ta"},
        // Enum items are required: `SchemaBuilder.array(Enum.builder("V1,V2"))` in Debezium's
        // RecordsSnapshotProducerIT.shouldSnapshotEnumArrayAsKnownType (DBZ-1969).
        {"type": "array", "items": {"type": "string", "optional": false, "name": "io.debezium.data.Enum",
            "version": 1, "parameters": enum_params}, "optional": true, "field": "ea"},
        opt("string", "ip"),
        opt("string", "r"),
        // A domain is its base type; serial is a NOT NULL int4 whose nextval default is 0;
        // oid is int64; name, cidr, macaddr and macaddr8 are strings (reference section 4).
        opt("int32", "dm"),
        {"type": "int32", "optional": false, "default": 0, "field": "s"},
        opt("int64", "o"),
        opt("string", "nm"),
        opt("string", "cr"),
        opt("string", "mac"),
        opt("string", "mac8"),
        named("string", "io.debezium.time.ZonedTimestamp", "tstz3"),
        {"type": "int32", "optional": true, "default": 42, "field": "dflt"},
        opt("string", "big"),
    ])
}

/// The whole value schema of a change record (reference section 2: the envelope's members in
/// order, the source block's fields in order with those not marked optional required, the
/// `event.block` transaction struct; section 8 for how the envelope closes).
fn expected_envelope(prefix: &str) -> Value {
    let value = |field: &str| {
        json!({"type": "struct", "fields": expected_fields(), "optional": true,
               "name": format!("{prefix}.public.matrix.Value"), "field": field})
    };
    let f = |ty: &str, optional: bool, field: &str| json!({"type": ty, "optional": optional, "field": field});
    json!({
        "type": "struct",
        "fields": [
            value("before"),
            value("after"),
            {"type": "struct", "fields": [
                f("string", false, "version"),
                f("string", false, "connector"),
                f("string", false, "name"),
                f("int64", false, "ts_ms"),
                {"type": "string", "optional": true, "name": "io.debezium.data.Enum", "version": 1,
                 "parameters": {"allowed": "true,last,false,incremental"}, "default": "false",
                 "field": "snapshot"},
                f("string", false, "db"),
                f("string", true, "sequence"),
                f("int64", true, "ts_us"),
                f("int64", true, "ts_ns"),
                f("string", false, "schema"),
                f("string", false, "table"),
                f("int64", true, "txId"),
                f("int64", true, "lsn"),
                f("int64", true, "xmin"),
             ], "optional": false, "name": "io.debezium.connector.postgresql.Source", "field": "source"},
            {"type": "struct", "fields": [
                f("string", false, "id"),
                f("int64", false, "total_order"),
                f("int64", false, "data_collection_order"),
             ], "optional": true, "name": "event.block", "version": 1, "field": "transaction"},
            f("string", false, "op"),
            f("int64", true, "ts_ms"),
            f("int64", true, "ts_us"),
            f("int64", true, "ts_ns"),
        ],
        "optional": false,
        "name": format!("{prefix}.public.matrix.Envelope"),
        "version": 2,
    })
}

/// Row 1 as Debezium writes it.
fn row1(big: &str) -> Value {
    json!({
        "id": 1, "b": true, "bit1": true,
        // B'1010' = 10 little-endian; B'101' = 5 (convertBits: bytes by the highest set bit).
        "bits": "Cg==", "vb": "BQ==",
        "i2": 1, "i4": 123456, "i8": 4000000000_i64, "f4": 3.3, "f8": 3.3,
        // Reference: numeric(10,2) 1234.56 → "AeJA"; 10.1111 → {"scale":4,"value":"AYr3"};
        // $1234.11 → "AeIT".
        "n": "AeJA", "n38": "CUmw9vACMxPESZBQ3jjzTg==",
        "nv": {"scale": 4, "value": "AYr3"}, "m": "AeIT",
        "t": "hello", "vc": "varchar", "c": "ab ",
        "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "j": "{\"a\": 1}", "jb": "{\"a\": 1}", "x": "<a>1</a>",
        "hs": "{\"key\":\"val\"}", "lt": "Top.Science", "ct": "CiText", "e": "happy",
        // Reference: 2016-11-04 → 17109; 13:51:30 → 49890000000; timestamp → 1478267490123456;
        // timestamptz +02 → 2016-11-04T11:51:30.123456Z; timetz → "11:51:30.123789Z".
        "d": 17109, "tm": 49_890_000_000_i64, "tm3": 49_890_123,
        "ttz": "11:51:30.123789Z",
        "ts": 1_478_267_490_123_456_i64, "ts3": 1_478_267_490_123_i64,
        "tstz": "2016-11-04T11:51:30.123456Z", "tstz0": "2016-11-04T11:51:30Z",
        // Reference: P1Y2M3DT4H5M6.78S → 37091106780000.
        "iv": 37_091_106_780_000_i64,
        "by": "AQID",
        "pt": {"x": 1.0, "y": 2.0, "wkb": "AQEAAAAAAAAAAADwPwAAAAAAAABA", "srid": null},
        "ia": [1, 2, 3], "ta": ["a b", null], "ea": ["happy", "sad"],
        "ip": "192.168.0.1", "r": "[1000,6000)",
        "dm": 5, "s": 10, "o": 4_000_000_000_i64, "nm": "pg_name", "cr": "10.0.0.0/8",
        "mac": "08:00:2b:01:02:03", "mac8": "08:00:2b:01:02:03:04:05",
        // timestamptz(3): exactly three fraction digits, zeros kept.
        "tstz3": "2016-11-04T11:51:30.100Z",
        "dflt": 42, "big": big,
    })
}

/// Row 2: the key and NULLs, except that a NULL in a column with a default is written as the
/// default (JsonConverter).
fn row2() -> Value {
    let mut row = serde_json::Map::new();
    for f in expected_fields().as_array().expect("fields") {
        row.insert(f["field"].as_str().expect("name").into(), Value::Null);
    }
    row.insert("id".into(), json!(2));
    row.insert("dflt".into(), json!(42));
    // serial: the sequence's first value.
    row.insert("s".into(), json!(1));
    Value::Object(row)
}

/// Row 2 as the `before` of its delete under REPLICA IDENTITY DEFAULT: only the key has a
/// value; every other column is null, written as its default where it has one (serial: 0).
fn row2_deleted() -> Value {
    let mut row = row2();
    row["s"] = json!(0);
    row
}

const ROW3: &str = "
INSERT INTO matrix VALUES (
    3, false, B'0', B'0000', B'11111111',
    32767, -2147483648, 9223372036854775807, 'NaN', '-Infinity',
    -99999999.99, -12345678901234567890123456789012345678, -0.000001, '-0.01',
    E'\\u00fcn\\u00ef\\u00a9\\u00f8d\\u00e9 \\U0001F600 \"q\"\\n', '', 'x', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '[]', '{}', '<r/>',
    '', 'a', 'ÄÖ', 'sad',
    'infinity', '24:00:00', '00:00:00', '00:00:00+14',
    'infinity', '-infinity', '-infinity', '1970-01-01 00:00:00+00',
    '-1 day 2 hours', '\\x', '(-1.5,0)',
    '{}', '{}', '{}', '::1', 'empty',
    2147483647, 20, 0, '', '::/0', 'ff:ff:ff:ff:ff:ff', '00:00:00:00:00:00:00:00',
    '2000-01-01 00:00:00+00',
    '', 7, repeat('y', 10000)
)";

/// Row 3: extremes.
fn row3() -> Value {
    json!({
        "id": 3, "b": false, "bit1": false,
        // All zeros: BitSet.length() = 0 → no bytes. 255 → [0xff].
        "bits": "", "vb": "/w==",
        "i2": 32767, "i4": -2147483648_i64, "i8": 9223372036854775807_i64,
        // Jackson writes non-finite floats as strings.
        "f4": "NaN", "f8": "-Infinity",
        // -9999999999 and -12345678901234567890123456789012345678 as two's complement;
        // -0.000001 → scale 6, unscaled -1; -$0.01 → -1.
        "n": "/av0HAE=", "n38": "9rZPCQ/9zOw7tm+vIccMsg==",
        "nv": {"scale": 6, "value": "/w=="}, "m": "/w==",
        "t": "\u{fc}n\u{ef}\u{a9}\u{f8}d\u{e9} \u{1F600} \"q\"\n", "vc": "", "c": "x  ",
        "u": "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "j": "[]", "jb": "{}", "x": "<r/>",
        "hs": "{}", "lt": "a", "ct": "ÄÖ", "e": "sad",
        // PostgresValueConverter: POSITIVE_INFINITY_LOCAL_DATE (+5877611-06-21, pinned by
        // PostgresValueConverterTest.shouldMatchPositiveAndNegativeInfinityLocalDate, dbz#2524)
        // as epoch days;
        // 24:00:00 is 86400000000 µs; timestamp ±infinity as pgjdbc's DATE_POSITIVE/NEGATIVE_
        // INFINITY (µs, /1000 for ms); timestamptz -infinity as PostgreSQL's text.
        "d": 2_146_033_979, "tm": 86_400_000_000_i64, "tm3": 0,
        "ttz": "10:00:00Z",
        "ts": 9_223_372_036_825_200_000_i64, "ts3": -9_223_372_036_832_400_i64,
        "tstz": "-infinity", "tstz0": "1970-01-01T00:00:00Z",
        // -1 day +02:00:00 → (-24 + 2) h.
        "iv": -79_200_000_000_i64,
        "by": "",
        "pt": {"x": -1.5, "y": 0.0, "wkb": "AQEAAAAAAAAAAAD4vwAAAAAAAAAA", "srid": null},
        "ia": [], "ta": [], "ea": [],
        "ip": "::1", "r": "empty",
        "dm": 2147483647, "s": 20, "o": 0, "nm": "", "cr": "::/0",
        "mac": "ff:ff:ff:ff:ff:ff", "mac8": "00:00:00:00:00:00:00:00",
        "tstz3": "2000-01-01T00:00:00.000Z",
        "dflt": 7, "big": "y".repeat(10000),
    })
}

/// Compares two rows member by member, so a failure names the column.
fn assert_row(what: &str, actual: &Value, expected: &Value) {
    let (a, e) = (
        actual
            .as_object()
            .unwrap_or_else(|| panic!("{what}: not an object: {actual}")),
        expected.as_object().expect("expected object"),
    );
    let names = |m: &serde_json::Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
    for (k, ev) in e {
        assert_eq!(a.get(k), Some(ev), "{what}: column {k}");
    }
    assert_eq!(names(a), names(e), "{what}: columns and their order");
}

fn read(topic: &str, n: usize) -> Vec<Record> {
    let mut reader = TopicReader::new(&services().brokers, topic);
    tokio::task::block_in_place(|| {
        reader
            .read_until(WAIT, "type matrix records", |r| r.len() >= n)
            .to_vec()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_type_matrix_json() {
    let s = services();
    let db = Db::create("types").await;
    db.exec(SETUP).await;
    let slot = unique("types");
    let prefix = unique("types");
    let yaml = relay_yaml(&db, &slot, &["public.matrix"], &prefix, &s.brokers, "", "");
    let mut relay = Relay::start(&slot, &yaml);
    let topic = format!("{prefix}.public.matrix");

    // The snapshot: rows 1 and 2.
    let snap = read(&topic, 2);
    relay.assert_running();
    db.exec(ROW3).await;
    db.exec("UPDATE matrix SET t = 'changed', f4 = 'Infinity' WHERE id = 1")
        .await;
    db.exec("DELETE FROM matrix WHERE id = 2").await;
    let records = read(&topic, 6);
    assert_eq!(
        &records[..2]
            .iter()
            .map(|r| r.key.clone())
            .collect::<Vec<_>>(),
        &snap.iter().map(|r| r.key.clone()).collect::<Vec<_>>()
    );

    // Every message's raw bytes: JsonConverter's key order in schema and payload.
    for r in &records {
        let at = format!("record at offset {}", r.offset);
        assert_connect_layout(r.key.as_deref().expect("key"), &format!("{at}, key"));
        if let Some(v) = &r.value {
            assert_connect_layout(v, &format!("{at}, value"));
        }
    }

    let value = records[0].value_json().expect("value");
    let schema = &value["schema"];
    let after = schema["fields"]
        .as_array()
        .expect("envelope fields")
        .iter()
        .find(|f| f["field"] == "after")
        .expect("after");
    assert_eq!(
        after["name"],
        json!(format!("{prefix}.public.matrix.Value"))
    );
    let actual_fields = after["fields"].as_array().expect("fields");
    let expected = expected_fields();
    for (a, e) in actual_fields
        .iter()
        .zip(expected.as_array().expect("fields"))
    {
        assert_eq!(a, e, "schema of column {}", e["field"]);
    }
    assert_eq!(
        actual_fields.len(),
        expected.as_array().expect("fields").len()
    );
    assert!(
        !actual_fields.iter().any(|f| f["field"] == "tv"),
        "tsvector has no mapping: left out (unknown_types: skip)"
    );
    // Then the whole value schema, member by member, of every change record (r, r, c, u, d).
    let envelope = expected_envelope(&prefix);
    for r in records.iter().filter(|r| r.value.is_some()) {
        let actual = &r.value_json().expect("value")["schema"];
        for (a, e) in actual["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .zip(envelope["fields"].as_array().expect("fields"))
        {
            assert_eq!(
                a, e,
                "envelope member {} at offset {}",
                e["field"], r.offset
            );
        }
        assert_eq!(actual, &envelope, "value schema at offset {}", r.offset);
    }
    assert_eq!(
        records[0].key_json()["schema"],
        json!({"type": "struct", "fields": [{"type": "int32", "optional": false, "field": "id"}],
               "optional": false, "name": format!("{prefix}.public.matrix.Key")})
    );

    let payload = |r: &Record| r.payload();
    // Snapshot reads.
    let p = payload(&records[0]);
    assert_eq!(
        (p["op"].as_str(), p["source"]["snapshot"].as_str()),
        (Some("r"), Some("first"))
    );
    assert_row("snapshot row 1", &p["after"], &row1(&"x".repeat(10000)));
    let p = payload(&records[1]);
    assert_eq!(
        (p["op"].as_str(), p["source"]["snapshot"].as_str()),
        (Some("r"), Some("last"))
    );
    assert_row("snapshot row 2 (NULLs)", &p["after"], &row2());
    // The insert of the extremes.
    let p = payload(&records[2]);
    assert_eq!(p["op"], "c");
    assert_row("inserted row 3 (extremes)", &p["after"], &row3());
    // The update under REPLICA IDENTITY DEFAULT: no before, and the TOASTed column the update
    // did not touch is Debezium's placeholder (reference section 5).
    let p = payload(&records[3]);
    assert_eq!(p["op"], "u");
    assert_eq!(p["before"], Value::Null);
    let mut expected_after = row1("__debezium_unavailable_value");
    expected_after["t"] = json!("changed");
    expected_after["f4"] = json!("Infinity");
    assert_row("updated row 1", &p["after"], &expected_after);
    // The delete under DEFAULT: the key in before, the rest null (dflt: its default).
    let p = payload(&records[4]);
    assert_eq!(p["op"], "d");
    assert_row("deleted row 2", &p["before"], &row2_deleted());
    assert_eq!(p["after"], Value::Null);
    assert_eq!(records[5].value, None, "tombstone after the delete");
    assert_eq!(records[5].key_json()["payload"], json!({"id": 2}));

    // A different Kafka client (kafka-python) decodes every record to the same keys and values.
    let theirs = tokio::task::block_in_place(|| {
        python_consume(
            &s.brokers,
            &[&topic],
            &WireFormat::Json,
            records.len(),
            WAIT,
        )
    });
    assert_eq!(
        theirs.len(),
        records.len(),
        "kafka-python read every record"
    );
    let by_position = |p: i64, o: i64| {
        theirs
            .iter()
            .find(|l| l["partition"] == p && l["offset"] == o)
            .unwrap_or_else(|| panic!("kafka-python has no record at {p}/{o}"))
    };
    for r in &records {
        let line = by_position(i64::from(r.partition), r.offset);
        assert_eq!(line["key"], r.key_json(), "key at offset {}", r.offset);
        assert_eq!(
            line["value"],
            r.value_json().unwrap_or(Value::Null),
            "value at offset {}",
            r.offset
        );
    }

    let log = relay.log_text();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("column left out"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning for the unmapped column, however many rows: {log}"
    );
    assert!(
        warnings[0].contains("tv") && warnings[0].contains("tsvector"),
        "{}",
        warnings[0]
    );
    assert!(relay.stop().success());
    // The counter: one tsvector value left out per row written (r, r, c, u's after, d's before).
    let log = relay.log_text();
    let tally = log
        .lines()
        .rfind(|l| l.contains("sink tally (final)"))
        .expect("final tally");
    assert!(
        tally.contains("unmapped_values_left_out=5"),
        "five tsvector values left out: {tally}"
    );
}

/// `format.schemas: false` writes payloads alone; `unknown_types: text` writes an unmapped
/// type as PostgreSQL's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_only_and_unknown_types_as_text() {
    let s = services();
    let db = Db::create("types").await;
    db.exec("CREATE TABLE docs (id int PRIMARY KEY, body tsvector); INSERT INTO docs VALUES (1, 'fat cat')")
        .await;
    let slot = unique("types");
    let prefix = unique("types");
    let yaml = relay_yaml(
        &db,
        &slot,
        &["public.docs"],
        &prefix,
        &s.brokers,
        "",
        "format:\n  schemas: false\n  unknown_types: text\n",
    );
    let mut relay = Relay::start(&slot, &yaml);
    let records = read(&format!("{prefix}.public.docs"), 1);
    assert_eq!(records[0].key_json(), json!({"id": 1}));
    let value = records[0].value_json().expect("value");
    assert!(value.get("schema").is_none(), "no schema half: {value}");
    assert_eq!(value["op"], "r");
    assert_eq!(value["after"], json!({"id": 1, "body": "'cat' 'fat'"}));
    relay.stop();
}

/// `unknown_types: fail` stops the relay with an error naming table, column and type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_types_fail_names_the_column() {
    let s = services();
    let db = Db::create("types").await;
    db.exec("CREATE TABLE docs (id int PRIMARY KEY, body tsvector); INSERT INTO docs VALUES (1, 'fat cat')")
        .await;
    let slot = unique("types");
    let prefix = unique("types");
    let yaml = relay_yaml(
        &db,
        &slot,
        &["public.docs"],
        &prefix,
        &s.brokers,
        "",
        "format:\n  unknown_types: fail\n",
    );
    let mut relay = Relay::start(&slot, &yaml);
    let status = tokio::task::block_in_place(|| relay.wait_exit(WAIT));
    assert!(!status.success(), "the relay must refuse the table");
    let log = relay.log_text();
    assert!(
        log.contains("public.docs") && log.contains("column body") && log.contains("tsvector"),
        "the error names table, column and type: {log}"
    );
}

/// A row's expected Debezium JSON values as fastavro decodes the Avro of the same Connect data:
/// Connect `Decimal` is Avro's decimal logical type (a decimal string here, see consume.py); a
/// `float` column is an Avro float, read back widened to a double. Everything else (Debezium's
/// semantic types are plain Avro primitives, bytes are base64 here) reads as in JSON.
fn as_avro(mut row: Value) -> Value {
    for (col, decimal) in [("n", 2), ("n38", 0), ("m", 2)] {
        if let Some(b64) = row[col].as_str() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("base64");
            row[col] = json!(decimal_text(&bytes, decimal));
        }
    }
    if let Some(f) = row["f4"].as_f64() {
        row["f4"] = json!(f64::from(f as f32));
    }
    row
}

/// Big-endian two's complement unscaled value and scale → decimal text (as Python's `str` of a
/// `Decimal`), by long division: independent of the encoder's code.
fn decimal_text(bytes: &[u8], scale: usize) -> String {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    // Magnitude bytes.
    let mut mag: Vec<u8> = if negative {
        let mut m: Vec<u8> = bytes.iter().map(|b| !b).collect();
        for b in m.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
        m
    } else {
        bytes.to_vec()
    };
    let mut digits = Vec::new();
    while mag.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for b in mag.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(char::from(b'0' + rem as u8));
    }
    while digits.len() <= scale {
        digits.push('0');
    }
    digits.reverse();
    let mut text: String = digits.iter().collect();
    if scale > 0 {
        text.insert(text.len() - scale, '.');
    }
    if negative {
        text.insert(0, '-');
    }
    text
}

#[test]
fn decimal_text_reads_twos_complement() {
    // Reference section 4: "AeJA" is 1234.56 at scale 2, "AeIT" 1234.11.
    assert_eq!(decimal_text(&[0x01, 0xe2, 0x40], 2), "1234.56");
    assert_eq!(decimal_text(&[0xff], 2), "-0.01");
    assert_eq!(decimal_text(&[0x00], 0), "0");
}

/// The same type matrix as Confluent Avro through the Schema Registry API, decoded by a
/// different client and Avro library (kafka-python, fastavro), field by field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_type_matrix_avro() {
    use crate::support::registry::TestSchemaRegistry;
    let s = services();
    let registry = TestSchemaRegistry::start();
    let db = Db::create("types").await;
    db.exec(SETUP).await;
    let slot = unique("types");
    let prefix = unique("types");
    let yaml = relay_yaml(
        &db,
        &slot,
        &["public.matrix"],
        &prefix,
        &s.brokers,
        "",
        &format!(
            "format:\n  type: avro\n  avro:\n    schema_registry:\n      urls: [{}]\n",
            registry.url()
        ),
    );
    let mut relay = Relay::start(&slot, &yaml);
    let topic = format!("{prefix}.public.matrix");
    let format = WireFormat::Avro {
        registry: registry.url(),
    };
    let snap =
        tokio::task::block_in_place(|| python_consume(&s.brokers, &[&topic], &format, 2, WAIT));
    assert_eq!(snap.len(), 2);
    relay.assert_running();
    db.exec(ROW3).await;
    db.exec("UPDATE matrix SET t = 'changed', f4 = 'Infinity' WHERE id = 1")
        .await;
    db.exec("DELETE FROM matrix WHERE id = 2").await;
    let lines =
        tokio::task::block_in_place(|| python_consume(&s.brokers, &[&topic], &format, 6, WAIT));
    assert_eq!(lines.len(), 6);
    let value = |i: usize| lines[i]["value"].clone();

    assert_eq!(value(0)["op"], "r");
    assert_row(
        "avro snapshot row 1",
        &value(0)["after"],
        &as_avro(row1(&"x".repeat(10000))),
    );
    assert_eq!(value(1)["op"], "r");
    assert_row("avro snapshot row 2", &value(1)["after"], &as_avro(row2()));
    assert_eq!(value(2)["op"], "c");
    assert_row(
        "avro row 3 (extremes)",
        &value(2)["after"],
        &as_avro(row3()),
    );
    assert_eq!(value(3)["op"], "u");
    assert_eq!(value(3)["before"], Value::Null);
    let mut after = row1("__debezium_unavailable_value");
    after["t"] = json!("changed");
    after["f4"] = json!("Infinity");
    assert_row("avro updated row 1", &value(3)["after"], &as_avro(after));
    assert_eq!(value(4)["op"], "d");
    assert_row(
        "avro deleted row 2",
        &value(4)["before"],
        &as_avro(row2_deleted()),
    );
    assert_eq!(lines[5]["key"], json!({"id": 2}));
    assert_eq!(lines[5]["value"], Value::Null, "tombstone");

    // The registered value schema (reference section 6).
    let schema = registry.latest_schema(&format!("{topic}-value"));
    assert_eq!(schema["namespace"], format!("{prefix}.public.matrix"));
    assert_eq!(schema["name"], "Envelope");
    let before = &schema["fields"][0];
    assert_eq!(before["name"], "before");
    assert_eq!(before["type"][0], "null");
    assert_eq!(before["default"], Value::Null);
    let value_record = &before["type"][1];
    assert_eq!(value_record["name"], "Value");
    assert_eq!(
        schema["fields"][1]["type"],
        json!(["null", "Value"]),
        "a second use is a reference"
    );
    let field = |name: &str| {
        value_record["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no field {name}"))
            .clone()
    };
    // int16 → int with connect.type; Decimal → bytes decimal with scale and precision.
    assert_eq!(
        field("i2")["type"],
        json!(["null", {"type": "int", "connect.type": "int16"}])
    );
    let n = &field("n")["type"][1];
    assert_eq!(
        (
            n["type"].as_str(),
            n["logicalType"].as_str(),
            n["scale"].as_i64(),
            n["precision"].as_i64()
        ),
        (Some("bytes"), Some("decimal"), Some(2), Some(10))
    );
    // money: no precision parameter → 64.
    assert_eq!(field("m")["type"][1]["precision"], 64);
    // Debezium's semantic types stay primitives carrying connect.name.
    let d = &field("d")["type"][1];
    assert_eq!(
        (d["type"].as_str(), d["connect.name"].as_str()),
        (Some("int"), Some("io.debezium.time.Date"))
    );
    assert!(d.get("logicalType").is_none());
    // Optional with a default: [T, "null"] with that default.
    let dflt = field("dflt");
    let first = &dflt["type"][0];
    assert!(first == "int" || first["type"] == "int", "{dflt}");
    assert_eq!(dflt["type"][1], "null");
    assert_eq!(dflt["default"], 42);
    relay.stop();
}

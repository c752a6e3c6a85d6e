//! A type oid (picked by the first byte) and text (the rest, lossily UTF-8): parsing must never
//! panic; what parses is checked against a few cheap properties.
#![no_main]

use libfuzzer_sys::fuzz_target;
use walrelay_pgwire::text::{oid, parse_text, parse_value};
use walrelay_pgwire::{Column, Value};

/// The oids `text.rs` knows, and a few it does not (carried as text).
const OIDS: &[u32] = &[
    oid::BOOL,
    oid::BYTEA,
    oid::CHAR,
    oid::NAME,
    oid::INT8,
    oid::INT2,
    oid::INT4,
    oid::TEXT,
    oid::OID,
    oid::JSON,
    oid::FLOAT4,
    oid::FLOAT8,
    oid::BPCHAR,
    oid::VARCHAR,
    oid::DATE,
    oid::TIME,
    oid::TIMESTAMP,
    oid::TIMESTAMPTZ,
    oid::NUMERIC,
    oid::UUID,
    oid::JSONB,
    oid::XML,
    oid::POINT,
    oid::CIDR,
    oid::MACADDR8,
    oid::MONEY,
    oid::MACADDR,
    oid::INET,
    oid::INTERVAL,
    oid::TIMETZ,
    oid::BIT,
    oid::VARBIT,
    oid::INT4RANGE,
    oid::NUMRANGE,
    oid::TSRANGE,
    oid::TSTZRANGE,
    oid::DATERANGE,
    oid::INT8RANGE,
    // Unknown to the parser.
    0,
    1,
    16_385,
    u32::MAX,
];

fn hex(bytes: &[u8]) -> String {
    let mut s = String::from("\\x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Equality that holds for NaN floats too (`Value`'s `PartialEq` is IEEE's, where NaN != NaN).
fn same<T: std::fmt::Debug, U: std::fmt::Debug>(a: T, b: U) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let type_oid = OIDS[usize::from(pick) % OIDS.len()];
    let text = String::from_utf8_lossy(rest);
    let parsed = parse_text(type_oid, &text);
    // Deterministic.
    assert!(same(&parsed, parse_text(type_oid, &text)));

    // The column-aware entry point agrees, and its error (which quotes a cut of the text) renders.
    // The second column is a domain over the type, which changes the error's type name.
    for (own, base) in [(type_oid, 0), (90_000, type_oid)] {
        let column = Column {
            name: "c".into(),
            type_oid: own,
            type_modifier: -1,
            type_name: if base == 0 {
                String::new()
            } else {
                "dom".into()
            },
            base_type_oid: base,
            nullable: true,
            is_key: false,
            default: None,
            enum_labels: Vec::new(),
        };
        match parse_value(&column, &text) {
            Ok(v) => assert!(same(Ok::<_, ()>(&v), parsed.as_ref().map_err(|_| ()))),
            Err(e) => {
                assert!(parsed.is_err());
                drop(e.to_string());
            }
        }
    }

    // Values with a canonical text form read back as themselves from it.
    let Ok(value) = parsed else { return };
    let canonical = match &value {
        Value::Bool(b) => Some(if *b { "t" } else { "f" }.to_owned()),
        Value::Int16(v) => Some(v.to_string()),
        Value::Int32(v) => Some(v.to_string()),
        Value::Int64(v) if type_oid == oid::INT8 => Some(v.to_string()),
        Value::Uuid(u) => Some(u.clone()),
        Value::Bytes(b) => Some(hex(b)),
        Value::Text(t) | Value::Json(t) | Value::Numeric(t) => Some(t.clone()),
        _ => None,
    };
    if let Some(canonical) = canonical {
        let again = parse_text(type_oid, &canonical);
        assert!(
            same(again.as_ref().map_err(|_| ()), Ok::<_, ()>(&value)),
            "canonical form {canonical:?} of {value:?} (from {text:?}) reads back as {again:?}"
        );
    }
});

//! Key order of the JSON walrelay writes, checked on the raw bytes. `serde_json::Value` sorts
//! object keys (no `preserve_order` here), so the order Kafka's JsonConverter gives — which
//! byte-comparing consumers and schema-diffing tools see — is read with a parser that keeps it.
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value with object members in the order they were written.
#[derive(Debug)]
pub enum Node {
    Str(String),
    Scalar,
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl Node {
    fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    fn str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }
    fn keys(&self) -> Vec<&str> {
        match self {
            Node::Object(members) => members.iter().map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        }
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut members = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Node>()? {
            members.push((k, v));
        }
        Ok(Node::Object(members))
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

/// The order in which JsonConverter writes a schema node's keys (reference section 3).
const SCHEMA_KEYS: [&str; 12] = [
    "type",
    "fields",
    "items",
    "keys",
    "values",
    "optional",
    "name",
    "version",
    "doc",
    "parameters",
    "default",
    "field",
];

/// Asserts that a `{"schema":…,"payload":…}` message is laid out as JsonConverter lays it out:
/// the two halves in that order; every schema node's keys in [`SCHEMA_KEYS`] order with
/// `optional` always present; every struct payload's members in its schema's field order.
pub fn assert_connect_layout(raw: &[u8], what: &str) {
    let root: Node = serde_json::from_slice(raw).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(root.keys(), ["schema", "payload"], "{what}: top-level keys");
    let schema = root.get("schema").expect("schema");
    let payload = root.get("payload").expect("payload");
    check_schema(schema, what);
    check_payload(schema, payload, what);
}

fn check_schema(node: &Node, path: &str) {
    let keys = node.keys();
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| {
            SCHEMA_KEYS
                .iter()
                .position(|o| o == k)
                .unwrap_or_else(|| panic!("{path}: unexpected schema key {k:?}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "{path}: schema keys {keys:?} are not in JsonConverter's order {SCHEMA_KEYS:?}"
    );
    assert!(
        keys.contains(&"optional"),
        "{path}: `optional` is always written"
    );
    if let Some(Node::Array(fields)) = node.get("fields") {
        for f in fields {
            let name = f.get("field").and_then(Node::str).unwrap_or("?");
            check_schema(f, &format!("{path}.{name}"));
        }
    }
    for inner in ["items", "keys", "values"] {
        if let Some(n) = node.get(inner) {
            check_schema(n, &format!("{path}[{inner}]"));
        }
    }
}

fn check_payload(schema: &Node, payload: &Node, path: &str) {
    match (schema.get("type").and_then(Node::str), payload) {
        (Some("struct"), Node::Object(_)) => {
            let Some(Node::Array(fields)) = schema.get("fields") else {
                panic!("{path}: struct without fields");
            };
            let names: Vec<&str> = fields
                .iter()
                .map(|f| f.get("field").and_then(Node::str).unwrap_or("?"))
                .collect();
            assert_eq!(
                payload.keys(),
                names,
                "{path}: payload members in field order"
            );
            for (f, name) in fields.iter().zip(&names) {
                check_payload(
                    f,
                    payload.get(name).expect("member"),
                    &format!("{path}.{name}"),
                );
            }
        }
        (Some("array"), Node::Array(items)) => {
            let item_schema = schema.get("items").expect("items");
            for (i, item) in items.iter().enumerate() {
                check_payload(item_schema, item, &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::assert_connect_layout;

    /// The reference's golden key (section 8) is laid out correctly.
    #[test]
    fn reference_golden_key_passes() {
        assert_connect_layout(
            br#"{"schema":{"type":"struct","fields":[{"type":"string","optional":false,"name":"io.debezium.data.Uuid","version":1,"field":"id"}],"optional":false,"name":"pg.public.products.Key"},"payload":{"id":"3f1c9a52-7b8e-4d2a-9c61-0e5b2f7a4d10"}}"#,
            "golden key",
        );
    }

    #[test]
    #[should_panic(expected = "not in JsonConverter's order")]
    fn name_before_optional_is_refused() {
        assert_connect_layout(
            br#"{"schema":{"type":"struct","fields":[{"type":"string","name":"io.debezium.data.Uuid","optional":false,"version":1,"field":"id"}],"optional":false,"name":"k"},"payload":{"id":"x"}}"#,
            "swapped",
        );
    }

    #[test]
    #[should_panic(expected = "payload members in field order")]
    fn payload_out_of_field_order_is_refused() {
        assert_connect_layout(
            br#"{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"a"},{"type":"int32","optional":false,"field":"b"}],"optional":false},"payload":{"b":1,"a":2}}"#,
            "payload order",
        );
    }
}

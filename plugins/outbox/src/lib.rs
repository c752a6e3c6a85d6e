//! Debezium's outbox event router: each insert into the outbox table becomes one plain record on
//! a topic chosen by a column, keyed by another, whose value is the `payload` column as it is.
//! See README.md for the configuration and where it differs from Debezium.

use walrelay_plugin_sdk::pg_text;
use walrelay_plugin_sdk::prelude::*;

/// Debezium's `debezium.op.invalid.behavior`: what an update of the outbox table does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnUpdate {
    /// Drop it, logging a warning.
    Warn,
    /// Drop it, logging an error.
    Error,
    /// Fail the event (the relay's failure policy applies).
    Fatal,
}

/// One `fields_additional_placement` entry: column `field` goes to header `alias`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Additional {
    field: String,
    alias: String,
}

#[derive(Debug)]
struct Outbox {
    /// `schema.table` of the outbox table.
    table: String,
    id_field: String,
    key_field: String,
    payload_field: String,
    route_by_field: String,
    /// The topic, `${routedByValue}` replaced by the value of `route_by_field`.
    route_topic_replacement: String,
    route_tombstone_on_empty_payload: bool,
    additional: Vec<Additional>,
    on_update: OnUpdate,
}

const PLACEHOLDER: &str = "${routedByValue}";

const KEYS: &[&str] = &[
    "table",
    "id_field",
    "key_field",
    "payload_field",
    "route_by_field",
    "route_topic_replacement",
    "route_tombstone_on_empty_payload",
    "fields_additional_placement",
    "on_update",
];

impl Plugin for Outbox {
    fn new(config: Config) -> Result<Self, String> {
        config.deny_unknown(KEYS)?;
        let table = config.get_str("table")?.unwrap_or("public.outbox");
        if table.split('.').count() != 2 || table.split('.').any(str::is_empty) {
            return Err(format!(
                "configuration key `table` must be `schema.table`, not `{table}`"
            ));
        }
        let column = |key: &str, default: &str| -> Result<String, String> {
            let name = config.get_str(key)?.unwrap_or(default);
            if name.is_empty() {
                return Err(format!("configuration key `{key}` must name a column"));
            }
            Ok(name.to_string())
        };
        let route_topic_replacement = config
            .get_str("route_topic_replacement")?
            .unwrap_or("outbox.event.${routedByValue}")
            .to_string();
        if route_topic_replacement.is_empty() {
            return Err("configuration key `route_topic_replacement` must not be empty".into());
        }
        let on_update = match config.get_str("on_update")?.unwrap_or("warn") {
            "warn" => OnUpdate::Warn,
            "error" => OnUpdate::Error,
            "fatal" => OnUpdate::Fatal,
            other => {
                return Err(format!(
                    "`on_update` must be `warn`, `error` or `fatal`, not `{other}`"
                ))
            }
        };
        Ok(Outbox {
            table: table.to_string(),
            id_field: column("id_field", "id")?,
            key_field: column("key_field", "aggregateid")?,
            payload_field: column("payload_field", "payload")?,
            route_by_field: column("route_by_field", "aggregatetype")?,
            route_topic_replacement,
            route_tombstone_on_empty_payload: config
                .get_bool("route_tombstone_on_empty_payload")?
                .unwrap_or(false),
            additional: parse_additional(config.get("fields_additional_placement")?)?,
            on_update,
        })
    }

    /// Only the outbox table: every other table goes around the plugin untouched.
    fn interest(&self) -> Interest {
        Interest::all().only_tables([self.table.clone()])
    }

    fn on_event(&mut self, event: Event) -> Result<Emit, String> {
        // The relay only sends the outbox table (see `interest`); be safe if it sends more.
        if event.table().qualified_name() != self.table {
            return Ok(Emit::Keep(event));
        }
        match event.op() {
            Op::Create | Op::Read => self.route(&event).map(Emit::from),
            // The outbox pattern deletes rows right after inserting them: nothing to route.
            Op::Delete | Op::Truncate => Ok(Emit::Drop),
            Op::Update => {
                let message = format!(
                    "outbox: an update of {} at LSN {} was ignored (outbox rows are insert-only)",
                    self.table,
                    event.source().lsn
                );
                match self.on_update {
                    OnUpdate::Warn => host_log(Level::Warn, &message),
                    OnUpdate::Error => host_log(Level::Error, &message),
                    OnUpdate::Fatal => {
                        return Err(format!(
                            "outbox: unexpected update of {} (on_update: fatal)",
                            self.table
                        ))
                    }
                }
                Ok(Emit::Drop)
            }
        }
    }
}

impl Outbox {
    /// The record for an inserted outbox row.
    fn route(&self, event: &Event) -> Result<Record, String> {
        let column = |name: &str| -> Result<&Value, String> {
            event.get(Row::After, name).ok_or_else(|| {
                format!(
                    "outbox: table {} has no column `{name}` (see the plugin's *_field settings)",
                    self.table
                )
            })
        };
        let routed_by = match column(&self.route_by_field)? {
            Value::Null => {
                return Err(format!(
                    "outbox: `{}` is null, so the event has no topic",
                    self.route_by_field
                ))
            }
            value => text(value),
        };
        let topic = self
            .route_topic_replacement
            .replace(PLACEHOLDER, &routed_by);
        let key = match column(&self.key_field)? {
            Value::Null => None,
            value => Some(text(value).into_bytes()),
        };
        let payload = column(&self.payload_field)?;
        let value = match payload {
            Value::Null => None,
            Value::Bytes(b) => Some(b.clone()),
            other => Some(text(other).into_bytes()),
        };
        let empty = value
            .as_deref()
            .is_none_or(|v| v.iter().all(u8::is_ascii_whitespace));
        let value = if empty && self.route_tombstone_on_empty_payload {
            None
        } else {
            value
        };
        let mut record = Record::new(topic, key, value);
        record.headers = event.headers().to_vec();
        let id = column(&self.id_field)?;
        record.headers.push(Header::new("id", text(id)));
        for extra in &self.additional {
            let value = column(&extra.field)?;
            // A null becomes an empty header value (Kafka headers have no null in the WIT).
            let value = if value.is_null() {
                String::new()
            } else {
                text(value)
            };
            record.headers.push(Header::new(extra.alias.clone(), value));
        }
        Ok(record)
    }
}

/// `fields_additional_placement`: a list of `{field, placement: header, alias}` objects, or
/// Debezium's `field:placement[:alias]` strings.
fn parse_additional(
    value: Option<&walrelay_plugin_sdk::serde_json::Value>,
) -> Result<Vec<Additional>, String> {
    use walrelay_plugin_sdk::serde_json::Value as Json;
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let Json::Array(items) = value else {
        return Err("`fields_additional_placement` must be a list".into());
    };
    let mut out = Vec::new();
    for item in items {
        let (field, placement, alias) = match item {
            Json::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                if !(2..=3).contains(&parts.len()) {
                    return Err(format!(
                        "`fields_additional_placement` entry `{s}` is not `field:placement[:alias]`"
                    ));
                }
                (
                    parts[0].to_string(),
                    parts[1].to_string(),
                    parts.get(2).map(|a| a.to_string()),
                )
            }
            Json::Object(map) => {
                if let Some(k) = map
                    .keys()
                    .find(|k| !["field", "placement", "alias"].contains(&k.as_str()))
                {
                    return Err(format!(
                        "`fields_additional_placement` entry has unknown key `{k}` (expected field, placement, alias)"
                    ));
                }
                let get = |k: &str| -> Result<Option<String>, String> {
                    match map.get(k) {
                        None | Some(Json::Null) => Ok(None),
                        Some(Json::String(s)) => Ok(Some(s.clone())),
                        Some(_) => Err(format!(
                            "`fields_additional_placement` entry: `{k}` must be a string"
                        )),
                    }
                };
                let field = get("field")?.ok_or(
                    "`fields_additional_placement` entry needs a `field` (the column)".to_string(),
                )?;
                (
                    field,
                    get("placement")?.unwrap_or_else(|| "header".to_string()),
                    get("alias")?,
                )
            }
            _ => {
                return Err(
                    "`fields_additional_placement` entries must be objects or strings".into(),
                )
            }
        };
        if field.is_empty() {
            return Err("`fields_additional_placement` entry has an empty `field`".into());
        }
        match placement.as_str() {
            "header" => {}
            "envelope" | "partition" => {
                return Err(format!(
                "placement `{placement}` of `{field}` is not supported: the value is the payload \
                     as it is and records carry no partition; use `header`"
            ))
            }
            other => {
                return Err(format!(
                    "placement of `{field}` must be `header`, not `{other}`"
                ))
            }
        }
        let alias = alias
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| field.clone());
        out.push(Additional { field, alias });
    }
    Ok(out)
}

/// A value as text for a key, header or topic: strings as they are, numbers in decimal, dates
/// and times in PostgreSQL's ISO form (UTC), bytes as `\x…`.
fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::UnchangedToast => "__debezium_unavailable_value".to_string(),
        Value::Date(d) => pg_text::date(*d),
        Value::Time(us) => pg_text::time(*us),
        Value::Timestamp(us) => pg_text::timestamp(*us, ""),
        Value::Timestamptz(us) => pg_text::timestamp(*us, "+00"),
        other => other.to_text().unwrap_or_default(),
    }
}

walrelay_plugin_sdk::export_plugin!(Outbox);

#[cfg(test)]
mod tests {
    use super::*;
    use walrelay_plugin_sdk::testing::{self, Harness, Output};

    fn outbox_table() -> Table {
        testing::table(
            1,
            "public",
            "outbox",
            &[
                ("id", "uuid"),
                ("aggregatetype", "text"),
                ("aggregateid", "text"),
                ("type", "text"),
                ("payload", "jsonb"),
            ],
        )
    }

    fn row(kind: &str, id: &str, payload: Value) -> Vec<Value> {
        vec![
            Value::Uuid("4d47e190-0402-4048-bc2c-89dd54343cdc".into()),
            kind.into(),
            id.into(),
            "OrderCreated".into(),
            payload,
        ]
    }

    fn plain(output: &Output) -> &Record {
        match output {
            Output::Plain(r) => r,
            _ => panic!("expected a plain record, got {output:?}"),
        }
    }

    #[test]
    fn routes_an_insert() {
        let config = r#"{"fields_additional_placement": [{"field": "type", "placement": "header", "alias": "eventType"}]}"#;
        let mut h = Harness::<Outbox>::new(config).unwrap();
        assert_eq!(h.interest().tables, Some(vec!["public.outbox".to_string()]));
        let mut insert = testing::insert(1, row("Order", "1", Value::Json(r#"{"id": 1}"#.into())));
        insert.headers = Some(vec![Header::new("trace", "t1")]);
        let (tables, out) = h.run(vec![outbox_table()], vec![insert]).unwrap();
        assert!(tables.is_empty());
        assert_eq!(out.len(), 1);
        let r = plain(&out[0]);
        assert_eq!(r.topic, "outbox.event.Order");
        assert_eq!(r.key.as_deref(), Some(&b"1"[..]));
        assert_eq!(r.value.as_deref(), Some(&br#"{"id": 1}"#[..]));
        assert_eq!(
            r.headers,
            vec![
                Header::new("trace", "t1"),
                Header::new("id", "4d47e190-0402-4048-bc2c-89dd54343cdc"),
                Header::new("eventType", "OrderCreated"),
            ]
        );
    }

    #[test]
    fn drops_deletes_and_updates_passes_other_tables() {
        let mut h = Harness::<Outbox>::new("null").unwrap();
        let other = testing::table(2, "public", "orders", &[("id", "int4")]);
        let (_, out) = h
            .run(
                vec![outbox_table(), other],
                vec![
                    testing::delete(1, row("Order", "1", Value::Null)),
                    testing::update(1, None, row("Order", "1", Value::Null)),
                    testing::insert(2, vec![Value::Int32(5)]),
                ],
            )
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(testing::change(&out[0]).unwrap().table, 2);
    }

    #[test]
    fn fatal_updates_fail() {
        let mut h = Harness::<Outbox>::new(r#"{"on_update": "fatal"}"#).unwrap();
        let err = h
            .run(
                vec![outbox_table()],
                vec![testing::update(1, None, row("Order", "1", Value::Null))],
            )
            .unwrap_err();
        assert!(err.contains("unexpected update"), "{err}");
    }

    #[test]
    fn custom_columns_topic_and_bytes_payload() {
        let table = testing::table(
            3,
            "app",
            "events",
            &[
                ("event_id", "int8"),
                ("kind", "text"),
                ("entity", "int4"),
                ("body", "bytea"),
            ],
        );
        let config = r#"{"table": "app.events", "id_field": "event_id", "route_by_field": "kind",
            "key_field": "entity", "payload_field": "body",
            "route_topic_replacement": "events.${routedByValue}.v1",
            "fields_additional_placement": ["kind:header"]}"#;
        let mut h = Harness::<Outbox>::new(config).unwrap();
        let (_, out) = h
            .run(
                vec![table],
                vec![testing::insert(
                    3,
                    vec![
                        Value::Int64(9),
                        "invoice".into(),
                        Value::Int32(42),
                        Value::Bytes(vec![0, 159, 255]),
                    ],
                )],
            )
            .unwrap();
        let r = plain(&out[0]);
        assert_eq!(r.topic, "events.invoice.v1");
        assert_eq!(r.key.as_deref(), Some(&b"42"[..]));
        assert_eq!(r.value.as_deref(), Some(&[0u8, 159, 255][..]));
        assert_eq!(
            r.headers,
            vec![Header::new("id", "9"), Header::new("kind", "invoice")]
        );
    }

    #[test]
    fn empty_payload_tombstone() {
        let mut h =
            Harness::<Outbox>::new(r#"{"route_tombstone_on_empty_payload": true}"#).unwrap();
        let (_, out) = h
            .run(
                vec![outbox_table()],
                vec![
                    testing::insert(1, row("Order", "1", Value::Null)),
                    testing::insert(1, row("Order", "2", Value::Json(" ".into()))),
                ],
            )
            .unwrap();
        assert_eq!(plain(&out[0]).value, None);
        assert_eq!(plain(&out[1]).value, None);
        assert_eq!(plain(&out[1]).key.as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn missing_columns_and_null_route_fail_the_event() {
        let mut h = Harness::<Outbox>::new(r#"{"key_field": "nope"}"#).unwrap();
        let err = h
            .run(
                vec![outbox_table()],
                vec![testing::insert(1, row("Order", "1", Value::Null))],
            )
            .unwrap_err();
        assert!(err.contains("no column `nope`"), "{err}");
        let mut h = Harness::<Outbox>::new("null").unwrap();
        let mut r = row("Order", "1", Value::Null);
        r[1] = Value::Null;
        let err = h
            .run(vec![outbox_table()], vec![testing::insert(1, r)])
            .unwrap_err();
        assert!(err.contains("is null"), "{err}");
    }

    #[test]
    fn text_forms() {
        assert_eq!(text(&Value::Date(17109)), "2016-11-04");
        assert_eq!(text(&Value::Time(49_890_120_000)), "13:51:30.12");
        assert_eq!(
            text(&Value::Timestamptz(1_478_267_490_123_456)),
            "2016-11-04 13:51:30.123456+00"
        );
        assert_eq!(text(&Value::Timestamp(0)), "1970-01-01 00:00:00");
    }

    #[test]
    fn bad_configs_are_refused() {
        for config in [
            r#"{"table": "outbox"}"#,
            r#"{"tabel": "public.outbox"}"#,
            r#"{"key_field": ""}"#,
            r#"{"on_update": "explode"}"#,
            r#"{"fields_additional_placement": ["type"]}"#,
            r#"{"fields_additional_placement": [{"field": "type", "placement": "envelope"}]}"#,
            r#"{"fields_additional_placement": [{"placement": "header"}]}"#,
            r#"{"route_tombstone_on_empty_payload": "yes"}"#,
            r#"[1]"#,
        ] {
            assert!(Harness::<Outbox>::new(config).is_err(), "{config}");
        }
    }
}

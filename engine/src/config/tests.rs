use std::path::{Path, PathBuf};

use super::*;

const EXAMPLE: &str = include_str!("../../../examples/inventory.yaml");

/// A minimal valid configuration; line numbers matter to the tests:
/// 3 url, 4 slot, 5 publication, 6 tables, 7 topic_prefix, 10 brokers.
const BASE: &str = "\
source:
  postgres:
    url: postgres://u@db/inventory
    slot: walrelay_inventory
    publication: walrelay_inventory
    tables: [public.products]
topic_prefix: inventory
sink:
  kafka:
    brokers: kafka:9092
";

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse_text(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    parse_relative_to("t.yaml", text, Path::new("/etc/walrelay"), env)
}

fn ok(text: &str) -> Config {
    match parse_text(text, &no_env) {
        Ok(config) => config,
        Err(err) => panic!("expected a valid configuration, got:\n{err}"),
    }
}

fn err(text: &str) -> String {
    match parse_text(text, &no_env) {
        Ok(config) => panic!("expected an error, got {config:#?}"),
        Err(err) => err.to_string(),
    }
}

/// BASE with `properties:` holding one `key: value` at line 12, column 7.
fn with_property(key: &str, value: &str) -> String {
    format!("{BASE}    properties:\n      {key}: {value}\n")
}

#[test]
fn example_parses_with_defaults() {
    let config = match parse_relative_to(
        "examples/inventory.yaml",
        EXAMPLE,
        Path::new("/srv/walrelay"),
        &no_env,
    ) {
        Ok(config) => config,
        Err(err) => panic!("{err}"),
    };
    let pg = &config.source.postgres;
    assert_eq!(pg.url, "postgres://postgres@127.0.0.1:5432/inventory");
    assert_eq!(pg.slot, "walrelay_inventory");
    assert_eq!(pg.publication, "walrelay_inventory");
    assert_eq!(
        pg.tables,
        vec![TableName {
            schema: "public".into(),
            table: "products".into()
        }]
    );
    assert_eq!(pg.snapshot, SnapshotMode::Initial);
    assert_eq!(pg.status_interval_ms, 10_000);
    assert_eq!(config.topic_prefix, "inventory");
    assert_eq!(
        config.state_dir,
        PathBuf::from("/srv/walrelay/walrelay-state")
    );
    assert!(config.tombstones_on_delete);
    assert!(!config.truncate_events);
    assert_eq!(config.logical_messages, LogicalMessages::default());
    assert!(!config.transaction_metadata);
    assert_eq!(config.heartbeat_interval_ms, 0);
    let kafka = config.sink.kafka.as_ref().expect("kafka sink");
    assert_eq!(config.sink.null, None);
    assert_eq!(kafka.brokers, "127.0.0.1:9092");
    assert!(kafka.properties.is_empty());
    assert_eq!(kafka.topics, TopicSettings::default());
    assert_eq!(kafka.topics.cleanup_policy.as_kafka_str(), "delete");
    assert!(config.plugins.is_empty());
}

#[test]
fn example_parses_with_env_injected() {
    let env = |name: &str| match name {
        "WALRELAY_PG_URL" => Some("postgres://relay:s3cret@pg.internal:6432/inventory".to_string()),
        "WALRELAY_KAFKA_BROKERS" => Some("k1:9092, k2:9093".to_string()),
        _ => None,
    };
    let config = match parse_relative_to("inventory.yaml", EXAMPLE, Path::new("/srv"), &env) {
        Ok(config) => config,
        Err(err) => panic!("{err}"),
    };
    assert_eq!(
        config.source.postgres.url,
        "postgres://relay:s3cret@pg.internal:6432/inventory"
    );
    assert_eq!(
        config.sink.kafka.as_ref().expect("kafka sink").brokers,
        "k1:9092, k2:9093"
    );
    // Debug never shows the password.
    let debug = format!("{config:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    assert!(debug.contains("postgres://relay:***@pg.internal:6432/inventory"));
}

#[test]
fn empty_variable_takes_the_default() {
    let env = |_: &str| Some(String::new());
    let config = match parse_text(EXAMPLE, &env) {
        Ok(config) => config,
        Err(err) => panic!("{err}"),
    };
    assert_eq!(
        config.sink.kafka.as_ref().expect("kafka sink").brokers,
        "127.0.0.1:9092"
    );
}

#[test]
fn base_defaults() {
    let config = ok(BASE);
    assert_eq!(
        config.state_dir,
        PathBuf::from("/etc/walrelay/walrelay-state")
    );
    assert!(config.tombstones_on_delete);
    // Debezium's defaults: truncates skipped, messages streamed, no transaction metadata, no
    // heartbeats.
    assert!(!config.truncate_events);
    assert_eq!(config.logical_messages, LogicalMessages::default());
    assert!(config.logical_messages.enabled);
    assert!(!config.transaction_metadata);
    assert_eq!(config.heartbeat_interval_ms, 0);
    assert_eq!(config.source.postgres.snapshot, SnapshotMode::Initial);
    assert_eq!(
        config
            .sink
            .kafka
            .as_ref()
            .expect("kafka sink")
            .topics
            .partitions,
        1
    );
    assert_eq!(
        config
            .sink
            .kafka
            .as_ref()
            .expect("kafka sink")
            .topics
            .replication_factor,
        1
    );
}

#[test]
fn parse_resolves_against_the_origin_directory() {
    let config = match parse("/opt/relay/conf/walrelay.yaml", BASE, &no_env) {
        Ok(config) => config,
        Err(err) => panic!("{err}"),
    };
    assert_eq!(
        config.state_dir,
        PathBuf::from("/opt/relay/conf/walrelay-state")
    );
}

#[test]
fn load_reads_the_file_and_resolves_paths() {
    let dir = std::env::temp_dir().join(format!("walrelay-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("relay.yaml");
    let text = format!(
        "{BASE}state_dir: state\nplugins:\n  - name: mask\n    component: plugins/mask.wasm\n    sha256: {}\n",
        "a".repeat(64)
    );
    std::fs::write(&file, text).unwrap();
    let config = load(&file).unwrap();
    assert_eq!(config.state_dir, dir.join("state"));
    assert_eq!(config.plugins[0].component, dir.join("plugins/mask.wasm"));
    std::fs::remove_dir_all(&dir).unwrap();

    let missing = load(&dir.join("nope.yaml")).unwrap_err();
    assert_eq!(missing.problems.len(), 1);
    assert_eq!(missing.problems[0].line, 0);
    let text = missing.to_string();
    assert!(
        text.starts_with(&format!(
            "{}: cannot read the configuration file: ",
            dir.join("nope.yaml").display()
        )),
        "{text}"
    );
}

#[test]
fn refused_kafka_properties() {
    let cases = [
        ("acks", "1", "`1` is refused: walrelay confirms an LSN to PostgreSQL only after the broker acknowledged every event up to it; acks=1 or 0 could lose acknowledged events on a broker failure. Set it to `all` (or `-1`), or remove it"),
        ("acks", "0", "acks=1 or 0 could lose acknowledged events"),
        ("request.required.acks", "1", "acks=1 or 0 could lose acknowledged events"),
        ("enable.idempotence", "false", "`false` is refused: without idempotence, producer retries could duplicate or reorder a key's events. Set it to `true`, or remove it"),
        ("transactional.id", "relay-1", "refused: exactly-once delivery is configured elsewhere in walrelay, and is not available yet. Remove it"),
        ("bootstrap.servers", "k:9092", "refused: the brokers come from sink.kafka.brokers. Move the list there and remove this property"),
        ("metadata.broker.list", "k:9092", "refused: the brokers come from sink.kafka.brokers"),
        ("partitioner", "consistent_random", "`consistent_random` is refused: Debezium (Java's Kafka client) partitions keys with murmur2; another partitioner moves keys to other partitions and breaks per-key order across a cutover. Set it to `murmur2_random` (or `murmur2`), or remove it"),
        ("delivery.report.only.error", "true", "refused: walrelay needs a delivery report for every event to know which LSN it may confirm. Remove it"),
        ("delivery.report.only.error", "false", "refused: walrelay needs a delivery report"),
        ("max.in.flight.requests.per.connection", "6", "6 is refused: idempotent delivery allows at most 5 requests in flight per connection. Set 1 to 5, or remove it"),
        ("max.in.flight", "1000", "1000 is refused: idempotent delivery allows at most 5"),
        ("max.in.flight.requests.per.connection", "many", "`many` is not valid: expected an integer from 1 to 5"),
    ];
    for (key, value, expected) in cases {
        let text = err(&with_property(key, value));
        let prefix = format!("t.yaml:12:7: sink.kafka.properties.{key}: ");
        assert!(text.starts_with(&prefix), "{key}={value}: {text}");
        assert!(text.contains(expected), "{key}={value}: {text}");
        assert_eq!(text.lines().count(), 1, "{text}");
    }
}

#[test]
fn allowed_kafka_properties_are_stringified() {
    let text = format!(
        "{BASE}    properties:\n      acks: -1\n      request.required.acks: all\n      \
         enable.idempotence: true\n      partitioner: murmur2_random\n      \
         max.in.flight.requests.per.connection: 5\n      message.timeout.ms: 300000\n      \
         enable.gapless.guarantee: false\n      linger.ms: 5.5\n      compression.type: zstd\n"
    );
    let config = ok(&text);
    let properties = &config.sink.kafka.as_ref().expect("kafka sink").properties;
    assert_eq!(properties["acks"], "-1");
    assert_eq!(properties["request.required.acks"], "all");
    assert_eq!(properties["enable.idempotence"], "true");
    assert_eq!(properties["max.in.flight.requests.per.connection"], "5");
    assert_eq!(properties["message.timeout.ms"], "300000");
    assert_eq!(properties["enable.gapless.guarantee"], "false");
    assert_eq!(properties["linger.ms"], "5.5");
    assert_eq!(
        ok(&with_property("partitioner", "murmur2"))
            .sink
            .kafka
            .expect("kafka sink")
            .properties["partitioner"],
        "murmur2"
    );
}

#[test]
fn property_of_the_wrong_type() {
    assert_eq!(
        err(&with_property("acks", "[all]")),
        "t.yaml:12:13: sink.kafka.properties.acks: invalid type: sequence, expected a string, number or boolean"
    );
}

#[test]
fn unknown_key_at_depth() {
    let text = format!("{BASE}    topics:\n      partitions: 3\n      retention: 7d\n");
    assert_eq!(
        err(&text),
        "t.yaml:13:7: sink.kafka.topics.retention: unknown field `retention`, expected one of \
         `partitions`, `replication_factor`, `cleanup_policy`, `config`"
    );
}

#[test]
fn unknown_key_in_a_plugin() {
    let text = format!(
        "{BASE}plugins:\n- name: mask\n  component: mask.wasm\n  sha256: {}\n  limit: {{}}\n",
        "0".repeat(64)
    );
    let text = err(&text);
    assert!(
        text.starts_with("t.yaml:15:3: plugins[0].limit: unknown field `limit`, expected one of `name`, `component`"),
        "{text}"
    );
}

#[test]
fn bad_enum_values() {
    let text = BASE.replace("    tables:", "    snapshot: sometimes\n    tables:");
    assert_eq!(
        err(&text),
        "t.yaml:6:15: source.postgres.snapshot: unknown variant `sometimes`, expected one of `initial`, `never`, `initial_only`, `when_needed`, `always`"
    );
    for (text, mode) in [
        ("initial_only", SnapshotMode::InitialOnly),
        ("when_needed", SnapshotMode::WhenNeeded),
        ("always", SnapshotMode::Always),
        ("never", SnapshotMode::Never),
    ] {
        let config =
            ok(&BASE.replace("    tables:", &format!("    snapshot: {text}\n    tables:")));
        assert_eq!(config.source.postgres.snapshot, mode);
    }
    let text = format!("{BASE}    topics: {{cleanup_policy: compacted}}\n");
    assert_eq!(
        err(&text),
        "t.yaml:11:30: sink.kafka.topics.cleanup_policy: unknown variant `compacted`, expected one of `delete`, `compact`, `compact,delete`, `delete,compact`"
    );
    let config = ok(&format!(
        "{BASE}    topics: {{cleanup_policy: \"compact,delete\"}}\n"
    ));
    assert_eq!(
        config
            .sink
            .kafka
            .as_ref()
            .expect("kafka sink")
            .topics
            .cleanup_policy,
        CleanupPolicy::CompactDelete
    );
}

#[test]
fn bad_slot_name() {
    let text = BASE.replace("slot: walrelay_inventory", "slot: Walrelay-Inventory");
    assert_eq!(
        err(&text),
        "t.yaml:4:5: source.postgres.slot: `Walrelay-Inventory` is not a valid replication slot \
         name: expected 1 to 63 characters of [a-z0-9_]"
    );
    let long = "s".repeat(64);
    let text = BASE.replace("slot: walrelay_inventory", &format!("slot: {long}"));
    assert!(err(&text).starts_with("t.yaml:4:5: source.postgres.slot: "));
}

#[test]
fn bad_publication_name() {
    let text = BASE.replace("publication: walrelay_inventory", "publication: 1pub");
    assert_eq!(
        err(&text),
        "t.yaml:5:5: source.postgres.publication: `1pub` is not a valid publication name: \
         expected [a-z_] then [a-z0-9_], at most 63 characters"
    );
}

#[test]
fn missing_required_field() {
    let text = BASE.replace("    slot: walrelay_inventory\n", "");
    assert_eq!(
        err(&text),
        "t.yaml:2:3: source.postgres: missing field `slot`"
    );
    let text = BASE.replace("topic_prefix: inventory\n", "");
    assert_eq!(err(&text), "t.yaml:1:1: missing field `topic_prefix`");
}

#[test]
fn duplicate_key() {
    let text = format!("{BASE}topic_prefix: again\n");
    assert_eq!(
        err(&text),
        "t.yaml:11:1: topic_prefix: duplicate field `topic_prefix`"
    );
}

#[test]
fn duplicate_property() {
    let text = format!(
        "{}      linger.ms: 5\n      acks: all\n",
        with_property("acks", "all")
    );
    assert_eq!(
        err(&text),
        "t.yaml:14:7: sink.kafka.properties.acks: duplicate key `acks`"
    );
}

#[test]
fn unset_variables_are_reported_with_their_place() {
    let text = BASE
        .replace("postgres://u@db/inventory", "${PG_URL}")
        .replace("kafka:9092", "${BROKERS:-kafka:9092} ${ALSO_UNSET}");
    assert_eq!(
        err(&text),
        "t.yaml:3:10: source.postgres.url: environment variable PG_URL is not set (set it, or \
         give a default with `${PG_URL:-default}`)\n\
         t.yaml:10:37: sink.kafka.brokers: environment variable ALSO_UNSET is not set (set it, \
         or give a default with `${ALSO_UNSET:-default}`)"
    );
}

#[test]
fn bad_references() {
    let text = BASE.replace("kafka:9092", "${BROKERS");
    assert_eq!(
        err(&text),
        "t.yaml:10:14: sink.kafka.brokers: unterminated `${`: write `${NAME}` or \
         `${NAME:-default}` on one line, or `$$` for a literal `$`"
    );
    let text = BASE.replace("kafka:9092", "${KAFKA-BROKERS}");
    assert_eq!(
        err(&text),
        "t.yaml:10:14: sink.kafka.brokers: `${KAFKA-BROKERS}` is not a variable reference: \
         expected `${NAME}` or `${NAME:-default}` with NAME made of [A-Za-z0-9_] (write `$$` \
         for a literal `$`)"
    );
}

#[test]
fn value_with_a_line_break_is_refused() {
    let text = BASE.replace("postgres://u@db/inventory", "${PG_URL}");
    let env = |_: &str| Some("postgres://a\nslot: x".to_string());
    let problem = parse_text(&text, &env).unwrap_err().to_string();
    assert_eq!(
        problem,
        "t.yaml:3:10: source.postgres.url: environment variable PG_URL contains a line break, \
         which would shift the line numbers of this file; refused"
    );
}

#[test]
fn dollars() {
    let text = BASE
        .replace(
            "postgres://u@db/inventory",
            "postgres://u:pa$$w$rd@db/${DB:-inventory}$$",
        )
        .replace("source:", "source: # use ${NOT_SET} here, or $$ or ${")
        .replace("kafka:9092", "'${BROKER:-kafka}:9092' # ${NOT_SET_EITHER}");
    let config = ok(&text);
    assert_eq!(
        config.source.postgres.url,
        "postgres://u:pa$w$rd@db/inventory$"
    );
    assert_eq!(
        config.sink.kafka.as_ref().expect("kafka sink").brokers,
        "kafka:9092"
    );
    let config = ok(&BASE.replace("kafka:9092", "\"$${LITERAL}:9092\""));
    assert_eq!(
        config.sink.kafka.as_ref().expect("kafka sink").brokers,
        "${LITERAL}:9092"
    );
}

#[test]
fn hash_inside_quotes_is_not_a_comment() {
    let text = BASE.replace("postgres://u@db/inventory", "'pass # ${DB:-inventory}'");
    assert_eq!(ok(&text).source.postgres.url, "pass # inventory");
    let text = BASE.replace("postgres://u@db/inventory", "\"it''s # \\\" ${UNSET}\"");
    assert!(err(&text).starts_with("t.yaml:3:22: source.postgres.url: environment variable UNSET"));
}

#[test]
fn columns_after_a_substitution_are_those_of_the_file() {
    let text = BASE.replace("[public.products]", "[${TABLE:-products}, bad-name]");
    assert_eq!(
        err(&text),
        "t.yaml:6:34: source.postgres.tables[1]: `public.bad-name` is not a valid table: expected \
         `schema.table` (or a bare `table` in public), each an unquoted identifier \
         [A-Za-z_][A-Za-z0-9_$]* of at most 63 characters, in which `*` matches any characters"
    );
    // A syntax error after a substitution.
    let text = BASE.replace(
        "topic_prefix: inventory",
        "topic_prefix: ${P:-abcdef} ${Q:-x}: 1",
    );
    assert_eq!(
        err(&text),
        "t.yaml:7:35: mapping values are not allowed in this context"
    );
}

#[test]
fn problems_are_reported_together_sorted_by_line() {
    let text = format!(
        "\
sink:
  kafka:
    brokers: kafka
    properties:
      acks: 1
      enable.idempotence: false
{}plugins:
  - name: Mask
    component: mask.wasm
    sha256: abc
",
        BASE.replace("sink:\n  kafka:\n    brokers: kafka:9092\n", "")
            .replace("slot: walrelay_inventory", "slot: bad-slot")
            .replace("topic_prefix: inventory", "topic_prefix: inv/entory")
            .replace("[public.products]", "[products, public.products]")
    );
    let error = parse_text(&text, &no_env).unwrap_err();
    let lines: Vec<usize> = error.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, [3, 5, 6, 10, 12, 13, 15, 17]);
    let expected = "\
t.yaml:3:5: sink.kafka.brokers: `kafka` is not `host:port`: expected comma-separated `host:port`, like `127.0.0.1:9092`
t.yaml:5:7: sink.kafka.properties.acks: `1` is refused: walrelay confirms an LSN to PostgreSQL only after the broker acknowledged every event up to it; acks=1 or 0 could lose acknowledged events on a broker failure. Set it to `all` (or `-1`), or remove it
t.yaml:6:7: sink.kafka.properties.enable.idempotence: `false` is refused: without idempotence, producer retries could duplicate or reorder a key's events. Set it to `true`, or remove it
t.yaml:10:5: source.postgres.slot: `bad-slot` is not a valid replication slot name: expected 1 to 63 characters of [a-z0-9_]
t.yaml:12:24: source.postgres.tables[1]: `public.products` is listed twice (also source.postgres.tables[0])
t.yaml:13:1: topic_prefix: `inv/entory` is not a valid topic prefix: expected 1 to 249 characters of [A-Za-z0-9._-]
t.yaml:15:5: plugins[0].name: `Mask` is not a valid plugin name: expected 1 to 63 characters of [a-z0-9-]
t.yaml:17:5: plugins[0].sha256: `abc` is not a SHA-256: expected 64 hexadecimal digits (`sha256sum FILE` prints them)";
    assert_eq!(error.to_string(), expected);
}

/// BASE with one plugin at line 12 (`- name: mask` at 12:5) and `extra`
/// lines after its sha256 (line 14), at the plugin's indentation.
fn with_plugin(extra: &str) -> String {
    let sha = "0123456789abcdef".repeat(4);
    format!("{BASE}plugins:\n  - name: mask\n    component: mask.wasm\n    sha256: {sha}\n{extra}")
}

#[test]
fn plugin_dead_letter_rules() {
    assert_eq!(
        err(&with_plugin("    on_error: dead-letter\n")),
        "t.yaml:15:5: plugins[0].on_error: `dead-letter` needs `dead_letter_topic`, the topic \
         that receives the failed events"
    );
    assert_eq!(
        err(&with_plugin("    dead_letter_topic: inventory.dlq\n")),
        "t.yaml:15:5: plugins[0].dead_letter_topic: refused with on_error `fail`: a dead-letter \
         topic is only used with `on_error: dead-letter`. Remove it, or set on_error to dead-letter"
    );
    assert_eq!(
        err(&with_plugin("    on_error: skip\n    dead_letter_topic: inventory.dlq\n")),
        "t.yaml:16:5: plugins[0].dead_letter_topic: refused with on_error `skip`: a dead-letter \
         topic is only used with `on_error: dead-letter`. Remove it, or set on_error to dead-letter"
    );
    assert_eq!(
        err(&with_plugin(
            "    on_error: dead-letter\n    dead_letter_topic: \"dlq#1\"\n"
        )),
        "t.yaml:16:5: plugins[0].dead_letter_topic: `dlq#1` is not a valid topic name: expected \
         1 to 249 characters of [A-Za-z0-9._-]"
    );
    assert_eq!(
        err(&with_plugin("    on_error: retry\n")),
        "t.yaml:15:15: plugins[0].on_error: unknown variant `retry`, expected one of `fail`, \
         `skip`, `dead-letter`"
    );
    let config = ok(&with_plugin(
        "    on_error: dead-letter\n    dead_letter_topic: inventory.dlq\n",
    ));
    assert_eq!(config.plugins[0].on_error, OnError::DeadLetter);
    assert_eq!(
        config.plugins[0].dead_letter_topic.as_deref(),
        Some("inventory.dlq")
    );
}

#[test]
fn plugin_full_entry() {
    let extra = "    config:
      fields: [email, phone]
      salt: 42
    limits: {cpu_ms_per_batch: 50, memory_mb: 128}
    scope:
      tables: [products]
      ops: [c, u, r]
    grants:
      dirs:
        - host: data
          guest: /data
        - {host: /var/lib/geo, guest: /geo, readonly: false}
      clock: true
";
    let config = ok(&with_plugin(extra).replace("0123456789abcdef", "0123456789ABCDEF"));
    let plugin = &config.plugins[0];
    assert_eq!(plugin.name, "mask");
    assert_eq!(plugin.component, PathBuf::from("/etc/walrelay/mask.wasm"));
    assert_eq!(plugin.sha256, "0123456789abcdef".repeat(4));
    assert_eq!(
        plugin.config,
        serde_json::json!({"fields": ["email", "phone"], "salt": 42})
    );
    assert_eq!(
        plugin.limits,
        PluginLimits {
            cpu_ms_per_batch: 50,
            memory_mb: 128,
            max_output_bytes: 16_777_216,
            max_fan_out: 16
        }
    );
    assert_eq!(plugin.on_error, OnError::Fail);
    assert_eq!(
        plugin.scope.tables.as_deref(),
        Some(&ok(BASE).source.postgres.tables[..])
    );
    assert_eq!(
        plugin.scope.ops,
        Some(vec![Op::Create, Op::Update, Op::Read])
    );
    assert_eq!(
        plugin.grants,
        PluginGrants {
            dirs: vec![
                DirGrant {
                    host: "/etc/walrelay/data".into(),
                    guest: "/data".into(),
                    readonly: true
                },
                DirGrant {
                    host: "/var/lib/geo".into(),
                    guest: "/geo".into(),
                    readonly: false
                },
            ],
            network: false,
            clock: true,
            random: false,
        }
    );
}

#[test]
fn plugin_defaults() {
    let plugin = &ok(&with_plugin("")).plugins[0];
    assert_eq!(plugin.config, serde_json::Value::Null);
    assert_eq!(plugin.limits, PluginLimits::default());
    assert_eq!(plugin.limits.max_output_bytes, 16_777_216);
    assert_eq!(plugin.scope, PluginScope::default());
    assert_eq!(plugin.grants, PluginGrants::default());
    assert!(!plugin.grants.network && !plugin.grants.clock && !plugin.grants.random);
}

#[test]
fn plugin_rules() {
    let sha = "0123456789abcdef".repeat(4);
    let extra = format!(
        "    scope:
      tables: [orders, products, products]
      ops: [d, d]
    limits: {{memory_mb: 8192, max_fan_out: 0}}
    grants:
      dirs: [{{host: a, guest: data}}, {{host: b, guest: /x}}, {{host: c, guest: /x}}]
  - name: mask
    component: other.wasm
    sha256: {sha}
"
    );
    assert_eq!(
        err(&with_plugin(&extra)),
        "\
t.yaml:16:16: plugins[0].scope.tables[0]: `public.orders` is not selected by source.postgres.tables and exclude_tables: the plugin would never see it
t.yaml:16:34: plugins[0].scope.tables[2]: `public.products` is listed twice
t.yaml:17:16: plugins[0].scope.ops[1]: `d` is listed twice
t.yaml:18:14: plugins[0].limits.memory_mb: 8192 is out of range: expected 1 to 4096
t.yaml:18:31: plugins[0].limits.max_fan_out: 0 is out of range: expected at least 1
t.yaml:20:24: plugins[0].grants.dirs[0].guest: `data` is not absolute: expected a path such as `/data`
t.yaml:20:70: plugins[0].grants.dirs[2].guest: `/x` is already mounted by grants.dirs[1]
t.yaml:21:5: plugins[1].name: `mask` is already the name of plugins[0]: names must be unique"
    );
}

#[test]
fn table_name_normalization() {
    let text = BASE.replace(
        "[public.products]",
        "[products, inventory.orders, \"_s$1.t$2\"]",
    );
    let tables: Vec<String> = ok(&text)
        .source
        .postgres
        .tables
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(tables, ["public.products", "inventory.orders", "_s$1.t$2"]);

    let text = BASE.replace(
        "[public.products]",
        "\n      - products\n      - public.products\n      - a.b.c",
    );
    assert_eq!(
        err(&text),
        "\
t.yaml:8:9: source.postgres.tables[1]: `public.products` is listed twice (also source.postgres.tables[0])
t.yaml:9:9: source.postgres.tables[2]: `a.b.c` is not a valid table: expected `schema.table` (or a bare `table` in public), each an unquoted identifier [A-Za-z_][A-Za-z0-9_$]* of at most 63 characters, in which `*` matches any characters"
    );

    assert_eq!(
        err(&BASE.replace("[public.products]", "[]")),
        "t.yaml:6:5: source.postgres.tables: empty: expected at least one table, like `[public.products]`"
    );
}

#[test]
fn topic_names_must_fit() {
    // 240 + 1 + "public" + 1 + "products" = 256 characters.
    let prefix = "p".repeat(240);
    let text = BASE.replace(
        "topic_prefix: inventory",
        &format!("topic_prefix: {prefix}"),
    );
    assert_eq!(
        err(&text),
        format!(
            "t.yaml:6:14: source.postgres.tables[0]: the topic `{prefix}.public.products` would \
             have 256 characters; Kafka allows at most 249: shorten topic_prefix"
        )
    );
    // 233 + 1 + 6 + 1 + 8 = 249 fits.
    ok(&BASE.replace(
        "topic_prefix: inventory",
        &format!("topic_prefix: {}", "p".repeat(233)),
    ));
}

#[test]
fn ranges_and_brokers() {
    let text = BASE
        .replace("    tables:", "    status_interval_ms: 50\n    tables:")
        .replace("kafka:9092", "kafka:9092,:9093,k:0")
        + "    topics:\n      partitions: 0\n      replication_factor: 0\n      config:\n        cleanup.policy: compact\n        retention.ms: 604800000\n";
    assert_eq!(
        err(&text),
        "\
t.yaml:6:5: source.postgres.status_interval_ms: 50 is out of range: expected 100 to 3600000 (milliseconds)
t.yaml:11:5: sink.kafka.brokers: `:9093` is not `host:port`: expected comma-separated `host:port`, like `127.0.0.1:9092`
t.yaml:11:5: sink.kafka.brokers: `k:0` is not `host:port`: expected comma-separated `host:port`, like `127.0.0.1:9092`
t.yaml:13:7: sink.kafka.topics.partitions: 0 is out of range: expected at least 1
t.yaml:14:7: sink.kafka.topics.replication_factor: 0 is out of range: expected 1 to 32767
t.yaml:16:9: sink.kafka.topics.config.cleanup.policy: refused here: set sink.kafka.topics.cleanup_policy instead"
    );
}

#[test]
fn password_file_is_read_and_checked() {
    let with = |path: &str| {
        BASE.replace(
            "    tables:",
            &format!("    password_file: {path}\n    tables:"),
        )
    };
    let e = err(&with("/nonexistent/walrelay-pw"));
    assert!(
        e.starts_with("t.yaml:6:5: source.postgres.password_file: cannot read the password file /nonexistent/walrelay-pw: "),
        "{e}"
    );
    let dir = std::env::temp_dir().join(format!("walrelay-pw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty");
    std::fs::write(&empty, "\n").unwrap();
    assert_eq!(
        err(&with(empty.to_str().unwrap())),
        format!("t.yaml:6:5: source.postgres.password_file: the password file {} is empty: its first line is the password", empty.display())
    );
    let good = dir.join("good");
    std::fs::write(&good, "s3cret\nignored\n").unwrap();
    let cfg = ok(&with(good.to_str().unwrap()));
    let path = cfg.source.postgres.password_file.expect("password_file");
    assert_eq!(super::read_password_file(&path).unwrap(), "s3cret");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn server_timeout_default_and_range() {
    assert_eq!(ok(BASE).source.postgres.server_timeout_ms, 60_000);
    assert_eq!(ok(BASE).source.postgres.snapshot_workers, 1);
    let text = BASE.replace("    tables:", "    snapshot_workers: 0\n    tables:");
    assert_eq!(
        err(&text),
        "t.yaml:6:5: source.postgres.snapshot_workers: 0 is out of range: expected 1 to 64"
    );
    let text = BASE.replace("    tables:", "    server_timeout_ms: 999\n    tables:");
    assert_eq!(
        err(&text),
        "t.yaml:6:5: source.postgres.server_timeout_ms: 999 is out of range: expected 1000 to 3600000 (milliseconds)"
    );
}

#[test]
fn empty_and_non_mapping_files() {
    assert_eq!(err(""), "t.yaml:1:1: missing field `source`");
    assert_eq!(
        err("just text\n"),
        "t.yaml:1:1: invalid type: string \"just text\", expected struct Config"
    );
}

#[test]
fn locate_index_of_block_yaml() {
    let text = "\
# comment
a:
  b: 1   # trailing
  'quoted key': x
  list:
  - one
  - two: 2
    three: 3
  - - nested
  flow: [x, {k: v, l: [1, 2]}, \"q,r\"]
  text: |
    not: a key
  after: y
top: {m: 1, n: {o: 2}}
";
    let index = locate::index(text);
    let cases = [
        ("a", (2, 1)),
        ("a.b", (3, 3)),
        ("a.quoted key", (4, 3)),
        ("a.list", (5, 3)),
        ("a.list[0]", (6, 5)),
        ("a.list[1]", (7, 5)),
        ("a.list[1].two", (7, 5)),
        ("a.list[1].three", (8, 5)),
        ("a.list[2][0]", (9, 7)),
        ("a.flow[0]", (10, 10)),
        ("a.flow[1].k", (10, 14)),
        ("a.flow[1].l[1]", (10, 27)),
        ("a.flow[2]", (10, 32)),
        ("a.text", (11, 3)),
        ("a.after", (13, 3)),
        ("top.n.o", (14, 17)),
        // Not in the text: the nearest parent.
        ("a.list[1].four", (7, 5)),
        ("a.text.not", (11, 3)),
        ("top.n.z", (14, 13)),
    ];
    for (path, position) in cases {
        assert_eq!(index.find(path), Some(position), "{path}");
    }
    assert_eq!(index.find("nowhere"), None);
    assert_eq!(index.path_at(10, 28), Some("a.flow[1].l[1]"));
}

/// A valid trusted key in text, derived from a fixed seed.
fn trusted_key(seed: u8) -> String {
    let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    crate::plugin::signing::format_public_key(&key.verifying_key())
}

#[test]
fn plugin_policy_defaults_and_signature_paths() {
    let config = ok(&with_plugin(""));
    assert_eq!(config.plugin_policy, PluginPolicy::default());
    assert!(!config.plugin_policy.require_signature);
    assert!(config.plugin_policy.trusted_keys.is_empty());
    // The default signature is the component's path with `.sig` appended.
    let plugin = &config.plugins[0];
    assert_eq!(
        plugin.signature.as_deref(),
        Some(Path::new("/etc/walrelay/mask.wasm.sig"))
    );
    assert_eq!(
        plugin.signature_path(),
        PathBuf::from("/etc/walrelay/mask.wasm.sig")
    );
    // A relative signature is resolved like the component; an absolute one is kept.
    let config = ok(&with_plugin("    signature: sigs/./mask.sig\n"));
    assert_eq!(
        config.plugins[0].signature.as_deref(),
        Some(Path::new("/etc/walrelay/sigs/mask.sig"))
    );
    let config = ok(&with_plugin("    signature: /srv/sigs/mask.sig\n"));
    assert_eq!(
        config.plugins[0].signature.as_deref(),
        Some(Path::new("/srv/sigs/mask.sig"))
    );
    assert_eq!(
        err(&with_plugin("    signature: ''\n")),
        "t.yaml:15:5: plugins[0].signature: empty: expected the path of the signature file, or \
         no key for the default (the component's path with `.sig` appended)"
    );
}

#[test]
fn plugin_policy_with_trusted_keys() {
    let (first, second) = (trusted_key(1), trusted_key(2));
    let text = format!(
        "{BASE}plugin_policy:\n  require_signature: true\n  trusted_keys:\n    - {first}\n    - '{second}'\n"
    );
    let config = ok(&text);
    assert_eq!(
        config.plugin_policy,
        PluginPolicy {
            require_signature: true,
            trusted_keys: vec![first.clone(), second.clone()],
        }
    );
    let policy = config.plugin_policy.trust_policy().unwrap();
    assert!(policy.require_signature);
    assert_eq!(
        policy.trusted,
        vec![
            crate::plugin::signing::parse_public_key(&first).unwrap(),
            crate::plugin::signing::parse_public_key(&second).unwrap(),
        ]
    );
    // Flow style, and keys without requiring signatures.
    let text = format!("{BASE}plugin_policy: {{trusted_keys: [{first}]}}\n");
    let config = ok(&text);
    assert!(!config.plugin_policy.require_signature);
    assert_eq!(config.plugin_policy.trusted_keys, vec![first]);
}

#[test]
fn plugin_policy_rules() {
    let good = trusted_key(1);
    let short = format!("ed25519:{}", "A".repeat(40));
    // Line 11 is `plugin_policy:`, line 14 the first key.
    let text = format!(
        "{BASE}plugin_policy:\n  require_signature: true\n  trusted_keys:\n    - ssh-ed25519 AAAAC3Nz\n    - {good}\n    - {short}\n    - {good}\n    - 'ed25519:not base64!'\n"
    );
    assert_eq!(
        err(&text),
        format!(
            "\
t.yaml:14:7: plugin_policy.trusted_keys[0]: `ssh-ed25519 AAAAC3Nz` is not a trusted key: it does not start with `ed25519:`. Expected `ed25519:` then the base64 of a 32-byte public key, as in the NAME.pub written by `walrelay plugin keygen`
t.yaml:16:7: plugin_policy.trusted_keys[2]: `{short}` is not a trusted key: it decodes to 30 bytes, not 32. Expected `ed25519:` then the base64 of a 32-byte public key, as in the NAME.pub written by `walrelay plugin keygen`
t.yaml:17:7: plugin_policy.trusted_keys[3]: `{good}` is listed twice (also plugin_policy.trusted_keys[1])
t.yaml:18:7: plugin_policy.trusted_keys[4]: `ed25519:not base64!` is not a trusted key: the part after `ed25519:` is not base64 (Invalid symbol 32, offset 3.). Expected `ed25519:` then the base64 of a 32-byte public key, as in the NAME.pub written by `walrelay plugin keygen`"
        )
    );

    // Signatures required, but nobody trusted: refused, with the fix.
    let refused = "t.yaml:12:3: plugin_policy.require_signature: `true` with no trusted_keys: \
                   every plugin would be refused. Add the signers' public keys to \
                   plugin_policy.trusted_keys (`walrelay plugin keygen --out NAME` writes one to \
                   NAME.pub), or set require_signature to false";
    assert_eq!(
        err(&format!(
            "{BASE}plugin_policy:\n  require_signature: true\n"
        )),
        refused
    );
    assert_eq!(
        err(&format!(
            "{BASE}plugin_policy:\n  require_signature: true\n  trusted_keys: []\n"
        )),
        refused
    );

    let text = format!("{BASE}plugin_policy:\n  require_signatures: true\n");
    let text = err(&text);
    assert!(
        text.starts_with(
            "t.yaml:12:3: plugin_policy.require_signatures: unknown field `require_signatures`, \
             expected `require_signature` or `trusted_keys`"
        ),
        "{text}"
    );
}

#[test]
fn record_kind_options() {
    let config = ok(&format!(
        "{BASE}tombstones_on_delete: false\ntruncate_events: true\ntransaction_metadata: true\n\
         heartbeat_interval_ms: 1000\nlogical_messages:\n  enabled: true\n  include_prefixes: [outbox, 'audit*']\n"
    ));
    assert!(!config.tombstones_on_delete);
    assert!(config.truncate_events);
    assert!(config.transaction_metadata);
    assert_eq!(config.heartbeat_interval_ms, 1000);
    assert_eq!(
        config.logical_messages.include_prefixes,
        vec!["outbox".to_string(), "audit*".to_string()]
    );
    let off = ok(&format!("{BASE}logical_messages: {{enabled: false}}\n"));
    assert!(!off.logical_messages.enabled);
}

#[test]
fn record_kind_problems_are_reported_together() {
    // Lines: 11 heartbeat_interval_ms, 12 logical_messages, 13 include_prefixes,
    // 14 exclude_prefixes, 15 transaction_metadata.
    let text = format!(
        "{BASE}heartbeat_interval_ms: 50\nlogical_messages:\n  include_prefixes: [a]\n  exclude_prefixes: [b, '']\ntransaction_metadata: true\n"
    );
    assert_eq!(
        err(&text),
        "\
t.yaml:11:1: heartbeat_interval_ms: 50 is out of range: expected 0 (off) or 100 to 86400000 (milliseconds)
t.yaml:14:3: logical_messages.exclude_prefixes: not allowed together with logical_messages.include_prefixes: give one of them
t.yaml:14:25: logical_messages.exclude_prefixes[1]: empty: expected a message prefix (`*` matches any characters)"
    );
    assert_eq!(
        err(&format!("{BASE}logical_messages: {{prefixes: [a]}}\n")),
        "t.yaml:11:20: logical_messages.prefixes: unknown field `prefixes`, expected one of `enabled`, `include_prefixes`, `exclude_prefixes`"
    );
}

#[test]
fn format_section() {
    let config = ok(BASE);
    assert_eq!(config.format, Format::default());
    assert!(config.format.schemas);
    assert_eq!(
        config.format.unknown_types,
        crate::encode::columns::UnknownTypes::Skip
    );
    let config = ok(&format!(
        "{BASE}format:\n  type: json\n  schemas: false\n  unknown_types: text\n"
    ));
    assert_eq!(config.format.kind, FormatKind::Json);
    assert!(!config.format.schemas);
    assert_eq!(
        config.format.unknown_types,
        crate::encode::columns::UnknownTypes::Text
    );
    assert_eq!(
        err(&format!("{BASE}format:\n  unknown_types: drop\n")),
        "t.yaml:12:18: format.unknown_types: unknown variant `drop`, expected one of `skip`, `text`, `fail`"
    );
    assert_eq!(
        err(&format!("{BASE}format:\n  schema: false\n")),
        "t.yaml:12:3: format.schema: unknown field `schema`, expected one of `type`, `schemas`, `unknown_types`, `avro`"
    );
}

#[test]
fn avro_format() {
    let text = format!(
        "{BASE}format:\n  type: avro\n  avro:\n    schema_registry:\n      urls: [http://reg:8081]\n      basic_auth:\n        username: relay\n        password: ${{REG_PASSWORD}}\n    sanitize_names: true\n"
    );
    let env = |name: &str| (name == "REG_PASSWORD").then(|| "s3cret".to_string());
    let config = match parse_text(&text, &env) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(config.format.kind, FormatKind::Avro);
    let avro = config.format.avro.as_ref().expect("avro");
    assert_eq!(
        avro.schema_registry.urls,
        vec!["http://reg:8081".to_string()]
    );
    assert!(avro.schema_registry.auto_register);
    assert!(avro.sanitize_names);
    let auth = avro.schema_registry.basic_auth.as_ref().expect("auth");
    assert_eq!(auth.password.0, "s3cret");
    assert!(!format!("{config:?}").contains("s3cret"));
}

#[test]
fn avro_format_problems() {
    // Line 12 `type: avro` without format.avro.
    let e = err(&format!("{BASE}format:\n  type: avro\n"));
    assert!(
        e.contains("t.yaml:12:") && e.contains("format.avro.schema_registry.urls"),
        "{e}"
    );
    // Lines 12-16: `schemas: false` and an empty URL list with avro; both reported.
    let e = err(&format!(
        "{BASE}format:\n  type: avro\n  schemas: false\n  avro:\n    schema_registry:\n      urls: []\n"
    ));
    assert!(
        e.contains("t.yaml:13:") && e.contains("only applies to `type: json`"),
        "{e}"
    );
    assert!(
        e.contains("t.yaml:16:") && e.contains("Schema Registry URL"),
        "{e}"
    );
    // format.avro with json.
    let e = err(&format!(
        "{BASE}format:\n  avro:\n    schema_registry:\n      urls: [http://reg:8081]\n"
    ));
    assert!(
        e.contains("t.yaml:12:") && e.contains("only applies to `type: avro`"),
        "{e}"
    );
}

/// BASE with the sink replaced by `sink_yaml` (starting at line 8).
fn with_sink(sink_yaml: &str) -> String {
    BASE.replace("sink:\n  kafka:\n    brokers: kafka:9092\n", sink_yaml)
}

#[test]
fn null_sink_parses_in_both_shapes() {
    for shape in [
        "sink:\n  null: {}\n",
        "sink:\n  null:\n",
        "sink: { null: {} }\n",
    ] {
        let config = ok(&with_sink(shape));
        assert_eq!(config.sink.null, Some(NullSink {}), "{shape}");
        assert_eq!(config.sink.kafka, None, "{shape}");
    }
    // The Kafka shape is unchanged.
    let config = ok(BASE);
    assert_eq!(config.sink.null, None);
    assert_eq!(config.sink.kafka.expect("kafka sink").brokers, "kafka:9092");
}

#[test]
fn null_sink_errors_name_file_line_and_column() {
    assert_eq!(
        err(&with_sink("sink:\n  null:\n    brokers: kafka:9092\n")),
        "t.yaml:10:5: sink.null.brokers: unknown field `brokers`, there are no fields"
    );
    assert_eq!(
        err(&with_sink(
            "sink:\n  kafka:\n    brokers: kafka:9092\n  null: {}\n"
        )),
        "t.yaml:11:3: sink.null: `kafka` and `null` are both set: expected exactly one sink \
         (remove one of them)"
    );
    assert_eq!(
        err(&with_sink("sink: {}\n")),
        "t.yaml:8:1: sink: no sink: expected exactly one of `kafka: {brokers: …}` or `null: {}`"
    );
    assert_eq!(
        err(&with_sink("sink:\n  discard: {}\n")),
        "t.yaml:9:3: sink.discard: unknown field `discard`, expected `kafka` or `null`"
    );
}

#[test]
fn selection_defaults_keep_the_plain_list() {
    let pg = ok(BASE).source.postgres;
    assert!(pg.exclude_tables.is_empty());
    assert_eq!(pg.columns, ColumnSelection::default());
    assert_eq!(pg.publication_mode, PublicationMode::Filtered);
    assert!(!pg.tables[0].is_pattern());
}

#[test]
fn selection_patterns_columns_and_publication_modes() {
    let text = BASE.replace(
        "    tables: [public.products]\n",
        "    tables: [public.*, sales.order_*, '*.audit']
    exclude_tables: [public.tmp_*]
    columns:
      exclude: [public.users.password, '*.*.secret_*']
    publication_mode: disabled
",
    );
    let pg = ok(&text).source.postgres;
    let tables: Vec<String> = pg.tables.iter().map(ToString::to_string).collect();
    assert_eq!(tables, ["public.*", "sales.order_*", "*.audit"]);
    assert!(pg.tables.iter().all(TableName::is_pattern));
    assert!(pg.tables[1].matches("sales", "order_lines"));
    assert!(!pg.tables[1].matches("sales", "orders"));
    assert!(pg.tables[2].matches("billing", "audit"));
    assert_eq!(pg.exclude_tables[0].to_string(), "public.tmp_*");
    assert_eq!(
        pg.columns.exclude,
        ["public.users.password", "*.*.secret_*"]
    );
    assert_eq!(pg.publication_mode, PublicationMode::Disabled);
    for (mode, want) in [
        ("all_tables", PublicationMode::AllTables),
        ("filtered", PublicationMode::Filtered),
    ] {
        let text = BASE.replace(
            "    tables: [public.products]\n",
            &format!("    tables: [public.products]\n    publication_mode: {mode}\n"),
        );
        assert_eq!(ok(&text).source.postgres.publication_mode, want);
    }
    // A plugin may scope a table that a pattern selects, not one an exclusion removes.
    let sha = "0123456789abcdef".repeat(4);
    let text = BASE.replace(
        "    tables: [public.products]\n",
        "    tables: [public.*]\n    exclude_tables: [public.tmp]\n",
    ) + &format!(
        "plugins:\n  - name: p\n    component: p.wasm\n    sha256: {sha}\n    scope:\n      tables: [orders, public.tmp]\n"
    );
    assert_eq!(
        err(&text),
        "t.yaml:17:24: plugins[0].scope.tables[1]: `public.tmp` is not selected by source.postgres.tables and exclude_tables: the plugin would never see it"
    );
}

#[test]
fn selection_problems_are_placed() {
    let text = BASE.replace(
        "    tables: [public.products]\n",
        "    tables: [public.products, 'pub lic.*']
    exclude_tables: [a.b.c]
    columns:
      include: [public.products.name, products.name]
      exclude: [public.products.secret]
    publication_mode: sometimes
",
    );
    assert_eq!(
        err(&text),
        "t.yaml:11:23: source.postgres.publication_mode: unknown variant `sometimes`, expected one of `all_tables`, `filtered`, `disabled`"
    );
    let text = text.replace("    publication_mode: sometimes\n", "");
    assert_eq!(
        err(&text),
        "\
t.yaml:6:31: source.postgres.tables[1]: `pub lic.*` is not a valid table: expected `schema.table` (or a bare `table` in public), each an unquoted identifier [A-Za-z_][A-Za-z0-9_$]* of at most 63 characters, in which `*` matches any characters
t.yaml:7:22: source.postgres.exclude_tables[0]: `a.b.c` is not a valid table: expected `schema.table` (or a bare `table` in public), each an unquoted identifier [A-Za-z_][A-Za-z0-9_$]* of at most 63 characters, in which `*` matches any characters
t.yaml:9:39: source.postgres.columns.include[1]: `products.name` is not a valid column pattern: expected `schema.table.column`, each an unquoted identifier in which `*` matches any characters, like `public.users.password` or `*.*.secret_*`
t.yaml:10:7: source.postgres.columns.exclude: not allowed together with source.postgres.columns.include: give one of them"
    );
    let text = BASE.replace(
        "    tables: [public.products]\n",
        "    tables: [public.products]\n    columns: {only: [a.b.c]}\n",
    );
    assert_eq!(
        err(&text),
        "t.yaml:7:15: source.postgres.columns.only: unknown field `only`, expected `include` or `exclude`"
    );
}

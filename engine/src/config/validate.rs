//! The semantic rules, checked after deserializing. Every rule runs; each
//! broken one adds a `(key path, message)`.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use super::{Config, KafkaSink, OnError, Plugin, PluginPolicy, TableName};
use crate::plugin::signing;

/// Kafka's limit on topic names.
const MAX_TOPIC_LEN: usize = 249;
/// PostgreSQL's limit on identifiers (NAMEDATALEN - 1), in bytes.
const MAX_IDENTIFIER_LEN: usize = 63;

struct Problems(Vec<(String, String)>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push((path.into(), message.into()));
    }
}

/// Checks `config`, normalizes it (lower-case hashes) and resolves its
/// relative paths against `base_dir`, which is absolute.
pub(super) fn check(config: &mut Config, base_dir: &Path) -> Vec<(String, String)> {
    let mut problems = Problems(Vec::new());
    let p = &mut problems;

    let pg = &config.source.postgres;
    if pg.url.trim().is_empty() {
        p.add(
            "source.postgres.url",
            "empty: expected a `postgres://user@host:port/database` URL",
        );
    } else if let Some((scheme, _)) = pg.url.split_once("://") {
        if scheme != "postgres" && scheme != "postgresql" {
            p.add(
                "source.postgres.url",
                format!("unknown scheme `{scheme}://`: expected `postgres://` or `postgresql://`"),
            );
        }
    }
    if !is_slot_name(&pg.slot) {
        p.add(
            "source.postgres.slot",
            format!(
                "`{}` is not a valid replication slot name: expected 1 to 63 characters of \
                 [a-z0-9_]",
                pg.slot
            ),
        );
    }
    if !is_publication_name(&pg.publication) {
        p.add(
            "source.postgres.publication",
            format!(
                "`{}` is not a valid publication name: expected [a-z_] then [a-z0-9_], at most \
                 63 characters",
                pg.publication
            ),
        );
    }
    if pg.tables.is_empty() {
        p.add(
            "source.postgres.tables",
            "empty: expected at least one table, like `[public.products]`",
        );
    }
    let mut seen: HashMap<&TableName, usize> = HashMap::new();
    for (i, table) in pg.tables.iter().enumerate() {
        let path = format!("source.postgres.tables[{i}]");
        if let Some(message) = table_problem(table) {
            p.add(&path, message);
            continue;
        }
        if let Some(first) = seen.insert(table, i) {
            seen.insert(table, first);
            p.add(
                &path,
                format!("`{table}` is listed twice (also source.postgres.tables[{first}])"),
            );
            continue;
        }
        let topic_len = config.topic_prefix.len() + table.schema.len() + table.table.len() + 2;
        if is_topic_name(&config.topic_prefix) && !table.is_pattern() && topic_len > MAX_TOPIC_LEN {
            p.add(
                &path,
                format!(
                    "the topic `{}.{table}` would have {topic_len} characters; Kafka allows at \
                     most {MAX_TOPIC_LEN}: shorten topic_prefix",
                    config.topic_prefix
                ),
            );
        }
    }
    for (i, table) in pg.exclude_tables.iter().enumerate() {
        if let Some(message) = table_problem(table) {
            p.add(format!("source.postgres.exclude_tables[{i}]"), message);
        }
    }
    check_columns(&pg.columns, p);
    if let Some(path) = &pg.password_file {
        if let Err(e) = crate::config::read_password_file(path) {
            p.add("source.postgres.password_file", e);
        }
    }
    if let Some(inc) = &pg.incremental_snapshots {
        let t = &inc.signal_table;
        if let Some(message) = table_problem(t) {
            p.add(
                "source.postgres.incremental_snapshots.signal_table",
                message,
            );
        } else if t.schema.contains('*') || t.table.contains('*') {
            p.add(
                "source.postgres.incremental_snapshots.signal_table",
                format!("`{t}`: one table, not a pattern"),
            );
        }
        if !(1..=1_000_000).contains(&inc.chunk_size) {
            p.add(
                "source.postgres.incremental_snapshots.chunk_size",
                format!("{} is out of range: expected 1 to 1000000", inc.chunk_size),
            );
        }
    }
    if !(1..=64).contains(&pg.snapshot_workers) {
        p.add(
            "source.postgres.snapshot_workers",
            format!("{} is out of range: expected 1 to 64", pg.snapshot_workers),
        );
    }
    if !(1000..=3_600_000).contains(&pg.server_timeout_ms) {
        p.add(
            "source.postgres.server_timeout_ms",
            format!(
                "{} is out of range: expected 1000 to 3600000 (milliseconds)",
                pg.server_timeout_ms
            ),
        );
    }
    if !(100..=3_600_000).contains(&pg.status_interval_ms) {
        p.add(
            "source.postgres.status_interval_ms",
            format!(
                "{} is out of range: expected 100 to 3600000 (milliseconds)",
                pg.status_interval_ms
            ),
        );
    }

    if !is_topic_name(&config.topic_prefix) {
        p.add(
            "topic_prefix",
            format!(
                "`{}` is not a valid topic prefix: expected 1 to {MAX_TOPIC_LEN} characters of \
                 [A-Za-z0-9._-]",
                config.topic_prefix
            ),
        );
    }

    if config.state_dir.as_os_str().is_empty() {
        p.add(
            "state_dir",
            "empty: expected a directory (default `walrelay-state`)",
        );
    }
    config.state_dir = resolve(base_dir, &config.state_dir);

    check_record_kinds(config, p);
    check_format(&config.format, p);
    match (&config.sink.kafka, &config.sink.null) {
        (Some(kafka), None) => check_kafka(kafka, p),
        (None, Some(_)) => {}
        (Some(_), Some(_)) => p.add(
            "sink.null",
            "`kafka` and `null` are both set: expected exactly one sink (remove one of them)",
        ),
        (None, None) => p.add(
            "sink",
            "no sink: expected exactly one of `kafka: {brokers: …}` or `null: {}`",
        ),
    }
    check_plugin_policy(&config.plugin_policy, p);

    let selection = (
        config.source.postgres.tables.clone(),
        config.source.postgres.exclude_tables.clone(),
    );
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, plugin) in config.plugins.iter_mut().enumerate() {
        let path = format!("plugins[{i}]");
        if let Some(first) = names.get(&plugin.name) {
            p.add(
                format!("{path}.name"),
                format!(
                    "`{}` is already the name of plugins[{first}]: names must be unique",
                    plugin.name
                ),
            );
        } else {
            names.insert(plugin.name.clone(), i);
        }
        check_plugin(plugin, &path, &selection, base_dir, p);
    }

    problems.0
}

/// `format`: the Avro settings go with `type: avro`, `schemas` with `type: json`.
fn check_format(format: &super::Format, p: &mut Problems) {
    use super::FormatKind;
    match (format.kind, &format.avro) {
        (FormatKind::Json, Some(_)) => p.add(
            "format.avro",
            "only applies to `type: avro`: set format.type: avro, or remove format.avro",
        ),
        (FormatKind::Avro, None) => p.add(
            "format.type",
            "`avro` needs format.avro.schema_registry.urls: the Schema Registry the schemas go to",
        ),
        (FormatKind::Avro, Some(avro)) => {
            let reg = &avro.schema_registry;
            if reg.urls.iter().all(|u| u.trim().is_empty()) {
                p.add(
                    "format.avro.schema_registry.urls",
                    "empty: expected at least one Schema Registry URL, like `http://127.0.0.1:8081`",
                );
            }
            for (i, url) in reg.urls.iter().enumerate() {
                for part in url.split(',').map(str::trim).filter(|u| !u.is_empty()) {
                    if !part.starts_with("http://") && !part.starts_with("https://") {
                        p.add(
                            format!("format.avro.schema_registry.urls[{i}]"),
                            format!("`{part}` is not an http:// or https:// URL"),
                        );
                    }
                }
            }
            if reg.basic_auth.is_some() && reg.bearer_token.is_some() {
                p.add(
                    "format.avro.schema_registry.bearer_token",
                    "not allowed together with basic_auth: give one of them",
                );
            }
            if !format.schemas {
                p.add(
                    "format.schemas",
                    "only applies to `type: json`: Avro records always reference their schema (remove format.schemas)",
                );
            }
        }
        (FormatKind::Json, None) => {}
    }
}

/// `truncate_events`, `logical_messages`, `transaction_metadata`, `heartbeat_interval_ms`.
fn check_record_kinds(config: &Config, p: &mut Problems) {
    let messages = &config.logical_messages;
    if !messages.include_prefixes.is_empty() && !messages.exclude_prefixes.is_empty() {
        p.add(
            "logical_messages.exclude_prefixes",
            "not allowed together with logical_messages.include_prefixes: give one of them",
        );
    }
    for (name, list) in [
        ("include_prefixes", &messages.include_prefixes),
        ("exclude_prefixes", &messages.exclude_prefixes),
    ] {
        for (i, pattern) in list.iter().enumerate() {
            if pattern.is_empty() {
                p.add(
                    format!("logical_messages.{name}[{i}]"),
                    "empty: expected a message prefix (`*` matches any characters)",
                );
            }
        }
    }
    let ms = config.heartbeat_interval_ms;
    if ms == 0 && config.source.postgres.heartbeat_message {
        p.add(
            "source.postgres.heartbeat_message",
            "needs heartbeat_interval_ms: the messages are written with each heartbeat (set heartbeat_interval_ms, e.g. 10000)",
        );
    }
    if ms != 0 && !(100..=86_400_000).contains(&ms) {
        p.add(
            "heartbeat_interval_ms",
            format!("{ms} is out of range: expected 0 (off) or 100 to 86400000 (milliseconds)"),
        );
    }
    if is_topic_name(&config.topic_prefix) {
        let mut topics = Vec::new();
        if ms != 0 {
            topics.push((
                "heartbeat_interval_ms",
                format!("__debezium-heartbeat.{}", config.topic_prefix),
            ));
        }
        if config.transaction_metadata {
            topics.push((
                "transaction_metadata",
                format!("{}.transaction", config.topic_prefix),
            ));
        }
        for (path, topic) in topics {
            if topic.len() > MAX_TOPIC_LEN {
                p.add(
                    path,
                    format!(
                        "the topic `{topic}` would have {} characters; Kafka allows at most \
                         {MAX_TOPIC_LEN}: shorten topic_prefix",
                        topic.len()
                    ),
                );
            }
        }
    }
}

fn check_kafka(kafka: &KafkaSink, p: &mut Problems) {
    let brokers: Vec<&str> = kafka.brokers.split(',').map(str::trim).collect();
    if kafka.brokers.trim().is_empty() {
        p.add(
            "sink.kafka.brokers",
            "empty: expected comma-separated `host:port`, like `127.0.0.1:9092`",
        );
    } else {
        for broker in brokers {
            let valid = broker.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port > 0)
            });
            if !valid {
                p.add(
                    "sink.kafka.brokers",
                    format!("`{broker}` is not `host:port`: expected comma-separated `host:port`, like `127.0.0.1:9092`"),
                );
            }
        }
    }

    for (key, value) in &kafka.properties {
        let path = format!("sink.kafka.properties.{key}");
        if let Some(message) = refused_property(key, value) {
            p.add(path, message);
        }
    }

    let topics = &kafka.topics;
    if topics.partitions == 0 || topics.partitions > i32::MAX as u32 {
        p.add(
            "sink.kafka.topics.partitions",
            format!("{} is out of range: expected at least 1", topics.partitions),
        );
    }
    if topics.replication_factor == 0 || topics.replication_factor > i16::MAX as u16 {
        p.add(
            "sink.kafka.topics.replication_factor",
            format!(
                "{} is out of range: expected 1 to 32767",
                topics.replication_factor
            ),
        );
    }
    if topics.config.contains_key("cleanup.policy") {
        p.add(
            "sink.kafka.topics.config.cleanup.policy",
            "refused here: set sink.kafka.topics.cleanup_policy instead",
        );
    }
}

fn check_plugin_policy(policy: &PluginPolicy, p: &mut Problems) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, key) in policy.trusted_keys.iter().enumerate() {
        let path = format!("plugin_policy.trusted_keys[{i}]");
        match signing::parse_public_key(key) {
            Err(err) => p.add(
                path,
                format!(
                    "`{key}` is not a trusted key: {err}. Expected `ed25519:` then the base64 of \
                     a 32-byte public key, as in the NAME.pub written by `walrelay plugin keygen`"
                ),
            ),
            Ok(_) => {
                if let Some(first) = seen.get(key.trim()) {
                    p.add(
                        path,
                        format!(
                            "`{key}` is listed twice (also plugin_policy.trusted_keys[{first}])"
                        ),
                    );
                } else {
                    seen.insert(key.trim(), i);
                }
            }
        }
    }
    if policy.require_signature && policy.trusted_keys.is_empty() {
        p.add(
            "plugin_policy.require_signature",
            "`true` with no trusted_keys: every plugin would be refused. Add the signers' public \
             keys to plugin_policy.trusted_keys (`walrelay plugin keygen --out NAME` writes one \
             to NAME.pub), or set require_signature to false",
        );
    }
}

/// Why walrelay refuses the librdkafka property `key` = `value`, if it does.
pub(super) fn refused_property(key: &str, value: &str) -> Option<String> {
    let value = value.trim();
    match key {
        "acks" | "request.required.acks" if value != "all" && value != "-1" => Some(format!(
            "`{value}` is refused: walrelay confirms an LSN to PostgreSQL only after the broker \
             acknowledged every event up to it; acks=1 or 0 could lose acknowledged events on a \
             broker failure. Set it to `all` (or `-1`), or remove it"
        )),
        "enable.idempotence" if !value.eq_ignore_ascii_case("true") => Some(format!(
            "`{value}` is refused: without idempotence, producer retries could duplicate or \
             reorder a key's events. Set it to `true`, or remove it"
        )),
        "transactional.id" => Some(
            "refused: exactly-once delivery is configured elsewhere in walrelay, and is not \
             available yet. Remove it"
                .to_string(),
        ),
        "bootstrap.servers" | "metadata.broker.list" => Some(
            "refused: the brokers come from sink.kafka.brokers. Move the list there and remove \
             this property"
                .to_string(),
        ),
        "partitioner" if value != "murmur2_random" && value != "murmur2" => Some(format!(
            "`{value}` is refused: Debezium (Java's Kafka client) partitions keys with murmur2; \
             another partitioner moves keys to other partitions and breaks per-key order across \
             a cutover. Set it to `murmur2_random` (or `murmur2`), or remove it"
        )),
        "delivery.report.only.error" => Some(
            "refused: walrelay needs a delivery report for every event to know which LSN it may \
             confirm. Remove it"
                .to_string(),
        ),
        "max.in.flight.requests.per.connection" | "max.in.flight" => match value.parse::<u64>() {
            Ok(1..=5) => None,
            Ok(n) if n > 5 => Some(format!(
                "{n} is refused: idempotent delivery allows at most 5 requests in flight per \
                 connection. Set 1 to 5, or remove it"
            )),
            _ => Some(format!(
                "`{value}` is not valid: expected an integer from 1 to 5"
            )),
        },
        _ => None,
    }
}

fn check_plugin(
    plugin: &mut Plugin,
    path: &str,
    selection: &(Vec<TableName>, Vec<TableName>),
    base_dir: &Path,
    p: &mut Problems,
) {
    let name_ok = !plugin.name.is_empty()
        && plugin.name.len() <= 63
        && plugin
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !name_ok {
        p.add(
            format!("{path}.name"),
            format!(
                "`{}` is not a valid plugin name: expected 1 to 63 characters of [a-z0-9-]",
                plugin.name
            ),
        );
    }

    if plugin.component.as_os_str().is_empty() {
        p.add(
            format!("{path}.component"),
            "empty: expected the path of a `.wasm` component",
        );
    }
    plugin.component = resolve(base_dir, &plugin.component);
    let signature = match &plugin.signature {
        Some(file) if file.as_os_str().is_empty() => {
            p.add(
                format!("{path}.signature"),
                "empty: expected the path of the signature file, or no key for the default \
                 (the component's path with `.sig` appended)",
            );
            signing::default_signature_path(&plugin.component)
        }
        Some(file) => resolve(base_dir, file),
        None => signing::default_signature_path(&plugin.component),
    };
    plugin.signature = Some(signature);

    if plugin.sha256.len() == 64 && plugin.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        plugin.sha256.make_ascii_lowercase();
    } else {
        p.add(
            format!("{path}.sha256"),
            format!(
                "`{}` is not a SHA-256: expected 64 hexadecimal digits (`sha256sum FILE` prints them)",
                plugin.sha256
            ),
        );
    }

    let limits = &plugin.limits;
    let checks = [
        (
            "cpu_ms_per_batch",
            limits.cpu_ms_per_batch == 0,
            "at least 1",
        ),
        (
            "memory_mb",
            limits.memory_mb == 0 || limits.memory_mb > 4096,
            "1 to 4096",
        ),
        (
            "max_output_bytes",
            limits.max_output_bytes == 0,
            "at least 1",
        ),
        ("max_fan_out", limits.max_fan_out == 0, "at least 1"),
    ];
    let values = [
        limits.cpu_ms_per_batch,
        u64::from(limits.memory_mb),
        limits.max_output_bytes,
        u64::from(limits.max_fan_out),
    ];
    for ((key, bad, expected), value) in checks.into_iter().zip(values) {
        if bad {
            p.add(
                format!("{path}.limits.{key}"),
                format!("{value} is out of range: expected {expected}"),
            );
        }
    }

    match (&plugin.on_error, &plugin.dead_letter_topic) {
        (OnError::DeadLetter, None) => p.add(
            format!("{path}.on_error"),
            "`dead-letter` needs `dead_letter_topic`, the topic that receives the failed events",
        ),
        (OnError::DeadLetter, Some(topic)) => {
            if !is_topic_name(topic) || topic == "." || topic == ".." {
                p.add(
                    format!("{path}.dead_letter_topic"),
                    format!(
                        "`{topic}` is not a valid topic name: expected 1 to {MAX_TOPIC_LEN} \
                         characters of [A-Za-z0-9._-]"
                    ),
                );
            }
        }
        (on_error, Some(_)) => {
            let on_error = match on_error {
                OnError::Fail => "fail",
                OnError::Skip => "skip",
                OnError::DeadLetter => "dead-letter",
            };
            p.add(
                format!("{path}.dead_letter_topic"),
                format!(
                    "refused with on_error `{on_error}`: a dead-letter topic is only used with \
                     `on_error: dead-letter`. Remove it, or set on_error to dead-letter"
                ),
            );
        }
        (_, None) => {}
    }

    if let Some(scope_tables) = &plugin.scope.tables {
        if scope_tables.is_empty() {
            p.add(
                format!("{path}.scope.tables"),
                "empty: the plugin would see no event. Remove the key to scope all tables",
            );
        }
        let mut seen = HashSet::new();
        for (i, table) in scope_tables.iter().enumerate() {
            let item = format!("{path}.scope.tables[{i}]");
            if let Some(message) = table_problem(table) {
                p.add(item, message);
            } else if !selection
                .0
                .iter()
                .any(|t| t.matches(&table.schema, &table.table))
                || selection
                    .1
                    .iter()
                    .any(|t| t.matches(&table.schema, &table.table))
            {
                p.add(
                    item,
                    format!("`{table}` is not selected by source.postgres.tables and exclude_tables: the plugin would never see it"),
                );
            } else if !seen.insert(table) {
                p.add(item, format!("`{table}` is listed twice"));
            }
        }
    }
    if let Some(ops) = &plugin.scope.ops {
        if ops.is_empty() {
            p.add(
                format!("{path}.scope.ops"),
                "empty: the plugin would see no event. Remove the key to scope all operations",
            );
        }
        let mut seen = HashSet::new();
        for (i, op) in ops.iter().enumerate() {
            if !seen.insert(op) {
                p.add(
                    format!("{path}.scope.ops[{i}]"),
                    format!("`{}` is listed twice", op.as_str()),
                );
            }
        }
    }

    let mut guests: HashMap<&str, usize> = HashMap::new();
    for (i, dir) in plugin.grants.dirs.iter_mut().enumerate() {
        let item = format!("{path}.grants.dirs[{i}]");
        if dir.host.as_os_str().is_empty() {
            p.add(
                format!("{item}.host"),
                "empty: expected a directory on the host",
            );
        }
        dir.host = resolve(base_dir, &dir.host);
        if !dir.guest.starts_with('/') {
            p.add(
                format!("{item}.guest"),
                format!(
                    "`{}` is not absolute: expected a path such as `/data`",
                    dir.guest
                ),
            );
        } else if let Some(first) = guests.get(dir.guest.as_str()) {
            p.add(
                format!("{item}.guest"),
                format!("`{}` is already mounted by grants.dirs[{first}]", dir.guest),
            );
        } else {
            guests.insert(&dir.guest, i);
        }
    }
}

/// `path`, relative to `base_dir` unless absolute, without `.` components.
fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    };
    joined
        .components()
        .filter(|part| *part != Component::CurDir)
        .collect()
}

fn table_problem(table: &TableName) -> Option<String> {
    (!is_identifier_pattern(&table.schema) || !is_identifier_pattern(&table.table)).then(|| {
        format!(
            "`{table}` is not a valid table: expected `schema.table` (or a bare `table` in \
             public), each an unquoted identifier [A-Za-z_][A-Za-z0-9_$]* of at most 63 \
             characters, in which `*` matches any characters"
        )
    })
}

/// An unquoted identifier, in which `*` may stand for any run of characters.
fn is_identifier_pattern(ident: &str) -> bool {
    let mut chars = ident.chars();
    ident.len() <= MAX_IDENTIFIER_LEN
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '*')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '*')
}

/// `source.postgres.columns`: one of `include` and `exclude`, each `schema.table.column`.
fn check_columns(columns: &super::ColumnSelection, p: &mut Problems) {
    if !columns.include.is_empty() && !columns.exclude.is_empty() {
        p.add(
            "source.postgres.columns.exclude",
            "not allowed together with source.postgres.columns.include: give one of them",
        );
    }
    for (name, list) in [("include", &columns.include), ("exclude", &columns.exclude)] {
        for (i, pattern) in list.iter().enumerate() {
            let valid = super::glob::split_column_pattern(pattern)
                .is_some_and(|(s, t, c)| [s, t, c].into_iter().all(is_identifier_pattern));
            if !valid {
                p.add(
                    format!("source.postgres.columns.{name}[{i}]"),
                    format!(
                        "`{pattern}` is not a valid column pattern: expected \
                         `schema.table.column`, each an unquoted identifier in which `*` \
                         matches any characters, like `public.users.password` or `*.*.secret_*`"
                    ),
                );
            }
        }
    }
}

fn is_slot_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn is_publication_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 63
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn is_topic_name(name: &str) -> bool {
    (1..=MAX_TOPIC_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

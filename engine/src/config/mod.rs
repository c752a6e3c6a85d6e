//! The configuration file of `walrelay run --config FILE`.
//!
//! The structs below are the reference documentation of the file: every field
//! is a key, with its default and its rules. `examples/inventory.yaml` is a
//! commented example.
//!
//! Loading goes in four steps:
//! 1. `${VAR}` and `${VAR:-default}` are replaced by environment variables in
//!    the raw text (outside comments; `$$` is a literal `$`). A variable that
//!    is unset and has no default is an error, and so is a value containing a
//!    line break. `:-` also applies the default when the variable is empty. A
//!    default cannot contain `}`. The value is inserted as is: if it may hold
//!    YAML-significant characters (`: `, ` #`, a leading `*`, `&`, `!`, `[`,
//!    `{`…), quote the reference, e.g. `url: '${WALRELAY_PG_URL}'`.
//! 2. The text is parsed as YAML into [`Config`]; unknown keys are errors.
//! 3. Every semantic rule is checked, and all problems are reported together.
//! 4. Relative paths (`state_dir`, plugin `component` and `signature`,
//!    granted `host` dirs) are resolved against the configuration file's
//!    directory.
//!
//! Every problem names `file:line:column: key.path: what was expected`.

pub mod glob;
mod interpolate;
mod locate;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// A whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the changes come from.
    pub source: Source,
    /// Prefix of every Kafka topic: the events of table `schema.table` go to
    /// `<topic_prefix>.<schema>.<table>`, as with Debezium. Required;
    /// characters `[A-Za-z0-9._-]`, and every resulting topic name must fit in
    /// Kafka's 249 characters.
    pub topic_prefix: String,
    /// Directory where the relay records that a slot's initial snapshot
    /// completed, so that a restart does not snapshot again. Optional, default
    /// `walrelay-state`; a relative path is relative to the configuration
    /// file's directory. After loading, always an absolute path.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Whether a delete event is followed by a tombstone (the same key with a
    /// null value), so that log compaction can drop the key. Optional, default
    /// `true`, as with Debezium.
    #[serde(default = "default_true")]
    pub tombstones_on_delete: bool,
    /// How records are written. Optional; defaults to Debezium's JSON with schemas.
    #[serde(default)]
    pub format: Format,
    /// Whether a `TRUNCATE` is written: one record per truncated table on its topic, with op
    /// `t`, a null key and null `before`/`after`. Optional, default `false`, as with Debezium
    /// (whose `skipped.operations` defaults to `t`). The publication must publish truncates
    /// (walrelay creates it with PostgreSQL's default, which does). Truncate events pass through
    /// the plugin chain (scope op `t`).
    #[serde(default)]
    pub truncate_events: bool,
    /// Logical decoding messages (`pg_logical_emit_message`), written to `<topic_prefix>.message`
    /// with op `m`, as Debezium's PostgreSQL connector does by default. Optional, default
    /// enabled with every prefix. Needs PostgreSQL 14 or later (older servers: a warning, no
    /// messages). Messages do not pass through the plugin chain.
    #[serde(default)]
    pub logical_messages: LogicalMessages,
    /// Debezium's `provide.transaction.metadata`: a BEGIN and an END record per transaction on
    /// `<topic_prefix>.transaction`, and each streamed event's `transaction` block (`id`,
    /// `total_order`, `data_collection_order`). END counts the events emitted after the plugin
    /// chain. Optional, default `false`.
    #[serde(default)]
    pub transaction_metadata: bool,
    /// Debezium's `heartbeat.interval.ms`: while streaming, a heartbeat record on
    /// `__debezium-heartbeat.<topic_prefix>` this often. Once acknowledged, it lets the slot
    /// advance to the latest position the server reported, even when nothing is written.
    /// Optional, default `0` (off); otherwise 100 to 86400000.
    #[serde(default)]
    pub heartbeat_interval_ms: u64,
    /// Where the events go.
    pub sink: Sink,
    /// The plugin chain, applied in order to every event. Optional, default
    /// empty (events go to Kafka as decoded).
    #[serde(default)]
    pub plugins: Vec<Plugin>,
    /// Which plugin components may be instantiated: signature requirements
    /// and trusted signers. Optional, default: no signature required.
    #[serde(default)]
    pub plugin_policy: PluginPolicy,
    /// Prometheus metrics (`GET /metrics`). Optional, default: not served.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
}

/// `metrics:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `address:port` to serve `GET /metrics` on, e.g. `127.0.0.1:9187` (port 0: any free
    /// port, logged as `metrics listening`). Required.
    pub listen: std::net::SocketAddr,
}

/// `format:`: how change events are written to Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Format {
    /// `json`: Debezium's JSON as Kafka's `JsonConverter` writes it. Optional, default `json`.
    #[serde(rename = "type", default)]
    pub kind: FormatKind,
    /// JSON: `{"schema":…,"payload":…}` (Kafka's `schemas.enable=true`) or, with `false`, the
    /// payload alone. Optional, default `true`.
    #[serde(default = "default_true")]
    pub schemas: bool,
    /// A column whose type walrelay cannot map to a Debezium type: `skip` (leave it out of
    /// schema and payload, with one warning per column; Debezium's default), `text` (write
    /// PostgreSQL's text of the value as a string) or `fail` (refuse the table). Optional,
    /// default `skip`.
    #[serde(default)]
    pub unknown_types: crate::encode::columns::UnknownTypes,
    /// `format.avro:`: the Avro settings; required with `type: avro`, refused otherwise.
    #[serde(default)]
    pub avro: Option<AvroFormat>,
}

impl Default for Format {
    fn default() -> Self {
        Format {
            kind: FormatKind::Json,
            schemas: true,
            unknown_types: Default::default(),
            avro: None,
        }
    }
}

/// `format.avro:`: Confluent's Avro with schemas in a Schema Registry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvroFormat {
    pub schema_registry: SchemaRegistryConfig,
    /// Replace characters that Avro names do not allow (`-`, `$`, a leading digit, …) by `_` in
    /// record names, namespaces and field names (Confluent's
    /// `schema.name.adjustment.mode=avro`). Optional, default `false`: such a name is an error.
    #[serde(default)]
    pub sanitize_names: bool,
}

/// `format.avro.schema_registry:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistryConfig {
    /// Base URLs of the registry, tried in turn. Required.
    #[serde(default)]
    pub urls: Vec<String>,
    /// HTTP basic authentication. Optional; not together with `bearer_token`.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// A bearer token. Optional; not together with `basic_auth`.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// Register new schemas (`true`, the default) or only look them up.
    #[serde(default = "default_true")]
    pub auto_register: bool,
}

/// `basic_auth: {username, password}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: Secret,
}

/// A string kept out of `Debug` output (passwords, tokens).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `logical_messages:`: which logical decoding messages are streamed.
///
/// Debezium's `message.prefix.include.list` / `message.prefix.exclude.list` take regular
/// expressions; these lists take prefixes in which `*` matches any run of characters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogicalMessages {
    /// Whether messages are requested from PostgreSQL at all. Optional, default `true`.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Only messages with these prefixes. Optional, default all; not together with
    /// `exclude_prefixes`; no empty patterns.
    #[serde(default)]
    pub include_prefixes: Vec<String>,
    /// Every message but those with these prefixes. Optional, default none; not together with
    /// `include_prefixes`; no empty patterns.
    #[serde(default)]
    pub exclude_prefixes: Vec<String>,
}

impl Default for LogicalMessages {
    fn default() -> Self {
        LogicalMessages {
            enabled: true,
            include_prefixes: Vec::new(),
            exclude_prefixes: Vec::new(),
        }
    }
}

/// `format.type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormatKind {
    #[default]
    Json,
    /// Confluent's Avro wire format (`format.avro`).
    Avro,
}

/// `plugin_policy:`: the vetting of plugin components, checked on the
/// component file before it is instantiated (see
/// [`crate::plugin::signing`]). Every component must always match its
/// `sha256` pin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginPolicy {
    /// Whether every plugin needs a valid signature by one of
    /// `trusted_keys`: unsigned components, components signed by another
    /// key and components changed after signing are refused. Optional,
    /// default `false`. Even when `false`, a signature file that exists is
    /// checked, and a malformed or invalid one is refused.
    #[serde(default)]
    pub require_signature: bool,
    /// Public keys whose signatures are trusted, each
    /// `ed25519:<base64 of 32 bytes>` as in the `NAME.pub` written by
    /// `walrelay plugin keygen`. Optional, default none; required
    /// (non-empty) when `require_signature` is `true`. No duplicates.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
}

impl PluginPolicy {
    /// The admission policy, with the keys parsed (they were checked when
    /// the configuration was loaded).
    pub fn trust_policy(
        &self,
    ) -> Result<crate::plugin::signing::TrustPolicy, crate::plugin::signing::KeyError> {
        crate::plugin::signing::TrustPolicy::from_text_keys(
            self.require_signature,
            &self.trusted_keys,
        )
        .map_err(|(_, err)| err)
    }
}

/// `source:`: the database to replicate.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// A PostgreSQL database, through logical replication (pgoutput).
    pub postgres: PostgresSource,
}

/// `source.postgres:`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSource {
    /// Connection string: a `postgres://user:password@host:port/database` URL
    /// (or libpq `key=value` pairs). Required. The user needs the REPLICATION
    /// attribute. Keep the password out of the file with
    /// `${WALRELAY_PG_URL}`, `${PGPASSWORD}` in the URL, or `password_file`.
    /// Shown with its password hidden by `Debug`.
    pub url: String,
    /// Name of the logical replication slot, which keeps the relay's position
    /// in the WAL. Required; `[a-z0-9_]`, 1 to 63 characters (PostgreSQL's
    /// rule for slot names).
    pub slot: String,
    /// Name of the publication that selects the replicated tables. Required;
    /// `[a-z_][a-z0-9_]*`, at most 63 characters.
    pub publication: String,
    /// The replicated tables, each `schema.table` with unquoted identifiers
    /// (`[A-Za-z_][A-Za-z0-9_$]*`, at most 63 characters each), matched as
    /// written (case-sensitive); a bare `table` means `public.table`. Either
    /// part may hold `*` wildcards (any run of characters, never a `.`):
    /// `public.*`, `sales.order_*`, `*.audit`. Patterns are resolved against
    /// the catalog at start (ordinary and partitioned tables outside the system
    /// schemas; partitions of a selected partitioned table are left to it); a
    /// pattern matching no table, or an exact name naming none, is an error.
    /// Tables created later are picked up at the next start. Required,
    /// non-empty, no duplicates.
    pub tables: Vec<TableName>,
    /// Tables left out of those `tables` selects, with the same patterns
    /// (Debezium's `table.exclude.list`). Optional, default none.
    #[serde(default)]
    pub exclude_tables: Vec<TableName>,
    /// Which columns events carry. Optional, default all.
    #[serde(default)]
    pub columns: ColumnSelection,
    /// Whether and how walrelay creates the publication. Optional, default
    /// `filtered`.
    #[serde(default)]
    pub publication_mode: PublicationMode,
    /// What happens when the slot has never completed a snapshot. Optional,
    /// default `initial`.
    #[serde(default)]
    pub snapshot: SnapshotMode,
    /// Milliseconds between two standby status updates (the confirmed LSN
    /// sent back to PostgreSQL). Optional, default 10000; 100 to 3600000.
    #[serde(default = "default_status_interval_ms")]
    pub status_interval_ms: u64,
    /// A file holding the password (its first line; a trailing newline is
    /// ignored), read at start and used instead of any password in `url`: for
    /// secrets mounted as files (Kubernetes, Docker). A relative path is taken
    /// from the working directory. Optional.
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
    /// With `heartbeat_interval_ms`, each heartbeat also writes a
    /// non-transactional logical decoding message (prefix
    /// `walrelay_heartbeat`, empty content) into this database, as Debezium's
    /// `heartbeat.action.query` is used: the walsender then has a change of
    /// this database to decode and the slot's position moves with it even
    /// where keepalives alone would not (a database idle while others write).
    /// The messages themselves are never published. The role needs EXECUTE on
    /// `pg_logical_emit_message`. Optional, default `false`.
    #[serde(default)]
    pub heartbeat_message: bool,
    /// Milliseconds the server may stay silent while streaming before the
    /// connection is taken for dead and capture reconnects (from the confirmed
    /// position). At half of it walrelay asks the server for a keepalive, which
    /// a live walsender answers at once, so only a dead peer (a half-open TCP
    /// connection, a frozen server) reaches the limit. Optional, default
    /// 60000; 1000 to 3600000.
    #[serde(default = "default_server_timeout_ms")]
    pub server_timeout_ms: u64,
    /// Connections that read the initial snapshot's tables in parallel, each
    /// inside the slot's exported snapshot, a table at a time (Debezium's
    /// `snapshot.max.threads`). Optional, default 1; 1 to 64.
    #[serde(default = "default_snapshot_workers")]
    pub snapshot_workers: usize,
    /// Incremental snapshots: re-read tables while streaming goes on, on a
    /// signal (Debezium's signal table and its `execute-snapshot` signal).
    /// Optional, default off.
    #[serde(default)]
    pub incremental_snapshots: Option<IncrementalSnapshots>,
}

/// `source.postgres.incremental_snapshots:`. A row inserted into `signal_table`
/// with `type = 'execute-snapshot'` and `data = '{"data-collections":
/// ["public.t"], "type": "incremental"}'` (what `walrelay snapshot` writes, and
/// what Debezium's signalling uses) reads the named tables again in chunks of
/// `chunk_size` rows in key order, interleaved with the stream by the
/// watermark method (DBLog): a row changed while its chunk is read is
/// written only as the change, so nothing is reordered or lost. Rows carry
/// `op: r` and `source.snapshot: incremental`. Progress is recorded in
/// `state_dir` once delivered: after a restart the snapshot resumes after
/// the last delivered chunk. Tables need a primary key (or replica identity
/// index); PostgreSQL 14 or later (watermarks are logical decoding messages).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncrementalSnapshots {
    /// The signal table, `schema.table`, created in advance:
    /// `CREATE TABLE walrelay_signal (id varchar(42) PRIMARY KEY, type
    /// varchar(32) NOT NULL, data varchar(2048))`. walrelay adds it to the
    /// publication (its rows are never published). Required.
    pub signal_table: TableName,
    /// Rows per chunk. Optional, default 1024; 1 to 1000000.
    #[serde(default = "default_chunk_size")]
    pub chunk_size: usize,
}

fn default_chunk_size() -> usize {
    1024
}

impl fmt::Debug for PostgresSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSource")
            .field("url", &redact_url(&self.url))
            .field("slot", &self.slot)
            .field("publication", &self.publication)
            .field("tables", &self.tables)
            .field("exclude_tables", &self.exclude_tables)
            .field("columns", &self.columns)
            .field("publication_mode", &self.publication_mode)
            .field("snapshot", &self.snapshot)
            .field("status_interval_ms", &self.status_interval_ms)
            .field("password_file", &self.password_file)
            .field("heartbeat_message", &self.heartbeat_message)
            .field("server_timeout_ms", &self.server_timeout_ms)
            .field("snapshot_workers", &self.snapshot_workers)
            .field("incremental_snapshots", &self.incremental_snapshots)
            .finish()
    }
}

/// A table, `schema.table`. Deserialized from a string: `products` becomes
/// `public.products`. Checked after deserializing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    /// The schema, `public` when the configuration names a bare table.
    pub schema: String,
    /// The table.
    pub table: String,
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

impl<'de> Deserialize<'de> for TableName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(match text.split_once('.') {
            Some((schema, table)) => TableName {
                schema: schema.to_string(),
                table: table.to_string(),
            },
            None => TableName {
                schema: "public".to_string(),
                table: text,
            },
        })
    }
}

impl TableName {
    /// Whether either part holds a `*` wildcard.
    pub fn is_pattern(&self) -> bool {
        glob::is_pattern(&self.schema) || glob::is_pattern(&self.table)
    }

    /// Whether the table `schema.table` matches this name or pattern.
    pub fn matches(&self, schema: &str, table: &str) -> bool {
        glob::matches(&self.schema, schema) && glob::matches(&self.table, table)
    }
}

/// `source.postgres.columns:`: the columns events carry, as Debezium's `column.include.list` /
/// `column.exclude.list` (which take regular expressions). Each pattern is
/// `schema.table.column`, each part with optional `*` wildcards. Left-out columns vanish from
/// events entirely (schema and payload, snapshot and streaming) before plugins and encoders see
/// them. A key column cannot be left out (the relay refuses to start): the key would change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSelection {
    /// Only these columns, in the tables these patterns name (by their `schema.table` parts);
    /// tables no pattern names keep every column. Optional; not together with `exclude`.
    #[serde(default)]
    pub include: Vec<String>,
    /// Every column but these. Optional; not together with `include`.
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// `source.postgres.publication_mode`, as Debezium's `publication.autocreate.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublicationMode {
    /// Create the publication `FOR ALL TABLES` when missing (needs superuser); changes of
    /// tables that are not selected are ignored.
    AllTables,
    /// Create the publication `FOR TABLE` the selected tables when missing, and add the
    /// selected tables it lacks.
    #[default]
    Filtered,
    /// Never create or alter the publication: it must exist and publish every selected table.
    Disabled,
}

/// `source.postgres.snapshot`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotMode {
    /// Read the tables once (events with op `r`) before streaming changes.
    #[default]
    Initial,
    /// Only stream changes made after the slot was created.
    Never,
    /// Read the tables once, then exit without streaming.
    InitialOnly,
    /// As `initial`, and read the tables again when the slot was invalidated.
    WhenNeeded,
    /// Read the tables at every start, then stream.
    Always,
}

/// `sink:`: where the events go. Exactly one of `kafka` and `null`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sink {
    /// Apache Kafka (or a compatible broker), in Debezium's JSON format.
    #[serde(default)]
    pub kafka: Option<KafkaSink>,
    /// The discarding sink, for benchmarks and tests: `null: {}` (or `null:` with no value).
    /// Every record is still encoded, key and value, then counted and dropped, and acknowledged
    /// at once, so positions are confirmed to PostgreSQL as after a broker's acknowledgement.
    /// The relay logs the count and a checksum of the records (`sink tally`, every 10 s and at
    /// exit); a run to `kafka` logs the same figures for what it produced. The checksum is
    /// defined in [`crate::sink::Tally`].
    #[serde(default, deserialize_with = "null_sink")]
    pub null: Option<NullSink>,
}

/// `sink.null:`: no settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NullSink {}

/// `null:` present, with `{}` or no value at all, is the discarding sink; absent is `None`
/// (through `#[serde(default)]`).
fn null_sink<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<NullSink>, D::Error> {
    Ok(Some(
        Option::<NullSink>::deserialize(deserializer)?.unwrap_or_default(),
    ))
}

/// `sink.kafka:`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSink {
    /// The bootstrap brokers, comma-separated `host:port`. Required.
    pub brokers: String,
    /// librdkafka producer settings, passed through (YAML strings, numbers
    /// and booleans are all accepted and turned into strings). Optional.
    ///
    /// Refused, because they would break walrelay's delivery guarantees:
    /// `acks`/`request.required.acks` other than `all`/`-1`,
    /// `enable.idempotence` other than `true`, `transactional.id`,
    /// `bootstrap.servers`/`metadata.broker.list` (use `brokers`),
    /// `partitioner` other than `murmur2_random`/`murmur2`,
    /// `delivery.report.only.error`, and
    /// `max.in.flight.requests.per.connection`/`max.in.flight` above 5.
    ///
    /// Allowed on purpose: `message.timeout.ms` (the relay survives a delivery
    /// timeout: an event that was not acknowledged never has its LSN confirmed
    /// to PostgreSQL, so it is not lost) and `enable.gapless.guarantee` (any
    /// value). Values of keys that look secret (`password`, `secret`, `.pem`)
    /// are hidden by `Debug`.
    #[serde(default, deserialize_with = "string_map")]
    pub properties: BTreeMap<String, String>,
    /// How walrelay creates the topics that do not exist yet. Optional.
    #[serde(default)]
    pub topics: TopicSettings,
}

impl fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(key, value)| {
                let secret = ["password", "secret", ".pem"]
                    .iter()
                    .any(|word| key.contains(word));
                (
                    key.as_str(),
                    if secret { "<hidden>" } else { value.as_str() },
                )
            })
            .collect();
        f.debug_struct("KafkaSink")
            .field("brokers", &self.brokers)
            .field("properties", &properties)
            .field("topics", &self.topics)
            .finish()
    }
}

/// `sink.kafka.topics:`: settings of the topics walrelay creates. Existing
/// topics are used as they are.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSettings {
    /// Number of partitions. Optional, default 1; at least 1.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// Replication factor. Optional, default 1; 1 to 32767.
    #[serde(default = "default_replication_factor")]
    pub replication_factor: u16,
    /// The topics' `cleanup.policy`. Optional, default `delete`.
    #[serde(default)]
    pub cleanup_policy: CleanupPolicy,
    /// Other topic configs (`retention.ms`, `min.insync.replicas`…), passed
    /// through; numbers and booleans are turned into strings. Optional.
    /// `cleanup.policy` is refused here: use `cleanup_policy`.
    #[serde(default, deserialize_with = "string_map")]
    pub config: BTreeMap<String, String>,
}

impl Default for TopicSettings {
    fn default() -> Self {
        TopicSettings {
            partitions: default_partitions(),
            replication_factor: default_replication_factor(),
            cleanup_policy: CleanupPolicy::default(),
            config: BTreeMap::new(),
        }
    }
}

/// `sink.kafka.topics.cleanup_policy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum CleanupPolicy {
    /// `delete`: old segments are deleted after the retention time.
    #[default]
    #[serde(rename = "delete")]
    Delete,
    /// `compact`: only the latest event of each key is kept.
    #[serde(rename = "compact")]
    Compact,
    /// `compact,delete`: both.
    #[serde(rename = "compact,delete", alias = "delete,compact")]
    CompactDelete,
}

impl CleanupPolicy {
    /// The value of Kafka's `cleanup.policy` topic config.
    pub fn as_kafka_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }
}

/// One entry of `plugins:`, a WebAssembly component that transforms events.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plugin {
    /// Name of the plugin in logs, metrics and errors. Required; `[a-z0-9-]`,
    /// 1 to 63 characters, unique within the chain.
    pub name: String,
    /// The component file (`.wasm`). Required; a relative path is relative to
    /// the configuration file's directory. After loading, an absolute path.
    pub component: PathBuf,
    /// SHA-256 of the component file, 64 hexadecimal digits (stored in lower
    /// case); a component with another hash is refused. Required;
    /// `walrelay plugin digest FILE` prints it.
    pub sha256: String,
    /// The component's signature file (written by `walrelay plugin sign`).
    /// Optional, default the component's path with `.sig` appended
    /// (`mask.wasm.sig`); a relative path is relative to the configuration
    /// file's directory. Needed when `plugin_policy.require_signature` is
    /// `true`; checked whenever the file exists. After loading, always
    /// `Some` absolute path.
    #[serde(default)]
    pub signature: Option<PathBuf>,
    /// Where this entry is in the file (`walrelay.yaml:23:13: plugins[0] (`mask`)`), set after
    /// parsing, for error messages.
    #[serde(skip)]
    pub location: String,
    /// The plugin's own configuration, any YAML value, handed to the plugin
    /// as JSON. Optional, default null.
    #[serde(default)]
    pub config: serde_json::Value,
    /// Resource limits. Optional.
    #[serde(default)]
    pub limits: PluginLimits,
    /// What happens when the plugin fails on an event. Optional, default
    /// `fail`.
    #[serde(default)]
    pub on_error: OnError,
    /// The topic that receives the events the plugin failed on. Required when
    /// `on_error` is `dead-letter`, refused otherwise; Kafka topic characters
    /// `[A-Za-z0-9._-]`, at most 249.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// Which events the plugin sees; the others pass it by unchanged.
    /// Optional, default all.
    #[serde(default)]
    pub scope: PluginScope,
    /// What the plugin may reach outside its sandbox. Optional, default
    /// nothing.
    #[serde(default)]
    pub grants: PluginGrants,
}

impl Plugin {
    /// Where the component's signature is: `signature`, or by default the
    /// component's path with `.sig` appended.
    pub fn signature_path(&self) -> PathBuf {
        match &self.signature {
            Some(path) => path.clone(),
            None => crate::plugin::signing::default_signature_path(&self.component),
        }
    }
}

/// `plugins[].limits:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginLimits {
    /// CPU time the plugin may spend on one batch, in milliseconds. Optional,
    /// default 100; at least 1.
    #[serde(default = "default_cpu_ms_per_batch")]
    pub cpu_ms_per_batch: u64,
    /// Linear memory the plugin may grow to, in MiB. Optional, default 64;
    /// 1 to 4096 (a 32-bit WebAssembly memory cannot exceed 4 GiB).
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u32,
    /// Bytes of events the plugin may return for one batch. Optional, default
    /// 16777216 (16 MiB); at least 1.
    #[serde(default = "default_max_output_bytes")]
    pub max_output_bytes: u64,
    /// Events the plugin may return for one input event. Optional, default
    /// 16; at least 1.
    #[serde(default = "default_max_fan_out")]
    pub max_fan_out: u32,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            cpu_ms_per_batch: default_cpu_ms_per_batch(),
            memory_mb: default_memory_mb(),
            max_output_bytes: default_max_output_bytes(),
            max_fan_out: default_max_fan_out(),
        }
    }
}

/// `plugins[].on_error`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Stop the relay; nothing after the failed event is confirmed.
    #[default]
    Fail,
    /// Drop the event and go on.
    Skip,
    /// Send the event, as it entered the plugin, to `dead_letter_topic`.
    DeadLetter,
}

/// `plugins[].scope:`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginScope {
    /// Only events of these tables (`schema.table`, or a bare `table` in
    /// `public`), each one of `source.postgres.tables`. Optional, default all
    /// tables; when given, non-empty and without duplicates.
    #[serde(default)]
    pub tables: Option<Vec<TableName>>,
    /// Only events with these Debezium operations. Optional, default all;
    /// when given, non-empty and without duplicates.
    #[serde(default)]
    pub ops: Option<Vec<Op>>,
}

/// A Debezium operation, as in an event's `op` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Op {
    /// `c`: insert.
    #[serde(rename = "c")]
    Create,
    /// `u`: update.
    #[serde(rename = "u")]
    Update,
    /// `d`: delete.
    #[serde(rename = "d")]
    Delete,
    /// `r`: a row read by the snapshot.
    #[serde(rename = "r")]
    Read,
    /// `t`: truncate.
    #[serde(rename = "t")]
    Truncate,
    /// `m`: a logical decoding message.
    #[serde(rename = "m")]
    Message,
}

impl Op {
    /// The letter of Debezium's `op` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
            Op::Message => "m",
        }
    }
}

/// `plugins[].grants:`: capabilities given to the plugin; all off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginGrants {
    /// Host directories the plugin may open. Optional, default none.
    #[serde(default)]
    pub dirs: Vec<DirGrant>,
    /// Whether the plugin may open network connections. Default `false`.
    #[serde(default)]
    pub network: bool,
    /// Whether the plugin may read the real clocks. Default `false`.
    #[serde(default)]
    pub clock: bool,
    /// Whether the plugin may read random bytes. Default `false`.
    #[serde(default)]
    pub random: bool,
}

/// `plugins[].grants.dirs[]`: one host directory mounted into the plugin.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    /// The directory on the host. Required; a relative path is relative to
    /// the configuration file's directory. After loading, an absolute path.
    pub host: PathBuf,
    /// Where the plugin sees it: an absolute path such as `/data`, unique
    /// within the plugin. Required.
    pub guest: String,
    /// Whether the plugin may only read. Optional, default `true`.
    #[serde(default = "default_true")]
    pub readonly: bool,
}

fn default_true() -> bool {
    true
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("walrelay-state")
}
/// The password in `source.postgres.password_file`: its first line, without the line end.
pub fn read_password_file(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the password file {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(format!(
            "the password file {} is empty: its first line is the password",
            path.display()
        ));
    }
    Ok(line.to_string())
}

fn default_snapshot_workers() -> usize {
    1
}

fn default_server_timeout_ms() -> u64 {
    60_000
}

fn default_status_interval_ms() -> u64 {
    10_000
}
fn default_partitions() -> u32 {
    1
}
fn default_replication_factor() -> u16 {
    1
}
fn default_cpu_ms_per_batch() -> u64 {
    100
}
fn default_memory_mb() -> u32 {
    64
}
fn default_max_output_bytes() -> u64 {
    16 * 1024 * 1024
}
fn default_max_fan_out() -> u32 {
    16
}

/// A map whose values may be YAML strings, numbers or booleans, all kept as
/// strings.
fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    struct Scalar(String);

    impl<'de> Deserialize<'de> for Scalar {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct ScalarVisitor;
            impl Visitor<'_> for ScalarVisitor {
                type Value = Scalar;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string, number or boolean")
                }
                fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                    Ok(Scalar(v.to_string()))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                    Ok(Scalar(v.to_string()))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                    Ok(Scalar(v.to_string()))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                    Ok(Scalar(v.to_string()))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                    Ok(Scalar(v.to_string()))
                }
            }
            d.deserialize_any(ScalarVisitor)
        }
    }

    struct MapVisitor;
    impl<'de> Visitor<'de> for MapVisitor {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of settings")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((key, Scalar(value))) = map.next_entry::<String, Scalar>()? {
                if out.contains_key(&key) {
                    return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
                }
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    d.deserialize_any(MapVisitor)
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.rsplit_once('@') {
            if let Some((user, _)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
        return url.to_string();
    }
    // libpq key=value pairs.
    url.split_whitespace()
        .map(|pair| match pair.split_once('=') {
            Some(("password", _)) => "password=***".to_string(),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One problem of a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, as named to [`load`] or [`parse`].
    pub origin: String,
    /// 1-based line; 0 when the problem has no place in the file.
    pub line: usize,
    /// 1-based column (in characters); 0 when unknown.
    pub column: usize,
    /// The key path, like `sink.kafka.properties.acks` or
    /// `plugins[1].sha256`; empty for the whole file.
    pub path: String,
    /// What is wrong, and what was expected.
    pub message: String,
}

impl fmt::Display for Problem {
    /// `inventory.yaml:14:7: sink.kafka.properties.acks: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a configuration file, sorted by line; displayed
/// one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", display_problems(.problems))]
pub struct ConfigError {
    /// The problems, sorted by line and column.
    pub problems: Vec<Problem>,
}

impl ConfigError {
    /// A `ConfigError` with `problems` sorted by line and column.
    pub fn new(mut problems: Vec<Problem>) -> Self {
        problems.sort_by_key(|problem| (problem.line, problem.column));
        ConfigError { problems }
    }
}

fn display_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads, interpolates (with the process environment), parses and checks the
/// configuration file at `path`; relative paths inside it are resolved
/// against its directory.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|err| {
        ConfigError::new(vec![Problem {
            origin: origin.clone(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read the configuration file: {err}"),
        }])
    })?;
    parse(&origin, &text, &|name| std::env::var(name).ok())
}

/// Parses and checks configuration `text`, read from the file `origin`;
/// `env` looks environment variables up. Relative paths are resolved against
/// the directory of `origin` (taken as a path; the current directory when it
/// has none).
pub fn parse(
    origin: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let base = Path::new(origin)
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parse_relative_to(origin, text, base, env)
}

/// As [`parse`], resolving relative paths against `base_dir` (itself made
/// absolute against the current directory).
pub fn parse_relative_to(
    origin: &str,
    text: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let problem = |line: usize, column: usize, path: String, message: String| Problem {
        origin: origin.to_string(),
        line,
        column,
        path,
        message,
    };

    let (expanded, columns) = match interpolate::expand(text, env) {
        Ok(expanded) => expanded,
        Err(failures) => {
            let index = locate::index(text);
            let problems = failures
                .into_iter()
                .map(|failure| {
                    let path = index
                        .path_at(failure.line, failure.column)
                        .unwrap_or_default()
                        .to_string();
                    problem(failure.line, failure.column, path, failure.message)
                })
                .collect();
            return Err(ConfigError::new(problems));
        }
    };

    let index = locate::index(&expanded);
    let mut config: Config = match serde_yaml_ng::from_str(&expanded) {
        Ok(config) => config,
        Err(err) => {
            let (mut line, mut column, path, message) = split_serde_error(&err);
            // serde points a missing field at the first key of the mapping and a
            // repeated one at its start: point at the mapping's key, or the repeat.
            let better = if message.starts_with("missing field") {
                index.find(&path).filter(|_| !path.is_empty())
            } else if message.starts_with("duplicate") {
                index.repeated(&path)
            } else {
                None
            };
            if let Some(position) = better {
                (line, column) = position;
            }
            let column = columns.original(line, column);
            return Err(ConfigError::new(vec![problem(line, column, path, message)]));
        }
    };

    let base_dir = match std::path::absolute(base_dir) {
        Ok(dir) => dir,
        Err(err) => {
            let message = format!(
                "cannot make the configuration directory {} absolute: {err}",
                base_dir.display()
            );
            return Err(ConfigError::new(vec![problem(
                0,
                0,
                String::new(),
                message,
            )]));
        }
    };

    let found = validate::check(&mut config, &base_dir);
    if found.is_empty() {
        // Where each plugin's `config:` is (or its entry, without one): a plugin that refuses
        // its configuration is reported there.
        for (i, plugin) in config.plugins.iter_mut().enumerate() {
            let (line, column) = index
                .find(&format!("plugins[{i}].config"))
                .unwrap_or((0, 0));
            let column = if line > 0 {
                columns.original(line, column)
            } else {
                0
            };
            plugin.location = format!("{origin}:{line}:{column}: plugins[{i}] (`{}`)", plugin.name);
        }
        return Ok(config);
    }
    let problems = found
        .into_iter()
        .map(|(path, message)| {
            let (line, column) = index.find(&path).unwrap_or((0, 0));
            let column = if line > 0 {
                columns.original(line, column)
            } else {
                0
            };
            problem(line, column, path, message)
        })
        .collect();
    Err(ConfigError::new(problems))
}

/// Location, key path and message of a serde_yaml_ng error, whose text is
/// `path: message at line L column C` (no path at the top level).
fn split_serde_error(err: &serde_yaml_ng::Error) -> (usize, usize, String, String) {
    let mut text = err.to_string();
    let (line, column) = match err.location() {
        Some(location) => {
            // libyaml may add a context after it: `…, while parsing X at line…`.
            let at = format!(" at line {} column {}", location.line(), location.column());
            text = text.replacen(&at, "", 1);
            (location.line(), location.column())
        }
        None => (0, 0),
    };
    let mut path = String::new();
    if let Some((head, rest)) = text.split_once(": ") {
        let is_path =
            !head.is_empty() && !head.contains(|c: char| c.is_whitespace() || c == '`' || c == ',');
        if is_path {
            path = head.to_string();
            text = rest.to_string();
        }
    }
    // Name the unknown or repeated key itself.
    let key = text
        .strip_prefix("unknown field `")
        .or_else(|| text.strip_prefix("duplicate field `"))
        .or_else(|| text.strip_prefix("duplicate key `"));
    if let Some(rest) = key {
        if let Some((key, _)) = rest.split_once('`') {
            path = if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            };
        }
    }
    if text == "EOF while parsing a value" {
        text = "the file is empty: expected a mapping with `source`, `topic_prefix` and `sink`"
            .to_string();
    }
    (line, column, path, text)
}

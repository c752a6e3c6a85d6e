//! Capture: from a PostgreSQL slot to a stream of [`Item`]s — an initial snapshot taken from the
//! slot's exported snapshot, then the slot's changes, decoded from pgoutput.
//!
//! # Consistency
//! The slot is created with `EXPORT_SNAPSHOT`; the snapshot session imports that snapshot, so it
//! sees exactly the rows committed before the slot's consistent point, and the slot streams
//! exactly the transactions committed after it. Nothing is read twice or missed. Snapshot rows go
//! out first; streaming starts at the consistent point afterwards.
//!
//! # Positions
//! Each transaction ends with a [`Checkpoint::Lsn`] of its commit's end LSN; the sink confirms it
//! to PostgreSQL (through the `confirmed` watch) only once every event before it is acknowledged.
//! Between transactions the server's keepalive position is checkpointed the same way, so a slot
//! whose tables are idle still advances while other tables write. A non-transactional logical
//! decoding message arrives between transactions with its own LSN: it is followed by a
//! checkpoint of that LSN + 1 (PostgreSQL resends a non-transactional message whose LSN is not
//! below the confirmed position), so it is confirmed only once acknowledged and never resent
//! after that. Heartbeats (`heartbeat_interval`) are followed by the latest keepalive position
//! when no transaction is open.
//!
//! # Record kinds (Debezium's PostgreSQL connector, `RelationalChangeRecordEmitter` and
//! `PostgresStreamingChangeEventSource`)
//! * An update whose key changed (the old key from a `K` tuple under `DEFAULT`, or the old row
//!   under `FULL`) becomes a `d` of the old key (its `before` the old row as logged) and a `c` of
//!   the new one, with the `__debezium.newkey` / `__debezium.oldkey` headers
//!   (`RecordsStreamProducerIT.shouldReceiveChangesForUpdatesWithPKChanges`).
//! * A truncate becomes one `t` event per truncated table when `truncate_events` is on
//!   (Debezium's `skipped.operations` defaults to `t`: off by default). Truncates pass through
//!   the plugin chain like other row events (op `t`, no rows).
//! * Logical decoding messages are requested (`messages 'true'`, PostgreSQL 14+) when enabled and
//!   filtered by prefix here.
//! * `BEGIN` and `COMMIT` become [`Item::Begin`] / [`Item::End`] for transaction metadata.
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_postgres::Client;

use super::catalog::{self, quote_ident, quote_table, CatalogError};
use super::copy_text;
use super::incremental::{self, Chunk, ChunkRow, Incremental, IncrementalSettings};
use super::pgoutput::{self, Message, Relation, Tuple, TupleField};
use super::replication::{
    ReplicationConnection, ReplicationError, ReplicationStream, StreamMessage, SESSION_OPTIONS,
};
use super::text::{parse_value, parse_value_owned};
use crate::encode::json::{DebeziumJson, JsonOptions};
use crate::encode::records::{PK_UPDATE_NEWKEY_HEADER, PK_UPDATE_OLDKEY_HEADER};
use crate::event::{
    ChangeEvent, Header, LogicalMessage, Lsn, Op, SnapshotMarker, Source, TableSchema, Value,
};
use crate::pipeline::{Checkpoint, Item, TxBoundary};
use crate::state::{SnapshotState, StateError, StateStore};

/// How many items capture gathers before handing a batch to the chain.
pub const BATCH_SIZE: usize = 512;

/// How often the progress of a table's snapshot is logged.
const SNAPSHOT_PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

/// Logs how far a table's snapshot is: rows read, the planner's estimate, rate and time left.
fn log_snapshot_progress(table: &str, rows: u64, estimated: i64, started: Instant) {
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let rate = rows as f64 / secs;
    let estimated = u64::try_from(estimated).unwrap_or(0);
    if estimated > rows {
        tracing::info!(
            table,
            rows,
            estimated_rows = estimated,
            percent = format!("{:.1}", 100.0 * rows as f64 / estimated as f64),
            rows_per_second = rate as u64,
            eta_seconds = ((estimated - rows) as f64 / rate.max(1.0)) as u64,
            "snapshot progress"
        );
    } else {
        tracing::info!(
            table,
            rows,
            rows_per_second = rate as u64,
            "snapshot progress"
        );
    }
}

/// How often the slot's lag is logged while streaming.
const SLOT_LAG_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// When the tables are read (op `r`) from the slot's exported snapshot. The snapshot is always
/// the one a new slot exports, so it is consistent with the stream: nothing read twice, nothing
/// missed. Its completion is recorded per slot in the state directory once the broker
/// acknowledged every row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// When this slot has no completed snapshot (a new slot, or one whose snapshot was
    /// interrupted: dropped and taken again), then stream. A slot that disappeared after its
    /// snapshot (changes lost) is re-created and snapshotted, with a warning.
    Initial,
    /// Stream only: changes from the slot's creation on.
    Never,
    /// The snapshot, and no streaming: the slot is temporary (the server drops it when the
    /// relay's connection ends, so no WAL is retained), and the relay exits once the broker
    /// acknowledged every row. Started again after completion, it does nothing.
    InitialOnly,
    /// As `Initial`, and also when the slot can no longer stream: a slot PostgreSQL
    /// invalidated (its WAL removed) is dropped and the tables read again, where `Initial`
    /// stops with an error.
    WhenNeeded,
    /// At every start: the slot is dropped and created again, the tables read, then stream.
    Always,
}

/// Everything capture needs, resolved from the configuration.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    /// TLS for both connections (`sslmode` and the certificate files of the URL).
    pub tls: PgTls,
    pub pg: tokio_postgres::Config,
    pub slot: String,
    pub publication: String,
    /// `schema.table`, each part with optional `*` wildcards: resolved against the catalog at
    /// start; the tables are snapshotted in the order of the patterns that selected them.
    pub tables: Vec<String>,
    /// Patterns of tables left out of those `tables` selects.
    pub exclude_tables: Vec<String>,
    /// The columns events carry.
    pub columns: ColumnFilter,
    /// Whether walrelay creates or alters the publication.
    pub publication_mode: catalog::PublicationMode,
    pub snapshot: SnapshotMode,
    /// At most this long between standby status updates.
    pub status_interval: Duration,
    /// Emit a `t` event per truncated table (off: truncates are skipped, as Debezium's default
    /// `skipped.operations=t` does).
    pub truncate_events: bool,
    /// Stream logical decoding messages whose prefix the filter admits; `None`: not requested.
    pub logical_messages: Option<MessageFilter>,
    /// Emit a heartbeat this often while streaming; `None`: no heartbeats.
    pub heartbeat_interval: Option<Duration>,
    /// How long the server may stay silent while streaming before the connection is taken for
    /// dead (a keepalive is requested at half of it).
    pub server_timeout: Duration,
    /// Incremental snapshots on signal; `None`: off.
    pub incremental: Option<IncrementalSettings>,
    /// Connections that read the initial snapshot's tables in parallel (at least 1).
    pub snapshot_workers: usize,
    /// With each heartbeat, write a [`HEARTBEAT_MESSAGE_PREFIX`] logical decoding message into
    /// the source database (never published).
    pub heartbeat_message: bool,
}

/// TLS to PostgreSQL: the URL's `sslmode` and, unless it is `disable`, the connector built
/// from its certificate files (see [`super::tls`]).
#[derive(Clone)]
pub struct PgTls {
    pub mode: super::tls::SslMode,
    pub connector: Option<native_tls::TlsConnector>,
}

impl std::fmt::Debug for PgTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgTls({:?})", self.mode)
    }
}

/// The prefix of the logical decoding messages `heartbeat_message` writes; messages with it are
/// consumed by capture and never published.
pub const HEARTBEAT_MESSAGE_PREFIX: &str = "walrelay_heartbeat";

/// Which logical decoding messages are streamed, by prefix. Debezium's
/// `message.prefix.include.list` / `message.prefix.exclude.list` take regular expressions;
/// walrelay takes exact prefixes in which `*` matches any run of characters. At most one of the
/// lists is non-empty (checked with the configuration); both empty admit every prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl MessageFilter {
    pub fn admits(&self, prefix: &str) -> bool {
        if !self.include.is_empty() {
            return self.include.iter().any(|p| glob_matches(p, prefix));
        }
        !self.exclude.iter().any(|p| glob_matches(p, prefix))
    }
}

use crate::config::glob::matches as glob_matches;

/// Which columns events carry (`source.postgres.columns`): patterns `schema.table.column` with
/// `*` wildcards. At most one of the lists is non-empty (checked with the configuration). The
/// filter applies where capture builds a [`TableSchema`] (from the catalog for the snapshot, from
/// Relation messages while streaming), so a left-out column is in no event, schema or payload.
///
/// Columns are filtered client-side rather than with a publication column list (PostgreSQL 15's
/// `FOR TABLE t (a, b)`): it works on every supported server, with publications walrelay did not
/// create, and a pattern keeps applying to columns added later.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnFilter {
    /// Only these columns in the tables these patterns name; other tables keep every column.
    pub include: Vec<String>,
    /// Every column but these.
    pub exclude: Vec<String>,
}

impl ColumnFilter {
    /// Whether `schema.table.column` is carried.
    pub fn keeps(&self, schema: &str, table: &str, column: &str) -> bool {
        use crate::config::glob::{column_matches, column_pattern_names_table};
        if self
            .exclude
            .iter()
            .any(|p| column_matches(p, schema, table, column))
        {
            return false;
        }
        let constraining: Vec<&String> = self
            .include
            .iter()
            .filter(|p| column_pattern_names_table(p, schema, table))
            .collect();
        constraining.is_empty()
            || constraining
                .iter()
                .any(|p| column_matches(p, schema, table, column))
    }

    /// `table` without the left-out columns, and which of its columns are kept (`None`: all).
    /// A left-out key column is an error: it would change the events' keys.
    pub fn apply(&self, mut table: TableSchema) -> Result<(TableSchema, Option<Vec<bool>>)> {
        if self.include.is_empty() && self.exclude.is_empty() {
            return Ok((table, None));
        }
        let mask: Vec<bool> = table
            .columns
            .iter()
            .map(|c| self.keeps(&table.schema, &table.name, &c.name))
            .collect();
        if let Some(key) = table
            .columns
            .iter()
            .zip(&mask)
            .find(|(c, keep)| c.is_key && !**keep)
        {
            return Err(CaptureError::KeyColumnLeftOut {
                table: table.qualified_name(),
                column: key.0.name.clone(),
            });
        }
        if mask.iter().all(|keep| *keep) {
            return Ok((table, None));
        }
        let mut keep = mask.iter();
        table.columns.retain(|_| *keep.next().unwrap_or(&true));
        Ok((table, Some(mask)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Replication(#[from] ReplicationError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] tokio_postgres::Error),
    #[error("TLS to PostgreSQL failed (sslmode={mode}): {source}: {detail}. Check sslrootcert (the CA that signed the server's certificate) and, for verify-full, that the URL's host is a name or address in the certificate")]
    ConnectTls {
        mode: super::tls::SslMode,
        #[source]
        source: tokio_postgres::Error,
        detail: String,
    },
    #[error("snapshot of {table} failed: {source}")]
    Snapshot {
        table: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("the relay's role may not read {table} for the snapshot ({source}): run `GRANT SELECT ON {table} TO <the role of source.postgres.url>` (REPLICATION, or a managed service's replication role, does not grant it)")]
    SnapshotPrivilege {
        table: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("cannot decode the pgoutput message at LSN {lsn}: {source}")]
    Decode {
        lsn: Lsn,
        #[source]
        source: pgoutput::DecodeError,
    },
    #[error("{table}.{column} at {place}: {message}")]
    Value {
        table: String,
        column: String,
        place: String,
        message: String,
    },
    #[error("the replication stream at LSN {lsn}: {message}")]
    Stream { lsn: Lsn, message: String },
    #[error("source.postgres.columns leaves out {table}.{column}, a key column of {table}: the events' keys would change. Keep the column (narrow or remove the pattern)")]
    KeyColumnLeftOut { table: String, column: String },
    #[error(
        "replication slot {slot} exists (confirmed_flush_lsn {confirmed_flush}) but {state_dir} \
         has no record of walrelay creating it: it belongs to another consumer (a Debezium \
         connector being replaced, say) or the state directory was lost, and snapshot: {mode} \
         would drop it and lose that position. To take the slot over and stream from its \
         confirmed_flush_lsn without a snapshot, set source.postgres.snapshot: never; to start \
         afresh, drop it: SELECT pg_drop_replication_slot('{slot}')"
    )]
    ForeignSlot {
        slot: String,
        confirmed_flush: Lsn,
        state_dir: String,
        mode: &'static str,
    },
    #[error("{0}")]
    Incremental(String),
    #[error("the pipeline stopped while capture was running")]
    PipelineGone,
}

impl CaptureError {
    /// Whether running again later (from the last confirmed position) may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Replication(e) => e.is_transient(),
            Self::Catalog(e) => e.is_transient(),
            Self::Connect(e) | Self::Snapshot { source: e, .. } => catalog::is_transient_pg(e),
            Self::PipelineGone => true,
            _ => false,
        }
    }
}

type Result<T> = std::result::Result<T, CaptureError>;

/// How capture will start, decided from the slot and the recorded state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Create the slot; snapshot when the mode says so.
    NewSlot { snapshot: bool },
    /// Resume streaming from the slot's confirmed position.
    Resume,
    /// Nothing to do (`initial_only` after its snapshot).
    Finished,
}

/// Capture, connected and checked, ready to run.
pub struct Capture {
    settings: SourceSettings,
    state: StateStore,
    client: Client,
    database: String,
    tables: Vec<Arc<TableSchema>>,
    /// Which columns of each selected relation events carry, where some are left out.
    masks: HashMap<u32, Vec<bool>>,
    /// The relations whose changes are streamed.
    selected: HashSet<u32>,
    plan: Plan,
    /// `server_version_num`, e.g. 150004.
    server_version: i32,
    /// The signal table's relation (incremental snapshots on).
    signal: Option<Arc<TableSchema>>,
}

/// Drives a SQL connection in the background until it ends.
fn spawn_connection<F>(connection: F)
where
    F: std::future::Future<Output = std::result::Result<(), tokio_postgres::Error>>
        + Send
        + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "SQL connection ended");
        }
    });
}

/// Opens the SQL connection to the source (TLS as the URL says) and drives it in the
/// background.
pub async fn connect_sql(settings: &SourceSettings) -> Result<Client> {
    let mut pg = settings.pg.clone();
    pg.options(SESSION_OPTIONS);
    if pg.get_application_name().is_none() {
        pg.application_name("walrelay");
    }
    match &settings.tls.connector {
        Some(c) => {
            let tls = postgres_native_tls::MakeTlsConnector::new(c.clone());
            let (client, connection) = pg.connect(tls).await.map_err(|e| {
                // A failed handshake (an untrusted certificate, a wrong host name) does
                // not mend itself: not retried.
                match std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<native_tls::Error>())
                {
                    Some(cause) => CaptureError::ConnectTls {
                        mode: settings.tls.mode,
                        detail: cause.to_string(),
                        source: e,
                    },
                    None => CaptureError::Connect(e),
                }
            })?;
            spawn_connection(connection);
            Ok(client)
        }
        None => {
            let (client, connection) = pg
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(CaptureError::Connect)?;
            spawn_connection(connection);
            Ok(client)
        }
    }
}

/// Asks a running relay for an incremental snapshot of `tables` (`schema.table`; a bare name
/// means `public`): writes an `execute-snapshot` signal into the signal table, the row
/// Debezium's signalling writes. Returns the signal's id.
pub async fn signal_incremental_snapshot(
    settings: &SourceSettings,
    tables: &[String],
) -> Result<String> {
    let inc = settings.incremental.as_ref().ok_or_else(|| {
        CaptureError::Incremental(
            "source.postgres.incremental_snapshots is not configured: the relay reads no signals"
                .into(),
        )
    })?;
    let tables: Vec<String> = tables
        .iter()
        .map(|t| {
            if t.contains('.') {
                t.clone()
            } else {
                format!("public.{t}")
            }
        })
        .collect();
    let client = connect_sql(settings).await?;
    let id = format!("walrelay-{:x}", now_us());
    let data = serde_json::json!({"data-collections": tables, "type": "incremental"}).to_string();
    client
        .execute(
            &format!(
                "INSERT INTO {} (id, type, data) VALUES ($1, 'execute-snapshot', $2)",
                quote_table(&inc.signal_table)
            ),
            &[&id, &data],
        )
        .await
        .map_err(|source| CaptureError::Snapshot {
            table: format!("{} (writing the signal)", inc.signal_table),
            source,
        })?;
    Ok(id)
}

impl Capture {
    /// Connects, checks the server, ensures the publication and decides how to start.
    pub async fn prepare(settings: SourceSettings, state: StateStore) -> Result<Capture> {
        let client = connect_sql(&settings).await?;
        let database = catalog::check_server(&client).await?;
        let server_version: i32 = client
            .query_one("SELECT current_setting('server_version_num')::int4", &[])
            .await
            .map_err(CaptureError::Connect)?
            .get(0);
        let selection =
            catalog::resolve_tables(&client, &settings.tables, &settings.exclude_tables).await?;
        tracing::info!(tables = %selection.names.join(", "), "selected tables");
        let mut published = selection.names.clone();
        let signal = match &settings.incremental {
            None => None,
            Some(inc) => {
                if server_version < 140_000 {
                    return Err(CaptureError::Incremental(format!(
                        "incremental snapshots need PostgreSQL 14 or later (their watermarks are logical decoding messages); this server is {server_version}"
                    )));
                }
                let table = catalog::load_table_by_name(&client, &inc.signal_table)
                    .await
                    .map_err(|e| match e {
                        CatalogError::NoTable(t) => CaptureError::Incremental(format!(
                            "the signal table {t} (source.postgres.incremental_snapshots.signal_table) does not exist: create it, e.g. CREATE TABLE {t} (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048))"
                        )),
                        e => e.into(),
                    })?;
                if !published.contains(&inc.signal_table) {
                    published.push(inc.signal_table.clone());
                }
                Some(Arc::new(table))
            }
        };
        catalog::ensure_publication(
            &client,
            &settings.publication,
            &published,
            server_version,
            settings.publication_mode,
        )
        .await?;
        let mut tables = Vec::with_capacity(selection.names.len());
        let mut masks = HashMap::new();
        for t in &selection.names {
            let full = catalog::load_table_by_name(&client, t).await?;
            let (schema, mask) = settings.columns.apply(full)?;
            if !schema.has_key() {
                tracing::warn!(table = %t, "table has no primary key or replica identity index: its events get a null Kafka key");
            }
            if let Some(mask) = mask {
                let left_out = mask.iter().filter(|keep| !**keep).count();
                tracing::info!(table = %t, columns = schema.columns.len(), left_out, "columns left out by source.postgres.columns");
                masks.insert(schema.oid, mask);
            }
            tables.push(Arc::new(schema));
        }

        let slot = catalog::slot_info(&client, &settings.slot).await?;
        let recorded = state.load(&settings.slot)?;
        let done = recorded
            .as_ref()
            .is_some_and(|s| s.snapshot == SnapshotState::Done);
        let mode = settings.snapshot;
        let name = &settings.slot;
        let plan = match slot {
            None if mode == SnapshotMode::Never => Plan::NewSlot { snapshot: false },
            None if mode == SnapshotMode::InitialOnly && done => {
                tracing::info!(slot = %name, "snapshot: initial_only and the snapshot was taken: nothing to do");
                Plan::Finished
            }
            None => {
                if done && mode != SnapshotMode::Always {
                    tracing::warn!(slot = %name, "the replication slot is gone although its snapshot had completed: changes since were lost by PostgreSQL, so walrelay takes a new snapshot");
                }
                Plan::NewSlot { snapshot: true }
            }
            Some(info) => {
                let checked = catalog::check_slot(name, &info, &database);
                match (mode, checked) {
                    (
                        SnapshotMode::WhenNeeded | SnapshotMode::Always,
                        Err(CatalogError::SlotInvalidated { status, .. }),
                    ) => {
                        tracing::warn!(slot = %name, %status, "the replication slot was invalidated: dropping it and taking a new snapshot");
                        catalog::drop_slot(&client, name).await?;
                        Plan::NewSlot { snapshot: true }
                    }
                    (_, Err(e)) => return Err(e.into()),
                    (SnapshotMode::Always, Ok(())) => {
                        tracing::info!(slot = %name, "snapshot: always: dropping the slot and taking a new snapshot");
                        catalog::drop_slot(&client, name).await?;
                        Plan::NewSlot { snapshot: true }
                    }
                    (SnapshotMode::InitialOnly, Ok(())) => {
                        // A slot left from another mode: initial_only never streams, so it
                        // would only hold WAL back.
                        catalog::drop_slot(&client, name).await?;
                        if done {
                            tracing::info!(slot = %name, "snapshot: initial_only and the snapshot was taken: dropped the leftover slot, nothing to do");
                            Plan::Finished
                        } else {
                            Plan::NewSlot { snapshot: true }
                        }
                    }
                    (SnapshotMode::Initial | SnapshotMode::WhenNeeded, Ok(()))
                        if recorded.is_none() =>
                    {
                        // walrelay records a slot before creating it, so a slot without a
                        // record is not one of its own: never drop another consumer's position.
                        return Err(CaptureError::ForeignSlot {
                            slot: name.clone(),
                            confirmed_flush: info.confirmed_flush.unwrap_or_default(),
                            state_dir: state.dir().display().to_string(),
                            mode: if mode == SnapshotMode::Initial {
                                "initial"
                            } else {
                                "when_needed"
                            },
                        });
                    }
                    (SnapshotMode::Initial | SnapshotMode::WhenNeeded, Ok(())) if !done => {
                        tracing::warn!(slot = %name, "the initial snapshot of this slot did not complete: dropping the slot and taking the snapshot again");
                        catalog::drop_slot(&client, name).await?;
                        Plan::NewSlot { snapshot: true }
                    }
                    (_, Ok(())) => {
                        tracing::info!(slot = %name, confirmed_flush = %info.confirmed_flush.unwrap_or_default(), "resuming from the replication slot");
                        Plan::Resume
                    }
                }
            }
        };
        Ok(Capture {
            settings,
            state,
            client,
            database,
            tables,
            masks,
            selected: selection.oids,
            plan,
            server_version,
            signal,
        })
    }

    /// The database name, for the events' `source.db`.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Snapshots when planned, then streams until `shutdown` turns true or an error occurs.
    /// `confirmed` carries the position whose events are all acknowledged.
    pub async fn run(
        self,
        out: mpsc::Sender<Vec<Item>>,
        mut confirmed: watch::Receiver<Lsn>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<()> {
        let Capture {
            settings,
            state,
            client,
            database: _,
            tables,
            masks,
            selected,
            plan,
            server_version,
            signal,
        } = self;
        if plan == Plan::Finished {
            return Ok(());
        }
        let only = settings.snapshot == SnapshotMode::InitialOnly;
        let mut repl = ReplicationConnection::connect(&settings.pg, &settings.tls).await?;
        let start = match plan {
            Plan::Finished => unreachable!("returned above"),
            Plan::Resume => Lsn::ZERO, // the server starts from the slot's confirmed_flush_lsn
            Plan::NewSlot { snapshot } => {
                if snapshot {
                    // Recorded before the slot exists: a slot found without a record is
                    // another consumer's (see `CaptureError::ForeignSlot`).
                    state.snapshot_started(&settings.slot, Lsn::ZERO)?;
                }
                let created = repl
                    .create_slot_exporting_snapshot(&settings.slot, only)
                    .await?;
                tracing::info!(slot = %settings.slot, consistent_point = %created.consistent_point, "created replication slot");
                if snapshot {
                    state.snapshot_started(&settings.slot, created.consistent_point)?;
                    let Some(rows) = snapshot_tables(
                        &client,
                        &settings,
                        &created.snapshot_name,
                        created.consistent_point,
                        &tables,
                        &out,
                        &shutdown,
                    )
                    .await?
                    else {
                        tracing::info!(
                            "stopped during the initial snapshot; it is taken again on restart"
                        );
                        return Ok(());
                    };
                    tracing::info!(
                        rows,
                        tables = tables.len(),
                        "initial snapshot read; streaming starts once the broker acknowledged it"
                    );
                    send(
                        &out,
                        vec![Item::Checkpoint(Checkpoint::SnapshotDone {
                            slot: settings.slot.clone(),
                            consistent_point: created.consistent_point,
                        })],
                    )
                    .await?;
                    if only {
                        // The relay exits once every row is acknowledged; the temporary slot
                        // goes with this connection.
                        tracing::info!("snapshot: initial_only: not streaming");
                        return Ok(());
                    }
                } else {
                    state.snapshot_done(&settings.slot, created.consistent_point)?;
                }
                created.consistent_point
            }
        };
        let mut options = vec![
            ("proto_version", "1".to_string()),
            ("publication_names", quote_ident(&settings.publication)),
        ];
        let mut messages = settings.logical_messages.clone();
        if messages.is_some() || signal.is_some() {
            if server_version >= 140_000 {
                options.push(("messages", "true".to_string()));
            } else {
                tracing::warn!(
                    server_version,
                    "logical decoding messages need PostgreSQL 14 or later: not streamed"
                );
                messages = None;
            }
        }
        let stream = repl.start_logical(&settings.slot, start, &options).await?;
        let incremental = match (&settings.incremental, &signal) {
            (Some(inc), Some(table)) => {
                let progress = state.load_incremental(&settings.slot)?;
                if let Some(p) = &progress {
                    tracing::info!(tables = %p.tables.join(", "), after_key = ?p.last_key, "resuming the incremental snapshot");
                }
                Some(Incremental::new(inc.clone(), table.oid, progress))
            }
            _ => None,
        };
        let mut streamer = Streamer {
            slot: settings.slot.clone(),
            signal,
            incremental,
            client,
            relations: tables.iter().map(|t| (t.oid, t.clone())).collect(),
            masks,
            selected,
            columns: settings.columns.clone(),
            tx: None,
            last_commit: None,
            last_checkpoint: Lsn::ZERO,
            last_keepalive: Lsn::ZERO,
            truncate_events: settings.truncate_events,
            messages,
            heartbeat_message: settings.heartbeat_message,
            key_encoder: DebeziumJson::new(JsonOptions {
                record: crate::encode::envelope::RecordOptions {
                    topic_prefix: String::new(),
                    database: String::new(),
                    connector_version: String::new(),
                    unknown_types: crate::encode::columns::UnknownTypes::Text,
                },
                schemas: false,
            }),
        };
        streamer
            .stream(stream, &settings, out, &mut confirmed, &mut shutdown)
            .await
    }
}

async fn send(out: &mpsc::Sender<Vec<Item>>, items: Vec<Item>) -> Result<()> {
    out.send(items)
        .await
        .map_err(|_| CaptureError::PipelineGone)
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// A SQL string literal (standard_conforming_strings, PostgreSQL's default since 9.1).
fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The rows of a `COPY … TO STDOUT` (text format), one line each, split off the received
/// chunks without copying.
struct CopyLines {
    copy: std::pin::Pin<Box<tokio_postgres::CopyOutStream>>,
    buf: BytesMut,
    done: bool,
}

impl CopyLines {
    fn new(copy: tokio_postgres::CopyOutStream) -> Self {
        CopyLines {
            copy: Box::pin(copy),
            buf: BytesMut::new(),
            done: false,
        }
    }

    /// The next row's line (with its `\n`), `None` at the end.
    async fn next(&mut self) -> std::result::Result<Option<BytesMut>, tokio_postgres::Error> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                return Ok(Some(self.buf.split_to(pos + 1)));
            }
            if self.done {
                return Ok(None);
            }
            match self.copy.next().await {
                Some(chunk) => self.buf.extend_from_slice(&chunk?),
                None => self.done = true,
            }
        }
    }

    /// Checks that the output ended on a row boundary.
    fn finish(&self, table: &str, place: &str) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(CaptureError::Value {
                table: table.to_string(),
                column: "(row)".into(),
                place: place.into(),
                message: "COPY output ended in the middle of a row".into(),
            })
        }
    }
}

/// The snapshot markers (Debezium's `source.snapshot`) of a snapshot whose tables may be read
/// in parallel: the first row emitted is `first`, every other table's first row
/// `first_in_data_collection`; the last row of the table that finishes last is `last`, every
/// other table's last row `last_in_data_collection`. Read by one reader, in table order, this
/// is Debezium's marking.
struct Markers {
    first_taken: std::sync::atomic::AtomicBool,
    tables_left: std::sync::atomic::AtomicUsize,
}

/// What a snapshot reader needs besides its connection.
struct SnapshotRun<'a> {
    consistent_point: Lsn,
    tx_id: i64,
    markers: Markers,
    queue: std::sync::Mutex<std::collections::VecDeque<Arc<TableSchema>>>,
    out: &'a mpsc::Sender<Vec<Item>>,
    shutdown: &'a watch::Receiver<bool>,
}

fn snapshot_error(table: &str) -> impl FnOnce(tokio_postgres::Error) -> CaptureError {
    let table = table.to_string();
    move |source: tokio_postgres::Error| {
        if source.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) {
            CaptureError::SnapshotPrivilege { table, source }
        } else {
            CaptureError::Snapshot { table, source }
        }
    }
}

/// Opens a repeatable-read transaction on `client` that sees the slot's exported snapshot.
async fn import_snapshot(client: &Client, snapshot_name: &str) -> Result<()> {
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT '{}'",
            snapshot_name.replace('\'', "''")
        ))
        .await
        .map_err(snapshot_error("(import of the exported snapshot)"))
}

/// Reads every table inside the exported snapshot with `COPY … TO STDOUT` (text format: the same
/// output functions, hence the same parsers, as pgoutput) and emits `r` events with Debezium's
/// snapshot markers. With `snapshot_workers` > 1, that many connections import the same
/// snapshot and take tables from a shared queue, each table read by one of them in order.
/// `None` when shutdown interrupted it.
async fn snapshot_tables(
    client: &Client,
    settings: &SourceSettings,
    snapshot_name: &str,
    consistent_point: Lsn,
    tables: &[Arc<TableSchema>],
    out: &mpsc::Sender<Vec<Item>>,
    shutdown: &watch::Receiver<bool>,
) -> Result<Option<u64>> {
    import_snapshot(client, snapshot_name).await?;
    let tx_id: i64 = client
        .query_one("SELECT txid_current()", &[])
        .await
        .map_err(snapshot_error("(snapshot transaction id)"))?
        .get(0);
    let workers = settings.snapshot_workers.clamp(1, tables.len().max(1));
    // The other readers' connections, each inside the same snapshot (imported while the
    // replication connection that exported it stays idle).
    let mut extra = Vec::with_capacity(workers - 1);
    for _ in 1..workers {
        let c = connect_sql(settings).await?;
        import_snapshot(&c, snapshot_name).await?;
        extra.push(c);
    }
    if workers > 1 {
        tracing::info!(
            readers = workers,
            tables = tables.len(),
            "snapshot read in parallel"
        );
    }
    let run = SnapshotRun {
        consistent_point,
        tx_id,
        markers: Markers {
            first_taken: false.into(),
            tables_left: tables.len().into(),
        },
        queue: std::sync::Mutex::new(tables.iter().cloned().collect()),
        out,
        shutdown,
    };
    let readers = std::iter::once(client)
        .chain(extra.iter())
        .map(|c| snapshot_reader(c, &run));
    let totals = futures_util::future::try_join_all(readers).await?;
    for c in std::iter::once(client).chain(extra.iter()) {
        c.batch_execute("COMMIT")
            .await
            .map_err(snapshot_error("(end of snapshot)"))?;
    }
    Ok(totals.into_iter().sum())
}

/// One reader of a snapshot: reads tables from the queue until it is empty. `None` when
/// shutdown interrupted it.
async fn snapshot_reader(client: &Client, run: &SnapshotRun<'_>) -> Result<Option<u64>> {
    let mut total = 0;
    loop {
        let next = run.queue.lock().expect("snapshot queue").pop_front();
        let Some(table) = next else {
            return Ok(Some(total));
        };
        match snapshot_table(client, &table, run).await? {
            Some(rows) => total += rows,
            None => return Ok(None),
        }
    }
}

/// Reads one table with `COPY … TO STDOUT` and hands its rows on in batches.
async fn snapshot_table(
    client: &Client,
    table: &Arc<TableSchema>,
    run: &SnapshotRun<'_>,
) -> Result<Option<u64>> {
    use std::sync::atomic::Ordering;
    let name = table.qualified_name();
    let snap_err = snapshot_error;
    let cols: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let sql = format!(
        "COPY (SELECT {} FROM {}) TO STDOUT",
        cols.join(", "),
        quote_table(&name)
    );
    // The planner's estimate (pg_class.reltuples: -1 or 0 before the first ANALYZE), for the
    // progress reports only.
    let estimated: i64 = client
        .query_one(
            "SELECT greatest(reltuples, 0)::int8 FROM pg_class WHERE oid = $1",
            &[&table.oid],
        )
        .await
        .map_err(snap_err(&name))?
        .get(0);
    tracing::info!(table = %name, estimated_rows = estimated, "snapshot of table started");
    let metrics = crate::metrics::metrics();
    let estimated_rows = u64::try_from(estimated).unwrap_or(0);
    metrics.snapshot_progress(&name, 0, estimated_rows, false);
    let started = Instant::now();
    let mut reported = Instant::now();
    let mut lines = CopyLines::new(
        client
            .copy_out(sql.as_str())
            .await
            .map_err(snap_err(&name))?,
    );
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    let mut pending: Option<Vec<Value>> = None;
    let mut row_index: u64 = 0;
    let emit = |row: Vec<Value>, index: u64, last_in_table: bool, batch: &mut Vec<Item>| {
        let first_in_table = index == 0;
        let marker = if last_in_table && run.markers.tables_left.fetch_sub(1, Ordering::SeqCst) == 1
        {
            SnapshotMarker::Last
        } else if first_in_table && !run.markers.first_taken.swap(true, Ordering::SeqCst) {
            SnapshotMarker::First
        } else if last_in_table {
            SnapshotMarker::LastInDataCollection
        } else if first_in_table {
            SnapshotMarker::FirstInDataCollection
        } else {
            SnapshotMarker::True
        };
        batch.push(read_event(
            table.clone(),
            row,
            Source {
                lsn: run.consistent_point,
                last_commit_lsn: None,
                tx_id: Some(run.tx_id),
                ts_us: now_us(),
                snapshot: marker,
            },
        ));
    };
    while let Some(line) = lines.next().await.map_err(snap_err(&name))? {
        let (row, _) = copy_row(table, &line, "snapshot")?;
        if let Some(prev) = pending.replace(row) {
            emit(prev, row_index, false, &mut batch);
            row_index += 1;
            if batch.len() >= BATCH_SIZE {
                if *run.shutdown.borrow() {
                    return Ok(None);
                }
                send(
                    run.out,
                    std::mem::replace(&mut batch, Vec::with_capacity(BATCH_SIZE)),
                )
                .await?;
                metrics.snapshot_progress(&name, row_index, estimated_rows, false);
                if reported.elapsed() >= SNAPSHOT_PROGRESS_INTERVAL {
                    reported = Instant::now();
                    log_snapshot_progress(&name, row_index, estimated, started);
                }
            }
        }
    }
    lines.finish(&name, "snapshot")?;
    match pending.take() {
        Some(last) => {
            emit(last, row_index, true, &mut batch);
            row_index += 1;
        }
        // An empty table still counts as finished.
        None => {
            run.markers.tables_left.fetch_sub(1, Ordering::SeqCst);
        }
    }
    if !batch.is_empty() {
        send(run.out, batch).await?;
    }
    metrics.snapshot_progress(&name, row_index, estimated_rows, true);
    tracing::info!(
        table = %name,
        rows = row_index,
        seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
        "snapshot of table read"
    );
    Ok(Some(row_index))
}

/// The fields of a COPY text row, borrowed from its line; `None` for NULL.
type CopyFields<'a> = Vec<Option<Cow<'a, str>>>;

/// One line of `COPY … TO STDOUT` (text format) → the row's typed values, and its fields'
/// text.
fn copy_row<'a>(
    table: &TableSchema,
    line: &'a [u8],
    place: &str,
) -> Result<(Vec<Value>, CopyFields<'a>)> {
    let mut fields = Vec::with_capacity(table.columns.len());
    copy_text::parse_row(line, &mut fields).map_err(|e| CaptureError::Value {
        table: table.qualified_name(),
        column: "(row)".into(),
        place: place.into(),
        message: e.to_string(),
    })?;
    let row = row_values(table, fields.iter().map(|f| f.as_deref()), place)?;
    Ok((row, fields))
}

/// A row read by a snapshot (op `r`) at `source`.
fn read_event(table: Arc<TableSchema>, row: Vec<Value>, source: Source) -> Item {
    Item::Event(ChangeEvent {
        op: Op::Read,
        table,
        before: None,
        after: Some(row),
        source,
        topic: None,
        headers: Vec::new(),
    })
}

/// Text values of one row → typed values, positional against `table`.
fn row_values<'a>(
    table: &TableSchema,
    texts: impl ExactSizeIterator<Item = Option<&'a str>>,
    place: &str,
) -> Result<Vec<Value>> {
    if texts.len() != table.columns.len() {
        return Err(CaptureError::Value {
            table: table.qualified_name(),
            column: "(row)".into(),
            place: place.into(),
            message: format!("{} values for {} columns", texts.len(), table.columns.len()),
        });
    }
    table
        .columns
        .iter()
        .zip(texts)
        .map(|(col, text)| match text {
            None => Ok(Value::Null),
            Some(t) => parse_value(col, t).map_err(|e| CaptureError::Value {
                table: table.qualified_name(),
                column: col.name.clone(),
                place: place.into(),
                message: e.to_string(),
            }),
        })
        .collect()
}

/// The open transaction while streaming.
struct OpenTx {
    xid: u32,
    commit_ts_us: i64,
}

struct Streamer {
    slot: String,
    /// The signal table (incremental snapshots on).
    signal: Option<Arc<TableSchema>>,
    incremental: Option<Incremental>,
    client: Client,
    relations: HashMap<u32, Arc<TableSchema>>,
    /// Per relation with left-out columns, which of the stream's columns events carry.
    masks: HashMap<u32, Vec<bool>>,
    /// The selected relations (and their partitions); changes of others are ignored (a
    /// publication for all tables, or one that publishes more).
    selected: HashSet<u32>,
    columns: ColumnFilter,
    tx: Option<OpenTx>,
    last_commit: Option<Lsn>,
    last_checkpoint: Lsn,
    /// The latest keepalive position (what the server has decoded up to).
    last_keepalive: Lsn,
    truncate_events: bool,
    messages: Option<MessageFilter>,
    /// Write a [`HEARTBEAT_MESSAGE_PREFIX`] message with each heartbeat.
    heartbeat_message: bool,
    /// Encodes keys for the headers of primary-key changes (only the payload is used, so the
    /// options do not matter).
    key_encoder: DebeziumJson,
}

impl Streamer {
    async fn stream(
        &mut self,
        mut stream: ReplicationStream,
        settings: &SourceSettings,
        out: mpsc::Sender<Vec<Item>>,
        confirmed: &mut watch::Receiver<Lsn>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        let mut status = StatusTimer::new(settings.status_interval);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat = settings.heartbeat_interval.map(|every| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        // The slot's lag (the server's WAL end from its keepalives minus the acknowledged
        // position), logged so a growing backlog is visible.
        let mut lag = tokio::time::interval_at(
            tokio::time::Instant::now() + SLOT_LAG_LOG_INTERVAL,
            SLOT_LAG_LOG_INTERVAL,
        );
        lag.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch: Vec<Item> = Vec::with_capacity(BATCH_SIZE);
        // When the server last sent anything, and whether a keepalive was asked for since.
        let mut last_heard = Instant::now();
        let mut pinged = false;
        'stream: loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                _ = lag.tick() => {
                    let c = *confirmed.borrow();
                    if self.last_keepalive > Lsn::ZERO {
                        tracing::info!(
                            slot = %settings.slot,
                            server_wal_end = %self.last_keepalive,
                            confirmed = %c,
                            "slot lag: {} bytes",
                            self.last_keepalive.0.saturating_sub(c.0)
                        );
                    }
                }
                _ = tick.tick() => {
                    let c = *confirmed.borrow();
                    let quiet = last_heard.elapsed();
                    if quiet >= settings.server_timeout {
                        return Err(CaptureError::Replication(ReplicationError::Io(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!(
                                "the server sent nothing for {} ms, not even an answer to a keepalive request (source.postgres.server_timeout_ms): taking the connection for dead",
                                quiet.as_millis()
                            ),
                        ))));
                    }
                    if quiet >= settings.server_timeout / 2 && !pinged {
                        stream.send_status(c, true).await?;
                        pinged = true;
                    }
                    status.maybe_send(&mut stream, c).await?;
                    self.read_chunk_if_due().await?;
                }
                _ = async {
                    match heartbeat.as_mut() {
                        Some(h) => { h.tick().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => {
                    self.heartbeat(&out)?;
                    if self.heartbeat_message {
                        self.emit_heartbeat_message().await;
                    }
                }
                msg = stream.next() => {
                    let mut msg = msg?;
                    last_heard = Instant::now();
                    pinged = false;
                    // Drain what is already buffered before handing the batch on.
                    loop {
                        let confirmed_now = *confirmed.borrow();
                        self.handle(msg, &mut batch, &mut stream, confirmed_now).await?;
                        if batch.len() >= BATCH_SIZE {
                            break;
                        }
                        match stream.next().now_or_never() {
                            Some(next) => msg = next?,
                            None => break,
                        }
                    }
                    if !batch.is_empty() {
                        let items = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_SIZE));
                        // Wait for room downstream, answering the server meanwhile so that a
                        // stalled broker does not make the walsender time us out.
                        let mut permit = std::pin::pin!(out.reserve());
                        loop {
                            tokio::select! {
                                p = &mut permit => { p.map_err(|_| CaptureError::PipelineGone)?.send(items); break; }
                                _ = tick.tick() => {
                                    let c = *confirmed.borrow();
                                    status.maybe_send(&mut stream, c).await?
                                }
                                _ = shutdown.changed() => break 'stream,
                            }
                        }
                        // Nothing was read while waiting for room downstream.
                        last_heard = Instant::now();
                    }
                    self.read_chunk_if_due().await?;
                }
            }
        }
        // Closing the channel lets delivery drain what is in flight and then drop its
        // `confirmed` sender, which `finish` waits for.
        drop(out);
        self.finish(stream, confirmed).await
    }

    /// On shutdown: wait for the sink to drain (it drops the `confirmed` sender when done), report
    /// the final confirmed position, close the connection.
    async fn finish(
        &mut self,
        mut stream: ReplicationStream,
        confirmed: &mut watch::Receiver<Lsn>,
    ) -> Result<()> {
        let deadline = tokio::time::sleep(Duration::from_secs(30));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                changed = confirmed.changed() => if changed.is_err() { break },
                _ = &mut deadline => break,
                // Keep reading so the server's keepalives are answered; messages are not used.
                m = stream.next() => if m.is_err() { break },
            }
        }
        let last = *confirmed.borrow();
        if last > Lsn::ZERO {
            stream.send_status(last, false).await?;
        }
        tracing::info!(confirmed = %last, "capture stopped");
        stream.close().await;
        Ok(())
    }

    /// Hands a heartbeat to delivery, with the latest keepalive position when no transaction is
    /// open (so an idle database's slot advances once the heartbeat is acknowledged). Skipped,
    /// not waited for, while delivery is backed up: a heartbeat is not worth stalling capture.
    fn heartbeat(&mut self, out: &mpsc::Sender<Vec<Item>>) -> Result<()> {
        let mut items = vec![Item::Heartbeat];
        let advance = self.tx.is_none() && self.last_keepalive > self.last_checkpoint;
        if advance {
            items.push(Item::Checkpoint(Checkpoint::Lsn(self.last_keepalive)));
        }
        match out.try_send(items) {
            Ok(()) => {
                if advance {
                    self.last_checkpoint = self.last_keepalive;
                }
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!("delivery is backed up: heartbeat skipped");
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(CaptureError::PipelineGone),
        }
    }

    /// Writes a non-transactional logical decoding message into the source database: it is
    /// decoded at its own LSN, in order with the commits around it.
    async fn emit_message(
        &self,
        prefix: &str,
        content: &str,
    ) -> std::result::Result<(), tokio_postgres::Error> {
        self.client
            .execute(
                "SELECT pg_logical_emit_message(false, $1, $2)",
                &[&prefix, &content],
            )
            .await
            .map(drop)
    }

    /// Writes a [`HEARTBEAT_MESSAGE_PREFIX`] message into the source database. A failure is
    /// logged and does not stop capture: the heartbeat record and keepalives still move the slot.
    async fn emit_heartbeat_message(&self) {
        if let Err(e) = self.emit_message(HEARTBEAT_MESSAGE_PREFIX, "").await {
            tracing::warn!(error = %e, "source.postgres.heartbeat_message: cannot write the heartbeat message; the role needs EXECUTE on pg_logical_emit_message(boolean, text, text)");
        }
    }

    async fn handle(
        &mut self,
        msg: StreamMessage,
        batch: &mut Vec<Item>,
        stream: &mut ReplicationStream,
        confirmed: Lsn,
    ) -> Result<()> {
        match msg {
            StreamMessage::Keepalive {
                wal_end,
                reply_requested,
            } => {
                self.last_keepalive = self.last_keepalive.max(wal_end);
                crate::metrics::metrics()
                    .server_wal_end
                    .fetch_max(wal_end.0, std::sync::atomic::Ordering::Relaxed);
                if self.tx.is_none() && wal_end > self.last_checkpoint {
                    // Nothing of ours is pending before wal_end: confirm it once what precedes is acknowledged.
                    self.last_checkpoint = wal_end;
                    batch.push(Item::Checkpoint(Checkpoint::Lsn(wal_end)));
                }
                if reply_requested {
                    stream.send_status(confirmed, false).await?;
                }
                Ok(())
            }
            StreamMessage::XLogData {
                wal_start, data, ..
            } => {
                let message =
                    pgoutput::decode(&data, false).map_err(|source| CaptureError::Decode {
                        lsn: wal_start,
                        source,
                    })?;
                self.apply(message, wal_start, batch).await
            }
        }
    }

    async fn apply(&mut self, message: Message, lsn: Lsn, batch: &mut Vec<Item>) -> Result<()> {
        let first_new = batch.len();
        if let Message::Insert { relation, new, .. } = &message {
            if self.signal.as_ref().is_some_and(|s| s.oid == *relation) {
                self.on_signal(new, lsn);
                return Ok(());
            }
        }
        self.apply_message(message, lsn, batch).await?;
        // Between a chunk's watermarks, the stream's changes of its table win.
        if let Some(chunk) = self.incremental.as_mut().and_then(|i| i.chunk.as_mut()) {
            for item in &batch[first_new..] {
                if let Item::Event(ev) = item {
                    chunk.yield_to(ev);
                }
            }
        }
        Ok(())
    }

    async fn apply_message(
        &mut self,
        message: Message,
        lsn: Lsn,
        batch: &mut Vec<Item>,
    ) -> Result<()> {
        match message {
            Message::Begin { xid, commit_ts_us, .. } => {
                self.tx = Some(OpenTx { xid, commit_ts_us });
                batch.push(Item::Begin(TxBoundary {
                    tx_id: i64::from(xid),
                    commit_ts_us,
                }));
            }
            Message::Commit { commit_lsn, end_lsn, commit_ts_us, .. } => {
                if let Some(tx) = self.tx.take() {
                    batch.push(Item::End(TxBoundary {
                        tx_id: i64::from(tx.xid),
                        commit_ts_us,
                    }));
                }
                self.last_commit = Some(commit_lsn);
                self.last_checkpoint = self.last_checkpoint.max(end_lsn);
                batch.push(Item::Checkpoint(Checkpoint::Lsn(end_lsn)));
            }
            Message::Relation(rel) if !self.selected.contains(&rel.oid) => {
                tracing::debug!(table = %format!("{}.{}", rel.namespace, rel.name), "ignoring a relation that is not selected");
            }
            Message::Insert { relation, .. }
            | Message::Update { relation, .. }
            | Message::Delete { relation, .. }
                if !self.selected.contains(&relation) => {}
            Message::Relation(rel) => {
                let schema = self.relation_schema(&rel, lsn).await?;
                let (schema, mask) = self.columns.apply(schema)?;
                match mask {
                    Some(mask) => self.masks.insert(rel.oid, mask),
                    None => self.masks.remove(&rel.oid),
                };
                let keep = self.relations.get(&rel.oid).is_some_and(|old| **old == schema);
                if !keep {
                    // Relation messages carry no WAL position of their own (lsn is 0/0).
                    tracing::info!(table = %schema.qualified_name(), columns = schema.columns.len(), replica_identity = ?schema.replica_identity, "table schema from the replication stream");
                    self.relations.insert(rel.oid, Arc::new(schema));
                }
            }
            Message::Insert { relation, new, .. } => {
                let table = self.table(relation, lsn)?;
                let after = self.values(&table, new, lsn)?;
                batch.push(self.event(Op::Create, table, None, Some(after), lsn));
            }
            Message::Update { relation, old, new, .. } => {
                let table = self.table(relation, lsn)?;
                let before = old.map(|o| self.values(&table, o.tuple, lsn)).transpose()?;
                let mut after = self.values(&table, new, lsn)?;
                // An unchanged TOASTed value that the old row (REPLICA IDENTITY FULL) carries is
                // not unknown: fill it in.
                if let Some(before) = &before {
                    for (a, b) in after.iter_mut().zip(before) {
                        if *a == Value::UnchangedToast && *b != Value::UnchangedToast {
                            *a = b.clone();
                        }
                    }
                }
                match before {
                    Some(old) if key_changed(&table, &old, &after) => {
                        self.key_change(table, old, after, lsn, batch)?;
                    }
                    before => batch.push(self.event(Op::Update, table, before, Some(after), lsn)),
                }
            }
            Message::Delete { relation, old, .. } => {
                let table = self.table(relation, lsn)?;
                let before = self.values(&table, old.tuple, lsn)?;
                batch.push(self.event(Op::Delete, table, Some(before), None, lsn));
            }
            // Off by default, as in Debezium (skipped.operations=t).
            Message::Truncate { relations, .. } => {
                if self.truncate_events {
                    for oid in relations.into_iter().filter(|oid| self.selected.contains(oid)) {
                        let table = self.table(oid, lsn)?;
                        batch.push(self.event(Op::Truncate, table, None, None, lsn));
                    }
                }
            }
            Message::Message {
                transactional,
                lsn: message_lsn,
                prefix,
                content,
                ..
            } => self.message(transactional, message_lsn, prefix, content, batch),
            // Origins and types need no event.
            Message::Type { .. } | Message::Origin { .. } => {}
            Message::StreamStart { .. } | Message::StreamStop | Message::StreamCommit { .. } | Message::StreamAbort { .. } => {
                return Err(CaptureError::Stream {
                    lsn,
                    message: "streamed in-progress transactions arrived although protocol version 1 was requested".into(),
                })
            }
        }
        Ok(())
    }

    /// A row inserted into the signal table: an `execute-snapshot` signal queues its tables for
    /// the incremental snapshot. Signals are never published.
    fn on_signal(&mut self, tuple: &Tuple, lsn: Lsn) {
        let (Some(signal), Some(inc)) = (&self.signal, self.incremental.as_mut()) else {
            return;
        };
        let field = |name: &str| -> Option<String> {
            let i = signal.columns.iter().position(|c| c.name == name)?;
            match tuple.0.get(i)? {
                TupleField::Text(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            }
        };
        let id = field("id").unwrap_or_default();
        let kind = field("type").unwrap_or_default();
        match incremental::parse_signal(&kind, field("data").as_deref()) {
            Ok(Some(tables)) => {
                let (known, unknown): (Vec<String>, Vec<String>) =
                    tables.into_iter().partition(|t| {
                        self.relations
                            .values()
                            .any(|r| r.qualified_name() == *t && r.has_key())
                    });
                if !unknown.is_empty() {
                    tracing::warn!(signal = %id, %lsn, tables = %unknown.join(", "), "incremental snapshot signal: walrelay does not capture these tables, or they have no key: left out");
                }
                if !known.is_empty() {
                    tracing::info!(signal = %id, %lsn, tables = %known.join(", "), "incremental snapshot requested");
                    inc.request(known);
                }
            }
            Ok(None) => {
                tracing::info!(signal = %id, %lsn, r#type = %kind, "signal ignored: walrelay acts on execute-snapshot signals")
            }
            Err(e) => {
                tracing::warn!(signal = %id, %lsn, "incremental snapshot signal refused: {e}")
            }
        }
    }

    /// Reads the incremental snapshot's next chunk between two watermarks, when one is due.
    async fn read_chunk_if_due(&mut self) -> Result<()> {
        loop {
            let Some(inc) = self.incremental.as_mut() else {
                return Ok(());
            };
            if !inc.wants_chunk() {
                return Ok(());
            }
            let progress = inc.progress.as_ref().expect("a chunk is due");
            let name = progress.tables[0].clone();
            let after = progress.last_key.clone();
            let Some(table) = self
                .relations
                .values()
                .find(|t| t.qualified_name() == name && t.has_key())
                .cloned()
            else {
                tracing::warn!(table = %name, "incremental snapshot: the table is no longer captured or has no key: skipped");
                inc.finish_table();
                continue;
            };
            let chunk_size = inc.settings.chunk_size;
            let id = inc.next_id();
            let key_columns: Vec<usize> = table
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_key)
                .map(|(i, _)| i)
                .collect();
            self.emit_watermark(&table, "low", &id).await?;
            let (rows, last_key) = self
                .read_chunk(&table, &key_columns, after.as_deref(), chunk_size)
                .await?;
            self.emit_watermark(&table, "high", &id).await?;
            let last_of_table = rows.len() < chunk_size;
            let inc = self.incremental.as_mut().expect("on");
            inc.chunk = Some(Chunk {
                id,
                table,
                key_columns,
                rows,
                open: false,
                last_of_table,
                last_key,
                dropped: 0,
            });
            return Ok(());
        }
    }

    async fn emit_watermark(&self, table: &TableSchema, which: &str, id: &str) -> Result<()> {
        self.emit_message(incremental::WATERMARK_PREFIX, &format!("{which}:{id}"))
            .await
            .map_err(|source| CaptureError::Snapshot {
                table: format!(
                    "{} (incremental, {which} watermark)",
                    table.qualified_name()
                ),
                source,
            })
    }

    /// Up to `limit` rows of `table` after the key `after`, in key order, with the key text of
    /// the last one.
    async fn read_chunk(
        &self,
        table: &TableSchema,
        key_columns: &[usize],
        after: Option<&[Option<String>]>,
        limit: usize,
    ) -> Result<(Vec<ChunkRow>, Option<crate::state::KeyText>)> {
        let name = table.qualified_name();
        let cols: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
        let keys = key_columns
            .iter()
            .map(|&i| cols[i].as_str())
            .collect::<Vec<_>>()
            .join(", ");
        // Unknown-typed literals take the key columns' types: no casts needed.
        let filter = match after {
            Some(k) => format!(
                " WHERE ({keys}) > ({})",
                k.iter()
                    .map(|v| v.as_deref().map_or("NULL".to_string(), quote_literal))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => String::new(),
        };
        let sql = format!(
            "COPY (SELECT {} FROM {}{filter} ORDER BY {keys} LIMIT {limit}) TO STDOUT",
            cols.join(", "),
            quote_table(&name)
        );
        let err = |source| CaptureError::Snapshot {
            table: format!("{name} (incremental)"),
            source,
        };
        let mut lines = CopyLines::new(self.client.copy_out(sql.as_str()).await.map_err(err)?);
        let mut rows = Vec::new();
        let mut last_key = None;
        while let Some(line) = lines.next().await.map_err(err)? {
            let (row, fields) = copy_row(table, &line, "incremental snapshot")?;
            last_key = Some(
                key_columns
                    .iter()
                    .map(|&i| fields.get(i).and_then(|f| f.as_deref().map(str::to_string)))
                    .collect(),
            );
            rows.push(ChunkRow {
                key: key_columns.iter().map(|&i| row[i].clone()).collect(),
                row,
            });
        }
        lines.finish(&name, "incremental snapshot")?;
        Ok((rows, last_key))
    }

    /// A watermark of the incremental snapshot: the low one opens the chunk's window; the high
    /// one closes it and emits what is left of the chunk, then records the progress.
    fn on_watermark(&mut self, content: &[u8], lsn: Lsn, batch: &mut Vec<Item>) {
        let Some((low, id)) = incremental::parse_watermark(content) else {
            return;
        };
        let Some(inc) = self.incremental.as_mut() else {
            return;
        };
        // Another run's watermark (replayed after a restart): not ours.
        if inc.chunk.as_ref().is_none_or(|c| c.id != id) {
            return;
        }
        if low {
            if let Some(c) = inc.chunk.as_mut() {
                c.open = true;
            }
            return;
        }
        let chunk = inc.chunk.take().expect("matched above");
        let ts_us = now_us();
        let emitted = chunk.rows.len() as u64;
        for r in chunk.rows {
            batch.push(read_event(
                chunk.table.clone(),
                r.row,
                Source {
                    lsn,
                    last_commit_lsn: self.last_commit,
                    tx_id: None,
                    ts_us,
                    snapshot: SnapshotMarker::Incremental,
                },
            ));
        }
        inc.rows_emitted += emitted;
        let name = chunk.table.qualified_name();
        crate::metrics::metrics().incremental_rows(&name, emitted);
        tracing::debug!(table = %name, emitted, taken_over_by_the_stream = chunk.dropped, "incremental snapshot chunk");
        if chunk.last_of_table {
            tracing::info!(table = %name, rows = inc.rows_emitted, "incremental snapshot of table done");
            inc.finish_table();
        } else if let Some(p) = inc.progress.as_mut() {
            p.last_key = chunk.last_key;
        }
        let progress = inc
            .progress
            .clone()
            .unwrap_or(crate::state::IncrementalProgress {
                tables: Vec::new(),
                last_key: None,
            });
        if progress.tables.is_empty() {
            inc.progress = None;
            tracing::info!("incremental snapshot done");
        }
        batch.push(Item::Checkpoint(Checkpoint::Incremental {
            slot: self.slot.clone(),
            progress,
        }));
    }

    /// A logical decoding message: an [`Item::Message`] when the filter admits its prefix; a
    /// non-transactional one outside a transaction is then confirmed just past its own LSN.
    fn message(
        &mut self,
        transactional: bool,
        lsn: Lsn,
        prefix: String,
        content: Vec<u8>,
        batch: &mut Vec<Item>,
    ) {
        if prefix == incremental::WATERMARK_PREFIX {
            self.on_watermark(&content, lsn, batch);
        }
        let admitted = prefix != HEARTBEAT_MESSAGE_PREFIX
            && prefix != incremental::WATERMARK_PREFIX
            && self.messages.as_ref().is_some_and(|f| f.admits(&prefix));
        if admitted {
            let (tx_id, ts_us) = match (&self.tx, transactional) {
                (Some(tx), true) => (Some(i64::from(tx.xid)), tx.commit_ts_us),
                _ => (None, now_us()),
            };
            batch.push(Item::Message(LogicalMessage {
                transactional,
                prefix,
                content,
                source: Source {
                    lsn,
                    last_commit_lsn: self.last_commit,
                    tx_id,
                    ts_us,
                    snapshot: SnapshotMarker::False,
                },
            }));
        }
        if !transactional && self.tx.is_none() {
            // PostgreSQL skips a non-transactional message on restart only when its LSN is below
            // the confirmed position (SnapBuildXactNeedsSkip): confirm the next byte.
            let past = Lsn(lsn.0.saturating_add(1));
            if past > self.last_checkpoint {
                self.last_checkpoint = past;
                batch.push(Item::Checkpoint(Checkpoint::Lsn(past)));
            }
        }
    }

    /// An update that changed the key: a `d` of the old key and a `c` of the new one, as
    /// Debezium's `RelationalChangeRecordEmitter.emitUpdateAsPrimaryKeyChangeRecord` does, with
    /// the other key in a header (`__debezium.newkey` on the `d`, `__debezium.oldkey` on the
    /// `c`). The tombstone after the `d` is delivery's, as after any delete.
    fn key_change(
        &mut self,
        table: Arc<TableSchema>,
        old: Vec<Value>,
        new: Vec<Value>,
        lsn: Lsn,
        batch: &mut Vec<Item>,
    ) -> Result<()> {
        let mut delete = self.event(Op::Delete, table.clone(), Some(old), None, lsn);
        let mut create = self.event(Op::Create, table, None, Some(new), lsn);
        if let (Item::Event(d), Item::Event(c)) = (&mut delete, &mut create) {
            let old_key = self.key_header(d, lsn)?;
            let new_key = self.key_header(c, lsn)?;
            d.headers.push(Header {
                key: PK_UPDATE_NEWKEY_HEADER.into(),
                value: new_key,
            });
            c.headers.push(Header {
                key: PK_UPDATE_OLDKEY_HEADER.into(),
                value: old_key,
            });
        }
        batch.push(delete);
        batch.push(create);
        Ok(())
    }

    /// The key struct of `ev` as Kafka Connect's `SimpleHeaderConverter` prints it.
    fn key_header(&mut self, ev: &ChangeEvent, lsn: Lsn) -> Result<Vec<u8>> {
        let key = self
            .key_encoder
            .key(ev)
            .map_err(|e| CaptureError::Stream {
                lsn,
                message: format!("cannot write the key of a primary-key change: {e}"),
            })?
            .unwrap_or_default();
        // The encoder writes payloads alone (`schemas: false`): the key text is the header.
        Ok(key)
    }

    /// The values of `tuple` that events carry: those of the columns the filter keeps.
    fn values(&self, table: &TableSchema, mut tuple: Tuple, lsn: Lsn) -> Result<Vec<Value>> {
        if let Some(mask) = self.masks.get(&table.oid) {
            if tuple.0.len() != mask.len() {
                return Err(CaptureError::Value {
                    table: table.qualified_name(),
                    column: "(row)".into(),
                    place: format!("LSN {lsn}"),
                    message: format!(
                        "{} values for {} columns (before leaving columns out)",
                        tuple.0.len(),
                        mask.len()
                    ),
                });
            }
            let mut keep = mask.iter();
            tuple.0.retain(|_| *keep.next().unwrap_or(&true));
        }
        tuple_values(table, tuple, lsn)
    }

    fn table(&self, oid: u32, lsn: Lsn) -> Result<Arc<TableSchema>> {
        self.relations
            .get(&oid)
            .cloned()
            .ok_or_else(|| CaptureError::Stream {
                lsn,
                message: format!(
                    "a change for relation oid {oid} arrived before its Relation message"
                ),
            })
    }

    fn event(
        &self,
        op: Op,
        table: Arc<TableSchema>,
        before: Option<Vec<Value>>,
        after: Option<Vec<Value>>,
        lsn: Lsn,
    ) -> Item {
        let (tx_id, ts_us) = match &self.tx {
            Some(tx) => (Some(i64::from(tx.xid)), tx.commit_ts_us),
            None => (None, now_us()),
        };
        Item::Event(ChangeEvent {
            op,
            table,
            before,
            after,
            source: Source {
                lsn,
                last_commit_lsn: self.last_commit,
                tx_id,
                ts_us,
                snapshot: SnapshotMarker::False,
            },
            topic: None,
            headers: Vec::new(),
        })
    }

    /// The schema of a relation as the stream describes it (columns, types, identity), with what
    /// only the catalog knows (primary key, nullability, defaults, enum labels) read now.
    async fn relation_schema(&self, rel: &Relation, lsn: Lsn) -> Result<TableSchema> {
        let catalog = match catalog::load_table(&self.client, rel.oid).await {
            Ok(t) => Some(t),
            Err(CatalogError::NoTable(_)) => None, // dropped since: the stream alone describes it
            Err(e) => return Err(e.into()),
        };
        let replica_identity = crate::event::ReplicaIdentity::from_code(rel.replica_identity)
            .ok_or_else(|| CaptureError::Stream {
                lsn,
                message: format!(
                    "unknown replica identity {:?} for {}.{}",
                    rel.replica_identity as char, rel.namespace, rel.name
                ),
            })?;
        let has_pk = catalog.as_ref().is_some_and(|c| c.has_key());
        let columns = rel
            .columns
            .iter()
            .map(|rc| {
                let cat = catalog
                    .as_ref()
                    .and_then(|c| c.columns.iter().find(|c| c.name == rc.name));
                let same_type = cat.is_some_and(|c| c.type_oid == rc.type_oid);
                crate::event::Column {
                    name: rc.name.clone(),
                    type_oid: rc.type_oid,
                    // A domain's typmod (numeric(10,2), varchar(8)) is on the domain type,
                    // not on the column that the Relation message describes.
                    type_modifier: cat
                        .filter(|c| same_type && c.base_type_oid != c.type_oid)
                        .map_or(rc.type_modifier, |c| c.type_modifier),
                    type_name: cat
                        .filter(|_| same_type)
                        .map(|c| c.type_name.clone())
                        .unwrap_or_default(),
                    base_type_oid: cat
                        .filter(|_| same_type)
                        .map(|c| c.base_type_oid)
                        .unwrap_or(rc.type_oid),
                    nullable: cat.is_none_or(|c| c.nullable),
                    // With REPLICA IDENTITY FULL every column is flagged: the key is the primary key.
                    is_key: if has_pk {
                        cat.is_some_and(|c| c.is_key)
                    } else {
                        rc.is_key && replica_identity != crate::event::ReplicaIdentity::Full
                    },
                    default: cat.filter(|_| same_type).and_then(|c| c.default.clone()),
                    enum_labels: cat
                        .filter(|_| same_type)
                        .map(|c| c.enum_labels.clone())
                        .unwrap_or_default(),
                }
            })
            .collect();
        Ok(TableSchema {
            oid: rel.oid,
            schema: rel.namespace.clone(),
            name: rel.name.clone(),
            columns,
            replica_identity,
        })
    }
}

/// Whether the key columns differ between the old row (as logged: a `K` tuple or a whole old
/// row) and the new one. An unchanged TOASTed value in the new row counts as equal.
fn key_changed(table: &TableSchema, old: &[Value], new: &[Value]) -> bool {
    table
        .columns
        .iter()
        .zip(old.iter().zip(new))
        .any(|(col, (o, n))| col.is_key && *n != Value::UnchangedToast && o != n)
}

/// pgoutput tuple → typed values.
fn tuple_values(table: &TableSchema, tuple: Tuple, lsn: Lsn) -> Result<Vec<Value>> {
    let place = || format!("LSN {lsn}");
    if tuple.0.len() != table.columns.len() {
        return Err(CaptureError::Value {
            table: table.qualified_name(),
            column: "(row)".into(),
            place: place(),
            message: format!(
                "{} values for {} columns",
                tuple.0.len(),
                table.columns.len()
            ),
        });
    }
    table
        .columns
        .iter()
        .zip(tuple.0)
        .map(|(col, field)| match field {
            TupleField::Null => Ok(Value::Null),
            TupleField::UnchangedToast => Ok(Value::UnchangedToast),
            TupleField::Text(bytes) => {
                // Moved, not copied: a text value keeps the buffer it was decoded into.
                let text = String::from_utf8(bytes).map_err(|e| CaptureError::Value {
                    table: table.qualified_name(),
                    column: col.name.clone(),
                    place: place(),
                    message: format!("not UTF-8: {}", e.utf8_error()),
                })?;
                parse_value_owned(col, text).map_err(|e| CaptureError::Value {
                    table: table.qualified_name(),
                    column: col.name.clone(),
                    place: place(),
                    message: e.to_string(),
                })
            }
            TupleField::Binary(_) => Err(CaptureError::Value {
                table: table.qualified_name(),
                column: col.name.clone(),
                place: place(),
                message: "a binary value arrived although text format was requested".into(),
            }),
        })
        .collect()
}

/// Sends standby status updates when the confirmed position moved (at most every 250 ms) and at
/// least every `interval`.
struct StatusTimer {
    interval: Duration,
    last_sent: Lsn,
    at: Instant,
}

impl StatusTimer {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            last_sent: Lsn::ZERO,
            at: Instant::now(),
        }
    }

    async fn maybe_send(&mut self, stream: &mut ReplicationStream, confirmed: Lsn) -> Result<()> {
        if confirmed != self.last_sent || self.at.elapsed() >= self.interval {
            stream.send_status(confirmed, false).await?;
            self.last_sent = confirmed;
            self.at = Instant::now();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Column, ReplicaIdentity};

    #[test]
    fn message_prefix_filter() {
        let all = MessageFilter::default();
        assert!(all.admits("anything"));
        // LogicalDecodingMessageIT.shouldOnlyConsumeLogicalDecodingMessagesWithIncludedPrefixes,
        // with its regular expression `ano.*er_included` written as a glob.
        let include = MessageFilter {
            include: vec![
                "included_prefix".into(),
                "prefix:included".into(),
                "ano*er_included".into(),
            ],
            exclude: vec![],
        };
        for (prefix, admitted) in [
            ("included_prefix", true),
            ("excluded_prefix", false),
            ("prefix:excluded", false),
            ("prefix:included", true),
            ("another_included", true),
            ("included_prefix2", false),
        ] {
            assert_eq!(include.admits(prefix), admitted, "{prefix}");
        }
        // ...ShouldNotConsumeLogicalDecodingMessagesWithExcludedPrefixes.
        let exclude = MessageFilter {
            include: vec![],
            exclude: vec!["excluded_prefix".into(), "prefix:excluded".into()],
        };
        assert!(exclude.admits("included_prefix"));
        assert!(!exclude.admits("excluded_prefix"));
        assert!(!exclude.admits("prefix:excluded"));
        assert!(exclude.admits("prefix:included"));
        // ...WhenAllPrefixesAreInTheExcludedList (`.*`).
        let none = MessageFilter {
            include: vec![],
            exclude: vec!["*".into()],
        };
        assert!(!none.admits("prefix"));
        assert!(!none.admits(""));
    }

    #[test]
    fn column_filter_leaves_columns_out_but_never_keys() {
        let t = table();
        let names = |t: &TableSchema| t.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        let none = ColumnFilter::default();
        assert_eq!(none.apply(t.clone()).unwrap(), (t.clone(), None));
        let all_names = names(&t);
        let last = all_names.last().unwrap().clone();
        let exclude = ColumnFilter {
            include: vec![],
            exclude: vec![format!("public.t.{last}"), "other.*.*".into()],
        };
        let (kept, mask) = exclude.apply(t.clone()).unwrap();
        assert_eq!(names(&kept), all_names[..all_names.len() - 1]);
        let mask = mask.unwrap();
        assert_eq!(mask.len(), all_names.len());
        assert!(!mask[mask.len() - 1] && mask[..mask.len() - 1].iter().all(|k| *k));
        // A pattern for another table changes nothing.
        let elsewhere = ColumnFilter {
            include: vec![],
            exclude: vec!["public.other.*".into()],
        };
        assert_eq!(elsewhere.apply(t.clone()).unwrap().1, None);
        // Include constrains the tables it names only.
        let key = t.columns.iter().find(|c| c.is_key).unwrap().name.clone();
        let include = ColumnFilter {
            include: vec![format!("public.t.{key}")],
            exclude: vec![],
        };
        assert_eq!(
            names(&include.apply(t.clone()).unwrap().0),
            std::slice::from_ref(&key)
        );
        assert!(include.keeps("public", "u", "anything"));
        // A key column left out is refused, naming it.
        let bad = ColumnFilter {
            include: vec![],
            exclude: vec![format!("*.*.{key}")],
        };
        let err = bad.apply(t.clone()).unwrap_err();
        assert!(
            matches!(&err, CaptureError::KeyColumnLeftOut { table, column } if table == "public.t" && *column == key),
            "{err}"
        );
        assert!(err
            .to_string()
            .contains(&format!("public.t.{key}, a key column")));
    }

    fn table() -> TableSchema {
        let col = |name: &str, is_key: bool| Column {
            name: name.into(),
            type_oid: 23,
            type_modifier: -1,
            type_name: "int4".into(),
            base_type_oid: 23,
            nullable: !is_key,
            is_key,
            default: None,
            enum_labels: vec![],
        };
        TableSchema {
            oid: 1,
            schema: "public".into(),
            name: "t".into(),
            columns: vec![col("pk", true), col("v", false)],
            replica_identity: ReplicaIdentity::Default,
        }
    }

    #[test]
    fn key_change_detection() {
        let t = table();
        // A `K` tuple (key columns only) with another key.
        assert!(key_changed(
            &t,
            &[Value::Int32(1), Value::Null],
            &[Value::Int32(2), Value::Int32(5)]
        ));
        // A whole old row (FULL) with the same key and another value.
        assert!(!key_changed(
            &t,
            &[Value::Int32(1), Value::Int32(4)],
            &[Value::Int32(1), Value::Int32(5)]
        ));
        // An unchanged TOASTed key value is not a change.
        assert!(!key_changed(
            &t,
            &[Value::Int32(1), Value::Null],
            &[Value::UnchangedToast, Value::Int32(5)]
        ));
    }
}

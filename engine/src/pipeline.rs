//! The pipeline: capture → plugin chain → encoder → Kafka, and the confirmation of positions.
//!
//! ```text
//!  capture task ──batches of Item──▶ deliver task: chain → JSON or Avro → producer
//!       ▲                                   │ deliveries, in queue order
//!       └──── confirmed LSN (watch) ◀───────┘ a Checkpoint pops only after all records before it
//! ```
//!
//! A [`Checkpoint`] travels in the stream right after the events it covers. The deliver task
//! keeps record deliveries and checkpoints in one first-in-first-out queue of futures; a
//! checkpoint therefore completes only after every record queued before it was acknowledged by
//! the broker, and only then is its LSN confirmed to PostgreSQL (or the snapshot recorded as
//! done). A failed delivery fails the run: the relay restarts from the last confirmed position.
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::sync::{mpsc, watch};

use crate::encode::avro::{AvroEncoder, AvroError, AvroOptions};
use crate::encode::connect::{Datum, Schema};
use crate::encode::json::{DebeziumJson, JsonOptions, RecordOptions};
use crate::encode::records::{self, TransactionBlock};
use crate::encode::registry::{RegistryAuth, RegistrySettings, SchemaRegistry};
use crate::event::{
    ChangeEvent, Header, LogicalMessage, Lsn, Op, Output, SnapshotMarker, TableSchema,
};
use crate::pg::capture::{Capture, SourceSettings};
use crate::sink::kafka::{Delivery, DeliveryOutcome, KafkaSettings, SinkError};
use crate::sink::{Sent, Sink, SinkSettings, Tally};
use crate::state::StateStore;

/// What flows from capture to delivery.
#[derive(Debug)]
pub enum Item {
    /// A row change: it passes through the plugin chain.
    Event(ChangeEvent),
    /// A logical decoding message: written on `<prefix>.message`, around the plugin chain.
    Message(LogicalMessage),
    /// A streamed transaction starts (its `BEGIN`); with transaction metadata on, a BEGIN record.
    Begin(TxBoundary),
    /// A streamed transaction's last change was sent; its checkpoint follows. With transaction
    /// metadata on, an END record counting what the chain emitted for it.
    End(TxBoundary),
    /// Write a heartbeat record now (`heartbeat_interval_ms`).
    Heartbeat,
    Checkpoint(Checkpoint),
}

/// A transaction boundary as pgoutput's `BEGIN`/`COMMIT` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxBoundary {
    /// The transaction id (`xid`), as in the events' `source.txId`.
    pub tx_id: i64,
    /// Commit time, µs since the Unix epoch (BEGIN carries it too).
    pub commit_ts_us: i64,
}

/// A position that becomes durable once everything before it is acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoint {
    /// Confirm this LSN to PostgreSQL (a commit's end LSN, or an idle keepalive position).
    Lsn(Lsn),
    /// Every row of the slot's initial snapshot was acknowledged: record it.
    SnapshotDone { slot: String, consistent_point: Lsn },
    /// An incremental snapshot's rows so far were acknowledged: record where it stands.
    Incremental {
        slot: String,
        progress: crate::state::IncrementalProgress,
    },
}

/// A stage of the plugin chain: takes the events of one segment (between two positions) and
/// returns what goes on to the sink. [`crate::plugin::chain::PluginChain`] implements it;
/// [`PassThrough`] is the empty chain.
pub trait Stage: Send {
    fn process(&mut self, events: Vec<ChangeEvent>) -> anyhow::Result<Vec<Output>>;
}

/// The empty chain: events go on unchanged.
pub struct PassThrough;

impl Stage for PassThrough {
    fn process(&mut self, events: Vec<ChangeEvent>) -> anyhow::Result<Vec<Output>> {
        Ok(events.into_iter().map(Output::Change).collect())
    }
}

/// Everything a run needs, resolved from the configuration.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub source: SourceSettings,
    /// Where records go: the broker, or the discarding sink.
    pub sink: SinkSettings,
    pub topic_prefix: String,
    pub tombstones_on_delete: bool,
    pub format: crate::config::Format,
    /// Debezium's `provide.transaction.metadata`: BEGIN/END records on `<prefix>.transaction`
    /// and the envelope's `transaction` block.
    pub transaction_metadata: bool,
    pub state_dir: PathBuf,
    /// The plugin chain, in order (admitted: digests and signatures checked).
    pub plugins: Vec<crate::plugin::chain::PluginSpec>,
    /// Where `GET /metrics` is served; `None`: nowhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// A failed run, classified: transient failures are retried from the last confirmed position.
#[derive(Debug)]
pub struct RunError {
    pub transient: bool,
    pub error: anyhow::Error,
}

impl RunError {
    fn fatal(error: impl Into<anyhow::Error>) -> Self {
        Self {
            transient: false,
            error: error.into(),
        }
    }
}

impl From<crate::pg::capture::CaptureError> for RunError {
    fn from(e: crate::pg::capture::CaptureError) -> Self {
        Self {
            transient: e.is_transient(),
            error: e.into(),
        }
    }
}

impl From<AvroError> for RunError {
    fn from(e: AvroError) -> Self {
        Self {
            transient: e.is_transient(),
            error: e.into(),
        }
    }
}

impl From<SinkError> for RunError {
    fn from(e: SinkError) -> Self {
        Self {
            transient: e.is_transient(),
            error: e.into(),
        }
    }
}

/// Runs the relay until `shutdown` turns true; retries transient failures with backoff.
pub async fn run(
    settings: RelaySettings,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut delay = Duration::from_millis(500);
    if let Some(addr) = settings.metrics_listen {
        crate::metrics::serve(addr)
            .await
            .with_context(|| format!("metrics.listen: cannot listen on {addr}"))?;
    }
    let mut tally = Tally::default();
    let sink_name = match settings.sink {
        SinkSettings::Kafka(_) => "kafka",
        SinkSettings::Null => "null",
    };
    let result = loop {
        let started = Instant::now();
        match run_once(&settings, shutdown.clone(), &mut tally).await {
            Ok(()) => break Ok(()),
            Err(e) if e.transient && !*shutdown.borrow() => {
                crate::metrics::metrics()
                    .restarts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if started.elapsed() > Duration::from_secs(60) {
                    delay = Duration::from_millis(500);
                }
                tracing::warn!(
                    error = format!("{:#}", e.error),
                    retry_in_ms = delay.as_millis() as u64,
                    "run failed; restarting from the last confirmed position"
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => break Ok(()),
                }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
            Err(e) => break Err(e.error),
        }
    };
    log_tally(sink_name, &tally, "final");
    result
}

/// Logs what was handed to the sink (see [`Tally`]); `when` is `progress` or `final`.
fn log_tally(sink: &str, tally: &Tally, when: &str) {
    // The figures are in the message, so that scripts read them whatever the log's colours.
    tracing::info!(
        sink,
        "sink tally ({when}): records={} tombstones={} bytes={} checksum={} unmapped_values_left_out={}{}",
        tally.records,
        tally.tombstones,
        tally.bytes,
        tally.checksum_hex(),
        tally.unmapped_values,
        latency_text(&tally.commit_to_ack)
    );
}

/// ` commit_to_ack_ms p50=… p99=… max=… (n=…)`, or nothing before the first streamed change.
fn latency_text(h: &crate::sink::LatencyHistogram) -> String {
    let ms = |us: Option<u64>| us.map_or(0.0, |u| u as f64 / 1000.0);
    if h.count == 0 {
        return String::new();
    }
    format!(
        " commit_to_ack_ms p50={:.1} p99={:.1} max={:.1} (n={})",
        ms(h.quantile_us(0.5)),
        ms(h.quantile_us(0.99)),
        h.max_us as f64 / 1000.0,
        h.count
    )
}

/// How often the sink tally is logged while running.
const TALLY_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A batch from capture on its way to delivery: each segment of its events (the events between
/// two other items) replaced by what the plugin chain made of it.
#[derive(Debug)]
enum Processed {
    Outputs(Vec<Output>),
    Item(Item),
}

/// Runs the plugin chain on its own thread between capture and delivery, so that decoding,
/// the plugins, and encoding with the sink overlap. Batches keep their order; a chain failure
/// is sent on as the batch's result and ends the thread. Without plugins, events go straight on.
fn spawn_chain(
    chain: Option<Box<dyn Stage>>,
    mut items: mpsc::Receiver<Vec<Item>>,
) -> anyhow::Result<mpsc::Receiver<anyhow::Result<Vec<Processed>>>> {
    let (tx, rx) = mpsc::channel(4);
    match chain {
        None => {
            tokio::spawn(async move {
                while let Some(batch) = items.recv().await {
                    if tx
                        .send(through_chain(&mut PassThrough, batch))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
        Some(mut chain) => {
            std::thread::Builder::new()
                .name("walrelay-chain".into())
                .spawn(move || {
                    while let Some(batch) = items.blocking_recv() {
                        let result = through_chain(chain.as_mut(), batch);
                        let failed = result.is_err();
                        if tx.blocking_send(result).is_err() || failed {
                            break;
                        }
                    }
                })
                .context("starting the plugin chain's thread")?;
        }
    }
    Ok(rx)
}

/// Passes each segment of a batch's events through the chain; other items keep their places.
fn through_chain(chain: &mut dyn Stage, batch: Vec<Item>) -> anyhow::Result<Vec<Processed>> {
    let mut out = Vec::new();
    let mut segment = Vec::new();
    for item in batch {
        match item {
            Item::Event(e) => segment.push(e),
            other => {
                if !segment.is_empty() {
                    out.push(Processed::Outputs(
                        chain.process(std::mem::take(&mut segment))?,
                    ));
                }
                out.push(Processed::Item(other));
            }
        }
    }
    if !segment.is_empty() {
        out.push(Processed::Outputs(chain.process(segment)?));
    }
    Ok(out)
}

/// One run: prepare capture, connect the producer, stream until shutdown or failure.
/// `tally` counts what this run hands to the sink, on top of what it holds.
pub async fn run_once(
    settings: &RelaySettings,
    shutdown: watch::Receiver<bool>,
    tally: &mut Tally,
) -> Result<(), RunError> {
    let state = StateStore::new(&settings.state_dir);
    let capture = Capture::prepare(settings.source.clone(), state.clone()).await?;
    let record = RecordOptions {
        topic_prefix: settings.topic_prefix.clone(),
        database: capture.database().to_string(),
        connector_version: env!("CARGO_PKG_VERSION").to_string(),
        unknown_types: settings.format.unknown_types,
    };
    let encoder = DebeziumJson::new(JsonOptions {
        record: record.clone(),
        schemas: settings.format.schemas,
    });
    let avro = match (&settings.format.kind, &settings.format.avro) {
        (crate::config::FormatKind::Avro, Some(cfg)) => {
            let reg = &cfg.schema_registry;
            let mut rs = RegistrySettings::new(reg.urls.clone());
            rs.auto_register = reg.auto_register;
            rs.auth = match (&reg.basic_auth, &reg.bearer_token) {
                (Some(b), _) => RegistryAuth::Basic {
                    username: b.username.clone(),
                    password: b.password.0.clone(),
                },
                (None, Some(t)) => RegistryAuth::Bearer { token: t.0.clone() },
                (None, None) => RegistryAuth::None,
            };
            let registry = SchemaRegistry::new(rs)
                .map_err(|e| RunError::fatal(anyhow::Error::from(e).context("format.avro")))?;
            Some(AvroEncoder::new(
                AvroOptions {
                    record,
                    sanitize_names: cfg.sanitize_names,
                },
                std::sync::Arc::new(registry),
            ))
        }
        (crate::config::FormatKind::Avro, None) => {
            return Err(RunError::fatal(anyhow::anyhow!(
                "format.type avro needs format.avro.schema_registry"
            )))
        }
        _ => None,
    };
    let chain: Option<Box<dyn Stage>> = if settings.plugins.is_empty() {
        None
    } else {
        // A chain that cannot load (a refused configuration, a bad component) will not load on
        // retry either: fatal.
        Some(Box::new(
            crate::plugin::chain::PluginChain::new(
                settings.plugins.clone(),
                &settings.topic_prefix,
            )
            .map_err(RunError::fatal)?,
        ))
    };
    let sink = Sink::open(&settings.sink)?;
    let (items_tx, items_rx) = mpsc::channel(16);
    let (confirmed_tx, confirmed_rx) = watch::channel(Lsn::ZERO);
    let capture_task = tokio::spawn(capture.run(items_tx, confirmed_rx, shutdown.clone()));
    let processed_rx = spawn_chain(chain, items_rx).map_err(RunError::fatal)?;
    let mut deliver = Deliver {
        sink,
        encoder,
        avro,
        prefix: settings.topic_prefix.clone(),
        tombstones: settings.tombstones_on_delete,
        transaction_metadata: settings.transaction_metadata,
        tx: None,
        state,
        confirmed: confirmed_tx,
        pending: FuturesOrdered::new(),
        tally: *tally,
        last_tally_log: Instant::now(),
        default_topic: None,
    };
    let delivered = deliver.run(processed_rx, shutdown).await;
    *tally = deliver.tally;
    drop(deliver); // drops the confirmed sender: capture reports the final position and exits
    let captured = match capture_task.await {
        Ok(r) => r.map_err(RunError::from),
        Err(join) => Err(RunError::fatal(anyhow::anyhow!(
            "capture task panicked: {join}"
        ))),
    };
    match (delivered, captured) {
        // A delivery failure is the cause when capture then stops for want of a pipeline.
        (Err(e), _) => Err(e),
        (Ok(()), r) => r,
    }
}

/// An entry of the in-order acknowledgement queue; a record of a streamed change carries its
/// commit time (µs since the epoch) for the commit-to-acknowledgement latency.
enum Pending {
    Record(Delivery, Option<i64>),
    Checkpoint(Option<Checkpoint>),
}

enum Ack {
    Record(DeliveryOutcome, Option<i64>),
    Checkpoint(Checkpoint),
}

impl Future for Pending {
    type Output = Ack;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ack> {
        match self.get_mut() {
            Pending::Record(d, commit_us) => {
                let commit_us = *commit_us;
                Pin::new(d).poll(cx).map(|o| Ack::Record(o, commit_us))
            }
            Pending::Checkpoint(c) => match c.take() {
                Some(c) => Poll::Ready(Ack::Checkpoint(c)),
                None => Poll::Pending,
            },
        }
    }
}

struct Deliver {
    sink: Sink,
    encoder: DebeziumJson,
    /// With `format.type: avro`, the encoder of every record (`encoder` is then unused).
    avro: Option<AvroEncoder>,
    prefix: String,
    tombstones: bool,
    transaction_metadata: bool,
    /// The transaction being delivered, when transaction metadata is on.
    tx: Option<TxMeta>,
    state: StateStore,
    confirmed: watch::Sender<Lsn>,
    pending: FuturesOrdered<Pending>,
    /// Everything handed to the sink (the discarding sink's count and checksum).
    tally: Tally,
    last_tally_log: Instant,
    /// The default topic of the last table delivered (`<prefix>.<schema>.<table>`): batches
    /// are mostly of one table, and holding its `Arc` keeps the pointer from being reused.
    default_topic: Option<(Arc<TableSchema>, Arc<str>)>,
}

impl Deliver {
    async fn run(
        &mut self,
        mut items: mpsc::Receiver<anyhow::Result<Vec<Processed>>>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), RunError> {
        // The tally goes to the metrics registry once a second, not per record.
        let mut publish = tokio::time::interval(Duration::from_secs(1));
        publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                // First, or a busy pipeline would never get to it; ready once a second.
                _ = publish.tick() => crate::metrics::metrics().set_tally(&self.tally),
                Some(ack) = self.pending.next(), if !self.pending.is_empty() => self.on_ack(ack)?,
                batch = items.recv() => match batch {
                    Some(batch) => self.on_batch(batch.map_err(RunError::fatal)?).await?,
                    None => break,
                },
            }
        }
        // Capture ended (shutdown or failure): wait for what is in flight, so its positions can
        // still be confirmed; give up after a grace period on shutdown (nothing is lost: the
        // unconfirmed part is read again on restart).
        let grace = async {
            let _ = shutdown.wait_for(|s| *s).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        };
        tokio::pin!(grace);
        while !self.pending.is_empty() {
            tokio::select! {
                Some(ack) = self.pending.next() => self.on_ack(ack)?,
                _ = &mut grace => {
                    tracing::warn!(in_flight = self.pending.len(), "stopping with records unacknowledged; they are sent again on restart");
                    break;
                }
            }
        }
        crate::metrics::metrics().set_tally(&self.tally);
        Ok(())
    }

    fn on_ack(&mut self, ack: Ack) -> Result<(), RunError> {
        match ack {
            Ack::Record(outcome, commit_us) => {
                outcome.map_err(RunError::from)?;
                self.record_latency(commit_us);
                Ok(())
            }
            Ack::Checkpoint(Checkpoint::Lsn(lsn)) => {
                crate::metrics::metrics()
                    .confirmed_lsn
                    .fetch_max(lsn.0, std::sync::atomic::Ordering::Relaxed);
                self.confirmed.send_if_modified(|c| {
                    let moved = lsn > *c;
                    if moved {
                        *c = lsn;
                    }
                    moved
                });
                Ok(())
            }
            Ack::Checkpoint(Checkpoint::SnapshotDone {
                slot,
                consistent_point,
            }) => {
                self.state
                    .snapshot_done(&slot, consistent_point)
                    .map_err(RunError::fatal)?;
                tracing::info!(%slot, %consistent_point, "initial snapshot delivered and recorded");
                Ok(())
            }
            Ack::Checkpoint(Checkpoint::Incremental { slot, progress }) => self
                .state
                .save_incremental(&slot, &progress)
                .map_err(RunError::fatal),
        }
    }

    async fn on_batch(&mut self, batch: Vec<Processed>) -> Result<(), RunError> {
        for item in batch {
            match item {
                Processed::Outputs(outputs) => self.deliver_outputs(outputs).await?,
                Processed::Item(Item::Event(ev)) => {
                    self.deliver_outputs(vec![Output::Change(ev)]).await?
                }
                Processed::Item(Item::Checkpoint(c)) => {
                    self.pending.push_back(Pending::Checkpoint(Some(c)))
                }
                Processed::Item(Item::Message(m)) => self.on_message(&m).await?,
                Processed::Item(Item::Begin(b)) => self.on_begin(b).await?,
                Processed::Item(Item::End(b)) => self.on_end(b).await?,
                Processed::Item(Item::Heartbeat) => self.on_heartbeat().await?,
            }
        }
        Ok(())
    }

    /// The transaction metadata of an emitted record of `data_collection` with `source`, counted:
    /// `(total_order, data_collection_order)`. `None` outside a transaction or when off.
    fn count_in_tx(&mut self, source_tx: Option<i64>, data_collection: &str) -> Option<(u64, u64)> {
        let tx = self.tx.as_mut()?;
        if source_tx != Some(tx.tx_id) {
            return None;
        }
        tx.total += 1;
        let per = match tx
            .collections
            .iter_mut()
            .find(|(n, _)| n == data_collection)
        {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                tx.collections.push((data_collection.to_string(), 1));
                1
            }
        };
        Some((tx.total, per))
    }

    async fn on_begin(&mut self, b: TxBoundary) -> Result<(), RunError> {
        if !self.transaction_metadata {
            return Ok(());
        }
        let meta = TxMeta {
            tx_id: b.tx_id,
            id: b.tx_id.to_string(),
            total: 0,
            collections: Vec::new(),
        };
        let topic = records::transaction_topic(&self.prefix);
        self.sink.ensure_topic(&topic).await?;
        let ts_ms = b.commit_ts_us.div_euclid(1000);
        let (key, value) = self
            .encode_record(
                &topic,
                (
                    &records::connect::transaction_key_schema(),
                    &records::connect::transaction_key(&meta.id),
                ),
                (
                    &records::connect::transaction_value_schema(),
                    &records::connect::transaction_value("BEGIN", &meta.id, None, ts_ms),
                ),
            )
            .await?;
        self.tx = Some(meta);
        self.produce(&topic, Some(&key), Some(&value), &[], None)
            .await
    }

    async fn on_end(&mut self, b: TxBoundary) -> Result<(), RunError> {
        let Some(meta) = self.tx.take() else {
            return Ok(());
        };
        if meta.tx_id != b.tx_id {
            tracing::warn!(
                begin = meta.tx_id,
                end = b.tx_id,
                "transaction END does not match its BEGIN; no END record written"
            );
            return Ok(());
        }
        let topic = records::transaction_topic(&self.prefix);
        let ts_ms = b.commit_ts_us.div_euclid(1000);
        let (key, value) = self
            .encode_record(
                &topic,
                (
                    &records::connect::transaction_key_schema(),
                    &records::connect::transaction_key(&meta.id),
                ),
                (
                    &records::connect::transaction_value_schema(),
                    &records::connect::transaction_value(
                        "END",
                        &meta.id,
                        Some((meta.total, &meta.collections)),
                        ts_ms,
                    ),
                ),
            )
            .await?;
        self.produce(&topic, Some(&key), Some(&value), &[], None)
            .await
    }

    /// Encodes a record given as Connect data (key and value) in the configured format.
    async fn encode_record(
        &mut self,
        topic: &str,
        key: (&Schema, &Datum<'_>),
        value: (&Schema, &Datum<'_>),
    ) -> Result<(Vec<u8>, Vec<u8>), RunError> {
        match self.avro.as_mut() {
            Some(avro) => Ok(avro.record(topic, key, value).await?),
            None => Ok((
                self.encoder.record(key.0, key.1),
                self.encoder.record(value.0, value.1),
            )),
        }
    }

    async fn on_message(&mut self, m: &LogicalMessage) -> Result<(), RunError> {
        let order = if m.transactional {
            self.count_in_tx(m.source.tx_id, records::MESSAGE_DATA_COLLECTION)
        } else {
            None
        };
        let id = self.tx.as_ref().map(|t| t.id.clone()).unwrap_or_default();
        let block = order.map(|(total_order, data_collection_order)| TransactionBlock {
            id: &id,
            total_order,
            data_collection_order,
        });
        let topic = records::message_topic(&self.prefix);
        self.sink.ensure_topic(&topic).await?;
        let now_ms = now_ns().div_euclid(1_000_000);
        let record = self.encoder.options().record.clone();
        let (key, value) = self
            .encode_record(
                &topic,
                (
                    &records::connect::message_key_schema(),
                    &records::connect::message_key(&m.prefix),
                ),
                (
                    &records::connect::message_value_schema(),
                    &records::connect::message_value(&record, m, block.as_ref(), now_ms),
                ),
            )
            .await?;
        self.produce(&topic, Some(&key), Some(&value), &[], None)
            .await
    }

    async fn on_heartbeat(&mut self) -> Result<(), RunError> {
        let topic = records::heartbeat_topic(&self.prefix);
        self.sink.ensure_topic(&topic).await?;
        let ts_ms = now_ns().div_euclid(1_000_000);
        let prefix = self.prefix.clone();
        let (key, value) = self
            .encode_record(
                &topic,
                (
                    &records::connect::heartbeat_key_schema(),
                    &records::connect::heartbeat_key(&prefix),
                ),
                (
                    &records::connect::heartbeat_value_schema(),
                    &records::connect::heartbeat_value(ts_ms),
                ),
            )
            .await?;
        self.produce(&topic, Some(&key), Some(&value), &[], None)
            .await
    }

    async fn deliver_outputs(&mut self, outputs: Vec<Output>) -> Result<(), RunError> {
        let now_ns = now_ns();
        for out in &outputs {
            match out {
                Output::Change(ev) => {
                    let default;
                    let topic: &str = match &ev.topic {
                        Some(t) => t,
                        None => {
                            default = self.default_topic(&ev.table);
                            &default
                        }
                    };
                    self.sink.ensure_topic(topic).await?;
                    let key = match self.avro.as_mut() {
                        Some(avro) => avro
                            .key(topic, ev)
                            .await
                            .map_err(|e| avro_error(e, ev, "key"))?,
                        None => self.encoder.key(ev).map_err(RunError::fatal)?,
                    };
                    // Snapshot rows carry no transaction block (as in Debezium, whose snapshot
                    // receiver does not go through the transaction monitor).
                    let order = if ev.source.snapshot == SnapshotMarker::False && self.tx.is_some()
                    {
                        self.count_in_tx(ev.source.tx_id, &ev.table.qualified_name())
                    } else {
                        None
                    };
                    let id = match (&order, &self.tx) {
                        (Some(_), Some(tx)) => tx.id.clone(),
                        _ => String::new(),
                    };
                    let block =
                        order.map(|(total_order, data_collection_order)| TransactionBlock {
                            id: &id,
                            total_order,
                            data_collection_order,
                        });
                    let value = match self.avro.as_mut() {
                        Some(avro) => avro
                            .value(topic, ev, now_ns, block.as_ref())
                            .await
                            .map_err(|e| avro_error(e, ev, "value"))?,
                        None => self
                            .encoder
                            .value_in_transaction(ev, now_ns, block.as_ref())
                            .with_context(|| {
                                format!(
                                    "encoding the {} event of {} at LSN {}",
                                    ev.op.code(),
                                    ev.table.qualified_name(),
                                    ev.source.lsn
                                )
                            })
                            .map_err(RunError::fatal)?,
                    };
                    // Streamed changes carry their commit time (snapshot rows their read time).
                    let commit_us =
                        (ev.source.snapshot == SnapshotMarker::False).then_some(ev.source.ts_us);
                    self.produce(topic, key.as_deref(), Some(&value), &ev.headers, commit_us)
                        .await?;
                    let rows = u64::from(ev.before.is_some()) + u64::from(ev.after.is_some());
                    if let Ok(n) = self.encoder.unmapped_columns(ev) {
                        self.tally.unmapped_values += n as u64 * rows;
                    }
                    // A tombstone deletes its key under log compaction; without a key (a table
                    // with neither primary key nor identity index) it could delete nothing, and a
                    // compacted topic would refuse it: none is written.
                    if ev.op == Op::Delete && self.tombstones && key.is_some() {
                        self.produce(topic, key.as_deref(), None, &ev.headers, None)
                            .await?;
                    }
                }
                Output::Record(r) => {
                    self.sink.ensure_topic(&r.topic).await?;
                    self.produce(
                        &r.topic,
                        r.key.as_deref(),
                        r.value.as_deref(),
                        &r.headers,
                        None,
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// `<prefix>.<schema>.<table>`, built once per table in a row.
    fn default_topic(&mut self, table: &Arc<TableSchema>) -> Arc<str> {
        match &self.default_topic {
            Some((t, topic)) if Arc::ptr_eq(t, table) => topic.clone(),
            _ => {
                let topic: Arc<str> = table.default_topic(&self.prefix).into();
                self.default_topic = Some((table.clone(), topic.clone()));
                topic
            }
        }
    }

    /// Adds a streamed change's commit-to-acknowledgement time to the tally.
    fn record_latency(&mut self, commit_us: Option<i64>) {
        if let Some(commit) = commit_us {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64);
            self.tally
                .commit_to_ack
                .record(u64::try_from(now - commit).unwrap_or(0));
        }
    }

    /// Queues one record; while librdkafka's queue is full, waits for acknowledgements.
    /// `commit_us`: the commit time of the streamed change the record carries.
    async fn produce(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
        commit_us: Option<i64>,
    ) -> Result<(), RunError> {
        self.tally.add(topic, key, value);
        if self.tally.records % 4096 == 0 && self.last_tally_log.elapsed() >= TALLY_LOG_INTERVAL {
            self.last_tally_log = Instant::now();
            log_tally(self.sink.name(), &self.tally, "progress");
        }
        loop {
            match self.sink.send(topic, key, value, headers)? {
                Sent::Queued(delivery) => {
                    self.pending.push_back(Pending::Record(delivery, commit_us));
                    return Ok(());
                }
                // Acknowledged: a checkpoint queued after it waits only for earlier records.
                Sent::Done => {
                    self.record_latency(commit_us);
                    return Ok(());
                }
                Sent::Full => match self.pending.next().await {
                    Some(ack) => self.on_ack(ack)?,
                    None => tokio::time::sleep(Duration::from_millis(10)).await,
                },
            }
        }
    }
}

/// An Avro failure of a change event, classified, with the event named.
fn avro_error(e: AvroError, ev: &ChangeEvent, what: &str) -> RunError {
    let transient = e.is_transient();
    RunError {
        transient,
        error: anyhow::Error::from(e).context(format!(
            "encoding the {what} of the {} event of {} at LSN {} as Avro",
            ev.op.code(),
            ev.table.qualified_name(),
            ev.source.lsn
        )),
    }
}

/// Pins the relay's clock, i.e. the processing time written in records (`ts_ms`, `ts_us`,
/// `ts_ns` of the envelope, heartbeats, messages), to this many ns since the Unix epoch. Only for
/// comparing two runs byte for byte (the discarding sink's checksum against a broker run's):
/// with it, two runs over the same WAL write identical records.
pub const FIXED_CLOCK_ENV: &str = "WALRELAY_FIXED_CLOCK_NS";

/// The relay's clock, ns since the Unix epoch ([`FIXED_CLOCK_ENV`] when set).
fn now_ns() -> i64 {
    static FIXED: std::sync::OnceLock<Option<i64>> = std::sync::OnceLock::new();
    let fixed = FIXED.get_or_init(|| {
        let value = std::env::var(FIXED_CLOCK_ENV).ok()?;
        match value.trim().parse() {
            Ok(ns) => {
                tracing::warn!(
                    ns,
                    "{FIXED_CLOCK_ENV} is set: records carry a fixed processing time"
                );
                Some(ns)
            }
            Err(_) => {
                tracing::warn!(%value, "{FIXED_CLOCK_ENV} is not a number of ns; ignored");
                None
            }
        }
    });
    if let Some(ns) = fixed {
        return *ns;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Transaction metadata of the transaction being delivered.
///
/// Counts are of what was *emitted*: the events the plugin chain output for the transaction
/// (a filtered event is not counted, a fanned-out one counts each output; a primary-key change
/// counts its `d` and `c`; tombstones are not events), plus its transactional logical decoding
/// messages under `LOGICAL_DECODING_MESSAGE`. Debezium likewise counts the records its
/// transaction monitor saw on their way out (`TransactionMonitor.dataEvent`).
#[derive(Debug)]
struct TxMeta {
    tx_id: i64,
    /// Debezium's transaction id: the bare `txId` (see `encode::records`).
    id: String,
    total: u64,
    /// Per data collection (`schema.table`), in order of first appearance.
    collections: Vec<(String, u64)>,
}

impl RelaySettings {
    /// Resolves a validated configuration into what a run needs.
    pub fn from_config(cfg: &crate::config::Config) -> anyhow::Result<RelaySettings> {
        use crate::config::SnapshotMode as Cfg;
        use crate::pg::capture::SnapshotMode;
        let pg = &cfg.source.postgres;
        let plugins = admit_plugins(cfg)?;
        let (url, tls) = crate::pg::tls::TlsSettings::split(&pg.url)
            .map_err(|e| anyhow::anyhow!("source.postgres.url: {e}"))?;
        let mut pg_config: tokio_postgres::Config = url
            .parse()
            .with_context(|| "source.postgres.url is not a valid PostgreSQL connection URL")?;
        pg_config.ssl_mode(tls.postgres_mode());
        let tls = crate::pg::capture::PgTls {
            mode: tls.mode,
            connector: tls
                .connector()
                .map_err(|e| anyhow::anyhow!("source.postgres.url: {e}"))?,
        };
        if let Some(path) = &pg.password_file {
            let password = crate::config::read_password_file(path)
                .map_err(|e| anyhow::anyhow!("source.postgres.password_file: {e}"))?;
            pg_config.password(password);
        }
        let sink = match &cfg.sink.kafka {
            Some(kafka) => SinkSettings::Kafka(KafkaSettings {
                brokers: kafka.brokers.clone(),
                properties: kafka.properties.clone(),
                topics: crate::sink::kafka::TopicSettings {
                    partitions: kafka.topics.partitions as i32,
                    replication_factor: kafka.topics.replication_factor as i32,
                    cleanup_policy: kafka.topics.cleanup_policy.as_kafka_str().to_string(),
                    config: kafka.topics.config.clone(),
                },
            }),
            // Validation guarantees exactly one of `kafka` and `null`.
            None => SinkSettings::Null,
        };
        Ok(RelaySettings {
            source: SourceSettings {
                pg: pg_config,
                tls,
                slot: pg.slot.clone(),
                publication: pg.publication.clone(),
                tables: pg.tables.iter().map(|t| t.to_string()).collect(),
                exclude_tables: pg.exclude_tables.iter().map(|t| t.to_string()).collect(),
                columns: crate::pg::capture::ColumnFilter {
                    include: pg.columns.include.clone(),
                    exclude: pg.columns.exclude.clone(),
                },
                publication_mode: match pg.publication_mode {
                    crate::config::PublicationMode::AllTables => {
                        crate::pg::catalog::PublicationMode::AllTables
                    }
                    crate::config::PublicationMode::Filtered => {
                        crate::pg::catalog::PublicationMode::Filtered
                    }
                    crate::config::PublicationMode::Disabled => {
                        crate::pg::catalog::PublicationMode::Disabled
                    }
                },
                snapshot: match pg.snapshot {
                    Cfg::Initial => SnapshotMode::Initial,
                    Cfg::Never => SnapshotMode::Never,
                    Cfg::InitialOnly => SnapshotMode::InitialOnly,
                    Cfg::WhenNeeded => SnapshotMode::WhenNeeded,
                    Cfg::Always => SnapshotMode::Always,
                },
                status_interval: Duration::from_millis(pg.status_interval_ms),
                truncate_events: cfg.truncate_events,
                logical_messages: cfg.logical_messages.enabled.then(|| {
                    crate::pg::capture::MessageFilter {
                        include: cfg.logical_messages.include_prefixes.clone(),
                        exclude: cfg.logical_messages.exclude_prefixes.clone(),
                    }
                }),
                heartbeat_interval: (cfg.heartbeat_interval_ms > 0)
                    .then(|| Duration::from_millis(cfg.heartbeat_interval_ms)),
                heartbeat_message: pg.heartbeat_message,
                server_timeout: Duration::from_millis(pg.server_timeout_ms),
                snapshot_workers: pg.snapshot_workers,
                incremental: pg.incremental_snapshots.as_ref().map(|i| {
                    crate::pg::incremental::IncrementalSettings {
                        signal_table: i.signal_table.to_string(),
                        chunk_size: i.chunk_size,
                    }
                }),
            },
            sink,
            topic_prefix: cfg.topic_prefix.clone(),
            tombstones_on_delete: cfg.tombstones_on_delete,
            format: cfg.format.clone(),
            transaction_metadata: cfg.transaction_metadata,
            state_dir: cfg.state_dir.clone(),
            plugins,
            metrics_listen: cfg.metrics.as_ref().map(|m| m.listen),
        })
    }
}

/// Checks every plugin against its pin and the signature policy, before anything is
/// instantiated, and resolves the chain's specs.
fn admit_plugins(
    cfg: &crate::config::Config,
) -> anyhow::Result<Vec<crate::plugin::chain::PluginSpec>> {
    use crate::config::{OnError as CfgOnError, Op as CfgOp};
    use crate::plugin::chain::{OnError, PluginSpec, Scope};
    use crate::plugin::runtime::{DirGrant, Grants, Limits};
    use crate::plugin::signing;

    let policy = cfg
        .plugin_policy
        .trust_policy()
        .context("plugin_policy.trusted_keys")?;
    let mut specs = Vec::with_capacity(cfg.plugins.len());
    for (i, p) in cfg.plugins.iter().enumerate() {
        let origin = if p.location.is_empty() {
            format!("plugins[{i}] (`{}`)", p.name)
        } else {
            p.location.clone()
        };
        let signature = p
            .signature
            .clone()
            .unwrap_or_else(|| signing::default_signature_path(&p.component));
        let admission = signing::admit(&policy, &p.component, &p.sha256, &signature)
            .with_context(|| origin.clone())?;
        match &admission.signer {
            Some(signer) => {
                tracing::info!(plugin = %p.name, digest = %admission.digest, %signer, trusted = admission.trusted, "plugin admitted")
            }
            None => {
                tracing::info!(plugin = %p.name, digest = %admission.digest, "plugin admitted (unsigned; plugin_policy does not require signatures)")
            }
        }
        let on_error = match p.on_error {
            CfgOnError::Fail => OnError::Fail,
            CfgOnError::Skip => OnError::Skip,
            CfgOnError::DeadLetter => OnError::DeadLetter {
                topic: p.dead_letter_topic.clone().with_context(|| {
                    format!("{origin}: on_error: dead-letter needs dead_letter_topic")
                })?,
            },
        };
        let ops = p.scope.ops.as_ref().map(|ops| {
            ops.iter()
                .filter_map(|o| match o {
                    CfgOp::Create => Some(Op::Create),
                    CfgOp::Update => Some(Op::Update),
                    CfgOp::Delete => Some(Op::Delete),
                    CfgOp::Read => Some(Op::Read),
                    CfgOp::Truncate => Some(Op::Truncate),
                    // Logical decoding messages do not reach plugins yet.
                    CfgOp::Message => None,
                })
                .collect()
        });
        specs.push(PluginSpec {
            name: p.name.clone(),
            component: p.component.clone(),
            config_json: p.config.to_string(),
            origin,
            limits: Limits {
                cpu_ms_per_batch: p.limits.cpu_ms_per_batch,
                memory_mb: u64::from(p.limits.memory_mb),
                max_output_bytes: p.limits.max_output_bytes,
                max_fan_out: u64::from(p.limits.max_fan_out),
            },
            on_error,
            scope: Scope {
                tables: p
                    .scope
                    .tables
                    .as_ref()
                    .map(|t| t.iter().map(|t| t.to_string()).collect()),
                ops,
            },
            grants: Grants {
                dirs: p
                    .grants
                    .dirs
                    .iter()
                    .map(|d| DirGrant {
                        host: d.host.clone(),
                        guest: d.guest.clone(),
                        readonly: d.readonly,
                    })
                    .collect(),
                network: p.grants.network,
                clock: p.grants.clock,
                random: p.grants.random,
            },
        });
    }
    Ok(specs)
}
